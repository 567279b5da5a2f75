"""Cooperative communication (``speaker-listener-v0``): a speaker that sees the goal guides a listener that moves.

A batched port of mpe2's ``simple_speaker_listener_v4``, equal to it transition for transition (checked against
mpe2 in ``tests/envs/test_mpe_equivalence.py``). Lowe et al. (2017), "Multi-Agent Actor-Critic for Mixed
Cooperative-Competitive Environments", NeurIPS (https://arxiv.org/abs/1706.02275), "cooperative communication";
the grounded-communication setting is Mordatch & Abbeel (2018), AAAI (https://arxiv.org/abs/1703.04908).

Groups ``"speaker"`` (``speaker_0``: cannot move, speaks on a 3-symbol channel) and ``"listener"``
(``listener_0``: moves, silent). Three landmarks (red, green, blue; size 0.04); one of them, drawn uniformly per
episode, is the goal. Nothing collides. Everything starts uniform in ``[-1, 1]^2``, at rest, the channel silent.

Observations, float32, as mpe2:
  speaker  (3):  the goal landmark's color (0.65/0.15 RGB entries);
  listener (11): own velocity (2), every landmark's position relative to the listener (2 each), the speaker's
                 message (3; zero before the first step).
State: the speaker's then the listener's observation (14).
Actions: speaker ``Discrete(3)`` (the message is the one-hot of the symbol) or ``Box(0, 1, (3,))`` (the message is
  the action vector); listener ``Discrete(5)`` (0 no-op, 1 -x, 2 +x, 3 -y, 4 +y) or ``Box(0, 1, (5,))`` with force
  ``(a2 - a1, a4 - a3)``; times 5.0. A message is heard from the next observation on.
Rewards (after the move): both agents get ``-|p_listener - p_goal|^2``.
Termination: none; every episode is truncated after ``max_steps`` (25) steps.
Metrics (``info["episode_metrics"]``): ``final_goal_distance``, the listener's distance to the goal at the last
  step of the episode.
``set_state``/``get_state`` extras: ``goal``, the goal landmark's index (0, 1 or 2).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from marlkit.envs.base import Dynamics, MultiAgentEnv
from marlkit.envs.particles.core import ParticleEnvMixin, World, agent, landmark

LANDMARK_COLORS = np.array([[0.65, 0.15, 0.15], [0.15, 0.65, 0.15], [0.15, 0.15, 0.65]])
SPEAKER, LISTENER = 0, 1  # agent rows


class SpeakerListener(ParticleEnvMixin, MultiAgentEnv):
    """One speaker, one listener, three landmarks; see the module docstring."""

    max_steps: int  # every episode is truncated

    def __init__(
        self, max_steps: int = 25, continuous_actions: bool = False, num_envs: int = 1, seed: int | None = None
    ) -> None:
        super().__init__(num_envs, seed)
        if not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
            raise ValueError(f"max_steps must be a positive integer, got {max_steps!r}")
        self.max_steps = int(max_steps)
        self.continuous_actions = bool(continuous_actions)
        self.world = World(
            [
                agent("speaker_0", size=0.075, movable=False, collide=False, silent=False),
                agent("listener_0", size=0.075, collide=False),
            ],
            [landmark(f"landmark_{i}", size=0.04, collide=False, color=tuple(LANDMARK_COLORS[i])) for i in range(3)],
            self.num_envs,
            dim_c=3,
            extras={"goal_color": 3},
        )
        self.goal = np.zeros(self.num_envs, dtype=np.int64)
        self._rows = np.arange(self.num_envs)
        self._symbols = np.eye(3, dtype=self.world.dtype)

        lay = self.world.layout
        self._obs_cols = {
            "speaker": lay["goal_color"][None],
            "listener": np.concatenate([lay["vel"][LISTENER], lay["rel"][LISTENER, 2:].ravel(), lay["comm"][SPEAKER]])[
                None
            ],
        }
        self._set_state_cols()
        speak = spaces.Box(0.0, 1.0, (3,), np.float32) if self.continuous_actions else spaces.Discrete(3)
        move = spaces.Box(0.0, 1.0, (5,), np.float32) if self.continuous_actions else spaces.Discrete(5)
        self._set_spaces(
            {"speaker": ("speaker_0",), "listener": ("listener_0",)},
            {
                "speaker": spaces.Box(-np.inf, np.inf, (3,), np.float32),
                "listener": spaces.Box(-np.inf, np.inf, (11,), np.float32),
            },
            {"speaker": speak, "listener": move},
            spaces.Box(-np.inf, np.inf, (14,), np.float32),
        )

    def _reset_copies(self, mask: np.ndarray) -> None:
        k = int(mask.sum())
        # mpe2's order for one copy: the goal, then agents, then landmarks.
        goal = self.np_random.integers(3, size=k)
        pos = self.np_random.uniform(-1.0, 1.0, (k, self.world.n_entities, 2))
        self.goal[mask] = goal
        self.world.extra["goal_color"][mask] = LANDMARK_COLORS[goal]
        self.world.reset_copies(mask, pos)

    def _step_dynamics(self, actions: dict[str, np.ndarray]) -> Dynamics:
        world = self.world
        force = np.zeros((2, 2, self.num_envs), dtype=world.dtype).transpose(2, 1, 0)  # copy-last, like the world
        force[:, LISTENER:] = world.action_force(
            actions["listener"], slice(LISTENER, LISTENER + 1), self.continuous_actions
        )
        world.step(force)
        said = actions["speaker"][:, 0]
        world.comm[:, SPEAKER] = said if self.continuous_actions else self._symbols[said]
        d = world.dist[self._rows, LISTENER, 2 + self.goal]  # (E,), after the move
        reward = (-(d * d)).astype(np.float32)[:, None]
        last = self._t == self.max_steps - 1
        return (
            {"speaker": reward, "listener": reward.copy()},
            {"speaker": np.zeros((self.num_envs, 1), dtype=bool), "listener": np.zeros((self.num_envs, 1), dtype=bool)},
            {"final_goal_distance": d * last},
        )

    # ------------------------------------------------------------------------------------- state extras
    def _set_extras(self, index: int, goal: Any = None, **unknown: Any) -> None:
        if unknown:
            raise TypeError(f"SpeakerListener.set_state got unexpected extras {sorted(unknown)}; it takes 'goal'")
        if goal is not None:
            if int(goal) not in (0, 1, 2):
                raise ValueError(f"goal must be a landmark index 0, 1 or 2, got {goal!r}")
            self.goal[index] = int(goal)
            self.world.extra["goal_color"][index] = LANDMARK_COLORS[int(goal)]

    def _get_extras(self, index: int) -> dict[str, Any]:
        return {"goal": int(self.goal[index])}

    def _entity_colors(self, index: int) -> np.ndarray:
        # As mpe2: both agents gray, except the listener which wears the goal's color lightened by 0.45.
        colors = np.array([e.color for e in self.world.entities])
        colors[LISTENER] = LANDMARK_COLORS[self.goal[index]] + 0.45
        return colors
