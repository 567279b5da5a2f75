"""Continual-learning strategies: each a small object the continual trainer calls around every stage.

A strategy changes a learner only through the contracts: extra terms through the loss-term hook
(``learner.add_loss_term``), the learner's parameters (for torch learners, ``nn.Module``), ``state()`` /
``load_state()``, and — for multi-task training — the batch source. The trainer calls::

    strategy.attach(learner, ctx)          # once (again after a resume): add loss terms, check what is needed
    strategy.before_task(learner, t)       # before stage t
    ... the stage trains, calling strategy.during_task(learner, t, fraction) after every update (fraction: of
    the stage's env-steps done); evaluations of task j run inside ``with strategy.acting_for(learner, j)``
    strategy.after_task(learner, t)        # after stage t: anchors, Fisher, stored samples, pruning

Strategies (``STRATEGIES``; ``make_strategy("ewc", lam=100)``; ``"heads+replay"`` composes several):

* ``finetune`` — nothing: the lower bound.
* ``l2`` — ``lam/2 * |θ - θ*|²`` towards the weights at the end of the previous task.
* ``ewc`` — Kirkpatrick et al. 2017: ``lam/2 * Σ_k F_k (θ - θ*_k)²`` over every earlier task ``k``, with ``F_k`` the
  diagonal Fisher of the learner's own policy (squared gradients of ``log π(a|s)``, ``a`` sampled from it, over
  observations it visits on task ``k``). ``online-ewc`` — Schwarz et al. 2018: one running Fisher
  ``F ← γ F + F_t`` anchored at the latest weights.
* ``replay`` — behaviour cloning of past tasks (ClonEx, Wołczyk et al. 2022): after each task, store observations
  the policy visits and its action distributions there; later, ``lam * KL(stored ‖ current)`` on a sample of them.
* ``packnet`` — Mallya & Lazebnik 2018, within each task's budget: train the free weights for the first
  ``1 - retrain`` of the stage, then prune — keep the largest ``1 / (tasks left)`` of the free weights for the task,
  release the rest (set to 0) — and retrain only the kept ones for the last ``retrain`` of it. Weights of earlier
  tasks get no gradient (an optimiser's momentum may still nudge them, and the released ones: both are put back
  after every update), and task ``j`` is evaluated with only the weights of tasks up to ``j``.
* ``heads`` — a separate output layer of actor and critic per task, the rest shared (needs the task's identity when
  acting, which the trainer gives).
* ``reset`` — re-initialise the learner every ``every`` tasks (restores plasticity, forgets everything).
* ``multitask`` — every task at once (batches drawn from the tasks in turn): the reference for final performance.

Strategies that need a policy's action distribution (EWC's Fisher, replay) support learners with discrete actions
whose networks expose it: PPO/A2C (their actors' logits) and the DQN family (feed-forward Q-values as logits); any
other learner, or one without the loss-term hook, gets a ``ConfigError`` saying which strategy needs what.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import torch
import torch.nn.functional as F

from marlkit.core.config import ConfigError
from marlkit.core.errors import did_you_mean


@dataclass
class StrategyContext:
    """What the trainer gives a strategy: the number of tasks, a sampler of visited observations, a fresh learner
    state (for resets) and the seed."""

    num_tasks: int
    observations: Callable[[Any, int, int], dict[str, tuple[torch.Tensor, torch.Tensor | None]]]
    """``observations(learner, task, n)``: per group, ``(obs (N, n_agents, d), mask (N, n_agents, A) or None)`` of
    ``n`` steps the learner's policy takes on ``task``."""
    fresh_state: Callable[[int], dict[str, Any]]
    """``fresh_state(task)``: the ``state()`` of a newly built learner (seeded by the task index)."""
    seed: int = 0


# ------------------------------------------------------------------------------------------------ helpers
def torch_module(learner: Any, strategy: str) -> torch.nn.Module:
    """The learner as a torch module with the loss-term hook, or a ``ConfigError`` naming the strategy."""
    losses = getattr(getattr(learner, "capabilities", None), "losses", ())
    if not isinstance(learner, torch.nn.Module) or not losses:
        raise ConfigError(
            f"strategy {strategy!r} needs a learner trained by gradient descent with the loss-term hook "
            f"(capabilities.losses); {type(learner).__name__} is not one"
        )
    return learner


