"""Small torch modules shared by the algorithms."""

from marlkit.nn.mlp import MLP, Linear
from marlkit.nn.normalize import RunningNorm

__all__ = ["MLP", "Linear", "RunningNorm"]
