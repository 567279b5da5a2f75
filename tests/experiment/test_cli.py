"""The command line end to end: train in a subprocess, then eval, render, plot, algos and help on its run."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from marlkit.cli import main
from marlkit.experiment.runner import Runner


def marlkit_cmd():
    exe = shutil.which("marlkit", path=os.path.dirname(sys.executable))
    return [exe] if exe else [sys.executable, "-m", "marlkit"]


def test_train_eval_render_plot(tmp_path, tiny, capsys):
    out = subprocess.run(
        [
            *marlkit_cmd(),
            "train",
            "ippo",
            "climbing-v0",
            "--steps",
            "1200",
            "--seed",
            "3",
            "--num-envs",
            "4",
            "--out",
            str(tmp_path),
            "--name",
            "cli",
            "--set",
            "experiment.eval_every=600",
            "experiment.log_every=300",
            "experiment.checkpoint_every=600",
            "experiment.eval_episodes=6",
            "algo.epochs=2",
            "algo.lr=3e-4",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    run = tmp_path / "cli"
    assert "final evaluation (6 episodes): mean per-agent return" in out.stdout  # quiet lines: not a TTY
    assert out.stdout.count("steps/s") == 4
    for name in ("config.yaml", "metrics.csv", "eval.json", "media/final.gif", "checkpoints/step_000000001200.pt"):
        assert (run / name).exists(), name
    assert any(p.name.startswith("events.out.tfevents") for p in run.iterdir())
    saved = json.loads((run / "eval.json").read_text())

    assert main(["eval", str(run), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["episode_return"] == saved["episode_return"]  # same checkpoint, same evaluation seed
    assert set(report["per_agent_return"]) == {"player_0", "player_1"}
    assert main(["eval", str(run), "--episodes", "3"]) == 0
    text = capsys.readouterr().out
    assert "mean per-agent return" in text and "return of player_0" in text and "± " in text

    assert main(["render", str(run), "--gif", str(tmp_path / "ep.gif")]) == 0
    assert (tmp_path / "ep.gif").stat().st_size > 0

    seeds = [Runner(tiny(f"s{s}", seed=s, steps=1200, num_envs=4)).run().run_dir for s in (1, 2)]
    assert main(["plot", *map(str, seeds), str(run), "--out", str(tmp_path / "curves.png")]) == 0
    assert (tmp_path / "curves.png").stat().st_size > 0
    assert main(["plot", str(seeds[0]), str(seeds[1]), "--band", "std", "--out", str(tmp_path / "std.png")]) == 0
    assert (tmp_path / "std.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_algos_and_help(capsys):
    assert main(["algos"]) == 0
    out = capsys.readouterr().out
    assert "mappo" in out and "ippo" in out and "Discrete, Box" in out
    with pytest.raises(SystemExit) as exit:
        main(["train", "mappo", "--help"])
    assert exit.value.code == 0
    out = capsys.readouterr().out
    assert "algo.lr = 0.0007" in out and "Adam learning rate" in out  # the field docs, via field_docs
    assert "algo.centralised_critic = True" in out and "experiment.checkpoint_every" in out


def test_errors_are_one_line_and_name_the_fix(tmp_path, capsys):
    assert main(["train", "ippo", "climbing-v0", "--out", str(tmp_path), "--set", "algo.lrr=1"]) == 2
    assert "did you mean 'algo.lr'" in capsys.readouterr().err
    assert main(["train", "ippo", "climbing-v0", "--out", str(tmp_path), "--set", "env.kwargs.k=-50"]) == 2
    assert "climbing-v0 has no option 'k'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # a rejected config leaves no run directory behind
    with pytest.raises(SystemExit, match="only --steps"):
        main(["train", "ippo", "--resume", str(tmp_path)])


def fails_in_one_line(argv, capsys, *expected):
    """``main(argv)`` exits 2 with one line on stderr holding each of ``expected``, and no traceback."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for text in expected:
        assert text in err, err


