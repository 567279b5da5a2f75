"""The learner contracts: what acts (``Policy``), what learns (``Learner``) and what a learner declares.

Everything that acts in an environment — a learner while it collects, a weights-only snapshot in a Ray worker, a
member of a self-play pool, a frozen teammate, the policy ``marlkit.load`` returns — is an **actor**: it maps the
batched observations of ``marlkit.envs.base`` (dicts keyed by group, arrays ``(num_envs, n_agents, ...)``) to
actions for every copy and agent at once::

    actions, extras = actor.act(obs, state, info, explore)

``state`` is ``env.state()`` when the actor asks for it (``uses_state``), else ``None``; ``info`` is the dict the
env returned with those observations (``action_mask`` and ``active`` when the env has them; ``episode_done``
after a step, absent right after a reset, which is how an actor with memory — a GRU's hidden state, a random
policy's evaluation generator — knows a new episode began in every copy); ``explore`` asks for the behaviour of
training (sampling, ε, exploration noise) instead of the greedy policy. ``actions`` is the dict ``env.step`` takes;
``extras`` holds, per group, what the learner wants stored with each step besides the action (``extras_spec``
names them and their per-agent shapes; PPO's log-probabilities, for example).

**Policy** (``Policy``): an actor that can be written down. ``policy_state()`` is plain data — tensors, numbers,
strings, lists, tuples, dicts — that loads with ``torch.load(weights_only=True)`` and holds everything needed to
rebuild it: its ``kind``, the groups and agent ids, the spaces (``PolicySpaces``), the network sizes and flags and
the weights. ``marlkit.core.policy_from_state(state)`` rebuilds it by looking the kind up in the policy-kind
registry (``marlkit.core.policies``); nothing named by the data is imported or run. A policy has no optimiser and
no replay. It is what crosses a process boundary, fills a self-play pool, teaches a teammate, or is returned by
``marlkit.load``. Its ``act`` defaults to ``explore=False``; ``act_pettingzoo`` acts for one copy on a PettingZoo
``ParallelEnv``'s ``{agent: obs}`` dict, and ``reset()`` says the next such call starts a new episode.
A policy that also says *with which distribution* it acts is a ``DistributionPolicy``:
``action_distributions(obs, info)`` gives each group's ``ActionDistribution`` (categorical probabilities, or a
diagonal Gaussian's mean and deviation), what behavioural-diversity metrics read (PPO's and A2C's policies are).

**Learner** (``Learner``): an actor that learns. ``update(batch) -> metrics`` (a dict of floats, keys namespaced
as ``loss/...`` or ``train/...``); ``policy(seed)`` returns a ``Policy`` snapshot — a deep copy of the acting
weights, unaffected by later updates, acting without the learner; ``state()``/``load_state()`` are its checkpoint
(plain data as well: weights, optimiser, replay, generators). What a learner needs from the code around it is
declared in ``capabilities`` (``Capabilities``), never discovered by probing for optional methods:

* ``batch_kind`` — ``"rollout"``: the consecutive steps its current policy just collected, with the extras it
  asked for, used once (on-policy: PPO, A2C); ``"transitions"``: steps from any behaviour policy, which it keeps in
  its own replay or tables (off-policy: DQN and its mixers, MADDPG, tabular Q-learning). Both arrive as a
  ``marlkit.data.rollout.Rollout``; the kind says whether steps collected with older weights (a Ray worker a few
  updates behind) are still fit to train on.
* ``uses_state`` — its update reads ``state()`` (a centralised critic, a mixer), so the collector stores it.
  (A policy's own ``uses_state`` says whether *acting* needs it; for every policy here it does not.)
* ``losses`` — the names of its gradient losses that accept extra terms through the **loss-term hook**
  (``add_loss_term``); empty when it does not learn by gradient (tabular, a team of members).

**Progress** (``Progress``): a run has one env-step counter, owned by the runner. Before every update the runner
tells the learner where the run is with one call, ``learner.set_progress(Progress(env_steps, total_steps,
batch_steps))``, and the learner's schedules (ε, a temperature, learning-rate annealing, the warm-up before the
first gradient step) are functions of it (``marlkit.ops.schedules``), never of a counter the learner keeps: what it
acts with during the next collection is what that call said. A learner keeps no step count in ``state()``; a
resumed run tells it the restored counter before the first collection.

The loss-term hook: ``learner.add_loss_term(fn, losses=None)`` adds ``fn(ctx)`` (a scalar tensor; ``ctx`` is a
``LossContext``: the learner, which loss, the batch) to the named losses (all of ``capabilities.losses`` by
default) before every backward pass, so a wrapper — L2 or EWC towards earlier weights, distillation from a teacher —
changes any gradient-based learner without editing its file. It returns a function that removes the term again.
Terms are not part of ``state()``: whoever added them adds them again after a resume.

Everything the runner calls exists on every learner (``marlkit.core.LearnerBase`` gives the defaults:
``set_progress`` keeps the progress in ``learner.progress``, ``eval_extras`` adds nothing to the evaluation report);
the capabilities say how the learner is to be fed.

**BatchSource** (``BatchSource``): what feeds a learner. ``collect()`` returns one batch (what ``update`` takes; for
the local ``marlkit.collect.Collector`` a ``Rollout`` of its learner's own acting) and the ``EpisodeStats`` of the
episodes that ended while it was made; ``steps_per_batch`` is how many env-steps (summed over copies) that batch
holds, which the runner adds to its counter; ``state()``/``load_state()`` are what a checkpoint needs to continue
the stream (the Collector's: its env's generator; ``{}`` for a source with nothing to restore). Ray rollout actors
and a sequence of tasks are other sources: the runner drives them all the same way::

    batch, stats = source.collect()
    env_steps += source.steps_per_batch
    learner.set_progress(Progress(env_steps, total_steps, source.steps_per_batch))
    metrics = learner.update(batch)

**GameLearner** (``GameLearner``): a learner of an env outside the batched contract — a text game, the referential
game — that plays it itself: ``source_for(env)`` is the ``BatchSource`` that feeds it and ``evaluate_on(env,
episodes, seed)`` returns the ``EpisodeStats`` of an evaluation. The runner drives it like any other; it has no
array ``act`` or ``policy()`` (both raise ``TypeError``), so nothing acts for it in a batched env.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    import torch

    from marlkit.core.spaces import PolicySpaces

Obs = dict[str, np.ndarray]
"""Group -> observations ``(num_envs, n_agents, ...)``."""
Actions = dict[str, np.ndarray]
"""Group -> actions ``(num_envs, n_agents, ...)``, as ``env.step`` takes them."""
Extras = dict[str, dict[str, np.ndarray]]
"""Group -> name -> what acting stores besides the action, ``(num_envs, n_agents, *shape)``."""
Info = dict[str, Any]
"""What the env returned with the observations (``action_mask``, ``active``, ``episode_done``, ...)."""
ExtrasSpec = dict[str, dict[str, tuple[int, ...]]]
"""Group -> name -> per-agent shape of each extra."""
BatchKind = Literal["rollout", "transitions"]
BATCH_KINDS: tuple[str, ...] = ("rollout", "transitions")


@dataclass(frozen=True)
class Capabilities:
    """What a learner needs from the code that drives it (see the module docstring)."""

    batch_kind: BatchKind = "rollout"
    """``"rollout"``: on-policy steps of its current policy, used once; ``"transitions"``: steps of any policy,
    kept in its own replay."""
    uses_state: bool = False
    """Its update reads the global ``state()``: the collector must store it with every step."""
    losses: tuple[str, ...] = ()
    """Names of the gradient losses extra terms can be added to (``add_loss_term``); empty: no loss-term hook."""

    def __post_init__(self) -> None:
        if self.batch_kind not in BATCH_KINDS:
            raise ValueError(f"Capabilities.batch_kind = {self.batch_kind!r} is not allowed: one of {BATCH_KINDS}")
        if not isinstance(self.losses, tuple) or not all(isinstance(n, str) and n for n in self.losses):
            raise ValueError(f"Capabilities.losses must be a tuple of loss names, got {self.losses!r}")

    @property
    def loss_terms(self) -> bool:
        """Whether extra loss terms are accepted at all."""
        return bool(self.losses)


@dataclass(frozen=True)
class Progress:
    """Where the run is, by the runner's one env-step counter: what ``Learner.set_progress`` is told before each
    update (and, on resume or when a run starts with a trained learner, before the first collection)."""

    env_steps: int = 0
    """Env-steps (summed over copies) the run has collected, the batch of the coming update included: what ε and
    warm-ups read, and so what the learner explores with during the next collection."""
    total_steps: int = 0
    """The run's budget in env-steps (``experiment.steps``); 0 when there is none (nothing is annealed then)."""
    batch_steps: int = 0
    """Env-steps in the batch of the coming update (0 before the first)."""

    def __post_init__(self) -> None:
        if not 0 <= self.batch_steps <= self.env_steps or self.total_steps < 0:
            raise ValueError(f"{self} is not allowed: 0 <= batch_steps <= env_steps and total_steps >= 0")

    @property
    def trained_steps(self) -> int:
        """Env-steps learned from before the coming update (``env_steps - batch_steps``)."""
        return self.env_steps - self.batch_steps

    @property
    def fraction(self) -> float:
        """The fraction of the budget already trained, ``trained_steps / total_steps``: 0 at the first update (what
        learning-rate annealing reads); 0 without a budget."""
        return self.trained_steps / self.total_steps if self.total_steps else 0.0


