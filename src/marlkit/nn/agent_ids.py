"""The one-hot agent index appended to inputs of networks shared by a group's agents (NumPy or torch)."""

from __future__ import annotations

from functools import cache
from typing import TypeVar

import numpy as np
import torch

T = TypeVar("T", np.ndarray, torch.Tensor)


@cache
def _eye(n: int, dtype: torch.dtype) -> torch.Tensor:
    """The ``n x n`` identity, made once per size and dtype (``torch.eye`` costs tens of microseconds a call)."""
    return torch.eye(n, dtype=dtype).requires_grad_(False)


def append_agent_ids(x: T) -> T:
    """``(..., n_agents, d)`` -> ``(..., n_agents, d + n_agents)``: agent i's row gets the one-hot of i appended."""
    n = x.shape[-2]
    if isinstance(x, np.ndarray):
        return np.concatenate([x, np.broadcast_to(np.eye(n, dtype=x.dtype), (*x.shape[:-1], n))], -1)
    return torch.cat([x, _eye(n, x.dtype).expand(*x.shape[:-1], n)], dim=-1)
