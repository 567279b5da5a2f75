"""The particle world and its scenarios: shapes, physics by hand, resets, rendering, rejected actions, state API."""

from __future__ import annotations

import numpy as np
import pytest

import marlkit
from marlkit.envs import ActionError, check_env
from marlkit.envs.particles.core import DEFAULT_ACCEL, World, agent, landmark
from marlkit.envs.particles.speaker_listener import LANDMARK_COLORS, SpeakerListener
from marlkit.envs.particles.spread import Spread
from marlkit.envs.particles.tag import Tag

ENV_IDS = ["spread-v0", "tag-v0", "speaker-listener-v0"]
# group -> (n_agents, obs_dim, Discrete n / Box dim) with the defaults, as mpe2
SHAPES = {
    "spread-v0": {"agents": (3, 18, 5)},
    "tag-v0": {"adversaries": (3, 16, 5), "good": (1, 14, 5)},
    "speaker-listener-v0": {"speaker": (1, 3, 3), "listener": (1, 11, 5)},
}
STATE_DIM = {"spread-v0": 54, "tag-v0": 62, "speaker-listener-v0": 14}


def zero_actions(env) -> dict[str, np.ndarray]:
    return {g: np.zeros((env.num_envs, len(ids)), dtype=np.int64) for g, ids in env.groups.items()}


# ------------------------------------------------------------------------------------------------- contract
@pytest.mark.parametrize("continuous", [False, True], ids=["discrete", "continuous"])
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_env(env_id, continuous):
    check_env(marlkit.make(env_id, num_envs=3, continuous_actions=continuous), steps=120)


@pytest.mark.parametrize("continuous", [False, True], ids=["discrete", "continuous"])
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_shapes_and_dtypes(env_id, continuous):
    env = marlkit.make(env_id, num_envs=5, seed=0, continuous_actions=continuous)
    obs, _ = env.reset()
    actions = marlkit.envs.sample_actions(env, rng=np.random.default_rng(0))
    obs2, rew, term, trunc, info = env.step(actions)
    for g, (n, obs_dim, act) in SHAPES[env_id].items():
        space = env.group_action_space(g)
        assert (space.shape == (act,) and space.dtype == np.float32) if continuous else space.n == act
        for o in (obs[g], obs2[g], info["final_obs"][g]):
            assert o.shape == (5, n, obs_dim) and o.dtype == np.float32 and o.flags.c_contiguous
        assert rew[g].shape == (5, n) and rew[g].dtype == np.float32 and rew[g].flags.c_contiguous
        assert term[g].shape == trunc[g].shape == (5, n) and term[g].dtype == np.bool_
    state = env.state()
    assert state.shape == (5, STATE_DIM[env_id]) == (5, *env.state_space.shape) and state.dtype == np.float32
    # state() is every agent's observation, concatenated in agent order (as mpe2's state())
    np.testing.assert_array_equal(state, np.concatenate([obs2[g].reshape(5, -1) for g in env.groups], axis=1))


def test_returned_arrays_are_not_reused():
    env = Spread(num_envs=2, seed=0)
    obs, _ = env.reset()
    kept = obs["agents"].copy()
    out = env.step(zero_actions(env))
    kept_rew = out[1]["agents"].copy()
    env.step({"agents": np.full((2, 3), 2)})
    np.testing.assert_array_equal(obs["agents"], kept)
    np.testing.assert_array_equal(out[1]["agents"], kept_rew)


# -------------------------------------------------------------------------------------------------- physics
def two_body_world(**kw) -> World:
    return World([agent("a", size=0.15), agent("b", size=0.15)], [landmark("l", collide=False)], num_envs=1, **kw)


def test_collision_force_is_symmetric_and_matches_the_formula():
    world = two_body_world()
    world.set_copy(0, pos=[[0.0, 0.0], [0.2, 0.1], [0.9, 0.9]])
    force = world.action_force(np.zeros((1, 2), dtype=np.int64))
    world.step(force)
    # from rest, one step: v = F dt, and the contact force is +-contact_force * delta / d * k * softplus(...)
    delta, d = np.array([-0.2, -0.1]), np.hypot(0.2, 0.1)
    k = world.contact_margin
    f_a = world.contact_force * delta / d * k * np.logaddexp(0.0, (0.3 - d) / k)
    np.testing.assert_allclose(world.vel[0, 0], f_a * world.dt, rtol=1e-12)
    np.testing.assert_allclose(world.vel[0, 1], -f_a * world.dt, rtol=1e-12)
    np.testing.assert_array_equal(world.vel[0, 2], 0.0)  # the landmark does not collide (and cannot move)
    assert world.vel[0, 0, 0] < 0 < world.vel[0, 1, 0]  # pushed apart


