"""Learning benchmark: train an algorithm on an env for K seeds, evaluate each final policy greedily, and compare
with a random policy.

    python benchmarks/learning.py --algo mappo --env pursuit-v0 --steps 2000000 --seeds 3 \
        --json benchmarks/results/learning_mappo_pursuit.json

Every seed is a normal ``marlkit`` run (``experiment.seed = seed0 + k``; its run directory under ``--out``), trained
through the same runner as ``marlkit train`` and evaluated by the runner's final greedy evaluation (``--episodes``
episodes on the evaluation env, seeded from the run's seed). A uniformly random policy is evaluated on exactly the
same evaluation episodes (same env, copies and reset seed) and recorded as ``algo = "random"``.

``--config FILE`` starts from a run config YAML (``--algo``/``--env`` may then be left out), e.g. a ``teams`` run
(``--config examples/configs/tag_maddpg_vs_random.yaml``: MADDPG predators against a random prey); the random
baseline then plays every group at random.

Each seed starts from the learner's tuned preset for the env (``src/marlkit/experiment/presets/``), as ``marlkit
train`` does; ``--num-envs`` and ``--set`` override it, ``--preset none`` gives the code defaults and ``--preset
NAME|FILE`` another preset.

``--env pz:simple_spread_v3`` trains on mpe2's own ``simple_spread_v3.parallel_env()`` through
``marlkit.envs.from_pettingzoo`` (``--num-envs`` Python copies); any ``pz:MODULE`` works the same way.

Records (one per seed and algorithm, flat): ``algo, env, seed, env_steps, eval_return_mean`` (mean per-agent
episode return, the MPE convention), ``eval_return_std`` (over episodes), ``eval_episodes``, ``wall_s`` (training,
periodic evaluations included, the final one not), ``env_steps_per_s`` (``env_steps / wall_s``), the env's task
metrics averaged per episode (``capture_rate``, ``collisions_per_episode``, ``occupied_landmarks``, ``catches``,
...), every group's mean return (``return/<group>``) on envs with several groups,
``num_envs``, the ``--set`` overrides, the tuned ``preset`` applied and its ``preset_settings``, and the machine's
load while training: ``load_avg_1min`` (sampled at every log and evaluation) and ``cpu_per_wall`` (this process's
CPU time over wall time; well below 1 means it waited for a core, so wall times compare only at similar load). The
document also holds ``command``, ``summary`` (per algorithm and key: mean and sample std across seeds), the
resolved ``config`` of the first seed and every seed's evaluation ``curves`` (env-steps, greedy return and task
metrics at every periodic evaluation).
Runs go one after another unless ``--parallel 2``; every process uses one torch thread.

``--from-run RUN_DIR [RUN_DIR ...]`` writes the same document from finished ``marlkit train`` runs instead of
training (their ``config.yaml``, ``eval.json`` and the evaluation rows of ``metrics.csv``): a row too long for one
sitting is trained as a normal checkpointed, resumable run, then recorded here. No random baseline is evaluated.

    marlkit train happo mamujoco-halfcheetah-2x3-v0 --steps 5000000 --seed 0 --set env.kwargs.agent_obsk=0 \
        experiment.checkpoint_every=250000 experiment.eval_every=500000 experiment.eval_episodes=10 --name hc_s0
    python benchmarks/learning.py --from-run runs/hc_s0 --json benchmarks/results/learning_happo_...json \
        --trained-by "marlkit train happo ..."   # recorded as the document's command
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch is imported; every run also sets one torch thread
sys.path.insert(0, str(Path(__file__).parent))
from _common import print_table, write_json

#: Task metrics (``info["episode_metrics"]``, per episode) under the names the records use; others keep their name.
METRIC_NAMES = {"capture": "capture_rate", "collisions": "collisions_per_episode"}
#: Task metrics printed in the table (all are recorded in the JSON).
SHOWN_METRICS = ("capture_rate", "collisions_per_episode", "occupied_landmarks", "catches")


class RandomPolicy:
    """Uniformly random valid actions (the collector's ``Policy`` protocol), from its own seeded generator."""

    uses_state = False

    def __init__(self, env: Any, seed: int) -> None:
        self.env, self.rng = env, np.random.default_rng(seed)
        self.extras_spec: dict[str, dict[str, tuple[int, ...]]] = {}

    def act(self, obs: dict, state: Any, info: dict, explore: bool = True) -> tuple[dict, dict]:
        from marlkit.envs import sample_actions

        return sample_actions(self.env, info.get("action_mask"), self.rng), {}


class CurveRecorder:
    """Runner callback keeping every periodic evaluation (``env_steps`` and the ``eval/`` keys) and the load average."""

    def __init__(self) -> None:
        self.points: list[dict[str, float]] = []
        self.load: list[float] = []

    def on_log(self, runner: Any, row: dict[str, float]) -> None:
        self.load.append(os.getloadavg()[0])

    def on_eval(self, runner: Any, results: dict[str, float]) -> None:
        self.load.append(os.getloadavg()[0])
        self.points.append({"env_steps": runner.env_steps, **{k.removeprefix("eval/"): v for k, v in results.items()}})


def _record(algo: str, env: str, seed: int, env_steps: int, report: dict[str, Any]) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "algo": algo,
        "env": env,
        "seed": seed,
        "env_steps": env_steps,
        "eval_return_mean": report["episode_return"]["mean"],
        "eval_return_std": report["episode_return"]["std"],
        "eval_episodes": report["episodes"],
        "eval_length_mean": report["episode_length"]["mean"],
    }
    for k, v in report["metrics"].items():
        rec[METRIC_NAMES.get(k, k)] = v["mean"]
    if len(report["group_return"]) > 1:  # opposed groups (tag-v0): each one's return
        for g, v in report["group_return"].items():
            rec[f"return/{g}"] = v["mean"]
    return rec


