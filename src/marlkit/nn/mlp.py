"""Multi-layer perceptrons — shared across a group's agents, or one per agent evaluated in a single batched op."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np
import torch
from torch import nn

SQRT2 = math.sqrt(2.0)

#: Below this many elements ``tanh`` calls ``torch.tanh`` (one kernel beats four on small inputs).
_FAST_TANH_MIN = 8192


class _SigmoidTanh(torch.autograd.Function):
    """tanh(x) = 2 sigmoid(2x) - 1, with the backward pass 1 - y² from the saved output.

    PyTorch's CPU tanh kernel (SLEEF, 1-ulp accurate) is the single most expensive op of a PPO update on this kind of
    machine: ~3.3 ns per element against ~1 ns for sigmoid (measured with one thread on an AVX2 EPYC, 1,536×64
    inputs). This identity gives the same function to within ~1e-7 absolute at about half the cost, and its
    backward needs two cheap elementwise ops instead of ``tanh_backward``.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        y = torch.sigmoid(x * 2.0).mul_(2.0).sub_(1.0)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return torch.addcmul(grad, grad * y, y, value=-1.0)  # grad * (1 - y²)


def tanh(x: torch.Tensor) -> torch.Tensor:
    """Hyperbolic tangent, computed through the sigmoid on large inputs (see ``_SigmoidTanh``)."""
    if x.numel() < _FAST_TANH_MIN:
        return torch.tanh(x)
    if torch.is_grad_enabled() and x.requires_grad:
        return _SigmoidTanh.apply(x)
    return torch.sigmoid(x * 2.0).mul_(2.0).sub_(1.0)


ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"tanh": tanh, "relu": torch.relu}
#: The same activations in place on NumPy arrays (for ``MLP.forward_numpy``).
NUMPY_ACTIVATIONS: dict[str, Callable[[np.ndarray], Any]] = {
    "tanh": lambda h: np.tanh(h, out=h),
    "relu": lambda h: np.maximum(h, 0.0, out=h),
}


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

    def forward_numpy(self, x: np.ndarray) -> np.ndarray:
        """``forward`` on a NumPy array, reading the parameters' memory directly (no copy, never stale)."""
        w, b = self.weight.detach().numpy(), self.bias.detach().numpy()
        if self.n_models is None:
            y = x.reshape(-1, x.shape[-1]) @ w
            y += b
            return y.reshape(*x.shape[:-1], -1)
        lead = x.shape[:-2]  # (..., n, in) -> (n, batch, in) @ (n, in, out): one BLAS call per model
        y = np.matmul(x.reshape(-1, *x.shape[-2:]).swapaxes(0, 1), w).swapaxes(0, 1)
        y += b
        return y.reshape(*lead, *y.shape[-2:])


class MLP(nn.Module):
    """``in_dim -> hidden... -> out_dim`` with an activation (``"tanh"`` or ``"relu"``) between layers.
    ``out_gain`` sets the last layer's initial scale: 0.01 for policy heads (near-uniform start), 1.0 for values."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden: Sequence[int] = (64, 64),
        n_models: int | None = None,
        activation: str = "tanh",
        out_gain: float = 1.0,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        dims = [in_dim, *hidden]
        self.layers = nn.ModuleList([Linear(a, b, n_models) for a, b in itertools.pairwise(dims)])
        self.layers.append(Linear(dims[-1], out_dim, n_models, gain=out_gain))
        self.activation, self.activation_name = ACTIVATIONS[activation], activation
        self.in_dim, self.out_dim = in_dim, out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        *hidden, last = self.layers
        for layer in hidden:
            # layer.forward, not layer(...): nn.Module.__call__'s hook handling costs ~10 µs a layer, which is most
            # of the time of acting on a few dozen agents (no hooks are ever registered on these layers).
            x = self.activation(layer.forward(x))
        return last.forward(x)

    def forward_numpy(self, x: np.ndarray) -> np.ndarray:
        """The same function on a float32 NumPy array, without autograd: for acting on small batches, where
        torch's per-op dispatch (~5 µs an op) costs more than the arithmetic — NumPy's is about 1 µs. The
        parameters are read in place, so this always agrees with ``forward`` (to float32 rounding)."""
        *hidden, last = cast("Sequence[Linear]", self.layers)  # a ModuleList does not know its items' type
        act = NUMPY_ACTIVATIONS[self.activation_name]
        for layer in hidden:
            x = layer.forward_numpy(x)
            act(x)
        return last.forward_numpy(x)
