"""Find the meeting point (``meeting-point-v0``): two agents holding halves of a map must agree on a landmark.

A cooperative referential game in which talking is *necessary*. The town is a 5x5 grid (columns A-E, rows 1-5).
``2k - 1`` landmarks (default ``k = 4``) stand on distinct random cells; each is of a kind drawn with repetition
from a few (well, oak, tower, ...), so a kind alone does not identify a landmark. Each agent's half of the map
shows ``k`` of them (kind and cell); exactly one landmark, drawn uniformly, is on both halves, and the others are
split at random, ``k - 1`` to each half. The meeting point is that shared landmark: both agents must name its cell.

**Why talk is necessary.** Landmarks are exchangeable (kinds i.i.d., cells uniform without replacement, the shared
one uniform, the split uniform), so given everything an agent sees, each of its ``k`` landmarks is the shared one
with probability ``1/k``: alone, an agent is right with probability at most ``1/k``, and the pair succeeds without
talk with probability at most ``1/k`` too (a fixed convention such as "the lowest cell" reaches ``1/(2k - 1)``;
independent random picks ``1/k^2``). With talk the task is solved in one exchange: say your landmarks, intersect.

**Phases.** ``talk_turns`` (default 2) simultaneous talk phases, in which each agent sends one free-text message
that the other sees from the next phase on, then one simultaneous move phase: each answers ``"meet at C4"``. The
answer is read leniently: the first cell named (``C4``, ``c4``); or, if no cell is named, a landmark kind that
appears exactly once on the agent's own half (``"meet at the tower"``). An answer naming no cell, a cell off the
grid, or an ambiguous or unknown kind is an invalid attempt (penalty, error in the next observation, that agent
asked again); after ``max_invalid`` in a row the agent has given no answer (the documented default), which fails
the task. A cell without a landmark is a valid, wrong answer.

**Rewards**: +1 to both when both name the shared landmark's cell, else 0 (common payoff); with ``token_cost > 0``
each talk message also costs its sender ``token_cost`` per token (``count_tokens``), so that saying less for the
same success pays (communication efficiency as an objective). **Outcome**:
``completed`` (success), ``extra``: ``meeting_point`` (kind and cell), ``answers`` (cell or None per agent),
``correct`` (per agent), ``halves`` (the landmarks each agent saw).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from marlkit.envs.text.base import TextEnv, TextOutcome, clip_text, count_words

AGENTS = ("player_0", "player_1")
SIZE = 5
COLUMNS = "ABCDE"
KINDS = ("well", "oak", "tower", "bridge", "shrine", "mill")
CELL_HINT = 'answer "meet at <cell>", e.g. "meet at C4" (column A-E, row 1-5)'

_CELL = re.compile(r"\b([a-z])([0-9]+)\b", re.IGNORECASE)
_KIND = re.compile(r"\b(" + "|".join(KINDS) + r")s?\b", re.IGNORECASE)


def cell_name(cell: int) -> str:
    """``"C4"`` for the cell index ``5 * row + column`` (0-based)."""
    return f"{COLUMNS[cell % SIZE]}{cell // SIZE + 1}"


class AnswerError(ValueError):
    """An answer that names no usable cell; the message says what is allowed."""


def parse_answer(text: str, own: list[tuple[str, int]]) -> int:
    """The cell index named by ``text``; ``own`` (``(kind, cell)`` of the agent's half) resolves a bare kind."""
    m = _CELL.search(text)
    if m:
        col, row = m.group(1).upper(), int(m.group(2))
        if col not in COLUMNS or not 1 <= row <= SIZE:
            raise AnswerError(f"{m.group(0)!r} is off the grid: columns are A-E and rows 1-5")
        return (row - 1) * SIZE + COLUMNS.index(col)
    m = _KIND.search(text)
    if m:
        kind = m.group(1).lower()
        cells = [c for k, c in own if k == kind]
        if len(cells) == 1:
            return cells[0]
        if not cells:
            raise AnswerError(f"there is no {kind} on your half; {CELL_HINT}")
        raise AnswerError(f"which {kind}? Yours are at {', '.join(cell_name(c) for c in cells)}; {CELL_HINT}")
    raise AnswerError(f"no cell found; {CELL_HINT}")


class MeetingPoint(TextEnv):
    """Two agents, two halves of a map, one shared landmark to find by talking; see the module docstring."""

    def __init__(
        self,
        landmarks_per_half: int = 4,
        talk_turns: int = 2,
        max_invalid: int = 3,
        invalid_penalty: float = -0.1,
        max_message_chars: int = 300,
        token_cost: float = 0.0,
        seed: int | None = None,
        count_tokens: Callable[[str], int] = count_words,
    ) -> None:
        super().__init__(seed, count_tokens)
        if not isinstance(landmarks_per_half, int) or not 1 <= landmarks_per_half <= (SIZE * SIZE + 1) // 2:
            raise ValueError(
                f"landmarks_per_half must be an integer in 1..{(SIZE * SIZE + 1) // 2}, got {landmarks_per_half!r}"
            )
        for name, value, low in (
            ("talk_turns", talk_turns, 0),
            ("max_invalid", max_invalid, 1),
            ("max_message_chars", max_message_chars, 1),
        ):
            if not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if not token_cost >= 0:
            raise ValueError(f"token_cost must be >= 0 (a cost per talk token), got {token_cost!r}")
        self.token_cost = float(token_cost)
        if invalid_penalty > 0:
            raise ValueError(f"invalid_penalty must be <= 0 (a penalty), got {invalid_penalty}")
        self.k = landmarks_per_half
        self.talk_turns, self.max_invalid = talk_turns, max_invalid
        self.invalid_penalty = float(invalid_penalty)
        self.max_message_chars = max_message_chars
        self.agents = AGENTS
        self.max_turns = talk_turns + max_invalid  # the move phase ends after at most max_invalid steps

    @property
    def phase(self) -> str:
        return "talk" if self._talks_done < self.talk_turns else "move"

    @property
    def to_act(self) -> tuple[str, ...]:
        if self._over:
            return ()
        return AGENTS if self.phase == "talk" else tuple(a for a in AGENTS if a not in self._answers)

    def _reset(self) -> None:
        rng = self.np_random
        n = 2 * self.k - 1
        cells = [int(c) for c in rng.choice(SIZE * SIZE, size=n, replace=False)]
        kinds = [KINDS[int(i)] for i in rng.integers(len(KINDS), size=n)]
        landmarks = list(zip(kinds, cells))
        # Landmark 0 is shared (cells and kinds are already i.i.d., so any index would do); the rest split at random.
        self.meeting_point = landmarks[0]
        rest = [landmarks[int(i)] for i in 1 + rng.permutation(n - 1)]
        self.halves = {}
        for a, part in zip(AGENTS, (rest[: self.k - 1], rest[self.k - 1 :])):
            half = part + [self.meeting_point]
            self.halves[a] = sorted(half, key=lambda kc: kc[1])  # listed by cell: the order reveals nothing
        self._talks_done = 0
        self._messages: list[tuple[int, str, str]] = []
        self._answers: dict[str, int | None] = {}
        self._over = False

    def _step(self, actions: dict[str, str]) -> tuple[dict[str, float], bool]:
        if self.phase == "talk":
            self._talks_done += 1
            self._messages += [(self._talks_done, a, actions[a]) for a in AGENTS]
            return {a: -self.token_cost * self.count_tokens(actions[a]) for a in AGENTS}, False
        for agent, text in actions.items():
            try:
                self._answers[agent] = parse_answer(text, self.halves[agent])
                self._valid(agent)
            except AnswerError as err:
                if self._invalid(agent, str(err)):
                    self._answers[agent] = None  # no answer: the task fails
        if len(self._answers) < len(AGENTS):
            return {}, False
        self._over = True
        success = float(self._success())
        return {a: success for a in AGENTS}, True

    def _success(self) -> bool:
        return all(self._answers.get(a) == self.meeting_point[1] for a in AGENTS)

    def _observe(self, agent: str) -> str:
        other = AGENTS[1 - AGENTS.index(agent)]
        mine = ", ".join(f"{kind} at {cell_name(c)}" for kind, c in self.halves[agent])
        lines = [
            f"Meeting point. You ({agent}) and {other} each hold half of the map of a 5x5 town (columns A-E, "
            f"rows 1-5). Exactly one landmark (same kind, same cell) is on both halves: you must both name "
            f"its cell.",
            f"Your half shows: {mine}.",
        ]
        if self._messages:
            lines.append("Messages:")
            for turn, who, text in self._messages:
                lines.append(
                    f"  talk {turn}, {'you' if who == agent else who}: {clip_text(text, self.max_message_chars)}"
                )
        if self._over:
            right = "both named" if self._success() else "you did not both name"
            lines.append(
                f"Game over: {right} the meeting point, the {self.meeting_point[0]} at "
                f"{cell_name(self.meeting_point[1])}."
            )
        elif self.phase == "talk":
            lines.append(f"Talk {self._talks_done + 1} of {self.talk_turns}: send {other} one message.")
        elif agent in self.to_act:
            lines.append(f"Now {CELL_HINT}.")
        else:
            lines.append(f"Your answer is in; waiting for {other}.")
        return "\n".join(lines)

    def _finish(self, outcome: TextOutcome) -> None:
        outcome.completed = self._over and self._success()
        answers = {a: None if (cell := self._answers.get(a)) is None else cell_name(cell) for a in AGENTS}
        outcome.extra.update(
            meeting_point=(self.meeting_point[0], cell_name(self.meeting_point[1])),
            answers=answers,
            correct={a: answers[a] == cell_name(self.meeting_point[1]) for a in AGENTS},
            halves={a: [(kind, cell_name(c)) for kind, c in self.halves[a]] for a in AGENTS},
        )