def run_seed(args: argparse.Namespace, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, float]], dict]:
    """Train one seed and evaluate it and the random policy on the same episodes; returns records, curve, config."""
    import torch

    torch.set_num_threads(1)
    from marlkit.collect import evaluate
    from marlkit.experiment.presets import select
    from marlkit.experiment.run import make_run_config
    from marlkit.experiment.runner import Runner, derive_seeds, eval_num_envs, eval_report, make_env

    fields = dict(
        steps=args.steps,
        seed=seed,
        num_envs=args.num_envs,
        eval_episodes=args.episodes,
        eval_every=args.eval_every if args.eval_every is not None else max(args.steps // 10, 1),
        log_every=max(args.steps // 20, 1),
        checkpoint_every=0,
        gif=False,
        progress=args.progress,
        torch_threads=1,
        out=args.out,
    )
    cfg = make_run_config(args.algo, args.env, args.config, sets=args.set, preset=args.preset, **fields)
    preset = select(cfg.preset, cfg.algorithm, cfg.env.id)
    curve = CurveRecorder()
    start, cpu = time.perf_counter(), time.process_time()
    runner = Runner(cfg, callbacks=[curve])
    result = runner.run()
    total, cpu = time.perf_counter() - start, time.process_time() - cpu
    train_s = float(result.metrics.get("perf/wall_s", total))
    rec = _record(cfg.algorithm, cfg.env.id, seed, result.env_steps, result.eval)
    rec.update(
        wall_s=train_s,
        env_steps_per_s=result.env_steps / train_s,
        total_wall_s=total,
        cpu_per_wall=cpu / total,
        load_avg_1min=float(np.mean(curve.load)) if curve.load else None,
        num_envs=cfg.env.num_envs,
        sets=" ".join(args.set),
        preset=cfg.preset,
        preset_settings=preset.settings() if preset else {},
        run_dir=str(result.run_dir),
    )
    records = [rec]
    if not args.no_random:  # the same evaluation env, copies and reset seed as the runner's final evaluation
        env = make_env(cfg, eval_num_envs(cfg))
        eval_seed = derive_seeds(seed)["eval"]
        stats = evaluate(env, RandomPolicy(env, seed), cfg.experiment.eval_episodes, seed=eval_seed)
        records.append(_record("random", cfg.env.id, seed, 0, eval_report(env, stats, 0, eval_seed)))
    return records, curve.points, cfg.to_dict()


def from_run(run_dir: Path) -> tuple[list[dict[str, Any]], list[dict[str, float]], dict]:
    """The record, evaluation curve and config of a finished ``marlkit train`` run directory."""
    import csv
    import json

    from marlkit.experiment.run import RunConfig

    cfg = RunConfig.load(run_dir / "config.yaml")
    report = json.loads((run_dir / "eval.json").read_text())
    curve, wall_s = [], None
    with open(run_dir / "metrics.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row.get("perf/wall_s"):
                wall_s = float(row["perf/wall_s"])
            if row.get("eval/episode_return"):
                evals = {k.removeprefix("eval/"): float(v) for k, v in row.items() if k.startswith("eval/") and v}
                curve.append({"env_steps": int(row["env_steps"]), **evals})
    if wall_s is None:
        raise SystemExit(f"{run_dir / 'metrics.csv'} has no perf/wall_s: is {run_dir} a finished training run?")
    rec = _record(cfg.algorithm, cfg.env.id, cfg.experiment.seed, report["env_steps"], report)
    rec.update(wall_s=wall_s, env_steps_per_s=report["env_steps"] / wall_s, num_envs=cfg.env.num_envs,
               preset=cfg.preset, run_dir=str(run_dir))  # fmt: skip
    return [rec], curve, cfg.to_dict()


def _work(item: tuple[argparse.Namespace, int]):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    return run_seed(*item)


def summary(records: list[dict[str, Any]], keys: list[str]) -> dict[str, dict[str, dict[str, float]]]:
    """Per algorithm and key: mean and sample standard deviation (ddof=1; 0 for one seed) across seeds."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for algo in dict.fromkeys(r["algo"] for r in records):
        rs = [r for r in records if r["algo"] == algo]
        out[algo] = {}
        for k in keys:
            v = [r[k] for r in rs if r.get(k) is not None]
            if v:
                out[algo][k] = {
                    "mean": float(np.mean(v)),
                    "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
                    "seeds": len(v),
                }
    return out


def summary_rows(stats: dict[str, dict[str, dict[str, float]]]) -> list[dict[str, Any]]:
    """The summary as printable table rows (``mean ± std``)."""
    rows = []
    for algo, by_key in stats.items():
        n = max((v["seeds"] for v in by_key.values()), default=0)
        rows.append(
            {
                "algo": algo,
                "seed": f"mean ± std ({n})",
                **{k: f"{_num(v['mean'])} ± {_num(v['std'])}" for k, v in by_key.items()},
            }
        )
    return rows


def _num(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0].replace("\n", " "), formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--algo", help="registered algorithm (marlkit algos), e.g. mappo")
    p.add_argument("--env", help="registered env id (marlkit envs) or pz:MODULE, e.g. pz:simple_spread_v3")
    p.add_argument("--config", metavar="FILE", help="a run config YAML to start from (then --algo/--env optional)")
    p.add_argument("--steps", type=int, help="env-steps of training per seed")
    p.add_argument("--from-run", nargs="+", type=Path, metavar="RUN_DIR", help="record finished marlkit train runs")
    p.add_argument("--trained-by", metavar="CMD", help="--from-run: the command that trained the runs (recorded)")
    p.add_argument("--seeds", type=int, default=3, help="number of seeds (default 3)")
    p.add_argument("--seed0", type=int, default=0, help="first seed; seeds are seed0 .. seed0+K-1 (default 0)")
    p.add_argument("--num-envs", type=int, default=None, help="copies stepped at once while training")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override, e.g. algo.lr=3e-4 (repeatable)",
    )
    p.add_argument(
        "--preset",
        default="auto",
        metavar="NAME|FILE",
        help="tuned preset beneath --num-envs and --set: auto (default: the shipped one of the algorithm "
        "for the env), none (the code defaults), a task with shipped presets, or a YAML file",
    )
    p.add_argument("--episodes", type=int, default=200, help="greedy evaluation episodes per seed (default 200)")
    p.add_argument("--eval-every", type=int, default=None, help="periodic evaluation (default steps/10; 0 = none)")
    p.add_argument("--parallel", type=int, default=1, choices=(1, 2), help="seeds trained at once (default 1)")
    p.add_argument("--no-random", action="store_true", help="skip the random-policy baseline")
    p.add_argument("--out", default="runs/learning", help="folder of the run directories (default runs/learning)")
    p.add_argument("--progress", action="store_true", help="live progress bar on a terminal")
    p.add_argument("--json", help="write the records here")
    args = p.parse_args(argv)
    if args.from_run:
        return record_runs(args)
    if args.steps is None:
        p.error("give --steps (or --from-run RUN_DIR)")
    if args.config is None and (args.algo is None or args.env is None):
        p.error("give --algo and --env, or --config FILE")
    if args.episodes < 200:
        print(f"note: {args.episodes} evaluation episodes (the benchmark's standard is >= 200)", file=sys.stderr)

    seeds = list(range(args.seed0, args.seed0 + args.seeds))
    start = time.perf_counter()
    if args.parallel > 1 and len(seeds) > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(args.parallel) as pool:
            results = pool.map(_work, [(args, s) for s in seeds])
    else:
        results = [run_seed(args, s) for s in seeds]
    elapsed = time.perf_counter() - start

    records = [r for recs, _, _ in results for r in recs]
    records.sort(key=lambda r: (r["algo"] == "random", r["seed"]))
    metric_keys = [
        k for k in dict.fromkeys(k for r in records for k in r) if k in SHOWN_METRICS or k.startswith("return/")
    ]
    keys = ["eval_return_mean", *metric_keys, "wall_s", "env_steps_per_s"]
    columns = ["algo", "seed", "env_steps", *keys]
    stats = summary(records, keys)
    what = f"{args.algo or records[0]['algo']} on {args.env or records[0]['env']}"
    if args.config:
        what += f" ({args.config})"
    print_table(
        f"{what}: {args.steps:,} env-steps, {args.episodes} greedy eval episodes per seed (total {elapsed:,.0f} s)",
        records + summary_rows(stats),
        columns,
    )

    if args.json:
        import json

        doc = write_json("learning", records, None, packages=("torch", "pettingzoo", "mpe2"))
        doc["command"] = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])])
        doc["summary"] = stats
        doc["config"] = results[0][2]
        doc["curves"] = {str(s): curve for s, (_, curve, _) in zip(seeds, results)}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def record_runs(args: argparse.Namespace) -> int:
    """``--from-run``: the document of finished runs, written as ``main`` writes a trained one."""
    import json

    for d in args.from_run:
        missing = [f for f in ("config.yaml", "eval.json", "metrics.csv") if not (d / f).is_file()]
        if missing:
            raise SystemExit(
                f"--from-run {d}: no {', '.join(missing)} there (a finished marlkit train run has all three)"
            )
    results = [from_run(d) for d in args.from_run]
    records = [r for recs, _, _ in results for r in recs]
    keys = ["eval_return_mean", "wall_s", "env_steps_per_s"]
    stats = summary(records, keys)
    print_table(f"{len(records)} finished runs", records + summary_rows(stats), ["algo", "seed", "env_steps", *keys])
    if args.json:
        doc = write_json("learning", records, None, packages=("torch", "pettingzoo", "mpe2"))
        recorded_by = "python " + " ".join(shlex.quote(a) for a in sys.argv)
        doc["command"] = args.trained_by or recorded_by
        doc["recorded_by"] = recorded_by
        doc["summary"] = stats
        doc["config"] = results[0][2]
        doc["curves"] = {str(r[0][0]["seed"]): r[1] for r in results}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
