"""A cost per talk token on meeting-point (MeetingPoint(token_cost=...)), token RL that learns to say less for it
(the short version of benchmarks/llm_meeting_point.py), and the benchmark's ``--talk cells`` setting, in which the
message carries the meeting point."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from marlkit.envs.text.meeting_point import MeetingPoint

pytestmark = pytest.mark.llm

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "llm_meeting_point.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("llm_meeting_point", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_each_message_costs_its_sender_per_token():
    env = MeetingPoint(token_cost=0.1, seed=0)
    env.reset()
    _, rewards, *_ = env.step({"player_0": "oak at C4 here", "player_1": ""})
    assert rewards == {"player_0": pytest.approx(-0.4), "player_1": 0.0}
    with pytest.raises(ValueError, match="token_cost must be >= 0"):
        MeetingPoint(token_cost=-1.0)


def test_muted_games_deliver_no_message(bench):
    env = bench.Muted(seed=0)
    env.reset()
    obs, *_ = env.step({"player_0": "the well at B2", "player_1": "hi"})
    assert "well at B2" not in obs["player_1"] and "talk 1, player_0: " in obs["player_1"]


def talk_tokens(outcomes):
    return float(np.mean([o.tokens for o in outcomes])) - 6  # minus the two answers "meet at C4"


def test_token_rl_with_a_token_cost_shortens_the_messages(bench):
    """10 updates of 8 games with 0.1 per talk token (messages of at most 4 tokens): measured talk tokens per
    episode 15.4 -> 3.1 on 32 evaluation games (seed 0); 10-20 s on a busy core."""
    from marlkit.envs.text.meeting_point import COLUMNS, KINDS
    from marlkit.llm.games import game_texts
    from marlkit.llm.tiny import tiny_gpt2, word_tokenizer
    from marlkit.llm.token_rl import TokenRL, TokenRLConfig

    make = lambda: MeetingPoint(token_cost=0.1)
    cells = [f"{c}{r}" for c in COLUMNS for r in range(1, 6)]
    tok = word_tokenizer(game_texts(make, bench.answers, 3, seed=0), extra_words=[*cells, *KINDS])
    cfg = TokenRLConfig(
        episodes_per_update=8,
        num_envs=8,
        lr=2e-2,
        epochs=2,
        minibatch_turns=256,
        max_new_tokens=4,
        credit="to_go",
        baseline="batch",
        seed=0,
    )
    tr = TokenRL(make, tiny_gpt2(tok, 0), tok, cfg, actions=bench.answers, prompt=bench.PROMPT)
    before = talk_tokens(tr.evaluate(32, 7))
    for k in range(10):
        tr.update(tr.play(8, k))
    after = talk_tokens(tr.evaluate(32, 7))
    assert after <= 0.7 * before, (before, after)


class SayAndRead:
    """Scripted ``--talk cells`` agent: says both of its cells, answers the one its partner named (else its first)."""

    def act(self, observations):
        import re

        out = []
        for o in observations:
            mine = re.findall(r"at ([A-E][1-5])", next(x for x in o.split("\n") if x.startswith("Your half")))
            if "Talk 1 of 1" in o:
                out.append(" ".join(mine))
                continue
            heard = [x for x in o.split("\n") if x.startswith("  talk") and ", you:" not in x]
            named = [c for c in mine if heard and c in heard[0].split()]
            out.append(f"meet at {(named or mine)[0]}")
        return out


def test_in_the_cells_setting_the_message_carries_the_meeting_point(bench):
    """What muting takes away in ``--talk cells``: the scripted pair that says its cells and reads wins every game
    with messages, and at most half without (then it answers its first cell: the convention's 1/3)."""
    from marlkit.envs.text import TextVecEnv
    from marlkit.llm.games import play

    game = {"landmarks_per_half": 2, "talk_turns": 1}
    env = MeetingPoint(**game, seed=0)
    env.reset()
    messages = bench.cell_messages(env, "player_0")
    words = {w for m in messages for w in m.split()}
    own = {bench.cell_name(c) for _, c in env.halves["player_0"]}
    assert words == own | set(bench.FILLERS) and max(len(m.split()) for m in messages) == 3
    assert bench.cell_prompt("player_0", env._observe("player_0")).startswith("Your half shows: ")
    obs, *_ = env.step({"player_0": "hi", "player_1": "B2 ok"})
    assert bench.cell_prompt("player_0", obs["player_0"]) == "  talk 1, player_1: B2 ok"  # the partner's message
    talking = play(TextVecEnv(lambda: MeetingPoint(**game), 8, seed=1), SayAndRead(), 200)
    muted = play(TextVecEnv(lambda: bench.Muted(**game), 8, seed=1), SayAndRead(), 200)
    assert np.mean([o.completed for o in talking]) == 1.0
    assert np.mean([o.completed for o in muted]) < 0.5
