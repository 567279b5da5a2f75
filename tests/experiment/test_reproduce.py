"""The reproduction table (benchmarks/reproduce.py) on small hand-written benchmark JSONs, and `marlkit plot` on one."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from marlkit.cli import main as marlkit
from marlkit.experiment.logging import read_benchmark_curves

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def reproduce():
    spec = importlib.util.spec_from_file_location("reproduce", BENCHMARKS / "reproduce.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["reproduce"] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def write_benchmark(
    path: Path,
    algo: str,
    returns: list[float],
    random: list[float],
    steps: int = 1000,
    num_envs: int = 16,
    sets: str = "algo.gamma=0.95",
) -> Path:
    """A document shaped like ``benchmarks/learning.py --json``: one record per seed, the random policy, curves."""
    records = [
        {
            "algo": algo,
            "env": "spread-v0",
            "seed": s,
            "env_steps": steps,
            "eval_return_mean": r,
            "occupied_landmarks": 1.0 + s,
            "collisions_per_episode": 0.5,
            "wall_s": 600.0 + 120 * s,
            "load_avg_1min": 2.0 + 2 * s,
            "num_envs": num_envs,
            "sets": sets,
        }
        for s, r in enumerate(returns)
    ]
    records += [
        {
            "algo": "random",
            "env": "spread-v0",
            "seed": s,
            "env_steps": 0,
            "eval_return_mean": r,
            "occupied_landmarks": 0.0,
            "collisions_per_episode": 1.3,
        }
        for s, r in enumerate(random)
    ]
    curves = {
        str(s): [
            {"env_steps": steps // 2, "episode_return": r - 5.0, "occupied_landmarks": 0.5},
            {"env_steps": steps, "episode_return": r, "occupied_landmarks": 1.0 + s},
        ]
        for s, r in enumerate(returns)
    }
    doc = {
        "benchmark": "learning",
        "records": records,
        "command": "python benchmarks/learning.py ...",
        "summary": {},
        "config": {"algorithm": algo, "experiment": {"steps": steps}},
        "curves": curves,
    }
    path.write_text(json.dumps(doc))
    return path


def test_table_from_json_fixtures(reproduce, tmp_path):
    Row, Published = reproduce.Row, reproduce.Published  # code defaults (no preset), as the fixtures were made
    rows = [
        Row("vdn", "spread-v0", 1000, 2, 16, ("algo.gamma=0.95",), Published("-13.09", "XuanCe, 10M"), "none"),
        Row("mappo", "spread-v0", 1000, 1),
        Row("iql", "spread-v0", 1000, 3, 16, ("algo.gamma=0.95",), preset="none"),
    ]
    write_benchmark(tmp_path / "learning_vdn_spread.json", "vdn", [-11.0, -9.0], [-26.0, -28.0])
    write_benchmark(tmp_path / "learning_iql_spread.json", "iql", [-14.0, -12.0], [-26.0, -28.0])  # 2 seeds, not 3

    text = reproduce.write_table(rows, tmp_path, out=tmp_path / "TABLE.md").read_text()
    lines = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines() if line.startswith("| ")}
    # mean and sample std over seeds: returns -11, -9; landmarks 1, 2; random -26, -28; wall 600 s, 720 s
    assert lines["vdn"].startswith(
        "| vdn | 1,000 | 2 | **-10.00 ± 1.41** | 1.50 ± 0.71 | 0.50 ± 0.00 | "
        "11.0 min (load 3.0) | -27.00 ± 1.41 | -13.09 (XuanCe, 10M) | "
    )
    assert (
        f"--algo vdn --env spread-v0 --steps 1000 --seeds 2 --preset none --num-envs 16 "
        f"--set algo.gamma=0.95 --json {tmp_path}/learning_vdn_spread.json" in lines["vdn"]
    )
    # no JSON: "not run" and the command that would produce it, no numbers
    assert lines["mappo"] == (
        "| mappo | 1,000 | 1 | not run | – | – | – | – |  | `python benchmarks/learning.py "
        "--algo mappo --env spread-v0 --steps 1000 --seeds 1 --json "
        f"{tmp_path}/learning_mappo_spread.json` |"
    )
    # a JSON made with other settings than the row declares is flagged, with what differs
    assert "**-13.00 ± 1.41 (note 1)**" in lines["iql"]
    assert "1. iql: " in text and "seeds 2 (row: 3)" in text
    # tabular learners cannot train on spread's continuous observations: n/a with the registry's reason
    assert (
        "| n/a (iql-tabular keeps a table row per observation, but this env's observations are not countable) |"
        in lines["iql-tabular"]
    )
    assert "n/a (jal keeps a table row" in lines["jal"]
    # registered algorithms that could train but have no row are named, not silently dropped
    assert "Registered algorithms without a row here: " in text and "ippo (spread-v0)" in text


def test_one_seed_has_no_spread_and_quick_tables_say_so(reproduce, tmp_path):
    rows = [reproduce.Row("vdn", "spread-v0", 2_000_000, 3, 16, ("algo.gamma=0.95",), preset="none")]
    quick = reproduce.quick_row(rows[0])
    assert (quick.steps, quick.seeds, quick.num_envs, quick.sets) == (reproduce.QUICK_STEPS, 1, 16, rows[0].sets)
    write_benchmark(tmp_path / "learning_vdn_spread.json", "vdn", [-20.5], [-26.0], steps=quick.steps)
    text = reproduce.write_table(rows, tmp_path, quick=True, out=tmp_path / "Q.md").read_text()
    assert "Quick smoke run — not results" in text
    assert "| vdn | 50,000 | 1 | **-20.50** | 1.00 | 0.50 | 10.0 min (load 2.0) | -26.00 |  |" in text
    assert "note 1" not in text  # the quick JSON matches the quick version of its row


def test_declared_rows_match_the_committed_results(reproduce):
    """Every committed learning JSON was made with exactly the settings its row declares (env-steps, seeds, copies,
    overrides), so the command in the table reproduces the number beside it."""
    checked = 0
    for row in reproduce.ROWS:
        path = BENCHMARKS.parent / reproduce.RESULTS / row.json_name
        if path.exists():
            assert reproduce.mismatch(row, json.loads(path.read_text())) == [], row.name
            checked += 1
    assert checked >= 6  # mappo on spread, pursuit and pz; vdn, iql, qmix on spread


def test_rows_cover_every_env_and_only_selects(reproduce, capsys):
    names = [r.name for r in reproduce.ROWS]
    assert len(names) == len(set(names))
    for algo in ("mappo", "ippo", "maa2c", "ia2c", "iql", "vdn", "qmix", "maddpg"):
        for env in reproduce.ENVS:
            assert f"{algo}/{env}" in names
    assert [r.name for r in reproduce.select(reproduce.ROWS, ["mappo/spread-v0"])] == ["mappo/spread-v0"]
    assert {r.env for r in reproduce.select(reproduce.ROWS, ["pursuit-v0"])} == {"pursuit-v0"}
    assert {r.algo for r in reproduce.select(reproduce.ROWS, ["*a2c"])} == {"ia2c", "maa2c"}
    with pytest.raises(SystemExit, match="matches no row; rows are ALGO/ENV: mappo/spread-v0"):
        reproduce.select(reproduce.ROWS, ["mapo"])
    # quick runs write into their own folder, never over the full results
    _, argv = reproduce.invocation(reproduce.ROWS[0], reproduce.QUICK_DIR, quick=True)
    assert argv[argv.index("--json") + 1].startswith(str(reproduce.QUICK_DIR) + "/")
    assert reproduce.main(["--dry-run", "--force", "--only", "vdn/spread-v0"]) == 0
    assert "--algo vdn --env spread-v0 --steps 2000000 --seeds 3 --json" in capsys.readouterr().out  # no --num-envs


def test_marlkit_plot_reads_a_benchmark_json(tmp_path, capsys):
    path = write_benchmark(tmp_path / "vdn.json", "vdn", [-11.0, -9.0], [-26.0, -28.0])
    label, runs, random = read_benchmark_curves(path)
    assert label == "vdn on spread-v0" and random == {0: -26.0, 1: -28.0}
    assert runs[1] == [
        {"env_steps": 500.0, "eval/episode_return": -14.0, "eval/occupied_landmarks": 0.5},
        {"env_steps": 1000.0, "eval/episode_return": -9.0, "eval/occupied_landmarks": 2.0},
    ]

    assert (
        marlkit(
            [
                "plot",
                str(path),
                "--key",
                "eval/episode_return",
                "--key",
                "eval/occupied_landmarks",
                "--out",
                str(tmp_path / "curves.png"),
            ]
        )
        == 0
    )
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert marlkit(["plot", str(path)]) == 0  # default keys: the train panel has no values in a JSON, left out
    assert (tmp_path / "vdn.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    capsys.readouterr()

    assert marlkit(["plot", str(path), "--key", "eval/nothing"]) == 2
    assert "nothing to plot" in capsys.readouterr().err
    (tmp_path / "other.json").write_text(json.dumps({"benchmark": "envs", "records": []}))
    assert marlkit(["plot", str(tmp_path / "other.json")]) == 2
    assert "is not a learning-benchmark JSON" in capsys.readouterr().err
    assert marlkit(["plot", str(tmp_path / "missing")]) == 2
    assert "not a run directory or a learning-benchmark .json file" in capsys.readouterr().err


def test_merge_results_joins_seed_ranges_and_recomputes_the_summary(tmp_path):
    """benchmarks/merge_results.py: seeds run as separate invocations become one row; a different row is refused."""
    spec = importlib.util.spec_from_file_location("merge_results", BENCHMARKS / "merge_results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    first = json.loads(write_benchmark(tmp_path / "a.json", "vdn", [-10.0], [-26.0]).read_text())
    later = json.loads(write_benchmark(tmp_path / "b.json", "vdn", [-99.0, -12.0, -14.0], [-26.0] * 3).read_text())
    later["records"] = [r for r in later["records"] if r["seed"] != 0]  # seeds 1-2 only, as `--seed0 1 --seeds 2`
    merged = module.merge([first, later], command="python benchmarks/learning.py --seeds 3")
    assert [(r["algo"], r["seed"]) for r in merged["records"]] == [
        ("vdn", 0),
        ("vdn", 1),
        ("vdn", 2),
        ("random", 0),
        ("random", 1),
        ("random", 2),
    ]
    stats = merged["summary"]["vdn"]["eval_return_mean"]
    assert stats["seeds"] == 3 and stats["mean"] == pytest.approx(-12.0) and stats["std"] == pytest.approx(2.0)
    assert merged["command"].endswith("--seeds 3") and len(merged["command_as_run"]) == 2
    other = json.loads(write_benchmark(tmp_path / "c.json", "vdn", [-11.0], [-26.0], sets="algo.lr=1").read_text())
    with pytest.raises(ValueError, match="not one row"):
        module.merge([first, other])
