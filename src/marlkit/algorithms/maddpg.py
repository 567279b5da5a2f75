"""MADDPG: deterministic policy gradients with centralised critics, for cooperative and competitive teams.

Papers: Lowe et al. 2017, "Multi-Agent Actor-Critic for Mixed Cooperative-Competitive Environments" (MADDPG,
https://arxiv.org/abs/1706.02275); Lillicrap et al. 2016, "Continuous control with deep reinforcement learning"
(DDPG: replay, target networks with Polyak averaging, Gaussian/OU exploration noise,
https://arxiv.org/abs/1509.02971); Jang et al. 2017, "Categorical Reparameterization with Gumbel-Softmax" and
Maddison et al. 2017, "The Concrete Distribution" (the straight-through Gumbel-softmax MADDPG uses for discrete
actions, https://arxiv.org/abs/1611.01144, https://arxiv.org/abs/1611.00712).

Every agent i acts with its own observation, ``a_i = mu_i(o_i)``; only training is centralised. Each group (agents
sharing spaces) has one actor and one critic, shared by its agents and told apart by a one-hot id; the critic

    Q_i(s, a_1, ..., a_N)      (s = the env's ``state()``, a_1..a_N the actions of *all* agents of *all* groups)

is trained on the group's own per-agent reward, so groups with opposed interests (``tag-v0``: adversaries vs the
good agent) each learn their own critic. With transitions ``(s, o, a, r, s', o')`` sampled from a replay
(``marlkit.data.replay.TransitionReplay``, n-step returns optional):

    critic:  minimise (Q_i(s, a) - y_i)^2,  y_i = r_i + discount * Q'_i(s', mu'_1(o'_1), ..., mu'_N(o'_N))
    actor:   maximise Q_i(s, a_1, ..., mu_i(o_i), ..., a_N)   (only agent i's own action is replaced)

where primes are target networks tracking the online ones by Polyak averaging (rate ``tau``) and ``discount`` is
0 after a termination (truncations bootstrap). Continuous (``Box``) actions are ``low + (high - low) *
sigmoid(x)``, explored with Gaussian noise; discrete actions are one-hot vectors drawn with the straight-through
Gumbel-softmax (a hard one-hot forward, the softmax's gradient backward), explored by sampling from the policy and
masked where the env gives action masks. As in the paper's code, the actor's pre-activations get a small L2
penalty (``action_reg``) and both losses have their gradient norm clipped.

Extra loss terms (the loss-term hook of ``marlkit.core``) can go to either loss or both (``losses=("critic",)``,
``("actor",)``; both by default). Each step moves only its own networks — the critic step the critics, the actor
step the actors — so a term over all parameters (an L2 pull towards earlier weights) regularises each network in
its own step. Acting (``maddpg_act``) is one function shared by the learner and its weights-only snapshot
(``policy()``, an ``MADDPGPolicy``: the actors, without critics, targets or replay).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, cast

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.spaces import Box, Discrete
from torch import nn

from marlkit.core import Capabilities, LearnerBase, PolicyBase, PolicySpaces, register_policy_kind
from marlkit.core.config import check
from marlkit.core.contracts import Actions, Extras, Info, Obs
from marlkit.core.policies import build_module, weights_of
from marlkit.data.replay import TransitionBatch, TransitionReplay
from marlkit.data.rollout import Rollout
from marlkit.envs.base import MultiAgentEnv
from marlkit.nn import MLP, append_agent_ids
from marlkit.ops.gradients import clip_grad_norm


@dataclass(frozen=True)
class MADDPGConfig:
    """Hyper-parameters of MADDPG; after the paper's MPE settings (γ 0.95, τ 0.01, 64-unit ReLU networks, gradient
    clip 0.5, action L2 1e-3) except the learning rates (1e-3, not 1e-2) and batch size (512, not 1024); not
    tuned further (the first settings tried passed tests/learning/test_actor_critic_learns.py)."""

    rollout_steps: int = 4
    """Steps of every copy collected before each update."""
    gradient_steps: int = 1
    """Gradient steps (one critic and one actor step each) per update, once the warm-up is over."""
    buffer_size: int = 100_000
    """Replay capacity in transitions (summed over copies and sources)."""
    batch_size: int = 512
    """Transitions per gradient step."""
    warmup_steps: int = 2_000
    """Env-steps (summed over copies) collected before the first gradient step."""
    actor_lr: float = 1e-3
    """Adam learning rate of the actors."""
    critic_lr: float = 1e-3
    """Adam learning rate of the critics."""
    gamma: float = 0.95
    """Discount factor."""
    n_step: int = 1
    """Steps of reward summed before bootstrapping (1 in the paper; more is biased off-policy)."""
    tau: float = 0.01
    """Polyak averaging rate of the target actors and critics after every gradient step."""
    noise_std: float = 0.1
    """Std of the Gaussian exploration noise on continuous actions, as a fraction of the action range."""
    temperature: float = 1.0
    """Temperature of the Gumbel-softmax relaxation of discrete actions."""
    action_reg: float = 1e-3
    """Weight of the L2 penalty on the actor's pre-activation outputs."""
    max_grad_norm: float = 0.5
    """Gradient-norm clip of each of the actor and critic losses."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of actors and critics."""
    activation: Literal["tanh", "relu"] = "relu"
    """Hidden activation."""
    agent_id: bool = True
    """Append a one-hot agent index to the inputs of a group's shared actor and critic."""

    def __post_init__(self) -> None:
        for name in ("rollout_steps", "gradient_steps", "buffer_size", "batch_size", "n_step"):
            check(getattr(self, name) >= 1, f"algo.{name}", "an integer >= 1", getattr(self, name))
        check(self.warmup_steps >= 0, "algo.warmup_steps", "an integer >= 0", self.warmup_steps)
        for name in ("actor_lr", "critic_lr", "temperature", "max_grad_norm"):
            check(getattr(self, name) > 0, f"algo.{name}", "a positive number", getattr(self, name))
        check(0 <= self.gamma <= 1, "algo.gamma", "a number in [0, 1]", self.gamma)
        check(0 < self.tau <= 1, "algo.tau", "a number in (0, 1]", self.tau)
        check(self.noise_std >= 0, "algo.noise_std", "a number >= 0", self.noise_std)
        check(self.action_reg >= 0, "algo.action_reg", "a number >= 0", self.action_reg)
        check(all(h >= 1 for h in self.hidden), "algo.hidden", "positive layer sizes", self.hidden)
        check(self.activation in ("tanh", "relu"), "algo.activation", "tanh or relu", self.activation)


