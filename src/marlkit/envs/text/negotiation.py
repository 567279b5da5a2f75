"""Two-party negotiation over a pool of items with private values (``negotiation-v0``).

After Lewis et al. (2017), "Deal or No Deal? End-to-End Learning for Negotiation Dialogues", EMNLP
(https://arxiv.org/abs/1706.05125): a pool of books, hats and balls (1-4 of each, 5-7 items in all) is to be divided
between two agents; each has private values, non-negative integers with which the whole pool is worth 10 to it;
every item type is worth something to at least one agent and at least one type to both (so there is something to
fight over). Agents see only their own values, so a good deal needs talk: each must find out what the other wants.

**Turns** alternate, ``player_0`` first. A turn is free text shown to the other agent (phase ``"talk"``), which
may contain

* a proposal, ``"propose: books=1 hats=2 balls=0"``, meaning *what I take* (the rest goes to the other); the keyword
  is ``propose`` or ``proposal:``, items may be written ``book=1``, ``books: 1``, ``books 1`` or ``1 book``, an item
  not named is one the proposer does not take. It replaces any proposal on the table.
* ``"accept"`` (or ``accepted``/``accepts``; ``"acceptable"`` is not the keyword): accepts the other agent's
  proposal on the table; the game ends with that division.
* nothing of the kind: a plain message.

When the text holds both keywords, the first one counts; negations are not understood (``"I don't accept"``
accepts), so prompts should ask for the keyword alone. A proposal asking for more than the pool holds, naming an
unknown item or an item twice, or an ``accept`` with no proposal of the other's on the table, is an invalid attempt
(penalty, error in the next observation, same agent asked again); after ``max_invalid`` in a row the turn passes
with nothing said (the documented default: the table is unchanged and the turn counts against the limit).

**Rewards** on a deal: each agent's value of what it gets divided by 10 (so in ``[0, 1]``); after ``turn_limit``
turns without a deal the game ends with no deal, 0 each (a deadline both agents see, hence a termination, not a
truncation). **Outcome** (``extra``): ``counts``, ``values`` (both private value vectors), ``deal`` (items per agent
or None), ``pareto_optimal`` (whether no other division is at least as good for both and better for one; Lewis et
al.'s measure), ``proposals`` (how many were made). ``completed`` is true when a deal was reached.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable

import numpy as np

from marlkit.envs.text.base import TextEnv, TextOutcome, clip_text, count_words

ITEMS = ("books", "hats", "balls")
SINGULAR = ("book", "hat", "ball")
AGENTS = ("player_0", "player_1")
TOTAL_VALUE = 10
FORMAT_HINT = 'write "propose: books=B hats=H balls=L" (what YOU take; the rest goes to the other)'

_KEYWORD = re.compile(r"\b(propose|proposal\s*:|accept|accepted|accepts)(?!\w)", re.IGNORECASE)
_ITEM = r"(books?|hats?|balls?)"
# Alternatives, tried in this order at each position: "books=1" / "books: 1" / "books 1", then "1 book", then an
# unknown word with "=" (an error, rather than silently ignored).
_PAIR = re.compile(rf"\b{_ITEM}\s*[=:]?\s*(-?\d+)\b|\b(\d+)\s+{_ITEM}\b|\b([a-z]+)\s*=\s*-?\d+", re.IGNORECASE)


class ProposalError(ValueError):
    """A proposal that cannot be read or exceeds the pool; the message says what is allowed."""


def parse_proposal(text: str, counts: tuple[int, ...]) -> tuple[int, ...]:
    """The item counts the proposer takes, read from the text after the ``propose`` keyword.

    Raises ``ProposalError`` naming the problem (unknown item, item twice, more than the pool holds, nothing read).
    """
    taken: dict[int, int] = {}
    for m in _PAIR.finditer(text):
        if m.group(5) is not None:
            raise ProposalError(f"unknown item {m.group(5)!r}; the items are {', '.join(ITEMS)}")
        word, number = (m.group(1), m.group(2)) if m.group(1) is not None else (m.group(4), m.group(3))
        word = word.lower()
        i = ITEMS.index(word) if word in ITEMS else SINGULAR.index(word)
        if i in taken:
            raise ProposalError(f"{ITEMS[i]} named twice in one proposal")
        n = int(number)
        if not 0 <= n <= counts[i]:
            raise ProposalError(
                f"{ITEMS[i]}={n} is out of range: there are {counts[i]} {ITEMS[i]}, so take 0-{counts[i]}"
            )
        taken[i] = n
    if not taken:
        raise ProposalError(f"no items found in the proposal; {FORMAT_HINT}")
    return tuple(taken.get(i, 0) for i in range(len(ITEMS)))


def value_vectors(counts: tuple[int, ...], total: int = TOTAL_VALUE) -> list[tuple[int, ...]]:
    """Every non-negative integer value vector with which the whole pool is worth ``total``."""
    ranges = [range(total // c + 1) for c in counts]
    return [v for v in itertools.product(*ranges) if sum(c * x for c, x in zip(counts, v)) == total]


def draw_game(rng: np.random.Generator) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """``(counts, values of player_0, values of player_1)`` drawn uniformly under Lewis et al.'s constraints."""
    while True:
        counts = tuple(int(c) for c in rng.integers(1, 5, size=len(ITEMS)))
        if not 5 <= sum(counts) <= 7:
            continue
        vectors = value_vectors(counts)
        pairs = [
            (a, b)
            for a in vectors
            for b in vectors
            if all(x or y for x, y in zip(a, b)) and any(x and y for x, y in zip(a, b))
        ]
        if pairs:
            a, b = pairs[int(rng.integers(len(pairs)))]
            return counts, a, b


