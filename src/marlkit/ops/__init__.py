"""Pure functions of the learning math: returns, advantages, losses and schedules, each with numeric unit tests."""

from marlkit.ops.gradients import clip_grad_norm
from marlkit.ops.losses import PPOLoss, categorical_ppo_loss, ppo_loss, value_error
from marlkit.ops.returns import discounted_returns, gae, lambda_returns, nstep_returns
from marlkit.ops.schedules import Schedule, constant, exponential, linear

__all__ = [
    "PPOLoss",
    "Schedule",
    "categorical_ppo_loss",
    "clip_grad_norm",
    "constant",
    "discounted_returns",
    "exponential",
    "gae",
    "lambda_returns",
    "linear",
    "nstep_returns",
    "ppo_loss",
    "value_error",
]
