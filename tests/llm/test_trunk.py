"""Re-scoring through the frozen trunk (marlkit.llm.trunk): with LoRA on the top block of a tiny Llama, the hidden
states captured while sampling give the same log-probabilities and the same update as the full forward pass."""

import copy

import pytest
import torch

from marlkit.envs.text import make_text
from marlkit.llm.lora import LoraSettings, add_lora
from marlkit.llm.tiny import tiny_causal_lm
from marlkit.llm.token_rl import TokenRL, TokenRLConfig, keep_lines
from marlkit.llm.trunk import frozen_trunk

pytestmark = pytest.mark.llm


def lora_llama(last_layers=1):
    model, tok = tiny_causal_lm(0, num_layers=3)
    return add_lora(model, LoraSettings(rank=4, alpha=8, last_layers=last_layers), seed=0), tok


def trainer(model, tok):
    config = TokenRLConfig(
        episodes_per_update=4, num_envs=4, epochs=2, minibatch_turns=8, max_new_tokens=4, credit="episode", seed=0
    )
    return TokenRL(
        lambda: make_text("tictactoe-v0"),
        model,
        tok,
        config,
        actions=lambda env, agent: env.legal_moves(),
        prompt=keep_lines(" ", "Your turn"),
    )


def test_frozen_trunk_is_the_blocks_below_the_first_trainable_one():
    model, _ = lora_llama(last_layers=1)
    assert frozen_trunk(model).start == 2
    assert frozen_trunk(lora_llama(last_layers=3)[0]) is None  # every block trains: nothing to skip
    gpt2, _ = tiny_causal_lm(0, arch="gpt2")
    assert frozen_trunk(gpt2) is None  # position embeddings are added to the input: not skippable this way


def test_update_through_the_trunk_equals_the_full_forward_pass():
    model, tok = lora_llama()
    fast = trainer(model, tok)
    slow = trainer(copy.deepcopy(model), tok)
    slow.groups["shared"].trunk = None  # the reference: every scoring pass runs the whole model
    batch = fast.play(4, seed=3)
    slow.generator.set_state(fast.generator.get_state())  # the same minibatch order
    turns = batch.turns["shared"]
    assert all(t.hidden is not None and t.hidden.shape[0] == len(t.prompt) + len(t.completion) - 1 for t in turns)
    fast_metrics = fast.update(copy.deepcopy(batch))
    slow_metrics = slow.update(batch)
    for k in ("shared/losses/loss", "shared/losses/approx_kl", "shared/losses/entropy"):
        assert fast_metrics[k] == pytest.approx(slow_metrics[k], rel=1e-4, abs=1e-6)
    fast_w = {n: p for n, p in fast.groups["shared"].model.named_parameters() if p.requires_grad}
    slow_w = {n: p for n, p in slow.groups["shared"].model.named_parameters() if p.requires_grad}
    for n, p in fast_w.items():
        torch.testing.assert_close(p, slow_w[n], rtol=1e-4, atol=1e-6)
    # the update moved the adapters (so equal weights are not equal by standing still)
    assert fast_metrics["shared/losses/approx_kl"] > 0
