"""Cooperative navigation (``spread-v0``): N agents must cover N landmarks without bumping into each other.

A batched port of mpe2's ``simple_spread_v3``, equal to it transition for transition (checked against mpe2 in
``tests/envs/test_mpe_equivalence.py``). Lowe et al. (2017), "Multi-Agent Actor-Critic for Mixed
Cooperative-Competitive Environments", NeurIPS (https://arxiv.org/abs/1706.02275), "cooperative navigation"; the
particle world is Mordatch & Abbeel (2018), AAAI (https://arxiv.org/abs/1703.04908).

One group ``"agents"`` (``agent_0`` … ``agent_{N-1}``); agents have size 0.15 and collide with each other, landmarks
(size 0.05) do not collide. Positions start uniform in ``[-1, 1]^2``, at rest.

Observation of agent i, float32, ``4 + 2N + 4(N-1)`` (18 for N=3), as mpe2:
  own velocity (2), own position (2), every landmark's position relative to the agent (2 each, landmark order),
  every other agent's position relative to it (2 each, agent order without itself), every other agent's
  communication (2 each; always zero, the agents are silent).
State: all agents' observations concatenated in agent order (``3 * 18 = 54``), like mpe2's ``state()``.
Actions: ``Discrete(5)`` (0 no-op, 1 left/-x, 2 right/+x, 3 down/-y, 4 up/+y) or, with ``continuous_actions``,
  ``Box(0, 1, (5,))`` giving the force ``(a2 - a1, a4 - a3)``; times 5.0.
Rewards (after the move): every agent gets ``(1 - local_ratio) * global + local_ratio * local`` where
  ``global = -sum over landmarks of the distance to the nearest agent`` and ``local = -(number of other agents
  closer than 0.3, i.e. overlapping)``.
Termination: none; every episode is truncated after ``max_steps`` (25) steps.
Metrics (``info["episode_metrics"]``, summed over the episode by the base):
  ``collisions``           agent pairs overlapping, counted at every step (a pair touching for 3 steps counts 3);
  ``occupied_landmarks``   landmarks with an agent within 0.1 at the last step of the episode (final coverage,
                           mpe2's benchmark threshold).
Sub-tasks (``subtask_counts``): the landmark nearest to each agent at the last step of an episode.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from marlkit.envs.base import Dynamics, MultiAgentEnv
from marlkit.envs.particles.core import ParticleEnvMixin, World, agent, landmark

AGENT_SIZE = 0.15
#: An agent within this distance of a landmark occupies it (mpe2's benchmark threshold).
OCCUPY_RADIUS = 0.1


class Spread(ParticleEnvMixin, MultiAgentEnv):
    """``num_agents`` agents and as many landmarks; see the module docstring."""

    max_steps: int  # every episode is truncated

    def __init__(
        self,
        num_agents: int = 3,
        local_ratio: float = 0.5,
        max_steps: int = 25,
        continuous_actions: bool = False,
        num_envs: int = 1,
        seed: int | None = None,
    ) -> None:
        super().__init__(num_envs, seed)
        if not isinstance(num_agents, (int, np.integer)) or num_agents < 1:
            raise ValueError(f"num_agents must be a positive integer, got {num_agents!r}")
        if not 0.0 <= local_ratio <= 1.0:
            raise ValueError(f"local_ratio is a proportion in [0, 1], got {local_ratio!r}")
        if not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
            raise ValueError(f"max_steps must be a positive integer, got {max_steps!r}")
        n = int(num_agents)
        self.local_ratio = float(local_ratio)
        self.max_steps = int(max_steps)
        self.continuous_actions = bool(continuous_actions)
        self.world = World(
            [agent(f"agent_{i}", size=AGENT_SIZE, color=(0.35, 0.35, 0.85)) for i in range(n)],
            [landmark(f"landmark_{i}", collide=False) for i in range(n)],
            self.num_envs,
            dim_c=2,
        )

        lay = self.world.layout
        others = [[j for j in range(n) if j != i] for i in range(n)]
        self._obs_cols = {
            "agents": np.stack(
                [
                    np.concatenate(
                        [
                            lay["vel"][i],
                            lay["pos"][i],
                            lay["rel"][i, n:].ravel(),
                            lay["rel"][i, others[i]].ravel(),
                            lay["comm"][others[i]].ravel(),
                        ]
                    )
                    for i in range(n)
                ]
            )
        }
        self._set_state_cols()
        # Overlap threshold between agents i and j; -1 on the diagonal so an agent never collides with itself.
        self._collide_dist = np.where(np.eye(n, dtype=bool), -1.0, 2 * AGENT_SIZE)[:, :, None]

        self._to_landmarks, self._to_agents = self.world.dist_cl[:, n:], self.world.dist_cl[:, :n]  # views
        obs_dim = self._obs_cols["agents"].shape[1]
        act = spaces.Box(0.0, 1.0, (5,), np.float32) if self.continuous_actions else spaces.Discrete(5)
        self._set_spaces(
            {"agents": tuple(a.name for a in self.world.agents)},
            {"agents": spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)},
            {"agents": act},
            spaces.Box(-np.inf, np.inf, (n * obs_dim,), np.float32),
        )

    def _reset_copies(self, mask: np.ndarray) -> None:
        # One draw, agents then landmarks: with one copy this is mpe2's order, so reset(seed=s) gives its state.
        pos = self.np_random.uniform(-1.0, 1.0, (int(mask.sum()), self.world.n_entities, 2))
        self.world.reset_copies(mask, pos)

    def subtask_counts(self, info: dict[str, Any]) -> np.ndarray:
        """One-hot ``(num_envs, n_agents, n_landmarks)`` of the landmark nearest to each agent in the episodes that
        ended at this step (zeros elsewhere), read from ``info["final_obs"]``."""
        n = self.world.n_agents
        rel = info["final_obs"]["agents"][..., 4 : 4 + 2 * n].reshape(self.num_envs, n, n, 2)
        nearest = np.einsum("eald,eald->eal", rel, rel).argmin(-1)
        done: np.ndarray = info["episode_done"]
        counts: np.ndarray = np.eye(n)[nearest] * done[:, None, None]
        return counts

    def _step_dynamics(self, actions: dict[str, np.ndarray]) -> Dynamics:
        world, n = self.world, self.world.n_agents
        world.step(world.action_force(actions["agents"], continuous=self.continuous_actions))
        # distances after the move, copy-last: agent-landmark (n, landmarks, E) and agent-agent (n, n, E)
        nearest = np.minimum.reduce(self._to_landmarks, axis=0)  # (landmarks, E)
        touching = np.add.reduce(self._to_agents < self._collide_dist, axis=1, dtype=np.float64)  # (n, E)
        rewards = touching * -self.local_ratio  # (n, E)
        rewards -= np.add.reduce(nearest, axis=0) * (1.0 - self.local_ratio)
        last = self._t == self.max_steps - 1
        occupied = (
            np.add.reduce(nearest < OCCUPY_RADIUS, axis=0) * last if np.count_nonzero(last) else np.zeros(self.num_envs)
        )
        metrics = {"collisions": np.add.reduce(touching, axis=0) * 0.5, "occupied_landmarks": occupied}
        rewards = rewards.T.astype(np.float32, order="C")
        return {"agents": rewards}, {"agents": np.zeros((self.num_envs, n), dtype=bool)}, metrics
