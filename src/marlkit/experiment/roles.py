"""Roles emerging during training: a learner trained on a task with sub-tasks, its role metrics measured at
evaluation points (``role_curve``), next to the same metrics of a random and of the untrained team
(``role_baselines``). ``RoleSetup()`` is the role-emergence run on spread; ``LEADER_SETUP`` the emergent
hierarchy, agents electing a leader through a message channel (``leader-election-v0``).

What is measured at each point (``measure``): role specialisation and division of labour of greedy episodes
(``marlkit.population.behaviour.role_report``), the team's System Neural Diversity on its own sampled rollout
(``snd_of_policy``, for policies that expose their distributions) and its mean per-agent return. Evaluation
episodes use a fixed seed, so two points differ only by the policy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from marlkit.collect import Collector, evaluate
from marlkit.core import PolicySpaces
from marlkit.core.contracts import Actor, DistributionPolicy
from marlkit.envs.registry import make
from marlkit.experiment.runner import learn
from marlkit.metrics.roles import leader_agreement
from marlkit.population.behaviour import role_counts, role_report, snd_of_policy


@dataclass(frozen=True)
class RoleSetup:
    """A role-emergence run: which task, learner and budget."""

    env_id: str = "spread-v0"
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    algorithm: str = "mappo"
    algo: dict[str, Any] = field(default_factory=lambda: {"gamma": 0.95})
    """Fields of the algorithm's config over its defaults (shared weights with agent ids are PPO's defaults)."""
    num_envs: int = 64
    steps: int = 1_000_000
    """Env-steps to train for (summed over copies)."""
    eval_every: int = 100_000
    eval_episodes: int = 300
    eval_seed: int = 12345
    votes: bool = False
    """The sub-task of each agent is a vote (leader election): also score agreement on a leader."""


#: The emergent-hierarchy run: MAPPO on the leader election, where only the agent able to lead knows it.
LEADER_SETUP = RoleSetup(
    env_id="leader-election-v0",
    algo={"gamma": 0.99, "entropy_coef": 0.1},
    num_envs=32,
    steps=100_000,
    eval_every=8_000,
    eval_episodes=500,
    votes=True,
)


def measure(setup: RoleSetup, policy: Actor, explore: bool = False) -> dict[str, float]:
    """Role metrics, SND, mean per-agent return and the env's episode metrics (``metric/<name>``, means over
    episodes) of ``policy`` (greedy unless ``explore``); with ``setup.votes`` also ``leader_agreement``'s."""
    env = make(setup.env_id, num_envs=100, **setup.env_kwargs)
    counts = role_counts(env, policy, setup.eval_episodes, setup.eval_seed, explore=explore)
    stats = evaluate(env, policy, setup.eval_episodes, seed=setup.eval_seed, explore=explore)
    out = {**role_report(counts).as_dict(), "return": float(np.mean([np.mean(r) for r in stats.returns.values()]))}
    out.update({f"metric/{k}": float(np.mean(v)) for k, v in stats.metrics.items()})
    if setup.votes:
        agreement = leader_agreement(counts.argmax(-1), counts.shape[-1])
        out.update(agreement=agreement.agreement, leader_entropy=agreement.leader_entropy)
    if isinstance(policy, DistributionPolicy):
        out["snd"] = snd_of_policy(env, policy, steps=25, seed=setup.eval_seed)
    return out


def _learner(setup: RoleSetup, seed: int) -> tuple[Any, Any]:
    from marlkit.algorithms.registry import algo_config, algo_spec

    torch.manual_seed(seed)
    np.random.seed(seed)
    env = make(setup.env_id, num_envs=setup.num_envs, seed=seed, **setup.env_kwargs)
    cls, _ = algo_spec(setup.algorithm).load()
    learner = cls(env, algo_config(setup.algorithm, dict(setup.algo)), seed=seed)
    return env, learner


def role_baselines(setup: RoleSetup, seed: int) -> dict[str, dict[str, float]]:
    """The metrics of a uniformly random team (sampling) and of the untrained learner of ``seed`` (greedy)."""
    from marlkit.algorithms.team_policies import RandomPolicy

    env, learner = _learner(setup, seed)
    return {
        "random": measure(setup, RandomPolicy(PolicySpaces.from_env(env), seed), explore=True),
        "untrained": measure(setup, learner.policy(seed)),
    }


def role_curve(setup: RoleSetup, seed: int) -> list[dict[str, float]]:
    """Train ``setup.algorithm`` for ``setup.steps`` env-steps with ``seed``; the metrics (``measure``) before
    training and every ``eval_every`` env-steps, each row with ``env_steps`` and ``wall_s``."""
    env, learner = _learner(setup, seed)
    source = Collector(env, learner, learner.config.rollout_steps, seed=seed)
    per_update = source.steps_per_batch
    updates = max(1, setup.steps // per_update)
    every = max(1, setup.eval_every // per_update)
    start = time.perf_counter()
    rows = [{"env_steps": 0.0, "wall_s": 0.0, **measure(setup, learner.policy(seed))}]
    done = 0
    while done < updates:
        k = min(every, updates - done)
        learn(learner, source, k, total_steps=updates * per_update, env_steps=done * per_update)
        done += k
        wall = time.perf_counter() - start
        rows.append({"env_steps": float(done * per_update), "wall_s": wall, **measure(setup, learner.policy(seed))})
    return rows