def test_bad_config_files_and_pairs_are_one_line_errors(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("algorithm: ippo\nenv: {id: climbing-v0\n")
    fails_in_one_line(["train", "--config", str(bad)], capsys, f"{bad} is not valid YAML at line 3, column 1")
    fails_in_one_line(
        ["train", "jal", "spread-v0", "--out", str(tmp_path / "runs")],
        capsys,
        "cannot train jal on spread-v0",
        "use a function approximator",
    )
    fails_in_one_line(
        ["train", "iql", "tictactoe-v0", "--out", str(tmp_path / "runs")],
        capsys,
        "cannot train iql on tictactoe-v0: tictactoe-v0 is a text game; algorithms that train on it: token-rl",
    )
    assert not (tmp_path / "runs").exists()


def test_eval_counts_and_resume_budget_are_checked(tiny, capsys):
    run = Runner(tiny("done", steps=1000)).run().run_dir
    capsys.readouterr()
    for flag, value, least in (
        ("--episodes", "-1", 1),
        ("--episodes", "0", 1),
        ("--num-envs", "-2", 1),
        ("--num-envs", "0", 1),
        ("--seed", "-1", 0),
    ):
        fails_in_one_line(
            ["eval", str(run), flag, value], capsys, f"{flag} = {value} is not allowed: an integer >= {least}"
        )
    fails_in_one_line(["render", str(run), "--seed", "-1"], capsys, "--seed = -1 is not allowed")

    config = (run / "config.yaml").read_bytes()
    fails_in_one_line(
        ["train", "--resume", str(run), "--steps", "600"],
        capsys,
        "experiment.steps = 600 is not allowed",
        "the 1,000 env-steps this run has already trained",
    )
    assert (run / "config.yaml").read_bytes() == config  # the refused budget was not written
    assert main(["train", "--resume", str(run), "--steps", "1200"]) == 0  # raising the budget still works
    assert "steps: 1200" in (run / "config.yaml").read_text()


def test_a_budget_between_collections_says_what_was_trained(tiny, capsys):
    result = Runner(tiny("partial", steps=500)).run()  # 8 copies x 25 steps: 200 env-steps per collection
    out = capsys.readouterr().out
    assert result.env_steps == 600
    assert "for 500 env-steps (600 in whole collections of 200)" in out
    assert "[600/600]" in out and "/500]" not in out  # progress never reads past its total
    assert "trained 600 env-steps: 3 collections of 200; the budget 500 is not a multiple of 200" in out
    Runner(tiny("exact", steps=400)).run()
    out = capsys.readouterr().out
    assert "for 400 env-steps (seed 0)" in out and "[400/400]" in out and "is not a multiple" not in out


def test_envs_lists_every_id_the_registry_answers_for_with_its_kind(capsys):
    from marlkit.envs.registry import env_kind, env_kinds, list_envs
    from marlkit.envs.text import list_text_envs

    kinds = env_kinds()
    assert set(kinds) == {*list_envs(), *list_text_envs(), "referential-v0"}
    assert all(env_kind(env_id) == kind for env_id, kind in kinds.items())
    assert main(["envs"]) == 0
    rows = [line.split("│") for line in capsys.readouterr().out.splitlines() if "│" in line]
    listed = {cells[1].strip(): cells[2].strip() for cells in rows if len(cells) > 2}
    for env_id, kind in kinds.items():
        assert env_id in listed, env_id
        if kind != "batched":  # the batched table's columns are their groups and spaces
            assert listed[env_id] == kind, env_id


def test_lifelong_strategy_options_must_be_a_json_object():
    with pytest.raises(SystemExit, match="is not JSON"):
        main(["lifelong", "--strategy", "ewc", "--strategy-kwargs", "{lam: 1}"])
    with pytest.raises(SystemExit, match="must be a JSON object"):
        main(["lifelong", "--strategy", "ewc", "--strategy-kwargs", "[1]"])
