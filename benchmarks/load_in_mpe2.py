"""A trained team loaded with ``marlkit.load`` plays mpe2's own ``simple_spread_v3`` as it played ``spread-v0``.

    python benchmarks/load_in_mpe2.py                      # train MAPPO 2M env-steps (seed 0), then play
    python benchmarks/load_in_mpe2.py --run runs/<run>     # play an existing spread-v0 run

Trains with plain ``marlkit train mappo spread-v0 --steps STEPS --seed 0`` (the shipped preset), then plays
``--episodes`` episodes of mpe2's ``simple_spread_v3.parallel_env()`` with the weights-only policy
(``examples/play_in_mpe2.py``: ``policy.act_pettingzoo``) and compares the mean per-agent return with the run's
``eval.json``. Writes ``benchmarks/results/load_in_mpe2.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
from _common import print_table, write_json
from play_in_mpe2 import play

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="a spread-v0 run directory to play (default: train one)")
    parser.add_argument("--steps", type=int, default=2_000_000)
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "load_in_mpe2.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="marlkit-load-") as tmp:
        run = Path(args.run) if args.run else Path(tmp) / "mappo"
        if not args.run:
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "marlkit",
                    "train",
                    "mappo",
                    "spread-v0",
                    "--steps",
                    str(args.steps),
                    "--seed",
                    "0",
                    "--out",
                    tmp,
                    "--name",
                    "mappo",
                    "--no-progress",
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        report = json.loads((run / "eval.json").read_text())
        returns = play(str(run), args.episodes, seed=1)
    record = {
        "algo": report["algorithm"],
        "env": report["env"],
        "env_steps": report["env_steps"],
        "eval_json_return": report["episode_return"]["mean"],
        "eval_json_episodes": report["episodes"],
        "mpe2_return": float(np.mean(returns)),
        "mpe2_return_std": float(np.std(returns)),
        "mpe2_episodes": len(returns),
    }
    record["difference"] = record["mpe2_return"] - record["eval_json_return"]
    print_table(
        "marlkit.load in mpe2 simple_spread_v3 vs the run's own evaluation",
        [record],
        ["algo", "env_steps", "eval_json_return", "mpe2_return", "mpe2_return_std", "mpe2_episodes", "difference"],
    )
    write_json("load_in_mpe2", [record], args.json, packages=("torch", "mpe2", "pettingzoo"))
    return 0 if abs(record["difference"]) <= 1.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