class _WithId(nn.Module):
    """An MLP on ``(..., n_agents, d)`` inputs, shared by a group's agents: appends the one-hot agent index."""

    def __init__(self, in_dim: int, out_dim: int, n_agents: int, cfg: MADDPGConfig, out_gain: float) -> None:
        super().__init__()
        self.n_agents = n_agents
        self.ids = cfg.agent_id and n_agents > 1
        self.net = MLP(in_dim + (n_agents if self.ids else 0), out_dim, cfg.hidden, None, cfg.activation, out_gain)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.ids:
            x = append_agent_ids(x)
        return self.net(x)

    def forward_numpy(self, x: np.ndarray) -> np.ndarray:
        if self.ids:
            x = append_agent_ids(x)
        return self.net.forward_numpy(x)


#: What an actor (``_WithId``) is built from besides the spaces (an ``MADDPGPolicy`` rebuilds its actors from these).
NET_FIELDS = ("hidden", "activation", "agent_id")


def maddpg_act(
    actors: Mapping[str, _WithId],
    discrete: Mapping[str, bool],
    bounds: Mapping[str, tuple[np.ndarray, np.ndarray]],
    noise_std: float,
    obs: dict[str, np.ndarray],
    info: dict[str, Any],
    rng: np.random.Generator,
    explore: bool,
) -> dict[str, np.ndarray]:
    """Every group's actions, one batched NumPy pass per group: the greedy action, or when exploring a Gumbel-max
    sample of the (masked) logits (``Discrete``) or the action plus Gaussian noise of ``noise_std`` times the
    action range (``Box``)."""
    masks = info.get("action_mask") or {}
    actions = {}
    for g, actor in actors.items():
        out = actor.forward_numpy(obs[g])
        if discrete[g]:
            if g in masks:
                out = np.where(masks[g], out, np.float32(-1e9))
            if explore:  # Gumbel-max: a sample of softmax(logits)
                out = out + rng.gumbel(size=out.shape).astype(np.float32)
            actions[g] = out.argmax(-1)
        else:
            low, high = bounds[g]
            a = low + (high - low) / (1.0 + np.exp(-out))
            if explore and noise_std > 0:
                a = a + (noise_std * (high - low)) * rng.standard_normal(a.shape, np.float32)
            actions[g] = np.clip(a, low, high)
    return actions


