"""Policy-Space Response Oracles with exact best-response oracles: on a normal-form game (``psro``) and on a
two-player zero-sum extensive-form game with tabular policies (``extensive_psro``).

Lanctot et al. (2017), "A Unified Game-Theoretic Approach to Multiagent Reinforcement Learning", NeurIPS. Each
player keeps a population of pure strategies (actions of the game, repeats allowed). Every iteration a meta-solver
turns the game restricted to the populations (the meta-game) into one mixture over each population, and each
player's exact best response to the others' meta-strategies joins its population. The meta-solver decides the
method: a Nash equilibrium of the meta-game gives double-oracle PSRO, the uniform mixture over the population
(repeats counted) gives fictitious play, replicator dynamics give PSRO with a replicator meta-solver.

In an extensive-form game a population holds tabular policies (pure best responses, after the uniform policy), the
meta-game's payoffs are their exact expected values, and a meta-strategy is played as the behaviour policy it is
equivalent to (``efg.mix_policies``), whose NashConv is measured and to which the next best responses reply.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from marlkit.core.errors import did_you_mean
from marlkit.population.efg import (
    TERMINAL,
    ExtensiveGame,
    _best_response,
    _edge_probs,
    _mix,
    _reach,
    check_policy,
    own_reach,
    uniform_policy,
)
from marlkit.population.efg import (
    nash_conv as efg_nash_conv,
)
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

Oracle = Callable[[ExtensiveGame, np.ndarray, int], np.ndarray]
"""``oracle(game, profile, player)``: ``profile`` with ``player``'s rows replaced by a (best) response to the rest."""


def exact_oracle(game: ExtensiveGame, profile: np.ndarray, player: int) -> np.ndarray:
    """The exact pure best response (``efg.best_response``)."""
    return _best_response(game, profile, player).policy


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


def alpharank_meta_solver(meta: np.ndarray) -> list[np.ndarray]:
    """α-rank (Omidshafiei et al. 2019, "α-Rank: Multi-Agent Evaluation by Evolution", Scientific Reports 9) of the
    meta-game, through OpenSpiel's implementation (``open_spiel.python.egt.alpharank``, the ``population`` extra):
    the stationary distribution over joint profiles of the infinite-α model, its noise swept down until the
    distribution settles (``sweep_pi_vs_epsilon``, what OpenSpiel's own PSRO uses), one population per player;
    each player's meta-strategy is that distribution's marginal over its population. α-rank's solution concept is
    the sink of the response graph, not a Nash equilibrium: on a cyclic game such as rock-paper-scissors the two
    agree, on others they need not. α-rank is not invariant to copies of a strategy (PSRO's populations repeat
    strategies), so it ranks the meta-game with copies merged (a strategy whose payoffs to every player equal an
    earlier one's is dropped) and gives each strategy's mass to its first copy."""
    try:
        from open_spiel.python.egt import alpharank  # type: ignore[import-untyped]
    except ImportError as e:
        raise ImportError(
            "the 'alpharank' meta-solver uses OpenSpiel's alpharank: pip install 'marlkit[population]' (open-spiel)"
        ) from e
    meta = np.asarray(meta, dtype=np.float64)
    keep = [_distinct(meta, k) for k in range(meta.ndim - 1)]
    reduced = meta
    for k, idx in enumerate(keep):
        reduced = np.take(reduced, idx, axis=k + 1)
    marginals = [np.ones(1) for _ in keep]
    if any(len(k) > 1 for k in keep):
        pi = np.clip(np.asarray(alpharank.sweep_pi_vs_epsilon([reduced[k] for k in range(len(reduced))])), 0.0, None)
        joint = (pi / pi.sum()).reshape(reduced.shape[1:])  # profile ids are row-major over the populations
        axes = range(joint.ndim)
        marginals = [joint.sum(axis=tuple(a for a in axes if a != k)) for k in axes]
    out = []
    for k, idx in enumerate(keep):
        full = np.zeros(meta.shape[k + 1])
        full[idx] = marginals[k]
        out.append(full)
    return out


def _distinct(meta: np.ndarray, player: int) -> list[int]:
    """Indices of ``player``'s strategies whose payoffs (to every player, against every profile) differ from every
    earlier strategy's: the first of each set of copies."""
    slices = np.moveaxis(meta, player + 1, 0).reshape(meta.shape[player + 1], -1)
    keep: list[int] = []
    for i, row in enumerate(slices):
        if not any(np.array_equal(row, slices[j]) for j in keep):
            keep.append(i)
    return keep


