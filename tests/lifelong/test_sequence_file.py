"""Sequences from YAML files: a valid file gives the tasks it lists (and trains through the CLI); every mistake is a
ConfigError naming the bad field and what is allowed; nothing in the file is executed."""

import json

import pytest

from marlkit.core.config import ConfigError
from marlkit.lifelong.sequence_file import any_sequence as sequence
from marlkit.lifelong.sequence_file import load_sequence

GOOD = """
name: two-controls
tasks:
  - name: plain
    env: foraging-v0
    kwargs: {size: 5, num_food: 1, max_agent_level: 1, max_food_level: 1, max_steps: 10}
    partners: 1
  - name: shifted
    env: foraging-v0
    kwargs: {size: 5, num_food: 1, max_agent_level: 1, max_food_level: 1, max_steps: 10}
    action_perm: [1, 2, 3, 4, 5, 0]
    hide: [6, 7, 8]
    partners: 1
    partner: random
    success_threshold: 0.5
"""


def write(tmp_path, text, name="seq.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_a_yaml_file_gives_its_tasks_in_order(tmp_path):
    seq = sequence(write(tmp_path, GOOD))
    assert seq.name == "two-controls" and [t.name for t in seq.tasks] == ["plain", "shifted"]
    plain, shifted = seq.tasks
    assert plain.action_perm is None and plain.partner == "noop" and plain.success_threshold == 0.8
    assert shifted.action_perm == (1, 2, 3, 4, 5, 0) and shifted.hide == (6, 7, 8)
    assert shifted.partners == 1 and shifted.partner == "random" and shifted.success_threshold == 0.5
    assert shifted.kwargs["size"] == 5
    assert seq.layout()["num_tasks"] == 2
    assert len(sequence(write(tmp_path, GOOD), num_tasks=1)) == 1


def test_partner_file_is_resolved_next_to_the_yaml(tmp_path):
    (tmp_path / "mate.pt").write_bytes(b"")
    text = GOOD.replace("partner: random", "partner: mate.pt")
    with pytest.raises(ConfigError) as e:  # the file exists but is no policy: refused when its env is built
        load_sequence(write(tmp_path, text))
    assert "tasks[1]" in str(e.value)
    missing = GOOD.replace("partner: random", "partner: nowhere.pt")
    with pytest.raises(ConfigError, match=r"tasks\[1\]\.partner = 'nowhere.pt'.*noop, random or an existing"):
        load_sequence(write(tmp_path, missing))


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "env: foraging-v0\n    kwargs: {size: 5, num_food: 1, max_agent_level: 1, max_food_level: 1, max_steps: 10}\n"
            "    action_perm",
            "env: foragin-v0\n    action_perm",
            r"tasks\[1\]\.env = 'foragin-v0'.*foraging-v0",
        ),
        (
            "action_perm: [1, 2, 3, 4, 5, 0]",
            "action_perm: [1, 1, 3, 4, 5, 0]",
            r"tasks\[1\].*action_perm = \[1, 1, 3, 4, 5, 0\].*permutation of 0\.\.5",
        ),
        ("action_perm: [1, 2, 3, 4, 5, 0]", "action_perm: [1, 2]", r"tasks\[1\].*action_perm.*permutation of 0\.\.5"),
        ("hide: [6, 7, 8]", "hide: six", r"tasks\[1\]\.hide = 'six'.*list of integers"),
        ("hide: [6, 7, 8]", "hide: [600]", r"tasks\[1\].*hide = \[600\] must index"),
        ("partners: 1\n    partner:", "partners: -1\n    partner:", r"tasks\[1\]\.partners = -1.*integer >= 0"),
        ("success_threshold: 0.5", "success_threshold: 5", r"tasks\[1\]\.success_threshold = 5.*\[0, 1\]"),
        ("success_threshold: 0.5", "succes_threshold: 0.5", r"tasks\[1\]: unknown key 'succes_threshold'.*did you"),
        (
            "size: 5, num_food: 1, max_agent_level: 1, max_food_level: 1, max_steps: 10}\n    action_perm",
            "sise: 5}\n    action_perm",
            r"tasks\[1\] \(shifted\).*no option 'sise'",
        ),
        ("name: shifted", "name: plain", r"repeats task names"),
        ("tasks:", "taks:", r"unknown key 'taks'"),
    ],
)
def test_each_mistake_names_the_field_and_what_is_allowed(tmp_path, old, new, message):
    assert old in GOOD
    with pytest.raises(ConfigError, match=message):
        load_sequence(write(tmp_path, GOOD.replace(old, new, 1)))


def test_bad_files_are_refused_and_nothing_is_executed(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        sequence(str(tmp_path / "none.yaml"))
    with pytest.raises(ConfigError, match="non-empty list of tasks"):
        load_sequence(write(tmp_path, "tasks: []\n"))
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_sequence(write(tmp_path, "- env: foraging-v0\n"))
    with pytest.raises(ConfigError, match=r"tasks\[0\] is a str"):
        load_sequence(write(tmp_path, "tasks: [foraging-v0]\n"))
    evil = "tasks:\n  - env: !!python/object/apply:os.system ['touch " + str(tmp_path / "owned") + "']\n"
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_sequence(write(tmp_path, evil))
    assert not (tmp_path / "owned").exists()


def test_cli_trains_through_a_yaml_sequence_and_reports_a_bad_one(tmp_path, capsys):
    from marlkit.cli import main

    argv = ["--steps-per-task", "100", "--eval-episodes", "2", "--out", str(tmp_path / "runs")]
    bad = write(tmp_path, GOOD.replace("partners: 1\n    partner:", "partners: two\n    partner:"), "bad.yaml")
    assert main(["lifelong", bad, *argv]) == 2
    err = capsys.readouterr().err
    assert "tasks[1].partners = 'two'" in err and "Traceback" not in err
    good = write(tmp_path, GOOD)
    assert main(["lifelong", good, *argv, "--set", "algo.rollout_steps=5"]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    data = json.loads((run / "lifelong.json").read_text())
    assert data["sequence"] == "two-controls" and data["tasks"] == ["plain", "shifted"]
    assert len(data["R"]) == 2
