"""play(): text games between text policies, a tiny language model among them."""

import pytest

from marlkit.envs.text import TextVecEnv, make_text
from marlkit.envs.text.tictactoe import HeuristicPolicy, RandomMovePolicy, read_observation
from marlkit.llm.games import play
from marlkit.llm.hf import HFPolicy
from marlkit.llm.tiny import tiny_causal_lm

pytestmark = pytest.mark.llm


class Counting:
    """Wraps a policy and records the size of every batch it is asked."""

    def __init__(self, policy):
        self.policy, self.calls = policy, []

    def act(self, observations):
        self.calls.append(len(observations))
        return self.policy.act(observations)


def test_each_copy_plays_its_quota_and_one_policy_answers_all_its_agents_at_once():
    env = TextVecEnv(lambda: make_text("tictactoe-v0"), num_envs=3, seed=0)
    shared = Counting(RandomMovePolicy(seed=1))
    outcomes = play(env, shared, episodes=7)
    assert len(outcomes) == 7 and all(o.completed or o.winner for o in outcomes)
    assert max(shared.calls) == 3  # one call per step for the three copies
    again = play(TextVecEnv(lambda: make_text("tictactoe-v0"), num_envs=3, seed=0), RandomMovePolicy(seed=1), 7)
    assert [o.transcript for o in again] == [o.transcript for o in outcomes]  # same seeds, same games
    with pytest.raises(ValueError, match="missing \\['player_1'\\]"):
        play(env, {"player_0": shared}, 2)


def test_a_tiny_language_model_constrained_to_legal_moves_never_plays_an_invalid_move():
    model, tok = tiny_causal_lm(seed=0)
    llm = HFPolicy(model, tok, actions=lambda obs: read_observation(obs)[2], seed=0)
    env = TextVecEnv(lambda: make_text("tictactoe-v0"), num_envs=2, seed=3)
    outcomes = play(env, {"player_0": llm, "player_1": HeuristicPolicy(seed=0)}, episodes=4)
    assert len(outcomes) == 4
    assert all(o.invalid["player_0"] == 0 for o in outcomes)
    assert all(o.turns >= 5 for o in outcomes)  # real games: at least five moves before anyone can win
