"""League roles, simply: who a main agent, a main exploiter and a league exploiter play, and when an exploiter
starts over.

After Vinyals et al. (2019), "Grandmaster level in StarCraft II using multi-agent reinforcement learning", Nature
575 (Methods, "League composition" and "Prioritized fictitious self-play"):

* **main agent** — 35% self-play (its own newest snapshot), 50% PFSP (``hard``) over every snapshot of the league,
  15% PFSP (``hard``) over the exploiters' snapshots (what finds its weaknesses; the whole league when there are
  none yet). Never reset.
* **main exploiter** — plays the main agents' newest snapshot while it beats it at least 10% of the time, else
  PFSP (``variance``) over the main agents' snapshots (opponents of its own level, to climb from). Resets to its
  initial weights once it beats the newest main agent 70% of the time (it found a weakness; a snapshot keeps it).
* **league exploiter** — PFSP (``hard``) over every snapshot (weaknesses of the whole league). Resets with
  probability 25% once its PFSP-weighted win rate reaches 70%.

The functions take the league's snapshots as roles (``roles[i]``: the role of the agent snapshot ``i`` is of) and
the win rates of the agent choosing against each, so they serve any trainer and are tested on hand-built tables.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from marlkit.population.pool import opponent_weights

ROLES = ("main", "main_exploiter", "league_exploiter")
#: AlphaStar's mix for main agents: self-play, PFSP over the league, PFSP over the exploiters.
MAIN_MIX = (0.35, 0.5, 0.15)
EXPLOITER_FLOOR = 0.1
RESET_WIN_RATE = 0.7
LEAGUE_EXPLOITER_RESET_PROBABILITY = 0.25


def _check(role: str, roles: Sequence[str], win_rates: Sequence[float]) -> None:
    if role not in ROLES:
        raise ValueError(f"league role {role!r} is not allowed: one of {ROLES}")
    if bad := sorted({r for r in roles if r not in ROLES}):
        raise ValueError(f"snapshot roles {bad} are not allowed: each one of {ROLES}")
    if len(roles) != len(win_rates) or not len(roles):
        raise ValueError(
            f"need one win rate per snapshot and at least one snapshot, got {len(roles)} and {len(win_rates)}"
        )


def _pfsp_among(indices: list[int], win_rates: np.ndarray, n: int, weighting: str) -> np.ndarray:
    w = np.zeros(n)
    if indices:
        w[indices] = opponent_weights("pfsp", win_rates[indices], weighting)
    return w


def opponent_distribution(
    role: str, roles: Sequence[str], win_rates: Sequence[float], own: Sequence[bool] | None = None
) -> np.ndarray:
    """Probabilities over the league's snapshots (oldest first) of the next opponent of an agent of ``role``.

    ``roles[i]`` is the role of the agent snapshot ``i`` was taken from, ``win_rates[i]`` the choosing agent's
    win rate against it, ``own[i]`` whether the snapshot is of the choosing agent itself (its self-play)."""
    _check(role, roles, win_rates)
    n, p = len(roles), np.asarray(win_rates, dtype=np.float64)
    own = list(own) if own is not None else [False] * n
    every = list(range(n))
    if role == "main":
        mine = [i for i in every if own[i]]
        sp = np.zeros(n)
        sp[mine[-1] if mine else n - 1] = 1.0
        exploiters = [i for i in every if roles[i] != "main"] or every
        w = MAIN_MIX[0] * sp + MAIN_MIX[1] * _pfsp_among(every, p, n, "hard")
        return w + MAIN_MIX[2] * _pfsp_among(exploiters, p, n, "hard")
    if role == "main_exploiter":
        mains = [i for i in every if roles[i] == "main"] or every
        newest = mains[-1]
        if p[newest] >= EXPLOITER_FLOOR:
            w = np.zeros(n)
            w[newest] = 1.0
            return w
        return _pfsp_among(mains, p, n, "variance")
    return _pfsp_among(every, p, n, "hard")


def should_reset(role: str, roles: Sequence[str], win_rates: Sequence[float], rng: np.random.Generator) -> bool:
    """Whether an exploiter starts over from its initial weights (see the module docstring); never a main agent."""
    _check(role, roles, win_rates)
    p = np.asarray(win_rates, dtype=np.float64)
    if role == "main":
        return False
    if role == "main_exploiter":
        mains = [i for i, r in enumerate(roles) if r == "main"]
        return bool(mains) and p[mains[-1]] >= RESET_WIN_RATE
    weighted = float(opponent_distribution(role, roles, win_rates) @ p)
    return weighted >= RESET_WIN_RATE and bool(rng.random() < LEAGUE_EXPLOITER_RESET_PROBABILITY)
