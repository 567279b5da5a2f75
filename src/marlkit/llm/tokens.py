"""The token level of a language-model policy: batched sampling with exact log-probabilities, and re-scoring.

RL on tokens needs two numbers to agree: the log-probability of a generated token *when it was sampled* (the
behaviour policy, with the KV cache) and the same log-probability *recomputed later* with gradients (the PPO ratio,
the KL to a reference model). This module computes both from one definition, for a batch of prompts of different
lengths, on any Hugging Face causal LM (``model(input_ids, attention_mask=..., position_ids=...).logits``).

**Layout.** Prompts are padded on the left (``[B, P]``, every row's last prompt token in the last column), the
completions on the right (``[B, T]``), each with a 0/1 mask. The full sequence of a row is ``prompt ++ completion``
with the pads masked out of attention. **Position ids count real tokens only** (``cumsum(mask) - 1``): without them
a left-padded row would start at position ``P - len(prompt)`` instead of 0, and a model with learned or rotary
positions would compute something else than for the row alone. With them, a row's log-probabilities in a padded
batch equal those computed alone to float precision (the tests check 1e-5 on GPT-2 and Llama).

**Constraints.** An untrained model almost never writes a legal move, so a policy may be restricted to allowed
answers by masking logits: ``AllowedSequences`` (a prefix tree of token sequences, each followed by end-of-text, so
``"1"`` and ``"10"`` stay distinct) or ``AllowedTokens`` (a fixed set at every step). The constrained distribution
(softmax over the allowed tokens only) *is* the policy: its log-probabilities are what ``sample`` returns and what
``sequence_logprobs`` recomputes when given the same constraints, so importance ratios stay exact. A token forced
by the constraint (a single allowed continuation) has log-probability 0 and carries no gradient.

**Temperature.** ``sample`` draws from ``softmax(masked logits / temperature)`` and returns the log-probabilities of
that distribution; pass the same temperature to ``sequence_logprobs`` to recompute them. ``temperature=0`` is greedy
decoding, and the log-probabilities returned are then those at temperature 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import torch


# --------------------------------------------------------------------------------------------------- padding
def left_pad(rows: Sequence[Sequence[int]], pad_id: int, device: Any = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """``(ids, mask)`` of token rows padded on the left to the longest row (``[B, P]`` each, ``long``)."""
    if len(rows) == 0 or any(len(r) == 0 for r in rows):
        raise ValueError("left_pad needs at least one row, and every row at least one token")
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r) :] = torch.as_tensor(list(r), dtype=torch.long)
        mask[i, width - len(r) :] = 1
    return ids.to(device), mask.to(device)


def right_pad(
    rows: Sequence[Sequence[int]], pad_id: int, device: Any = "cpu", width: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ids, mask)`` of token rows padded on the right to ``width`` (default: the longest row)."""
    width = max((len(r) for r in rows), default=0) if width is None else width
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if len(r) > width:
            raise ValueError(f"row {i} has {len(r)} tokens, more than the width {width}")
        ids[i, : len(r)] = torch.as_tensor(list(r), dtype=torch.long)
        mask[i, : len(r)] = 1
    return ids.to(device), mask.to(device)


def position_ids(mask: torch.Tensor) -> torch.Tensor:
    """Position of every column counted over real tokens only (pads get 0; they are masked anyway)."""
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


# ----------------------------------------------------------------------------------------------- constraints
class Constraint(Protocol):
    """What a row may generate next, given what it generated so far."""

    def allowed(self, prefix: Sequence[int]) -> Sequence[int]:
        """Token ids allowed after ``prefix`` (the tokens generated so far); never empty for a reachable prefix."""
        ...


class AllowedSequences:
    """Only these token sequences, each followed by ``eos_id`` (a prefix tree walked token by token)."""

    def __init__(self, sequences: Sequence[Sequence[int]], eos_id: int) -> None:
        if len(sequences) == 0 or any(len(s) == 0 for s in sequences):
            raise ValueError("AllowedSequences needs at least one sequence, and every sequence at least one token")
        self.sequences = [tuple(int(t) for t in s) for s in sequences]
        self.eos_id = int(eos_id)
        self._children: dict[tuple[int, ...], set[int]] = {}
        for seq in self.sequences:
            full = (*seq, self.eos_id)
            for k in range(len(full)):
                self._children.setdefault(full[:k], set()).add(full[k])

    def allowed(self, prefix: Sequence[int]) -> Sequence[int]:
        key = tuple(int(t) for t in prefix)
        if key not in self._children:
            raise ValueError(
                f"tokens {list(key)} are not a prefix of any allowed sequence "
                f"(allowed: {[list(s) for s in self.sequences]}, each followed by {self.eos_id})"
            )
        return sorted(self._children[key])

    def __repr__(self) -> str:
        return f"AllowedSequences({[list(s) for s in self.sequences]}, eos_id={self.eos_id})"


