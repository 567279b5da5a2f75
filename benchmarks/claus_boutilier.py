"""Claus & Boutilier (1998) revisited: where independent and joint-action learners converge in the climbing and
penalty games, and how that depends on the exploration schedule and on the penalty k.

    python benchmarks/claus_boutilier.py [--trials 200] [--plays 2000] [--json benchmarks/results/claus_boutilier.json]

Every setting runs ``--trials`` independent pairs of learners side by side (one env copy each, its own tables:
``TabularConfig(tables_per_copy=True)``) for ``--plays`` plays of the one-shot game, learning rate 0.1, Boltzmann
exploration with the temperature decaying from 16 by a factor per play (``fast`` 0.99, ``slow`` 0.998) to 0.05,
and reports the share of trials whose final greedy joint action is each cell of the game (optimal, safe, other).
Learners: ``iql-tabular``, ``jal`` (the paper's empirical-frequency beliefs) and ``jal-last`` (a JAL that best
responds to the others' last joint action instead). One record per (algo, game, k, schedule): ``algo, game, k, schedule, trials, plays, share_<joint action>,
share_optimal``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pin_one_core, print_table, write_json

SCHEDULES = {"fast": 0.99, "slow": 0.998}
GAMES: list[tuple[str, dict[str, Any]]] = [("climbing-v0", {})] + [
    ("penalty-v0", {"k": k}) for k in (0, -10, -25, -50, -100)
]
NAMES = "abc"
LEARNERS = ("iql-tabular", "jal", "jal-last")


def run(
    algo: str, env_id: str, kwargs: dict[str, Any], decay: float, trials: int, plays: int, seed: int
) -> dict[str, Any]:
    import marlkit
    from marlkit.algorithms.tabular import JointActionLearner, TabularConfig, TabularQ
    from marlkit.collect import Collector
    from marlkit.experiment.runner import learn

    env = marlkit.make(env_id, num_envs=trials, seed=seed, **kwargs)
    cls = JointActionLearner if algo.startswith("jal") else TabularQ
    learner = cls(
        env,
        TabularConfig(
            gamma=0.0,
            lr=0.1,
            temperature_start=16.0,
            temperature_decay=decay,
            temperature_end=0.05,
            tables_per_copy=True,
            opponent_model="last" if algo == "jal-last" else "counts",
        ),
        seed=seed,
    )
    learn(learner, Collector(env, learner, 1, seed=seed), plays)
    obs, _ = env.reset(seed=seed + 1)
    greedy = learner.greedy_joint_action("players", obs["players"])
    payoffs = env.payoffs[..., 0]
    n = payoffs.shape[0]
    counts = np.zeros((n, n))
    np.add.at(counts, (greedy[:, 0], greedy[:, 1]), 1)
    rec: dict[str, Any] = {
        "algo": algo,
        "game": env_id.removesuffix("-v0"),
        "k": kwargs.get("k"),
        "schedule": next(s for s, d in SCHEDULES.items() if d == decay),
        "trials": trials,
        "plays": plays,
    }
    for a in range(n):
        for b in range(n):
            if counts[a, b]:
                rec[f"share_{NAMES[a]}{NAMES[b]}"] = counts[a, b] / trials
    best = payoffs.max()
    rec["share_optimal"] = float(counts[payoffs == best].sum() / trials)
    rec["mean_payoff"] = float((counts * payoffs).sum() / trials)
    return rec


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    p.add_argument("--trials", type=int, default=200, help="independent learner pairs per setting (default 200)")
    p.add_argument("--plays", type=int, default=2000, help="plays of the game per trial (default 2000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--learners",
        nargs="*",
        default=list(LEARNERS),
        choices=list(LEARNERS),
        help="iql-tabular, jal (empirical-frequency beliefs, as in the paper) and jal-last (best response "
        "to the others' last joint action); default all",
    )
    p.add_argument("--json", default=None, help="write the records here")
    args = p.parse_args(argv)
    pin_one_core()
    records = []
    start = time.perf_counter()
    for env_id, kwargs in GAMES:
        for algo in args.learners:
            for decay in SCHEDULES.values():
                records.append(run(algo, env_id, kwargs, decay, args.trials, args.plays, args.seed))
                print(
                    f"... {records[-1]['algo']} {records[-1]['game']} k={records[-1]['k']} "
                    f"{records[-1]['schedule']}: optimal {records[-1]['share_optimal']:.2f}",
                    file=sys.stderr,
                )
    cols = ["algo", "game", "k", "schedule", "share_optimal", "mean_payoff"] + sorted(
        {k for r in records for k in r if k.startswith("share_") and k != "share_optimal"}
    )
    write_json("claus_boutilier", records, args.json)
    print_table(
        f"greedy joint action after {args.plays} plays, share of {args.trials} trials "
        f"({time.perf_counter() - start:.0f} s)",
        records,
        cols,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
