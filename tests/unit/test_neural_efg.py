"""Neural learners on Kuhn poker, measured exactly: a DQN oracle trained from sampled games finds the exact best
response, PSRO with it reaches an equilibrium, and NFSP's NashConv falls."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from marlkit.population import efg, extensive_psro, kuhn_poker
from marlkit.population.nfsp import NFSP
from marlkit.population.rl_oracle import Buffer, DQNOracle, DQNOracleConfig, transitions


@pytest.fixture(autouse=True)
def one_thread() -> None:
    torch.set_num_threads(1)


@pytest.mark.parametrize("player", [0, 1])
def test_dqn_oracle_learns_most_of_a_best_responses_gain(player: int) -> None:
    # from sampled games only; its Q-values carry sampling noise, so near-ties may go the wrong way
    game = kuhn_poker()
    opponent = efg.random_policy(game, seed=5)
    sign = 1.0 if player == 0 else -1.0
    learned = DQNOracle(DQNOracleConfig(games=5_000), seed=0)(game, opponent, player)
    exact_gain = efg.best_response(game, opponent, player).value - sign * efg.expected_value(game, opponent)
    learned_gain = sign * (efg.expected_value(game, learned) - efg.expected_value(game, opponent))
    assert exact_gain > 0.2
    assert learned_gain >= 0.8 * exact_gain
    rows = game.infostate_player != player
    np.testing.assert_array_equal(learned[rows], opponent[rows])  # the opponent's rows are untouched


@pytest.mark.slow
def test_psro_with_a_dqn_oracle_reaches_nash_conv_below_0_05_on_kuhn() -> None:
    result = extensive_psro(kuhn_poker(), iterations=8, oracle=DQNOracle(seed=0))
    assert result.nash_conv[-1] <= 0.05


def test_nfsp_nash_conv_falls_on_kuhn() -> None:
    agent = NFSP(kuhn_poker(), seed=0)
    result = agent.train(20_000, eval_every=10_000)
    first, last = result.nash_conv[0][1], result.nash_conv[-1][1]
    assert efg.nash_conv(kuhn_poker(), efg.uniform_policy(kuhn_poker())) == pytest.approx(11 / 12)
    assert last < 0.75 < first + 0.2  # from about the uniform policy's 0.92


def test_transitions_link_a_players_moves_within_each_game() -> None:
    game = kuhn_poker()
    rng = np.random.default_rng(0)
    played = efg.play(game, lambda p, games, states: efg.uniform_policy(game)[states], 64, rng)
    batch = transitions(played.moves[0], played.payoff, 64)
    keys = np.array(game.infostate_keys)
    first = np.char.str_len(keys[batch["state"]]) == 1  # player 0's opening move ("0", "1", "2")
    assert first.sum() == 64  # once per game
    # an opening pass that met a bet leads to the same card's second move ("1" -> "1pb"), with no reward yet
    going_on = first & ~batch["done"]
    assert going_on.any()
    assert (keys[batch["next_state"][going_on]] == np.char.add(keys[batch["state"][going_on]], "pb")).all()
    assert (batch["reward"][going_on] == 0).all() and (batch["action"][going_on] == 0).all()
    assert batch["done"][~first].all()  # the second move ends the game
    assert set(np.unique(np.abs(batch["reward"][batch["done"]]))) <= {1.0, 2.0}


def test_reservoir_keeps_a_uniform_sample() -> None:
    buffer = Buffer(1_000, True, np.random.default_rng(0))
    for start in range(0, 100_000, 500):
        buffer.add(x=np.arange(start, start + 500))
    kept = buffer.data["x"]
    assert buffer.size == 1_000 and len(np.unique(kept)) == 1_000
    assert abs(kept.mean() - 50_000) < 3_000  # a uniform sample of 0..99,999, not the first or last 1,000
