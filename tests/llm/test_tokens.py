"""The token core (marlkit.llm.tokens) on tiny GPT-2 and Llama models built here from a config and a word vocabulary."""

import pytest
import torch

from marlkit.llm.tokens import (
    AllowedSequences,
    AllowedTokens,
    constraint_mask,
    left_pad,
    position_ids,
    right_pad,
    sample,
    score_tokens,
    sequence_logprobs,
)

pytestmark = pytest.mark.llm

WORDS = [
    "<pad>",
    "<eos>",
    "<unk>",
    "the",
    "board",
    "is",
    "empty",
    "you",
    "play",
    "X",
    "O",
    "move",
    "A1",
    "B2",
    "C3",
    "stag",
    "hare",
    "1",
    "10",
    "100",
    ".",
    ",",
    "?",
    "!",
]
PAD, EOS = 0, 1


def word_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")


def tiny_model(arch: str, seed: int = 0):
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig

    common = dict(vocab_size=len(WORDS), pad_token_id=PAD, eos_token_id=EOS, bos_token_id=EOS)
    if arch == "gpt2":
        config = GPT2Config(
            n_embd=32, n_layer=2, n_head=4, n_positions=128, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **common
        )
    else:
        config = LlamaConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=128,
            **common,
        )
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config).eval()


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def model(request):
    return tiny_model(request.param)


@pytest.fixture(scope="module")
def prompts():
    tok = word_tokenizer()
    texts = ["the board is empty .", "you play X", "move ?", "the board is empty , you play O , move ? you play X ."]
    rows = [tok(t)["input_ids"] for t in texts]
    assert len({len(r) for r in rows}) == len(rows) and 2 not in [t for r in rows for t in r]  # distinct, no <unk>
    return rows


