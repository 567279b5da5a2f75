"""HAPPO: heterogeneous-agent PPO, agents updated one after another with a corrected advantage.

Paper: Kuba et al. 2022, "Trust Region Policy Optimisation in Multi-Agent Reinforcement Learning" (ICLR,
https://arxiv.org/abs/2109.11251); the sequential scheme is analysed further in Zhong et al. 2024,
"Heterogeneous-Agent Reinforcement Learning" (JMLR, https://arxiv.org/abs/2304.09870).

Every agent has its own actor (no parameter sharing: ``share_parameters=False``, each agent's rows of its group's
batched networks and its own log-std) and the critics read the global ``state()``. Each update:

1. advantages ``A`` from the centralised values by GAE, normalised, as in MAPPO (``PPO._prepare``);
2. a permutation of all agents drawn from the learner's seeded generator (``update_order`` records it);
3. with ``M = 1`` for every sample (step and copy), for each agent ``i`` in that order: ``epochs`` passes of PPO's
   clipped surrogate on ``i``'s own samples with the advantage ``M * A_i``, then
   ``M <- M * pi_i_new(a_i|o_i) / pi_i_old(a_i|o_i)`` on the whole batch (``correction_factor``). So an agent improves
   the joint advantage given what the agents before it already changed (the paper's multi-agent advantage
   decomposition); since ``M > 0``, ``M * min(r A, clip(r) A) = min(r (M A), clip(r) (M A))`` and PPO's loss
   (``marlkit.ops.ppo_loss``) applies unchanged to the corrected advantage;
4. the critics: ``critic_epochs`` passes of MAPPO's clipped Huber value loss.

Each agent has its own Adam over its group's actor tensors: the other agents' rows get no gradient from its loss,
so their Adam moments stay zero and their parameters do not move, which makes it exactly a per-agent optimiser.
Everything else (networks, acting, value normalisation, snapshots) is PPO's (``ppo.py``, ``policy_nets.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from marlkit.algorithms.ppo import PPO, PPOConfig
from marlkit.core import Capabilities
from marlkit.core.config import check
from marlkit.data.rollout import Rollout
from marlkit.envs.base import MultiAgentEnv
from marlkit.ops import ppo_loss


@dataclass(frozen=True)
class HAPPOConfig(PPOConfig):
    """Hyper-parameters of HAPPO: PPO's (``PPOConfig``), with a centralised critic and one actor per agent."""

    centralised_critic: bool = True
    """The critic reads the global state() (HAPPO's centralised value); required."""
    share_parameters: bool = False
    """Each agent has its own actor (HAPPO's heterogeneous agents); required."""
    critic_epochs: int = 0
    """Passes of the critic over each batch after the actors' updates; 0 uses ``epochs``."""
    fixed_order: bool = False
    """Update the agents in their env order every time instead of a random permutation (an ablation)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.critic_epochs >= 0, "algo.critic_epochs", "an integer >= 0 (0: epochs)", self.critic_epochs)


def correction_factor(
    factor: torch.Tensor, new_logp: torch.Tensor, old_logp: torch.Tensor, active: torch.Tensor
) -> torch.Tensor:
    """HAPPO's ``M`` after one more agent's update: ``factor * pi_new(a|o) / pi_old(a|o)`` per sample, where the agent
    is active (an inactive agent's actions change nothing: its ratio counts as 1). No gradient flows through it."""
    return (factor * torch.exp((new_logp - old_logp) * active)).detach()


_STATS = ("loss/policy", "loss/entropy", "loss/approx_kl", "loss/clip_fraction", "loss/value", "loss/factor_spread")


class HAPPO(PPO):
    """HAPPO for every group of an environment (discrete or continuous actions); see the module docstring."""

    def __init__(self, env: MultiAgentEnv, config: HAPPOConfig, seed: int = 0) -> None:
        check(config.centralised_critic, "algo.centralised_critic", "true for HAPPO", config.centralised_critic)
        check(not config.share_parameters, "algo.share_parameters", "false for HAPPO", config.share_parameters)
        super().__init__(env, config, seed)
        # Extra loss terms go to each agent's actor step ("actor") or to the critics' ("critic").
        self.capabilities = Capabilities("rollout", uses_state=True, losses=("actor", "critic"))
        #: Every agent as (group, index in the group), in env order; ``update_order`` permutes these.
        self.agent_slots = [(g, i) for g, ids in env.groups.items() for i in range(len(ids))]
        self.agent_names = [a for ids in env.groups.values() for a in ids]
        self.actor_optimizers = [
            torch.optim.Adam(self._actor_parameters(g), lr=config.lr, eps=1e-5) for g, _ in self.agent_slots
        ]
        # PPO's optimizer (self.optimizer) trains the critics here; checkpoints and lr annealing go through it too.
        critics = [p for net in self.nets.values() for p in net.critic.parameters()]
        self.optimizer = torch.optim.Adam(critics, lr=config.lr, eps=1e-5)
        #: The agents in the order of the latest update (agent ids).
        self.update_order: tuple[str, ...] = ()

    def _actor_parameters(self, g: str) -> list[torch.Tensor]:
        net = self.nets[g]
        return [*net.actor.parameters(), *([] if net.discrete else [net.log_std])]

    # ----------------------------------------------------------------------------------------------- learning
    def update(self, batch: Rollout) -> dict[str, float]:
        cfg = self.config
        samples = {g: self._prepare(g, batch) for g in self.nets}
        n = next(iter(samples.values()))["adv"].shape[0]  # samples: one per (step, copy), shared by every agent
        if cfg.fixed_order:
            order = list(range(len(self.agent_slots)))
        else:
            order = torch.randperm(len(self.agent_slots), generator=self.generator).tolist()
        self.update_order = tuple(self.agent_names[k] for k in order)
        copies, shares = next(iter(batch.rewards.values())).shape[1], self.minibatch_shares
        size = n // shares  # positions in a share; a minibatch takes the same slice of every share (PPO._perm)

        def minibatch(perm: torch.Tensor, m: int) -> torch.Tensor:
            return perm[shares * (m * size // cfg.minibatches) : shares * ((m + 1) * size // cfg.minibatches)]

        factor = torch.ones(n)
        stats: list[torch.Tensor] = []
        for k in order:
            g, i = self.agent_slots[k]
            s = samples[g]
            for _ in range(cfg.epochs):
                perm = self._perm(n, copies)
                for m in range(cfg.minibatches):
                    part = minibatch(perm, m)
                    stats.append(self._actor_step(k, {key: v[part] for key, v in s.items()}, factor[part], batch))
            with torch.no_grad():
                new_logp = self._agent_logp(g, i, s)
            factor = correction_factor(factor, new_logp, s["logp"][:, i], s["active"][:, i])
        value_stats, critic_norms = [], []
        for _ in range(cfg.critic_epochs or cfg.epochs):
            perms = {g: self._perm(n, copies) for g in samples}
            for m in range(cfg.minibatches):
                loss = torch.zeros(())
                for g, s in samples.items():
                    part = minibatch(perms[g], m)
                    value_loss = self._value_loss(g, {key: v[part] for key, v in s.items()})
                    loss = loss + value_loss
                    value_stats.append(value_loss.detach())
                self.optimizer.zero_grad()
                self.with_loss_terms("critic", loss, batch).backward()
                critic_norms.append(self._clip(self.optimizer))
                self.optimizer.step()
        policy, entropy, kl, clip_fraction, actor_norm = torch.stack(stats).mean(0).tolist()
        return {
            "loss/policy": policy,
            "loss/entropy": entropy,
            "loss/approx_kl": kl,
            "loss/clip_fraction": clip_fraction,
            "loss/value": float(torch.stack(value_stats).mean()),
            "loss/grad_norm": actor_norm,  # of the actors' steps, before clipping
            "loss/critic_grad_norm": float(torch.stack(critic_norms).mean()),
            "loss/factor_spread": float(self._mean_std(factor)[1]) if n > 1 else 0.0,  # over every learner
        }

    def _agent_logp(self, g: str, i: int, s: dict[str, torch.Tensor]) -> torch.Tensor:
        """Log-probability of agent ``i`` of group ``g`` for its stored actions, under its current policy."""
        net = self.nets[g]
        params = net.dist_params(s["obs"], s.get("mask"))
        logp, _ = net.log_prob_entropy(params, s["actions"], entropy=False)
        return logp[:, i]

    def _actor_step(self, k: int, s: dict[str, torch.Tensor], factor: torch.Tensor, batch: Rollout) -> torch.Tensor:
        """One gradient step of agent ``k``'s actor on minibatch ``s``, its advantage corrected by ``factor``."""
        cfg = self.config
        g, i = self.agent_slots[k]
        net = self.nets[g]
        params = net.dist_params(s["obs"], s.get("mask"))
        logp, entropy = net.log_prob_entropy(params, s["actions"])
        zero = torch.zeros_like(factor)
        terms = ppo_loss(
            logp[:, i],
            s["logp"][:, i],
            factor * s["adv"][:, i],
            entropy[:, i],
            zero,  # no value term here: the critics learn after the actors
            zero,
            zero,
            s["active"][:, i],
            clip=cfg.clip,
            value_clip=0.0,
            huber_delta=0.0,
            value_coef=0.0,
            entropy_coef=cfg.entropy_coef,
        )
        optimizer = self.actor_optimizers[k]
        optimizer.zero_grad()
        self.with_loss_terms("actor", terms.total, batch).backward()
        norm = self._clip(optimizer)
        optimizer.step()
        return torch.stack([terms.policy, terms.entropy, terms.approx_kl, terms.clip_fraction, norm]).detach()

    def _clip(self, optimizer: torch.optim.Optimizer) -> torch.Tensor:
        """Clip the gradients of ``optimizer``'s parameters (averaged over a group's learners first); their norm
        before clipping."""
        params = optimizer.param_groups[0]["params"]
        if self.reduce_gradients is not None:
            self.reduce_gradients(params)
        return nn.utils.clip_grad_norm_(params, self.config.max_grad_norm)

    def _value_loss(self, g: str, s: dict[str, torch.Tensor]) -> torch.Tensor:
        """MAPPO's clipped (Huber) value loss of group ``g``'s critics on minibatch ``s``."""
        cfg = self.config
        value = self.nets[g].value(s["critic_in"])
        zero = torch.zeros_like(value)
        terms = ppo_loss(
            zero,  # no policy term: log-ratio 0 and zero advantages
            zero,
            zero,
            zero,
            value,
            s["value_old"],
            s["returns"],
            s["active"],
            clip=cfg.clip,
            value_clip=cfg.value_clip,
            huber_delta=cfg.huber_delta,
            value_coef=cfg.value_coef,
            entropy_coef=0.0,
        )
        return terms.total

    # -------------------------------------------------------------------------------------------- checkpoints
    def set_progress(self, progress: Any) -> None:
        super().set_progress(progress)  # anneals the critic's learning rate
        lr = self.optimizer.param_groups[0]["lr"]
        for optimizer in self.actor_optimizers:
            for group in optimizer.param_groups:
                group["lr"] = lr

    def state(self) -> dict[str, Any]:
        return {**super().state(), "actor_optimizers": [o.state_dict() for o in self.actor_optimizers]}

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        for optimizer, saved in zip(self.actor_optimizers, state["actor_optimizers"]):
            optimizer.load_state_dict(saved)
