"""Self-play on turn-based games: one network shared by both seats (parameter sharing in the ``player`` group),
trained by the unchanged learners under the turn-based contract, then pitted against a uniformly random opponent
in each seat (``marlkit.population.versus``).

References, from OpenSpiel on the same games (its ``expected_game_score`` and ``BestResponsePolicy``): in Kuhn
poker, uniform random against uniform random scores +0.125 in seat 0 and -0.125 in seat 1 (0 averaged over the
seats), and a best response to uniform random +0.5 and +0.417 (0.458 averaged).
"""

import numpy as np
import pytest
import torch

import marlkit
from marlkit.population.versus import UniformRandom, against

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

QUIET = dict(progress=False, gif=False, checkpoint_every=0, eval_every=0, eval_episodes=10)


def _vs_random(env_id, policy, episodes=2000):
    env = marlkit.make(env_id, num_envs=64)
    return against(env, policy, UniformRandom(env, seed=1), episodes, seed=5)


def test_random_against_random_matches_openspiel():
    """The referee itself: uniform random in both seats of Kuhn poker scores OpenSpiel's +-0.125."""
    env = marlkit.make("kuhn-poker-v0", num_envs=64)
    seats = against(env, UniformRandom(env, seed=2), UniformRandom(env, seed=1), 4000, seed=5)
    assert [s.agent for s in seats] == ["player_0", "player_1"]
    np.testing.assert_allclose([s.mean for s in seats], [0.125, -0.125], atol=0.05)


@pytest.mark.parametrize("algo, steps", [("ippo", 20_000), ("iql", 30_000)])
def test_self_play_beats_random_at_kuhn_poker(algo, steps, tmp_path):
    """IPPO for 20k env-steps of self-play, IQL (its defaults: ε decays over 50k steps) for 30k; 32 copies, gamma
    1. Greedy, the policy must average at least +0.25 per hand over the two seats against uniform random (random
    scores 0, a best response 0.458), and beat random's own score in each seat by 0.1."""
    torch.set_num_threads(1)
    result = marlkit.train(
        algo, "kuhn-poker-v0", steps=steps, seed=0, out=str(tmp_path), num_envs=32, gamma=1.0, **QUIET
    )
    seats = _vs_random("kuhn-poker-v0", marlkit.load(result.run_dir))
    means = [s.mean for s in seats]
    assert np.mean(means) >= 0.25, means
    assert means[0] >= 0.125 + 0.1 and means[1] >= -0.125 + 0.1, means


@pytest.mark.slow
def test_ippo_self_play_beats_random_at_tictactoe(tmp_path):
    """IPPO, 100k env-steps of self-play on PettingZoo's tic-tac-toe through the AEC bridge (32 copies, 50 to 100 s
    on one core): greedy, it must win at least 80% of its games as X and 50% as O against uniform random, which
    itself wins 57% as X and 29% as O."""
    torch.set_num_threads(1)
    result = marlkit.train(
        "ippo", "pz:tictactoe_v3", steps=100_000, seed=0, out=str(tmp_path), num_envs=32, gamma=0.99, **QUIET
    )
    as_x, as_o = _vs_random("pz:tictactoe_v3", marlkit.load(result.run_dir))
    assert as_x.win_rate >= 0.8 and as_o.win_rate >= 0.5, (as_x.win_rate, as_o.win_rate)
