"""Extensive-form games as arrays: Kuhn poker's known equilibria and value, best responses and NashConv, mixtures
of policies, bad input; and the same numbers from OpenSpiel on the same games and policies when it is installed."""

from __future__ import annotations

import numpy as np
import pytest

from marlkit.population import GAMES, build_game, efg, kuhn_poker, leduc_poker


def kuhn_equilibrium(alpha: float) -> np.ndarray:
    """Kuhn's one-parameter family of equilibria (Kuhn 1950), 0 <= alpha <= 1/3, as a policy (columns: pass, bet).
    Player 0 bets the jack with probability alpha (a bluff), never bets the queen, bets the king with 3 alpha; after
    checking and facing a bet it folds the jack, calls with the queen with probability alpha + 1/3 and always calls
    with the king. Player 1 facing a bet folds the jack, calls with the queen 1/3 and always with the king; after a
    check it bets the jack 1/3 (a bluff), checks the queen and bets the king. Player 0's value is -1/18."""
    rows = {
        "0": 1 - alpha,
        "1": 1.0,
        "2": 1 - 3 * alpha,
        "0pb": 1.0,
        "1pb": 2 / 3 - alpha,
        "2pb": 0.0,
        "0p": 2 / 3,
        "1p": 1.0,
        "2p": 0.0,
        "0b": 1.0,
        "1b": 2 / 3,
        "2b": 0.0,
    }
    game = kuhn_poker()
    policy = np.zeros((game.num_infostates, 2))
    for key, p in rows.items():
        policy[game.infostate_index[key]] = [p, 1 - p]
    return policy


# ------------------------------------------------------------------------------------------------ the games
def test_the_games_sizes() -> None:
    kuhn, leduc = kuhn_poker(), leduc_poker()
    assert (kuhn.num_infostates, kuhn.num_nodes, kuhn.num_actions) == (12, 58, 2)
    assert (leduc.num_infostates, leduc.num_actions) == (936, 3)
    terminal = leduc.node_player == efg.TERMINAL
    assert leduc.utility[terminal].min() == -13 and leduc.utility[terminal].max() == 13  # 1 + 2 + 2 + 4 + 4
    for game in (kuhn, leduc):  # chance's probabilities at every node sum to 1; so do the terminal probabilities
        reach = efg.reach_probabilities(game, efg.uniform_policy(game))
        assert reach.prod(axis=0)[game.node_player == efg.TERMINAL].sum() == pytest.approx(1.0)


@pytest.mark.parametrize("alpha", [0.0, 1 / 6, 1 / 3])
def test_kuhn_equilibria_have_value_minus_one_eighteenth_and_zero_nash_conv(alpha: float) -> None:
    game, policy = kuhn_poker(), kuhn_equilibrium(alpha)
    assert efg.expected_value(game, policy) == pytest.approx(-1 / 18, abs=1e-12)
    assert efg.nash_conv(game, policy) == pytest.approx(0.0, abs=1e-12)
    # each best response earns exactly the game's value to its player
    assert efg.best_response(game, policy, 0).value == pytest.approx(-1 / 18, abs=1e-12)
    assert efg.best_response(game, policy, 1).value == pytest.approx(1 / 18, abs=1e-12)


def test_a_bluff_too_many_is_exploited() -> None:
    game, policy = kuhn_poker(), kuhn_equilibrium(0.0)
    policy[game.infostate_index["0p"]] = [0.0, 1.0]  # player 1 always bluffs the jack after a check
    gain = efg.nash_conv(game, policy)
    assert gain > 0.01
    response = efg.best_response(game, policy, 0)
    # the best reply: with the queen, check and call the bluffer
    assert response.policy[game.infostate_index["1pb"]].tolist() == [0.0, 1.0]
    assert response.value == pytest.approx(efg.expected_value(game, response.policy))
    assert efg.exploitability(game, policy) == pytest.approx(gain / 2)


def test_uniform_kuhn_nash_conv() -> None:
    # OpenSpiel's CFR-BR test starts from this number: the uniform policy's NashConv is 11/12
    assert efg.nash_conv(kuhn_poker(), efg.uniform_policy(kuhn_poker())) == pytest.approx(11 / 12, abs=1e-12)


def test_a_best_response_is_pure_and_no_worse_than_any_policy() -> None:
    for game in (kuhn_poker(), leduc_poker()):
        policy = efg.random_policy(game, seed=3)
        for player in (0, 1):
            response = efg.best_response(game, policy, player)
            rows = game.infostate_player == player
            assert set(np.unique(response.policy[rows])) == {0.0, 1.0}
            np.testing.assert_array_equal(response.policy[~rows], policy[~rows])  # the opponent's rows are kept
            sign = 1 if player == 0 else -1
            for seed in range(3):  # no other strategy of the responder does better
                other = policy.copy()
                other[rows] = efg.random_policy(game, seed=10 + seed)[rows]
                assert sign * efg.expected_value(game, other) <= response.value + 1e-12


def test_a_mixture_of_policies_is_worth_the_mixture_of_their_values() -> None:
    # Kuhn's theorem: the behaviour policy of mix_policies plays like picking one policy at random, once
    game = leduc_poker()
    a, b, c = (efg.random_policy(game, seed) for seed in (0, 1, 2))
    rows = game.infostate_player == 0
    opponent = efg.random_policy(game, seed=9)
    profiles = [np.where(rows[:, None], x, opponent) for x in (a, b, c)]
    weights = np.array([0.5, 0.3, 0.2])
    mixed = efg.mix_policies(game, profiles, weights)
    values = [efg.expected_value(game, x) for x in profiles]
    assert efg.expected_value(game, mixed) == pytest.approx(weights @ values, abs=1e-12)
    assert not np.allclose(mixed[rows], (weights[:, None, None] * np.stack(profiles)).sum(axis=0)[rows])


