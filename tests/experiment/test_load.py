"""``marlkit.load``: a run directory's trained policy, weights only, acting as the learner did — in marlkit's batched
envs and, through ``act_pettingzoo``, in mpe2's own ``simple_spread_v3`` (which ``spread-v0`` equals transition for
transition; tests/envs/test_mpe_equivalence.py). Also the README's snippet and ``examples/play_in_mpe2.py``."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import marlkit
from marlkit.collect import evaluate
from marlkit.core import Policy
from marlkit.core import checkpoint as ckpt
from marlkit.envs import sample_actions
from marlkit.experiment import runner as runner_module
from marlkit.experiment.runner import Runner, load_run

ROOT = Path(__file__).resolve().parents[2]
EVAL_EPISODES = 100


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short MAPPO run on spread-v0: 30k env-steps, one final checkpoint."""
    torch.set_num_threads(1)
    result = marlkit.train(
        "mappo",
        "spread-v0",
        steps=30_000,
        seed=0,
        out=str(tmp_path_factory.mktemp("runs")),
        name="mappo",
        progress=False,
        gif=False,
        eval_every=0,
        checkpoint_every=0,
        eval_episodes=EVAL_EPISODES,
    )
    return result.run_dir


def _observations(steps: int = 10) -> list[tuple[dict, dict]]:
    env = marlkit.make("spread-v0", num_envs=5, seed=0)
    rng = np.random.default_rng(0)
    obs, info = env.reset(seed=2)
    out = []
    for _ in range(steps):
        out.append((obs, info))
        obs, _, _, _, info = env.step(sample_actions(env, None, rng))
    return out


def test_load_returns_the_trained_policy_without_building_the_learner(run_dir, monkeypatch):
    _, _, learner, _ = load_run(run_dir, num_envs=5)
    expected = [learner.act(obs, None, info, explore=False)[0]["agents"] for obs, info in _observations()]

    def no_learner(*args, **kwargs):
        raise AssertionError("marlkit.load built the learner")

    monkeypatch.setattr(runner_module, "build_algo", no_learner)
    policy = marlkit.load(run_dir)
    assert isinstance(policy, Policy) and policy.kind == "actor_critic"
    assert not hasattr(policy, "optimizer") and not hasattr(policy, "critic")
    for (obs, info), want in zip(_observations(), expected):
        np.testing.assert_array_equal(policy.act(obs, info=info)[0]["agents"], want)


def test_a_frozen_team_member_reads_the_policy_without_building_the_learner(run_dir, monkeypatch):
    from marlkit.algorithms.teams import Teams, TeamsConfig

    def no_learner(*args, **kwargs):
        raise AssertionError("the frozen member built the learner")

    monkeypatch.setattr(runner_module, "build_algo", no_learner)
    env = marlkit.make("spread-v0", num_envs=5, seed=0)
    team = Teams(env, TeamsConfig(members={"all": {"groups": ["agents"], "frozen": str(run_dir)}}), seed=0)
    policy = marlkit.load(run_dir)
    for obs, info in _observations(3):
        np.testing.assert_array_equal(
            team.act(obs, None, info, explore=True)[0]["agents"], policy.act(obs, info=info)[0]["agents"]
        )  # frozen: greedy even then


def test_load_takes_a_checkpoint_by_name_or_file(run_dir):
    (path,) = sorted((run_dir / "checkpoints").glob("step_*.pt"))
    obs, info = _observations(1)[0]
    want = marlkit.load(run_dir).act(obs, info=info)[0]["agents"]
    for policy in (marlkit.load(run_dir, checkpoint=path.name), marlkit.load(path)):
        np.testing.assert_array_equal(policy.act(obs, info=info)[0]["agents"], want)


def _without_policy(run_dir: Path, tmp_path: Path) -> Path:
    """A copy of the run whose checkpoint holds no policy, as written before checkpoints held one."""
    old = tmp_path / "old"
    shutil.copytree(run_dir, old)
    (path,) = sorted((old / "checkpoints").glob("step_*.pt"))
    state = torch.load(path, weights_only=True)
    del state["policy"]
    ckpt.save_atomic(state, path)  # with a manifest that matches the rewritten file
    return old


def test_a_checkpoint_without_a_policy_falls_back_to_the_learner(run_dir, tmp_path):
    old = _without_policy(run_dir, tmp_path)
    for obs, info in _observations(3):
        np.testing.assert_array_equal(
            marlkit.load(old).act(obs, info=info)[0]["agents"], marlkit.load(run_dir).act(obs, info=info)[0]["agents"]
        )


