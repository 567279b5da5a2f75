"""Roles emerging in a team with shared weights: role specialisation on spread-v0 before, during and after training.

    python benchmarks/roles.py --json benchmarks/results/roles.json [--quick] [--seeds 3] [--plot PATH]
                               [--parts spread,leader]

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

Emergent hierarchy (``--parts leader``): leader-election-v0 (3 agents, one round of messages, then a vote; only the
agent able to lead knows it), MAPPO with shared weights and ids, ``entropy_coef=0.1``, 32 copies, 100k env-steps
per seed (``--quick``: 40k), evaluated every 8k on 500 greedy episodes: ``metric/success`` (all name the agent able
to lead; naming a fixed agent scores 1/3), ``agreement`` (all name the same agent) and ``leader_entropy`` (bits;
log2(3) = 1.58 when each agent leads as often, as it must here), and ``steps_to_0.95``, the first evaluation with
success >= 0.95.

Records: ``task`` (``spread`` or ``leader``; records without one are spread's), ``team`` (``random``: uniformly
random actions; ``untrained``: the learner's initial greedy policy; ``trained``: after the budget; ``training``: the
curve), ``seed``, ``env_steps``, ``wall_s`` and the metrics; ``team="margin"`` records hold ``trained -
max(random, untrained)`` of spread's ``specialisation`` per seed. The curves go to ``--plot`` (default
benchmarks/results/plots/roles.png). ``run(quick)`` returns the records, for a benchmark that collects several.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_json

from marlkit.experiment.roles import LEADER_SETUP, RoleSetup, role_baselines, role_curve

RESULTS = Path(__file__).resolve().parent / "results"


def run(quick: bool, seeds: int = 3, parts: tuple[str, ...] = ("spread", "leader")) -> list[dict[str, Any]]:
    """The records of the benchmark (see the module docstring)."""
    torch.set_num_threads(1)
    records: list[dict[str, Any]] = []
    if "spread" in parts:
        records += _spread(quick, seeds)
    if "leader" in parts:
        records += _leader(quick, seeds)
    return records


def _leader(quick: bool, seeds: int) -> list[dict[str, Any]]:
    setup = dataclasses.replace(LEADER_SETUP, steps=40_000) if quick else LEADER_SETUP
    records: list[dict[str, Any]] = []
    for seed in range(1 if quick else seeds):
        for team, m in role_baselines(setup, seed).items():
            records.append({"task": "leader", "team": team, "seed": seed, "env_steps": 0, **m})
        curve = role_curve(setup, seed)
        records.extend({"task": "leader", "team": "training", "seed": seed, **row} for row in curve)
        reached = next((r["env_steps"] for r in curve if r["metric/success"] >= 0.95), None)
        records.append({"task": "leader", "team": "trained", "seed": seed, "steps_to_0.95": reached, **curve[-1]})
        print(f"leader seed {seed}: success {curve[-1]['metric/success']:.3f} (>= 0.95 from {reached})", flush=True)
    return records


def _spread(quick: bool, seeds: int) -> list[dict[str, Any]]:
    setup = RoleSetup(steps=150_000 if quick else 1_000_000, eval_every=50_000 if quick else 100_000)
    records: list[dict[str, Any]] = []
    for seed in range(1 if quick else seeds):
        base = role_baselines(setup, seed)
        for team, m in base.items():
            records.append({"task": "spread", "team": team, "seed": seed, "env_steps": 0, **m})
        curve = role_curve(setup, seed)
        records.extend({"task": "spread", "team": "training", "seed": seed, **row} for row in curve)
        records.append({"task": "spread", "team": "trained", "seed": seed, **curve[-1]})
        best_baseline = max(base["random"]["specialisation"], base["untrained"]["specialisation"])
        margin = curve[-1]["specialisation"] - best_baseline
        records.append({"task": "spread", "team": "margin", "seed": seed, "specialisation": margin})
        print(
            f"seed {seed}: trained {curve[-1]['specialisation']:.3f}, random {base['random']['specialisation']:.3f}, "
            f"untrained {base['untrained']['specialisation']:.3f}",
            flush=True,
        )
    return records


def plot(records: list[dict[str, Any]], path: Path) -> None:
    """The spread curves (specialisation, SND) and the leader curves (success, leader entropy), as present."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = {
        "spread": (("specialisation", "I(agent; landmark | episode) / log 3"), ("snd", "SND (W2, one-hot simplex)")),
        "leader": (("metric/success", "all name the agent able to lead"), ("leader_entropy", "entropy of the leader")),
    }
    tasks = [t for t in panels if any(r.get("task", "spread") == t for r in records)]
    fig, axes = plt.subplots(len(tasks), 2, figsize=(10, 4 * len(tasks)), squeeze=False)
    for row, task in zip(axes, tasks):
        mine = [r for r in records if r.get("task", "spread") == task]
        for ax, (key, label) in zip(row, panels[task]):
            for s in sorted({r["seed"] for r in mine}):
                curve = [r for r in mine if r["team"] == "training" and r["seed"] == s]
                ax.plot([r["env_steps"] for r in curve], [r[key] for r in curve], marker="o", label=f"MAPPO seed {s}")
            for team, style in (("random", "--"), ("untrained", ":")):
                vals = [r[key] for r in mine if r["team"] == team and key in r]
                if vals:
                    ax.axhline(sum(vals) / len(vals), color="grey", linestyle=style, label=f"{team} (mean)")
            ax.set(xlabel="env-steps", ylabel=label, title=f"{task}: {key}")
            ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="150k env-steps on spread, 40k on the leader game, one seed")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--parts", default="spread,leader", help="comma-separated: spread, leader")
    p.add_argument("--json", default=None)
    p.add_argument("--plot", default=str(RESULTS / "plots" / "roles.png"))
    args = p.parse_args(argv)
    records = run(args.quick, args.seeds, tuple(args.parts.split(",")))
    cols = ["task", "team", "seed", "env_steps", "specialisation", "specialisation_pooled", "division_of_labour"]
    cols += ["snd", "return", "metric/success", "leader_entropy", "steps_to_0.95"]
    print_table("Roles and leaders", [r for r in records if r["team"] != "training"], cols)
    write_json("roles", records, args.json, packages=("torch",))
    if args.plot:
        plot(records, Path(args.plot))


if __name__ == "__main__":
    main()
