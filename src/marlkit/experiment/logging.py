"""Metrics to disk: ``metrics.csv`` and TensorBoard events in the run directory, env-steps as the x axis.

Keys are namespaced and that is a contract: ``train/...`` (episodes that ended while collecting, including the
env's task metrics), ``loss/...`` (what ``update`` returned), ``perf/...`` (throughput and wall time), ``eval/...``
(greedy evaluation on the separate evaluation env).

The CSV is wide: one row per log or evaluation event, one column per key, empty where a row has no value. A key
that first appears later widens the header (the file is rewritten, as Stable-Baselines3's CSV writer does). On
resume the file is cut back to the rows that existed when the checkpoint was written, and TensorBoard is told to
purge the events after that step, so a resumed run leaves no duplicated or orphaned points.
"""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path
from typing import Any

from marlkit.core.rundir import METRICS_FILE
from marlkit.experiment.callbacks import RunView
from marlkit.experiment.run import RunResult

STEP = "env_steps"


def read_metrics(path: str | Path) -> list[dict[str, float]]:
    """Rows of a ``metrics.csv`` (or of the one in a run directory) as dicts of floats, empty cells left out.

    A torn last line (the process was killed while writing it) is dropped.
    """
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
    if not path.exists():
        return []
    rows: list[dict[str, float]] = []
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header:
            return []
        for cells in reader:
            if len(cells) != len(header):
                continue
            try:
                row = {k: float(v) for k, v in zip(header, cells) if v != ""}
            except ValueError:
                continue
            if STEP in row:
                rows.append(row)
    return rows


def _wait_to_sort_last(run_dir: Path) -> None:
    """TensorBoard reads a folder's event files in name order, and a name starts with its creation second (then host
    and pid): wait for a later second than every existing file's, so that the purge marker of a resumed run is read
    after the events it purges. Waits at most a second, and only on resume."""
    stamps = [
        int(p.name.split(".")[3])
        for p in run_dir.glob("events.out.tfevents.*")
        if len(p.name.split(".")) > 3 and p.name.split(".")[3].isdigit()
    ]
    while stamps and int(time.time()) <= max(stamps):
        time.sleep(0.02)


class MetricsLogger:
    """A runner callback that writes every training and evaluation row to ``metrics.csv`` and TensorBoard."""

    name = "metrics_logger"

    def __init__(self, tensorboard: bool = True) -> None:
        self.tensorboard = tensorboard
        self.rows: list[dict[str, float]] = []
        self.keys: list[str] = [STEP]
        self.path: Path | None = None
        self.writer: Any = None
        self._keep_rows: int | None = None  # set by restore: rows that existed at the checkpoint

    # ------------------------------------------------------------------------- checkpointed state of the callback
    def state(self) -> dict[str, Any]:
        return {"rows": len(self.rows)}

    def restore(self, state: dict[str, Any]) -> None:
        self._keep_rows = int(state["rows"])

    # ------------------------------------------------------------------------------------------------------ hooks
    def on_start(self, runner: RunView) -> None:
        self.path = runner.run_dir / METRICS_FILE
        if runner.resumed:
            # Keep what was logged up to the checkpoint; later rows belong to the lost part of the run.
            self.rows = read_metrics(self.path)[: self._keep_rows or 0]
            for row in self.rows:
                self.keys.extend(k for k in row if k not in self.keys)
        self._rewrite()
        if self.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            purge = runner.env_steps + 1 if runner.resumed else None
            if runner.resumed:
                _wait_to_sort_last(runner.run_dir)
            self.writer = SummaryWriter(log_dir=str(runner.run_dir), purge_step=purge)
            if not runner.resumed:
                import yaml

                text = yaml.safe_dump(runner.config.to_dict(), sort_keys=False)
                self.writer.add_text("config", "```\n" + text + "```", 0)

    def on_log(self, runner: RunView, row: dict[str, float]) -> None:
        self.write(runner.env_steps, row)

    def on_eval(self, runner: RunView, results: dict[str, float]) -> None:
        self.write(runner.env_steps, results)

    def on_checkpoint(self, runner: RunView, path: Path) -> None:
        if self.writer is not None:
            self.writer.flush()

    def on_end(self, runner: RunView, result: RunResult) -> None:
        self.close()

    # -------------------------------------------------------------------------------------------------- writing
    def write(self, env_steps: int, values: dict[str, float]) -> None:
        row = {STEP: float(env_steps), **{k: float(v) for k, v in values.items()}}
        self.rows.append(row)
        new = [k for k in row if k not in self.keys]
        if new:
            self.keys.extend(new)
            self._rewrite()
        else:
            with open(self._file(), "a", newline="") as f:
                csv.writer(f).writerow(self._cells(row))
        if self.writer is not None:
            for k, v in values.items():
                if math.isfinite(v):
                    self.writer.add_scalar(k, v, env_steps)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def _cells(self, row: dict[str, float]) -> list[str]:
        # repr round-trips a float exactly, so identical runs give byte-identical files
        return [(str(int(row[k])) if k == STEP else repr(row[k])) if k in row else "" for k in self.keys]

    def _file(self) -> Path:
        if self.path is None:
            raise RuntimeError("MetricsLogger writes into a run's folder: call on_start(runner) before writing")
        return self.path

    def _rewrite(self) -> None:
        path = self._file()
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(self.keys)
            w.writerows(self._cells(r) for r in self.rows)
        tmp.replace(path)


