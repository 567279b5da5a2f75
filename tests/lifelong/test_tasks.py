"""Tasks and sequences: one layout for every task (padding, task id, padded and relabelled actions), partners, the
per-task success metric, and clear errors for what cannot share a learner."""

import numpy as np
import pytest
import torch

from marlkit.core.config import ConfigError
from marlkit.envs.check import check_env
from marlkit.envs.registry import make
from marlkit.lifelong.sequences import SEQUENCES, Task, TaskSequence, partner_sequence, sequence
from marlkit.lifelong.tasks import TaskEnv

SMALL = {"size": 5, "num_food": 1, "max_agent_level": 1, "max_food_level": 1, "max_steps": 10}


def test_padding_and_task_id():
    env = TaskEnv("foraging-v0", SMALL, task_id=2, num_tasks=4, obs_dim=20, num_envs=3, seed=0)
    inner = make("foraging-v0", num_envs=3, seed=0, **SMALL)
    obs, _ = env.reset(seed=1)
    ref, _ = inner.reset(seed=1)
    d = ref["agents"].shape[-1]
    assert obs["agents"].shape == (3, 2, 24)
    np.testing.assert_array_equal(obs["agents"][..., :d], ref["agents"])
    assert (obs["agents"][..., d:20] == 0).all()
    np.testing.assert_array_equal(obs["agents"][..., 20:], np.broadcast_to([0, 0, 1, 0], (3, 2, 4)))


def test_relabelled_actions_move_as_the_permutation_says():
    perm = [0, 2, 1, 4, 3, 5]  # the learner's NORTH is the env's SOUTH, WEST is EAST
    env = TaskEnv("foraging-v0", SMALL, action_perm=perm, seed=0)
    inner = make("foraging-v0", seed=0, **SMALL)
    env.reset(seed=3)
    inner.reset(seed=3)
    for a in [1, 3, 2, 4, 1]:
        allowed = env._action_mask()["agents"][0]
        acts = np.array([[a if allowed[0, a] else 0, 0]])
        o1, *_ = env.step({"agents": acts})
        o2, *_ = inner.step({"agents": np.array([[perm[acts[0, 0]], 0]])})
        np.testing.assert_array_equal(o1["agents"][..., : o2["agents"].shape[-1]], o2["agents"])
    # The mask follows the relabelling: the learner's action b is allowed where the env's perm[b] is.
    inner_mask = inner._action_mask()["agents"]
    np.testing.assert_array_equal(env._action_mask()["agents"], inner_mask[..., perm])


def test_padded_actions_are_masked():
    env = TaskEnv("spread-v0", {"num_agents": 2}, num_actions=7, num_envs=2, seed=0)
    _, info = env.reset(seed=0)
    mask = info["action_mask"]["agents"]
    assert mask.shape == (2, 2, 7) and mask[..., :5].all() and not mask[..., 5:].any()
    check_env(env)


def test_partner_plays_the_other_agent_and_success_is_reported():
    env = TaskEnv("foraging-v0", SMALL, partners=1, partner="random", num_envs=8, seed=0)
    assert env.groups == {"agents": ("agent_0",)}
    obs, info = env.reset(seed=0)
    successes = []
    for _ in range(40):
        mask = info["action_mask"]["agents"]
        acts = np.where(mask[..., 5], 5, mask.argmax(-1))  # load when next to food
        obs, _, _, _, info = env.step({"agents": acts})
        done = info["episode_done"]
        successes += list(info["episode_metrics"]["success"][done])
    assert successes and all(0.0 <= s <= 1.0 for s in successes)


def test_partner_from_a_policy_file(tmp_path):
    from marlkit.experiment.run import make_run_config
    from marlkit.experiment.runner import build_algo

    cfg = make_run_config("ippo", "foraging-v0", preset="none", **{"env.kwargs": SMALL, "num_envs": 2})
    learner = build_algo(cfg, make("foraging-v0", num_envs=2, **SMALL), 0)
    path = tmp_path / "mate.pt"
    torch.save(learner.policy().policy_state(), path)
    seq = partner_sequence(["noop", str(path)])
    assert seq.layout()["num_tasks"] == 2
    with pytest.raises(ConfigError, match=r"noop.*random.*path"):
        TaskEnv("foraging-v0", SMALL, partners=1, partner=str(tmp_path / "missing.pt"))


def test_every_builtin_sequence_lays_out_and_steps():
    for name in SEQUENCES:
        seq = sequence(name)
        lay = seq.layout()
        shapes = set()
        for i in range(len(seq)):
            env = TaskEnv(**seq.env_kwargs(i, lay), num_envs=2, seed=0)
            obs, _ = env.reset(seed=0)
            shapes.add(obs[env.group].shape)
        assert len(shapes) == 1, name


def test_what_cannot_share_a_learner_is_a_clear_error():
    two, three = Task("a", "spread-v0", {"num_agents": 2}), Task("b", "spread-v0", {"num_agents": 3})
    with pytest.raises(ConfigError, match="same number of learning agents"):
        TaskSequence("bad", (two, three)).layout()
    # Three agents with one fixed partner is two learners: it fits (observations padded).
    ok = TaskSequence("ok", (two, Task("c", "spread-v0", {"num_agents": 3}, partners=1)))
    assert ok.layout()["obs_dim"] == make("spread-v0", num_agents=3).group_observation_space("agents").shape[0]
    with pytest.raises(ConfigError, match=r"unknown sequence .foraging-control.*did you mean"):
        sequence("foraging-control")
    with pytest.raises(ConfigError, match="permutation"):
        TaskEnv("foraging-v0", SMALL, action_perm=[0, 0, 1, 2, 3, 4])


@pytest.mark.parametrize("name", sorted(SEQUENCES))
def test_every_task_of_a_builtin_sequence_has_the_same_spaces(name):
    """One learner plays every task: hidden entries, other grid sizes and padding leave the spaces alike."""
    from marlkit.core.spaces import PolicySpaces

    seq = sequence(name)
    lay = seq.layout()
    envs = [TaskEnv(**seq.env_kwargs(i, lay)) for i in range(len(seq))]
    first = PolicySpaces.from_env(envs[0])
    for env in envs[1:]:
        assert not first.difference(PolicySpaces.from_env(env))
