"""Competition: how close marlkit's solvers and learners get to a Nash equilibrium, and how fast, against OpenSpiel
measured in the same run.

    python benchmarks/competition.py --json benchmarks/results/competition.json [--quick] [--only efg]

Sections (``SECTIONS``; ``--only NAME`` runs some of them, and the JSON keeps the records of the sections not run):

- ``efg``: Kuhn poker and Leduc hold'em. Each tabular method (CFR, CFR+, CFR-BR, XFP, PSRO with the Nash meta-solver
  and an exact best-response oracle) runs a stated number of iterations; a row gives the NashConv of the final
  average policy, player 0's expected value (Kuhn's is −1/18), the wall time of the iterations alone (NashConv
  measured outside the clock) and the NashConv curve. OpenSpiel's own solver of the same name (its C++ CFR, CFR+
  and CFR-BR through pyspiel; its Python XFP on Kuhn) runs the same iterations in the same process: its NashConv,
  its wall time and the ratio of the two times. Then the neural learners, one thread of torch: PSRO whose oracle is
  a DQN trained from sampled games against the opponent's meta-strategy (iterations: PSRO rounds; the meta-game's
  payoffs and the NashConv are exact), and NFSP (iterations: games); ``games`` counts the games they played.
- ``selfplay``: ``benchmarks/selfplay.py``'s tag-v0 records (ratings of the final self-play player against its
  snapshot at 10% of the budget) and its turn-based records (Kuhn, Leduc, tic-tac-toe, connect four: the final
  player against uniform random and against its first snapshot; ``h2h_games`` paired games against the first
  snapshot, ``elo_gap`` their Elo difference; ``vs_random_score`` the mean outcome, draws counting half).
- ``matrix``: PSRO with an exact best-response oracle on rock-paper-scissors, its biased variant and matching
  pennies (distance of the meta-strategies to the Nash mixture; floor 0.02 for the Nash, replicator and uniform
  meta-solvers; α-rank, OpenSpiel's, is reported without one: its solution concept is not Nash), and fictitious
  self-play of IPPO (``benchmarks/selfplay.py``'s rps records: the exploitability of the pool's average strategy;
  floor 0.05; ``--reuse-fsp`` keeps those records from the JSON instead of re-running them).
- ``roles``: ``benchmarks/roles.py``'s final evaluations (role specialisation, SND and division of labour of random,
  untrained and trained spread-v0 teams; leader election's ``agreement``: all agents named the same leader,
  ``metric/success``: and that agent was able to lead, which is the episode's return, and ``leader_entropy``; on
  leader rows ``specialisation`` and ``division_of_labour`` score the votes, 0 when all name one agent).

Every record has ``section``; the markdown table (``--markdown``, default beside the JSON) has one table per section.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pin_one_core, print_table, write_json

# ------------------------------------------------------------------------------------------------------- efg
# iterations per (game, method): full run, --quick run
EFG_RUNS: dict[str, dict[str, tuple[int, int]]] = {
    "kuhn_poker": {"cfr": (300, 300), "cfr+": (200, 200), "cfr-br": (100, 20), "xfp": (1000, 100), "psro": (100, 20)},
    "leduc_poker": {"cfr": (1000, 30), "cfr+": (1000, 30), "cfr-br": (200, 10), "xfp": (300, 10), "psro": (50, 5)},
}
EFG_COLUMNS = [
    "game",
    "method",
    "seed",
    "iterations",
    "games",
    "nash_conv",
    "value",
    "wall_s",
    "openspiel_nash_conv",
    "openspiel_wall_s",
    "openspiel_over_ours",
]


def _checkpoints(n: int) -> list[int]:
    """1, 2, 5, 10, 20, 50, ... up to ``n``, and ``n``."""
    out = [m * 10**e for e in range(7) for m in (1, 2, 5) if m * 10**e < n]
    return out + [n]


def _ours(game: Any, method: str, iterations: int) -> dict[str, Any]:
    from marlkit.population import SOLVERS, efg, extensive_psro

    curve: list[tuple[int, float]] = []
    wall = 0.0
    if method == "psro":
        start = time.perf_counter()
        result = extensive_psro(game, iterations, "nash")  # its NashConv per round is part of the run: timed with it
        wall = time.perf_counter() - start
        policy = result.policy
        curve = [(i, result.nash_conv[i]) for i in _checkpoints(iterations)]
    else:
        solver = SOLVERS[method](game)
        done = 0
        for target in _checkpoints(iterations):
            start = time.perf_counter()
            policy = solver.run(target - done)
            wall += time.perf_counter() - start
            done = target
            curve.append((done, efg.nash_conv(game, policy)))
    return {
        "nash_conv": curve[-1][1],
        "value": efg.expected_value(game, policy),
        "wall_s": wall,
        "curve": curve,
    }


def _openspiel(name: str, method: str, iterations: int) -> dict[str, Any] | None:
    """OpenSpiel's solver of the same name on the same game, same iterations; None where it has none to compare."""
    try:
        import pyspiel
    except ImportError:
        return None
    game = pyspiel.load_game(name)
    if method in ("cfr", "cfr+", "cfr-br"):
        solver = {"cfr": pyspiel.CFRSolver, "cfr+": pyspiel.CFRPlusSolver, "cfr-br": pyspiel.CFRBRSolver}[method](game)
        step, average = solver.evaluate_and_update_policy, solver.average_policy
        nash_conv = lambda: float(pyspiel.nash_conv(game, average()))
    elif method == "xfp" and name == "kuhn_poker":  # OpenSpiel's XFP is Python only, a second per Leduc iteration
        from open_spiel.python.algorithms import exploitability, fictitious_play

        solver = fictitious_play.XFPSolver(game)
        step = solver.iteration
        nash_conv = lambda: float(exploitability.nash_conv(game, solver.average_policy().to_tabular()))
    else:
        return None
    wall, done, curve = 0.0, 0, []
    for target in _checkpoints(iterations):
        start = time.perf_counter()
        for _ in range(target - done):
            step()
        wall += time.perf_counter() - start
        done = target
        curve.append((done, nash_conv()))
    return {"openspiel_nash_conv": curve[-1][1], "openspiel_wall_s": wall, "openspiel_curve": curve}


