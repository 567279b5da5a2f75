"""Scale-out on Ray: env-steps/s of collection and of end-to-end training, one process against 1 and 2 Ray rollout
workers, per mode, with the overheads (weight broadcast, batch transfer, per-update latency).

Everything runs in one process on one local Ray (2 CPUs, a 200 MB object store, usage statistics off), measured
back to back under the same load:

* **collection** (``mode = collect``), collection-bound on a slow env (``pz:simple_spread_v3``: mpe2's Python
  stepping through ``from_pettingzoo``): a ``Collector`` in this process against a ``RaySource`` of 1 and 2 workers,
  each worker stepping the same number of copies (``--copies``) with a fixed MAPPO policy; the floor is 2 workers
  ≥ 1.7× 1 worker. ``batch_transfer_s`` is the mean wait for the workers' batches less a worker's own collection
  time (measured in this process), ``weights_s`` the snapshot and ``ray.put`` of the weights per batch.
* **training** (``mode = sync``: MAPPO on spread-v0, the README's main task; ``mode = async``: IQL on spread-v0
  with its preset): the same run config trained by the local ``Runner`` and with ``experiment.workers`` 1 and 2
  (the copies shared among the workers), timed over the training loop (``perf/env_steps_per_s`` of the runner:
  evaluation and checkpoints excluded); ``update_s`` is the wall time per update (collect + learn). The floor:
  sync ``--workers 2`` not slower than one process.

Rates on a shared machine move with its load; compare rows of one run, not across runs.

    python benchmarks/distributed.py [--quick] [--json benchmarks/results/distributed.json]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_json

COLUMNS = ["mode", "env", "algo", "workers", "nodes", "env_steps", "env_steps_per_s", "x_single", "x_one_worker"]
OVERHEADS = ["weights_s", "batch_transfer_s", "wait_s", "update_s", "policy_lag"]


def _ppo_learner(env_id: str, copies: int) -> Any:
    from marlkit.algorithms.ppo import PPO, PPOConfig
    from marlkit.envs.registry import make

    env = make(env_id, num_envs=copies, seed=0)
    return PPO(env, PPOConfig(centralised_critic=True), seed=0)


def collection(env_id: str, copies: int, batches: int) -> list[dict[str, Any]]:
    """Env-steps/s of collection: this process, then 1 and 2 workers of ``copies`` copies each."""
    from marlkit.collect import Collector
    from marlkit.distributed import RaySource
    from marlkit.envs.registry import make

    learner = _ppo_learner(env_id, copies)
    steps = learner.config.rollout_steps
    collector = Collector(
        make(env_id, num_envs=copies, seed=1), learner.policy(seed=1), steps, seed=1, store_state=True
    )
    collector.collect()  # warm-up
    t0 = time.perf_counter()
    for _ in range(batches):
        collector.collect()
    local_s = (time.perf_counter() - t0) / batches
    records = [_record("collect", env_id, "mappo", 0, 1, batches * steps * copies, steps * copies / local_s)]
    for workers in (1, 2):
        source = RaySource(learner, env_id, copies * workers, workers, seed=0)
        try:
            source.collect()  # warm-up: the workers build their collectors
            waits, puts = [], []
            t0 = time.perf_counter()
            for _ in range(batches):
                source.collect()
                m = source.metrics()
                waits.append(m["perf/wait_s"])
                puts.append(m["perf/weights_s"])
            wall = time.perf_counter() - t0
        finally:
            source.close()
        rec = _record("collect", env_id, "mappo", workers, source.nodes, batches * source.steps_per_batch,
                      batches * source.steps_per_batch / wall)  # fmt: skip
        rec.update(weights_s=float(np.mean(puts)), wait_s=float(np.mean(waits)))
        rec["batch_transfer_s"] = max(0.0, rec["wait_s"] - local_s)
        records.append(rec)
    return records


def training(mode: str, algo: str, env_id: str, steps: int, out: str) -> list[dict[str, Any]]:
    """End-to-end env-steps/s of one run config: the local runner, then 1 and 2 workers."""
    from marlkit.experiment.run import make_run_config
    from marlkit.experiment.runner import Runner

    records = []
    for workers in (0, 1, 2):
        cfg = make_run_config(
            algo, env_id, steps=steps, seed=0, workers=workers, out=out, name=f"{algo}_w{workers}",
            progress=False, gif=False, eval_every=0, checkpoint_every=0, eval_episodes=10, log_every=steps,
        )  # fmt: skip
        keep = _Keep()
        rows, per_update = keep.rows, keep.updates
        runner = Runner(cfg, [keep], default_callbacks=False)
        nodes = getattr(runner.source, "nodes", 1)
        t0 = time.perf_counter()
        result = runner.run()
        updates = runner.updates
        row = rows[-1]
        rec = _record(mode, env_id, algo, workers, nodes, result.env_steps, row["perf/env_steps_per_s"])
        rec["update_s"] = result.env_steps / row["perf/env_steps_per_s"] / updates
        rec["run_wall_s"] = time.perf_counter() - t0
        rec["eval_return"] = result.eval_return
        if workers:
            for key in ("weights_s", "wait_s", "policy_lag"):
                rec[key] = float(np.mean([m[f"perf/{key}"] for m in per_update]))
        records.append(rec)
    return records


class _Keep:
    """The training rows and every update's metrics of a run."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []
        self.updates: list[dict[str, float]] = []

    def on_log(self, runner: Any, row: dict[str, float]) -> None:
        self.rows.append(row)

    def on_update(self, runner: Any, metrics: dict[str, float]) -> None:
        self.updates.append(metrics)


def _record(mode: str, env: str, algo: str, workers: int, nodes: int, env_steps: int, rate: float) -> dict[str, Any]:
    return {"mode": mode, "env": env, "algo": algo, "workers": workers, "nodes": nodes, "env_steps": env_steps,
            "env_steps_per_s": rate}  # fmt: skip


def _ratios(records: list[dict[str, Any]]) -> None:
    by_mode: dict[str, dict[int, float]] = {}
    for r in records:
        by_mode.setdefault(r["mode"], {})[r["workers"]] = r["env_steps_per_s"]
    for r in records:
        rates = by_mode[r["mode"]]
        r["x_single"] = r["env_steps_per_s"] / rates[0]
        r["x_one_worker"] = r["env_steps_per_s"] / rates[1] if r["workers"] else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small budgets (under a minute)")
    p.add_argument("--json", metavar="PATH", help="write the records here")
    p.add_argument("--copies", type=int, default=8, help="copies per worker in the collection benchmark (default 8)")
    p.add_argument("--steps", type=int, default=None, help="env-steps per training run (default 200k; quick 16k)")
    args = p.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray
    import torch

    torch.set_num_threads(1)
    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024**2, _node_ip_address="127.0.0.1",
             log_to_driver=False)  # fmt: skip
    steps = args.steps or (16_000 if args.quick else 200_000)
    records: list[dict[str, Any]] = []
    try:
        records += collection("pz:simple_spread_v3", args.copies, 3 if args.quick else 20)
        with tempfile.TemporaryDirectory() as out:
            records += training("sync", "mappo", "spread-v0", steps, out)
            records += training("async", "iql", "spread-v0", steps // 4 if args.quick else steps, out)
    finally:
        ray.shutdown()
    _ratios(records)
    print_table("Ray rollout workers: env-steps/s (one process = workers 0)", records, COLUMNS)
    print_table("overheads (seconds per batch / update)", records, ["mode", "workers", *OVERHEADS])
    write_json("distributed", records, args.json, packages=("torch", "ray", "pettingzoo", "mpe2"))


if __name__ == "__main__":
    main()
