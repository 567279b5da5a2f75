"""Native Kuhn poker and Leduc hold'em against OpenSpiel's games: the same deals and moves give the same movers,
legal moves, information-state tensors and outcomes, hand after hand in every copy."""

import numpy as np
import pytest

import marlkit
from marlkit.envs import ActionError, check_env, sample_actions
from marlkit.envs.poker import KuhnPoker

pyspiel = pytest.importorskip("pyspiel")

GAMES = {"kuhn-poker-v0": "kuhn_poker", "leduc-poker-v0": "leduc_poker"}


def _deal(env, c):
    """The cards OpenSpiel's chance nodes must deal for copy ``c``'s hand: the private cards, then the public."""
    if hasattr(env, "public"):
        return [int(env.private[c, 0]), int(env.private[c, 1]), int(env.public[c])]
    return [int(env.cards[c, 0]), int(env.cards[c, 1])]


def _advance_chance(state, deal):
    while state.is_chance_node():
        card = deal.pop(0)
        assert card in dict(state.chance_outcomes()), "the env dealt a card OpenSpiel's chance node cannot"
        state.apply_action(card)


def _assert_same(env, obs, info, states, c, where):
    s = states[c]
    assert info["to_play"][c] == s.current_player(), where
    mask = info["action_mask"]["player"][c]
    mover = s.current_player()
    np.testing.assert_array_equal(np.flatnonzero(mask[mover]), s.legal_actions(), err_msg=where)
    np.testing.assert_array_equal(np.flatnonzero(mask[1 - mover]), [env.n_moves], err_msg=where)  # only PASS
    for p in range(2):
        np.testing.assert_array_equal(obs["player"][c, p], s.information_state_tensor(p), err_msg=where)


@pytest.mark.parametrize("env_id", list(GAMES))
def test_hands_match_openspiel(env_id):
    game = pyspiel.load_game(GAMES[env_id])
    env = marlkit.make(env_id, num_envs=6, seed=3)
    rng = np.random.default_rng(0)
    obs, info = env.reset()
    states, deals = [], []
    for c in range(env.num_envs):
        deals.append(_deal(env, c))
        states.append(game.new_initial_state())
        _advance_chance(states[c], deals[c])
        _assert_same(env, obs, info, states, c, f"copy {c} at reset")
    hands, outcomes = 0, set()
    for t in range(400):
        actions = sample_actions(env, info["action_mask"], rng)
        movers = info["to_play"]
        obs, rewards, terminated, truncated, info = env.step(actions)
        for c in range(env.num_envs):
            where = f"copy {c}, step {t}"
            s = states[c]
            s.apply_action(int(actions["player"][c, movers[c]]))
            _advance_chance(s, deals[c])
            assert terminated["player"][c].tolist() == [s.is_terminal()] * 2, where
            assert not truncated["player"][c].any(), where
            expected = s.returns() if s.is_terminal() else [0.0, 0.0]
            np.testing.assert_array_equal(rewards["player"][c], expected, err_msg=where)
            for p in range(2):
                np.testing.assert_array_equal(
                    info["final_obs"]["player"][c, p], s.information_state_tensor(p), err_msg=where
                )
            if s.is_terminal():
                assert info["episode_done"][c]
                np.testing.assert_array_equal(info["final_action_mask"]["player"][c].argmax(-1), [env.n_moves] * 2)
                hands += 1
                outcomes.add(tuple(s.returns()))
                deals[c] = _deal(env, c)
                states[c] = game.new_initial_state()
                _advance_chance(states[c], deals[c])
            _assert_same(env, obs, info, states, c, where)
    assert hands > 100
    assert len(outcomes) >= (4 if env_id == "kuhn-poker-v0" else 8), outcomes  # folds, showdowns, splits, raises


@pytest.mark.parametrize("env_id", list(GAMES))
def test_deals_are_uniform(env_id):
    env = marlkit.make(env_id, num_envs=3000, seed=1)
    env.reset()
    cards = env.cards if env_id == "kuhn-poker-v0" else np.column_stack([env.private, env.public])
    n_cards = 3 if env_id == "kuhn-poker-v0" else 6
    assert all(len(set(row)) == len(row) for row in cards.tolist())  # no card dealt twice
    for column in cards.T:
        freq = np.bincount(column, minlength=n_cards) / len(column)
        np.testing.assert_allclose(freq, 1 / n_cards, atol=0.03)


