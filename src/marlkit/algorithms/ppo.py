"""IPPO and MAPPO: proximal policy optimisation for teams of agents.

Papers: Schulman et al. 2017, "Proximal Policy Optimization Algorithms" (https://arxiv.org/abs/1707.06347);
de Witt et al. 2020, "Is Independent Learning All You Need in the StarCraft Multi-Agent Challenge?" (IPPO,
https://arxiv.org/abs/2011.09533); Yu et al. 2022, "The Surprising Effectiveness of PPO in Cooperative Multi-Agent
Games" (MAPPO, https://arxiv.org/abs/2103.01955).

One file, one flag: IPPO's critic sees each agent's own observation; MAPPO's (``centralised_critic=True``) sees the
global ``state()``. Following the MAPPO paper we use value normalisation (§3 "ValueNorm"), a clipped value loss
with a Huber loss, advantage normalisation, an entropy bonus, gradient clipping, agent-id one-hot inputs with
parameter sharing inside each group, and several epochs over each batch. Invalid actions are masked out of the
policy (the paper's "death masking" for dead agents is the ``active`` mask on every loss).

Each group (agents sharing spaces) has its own actor and critic; agents in a group share parameters by default
or have their own (``share_parameters=False``), evaluated in one batched op either way. Building them, acting (in
NumPy) and checkpoints are shared with A2C (``policy_nets.ActorCriticTeam``); this file is how PPO learns, its loss
a pure function of tensors (``marlkit.ops.ppo_loss``) so each term is unit-tested on numbers worked out by hand;
categorical policies train through the same loss written as one autograd node (``marlkit.ops.categorical_ppo_loss``,
tested equal to it), a fraction of the small ops on the networks of an MPE update.

Several learners (``experiment.learners``, ``marlkit.distributed.learner_group``) run this same update, each on an
equal share of the batch's env copies, through two hooks that are no-ops for one learner: ``reduce_gradients``
averages every minibatch's gradients over the learners between ``backward`` and clipping, and ``sum_over_learners``
sums the statistics of advantage and value normalisation over them (global mean and std). Every learner draws the
same permutation of its share's samples, so a minibatch of the group is the same positions of every share: one
learner with ``minibatch_shares = N`` draws exactly those minibatches from the whole batch and takes the same steps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from marlkit.algorithms.policy_nets import ActorCriticTeam
from marlkit.core.config import check
from marlkit.data.rollout import Rollout
from marlkit.envs.base import MultiAgentEnv
from marlkit.ops import categorical_ppo_loss, clip_grad_norm, gae, ppo_loss


@dataclass(frozen=True)
class PPOConfig:
    """Hyper-parameters of IPPO/MAPPO; defaults follow the MAPPO paper's MPE settings (its Table 13) except where a
    field says otherwise (tuned on spread-v0 with a 2M env-step budget; see benchmarks/results/README.md)."""

    centralised_critic: bool = False
    """MAPPO when true: the critic reads the global state() plus the agent's id; IPPO reads the agent's observation."""
    rollout_steps: int = 25
    """Steps of every copy collected before each update."""
    epochs: int = 10
    """Passes over each batch."""
    minibatches: int = 4
    """Minibatches per pass (the paper uses 1 for MPE; 4 reached a better return on spread-v0 within 2M steps)."""
    lr: float = 7e-4
    """Adam learning rate of actor and critic."""
    anneal_lr: bool = False
    """Decay the learning rate linearly to 0 over the run's budget (as CleanRL and JaxMARL do)."""
    gamma: float = 0.95
    """Discount factor. 0.95 (XuanCe's MPE setting) rather than the MAPPO paper's 0.99: on spread-v0, whose
    episodes last 25 steps, MAPPO reached -9.5 instead of -12.7 per agent at 2M env-steps (3 seeds), and on
    pursuit-v0 it collided less (benchmarks/results/README.md)."""
    gae_lambda: float = 0.95
    """GAE λ."""
    clip: float = 0.2
    """PPO ratio clipping ε."""
    value_clip: float = 0.2
    """Clip of the value update around the old prediction (in normalised units); 0 disables."""
    entropy_coef: float = 0.005
    """Weight of the entropy bonus (0.005 did slightly better than the paper's 0.01 on spread-v0)."""
    value_coef: float = 1.0
    """Weight of the value loss."""
    huber_delta: float = 10.0
    """Huber loss threshold for the value loss; 0 uses the squared error."""
    max_grad_norm: float = 10.0
    """Global gradient-norm clip."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of actor and critic."""
    activation: Literal["tanh", "relu"] = "tanh"
    """Hidden activation. tanh learned spread-v0 clearly faster than ReLU in our runs (-14.3 vs -16.9 at 1M
    env-steps), though ReLU is far cheaper on a CPU."""
    share_parameters: bool = True
    """Agents of a group share one network; false gives each agent its own."""
    agent_id: bool = True
    """Append a one-hot agent index to the inputs of shared networks."""
    value_norm: bool = True
    """Normalise value targets with running statistics (ValueNorm)."""
    advantage_norm: bool = True
    """Normalise advantages over each batch."""
    init_log_std: float = -0.5
    """Initial log standard deviation of Gaussian policies (continuous actions)."""

    def __post_init__(self) -> None:
        for name in ("rollout_steps", "epochs", "minibatches"):
            check(getattr(self, name) >= 1, f"algo.{name}", "an integer >= 1", getattr(self, name))
        check(self.lr > 0, "algo.lr", "a positive number", self.lr)
        check(0 <= self.gamma <= 1, "algo.gamma", "a number in [0, 1]", self.gamma)
        check(0 <= self.gae_lambda <= 1, "algo.gae_lambda", "a number in [0, 1]", self.gae_lambda)
        check(self.clip > 0, "algo.clip", "a positive number", self.clip)
        check(all(h >= 1 for h in self.hidden), "algo.hidden", "positive layer sizes", self.hidden)


