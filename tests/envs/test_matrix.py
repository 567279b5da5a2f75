"""Matrix games: payoff tables as published, one-shot and repeated observation semantics."""

import numpy as np
import pytest

import marlkit

# (env id, kwargs, {joint action: (r0, r1)}) straight from the papers cited in marlkit/envs/matrix.py.
TABLES = [
    (
        "climbing-v0",
        {},
        {(0, 0): 11, (0, 1): -30, (0, 2): 0, (1, 0): -30, (1, 1): 7, (1, 2): 6, (2, 0): 0, (2, 1): 0, (2, 2): 5},
    ),
    (
        "penalty-v0",
        {"k": -100},
        {(0, 0): 10, (0, 1): 0, (0, 2): -100, (1, 0): 0, (1, 1): 2, (1, 2): 0, (2, 0): -100, (2, 1): 0, (2, 2): 10},
    ),
    ("penalty-v0", {"k": 0}, {(0, 2): 0, (2, 0): 0, (0, 0): 10, (2, 2): 10}),
    ("prisoners-dilemma-v0", {}, {(0, 0): (3, 3), (0, 1): (0, 5), (1, 0): (5, 0), (1, 1): (1, 1)}),
    ("stag-hunt-v0", {}, {(0, 0): (4, 4), (0, 1): (0, 3), (1, 0): (3, 0), (1, 1): (3, 3)}),
    ("matching-pennies-v0", {}, {(0, 0): (1, -1), (0, 1): (-1, 1), (1, 0): (-1, 1), (1, 1): (1, -1)}),
    (
        "rock-paper-scissors-v0",
        {},
        {(0, 0): (0, 0), (0, 1): (-1, 1), (0, 2): (1, -1), (1, 0): (1, -1), (1, 2): (-1, 1), (2, 0): (-1, 1)},
    ),
    (
        "biased-rock-paper-scissors-v0",
        {},
        {(0, 0): (0, 0), (0, 1): (-1, 1), (0, 2): (2, -2), (1, 0): (1, -1), (1, 2): (-1, 1), (2, 0): (-2, 2)},
    ),
]


@pytest.mark.parametrize("env_id, kwargs, table", TABLES)
def test_payoffs(env_id, kwargs, table):
    joint = list(table)
    env = marlkit.make(env_id, num_envs=len(joint), seed=0, **kwargs)
    env.reset()
    _, rewards, _, truncated, info = env.step({"players": np.array(joint)})
    expected = np.array([np.broadcast_to(table[j], (2,)) for j in joint], dtype=float)
    np.testing.assert_array_equal(rewards["players"], expected)
    assert truncated["players"].all() and info["episode_done"].all()  # one-shot


def test_penalty_rejects_positive_k():
    with pytest.raises(ValueError, match="k <= 0"):
        marlkit.make("penalty-v0", k=5)


def test_repeated_game_observes_last_joint_action_from_each_side():
    env = marlkit.make("iterated-prisoners-dilemma-v0", num_envs=1)
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs["players"][0, :, :4], 0)
    assert (obs["players"][0, :, 4] == 1).all()  # first-step flag
    for t in range(1, 10):
        obs, r, term, trunc, info = env.step({"players": np.array([[0, 1]])})  # player 0 cooperates, 1 defects
        assert not info["episode_done"][0]
        np.testing.assert_array_equal(obs["players"][0, 0, :4], [1, 0, 0, 1])  # own C, other D
        np.testing.assert_array_equal(obs["players"][0, 1, :4], [0, 1, 1, 0])  # own D, other C
        assert obs["players"][0, 0, 5] == pytest.approx(t / 10)
    obs, r, term, trunc, info = env.step({"players": np.array([[1, 1]])})
    assert info["episode_done"][0] and trunc["players"].all() and not term["players"].any()
    np.testing.assert_array_equal(info["final_obs"]["players"][0, 0, :4], [0, 1, 0, 1])
    assert obs["players"][0, 0, 4] == 1  # the new episode's first step
