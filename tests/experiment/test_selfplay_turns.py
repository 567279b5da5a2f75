"""Self-play against a policy pool on a turn-based game (Kuhn poker): the opponent's seat is played by a pool
snapshot, not by the learner, and a run learns to beat a uniformly random player and its own first snapshot."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import marlkit
from marlkit.algorithms.team_policies import RandomPolicy
from marlkit.core import PolicySpaces
from marlkit.experiment.selfplay import selfplay
from marlkit.population.pool import PolicyPool
from marlkit.population.selfplay import SelfPlayConfig, SelfPlaySource, default_sides, match

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

KUHN = "kuhn-poker-v0"
QUIET = {"progress": False, "gif": False, "eval_every": 0, "log_every": 10**9, "eval_episodes": 4, "preset": "none"}


class Recorder:
    """The env a ``SeatedEnv`` wraps, recording what it is given: the observation, info and merged actions of
    every step."""

    def __init__(self, env: Any) -> None:
        self.env = env
        self.steps: list[tuple[dict[str, np.ndarray], dict[str, Any], dict[str, np.ndarray]]] = []
        self._last: tuple[dict[str, np.ndarray], dict[str, Any]] = ({}, {})

    def __getattr__(self, name: str) -> Any:
        return getattr(self.env, name)

    def reset(self, seed: int | None = None) -> Any:
        obs, info = self.env.reset(seed=seed)
        self._last = (obs, info)
        return obs, info

    def step(self, actions: dict[str, np.ndarray]) -> Any:
        self.steps.append((*self._last, {g: a.copy() for g, a in actions.items()}))
        out = self.env.step(actions)
        self._last = (out[0], out[4])
        return out


def test_the_opponent_seat_is_played_by_the_pool_snapshot_not_the_learner() -> None:
    """The learner trains 12 updates on Kuhn poker against a pool that holds only its untrained snapshot; in the
    next collection, every move made at an opponent's seat is the snapshot's greedy move (opponents act greedily
    here), the learner's own greedy policy would have moved differently at some of them, and the learner's batch
    holds only its own seats."""
    from marlkit.experiment.run import make_run_config
    from marlkit.experiment.runner import build_algo, learn

    torch.manual_seed(0)
    cfg = make_run_config("ippo", KUHN, preset="none", num_envs=32, gamma=1.0, **{"algo.rollout_steps": 8})
    inner = marlkit.make(KUHN, num_envs=32, seed=0)
    learner = build_algo(cfg, inner, 0)
    recorder = Recorder(inner)
    sp = SelfPlayConfig(sampling="latest", snapshot_every=10**6, opponent_explore=False)
    source = SelfPlaySource(learner, recorder, marlkit.make(KUHN, num_envs=4), PolicyPool(), sp, seed=0)
    learn(learner, source, 12)
    assert len(source.pool) == 1 and source.pool[0].updates == 0
    snapshot, current = source.pool[0].build(0), learner.policy(seed=0)
    recorder.steps.clear()
    batch, _ = source.collect()
    learner_seat = np.arange(32) % 2  # copies alternate the learner between seat 0 and seat 1
    moved = differs = 0
    for obs, info, actions in recorder.steps:
        theirs = snapshot.act(obs, None, info, explore=False)[0]["player"]
        mine = current.act(obs, None, info, explore=False)[0]["player"]
        rows = np.flatnonzero((info["to_play"] >= 0) & (info["to_play"] != learner_seat))
        seat = info["to_play"][rows]
        np.testing.assert_array_equal(actions["player"][rows, seat], theirs[rows, seat])
        moved += len(rows)
        differs += int((mine[rows, seat] != theirs[rows, seat]).sum())
    assert moved > 100 and differs > 0, (moved, differs)
    active = np.asarray(batch.active["player"], dtype=bool)  # (steps, copies, seats)
    assert active[:, np.arange(32), learner_seat].all() and not active[:, np.arange(32), 1 - learner_seat].any()


def test_kuhn_selfplay_against_a_pfsp_pool_beats_random_and_its_first_snapshot(tmp_path) -> None:
    """IPPO, 20,000 env-steps (32 copies, gamma 1, seed 0) of self-play against a PFSP pool (a snapshot every 5
    updates). Over 500 paired, role-swapped games against uniform random (the same deals in both seats), the greedy
    final player's return summed over its two seats averages at least +0.5 per pair of hands (random scores 0, a
    best response to random +0.917), and it wins at least 60% of the decided games against its first snapshot
    (the untrained learner), both sampling their actions."""
    torch.set_num_threads(1)
    run = selfplay(
        "ippo",
        KUHN,
        steps=20_000,
        seed=0,
        selfplay={"sampling": "pfsp", "snapshot_every": 5, "win_rate_games": 16, "match_explore": True},
        num_envs=32,
        gamma=1.0,
        out=str(tmp_path),
        checkpoint_every=0,
        **QUIET,
    )
    pool = PolicyPool.load(run.run_dir / "pool")
    assert len(pool) >= 5
    env = marlkit.make(KUHN, num_envs=500)
    sides = default_sides(env)
    final = pool[-1].build(0)
    _, score = match(env, final, RandomPolicy(PolicySpaces.from_env(env), 7), sides, seed=1)
    assert score.mean() / 2 >= 0.5, score.mean() / 2  # match's score is the player's return minus the opponent's
    outcome, _ = match(env, final, pool[0].build(0), sides, seed=2, explore=True)
    decided = outcome[outcome != 0.5]
    assert decided.mean() >= 0.6, (decided.mean(), len(decided))
