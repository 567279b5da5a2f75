"""Returns and advantages over a rollout of T steps, aware of same-step autoreset.

Conventions (all arrays shaped ``(T, ...)``, the trailing dims any batch shape, e.g. ``(num_envs, n_agents)``):

* ``rewards[t]`` was received for the action at step t;
* ``next_values[t]`` is V of the state reached by that action — for a step that ended an episode this is V of
  ``info["final_obs"]``, not of the next episode's first observation;
* ``terminated[t]``: that state is terminal, so nothing is bootstrapped from it;
* ``truncated[t]``: the episode was cut by a time limit; the value of the state reached *is* bootstrapped, but the
  recursion does not run into the next episode.

So ``done = terminated | truncated`` separates episodes, and ``terminated`` alone decides bootstrapping: the
distinction that makes truncated episodes learn the right values (Pardo et al. 2018, "Time Limits in
Reinforcement Learning").
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def gae(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    gamma: float,
    lam: float,
) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016); returns ``(advantages, returns)``.

    ``delta_t = r_t + gamma * (1 - terminated_t) * next_values_t - values_t`` and
    ``A_t = delta_t + gamma * lam * (1 - done_t) * A_{t+1}``; ``returns = advantages + values`` are the
    λ-returns the critic regresses on.
    """
    not_term = 1.0 - terminated.to(rewards.dtype)
    not_done = 1.0 - (terminated | truncated).to(rewards.dtype)
    deltas = rewards + gamma * not_term * next_values - values
    decay = (gamma * lam) * not_done
    advantages = torch.empty_like(rewards)
    if deltas.device.type == "cpu" and not (deltas.requires_grad or decay.requires_grad):
        # The recursion in NumPy on the tensors' memory: two ops a step at ~1 µs each, where torch's indexing and
        # dispatch cost ~10 µs a step (the loop is over time, never over data).
        T = rewards.shape[0]  # (T, everything else flat): every step a 1-d row, also for a (T,) rollout
        d, c = deltas.numpy().reshape(T, -1), decay.numpy().reshape(T, -1)
        a = advantages.numpy().reshape(T, -1)  # a view: advantages is fresh and contiguous
        running_np = np.zeros_like(d[0])
        for t in range(d.shape[0] - 1, -1, -1):
            running_np = np.add(d[t], np.multiply(c[t], running_np, out=a[t]), out=a[t])
        return advantages, advantages + values
    running = torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0] - 1, -1, -1):  # one fused op per step: the loop is over time, never over data
        running = torch.addcmul(deltas[t], decay[t], running, out=advantages[t])
    return advantages, advantages + values


def lambda_returns(
    rewards: Tensor, next_values: Tensor, terminated: Tensor, truncated: Tensor, gamma: float, lam: float
) -> Tensor:
    """TD(λ) returns: ``G_t = r_t + gamma * (1 - terminated_t) * ((1 - lam) * V'_t + lam * G_{t+1})``, where
    ``G_{t+1}`` is replaced by ``V'_t`` at the end of an episode or of the rollout."""
    not_term = 1.0 - terminated.to(rewards.dtype)
    done = terminated | truncated
    out = torch.empty_like(rewards)
    following = next_values[-1]
    for t in range(rewards.shape[0] - 1, -1, -1):
        following = torch.where(done[t], next_values[t], following) if t < rewards.shape[0] - 1 else next_values[t]
        out[t] = rewards[t] + gamma * not_term[t] * ((1.0 - lam) * next_values[t] + lam * following)
        following = out[t]
    return out


def nstep_returns(
    rewards: Tensor, next_values: Tensor, terminated: Tensor, truncated: Tensor, gamma: float, n: int
) -> Tensor:
    """n-step returns ``G_t = sum_{k<m} gamma^k r_{t+k} + gamma^m V'_{t+m-1}``, where m <= n stops at the end of
    the episode or rollout, and the bootstrap is dropped when the episode terminated."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    T = rewards.shape[0]
    not_term = 1.0 - terminated.to(rewards.dtype)
    done = terminated | truncated
    out = torch.empty_like(rewards)
    for t in range(T):
        acc = torch.zeros_like(rewards[0])
        discount = torch.ones_like(rewards[0])
        alive = torch.ones_like(rewards[0], dtype=torch.bool)  # still inside the episode that step t belongs to
        boot = torch.zeros_like(rewards[0])
        for k in range(min(n, T - t)):
            i = t + k
            acc = acc + torch.where(alive, discount * rewards[i], 0.0)
            last = alive & (done[i] | (k == min(n, T - t) - 1))
            boot = torch.where(last, discount * gamma * not_term[i] * next_values[i], boot)
            discount = discount * gamma
            alive = alive & ~done[i]
        out[t] = acc + boot
    return out


def discounted_returns(
    rewards: Tensor, terminated: Tensor, truncated: Tensor, gamma: float, next_values: Tensor | None = None
) -> Tensor:
    """Monte-Carlo returns within each episode (REINFORCE); bootstraps from ``next_values`` where an episode is
    truncated or the rollout ends, if given."""
    if next_values is None:
        next_values = torch.zeros_like(rewards)
    return lambda_returns(rewards, next_values, terminated, truncated, gamma, lam=1.0)
