"""Run configs: typed and documented fields, YAML in and out, overrides, and errors that say what is allowed."""

import dataclasses

import pytest
import yaml

from marlkit.algorithms.registry import algo_spec
from marlkit.core.config import ConfigError, field_docs, override
from marlkit.experiment.run import EnvConfig, ExperimentConfig, RunConfig, make_run_config


def base(**data):
    return RunConfig.from_dict({"algorithm": "ippo", "env": {"id": "climbing-v0"}, **data})


# ---------------------------------------------------------------------------------------------- documentation
@pytest.mark.parametrize("cls", [EnvConfig, ExperimentConfig, RunConfig, algo_spec("mappo").load()[1]])
def test_every_field_has_a_one_line_doc(cls):
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        assert docs.get(f.name), f"{cls.__name__}.{f.name} has no docstring under it"
        assert "\n" not in docs[f.name]


def test_configs_are_frozen():
    cfg = base()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.experiment.steps = 3  # type: ignore[misc]


# ------------------------------------------------------------------------------------------ building and YAML
def test_algorithm_is_read_first_and_presets_apply():
    ippo = RunConfig.from_dict({"algo": {"lr": 1e-3}, "env": {"id": "climbing-v0"}, "algorithm": "ippo"})
    mappo = RunConfig.from_dict({"algorithm": "mappo", "env": {"id": "climbing-v0"}, "algo": {"lr": 1e-3}})
    assert type(ippo.algo).__name__ == "PPOConfig" and ippo.algo.lr == 1e-3
    assert ippo.algo.centralised_critic is False and mappo.algo.centralised_critic is True


def test_a_preset_cannot_be_contradicted():
    with pytest.raises(ConfigError, match=r"algo.centralised_critic = False is not allowed: True for algorithm 'mapp"):
        RunConfig.from_dict({"algorithm": "mappo", "env": {"id": "climbing-v0"}, "algo": {"centralised_critic": False}})


def test_yaml_round_trip(tmp_path):
    cfg = make_run_config(
        "mappo", "penalty-v0", steps=5000, seed=3, hidden=(32, 16), sets=["env.kwargs.k=-50", "experiment.name=x"]
    )
    cfg.save(tmp_path / "c.yaml")
    again = RunConfig.load(tmp_path / "c.yaml")
    assert again == cfg
    assert again.algo.hidden == (32, 16) and again.env.kwargs == {"k": -50}
    data = yaml.safe_load((tmp_path / "c.yaml").read_text())
    assert list(data) == ["algorithm", "env", "experiment", "algo", "preset"]
    assert data["algo"]["hidden"] == [32, 16]  # plain YAML, no python tuples


def test_yaml_reads_exponents_as_numbers(tmp_path):
    (tmp_path / "c.yaml").write_text("algorithm: ippo\nenv: {id: climbing-v0}\nalgo: {lr: 3e-4}\n")
    assert RunConfig.load(tmp_path / "c.yaml").algo.lr == 3e-4  # PyYAML alone would read the string '3e-4'


def test_missing_algorithm_or_env():
    with pytest.raises(ConfigError, match="needs 'algorithm'"):
        RunConfig.from_dict({"env": {"id": "climbing-v0"}})
    with pytest.raises(ConfigError, match="env"):
        RunConfig.from_dict({"algorithm": "ippo"})


# -------------------------------------------------------------------------------------------------- overrides
def test_overrides_reach_every_section():
    cfg = base()
    cfg = override(cfg, "algo.lr=3e-4")
    cfg = override(cfg, "env.num_envs=4")
    cfg = override(cfg, "experiment.steps=2e6")  # YAML reads 2e6 as a float; a whole number is accepted
    cfg = override(cfg, "algo.hidden=[32, 32]")
    assert (cfg.algo.lr, cfg.env.num_envs, cfg.experiment.steps, cfg.algo.hidden) == (3e-4, 4, 2_000_000, (32, 32))
    assert isinstance(cfg.experiment.steps, int)


def test_env_kwargs_override():
    cfg = override(RunConfig.from_dict({"algorithm": "ippo", "env": {"id": "penalty-v0"}}), "env.kwargs.k=-50")
    cfg = override(cfg, "env.kwargs.episode_length=3")
    assert cfg.env.kwargs == {"k": -50, "episode_length": 3}


