"""IA2C and MAA2C: synchronous advantage actor-critic for teams of agents.

Papers: Mnih et al. 2016, "Asynchronous Methods for Deep Reinforcement Learning" (A3C, and its synchronous
variant A2C: n-step returns, an entropy bonus, one gradient step per rollout, https://arxiv.org/abs/1602.01783);
Schulman et al. 2016, "High-Dimensional Continuous Control Using Generalized Advantage Estimation" (GAE,
https://arxiv.org/abs/1506.02438); Papoudakis et al. 2021, "Benchmarking Multi-Agent Deep Reinforcement Learning
Algorithms in Cooperative Tasks" (IA2C and MAA2C, https://arxiv.org/abs/2006.07869).

One file, one flag, as for IPPO/MAPPO: IA2C's critic sees each agent's own observation; MAA2C's
(``centralised_critic=True``) sees the global ``state()`` plus the agent's id. Each update takes the rollout just
collected (``rollout_steps`` steps of every copy), computes advantages — n-step returns minus the value
(``advantage="nstep"``, A3C's estimator) or GAE (``advantage="gae"``) — and takes exactly *one* gradient step on

    loss = -mean(log pi(a|o) * A) + value_coef * mean(0.5 * (V(x) - G)^2) - entropy_coef * mean(H(pi(.|o)))

That single step on fresh data is what makes it A2C rather than PPO (which reuses the batch for several epochs
and therefore has to clip its ratio). Invalid actions are masked out of the policy; dead agents (the ``active``
mask) are left out of every mean. Value normalisation (running statistics of the targets) is optional.

The networks, acting and checkpoints are PPO's (``policy_nets.ActorCriticTeam``): per group an actor and a
critic, shared by its agents with a one-hot id (or one per agent with ``share_parameters=False``), acting batched
in NumPy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from marlkit.algorithms.policy_nets import ActorCriticTeam
from marlkit.core.config import check
from marlkit.data.rollout import Rollout
from marlkit.envs.base import MultiAgentEnv
from marlkit.ops import gae, nstep_returns


@dataclass(frozen=True)
class A2CConfig:
    """Hyper-parameters of IA2C/MAA2C: A2C's usual defaults (5-step returns, entropy 0.01, value weight 0.5,
    gradient clip 0.5) with γ 0.95 and advantage normalisation as in PPO here; not tuned (the first settings tried
    passed tests/learning/test_actor_critic_learns.py)."""

    centralised_critic: bool = False
    """MAA2C when true: the critic reads the global state() plus the agent's id; IA2C reads the agent's observation."""
    rollout_steps: int = 5
    """Steps of every copy collected before each (single) gradient step; A3C's t_max."""
    advantage: Literal["nstep", "gae"] = "nstep"
    """Advantage estimator: n-step returns minus V (A3C) or generalised advantage estimation."""
    n_step: int = 5
    """Rewards summed before bootstrapping for ``advantage="nstep"``; windows also stop at the end of the rollout."""
    gae_lambda: float = 0.95
    """GAE λ for ``advantage="gae"``."""
    lr: float = 7e-4
    """Adam learning rate of actor and critic."""
    anneal_lr: bool = False
    """Decay the learning rate linearly to 0 over the run's budget."""
    gamma: float = 0.95
    """Discount factor (0.95 as PPO's default here: MPE episodes last 25 steps)."""
    entropy_coef: float = 0.01
    """Weight of the entropy bonus."""
    value_coef: float = 0.5
    """Weight of the value loss."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of actor and critic."""
    activation: Literal["tanh", "relu"] = "tanh"
    """Hidden activation."""
    share_parameters: bool = True
    """Agents of a group share one network; false gives each agent its own."""
    agent_id: bool = True
    """Append a one-hot agent index to the inputs of shared networks."""
    value_norm: bool = False
    """Normalise value targets with running statistics (MAPPO's ValueNorm)."""
    advantage_norm: bool = True
    """Normalise advantages over each batch."""
    init_log_std: float = -0.5
    """Initial log standard deviation of Gaussian policies (continuous actions)."""

    def __post_init__(self) -> None:
        for name in ("rollout_steps", "n_step"):
            check(getattr(self, name) >= 1, f"algo.{name}", "an integer >= 1", getattr(self, name))
        check(self.advantage in ("nstep", "gae"), "algo.advantage", "nstep or gae", self.advantage)
        check(self.lr > 0, "algo.lr", "a positive number", self.lr)
        check(0 <= self.gamma <= 1, "algo.gamma", "a number in [0, 1]", self.gamma)
        check(0 <= self.gae_lambda <= 1, "algo.gae_lambda", "a number in [0, 1]", self.gae_lambda)
        check(self.entropy_coef >= 0, "algo.entropy_coef", "a number >= 0", self.entropy_coef)
        check(self.value_coef >= 0, "algo.value_coef", "a number >= 0", self.value_coef)
        check(self.max_grad_norm > 0, "algo.max_grad_norm", "a positive number", self.max_grad_norm)
        check(all(h >= 1 for h in self.hidden), "algo.hidden", "positive layer sizes", self.hidden)
        check(self.activation in ("tanh", "relu"), "algo.activation", "tanh or relu", self.activation)


