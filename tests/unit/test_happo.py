"""HAPPO's sequential update: the correction factor on hand-built numbers, the factor each agent's update actually
receives, the update order drawn from the seed, and agents that do not move during another agent's update."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import marlkit
from marlkit.algorithms.happo import HAPPO, HAPPOConfig, correction_factor
from marlkit.algorithms.registry import algo_config
from marlkit.collect import Collector


def test_correction_factor_multiplies_the_ratio_of_active_agents():
    factor = torch.tensor([1.0, 2.0, 0.5, 3.0])
    new = torch.log(torch.tensor([0.5, 0.2, 0.9, 0.1]))
    old = torch.log(torch.tensor([0.25, 0.4, 0.3, 0.7]))
    active = torch.tensor([1.0, 1.0, 1.0, 0.0])  # the last agent is dead: its actions change nothing
    out = correction_factor(factor, new, old, active)
    np.testing.assert_allclose(out.numpy(), [2.0, 1.0, 1.5, 3.0], rtol=1e-6)
    assert not out.requires_grad


def _happo(env_id: str, seed: int, **algo) -> tuple[HAPPO, Collector]:
    env = marlkit.make(env_id, num_envs=4, seed=seed)
    cfg = algo_config("happo", {"rollout_steps": 8, "epochs": 2, "minibatches": 2, **algo})
    learner = HAPPO(env, cfg, seed=seed)
    return learner, Collector(env, learner, cfg.rollout_steps, seed=seed, store_state=True)


def test_every_agent_gets_the_ratios_of_the_agents_updated_before_it(monkeypatch):
    torch.set_num_threads(1)
    learner, collector = _happo("spread-v0", 0)
    calls: list[tuple[int, dict[str, torch.Tensor], torch.Tensor]] = []
    step = HAPPO._actor_step

    def record(self, k, s, factor, batch):
        calls.append((k, {key: v.clone() for key, v in s.items()}, factor.clone()))
        return step(self, k, s, factor, batch)

    monkeypatch.setattr(HAPPO, "_actor_step", record)
    learner.update(collector.collect()[0])
    order = [learner.agent_names.index(a) for a in learner.update_order]
    assert sorted(order) == [0, 1, 2] and [k for k, _, _ in calls] == [k for k in order for _ in range(2 * 2)]
    # each agent's policy after the update (later phases leave it alone), on the minibatch another agent trained on
    net = learner.nets["agents"]
    for k, s, factor in calls:
        expected = torch.ones(len(factor))
        for earlier in order[: order.index(k)]:
            with torch.no_grad():
                logp, _ = net.log_prob_entropy(net.dist_params(s["obs"], s.get("mask")), s["actions"], entropy=False)
            expected = expected * torch.exp(logp[:, earlier] - s["logp"][:, earlier])
        torch.testing.assert_close(factor, expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(calls[-1][2], torch.ones(len(calls[-1][2]))), "the last agent's factor moved off 1"


def test_an_agents_update_leaves_the_other_agents_policies_alone(monkeypatch):
    torch.set_num_threads(1)
    learner, collector = _happo("mamujoco-halfcheetah-2x3-v0", 1)
    net = learner.nets["agents"]
    snapshots = []
    step = HAPPO._actor_step

    def record(self, k, s, factor, batch):
        snapshots.append((k, [p.detach().clone() for p in self._actor_parameters("agents")]))
        return step(self, k, s, factor, batch)

    monkeypatch.setattr(HAPPO, "_actor_step", record)
    learner.update(collector.collect()[0])
    first, second = (learner.agent_names.index(a) for a in learner.update_order)
    before_second = next(params for k, params in snapshots if k == second)
    after = [p.detach() for p in learner._actor_parameters("agents")]
    for p0, p1 in zip(before_second, after):  # while the second agent learned, only its rows moved
        torch.testing.assert_close(p0[first], p1[first], rtol=0, atol=0)
        assert not torch.equal(p0[second], p1[second])
    assert net.log_std.shape == (2, 3), "each agent has its own log-std"


def test_the_update_order_is_a_permutation_drawn_from_the_seed():
    torch.set_num_threads(1)

    def orders(seed: int, **algo) -> list[tuple[str, ...]]:
        learner, collector = _happo("spread-v0", seed, epochs=1, **algo)
        out = []
        for _ in range(8):
            learner.update(collector.collect()[0])
            out.append(learner.update_order)
        return out

    a, b, c = orders(0), orders(0), orders(1)
    assert a == b, "the same seed draws the same orders"
    assert all(sorted(o) == ["agent_0", "agent_1", "agent_2"] for o in a + c)
    assert len(set(a)) > 1, "a fresh permutation every update"
    assert a != c, "another seed, other orders"
    assert set(orders(0, fixed_order=True)) == {("agent_0", "agent_1", "agent_2")}


def test_happo_needs_its_own_actors_and_a_centralised_critic():
    from marlkit.core.config import ConfigError

    with pytest.raises(ConfigError, match="share_parameters"):
        algo_config("happo", {"share_parameters": True})
    with pytest.raises(ConfigError, match="centralised_critic"):
        algo_config("happo", {"centralised_critic": False})
    assert isinstance(algo_config("happo"), HAPPOConfig) and math.isfinite(algo_config("happo").lr)
