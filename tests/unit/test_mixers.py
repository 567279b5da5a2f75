"""The mixing networks: monotonic in every agent's value, shapes, and QMIX's options (two-layer hypernetworks, reward
scaling) wired through the config."""

import numpy as np
import pytest
import torch

from marlkit.algorithms.qmix import QMIX, QMIXConfig
from marlkit.collect import Collector
from marlkit.core.config import ConfigError
from marlkit.envs import make
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
    with pytest.raises(ConfigError, match=r"algo\.hypernet_layers"):
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


def test_state_norm_makes_the_mixing_depend_on_the_state_direction_only():
    """With ``state_norm`` the hypernetworks read the layer-normalised state: scaling the state (agents drifting
    away from the origin) does not change Q_tot; without it, it does."""
    torch.manual_seed(0)
    q, state = torch.randn(32, 3), torch.randn(32, 7)
    shifted = state * 3.0 + 2.0  # layer norm removes a common scale and offset
    normed = QMixer(3, 7, embed=8, state_norm=True)
    assert torch.allclose(normed(q, state), normed(q, shifted), rtol=1e-3, atol=1e-3)  # up to layer_norm eps
    raw = QMixer(3, 7, embed=8)
    assert not torch.allclose(raw(q, state), raw(q, shifted), atol=1e-2)


def test_weight_gain_sets_the_initial_effective_mixing_weights():
    """The effective weight dQ_tot/dQ_i at initialisation scales with weight_gain squared (two weight layers);
    spread-v0's sizes (3 agents, a 54-dim state): ~12 at gain 1, ~0.5 at QMIX's default 0.2."""

    def effective(gain):
        torch.manual_seed(0)
        mixer = QMixer(3, 54, embed=32, state_norm=True, weight_gain=gain)
        q = torch.zeros(256, 3, requires_grad=True)
        (grad,) = torch.autograd.grad(mixer(q, torch.randn(256, 54)).sum(), q)
        return grad.mean().item()

    big, small = effective(1.0), effective(0.25)
    assert big > 8.0  # ~ embed * E|w1| * E|w2|: many times a plain sum's 1
    assert small == pytest.approx(big / 16, rel=0.25)
    with pytest.raises(ValueError, match="weight_gain must be positive"):
        QMixer(3, 7, weight_gain=0.0)
    with pytest.raises(ConfigError, match=r"algo\.weight_gain"):
        QMIXConfig(weight_gain=-1.0)


def test_residual_mixer_is_the_sum_plus_the_monotonic_mixer():
    """``residual=True`` adds VDN's sum to the same mixer's output (same seed, same weights), so dQ_tot/dQ_i >= 1."""
    q, state = torch.randn(32, 3, requires_grad=True), torch.randn(32, 7)
    torch.manual_seed(0)
    plain = QMixer(3, 7, embed=8, state_norm=True, weight_gain=0.2)
    torch.manual_seed(0)
    residual = QMixer(3, 7, embed=8, state_norm=True, weight_gain=0.2, residual=True)
    out = residual(q, state)
    assert torch.allclose(out, plain(q, state) + q.sum(-1))
    (grad,) = torch.autograd.grad(out.sum(), q)
    assert (grad >= 1.0 - 1e-6).all()
    algo = QMIX(make("spread-v0", num_envs=2, seed=0), QMIXConfig(residual=True), seed=0)
    assert all(m.residual for m in algo.online["mixers"].values())
