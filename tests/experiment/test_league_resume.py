"""League checkpoints: a league resumed from a mid-run checkpoint gives the numbers of the league that ran on (the
same pool, weights, opponent counts; Kuhn poker, whose games span rollouts), and the command line trains, resumes
and rates a league directory."""

from __future__ import annotations

import shutil
from typing import Any

import pytest
import torch

from marlkit.cli import main
from marlkit.core import checkpoint as ckpt
from marlkit.core.config import ConfigError
from marlkit.experiment.league import resume_league, train_league
from marlkit.population.pool import PolicyPool

RPS = "rock-paper-scissors-v0"
KUHN = "kuhn-poker-v0"  # episodes of 2-3 moves: checkpoints fall mid-episode
FAST = {"num_envs": 16, "algo.rollout_steps": 4, "algo.epochs": 1, "algo.minibatches": 1}
SP = {"snapshot_every": 2, "win_rate_games": 8, "match_explore": True}


def _equal(x: Any, y: Any) -> bool:
    """Plain data with tensors, compared exactly."""
    if isinstance(x, torch.Tensor):
        return isinstance(y, torch.Tensor) and torch.equal(x, y)
    if isinstance(x, dict):
        return isinstance(y, dict) and x.keys() == y.keys() and all(_equal(x[k], y[k]) for k in x)
    if isinstance(x, (list, tuple)):
        return type(x) is type(y) and len(x) == len(y) and all(_equal(a, b) for a, b in zip(x, y))
    return bool(x == y)


def _same_pool(a: PolicyPool, b: PolicyPool) -> None:
    assert a.names == b.names
    for x, y in zip(a, b):
        assert _equal(x.policy, y.policy), x.name


def test_a_resumed_league_gives_the_numbers_of_the_uninterrupted_one(tmp_path) -> None:
    kw = dict(selfplay=SP, checkpoint_every=2, preset="none", **FAST)
    pool_a, members_a = train_league("ippo", KUHN, 6, seed=3, league_dir=tmp_path / "a", **kw)
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path / "a" / "checkpoints")] == [2, 4, 6]
    assert ckpt.load(tmp_path / "a" / "checkpoints" / "step_000000000004.pt")["rounds"] == 4  # weights only
    # Killed right after its checkpoint at round 2: the later checkpoints are lost, the pool has run ahead.
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    for s, path in ckpt.list_checkpoints(tmp_path / "b" / "checkpoints"):
        if s > 2:
            path.unlink()
    assert len(PolicyPool.load(tmp_path / "b" / "pool")) == len(pool_a) == 9
    pool_b, members_b = resume_league(tmp_path / "b")
    _same_pool(pool_a, PolicyPool.load(tmp_path / "b" / "pool"))
    _same_pool(pool_a, pool_b)
    for x, y in zip(members_a, members_b):
        assert x.source.opponent_counts == y.source.opponent_counts and x.resets == y.resets
        assert _equal(x.learner.state()["model"], y.learner.state()["model"]), x.name
    # A league directory is trained once, then resumed.
    with pytest.raises(ConfigError, match="already holds a league"):
        train_league("ippo", KUHN, 6, seed=3, league_dir=tmp_path / "a", **kw)


def test_league_command_trains_resumes_and_rates(tmp_path, capsys) -> None:
    d = tmp_path / "lg"
    sets = [f"{k}={v}" for k, v in FAST.items() if k != "num_envs"]
    base = ["train-league", "ippo", RPS, "--dir", str(d), "--preset", "none", "--num-envs", "16", "--set", *sets]
    assert main([*base, "--updates", "2", "--snapshot-every", "2", "--checkpoint-every", "1"]) == 0
    assert [s for s, _ in ckpt.list_checkpoints(d / "checkpoints")] == [1, 2]
    assert main(["train-league", "--resume", str(d), "--updates", "4"]) == 0
    assert PolicyPool.load(d / "pool").names[-3:] == ["main@2", "main_exploiter@2", "league_exploiter@2"]
    capsys.readouterr()
    assert main(["league", str(d), "--games", "8", "--explore"]) == 0
    assert "lg:main@2" in capsys.readouterr().out
    assert main(["train-league", "--resume", str(tmp_path / "nothing")]) == 2
    assert "is not a league directory" in capsys.readouterr().err
    assert main(["train-league", "ippo", RPS, "--dir", str(tmp_path / "x"), "--agents", "a:boss"]) == 2
    assert "not allowed" in capsys.readouterr().err
