"""examples/llm_meeting_point.py runs on the tiny model and reports its metrics."""

import importlib.util
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.llm

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "llm_meeting_point.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("llm_meeting_point", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_prints_completion_rate_and_communication_costs(example, capsys):
    metrics = example.main(["--episodes", "4", "--num-envs", "2", "--max-new-tokens", "8", "--seed", "1"])
    assert json.loads(capsys.readouterr().out) == metrics
    assert metrics["episodes"] == 4 and 0 <= metrics["completion_rate"] <= 1
    assert metrics["invalid_per_episode"] == 0  # answers are constrained to the agent's own landmark cells
    assert metrics["completion_rate"] > 0  # this seed has successes (chance ones: the tiny model talks noise)
    successes = metrics["completion_rate"] * 4
    assert metrics["messages_per_success"] == 4 * 4 / successes  # two talk turns of two agents, in every episode
    most = 4 * 8 + 2 * len("meet at A1")  # per episode: 4 messages of at most 8 tokens, 2 answers (1 char = 1 token)
    assert 0 < metrics["tokens_per_success"] <= 4 * most / successes


def test_summary_charges_every_message_to_the_successes(example):
    from marlkit.envs.text import TextOutcome

    outcomes = [
        TextOutcome(completed=True, messages=4, tokens=30),
        TextOutcome(completed=False, messages=4, tokens=90, invalid={"a": 2}),
        TextOutcome(completed=True, messages=2, tokens=10),
    ]
    summary = example.summarize(outcomes)
    assert summary["completion_rate"] == pytest.approx(2 / 3)
    assert summary["messages_per_success"] == 10 / 2 and summary["tokens_per_success"] == 130 / 2  # failures count
    assert summary["invalid_per_episode"] == pytest.approx(2 / 3)


def test_reading_the_observation(example):
    from marlkit.envs.text import make_text
    from marlkit.envs.text.meeting_point import cell_name

    env = make_text("meeting-point-v0", seed=0)
    obs, _ = env.reset()
    for agent in env.agents:
        assert example.own_cells(obs[agent]) == [cell_name(c) for _, c in env.halves[agent]]
        assert not example.is_move(obs[agent])
    obs, *_ = env.step({a: "hello" for a in env.agents})
    obs, *_ = env.step({a: "hello" for a in env.agents})
    assert all(example.is_move(obs[a]) for a in env.agents)
