"""The referential-game signaller through the runner (``marlkit train signalling referential-v0``): the same updates
as ``Signalling.train_step``, a resumed run equal to the uninterrupted one, the command line, and clear errors."""

import json
import shutil

import pytest
import torch

from marlkit.algorithms.signalling import Signalling, SignallingConfig
from marlkit.cli import main
from marlkit.core import GameLearner, LossContext
from marlkit.core import checkpoint as ckpt
from marlkit.core.config import ConfigError
from marlkit.envs.text.referential import ReferentialConfig, ReferentialGame
from marlkit.experiment.logging import MetricsLogger, read_metrics
from marlkit.experiment.run import make_run_config
from marlkit.experiment.runner import Runner, derive_seeds

GAME = {"n_attributes": 3, "n_values": 4, "n_candidates": 3, "max_len": 2, "vocab_size": 6}
#: 64 plays (16 games x 4) per update.
FIELDS = dict(
    batch_size=64,
    hidden=16,
    embed=8,
    eval_episodes=40,
    eval_every=256,
    checkpoint_every=256,
    log_every=128,
    progress=False,
    gif=False,
    **{"env.kwargs": GAME},
)


def config(tmp_path, name, steps=512, **fields):
    return make_run_config(
        "signalling", "referential-v0", out=str(tmp_path), name=name, steps=steps, **{**FIELDS, **fields}
    )


def rows(run_dir):
    return [{k: v for k, v in r.items() if not k.startswith("perf/")} for r in read_metrics(run_dir)]


@pytest.mark.parametrize("method", ["reinforce", "gumbel"])
def test_the_runner_updates_the_pair_as_train_step_does(tmp_path, method):
    runner = Runner(config(tmp_path, method, method=method), callbacks=[MetricsLogger()], default_callbacks=False)
    assert isinstance(runner.learner, GameLearner)
    result = runner.run()
    assert result.env_steps == 512 and runner.updates == 8
    seeds = derive_seeds(0)
    alone = Signalling(
        ReferentialGame(ReferentialConfig(**GAME), seed=seeds["env"]), runner.learner.config, seed=seeds["algo"]
    )
    for _ in range(runner.updates):
        alone.train_step()
    for (name, p), q in zip(runner.learner.state_dict().items(), alone.state_dict().values()):
        assert torch.equal(p, q), name
    keys = set().union(*(r.keys() for r in read_metrics(result.run_dir)))
    assert {"loss/loss", "train/episode_return", "perf/env_steps_per_s", "eval/episode_return"} <= keys
    assert set(result.eval["group_return"]) == {"speaker", "listener"} and result.eval["episodes"] == 40


def test_a_resumed_signalling_run_is_the_uninterrupted_one(tmp_path):
    done = Runner(config(tmp_path, "straight"), callbacks=[MetricsLogger()], default_callbacks=False).run().run_dir
    shutil.copytree(done, tmp_path / "again")
    for s, path in ckpt.list_checkpoints(tmp_path / "again" / "checkpoints"):
        if s > 256:
            path.unlink()
    (tmp_path / "again" / "eval.json").unlink()
    resumed = Runner.resume(tmp_path / "again", callbacks=[MetricsLogger()], default_callbacks=False)
    assert resumed.env_steps == 256
    result = resumed.run()
    assert len(rows(done)) >= 4 and rows(result.run_dir) == rows(done)
    assert result.eval == json.loads((done / "eval.json").read_text())


def test_loss_terms_reach_the_signallers_loss():
    game = ReferentialGame(ReferentialConfig(**GAME), seed=0)
    pair = Signalling(game, SignallingConfig(batch_size=16, hidden=8, embed=4), seed=0)
    seen = []
    pair.add_loss_term(lambda ctx: seen.append(ctx.loss) or torch.zeros(()))
    pair.update(pair.source_for(game).collect()[0])
    assert seen == ["loss"] and isinstance(LossContext(pair, "loss", None).learner, Signalling)


def test_the_command_line_trains_and_resumes_the_referential_game(tmp_path, capsys):
    argv = [
        "train",
        "signalling",
        "referential-v0",
        "--steps",
        "128",
        "--out",
        str(tmp_path),
        "--name",
        "cli",
        "--no-progress",
        "--set",
        "algo.batch_size=64",
        "algo.hidden=16",
        "algo.embed=8",
        "experiment.eval_episodes=20",
        "env.kwargs.n_attributes=3",
        "env.kwargs.max_len=2",
    ]
    assert main(argv) == 0
    assert "training signalling on referential-v0" in capsys.readouterr().out
    assert main(["train", "--resume", str(tmp_path / "cli"), "--steps", "256", "--no-progress"]) == 0
    report = json.loads((tmp_path / "cli" / "eval.json").read_text())
    assert report["env_steps"] == 256
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "cli"), "--json"]) == 0  # the run's evaluation, from its checkpoint
    assert json.loads(capsys.readouterr().out) == report
    with pytest.raises(SystemExit, match="referential-v0 does not render"):
        main(["render", str(tmp_path / "cli")])


def test_what_signalling_cannot_train_on_is_a_clear_error(tmp_path):
    with pytest.raises(
        ConfigError,
        match=r"cannot train mappo on referential-v0: referential-v0 is the referential "
        r"game; algorithms that train on it: signalling",
    ):
        make_run_config("mappo", "referential-v0")
    with pytest.raises(ConfigError, match=r"cannot train signalling on spread-v0: spread-v0 is a batched env"):
        make_run_config("signalling", "spread-v0")
    with pytest.raises(ConfigError, match=r"referential-v0 has no option 'n_atributes'; did you mean 'n_attributes'"):
        Runner(config(tmp_path, "typo", **{"env.kwargs": {"n_atributes": 3}}))
    assert not any(tmp_path.iterdir())
