"""League training, simply: a main agent, a main exploiter and a league exploiter share one pool and draw their
opponents by their roles' rules."""

from __future__ import annotations

import pytest

from marlkit.core.config import ConfigError
from marlkit.experiment.league import train_league
from marlkit.population.pool import PolicyPool

FAST = {"num_envs": 16, "algo.rollout_steps": 4, "algo.epochs": 1, "algo.minibatches": 1}


def test_league_roles_share_a_pool(tmp_path) -> None:
    sp = {"snapshot_every": 2, "win_rate_games": 8, "match_explore": True}
    pool, members = train_league(
        "ippo", "rock-paper-scissors-v0", 4, seed=0, selfplay=sp, pool_dir=tmp_path, preset="none", **FAST
    )
    names = ["main@0", "main_exploiter@0", "league_exploiter@0", "main@2", "main_exploiter@2", "league_exploiter@2"]
    assert pool.names == names
    assert [s.role for s in PolicyPool.load(tmp_path)] == ["main", "main_exploiter", "league_exploiter"] * 2
    by_name = {m.name: m for m in members}
    counts = by_name["main_exploiter"].source.opponent_counts
    # The main exploiter only ever plays the main agent (its newest snapshot while it still wins sometimes, else
    # the main agent's snapshots by PFSP): never an exploiter.
    assert sum(counts) == 4 * 4 and all(c == 0 for c, s in zip(counts, pool) if s.role != "main")
    # The main agent meets the exploiters too (PFSP over the league and over the exploiters).
    main_counts = by_name["main"].source.opponent_counts
    assert sum(c for c, s in zip(main_counts, pool) if s.role != "main") > 0
    with pytest.raises(ConfigError, match="not allowed"):
        train_league("ippo", "rock-paper-scissors-v0", 1, agents=[("x", "exploiter")], preset="none", **FAST)
