"""Rollout workers on Ray as a ``BatchSource``: what ``experiment.workers > 0`` feeds a learner with.

``RaySource`` starts N ``RolloutWorker`` actors (``marlkit.distributed.worker``), each with its share of the run's
``env.num_envs`` copies and a fractional CPU (``worker_cpus``, 0.5 by default, so two workers and the learner's
process fit on two cores), spread over the cluster's nodes. The learner stays in the driver process; only its
``policy_state()`` (weights only) goes to the workers, through the object store: ``ray.put`` once per update,
every worker reading the same object.

Cores. When the whole cluster is this machine (a local Ray: one node, the driver's), the learner's thread runs on
cores of its own: all but the last ``ceil(workers * worker_cpus)`` (at least one; ``local_cores``;
``pin_cores=False`` turns it off). Ray's threads in the learner's process run on the others, so the update,
most of an on-policy iteration, is never moved between cores nor shares its core with transport. The workers may run on every core (a collection-bound run needs them all
while the learner waits), at the low scheduling priority Ray gives them (nice 15): on the learner's core they take
only what the learner leaves.

Three modes; by default ``"pipelined"`` for on-policy learners and ``"async"`` for off-policy ones:

* **sync** (on-policy: IPPO, MAPPO, A2C): each ``collect()`` publishes the learner's current weights, asks
  every worker for ``rollout_steps`` steps of all its copies and returns them side by side as one ``Rollout``
  (``merge_rollouts``): the batch a local collector of all the copies would make, from the policy the update
  will improve (``perf/policy_lag`` 0). The workers wait while the learner updates, and the learner while they
  collect.
* **pipelined** (on-policy): every worker always has its next request in flight. ``collect()`` takes each
  worker's batch as it finishes, at once sends it its next request with the learner's current weights, and
  returns the batches merged in worker order; the workers collect batch k+1 while the learner updates on batch k. Batch k+1 is thus
  made by the weights before update k: the policy lag is exactly 1 (0 for the first batch), whatever the timing,
  so runs stay reproducible. PPO's ratios are taken against the behaviour log-probabilities stored with the
  batch, and its value targets are computed with the critic at update time.
* **async** (off-policy: IQL, VDN, QMIX, MADDPG): the pipelined loop, with fresh weights sent to the workers once
  ``weights_every`` updates have passed since their last ones (lag 1 to ``weights_every``). Each batch is still
  every worker's copies for ``rollout_steps`` steps, so the learner takes as many updates per env-step as it
  does in one process (``gradient_steps`` per batch of ``rollout_steps * num_envs`` env-steps).

In every mode a batch is a pure function of the run seed and the update count, so the same seed gives the same
numbers; a slow worker holds the batch up (the price of that, and of the fixed update ratio). Tensors travel
between processes as NumPy arrays (``marlkit.distributed.worker``: raw buffers instead of pickled tensors), and a
worker gets a policy state only when its weights are out of date.

Faults. Every ``ray.get`` has a timeout. A worker that dies is restarted by Ray (up to ``MAX_RESTARTS`` times, as
RLlib's env runners are), reseeded from the run seed and its restart count, and its request is sent again: the
batch is redone, never dropped, and the run completes with its full step count. A request that outlasts
``sample_timeout`` triggers a health probe (``health_timeout``, 30 s by default; answered on a thread of its own, so a
busy worker answers it and a stuck or stopped process does not); a worker that does not answer it is killed and
restarted the same way. A cluster with fewer free CPUs than the workers ask for is a ``ConfigError`` before any
actor starts.

``metrics()`` reports, after each ``collect()``: ``perf/policy_lag``, ``perf/weights_s`` (snapshot and
``ray.put``), ``perf/wait_s`` (waiting for the workers, transfer included), ``perf/merge_s`` (joining their
batches into tensors), ``perf/worker_restarts`` and ``perf/ray_nodes`` (the nodes the workers run on).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

import numpy as np

from marlkit.core.checkpoint import generator_state
from marlkit.core.config import ConfigError
from marlkit.core.contracts import Learner
from marlkit.data.rollout import EpisodeStats, Rollout
from marlkit.distributed.worker import (
    RolloutWorker,
    merge_rollouts,
    merge_stats,
    pack_state,
    pin_threads,
    unpin_threads,
    worker_seed,
)

Mode = Literal["sync", "pipelined", "async"]
MODES: tuple[str, ...] = ("sync", "pipelined", "async")
#: Restarts allowed per source over a run (RLlib's default for its env runners).
MAX_RESTARTS = 1000
#: Seconds a worker has to answer the health probe.
HEALTH_TIMEOUT = 30.0
#: Seconds to wait for one batch before probing the worker's health.
SAMPLE_TIMEOUT = 600.0
#: Seconds to wait for workers to start (and for their checkpoint state).
START_TIMEOUT = 120.0
#: The actors' concurrency groups: the health probe runs on a thread of its own, so a worker busy with a long
#: batch still answers it; every other call runs in the order it was sent, one at a time.
PROBE_GROUPS = {"probe": 1}


def probe(actor: Any) -> Any:
    """The health probe's reference: ``actor.ping`` on its own thread (``PROBE_GROUPS``)."""
    return actor.ping.options(concurrency_group="probe").remote()


