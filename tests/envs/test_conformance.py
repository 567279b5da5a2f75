"""Every registered environment against the contract: the checker, determinism across instances, autoreset."""

import numpy as np
import pytest

import marlkit
from marlkit.envs import check_env, sample_actions

# MaMuJoCo's 1000-step episodes: tests/envs/test_mujoco.py runs these checks with a short time limit
ENV_IDS = [e for e in marlkit.list_envs() if not e.startswith("mamujoco-")]


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("num_envs", [1, 4])
def test_check_env(env_id, num_envs):
    check_env(marlkit.make(env_id, num_envs=num_envs), steps=400)


def _rollout(env_id, seed, steps=150, num_envs=4):
    env = marlkit.make(env_id, num_envs=num_envs, seed=seed)
    rng = np.random.default_rng(123)
    obs, info = env.reset()
    out = [obs]
    for _ in range(steps):
        obs, rew, term, trunc, info = env.step(sample_actions(env, info.get("action_mask"), rng))
        out.append((obs, rew, term, trunc, info["episode_done"]))
    return out


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_same_seed_same_trajectory_across_instances(env_id):
    a, b = _rollout(env_id, seed=11), _rollout(env_id, seed=11)
    for x, y in zip(a, b):
        np.testing.assert_equal(x, y)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_autoreset_starts_a_fresh_episode(env_id):
    """A copy that ends is reset in the same step: lengths restart and final_obs keeps the last observation."""
    env = marlkit.make(env_id, num_envs=3, seed=0)
    rng = np.random.default_rng(0)
    obs, info = env.reset()
    length = np.zeros(3, dtype=int)
    ended = differs = 0
    for _ in range(400):
        obs, rew, term, trunc, info = env.step(sample_actions(env, info.get("action_mask"), rng))
        length += 1
        done = info["episode_done"]
        if env.max_steps is not None:
            assert (length <= env.max_steps).all()
        for g in env.groups:
            differs += int((info["final_obs"][g][done] != obs[g][done]).any())
        ended += int(done.sum())
        length[done] = 0
    assert ended >= 3, "expected several episodes to end in 400 random steps"
    assert differs > 0, "final_obs of ended copies never differed from the new episode's first observation"
