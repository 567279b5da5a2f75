"""Role specialisation and division of labour: how agent identity and sub-task go together, from count tables.

A *sub-task* is what an agent ends up doing in an episode: the landmark it covers in spread, the food it loads in
foraging. The data is a count table per episode, ``counts[e, i, t]`` = how often agent i did sub-task t in episode
e (for one sub-task per agent and episode, a one-hot row; ``assignments_to_counts`` builds it from an index table).
Entropies are in bits, plug-in estimates (biased upwards on few samples: compare numbers scored on as many
episodes).

**Division of labour** (Gorelick, Bertram, Killeen & Fewell 2004, "Normalized mutual entropy in biology:
quantifying division of labor", The American Naturalist 164(5)): from one table ``counts[i, t]`` (individuals x
tasks), with ``p(i, t)`` its normalised entries, ``I(A; T)`` the mutual information of individual and task and

* ``D_indiv_task = I / H(T)`` — how much knowing the individual tells about the task (1: every individual does
  one task only);
* ``D_task_indiv = I / H(A)`` — how much knowing the task tells about the individual (1: every task is done by
  one individual only);
* ``D_sym = I / sqrt(H(A) H(T))``;

each in [0, 1], defined as 0 when the entropy it divides by is 0 (one task, or one individual doing everything).

**Role specialisation** (``role_specialisation``) is the mutual information between agent identity and sub-task,
normalised by ``log(min(n_agents, n_tasks))``, the most it can be (every agent on a sub-task of its own, as many
used as possible), so 1 is perfect specialisation and 0 is "the sub-task does not depend on who you are". It is
computed two ways, because sub-tasks mean different things in different tasks:

* ``"episode"`` (the default): ``I(A; T | episode)``, the mutual information within each episode, averaged over
  episodes. For spread, where landmarks are placed anew every episode so a landmark's index names no lasting job,
  this is the division of the landmarks among the agents: 1 when every agent covers a landmark of its own, 0
  when all crowd on one. Agents that act uniformly at random on spread's 3 landmarks score about 0.6 (three
  independent uniform picks are all distinct with probability 2/9 and all equal with 1/9).
* ``"pooled"``: ``I(A; T)`` over the table summed over episodes — lasting roles, the same agent on the same
  sub-task episode after episode (meaningful where sub-task labels persist: a food type, a named landmark).

**Agreement on a leader** (``leader_agreement``): from each episode's votes (which agent each agent named), the
share of episodes where all named the same agent, and the entropy of who was elected in those (0: always the same
agent, a fixed hierarchy; ``log2(n)``: every agent leads as often).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

RoleMode = Literal["episode", "pooled"]


@dataclass(frozen=True)
class DivisionOfLabour:
    """Gorelick et al.'s normalised mutual entropies of one individuals x tasks table (see the module docstring)."""

    mutual_information: float
    """I(A; T) in bits."""
    indiv_task: float
    """I / H(T)."""
    task_indiv: float
    """I / H(A)."""
    symmetric: float
    """I / sqrt(H(A) H(T))."""


@dataclass(frozen=True)
class LeaderAgreement:
    """How a team agrees on a leader (see the module docstring)."""

    agreement: float
    """Share of episodes where every agent named the same leader."""
    leader_entropy: float
    """Entropy in bits of the elected leader over the episodes that agreed (0 when none did)."""


def leader_agreement(votes: Any, n_candidates: int | None = None) -> LeaderAgreement:
    """``votes`` ``(episodes, n_agents)``: the candidate each agent named in each episode."""
    v = np.asarray(votes)
    if v.ndim != 2 or v.dtype.kind not in "iu" or len(v) == 0 or (v < 0).any():
        raise ValueError(f"votes must be candidate indices >= 0 shaped (episodes, n_agents), got {v.dtype} {v.shape}")
    agreed = (v == v[:, :1]).all(axis=1)
    k = int(v.max()) + 1 if n_candidates is None else int(n_candidates)
    leaders = np.bincount(v[agreed, 0], minlength=k).astype(np.float64)
    entropy = _entropy(leaders / leaders.sum()) if agreed.any() else 0.0
    return LeaderAgreement(float(agreed.mean()), entropy)


