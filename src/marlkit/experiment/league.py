"""Rating the players of run directories against each other: ``marlkit league RUN_DIRS...``.

The players of a run directory are the snapshots of its self-play pool (``pool/``) when it has one, else the
weights-only policy of its newest intact checkpoint. Every pair plays ``games`` paired role-swapped games on
batched copies of the first run's env (``marlkit.population.selfplay.cross_play``); the games are rated with Elo,
openskill and TrueSkill (``marlkit.population.ratings``); the cross-play win rates can be drawn as a heat map.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from marlkit.core import rundir
from marlkit.core.config import ConfigError
from marlkit.experiment.run import RunConfig
from marlkit.population import ratings
from marlkit.population.pool import PolicyPool
from marlkit.population.selfplay import CrossPlay, cross_play, default_sides

POOL_DIR = "pool"


def players_of(run_dirs: Sequence[str | Path], seed: int = 0) -> tuple[RunConfig, list[str], list[Any]]:
    """The env config of the first run and every run's players with their names (``<run>:<snapshot>``)."""
    if not run_dirs:
        raise ConfigError("name at least one run directory")
    names: list[str] = []
    players: list[Any] = []
    first: RunConfig | None = None
    for d in map(Path, run_dirs):
        try:
            cfg = RunConfig.load(d)
        except FileNotFoundError as e:
            raise ConfigError(f"{d} is not a run directory: {e}") from None
        if first is None:
            first = cfg
        elif (cfg.env.id, cfg.env.kwargs) != (first.env.id, first.env.kwargs):
            raise ConfigError(
                f"run {d} trained on {cfg.env.id} {cfg.env.kwargs}, run {run_dirs[0]} on {first.env.id} "
                f"{first.env.kwargs}: a league's players share one env"
            )
        pool = PolicyPool.load(d / POOL_DIR)
        if len(pool):
            for snap in pool.snapshots:
                names.append(f"{d.name}:{snap.name}")
                players.append(snap.build(seed))
            continue
        path, state = rundir.find_checkpoint(d)
        found = rundir.policy_of(state, seed)
        if found is None:
            raise ConfigError(f"{path} holds no weights-only policy (and {d} has no {POOL_DIR}/)")
        names.append(f"{d.name}:step_{found[1]}")
        players.append(found[0])
    assert first is not None
    return first, names, players


@dataclass
class LeagueTable:
    """The cross-play of a league and its ratings (one entry per player, in ``cross.names`` order)."""

    cross: CrossPlay
    elo: np.ndarray
    openskill: list[ratings.Rating]
    trueskill: list[ratings.Rating]

    def rows(self) -> list[dict[str, Any]]:
        n = len(self.cross.names)
        mean_win = (self.cross.win_rate.sum(axis=1) - 0.5) / max(1, n - 1)
        return [
            {
                "player": name,
                "win_rate": float(mean_win[i]),
                "elo": float(self.elo[i]),
                "openskill_mu": self.openskill[i].mu,
                "openskill_sigma": self.openskill[i].sigma,
                "trueskill_mu": self.trueskill[i].mu,
                "trueskill_sigma": self.trueskill[i].sigma,
            }
            for i, name in enumerate(self.cross.names)
        ]


def rate(cross: CrossPlay, seed: int = 0) -> LeagueTable:
    """Elo (games in a seeded random order), openskill (PlackettLuce) and TrueSkill of a cross-play."""
    n = len(cross.names)
    games = ratings.interleave(cross.games, seed)
    return LeagueTable(
        cross, ratings.elo(games, n), ratings.openskill_ratings(games, n), ratings.trueskill_ratings(games, n)
    )


def league(run_dirs: Sequence[str | Path], games: int = 100, seed: int = 0, explore: bool = False) -> LeagueTable:
    """Cross-play and ratings of every player of ``run_dirs`` (``games`` paired games per pair)."""
    from marlkit.experiment.runner import make_env

    cfg, names, players = players_of(run_dirs, seed)
    if len(players) < 2:
        raise ConfigError(f"a league needs at least two players; {', '.join(map(str, run_dirs))} hold {len(players)}")
    env = make_env(cfg, games)
    return rate(cross_play(env, players, names, default_sides(env), seed, explore), seed)


def plot_cross_play(cross: CrossPlay, path: str | Path, title: str = "cross-play win rate") -> Path:
    """The win-rate matrix as a heat map PNG (row player's win rate against the column player)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(cross.names)
    size = max(4.0, 0.45 * n + 2.5)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    im = ax.imshow(cross.win_rate, vmin=0.0, vmax=1.0, cmap="RdBu_r")
    ax.set_xticks(range(n), cross.names, rotation=90, fontsize=7)
    ax.set_yticks(range(n), cross.names, fontsize=7)
    ax.set_xlabel("opponent")
    ax.set_ylabel("player")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="win rate (draws count half)")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------------------ league training
@dataclass
class LeagueMember:
    """One trained agent of a league: its role, learner and source, and the state it resets to."""

    name: str
    role: str
    learner: Any
    source: Any
    initial: dict[str, Any]
    resets: int = 0


def train_league(
    algo: str,
    env: str,
    updates: int,
    seed: int = 0,
    *,
    agents: Sequence[tuple[str, str]] = (
        ("main", "main"),
        ("main_exploiter", "main_exploiter"),
        ("league_exploiter", "league_exploiter"),
    ),
    selfplay: Any = None,
    pool_dir: str | Path | None = None,
    preset: str | Path | None = "auto",
    **overrides: Any,
) -> tuple[PolicyPool, list[LeagueMember]]:
    """A league, simply: one learner per ``(name, role)`` of ``agents``, all snapshotting into one pool and each
    drawing its opponents by its role's rule (``marlkit.population.league``); ``updates`` rounds in which every
    agent collects and updates once. After each of its snapshots an exploiter may reset to its initial weights
    (``should_reset``). No run directory or checkpoints: the pool (in ``pool_dir`` if given) is the result."""
    import copy

    import torch

    from marlkit.experiment.run import make_run_config
    from marlkit.experiment.runner import build_algo, learn, make_env
    from marlkit.experiment.selfplay import selfplay_config
    from marlkit.population.league import ROLES, should_reset
    from marlkit.population.selfplay import SelfPlaySource

    cfg = make_run_config(algo, env, None, (), preset, seed=seed, **overrides)
    sp = selfplay_config(selfplay)
    if bad := [r for _, r in agents if r not in ROLES]:
        raise ConfigError(f"league roles {bad} are not allowed: each one of {ROLES}")
    pool = PolicyPool(pool_dir)
    rng = np.random.default_rng(seed)
    members = []
    for (name, role), child in zip(agents, np.random.SeedSequence(seed).spawn(len(agents))):
        s = int(child.generate_state(1)[0])
        torch.manual_seed(s)
        train_env = make_env(cfg, cfg.env.num_envs, s)
        learner = build_algo(cfg, train_env, s)
        source = SelfPlaySource(
            learner, train_env, make_env(cfg, sp.win_rate_games), pool, sp, s + 1, agent=name, role=role
        )
        members.append(LeagueMember(name, role, learner, source, copy.deepcopy(learner.state())))
    for _ in range(updates):
        for m in members:
            learn(m.learner, m.source, 1)
            snapshot_taken = (m.source.collections - 1) % sp.snapshot_every == 0
            roles = [snap.role for snap in pool.snapshots]
            if snapshot_taken and should_reset(m.role, roles, m.source.win_rates, rng):
                m.learner.load_state(copy.deepcopy(m.initial))
                m.resets += 1
    return pool, members
