"""The rollout helpers of marlkit.population.behaviour: SND of actor-critic policies evaluated on shared
observations, sub-task counts of a random team, and the errors for what cannot be measured."""

import numpy as np
import pytest
import torch

import marlkit
from marlkit.algorithms.ppo import PPO, PPOConfig
from marlkit.algorithms.team_policies import RandomPolicy
from marlkit.core import PolicySpaces
from marlkit.metrics import system_neural_diversity
from marlkit.population.behaviour import behaviour_observations, role_counts, role_report, snd_of_policy


def test_snd_of_shared_weights_is_zero_without_ids_and_positive_with_them() -> None:
    env = marlkit.make("spread-v0", num_envs=8)
    torch.manual_seed(0)
    no_ids = PPO(env, PPOConfig(agent_id=False), seed=0).policy(seed=0)
    assert snd_of_policy(env, no_ids, steps=10, seed=0) == pytest.approx(0.0, abs=1e-7)
    torch.manual_seed(0)
    with_ids = PPO(env, PPOConfig(), seed=0).policy(seed=0)  # the same network told which agent asks
    assert snd_of_policy(env, with_ids, steps=10, seed=0) > 1e-3


def test_snd_evaluates_every_agent_on_the_same_observations() -> None:
    """SND of a team of separate networks against the learner's own torch forward pass of each agent's network on
    the observations of the same rollout."""
    env = marlkit.make("spread-v0", num_envs=8)
    torch.manual_seed(0)
    learner = PPO(env, PPOConfig(share_parameters=False), seed=0)
    with torch.no_grad():  # networks of their own that differ visibly
        for p in learner.nets["agents"].actor.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    snd = snd_of_policy(env, learner.policy(seed=0), steps=10, seed=0)
    obs, _ = behaviour_observations(env, learner.policy(seed=0), 10, seed=0)
    net = learner.nets["agents"]
    with torch.no_grad():
        per_agent = [
            torch.softmax(net.dist_params(torch.as_tensor(obs)[:, None, :].expand(-1, 3, -1), None), -1)[:, k]
            for k in range(3)
        ]
    expected = system_neural_diversity(probs=torch.stack(per_agent).numpy())
    assert snd > 0.1
    assert snd == pytest.approx(expected, rel=1e-4)


def test_snd_of_gaussian_policies_reads_the_log_std() -> None:
    env = marlkit.make("spread-v0", num_envs=4, continuous_actions=True)
    torch.manual_seed(0)
    learner = PPO(env, PPOConfig(agent_id=False), seed=0)
    assert snd_of_policy(env, learner.policy(seed=0), steps=5, seed=0) == pytest.approx(0.0, abs=1e-7)


def test_role_counts_of_a_random_team_on_spread() -> None:
    env = marlkit.make("spread-v0", num_envs=50)
    counts = role_counts(env, RandomPolicy(PolicySpaces.from_env(env), 0), 200, seed=0, explore=True)
    assert counts.shape == (200, 3, 3)
    np.testing.assert_array_equal(counts.sum((1, 2)), 3)  # every agent ends nearest to one landmark
    report = role_report(counts)
    # three independent uniform picks would give 2/9 + 2/3 * H(2/3, 1/3) / log2 3 = 0.61; positions are not quite
    assert 0.5 < report.specialisation < 0.7
    assert report.specialisation_pooled < 0.05


def test_helpers_refuse_what_they_cannot_measure() -> None:
    env = marlkit.make("tag-v0", num_envs=2)
    policy = RandomPolicy(PolicySpaces.from_env(env), 0)
    with pytest.raises(TypeError, match="no sub-tasks"):
        role_counts(env, policy, 4, seed=0)
    with pytest.raises(TypeError, match="action_distributions"):
        snd_of_policy(env, policy, group="adversaries")  # type: ignore[arg-type]