def test_make_run_config_resolves_bare_names():
    cfg = make_run_config("ippo", "climbing-v0", steps=100, lr=1e-3, num_envs=2, progress=False)
    assert (cfg.experiment.steps, cfg.algo.lr, cfg.env.num_envs, cfg.experiment.progress) == (100, 1e-3, 2, False)
    with pytest.raises(ConfigError, match=r"did you mean 'algo\.lr'"):
        make_run_config("ippo", "climbing-v0", lrr=1e-3)


def test_config_file_and_command_line_must_agree_on_the_algorithm(tmp_path):
    base().save(tmp_path / "c.yaml")
    assert make_run_config(None, "penalty-v0", tmp_path / "c.yaml").env.id == "penalty-v0"
    with pytest.raises(ConfigError, match="says algorithm: ippo"):
        make_run_config("mappo", None, tmp_path / "c.yaml")


# ----------------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "assignment, message",
    [
        ("algo.lrr=1", r"unknown config key 'algo.lrr'; did you mean 'algo.lr'\?"),
        ("experiment.stesp=1", r"did you mean 'experiment.steps'\?"),
        ("env.num_env=1", r"did you mean 'env.num_envs'\?"),
        ("expriment.steps=1", r"did you mean 'experiment'\?"),
        ("algo.lr.x=1", r"algo.lr is a float, it has no field 'x'"),
    ],
)
def test_unknown_keys_name_the_nearest(assignment, message):
    with pytest.raises(ConfigError, match=message):
        override(base(), assignment)


def test_unknown_keys_in_yaml_name_the_nearest():
    with pytest.raises(ConfigError, match=r"did you mean 'experiment.eval_every'\?"):
        base(experiment={"eval_evry": 10})
    with pytest.raises(ConfigError, match=r"did you mean 'algo.gamma'\?"):
        base(algo={"gama": 0.9})
    with pytest.raises(ConfigError, match=r"did you mean 'experiment'\?"):
        base(experimnt={})


@pytest.mark.parametrize(
    "assignment, message",
    [
        ("algo.lr=abc", r"algo.lr must be a number, got 'abc'"),
        ("experiment.steps=1.5", r"experiment.steps must be an integer, got 1.5"),
        ("experiment.progress=maybe", r"experiment.progress must be true or false"),
        ("env.kwargs=3", r"env.kwargs must be a mapping"),
        ("algo.hidden=64", r"algo.hidden must be a list"),
        ("env.eval_num_envs=x", r"env.eval_num_envs = 'x' matches none of"),
    ],
)
def test_wrong_types_name_the_field_and_the_type(assignment, message):
    with pytest.raises(ConfigError, match=message):
        override(base(), assignment)


@pytest.mark.parametrize(
    "assignment, message",
    [
        ("algo.lr=-1", r"algo.lr = -1.0 is not allowed: a positive number"),
        ("algo.gamma=1.5", r"algo.gamma = 1.5 is not allowed: a number in \[0, 1\]"),
        ("experiment.steps=0", r"experiment.steps = 0 is not allowed: an integer >= 1"),
        ("experiment.eval_every=-1", r"experiment.eval_every = -1 is not allowed: an integer >= 0"),
        ("experiment.name=a/b", r"experiment.name = 'a/b' is not allowed: a plain folder name"),
        ("env.num_envs=0", r"env.num_envs = 0 is not allowed: an integer >= 1"),
        ("algorithm=mappo", r"algo.centralised_critic = False is not allowed"),
    ],
)
def test_out_of_range_values_say_what_is_allowed(assignment, message):
    with pytest.raises(ConfigError, match=message):
        override(base(), assignment)


def test_unknown_algorithm_and_env_name_the_nearest():
    with pytest.raises(ConfigError, match="did you mean 'mappo'"):
        RunConfig.from_dict({"algorithm": "mapo", "env": {"id": "climbing-v0"}})
    with pytest.raises(ConfigError, match=r"env\.id: unknown environment id 'climbng-v0'; did you mean 'climbing-v0'"):
        RunConfig.from_dict({"algorithm": "ippo", "env": {"id": "climbng-v0"}})


def test_override_needs_key_equals_value():
    with pytest.raises(ConfigError, match="key=value"):
        override(base(), "algo.lr")
    with pytest.raises(ConfigError, match="not valid YAML"):
        override(base(), "algo.hidden=[1,")


def test_an_override_with_a_control_character_is_a_config_error():
    # YAML's reader refuses control characters with an error that carries no `problem` (a parse error does)
    with pytest.raises(ConfigError, match=r"the value of experiment\.name is not valid YAML: .*unacceptable character"):
        override(base(), "experiment.name=run\x01")