def test_far_apart_bodies_feel_no_force():
    world = two_body_world()
    world.set_copy(0, pos=[[0.0, 0.0], [0.5, 0.0], [0.9, 0.9]])
    world.step(world.action_force(np.zeros((1, 2), dtype=np.int64)))
    np.testing.assert_allclose(world.vel[0], 0.0, atol=1e-15)


@pytest.mark.parametrize("action, direction", [(0, (0, 0)), (1, (-1, 0)), (2, (1, 0)), (3, (0, -1)), (4, (0, 1))])
def test_discrete_action_moves_the_agent_that_way(action, direction):
    env = Spread(num_envs=1, seed=0)
    env.reset()
    start = np.array([[-0.8, -0.8], [0.8, -0.8], [0.0, 0.8], [0.5, 0.5], [-0.5, 0.5], [0.0, 0.0]])
    env.set_state(0, pos=start, vel=np.zeros((6, 2)))
    a = np.zeros((1, 3), dtype=np.int64)
    a[0, 0] = action
    env.step({"agents": a})
    np.testing.assert_allclose(env.world.vel[0, 0], np.array(direction) * DEFAULT_ACCEL * 0.1)
    env.step({"agents": np.zeros((1, 3), dtype=np.int64)})
    moved = env.world.pos[0, 0] - start[0]
    np.testing.assert_allclose(np.sign(moved), direction)
    np.testing.assert_allclose(env.world.pos[0, 1:3], start[1:3])  # the idle agents stayed put


def test_continuous_action_is_a2_minus_a1_and_a4_minus_a3():
    env = Spread(num_envs=1, seed=0, continuous_actions=True)
    env.reset()
    env.set_state(
        0, pos=[[-0.8, -0.8], [0.8, -0.8], [0.0, 0.8], [0.5, 0.5], [-0.5, 0.5], [0.0, 0.0]], vel=np.zeros((6, 2))
    )
    a = np.zeros((1, 3, 5), dtype=np.float32)
    a[0, 0] = [0.9, 0.25, 1.0, 0.5, 0.0]
    env.step({"agents": a})
    np.testing.assert_allclose(env.world.vel[0, 0], [0.75 * 5 * 0.1, -0.5 * 5 * 0.1], rtol=1e-6)


def test_speed_limit_and_damping():
    env = Tag(num_envs=64, seed=0)
    env.reset()
    right = {"adversaries": np.full((64, 3), 2), "good": np.full((64, 1), 2)}
    for _ in range(20):
        env.step(right)
        speed = np.linalg.norm(env.world.vel[:, :4], axis=-1)
        assert (speed[:, :3] <= 1.0 + 1e-12).all() and (speed[:, 3] <= 1.3 + 1e-12).all()
    assert speed.max() > 0.9  # and pushing keeps them near their limits


def test_immovable_agents_and_a_non_contiguous_movable_set():
    # agents: movable, fixed, movable -> the movable rows are a fancy index, not a slice
    world = World([agent("a"), agent("fixed", movable=False), agent("b")], [landmark("l")], num_envs=3)
    world.reset_copies(np.ones(3, bool), np.tile([[0.0, 0.0], [0.06, 0.0], [-0.5, 0.0], [0.5, 0.5]], (3, 1, 1)))
    force = world.action_force(np.array([[4, 4, 1]] * 3))
    world.step(force)
    np.testing.assert_array_equal(world.vel[:, 1], 0.0)  # the fixed agent neither moves nor is pushed
    np.testing.assert_array_equal(world.pos[:, 1], [[0.06, 0.0]] * 3)
    assert (world.vel[:, 0, 0] < 0).all() and (world.vel[:, 0, 1] > 0).all()  # pushed left by contact, moves up
    np.testing.assert_allclose(world.vel[:, 2], [[-0.5, 0.0]] * 3)


