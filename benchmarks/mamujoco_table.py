"""The MaMuJoCo learning results beside the figures HARL publishes, as a markdown table.

Reads ``benchmarks/results/learning_{algo}_mamujoco_{task}.json`` (written by ``benchmarks/learning.py``) and writes
``benchmarks/results/mamujoco.md``: our greedy evaluation return at our budget, the random policy's, and the return
HARL's figure shows for the same algorithm and task at our budget and at its own (10M env-steps).

The published figures are read off the learning curves of Zhong et al. 2024, "Heterogeneous-Agent Reinforcement
Learning" (JMLR 25, https://arxiv.org/abs/2304.09870; the same plot is ``assets/mamujoco_on_policy_learning_curve.jpg``
in https://github.com/PKU-MARL/HARL), so they are approximate (about ±300). They are on Gymnasium's v2 MuJoCo envs with
HARL's tuned settings (agent_obsk=0, 20 copies, the hyper-parameters the presets here copy) and 5 seeds; ours are on
the v5 envs (same rewards, a newer simulator). HARL shows no on-policy curve for Ant 2x4, only for Ant 4x2.

    python benchmarks/mamujoco_table.py
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
SOURCE = "HARL (Zhong et al. 2024, JMLR), read off its MaMuJoCo learning-curve figure (±300), v2 envs, 5 seeds"
#: (algorithm, task) -> {env-steps: the return HARL's figure shows there}. MADDPG is read off its off-policy figure
#: (``assets/mamujoco_off_policy_learning_curve.jpg``), the others off the on-policy one.
PUBLISHED = {
    ("happo", "halfcheetah_2x3"): {500_000: 1700, 1_000_000: 2900, 2_000_000: 4500, 5_000_000: 6100, 10_000_000: 7000},
    ("mappo", "halfcheetah_2x3"): {500_000: 1200, 1_000_000: 2100, 2_000_000: 3300, 5_000_000: 5600, 10_000_000: 6850},
    ("maddpg", "halfcheetah_2x3"): {500_000: 3000, 1_000_000: 3800, 2_000_000: 4900, 5_000_000: 6600, 10_000_000: 8200},
    ("happo", "ant_4x2"): {500_000: 1500, 1_000_000: 1900, 2_000_000: 2900, 10_000_000: 5900},
    ("mappo", "ant_4x2"): {500_000: 950, 1_000_000: 900, 2_000_000: 1800, 10_000_000: 5850},
    ("maddpg", "ant_4x2"): {500_000: 900, 1_000_000: 1050, 2_000_000: 1500, 5_000_000: 3200, 10_000_000: 4000},
    ("happo", "walker2d_2x3"): {1_000_000: 1000, 10_000_000: 5400},
    ("mappo", "walker2d_2x3"): {1_000_000: 1700, 10_000_000: 5000},
}
ALGOS = ("mappo", "happo", "maddpg")
TASKS = ("halfcheetah_2x3", "ant_2x4", "ant_4x2", "walker2d_2x3")


def published(algo: str, task: str, steps: int) -> str:
    nearest = "ant_4x2" if task == "ant_2x4" else task  # HARL shows Ant 4x2 only: the same body, 4 agents not 2
    points = PUBLISHED.get((algo, nearest))
    if not points:
        return "–"
    at = points.get(steps)
    where = "" if nearest == task else " (Ant 4x2)"
    budget = f"{at} at our budget, " if at is not None else ""
    return f"{budget}{points[10_000_000]} at 10M{where}"


def load(algo: str, task: str) -> list[dict[str, Any]]:
    """The result documents of ``algo`` on ``task``: ``learning_{algo}_mamujoco_{task}.json`` and its siblings
    (``_seed1``, ``_5m``, ...: further seeds or budgets run separately)."""
    first = RESULTS / f"learning_{algo}_mamujoco_{task}.json"
    paths = [first] if first.exists() else []
    paths += sorted(RESULTS.glob(f"learning_{algo}_mamujoco_{task}_*.json"))
    return [json.loads(p.read_text()) for p in paths]


def by_budget(docs: list[dict[str, Any]], algo: str) -> dict[int, list[tuple[dict[str, Any], dict[str, Any]]]]:
    """Every trained record of ``algo`` in ``docs`` with its document, grouped by env-steps (smallest first)."""
    rows: dict[int, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    for d in docs:
        for r in d["records"]:
            if r["algo"] == algo:
                rows.setdefault(r["env_steps"], []).append((r, d))
    return dict(sorted(rows.items()))


def plot_curves() -> list[str]:
    """One plot per task of every run's periodic greedy evaluations, HARL's figure's points beside them; the tasks
    plotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = []
    for task in TASKS:
        runs = {a: load(a, task) for a in ALGOS}
        if not any(runs.values()):
            continue
        fig, ax = plt.subplots(figsize=(6, 4))
        for (algo, docs), color in zip(runs.items(), ("tab:green", "tab:blue", "tab:brown")):
            for doc in docs:
                for seed, points in doc["curves"].items():
                    steps = [p["env_steps"] for p in points]
                    ax.plot(steps, [p["episode_return"] for p in points], color=color, label=f"{algo} (seed {seed})")
            nearest = "ant_4x2" if task == "ant_2x4" else task
            longest = max((p["env_steps"] for d in docs for c in d["curves"].values() for p in c), default=0)
            pub = {s: v for s, v in PUBLISHED.get((algo, nearest), {}).items() if s <= longest}
            if pub:
                ax.scatter(list(pub), list(pub.values()), color=color, marker="x", label=f"{algo}, HARL's figure")
        ax.set_xlabel("env-steps")
        ax.set_ylabel("greedy episode return")
        ax.set_title(f"MaMuJoCo {task.replace('_', ' ')}")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(RESULTS / "plots" / f"mamujoco_{task}.png", dpi=100)
        plt.close(fig)
        done.append(task)
    return done


