"""The batched 2-D particle world of the Multi-Agent Particle Environments (MPE), as array code over all copies.

Physics, constants and the action -> force mapping reproduce ``mpe2._mpe_utils.core.World`` and
``SimpleEnv._set_action`` operation for operation (Lowe et al. 2017, "Multi-Agent Actor-Critic for Mixed
Cooperative-Competitive Environments", NeurIPS; Mordatch & Abbeel 2018, "Emergence of Grounded Compositional
Language in Multi-Agent Populations", AAAI), but every copy, entity and pair is advanced at once.

How a scenario uses it
----------------------
1. Declare the entities once: a list of **agents** (entities that act, observe or speak; they come first) and a
   list of **landmarks**, each an :class:`Entity` with its static properties (size, mass, movable, collide,
   max_speed, accel, silent, color). Properties are the same in every copy; only the state differs.
2. Build ``World(agents, landmarks, num_envs, dim_c, extras={...})``. ``extras`` declares per-copy scenario
   values that observations read (e.g. a goal color), stored next to the physical state.
3. On reset, place entities with :meth:`World.reset_copies`; fill extras through ``world.extra[name]``.
4. Each step: turn actions into agent forces with :meth:`World.action_force`, add any scenario forces (a scripted
   agent such as a moving target, walls) to that array, then call :meth:`World.step` (contact forces, integration,
   speed limits). Speaking agents' messages are written into ``world.comm`` by the scenario (no physics).
5. Compute rewards from ``world.pos``/``world.vel``/``world.dist`` (or their copy-last twins, below), and build
   observations with :meth:`World.gather` from the data rows listed in ``world.layout``: one gather produces the
   observation array of a whole group.

State layout
------------
All observable state lives in one array ``world.data`` of shape ``(K, num_envs)``: copy-last, so that every array
operation runs along the copies in its inner loop (with a 2-element ``(x, y)`` axis innermost, NumPy would loop
in steps of two and 1,000 copies would cost 30x more). Named sections are views into it, offered two ways:

* ``pos``, ``vel`` ``(num_envs, n_entities, 2)``, ``comm`` ``(num_envs, n_agents, dim_c)``, ``rel``
  ``(num_envs, n_agents, n_entities, 2)`` with ``rel[:, i, j] = pos[:, j] - pos[:, i]``, ``dist`` (its norm,
  ``(num_envs, n_agents, n_entities)``) and ``extra[name]``: copy-first views, convenient for indexing one copy;
* ``pos_cl``, ``vel_cl`` ``(2, n_entities, num_envs)``, ``rel_cl`` ``(2, n_agents, n_entities, num_envs)``,
  ``dist_cl`` ``(n_agents, n_entities, num_envs)``: the same memory copy-last, for fast math over all copies.

``world.layout[name]`` gives the data row of every element of a section in its natural (copy-first) index order,
so an observation is a list of rows and ``gather`` turns rows into a ``(num_envs, ...)`` float32 array.
``rel`` and ``dist`` are derived from ``pos``: every method that moves entities calls :meth:`refresh`; call it
yourself after writing ``pos`` by hand.

Physics (per step, as mpe2)
---------------------------
* Action force of an agent: discrete ``0`` no-op, ``1`` -x, ``2`` +x, ``3`` -y, ``4`` +y; continuous
  ``Box(0, 1, (5,))``: ``u = [a2 - a1, a4 - a3]``; times ``accel`` (5.0 when ``None``).
* Contact force between two colliding entities ``a, b`` at distance ``d``: ``F_a = contact_force * (p_a - p_b) / d *
  k * softplus((size_a + size_b - d) / k)`` with ``k = contact_margin``, ``F_b = -F_a``; only movable entities
  receive it. Pairs are index arrays (every movable collider against every other collider), and the forces of all
  pairs of all copies are a handful of array operations.
* Integration of movable entities: ``p += v dt``; ``v = v (1 - damping) + F / m dt``; then ``v`` is rescaled to
  ``max_speed`` when faster. ``dt = 0.1``, ``damping = 0.25``, ``contact_force = 100``, ``contact_margin = 1e-3``.

Precision: the state is float64 by default, like mpe2, and observations are handed out as float32. With float64 the
ports agree with mpe2 to float64 rounding (observations equal mpe2's float32 observations; rewards differ only by
their float32 rounding). A float32 state (``dtype=np.float32``, about 1.4x faster at 1,000+ copies) drifts from mpe2
by up to ~4e-5 within an episode: stiff contacts (contact force 100 per unit of overlap) amplify rounding errors by
1.3-1.7x per step while bodies overlap.

Movable entities must be agents (as in every MPE scenario); a moving entity no policy controls is an agent whose
force the scenario computes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from marlkit.envs import rendering
from marlkit.envs.base import SharedBuffers

#: Unit force of each discrete action (0 no-op, 1 left, 2 right, 3 down, 4 up). Read as a (5, 2) matrix it is also
#: the continuous mapping: ``u = a @ DIRECTIONS = [a2 - a1, a4 - a3]``.
DIRECTIONS = np.array([[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1]], dtype=np.float64)

#: mpe2's action sensitivity when an entity declares no ``accel``.
DEFAULT_ACCEL = 5.0


@dataclass(frozen=True)
class Entity:
    """Static properties of one particle (identical in every copy); defaults are mpe2's."""

    name: str
    size: float = 0.05
    movable: bool = False
    collide: bool = True
    mass: float = 1.0
    #: Speed limit (``None``: none).
    max_speed: float | None = None
    #: Action sensitivity: force per unit action (``None``: mpe2's 5.0).
    accel: float | None = None
    #: An agent that does not speak (its ``comm`` row stays zero).
    silent: bool = True
    #: RGB in [0, 1], as mpe2 (frames draw ``color * 200`` like mpe2's renderer).
    color: tuple[float, float, float] = (0.25, 0.25, 0.25)


