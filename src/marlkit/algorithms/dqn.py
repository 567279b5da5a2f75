"""Independent deep Q-learning (IQL) — and the machinery VDN and QMIX reuse.

Papers: Mnih et al. 2015, "Human-level control through deep reinforcement learning" (DQN: replay, target network,
Huber loss, gradient clipping; Nature 518); Tan 1993, "Multi-Agent Reinforcement Learning: Independent vs.
Cooperative Agents" (independent Q-learners, ICML); Tampuu et al. 2017, "Multiagent cooperation and competition with
deep reinforcement learning" (independent DQN, https://arxiv.org/abs/1511.08779); van Hasselt et al. 2016, "Deep
Reinforcement Learning with Double Q-learning" (https://arxiv.org/abs/1509.06461); Hessel et al. 2018, "Rainbow"
(n-step returns, https://arxiv.org/abs/1710.02298); Hausknecht & Stone 2015, "Deep Recurrent Q-Learning for
Partially Observable MDPs" (the GRU agent, https://arxiv.org/abs/1507.06527).

Each group has one Q-network shared by its agents, told apart by a one-hot agent id (as in VDN's and QMIX's
experiments). Acting is ε-greedy with ε decaying linearly over the run's env-steps (``set_progress``); masked
actions are never chosen, not even at random. Every ``update`` puts the rollout into the replay (``marlkit.data.replay``) and, after a warm-up,
takes ``gradient_steps`` steps on the TD error of sampled n-step transitions:

    target = R^(n) + discount * Q_target(next_obs, argmax_a' Q(next_obs, a'))     (double DQN; the max is masked)

where ``discount = gamma^m`` unless the episode *terminated* inside the window (0 then; truncation bootstraps).
The target network is copied every ``target_update_every`` gradient steps, or tracks the online one with Polyak
averaging when ``tau > 0``. With ``recurrent=True`` each agent is a GRU network trained on whole episodes.

VDN and QMIX (``vdn.py``, ``qmix.py``) are this learner with a mixing network: the TD error is then taken on the
team value ``Q_tot = mixer(Q_1..Q_n, state)`` against ``mean_i R_i^(n) + discount * mixer_target(Q_target..,
next_state)`` (``_GroupTD.loss``); here, without a mixer, each agent has its own TD error.

Acting (``q_act``) is one function shared by the learner and its weights-only snapshot (``policy()``, a
``QPolicy``: the agents' Q-networks without mixers, targets or replay). Extra loss terms (the loss-term hook of
``marlkit.core``) are added to the TD loss of every gradient step.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, cast

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium.spaces import Discrete
from torch import nn

from marlkit.core import Capabilities, LearnerBase, PolicyBase, PolicySpaces, register_policy_kind
from marlkit.core.config import check
from marlkit.core.contracts import Actions, Extras, Info, Obs
from marlkit.core.policies import build_module, weights_of
from marlkit.data.replay import EpisodeBatch, EpisodeReplay, GroupTransitions, TransitionBatch, TransitionReplay
from marlkit.data.rollout import Rollout
from marlkit.envs.base import MultiAgentEnv
from marlkit.nn import MLP, GRUNet, RunningNorm, append_agent_ids
from marlkit.ops.gradients import clip_grad_norm
from marlkit.ops.schedules import linear


@dataclass(frozen=True)
class DQNConfig:
    """Hyper-parameters of IQL (and of VDN/QMIX, which add a mixer); defaults after the QMIX paper's where they
    apply (lr 5e-4, γ 0.99, ε 1 -> 0.05 over 50k env-steps, target copy every 200 updates, 64-unit networks)."""

    rollout_steps: int = 4
    """Steps of every copy collected before each update."""
    gradient_steps: int = 1
    """Gradient steps per update (once the warm-up is over)."""
    buffer_size: int = 50_000
    """Replay capacity in transitions (summed over copies and sources); in recurrent mode, buffer_size // episode
    length whole episodes."""
    batch_size: int = 128
    """Transitions per gradient step (feed-forward Q-network)."""
    batch_episodes: int = 32
    """Episodes per gradient step in recurrent mode."""
    warmup_steps: int = 1_000
    """Env-steps (summed over copies) collected before the first gradient step."""
    lr: float = 5e-4
    """Adam learning rate."""
    gamma: float = 0.99
    """Discount factor."""
    n_step: int = 1
    """Steps of reward summed before bootstrapping (n-step returns)."""
    double_q: bool = True
    """Double DQN: the online network picks the next action, the target network values it."""
    target_update_every: int = 200
    """Copy the online network into the target network every this many gradient steps (when tau is 0)."""
    tau: float = 0.0
    """Polyak averaging rate of the target network after every gradient step; 0 uses hard copies instead."""
    epsilon_start: float = 1.0
    """Exploration rate at the start."""
    epsilon_end: float = 0.05
    """Exploration rate after epsilon_steps."""
    epsilon_steps: int = 50_000
    """Env-steps (summed over copies) over which ε decays linearly from epsilon_start to epsilon_end."""
    eval_epsilon: float = 0.0
    """ε of evaluation (non-exploring) acting; 0 is greedy. Mnih et al. 2015 evaluated with 0.05: a deterministic
    memoryless policy can repeat a blocked move forever (on foraging-v0, two agents stepping into the same cell)."""
    huber_delta: float = 10.0
    """Huber loss threshold on the TD error; 0 uses the squared error. Not DQN's 1: without reward clipping,
    Huber(1) fits a median-like value (on penalty-v0, k=0, it valued the 10-or-0 action like the 2-or-0 one)."""
    max_grad_norm: float = 10.0
    """Global gradient-norm clip."""
    scale_rewards: bool = False
    """Divide rewards by a running estimate of their standard deviation (EPyMARL's ``standardise_rewards``, without
    its mean shift, so the incentive to end or prolong an episode is unchanged); greedy actions are unaffected."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of the feed-forward Q-network."""
    activation: Literal["tanh", "relu"] = "relu"
    """Hidden activation of the feed-forward Q-network."""
    agent_id: bool = True
    """Append a one-hot agent index to the Q-network's input (agents of a group share the network)."""
    recurrent: bool = False
    """GRU Q-network trained on whole episodes (for partial observability)."""
    rnn_hidden: int = 64
    """GRU width in recurrent mode."""
    episode_limit: int = 0
    """Longest episode stored in recurrent mode; 0 uses the env's max_steps (longer episodes are split)."""

    def __post_init__(self) -> None:
        for name in (
            "rollout_steps",
            "gradient_steps",
            "buffer_size",
            "batch_size",
            "batch_episodes",
            "n_step",
            "target_update_every",
            "rnn_hidden",
        ):
            check(getattr(self, name) >= 1, f"algo.{name}", "an integer >= 1", getattr(self, name))
        for name in ("warmup_steps", "epsilon_steps", "episode_limit"):
            check(getattr(self, name) >= 0, f"algo.{name}", "an integer >= 0", getattr(self, name))
        check(self.lr > 0, "algo.lr", "a positive number", self.lr)
        check(0 <= self.gamma <= 1, "algo.gamma", "a number in [0, 1]", self.gamma)
        check(0 <= self.tau <= 1, "algo.tau", "a number in [0, 1] (0: hard target copies)", self.tau)
        for name in ("epsilon_start", "epsilon_end", "eval_epsilon"):
            check(0 <= getattr(self, name) <= 1, f"algo.{name}", "a number in [0, 1]", getattr(self, name))
        check(self.huber_delta >= 0, "algo.huber_delta", "a number >= 0 (0: squared error)", self.huber_delta)
        check(self.max_grad_norm > 0, "algo.max_grad_norm", "a positive number", self.max_grad_norm)
        check(all(h >= 1 for h in self.hidden), "algo.hidden", "positive layer sizes", self.hidden)
        check(self.activation in ("tanh", "relu"), "algo.activation", "tanh or relu", self.activation)