def main() -> int:
    lines = [
        "# MaMuJoCo: learning numbers",
        "",
        "Generated by `python benchmarks/mamujoco_table.py` from the `learning_*_mamujoco_*.json` files here. Greedy",
        "evaluation of the final policy (episode return of the body, which every agent receives), one row per budget;",
        f"*published*: {SOURCE}. Each command trains with the task's preset (HARL's tuned settings).",
        "",
        "| task | algo | env-steps | seeds | return | random policy | wall per seed | published (HARL) | command |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for task in TASKS:
        for algo in ALGOS:
            docs = load(algo, task)
            rand = [r for d in docs for r in d["records"] if r["algo"] == "random"]
            random_ret = f"{rand[0]['eval_return_mean']:.0f}" if rand else "–"
            for steps, pairs in by_budget(docs, algo).items():
                runs = [r for r, _ in pairs]
                ret = sum(r["eval_return_mean"] for r in runs) / len(runs)
                wall = sum(r["wall_s"] for r in runs) / len(runs)
                each = ", ".join(f"{r['eval_return_mean']:.0f}" for r in runs)
                spread = f" ({each})" if len(runs) > 1 else ""
                commands = "; ".join(dict.fromkeys(f"`{d['command']}`" for _, d in pairs))
                lines.append(
                    f"| {task.replace('_', ' ')} | {algo} | {steps:,} | {len(runs)} | **{ret:.0f}**{spread} | "
                    f"{random_ret} | {wall / 60:.1f} min | {published(algo, task, steps)} | {commands} |"
                )
    lines += ["", f"Published points (env-steps: return), {SOURCE}:", ""]
    for (algo, task), points in PUBLISHED.items():
        lines.append(f"- {algo} {task.replace('_', ' ')}: " + ", ".join(f"{s:,}: {v}" for s, v in points.items()))
    lines += [
        "",
        "Learning curves (greedy evaluations during training): "
        + ", ".join(f"[`plots/mamujoco_{t}.png`](plots/mamujoco_{t}.png)" for t in plot_curves()),
    ]
    (RESULTS / "mamujoco.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
