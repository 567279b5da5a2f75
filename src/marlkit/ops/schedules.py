"""Schedules: a value as a pure function of the run's progress (ε, a temperature, a learning-rate factor, β).

A schedule is built once from its hyper-parameters and then called with a step count — the runner's env-step
counter (``Progress.env_steps``), or anything derived from it (the plays of one copy, the env-steps trained before
an update) — and returns the value at that step. Nothing is stored between calls, so a schedule needs no checkpoint:
it is as far along as the counter it is given::

    epsilon = linear(1.0, 0.05, 50_000)
    epsilon(0), epsilon(25_000), epsilon(10**9)    # 1.0, 0.525, 0.05
"""

from __future__ import annotations

from collections.abc import Callable

Schedule = Callable[[float], float]
"""``schedule(step) -> value``."""


def constant(value: float) -> Schedule:
    """``value`` at every step."""
    value = float(value)

    def schedule(step: float) -> float:
        return value

    return schedule


def linear(start: float, end: float, duration: float) -> Schedule:
    """From ``start`` at step 0 to ``end`` at step ``duration``, linearly, then ``end``; ``duration`` 0 is ``end``
    from the first step. Computed as ``start + min(step / duration, 1) * (end - start)``."""
    if duration < 0:
        raise ValueError(f"linear schedule: duration = {duration!r} is not allowed: a number of steps >= 0")

    def schedule(step: float) -> float:
        frac = min(step / duration, 1.0) if duration else 1.0
        return start + frac * (end - start)

    return schedule


def exponential(start: float, decay: float, end: float) -> Schedule:
    """``start`` multiplied by ``decay`` every step, never below ``end``: ``max(end, start * decay ** step)``
    (a Boltzmann temperature that cools per play)."""
    if not 0 < decay <= 1:
        raise ValueError(f"exponential schedule: decay = {decay!r} is not allowed: a number in (0, 1]")

    def schedule(step: float) -> float:
        return max(end, start * decay**step)

    return schedule
