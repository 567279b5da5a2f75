"""α-rank as a PSRO meta-solver (OpenSpiel's implementation): the marginals of its joint distribution against
OpenSpiel's own marginalisation, a game with a strict sink (prisoner's dilemma), copies of a strategy merged, and
PSRO with it on rock-paper-scissors variants."""

from __future__ import annotations

import numpy as np
import pytest

from marlkit.population import psro, zero_sum
from marlkit.population.psro import alpharank_meta_solver

pytest.importorskip("open_spiel")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

RPS = [[0, -1, 1], [1, 0, -1], [-1, 1, 0]]
BIASED_RPS = [[0, -1, 2], [1, 0, -1], [-2, 1, 0]]  # Nash (1/4, 1/2, 1/4); the same ordinal cycle as RPS


def test_marginals_match_openspiel_on_a_general_sum_game() -> None:
    from open_spiel.python.algorithms.psro_v2 import utils
    from open_spiel.python.egt import alpharank

    meta = np.random.default_rng(3).normal(size=(2, 3, 4)).round(2)
    pi = alpharank.sweep_pi_vs_epsilon([meta[0], meta[1]])
    expected = utils.get_alpharank_marginals([meta[0], meta[1]], pi)
    ours = alpharank_meta_solver(meta)
    assert [x.shape for x in ours] == [(3,), (4,)]
    for x, y in zip(ours, expected):
        np.testing.assert_allclose(x, y, atol=1e-9)
    assert max(float(x.max()) for x in ours) < 0.99  # not a degenerate game: the check compares real mixtures


def test_prisoners_dilemma_ranks_mutual_defection_first() -> None:
    pd = np.array([[[3, 0], [5, 1]], [[3, 5], [0, 1]]], dtype=float)
    for x in alpharank_meta_solver(pd):
        np.testing.assert_allclose(x, [0.0, 1.0], atol=1e-6)


def test_copies_of_a_strategy_are_merged_into_the_first() -> None:
    game = zero_sum(RPS)
    cloned = game[:, [0, 1, 2, 0]][:, :, [0, 1, 2, 0]]  # rock twice in both populations
    for x in alpharank_meta_solver(cloned):
        np.testing.assert_allclose(x, [1 / 3, 1 / 3, 1 / 3, 0.0], atol=1e-6)


def test_psro_with_alpharank_finds_the_cycle_of_rock_paper_scissors() -> None:
    """On rock-paper-scissors α-rank's sink is Nash's uniform mixture; on the biased variant (the same ordinal
    cycle, Nash (1/4, 1/2, 1/4)) it stays uniform: α-rank is not a Nash solver."""
    for x in psro(zero_sum(RPS), 10, "alpharank").strategies:
        np.testing.assert_allclose(x, [1 / 3] * 3, atol=0.02)
    result = psro(zero_sum(BIASED_RPS), 10, "alpharank")
    for x in result.strategies:
        np.testing.assert_allclose(x, [1 / 3] * 3, atol=0.02)
    assert result.nash_conv[-1] > 0.5
