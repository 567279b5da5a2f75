"""Re-scoring a turn without re-running the frozen trunk of the model.

When only the last blocks of a model train (LoRA on the last ``last_layers`` blocks, ``marlkit.llm.lora``), the
hidden state entering the first trainable block depends only on the tokens: the blocks below it, and the token
embedding, are frozen. ``TrunkCapture`` records that hidden state while a batch is sampled; the update then scores
its completions by running the trainable blocks alone on it (``TrunkSkip``), which is the same computation as the
full forward pass (equal log-probabilities and gradients up to float rounding) at the cost of the top blocks only.
For SmolLM2-135M with the last 4 of 30 blocks adapted, the scoring forward pass costs about an eighth. The price is
memory: each recorded turn keeps (prompt + completion tokens) x hidden size floats until the update (SmolLM2, a
35-token prompt: 90 kB a turn).

It applies to decoder-only models whose inner model keeps its blocks in ``layers`` and adds no position embedding to
its input (Llama, Qwen2, Mistral, SmolLM2: rotary positions computed from ``position_ids``). ``frozen_trunk``
returns None for other models, and when the first block or the embedding trains: then there is nothing to skip.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import torch


@dataclass(frozen=True)
class Trunk:
    """Where the frozen trunk of a model ends: ``inner.layers[start]`` is the first block with a trainable weight."""

    inner: Any
    start: int


def _inner_model(model: Any) -> Any:
    """The decoder (``LlamaModel``-like) inside a causal LM, unwrapping a peft model."""
    m = model
    if hasattr(m, "get_base_model"):  # peft
        m = m.get_base_model()
    return getattr(m, "model", None)


def frozen_trunk(model: Any) -> Trunk | None:
    """The frozen trunk of ``model`` (see the module docstring), or None when it has none that can be skipped."""
    inner = _inner_model(model)
    layers = getattr(inner, "layers", None)
    if not isinstance(layers, torch.nn.ModuleList) or not hasattr(inner, "rotary_emb"):
        return None
    if any(p.requires_grad for p in inner.embed_tokens.parameters()):
        return None
    start = next((i for i, layer in enumerate(layers) if any(p.requires_grad for p in layer.parameters())), None)
    if start is None or start == 0:
        return None
    return Trunk(inner, start)


class TrunkCapture:
    """Context manager: records the hidden state entering ``trunk``'s first trainable block at every forward call
    (the prompt pass, then one column per generated token); ``hidden()`` joins them as ``[B, columns, d]``."""

    def __init__(self, trunk: Trunk) -> None:
        self.trunk = trunk
        self.calls: list[torch.Tensor] = []
        self.handle: Any = None

    def _hook(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        hidden = args[0] if args else kwargs["hidden_states"]
        self.calls.append(hidden.detach())

    def __enter__(self) -> TrunkCapture:
        self.handle = self.trunk.inner.layers[self.trunk.start].register_forward_pre_hook(self._hook, with_kwargs=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.remove()

    def hidden(self) -> torch.Tensor:
        return torch.cat(self.calls, dim=1)


def turn_hidden(
    hidden: torch.Tensor, row: int, prompt_len: int, completion_len: int, padded_prompt: int
) -> torch.Tensor:
    """The hidden states of one sampled row that re-scoring needs: its real prompt tokens (the last ``prompt_len``
    of the left-padded ``padded_prompt`` columns) and every completion token but the last (which was never fed back:
    nothing after it is scored), ``[prompt_len + completion_len - 1, d]``."""
    return hidden[row, padded_prompt - prompt_len : padded_prompt + completion_len - 1].clone()


def padded_hidden(
    rows: Sequence[torch.Tensor], prompt_lens: Sequence[int], prompt_width: int, completion_width: int
) -> torch.Tensor:
    """``[B, prompt_width + completion_width, d]``: each row's prompt part left-padded to ``prompt_width`` and its
    completion part right-padded to ``completion_width``, zeros at padding (positions the masks exclude)."""
    d = rows[0].shape[-1]
    out = torch.zeros(len(rows), prompt_width + completion_width, d, dtype=rows[0].dtype)
    for i, (h, p) in enumerate(zip(rows, prompt_lens)):
        out[i, prompt_width - p : prompt_width] = h[:p]
        rest = h[p:]
        out[i, prompt_width : prompt_width + len(rest)] = rest
    return out


class TrunkSkip:
    """A stand-in for the model in ``marlkit.llm.tokens.score_tokens``: computes the logits from ``hidden`` (the
    states entering the trunk's first trainable block, laid out as the ids would be) through the trainable blocks,
    the final norm and the head; the ids it is given are ignored (the hidden states stand for them).

    With ``tokens`` (every token any constraint of the batch allows), the head computes those columns alone and the
    others are ``-inf``: the constrained policy masks them anyway, and a legal-move answer allows a handful of the
    vocabulary (SmolLM2: 7 of 49,152), so the head, otherwise the largest matrix product of the pass, costs nothing."""

    def __init__(self, model: Any, trunk: Trunk, hidden: torch.Tensor, tokens: Iterable[int] | None = None) -> None:
        self.model, self.trunk, self.hidden = model, trunk, hidden
        self.tokens = None if tokens is None else torch.tensor(sorted(set(tokens)), dtype=torch.long)

    def __call__(self, *, input_ids: torch.Tensor, **kwargs: Any) -> Any:
        if input_ids.shape != self.hidden.shape[:2]:
            raise ValueError(f"hidden states {tuple(self.hidden.shape)} do not match ids {tuple(input_ids.shape)}")
        inner, start = self.trunk.inner, self.trunk.start
        full = inner.layers
        inner.layers = torch.nn.ModuleList(list(full)[start:])
        try:
            if self.tokens is None:
                return self.model(inputs_embeds=self.hidden, **kwargs)
            keep = int(kwargs.pop("logits_to_keep", 0))
            kwargs.pop("use_cache", None)
            states = inner(inputs_embeds=self.hidden, use_cache=False, **kwargs).last_hidden_state
        finally:
            inner.layers = full
        if keep:
            states = states[:, -keep:]
        head = self.model.get_output_embeddings()
        weight = head.weight[self.tokens]
        part = states @ weight.T
        if getattr(head, "bias", None) is not None:
            part = part + head.bias[self.tokens]
        logits = torch.full((*states.shape[:2], head.weight.shape[0]), float("-inf"), dtype=part.dtype)
        logits = logits.index_copy(-1, self.tokens, part)
        return SimpleNamespace(logits=logits)


def allowed_tokens(constraints: Sequence[Any], completions: Sequence[Sequence[int]]) -> set[int] | None:
    """Every token the constraints allow anywhere along the completions (None if a row is unconstrained)."""
    tokens: set[int] = set()
    for c, ids in zip(constraints, completions):
        if c is None:
            return None
        for k in range(len(ids)):
            tokens.update(c.allowed(ids[:k]))
    return tokens


__all__ = ["Trunk", "allowed_tokens", "TrunkCapture", "TrunkSkip", "frozen_trunk", "padded_hidden", "turn_hidden"]
