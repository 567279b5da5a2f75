"""``check_env``: the batched environment contract as a public conformance test.

Run it on any ``MultiAgentEnv`` (your own, or one wrapped with ``from_pettingzoo``) before training on it. It steps
the env with random valid actions and raises ``AssertionError`` naming the first broken promise: spaces against the
returned arrays (shapes, dtypes, bounds), ``state()`` against ``state_space``, seeding determinism, same-step
autoreset and ``final_obs``, episode bookkeeping, action masks, and that invalid actions are rejected with an
``ActionError`` rather than silently clipped or wrapped. Rendering is optional: an env that renders must return
frames, one that does not (``env.renders`` false) must say so with ``NotImplementedError``; the returned
``CheckReport`` tells which it was.

A turn-based env (``env.turn_based``) is held to the turn-based part of the contract as well: ``info["to_play"]``
names one mover per copy, the mover's mask allows legal moves and never PASS (the last action), everyone else's
allows only PASS, a finished game's ``final_action_mask`` is PASS for all, and an action other than PASS from an
agent not to move is rejected.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from marlkit.envs.base import ActionError, MultiAgentEnv
from marlkit.envs.spaces import sample_actions

_INFO_KEYS = ("final_obs", "episode_done", "episode_return", "episode_length", "episode_metrics")


@dataclass(frozen=True)
class CheckReport:
    """What ``check_env`` found besides the contract it asserts (every failure is an ``AssertionError``)."""

    #: Random steps taken.
    steps: int
    #: Episodes that ended within them (across copies).
    episodes_ended: int
    #: The env renders (``env.renders``). False is allowed: the env "does not render", and ``render()`` was checked
    #: to raise ``NotImplementedError`` instead of returning frames.
    renders: bool
    #: A frame from ``render()`` was checked (false when the env does not render or ``check_render=False``).
    render_checked: bool
    #: Remarks in words, e.g. ``"does not render"``.
    notes: tuple[str, ...] = ()


def check_env(env: MultiAgentEnv, steps: int = 300, seed: int = 0, check_render: bool = True) -> CheckReport:
    """Check ``env`` against the marlkit env contract; raise ``AssertionError`` describing the first violation.

    ``steps`` random steps are taken (at least one episode should end within them for the autoreset checks to
    bite; the check says so when none did). The env is reset afterwards and left usable. With ``check_render``, an
    env that renders must return an ``(H, W, 3)`` uint8 frame; one that does not is reported, not failed.
    """
    name = type(env).__name__
    _check_declarations(env, name)
    rng = np.random.default_rng(seed)

    obs, info = env.reset(seed=seed)
    _check_obs(env, obs, f"{name}.reset() obs")
    _check_state(env, env.state(), f"{name}.state() after reset")
    _check_masks(env, info, f"{name}.reset() info")
    _check_turns(env, info, None, f"{name}.reset() info")

    _check_invalid_actions_rejected(env, info, rng, name)

    actions_taken = []
    returns = {g: np.zeros((env.num_envs, len(ids))) for g, ids in env.groups.items()}
    lengths = np.zeros(env.num_envs, dtype=np.int64)
    episodes_ended = 0
    trajectory = [obs]
    for t in range(steps):
        actions = sample_actions(env, info.get("action_mask"), rng)
        actions_taken.append(actions)
        obs, rewards, terminated, truncated, info = env.step(actions)
        where = f"{name}.step() #{t}"
        _check_obs(env, obs, f"{where} obs")
        _check_step_arrays(env, rewards, terminated, truncated, where)
        _check_info(env, obs, terminated, truncated, info, where)
        _check_masks(env, info, f"{where} info")
        _check_turns(env, info, terminated, f"{where} info")
        _check_state(env, env.state(), f"{where} state()")
        for g in env.groups:
            returns[g] += rewards[g]
        lengths += 1
        done = info["episode_done"]
        if done.any():
            episodes_ended += int(done.sum())
            if env.max_steps is not None:
                assert (lengths[done] <= env.max_steps).all(), f"{where}: an episode ran past max_steps={env.max_steps}"
            np.testing.assert_array_equal(
                info["episode_length"][done],
                lengths[done],
                err_msg=f"{where}: info['episode_length'] disagrees with the steps taken",
            )
            for g in env.groups:
                np.testing.assert_allclose(
                    info["episode_return"][g][done],
                    returns[g][done],
                    rtol=1e-6,
                    atol=1e-6,
                    err_msg=f"{where}: info['episode_return'][{g!r}] is not the sum of the episode's rewards",
                )
                returns[g][done] = 0.0
            lengths[done] = 0
        trajectory.append(obs)
    assert episodes_ended > 0, (
        f"{name}: no episode ended within {steps} random steps, so autoreset was not checked; pass a larger `steps`"
    )

    # Seeding: the same seed and the same actions reproduce every observation.
    obs2, info2 = env.reset(seed=seed)
    _assert_tree_equal(trajectory[0], obs2, f"{name}: reset(seed={seed}) twice gave different observations")
    for t, actions in enumerate(actions_taken):
        obs2, *_ = env.step(actions)
        _assert_tree_equal(
            trajectory[t + 1], obs2, f"{name}: same seed and same actions gave different observations at step {t}"
        )

    notes: list[str] = []
    renders = bool(env.renders)
    if check_render and renders:
        frame = env.render(0)
        assert isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8, (
            f"{name}.render() must return an (H, W, 3) uint8 array, got {getattr(frame, 'shape', frame)!r}"
        )
    elif check_render:
        notes.append("does not render")
        try:
            frame = env.render(0)
        except NotImplementedError:
            pass
        else:
            raise AssertionError(
                f"{name}.renders is False but render() returned {type(frame).__name__}; an env that "
                "does not render must raise NotImplementedError (or declare renders=True)"
            )
    env.reset(seed=seed)
    return CheckReport(
        steps=steps,
        episodes_ended=episodes_ended,
        renders=renders,
        render_checked=check_render and renders,
        notes=tuple(notes),
    )


# --------------------------------------------------------------------------------------------------- pieces
def _check_declarations(env: MultiAgentEnv, name: str) -> None:
    assert isinstance(env, MultiAgentEnv), f"{name} must subclass marlkit.envs.MultiAgentEnv"
    assert env.metadata.get("autoreset_mode") == "same-step", f"{name}.metadata must declare autoreset_mode 'same-step'"
    assert env.groups and all(env.groups.values()), f"{name}.groups must be a non-empty dict of non-empty agent tuples"
    assert tuple(env.agents) == tuple(a for ids in env.groups.values() for a in ids), (
        f"{name}.agents must list the agents of every group, in group order"
    )
    for g, ids in env.groups.items():
        o, a = env.observation_space(ids[0]), env.action_space(ids[0])
        for agent in ids[1:]:
            assert env.observation_space(agent) == o and env.action_space(agent) == a, (
                f"{name}: agents of group {g!r} must share observation and action spaces ({agent!r} differs)"
            )
        assert isinstance(o, spaces.Box), f"{name}: observation space of group {g!r} must be a Box, got {o}"
        assert isinstance(a, (spaces.Discrete, spaces.Box, spaces.MultiDiscrete)), (
            f"{name}: action space of group {g!r} must be Discrete, Box or MultiDiscrete, got {a}"
        )
    assert isinstance(env.state_space, spaces.Box), f"{name}.state_space must be a Box, got {env.state_space}"
    assert isinstance(env.num_envs, int) and env.num_envs >= 1, f"{name}.num_envs must be a positive int"
    assert hasattr(env, "validate_actions"), f"{name} must have a validate_actions switch"


def _check_array(x: Any, space: spaces.Box, shape: tuple[int, ...], where: str) -> None:
    assert isinstance(x, np.ndarray), f"{where}: expected a NumPy array, got {type(x).__name__}"
    assert x.shape == shape, f"{where}: shape {x.shape}, expected {shape} (num_envs, n_agents, *space.shape)"
    assert x.dtype == space.dtype, f"{where}: dtype {x.dtype}, the space says {space.dtype}"
    assert not np.isnan(x).any(), f"{where}: contains NaN"
    low, high = np.broadcast_to(space.low, space.shape), np.broadcast_to(space.high, space.shape)
    outside = (x < low) | (x > high)
    if outside.any():
        idx = tuple(int(i) for i in np.argwhere(outside)[0])
        raise AssertionError(
            f"{where}: value {x[idx]} at {list(idx)} is outside the space bounds "
            f"[{low[idx[-len(space.shape) :]] if space.shape else low}, "
            f"{high[idx[-len(space.shape) :]] if space.shape else high}]"
        )


def _check_obs(env: MultiAgentEnv, obs: Mapping[str, np.ndarray], where: str) -> None:
    assert isinstance(obs, Mapping) and set(obs) == set(env.groups), (
        f"{where}: must be a dict keyed by the groups {tuple(env.groups)}, got keys {list(obs) if isinstance(obs, Mapping) else obs}"
    )
    for g, ids in env.groups.items():
        space = env.group_observation_space(g)
        _check_array(obs[g], space, (env.num_envs, len(ids), *space.shape), f"{where}[{g!r}]")


def _check_state(env: MultiAgentEnv, state: np.ndarray, where: str) -> None:
    _check_array(state, env.state_space, (env.num_envs, *env.state_space.shape), where)


def _check_step_arrays(env: MultiAgentEnv, rewards: Any, terminated: Any, truncated: Any, where: str) -> None:
    """``rewards``, ``terminated``, ``truncated`` as ``step()`` returned them: what this checks they are."""
    for label, d in (("rewards", rewards), ("terminated", terminated), ("truncated", truncated)):
        assert isinstance(d, Mapping) and set(d) == set(env.groups), f"{where}: {label} must be a dict keyed by group"
    for g, ids in env.groups.items():
        shape = (env.num_envs, len(ids))
        r, te, tr = rewards[g], terminated[g], truncated[g]
        assert isinstance(r, np.ndarray) and r.shape == shape and np.issubdtype(r.dtype, np.floating), (
            f"{where}: rewards[{g!r}] must be a float array of shape {shape}, got {getattr(r, 'dtype', type(r))} {getattr(r, 'shape', '')}"
        )
        assert np.isfinite(r).all(), f"{where}: rewards[{g!r}] must be finite"
        for label, x in (("terminated", te), ("truncated", tr)):
            assert isinstance(x, np.ndarray) and x.shape == shape and x.dtype == np.bool_, (
                f"{where}: {label}[{g!r}] must be a bool array of shape {shape}, got {getattr(x, 'dtype', type(x))} {getattr(x, 'shape', '')}"
            )


def _check_info(
    env: MultiAgentEnv,
    obs: Mapping[str, np.ndarray],
    terminated: Mapping[str, np.ndarray],
    truncated: Mapping[str, np.ndarray],
    info: Mapping[str, Any],
    where: str,
) -> None:
    for key in _INFO_KEYS:
        assert key in info, f"{where}: info lacks {key!r} (the base class provides it; did step() get overridden?)"
    done = info["episode_done"]
    assert isinstance(done, np.ndarray) and done.shape == (env.num_envs,) and done.dtype == np.bool_, (
        f"{where}: info['episode_done'] must be a bool array of shape (num_envs,)"
    )
    _check_obs(env, info["final_obs"], f"{where} info['final_obs']")
    ended = np.ones(env.num_envs, dtype=bool)
    for g in env.groups:
        ended &= (terminated[g] | truncated[g]).all(axis=1)
    np.testing.assert_array_equal(
        done,
        ended,
        err_msg=f"{where}: info['episode_done'] must be true exactly for the "
        "copies where every agent is terminated or truncated",
    )
    for g in env.groups:
        keep = ~done
        np.testing.assert_array_equal(
            info["final_obs"][g][keep],
            obs[g][keep],
            err_msg=f"{where}: final_obs[{g!r}] must equal obs for copies that did not end",
        )
    if done.any():
        assert "final_state" in info, f"{where}: info lacks 'final_state' although a copy's episode ended"
        _check_state(env, info["final_state"], f"{where} info['final_state']")


def _check_masks(env: MultiAgentEnv, info: Mapping[str, Any], where: str) -> None:
    if "action_mask" in info:
        unknown = set(info["action_mask"]) - set(env.groups)
        assert not unknown, f"{where}: action_mask has keys {sorted(unknown)} that are not groups"
        for g, ids in env.groups.items():
            if g not in info["action_mask"]:
                continue  # masks may cover only some groups
            space = env.group_action_space(g)
            assert isinstance(space, spaces.Discrete), f"{where}: action masks need a Discrete action space ({g!r})"
            m = info["action_mask"][g]
            assert m.shape == (env.num_envs, len(ids), space.n) and m.dtype == np.bool_, (
                f"{where}: action_mask[{g!r}] must be bool of shape {(env.num_envs, len(ids), space.n)}, got {m.dtype} {m.shape}"
            )
            assert m.any(axis=-1).all(), f"{where}: action_mask[{g!r}] leaves some agent with no allowed action"
    if "active" in info:
        for g, ids in env.groups.items():
            m = info["active"][g]
            assert m.shape == (env.num_envs, len(ids)) and m.dtype == np.bool_, (
                f"{where}: active[{g!r}] must be bool of shape {(env.num_envs, len(ids))}"
            )


def _check_turns(
    env: MultiAgentEnv, info: Mapping[str, Any], terminated: Mapping[str, np.ndarray] | None, where: str
) -> None:
    """The turn-based contract (``marlkit.envs.base``): one mover per copy, PASS for everyone else."""
    if not env.turn_based:
        assert "to_play" not in info, f"{where}: info has 'to_play' but the env does not declare turn_based"
        return
    n = env.num_envs
    to_play = info.get("to_play")
    assert isinstance(to_play, np.ndarray) and to_play.shape == (n,) and to_play.dtype.kind in "iu", (
        f"{where}: a turn-based env must give info['to_play'], an int array of shape ({n},), got {to_play!r}"
    )
    assert ((to_play >= 0) & (to_play < env.num_agents)).all(), (
        f"{where}: info['to_play'] = {to_play.tolist()} must index env.agents (0..{env.num_agents - 1})"
    )
    assert "action_mask" in info and set(info["action_mask"]) == set(env.groups), (
        f"{where}: a turn-based env must give an action_mask for every group"
    )
    slots = [(g, i) for g, ids in env.groups.items() for i in range(len(ids))]
    movers = np.zeros(n, dtype=int)
    for g, ids in env.groups.items():
        space = env.group_action_space(g)
        assert isinstance(space, spaces.Discrete), f"{where}: turn-based group {g!r} needs a Discrete action space"
        m = info["action_mask"][g]
        pass_only = m[..., -1] & ~m[..., :-1].any(-1)
        is_mover = np.array([[slots[int(to_play[e])] == (g, i) for i in range(len(ids))] for e in range(n)])
        bad = is_mover == pass_only
        if bad.any():
            e, i = (int(x) for x in np.argwhere(bad)[0])
            raise AssertionError(
                f"{where}: in copy {e} agent {ids[i]!r} ({'the mover' if is_mover[e, i] else 'not to move'}) has "
                f"mask {m[e, i].astype(int).tolist()}; the mover may play legal moves but not PASS (the last "
                "action), every other agent only PASS"
            )
        assert not (m[..., -1] & is_mover).any(), f"{where}: the mover's mask allows PASS (group {g!r})"
        movers += is_mover.sum(1)
        if terminated is not None and "final_action_mask" in info:
            final = info["final_action_mask"][g]
            ended = terminated[g].all(1)
            assert (final[ended][..., -1] & ~final[ended][..., :-1].any(-1)).all(), (
                f"{where}: a finished game has no mover; final_action_mask[{g!r}] must allow only PASS"
            )
    assert (movers == 1).all(), f"{where}: every copy must have exactly one mover"


def _check_invalid_actions_rejected(
    env: MultiAgentEnv, info: Mapping[str, Any], rng: np.random.Generator, name: str
) -> None:
    """Each bad action must raise ActionError before anything changes; then a good action still steps."""
    good = sample_actions(env, info.get("action_mask"), rng)
    state_before = env.state()
    assert env.validate_actions, f"{name}.validate_actions must be on by default"
    g0 = next(iter(env.groups))
    space = env.group_action_space(g0)
    bad_cases: list[tuple[str, Any]] = [
        ("missing group", {g: a for g, a in good.items() if g != g0}),
        ("wrong shape (no num_envs axis)", {**good, g0: good[g0][0]}),
    ]
    if isinstance(space, spaces.Discrete):
        too_big = good[g0].copy()
        too_big[0, 0] = space.start + space.n
        negative = good[g0].copy()
        negative[0, 0] = space.start - 1
        bad_cases += [
            ("action == n", {**good, g0: too_big}),
            ("action below start", {**good, g0: negative}),
            ("float actions", {**good, g0: good[g0].astype(np.float32)}),
        ]
        mask = info.get("action_mask", {}).get(g0)
        if mask is not None and not mask[0, 0].all():
            masked = good[g0].copy()
            masked[0, 0] = int(np.flatnonzero(~mask[0, 0])[0]) + space.start
            bad_cases.append(("masked-out action", {**good, g0: masked}))
        if env.turn_based and mask is not None:
            waiting = np.argwhere(~mask[..., :-1].any(-1))  # agents not to move: a move instead of PASS
            if len(waiting):
                e, i = (int(x) for x in waiting[0])
                out_of_turn = good[g0].copy()
                out_of_turn[e, i] = space.start
                bad_cases.append(("a move out of turn", {**good, g0: out_of_turn}))
    elif isinstance(space, spaces.Box):
        high, nan = good[g0].copy(), good[g0].copy()
        if np.isfinite(space.high).any():
            i = int(np.flatnonzero(np.isfinite(space.high.ravel()))[0])
            high.reshape(env.num_envs, -1)[0, i] = space.high.ravel()[i] + 1.0
            bad_cases.append(("above the Box bound", {**good, g0: high}))
        nan.reshape(env.num_envs, -1)[0, 0] = np.nan
        bad_cases += [
            ("NaN action", {**good, g0: nan}),
            ("integer actions", {**good, g0: np.zeros(good[g0].shape, dtype=np.int64)}),
        ]
    for label, actions in bad_cases:
        try:
            env.step(actions)
        except ActionError as e:
            assert str(e), f"{name}: ActionError for {label} has no message"
        except Exception as e:  # any other failure is a broken promise too
            raise AssertionError(
                f"{name}.step() accepted an invalid action ({label}) and failed later with "
                f"{type(e).__name__}: {e}; it must raise ActionError up front"
            ) from e
        else:
            raise AssertionError(f"{name}.step() accepted an invalid action ({label}); it must raise ActionError")
        np.testing.assert_array_equal(
            env.state(), state_before, err_msg=f"{name}: a rejected action ({label}) changed the state"
        )


def _assert_tree_equal(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray], msg: str) -> None:
    for g in a:
        np.testing.assert_array_equal(a[g], b[g], err_msg=msg)
