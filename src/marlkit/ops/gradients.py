"""Gradient clipping in a handful of ops."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor


def clip_grad_norm(params: Iterable[Tensor], max_norm: float) -> Tensor:
    """Scale the gradients of ``params`` in place so that their global L2 norm is at most ``max_norm``; returns the
    norm before clipping (parameters without a gradient are left out).

    The same computation as ``torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=True)`` (the norm of the
    per-tensor norms, scaled by ``min(1, max_norm / (norm + 1e-6))``) in four foreach ops, without its Python-level
    grouping of the tensors by device and dtype, which costs more than the arithmetic on a few small networks.
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    torch._foreach_mul_(grads, (max_norm / (total + 1e-6)).clamp(max=1.0))
    return total