@dataclass(frozen=True)
class LossContext:
    """What a loss term is given each time the learner computes one of its losses."""

    learner: Any
    """The learner (its parameters are ``learner.parameters()`` for torch learners)."""
    loss: str
    """Which loss the term is added to (one of ``learner.capabilities.losses``; MADDPG: ``"critic"``, ``"actor"``)."""
    batch: Any
    """The data this loss is computed on: the ``Rollout`` given to ``update`` (on-policy learners), or the batch
    sampled from the replay (off-policy learners: a ``marlkit.data.replay.TransitionBatch`` or ``EpisodeBatch``)."""


LossTerm = Callable[[LossContext], "torch.Tensor"]
"""``fn(ctx) -> scalar tensor`` added to a learner's loss before backward (``Learner.add_loss_term``)."""


@runtime_checkable
class Actor(Protocol):
    """Anything that maps batched observations to actions for every copy and agent at once (the collector's view)."""

    #: Per group, names and per-agent shapes of what ``act`` returns besides actions (stored in the rollout).
    extras_spec: ExtrasSpec
    #: Whether the caller must pass ``env.state()`` (for a learner: whether the collector stores it).
    uses_state: bool

    def act(
        self, obs: Obs, state: np.ndarray | None, info: dict[str, Any], explore: bool = True
    ) -> tuple[Actions, Extras]:
        """Return actions (dict group -> array as ``env.step`` takes) and extras (group -> name -> array)."""
        ...


