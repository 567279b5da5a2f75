"""The mixing networks: monotonic in every agent's value, shapes, and QMIX's options (two-layer hypernetworks, reward
scaling) wired through the config."""

import numpy as np
import pytest
import torch

from marlkit.algorithms.qmix import QMIX, QMIXConfig
from marlkit.collect import Collector
from marlkit.envs import make
from marlkit.experiment.config import ConfigError
from marlkit.nn import QMixer, VDNMixer


@pytest.mark.parametrize("layers", [1, 2])
def test_qmixer_is_monotonic_in_every_agent_value(layers):
    torch.manual_seed(0)
    mixer = QMixer(n_agents=3, state_dim=7, embed=8, hypernet_layers=layers, hypernet_embed=16)
    q = torch.randn(64, 3, requires_grad=True)
    state = torch.randn(64, 7)
    out = mixer(q, state)
    assert out.shape == (64,)
    (grad,) = torch.autograd.grad(out.sum(), q)
    assert (grad >= 0).all()  # dQ_tot/dQ_i >= 0: the greedy joint action is every agent's greedy action
    assert (grad > 0).any()


def test_qmixer_rejects_other_hypernet_depths():
    with pytest.raises(ValueError, match="hypernet_layers must be 1 or 2"):
        QMixer(2, 4, hypernet_layers=3)
    with pytest.raises(ConfigError, match="algo.hypernet_layers"):
        QMIXConfig(hypernet_layers=0)


def test_vdn_mixer_is_the_sum():
    q = torch.tensor([[1.0, 2.0, -4.0]])
    assert VDNMixer()(q).item() == -1.0


def test_scale_rewards_divides_targets_by_the_running_reward_std():
    """With scale_rewards the n-step returns in the TD target are the raw ones divided by the running std of the
    per-step rewards; the statistics are part of the module's state (so of checkpoints)."""
    env = make("spread-v0", num_envs=4, seed=0)
    algo = QMIX(env, QMIXConfig(scale_rewards=True, warmup_steps=10**9), seed=0)
    col = Collector(env, algo, 4, seed=0)
    rewards = []
    for _ in range(10):
        rollout, _ = col.collect()
        rewards.append(rollout.rewards["agents"].numpy().ravel())
        algo.update(rollout)
    raw = np.concatenate(rewards)
    std = algo.reward_norm.std().item()
    # An exponential average over 10 updates, debiased: close to, not exactly, the plain std of all rewards.
    assert std == pytest.approx(raw.std(), rel=0.2)
    assert "reward_norm.mean" in algo.state_dict()
