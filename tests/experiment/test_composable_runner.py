"""The runner drives any learner from any batch source: a learner goes on training in a new run (the seam of
lifelong learning), a source of one's own feeds the loop, mismatches are clear errors, and the run's one env-step
counter comes back on resume — from new checkpoints and from those whose learner state still held a count."""

import json

import numpy as np
import pytest
import torch

from marlkit.collect import Collector, evaluate
from marlkit.core import Progress
from marlkit.core import checkpoint as ckpt
from marlkit.core.config import ConfigError
from marlkit.data.rollout import EpisodeStats
from marlkit.experiment.run import make_run_config
from marlkit.experiment.runner import Runner, eval_num_envs, make_env
from marlkit.ops import linear

#: IQL on spread-v0: 4 copies x 4 steps = 16 env-steps per update, learning from 64 env-steps on.
IQL = dict(
    num_envs=4,
    eval_every=0,
    checkpoint_every=0,
    eval_episodes=4,
    log_every=160,
    progress=False,
    gif=False,
    warmup_steps=64,
    epsilon_steps=400,
    batch_size=16,
)


@pytest.fixture
def tiny(tmp_path):
    """``tiny(name, steps, algo="iql", **fields)`` -> a RunConfig of a tiny run under ``tmp_path``."""

    def make(name: str, steps: int, algo: str = "iql", **fields):
        fields = {**IQL, **fields}
        if algo != "iql":
            fields = {k: v for k, v in fields.items() if k not in ("warmup_steps", "epsilon_steps", "batch_size")}
        return make_run_config(algo, "spread-v0", out=str(tmp_path), name=name, steps=steps, preset="none", **fields)

    return make


