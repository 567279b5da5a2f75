"""The reproduction table: every algorithm on every benchmark env, one command each, one command for all of them.

    python benchmarks/reproduce.py                     # run every row whose JSON is missing, then the table
    python benchmarks/reproduce.py --only mappo        # rows of one algorithm (or env, or ALGO/ENV, wildcards)
    python benchmarks/reproduce.py --table-only        # regenerate REPRODUCTION.md and the plots, train nothing
    python benchmarks/reproduce.py --quick             # every row at a smoke-test budget, into results/quick/

``ROWS`` below is the whole benchmark, declared: algorithm, env, env-steps, seeds, the task's ``--set`` options
(pursuit's reward, cooperative foraging, MADDPG's continuous actions) and, where one exists, a published figure. The
learners' settings are not here: each row trains with its algorithm's tuned preset for the env
(``src/marlkit/experiment/presets/``), which ``learning.py`` applies as ``marlkit train`` does; a row sets
``num_envs``, other ``--set`` values or ``preset`` only to study a variant. Each row is one ``benchmarks/learning.py``
command (run as a subprocess, one at a time) writing ``results/learning_<algo>_<env>.json``; a row whose JSON exists
is skipped unless ``--force``. The table (``results/REPRODUCTION.md``) is generated from the JSON files present: a row
without one says "not run" and shows its command, never a number; an algorithm that cannot train on an env says why
(``unsupported_reason``); a JSON made with other settings than its row resolves to (preset, copies and overrides,
every field compared) is flagged. One PNG per env compares the algorithms' learning
curves (``results/plots/``, drawn by ``marlkit.experiment.logging.plot_runs``).

``--quick`` runs every row with one seed for ``QUICK_STEPS`` env-steps (``QUICK_STEPS_PZ`` through
``from_pettingzoo``, whose copies step in Python) and ``QUICK_EPISODES`` evaluation episodes into ``results/quick/``,
with its own table and plots that say they are a smoke test; the full results are never touched.
"""

from __future__ import annotations

import argparse
import fnmatch
import functools
import json
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/ is not a package
from learning import METRIC_NAMES, summary

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path("benchmarks/results")  # relative to ROOT: commands in the table are run from the repository root
QUICK_DIR = RESULTS / "quick"
LEARNING = "benchmarks/learning.py"

QUICK_STEPS = 50_000
QUICK_STEPS_PZ = 20_000
QUICK_EPISODES = 50
FULL_EPISODES = 200  # learning.py's default and the benchmark's standard


@dataclass(frozen=True)
class Published:
    """A figure someone else published for this algorithm on this task."""

    value: str
    """Mean per-agent episode return (the MPE convention), as the source prints it."""
    source: str
    """Who, on what, after how many env-steps."""


@dataclass(frozen=True)
class EnvInfo:
    """A benchmark env: the short name in file names and its task metrics (record key, column header)."""

    short: str
    metrics: tuple[tuple[str, str], ...] = ()
    note: str = ""


ENVS: dict[str, EnvInfo] = {
    "spread-v0": EnvInfo(
        "spread",
        (("occupied_landmarks", "landmarks occupied (of 3)"), ("collisions_per_episode", "collisions / episode")),
        "Cooperative navigation, identical to mpe2 simple_spread_v3 (3 agents, 25 steps).",
    ),
    "pursuit-v0": EnvInfo(
        "pursuit",
        (("capture_rate", "capture rate"), ("collisions_per_episode", "contacts / episode")),
        "2 pursuers, an evasive target, obstacles; marlkit's own task, so no published figure.",
    ),
    "foraging-v0": EnvInfo(
        "foraging",
        (("food_collected", "food collected (fraction)"),),
        "Level-based foraging 8x8, 2 agents, 2 food, cooperative (`force_coop`: every food needs "
        "both agents loading at once), fully observed, 50 steps (lbforaging rules, individual "
        "rewards; VDN/QMIX learn from their mean). Value-based rows act with ε 0.05 in evaluation "
        "(`eval_epsilon`, as DQN's Atari evaluation): greedy memoryless policies there repeat a "
        "blocked move forever.",
    ),
    "pz:simple_spread_v3": EnvInfo(
        "pz_simple_spread",
        (),
        "mpe2's own simple_spread_v3 through from_pettingzoo (Python copies, ~5x slower "
        "than spread-v0; no task metrics); one seed per row (MAPPO: two), as a check "
        "that the wrapper learns what spread-v0 learns.",
    ),
}

