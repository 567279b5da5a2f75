"""Lifelong learning on a cooperative task sequence: every strategy x 3 seeds, and peer distillation.

    python benchmarks/lifelong.py --json benchmarks/results/lifelong.json [--quick] [--seeds 0 1 2]

The sequence is ``foraging-controls`` (6 tasks of 2-agent level-based foraging whose controls are relabelled in
each task; marlkit.lifelong.sequences), learned by IPPO with ``--steps-per-task`` env-steps per stage. For each
seed a fresh learner is first trained on every task alone (the from-scratch reference of forward transfer and
plasticity); then each strategy runs the whole sequence. Rows: ``strategy, seed, avg_performance, forgetting
(Continual World), meal_forgetting, forward_transfer, plasticity, wall_s``. Peer distillation: a fresh learner
meets the last task, which a teammate (the reference learner of that task) has mastered, and learns it with and
without the teammate's frozen policy as a teacher; the row records the env-steps each needs to reach the task's
success threshold. Writes the JSON, a markdown table next to it, and heat maps of R (seed 0) in
``benchmarks/results/plots/``. ``--quick``: two tasks, one seed, four strategies, a few thousand steps per stage.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from marlkit.lifelong import metrics as M
from marlkit.lifelong.distill import distill_from, steps_to_threshold
from marlkit.lifelong.sequence_file import any_sequence as sequence
from marlkit.lifelong.trainer import ContinualTrainer, LifelongConfig, reference_curves

STRATEGIES = (
    "finetune",
    "l2",
    "ewc",
    "online-ewc",
    "replay",
    "packnet",
    "heads",
    "reset",
    "multitask",
    "replay@0.3",
    "heads+replay",
    "reset+replay",
)
QUICK_STRATEGIES = ("finetune", "ewc", "replay", "multitask")
#: The learner: PPO with a larger entropy bonus than its default, so that it keeps exploring when a task changes.
SETS = ("algo.entropy_coef=0.03",)
#: Strategy options (weights of the extra loss terms).
#: The option ``name@x`` sets (default ``lam``).
OPTION = {"packnet": "retrain"}
#: How this run was started (recorded with its rows).
COMMAND = " ".join(["python benchmarks/lifelong.py", *sys.argv[1:]])
KWARGS: dict[str, dict[str, float]] = {"l2": {"lam": 0.01}, "ewc": {"lam": 100.0}, "online-ewc": {"lam": 100.0}}


def run_strategy(
    strategy: str, seed: int, base: LifelongConfig, refs: list[list[float]], out: Path, final_episodes: int = 0
) -> dict:
    """One strategy through the sequence; ``name@x`` runs strategy ``name`` with ``lam=x`` (PackNet: ``retrain=x``). ``final_episodes``:
    also evaluate the final learner on every task with that many fresh episodes (other seeds than the run's own
    evaluations) -- ``final_performance``, the average performance with less evaluation noise."""
    name, _, lam = strategy.partition("@")
    cfg = LifelongConfig(
        **{
            **base.to_dict(),
            "strategy": name,
            "seed": seed,
            "sets": base.sets,
            "strategy_kwargs": {OPTION.get(name, "lam"): float(lam)} if lam else KWARGS.get(name, {}),
        }
    )
    t0 = time.perf_counter()
    trainer = ContinualTrainer(cfg, out / f"{strategy}-s{seed}")
    res = trainer.run()
    wall = time.perf_counter() - t0
    R, hist = np.asarray(res["R"]), np.asarray(res["history"])
    row = {
        "strategy": strategy,
        "seed": seed,
        "avg_performance": M.average_performance(R),
        "forgetting": M.forgetting(R),
        "meal_forgetting": M.meal_forgetting(R, hist, res["stage_ends"]),
        "forward_transfer": M.forward_transfer(res["curves"], refs),
        "auc_gap": M.auc_gap(res["curves"], refs),
        "curves": res["curves"],
        "plasticity": M.plasticity(res["curves"], refs) if len(refs) > 1 else float("nan"),
        "wall_s": wall,
        "R": res["R"],
    }
    if final_episodes:
        final = trainer.evaluate_all(episodes=final_episodes, seed=50_000)
        row.update(final_performance=float(np.mean(final)), final_per_task=final, final_episodes=final_episodes)
    return row, trainer


def peer_distillation(
    base: LifelongConfig,
    seed: int,
    teacher_policy,
    threshold: float,
    every: int,
    budget: int,
    start: Path | None = None,
    num_envs: int | None = None,
) -> dict:
    """Steps a learner needs on the last task to reach ``threshold``, alone and with the teacher: a fresh learner, or
    (``start``: a ``lifelong_state.pt``) the one that has learned the earlier tasks of the sequence. ``num_envs``:
    the student collects from that many env copies (smaller batches, so that ``every`` can be finer)."""
    from marlkit.experiment.runner import learn

    out = {}
    for mode in ("alone", "teacher"):
        n = num_envs or base.num_envs
        cfg = LifelongConfig(
            **{**base.to_dict(), "sets": base.sets, "seed": seed, "strategy": "finetune", "num_envs": n}
        )
        trainer = ContinualTrainer(cfg, Path(tempfile.mkdtemp()) / mode)
        last = len(trainer.sequence) - 1
        trainer.learner = trainer._new_learner(last)
        if start is not None:
            trainer.learner.load_state(torch.load(start, weights_only=True)["algo"])
        if mode == "teacher":
            distill_from(trainer.learner, teacher_policy, weight=1.0)
        from marlkit.collect import Collector
        from marlkit.experiment.runner import make_env

        c = trainer.cfgs[last]
        source = Collector(
            make_env(c, c.env.num_envs, seed=c.experiment.seed), trainer.learner, trainer.learner.config.rollout_steps
        )
        steps, curve, t0 = [0], [trainer.evaluate_all([last])[0]], time.perf_counter()
        while steps[-1] < budget and curve[-1] < threshold:
            learn(trainer.learner, source, max(1, every // source.steps_per_batch), total_steps=budget)
            steps.append(trainer.learner.progress.env_steps)
            curve.append(trainer.evaluate_all([last])[0])
        out[mode] = {
            "steps_to_threshold": steps_to_threshold(steps, curve, threshold),
            "curve": curve,
            "steps": steps,
            "wall_s": time.perf_counter() - t0,
        }
        shutil.rmtree(trainer.run_dir.parent, ignore_errors=True)
    a, t = out["alone"]["steps_to_threshold"], out["teacher"]["steps_to_threshold"]
    out["ratio"] = (t / a) if a and t is not None else None
    out["threshold"], out["seed"] = threshold, seed
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", required=True)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--seeds", type=int, nargs="*")
    p.add_argument("--strategies", nargs="*")
    p.add_argument("--steps-per-task", type=int)
    p.add_argument(
        "--final-episodes",
        type=int,
        default=0,
        help="also evaluate each final learner on every task with this many fresh episodes (final_performance)",
    )
    p.add_argument("--work", default=None, help="directory for the run directories (default: a temporary one)")
    p.add_argument("--merge", nargs="*", help="only merge these JSON files of single-seed runs into --json")
    p.add_argument("--add", nargs="*", help="only add the rows of these JSON files to --json (keeping its others)")
    p.add_argument("--sequence", default="foraging-controls", help="a built-in sequence or a .yaml file")
    p.add_argument(
        "--peers", nargs="*", help="with --merge: take the peer-distillation rows from this JSON (--peer-only)"
    )
    p.add_argument("--refs", help="reference curves from this JSON ('{seed}' replaced) instead of training them")
    p.add_argument("--peer-only", action="store_true", help="only peer distillation, for --seeds")
    p.add_argument("--peer-every", type=int, default=400, help="env-steps between evaluations of peer distillation")
    p.add_argument(
        "--peer-envs", type=int, help="env copies the peer-distillation student collects from (default: the run's)"
    )
    p.add_argument(
        "--peer-from",
        help="with --peer-only: the student's lifelong_state.pt, '{seed}' replaced by the seed "
        "(default: a fresh learner)",
    )
    args = p.parse_args()
    if args.add:
        add(args.json, args.add)
        return
    if args.merge:
        parts = [json.loads(Path(f).read_text()) for f in args.merge]
        first = parts[0]
        write(
            args.json,
            {
                **first,
                "seeds": sorted({s for q in parts for s in q["seeds"]}),
                "rows": [r for q in parts for r in q["rows"]],
                "reference_curves": {k: v for q in parts for k, v in q["reference_curves"].items()},
                "peer_distillation": [
                    {"student": "fresh", **x}
                    for q in ([json.loads(Path(f).read_text()) for f in args.peers] if args.peers else parts)
                    for x in q["peer_distillation"]
                ],
                "wall_s": sum(q["wall_s"] for q in parts),
            },
        )
        return
    torch.set_num_threads(1)
    quick = args.quick
    seeds = args.seeds if args.seeds is not None else ([0] if quick else [0, 1, 2])
    strategies = args.strategies or (QUICK_STRATEGIES if quick else STRATEGIES)
    steps = args.steps_per_task or (6000 if quick else 16_000)
    base = LifelongConfig(
        sequence=args.sequence,
        num_tasks=2 if quick else None,
        steps_per_task=steps,
        evals_per_task=2 if quick else 4,
        eval_episodes=16 if quick else 32,
        sets=SETS,
    )
    work = Path(args.work or tempfile.mkdtemp(prefix="lifelong-bench-"))
    if args.peer_only:
        peers = []
        seq = sequence(base.sequence, base.num_tasks)
        last = len(seq) - 1
        for seed in seeds:
            # The teammate that mastered the last task: a fresh learner trained on it alone (the reference's).
            teammate = ContinualTrainer(
                LifelongConfig(**{**base.to_dict(), "sets": base.sets, "seed": seed}), work / f"mate-s{seed}"
            )
            teammate._only_own_task = True
            teammate.learner = teammate._new_learner(last)
            teammate._run_stage(last)
            start = Path(args.peer_from.replace("{seed}", str(seed))) if args.peer_from else None
            peer = peer_distillation(
                base,
                seed,
                teammate.learner.policy(),
                seq.tasks[last].success_threshold,
                every=args.peer_every,
                budget=steps * 2,
                start=start,
                num_envs=args.peer_envs,
            )
            peer["student_envs"] = args.peer_envs or base.num_envs
            peer["student"] = "fresh" if start is None else "continual (fine-tuned through the earlier tasks)"
            peer["teacher_success"] = teammate.curves[last][-1]
            peers.append(peer)
            print(
                f"  peer distillation seed {seed}: alone {peer['alone']['steps_to_threshold']} steps, with teacher "
                f"{peer['teacher']['steps_to_threshold']} (ratio {peer['ratio']})",
                flush=True,
            )
        Path(args.json).write_text(
            json.dumps(
                {
                    "sequence": args.sequence,
                    "peer_distillation": peers,
                    "peer_every": args.peer_every,
                    "command": COMMAND,
                },
                indent=1,
            )
            + "\n"
        )
        return
    plots = Path(args.json).parent / "plots"
    rows, peers, refs_by_seed = [], [], {}
    t_all = time.perf_counter()
    for seed in seeds:
        t0 = time.perf_counter()
        ref_cfg = LifelongConfig(**{**base.to_dict(), "sets": base.sets, "seed": seed})
        teachers: list = []
        if args.refs:  # the reference curves of an earlier run of this benchmark (and no peer distillation)
            refs = json.loads(Path(args.refs.replace("{seed}", str(seed))).read_text())["reference_curves"][str(seed)]
        else:
            refs = reference_curves(
                ref_cfg, sequence(base.sequence, base.num_tasks), work / f"reference-s{seed}", teachers
            )
        refs_by_seed[seed] = refs
        print(
            f"seed {seed}: reference curves in {time.perf_counter() - t0:.0f}s: {[round(M.auc(c), 2) for c in refs]}",
            flush=True,
        )
        for strategy in strategies:
            row, trainer = run_strategy(strategy, seed, base, refs, work, args.final_episodes)
            rows.append(row)
            print(
                f"  {strategy:>14} seed {seed}: perf {row['avg_performance']:.2f} forget {row['forgetting']:.2f} "
                f"meal {row['meal_forgetting']:.2f} FT {row['forward_transfer']:+.2f} plast {row['plasticity']:.2f} "
                f"({row['wall_s']:.0f}s)" + (f" final {row['final_performance']:.3f}" if args.final_episodes else ""),
                flush=True,
            )
            if seed == 0 and not args.refs:
                plots.mkdir(parents=True, exist_ok=True)
                shutil.copy(trainer.run_dir / "plots" / "R.png", plots / f"lifelong-R-{strategy.replace('+', '_')}.png")
                shutil.copy(
                    trainer.run_dir / "plots" / "curves.png",
                    plots / f"lifelong-curves-{strategy.replace('+', '_')}.png",
                )
        if args.refs:
            continue
        # Peer distillation on the last task: the teammate that mastered it is the reference learner of that task.
        last = len(refs) - 1
        threshold = sequence(base.sequence, base.num_tasks).tasks[last].success_threshold
        peer = peer_distillation(
            base, seed, teachers[last], threshold, every=args.peer_every, budget=steps * 2, num_envs=args.peer_envs
        )
        peer["student_envs"] = args.peer_envs or base.num_envs
        peer["teacher_success"] = refs[last][-1]
        peers.append(peer)
        print(
            f"  peer distillation seed {seed}: alone {peer['alone']['steps_to_threshold']} steps, with teacher "
            f"{peer['teacher']['steps_to_threshold']} (ratio {peer['ratio']})",
            flush=True,
        )

    result = {
        "benchmark": "lifelong",
        "sequence": args.sequence,
        "peer_every": args.peer_every,
        "algorithm": base.algorithm,
        "sets": list(SETS),
        "steps_per_task": steps,
        "num_tasks": len(refs_by_seed[seeds[0]]),
        "seeds": seeds,
        "quick": quick,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "rows": rows,
        "reference_curves": {str(s): r for s, r in refs_by_seed.items()},
        "peer_distillation": peers,
        "wall_s": time.perf_counter() - t_all,
        "command": COMMAND,
    }
    write(args.json, result)


def _seq(row: dict, result: dict) -> str:
    return str(row.get("sequence", result["sequence"]))


def add(path: str, parts: list[str]) -> None:
    """Add the rows (and peer-distillation rows) of ``parts`` to the benchmark JSON ``path``: a row replaces only
    the one of the same sequence, strategy and seed; every other row stays."""
    result = json.loads(Path(path).read_text())
    rows = result["rows"]
    for f in parts:
        q = json.loads(Path(f).read_text())
        for r in q.get("rows", []):
            r = {**r, "sequence": _seq(r, q), "steps_per_task": q["steps_per_task"], "sets": q["sets"]}
            key = (r["sequence"], r["strategy"], r["seed"])
            same = [i for i, x in enumerate(rows) if (_seq(x, result), x["strategy"], x["seed"]) == key]
            if same:
                rows[same[0]] = r  # in its place
            else:
                rows.append(r)
        if "reference_curves" not in q:
            pass
        elif q["sequence"] != result["sequence"]:
            result.setdefault("reference_curves_by_sequence", {}).setdefault(q["sequence"], {}).update(
                q["reference_curves"]
            )
        else:
            result["reference_curves"].update(q["reference_curves"])
        for peer in q["peer_distillation"]:
            peer = {**peer, "sequence": q["sequence"], "peer_every": q.get("peer_every")}
            result["peer_distillation"].append(peer)
        result["wall_s"] += q.get("wall_s", 0.0)
        what = sorted({r["strategy"] for r in q.get("rows", [])}) or ["peer distillation"]
        seeds = sorted({r["seed"] for r in q.get("rows", [])} | {p["seed"] for p in q["peer_distillation"]})
        result.setdefault("commands", []).append(
            {"rows": f"{q['sequence']}: {', '.join(what)}; seeds {seeds}", "command": q.get("command")}
        )
    write(path, result)


def write(path: str, result: dict) -> None:
    """The JSON (with the per-sequence and per-strategy means) and the markdown tables next to it."""
    rows, peers = result["rows"], result["peer_distillation"]
    groups = list(dict.fromkeys((_seq(r, result), r["strategy"]) for r in rows))
    keys = ("avg_performance", "forgetting", "meal_forgetting", "forward_transfer", "plasticity", "wall_s")
    summary: dict = {}
    for seq, strategy in groups:
        sel = [r for r in rows if (_seq(r, result), r["strategy"]) == (seq, strategy)]
        s = {k: float(np.mean([r[k] for r in sel])) for k in keys}
        s.update({f"{k}_std": float(np.std([r[k] for r in sel])) for k in keys[:5]})
        s["per_seed"] = {str(r["seed"]): r["avg_performance"] for r in sel}
        if all("final_performance" in r for r in sel):
            s["final_performance"] = float(np.mean([r["final_performance"] for r in sel]))
            s["final_performance_std"] = float(np.std([r["final_performance"] for r in sel]))
            s["final_per_seed"] = {str(r["seed"]): r["final_performance"] for r in sel}
        summary[strategy if seq == result["sequence"] else f"{seq}/{strategy}"] = s
    result = {**result, "summary": summary}
    result["peer_distillation_mean_ratio"] = {}

    def kind(p: dict) -> str:
        return (
            f"{p.get('sequence', result['sequence'])}: {p.get('student', 'fresh')} student on "
            f"{p.get('student_envs', 16)} envs, evaluated every {p.get('peer_every') or 400} env-steps"
        )

    for k in dict.fromkeys(kind(p) for p in peers):
        ratios = [p["ratio"] for p in peers if kind(p) == k and p["ratio"] is not None]
        result["peer_distillation_mean_ratio"][k] = float(np.mean(ratios)) if ratios else None
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(result, indent=1) + "\n")
    md = []
    for seq in dict.fromkeys(g[0] for g in groups):
        sel = [r for r in rows if _seq(r, result) == seq]
        steps = sel[0].get("steps_per_task", result["steps_per_task"])
        sets = sel[0].get("sets", result["sets"])
        seeds = sorted({r["seed"] for r in sel})
        md += [
            f"# Lifelong learning: {seq} ({len(sel[0]['R'])} tasks, IPPO {' '.join(sets)}, "
            f"{steps:,} env-steps per task, seeds {seeds})",
            "",
            "| strategy | avg performance | per seed | final perf. (more episodes) | forgetting (CW) | "
            "forgetting (MEAL) | forward transfer | plasticity | wall s |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for (sq, strategy), key in zip(groups, summary):
            if sq != seq:
                continue
            s = summary[key]
            per = " / ".join(f"{v:.3f}" for _, v in sorted(s["per_seed"].items()))
            final = (
                f"{s['final_performance']:.3f} ± {s['final_performance_std']:.3f} "
                f"({' / '.join(f'{v:.3f}' for _, v in sorted(s['final_per_seed'].items()))})"
                if "final_performance" in s
                else ""
            )
            md.append(
                f"| {strategy} | {s['avg_performance']:.3f} ± {s['avg_performance_std']:.3f} | {per} | {final} | "
                f"{s['forgetting']:.3f} ± {s['forgetting_std']:.3f} | {s['meal_forgetting']:.3f} | "
                f"{s['forward_transfer']:+.3f} ± {s['forward_transfer_std']:.3f} | {s['plasticity']:.2f} | "
                f"{s['wall_s']:.0f} |"
            )
        md.append("")
    md += [
        "Peer distillation (env-steps to the last task's success threshold, alone and with a teammate that mastered "
        "it as teacher):",
        "",
    ]
    for peer in peers:
        where = (
            f"{peer.get('sequence', result['sequence'])}, student on {peer.get('student_envs', 16)} envs, "
            f"evaluated every {peer.get('peer_every') or 400} env-steps"
        )
        md.append(
            f"- {where}: {peer.get('student', 'fresh')} student, seed {peer['seed']}: alone "
            f"{peer['alone']['steps_to_threshold']}, with the teacher {peer['teacher']['steps_to_threshold']} "
            f"(ratio {peer['ratio'] if peer['ratio'] is None else round(peer['ratio'], 3)}; "
            f"threshold {peer['threshold']})"
        )
    md += ["", "Mean ratio (with the teacher / alone):", ""]
    md += [f"- {k}: {v if v is None else round(v, 3)}" for k, v in result["peer_distillation_mean_ratio"].items()]
    if result.get("commands"):
        md += ["", "Commands that regenerate the rows (each part's JSON added with `--json THIS --add PART.json`):", ""]
        md += [f"- {c['rows']}: `{c['command']}`" for c in result["commands"]]
    Path(path).with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
