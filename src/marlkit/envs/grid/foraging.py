"""Level-based foraging (LBF), batched: agents with levels collect food items that need enough level to load.

The rules of lbforaging (https://github.com/semitable/lb-foraging) as used in
Christianos, Schäfer & Albrecht (2020), "Shared Experience Actor-Critic for Multi-Agent Reinforcement Learning",
NeurIPS, and Papoudakis, Christianos, Schäfer & Albrecht (2021), "Benchmarking Multi-Agent Deep Reinforcement
Learning Algorithms in Cooperative Tasks", NeurIPS Datasets and Benchmarks; every step is array code over all copies.

World: a ``size x size`` grid (row 0 at the top), ``num_agents`` agents and up to ``num_food`` food items, each
with an integer level. At reset every agent gets a level uniform in ``[min_agent_level, max_agent_level]`` and a
uniformly random free cell; then food items are placed one by one uniformly among the cells that are not on the
border, not under an agent, and not within the 3x3 neighbourhood or two cells in line of an earlier item (so items
are at Manhattan distance >= 3 and no cell touches two of them). A food level is uniform in
``[min_food_level, max_food_level]``, where ``max_food_level=None`` means the sum of the (up to) three lowest agent
levels of that copy; ``force_coop`` sets every level to that maximum, so each item needs every agent (with up to
three agents and the default maximum).

Actions: ``Discrete(6)`` with lbforaging's ids: 0 NONE, 1 NORTH, 2 SOUTH, 3 WEST, 4 EAST, 5 LOAD.
``info["action_mask"]`` allows a move unless it leaves the grid or enters a food cell (other agents do not mask
a move, as in lbforaging), and LOAD only next to food (4-neighbourhood). Moves are simultaneous: an agent may
enter a cell another agent leaves in the same step (swaps too); when two or more agents claim the same cell
(an agent that stays claims its own) none of them moves.

Loading: the agents that chose LOAD next to a food item (the first of north, south, west, east holding food)
load it together; it is collected when their summed level reaches its level. Each loader then receives
``level_i * food_level``, divided by ``(summed loader level) * (summed level of the food spawned this episode)``
when ``normalize_reward`` (so the rewards of an episode that collects everything sum to 1 over all agents).
When the summed level falls short, each loader receives ``-penalty``.

Observation of agent i (float32, lbforaging's vector observation, ``3 * num_food + 3 * num_agents``; agent
triples shrink to pairs with ``observe_agent_levels=False``): the food items within ``sight`` cells (Chebyshev)
as ``(y, x, level)`` in row-major order, then the agents within ``sight`` as ``(y, x, level)`` with itself first
and the others in agent order; unused slots are ``(-1, -1, 0)``. Coordinates are relative to the top-left corner
of the agent's view window clipped to the grid, ``max(position - sight, 0)``, so with ``sight >= size - 1``
(the default) they are plain grid coordinates. State (float32, ``3 * num_food + 3 * num_agents``): every food
slot as ``(y, x, level)`` in grid coordinates (``(-1, -1, 0)`` once collected or never placed), then every agent.

An episode terminates when all food is collected and is truncated after ``max_steps`` steps.
Metrics per episode (``info["episode_metrics"]``): ``food_collected`` (fraction of the episode's food),
``joint_collections`` (items collected by two or more agents), ``load_attempts`` (agent-steps choosing LOAD),
``failed_loads`` (agent-steps loading food that was too heavy), ``blocked_moves`` (moves stopped by other agents).
Sub-tasks (``subtask_counts``): the food slots (numbered within an episode) each agent helped collect.

Deliberate differences from lbforaging, each where lbforaging's behaviour is an accident:

* An agent moving into the cell of an agent whose own move failed fails too (lbforaging moves it there, and two
  agents share a cell).
* Other agents are seen within ``sight`` cells on every side; lbforaging's test lets an agent near the top or
  left border see agents up to ``2 * sight`` cells away on the far side, but not food.
* ``terminated`` (all food collected) and ``truncated`` (time limit) are separate; invalid actions raise
  ``ActionError`` (with ``validate_actions`` off they become NONE, as lbforaging does with every invalid action).
* Food is drawn exactly among the cells still allowed, instead of giving up after 1000 rejected draws.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import numpy.typing as npt
from gymnasium import spaces

from marlkit.envs import rendering
from marlkit.envs.base import Dynamics, MultiAgentEnv, Obs

NONE, NORTH, SOUTH, WEST, EAST, LOAD = range(6)
ACTION_NAMES = ("NONE", "NORTH", "SOUTH", "WEST", "EAST", "LOAD")
#: (row, col) displacement of each action.
_DELTAS = np.array([[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1], [0, 0]], dtype=np.int64)
#: Offsets around a placed food item where no further item may go: its 3x3 neighbourhood and two cells in line.
_FOOD_EXCLUSION = np.array(
    [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1)] + [(-2, 0), (2, 0), (0, -2), (0, 2)], dtype=np.int64
)
_AGENT_COLORS = np.array(
    [
        (31, 119, 180),
        (214, 39, 40),
        (148, 103, 189),
        (255, 127, 14),
        (23, 190, 207),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
    ],
    dtype=np.uint8,
)


class Foraging(MultiAgentEnv):
    """Level-based foraging on a ``size x size`` grid; one group ``"agents"`` of ``num_agents`` agents.

    Args:
        size: side of the square grid (lbforaging's ``field_size``).
        num_agents: number of agents (lbforaging's ``players``).
        num_food: number of food items placed at reset (lbforaging's ``max_num_food``).
        min_agent_level, max_agent_level: range of the agents' levels (lbforaging's ``min/max_player_level``).
        min_food_level: lowest food level.
        max_food_level: highest food level; ``None`` means the sum of the three lowest agent levels of the copy.
        sight: view radius in cells (Chebyshev); ``None`` means ``size`` (full observability).
        force_coop: every food item gets the maximum level (lbforaging's cooperative ``-coop`` variants).
        max_steps: episode length after which agents are truncated.
        penalty: reward subtracted from each agent of a failed load (lbforaging's ``penalty``, 0.1 in ``-pen``).
        normalize_reward: divide rewards so that a fully collected episode pays 1 in total.
        observe_agent_levels: include agents' levels in the observation.
    """

    def __init__(
        self,
        size: int = 8,
        num_agents: int = 2,
        num_food: int = 2,
        min_agent_level: int = 1,
        max_agent_level: int = 2,
        min_food_level: int = 1,
        max_food_level: int | None = None,
        sight: int | None = None,
        force_coop: bool = False,
        max_steps: int = 50,
        penalty: float = 0.0,
        normalize_reward: bool = True,
        observe_agent_levels: bool = True,
        num_envs: int = 1,
        seed: int | None = None,
    ) -> None:
        super().__init__(num_envs, seed)
        for name, value, low in (
            ("size", size, 3),
            ("num_agents", num_agents, 1),
            ("num_food", num_food, 1),
            ("min_agent_level", min_agent_level, 1),
            ("min_food_level", min_food_level, 1),
            ("max_steps", max_steps, 1),
        ):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if num_agents > size * size:
            raise ValueError(f"{num_agents} agents do not fit on a {size}x{size} grid")
        if not min_agent_level <= max_agent_level:
            raise ValueError(f"need min_agent_level <= max_agent_level, got {min_agent_level} > {max_agent_level}")
        if max_food_level is not None and not min_food_level <= max_food_level:
            raise ValueError(f"need min_food_level <= max_food_level, got {min_food_level} > {max_food_level}")
        if sight is not None and (not isinstance(sight, (int, np.integer)) or sight < 0):
            raise ValueError(f"sight must be a non-negative integer or None, got {sight!r}")
        if penalty < 0:
            raise ValueError(f"penalty is subtracted on failed loads and must be >= 0, got {penalty}")
        self.size, self.n_agents, self.n_food = int(size), int(num_agents), int(num_food)
        self.min_agent_level, self.max_agent_level = int(min_agent_level), int(max_agent_level)
        self.min_food_level = int(min_food_level)
        self.max_food_level = None if max_food_level is None else int(max_food_level)
        self.sight = self.size if sight is None else int(sight)
        self.force_coop = bool(force_coop)
        self.max_steps = int(max_steps)
        self.penalty = float(penalty)
        self.normalize_reward = bool(normalize_reward)
        self.observe_agent_levels = bool(observe_agent_levels)
        # The highest food level any copy can draw: the default is the sum of the three lowest agent levels.
        self._food_level_cap = (
            self.max_food_level if self.max_food_level is not None else min(self.n_agents, 3) * self.max_agent_level
        )

        a_width = 3 if self.observe_agent_levels else 2
        hi = self.size - 1
        obs_low = np.array([-1, -1, 0] * self.n_food + [-1, -1, 0][:a_width] * self.n_agents, dtype=np.float32)
        obs_high = np.array(
            [hi, hi, self._food_level_cap] * self.n_food + [hi, hi, self.max_agent_level][:a_width] * self.n_agents,
            dtype=np.float32,
        )
        state_low = np.array([-1, -1, 0] * (self.n_food + self.n_agents), dtype=np.float32)
        state_high = np.array(
            [hi, hi, self._food_level_cap] * self.n_food + [hi, hi, self.max_agent_level] * self.n_agents,
            dtype=np.float32,
        )
        ids = tuple(f"agent_{i}" for i in range(self.n_agents))
        self._set_spaces(
            {"agents": ids},
            {"agents": spaces.Box(obs_low, obs_high, dtype=np.float32)},
            {"agents": spaces.Discrete(6)},
            spaces.Box(state_low, state_high, dtype=np.float32),
        )

        e, n, f = self.num_envs, self.n_agents, self.n_food
        self._agent_pos = np.zeros((e, n, 2), dtype=np.int64)
        self._agent_level = np.ones((e, n), dtype=np.int64)
        self._food_pos = np.zeros((e, f, 2), dtype=np.int64)
        self._food_level = np.zeros((e, f), dtype=np.int64)  # 0: collected or never placed
        self._food_total = np.ones(e)  # summed level of the food spawned this episode (reward normaliser)
        self._food_count = np.ones(e)  # number of items spawned this episode
        self._eye = np.eye(n, dtype=bool)
        self._cache: tuple[np.ndarray, np.ndarray] | None = None  # (action mask, food next to each agent)
        self._collected_by = np.zeros((e, n, f), dtype=bool)  # won[e, i, j]: i helped collect item j last step

    # ---------------------------------------------------------------------------------------------- reset
    def _reset_copies(self, mask: np.ndarray) -> None:
        idx = np.flatnonzero(mask)
        k = idx.size
        if k == 0:
            return
        rng, s, n, f = self.np_random, self.size, self.n_agents, self.n_food
        rows = np.arange(k)
        # Agents: distinct uniformly random cells (a random ordering of the cells, first n).
        cells = np.argsort(rng.random((k, s * s)), axis=1)[:, :n]
        agent_pos = np.stack(np.divmod(cells, s), axis=-1)
        agent_level = rng.integers(self.min_agent_level, self.max_agent_level + 1, size=(k, n))

        # Food: one slot at a time (each placement restricts the next), uniform among the allowed cells.
        free = np.zeros((k, s, s), dtype=bool)
        free[:, 1:-1, 1:-1] = True
        free[np.repeat(rows, n), agent_pos[..., 0].ravel(), agent_pos[..., 1].ravel()] = False
        food_pos = np.zeros((k, f, 2), dtype=np.int64)
        placed = np.zeros((k, f), dtype=bool)
        for j in range(f):
            keys = np.where(free.reshape(k, -1), rng.random((k, s * s)), -1.0)
            cell = keys.argmax(axis=1)
            ok = keys[rows, cell] >= 0.0
            r, c = np.divmod(cell, s)
            food_pos[:, j, 0], food_pos[:, j, 1] = r, c
            placed[:, j] = ok
            rr, cc = r[:, None] + _FOOD_EXCLUSION[:, 0], c[:, None] + _FOOD_EXCLUSION[:, 1]
            hit = ok[:, None] & (rr >= 0) & (rr < s) & (cc >= 0) & (cc < s)
            free[np.broadcast_to(rows[:, None], hit.shape)[hit], rr[hit], cc[hit]] = False

        if self.max_food_level is not None:
            high = np.full(k, self.max_food_level)
        else:
            high = np.sort(agent_level, axis=1)[:, :3].sum(axis=1)
        low = high if self.force_coop else np.minimum(self.min_food_level, high)
        food_level = rng.integers(low[:, None], high[:, None] + 1, size=(k, f))
        food_level[~placed] = 0

        self._agent_pos[idx] = agent_pos
        self._agent_level[idx] = agent_level
        self._food_pos[idx] = food_pos
        self._food_level[idx] = food_level
        self._food_total[idx] = np.maximum(food_level.sum(axis=1), 1)
        self._food_count[idx] = np.maximum(placed.sum(axis=1), 1)
        self._cache = None

    def set_state(
        self,
        index: int,
        agent_positions: npt.ArrayLike,
        agent_levels: npt.ArrayLike,
        food_positions: npt.ArrayLike,
        food_levels: npt.ArrayLike,
    ) -> None:
        """Place agents and food in copy ``index`` by hand (tests, curricula, demos); positions are ``(row, col)``.

        Up to ``num_food`` items may be given; the rest of the food slots stay empty. The reward normaliser and the
        ``food_collected`` denominator become those of the given food, as if it had just been spawned.
        """
        if not 0 <= index < self.num_envs:
            raise IndexError(f"copy index {index} out of range for num_envs={self.num_envs}")
        s, n, f = self.size, self.n_agents, self.n_food
        ap = np.asarray(agent_positions, dtype=np.int64).reshape(-1, 2)
        al = np.asarray(agent_levels, dtype=np.int64).reshape(-1)
        fp = np.asarray(food_positions, dtype=np.int64).reshape(-1, 2)
        fl = np.asarray(food_levels, dtype=np.int64).reshape(-1)
        if ap.shape != (n, 2) or al.shape != (n,):
            raise ValueError(f"need {n} agent positions and levels, got {len(ap)} and {len(al)}")
        if len(fp) != len(fl) or not 1 <= len(fp) <= f:
            raise ValueError(f"need between 1 and {f} food positions with as many levels, got {len(fp)} and {len(fl)}")
        for label, p in (("agent", ap), ("food", fp)):
            if ((p < 0) | (p >= s)).any():
                raise ValueError(f"{label} positions must lie in the {s}x{s} grid, got {p.tolist()}")
        cells = np.concatenate([ap, fp]) @ np.array([s, 1])
        if len(np.unique(cells)) != len(cells):
            raise ValueError("agents and food must all occupy different cells")
        if ((al < self.min_agent_level) | (al > self.max_agent_level)).any():
            raise ValueError(f"agent levels must lie in [{self.min_agent_level}, {self.max_agent_level}], got {al}")
        if ((fl < 1) | (fl > self._food_level_cap)).any():
            raise ValueError(f"food levels must lie in [1, {self._food_level_cap}], got {fl}")
        self._agent_pos[index] = ap
        self._agent_level[index] = al
        self._food_pos[index] = 0
        self._food_level[index] = 0
        self._food_pos[index, : len(fp)] = fp
        self._food_level[index, : len(fl)] = fl
        self._food_total[index] = fl.sum()
        self._food_count[index] = len(fl)
        self._cache = None

    # ----------------------------------------------------------------------------------------------- step
    def _neighbourhood(self) -> tuple[np.ndarray, np.ndarray]:
        """Action mask ``(E, N, 6)`` and ``food_next[e, i, d, j]``: food ``j`` lies in direction ``d`` (N, S, W, E)."""
        if self._cache is None:
            target = self._agent_pos[:, :, None, :] + _DELTAS[None, None, 1:5]  # (E, N, 4, 2)
            inside = ((target >= 0) & (target < self.size)).all(axis=-1)
            alive = self._food_level > 0
            food_next = (target[:, :, :, None, :] == self._food_pos[:, None, None, :, :]).all(axis=-1) & alive[
                :, None, None, :
            ]
            food_at = food_next.any(axis=-1)
            mask = np.ones((self.num_envs, self.n_agents, 6), dtype=bool)
            mask[..., 1:5] = inside & ~food_at
            mask[..., LOAD] = food_at.any(axis=-1)
            self._cache = (mask, food_next)
        return self._cache

    def _action_mask(self) -> dict[str, np.ndarray]:
        return {"agents": self._neighbourhood()[0]}

    def _step_dynamics(self, actions: dict[str, np.ndarray]) -> Dynamics:
        mask, food_next = self._neighbourhood()
        a = np.asarray(actions["agents"], dtype=np.int64)
        a = np.where(np.take_along_axis(mask, a[..., None], axis=-1)[..., 0], a, NONE)
        pos, eye = self._agent_pos, self._eye

        # Movement: every agent claims a cell (its own when it stays); a cell claimed twice stops all claimants.
        target = pos + _DELTAS[a]
        wants = (a >= NORTH) & (a <= EAST)
        clash = ((target[:, :, None] == target[:, None]).all(axis=-1) & ~eye).any(axis=-1)
        move = wants & ~clash
        # An agent entering an occupied cell needs its occupant to leave; a failed move can stop a whole chain.
        into = (target[:, :, None] == pos[:, None]).all(axis=-1) & ~eye  # into[e, i, j]: i heads for j's cell
        for _ in range(self.n_agents):
            stopped = move & (into & ~move[:, None, :]).any(axis=-1)
            if not stopped.any():
                break
            move &= ~stopped
        self._agent_pos = np.where(move[..., None], target, pos)

        # Loading (loaders do not move, so the food next to them is as before the moves).
        loading = a == LOAD
        first = food_next.any(axis=-1).argmax(axis=-1)  # first direction holding food: N, S, W, E
        loads = np.take_along_axis(food_next, first[:, :, None, None], axis=2)[:, :, 0, :] & loading[..., None]
        level = self._agent_level
        level_sum = (loads * level[..., None]).sum(axis=1)  # (E, F)
        food_level = self._food_level
        collected = loads.any(axis=1) & (level_sum >= food_level)
        won = loads & collected[:, None, :]
        gain = won * (level[..., None] * food_level[:, None, :]).astype(np.float64)
        if self.normalize_reward:
            gain = gain / np.maximum(level_sum * self._food_total[:, None], 1)[:, None, :]
        self._collected_by = won
        failed = (loads & ~collected[:, None, :]).any(axis=-1)
        rewards = gain.sum(axis=-1) - self.penalty * failed
        self._food_level = np.where(collected, 0, food_level)
        self._cache = None

        # NumPy's stubs type any(axis=...) as maybe a scalar; on this 2-d array it is an array.
        done = cast(np.ndarray, ~(self._food_level > 0).any(axis=1))
        terminated = np.broadcast_to(done[:, None], (self.num_envs, self.n_agents)).copy()
        metrics = {
            "food_collected": collected.sum(axis=1) / self._food_count,
            "joint_collections": (collected & (loads.sum(axis=1) >= 2)).sum(axis=1).astype(np.float64),
            "load_attempts": loading.sum(axis=1).astype(np.float64),
            "failed_loads": failed.sum(axis=1).astype(np.float64),
            "blocked_moves": (wants & ~move).sum(axis=1).astype(np.float64),
        }
        return {"agents": rewards}, {"agents": terminated}, metrics

    def subtask_counts(self, info: dict[str, Any]) -> np.ndarray:
        """``(num_envs, n_agents, num_food)``: 1 where the agent helped collect that food slot at the last step."""
        return self._collected_by.astype(np.float64)

    # ------------------------------------------------------------------------------------------- observing
    def _observe(self) -> Obs:
        e, n, s, sight = self.num_envs, self.n_agents, self.size, self.sight
        pos = self._agent_pos
        rows = np.arange(e)[:, None, None]
        # Subtracting the top-left corner of each agent's view window (clipped to the grid) from (y, x, level).
        corner = np.zeros((e, n, 1, 3), dtype=np.int64)
        corner[:, :, 0, :2] = np.maximum(pos - sight, 0)
        blank = np.array([-1, -1, 0])

        # Food: the visible items first, in row-major order of the grid (a unique key per item).
        fpos = self._food_pos
        seen = (self._food_level > 0)[:, None, :] & (np.abs(fpos[:, None] - pos[:, :, None]).max(axis=-1) <= sight)
        key = np.where(seen, (fpos[..., 0] * s + fpos[..., 1])[:, None, :], s * s)  # (E, N, F)
        pack = np.argsort(key, axis=2)
        table = np.concatenate([fpos, self._food_level[..., None]], axis=-1)  # (E, F, 3)
        food = np.where((np.take_along_axis(key, pack, axis=2) < s * s)[..., None], table[rows, pack] - corner, blank)

        # Agents: itself first, then the visible others in agent order.
        near = np.abs(pos[:, None] - pos[:, :, None]).max(axis=-1) <= sight  # near[e, i, j]: i sees j
        others = np.arange(n)
        key = np.where(self._eye, -1, np.where(near, others, n + others))
        pack = np.argsort(key, axis=2)
        table = np.concatenate([pos, self._agent_level[..., None]], axis=-1)  # (E, N, 3)
        agents = np.where((np.take_along_axis(key, pack, axis=2) < n)[..., None], table[rows, pack] - corner, blank)
        if not self.observe_agent_levels:
            agents = agents[..., :2]
        obs = np.concatenate([food.reshape(e, n, -1), agents.reshape(e, n, -1)], axis=-1).astype(np.float32)
        return {"agents": obs}

    def _state(self) -> np.ndarray:
        alive = self._food_level > 0
        food = np.concatenate([self._food_pos, self._food_level[..., None]], axis=-1)
        food = np.where(alive[..., None], food, np.array([-1, -1, 0]))
        agents = np.concatenate([self._agent_pos, self._agent_level[..., None]], axis=-1)
        return np.concatenate([food.reshape(self.num_envs, -1), agents.reshape(self.num_envs, -1)], axis=-1).astype(
            np.float32
        )

    # ------------------------------------------------------------------------------------------- rendering
    def _render_copy(self, index: int) -> np.ndarray:
        """Grid with food (green, one white dot per level) and agents (colored, one white dot per level)."""
        cell, s = 40, self.size
        frame = rendering.blank(cell * s, cell * s, (245, 245, 240))
        for k in range(s + 1):
            rendering.draw_rect(frame, k * cell - 1, 0, k * cell + 1, cell * s, (200, 200, 200))
            rendering.draw_rect(frame, 0, k * cell - 1, cell * s, k * cell + 1, (200, 200, 200))

        def pips(center: np.ndarray, count: int) -> None:
            count = min(int(count), 6)
            xs = center[0] + (np.arange(count) - (count - 1) / 2) * 7
            dots = np.stack([xs, np.full(count, center[1] + cell * 0.18)], axis=-1)
            rendering.draw_circles(frame, dots, 2.5, (255, 255, 255), outline=None)

        alive = self._food_level[index] > 0
        for (r, c), lv in zip(self._food_pos[index][alive], self._food_level[index][alive]):
            center = np.array([(c + 0.5) * cell, (r + 0.5) * cell])
            rendering.draw_rect(
                frame,
                int(c * cell + 5),
                int(r * cell + 5),
                int((c + 1) * cell - 5),
                int((r + 1) * cell - 5),
                (60, 160, 70),
            )
            pips(center, lv)
        for i, ((r, c), lv) in enumerate(zip(self._agent_pos[index], self._agent_level[index])):
            center = np.array([(c + 0.5) * cell, (r + 0.5) * cell])
            rendering.draw_circles(frame, center[None], cell * 0.4, _AGENT_COLORS[i % len(_AGENT_COLORS)])
            pips(center, lv)
        return frame