#: pursuit-v0's training reward in every row: contacts weighted 3 (the env's default is 1).
PURSUIT = ("env.kwargs.collision_penalty=3.0",)
#: The cooperative foraging task every foraging-v0 row trains on.
COOP = ("env.kwargs.force_coop=true",)
#: MADDPG's rows on spread act in its continuous action space (Box(0, 1, (5,)), as XuanCe's MADDPG).
CONTINUOUS = ("env.kwargs.continuous_actions=true",)
#: As quoted in issue 6 (XuanCe's MPE benchmark); not re-checked here: XuanCe's current docs hold no MPE table.
XUANCE = "XuanCe, simple_spread_v3, 10M env-steps"


@dataclass(frozen=True)
class Row:
    """One line of the table: one ``benchmarks/learning.py`` command."""

    algo: str
    env: str
    steps: int
    seeds: int
    num_envs: int | None = None
    """Copies stepped at once while training (``--num-envs``); None = the preset's, else the run config's default."""
    sets: tuple[str, ...] = ()
    """``--set`` overrides: the task's options, or a variant's settings over the preset."""
    published: Published | None = None
    preset: str = "auto"
    """``learning.py --preset``: the algorithm's shipped preset for the env unless a variant names another."""

    @property
    def name(self) -> str:
        return f"{self.algo}/{self.env}"

    @property
    def json_name(self) -> str:
        return f"learning_{self.algo}_{ENVS[self.env].short}.json"

    def argv(
        self, json_path: Path, episodes: int = FULL_EPISODES, eval_every: int | None = None, out: str | None = None
    ) -> list[str]:
        """The arguments of ``benchmarks/learning.py`` for this row."""
        args = ["--algo", self.algo, "--env", self.env, "--steps", str(self.steps), "--seeds", str(self.seeds)]
        if self.preset != "auto":
            args += ["--preset", self.preset]
        if self.num_envs is not None:
            args += ["--num-envs", str(self.num_envs)]
        for s in self.sets:
            args += ["--set", s]
        if episodes != FULL_EPISODES:
            args += ["--episodes", str(episodes)]
        if eval_every is not None:
            args += ["--eval-every", str(eval_every)]
        if out is not None:
            args += ["--out", out]
        return [*args, "--json", str(json_path)]


def _rows() -> list[Row]:
    """The declared benchmark. Rows with a committed JSON keep the exact settings that produced it (its ``command``
    with the preset applied); the learners' settings are the presets' (``src/marlkit/experiment/presets/``)."""
    two_m = 2_000_000
    rows = [
        Row("mappo", "spread-v0", two_m, 3, published=Published("-11.64", XUANCE)),
        Row("ippo", "spread-v0", two_m, 3),
        Row("maa2c", "spread-v0", two_m, 3),
        Row("ia2c", "spread-v0", two_m, 3),
        Row("iql", "spread-v0", two_m, 3, published=Published("-19.59", XUANCE)),
        Row("vdn", "spread-v0", two_m, 3, published=Published("-13.09", XUANCE)),
        Row("qmix", "spread-v0", two_m, 5, published=Published("-53.7", XUANCE)),
        Row("maddpg", "spread-v0", two_m, 3, sets=CONTINUOUS, published=Published("-9.80", XUANCE)),
        # pursuit-v0: every row trains on contacts weighted 3 (not 1), so returns compare. A2C: 15M env-steps
        Row("mappo", "pursuit-v0", 4_000_000, 3, sets=PURSUIT),
        Row("ippo", "pursuit-v0", 4_000_000, 3, sets=PURSUIT),
        Row("maa2c", "pursuit-v0", 15_000_000, 3, sets=PURSUIT),
        Row("ia2c", "pursuit-v0", 15_000_000, 3, sets=PURSUIT),
        Row("iql", "pursuit-v0", two_m, 3, sets=PURSUIT),
        Row("vdn", "pursuit-v0", two_m, 3, sets=PURSUIT),
        Row("qmix", "pursuit-v0", two_m, 3, sets=PURSUIT),
        Row("maddpg", "pursuit-v0", two_m, 3, sets=PURSUIT),
        # foraging-v0, cooperative: the value-based rows at 1M env-steps
        Row("mappo", "foraging-v0", two_m, 3, sets=COOP),
        Row("ippo", "foraging-v0", two_m, 3, sets=COOP),
        Row("maa2c", "foraging-v0", two_m, 3, sets=COOP),
        Row("ia2c", "foraging-v0", two_m, 3, sets=COOP),
        Row("iql", "foraging-v0", 1_000_000, 3, sets=COOP),
        Row("vdn", "foraging-v0", 1_000_000, 3, sets=COOP),
        Row("qmix", "foraging-v0", 1_000_000, 3, sets=COOP),
        Row("maddpg", "foraging-v0", two_m, 3, sets=COOP),
    ]
    # mpe2's simple_spread_v3 through from_pettingzoo: every spread-v0 row with one seed (the same task)
    rows += [
        replace(r, env="pz:simple_spread_v3", seeds=2 if r.algo == "mappo" else 1)  # MAPPO: issue 4's check
        for r in rows
        if r.env == "spread-v0"
    ]
    return rows