def test_contact_force_code_paths_agree():
    """Small and large batches take different (faster for them) routes to the same contact forces."""
    env = Tag(num_envs=64, seed=0)
    env.reset()
    rng = np.random.default_rng(1)
    for i in range(64):  # crowd everything near the origin so that many pairs overlap
        env.set_state(i, pos=rng.uniform(-0.3, 0.3, (6, 2)))
    world = env.world
    world._softplus_simd = False
    plain = world._contact_forces()
    world._softplus_simd = True
    vectorised = world._contact_forces()
    assert np.abs(plain).max() > 1.0  # real contacts
    np.testing.assert_allclose(vectorised, plain, rtol=1e-12, atol=1e-14)
    # far apart: the small-batch shortcut skips forces below 1e-15
    for i in range(64):
        env.set_state(i, pos=[[-0.9, -0.9], [0.9, -0.9], [-0.9, 0.9], [0.9, 0.9], [0.0, 0.45], [0.0, -0.45]])
    world._skip_far = False
    assert np.abs(world._contact_forces()).max() < 1e-15
    world._skip_far = True
    assert world._contact_forces() is None


def test_float32_world_is_an_option():
    world = World([agent("a", size=0.15), agent("b", size=0.15)], [], num_envs=4, dtype=np.float32)
    world.reset_copies(np.ones(4, bool), np.tile([[0.0, 0.0], [0.2, 0.0]], (4, 1, 1)))
    world.step(world.action_force(np.zeros((4, 2, 5), dtype=np.float32), continuous=True))
    assert world.data.dtype == np.float32 and (world.vel[:, 0, 0] < 0).all()


# ------------------------------------------------------------------------------------------- rewards, metrics
def test_spread_rewards_and_metrics_by_hand():
    env = Spread(num_envs=1, seed=0, local_ratio=0.5)
    env.reset()
    # agents 0 and 1 overlap (distance 0.2 < 0.3); landmarks sit on agents 0 and 2
    pos = np.array([[0.0, 0.0], [0.2, 0.0], [0.8, 0.8], [0.0, 0.0], [0.8, 0.8], [-0.8, 0.5]])
    env.set_state(0, pos=pos, vel=np.zeros((6, 2)))
    _, rew, *_ = env.step(zero_actions(env))
    p = env.world.pos[0]  # after the contact push
    nearest = [np.linalg.norm(p[:3] - p[3 + k], axis=1).min() for k in range(3)]
    overlap = float(np.linalg.norm(p[0] - p[1]) < 0.3)
    expected = -0.5 * sum(nearest) - 0.5 * np.array([overlap, overlap, 0.0])
    np.testing.assert_allclose(rew["agents"][0], expected, rtol=1e-6)
    for _ in range(24):
        _, _, _, trunc, info = env.step(zero_actions(env))
    assert trunc["agents"].all() and info["episode_done"][0] and info["episode_length"][0] == 25
    assert info["episode_metrics"]["collisions"][0] >= 1  # the overlapping pair, at least on the first step
    assert 0 <= info["episode_metrics"]["occupied_landmarks"][0] <= 3


def test_tag_rewards_by_hand():
    env = Tag(num_envs=1, seed=0)
    env.reset()
    # adversary 0 on top of the good agent; the good agent at |x| = 0.95 pays 10 * 0.05 for the boundary
    pos = np.array([[0.95, 0.0], [-0.5, -0.5], [-0.5, 0.5], [0.95, 0.05], [0.0, -0.8], [0.0, 0.8]])
    env.set_state(0, pos=pos, vel=np.zeros((6, 2)))
    _, rew, _, _, info = env.step(zero_actions(env))
    x = np.abs(env.world.pos[0, 3])
    boundary = sum(0.0 if v < 0.9 else (v - 0.9) * 10 if v < 1.0 else min(np.exp(2 * v - 2), 10) for v in x)
    np.testing.assert_allclose(rew["adversaries"][0], [10.0, 10.0, 10.0])
    np.testing.assert_allclose(rew["good"][0], [-10.0 - boundary], rtol=1e-6)
    assert info["episode_metrics"]["catches"][0] == 1


