"""Policies as data: the policy-kind registry and what every policy shares.

A policy's ``policy_state()`` starts with a header — ``{"format": 1, "kind": ..., "spaces": ...}`` (the spaces
as ``marlkit.core.spaces`` writes them) — followed by what its kind needs (network sizes, flags, weights).
``policy_from_state`` rebuilds it by looking the kind up in this registry and nowhere else: a state names a kind,
never a module or class, so loading one runs no code the file chose. Each policy class registers its kind where it
is defined (``@register_policy_kind("q")``); marlkit's own classes live in the modules of
``BUILTIN_POLICY_MODULES``, imported on first use (a fixed list declared here, so this module itself imports
nothing above it).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np
from gymnasium import spaces as gym_spaces

from marlkit.core.errors import did_you_mean
from marlkit.core.spaces import PolicySpaces

if TYPE_CHECKING:
    from torch import nn

    from marlkit.core.contracts import Actions, Extras, ExtrasSpec, Obs, Policy

#: Version of the policy-state layout; ``policy_from_state`` refuses others.
POLICY_FORMAT = 1
#: Modules whose import registers marlkit's own policy kinds.
BUILTIN_POLICY_MODULES = (
    "marlkit.algorithms.policy_nets",
    "marlkit.algorithms.dqn",
    "marlkit.algorithms.maddpg",
    "marlkit.algorithms.tabular",
    "marlkit.algorithms.team_policies",
)

_KINDS: dict[str, Any] = {}  # kind -> policy class (with ``from_state(state, seed)``)
_builtins_loaded = False
P = TypeVar("P", bound=type[Any])
M = TypeVar("M", bound="nn.Module")


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
        raise ValueError(
            f"not a policy state: expected a dict with a 'kind' (from Policy.policy_state()), got "
            f"{type(state).__name__}{keys}"
        )
    if state.get("format") != POLICY_FORMAT:
        raise ValueError(
            f"policy state format {state.get('format')!r} is not supported (this marlkit reads format {POLICY_FORMAT})"
        )
    kind = state["kind"]
    _load_builtins()
    if kind not in _KINDS:
        raise ValueError(
            f"unknown policy kind {kind!r}{did_you_mean(str(kind), _KINDS)} (registered kinds: "
            f"{', '.join(sorted(_KINDS))}); a policy class registers its kind with "
            f"@register_policy_kind, and its module must be imported first"
        )
    policy: Policy = _KINDS[kind].from_state(state, seed)
    return policy


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

    def act(
        self, obs: Obs, state: np.ndarray | None = None, info: dict[str, Any] | None = None, explore: bool = False
    ) -> tuple[Actions, Extras]:
        raise NotImplementedError

    def header(self) -> dict[str, Any]:
        """The start of every ``policy_state()``."""
        return {"format": POLICY_FORMAT, "kind": self.kind, "spaces": self.spaces.to_data()}

    def reset(self) -> None:
        self._new_episode = True

    def act_pettingzoo(
        self,
        obs: Mapping[str, Any],
        infos: Mapping[str, Any] | None = None,
        state: np.ndarray | None = None,
        explore: bool = False,
    ) -> dict[str, Any]:
        """Act for one copy of a PettingZoo ``ParallelEnv``: ``obs`` is ``{agent: observation}`` of the live agents
        (an observation may be a dict with ``"observation"`` and ``"action_mask"``), ``infos`` the step's
        ``{agent: info}`` (an ``"action_mask"`` there is honoured too). Returns ``{agent: action}`` for those agents
        (``Discrete``: a Python ``int``). Agents missing from ``obs`` (done) are given a zero observation, as
        marlkit's envs do, and get no action. Call ``reset()`` when the env was reset."""
        infos = infos or {}
        unknown = [a for a in obs if a not in self.spaces.agents]
        if unknown:
            raise KeyError(f"agent(s) {unknown} are not agents of this policy (its agents: {list(self.spaces.agents)})")
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


def build_module(factory: Callable[[], M], weights: Mapping[str, Any]) -> M:
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
