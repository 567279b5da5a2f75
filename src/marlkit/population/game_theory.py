"""Normal-form (matrix) games: payoff tensors, best responses, NashConv, zero-sum Nash by LP, replicator dynamics.

A game of ``n`` players is its payoff tensor, shape ``(n, A_1, ..., A_n)``: ``payoffs[i, a_1, ..., a_n]`` is what
player ``i`` gets from the joint action ``(a_1, ..., a_n)`` (OpenSpiel's ``game_payoffs_array`` layout). A strategy
profile is one mixture per player, ``strategies[i]`` a probability vector of length ``A_i``.

NashConv and exploitability follow OpenSpiel (Lanctot et al. 2017, "A Unified Game-Theoretic Approach to Multiagent
Reinforcement Learning"): NashConv is the sum over players of what a best response gains over the profile, zero
exactly at a Nash equilibrium; exploitability is NashConv divided by the number of players, defined for
constant-sum games.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

Strategies = Sequence[npt.ArrayLike]
"""One mixture per player; each is turned into a float vector and checked (non-negative, sums to 1)."""

_TOL = 1e-6  # how far from 1 a mixture's sum, or from constant a constant-sum game's total, may be


# ------------------------------------------------------------------------------------------------- payoff tensors
def as_payoffs(payoffs: npt.ArrayLike) -> np.ndarray:
    """``payoffs`` as a float tensor ``(n, A_1, ..., A_n)``, checked: ``n >= 2`` players, each with an action."""
    table = np.asarray(payoffs, dtype=np.float64)
    if table.ndim < 3 or table.shape[0] != table.ndim - 1 or 0 in table.shape:
        raise ValueError(
            f"payoffs must have shape (n_players, A_1, ..., A_n) with n_players >= 2 and every A_i >= 1, got shape "
            f"{table.shape} (zero_sum(A), common_payoff(A, n) and bimatrix(A, B) build one from matrices)"
        )
    if not np.all(np.isfinite(table)):
        raise ValueError("payoffs must be finite numbers, got NaN or infinity")
    return table


def zero_sum(A: npt.ArrayLike) -> np.ndarray:
    """The two-player zero-sum game in which the row player gets ``A[a0, a1]`` and the column player its negative."""
    A = _matrix(A, "A")
    return np.stack([A, -A])


def bimatrix(A: npt.ArrayLike, B: npt.ArrayLike) -> np.ndarray:
    """The two-player game in which the row player gets ``A[a0, a1]`` and the column player ``B[a0, a1]``."""
    A, B = _matrix(A, "A"), _matrix(B, "B")
    if A.shape != B.shape:
        raise ValueError(f"A and B must have the same shape, got {A.shape} and {B.shape}")
    return np.stack([A, B])


def common_payoff(payoff: npt.ArrayLike, n_players: int | None = None) -> np.ndarray:
    """The game in which every player gets ``payoff[a_1, ..., a_n]`` (a team game); ``n_players`` defaults to
    ``payoff.ndim``."""
    table = np.asarray(payoff, dtype=np.float64)
    n = table.ndim if n_players is None else n_players
    if n != table.ndim or n < 2:
        raise ValueError(f"a common payoff of {n} players needs an array of {n} >= 2 dimensions, got {table.shape}")
    return as_payoffs(np.stack([table] * n))


def _matrix(A: npt.ArrayLike, name: str) -> np.ndarray:
    out = np.asarray(A, dtype=np.float64)
    if out.ndim != 2 or 0 in out.shape:
        raise ValueError(f"{name} must be a non-empty matrix (rows x columns), got shape {out.shape}")
    return out


def env_payoffs(env: Any, **kwargs: Any) -> np.ndarray:
    """The payoff tensor ``(2, A, A)`` of a one-shot matrix env: a ``marlkit.envs.matrix.MatrixGame`` or the id of a
    registered one (``"climbing-v0"``, ``"penalty-v0"`` with ``k=...``, ``"prisoners-dilemma-v0"``, ...; keyword
    arguments go to ``marlkit.envs.make``). A repeated game (``episode_length > 1``) is not a normal-form game and is
    refused."""
    from marlkit.envs.matrix import MatrixGame

    if isinstance(env, str):
        from marlkit.envs import make

        env = make(env, **kwargs)
    elif kwargs:
        raise TypeError(f"options ({', '.join(kwargs)}) apply to an env id, not to an env already built")
    if not isinstance(env, MatrixGame):
        raise TypeError(f"env_payoffs needs a matrix game (marlkit.envs.matrix.MatrixGame), got {type(env).__name__}")
    if env.max_steps != 1:
        raise ValueError(
            f"{env.name} is repeated for {env.max_steps} steps, not a normal-form game: build it with "
            f"episode_length=1 for its stage game"
        )
    return np.array(np.moveaxis(np.asarray(env.payoffs), -1, 0))  # (A, A, 2) -> (2, A, A), a copy


def is_constant_sum(payoffs: npt.ArrayLike) -> bool:
    """Whether the players' payoffs add up to the same total at every joint action (zero-sum is the total 0)."""
    total = as_payoffs(payoffs).sum(axis=0)
    return bool(np.ptp(total) <= _TOL * max(1.0, float(np.abs(total).max())))