@runtime_checkable
class Policy(Actor, Protocol):
    """An actor written down as weights only: rebuilt by ``policy_from_state(policy.policy_state())``."""

    #: The name it is registered under in the policy-kind registry (``register_policy_kind``).
    kind: ClassVar[str]
    #: Groups, agent ids and spaces it acts for.
    spaces: PolicySpaces

    def act(
        self, obs: Obs, state: np.ndarray | None = None, info: dict[str, Any] | None = None, explore: bool = False
    ) -> tuple[Actions, Extras]:
        """Greedy actions unless ``explore``; ``info`` may be omitted when the env has no masks."""
        ...

    def policy_state(self) -> dict[str, Any]:
        """Plain data (tensors, numbers, strings, lists, dicts) from which ``policy_from_state`` rebuilds it."""
        ...

    def reset(self) -> None:
        """The next ``act_pettingzoo`` call starts a new episode (memory such as a GRU's hidden state is cleared)."""
        ...

    def act_pettingzoo(
        self,
        obs: Mapping[str, Any],
        infos: Mapping[str, Any] | None = None,
        state: np.ndarray | None = None,
        explore: bool = False,
    ) -> dict[str, Any]:
        """Actions ``{agent: action}`` for the live agents of one PettingZoo ``ParallelEnv`` step."""
        ...


