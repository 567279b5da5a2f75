"""Repeated matrix games with cheap talk (``stag-hunt-talk-v0``, ``ipd-talk-v0``): agents chat, then move.

The array versions (``marlkit.envs.matrix``) ask what learners do with only the last joint action to go on; here
the agents may also *say* things before each move, the classic cheap-talk setting (Farrell & Rabin 1996, "Cheap
Talk", J. Econ. Perspectives). Talk costs nothing and binds no one, so what it buys (coordination on stag, or
promises of cooperation that are kept or broken) is the thing to measure. The payoff tables are those of
``marlkit.envs.matrix`` (imported, not restated): the stag hunt (stag together 4, hare a safe 3, stag alone 0) and
Axelrod's prisoner's dilemma (R=3, S=0, T=5, P=1).

**Phases.** Each of the ``rounds`` rounds is ``talk_turns`` talk phases followed by one move phase; in every phase
both agents act at once. In a talk phase each sends one free-text message (not parsed), which the other sees from
the next phase on. In the move phase each names its action. Observations show the payoff table, the joint actions
and payoffs of past rounds, and the messages of the current round.

**Moves** are read leniently: the first word in the text that names an action wins (``"stag"``/``"hare"``;
``"cooperate"``/``"cooperating"``/``"coop"``, ``"defect"``/``"defecting"`` and a few such forms; any case), or an
answer that is only the action's initial (``"C"``, ``"D"``). Negations are not understood (``"I won't defect"``
reads as defect): ask the agent to answer with the word alone. Text naming no action is an invalid attempt (penalty,
error in the next observation); only the agents whose move was invalid are asked again, the valid moves are held
unseen. After ``max_invalid`` invalid attempts in a row the agent is given the game's **default move**, the
non-cooperative one (``"hare"``, ``"defect"``), and the round is played. We default to the non-cooperative action so
that failing to answer can never count as coordination in the reported rates; since the agent also pays the invalid
penalties, babbling is always worse than saying that action outright.

**Outcome** (``extra``): ``joint_actions`` (per round, the two action names), ``payoffs`` (per round), ``defaulted``
(per round, the agents given the default move), ``coordination_rate`` (fraction of rounds where both chose the
cooperative action: both stag, mutual cooperation) and ``talk`` (every message, as ``(round, agent, text)``).
``completed`` is true when every round was played. There is no winner.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from marlkit.envs.matrix import PRISONERS_DILEMMA, STAG_HUNT
from marlkit.envs.text.base import TextEnv, TextOutcome, clip_text, count_words, quote_text

AGENTS = ("player_0", "player_1")


class MatrixTalk(TextEnv):
    """A two-player matrix game repeated for ``rounds`` rounds, each preceded by ``talk_turns`` rounds of talk.

    ``payoffs[a0][a1] = (r0, r1)``; ``actions`` names the actions in table order, the first one being the
    cooperative action; ``synonyms`` maps extra words (lower case) to action indices; ``default_move`` is the action
    index given after ``max_invalid`` invalid attempts in a row.
    """

    def __init__(
        self,
        payoffs: npt.ArrayLike,
        actions: Sequence[str],
        title: str,
        synonyms: dict[str, int] | None = None,
        default_move: int = 1,
        rounds: int = 5,
        talk_turns: int = 1,
        max_invalid: int = 3,
        invalid_penalty: float = -0.1,
        max_message_chars: int = 300,
        seed: int | None = None,
        count_tokens: Callable[[str], int] = count_words,
    ) -> None:
        super().__init__(seed, count_tokens)
        table = np.asarray(payoffs, dtype=np.float64)
        n = len(actions)
        if table.shape != (n, n, 2):
            raise ValueError(
                f"payoffs must be an {n} x {n} table of (r0, r1) pairs for actions {list(actions)}, "
                f"got shape {table.shape}"
            )
        for name, value, low in (
            ("rounds", rounds, 1),
            ("talk_turns", talk_turns, 0),
            ("max_invalid", max_invalid, 1),
            ("max_message_chars", max_message_chars, 1),
        ):
            if not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if invalid_penalty > 0:
            raise ValueError(f"invalid_penalty must be <= 0 (a penalty), got {invalid_penalty}")
        if not 0 <= default_move < n:
            raise ValueError(f"default_move must be an action index 0..{n - 1}, got {default_move!r}")
        self.payoffs = table
        self.actions = tuple(a.lower() for a in actions)
        self.title = title
        self.default_move = int(default_move)
        self.rounds, self.talk_turns = rounds, talk_turns
        self.max_invalid, self.invalid_penalty = max_invalid, float(invalid_penalty)
        self.max_message_chars = max_message_chars
        self.agents = AGENTS
        # Every phase ends in at most max_invalid steps (a move phase) or one (a talk phase).
        self.max_turns = rounds * (talk_turns + max_invalid)
        words = {a: i for i, a in enumerate(self.actions)} | {w.lower(): i for w, i in (synonyms or {}).items()}
        self._words = words
        self._word_re = re.compile(
            r"\b(" + "|".join(sorted(map(re.escape, words), key=len, reverse=True)) + r")\b", re.IGNORECASE
        )

    # ------------------------------------------------------------------------------------------ parsing
    def parse_action(self, text: str) -> int | None:
        """The action index named by ``text`` (see the module docstring), or None if it names none."""
        m = self._word_re.search(text)
        if m:
            return self._words[m.group(1).lower()]
        stripped = text.strip().strip(".!\"'").lower()
        initials = [i for i, a in enumerate(self.actions) if a[0] == stripped]
        return initials[0] if len(stripped) == 1 and len(initials) == 1 else None

    # --------------------------------------------------------------------------------------------- game
    @property
    def phase(self) -> str:
        return "talk" if self._talks_done < self.talk_turns else "move"

    def allowed_answers(self, agent: str) -> list[str] | None:
        return list(self.actions) if self.phase == "move" else None

    @property
    def to_act(self) -> tuple[str, ...]:
        if self._round >= self.rounds:
            return ()
        if self.phase == "talk":
            return AGENTS
        return tuple(a for a in AGENTS if a not in self._pending)

    def _reset(self) -> None:
        self._round = 0
        self._talks_done = 0
        self._pending: dict[str, int] = {}  # valid moves held while the other agent retries
        self._round_talk: list[tuple[str, str]] = []  # (agent, text) of the current round
        self._history: list[tuple[int, int]] = []
        self._defaulted: list[list[str]] = []
        self._round_defaults: list[str] = []
        self._talk: list[tuple[int, str, str]] = []

    def _step(self, actions: dict[str, str]) -> tuple[dict[str, float], bool]:
        if self.phase == "talk":
            for agent in AGENTS:
                self._round_talk.append((agent, actions[agent]))
                self._talk.append((self._round + 1, agent, actions[agent]))
            self._talks_done += 1
            return {}, False
        for agent, text in actions.items():
            move = self.parse_action(text)
            if move is None:
                names = self._choices()
                if self._invalid(agent, f"no move found in {quote_text(text)}; answer {names}"):
                    self._pending[agent] = self.default_move
                    self._round_defaults.append(agent)
            else:
                self._valid(agent)
                self._pending[agent] = move
        if len(self._pending) < len(AGENTS):
            return {}, False
        joint = (self._pending["player_0"], self._pending["player_1"])
        r0, r1 = self.payoffs[joint]
        self._history.append(joint)
        self._defaulted.append(sorted(self._round_defaults))
        self._round += 1
        self._talks_done = 0
        self._pending, self._round_talk, self._round_defaults = {}, [], []
        return {"player_0": float(r0), "player_1": float(r1)}, self._round >= self.rounds

    # ------------------------------------------------------------------------------------------ observe
    def _observe(self, agent: str) -> str:
        me = AGENTS.index(agent)
        other = AGENTS[1 - me]
        a = self.actions
        table = ", ".join(
            f"{a[i]}/{a[j]} {self._payoff(i, j, me, 0):g}/{self._payoff(i, j, me, 1):g}"
            for i in range(len(a))
            for j in range(len(a))
        )
        lines = [
            f"{self.title}, {self.rounds} rounds. You are {agent}; your partner is {other}.",
            f"Each round you both choose {self._choices()} at the same time. "
            f"Payoffs (you/partner) for your move/partner's move: {table}.",
        ]
        for k, joint in enumerate(self._history):
            mine, theirs = joint[me], joint[1 - me]
            got, gave = self._payoff(mine, theirs, me, 0), self._payoff(mine, theirs, me, 1)
            lines.append(f"Round {k + 1}: you {a[mine]}, partner {a[theirs]} (you got {got:g}, partner {gave:g}).")
        if self._round >= self.rounds:
            total = sum(self._payoff(j[me], j[1 - me], me, 0) for j in self._history)
            lines.append(f"Game over: you scored {total:g} in total.")
            return "\n".join(lines)
        if self._round_talk:
            lines.append(f"Messages in round {self._round + 1}:")
            for who, text in self._round_talk:
                lines.append(f"  {'you' if who == agent else who}: {clip_text(text, self.max_message_chars)}")
        if self.phase == "talk":
            lines.append(
                f"Round {self._round + 1}, talk: send your partner one message (free text; they see it "
                f"before you both move)."
            )
        elif agent in self.to_act:
            lines.append(f"Round {self._round + 1}, move: answer {self._choices()}.")
        else:
            lines.append(f"Round {self._round + 1}, move: your move is in; waiting for {other}.")
        return "\n".join(lines)

    def _choices(self) -> str:
        return " or ".join(f'"{a}"' for a in self.actions)

    def _payoff(self, mine: int, theirs: int, me: int, whose: int) -> float:
        """Payoff of me (``whose=0``) or my partner (1) when I play ``mine`` and the partner ``theirs``."""
        joint = (mine, theirs) if me == 0 else (theirs, mine)
        return float(self.payoffs[joint][me if whose == 0 else 1 - me])

    def _finish(self, outcome: TextOutcome) -> None:
        outcome.completed = self._round >= self.rounds
        both = sum(1 for j in self._history if j == (0, 0))
        outcome.extra.update(
            joint_actions=[(self.actions[i], self.actions[j]) for i, j in self._history],
            payoffs=[tuple(float(x) for x in self.payoffs[j]) for j in self._history],
            defaulted=self._defaulted,
            coordination_rate=both / len(self._history) if self._history else 0.0,
            talk=list(self._talk),
        )


def stag_hunt_talk(
    rounds: int = 5,
    talk_turns: int = 1,
    max_invalid: int = 3,
    invalid_penalty: float = -0.1,
    seed: int | None = None,
    count_tokens: Callable[[str], int] = count_words,
) -> MatrixTalk:
    """The stag hunt of ``marlkit.envs.matrix`` repeated with talk; default move "hare"."""
    return MatrixTalk(
        STAG_HUNT,
        ("stag", "hare"),
        "Iterated stag hunt with talk",
        {"stags": 0, "hares": 1},
        default_move=1,
        rounds=rounds,
        talk_turns=talk_turns,
        max_invalid=max_invalid,
        invalid_penalty=invalid_penalty,
        seed=seed,
        count_tokens=count_tokens,
    )


def ipd_talk(
    rounds: int = 5,
    talk_turns: int = 1,
    max_invalid: int = 3,
    invalid_penalty: float = -0.1,
    seed: int | None = None,
    count_tokens: Callable[[str], int] = count_words,
) -> MatrixTalk:
    """Axelrod's prisoner's dilemma of ``marlkit.envs.matrix`` repeated with talk; default move "defect"."""
    return MatrixTalk(
        PRISONERS_DILEMMA,
        ("cooperate", "defect"),
        "Iterated prisoner's dilemma with talk",
        {"cooperation": 0, "coop": 0, "cooperates": 0, "cooperating": 0, "defection": 1, "defects": 1, "defecting": 1},
        default_move=1,
        rounds=rounds,
        talk_turns=talk_turns,
        max_invalid=max_invalid,
        invalid_penalty=invalid_penalty,
        seed=seed,
        count_tokens=count_tokens,
    )
