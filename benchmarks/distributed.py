"""Scale-out on Ray: env-steps/s of collection and of end-to-end training, one process against 1 and 2 Ray rollout
workers, per mode, with the overheads (weight broadcast, batch transfer, per-update latency).

The transport and collection rows run in this process on one local Ray (2 CPUs, a 200 MB object store, usage
statistics off); the training rows run as ``marlkit train`` does (no Ray at all for one process, a local Ray
started by the run's own ``RaySource`` for the workers, with the defaults a user gets), all back to back:

Each Ray row names its ``ray_mode`` (``marlkit.distributed.ray_source``): ``pipelined`` (the on-policy default:
the workers collect the next batch while this process merges the last one or updates on it; policy lag 1),
``sync`` (collect, then update; lag 0) or ``async`` (the off-policy default: pipelined, one batch of every worker
per update).

* **transport** (``mode = transport``): one object-store round trip (``ray.put`` + ``ray.get``) of a worker's
  batch and of a policy state, as torch tensors against the NumPy arrays the workers send (``x_arrays``: how many
  times faster).
* **collection** (``mode = collect``), collection-bound on a slow env (``pz:simple_spread_v3``: mpe2's Python
  stepping through ``from_pettingzoo``): a ``Collector`` in this process against a ``RaySource`` of 1 and 2 workers,
  each worker stepping the same number of copies (``--copies``) with a fixed MAPPO policy; the floor is 2 workers
  ≥ 1.7× 1 worker. In sync mode ``batch_transfer_s`` is the mean wait for the workers' batches less a worker's own
  collection time (measured in this process); ``weights_s`` is the snapshot and ``ray.put`` of the weights per
  batch, ``merge_s`` joining the workers' arrays into the batch's tensors, ``cores_driver``/``cores_workers``/
  ``cores_ray_services`` the cores this process, the workers and Ray's own processes kept busy meanwhile, and
  ``cpu_s_per_kstep_*`` their CPU seconds per 1,000 env-steps (the cost of the work, which a loaded machine does
  not change the way it changes rates: 2 workers cost what 1 does per env-step when none of their time is wasted).
* **plain processes** (``mode = collect``, ``ray_mode = no-ray``): 1 and 2 processes running that collection
  side by side without Ray, the ceiling the machine itself gives two workers (on a shared or hyper-threaded
  machine two processes do not collect twice as fast as one).
* **training** (``mode = sync``: MAPPO on spread-v0, the README's main task; ``mode = async``: IQL on spread-v0
  with its preset): the same run config trained by the local ``Runner`` and with ``experiment.workers`` 1 and 2
  (the copies shared among the workers), timed over the training loop (``perf/env_steps_per_s`` of the runner:
  evaluation and checkpoints excluded); ``update_s`` is the wall time per update (collect + learn) and ``updates``
  their count (the same in every row of a mode: each batch holds every copy); ``collect_s`` and ``learn_s`` the
  seconds per update in ``source.collect()`` (for workers: waiting for their batches, publishing weights,
  merging) and in ``learner.update``; ``cores_*`` the cores the driver, the workers and Ray's own processes kept
  busy over the loop. The full run adds 2 workers of the default mode with ``experiment.pin_cores`` off
  (``<mode>/unpinned``). ``--repeats N`` runs the rows N times in turn and reports medians. The floor: sync
  ``--workers 2`` not slower than one process.

The load average before and after the run is stored with the records. Rates on a shared machine move with its
load; compare rows of one run, not across runs.

    python benchmarks/distributed.py [--quick] [--only collect|train] [--repeats N] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_json

COLUMNS = ["mode", "ray_mode", "env", "algo", "workers", "nodes", "env_steps", "env_steps_per_s", "x_single",
           "x_one_worker"]  # fmt: skip
OVERHEADS = ["weights_s", "batch_transfer_s", "wait_s", "merge_s", "update_s", "policy_lag", "cores_driver",
             "cores_workers", "cores_ray_services", "cpu_s_per_kstep_workers", "cpu_s_per_kstep_driver",
             "cpu_s_per_kstep_ray_services"]  # fmt: skip
#: The RaySource modes measured per benchmark mode (the first is the default the runner picks; --quick trains with
#: that one only).
RAY_MODES = {"collect": ("pipelined", "sync"), "sync": ("pipelined", "sync"), "async": ("async",)}


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
    records = [_record("collect", env_id, "mappo", 0, 1, batches * steps * copies, steps * copies / local_s, None)]
    for ray_mode in RAY_MODES["collect"]:
        for workers in (1, 2):
            source = RaySource(learner, env_id, copies * workers, workers, seed=0, mode=ray_mode)  # type: ignore[arg-type]
            try:
                source.collect()  # warm-up: the workers build their collectors
                per: dict[str, list[float]] = {"weights_s": [], "wait_s": [], "merge_s": []}
                cpu0 = _cpu_by_role()
                t0 = time.perf_counter()
                for _ in range(batches):
                    source.collect()
                    m = source.metrics()
                    for key, values in per.items():
                        values.append(m[f"perf/{key}"])
                wall = time.perf_counter() - t0
                cpu1 = _cpu_by_role()
            finally:
                source.close()
            rec = _record("collect", env_id, "mappo", workers, source.nodes, batches * source.steps_per_batch,
                          batches * source.steps_per_batch / wall, ray_mode)  # fmt: skip
            rec.update({key: float(np.mean(values)) for key, values in per.items()})
            # Cores each role kept busy over the timed batches (CPU seconds per wall second).
            rec.update({f"cores_{role}": (cpu1.get(role, 0.0) - cpu0.get(role, 0.0)) / wall for role in ROLES})
            # CPU seconds per 1,000 env-steps of each role: what the work costs, whatever share of the cores a
            # loaded machine leaves it (2 workers cost what 1 does per env-step when nothing of theirs is wasted)
            ksteps = batches * source.steps_per_batch / 1000
            rec.update({f"cpu_s_per_kstep_{role}": (cpu1.get(role, 0.0) - cpu0.get(role, 0.0)) / ksteps
                        for role in ROLES})  # fmt: skip
            if ray_mode == "sync":  # the wait is the workers' collection plus the transfer
                rec["batch_transfer_s"] = max(0.0, rec["wait_s"] - local_s)
            records.append(rec)
    return records


ROLES = ("driver", "workers", "ray_services")


def _cpu_by_role() -> dict[str, float]:
    """CPU seconds (user + system) so far of this process, of its Ray rollout workers and of Ray's own processes
    (raylet, GCS, dashboard and its agents, log monitor, idle workers): this process's descendants."""
    import psutil  # type: ignore[import-untyped]  # installed with ray[default]

    me = psutil.Process()
    out = {"driver": sum(me.cpu_times()[:2])}
    for child in me.children(recursive=True):
        try:
            role = "workers" if "RolloutWorker" in " ".join(child.cmdline()) else "ray_services"
            out[role] = out.get(role, 0.0) + sum(child.cpu_times()[:2])
        except psutil.Error:
            continue
    return out


