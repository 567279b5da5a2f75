"""How the agents of a wrapped env (PettingZoo's) form marlkit groups: by name prefix and identical spaces, or as the
user lists them (checked)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gymnasium import spaces


def name_prefix(agent: str) -> str:
    head, sep, tail = agent.rpartition("_")
    return head if sep and head and tail.isdigit() else agent


def default_groups(
    agents: Sequence[str], obs: Mapping[str, spaces.Space[Any]], act: Mapping[str, spaces.Space[Any]]
) -> dict[str, tuple[str, ...]]:
    """Agents with the same name prefix and identical spaces; a prefix whose agents differ is split (``_1``, ...)."""
    groups: dict[str, list[str]] = {}
    for a in agents:
        base = name_prefix(a)
        k = 0
        while True:
            name = base if k == 0 else f"{base}_{k}"
            members = groups.get(name)
            if members is None:
                groups[name] = [a]
                break
            if obs[members[0]] == obs[a] and act[members[0]] == act[a]:
                members.append(a)
                break
            k += 1
    return {g: tuple(ids) for g, ids in groups.items()}


def checked_groups(
    groups: Mapping[str, Sequence[str]],
    agents: Sequence[str],
    obs: Mapping[str, spaces.Space[Any]],
    act: Mapping[str, spaces.Space[Any]],
) -> dict[str, tuple[str, ...]]:
    listed = [a for ids in groups.values() for a in ids]
    unknown = sorted(set(listed) - set(agents))
    missing = [a for a in agents if a not in listed]
    twice = sorted({a for a in listed if listed.count(a) > 1})
    if unknown or missing or twice:
        raise ValueError(
            f"groups must list every agent of {list(agents)} exactly once; "
            f"unknown {unknown}, missing {missing}, listed twice {twice}"
        )
    for g, ids in groups.items():
        if not ids:
            raise ValueError(f"group {g!r} is empty")
        for a in ids[1:]:
            if obs[a] != obs[ids[0]] or act[a] != act[ids[0]]:
                raise ValueError(
                    f"agents of group {g!r} must share spaces: {ids[0]!r} has {obs[ids[0]]} / "
                    f"{act[ids[0]]}, {a!r} has {obs[a]} / {act[a]}"
                )
    return {g: tuple(ids) for g, ids in groups.items()}
