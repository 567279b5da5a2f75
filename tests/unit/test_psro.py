"""PSRO with an exact best-response oracle on matrix games: the Nash meta-solver finds the equilibrium mixture of
rock-paper-scissors variants, replicator dynamics come close, and fictitious play's NashConv falls."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from marlkit.population import env_payoffs, nash_conv, psro, replicator_dynamics, zero_sum

RPS = [[0, -1, 1], [1, 0, -1], [-1, 1, 0]]
BIASED_RPS = [[0, -1, 2], [1, 0, -1], [-2, 1, 0]]  # Nash (1/4, 1/2, 1/4) for both: see test_game_theory.py
BIASED_PENNIES = [[3, -1], [-1, 1]]  # Nash (1/3, 2/3) for both, value 1/3: see test_game_theory.py


@pytest.mark.parametrize(
    ("A", "nash"),
    [(RPS, [1 / 3] * 3), (BIASED_RPS, [0.25, 0.5, 0.25]), (BIASED_PENNIES, [1 / 3, 2 / 3])],
)
def test_psro_with_a_nash_meta_solver_finds_the_equilibrium(A: list[list[float]], nash: list[float]) -> None:
    # from (rock, rock): paper joins both populations, then scissors; the meta-game is then the whole game
    result = psro(zero_sum(A), iterations=5, meta_solver="nash")
    assert len(result.nash_conv) == 6
    assert result.nash_conv[0] == pytest.approx(2.0 if len(nash) == 3 else 4.0)  # both pure at action 0
    for x in result.strategies:
        np.testing.assert_allclose(x, nash, atol=0.02)
    assert result.nash_conv[-1] == pytest.approx(0.0, abs=1e-8)
    assert result.nash_conv[len(nash)] == pytest.approx(0.0, abs=1e-8)  # once every action is in the population


def test_psro_on_rps_adds_paper_then_scissors() -> None:
    result = psro(zero_sum(RPS), iterations=2)
    assert result.populations == [[0, 1, 2], [0, 1, 2]]
    assert result.nash_conv == pytest.approx([2.0, 2.0, 0.0])  # {rock, paper}'s equilibrium is pure paper


@pytest.mark.parametrize(("A", "nash"), [(RPS, [1 / 3] * 3), (BIASED_RPS, [0.25, 0.5, 0.25])])
def test_psro_with_replicator_dynamics_comes_close(A: list[list[float]], nash: list[float]) -> None:
    solver = functools.partial(replicator_dynamics, steps=5_000, dt=0.05)
    result = psro(zero_sum(A), iterations=20, meta_solver=solver)
    for x in result.strategies:
        np.testing.assert_allclose(x, nash, atol=0.03)
    assert result.nash_conv[-1] < 0.06


def test_fictitious_play_nash_conv_falls() -> None:
    game = zero_sum(BIASED_RPS)
    result = psro(game, iterations=200, meta_solver="uniform")
    curve = result.nash_conv
    assert curve[200] < curve[50] < curve[10] < curve[0] == 2.0
    assert curve[200] < 0.15
    # the uniform meta-strategy is the empirical frequency of the best responses played so far
    counts = np.bincount(result.populations[0], minlength=3) / 201
    np.testing.assert_allclose(result.strategies[0], counts)
    assert nash_conv(game, result.strategies) == curve[-1]


def test_bad_arguments_are_one_line_errors() -> None:
    game = zero_sum(RPS)
    with pytest.raises(ValueError, match="unknown meta-solver 'nashh'; did you mean 'nash'"):
        psro(game, 3, "nashh")
    with pytest.raises(ValueError, match="two-player constant-sum"):
        psro(env_payoffs("prisoners-dilemma-v0"), 3, "nash")
    with pytest.raises(ValueError, match="iterations must be a non-negative integer"):
        psro(game, -1)
    with pytest.raises(ValueError, match="initial must be one action per player"):
        psro(game, 3, initial=[0, 3])


def test_psro_with_replicator_dynamics_on_a_general_sum_game() -> None:
    pd = env_payoffs("prisoners-dilemma-v0")  # from (cooperate, cooperate) both best responses are defect
    result = psro(pd, iterations=3, meta_solver="replicator")
    assert result.populations == [[0, 1, 1, 1], [0, 1, 1, 1]]
    assert result.nash_conv[0] == pytest.approx(4.0)
    assert result.nash_conv[-1] < 0.01  # the meta-strategies have (nearly) all moved to defection


# ------------------------------------------------------------------------------------------ extensive-form games
def test_extensive_psro_on_kuhn_reaches_nash_conv_below_0_01() -> None:
    from marlkit.population import efg, extensive_psro, kuhn_poker

    game = kuhn_poker()
    result = extensive_psro(game, iterations=15)
    assert result.nash_conv[0] == pytest.approx(11 / 12)  # the uniform policy's
    assert min(result.nash_conv) <= 0.01
    assert result.nash_conv[-1] <= 0.01
    assert efg.nash_conv(game, result.policy) == result.nash_conv[-1]
    assert [len(p) for p in result.populations] == [16, 16]
    # at the meta-game's equilibrium every policy in a player's support earns the same against the other's mixture:
    # the value of the meta-strategies, which is Kuhn's -1/18 once NashConv is 0
    value = efg.expected_value(game, result.policy)
    assert value == pytest.approx(-1 / 18, abs=1e-3)
    last = result.meta_strategies[-1]
    for player in (0, 1):
        rows = game.infostate_player == player
        for k in np.flatnonzero(last[player] > 1e-6):
            alone = np.where(rows[:, None], result.populations[player][k], result.policy)
            assert efg.expected_value(game, alone) == pytest.approx(value, abs=1e-6)


def test_extensive_psro_bad_arguments() -> None:
    from marlkit.population import extensive_psro, kuhn_poker

    with pytest.raises(ValueError, match="unknown meta-solver 'nashh'; did you mean 'nash'"):
        extensive_psro(kuhn_poker(), 3, "nashh")
    with pytest.raises(ValueError, match="iterations must be a non-negative integer"):
        extensive_psro(kuhn_poker(), -2)