class AgentQ(nn.Module):
    """The Q-network of one group's agents: ``(..., n_agents, obs_dim)`` -> ``(..., n_agents, n_actions)``."""

    def __init__(self, obs_dim: int, n_agents: int, n_actions: int, cfg: DQNConfig) -> None:
        super().__init__()
        self.n_agents = n_agents
        self.ids = cfg.agent_id and n_agents > 1
        in_dim = obs_dim + (n_agents if self.ids else 0)
        self.recurrent = cfg.recurrent
        self.net: GRUNet | MLP = (
            GRUNet(in_dim, n_actions, cfg.rnn_hidden)
            if cfg.recurrent
            else MLP(in_dim, n_actions, cfg.hidden, activation=cfg.activation)
        )

    def inputs(self, obs: torch.Tensor) -> torch.Tensor:
        if not self.ids:
            return obs
        return append_agent_ids(obs)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Feed-forward: Q of every agent; recurrent: ``obs (B, T, n, d)`` unrolled from a zero hidden state."""
        x = self.inputs(obs)
        return self.net.unroll(x) if isinstance(self.net, GRUNet) else self.net(x)

    def forward_numpy(self, obs: np.ndarray) -> np.ndarray:
        """The feed-forward network in NumPy, for acting (see ``MLP.forward_numpy``)."""
        if self.ids:
            obs = append_agent_ids(obs)
        assert isinstance(self.net, MLP), "a recurrent network acts through recurrent_q"
        return self.net.forward_numpy(obs)


def masked_argmax(q: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Index of the largest allowed value along the last dim."""
    return (q if mask is None else q.masked_fill(~mask, -torch.inf)).argmax(-1, keepdim=True)


