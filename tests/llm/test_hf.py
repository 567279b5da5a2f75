"""HFPolicy on tiny models built in the test: exact log-probabilities under left padding, seeding, prompts, actions."""

import pytest
import torch

from marlkit.llm.hf import HFPolicy, Sampling, first_action_named, option_logprobs, score_pairs
from marlkit.llm.tiny import tiny_causal_lm

pytestmark = pytest.mark.llm

OBS = ["a", "a much longer observation, with several words in it", "middle length text", "xy"]


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def model_and_tokenizer(request):
    torch.manual_seed(0)
    return tiny_causal_lm(seed=0, arch=request.param)


@pytest.fixture(scope="module")
def llama():
    return tiny_causal_lm(seed=1, arch="llama")


def test_batched_logprobs_equal_alone_under_left_padding(model_and_tokenizer):
    model, tok = model_and_tokenizer
    policy = HFPolicy(model, tok, system_prompt="You play a game.", max_new_tokens=10, temperature=0.7, seed=3)
    gen = policy.act_with_logprobs(OBS)
    lengths = {len(p) for p in gen.prompt_ids}
    assert len(lengths) == len(OBS)  # the prompts really have different lengths, so the batch is padded
    for i, obs in enumerate(OBS):
        alone = policy.score([obs], [gen.token_ids[i]])[0]
        assert alone.shape == gen.logprobs[i].shape == (len(gen.token_ids[i]),)
        torch.testing.assert_close(alone, gen.logprobs[i], atol=1e-5, rtol=0)  # sampled in a batch vs scored alone
    batched = policy.score(OBS, gen.token_ids)
    for b, g in zip(batched, gen.logprobs):
        torch.testing.assert_close(b, g, atol=1e-5, rtol=0)  # scored in a batch
    assert all(float(lp.max()) <= 0 for lp in gen.logprobs)
    # They are log-probs of the distribution sampled from (temperature 0.7), not of the model at temperature 1.
    with torch.no_grad():
        at_one = policy.score(OBS[:1], gen.token_ids[:1], temperature=1.0)[0]
    assert float((at_one - gen.logprobs[0]).abs().max()) > 1e-3


