"""Multi-layer perceptrons — shared across a group's agents, or one per agent evaluated in a single batched op."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

SQRT2 = math.sqrt(2.0)


class Linear(nn.Module):
    """``y = x W + b``; with ``n_models`` set, one independent layer per agent: ``x (..., n_models, in)`` is mapped
    by its own weights in one ``einsum`` (no Python loop over agents). Orthogonal weights, zero bias (Engstrom et
    al. 2020, "Implementation Matters in Deep Policy Gradients")."""

    def __init__(self, in_dim: int, out_dim: int, n_models: int | None = None, gain: float = SQRT2) -> None:
        super().__init__()
        self.n_models = n_models
        k = 1 if n_models is None else n_models
        weight = torch.empty(k, in_dim, out_dim)
        for i in range(k):
            nn.init.orthogonal_(weight[i].T, gain)  # the (out, in) view, as nn.Linear initialises it
        self.weight = nn.Parameter(weight if n_models is not None else weight[0])
        self.bias = nn.Parameter(torch.zeros(k, out_dim) if n_models is not None else torch.zeros(out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.n_models is None:
            return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).reshape(*x.shape[:-1], -1)
        return torch.einsum("...ni,nio->...no", x, self.weight) + self.bias


class MLP(nn.Module):
    """``in_dim -> hidden... -> out_dim`` with tanh (or another activation) between layers. ``out_gain`` sets the
    last layer's initial scale: 0.01 for policy heads (near-uniform start), 1.0 for values."""

    def __init__(self, in_dim: int, out_dim: int, hidden: Sequence[int] = (64, 64), n_models: int | None = None,
                 activation: type[nn.Module] = nn.Tanh, out_gain: float = 1.0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        d = in_dim
        for h in hidden:
            layers += [Linear(d, h, n_models), activation()]
            d = h
        layers.append(Linear(d, out_dim, n_models, gain=out_gain))
        self.net = nn.Sequential(*layers)
        self.in_dim, self.out_dim = in_dim, out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
