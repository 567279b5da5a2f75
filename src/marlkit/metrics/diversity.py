"""Behavioural diversity of a team: System Neural Diversity (SND) over arrays of action-distribution parameters.

Bettini, Kortvelesy & Prorok, "Controlling Behavioral Diversity in Multi-Agent Reinforcement Learning" (ICML 2024)
and "System Neural Diversity: Measuring Behavioral Heterogeneity in Multi-Agent Learning" (JMLR 2025,
https://arxiv.org/abs/2305.02128): SND is the mean over unordered agent pairs ``{i, j}`` of the mean over a set of
observations ``O`` (collected by rolling the team out) of the distance between the two agents' action
distributions *on the same observation*::

    SND = 2 / (n (n - 1)) * sum_{i < j} 1/|O| * sum_{o in O} W2(pi_i(o), pi_j(o))

with ``W2`` the Wasserstein-2 distance. It is 0 for a team of identical policies, grows with how differently the
agents would act in the same situation, and is a metric on the policies (symmetric, triangle inequality), so it
scales with the units of the actions: a Gaussian policy whose means and deviations are all doubled has twice the
SND.

**Distances.**

* Diagonal Gaussians (continuous actions): the closed form
  ``W2(N(m1, diag s1^2), N(m2, diag s2^2))^2 = |m1 - m2|^2 + |s1 - s2|^2``.
* Categorical (discrete actions): ``"w2"`` (the default) is the Wasserstein-2 distance with the actions embedded as
  the vertices of the probability simplex (one-hot vectors, Euclidean ground metric). Every two distinct actions
  are then ``sqrt(2)`` apart, so an optimal plan leaves the common mass ``min(p, q)`` in place and moves the
  rest, the total variation ``TV = 1/2 |p - q|_1``, at squared cost 2: ``W2 = sqrt(2 TV)``. It keeps SND's
  definition literal for discrete actions, treats no two actions as closer than others (an action index has no
  geometry), and lies in ``[0, sqrt(2)]``. ``"tv"`` (total variation, ``[0, 1]``, what the SND authors' discrete
  experiments use) and ``"hellinger"`` (``sqrt(1 - sum sqrt(p q))``, ``[0, 1]``) are there for comparison; all
  three are 0 exactly when the distributions are equal and order pairs of one action the same way.

Arrays are ``(n_agents, n_observations, ...)``: entry ``[i, k]`` is agent i's distribution on observation k. The
rollout that gathers the observations and evaluates every agent's policy on each is
``marlkit.population.behaviour.snd_of_policy``.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

CategoricalDistance = Literal["w2", "tv", "hellinger"]
CATEGORICAL_DISTANCES: tuple[str, ...] = ("w2", "tv", "hellinger")


def gaussian_w2(mean_a: Any, std_a: Any, mean_b: Any, std_b: Any) -> np.ndarray:
    """Wasserstein-2 distance between diagonal Gaussians, over the last axis (the action dimensions); the inputs
    broadcast against each other."""
    ma, mb = np.asarray(mean_a, np.float64), np.asarray(mean_b, np.float64)
    sa, sb = np.asarray(std_a, np.float64), np.asarray(std_b, np.float64)
    if (sa < 0).any() or (sb < 0).any():
        raise ValueError("standard deviations must be >= 0 (pass std, not log_std)")
    out: np.ndarray = np.sqrt(((ma - mb) ** 2).sum(-1) + ((sa - sb) ** 2).sum(-1))
    return out


def categorical_distance(p: Any, q: Any, distance: CategoricalDistance = "w2") -> np.ndarray:
    """Distance between categorical distributions over the last axis: ``"w2"`` (Wasserstein-2 over the one-hot
    simplex, ``sqrt(2 TV)``), ``"tv"`` or ``"hellinger"`` (see the module docstring)."""
    a, b = _probs(p, "p"), _probs(q, "q")
    out: np.ndarray
    if distance == "tv" or distance == "w2":
        tv = 0.5 * np.abs(a - b).sum(-1)
        out = np.sqrt(2.0 * tv) if distance == "w2" else tv
        return out
    if distance == "hellinger":
        out = np.sqrt(np.clip(1.0 - np.sqrt(a * b).sum(-1), 0.0, None))
        return out
    raise ValueError(f"unknown categorical distance {distance!r}; choose one of {CATEGORICAL_DISTANCES}")


def pairwise_behavioural_distance(
    probs: Any = None,
    mean: Any = None,
    std: Any = None,
    distance: CategoricalDistance = "w2",
) -> np.ndarray:
    """``(n_agents, n_agents)`` matrix of the mean over observations of the distance between agents i and j.

    Give either ``probs`` ``(n_agents, n_obs, n_actions)`` (categorical policies) or ``mean`` and ``std``
    ``(n_agents, n_obs, action_dim)`` (diagonal Gaussians; ``std`` may be ``(n_agents, action_dim)`` or anything
    that broadcasts, for a state-independent deviation)."""
    if (probs is None) == (mean is None):
        raise ValueError("give either probs (categorical policies) or mean and std (Gaussian policies)")
    if probs is not None:
        p = _probs(probs, "probs")
        if p.ndim != 3:
            raise ValueError(f"probs must be (n_agents, n_observations, n_actions), got shape {p.shape}")
        i, j = np.triu_indices(p.shape[0], 1)
        d = categorical_distance(p[i], p[j], distance).mean(-1)
        n = p.shape[0]
    else:
        if std is None:
            raise ValueError("Gaussian policies need std as well as mean")
        m = np.asarray(mean, np.float64)
        if m.ndim != 3:
            raise ValueError(f"mean must be (n_agents, n_observations, action_dim), got shape {m.shape}")
        s = np.broadcast_to(_std(std, m), m.shape)
        i, j = np.triu_indices(m.shape[0], 1)
        d = gaussian_w2(m[i], s[i], m[j], s[j]).mean(-1)
        n = m.shape[0]
    out = np.zeros((n, n))
    out[i, j] = d
    out[j, i] = d
    return out


def system_neural_diversity(
    probs: Any = None,
    mean: Any = None,
    std: Any = None,
    distance: CategoricalDistance = "w2",
) -> float:
    """SND: the mean over agent pairs of ``pairwise_behavioural_distance`` (same arguments); 0 for one agent."""
    d = pairwise_behavioural_distance(probs, mean, std, distance)
    n = d.shape[0]
    if n < 2:
        return 0.0
    return float(d[np.triu_indices(n, 1)].mean())


def _probs(p: Any, name: str) -> np.ndarray:
    a = np.asarray(p, np.float64)
    if a.ndim < 1 or a.shape[-1] < 1:
        raise ValueError(f"{name} must hold distributions over its last axis, got shape {a.shape}")
    if (a < 0).any() or not np.allclose(a.sum(-1), 1.0, atol=1e-5):
        raise ValueError(f"{name} must hold probability distributions (non-negative, summing to 1 over the last axis)")
    return a


def _std(std: Any, mean: np.ndarray) -> np.ndarray:
    s = np.asarray(std, np.float64)
    if s.ndim == 2 and s.shape == (mean.shape[0], mean.shape[2]):  # one deviation per agent, state-independent
        s = s[:, None, :]
    if (s < 0).any():
        raise ValueError("std must be >= 0 (pass standard deviations, not log_std)")
    return s
