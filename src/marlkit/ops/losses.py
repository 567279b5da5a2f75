"""Losses as pure functions of tensors, so each term can be checked on numbers worked out by hand.

Every per-sample tensor has the same shape (any batch shape); ``active`` is 1 for samples that count and 0 for
samples that do not (dead agents, padding), and means are taken over the active samples only.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


class PPOLoss(NamedTuple):
    """The PPO objective to minimise (``total``) and its terms, each a mean over the active samples."""

    total: Tensor
    """``policy + value_coef * value - entropy_coef * entropy``: what the optimiser minimises."""
    policy: Tensor
    """Minus the clipped surrogate objective."""
    value: Tensor
    """The (clipped, Huber or squared) value error."""
    entropy: Tensor
    """The policy's mean entropy (the bonus, before its coefficient)."""
    approx_kl: Tensor
    """Schulman's k3 estimate of KL(old || new), without gradient."""
    clip_fraction: Tensor
    """Share of samples whose ratio left ``[1 - clip, 1 + clip]``, without gradient."""


def value_error(pred: Tensor, target: Tensor, huber_delta: float) -> Tensor:
    """Per-sample Huber loss with threshold ``huber_delta``, or half the squared error when it is 0."""
    if huber_delta > 0:
        return F.huber_loss(pred, target, reduction="none", delta=huber_delta)
    return 0.5 * (pred - target) ** 2


def ppo_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    entropy: Tensor,
    value: Tensor,
    value_old: Tensor,
    returns: Tensor,
    active: Tensor,
    *,
    clip: float,
    value_clip: float,
    huber_delta: float,
    value_coef: float,
    entropy_coef: float,
) -> PPOLoss:
    """PPO's loss (Schulman et al. 2017, eqs. 7 and 9) with the value clipping of the MAPPO paper.

    With ``ratio = exp(logp - old_logp)`` the policy term is ``-min(ratio * A, clip(ratio, 1 - clip, 1 + clip) * A)``,
    so a sample stops pulling once its ratio has moved past the clip in the direction its advantage favours. The
    value term is ``max(err(value), err(value_old + clip(value - value_old, ±value_clip)))`` against ``returns``
    (``value_clip = 0``: ``err(value)`` alone), where ``err`` is ``value_error``.
    """
    count = active.sum().clamp(min=1.0)
    log_ratio = logp - old_logp
    ratio = log_ratio.exp()
    surrogate = torch.min(ratio * advantages, ratio.clamp(1 - clip, 1 + clip) * advantages)
    policy_loss = -(surrogate * active).sum() / count
    entropy_mean = (entropy * active).sum() / count

    value_loss = value_error(value, returns, huber_delta)
    if value_clip > 0:
        clipped = value_old + (value - value_old).clamp(-value_clip, value_clip)
        value_loss = torch.max(value_loss, value_error(clipped, returns, huber_delta))
    value_loss = (value_loss * active).sum() / count

    total = policy_loss + value_coef * value_loss - entropy_coef * entropy_mean
    with torch.no_grad():
        change = ratio - 1
        approx_kl = ((change - log_ratio) * active).sum() / count  # Schulman's k3 estimator
        clip_fraction = ((change.abs() > clip).float() * active).sum() / count
    return PPOLoss(total, policy_loss, value_loss, entropy_mean, approx_kl, clip_fraction)


def _value_error_and_slope(huber_delta: float) -> tuple[Any, Any]:
    """``value_error`` on float32 NumPy arrays and its derivative in the prediction."""
    if huber_delta > 0:

        def err(x: np.ndarray) -> np.ndarray:
            ax = np.abs(x)
            return np.where(ax < huber_delta, 0.5 * x * x, huber_delta * (ax - 0.5 * huber_delta))

        return err, lambda x: np.clip(x, -huber_delta, huber_delta)
    return (lambda x: 0.5 * x * x), (lambda x: x)


