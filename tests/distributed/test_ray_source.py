"""Ray rollout workers on a local Ray (2 CPUs): sync mode's first update is the single-process learner's on the same
batch, pipelined mode's updates are the local learner's on batches of the weights one update old, a run is
reproducible and resumes, a killed worker and a hung one are restarted with the run completing its full budget,
a worker hung while a checkpoint is taken is restarted, async mode learns, the learner's thread is pinned off Ray's
cores on a one-machine cluster, and a cluster too small for the workers is a clear error."""

import copy
import os
import threading

import pytest
import torch

from marlkit.algorithms.ppo import PPO, PPOConfig
from marlkit.core import Progress
from marlkit.core.config import ConfigError
from marlkit.distributed import RaySource, RolloutWorker, merge_rollouts
from marlkit.envs.registry import make
from marlkit.experiment.run import make_run_config
from marlkit.experiment.runner import Runner, learn_step

ray = pytest.importorskip("ray")

QUIET = dict(progress=False, gif=False, eval_every=0, eval_episodes=8, log_every=400)


def _ppo(num_envs=8, seed=0):
    env = make("spread-v0", num_envs=num_envs, seed=0)
    return PPO(env, PPOConfig(centralised_critic=True, rollout_steps=5, epochs=2, minibatches=2), seed=seed)


def test_sync_first_update_equals_the_single_process_learners_on_the_same_batch(ray_local):
    remote = _ppo()
    local = copy.deepcopy(remote)
    source = RaySource(remote, "spread-v0", 8, workers=2, seed=11, mode="sync")
    try:
        assert source.mode == "sync" and source.steps_per_batch == 5 * 8
        env_steps, metrics, _ = learn_step(remote, source, 0, 400)
    finally:
        source.close()
    # The same batch made in this process: the plain workers with the seeds and weights Ray's got.
    state = local.policy().policy_state()
    parts = [RolloutWorker("spread-v0", 4, 5, 11, i, store_state=True).sample(state, 0)[0] for i in range(2)]
    batch = merge_rollouts(parts, "local")
    local.set_progress(remote.progress)
    expected = local.update(batch)
    assert env_steps == 40 and metrics["perf/policy_lag"] == 0.0
    assert {k: metrics[k] for k in expected} == pytest.approx(expected, rel=1e-6)
    for (name, a), (_, b) in zip(remote.named_parameters(), local.named_parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7, msg=name)
    assert not torch.equal(next(remote.parameters()), next(_ppo().parameters()))  # the update moved them


def test_pipelined_updates_are_the_local_learners_on_batches_of_the_weights_one_update_old(ray_local):
    """Pipelined mode (the on-policy default): batch k+1 is collected while update k runs, so it is made by the
    weights after k updates and trained on after k+1; the first two batches both come from the initial weights."""
    remote = _ppo()
    local = copy.deepcopy(remote)
    source = RaySource(remote, "spread-v0", 8, workers=2, seed=11)
    lags = []
    try:
        assert source.mode == "pipelined" and source.steps_per_batch == 5 * 8
        env_steps = 0
        for _ in range(3):
            env_steps, metrics, _ = learn_step(remote, source, env_steps, 400)
            lags.append(metrics["perf/policy_lag"])
    finally:
        source.close()
    assert lags == [0.0, 1.0, 1.0]
    workers = [RolloutWorker("spread-v0", 4, 5, 11, i, store_state=True) for i in range(2)]
    states = [local.policy().policy_state()]  # the weights each batch acts with: v0, v0, v1
    for k in range(3):
        version = max(k - 1, 0)
        batch = merge_rollouts([w.sample(states[version], version)[0] for w in workers], "local")
        local.set_progress(Progress(40 * (k + 1), 400, 40))
        local.update(batch)
        states.append(local.policy().policy_state())
    for (name, a), (_, b) in zip(remote.named_parameters(), local.named_parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7, msg=name)


def _run(tmp_path, name, steps=400, **fields):
    cfg = make_run_config(
        "mappo", "spread-v0", steps=steps, seed=3, num_envs=8, workers=2, out=str(tmp_path), name=name,
        rollout_steps=5, epochs=2, minibatches=2, **{**QUIET, **fields},
    )  # fmt: skip
    return cfg