class AllowedTokens:
    """The same set of tokens at every step (include the end-of-text token if a row may stop early)."""

    def __init__(self, tokens: Sequence[int]) -> None:
        if len(tokens) == 0:
            raise ValueError("AllowedTokens needs at least one token")
        self.tokens = sorted({int(t) for t in tokens})

    def allowed(self, prefix: Sequence[int]) -> Sequence[int]:
        return self.tokens

    def __repr__(self) -> str:
        return f"AllowedTokens({self.tokens})"


def _allowed_row(constraint: Constraint | None, prefix: Sequence[int], vocab_size: int) -> torch.Tensor | None:
    if constraint is None:
        return None
    allowed = list(constraint.allowed(prefix))
    if not allowed:
        raise ValueError(f"{constraint!r} allows no token after {list(prefix)}")
    if min(allowed) < 0 or max(allowed) >= vocab_size:
        raise ValueError(f"{constraint!r} allows token ids outside the vocabulary 0..{vocab_size - 1}")
    row = torch.zeros(vocab_size, dtype=torch.bool)
    row[allowed] = True
    return row


def constraint_mask(
    constraints: Sequence[Constraint | None] | None,
    completion_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    vocab_size: int,
) -> torch.Tensor | None:
    """``[B, T, V]`` bool: the tokens allowed at every completion position (all True for unconstrained rows and
    after a row's end), or None when no row is constrained."""
    if constraints is None or all(c is None for c in constraints):
        return None
    b, t = completion_ids.shape
    if len(constraints) != b:
        raise ValueError(f"got {len(constraints)} constraints for {b} rows")
    out = torch.ones((b, t, vocab_size), dtype=torch.bool)
    ids, mask = completion_ids.tolist(), completion_mask.tolist()
    for i, c in enumerate(constraints):
        for k in range(t):
            if not mask[i][k]:
                break
            row = _allowed_row(c, ids[i][:k], vocab_size)
            if row is not None:
                if not row[ids[i][k]]:
                    raise ValueError(
                        f"row {i}: token {ids[i][k]} at completion position {k} is not allowed by "
                        f"{c!r} after {ids[i][:k]}"
                    )
                out[i, k] = row
    return out.to(completion_ids.device)


def _log_policy(logits: torch.Tensor, allowed: torch.Tensor | None, temperature: float) -> torch.Tensor:
    """Log-probabilities of the policy: logits at ``temperature`` (1 when greedy), masked to ``allowed``."""
    logits = logits.float()
    if temperature > 0:
        logits = logits / temperature
    if allowed is not None:
        logits = logits.masked_fill(~allowed, float("-inf"))
    return torch.log_softmax(logits, dim=-1)


# -------------------------------------------------------------------------------------------------- sampling
@dataclass
class Samples:
    """A batch of sampled completions, padded: what a policy-gradient update needs."""

    prompt_ids: torch.Tensor  # [B, P] long, left-padded
    prompt_mask: torch.Tensor  # [B, P] 0/1
    completion_ids: torch.Tensor  # [B, T] long, right-padded with pad_id after each row's end
    completion_mask: torch.Tensor  # [B, T] 0/1: 1 for generated tokens (the end-of-text token included)
    logprobs: torch.Tensor  # [B, T] float32: log-prob of each generated token under the policy; 0 at pads
    finished: torch.Tensor  # [B] bool: the row ended with end-of-text (False: cut at max_new_tokens)
    constraints: list[Constraint | None]

    def completions(self) -> list[list[int]]:
        """The generated token ids of every row, without padding."""
        return [row[: int(n)] for row, n in zip(self.completion_ids.tolist(), self.completion_mask.sum(1).tolist())]


