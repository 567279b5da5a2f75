"""Do the shipped presets give a user the reproduction table's learners? Train with plain ``marlkit train``.

    python benchmarks/presets_check.py                 # every check below, one after another
    python benchmarks/presets_check.py --only qmix     # one algorithm

Each check runs ``marlkit train ALGO ENV --steps STEPS --seed 0`` exactly as a newcomer would — no ``--set`` of the
learner's settings, so every hyper-parameter comes from the tuned preset — and compares the run's final greedy
evaluation (``eval.json``, the runner's default ``experiment.eval_episodes``) with the table row's JSON in
``benchmarks/results/``: its mean and sample std over seeds, its range, and its own seed-0 record. A check passes
when the return lies within the row's mean ± 2 std. A ``--set`` appears only where the row's *task* differs from
the env's default (MADDPG's row is the continuous-action spread); that is the task, not a learner setting.
Results go to ``benchmarks/results/presets_check.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import print_table, write_json

RESULTS = Path(__file__).parent / "results"


@dataclass(frozen=True)
class Check:
    algo: str
    env: str
    table_json: str
    steps: int = 2_000_000
    task: tuple[str, ...] = ()
    """``--set`` strings that choose the row's task (never a learner setting)."""


CHECKS = (
    Check("mappo", "spread-v0", "learning_mappo_spread.json"),
    Check("iql", "spread-v0", "learning_iql_spread.json"),
    Check("qmix", "spread-v0", "learning_qmix_spread.json"),
    Check("maddpg", "spread-v0", "learning_maddpg_spread.json", task=("env.kwargs.continuous_actions=true",)),
)


def table_row(check: Check) -> dict[str, float]:
    doc = json.loads((RESULTS / check.table_json).read_text())
    returns = {r["seed"]: r["eval_return_mean"] for r in doc["records"] if r["algo"] == check.algo}
    summary = doc["summary"][check.algo]["eval_return_mean"]
    return {
        "table_mean": summary["mean"],
        "table_std": summary["std"],
        "table_seeds": summary["seeds"],
        "table_min": min(returns.values()),
        "table_max": max(returns.values()),
        "table_seed0": returns.get(0),
    }


def run(check: Check, out: Path) -> dict[str, object]:
    name = f"{check.algo}_{check.env}"
    argv = [
        sys.executable,
        "-m",
        "marlkit",
        "train",
        check.algo,
        check.env,
        "--steps",
        str(check.steps),
        "--seed",
        "0",
        "--out",
        str(out),
        "--name",
        name,
        "--no-progress",
    ]
    for s in check.task:
        argv += ["--set", s]
    shown = " ".join(
        [
            "marlkit train",
            check.algo,
            check.env,
            "--steps",
            str(check.steps),
            "--seed",
            "0",
            *(f"--set {s}" for s in check.task),
        ]
    )
    start = time.perf_counter()
    subprocess.run(argv, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    report = json.loads((out / name / "eval.json").read_text())
    config = (out / name / "config.yaml").read_text()
    preset = next((line.split(":", 1)[1].strip() for line in config.splitlines() if line.startswith("preset:")), None)
    ours = report["episode_return"]["mean"]
    row = table_row(check)
    lo, hi = row["table_mean"] - 2 * row["table_std"], row["table_mean"] + 2 * row["table_std"]
    return {
        "algo": check.algo,
        "env": check.env,
        "steps": check.steps,
        "seed": 0,
        "preset": preset,
        "command": shown,
        "eval_return_mean": ours,
        "eval_episodes": report["episodes"],
        **row,
        "within_2std": bool(lo <= ours <= hi),
        "wall_s": wall,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="run only this algorithm's check")
    parser.add_argument("--json", default=str(RESULTS / "presets_check.json"))
    args = parser.parse_args()
    checks = [c for c in CHECKS if args.only in (None, c.algo)]
    if not checks:
        parser.error(f"--only {args.only!r}: no check for it (checks: {', '.join(c.algo for c in CHECKS)})")
    records = []
    with tempfile.TemporaryDirectory(prefix="marlkit-presets-") as tmp:
        for check in checks:
            records.append(run(check, Path(tmp)))
            print(
                f"{check.algo} on {check.env}: {records[-1]['eval_return_mean']:.2f} (table "
                f"{records[-1]['table_mean']:.2f} ± {records[-1]['table_std']:.2f})",
                flush=True,
            )
    print_table(
        "marlkit train with the shipped presets vs the reproduction table",
        records,
        [
            "algo",
            "env",
            "preset",
            "eval_return_mean",
            "table_mean",
            "table_std",
            "table_min",
            "table_max",
            "table_seed0",
            "within_2std",
            "wall_s",
        ],
    )
    write_json("presets_check", records, args.json)
    return 0 if all(r["within_2std"] for r in records) else 1


if __name__ == "__main__":
    raise SystemExit(main())
