"""The continual trainer: one learner through a task sequence, every task evaluated after every stage.

Stage ``i`` is an ordinary run (``marlkit.experiment.Runner``) of the same learner on task ``i`` for
``steps_per_task`` env-steps, in its own directory ``stage-XX/`` (config, metrics, checkpoint, eval.json). Around
it the trainer calls the strategy (``marlkit.lifelong.strategies``) and evaluates **every** task — before the stage,
at ``evals_per_task - 1`` equally spaced points within it, and at its end (after the strategy's ``after_task``) —
each evaluation the mean ``success`` of ``eval_episodes`` greedy episodes (``marlkit.lifelong.tasks``). The end of
stage ``i`` is row ``i`` of the performance matrix ``R``; the evaluations of task ``i`` during its own stage are its
curve (for forward transfer's AUC); all of them in order are the history (for MEAL's forgetting).

The run directory holds ``lifelong.json`` (the config, ``R``, curves, history, the metrics once the sequence is
done), ``plots/R.png`` (heat map of ``R``) and ``plots/curves.png`` (every task's success over the whole run).
With ``reference=True`` a fresh learner is also trained on each task alone (``reference/task-XX/``), the
from-scratch baseline of forward transfer and plasticity; without it those metrics are left out unless
``ref_curves`` are given to ``summary``.

Resume: after every stage the learner's and the strategy's state are saved (``stage-XX/lifelong_state.pt``, loaded
with ``weights_only=True``) and ``lifelong.json`` is rewritten; ``ContinualTrainer.resume(run_dir)`` continues after
the last finished stage (a stage cut short is trained again from the end of the previous one). Stage ``i`` runs
with seed ``seed * 1000 + i``, so a resumed sequence gives the numbers of an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from marlkit.core.config import ConfigError
from marlkit.lifelong import metrics as M
from marlkit.lifelong.sequence_file import any_sequence
from marlkit.lifelong.sequences import TaskSequence
from marlkit.lifelong.strategies import Strategy, StrategyContext, make_strategy, strategy_label

STATE_FILE = "lifelong.json"
STAGE_STATE = "lifelong_state.pt"


@dataclass(frozen=True)
class LifelongConfig:
    """A continual-learning run: which sequence, learner and strategy, and the budget of each stage."""

    sequence: str = "foraging-controls"
    """A built-in sequence (``marlkit.lifelong.sequences.SEQUENCES``)."""
    num_tasks: int | None = None
    """Only the first ``num_tasks`` tasks of the sequence (None: all)."""
    algorithm: str = "ippo"
    """A registered algorithm (``marlkit algos``)."""
    strategy: str = "finetune"
    """A strategy name or several joined by ``+`` (``marlkit.lifelong.strategies.STRATEGIES``)."""
    strategy_kwargs: dict[str, Any] = field(default_factory=dict)
    """Options of a single strategy (``{"lam": 100}``)."""
    steps_per_task: int = 16_000
    """Env-steps of every stage."""
    evals_per_task: int = 4
    """Evaluations of every task per stage (the last at its end); the points of each task's curve."""
    eval_episodes: int = 32
    """Greedy episodes per evaluation of a task."""
    num_envs: int = 16
    """Copies of the training env."""
    seed: int = 0
    sets: tuple[str, ...] = ()
    """``algo.FIELD=VALUE`` overrides of the learner's config (as ``marlkit train --set``)."""
    reference: bool = False
    """Also train a fresh learner on each task alone (the from-scratch reference of forward transfer)."""
    out: str = "runs/lifelong"
    """Parent directory of new run directories."""
    plots: bool = True
    """Write the heat map of R and the curves (PNGs) at the end."""

    def __post_init__(self) -> None:
        for name in ("steps_per_task", "evals_per_task", "eval_episodes", "num_envs"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} = {value!r} is not allowed: an integer >= 1")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["sets"] = list(self.sets)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LifelongConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        if unknown := sorted(set(data) - names):
            raise ConfigError(f"unknown lifelong config keys {unknown} (keys: {sorted(names)})")
        return cls(**{**data, "sets": tuple(data.get("sets", ()))})


class MultiTaskSource:
    """A ``BatchSource`` drawing its batches from every task in turn (multi-task training)."""

    def __init__(self, collectors: list[Any]) -> None:
        self.collectors, self.turn = collectors, 0

    @property
    def steps_per_batch(self) -> int:
        return int(self.collectors[self.turn % len(self.collectors)].steps_per_batch)

    def collect(self) -> tuple[Any, Any]:
        c = self.collectors[self.turn % len(self.collectors)]
        self.turn += 1
        batch, stats = c.collect()
        return batch, stats

    def state(self) -> dict[str, Any]:
        return {"turn": self.turn, "collectors": [c.state() for c in self.collectors]}

    def load_state(self, state: dict[str, Any]) -> None:
        self.turn = int(state["turn"])
        for c, s in zip(self.collectors, state["collectors"]):
            c.load_state(s)


