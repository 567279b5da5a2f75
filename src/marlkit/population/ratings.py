"""Ratings of players from two-player games: Elo, openskill and TrueSkill.

A game is ``(i, j, outcome)``: players ``i`` and ``j`` (indices), ``outcome`` 1 when ``i`` won, 0.5 a draw, 0 when
``j`` won (what ``marlkit.population.selfplay.cross_play`` returns).

* **Elo** (``elo``): online updates in the order the games were played, ``R_i += K (S_i - E_i)`` with the expected
  score ``E_i = 1 / (1 + 10^((R_j - R_i) / scale))``; defaults ``K = 16``, ``scale = 400``, initial 1500. A
  difference of 200 points means an expected score of 0.76.
* **openskill** (``openskill_ratings``): the maintained Weng–Lin Bayesian ratings (``openskill.models``;
  PlackettLuce by default, or ThurstoneMostellerFull), each player a mean ``mu`` and uncertainty ``sigma``
  (defaults 25 and 25/3); ``elo_scale`` converts a ``mu`` difference into Elo-like points (the Thurstone model's
  win probability ``Phi(d / (sqrt 2 beta))`` matched to Elo's logistic).
* **TrueSkill** (``trueskill_ratings``): Microsoft's TrueSkill through the ``trueskill`` package, ``mu`` and
  ``sigma`` with its defaults (25, 25/3), the draw probability estimated from the games.

openskill and trueskill are imported when their function is called.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Game = tuple[int, int, float]

#: Elo's defaults here: the K-factor, the logistic scale and the initial rating.
ELO_K, ELO_SCALE, ELO_INITIAL = 16.0, 400.0, 1500.0


def _check(games: Sequence[Game], n: int) -> None:
    for g in games:
        i, j, s = g
        if not (0 <= i < n and 0 <= j < n and i != j) or s not in (0.0, 0.5, 1.0):
            raise ValueError(
                f"game {g!r} is not allowed: (i, j, outcome) with players 0 <= i != j < {n} and outcome 1 (i won), "
                f"0.5 (draw) or 0 (j won)"
            )


def elo_expected(r_i: float, r_j: float, scale: float = ELO_SCALE) -> float:
    """Elo's expected score of a player rated ``r_i`` against one rated ``r_j``."""
    return float(1.0 / (1.0 + 10.0 ** ((r_j - r_i) / scale)))


def elo(
    games: Sequence[Game], n: int, k: float = ELO_K, scale: float = ELO_SCALE, initial: float = ELO_INITIAL
) -> np.ndarray:
    """Online Elo ratings of ``n`` players after ``games``, in order."""
    _check(games, n)
    r = np.full(n, float(initial))
    for i, j, s in games:
        e = elo_expected(r[i], r[j], scale)
        r[i] += k * (s - e)
        r[j] -= k * (s - e)
    return r


@dataclass(frozen=True)
class Rating:
    """A Bayesian rating: mean and uncertainty (one standard deviation)."""

    mu: float
    sigma: float

    @property
    def ordinal(self) -> float:
        """A conservative estimate, ``mu - 3 sigma`` (what a leaderboard sorts by)."""
        return self.mu - 3.0 * self.sigma


OPENSKILL_MODELS = ("PlackettLuce", "ThurstoneMostellerFull", "BradleyTerryFull")


def openskill_ratings(games: Sequence[Game], n: int, model: str = "PlackettLuce") -> list[Rating]:
    """openskill ratings of ``n`` players after ``games``, in order (a draw is a shared rank)."""
    from openskill import models

    _check(games, n)
    if model not in OPENSKILL_MODELS:
        raise ValueError(f"openskill model {model!r} is not allowed: one of {OPENSKILL_MODELS}")
    m = getattr(models, model)()
    players = [m.rating(name=str(i)) for i in range(n)]
    for i, j, s in games:
        ranks = [0, 0] if s == 0.5 else ([0, 1] if s == 1.0 else [1, 0])
        [[players[i]], [players[j]]] = m.rate([[players[i]], [players[j]]], ranks=ranks)
    return [Rating(float(p.mu), float(p.sigma)) for p in players]


def openskill_elo_scale(beta: float = 25.0 / 6.0) -> float:
    """Elo points per unit of openskill ``mu``: Elo's win probability ``1/(1+10^(-d/400))`` has slope
    ``ln 10 / 1600`` at 0, the Thurstone model's ``Phi(d / (sqrt 2 beta))`` has ``1 / (2 sqrt(pi) beta)``."""
    return (1.0 / (2.0 * math.sqrt(math.pi) * beta)) / (math.log(10.0) / 1600.0)


def trueskill_ratings(games: Sequence[Game], n: int) -> list[Rating]:
    """TrueSkill ratings of ``n`` players after ``games``, in order."""
    import trueskill

    _check(games, n)
    draws = sum(1 for _, _, s in games if s == 0.5) / max(1, len(games))
    env = trueskill.TrueSkill(draw_probability=min(max(draws, 1e-3), 0.999))
    players = [env.create_rating() for _ in range(n)]
    for i, j, s in games:
        if s == 0.0:
            players[j], players[i] = trueskill.rate_1vs1(players[j], players[i], env=env)
        else:
            players[i], players[j] = trueskill.rate_1vs1(players[i], players[j], drawn=s == 0.5, env=env)
    return [Rating(float(p.mu), float(p.sigma)) for p in players]


def interleave(games: Sequence[Game], seed: int = 0) -> list[Game]:
    """The games in a seeded random order: online ratings (Elo) depend on the order, and a cross-play list is
    sorted by pair."""
    order = np.random.default_rng(seed).permutation(len(games))
    return [games[int(k)] for k in order]
