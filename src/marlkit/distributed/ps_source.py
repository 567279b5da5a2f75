"""Parameter-server gradient mode on Ray: what ``experiment.ray_mode: ps-sync | ps-async`` runs.

``ParameterServerSource`` starts one ``ParameterServer`` actor (the learner whose optimiser is the run's) and N
``GradientWorker`` actors (``marlkit.distributed.parameter_server``; each with its share of ``env.num_envs`` and a
fractional CPU). Gradients go from a worker to the server through the object store (the driver passes their
references on, never their values); the driver orchestrates, counts env-steps and, after every step, loads the
server's newest weights into its own copy of the learner, which evaluates and is checkpointed as in any run.

* **ps-sync**: every round each worker computes a gradient on the current version; the server applies their mean.
  Same seed, same numbers.
* **ps-async**: every worker always has a request in flight; the first gradient to arrive is pushed to the server,
  which applies it unless it is more than ``max_staleness`` versions old (then it is dropped, its env-steps still
  counted), and that worker is sent the newest weights. ``perf/staleness`` (this gradient's),
  ``perf/staleness_max`` (the largest so far), ``perf/dropped_grads`` (so far) are logged with every update.

Faults. Every ``ray.get`` has a timeout. A worker that dies, or whose request outlasts ``sample_timeout`` and
that then fails the health probe (``health_timeout``), is killed, restarted by Ray and reseeded, and its request
is sent again. The server is not restarted: a lost server fails the run with a ``ParameterServerLost`` naming
what happened; the run's checkpoints (taken between updates) stay intact and ``--resume`` continues from the last.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

from marlkit.core.config import ConfigError
from marlkit.core.contracts import Learner
from marlkit.data.rollout import EpisodeStats
from marlkit.distributed.parameter_server import (
    GradientWorker,
    ParameterServer,
    check_gradient_learner,
    mean_metrics,
)
from marlkit.distributed.ray_source import (
    HEALTH_TIMEOUT,
    MAX_RESTARTS,
    PROBE_GROUPS,
    SAMPLE_TIMEOUT,
    START_TIMEOUT,
    PooledSource,
    WorkerSet,
    init_ray,
    split_envs,
)
from marlkit.distributed.worker import merge_stats


class ParameterServerLost(RuntimeError):
    """The parameter server actor (the run's learner) is gone; the run cannot continue."""


class GradientBatch(NamedTuple):
    """What ``collect()`` returns: references to the gradients (in the object store), the workers' loss statistics
    and the versions the gradients were computed on."""

    grads: list[Any]
    metrics: dict[str, float]
    versions: list[int]


class ParameterServerSource(PooledSource):
    """N gradient workers and a parameter server on Ray feeding the run's ``learner`` (module docstring); a
    ``marlkit.core.UpdatingSource``. ``server_cpus``: the CPUs the server actor reserves."""

    def __init__(
        self,
        learner: Learner,
        env_id: str,
        num_envs: int,
        workers: int,
        seed: int,
        env_kwargs: Mapping[str, Any] | None = None,
        *,
        mode: str = "ps-sync",
        max_staleness: int = 2,
        worker_cpus: float = 0.5,
        server_cpus: float = 0.25,
        address: str | None = None,
        sample_timeout: float = SAMPLE_TIMEOUT,
        health_timeout: float = HEALTH_TIMEOUT,
        trust_module: bool = False,
    ) -> None:
        check_gradient_learner(learner, mode)
        if max_staleness < 0:
            raise ConfigError(f"experiment.max_staleness = {max_staleness} is not allowed: an integer >= 0")
        if not (worker_cpus > 0 and server_cpus > 0):
            raise ConfigError(f"worker_cpus = {worker_cpus}, server_cpus = {server_cpus}: both must be positive")
        self.learner, self.mode, self.seed = learner, mode, seed
        self.sample_timeout, self.health_timeout = sample_timeout, health_timeout
        self.copies = split_envs(num_envs, workers)
        self.rollout_steps = int(learner.config.rollout_steps)
        self.owns_ray = init_ray(address)
        import ray

        need = workers * worker_cpus + server_cpus
        total = float(ray.cluster_resources().get("CPU", 0.0))
        if need > total + 1e-9:
            self._shutdown()
            raise ConfigError(
                f"experiment.ray_mode = {mode!r} with experiment.workers = {workers} (worker_cpus "
                f"{worker_cpus:g}) and a parameter server ({server_cpus:g}) asks for {need:g} CPUs, but the Ray "
                f"cluster has {total:g}: use fewer workers, a smaller worker_cpus, or a larger cluster"
            )
        server_cls: Any = ray.remote(num_cpus=server_cpus, max_restarts=0)(ParameterServer)
        self.server: Any = server_cls.remote(learner, mode, max_staleness)
        remote: Any = ray.remote  # Ray's stubs lack concurrency_groups
        worker_cls: Any = remote(
            num_cpus=worker_cpus, max_restarts=MAX_RESTARTS, max_task_retries=0, concurrency_groups=PROBE_GROUPS
        )(GradientWorker)
        actors: list[Any] = [
            worker_cls.options(scheduling_strategy="SPREAD").remote(
                learner, env_id, n, self.rollout_steps, seed, i, dict(env_kwargs or {}), trust_module, f"ps-{i}"
            )
            for i, n in enumerate(self.copies)
        ]
        self.pool = WorkerSet(actors, seed, "Ray gradient worker", sample_timeout, health_timeout)
        try:
            self.placement = ray.get([a.where.remote() for a in self.actors], timeout=START_TIMEOUT)
            self._server_call("ping")
        except ray.exceptions.GetTimeoutError:
            self.close()
            raise RuntimeError(
                f"{workers} Ray gradient workers and the parameter server did not start within {START_TIMEOUT:.0f} "
                f"s: the cluster's {total:g} CPUs are taken by other work (ray status shows it)"
            ) from None
        self.nodes = len({p["node_id"] for p in self.placement})
        self.version = 0  # the server's weights version the driver last saw
        self._weights: Any = self.server.weights.remote()
        self._pending: dict[int, tuple[Any, Any, int]] = {}  # async: worker -> (grads ref, info ref, version)
        self._last = 0
        self._metrics: dict[str, float] = {}

    # ------------------------------------------------------------------------------------------- BatchSource
    @property
    def steps_per_batch(self) -> int:
        copies = sum(self.copies) if self.mode == "ps-sync" else self.copies[self._last]
        return self.rollout_steps * copies

    def collect(self) -> tuple[GradientBatch, EpisodeStats]:
        import ray

        t0 = time.perf_counter()
        if self.mode == "ps-sync":
            requests = [self._submit(i, self._weights, self.version) for i in range(self.workers)]
            answers = [self._answer(i, r) for i, r in enumerate(requests)]
            self._metrics = {"perf/wait_s": time.perf_counter() - t0}
            metrics = mean_metrics([a[1][0] for a in answers])
            return GradientBatch([a[0] for a in answers], metrics, [a[1][2] for a in answers]), merge_stats(
                [a[1][1] for a in answers]
            )
        for i in range(self.workers):
            if i not in self._pending:
                self._pending[i] = self._submit(i, self._weights, self.version)
        order = sorted(self._pending)
        ready, _ = ray.wait([self._pending[i][1] for i in order], num_returns=1, timeout=self.sample_timeout)
        i = order[[self._pending[j][1] for j in order].index(ready[0])] if ready else order[0]
        grads, (metrics, stats, acted) = self._answer(i, self._pending.pop(i))
        self._last = i
        self._metrics = {"perf/wait_s": time.perf_counter() - t0}
        return GradientBatch([grads], metrics, [acted]), stats

    def update(self, learner: Any, batch: GradientBatch) -> dict[str, float]:
        """Send the batch's gradients to the server, then load its newest weights into ``learner``."""
        t0 = time.perf_counter()
        if self.mode == "ps-sync":
            step = self.server.apply_mean.remote(learner.progress, *batch.grads)
        else:
            step = self.server.push.remote(batch.grads[0], batch.versions[0], learner.progress)
        self._weights = self.server.weights.remote()  # runs after the step: actor calls run in order
        server = self._server_get(step)
        self.version = int(server["perf/server_version"])
        if self.mode == "ps-async":  # the worker goes on with the newest weights while the driver loads them too
            self._pending[self._last] = self._submit(self._last, self._weights, self.version)
        learner.load_state_dict(self._server_get(self._weights))
        return {
            **batch.metrics,
            **server,
            **self._metrics,
            "perf/update_s": time.perf_counter() - t0,
            "perf/worker_restarts": float(self.restarts),
            "perf/ray_nodes": float(self.nodes),
        }

    def metrics(self) -> dict[str, float]:
        return {}  # everything is in update()'s metrics

    def state(self) -> dict[str, Any]:
        """The server's learner and counters and each worker's env generator (async requests in flight are not
        trained on after a resume, like episodes in progress). A worker that dies or hangs meanwhile is restarted (its
        request in flight sent again) and its state is the restarted one's."""
        refs = [a.state.remote() for a in self.actors]
        workers = [self.pool.get(i, ref, functools.partial(self._state_again, i)) for i, ref in enumerate(refs)]
        return {"server": self._server_call("state"), "workers": workers}

    def _state_again(self, i: int) -> Any:
        if i in self._pending:  # async: the restarted process lost the request in flight
            self._pending[i] = self._submit(i, self._weights, self.version)
        return self.actors[i].state.remote()

    def load_state(self, state: dict[str, Any]) -> None:
        import ray

        if len(state["workers"]) != self.workers:
            raise ConfigError(
                f"the checkpoint holds the state of {len(state['workers'])} gradient workers, not "
                f"experiment.workers = {self.workers}; resume with the run's own config"
            )
        self._server_get(self.server.load_state.remote(state["server"]))
        self.version = int(state["server"]["version"])
        self._weights = self.server.weights.remote()
        self._pending = {}
        ray.get([a.load_state.remote(s) for a, s in zip(self.actors, state["workers"])], timeout=START_TIMEOUT)

    def close(self) -> None:
        import ray

        self.pool.close()
        ray.kill(self.server, no_restart=True)
        self._shutdown()

    def _shutdown(self) -> None:
        if self.owns_ray:
            import ray

            ray.shutdown()
            self.owns_ray = False

    # ------------------------------------------------------------------------------------------------- faults
    def _submit(self, i: int, weights: Any, version: int) -> tuple[Any, Any, int]:
        grads, info = self.actors[i].compute.options(num_returns=2).remote(weights, version)
        return grads, info, version

    def _answer(self, i: int, request: tuple[Any, Any, int]) -> tuple[Any, Any]:
        """(gradient ref, info) of worker ``i``'s request; a dead or hung worker is restarted and asked again
        (``WorkerSet.get``) with the newest weights."""
        sent = [request]

        def again() -> Any:
            sent[0] = self._submit(i, self._weights, self.version)
            return sent[0][1]

        info = self.pool.get(i, request[1], again)
        return sent[0][0], info

    def _server_call(self, method: str) -> Any:
        return self._server_get(getattr(self.server, method).remote())

    def _server_get(self, ref: Any) -> Any:
        import ray

        try:
            return ray.get(ref, timeout=START_TIMEOUT)
        except ray.exceptions.RayActorError as e:
            raise ParameterServerLost(
                f"the parameter server (the run's learner) was lost: {type(e).__name__}. The run stops here; its "
                f"last checkpoint is intact: continue with marlkit train --resume RUN_DIR"
            ) from None
        except ray.exceptions.GetTimeoutError:
            raise ParameterServerLost(
                f"the parameter server (the run's learner) did not answer within {START_TIMEOUT:.0f} s; the run "
                f"stops here; its last checkpoint is intact: continue with marlkit train --resume RUN_DIR"
            ) from None
