"""The rollout: T consecutive steps of every copy, stored in preallocated NumPy arrays and handed out as tensors.

Everything is per group, shaped ``(T, num_envs, n_agents, ...)``; the global state is ``(T, num_envs, *state)``.
``next_obs[t]`` is the observation the action at ``t`` led to — ``info["final_obs"]`` where the episode ended —
so returns bootstrap correctly across same-step autoresets (see ``marlkit.ops.returns``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import torch
from gymnasium import spaces

from marlkit.envs.base import MultiAgentEnv

LOCAL_SOURCE = "local"
"""The source of a rollout that names none: the local collector."""


class Rollout(NamedTuple):
    """T steps of every copy. Dicts are keyed by group; tensors share memory with the buffer until the next fill."""

    obs: dict[str, torch.Tensor]
    actions: dict[str, torch.Tensor]
    rewards: dict[str, torch.Tensor]
    terminated: dict[str, torch.Tensor]
    truncated: dict[str, torch.Tensor]
    next_obs: dict[str, torch.Tensor]
    active: dict[str, torch.Tensor]
    """Agents alive when they acted (always true for envs whose agents cannot die)."""
    action_mask: dict[str, torch.Tensor] | None
    """Allowed actions when the agent acted, ``(T, E, n, n_actions)``, for envs with masks."""
    state: torch.Tensor | None
    next_state: torch.Tensor | None
    extras: dict[str, dict[str, torch.Tensor]]
    """What the policy stored while acting, by group and name (log-probabilities, values, ...)."""
    next_action_mask: dict[str, torch.Tensor] | None = None
    """Allowed actions in ``next_obs`` (at an episode's end: in its final observation), for envs with masks; what
    the max of a bootstrapped target ranges over."""
    source: str = LOCAL_SOURCE
    """Which stream of steps this rollout continues: the next rollout of a source continues its copies' episodes,
    so a replay keeps one stream per source and never joins the steps of two (each may have its own copy count)."""


@dataclass
class EpisodeStats:
    """Episodes that ended during a collection, one entry per episode."""

    returns: dict[str, list[np.ndarray]] = field(default_factory=dict)
    """Per group: each episode's per-agent returns, ``(n_agents,)``."""
    lengths: list[int] = field(default_factory=list)
    metrics: dict[str, list[float]] = field(default_factory=dict)

    def add(self, info: dict[str, Any]) -> None:
        done = info["episode_done"]
        for g, r in info["episode_return"].items():
            self.returns.setdefault(g, []).extend(r[done])
        self.lengths.extend(info["episode_length"][done].tolist())
        for k, v in info["episode_metrics"].items():
            self.metrics.setdefault(k, []).extend(v[done].tolist())

    def __len__(self) -> int:
        return len(self.lengths)

    def mean_return(self) -> float:
        """Mean over episodes of the per-agent return averaged over all agents (the MPE convention)."""
        per_episode = np.concatenate([np.stack(r) for r in self.returns.values()], axis=1)
        return float(per_episode.mean())

    def summary(self, prefix: str = "") -> dict[str, float]:
        if not self.lengths:
            return {}
        out = {
            f"{prefix}episode_return": self.mean_return(),
            f"{prefix}episode_length": float(np.mean(self.lengths)),
            f"{prefix}episodes": float(len(self.lengths)),
        }
        if len(self.returns) > 1:
            for g, r in self.returns.items():
                out[f"{prefix}episode_return/{g}"] = float(np.mean(r))
        for k, v in self.metrics.items():
            out[f"{prefix}{k}"] = float(np.mean(v))
        return out


class RolloutBuffer:
    """Preallocated storage for ``steps`` steps of ``env``; ``add`` writes one step, ``rollout`` hands it out."""

    def __init__(
        self,
        env: MultiAgentEnv,
        steps: int,
        with_state: bool,
        extras: dict[str, dict[str, tuple[int, ...]]],
        with_mask: bool,
    ) -> None:
        T, E = steps, env.num_envs
        self.steps = steps
        self.obs: dict[str, np.ndarray] = {}
        self.next_obs: dict[str, np.ndarray] = {}
        self.actions: dict[str, np.ndarray] = {}
        self.rewards: dict[str, np.ndarray] = {}
        self.terminated: dict[str, np.ndarray] = {}
        self.truncated: dict[str, np.ndarray] = {}
        self.active: dict[str, np.ndarray] = {}
        self.mask: dict[str, np.ndarray] = {}
        self.next_mask: dict[str, np.ndarray] = {}
        self.extras: dict[str, dict[str, np.ndarray]] = {}
        for g, ids in env.groups.items():
            n, ospace, aspace = len(ids), env.group_observation_space(g), env.group_action_space(g)
            self.obs[g] = np.zeros((T, E, n, *ospace.shape), np.float32)
            self.next_obs[g] = np.zeros((T, E, n, *ospace.shape), np.float32)
            if isinstance(aspace, spaces.Discrete):
                self.actions[g] = np.zeros((T, E, n), np.int64)
                if with_mask:
                    self.mask[g] = np.ones((T, E, n, aspace.n), bool)
                    self.next_mask[g] = np.ones((T, E, n, aspace.n), bool)
            else:
                self.actions[g] = np.zeros((T, E, n, *aspace.shape), np.float32)
            self.rewards[g] = np.zeros((T, E, n), np.float32)
            self.terminated[g] = np.zeros((T, E, n), bool)
            self.truncated[g] = np.zeros((T, E, n), bool)
            self.active[g] = np.ones((T, E, n), bool)
            self.extras[g] = {k: np.zeros((T, E, n, *shape), np.float32) for k, shape in extras.get(g, {}).items()}
        shape = (T, E, *env.state_space.shape)
        self.state = np.zeros(shape, np.float32) if with_state else None
        self.next_state = np.zeros(shape, np.float32) if with_state else None

    def rollout(self) -> Rollout:
        t = torch.from_numpy

        def tree(d: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
            return {g: t(a) for g, a in d.items()}

        return Rollout(
            tree(self.obs),
            tree(self.actions),
            tree(self.rewards),
            tree(self.terminated),
            tree(self.truncated),
            tree(self.next_obs),
            tree(self.active),
            tree(self.mask) if self.mask else None,
            None if self.state is None else t(self.state),
            None if self.next_state is None else t(self.next_state),
            {g: tree(x) for g, x in self.extras.items()},
            tree(self.next_mask) if self.next_mask else None,
        )
