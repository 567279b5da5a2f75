"""The fast paths of the on-policy update compute what the plain ones do: the hand-written backward of a shared MLP
(``nn.mlp._SharedMLP``) against autograd through the layers, the one-node categorical PPO loss
(``ops.categorical_ppo_loss``) against autograd through ``ppo_loss``, and GAE's NumPy recursion against the torch
loop."""

from __future__ import annotations

import copy
from typing import cast

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import marlkit
from marlkit.algorithms.ppo import PPO, PPOConfig
from marlkit.collect import Collector
from marlkit.nn import MLP, Linear
from marlkit.ops import categorical_ppo_loss, clip_grad_norm, gae, ppo_loss


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


@pytest.mark.parametrize(("value_clip", "huber_delta"), [(0.2, 0.0), (0.2, 0.3), (0.0, 10.0)])
def test_categorical_ppo_loss_equals_autograd_through_ppo_loss(value_clip: float, huber_delta: float) -> None:
    """Terms and gradients (logits, values) on a batch where ratios and values land on both sides of their clips,
    exactly on them (ties of min/max and the clamp's edges) and where some samples are inactive."""
    gen = torch.Generator().manual_seed(3)
    shape, n_actions = (40, 3), 5
    logits = torch.randn(*shape, n_actions, generator=gen) * 2
    actions = torch.randint(0, n_actions, shape, generator=gen)
    logp_now = F.log_softmax(logits, -1).gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    old_logp = logp_now + 0.4 * torch.randn(shape, generator=gen)  # ratios well inside and well outside 1 +- 0.2
    old_logp[:5] = logp_now[:5]  # ratio exactly 1: the two surrogate terms tie
    adv = torch.randn(shape, generator=gen)
    value = torch.randn(shape, generator=gen)
    value_old = value + 0.5 * torch.randn(shape, generator=gen)
    value_old[5:10] = value[5:10]  # no change: the clipped and plain value errors tie
    returns = value + torch.randn(shape, generator=gen)
    active = (torch.rand(shape, generator=gen) > 0.2).float()
    kw = dict(clip=0.2, value_clip=value_clip, huber_delta=huber_delta, value_coef=0.7, entropy_coef=0.05)

    def run(fused: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        lg, v = logits.clone().requires_grad_(True), value.clone().requires_grad_(True)
        if fused:
            total, stats = categorical_ppo_loss(lg, actions, old_logp, adv, v, value_old, returns, active, **kw)
        else:
            logp_all = F.log_softmax(lg, -1)
            logp = logp_all.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
            entropy = -(logp_all.exp() * logp_all).sum(-1)
            t = ppo_loss(logp, old_logp, adv, entropy, v, value_old, returns, active, **kw)
            total, stats = t.total, torch.stack([t.policy, t.value, t.entropy, t.approx_kl, t.clip_fraction]).detach()
        (3.0 * total).backward()  # an upstream gradient other than 1
        assert lg.grad is not None and v.grad is not None
        return total.detach(), stats, lg.grad, v.grad

    fast, ref = run(True), run(False)
    assert 0 < float(ref[1][4]) < 1  # some ratios clipped, some not
    for a, b, name in zip(fast, ref, ("total", "stats", "logits grad", "value grad"), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)
    assert fast[2].abs().sum() > 0 and fast[3].abs().sum() > 0


@pytest.mark.parametrize("n_models", [None, 3])
def test_numpy_forward_follows_the_parameters(n_models: int | None) -> None:
    """Acting's NumPy forward equals torch's, and stays equal after an optimiser step (in place), a state-dict load
    (in place) and a parameter given new storage (the cached NumPy views must then be made again)."""
    torch.manual_seed(4)
    mlp = MLP(6, 4, (8, 8), n_models=n_models)
    x = torch.randn(5, 3, 6)

    def check() -> None:
        with torch.no_grad():
            expected = mlp(x).numpy()
        np.testing.assert_allclose(mlp.forward_numpy(x.numpy()), expected, rtol=1e-5, atol=1e-5)

    check()
    opt = torch.optim.SGD(mlp.parameters(), lr=0.5)
    mlp(x).pow(2).sum().backward()
    opt.step()
    check()
    other = MLP(6, 4, (8, 8), n_models=n_models)
    mlp.load_state_dict(other.state_dict())
    check()
    first = cast("Linear", mlp.layers[0])
    first.weight.data = torch.randn_like(first.weight) * 3  # new storage, same Parameter object
    check()
