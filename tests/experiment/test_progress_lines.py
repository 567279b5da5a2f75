"""The progress callback's first and last lines for runs that end past their budget, driven by a stand-in runner."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from marlkit.experiment.progress import Progress


class _Runner:
    """What ``Progress`` reads of a runner: ``batches`` are the env-steps of each collection, in order; ``per`` is
    what ``steps_per_collection`` says (0 for a source whose batches are not known ahead)."""

    def __init__(self, budget: int, per: int) -> None:
        exp = SimpleNamespace(steps=budget, progress=False, seed=0)
        self.config = SimpleNamespace(experiment=exp, algorithm="algo", env=SimpleNamespace(id="env-v0"))
        self.run_dir = Path("run")
        self.resumed, self.env_steps, self.updates, self.steps_per_collection = False, 0, 0, per

    def planned_steps(self) -> int:
        per, budget = self.steps_per_collection, self.config.experiment.steps
        return -(-budget // per) * per if per > 0 else budget


def _lines(budget: int, per: int, batches: list[int], *, variable: bool) -> str:
    runner, out = _Runner(budget, per), io.StringIO()
    progress = Progress(live=False, stream=out)
    progress.on_start(runner)
    for steps in batches:
        runner.env_steps += steps
        runner.updates += 1
        if variable:  # a text game's source reports the last batch's length
            runner.steps_per_collection = steps
        progress.on_update(runner, {})
    stats: dict[str, Any] = {"mean": 0.0, "std": 0.0}
    result = SimpleNamespace(
        eval={"episodes": 1, "episode_return": stats, "group_return": {}, "metrics": {}}, run_dir=Path("run")
    )
    progress.on_end(runner, result)
    return out.getvalue()


def test_one_collection_past_the_budget_is_singular():
    out = _lines(300, 400, [400], variable=False)
    assert "trained 400 env-steps: 1 collection of 400; the budget 300 is not a multiple of 400" in out
    out = _lines(500, 200, [200, 200, 200], variable=False)
    assert "trained 600 env-steps: 3 collections of 200; the budget 500 is not a multiple of 200" in out


def test_batches_of_whole_episodes_are_not_called_collections_of_a_size():
    out = _lines(300, 0, [495], variable=True)  # one batch whose length equals the source's last
    assert "trained 495 env-steps in 1 batch of whole episodes; the last ended past the budget 300" in out
    assert "collections of" not in out and "not a multiple" not in out
    out = _lines(300, 0, [120, 130, 140], variable=True)
    assert "trained 390 env-steps in 3 batches of whole episodes; the last ended past the budget 300" in out
