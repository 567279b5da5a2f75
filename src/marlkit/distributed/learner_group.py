"""Several learners averaging their gradients over ``torch.distributed`` (gloo): what ``experiment.learners > 1`` runs.

``LearnerGroup`` wraps the run's source (the local ``Collector`` or a ``RaySource``): it hands out the same batches,
and makes the update itself. The driver's learner is rank 0 of a gloo group; ``learners - 1`` Ray actors
(``LearnerReplica``, a fractional CPU each) hold replicas of it, copied from the driver's learner when the group
starts (weights and optimiser state, so a resumed run's replicas are the resumed learner). Each update splits the
batch along the env axis into ``learners`` equal shares (``split_rollout``); every rank computes the gradient of
the loss on its share (``gradients``), the gradients are averaged with one ``all_reduce`` (``ddp.average_flat``
on the flat vector) and every rank takes the same optimiser step with the mean (``apply_gradients``: clipping sees
the averaged gradient, as in one process). With equal shares and a loss that is a mean over samples, the mean is
the gradient one learner computes on the whole batch (per-batch normalisations aside: advantage normalisation then
sees each share), so the replicas stay equal to the driver's learner, which evaluates and is checkpointed as in any
run. Learners with ``gradients`` / ``apply_gradients`` take part (IA2C, MAA2C), with ``algo.value_norm`` off.

PPO-family learners (IPPO, MAPPO, HAPPO: several minibatch steps per batch, each clipped) instead run their own
``update`` on their share with two hooks set (``join_update``): ``reduce_gradients`` averages each minibatch's
gradients before clipping, and ``sum_over_learners`` makes advantage and value normalisation use the statistics
of the whole batch. Every learner draws the same minibatch positions of its share (their generators are equal), so
the group takes the steps of one learner with ``minibatch_shares = learners`` on the whole batch (``ppo.py``), exact
when every share has as many active agent-steps (a mean over each share weighs the shares equally).

Faults. Every ``ray.get`` has a timeout, and so does the gloo group (``timeout_s``). A replica that dies, or a
collective that fails or times out, is a lost learner: the run stops with ``LearnerLost``; its checkpoints (taken
between updates) are intact and ``--resume`` continues from the last one.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from marlkit.core.config import ConfigError
from marlkit.core.contracts import (
    BatchSource,
    GroupUpdatable,
    Learner,
    Progress,
    RemoteSource,
    UpdatingSource,
)
from marlkit.data.rollout import EpisodeStats, Rollout
from marlkit.distributed.ddp import average_flat, average_gradients, join_group, sum_all
from marlkit.distributed.parameter_server import GradientLearner
from marlkit.distributed.ray_source import START_TIMEOUT, init_ray
from marlkit.distributed.worker import from_arrays, to_arrays

#: Seconds a collective (and joining the group) may take before the learners count as lost.
LEARNER_TIMEOUT = 60.0


class LearnerLost(RuntimeError):
    """A learner of the group is gone (or its collective failed); the run cannot continue."""


def check_group_learner(learner: Learner, learners: int) -> None:
    """A ``ConfigError`` unless ``learner`` can train as one of ``learners`` data-parallel replicas."""
    if learners < 2:
        raise ConfigError(f"experiment.learners = {learners}: a learner group needs at least 2 learners")
    if _updates_in_group(learner):
        return  # PPO family: normalisation statistics are summed over the learners
    if not isinstance(learner, GradientLearner):
        raise ConfigError(
            f"experiment.learners = {learners} averages gradients, and {type(learner).__name__} has neither "
            f"gradients/apply_gradients (one gradient step per batch) nor the reduce_gradients hook of PPO's update: "
            f"use ippo, mappo, happo, ia2c or maa2c, or experiment.learners = 1"
        )
    if getattr(learner.config, "value_norm", False):
        raise ConfigError(
            f"experiment.learners = {learners} needs algo.value_norm = false: the running statistics of the value "
            f"targets would be updated from each learner's share only, and the replicas would drift apart"
        )


def split_rollout(rollout: Rollout, parts: int) -> list[Rollout]:
    """``rollout``'s copies (the env axis, dim 1) in ``parts`` equal, contiguous shares: the inverse of
    ``merge_rollouts`` for equal parts. Each share's tensors are views of the rollout's."""
    copies = next(iter(rollout.rewards.values())).shape[1]
    if copies % parts:
        raise ConfigError(
            f"experiment.learners = {parts} must divide the {copies} env copies of each batch (env.num_envs), so "
            f"every learner computes its gradient on an equal share"
        )
    size = copies // parts

    def share(x: Any, k: int) -> Any:
        if x is None:
            return None
        if isinstance(x, dict):
            return {name: share(v, k) for name, v in x.items()}
        return x[:, k * size : (k + 1) * size]

    fields = [name for name in Rollout._fields if name != "source"]
    return [Rollout(**{n: share(getattr(rollout, n), k) for n in fields}, source=rollout.source) for k in range(parts)]


def _updates_in_group(learner: Any) -> bool:
    """Whether ``learner`` averages over the group inside its own ``update`` (PPO's hooks: ``GroupUpdatable``)
    rather than through ``gradients`` / ``apply_gradients``."""
    return isinstance(learner, GroupUpdatable)


def join_update(learner: Any, joined: bool = True) -> None:
    """Set (or, ``joined=False``, clear) the group hooks of a PPO-family ``learner`` (module docstring)."""
    if _updates_in_group(learner):
        learner.reduce_gradients = average_gradients if joined else None
        learner.sum_over_learners = sum_all if joined else None


def averaged_update(learner: Any, share: Rollout) -> dict[str, float]:
    """One data-parallel update of ``learner`` (in a process group) on its ``share``: PPO's own update with its
    hooks set (``join_update``), or the gradient averaged over the group, then the optimiser step with it. Every
    rank calls it once per update."""
    if _updates_in_group(learner):
        return dict(learner.update(share))
    grads, metrics = learner.gradients(share)
    average_flat(grads)
    return {**metrics, **learner.apply_gradients(grads)}


class LearnerReplica:
    """Rank ``rank`` of the group: a replica of the run's learner that takes the averaged step on its share."""

    def __init__(self, learner: Any, rank: int, world_size: int, host: str, port: int, timeout_s: float) -> None:
        torch.set_num_threads(1)
        self.learner, self.rank = learner, rank
        self.group = (rank, world_size, port, host, timeout_s)

    def join(self) -> int:
        rank, world, port, host, timeout_s = self.group
        join_group(rank, world, port, host, timeout_s)
        join_update(self.learner)
        return rank

    def update(self, share: Rollout, progress: Progress) -> dict[str, float]:
        self.learner.set_progress(progress)
        return averaged_update(self.learner, from_arrays(share))

    def weights(self) -> dict[str, np.ndarray]:
        return {k: v.detach().numpy().copy() for k, v in self.learner.state_dict().items()}

    def where(self) -> dict[str, Any]:
        import os

        import ray

        return {"host": socket.gethostname(), "pid": os.getpid(), "node_id": ray.get_runtime_context().get_node_id()}

    def ping(self) -> bool:
        return True


class LearnerGroup:
    """``learners`` data-parallel learners: the driver's ``learner`` (rank 0) and ``learners - 1`` Ray replicas,
    fed from ``source`` (module docstring); a ``marlkit.core.UpdatingSource``. ``cpus``: what each replica reserves."""

    def __init__(
        self,
        learner: Learner,
        source: BatchSource,
        learners: int,
        *,
        cpus: float = 0.5,
        address: str | None = None,
        timeout_s: float = LEARNER_TIMEOUT,
    ) -> None:
        try:
            self._check(learner, source, learners, cpus)
        except ConfigError:
            if isinstance(source, RemoteSource):
                source.close()
            raise
        self.source, self.learners, self.timeout_s, self.learner = source, learners, timeout_s, learner
        self.replicas: list[Any] = []
        self.owns_ray = init_ray(address)
        import ray

        from marlkit.distributed.ray_source import RaySource

        taken = source.workers * source.worker_cpus if isinstance(source, RaySource) else 0.0
        need, total = (learners - 1) * cpus, float(ray.cluster_resources().get("CPU", 0.0))
        if need + taken > total + 1e-9:
            self.close()
            raise ConfigError(
                f"experiment.learners = {learners} asks for {need:g} CPUs for its {learners - 1} replicas "
                f"(worker_cpus {cpus:g} each) besides the workers' {taken:g}, but the Ray cluster has {total:g}: use "
                f"fewer learners or workers, a smaller worker_cpus, or a larger cluster"
            )
        host = "127.0.0.1" if address is None else ray.util.get_node_ip_address()
        port = _free_port(host)
        replica_cls: Any = ray.remote(num_cpus=cpus, max_restarts=0)(LearnerReplica)
        self.replicas = [
            replica_cls.options(scheduling_strategy="SPREAD").remote(learner, r, learners, host, port, timeout_s)
            for r in range(1, learners)
        ]
        joined = [r.join.remote() for r in self.replicas]
        try:
            join_group(0, learners, port, host, timeout_s)
            join_update(learner)
            ray.get(joined, timeout=START_TIMEOUT)
            self.placement = ray.get([r.where.remote() for r in self.replicas], timeout=START_TIMEOUT)
        except Exception as e:
            self.close()
            raise LearnerLost(f"the {learners} learners did not form their gloo group: {type(e).__name__}: {e}") from e
        self._metrics: dict[str, float] = {}

    @staticmethod
    def _check(learner: Learner, source: BatchSource, learners: int, cpus: float) -> None:
        check_group_learner(learner, learners)
        if isinstance(source, UpdatingSource):
            raise ConfigError(
                f"experiment.learners = {learners} cannot be combined with a parameter server (experiment.ray_mode "
                f"ps-sync / ps-async): the server is the one learner there; use learners = 1, or ray_mode sync, "
                f"pipelined or null"
            )
        if not cpus > 0:
            raise ConfigError(f"experiment.worker_cpus = {cpus} is not allowed: a positive number of CPUs")

    # ------------------------------------------------------------------------------------------- BatchSource
    @property
    def steps_per_batch(self) -> int:
        return self.source.steps_per_batch

    def collect(self) -> tuple[Any, EpisodeStats]:
        return self.source.collect()

    def update(self, learner: Any, batch: Rollout) -> dict[str, float]:
        """The averaged step of every learner on its share of ``batch``; ``learner`` (rank 0) holds its result."""
        import ray

        t0 = time.perf_counter()
        shares = split_rollout(batch, self.learners)
        refs = [r.update.remote(to_arrays(s), learner.progress) for r, s in zip(self.replicas, shares[1:])]
        try:
            own = averaged_update(learner, shares[0])
            others = ray.get(refs, timeout=self.timeout_s)
        except (RuntimeError, ray.exceptions.RayError) as e:  # a gloo failure, a dead replica, a timeout
            raise LearnerLost(
                f"a learner of the group of {self.learners} was lost ({type(e).__name__}); the run stops here; its "
                f"last checkpoint is intact: continue with marlkit train --resume RUN_DIR"
            ) from None
        metrics = _mean([own, *others])
        return {**metrics, "perf/learners": float(self.learners), "perf/group_update_s": time.perf_counter() - t0}

    def metrics(self) -> dict[str, float]:
        return self.source.metrics() if isinstance(self.source, RemoteSource) else {}

    def state(self) -> dict[str, Any]:
        return self.source.state()  # the replicas equal the driver's learner, which the checkpoint holds

    def load_state(self, state: dict[str, Any]) -> None:
        self.source.load_state(state)

    def replica_weights(self) -> list[dict[str, np.ndarray]]:
        """Each replica's parameters and buffers (equal to the driver's learner's after every update)."""
        import ray

        return ray.get([r.weights.remote() for r in self.replicas], timeout=START_TIMEOUT)

    def close(self) -> None:
        import ray
        import torch.distributed as dist

        for r in self.replicas:
            ray.kill(r, no_restart=True)
        self.replicas = []
        join_update(self.learner, joined=False)
        if dist.is_initialized():
            dist.destroy_process_group()
        if isinstance(self.source, RemoteSource):
            self.source.close()
        self._shutdown()

    def _shutdown(self) -> None:
        if self.owns_ray:
            import ray

            ray.shutdown()
            self.owns_ray = False


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _mean(metrics: Sequence[Mapping[str, float]]) -> dict[str, float]:
    return {k: float(np.mean([m[k] for m in metrics])) for k in metrics[0]}
