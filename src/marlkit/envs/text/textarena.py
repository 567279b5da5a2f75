"""TextArena's two-player games as marlkit text games: ``from_textarena("KuhnPoker-v0-train")``.

TextArena (Guertler et al. 2025, ``pip install textarena``; imported only here, when a game is made) offers 100+
competitive text games behind a gym-like API: ``reset(num_players, seed)``, ``get_observation() -> (player,
text)``, ``step(text) -> (done, info)``, and the rewards at the end. ``TextArenaEnv`` wraps one game as a
``TextEnv``, so marlkit's text policies, ``TextVecEnv``, ``marlkit.llm.play`` and token RL (``TokenRL``,
``SelfPlay``) play and train it like the built-in games:

* **Agents** are ``player_0`` and ``player_1`` (TextArena's players 0 and 1); ``to_act`` is the player TextArena
  asks next. The waiting player sees ``"Waiting for player_k."``.
* **Observations** are TextArena's text for the player to act. Use the ``-train`` variants of a game
  (``TicTacToe-v0-train``): their observation is the rules, the game's messages and the current board, where the
  default variants replay the whole chat history.
* **Legal answers.** Games that list them (``Available Moves: '[0]', '[4]'`` in tic-tac-toe, ``Your available
  actions are: '[check]', '[bet]'`` in Kuhn poker) have them returned by ``allowed_answers``, which token RL uses to
  constrain the answer; ``legal(observation)`` overrides the parsing. Other games (Nim, Connect Four) are free text.
* **Invalid moves** are TextArena's: the player is asked again with the game's error message, and a second invalid
  move in a row forfeits the game (TextArena's ``error_allowance``). Each invalid attempt is also counted in the
  outcome and costs marlkit's ``invalid_penalty``.
* **Rewards** come at the end: TextArena's per-player reward (+1 win, -1 loss, 0 draw). ``TextOutcome.winner`` is
  the player with the higher reward, ``completed`` says the game ended by its own rules (not by ``max_turns``).
* **Seeding.** TextArena games draw from Python's global ``random`` (seeded by their ``reset``). Each copy keeps its
  own ``random`` state and swaps it in only while TextArena runs, so copies stepped in any order give the same games
  for the same seeds and the caller's ``random`` is left alone. A fresh TextArena env is made at every reset (its
  observation wrappers keep history across resets otherwise).

Nothing is fetched at run time: the games are local Python (tests block sockets while playing).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from marlkit.core.errors import did_you_mean
from marlkit.envs.text.base import TextEnv, TextOutcome, count_words

INSTALL_HINT = "pip install textarena  (or the llm extra: pip install 'marlkit[llm]')"
AGENTS = ("player_0", "player_1")

_LISTED = re.compile(r"'(\[[^\]\n]*\])'")


def listed_moves(observation: str) -> list[str] | None:
    """The answers a TextArena observation lists on its last line naming available or valid moves/actions
    (``Available Moves: '[0]', '[4]'``), or None when it lists none."""
    for line in reversed(observation.split("\n")):
        low = line.lower()
        if ("available" in low or "valid" in low) and (moves := _LISTED.findall(line)):
            return moves
    return None


def _textarena() -> Any:
    try:
        import textarena
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(f"TextArena games need the textarena package: {INSTALL_HINT}") from e
    return textarena


def textarena_games() -> list[str]:
    """Every game id TextArena registers (two-player and others)."""
    from textarena.envs.registration import ENV_REGISTRY

    _textarena()
    return sorted(ENV_REGISTRY)


class TextArenaEnv(TextEnv):
    """One copy of a two-player TextArena game (see the module docstring)."""

    agents = AGENTS

    def __init__(
        self,
        game_id: str,
        *,
        seed: int | None = None,
        count_tokens: Callable[[str], int] = count_words,
        legal: Callable[[str], Sequence[str] | None] = listed_moves,
        max_turns: int = 200,
        **game_kwargs: Any,
    ) -> None:
        ta = _textarena()
        games = textarena_games()
        if game_id not in games:
            raise ValueError(f"unknown TextArena game {game_id!r}{did_you_mean(game_id, games)}")
        super().__init__(seed, count_tokens)
        self.game_id, self.game_kwargs, self.legal, self.max_turns = game_id, game_kwargs, legal, max_turns
        self._ta = ta
        self._random = random.Random(0).getstate()
        self._env: Any = None
        self._current: int | None = None
        self._text = ""
        self._done = False
        with self._own_random():
            probe = ta.make(game_id, **game_kwargs)
            try:
                probe.reset(num_players=2, seed=0)
            except (AssertionError, ValueError) as e:
                raise ValueError(f"{game_id!r} is not a two-player TextArena game: {e}") from e

    @contextmanager
    def _own_random(self) -> Iterator[None]:
        outer = random.getstate()
        random.setstate(self._random)
        try:
            yield
        finally:
            self._random = random.getstate()
            random.setstate(outer)

    @property
    def to_act(self) -> tuple[str, ...]:
        return () if self._done or self._current is None else (AGENTS[self._current],)

    def allowed_answers(self, agent: str) -> list[str] | None:
        if agent not in self.to_act:
            return None
        moves = self.legal(self._text)
        return list(moves) if moves else None

    def _observe_current(self) -> None:
        with self._own_random():
            player, text = self._env.get_observation()
        self._current = int(player)
        self._text = text if isinstance(text, str) else "\n".join(str(m[1]) for m in text)

    def _reset(self) -> None:
        seed = int(self.np_random.integers(2**31 - 1))
        self._random = random.Random(seed).getstate()
        self._done = False
        with self._own_random():
            self._env = self._ta.make(self.game_id, **self.game_kwargs)
            self._env.reset(num_players=2, seed=seed)
        self._observe_current()

    def _step(self, actions: dict[str, str]) -> tuple[dict[str, float], bool]:
        agent = next(iter(actions))
        player = AGENTS.index(agent)
        state = self._env.state
        errors_before = int(getattr(state, "error_count", 0))
        with self._own_random():
            done, _ = self._env.step(actions[agent])
        invalid = int(getattr(state, "error_count", 0)) > errors_before or bool(
            state.game_info.get(player, {}).get("invalid_move", False)
        )
        if invalid:
            self._invalid(agent, f"TextArena rejected {actions[agent][:60]!r}")
        else:
            self._valid(agent)
        if done:
            self._done = True
            rewards = state.rewards or {}
            return {AGENTS[int(p)]: float(r) for p, r in rewards.items() if int(p) in (0, 1)}, True
        self._observe_current()
        return {}, False

    def _observe(self, agent: str) -> str:
        if self._done:
            return "The game is over."
        if agent in self.to_act:
            return self._text
        return f"Waiting for {AGENTS[self._current or 0]}."

    def _finish(self, outcome: TextOutcome) -> None:
        outcome.completed = self._done
        s0, s1 = outcome.scores.get("player_0", 0.0), outcome.scores.get("player_1", 0.0)
        rewards = (self._env.state.rewards or {}) if self._done else {}
        r0, r1 = float(rewards.get(0, 0.0)), float(rewards.get(1, 0.0))
        outcome.winner = "player_0" if r0 > r1 else "player_1" if r1 > r0 else None
        reasons = {pid: info.get("reason") for pid, info in self._env.state.game_info.items() if isinstance(info, dict)}
        outcome.extra = {"game_id": self.game_id, "rewards": [r0, r1], "reason": reasons.get(0), "scores": [s0, s1]}


def from_textarena(game_id: str, **kwargs: Any) -> Callable[[], TextArenaEnv]:
    """A factory of copies of a two-player TextArena game, for ``TextVecEnv``, ``TokenRL`` or ``SelfPlay``
    (``kwargs`` as ``TextArenaEnv``: ``legal``, ``max_turns``, ``count_tokens`` and the game's own arguments).
    The game id is checked now, so a typo fails here with the closest ids."""
    TextArenaEnv(game_id, **kwargs)

    def make() -> TextArenaEnv:
        return TextArenaEnv(game_id, **kwargs)

    return make


__all__ = ["TextArenaEnv", "from_textarena", "listed_moves", "textarena_games"]