ROWS: list[Row] = _rows()


# ------------------------------------------------------------------------------------------------- running rows
def quick_row(row: Row) -> Row:
    """The row at the smoke-test budget: one seed, ``QUICK_STEPS`` (``QUICK_STEPS_PZ`` through from_pettingzoo)."""
    return replace(row, steps=QUICK_STEPS_PZ if row.env.startswith("pz:") else QUICK_STEPS, seeds=1)


def invocation(row: Row, folder: Path, quick: bool) -> tuple[Row, list[str]]:
    """The row as it runs (full or quick budget) and its ``benchmarks/learning.py`` arguments."""
    if not quick:
        return row, row.argv(folder / row.json_name)
    run = quick_row(row)
    return run, run.argv(
        folder / row.json_name, episodes=QUICK_EPISODES, eval_every=max(run.steps // 5, 1), out="runs/reproduce-quick"
    )


def command(argv: list[str]) -> str:
    return " ".join(["python", LEARNING, *map(shlex.quote, argv)])


def select(rows: list[Row], patterns: list[str]) -> list[Row]:
    """Rows whose ``algo``, ``env`` or ``algo/env`` matches one of the (fnmatch) patterns; all rows without any."""
    if not patterns:
        return rows
    chosen = [r for r in rows if any(fnmatch.fnmatchcase(s, p) for p in patterns for s in (r.algo, r.env, r.name))]
    if not chosen:
        raise SystemExit(
            f"reproduce.py: error: --only {' '.join(patterns)} matches no row; rows are ALGO/ENV: "
            + ", ".join(r.name for r in rows)
        )
    return chosen


def run_rows(rows: list[Row], folder: Path, quick: bool, force: bool, dry_run: bool) -> list[Row]:
    """Run the rows one after another (a subprocess each); returns the rows that failed."""
    failed = []
    for i, row in enumerate(rows, 1):
        json_path = folder / row.json_name
        if (ROOT / json_path).exists() and not force:
            print(f"[{i}/{len(rows)}] {row.name}: {json_path} exists, skipped (--force runs it again)")
            continue
        _, argv = invocation(row, folder, quick)
        print(f"[{i}/{len(rows)}] {row.name}: {command(argv)}", flush=True)
        if dry_run:
            continue
        start = time.perf_counter()
        done = subprocess.run([sys.executable, LEARNING, *argv], cwd=ROOT)
        print(
            f"[{i}/{len(rows)}] {row.name}: {'done' if done.returncode == 0 else 'FAILED'} in "
            f"{time.perf_counter() - start:,.0f} s",
            flush=True,
        )
        if done.returncode != 0:
            failed.append(row)
    return failed


# ------------------------------------------------------------------------------------------------------- table
@functools.cache
def unsupported(algo: str, env_id: str) -> str | None:
    """Why ``algo`` cannot train on ``env_id`` (the registry's own reason, shortened for a table), or None."""
    from marlkit.algorithms.registry import algo_spec, unsupported_reason
    from marlkit.experiment.run import make_run_config
    from marlkit.experiment.runner import make_env

    try:
        env = make_env(make_run_config("mappo", env_id), 1)
    except Exception as e:  # noqa: BLE001 - whatever stops the env (e.g. mpe2 not installed), the table renders and says so
        return f"the env cannot be built here: {e}"
    reason = unsupported_reason(algo_spec(algo), env)
    return None if reason is None else reason.split(" (")[0].split(";")[0]


def load_results(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    return json.loads(path.read_text())


def mismatch(row: Row, doc: dict[str, Any]) -> list[str]:
    """Where the JSON's settings differ from the row's: env-steps, seeds, and every env and algo field as each
    resolves (the JSON: the preset settings it records, its copies and ``--set`` overrides; the row: its preset,
    copies and overrides), so a JSON made before a setting moved into a preset still matches its row."""
    from marlkit.core.config import ConfigError

    trained = [r for r in doc["records"] if r["algo"] != "random"]
    first = trained[0]
    steps = doc.get("config", {}).get("experiment", {}).get("steps")
    found = {"algo": first["algo"], "env": first["env"], "steps": steps, "seeds": len(trained)}
    declared = {"algo": row.algo, "env": row.env, "steps": row.steps, "seeds": row.seeds}
    diffs = [f"{k} {found[k]!r} (row: {declared[k]!r})" for k in declared if found[k] != declared[k]]
    if found["algo"] != row.algo or found["env"] != row.env:
        return diffs
    try:
        made = resolved_settings(
            row.algo,
            row.env,
            "none",
            first.get("num_envs"),
            split_sets(first.get("sets", "")),
            first.get("preset_settings", {}),
        )
        wanted = resolved_settings(row.algo, row.env, row.preset, row.num_envs, row.sets)
    except (ConfigError, FileNotFoundError) as e:
        return [*diffs, f"settings not comparable here ({e})"]
    return diffs + [
        f"{k} {made.get(k, UNSET)!r} (row: {wanted.get(k, UNSET)!r})"
        for k in dict.fromkeys([*wanted, *made])
        if made.get(k, UNSET) != wanted.get(k, UNSET)
    ]


class _Unset:
    """A key one side of a comparison does not have (an env kwarg only the other sets)."""

    def __repr__(self) -> str:
        return "unset"


UNSET = _Unset()


def resolved_settings(
    algo: str,
    env: str,
    preset: str,
    num_envs: int | None,
    sets: tuple[str, ...] | list[str],
    preset_settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Every env and algo field (``"algo.lr"``: value) a ``learning.py`` command trains with, as ``learning.py``
    resolves it; ``preset_settings`` (a record's) are applied as if a preset had set them."""
    from marlkit.experiment.run import make_run_config

    cfg = make_run_config(algo, env, preset=preset, sets=sets, **{**(preset_settings or {}), "num_envs": num_envs})
    data = cfg.to_dict()
    return _flat({"env": data["env"], "algo": data["algo"]})


def split_sets(text: str) -> list[str]:
    """A record's ``sets`` (the ``--set`` values joined by spaces) as the list of ``key=value`` strings."""
    return re.split(r"\s+(?=[A-Za-z_][\w.]*=)", text.strip()) if text.strip() else []


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):  # an empty mapping (no env kwargs) holds no setting
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _mean_std(stats: dict[str, float] | None, digits: int = 2) -> str:
    if not stats:
        return "–"
    if stats["seeds"] == 1:
        return f"{stats['mean']:.{digits}f}"
    return f"{stats['mean']:.{digits}f} ± {stats['std']:.{digits}f}"


def table_rows(
    rows: list[Row], folder: Path, env_id: str, quick: bool = False, failed: frozenset[str] = frozenset()
) -> tuple[list[str], list[list[str]], list[str], list[str]]:
    """Header, cells and footnotes of one env's table: its declared rows, then the registered algorithms that cannot
    train on it ("n/a (reason)"); last, the registered algorithms with neither (no row declared)."""
    from marlkit.algorithms.registry import list_algos

    info = ENVS[env_id]
    header = [
        "algo",
        "env-steps",
        "seeds",
        "return (mean ± std)",
        *(h for _, h in info.metrics),
        "wall per seed",
        "random policy",
        "published",
        "command",
    ]
    dash = ["–"] * len(info.metrics)
    cells, notes, undeclared = [], [], []
    declared = {r.algo: r for r in rows if r.env == env_id}
    for algo in declared:
        row = declared[algo]
        run, argv = invocation(row, folder, quick)
        json_path = folder / row.json_name
        cmd = f"`{command(argv)}`"
        # a smoke run is no comparison with anyone's figure: the quick table leaves the column empty
        published = f"{row.published.value} ({row.published.source})" if row.published and not quick else ""
        doc = load_results(ROOT / json_path)  # ROOT / an absolute folder is the folder itself
        if doc is None:
            status = "failed (see the run's output)" if row.name in failed else "not run"
            cells.append([algo, f"{run.steps:,}", str(run.seeds), status, *dash, "–", "–", published, cmd])
            continue
        stats = summary(doc["records"], ["eval_return_mean", *(k for k, _ in info.metrics), "wall_s", "load_avg_1min"])
        ours, random = stats.get(algo, {}), stats.get("random", {})
        wall, load = ours.get("wall_s"), ours.get("load_avg_1min")
        wall_text = "–" if not wall else _duration(wall["mean"])
        if wall and load:
            wall_text += f" (load {load['mean']:.1f})"
        result = _mean_std(ours.get("eval_return_mean"))
        if diffs := mismatch(run, doc):
            notes.append(
                f"{algo}: `{json_path}` was made with other settings than the row declares: " + "; ".join(diffs) + "."
            )
            result += f" (note {len(notes)})"
        env_steps = max(r["env_steps"] for r in doc["records"] if r["algo"] == algo)
        seeds = ours.get("eval_return_mean", {}).get("seeds", 0)
        cells.append(
            [
                algo,
                f"{env_steps:,}",
                str(seeds),
                f"**{result}**",
                *(_mean_std(ours.get(k)) for k, _ in info.metrics),
                wall_text,
                _mean_std(random.get("eval_return_mean")),
                published,
                cmd,
            ]
        )
    for algo in (a for a in list_algos("batched") if a not in declared):
        if reason := unsupported(algo, env_id):
            cells.append([algo, "–", "–", f"n/a ({reason})", *dash, "–", "–", "", ""])
        else:
            undeclared.append(algo)
    return header, cells, notes, undeclared


def _markdown(header: list[str], cells: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
    return "\n".join(lines)


INTRO = """\
Generated by `python benchmarks/reproduce.py{flag}` from the JSON files in `{folder}/` — do not edit by hand; change
the rows in `benchmarks/reproduce.py` and run `python benchmarks/reproduce.py{flag} --table-only`. Each command trains
with the learner's tuned preset for the env (`src/marlkit/experiment/presets/`, applied as by `marlkit train`).

Every number is a greedy evaluation of the final policy ({episodes} episodes per seed) and is the **mean per-agent
episode return** (the MPE convention), as mean ± sample std across seeds (one seed: the value alone). Task metrics
are per episode, averaged the same way. *random policy*: a uniformly random team on the same evaluation episodes.
*wall per seed*: training wall-clock of one seed on a 2-core machine shared with other jobs, with the 1-minute load
average while it trained; compare wall times only at similar load. *published*: the figure the named source
reports, at its own budget and settings (XuanCe: 10M env-steps against our 2M, its own hyper-parameters; its MAPPO
uses continuous actions), so it is context rather than a like-for-like comparison; no IPPO figure and no EPyMARL or
MAPPO-paper figure for these envs was found in a form checked against this env's reward convention, so those cells
are empty. *not run*: the row has no result JSON yet; its command is what produces it (run from the repository
root; `python benchmarks/reproduce.py --only ALGO/ENV` runs the same). Learning curves: `{plots}/`.
"""

QUICK_INTRO = """\
> **Quick smoke run — not results.** One seed, {steps:,} env-steps ({steps_pz:,} through `from_pettingzoo`),
> {episodes} evaluation episodes, the rows' settings otherwise. This only shows that every row runs end to end in
> minutes; nothing here trained long enough to compare with `benchmarks/results/REPRODUCTION.md` or a published
> figure, so the *published* column is left empty. Regenerate with `python benchmarks/reproduce.py --quick --force`.
"""


def write_table(
    rows: list[Row], folder: Path, quick: bool = False, failed: frozenset[str] = frozenset(), out: Path | None = None
) -> Path:
    """Write ``folder/REPRODUCTION.md`` (or ``out``): one section per env, from the JSON files in ``folder``."""
    title = "Reproduction table — quick smoke run" if quick else "Reproduction table"
    parts = [f"# {title}\n"]
    if quick:
        parts.append(QUICK_INTRO.format(steps=QUICK_STEPS, steps_pz=QUICK_STEPS_PZ, episodes=QUICK_EPISODES))
    parts.append(
        INTRO.format(
            folder=folder,
            flag=" --quick" if quick else "",
            plots=folder / "plots",
            episodes=QUICK_EPISODES if quick else FULL_EPISODES,
        )
    )
    undeclared: dict[str, list[str]] = {}
    for env_id in dict.fromkeys(r.env for r in rows):
        header, cells, notes, missing = table_rows(rows, folder, env_id, quick, failed)
        for algo in missing:
            undeclared.setdefault(algo, []).append(env_id)
        parts.append(f"## {env_id}\n\n{ENVS[env_id].note}\n\n{_markdown(header, cells)}\n")
        plot = folder / "plots" / f"{ENVS[env_id].short}.png"
        if (ROOT / plot).exists():
            parts.append(f"Learning curves: [`plots/{plot.name}`](plots/{plot.name})\n")
        parts += [f"{i}. {n}" for i, n in enumerate(notes, 1)]
        if notes:
            parts.append("")
    if undeclared:
        parts.append(
            "Registered algorithms without a row here: "
            + "; ".join(f"{a} ({', '.join(envs)})" for a, envs in undeclared.items())
            + "."
        )
    out = out or ROOT / folder / "REPRODUCTION.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(parts).rstrip() + "\n")
    return out


def write_plots(rows: list[Row], folder: Path, quick: bool = False) -> list[Path]:
    """One PNG per env: the learning curves of every row with a JSON, return and the env's first task metric."""
    from marlkit.experiment.logging import plot_runs

    written = []
    for env_id in dict.fromkeys(r.env for r in rows):
        paths = [ROOT / folder / r.json_name for r in rows if r.env == env_id]
        paths = [path for path in paths if path.exists()]
        if not paths:
            continue
        info = ENVS[env_id]
        curve_key = {record: curve for curve, record in METRIC_NAMES.items()}  # capture_rate -> capture
        keys = ("eval/episode_return", *(f"eval/{curve_key.get(k, k)}" for k, _ in info.metrics[:1]))
        steps = QUICK_STEPS_PZ if env_id.startswith("pz:") else QUICK_STEPS
        budget = f"QUICK SMOKE RUN: 1 seed, {steps:,} env-steps" if quick else "greedy evaluations while training"
        budget += "; band: min-max over seeds"
        written.append(
            plot_runs(paths, ROOT / folder / "plots" / f"{info.short}.png", keys=keys, title=f"{env_id} ({budget})")
        )
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="PATTERN",
        help="rows whose algo, env or ALGO/ENV matches (fnmatch; repeatable), e.g. mappo, 'pursuit-v0', '*/spread-v0'",
    )
    p.add_argument("--force", action="store_true", help="run rows whose JSON already exists again")
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"1 seed, {QUICK_STEPS:,} env-steps ({QUICK_STEPS_PZ:,} through from_pettingzoo), "
        f"{QUICK_EPISODES} eval episodes, into {QUICK_DIR}/",
    )
    p.add_argument("--table-only", action="store_true", help="train nothing: regenerate the table and plots")
    p.add_argument("--dry-run", action="store_true", help="print the commands that would run, run nothing")
    p.add_argument("--no-plots", action="store_true", help="skip the PNGs")
    args = p.parse_args(argv)

    folder = QUICK_DIR if args.quick else RESULTS
    rows = select(ROWS, args.only)
    failed: list[Row] = []
    start = time.perf_counter()
    if not args.table_only:
        for row in rows:
            if reason := unsupported(row.algo, row.env):
                raise SystemExit(f"reproduce.py: error: row {row.name} is declared but {reason}")
        failed = run_rows(rows, folder, args.quick, args.force, args.dry_run)
        print(
            f"{len(rows)} rows in {time.perf_counter() - start:,.0f} s"
            + (f"; failed: {', '.join(r.name for r in failed)}" if failed else "")
        )
    if args.dry_run:
        return 0
    if not args.no_plots:
        for path in write_plots(ROWS, folder, args.quick):
            print(f"wrote {path.relative_to(ROOT)}")
    table = write_table(ROWS, folder, args.quick, frozenset(r.name for r in failed))
    print(f"wrote {table.relative_to(ROOT)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
