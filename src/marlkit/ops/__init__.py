"""Pure functions of the learning math: returns, advantages and losses, each with numeric unit tests."""

from marlkit.ops.losses import PPOLoss, ppo_loss, value_error
from marlkit.ops.returns import discounted_returns, gae, lambda_returns, nstep_returns

__all__ = ["PPOLoss", "discounted_returns", "gae", "lambda_returns", "nstep_returns", "ppo_loss", "value_error"]