class _CategoricalPPO(torch.autograd.Function):
    """``ppo_loss`` of a categorical policy from its logits as one autograd node, computed in NumPy: on the few
    thousand samples of a minibatch each NumPy op costs about a microsecond, a torch op several, and the ~60
    elementwise ops of the loss and its gradient were most of a small network's update. The forward works out the
    loss, its terms and its gradient in the logits and the values at once; the backward scales that gradient.

    The gradient is autograd's through ``ppo_loss``: ``min``/``max`` pass it to the branch they pick and split it in
    half on a tie, ``clamp`` passes it on its closed interval. For the surrogate this makes the slope in ``logp``
    ``-A * ratio`` wherever ``ratio * A <= clamp(ratio) * A`` or the ratio is inside the clip range, else 0 (a tie
    outside the range has ``A = 0``)."""

    @staticmethod
    def forward(
        ctx: Any,
        logits: Tensor,
        value: Tensor,
        actions: Tensor,
        old_logp: Tensor,
        adv: Tensor,
        value_old: Tensor,
        returns: Tensor,
        active: Tensor,
        coefs: tuple[float, float, float, float, float],
    ) -> tuple[Tensor, Tensor]:
        clip, value_clip, huber_delta, value_coef, entropy_coef = coefs
        # Actions along axis 0, samples along axis 1: reductions over 5 actions are then 5 rows added elementwise.
        lg = np.ascontiguousarray(logits.detach().numpy().reshape(-1, logits.shape[-1]).T)
        a = actions.numpy().reshape(-1)
        old, A, v, v_old, ret, act = (
            x.detach().numpy().reshape(-1) for x in (old_logp, adv, value, value_old, returns, active)
        )
        w = act / np.float32(max(float(act.sum()), 1.0))  # each active sample's weight in a mean
        logp_all = lg - lg.max(0)
        probs = np.exp(logp_all)
        total_p = probs.sum(0)
        logp_all -= np.log(total_p)
        probs /= total_p
        taken = (a, np.arange(lg.shape[1]))
        log_ratio = logp_all[taken] - old
        ratio = np.exp(log_ratio)
        s1, s2 = ratio * A, np.clip(ratio, 1 - clip, 1 + clip) * A
        policy = -float(np.minimum(s1, s2) @ w)
        p_logp = probs * logp_all
        entropy = float(-p_logp.sum(0) @ w)
        # d loss / d log p(every action): the entropy bonus's -entropy_coef * d(-sum p log p) = c (p log p + p),
        # plus the surrogate's slope at the taken action; then through the log-softmax.
        g_logp_all = (p_logp + probs) * (entropy_coef * w)
        in_range = (ratio >= np.float32(1 - clip)) & (ratio <= np.float32(1 + clip))
        g_logp_all[taken] -= (w * A * ratio) * ((s1 <= s2) | in_range)
        g_logits = g_logp_all - probs * g_logp_all.sum(0)
        err, slope = _value_error_and_slope(huber_delta)
        x1 = v - ret
        e1 = err(x1)
        if value_clip > 0:
            delta = v - v_old
            x2 = v_old + np.clip(delta, -value_clip, value_clip) - ret
            e2 = err(x2)
            value_loss = float(np.maximum(e1, e2) @ w)
            d1, d2 = slope(x1), slope(x2) * ((delta >= -value_clip) & (delta <= value_clip))
            g_v = np.where(e1 > e2, d1, np.where(e2 > e1, d2, 0.5 * (d1 + d2)))
        else:
            value_loss = float(e1 @ w)
            g_v = slope(x1)
        change = ratio - 1
        stats = torch.tensor(
            [policy, value_loss, entropy, float((change - log_ratio) @ w), float((np.abs(change) > clip) @ w)]
        )  # policy, value, entropy, approx_kl (Schulman's k3), clip_fraction
        ctx.save_for_backward(
            torch.from_numpy(g_logits.T).reshape(logits.shape),
            torch.from_numpy((value_coef * w) * g_v).reshape(value.shape),
        )
        ctx.mark_non_differentiable(stats)
        return torch.tensor(policy + value_coef * value_loss - entropy_coef * entropy), stats

    @staticmethod
    def backward(ctx: Any, grad: Tensor, _grad_stats: Tensor) -> tuple[Tensor | None, ...]:
        g_logits, g_value = ctx.saved_tensors
        return g_logits * grad, g_value * grad, None, None, None, None, None, None, None


def categorical_ppo_loss(
    logits: Tensor,
    actions: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    value: Tensor,
    value_old: Tensor,
    returns: Tensor,
    active: Tensor,
    *,
    clip: float,
    value_clip: float,
    huber_delta: float,
    value_coef: float,
    entropy_coef: float,
) -> tuple[Tensor, Tensor]:
    """``ppo_loss`` for a categorical policy given its ``logits`` (``(..., n_actions)``) and the taken ``actions``,
    as one autograd node (``_CategoricalPPO``). Returns the total to minimise and, without gradient, the terms
    ``[policy, value, entropy, approx_kl, clip_fraction]`` stacked in that order. Tensors other than float32 on
    the CPU go through autograd and ``ppo_loss`` instead (the same numbers)."""
    floats = (logits, value, old_logp, advantages, value_old, returns, active)
    if any(x.device.type != "cpu" or x.dtype != torch.float32 for x in floats) or actions.device.type != "cpu":
        logp_all = F.log_softmax(logits, -1)
        logp = logp_all.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
        entropy = -(logp_all.exp() * logp_all).sum(-1)
        kw = dict(clip=clip, value_clip=value_clip, huber_delta=huber_delta, value_coef=value_coef)
        t = ppo_loss(
            logp, old_logp, advantages, entropy, value, value_old, returns, active, **kw, entropy_coef=entropy_coef
        )
        return t.total, torch.stack([t.policy, t.value, t.entropy, t.approx_kl, t.clip_fraction]).detach()
    total, stats = _CategoricalPPO.apply(
        logits,
        value,
        actions,
        old_logp,
        advantages,
        value_old,
        returns,
        active,
        (clip, value_clip, huber_delta, value_coef, entropy_coef),
    )
    return total, stats