def test_a_pipelined_run_is_reproducible_and_resumes_like_a_local_one(ray_local, tmp_path):
    a = Runner(_run(tmp_path, "a", checkpoint_every=200), default_callbacks=False)
    assert a.source.mode == "pipelined"  # the on-policy default: batches in flight, whose timing must not matter
    ra = a.run()
    b = Runner(_run(tmp_path, "b", checkpoint_every=200), default_callbacks=False)
    rb = b.run()
    assert ra.env_steps == rb.env_steps == 400
    for p, q in zip(a.learner.parameters(), b.learner.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    assert ra.eval_return == rb.eval_return
    # Resume a's run from its checkpoint at 200 env-steps: the workers continue from the checkpoint's generators.
    import shutil

    from marlkit.core import checkpoint as ckpt

    run_dir = tmp_path / "resumed"
    shutil.copytree(a.run_dir, run_dir)
    for path in (run_dir / "checkpoints").iterdir():
        if "200" not in path.name:
            path.unlink()
    (run_dir / "eval.json").unlink()
    saved = ckpt.load_latest(run_dir / "checkpoints")[1]["source"]
    resumed = Runner.resume(run_dir, default_callbacks=False)
    assert resumed.env_steps == 200 and resumed.source.version == saved["version"] == 200 // 40
    assert resumed.source.state()["workers"] == saved["workers"]
    assert resumed.run().env_steps == 400


class _KillWorker:
    """Kills rollout worker 0 after the given update (Ray restarts it)."""

    def __init__(self, after):
        self.after = after

    def on_update(self, runner, metrics):
        if runner.updates == self.after:
            ray.kill(runner.source.actors[0], no_restart=False)


def test_a_killed_worker_is_restarted_and_the_run_completes_its_full_budget(ray_local, tmp_path):
    runner = Runner(_run(tmp_path, "kill", steps=400, log_every=40), [_KillWorker(after=3)], default_callbacks=False)
    rows = []
    runner.callbacks.append(type("Rows", (), {"on_log": lambda self, r, row: rows.append(row)})())
    result = runner.run()
    assert result.env_steps == 400 and runner.updates == 10
    restarts = [row["perf/worker_restarts"] for row in rows]
    assert restarts[2] == 0 and restarts[-1] == 1  # the batch after the kill was redone once, none lost


def test_a_hung_worker_fails_the_health_probe_is_restarted_and_the_budget_completes(ray_local):
    """Worker 0's process is stopped (SIGSTOP: alive, never answering) before the third update: its request
    outlasts sample_timeout, the health probe gets no answer within health_timeout, the worker is killed and
    restarted by Ray and its batch redone; all 6 updates of 40 env-steps still happen. A healthy worker whose batch
    outlasts the 1 s sample_timeout on a loaded machine answers the probe (on its own thread) and is not
    restarted: exactly one restart."""
    import contextlib
    import os
    import signal

    learner = _ppo()
    source = RaySource(learner, "spread-v0", 8, workers=2, seed=11, sample_timeout=1.0, health_timeout=5.0)
    hung = source.placement[0]["pid"]
    try:
        env_steps, restarts = 0, []
        for k in range(6):
            if k == 2:
                os.kill(hung, signal.SIGSTOP)
            env_steps, metrics, _ = learn_step(learner, source, env_steps, 240)
            restarts.append(metrics["perf/worker_restarts"])
        assert env_steps == 240 and restarts[:2] == [0.0, 0.0] and restarts[-1] == 1.0
        assert ray.get(source.actors[0].where.remote(), timeout=60)["pid"] != hung  # a new process
    finally:
        with contextlib.suppress(ProcessLookupError):  # gone when Ray killed it; else let close() end it
            os.kill(hung, signal.SIGCONT)
        source.close()


def test_a_worker_hung_while_a_checkpoint_is_taken_is_restarted_and_the_run_goes_on(ray_local):
    """Worker 0 is stopped (SIGSTOP) with its next request in flight (pipelined) just before ``state()``: the state
    call waits behind that request, fails the health probe and the worker is restarted (its request sent again),
    so the checkpoint gets every worker's state instead of a timeout, and the next updates complete."""
    import contextlib
    import signal

    learner = _ppo()
    source = RaySource(learner, "spread-v0", 8, workers=2, seed=11, sample_timeout=1.0, health_timeout=5.0)
    hung = source.placement[0]["pid"]
    try:
        env_steps = 0
        for _ in range(2):
            env_steps, _, _ = learn_step(learner, source, env_steps, 200)
        os.kill(hung, signal.SIGSTOP)
        state = source.state()
        assert len(state["workers"]) == 2 and all("env_rng" in w for w in state["workers"])
        assert source.restarts == 1
        for _ in range(3):
            env_steps, metrics, _ = learn_step(learner, source, env_steps, 200)
        assert env_steps == 200 and metrics["perf/worker_restarts"] == 1.0
        assert ray.get(source.actors[0].where.remote(), timeout=60)["pid"] != hung
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(hung, signal.SIGCONT)
        source.close()


@pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2, reason="needs core affinity, 2 cores"
)
def test_on_a_one_machine_cluster_the_learner_thread_gets_cores_of_its_own_until_close(ray_local):
    before = os.sched_getaffinity(0)
    cores = sorted(before)
    source = RaySource(_ppo(), "spread-v0", 4, workers=2, seed=0)
    try:
        assert source.cores == (cores[:-1], cores[-1:])  # 2 workers of 0.5 CPU: Ray's threads get the last core
        assert os.sched_getaffinity(0) == set(cores[:-1])
        others = [int(t) for t in os.listdir("/proc/self/task") if int(t) != threading.get_native_id()]
        assert others and any(os.sched_getaffinity(t) == {cores[-1]} for t in others)  # Ray's own threads
        source.collect()
    finally:
        source.close()
    assert os.sched_getaffinity(0) == before
    unpinned = RaySource(_ppo(), "spread-v0", 4, workers=2, seed=0, pin_cores=False)
    try:
        assert unpinned.cores is None and os.sched_getaffinity(0) == before
    finally:
        unpinned.close()


