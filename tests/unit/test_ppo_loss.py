"""PPO's loss on numbers worked out by hand: the clipped surrogate on both sides of the clip, the value loss (Huber,
squared, clipped), the entropy bonus and its coefficient, the active mask; and PPO passing its config to it."""

import math

import pytest
import torch

import marlkit
from marlkit.algorithms.ppo import PPO, PPOConfig
from marlkit.collect import Collector
from marlkit.ops import ppo_loss, value_error

CLIP = 0.2
#: ratio, advantage: above the clip with A > 0, below it with A > 0, below with A < 0, above with A < 0, inside.
RATIOS = [1.5, 0.5, 0.5, 1.5, 1.1]
ADVANTAGES = [1.0, 1.0, -1.0, -1.0, 2.0]


def t(x):
    return torch.tensor(x, dtype=torch.float64)


def loss(logp=None, old_logp=None, adv=None, entropy=None, value=None, value_old=None, returns=None, active=None, **kw):
    """``ppo_loss`` on five samples; unspecified inputs are neutral (no policy, value or entropy term)."""
    n = 5
    zeros = t([0.0] * n)
    kw = {"clip": CLIP, "value_clip": 0.0, "huber_delta": 0.0, "value_coef": 1.0, "entropy_coef": 0.0, **kw}
    return ppo_loss(
        zeros if logp is None else logp,
        zeros if old_logp is None else old_logp,
        zeros if adv is None else adv,
        zeros if entropy is None else entropy,
        zeros if value is None else value,
        zeros if value_old is None else value_old,
        zeros if returns is None else returns,
        t([1.0] * n) if active is None else active,
        **kw,
    )


def test_the_ratio_is_clipped_on_both_sides_in_the_direction_the_advantage_favours():
    logp = t([math.log(r) for r in RATIOS]).requires_grad_()
    out = loss(logp=logp, old_logp=t([0.0] * 5), adv=t(ADVANTAGES))
    # min(r A, clip(r) A): 1.5 -> 1.2 (A > 0, above), 0.5 stays (A > 0, below), 0.5 -> 0.8 (A < 0, below),
    # 1.5 stays (A < 0, above), 1.1 inside.
    surrogate = [1.2 * 1.0, 0.5 * 1.0, 0.8 * -1.0, 1.5 * -1.0, 1.1 * 2.0]
    assert out.policy.item() == pytest.approx(-sum(surrogate) / 5)
    assert out.total.item() == pytest.approx(out.policy.item())
    # a clipped sample has no gradient; an unclipped one has d(-r A / n)/d logp = -r A / n
    (grad,) = torch.autograd.grad(out.total, logp)
    expected = [0.0, -0.5 * 1.0 / 5, 0.0, 1.5 / 5, -1.1 * 2.0 / 5]
    assert grad.tolist() == pytest.approx(expected)
    assert out.clip_fraction.item() == pytest.approx(4 / 5)
    assert out.approx_kl.item() == pytest.approx(sum(r - 1 - math.log(r) for r in RATIOS) / 5)


def test_a_wider_clip_lets_the_ratio_through():
    logp = t([math.log(r) for r in RATIOS])
    out = loss(logp=logp, adv=t(ADVANTAGES), clip=1.0)  # [0, 2] contains every ratio
    assert out.policy.item() == pytest.approx(-sum(r * a for r, a in zip(RATIOS, ADVANTAGES)) / 5)
    assert out.clip_fraction.item() == 0.0


def test_the_entropy_bonus_is_subtracted_with_its_coefficient():
    entropy = t([1.0, 2.0, 3.0, 4.0, 5.0]).requires_grad_()
    without = loss(entropy=entropy, entropy_coef=0.0)
    with_bonus = loss(entropy=entropy, entropy_coef=0.1)
    assert without.entropy.item() == with_bonus.entropy.item() == pytest.approx(3.0)
    assert without.total.item() == 0.0
    assert with_bonus.total.item() == pytest.approx(-0.1 * 3.0)
    (grad,) = torch.autograd.grad(with_bonus.total, entropy)  # minimising the loss raises the entropy
    assert grad.tolist() == pytest.approx([-0.1 / 5] * 5)


def test_value_loss_squared_huber_and_its_coefficient():
    value, returns = t([0.0, 1.0, 0.0, 2.0, -1.0]), t([3.0, 1.5, 0.0, 2.0, 1.0])
    squared = [0.5 * 3.0**2, 0.5 * 0.5**2, 0.0, 0.0, 0.5 * 2.0**2]
    huber = [1.0 * (3.0 - 0.5), 0.5 * 0.5**2, 0.0, 0.0, 1.0 * (2.0 - 0.5)]  # delta = 1: linear beyond |error| 1
    assert value_error(value, returns, 0.0).tolist() == pytest.approx(squared)
    assert value_error(value, returns, 1.0).tolist() == pytest.approx(huber)
    out = loss(value=value, returns=returns, huber_delta=1.0, value_coef=0.5)
    assert out.value.item() == pytest.approx(sum(huber) / 5)
    assert out.total.item() == pytest.approx(0.5 * sum(huber) / 5)