def test_tag_shaped_reward_is_mpe2s_disabled_shape_branch():
    plain, shaped = Tag(num_good=2, num_envs=4, seed=0), Tag(num_good=2, num_envs=4, seed=0, shaped_reward=True)
    plain.reset()
    shaped.reset()
    actions = {"adversaries": np.ones((4, 3), dtype=np.int64), "good": np.full((4, 2), 3)}
    _, r0, *_ = plain.step(actions)
    _, r1, *_ = shaped.step(actions)
    p = shaped.world.pos
    d = np.linalg.norm(p[:, 3:5, None] - p[:, None, :3], axis=-1)  # (E, good, adversaries)
    np.testing.assert_allclose(r1["good"], r0["good"] + 0.1 * d.sum(axis=2), rtol=1e-6)
    np.testing.assert_allclose(
        r1["adversaries"], r0["adversaries"] - 0.1 * d.min(axis=1).sum(axis=1)[:, None], rtol=1e-6
    )


def test_speaker_listener_message_and_reward():
    env = SpeakerListener(num_envs=2, seed=0)
    env.reset()
    pos = np.array([[0.0, 0.0], [0.1, 0.2], [0.5, 0.5], [-0.5, 0.5], [0.0, -0.5]])
    env.set_state(1, pos=pos, vel=np.zeros((5, 2)), goal=2)
    obs, rew, *_ = env.step({"speaker": np.array([[0], [1]]), "listener": np.zeros((2, 1), dtype=np.int64)})
    np.testing.assert_array_equal(obs["speaker"][1, 0], LANDMARK_COLORS[2].astype(np.float32))
    np.testing.assert_array_equal(obs["listener"][:, 0, -3:], [[1, 0, 0], [0, 1, 0]])  # the message, heard now
    np.testing.assert_allclose(obs["listener"][1, 0, 2:8], (pos[2:] - pos[1]).ravel(), rtol=1e-6)
    np.testing.assert_allclose(rew["speaker"][1], [-np.sum((pos[4] - pos[1]) ** 2)], rtol=1e-6)
    np.testing.assert_array_equal(rew["speaker"], rew["listener"])


# ---------------------------------------------------------------------------------------------------- resets
def test_reset_distribution():
    env = Tag(num_envs=2000, seed=3)
    env.reset()
    pos = env.world.pos
    assert (np.abs(pos[:, :4]) <= 1.0).all() and (np.abs(pos[:, 4:]) <= 0.9).all()
    assert np.abs(pos[:, :4]).max() > 0.99 and np.abs(pos[:, 4:]).max() > 0.89  # the whole range is used
    np.testing.assert_allclose(pos.mean(axis=0), 0.0, atol=0.05)
    np.testing.assert_allclose(pos[:, :4].std(axis=0), 2 / np.sqrt(12), rtol=0.05)  # uniform on [-1, 1]
    assert (env.world.vel == 0).all() and (env.world.comm == 0).all()
    assert len(np.unique(pos[:, 0, 0])) == 2000  # every copy draws its own state

    sl = SpeakerListener(num_envs=3000, seed=1)
    sl.reset()
    counts = np.bincount(sl.goal, minlength=3)
    assert (np.abs(counts - 1000) < 120).all()
    np.testing.assert_array_equal(sl.world.extra["goal_color"], LANDMARK_COLORS[sl.goal])


def test_autoreset_resets_only_the_ended_copies():
    env = Spread(num_envs=2, seed=0, max_steps=3)
    env.reset()
    for _ in range(2):
        env.step(zero_actions(env))
    env._t[1] = 0  # copy 1 is two steps behind: only copy 0 ends next step
    before = env.world.pos.copy()
    _, _, _, trunc, info = env.step(zero_actions(env))
    assert info["episode_done"].tolist() == [True, False] and trunc["agents"][:, 0].tolist() == [True, False]
    assert not np.allclose(env.world.pos[0], before[0], atol=0.05)  # copy 0 got a new layout
    np.testing.assert_allclose(env.world.pos[1], before[1], atol=0.05)  # copy 1 only moved a little


# -------------------------------------------------------------------------------------------------- render
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_render(env_id):
    env = marlkit.make(env_id, num_envs=2, seed=0)
    env.reset()
    env.step(zero_actions(env))
    frame = env.render(1)
    assert frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8
    colors = {tuple(c) for c in frame.reshape(-1, 3)[::7]}
    assert len(colors) >= 3  # background, outlines and entity colors
    with pytest.raises(IndexError):
        env.render(2)


