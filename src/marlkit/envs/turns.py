"""Turn-based games in the batched contract: the pieces every turn-based env shares (the contract itself is in
``marlkit.envs.base``'s docstring).

A turn-based env mixes in ``TurnBased`` before ``MultiAgentEnv`` and writes ``_to_play()`` (the agent to move per
copy, ``-1`` once the game is over) and ``_legal_moves()`` (the mover's legal moves); the mixin builds the action
masks (legal moves for the mover, only PASS for everyone else) and reads the movers' actions out of the batch
(``_moves``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np


def seat_slots(groups: Mapping[str, tuple[str, ...]]) -> list[tuple[str, int]]:
    """``(group, index in group)`` of each agent, in ``agents`` order (what ``to_play`` indexes)."""
    return [(g, i) for g, ids in groups.items() for i in range(len(ids))]


def turn_masks(groups: Mapping[str, tuple[str, ...]], legal: np.ndarray, to_play: np.ndarray) -> dict[str, np.ndarray]:
    """Action masks of a turn-based game: ``legal`` ``(num_envs, n_moves)`` are the mover's legal moves, ``to_play``
    ``(num_envs,)`` the mover's index in ``agents`` (``-1``: nobody moves). Each group's mask is
    ``(num_envs, n_agents, n_moves + 1)``: the mover may play its legal moves, every other agent only PASS (the
    last index)."""
    n, moves = legal.shape
    out: dict[str, np.ndarray] = {}
    start = 0
    for g, ids in groups.items():
        mask = np.zeros((n, len(ids), moves + 1), dtype=bool)
        mask[..., moves] = True
        rows = np.flatnonzero((to_play >= start) & (to_play < start + len(ids)))
        seats = to_play[rows] - start
        mask[rows, seats, :moves] = legal[rows]
        mask[rows, seats, moves] = False
        out[g] = mask
        start += len(ids)
    return out


class TurnBased:
    """Mixin for a ``MultiAgentEnv`` whose agents take turns: masks and movers' actions from ``_to_play`` and
    ``_legal_moves``. Put it first: ``class Game(TurnBased, MultiAgentEnv)``."""

    turn_based: ClassVar[bool] = True
    groups: dict[str, tuple[str, ...]]
    num_envs: int
    #: Moves of the game; every group's action space is ``Discrete(n_moves + 1)``, PASS being ``n_moves``.
    n_moves: int

    def _to_play(self) -> np.ndarray:
        raise NotImplementedError

    def _legal_moves(self) -> np.ndarray:
        """``(num_envs, n_moves)`` bool: the legal moves of the agent to move (any row where nobody moves)."""
        raise NotImplementedError

    def _action_mask(self) -> dict[str, np.ndarray]:
        return turn_masks(self.groups, self._legal_moves(), self._to_play())

    def _moves(self, actions: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """The movers' actions ``(num_envs,)`` (``-1`` where nobody moves) and whether each is legal; the actions of
        agents not to move are ignored."""
        to_play = self._to_play()
        moves = np.full(self.num_envs, -1, dtype=np.int64)
        start = 0
        for g, ids in self.groups.items():
            rows = np.flatnonzero((to_play >= start) & (to_play < start + len(ids)))
            moves[rows] = np.asarray(actions[g])[rows, to_play[rows] - start]
            start += len(ids)
        legal = self._legal_moves()
        ok = (moves >= 0) & (moves < self.n_moves)
        ok[ok] = legal[np.flatnonzero(ok), moves[ok]]
        return moves, ok
