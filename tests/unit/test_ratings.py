"""Elo on hand-computed games; openskill, TrueSkill and Elo order players of known strength correctly."""

from __future__ import annotations

import numpy as np
import pytest

from marlkit.population import ratings


def test_elo_matches_hand_computed_updates() -> None:
    # 1500 vs 1500, 0 wins: E = 0.5, +-16 * 0.5 = 8.  Then 1 wins at 1492 vs 1508: E_1 = 1/(1+10^(16/400)) = 0.47699,
    # +16 * 0.52301 = 8.3682.  Then a draw at 1499.6318 vs 1500.3682: E_0 = 0.49894, +16 * 0.00106 = 0.01696.
    r = ratings.elo([(0, 1, 1.0)], 2)
    assert r.tolist() == [1508.0, 1492.0]
    r = ratings.elo([(0, 1, 1.0), (1, 0, 1.0)], 2)
    assert r == pytest.approx([1499.631847, 1500.368153], abs=1e-6)
    r = ratings.elo([(0, 1, 1.0), (1, 0, 1.0), (0, 1, 0.5)], 2)
    assert r == pytest.approx([1499.648801, 1500.351199], abs=1e-6)


def test_elo_k_scale_and_expected_score() -> None:
    assert ratings.elo_expected(1700, 1500) == pytest.approx(0.759747, abs=1e-6)  # 200 points
    assert ratings.elo_expected(1550, 1500, scale=100) == pytest.approx(1 / (1 + 10**-0.5))
    assert ratings.elo([(0, 1, 0.0)], 2, k=32).tolist() == [1484.0, 1516.0]
    assert ratings.elo([], 3, initial=1000).tolist() == [1000.0] * 3


def _games(strengths: list[float], per_pair: int, seed: int) -> list[tuple[int, int, float]]:
    """Bradley-Terry games on the Elo scale between players of the given strengths, pairs interleaved."""
    rng = np.random.default_rng(seed)
    games = []
    for _ in range(per_pair):
        for i in range(len(strengths)):
            for j in range(i + 1, len(strengths)):
                p = ratings.elo_expected(strengths[i], strengths[j])
                games.append((i, j, 1.0 if rng.random() < p else 0.0))
    return ratings.interleave(games, seed)


@pytest.mark.parametrize("model", ["PlackettLuce", "ThurstoneMostellerFull"])
def test_openskill_orders_a_synthetic_cross_play(model: str) -> None:
    strengths = [0.0, 150.0, 300.0, 450.0]
    games = _games(strengths, 40, seed=1)
    skill = ratings.openskill_ratings(games, 4, model)
    assert np.argsort([s.mu for s in skill]).tolist() == [0, 1, 2, 3]
    assert all(s.sigma < 25 / 3 for s in skill)  # every player's uncertainty shrank from the prior
    ts = ratings.trueskill_ratings(games, 4)
    assert np.argsort([s.mu for s in ts]).tolist() == [0, 1, 2, 3]
    elo = ratings.elo(games, 4)
    assert np.argsort(elo).tolist() == [0, 1, 2, 3]
    assert elo[3] - elo[0] == pytest.approx(450, abs=150)  # online Elo recovers the spread roughly


def test_openskill_gap_in_elo_points_recovers_a_known_gap() -> None:
    games = _games([0.0, 200.0], 1500, seed=2)
    skill = ratings.openskill_ratings(games, 2, "ThurstoneMostellerFull")
    gap = (skill[1].mu - skill[0].mu) * ratings.openskill_elo_scale()
    assert gap == pytest.approx(200, abs=60)


def test_draws_pull_ratings_together_and_bad_games_are_named() -> None:
    won = ratings.openskill_ratings([(0, 1, 1.0)] * 5, 2)
    drawn = ratings.openskill_ratings([(0, 1, 1.0)] * 5 + [(0, 1, 0.5)] * 5, 2)
    assert won[0].mu - won[1].mu > drawn[0].mu - drawn[1].mu > 0
    with pytest.raises(ValueError, match="outcome 1"):
        ratings.elo([(0, 1, 2.0)], 2)
    with pytest.raises(ValueError, match="0 <= i != j < 2"):
        ratings.trueskill_ratings([(0, 2, 1.0)], 2)
    with pytest.raises(ValueError, match="PlackettLuce"):
        ratings.openskill_ratings([], 2, "Glicko")
