"""The runner in-process: run-directory contents, namespaced keys, callbacks, determinism, resume, checkpoints."""

import json
import shutil

import pytest
import torch

from marlkit.core import checkpoint as ckpt
from marlkit.experiment.callbacks import Callback
from marlkit.experiment.logging import read_metrics
from marlkit.experiment.run import RunConfig
from marlkit.experiment.runner import Runner


def metrics_without_timing(run_dir):
    """metrics.csv rows without perf/ columns (wall-clock dependent)."""
    return [{k: v for k, v in row.items() if not k.startswith("perf/")} for row in read_metrics(run_dir)]


def test_run_directory_and_keys(tiny):
    result = Runner(tiny("a", algo="mappo", gif=True)).run()
    d = result.run_dir
    assert {p.name for p in d.iterdir()} >= {"config.yaml", "metrics.csv", "checkpoints", "eval.json", "media"}
    assert any(p.name.startswith("events.out.tfevents") for p in d.iterdir())
    assert (d / "media" / "final.gif").stat().st_size > 0
    assert RunConfig.load(d) == RunConfig.load(d / "config.yaml") and RunConfig.load(d).algorithm == "mappo"
    assert [s for s, _ in ckpt.list_checkpoints(d / "checkpoints")] == [1000, 2000]

    rows = read_metrics(d)
    keys = set().union(*rows)
    assert {
        "env_steps",
        "train/episode_return",
        "train/episode_length",
        "loss/policy",
        "loss/value",
        "perf/env_steps_per_s",
        "eval/episode_return",
        "eval/episode_length",
    } <= keys
    assert all("/" in k for k in keys - {"env_steps"})
    assert [r["env_steps"] for r in rows if "train/episode_return" in r] == [400, 800, 1200, 1600, 2000]
    assert [r["env_steps"] for r in rows if "eval/episode_return" in r] == [1000, 2000]

    report = json.loads((d / "eval.json").read_text())
    assert report["env_steps"] == result.env_steps == 2000 and report["episodes"] == 8
    assert set(report["per_agent_return"]) == {"player_0", "player_1"}
    assert set(report["episode_return"]) == {"mean", "std"} and "players" in report["group_return"]
    assert result.metrics["eval/episode_return"] == report["episode_return"]["mean"] == result.eval_return


def test_tensorboard_events_use_env_steps(tiny):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    d = Runner(tiny("tb")).run().run_dir
    acc = EventAccumulator(str(d))
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/episode_return")] == [400, 800, 1200, 1600, 2000]
    assert [e.step for e in acc.Scalars("eval/episode_return")] == [1000, 2000]
    assert "loss/policy" in acc.Tags()["scalars"]


def test_callbacks_see_every_event(tiny):
    seen = []

    class Spy(Callback):
        def on_start(self, runner):
            seen.append(("start", runner.env_steps))

        def on_update(self, runner, metrics):
            seen.append(("update", runner.env_steps))

        def on_log(self, runner, row):
            seen.append(("log", runner.env_steps))

        def on_eval(self, runner, results):
            seen.append(("eval", runner.env_steps))

        def on_checkpoint(self, runner, path):
            seen.append(("checkpoint", runner.env_steps))

        def on_end(self, runner, result):
            seen.append(("end", result.env_steps))

    class OnlyEval:  # any object with some of the hooks will do
        def __init__(self):
            self.returns = []

        def on_eval(self, runner, results):
            self.returns.append(results["eval/episode_return"])

    only = OnlyEval()
    Runner(tiny("cb", log_every=1000), callbacks=[Spy(), only]).run()
    assert seen[0] == ("start", 0) and seen[-1] == ("end", 2000)
    assert [s for e, s in seen if e == "update"] == list(range(200, 2001, 200))
    assert [(e, s) for e, s in seen if e != "update"][1:-1] == [
        ("log", 1000),
        ("eval", 1000),
        ("checkpoint", 1000),
        ("log", 2000),
        ("eval", 2000),
        ("checkpoint", 2000),
    ]
    assert len(only.returns) == 2


