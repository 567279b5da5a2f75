"""Pure functions of the learning math: returns and advantages, each with numeric unit tests."""

from marlkit.ops.returns import discounted_returns, gae, lambda_returns, nstep_returns

__all__ = ["discounted_returns", "gae", "lambda_returns", "nstep_returns"]
