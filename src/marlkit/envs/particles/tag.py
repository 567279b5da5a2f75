"""Predator-prey (``tag-v0``): slower adversaries chase faster good agents among obstacles.

A batched port of mpe2's ``simple_tag_v3``, equal to it transition for transition (checked against mpe2 in
``tests/envs/test_mpe_equivalence.py``). Lowe et al. (2017), "Multi-Agent Actor-Critic for Mixed
Cooperative-Competitive Environments", NeurIPS (https://arxiv.org/abs/1706.02275), "predator-prey"; the particle
world is Mordatch & Abbeel (2018), AAAI (https://arxiv.org/abs/1703.04908).

Groups ``"adversaries"`` (``adversary_0`` …, size 0.075, accel 3, max speed 1.0) and ``"good"`` (``agent_0`` …,
size 0.05, accel 4, max speed 1.3); obstacles are landmarks of size 0.2. Everything collides (obstacles do not
move). Agents start uniform in ``[-1, 1]^2``, obstacles in ``[-0.9, 0.9]^2``, at rest.

Observation of an agent, float32, as mpe2 (16 for an adversary, 14 for the good agent with the defaults):
  own velocity (2), own position (2), every obstacle's position relative to the agent (2 each), every other agent's
  position relative to it (2 each, agent order: adversaries then good, without itself), and the velocity of every
  other *good* agent (2 each).
State: all agents' observations concatenated in agent order (adversaries, then good agents).
Actions: ``Discrete(5)`` (0 no-op, 1 -x, 2 +x, 3 -y, 4 +y) or ``Box(0, 1, (5,))`` with force ``(a2 - a1, a4 - a3)``;
  times the agent's accel.
Rewards (after the move), as mpe2: every adversary gets ``+10`` for each (adversary, good agent) pair in contact
  (distance below the sum of sizes) — the same for all adversaries; a good agent gets ``-10`` for each adversary in
  contact with it, minus a boundary penalty per coordinate ``x = |p|``: 0 below 0.9, ``10 (x - 0.9)`` below 1,
  then ``min(exp(2x - 2), 10)``. With ``shaped_reward=True`` (mpe2's disabled ``shape`` branch) adversaries also get
  ``-0.1 * sum over adversaries of the distance to the nearest good agent`` and good agents ``+0.1 * sum of their
  distances to the adversaries``.
Termination: none; every episode is truncated after ``max_steps`` (25) steps.
Metrics (``info["episode_metrics"]``, summed over the episode): ``catches``, (adversary, good agent) pairs in
  contact, counted at every step — the adversaries' return divided by 10.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from marlkit.envs.base import Dynamics, MultiAgentEnv
from marlkit.envs.particles.core import ParticleEnvMixin, World, agent, landmark

ADVERSARY: dict[str, Any] = {"size": 0.075, "accel": 3.0, "max_speed": 1.0, "color": (0.85, 0.35, 0.35)}
GOOD: dict[str, Any] = {"size": 0.05, "accel": 4.0, "max_speed": 1.3, "color": (0.35, 0.85, 0.35)}
OBSTACLE: dict[str, Any] = {"size": 0.2, "collide": True, "color": (0.25, 0.25, 0.25)}


class Tag(ParticleEnvMixin, MultiAgentEnv):
    """``num_adversaries`` predators, ``num_good`` prey and ``num_obstacles`` obstacles; see the module docstring."""

    def __init__(
        self,
        num_good: int = 1,
        num_adversaries: int = 3,
        num_obstacles: int = 2,
        max_steps: int = 25,
        continuous_actions: bool = False,
        shaped_reward: bool = False,
        num_envs: int = 1,
        seed: int | None = None,
    ) -> None:
        super().__init__(num_envs, seed)
        for name, value, low in (
            ("num_good", num_good, 1),
            ("num_adversaries", num_adversaries, 1),
            ("num_obstacles", num_obstacles, 0),
            ("max_steps", max_steps, 1),
        ):
            if not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        na, ng, no = int(num_adversaries), int(num_good), int(num_obstacles)
        self.max_steps = int(max_steps)
        self.continuous_actions = bool(continuous_actions)
        self.shaped_reward = bool(shaped_reward)
        self.world = World(
            [agent(f"adversary_{i}", **ADVERSARY) for i in range(na)]
            + [agent(f"agent_{i}", **GOOD) for i in range(ng)],
            [landmark(f"landmark_{i}", **OBSTACLE) for i in range(no)],
            self.num_envs,
            dim_c=2,
        )
        self._na, self._ng, n = na, ng, na + ng

        lay = self.world.layout

        def obs_rows(i: int) -> np.ndarray:
            others = [j for j in range(n) if j != i]
            return np.concatenate(
                [
                    lay["vel"][i],
                    lay["pos"][i],
                    lay["rel"][i, n:].ravel(),
                    lay["rel"][i, others].ravel(),
                    lay["vel"][[j for j in others if j >= na]].ravel(),
                ]
            )

        self._obs_cols = {
            "adversaries": np.stack([obs_rows(i) for i in range(na)]),
            "good": np.stack([obs_rows(i) for i in range(na, n)]),
        }
        self._set_state_cols()
        self._catch_dist = ADVERSARY["size"] + GOOD["size"]  # as mpe2's is_collision: closer than the sizes' sum
        # Initial positions: agents in [-1, 1]^2, obstacles in [-0.9, 0.9]^2 (one draw, mpe2's order for one copy).
        self._reset_low = np.repeat([-1.0] * n + [-0.9] * no, 2).reshape(-1, 2)

        obs, act = {}, {}
        for g in ("adversaries", "good"):
            obs[g] = spaces.Box(-np.inf, np.inf, (self._obs_cols[g].shape[1],), np.float32)
            act[g] = spaces.Box(0.0, 1.0, (5,), np.float32) if self.continuous_actions else spaces.Discrete(5)
        names = [a.name for a in self.world.agents]
        self._set_spaces(
            {"adversaries": tuple(names[:na]), "good": tuple(names[na:])},
            obs,
            act,
            spaces.Box(-np.inf, np.inf, (self._state_cols.size,), np.float32),
        )

    def _reset_copies(self, mask: np.ndarray) -> None:
        low = self._reset_low
        pos = self.np_random.uniform(low, -low, (int(mask.sum()), *low.shape))
        self.world.reset_copies(mask, pos)

    def _step_dynamics(self, actions: dict[str, np.ndarray]) -> Dynamics:
        world, na, ng = self.world, self._na, self._ng
        world.step(
            world.action_force(
                np.concatenate([actions["adversaries"], actions["good"]], axis=1), continuous=self.continuous_actions
            )
        )
        to_good = world.dist_cl[:na, na : na + ng]  # (adversaries, good, E), after the move
        hits = np.add.reduce(to_good < self._catch_dist, axis=0, dtype=np.float64)  # (good, E): adversaries on it
        catches = np.add.reduce(hits, axis=0)  # (E,)
        x = np.abs(world.pos_cl[:, na : na + ng])  # (2, good, E)
        # mpe2's bound(x): 0 below 0.9, 10 (x - 0.9) below 1, min(exp(2x - 2), 10) beyond (exp argument capped at
        # 3 > log 10, which changes nothing but avoids overflow far away)
        boundary = np.where(
            x < 0.9, 0.0, np.where(x < 1.0, (x - 0.9) * 10.0, np.minimum(np.exp(np.minimum(2.0 * x - 2.0, 3.0)), 10.0))
        )
        good = -10.0 * hits - np.add.reduce(boundary, axis=0)  # (good, E)
        adversaries = np.repeat(10.0 * catches[:, None], na, axis=1)  # (E, adversaries): all get the same
        if self.shaped_reward:
            adversaries -= 0.1 * np.add.reduce(to_good.min(axis=1), axis=0)[:, None]
            good += 0.1 * np.add.reduce(to_good, axis=0)
        E = self.num_envs
        return (
            {"adversaries": adversaries.astype(np.float32), "good": good.T.astype(np.float32, order="C")},
            {"adversaries": np.zeros((E, na), dtype=bool), "good": np.zeros((E, ng), dtype=bool)},
            {"catches": catches},
        )
