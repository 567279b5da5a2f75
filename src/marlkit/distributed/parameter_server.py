"""Parameter-server gradient mode, as plain classes: workers compute gradients, one server applies them.

The DistBelief / A3C design: a ``GradientWorker`` holds its own copies of the env and a replica of the learner; for
each request it takes the server's newest weights, collects ``rollout_steps`` steps of every copy with them and
returns the *gradient* of the learner's loss on that batch (``GradientLearner.gradients``: one flat vector), not
the batch. The ``ParameterServer`` holds the learner whose optimiser is the run's, applies what the workers send
(``GradientLearner.apply_gradients``: clip, one optimiser step) and serves the weights of every version (the
number of gradient steps it has taken). Two ways to apply:

* **synchronous** (``"ps-sync"``): one step per round with the *mean* of the N workers' gradients, all computed on
  the same version. With equal batches per worker and a loss that is a mean over samples, that is the gradient
  one learner would take on the N batches side by side (per-batch normalisations aside: advantage normalisation
  then sees each worker's batch, not the union).
* **asynchronous** (``"ps-async"``): every gradient is applied as it arrives. Its *staleness* is the number of
  steps the server took since the version it was computed on; a gradient staler than ``max_staleness`` is
  **dropped** (counted in ``perf/dropped_grads``), never applied, and its worker goes on with the newest weights.

These classes need no Ray (the tests drive them in one process); ``marlkit.distributed.ps_source`` runs them as
Ray actors. A learner takes part when it has ``gradients``/``apply_gradients`` (IA2C and MAA2C: one gradient step
per batch, the A3C algorithm). Running statistics updated inside the loss (``algo.value_norm``) would stay in each
worker's replica, so those learners take these modes with ``value_norm`` off.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import torch

from marlkit.core.config import ConfigError
from marlkit.core.contracts import Learner, Progress
from marlkit.data.rollout import EpisodeStats
from marlkit.distributed.worker import RolloutWorker

PS_MODES: tuple[str, ...] = ("ps-sync", "ps-async")


@runtime_checkable
class GradientLearner(Protocol):
    """A learner that can split ``update`` into computing a gradient and applying one (an ``nn.Module``)."""

    def gradients(self, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        """The flat gradient of the loss on ``batch`` (weights unchanged) and the loss statistics."""
        ...

    def apply_gradients(self, grads: torch.Tensor) -> dict[str, float]:
        """One optimiser step with a flat gradient as ``gradients`` returns it."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> Any: ...


def check_gradient_learner(learner: Learner, mode: str) -> None:
    """A ``ConfigError`` unless ``learner`` can train in parameter-server mode ``mode``."""
    if mode not in PS_MODES:
        raise ConfigError(f"parameter-server mode {mode!r} is not allowed: one of {PS_MODES}")
    if not isinstance(learner, GradientLearner):
        raise ConfigError(
            f"experiment.ray_mode = {mode!r} sends gradients, and {type(learner).__name__} has no "
            f"gradients/apply_gradients (one gradient step per batch): use ia2c or maa2c, or the modes sync/async"
        )
    if getattr(learner.config, "value_norm", False):
        raise ConfigError(
            f"experiment.ray_mode = {mode!r} needs algo.value_norm = false: the running statistics of the "
            f"value targets would be updated in each worker's replica, not in the parameter server's learner"
        )


def module_weights(learner: GradientLearner) -> dict[str, torch.Tensor]:
    """A copy of the learner's parameters and buffers (what a worker's replica loads)."""
    return {k: v.detach().clone() for k, v in learner.state_dict().items()}


