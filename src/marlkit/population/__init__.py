"""Populations and game theory: payoff tensors of normal-form games, NashConv and exploitability, Nash equilibria
of zero-sum games by linear programming, replicator dynamics, and PSRO; two-player zero-sum extensive-form games
(Kuhn poker, Leduc hold'em) with exact values, best responses and NashConv (``efg``: ``efg.nash_conv(game,
policy)``), and the tabular solvers CFR, CFR+, CFR-BR and XFP. scipy is imported when a solver needs it."""

from marlkit.population import efg
from marlkit.population.cfr import SOLVERS, CFRBRSolver, CFRSolver, XFPSolver
from marlkit.population.efg import ExtensiveGame, GameRules, build_game
from marlkit.population.game_theory import (
    ZeroSumSolution,
    action_values,
    as_payoffs,
    best_response,
    bimatrix,
    common_payoff,
    env_payoffs,
    expected_payoffs,
    exploitability,
    is_constant_sum,
    nash_conv,
    pure,
    replicator_dynamics,
    replicator_step,
    uniform_strategies,
    zero_sum,
    zero_sum_nash,
)
from marlkit.population.poker import GAMES, kuhn_poker, leduc_poker
from marlkit.population.psro import META_SOLVERS, ExtensivePSROResult, PSROResult, extensive_psro, psro

__all__ = [
    "as_payoffs",
    "zero_sum",
    "bimatrix",
    "common_payoff",
    "env_payoffs",
    "is_constant_sum",
    "pure",
    "uniform_strategies",
    "action_values",
    "expected_payoffs",
    "best_response",
    "nash_conv",
    "exploitability",
    "ZeroSumSolution",
    "zero_sum_nash",
    "replicator_step",
    "replicator_dynamics",
    "META_SOLVERS",
    "PSROResult",
    "psro",
    "efg",
    "ExtensiveGame",
    "GameRules",
    "build_game",
    "GAMES",
    "kuhn_poker",
    "leduc_poker",
    "CFRSolver",
    "CFRBRSolver",
    "XFPSolver",
    "SOLVERS",
    "ExtensivePSROResult",
    "extensive_psro",
]
