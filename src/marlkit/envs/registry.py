"""The one registry of environments: versioned id -> constructor.

Ids carry a version (``spread-v0``); bump it when dynamics or rewards change. Constructors are named as
``"module:attribute"`` strings and imported on first use, so ``import marlkit`` stays light.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

from marlkit.envs.base import MultiAgentEnv
from marlkit.errors import did_you_mean


@dataclass(frozen=True)
class EnvSpec:
    """How to build one registered environment."""

    id: str
    entry_point: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def load(self) -> Callable[..., MultiAgentEnv]:
        module, _, attr = self.entry_point.partition(":")
        return getattr(importlib.import_module(module), attr)


_REGISTRY: dict[str, EnvSpec] = {}


def register(id: str, entry_point: str, kwargs: dict[str, Any] | None = None, description: str = "") -> None:
    """Register an environment under a versioned id such as ``"spread-v0"``."""
    name, sep, version = id.rpartition("-v")
    if not sep or not name or not version.isdigit():
        raise ValueError(f"environment ids carry a version, like 'spread-v0'; got {id!r}")
    if id in _REGISTRY:
        raise ValueError(f"environment id {id!r} is already registered")
    _REGISTRY[id] = EnvSpec(id, entry_point, dict(kwargs or {}), description)


def list_envs() -> list[str]:
    """All registered environment ids, sorted."""
    return sorted(_REGISTRY)


def spec(env_id: str) -> EnvSpec:
    """The spec of a registered id; an unknown id raises an error naming the nearest ids."""
    if env_id in _REGISTRY:
        return _REGISTRY[env_id]
    hint = did_you_mean(env_id, _REGISTRY, n=3, cutoff=0.4)
    raise KeyError(f"unknown environment id {env_id!r}{hint} (registered: {', '.join(list_envs())})")


def make(env_id: str, num_envs: int = 1, seed: int | None = None, **kwargs: Any) -> MultiAgentEnv:
    """Build ``num_envs`` copies of a registered environment.

    Keyword arguments override the registered defaults; an unknown one raises an error naming the nearest valid one.
    """
    s = spec(env_id)
    ctor = s.load()
    params = inspect.signature(ctor).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        allowed = [n for n in params if n not in ("self", "num_envs", "seed")]
        for key in kwargs:
            if key not in params or key in ("num_envs", "seed"):
                raise TypeError(f"{env_id} has no option {key!r}{did_you_mean(key, allowed)} "
                                f"(options: {', '.join(allowed) or 'none'})")
    return ctor(num_envs=num_envs, seed=seed, **{**s.kwargs, **kwargs})


# --------------------------------------------------------------------------------------- the registered envs
# One line per environment; nothing else in marlkit lists them.
register("climbing-v0", "marlkit.envs.matrix:climbing", description="Claus & Boutilier climbing game (cooperative)")
register("penalty-v0", "marlkit.envs.matrix:penalty", description="Claus & Boutilier penalty game, cost k (cooperative)")
register("prisoners-dilemma-v0", "marlkit.envs.matrix:prisoners_dilemma", description="Prisoner's dilemma (mixed)")
register("iterated-prisoners-dilemma-v0", "marlkit.envs.matrix:prisoners_dilemma", {"episode_length": 10},
         description="Prisoner's dilemma repeated for 10 rounds (mixed)")
register("stag-hunt-v0", "marlkit.envs.matrix:stag_hunt", description="Stag hunt (cooperative, risky)")
register("matching-pennies-v0", "marlkit.envs.matrix:matching_pennies", description="Matching pennies (competitive)")
register("two-step-v0", "marlkit.envs.two_step:TwoStepGame",
         description="QMIX paper's two-step game: 8 needs a joint value VDN cannot represent (cooperative)")
register("foraging-v0", "marlkit.envs.grid.foraging:Foraging",
         description="Level-based foraging, 8x8, 2 agents, 2 food (lbforaging rules; mixed)")
register("foraging-coop-v0", "marlkit.envs.grid.foraging:Foraging", {"force_coop": True},
         description="Level-based foraging where every food needs all agents (cooperative)")
register("pursuit-v0", "marlkit.envs.particles.pursuit:Pursuit",
         description="2 pursuers catch an evasive moving target among obstacles (cooperative, continuous world)")
register("spread-v0", "marlkit.envs.particles.spread:Spread",
         description="Cooperative navigation: N agents cover N landmarks (mpe2 simple_spread_v3; cooperative)")
register("tag-v0", "marlkit.envs.particles.tag:Tag",
         description="Predator-prey among obstacles (mpe2 simple_tag_v3; competitive)")
register("speaker-listener-v0", "marlkit.envs.particles.speaker_listener:SpeakerListener",
         description="Cooperative communication: a speaker guides a listener (mpe2 simple_speaker_listener_v4)")
