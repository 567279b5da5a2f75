"""Tic-tac-toe in text (``tictactoe-v0``): two agents, or one learner against a built-in opponent.

The smallest text game with rules worth checking: a language agent must read a board, name a cell, and learn that
an occupied cell is not a move. X moves first. Rewards are given when the game ends: win +1, loss -1, draw 0, plus
the base class's ``invalid_penalty`` for every invalid attempt.

**Moves.** The canonical format is a column letter and a row number, ``"B2"`` (columns A-C left to right, rows 1-3
top to bottom). ``parse_move`` also accepts, in this order of priority (the first pattern that occurs anywhere in
the text wins, at its leftmost occurrence, so the reading is deterministic):

1. ``"row 2 col 3"`` / ``"row 2, column 3"`` / ``"r2c3"`` (and column first: ``"col 3 row 2"``), rows and columns
   numbered 1-3;
2. a letter and a number with nothing between them, ``"b2"`` or ``"2B"`` (``"a 2"`` is not read: too often an
   article and a number);
3. a cell number 1-9 standing alone, counted row by row as on a phone keypad: 1 = A1, 2 = B1, 3 = C1, 4 = A2 ...

Text in one of these shapes that falls off the board (``"D4"``, ``"10"``, ``"row 4 col 1"``) is an invalid attempt
saying so; text with none of them is an invalid attempt quoting the canonical format. An occupied cell is an
invalid attempt listing the legal moves. ``legal_moves()`` (canonical names of the empty cells) and ``ALL_MOVES``
are public, so a language-model policy can constrain its decoding to them.

**Invalid moves.** The same agent is asked again with the error opening its observation. After ``max_invalid``
invalid attempts in a row the agent **forfeits**: it loses (-1) and the other side wins (+1). We forfeit rather
than play a random legal move for it, so a policy that never learns the format cannot be carried by chance wins.

**Opponent.** ``opponent=None`` (default): agents ``player_0`` and ``player_1`` both act. ``opponent="random"`` or
``"heuristic"``: the only agent is ``player_0`` and the other side is played inside ``step`` with the env's
``np_random`` (so a seed fixes the opponent too); its moves appear in the observation and the transcript (as agent
``"opponent"``). ``mark`` is ``player_0``'s mark: ``"X"``, ``"O"`` or ``"random"`` (drawn at each reset).

**Policies.** ``RandomMovePolicy`` and ``HeuristicPolicy`` are scripted ``TextPolicy`` s that read the observation
text (``read_observation``) and answer a canonical move; the built-in opponents use the same move functions.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np

from marlkit.core.errors import did_you_mean
from marlkit.envs.text.base import Message, TextEnv, TextOutcome, count_words, quote_text

COLUMNS, ROWS = "ABC", "123"
#: Canonical names of the nine cells, in cell-index order (row by row): A1, B1, C1, A2, ...
ALL_MOVES: tuple[str, ...] = tuple(f"{c}{r}" for r in ROWS for c in COLUMNS)
#: The eight lines of three cells (rows, columns, diagonals), as cell indices.
LINES = ((0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8), (2, 4, 6))
EMPTY = "."
FORMAT_HINT = 'a column letter A-C and a row number 1-3, e.g. "B2" (also accepted: "row 2 col 2" or a cell number 1-9)'
OPPONENTS = ("random", "heuristic")


class MoveParseError(ValueError):
    """The text names no cell of the board; the message says what was read and what is allowed."""


_ROW_COL = re.compile(r"\brow\s*(\d+)\W{0,3}\s*col(?:umn)?\s*(\d+)|\br(\d+)\s*c(\d+)\b", re.IGNORECASE)
_COL_ROW = re.compile(r"\bcol(?:umn)?\s*(\d+)\W{0,3}\s*row\s*(\d+)", re.IGNORECASE)
_LETTER_NUMBER = re.compile(r"\b([a-z])(\d+)\b", re.IGNORECASE)
_NUMBER_LETTER = re.compile(r"\b(\d)([a-z])\b", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w.])(\d+)(?!\w|\.\d)")  # a whole number, not part of a word or a decimal


def cell_index(column: int, row: int) -> int:
    """Cell index of 0-based ``column`` and ``row``."""
    return 3 * row + column


def parse_move(text: str) -> int:
    """The cell index (0-8, row by row) named by ``text``; raises ``MoveParseError`` when it names none.

    See the module docstring for the accepted formats and their priority. The board is not consulted: whether the
    cell is empty is the game's business.
    """
    if not isinstance(text, str):
        raise TypeError(f"parse_move takes a str, got {type(text).__name__}")
    row_col = _row_and_column(text)
    if row_col is not None:
        r, c = int(row_col[0]), int(row_col[1])
        if not (1 <= r <= 3 and 1 <= c <= 3):
            raise MoveParseError(f"row {r}, column {c} is off the board: rows and columns are numbered 1-3")
        return cell_index(c - 1, r - 1)
    for pattern, swap in ((_LETTER_NUMBER, False), (_NUMBER_LETTER, True)):
        m = pattern.search(text)
        if m:
            letter, number = (m.group(2), m.group(1)) if swap else (m.group(1), m.group(2))
            letter = letter.upper()
            if letter not in COLUMNS or number not in ROWS:
                raise MoveParseError(f"{m.group(0)!r} is off the board: columns are A-C and rows are 1-3")
            return cell_index(COLUMNS.index(letter), ROWS.index(number))
    m = _NUMBER.search(text)
    if m:
        n = int(m.group(1))
        if not 1 <= n <= 9:
            raise MoveParseError(f"cell number {n} is off the board: cells are numbered 1-9 row by row")
        return n - 1
    raise MoveParseError(f"no move found in {quote_text(text)}; answer with {FORMAT_HINT}")


def _row_and_column(text: str) -> tuple[str, str] | None:
    """The row and column numbers of the first "row R, column C" or "column C, row R" in ``text``, if any."""
    m = _ROW_COL.search(text)
    col_row = _COL_ROW.search(text)
    if m and (not col_row or m.start() <= col_row.start()):
        return (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    if col_row:
        return col_row.group(2), col_row.group(1)
    return None


def winner_mark(board: Sequence[str]) -> str | None:
    """``"X"`` or ``"O"`` if that mark holds a full line, else None."""
    for a, b, c in LINES:
        if board[a] != EMPTY and board[a] == board[b] == board[c]:
            return board[a]
    return None


def empty_cells(board: Sequence[str]) -> list[int]:
    return [i for i, v in enumerate(board) if v == EMPTY]


def random_move(board: Sequence[str], mark: str, rng: np.random.Generator) -> int:
    """A uniformly random empty cell."""
    return int(rng.choice(empty_cells(board)))


def heuristic_move(board: Sequence[str], mark: str, rng: np.random.Generator) -> int:
    """A weak but sensible player: win now if possible, else block the other's immediate win, else take the centre,
    else a random empty cell. It does not see forks, so it can be beaten."""
    other = "O" if mark == "X" else "X"
    free = empty_cells(board)
    for who in (mark, other):  # first a winning cell of ours, then a cell the other would win on
        for cell in free:
            trial = list(board)
            trial[cell] = who
            if winner_mark(trial) == who:
                return cell
    if board[4] == EMPTY:
        return 4
    return int(rng.choice(free))


_MOVE_FUNCTIONS: dict[str, Callable[[Sequence[str], str, np.random.Generator], int]] = {
    "random": random_move,
    "heuristic": heuristic_move,
}


def render_board(board: Sequence[str]) -> str:
    lines = ["    A B C"]
    for r in range(3):
        lines.append(f" {r + 1}  " + " ".join(board[3 * r : 3 * r + 3]))
    return "\n".join(lines)


class TicTacToe(TextEnv):
    """Tic-tac-toe between two text agents, or one against a built-in opponent; see the module docstring."""

    def __init__(
        self,
        opponent: str | None = None,
        mark: str = "X",
        max_invalid: int = 3,
        invalid_penalty: float = -0.1,
        seed: int | None = None,
        count_tokens: Callable[[str], int] = count_words,
    ) -> None:
        super().__init__(seed, count_tokens)
        if opponent is not None and opponent not in OPPONENTS:
            raise ValueError(
                f"opponent must be None (two agents) or one of {OPPONENTS}, got {opponent!r}"
                f"{did_you_mean(str(opponent), OPPONENTS)}"
            )
        if mark not in ("X", "O", "random"):
            raise ValueError(f"mark (player_0's mark) must be 'X', 'O' or 'random', got {mark!r}")
        if not isinstance(max_invalid, int) or max_invalid < 1:
            raise ValueError(f"max_invalid must be a positive integer, got {max_invalid!r}")
        if invalid_penalty > 0:
            raise ValueError(f"invalid_penalty must be <= 0 (a penalty), got {invalid_penalty}")
        self.opponent = opponent
        self.mark = mark
        self.max_invalid = max_invalid
        self.invalid_penalty = float(invalid_penalty)
        self.agents = ("player_0",) if opponent else ("player_0", "player_1")
        # 9 moves, each preceded by at most max_invalid - 1 invalid attempts: a game always ends before this.
        self.max_turns = 9 * max_invalid
        self.board: list[str] = [EMPTY] * 9
        self.marks: dict[str, str] = {}
        self._to_move = "X"
        self._result: str | None = None  # "win", "draw" or "forfeit" once over
        self._winner: str | None = None  # agent id (or "opponent")
        self._last: tuple[str, str] | None = None  # (who, cell name) of the last move

    # --------------------------------------------------------------------------------------------- game
    @property
    def to_act(self) -> tuple[str, ...]:
        if self._result is not None:
            return ()
        return (self._player_of(self._to_move),)

    def legal_moves(self) -> list[str]:
        """Canonical names of the empty cells, in board order (the moves allowed to whoever is to move)."""
        return [ALL_MOVES[i] for i in empty_cells(self.board)]

    def allowed_answers(self, agent: str) -> list[str] | None:
        return self.legal_moves()

    def _player_of(self, mark: str) -> str:
        for who, m in self.marks.items():
            if m == mark:
                return who
        raise AssertionError(f"no player holds {mark}")

    def _reset(self) -> None:
        first = self.mark if self.mark != "random" else ("X", "O")[int(self.np_random.integers(2))]
        self.marks = {"player_0": first, ("opponent" if self.opponent else "player_1"): "O" if first == "X" else "X"}
        self.board = [EMPTY] * 9
        self._to_move = "X"
        self._result = self._winner = None
        self._last = None
        if self.opponent and self.marks["opponent"] == "X":
            self._opponent_moves(self.opponent)

    def _place(self, who: str, cell: int) -> None:
        mark = self.marks[who]
        self.board[cell] = mark
        self._last = (who, ALL_MOVES[cell])
        if winner_mark(self.board) == mark:
            self._result, self._winner = "win", who
        elif not empty_cells(self.board):
            self._result = "draw"
        self._to_move = "O" if mark == "X" else "X"

    def _opponent_moves(self, opponent: str) -> None:
        cell = _MOVE_FUNCTIONS[opponent](self.board, self.marks["opponent"], self.np_random)
        self._outcome.transcript.append(Message(self._turn, "opponent", "move", ALL_MOVES[cell]))
        self._place("opponent", cell)

    def _step(self, actions: dict[str, str]) -> tuple[dict[str, float], bool]:
        ((agent, text),) = actions.items()
        try:
            cell = parse_move(text)
            if self.board[cell] != EMPTY:
                raise MoveParseError(f"{ALL_MOVES[cell]} is already taken by {self.board[cell]}")
        except MoveParseError as err:
            if self._invalid(agent, f"{err}. Legal moves: {', '.join(self.legal_moves())}."):
                self._result = "forfeit"
                self._winner = next(w for w in self.marks if w != agent)
                return self._rewards(), True
            return {}, False
        self._valid(agent)
        self._place(agent, cell)
        if self._result is None and self.opponent:
            self._opponent_moves(self.opponent)
        return (self._rewards(), True) if self._result is not None else ({}, False)

    def _rewards(self) -> dict[str, float]:
        """Final rewards: +1 to the winner, -1 to the loser, 0 each on a draw (only the agents, not an opponent)."""
        return {a: 0.0 if self._winner is None else (1.0 if a == self._winner else -1.0) for a in self.agents}

    # ------------------------------------------------------------------------------------------ observe
    def _observe(self, agent: str) -> str:
        mark = self.marks[agent]
        others = ", ".join(f"{w} plays {m}" for w, m in self.marks.items() if w != agent)
        lines = [
            f"Tic-tac-toe. You are {agent} and play {mark}; {others}. X moves first.",
            "Board (columns A-C, rows 1-3, '.' is empty):",
            render_board(self.board),
        ]
        if self._last is not None:
            who, cell = self._last
            lines.append(f"Last move: {'you' if who == agent else who} ({self.marks[who]}) played {cell}.")
        if self._result == "draw":
            lines.append("Game over: a draw.")
        elif self._result is not None:
            how = "by forfeit (too many invalid moves)" if self._result == "forfeit" else "with three in a row"
            lines.append(f"Game over: {'you win' if self._winner == agent else f'{self._winner} wins'} {how}.")
        elif self.to_act == (agent,):
            lines.append(f"Your turn ({mark}). Legal moves: {', '.join(self.legal_moves())}.")
            lines.append(f"Answer with {FORMAT_HINT}.")
        else:
            lines.append(f"Waiting for {self.to_act[0]} ({self._to_move}) to move.")
        return "\n".join(lines)

    def _finish(self, outcome: TextOutcome) -> None:
        outcome.completed = self._result is not None
        outcome.winner = self._winner
        outcome.extra.update(result=self._result or "unfinished", marks=dict(self.marks), board="".join(self.board))


# ------------------------------------------------------------------------------------------ scripted policies
_BOARD_ROW = re.compile(r"^ ([123])  ([XO.]) ([XO.]) ([XO.])$", re.MULTILINE)
_YOUR_TURN = re.compile(r"^Your turn \(([XO])\)\. Legal moves: ([A-C1-3, ]+)\.$", re.MULTILINE)


def read_observation(observation: str) -> tuple[list[str], str, list[str]]:
    """``(board, your mark, legal moves)`` read back from an observation asking for a move.

    Raises ``ValueError`` if the text is not a tic-tac-toe observation of a player whose turn it is.
    """
    rows = _BOARD_ROW.findall(observation)
    turn = _YOUR_TURN.search(observation)
    if len(rows) != 3 or turn is None:
        raise ValueError(f"not a tic-tac-toe observation asking for a move: {quote_text(observation)}")
    board = [v for _, *cells in sorted(rows) for v in cells]
    return board, turn.group(1), [m.strip() for m in turn.group(2).split(",")]


class _ScriptedPlayer:
    """A seeded ``TextPolicy`` answering every observation with the canonical name of the move ``choose`` picks."""

    choose: Callable[[Sequence[str], str, np.random.Generator], int]

    def __init__(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)

    def act(self, observations: Sequence[str]) -> list[str]:
        answers = []
        for text in observations:
            board, mark, _ = read_observation(text)
            answers.append(ALL_MOVES[type(self).choose(board, mark, self.rng)])
        return answers


class RandomMovePolicy(_ScriptedPlayer):
    """Plays a uniformly random legal move (the baseline every learner should beat)."""

    choose = staticmethod(random_move)


class HeuristicPolicy(_ScriptedPlayer):
    """Wins if it can, blocks if it must, takes the centre, else plays at random (``heuristic_move``)."""

    choose = staticmethod(heuristic_move)