# -------------------------------------------------------------------------------------------- strategy profiles
def check_strategies(payoffs: np.ndarray, strategies: Strategies) -> list[np.ndarray]:
    """``strategies`` as one float mixture per player of ``payoffs``, each checked against its player's actions."""
    n = payoffs.shape[0]
    if len(strategies) != n:
        raise ValueError(f"the game has {n} players, got {len(strategies)} strategies")
    out = []
    for i, s in enumerate(strategies):
        x = np.asarray(s, dtype=np.float64)
        if x.shape != (payoffs.shape[i + 1],):
            raise ValueError(f"player {i} has {payoffs.shape[i + 1]} actions, got a strategy of shape {x.shape}")
        if not np.all(np.isfinite(x)) or x.min() < -_TOL or abs(x.sum() - 1.0) > _TOL:
            raise ValueError(f"player {i}'s strategy must be non-negative and sum to 1, got {x.tolist()}")
        out.append(x)
    return out


def pure(n_actions: int, action: int) -> np.ndarray:
    """The mixture that plays ``action`` of ``n_actions`` with probability 1."""
    x = np.zeros(n_actions)
    x[action] = 1.0
    return x


def uniform_strategies(payoffs: npt.ArrayLike) -> list[np.ndarray]:
    """Every player's uniform mixture."""
    return [np.full(a, 1.0 / a) for a in as_payoffs(payoffs).shape[1:]]


def action_values(payoffs: npt.ArrayLike, strategies: Strategies, player: int) -> np.ndarray:
    """What each pure action of ``player`` is worth to it when the others play their mixtures, shape ``(A_player,)``."""
    table = as_payoffs(payoffs)
    xs = check_strategies(table, strategies)
    n = table.shape[0]
    if not isinstance(player, (int, np.integer)) or not 0 <= player < n:
        raise ValueError(f"player must be in 0..{n - 1}, got {player!r}")
    return _values(table, xs, int(player))


def _values(table: np.ndarray, xs: list[np.ndarray], player: int) -> np.ndarray:
    """``action_values`` of a checked game and profile."""
    if table.shape[0] == 2:  # the common case, as two matrix-vector products
        return np.asarray(table[0] @ xs[1] if player == 0 else xs[0] @ table[1])
    values = table[player]
    for j in reversed(range(table.shape[0])):  # contract the others' axes, last first, so lower axes stay put
        if j != player:
            values = np.tensordot(values, xs[j], axes=([j], [0]))
    return np.asarray(values)


def expected_payoffs(payoffs: npt.ArrayLike, strategies: Strategies) -> np.ndarray:
    """Every player's expected payoff under the profile, shape ``(n,)``."""
    table = as_payoffs(payoffs)
    xs = check_strategies(table, strategies)
    return np.array([_values(table, xs, i) @ xs[i] for i in range(table.shape[0])])


def best_response(payoffs: npt.ArrayLike, strategies: Strategies, player: int) -> int:
    """An exact pure best response of ``player`` to the others' mixtures (the lowest-numbered action among ties;
    ``player``'s own entry of ``strategies`` is not read beyond its check)."""
    return int(np.argmax(action_values(payoffs, strategies, player)))


def nash_conv(payoffs: npt.ArrayLike, strategies: Strategies) -> float:
    """Sum over players of ``max_a value(a) - value(strategy)``: what best responses gain; 0 exactly at a Nash
    equilibrium."""
    table = as_payoffs(payoffs)
    xs = check_strategies(table, strategies)
    gains = [_values(table, xs, i) for i in range(table.shape[0])]
    return float(sum(max(0.0, float(v.max() - v @ x)) for v, x in zip(gains, xs)))