class A2C(ActorCriticTeam):
    """IA2C (``centralised_critic=False``) or MAA2C (``True``) for every group of an environment."""

    def __init__(self, env: MultiAgentEnv, config: A2CConfig, seed: int = 0) -> None:
        super().__init__(env, config, seed)
        # Only the unclipped Gaussian sample is stored (its log-probability is what the loss needs); values and
        # log-probabilities are recomputed in the update, where the gradient step needs them anyway.
        self.extras_spec = {g: {} if net.discrete else {"raw_action": (net.act_dim,)} for g, net in self.nets.items()}
        self.optimizer = torch.optim.Adam(self.parameters(), lr=config.lr, eps=1e-5)

    # ----------------------------------------------------------------------------------------------- learning
    def update(self, batch: Rollout) -> dict[str, float]:
        grads, metrics = self.gradients(batch)
        return {**metrics, **self.apply_gradients(grads)}

    def gradients(self, batch: Rollout) -> tuple[torch.Tensor, dict[str, float]]:
        """The gradient of the loss on ``batch`` w.r.t. ``parameters()``, flattened into one vector (unclipped;
        zeros for a parameter the loss does not reach), and the loss statistics; the weights do not change. What a
        parameter-server worker sends (``marlkit.distributed.parameter_server``)."""
        loss = torch.zeros(())
        stats = []
        for g in self.nets:
            group_loss, group_stats = self._loss(g, batch)
            loss = loss + group_loss
            stats.append(group_stats)
        loss = self.with_loss_terms("loss", loss, batch)
        self.optimizer.zero_grad()
        loss.backward()
        flat = torch.cat(
            [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in self.parameters()]
        )
        actor, critic, entropy = torch.stack(stats).mean(0).tolist()
        return flat, {"loss/actor": actor, "loss/critic": critic, "loss/entropy": entropy}

    def apply_gradients(self, grads: torch.Tensor) -> dict[str, float]:
        """One optimiser step with ``grads`` (as ``gradients`` returns them: one flat vector in ``parameters()``
        order), clipped to ``max_grad_norm`` first; returns the norm before clipping."""
        params = list(self.parameters())
        offset = 0
        for p in params:
            n = p.numel()
            p.grad = grads[offset : offset + n].view_as(p).clone()
            offset += n
        if offset != grads.numel():
            raise ValueError(f"{grads.numel()} gradient entries for {offset} parameters")
        grad_norm = nn.utils.clip_grad_norm_(params, self.config.max_grad_norm)
        self.optimizer.step()
        return {"loss/grad_norm": float(grad_norm)}

    @torch.no_grad()
    def _targets(self, g: str, batch: Rollout, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Advantages and (normalised, if value_norm) value targets of one group, ``(T, E, n)``."""
        cfg, net, norm = self.config, self.nets[g], self.norms[g]
        next_value = net.value(self.critic_input(g, batch.next_obs[g], batch.next_state))
        if cfg.value_norm:
            value, next_value = norm.denormalize(value), norm.denormalize(next_value)
        rewards, term, trunc = batch.rewards[g], batch.terminated[g], batch.truncated[g]
        if cfg.advantage == "gae":
            adv, returns = gae(rewards, value, next_value, term, trunc, cfg.gamma, cfg.gae_lambda)
        else:
            returns = nstep_returns(rewards, next_value, term, trunc, cfg.gamma, cfg.n_step)
            adv = returns - value
        active = batch.active[g]
        if cfg.value_norm:
            norm.update(returns[active])
            returns = norm.normalize(returns)
        if cfg.advantage_norm:
            a = adv[active]
            adv = (adv - a.mean()) / (a.std() + 1e-8)
        return adv, returns

    def _loss(self, g: str, batch: Rollout) -> tuple[torch.Tensor, torch.Tensor]:
        cfg, net = self.config, self.nets[g]
        value = net.value(self.critic_input(g, batch.obs[g], batch.state))  # (T, E, n)
        adv, returns = self._targets(g, batch, value.detach())
        mask = batch.action_mask[g] if batch.action_mask is not None and g in batch.action_mask else None
        params = net.dist_params(batch.obs[g], mask)
        actions = batch.actions[g] if net.discrete else batch.extras[g]["raw_action"]
        logp, entropy = net.log_prob_entropy(params, actions)
        active = batch.active[g].float()
        count = active.sum().clamp(min=1.0)
        actor_loss = -(logp * adv * active).sum() / count
        critic_loss = (0.5 * (value - returns) ** 2 * active).sum() / count
        entropy_mean = (entropy * active).sum() / count
        loss = actor_loss + cfg.value_coef * critic_loss - cfg.entropy_coef * entropy_mean
        return loss, torch.stack([actor_loss, critic_loss, entropy_mean]).detach()