def test_same_seed_same_numbers(tiny):
    a = Runner(tiny("a", seed=7)).run()
    b = Runner(tiny("b", seed=7)).run()
    c = Runner(tiny("c", seed=8)).run()
    assert metrics_without_timing(a.run_dir) == metrics_without_timing(b.run_dir)
    assert metrics_without_timing(a.run_dir) != metrics_without_timing(c.run_dir)
    assert a.eval == b.eval
    sa, sb = (ckpt.load(r.checkpoint)["algo"]["model"] for r in (a, b))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_resuming_from_one_checkpoint_twice_gives_the_same_numbers(tiny, tmp_path):
    done = Runner(tiny("full", steps=3000)).run().run_dir
    copies = []
    for name in ("r1", "r2"):  # a run "killed" right after its checkpoint at 1,000 env-steps
        d = tmp_path / name
        shutil.copytree(done, d)
        for steps, path in ckpt.list_checkpoints(d / "checkpoints"):
            if steps > 1000:
                path.unlink()
        (d / "eval.json").unlink()
        copies.append(Runner.resume(d).run())
    r1, r2 = copies
    assert r1.env_steps == r2.env_steps == 3000
    assert metrics_without_timing(r1.run_dir) == metrics_without_timing(r2.run_dir)
    assert r1.eval == r2.eval
    m1, m2 = (ckpt.load(r.checkpoint)["algo"]["model"] for r in copies)
    assert all(torch.equal(m1[k], m2[k]) for k in m1)
    # the rows logged before the checkpoint are kept as they were; none is duplicated
    rows = metrics_without_timing(r1.run_dir)
    full = metrics_without_timing(done)
    assert [r for r in rows if r["env_steps"] <= 1000] == [r for r in full if r["env_steps"] <= 1000]
    train_steps = [r["env_steps"] for r in rows if "train/episode_return" in r]
    assert train_steps == sorted(set(train_steps)) and train_steps[-1] == 3000


def test_resume_raises_the_budget_and_a_finished_run_is_not_redone(tiny):
    first = Runner(tiny("grow")).run()
    again = Runner.resume(first.run_dir).run()  # already complete: nothing is trained again
    assert again.env_steps == 2000 and again.eval == first.eval
    assert len(read_metrics(first.run_dir)) == len(read_metrics(again.run_dir))
    longer = Runner.resume(first.run_dir, steps=2400).run()
    assert longer.env_steps == 2400 and RunConfig.load(first.run_dir).experiment.steps == 2400
    assert longer.eval["env_steps"] == 2400


def test_checkpoint_contents_load_without_unpickling(tiny):
    result = Runner(tiny("ck")).run()
    state = ckpt.load(result.checkpoint)  # weights_only=True inside
    assert state["env_steps"] == 2000 and state["updates"] == 10
    assert set(state["rng"]) == {"torch", "numpy", "python"}
    assert state["source"]["env_rng"]["bit_generator"] == "PCG64"
    assert {"model", "optimizer", "generator"} <= set(state["algo"])
    # and a plain torch.load with weights_only=True works too: nothing but tensors and plain containers
    torch.load(result.checkpoint, weights_only=True)


def test_atomic_save_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "step_000000000001.pt"

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(ckpt.os, "replace", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        ckpt.save_atomic({"format": ckpt.FORMAT}, target)
    assert list(tmp_path.iterdir()) == []


def test_a_new_run_refuses_an_existing_named_directory(tiny):
    Runner(tiny("same", steps=200, eval_every=0, checkpoint_every=0)).run()
    with pytest.raises(FileExistsError, match="--resume"):
        Runner(tiny("same", steps=200))


def test_python_api(tmp_path):
    import marlkit

    result = marlkit.train(
        "ippo",
        "climbing-v0",
        steps=400,
        seed=1,
        out=str(tmp_path),
        name="api",
        progress=False,
        gif=False,
        eval_episodes=4,
        epochs=1,
        **{"env.num_envs": 4},
    )
    assert result.run_dir == tmp_path / "api" and result.env_steps == 400
    assert RunConfig.load(result.run_dir).algo.epochs == 1
    assert "eval/episode_return" in result.metrics
