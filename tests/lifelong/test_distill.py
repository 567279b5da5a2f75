"""Peer distillation pulls a learner towards a teammate's frozen policy; the skill library stores policies as
weights only."""

import numpy as np
import pytest
import torch

from marlkit.collect import Collector
from marlkit.core.config import ConfigError
from marlkit.experiment.runner import learn
from marlkit.lifelong.distill import SkillLibrary, distill_from, steps_to_threshold
from marlkit.lifelong.sequences import sequence
from marlkit.lifelong.tasks import TaskEnv


def _learner(seed):
    from marlkit.algorithms.ppo import PPO, PPOConfig

    seq = sequence("foraging-controls", 2)
    env = TaskEnv(**seq.env_kwargs(0), num_envs=8, seed=seed)
    torch.manual_seed(seed)
    return PPO(env, PPOConfig(entropy_coef=0.0), seed=seed), env


def _agreement(student, teacher, env):
    obs, info = env.reset(seed=123)
    agree = []
    for _ in range(30):
        a, _ = student.act(obs, None, info, explore=False)
        b, _ = teacher.act(obs, None, info, explore=False)
        agree.append(np.mean(a["agents"] == b["agents"]))
        obs, _, _, _, info = env.step(b)
    return float(np.mean(agree))


def test_distillation_makes_the_student_act_like_the_teacher():
    teacher_learner, _ = _learner(1)
    with torch.no_grad():  # a teacher with a clear preference per observation
        for p in teacher_learner.nets["agents"].actor.parameters():
            p.mul_(50.0)
    teacher = teacher_learner.policy()
    student, env = _learner(0)
    before = _agreement(student, teacher, TaskEnv(**sequence("foraging-controls", 2).env_kwargs(0), num_envs=8))
    remove = distill_from(student, teacher, weight=5.0)
    learn(student, Collector(env, student, 25, seed=0), 15)
    after = _agreement(student, teacher, TaskEnv(**sequence("foraging-controls", 2).env_kwargs(0), num_envs=8))
    assert after >= 0.65 and after > before + 0.25, (before, after)
    remove()
    assert student._loss_terms == ()


def test_distillation_needs_a_teacher_for_the_same_spaces():
    student, _ = _learner(0)
    from marlkit.algorithms.ppo import PPO, PPOConfig
    from marlkit.envs.registry import make

    other = PPO(make("spread-v0", num_agents=2), PPOConfig()).policy()
    with pytest.raises(ConfigError, match="teacher cannot act"):
        distill_from(student, other)


def test_skill_library_round_trip(tmp_path):
    learner, env = _learner(0)
    lib = SkillLibrary(tmp_path / "skills")
    lib.add("controls-0", learner.policy())
    assert lib.names() == ["controls-0"] and "controls-0" in lib
    obs, info = env.reset(seed=0)
    a, _ = lib.get("controls-0").act(obs, None, info)
    b, _ = learner.act(obs, None, info, explore=False)
    np.testing.assert_array_equal(a["agents"], b["agents"])
    with pytest.raises(ConfigError, match="not allowed"):
        lib.add("../escape", learner.policy())
    with pytest.raises(ConfigError, match="no skill 'missing'"):
        lib.get("missing")


def test_steps_to_threshold():
    assert steps_to_threshold([0, 400, 800, 1200], [0.0, 0.5, 0.85, 0.9], 0.8) == 800
    assert steps_to_threshold([0, 400], [0.0, 0.5], 0.8) is None


def test_cli_runs_a_tiny_sequence_and_rejects_an_unknown_strategy(tmp_path, capsys):
    from marlkit.cli import main

    argv = [
        "lifelong",
        "foraging-controls",
        "--num-tasks",
        "2",
        "--steps-per-task",
        "100",
        "--eval-episodes",
        "2",
        "--out",
        str(tmp_path),
    ]
    assert main([*argv, "--strategy", "ewk"]) == 2
    assert "unknown strategy 'ewk'" in capsys.readouterr().err
    assert main([*argv, "--set", "algo.rollout_steps=5"]) == 0
    out = capsys.readouterr().out
    assert "after" in out and "avg_performance" in out
    (run,) = tmp_path.iterdir()
    assert (run / "lifelong.json").exists() and (run / "plots" / "R.png").exists()