def _plain_collector(env_id: str, copies: int, batches: int, barrier: Any, out: Any) -> None:
    """One process of ``plain_processes``: a Collector timed over ``batches`` batches once every process is ready."""
    import torch

    from marlkit.collect import Collector
    from marlkit.envs.registry import make

    torch.set_num_threads(1)
    learner = _ppo_learner(env_id, copies)
    collector = Collector(make(env_id, num_envs=copies, seed=1), learner.policy(seed=1),
                          learner.config.rollout_steps, seed=1, store_state=True)  # fmt: skip
    collector.collect()
    barrier.wait()
    t0 = time.perf_counter()
    for _ in range(batches):
        collector.collect()
    out.put((time.perf_counter() - t0, batches * collector.steps_per_batch))


def plain_processes(env_id: str, copies: int, batches: int) -> list[dict[str, Any]]:
    """The machine's own ceiling for the collection floor: 1 and 2 plain processes (no Ray, no driver) collecting
    side by side, as the workers do; the rate is their env-steps over the slowest one's wall time."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    records = []
    for procs in (1, 2):
        barrier, out = ctx.Barrier(procs), ctx.Queue()
        ps = [ctx.Process(target=_plain_collector, args=(env_id, copies, batches, barrier, out)) for _ in range(procs)]
        for p in ps:
            p.start()
        results = [out.get(timeout=600) for _ in ps]
        for p in ps:
            p.join()
        steps = sum(r[1] for r in results)
        records.append(_record("collect", env_id, "mappo", procs, 1, steps, steps / max(r[0] for r in results),
                               "no-ray"))  # fmt: skip
    return records


def training(
    mode: str, algo: str, env_id: str, steps: int, out: str, quick: bool = False, repeats: int = 1
) -> list[dict[str, Any]]:
    """End-to-end env-steps/s of one run config: the local runner, then 1 and 2 workers, each run as ``marlkit
    train`` does it (no Ray running for the local row; the workers' rows start a local Ray of their own), and, in
    the full run, 2 workers of the default mode without core pinning (``ray_mode`` ``<mode>/unpinned``). With
    ``repeats`` > 1 the rows are run that many times in turn (local, 1 worker, 2 workers, ..., local, ...), so
    that each row sees the same mix of a shared machine's load; a record's rate is the median of its repeats
    (``env_steps_per_s_runs``: each one) and its overheads those of the last."""
    from marlkit.experiment.run import make_run_config
    from marlkit.experiment.runner import Runner

    records = []
    ray_modes = RAY_MODES[mode][:1] if quick else RAY_MODES[mode]  # --quick: the default mode only
    runs = [(0, None, True)] + [(w, ray_mode, True) for ray_mode in ray_modes for w in (1, 2)]
    if not quick:
        runs.append((2, ray_modes[0], False))
    rates: dict[tuple[int, str | None, bool], list[float]] = {}
    last: dict[tuple[int, str | None, bool], dict[str, Any]] = {}
    for k, (workers, ray_mode, pin) in enumerate([run for _ in range(repeats) for run in runs]):
        cfg = make_run_config(
            algo, env_id, steps=steps, seed=0, workers=workers, out=out, name=f"{algo}_{k}",
            progress=False, gif=False, eval_every=0, checkpoint_every=0, eval_episodes=10, log_every=steps,
            ray_mode=ray_mode, pin_cores=pin,
        )  # fmt: skip
        keep = _Keep()
        rows, per_update = keep.rows, keep.updates
        runner = Runner(cfg, [keep], default_callbacks=False)
        nodes = getattr(runner.source, "nodes", 1)
        collect_s, learn_s = _timed(runner.source, "collect"), _timed(runner.learner, "update")
        t0 = time.perf_counter()
        result = runner.run()
        wall = time.perf_counter() - t0
        (t_start, cpu0), (t_end, cpu1) = keep.cpu[0], keep.cpu[-1]
        updates = runner.updates
        row = rows[-1]
        label = ray_mode if pin else f"{ray_mode}/unpinned"
        rec = _record(mode, env_id, algo, workers, nodes, result.env_steps, row["perf/env_steps_per_s"], label)
        rec["updates"] = updates
        rec["update_s"] = result.env_steps / row["perf/env_steps_per_s"] / updates
        rec["collect_s"], rec["learn_s"] = float(np.mean(collect_s)), float(np.mean(learn_s))
        rec["run_wall_s"] = wall
        # Cores each role kept busy over the training loop (CPU seconds per wall second)
        rec.update({f"cores_{role}": (cpu1.get(role, 0.0) - cpu0.get(role, 0.0)) / (t_end - t_start) for role in ROLES})
        rec["eval_return"] = result.eval_return
        if workers:
            for key in ("weights_s", "wait_s", "merge_s", "policy_lag"):
                rec[key] = float(np.mean([m[f"perf/{key}"] for m in per_update]))
        rates.setdefault((workers, ray_mode, pin), []).append(rec["env_steps_per_s"])
        last[(workers, ray_mode, pin)] = rec
    for key, rec in last.items():
        rec["env_steps_per_s_runs"] = rates[key]
        rec["env_steps_per_s"] = float(np.median(rates[key]))
        records.append(rec)
    return records


def _timed(obj: Any, method: str) -> list[float]:
    """Wrap ``obj.method`` to time each call; returns the list the seconds go to."""
    seconds: list[float] = []
    inner = getattr(obj, method)

    def timed(*args: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return inner(*args)
        finally:
            seconds.append(time.perf_counter() - t0)

    setattr(obj, method, timed)
    return seconds


class _Keep:
    """The training rows and every update's metrics of a run, and the CPU time of each role (``_cpu_by_role``) as
    the loop starts and at each log."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []
        self.updates: list[dict[str, float]] = []
        self.cpu: list[tuple[float, dict[str, float]]] = []

    def on_start(self, runner: Any) -> None:
        self.cpu.append((time.perf_counter(), _cpu_by_role()))

    def on_log(self, runner: Any, row: dict[str, float]) -> None:
        self.rows.append(row)
        self.cpu.append((time.perf_counter(), _cpu_by_role()))

    def on_update(self, runner: Any, metrics: dict[str, float]) -> None:
        self.updates.append(metrics)


def _record(
    mode: str, env: str, algo: str, workers: int, nodes: int, env_steps: int, rate: float, ray_mode: str | None
) -> dict[str, Any]:
    return {"mode": mode, "ray_mode": ray_mode, "env": env, "algo": algo, "workers": workers, "nodes": nodes,
            "env_steps": env_steps, "env_steps_per_s": rate}  # fmt: skip


def _ratios(records: list[dict[str, Any]]) -> None:
    """``x_single``: against the one-process row of the same benchmark mode; ``x_one_worker``: against 1 worker of
    the same benchmark and Ray mode."""
    rates = {(r["mode"], r["ray_mode"], r["workers"]): r["env_steps_per_s"] for r in records}
    for r in records:
        r["x_single"] = r["env_steps_per_s"] / rates[(r["mode"], None, 0)]
        one = rates.get((r["mode"], (r["ray_mode"] or "").split("/")[0], 1))
        r["x_one_worker"] = r["env_steps_per_s"] / one if r["workers"] and one else None


def transport(env_id: str, copies: int, repeats: int) -> list[dict[str, Any]]:
    """Seconds to put one worker's batch (``copies`` copies, ``rollout_steps`` steps) and one policy state into
    Ray's object store and get them back: as torch tensors (pickled) against NumPy arrays (raw buffers)."""
    import ray

    from marlkit.collect import Collector
    from marlkit.distributed.worker import from_arrays, pack_state, to_arrays, unpack_state
    from marlkit.envs.registry import make

    learner = _ppo_learner(env_id, copies)
    rollout, _ = Collector(make(env_id, num_envs=copies, seed=1), learner.policy(seed=1),
                           learner.config.rollout_steps, seed=1, store_state=True).collect()  # fmt: skip
    state = learner.policy().policy_state()
    cases = {
        "batch": (lambda: rollout, lambda: to_arrays(rollout), from_arrays),
        "weights": (lambda: state, lambda: pack_state(state), unpack_state),
    }
    records = []
    for what, (as_tensors, as_arrays, back) in cases.items():
        rec: dict[str, Any] = {"mode": "transport", "what": what, "env": env_id, "copies": copies}
        for form, make_obj, restore in (("tensors", as_tensors, lambda x: x), ("arrays", as_arrays, back)):
            for _ in range(3):  # warm-up
                restore(ray.get(ray.put(make_obj()), timeout=60))
            t0 = time.perf_counter()
            for _ in range(repeats):
                restore(ray.get(ray.put(make_obj()), timeout=60))
            rec[f"{form}_s"] = (time.perf_counter() - t0) / repeats
        rec["x_arrays"] = rec["tensors_s"] / rec["arrays_s"]
        records.append(rec)
    return records


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small budgets (under a minute)")
    p.add_argument("--json", metavar="PATH", help="write the records here")
    p.add_argument("--copies", type=int, default=8, help="copies per worker in the collection benchmark (default 8)")
    p.add_argument("--steps", type=int, default=None, help="env-steps per training run (default 200k; quick 16k)")
    p.add_argument("--repeats", type=int, default=1, help="run the training rows this many times in turn and "
                   "report each row's median rate (default 1)")  # fmt: skip
    p.add_argument("--only", choices=("collect", "train"), help="only the collection rows (with the plain-process "
                   "ceiling and the transport) or only the training rows")  # fmt: skip
    args = p.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray
    import torch

    torch.set_num_threads(1)
    load_before = list(os.getloadavg())
    steps = args.steps or (16_000 if args.quick else 200_000)
    records: list[dict[str, Any]] = []
    moved: list[dict[str, Any]] = []
    if args.only != "train":
        ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024**2,
                 _node_ip_address="127.0.0.1", log_to_driver=False)  # fmt: skip
        try:
            moved = transport("pz:simple_spread_v3", args.copies, 20 if args.quick else 200)
            records += collection("pz:simple_spread_v3", args.copies, 3 if args.quick else 20)
            records += plain_processes("pz:simple_spread_v3", args.copies, 3 if args.quick else 20)
        finally:
            ray.shutdown()
    if args.only != "collect":  # as `marlkit train` runs: no Ray in one process, a local Ray of the run's own
        with tempfile.TemporaryDirectory() as out:
            records += training("sync", "mappo", "spread-v0", steps, out, args.quick, args.repeats)
            records += training("async", "iql", "spread-v0", steps // 4 if args.quick else steps, out, args.quick,
                                args.repeats)  # fmt: skip
    _ratios(records)
    print_table("Ray rollout workers: env-steps/s (one process = workers 0)", records, COLUMNS)
    print_table("overheads (seconds per batch / update)", records, ["mode", "ray_mode", "workers", *OVERHEADS])
    print_table("training: seconds per update in collect() and learner.update, cores busy per role", [r for r in records if "learn_s" in r],
                ["mode", "ray_mode", "workers", "update_s", "collect_s", "learn_s", *[f"cores_{r}" for r in ROLES]])  # fmt: skip
    if moved:
        print_table("object store round trip (seconds)", moved, ["what", "copies", "tensors_s", "arrays_s", "x_arrays"])
    doc = write_json("distributed", records + moved, None, packages=("torch", "ray", "pettingzoo", "mpe2"))
    doc["load_avg"] = {"before": load_before, "after": list(os.getloadavg())}  # 1, 5, 15 min: the machine is shared
    doc["command"] = " ".join(["python", "benchmarks/distributed.py", *sys.argv[1:]])
    print(f"load average before {load_before}, after {doc['load_avg']['after']}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
