"""Progress: a live rich bar on a terminal, one plain line per log event everywhere else.

The bar shows env-steps done of those the run will train, env-steps/s, the latest training return and the ETA.
Without a terminal (CI, a pipe, a log file) or with ``experiment.progress=false`` it prints one line per log event
instead, so logs stay readable and small. A run trains whole collections, so one whose budget is not a multiple of
a collection's env-steps ends past it: the first and last lines say so, and the total shown is where it ends.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

from marlkit.core.rundir import MEDIA_DIR
from marlkit.experiment.callbacks import RunView
from marlkit.experiment.run import RunResult


def _fmt_duration(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}"


def _count(n: int, one: str, many: str | None = None) -> str:
    """``n`` and the noun, singular for 1: ``1 collection``, ``3 collections``."""
    return f"{n:,} {one if n == 1 else many or one + 's'}"


class Progress:
    """A runner callback that shows how training goes (bar on a TTY, lines otherwise)."""

    name = "progress"

    def __init__(self, live: bool | None = None, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout
        self._live_arg = live
        self.live = False
        self._bar: Any = None
        self._task: Any = None
        self._return = "–"
        self._rate = "–"
        self._start_time = 0.0
        self._start_steps = 0
        self._total = 0
        self._per = 0  # env-steps per collection when the run starts; 0 for batches not known ahead
        self._last_steps = 0
        self._batch_sizes: set[int] = set()

    def on_start(self, runner: RunView) -> None:
        cfg = runner.config
        live = self._live_arg
        if live is None:
            live = cfg.experiment.progress and self.stream.isatty()
        self.live = bool(live)
        self._start_time, self._start_steps = time.perf_counter(), runner.env_steps
        self._total = runner.planned_steps()
        budget = cfg.experiment.steps
        per = runner.steps_per_collection
        self._per, self._last_steps, self._batch_sizes = per, runner.env_steps, set()
        planned = f" ({self._total:,} in whole collections of {per:,})" if self._total > budget else ""
        head = (
            f"training {cfg.algorithm} on {cfg.env.id} for {budget:,} env-steps{planned} "
            f"(seed {cfg.experiment.seed}) -> {runner.run_dir}"
        )
        if runner.resumed:
            head += f", resumed at {runner.env_steps:,}"
        if self.live:
            from rich.console import Console
            from rich.progress import BarColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as Bar

            console = Console(file=self.stream)
            console.print(head)
            self._bar = Bar(
                TextColumn("[bold]{task.description}"),
                BarColumn(bar_width=20),
                TextColumn("{task.completed:,.0f}/{task.total:,.0f}"),
                TextColumn("{task.fields[rate]} steps/s"),
                TextColumn("return {task.fields[ret]}"),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=console,
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(
                cfg.algorithm, total=self._total, completed=runner.env_steps, rate=self._rate, ret=self._return
            )
        else:
            self._print(head)

    def on_update(self, runner: RunView, metrics: dict[str, float]) -> None:
        self._batch_sizes.add(runner.env_steps - self._last_steps)
        self._last_steps = runner.env_steps
        if self.live:
            self._bar.update(self._task, completed=min(runner.env_steps, self._total))

    def on_log(self, runner: RunView, row: dict[str, float]) -> None:
        if "train/episode_return" in row:
            self._return = f"{row['train/episode_return']:.3g}"
        if "perf/env_steps_per_s" in row:
            self._rate = f"{row['perf/env_steps_per_s']:,.0f}"
        if self.live:
            self._bar.update(self._task, rate=self._rate, ret=self._return)
            return
        total = self._total
        elapsed = time.perf_counter() - self._start_time
        done = runner.env_steps - self._start_steps
        eta = elapsed / done * (total - runner.env_steps) if done > 0 else float("nan")
        width = len(f"{total:,}")
        self._print(
            f"[{runner.env_steps:>{width},}/{total:,}] return {self._return} | {self._rate} steps/s | "
            f"elapsed {_fmt_duration(elapsed)} | eta {_fmt_duration(eta)}"
        )

    def on_eval(self, runner: RunView, results: dict[str, float]) -> None:
        line = f"eval at {runner.env_steps:,} env-steps: return {results.get('eval/episode_return', float('nan')):.4g}"
        # with several groups (teams that may be opponents), each group's return; then the task metrics
        extra = [
            f"{k.removeprefix('eval/episode_return/')} {v:.3g}"
            for k, v in results.items()
            if k.startswith("eval/episode_return/")
        ]
        extra += [
            f"{k.removeprefix('eval/')} {v:.3g}"
            for k, v in results.items()
            if k not in ("eval/episode_return", "eval/episodes") and not k.startswith("eval/episode_return/")
        ]
        if extra:
            line += " (" + ", ".join(extra) + ")"
        self._print(line)

    def on_end(self, runner: RunView, result: RunResult) -> None:
        if self.live:
            self._bar.update(self._task, completed=min(runner.env_steps, self._total))
            self._bar.stop()
        ev = result.eval
        self._print(
            f"final evaluation ({ev['episodes']} episodes): mean per-agent return "
            f"{ev['episode_return']['mean']:.4g} ± {ev['episode_return']['std']:.3g}"
        )
        groups = ev["group_return"] if len(ev["group_return"]) > 1 else {}
        if groups or ev["metrics"]:
            parts = [f"{g} {s['mean']:.4g}" for g, s in groups.items()]
            parts += [f"{k} {s['mean']:.4g}" for k, s in ev["metrics"].items()]
            self._print("  per group and task metrics (per episode): " + ", ".join(parts))
        budget, per = runner.config.experiment.steps, self._per
        fixed = per > 0 and self._batch_sizes <= {per} and runner.env_steps == runner.updates * per
        if runner.env_steps > budget and fixed:
            self._print(
                f"trained {runner.env_steps:,} env-steps: {_count(runner.env_steps // per, 'collection')} of "
                f"{per:,}; the budget {budget:,} is not a multiple of {per:,}"
            )
        elif runner.env_steps > budget:  # batches of whole episodes: the last one ended past the budget
            self._print(
                f"trained {runner.env_steps:,} env-steps in {_count(runner.updates, 'batch', 'batches')} of whole "
                f"episodes; the last ended past the budget {budget:,}"
            )
        self._print(f"run directory: {result.run_dir}")
        gif = result.run_dir / MEDIA_DIR / "final.gif"
        if gif.exists():
            self._print(f"gif: {gif}")

    def _print(self, line: str) -> None:
        if self.live and self._bar is not None:
            self._bar.console.print(line)
        else:
            print(line, file=self.stream, flush=True)
