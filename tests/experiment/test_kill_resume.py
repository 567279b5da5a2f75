"""A real training process is SIGKILLed mid-run and mid-checkpoint-write; the resumed run finishes, nothing is torn."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from marlkit.core import checkpoint as ckpt
from marlkit.experiment.logging import read_metrics
from marlkit.experiment.runner import Runner

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")


def start(args, **env):
    cmd = [sys.executable, "-m", "marlkit", "train", *args]
    return subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", **env},
    )


def wait_for(proc, condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if proc.poll() is not None:
            raise AssertionError(f"training exited early ({proc.returncode}):\n{proc.stdout.read()}")
        time.sleep(0.01)
    proc.kill()
    raise AssertionError(f"timed out:\n{proc.stdout.read()}")


def kill(proc):
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    proc.stdout.close()


def all_checkpoints_load(folder: Path) -> list[int]:
    found = ckpt.list_checkpoints(folder)
    for steps, path in found:
        assert ckpt.load(path)["env_steps"] == steps
    return [s for s, _ in found]


def test_killed_mid_run_and_mid_checkpoint_write_then_resumed(tmp_path):
    run = tmp_path / "killed"
    folder = run / "checkpoints"
    proc = start(
        [
            "ippo",
            "climbing-v0",
            "--steps",
            "10000",
            "--num-envs",
            "8",
            "--out",
            str(tmp_path),
            "--name",
            "killed",
            "--no-progress",
            "--set",
            "experiment.checkpoint_every=1000",
            "experiment.log_every=400",
            "experiment.eval_every=0",
            "experiment.eval_episodes=8",
            "experiment.gif=false",
            "algo.epochs=2",
        ]
    )
    # 1. SIGKILL in the middle of training, once two checkpoints exist
    wait_for(proc, lambda: len(ckpt.list_checkpoints(folder)) >= 2)
    kill(proc)
    first = all_checkpoints_load(folder)
    assert first and max(first) < 10000 and not (run / "eval.json").exists()

    # 2. resume, and SIGKILL it while it writes its first checkpoint (the temp file is there, not yet renamed)
    proc = start(["--resume", str(run)], MARLKIT_TEST_CHECKPOINT_SLEEP="60")
    wait_for(proc, lambda: any(p.name.startswith(".tmp-") for p in folder.iterdir()))
    kill(proc)
    assert any(p.name.startswith(".tmp-") for p in folder.iterdir())
    assert all_checkpoints_load(folder) == first  # the interrupted write left the complete set untouched

    # 3. resume again (in this process) and finish
    result = Runner.resume(run).run()
    assert result.env_steps == 10000 and (run / "eval.json").exists()
    assert not any(p.name.startswith(".tmp-") for p in folder.iterdir())
    steps = all_checkpoints_load(folder)
    assert steps == sorted(set(steps)) and steps[-1] == 10000 and set(first) <= set(steps)
    logged = [r["env_steps"] for r in read_metrics(run) if "train/episode_return" in r]
    assert logged == sorted(set(logged)) and logged[-1] == 10000  # no duplicated or orphaned rows

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run))
    events.Reload()  # the events of the lost stretches are purged on resume
    assert [e.step for e in events.Scalars("train/episode_return")] == logged