def describe(taken: tuple[int, ...]) -> str:
    return " ".join(f"{item}={n}" for item, n in zip(ITEMS, taken))


class Negotiation(TextEnv):
    """Divide a pool of items by talking; see the module docstring."""

    def __init__(
        self,
        turn_limit: int = 10,
        max_invalid: int = 3,
        invalid_penalty: float = -0.1,
        max_message_chars: int = 200,
        seed: int | None = None,
        count_tokens: Callable[[str], int] = count_words,
    ) -> None:
        super().__init__(seed, count_tokens)
        for name, value in (
            ("turn_limit", turn_limit),
            ("max_invalid", max_invalid),
            ("max_message_chars", max_message_chars),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if invalid_penalty > 0:
            raise ValueError(f"invalid_penalty must be <= 0 (a penalty), got {invalid_penalty}")
        self.turn_limit, self.max_invalid = turn_limit, max_invalid
        self.invalid_penalty = float(invalid_penalty)
        self.max_message_chars = max_message_chars
        self.agents = AGENTS
        self.max_turns = turn_limit * max_invalid  # a safety net: the turn limit always ends the game first

    @property
    def phase(self) -> str:
        return "talk"

    @property
    def to_act(self) -> tuple[str, ...]:
        return () if self._over else (AGENTS[self._dialogue_turn % 2],)

    def _reset(self) -> None:
        self.counts, v0, v1 = draw_game(self.np_random)
        self.values = {"player_0": v0, "player_1": v1}
        self._dialogue_turn = 0
        self._over = False
        self._table: tuple[str, tuple[int, ...]] | None = None  # (proposer, what the proposer takes)
        self._deal: dict[str, tuple[int, ...]] | None = None
        self._dialogue: list[tuple[str, str]] = []
        self._proposals = 0

    def _step(self, actions: dict[str, str]) -> tuple[dict[str, float], bool]:
        ((agent, text),) = actions.items()
        other = AGENTS[1 - AGENTS.index(agent)]
        m = _KEYWORD.search(text)
        try:
            if m and m.group(1).lower().startswith("accept"):
                if self._table is None or self._table[0] != other:
                    raise ProposalError(f"there is no proposal of {other}'s to accept; {FORMAT_HINT}, or talk")
                proposer, taken = self._table
                rest = tuple(c - t for c, t in zip(self.counts, taken))
                self._deal = {proposer: taken, agent: rest}
            elif m:
                taken = parse_proposal(text[m.end() :], self.counts)
                self._table = (agent, taken)
                self._proposals += 1
        except ProposalError as err:
            if not self._invalid(agent, str(err)):
                return {}, False
            text = ""  # max_invalid reached: the turn passes with nothing said
        else:
            self._valid(agent)
        self._dialogue.append((agent, text))
        self._dialogue_turn += 1
        if self._deal is not None:
            self._over = True
            return {a: self.value(a, self._deal[a]) / TOTAL_VALUE for a in AGENTS}, True
        self._over = self._dialogue_turn >= self.turn_limit
        return {}, self._over

    def value(self, agent: str, taken: tuple[int, ...]) -> int:
        """What ``taken`` is worth to ``agent``."""
        return sum(v * t for v, t in zip(self.values[agent], taken))

    # ------------------------------------------------------------------------------------------ observe
    def _observe(self, agent: str) -> str:
        other = AGENTS[1 - AGENTS.index(agent)]
        pool = ", ".join(f"{c} {ITEMS[i] if c != 1 else SINGULAR[i]}" for i, c in enumerate(self.counts))
        worth = ", ".join(f"{SINGULAR[i]} {v}" for i, v in enumerate(self.values[agent]))
        lines = [
            f"Negotiation: divide {pool} between you ({agent}) and {other}. "
            f"Turn {min(self._dialogue_turn + 1, self.turn_limit)} of {self.turn_limit}; no deal by then "
            f"scores 0 for both.",
            f"Your values per item (private; {other}'s differ): {worth}. The whole pool is worth {TOTAL_VALUE} to you.",
        ]
        if self._dialogue:
            lines.append("Dialogue so far:")
            for who, text in self._dialogue:
                said = clip_text(text, self.max_message_chars) or "(nothing)"
                lines.append(f"  {'you' if who == agent else who}: {said}")
        if self._table is not None:
            proposer, taken = self._table
            mine = taken if proposer == agent else tuple(c - t for c, t in zip(self.counts, taken))
            lines.append(
                f"On the table, {'your' if proposer == agent else proposer + chr(39) + 's'} proposal: "
                f"you get {describe(mine)} (worth {self.value(agent, mine)} to you)."
            )
        if self._deal is not None:
            lines.append(
                f"Deal: you get {describe(self._deal[agent])}, worth {self.value(agent, self._deal[agent])} to you."
            )
        elif self._over:
            lines.append("No deal: the turns ran out; 0 for both.")
        elif self.to_act == (agent,):
            accept = f', or "accept" to take {other}\'s proposal' if self._table and self._table[0] == other else ""
            lines.append(f"Your turn: write a message; to propose, {FORMAT_HINT}{accept}.")
        else:
            lines.append(f"Waiting for {other}.")
        return "\n".join(lines)

    # ------------------------------------------------------------------------------------------ outcome
    def _pareto_optimal(self, deal: dict[str, tuple[int, ...]]) -> bool:
        mine = self.value("player_0", deal["player_0"]), self.value("player_1", deal["player_1"])
        for take in itertools.product(*(range(c + 1) for c in self.counts)):
            rest = tuple(c - t for c, t in zip(self.counts, take))
            alt = self.value("player_0", take), self.value("player_1", rest)
            if alt[0] >= mine[0] and alt[1] >= mine[1] and alt != mine:
                return False
        return True

    def _finish(self, outcome: TextOutcome) -> None:
        outcome.completed = self._deal is not None
        outcome.extra.update(
            counts=dict(zip(ITEMS, self.counts)),
            values={a: dict(zip(ITEMS, self.values[a])) for a in AGENTS},
            deal=None if self._deal is None else {a: dict(zip(ITEMS, self._deal[a])) for a in AGENTS},
            pareto_optimal=None if self._deal is None else self._pareto_optimal(self._deal),
            proposals=self._proposals,
        )
