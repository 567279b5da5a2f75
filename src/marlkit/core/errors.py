"""Error types shared across marlkit, and helpers for messages that say what was wrong and what is allowed."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable


def did_you_mean(
    word: str, choices: Iterable[str], n: int = 1, cutoff: float = 0.5, show: Callable[[str], str] = repr
) -> str:
    """``"; did you mean 'x'?"`` naming the nearest of ``choices`` (up to ``n``, joined by "or"), or ``""``."""
    near = difflib.get_close_matches(word, list(choices), n=n, cutoff=cutoff)
    return f"; did you mean {' or '.join(show(c) for c in near)}?" if near else ""


class CheckpointError(ValueError):
    """No usable checkpoint: one that is not intact (``reason`` says why, e.g. "is 0 bytes ..."), or none intact."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason if reason is not None else message


class CheckpointWarning(UserWarning):
    """A checkpoint was skipped because it is not intact; an older one was used."""
