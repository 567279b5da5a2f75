"""Every registered algorithm on every registered env it supports: a few hundred env-steps through the runner, a
checkpoint, and the checkpoint loaded back — on a different number of copies, as evaluation does — into fresh
algorithms that act identically.

Driven by the registries: a new algorithm or env is covered without editing this file. An algorithm whose config
must name the env's groups (``teams``) trains with the config its registry entry gives for each env
(``AlgoSpec.config_for``).
"""

import numpy as np
import pytest
import torch

import marlkit
from marlkit.algorithms.registry import algo_spec, list_algos, supports
from marlkit.experiment.runner import load_run, train

PAIRS = [
    (a, e)
    for a in list_algos("batched")
    for e in marlkit.list_envs()
    if supports(algo_spec(a), marlkit.make(e, num_envs=1, seed=0))
]


#: Env options of the smoke runs: MaMuJoCo's episodes are cut from 1000 steps to 50, so its evaluations stay short.
ENV_KWARGS = {e: {"max_steps": 50} for e in marlkit.list_envs() if e.startswith("mamujoco-")}


def test_every_algorithm_has_an_env():
    assert {a for a, _ in PAIRS} == set(list_algos("batched"))


@pytest.mark.parametrize("algo,env_id", PAIRS)
def test_train_checkpoint_load(algo, env_id, tmp_path):
    torch.set_num_threads(1)
    config = {
        "algorithm": algo,
        "env": {"id": env_id, "kwargs": ENV_KWARGS.get(env_id, {})},
        "algo": algo_spec(algo).config_for(marlkit.make(env_id, num_envs=1, seed=0)),
    }
    result = train(
        config=config,
        steps=300,
        seed=0,
        out=str(tmp_path),
        num_envs=4,
        eval_every=0,
        eval_episodes=4,
        checkpoint_every=300,
        progress=False,
        gif=False,
    )
    assert result.env_steps >= 300 and np.isfinite(result.eval_return)

    # loaded for evaluation on another number of copies than it trained with (as `marlkit eval` and `render` do)
    cfg, env, loaded, steps = load_run(result.run_dir, num_envs=3)
    assert steps == result.env_steps and cfg.algorithm == algo
    obs, info = env.reset(seed=1)
    state = env.state() if loaded.uses_state else None
    first, _ = loaded.act(obs, state, info, explore=False)
    for g, a in first.items():
        assert a.shape[:2] == (3, len(env.groups[g]))
    # a second fresh load acts identically: everything the policy needs is in the checkpoint
    _, _, again, _ = load_run(result.run_dir, num_envs=3)
    second, _ = again.act(obs, state, info, explore=False)
    for g in first:
        np.testing.assert_array_equal(first[g], second[g])


def test_a_full_replay_loads_for_evaluation_on_more_copies(tmp_path):
    # Replay capacity is counted in transitions, so its rows depend on the copies: a run trained on 4 copies whose
    # replay is full must still load into an evaluation env of 16 (`marlkit eval` uses its own copy count).
    torch.set_num_threads(1)
    result = train(
        "vdn",
        "penalty-v0",
        steps=400,
        seed=0,
        out=str(tmp_path),
        num_envs=4,
        eval_every=0,
        eval_episodes=4,
        checkpoint_every=400,
        progress=False,
        gif=False,
        sets=["algo.buffer_size=64", "algo.warmup_steps=0"],
    )
    _, env, loaded, _ = load_run(result.run_dir, num_envs=16)
    obs, info = env.reset(seed=1)
    actions, _ = loaded.act(obs, None, info, explore=False)
    assert actions["players"].shape == (16, 2)
