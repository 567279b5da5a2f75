"""Merge ``benchmarks/learning.py`` JSON files of one benchmark row that ran as several invocations (seed ranges).

    python benchmarks/merge_results.py OUT IN [IN ...] [--command "python benchmarks/learning.py ... --seeds 3 ..."]

Long rows are often run as ``--seeds 1 --seed0 0`` on one core and ``--seeds 2 --seed0 1`` on the other, or a seed is
added later. The merged document keeps the first input's metadata and config, the union of the records (one per
algorithm and seed: the first input that has it wins) and of the curves, and recomputes ``summary`` exactly as
``learning.py`` does. ``command`` becomes ``--command`` (the single invocation that would reproduce the whole row, as
the reproduction table expects) or, without it, the first input's; ``command_as_run`` lists every input's command and
``machines`` every input's machine, so nothing about how the numbers were made is lost. OUT may be one of the inputs.
Inputs must be the same row: the same env, env-steps per seed, ``--set`` overrides and preset settings (checked).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/ is not a package
from learning import SHOWN_METRICS, summary


def merge(docs: list[dict[str, Any]], command: str | None = None) -> dict[str, Any]:
    """One learning document from several of the same row."""
    if not docs:
        raise ValueError("nothing to merge")
    trained = [
        (r["env"], r["env_steps"], r.get("sets", ""), json.dumps(r.get("preset_settings", {}), sort_keys=True))
        for d in docs
        for r in d["records"]
        if r["algo"] != "random"
    ]
    if len(set(trained)) > 1:
        raise ValueError(
            f"inputs are not one row: (env, env_steps, sets, preset settings) differ: {sorted(set(trained))}"
        )
    records: dict[tuple[str, int], dict[str, Any]] = {}
    curves: dict[str, Any] = {}
    for d in docs:
        for r in d["records"]:
            records.setdefault((r["algo"], r["seed"]), r)
        for seed, curve in d.get("curves", {}).items():
            curves.setdefault(seed, curve)
    recs = sorted(records.values(), key=lambda r: (r["algo"] == "random", r["algo"], r["seed"]))
    metric_keys = [
        k for k in dict.fromkeys(k for r in recs for k in r) if k in SHOWN_METRICS or k.startswith("return/")
    ]
    out = dict(docs[0])
    out["records"] = recs
    out["curves"] = dict(sorted(curves.items(), key=lambda kv: int(kv[0])))
    out["summary"] = summary(recs, ["eval_return_mean", *metric_keys, "wall_s", "env_steps_per_s"])
    out["command_as_run"] = [c for d in docs for c in d.get("command_as_run", [d.get("command")])]
    out["machines"] = [m for d in docs for m in d.get("machines", [d.get("machine")])]
    if command:
        out["command"] = command
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="the merged JSON to write (may be one of the inputs)")
    p.add_argument("inputs", nargs="+", help="learning.py JSON files of the same row")
    p.add_argument("--command", help="the one learning.py command that reproduces the merged row")
    args = p.parse_args(argv)
    doc = merge([json.loads(Path(f).read_text()) for f in args.inputs], args.command)
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    for algo, stats in doc["summary"].items():
        r = stats["eval_return_mean"]
        print(f"{algo}: {r['mean']:.3f} ± {r['std']:.3f} over {r['seeds']} seeds")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
