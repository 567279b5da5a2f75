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
#: A league directory: what it trains, its run config (``marlkit league LEAGUE_DIR`` rates its pool), its pool and
#: checkpoints.
LEAGUE_FILE = "league.yaml"
LEAGUE_KIND = "league"
DEFAULT_AGENTS: tuple[tuple[str, str], ...] = (
    ("main", "main"),
    ("main_exploiter", "main_exploiter"),
    ("league_exploiter", "league_exploiter"),
)


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
    agents: Sequence[tuple[str, str]] = DEFAULT_AGENTS,
    selfplay: Any = None,
    pool_dir: str | Path | None = None,
    league_dir: str | Path | None = None,
    checkpoint_every: int = 0,
    sets: Sequence[str] = (),
    preset: str | Path | None = "auto",
    **overrides: Any,
) -> tuple[PolicyPool, list[LeagueMember]]:
    """A league, simply: one learner per ``(name, role)`` of ``agents``, all snapshotting into one pool and each
    drawing its opponents by its role's rule (``marlkit.population.league``); ``updates`` rounds in which every
    agent collects and updates once. After each of its snapshots an exploiter may reset to its initial weights
    (``should_reset``). Returns the pool (in ``pool_dir`` if given) and the members.

    With ``league_dir`` the league is a directory: ``league.yaml`` (algorithm, env, seed, agents, self-play config),
    ``config.yaml`` (the run config), ``pool/`` and, every ``checkpoint_every`` rounds (0: none) and at the end,
    ``checkpoints/step_<rounds>.pt``: every member's learner and source state, the league's generators and the
    global ones, plain data written atomically with a manifest (``marlkit.core.checkpoint``). Each checkpoint
    restarts every member's episodes from its env's saved generator, as a resume does (an env's mid-episode state
    is not saved), so a league resumed from a checkpoint (``resume_league``) gives the same numbers as one that
    ran on."""
    from marlkit.experiment.run import make_run_config
    from marlkit.experiment.selfplay import selfplay_config
    from marlkit.population.league import ROLES

    cfg = make_run_config(algo, env, None, sets, preset, seed=seed, **overrides)
    sp = selfplay_config(selfplay)
    agents = [(str(name), str(role)) for name, role in agents]
    if bad := [r for _, r in agents if r not in ROLES]:
        raise ConfigError(f"league roles {bad} are not allowed: each one of {ROLES}")
    if not isinstance(checkpoint_every, int) or checkpoint_every < 0:
        raise ConfigError(f"checkpoint_every = {checkpoint_every!r} is not allowed: rounds, an integer >= 0")
    folder = Path(league_dir) if league_dir is not None else None
    if folder is not None:
        import dataclasses

        import yaml

        from marlkit.experiment.run import _plain

        if (folder / LEAGUE_FILE).exists():
            raise ConfigError(f"{folder} already holds a league; continue it with resume_league (--resume)")
        folder.mkdir(parents=True, exist_ok=True)
        cfg.save(folder / rundir.CONFIG_FILE)
        spec = {
            "seed": seed,
            "updates": updates,
            "checkpoint_every": checkpoint_every,
            "agents": [list(a) for a in agents],
            "selfplay": _plain(dataclasses.asdict(sp)),
        }
        (folder / LEAGUE_FILE).write_text(yaml.safe_dump(spec, sort_keys=False))
        pool_dir = folder / POOL_DIR if pool_dir is None else pool_dir
    pool = PolicyPool(pool_dir)
    members = _members(cfg, sp, agents, seed, pool)
    rng = np.random.default_rng(seed)
    _rounds(members, pool, sp, rng, 0, updates, checkpoint_every, folder)
    return pool, members


