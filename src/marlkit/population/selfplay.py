"""Self-play on a batched competitive env: seats, matches, cross-play and the source that feeds a learner against
opponents drawn from a policy pool.

**Sides.** A competitive env is split into sides, each a set of seats (group, agent index): by default one side per
group when the env has several (``tag-v0``: predators ``adversaries``, prey ``good``), else one side per agent of its
one group (the matrix games: ``player_0``, ``player_1``). A **player** is a policy for every group of the env — a
learner's ``policy()`` — so it can take any side; in a game it acts only for its side's seats.

**Matches.** A game between players ``a`` and ``b`` of a two-sided env is a *paired, role-swapped* pair of
episodes from the same initial state: ``a`` on side 0 against ``b`` on side 1, then ``b`` on side 0 against ``a`` on
side 1. ``a``'s score is the mean per-agent return of its seats summed over both episodes, minus ``b``'s; ``a``
wins when it is positive, draws when it is zero. So an asymmetric game (predators and prey) becomes a symmetric
one, and a player is rated on both roles. ``cross_play`` plays every pair of a pool ``games`` times on batched
copies (one copy per game) and returns win rates, mean scores and the games for ratings
(``marlkit.population.ratings``).

**Training** (``SelfPlaySource``, a ``marlkit.core.BatchSource``): a ``SeatedEnv`` wraps the training env so that in
every copy the learner plays one side (copies alternate between the trained sides) and an opponent from the pool
plays the others; the opponents' seats are marked inactive (``info["active"]``), which every learner masks out of
its losses, so the learner trains only on its own seats. Before every ``snapshot_every``-th collection the
learner's current policy joins the pool, and the learner's win rate against every snapshot is measured by
``win_rate_games`` matches (what ``pfsp`` draws by). Each collection draws ``opponents_per_batch`` opponents
(``marlkit.population.pool.opponent_weights``), each playing a block of copies.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from marlkit.collect import Collector
from marlkit.core import checkpoint as ckpt
from marlkit.data.rollout import EpisodeStats, Rollout
from marlkit.population.pool import PolicyPool, opponent_weights

#: Entries of a learner's ``state()`` that hold random-generator states (kept when the learner restarts).
RANDOM_STATE_KEYS = ("rng", "generator")

Side = dict[str, tuple[int, ...]]
"""group -> indices of that group's agents on this side."""


def default_sides(env: Any) -> list[Side]:
    """One side per group when the env has several groups, else one side per agent of its one group."""
    groups = dict(env.groups)
    if len(groups) >= 2:
        return [{g: tuple(range(len(ids)))} for g, ids in groups.items()]
    ((g, ids),) = groups.items()
    if len(ids) < 2:
        raise ValueError(f"self-play needs at least two sides; env has one group {g!r} of one agent")
    return [{g: (i,)} for i in range(len(ids))]


def seat_masks(env: Any, sides: Sequence[Side], side_of_copy: np.ndarray) -> dict[str, np.ndarray]:
    """Per group ``(num_envs, n_agents)``: True at the seats of side ``side_of_copy[e]`` in copy ``e``."""
    masks = {g: np.zeros((env.num_envs, len(ids)), dtype=bool) for g, ids in env.groups.items()}
    for s, side in enumerate(sides):
        rows = side_of_copy == s
        for g, idx in side.items():
            masks[g][np.ix_(rows, list(idx))] = True
    return masks


def _merge(base: dict[str, np.ndarray], other: dict[str, np.ndarray], take: dict[str, np.ndarray]) -> None:
    """``base[g][take[g]] = other[g][take[g]]`` in place, per group."""
    for g, m in take.items():
        if m.any():
            base[g][m] = other[g][m]


