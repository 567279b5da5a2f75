"""PettingZoo in both directions.

``to_pettingzoo``   one copy of a marlkit env as a standard ``pettingzoo.ParallelEnv`` (for PettingZoo's tests, tools
                    and users);
``from_pettingzoo`` any PettingZoo ``ParallelEnv`` or AEC env as a batched marlkit env (turn-based AEC games through
                    ``marlkit.envs.pettingzoo_aec``).

PettingZoo is an optional extra (``pip install marlkit[pettingzoo]``) and is imported only here.
"""

from __future__ import annotations

import copy
import types
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium import logger, spaces
from gymnasium.utils import EzPickle

from marlkit.envs.base import ActionError, ActionSpace, Dynamics, Info, MultiAgentEnv, Obs
from marlkit.envs.grouping import checked_groups, default_groups
from marlkit.envs.pettingzoo_aec import PettingZooTurnEnv

try:
    import pettingzoo
    from pettingzoo.utils.conversions import aec_to_parallel
except ImportError as e:  # pragma: no cover - depends on the install
    raise ImportError("marlkit.envs.pettingzoo needs PettingZoo: pip install 'marlkit[pettingzoo]'") from e

__all__ = ["MarlkitParallelEnv", "PettingZooEnv", "PettingZooTurnEnv", "from_pettingzoo", "to_pettingzoo"]


# ===================================================================================== marlkit -> PettingZoo
def to_pettingzoo(env_or_id: MultiAgentEnv | str, render_mode: str | None = None, **kwargs: Any) -> MarlkitParallelEnv:
    """One copy of a marlkit env as a ``pettingzoo.ParallelEnv``.

    ``env_or_id`` is an env with ``num_envs=1`` or a registered id, built with ``marlkit.make(id, **kwargs)``.
    ``render_mode`` may be ``"rgb_array"`` when the env renders.
    """
    if isinstance(env_or_id, str):
        from marlkit.envs.registry import make

        return MarlkitParallelEnv(make(env_or_id, num_envs=1, **kwargs), env_or_id, render_mode)
    if kwargs:
        raise TypeError(f"keyword arguments {sorted(kwargs)} only apply when passing an env id, not an env instance")
    if not isinstance(env_or_id, MultiAgentEnv):
        raise TypeError(
            f"to_pettingzoo takes a marlkit MultiAgentEnv or a registered env id, got {type(env_or_id).__name__}"
        )
    return MarlkitParallelEnv(env_or_id, type(env_or_id).__name__, render_mode)


