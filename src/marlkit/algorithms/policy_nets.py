"""The actor and critic of one group of agents, and the team of them, shared by the on-policy actor-critics
(``ppo.py``, ``a2c.py``): they differ only in how they learn (``update``), so building the networks, acting and
checkpointing live here once (``ActorCriticTeam``).

Categorical policies for ``Discrete`` actions (masked logits), diagonal Gaussians with a state-independent
log-std for ``Box`` actions; agents of a group share parameters (told apart by a one-hot id) or have their own,
evaluated in one batched op either way. Acting runs in NumPy (``MLP.forward_numpy``), in one implementation
(``GroupActing.act_numpy`` and ``act_groups``) called both by the learner and by its weights-only snapshot
(``policy()``: an ``ActorCriticPolicy`` holding a copy of the actors, nothing of the critics).

``cfg`` is any config with the fields ``centralised_critic``, ``share_parameters``, ``agent_id``, ``hidden``,
``activation`` and ``init_log_std`` (``PPOConfig``, ``A2CConfig``).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, cast, overload

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import nn

from marlkit.core import Capabilities, LearnerBase, PolicyBase, PolicySpaces, Progress, register_policy_kind
from marlkit.core.contracts import ActionDistribution, Actions, Extras, Info, Obs
from marlkit.core.policies import build_module, weights_of
from marlkit.envs.base import ActionSpace, MultiAgentEnv
from marlkit.nn import MLP, Linear, ModuleMap, RunningNorm, append_agent_ids
from marlkit.ops.schedules import linear

if TYPE_CHECKING:
    from _typeshed import SupportsItems


class GroupActing:
    """Acting of one group's actor, shared by the learner's ``GroupNets`` and the snapshot's ``GroupActor``: both
    have ``actor`` (an ``MLP``), ``ids``, ``discrete`` and, for ``Box`` actions, ``log_std``, ``low_np`` and
    ``high_np``."""

    actor: MLP
    ids: bool
    discrete: bool
    log_std: torch.Tensor
    low_np: np.ndarray
    high_np: np.ndarray

    def params_numpy(self, obs: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        """The actor's output for every agent: masked logits (``Discrete``) or the Gaussian means (``Box``)."""
        if self.ids:
            obs = append_agent_ids(obs)
        params = self.actor.forward_numpy(obs)
        if self.discrete and mask is not None:
            params = np.where(mask, params, np.float32(-1e9))
        return params

    def distribution_numpy(self, obs: np.ndarray, mask: np.ndarray | None) -> ActionDistribution:
        """The distribution every agent samples its action from (a Gaussian's before clipping to the bounds)."""
        params = self.params_numpy(obs, mask)
        if self.discrete:
            z = np.exp(params - params.max(-1, keepdims=True))
            return ActionDistribution(probs=z / z.sum(-1, keepdims=True))
        std = np.exp(self.log_std.detach().numpy())
        return ActionDistribution(mean=params, std=np.broadcast_to(std, params.shape).copy())

    def act_numpy(
        self, obs: np.ndarray, mask: np.ndarray | None, rng: np.random.Generator, explore: bool
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Sample (or pick greedily) every agent's action; returns the env action and the extras to store."""
        params = self.params_numpy(obs, mask)
        if self.discrete:
            if explore:  # Gumbel-max: argmax(logits + Gumbel noise) is a sample of softmax(logits)
                a = (params + rng.gumbel(size=params.shape)).argmax(-1)
            else:
                a = params.argmax(-1)
            z = params - params.max(-1, keepdims=True)
            flat = z.reshape(-1, z.shape[-1])
            taken = flat[np.arange(flat.shape[0]), a.reshape(-1)].reshape(a.shape)  # take_along_axis, 4x cheaper
            logp = taken - np.log(np.exp(z).sum(-1))
            return a, {"logp": logp}
        log_std = self.log_std.detach().numpy()
        std = np.exp(log_std)
        a = params + std * rng.standard_normal(params.shape, dtype=np.float32) if explore else params
        logp = (-0.5 * ((a - params) / std) ** 2 - log_std - np.float32(0.5 * np.log(2 * np.pi))).sum(-1)
        return np.clip(a, self.low_np, self.high_np), {"logp": logp, "raw_action": a}


def act_groups(
    nets: SupportsItems[str, GroupActing],
    extras_spec: dict[str, dict[str, tuple[int, ...]]],
    obs: dict[str, np.ndarray],
    info: dict[str, Any],
    rng: np.random.Generator,
    explore: bool,
) -> tuple[dict[str, np.ndarray], dict[str, dict[str, np.ndarray]]]:
    """Every group's actions and the extras ``extras_spec`` names. Acting runs the actor in NumPy on the
    parameters' own memory (``MLP.forward_numpy``): on a few dozen agents per step torch's per-op dispatch costs
    more than the arithmetic. The update recomputes log-probabilities in torch from the same parameters (PPO's
    ratio starts at 1, to float32 rounding)."""
    masks = info.get("action_mask")
    actions, extras = {}, {}
    for g, net in nets.items():  # a loop over groups only: each group acts in one batched NumPy pass
        actions[g], out = net.act_numpy(obs[g], None if masks is None else masks[g], rng, explore)
        extras[g] = {k: out[k] for k in extras_spec[g]}
    return actions, extras


class GroupNets(GroupActing, nn.Module):
    """Actor and critic of one group (for PPO and A2C)."""

    def __init__(self, obs_dim: int, critic_dim: int, n_agents: int, action_space: ActionSpace, cfg: Any) -> None:
        super().__init__()
        self.discrete = isinstance(action_space, spaces.Discrete)
        self.n_agents = n_agents
        self.ids = cfg.agent_id and cfg.share_parameters and n_agents > 1
        # A centralised critic shared by the agents and not told which agent asks sees the same input for all of them:
        # it then reads one state per copy and its value is broadcast over the agents (same numbers, 1/n the work).
        self.value_per_copy = cfg.centralised_critic and cfg.share_parameters and not self.ids
        n_models = None if cfg.share_parameters else n_agents
        extra = n_agents if self.ids else 0
        out = self.act_dim = (
            int(action_space.n) if isinstance(action_space, spaces.Discrete) else int(np.prod(action_space.shape))
        )
        self.actor = MLP(obs_dim + extra, out, cfg.hidden, n_models, cfg.activation, out_gain=0.01)
        self.critic = MLP(critic_dim + extra, 1, cfg.hidden, n_models, cfg.activation, out_gain=1.0)
        if not self.discrete:  # one log-std per agent when agents have their own networks
            shape = (out,) if cfg.share_parameters else (n_agents, out)
            self.log_std = nn.Parameter(torch.full(shape, cfg.init_log_std))
        if isinstance(action_space, spaces.Box):
            self.low_np = action_space.low.astype(np.float32)
            self.high_np = action_space.high.astype(np.float32)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        # Checkpoints written before agents with their own networks had a log-std each hold one ``(act_dim,)``
        # vector: every agent starts from it.
        key = prefix + "log_std"
        old = state_dict.get(key)
        if old is not None and not self.discrete and self.log_std.dim() == 2 and old.shape == self.log_std.shape[1:]:
            state_dict[key] = old.expand_as(self.log_std).clone()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def with_id(self, x: torch.Tensor) -> torch.Tensor:
        """Append the one-hot agent index to inputs shaped ``(..., n_agents, d)``."""
        if not self.ids:
            return x
        return append_agent_ids(x)

    def dist_params(self, obs: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        out = self.actor(self.with_id(obs))
        if self.discrete and mask is not None:
            out = out.masked_fill(~mask, -1e9)
        return out

    @overload
    def log_prob_entropy(
        self, params: torch.Tensor, actions: torch.Tensor, entropy: Literal[True] = ...
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    @overload
    def log_prob_entropy(
        self, params: torch.Tensor, actions: torch.Tensor, entropy: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]: ...

    def log_prob_entropy(
        self, params: torch.Tensor, actions: torch.Tensor, entropy: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Log-probability of ``actions`` and the policy's entropy (``None`` unless ``entropy``; acting skips it)."""
        if self.discrete:
            logp_all = F.log_softmax(params, dim=-1)
            logp = logp_all.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
            return logp, -(logp_all.exp() * logp_all).sum(-1) if entropy else None
        std = self.log_std.exp()
        logp = (-0.5 * ((actions - params) / std) ** 2 - self.log_std - 0.5 * np.log(2 * np.pi)).sum(-1)
        return logp, (0.5 + 0.5 * np.log(2 * np.pi) + self.log_std).sum(-1).expand(logp.shape) if entropy else None

    def value(self, critic_in: torch.Tensor) -> torch.Tensor:
        """V of every agent, ``(..., n_agents)``, from ``(..., n_agents, d)`` (``(..., d)`` if ``value_per_copy``)."""
        v = self.critic(self.with_id(critic_in)).squeeze(-1)
        return v.unsqueeze(-1).expand(*v.shape, self.n_agents) if self.value_per_copy else v


class ActorCriticTeam(LearnerBase, nn.Module):
    """Every group's ``GroupNets`` and value normaliser, with batched acting, the critic's inputs, learning-rate
    annealing, snapshots and checkpoints. Subclasses set ``extras_spec`` (what acting stores) and ``optimizer`` and
    write ``update``, passing the loss through ``with_loss_terms("loss", ...)`` before backward; ``cfg`` needs
    ``centralised_critic``, ``lr`` and ``anneal_lr`` besides ``GroupNets``' fields."""

    optimizer: torch.optim.Optimizer  # set by the subclass

    def __init__(self, env: MultiAgentEnv, config: Any, seed: int = 0) -> None:
        super().__init__()
        self.config = cfg = config
        self.groups = dict(env.groups)
        self.spaces = PolicySpaces.from_env(env)
        self.capabilities = Capabilities("rollout", uses_state=cfg.centralised_critic, losses=("loss",))
        state_dim = int(np.prod(env.state_space.shape))
        self.nets: ModuleMap[GroupNets] = ModuleMap()
        self.norms: ModuleMap[RunningNorm] = ModuleMap()
        for g, ids in env.groups.items():
            obs_dim = int(np.prod(env.group_observation_space(g).shape))
            critic_dim = state_dim if cfg.centralised_critic else obs_dim
            self.nets[g] = GroupNets(obs_dim, critic_dim, len(ids), env.group_action_space(g), cfg)
            self.norms[g] = RunningNorm()
        self.extras_spec: dict[str, dict[str, tuple[int, ...]]] = {g: {} for g in self.nets}
        self.rng = np.random.default_rng(seed)  # action sampling

    def critic_input(self, g: str, obs: torch.Tensor, state: torch.Tensor | None) -> torch.Tensor:
        """The critic's input for every agent: its observation (independent critics) or the global state
        (centralised; once per copy if every agent's critic would see the same, see ``GroupNets.value_per_copy``)."""
        if not self.config.centralised_critic:
            return obs
        if state is None:
            raise TypeError(
                f"the centralised critic of group {g!r} reads the global state, and the batch has none "
                f"(this learner declares capabilities.uses_state: collect with the state)"
            )
        if self.nets[g].value_per_copy:
            return state
        return state.unsqueeze(-2).expand(*state.shape[:-1], self.nets[g].n_agents, state.shape[-1])

    @torch.no_grad()
    def act(
        self, obs: dict[str, np.ndarray], state: np.ndarray | None, info: dict[str, Any], explore: bool = True
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, np.ndarray]]]:
        return act_groups(self.nets, self.extras_spec, obs, info, self.rng, explore)

    def policy(self, seed: int | None = None) -> ActorCriticPolicy:
        """The actors as they are now, copied: a weights-only policy that acts as this learner does."""
        return ActorCriticPolicy(
            self.spaces, {g: GroupActor.copy_of(net) for g, net in self.nets.items()}, self.extras_spec, seed
        )

    def set_progress(self, progress: Progress) -> None:
        """With ``anneal_lr``, the learning rate of the coming update falls linearly from ``lr`` (nothing trained
        yet) to 0 (the whole budget trained); without a budget it stays ``lr``."""
        super().set_progress(progress)
        if self.config.anneal_lr and progress.total_steps:
            factor = linear(1.0, 0.0, progress.total_steps)(progress.trained_steps)
            for group in self.optimizer.param_groups:
                group["lr"] = self.config.lr * factor

    def state(self) -> dict[str, Any]:
        return {
            "model": self.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": self.rng.bit_generator.state,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.rng.bit_generator.state = state["rng"]


# -------------------------------------------------------------------------------------------- the snapshot
def mlp_spec(mlp: MLP) -> dict[str, Any]:
    """The sizes an ``MLP`` is built from, as plain data."""
    layers = cast("Sequence[Linear]", mlp.layers)  # a ModuleList does not know its items' type
    n_models = layers[0].n_models
    return {
        "in_dim": int(mlp.in_dim),
        "out_dim": int(mlp.out_dim),
        "hidden": [int(layer.weight.shape[-1]) for layer in layers[:-1]],
        "n_models": None if n_models is None else int(n_models),
        "activation": mlp.activation_name,
    }


class GroupActor(GroupActing, nn.Module):
    """The acting half of a group's ``GroupNets``: its actor and, for ``Box`` actions, log-std and bounds."""

    def __init__(
        self, actor: MLP, ids: bool, log_std: torch.Tensor | None, bounds: tuple[np.ndarray, np.ndarray] | None
    ) -> None:
        super().__init__()
        self.actor, self.ids, self.discrete = actor, ids, log_std is None
        if log_std is not None:
            assert bounds is not None, "Box actions come with their bounds"
            self.log_std = nn.Parameter(log_std, requires_grad=False)
            self.low_np, self.high_np = bounds

    @classmethod
    def copy_of(cls, net: GroupActing) -> GroupActor:
        """A deep copy of ``net``'s acting part (later updates of ``net`` do not reach it)."""
        actor = copy.deepcopy(net.actor).requires_grad_(False)
        if net.discrete:
            return cls(actor, net.ids, None, None)
        return cls(actor, net.ids, net.log_std.detach().clone(), (net.low_np.copy(), net.high_np.copy()))

    def policy_state(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mlp": mlp_spec(self.actor), "ids": self.ids, "weights": weights_of(self.actor)}
        if not self.discrete:
            out.update(log_std=self.log_std.detach().clone(), low=self.low_np.tolist(), high=self.high_np.tolist())
        return out

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> GroupActor:
        spec = dict(state["mlp"])
        actor = build_module(
            partial(MLP, spec["in_dim"], spec["out_dim"], tuple(spec["hidden"]), spec["n_models"], spec["activation"]),
            state["weights"],
        )
        if "log_std" not in state:
            return cls(actor, bool(state["ids"]), None, None)
        bounds = (np.asarray(state["low"], np.float32), np.asarray(state["high"], np.float32))
        return cls(actor, bool(state["ids"]), state["log_std"].clone(), bounds)


@register_policy_kind("actor_critic")
class ActorCriticPolicy(PolicyBase):
    """The actors of a PPO or A2C learner (categorical or Gaussian), weights only; acts as the learner does and
    returns the same extras (``extras_spec``), so it can collect for that learner in another process."""

    def __init__(
        self,
        spaces: PolicySpaces,
        actors: dict[str, GroupActor],
        extras_spec: dict[str, dict[str, tuple[int, ...]]],
        seed: int | None = None,
    ) -> None:
        self.spaces, self.actors = spaces, actors
        self.extras_spec = {g: dict(spec) for g, spec in extras_spec.items()}
        self.rng = np.random.default_rng(seed)  # sampling when explore

    def act(
        self, obs: Obs, state: np.ndarray | None = None, info: Info | None = None, explore: bool = False
    ) -> tuple[Actions, Extras]:
        return act_groups(self.actors, self.extras_spec, obs, info or {}, self.rng, explore)

    def action_distributions(self, obs: Obs, info: Info | None = None) -> dict[str, ActionDistribution]:
        """Group -> the distribution each agent samples from (``act(..., explore=True)``) on ``obs``, for the groups
        in ``obs``."""
        masks = (info or {}).get("action_mask") or {}
        return {g: self.actors[g].distribution_numpy(o, masks.get(g)) for g, o in obs.items()}

    def policy_state(self) -> dict[str, Any]:
        extras = {g: {k: list(v) for k, v in e.items()} for g, e in self.extras_spec.items()}
        return {**self.header(), "extras_spec": extras, "actors": {g: a.policy_state() for g, a in self.actors.items()}}

    @classmethod
    def from_state(cls, state: dict[str, Any], seed: int | None = None) -> ActorCriticPolicy:
        extras = {g: {k: tuple(v) for k, v in e.items()} for g, e in state["extras_spec"].items()}
        return cls(
            PolicySpaces.from_data(state["spaces"]),
            {g: GroupActor.from_state(a) for g, a in state["actors"].items()},
            extras,
            seed,
        )