class MADDPG(LearnerBase, nn.Module):
    """MADDPG for every group of an environment: per group a shared actor and a centralised critic."""

    #: Off-policy (its own replay); the critics read the global state (the collector stores it with every step). The
    #: warm-up follows the run's env-step counter (``self.progress``).
    capabilities = Capabilities("transitions", uses_state=True, losses=("critic", "actor"))

    def __init__(self, env: MultiAgentEnv, config: MADDPGConfig, seed: int = 0) -> None:
        super().__init__()
        self.config = cfg = config
        self.groups = dict(env.groups)
        self.spaces = PolicySpaces.from_env(env)
        state_dim = int(np.prod(env.state_space.shape))
        self.discrete: dict[str, bool] = {}
        self.act_dim: dict[str, int] = {}
        self.bounds: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for g in env.groups:
            space = env.group_action_space(g)
            if not isinstance(space, (Discrete, Box)):
                raise ValueError(f"MADDPG needs Discrete or Box actions; group {g!r} has {space}")
            self.discrete[g] = isinstance(space, spaces.Discrete)
            self.act_dim[g] = int(space.n) if isinstance(space, Discrete) else int(np.prod(space.shape))
            if isinstance(space, Box):
                low, high = space.low.astype(np.float32), space.high.astype(np.float32)
                check(
                    bool(np.isfinite(low).all() and np.isfinite(high).all()),
                    "env action space",
                    "a Box with finite bounds (MADDPG squashes its actions into them)",
                    space,
                )
                self.bounds[g] = (low, high)
        # The critics' input: the state, then every agent's action (one-hot if discrete), groups in env order.
        joint_dim = sum(len(ids) * self.act_dim[g] for g, ids in env.groups.items())
        actors, critics = nn.ModuleDict(), nn.ModuleDict()
        for g, ids in env.groups.items():
            obs_dim = int(np.prod(env.group_observation_space(g).shape))
            actors[g] = _WithId(obs_dim, self.act_dim[g], len(ids), cfg, out_gain=0.01)
            critics[g] = _WithId(state_dim + joint_dim, 1, len(ids), cfg, out_gain=1.0)
        self.online = nn.ModuleDict({"actors": actors, "critics": critics})
        self.target = copy.deepcopy(self.online).requires_grad_(False)
        self.actor_optimizer = torch.optim.Adam(actors.parameters(), lr=cfg.actor_lr, fused=True)
        self.critic_optimizer = torch.optim.Adam(critics.parameters(), lr=cfg.critic_lr, fused=True)
        self.extras_spec: dict[str, dict[str, tuple[int, ...]]] = {g: {} for g in env.groups}
        self.rng = np.random.default_rng(seed)  # exploration and replay sampling
        self.generator = torch.Generator().manual_seed(seed)  # Gumbel noise of the updates
        self.replay = TransitionReplay(cfg.buffer_size, cfg.n_step, cfg.gamma)
        self.grad_steps = 0

    # ------------------------------------------------------------------------------------------------ acting
    @torch.no_grad()
    def act(
        self, obs: dict[str, np.ndarray], state: np.ndarray | None, info: dict[str, Any], explore: bool = True
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, np.ndarray]]]:
        actors = cast("Mapping[str, _WithId]", self.online["actors"])  # a ModuleDict does not know its items' type
        actions = maddpg_act(actors, self.discrete, self.bounds, self.config.noise_std, obs, info, self.rng, explore)
        return actions, {g: {} for g in actions}

    def policy(self, seed: int | None = None) -> MADDPGPolicy:
        """The actors as they are now, copied: a weights-only policy that acts as this learner does."""
        online = cast("Mapping[str, _WithId]", self.online["actors"])  # a ModuleDict does not know its items' type
        actors = {g: copy.deepcopy(a).requires_grad_(False) for g, a in online.items()}
        net = {k: getattr(self.config, k) for k in NET_FIELDS}
        return MADDPGPolicy(self.spaces, actors, net, self.config.noise_std, seed)

    # ----------------------------------------------------------------------------------------------- learning
    def _policy(
        self, actors: nn.ModuleDict, g: str, obs: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The critic-ready action of every agent of group ``g`` (differentiable) and the pre-activations."""
        pre = actors[g](obs)
        if not self.discrete[g]:
            low, high = (torch.from_numpy(b) for b in self.bounds[g])
            return low + (high - low) * torch.sigmoid(pre), pre
        logits = pre if mask is None else pre.masked_fill(~mask, -1e9)
        u = torch.rand(logits.shape, generator=self.generator).clamp_(1e-10, 1.0 - 1e-7)
        soft = torch.softmax((logits - torch.log(-torch.log(u))) / self.config.temperature, dim=-1)
        hard = torch.zeros_like(soft).scatter_(-1, soft.argmax(-1, keepdim=True), 1.0)
        return hard + soft - soft.detach(), pre  # straight-through: one-hot forward, softmax gradient

    def _stored_action(self, g: str, actions: torch.Tensor) -> torch.Tensor:
        """Replay actions in the critics' format: one-hot if discrete."""
        if self.discrete[g]:
            return torch.nn.functional.one_hot(actions, self.act_dim[g]).float()
        return actions

    @staticmethod
    def _critic_in(state: torch.Tensor, joint: torch.Tensor, n_agents: int) -> torch.Tensor:
        """``(B, n_agents, state + joint)``; ``joint`` is ``(B, joint)`` (shared by all rows) or per row."""
        if joint.dim() == 2:
            joint = joint.unsqueeze(1).expand(-1, n_agents, -1)
        return torch.cat([state.unsqueeze(1).expand(-1, n_agents, -1), joint], dim=-1)

    def update(self, rollout: Rollout) -> dict[str, float]:
        cfg = self.config
        self.replay.insert(rollout)
        metrics = {"train/replay_size": float(len(self.replay))}
        if self.progress.env_steps < cfg.warmup_steps or len(self.replay) == 0:
            return metrics
        stats = []
        for _ in range(cfg.gradient_steps):
            stats.append(self._step(self.replay.sample(cfg.batch_size, self.rng)))
        critic, actor, q, gn_c, gn_a = torch.stack(stats).mean(0).tolist()
        return {
            **metrics,
            "loss/critic": critic,
            "loss/actor": actor,
            "loss/q": q,
            "loss/critic_grad_norm": gn_c,
            "loss/actor_grad_norm": gn_a,
        }

    def _step(self, batch: TransitionBatch) -> torch.Tensor:
        """One critic step, one actor step and the target update; returns the step's statistics."""
        cfg = self.config
        # ModuleDicts, as they are: their modules are only called here, which needs no item type
        actors, critics = cast(nn.ModuleDict, self.online["actors"]), cast(nn.ModuleDict, self.online["critics"])
        target_actors = cast(nn.ModuleDict, self.target["actors"])
        target_critics = cast(nn.ModuleDict, self.target["critics"])
        groups = list(self.groups)
        state, next_state = batch.state, batch.next_state
        if state is None or next_state is None:
            raise ValueError("MADDPG's critics read the global state, but the replay's batch has none")
        B = state.shape[0]
        stored = {g: self._stored_action(g, batch.groups[g].actions) for g in groups}
        joint = torch.cat([stored[g].reshape(B, -1) for g in groups], dim=-1)

        # critics: y_i = r_i + discount_i * Q'_i(s', mu'(o'))
        with torch.no_grad():
            next_joint = torch.cat(
                [
                    self._policy(target_actors, g, batch.groups[g].next_obs, batch.groups[g].next_mask)[0].reshape(
                        B, -1
                    )
                    for g in groups
                ],
                -1,
            )
        critic_loss = torch.zeros(())
        for g in groups:
            b, n = batch.groups[g], len(self.groups[g])
            with torch.no_grad():
                q_next = target_critics[g](self._critic_in(next_state, next_joint, n)).squeeze(-1)
                y = b.returns + b.discount * q_next
            q = critics[g](self._critic_in(state, joint, n)).squeeze(-1)
            active = b.active.float()
            critic_loss = critic_loss + ((q - y) ** 2 * active).sum() / active.sum().clamp(min=1.0)
        self.critic_optimizer.zero_grad()
        self.with_loss_terms("critic", critic_loss, batch).backward()
        gn_critic = clip_grad_norm(critics.parameters(), cfg.max_grad_norm)
        self.critic_optimizer.step()

        # actors: row i of group g replaces only agent i's stored action by mu_i(o_i)
        actor_loss, q_means = torch.zeros(()), []
        for g in groups:
            b, n, k = batch.groups[g], len(self.groups[g]), self.act_dim[g]
            own, pre = self._policy(actors, g, b.obs, b.mask)  # (B, n, k)
            eye = torch.eye(n, dtype=torch.bool).view(1, n, n, 1)
            mixed = torch.where(eye, own.unsqueeze(1), stored[g].unsqueeze(1))  # (B, row, agent, k)
            parts = [
                mixed.reshape(B, n, n * k) if h == g else stored[h].reshape(B, 1, -1).expand(B, n, -1) for h in groups
            ]
            q = critics[g](self._critic_in(state, torch.cat(parts, -1), n)).squeeze(-1)
            active = b.active.float()
            count = active.sum().clamp(min=1.0)
            actor_loss = actor_loss - (q * active).sum() / count
            actor_loss = actor_loss + cfg.action_reg * ((pre**2).mean(-1) * active).sum() / count
            q_means.append((q.detach() * active).sum() / count)
        self.actor_optimizer.zero_grad()
        self.with_loss_terms("actor", actor_loss, batch).backward(inputs=list(actors.parameters()))
        gn_actor = clip_grad_norm(actors.parameters(), cfg.max_grad_norm)
        self.actor_optimizer.step()

        with torch.no_grad():  # Polyak averaging of the targets
            for p_target, p in zip(self.target.parameters(), self.online.parameters()):
                p_target.lerp_(p, cfg.tau)
        self.grad_steps += 1
        return torch.stack(
            [critic_loss.detach(), actor_loss.detach(), torch.stack(q_means).mean(), gn_critic, gn_actor]
        )

    # -------------------------------------------------------------------------------------------- checkpoints
    def state(self) -> dict[str, Any]:
        return {
            "model": self.state_dict(),
            "actor_optimizer": self.actor_optimizer.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "rng": self.rng.bit_generator.state,
            "generator": self.generator.get_state(),
            "grad_steps": self.grad_steps,
            "replay": self.replay.state_dict(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.load_state_dict(state["model"])
        self.actor_optimizer.load_state_dict(state["actor_optimizer"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        self.rng.bit_generator.state = state["rng"]
        self.generator.set_state(state["generator"])
        self.grad_steps = int(state["grad_steps"])
        self.replay.load_state_dict(state["replay"])
        self.replay.cut()  # a resumed run resets every copy: no episode continues across the checkpoint


@register_policy_kind("maddpg")
class MADDPGPolicy(PolicyBase):
    """The actors of an MADDPG learner, weights only: deterministic (``Box``: squashed into the bounds) or the
    argmax of the logits (``Discrete``) by default; exploring as the learner does (``noise_std``, Gumbel-max)."""

    def __init__(
        self,
        spaces: PolicySpaces,
        actors: dict[str, _WithId],
        net: dict[str, Any],
        noise_std: float,
        seed: int | None = None,
    ) -> None:
        self.spaces, self.actors, self.net, self.noise_std = spaces, actors, dict(net), float(noise_std)
        self.discrete = {g: isinstance(s, Discrete) for g, s in spaces.action.items()}
        self.bounds = {
            g: (s.low.astype(np.float32), s.high.astype(np.float32))
            for g, s in spaces.action.items()
            if isinstance(s, Box)
        }
        self.extras_spec: dict[str, dict[str, tuple[int, ...]]] = {g: {} for g in spaces.groups}
        self.rng = np.random.default_rng(seed)  # exploration

    def act(
        self, obs: Obs, state: np.ndarray | None = None, info: Info | None = None, explore: bool = False
    ) -> tuple[Actions, Extras]:
        actions = maddpg_act(
            self.actors, self.discrete, self.bounds, self.noise_std, obs, info or {}, self.rng, explore
        )
        return actions, {g: {} for g in actions}

    def policy_state(self) -> dict[str, Any]:
        net = {**self.net, "hidden": list(self.net["hidden"])}
        return {
            **self.header(),
            "net": net,
            "noise_std": self.noise_std,
            "actors": {g: weights_of(a) for g, a in self.actors.items()},
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], seed: int | None = None) -> MADDPGPolicy:
        given = PolicySpaces.from_data(state["spaces"])
        net = {**state["net"], "hidden": tuple(state["net"]["hidden"])}
        cfg = MADDPGConfig(**net)
        actors = {}
        for g, ids in given.groups.items():
            space = given.action[g]
            act_dim = int(space.n) if isinstance(space, Discrete) else int(np.prod(space.shape or ()))
            obs_dim = int(np.prod(given.observation[g].shape or ()))
            actors[g] = build_module(partial(_WithId, obs_dim, act_dim, len(ids), cfg, 0.01), state["actors"][g])
        return cls(given, actors, net, state["noise_std"], seed)
