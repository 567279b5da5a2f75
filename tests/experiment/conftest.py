"""Tiny training runs for the experiment tests: IPPO on the climbing game, a couple of thousand env-steps."""

import pytest
import torch

from marlkit.experiment.run import make_run_config

#: A run small enough to take about a second: 8 copies x 25 steps = 200 env-steps per update.
TINY = dict(
    num_envs=8,
    log_every=400,
    eval_every=1000,
    checkpoint_every=1000,
    eval_episodes=8,
    progress=False,
    gif=False,
    epochs=2,
)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture
def tiny(tmp_path):
    """``tiny(name, **fields)`` -> a RunConfig of a tiny run under ``tmp_path``."""

    def make(name: str = "run", algo: str = "ippo", env: str = "climbing-v0", steps: int = 2000, **fields):
        return make_run_config(algo, env, out=str(tmp_path), name=name, steps=steps, **{**TINY, **fields})

    return make
