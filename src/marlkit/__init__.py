"""marlkit: multi-agent reinforcement learning with batched environments and readable algorithms."""

from marlkit.envs.registry import list_envs, make

__version__ = "0.1.0"

__all__ = ["__version__", "list_envs", "make"]