class MarlkitParallelEnv(pettingzoo.ParallelEnv):
    """A marlkit env with ``num_envs=1`` seen through the PettingZoo Parallel API (build it with ``to_pettingzoo``).

    * Observations, rewards and flags are the single copy's arrays, keyed by agent; ``agents`` holds the agents
      still in play: an agent leaves when it is terminated or truncated, or when ``info["active"]`` says it is
      gone, and ``agents`` is empty once the episode is over.
    * marlkit resets a copy in the step that ends it; this wrapper returns ``info["final_obs"]`` for that step,
      ``state()`` returns ``info["final_state"]``, and nothing of the next episode shows until ``reset()``.
      (``render()`` cannot draw the final state, which marlkit has already replaced: it warns and returns None.)
    * ``infos[agent]["action_mask"]`` carries the env's action mask (bool) while the episode runs. PettingZoo treats
      an info mask as advice (its own ``parallel_api_test`` samples without it), so an action outside the mask is
      not an error here: it goes to the env with ``validate_actions`` off for that step, and the env applies its
      own rule (foraging turns it into NONE, as lbforaging does). Actions outside the action space are errors.
    * Actions for agents that have left are ignored; each agent has its own copy of its spaces, so seeding one
      agent's action space never moves another's.
    """

    def __init__(self, env: MultiAgentEnv, name: str, render_mode: str | None = None) -> None:
        if env.num_envs != 1:
            raise ValueError(
                f"to_pettingzoo wraps a single copy; got an env with num_envs={env.num_envs} (build it with num_envs=1)"
            )
        modes = ["rgb_array"] if env.renders else []
        if render_mode is not None and render_mode not in modes:
            raise ValueError(f"render_mode {render_mode!r} is not supported by {name}; supported: {modes or 'none'}")
        self.env = env
        self.render_mode = render_mode
        self.metadata = {
            "name": name,
            "is_parallelizable": True,
            "render_modes": modes,
            "render_fps": env.metadata.get("render_fps", 10),
        }
        self.possible_agents = list(env.agents)
        self.agents: list[str] = []
        self._slot = {a: (g, i) for g, ids in env.groups.items() for i, a in enumerate(ids)}
        self._obs_spaces = {a: copy.deepcopy(env.observation_space(a)) for a in self.possible_agents}
        self._act_spaces = {a: copy.deepcopy(env.action_space(a)) for a in self.possible_agents}
        self.state_space = env.state_space
        self._finished: set[str] = set()
        self._masks: dict[str, np.ndarray] | None = None
        self._final_state: np.ndarray | None = None

    def observation_space(self, agent: str) -> spaces.Space[Any]:
        return self._obs_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space[Any]:
        return self._act_spaces[agent]

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._finished = set()
        self._final_state = None
        self._masks = info.get("action_mask")
        self.agents = self._in_play(info)
        return ({a: self._pick(obs, a) for a in self.agents}, {a: self._agent_info(a) for a in self.agents})

    def step(
        self, actions: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, float], dict[str, bool], dict[str, bool], dict[str, dict[str, Any]]]:
        if not self.agents:
            raise RuntimeError("no agent is left in this episode (or reset() was never called): call reset()")
        unknown = [a for a in actions if a not in self._slot]
        missing = [a for a in self.agents if a not in actions]
        if unknown or missing:
            raise ActionError(
                f"actions must be keyed by the live agents {self.agents}; missing {missing}, unknown {unknown}"
            )
        batch, allowed = self._batch(actions)
        validate = self.env.validate_actions
        if batch is not allowed:  # some action is outside the mask: check the rest, then let the env's rule apply
            if validate:
                self.env.check_actions(allowed)
            self.env.validate_actions = False
        try:
            _, rewards, terminated, truncated, info = self.env.step(batch)
        finally:
            self.env.validate_actions = validate

        before = self.agents
        ended = bool(info["episode_done"][0])
        for a in before:
            g, i = self._slot[a]
            if terminated[g][0, i] or truncated[g][0, i]:
                self._finished.add(a)
        if ended:
            self.agents, self._masks = [], None
            self._final_state = info["final_state"][0]
        else:
            self.agents = self._in_play(info)
            self._masks = info.get("action_mask")
        keys = before + [a for a in self.agents if a not in before]  # agents that just appeared get an observation
        final_obs = info["final_obs"]
        return (
            {a: self._pick(final_obs, a) for a in keys},
            {a: float(self._pick(rewards, a)) for a in keys},
            {a: bool(self._pick(terminated, a)) for a in keys},
            {a: bool(self._pick(truncated, a)) for a in keys},
            {a: self._agent_info(a) for a in keys},
        )

    def state(self) -> np.ndarray:
        return self._final_state if self._final_state is not None else self.env.state()[0]

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            logger.warn("render() called without a render_mode; pass render_mode='rgb_array' to to_pettingzoo")
            return None
        if self._final_state is not None:
            logger.warn(
                "the episode is over and marlkit has already reset this copy (same-step autoreset), so its "
                "final frame cannot be drawn; call reset()"
            )
            return None
        return self.env.render(0)

    def close(self) -> None:
        self.env.close()

    # ------------------------------------------------------------------------------------------------ helpers
    def _in_play(self, info: Info) -> list[str]:
        active = info.get("active")
        return [
            a for a in self.possible_agents if a not in self._finished and (active is None or self._pick(active, a))
        ]

    def _pick(self, arrays: Mapping[str, np.ndarray], agent: str) -> Any:
        g, i = self._slot[agent]
        return arrays[g][0, i]

    def _agent_info(self, agent: str) -> dict[str, Any]:
        return {} if self._masks is None else {"action_mask": self._pick(self._masks, agent)}

    def _batch(self, actions: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """The actions as group arrays ``(1, n_agents, ...)``, with the first allowed action for agents out of play;
        and the same with every action outside the current mask replaced by an allowed one (the same object when
        none is), for validating everything but the mask."""
        batch, allowed, masked = {}, {}, False
        for g, ids in self.env.groups.items():
            rows, ok = [], []
            for i, a in enumerate(ids):
                space = self._act_spaces[a]
                act = actions[a] if a in self.agents else self._placeholder(space, g, i)
                rows.append(act)
                ok.append(act)
                if self._masks is not None and isinstance(space, spaces.Discrete) and a in self.agents:
                    x = np.asarray(act)
                    if x.shape != () or not np.issubdtype(x.dtype, np.integer) or not space.contains(int(x)):
                        raise ActionError(
                            f"action {act!r} of agent {a!r} is not an integer in its action space {space}"
                        )
                    if not self._masks[g][0, i, int(x) - int(space.start)]:
                        ok[-1], masked = self._placeholder(space, g, i), True
            batch[g] = np.asarray(rows)[None]  # dtypes as given: the env rejects float actions for Discrete
            allowed[g] = np.asarray(ok)[None]
        return batch, (allowed if masked else batch)

    def _placeholder(self, space: spaces.Space[Any], group: str, index: int) -> Any:
        """An action for an agent out of play (ignored by the env but still validated): the first allowed one."""
        if isinstance(space, spaces.Discrete):
            allowed = None if self._masks is None else np.flatnonzero(self._masks[group][0, index])
            return int(space.start) + (int(allowed[0]) if allowed is not None and allowed.size else 0)
        if isinstance(space, spaces.Box):
            return np.clip(np.zeros(space.shape, space.dtype), space.low, space.high).astype(space.dtype)
        if isinstance(space, spaces.MultiDiscrete):
            return np.asarray(space.start, dtype=np.int64)
        raise TypeError(f"unsupported action space {space}")


# ===================================================================================== PettingZoo -> marlkit
STATE_SOURCES = ("auto", "env", "observations")


def from_pettingzoo(
    env_fn: Callable[[], Any],
    num_envs: int = 1,
    seed: int | None = None,
    groups: Mapping[str, Sequence[str]] | None = None,
    state_source: str = "auto",
) -> PettingZooEnv | PettingZooTurnEnv:
    """``num_envs`` copies of a PettingZoo env as one batched marlkit env.

    ``env_fn`` builds one PettingZoo ``ParallelEnv`` (or an AEC env whose metadata says ``is_parallelizable``; it
    is converted with ``aec_to_parallel``), e.g. ``lambda: simple_spread_v3.parallel_env(max_cycles=25)``; pass
    ``render_mode="rgb_array"`` there to render (without it the env is valid but does not render: ``renders`` is
    false). ``groups`` maps group name -> agent ids (default: agents sharing a name prefix, ``adversary_0`` ->
    ``adversary``, and identical spaces). ``state_source`` is ``"env"`` (the PettingZoo env's ``state()``),
    ``"observations"`` (every agent's observation, concatenated) or ``"auto"`` (``"env"`` when the env declares a
    ``state_space``). ``reset(seed=s)`` seeds copy ``i`` with ``s + i``. See ``PettingZooEnv`` for how
    observations, deaths and the state are mapped.

    A turn-based AEC env (one that is not parallelizable: the board and card games of ``pettingzoo.classic``)
    becomes a ``PettingZooTurnEnv``, under marlkit's turn-based contract (``marlkit.envs.base``); its state is the
    agents' observations (``state_source`` "auto" or "observations").
    """
    if callable(env_fn) and not isinstance(env_fn, types.ModuleType):
        first = env_fn()
        if isinstance(first, pettingzoo.AECEnv) and not (getattr(first, "metadata", {}) or {}).get(
            "is_parallelizable", False
        ):
            if state_source not in ("auto", "observations"):
                raise ValueError(
                    f"state_source={state_source!r}: a turn-based AEC env's state is its agents' observations "
                    "(state_source 'auto' or 'observations')"
                )
            return PettingZooTurnEnv(env_fn, num_envs, seed, groups, first=first)
        first.close()
    return PettingZooEnv(env_fn, num_envs, seed, groups, state_source)


class PettingZooEnv(MultiAgentEnv):
    """PettingZoo envs as a batched marlkit env (build it with ``from_pettingzoo``).

    PettingZoo envs are Python objects, so this bridge steps its ``num_envs`` copies in a Python loop (one per
    ``reset``/``step``/``state`` call): unlike a native marlkit env, and its whole speed cost.

    Observations: a ``Box`` is kept as is; a ``Dict`` of exactly ``observation`` and ``action_mask`` (PettingZoo's
    classic convention) gives its ``observation`` and ``info["action_mask"]``; ``infos[agent]["action_mask"]`` is
    read too (Discrete actions only). Once any mask is seen, every Discrete group gets one (all true where the env
    gives none). Other flattenable spaces are flattened with ``gymnasium.spaces.flatten``; others are errors.
    Actions: ``Discrete``, ``Box`` and ``MultiDiscrete``.

    Agents that die (terminated or truncated, or gone from the PettingZoo env's ``agents``) stay terminated (or
    truncated) until their copy resets, with zero reward, zero observation from the next step on, an all-true
    mask and ``info["active"]`` false; their actions are not sent to the PettingZoo env. A copy's episode ends
    when every agent is done, and the copy is reset in the same step. Every agent must be present at reset and
    none may appear later (a marlkit env has fixed agents): an env that adds agents raises an error.

    State (``state_source``): ``"env"`` is the PettingZoo env's ``state()`` (the default when it declares a
    ``state_space``); ``"observations"`` is every agent's observation flattened and concatenated in agent order
    (the default otherwise). Some PettingZoo envs cannot report their state once their episode is over (multiwalker
    destroys a fallen walker's body, and its ``state()`` then raises): for a copy whose episode ended and whose
    ``state()`` fails, ``info["final_state"]`` is the last state read from that copy before the end (at its reset or
    at the latest ``state()`` call), and the bridge warns once. An env whose ``state()`` fails while its episode
    runs is an error naming ``state_source="observations"``, which is always available.

    Rendering: ``renders`` is true when the PettingZoo env was built with ``render_mode="rgb_array"``; otherwise
    ``render()`` raises ``NotImplementedError`` saying so, and the env is never asked to render.

    Seeding: ``reset(seed=s)`` resets copy ``i`` with seed ``s + i``; automatic resets pass no seed, so each copy
    continues its own generator.

    Copies (``copy.deepcopy``, ``pickle``) copy the PettingZoo envs their own way. Most of PettingZoo's envs pickle as
    their constructor arguments (gymnasium's ``EzPickle``), so a copy of such a bridge holds new envs that were
    never reset: it must be ``reset()`` before it steps (and then equals the original reset with the same seed).
    Envs that copy their state (e.g. ``to_pettingzoo`` views) give a copy that continues mid-episode.
    """

    def __init__(
        self,
        env_fn: Callable[[], Any],
        num_envs: int = 1,
        seed: int | None = None,
        groups: Mapping[str, Sequence[str]] | None = None,
        state_source: str = "auto",
    ) -> None:
        super().__init__(num_envs, seed)
        if state_source not in STATE_SOURCES:
            raise ValueError(f"state_source must be one of {STATE_SOURCES}, got {state_source!r}")
        if isinstance(env_fn, types.ModuleType):
            factory = "parallel_env" if hasattr(env_fn, "parallel_env") else "env"
            raise TypeError(
                f"from_pettingzoo needs a function that builds an env; got the module {env_fn.__name__}: "
                f"pass {env_fn.__name__}.{factory}"
            )
        if not callable(env_fn):
            raise TypeError(
                f"from_pettingzoo needs a function that builds a new env for each copy (e.g. "
                f"lambda: simple_spread_v3.parallel_env()); got {type(env_fn).__name__}"
            )
        self.envs = [_as_parallel(env_fn()) for _ in range(self.num_envs)]
        first = self.envs[0]
        name = first.metadata.get("name", type(first).__name__) if hasattr(first, "metadata") else type(first).__name__
        self.metadata = {
            **MultiAgentEnv.metadata,
            "name": name,
            "render_fps": getattr(first, "metadata", {}).get("render_fps", 10),
        }
        self._render_mode = getattr(first, "render_mode", None)
        possible = getattr(first, "possible_agents", None)
        if not possible:
            raise ValueError(
                f"{name} does not declare possible_agents; from_pettingzoo needs a fixed set of agents "
                "(agents appearing mid-episode are not supported)"
            )
        self._obs_in: dict[str, spaces.Space[Any]] = {}
        obs_spaces: dict[str, spaces.Box] = {}
        self._dict_mask: dict[str, bool] = {}
        act_spaces: dict[str, ActionSpace] = {}
        for a in possible:
            self._obs_in[a] = first.observation_space(a)
            obs_spaces[a], self._dict_mask[a] = _observation_box(a, self._obs_in[a])
            act = first.action_space(a)
            if not isinstance(act, (spaces.Discrete, spaces.Box, spaces.MultiDiscrete)):
                raise TypeError(
                    f"agent {a!r} of {name} has action space {act}; from_pettingzoo supports "
                    "Discrete, Box and MultiDiscrete actions"
                )
            act_spaces[a] = act
        grouping = (
            default_groups(possible, obs_spaces, act_spaces)
            if groups is None
            else checked_groups(groups, possible, obs_spaces, act_spaces)
        )

        declared = isinstance(getattr(first, "state_space", None), spaces.Space) and first.state_space.is_np_flattenable
        if state_source == "env" and not declared:
            raise ValueError(
                f"state_source='env' needs a PettingZoo env that declares a flattenable state_space; "
                f"{name} declares {getattr(first, 'state_space', None)}: use state_source='observations'"
            )
        if declared and state_source != "observations":
            self.state_source = "env"
            self._state_in = first.state_space
            state_space = (
                first.state_space if isinstance(first.state_space, spaces.Box) else _flattened_box(first.state_space)
            )
        else:
            self.state_source = "observations"
            ordered = [obs_spaces[a] for ids in grouping.values() for a in ids]
            state_space = spaces.Box(
                np.concatenate([np.broadcast_to(s.low, s.shape).ravel() for s in ordered]),
                np.concatenate([np.broadcast_to(s.high, s.shape).ravel() for s in ordered]),
                dtype=np.result_type(*(s.dtype for s in ordered)),
            )
        self._set_spaces(
            grouping,
            {g: obs_spaces[ids[0]] for g, ids in grouping.items()},
            {g: act_spaces[ids[0]] for g, ids in grouping.items()},
            state_space,
        )

        self._slot = {a: (g, i) for g, ids in self.groups.items() for i, a in enumerate(ids)}
        e = self.num_envs
        self._obs = {
            g: np.zeros((e, len(ids), *self.group_observation_space(g).shape), self.group_observation_space(g).dtype)
            for g, ids in self.groups.items()
        }
        self._alive = {g: np.zeros((e, len(ids)), bool) for g, ids in self.groups.items()}
        self._term = {g: np.zeros((e, len(ids)), bool) for g, ids in self.groups.items()}
        self._trunc = {g: np.zeros((e, len(ids)), bool) for g, ids in self.groups.items()}
        self._masks: dict[str, np.ndarray] = {}
        for g, ids in self.groups.items():
            space = self.group_action_space(g)
            if isinstance(space, spaces.Discrete):
                self._masks[g] = np.ones((e, len(ids), int(space.n)), bool)
        self._has_masks = any(self._dict_mask.values())
        self._reset_seed: int | None = None
        self._reset_options: dict[str, Any] | None = None
        #: Each copy's latest state read from its PettingZoo env (state_source "env"): the final state of a copy
        #: whose env cannot report it once finished.
        self._last_state: list[np.ndarray | None] = [None] * e
        self._warned_final_state = False

    @property
    def renders(self) -> bool:
        return self._render_mode == "rgb_array"

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if any(isinstance(getattr(env, "unwrapped", env), EzPickle) for env in self.envs):
            self._needs_reset = True  # the copied PettingZoo envs are new ones, built from their constructor arguments

    # ------------------------------------------------------------------------------------------- life cycle
    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Obs, Info]:
        if seed is None and self._needs_reset:
            seed = self._seed
        self._reset_seed, self._reset_options = seed, options
        try:
            return super().reset(seed=seed, options=options)
        finally:
            self._reset_seed = self._reset_options = None

    def close(self) -> None:
        for env in self.envs:
            env.close()

    # -------------------------------------------------------------------------------------------------- hooks
    def _reset_copies(self, mask: np.ndarray) -> None:
        for c in np.flatnonzero(mask).tolist():
            seed = None if self._reset_seed is None else int(self._reset_seed) + int(c)
            obs, infos = self.envs[c].reset(seed=seed, options=self._reset_options)
            present = set(self.envs[c].agents)
            if present != set(self._slot):
                raise ValueError(
                    f"copy {c} of {self.metadata['name']} reset with agents {sorted(present)}, but "
                    f"from_pettingzoo needs every agent of possible_agents {sorted(self._slot)} present "
                    "at reset (agents appearing mid-episode are not supported)"
                )
            for g in self.groups:
                self._obs[g][c] = 0
                self._alive[g][c] = True
                self._term[g][c] = False
                self._trunc[g][c] = False
                if g in self._masks:
                    self._masks[g][c] = True
            for a in present:
                self._store(c, a, obs.get(a), infos.get(a))
            if self.state_source == "env":
                self._read_state(int(c))  # kept as the copy's last known state

    def _step_dynamics(self, actions: dict[str, np.ndarray]) -> Dynamics:
        rewards = {g: np.zeros((self.num_envs, len(ids))) for g, ids in self.groups.items()}
        for c, env in enumerate(self.envs):  # the bridge's one loop over copies: each is a Python object
            for g, alive in self._alive.items():  # agents that died at an earlier step show zeros from now on
                self._obs[g][c, ~alive[c]] = 0
            live = [a for a in env.agents if self._alive[self._slot[a][0]][c, self._slot[a][1]]]
            obs, rew, term, trunc, infos = env.step({a: self._to_pz(a, actions, c) for a in live})
            still = set(env.agents)
            alien = sorted(still - set(self._slot))
            if alien:
                raise ValueError(
                    f"copy {c}: agents {alien} appeared mid-episode; from_pettingzoo supports agents "
                    "that die, not agents that appear (a marlkit env has a fixed set of agents)"
                )
            for a in live:
                g, i = self._slot[a]
                rewards[g][c, i] = float(rew.get(a, 0.0))
                self._term[g][c, i] = bool(term.get(a, False))
                self._trunc[g][c, i] = bool(trunc.get(a, False))
                if a not in still and not (self._term[g][c, i] or self._trunc[g][c, i]):
                    self._term[g][c, i] = True  # left the env without a flag: it died
                self._obs[g][c, i] = 0
                self._store(c, a, obs.get(a), infos.get(a))
                if self._term[g][c, i] or self._trunc[g][c, i]:
                    self._alive[g][c, i] = False
                    if g in self._masks:
                        self._masks[g][c, i] = True
        return rewards, {g: t.copy() for g, t in self._term.items()}, {}

    def _truncated(self) -> dict[str, np.ndarray]:
        return {g: t.copy() for g, t in self._trunc.items()}

    def _observe(self) -> Obs:
        return {g: o.copy() for g, o in self._obs.items()}

    def _state(self) -> np.ndarray:
        if self.state_source == "observations":
            return np.concatenate([self._obs[g].reshape(self.num_envs, -1) for g in self.groups], axis=1).astype(
                self.state_space.dtype
            )
        states = []
        for c in range(self.num_envs):  # a loop, not a comprehension: the warning's stacklevel counts frames
            states.append(self._read_state(c))
        return np.stack(states)

    def _read_state(self, c: int) -> np.ndarray:
        """The state of copy ``c`` from its PettingZoo env, or (for a finished copy whose env cannot report it) the
        last one read."""
        try:
            state = self.envs[c].state()
        except Exception as e:  # any failure of the wrapped env's state() is handled the same way
            finished = not any(alive[c].any() for alive in self._alive.values())
            last = self._last_state[c]
            if not finished or last is None:
                raise RuntimeError(
                    f"{self.metadata['name']}.state() failed on copy {c} while its episode runs "
                    f"({type(e).__name__}: {e}); build the bridge with state_source='observations' "
                    "to use the concatenated observations as the state"
                ) from e
            if not self._warned_final_state:
                self._warned_final_state = True
                warnings.warn(
                    f"{self.metadata['name']}.state() fails once an episode is over ({type(e).__name__}: "
                    f"{e}); info['final_state'] of such copies is the last state read before the end. "
                    "state_source='observations' gives a state that is always available",
                    stacklevel=4,
                )
            return last
        if not isinstance(self._state_in, spaces.Box):
            state = spaces.flatten(self._state_in, state)
        out = np.asarray(state).astype(self.state_space.dtype).reshape(self.state_space.shape)
        self._last_state[c] = out
        return out

    def _action_mask(self) -> dict[str, np.ndarray] | None:
        return {g: m for g, m in self._masks.items()} if self._has_masks and self._masks else None

    def _active(self) -> dict[str, np.ndarray]:
        return self._alive

    def _render_copy(self, index: int) -> np.ndarray:
        if not self.renders:
            raise NotImplementedError(
                f"{self.metadata['name']} was built with render_mode={self._render_mode!r}, so "
                "it does not render; pass render_mode='rgb_array' in env_fn to get frames"
            )
        frame = self.envs[index].render()
        if not (isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[2] == 3):
            raise NotImplementedError(
                f"{self.metadata['name']} returned {type(frame).__name__} from render(); "
                "build it with render_mode='rgb_array' in env_fn to get frames"
            )
        return frame.astype(np.uint8, copy=False)

    # ------------------------------------------------------------------------------------------------ helpers
    def _store(self, c: int, agent: str, obs: Any, info: Any) -> None:
        """Write one agent's PettingZoo observation (and any action mask) into the arrays of copy ``c``."""
        g, i = self._slot[agent]
        mask = None
        if obs is not None:
            space = self._obs_in[agent]
            if isinstance(space, spaces.Dict) and self._dict_mask[agent]:
                mask = obs["action_mask"]
                obs = obs["observation"]
                space = space["observation"]
            self._obs[g][c, i] = obs if isinstance(space, spaces.Box) else np.asarray(spaces.flatten(space, obs))
        if isinstance(info, Mapping) and info.get("action_mask") is not None and g in self._masks:
            mask = info["action_mask"]
            self._has_masks = True
        if mask is not None and g in self._masks:
            m = np.asarray(mask, dtype=bool)
            if m.shape != self._masks[g].shape[2:]:
                raise ValueError(
                    f"action mask of agent {agent!r} has shape {m.shape}; its action space "
                    f"{self.action_space(agent)} needs {self._masks[g].shape[2:]}"
                )
            self._masks[g][c, i] = m

    def _to_pz(self, agent: str, actions: Mapping[str, np.ndarray], c: int) -> Any:
        g, i = self._slot[agent]
        space = self.action_space(agent)
        a = actions[g][c, i]
        return int(a) if isinstance(space, spaces.Discrete) else np.array(a, dtype=space.dtype)  # a copy: ours