def test_score_matches_an_unpadded_forward_pass(llama):
    model, tok = llama
    prompt, completion = tok("hello there")["input_ids"], tok("abc")["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([prompt + completion])).logits[0].float()
    expected = torch.log_softmax(logits[len(prompt) - 1 : -1], -1).gather(-1, torch.tensor(completion)[:, None])[:, 0]
    short = tok("q")["input_ids"]
    got = score_pairs(model, [short, prompt], [[3, 4, 5, 6, 7], completion], pad_id=tok.pad_token_id)[1]
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("batch_size", [64, 3])
def test_options_scored_from_one_prompt_pass_equal_full_passes(model_and_tokenizer, batch_size):
    model, tok = model_and_tokenizer
    prompts = [tok(o)["input_ids"] for o in OBS[:3]]
    options = [[[5], [6, 7, 8], [9, 10]], [[11, 12, 13, 14, 15]], [[16], [17]]]  # mixed lengths, one-token ones
    with torch.no_grad():
        got = option_logprobs(model, prompts, options, tok.pad_token_id, batch_size=batch_size)
        for p, opts, scores in zip(prompts, options, got):
            full = score_pairs(model, [p] * len(opts), opts, tok.pad_token_id)
            assert len(scores) == len(opts)
            for a, b in zip(scores, full):
                torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_greedy_answers_do_not_depend_on_the_batch(model_and_tokenizer):
    model, tok = model_and_tokenizer
    policy = HFPolicy(model, tok, max_new_tokens=8, temperature=0)
    batch = policy.act(OBS)
    assert batch == [policy.act([o])[0] for o in OBS]


def test_same_seed_same_answers_other_seed_other_answers(llama):
    model, tok = llama
    first = HFPolicy(model, tok, max_new_tokens=12, seed=7)
    a1, a2 = first.act(OBS), first.act(OBS)
    again = HFPolicy(model, tok, max_new_tokens=12, seed=7)
    assert again.act(OBS) == a1 and again.act(OBS) == a2
    assert a1 != a2  # the generator moves on between calls
    assert HFPolicy(model, tok, max_new_tokens=12, seed=8).act(OBS) != a1


def test_chat_template_and_plain_prompt(llama):
    model, tok = llama
    chat = HFPolicy(model, tok, system_prompt="Be brief.")
    text = tok.decode(chat.prompt_ids(["Your move?"])[0])
    assert text == "<|system|>Be brief.<eos><|user|>Your move?<eos><|assistant|>"
    plain = HFPolicy(model, tok, system_prompt="Be brief.", chat_template=False)
    assert tok.decode(plain.prompt_ids(["Your move?"])[0]) == "Be brief.\n\nYour move?\n"
    _, no_template = tiny_causal_lm(chat_template=False)
    assert HFPolicy(model, no_template).use_chat_template is False
    with pytest.raises(ValueError, match="no chat template"):
        HFPolicy(model, no_template, chat_template=True)


def test_end_of_text_and_stop_strings_end_rows_separately(llama):
    model, tok = llama
    policy = HFPolicy(model, tok, max_new_tokens=6, temperature=0)
    free = policy.act_with_logprobs(OBS)
    assert free.finish_reasons == ["length"] * len(OBS) and all(len(t) == 6 for t in free.token_ids)
    # Make row 0's first greedy token the end-of-text token: row 0 stops after it, the others go on.
    policy.eos_ids = {free.token_ids[0][0]}
    gen = policy.act_with_logprobs(OBS)
    assert gen.finish_reasons[0] == "stop" and gen.token_ids[0] == free.token_ids[0][:1]
    for i in range(1, len(OBS)):
        stops_early = free.token_ids[0][0] in free.token_ids[i]
        assert gen.token_ids[i] == (
            free.token_ids[i][: free.token_ids[i].index(free.token_ids[0][0]) + 1] if stops_early else free.token_ids[i]
        )
    # A stop string cuts the text before it, keeps the token that completed it.
    stop_char = free.completions[1][2]
    stopped = HFPolicy(model, tok, max_new_tokens=6, temperature=0, stop=[stop_char]).act_with_logprobs(OBS[1:2])
    assert stopped.completions[0] == free.completions[1].split(stop_char)[0]
    cut = free.completions[1].index(stop_char)  # one token per character
    assert stopped.finish_reasons == ["stop"] and stopped.token_ids[0] == free.token_ids[1][: cut + 1]


def test_constrained_actions_are_exact_and_always_allowed(llama):
    model, tok = llama
    actions = ["up", "down", "left", "stay"]
    greedy = HFPolicy(model, tok, actions=actions, temperature=0)
    gen = greedy.act_with_logprobs(OBS)
    assert greedy.mode == "constrained" and gen.how == ["constrained"] * len(OBS)
    eos = tok.eos_token_id
    for i, obs in enumerate(OBS):
        with torch.no_grad():
            scores = {a: float(greedy.score([obs], [tok(a)["input_ids"] + [eos]])[0].sum()) for a in actions}
        assert gen.action_logprobs[i] == pytest.approx(scores, abs=1e-5)
        assert gen.texts[i] == max(scores, key=scores.get)
        assert gen.token_ids[i][-1] == eos and float(gen.logprobs[i].sum()) == pytest.approx(
            scores[gen.texts[i]], abs=1e-5
        )
    sampled = HFPolicy(model, tok, actions=lambda obs: ["x", obs[:1]], seed=0).act(OBS * 5)
    assert all(s in ("x", o[:1]) for s, o in zip(sampled, OBS * 5))
    assert len(set(sampled)) > 1


def test_parse_mode_uses_the_parser_then_falls_back(llama):
    model, tok = llama
    always = HFPolicy(model, tok, parse=lambda text: "ok", max_new_tokens=4)
    assert always.act(OBS) == ["ok"] * len(OBS) and always.act_with_logprobs(OBS).how == ["parsed"] * len(OBS)
    never = HFPolicy(model, tok, parse=lambda text: None, actions=["yes", "no"], max_new_tokens=4)
    gen = never.act_with_logprobs(OBS)
    assert gen.how == ["fallback"] * len(OBS) and set(gen.texts) <= {"yes", "no"}
    raw = HFPolicy(model, tok, parse=lambda text: None, max_new_tokens=4, seed=5).act_with_logprobs(OBS)
    assert raw.how == ["free"] * len(OBS) and raw.texts == raw.completions  # nothing to fall back to
    assert first_action_named("I will go Down, then up", ["up", "down"]) == "down"
    assert first_action_named("upward", ["up"]) is None


def test_bad_arguments_say_what_is_allowed(llama, tmp_path):
    model, tok = llama
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        HFPolicy(model, tok, temperature=-1)
    with pytest.raises(ValueError, match=r"top_p must be in \(0, 1\]"):
        Sampling(top_p=0)
    with pytest.raises(ValueError, match="needs actions"):
        HFPolicy(model, tok, mode="constrained")
    with pytest.raises(ValueError, match="unknown mode 'greedy'"):
        HFPolicy(model, tok, mode="greedy")
    with pytest.raises(TypeError, match="not a single string"):
        HFPolicy(model, tok).act("one observation")
    with pytest.raises(FileNotFoundError, match="allow_download=True"):
        HFPolicy.from_pretrained(tmp_path / "missing")


def test_from_pretrained_round_trip(llama, tmp_path):
    model, tok = llama
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    loaded = HFPolicy.from_pretrained(tmp_path, max_new_tokens=6, temperature=0)
    assert loaded.act(OBS) == HFPolicy(model, tok, max_new_tokens=6, temperature=0).act(OBS)