def _weights(learner):
    return {k: v.clone() for k, v in learner.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_learner_goes_on_training_in_a_new_run(tiny):
    first = Runner(tiny("first", steps=320), default_callbacks=False)
    first.run()
    learner, trained = first.learner, _weights(first.learner)
    second = Runner(tiny("second", steps=320, seed=1), learner=learner, default_callbacks=False)
    assert second.learner is learner and _same(_weights(learner), trained)  # carried over as it was
    assert learner.progress == Progress(0, 320, 0)  # the new run's counter: its schedules start again
    result = second.run()
    assert not _same(_weights(learner), trained)  # and trained on
    # the continued run's evaluation is the learner object's own
    eval_env = make_env(second.config, eval_num_envs(second.config))
    stats = evaluate(eval_env, learner, second.config.experiment.eval_episodes, seed=second.seeds["eval"])
    assert result.eval["episode_return"]["mean"] == pytest.approx(
        float(np.mean(np.concatenate([np.asarray(r) for r in stats.returns.values()], axis=1).mean(axis=1)))
    )
    # a fresh learner trained by the same config ends elsewhere
    fresh = Runner(tiny("fresh", steps=320, seed=1), default_callbacks=False).run()
    assert fresh.eval["episode_return"] != result.eval["episode_return"]
    # the new run directory records the learner's own config and resumes like any run
    again = Runner.resume(result.run_dir, steps=352, default_callbacks=False)
    assert again.config.algo == learner.config and again.env_steps == 320
    assert again.run().env_steps == 352


def test_a_learner_continues_on_an_env_with_other_kwargs(tiny):
    first = Runner(tiny("short", steps=64), default_callbacks=False)
    first.run()
    other = tiny("longer", steps=64, **{"env.kwargs": {"max_steps": 40}})
    result = Runner(other, learner=first.learner, default_callbacks=False).run()
    assert result.eval["episode_length"]["mean"] == 40


def test_mismatched_learners_are_clear_errors_before_a_run_directory_exists(tiny, tmp_path):
    learner = Runner(tiny("three", steps=16), default_callbacks=False).learner
    four = tiny("four", steps=16, **{"env.kwargs": {"num_agents": 4}})
    with pytest.raises(
        ConfigError,
        match=r"the learner given to the run cannot play spread-v0 \(env.kwargs "
        r"\{'num_agents': 4\}\): its groups are agents: \['agent_0', 'agent_1', "
        r"'agent_2'\], these are agents: \['agent_0', .*'agent_3'\]",
    ):
        Runner(four, learner=learner)
    continuous = tiny("box", steps=16, **{"env.kwargs": {"continuous_actions": True}})
    with pytest.raises(ConfigError, match=r"the action space of group 'agents' is Discrete\(5\), here it is Box"):
        Runner(continuous, learner=learner)
    with pytest.raises(ConfigError, match=r"is a DQN with a DQNConfig, but algorithm 'mappo' takes a PPOConfig"):
        Runner(tiny("ppo", steps=16, algo="mappo"), learner=learner)
    assert not (tmp_path / "four").exists() and not (tmp_path / "box").exists() and not (tmp_path / "ppo").exists()


class CountingSource:
    """The Collector, counting the batches taken from it."""

    def __init__(self, collector: Collector) -> None:
        self.collector, self.calls = collector, 0

    @property
    def steps_per_batch(self) -> int:
        return self.collector.steps_per_batch

    def collect(self):
        self.calls += 1
        return self.collector.collect()

    def state(self):
        return {"collector": self.collector.state(), "calls": self.calls}

    def load_state(self, state):
        self.collector.load_state(state["collector"])
        self.calls = state["calls"]


def test_a_source_of_ones_own_feeds_the_run(tiny):
    built = Runner(tiny("counted", steps=200), default_callbacks=False)  # a learner and its collector
    source = CountingSource(built.source)
    runner = Runner(tiny("fed", steps=200), learner=built.learner, source=source, default_callbacks=False)
    assert runner.env is None  # nothing built for what was given
    result = runner.run()
    assert source.calls == 13 and result.env_steps == 208  # whole batches of 16 until the budget
    assert built.learner.grad_steps == 13 - 3  # learning from 64 env-steps on: the runner's counter
    assert ckpt.load(result.checkpoint)["source"]["calls"] == 13
    resumed = Runner.resume(
        result.run_dir, steps=240, source=CountingSource(built.source), learner=built.learner, default_callbacks=False
    )
    assert resumed.source.calls == 13 and resumed.run().env_steps == 240 and resumed.source.calls == 15


class FixedSource:
    """The same batch every time, counted as ``steps`` env-steps: a replayed rollout."""

    def __init__(self, batch, steps: int) -> None:
        self.batch, self.steps_per_batch = batch, steps

    def collect(self):
        return self.batch, EpisodeStats()

    def state(self):
        return {}

    def load_state(self, state):
        pass


def test_the_runners_counter_is_what_the_source_says_a_batch_holds(tiny):
    built = Runner(tiny("rollout", steps=16), default_callbacks=False)
    batch, _ = built.source.collect()
    runner = Runner(
        tiny("fixed", steps=700), learner=built.learner, source=FixedSource(batch, 100), default_callbacks=False
    )
    runner.run()
    assert runner.env_steps == 700 and runner.updates == 7
    assert built.learner.epsilon() == linear(1.0, 0.05, 400)(700)


def test_a_resumed_run_explores_from_the_checkpoints_counter(tiny):
    result = Runner(tiny("half", steps=160), default_callbacks=False).run()
    resumed = Runner.resume(result.run_dir, steps=320, default_callbacks=False)
    assert resumed.learner.progress == Progress(160, 320, 16)
    assert resumed.learner.epsilon() == linear(1.0, 0.05, 400)(160) < 1.0


def test_checkpoints_whose_learner_kept_the_count_resume_the_same(tiny, tmp_path):
    """A checkpoint written when the learner held ``env_steps`` and the env's generator was ``env_rng`` resumes
    exactly as the same checkpoint in today's layout."""
    import shutil

    done = Runner(tiny("now", steps=160), default_callbacks=False).run().run_dir
    shutil.copytree(done, tmp_path / "before")
    path = ckpt.latest(tmp_path / "before" / "checkpoints")
    state = ckpt.load(path)
    state["env_rng"] = state.pop("source")["env_rng"]
    state["algo"]["env_steps"] = state["env_steps"]
    for p in path.parent.iterdir():
        p.unlink()
    ckpt.save_atomic(state, path)
    runs = [Runner.resume(d, steps=320, default_callbacks=False).run() for d in (done, tmp_path / "before")]
    assert runs[0].eval == runs[1].eval
    assert [json.loads((r.run_dir / "eval.json").read_text())["env_steps"] for r in runs] == [320, 320]