class ParameterServer:
    """Applies the workers' gradients to ``learner`` with its optimiser and serves its weights (module docstring).

    ``mode``: ``"ps-sync"`` (``apply_mean``) or ``"ps-async"`` (``push``, with ``max_staleness``)."""

    def __init__(self, learner: Any, mode: str = "ps-sync", max_staleness: int = 2) -> None:
        check_gradient_learner(learner, mode)
        if max_staleness < 0:
            raise ConfigError(f"experiment.max_staleness = {max_staleness} is not allowed: an integer >= 0")
        torch.set_num_threads(1)
        self.learner, self.mode, self.max_staleness = learner, mode, max_staleness
        self.version = 0  # gradient steps taken
        self.dropped = 0
        self.staleness_max = 0

    def weights(self) -> dict[str, torch.Tensor]:
        """The weights of the current version."""
        return module_weights(self.learner)

    def apply_mean(self, progress: Progress, *grads: torch.Tensor) -> dict[str, float]:
        """Synchronous step: the mean of ``grads`` (all computed on the current version)."""
        self.learner.set_progress(progress)
        metrics = self.learner.apply_gradients(torch.stack(list(grads)).mean(0))
        self.version += 1
        return {**metrics, **self._report(0, applied=True)}

    def push(self, grads: torch.Tensor, version: int, progress: Progress) -> dict[str, float]:
        """Asynchronous step with one gradient computed on weights of ``version``; dropped (no step) when it is
        more than ``max_staleness`` versions old."""
        staleness = self.version - version
        if staleness > self.max_staleness:
            self.dropped += 1
            return self._report(staleness, applied=False)
        self.learner.set_progress(progress)
        metrics = self.learner.apply_gradients(grads)
        self.version += 1
        return {**metrics, **self._report(staleness, applied=True)}

    def _report(self, staleness: int, applied: bool) -> dict[str, float]:
        self.staleness_max = max(self.staleness_max, staleness)
        return {
            "perf/staleness": float(staleness),
            "perf/staleness_max": float(self.staleness_max),
            "perf/dropped_grads": float(self.dropped),
            "perf/grad_applied": float(applied),
            "perf/server_version": float(self.version),
        }

    def state(self) -> dict[str, Any]:
        """The learner's checkpoint (its optimiser is the run's) and the server's counters."""
        return {
            "learner": self.learner.state(),
            "version": self.version,
            "dropped": self.dropped,
            "staleness_max": self.staleness_max,
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.learner.load_state(state["learner"])
        self.version, self.dropped = int(state["version"]), int(state["dropped"])
        self.staleness_max = int(state["staleness_max"])

    def ping(self) -> bool:
        return True


class GradientWorker:
    """A ``RolloutWorker`` (its envs, seeds and checkpoint state) plus a replica of the learner that turns each batch
    into a gradient. ``learner`` is copied in (its weights are replaced by every request's)."""

    def __init__(
        self,
        learner: Any,
        env_id: str,
        num_envs: int,
        rollout_steps: int,
        seed: int,
        index: int = 0,
        env_kwargs: Mapping[str, Any] | None = None,
        trust_module: bool = False,
        name: str | None = None,
    ) -> None:
        import copy

        self.rollout = RolloutWorker(
            env_id, num_envs, rollout_steps, seed, index, env_kwargs, learner.capabilities.uses_state,
            trust_module, name,
        )  # fmt: skip
        self.learner = copy.deepcopy(learner)
        self.version = -1

    def compute(
        self, weights: Mapping[str, torch.Tensor], version: int
    ) -> tuple[torch.Tensor, tuple[dict[str, float], EpisodeStats, int]]:
        """Collect a batch with the weights of ``version`` and return its gradient and (the loss statistics, the
        episodes that ended, the version that acted)."""
        if version != self.version:
            self.learner.load_state_dict(weights)
            self.version = version
            rollout, stats, acted = self.rollout.sample(self.learner.policy().policy_state(), version)
        else:
            rollout, stats, acted = self.rollout.sample()
        grads, metrics = self.learner.gradients(rollout)
        return grads, (metrics, stats, acted)

    def state(self) -> dict[str, Any]:
        return self.rollout.state()

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.rollout.load_state(state)

    def where(self) -> dict[str, Any]:
        return self.rollout.where()

    def ping(self) -> bool:
        return True


def mean_metrics(metrics: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Each key's mean over the workers' loss statistics."""
    return {k: sum(m[k] for m in metrics) / len(metrics) for k in metrics[0]} if metrics else {}
