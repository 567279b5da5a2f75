"""Turn-based PettingZoo AEC games (``pz:``) and OpenSpiel games (``os:``) under the turn-based contract."""

import numpy as np
import pytest

import marlkit
from marlkit.envs import check_env

pytest.importorskip("pettingzoo")
pyspiel = pytest.importorskip("pyspiel")

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

IDS = [
    "pz:tictactoe_v3",
    "pz:connect_four_v3",
    "pz:leduc_holdem_v4",
    "os:kuhn_poker",
    "os:tic_tac_toe",
    "os:leduc_poker",
]


@pytest.mark.parametrize("env_id", IDS)
@pytest.mark.parametrize("num_envs", [1, 3])
def test_check_env(env_id, num_envs):
    env = marlkit.make(env_id, num_envs=num_envs)
    assert env.turn_based
    check_env(env, steps=200)


# Player 1 (X) takes the left column while player 2 plays the middle one: X wins on its third move.
PZ_CELLS = [0, 3, 1, 4, 2]  # pettingzoo's tic-tac-toe numbers cells down the columns
OS_CELLS = [0, 1, 3, 4, 6]  # OpenSpiel's along the rows: the same game, transposed


@pytest.mark.parametrize("env_id, cells", [("pz:tictactoe_v3", PZ_CELLS), ("os:tic_tac_toe", OS_CELLS)])
def test_the_loser_is_paid_on_the_winners_move(env_id, cells):
    env = marlkit.make(env_id, num_envs=2, seed=0)
    _, info = env.reset()
    for t, cell in enumerate(cells):
        mover = t % 2
        assert info["to_play"].tolist() == [mover, mover]
        assert info["action_mask"]["player"][:, mover, cell].all()
        actions = np.full((2, 2), env.n_moves)  # PASS for the player not to move
        actions[:, mover] = cell
        _, rewards, terminated, _, info = env.step({"player": actions})
        last = t == len(cells) - 1
        assert terminated["player"].all() == last and info["episode_done"].all() == last
        expected = [[1.0, -1.0]] * 2 if last else [[0.0, 0.0]] * 2
        np.testing.assert_array_equal(rewards["player"], expected)
    np.testing.assert_array_equal(info["episode_return"]["player"], [[1.0, -1.0]] * 2)
    assert not info["action_mask"]["player"][:, 0, -1].any()  # a fresh game: player 1 moves, never passes


def test_pettingzoo_masks_and_observations_are_the_aec_envs():
    env = marlkit.make("pz:connect_four_v3", num_envs=3, seed=4)
    obs, info = env.reset()
    rng = np.random.default_rng(0)
    for _ in range(30):
        for c, pz in enumerate(env.envs):
            mover = pz.agent_selection
            seat = env.agents.index(mover)
            assert info["to_play"][c] == seat
            seen = pz.observe(mover)
            np.testing.assert_array_equal(info["action_mask"]["player"][c, seat, :-1], seen["action_mask"].astype(bool))
            np.testing.assert_array_equal(obs["player"][c, seat], seen["observation"].ravel())
        actions = marlkit.envs.sample_actions(env, info["action_mask"], rng)
        obs, _, _, _, info = env.step(actions)


def test_openspiel_game_objects_parameters_and_errors():
    from marlkit.envs.openspiel import from_openspiel

    env = from_openspiel(pyspiel.load_game("kuhn_poker", {"players": 3}), num_envs=2, seed=0)
    assert env.agents == ("player_0", "player_1", "player_2")
    check_env(env, steps=100)
    assert marlkit.make("os:kuhn_poker", players=3).agents == env.agents
    with pytest.raises(ValueError, match="sequential-move"):
        from_openspiel("matrix_rps")
    with pytest.raises(KeyError, match="did you mean 'kuhn_poker'"):
        marlkit.make("os:kuhn_pokr")


def test_openspiel_chance_is_the_env_generator():
    """Deals come from the env's generator: a seed fixes them, and they are uniform over Kuhn's 6 deals."""
    deals = []
    for seed in (0, 0, 1):
        env = marlkit.make("os:kuhn_poker", num_envs=600, seed=seed)
        env.reset()
        deals.append([tuple(s.history()[:2]) for s in env.states])
    assert deals[0] == deals[1] != deals[2]
    counts = np.unique(np.array(deals[0]), axis=0, return_counts=True)[1]
    assert len(counts) == 6 and counts.min() > 70
