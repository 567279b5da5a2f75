"""The batched multi-agent environment contract.

One ``MultiAgentEnv`` object holds ``num_envs`` copies of an environment and steps them all at once with array
operations; a single copy is ``num_envs=1``. Everything an algorithm sees is a dict keyed by **group** (agents that
share observation and action spaces, the unit of parameter sharing) holding arrays shaped
``(num_envs, n_agents_in_group, ...)``.

Life cycle (declared, not implied):

* ``reset(seed=s)`` resets every copy. From then on every observation, reward and reset of every copy is a pure
  function of ``s`` and the actions taken (one NumPy ``Generator`` drives the whole batch).
* ``step(actions)`` advances every copy. Copies whose episode ends are reset **inside the same call**
  ("same-step" autoreset): the returned observation is already the first observation of the new episode, and
  the observation the episode ended in is in ``info["final_obs"]`` (and the global state in
  ``info["final_state"]``), so truncated episodes bootstrap correctly.
* ``terminated`` and ``truncated`` are separate and per agent. ``terminated`` is true for an agent from the step
  it reaches a terminal state (an agent that dies mid-episode stays terminated, with zero reward and zero
  observation, until its copy resets); ``truncated`` is true when the time limit ends the episode.
  A copy's episode ends when every agent is terminated or truncated.

The ``info`` dict returned by ``step`` always holds:

``final_obs``      dict group -> array like ``obs``: the observation each copy reached *before* any autoreset
                   (for copies that did not end it equals ``obs``).
``final_state``    ``(num_envs, *state_shape)``: likewise for ``state()``; present only when some copy ended
                   (otherwise ``state()`` after the step is the same thing, and we do not compute it twice).
``final_action_mask`` likewise for ``action_mask``, for envs with masks, present only when some copy ended: the
                   actions allowed in ``final_obs`` (a truncated episode's bootstrapped max ranges over these).
``episode_done``   ``(num_envs,)`` bool: copies whose episode ended at this step (and were reset).
``episode_return`` dict group -> ``(num_envs, n_agents)``: each agent's undiscounted return of the episode that
                   ended (valid where ``episode_done``).
``episode_length`` ``(num_envs,)`` int: length of the episode that ended (valid where ``episode_done``).
``episode_metrics`` dict name -> ``(num_envs,)``: the env's task metrics summed over the episode that ended
                   (valid where ``episode_done``; e.g. captures, collisions).

and, for environments that have them, ``action_mask`` (dict group -> ``(num_envs, n_agents, n_actions)`` bool,
true where an action is allowed) and ``active`` (dict group -> ``(num_envs, n_agents)`` bool, agents still alive).
``reset`` returns the same ``action_mask``/``active`` entries.

Actions are validated at the boundary (shape, dtype, range, mask) with an ``ActionError`` that says what was wrong
and what is allowed. With ``validate_actions`` switched off they are trusted: an action outside the space or the
mask is not detected, and each env with masks documents what it does with a masked action (foraging: NONE).

Turn-based games (board and card games, ``turn_based`` true; the ``TurnBased`` mixin of ``marlkit.envs.turns``)
keep this life cycle, one step per move, and add:

* ``info["to_play"]`` ``(num_envs,)`` int, from ``reset`` and ``step``: the index in ``agents`` of the agent to move
  in each copy, for the observation it comes with. Chance (cards dealt, who starts) is drawn inside the env from
  ``np_random``, so an agent never sees a chance turn.
* Every agent acts at every step and only the mover's action counts. Each group's action space is the game's
  moves plus one last action, PASS (index ``n - 1`` of ``Discrete(n)``); ``action_mask`` allows the mover its legal
  moves (never PASS) and every other agent only PASS. A finished game has no mover: ``final_action_mask`` of a
  copy that terminated allows every agent only PASS.
* Rewards reach every agent at the step they happen, whoever moved: the outcome of a game reaches every player at
  the step that ends it, and ``terminated`` is true for all of them then.
* Observations are each agent's own view (its information state in a game of imperfect information); the players
  form one group, so parameter sharing (the agent-id input telling the seats apart) is self-play.

Why this shape: every learner trains on it unchanged, with the credit where it belongs. A forced PASS has
probability 1 under a masked policy, so its log-probability is 0 and it gives no policy gradient (PPO's ratio is
1, its entropy 0), while the critic learns the value of positions where another player is to move and GAE carries
the outcome back through the opponents' moves to each player's own decisions; Q-learning's target at a player's
move bootstraps from ``Q(next, PASS)`` (the max over ``next_action_mask``), which is trained in turn towards the
player's next decision. Discounting counts every step, the other players' moves included (use ``gamma`` near 1).
With ``validate_actions`` off the non-movers' actions are ignored, and each env documents what becomes of a
mover's action outside its mask.

A subclass writes only the dynamics, as array code over all copies at once:

``_reset_copies(mask)``   draw a fresh initial state for the copies where ``mask`` is true (use ``self.np_random``);
``_step_dynamics(actions)`` advance every copy and return ``(rewards, terminated, metrics)``;
``_observe()``            observations of every copy, dict group -> array;
``_state()``              global state ``(num_envs, *state_shape)``;
``_action_mask()``        (optional) dict group -> bool mask;
``_truncated()``          (optional) dict group -> bool, truncation the env decides itself besides ``max_steps``;
``_active()``             (optional) dict group -> bool array of agents alive;
``_to_play()``            (turn-based games) ``(num_envs,)`` int: the agent to move, ``-1`` in a finished game;
``_render_copy(index)``   (optional) an RGB frame ``(H, W, 3)`` uint8 of one copy. ``renders`` says whether the env
                          renders (by default: whether ``_render_copy`` is implemented); one that does not raises
                          ``NotImplementedError`` from ``render()``, and is a valid env all the same.

The base class owns batching, time limits, autoreset, episode bookkeeping, seeding and action validation.
Arrays returned by ``reset``/``step`` belong to the caller: the env never writes into them later.

An env survives ``copy.deepcopy`` and ``pickle`` (multiprocessing vector envs, Ray actors, cloned wrappers): the copy
continues exactly as the original would, mid-episode included (a ``from_pettingzoo`` env copies its PettingZoo envs
their own way: see ``PettingZooEnv``). Attributes that are NumPy views into a shared buffer stay views of the copied
buffer (``SharedBuffers``), so a subclass may keep such views without extra code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Protocol, TypeAlias, cast, runtime_checkable

import numpy as np
from gymnasium import spaces

Obs = dict[str, np.ndarray]
Info = dict[str, Any]
#: What ``_step_dynamics`` returns: ``(rewards, terminated, metrics)``, the first two keyed by group.
Dynamics: TypeAlias = "tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]"
#: The action spaces an env may declare (``check_actions`` and ``check_env`` hold it to these).
ActionSpace: TypeAlias = "spaces.Discrete | spaces.Box | spaces.MultiDiscrete"


class ActionError(ValueError):
    """An action passed to ``step`` is outside what the environment allows."""


class SharedBuffers:
    """Mixin: an object whose attributes include NumPy views into shared buffers keeps them views of the *copied*
    buffers when it is deep-copied or pickled (NumPy alone copies every view into an array of its own, so writes
    through one attribute would no longer reach the others).

    ``__getstate__`` replaces each view (an array whose memory belongs to another array) by a stand-in that names
    the owning array, the byte offset, shape, strides and dtype; the stand-in unpickles (and deep-copies) as a view
    into the copy of its owner, which pickle's and deepcopy's memo make the same object everywhere it is referred
    to. Views in nested ``dict``/``list``/``tuple`` values are handled; objects held as attributes do their own
    (mix this in there too). Arrays that own their memory are copied as usual.
    """

    def __getstate__(self) -> dict[str, Any]:
        state: dict[str, Any] = _views_as_stand_ins(self.__dict__, {})
        return state

    def __copy__(self) -> Any:
        # A shallow copy shares every attribute, views included: nothing to rebuild.
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        return new


class _ViewStandIn:
    """A view of ``owner`` described by position, for pickling; it unpickles as that view of the owner's copy."""

    __slots__ = ("owner", "offset", "shape", "strides", "dtype", "writeable")

    def __init__(self, view: np.ndarray, owner: np.ndarray) -> None:
        self.owner = owner
        self.offset = view.__array_interface__["data"][0] - owner.__array_interface__["data"][0]
        self.shape, self.strides, self.dtype = view.shape, view.strides, view.dtype
        self.writeable = bool(view.flags.writeable)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return _rebuild_view, (self.owner, self.offset, self.shape, self.strides, self.dtype, self.writeable)


