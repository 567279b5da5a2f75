"""Kuhn poker and Leduc hold'em, batched, with OpenSpiel's rules and information-state tensors.

Both are two-player zero-sum turn-based games (the contract of ``marlkit.envs.base``: one step per move,
``info["to_play"]``, PASS for the player not to move). The players are one group, ``player`` (``player_0`` moves
first). Cards are dealt at reset from the env's generator; nothing of a copy's deal shows in another player's
observation until the rules reveal it.

Kuhn poker (Kuhn 1950; OpenSpiel ``kuhn_poker``): cards J, Q, K (0, 1, 2), one each, ante 1. Moves: 0 pass
(check or fold), 1 bet (bet or call). ``pp``: showdown for 1; ``bp``, ``pbp``: the folder loses 1; ``bb``, ``pbb``:
showdown for 2. Observation (11): the observer one-hot (2), its card (3), then each of the up to 3 moves so far as
pass ``10`` or bet ``01``: OpenSpiel's ``information_state_tensor``.

Leduc hold'em (Southey et al. 2005; OpenSpiel ``leduc_poker``): six cards, J J Q Q K K (0..5, rank ``card // 2``),
one private card each, ante 1, then a betting round, a public card and a second betting round. Moves: 0 fold, 1
call (check), 2 raise; a raise is 2 in the first round and 4 in the second, at most 2 raises per round; fold is
legal only when facing a bet; ``player_0`` opens both rounds. A round ends when both checked, or a raise is
called. At the showdown a pair with the public card wins, else the higher rank; equal ranks split the pot.
Observation (30): observer (2), private card (6), public card (6), then the two rounds' up to 4 moves each as call
``10`` or raise ``01`` (fold shows as nothing): OpenSpiel's ``information_state_tensor``.

Rewards: each player's winnings (chips won minus chips put in) at the step that ends the hand, zero before.
State: both players' observations, concatenated. With ``validate_actions`` off a mover's illegal move is mapped as
OpenSpiel's ``action_mapping`` does (Leduc: fold when not facing a bet, or a raise past the limit, calls); a mover's
PASS (the non-movers' action) is an illegal move too: Kuhn plays it as pass, Leduc as call.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from marlkit.envs.base import Dynamics, MultiAgentEnv, Obs
from marlkit.envs.turns import TurnBased

PLAYERS = ("player_0", "player_1")


class KuhnPoker(TurnBased, MultiAgentEnv):
    """Kuhn poker: ``num_envs`` hands at once (see the module docstring)."""

    n_moves = 2
    finite_observations = True
    PASS_MOVE, BET = 0, 1

    def __init__(self, num_envs: int = 1, seed: int | None = None) -> None:
        super().__init__(num_envs, seed)
        obs = spaces.Box(0.0, 1.0, (11,), np.float32)
        self._set_spaces(
            {"player": PLAYERS},
            {"player": obs},
            {"player": spaces.Discrete(self.n_moves + 1)},
            spaces.Box(0.0, 1.0, (22,), np.float32),
        )
        n = self.num_envs
        self.cards = np.zeros((n, 2), np.int64)
        self.history = np.full((n, 3), -1, np.int64)
        self.n_played = np.zeros(n, np.int64)
        self.over = np.zeros(n, bool)
        self._rows = np.arange(n)

    def _reset_copies(self, mask: np.ndarray) -> None:
        k = int(mask.sum())
        self.cards[mask] = self.np_random.random((k, 3)).argsort(axis=1)[:, :2]
        self.history[mask] = -1
        self.n_played[mask] = 0
        self.over[mask] = False

    def _to_play(self) -> np.ndarray:
        return np.where(self.over, -1, self.n_played % 2)

    def _legal_moves(self) -> np.ndarray:
        return np.ones((self.num_envs, self.n_moves), bool)

    def _step_dynamics(self, actions: dict[str, np.ndarray]) -> Dynamics:
        moves, legal = self._moves(actions)  # both moves are legal; only the mover's PASS is not
        live = ~self.over
        moves = np.where(legal | ~live, moves, self.PASS_MOVE)
        rows = np.flatnonzero(live)
        self.history[rows, self.n_played[rows]] = moves[rows]
        self.n_played[rows] += 1
        h0, h1, h2 = self.history.T
        n = self.n_played
        ends = live & (((n == 2) & ~((h0 == 0) & (h1 == 1))) | (n == 3))
        stake = np.where(n == 2, np.where(h0 == h1, 1 + h0, 0), np.where(h2 == 1, 2, 0))  # 0: someone folded
        higher = np.where(self.cards[:, 0] > self.cards[:, 1], 1.0, -1.0)
        r0 = np.where(stake > 0, higher * stake, np.where(n == 2, 1.0, -1.0))  # bp: player_1 folds; pbp: player_0
        r0 = np.where(ends, r0, 0.0)
        self.over |= ends
        rewards = np.stack([r0, -r0], axis=1)
        term = np.repeat(self.over[:, None], 2, axis=1)
        return {"player": rewards}, {"player": term}, {}

    def _observe(self) -> Obs:
        n = self.num_envs
        obs = np.zeros((n, 2, 11), np.float32)
        obs[:, 0, 0] = obs[:, 1, 1] = 1.0
        for p in range(2):
            obs[self._rows, p, 2 + self.cards[:, p]] = 1.0
        played = self.history >= 0
        e, t = np.nonzero(played)
        obs[e, :, 5 + 2 * t + self.history[e, t]] = 1.0
        return {"player": obs}

    def _state(self) -> np.ndarray:
        return self._observe()["player"].reshape(self.num_envs, -1)


class LeducPoker(TurnBased, MultiAgentEnv):
    """Leduc hold'em: ``num_envs`` hands at once (see the module docstring)."""

    n_moves = 3
    finite_observations = True
    FOLD, CALL, RAISE = 0, 1, 2
    RAISE_SIZE = (2, 4)
    MAX_RAISES = 2
    SLOTS = 4  # moves a betting round can hold: raise, raise, call after a check

    def __init__(self, num_envs: int = 1, seed: int | None = None) -> None:
        super().__init__(num_envs, seed)
        self._set_spaces(
            {"player": PLAYERS},
            {"player": spaces.Box(0.0, 1.0, (30,), np.float32)},
            {"player": spaces.Discrete(self.n_moves + 1)},
            spaces.Box(0.0, 1.0, (60,), np.float32),
        )
        n = self.num_envs
        self.private = np.zeros((n, 2), np.int64)
        self.public = np.zeros(n, np.int64)  # dealt at reset, shown from the second round on
        self.round = np.zeros(n, np.int64)  # 0 or 1
        self.bets = np.full((n, 2, self.SLOTS), -1, np.int64)
        self.n_bets = np.zeros(n, np.int64)  # moves so far in the current round
        self.stakes = np.ones(n, np.int64)
        self.ante = np.ones((n, 2), np.int64)
        self.raises = np.zeros(n, np.int64)
        self.calls = np.zeros(n, np.int64)
        self.mover = np.zeros(n, np.int64)
        self.over = np.zeros(n, bool)
        self._rows = np.arange(n)

    def _reset_copies(self, mask: np.ndarray) -> None:
        k = int(mask.sum())
        deal = self.np_random.random((k, 6)).argsort(axis=1)
        self.private[mask] = deal[:, :2]
        self.public[mask] = deal[:, 2]
        self.round[mask] = 0
        self.bets[mask] = -1
        self.n_bets[mask] = 0
        self.stakes[mask] = 1
        self.ante[mask] = 1
        self.raises[mask] = 0
        self.calls[mask] = 0
        self.mover[mask] = 0
        self.over[mask] = False

    def _to_play(self) -> np.ndarray:
        return np.where(self.over, -1, self.mover)

    def _legal_moves(self) -> np.ndarray:
        legal = np.ones((self.num_envs, self.n_moves), bool)
        legal[:, self.FOLD] = self.stakes > self.ante[self._rows, self.mover]
        legal[:, self.RAISE] = self.raises < self.MAX_RAISES
        return legal

    def _step_dynamics(self, actions: dict[str, np.ndarray]) -> Dynamics:
        moves, legal = self._moves(actions)
        live = ~self.over
        moves = np.where(legal | ~live, moves, self.CALL)  # OpenSpiel's action_mapping
        rows, cur = self._rows, self.mover
        fold = live & (moves == self.FOLD)
        call = live & (moves == self.CALL)
        raise_ = live & (moves == self.RAISE)
        r = np.flatnonzero(live)
        self.bets[r, self.round[r], self.n_bets[r]] = moves[r]
        self.n_bets[r] += 1
        # A call (or the call part of a raise) matches the stakes; a raise then lifts them by the round's size.
        matched = call | raise_
        self.ante[rows[matched], cur[matched]] = self.stakes[matched]
        self.stakes += np.where(raise_, np.where(self.round == 0, self.RAISE_SIZE[0], self.RAISE_SIZE[1]), 0)
        self.ante[rows[raise_], cur[raise_]] = self.stakes[raise_]
        self.raises += raise_
        self.calls = np.where(raise_, 0, self.calls + call)
        ready = matched & (((self.raises == 0) & (self.calls == 2)) | ((self.raises > 0) & (self.calls == 1)))
        ends = fold | (ready & (self.round == 1))
        next_round = ready & (self.round == 0)

        # Winnings: the folder loses what it put in; at a showdown a pair wins, then the higher rank; else a split.
        rank = self.private // 2
        pair = rank == (self.public // 2)[:, None]
        score = pair * 10 + rank
        sign0 = np.sign(score[:, 0] - score[:, 1]).astype(np.float64)
        folder = cur
        fold_r0 = np.where(folder == 0, -self.ante[:, 0], self.ante[:, 1]).astype(np.float64)
        r0 = np.where(fold, fold_r0, sign0 * self.ante[:, 0])
        r0 = np.where(ends, r0, 0.0)

        self.over |= ends
        self.round[next_round] = 1
        self.n_bets[next_round] = 0
        self.raises[next_round] = 0
        self.calls[next_round] = 0
        self.mover = np.where(next_round, 0, np.where(live, 1 - cur, cur))
        rewards = np.stack([r0, -r0], axis=1)
        term = np.repeat(self.over[:, None], 2, axis=1)
        return {"player": rewards}, {"player": term}, {}

    def _observe(self) -> Obs:
        n = self.num_envs
        obs = np.zeros((n, 2, 30), np.float32)
        obs[:, 0, 0] = obs[:, 1, 1] = 1.0
        for p in range(2):
            obs[self._rows, p, 2 + self.private[:, p]] = 1.0
        shown = np.flatnonzero(self.round == 1)  # the public card is dealt when the second round starts
        obs[shown, :, 8 + self.public[shown]] = 1.0
        e, rd, t = np.nonzero(self.bets > 0)  # calls (1) and raises (2); a fold writes nothing
        obs[e, :, 14 + 8 * rd + 2 * t + self.bets[e, rd, t] - 1] = 1.0
        return {"player": obs}

    def _state(self) -> np.ndarray:
        return self._observe()["player"].reshape(self.num_envs, -1)
