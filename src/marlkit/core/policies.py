"""Policies as data: the policy-kind registry, spaces written as plain data, and what every policy shares.

A policy's ``policy_state()`` starts with a header — ``{"format": 1, "kind": ..., "spaces": ...}`` — followed by
what its kind needs (network sizes, flags, weights). ``policy_from_state`` rebuilds it by looking the kind up in
this registry and nowhere else: a state names a kind, never a module or class, so loading one runs no code the
file chose. Each policy class registers its kind where it is defined (``@register_policy_kind("q")``); marlkit's
own classes live in the modules of ``BUILTIN_POLICY_MODULES``, imported on first use (a fixed list declared here,
so this module itself imports nothing above it).

``PolicySpaces`` is what a policy knows of the env: its groups and agent ids and each group's observation and
action space (and the global state space), written as plain data — ``Discrete`` as ``n``/``start``, ``Box`` as
``low``/``high``/``shape``/``dtype`` — so a policy rebuilt in another process can check it is given the env it was
trained on and can map a PettingZoo ``{agent: obs}`` dict onto its groups.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np
from gymnasium import spaces as gym_spaces

from marlkit.errors import did_you_mean

if TYPE_CHECKING:
    from torch import nn

    from marlkit.core.contracts import Actions, Extras, ExtrasSpec, Obs, Policy

#: Version of the policy-state layout; ``policy_from_state`` refuses others.
POLICY_FORMAT = 1
#: Modules whose import registers marlkit's own policy kinds.
BUILTIN_POLICY_MODULES = ("marlkit.algorithms.policy_nets", "marlkit.algorithms.dqn", "marlkit.algorithms.maddpg",
                          "marlkit.algorithms.tabular", "marlkit.algorithms.teams")

_KINDS: dict[str, Any] = {}  # kind -> policy class (with ``from_state(state, seed)``)
_builtins_loaded = False
P = TypeVar("P", bound=type[Any])


def register_policy_kind(kind: str) -> Callable[[P], P]:
    """Class decorator: ``policy_from_state`` rebuilds states of ``kind`` with ``cls.from_state(state, seed)``."""
    def register(cls: P) -> P:
        if kind in _KINDS and _KINDS[kind] is not cls:
            raise ValueError(f"policy kind {kind!r} is already registered by {_KINDS[kind].__qualname__}")
        cls.kind = kind
        _KINDS[kind] = cls
        return cls
    return register


def _load_builtins() -> None:
    global _builtins_loaded
    if not _builtins_loaded:
        for module in BUILTIN_POLICY_MODULES:
            importlib.import_module(module)
        _builtins_loaded = True


def policy_kinds() -> list[str]:
    """Every registered policy kind, sorted."""
    _load_builtins()
    return sorted(_KINDS)


def policy_from_state(state: Mapping[str, Any], seed: int | None = None) -> Policy:
    """Rebuild a policy from its ``policy_state()``; ``seed`` seeds its sampling (``explore=True``, ε, random
    members). Only registered kinds are built."""
    if not isinstance(state, Mapping) or "kind" not in state:
        keys = f" with keys {sorted(state)}" if isinstance(state, Mapping) else ""
        raise ValueError(f"not a policy state: expected a dict with a 'kind' (from Policy.policy_state()), got "
                         f"{type(state).__name__}{keys}")
    if state.get("format") != POLICY_FORMAT:
        raise ValueError(f"policy state format {state.get('format')!r} is not supported (this marlkit reads format "
                         f"{POLICY_FORMAT})")
    kind = state["kind"]
    _load_builtins()
    if kind not in _KINDS:
        raise ValueError(f"unknown policy kind {kind!r}{did_you_mean(str(kind), _KINDS)} (registered kinds: "
                         f"{', '.join(sorted(_KINDS))}); a policy class registers its kind with "
                         f"@register_policy_kind, and its module must be imported first")
    return _KINDS[kind].from_state(state, seed)


# ------------------------------------------------------------------------------------------ spaces as plain data
def space_to_data(space: gym_spaces.Space) -> dict[str, Any]:
    """A Gymnasium space as plain data (``Discrete``, ``Box``, ``MultiDiscrete``, ``MultiBinary``)."""
    if isinstance(space, gym_spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, gym_spaces.Box):
        return {"type": "Box", "low": space.low.tolist(), "high": space.high.tolist(), "shape": list(space.shape),
                "dtype": space.dtype.name}
    if isinstance(space, gym_spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": space.nvec.tolist(), "start": space.start.tolist(),
                "dtype": space.dtype.name}
    if isinstance(space, gym_spaces.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    raise TypeError(f"cannot write the space {space} as plain data (supported: Discrete, Box, MultiDiscrete, "
                    f"MultiBinary)")


def space_from_data(data: Mapping[str, Any]) -> gym_spaces.Space:
    """The space ``space_to_data`` wrote."""
    kind = data.get("type")
    if kind == "Discrete":
        return gym_spaces.Discrete(int(data["n"]), start=int(data["start"]))
    if kind == "Box":
        dtype = np.dtype(data["dtype"])
        return gym_spaces.Box(np.asarray(data["low"], dtype), np.asarray(data["high"], dtype), tuple(data["shape"]),
                              dtype)
    if kind == "MultiDiscrete":
        return gym_spaces.MultiDiscrete(np.asarray(data["nvec"]), np.dtype(data["dtype"]),
                                        start=np.asarray(data["start"]))
    if kind == "MultiBinary":
        n = data["n"]
        return gym_spaces.MultiBinary(n if isinstance(n, int) else list(n))
    raise ValueError(f"unknown space type {kind!r} in a policy state (known: Discrete, Box, MultiDiscrete, "
                     f"MultiBinary)")


@dataclass(frozen=True)
class PolicySpaces:
    """The groups, agent ids and spaces a policy acts for (group order is the env's)."""

    groups: dict[str, tuple[str, ...]]
    observation: dict[str, gym_spaces.Space]
    """Group -> the observation space of one agent."""
    action: dict[str, gym_spaces.Space]
    """Group -> the action space of one agent."""
    state: gym_spaces.Space | None = None
    """The env's global state space (what a policy with ``uses_state`` reads)."""

    @classmethod
    def from_env(cls, env: Any) -> PolicySpaces:
        """Of a batched env, or of anything with its ``groups``, ``group_*_space`` and ``state_space``."""
        groups = {g: tuple(ids) for g, ids in env.groups.items()}
        return cls(groups, {g: env.group_observation_space(g) for g in groups},
                   {g: env.group_action_space(g) for g in groups}, env.state_space)

    @property
    def agents(self) -> tuple[str, ...]:
        return tuple(a for ids in self.groups.values() for a in ids)

    def group_observation_space(self, group: str) -> gym_spaces.Space:
        return self.observation[group]

    def group_action_space(self, group: str) -> gym_spaces.Space:
        return self.action[group]

    def difference(self, other: PolicySpaces) -> str | None:
        """How ``other`` differs from these spaces (the first difference, in words), or None when they are equal."""
        if self.groups != other.groups:
            return f"its groups are {_groups(self.groups)}, these are {_groups(other.groups)}"
        for what in ("observation", "action"):
            for g in self.groups:
                if getattr(self, what)[g] != getattr(other, what)[g]:
                    return (f"the {what} space of group {g!r} is {getattr(self, what)[g]}, here it is "
                            f"{getattr(other, what)[g]}")
        if self.state != other.state:
            return f"its state space is {self.state}, here it is {other.state}"
        return None

    def to_data(self) -> dict[str, Any]:
        return {"groups": {g: list(ids) for g, ids in self.groups.items()},
                "observation": {g: space_to_data(s) for g, s in self.observation.items()},
                "action": {g: space_to_data(s) for g, s in self.action.items()},
                "state": None if self.state is None else space_to_data(self.state)}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> PolicySpaces:
        return cls({g: tuple(ids) for g, ids in data["groups"].items()},
                   {g: space_from_data(s) for g, s in data["observation"].items()},
                   {g: space_from_data(s) for g, s in data["action"].items()},
                   None if data.get("state") is None else space_from_data(data["state"]))


def _groups(groups: Mapping[str, tuple[str, ...]]) -> str:
    return ", ".join(f"{g}: {list(ids)}" for g, ids in groups.items())


# ---------------------------------------------------------------------------------------- what policies share
class PolicyBase:
    """What every policy shares: its header in ``policy_state()``, ``reset`` and ``act_pettingzoo``.

    A subclass sets ``spaces`` and ``extras_spec`` and writes ``act``, ``policy_state`` (starting from
    ``self.header()``) and ``from_state``."""

    kind: ClassVar[str]
    spaces: PolicySpaces
    extras_spec: ExtrasSpec
    #: Acting never reads ``state()`` for the policies here (the centralised parts of a learner are not copied).
    uses_state: bool = False
    _new_episode: bool = True

    @property
    def groups(self) -> dict[str, tuple[str, ...]]:
        return self.spaces.groups

    def act(self, obs: Obs, state: np.ndarray | None = None, info: dict[str, Any] | None = None,
            explore: bool = False) -> tuple[Actions, Extras]:
        raise NotImplementedError

    def header(self) -> dict[str, Any]:
        """The start of every ``policy_state()``."""
        return {"format": POLICY_FORMAT, "kind": self.kind, "spaces": self.spaces.to_data()}

    def reset(self) -> None:
        self._new_episode = True

    def act_pettingzoo(self, obs: Mapping[str, Any], infos: Mapping[str, Any] | None = None,
                       state: np.ndarray | None = None, explore: bool = False) -> dict[str, Any]:
        """Act for one copy of a PettingZoo ``ParallelEnv``: ``obs`` is ``{agent: observation}`` of the live agents
        (an observation may be a dict with ``"observation"`` and ``"action_mask"``), ``infos`` the step's
        ``{agent: info}`` (an ``"action_mask"`` there is honoured too). Returns ``{agent: action}`` for those agents
        (``Discrete``: a Python ``int``). Agents missing from ``obs`` (done) are given a zero observation, as
        marlkit's envs do, and get no action. Call ``reset()`` when the env was reset."""
        infos = infos or {}
        unknown = [a for a in obs if a not in self.spaces.agents]
        if unknown:
            raise KeyError(f"agent(s) {unknown} are not agents of this policy (its agents: "
                           f"{list(self.spaces.agents)})")
        batch: Obs = {}
        masks: dict[str, np.ndarray] = {}
        for g, ids in self.spaces.groups.items():
            space = self.spaces.observation[g]
            rows = np.zeros((1, len(ids), *(space.shape or ())), dtype=space.dtype)
            mask = None
            for i, a in enumerate(ids):
                if a not in obs:
                    continue
                o, m = obs[a], (infos.get(a) or {}).get("action_mask")
                if isinstance(o, Mapping):
                    o, m = o["observation"], o.get("action_mask", m)
                rows[0, i] = o
                if m is not None:
                    if mask is None:
                        action_space = self.spaces.action[g]
                        assert isinstance(action_space, gym_spaces.Discrete), "masks go with Discrete actions"
                        mask = np.ones((1, len(ids), int(action_space.n)), dtype=np.bool_)
                    mask[0, i] = np.asarray(m, dtype=bool)
            batch[g] = rows
            if mask is not None:
                masks[g] = mask
        info: dict[str, Any] = {}
        if masks:
            info["action_mask"] = masks
        if not self._new_episode:
            info["episode_done"] = np.zeros(1, dtype=bool)
        self._new_episode = False
        actions, _ = self.act(batch, state, info, explore=explore)
        out: dict[str, Any] = {}
        for g, ids in self.spaces.groups.items():
            discrete = isinstance(self.spaces.action[g], gym_spaces.Discrete)
            for i, a in enumerate(ids):
                if a in obs:
                    out[a] = int(actions[g][0, i]) if discrete else np.asarray(actions[g][0, i])
        return out


def build_module(factory: Callable[[], nn.Module], weights: Mapping[str, Any]) -> nn.Module:
    """``factory()`` loaded with ``weights`` and frozen for acting. The factory's random initialisation runs on a
    forked generator: rebuilding a policy never moves the global torch RNG (and so never a training run)."""
    import torch

    with torch.random.fork_rng(devices=[]):
        module = factory()
    module.load_state_dict(dict(weights))
    return module.requires_grad_(False)


def weights_of(module: nn.Module) -> dict[str, Any]:
    """A module's parameters and buffers as detached copies (plain tensors for a policy state)."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}
