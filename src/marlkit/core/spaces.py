"""Spaces as plain data: what a policy knows of the env it acts in.

``PolicySpaces`` holds a policy's groups and agent ids and each group's observation and action space (and the
global state space). ``to_data`` writes them as plain data — ``Discrete`` as ``n``/``start``, ``Box`` as
``low``/``high``/``shape``/``dtype`` — for a policy state, so a policy rebuilt in another process can check it is
given the env it was trained on and can map a PettingZoo ``{agent: obs}`` dict onto its groups.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces as gym_spaces


def space_to_data(space: gym_spaces.Space[Any]) -> dict[str, Any]:
    """A Gymnasium space as plain data (``Discrete``, ``Box``, ``MultiDiscrete``, ``MultiBinary``)."""
    if isinstance(space, gym_spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, gym_spaces.Box):
        return {
            "type": "Box",
            "low": space.low.tolist(),
            "high": space.high.tolist(),
            "shape": list(space.shape),
            "dtype": space.dtype.name,
        }
    if isinstance(space, gym_spaces.MultiDiscrete):
        return {
            "type": "MultiDiscrete",
            "nvec": space.nvec.tolist(),
            "start": space.start.tolist(),
            "dtype": space.dtype.name,
        }
    if isinstance(space, gym_spaces.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    raise TypeError(
        f"cannot write the space {space} as plain data (supported: Discrete, Box, MultiDiscrete, MultiBinary)"
    )


def space_from_data(data: Mapping[str, Any]) -> gym_spaces.Space[Any]:
    """The space ``space_to_data`` wrote."""
    kind = data.get("type")
    if kind == "Discrete":
        return gym_spaces.Discrete(int(data["n"]), start=int(data["start"]))
    if kind == "Box":
        dtype = np.dtype(data["dtype"])
        return gym_spaces.Box(
            np.asarray(data["low"], dtype), np.asarray(data["high"], dtype), tuple(data["shape"]), dtype
        )
    if kind == "MultiDiscrete":
        return gym_spaces.MultiDiscrete(
            np.asarray(data["nvec"]), np.dtype(data["dtype"]), start=np.asarray(data["start"])
        )
    if kind == "MultiBinary":
        n = data["n"]
        return gym_spaces.MultiBinary(n if isinstance(n, int) else list(n))
    raise ValueError(
        f"unknown space type {kind!r} in a policy state (known: Discrete, Box, MultiDiscrete, MultiBinary)"
    )


@dataclass(frozen=True)
class PolicySpaces:
    """The groups, agent ids and spaces a policy acts for (group order is the env's)."""

    groups: dict[str, tuple[str, ...]]
    observation: dict[str, gym_spaces.Space[Any]]
    """Group -> the observation space of one agent."""
    action: dict[str, gym_spaces.Space[Any]]
    """Group -> the action space of one agent."""
    state: gym_spaces.Space[Any] | None = None
    """The env's global state space (what a policy with ``uses_state`` reads)."""

    @classmethod
    def from_env(cls, env: Any) -> PolicySpaces:
        """Of a batched env, or of anything with its ``groups``, ``group_*_space`` and ``state_space``."""
        groups = {g: tuple(ids) for g, ids in env.groups.items()}
        return cls(
            groups,
            {g: env.group_observation_space(g) for g in groups},
            {g: env.group_action_space(g) for g in groups},
            env.state_space,
        )

    @property
    def agents(self) -> tuple[str, ...]:
        return tuple(a for ids in self.groups.values() for a in ids)

    def group_observation_space(self, group: str) -> gym_spaces.Space[Any]:
        return self.observation[group]

    def group_action_space(self, group: str) -> gym_spaces.Space[Any]:
        return self.action[group]

    def difference(self, other: PolicySpaces) -> str | None:
        """How ``other`` differs from these spaces (the first difference, in words), or None when they are equal."""
        if self.groups != other.groups:
            return f"its groups are {_groups(self.groups)}, these are {_groups(other.groups)}"
        for what in ("observation", "action"):
            for g in self.groups:
                if getattr(self, what)[g] != getattr(other, what)[g]:
                    return (
                        f"the {what} space of group {g!r} is {getattr(self, what)[g]}, here it is "
                        f"{getattr(other, what)[g]}"
                    )
        if self.state != other.state:
            return f"its state space is {self.state}, here it is {other.state}"
        return None

    def to_data(self) -> dict[str, Any]:
        return {
            "groups": {g: list(ids) for g, ids in self.groups.items()},
            "observation": {g: space_to_data(s) for g, s in self.observation.items()},
            "action": {g: space_to_data(s) for g, s in self.action.items()},
            "state": None if self.state is None else space_to_data(self.state),
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> PolicySpaces:
        return cls(
            {g: tuple(ids) for g, ids in data["groups"].items()},
            {g: space_from_data(s) for g, s in data["observation"].items()},
            {g: space_from_data(s) for g, s in data["action"].items()},
            None if data.get("state") is None else space_from_data(data["state"]),
        )


def _groups(groups: Mapping[str, tuple[str, ...]]) -> str:
    return ", ".join(f"{g}: {list(ids)}" for g, ids in groups.items())