def policy_logits(learner: Any, group: str, obs: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """The learner's action logits of ``group`` on ``obs`` (differentiable), masked actions at -1e9."""
    from marlkit.algorithms.dqn import DQN, AgentQ
    from marlkit.algorithms.policy_nets import ActorCriticTeam

    if isinstance(learner, ActorCriticTeam):
        net = learner.nets[group]
        if not net.discrete:
            raise ConfigError("this strategy needs discrete actions (a categorical policy); the task's are continuous")
        return net.dist_params(obs, mask)
    if isinstance(learner, DQN) and not learner.config.recurrent:
        q_net = cast("torch.nn.ModuleDict", learner.online["agents"])[group]
        assert isinstance(q_net, AgentQ)
        q: torch.Tensor = q_net(obs)
        return q if mask is None else q.masked_fill(~mask, -1e9)
    raise ConfigError(
        f"this strategy needs the learner's action distribution: supported for PPO/A2C and feed-forward DQN "
        f"learners, not {type(learner).__name__}"
    )


def head_modules(learner: Any) -> list[torch.nn.Module]:
    """The output layers (per group: actor and critic, or the Q-network) of a learner."""
    from marlkit.algorithms.dqn import DQN
    from marlkit.algorithms.policy_nets import ActorCriticTeam

    if isinstance(learner, ActorCriticTeam):
        return [m for net in learner.nets.values() for m in (net.actor.layers[-1], net.critic.layers[-1])]
    if isinstance(learner, DQN) and not learner.config.recurrent:
        agents = cast("torch.nn.ModuleDict", learner.online["agents"])
        return [cast("torch.nn.ModuleList", cast("torch.nn.Module", q.net).layers)[-1] for q in agents.values()]
    raise ConfigError(f"strategy 'heads' supports PPO/A2C and feed-forward DQN learners, not {type(learner).__name__}")


def _params(module: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    return {n: p for n, p in module.named_parameters() if p.requires_grad}


def _copy(params: dict[str, torch.nn.Parameter]) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in params.items()}


# ----------------------------------------------------------------------------------------------- strategies
class Strategy:
    """Does nothing: fine-tuning. Subclasses override the hooks they need."""

    name: ClassVar[str] = "finetune"
    #: Train on all tasks at once (the trainer feeds every stage from every task).
    multitask: ClassVar[bool] = False

    def attach(self, learner: Any, ctx: StrategyContext) -> None:
        self.ctx = ctx

    def before_task(self, learner: Any, task: int) -> None:
        pass

    def during_task(self, learner: Any, task: int, fraction: float) -> None:
        """After every update of stage ``task``; ``fraction`` of its env-steps are done."""

    def after_task(self, learner: Any, task: int) -> None:
        pass

    @contextlib.contextmanager
    def acting_for(self, learner: Any, task: int) -> Iterator[None]:
        yield

    def state(self) -> dict[str, Any]:
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        pass


class FineTune(Strategy):
    name = "finetune"


class L2(Strategy):
    name = "l2"

    def __init__(self, lam: float = 1.0) -> None:
        self.lam = float(lam)
        self.anchor: dict[str, torch.Tensor] = {}

    def attach(self, learner: Any, ctx: StrategyContext) -> None:
        super().attach(learner, ctx)
        params = _params(torch_module(learner, self.name))

        def l2_term(_: Any) -> torch.Tensor:
            if not self.anchor:
                return torch.zeros(())
            return 0.5 * self.lam * sum(((params[n] - a) ** 2).sum() for n, a in self.anchor.items())  # type: ignore[return-value]

        learner.add_loss_term(l2_term)

    def after_task(self, learner: Any, task: int) -> None:
        self.anchor = _copy(_params(learner))

    def state(self) -> dict[str, Any]:
        return {"anchor": self.anchor}

    def load_state(self, state: dict[str, Any]) -> None:
        self.anchor = dict(state["anchor"])


def fisher_diagonal(
    learner: Any, data: dict[str, tuple[torch.Tensor, torch.Tensor | None]], samples: int, gen: torch.Generator
) -> dict[str, torch.Tensor]:
    """Diagonal Fisher of the learner's policy: mean over ``samples`` observations (rows of ``data``) of the squared
    gradient of ``log π(a|s)`` with ``a`` drawn from the policy, summed over the agents of a row."""
    params = _params(learner)
    fisher = {n: torch.zeros_like(p) for n, p in params.items()}
    count = 0
    for g, (obs, mask) in data.items():
        rows = torch.randperm(obs.shape[0], generator=gen)[:samples]
        for r in rows.tolist():
            logits = policy_logits(learner, g, obs[r : r + 1], None if mask is None else mask[r : r + 1])
            logp = F.log_softmax(logits, -1)
            a = torch.multinomial(logp.detach().exp().reshape(-1, logp.shape[-1]), 1, generator=gen)
            chosen = logp.reshape(-1, logp.shape[-1]).gather(1, a).sum()
            grads = torch.autograd.grad(chosen, list(params.values()), allow_unused=True)
            for (n, _), gr in zip(params.items(), grads):
                if gr is not None:
                    fisher[n] += gr.detach() ** 2
            count += 1
    return {n: f / max(count, 1) for n, f in fisher.items()}


class EWC(Strategy):
    name = "ewc"
    online: ClassVar[bool] = False

    def __init__(self, lam: float = 1000.0, samples: int = 200, gamma: float = 1.0, steps: int = 400) -> None:
        self.lam, self.samples, self.gamma, self.steps = float(lam), int(samples), float(gamma), int(steps)
        #: (anchor, Fisher) per earlier task; online EWC keeps one.
        self.terms: list[tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]] = []

    def attach(self, learner: Any, ctx: StrategyContext) -> None:
        super().attach(learner, ctx)
        params = _params(torch_module(learner, self.name))
        self.gen = torch.Generator().manual_seed(ctx.seed)

        def ewc_term(_: Any) -> torch.Tensor:
            total = torch.zeros(())
            for anchor, fisher in self.terms:
                for n, a in anchor.items():
                    total = total + (fisher[n] * (params[n] - a) ** 2).sum()
            return 0.5 * self.lam * total

        learner.add_loss_term(ewc_term)

    def after_task(self, learner: Any, task: int) -> None:
        data = self.ctx.observations(learner, task, self.steps)
        fisher = fisher_diagonal(learner, data, self.samples, self.gen)
        anchor = _copy(_params(learner))
        if self.online and self.terms:
            old = self.terms[0][1]
            fisher = {n: self.gamma * old[n] + f for n, f in fisher.items()}
            self.terms = [(anchor, fisher)]
        else:
            self.terms.append((anchor, fisher))

    def state(self) -> dict[str, Any]:
        return {"terms": [[a, f] for a, f in self.terms], "gen": self.gen.get_state()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.terms = [(dict(a), dict(f)) for a, f in state["terms"]]
        self.gen.set_state(state["gen"])


class OnlineEWC(EWC):
    name = "online-ewc"
    online = True

    def __init__(self, lam: float = 1000.0, samples: int = 200, gamma: float = 0.9, steps: int = 400) -> None:
        super().__init__(lam, samples, gamma, steps)


class Replay(Strategy):
    """Behaviour cloning of past tasks on stored observations (ClonEx-style)."""

    name = "replay"

    def __init__(self, lam: float = 1.0, steps: int = 400, batch: int = 256) -> None:
        self.lam, self.steps, self.batch = float(lam), int(steps), int(batch)
        #: Per group: stored obs, masks and the log-probabilities the policy had, concatenated over past tasks.
        self.store: dict[str, list[torch.Tensor]] = {}

    def attach(self, learner: Any, ctx: StrategyContext) -> None:
        super().attach(learner, ctx)
        torch_module(learner, self.name)
        self.gen = torch.Generator().manual_seed(ctx.seed)

        def clone_term(_: Any) -> torch.Tensor:
            total = torch.zeros(())
            for g, (obs, mask, logp_old) in self.store.items():
                idx = torch.randint(0, obs.shape[0], (self.batch,), generator=self.gen)
                m = None if mask.numel() == 0 else mask[idx]
                logp = F.log_softmax(policy_logits(learner, g, obs[idx], m), -1)
                p_old = logp_old[idx].exp()
                total = total + (p_old * (logp_old[idx] - logp)).sum(-1).mean()
            return self.lam * total

        learner.add_loss_term(clone_term)

    def after_task(self, learner: Any, task: int) -> None:
        data = self.ctx.observations(learner, task, self.steps)
        with torch.no_grad():
            for g, (obs, mask) in data.items():
                logp = F.log_softmax(policy_logits(learner, g, obs, mask), -1).clamp_min(-30.0)
                m = torch.zeros(0, dtype=torch.bool) if mask is None else mask
                if g in self.store:
                    o, mm, lp = self.store[g]
                    self.store[g] = [
                        torch.cat([o, obs]),
                        torch.cat([mm, m]) if m.numel() else mm,
                        torch.cat([lp, logp]),
                    ]
                else:
                    self.store[g] = [obs, m, logp]

    def state(self) -> dict[str, Any]:
        return {"store": self.store, "gen": self.gen.get_state()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.store = {g: list(v) for g, v in state["store"].items()}
        self.gen.set_state(state["gen"])


class PackNet(Strategy):
    name = "packnet"

    def __init__(self, retrain: float = 0.25) -> None:
        if not 0.0 <= retrain < 1.0:
            raise ConfigError(f"packnet retrain = {retrain} is not allowed: the fraction of a stage in [0, 1)")
        self.retrain = float(retrain)
        self.owner: dict[str, torch.Tensor] = {}  # -1: free; t: kept for task t
        self.frozen: dict[str, torch.Tensor] = {}  # every parameter as its owners left it (0 where free)
        self.current = 0
        self.pruned = False  # whether the current task has been pruned (and is retraining its kept weights)

    def attach(self, learner: Any, ctx: StrategyContext) -> None:
        super().attach(learner, ctx)
        self.params = params = _params(torch_module(learner, self.name))
        if not self.owner:
            self.owner = {n: torch.full_like(p, -1, dtype=torch.long) for n, p in params.items()}
        for n, p in params.items():
            p.register_hook(lambda g, n=n: g * self._trainable(n))  # type: ignore[no-untyped-call]

    def _trainable(self, n: str) -> torch.Tensor:
        """Before pruning the free weights train; after it only those kept for the current task."""
        return self.owner[n] == self.current if self.pruned else self.owner[n] < 0

    @torch.no_grad()
    def _restore(self) -> None:
        """Weights of earlier tasks back to their values; after pruning, the released ones back to 0."""
        for n, p in self.params.items():
            if n in self.frozen:
                old = (self.owner[n] >= 0) & (self.owner[n] < self.current)
                p.copy_(torch.where(old, self.frozen[n], p))
            if self.pruned:
                p.masked_fill_(self.owner[n] < 0, 0.0)

    def before_task(self, learner: Any, task: int) -> None:
        self.current, self.pruned = task, False

    def during_task(self, learner: Any, task: int, fraction: float) -> None:
        self._restore()
        if not self.pruned and fraction >= 1.0 - self.retrain:
            self._prune(task)

    @torch.no_grad()
    def _prune(self, task: int) -> None:
        """Keep the largest ``1 / (tasks left)`` of the free weights for ``task``; release (zero) the rest."""
        left = self.ctx.num_tasks - task
        for n, p in self.params.items():
            free = self.owner[n] < 0
            k = int(free.sum())
            if k == 0:
                continue
            keep = k if left <= 1 else max(1, round(k / left))
            score = torch.where(free, p.abs(), torch.full_like(p, -1.0))
            top = torch.topk(score.reshape(-1), keep).indices
            chosen = torch.zeros(p.numel(), dtype=torch.bool)
            chosen[top] = True
            chosen = chosen.reshape(p.shape) & free
            self.owner[n][chosen] = task
            p.masked_fill_(free & ~chosen, 0.0)  # released for later tasks
        self.pruned = True

    @torch.no_grad()
    def after_task(self, learner: Any, task: int) -> None:
        self._restore()
        if not self.pruned:  # a stage too short to reach its pruning point
            self._prune(task)
        self._restore()
        self.frozen = {n: p.detach().clone() for n, p in self.params.items()}
        self.current, self.pruned = task + 1, False

    @contextlib.contextmanager
    def acting_for(self, learner: Any, task: int) -> Iterator[None]:
        if task >= self.current:
            yield  # the task being trained (or one not reached yet): the weights as they are
            return
        saved = _copy(self.params)
        with torch.no_grad():
            for n, p in self.params.items():
                own = self.owner[n]
                p.copy_(torch.where((own >= 0) & (own <= task), self.frozen.get(n, p), torch.zeros_like(p)))
        try:
            yield
        finally:
            with torch.no_grad():
                for n, p in self.params.items():
                    p.copy_(saved[n])

    def state(self) -> dict[str, Any]:
        return {"owner": self.owner, "frozen": self.frozen, "current": self.current, "pruned": self.pruned}

    def load_state(self, state: dict[str, Any]) -> None:
        for n, o in state["owner"].items():
            self.owner[n].copy_(o)
        self.frozen = dict(state["frozen"])
        self.current = int(state["current"])
        self.pruned = bool(state.get("pruned", False))


class Heads(Strategy):
    name = "heads"

    def __init__(self) -> None:
        self.heads: dict[int, list[dict[str, torch.Tensor]]] = {}

    def attach(self, learner: Any, ctx: StrategyContext) -> None:
        super().attach(learner, ctx)
        self.modules = head_modules(learner)

    def _get(self) -> list[dict[str, torch.Tensor]]:
        return [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in self.modules]

    def _set(self, weights: list[dict[str, torch.Tensor]]) -> None:
        for m, w in zip(self.modules, weights):
            m.load_state_dict(w)

    def before_task(self, learner: Any, task: int) -> None:
        if task in self.heads:
            self._set(self.heads[task])  # a task seen before continues with its own head

    def after_task(self, learner: Any, task: int) -> None:
        self.heads[task] = self._get()

    @contextlib.contextmanager
    def acting_for(self, learner: Any, task: int) -> Iterator[None]:
        if task not in self.heads:
            yield
            return
        saved = self._get()
        self._set(self.heads[task])
        try:
            yield
        finally:
            self._set(saved)

    def state(self) -> dict[str, Any]:
        return {"heads": {str(t): h for t, h in self.heads.items()}}

    def load_state(self, state: dict[str, Any]) -> None:
        self.heads = {int(t): h for t, h in state["heads"].items()}


class Reset(Strategy):
    name = "reset"

    def __init__(self, every: int = 1) -> None:
        if every < 1:
            raise ConfigError(f"reset every = {every} is not allowed: an integer >= 1 (tasks between resets)")
        self.every = int(every)

    def before_task(self, learner: Any, task: int) -> None:
        if task > 0 and task % self.every == 0:
            learner.load_state(self.ctx.fresh_state(task))


class MultiTask(Strategy):
    name = "multitask"
    multitask = True


class Compose(Strategy):
    """Several strategies at once (``"heads+replay"``), called in order (``acting_for`` nested)."""

    def __init__(self, parts: list[Strategy]) -> None:
        self.parts = parts
        if sum(p.multitask for p in parts) and len(parts) > 1:
            raise ConfigError("multitask trains on every task at once and does not compose with other strategies")

    @property
    def label(self) -> str:
        return "+".join(p.name for p in self.parts)

    def attach(self, learner: Any, ctx: StrategyContext) -> None:
        for p in self.parts:
            p.attach(learner, ctx)

    def before_task(self, learner: Any, task: int) -> None:
        for p in self.parts:
            p.before_task(learner, task)

    def during_task(self, learner: Any, task: int, fraction: float) -> None:
        for p in self.parts:
            p.during_task(learner, task, fraction)

    def after_task(self, learner: Any, task: int) -> None:
        for p in self.parts:
            p.after_task(learner, task)

    @contextlib.contextmanager
    def acting_for(self, learner: Any, task: int) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            for p in self.parts:
                stack.enter_context(p.acting_for(learner, task))
            yield

    def state(self) -> dict[str, Any]:
        return {str(i): p.state() for i, p in enumerate(self.parts)}

    def load_state(self, state: dict[str, Any]) -> None:
        for i, p in enumerate(self.parts):
            p.load_state(state[str(i)])


STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (FineTune, L2, EWC, OnlineEWC, Replay, PackNet, Heads, Reset, MultiTask)
}


def make_strategy(spec: str, **kwargs: Any) -> Strategy:
    """A strategy by name (``"ewc"``), or several joined by ``+`` (``"heads+replay"``); ``kwargs`` go to a single
    strategy's constructor."""
    names = [s.strip() for s in spec.split("+")]
    for n in names:
        if n not in STRATEGIES:
            raise ConfigError(
                f"unknown strategy {n!r}{did_you_mean(n, STRATEGIES)} (strategies: {', '.join(STRATEGIES)})"
            )
    if len(names) == 1:
        try:
            return STRATEGIES[names[0]](**kwargs)
        except TypeError as e:
            raise ConfigError(f"strategy {names[0]!r}: {e}") from None
    if kwargs:
        raise ConfigError("options go to a single strategy; a composed one uses each part's defaults")
    parts = [STRATEGIES[n]() for n in names]
    if any(p.multitask for p in parts):
        raise ConfigError("multitask trains on every task at once and does not compose with other strategies")
    return Compose(parts)


def strategy_label(strategy: Strategy) -> str:
    return strategy.label if isinstance(strategy, Compose) else strategy.name
