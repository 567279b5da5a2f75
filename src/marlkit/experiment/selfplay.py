"""Self-play training runs: a learner trained against a pool of its own snapshots, through the ordinary runner.

``selfplay(algo, env, steps, seed, selfplay=SelfPlayConfig(...))`` builds the learner for every group of the env
and feeds it with a ``marlkit.population.selfplay.SelfPlaySource``; the ``Runner`` does the rest (logging,
evaluation, checkpoints). The run directory holds, besides what every run writes, ``selfplay.yaml`` (the
self-play config) and ``pool/`` (one weights-only file per snapshot, ``win_rates.json``: the latest win rates and
draw weights). A final snapshot is taken when the run ends. ``resume_selfplay(run_dir)`` continues it: the pool is
read back and cut to the snapshots the checkpoint had seen.

``marlkit selfplay ALGO ENV`` is the command line of ``selfplay``.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from marlkit.core import checkpoint as ckpt
from marlkit.core.rundir import CHECKPOINT_DIR
from marlkit.experiment.run import RunConfig, RunResult, _plain, make_run_config, new_run_dir
from marlkit.experiment.runner import Runner, build_algo, derive_seeds, make_env, set_threads
from marlkit.population.pool import PolicyPool
from marlkit.population.selfplay import SelfPlayConfig, SelfPlaySource

SELFPLAY_FILE = "selfplay.yaml"
POOL_DIR = "pool"


class FinalSnapshot:
    """Callback: the learner's final policy joins the pool when the run ends (unless it is the newest already)."""

    name = "final_snapshot"

    def __init__(self, source: SelfPlaySource) -> None:
        self.source = source

    def on_end(self, runner: Runner, result: RunResult) -> None:
        if not len(self.source.pool) or self.source.pool[-1].updates != self.source.collections:
            self.source.take_snapshot()


class SelfPlayEval:
    """Callback: at every evaluation, paired role-swapped matches (``marlkit.population.selfplay.match``) of the
    learner's current policy against a uniformly random player and against the pool's first snapshot (the
    learner before training), ``games`` games each from the evaluation seed. Logged as ``eval/selfplay/``:
    ``vs_random_{win,draw,loss}``, ``vs_first_{win,draw,loss}`` (fractions of games) and ``elo_vs_random``,
    ``elo_vs_first``: the Elo difference the score implies, ``400 log10(s / (1 - s))`` (draws count half; ``s``
    clipped to ``[1 / (2 games), 1 - 1 / (2 games)]``, so at most about ``400 log10(2 games)``)."""

    name = "selfplay_eval"

    def __init__(self, source: SelfPlaySource, env: Any, seed: int, explore: bool) -> None:
        from marlkit.algorithms.team_policies import RandomPolicy
        from marlkit.core import PolicySpaces

        self.source, self.env, self.seed, self.explore = source, env, seed, explore
        self.random = RandomPolicy(PolicySpaces.from_env(env), seed)

    def eval_metrics(self, runner: Any) -> dict[str, float]:
        from marlkit.population.selfplay import match

        out: dict[str, float] = {}
        pool = self.source.pool
        opponents = [("random", self.random)] + ([("first", pool[0].build(self.seed))] if len(pool) else [])
        for name, opponent in opponents:
            current = self.source.learner.policy(seed=self.seed)
            outcome, _ = match(self.env, current, opponent, self.source.sides, self.seed, self.explore)
            out |= score_metrics(f"selfplay/vs_{name}", outcome)
        return out


def score_metrics(prefix: str, outcome: np.ndarray) -> dict[str, float]:
    """Win, draw and loss fractions of ``outcome`` (1, 0.5, 0 per game) and the Elo difference its score implies."""
    n = len(outcome)
    score = float(np.clip(outcome.mean(), 1 / (2 * n), 1 - 1 / (2 * n)))
    head, _, who = prefix.rpartition("/vs_")
    return {
        f"{prefix}_win": float((outcome == 1.0).mean()),
        f"{prefix}_draw": float((outcome == 0.5).mean()),
        f"{prefix}_loss": float((outcome == 0.0).mean()),
        f"{head}/elo_vs_{who}": float(400 * np.log10(score / (1 - score))),
    }


