"""Pursuit: capture, collisions, walls, the scripted target, actions and rendering."""

import numpy as np
import pytest

import marlkit
from marlkit.envs import check_env, sample_actions
from marlkit.envs.particles.pursuit import PURSUER_SIZE, TARGET_SIZE, Pursuit

NOOP = np.zeros((1, 2), dtype=np.int64)


def far_layout(env, pursuers, target, obstacles=None):
    """Positions for set_state: the given pursuers and target, obstacles parked in far corners by default."""
    corners = [[0.8, -0.8], [-0.8, -0.8], [0.8, 0.8], [-0.8, 0.8]]
    obstacles = corners[: env.n_obstacles] if obstacles is None else obstacles
    return np.array([*pursuers, target, *obstacles], dtype=float)


def test_check_env_on_variants():
    check_env(Pursuit(num_envs=3, continuous_actions=True, target_policy="random", num_pursuers=3), steps=250)
    check_env(Pursuit(num_envs=2, num_obstacles=0, max_steps=40), steps=120)


def test_capture_terminates_and_counts():
    env = Pursuit(seed=0)
    env.reset()
    env.set_state(0, pos=far_layout(env, [[0.0, 0.0], [-0.5, -0.5]], [0.12, 0.0]), vel=np.zeros((5, 2)))
    _, rew, term, trunc, info = env.step({"pursuers": NOOP})
    assert term["pursuers"].all() and not trunc["pursuers"].any() and info["episode_done"][0]
    assert info["episode_metrics"]["capture"][0] == 1 and info["episode_metrics"]["collisions"][0] == 0
    np.testing.assert_allclose(rew["pursuers"], [[10 - 0.1 * 0.12] * 2], atol=1e-5)  # shared reward
    # Just outside the radius: no capture.
    env.set_state(0, pos=far_layout(env, [[0.0, 0.0], [-0.5, -0.5]], [0.3, 0.0]), vel=np.zeros((5, 2)))
    _, _, term, _, info = env.step({"pursuers": NOOP})
    assert not term["pursuers"].any() and info["episode_metrics"]["capture"][0] == 0


def test_collisions_are_counted_and_penalised():
    env = Pursuit(seed=0, distance_weight=0.0)
    env.reset()
    # Pursuers 0.1 apart (contact below 0.15) and pursuer 1 touching obstacle 0 (contact below 0.225).
    pos = far_layout(env, [[0.0, 0.0], [0.1, 0.0]], [-0.8, 0.8], [[0.3, 0.0], [0.8, -0.8]])
    env.set_state(0, pos=pos, vel=np.zeros((5, 2)))
    _, rew, _, _, info = env.step({"pursuers": NOOP})
    assert info["episode_metrics"]["collisions"][0] == 2
    np.testing.assert_allclose(rew["pursuers"], [[-2.0, -2.0]])
    # Contact forces push them apart.
    obs, *_ = env.step({"pursuers": NOOP})
    assert np.linalg.norm(env.world.pos[0, 1] - env.world.pos[0, 0]) > 0.1


def test_walls_keep_everything_inside():
    env = Pursuit(num_envs=64, seed=1, target_policy="random")
    obs, info = env.reset()
    rng = np.random.default_rng(0)
    limit = 1.0 - np.array([PURSUER_SIZE, PURSUER_SIZE, TARGET_SIZE])[:, None]
    for _ in range(150):
        env.step(sample_actions(env, None, rng))
        assert (np.abs(env.world.pos[:, :3]) <= limit + 1e-6).all()
    # Pushing into a wall: the pursuer stays on it, with no velocity into it, and slides along it.
    env = Pursuit(seed=0)
    env.reset()
    env.set_state(0, pos=far_layout(env, [[0.9, 0.0], [-0.5, -0.5]], [-0.5, 0.5]), vel=np.zeros((5, 2)))
    for _ in range(10):
        env.step({"pursuers": np.array([[2, 0]])})  # +x, into the east wall
    assert env.world.pos[0, 0, 0] == pytest.approx(1.0 - PURSUER_SIZE)
    assert env.world.vel[0, 0, 0] <= 0.0
    for _ in range(5):
        env.step({"pursuers": np.array([[4, 0]])})  # +y, along it
    assert env.world.pos[0, 0, 1] > 0.2 and env.world.pos[0, 0, 0] == pytest.approx(1.0 - PURSUER_SIZE, abs=1e-3)


