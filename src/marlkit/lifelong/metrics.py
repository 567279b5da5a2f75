"""Continual-learning metrics, pure NumPy, in both conventions the field uses.

The inputs are what ``marlkit.lifelong.trainer`` records, each performance a success rate in [0, 1]:

``R`` — the performance matrix, ``R[i, j]`` = performance on task ``j`` after training stage ``i`` (``T x T``).
``curves`` — ``curves[i]``: performance on task ``i`` at equally spaced points of its own stage, the first point
before any training on it and the last at its end (``R[i, i]``); ``ref_curves[i]``: the same for a fresh learner
trained on task ``i`` alone with the same budget (the from-scratch reference).
``history`` — optional ``(points, T)``: performance on every task at every evaluation of the sequence, in time
order (for MEAL's "best value ever reached"; the rows of ``R`` when not given).

Continual World (Wołczyk et al. 2021, https://arxiv.org/abs/2105.10919):

* average performance: ``mean_j R[T-1, j]``;
* forgetting ``F_i = p_i(end of task i) - p_i(end) = R[i, i] - R[T-1, i]``, averaged over all ``T`` tasks (the last
  contributes 0, as in the paper);
* forward transfer ``FT_i = (AUC_i - AUC_ref,i) / (1 - AUC_ref,i)``, where ``AUC`` is the normalised area under a
  task's curve over its stage (trapezoids over equally spaced points); a task whose reference is already perfect
  (``AUC_ref = 1``) has nothing to transfer and counts 0.

MEAL (Tomilin et al. 2025): forgetting of task ``i`` against the best value it ever reached, ``max(best_i -
final_i, 0)``, averaged over the tasks; tasks are compared once they were trained (points before their stage do
not count as "best").

Plasticity: how fast a fresh task is learned late in the sequence compared with its start, each relative to its
from-scratch reference: ``mean over the last half of the tasks of AUC_i / AUC_ref,i`` divided by the same ratio of
the first task (whose stage starts from a fresh learner). 1: the learner learns as well as it did at the start; below
1: it has lost plasticity; above: it learns new tasks faster than at its start.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

ArrayLike = npt.ArrayLike


def _matrix(R: ArrayLike) -> np.ndarray:
    m = np.asarray(R, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] < 1:
        raise ValueError(f"a performance matrix is T x T (stages x tasks), got shape {m.shape}")
    return m


def average_performance(R: ArrayLike) -> float:
    """Mean performance over all tasks after the last stage."""
    return float(_matrix(R)[-1].mean())


def forgetting_per_task(R: ArrayLike) -> np.ndarray:
    """Continual World's ``F_i = R[i, i] - R[T-1, i]`` for every task (the last is 0)."""
    m = _matrix(R)
    out: np.ndarray = np.diag(m) - m[-1]
    return out


def forgetting(R: ArrayLike) -> float:
    """Continual World's average forgetting, ``mean_i F_i`` over all ``T`` tasks."""
    return float(forgetting_per_task(R).mean())


def meal_forgetting_per_task(
    R: ArrayLike, history: ArrayLike | None = None, stage_ends: Sequence[int] | None = None
) -> np.ndarray:
    """MEAL's ``max(best_i - final_i, 0)`` per task. ``history`` rows are evaluations in time order (default: the rows
    of ``R``); ``stage_ends[i]`` is the row of ``history`` at which stage ``i`` ended (default: row ``i``), and only
    rows from the start of task ``i``'s own stage on count towards its best."""
    m = _matrix(R)
    t = m.shape[0]
    h = m if history is None else np.asarray(history, dtype=np.float64)
    ends = list(range(t)) if stage_ends is None else [int(e) for e in stage_ends]
    if h.ndim != 2 or h.shape[1] != t or len(ends) != t:
        raise ValueError(f"history must be (points, {t}) with {t} stage ends, got {h.shape} and {len(ends)} ends")
    starts = [0, *[e + 1 for e in ends[:-1]]]
    best = np.array([h[starts[i] :, i].max() for i in range(t)])
    out: np.ndarray = np.maximum(best - m[-1], 0.0)
    return out