def test_padding_helpers():
    ids, mask = left_pad([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert position_ids(mask).tolist() == [[0, 1, 2], [0, 0, 0]]
    ids, mask = right_pad([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    with pytest.raises(ValueError, match="at least one token"):
        left_pad([[1], []], pad_id=0)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_sampled_logprobs_equal_rescored(model, prompts, temperature):
    s = sample(
        model,
        prompts,
        pad_id=PAD,
        eos_ids=EOS,
        max_new_tokens=6,
        temperature=temperature,
        generator=torch.Generator().manual_seed(0),
    )
    lengths = s.completion_mask.sum(1)
    assert int(lengths.max()) > 1  # really generated several tokens somewhere
    with torch.no_grad():
        again = sequence_logprobs(
            model, s.prompt_ids, s.prompt_mask, s.completion_ids, s.completion_mask, temperature=temperature
        )
    torch.testing.assert_close(again, s.logprobs, atol=1e-5, rtol=0)
    assert bool((s.logprobs[s.completion_mask.bool()] < 0).all()) and bool(
        (s.logprobs[~s.completion_mask.bool()] == 0).all()
    )
    for i, toks in enumerate(s.completions()):  # a row stops at its first end-of-text token, or at the limit
        assert (EOS not in toks[:-1]) and (bool(s.finished[i]) == (toks[-1] == EOS))
        assert bool(s.finished[i]) or len(toks) == 6


def test_batched_equals_one_at_a_time_and_an_unpadded_pass(model, prompts):
    s = sample(model, prompts, pad_id=PAD, eos_ids=EOS, max_new_tokens=5, generator=torch.Generator().manual_seed(1))
    completions = s.completions()
    for i, (p, c) in enumerate(zip(prompts, completions)):
        ids, mask = left_pad([p], PAD)
        cids, cmask = right_pad([c], PAD)
        with torch.no_grad():
            alone = sequence_logprobs(model, ids, mask, cids, cmask)[0]
            # No padding, no position ids: the plain forward pass that the padded batch must reproduce.
            logits = model(torch.tensor([p + c])).logits[0]
        plain = torch.log_softmax(logits[len(p) - 1 : -1].float(), -1).gather(-1, torch.tensor(c)[:, None])[:, 0]
        torch.testing.assert_close(alone, s.logprobs[i, : len(c)], atol=1e-5, rtol=0)
        torch.testing.assert_close(plain, s.logprobs[i, : len(c)], atol=1e-5, rtol=0)
    greedy = sample(model, prompts, pad_id=PAD, eos_ids=EOS, max_new_tokens=5, temperature=0)
    for i, p in enumerate(prompts):  # greedy answers in a padded batch equal those generated alone
        alone = sample(model, [p], pad_id=PAD, eos_ids=EOS, max_new_tokens=5, temperature=0)
        assert alone.completions()[0] == greedy.completions()[i]
        torch.testing.assert_close(alone.logprobs[0], greedy.logprobs[i, : alone.logprobs.shape[1]], atol=1e-5, rtol=0)


def test_constrained_sampling_emits_only_allowed_sequences(model, prompts):
    tok = word_tokenizer()
    moves = [["A1"], ["B2"], ["C3"], ["1"], ["1", "10"], ["10"], ["stag", "hare", "stag"]]
    seqs = [tok.convert_tokens_to_ids(m) for m in moves]
    allowed = {tuple(x) + (EOS,) for x in seqs}
    constraint = AllowedSequences(seqs, EOS)
    rows = prompts * 25
    s = sample(
        model,
        rows,
        pad_id=PAD,
        eos_ids=EOS,
        max_new_tokens=8,
        constraints=[constraint] * len(rows),
        generator=torch.Generator().manual_seed(2),
    )
    got = [tuple(c) for c in s.completions()]
    assert set(got) <= allowed and len(set(got)) >= 4 and bool(s.finished.all())
    with torch.no_grad():
        again = sequence_logprobs(
            model, s.prompt_ids, s.prompt_mask, s.completion_ids, s.completion_mask, constraints=s.constraints
        )
    torch.testing.assert_close(again, s.logprobs, atol=1e-5, rtol=0)
    # The constrained policy is a distribution over the allowed sequences: their probabilities sum to 1 per prompt.
    for p in prompts:
        cids, cmask = right_pad([list(a) for a in sorted(allowed)], PAD)
        pids, pmask = left_pad([p] * len(allowed), PAD)
        with torch.no_grad():
            lp = sequence_logprobs(model, pids, pmask, cids, cmask, constraints=[constraint] * len(allowed))
        assert abs(float(lp.sum(1).exp().sum()) - 1.0) < 1e-5
    # "1" is both an answer and a prefix of "1 10": after it, end-of-text and "10" are both allowed.
    assert constraint.allowed(tok.convert_tokens_to_ids(["1"])) == sorted([EOS, tok.convert_tokens_to_ids("10")])


def test_token_constraint_and_greedy(model, prompts):
    tok = word_tokenizer()
    words = tok.convert_tokens_to_ids(["stag", "hare", "<eos>"])
    s = sample(
        model,
        prompts,
        pad_id=PAD,
        eos_ids=EOS,
        max_new_tokens=4,
        constraints=[AllowedTokens(words), None, AllowedTokens(words), None],
        generator=torch.Generator().manual_seed(3),
    )
    for i in (0, 2):
        assert set(s.completions()[i]) <= set(words)
    scored = score_tokens(
        model, s.prompt_ids, s.prompt_mask, s.completion_ids, s.completion_mask, constraints=s.constraints
    )
    torch.testing.assert_close(scored.logprobs.detach(), s.logprobs, atol=1e-5, rtol=0)
    # Entropy of a 3-token constrained distribution is at most log 3; the free rows range over the whole vocabulary.
    m = s.completion_mask.bool()
    assert float(scored.entropy.detach()[0][m[0]].max()) <= torch.log(torch.tensor(3.0)) + 1e-6
    assert float(scored.entropy.detach()[1][m[1]].min()) > float(torch.log(torch.tensor(3.0)))


def test_same_seed_same_samples(model, prompts):
    def draw(seed):
        return sample(
            model, prompts * 4, pad_id=PAD, eos_ids=EOS, max_new_tokens=6, generator=torch.Generator().manual_seed(seed)
        )

    a, b, c = draw(7), draw(7), draw(8)
    assert a.completions() == b.completions() and torch.equal(a.logprobs, b.logprobs)
    assert a.completions() != c.completions()


def test_scoring_gradients_flow_and_bad_input_is_explained(model, prompts):
    s = sample(model, prompts, pad_id=PAD, eos_ids=EOS, max_new_tokens=3, generator=torch.Generator().manual_seed(4))
    lp = sequence_logprobs(model, s.prompt_ids, s.prompt_mask, s.completion_ids, s.completion_mask)
    lp.sum().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and any(float(g.abs().sum()) > 0 for g in grads)
    model.zero_grad(set_to_none=True)
    a1 = word_tokenizer().convert_tokens_to_ids("A1")
    bad = AllowedSequences([[a1]], EOS)
    cids, cmask = right_pad([[EOS]], PAD)
    with pytest.raises(ValueError, match="not allowed"):
        constraint_mask([bad], cids, cmask, len(WORDS))
    with pytest.raises(ValueError, match="max_new_tokens"):
        sample(model, prompts, pad_id=PAD, eos_ids=EOS, max_new_tokens=0)
    with pytest.raises(ValueError, match="constraints for"):
        sample(model, prompts, pad_id=PAD, eos_ids=EOS, max_new_tokens=2, constraints=[None])
