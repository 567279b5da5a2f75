"""``pz:`` env ids import only allowed modules: a config someone else wrote cannot run code on train, resume or eval.

A planted package whose import writes a marker file sits in a shared run directory, which is both on ``sys.path``
(in-process) and the current directory of ``python -m marlkit`` (which puts it on ``sys.path`` itself).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import marlkit
from marlkit.cli import main
from marlkit.core.config import ConfigError
from marlkit.envs.registry import UnknownEnvError, check_id, pettingzoo_entry_points
from marlkit.experiment.run import RunConfig, make_run_config
from marlkit.experiment.runner import Runner, load_run, train

PLANT = "marlkit_planted_pkg"
PLANTED_ID = f"pz:{PLANT}.game_v0"
QUICK = {
    "num_envs": 2,
    "eval_every": 0,
    "checkpoint_every": 0,
    "eval_episodes": 1,
    "log_every": 1000,
    "progress": False,
    "gif": False,
}


def plant(folder: Path, marker: Path) -> None:
    """A package whose import (its ``__init__`` or its env module) writes ``marker``; the env module is mpe2's."""
    pkg = folder / PLANT
    pkg.mkdir(parents=True)
    touch = f"import pathlib\npathlib.Path({str(marker)!r}).write_text('imported')\n"
    (pkg / "__init__.py").write_text(touch)
    (pkg / "game_v0.py").write_text(touch + "from mpe2.simple_spread_v3 import env, parallel_env  # noqa\n")


def register_entry_point(folder: Path, name: str = "planted_game_v0") -> None:
    """An installed-looking distribution in ``folder`` registering the planted module as ``pz:<name>``."""
    info = folder / "marlkit_planted_dist-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: marlkit-planted-dist\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[marlkit.pettingzoo]\n{name} = {PLANT}.game_v0\n")


