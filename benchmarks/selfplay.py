"""Self-play against a policy pool: tag-v0 predators and prey, rock-paper-scissors and the turn-based games.

    python benchmarks/selfplay.py [--quick] [--json benchmarks/results/selfplay.json]

**tag-v0.** MAPPO learns both sides (predators ``adversaries`` and prey ``good``) by self-play against a pool of its
own snapshots (``marlkit.experiment.selfplay``: PFSP with the ``hard`` weighting, a snapshot every 20 updates, 4
opponents per collection). A player is a snapshot of both sides; a game is a paired, role-swapped pair of
greedy episodes from one initial state (``marlkit.population.selfplay.match``). The floor: the final player beats
the frozen snapshot taken at 10% of the budget by >= 200 rating points, rated with Elo (online, K = 16, scale
400, initial 1500, the games in a seeded random order) and openskill (PlackettLuce; its mu difference converted
to Elo points by ``openskill_elo_scale``) over ``H2H_GAMES`` paired games. Also reported: the predators alone —
catches per episode of the final and of the earlier predators against the same prey (the final prey) — and the
cross-play of the whole pool (win rates of every pair, heat map in benchmarks/results/plots/).

**rock-paper-scissors** and its biased variant (Nash (1/4, 1/2, 1/4)). Fictitious self-play of IPPO (gamma 0: the
game is one shot): each iteration a new response (the learner restarted, ``fresh_response``) trains ``FSP_UPDATES``
updates against opponents drawn uniformly from the pool, then joins it; the pool's average strategy is what
approaches the Nash equilibrium (floor: exploitability <= 0.05, ``marlkit.population.exploitability``, exact). Two
ablations on the same budget: responses to the latest snapshot only, and one warm-started learner (no restart).

**Turn-based games** (Kuhn poker, Leduc hold'em, tic-tac-toe and connect four through the PettingZoo bridge; see
``turns``): IPPO by self-play against a PFSP pool, rated against uniform random and its own first snapshot.

``run(quick)`` returns the records (``quick``: a short budget, for a smoke run).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_json

RESULTS = Path(__file__).resolve().parent / "results"
H2H_GAMES = 512
TAG_STEPS, TAG_STEPS_QUICK = 500_000, 32_000
#: Fictitious self-play on the one-shot matrix games: env-steps (full, quick) and IPPO's settings (gamma 0: one shot).
FSP_STEPS, FSP_STEPS_QUICK = 960_000, 32_000
FSP_SETS = {
    "algo.rollout_steps": 5,
    "algo.epochs": 1,
    "algo.minibatches": 1,
    "algo.advantage_norm": False,
    "algo.entropy_coef": 0.03,
    "algo.lr": 1e-2,
    "algo.gamma": 0.0,
}


def _quiet(**extra: Any) -> dict[str, Any]:
    return {"progress": False, "gif": False, "eval_every": 0, "log_every": 10**9, **extra}


def tag(quick: bool, out: Path, seed: int = 0) -> dict[str, Any]:
    """Train by self-play on tag-v0 into ``out``, then rate (``tag_report``)."""
    from marlkit.experiment.selfplay import selfplay

    steps = TAG_STEPS_QUICK if quick else TAG_STEPS
    sp = {"sampling": "pfsp", "weighting": "hard", "snapshot_every": 2 if quick else 10, "opponents_per_batch": 4}
    t0 = time.perf_counter()
    result = selfplay(
        "mappo",
        "tag-v0",
        steps=steps,
        seed=seed,
        selfplay=sp,
        num_envs=128,
        out=str(out),
        checkpoint_every=steps // 2,
        **_quiet(),
    )
    record = tag_report(result.run_dir, seed, h2h_games=H2H_GAMES, cross_games=16 if quick else 64, quick=quick)
    return {**record, "train_wall_s": round(time.perf_counter() - t0, 1)}


def tag_report(run_dir: Path, seed: int, h2h_games: int, cross_games: int, quick: bool) -> dict[str, Any]:
    """The final snapshot of a tag-v0 self-play run against the one at 10% of its budget, and the pool's
    cross-play (heat map)."""
    from marlkit.experiment.league import plot_cross_play
    from marlkit.experiment.run import RunConfig
    from marlkit.experiment.runner import make_env
    from marlkit.population import ratings
    from marlkit.population.pool import PolicyPool
    from marlkit.population.selfplay import cross_play, default_sides, match, side_returns

    pool = PolicyPool.load(run_dir / "pool")
    final = pool[-1]
    earlier = min(pool.snapshots, key=lambda s: abs(s.env_steps - 0.1 * final.env_steps))
    cfg = RunConfig.load(run_dir)
    env = make_env(cfg, h2h_games)
    sides = default_sides(env)
    outcome, score = match(env, final.build(seed), earlier.build(seed), sides, seed=seed + 1)
    games = ratings.interleave([(0, 1, float(o)) for o in outcome], seed)
    elo = ratings.elo(games, 2)
    skill = ratings.openskill_ratings(games, 2)
    win = float(outcome.mean())
    # Predators alone against the same prey (the final prey): catches per episode (a predator's return / 10).
    new_pred = side_returns(env, [final.build(seed), final.build(seed)], sides, seed + 2)
    old_pred = side_returns(env, [earlier.build(seed), final.build(seed)], sides, seed + 2)
    cross_env = make_env(cfg, cross_games)
    players = [s.build(seed) for s in pool.snapshots]
    cross = cross_play(cross_env, players, [f"{s.env_steps // 1000}k" for s in pool.snapshots], sides, seed + 3)
    plot = plot_cross_play(
        cross,
        RESULTS / "plots" / f"selfplay_tag{'_quick' if quick else ''}_crossplay.png",
        "tag-v0 self-play pool: win rate of row vs column",
    )
    pool_elo = ratings.elo(ratings.interleave(cross.games, seed), len(players))
    elo_gap = float(elo[0] - elo[1])
    return {
        "task": "tag-v0",
        "method": "mappo self-play, pfsp hard",
        "seed": seed,
        "env_steps": final.env_steps,
        "pool_size": len(pool),
        "final": final.name,
        "earlier": earlier.name,
        "earlier_env_steps": earlier.env_steps,
        "h2h_games": len(outcome),
        "h2h_win_rate": win,
        "h2h_draw_rate": float((outcome == 0.5).mean()),
        "h2h_mean_score": float(score.mean()),
        "elo_final": float(elo[0]),
        "elo_earlier": float(elo[1]),
        "elo_gap": elo_gap,
        "elo_gap_from_win_rate": float(400 * np.log10(max(win, 1e-6) / max(1 - win, 1e-6))),
        "openskill_final": [skill[0].mu, skill[0].sigma],
        "openskill_earlier": [skill[1].mu, skill[1].sigma],
        "openskill_gap_elo_points": float((skill[0].mu - skill[1].mu) * ratings.openskill_elo_scale()),
        "catches_final_predators_vs_final_prey": float(new_pred[:, 0].mean() / 10),
        "catches_earlier_predators_vs_final_prey": float(old_pred[:, 0].mean() / 10),
        "pool_elo": dict(zip(cross.names, np.round(pool_elo, 1).tolist())),
        "crossplay": cross.to_data(),
        "heatmap": str(plot.relative_to(RESULTS.parent.parent)),
        "floor": ">= 200 Elo points over the snapshot at 10% of the budget",
        "floor_met": bool(elo_gap >= 200),
    }


#: Turn-based games: (algo, env id, env-steps full, env-steps quick, seeds, gamma).
TURN_RUNS: list[tuple[str, str, int, int, tuple[int, ...], float]] = [
    ("ippo", "kuhn-poker-v0", 100_000, 20_000, (0, 1, 2), 1.0),
    ("ippo", "leduc-poker-v0", 200_000, 0, (0,), 1.0),
    ("ippo", "pz:tictactoe_v3", 200_000, 20_000, (0, 1, 2), 0.99),
    ("ippo", "pz:connect_four_v3", 200_000, 0, (0,), 0.99),
]
TURN_GAMES = 1000
#: Self-play config of the turn-based runs: PFSP (hard) over snapshots taken every 10 updates, win rates from
#: sampled games (board games without chance repeat one game when both players act greedily).
TURN_SELFPLAY = {"sampling": "pfsp", "weighting": "hard", "snapshot_every": 10, "match_explore": True}


def turns(quick: bool, out: Path, envs: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """Self-play against a PFSP pool on the turn-based games (``TURN_RUNS``, 32 copies; in each copy the learner
    plays one seat, alternating over copies, and a snapshot from the pool the other). Reported per run, over
    ``TURN_GAMES`` paired, role-swapped games (``marlkit.population.selfplay.match``; a game is won when the
    player's return summed over both seats exceeds the opponent's): the greedy final player's win rate against
    a uniformly random player (and the first snapshot's, the untrained learner, for the baseline); the final
    player against the first snapshot, both sampling their actions, its win rate and the Elo gap of those games
    (``marlkit.population.ratings.elo``, games in a seeded random order); and, for tic-tac-toe, the pool's
    cross-play heat map."""
    import marlkit
    from marlkit.algorithms.team_policies import RandomPolicy
    from marlkit.core import PolicySpaces
    from marlkit.experiment.league import plot_cross_play
    from marlkit.experiment.selfplay import selfplay
    from marlkit.population import ratings
    from marlkit.population.pool import PolicyPool
    from marlkit.population.selfplay import cross_play, default_sides, match

    records = []
    for algo, env_id, full, short, seeds, gamma in TURN_RUNS:
        steps = short if quick else full
        if not steps or (envs is not None and env_id not in envs):
            continue
        for seed in seeds[:1] if quick else seeds:
            t0 = time.perf_counter()
            result = selfplay(
                algo,
                env_id,
                steps=steps,
                seed=seed,
                selfplay=TURN_SELFPLAY,
                num_envs=32,
                out=str(out),
                preset="none",
                checkpoint_every=0,
                gamma=gamma,
                **_quiet(),
            )
            wall = time.perf_counter() - t0
            pool = PolicyPool.load(result.run_dir / "pool")
            env = marlkit.make(env_id, num_envs=TURN_GAMES)
            sides = default_sides(env)
            final, first = pool[-1].build(seed), pool[0].build(seed)
            rand = RandomPolicy(PolicySpaces.from_env(env), seed + 7)
            vs_random, _ = match(env, final, rand, sides, seed + 1)
            first_vs_random, _ = match(env, first, rand, sides, seed + 1)
            vs_first, _ = match(env, final, first, sides, seed + 2, explore=True)
            elo = ratings.elo(ratings.interleave([(0, 1, float(o)) for o in vs_first], seed), 2)
            rec: dict[str, Any] = {
                "task": env_id,
                "method": f"{algo} self-play, pfsp hard",
                "seed": seed,
                "env_steps": result.env_steps,
                "pool_size": len(pool),
                "gamma": gamma,
                "h2h_games": TURN_GAMES,
                "vs_random_win_rate": float((vs_random == 1.0).mean()),
                "vs_random_draw_rate": float((vs_random == 0.5).mean()),
                "vs_random_score": float(vs_random.mean()),
                "first_vs_random_win_rate": float((first_vs_random == 1.0).mean()),
                "vs_first_win_rate": float((vs_first == 1.0).mean()),
                "h2h_win_rate": float(vs_first.mean()),
                "elo_gap": float(elo[0] - elo[1]),
                "train_wall_s": round(wall, 1),
            }
            if env_id == "pz:tictactoe_v3" and seed == seeds[0]:
                every = max(1, len(pool) // 8)
                chosen = pool.snapshots[::every] + ([pool[-1]] if (len(pool) - 1) % every else [])
                cross_env = marlkit.make(env_id, num_envs=64)
                names = [f"{s.env_steps // 1000}k" for s in chosen]
                cross = cross_play(cross_env, [s.build(seed) for s in chosen], names, sides, seed + 3, explore=True)
                name = f"selfplay_tictactoe{'_quick' if quick else ''}_crossplay.png"
                plot = plot_cross_play(cross, RESULTS / "plots" / name, "tic-tac-toe self-play pool: row vs column")
                rec["crossplay"] = cross.to_data()
                rec["heatmap"] = str(plot.relative_to(RESULTS.parent.parent))
            records.append(rec)
            print(
                f"{env_id} seed {seed}: vs random {rec['vs_random_win_rate']:.3f} (first "
                f"{rec['first_vs_random_win_rate']:.3f}), vs first {rec['vs_first_win_rate']:.3f}, "
                f"Elo gap {rec['elo_gap']:.0f}, {wall:.0f} s",
                flush=True,
            )
    return records


#: (env id, sampling, fresh_response, seeds): fictitious self-play (uniform, a new response per iteration) and its
#: two ablations, the pool ignored (latest: each response to the one before) and no restart (one warm learner).
FSP_RUNS = [
    (env, sampling, fresh, seeds)
    for env in ("rock-paper-scissors-v0", "biased-rock-paper-scissors-v0")
    for sampling, fresh, seeds in (("uniform", True, (0, 1, 2)), ("latest", True, (0,)), ("uniform", False, (0,)))
]
#: Updates per iteration: each iteration's response is the snapshot taken at its end.
FSP_UPDATES = 10
FSP_FLOOR = 0.05


def rps(quick: bool, out: Path, envs: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """Fictitious self-play on the one-shot matrix games (``FSP_RUNS``): every ``FSP_UPDATES`` updates the learner's
    policy joins the pool; with ``fresh_response`` the learner then restarts, so each snapshot is a new approximate
    best response to the opponents drawn (the pool's uniform mixture, or the latest snapshot). Reported: the
    exploitability of the pool's average strategy (the strategy fictitious play converges in), of the last snapshot
    and its curve over the iterations."""
    import marlkit
    from marlkit.experiment.selfplay import selfplay
    from marlkit.population import env_payoffs, exploitability, zero_sum_nash
    from marlkit.population.pool import PolicyPool
    from marlkit.population.selfplay import one_shot_strategy

    records = []
    for env_id, sampling, fresh, seeds in FSP_RUNS:
        if envs is not None and env_id not in envs:
            continue
        game = marlkit.make(env_id)
        payoffs = env_payoffs(game)
        nash = zero_sum_nash(payoffs[0]).row
        for seed in seeds[:1] if quick else seeds:
            t0 = time.perf_counter()
            result = selfplay(
                "ippo",
                env_id,
                steps=FSP_STEPS_QUICK if quick else FSP_STEPS,
                seed=seed,
                selfplay={"sampling": sampling, "snapshot_every": FSP_UPDATES, "fresh_response": fresh},
                num_envs=64,
                out=str(out),
                preset="none",
                checkpoint_every=0,
                **_quiet(),
                **FSP_SETS,
            )
            wall = time.perf_counter() - t0
            pool = PolicyPool.load(result.run_dir / "pool")
            strategies = np.array([one_shot_strategy(s.build(seed), game) for s in pool.snapshots])
            avg, last = strategies.mean(axis=0), strategies[-1]
            curve = [(n, float(exploitability(payoffs, [strategies[:n].mean(axis=0)] * 2))) for n in _marks(len(pool))]
            method = {
                ("uniform", True): "fictitious self-play",
                ("latest", True): "fsp ablation: latest snapshot only",
                ("uniform", False): "fsp ablation: no restart",
            }.get((sampling, fresh), f"self-play, {sampling}")
            records.append(
                {
                    "task": env_id,
                    "method": f"ippo {method}",
                    "seed": seed,
                    "env_steps": result.env_steps,
                    "iterations": len(pool) - 1,
                    "updates_per_iteration": FSP_UPDATES,
                    "train_wall_s": round(wall, 1),
                    "nash": nash.round(4).tolist(),
                    "average_strategy": avg.round(4).tolist(),
                    "last_strategy": last.round(4).tolist(),
                    "exploitability_average": float(exploitability(payoffs, [avg, avg])),
                    "exploitability_last": float(exploitability(payoffs, [last, last])),
                    "exploitability_snapshots_mean": float(
                        np.mean([exploitability(payoffs, [x, x]) for x in strategies])
                    ),
                    "distance_to_nash": float(np.abs(avg - nash).max()),
                    "argmax_changes": int((np.diff(strategies.argmax(axis=1)) != 0).sum()),
                    "exploitability_curve": curve,
                    "floor": f"average exploitability <= {FSP_FLOOR}",
                    "floor_met": bool(exploitability(payoffs, [avg, avg]) <= FSP_FLOOR),
                }
            )
            r = records[-1]
            print(f"{env_id} {method} seed {seed}: average {r['exploitability_average']:.4f}", flush=True)
    return records


def _marks(n: int) -> list[int]:
    """Pool sizes at which the average's exploitability is recorded: 1, 2, 5, 10, ... and ``n``."""
    return [m * 10**e for e in range(6) for m in (1, 2, 5) if m * 10**e < n] + [n]


def run(quick: bool, parts: tuple[str, ...] = ("tag", "rps", "turns"), out: str | None = None) -> list[dict[str, Any]]:
    """Every record of this benchmark (``quick``: short budgets; ``parts``: which of tag, rps and turns; ``out``:
    keep the run directories there instead of a temporary folder)."""
    import torch

    torch.set_num_threads(1)
    records: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="selfplay_bench_") as tmp:
        if "tag" in parts:
            records.append(tag(quick, Path(out or tmp)))
        if "rps" in parts:
            records.extend(rps(quick, Path(out or tmp)))
        if "turns" in parts:
            records.extend(turns(quick, Path(out or tmp)))
    return records


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short budgets (a smoke run)")
    parser.add_argument("--json", metavar="PATH", help="write the records here (e.g. benchmarks/results/selfplay.json)")
    parser.add_argument("--only", choices=("tag", "rps", "turns"), help="run one part only")
    parser.add_argument("--out", metavar="DIR", help="keep the run directories here")
    parser.add_argument("--report", metavar="RUN_DIR", help="only rate an existing tag-v0 self-play run")
    args = parser.parse_args()
    t0 = time.perf_counter()
    if args.report:
        records = [tag_report(Path(args.report), 0, H2H_GAMES, 16 if args.quick else 64, args.quick)]
    else:
        records = run(args.quick, (args.only,) if args.only else ("tag", "rps", "turns"), args.out)
    tag_rows = [r for r in records if r["task"] == "tag-v0"]
    print_table(
        "tag-v0 self-play",
        tag_rows,
        ["final", "earlier", "h2h_win_rate", "elo_gap", "openskill_gap_elo_points", "floor_met"],
    )
    rps_rows = [r for r in records if "rock-paper" in r["task"]]
    print_table(
        "rock-paper-scissors", rps_rows, ["method", "exploitability_average", "exploitability_last", "argmax_changes"]
    )
    turn_rows = [r for r in records if r["task"] in {run[1] for run in TURN_RUNS}]
    columns = ["task", "seed", "vs_random_win_rate", "first_vs_random_win_rate", "h2h_win_rate", "elo_gap"]
    print_table("turn-based games", turn_rows, columns)
    if args.json:
        doc = write_json("selfplay", records, args.json, ("openskill", "trueskill", "torch", "numpy"))
        print(f"wrote {args.json} ({time.perf_counter() - t0:.0f} s)", doc["benchmark"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