def healthy(actor: Any, timeout: float) -> bool:
    """Whether ``actor`` answers the health probe within ``timeout`` seconds."""
    import ray

    try:
        return bool(ray.get(probe(actor), timeout=timeout))
    except (ray.exceptions.GetTimeoutError, ray.exceptions.RayActorError):
        return False


def await_restart(actor: Any, timeout: float, what: str) -> None:
    """Wait until Ray has restarted ``actor`` (it answers the probe), at most ``max(timeout, HEALTH_TIMEOUT)``
    seconds (a new process imports torch and builds its envs): requests sent while it is still going down would
    fail. ``what`` names it in the error when it does not come back."""
    import ray

    limit = max(timeout, HEALTH_TIMEOUT)
    deadline = time.monotonic() + limit
    while (left := deadline - time.monotonic()) > 0:
        try:
            ray.get(probe(actor), timeout=left)
            return
        except ray.exceptions.RayActorError:
            time.sleep(0.1)
        except ray.exceptions.GetTimeoutError:
            break
    raise RuntimeError(f"{what} did not come back within {limit:.0f} s of failing")


class WorkerSet:
    """Ray worker actors (started with ``max_restarts``) and their fault handling, shared by the sources: every
    answer is awaited for ``sample_timeout`` seconds at a time, then the worker must answer the health probe
    (``health_timeout``); one that died or does not answer is killed, restarted by Ray (at most ``MAX_RESTARTS``
    times over the set), reseeded from the run seed and its restart count, and asked again. ``what`` names a
    worker in errors (``"Ray rollout worker"``)."""

    def __init__(self, actors: list[Any], seed: int, what: str, sample_timeout: float, health_timeout: float) -> None:
        self.actors, self.seed, self.what = actors, seed, what
        self.sample_timeout, self.health_timeout = sample_timeout, health_timeout
        self.restarts = 0

    def get(self, i: int, ref: Any, again: Callable[[], Any]) -> Any:
        """``ray.get(ref)`` of a call to worker ``i``; after a restart ``again()`` makes the call anew and returns
        its ref (the restarted process has lost every call in flight)."""
        import ray

        while True:
            try:
                return ray.get(ref, timeout=self.sample_timeout)
            except ray.exceptions.GetTimeoutError:
                if healthy(self.actors[i], self.health_timeout):
                    continue  # slow, not stuck: keep waiting
                ray.kill(self.actors[i], no_restart=False)
            except ray.exceptions.RayActorError:
                pass  # the actor died; Ray is restarting it
            self.restart(i)
            ref = again()

    def restart(self, i: int) -> None:
        """Count a failure of worker ``i``, wait until Ray has restarted it and give it its new env seed (the call
        runs before any sent after it)."""
        self.restarts += 1
        if self.restarts > MAX_RESTARTS:
            raise RuntimeError(
                f"{self.what}s failed {self.restarts} times (at most {MAX_RESTARTS} restarts); giving up"
            )
        await_restart(self.actors[i], self.health_timeout, f"{self.what} {i}")
        fresh = np.random.default_rng(worker_seed(self.seed, i, "env", self.restarts))
        self.actors[i].load_state.remote({"env_rng": generator_state(fresh)})

    def close(self) -> None:
        """Stop every worker for good."""
        import ray

        for a in self.actors:
            ray.kill(a, no_restart=True)
        self.actors.clear()


