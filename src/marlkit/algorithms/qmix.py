"""QMIX: a monotonic mixing of the agents' Q-values, conditioned on the global state.

Paper: Rashid et al. 2018, "QMIX: Monotonic Value Function Factorisation for Deep Multi-Agent Reinforcement
Learning", ICML (https://arxiv.org/abs/1803.11485). ``Q_tot = mixer(Q_1..Q_n; state)`` with non-negative mixing
weights (``marlkit.nn.QMixer``), so ``dQ_tot/dQ_i >= 0`` and each agent's greedy action is the team's greedy
joint action — decentralised execution — while ``Q_tot`` can represent far more than VDN's sum (e.g. the paper's
two-step game, ``two-step-v0``). The TD error is on ``Q_tot`` with the team reward (the mean of the group's
per-agent rewards); the target mixes the target agents' values with a target mixer on the next state. The rest is
the IQL learner of ``dqn.py``.

Two defaults differ from the paper, because the paper's mixer diverges on tasks whose state is unbounded: on
``spread-v0`` (MPE positions) its ``Q_tot`` climbed to about +2,000 while the true values are about -15, and the
team ended worse than random (-30 at 2M env-steps; XuanCe publishes -53.7 for QMIX there). The hypernetworks read
the *layer-normalised* state (``state_norm``), so mixing weights cannot grow with the agents' distance from the
origin, and the weight-producing layers start small (``weight_gain=0.2``: effective weights ``dQ_tot/dQ_i`` near
0.5 instead of ~12, which multiply every agent's max-operator overestimation in the target). With both (and lr
1e-3) QMIX gets -10.96 ± 0.56 there over 5 seeds, VDN -10.62 ± 0.36; adding ``residual=true`` and
``hypernet_layers=2`` (the benchmark rows' settings) gives -10.24 ± 0.47, ahead of VDN on 4 of the 5 seeds
(``benchmarks/results/README.md``). ``state_norm=false, weight_gain=1`` is the paper's mixer.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from marlkit.algorithms.dqn import DQN, DQNConfig
from marlkit.core import Capabilities
from marlkit.core.config import check
from marlkit.nn import QMixer


@dataclass(frozen=True)
class QMIXConfig(DQNConfig):
    """DQNConfig plus the size of the mixing network."""

    mixing_embed: int = 32
    """Width of the mixing network's hidden layer (the paper's 32)."""
    hypernet_layers: int = 1
    """Layers of the hypernetworks that produce the mixing weights: 1 as in the paper, 2 as in (E)PyMARL."""
    hypernet_embed: int = 64
    """Hidden width of two-layer hypernetworks."""
    state_norm: bool = True
    """Layer-normalise the state the hypernetworks read (false: the paper's raw state; see ``marlkit.nn.mixers``)."""
    weight_gain: float = 0.2
    """Initial scale of the hypernetwork layers that output the mixing weights (1: the paper's; smaller starts the
    mixer nearer a plain sum)."""
    residual: bool = False
    """Add the agents' plain sum to the mixer's output, ``Q_tot = sum_i Q_i + mixer(q, s)``: the mixer learns the
    departure from VDN (see ``marlkit.nn.mixers``)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.mixing_embed >= 1, "algo.mixing_embed", "an integer >= 1", self.mixing_embed)
        check(self.hypernet_layers in (1, 2), "algo.hypernet_layers", "1 or 2", self.hypernet_layers)
        check(self.hypernet_embed >= 1, "algo.hypernet_embed", "an integer >= 1", self.hypernet_embed)
        check(self.weight_gain > 0, "algo.weight_gain", "a positive number", self.weight_gain)


class QMIX(DQN):
    """IQL whose agents of a group are trained through QMIX's state-conditioned monotonic mixer."""

    capabilities = Capabilities("transitions", uses_state=True, losses=("loss",))  # the mixer reads state()
    config: QMIXConfig

    def make_mixer(self, n_agents: int, state_dim: int) -> nn.Module:
        cfg = self.config
        return QMixer(
            n_agents,
            state_dim,
            cfg.mixing_embed,
            cfg.hypernet_layers,
            cfg.hypernet_embed,
            cfg.state_norm,
            cfg.weight_gain,
            cfg.residual,
        )
