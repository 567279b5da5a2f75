"""Roles emerge in short runs: MAPPO with shared weights on spread-v0 divides the landmarks among its agents more
than a random and than its untrained team do (benchmarks/roles.py holds the 1M-step runs)."""

import pytest
import torch

from marlkit.experiment.roles import RoleSetup, role_baselines, role_curve


def test_a_short_mappo_run_divides_the_landmarks() -> None:
    torch.set_num_threads(1)
    setup = RoleSetup(steps=20_000, eval_every=20_000, eval_episodes=300)
    base = role_baselines(setup, seed=0)
    curve = role_curve(setup, seed=0)
    trained = curve[-1]["specialisation"]
    assert curve[0]["specialisation"] == pytest.approx(base["untrained"]["specialisation"])
    assert trained >= base["random"]["specialisation"] + 0.08, (trained, base)
    assert trained >= base["untrained"]["specialisation"] + 0.2, (trained, base)
    assert curve[-1]["return"] > curve[0]["return"] + 5


def test_the_example_runs(tmp_path, capsys) -> None:
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "role_emergence.py"
    spec = importlib.util.spec_from_file_location("role_emergence", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    curve = module.main(["--steps", "1600", "--eval-every", "1600", "--plot", str(tmp_path / "roles.png")])
    assert [r["env_steps"] for r in curve] == [0.0, 1600.0]
    assert (tmp_path / "roles.png").stat().st_size > 0
    assert "untrained: specialisation" in capsys.readouterr().out