def test_a_cluster_with_too_few_cpus_is_a_clear_error(ray_local):
    with pytest.raises(ConfigError, match=r"experiment.workers = 5 .* asks for 2.5 CPUs, but the Ray cluster has 2:"):
        RaySource(_ppo(), "spread-v0", 8, workers=5, seed=0)
    with pytest.raises(ConfigError, match="takes mode 'sync'"):
        RaySource(_ppo(), "spread-v0", 8, workers=2, seed=0, mode="async")


def test_async_iql_learns_the_penalty_game_from_two_workers(ray_local, tmp_path):
    """Penalty game, k=0: (a, a) and (c, c) pay 10, (b, b) 2, other pairs 0 (random play: about 2.4). IQL fed
    asynchronously by two workers (8 copies each, their batches merged into one replay stream of 16 copies) must
    coordinate on a 10."""
    cfg = make_run_config(
        "iql", "penalty-v0", steps=20_480, seed=0, out=str(tmp_path), num_envs=16, workers=2,
        rollout_steps=4, gradient_steps=4, epsilon_steps=10_000, gamma=0.0, checkpoint_every=0,
        **{**QUIET, "eval_episodes": 64, "log_every": 2_000, "env.kwargs": {"k": 0}},
    )  # fmt: skip
    runner = Runner(cfg, default_callbacks=False)
    assert runner.source.mode == "async" and runner.source.steps_per_batch == 4 * 16
    lags = []
    runner.callbacks.append(type("Lag", (), {"on_update": lambda self, r, m: lags.append(m["perf/policy_lag"])})())
    result = runner.run()
    assert result.env_steps == 20_480  # 320 batches of every copy
    assert list(runner.learner.replay.streams) == ["ray-0+ray-1"]
    assert result.eval_return == pytest.approx(10.0)
    assert lags[0] == 0 and set(lags[1:]) == {1}  # every batch after the first was made by the weights one update old
