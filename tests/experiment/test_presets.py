"""Tuned presets: every shipped one builds, they apply beneath config/fields/--set and only when a config is built
from algorithm + env, a broken preset is an error naming its file, and --print-config says where each value came
from. The reproduction table reads the same presets (its rows' resolved settings are checked in test_reproduce)."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import yaml

import marlkit
from marlkit.cli import main
from marlkit.core.config import ConfigError, yaml_load
from marlkit.experiment import presets
from marlkit.experiment.run import RunConfig, make_run_config, resolve_run_config
from marlkit.experiment.runner import Runner

ROOT = Path(__file__).resolve().parents[2]
QUIET = {"progress": False, "gif": False, "eval_episodes": 4, "eval_every": 0, "checkpoint_every": 200, "epochs": 1}


@pytest.fixture(scope="module")
def reproduce():
    spec = importlib.util.spec_from_file_location("reproduce", ROOT / "benchmarks" / "reproduce.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["reproduce"] = module
    spec.loader.exec_module(module)
    return module


def flat(cfg: RunConfig) -> dict:
    data = cfg.to_dict()
    return {f"{section}.{k}": v for section in ("env", "algo") for k, v in data[section].items()}


def shipped_sections():
    return [
        (name, task, algo)
        for name, data in presets.shipped().items()
        for task in data["tasks"]
        for algo in data
        if algo != "tasks"
    ]


@pytest.mark.parametrize("name, task, algo", shipped_sections())
def test_every_shipped_preset_builds_its_run_config(name, task, algo):
    if task.startswith("pz:"):
        pytest.importorskip("mpe2")
    cfg = make_run_config(algo, task)
    assert cfg.preset == name
    preset = presets.select("auto", algo, task)
    values = flat(cfg)
    for path, value in preset.settings().items():
        assert values[path] == value, path


def test_shipped_files_name_their_first_task_and_cover_every_row(reproduce):
    for name, data in presets.shipped().items():
        assert data["tasks"][0] == name
    for row in reproduce.ROWS:  # every row's learner settings come from a preset, pz:simple_spread_v3 by its alias
        assert presets.select("auto", row.algo, row.env) is not None, row.name
    assert presets.shipped_tasks()["pz:simple_spread_v3"] == "spread-v0"


def test_presets_sit_beneath_config_fields_and_sets(tmp_path):
    (tmp_path / "c.yaml").write_text("algo: {lr: 0.01, gamma: 0.9}\n")
    cfg = make_run_config("qmix", "spread-v0", tmp_path / "c.yaml", ["algo.gamma=0.5"], num_envs=4)
    assert (cfg.algo.lr, cfg.algo.gamma, cfg.env.num_envs) == (0.01, 0.5, 4)  # config file, --set, field
    assert (cfg.algo.residual, cfg.algo.buffer_size, cfg.preset) == (True, 200_000, "spread-v0")  # the preset
    defaults = make_run_config("qmix", "spread-v0", preset="none")
    assert defaults == RunConfig.from_dict({"algorithm": "qmix", "env": {"id": "spread-v0"}})
    assert make_run_config("qmix", "spread-v0", preset=None) == defaults
    assert make_run_config("ippo", "climbing-v0").preset is None  # no shipped preset for the pair: the defaults


def test_a_preset_is_chosen_by_task_or_file(tmp_path):
    assert make_run_config("ippo", "spread-v0", preset="pursuit-v0").env.num_envs == 64
    with pytest.raises(
        ConfigError,
        match=r"preset 'sprad-v0': no shipped presets for that task; did you mean "
        r"'spread-v0'\?",
    ):
        make_run_config("ippo", "spread-v0", preset="sprad-v0")
    with pytest.raises(ConfigError, match="has no section for teams"):
        make_run_config("teams", "spread-v0", preset="spread-v0")
    (tmp_path / "mine.yaml").write_text("ippo:\n  env: {num_envs: 4}\n  algo: {epochs: 2}\n")
    cfg = make_run_config("ippo", "climbing-v0", preset=tmp_path / "mine.yaml")
    assert (cfg.env.num_envs, cfg.algo.epochs, cfg.preset) == (4, 2, str(tmp_path / "mine.yaml"))
    with pytest.raises(FileNotFoundError, match="no such file"):
        make_run_config("ippo", "climbing-v0", preset=tmp_path / "missing.yaml")


def test_a_config_names_its_preset_and_an_explicit_one_wins(tmp_path):
    make_run_config("qmix", "spread-v0", preset="none").save(tmp_path / "plain.yaml")
    assert make_run_config(config=tmp_path / "plain.yaml").algo.residual is False  # preset: null in the file
    (tmp_path / "short.yaml").write_text("algorithm: qmix\nenv: {id: spread-v0}\n")
    assert make_run_config(config=tmp_path / "short.yaml").algo.residual is True  # no preset key: the shipped one
    assert make_run_config(config=tmp_path / "short.yaml", preset="none").algo.residual is False


@pytest.mark.parametrize(
    "section, config_error",
    [
        ("algo: {gama: 0.9}", "algo: {gama: 0.9}"),
        ("algo: {lr: fast}", "algo: {lr: fast}"),
        ("env: {num_envs: 0}", "env: {id: spread-v0, num_envs: 0}"),
    ],
)
def test_a_bad_preset_gets_the_config_files_error_naming_the_preset(section, config_error, tmp_path, capsys):
    env = "" if config_error.startswith("env") else "env: {id: spread-v0}\n"
    (tmp_path / "c.yaml").write_text(f"algorithm: qmix\n{env}{config_error}\n")
    with pytest.raises(ConfigError) as from_config:
        make_run_config(config=tmp_path / "c.yaml", preset="none")
    (tmp_path / "p.yaml").write_text(f"qmix:\n  {section}\n")
    with pytest.raises(ConfigError) as from_preset:
        make_run_config("qmix", "spread-v0", preset=tmp_path / "p.yaml")
    assert str(from_preset.value) == f"preset {tmp_path / 'p.yaml'} (qmix): {from_config.value}"
    assert main(["train", "qmix", "spread-v0", "--preset", str(tmp_path / "p.yaml"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"preset {tmp_path / 'p.yaml'} (qmix): " in err


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "qmix:\n  env: {kwargs: {continuous_actions: true}}\n",
            r"env.kwargs is not allowed in a preset: a preset tunes",
        ),
        ("qmix:\n  experiment: {steps: 10}\n", r"experiment is not allowed in a preset"),
        ("qmix:\n  algoo: {lr: 0.1}\n", r"unknown config key 'algoo'; did you mean 'algo'\?"),
        ("qmx:\n  algo: {lr: 0.1}\n", r"unknown algorithm 'qmx'; did you mean 'qmix'\?"),
        ("qmix: [\n", r"is not valid YAML"),
    ],
)
def test_a_preset_tunes_the_learner_never_the_task(text, message, tmp_path):
    (tmp_path / "p.yaml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        make_run_config("qmix", "spread-v0", preset=tmp_path / "p.yaml")


def test_a_typo_in_a_shipped_preset_is_caught(monkeypatch):
    texts = dict(presets._shipped())
    texts["spread-v0"] = texts["spread-v0"].replace("hypernet_layers: 2", "hypernet_layer: 2")
    monkeypatch.setattr(presets, "_shipped", lambda: tuple(texts.items()))
    presets.shipped_tasks.cache_clear()
    try:
        with pytest.raises(
            ConfigError,
            match=r"preset marlkit/experiment/presets/spread-v0.yaml \(qmix\): unknown "
            r"config key 'algo.hypernet_layer'; did you mean 'algo.hypernet_layers'",
        ):
            make_run_config("qmix", "spread-v0")
    finally:
        presets.shipped_tasks.cache_clear()


@pytest.mark.pettingzoo
def test_pz_simple_spread_v3_gets_the_spread_presets():
    pytest.importorskip("mpe2")
    for algo in ("qmix", "maa2c", "maddpg"):
        pz = make_run_config(algo, "pz:simple_spread_v3")
        assert pz.preset == "spread-v0"
        assert {k: v for k, v in flat(pz).items() if k != "env.id"} == {
            k: v for k, v in flat(make_run_config(algo, "spread-v0")).items() if k != "env.id"
        }


def test_a_run_records_its_preset_and_resume_and_eval_never_apply_it(tmp_path, capsys):
    """The preset is applied once, when the config is built: the run's config.yaml says which one, and resuming or
    evaluating the run reads config.yaml alone (here the preset file is gone and the run still resumes as trained)."""
    preset = tmp_path / "mine.yaml"
    preset.write_text("ippo:\n  env: {num_envs: 4}\n  algo: {rollout_steps: 10}\n")
    result = marlkit.train("ippo", "climbing-v0", steps=200, out=str(tmp_path), name="run", preset=preset, **QUIET)
    saved = yaml_load((result.run_dir / "config.yaml").read_text())
    assert saved["preset"] == str(preset) and saved["env"]["num_envs"] == 4 and saved["algo"]["rollout_steps"] == 10
    preset.unlink()
    resumed = Runner.resume(result.run_dir, steps=400).run()
    assert resumed.env_steps == 400 and RunConfig.load(result.run_dir).algo.rollout_steps == 10
    capsys.readouterr()
    assert main(["eval", str(result.run_dir), "--episodes", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["episodes"] == 2


def test_print_config_shows_the_tables_qmix_settings_from_the_preset(tmp_path, capsys):
    """`marlkit train qmix spread-v0` trains with the settings of the committed QMIX result (its JSON's --set values
    and copies), each shown as coming from the preset; `--preset none` shows the code defaults. Nothing trains."""
    doc = json.loads((ROOT / "benchmarks/results/learning_qmix_spread.json").read_text())
    record = next(r for r in doc["records"] if r["algo"] == "qmix")
    table = {"env.num_envs": record["num_envs"]}
    table.update({k: yaml.safe_load(v) for k, _, v in (s.partition("=") for s in record["sets"].split())})
    assert {"algo.lr", "algo.residual", "algo.hypernet_layers", "algo.gamma"} <= set(table)

    assert main(["train", "qmix", "spread-v0", "--out", str(tmp_path / "runs"), "--print-config"]) == 0
    out = capsys.readouterr().out
    shown, lines = yaml_load(out), {}
    section = None
    for line in out.splitlines():
        if not line.startswith(" "):
            section = line.split(":")[0]
        else:
            lines[f"{section}.{line.split(':')[0].strip()}"] = line
    for path, value in table.items():
        section, key = path.split(".")
        assert shown[section][key] == value, path
        assert lines[path].endswith("# preset marlkit/experiment/presets/spread-v0.yaml"), lines[path]
    assert lines["algo.batch_size"].endswith("# default") and shown["preset"] == "spread-v0"
    assert not (tmp_path / "runs").exists()  # printed, not trained
    (tmp_path / "printed.yaml").write_text(out)  # the output is a config file that builds the same run
    assert make_run_config(config=tmp_path / "printed.yaml") == make_run_config(
        "qmix", "spread-v0", out=str(tmp_path / "runs")
    )

    assert main(["train", "qmix", "spread-v0", "--preset", "none", "--print-config"]) == 0
    out = capsys.readouterr().out
    defaults = RunConfig.from_dict({"algorithm": "qmix", "env": {"id": "spread-v0"}})
    assert yaml_load(out)["algo"] == yaml_load(yaml.safe_dump(defaults.to_dict()))["algo"]
    assert "  lr: 0.0005" in out and "  residual: false" in out and "  num_envs: 128" in out
    assert "preset marlkit" not in out and "preset: null" in out


def test_print_config_names_every_source(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text("algo: {gamma: 0.9}\nexperiment: {seed: 5}\n")
    assert (
        main(
            [
                "train",
                "qmix",
                "spread-v0",
                "--config",
                str(tmp_path / "c.yaml"),
                "--steps",
                "10",
                "--no-progress",
                "--set",
                "algo.lr=0.01",
                "--print-config",
            ]
        )
        == 0
    )
    lines = {line.split(":")[0].strip(): line for line in capsys.readouterr().out.splitlines()[1:]}
    assert lines["algorithm"].endswith("# ALGO") and lines["id"].endswith("# ENV")
    assert lines["gamma"].endswith(f"# config {tmp_path / 'c.yaml'}") and lines["seed"].endswith("c.yaml")
    assert lines["steps"].endswith("# --steps") and lines["progress"].endswith("# --no-progress")
    assert lines["lr"].endswith("# --set") and lines["residual"].endswith(
        "# preset marlkit/experiment/presets/spread-v0.yaml"
    )
    assert lines["tau"].endswith("# default")
    with pytest.raises(SystemExit, match="not --preset, --print-config"):
        main(["train", "--resume", str(tmp_path), "--preset", "none", "--print-config"])


def test_origins_follow_the_order_values_were_applied():
    _, origins = resolve_run_config("ippo", "penalty-v0", {"env": {"kwargs": {"k": 1}}}, ["env.kwargs={k: 2}"])
    assert presets.origin_of("env.kwargs.k", origins).kind == "set"  # the --set replaced the whole mapping
    assert presets.origin_of("env.num_envs", origins) is None  # a default


def test_learning_records_its_preset_and_reproduce_resolves_it(reproduce, tmp_path):
    """benchmarks/learning.py records the preset it applied with its settings; reproduce.py compares a JSON with
    its row through them, so a JSON matches the row whose preset gives the same settings, however they were given."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import learning

    preset = tmp_path / "mine.yaml"
    preset.write_text("ippo:\n  env: {num_envs: 4}\n  algo: {epochs: 2, rollout_steps: 10}\n")
    out = tmp_path / "l.json"
    assert (
        learning.main(
            [
                "--algo",
                "ippo",
                "--env",
                "climbing-v0",
                "--steps",
                "200",
                "--seeds",
                "1",
                "--episodes",
                "4",
                "--preset",
                str(preset),
                "--set",
                "algo.lr=0.001",
                "--out",
                str(tmp_path / "runs"),
                "--json",
                str(out),
            ]
        )
        == 0
    )
    doc = json.loads(out.read_text())
    record = doc["records"][0]
    assert record["preset"] == str(preset) and record["num_envs"] == 4
    assert record["preset_settings"] == {"env.num_envs": 4, "algo.epochs": 2, "algo.rollout_steps": 10}
    Row = reproduce.Row
    assert (
        reproduce.mismatch(Row("ippo", "climbing-v0", 200, 1, sets=("algo.lr=0.001",), preset=str(preset)), doc) == []
    )
    same = ("algo.lr=0.001", "algo.epochs=2", "algo.rollout_steps=10")  # the preset's settings given as --set
    assert reproduce.mismatch(Row("ippo", "climbing-v0", 200, 1, 4, same, preset="none"), doc) == []
    assert reproduce.mismatch(Row("ippo", "climbing-v0", 200, 1, sets=("algo.lr=0.001",)), doc) == [
        "env.num_envs 4 (row: 128)",
        "algo.rollout_steps 10 (row: 25)",
        "algo.epochs 2 (row: 10)",
    ]


def test_reproduce_matches_a_json_made_before_presets(reproduce):
    """A committed JSON made with the preset's settings as --set strings matches the row that now reads them from
    the preset; one that lacks a setting is flagged with the field and both values."""
    settings = presets.select("auto", "qmix", "spread-v0").settings()
    sets = " ".join(f"{k}={json.dumps(v)}" for k, v in settings.items() if k != "env.num_envs")
    record = {"algo": "qmix", "env": "spread-v0", "seed": 0, "num_envs": settings["env.num_envs"], "sets": sets}
    doc = {"records": [record], "config": {"experiment": {"steps": 1000}}}
    row = reproduce.Row("qmix", "spread-v0", 1000, 1)
    assert reproduce.mismatch(row, doc) == []
    record["sets"] = sets.replace("algo.hypernet_layers=2", "")
    assert reproduce.mismatch(row, doc) == ["algo.hypernet_layers 1 (row: 2)"]
