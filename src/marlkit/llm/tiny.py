"""Tiny random causal language models and tokenizers (characters, or a game's words), built in memory: no downloads.

Tests and examples need a real ``transformers`` model (the same classes, caches, masks and chat templates as a
released checkpoint) but cannot fetch one. ``tiny_causal_lm`` builds one from a config in a fraction of a second:
a 2-layer Llama (or GPT-2) with hidden size 32 over a character vocabulary, plus a ``PreTrainedTokenizerFast``
with pad/eos tokens and, optionally, a chat template. Its weights are random, so its text is noise; what it is
good for is checking that the machinery (batching, left padding, log-probabilities, serving) is exact.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PretrainedConfig

#: Special tokens of the tiny tokenizer: padding, end of turn/sequence, and the chat roles.
PAD, EOS = "<pad>", "<eos>"
ROLES = ("<|system|>", "<|user|>", "<|assistant|>")

#: A chat template in the usual shape: every turn is "<|role|>content<eos>", the answer opens with "<|assistant|>".
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<eos>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def char_tokenizer(chat_template: bool = True) -> Any:
    """A character-level ``PreTrainedTokenizerFast`` over printable ASCII, with ``<pad>``, ``<eos>`` and role tokens.

    Every printable character is one token, so any English prompt encodes without unknown tokens and the vocabulary
    stays ~100 entries. Padding side is left (what batched generation needs).
    """
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    specials = [PAD, EOS, "<unk>", *ROLES]
    chars = sorted(set(string.printable) - set("\r\x0b\x0c"))
    vocab = {tok: i for i, tok in enumerate(specials + chars)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))  # no merges: one token per character
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(specials)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, eos_token=EOS, unk_token="<unk>", padding_side="left"
    )
    if chat_template:
        fast.chat_template = CHAT_TEMPLATE
    return fast


def tiny_causal_lm(
    seed: int = 0, arch: str = "llama", chat_template: bool = True, hidden_size: int = 32, num_layers: int = 2
) -> tuple[Any, Any]:
    """``(model, tokenizer)``: a randomly initialised causal LM (``"llama"`` or ``"gpt2"``) over ``char_tokenizer``.

    The same ``seed`` gives the same weights. The model is in eval mode, float32, on the CPU.
    """
    from transformers import GPT2Config, LlamaConfig

    tokenizer = char_tokenizer(chat_template)
    common = dict(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
    )
    config: PretrainedConfig
    if arch == "llama":
        config = LlamaConfig(
            hidden_size=hidden_size,
            intermediate_size=2 * hidden_size,
            num_hidden_layers=num_layers,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=2048,
            **common,
        )
    elif arch == "gpt2":
        config = GPT2Config(n_embd=hidden_size, n_layer=num_layers, n_head=4, n_positions=2048, **common)
    else:
        raise ValueError(f"unknown arch {arch!r}; allowed: 'llama', 'gpt2'")
    return _from_config(config, seed), tokenizer


def tiny_gpt2(
    tokenizer: Any, seed: int = 0, width: int = 64, layers: int = 2, heads: int = 4, max_positions: int = 512
) -> Any:
    """A randomly initialised GPT-2 over any ``tokenizer`` (e.g. ``word_tokenizer`` below), dropout off.

    The same ``seed`` gives the same weights; the global torch RNG is left as it was. With ``word_tokenizer`` over
    a game's text this is the policy of the tiny RL-on-tokens experiments (``benchmarks/token_rl.py``, the tests).
    """
    from transformers import GPT2Config

    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=width,
        n_layer=layers,
        n_head=heads,
        n_positions=max_positions,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
    )
    return _from_config(config, seed)


def _from_config(config: Any, seed: int) -> Any:
    """The model of ``config`` with weights drawn from ``seed`` (global RNG untouched), in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config)
    model.eval()
    return model


def word_tokenizer(texts: Sequence[str], extra_words: Sequence[str] = ()) -> Any:
    """A word-level ``PreTrainedTokenizerFast`` over the words of ``texts`` (split on spaces and punctuation, like
    ``tokenizers``' ``Whitespace`` pre-tokenizer), plus ``<pad>``, ``<eos>``, ``<unk>``; padding on the left.

    Small models learn a text game much faster over words than over characters, and the vocabulary of a game's
    observations is a few hundred words: play a few episodes, collect what was shown, build the tokenizer.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    pre = pre_tokenizers.Whitespace()
    words = sorted({w for text in [*texts, *extra_words] for w, _ in pre.pre_tokenize_str(text)})
    vocab = {w: i for i, w in enumerate(["<pad>", "<eos>", "<unk>", *words])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with spaces
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>", padding_side="left"
    )
