"""The fast paths of the on-policy update compute what the plain ones do: the hand-written backward of a shared MLP
(``nn.mlp._SharedMLP``) against autograd through the layers, and GAE's NumPy recursion against the torch loop."""

from __future__ import annotations

import copy

import pytest
import torch

import marlkit
from marlkit.algorithms.ppo import PPO, PPOConfig
from marlkit.collect import Collector
from marlkit.nn import MLP
from marlkit.ops import clip_grad_norm, gae


def _grads(mlp: MLP, x: torch.Tensor, shared: bool) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
    mlp.shared = shared  # False: the layer-by-layer forward, differentiated by autograd
    x = x.detach().requires_grad_(True)
    mlp.zero_grad()
    y = mlp(x)
    (y.sin() * torch.arange(y.shape[-1], dtype=y.dtype)).sum().backward()  # a loss with a different weight per output
    assert x.grad is not None
    return y.detach(), [p.grad.clone() for p in mlp.parameters() if p.grad is not None], x.grad


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_shared_mlp_backward_equals_autograd(activation: str) -> None:
    torch.manual_seed(0)
    mlp = MLP(7, 3, (16, 8), activation=activation)
    x = torch.randn(5, 4, 7)
    y_fast, g_fast, gx_fast = _grads(mlp, x, shared=True)
    y_ref, g_ref, gx_ref = _grads(mlp, x, shared=False)
    assert len(g_fast) == len(g_ref) == 6  # a weight and a bias per layer, none missing
    torch.testing.assert_close(y_fast, y_ref, rtol=0, atol=1e-6)
    for fast, ref in zip(g_fast, g_ref, strict=True):
        torch.testing.assert_close(fast, ref, rtol=0, atol=1e-6)
    torch.testing.assert_close(gx_fast, gx_ref, rtol=0, atol=1e-6)


def test_ppo_update_with_the_hand_written_backward_equals_autograd() -> None:
    """Two learners from the same seed, one through autograd layer by layer: the same parameters after an update."""
    cfg = PPOConfig(centralised_critic=True, rollout_steps=8, epochs=2, minibatches=2)
    learners, initial = [], None
    for shared in (True, False):
        torch.manual_seed(0)
        env = marlkit.make("spread-v0", num_envs=4, seed=0)
        learner = PPO(env, cfg, seed=0)
        initial = [p.detach().clone() for p in learner.parameters()]
        for net in learner.nets.values():
            net.actor.shared = net.critic.shared = shared
        rollout, _ = Collector(env, learner, cfg.rollout_steps, seed=0).collect()
        learner.update(rollout)
        learners.append(learner)
    fast, ref = (dict(learner.named_parameters()) for learner in learners)
    assert fast.keys() == ref.keys()
    for name, p in fast.items():
        torch.testing.assert_close(p, ref[name], rtol=0, atol=1e-6, msg=name)
    assert initial is not None
    assert any(not torch.equal(p, q) for p, q in zip(fast.values(), initial, strict=True))  # the update moved them


def test_gae_numpy_recursion_equals_the_definition() -> None:
    """The NumPy recursion against the formula evaluated element by element in float64."""
    gen = torch.Generator().manual_seed(1)
    shape = (12, 3, 2)
    rewards, values, next_values = (torch.randn(shape, generator=gen) for _ in range(3))
    terminated = torch.rand(shape, generator=gen) < 0.1
    truncated = torch.rand(shape, generator=gen) < 0.2
    adv, returns = gae(rewards, values, next_values, terminated, truncated, 0.99, 0.95)
    r, v, nv = rewards.double(), values.double(), next_values.double()
    expected = torch.zeros(shape, dtype=torch.float64)
    following = torch.zeros(shape[1:], dtype=torch.float64)
    for t in range(shape[0] - 1, -1, -1):
        delta = r[t] + 0.99 * (~terminated[t]).double() * nv[t] - v[t]
        following = delta + 0.99 * 0.95 * (~(terminated[t] | truncated[t])).double() * following
        expected[t] = following
    torch.testing.assert_close(adv.double(), expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(returns.double(), expected + v, rtol=0, atol=1e-5)


@pytest.mark.parametrize("max_norm", [0.5, 1e3])  # clipping and not
def test_clip_grad_norm_equals_torch(max_norm: float) -> None:
    torch.manual_seed(2)
    net = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    (net(torch.randn(6, 5)) ** 2).sum().backward()
    twin = copy.deepcopy(net)  # the same gradients, clipped by torch
    for a, b in zip(twin.parameters(), net.parameters(), strict=True):
        a.grad = b.grad.clone()
    unused = torch.nn.Parameter(torch.ones(3))  # no gradient: left out, as torch leaves it out
    ours = clip_grad_norm([*net.parameters(), unused], max_norm)
    theirs = torch.nn.utils.clip_grad_norm_(twin.parameters(), max_norm, foreach=True)
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=0)
    assert (ours > max_norm) == (max_norm == 0.5)  # the small bound clips, the large one does not
    for a, b in zip(net.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-6, atol=1e-7)
    assert unused.grad is None
