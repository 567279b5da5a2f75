"""Learners keep no step counter: ε, temperatures, warm-ups and learning-rate annealing are functions of the progress
the runner tells them (``set_progress``), however often ``update`` is called."""

import numpy as np
import pytest
import torch

import marlkit
from marlkit.algorithms.dqn import DQN, DQNConfig
from marlkit.algorithms.maddpg import MADDPG, MADDPGConfig
from marlkit.algorithms.ppo import PPO, PPOConfig
from marlkit.algorithms.tabular import TabularConfig, TabularQ
from marlkit.algorithms.teams import Teams, TeamsConfig
from marlkit.collect import Collector
from marlkit.core import Progress
from marlkit.experiment.runner import learn

E = 4  # copies


def _batch(learner, env_id="spread-v0", steps=4, **kwargs):
    env = marlkit.make(env_id, num_envs=E, seed=0, **kwargs)
    return Collector(env, learner, steps, seed=0).collect()[0]


def test_dqn_explores_and_warms_up_by_the_runs_counter_not_by_its_updates():
    env = marlkit.make("spread-v0", num_envs=E, seed=0)
    dqn = DQN(env, DQNConfig(warmup_steps=64, epsilon_steps=100, batch_size=8), seed=0)
    rollout = Collector(env, dqn, 4, seed=0).collect()[0]  # 16 env-steps
    for _ in range(10):  # ten updates told the same progress: still warming up, ε unmoved
        dqn.set_progress(Progress(16, 1000, 16))
        metrics = dqn.update(rollout)
    assert dqn.grad_steps == 0 and "loss/td" not in metrics
    assert dqn.epsilon() == metrics["train/epsilon"] == pytest.approx(1.0 - 0.16 * 0.95)
    dqn.set_progress(Progress(64, 1000, 16))
    assert "loss/td" in dqn.update(rollout) and dqn.grad_steps == 1
    assert dqn.policy().epsilon == dqn.epsilon()  # the snapshot explores as the learner does now
    assert "env_steps" not in dqn.state()


def test_maddpg_warms_up_by_the_runs_counter():
    env = marlkit.make("spread-v0", num_envs=E, seed=0)
    maddpg = MADDPG(env, MADDPGConfig(warmup_steps=64, batch_size=8), seed=0)
    rollout = Collector(env, maddpg, 4, seed=0).collect()[0]
    for _ in range(6):
        maddpg.set_progress(Progress(32, 1000, 16))
        maddpg.update(rollout)
    assert maddpg.grad_steps == 0
    maddpg.set_progress(Progress(64, 1000, 16))
    maddpg.update(rollout)
    assert maddpg.grad_steps == 1 and "env_steps" not in maddpg.state()


def test_tabular_schedules_count_plays_of_one_copy():
    env = marlkit.make("climbing-v0", num_envs=E, seed=0)
    learner = TabularQ(env, TabularConfig(temperature_start=16.0, temperature_decay=0.5), seed=0)
    assert learner.plays == 0 and learner.temperature() == 16.0
    learner.set_progress(Progress(3 * E, 0, E))  # three plays of every copy
    assert learner.plays == 3 and learner.temperature() == 2.0
    eps = TabularQ(env, TabularConfig(exploration="epsilon", epsilon_plays=10), seed=0)
    eps.set_progress(Progress(5 * E, 0, E))
    assert eps.epsilon() == pytest.approx(1.0 - 0.5 * 0.95)
    assert "plays" not in learner.state()


def test_ppo_anneals_its_learning_rate_over_the_budget_trained_before_the_update():
    env = marlkit.make("spread-v0", num_envs=E, seed=0)
    ppo = PPO(env, PPOConfig(lr=1e-3, anneal_lr=True), seed=0)
    ppo.set_progress(Progress(1000, 4000, 200))  # 800 trained before this update
    assert ppo.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * (1 - 800 / 4000))
    ppo.set_progress(Progress(200, 4000, 200))  # the first update: the full rate
    assert ppo.optimizer.param_groups[0]["lr"] == 1e-3
    plain = PPO(env, PPOConfig(lr=1e-3), seed=0)
    plain.set_progress(Progress(1000, 4000, 200))
    assert plain.optimizer.param_groups[0]["lr"] == 1e-3
    ppo.set_progress(Progress(1000, 0, 200))  # no budget: nothing to anneal over
    assert ppo.optimizer.param_groups[0]["lr"] == 1e-3


def test_teams_tell_each_member_its_slices_progress():
    """A member updated on slices of its own rollout_steps is told the progress as if each slice had been
    collected on its own: what it would have been told by a runner collecting that length."""
    env = marlkit.make("tag-v0", num_envs=3, seed=0)
    cfg = TeamsConfig(
        members={
            "p": {"groups": ["adversaries"], "algorithm": "iql", "config": {"rollout_steps": 5, "warmup_steps": 10**6}},
            "r": {"groups": ["good"], "algorithm": "ippo", "config": {"rollout_steps": 10}},
        }
    )
    team = Teams(env, cfg, seed=0)
    rollout = Collector(env, team, 10, seed=0).collect()[0]  # 30 env-steps
    told: dict[str, list[Progress]] = {"p": [], "r": []}
    for name, m in team.members.items():
        m.policy.set_progress = lambda p, name=name, f=m.policy.set_progress: (told[name].append(p), f(p))
    team.set_progress(Progress(90, 600, 30))
    team.update(rollout)
    assert told["p"] == [Progress(90, 600, 30), Progress(75, 600, 15), Progress(90, 600, 15)]
    assert told["r"] == [Progress(90, 600, 30), Progress(90, 600, 30)]
    assert team.members["p"].policy.progress.env_steps == 90  # explores with the run's count until the next update


def test_learn_counts_on_from_where_the_learner_was_told():
    env = marlkit.make("climbing-v0", num_envs=E, seed=0)
    learner = TabularQ(env, TabularConfig(), seed=0)
    collector = Collector(env, learner, 2, seed=0)
    learn(learner, collector, 3)
    assert learner.progress == Progress(24, 24, 8) and learner.plays == 6
    learn(learner, collector, 2)
    assert learner.progress.env_steps == 40


def test_set_progress_takes_a_progress():
    env = marlkit.make("climbing-v0", num_envs=E, seed=0)
    with pytest.raises(TypeError, match=r"set_progress takes a marlkit\.core\.Progress, got float"):
        TabularQ(env, TabularConfig(), seed=0).set_progress(0.5)


def test_collector_is_a_batch_source_whose_state_restores_the_stream():
    from marlkit.core import BatchSource

    env = marlkit.make("spread-v0", num_envs=E, seed=0)
    learner = PPO(env, PPOConfig(), seed=0)
    a = Collector(env, learner, 5, seed=0)
    assert isinstance(a, BatchSource) and a.steps_per_batch == 5 * E
    state = a.state()
    first = a.collect()[0].obs["agents"]
    a.load_state(state)  # every copy reset from the restored generator
    again = marlkit.make("spread-v0", num_envs=E)
    again.np_random = np.random.Generator(np.random.PCG64())
    again.np_random.bit_generator.state = state["env_rng"]
    np.testing.assert_array_equal(a.obs["agents"], again.reset()[0]["agents"])
    assert not torch.equal(first[0], torch.from_numpy(a.obs["agents"]))