@pytest.fixture(autouse=True)
def _forget_planted(monkeypatch):
    yield
    for name in [m for m in sys.modules if m == PLANT or m.startswith(PLANT + ".")]:
        del sys.modules[name]


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory):
    """A finished run directory whose config names the planted module, with the package planted inside it (as a
    run directory someone shares could be). Trained on climbing-v0; only config.yaml was edited afterwards."""
    out = tmp_path_factory.mktemp("shared")
    run = Runner(make_run_config("ippo", "climbing-v0", out=str(out), name="run", steps=400, **QUICK)).run().run_dir
    data = yaml.safe_load((run / "config.yaml").read_text())
    data["env"]["id"] = PLANTED_ID
    (run / "config.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return run


def assert_refused(message: str) -> None:
    assert "is not allowed" in message and "mpe2" in message and "pettingzoo.sisl" in message, message
    assert "'marlkit.pettingzoo' entry-point group" in message, message
    assert "--trust-module" in message and "trust_module=True" in message, message
    assert f"{PLANT}.game_v0" in message, message


def test_validation_imports_nothing(tmp_path, monkeypatch):
    marker = tmp_path / "MARKER"
    plant(tmp_path, marker)
    monkeypatch.syspath_prepend(str(tmp_path))
    check_id(PLANTED_ID)  # a config naming it is well-formed; it is judged when the env is made
    cfg = make_run_config("ippo", PLANTED_ID, out=str(tmp_path / "runs"), steps=100, **QUICK)
    assert RunConfig.from_dict(cfg.to_dict()).env.id == PLANTED_ID
    assert not marker.exists() and PLANT not in sys.modules


def test_train_resume_eval_in_process_never_import_it(shared_run, tmp_path, monkeypatch):
    marker = tmp_path / "MARKER"
    plant(tmp_path, marker)
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = make_run_config("ippo", PLANTED_ID, out=str(tmp_path / "runs"), steps=100, **QUICK)
    for attempt in (
        lambda: Runner(cfg),
        lambda: train("ippo", PLANTED_ID, out=str(tmp_path / "runs"), **QUICK),
        lambda: Runner.resume(shared_run),
        lambda: load_run(shared_run),
        lambda: marlkit.make(PLANTED_ID),
    ):
        with pytest.raises((ConfigError, UnknownEnvError)) as e:
            attempt()
        assert_refused(str(e.value))
    assert not marker.exists() and PLANT not in sys.modules
    assert not (tmp_path / "runs").exists()  # refused before a run directory was made


@pytest.mark.parametrize(
    "command",
    [
        ["train", "ippo", PLANTED_ID, "--steps", "100", "--out", "new-runs"],
        ["train", "--resume", "."],
        ["eval", "."],
        ["render", "."],
    ],
)
def test_python_m_marlkit_in_a_shared_run_directory_never_imports_it(shared_run, tmp_path, command):
    run = tmp_path / "run"
    shutil.copytree(shared_run, run)
    marker = tmp_path / "MARKER"
    plant(run, marker)
    register_entry_point(run)  # an entry point found in the current directory is not an allowed one either
    out = subprocess.run(
        [sys.executable, "-m", "marlkit", *command],
        check=False,
        cwd=run,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert_refused(out.stderr)
    assert not marker.exists()
    assert not (run / "new-runs").exists()


def test_trust_module_imports_it(tmp_path, monkeypatch, capsys):
    marker = tmp_path / "MARKER"
    plant(tmp_path, marker)
    monkeypatch.syspath_prepend(str(tmp_path))
    env = marlkit.make(PLANTED_ID, num_envs=2, trust_module=True)
    assert marker.exists() and len(env.agents) == 3
    marker.unlink()
    assert (
        main(
            [
                "train",
                "ippo",
                PLANTED_ID,
                "--trust-module",
                "--steps",
                "50",
                "--num-envs",
                "2",
                "--out",
                str(tmp_path / "runs"),
                "--name",
                "trusted",
                "--no-progress",
                "--set",
                "experiment.gif=false",
                "experiment.eval_episodes=1",
                "experiment.eval_every=0",
            ]
        )
        == 0
    )
    assert (tmp_path / "runs" / "trusted" / "eval.json").exists()
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "runs" / "trusted"), "--episodes", "1"]) == 2  # trust is per command
    assert_refused(capsys.readouterr().err)
    assert main(["eval", str(tmp_path / "runs" / "trusted"), "--episodes", "1", "--trust-module"]) == 0


def test_an_entry_point_of_an_installed_package_is_allowed(tmp_path, monkeypatch):
    site, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    marker = tmp_path / "MARKER"
    plant(site, marker)
    register_entry_point(site)
    elsewhere.mkdir()
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.chdir(elsewhere)
    assert pettingzoo_entry_points()["planted_game_v0"] == f"{PLANT}.game_v0"
    for env_id in ("pz:planted_game_v0", PLANTED_ID):  # by its entry-point name and by its module
        assert len(marlkit.make(env_id, num_envs=1).agents) == 3
    assert marker.exists()

    monkeypatch.chdir(site)  # the same distribution in the current directory is not consulted
    assert "planted_game_v0" not in pettingzoo_entry_points()
    with pytest.raises(UnknownEnvError, match="no PettingZoo env module planted_game_v0"):
        check_id("pz:planted_game_v0")


def test_allowed_modules_still_train(tmp_path):
    result = train("ippo", "pz:simple_spread_v3", steps=50, seed=0, out=str(tmp_path), **QUICK)
    assert result.env_steps == 50 and result.eval["env"] == "pz:simple_spread_v3"
    assert len(marlkit.make("pz:mpe2.simple_spread_v3", num_envs=1).agents) == 3  # the dotted form of the same
    with pytest.raises(ConfigError, match="did you mean 'simple_spread_v3'"):
        make_run_config("ippo", "pz:simple_sprad_v3")
    with pytest.raises(ConfigError, match="is not a PettingZoo env id"):
        make_run_config("ippo", "pz:../evil")
