"""The policy protocol every text agent satisfies: scripted, neural or language model, so any mix plays together.

A text policy answers a batch of observations (prompts) with a batch of texts. Batching is the point: a language
model answers every copy of a game in one generation call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable


@runtime_checkable
class TextPolicy(Protocol):
    """Anything with ``act(observations) -> texts`` (same length, same order)."""

    def act(self, observations: Sequence[str]) -> list[str]: ...