def init_ray(address: str | None = None) -> bool:
    """Connect to Ray: a running cluster at ``address`` (``"auto"``: the one ``ray start`` made on this machine),
    or a new local instance bound to 127.0.0.1 when ``address`` is None. Returns whether it connected here (False:
    Ray was already initialised by the caller, who then shuts it down). Usage statistics are off unless the
    environment turned them on (``RAY_USAGE_STATS_ENABLED``)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "experiment.workers > 0 runs rollout workers on Ray, which is not installed: pip install 'marlkit[ray]'"
        ) from None
    if ray.is_initialized():
        return False
    if address is None:
        # "local": a new instance even when `ray start` left a cluster's address on this machine
        ray.init(address="local", include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    else:
        if address == "auto":
            address = auto_address()
        try:
            ray.init(address=address, log_to_driver=False)
        except ConnectionError as e:
            raise ConfigError(
                f"experiment.ray_address = {address!r}: no Ray cluster answers there ({e}); start one with "
                f"`ray start --head`, or leave ray_address unset for a local Ray"
            ) from None
    return True


def auto_address() -> str:
    """The cluster ``ray_address: auto`` means: ``RAY_ADDRESS`` when set, else the address the last ``ray start`` on
    this machine wrote (``ray_current_cluster`` in Ray's temp dir). Never Ray's fallback of joining whichever Ray
    processes are running here (another user's local instance, on a shared machine): none of the two is a
    ``ConfigError``."""
    found = os.environ.get("RAY_ADDRESS") or None
    if found is None:
        try:
            from ray._private.utils import read_ray_address  # where `ray start` records the cluster

            found = read_ray_address()
        except ImportError:  # a Ray without it: let ray.init resolve "auto" itself
            return "auto"
    if not found:
        raise ConfigError(
            "experiment.ray_address = 'auto' connects to the cluster in RAY_ADDRESS or the one `ray start` last "
            "started on this machine, and there is neither: start one with `ray start --head`, set RAY_ADDRESS, "
            "give HOST:PORT, or leave ray_address unset for a local Ray"
        )
    return found


def local_cores(workers: int, worker_cpus: float) -> tuple[list[int], list[int]] | None:
    """How ``RaySource`` shares this machine's cores when the whole Ray cluster is this machine (one node, the
    driver's): ``(learner's cores, Ray's cores)``, Ray's the last ``ceil(workers * worker_cpus)`` of the cores this
    process may run on (at most all but one), the learner's the others. None (no pinning) on a cluster of several
    nodes, with a single core, or where affinity cannot be set (not Linux).

    Unpinned, the learner's update loses time on a busy machine to being moved between cores whenever the
    workers and Ray's threads wake; on a core of its own it updates about as fast as in one process."""
    import ray

    if not hasattr(os, "sched_setaffinity"):
        return None
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if len(nodes) != 1 or nodes[0].get("NodeID") != ray.get_runtime_context().get_node_id():
        return None
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None
    k = min(len(cores) - 1, max(1, int(np.ceil(workers * worker_cpus - 1e-9))))
    return cores[:-k], cores[-k:]


def split_envs(num_envs: int, workers: int) -> list[int]:
    """Copies per worker: ``num_envs`` shared as evenly as possible, the first workers taking one more."""
    if workers < 1 or workers > num_envs:
        raise ConfigError(
            f"experiment.workers = {workers} is not allowed with env.num_envs = {num_envs}: each worker steps at "
            f"least one copy, so 1 <= workers <= num_envs"
        )
    return [len(part) for part in np.array_split(np.arange(num_envs), workers)]


class PooledSource:
    """What a source whose Ray workers a ``WorkerSet`` holds says about them (``RaySource``,
    ``ParameterServerSource``)."""

    pool: WorkerSet

    @property
    def actors(self) -> list[Any]:
        return self.pool.actors

    @property
    def restarts(self) -> int:
        """Worker restarts over the run so far."""
        return self.pool.restarts

    @property
    def workers(self) -> int:
        return len(self.actors)


class RaySource(PooledSource):
    """N Ray rollout workers feeding ``learner`` (see the module docstring); a ``marlkit.core.BatchSource``.

    ``env_id``/``env_kwargs``/``num_envs``: the run's env and its copies, shared out among the workers; ``seed``: the
    run's env seed, from which each worker's seeds derive; ``mode``: by default ``"pipelined"`` for on-policy
    learners and ``"async"`` for off-policy ones; ``weights_every``: updates between fresh weights in async mode."""

    def __init__(
        self,
        learner: Learner,
        env_id: str,
        num_envs: int,
        workers: int,
        seed: int,
        env_kwargs: Mapping[str, Any] | None = None,
        *,
        worker_cpus: float = 0.5,
        address: str | None = None,
        mode: Mode | None = None,
        weights_every: int = 1,
        sample_timeout: float = SAMPLE_TIMEOUT,
        health_timeout: float = HEALTH_TIMEOUT,
        trust_module: bool = False,
        pin_cores: bool = True,
    ) -> None:
        if mode is None:
            mode = "pipelined" if learner.capabilities.batch_kind == "rollout" else "async"
        if mode not in MODES:
            raise ConfigError(f"mode = {mode!r} is not allowed: one of {MODES}")
        if mode == "async" and learner.capabilities.batch_kind == "rollout":
            raise ConfigError(
                f"{type(learner).__name__} learns on-policy (batch_kind 'rollout'): its batches must come from its "
                f"current weights, so it takes mode 'sync', not 'async'"
            )
        if not worker_cpus > 0:
            raise ConfigError(f"experiment.worker_cpus = {worker_cpus} is not allowed: a positive number of CPUs")
        if weights_every < 1:
            raise ConfigError(f"weights_every = {weights_every} is not allowed: an integer >= 1")
        self.learner, self.mode, self.seed = learner, mode, seed
        self.weights_every, self.sample_timeout, self.health_timeout = weights_every, sample_timeout, health_timeout
        self.worker_cpus = worker_cpus
        self.copies = split_envs(num_envs, workers)
        self.rollout_steps = int(learner.config.rollout_steps)
        self.owns_ray = init_ray(address)
        import ray

        need = workers * worker_cpus
        total = float(ray.cluster_resources().get("CPU", 0.0))
        if need > total + 1e-9:
            self._shutdown()
            raise ConfigError(
                f"experiment.workers = {workers} with experiment.worker_cpus = {worker_cpus} asks for {need:g} CPUs, "
                f"but the Ray cluster has {total:g}: use fewer workers, a smaller worker_cpus, or a larger cluster"
            )
        split = local_cores(workers, worker_cpus) if pin_cores else None
        #: (the learner's cores, those of Ray's threads in this process) when pinned; each pinned thread's cores before
        self.cores = split
        self._affinity_before: dict[int, set[int]] = {}
        remote: Any = ray.remote  # Ray's stubs lack concurrency_groups
        actor_cls: Any = remote(
            num_cpus=worker_cpus, max_restarts=MAX_RESTARTS, max_task_retries=0, concurrency_groups=PROBE_GROUPS
        )(RolloutWorker)
        actors: list[Any] = [
            actor_cls.options(scheduling_strategy="SPREAD").remote(
                env_id,
                n,
                self.rollout_steps,
                seed,
                i,
                dict(env_kwargs or {}),
                learner.capabilities.uses_state,
                trust_module,
                f"ray-{i}",
            )
            for i, n in enumerate(self.copies)
        ]
        self.pool = WorkerSet(actors, seed, "Ray rollout worker", sample_timeout, health_timeout)
        try:
            self.placement = ray.get([a.where.remote() for a in self.actors], timeout=START_TIMEOUT)
        except ray.exceptions.GetTimeoutError:
            self.close()
            raise RuntimeError(
                f"{workers} Ray rollout workers did not start within {START_TIMEOUT:.0f} s: the cluster's "
                f"{total:g} CPUs are taken by other work (ray status shows it)"
            ) from None
        self.nodes = len({p["node_id"] for p in self.placement})
        if split is not None:
            # The calling thread (the learner's; torch's threads inherit it) on its own cores, and Ray's threads in
            # this process (task submission, object transfer) on the workers'.
            self._affinity_before = {threading.get_native_id(): os.sched_getaffinity(0)}
            os.sched_setaffinity(0, split[0])
            self._affinity_before.update(pin_threads(split[1], but=threading.get_native_id()))
        self.version = 0  # updates the learner has made since this source started (the weights' version)
        self._published: tuple[int, Any] | None = None  # (version, object ref) of the weights last put
        self._worker_version = [-1] * len(self.actors)
        #: ``Rollout.source`` of each worker's batches; a restarted worker starts a new stream (its episodes are new)
        self.streams = [p["name"] for p in self.placement]
        #: pipelined/async: worker index -> its request in flight, and the (weights ref, version) it acts with
        self._pending: dict[int, Any] = {}
        self._sent: dict[int, tuple[Any, int]] = {}
        self._metrics: dict[str, float] = {}

    # ------------------------------------------------------------------------------------------- BatchSource
    @property
    def steps_per_batch(self) -> int:
        """Every worker's copies times ``rollout_steps`` (the run's ``num_envs`` copies, as one process steps)."""
        return self.rollout_steps * sum(self.copies)

    def collect(self) -> tuple[Rollout, EpisodeStats]:
        batch, stats = self._collect_sync() if self.mode == "sync" else self._collect_ahead()
        self.version += 1  # the learner updates on this batch next
        return batch, stats

    def metrics(self) -> dict[str, float]:
        """What the last ``collect()`` measured (``perf/`` keys; see the module docstring)."""
        return dict(self._metrics)

    def state(self) -> dict[str, Any]:
        """Each worker's env generator and the weights' version (in pipelined and async mode a worker's state comes
        after its request in flight: those steps are not trained on after a resume, like episodes in progress). A
        worker that dies or hangs meanwhile is restarted as during collection (its request in flight sent again)
        and its state is the restarted one's."""
        refs = [a.state.remote() for a in self.actors]
        return {"version": self.version, "workers": [self._state_of(i, ref) for i, ref in enumerate(refs)]}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore ``state()``: every worker resets its copies from its restored generator."""
        import ray

        if len(state["workers"]) != self.workers:
            raise ConfigError(
                f"the checkpoint holds the state of {len(state['workers'])} rollout workers, not "
                f"experiment.workers = {self.workers}; resume with the run's own config"
            )
        self.version = int(state["version"])
        self._pending, self._sent = {}, {}  # the workers start over from the restored generators
        ray.get([a.load_state.remote(s) for a, s in zip(self.actors, state["workers"])], timeout=START_TIMEOUT)

    def close(self) -> None:
        """Stop the workers (and Ray, when this source started it)."""
        self.pool.close()
        unpin_threads(self._affinity_before)
        self._affinity_before = {}
        self._shutdown()

    def _shutdown(self) -> None:
        if self.owns_ray:
            import ray

            ray.shutdown()
            self.owns_ray = False

    # -------------------------------------------------------------------------------------------------- modes
    def _weights(self) -> tuple[Any, float]:
        """The object ref of the learner's current weights, put once per version, and the seconds it took."""
        import ray

        if self._published is not None and self._published[0] == self.version:
            return self._published[1], 0.0
        t0 = time.perf_counter()
        ref = ray.put(pack_state(self.learner.policy().policy_state()))
        self._published = (self.version, ref)
        return ref, time.perf_counter() - t0

    def _submit(self, i: int, weights: Any, version: int) -> Any:
        """Ask worker ``i`` for a batch acted by ``weights`` (of ``version``), sent only when it lacks them."""
        self._sent[i] = (weights, version)
        known = self._worker_version[i] == version
        self._worker_version[i] = version
        return self.actors[i].sample_arrays.remote(None if known else weights, version)

    def _collect_sync(self) -> tuple[Rollout, EpisodeStats]:
        weights, put_s = self._weights()
        t0 = time.perf_counter()
        refs = [self._submit(i, weights, self.version) for i in range(self.workers)]
        results = [self._result(i, ref) for i, ref in enumerate(refs)]
        wait_s = time.perf_counter() - t0
        return self._merge(results, put_s, wait_s)

    def _collect_ahead(self) -> tuple[Rollout, EpisodeStats]:
        """Pipelined and async mode: each worker's batch in flight, in worker order, each worker sent its next
        request as soon as its batch is in (with the current weights when its own are ``weights_every`` old)."""
        every = 1 if self.mode == "pipelined" else self.weights_every
        weights, put_s = self._weights() if not self._pending else (None, 0.0)
        for i in range(self.workers):
            if i not in self._pending:  # the first call (or the first after a resume): start every worker
                self._pending[i] = self._submit(i, weights, self.version)
        import ray

        # Each worker's next request goes out as soon as its batch is in, in the order they finish (a worker that
        # finishes first never idles while another is awaited); what it asks for depends only on the worker and
        # the version, so the order changes nothing in the batches. They are merged in worker order.
        results: dict[int, tuple[Rollout, EpisodeStats, int]] = {}
        t0, put_before = time.perf_counter(), put_s
        while len(results) < self.workers:
            waiting = [i for i in range(self.workers) if i not in results]
            ready, _ = ray.wait([self._pending[i] for i in waiting], num_returns=1, timeout=self.sample_timeout)
            # nothing within sample_timeout: the first waiting worker goes through the health probe (_result)
            i = waiting[[self._pending[j] for j in waiting].index(ready[0])] if ready else waiting[0]
            results[i] = self._result(i, self._pending.pop(i))
            version = self._sent[i][1]
            if self.version - version >= every:
                weights, put = self._weights()
                put_s, version = put_s + put, self.version
            self._pending[i] = self._submit(i, self._sent[i][0] if version == self._sent[i][1] else weights, version)
        wait_s = time.perf_counter() - t0 - (put_s - put_before)
        return self._merge([results[i] for i in range(self.workers)], put_s, wait_s)

    def _merge(
        self, results: list[tuple[Rollout, EpisodeStats, int]], put_s: float, wait_s: float
    ) -> tuple[Rollout, EpisodeStats]:
        t0 = time.perf_counter()
        batch = merge_rollouts([r[0] for r in results], "+".join(self.streams))
        lag = max(self.version - r[2] for r in results)
        self._metrics = self._report(put_s, wait_s, lag=lag, merge_s=time.perf_counter() - t0)
        return batch, merge_stats([r[1] for r in results])

    def _report(self, put_s: float, wait_s: float, lag: int, merge_s: float) -> dict[str, float]:
        return {
            "perf/policy_lag": float(lag),
            "perf/weights_s": put_s,
            "perf/wait_s": wait_s,
            "perf/merge_s": merge_s,
            "perf/worker_restarts": float(self.restarts),
            "perf/ray_nodes": float(self.nodes),
        }

    # ------------------------------------------------------------------------------------------------- faults
    def _result(self, i: int, ref: Any) -> tuple[Rollout, EpisodeStats, int]:
        """The answer to request ``ref`` of worker ``i``; a dead or unresponsive worker is restarted, reseeded and
        asked again (with the weights of that request) until it answers or the restarts run out."""
        rollout, stats, version = self._answer(i, ref, lambda: self._submit(i, *self._sent[i]))
        return rollout, stats, version

    def _state_of(self, i: int, ref: Any) -> Any:
        """The answer to ``state`` call ``ref`` of worker ``i``, restarting the worker as ``_result`` does."""

        def again() -> Any:
            if i in self._pending:  # the restarted process lost the request in flight: it is sent again first
                self._pending[i] = self._submit(i, *self._sent[i])
            return self.actors[i].state.remote()

        return self._answer(i, ref, again)

    def _answer(self, i: int, ref: Any, again: Callable[[], Any]) -> Any:
        """``WorkerSet.get``, a restarted worker given a new stream and marked as having no weights."""

        def restarted() -> Any:
            self.streams[i] = f"{self.placement[i]['name']}.{self.restarts}"
            self._worker_version[i] = -1  # the new process has no weights
            return again()

        return self.pool.get(i, ref, restarted)
