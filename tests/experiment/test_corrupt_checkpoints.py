"""A damaged latest checkpoint: ``--resume`` and ``eval`` fall back to the newest intact one and say which they
skipped and why; with none intact, a one-line error. Driven through ``marlkit.cli.main`` as a user would."""

import json
import shutil

import numpy as np
import pytest
import torch

from marlkit.cli import main
from marlkit.core import checkpoint as ckpt
from marlkit.experiment.run import make_run_config
from marlkit.experiment.runner import Runner

LATEST, OLDER = "step_000000002000.pt", "step_000000001000.pt"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished tiny run with checkpoints at 1000 and 2000 env-steps."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("trained")
    cfg = make_run_config(
        "ippo",
        "climbing-v0",
        out=str(out),
        name="run",
        steps=2000,
        num_envs=8,
        log_every=400,
        eval_every=0,
        checkpoint_every=1000,
        eval_episodes=4,
        progress=False,
        gif=False,
        epochs=2,
    )
    run = Runner(cfg).run().run_dir
    assert [s for s, _ in ckpt.list_checkpoints(run / "checkpoints")] == [1000, 2000]
    return run


@pytest.fixture
def run(trained, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    return copy


def _first_float_tensor(x):
    if isinstance(x, torch.Tensor) and x.is_floating_point() and x.numel():
        return x
    for v in x.values() if isinstance(x, dict) else x if isinstance(x, (list, tuple)) else ():
        if (t := _first_float_tensor(v)) is not None:
            return t
    return None


def truncated(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return "bytes but its manifest records"


def zero_bytes(path):
    path.write_bytes(b"")
    return "is 0 bytes but its manifest records"


def random_bytes(path):
    path.write_bytes(np.random.default_rng(0).bytes(path.stat().st_size))
    return "does not match the sha256"


def valid_torch_data_wrong_checksum(path):
    """A loadable marlkit checkpoint of the same size whose bytes are not the ones the manifest records."""
    size, state = path.stat().st_size, ckpt.load(path)
    _first_float_tensor(state["algo"]).view(-1)[0] += 1.0
    with open(path, "wb") as f:  # as checkpoints are written (a path would rename the archive's folder)
        torch.save(state, f)
    assert path.stat().st_size == size  # the same size: only the checksum tells
    assert torch.load(path, weights_only=True)["env_steps"] == 2000  # valid-looking torch data
    return "does not match the sha256"


def no_manifest_unreadable(path):
    """A checkpoint without a manifest (as older runs have) is trusted only if it loads."""
    ckpt.manifest_path(path).unlink()
    path.write_bytes(path.read_bytes()[:1000])
    return "cannot be read"


CORRUPTIONS = [truncated, zero_bytes, random_bytes, valid_torch_data_wrong_checksum, no_manifest_unreadable]


def one_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("corrupt", CORRUPTIONS, ids=lambda f: f.__name__)
def test_eval_falls_back_to_the_newest_intact_checkpoint(run, corrupt, capsys):
    reason = corrupt(run / "checkpoints" / LATEST)
    assert main(["eval", str(run), "--json"]) == 0
    captured = capsys.readouterr()
    line = one_line(captured.err)
    assert line.startswith("marlkit eval: warning: skipped checkpoint ") and LATEST in line and reason in line
    assert line.endswith(f"using {OLDER}")
    assert json.loads(captured.out)["env_steps"] == 1000


@pytest.mark.parametrize("corrupt", CORRUPTIONS, ids=lambda f: f.__name__)
def test_resume_falls_back_to_the_newest_intact_checkpoint(run, corrupt, capsys):
    reason = corrupt(run / "checkpoints" / LATEST)
    assert main(["train", "--resume", str(run)]) == 0
    captured = capsys.readouterr()
    line = one_line(captured.err)
    assert line.startswith("marlkit train: warning: skipped checkpoint ") and LATEST in line and reason in line
    assert "resumed at 1,000" in captured.out
    assert ckpt.load(run / "checkpoints" / LATEST)["env_steps"] == 2000  # trained again and rewritten intact


@pytest.mark.parametrize("command", [["eval", "{run}"], ["train", "--resume", "{run}"], ["render", "{run}"]])
def test_no_intact_checkpoint_is_a_one_line_error(run, command, capsys):
    truncated(run / "checkpoints" / LATEST)
    random_bytes(run / "checkpoints" / OLDER)
    assert main([a.format(run=run) for a in command]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"marlkit {command[0]}: error: no intact checkpoint in "), line
    assert f"{LATEST} is " in line and f"{OLDER} does not match the sha256" in line


def test_an_explicit_corrupt_checkpoint_is_a_one_line_error(run, capsys):
    zero_bytes(run / "checkpoints" / OLDER)
    assert main(["eval", str(run), "--checkpoint", str(run / "checkpoints" / OLDER)]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith("marlkit eval: error: checkpoint ") and "is 0 bytes" in line


def test_checkpoints_without_a_manifest_load_if_intact(run, capsys):
    for _, path in ckpt.list_checkpoints(run / "checkpoints"):
        ckpt.manifest_path(path).unlink()
    assert main(["eval", str(run), "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and json.loads(captured.out)["env_steps"] == 2000


def test_every_checkpoint_gets_a_manifest(run):
    for steps, path in ckpt.list_checkpoints(run / "checkpoints"):
        manifest = json.loads(ckpt.manifest_path(path).read_text())
        assert manifest["size"] == path.stat().st_size and len(manifest["sha256"]) == 64
        assert ckpt.verify(path) is None and ckpt.load(path)["env_steps"] == steps
