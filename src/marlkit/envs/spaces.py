"""Batched helpers over Gymnasium spaces: sampling actions for every copy and agent at once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
from gymnasium import spaces


class ActionSpaces(Protocol):
    """What ``sample_actions`` reads of an env (a ``MultiAgentEnv`` has it): its groups of agent ids, each group's
    action space and the number of copies."""

    @property
    def groups(self) -> Mapping[str, Sequence[str]]: ...

    @property
    def num_envs(self) -> int: ...

    def group_action_space(self, group: str) -> spaces.Space[Any]: ...


def sample_actions(
    env: ActionSpaces, action_mask: dict[str, np.ndarray] | None = None, rng: np.random.Generator | None = None
) -> dict[str, np.ndarray]:
    """Uniformly random valid actions for every copy and agent, as the dict ``step`` takes.

    Uses its own generator (``rng``, default a fresh unseeded one) so sampling never disturbs the env's stream.
    """
    rng = rng if rng is not None else np.random.default_rng()
    out: dict[str, np.ndarray] = {}
    for g, ids in env.groups.items():
        space = env.group_action_space(g)
        shape = (env.num_envs, len(ids))
        if isinstance(space, spaces.Discrete):
            mask = None if action_mask is None else action_mask.get(g)
            if mask is None:
                out[g] = rng.integers(space.n, size=shape) + space.start
            else:
                # Sample among allowed actions: argmax of random keys where allowed (ties impossible a.s.).
                keys = np.where(mask, rng.random(mask.shape), -1.0)
                out[g] = keys.argmax(axis=-1) + space.start
        elif isinstance(space, spaces.Box):
            low = np.broadcast_to(space.low, space.shape)
            high = np.broadcast_to(space.high, space.shape)
            out[g] = rng.uniform(low, high, size=(*shape, *space.shape)).astype(space.dtype)
        elif isinstance(space, spaces.MultiDiscrete):
            out[g] = (rng.integers(0, space.nvec, size=(*shape, *space.shape)) + space.start).astype(np.int64)
        else:
            raise TypeError(f"cannot sample from {space} (group {g!r})")
    return out