# ------------------------------------------------------------------------------------------------------- plots
def read_benchmark_curves(path: str | Path) -> tuple[str, list[list[dict[str, float]]], dict[int, float]]:
    """The learning curves of a learning-benchmark JSON (``benchmarks/learning.py --json``).

    Returns the label ``"<algo> on <env>"``, one list of rows per seed in the shape of ``read_metrics`` (the
    periodic greedy evaluations, under ``eval/`` keys) and the random policy's mean per-agent return by seed (empty
    when the benchmark ran with ``--no-random``).
    """
    import json

    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("curves"), dict) or not doc.get("records"):
        raise ValueError(
            f"{path} is not a learning-benchmark JSON: it needs 'records' and 'curves' "
            f"(written by benchmarks/learning.py --json)"
        )
    trained = [r for r in doc["records"] if r.get("algo") != "random"]
    if not trained:
        raise ValueError(f"{path} holds no trained records, only the random policy")
    label = f"{trained[0]['algo']} on {trained[0]['env']}"
    runs = [
        [
            {STEP: float(point[STEP]), **{f"eval/{k}": float(v) for k, v in point.items() if k != STEP}}
            for point in curve
        ]
        for curve in doc["curves"].values()
    ]
    random = {int(r["seed"]): float(r["eval_return_mean"]) for r in doc["records"] if r.get("algo") == "random"}
    return label, runs, random


def _steps_label(x: float, _pos: object = None) -> str:
    """Axis label of an env-step count: 0, 500, 20k, 1.5M."""
    for scale, unit in ((1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


def plot_runs(
    paths: list[str | Path],
    out: str | Path,
    band: str = "minmax",
    keys: tuple[str, ...] = ("train/episode_return", "eval/episode_return"),
    title: str | None = None,
) -> Path:
    """Learning curves of ``keys`` against env-steps, one panel per key, one line per (algorithm, env).

    ``paths`` are run directories or learning-benchmark JSON files (``benchmarks/learning.py --json``), whose
    per-seed ``curves`` are the periodic greedy evaluations (``eval/`` keys only). Runs of the same algorithm on
    the same env (seeds) are drawn as their mean with a shaded band: ``"minmax"`` (the spread of the seeds) or
    ``"std"`` (± one standard deviation). Curves are interpolated onto the env-steps of every run, over the range
    all of them cover. The random policy recorded in a benchmark JSON is a dashed line on the return panels (its
    mean over seeds, per env). Panels no input has values for are left out.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.ticker import FuncFormatter

    from marlkit.experiment.run import RunConfig

    if band not in ("minmax", "std"):
        raise ValueError(f"band must be 'minmax' or 'std', got {band!r}")
    groups: dict[str, list[list[dict[str, float]]]] = {}
    random: dict[str, dict[int, float]] = {}  # env -> seed -> random policy's return
    for p in map(Path, paths):
        if p.is_file() and p.suffix == ".json":
            label, runs, by_seed = read_benchmark_curves(p)
            groups.setdefault(label, []).extend(runs)
            random.setdefault(label.split(" on ", 1)[1], {}).update(by_seed)
        elif p.is_dir():
            cfg = RunConfig.load(p)
            groups.setdefault(f"{cfg.algorithm} on {cfg.env.id}", []).append(read_metrics(p))
        else:
            raise FileNotFoundError(f"{p}: not a run directory or a learning-benchmark .json file")
    keys = tuple(k for k in keys if any(k in row for runs in groups.values() for rows in runs for row in rows))
    if not keys:
        raise ValueError(f"nothing to plot: no input has values for the keys asked for ({', '.join(map(str, paths))})")
    fig, axes = plt.subplots(1, len(keys), figsize=(5.5 * len(keys), 4), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for label, runs in groups.items():
            series = [
                (np.array([r[STEP] for r in rows if key in r]), np.array([r[key] for r in rows if key in r]))
                for rows in runs
            ]
            series = [(x, y) for x, y in series if len(x)]
            if not series:
                continue
            if len(series) == 1:
                ax.plot(*series[0], label=label, marker="." if len(series[0][0]) < 30 else None)
                continue
            start, end = max(x[0] for x, _ in series), min(x[-1] for x, _ in series)
            grid = np.unique(np.concatenate([x[(x >= start) & (x <= end)] for x, _ in series]))
            ys = np.stack([np.interp(grid, x, y) for x, y in series])
            mean = ys.mean(axis=0)
            lo, hi = (
                (ys.min(axis=0), ys.max(axis=0)) if band == "minmax" else (mean - ys.std(axis=0), mean + ys.std(axis=0))
            )
            (line,) = ax.plot(grid, mean, label=f"{label} ({len(series)} seeds)")
            ax.fill_between(grid, lo, hi, color=line.get_color(), alpha=0.25, linewidth=0)
        if key.endswith("episode_return"):
            for env, by_seed in random.items():
                if by_seed:
                    name = "random policy" if len(random) == 1 else f"random policy on {env}"
                    ax.axhline(
                        float(np.mean(list(by_seed.values()))), color="grey", linestyle="--", linewidth=1, label=name
                    )
        ax.set_title(key)
        ax.set_xlabel("env-steps")
        ax.xaxis.set_major_formatter(FuncFormatter(_steps_label))
        ax.set_ylabel("mean per-agent episode return" if key.endswith("episode_return") else key)
        ax.grid(alpha=0.3)
    # one legend for all panels, beside them, so that it never hides a curve however many runs there are
    legend: dict[str, Any] = {}
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if legend:
        fig.legend(legend.values(), legend.keys(), loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize="small")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return out