class SeatedEnv:
    """A batched env in which the learner acts at its seats and fixed opponents at the others.

    ``learner_seats[g]`` (``(num_envs, n)`` bool) are the learner's; ``set_opponents([(policy, copies), ...])``
    gives who plays the remaining seats of which copies (``copies``: a bool mask over copies). ``step`` replaces the
    actions at opponents' seats by theirs; the learner's own seats are ``info["active"]`` (and the inner env's
    ``active``). Everything else is the inner env's."""

    def __init__(self, env: Any, learner_seats: dict[str, np.ndarray], opponent_explore: bool = True) -> None:
        self.env, self.learner_seats, self.opponent_explore = env, learner_seats, opponent_explore
        self.opponents: list[tuple[Any, np.ndarray]] = []
        self._obs: dict[str, np.ndarray] = {}
        self._info: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.env, name)

    @property
    def validate_actions(self) -> bool:
        return bool(self.env.validate_actions)

    @validate_actions.setter
    def validate_actions(self, value: bool) -> None:
        self.env.validate_actions = value

    @property
    def np_random(self) -> np.random.Generator:
        return self.env.np_random  # type: ignore[no-any-return]

    @np_random.setter
    def np_random(self, value: np.random.Generator) -> None:
        self.env.np_random = value

    def set_opponents(self, opponents: list[tuple[Any, np.ndarray]]) -> None:
        self.opponents = opponents

    def _seen(self, obs: dict[str, np.ndarray], info: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        self._obs, self._info = obs, info
        inner = info.get("active")
        active = {g: m & inner[g] if inner is not None else m.copy() for g, m in self.learner_seats.items()}
        return obs, {**info, "active": active}

    def reset(self, seed: int | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        for policy, _ in self.opponents:
            policy.reset()
        return self._seen(*self.env.reset(seed=seed))

    def step(self, actions: dict[str, np.ndarray]) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        merged = {g: np.array(a, copy=True) for g, a in actions.items()}
        state = None
        for policy, copies in self.opponents:
            if state is None and policy.uses_state:
                state = self.env.state()
            theirs, _ = policy.act(self._obs, state if policy.uses_state else None, self._info, self.opponent_explore)
            _merge(merged, theirs, {g: ~m & copies[:, None] for g, m in self.learner_seats.items()})
        obs, rewards, terminated, truncated, info = self.env.step(merged)
        obs, info = self._seen(obs, info)
        return obs, rewards, terminated, truncated, info


# --------------------------------------------------------------------------------------------------- matches
def side_returns(
    env: Any, players: Sequence[Any], sides: Sequence[Side], seed: int, explore: bool = False
) -> np.ndarray:
    """One episode in every copy of ``env`` (reset with ``seed``), ``players[s]`` playing side ``s``; returns
    ``(num_envs, n_sides)``: each side's mean per-agent return in each copy's first episode."""
    E = env.num_envs
    for p in players:
        p.reset()
    obs, info = env.reset(seed=seed)
    seats = [seat_masks(env, sides, np.full(E, s)) for s in range(len(sides))]
    done = np.zeros(E, dtype=bool)
    out = np.zeros((E, len(sides)))
    while not done.all():
        state = env.state() if any(p.uses_state for p in players) else None
        actions: dict[str, np.ndarray] | None = None
        for p, seat in zip(players, seats):
            a, _ = p.act(obs, state if p.uses_state else None, info, explore)
            if actions is None:
                actions = {g: np.array(v, copy=True) for g, v in a.items()}
            else:
                _merge(actions, a, seat)
        assert actions is not None
        obs, _, _, _, info = env.step(actions)
        new = info["episode_done"] & ~done
        if new.any():
            for s, side in enumerate(sides):
                parts = [info["episode_return"][g][:, list(idx)] for g, idx in side.items()]
                out[new, s] = np.concatenate(parts, axis=1).mean(axis=1)[new]
            done |= new
    return out


def match(
    env: Any, a: Any, b: Any, sides: Sequence[Side], seed: int, explore: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """``env.num_envs`` paired role-swapped games of ``a`` against ``b`` (see the module docstring); returns
    ``(outcome, score)`` per game: ``outcome`` 1 (``a`` won), 0.5 (draw), 0 (``b`` won), ``score`` ``a``'s return
    minus ``b``'s."""
    if len(sides) != 2:
        raise ValueError(f"a match is between two sides, this env has {len(sides)}")
    first = side_returns(env, [a, b], sides, seed, explore)
    second = side_returns(env, [b, a], sides, seed, explore)
    score = (first[:, 0] + second[:, 1]) - (first[:, 1] + second[:, 0])
    outcome = np.where(score > 1e-9, 1.0, np.where(score < -1e-9, 0.0, 0.5))
    return outcome, score


@dataclass
class CrossPlay:
    """Every pair of a pool played ``games`` times: ``win_rate[i, j]`` is the mean outcome of ``i`` against ``j``
    (draws count half; 0.5 on the diagonal), ``score[i, j]`` ``i``'s mean score against ``j``; ``games`` lists
    ``(i, j, outcome)`` per game for ratings."""

    names: list[str]
    win_rate: np.ndarray
    score: np.ndarray
    games: list[tuple[int, int, float]] = field(default_factory=list)

    def to_data(self) -> dict[str, Any]:
        return {
            "names": self.names,
            "win_rate": self.win_rate.round(4).tolist(),
            "score": self.score.round(4).tolist(),
            "games_per_pair": len(self.games) // max(1, len(self.names) * (len(self.names) - 1) // 2),
        }


def cross_play(
    env: Any,
    players: Sequence[Any],
    names: Sequence[str],
    sides: Sequence[Side],
    seed: int,
    explore: bool = False,
) -> CrossPlay:
    """Every pair of ``players`` in ``env.num_envs`` paired games each, all pairs from the same initial states."""
    n = len(players)
    win, score = np.full((n, n), 0.5), np.zeros((n, n))
    games: list[tuple[int, int, float]] = []
    for i in range(n):
        for j in range(i + 1, n):
            outcome, s = match(env, players[i], players[j], sides, seed, explore)
            win[i, j], win[j, i] = outcome.mean(), 1.0 - outcome.mean()
            score[i, j], score[j, i] = s.mean(), -s.mean()
            games.extend((i, j, float(o)) for o in outcome)
    return CrossPlay(list(names), win, score, games)


def one_shot_strategy(policy: Any, env: Any, seat: int = 0) -> np.ndarray:
    """The mixed strategy ``policy`` plays at ``seat`` of a one-group matrix game (``marlkit.envs.matrix``) on the
    first observation: its exact action probabilities there (its ``action_distributions``)."""
    obs, info = env.reset(seed=0)
    ((group, o),) = obs.items()
    probs = policy.action_distributions({group: o[:1]}, info)[group].probs
    return np.asarray(probs[0, seat], dtype=np.float64)


# --------------------------------------------------------------------------------------------------- training
@dataclass(frozen=True)
class SelfPlayConfig:
    """How a learner is trained against a pool of its own snapshots."""

    sampling: str = "pfsp"
    """How opponents are drawn from the pool: latest (self-play), uniform (fictitious self-play) or pfsp."""
    weighting: str = "hard"
    """PFSP weighting of the win rate p: hard (1-p)^2, variance p(1-p) or linear 1-p."""
    snapshot_every: int = 10
    """Updates between snapshots of the learner into the pool (the first is taken before the first update)."""
    opponents_per_batch: int = 4
    """Opponents drawn for each collection, each playing a block of the copies."""
    win_rate_games: int = 32
    """Paired games against every snapshot each time one is taken (the win rates pfsp reads)."""
    train_sides: tuple[int, ...] | None = None
    """Which sides the learner plays (indices into the env's sides); default all, alternating over copies."""
    opponent_explore: bool = True
    """Opponents act as while training (sampling) instead of greedily."""
    match_explore: bool = False
    """Win-rate matches (and cross-play) sample actions instead of acting greedily (mixed strategies of matrix
    games need it)."""
    fresh_response: bool = False
    """After every snapshot the learner restarts from its initial weights and optimiser (its random streams go
    on), so each ``snapshot_every`` updates train a new approximate best response to the pool as it is: the
    iterations of fictitious play (with ``uniform`` sampling), whose pool average is the strategy that approaches
    equilibrium. Off: one learner trains on (warm-started) and the pool records its history."""

    def __post_init__(self) -> None:
        from marlkit.core.config import ConfigError
        from marlkit.population.pool import SAMPLING, WEIGHTINGS

        if self.sampling not in SAMPLING:
            raise ConfigError(f"selfplay.sampling = {self.sampling!r} is not allowed: one of {SAMPLING}")
        if self.weighting not in WEIGHTINGS:
            raise ConfigError(f"selfplay.weighting = {self.weighting!r} is not allowed: one of {WEIGHTINGS}")
        for name in ("snapshot_every", "opponents_per_batch", "win_rate_games"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"selfplay.{name} = {getattr(self, name)!r} is not allowed: an integer >= 1")
        if self.train_sides is not None:
            object.__setattr__(self, "train_sides", tuple(int(s) for s in self.train_sides))


class SelfPlaySource:
    """Collections of ``learner`` against opponents from ``pool`` (see the module docstring). ``env`` is the
    training env (all its groups), ``match_env`` a second env of ``win_rate_games`` copies for the win rates."""

    def __init__(
        self,
        learner: Any,
        env: Any,
        match_env: Any,
        pool: PolicyPool,
        config: SelfPlayConfig,
        seed: int,
        sides: Sequence[Side] | None = None,
        agent: str = "main",
        role: str | None = None,
    ) -> None:
        from marlkit.core.config import ConfigError

        self.learner, self.pool, self.config, self.agent = learner, pool, config, agent
        #: A league role: opponents by its matchmaking rule (``marlkit.population.league``) instead of ``sampling``.
        self.role = role
        self.sides = list(sides) if sides is not None else default_sides(env)
        trained = config.train_sides if config.train_sides is not None else tuple(range(len(self.sides)))
        if not trained or any(not 0 <= s < len(self.sides) for s in trained):
            raise ConfigError(
                f"selfplay.train_sides = {config.train_sides!r} is not allowed: indices of the env's "
                f"{len(self.sides)} sides ({self.sides})"
            )
        self.side_of_copy = np.array([trained[e % len(trained)] for e in range(env.num_envs)])
        self.env = SeatedEnv(env, seat_masks(env, self.sides, self.side_of_copy), config.opponent_explore)
        self.match_env = match_env
        seeds = np.random.SeedSequence(seed).spawn(3)
        self.rng = np.random.default_rng(seeds[0])
        self.match_seed = int(seeds[1].generate_state(1)[0])
        self.collector = Collector(
            self.env,  # type: ignore[arg-type]  # a MultiAgentEnv in all that the collector reads
            learner,
            learner.config.rollout_steps,
            seed=int(seeds[2].generate_state(1)[0]),
        )
        self.collections = 0
        self.env_steps = 0
        #: The learner as built (``fresh_response`` restarts it from here).
        self.initial_state = copy.deepcopy(learner.state()) if config.fresh_response else None
        self.win_rates: list[float] = []
        self.opponent_counts: list[int] = []

    @property
    def steps_per_batch(self) -> int:
        return self.collector.steps_per_batch

    def take_snapshot(self) -> None:
        """The learner's current policy joins the pool; its win rates against every snapshot are re-measured."""
        self.pool.add(self.learner.policy(), self.collections, self.env_steps, self.agent, self.role or "main")
        if self.config.sampling == "pfsp" or self.role is not None:  # the samplings that read them
            current = self.learner.policy(seed=self.match_seed)
            self.win_rates = [
                float(
                    match(
                        self.match_env,
                        current,
                        s.build(self.match_seed),
                        self.sides,
                        self.match_seed,
                        self.config.match_explore,
                    )[0].mean()
                )
                for s in self.pool.snapshots
            ]
        else:
            self.win_rates = [0.5] * len(self.pool)
        self.opponent_counts += [0] * (len(self.pool) - len(self.opponent_counts))
        if self.pool.folder is not None:
            report = {
                "collections": self.collections,
                "env_steps": self.env_steps,
                "names": self.pool.names,
                "win_rates": self.win_rates,
                "opponent_counts": self.opponent_counts,
                "weights": self.weights().tolist(),
            }
            (self.pool.folder / "win_rates.json").write_text(json.dumps(report, indent=1) + "\n")

    def restart_learner(self) -> None:
        """The learner back to its initial weights and optimiser state; entries that hold random-generator states
        (``RANDOM_STATE_KEYS``) keep their current values, so a new response does not replay the last one's
        exploration noise."""
        assert self.initial_state is not None
        current = self.learner.state()
        fresh = copy.deepcopy(self.initial_state)
        for key in RANDOM_STATE_KEYS:
            if key in current:
                fresh[key] = current[key]
        self.learner.load_state(fresh)

    def weights(self) -> np.ndarray:
        """The current probabilities of drawing each snapshot."""
        if self.role is not None:
            from marlkit.population.league import opponent_distribution

            roles = [s.role for s in self.pool.snapshots]
            own = [s.agent == self.agent for s in self.pool.snapshots]
            return opponent_distribution(self.role, roles, self.win_rates, own)
        return opponent_weights(self.config.sampling, self.win_rates, self.config.weighting)

    def collect(self) -> tuple[Rollout, EpisodeStats]:
        if self.collections % self.config.snapshot_every == 0 or not len(self.pool):
            self.take_snapshot()
            if self.initial_state is not None and self.collections > 0:
                self.restart_learner()
        # Snapshots added to the pool from elsewhere (a league, a test) count as even until measured.
        self.win_rates += [0.5] * (len(self.pool) - len(self.win_rates))
        self.opponent_counts += [0] * (len(self.pool) - len(self.opponent_counts))
        k = self.config.opponents_per_batch
        w = self.weights()
        chosen = [int(i) for i in self.rng.choice(len(w), size=k, p=w)]
        E = self.env.num_envs
        block = np.arange(E) * k // E  # copy -> which of the k opponents plays it
        opponents = []
        for i, idx in enumerate(chosen):
            self.opponent_counts[idx] += 1
            seed = int(self.rng.integers(2**31))
            opponents.append((self.pool[idx].build(seed), block == i))
        self.env.set_opponents(opponents)
        batch, stats = self.collector.collect()
        self.collections += 1
        self.env_steps += self.steps_per_batch
        return batch, stats

    def state(self) -> dict[str, Any]:
        return {
            "collector": self.collector.state(),
            "rng": ckpt.generator_state(self.rng),
            "collections": self.collections,
            "env_steps": self.env_steps,
            "win_rates": list(self.win_rates),
            "opponent_counts": list(self.opponent_counts),
            "pool_size": len(self.pool),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.collector.load_state(state["collector"])
        self.rng = ckpt.restore_generator(state["rng"])
        self.collections, self.env_steps = int(state["collections"]), int(state["env_steps"])
        self.win_rates = [float(x) for x in state["win_rates"]]
        self.opponent_counts = [int(x) for x in state["opponent_counts"]]
        self.pool.truncate(int(state["pool_size"]))
