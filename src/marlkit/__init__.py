"""marlkit: multi-agent reinforcement learning with batched environments and readable algorithms."""

from typing import TYPE_CHECKING, Any

from marlkit.envs.registry import list_envs, make

if TYPE_CHECKING:
    from marlkit.experiment.load import load
    from marlkit.experiment.runner import train

__version__ = "0.1.0"

__all__ = ["__version__", "list_envs", "load", "make", "train"]


def __getattr__(name: str) -> Any:
    # train and load pull in torch and the algorithms: import them on first use so `import marlkit` stays light.
    if name == "train":
        from marlkit.experiment.runner import train

        return train
    if name == "load":
        from marlkit.experiment.load import load

        return load
    raise AttributeError(f"module 'marlkit' has no attribute {name!r}")
