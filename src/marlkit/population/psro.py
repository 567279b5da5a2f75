"""Policy-Space Response Oracles on a normal-form game, with an exact best-response oracle.

Lanctot et al. (2017), "A Unified Game-Theoretic Approach to Multiagent Reinforcement Learning", NeurIPS. Each
player keeps a population of pure strategies (actions of the game, repeats allowed). Every iteration a meta-solver
turns the game restricted to the populations (the meta-game) into one mixture over each population, and each
player's exact best response to the others' meta-strategies joins its population. The meta-solver decides the
method: a Nash equilibrium of the meta-game gives double-oracle PSRO, the uniform mixture over the population
(repeats counted) gives fictitious play, replicator dynamics give PSRO with a replicator meta-solver.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from marlkit.core.errors import did_you_mean
from marlkit.population.game_theory import (
    as_payoffs,
    best_response,
    is_constant_sum,
    nash_conv,
    replicator_dynamics,
    uniform_strategies,
    zero_sum_nash,
)

MetaSolver = Callable[[np.ndarray], list[np.ndarray]]
"""Meta-game payoff tensor ``(n, K_1, ..., K_n)`` -> one mixture over each player's population."""


def nash_meta_solver(meta: np.ndarray) -> list[np.ndarray]:
    """A Nash equilibrium of a two-player constant-sum meta-game, by linear programming."""
    if meta.shape[0] != 2 or not is_constant_sum(meta):
        raise ValueError(
            f"the 'nash' meta-solver needs a two-player constant-sum game, got a {meta.shape[0]}-player "
            f"{'constant-sum' if is_constant_sum(meta) else 'general-sum'} one; use 'replicator' or 'uniform'"
        )
    solution = zero_sum_nash(meta[0])  # a constant added to every payoff leaves the maximin mixtures as they are
    return [solution.row, solution.column]


def replicator_meta_solver(meta: np.ndarray) -> list[np.ndarray]:
    """The time average of 5,000 replicator steps of size 0.05 from the uniform mixtures."""
    return replicator_dynamics(meta, steps=5_000, dt=0.05, average=True)


def uniform_meta_solver(meta: np.ndarray) -> list[np.ndarray]:
    """The uniform mixture over each population (repeats counted): fictitious play."""
    return uniform_strategies(meta)


#: The meta-solvers ``psro`` knows by name.
META_SOLVERS: dict[str, MetaSolver] = {
    "nash": nash_meta_solver,
    "replicator": replicator_meta_solver,
    "uniform": uniform_meta_solver,
}


@dataclass
class PSROResult:
    nash_conv: list[float]
    """NashConv of the meta-strategies after 0, 1, ..., ``iterations`` rounds of best responses."""
    profiles: list[list[np.ndarray]]
    """The meta-strategies of each round as mixtures over the game's actions (one per player)."""
    populations: list[list[int]]
    """Each player's population at the end: the actions added, in order (the first is the initial one)."""

    @property
    def strategies(self) -> list[np.ndarray]:
        """The last round's profile."""
        return self.profiles[-1]


def psro(
    payoffs: npt.ArrayLike,
    iterations: int,
    meta_solver: str | MetaSolver = "nash",
    initial: Sequence[int] | None = None,
) -> PSROResult:
    """Run ``iterations`` rounds of PSRO on the game ``payoffs`` (``(n, A_1, ..., A_n)``, see ``game_theory``),
    starting from one action per player (``initial``, default action 0 for all), with the named meta-solver
    (``META_SOLVERS``) or a callable one."""
    table = as_payoffs(payoffs)
    n, sizes = table.shape[0], table.shape[1:]
    if isinstance(meta_solver, str):
        if meta_solver not in META_SOLVERS:
            raise ValueError(
                f"unknown meta-solver {meta_solver!r}{did_you_mean(meta_solver, META_SOLVERS)} "
                f"(known: {', '.join(META_SOLVERS)}, or a callable)"
            )
        solve = META_SOLVERS[meta_solver]
        if meta_solver == "nash":  # a small meta-game of a general-sum game may happen to be constant-sum
            nash_meta_solver(table)
    else:
        solve = meta_solver
    if not isinstance(iterations, (int, np.integer)) or iterations < 0:
        raise ValueError(f"iterations must be a non-negative integer, got {iterations!r}")
    start = [0] * n if initial is None else [int(a) for a in initial]
    if len(start) != n or any(not 0 <= a < k for a, k in zip(start, sizes)):
        raise ValueError(f"initial must be one action per player within {list(sizes)} actions, got {initial!r}")
    populations = [[a] for a in start]
    result = PSROResult([], [], populations)
    for round_ in range(iterations + 1):
        meta = table[np.ix_(np.arange(n), *(np.asarray(p) for p in populations))]
        sigma = solve(meta)
        profile = [np.bincount(p, weights=s, minlength=k) for p, s, k in zip(populations, sigma, sizes)]
        result.profiles.append(profile)
        result.nash_conv.append(nash_conv(table, profile))
        if round_ < iterations:
            responses = [best_response(table, profile, i) for i in range(n)]
            for population, action in zip(populations, responses):
                population.append(action)
    return result