_LOSS_STATS = ("loss/policy", "loss/value", "loss/entropy", "loss/approx_kl", "loss/clip_fraction")


class PPO(ActorCriticTeam):
    """IPPO (``centralised_critic=False``) or MAPPO (``True``) for every group of an environment."""

    def __init__(self, env: MultiAgentEnv, config: PPOConfig, seed: int = 0) -> None:
        super().__init__(env, config, seed)
        # What acting stores besides actions. Not the values: the update computes them for all steps in one batch
        # (the parameters have not changed since collection, so they are the same numbers, at a fraction of the cost).
        self.extras_spec = {
            g: {"logp": ()} if net.discrete else {"logp": (), "raw_action": (net.act_dim,)}
            for g, net in self.nets.items()
        }
        self.optimizer = torch.optim.Adam(self.parameters(), lr=config.lr, eps=1e-5, fused=True)
        self.generator = torch.Generator().manual_seed(seed)  # minibatch shuffling
        #: Categorical policies' loss as one node with a written-out backward (the same gradients as autograd
        #: through ``ppo_loss``, to float32 rounding, in a fraction of the ops); false runs ``ppo_loss``.
        self.fused_loss = True
        #: Learners of a group (module docstring): gradients averaged in place before clipping, and sums of
        #: normalisation statistics over the learners; ``None`` for one learner.
        self.reduce_gradients: Callable[[Sequence[torch.Tensor]], None] | None = None
        self.sum_over_learners: Callable[[torch.Tensor], torch.Tensor] | None = None
        #: Draw each minibatch as the same positions of this many equal shares of the env copies (what a group of
        #: that many learners does); 1 draws them from the whole batch.
        self.minibatch_shares = 1

    # ----------------------------------------------------------------------------------------------- learning
    def update(self, batch: Rollout) -> dict[str, float]:
        cfg = self.config
        samples = {g: self._prepare(g, batch) for g in self.nets}
        stats: list[torch.Tensor] = []  # one row of loss statistics per group and minibatch, synced once at the end
        grad_norms: list[torch.Tensor] = []
        params = [p for p in self.parameters() if p.requires_grad]
        copies, shares = next(iter(batch.rewards.values())).shape[1], self.minibatch_shares
        for _ in range(cfg.epochs):
            # Shuffle once per epoch (one gather per tensor); the minibatches are then contiguous slices of it.
            shuffled = {}
            for g, s in samples.items():
                perm = self._perm(s["adv"].shape[0], copies)
                shuffled[g] = {k: v.index_select(0, perm) for k, v in s.items()}  # v[perm], ~6x cheaper
            for m in range(cfg.minibatches):
                loss = torch.zeros(())
                for g, s in shuffled.items():
                    n = s["adv"].shape[0] // shares  # positions in a share; each minibatch takes its slice of all
                    part = slice(shares * (m * n // cfg.minibatches), shares * ((m + 1) * n // cfg.minibatches))
                    group_loss, group_stats = self._loss(g, {k: v[part] for k, v in s.items()})
                    loss = loss + group_loss
                    stats.append(group_stats)
                loss = self.with_loss_terms("loss", loss, batch)
                self.optimizer.zero_grad()
                loss.backward()
                if self.reduce_gradients is not None:
                    self.reduce_gradients(params)  # the mean over the learners, before clipping
                grad_norms.append(clip_grad_norm(params, cfg.max_grad_norm))
                self.optimizer.step()
        means = torch.stack(stats).mean(0).tolist()
        return {**dict(zip(_LOSS_STATS, means)), "loss/grad_norm": float(torch.stack(grad_norms).mean())}

    def _perm(self, n: int, copies: int) -> torch.Tensor:
        """A random order of the ``n`` samples (one per step and env copy, step-major). With ``minibatch_shares``
        ``S > 1``: one permutation of a share's positions, each position followed by the same one in every share, so
        a slice of ``S * k`` of it is ``k`` positions of every share (the env copies split in ``S`` equal blocks)."""
        shares = self.minibatch_shares
        perm = torch.randperm(n // shares, generator=self.generator)
        if shares == 1:
            return perm
        size = copies // shares  # copies per share: share position p is step p // size, copy p % size of the share
        first = (perm // size) * copies + perm % size
        return (first[:, None] + torch.arange(shares) * size).reshape(-1)

    def _mean_std(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean and standard deviation (n - 1) of ``x``, over every learner's share with ``sum_over_learners``."""
        if self.sum_over_learners is None:
            return x.mean(), x.std()
        total, count = self.sum_over_learners(torch.stack([x.sum(), torch.tensor(float(x.numel()))]))
        mean = total / count
        return mean, (self.sum_over_learners(((x - mean) ** 2).sum()) / (count - 1)).sqrt()

    def _update_norm(self, g: str, x: torch.Tensor) -> None:
        """Group ``g``'s value normalisation updated with the targets ``x`` (of every learner's share)."""
        if self.sum_over_learners is None:
            self.norms[g].update(x)
        else:
            total, total_sq, count = self.sum_over_learners(
                torch.stack([x.sum(), (x * x).sum(), torch.tensor(float(x.numel()))])
            )
            self.norms[g].update_moments(total / count, total_sq / count)

    @torch.no_grad()
    def _prepare(self, g: str, batch: Rollout) -> dict[str, torch.Tensor]:
        """Advantages and value targets of one group, flattened to samples of single agent-steps."""
        cfg, net, norm = self.config, self.nets[g], self.norms[g]
        critic_in = self.critic_input(g, batch.obs[g], batch.state)
        value_old = net.value(critic_in)  # what the critic said while collecting: its parameters are unchanged
        next_value = net.value(self.critic_input(g, batch.next_obs[g], batch.next_state))
        if cfg.value_norm:
            value_old_raw, next_value = norm.denormalize(value_old), norm.denormalize(next_value)
        else:
            value_old_raw = value_old
        adv, returns = gae(
            batch.rewards[g],
            value_old_raw,
            next_value,
            batch.terminated[g],
            batch.truncated[g],
            cfg.gamma,
            cfg.gae_lambda,
        )
        if cfg.value_norm:
            self._update_norm(g, returns[batch.active[g]])
            returns = norm.normalize(returns)
        active = batch.active[g]
        if cfg.advantage_norm:
            mean, std = self._mean_std(adv[active])
            adv = (adv - mean) / (std + 1e-8)
        actions = batch.actions[g] if net.discrete else batch.extras[g]["raw_action"]
        s = {
            "obs": batch.obs[g],
            "critic_in": critic_in,
            "actions": actions,
            "logp": batch.extras[g]["logp"],
            "adv": adv,
            "returns": returns,
            "value_old": value_old,
            "active": active.float(),
        }
        if batch.action_mask is not None and g in batch.action_mask:
            s["mask"] = batch.action_mask[g]
        # One sample per (step, copy); the agents of a copy stay together so the batched per-agent networks apply.
        return {k: v.reshape(-1, *v.shape[2:]) for k, v in s.items()}

    def _loss(self, g: str, s: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        cfg, net = self.config, self.nets[g]
        params = net.dist_params(s["obs"], s.get("mask"))
        value = net.value(s["critic_in"])
        if net.discrete and self.fused_loss:  # the same loss as one autograd node (ops.categorical_ppo_loss)
            return categorical_ppo_loss(
                params,
                s["actions"],
                s["logp"],
                s["adv"],
                value,
                s["value_old"],
                s["returns"],
                s["active"],
                clip=cfg.clip,
                value_clip=cfg.value_clip,
                huber_delta=cfg.huber_delta,
                value_coef=cfg.value_coef,
                entropy_coef=cfg.entropy_coef,
            )
        logp, entropy = net.log_prob_entropy(params, s["actions"])
        terms = ppo_loss(
            logp,
            s["logp"],
            s["adv"],
            entropy,
            value,
            s["value_old"],
            s["returns"],
            s["active"],
            clip=cfg.clip,
            value_clip=cfg.value_clip,
            huber_delta=cfg.huber_delta,
            value_coef=cfg.value_coef,
            entropy_coef=cfg.entropy_coef,
        )
        with torch.no_grad():
            stats = torch.stack(
                [terms.policy, terms.value, terms.entropy, terms.approx_kl, terms.clip_fraction]
            )  # in _LOSS_STATS order
        return terms.total, stats

    # -------------------------------------------------------------------------------------------- checkpoints
    def state(self) -> dict[str, Any]:
        return {**super().state(), "generator": self.generator.get_state()}

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self.generator.set_state(state["generator"])