def test_the_player_not_to_move_may_only_pass():
    env = marlkit.make("kuhn-poker-v0", num_envs=2, seed=0)
    _, info = env.reset()
    assert info["to_play"].tolist() == [0, 0]
    with pytest.raises(ActionError, match="masked out"):
        env.step({"player": np.array([[1, 1], [1, 2]])})  # player_1 bets out of turn
    with pytest.raises(ActionError, match="masked out"):
        env.step({"player": np.array([[2, 2], [1, 2]])})  # player_0 passes its own turn
    _, rewards, _, _, info = env.step({"player": np.array([[1, 2], [0, 2]])})
    assert info["to_play"].tolist() == [1, 1] and not rewards["player"].any()


def test_leduc_maps_illegal_moves_as_openspiel_does_when_unvalidated():
    """Without validation a fold that faces no bet is a check, as OpenSpiel's ``action_mapping`` makes it."""
    env = marlkit.make("leduc-poker-v0", num_envs=1, seed=0)
    env.reset()
    env.validate_actions = False
    _, rewards, terminated, _, info = env.step({"player": np.array([[0, 3]])})
    assert not terminated["player"].any() and info["to_play"].tolist() == [1]
    game = pyspiel.load_game("leduc_poker")
    s = game.new_initial_state()
    _advance_chance(s, _deal(env, 0))
    s.apply_action(1)
    np.testing.assert_array_equal(env._observe()["player"][0, 0], s.information_state_tensor(0))


@pytest.mark.parametrize(("env_id", "as_move"), [("kuhn-poker-v0", 0), ("leduc-poker-v0", 1)])
def test_a_movers_pass_is_played_as_a_legal_move_when_unvalidated(env_id, as_move):
    """PettingZoo's api test sends the mover's PASS with validation off; it is played as pass (Kuhn) or call (Leduc),
    through a whole hand, never written into the observation as a move of its own."""
    env = marlkit.make(env_id, num_envs=1, seed=0)
    twin = marlkit.make(env_id, num_envs=1, seed=0)
    env.reset(seed=3)
    twin.reset(seed=3)
    env.validate_actions = False
    passes = env.n_moves
    over = False
    for _ in range(8):
        to_play = int(env._to_play()[0])
        pass_all = np.full((1, 2), passes)
        played = pass_all.copy()
        played[0, to_play] = as_move
        obs, rewards, terminated, _, _ = env.step({"player": pass_all})
        obs_twin, rewards_twin, _, _, _ = twin.step({"player": played})
        np.testing.assert_array_equal(obs["player"], obs_twin["player"])
        np.testing.assert_array_equal(rewards["player"], rewards_twin["player"])
        if terminated["player"].all():
            over = True
            break
    assert over and rewards["player"].any()


class _PassingMover(KuhnPoker):
    """Broken: the mover may pass its turn."""

    def _action_mask(self):
        masks = super()._action_mask()
        masks["player"][..., -1] = True
        return masks


class _EveryoneMoves(KuhnPoker):
    """Broken: the player not to move is offered moves too."""

    def _action_mask(self):
        masks = super()._action_mask()
        masks["player"][..., :-1] = True
        return masks


class _NoTurns(KuhnPoker):
    """Broken: declares turns but never says whose."""

    def _add_masks(self, info):
        super()._add_masks(info)
        info.pop("to_play")


@pytest.mark.parametrize(
    "broken, message",
    [(_PassingMover, "mask allows PASS"), (_EveryoneMoves, "only PASS"), (_NoTurns, "to_play")],
)
def test_check_env_holds_turn_based_envs_to_the_contract(broken, message):
    with pytest.raises(AssertionError, match=message):
        check_env(broken(num_envs=2), steps=50)
    check_env(KuhnPoker(num_envs=2), steps=50)
