"""League roles on hand-built win-rate tables: who each role plays, and when exploiters start over."""

from __future__ import annotations

import numpy as np
import pytest

from marlkit.population.league import opponent_distribution, should_reset

ROLES = ["main", "main", "main_exploiter", "league_exploiter"]


def test_main_agent_mixes_self_play_pfsp_and_exploiters() -> None:
    p = [0.9, 0.5, 0.2, 0.6]
    own = [True, True, False, False]
    w = opponent_distribution("main", ROLES, p, own)
    hard = (1 - np.array(p)) ** 2
    league = hard / hard.sum()
    exploiters = np.array([0, 0, hard[2], hard[3]]) / (hard[2] + hard[3])
    expected = 0.35 * np.array([0, 1, 0, 0]) + 0.5 * league + 0.15 * exploiters
    assert w == pytest.approx(expected)
    assert w.sum() == pytest.approx(1.0)


def test_main_exploiter_targets_the_newest_main_agent() -> None:
    # It still beats the newest main agent now and then: it plays it.
    assert opponent_distribution("main_exploiter", ROLES, [0.3, 0.2, 0.5, 0.5]).tolist() == [0, 1, 0, 0]
    # It almost never does: PFSP (variance) over the main agents' snapshots, to climb from the ones of its level.
    w = opponent_distribution("main_exploiter", ROLES, [0.5, 0.05, 0.5, 0.5])
    v = np.array([0.25, 0.05 * 0.95])
    assert w == pytest.approx([*(v / v.sum()), 0, 0])


def test_league_exploiter_is_pfsp_hard_over_everyone() -> None:
    p = [0.1, 0.4, 0.8, 0.5]
    hard = (1 - np.array(p)) ** 2
    assert opponent_distribution("league_exploiter", ROLES, p) == pytest.approx(hard / hard.sum())


def test_resets() -> None:
    rng = np.random.default_rng(0)
    assert not should_reset("main", ROLES, [1.0] * 4, rng)
    assert should_reset("main_exploiter", ROLES, [0.0, 0.75, 0.0, 0.0], rng)
    assert not should_reset("main_exploiter", ROLES, [1.0, 0.65, 1.0, 1.0], rng)
    # A league exploiter that beats everyone resets a quarter of the time; one that does not, never.
    resets = [should_reset("league_exploiter", ROLES, [0.9] * 4, rng) for _ in range(4000)]
    assert np.mean(resets) == pytest.approx(0.25, abs=0.03)
    assert not any(should_reset("league_exploiter", ROLES, [0.9, 0.9, 0.9, 0.2], rng) for _ in range(200))
    with pytest.raises(ValueError, match="main_exploiter"):
        opponent_distribution("exploiter", ROLES, [0.5] * 4)
    with pytest.raises(ValueError, match="one win rate per snapshot"):
        opponent_distribution("main", ROLES, [0.5])
