"""PPO's value targets at episode ends, through the path PPO uses (collector -> rollout -> ``PPO._prepare`` ->
``ops.gae``): a truncated step bootstraps from the value of ``info["final_obs"]``, a terminated one from nothing, and
neither looks into the next episode."""

import numpy as np
import pytest
import torch

import marlkit
from marlkit.algorithms.ppo import PPO, PPOConfig
from marlkit.collect import Collector
from marlkit.data.rollout import Rollout

GAMMA = 0.5
#: Feature of the matrix games' observation holding the elapsed fraction t / T of the episode (2 actions: 2*2+1).
ELAPSED = 5


def ppo_with_value(env, value_of_obs):
    """PPO on raw targets (no value or advantage normalisation, λ = 1) whose critic is ``value_of_obs``."""
    cfg = PPOConfig(gamma=GAMMA, gae_lambda=1.0, value_norm=False, advantage_norm=False, rollout_steps=3)
    algo = PPO(env, cfg, seed=0)
    algo.nets["players"].value = value_of_obs  # an instance attribute: the critic is now a known function
    return algo


def targets(algo, rollout):
    """Value targets per step, copy and agent, ``(T, E, n)``."""
    T, E, n = rollout.rewards["players"].shape
    return algo._prepare("players", rollout)["returns"].reshape(T, E, n)


def hand_built(terminated, truncated, after=100.0):
    """Three steps of two copies of a 2-player game; every reward is 1. The critic reads feature 0, which is set so
    that V(obs[1]) = 2, V(next_obs[1]) = 4 (the state the action at step 1 reached), V(obs[2]) = ``after`` (the next
    episode's first state where step 1 ends one, so a target that looks past the end reads it) and
    V(next_obs[2]) = 6."""
    T, E, n, d = 3, 2, 2, 6
    obs, next_obs = torch.zeros(T, E, n, d), torch.zeros(T, E, n, d)
    obs[0, ..., 0], next_obs[0, ..., 0] = 1.0, 2.0
    obs[1, ..., 0], next_obs[1, ..., 0] = 2.0, 4.0
    obs[2, ..., 0], next_obs[2, ..., 0] = after, 6.0
    shape = (T, E, n)

    def flags(rows):  # (T, E) per copy -> (T, E, n): every agent of a copy alike
        return torch.tensor(rows, dtype=torch.bool)[..., None].expand(shape).clone()

    return Rollout(
        obs={"players": obs},
        actions={"players": torch.zeros(shape, dtype=torch.int64)},
        rewards={"players": torch.ones(shape)},
        terminated={"players": flags(terminated)},
        truncated={"players": flags(truncated)},
        next_obs={"players": next_obs},
        active={"players": torch.ones(shape, dtype=torch.bool)},
        action_mask=None,
        state=None,
        next_state=None,
        extras={"players": {"logp": torch.zeros(shape)}},
    )


def test_truncation_bootstraps_from_the_final_observation_and_termination_does_not():
    env = marlkit.make("iterated-prisoners-dilemma-v0", num_envs=2, seed=0)
    algo = ppo_with_value(env, lambda x: x[..., 0])
    # copy 0: the episode is truncated at step 1; copy 1: it terminates at step 1
    rollout = hand_built(
        terminated=[[False, False], [False, True], [False, False]],
        truncated=[[False, False], [True, False], [False, False]],
    )
    ret = targets(algo, rollout)
    assert ret[1, 0].tolist() == pytest.approx([1 + GAMMA * 4] * 2)  # V(final_obs) = 4 bootstrapped
    assert ret[1, 1].tolist() == pytest.approx([1.0] * 2)  # terminal: nothing after it
    # the step before the end folds in that end's target; the next episode (V = 100) never leaks in
    assert ret[0, 0].tolist() == pytest.approx([1 + GAMMA * (1 + GAMMA * 4)] * 2)
    assert ret[0, 1].tolist() == pytest.approx([1 + GAMMA * 1] * 2)
    assert ret[2].flatten().tolist() == pytest.approx([1 + GAMMA * 6] * 4)  # the rollout's end bootstraps


def test_without_an_episode_end_every_step_bootstraps_through_the_next():
    env = marlkit.make("iterated-prisoners-dilemma-v0", num_envs=2, seed=0)
    algo = ppo_with_value(env, lambda x: x[..., 0])
    none = [[False, False]] * 3
    ret = targets(algo, hand_built(terminated=none, truncated=none, after=4.0))  # in an episode, obs[2] = next_obs[1]
    # λ = 1: the discounted rewards to the rollout's end plus the discounted last bootstrap V = 6
    last = 1 + GAMMA * 6
    assert ret[2].flatten().tolist() == pytest.approx([last] * 4)
    assert ret[1].flatten().tolist() == pytest.approx([1 + GAMMA * last] * 4)
    assert ret[0].flatten().tolist() == pytest.approx([1 + GAMMA * (1 + GAMMA * last)] * 4)


def test_collected_truncations_bootstrap_from_final_obs_not_from_the_next_episode():
    # The repeated prisoner's dilemma of 2 steps: every episode is truncated at its 2nd step. Its final observation
    # shows the elapsed fraction 1; the next episode's first shows 0. A critic reading that feature (x 10) values
    # final_obs at 10, so a truncated step's target is r + gamma * 10, and r + 0 if the next episode's first
    # observation were bootstrapped instead.
    env = marlkit.make("iterated-prisoners-dilemma-v0", num_envs=2, seed=0, episode_length=2)
    algo = ppo_with_value(env, lambda x: 10.0 * x[..., ELAPSED])
    rollout, _ = Collector(env, algo, steps=3, seed=0).collect()
    trunc = rollout.truncated["players"]
    assert trunc[1].all() and not trunc[0].any() and not trunc[2].any()
    assert not rollout.terminated["players"].any()
    # the rollout: next_obs is the next step's obs inside an episode and the final observation at its end
    np.testing.assert_array_equal(rollout.next_obs["players"][0], rollout.obs["players"][1])
    assert (rollout.next_obs["players"][1][..., ELAPSED] == 1.0).all(), "next_obs of a truncation is not final_obs"
    assert (rollout.obs["players"][2][..., ELAPSED] == 0.0).all()
    r = rollout.rewards["players"]
    ret = targets(algo, rollout)
    torch.testing.assert_close(ret[1], r[1] + GAMMA * 10.0)
    torch.testing.assert_close(ret[0], r[0] + GAMMA * ret[1])