# ------------------------------------------------------------------------------------------------- bad input
def test_bad_policies_are_named_errors() -> None:
    game = kuhn_poker()
    with pytest.raises(ValueError, match=r"has shape \(12, 2\)"):
        efg.nash_conv(game, np.full((12, 3), 1 / 3))
    bad = efg.uniform_policy(game)
    bad[game.infostate_index["1pb"]] = [0.7, 0.7]
    with pytest.raises(ValueError, match="information state '1pb' must be non-negative"):
        efg.expected_value(game, bad)
    leduc = leduc_poker()
    illegal = efg.uniform_policy(leduc)
    illegal[0] = [0.2, 0.4, 0.4]  # fold is not legal when no bet is faced
    with pytest.raises(ValueError, match=r"zero on illegal actions and sum to 1 over the legal ones \[1, 2\]"):
        efg.nash_conv(leduc, illegal)
    with pytest.raises(ValueError, match="player must be 0 or 1"):
        efg.best_response(game, efg.uniform_policy(game), 2)
    with pytest.raises(ValueError, match="one non-negative number per policy"):
        efg.mix_policies(game, [efg.uniform_policy(game)], [0.5, 0.5])


class _Forgetful:
    """A broken game: player 0 moves twice, and its second information state forgets the first move, at two
    different depths."""

    name = "forgetful"
    num_actions = 2

    def initial(self) -> tuple[int, ...]:
        return ()

    def is_terminal(self, s: tuple[int, ...]) -> bool:
        return len(s) == 2 or s == (1,)

    def returns(self, s: tuple[int, ...]) -> float:
        return float(sum(s))

    def player(self, s: tuple[int, ...]) -> int:
        return 0

    def chance_outcomes(self, s: tuple[int, ...]) -> list[tuple[int, float]]:
        return []

    def legal_actions(self, s: tuple[int, ...]) -> list[int]:
        return [0, 1]

    def infostate(self, s: tuple[int, ...]) -> str:
        return "same"

    def features(self, s: tuple[int, ...]) -> list[float]:
        return [0.0]

    def apply(self, s: tuple[int, ...], a: int) -> tuple[int, ...]:
        return (*s, a)


def test_an_information_state_at_two_depths_is_refused() -> None:
    with pytest.raises(ValueError, match=r"information state 'same' is reached by player 0 .* at depth 0 .* depth 1"):
        build_game(_Forgetful())


# ------------------------------------------------------------------------------------------------- OpenSpiel
def to_openspiel(game: efg.ExtensiveGame, policy: np.ndarray, os_game: object) -> object:
    """The same policy as OpenSpiel's ``TabularPolicy``, row by information-state string."""
    from open_spiel.python import policy as os_policy

    tabular = os_policy.TabularPolicy(os_game)
    for s, key in enumerate(game.infostate_keys):
        tabular.action_probability_array[tabular.state_lookup[key]] = policy[s]
    return tabular


@pytest.mark.parametrize("name", ["kuhn_poker", "leduc_poker"])
def test_every_history_matches_openspiel(name: str) -> None:
    pyspiel = pytest.importorskip("pyspiel")
    game, os_game = GAMES[name](), pyspiel.load_game(name)
    assert game.num_actions == os_game.num_distinct_actions()
    seen = set()
    for node, history in enumerate(game.histories):
        state = os_game.new_initial_state()
        for a in history:
            state.apply_action(a)
        if game.node_player[node] == efg.TERMINAL:
            assert state.is_terminal() and state.returns()[0] == game.utility[node]
        elif game.node_player[node] == efg.CHANCE:
            assert state.is_chance_node()
        else:
            s = game.node_infostate[node]
            assert state.current_player() == game.node_player[node]
            assert state.information_state_string() == game.infostate_keys[s]
            assert state.legal_actions() == np.flatnonzero(game.legal[s]).tolist()
            np.testing.assert_array_equal(state.information_state_tensor(), game.features[s])
            seen.add(s)
    assert len(seen) == game.num_infostates == len(to_openspiel(game, efg.uniform_policy(game), os_game).states)


@pytest.mark.parametrize("name", ["kuhn_poker", "leduc_poker"])
def test_nash_conv_and_values_match_openspiel(name: str) -> None:
    pyspiel = pytest.importorskip("pyspiel")
    from open_spiel.python.algorithms import expected_game_score, exploitability

    game, os_game = GAMES[name](), pyspiel.load_game(name)
    policies = [efg.uniform_policy(game)] + [
        efg.random_policy(game, seed) for seed in range(3 if name[0] == "k" else 1)
    ]
    if name == "kuhn_poker":
        policies.append(kuhn_equilibrium(0.25))
    for policy in policies:
        theirs = to_openspiel(game, policy, os_game)
        assert efg.nash_conv(game, policy) == pytest.approx(exploitability.nash_conv(os_game, theirs), abs=1e-9)
        value = expected_game_score.policy_value(os_game.new_initial_state(), [theirs, theirs])
        assert efg.expected_value(game, policy) == pytest.approx(value[0], abs=1e-9)
        if name == "kuhn_poker":
            assert efg.exploitability(game, policy) == pytest.approx(
                exploitability.exploitability(os_game, theirs), abs=1e-9
            )
            for player in (0, 1):
                response = exploitability.best_response(os_game, theirs, player)
                assert efg.best_response(game, policy, player).value == pytest.approx(response["best_response_value"])
