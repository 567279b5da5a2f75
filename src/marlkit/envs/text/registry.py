"""The registry of text games: versioned id -> constructor of one copy of a text game.

Kept apart from the array registry (``marlkit.envs.registry``) because the contracts differ: ``make`` returns
batched arrays, ``make_text`` one copy of a game in strings (batch copies with ``TextVecEnv``). Ids carry a version;
bump it when rules, rewards or observation texts change. Constructors are ``"module:attribute"`` strings imported
on first use. Every game is a ``TextEnv`` except the hybrid ``speaker-listener-text-v0``, whose listener acts in
arrays (``SpeakerListenerText``: the same life cycle, mixed actions; see its module).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from marlkit.core.errors import did_you_mean
from marlkit.envs.text.base import TextEnv

if TYPE_CHECKING:
    from gymnasium import spaces

    from marlkit.envs.text.speaker_listener_text import SpeakerListenerText


@dataclass(frozen=True)
class TextEnvSpec:
    """How to build one registered text game."""

    id: str
    entry_point: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def load(self) -> Callable[..., TextEnv | SpeakerListenerText]:
        module, _, attr = self.entry_point.partition(":")
        return getattr(importlib.import_module(module), attr)


_TEXT_REGISTRY: dict[str, TextEnvSpec] = {}


def register_text(id: str, entry_point: str, kwargs: dict[str, Any] | None = None, description: str = "") -> None:
    """Register a text game under a versioned id such as ``"tictactoe-v0"``."""
    name, sep, version = id.rpartition("-v")
    if not sep or not name or not version.isdigit():
        raise ValueError(f"text game ids carry a version, like 'tictactoe-v0'; got {id!r}")
    if id in _TEXT_REGISTRY:
        raise ValueError(f"text game id {id!r} is already registered")
    _TEXT_REGISTRY[id] = TextEnvSpec(id, entry_point, dict(kwargs or {}), description)


def list_text_envs() -> list[str]:
    """All registered text game ids, sorted."""
    return sorted(_TEXT_REGISTRY)


def text_spec(env_id: str) -> TextEnvSpec:
    """The spec of a registered id; an unknown id raises an error naming the nearest ids."""
    if env_id in _TEXT_REGISTRY:
        return _TEXT_REGISTRY[env_id]
    hint = did_you_mean(env_id, _TEXT_REGISTRY, n=3, cutoff=0.4)
    raise KeyError(f"unknown text game id {env_id!r}{hint} (registered: {', '.join(list_text_envs())})")


def make_text(env_id: str, seed: int | None = None, **kwargs: Any) -> TextEnv | SpeakerListenerText:
    """Build one copy of a registered text game; keyword arguments override the registered defaults.

    An unknown keyword raises an error naming the nearest valid one.
    """
    s = text_spec(env_id)
    ctor = s.load()
    params = inspect.signature(ctor).parameters
    allowed = [n for n in params if n not in ("self", "seed")]
    for key in kwargs:
        if key not in allowed:
            raise TypeError(
                f"{env_id} has no option {key!r}{did_you_mean(key, allowed)} (options: {', '.join(allowed) or 'none'})"
            )
    return ctor(seed=seed, **{**s.kwargs, **kwargs})


@dataclass(frozen=True)
class TextGames:
    """A registered text game with its options, played ``num_envs`` copies at a time: what a run trains on when
    its env is a text game (the learner makes the copies as it plays them, seeded by its source). Each agent is a
    group of its own."""

    id: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    num_envs: int = 1

    def __post_init__(self) -> None:
        game = self.make()  # an unknown option or value is an error here, before anything is built
        if not isinstance(game, TextEnv):
            raise ValueError(
                f"{self.id} is not a TextEnv game (a {type(game).__name__}: its agents do not all "
                f"answer in text); TextGames plays games whose every agent answers in text"
            )

    def make(self) -> TextEnv:
        """One copy of the game."""
        return make_text(self.id, **self.kwargs)  # type: ignore[return-value]

    @cached_property
    def _probe(self) -> TextEnv:
        return self.make()

    @property
    def agents(self) -> tuple[str, ...]:
        return tuple(self._probe.agents)

    @property
    def groups(self) -> dict[str, tuple[str, ...]]:
        return {a: (a,) for a in self.agents}

    def group_observation_space(self, group: str) -> spaces.Space[Any]:
        return self._probe.observation_space(group)

    def group_action_space(self, group: str) -> spaces.Space[Any]:
        return self._probe.action_space(group)

    state_space = None


# --------------------------------------------------------------------------------------- the registered games
# One line per game; nothing else in marlkit lists them.
register_text(
    "tictactoe-v0",
    "marlkit.envs.text.tictactoe:TicTacToe",
    description="Tic-tac-toe, two agents or one against opponent='random'/'heuristic' (competitive)",
)
register_text(
    "stag-hunt-talk-v0",
    "marlkit.envs.text.matrix_talk:stag_hunt_talk",
    description="Stag hunt repeated 5 rounds, free-text talk before each move (cooperative, risky)",
)
register_text(
    "ipd-talk-v0",
    "marlkit.envs.text.matrix_talk:ipd_talk",
    description="Prisoner's dilemma repeated 5 rounds, free-text talk before each move (mixed)",
)
register_text(
    "negotiation-v0",
    "marlkit.envs.text.negotiation:Negotiation",
    description="Divide books/hats/balls with private values by talking (Lewis et al. 2017; mixed)",
)
register_text(
    "meeting-point-v0",
    "marlkit.envs.text.meeting_point:MeetingPoint",
    description="Two halves of a 5x5 map share one landmark; agree on it by talking (cooperative)",
)
register_text(
    "speaker-listener-text-v0",
    "marlkit.envs.text.speaker_listener_text:SpeakerListenerText",
    description="Particle speaker-listener; the speaker names the goal colour in words, the listener "
    "moves with array actions (hybrid, cooperative)",
)