def exploitability(payoffs: npt.ArrayLike, strategies: Strategies) -> float:
    """NashConv divided by the number of players, for a constant-sum game (as OpenSpiel defines it); in a
    two-player zero-sum game it is the mean of what each player's best responder wins beyond the game's value."""
    table = as_payoffs(payoffs)
    if not is_constant_sum(table):
        raise ValueError("exploitability is defined for constant-sum games; use nash_conv for a general-sum game")
    return nash_conv(table, strategies) / int(table.shape[0])


# ----------------------------------------------------------------------------------------------------- solvers
class ZeroSumSolution(NamedTuple):
    row: np.ndarray
    """The row player's maximin mixture."""
    column: np.ndarray
    """The column player's minimax mixture."""
    value: float
    """What the row player gets at equilibrium (the column player gets its negative)."""


def zero_sum_nash(A: npt.ArrayLike) -> ZeroSumSolution:
    """A Nash equilibrium of the two-player zero-sum game with row payoff ``A`` (the column player gets ``-A``), by
    linear programming (``scipy.optimize.linprog``, HiGHS): the row player maximises ``v`` subject to
    ``x @ A >= v`` for every column, ``x >= 0``, ``sum(x) = 1``; the column player solves the dual."""
    A = _matrix(A, "A")
    row, value = _maximin(A)
    column, minus_value = _maximin(-A.T)
    return ZeroSumSolution(row, column, float((value - minus_value) / 2))  # the two LPs' values agree to solver tol


def _maximin(A: np.ndarray) -> tuple[np.ndarray, float]:
    """The row player's maximin mixture of ``A`` and its guaranteed value."""
    from scipy.optimize import linprog

    m, k = A.shape
    # variables (x_1..x_m, v): minimise -v subject to v - (x @ A)_j <= 0 for every column j, sum(x) = 1, x >= 0
    c = np.r_[np.zeros(m), -1.0]
    A_ub = np.c_[-A.T, np.ones(k)]
    A_eq = np.r_[np.ones(m), 0.0][None, :]
    result = linprog(
        c, A_ub=A_ub, b_ub=np.zeros(k), A_eq=A_eq, b_eq=[1.0], bounds=[(0, None)] * m + [(None, None)], method="highs"
    )
    if not result.success:  # a finite matrix game always has a solution; this is the solver failing
        raise RuntimeError(f"linprog did not solve the matrix game: {result.message}")
    x = np.clip(result.x[:m], 0.0, None)
    return x / x.sum(), float(result.x[m])


def replicator_step(payoffs: npt.ArrayLike, strategies: Strategies, dt: float) -> list[np.ndarray]:
    """One Euler step of the multi-population replicator dynamics ``dx_i/dt = x_i * (u_i - x_i @ u_i)`` (``u_i``:
    the values of player ``i``'s actions against the others), projected back onto the simplex: a share pushed
    below 0 is set to 0 and the mixture renormalised."""
    table = as_payoffs(payoffs)
    return _replicator_step(table, check_strategies(table, strategies), dt)


def _replicator_step(table: np.ndarray, xs: list[np.ndarray], dt: float) -> list[np.ndarray]:
    out = []
    for i, x in enumerate(xs):
        u = _values(table, xs, i)
        y = np.clip(x + dt * x * (u - x @ u), 0.0, None)
        out.append(y / y.sum())
    return out


def replicator_dynamics(
    payoffs: npt.ArrayLike,
    strategies: Strategies | None = None,
    *,
    steps: int = 10_000,
    dt: float = 0.01,
    average: bool = True,
) -> list[np.ndarray]:
    """Run ``steps`` Euler steps of size ``dt`` of the replicator dynamics (``replicator_step``) from ``strategies``
    (default: uniform). Returns the time average of the trajectory when ``average`` (in a zero-sum game the orbits
    cycle around an interior equilibrium and their time average approaches it), else the last point.

    A share that starts at 0 stays at 0 (replicator dynamics never introduce an action), so start interior to find
    equilibria with full support."""
    table = as_payoffs(payoffs)
    if not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if not dt > 0:
        raise ValueError(f"dt must be positive, got {dt!r}")
    xs = check_strategies(table, uniform_strategies(table) if strategies is None else strategies)
    total = [np.zeros_like(x) for x in xs]
    for _ in range(steps):
        xs = _replicator_step(table, xs, dt)
        total = [t + x for t, x in zip(total, xs)]
    return [t / steps for t in total] if average else xs
