"""Pursuit (``pursuit-v0``): a team of pursuers must catch a scripted, moving target in a walled arena with obstacles.

The predator-prey task of the multi-agent particle environments (Lowe et al. 2017, "Multi-Agent Actor-Critic for
Mixed Cooperative-Competitive Environments", NeurIPS, https://arxiv.org/abs/1706.02275; mpe2's ``simple_tag``) with
the prey turned into a scripted evader, as in pursuit-evasion games (Isaacs 1965, "Differential Games"; the
multi-pursuer, single-evader setting of e.g. de Souza et al. 2021, "Decentralized Multi-Agent Pursuit Using Deep
Reinforcement Learning", IEEE RA-L 6(3), https://arxiv.org/abs/2010.08193). Physics is the batched MPE world of
:mod:`marlkit.envs.particles.core`.

World: a square arena ``[-arena_size, arena_size]^2`` with hard walls (an entity touching a wall stops there and
keeps only the velocity along it), ``num_pursuers`` pursuers (size 0.075, accel 3, max speed ``pursuer_speed``;
MPE's adversaries), one target (size 0.05, accel 4, max speed ``target_speed``) and ``num_obstacles`` static
circular obstacles (size ``obstacle_size``) that pursuers and target bounce off (MPE contact forces). At reset the
obstacles are drawn uniform in the central ``[-0.6 a, 0.6 a]^2`` (``a = arena_size``; apart from each other),
pursuers and target uniform in the arena, not touching obstacles or each other, the target at least 0.5 from every
pursuer; all at rest.

Target policy (scripted, not a learner):

* ``"evasive"``: head away from the pursuers along their summed repulsion ``-sum_j u_j / d_j^2`` (``u_j`` the unit
  vector to pursuer j at distance ``d_j``, so the nearest dominates), at full force; within 0.3 of a wall or an
  obstacle the part of that heading going into it fades out and a push away fades in, so it slides along them.
* ``"random"``: a random walk at full force whose heading turns by a normal angle (std 0.6 rad) each step and
  bounces off walls.

One group ``"pursuers"`` (``pursuer_0`` ...). Observation of pursuer i, float32, ``8 + 2 (N - 1) + 2 M``:
own velocity (2), own position (2), target position relative to it (2), target velocity (2), other pursuers'
positions relative to it (2 each, in order), obstacles' positions relative to it (2 each). State: every pursuer's
observation concatenated in order.
Actions: ``Discrete(5)`` as MPE (0 no-op, 1 -x, 2 +x, 3 -y, 4 +y) or, with ``continuous_actions``,
``Box(0, 1, (5,))`` giving the force ``(a2 - a1, a4 - a3)``; times the pursuer's accel.

Reward (shared by all pursuers, after the move): ``-distance_weight * (distance of the closest pursuer to the
target) + capture_reward * captured - collision_penalty * collisions``, where ``collisions`` counts the
pursuer-pursuer pairs and pursuer-obstacle pairs in contact at this step.
Termination: capture, i.e. some pursuer's centre within ``capture_radius`` of the target's (all pursuers are
terminated). Truncation after ``max_steps`` steps.
Metrics (``info["episode_metrics"]``, summed over the episode): ``capture`` (1 at the step of capture, so 0 or 1 per
episode) and ``collisions`` (contacts counted at every step, as ``spread-v0`` does: a pair touching for 3 steps
counts 3).

Difficulty with the defaults (1,000 episodes each, evasive target): uniformly random pursuers capture in about 1% of
episodes (4.8 contacts per episode); both pursuers driving straight at the target capture in about 89% (6.9
contacts), and a reactive rule that leads the target and steers around obstacles and its teammate in about 99%
with 0.8 contacts per episode. The ``"random"`` target is much easier (random pursuers: 60%).
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from marlkit.envs import rendering
from marlkit.envs.base import Dynamics, MultiAgentEnv
from marlkit.envs.particles.core import ParticleEnvMixin, World, agent, landmark

PURSUER_SIZE, TARGET_SIZE = 0.075, 0.05
PURSUER_ACCEL, TARGET_ACCEL = 3.0, 4.0
#: Distance from a wall or obstacle surface within which the evasive target is pushed away from it.
AVOID_MARGIN = 0.3
#: Obstacle centres are drawn in the central part of the arena, this fraction of its half side.
OBSTACLE_SPREAD = 0.6
#: Smallest initial distance between the target and any pursuer.
MIN_START_DISTANCE = 0.5
#: Heading noise of the random-walk target (radians per step).
RANDOM_TURN = 0.6
TARGET_POLICIES = ("evasive", "random")


class Pursuit(ParticleEnvMixin, MultiAgentEnv):
    """``num_pursuers`` pursuers against one scripted target; see the module docstring.

    Args:
        num_pursuers: number of learning pursuers.
        num_obstacles: number of static circular obstacles.
        target_policy: ``"evasive"`` or ``"random"``.
        target_speed: the target's maximum speed (pursuers' is ``pursuer_speed``).
        pursuer_speed: the pursuers' maximum speed.
        capture_radius: centre distance at which a pursuer catches the target (contact is at 0.125).
        obstacle_size: radius of each obstacle.
        arena_size: half side of the square arena.
        max_steps: episode length after which pursuers are truncated.
        capture_reward: shared bonus at capture.
        distance_weight: weight of the per-step penalty on the closest pursuer's distance to the target.
        collision_penalty: shared penalty per pursuer-pursuer or pursuer-obstacle contact per step.
        continuous_actions: ``Box(0, 1, (5,))`` actions instead of ``Discrete(5)``.
    """

    def __init__(
        self,
        num_pursuers: int = 2,
        num_obstacles: int = 2,
        target_policy: str = "evasive",
        target_speed: float = 0.8,
        pursuer_speed: float = 1.0,
        capture_radius: float = 0.15,
        obstacle_size: float = 0.15,
        arena_size: float = 1.0,
        max_steps: int = 100,
        capture_reward: float = 10.0,
        distance_weight: float = 0.1,
        collision_penalty: float = 1.0,
        continuous_actions: bool = False,
        num_envs: int = 1,
        seed: int | None = None,
    ) -> None:
        super().__init__(num_envs, seed)
        for name, value, low in (
            ("num_pursuers", num_pursuers, 1),
            ("num_obstacles", num_obstacles, 0),
            ("max_steps", max_steps, 1),
        ):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if target_policy not in TARGET_POLICIES:
            raise ValueError(f"target_policy must be one of {TARGET_POLICIES}, got {target_policy!r}")
        for name, amount in (
            ("target_speed", target_speed),
            ("pursuer_speed", pursuer_speed),
            ("capture_radius", capture_radius),
            ("obstacle_size", obstacle_size),
            ("arena_size", arena_size),
        ):
            if not amount > 0:
                raise ValueError(f"{name} must be positive, got {amount!r}")
        if obstacle_size >= (1.0 - OBSTACLE_SPREAD) * arena_size:
            raise ValueError(
                f"obstacles of size {obstacle_size} would touch the walls of an arena of half side "
                f"{arena_size}: need obstacle_size < {(1.0 - OBSTACLE_SPREAD) * arena_size:g}"
            )
        n, m = int(num_pursuers), int(num_obstacles)
        self.n_pursuers, self.n_obstacles = n, m
        self.target_policy = target_policy
        self.capture_radius, self.arena_size = float(capture_radius), float(arena_size)
        self.max_steps = int(max_steps)
        self.capture_reward, self.distance_weight = float(capture_reward), float(distance_weight)
        self.collision_penalty = float(collision_penalty)
        self.continuous_actions = bool(continuous_actions)
        self.world = World(
            [
                agent(
                    f"pursuer_{i}",
                    size=PURSUER_SIZE,
                    accel=PURSUER_ACCEL,
                    max_speed=float(pursuer_speed),
                    color=(0.85, 0.35, 0.35),
                )
                for i in range(n)
            ]
            + [
                agent(
                    "target",
                    size=TARGET_SIZE,
                    accel=TARGET_ACCEL,
                    max_speed=float(target_speed),
                    color=(0.35, 0.85, 0.35),
                )
            ],
            [landmark(f"obstacle_{k}", size=float(obstacle_size), color=(0.25, 0.25, 0.25)) for k in range(m)],
            self.num_envs,
            dim_c=1,
        )  # silent; dim_c=0 would give World an empty section, which it rejects
        self._target = n  # the target's entity (and world-agent) index; obstacles follow it
        size = self.world.size
        # Positions a movable entity's centre may take: the arena shrunk by its radius.
        self._limit = (self.arena_size - size[: n + 1])[:, None].astype(self.world.dtype)
        # Contact distances: pursuer pairs (diagonal -1, never in contact) and pursuer-obstacle pairs.
        self._pp_contact = np.where(np.eye(n, dtype=bool), -1.0, 2 * PURSUER_SIZE)
        self._po_contact = PURSUER_SIZE + size[n + 1 :]
        self._heading = np.zeros(self.num_envs)  # the random-walk target's direction

        lay, t = self.world.layout, self._target
        obstacles = np.arange(n + 1, n + 1 + m)
        self._obs_cols = {
            "pursuers": np.stack(
                [
                    np.concatenate(
                        [
                            lay["vel"][i],
                            lay["pos"][i],
                            lay["rel"][i, t],
                            lay["vel"][t],
                            lay["rel"][i, [j for j in range(n) if j != i]].ravel(),
                            lay["rel"][i, obstacles].ravel(),
                        ]
                    )
                    for i in range(n)
                ]
            )
        }
        self._set_state_cols()
        obs_dim = self._obs_cols["pursuers"].shape[1]
        act = spaces.Box(0.0, 1.0, (5,), np.float32) if self.continuous_actions else spaces.Discrete(5)
        self._set_spaces(
            {"pursuers": tuple(f"pursuer_{i}" for i in range(n))},
            {"pursuers": spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)},
            {"pursuers": act},
            spaces.Box(-np.inf, np.inf, (n * obs_dim,), np.float32),
        )

    # ---------------------------------------------------------------------------------------------- reset
    def _reset_copies(self, mask: np.ndarray) -> None:
        rng, n, m, t = self.np_random, self.n_pursuers, self.n_obstacles, self._target
        size = self.world.size
        pos = np.zeros((int(mask.sum()), n + 1 + m, 2))
        rows = np.arange(len(pos))
        apart_o, apart_p = np.eye(m) * 1e9, np.eye(n) * 1e9
        # Rejection sampling per copy: only the copies whose layout breaks a rule are drawn again.
        for _ in range(1000):
            k = rows.size
            draw = np.concatenate(
                [
                    rng.uniform(-1.0, 1.0, (k, n + 1, 2)) * self._limit,
                    rng.uniform(-1.0, 1.0, (k, m, 2)) * (OBSTACLE_SPREAD * self.arena_size),
                ],
                axis=1,
            )
            gap = np.linalg.norm(draw[:, :, None] - draw[:, None], axis=-1) - (size[:, None] + size[None])
            ok = (
                (gap[:, : n + 1, n + 1 :] > 0.05).all(axis=(1, 2))  # movers clear of obstacles
                & (gap[:, n + 1 :, n + 1 :] + apart_o > 0.1).all(axis=(1, 2))  # obstacles apart
                & (gap[:, :n, :n] + apart_p > 0.0).all(axis=(1, 2))  # pursuers apart
                & (np.linalg.norm(draw[:, :n] - draw[:, t : t + 1], axis=-1) > MIN_START_DISTANCE).all(axis=1)
            )
            pos[rows[ok]] = draw[ok]
            rows = rows[~ok]
            if rows.size == 0:
                break
        else:  # pragma: no cover - the rules leave most of the arena free
            raise RuntimeError("could not place pursuers, target and obstacles without overlap")
        self.world.reset_copies(mask, pos)
        self._heading[mask] = rng.uniform(-np.pi, np.pi, len(pos))

    # ----------------------------------------------------------------------------------------------- step
    def _target_direction(self) -> np.ndarray:
        """Unit direction ``(num_envs, 2)`` the scripted target pushes towards."""
        world, n, t = self.world, self.n_pursuers, self._target
        p = world.pos[:, t].astype(np.float64)
        limit = self._limit[t, 0]
        if self.target_policy == "random":
            self._heading += self.np_random.normal(0.0, RANDOM_TURN, self.num_envs)
            d = np.stack([np.cos(self._heading), np.sin(self._heading)], axis=-1)
            # Bounce: at a wall, a heading into it is mirrored.
            d = np.where(((p >= limit) & (d > 0)) | ((p <= -limit) & (d < 0)), -d, d)
            self._heading = np.arctan2(d[:, 1], d[:, 0])
            return d
        rel = world.rel[:, t, :n].astype(np.float64)  # pursuers relative to the target
        dist = np.maximum(world.dist[:, t, :n].astype(np.float64), 1e-3)
        away = -(rel / dist[..., None] ** 3).sum(axis=1)  # -sum u_j / d_j^2
        away /= np.maximum(np.linalg.norm(away, axis=-1, keepdims=True), 1e-9)
        # Near a wall or obstacle (weight w from 0 at AVOID_MARGIN to 1 at contact) the part of the flight heading
        # into it is cancelled and a small push away is added, so the target slides along it: d += w (into + 1/2) n.
        w_low = np.clip(1.0 - (p + limit) / AVOID_MARGIN, 0.0, 1.0)  # west/south walls, normal +e
        w_high = np.clip(1.0 - (limit - p) / AVOID_MARGIN, 0.0, 1.0)  # east/north walls, normal -e
        d = away + w_low * (np.maximum(-away, 0.0) + 0.5) - w_high * (np.maximum(away, 0.0) + 0.5)
        if self.n_obstacles:
            o_dist = np.maximum(world.dist[:, t, t + 1 :].astype(np.float64), 1e-9)
            normal = -world.rel[:, t, t + 1 :].astype(np.float64) / o_dist[..., None]  # obstacle -> target
            w = np.clip(1.0 - (o_dist - world.size[t + 1 :] - world.size[t]) / AVOID_MARGIN, 0.0, 1.0)
            into = np.maximum(-(away[:, None, :] * normal).sum(axis=-1), 0.0)
            d += ((w * (into + 0.5))[..., None] * normal).sum(axis=1)
        return d / np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-9)

    def _keep_inside(self) -> None:
        """Hard walls: a mover past a wall is put back on it and loses the velocity component into it."""
        pos, vel, limit = self.world.pos[:, : self._target + 1], self.world.vel[:, : self._target + 1], self._limit
        high, low = pos > limit, pos < -limit
        if high.any() or low.any():
            np.clip(pos, -limit, limit, out=pos)
            vel[high & (vel > 0)] = 0.0
            vel[low & (vel < 0)] = 0.0
            self.world.refresh()

    def _step_dynamics(self, actions: dict[str, np.ndarray]) -> Dynamics:
        world, n, t = self.world, self.n_pursuers, self._target
        force = np.empty((self.num_envs, n + 1, 2), dtype=world.dtype)
        force[:, :n] = world.action_force(actions["pursuers"], slice(0, n), self.continuous_actions)
        force[:, t] = self._target_direction() * TARGET_ACCEL
        world.step(force)
        self._keep_inside()

        dist = world.dist
        to_target = dist[:, :n, t]  # (E, n)
        captured = (to_target < self.capture_radius).any(axis=1)
        collisions = (dist[:, :n, :n] < self._pp_contact).sum(axis=(1, 2)) / 2 + (
            dist[:, :n, t + 1 :] < self._po_contact
        ).sum(axis=(1, 2))
        reward = (
            self.capture_reward * captured
            - self.distance_weight * to_target.min(axis=1)
            - self.collision_penalty * collisions
        )
        rewards = np.broadcast_to(reward[:, None], (self.num_envs, n)).astype(np.float64)
        terminated = np.broadcast_to(captured[:, None], (self.num_envs, n)).copy()
        metrics = {"capture": captured.astype(np.float64), "collisions": collisions.astype(np.float64)}
        return {"pursuers": rewards}, {"pursuers": terminated}, metrics

    # ------------------------------------------------------------------------------------------- rendering
    def _render_copy(self, index: int) -> np.ndarray:
        """The arena (walls in gray), obstacles (dark), pursuers (red) and the target (green)."""
        px, extent = 400, self.arena_size * 1.05
        frame = rendering.blank(px, px, (235, 235, 235))
        (x0, y0), (x1, y1) = rendering.world_to_pixels(
            np.array([[-1.0, 1.0], [1.0, -1.0]]) * self.arena_size, extent, px
        ).astype(int)
        rendering.draw_rect(frame, x0, y0, x1, y1, (255, 255, 255))
        world = self.world
        colors = np.clip(np.array([e.color for e in world.entities]) * 200, 0, 255).astype(np.uint8)
        order = np.r_[np.arange(self._target + 1, world.n_entities), np.arange(self._target + 1)]  # movers on top
        centers = rendering.world_to_pixels(world.pos[index].astype(np.float64), extent, px)
        rendering.draw_circles(frame, centers[order], world.size[order] * px / (2 * extent), colors[order])
        return frame