class _EvalPoints:
    """Runner callback: evaluates every task when the stage crosses one of its evaluation points."""

    def __init__(self, trainer: ContinualTrainer, task: int) -> None:
        self.trainer, self.task = trainer, task
        steps, k = trainer.config.steps_per_task, trainer.config.evals_per_task
        self.points = [steps * j // k for j in range(1, k)]

    def on_update(self, runner: Any, metrics: dict[str, float]) -> None:
        while self.points and runner.env_steps >= self.points[0]:
            self.points.pop(0)
            self.trainer._record(self.task, runner.env_steps)


class _StrategyProgress:
    """Runner callback: tells the strategy, after every update, how much of the stage is done."""

    def __init__(self, trainer: ContinualTrainer, task: int) -> None:
        self.trainer, self.task = trainer, task

    def on_update(self, runner: Any, metrics: dict[str, float]) -> None:
        t = self.trainer
        t.strategy.during_task(t.learner, self.task, runner.env_steps / t.config.steps_per_task)


class ContinualTrainer:
    """Trains one learner through ``config.sequence`` with ``config.strategy``; ``run()`` returns the results."""

    def __init__(
        self, config: LifelongConfig, run_dir: str | Path | None = None, *, task_sequence: TaskSequence | None = None
    ) -> None:
        from marlkit.experiment.runner import eval_num_envs, make_env

        self.config = config
        self.sequence = task_sequence if task_sequence is not None else any_sequence(config.sequence, config.num_tasks)
        self.strategy: Strategy = make_strategy(config.strategy, **config.strategy_kwargs)
        self.cfgs = [
            dataclasses.replace(c, experiment=dataclasses.replace(c.experiment, seed=config.seed * 1000 + i))
            for i, c in enumerate(
                self.sequence.run_configs(
                    config.algorithm,
                    config.steps_per_task,
                    config.seed,
                    config.num_envs,
                    config.eval_episodes,
                    config.sets,
                )
            )
        ]
        self.eval_envs = [make_env(c, eval_num_envs(c)) for c in self.cfgs]
        if run_dir is None:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            label = strategy_label(self.strategy)
            run_dir = Path(config.out) / f"{self.sequence.name}-{config.algorithm}-{label}-s{config.seed}-{stamp}"
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        T = len(self.sequence)
        self.R = np.full((T, T), np.nan)
        self.curves: list[list[float]] = [[] for _ in range(T)]
        self.history: list[list[float]] = []
        self.history_steps: list[int] = []
        self.stage_ends: list[int] = []
        self.completed = 0
        self.ref_curves: list[list[float]] | None = None
        self.wall_s = 0.0
        self._stage_offset = 0
        self._only_own_task = False
        self.learner = self._new_learner(0)
        self.strategy.attach(self.learner, StrategyContext(T, self._observations, self._fresh_state, config.seed))
        self.source: Any = self._multitask_source() if self.strategy.multitask else None

    # ----------------------------------------------------------------------------------------------- building
    def _new_learner(self, task: int) -> Any:
        from marlkit.experiment.runner import build_algo, derive_seeds, make_env

        cfg = self.cfgs[0]
        seed = self.config.seed * 1000 + task
        torch.manual_seed(seed)
        env = make_env(cfg, cfg.env.num_envs, seed=0)
        return build_algo(cfg, env, derive_seeds(seed)["algo"])

    def _fresh_state(self, task: int) -> dict[str, Any]:
        with torch.random.fork_rng(devices=[]):
            state: dict[str, Any] = self._new_learner(task).state()
        return state

    def _multitask_source(self) -> MultiTaskSource:
        from marlkit.collect import Collector
        from marlkit.experiment.runner import make_env

        return MultiTaskSource(
            [
                Collector(
                    make_env(c, c.env.num_envs, seed=c.experiment.seed + 1),
                    self.learner,
                    self.learner.config.rollout_steps,
                )
                for c in self.cfgs
            ]
        )

    def _observations(self, learner: Any, task: int, n: int) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
        from marlkit.collect import Collector
        from marlkit.experiment.runner import make_env

        cfg = self.cfgs[task]
        env = make_env(cfg, cfg.env.num_envs, seed=cfg.experiment.seed + 7)
        with self.strategy.acting_for(learner, task):
            batch, _ = Collector(env, learner, max(1, -(-n // env.num_envs))).collect()
        out = {}
        for g, obs in batch.obs.items():
            mask = None if batch.action_mask is None else batch.action_mask[g]
            out[g] = (
                obs.reshape(-1, *obs.shape[2:]).clone(),
                None if mask is None else mask.reshape(-1, *mask.shape[2:]).clone(),
            )
        return out

    # --------------------------------------------------------------------------------------------- evaluating
    def evaluate_all(
        self, tasks: list[int] | None = None, episodes: int | None = None, seed: int = 10_000
    ) -> list[float]:
        """Success on every task (or on ``tasks``) now: the mean over ``eval_episodes`` (or ``episodes``) greedy
        episodes, the same seed (``seed + task``) every time."""
        from marlkit.experiment.runner import evaluate_learner

        out = []
        n = self.config.eval_episodes if episodes is None else episodes
        for j in range(len(self.eval_envs)) if tasks is None else tasks:
            env = self.eval_envs[j]
            with self.strategy.acting_for(self.learner, j):
                stats = evaluate_learner(env, self.learner, n, seed=seed + j)
            if "success" not in stats.metrics:
                raise ConfigError(f"task {self.sequence.tasks[j].name} reports no success metric")
            out.append(float(np.mean(stats.metrics["success"])))
        return out

    def _record(self, task: int, stage_steps: int) -> list[float]:
        if self._only_own_task:  # a from-scratch reference needs only the curve of its task
            row = [float("nan")] * len(self.eval_envs)
            row[task] = self.evaluate_all([task])[0]
        else:
            row = self.evaluate_all()
        self.history.append(row)
        self.history_steps.append(self._stage_offset + stage_steps)
        self.curves[task].append(row[task])
        return row

    # ----------------------------------------------------------------------------------------------- the loop
    def run(self) -> dict[str, Any]:
        T = len(self.sequence)
        start = time.perf_counter()
        wall_before = self.wall_s
        for i in range(self.completed, T):
            stage_dir = self._run_stage(i)
            self.completed = i + 1
            self.wall_s = wall_before + time.perf_counter() - start
            torch.save({"algo": self.learner.state(), "strategy": self.strategy.state()}, stage_dir / STAGE_STATE)
            self._save()
        if self.config.reference and self.ref_curves is None:
            self.ref_curves = reference_curves(self.config, self.sequence, self.run_dir / "reference")
            self._save()
        if self.config.plots:
            self.plot()
        return self.results()

    def _run_stage(self, i: int) -> Path:
        """Stage ``i``: the strategy's ``before_task``, an evaluation, the run on task ``i`` (evaluating at its
        points), ``after_task`` and the evaluation that is row ``i`` of ``R``."""
        from marlkit.experiment.runner import Runner

        stage_dir = self.run_dir / f"stage-{i:02d}"
        if stage_dir.exists():
            shutil.rmtree(stage_dir)  # a stage cut short: trained again from the end of the previous one
        self._stage_offset = i * self.config.steps_per_task
        self.strategy.before_task(self.learner, i)
        self._record(i, 0)
        runner = Runner(
            self.cfgs[i],
            callbacks=[_StrategyProgress(self, i), _EvalPoints(self, i)],
            run_dir=stage_dir,
            default_callbacks=False,
            learner=self.learner,
            source=self.source,
        )
        runner.run()
        self.strategy.after_task(self.learner, i)
        row = self._record(i, self.config.steps_per_task)
        self.R[i] = row
        self.stage_ends.append(len(self.history) - 1)
        return stage_dir

    # ------------------------------------------------------------------------------------------------ results
    def results(self, ref_curves: list[list[float]] | None = None) -> dict[str, Any]:
        """The config, R, curves and history, and (once every stage is done) the metrics (forward transfer and
        plasticity with ``ref_curves`` or the run's own reference)."""
        out: dict[str, Any] = {
            "config": self.config.to_dict(),
            "sequence": self.sequence.name,
            "tasks": [t.name for t in self.sequence.tasks],
            "strategy": strategy_label(self.strategy),
            "completed": self.completed,
            "R": self.R.tolist(),
            "curves": self.curves,
            "history": self.history,
            "history_steps": self.history_steps,
            "stage_ends": self.stage_ends,
            "ref_curves": self.ref_curves,
            "wall_s": self.wall_s,
        }
        refs = ref_curves if ref_curves is not None else self.ref_curves
        if self.completed == len(self.sequence):
            R, hist = self.R, np.asarray(self.history)
            out["metrics"] = {
                "avg_performance": M.average_performance(R),
                "forgetting": M.forgetting(R),
                "meal_forgetting": M.meal_forgetting(R, hist, self.stage_ends),
            }
            if refs is not None:
                out["metrics"]["forward_transfer"] = M.forward_transfer(self.curves, refs)
                out["metrics"]["plasticity"] = M.plasticity(self.curves, refs) if len(refs) > 1 else float("nan")
        return out

    def _save(self) -> None:
        path = self.run_dir / STATE_FILE
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.results(), indent=1) + "\n")
        tmp.replace(path)

    def plot(self) -> None:
        """``plots/R.png`` and ``plots/curves.png`` of what has been recorded."""
        plot_results(self.results(), self.run_dir / "plots")

    @classmethod
    def resume(cls, run_dir: str | Path) -> ContinualTrainer:
        """Continue the sequence in ``run_dir`` after its last finished stage."""
        run_dir = Path(run_dir)
        path = run_dir / STATE_FILE
        if not path.is_file():
            raise ConfigError(f"{run_dir} is no lifelong run directory: it has no {STATE_FILE}")
        data = json.loads(path.read_text())
        trainer = cls(LifelongConfig.from_dict(data["config"]), run_dir)
        done = int(data["completed"])
        if done:
            state = torch.load(run_dir / f"stage-{done - 1:02d}" / STAGE_STATE, weights_only=True)
            trainer.learner.load_state(state["algo"])
            trainer.strategy.load_state(state["strategy"])
        T = len(trainer.sequence)
        trainer.R = np.asarray(data["R"], dtype=np.float64).reshape(T, T)
        trainer.curves = [list(c) for c in data["curves"]]
        trainer.history = [list(r) for r in data["history"]]
        trainer.history_steps = list(data["history_steps"])
        trainer.stage_ends = list(data["stage_ends"])
        # Evaluations of a stage cut short are dropped with it.
        keep = trainer.stage_ends[-1] + 1 if trainer.stage_ends else 0
        trainer.history, trainer.history_steps = trainer.history[:keep], trainer.history_steps[:keep]
        trainer.curves = [c if i < done else [] for i, c in enumerate(trainer.curves)]
        trainer.completed, trainer.wall_s, trainer.ref_curves = done, float(data["wall_s"]), data["ref_curves"]
        if trainer.source is not None and done:
            trainer.source.turn = done * 0  # batches of a multi-task stage restart with its first task
        return trainer


def reference_curves(
    config: LifelongConfig, task_sequence: TaskSequence, out: Path, policies: list[Any] | None = None
) -> list[list[float]]:
    """Each task's curve for a fresh learner trained on it alone, with the same layout, budget, seed and evaluation
    points as its stage of the sequence (the from-scratch reference of forward transfer). Each of those learners'
    final policy is appended to ``policies`` when given (teammates that mastered a task)."""
    cfg = dataclasses.replace(config, strategy="finetune", strategy_kwargs={}, reference=False)
    trainer = ContinualTrainer(cfg, out, task_sequence=task_sequence)
    trainer._only_own_task = True
    for i in range(len(task_sequence)):
        if i:
            trainer.learner = trainer._new_learner(i)
        trainer._run_stage(i)
        if policies is not None:
            policies.append(trainer.learner.policy())
    return trainer.curves


def plot_results(results: dict[str, Any], out: Path) -> None:
    """Heat map of ``R`` and every task's success over the run, as PNGs in ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    R, tasks = np.asarray(results["R"], dtype=np.float64), results["tasks"]
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * len(tasks), 0.8 + 0.6 * len(tasks)))
    im = ax.imshow(R, vmin=0, vmax=1, cmap="viridis")
    for i in range(R.shape[0]):
        for j in range(R.shape[1]):
            if np.isfinite(R[i, j]):
                ax.text(
                    j, i, f"{R[i, j]:.2f}", ha="center", va="center", color="w" if R[i, j] < 0.6 else "k", fontsize=7
                )
    ax.set_xticks(range(len(tasks)), tasks, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(tasks)), [f"after {t}" for t in tasks], fontsize=7)
    ax.set_title(f"{results['sequence']} · {results['strategy']}: success R[stage, task]", fontsize=8)
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(out / "R.png", dpi=100)
    plt.close(fig)
    if results["history"]:
        hist = np.asarray(results["history"])
        fig, ax = plt.subplots(figsize=(7, 3.5))
        for j, name in enumerate(tasks):
            ax.plot(results["history_steps"], hist[:, j], label=name)
        ax.set_xlabel("env-steps")
        ax.set_ylabel("success")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=6, ncol=2)
        ax.set_title(f"{results['sequence']} · {results['strategy']}", fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "curves.png", dpi=100)
        plt.close(fig)
