"""Two-player normal-form games, one-shot or repeated, batched.

Observation of player i (float32, ``2 * n_actions + 2``): one-hot of its own previous action, one-hot of the other
player's previous action (both zero on the first step), a first-step flag, and the elapsed fraction ``t / T`` of
the episode. So a one-shot game (``episode_length=1``) shows every player the same constant observation, and a
repeated game shows each player the last joint action from its own point of view (parameter sharing works
without an agent id). State: player 0's observation followed by player 1's.

Actions: ``Discrete(n_actions)``, the row (player 0) or column (player 1) of the payoff table.
Rewards: the payoff table entry of the joint action, one per player. Episodes last ``episode_length`` steps and
end by truncation (a repeated game has no terminal state).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from gymnasium import spaces

from marlkit.envs import rendering
from marlkit.envs.base import Dynamics, MultiAgentEnv, Obs

#: Climbing game, common payoff. Claus & Boutilier (1998), "The Dynamics of Reinforcement Learning in Cooperative
#: Multiagent Systems", AAAI, Table 3. Optimum (a, a) = 11 is guarded by -30 penalties.
CLIMBING = [[11, -30, 0], [-30, 7, 6], [0, 0, 5]]


def penalty_payoffs(k: float) -> list[list[float]]:
    """Penalty game, common payoff, ``k <= 0``. Claus & Boutilier (1998), Table 4: two optimal joint actions
    (a, a) and (c, c) worth 10, miscoordination between them costs ``k``, and the safe (b, b) pays 2."""
    return [[10, 0, k], [0, 2, 0], [k, 0, 10]]


#: Prisoner's dilemma, action 0 = cooperate, 1 = defect, with Axelrod's payoffs R=3, S=0, T=5, P=1.
#: Axelrod & Hamilton (1981), "The Evolution of Cooperation", Science 211.
PRISONERS_DILEMMA = [[(3, 3), (0, 5)], [(5, 0), (1, 1)]]

#: Stag hunt, action 0 = stag, 1 = hare: stag together 4, hare is a safe 3 whatever the other does, stag alone 0.
#: Skyrms (2004), "The Stag Hunt and the Evolution of Social Structure", Cambridge University Press, ch. 1.
STAG_HUNT = [[(4, 4), (0, 3)], [(3, 0), (3, 3)]]

#: Matching pennies, action 0 = heads, 1 = tails: player 0 wins (+1) on a match, player 1 on a mismatch. Zero sum.
#: von Neumann & Morgenstern (1944), "Theory of Games and Economic Behavior".
MATCHING_PENNIES = [[(1, -1), (-1, 1)], [(-1, 1), (1, -1)]]

#: Rock-paper-scissors, actions 0 = rock, 1 = paper, 2 = scissors: the winner +1, the loser -1. Zero sum; its one
#: Nash equilibrium is uniform, and self-play on it cycles.
ROCK_PAPER_SCISSORS = [[(0, 0), (-1, 1), (1, -1)], [(1, -1), (0, 0), (-1, 1)], [(-1, 1), (1, -1), (0, 0)]]

#: Biased rock-paper-scissors: as rock-paper-scissors, but rock beating scissors is worth 2. Zero sum and symmetric;
#: its one Nash equilibrium is (1/4, 1/2, 1/4), value 0, so a learner cannot reach it by staying uniform.
BIASED_ROCK_PAPER_SCISSORS = [[(0, 0), (-1, 1), (2, -2)], [(1, -1), (0, 0), (-1, 1)], [(-2, 2), (1, -1), (0, 0)]]


class MatrixGame(MultiAgentEnv):
    """A two-player matrix game; ``payoffs[a0][a1]`` is a common payoff or a pair ``(r0, r1)``."""

    PLAYERS = ("player_0", "player_1")
    max_steps: int  # the episode length
    finite_observations = True  # the last joint action and the step: (n_actions + 1)^2 * episode_length values

    def __init__(
        self,
        payoffs: npt.ArrayLike,
        episode_length: int = 1,
        name: str = "matrix",
        num_envs: int = 1,
        seed: int | None = None,
    ) -> None:
        super().__init__(num_envs, seed)
        table = np.asarray(payoffs, dtype=np.float64)
        if table.ndim == 2:  # common payoff: both players get the same entry
            table = np.stack([table, table], axis=-1)
        if table.ndim != 3 or table.shape[0] != table.shape[1] or table.shape[2] != 2:
            raise ValueError(f"payoffs must be an n x n table of numbers or of (r0, r1) pairs, got shape {table.shape}")
        if not isinstance(episode_length, (int, np.integer)) or episode_length < 1:
            raise ValueError(f"episode_length must be a positive integer, got {episode_length!r}")
        self.payoffs = table
        self.name = name
        self.n_actions = table.shape[0]
        self.max_steps = int(episode_length)
        obs_dim = 2 * self.n_actions + 2
        obs_space = spaces.Box(0.0, 1.0, (obs_dim,), np.float32)
        self._set_spaces(
            {"players": self.PLAYERS},
            {"players": obs_space},
            {"players": spaces.Discrete(self.n_actions)},
            spaces.Box(0.0, 1.0, (2 * obs_dim,), np.float32),
        )
        self._last = np.full((self.num_envs, 2), -1, dtype=np.int64)  # previous joint action, -1 before the first

    def _reset_copies(self, mask: np.ndarray) -> None:
        self._last[mask] = -1

    def _step_dynamics(self, actions: dict[str, np.ndarray]) -> Dynamics:
        a = actions["players"]
        rewards = self.payoffs[a[:, 0], a[:, 1]]  # (num_envs, 2)
        self._last = a.astype(np.int64, copy=True)
        terminated = np.zeros((self.num_envs, 2), dtype=bool)
        return {"players": rewards}, {"players": terminated}, {}

    def _observe(self) -> Obs:
        n, e = self.n_actions, self.num_envs
        obs = np.zeros((e, 2, 2 * n + 2), dtype=np.float32)
        played = self._last[:, 0] >= 0
        rows = np.flatnonzero(played)
        own, other = self._last[rows], self._last[rows, ::-1]
        for i in (0, 1):  # the two players' points of view
            obs[rows, i, own[:, i]] = 1.0
            obs[rows, i, n + other[:, i]] = 1.0
        obs[:, :, 2 * n] = ~played[:, None]
        obs[:, :, 2 * n + 1] = (self._t / self.max_steps)[:, None]
        return {"players": obs}

    def _state(self) -> np.ndarray:
        return self._observe()["players"].reshape(self.num_envs, -1)

    def _render_copy(self, index: int) -> np.ndarray:
        """The payoff table as colored cells (player 0's payoff), the last joint action framed in black."""
        cell, n = 48, self.n_actions
        frame = rendering.blank(cell * n, cell * n)
        p = self.payoffs[..., 0]
        span = max(np.ptp(p), 1e-9)
        for r in range(n):
            for c in range(n):
                g = int(80 + 175 * (p[r, c] - p.min()) / span)
                rendering.draw_rect(
                    frame, c * cell + 2, r * cell + 2, (c + 1) * cell - 2, (r + 1) * cell - 2, (255 - g // 2, g, 90)
                )
        a0, a1 = self._last[index]
        if a0 >= 0:
            x, y = a1 * cell, a0 * cell
            for x0, y0, x1, y1 in (
                (x, y, x + cell, y + 3),
                (x, y + cell - 3, x + cell, y + cell),
                (x, y, x + 3, y + cell),
                (x + cell - 3, y, x + cell, y + cell),
            ):
                rendering.draw_rect(frame, x0, y0, x1, y1, (0, 0, 0))
        return frame


def climbing(episode_length: int = 1, num_envs: int = 1, seed: int | None = None) -> MatrixGame:
    """Claus & Boutilier's climbing game (common payoff, 3 actions)."""
    return MatrixGame(CLIMBING, episode_length, "climbing", num_envs, seed)


def penalty(k: float = -10.0, episode_length: int = 1, num_envs: int = 1, seed: int | None = None) -> MatrixGame:
    """Claus & Boutilier's penalty game with miscoordination cost ``k <= 0`` (common payoff, 3 actions)."""
    if k > 0:
        raise ValueError(f"the penalty game needs k <= 0 (a penalty), got k={k}")
    return MatrixGame(penalty_payoffs(k), episode_length, f"penalty(k={k})", num_envs, seed)


def prisoners_dilemma(episode_length: int = 1, num_envs: int = 1, seed: int | None = None) -> MatrixGame:
    """Prisoner's dilemma (0 = cooperate, 1 = defect); set ``episode_length > 1`` for the iterated game."""
    return MatrixGame(PRISONERS_DILEMMA, episode_length, "prisoners_dilemma", num_envs, seed)


def stag_hunt(episode_length: int = 1, num_envs: int = 1, seed: int | None = None) -> MatrixGame:
    """Stag hunt (0 = stag, 1 = hare)."""
    return MatrixGame(STAG_HUNT, episode_length, "stag_hunt", num_envs, seed)


def matching_pennies(episode_length: int = 1, num_envs: int = 1, seed: int | None = None) -> MatrixGame:
    """Matching pennies (0 = heads, 1 = tails), zero sum."""
    return MatrixGame(MATCHING_PENNIES, episode_length, "matching_pennies", num_envs, seed)


def rock_paper_scissors(episode_length: int = 1, num_envs: int = 1, seed: int | None = None) -> MatrixGame:
    """Rock-paper-scissors (0 = rock, 1 = paper, 2 = scissors), zero sum."""
    return MatrixGame(ROCK_PAPER_SCISSORS, episode_length, "rock_paper_scissors", num_envs, seed)


def biased_rock_paper_scissors(episode_length: int = 1, num_envs: int = 1, seed: int | None = None) -> MatrixGame:
    """Rock-paper-scissors where rock beats scissors by 2 (Nash (1/4, 1/2, 1/4)), zero sum."""
    return MatrixGame(BIASED_ROCK_PAPER_SCISSORS, episode_length, "biased_rock_paper_scissors", num_envs, seed)