def resume_league(league_dir: str | Path, updates: int | None = None) -> tuple[PolicyPool, list[LeagueMember]]:
    """Continue the league in ``league_dir`` from its newest intact checkpoint (from the start when it has none)
    up to ``updates`` rounds (default: the budget it was started with); the pool is cut to the snapshots that
    checkpoint had seen."""
    import yaml

    from marlkit.core import checkpoint as ckpt
    from marlkit.experiment.selfplay import selfplay_config

    folder = Path(league_dir)
    if not (folder / LEAGUE_FILE).is_file():
        raise ConfigError(f"{folder} is not a league directory (it has no {LEAGUE_FILE}); start one with train_league")
    spec = yaml.safe_load((folder / LEAGUE_FILE).read_text())
    cfg = RunConfig.load(folder)
    sp = selfplay_config(spec["selfplay"])
    agents = [(str(n), str(r)) for n, r in spec["agents"]]
    pool = PolicyPool.load(folder / POOL_DIR)
    members = _members(cfg, sp, agents, int(spec["seed"]), pool)
    rng = np.random.default_rng(int(spec["seed"]))
    found = ckpt.load_latest(folder / rundir.CHECKPOINT_DIR)
    done = 0
    if found is None:
        pool.truncate(0)
    else:
        _, state = found
        if state.get("kind") != LEAGUE_KIND or sorted(state["members"]) != sorted(m.name for m in members):
            raise ConfigError(f"{found[0]} is not a checkpoint of this league (agents {[m.name for m in members]})")
        for m in members:
            saved = state["members"][m.name]
            m.learner.load_state(saved["algo"])
            m.source.load_state(saved["source"])
            m.resets = int(saved["resets"])
        rng = ckpt.restore_generator(state["league_rng"])
        ckpt.set_global_rng_state(state["rng"])
        done = int(state["rounds"])
    total = int(spec["updates"]) if updates is None else updates
    _rounds(members, pool, sp, rng, done, total, int(spec["checkpoint_every"]), folder)
    return pool, members


def _members(cfg: RunConfig, sp: Any, agents: Sequence[tuple[str, str]], seed: int, pool: PolicyPool) -> list[Any]:
    """One learner and self-play source per agent, each seeded from its own child of ``seed``."""
    import copy

    import torch

    from marlkit.experiment.runner import build_algo, make_env
    from marlkit.population.selfplay import SelfPlaySource

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
    return members


def _rounds(
    members: list[LeagueMember],
    pool: PolicyPool,
    sp: Any,
    rng: np.random.Generator,
    done: int,
    updates: int,
    checkpoint_every: int,
    folder: Path | None,
) -> None:
    """Rounds ``done + 1 .. updates`` of the league; a checkpoint every ``checkpoint_every`` rounds and at the end
    (with a ``folder``)."""
    import copy

    from marlkit.experiment.runner import learn
    from marlkit.population.league import should_reset

    for r in range(done + 1, updates + 1):
        for m in members:
            learn(m.learner, m.source, 1)
            snapshot_taken = (m.source.collections - 1) % sp.snapshot_every == 0
            roles = [snap.role for snap in pool.snapshots]
            if snapshot_taken and should_reset(m.role, roles, m.source.win_rates, rng):
                m.learner.load_state(copy.deepcopy(m.initial))
                m.resets += 1
        if folder is not None and ((checkpoint_every and r % checkpoint_every == 0) or r == updates):
            save_league_checkpoint(folder, r, members, rng)


def save_league_checkpoint(folder: Path, rounds: int, members: list[LeagueMember], rng: np.random.Generator) -> Path:
    """The league after ``rounds`` rounds into ``folder/checkpoints/step_<rounds>.pt``; then every member's
    episodes restart from its env's saved generator, as they do when the league resumes from this checkpoint."""
    from marlkit.core import checkpoint as ckpt

    state = {
        "format": ckpt.FORMAT,
        "kind": LEAGUE_KIND,
        "rounds": rounds,
        "rng": ckpt.global_rng_state(),
        "league_rng": ckpt.generator_state(rng),
        "members": {
            m.name: {"role": m.role, "algo": m.learner.state(), "source": m.source.state(), "resets": m.resets}
            for m in members
        },
    }
    path = ckpt.save_atomic(state, ckpt.path_for(folder / rundir.CHECKPOINT_DIR, rounds))
    for m in members:
        m.source.collector.load_state(m.source.collector.state())
    return path
