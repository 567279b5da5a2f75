"""marlkit: multi-agent reinforcement learning with batched environments and readable algorithms."""

from typing import TYPE_CHECKING, Any

from marlkit.envs.registry import list_envs, make

if TYPE_CHECKING:
    from marlkit.experiment.runner import train

__version__ = "0.1.0"

__all__ = ["__version__", "list_envs", "make", "train"]


def __getattr__(name: str) -> Any:
    # train pulls in torch and the algorithms: import it on first use so `import marlkit` stays light.
    if name == "train":
        from marlkit.experiment.runner import train

        return train
    raise AttributeError(f"module 'marlkit' has no attribute {name!r}")