#: What ``_values`` and ``_values_recurrent`` give: Q taken, bootstrapped next Q, loss mask, state and next state
#: (the states None unless the replay stores them).
_Values = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]

#: What ``AgentQ`` is built from besides the spaces (a ``QPolicy`` rebuilds its networks from these).
NET_FIELDS = ("hidden", "activation", "agent_id", "recurrent", "rnn_hidden")


@torch.no_grad()
def recurrent_q(
    net: AgentQ, hidden: dict[Any, torch.Tensor], key: Any, obs: np.ndarray, info: dict[str, Any]
) -> np.ndarray:
    """One GRU step for every copy and agent, the hidden state kept in ``hidden[key]``: zeroed where an episode
    ended, and everywhere after a reset (an ``info`` without ``episode_done``)."""
    rnn = net.net
    assert isinstance(rnn, GRUNet), "recurrent_q steps a recurrent network"
    h = hidden.get(key)
    if h is None or h.shape[:-1] != obs.shape[:-1] or "episode_done" not in info:
        h = rnn.initial(*obs.shape[:-1])
    elif info["episode_done"].any():
        h = h.masked_fill(torch.from_numpy(info["episode_done"])[:, None, None], 0.0)
    q, hidden[key] = rnn.step(net.inputs(torch.from_numpy(obs)), h)
    return q.numpy()


def q_act(
    agents: Mapping[str, AgentQ],
    hidden: dict[Any, torch.Tensor],
    obs: dict[str, np.ndarray],
    info: dict[str, Any],
    eps: float,
    rng: np.random.Generator,
    explore: bool,
) -> dict[str, np.ndarray]:
    """ε-greedy actions of every group (greedy when ``eps`` is 0); masked actions are never chosen, not even at
    random. Recurrent networks keep their hidden state in ``hidden``, per group and explore flag (so an evaluation
    between collections does not disturb the collection's)."""
    masks = info.get("action_mask") or {}
    actions = {}
    for g, net in agents.items():
        q = recurrent_q(net, hidden, (g, explore), obs[g], info) if net.recurrent else net.forward_numpy(obs[g])
        mask = masks.get(g)
        if mask is not None:
            q = np.where(mask, q, -np.inf)
        a = q.argmax(-1)
        if eps > 0:  # uniform over the allowed actions with probability ε
            noise = rng.random(q.shape)
            random_a = (noise if mask is None else np.where(mask, noise, -1.0)).argmax(-1)
            a = np.where(rng.random(a.shape) < eps, random_a, a)
        actions[g] = a
    return actions


