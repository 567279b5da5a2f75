"""Helpers for error messages that say what was wrong and what is allowed."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable


def did_you_mean(word: str, choices: Iterable[str], n: int = 1, cutoff: float = 0.5,
                 show: Callable[[str], str] = repr) -> str:
    """``"; did you mean 'x'?"`` naming the nearest of ``choices`` (up to ``n``, joined by "or"), or ``""``."""
    near = difflib.get_close_matches(word, list(choices), n=n, cutoff=cutoff)
    return f"; did you mean {' or '.join(show(c) for c in near)}?" if near else ""