def _rebuild_view(
    owner: np.ndarray, offset: int, shape: tuple[int, ...], strides: tuple[int, ...], dtype: np.dtype, writeable: bool
) -> np.ndarray:
    buffer = owner.ravel(order="K").view(np.uint8)
    view: np.ndarray = np.ndarray(shape, dtype, buffer=buffer, offset=offset, strides=strides)
    if not writeable:
        view.flags.writeable = False
    return view


def _views_as_stand_ins(value: Any, memo: dict[int, Any]) -> Any:
    """``value`` with every NumPy view in it (through dicts, lists and tuples) replaced by a ``_ViewStandIn``;
    containers without views are returned as they are, and a container met twice gives the same result."""
    if type(value) is np.ndarray:  # subclasses (memmap, ...) pickle their own way
        owner = value
        while isinstance(owner.base, np.ndarray):
            owner = owner.base
        if (
            owner is value
            or owner.base is not None
            or value.dtype.hasobject
            or not (owner.flags.c_contiguous or owner.flags.f_contiguous)
        ):
            return value  # owns its memory, or borrows it from something that is not an array: copied as usual
        return _ViewStandIn(value, owner)
    if type(value) not in (dict, list, tuple):
        return value
    if id(value) in memo:
        return memo[id(value)]
    if type(value) is dict:
        items = {k: _views_as_stand_ins(v, memo) for k, v in value.items()}
        changed = any(items[k] is not v for k, v in value.items())
        out: Any = items if changed else value
    else:
        elems = [_views_as_stand_ins(v, memo) for v in value]
        changed = any(a is not b for a, b in zip(elems, value))
        out = type(value)(elems) if changed else value
    memo[id(value)] = out
    return out


