"""Normal-form game theory against values known by hand, and against OpenSpiel when it is installed."""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest

from marlkit.population import (
    action_values,
    as_payoffs,
    best_response,
    bimatrix,
    common_payoff,
    env_payoffs,
    expected_payoffs,
    exploitability,
    nash_conv,
    pure,
    replicator_dynamics,
    replicator_step,
    uniform_strategies,
    zero_sum,
    zero_sum_nash,
)

RPS = [[0, -1, 1], [1, 0, -1], [-1, 1, 0]]  # rows and columns: rock, paper, scissors
# Biased RPS: rock beats scissors by 2 (and loses to paper by 1), scissors beats paper by 1. The game is skew-symmetric
# (A = -A^T), so its value is 0 and both players share the equilibrium mixture y = (r, p, s), the one that leaves
# every row worth the value 0, A @ y = 0:
#   rock:     -p + 2s = 0  ->  p = 2s
#   paper:     r -  s = 0  ->  r = s
#   scissors: -2r + p = 0  ->  p = 2r (the same)
# so y is proportional to (1, 2, 1): (1/4, 1/2, 1/4), unique since every pure action is beaten by some other.
BIASED_RPS = [[0, -1, 2], [1, 0, -1], [-2, 1, 0]]
BIASED_RPS_NASH = np.array([0.25, 0.5, 0.25])
# Biased matching pennies: the row player wins 3 on (heads, heads), 1 on (tails, tails), loses 1 on a mismatch.
# The row mixture (p, 1 - p) leaves the column indifferent: 3p - (1 - p) = -p + (1 - p) -> p = 1/3; the column's
# (q, 1 - q) leaves the row indifferent: 3q - (1 - q) = -q + (1 - q) -> q = 1/3. Value: 3/3 - 2/3 = 1/3.
BIASED_PENNIES = [[3, -1], [-1, 1]]


# ------------------------------------------------------------------------------------------------ zero-sum Nash
@pytest.mark.parametrize(
    ("A", "row", "column", "value"),
    [
        (RPS, [1 / 3] * 3, [1 / 3] * 3, 0.0),
        ([[1, -1], [-1, 1]], [0.5, 0.5], [0.5, 0.5], 0.0),  # matching pennies
        (BIASED_RPS, BIASED_RPS_NASH, BIASED_RPS_NASH, 0.0),
        (BIASED_PENNIES, [1 / 3, 2 / 3], [1 / 3, 2 / 3], 1 / 3),
        ([[2, 3], [1, 0]], [1, 0], [1, 0], 2.0),  # a saddle point: row 0 dominates, then column 0
    ],
)
def test_zero_sum_nash_is_the_known_equilibrium(
    A: list[list[float]], row: list[float], column: list[float], value: float
) -> None:
    solution = zero_sum_nash(A)
    np.testing.assert_allclose(solution.row, row, atol=1e-8)
    np.testing.assert_allclose(solution.column, column, atol=1e-8)
    assert solution.value == pytest.approx(value, abs=1e-8)
    assert nash_conv(zero_sum(A), [solution.row, solution.column]) == pytest.approx(0.0, abs=1e-8)


def test_the_matrix_envs_payoffs_are_their_tables() -> None:
    pennies = env_payoffs("matching-pennies-v0")
    np.testing.assert_array_equal(pennies, zero_sum([[1, -1], [-1, 1]]))
    assert zero_sum_nash(pennies[0]).value == pytest.approx(0.0, abs=1e-9)
    pd = env_payoffs("prisoners-dilemma-v0")
    assert pd.shape == (2, 2, 2) and pd[0, 0, 1] == 0 and pd[1, 0, 1] == 5  # the cooperator gets S, the defector T
    np.testing.assert_array_equal(env_payoffs("penalty-v0", k=-50)[1], [[10, 0, -50], [0, 2, 0], [-50, 0, 10]])


