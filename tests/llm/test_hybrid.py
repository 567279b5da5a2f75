"""The hybrid team of ``marlkit.llm.hybrid``: a token-RL speaker and a PPO listener trained from the same episodes."""

from dataclasses import replace

import pytest
import torch

from marlkit.envs.text.speaker_listener_text import COLOURS
from marlkit.llm.hybrid import (
    HybridConfig,
    HybridTeam,
    ListenerConfig,
    _speaker_defaults,
    goal_prompt,
    speaker_tokenizer,
)
from marlkit.llm.tiny import tiny_gpt2

pytestmark = pytest.mark.llm


def team(copies: int = 4, max_steps: int = 5, **fields):
    tok = speaker_tokenizer()
    speaker = replace(_speaker_defaults(), episodes_per_update=copies, num_envs=copies)
    cfg = HybridConfig(speaker=speaker, copies=copies, max_steps=max_steps, **fields)
    return HybridTeam(tiny_gpt2(tok, seed=0, width=16, heads=2), tok, cfg)


def speaker_params(t: HybridTeam) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in t.group.model.parameters()])


def listener_params(t: HybridTeam) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in t.listener.parameters()])


def test_one_update_trains_both_agents_from_the_same_episodes():
    t = team()
    s0, l0 = speaker_params(t), listener_params(t)
    played = t.play(seed=3)
    assert len(played["batch"].outcomes) == 4
    assert len(played["batch"].turns["shared"]) == 4 * 5  # one speaker turn per step of every copy
    assert played["arrays"]["obs"].shape == (5, 4, 11)
    m = t.update()
    assert not torch.equal(speaker_params(t), s0), "the speaker's tokens were not trained"
    assert not torch.equal(listener_params(t), l0), "the listener was not trained"
    assert {"team/return", "team/message_accuracy", "listener/entropy"} <= set(m)
    assert any(k.startswith("speaker/") for k in m)


def test_speaker_turns_are_credited_with_the_critics_advantage(monkeypatch):
    t = team()
    played = t.play(seed=3)
    assert [turn.reward for turn in played["turns"][1]] == pytest.approx(played["arrays"]["rewards"][:, 1].tolist())
    adv, _ = t._advantages(played["arrays"], played["final_obs"])  # before any update: the critic is unchanged
    seen = {}
    monkeypatch.setattr(t, "play", lambda seed: played)
    monkeypatch.setattr(t.speaker, "update", lambda batch: seen.setdefault("turns", batch.episodes["shared"]) and {})
    t.update()
    got = torch.tensor([[turn.reward for turn in episode] for episode in seen["turns"]]).T  # (steps, copies)
    assert torch.allclose(got, adv)


def test_controls_constant_message_freezes_the_speaker_and_deaf_listener_hears_nothing():
    t = team(message="constant")
    s0 = speaker_params(t)
    played = t.play(seed=1)
    assert all(o.extra["heard"] == [COLOURS[0]] * 5 for o in played["batch"].outcomes)
    t.update()
    assert torch.equal(speaker_params(t), s0)  # its words change nothing, so they are not trained
    deaf = team(message="deaf")
    obs = deaf.play(seed=1)["arrays"]["obs"]
    assert torch.all(obs[..., -3:] == 0)
    heard = team().play(seed=1)["arrays"]["obs"]
    assert torch.any(heard[1:, :, -3:] != 0)  # the message is heard from the second step on


def test_same_seed_same_run():
    a, b = team(), team()
    assert a.update() | {"time/update_s": 0} == b.update() | {"time/update_s": 0}
    assert torch.equal(speaker_params(a), speaker_params(b))
    assert torch.equal(listener_params(a), listener_params(b))


def test_goal_prompt_names_the_goal_last():
    obs = "You are the speaker. The listener must reach the green landmark; only you know which one it is.\nStep 1"
    assert goal_prompt("speaker_0", obs) == "goal green"
    with pytest.raises(ValueError, match="names no colour"):
        goal_prompt("speaker_0", "You are the speaker. Nothing here.")


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"message": "loud"}, "message must be one of"),
        ({"prompt": "essay"}, "prompt must be one of"),
        ({"copies": 0}, "copies must be a positive integer"),
        ({"speaker": replace(_speaker_defaults(), gamma=0.9)}, "credit='to_go' and gamma=0"),
    ],
)
def test_bad_config_is_refused_by_name(fields, match):
    with pytest.raises(ValueError, match=match):
        HybridConfig(**fields)


def test_bad_listener_config_is_refused_by_name():
    with pytest.raises(ValueError, match=r"listener\.lr"):
        ListenerConfig(lr=0.0)
