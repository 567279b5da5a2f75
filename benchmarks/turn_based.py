"""Self-play on turn-based games against a uniformly random opponent, seat by seat.

    python benchmarks/turn_based.py [--json benchmarks/results/turn_based.json]

Each run trains one network shared by both seats (self-play by parameter sharing) with its stated budget, seed 0,
32 copies, then plays its greedy policy in each seat against uniform random for 2,000 games
(``marlkit.population.versus.against``), and uniform random against itself for the baseline. One record per
(algo, env, seat): ``algo, env, steps, train_s, seat, mean_return, win_rate, loss_rate, random_mean, random_win``.
References from OpenSpiel on the same games: Kuhn random vs random +0.125 / -0.125, best response to random +0.5 /
+0.417; Leduc random vs random -0.078 / +0.078, best response to random +2.09 / +2.66.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pin_one_core, print_table, write_json

RUNS: list[tuple[str, str, int]] = [
    ("ippo", "kuhn-poker-v0", 20_000),
    ("iql", "kuhn-poker-v0", 30_000),
    ("ippo", "leduc-poker-v0", 50_000),
    ("ippo", "pz:tictactoe_v3", 100_000),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", default=None, help="write the records here")
    parser.add_argument("--episodes", type=int, default=2000)
    args = parser.parse_args()
    pin_one_core()
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    import torch

    import marlkit
    from marlkit.population.versus import UniformRandom, against

    torch.set_num_threads(1)
    records: list[dict[str, Any]] = []
    for algo, env_id, steps in RUNS:
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            result = marlkit.train(
                algo, env_id, steps=steps, seed=0, out=out, num_envs=32, gamma=1.0 if "poker" in env_id else 0.99,
                progress=False, gif=False, checkpoint_every=0, eval_every=0, eval_episodes=10,
            )  # fmt: skip
            train_s = time.perf_counter() - start
            policy = marlkit.load(result.run_dir)
        env = marlkit.make(env_id, num_envs=64)
        trained = against(env, policy, UniformRandom(env, seed=1), args.episodes, seed=5)
        baseline = against(env, UniformRandom(env, seed=2), UniformRandom(env, seed=1), args.episodes, seed=5)
        for s, b in zip(trained, baseline):
            records.append(
                {
                    "algo": algo,
                    "env": env_id,
                    "steps": steps,
                    "train_s": round(train_s, 1),
                    "seat": s.agent,
                    "mean_return": round(s.mean, 3),
                    "win_rate": round(s.win_rate, 3),
                    "loss_rate": round(s.loss_rate, 3),
                    "random_mean": round(b.mean, 3),
                    "random_win": round(b.win_rate, 3),
                }
            )
    columns = ["algo", "env", "steps", "train_s", "seat", "mean_return", "win_rate", "random_mean", "random_win"]
    print_table("self-play vs uniform random (greedy, per seat)", records, columns)
    write_json("turn_based", records, args.json, packages=("torch", "pettingzoo", "open_spiel"))


if __name__ == "__main__":
    main()
