"""Role specialisation and division of labour (marlkit.metrics.roles) on hand-built tables, and the sub-tasks the
envs report (spread's nearest landmark, foraging's collected food, the leader election's votes)."""

import numpy as np
import pytest

import marlkit
from marlkit.metrics import assignments_to_counts, division_of_labour, role_specialisation
from marlkit.metrics.roles import leader_agreement


def test_perfect_specialisation_is_one_and_crowding_is_zero() -> None:
    perfect = assignments_to_counts(np.array([[0, 1, 2]] * 5))  # agent i always on sub-task i
    assert role_specialisation(perfect) == pytest.approx(1.0)
    assert role_specialisation(perfect, "pooled") == pytest.approx(1.0)
    crowd = assignments_to_counts(np.array([[0, 0, 0], [2, 2, 2], [1, 1, 1]]), n_tasks=3)
    assert role_specialisation(crowd) == 0.0
    assert role_specialisation(crowd, "pooled") == 0.0


def test_episode_and_pooled_modes_differ_when_roles_are_reassigned() -> None:
    # every permutation of 3 landmarks once: each episode divides the work perfectly, no agent keeps a role
    perms = np.array([[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]])
    counts = assignments_to_counts(perms)
    assert role_specialisation(counts, "episode") == pytest.approx(1.0)
    assert role_specialisation(counts, "pooled") == pytest.approx(0.0, abs=1e-12)
    # two on one landmark, one alone: H(2/3, 1/3) / log2(3) in every episode
    half = assignments_to_counts(np.array([[0, 0, 1], [2, 1, 1]]))
    h = -(2 / 3 * np.log2(2 / 3) + 1 / 3 * np.log2(1 / 3))
    assert role_specialisation(half) == pytest.approx(h / np.log2(3))


def test_normalisation_uses_the_smaller_of_agents_and_tasks() -> None:
    # 2 agents, 4 sub-tasks, each agent on its own: I = 1 bit, the most 2 agents can carry
    assert role_specialisation(assignments_to_counts(np.array([[0, 3], [1, 2]]), 4)) == pytest.approx(1.0)


def test_gorelick_division_of_labour_by_hand() -> None:
    assert division_of_labour(np.eye(3) * 2).symmetric == pytest.approx(1.0)
    assert division_of_labour(np.ones((2, 2))).mutual_information == pytest.approx(0.0)
    # p = [[.5, .25], [0, .25]]: H(A) = H(.75, .25) = 0.8113, H(T) = 1, H(A, T) = 1.5, I = 0.3113
    d = division_of_labour(np.array([[2, 1], [0, 1]]))
    h_a = -(0.75 * np.log2(0.75) + 0.25 * np.log2(0.25))
    assert d.mutual_information == pytest.approx(h_a - 0.5)
    assert d.indiv_task == pytest.approx(h_a - 0.5)
    assert d.task_indiv == pytest.approx((h_a - 0.5) / h_a)
    assert d.symmetric == pytest.approx((h_a - 0.5) / np.sqrt(h_a))
    assert division_of_labour(np.array([[3, 1], [0, 0]])).task_indiv == 0.0  # one individual does everything


def test_leader_agreement() -> None:
    votes = np.array([[1, 1, 1], [1, 1, 1], [0, 0, 0], [0, 1, 2]])
    a = leader_agreement(votes, n_candidates=3)
    assert a.agreement == pytest.approx(0.75)
    # agreed leaders: 1, 1, 0 -> H(2/3, 1/3) bits
    assert a.leader_entropy == pytest.approx(-(2 / 3 * np.log2(2 / 3) + 1 / 3 * np.log2(1 / 3)))
    assert leader_agreement(np.array([[2, 2]])).leader_entropy == 0.0


def test_bad_tables_are_named() -> None:
    with pytest.raises(ValueError, match="at least 2 agents and 2 sub-tasks"):
        role_specialisation(np.ones((3, 1, 4)))
    with pytest.raises(ValueError, match="mode"):
        role_specialisation(np.ones((3, 2, 2)), "lasting")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no events"):
        division_of_labour(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="n_tasks"):
        assignments_to_counts(np.array([[0, 5]]), n_tasks=3)


def test_spread_subtask_is_the_nearest_landmark_at_the_end() -> None:
    env = marlkit.make("spread-v0", num_envs=2)
    obs = np.zeros((2, 3, 18), np.float32)
    # landmark offsets of each agent (columns 4..9): copy 0, agent 0 nearest landmark 2, agent 1 -> 0, agent 2 -> 1
    obs[0, 0, 4:10] = [1, 1, 0.5, 0.5, 0.1, 0]
    obs[0, 1, 4:10] = [0, 0.2, 1, 0, 1, 1]
    obs[0, 2, 4:10] = [-1, 0, 0, -0.3, 2, 0]
    counts = env.subtask_counts({"final_obs": {"agents": obs}, "episode_done": np.array([True, False])})
    np.testing.assert_array_equal(counts[0], np.eye(3)[[2, 0, 1]])
    np.testing.assert_array_equal(counts[1], 0)  # not at its end: no sub-task yet


def test_foraging_subtask_is_the_food_each_agent_loads() -> None:
    env = marlkit.make("foraging-v0", num_envs=1, num_food=2, max_food_level=2)
    env.reset(seed=0)
    # agent 0 (level 1) left of food 0 (level 1); agent 1 (level 2) above food 1 (level 2)
    env.set_state(0, [[2, 1], [4, 5]], [1, 2], [[2, 2], [5, 5]], [1, 2])
    _, _, _, _, info = env.step({"agents": np.array([[5, 5]])})
    np.testing.assert_array_equal(env.subtask_counts(info)[0], [[1, 0], [0, 1]])
    assert np.all(info["episode_done"])  # all food collected


def test_leader_election_subtask_is_the_vote() -> None:
    env = marlkit.make("leader-election-v0", num_envs=2, rounds=1)
    env.reset(seed=0)
    _, _, _, _, info = env.step({"agents": np.array([[0, 1, 2], [1, 1, 1]])})  # talk
    assert not env.subtask_counts(info).any()
    _, rew, term, _, info = env.step({"agents": np.array([[2, 2, 2], [0, 1, 1]])})  # vote
    counts = env.subtask_counts(info)
    np.testing.assert_array_equal(counts[0], np.eye(3)[[2, 2, 2]])
    np.testing.assert_array_equal(counts[1], np.eye(3)[[0, 1, 1]])
    assert term["agents"].all() and info["episode_done"].all()
    np.testing.assert_array_equal(info["episode_metrics"]["agreement"], [1.0, 0.0])
    assert rew["agents"][1].sum() == 0.0