# ------------------------------------------------------------------------------------------------ NashConv
def test_nash_conv_on_rock_paper_scissors() -> None:
    game, rock, uniform = zero_sum(RPS), pure(3, 0), [1 / 3] * 3
    # (rock, rock): both get 0 and paper would win 1 for either, so 1 + 1
    assert nash_conv(game, [rock, rock]) == pytest.approx(2.0)
    assert exploitability(game, [rock, rock]) == pytest.approx(1.0)
    # (rock, uniform): the row player's every action is worth 0 against uniform (gain 0); paper beats rock (gain 1)
    assert nash_conv(game, [rock, uniform]) == pytest.approx(1.0)
    assert exploitability(game, [rock, uniform]) == pytest.approx(0.5)
    assert nash_conv(game, [uniform, uniform]) == pytest.approx(0.0)
    assert best_response(game, [rock, uniform], 1) == 1  # paper
    np.testing.assert_allclose(action_values(game, [rock, uniform], 1), [0, 1, -1])


def test_prisoners_dilemma_mutual_defection_is_the_equilibrium() -> None:
    pd = env_payoffs("prisoners-dilemma-v0")
    cooperate, defect = pure(2, 0), pure(2, 1)
    assert nash_conv(pd, [defect, defect]) == 0.0
    assert nash_conv(pd, [cooperate, cooperate]) == pytest.approx(4.0)  # each gains T - R = 5 - 3 by defecting
    np.testing.assert_allclose(expected_payoffs(pd, [cooperate, cooperate]), [3, 3])
    with pytest.raises(ValueError, match="constant-sum"):
        exploitability(pd, [defect, defect])


@pytest.mark.parametrize(
    ("env_id", "kwargs", "equilibria"),
    [
        # climbing: (a, a) = 11 and (b, b) = 7 are each the best reply to themselves; at (c, c) = 5 the row player
        # gains 1 by playing b (6 > 5)
        ("climbing-v0", {}, {(0, 0), (1, 1)}),
        ("penalty-v0", {"k": -10}, {(0, 0), (1, 1), (2, 2)}),  # (b, b) = 2 is safe: every deviation from it pays 0
        ("stag-hunt-v0", {}, {(0, 0), (1, 1)}),
    ],
)
def test_pure_equilibria_of_the_cooperative_matrix_games(
    env_id: str, kwargs: dict[str, float], equilibria: set[tuple[int, int]]
) -> None:
    game = env_payoffs(env_id, **kwargs)
    n = game.shape[1]
    found = {(a, b) for a, b in itertools.product(range(n), repeat=2) if nash_conv(game, [pure(n, a), pure(n, b)]) == 0}
    assert found == equilibria


def test_climbing_game_nash_conv_of_the_safe_corner() -> None:
    game = env_payoffs("climbing-v0")
    assert nash_conv(game, [pure(3, 2), pure(3, 2)]) == pytest.approx(1.0)  # only the row player gains (6 - 5)


def test_three_player_game() -> None:
    # three players, common payoff: 1 when all three play the same action, else 0
    payoff = np.zeros((2, 2, 2))
    payoff[0, 0, 0] = payoff[1, 1, 1] = 1.0
    game = common_payoff(payoff)
    assert game.shape == (3, 2, 2, 2)
    assert nash_conv(game, [pure(2, 0)] * 3) == 0.0
    # all uniform: each gets 2/8; a player switching to pure heads gets 1/4 as well (the others match w.p. 1/4)
    assert nash_conv(game, uniform_strategies(game)) == pytest.approx(0.0)
    assert nash_conv(game, [pure(2, 0), pure(2, 0), pure(2, 1)]) == pytest.approx(1.0)  # the odd one out gains 1


# ------------------------------------------------------------------------------------------- replicator dynamics
def test_replicator_dynamics_time_average_approaches_the_biased_rps_equilibrium() -> None:
    start = [np.array([0.5, 0.3, 0.2]), np.array([0.2, 0.3, 0.5])]
    average = replicator_dynamics(zero_sum(BIASED_RPS), start, steps=20_000, dt=0.01)
    for x in average:
        np.testing.assert_allclose(x, BIASED_RPS_NASH, atol=0.01)


def test_replicator_dynamics_reaches_the_dominant_action() -> None:
    pd = env_payoffs("prisoners-dilemma-v0")
    last = replicator_dynamics(pd, steps=2_000, dt=0.05, average=False)
    for x in last:
        assert x[1] > 0.99  # defection dominates