def meal_forgetting(R: ArrayLike, history: ArrayLike | None = None, stage_ends: Sequence[int] | None = None) -> float:
    """MEAL's forgetting averaged over tasks."""
    return float(meal_forgetting_per_task(R, history, stage_ends).mean())


def auc(curve: ArrayLike) -> float:
    """Normalised area under a curve of equally spaced points (trapezoids), in the units of the curve."""
    c = np.asarray(curve, dtype=np.float64)
    if c.ndim != 1 or c.size < 1:
        raise ValueError(f"a curve is a 1-d sequence of performances, got shape {c.shape}")
    if c.size == 1:
        return float(c[0])
    return float(((c[1:] + c[:-1]) / 2).mean())


def forward_transfer_per_task(curves: Sequence[ArrayLike], ref_curves: Sequence[ArrayLike]) -> np.ndarray:
    """Continual World's ``FT_i = (AUC_i - AUC_ref,i) / (1 - AUC_ref,i)`` (0 where the reference is perfect)."""
    if len(curves) != len(ref_curves):
        raise ValueError(f"need one reference curve per task: {len(curves)} curves, {len(ref_curves)} references")
    a = np.array([auc(c) for c in curves])
    r = np.array([auc(c) for c in ref_curves])
    room = 1.0 - r
    return np.where(room > 1e-12, (a - r) / np.where(room > 1e-12, room, 1.0), 0.0)


def forward_transfer(curves: Sequence[ArrayLike], ref_curves: Sequence[ArrayLike]) -> float:
    """Continual World's average forward transfer."""
    return float(forward_transfer_per_task(curves, ref_curves).mean())


def auc_gap(curves: Sequence[ArrayLike], ref_curves: Sequence[ArrayLike]) -> float:
    """The mean of ``AUC_i - AUC_ref,i``: forward transfer without Continual World's normalisation by
    ``1 - AUC_ref,i``, which makes a small loss against a reference that learns the task fast a large negative
    number (unbounded below); this one lies in [-1, 1] whatever the reference."""
    if len(curves) != len(ref_curves):
        raise ValueError(f"need one reference curve per task: {len(curves)} curves, {len(ref_curves)} references")
    return float(np.mean([auc(c) - auc(r) for c, r in zip(curves, ref_curves)]))


def plasticity(curves: Sequence[ArrayLike], ref_curves: Sequence[ArrayLike]) -> float:
    """Learning speed on the last half of the tasks relative to the first task, each against its reference (see
    the module docstring); ``nan`` when a reference curve has zero area."""
    if len(curves) != len(ref_curves) or len(curves) < 2:
        raise ValueError(
            f"plasticity needs >= 2 tasks with one reference each, got {len(curves)} and {len(ref_curves)}"
        )
    a = np.array([auc(c) for c in curves])
    r = np.array([auc(c) for c in ref_curves])
    if np.any(r <= 0):
        return float("nan")
    ratio = a / r
    late = ratio[len(ratio) // 2 :]
    return float(late.mean() / ratio[0]) if ratio[0] > 0 else float("nan")


def summary(
    R: ArrayLike,
    curves: Sequence[ArrayLike],
    ref_curves: Sequence[ArrayLike],
    history: ArrayLike | None = None,
    stage_ends: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Every metric above as plain data (means and per-task values)."""
    return {
        "avg_performance": average_performance(R),
        "forgetting": forgetting(R),
        "forgetting_per_task": forgetting_per_task(R).tolist(),
        "meal_forgetting": meal_forgetting(R, history, stage_ends),
        "meal_forgetting_per_task": meal_forgetting_per_task(R, history, stage_ends).tolist(),
        "forward_transfer": forward_transfer(curves, ref_curves),
        "forward_transfer_per_task": forward_transfer_per_task(curves, ref_curves).tolist(),
        "plasticity": plasticity(curves, ref_curves) if len(curves) >= 2 else float("nan"),
        "auc": [auc(c) for c in curves],
        "auc_ref": [auc(c) for c in ref_curves],
    }
