"""Pieces of language-agent self-play that live at the model level: a short per-role prompt for tic-tac-toe, a
policy choosing among the legal moves (optionally with other weights swapped in, or with its adapters off), and the
weights a snapshot keeps (the LoRA adapters alone when the model carries them).

The training loop with role-conditioned advantages and a pool of past snapshots is
``marlkit.population.lm_selfplay.SelfPlay`` (the population layer: it reuses ``marlkit.population.pool``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from marlkit.llm.lora import adapter_state, is_lora, set_adapter_state

_ROW = re.compile(r"^ ([123])  ([XO.]) ([XO.]) ([XO.])$")
_TURN = re.compile(r"Your turn \(([XO])\)")


def tictactoe_prompt(agent: str, observation: str) -> str:
    """A short prompt for ``tictactoe-v0``: the mark to play and the board (about 30 SmolLM2 tokens instead of 150).

    It keeps what changes from turn to turn and what the seat needs (its mark); the rules and answer format are the
    same in every observation and the answer is constrained to the legal moves."""
    rows = [m.groups() for line in observation.split("\n") if (m := _ROW.match(line))]
    turn = _TURN.search(observation)
    if len(rows) != 3 or turn is None:
        raise ValueError(f"not a tic-tac-toe observation of the player to move: {observation!r}")
    board = "\n".join(f"{r} {a} {b} {c}" for r, a, b, c in rows)
    return f"Tic-tac-toe. You play {turn.group(1)}.\n  A B C\n{board}\nYour move:"


_LEGAL = re.compile(r"Legal moves: ([^.\n]*)\.")


def legal_moves_in(observation: str) -> list[str]:
    """The legal moves listed in a text-game observation (``"Legal moves: A1, B2."``)."""
    m = _LEGAL.search(observation)
    if m is None:
        raise ValueError(f"the observation lists no legal moves: {observation!r}")
    return [a.strip() for a in m.group(1).split(",") if a.strip()]


class LMMovePolicy:
    """A language model choosing among the legal moves listed in each observation (a ``TextPolicy``).

    Tokens are sampled from the model's logits masked to the legal moves (``marlkit.llm.tokens.AllowedSequences``),
    the same constrained policy ``TokenRL`` trains. With ``adapters=False`` a model carrying LoRA adapters plays as
    its base (the untrained self) without a second copy of the weights. ``temperature=0`` is greedy."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        prompt: Callable[[str, str], str],
        *,
        seed: int = 0,
        temperature: float = 1.0,
        adapters: bool = True,
        legal: Callable[[str], Sequence[str]] = legal_moves_in,
        agent: str = "player",
        weights: Mapping[str, Any] | None = None,
    ) -> None:
        self.weights = weights
        self.model, self.tokenizer, self.prompt = model, tokenizer, prompt
        self.temperature, self.adapters, self.legal, self.agent = temperature, adapters, legal, agent
        if not adapters and not hasattr(model, "disable_adapter"):
            raise TypeError("adapters=False needs a model carrying LoRA adapters (marlkit.llm.lora.add_lora)")
        self.eos_id = int(tokenizer.eos_token_id)
        self.pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id)
        self.generator = torch.Generator().manual_seed(seed)

    def act(self, observations: Sequence[str]) -> list[str]:
        import contextlib

        from marlkit.llm.tokens import AllowedSequences, sample

        if not observations:
            return []
        prompts = [
            self.tokenizer(self.prompt(self.agent, o), add_special_tokens=False)["input_ids"] for o in observations
        ]
        constraints = [
            AllowedSequences(
                [self.tokenizer(a, add_special_tokens=False)["input_ids"] for a in self.legal(o)], self.eos_id
            )
            for o in observations
        ]
        off = contextlib.nullcontext() if self.adapters else self.model.disable_adapter()
        swap = Swapped(self.model, self.weights) if self.weights is not None else contextlib.nullcontext()
        with off, swap:
            s = sample(
                self.model,
                prompts,
                pad_id=self.pad_id,
                eos_ids=self.eos_id,
                max_new_tokens=8,
                temperature=self.temperature,
                constraints=constraints,
                generator=self.generator,
            )
        return [
            self.tokenizer.decode([t for t in c if t != self.eos_id], skip_special_tokens=True).strip()
            for c in s.completions()
        ]


# ------------------------------------------------------------------------------------------------- weights
def trainable_weights(model: Any) -> dict[str, torch.Tensor]:
    """The weights a snapshot keeps: the LoRA adapters alone, or every parameter of a fully trained model."""
    if is_lora(model):
        return adapter_state(model)
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def set_trainable_weights(model: Any, weights: Mapping[str, Any]) -> None:
    """Load ``trainable_weights``' dict back into ``model``."""
    if is_lora(model):
        set_adapter_state(model, weights)
    else:
        model.load_state_dict(dict(weights))


class Swapped:
    """Context manager: ``model`` computes with ``weights`` inside, its own weights restored on exit."""

    def __init__(self, model: Any, weights: Mapping[str, Any]) -> None:
        self.model, self.weights = model, weights
        self.saved: dict[str, torch.Tensor] | None = None

    def __enter__(self) -> None:
        self.saved = trainable_weights(self.model)
        set_trainable_weights(self.model, self.weights)

    def __exit__(self, *exc: object) -> None:
        assert self.saved is not None
        set_trainable_weights(self.model, self.saved)


class Frozen:
    """What ``PolicyPool.add`` stores of the learner: its trainable weights (``policy_state``)."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def policy_state(self) -> dict[str, Any]:
        return {"kind": "lm_weights", "lora": is_lora(self.model), "weights": trainable_weights(self.model)}


__all__ = [
    "Frozen",
    "LMMovePolicy",
    "Swapped",
    "legal_moves_in",
    "set_trainable_weights",
    "tictactoe_prompt",
    "trainable_weights",
]