# ------------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: as_payoffs([[1, 2], [3, 4]]), r"shape \(n_players, A_1"),
        (lambda: nash_conv(zero_sum(RPS), [[0.5, 0.5], [1 / 3] * 3]), "player 0 has 3 actions"),
        (lambda: nash_conv(zero_sum(RPS), [[0.5, 0.6, -0.1], [1 / 3] * 3]), "non-negative and sum to 1"),
        (lambda: nash_conv(zero_sum(RPS), [[1 / 3] * 3]), "2 players, got 1"),
        (lambda: best_response(zero_sum(RPS), uniform_strategies(zero_sum(RPS)), 2), r"player must be in 0\.\.1"),
        (lambda: bimatrix([[1, 2]], [[1], [2]]), "same shape"),
        (lambda: env_payoffs("iterated-prisoners-dilemma-v0"), "episode_length=1"),
        (lambda: env_payoffs("two-step-v0"), "needs a matrix game"),
        (lambda: replicator_dynamics(zero_sum(RPS), steps=0), "steps must be a positive integer"),
    ],
)
def test_bad_input_is_a_one_line_error(call: object, match: str) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        call()  # type: ignore[operator]


# ------------------------------------------------------------------------------------------------- OpenSpiel
def _openspiel(game: np.ndarray, strategies: list[np.ndarray], zero_sum: bool) -> tuple[float, float | None]:
    """OpenSpiel's NashConv of the profile on the same game, and its exploitability when the game is zero-sum."""
    pyspiel = pytest.importorskip("pyspiel")
    from open_spiel.python import policy
    from open_spiel.python.algorithms import exploitability as os_exploitability

    matrix = pyspiel.create_matrix_game(game[0].tolist(), game[1].tolist())
    turn_based = pyspiel.convert_to_turn_based(matrix)
    tabular = policy.TabularPolicy(turn_based)
    for player, x in enumerate(strategies):  # one information state per player
        tabular.action_probability_array[player] = x
    value = float(os_exploitability.exploitability(turn_based, tabular)) if zero_sum else None
    return float(os_exploitability.nash_conv(turn_based, tabular)), value


@pytest.mark.parametrize(
    "game",
    [
        zero_sum(RPS),
        zero_sum(BIASED_RPS),
        zero_sum(BIASED_PENNIES),
        bimatrix([[3, 0], [5, 1]], [[3, 5], [0, 1]]),  # prisoner's dilemma
        bimatrix([[11, -30, 0], [-30, 7, 6], [0, 0, 5]], [[11, -30, 0], [-30, 7, 6], [0, 0, 5]]),  # climbing
    ],
)
def test_nash_conv_matches_openspiel(game: np.ndarray) -> None:
    pytest.importorskip("pyspiel")
    rng = np.random.default_rng(0)
    n0, n1 = game.shape[1:]
    profiles = [uniform_strategies(game), [pure(n0, 0), pure(n1, n1 - 1)]]
    profiles += [[rng.dirichlet(np.ones(n0)), rng.dirichlet(np.ones(n1))] for _ in range(5)]
    zero_sum = bool(np.all(game[0] == -game[1]))
    for profile in profiles:
        theirs, their_exploitability = _openspiel(game, profile, zero_sum)
        assert nash_conv(game, profile) == pytest.approx(theirs, abs=1e-9)
        if zero_sum:
            assert exploitability(game, profile) == pytest.approx(their_exploitability, abs=1e-9)


def test_replicator_step_matches_openspiel_dynamics() -> None:
    pytest.importorskip("pyspiel")
    from open_spiel.python.egt import dynamics

    game = zero_sum(BIASED_RPS)
    rng = np.random.default_rng(1)
    x = [rng.dirichlet(np.ones(3)), rng.dirichlet(np.ones(3))]
    derivative = dynamics.MultiPopulationDynamics(game, dynamics.replicator)(np.concatenate(x))
    dt = 0.01
    np.testing.assert_allclose(np.concatenate(replicator_step(game, x, dt)), np.concatenate(x) + dt * derivative)


def test_importing_the_population_package_loads_neither_scipy_nor_openspiel() -> None:
    code = "import sys, marlkit.population; print(sorted({'scipy', 'pyspiel', 'torch'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