def agent(name: str, **properties: Any) -> Entity:
    """An agent entity (movable unless said otherwise)."""
    return Entity(name, **{"movable": True, **properties})


def landmark(name: str, **properties: Any) -> Entity:
    """A landmark entity (fixed unless said otherwise)."""
    return Entity(name, **properties)


class World(SharedBuffers):
    """``num_envs`` copies of one particle world: state arrays, physics step, observation gathering, rendering.

    Its sections are views into ``data``; deep copies and pickles keep them views of the copied ``data``
    (``SharedBuffers``), and so do a scenario's own views into the world's arrays.
    """

    def __init__(
        self,
        agents: Sequence[Entity],
        landmarks: Sequence[Entity],
        num_envs: int,
        dim_c: int = 0,
        extras: Mapping[str, int | tuple[int, ...]] | None = None,
        dtype: Any = np.float64,
        dt: float = 0.1,
        damping: float = 0.25,
        contact_force: float = 1e2,
        contact_margin: float = 1e-3,
    ) -> None:
        self.agents = tuple(agents)
        self.landmarks = tuple(landmarks)
        self.entities = self.agents + self.landmarks
        self.num_envs = E = int(num_envs)
        self.n_agents = A = len(self.agents)
        self.n_entities = N = len(self.entities)
        self.dim_c = int(dim_c)
        self.dtype = np.dtype(dtype)
        self.dt, self.damping = float(dt), float(damping)
        self.contact_force, self.contact_margin = float(contact_force), float(contact_margin)
        if any(e.movable for e in self.landmarks):
            raise ValueError("movable entities must be agents (a moving non-policy entity is a scripted agent)")

        # ---- storage: copy-last. Every section is (..., num_envs) in memory, so each array operation runs along
        # the copies in its inner loop; with the (x, y) axis innermost NumPy would iterate in steps of two.
        # (name, natural shape, memory order of the natural axes)
        sections = [
            ("vel", (N, 2), (1, 0)),
            ("pos", (N, 2), (1, 0)),
            ("comm", (A, self.dim_c), (1, 0)),
            ("rel", (A, N, 2), (2, 0, 1)),
            ("zero", (1,), (0,)),
        ]
        for name, shape in (extras or {}).items():
            if name in {s[0] for s in sections}:
                raise ValueError(f"extra section {name!r} clashes with a built-in section")
            shape = (shape,) if isinstance(shape, int) else tuple(shape)
            sections.append((name, shape, tuple(range(len(shape)))))
        total = sum(int(np.prod(shape)) for _, shape, _ in sections)
        #: All observable state, ``(K, num_envs)``: one row per scalar of one copy.
        self.data = np.zeros((total, E), dtype=self.dtype)
        #: Section name -> the data row of each element, indexed naturally (``layout["rel"][i, j]`` = rows of x, y).
        self.layout: dict[str, np.ndarray] = {}
        soa: dict[str, np.ndarray] = {}
        public: dict[str, np.ndarray] = {}
        start = 0
        for name, shape, order in sections:
            mem_shape = tuple(shape[a] for a in order)
            size = int(np.prod(shape))
            inverse = tuple(int(i) for i in np.argsort(order))
            self.layout[name] = np.arange(start, start + size).reshape(mem_shape).transpose(inverse)
            soa[name] = self.data[start : start + size].reshape(*mem_shape, E)
            public[name] = soa[name].transpose(len(shape), *inverse)
            start += size
        #: Copy-last views, the fast way to compute over all copies: ``pos_cl``/``vel_cl`` ``(2, N, E)``, ``rel_cl``
        #: ``(2, A, N, E)``, ``dist_cl`` ``(A, N, E)`` (the same memory as the public views below).
        self.pos_cl, self.vel_cl, self.rel_cl = soa["pos"], soa["vel"], soa["rel"]
        self.dist_cl = np.zeros((A, N, E), dtype=self.dtype)
        self._sq = np.zeros((2, A, N, E), dtype=self.dtype)
        #: Public views, ``(num_envs, ...)``: positions and velocities ``(E, N, 2)``, communication ``(E, A, dim_c)``,
        #: ``rel[:, i, j] = pos[:, j] - pos[:, i]`` ``(E, A, N, 2)``, ``dist`` its norm ``(E, A, N)``, and ``extra``.
        #: Writing into them writes the world (call ``refresh`` after moving entities by hand).
        self.pos, self.vel, self.comm, self.rel = public["pos"], public["vel"], public["comm"], public["rel"]
        self.dist = self.dist_cl.transpose(2, 0, 1)
        self.extra = {name: public[name] for name in (extras or {})}

        # ---- static properties as arrays
        self.size = np.array([e.size for e in self.entities])
        self.mass = np.array([e.mass for e in self.entities])
        self.movable = np.array([e.movable for e in self.entities])
        self.collide = np.array([e.collide for e in self.entities])
        accel = np.array([DEFAULT_ACCEL if e.accel is None else e.accel for e in self.agents])
        #: Force of each discrete action, copy-last: ``(2, n_agents, 5)``.
        self._action_table = (DIRECTIONS.T[:, None, :] * accel[None, :, None]).astype(self.dtype)
        self._accel = accel[:, None].astype(self.dtype)
        self._agent_rows = np.arange(A)[:, None]

        # Movable entities (all agents): a slice when contiguous, so updates are views, not gathers.
        self._mov = _as_slice(np.flatnonzero(self.movable))
        mov_idx = np.arange(N)[self._mov]
        self._mass_is_one = bool(np.all(self.mass[mov_idx] == 1.0))
        self._mass_mov = self.mass[mov_idx][:, None].astype(self.dtype)
        max_speed = np.array(
            [np.inf if self.entities[i].max_speed is None else self.entities[i].max_speed for i in mov_idx]
        )
        self._max_speed = (
            np.where(np.isfinite(max_speed), max_speed, np.finfo(self.dtype).max)[:, None].astype(self.dtype)
            if np.isfinite(max_speed).any()
            else None
        )
        self._tmp = np.zeros((2, len(mov_idx), E), dtype=self.dtype)
        self._pos_mov, self._vel_mov = self.pos_cl[:, self._mov], self.vel_cl[:, self._mov]  # views, if a slice

        # Contact pairs, directed: every movable collider (receiver) against every other collider. Degrees are
        # equal (n_colliders - 1), so the pair axis reshapes to (receivers, partners) and force sums need no scatter.
        colliders = np.flatnonzero(self.collide)
        recv = np.array([i for i in colliders if self.movable[i]], dtype=np.int64)
        if len(recv) and len(colliders) > 1:
            partners = np.array([[j for j in colliders if j != i] for i in recv])
            self._contact_recv: slice | np.ndarray | None = _as_slice(recv)
            # data rows of rel[i, j] for every pair, x rows then y rows: (2 * R * D,)
            self._contact_rel_rows = np.moveaxis(self.layout["rel"][recv[:, None], partners], -1, 0).reshape(-1)
            self._contact_dist_rows = (recv[:, None] * N + partners).reshape(-1)  # into dist_cl (A*N, E)
            self._contact_shape = (len(recv), partners.shape[1])
            self._contact_dmin = (self.size[recv][:, None] + self.size[partners])[..., None].astype(self.dtype)
            # Vectorised exp/log beat the scalar logaddexp loop from ~8k pairs on (1.4x at 20k); below, one call wins.
            self._softplus_simd = E * recv.size * partners.shape[1] >= 8192
            # Far from contact the force is below exp(-40) * contact_force * margin ~ 4e-19: small batches, where
            # most of the time no pair is near contact, skip the contact computation then (one cheap test on dist).
            self._skip_far = E <= 16
            self._reach = np.full((A, N, 1), -np.inf)
            self._reach[recv[:, None], partners, 0] = self._contact_dmin[..., 0] + 40.0 * self.contact_margin
        else:
            self._contact_recv = None

        self.refresh()

    # ------------------------------------------------------------------------------------------------ state
    def refresh(self) -> None:
        """Recompute the derived ``rel`` and ``dist`` from ``pos`` (call after writing ``pos`` directly)."""
        P, R = self.pos_cl, self.rel_cl
        np.subtract(P[:, None, :, :], P[:, : self.n_agents, None, :], out=R)
        if self.num_envs <= 16:  # one call where call overhead dominates; it may differ from the below in the last bit
            np.hypot(R[0], R[1], out=self.dist_cl)
        else:  # sqrt(dx^2 + dy^2), mpe2's formula, as vectorised loops (np.hypot is a scalar loop)
            np.multiply(R, R, out=self._sq)
            np.add(self._sq[0], self._sq[1], out=self.dist_cl)
            np.sqrt(self.dist_cl, out=self.dist_cl)

    def reset_copies(self, mask: np.ndarray, pos: np.ndarray) -> None:
        """Place the entities of the copies where ``mask`` is true at ``pos`` ``(mask.sum(), n_entities, 2)``, at rest
        and silent."""
        self.pos[mask] = pos
        self.vel[mask] = 0.0
        self.comm[mask] = 0.0
        self.refresh()

    def set_copy(self, index: int, pos: Any = None, vel: Any = None, comm: Any = None) -> None:
        """Overwrite the state of copy ``index`` (any of positions ``(n_entities, 2)``, velocities ``(n_entities, 2)``,
        communication ``(n_agents, dim_c)``); omitted parts keep their value."""
        if not 0 <= index < self.num_envs:
            raise IndexError(f"copy index {index} out of range for num_envs={self.num_envs}")
        writes = []
        for name, value, target in (("pos", pos, self.pos), ("vel", vel, self.vel), ("comm", comm, self.comm)):
            if value is None:
                continue
            value = np.asarray(value, dtype=np.float64)
            if value.shape != target.shape[1:]:
                raise ValueError(f"{name} must have shape {target.shape[1:]}, got {value.shape}")
            writes.append((target, value))
        for target, value in writes:  # all checked first: a bad argument changes nothing
            target[index] = value
        self.refresh()

    def get_copy(self, index: int) -> dict[str, np.ndarray]:
        """The state of copy ``index`` (positions, velocities, communication), as fresh arrays."""
        return {"pos": self.pos[index].copy(), "vel": self.vel[index].copy(), "comm": self.comm[index].copy()}

    # ---------------------------------------------------------------------------------------------- actions
    def action_force(self, actions: np.ndarray, agents: slice = slice(None), continuous: bool = False) -> np.ndarray:
        """Force on agents ``agents`` (a slice of the agent list; default all) from their actions, as mpe2's
        ``_set_action``: ``(num_envs, n, 2)``.

        ``actions`` is ``(num_envs, n)`` of integers in ``0..4`` (trusted: validation is the env's job) or
        ``(num_envs, n, 5)`` in ``[0, 1]``. ``step`` ignores the rows of immovable agents.
        """
        if continuous:
            a = np.asarray(actions).transpose(2, 1, 0)  # (5, n, E)
            # a2 - a1 in the action's own precision, then scaled: mpe2's order of operations
            force = np.multiply(a[2::2] - a[1:4:2], self._accel[agents], dtype=self.dtype)
        else:
            force = self._action_table[:, self._agent_rows[agents], np.asarray(actions).T]  # (2, n, E)
        return force.transpose(2, 1, 0)

    # ---------------------------------------------------------------------------------------------- physics
    def step(self, force: np.ndarray) -> None:
        """Advance every copy by ``dt``: add contact forces to ``force`` ``(num_envs, n_agents, 2)`` (modified in
        place; rows of immovable agents are ignored), integrate, apply speed limits, refresh ``rel``/``dist``.

        Scenario forces beyond actions and contacts (walls, scripted pushes) are simply added to ``force`` first.
        """
        F = force.transpose(2, 1, 0)  # copy-last (2, n_agents, E)
        if self._contact_recv is not None:
            fc = self._contact_forces()
            if fc is not None:
                if isinstance(self._contact_recv, slice):
                    Fr = F[:, self._contact_recv]
                    Fr += fc
                else:
                    F[:, self._contact_recv] += fc
        mov, tmp = self._mov, self._tmp
        if isinstance(mov, slice):
            P, V = self._pos_mov, self._vel_mov
        else:  # fancy indexing gathers copies: written back below
            P, V = self.pos_cl[:, mov], self.vel_cl[:, mov]
        np.multiply(V, self.dt, out=tmp)  # p += v dt (with the old velocity)
        P += tmp
        V *= 1.0 - self.damping  # v = v (1 - damping) + F / m dt
        if self._mass_is_one:
            np.multiply(F[:, mov], self.dt, out=tmp)
        else:
            np.divide(F[:, mov], self._mass_mov, out=tmp)
            tmp *= self.dt
        V += tmp
        if self._max_speed is not None:  # faster than max_speed: rescale to it
            np.multiply(V, V, out=tmp)
            speed = np.sqrt(tmp[0] + tmp[1])
            np.maximum(speed, self._max_speed, out=speed)
            np.divide(self._max_speed, speed, out=speed)  # exactly 1 where not too fast
            V *= speed
        if not isinstance(mov, slice):
            self.pos_cl[:, mov], self.vel_cl[:, mov] = P, V
        self.refresh()

    def _contact_forces(self) -> np.ndarray | None:
        """Contact force on every receiver, copy-last ``(2, n_receivers, E)``, from the current ``rel``/``dist``;
        ``None`` when (in a small batch) no pair is within reach of contact."""
        E = self.num_envs
        R, D = self._contact_shape
        if self._skip_far and not np.count_nonzero(self.dist_cl < self._reach):
            return None
        d = self.dist_cl.reshape(-1, E).take(self._contact_dist_rows, axis=0).reshape(R, D, E)
        x = self._contact_dmin - d  # penetration depth (negative: apart)
        x *= 1.0 / self.contact_margin
        if self._softplus_simd:  # softplus(x) = max(x, 0) + log(1 + exp(-|x|)), as vectorised exp/log
            y = np.abs(x)
            np.negative(y, out=y)
            np.exp(y, out=y)
            y += 1.0
            np.log(y, out=y)
            np.maximum(x, 0.0, out=x)
            x += y
        else:
            x = np.logaddexp(0.0, x)
        # F_i = contact_force * k * softplus * (p_i - p_j) / d, and p_i - p_j = -rel[i, j]. Two bodies at exactly
        # the same point (pressed into one corner by the walls of pursuit) have no direction: force 0, not NaN.
        np.maximum(d, 1e-12, out=d)
        x /= d
        x *= -self.contact_force * self.contact_margin
        rel = self.data.take(self._contact_rel_rows, axis=0).reshape(2, R, D, E)
        rel *= x
        return rel.sum(axis=2)

    # ------------------------------------------------------------------------------------------ observations
    def gather(self, rows: np.ndarray) -> np.ndarray:
        """A fresh C-contiguous float32 array ``(num_envs, *rows.shape)`` of the data rows ``rows`` (from ``layout``)."""
        out = self.data.take(rows.reshape(-1), axis=0).T.astype(np.float32, order="C")
        return out.reshape(self.num_envs, *rows.shape)

    # -------------------------------------------------------------------------------------------- rendering
    def render(self, index: int, colors: np.ndarray | None = None, size: int = 400) -> np.ndarray:
        """An RGB frame of copy ``index``: entities as circles in their colors (``colors`` overrides, ``(N, 3)`` in
        [0, 1]); the view spans the entities (at least ``[-1, 1]^2``); non-silent agents' messages are bars at the
        top left."""
        pos = self.pos[index].astype(np.float64)
        extent = max(1.0, float(np.max(np.abs(pos) + self.size[:, None]))) * 1.05
        frame = rendering.blank(size, size)
        colors = np.array([e.color for e in self.entities]) if colors is None else np.asarray(colors)
        scale = size / (2.0 * extent)
        rendering.draw_circles(
            frame,
            rendering.world_to_pixels(pos, extent, size),
            self.size * scale,
            np.clip(colors * 200, 0, 255).astype(np.uint8),
        )
        bar = max(size // 40, 2)
        for row, i in enumerate(i for i, e in enumerate(self.agents) if not e.silent):
            top = bar + row * 5 * bar
            for c, value in enumerate(np.clip(self.comm[index, i], 0.0, 1.0)):
                x0 = bar + c * 2 * bar
                rendering.draw_rect(frame, x0, top, x0 + bar, top + 4 * bar, (220, 220, 220))
                h = int(round(4 * bar * float(value)))
                rendering.draw_rect(frame, x0, top + 4 * bar - h, x0 + bar, top + 4 * bar, (40, 40, 40))
        return frame


def _as_slice(idx: np.ndarray) -> slice | np.ndarray:
    """``idx`` as a slice when it is a contiguous run (so indexing gives views), else unchanged."""
    idx = np.asarray(idx, dtype=np.int64)
    if len(idx) and np.array_equal(idx, np.arange(idx[0], idx[0] + len(idx))):
        return slice(int(idx[0]), int(idx[0]) + len(idx))
    return idx


class ParticleEnvMixin:
    """The pieces every particle scenario shares (a mixin next to ``MultiAgentEnv``): observations and state as
    gathers from the world data, rendering, and the public state-setting API.

    A scenario sets ``self.world``, ``self._obs_cols`` (group -> ``(n_agents, obs_dim)`` data rows) and calls
    :meth:`_set_state_cols`; it overrides ``_set_extras``/``_get_extras``/``_entity_colors`` when it has extras.
    """

    world: World
    _obs_cols: dict[str, np.ndarray]
    _state_cols: np.ndarray

    def _set_state_cols(self) -> None:
        # The global state is every agent's observation in agent order, like mpe2's ``state()``.
        self._state_cols = np.concatenate([c.reshape(-1) for c in self._obs_cols.values()])

    def _observe(self) -> dict[str, np.ndarray]:
        gather = self.world.gather
        return {g: gather(cols) for g, cols in self._obs_cols.items()}

    def _state(self) -> np.ndarray:
        return self.world.gather(self._state_cols)

    def _render_copy(self, index: int) -> np.ndarray:
        return self.world.render(index, self._entity_colors(index))

    def set_state(
        self, index: int = 0, *, pos: Any = None, vel: Any = None, comm: Any = None, **extras: Any
    ) -> dict[str, np.ndarray]:
        """Place copy ``index`` in a given state and return the observations of every copy.

        ``pos``/``vel`` ``(n_entities, 2)`` (agents first, then landmarks, in mpe2's order), ``comm``
        ``(n_agents, dim_c)``, plus the scenario's extras (see ``get_state``); omitted parts keep their value. The
        episode clock is untouched. Meant for tests and demonstrations, e.g. to start from an mpe2 state.
        """
        if not 0 <= index < self.world.num_envs:
            raise IndexError(f"copy index {index} out of range for num_envs={self.world.num_envs}")
        self._set_extras(index, **extras)
        self.world.set_copy(index, pos, vel, comm)
        return self._observe()

    def get_state(self, index: int = 0) -> dict[str, Any]:
        """The state of copy ``index`` as keyword arguments that ``set_state`` accepts."""
        return {**self.world.get_copy(index), **self._get_extras(index)}

    def _set_extras(self, index: int, **extras: Any) -> None:
        if extras:
            raise TypeError(f"{type(self).__name__}.set_state has no extras; got {sorted(extras)}")

    def _get_extras(self, index: int) -> dict[str, Any]:
        return {}

    def _entity_colors(self, index: int) -> np.ndarray | None:
        return None
