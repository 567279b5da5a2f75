"""A real two-node Ray cluster on this machine: ``ray start --head --num-cpus 1`` and a second node joined with
``ray start --address``, both on 127.0.0.1; then ``marlkit train ... --ray-address auto --workers 2`` (one CPU per
worker, so one fits on each node) must find the cluster (through ``RAY_ADDRESS``, which the test sets for the run
only: the nodes keep their address file in a temp dir of their own) and place a worker on each node, read from the
workers' node ids (``perf/ray_nodes``). Without ``RAY_ADDRESS`` and a cluster started here, ``auto`` is a clear
error, never Ray's fallback of joining whatever Ray runs on the machine. The nodes are this test's own ``ray start --block`` processes, stopped by their process ids
(``ray stop`` would stop every Ray on the machine)."""

import csv
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

pytest.importorskip("ray")

#: Seconds each step may take (node start, join, training run).
STEP_LIMIT = 90


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env():
    src = os.path.join(os.path.dirname(__file__), "..", "..", "src")
    path = os.pathsep.join(p for p in (os.path.abspath(src), os.environ.get("PYTHONPATH")) if p)
    # RAY_AUTH_MODE=token: every process of the cluster (and the driver) reads the same token from ~/.ray.
    return {**os.environ, "PYTHONPATH": path, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token"}


def _node(args, log, temp_dir):
    # Its own temp dir: the cluster's address file is written there, not where every ray.init() on the machine
    # would find it (/tmp/ray/ray_current_cluster) after the nodes are gone.
    cmd = [os.path.join(os.path.dirname(sys.executable), "ray"), "start", "--block", "--num-cpus", "1"]
    cmd += ["--temp-dir", str(temp_dir)]
    cmd += ["--node-ip-address", "127.0.0.1", "--object-store-memory", str(100 * 1024**2), "--disable-usage-stats"]
    return subprocess.Popen(cmd + args, env=_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_for(predicate, what):
    deadline = time.monotonic() + STEP_LIMIT
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    raise TimeoutError(f"{what} within {STEP_LIMIT} s")


def _alive_nodes(address):
    out = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ray"), "status", "--address", address],
        env=_env(), capture_output=True, text=True, timeout=STEP_LIMIT,
    )  # fmt: skip
    active = out.stdout.split("Active:", 1)[-1].split("Pending:", 1)[0] if "Active:" in out.stdout else ""
    return sum(" node_" in line for line in active.splitlines())


def _stop(proc):
    if proc.poll() is None:
        proc.terminate()  # ray start --block stops the node's processes on SIGTERM
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def test_train_places_one_worker_on_each_of_two_nodes(tmp_path):
    port = _free_port()
    address = f"127.0.0.1:{port}"
    nodes = []
    with open(tmp_path / "nodes.log", "w") as log:
        try:
            temp_dir = f"/tmp/mkray{port}"  # short: Ray's socket paths must stay under 107 characters
            nodes.append(_node(["--head", "--port", str(port), "--include-dashboard=false"], log, temp_dir))
            _wait_for(lambda: _alive_nodes(address) == 1, "the head node did not start")
            nodes.append(_node(["--address", address], log, temp_dir))
            _wait_for(lambda: _alive_nodes(address) == 2, "the second node did not join")
            cmd = [sys.executable, "-m", "marlkit", "train", "mappo", "spread-v0", "--workers", "2"]
            cmd += ["--ray-address", "auto", "--steps", "400", "--num-envs", "8", "--no-progress"]
            cmd += [
                "--out",
                str(tmp_path),
                "--name",
                "two",
                "--set",
                "algo.rollout_steps=5",
                "experiment.worker_cpus=1",
            ]
            cmd += ["experiment.eval_episodes=8", "experiment.gif=false", "experiment.log_every=200"]
            env = {**_env(), "RAY_ADDRESS": address}
            run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=STEP_LIMIT)
            assert run.returncode == 0, run.stdout + run.stderr
        finally:
            for proc in reversed(nodes):
                _stop(proc)
            shutil.rmtree(f"/tmp/mkray{port}", ignore_errors=True)
    with open(tmp_path / "two" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert int(rows[-1]["env_steps"]) == 400
    assert {float(r["perf/ray_nodes"]) for r in rows if r["perf/ray_nodes"]} == {2.0}


def test_auto_without_a_cluster_is_a_clear_error(monkeypatch):
    import ray._private.utils

    from marlkit.core.config import ConfigError
    from marlkit.distributed.ray_source import auto_address

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(ray._private.utils, "read_ray_address", lambda temp_dir=None: None)
    with pytest.raises(ConfigError, match=r"ray_address = 'auto' connects to the cluster in RAY_ADDRESS .* neither"):
        auto_address()
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6390")
    assert auto_address() == "127.0.0.1:6390"