@runtime_checkable
class Learner(Actor, Protocol):
    """An actor that learns from batches and hands out ``Policy`` snapshots (see the module docstring)."""

    #: Its hyper-parameters (a frozen config dataclass; ``config.rollout_steps`` is what the runner collects).
    config: Any
    #: What it needs from the code that drives it.
    capabilities: Capabilities
    #: Groups, agent ids and spaces it learns for (a source or env it is given must have the same).
    spaces: PolicySpaces
    #: The last ``set_progress`` (``Progress()`` before the first).
    progress: Progress

    def update(self, batch: Any) -> dict[str, float]:
        """Learn from ``batch`` (a ``Rollout``; see ``capabilities.batch_kind``); return metrics."""
        ...

    def policy(self, seed: int | None = None) -> Policy:
        """A snapshot that acts like this learner now (greedy acting identical), independent of later updates."""
        ...

    def state(self) -> dict[str, Any]:
        """Everything a checkpoint needs to continue training exactly (plain data, ``weights_only`` loadable)."""
        ...

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore ``state()``."""
        ...

    def set_progress(self, progress: Progress) -> None:
        """Where the run is (the runner's env-step counter), told before every update; schedules read it."""
        ...

    def add_loss_term(self, fn: LossTerm, losses: tuple[str, ...] | None = None) -> Callable[[], None]:
        """Add ``fn(ctx)`` to the named losses (default all of ``capabilities.losses``); returns its remover."""
        ...

    def eval_extras(self, report: dict[str, Any]) -> dict[str, Any]:
        """Entries this learner adds to an evaluation report (``eval.json``); ``{}`` for most."""
        ...


@runtime_checkable
class BatchSource(Protocol):
    """What feeds a learner: one batch per ``collect()`` (see the module docstring)."""

    @property
    def steps_per_batch(self) -> int:
        """Env-steps (summed over copies) each ``collect()`` produces, added to the run's counter after every call
        (read after each call: a source may change it between batches, a task sequence moving to an env with more
        copies)."""
        ...

    def collect(self) -> tuple[Any, Any]:
        """One batch for ``learner.update`` and the episodes that ended while it was made (a
        ``marlkit.data.rollout.EpisodeStats``; typed ``Any`` here because core imports nothing above it)."""
        ...

    def state(self) -> dict[str, Any]:
        """What a checkpoint needs to continue the stream (plain data, ``weights_only`` loadable; ``{}`` for none)."""
        ...

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore ``state()`` (episodes in progress when it was taken are dropped, not continued)."""
        ...


@runtime_checkable
class RemoteSource(BatchSource, Protocol):
    """A source whose batches are made in other processes (``marlkit.distributed.RaySource``): the runner logs its
    ``metrics()`` with every update's and calls ``close()`` when the run ends."""

    def metrics(self) -> dict[str, float]:
        """What the last ``collect()`` measured (``perf/`` keys: policy lag, transfer times, restarts)."""
        ...

    def close(self) -> None:
        """Release the processes and resources the source holds."""
        ...


@runtime_checkable
class UpdatingSource(RemoteSource, Protocol):
    """A remote source that also makes the update (``marlkit.distributed.ParameterServerSource``: the gradients
    are applied by a parameter server): the runner calls ``update(learner, batch)`` instead of
    ``learner.update(batch)``, and ``learner`` holds the newest weights after it (for evaluation and checkpoints)."""

    def update(self, learner: Any, batch: Any) -> dict[str, float]:
        """Apply what ``batch`` (from ``collect()``) carries; return the update's metrics."""
        ...


@runtime_checkable
class GroupUpdatable(Protocol):
    """A learner whose own ``update`` trains as one of several data-parallel replicas (the PPO family:
    ``marlkit.distributed.LearnerGroup``) through two hooks, no-ops while None: ``reduce_gradients(params)``
    averages each minibatch's gradients over the replicas before clipping, and ``sum_over_learners(x)`` sums a
    statistic over them (advantage and value normalisation)."""

    reduce_gradients: Callable[[Any], None] | None
    sum_over_learners: Callable[[Any], Any] | None


@runtime_checkable
class GameLearner(Learner, Protocol):
    """A learner that plays an env of another contract than the batched one itself (see the module docstring)."""

    def source_for(self, env: Any) -> BatchSource:
        """The source of its batches on ``env`` (what the runner feeds it from)."""
        ...

    def evaluate_on(self, env: Any, episodes: int, seed: int) -> Any:
        """``episodes`` episodes of ``env`` played by its current policy, from games seeded with ``seed``."""
        ...


@dataclass(frozen=True)
class ActionDistribution:
    """One group's action distributions on a batch of observations: ``probs`` ``(..., n_agents, n_actions)`` for
    categorical policies, or ``mean`` and ``std`` ``(..., n_agents, action_dim)`` for diagonal Gaussians (before any
    clipping to the action bounds)."""

    probs: np.ndarray | None = None
    mean: np.ndarray | None = None
    std: np.ndarray | None = None

    def __post_init__(self) -> None:
        if (self.probs is None) == (self.mean is None) or (self.mean is None) != (self.std is None):
            raise ValueError("an ActionDistribution holds either probs or mean and std")


@runtime_checkable
class DistributionPolicy(Policy, Protocol):
    """A policy that also says with which distribution it acts (what behavioural-diversity metrics read)."""

    def action_distributions(self, obs: Obs, info: dict[str, Any] | None = None) -> dict[str, ActionDistribution]:
        """Group -> the distribution each agent samples from on ``obs`` (masked actions have probability 0)."""
        ...