def assignments_to_counts(assignments: Any, n_tasks: int | None = None) -> np.ndarray:
    """``(episodes, n_agents)`` sub-task indices (-1: none) -> one-hot count tables ``(episodes, n_agents,
    n_tasks)`` (``n_tasks`` defaults to the largest index + 1)."""
    a = np.asarray(assignments)
    if a.ndim != 2 or a.dtype.kind not in "iu":
        raise ValueError(f"assignments must be integers shaped (episodes, n_agents), got {a.dtype} {a.shape}")
    if (a < -1).any():
        raise ValueError("assignments are sub-task indices >= 0, or -1 for none")
    k = int(a.max()) + 1 if n_tasks is None else int(n_tasks)
    if k < 1 or (a >= k).any():
        raise ValueError(f"n_tasks = {n_tasks} is too small for sub-task index {int(a.max())}")
    out = np.zeros((*a.shape, k))
    e, i = np.nonzero(a >= 0)
    out[e, i, a[e, i]] = 1.0
    return out


def division_of_labour(counts: Any) -> DivisionOfLabour:
    """Gorelick et al.'s division of labour of one ``(n_individuals, n_tasks)`` table of non-negative counts."""
    c = _counts(counts, 2, "counts")
    total = c.sum()
    if total <= 0:
        raise ValueError("counts hold no events (the table sums to 0)")
    p = c / total
    h_a, h_t = _entropy(p.sum(1)), _entropy(p.sum(0))
    mi = max(h_a + h_t - _entropy(p.ravel()), 0.0)
    return DivisionOfLabour(
        mi,
        mi / h_t if h_t > 0 else 0.0,
        mi / h_a if h_a > 0 else 0.0,
        float(mi / np.sqrt(h_a * h_t)) if h_a > 0 and h_t > 0 else 0.0,
    )


def role_specialisation(counts: Any, mode: RoleMode = "episode") -> float:
    """Normalised mutual information between agent identity and sub-task from ``(episodes, n_agents, n_tasks)``
    count tables (``assignments_to_counts`` makes them from indices): ``mode="episode"`` averages the information
    within each episode, ``"pooled"`` measures it on the table summed over episodes (see the module docstring).
    Each agent weighs by the events it has (an agent with no sub-task in an episode does not count there)."""
    c = _counts(counts, 3, "counts")
    n_agents, n_tasks = c.shape[1], c.shape[2]
    norm = np.log2(min(n_agents, n_tasks))
    if norm == 0:
        raise ValueError(f"role specialisation needs at least 2 agents and 2 sub-tasks, got {n_agents} and {n_tasks}")
    if mode == "pooled":
        return float(_mi(c.sum(0)) / norm)
    if mode != "episode":
        raise ValueError(f"mode must be 'episode' or 'pooled', got {mode!r}")
    totals = c.sum((1, 2))
    if not (totals > 0).any():
        raise ValueError("no episode has any sub-task event")
    mis = np.array([_mi(table) for table in c[totals > 0]])
    return float(mis.mean() / norm)


def _mi(table: np.ndarray) -> float:
    total = table.sum()
    if total <= 0:
        return 0.0
    p = table / total
    return max(_entropy(p.sum(1)) + _entropy(p.sum(0)) - _entropy(p.ravel()), 0.0)


def _entropy(p: np.ndarray) -> float:
    q = p[p > 0]
    return float(-(q * np.log2(q)).sum()) + 0.0  # + 0.0: no negative zero


def _counts(x: Any, ndim: int, name: str) -> np.ndarray:
    c = np.asarray(x, np.float64)
    if c.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} axes, got shape {c.shape}")
    if (c < 0).any() or not np.isfinite(c).all():
        raise ValueError(f"{name} must be finite and non-negative")
    return c
