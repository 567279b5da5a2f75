"""Losses as pure functions of tensors, so each term can be checked on numbers worked out by hand.

Every per-sample tensor has the same shape (any batch shape); ``active`` is 1 for samples that count and 0 for
samples that do not (dead agents, padding), and means are taken over the active samples only.
"""

from __future__ import annotations

from typing import NamedTuple

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