def test_value_clipping_takes_the_worse_of_the_clipped_and_unclipped_errors():
    # value_old 0, clip 0.5. Sample 0: moved to 1 toward the target 2 -> clipped to 0.5, error 0.5 * 1.5^2 (worse).
    # Sample 1: moved to -1 toward the target 0 -> clipped to -0.5 (error 0.125); the unclipped 0.5 is worse.
    # Sample 2: moved by 0.25, inside the clip. Sample 3: moved to 3 past the target 2 -> clipped to 0.5 (error 1.125)
    # is worse than the unclipped 0.5.
    value, returns = t([1.0, -1.0, 0.25, 3.0, 0.0]).requires_grad_(), t([2.0, 0.0, 1.0, 2.0, 0.0])
    out = loss(value=value, value_old=t([0.0] * 5), returns=returns, value_clip=0.5)
    errors = [0.5 * 1.5**2, 0.5 * 1.0**2, 0.5 * 0.75**2, 0.5 * 1.5**2, 0.0]
    assert out.value.item() == pytest.approx(sum(errors) / 5)
    (grad,) = torch.autograd.grad(out.total, value)  # where the clipped error wins, the value gets no gradient
    assert grad.tolist() == pytest.approx([0.0, -1.0 / 5, -0.75 / 5, 0.0, 0.0])


def test_inactive_samples_count_for_nothing():
    logp = t([math.log(r) for r in RATIOS])
    active = t([1.0, 1.0, 0.0, 0.0, 0.0])
    out = loss(
        logp=logp,
        adv=t(ADVANTAGES),
        entropy=t([1.0, 3.0, 100.0, 100.0, 100.0]),
        value=t([1.0, 1.0, 50.0, 50.0, 50.0]),
        active=active,
        entropy_coef=0.1,
    )
    assert out.policy.item() == pytest.approx(-(1.2 + 0.5) / 2)
    assert out.entropy.item() == pytest.approx(2.0)
    assert out.value.item() == pytest.approx(0.5)
    assert out.clip_fraction.item() == pytest.approx(1.0)
    assert out.total.item() == pytest.approx(-(1.7) / 2 + 0.5 - 0.1 * 2.0)


@pytest.mark.parametrize("fused", [True, False])  # the one-node categorical loss and ppo_loss itself
def test_ppo_passes_its_config_to_the_loss(monkeypatch, fused):
    import marlkit.algorithms.ppo as ppo_module

    cfg = PPOConfig(
        rollout_steps=4,
        epochs=1,
        minibatches=1,
        clip=0.3,
        value_clip=0.7,
        huber_delta=2.5,
        value_coef=0.4,
        entropy_coef=0.06,
    )
    env = marlkit.make("climbing-v0", num_envs=2, seed=0)
    algo = PPO(env, cfg, seed=0)
    algo.fused_loss = fused
    seen = []
    target = ppo_module.categorical_ppo_loss if fused else ppo_loss

    def spy(*args, **kwargs):
        seen.append(kwargs)
        return target(*args, **kwargs)

    monkeypatch.setattr(ppo_module, "categorical_ppo_loss" if fused else "ppo_loss", spy)
    rollout, _ = Collector(env, algo, cfg.rollout_steps, seed=0).collect()
    algo.update(rollout)
    assert seen == [{"clip": 0.3, "value_clip": 0.7, "huber_delta": 2.5, "value_coef": 0.4, "entropy_coef": 0.06}]


def test_the_entropy_bonus_raises_the_entropy_of_a_ppo_update():
    # The same rollout, the same seed: an update with a large entropy coefficient leaves a more uniform policy than
    # one without (PPO's own wiring of the bonus, end to end).
    env = marlkit.make("climbing-v0", num_envs=8, seed=0)
    entropies = []
    for coef in (0.0, 1.0):
        cfg = PPOConfig(rollout_steps=8, epochs=4, minibatches=1, entropy_coef=coef, lr=0.05)
        torch.manual_seed(0)  # the same initial networks
        algo = PPO(env, cfg, seed=0)
        rollout, _ = Collector(env, algo, cfg.rollout_steps, seed=0).collect()
        algo.update(rollout)
        obs = rollout.obs["players"][0]
        with torch.no_grad():
            _, entropy = algo.nets["players"].log_prob_entropy(
                algo.nets["players"].dist_params(obs, None), rollout.actions["players"][0]
            )
        entropies.append(entropy.mean().item())
    assert entropies[1] > entropies[0] + 0.2
