"""Every registered algorithm on every registered env it supports: a few hundred env-steps through the runner, a
checkpoint, and the checkpoint loaded back into a fresh algorithm that acts exactly like the saved one.

Driven by the registries: a new algorithm or env is covered without editing this file.
"""

import numpy as np
import pytest
import torch

import marlkit
from marlkit.algorithms.registry import algo_spec, list_algos, supports
from marlkit.experiment.runner import load_run, train

PAIRS = [(a, e) for a in list_algos() for e in marlkit.list_envs()
         if supports(algo_spec(a), marlkit.make(e, num_envs=1, seed=0))]


def test_every_algorithm_has_an_env():
    assert {a for a, _ in PAIRS} == set(list_algos())


@pytest.mark.parametrize("algo,env_id", PAIRS)
def test_train_checkpoint_load(algo, env_id, tmp_path):
    torch.set_num_threads(1)
    result = train(algo, env_id, steps=300, seed=0, out=str(tmp_path), num_envs=4, eval_every=0, eval_episodes=4,
                   checkpoint_every=300, progress=False, gif=False)
    assert result.env_steps >= 300 and np.isfinite(result.eval_return)

    cfg, env, loaded, steps = load_run(result.run_dir, num_envs=4)
    assert steps == result.env_steps and cfg.algorithm == algo
    obs, info = env.reset(seed=1)
    state = env.state() if loaded.uses_state else None
    first, _ = loaded.act(obs, state, info, explore=False)
    for g, a in first.items():
        assert a.shape[:2] == (4, len(env.groups[g]))
    # a second fresh load acts identically: everything the policy needs is in the checkpoint
    _, _, again, _ = load_run(result.run_dir, num_envs=4)
    second, _ = again.act(obs, state, info, explore=False)
    for g in first:
        np.testing.assert_array_equal(first[g], second[g])