class MultiAgentEnv(SharedBuffers):
    """Base class of every marlkit environment: ``num_envs`` copies stepped at once as arrays."""

    #: Declared properties (as in Gymnasium and PettingZoo). A class default, not a ClassVar: an instance may
    #: replace it with its own (the PettingZoo bridge names the env it wraps).
    metadata: dict[str, Any] = {"autoreset_mode": "same-step", "render_fps": 10}  # noqa: RUF012

    #: Agent ids, in a fixed order.
    agents: tuple[str, ...]
    #: Group name -> agent ids in the group (all with identical spaces).
    groups: dict[str, tuple[str, ...]]
    #: Global state of one copy, for centralised critics and mixers.
    state_space: spaces.Box
    #: Episode length in steps after which every agent is truncated (None: no time limit).
    max_steps: int | None = None
    #: Observations take few enough distinct values for a table to index them (matrix games), even where the space
    #: is a float Box; tabular learners train only on such envs or on countable spaces (Discrete, MultiDiscrete...).
    finite_observations: ClassVar[bool] = False
    #: Agents take turns: ``info["to_play"]`` names the mover, the others may only PASS (see the module docstring).
    turn_based: ClassVar[bool] = False

    def __init__(self, num_envs: int = 1, seed: int | None = None) -> None:
        if not isinstance(num_envs, (int, np.integer)) or isinstance(num_envs, bool) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        self.num_envs = int(num_envs)
        self._seed = seed
        self.np_random = np.random.default_rng(seed)
        #: Check every action against the action spaces and masks; a trainer may switch it off after the
        #: first step for speed.
        self.validate_actions = True
        self._obs_spaces: dict[str, spaces.Box] = {}
        self._act_spaces: dict[str, ActionSpace] = {}
        self._t = np.zeros(self.num_envs, dtype=np.int64)
        self._returns: dict[str, np.ndarray] = {}
        self._metric_sums: dict[str, np.ndarray] = {}
        self._needs_reset = True

    # ----------------------------------------------------------------------------------------------- spaces
    def _set_spaces(
        self,
        groups: Mapping[str, tuple[str, ...]],
        observation: Mapping[str, spaces.Box],
        action: Mapping[str, ActionSpace],
        state: spaces.Box,
    ) -> None:
        """Declare groups and the (single-copy, single-agent) spaces of each group; call from ``__init__``."""
        self.groups = {g: tuple(ids) for g, ids in groups.items()}
        self.agents = tuple(a for ids in self.groups.values() for a in ids)
        if len(set(self.agents)) != len(self.agents):
            raise ValueError(f"agent ids must be unique across groups, got {self.agents}")
        for g, ids in self.groups.items():
            for a in ids:
                self._obs_spaces[a] = observation[g]
                self._act_spaces[a] = action[g]
        self.state_space = state

    def observation_space(self, agent: str) -> spaces.Box:
        """Observation space of one agent in one copy (as in PettingZoo)."""
        try:
            return self._obs_spaces[agent]
        except KeyError:
            raise KeyError(f"unknown agent {agent!r}; agents are {self.agents}") from None

    def action_space(self, agent: str) -> ActionSpace:
        """Action space of one agent in one copy (as in PettingZoo)."""
        try:
            return self._act_spaces[agent]
        except KeyError:
            raise KeyError(f"unknown agent {agent!r}; agents are {self.agents}") from None

    def group_observation_space(self, group: str) -> spaces.Box:
        return self.observation_space(self.groups[group][0])

    def group_action_space(self, group: str) -> ActionSpace:
        return self.action_space(self.groups[group][0])

    @property
    def num_agents(self) -> int:
        return len(self.agents)

    # -------------------------------------------------------------------------------------------- life cycle
    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Obs, Info]:
        """Reset every copy. ``seed`` (or the seed given at construction, on the first reset) fixes all that follows."""
        if seed is None and self._needs_reset and self._seed is not None:
            seed = self._seed
        if seed is not None:
            self.np_random = np.random.default_rng(seed)
        self._needs_reset = False
        self._reset_copies(np.ones(self.num_envs, dtype=bool))
        self._t[:] = 0
        self._returns = {g: np.zeros((self.num_envs, len(ids))) for g, ids in self.groups.items()}
        self._metric_sums = {}
        info: Info = {}
        self._add_masks(info)
        return self._observe(), info

    def step(
        self, actions: Mapping[str, Any]
    ) -> tuple[Obs, dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray], Info]:
        """Advance every copy one step; copies whose episode ends are reset in the same call."""
        if self._needs_reset:
            raise RuntimeError("call reset() before step()")
        # With validation off the caller is trusted to pass arrays of the right shape and dtype.
        checked = self.check_actions(actions) if self.validate_actions else cast("dict[str, np.ndarray]", actions)
        rewards, terminated, metrics = self._step_dynamics(checked)
        self._t += 1
        n = self.num_envs
        time_up = (self._t >= self.max_steps) if self.max_steps is not None else np.zeros(n, bool)
        # np.count_nonzero rather than .any()/.all(): several times cheaper on the small arrays of a few copies,
        # where this bookkeeping costs as much as the dynamics.
        if np.count_nonzero(time_up):
            up = time_up[:, None]
            truncated = {g: np.repeat(up, r.shape[1], axis=1) for g, r in rewards.items()}
        else:
            truncated = {g: np.zeros(r.shape, dtype=bool) for g, r in rewards.items()}
        own_truncation = self._truncated()
        if own_truncation is not None:
            truncated = {g: truncated[g] | own_truncation[g] for g in truncated}
        done = time_up  # a fresh array, owned by info
        if (
            np.count_nonzero(done) < n and any(np.count_nonzero(term) for term in terminated.values())
        ) or own_truncation is not None:
            all_ended = np.ones(n, dtype=bool)
            for g, term in terminated.items():
                all_ended &= (term | truncated[g]).all(axis=1)
            done |= all_ended

        for g, r in rewards.items():
            self._returns[g] += r
        for name, value in metrics.items():
            if name in self._metric_sums:
                self._metric_sums[name] += value
            else:
                self._metric_sums[name] = np.asarray(value, dtype=np.float64).copy()

        obs = self._observe()
        info: Info = {
            "final_obs": obs,
            "episode_done": done,
            "episode_length": self._t.copy(),
            "episode_return": {g: r.copy() for g, r in self._returns.items()},
            "episode_metrics": {k: v.copy() for k, v in self._metric_sums.items()},
        }
        if np.count_nonzero(done):
            info["final_state"] = self._state()
            final_mask = self._action_mask()
            if final_mask is not None:
                info["final_action_mask"] = {g: m.copy() for g, m in final_mask.items()}
            self._reset_copies(done)
            self._t[done] = 0
            for r in self._returns.values():
                r[done] = 0.0
            for v in self._metric_sums.values():
                v[done] = 0.0
            obs = self._observe()
        self._add_masks(info)
        return obs, rewards, terminated, truncated, info

    def state(self) -> np.ndarray:
        """Global state of every copy, ``(num_envs, *state_space.shape)``."""
        return self._state()

    @property
    def renders(self) -> bool:
        """Whether ``render()`` returns frames; when false it raises ``NotImplementedError`` (rendering is optional)."""
        return type(self)._render_copy is not MultiAgentEnv._render_copy

    def render(self, index: int = 0) -> np.ndarray:
        """An RGB frame ``(H, W, 3)`` uint8 of copy ``index`` (for envs that render: see ``renders``)."""
        if not 0 <= index < self.num_envs:
            raise IndexError(f"copy index {index} out of range for num_envs={self.num_envs}")
        return self._render_copy(index)

    def close(self) -> None:
        """Release resources (none by default)."""

    # ------------------------------------------------------------------------------------------- validation
    def check_actions(self, actions: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Return ``actions`` as arrays after checking them against the spaces and masks; raise ``ActionError``."""
        if not isinstance(actions, Mapping):
            raise ActionError(
                f"actions must be a dict keyed by group {tuple(self.groups)}, got {type(actions).__name__}"
            )
        if actions.keys() != self.groups.keys():
            missing = [g for g in self.groups if g not in actions]
            extra = [g for g in actions if g not in self.groups]
            raise ActionError(
                f"actions must have exactly the groups {tuple(self.groups)}; missing {missing}, unexpected {extra}"
            )
        masks = self._action_mask()
        out: dict[str, np.ndarray] = {}
        expected: tuple[int, ...]
        for g, ids in self.groups.items():
            space = self.group_action_space(g)
            a = np.asarray(actions[g])
            if isinstance(space, spaces.Discrete):
                expected = (self.num_envs, len(ids))
                if a.shape != expected:
                    raise ActionError(
                        f"actions[{g!r}] must have shape (num_envs, n_agents) = {expected} of integers "
                        f"in [{space.start}, {space.start + space.n - 1}], got shape {a.shape}"
                    )
                if a.dtype.kind not in "iu":  # np.issubdtype(a.dtype, np.integer), without its cost
                    raise ActionError(f"actions[{g!r}] must be integers (Discrete({space.n})), got dtype {a.dtype}")
                # One comparison: values below start wrap around to huge unsigned numbers.
                if np.count_nonzero((a if space.start == 0 else a - space.start).astype(np.uint64) >= space.n):
                    bad = (a < space.start) | (a >= space.start + space.n)
                    e, i = (int(x) for x in np.argwhere(bad)[0])
                    raise ActionError(
                        f"actions[{g!r}][{e}, {i}] = {a[e, i]} (agent {ids[i]!r}, copy {e}) is outside "
                        f"Discrete({space.n}): allowed values are {space.start}..{space.start + space.n - 1}"
                    )
                if masks is not None and g in masks:
                    allowed = np.take_along_axis(masks[g], (a - space.start)[..., None], axis=-1)[..., 0]
                    if not allowed.all():
                        e, i = (int(x) for x in np.argwhere(~allowed)[0])
                        legal = np.flatnonzero(masks[g][e, i]) + space.start
                        raise ActionError(
                            f"actions[{g!r}][{e}, {i}] = {a[e, i]} (agent {ids[i]!r}, copy {e}) is masked "
                            f"out by info['action_mask']; allowed now: {legal.tolist()}"
                        )
            elif isinstance(space, spaces.Box):
                expected = (self.num_envs, len(ids), *space.shape)
                if a.shape != expected:
                    raise ActionError(
                        f"actions[{g!r}] must have shape (num_envs, n_agents, *action_shape) = {expected}, "
                        f"got shape {a.shape}"
                    )
                if a.dtype.kind != "f":  # np.issubdtype(a.dtype, np.floating)
                    raise ActionError(f"actions[{g!r}] must be floating point (Box), got dtype {a.dtype}")
                bad = ~((a >= space.low) & (a <= space.high))  # also catches NaN
                if np.count_nonzero(bad):
                    idx = tuple(int(i) for i in np.argwhere(bad)[0])
                    raise ActionError(
                        f"actions[{g!r}]{list(idx)} = {a[idx]} (agent {ids[idx[1]]!r}, copy {idx[0]}) is "
                        f"outside the Box bounds [{space.low[idx[2:]]}, {space.high[idx[2:]]}]; "
                        f"actions are rejected, not clipped"
                    )
            elif isinstance(space, spaces.MultiDiscrete):
                expected = (self.num_envs, len(ids), *space.shape)
                if a.shape != expected or not np.issubdtype(a.dtype, np.integer):
                    raise ActionError(
                        f"actions[{g!r}] must be integers of shape {expected} (MultiDiscrete{space.nvec.tolist()}), "
                        f"got {a.dtype} of shape {a.shape}"
                    )
                bad = (a < space.start) | (a >= space.start + space.nvec)
                if bad.any():
                    idx = tuple(int(i) for i in np.argwhere(bad)[0])
                    raise ActionError(
                        f"actions[{g!r}]{list(idx)} = {a[idx]} is outside MultiDiscrete{space.nvec.tolist()}"
                    )
            else:  # pragma: no cover - a subclass declared a space this check does not know
                raise TypeError(f"action space {space} of group {g!r} is not supported by check_actions")
            out[g] = a
        return out

    def _add_masks(self, info: Info) -> None:
        mask = self._action_mask()
        if mask is not None:
            info["action_mask"] = {g: m.copy() for g, m in mask.items()}
        active = self._active()
        if active is not None:
            info["active"] = {g: m.copy() for g, m in active.items()}
        to_play = self._to_play()
        if to_play is not None:
            info["to_play"] = to_play.copy()

    # ------------------------------------------------------------------------------------- subclass hooks
    def _reset_copies(self, mask: np.ndarray) -> None:
        raise NotImplementedError

    def _step_dynamics(self, actions: dict[str, np.ndarray]) -> Dynamics:
        raise NotImplementedError

    def _observe(self) -> Obs:
        raise NotImplementedError

    def _state(self) -> np.ndarray:
        raise NotImplementedError

    def _action_mask(self) -> dict[str, np.ndarray] | None:
        return None

    def _truncated(self) -> dict[str, np.ndarray] | None:
        """Per-agent truncation the env decides itself, besides ``max_steps`` (e.g. a wrapped env's own time
        limit); called right after ``_step_dynamics``. ``None``: only ``max_steps`` truncates."""
        return None

    def _active(self) -> dict[str, np.ndarray] | None:
        return None

    def _to_play(self) -> np.ndarray | None:
        """Turn-based games: the index in ``agents`` of the agent to move in each copy (``-1``: nobody, the game is
        over). ``None``: agents move simultaneously."""
        return None

    def _render_copy(self, index: int) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} does not render")

    def __repr__(self) -> str:
        groups = ", ".join(f"{g}: {len(ids)}" for g, ids in self.groups.items())
        return f"{type(self).__name__}(num_envs={self.num_envs}, groups={{{groups}}})"


@runtime_checkable
class SubtaskEnv(Protocol):
    """An env whose agents split the work into sub-tasks (spread's landmarks, foraging's food): what role metrics
    (``marlkit.metrics.roles``) count."""

    def subtask_counts(self, info: Info) -> np.ndarray:
        """Called after every ``step`` with its ``info``: ``(num_envs, n_agents, n_subtasks)`` counts of what each
        agent did in that step (for the episodes that ended in it, before their reset). Sub-tasks are numbered within
        an episode; the group is the env's only one."""
        ...
