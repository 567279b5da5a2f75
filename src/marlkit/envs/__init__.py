"""Batched multi-agent environments: the contract, the registry, the checker and PettingZoo in both directions."""

from typing import TYPE_CHECKING, Any

from marlkit.envs.base import ActionError, MultiAgentEnv
from marlkit.envs.registry import EnvSpec, list_envs, make, register, spec
from marlkit.envs.spaces import sample_actions

if TYPE_CHECKING:
    from marlkit.envs.check import CheckReport, check_env
    from marlkit.envs.openspiel import from_openspiel
    from marlkit.envs.pettingzoo import from_pettingzoo, to_pettingzoo

__all__ = [
    "ActionError",
    "CheckReport",
    "EnvSpec",
    "MultiAgentEnv",
    "check_env",
    "from_openspiel",
    "from_pettingzoo",
    "list_envs",
    "make",
    "register",
    "sample_actions",
    "spec",
    "to_pettingzoo",
]


def __getattr__(name: str) -> Any:
    # The checker and the PettingZoo bridges import pettingzoo lazily: keep `import marlkit.envs` light.
    if name in ("check_env", "CheckReport"):
        from marlkit.envs import check as _check

        return getattr(_check, name)
    if name == "from_openspiel":  # imports pyspiel when called
        from marlkit.envs import openspiel as _os

        return _os.from_openspiel
    if name in ("to_pettingzoo", "from_pettingzoo"):
        from marlkit.envs import pettingzoo as _pz

        return getattr(_pz, name)
    raise AttributeError(f"module 'marlkit.envs' has no attribute {name!r}")
