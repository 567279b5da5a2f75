"""Running statistics for normalising value targets (the MAPPO paper's ValueNorm, Yu et al. 2022, §3)."""

from __future__ import annotations

import torch
from torch import nn


class RunningNorm(nn.Module):
    """Exponentially weighted mean and variance of the targets seen so far (debiased as in Adam)."""

    mean: torch.Tensor
    mean_sq: torch.Tensor
    debias: torch.Tensor

    def __init__(self, beta: float = 0.99999, eps: float = 1e-5) -> None:
        super().__init__()
        self.beta, self.eps = beta, eps
        self.register_buffer("mean", torch.zeros(()))
        self.register_buffer("mean_sq", torch.zeros(()))
        self.register_buffer("debias", torch.zeros(()))

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        self.update_moments(x.mean(), (x * x).mean())

    @torch.no_grad()
    def update_moments(self, mean: torch.Tensor, mean_sq: torch.Tensor) -> None:
        """``update`` with a batch given by its mean and mean square (e.g. summed over several learners' shares)."""
        weight = self.beta  # one decay per batch of targets, debiased below
        self.mean.mul_(weight).add_(mean * (1 - weight))
        self.mean_sq.mul_(weight).add_(mean_sq * (1 - weight))
        self.debias.mul_(weight).add_(1 - weight)

    def _stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        d = self.debias.clamp(min=self.eps)
        mean = self.mean / d
        var = (self.mean_sq / d - mean * mean).clamp(min=1e-2)
        return mean, var.sqrt()

    def std(self) -> torch.Tensor:
        """The running standard deviation (at least 0.1)."""
        return self._stats()[1]

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self._stats()
        return (x - mean) / std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self._stats()
        return x * std + mean