def _as_parallel(env: Any) -> Any:
    """``env`` as a PettingZoo ParallelEnv: AEC envs are converted when their metadata allows it."""
    if isinstance(env, pettingzoo.AECEnv):
        meta = getattr(env, "metadata", {}) or {}
        if not meta.get("is_parallelizable", False):
            raise TypeError(
                f"{meta.get('name', type(env).__name__)} is a turn-based AEC env (metadata "
                "'is_parallelizable' is not True), so it cannot be stepped as simultaneous moves; "
                "from_pettingzoo needs a ParallelEnv or a parallelizable AEC env"
            )
        return aec_to_parallel(env)
    if isinstance(env, pettingzoo.ParallelEnv) or all(hasattr(env, k) for k in ("reset", "step", "action_space")):
        return env
    raise TypeError(f"env_fn must build a PettingZoo ParallelEnv or AECEnv, got {type(env).__name__}")


def _observation_box(agent: str, space: spaces.Space[Any]) -> tuple[spaces.Box, bool]:
    """The Box an agent's observations become, and whether they are a Dict with an ``action_mask``."""
    if isinstance(space, spaces.Dict) and set(space.spaces) == {"observation", "action_mask"}:
        return _observation_box(agent, space["observation"])[0], True
    if isinstance(space, spaces.Box):
        return space, False
    if space.is_np_flattenable:
        return _flattened_box(space), False
    raise TypeError(
        f"agent {agent!r} has observation space {space}, which cannot be flattened into an array; "
        "from_pettingzoo supports Box, Dict(observation, action_mask) and flattenable spaces"
    )


def _flattened_box(space: spaces.Space[Any]) -> spaces.Box:
    """A flattenable space (``is_np_flattenable``) flattened, which makes it a Box."""
    flat = spaces.flatten_space(space)
    if not isinstance(flat, spaces.Box):  # pragma: no cover - gymnasium flattens such spaces into a Box
        raise TypeError(f"{space} does not flatten into a Box")
    return flat