#: The meta-solvers ``psro`` knows by name.
META_SOLVERS: dict[str, MetaSolver] = {
    "nash": nash_meta_solver,
    "replicator": replicator_meta_solver,
    "uniform": uniform_meta_solver,
    "alpharank": alpharank_meta_solver,
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


def _solver(meta_solver: str | MetaSolver) -> MetaSolver:
    if isinstance(meta_solver, str):
        if meta_solver not in META_SOLVERS:
            raise ValueError(
                f"unknown meta-solver {meta_solver!r}{did_you_mean(meta_solver, META_SOLVERS)} "
                f"(known: {', '.join(META_SOLVERS)}, or a callable)"
            )
        return META_SOLVERS[meta_solver]
    return meta_solver


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
    solve = _solver(meta_solver)
    if meta_solver == "nash":  # a small meta-game of a general-sum game may happen to be constant-sum
        nash_meta_solver(table)
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


# ------------------------------------------------------------------------------------------ extensive-form games
@dataclass
class ExtensivePSROResult:
    nash_conv: list[float]
    """NashConv of the meta-strategies (as behaviour policies) after 0, 1, ..., ``iterations`` rounds."""
    meta_strategies: list[list[np.ndarray]]
    """Each round's mixture over each player's population."""
    populations: list[list[np.ndarray]]
    """Each player's tabular policies, in the order they joined (the first is the initial one); only the player's
    own rows of each are its strategy."""
    policy: np.ndarray
    """The last round's meta-strategies as one behaviour policy (both players' rows)."""


def extensive_psro(
    game: ExtensiveGame,
    iterations: int,
    meta_solver: str | MetaSolver = "nash",
    initial: npt.ArrayLike | None = None,
    oracle: Oracle = exact_oracle,
) -> ExtensivePSROResult:
    """Run ``iterations`` rounds of PSRO on the extensive-form ``game``, starting from one tabular policy per player
    (``initial``, both players' rows; default uniform), with the named meta-solver (``META_SOLVERS``) or a callable
    one. Each round adds each player's response from ``oracle`` (default: the exact best response; a learned one:
    ``rl_oracle.DQNOracle``) to the other's meta-strategy."""
    solve = _solver(meta_solver)
    if not isinstance(iterations, (int, np.integer)) or iterations < 0:
        raise ValueError(f"iterations must be a non-negative integer, got {iterations!r}")
    start = uniform_policy(game) if initial is None else check_policy(game, initial)
    terminal = np.flatnonzero(game.node_player == TERMINAL)
    populations: list[list[np.ndarray]] = [[start], [start]]
    # realised[i][k]: the probability that player i's moves under its k-th policy lead to each terminal node; the
    # value of a pair of policies is then bilinear: sum over terminals of chance * utility * realised0 * realised1
    realised = [[_terminal_reach(game, start, i, terminal)] for i in (0, 1)]
    own = [[own_reach(game, start)] for _ in (0, 1)]  # the same per information state, for mixing
    chance_utility = _reach(game, _edge_probs(game, start))[2, terminal] * game.utility[terminal]
    result = ExtensivePSROResult([], [], populations, start)
    player_rows = [game.infostate_player == i for i in (0, 1)]
    for round_ in range(iterations + 1):
        M = np.stack(realised[0]) @ (chance_utility[:, None] * np.stack(realised[1]).T)
        sigma = solve(np.stack([M, -M]))
        profile = np.zeros_like(start)
        for i in (0, 1):
            mixed = _mix(np.stack(populations[i]), np.stack(own[i]), sigma[i])
            profile[player_rows[i]] = mixed[player_rows[i]]
        result.meta_strategies.append(sigma)
        result.nash_conv.append(efg_nash_conv(game, profile))
        result.policy = profile
        if round_ < iterations:
            for i in (0, 1):
                response = check_policy(game, oracle(game, profile, i))
                populations[i].append(response)
                realised[i].append(_terminal_reach(game, response, i, terminal))
                own[i].append(own_reach(game, response))
    return result


def _terminal_reach(game: ExtensiveGame, policy: np.ndarray, player: int, nodes: np.ndarray) -> np.ndarray:
    """The probability that ``player``'s own moves under ``policy`` lead to each of ``nodes``."""
    return np.asarray(_reach(game, _edge_probs(game, policy))[player, nodes])
