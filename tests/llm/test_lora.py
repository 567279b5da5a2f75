"""LoRA adapters (marlkit.llm.lora) on tiny Llama and GPT-2 models built from a config: the base stays frozen while a
token-RL update changes the adapters, adapters alone save and load exactly, and merging keeps what the model
computes."""

import pytest
import torch

from marlkit.envs.text import make_text
from marlkit.llm.games import game_texts
from marlkit.llm.lora import (
    LoraSettings,
    adapter_state,
    add_lora,
    load_adapters,
    merge_lora,
    save_adapters,
    set_adapter_state,
    trainable_parameters,
)
from marlkit.llm.tiny import tiny_causal_lm, tiny_gpt2, word_tokenizer
from marlkit.llm.token_rl import TokenRL, TokenRLConfig, keep_lines
from marlkit.llm.tokens import left_pad, right_pad, score_tokens

pytest.importorskip("peft")
pytestmark = pytest.mark.llm


def logprobs(model, tok, prompts=("A1 B2", "hello there"), completions=("C3", "ok")):
    p = left_pad([tok(x, add_special_tokens=False)["input_ids"] for x in prompts], tok.pad_token_id)
    c = right_pad([tok(x, add_special_tokens=False)["input_ids"] for x in completions], tok.pad_token_id)
    with torch.no_grad():
        return score_tokens(model, *p, *c).logprobs


def perturb(model, seed=1):
    """Give the adapters non-zero B matrices (a fresh adapter computes exactly the base)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_fresh_adapters_compute_the_base_and_only_adapters_train(arch):
    model, tok = tiny_causal_lm(seed=0, arch=arch)
    base_lp = logprobs(model, tok)
    wrapped = add_lora(model, LoraSettings(rank=4))
    assert torch.allclose(logprobs(wrapped, tok), base_lp, atol=1e-6)  # B = 0: the same function
    names = [n for n, p in wrapped.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)
    assert sum(p.numel() for p in trainable_parameters(wrapped)) < sum(p.numel() for p in wrapped.parameters()) / 2


def test_a_token_rl_update_changes_the_adapters_and_not_the_base():
    make = lambda: make_text("tictactoe-v0", opponent="random", mark="O")
    legal = lambda env, agent: env.legal_moves()
    tok = word_tokenizer(game_texts(make, legal, 5, seed=0))
    model = add_lora(tiny_gpt2(tok, 0), LoraSettings(rank=4))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    config = TokenRLConfig(episodes_per_update=8, num_envs=8, epochs=1, minibatch_turns=64, max_new_tokens=2)
    TokenRL(make, model, tok, config, actions=legal, prompt=keep_lines(" ", "Your turn")).train(1)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed, "no parameter changed in an update"
    assert all("lora_" in n for n in changed), sorted(n for n in changed if "lora_" not in n)
    assert any("lora_B" in n for n in changed)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_adapters_alone_save_and_load_exactly(tmp_path, arch):
    settings = LoraSettings(rank=4, alpha=8)
    model, tok = tiny_causal_lm(seed=0, arch=arch)
    model = add_lora(model, settings)
    perturb(model)
    expected = logprobs(model, tok)
    path = save_adapters(model, tmp_path / "run", settings)
    assert path.name == "adapter.safetensors"
    assert all("lora_" in k for k in adapter_state(model))
    assert path.stat().st_size < 100_000  # adapters alone, not the model
    fresh, _ = tiny_causal_lm(seed=0, arch=arch)
    loaded = load_adapters(fresh, tmp_path / "run")  # wrapped with the saved settings
    assert loaded.peft_config["default"].r == 4
    assert torch.allclose(logprobs(loaded, tok), expected, atol=1e-6)
    merged = merge_lora(loaded)
    assert not hasattr(merged, "peft_config")
    assert torch.allclose(logprobs(merged, tok), expected, atol=1e-5)


def test_adapters_disabled_play_the_base_and_last_layers_limits_placement():
    model, tok = tiny_causal_lm(seed=0, arch="llama", num_layers=3)
    base_lp = logprobs(model, tok)
    wrapped = add_lora(model, LoraSettings(rank=4, last_layers=1))
    adapted = {n.split(".layers.")[1].split(".")[0] for n, _ in wrapped.named_parameters() if "lora_" in n}
    assert adapted == {"2"}
    perturb(wrapped)
    assert not torch.allclose(logprobs(wrapped, tok), base_lp, atol=1e-4)
    with wrapped.disable_adapter():
        assert torch.allclose(logprobs(wrapped, tok), base_lp, atol=1e-6)


def test_bad_settings_and_mismatched_adapters_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="rank must be a positive integer"):
        LoraSettings(rank=0)
    with pytest.raises(ValueError, match="last_layers"):
        LoraSettings(last_layers=0)
    model, _ = tiny_causal_lm(seed=0)
    with pytest.raises(ValueError, match="none of the LoRA targets"):
        add_lora(model, LoraSettings(targets=("nope",)))
    small = add_lora(tiny_causal_lm(seed=0)[0], LoraSettings(rank=2))
    big = add_lora(tiny_causal_lm(seed=0)[0], LoraSettings(rank=4))
    with pytest.raises(ValueError, match="other shapes"):
        set_adapter_state(big, adapter_state(small))
    with pytest.raises(FileNotFoundError, match="no adapters"):
        load_adapters(tiny_causal_lm(seed=0)[0], tmp_path)
