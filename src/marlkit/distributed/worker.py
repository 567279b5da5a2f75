"""The rollout worker: batched envs and a weights-only policy in one process, the unit Ray runs N of.

A ``RolloutWorker`` owns its own copies of the run's env and a ``marlkit.collect.Collector`` driven by a policy
rebuilt from the learner's ``policy_state()`` (``marlkit.core.policy_from_state``: weights only, nothing a state
names is imported or run). Each ``sample`` returns ``rollout_steps`` steps of *every* copy, as the local collector
does, so a batch never waits for one long episode. It is a plain class: the tests drive it in-process, and
``marlkit.distributed.ray_source`` wraps it as a Ray actor.

Seeds. Worker ``i`` of a run seeded ``s`` resets its env with ``worker_seed(s, i, "env")`` and samples its actions
with a seed derived from ``worker_seed(s, i, "policy")`` and the version of the weights it acts with, so every
batch is a pure function of the run seed, the worker's index, the weights and the env's generator state (what
``state()`` holds): the same seed gives the same numbers, and a resumed worker continues its stream.

Transport. Between processes, tensors travel as NumPy arrays (``to_arrays``/``from_arrays``, ``pack_state``/
``unpack_state``): Ray serialises arrays as raw buffers (zero-copy out of its object store) where a torch tensor is
pickled through ``torch.save``, several times slower for the small, many tensors of a rollout or a policy state.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from marlkit.collect import Collector
from marlkit.core import policy_from_state
from marlkit.core.contracts import Policy
from marlkit.data.rollout import EpisodeStats, Rollout


def worker_seed(seed: int, index: int, purpose: str, version: int = 0) -> int:
    """An independent 32-bit seed for ``purpose`` (``"env"``, ``"policy"``) of worker ``index`` of a run seeded
    ``seed`` (and, for the policy, of weights ``version``)."""
    tag = {"env": 0, "policy": 1}[purpose]
    return int(np.random.SeedSequence([seed, index, tag, version]).generate_state(1)[0])


class RolloutWorker:
    """Steps ``num_envs`` copies of ``env_id`` with the policy of the last weights it was given.

    ``store_state``: keep ``env.state()`` with every step (the learner's ``capabilities.uses_state``).
    ``name`` becomes ``Rollout.source`` of its batches, so a replay keeps one stream per worker."""

    def __init__(
        self,
        env_id: str,
        num_envs: int,
        rollout_steps: int,
        seed: int,
        index: int = 0,
        env_kwargs: Mapping[str, Any] | None = None,
        store_state: bool = False,
        trust_module: bool = False,
        name: str | None = None,
    ) -> None:
        import threadpoolctl

        from marlkit.envs.registry import build

        # One core per worker (torch and NumPy's BLAS, which the policies act through): a second thread only
        # contends with the other workers and the learner.
        torch.set_num_threads(1)
        threadpoolctl.threadpool_limits(1, user_api="blas")
        self.seed, self.index = seed, index
        self.name = name if name is not None else f"worker-{index}"
        self.rollout_steps, self.store_state = rollout_steps, store_state
        self.env = build(env_id, num_envs=num_envs, trust_module=trust_module, **dict(env_kwargs or {}))
        self.env_seed = worker_seed(seed, index, "env")
        self.collector: Collector | None = None
        self.policy: Policy | None = None
        self.version = -1
        self._pending: dict[str, Any] = {}

    @property
    def steps_per_batch(self) -> int:
        """Env-steps (summed over copies) in each batch."""
        return self.rollout_steps * self.env.num_envs

    def set_weights(self, policy_state: Mapping[str, Any], version: int) -> None:
        """Act from now on with the policy of ``policy_state``, the learner's weights after ``version`` updates."""
        policy = policy_from_state(
            unpack_state(policy_state), seed=worker_seed(self.seed, self.index, "policy", version)
        )
        if self.collector is None:
            self.collector = Collector(self.env, policy, self.rollout_steps, self.env_seed, self.store_state)
            if self._pending:
                self.collector.load_state(self._pending)
        else:
            self.collector.policy = policy
        self.policy, self.version = policy, version

    def sample(
        self, policy_state: Mapping[str, Any] | None = None, version: int | None = None
    ) -> tuple[Rollout, EpisodeStats, int]:
        """``rollout_steps`` steps of every copy, after switching to ``policy_state`` (the weights of ``version``)
        when given and newer than the current ones. Returns the rollout (its tensors are the worker's buffer until
        the next call), the episodes that ended meanwhile and the version of the weights that acted."""
        if policy_state is not None and version is not None and version != self.version:
            self.set_weights(policy_state, version)
        if self.collector is None:
            raise RuntimeError(f"{self.name} has no weights yet: call set_weights (or sample with a policy state)")
        rollout, stats = self.collector.collect()
        return rollout._replace(source=self.name), stats, self.version

    def sample_arrays(
        self, policy_state: Mapping[str, Any] | None = None, version: int | None = None
    ) -> tuple[Rollout, EpisodeStats, int]:
        """``sample`` for another process: the rollout's tensors as NumPy arrays (``to_arrays``; views of the
        worker's buffer, which Ray copies out when the call returns)."""
        rollout, stats, acted = self.sample(policy_state, version)
        return to_arrays(rollout), stats, acted

    def state(self) -> dict[str, Any]:
        """What a checkpoint needs to continue this worker's stream: its env's generator (``{}`` before the first
        weights: the stream then starts from the seed)."""
        if self.collector is None:
            return dict(self._pending)
        return self.collector.state()

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Continue from ``state()``: every copy is reset from the restored generator (weights are given anew)."""
        if not state:
            return
        if self.collector is None:
            self._pending = dict(state)  # applied when the first weights build the collector
        else:
            self.collector.load_state(dict(state))

    def where(self) -> dict[str, Any]:
        """Where this worker runs: host name, process id and (under Ray) the node id."""
        node = None
        try:
            import ray

            if ray.is_initialized():
                node = ray.get_runtime_context().get_node_id()
        except ImportError:
            pass
        return {"host": socket.gethostname(), "pid": os.getpid(), "node_id": node, "name": self.name}

    def ping(self) -> bool:
        """The health probe: answers at once unless the process is stuck or gone."""
        return True


def pin_threads(cores: Sequence[int], but: int | None = None) -> dict[int, set[int]]:
    """Run every thread of this process but the one of native id ``but`` (and the threads they start later) on
    ``cores`` only (Linux). Returns each pinned thread's cores before, for ``unpin_threads``."""
    before = {}
    for tid in (int(t) for t in os.listdir("/proc/self/task")):
        if tid == but:
            continue
        try:
            before[tid] = os.sched_getaffinity(tid)
            os.sched_setaffinity(tid, set(cores))
        except OSError:  # a thread that ended meanwhile
            before.pop(tid, None)
    return before


def unpin_threads(before: Mapping[int, set[int]]) -> None:
    """Give the threads ``pin_threads`` pinned their cores back (those still running)."""
    for tid, cores in before.items():
        try:
            os.sched_setaffinity(tid, cores)
        except OSError:
            continue


@dataclass(frozen=True)
class PackedTensor:
    """A tensor of a policy state in transit: its values as a NumPy array (see ``pack_state``)."""

    array: np.ndarray


def pack_state(state: Any) -> Any:
    """``state`` (nested dicts, lists and tuples) with every tensor a ``PackedTensor``: cheap to serialise."""
    if isinstance(state, torch.Tensor):
        return PackedTensor(state.detach().cpu().numpy())
    if isinstance(state, Mapping):
        return {k: pack_state(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(pack_state(v) for v in state)
    return state


def unpack_state(state: Any) -> Any:
    """The inverse of ``pack_state``: each ``PackedTensor`` a tensor again (a copy: the received buffer may be
    read-only shared memory)."""
    if isinstance(state, PackedTensor):
        return torch.from_numpy(np.array(state.array))
    if isinstance(state, Mapping):
        return {k: unpack_state(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(unpack_state(v) for v in state)
    return state


def _map_rollout(rollout: Rollout, fn: Any) -> Rollout:
    def walk(x: Any) -> Any:
        if x is None:
            return None
        if isinstance(x, dict):
            return {k: walk(v) for k, v in x.items()}
        return fn(x)

    return Rollout(**{name: walk(getattr(rollout, name)) for name in Rollout._fields if name != "source"},
                   source=rollout.source)  # fmt: skip


def to_arrays(rollout: Rollout) -> Rollout:
    """``rollout`` with NumPy arrays in place of its tensors (views: no copy)."""
    return _map_rollout(rollout, lambda t: t.numpy())


def from_arrays(rollout: Rollout) -> Rollout:
    """The inverse of ``to_arrays``, each array copied into a tensor of its own (the arrays Ray hands over are
    read-only views of its object store)."""
    return _map_rollout(rollout, lambda a: torch.from_numpy(np.array(a)))


def merge_rollouts(rollouts: Sequence[Rollout], source: str) -> Rollout:
    """One rollout of the copies of all ``rollouts`` side by side (the env axis, dim 1), in their order: the batch of
    a synchronous step, as if one collector had stepped every worker's copies. All must have the same steps. Parts
    of NumPy arrays (``to_arrays``) merge into tensors in one copy."""
    first = rollouts[0]
    if len(rollouts) == 1 and not isinstance(first.rewards[next(iter(first.rewards))], np.ndarray):
        return first._replace(source=source)

    def cat(parts: Sequence[Any]) -> Any:
        if parts[0] is None:
            return None
        if isinstance(parts[0], dict):
            return {k: cat([p[k] for p in parts]) for k in parts[0]}
        if isinstance(parts[0], np.ndarray):
            return torch.from_numpy(np.concatenate(parts, axis=1))  # a new array: writable, and the one copy
        return torch.cat(list(parts), dim=1)

    fields = {name: cat([getattr(r, name) for r in rollouts]) for name in Rollout._fields if name != "source"}
    return Rollout(**fields, source=source)


def merge_stats(stats: Sequence[EpisodeStats]) -> EpisodeStats:
    """The episodes of several collections, in order."""
    out = EpisodeStats()
    for s in stats:
        for g, r in s.returns.items():
            out.returns.setdefault(g, []).extend(r)
        out.lengths.extend(s.lengths)
        for k, v in s.metrics.items():
            out.metrics.setdefault(k, []).extend(v)
    return out
