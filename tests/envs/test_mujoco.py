"""The batched MaMuJoCo envs against Gymnasium-Robotics' own ``mamujoco_v1.parallel_env``: the same seed gives the same
start, and the same actions the same per-agent observations, state, rewards and terminations, step for step; batches
and threads change nothing of a copy; time limit, termination, autoreset, bad options and rendering."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import marlkit
from marlkit.envs import sample_actions
from marlkit.envs.mujoco.mamujoco import NO_GL_MESSAGE, render_backend  # before mujoco: it picks the GL backend

pytest.importorskip("mujoco")
pytest.importorskip("gymnasium_robotics")

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from gymnasium_robotics import mamujoco_v1

#: (marlkit id, options, MaMuJoCo scenario, partition, observation depth)
CASES = [
    ("mamujoco-halfcheetah-2x3-v0", {}, "HalfCheetah", "2x3", 1),
    ("mamujoco-halfcheetah-2x3-v0", {"agent_obsk": 0}, "HalfCheetah", "2x3", 0),
    ("mamujoco-halfcheetah-2x3-v0", {"agent_conf": "6x1", "agent_obsk": 2}, "HalfCheetah", "6x1", 2),
    ("mamujoco-ant-2x4-v0", {}, "Ant", "2x4", 1),
    ("mamujoco-ant-4x2-v0", {}, "Ant", "4x2", 1),
    ("mamujoco-ant-2x4-v0", {"agent_conf": "2x4d"}, "Ant", "2x4d", 1),
    ("mamujoco-walker2d-2x3-v0", {}, "Walker2d", "2x3", 1),
    ("mamujoco-hopper-3x1-v0", {}, "Hopper", "3x1", 1),
    ("mamujoco-halfcheetah-2x3-v0", {"scenario": "Swimmer", "agent_conf": "2x1"}, "Swimmer", "2x1", 1),
]


def _per_agent(env, arrays):
    """Copy 0 of group arrays, keyed by agent id."""
    return {a: arrays[g][0, i] for g, ids in env.groups.items() for i, a in enumerate(ids)}


@pytest.mark.parametrize("env_id,options,scenario,conf,obsk", CASES)
def test_same_seed_and_actions_give_mamujocos_numbers(env_id, options, scenario, conf, obsk):
    env = marlkit.make(env_id, num_envs=1, **options)
    ref = mamujoco_v1.parallel_env(scenario, conf, agent_obsk=obsk)
    assert sorted(env.agents) == sorted(ref.possible_agents)
    for a in env.agents:
        assert env.observation_space(a).shape == ref.observation_space(a).shape
        assert env.action_space(a).shape == ref.action_space(a).shape
    assert env.state_space.shape == ref.state().shape
    obs, _ = env.reset(seed=7)
    ref_obs, _ = ref.reset(seed=7)
    rng = np.random.default_rng(0)
    for t in range(150):
        mine = _per_agent(env, obs)
        for a in env.agents:  # float32 copies of MaMuJoCo's float64 values
            np.testing.assert_allclose(mine[a], ref_obs[a], rtol=1e-6, atol=1e-6, err_msg=f"step {t}, {a}")
        np.testing.assert_allclose(env.state()[0], ref.state(), rtol=1e-6, atol=1e-6, err_msg=f"state, step {t}")
        actions = {a: rng.uniform(-1, 1, ref.action_space(a).shape).astype(np.float32) for a in env.agents}
        batch = {g: np.stack([actions[a] for a in ids])[None] for g, ids in env.groups.items()}
        obs, rewards, terminated, truncated, info = env.step(batch)
        ref_obs, ref_rewards, ref_term, ref_trunc, _ = ref.step(actions)
        for a, r in _per_agent(env, rewards).items():
            assert r == pytest.approx(ref_rewards[a], rel=1e-9, abs=1e-9), f"reward of {a} at step {t}"
        assert _per_agent(env, terminated) == {a: bool(v) for a, v in ref_term.items()}, f"terminated at step {t}"
        assert not any(_per_agent(env, truncated).values()) and not any(ref_trunc.values())
        if any(ref_term.values()):
            final = _per_agent(env, info["final_obs"])
            for a in env.agents:
                np.testing.assert_allclose(final[a], ref_obs[a], rtol=1e-6, atol=1e-6)
            break


def test_copies_of_a_batch_and_threads_change_nothing_of_a_copy():
    single = marlkit.make("mamujoco-ant-2x4-v0", num_envs=4, seed=3)
    threaded = marlkit.make("mamujoco-ant-2x4-v0", num_envs=4, seed=3, threads=2)
    rng = np.random.default_rng(1)
    a, _ = single.reset()
    b, _ = threaded.reset()
    np.testing.assert_equal(a, b)
    assert not np.array_equal(a["agents"][0], a["agents"][1]), "copies start from their own noise"
    for _ in range(40):
        actions = sample_actions(single, None, rng)
        np.testing.assert_equal(single.step(actions), threaded.step(actions))
    threaded.close()


def test_walker_falls_terminates_and_restarts_in_the_same_step():
    env = marlkit.make("mamujoco-walker2d-2x3-v0", num_envs=2, seed=0)
    env.reset()
    rng = np.random.default_rng(0)
    for _ in range(300):
        obs, rewards, terminated, truncated, info = env.step(sample_actions(env, None, rng))
        if info["episode_done"].any():
            break
    done = info["episode_done"]
    assert done.any(), "a walker under random torques falls within 300 steps"
    assert terminated["agents"][done].all() and not truncated["agents"][done].any()
    # the new episode starts upright (Gymnasium's reset: noise of 5e-3 around the initial pose)
    assert np.abs(obs["agents"][done][:, :, :2] - info["final_obs"]["agents"][done][:, :, :2]).max() > 0.05
    assert env.state()[done][:, 0] == pytest.approx(1.25, abs=0.01)  # the torso's height after reset


def test_time_limit_truncates_every_agent():
    env = marlkit.make("mamujoco-halfcheetah-2x3-v0", num_envs=2, seed=0, max_steps=5)
    env.reset()
    for t in range(5):
        _, _, terminated, truncated, info = env.step(sample_actions(env, None, np.random.default_rng(t)))
    assert truncated["agents"].all() and not terminated["agents"].any() and info["episode_done"].all()
    assert (info["episode_length"] == 5).all()
    assert marlkit.make("mamujoco-halfcheetah-2x3-v0").max_steps == 1000  # Gymnasium's time limit


def test_bad_options_say_what_is_allowed():
    with pytest.raises(ValueError, match="no partition agent_conf='3x7' of HalfCheetah"):
        marlkit.make("mamujoco-halfcheetah-2x3-v0", agent_conf="3x7")
    with pytest.raises(ValueError, match="supported: HalfCheetah, Ant"):
        marlkit.make("mamujoco-halfcheetah-2x3-v0", scenario="Humanoid")
    with pytest.raises(ValueError, match="agent_obsk"):
        marlkit.make("mamujoco-halfcheetah-2x3-v0", agent_obsk=-1)
    with pytest.raises(TypeError, match="no option 'agent_obs'"):
        marlkit.make("mamujoco-halfcheetah-2x3-v0", agent_obs=1)


def test_render_gives_frames_or_says_why_not(tmp_path):
    env = marlkit.make("mamujoco-halfcheetah-2x3-v0", render_size=(48, 64))
    env.reset(seed=0)
    if render_backend() is None:
        assert not env.renders
        with pytest.raises(NotImplementedError, match="MUJOCO_GL=egl"):
            env.render()
        assert "MUJOCO_GL=osmesa" in NO_GL_MESSAGE
        return
    from marlkit.envs.rendering import record_episode, save_gif

    first = env.render()
    assert first.shape == (48, 64, 3) and first.dtype == np.uint8 and first.std() > 0
    frames = record_episode(env, steps=5, seed=0)
    assert len(frames) == 6 and not np.array_equal(frames[0], frames[-1]), "the body moves between frames"
    path = save_gif(frames, tmp_path / "cheetah.gif", fps=20)
    assert path.stat().st_size > 0
    env.close()


# ------------------------------------------------------------------------ the registry-wide checks, on short episodes
# tests/envs/test_conformance.py, test_copy.py and test_pettingzoo.py run these on every other registered env; MaMuJoCo's
# 1000-step episodes would make them minutes long, so here they run with a time limit of SHORT steps.
MUJOCO_IDS = [e for e in marlkit.list_envs() if e.startswith("mamujoco-")]
SHORT = 30


@pytest.mark.parametrize("env_id", MUJOCO_IDS)
@pytest.mark.parametrize("num_envs", [1, 3])
def test_check_env(env_id, num_envs):
    from marlkit.envs import check_env

    check_env(marlkit.make(env_id, num_envs=num_envs, max_steps=SHORT), steps=2 * SHORT + 5)


@pytest.mark.parametrize("env_id", MUJOCO_IDS)
def test_copies_made_mid_episode_step_like_the_original(env_id):
    import copy
    import pickle

    env = marlkit.make(env_id, num_envs=3, max_steps=SHORT)
    env.reset(seed=3)
    rng = np.random.default_rng(1)
    for _ in range(4):
        env.step(sample_actions(env, None, rng))
    copies = [copy.deepcopy(env), pickle.loads(pickle.dumps(env))]
    ended = 0
    for t in range(2 * SHORT):
        actions = sample_actions(env, None, rng)
        out = env.step(actions)
        for c in copies:
            np.testing.assert_equal(c.step({g: a.copy() for g, a in actions.items()}), out, err_msg=f"step {t}")
        ended += int(out[4]["episode_done"].sum())
    assert ended >= 3
    before = env.state()
    copies[0].step(sample_actions(env, None, rng))
    np.testing.assert_equal(env.state(), before)


@pytest.mark.parametrize("env_id", MUJOCO_IDS)
def test_pettingzoo_view_passes_pettingzoos_tests(env_id):
    pytest.importorskip("pettingzoo")
    import functools

    from pettingzoo.test import parallel_api_test, parallel_seed_test

    from marlkit.envs import check_env
    from marlkit.envs.pettingzoo import from_pettingzoo, to_pettingzoo

    parallel_api_test(to_pettingzoo(env_id, max_steps=SHORT), num_cycles=2 * SHORT)
    parallel_seed_test(functools.partial(to_pettingzoo, env_id, max_steps=SHORT))
    round_trip = from_pettingzoo(lambda: to_pettingzoo(env_id, max_steps=SHORT), num_envs=2)
    check_env(round_trip, steps=2 * SHORT + 5, check_render=False)
