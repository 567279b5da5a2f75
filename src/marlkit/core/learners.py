"""What every learner shares: the loss-term hook and the defaults of the ``Learner`` contract.

``LearnerBase`` is a mixin (no ``__init__``, no state of its own until a term is added or progress is told),
listed before the base class (``class DQN(LearnerBase, nn.Module)``). A learner sets ``capabilities`` and
``spaces`` and writes ``update``, ``policy``, ``state`` and ``load_state``; its schedules read ``self.progress``
(the last ``set_progress``; a learner that must act on it at once overrides ``set_progress`` and calls this one).
In each gradient step it passes every loss named in ``capabilities.losses`` through
``with_loss_terms(name, loss, batch)`` just before ``backward``. With no terms added that returns ``loss`` itself,
so a learner nobody wraps computes exactly what it did without the hook.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from marlkit.core.contracts import Capabilities, LossContext, LossTerm, Progress

if TYPE_CHECKING:
    import torch


class LearnerBase:
    """Defaults of the ``Learner`` contract and the loss-term hook (see ``marlkit.core.contracts``)."""

    capabilities: Capabilities
    #: The last ``set_progress``: where the run is by the runner's env-step counter (nothing collected yet until told).
    progress: Progress = Progress()
    _loss_terms: tuple[tuple[LossTerm, frozenset[str]], ...] = ()

    @property
    def uses_state(self) -> bool:
        """Whether the collector stores ``state()`` for this learner (``capabilities.uses_state``)."""
        return self.capabilities.uses_state

    # ---------------------------------------------------------------------------------------- loss-term hook
    def add_loss_term(self, fn: LossTerm, losses: tuple[str, ...] | None = None) -> Callable[[], None]:
        """Add ``fn(ctx)`` (a scalar tensor) to the losses named in ``losses`` (default: all of
        ``capabilities.losses``) before every backward pass; returns a function that removes it again."""
        declared = self.capabilities.losses
        if not declared:
            raise TypeError(
                f"{type(self).__name__} takes no loss terms (capabilities.losses is empty: it does not "
                f"learn by gradient descent on a loss)"
            )
        if not callable(fn):
            raise TypeError(f"a loss term is a function ctx -> scalar tensor, got {fn!r}")
        chosen = declared if losses is None else tuple(losses)
        if isinstance(losses, str) or not chosen or any(n not in declared for n in chosen):
            raise ValueError(
                f"losses = {losses!r} is not allowed for {type(self).__name__}: a tuple of some of "
                f"its losses {declared} (or None for all)"
            )
        entry = (fn, frozenset(chosen))
        self._loss_terms = (*self._loss_terms, entry)

        def remove() -> None:
            self._loss_terms = tuple(e for e in self._loss_terms if e is not entry)

        return remove

    def with_loss_terms(self, name: str, loss: torch.Tensor, batch: Any) -> torch.Tensor:
        """``loss`` plus every term added for the loss ``name``; ``loss`` itself when there are none."""
        terms = [fn for fn, names in self._loss_terms if name in names]
        if not terms:
            return loss
        import torch

        ctx = LossContext(self, name, batch)
        for fn in terms:
            extra = fn(ctx)
            if not isinstance(extra, torch.Tensor) or extra.ndim != 0:
                raise ValueError(
                    f"the loss term {getattr(fn, '__name__', fn)!r} must return a scalar tensor, got "
                    f"{type(extra).__name__} of shape {getattr(extra, 'shape', ())}"
                )
            loss = loss + extra
        return loss

    # ------------------------------------------------------------------------------- defaults of the contract
    def set_progress(self, progress: Progress) -> None:
        """Keep ``progress`` in ``self.progress``, which the learner's schedules read."""
        if not isinstance(progress, Progress):
            raise TypeError(f"set_progress takes a marlkit.core.Progress, got {type(progress).__name__}")
        self.progress = progress

    def eval_extras(self, report: dict[str, Any]) -> dict[str, Any]:
        """Nothing to add to the evaluation report."""
        return {}

    if TYPE_CHECKING:  # what every learner writes (the ``Learner`` contract); declared for the two methods below

        def state(self) -> dict[str, Any]: ...

        def load_state(self, state: dict[str, Any]) -> None: ...

    # The checkpoint methods under the names the runner and older code use.
    def checkpoint_state(self) -> dict[str, Any]:
        return self.state()

    def load_checkpoint_state(self, state: dict[str, Any]) -> None:
        self.load_state(state)
