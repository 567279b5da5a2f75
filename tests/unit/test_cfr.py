"""The tabular solvers learn: CFR and CFR+ reach Kuhn poker's value within OpenSpiel's own tolerances, CFR-BR
gives OpenSpiel's published NashConv sequence on Kuhn and Leduc, XFP's NashConv falls; and each solver's average
policy is OpenSpiel's own, number for number, when OpenSpiel is installed."""

from __future__ import annotations

import numpy as np
import pytest

from marlkit.population import GAMES, CFRBRSolver, CFRSolver, XFPSolver, efg, kuhn_poker, leduc_poker
from marlkit.population.cfr import regret_matching

# OpenSpiel's cfr_br_test.py: NashConv of CFR-BR's average policy after iterations 1..5
CFR_BR_KUHN = [0.9166666666666666, 0.33333333333333337, 0.3194444444444445, 0.2604166666666667, 0.22666666666666674]
CFR_BR_LEDUC = [4.747222222222222, 4.006867283950617, 3.4090489231017034, 2.8982539553095172, 2.5367193593344504]


def test_regret_matching() -> None:
    legal = np.array([[True, True, True], [True, True, False], [False, True, True]])
    regrets = np.array([[3.0, -1.0, 1.0], [-2.0, -1.0, 5.0], [0.0, 0.0, 0.0]])  # the 5 is on an illegal action
    np.testing.assert_allclose(regret_matching(regrets, legal), [[0.75, 0, 0.25], [0.5, 0.5, 0], [0, 0.5, 0.5]])


def test_cfr_reaches_kuhn_value_within_300_iterations() -> None:
    # OpenSpiel's cfr_test.py floor: within 1e-3 of -1/18 after 300 iterations (CFR) and 200 (CFR+)
    game = kuhn_poker()
    policy = CFRSolver(game).run(300)
    assert efg.expected_value(game, policy) == pytest.approx(-1 / 18, abs=1e-3)
    assert efg.nash_conv(game, policy) < 0.01


def test_cfr_plus_reaches_nash_conv_below_0_001_on_kuhn_in_200_iterations() -> None:
    game = kuhn_poker()
    solver = CFRSolver(game, plus=True)
    policy = solver.run(200)
    assert efg.expected_value(game, policy) == pytest.approx(-1 / 18, abs=1e-3)
    assert efg.nash_conv(game, policy) <= 0.001
    assert efg.nash_conv(game, solver.current_policy()) > efg.nash_conv(game, policy)  # the average is what converges


@pytest.mark.parametrize(("game", "expected"), [(kuhn_poker(), CFR_BR_KUHN), (leduc_poker(), CFR_BR_LEDUC)])
def test_cfr_br_gives_openspiels_nash_conv_sequence(game: efg.ExtensiveGame, expected: list[float]) -> None:
    solver = CFRBRSolver(game)
    curve = []
    for _ in range(5):
        solver.step()
        curve.append(efg.nash_conv(game, solver.average_policy()))
    np.testing.assert_allclose(curve, expected, atol=1e-10)


def test_xfp_nash_conv_falls_on_kuhn() -> None:
    game = kuhn_poker()
    solver = XFPSolver(game)
    curve = [efg.nash_conv(game, solver.run(n)) for n in (1, 9, 90)]  # after 1, 10 and 100 iterations
    assert curve[0] > curve[1] > curve[2]
    assert curve[2] < 0.1


def test_bad_iterations() -> None:
    with pytest.raises(ValueError, match="iterations must be a non-negative integer"):
        CFRSolver(kuhn_poker()).run(-1)


# ------------------------------------------------------------------------------------------------- OpenSpiel
def _theirs(game: efg.ExtensiveGame, tabular: object) -> np.ndarray:
    """An OpenSpiel TabularPolicy as our array, row by information-state string."""
    array, lookup = tabular.action_probability_array, tabular.state_lookup  # type: ignore[attr-defined]
    return np.array([array[lookup[key]] for key in game.infostate_keys])


@pytest.mark.parametrize(
    ("name", "iterations", "method"),
    # OpenSpiel's Python CFR takes about a second per Leduc iteration: one Leduc comparison is enough
    [("kuhn_poker", 10, "cfr"), ("kuhn_poker", 10, "cfr+"), ("kuhn_poker", 10, "cfr-br"), ("leduc_poker", 2, "cfr")],
)
def test_average_policy_is_openspiels(name: str, iterations: int, method: str) -> None:
    pyspiel = pytest.importorskip("pyspiel")
    from open_spiel.python.algorithms import cfr, cfr_br

    game, os_game = GAMES[name](), pyspiel.load_game(name)
    ours = {"cfr": CFRSolver(game), "cfr+": CFRSolver(game, plus=True), "cfr-br": CFRBRSolver(game)}[method]
    theirs = {"cfr": cfr.CFRSolver, "cfr+": cfr.CFRPlusSolver, "cfr-br": cfr_br.CFRBRSolver}[method](os_game)
    for _ in range(iterations):
        ours.step()
        theirs.evaluate_and_update_policy()
        np.testing.assert_allclose(ours.average_policy(), _theirs(game, theirs.average_policy()), atol=1e-9)
        np.testing.assert_allclose(ours.current_policy(), _theirs(game, theirs.current_policy()), atol=1e-9)


@pytest.mark.parametrize(("name", "iterations"), [("kuhn_poker", 2), ("leduc_poker", 1)])
def test_xfp_is_openspiels_while_best_responses_are_unique(name: str, iterations: int) -> None:
    # From Kuhn's third iteration a best response ties exactly (two actions worth -1/18): OpenSpiel's picks whichever
    # rounding favours, ours the lowest-numbered action, so the runs part there.
    pyspiel = pytest.importorskip("pyspiel")
    from open_spiel.python.algorithms import fictitious_play

    game, os_game = GAMES[name](), pyspiel.load_game(name)
    ours, theirs = XFPSolver(game), fictitious_play.XFPSolver(os_game)
    for _ in range(iterations):
        ours.step()
        theirs.iteration()
        np.testing.assert_allclose(
            ours.average_policy(), _theirs(game, theirs.average_policy().to_tabular()), atol=1e-9
        )
