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

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"tanh": torch.tanh, "relu": torch.relu}
#: The same activations in place on NumPy arrays (for ``MLP.forward_numpy``).
NUMPY_ACTIVATIONS: dict[str, Callable[[np.ndarray], Any]] = {
    "tanh": lambda h: np.tanh(h, out=h),
    "relu": lambda h: np.maximum(h, 0.0, out=h),
}
#: The activations in place on torch tensors, and their backward from the saved output (for ``_SharedMLP``).
_INPLACE: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"tanh": torch.tanh_, "relu": torch.relu_}
_BACKWARD: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "tanh": lambda grad, y: torch.ops.aten.tanh_backward(grad, y),
    "relu": lambda grad, y: torch.ops.aten.threshold_backward(grad, y, 0.0),
}


class _SharedMLP(torch.autograd.Function):
    """The forward and backward pass of a shared-weight MLP (``n_models=None``) written out by hand: one ``addmm``
    and one in-place activation a layer forward, three matrix ops and the activation's backward a layer back.

    The same ops autograd would run (``AddmmBackward``: ``x.T @ g``, ``g.sum(0)``, ``g @ W.T``; ``tanh_backward``
    or ``threshold_backward``), so the same numbers, in about a quarter of the dispatched ops and autograd nodes:
    on the 64x64 networks of an MPE update the per-op overhead, not the arithmetic, is most of an update's time.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, activation: str, *params: torch.Tensor) -> torch.Tensor:
        h = x.reshape(-1, x.shape[-1])
        inputs = []  # the input of every layer: x, then each hidden activation (its output, for the backward)
        n = len(params) // 2
        act = _INPLACE[activation]
        for i in range(n):
            inputs.append(h)
            h = torch.addmm(params[2 * i + 1], h, params[2 * i])
            if i < n - 1:
                act(h)
        ctx.save_for_backward(*inputs, *params[0::2])
        ctx.activation, ctx.in_shape = activation, x.shape
        return h.reshape(*x.shape[:-1], h.shape[-1])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        saved = ctx.saved_tensors
        n = len(saved) // 2
        inputs, weights = saved[:n], saved[n:]
        act_backward = _BACKWARD[ctx.activation]
        g = grad.reshape(-1, grad.shape[-1])
        grads: list[torch.Tensor | None] = [None] * (2 * n)
        grad_x = None
        for i in range(n - 1, -1, -1):
            grads[2 * i] = inputs[i].t().mm(g)
            grads[2 * i + 1] = g.sum(0)
            if i > 0:
                g = act_backward(g.mm(weights[i].t()), inputs[i])
            elif ctx.needs_input_grad[0]:
                grad_x = g.mm(weights[0].t()).reshape(ctx.in_shape)
        return (grad_x, None, *grads)


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

    def _numpy_params(self) -> tuple[np.ndarray, np.ndarray]:
        """NumPy views of the weight and bias memory, made again only when a parameter's storage changes (in-place
        updates, as optimisers and ``load_state_dict`` make them, show through the views)."""
        weight, bias = self.weight, self.bias
        key = (weight.data_ptr(), bias.data_ptr(), weight.shape, bias.shape)
        cached = self.__dict__.get("_numpy_cache")
        if cached is None or cached[0] != key:
            cached = self.__dict__["_numpy_cache"] = (key, weight.detach().numpy(), bias.detach().numpy())
        return cached[1], cached[2]

    def forward_numpy(self, x: np.ndarray) -> np.ndarray:
        """``forward`` on a NumPy array, reading the parameters' memory directly (no copy, never stale)."""
        w, b = self._numpy_params()
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
        self.shared = n_models is None

    @property
    def _params(self) -> list[torch.Tensor]:
        """Weight and bias of every layer, in order (read at every call: never stale after ``load_state_dict``)."""
        return [p for layer in cast("Sequence[Linear]", self.layers) for p in (layer.weight, layer.bias)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.shared and torch.is_grad_enabled():  # the hand-written backward (same numbers, fewer ops)
            return cast("torch.Tensor", _SharedMLP.apply(x, self.activation_name, *self._params))
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
        layers = cast("Sequence[Linear]", self.layers)  # a ModuleList does not know its items' type
        act = NUMPY_ACTIVATIONS[self.activation_name]
        if self.shared:  # the layers' arithmetic inline on one 2-D array: per-call overhead is most of the time here
            lead, h = x.shape[:-1], x.reshape(-1, x.shape[-1])
            for i, layer in enumerate(layers):
                w, b = layer._numpy_params()
                h = h @ w
                h += b
                if i < len(layers) - 1:
                    act(h)
            return h.reshape(*lead, h.shape[-1])
        *hidden, last = layers
        for layer in hidden:
            x = layer.forward_numpy(x)
            act(x)
        return last.forward_numpy(x)
