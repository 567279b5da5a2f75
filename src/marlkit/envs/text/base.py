"""The contract of text environments: games whose observations and actions are strings per agent.

A ``TextEnv`` is **one copy** of a turn-based or simultaneous game between agents that read and write natural
language. It keeps the life cycle of the array envs (``reset(seed)`` fixes everything that follows; ``step`` returns
observations, rewards, terminated, truncated, info) but every observation and action is a ``str`` per agent, and:

* **Turn order is declared.** ``to_act`` names the agents whose text ``step`` expects now: one agent in a
  turn-based game (tic-tac-toe, negotiation), several in a simultaneous one (the move of an iterated matrix game).
  ``step`` takes a dict with exactly those agents; anything else is a programming error (``TextActionError``).
* **What an agent says is validated, never trusted.** Text that does not parse, or parses to an illegal move, is an
  *in-game* error: the agent gets a counted penalty (``invalid_penalty`` added to its reward), the error message
  (what was wrong and what is allowed) opens its next observation, and the game goes on (the same agent is asked
  again; after ``max_invalid`` failures in a row the game applies its documented default or forfeit). A language
  model's nonsense never crashes a run.
* **Phases.** A game may alternate free-text *talk* (a message shown to the others, not parsed) with *moves*
  (parsed). ``phase`` says which one ``step`` expects; observations say it in words too.
* **The outcome is structured.** ``outcome()`` returns a ``TextOutcome``: completed, winner, per-agent score,
  messages and tokens spent, invalid attempts, and the transcript; ``info["outcome"]`` carries it when the episode
  ends. Tokens are counted with ``count_tokens`` (by default whitespace-separated words; pass a tokenizer's
  ``len(tokenizer.encode(s))`` to count real tokens).

A subclass writes ``_reset()`` and ``_step(actions)`` and the observation text; the base class owns seeding, turn
checking, counting, the transcript and truncation at ``max_turns``. Text games are stepped copy by copy: their cost
is the language model that reads and writes the text, which is batched across copies by the caller
(``TextVecEnv`` holds the copies and gathers the prompts of every agent to act).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from gymnasium import spaces


class TextActionError(ValueError):
    """``step`` was called with the wrong agents or with something that is not a string (a caller's bug)."""


def count_words(text: str) -> int:
    """The default token count: whitespace-separated words."""
    return len(text.split())


def clip_text(text: str, limit: int) -> str:
    """``text`` on one line (whitespace collapsed), cut to ``limit`` characters with "..." when longer: how games
    show an agent's message or quote its invalid answer without letting it flood the observation."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def quote_text(text: str, limit: int = 60) -> str:
    """``repr`` of ``clip_text(text, limit)``, for error messages."""
    return repr(clip_text(text, limit))


@dataclass(frozen=True)
class Message:
    """One line of the transcript."""

    turn: int
    agent: str
    kind: str  # "talk", "move" or "invalid"
    text: str


@dataclass
class TextOutcome:
    """What happened in one episode of a text game."""

    completed: bool = False  # the task was achieved / the game reached a proper end
    winner: str | None = None  # the winning agent, if the game has one
    scores: dict[str, float] = field(default_factory=dict)  # each agent's return
    messages: int = 0  # talk messages sent
    tokens: int = 0  # tokens in every talk message and move
    invalid: dict[str, int] = field(default_factory=dict)  # invalid attempts per agent
    turns: int = 0
    transcript: list[Message] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # game-specific facts (e.g. agreed deal, coordination)


class TextEnv:
    """Base class of text games: one copy, strings in and out, turn order declared, moves validated."""

    #: Agent ids in a fixed order.
    agents: tuple[str, ...] = ()
    #: Episode length in steps (each call to ``step``) after which the game is truncated.
    max_turns: int = 100
    #: Reward added for each invalid attempt (negative).
    invalid_penalty: float = -0.1
    #: Invalid attempts in a row after which the game applies its default move or forfeit.
    max_invalid: int = 3
    #: Longest observation or action text, for the Gymnasium spaces.
    max_text_length: int = 4096

    def __init__(self, seed: int | None = None, count_tokens: Callable[[str], int] = count_words) -> None:
        self._seed = seed
        self.np_random = np.random.default_rng(seed)
        self.count_tokens = count_tokens
        self._needs_reset = True
        self._seed_pending = seed is not None  # the constructor's seed fixes the first reset only
        self._outcome = TextOutcome()
        self._turn = 0
        self._errors: dict[str, str] = {}
        self._invalid_streak: dict[str, int] = {}

    # ------------------------------------------------------------------------------------------- spaces
    def observation_space(self, agent: str) -> spaces.Text:
        self._check_agent(agent)
        return spaces.Text(self.max_text_length, charset=_PRINTABLE)

    def action_space(self, agent: str) -> spaces.Text:
        self._check_agent(agent)
        return spaces.Text(self.max_text_length, charset=_PRINTABLE)

    # ---------------------------------------------------------------------------------------- to override
    @property
    def to_act(self) -> tuple[str, ...]:
        """Agents whose text ``step`` expects now."""
        raise NotImplementedError

    @property
    def phase(self) -> str:
        """``"talk"`` or ``"move"``: what ``step`` expects now."""
        return "move"

    def allowed_answers(self, agent: str) -> list[str] | None:
        """The answers ``agent`` may give now, when the game has a closed list of them (a move among the legal
        ones); None for free text (talk, or moves the game does not list)."""
        return None

    def _reset(self) -> None:
        """Draw a fresh game with ``self.np_random``."""
        raise NotImplementedError

    def _step(self, actions: dict[str, str]) -> tuple[dict[str, float], bool]:
        """Apply the texts of ``to_act``; return (rewards per agent, game over). Call ``self._invalid`` on bad text."""
        raise NotImplementedError

    def _observe(self, agent: str) -> str:
        """The text ``agent`` sees now (the base class prefixes any error message of its last attempt)."""
        raise NotImplementedError

    def _finish(self, outcome: TextOutcome) -> None:
        """Fill the game-specific parts of the outcome (completed, winner, extra) when the episode ends."""

    # ------------------------------------------------------------------------------------------ life cycle
    def reset(self, seed: int | None = None) -> tuple[dict[str, str], dict[str, Any]]:
        if seed is None and self._seed_pending:
            seed = self._seed
        if seed is not None:
            self.np_random = np.random.default_rng(seed)
        # Later resets without a seed continue the generator: the next episode differs from the last.
        self._seed_pending = False
        self._needs_reset = False
        self._turn = 0
        self._errors = {}
        self._invalid_streak = {a: 0 for a in self.agents}
        self._outcome = TextOutcome(scores={a: 0.0 for a in self.agents}, invalid={a: 0 for a in self.agents})
        self._reset()
        return self.observe(), {"to_act": self.to_act, "phase": self.phase}

    def step(self, actions: Mapping[str, str]) -> tuple[dict[str, str], dict[str, float], bool, bool, dict[str, Any]]:
        if self._needs_reset:
            raise RuntimeError("call reset() before step()")
        expected = self.to_act
        if not isinstance(actions, Mapping) or set(actions) != set(expected):
            got = list(actions) if isinstance(actions, Mapping) else type(actions).__name__
            raise TextActionError(f"step expects text from exactly {list(expected)} (phase {self.phase!r}); got {got}")
        for agent, text in actions.items():
            if not isinstance(text, str):
                raise TextActionError(f"the action of {agent!r} must be a str, got {type(text).__name__}")
        self._errors = {}
        kind = self.phase
        for agent in expected:
            self._outcome.tokens += self.count_tokens(actions[agent])
            if kind == "talk":
                self._outcome.messages += 1
            self._outcome.transcript.append(Message(self._turn, agent, kind, actions[agent]))
        rewards, over = self._step(dict(actions))
        rewards = {a: float(rewards.get(a, 0.0)) for a in self.agents}
        for agent in self._errors:
            rewards[agent] += self.invalid_penalty
        for a in self.agents:
            self._outcome.scores[a] += rewards[a]
        self._turn += 1
        truncated = not over and self._turn >= self.max_turns
        info: dict[str, Any] = {
            "to_act": () if over or truncated else self.to_act,
            "phase": self.phase,
            "errors": dict(self._errors),
        }
        if over or truncated:
            self._outcome.turns = self._turn
            self._finish(self._outcome)
            info["outcome"] = self._outcome
            self._needs_reset = True
        return self.observe(), rewards, over, truncated, info

    def observe(self) -> dict[str, str]:
        """The text every agent sees now."""
        obs = {}
        for a in self.agents:
            text = self._observe(a)
            if a in self._errors:
                text = f"Error: {self._errors[a]}\n{text}"
            obs[a] = text
        return obs

    def outcome(self) -> TextOutcome:
        """The outcome so far (final once the episode has ended)."""
        return self._outcome

    # ---------------------------------------------------------------------------------------------- helpers
    def _invalid(self, agent: str, message: str) -> bool:
        """Record an invalid attempt by ``agent``; return True when its streak reached ``max_invalid``."""
        self._errors[agent] = message
        self._outcome.invalid[agent] += 1
        self._invalid_streak[agent] += 1
        self._outcome.transcript.append(Message(self._turn, agent, "invalid", message))
        if self._invalid_streak[agent] >= self.max_invalid:
            self._invalid_streak[agent] = 0
            return True
        return False

    def _valid(self, agent: str) -> None:
        """Record that ``agent``'s attempt was accepted (resets its invalid streak)."""
        self._invalid_streak[agent] = 0

    def _check_agent(self, agent: str) -> None:
        if agent not in self.agents:
            raise KeyError(f"unknown agent {agent!r}; agents are {self.agents}")


_PRINTABLE = frozenset(chr(c) for c in range(32, 127)) | {"\n", "\t"}


class TextVecEnv:
    """Several copies of a text game, reset and stepped together; finished copies are reset in the same call.

    ``prompts()`` gathers ``(copy, agent, observation)`` for every agent that must act now, so one batched call to
    a language model answers all copies; ``step`` takes the answers in the same order.
    """

    def __init__(self, make_env: Callable[[], TextEnv], num_envs: int, seed: int | None = None) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        self.envs = [make_env() for _ in range(num_envs)]
        self.num_envs = num_envs
        self._seed_seq = np.random.SeedSequence(seed)
        self._obs: list[dict[str, str]] = []

    def _next_seed(self) -> int:
        return int(self._seed_seq.spawn(1)[0].generate_state(1)[0])

    def reset(self) -> list[dict[str, str]]:
        self._obs = [env.reset(seed=self._next_seed())[0] for env in self.envs]
        return self._obs

    def prompts(self) -> list[tuple[int, str, str]]:
        if not self._obs:
            raise RuntimeError("call reset() before prompts() or step()")
        return [(i, a, self._obs[i][a]) for i, env in enumerate(self.envs) for a in env.to_act]

    def step(self, texts: Sequence[str]) -> tuple[list[dict[str, float]], list[TextOutcome | None]]:
        """Apply answers in the order of ``prompts()``; return per-copy rewards and the outcomes of ended episodes."""
        asked = self.prompts()
        if len(texts) != len(asked):
            raise TextActionError(f"expected {len(asked)} texts (one per prompt), got {len(texts)}")
        per_copy: dict[int, dict[str, str]] = {}
        for (i, agent, _), text in zip(asked, texts):
            per_copy.setdefault(i, {})[agent] = text
        rewards, outcomes = [], []
        for i, env in enumerate(self.envs):
            obs, r, term, trunc, info = env.step(per_copy[i])
            rewards.append(r)
            if term or trunc:
                outcomes.append(info["outcome"])
                obs = env.reset(seed=self._next_seed())[0]
            else:
                outcomes.append(None)
            self._obs[i] = obs
        return rewards, outcomes
