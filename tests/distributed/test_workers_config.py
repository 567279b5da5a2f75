"""``--workers`` and ``--ray-address`` are config fields like any other (no Ray needed to check them)."""

import pytest

from marlkit.cli import main
from marlkit.core.config import ConfigError
from marlkit.experiment.run import make_run_config


def test_the_flags_set_the_experiment_fields(capsys):
    assert main(["train", "mappo", "spread-v0", "--workers", "2", "--ray-address", "auto", "--print-config"]) == 0
    out = capsys.readouterr().out
    lines = {line.split("#")[0].strip(): line.split("#")[-1].strip() for line in out.splitlines() if "#" in line}
    assert lines["workers: 2"] == "--workers" and lines["ray_address: auto"] == "--ray-address"
    cfg = make_run_config("mappo", "spread-v0", workers=3, worker_cpus=0.25)
    assert (cfg.experiment.workers, cfg.experiment.worker_cpus, cfg.experiment.ray_address) == (3, 0.25, None)


def test_bad_worker_settings_are_clear_errors():
    with pytest.raises(ConfigError, match=r"experiment.workers .* an integer >= 0"):
        make_run_config("mappo", "spread-v0", workers=-1)
    with pytest.raises(ConfigError, match=r"experiment.worker_cpus .* a positive number of CPUs"):
        make_run_config("mappo", "spread-v0", worker_cpus=0)
    with pytest.raises(
        ConfigError, match=r"experiment.ray_mode = 'fast' .* sync, pipelined, async, ps-sync, ps-async or null"
    ):
        make_run_config("mappo", "spread-v0", ray_mode="fast")


def test_resume_keeps_the_runs_own_workers(tmp_path):
    with pytest.raises(SystemExit, match="not --workers"):
        main(["train", "--resume", str(tmp_path), "--workers", "4"])
