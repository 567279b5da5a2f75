"""Every registered algorithm: a learner built with *another* seed and loaded from a checkpoint continues exactly as
the one that saved it — acting, sampling and learning. Two learners built alike would agree even if a generator
were missing from the checkpoint (both would draw from the same fresh seed); one built differently does not."""

import io

import pytest
import torch

import marlkit
from marlkit.algorithms.registry import algo_spec, list_algos, supports
from marlkit.collect import Collector
from marlkit.experiment.run import make_run_config
from marlkit.experiment.runner import build_algo, learn

#: Small envs tried in order; each algorithm is checked on the first it supports.
ENVS = ("climbing-v0", "spread-v0", "tag-v0")


def env_for(name: str) -> str:
    spec = algo_spec(name)
    return next(e for e in (*ENVS, *marlkit.list_envs()) if supports(spec, marlkit.make(e, num_envs=1, seed=0)))


def build(name: str, env_id: str, seed: int):
    """The learner as the runner builds it, learning from the first update (no replay warm-up)."""
    spec = algo_spec(name)
    env = marlkit.make(env_id, num_envs=4, seed=0)
    _, cfg_cls = spec.load()
    early = {"warmup_steps": 0, "batch_size": 16} if "warmup_steps" in cfg_cls.__dataclass_fields__ else {}
    cfg = make_run_config(
        config={"algorithm": name, "env": {"id": env_id, "num_envs": 4}, "algo": {**spec.config_for(env), **early}}
    )
    torch.manual_seed(seed)  # network initialisation
    return build_algo(cfg, env, seed), env


def through_bytes(state):
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def continue_training(algo, env_id: str, env_steps: int, updates: int = 3):
    """Collect and update ``updates`` times on a fresh env seeded 5, the run's counter at ``env_steps``; returns
    every update's metrics."""
    env = marlkit.make(env_id, num_envs=4, seed=5)
    collector = Collector(env, algo, algo.config.rollout_steps, seed=5)
    torch.manual_seed(11)  # anything drawing from the global generator draws the same in both
    return learn(algo, collector, updates, env_steps=env_steps)


@pytest.mark.parametrize("name", list_algos("batched"))
def test_a_learner_loaded_from_a_checkpoint_continues_as_the_one_that_saved_it(name):
    env_id = env_for(name)
    a, env = build(name, env_id, seed=1)
    collector = Collector(env, a, a.config.rollout_steps, seed=0)
    learn(a, collector, 3)
    b, _ = build(name, env_id, seed=2)
    b.load_checkpoint_state(through_bytes(a.checkpoint_state()))
    # the run's counter is not the learner's: a resumed run tells it again, as here
    env_steps = a.progress.env_steps
    assert continue_training(a, env_id, env_steps) == continue_training(b, env_id, env_steps)
    assert_same(a.checkpoint_state(), b.checkpoint_state())


def assert_same(x, y, where="state"):
    """Two checkpoint states hold equal values (tensors compared exactly)."""
    if isinstance(x, torch.Tensor):
        assert torch.equal(x, y), where
    elif isinstance(x, dict):
        assert x.keys() == y.keys(), where
        for k in x:
            assert_same(x[k], y[k], f"{where}[{k!r}]")
    elif isinstance(x, (list, tuple)):
        assert len(x) == len(y), where
        for i, (u, v) in enumerate(zip(x, y)):
            assert_same(u, v, f"{where}[{i}]")
    else:
        assert x == y, where
