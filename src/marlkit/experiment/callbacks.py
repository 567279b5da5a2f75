"""Callbacks: the hooks the runner calls as a run goes, and what a callback sees of the run.

Behaviour is added to a run by passing callbacks, not by subclassing the runner; ``MetricsLogger``
(``marlkit.experiment.logging``) and ``Progress`` (``marlkit.experiment.progress``) are the default ones. Every hook
is given the run as a ``RunView``: the few things a callback reads of it (the ``Runner`` is one), so the callbacks
and the runner import this module and not each other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from marlkit.experiment.run import RunConfig, RunResult


class RunView(Protocol):
    """What a callback reads of the run that calls it."""

    @property
    def config(self) -> RunConfig:
        """The run's config."""

    @property
    def run_dir(self) -> Path:
        """The run directory."""

    @property
    def env_steps(self) -> int:
        """Env-steps trained so far (the run's one counter)."""

    @property
    def updates(self) -> int:
        """Collections learned from so far."""

    @property
    def resumed(self) -> bool:
        """Whether this continues a run from its checkpoint."""

    @property
    def steps_per_collection(self) -> int:
        """Env-steps one collection adds."""

    def planned_steps(self) -> int:
        """The env-steps the run ends at (whole collections, so past the budget when it is not a multiple)."""


class Callback:
    """Hooks the runner calls, in this order; override the ones you need (any object with some of them works).

    A callback with ``state() -> dict`` and ``restore(dict)`` has that state saved in checkpoints and given back
    (before ``on_start``) when the run resumes.
    """

    def on_start(self, runner: RunView) -> None:
        """Before the first collection (``runner.resumed`` tells whether this continues a run)."""

    def on_update(self, runner: RunView, metrics: dict[str, float]) -> None:
        """After every collection and update, with what ``update`` returned (``loss/...``)."""

    def on_log(self, runner: RunView, row: dict[str, float]) -> None:
        """Every ``log_every`` env-steps, with the training row (``train/``, ``loss/``, ``perf/`` keys)."""

    def eval_metrics(self, runner: RunView) -> dict[str, float]:
        """At every evaluation, before ``on_eval``: what this callback measures besides the runner's episodes; the
        values join the evaluation report (``eval.json``'s ``callback_metrics``) and are logged with an ``eval/``
        prefix."""
        return {}

    def on_eval(self, runner: RunView, results: dict[str, float]) -> None:
        """After every evaluation (periodic and final), with the ``eval/`` keys."""

    def on_checkpoint(self, runner: RunView, path: Path) -> None:
        """After a checkpoint was written."""

    def on_end(self, runner: RunView, result: RunResult) -> None:
        """After the final evaluation and checkpoint."""
