"""A small recurrent network for partially observable tasks: ``Linear -> ReLU -> GRU cell -> Linear``.

The agent network of DRQN (Hausknecht & Stone 2015, "Deep Recurrent Q-Learning for Partially Observable MDPs",
https://arxiv.org/abs/1507.06527) as the QMIX paper uses it (Rashid et al. 2018, §6: a 64-unit GRU between two
fully connected layers). Any leading batch dims are allowed; ``step`` advances one step, ``unroll`` a sequence.
GRU: Cho et al. 2014, "Learning Phrase Representations using RNN Encoder-Decoder", https://arxiv.org/abs/1406.1078.
"""

from __future__ import annotations

import torch
from torch import nn

from marlkit.nn.mlp import Linear


class GRUNet(nn.Module):
    """``(..., in_dim)`` and a hidden state ``(..., hidden)`` -> ``(..., out_dim)`` and the next hidden state."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 64, out_gain: float = 1.0) -> None:
        super().__init__()
        self.hidden = hidden
        self.encoder = Linear(in_dim, hidden)
        self.cell = nn.GRUCell(hidden, hidden)
        self.head = Linear(hidden, out_dim, gain=out_gain)

    def initial(self, *batch: int) -> torch.Tensor:
        """The zero hidden state of a batch shaped ``batch``."""
        return torch.zeros(*batch, self.hidden)

    def step(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lead = x.shape[:-1]
        z = torch.relu(self.encoder(x)).reshape(-1, self.hidden)
        h = self.cell(z, h.reshape(-1, self.hidden)).reshape(*lead, self.hidden)
        return self.head(h), h

    def unroll(self, x: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        """Outputs for a sequence ``x (B, T, ..., in_dim)`` from ``h`` (zeros if None): ``(B, T, ..., out_dim)``."""
        B, T = x.shape[:2]
        h = self.initial(B, *x.shape[2:-1]) if h is None else h
        z = torch.relu(self.encoder(x))  # the feed-forward parts run over all steps at once
        hs = []
        for t in range(T):  # the recurrence is a loop over time only
            h = self.cell(z[:, t].reshape(-1, self.hidden), h.reshape(-1, self.hidden)).reshape(h.shape)
            hs.append(h)
        return self.head(torch.stack(hs, dim=1))
