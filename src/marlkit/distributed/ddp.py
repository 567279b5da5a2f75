"""Several learners that average their gradients with ``torch.distributed`` (gloo on CPU): data-parallel learning.

Each of ``world_size`` processes holds a replica of the same learner and computes its loss on its own share of the
data; ``AveragedOptimizer`` wraps the learner's optimiser so that every ``step`` first replaces each gradient with
its mean over the processes (one ``all_reduce`` of all gradients flattened together), so every replica takes the
same step: the one a single process would take on the whole batch when the loss is a mean over samples. Replicas
start equal with ``broadcast_parameters`` (rank 0's weights). ``torch.distributed`` is the engine; this module
only joins a learner to it::

    join_group(rank, world_size, port)              # once per process
    broadcast_parameters(learner)                   # rank 0's initial weights everywhere
    learner.optimizer = AveragedOptimizer(learner.optimizer)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn


def join_group(rank: int, world_size: int, port: int, host: str = "127.0.0.1", timeout_s: float = 60.0) -> None:
    """Join the gloo process group of ``world_size`` learners (rank 0 listens on ``host:port``)."""
    import datetime

    import torch.distributed as dist

    dist.init_process_group(
        "gloo",
        init_method=f"tcp://{host}:{port}",
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(seconds=timeout_s),
    )


def broadcast_parameters(module: nn.Module) -> None:
    """Give every process rank 0's parameters and buffers."""
    import torch.distributed as dist

    with torch.no_grad():
        for tensor in module.state_dict().values():
            if isinstance(tensor, torch.Tensor):
                dist.broadcast(tensor, src=0)


def average_flat(vector: torch.Tensor) -> torch.Tensor:
    """``vector`` replaced, in place, by its mean over the process group (one ``all_reduce``); returned."""
    import torch.distributed as dist

    dist.all_reduce(vector)
    vector /= dist.get_world_size()
    return vector


def sum_all(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` replaced, in place, by its sum over the process group (one ``all_reduce``); returned."""
    import torch.distributed as dist

    dist.all_reduce(tensor)
    return tensor


def average_gradients(params: Iterable[torch.Tensor]) -> None:
    """Replace each gradient with its mean over the process group (one ``all_reduce`` of all of them)."""

    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = average_flat(torch.cat([g.reshape(-1) for g in grads]))
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset : offset + n].view_as(g))
        offset += n


class AveragedOptimizer:
    """``optimizer`` whose ``step`` averages the gradients over the process group first; everything else (its
    param groups, ``zero_grad``, ``state_dict``) is the wrapped optimiser's."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.optimizer.param_groups

    def step(self, closure: Callable[[], float] | None = None) -> Any:
        average_gradients(p for group in self.optimizer.param_groups for p in group["params"])
        return self.optimizer.step(closure)

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return self.optimizer.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state)
