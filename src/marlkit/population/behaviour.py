"""Behaviour of a team measured by rolling it out: System Neural Diversity and role specialisation.

The pure metrics are ``marlkit.metrics.diversity`` and ``marlkit.metrics.roles``; this module gathers what they
read by acting in a batched env.

* ``behaviour_observations`` rolls a policy out and keeps the observations of every agent of one group.
* ``snd_of_policy`` evaluates *every* agent's policy on each of those observations and returns SND. An
  observation is given to all agents at once by copying it into every agent's row of one batch: a network shared
  by the group then reads it with each agent's own id appended, a network per agent reads it with its own
  weights, so "agent i's policy on o" is what either kind computes in row i, and no knowledge of the network is
  needed. Only the observation moves between agents: for foraging its action mask goes with it.
* ``role_counts`` plays episodes of an env with sub-tasks (``marlkit.envs.base.SubtaskEnv``: spread, foraging)
  and returns each episode's agents x sub-tasks count table; ``role_report`` turns them into role specialisation
  and division of labour.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from marlkit.core.contracts import Actor, DistributionPolicy
from marlkit.envs.base import MultiAgentEnv, SubtaskEnv
from marlkit.metrics.diversity import CategoricalDistance, system_neural_diversity
from marlkit.metrics.roles import division_of_labour, role_specialisation


def _only_group(env: MultiAgentEnv, group: str | None) -> str:
    if group is None:
        if len(env.groups) != 1:
            raise ValueError(f"the env has groups {tuple(env.groups)}: name the one to measure (group=...)")
        return next(iter(env.groups))
    if group not in env.groups:
        raise ValueError(f"unknown group {group!r}; the env's groups are {tuple(env.groups)}")
    return group


def behaviour_observations(
    env: MultiAgentEnv, policy: Actor, steps: int, seed: int, group: str | None = None, explore: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """``steps`` steps of every copy acted by ``policy`` (sampling unless ``explore=False``): the group's
    observations of every agent, ``(steps * num_envs * n_agents, obs_dim)``, and their action masks (or None)."""
    g = _only_group(env, group)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    obs, info = env.reset(seed=seed)
    seen, masks = [], []
    for _ in range(steps):
        seen.append(obs[g].reshape(-1, obs[g].shape[-1]))
        if "action_mask" in info:
            masks.append(info["action_mask"][g].reshape(-1, info["action_mask"][g].shape[-1]))
        actions, _ = policy.act(obs, env.state() if policy.uses_state else None, info, explore=explore)
        obs, _, _, _, info = env.step(actions)
    return np.concatenate(seen), (np.concatenate(masks) if masks else None)


def snd_of_policy(
    env: MultiAgentEnv,
    policy: DistributionPolicy,
    steps: int = 25,
    seed: int = 0,
    group: str | None = None,
    distance: CategoricalDistance = "w2",
    max_observations: int = 4096,
    explore: bool = True,
) -> float:
    """System Neural Diversity of ``policy``'s agents in ``group`` on observations of its own rollout (``steps``
    steps of every copy of ``env``, at most ``max_observations`` of them drawn without replacement)."""
    if not isinstance(policy, DistributionPolicy):
        raise TypeError(
            f"SND reads the policy's action distributions: {type(policy).__name__} has no action_distributions "
            f"(the actor-critic policies of PPO and A2C have)"
        )
    g = _only_group(env, group)
    obs, masks = behaviour_observations(env, policy, steps, seed, g, explore)
    if len(obs) > max_observations:
        keep = np.sort(np.random.default_rng(seed).choice(len(obs), max_observations, replace=False))
        obs, masks = obs[keep], None if masks is None else masks[keep]
    n = len(env.groups[g])
    tiled = {g: np.repeat(obs[:, None, :], n, axis=1)}  # row k of every copy: agent k's policy on the same o
    info = {} if masks is None else {"action_mask": {g: np.repeat(masks[:, None, :], n, axis=1)}}
    dist = policy.action_distributions(tiled, info)[g]
    if dist.probs is not None:
        return system_neural_diversity(probs=dist.probs.swapaxes(0, 1), distance=distance)
    assert dist.mean is not None and dist.std is not None
    return system_neural_diversity(mean=dist.mean.swapaxes(0, 1), std=dist.std.swapaxes(0, 1))


def role_counts(
    env: MultiAgentEnv, policy: Actor, episodes: int, seed: int, explore: bool = False, max_steps: int = 100_000
) -> np.ndarray:
    """``(episodes, n_agents, n_subtasks)``: what every agent did in each of ``episodes`` episodes of ``env`` (an
    env with sub-tasks, ``SubtaskEnv``) acted by ``policy`` (greedy unless ``explore``), spread evenly over the
    copies as ``marlkit.collect.evaluate`` spreads them."""
    if not isinstance(env, SubtaskEnv):
        raise TypeError(f"{type(env).__name__} has no sub-tasks (subtask_counts); spread and foraging have")
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    quota = -(-episodes // env.num_envs)
    taken = np.zeros(env.num_envs, dtype=np.int64)
    obs, info = env.reset(seed=seed)
    running: np.ndarray | None = None
    tables: list[np.ndarray] = []
    for _ in range(max_steps):
        actions, _ = policy.act(obs, env.state() if policy.uses_state else None, info, explore=explore)
        obs, _, _, _, info = env.step(actions)
        counts = env.subtask_counts(info)
        running = counts.copy() if running is None else running + counts
        done = info["episode_done"]
        if done.any():
            keep = done & (taken < quota)
            tables.extend(running[keep])
            taken += done
            running[done] = 0.0
            if len(tables) >= episodes:
                return np.stack(tables[:episodes])
    raise RuntimeError(f"{episodes} episodes did not end within {max_steps} steps")


@dataclass(frozen=True)
class RoleReport:
    """Role metrics of a team on an env with sub-tasks (``marlkit.metrics.roles``)."""

    specialisation: float
    """Normalised I(agent; sub-task | episode), averaged over episodes: the division of each episode's sub-tasks."""
    specialisation_pooled: float
    """Normalised I(agent; sub-task) over all episodes together: lasting roles."""
    division_of_labour: float
    """Gorelick's symmetric D = I / sqrt(H(agent) H(task)) of each episode's table, averaged over episodes with
    any event (0 for joint work on one sub-task and for one agent doing all)."""
    events_per_episode: float
    """Mean sub-task events per episode (landmarks reached at the end, food collected)."""

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def role_report(counts: Any) -> RoleReport:
    """``RoleReport`` of ``role_counts``' tables."""
    c = np.asarray(counts, np.float64)
    with_events = c[c.sum((1, 2)) > 0]
    dol = float(np.mean([division_of_labour(t).symmetric for t in with_events])) if len(with_events) else 0.0
    return RoleReport(
        role_specialisation(c, "episode") if len(with_events) else 0.0,
        role_specialisation(c, "pooled") if len(with_events) else 0.0,
        dol,
        float(c.sum((1, 2)).mean()),
    )
