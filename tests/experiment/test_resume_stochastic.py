"""Resume on an environment whose resets are random (spread-v0 draws every episode's positions from the env's
generator): the training env's generator comes back from the checkpoint, so everything after a checkpoint is a pure
function of it."""

import shutil

import numpy as np
import torch

import marlkit
from marlkit.core import checkpoint as ckpt
from marlkit.experiment.logging import read_metrics
from marlkit.experiment.runner import Runner

#: IPPO on spread-v0, 4 copies x 25 steps = 100 env-steps per update, a checkpoint every 200.
SPREAD = {
    "env": "spread-v0",
    "num_envs": 4,
    "log_every": 100,
    "eval_every": 0,
    "checkpoint_every": 200,
    "eval_episodes": 4,
    "epochs": 1,
}


def rows(run_dir):
    """metrics.csv rows without perf/ columns (wall-clock dependent)."""
    return [{k: v for k, v in row.items() if not k.startswith("perf/")} for row in read_metrics(run_dir)]


def stopped_at(done, d, steps):
    """A copy of the finished run ``done`` as if it had been killed right after its checkpoint at ``steps``."""
    shutil.copytree(done, d)
    for s, path in ckpt.list_checkpoints(d / "checkpoints"):
        if s > steps:
            path.unlink()
    (d / "eval.json").unlink()
    return d


def test_resuming_spread_twice_from_one_checkpoint_gives_identical_numbers(tiny, tmp_path):
    done = Runner(tiny("straight", steps=600, **SPREAD)).run().run_dir
    r1, r2 = (Runner.resume(stopped_at(done, tmp_path / name, 200)).run() for name in ("r1", "r2"))
    assert r1.env_steps == r2.env_steps == 600
    assert rows(r1.run_dir) == rows(r2.run_dir)
    assert r1.eval == r2.eval
    m1, m2 = (ckpt.load(r.checkpoint)["algo"]["model"] for r in (r1, r2))
    assert all(torch.equal(m1[k], m2[k]) for k in m1)
    # the training returns after the checkpoint are there in both (they are what a lost generator would change)
    assert [r["env_steps"] for r in rows(r1.run_dir) if "train/episode_return" in r] == [100, 200, 300, 400, 500, 600]
    # up to the checkpoint, the resumed runs are the straight run
    straight = rows(done)
    assert [r for r in rows(r1.run_dir) if r["env_steps"] <= 200] == [r for r in straight if r["env_steps"] <= 200]


def test_a_resumed_run_resets_its_env_from_the_checkpointed_generator(tiny):
    first = Runner(tiny("gen", steps=200, **SPREAD)).run()
    state = ckpt.load(first.checkpoint)
    resumed = Runner.resume(first.run_dir, steps=400)  # built, not run: its collector has reset the training env
    reference = marlkit.make("spread-v0", num_envs=4)
    reference.np_random = ckpt.restore_generator(state["source"]["env_rng"])
    expected, _ = reference.reset()
    np.testing.assert_array_equal(resumed.source.obs["agents"], expected["agents"])
    # and that is not what a freshly seeded env starts from
    fresh, _ = marlkit.make("spread-v0", num_envs=4).reset(seed=resumed.seeds["env"])
    assert not np.array_equal(fresh["agents"], expected["agents"])
