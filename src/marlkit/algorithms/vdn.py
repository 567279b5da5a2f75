"""VDN: value-decomposition networks — the team's Q-value is the sum of the agents' Q-values.

Paper: Sunehag et al. 2018, "Value-Decomposition Networks For Cooperative Multi-Agent Learning", AAMAS
(https://arxiv.org/abs/1706.05296). Each agent greedily maximises its own ``Q_i`` and, because
``Q_tot = sum_i Q_i``, that maximises ``Q_tot`` too; the TD error is taken on ``Q_tot`` with the team reward (the
mean of the group's per-agent rewards: the common reward in a cooperative env). Everything else — shared
agent networks with an id, ε-greedy, replay, double-DQN targets, n-step returns, masks, the optional GRU — is
the IQL learner of ``dqn.py`` (its ``DQNConfig`` configures VDN too).
"""

from __future__ import annotations

from torch import nn

from marlkit.algorithms.dqn import DQN, DQNConfig
from marlkit.nn import VDNMixer

VDNConfig = DQNConfig


class VDN(DQN):
    """IQL whose agents of a group are trained through the sum of their Q-values."""

    def make_mixer(self, n_agents: int, state_dim: int) -> nn.Module:
        return VDNMixer()
