"""The two-step game of the QMIX paper: a cooperative task VDN's additive value cannot represent, QMIX's can.

Rashid et al. 2018, "QMIX: Monotonic Value Function Factorisation for Deep Multi-Agent Reinforcement Learning",
ICML, §6.1 and Fig. 3 (https://arxiv.org/abs/1803.11485). Two agents, two actions each (A = 0, B = 1).
Step 1 (state 1) pays nothing; agent 0's action picks the second state (A -> 2A, B -> 2B), agent 1's does
nothing. Step 2 pays the common reward of the joint action and the episode terminates:

    2A: [[7, 7],      2B: [[0, 1],
         [7, 7]]           [1, 8]]

The optimum goes to 2B and plays (B, B) for 8; a learner whose joint value is a sum of per-agent values (VDN)
under uniform exploration values 2B's best at most 6.5 and settles for 7 through 2A.

Observation of each agent and the global state (float32, 3): the one-hot of the current state (1, 2A, 2B).
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from marlkit.envs import rendering
from marlkit.envs.base import Dynamics, MultiAgentEnv, Obs

#: Payoffs of the second step, by state: ``PAYOFFS[state - 1][a0][a1]`` (state 1 = 2A, 2 = 2B).
PAYOFFS = np.array([[[7.0, 7.0], [7.0, 7.0]], [[0.0, 1.0], [1.0, 8.0]]])


class TwoStepGame(MultiAgentEnv):
    """The QMIX paper's two-step cooperative matrix game, batched."""

    AGENTS = ("agent_0", "agent_1")
    finite_observations = True  # three one-hot states: tabular learners can train here

    def __init__(self, num_envs: int = 1, seed: int | None = None) -> None:
        super().__init__(num_envs, seed)
        box = spaces.Box(0.0, 1.0, (3,), np.float32)
        self._set_spaces({"agents": self.AGENTS}, {"agents": box}, {"agents": spaces.Discrete(2)}, box)
        self._where = np.zeros(self.num_envs, np.int64)  # 0: state 1, 1: state 2A, 2: state 2B

    def _reset_copies(self, mask: np.ndarray) -> None:
        self._where[mask] = 0

    def _step_dynamics(self, actions: dict[str, np.ndarray]) -> Dynamics:
        a = actions["agents"]
        first = self._where == 0
        reward = np.where(first, 0.0, PAYOFFS[np.maximum(self._where - 1, 0), a[:, 0], a[:, 1]])
        terminated = np.repeat(~first[:, None], 2, axis=1)
        self._where = np.where(first, 1 + a[:, 0], self._where)
        return {"agents": np.repeat(reward[:, None], 2, axis=1)}, {"agents": terminated}, {}

    def _observe(self) -> Obs:
        return {"agents": np.repeat(self._state()[:, None], 2, axis=1)}

    def _state(self) -> np.ndarray:
        return np.eye(3, dtype=np.float32)[self._where]

    def _render_copy(self, index: int) -> np.ndarray:
        """The three states as boxes (1 on the left, 2A above, 2B below on the right); the current one is filled."""
        frame = rendering.blank(96, 144)
        boxes = ((8, 32, 56, 64), (88, 4, 136, 44), (88, 52, 136, 92))  # state 1, 2A, 2B as (x0, y0, x1, y1)
        for i, (x0, y0, x1, y1) in enumerate(boxes):
            rendering.draw_rect(frame, x0, y0, x1, y1, (0, 0, 0))
            fill = (230, 120, 40) if i == self._where[index] else (255, 255, 255)
            rendering.draw_rect(frame, x0 + 3, y0 + 3, x1 - 3, y1 - 3, fill)
        return frame
