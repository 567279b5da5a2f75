"""Roles emerging in a team with shared weights: role specialisation on spread-v0 before, during and after training.

    python benchmarks/roles.py --json benchmarks/results/roles.json [--quick] [--seeds 3] [--plot PATH]

Task: spread-v0 (3 agents, 3 landmarks placed anew every episode, 25 steps). Learner: MAPPO with one network
shared by the agents, told apart by a one-hot agent id (PPO's defaults, ``gamma=0.95`` as spread's preset), 64
copies, 1M env-steps per seed (``--quick``: 150k, one seed). Its sub-tasks are the landmarks: the one nearest to
each agent at the end of an episode. Every 100k env-steps (and before training) the greedy team plays 300
evaluation episodes from a fixed seed and is scored with ``marlkit.experiment.roles.measure``:

* ``specialisation`` — I(agent; landmark | episode) / log2(3): 1 when the agents end on three different landmarks,
  0 when all end on the same one; ``specialisation_pooled`` — the same over all episodes pooled (lasting roles:
  agent i always on landmark i);
* ``division_of_labour`` — Gorelick et al.'s symmetric normalised mutual entropy per episode;
* ``snd`` — System Neural Diversity (W2 over the one-hot simplex) on the team's own sampled rollout;
* ``return`` — mean per-agent episode return.

Records: ``team`` (``random``: uniformly random actions; ``untrained``: the learner's initial greedy policy;
``trained``: after the budget; ``training``: the curve), ``seed``, ``env_steps``, ``wall_s`` and the metrics; the
last records, ``team="margin"``, hold ``trained - max(random, untrained)`` of ``specialisation`` per seed. A plot of
the curve goes to ``--plot`` (default benchmarks/results/plots/roles.png). ``run(quick)`` returns the records, for
a benchmark that collects several.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_json

from marlkit.experiment.roles import RoleSetup, role_baselines, role_curve

RESULTS = Path(__file__).resolve().parent / "results"


def run(quick: bool, seeds: int = 3) -> list[dict[str, Any]]:
    """The records of the benchmark (see the module docstring)."""
    torch.set_num_threads(1)
    setup = RoleSetup(steps=150_000 if quick else 1_000_000, eval_every=50_000 if quick else 100_000)
    records: list[dict[str, Any]] = []
    for seed in range(1 if quick else seeds):
        base = role_baselines(setup, seed)
        for team, m in base.items():
            records.append({"team": team, "seed": seed, "env_steps": 0, **m})
        curve = role_curve(setup, seed)
        records.extend({"team": "training", "seed": seed, **row} for row in curve)
        records.append({"team": "trained", "seed": seed, **curve[-1]})
        best_baseline = max(base["random"]["specialisation"], base["untrained"]["specialisation"])
        records.append({"team": "margin", "seed": seed, "specialisation": curve[-1]["specialisation"] - best_baseline})
        print(
            f"seed {seed}: trained {curve[-1]['specialisation']:.3f}, random {base['random']['specialisation']:.3f}, "
            f"untrained {base['untrained']['specialisation']:.3f}",
            flush=True,
        )
    return records


def plot(records: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4))
    seeds = sorted({r["seed"] for r in records})
    for s in seeds:
        curve = [r for r in records if r["team"] == "training" and r["seed"] == s]
        xs = [r["env_steps"] for r in curve]
        ax.plot(xs, [r["specialisation"] for r in curve], marker="o", label=f"MAPPO seed {s}")
        bx.plot(xs, [r["snd"] for r in curve], marker="o", label=f"seed {s}")
    for team, style in (("random", "--"), ("untrained", ":")):
        vals = [r["specialisation"] for r in records if r["team"] == team]
        ax.axhline(sum(vals) / len(vals), color="grey", linestyle=style, label=f"{team} (mean)")
    ax.set(xlabel="env-steps", ylabel="I(agent; landmark | episode) / log 3", title="Role specialisation, spread-v0")
    bx.set(xlabel="env-steps", ylabel="SND (W2, one-hot simplex)", title="System Neural Diversity")
    ax.legend(fontsize=8)
    bx.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="150k env-steps, one seed")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--json", default=None)
    p.add_argument("--plot", default=str(RESULTS / "plots" / "roles.png"))
    args = p.parse_args(argv)
    records = run(args.quick, args.seeds)
    cols = [
        "team",
        "seed",
        "env_steps",
        "specialisation",
        "specialisation_pooled",
        "division_of_labour",
        "snd",
        "return",
    ]
    print_table("Role specialisation on spread-v0", [r for r in records if r["team"] != "training"], cols)
    write_json("roles", records, args.json, packages=("torch",))
    if args.plot:
        plot(records, Path(args.plot))


if __name__ == "__main__":
    main()
