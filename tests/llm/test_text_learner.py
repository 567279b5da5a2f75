"""Token RL through the runner (``marlkit train token-rl <text-game>``): the run directory every learner writes, the
same training as ``TokenRL.train``, resume from a checkpoint, and clear errors for what it cannot train on."""

import json
import shutil

import pytest
import torch

import marlkit
from marlkit.cli import main
from marlkit.core import checkpoint as ckpt
from marlkit.core.config import ConfigError
from marlkit.experiment.logging import MetricsLogger, read_metrics
from marlkit.experiment.run import make_run_config
from marlkit.experiment.runner import Runner, derive_seeds

pytestmark = pytest.mark.llm

#: Tic-tac-toe as O against the random opponent: 4 copies, 4 games per update, the board and legal-move lines.
TICTACTOE = dict(
    num_envs=4,
    episodes_per_update=4,
    epochs=1,
    max_new_tokens=2,
    width=16,
    heads=2,
    vocab_episodes=4,
    eval_episodes=4,
    eval_every=60,
    checkpoint_every=60,
    log_every=30,
    progress=False,
    gif=False,
    prompt_lines=(" ", "Your turn"),
    **{"env.kwargs": {"opponent": "random", "mark": "O"}},
)


def config(tmp_path, name, steps=120, **fields):
    return make_run_config(
        "token-rl", "tictactoe-v0", out=str(tmp_path), name=name, steps=steps, **{**TICTACTOE, **fields}
    )


def rows(run_dir):
    return [{k: v for k, v in r.items() if not k.startswith("perf/")} for r in read_metrics(run_dir)]


def test_a_token_rl_run_writes_what_every_run_writes(tmp_path):
    result = marlkit.train(config=config(tmp_path, "run"), preset="none")
    names = sorted(p.name for p in result.run_dir.iterdir())
    assert {"config.yaml", "metrics.csv", "eval.json", "checkpoints"} <= set(names)
    keys = set().union(*(r.keys() for r in read_metrics(result.run_dir)))
    assert {
        "train/episode_return",
        "train/completed",
        "loss/policy",
        "loss/approx_kl",
        "perf/env_steps_per_s",
        "eval/episode_return",
    } <= keys
    report = json.loads((result.run_dir / "eval.json").read_text())
    assert (
        report["algorithm"] == "token-rl" and report["episodes"] == 4 and list(report["group_return"]) == ["player_0"]
    )
    assert result.env_steps >= 120 and [s for s, _ in ckpt.list_checkpoints(result.run_dir / "checkpoints")]
    assert "policy" not in ckpt.load(result.checkpoint)  # no array policy for marlkit.load


def test_the_runner_trains_exactly_as_token_rl_train(tmp_path):
    """The learner through the runner and a TokenRL trained by its own loop, built alike, end with equal weights:
    the same games (batch k seeded with (seed, k)), samples and updates; evaluations in between change nothing."""
    cfg = config(tmp_path, "same", steps=60, eval_every=20)
    runner = Runner(cfg, callbacks=[MetricsLogger()], default_callbacks=False)
    runner.run()
    alone = Runner(config(tmp_path, "alone", steps=60), default_callbacks=False).learner.trainer
    assert alone.config.seed == derive_seeds(0)["algo"]
    alone.train(runner.updates)
    mine, theirs = runner.learner.trainer.groups["shared"].model, alone.groups["shared"].model
    for (name, p), q in zip(mine.named_parameters(), theirs.parameters()):
        assert torch.equal(p, q), name


def test_a_resumed_token_rl_run_is_the_uninterrupted_one(tmp_path):
    done = (
        Runner(config(tmp_path, "straight", steps=180), callbacks=[MetricsLogger()], default_callbacks=False)
        .run()
        .run_dir
    )
    first = ckpt.list_checkpoints(done / "checkpoints")[0][0]
    runs = []
    for name in ("r1", "r2"):
        shutil.copytree(done, tmp_path / name)
        for s, path in ckpt.list_checkpoints(tmp_path / name / "checkpoints"):
            if s > first:
                path.unlink()
        (tmp_path / name / "eval.json").unlink()
        runs.append(Runner.resume(tmp_path / name, callbacks=[MetricsLogger()], default_callbacks=False).run())
    assert runs[0].env_steps == runs[1].env_steps >= 180
    assert rows(runs[0].run_dir) == rows(runs[1].run_dir) and runs[0].eval == runs[1].eval
    # A batch is whole episodes of games seeded by its number, so no episode is cut at a checkpoint: the resumed
    # runs are the uninterrupted one.
    assert len(rows(done)) >= 4 and rows(runs[0].run_dir) == rows(done)
    assert runs[0].eval == json.loads((done / "eval.json").read_text())


def test_the_command_line_trains_and_resumes_a_text_game(tmp_path, capsys):
    argv = [
        "train",
        "token-rl",
        "tictactoe-v0",
        "--steps",
        "40",
        "--num-envs",
        "4",
        "--out",
        str(tmp_path),
        "--name",
        "cli",
        "--no-progress",
        "--set",
        "algo.episodes_per_update=4",
        "algo.epochs=1",
        "algo.width=16",
        "algo.heads=2",
        "algo.vocab_episodes=4",
        "experiment.eval_episodes=4",
        "experiment.gif=false",
        "env.kwargs.opponent=random",
    ]
    assert main(argv) == 0
    assert "training token-rl on tictactoe-v0" in capsys.readouterr().out
    assert main(["train", "--resume", str(tmp_path / "cli"), "--steps", "80", "--no-progress"]) == 0
    report = json.loads((tmp_path / "cli" / "eval.json").read_text())
    assert report["env_steps"] >= 80
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "cli"), "--json"]) == 0  # the run's evaluation, from its checkpoint
    assert json.loads(capsys.readouterr().out) == report


def test_what_token_rl_cannot_train_on_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match=r"speaker-listener-text-v0 is not a TextEnv game"):
        Runner(
            make_run_config(
                "token-rl",
                "speaker-listener-text-v0",
                out=str(tmp_path),
                name="hybrid",
                steps=10,
                num_envs=2,
                progress=False,
            )
        )
    with pytest.raises(ConfigError, match=r"algo.heads = 3 is not allowed: a divisor of algo.width = 16"):
        config(tmp_path, "heads", heads=3)
    with pytest.raises(ConfigError, match=r"algo.lr must be > 0, got -1"):
        config(tmp_path, "lr", lr=-1)
    with pytest.raises(
        ConfigError,
        match=r"env.kwargs = \{'oponent': 'random'\} is not allowed: tictactoe-v0 has no "
        r"option 'oponent'; did you mean 'opponent'",
    ):
        Runner(config(tmp_path, "typo", **{"env.kwargs": {"oponent": "random"}}))
    assert not any(tmp_path.iterdir())
