"""The runner: the thin loop collect → update → log → evaluate → checkpoint, extended by callbacks.

The runner decides *when* things happen and owns what a run must get right (seeding, the env-step counter,
checkpoints and resume); everything it merely reports goes through callbacks (``MetricsLogger`` writes the CSV and
TensorBoard events, ``Progress`` draws the bar; the hooks: ``marlkit.experiment.callbacks``). Add behaviour by
passing more callbacks, not by subclassing.

What it drives are the contracts of ``marlkit.core``: a ``Learner`` fed by a ``BatchSource`` (the local
``Collector`` unless it is given another). One pass of the loop is ``learn_step``: collect a batch, add its
env-steps to the run's one counter, tell the learner where the run is (``set_progress``), update. ``learn`` runs
that loop alone, without a run directory, for tests, benchmarks and notebooks.

Seeding. ``experiment.seed`` seeds the global torch/NumPy/``random`` generators (network initialisation) and is
split with ``np.random.SeedSequence`` into independent seeds for the algorithm's sampling generator, the
training environment and the evaluation environment. Every evaluation resets the evaluation env with the same
seed, so evaluations differ only by the policy.

Resume. Checkpoints are taken between collections. They hold the learner's state (model, optimiser, replay, its
generators), every global RNG state, the env-step counter and the source's state (the Collector's: the training
env's generator), but not the env's dynamic state (the env contract has no way to save it). On resume the
generator is restored and every copy is reset, drawing its initial state from that generator: episodes that were
in progress at the checkpoint are dropped (their steps were already trained on), and everything after is a pure
function of the checkpoint, so resuming from one checkpoint twice gives identical numbers. (An uninterrupted run
does not reset at checkpoints, so it is not bit-identical to a resumed one; a source whose batches are whole
episodes, a text game's or the referential game's, cuts none, and its resumed run is the uninterrupted one.)
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import threadpoolctl
import torch

from marlkit.collect import Collector, evaluate
from marlkit.core import BatchSource, GameLearner, Learner, PolicySpaces, Progress
from marlkit.core import checkpoint as ckpt
from marlkit.core.contracts import RemoteSource, UpdatingSource
from marlkit.core.rundir import CHECKPOINT_DIR, CONFIG_FILE, EVAL_FILE, MEDIA_DIR
from marlkit.data.rollout import EpisodeStats
from marlkit.experiment.run import RunConfig, RunResult, new_run_dir

FINAL_GIF = "final.gif"


def set_threads(n: int) -> None:
    """Use ``n`` threads in torch and in NumPy's BLAS. The policy acts through NumPy on a few dozen rows, where a
    second BLAS thread only adds synchronisation (and on a shared 2-core machine, oversubscription)."""
    torch.set_num_threads(n)
    threadpoolctl.threadpool_limits(n, user_api="blas")


def derive_seeds(seed: int) -> dict[str, int]:
    """Independent seeds for the parts of a run, all from ``experiment.seed``."""
    children = np.random.SeedSequence(seed).spawn(3)
    return {name: int(child.generate_state(1)[0]) for name, child in zip(("algo", "env", "eval"), children)}


def build_algo(cfg: RunConfig, env: Any, seed: int) -> Any:
    from marlkit.algorithms.registry import algo_spec, unsupported_reason
    from marlkit.core.config import ConfigError

    spec = algo_spec(cfg.algorithm)
    if reason := unsupported_reason(spec, env):
        raise ConfigError(f"cannot train {cfg.algorithm} on {cfg.env.id}: {reason}")
    algo_cls, _ = spec.load()
    return algo_cls(env, cfg.algo, seed=seed)


def make_env(cfg: RunConfig, num_envs: int, seed: int | None = None, trust_module: bool = False) -> Any:
    """``num_envs`` copies of the run's env, as the env registry builds its id (``marlkit.envs.registry.build``: a
    text game is its ``TextGames``, whose copies are made as they are played; ``trust_module``: see ``make``)."""
    from marlkit.core.config import ConfigError
    from marlkit.envs.registry import UnknownEnvError, build, env_kind

    try:
        return build(cfg.env.id, num_envs=num_envs, seed=seed, trust_module=trust_module, **cfg.env.kwargs)
    except UnknownEnvError as e:
        raise ConfigError(f"env.id: {e}") from None
    except (TypeError, ValueError) as e:  # an option the env does not have, or a value it rejects
        if not cfg.env.kwargs and env_kind(cfg.env.id) != "batched":  # a game no run plays (a hybrid text game)
            raise ConfigError(f"env.id: {e}") from None
        if not cfg.env.kwargs:
            raise
        raise ConfigError(f"env.kwargs = {cfg.env.kwargs!r} is not allowed: {e}") from None


def eval_num_envs(cfg: RunConfig) -> int:
    return cfg.env.eval_num_envs or min(cfg.experiment.eval_episodes, 100)


class Runner:
    """Trains a learner into a run directory; ``run()`` returns a ``RunResult``.

    ``Runner(config)`` builds what the run needs from ``config``: the training env, the learner
    (``config.algorithm`` with ``config.algo``) and the ``Collector`` that feeds it. ``learner=`` and ``source=``
    give an existing learner or ``BatchSource`` instead (a source built elsewhere: Ray actors, a task sequence, a
    fixed batch in a test); the config still names the env the run evaluates on, and a given learner must have been
    built for that env's groups and spaces. ``Runner.resume(run_dir)`` continues a run from its latest intact
    checkpoint. ``trust_module`` lets a ``pz:`` env id import a module outside the env registry's allow-list.

    The same learner goes on training on a new env — the seam lifelong learning builds on — as a new run::

        first = Runner(make_run_config("iql", "spread-v0", steps=50_000))
        first.run()
        second = Runner(make_run_config("iql", "spread-v0", steps=50_000, seed=1, **{"env.kwargs": {"max_steps": 40}}),
                        learner=first.learner)
        second.run()

    The new run has its own directory and its own env-step counter, from 0: the learner keeps its weights,
    optimiser and replay, and its schedules (ε, warm-up, learning-rate annealing) follow the new run's progress.
    Its ``config.yaml`` records the learner's own config as the ``algo`` section (``config.algo`` is replaced by
    ``learner.config``), so it resumes like any run.
    """

    def __init__(
        self,
        config: RunConfig,
        callbacks: Iterable[Any] = (),
        run_dir: str | Path | None = None,
        default_callbacks: bool = True,
        *,
        learner: Learner | None = None,
        source: BatchSource | None = None,
        trust_module: bool = False,
        _resume: bool = False,
    ) -> None:
        from marlkit.envs.registry import env_kind
        from marlkit.experiment.logging import MetricsLogger
        from marlkit.experiment.progress import Progress as ProgressBar

        self.resumed = _resume
        self.trust_module = trust_module
        #: "batched": array envs, the learner fed by a Collector; another kind (a text game, the referential game):
        #: the learner is a GameLearner, which makes its source and plays its evaluations itself.
        self.env_kind = env_kind(config.env.id)
        self.callbacks = ([MetricsLogger(), ProgressBar()] if default_callbacks else []) + list(callbacks)
        self.env_steps = 0  # the run's one env-step counter
        self.updates = 0
        self.last_row: dict[str, float] = {}
        self.last_eval: dict[str, Any] | None = None
        self._wall_before = 0.0  # wall time of earlier sessions of a resumed run
        self._start = time.perf_counter()

        exp = config.experiment
        if exp.ray_mode is not None and not exp.workers:
            from marlkit.core.config import ConfigError

            raise ConfigError(
                f"experiment.ray_mode = {exp.ray_mode!r} runs on Ray workers, and experiment.workers "
                f"is 0: give --workers N (N >= 1), or leave ray_mode at null"
            )
        set_threads(exp.torch_threads)
        self.seeds = derive_seeds(exp.seed)
        random.seed(exp.seed)
        np.random.seed(exp.seed)
        torch.manual_seed(exp.seed)

        state = None
        if _resume:
            assert run_dir is not None, "resume() passes the run directory"
            ckpt.clean(Path(run_dir) / CHECKPOINT_DIR)
            found = ckpt.load_latest(Path(run_dir) / CHECKPOINT_DIR)
            state = found[1] if found is not None else None
        # The training env, when the learner or the source is built here. A resumed env gets its generator from
        # the checkpoint, so it is built unseeded.
        self.env: Any = None
        if learner is None or source is None:
            self.env = make_env(config, config.env.num_envs, None if state else self.seeds["env"], trust_module)
        given = learner is not None
        self.learner: Learner = learner if learner is not None else build_algo(config, self.env, self.seeds["algo"])
        self.eval_env = make_env(config, eval_num_envs(config), trust_module=trust_module)
        if given:
            check_learner_fits(self.learner, config, self.eval_env)
            config = dataclasses.replace(config, algo=self.learner.config)
        self.config = config
        # The run directory is made once env and algorithm are built, so a config they reject leaves nothing behind.
        self.run_dir = Path(run_dir) if run_dir is not None else new_run_dir(config)
        (self.run_dir / CHECKPOINT_DIR).mkdir(parents=True, exist_ok=True)
        (self.run_dir / MEDIA_DIR).mkdir(exist_ok=True)
        if state is not None:
            self.learner.load_state(state["algo"])
            ckpt.set_global_rng_state(state["rng"])
        if source is None:
            source = self._default_source(seed=None if state else self.seeds["env"])
        self.source: BatchSource = source
        if state is not None:
            # Checkpoints without a "source" entry hold the Collector's state as "env_rng".
            self.source.load_state(state["source"] if "source" in state else {"env_rng": state["env_rng"]})
            self.env_steps, self.updates = int(state["env_steps"]), int(state["updates"])
            self._wall_before = float(state["wall_s"])
            for cb in self.callbacks:
                if hasattr(cb, "restore") and _name(cb) in state["callbacks"]:
                    cb.restore(state["callbacks"][_name(cb)])
        # What the learner explores with until its first update here: the restored counter, or 0 for a new run.
        self.learner.set_progress(progress_at(self.env_steps, exp.steps, self.source.steps_per_batch))

    def _default_source(self, seed: int | None) -> BatchSource:
        """The Collector of the training env, Ray rollout workers (``experiment.workers``), or what a
        ``GameLearner`` says feeds it; with ``experiment.learners > 1``, the learner group that updates from it."""
        exp = self.config.experiment
        if exp.learners == 1:
            return self._batch_source(seed)
        from marlkit.core.config import ConfigError
        from marlkit.distributed.learner_group import LearnerGroup, check_group_learner

        check_group_learner(self.learner, exp.learners)
        if self.env_kind != "batched" or self.config.env.num_envs % exp.learners:
            raise ConfigError(
                f"experiment.learners = {exp.learners} splits every batch of a batched env into equal shares: "
                f"env.num_envs ({self.config.env.num_envs} copies of {self.config.env.id}) must be a multiple of it"
            )
        source = self._batch_source(seed)
        return LearnerGroup(self.learner, source, exp.learners, cpus=exp.worker_cpus, address=exp.ray_address)

    def _batch_source(self, seed: int | None) -> BatchSource:
        exp = self.config.experiment
        if self.env_kind == "batched" and exp.workers and (exp.ray_mode or "").startswith("ps-"):
            from marlkit.distributed import ParameterServerSource

            env = self.config.env
            return ParameterServerSource(
                self.learner,
                env.id,
                env.num_envs,
                exp.workers,
                self.seeds["env"],
                env.kwargs,
                mode=exp.ray_mode,  # type: ignore[arg-type]  # ps-sync or ps-async, checked above
                max_staleness=exp.max_staleness,
                worker_cpus=exp.worker_cpus,
                address=exp.ray_address,
                trust_module=self.trust_module,
            )
        if self.env_kind == "batched" and exp.workers:
            from marlkit.distributed import RaySource

            env = self.config.env
            return RaySource(
                self.learner,
                env.id,
                env.num_envs,
                exp.workers,
                self.seeds["env"],
                env.kwargs,
                worker_cpus=exp.worker_cpus,
                address=exp.ray_address,
                mode=exp.ray_mode,  # type: ignore[arg-type]  # checked by ExperimentConfig
                trust_module=self.trust_module,
                pin_cores=exp.pin_cores,
            )
        if self.env_kind == "batched":
            return Collector(self.env, self.learner, self.learner.config.rollout_steps, seed=seed)
        return self._game_learner().source_for(self.env)

    def _game_learner(self) -> GameLearner:
        from marlkit.core.config import ConfigError

        if not isinstance(self.learner, GameLearner):
            raise ConfigError(
                f"{type(self.learner).__name__} cannot train on {self.config.env.id} (a "
                f"{self.env_kind} env): it is no GameLearner (source_for, evaluate_on)"
            )
        return self.learner

    @classmethod
    def resume(
        cls,
        run_dir: str | Path,
        steps: int | None = None,
        callbacks: Iterable[Any] = (),
        default_callbacks: bool = True,
        trust_module: bool = False,
        *,
        learner: Learner | None = None,
        source: BatchSource | None = None,
    ) -> Runner:
        """Continue the run in ``run_dir`` from its latest intact checkpoint (from scratch if it has none);
        ``steps`` changes the budget, to no fewer env-steps than the run has trained. A run fed by a source of
        its own is resumed with a new one of the same kind (``source=``; its state is restored from the checkpoint),
        and ``learner=`` gives a learner to restore into instead of building one from the config."""
        run_dir = Path(run_dir)
        config = RunConfig.load(run_dir)
        if steps is not None:
            from marlkit.core.config import check, override

            config = override(config, f"experiment.steps={steps}")
        runner = cls(
            config,
            callbacks,
            run_dir,
            default_callbacks,
            learner=learner,
            source=source,
            _resume=True,
            trust_module=trust_module,
        )
        if steps is not None:
            check(
                steps >= runner.env_steps,
                "experiment.steps",
                f"at least the {runner.env_steps:,} env-steps this run has already trained",
                steps,
            )
            config.save(run_dir / CONFIG_FILE)
        return runner

    @property
    def steps_per_collection(self) -> int:
        """Env-steps one collection adds (the Collector's: ``rollout_steps`` steps of every copy)."""
        return self.source.steps_per_batch

    def planned_steps(self) -> int:
        """The env-steps the run ends at: whole collections until the budget is reached, so past the budget when
        it is not a multiple of ``steps_per_collection`` (a partial collection would change the last batch)."""
        per, left = self.steps_per_collection, self.config.experiment.steps - self.env_steps
        if per <= 0:  # a source whose batches are not known ahead (whole episodes of a text game)
            return max(self.env_steps, self.config.experiment.steps)
        return self.env_steps + max(0, -(-left // per)) * per

    # ----------------------------------------------------------------------------------------------- the loop
    def run(self) -> RunResult:
        try:
            return self._run()
        finally:
            if isinstance(self.source, RemoteSource):  # Ray workers: stopped once the final checkpoint has their state
                self.source.close()

    def _run(self) -> RunResult:
        exp = self.config.experiment
        if self.resumed and self.env_steps >= exp.steps and (self.run_dir / EVAL_FILE).exists():
            return self._finish(already_done=True)
        if not self.resumed or self.env_steps == 0:
            self.config.save(self.run_dir / CONFIG_FILE)
        self._emit("on_start")
        self._start = time.perf_counter()
        window = _Window()
        while self.env_steps < exp.steps:
            t0 = time.perf_counter()
            before = self.env_steps
            self.env_steps, metrics, stats = learn_step(self.learner, self.source, before, exp.steps)
            self.updates += 1
            window.add(stats, metrics, self.env_steps - before, time.perf_counter() - t0)
            self._emit("on_update", metrics)
            done = self.env_steps >= exp.steps
            if _crossed(before, self.env_steps, exp.log_every) or done:
                self._log(window)
                window = _Window()
            if not done and exp.eval_every and _crossed(before, self.env_steps, exp.eval_every):
                self.evaluate()
            if not done and exp.checkpoint_every and _crossed(before, self.env_steps, exp.checkpoint_every):
                self.save_checkpoint()
        return self._finish()

    def _finish(self, already_done: bool = False) -> RunResult:
        if already_done:
            report = json.loads((self.run_dir / EVAL_FILE).read_text())
            self._emit("on_start")
        else:
            report = self.evaluate(final=True)
        path = self.save_checkpoint() if not already_done else ckpt.latest(self.run_dir / CHECKPOINT_DIR)
        if self.config.experiment.gif and not (already_done and (self.run_dir / MEDIA_DIR / FINAL_GIF).exists()):
            self.render_gif(self.run_dir / MEDIA_DIR / FINAL_GIF)
        metrics = {**self.last_row, **{f"eval/{k}": v for k, v in _flat_eval(report).items()}}
        result = RunResult(self.run_dir, self.env_steps, metrics, report, path)
        self._emit("on_end", result)
        return result

    def _log(self, window: _Window) -> None:
        row = window.row()
        row["perf/wall_s"] = self._wall()
        self.last_row = row
        self._emit("on_log", row)

    def _wall(self) -> float:
        return self._wall_before + time.perf_counter() - self._start

    def _emit(self, hook: str, *args: Any) -> None:
        for cb in self.callbacks:
            fn = getattr(cb, hook, None)
            if fn is not None:
                fn(self, *args)

    # -------------------------------------------------------------------------------------- evaluate, checkpoint
    def evaluate(self, final: bool = False) -> dict[str, Any]:
        """Greedy episodes on the evaluation env (same seed every time); logs ``eval/`` keys, returns the report.

        The final evaluation also writes ``eval.json``.
        """
        exp = self.config.experiment
        learner = self.learner if self.env_kind == "batched" else self._game_learner()
        stats = evaluate_learner(self.eval_env, learner, exp.eval_episodes, self.seeds["eval"])
        report = eval_report(self.eval_env, stats, self.env_steps, self.seeds["eval"])
        report = {"algorithm": self.config.algorithm, "env": self.config.env.id, "seed": exp.seed, **report}
        report.update(self.learner.eval_extras(report))  # teams: each member's groups, who plays them, its return
        summary = stats.summary("eval/")
        for cb in self.callbacks:  # callbacks that measure more at every evaluation (self-play: matches)
            extra = cb.eval_metrics(self) if hasattr(cb, "eval_metrics") else {}
            if not extra:
                continue  # a run without such callbacks writes the same report ``marlkit eval`` prints
            report.setdefault("callback_metrics", {}).update(extra)
            summary.update({f"eval/{k}": v for k, v in extra.items()})
        self.last_eval = report
        self._emit("on_eval", summary)
        if final:
            _write_json_atomic(self.run_dir / EVAL_FILE, report)
        return report

    def save_checkpoint(self) -> Path:
        algo = self.learner.state()
        # What marlkit.load reads, weights only (a GameLearner has no array policy).
        policy = {"policy": self.learner.policy().policy_state()} if self.env_kind == "batched" else {}
        state = {
            "format": ckpt.FORMAT,
            "env_steps": self.env_steps,
            "updates": self.updates,
            "wall_s": self._wall(),
            "algorithm": self.config.algorithm,
            "algo": algo,
            **policy,
            "rng": ckpt.global_rng_state(),
            "source": self.source.state(),
            "callbacks": {_name(cb): cb.state() for cb in self.callbacks if hasattr(cb, "state")},
        }
        path = ckpt.save_atomic(state, ckpt.path_for(self.run_dir / CHECKPOINT_DIR, self.env_steps))
        self._emit("on_checkpoint", path)
        return path

    def render_gif(self, path: Path) -> Path | None:
        """One greedy episode of the current policy as a GIF (None if the env does not render)."""
        return render_policy_gif(
            self.config, self.learner, path, seed=self.seeds["eval"], trust_module=self.trust_module
        )


# ------------------------------------------------------------------------------------------------- the loop
def progress_at(env_steps: int, total_steps: int, steps_per_batch: int) -> Progress:
    """The progress a learner was told before the update that brought the counter to ``env_steps`` (nothing
    collected yet at 0)."""
    return Progress(env_steps, total_steps, min(steps_per_batch, env_steps))


def learn_step(
    learner: Learner, source: BatchSource, env_steps: int, total_steps: int
) -> tuple[int, dict[str, float], EpisodeStats]:
    """One pass of the runner's loop: collect a batch, count its env-steps, tell the learner where the run is,
    update. Returns the counter after the batch, the update's metrics and the episodes that ended meanwhile."""
    batch, stats = source.collect()
    steps = source.steps_per_batch
    env_steps += steps
    learner.set_progress(Progress(env_steps, total_steps, steps))
    # A parameter server applies the gradients the batch carries, then gives the learner its weights.
    metrics = source.update(learner, batch) if isinstance(source, UpdatingSource) else learner.update(batch)
    if isinstance(source, RemoteSource):  # how the batch was made: policy lag, transfer times, restarts
        metrics = {**metrics, **source.metrics()}
    return env_steps, metrics, stats


def learn(
    learner: Learner, source: BatchSource, updates: int, total_steps: int | None = None, env_steps: int | None = None
) -> list[dict[str, float]]:
    """``updates`` passes of the runner's loop (``learn_step``) without a run directory, logging or evaluation;
    returns each update's metrics. The counter starts at ``env_steps``, by default where the learner was last told
    the run is (``learner.progress``, so calls in a row go on counting); ``total_steps`` is the budget schedules
    over it read (learning-rate annealing), by default the env-steps up to the end of these updates."""
    if env_steps is None:
        env_steps = learner.progress.env_steps
    if total_steps is None:
        total_steps = env_steps + updates * source.steps_per_batch
    metrics = []
    for _ in range(updates):
        env_steps, m, _ = learn_step(learner, source, env_steps, total_steps)
        metrics.append(m)
    return metrics


def evaluate_learner(env: Any, learner: Learner, episodes: int, seed: int) -> EpisodeStats:
    """An evaluation of ``learner`` on ``env``: greedy episodes of a batched env (``marlkit.collect.evaluate``), or
    what a ``GameLearner`` plays on its own env (``evaluate_on``)."""
    if isinstance(learner, GameLearner):
        return learner.evaluate_on(env, episodes, seed)
    return evaluate(env, learner, episodes, seed=seed)


def check_learner_fits(learner: Learner, config: RunConfig, env: Any) -> None:
    """A learner given to a run must be one of ``config.algorithm``'s and built for the groups and spaces of the
    run's env; a clear ``ConfigError`` otherwise."""
    from marlkit.algorithms.registry import algo_spec
    from marlkit.core.config import ConfigError

    config_cls = algo_spec(config.algorithm).load()[1]
    if not isinstance(learner.config, config_cls):
        raise ConfigError(
            f"the learner given to the run is a {type(learner).__name__} with a "
            f"{type(learner.config).__name__}, but algorithm {config.algorithm!r} takes a "
            f"{config_cls.__name__}; name the learner's algorithm in the config"
        )
    if difference := learner.spaces.difference(PolicySpaces.from_env(env)):
        raise ConfigError(
            f"the learner given to the run cannot play {config.env.id} (env.kwargs {config.env.kwargs}): {difference}"
        )


# ------------------------------------------------------------------------------------------------------ helpers
class _Window:
    """What happened since the last training row."""

    def __init__(self) -> None:
        self.episodes = EpisodeStats()
        self.metrics: dict[str, list[float]] = {}
        self.steps = 0
        self.busy = 0.0

    def add(self, stats: EpisodeStats, metrics: dict[str, float], steps: int, seconds: float) -> None:
        for g, r in stats.returns.items():
            self.episodes.returns.setdefault(g, []).extend(r)
        self.episodes.lengths.extend(stats.lengths)
        for k, v in stats.metrics.items():
            self.episodes.metrics.setdefault(k, []).extend(v)
        for k, value in metrics.items():
            self.metrics.setdefault(k, []).append(value)
        self.steps += steps
        self.busy += seconds

    def row(self) -> dict[str, float]:
        row = self.episodes.summary("train/")
        row.update({k if "/" in k else f"loss/{k}": float(np.mean(v)) for k, v in self.metrics.items()})
        row["perf/env_steps_per_s"] = self.steps / self.busy if self.busy > 0 else float("nan")
        return row


def _crossed(before: int, after: int, every: int) -> bool:
    return every > 0 and after // every > before // every


def _name(cb: Any) -> str:
    return getattr(cb, "name", type(cb).__name__)


def _stat(x: Any) -> dict[str, float]:
    x = np.asarray(x, dtype=np.float64)
    return {"mean": float(x.mean()), "std": float(x.std())}


def eval_report(env: Any, stats: EpisodeStats, env_steps: int | None = None, seed: int | None = None) -> dict[str, Any]:
    """An evaluation as plain data: mean ± std of the per-agent return (averaged over agents, the MPE convention),
    of every agent and group, of episode lengths and of the env's task metrics."""
    groups = list(stats.returns)
    per_group = {g: np.stack(stats.returns[g]) for g in groups}  # (episodes, n_agents_in_group)
    per_agent = np.concatenate([per_group[g] for g in groups], axis=1)
    agents = [a for g in groups for a in env.groups[g]]
    return {
        "env_steps": env_steps,
        "eval_seed": seed,
        "episodes": len(stats),
        "episode_return": _stat(per_agent.mean(axis=1)),
        "per_agent_return": {a: _stat(per_agent[:, i]) for i, a in enumerate(agents)},
        "group_return": {g: _stat(per_group[g].mean(axis=1)) for g in groups},
        "episode_length": _stat(stats.lengths),
        "metrics": {k: _stat(v) for k, v in stats.metrics.items()},
    }


def _flat_eval(report: dict[str, Any]) -> dict[str, float]:
    out = {
        "episode_return": report["episode_return"]["mean"],
        "episode_return_std": report["episode_return"]["std"],
        "episode_length": report["episode_length"]["mean"],
        "episodes": float(report["episodes"]),
    }
    out.update({k: v["mean"] for k, v in report["metrics"].items()})
    out.update(report.get("callback_metrics", {}))
    return out


def _write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def greedy_policy(algo: Any, env: Any):
    """``policy(obs, info) -> actions`` acting greedily, for ``record_episode``."""

    def policy(obs: dict, info: dict) -> dict:
        state = env.state() if algo.uses_state else None
        return algo.act(obs, state, info, explore=False)[0]

    return policy


def render_policy_gif(
    cfg: RunConfig, algo: Any, path: str | Path, seed: int | None = None, trust_module: bool = False
) -> Path | None:
    """Record one greedy episode of copy 0 to a GIF; None when the env cannot render (or is not a batched env)."""
    from marlkit.envs.registry import env_kind
    from marlkit.envs.rendering import record_episode, save_gif

    if env_kind(cfg.env.id) != "batched":
        return None

    env = make_env(cfg, 1, trust_module=trust_module)
    try:
        frames = record_episode(env, greedy_policy(algo, env), seed=seed)
    except NotImplementedError:
        return None
    return save_gif(frames, path, fps=env.metadata.get("render_fps", 10))


def train(
    algo: str | None = None,
    env: str | None = None,
    steps: int | None = None,
    seed: int | None = None,
    *,
    config: RunConfig | dict[str, Any] | str | Path | None = None,
    sets: Iterable[str] = (),
    preset: str | Path | None = "auto",
    callbacks: Iterable[Any] = (),
    trust_module: bool = False,
    **overrides: Any,
) -> RunResult:
    """Train ``algo`` on ``env`` and return the result (run directory, final metrics, evaluation).

    The Python mirror of ``marlkit train``: ``overrides`` are config fields by bare name when unambiguous
    (``lr=3e-4``, ``num_envs=16``, ``progress=False``) or by path (``**{"env.kwargs": {"k": -50}}``); ``sets``
    takes the command line's ``"algo.lr=3e-4"`` strings; ``preset`` is the tuned preset beneath them (by default
    the shipped one of ``algo`` for ``env``; ``"none"`` for the code defaults; see ``make_run_config``);
    ``trust_module`` lets a ``pz:`` env id import a module outside the env registry's allow-list. Example::

        result = marlkit.train("mappo", "spread-v0", steps=200_000, seed=1, lr=5e-4)
        print(result.eval_return, result.run_dir)
    """
    from marlkit.experiment.run import make_run_config

    cfg = make_run_config(algo, env, config, sets, preset, steps=steps, seed=seed, **overrides)
    return Runner(cfg, callbacks, trust_module=trust_module).run()


def load_run(
    run_dir: str | Path, num_envs: int = 1, checkpoint: str | Path | None = None, trust_module: bool = False
) -> tuple[RunConfig, Any, Any, int]:
    """The config, an env of ``num_envs`` copies and the trained algorithm of a run directory (latest intact
    checkpoint unless ``checkpoint`` is given); returns ``(config, env, algo, env_steps)``."""
    run_dir = Path(run_dir)
    cfg = RunConfig.load(run_dir)
    set_threads(cfg.experiment.torch_threads)
    if checkpoint:
        state = ckpt.load(checkpoint)
    elif found := ckpt.load_latest(run_dir / CHECKPOINT_DIR):
        state = found[1]
    else:
        raise FileNotFoundError(f"{run_dir} has no checkpoint in {CHECKPOINT_DIR}/ yet")
    env = make_env(cfg, num_envs, trust_module=trust_module)
    # The algorithm is rebuilt as it was trained: replay buffers and per-copy tables are sized by the training
    # env's copies, so the checkpoint loads exactly; its policy then acts on any number of copies.
    trained = env if num_envs == cfg.env.num_envs else make_env(cfg, cfg.env.num_envs, trust_module=trust_module)
    algo = build_algo(cfg, trained, derive_seeds(cfg.experiment.seed)["algo"])
    algo.load_state(state["algo"])
    env_steps = int(state["env_steps"])
    algo.set_progress(Progress(env_steps, cfg.experiment.steps))  # what it explores with (ε), as when it was saved
    return cfg, env, algo, env_steps
