"""A2C and MADDPG mechanics: one gradient step per A2C update, MADDPG's actions (bounds, masks, the
straight-through Gumbel-softmax) and its critics seeing every group's actions."""

import numpy as np
import torch

import marlkit
from marlkit.algorithms.a2c import A2C, A2CConfig
from marlkit.algorithms.maddpg import MADDPG, MADDPGConfig
from marlkit.collect import Collector


def _adam_steps(optimizer: torch.optim.Optimizer) -> set[float]:
    return {float(s["step"]) for s in optimizer.state.values()}


def test_a2c_takes_one_gradient_step_per_rollout():
    env = marlkit.make("spread-v0", num_envs=4, seed=0)
    algo = A2C(env, A2CConfig(centralised_critic=True), seed=0)
    collector = Collector(env, algo, algo.config.rollout_steps)
    for k in (1, 2, 3):
        rollout, _ = collector.collect()
        metrics = algo.update(rollout)
        assert _adam_steps(algo.optimizer) == {float(k)}
    assert {"loss/actor", "loss/critic", "loss/entropy"} <= set(metrics)


def test_maddpg_continuous_actions_stay_in_bounds():
    env = marlkit.make("spread-v0", num_envs=8, seed=0, continuous_actions=True)
    algo = MADDPG(env, MADDPGConfig(noise_std=1.0), seed=0)
    obs, info = env.reset(seed=0)
    space = env.group_action_space("agents")
    for explore in (True, False):
        a, _ = algo.act(obs, env.state(), info, explore=explore)
        assert a["agents"].shape == (8, 3, *space.shape)
        assert (a["agents"] >= space.low).all() and (a["agents"] <= space.high).all()


def test_maddpg_never_picks_masked_actions():
    env = marlkit.make("foraging-v0", num_envs=16, seed=0)
    algo = MADDPG(env, MADDPGConfig(), seed=0)
    obs, info = env.reset(seed=0)
    assert "action_mask" in info
    for _ in range(20):
        actions, _ = algo.act(obs, env.state(), info, explore=True)
        for g, a in actions.items():
            assert np.take_along_axis(info["action_mask"][g], a[..., None], -1).all()
        obs, _, _, _, info = env.step(actions)


def test_gumbel_softmax_is_one_hot_forward_with_a_gradient():
    env = marlkit.make("penalty-v0", num_envs=1, seed=0)
    algo = MADDPG(env, MADDPGConfig(), seed=0)
    obs = torch.randn(32, 2, env.group_observation_space("players").shape[0])
    mask = torch.tensor([True, False, True]).expand(32, 2, 3)
    action, _ = algo._policy(algo.online["actors"], "players", obs, mask)
    hard = action.detach().round()  # hard + soft - soft: one-hot to float rounding
    torch.testing.assert_close(action.detach(), hard, rtol=0, atol=1e-6)
    assert torch.equal(hard.sum(-1), torch.ones(32, 2)) and not hard[..., 1].any()  # the masked action never
    action[..., 0].sum().backward()
    grads = [p.grad for p in algo.online["actors"].parameters()]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)


def test_maddpg_critics_see_every_groups_actions():
    env = marlkit.make("tag-v0", num_envs=1, seed=0)
    algo = MADDPG(env, MADDPGConfig(), seed=0)
    state_dim = env.state_space.shape[0]
    joint = sum(len(ids) * env.group_action_space(g).n for g, ids in env.groups.items())
    for g, critic in algo.online["critics"].items():
        ids = len(env.groups[g]) if len(env.groups[g]) > 1 else 0
        assert critic.net.in_dim == state_dim + joint + ids


def test_separate_networks_load_a_checkpoint_with_one_shared_log_std():
    """Agents with their own networks have a log-std each; a state dict holding one ``(act_dim,)`` vector (the
    layout before that) loads with every agent starting from it, and a wrong width is still refused."""
    import pytest
    import torch
    from gymnasium import spaces

    from marlkit.algorithms.policy_nets import GroupNets
    from marlkit.algorithms.ppo import PPOConfig

    cfg = PPOConfig(share_parameters=False)
    net = GroupNets(4, 4, 3, spaces.Box(-1.0, 1.0, (2,)), cfg)
    state = net.state_dict()
    assert state["log_std"].shape == (3, 2)
    state["log_std"] = torch.tensor([0.1, -0.7])
    net.load_state_dict(state)
    assert torch.equal(net.log_std.detach(), torch.tensor([[0.1, -0.7]] * 3))
    state["log_std"] = torch.zeros(3)
    with pytest.raises(RuntimeError, match="log_std"):
        net.load_state_dict(state)