# neural learners: (game, method, seed, iterations or games: full, quick)
NEURAL_RUNS: list[tuple[str, str, int, tuple[int, int]]] = [
    ("kuhn_poker", "psro-dqn", 0, (8, 3)),
    ("kuhn_poker", "psro-dqn", 1, (8, 0)),
    ("kuhn_poker", "psro-dqn", 2, (8, 0)),
    ("kuhn_poker", "nfsp", 0, (300_000, 20_000)),
    ("leduc_poker", "psro-dqn", 0, (10, 0)),
    ("leduc_poker", "nfsp", 0, (100_000, 0)),
]


def _neural(game: Any, method: str, seed: int, n: int) -> dict[str, Any]:
    """PSRO with a DQN oracle (``n`` iterations; the oracle learns from sampled games, the meta-game is exact) or
    NFSP (``n`` games). Wall time includes everything the method runs but NFSP's periodic NashConv."""
    from marlkit.population import efg, extensive_psro
    from marlkit.population.nfsp import NFSP
    from marlkit.population.rl_oracle import DQNOracle

    if method == "psro-dqn":
        oracle = DQNOracle(seed=seed)
        start = time.perf_counter()
        result = extensive_psro(game, n, oracle=oracle)
        wall = time.perf_counter() - start
        policy, games = result.policy, oracle.games
        curve = list(enumerate(result.nash_conv))
    else:
        agent = NFSP(game, seed=seed)
        trained = agent.train(n, eval_every=max(1, n // 10))
        policy, wall, games, curve = agent.average_policy(), trained.wall_s, agent.games, trained.nash_conv
    return {
        "nash_conv": curve[-1][1],
        "value": efg.expected_value(game, policy),
        "wall_s": wall,
        "games": games,
        "curve": curve,
    }


def efg_section(args: argparse.Namespace) -> list[dict[str, Any]]:
    from marlkit.population import GAMES

    records = []
    for name, methods in EFG_RUNS.items():
        game = GAMES[name]()
        for method, (full, quick) in methods.items():
            iterations = quick if args.quick else full
            rec: dict[str, Any] = {"game": name, "method": method, "iterations": iterations}
            rec |= _ours(game, method, iterations)
            theirs = _openspiel(name, method, iterations)
            if theirs is not None:
                rec |= theirs
                rec["openspiel_over_ours"] = theirs["openspiel_wall_s"] / rec["wall_s"]
            records.append(rec)
            print(f"{name} {method} {iterations}: NashConv {rec['nash_conv']:.6f} in {rec['wall_s']:.2f} s", flush=True)
    for name, method, seed, (full, quick) in NEURAL_RUNS:
        n = quick if args.quick else full
        if n == 0:
            continue
        rec = {"game": name, "method": method, "seed": seed, "iterations": n}
        rec |= _neural(GAMES[name](), method, seed, n)
        records.append(rec)
        print(f"{name} {method} seed {seed}: NashConv {rec['nash_conv']:.4f} in {rec['wall_s']:.1f} s", flush=True)
    return records


# ------------------------------------------------------------------------------------------------- sections
@dataclass(frozen=True)
class Section:
    title: str
    run: Callable[[argparse.Namespace], list[dict[str, Any]]]
    columns: list[str]


def selfplay_section(args: argparse.Namespace) -> list[dict[str, Any]]:
    """benchmarks/selfplay.py: tag-v0 self-play against a PFSP pool rated against an earlier self, and the
    turn-based games' self-play against a PFSP pool (against uniform random and the first snapshot)."""
    import selfplay

    return selfplay.run(args.quick, parts=("tag", "turns"))


# (env id, meta-solver, iterations): PSRO with an exact best-response oracle on the matrix games
MATRIX_PSRO = [
    (env, solver, n)
    for env in ("rock-paper-scissors-v0", "biased-rock-paper-scissors-v0", "matching-pennies-v0")
    for solver, n in (("nash", 10), ("replicator", 30), ("uniform", 1000), ("alpharank", 30))
]
MATRIX_FLOOR = 0.02


def matrix_section(args: argparse.Namespace) -> list[dict[str, Any]]:
    """PSRO (exact best responses; Nash, replicator and uniform meta-solvers) on the zero-sum matrix games: the
    largest gap between the final meta-strategies and the game's Nash equilibrium (scipy's LP) and their NashConv;
    then benchmarks/selfplay.py's fictitious self-play of an RL learner on rock-paper-scissors and its biased
    variant (exploitability of the pool's average strategy, 3 seeds)."""
    import selfplay

    import marlkit
    from marlkit.population import env_payoffs, psro, zero_sum_nash

    records: list[dict[str, Any]] = []
    for env_id, solver, n in MATRIX_PSRO:
        payoffs = env_payoffs(marlkit.make(env_id))
        nash = zero_sum_nash(payoffs[0])
        start = time.perf_counter()
        result = psro(payoffs, n, solver)
        wall = time.perf_counter() - start
        gap = max(float(np.abs(x - y).max()) for x, y in zip(result.strategies, (nash.row, nash.column)))
        nash_solver = solver != "alpharank"  # α-rank ranks by the response graph's sink, not a Nash solver
        records.append(
            {
                "task": env_id,
                "method": f"psro, {solver} meta-solver",
                "iterations": n,
                "nash": nash.row.round(4).tolist(),
                "strategies": [x.round(4).tolist() for x in result.strategies],
                "distance_to_nash": gap,
                "nash_conv": result.nash_conv[-1],
                "exploitability_average": result.nash_conv[-1] / 2,
                "wall_s": wall,
                "floor": f"distance to Nash <= {MATRIX_FLOOR}" if nash_solver else None,
                "floor_met": gap <= MATRIX_FLOOR if nash_solver else None,
            }
        )
        print(f"{env_id} psro {solver} {n}: distance to Nash {gap:.4f}", flush=True)
    if args.reuse_fsp and args.json and args.json.exists():
        kept = json.loads(args.json.read_text())["records"]
        records.extend(
            {k: v for k, v in r.items() if k not in ("section", "quick")}
            for r in kept
            if r.get("section") == "matrix" and r.get("method", "").startswith("ippo ")
        )
        return records
    with tempfile.TemporaryDirectory(prefix="fsp_bench_") as tmp:
        records.extend(selfplay.rps(args.quick, Path(tmp)))
    return records


def roles_section(args: argparse.Namespace) -> list[dict[str, Any]]:
    """benchmarks/roles.py: role specialisation and SND of random, untrained and trained spread-v0 teams (the final
    evaluation of each seed only; the curves stay in roles.json), and leader election's success."""
    import roles

    final = []
    for r in roles.run(args.quick, seeds=1 if args.quick else 3):
        if r.get("team") == "training":
            continue  # the curve's points; the trained team's final evaluation is its own record
        final.append({"task": r.get("task", "spread"), **r})
    return final


SECTIONS: dict[str, Section] = {
    "efg": Section("Extensive-form games: NashConv of tabular solvers, against OpenSpiel", efg_section, EFG_COLUMNS),
    "selfplay": Section(
        "Self-play against a policy pool: ratings against an earlier self",
        selfplay_section,
        [
            "task",
            "method",
            "seed",
            "env_steps",
            "h2h_games",
            "h2h_win_rate",
            "elo_gap",
            "openskill_gap_elo_points",
            "vs_random_win_rate",
            "vs_random_score",
            "first_vs_random_win_rate",
            "train_wall_s",
        ],
    ),
    "matrix": Section(
        "Matrix games: PSRO's distance to the Nash mixture, fictitious self-play's exploitability",
        matrix_section,
        [
            "task",
            "method",
            "seed",
            "iterations",
            "env_steps",
            "distance_to_nash",
            "exploitability_average",
            "exploitability_last",
            "floor_met",
            "train_wall_s",
        ],
    ),
    "roles": Section(
        "Self-organisation: role specialisation, SND and leader election",
        roles_section,
        [
            "task",
            "team",
            "seed",
            "env_steps",
            "specialisation",
            "snd",
            "division_of_labour",
            "agreement",
            "metric/success",
            "leader_entropy",
            "return",
        ],
    ),
}


def markdown(records: list[dict[str, Any]], command: str) -> str:
    lines = [
        "# Competition — `competition.json`",
        "",
        f"`{command}` (one core). Written by `benchmarks/competition.py`.",
    ]
    for name, section in SECTIONS.items():
        rows = [r for r in records if r.get("section") == name]
        if not rows:
            continue
        lines += ["", f"## {section.title}", ""]
        lines += ["| " + " | ".join(section.columns) + " |", "|" + "---|" * len(section.columns)]
        for r in rows:
            lines.append("| " + " | ".join(_cell(r.get(c)) for c in section.columns) + " |")
        curves = [r for r in rows if "curve" in r]
        if curves:
            lines += ["", "NashConv curves (iteration: NashConv):", ""]
            for r in curves:
                points = ", ".join(f"{i}: {v:.4g}" for i, v in r["curve"])
                seed = f" seed {r['seed']}" if "seed" in r else ""
                lines.append(f"- {r['game']} {r['method']}{seed}: {points}")
    return "\n".join(lines) + "\n"


def _cell(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"
    return str(v)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    p.add_argument("--json", type=Path, help="write the records here (records of sections not run are kept)")
    p.add_argument("--markdown", type=Path, help="the markdown table (default: the JSON's path with .md)")
    p.add_argument("--quick", action="store_true", help="a short version of every section")
    p.add_argument("--only", nargs="+", choices=list(SECTIONS), help="run only these sections")
    p.add_argument(
        "--reuse-fsp",
        action="store_true",
        help="matrix: keep the fictitious self-play records of --json instead of re-running them (~20 CPU-minutes)",
    )
    p.add_argument("--render-only", action="store_true", help="run nothing: rewrite the markdown from --json")
    args = p.parse_args(argv)
    if args.render_only:
        if not args.json or not args.json.exists():
            p.error("--render-only needs an existing --json file")
        records = json.loads(args.json.read_text())["records"]
        md = args.markdown or args.json.with_suffix(".md")
        md.write_text(markdown(records, "python benchmarks/competition.py --json " + str(args.json)))
        return 0
    pin_one_core()
    import torch

    torch.set_num_threads(1)
    chosen = args.only or list(SECTIONS)
    kept: list[dict[str, Any]] = []
    if args.json and args.json.exists():
        kept = [r for r in json.loads(args.json.read_text())["records"] if r.get("section") not in chosen]
    records = []
    for name in chosen:
        for rec in SECTIONS[name].run(args):
            records.append({"section": name, **rec, "quick": args.quick})
        print_table(SECTIONS[name].title, [r for r in records if r["section"] == name], SECTIONS[name].columns)
    records = kept + records
    write_json("competition", records, args.json, packages=("open-spiel", "scipy", "torch"))
    if args.json:
        md = args.markdown or args.json.with_suffix(".md")
        command = "python benchmarks/competition.py " + " ".join(argv if argv is not None else sys.argv[1:])
        md.write_text(markdown(records, command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