def selfplay_config(data: SelfPlayConfig | dict[str, Any] | None) -> SelfPlayConfig:
    """A ``SelfPlayConfig`` from YAML data (unknown keys named), or as it is."""
    from marlkit.core.config import from_dict

    if isinstance(data, SelfPlayConfig):
        return data
    return from_dict(SelfPlayConfig, dict(data or {}), "selfplay.")


def build_selfplay(
    cfg: RunConfig, sp: SelfPlayConfig, run_dir: Path, resume: bool = False
) -> tuple[Any, SelfPlaySource]:
    """The learner (built for every group of the env, seeded as the runner seeds) and its self-play source."""
    exp = cfg.experiment
    set_threads(exp.torch_threads)
    seeds = derive_seeds(exp.seed)
    random.seed(exp.seed)
    np.random.seed(exp.seed)
    torch.manual_seed(exp.seed)
    env = make_env(cfg, cfg.env.num_envs, seeds["env"])
    learner = build_algo(cfg, env, seeds["algo"])
    match_env = make_env(cfg, sp.win_rate_games)
    pool = PolicyPool.load(run_dir / POOL_DIR) if resume else PolicyPool(run_dir / POOL_DIR)
    if resume and not ckpt.list_checkpoints(run_dir / CHECKPOINT_DIR):
        pool.truncate(0)  # the run starts over: its checkpoint's source state will not cut the pool
    source = SelfPlaySource(learner, env, match_env, pool, sp, seeds["env"] + 1)
    return learner, source


def selfplay_eval(cfg: RunConfig, sp: SelfPlayConfig, source: SelfPlaySource) -> SelfPlayEval:
    """The run's ``SelfPlayEval``: ``experiment.eval_episodes`` games on their own env, the evaluation seed."""
    games = cfg.experiment.eval_episodes
    return SelfPlayEval(source, make_env(cfg, games), derive_seeds(cfg.experiment.seed)["eval"], sp.match_explore)


def selfplay(
    algo: str | None = None,
    env: str | None = None,
    steps: int | None = None,
    seed: int | None = None,
    *,
    selfplay: SelfPlayConfig | dict[str, Any] | None = None,
    config: RunConfig | dict[str, Any] | str | Path | None = None,
    sets: Iterable[str] = (),
    preset: str | Path | None = "auto",
    callbacks: Iterable[Any] = (),
    **overrides: Any,
) -> RunResult:
    """Train ``algo`` on ``env`` by self-play against a pool of its snapshots; returns the run's result.

    ``config``, ``sets``, ``preset`` and ``overrides`` are those of ``marlkit.train``; ``selfplay`` is the
    ``SelfPlayConfig`` (or its fields as a dict)."""
    cfg = make_run_config(algo, env, config, sets, preset, steps=steps, seed=seed, **overrides)
    sp = selfplay_config(selfplay)
    run_dir = new_run_dir(cfg)
    (run_dir / SELFPLAY_FILE).write_text(yaml.safe_dump(_plain(dataclasses.asdict(sp)), sort_keys=False))
    learner, source = build_selfplay(cfg, sp, run_dir)
    runner = Runner(
        cfg,
        [FinalSnapshot(source), selfplay_eval(cfg, sp, source), *callbacks],
        run_dir,
        learner=learner,
        source=source,
    )
    return runner.run()


def resume_selfplay(run_dir: str | Path, steps: int | None = None, callbacks: Iterable[Any] = ()) -> RunResult:
    """Continue the self-play run in ``run_dir`` from its latest intact checkpoint (``steps``: a new budget)."""
    from marlkit.core.config import ConfigError

    run_dir = Path(run_dir)
    if not (run_dir / SELFPLAY_FILE).is_file():
        raise ConfigError(f"{run_dir} is not a self-play run (it has no {SELFPLAY_FILE}); resume it with marlkit train")
    sp = selfplay_config(yaml.safe_load((run_dir / SELFPLAY_FILE).read_text()))
    cfg = RunConfig.load(run_dir)
    learner, source = build_selfplay(cfg, sp, run_dir, resume=True)
    own = [FinalSnapshot(source), selfplay_eval(cfg, sp, source)]
    runner = Runner.resume(run_dir, steps, [*own, *callbacks], learner=learner, source=source)
    return runner.run()