class DQN(LearnerBase, nn.Module):
    """Independent deep Q-learners, one shared Q-network per group; subclasses add a mixer (VDN, QMIX)."""

    #: Off-policy (its own replay); QMIX's mixer reads ``state()``, so QMIX declares ``uses_state``. ε and the
    #: warm-up follow the run's env-step counter (``self.progress``).
    capabilities = Capabilities("transitions", uses_state=False, losses=("loss",))

    def __init__(self, env: MultiAgentEnv, config: DQNConfig, seed: int = 0) -> None:
        super().__init__()
        self.config = cfg = config
        self.groups = dict(env.groups)
        self.spaces = PolicySpaces.from_env(env)
        state_dim = int(np.prod(env.state_space.shape))
        agents, mixers = nn.ModuleDict(), nn.ModuleDict()
        for g, ids in env.groups.items():
            obs_dim, act_space = int(np.prod(env.group_observation_space(g).shape)), env.group_action_space(g)
            if not isinstance(act_space, Discrete):
                raise ValueError(f"{type(self).__name__} needs Discrete actions; group {g!r} has {act_space}")
            agents[g] = AgentQ(obs_dim, len(ids), int(act_space.n), cfg)
            mixer = self.make_mixer(len(ids), state_dim)
            if mixer is not None:
                mixers[g] = mixer
        self.online = nn.ModuleDict({"agents": agents, "mixers": mixers})
        self.target = copy.deepcopy(self.online).requires_grad_(False)
        self.extras_spec: dict[str, dict[str, tuple[int, ...]]] = {g: {} for g in env.groups}
        self.optimizer = torch.optim.Adam(self.online.parameters(), lr=cfg.lr, fused=True)  # one kernel a step
        self.reward_norm = RunningNorm()  # statistics of the per-step rewards, used when cfg.scale_rewards
        self.rng = np.random.default_rng(seed)  # exploration and replay sampling
        self.eval_rng = np.random.default_rng([seed, 1])  # eval_epsilon's draws: evaluating never shifts training
        if cfg.recurrent:
            max_len = cfg.episode_limit or env.max_steps
            check(bool(max_len), "algo.episode_limit", f"an integer >= 1 ({env!r} has no max_steps)", max_len)
            assert max_len is not None  # for the type checker: check() raised unless it is an integer >= 1
            self.replay: TransitionReplay | EpisodeReplay = EpisodeReplay(
                max(cfg.buffer_size // max_len, 1), max_len, cfg.n_step, cfg.gamma
            )
        else:
            self.replay = TransitionReplay(cfg.buffer_size, cfg.n_step, cfg.gamma)
        self.epsilon_schedule = linear(cfg.epsilon_start, cfg.epsilon_end, cfg.epsilon_steps)
        self.grad_steps = 0
        self._hidden: dict[tuple[str, bool], torch.Tensor] = {}  # recurrent acting: per group and explore flag

    def make_mixer(self, n_agents: int, state_dim: int) -> nn.Module | None:
        """The mixing network of one group; None for independent learners."""
        return None

    # ------------------------------------------------------------------------------------------------ acting
    def epsilon(self) -> float:
        """ε of exploring acting at the run's env-steps so far (the batch being learned from included)."""
        return self.epsilon_schedule(self.progress.env_steps)

    @torch.no_grad()
    def act(
        self, obs: dict[str, np.ndarray], state: np.ndarray | None, info: dict[str, Any], explore: bool = True
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, np.ndarray]]]:
        eps = self.epsilon() if explore else self.config.eval_epsilon
        rng = self.rng if explore else self.eval_rng
        agents = cast("Mapping[str, AgentQ]", self.online["agents"])  # a ModuleDict does not know its items' type
        return q_act(agents, self._hidden, obs, info, eps, rng, explore), {}

    def _recurrent_q(self, g: str, obs: np.ndarray, info: dict[str, Any], explore: bool) -> np.ndarray:
        """One GRU step of group ``g`` with the learner's hidden state for ``explore`` (see ``recurrent_q``)."""
        agents = cast("Mapping[str, AgentQ]", self.online["agents"])  # a ModuleDict does not know its items' type
        return recurrent_q(agents[g], self._hidden, (g, explore), obs, info)

    def policy(self, seed: int | None = None) -> QPolicy:
        """The agents' Q-networks as they are now, copied; ε-greedy with the current ε when exploring."""
        online = cast("Mapping[str, AgentQ]", self.online["agents"])  # a ModuleDict does not know its items' type
        agents = {g: copy.deepcopy(net).requires_grad_(False) for g, net in online.items()}
        net = {k: getattr(self.config, k) for k in NET_FIELDS}
        return QPolicy(self.spaces, agents, net, self.epsilon(), self.config.eval_epsilon, seed)

    # ----------------------------------------------------------------------------------------------- learning
    def update(self, rollout: Rollout) -> dict[str, float]:
        cfg = self.config
        self.replay.insert(rollout)
        if cfg.scale_rewards:
            self.reward_norm.update(torch.cat([r.reshape(-1) for r in rollout.rewards.values()]).float())
        metrics = {"train/epsilon": self.epsilon(), "train/replay_size": float(len(self.replay))}
        if self.progress.env_steps < cfg.warmup_steps or len(self.replay) == 0:
            return metrics
        stats = []
        for _ in range(cfg.gradient_steps):
            batch = self.replay.sample(cfg.batch_episodes if cfg.recurrent else cfg.batch_size, self.rng)
            loss, q_mean = self._loss(batch)
            self.optimizer.zero_grad()
            self.with_loss_terms("loss", loss, batch).backward()
            grad_norm = clip_grad_norm(self.online.parameters(), cfg.max_grad_norm)
            self.optimizer.step()
            self.grad_steps += 1
            self._update_target()
            stats.append(torch.stack([loss.detach(), q_mean, grad_norm]))
        td, q, gn = torch.stack(stats).mean(0).tolist()
        return {**metrics, "loss/td": td, "loss/q_taken": q, "loss/grad_norm": gn}

    def _loss(self, batch: TransitionBatch | EpisodeBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """The TD loss summed over groups, and the mean Q of the actions taken (a diagnostic)."""
        loss, q_means = torch.zeros(()), []
        mixers, target_mixers = cast(nn.ModuleDict, self.online["mixers"]), cast(nn.ModuleDict, self.target["mixers"])
        for g in cast(nn.ModuleDict, self.online["agents"]):
            b = batch.groups[g]
            returns = b.returns / self.reward_norm.std() if self.config.scale_rewards else b.returns
            q_taken, q_next, valid, state, next_state = (
                self._values_recurrent(g, b, batch) if isinstance(batch, EpisodeBatch) else self._values(g, b, batch)
            )
            if g in mixers:  # VDN / QMIX: one TD error per team
                q_tot = mixers[g](q_taken, state)
                with torch.no_grad():
                    next_tot = target_mixers[g](q_next, next_state)
                    target = returns.mean(-1) + b.discount.amax(-1) * next_tot
                loss = loss + self._td(q_tot, target, valid.any(-1))
            else:  # IQL: one TD error per agent
                loss = loss + self._td(q_taken, returns + b.discount * q_next, valid)
            q_means.append(q_taken.detach()[valid].mean() if valid.any() else torch.zeros(()))
        return loss, torch.stack(q_means).mean()

    def _td(self, pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Mean Huber (or squared) TD error over the valid entries."""
        if self.config.huber_delta > 0:
            err = F.huber_loss(pred, target, reduction="none", delta=self.config.huber_delta)
        else:
            err = 0.5 * (pred - target) ** 2
        v = valid.float()
        return (err * v).sum() / v.sum().clamp(min=1.0)

    def _values(self, g: str, b: GroupTransitions, batch: TransitionBatch) -> _Values:
        """Feed-forward: Q of the taken actions, the bootstrapped next value per agent, the loss mask, the states."""
        net, target = cast(nn.ModuleDict, self.online["agents"])[g], cast(nn.ModuleDict, self.target["agents"])[g]
        q_taken = net(b.obs).gather(-1, b.actions.unsqueeze(-1)).squeeze(-1)
        with torch.no_grad():
            q_next_target = target(b.next_obs)
            chooser = net(b.next_obs) if self.config.double_q else q_next_target
            q_next = q_next_target.gather(-1, masked_argmax(chooser, b.next_mask)).squeeze(-1)
        return q_taken, q_next, b.active, batch.state, batch.next_state

    def _values_recurrent(self, g: str, b: GroupTransitions, batch: EpisodeBatch) -> _Values:
        """Recurrent: the same over whole episodes ``(B, L, n)``. The networks run over ``obs_0, next_obs_0, ...,
        next_obs_{L-1}`` (``next_obs_t`` is ``obs_{t+1}`` inside an episode), so output ``t`` is Q of ``obs_t``
        and output ``t + 1`` that of ``next_obs_t``, each given the episode so far."""
        net, target = cast(nn.ModuleDict, self.online["agents"])[g], cast(nn.ModuleDict, self.target["agents"])[g]
        seq = torch.cat([b.obs[:, :1], b.next_obs], dim=1)
        q_all = net(seq)
        q_taken = q_all[:, :-1].gather(-1, b.actions.unsqueeze(-1)).squeeze(-1)
        last = batch.last  # (B, L): the step whose next_obs each n-step target bootstraps from
        with torch.no_grad():
            q_next_target = target(seq)[:, 1:]
            chooser = q_all[:, 1:] if self.config.double_q else q_next_target
            q_next = q_next_target.gather(-1, masked_argmax(chooser, b.next_mask)).squeeze(-1)
            q_next = q_next.gather(1, last.unsqueeze(-1).expand_as(q_next))
        next_state = batch.next_state
        if next_state is not None:
            next_state = next_state.gather(1, last.unsqueeze(-1).expand_as(next_state))
        valid = b.active & batch.filled.unsqueeze(-1)
        return q_taken, q_next, valid, batch.state, next_state

    def _update_target(self) -> None:
        cfg = self.config
        if cfg.tau > 0:
            with torch.no_grad():
                for p_t, p in zip(self.target.parameters(), self.online.parameters()):
                    p_t.lerp_(p, cfg.tau)
        elif self.grad_steps % cfg.target_update_every == 0:
            self.target.load_state_dict(self.online.state_dict())

    # -------------------------------------------------------------------------------------------- checkpoints
    def state(self) -> dict[str, Any]:
        return {
            "model": self.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": self.rng.bit_generator.state,
            "eval_rng": self.eval_rng.bit_generator.state,
            "grad_steps": self.grad_steps,
            "replay": self.replay.state_dict(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.rng.bit_generator.state = state["rng"]
        if "eval_rng" in state:
            self.eval_rng.bit_generator.state = state["eval_rng"]
        self.grad_steps = int(state["grad_steps"])
        self.replay.load_state_dict(state["replay"])
        self.replay.cut()  # a resumed run resets every copy: no episode continues across the checkpoint
        self._hidden = {}


@register_policy_kind("q")
class QPolicy(PolicyBase):
    """The Q-networks of an IQL, VDN or QMIX learner, weights only: greedy (``eval_epsilon``-greedy) by default,
    ``epsilon``-greedy when exploring. A recurrent network's hidden state lives here, per copy, and is zeroed
    where ``info["episode_done"]`` says an episode ended (everywhere after a reset)."""

    def __init__(
        self,
        spaces: PolicySpaces,
        agents: dict[str, AgentQ],
        net: dict[str, Any],
        epsilon: float = 0.0,
        eval_epsilon: float = 0.0,
        seed: int | None = None,
    ) -> None:
        self.spaces, self.agents, self.net = spaces, agents, dict(net)
        self.epsilon, self.eval_epsilon = float(epsilon), float(eval_epsilon)
        self.extras_spec: dict[str, dict[str, tuple[int, ...]]] = {g: {} for g in spaces.groups}
        self.rng = np.random.default_rng(seed)  # exploration
        self.eval_rng = np.random.default_rng(None if seed is None else [seed, 1])  # eval_epsilon's draws
        self._hidden: dict[Any, torch.Tensor] = {}

    def act(
        self, obs: Obs, state: np.ndarray | None = None, info: Info | None = None, explore: bool = False
    ) -> tuple[Actions, Extras]:
        eps, rng = (self.epsilon, self.rng) if explore else (self.eval_epsilon, self.eval_rng)
        return q_act(self.agents, self._hidden, obs, info or {}, eps, rng, explore), {}

    def policy_state(self) -> dict[str, Any]:
        net = {**self.net, "hidden": list(self.net["hidden"])}
        return {
            **self.header(),
            "net": net,
            "epsilon": self.epsilon,
            "eval_epsilon": self.eval_epsilon,
            "agents": {g: weights_of(a) for g, a in self.agents.items()},
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], seed: int | None = None) -> QPolicy:
        spaces = PolicySpaces.from_data(state["spaces"])
        net = {**state["net"], "hidden": tuple(state["net"]["hidden"])}
        cfg = DQNConfig(**net)
        agents = {}
        for g, ids in spaces.groups.items():
            action = spaces.action[g]
            if not isinstance(action, Discrete):
                raise ValueError(f"a q policy acts on Discrete actions; this policy state gives group {g!r} {action}")
            obs_dim, n_actions = int(np.prod(spaces.observation[g].shape or ())), int(action.n)
            agents[g] = build_module(partial(AgentQ, obs_dim, len(ids), n_actions, cfg), state["agents"][g])
        return cls(spaces, agents, net, state["epsilon"], state["eval_epsilon"], seed)
