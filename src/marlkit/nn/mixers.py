"""Mixing networks: a team value ``Q_tot`` from the agents' chosen-action values ``Q_i``.

* ``VDNMixer``: ``Q_tot = sum_i Q_i`` (Sunehag et al. 2018, "Value-Decomposition Networks For Cooperative
  Multi-Agent Learning", AAMAS, https://arxiv.org/abs/1706.05296).
* ``QMixer``: ``Q_tot = w2(s)^T elu(W1(s)^T q + b1(s)) + V(s)``, monotonic in every ``Q_i`` because the weights are
  absolute values of hypernetwork outputs (Rashid et al. 2018, "QMIX: Monotonic Value Function Factorisation for
  Deep Multi-Agent Reinforcement Learning", ICML, §4 and Fig. 2, https://arxiv.org/abs/1803.11485). As in the
  paper, each weight/bias hypernetwork is one linear layer of the global state (an absolute value on the
  weights), and the final bias ``V(s)`` is a two-layer hypernetwork with a ReLU; ``embed`` is the paper's 32.
  ``hypernet_layers=2`` makes the weight hypernetworks two layers too (``hypernet_embed`` wide, ReLU), as PyMARL
  and EPyMARL use on harder tasks.

  Two options keep the mixer stable where the state is unbounded (MPE positions drift with the agents):
  ``state_norm`` layer-normalises the state the hypernetworks read (no learned scale), so the mixing weights depend
  on the state's direction, not on its size — with raw positions, weights that grow as agents move away make
  ``Q_tot`` grow along trajectories, the classic off-policy TD divergence (Tsitsiklis & Van Roy 1997, the
  ``w, 2w`` example); ``weight_gain`` is the initial scale of the layers that output the mixing weights (1 as
  before; smaller starts the mixer nearer a plain sum, with effective weights ``dQ_tot/dQ_i`` at or below 1 instead of
  ~10–20, which otherwise multiply every agent's max-operator overestimation in the bootstrapped target).

  ``residual=True`` adds the plain sum to the mixer's output, ``Q_tot = sum_i Q_i + mixer(q, s)``: the mixer learns
  only the team value's departure from VDN's sum (a residual connection, as in ResNets). It stays monotonic
  (``dQ_tot/dQ_i >= 1``), so decentralised greedy action selection is unchanged; at initialisation it is VDN plus
  a small state-dependent term instead of an arbitrary monotonic function.

Inputs: ``q (..., n_agents)`` and ``state (..., state_dim)`` with the same leading dims; output ``(...)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from marlkit.nn.mlp import Linear


class VDNMixer(nn.Module):
    """The sum of the agents' values (no parameters; the state is ignored)."""

    def forward(self, q: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        return q.sum(-1)


class QMixer(nn.Module):
    """QMIX's monotonic mixing network, its weights and biases produced from the state by hypernetworks."""

    def __init__(
        self,
        n_agents: int,
        state_dim: int,
        embed: int = 32,
        hypernet_layers: int = 1,
        hypernet_embed: int = 64,
        state_norm: bool = False,
        weight_gain: float = 1.0,
        residual: bool = False,
    ) -> None:
        super().__init__()
        if hypernet_layers not in (1, 2):
            raise ValueError(f"hypernet_layers must be 1 or 2, got {hypernet_layers!r}")
        if not weight_gain > 0:
            raise ValueError(f"weight_gain must be positive, got {weight_gain!r}")
        self.n_agents, self.embed, self.state_norm, self.residual = n_agents, embed, state_norm, residual

        def hyper(out: int) -> nn.Module:
            if hypernet_layers == 1:
                return Linear(state_dim, out, gain=weight_gain)
            return nn.Sequential(
                Linear(state_dim, hypernet_embed), nn.ReLU(), Linear(hypernet_embed, out, gain=weight_gain)
            )

        self.hyper_w1 = hyper(n_agents * embed)
        self.hyper_b1 = Linear(state_dim, embed, gain=1.0)
        self.hyper_w2 = hyper(embed)
        self.hyper_v = nn.Sequential(Linear(state_dim, embed), nn.ReLU(), Linear(embed, 1, gain=1.0))

    def forward(self, q: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        if self.state_norm:
            state = F.layer_norm(state, state.shape[-1:])
        w1 = self.hyper_w1(state).abs().reshape(*state.shape[:-1], self.n_agents, self.embed)
        hidden = F.elu(torch.einsum("...n,...ne->...e", q, w1) + self.hyper_b1(state))
        w2 = self.hyper_w2(state).abs()
        q_tot = (hidden * w2).sum(-1) + self.hyper_v(state).squeeze(-1)
        return q_tot + q.sum(-1) if self.residual else q_tot