def sample(
    model: Any,
    prompts: Sequence[Sequence[int]],
    *,
    pad_id: int,
    eos_ids: int | Sequence[int],
    max_new_tokens: int,
    temperature: float = 1.0,
    constraints: Sequence[Constraint | None] | None = None,
    generator: torch.Generator | None = None,
) -> Samples:
    """Sample a completion of every prompt (token ids) in one left-padded batch, with the KV cache.

    A row stops after generating one of ``eos_ids`` or ``max_new_tokens`` tokens; rows that stopped are fed a
    masked pad token until the whole batch has stopped, and nothing after their end is recorded. ``constraints``
    gives one ``Constraint`` (or None: free) per row. The same ``generator`` state gives the same samples.
    """
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
    if not temperature >= 0:
        raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature!r}")
    n = len(prompts)
    constraints = list(constraints) if constraints is not None else [None] * n
    if len(constraints) != n:
        raise ValueError(f"got {len(constraints)} constraints for {n} prompts")
    eos = torch.tensor([eos_ids] if isinstance(eos_ids, int) else list(eos_ids), dtype=torch.long)
    if eos.numel() == 0:
        raise ValueError("eos_ids must name at least one end-of-text token")
    device = next(model.parameters()).device
    prompt_ids, prompt_mask = left_pad(prompts, pad_id, device)
    vocab = None
    tokens: list[list[int]] = [[] for _ in range(n)]
    logps: list[list[float]] = [[] for _ in range(n)]
    done = torch.zeros(n, dtype=torch.bool)
    finished = torch.zeros(n, dtype=torch.bool)
    mask, step_ids, step_pos, past = prompt_mask, prompt_ids, position_ids(prompt_mask), None
    with torch.no_grad():
        for _ in range(max_new_tokens):
            out = model(
                input_ids=step_ids,
                attention_mask=mask,
                position_ids=step_pos,
                past_key_values=past,
                use_cache=True,
                logits_to_keep=1,  # only the last position's logits: not a batch x prompt x vocabulary tensor
            )
            past = out.past_key_values
            logits = out.logits[:, -1].float().cpu()
            vocab = logits.shape[-1]
            allowed = None
            if any(c is not None for c in constraints):
                allowed = torch.ones((n, vocab), dtype=torch.bool)
                for i in (~done).nonzero().flatten().tolist():
                    row = _allowed_row(constraints[i], tokens[i], vocab)
                    if row is not None:
                        allowed[i] = row
            logp = _log_policy(logits, allowed, temperature)
            if temperature == 0:
                nxt = logp.argmax(-1)
            else:
                nxt = torch.multinomial(logp.exp(), 1, generator=generator).squeeze(-1)
            chosen = logp.gather(-1, nxt[:, None]).squeeze(-1)
            for i in (~done).nonzero().flatten().tolist():
                tokens[i].append(int(nxt[i]))
                logps[i].append(float(chosen[i]))
            ended = ~done & torch.isin(nxt, eos)
            finished |= ended
            done |= ended
            if bool(done.all()):
                break
            step_ids = torch.where(done, torch.full_like(nxt, pad_id), nxt)[:, None].to(device)
            step_pos = step_pos[:, -1:] + 1
            mask = torch.cat([mask, (~done).long()[:, None].to(device)], dim=1)
    completion_ids, completion_mask = right_pad(tokens, pad_id, device)
    logprobs = torch.zeros(completion_ids.shape, dtype=torch.float32)
    for i, lp in enumerate(logps):
        logprobs[i, : len(lp)] = torch.tensor(lp, dtype=torch.float32)
    return Samples(prompt_ids, prompt_mask, completion_ids, completion_mask, logprobs.to(device), finished, constraints)


# --------------------------------------------------------------------------------------------------- scoring
class Scored(NamedTuple):
    """Per-token quantities of given completions under the policy, ``[B, T]``, 0 at padding."""

    logprobs: torch.Tensor
    entropy: torch.Tensor  # entropy of the (constrained) next-token distribution at each completion position


def score_tokens(
    model: Any,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    completion_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    *,
    constraints: Sequence[Constraint | None] | None = None,
    temperature: float = 1.0,
) -> Scored:
    """Log-probabilities and entropies of the completions after their prompts, in one forward pass.

    Runs under the caller's grad mode, so a loss can backpropagate through it. The sequence of row ``i`` is its
    left-padded prompt followed by its right-padded completion; the logits that predict completion position ``k``
    are those at column ``P - 1 + k``. Completion pads come after a row's real tokens, so causal attention keeps
    them out of everything that is kept.
    """
    if prompt_ids.shape != prompt_mask.shape or completion_ids.shape != completion_mask.shape:
        raise ValueError(
            "ids and masks must have the same shapes: got prompt "
            f"{tuple(prompt_ids.shape)}/{tuple(prompt_mask.shape)}, completion "
            f"{tuple(completion_ids.shape)}/{tuple(completion_mask.shape)}"
        )
    if prompt_ids.shape[0] != completion_ids.shape[0]:
        raise ValueError(f"got {prompt_ids.shape[0]} prompts but {completion_ids.shape[0]} completions")
    t = completion_ids.shape[1]
    ids = torch.cat([prompt_ids, completion_ids], dim=1)
    mask = torch.cat([prompt_mask, completion_mask], dim=1)
    # The last t + 1 columns' logits; dropping the final one leaves the t that predict completion tokens.
    logits = model(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask), logits_to_keep=t + 1).logits[
        :, :-1
    ]
    allowed = constraint_mask(constraints, completion_ids, completion_mask, logits.shape[-1])
    logp_all = _log_policy(logits, allowed, temperature)
    logprobs = logp_all.gather(-1, completion_ids[..., None]).squeeze(-1)
    probs = logp_all.exp()
    entropy = -(probs * logp_all.masked_fill(probs == 0, 0.0)).sum(-1)  # 0 * log 0 = 0 at masked tokens
    keep = completion_mask.bool()
    return Scored(logprobs.masked_fill(~keep, 0.0), entropy.masked_fill(~keep, 0.0))


def sequence_logprobs(
    model: Any,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    completion_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    *,
    constraints: Sequence[Constraint | None] | None = None,
    temperature: float = 1.0,
) -> torch.Tensor:
    """``[B, T]`` per-token log-probabilities of given completions (0 at padding); see ``score_tokens``."""
    return score_tokens(
        model,
        prompt_ids,
        prompt_mask,
        completion_ids,
        completion_mask,
        constraints=constraints,
        temperature=temperature,
    ).logprobs
