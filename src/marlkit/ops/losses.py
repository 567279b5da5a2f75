"""Losses as pure functions of tensors, so each term can be checked on numbers worked out by hand.

Every per-sample tensor has the same shape (any batch shape); ``active`` is 1 for samples that count and 0 for
samples that do not (dead agents, padding), and means are taken over the active samples only.
"""

from __future__ import annotations

from typing import Any, NamedTuple

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


class _CategoricalPPO(torch.autograd.Function):
    """``ppo_loss`` of a categorical policy from its logits, forward and backward written out: the log-softmax,
    the taken action's log-probability, the entropy and every PPO term in one node whose backward is a dozen
    elementwise ops (what autograd does through ~40 nodes). Ties of ``min``/``max`` split the gradient in half and
    ``clamp`` passes it on its closed interval, as autograd's formulas do, so the gradients are the same numbers."""

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
        # Actions along dim 0, samples along dim 1: torch's softmax kernels are ~15x faster along a leading dim
        # than along a short last one (5 actions).
        logp_all = torch.log_softmax(logits.reshape(-1, logits.shape[-1]).t().contiguous(), 0)
        probs = logp_all.exp()
        index = actions.reshape(1, -1).long()
        logp = logp_all.gather(0, index).view(actions.shape)
        p_logp = probs * logp_all
        entropy = -p_logp.sum(0).view(actions.shape)
        count = active.sum().clamp(min=1.0)
        log_ratio = logp - old_logp
        ratio = log_ratio.exp()
        s1 = ratio * adv
        s2 = ratio.clamp(1 - clip, 1 + clip) * adv
        policy = -(torch.min(s1, s2) * active).sum() / count
        entropy_mean = (entropy * active).sum() / count
        x1 = value - returns
        e1 = value_error(value, returns, huber_delta)
        delta: Tensor | None = None
        x2: Tensor | None = None
        e2: Tensor | None = None
        if value_clip > 0:
            delta = value - value_old
            clipped = value_old + delta.clamp(-value_clip, value_clip)
            x2 = clipped - returns
            e2 = value_error(clipped, returns, huber_delta)
            value_loss = (torch.max(e1, e2) * active).sum() / count
        else:
            value_loss = (e1 * active).sum() / count
        total = policy + value_coef * value_loss - entropy_coef * entropy_mean
        change = ratio - 1
        approx_kl = ((change - log_ratio) * active).sum() / count
        clip_fraction = ((change.abs() > clip).float() * active).sum() / count
        stats = torch.stack([policy, value_loss, entropy_mean, approx_kl, clip_fraction])
        ctx.save_for_backward(logp_all, probs, p_logp, index, ratio, adv, s1, s2, active, count, x1, e1)
        ctx.value_terms = (delta, x2, e2)
        ctx.coefs, ctx.logits_shape = coefs, logits.shape
        ctx.mark_non_differentiable(stats)
        return total, stats

    @staticmethod
    def backward(ctx: Any, grad: Tensor, _grad_stats: Tensor) -> tuple[Tensor | None, ...]:
        logp_all, probs, p_logp, index, ratio, adv, s1, s2, active, count, x1, e1 = ctx.saved_tensors
        delta, x2, e2 = ctx.value_terms
        clip, value_clip, huber_delta, value_coef, entropy_coef = ctx.coefs
        w = active * (grad / count)
        # policy: -min(s1, s2); s1 = ratio * adv, s2 = clamp(ratio) * adv
        g = -w
        g1 = torch.where(s1 == s2, g / 2, g).masked_fill_(s1 > s2, 0.0)
        g2 = torch.where(s1 == s2, g / 2, g).masked_fill_(s2 > s1, 0.0)
        g2 = g2 * ((ratio >= 1 - clip) & (ratio <= 1 + clip))
        g_logp = (g1 + g2) * adv * ratio
        # entropy -sum(p log p) with p = exp(log p): d/dlog p = -(p log p + p)
        g_ent = (-entropy_coef) * w
        g_logp_all = (p_logp + probs) * (-g_ent).reshape(1, -1)
        g_logp_all.scatter_add_(0, index, g_logp.reshape(1, -1))
        g_logits = g_logp_all - probs * g_logp_all.sum(0, keepdim=True)  # log-softmax backward
        g_logits = g_logits.t().reshape(ctx.logits_shape)
        # value
        g_v = value_coef * w

        def d_error(x: Tensor) -> Tensor:
            return x.clamp(-huber_delta, huber_delta) if huber_delta > 0 else x

        if delta is not None:
            m1 = torch.where(e1 == e2, g_v / 2, g_v).masked_fill_(e2 > e1, 0.0)
            m2 = torch.where(e1 == e2, g_v / 2, g_v).masked_fill_(e1 > e2, 0.0)
            m2 = m2 * ((delta >= -value_clip) & (delta <= value_clip))
            g_value = m1 * d_error(x1) + m2 * d_error(x2)
        else:
            g_value = g_v * d_error(x1)
        return g_logits, g_value, None, None, None, None, None, None, None


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
    ``[policy, value, entropy, approx_kl, clip_fraction]`` stacked in that order."""
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