def test_render_draws_entity_colors():
    env = SpeakerListener(num_envs=1, seed=0)
    env.reset()
    env.set_state(0, pos=[[-0.5, -0.5], [0.5, -0.5], [-0.5, 0.5], [0.0, 0.5], [0.5, 0.5]], goal=1)
    frame = env.render(0)
    h, w, _ = frame.shape
    listener_px = frame[int(h * 0.5 + 0.5 * h / 2.2), int(w * 0.5 + 0.5 * w / 2.2)]  # near the listener's center
    np.testing.assert_array_equal(listener_px, np.clip((LANDMARK_COLORS[1] + 0.45) * 200, 0, 255).astype(np.uint8))


# --------------------------------------------------------------------------------------------- bad actions
@pytest.mark.parametrize("bad", ["too big", "negative", "float", "shape", "missing group"])
def test_invalid_discrete_actions_raise(bad):
    env = Tag(num_envs=2, seed=0)
    env.reset()
    actions = zero_actions(env)
    if bad == "too big":
        actions["good"][1, 0] = 5
    elif bad == "negative":
        actions["adversaries"][0, 2] = -1
    elif bad == "float":
        actions["good"] = actions["good"].astype(np.float32)
    elif bad == "shape":
        actions["adversaries"] = actions["adversaries"][0]
    else:
        del actions["good"]
    before = env.state()
    with pytest.raises(ActionError):
        env.step(actions)
    np.testing.assert_array_equal(env.state(), before)


@pytest.mark.parametrize("bad", [1.5, -0.1, np.nan])
def test_invalid_continuous_actions_raise(bad):
    env = SpeakerListener(num_envs=1, seed=0, continuous_actions=True)
    env.reset()
    actions = {"speaker": np.full((1, 1, 3), 0.5, np.float32), "listener": np.full((1, 1, 5), 0.5, np.float32)}
    actions["speaker"][0, 0, 1] = bad
    with pytest.raises(ActionError):
        env.step(actions)


def test_speaker_symbols_are_checked():
    env = SpeakerListener(seed=0)
    env.reset()
    with pytest.raises(ActionError):  # the speaker's discrete symbols are 0..2
        env.step({"speaker": np.array([[3]]), "listener": np.array([[0]])})


# ----------------------------------------------------------------------------------------------- state API
def test_set_state_get_state_round_trip():
    env = SpeakerListener(num_envs=3, seed=0)
    env.reset()
    env.step({"speaker": np.array([[2], [0], [1]]), "listener": np.array([[1], [2], [3]])})
    saved = env.get_state(2)
    obs_before = env._observe()
    for _ in range(3):
        env.step({"speaker": np.array([[0]] * 3), "listener": np.array([[4]] * 3)})
    obs = env.set_state(2, **saved)
    for g in env.groups:
        np.testing.assert_array_equal(obs[g][2], obs_before[g][2])
    assert env.get_state(2)["goal"] == saved["goal"]


def test_set_state_rejects_bad_input():
    env = Spread(num_envs=2, seed=0)
    env.reset()
    with pytest.raises(ValueError):
        env.set_state(0, pos=np.zeros((5, 2)))
    with pytest.raises(IndexError):
        env.set_state(2, pos=np.zeros((6, 2)))
    with pytest.raises(TypeError):
        env.set_state(0, goal=1)
    sl = SpeakerListener(seed=0)
    sl.reset()
    with pytest.raises(ValueError):
        sl.set_state(0, goal=3)


@pytest.mark.parametrize("kwargs", [{"num_agents": 0}, {"local_ratio": 1.5}, {"max_steps": 0}])
def test_spread_rejects_bad_options(kwargs):
    with pytest.raises(ValueError):
        Spread(**kwargs)


def test_spread_scales_to_other_team_sizes():
    env = marlkit.make("spread-v0", num_envs=2, seed=0, num_agents=5)
    obs, _ = env.reset()
    assert obs["agents"].shape == (2, 5, 4 + 2 * 5 + 4 * 4) and env.state().shape == (2, 5 * 30)
    check_env(env, steps=60)