def test_a_frozen_member_of_a_run_without_a_policy_says_how_to_write_one(run_dir, tmp_path):
    """A frozen member reads weights only, so a checkpoint without a policy is a one-line error naming the member and
    the way out; resuming the run for more steps writes a checkpoint the member then reads."""
    from marlkit.algorithms.teams import Teams, TeamsConfig
    from marlkit.core.config import ConfigError

    old = _without_policy(run_dir, tmp_path)
    env = marlkit.make("spread-v0", num_envs=2, seed=0)
    config = TeamsConfig(members={"all": {"groups": ["agents"], "frozen": str(old)}})
    with pytest.raises(
        ConfigError,
        match=r"^algo\.members\.all\.frozen: checkpoint .*step_\d+\.pt holds no "
        r"weights-only policy .* past its ([\d,]+) env-steps \(marlkit train --resume "
        r".*old --steps N\)",
    ) as error:
        Teams(env, config, seed=0)
    trained_for = int(re.search(r"past its ([\d,]+) env-steps", str(error.value)).group(1).replace(",", ""))
    Runner.resume(old, steps=trained_for + 1, default_callbacks=False).run()
    Teams(env, config, seed=0)  # the newest checkpoint holds the policy now


def test_load_mistakes_are_clear_errors(run_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a run directory"):
        marlkit.load(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"has no checkpoint .*step_9\.pt to load \(checkpoints: \['step_"):
        marlkit.load(run_dir, checkpoint="step_9.pt")


# ------------------------------------------------------------------------------------------- inside mpe2 itself
def _play_mpe2(policy, episodes: int, seed: int) -> list[float]:
    from mpe2 import simple_spread_v3

    env = simple_spread_v3.parallel_env()
    returns = []
    for episode in range(episodes):
        obs, infos = env.reset(seed=seed if episode == 0 else None)
        policy.reset()
        total = 0.0
        while env.agents:
            actions = policy.act_pettingzoo(obs, infos)
            assert set(actions) == set(env.agents)  # one action for every live agent, and only for them
            assert all(env.action_space(a).contains(act) for a, act in actions.items())
            obs, rewards, _, _, infos = env.step(actions)
            total += sum(rewards.values()) / len(rewards)
        returns.append(total)
    return returns


@pytest.mark.pettingzoo
def test_the_loaded_team_plays_mpe2_as_it_plays_spread_v0(run_dir):
    """Seeded alike, mpe2's episodes are spread-v0's episodes (one copy draws mpe2's initial states), so the
    returns agree episode for episode: agent order and the meaning of each action index match."""
    pytest.importorskip("mpe2")
    policy = marlkit.load(run_dir)
    in_mpe2 = _play_mpe2(policy, episodes=5, seed=11)
    stats = evaluate(marlkit.make("spread-v0", num_envs=1), policy, episodes=5, seed=11)
    ours = [float(np.mean(r)) for r in stats.returns["agents"]]
    np.testing.assert_allclose(in_mpe2, ours, atol=1e-3)


@pytest.mark.pettingzoo
def test_the_return_in_mpe2_is_the_runs_evaluation_return(run_dir):
    """Over other initial states than the run's evaluation saw: the same task, so the same return within noise."""
    pytest.importorskip("mpe2")
    report = json.loads((run_dir / "eval.json").read_text())
    in_mpe2 = _play_mpe2(marlkit.load(run_dir), episodes=50, seed=123)
    bound = 4 * np.hypot(
        report["episode_return"]["std"] / np.sqrt(report["episodes"]), np.std(in_mpe2) / np.sqrt(len(in_mpe2))
    )
    assert abs(np.mean(in_mpe2) - report["episode_return"]["mean"]) < bound
    random_team = -26.0  # the task's random-team return (README): the trained team is clearly better
    assert np.mean(in_mpe2) > random_team + 2


@pytest.mark.pettingzoo
def test_the_readme_snippet_runs(run_dir, capsys):
    pytest.importorskip("mpe2")
    readme = (ROOT / "README.md").read_text()
    (snippet,) = [b for b in re.findall(r"```python\n(.*?)```", readme, re.DOTALL) if "act_pettingzoo" in b]
    assert '"runs/<run>"' in snippet
    exec(compile(snippet.replace('"runs/<run>"', repr(str(run_dir))), "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert re.fullmatch(r"mean per-agent return -?\d+\.\d\d\n", printed)


@pytest.mark.pettingzoo
def test_the_example_plays_in_mpe2(run_dir, capsys):
    pytest.importorskip("mpe2")
    spec = importlib.util.spec_from_file_location("play_in_mpe2", ROOT / "examples" / "play_in_mpe2.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    result = example.main([str(run_dir), "--episodes", "3", "--seed", "11"])
    assert json.loads(capsys.readouterr().out) == result
    assert result["episodes"] == 3
    np.testing.assert_allclose(result["returns"], _play_mpe2(marlkit.load(run_dir), 3, seed=11))