def test_evasive_target_flees_an_approaching_pursuer():
    env = Pursuit(num_pursuers=1, num_obstacles=0, seed=0)
    env.reset()
    # A pursuer close by and idle: the distance grows every step (after the first, which starts from rest).
    env.set_state(0, pos=[[-0.3, 0.0], [0.0, 0.0]], vel=np.zeros((2, 2)))
    gaps = []
    for _ in range(6):
        env.step({"pursuers": np.array([[0]])})
        gaps.append(np.linalg.norm(env.world.pos[0, 1] - env.world.pos[0, 0]))
    assert np.all(np.diff(gaps) > 0) and gaps[-1] > 0.45
    # A pursuer charging at it: it runs straight away, so the gap shrinks far less than the pursuer advances.
    env.set_state(0, pos=[[-0.4, 0.0], [0.0, 0.0]], vel=np.zeros((2, 2)))
    for _ in range(6):
        env.step({"pursuers": np.array([[2]])})
    pursuer, target = env.world.pos[0, 0], env.world.pos[0, 1]
    assert target[0] > 0.15 and abs(target[1]) < 1e-6 and env.world.vel[0, 1, 0] > 0
    assert target[0] - pursuer[0] > 0.4 - (pursuer[0] + 0.4) + 0.15


def test_evasive_target_is_steered_off_walls_and_obstacles():
    env = Pursuit(num_pursuers=1, num_obstacles=1, seed=0)
    env.reset()
    # Pursuer to the west, obstacle right in front of the target to the east: it goes round, not through.
    env.set_state(0, pos=[[-0.5, 0.05], [0.0, 0.0], [0.3, 0.0]], vel=np.zeros((3, 2)))
    for _ in range(8):
        env.step({"pursuers": NOOP[:, :1]})
        gap = np.linalg.norm(env.world.pos[0, 1] - env.world.pos[0, 2]) - 0.15 - TARGET_SIZE
        assert gap > -0.01
    assert abs(env.world.pos[0, 1, 1]) > 0.05  # it moved sideways around the obstacle
    # Chased into the east wall: it slides along the wall instead of stopping against it.
    env.set_state(0, pos=[[0.35, 0.02], [0.85, 0.0], [-0.5, -0.5]], vel=np.zeros((3, 2)))
    for _ in range(8):
        env.step({"pursuers": NOOP[:, :1]})
    assert abs(env.world.pos[0, 1, 1]) > 0.3 and np.linalg.norm(env.world.vel[0, 1]) > 0.5


def test_random_target_wanders():
    env = Pursuit(num_envs=32, target_policy="random", seed=0)
    env.reset()
    start = env.world.pos[:, 2].copy()
    for _ in range(20):
        env.step({"pursuers": np.zeros((32, 2), dtype=np.int64)})
    moved = np.linalg.norm(env.world.pos[:, 2] - start, axis=-1)
    assert (moved > 0.05).mean() > 0.9


def test_reset_layout_rules():
    env = Pursuit(num_envs=500, seed=2)
    env.reset()
    pos, size = env.world.pos.astype(float), env.world.size
    gap = np.linalg.norm(pos[:, :, None] - pos[:, None], axis=-1) - (size[:, None] + size[None])
    assert (gap[:, :3, 3:] > 0.05).all()
    assert (gap[:, 0, 1] > 0).all() and (gap[:, 3, 4] > 0.1).all()
    assert (np.linalg.norm(pos[:, :2] - pos[:, 2:3], axis=-1) > 0.5).all()
    assert (np.abs(pos[:, 3:]) <= 0.6).all()


def test_continuous_actions_match_discrete_ones():
    d = Pursuit(seed=4)
    c = Pursuit(seed=4, continuous_actions=True)
    d.reset(), c.reset()
    for a in ([2, 3], [4, 1], [0, 2]):
        od, *_ = d.step({"pursuers": np.array([a])})
        oc, *_ = c.step({"pursuers": np.eye(5, dtype=np.float32)[a][None]})
        np.testing.assert_allclose(od["pursuers"], oc["pursuers"], atol=1e-6)


def test_observation_layout():
    env = Pursuit(seed=0)
    env.reset()
    pos = far_layout(env, [[0.1, 0.2], [-0.3, 0.4]], [0.5, -0.5], [[0.0, -0.3], [-0.6, -0.6]])
    obs = env.set_state(0, pos=pos, vel=np.zeros((5, 2)))["pursuers"][0]
    assert obs.shape == (2, 14)
    np.testing.assert_allclose(obs[0], [0, 0, 0.1, 0.2, 0.4, -0.7, 0, 0, -0.4, 0.2, -0.1, -0.5, -0.7, -0.8], atol=1e-6)
    np.testing.assert_allclose(env.state()[0], obs.ravel(), atol=1e-6)


def test_render_and_registry():
    env = marlkit.make("pursuit-v0", num_envs=2)
    env.reset(seed=0)
    frame = env.render(1)
    assert frame.shape == (400, 400, 3) and frame.dtype == np.uint8
    with pytest.raises(ValueError, match="target_policy"):
        marlkit.make("pursuit-v0", target_policy="smart")
