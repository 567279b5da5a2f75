"""Parameter-server gradient mode: the plain classes without Ray (the mean of two workers' gradients is one learner's
step on the two batches side by side; a gradient staler than the bound is dropped), then on a local Ray (one
synchronous step equals the single learner's, a ps-sync run reproduces and resumes, ps-async solves the penalty game
(and, in the slow tier, learns spread-v0), a lost server fails a ps-async run cleanly with its last checkpoint
loadable and the run resumes from it, too few CPUs is a clear error)."""

import copy

import pytest
import torch

from marlkit.algorithms.a2c import A2C, A2CConfig
from marlkit.algorithms.ppo import PPO, PPOConfig
from marlkit.core import checkpoint as ckpt
from marlkit.core.config import ConfigError
from marlkit.core.contracts import Progress
from marlkit.distributed import GradientWorker, ParameterServer, RolloutWorker, merge_rollouts
from marlkit.envs.registry import make
from marlkit.experiment.run import make_run_config
from marlkit.experiment.runner import Runner

QUIET = dict(progress=False, gif=False, eval_every=0, eval_episodes=8, log_every=400)


def _a2c(seed=0, **fields):
    torch.manual_seed(seed)  # the networks' initial weights
    cfg = A2CConfig(centralised_critic=True, rollout_steps=5, advantage_norm=False, **fields)
    return A2C(make("spread-v0", num_envs=8, seed=0), cfg, seed=seed)


def _merged(learner_seed, seed, copies=(4, 4)):
    """The batches the gradient workers of run seed ``seed`` collect at version 0 with the weights of
    ``_a2c(learner_seed)``, side by side."""
    state = _a2c(learner_seed).policy().policy_state()
    parts = [
        RolloutWorker("spread-v0", n, 5, seed, i, store_state=True).sample(state, 0)[0] for i, n in enumerate(copies)
    ]
    return merge_rollouts(parts, "local")


def _single_learner_step(learner, seed):
    """One update of ``learner`` (an ``_a2c(0)``) on the batches of the gradient workers of ``seed``."""
    return learner.update(_merged(0, seed))


def _assert_same_weights(a, b, rtol=1e-5, atol=1e-6):
    for (name, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        torch.testing.assert_close(p, q, rtol=rtol, atol=atol, msg=name)


def test_the_mean_of_two_workers_gradients_is_one_learners_step_on_the_concatenated_batch():
    """Equal batches (4 copies x 5 steps each), mean losses, advantage normalisation off: the server's step with the
    mean gradient is the single learner's update on the 8 copies (equal within float tolerance)."""
    learner = _a2c()
    single = copy.deepcopy(learner)
    server = ParameterServer(learner, "ps-sync")
    workers = [GradientWorker(learner, "spread-v0", 4, 5, seed=11, index=i) for i in range(2)]
    weights = server.weights()
    grads = [w.compute(weights, 0)[0] for w in workers]
    metrics = server.apply_mean(Progress(40, 400, 40), *grads)
    _single_learner_step(single, seed=11)
    assert server.version == 1 and metrics["perf/staleness"] == 0.0
    _assert_same_weights(learner, single)
    assert not torch.equal(next(learner.parameters()), next(_a2c().parameters()))  # the step moved them
    # and the gradient itself (Adam's first step would hide a sum for a mean): the whole batch's
    whole, _ = copy.deepcopy(_a2c()).gradients(_merged(learner_seed=0, seed=11))
    torch.testing.assert_close(torch.stack(grads).mean(0), whole, rtol=1e-5, atol=1e-7)


def test_split_update_is_the_learners_own_update():
    """A2C.update is gradients + apply_gradients: the same numbers as the learner always took."""
    a = _a2c()
    b = copy.deepcopy(a)
    batch = RolloutWorker("spread-v0", 8, 5, 3, store_state=True).sample(a.policy().policy_state(), 0)[0]
    ma = a.update(batch)
    grads, mb = b.gradients(batch)
    mb.update(b.apply_gradients(grads))
    assert ma == pytest.approx(mb, rel=1e-6)
    _assert_same_weights(a, b, rtol=0, atol=0)


def test_async_server_drops_gradients_staler_than_the_bound():
    learner = _a2c()
    server = ParameterServer(learner, "ps-async", max_staleness=1)
    worker = GradientWorker(learner, "spread-v0", 4, 5, seed=0)
    g0, _ = worker.compute(server.weights(), 0)
    assert server.push(g0, 0, Progress())["perf/grad_applied"] == 1.0  # staleness 0
    assert server.push(g0, 0, Progress())["perf/staleness"] == 1.0  # staleness 1: still applied
    before = [p.detach().clone() for p in learner.parameters()]
    out = server.push(g0, 0, Progress())  # staleness 2 > 1: dropped, no step
    assert out["perf/grad_applied"] == 0.0 and out["perf/dropped_grads"] == 1.0 and server.version == 2
    assert out["perf/staleness_max"] == 2.0
    for p, q in zip(before, learner.parameters()):
        assert torch.equal(p, q)


def test_learners_that_cannot_send_gradients_are_clear_errors():
    ppo = PPO(make("spread-v0", num_envs=2, seed=0), PPOConfig(rollout_steps=5))
    with pytest.raises(ConfigError, match=r"PPO has no gradients/apply_gradients .* use ia2c or maa2c"):
        ParameterServer(ppo, "ps-sync")
    with pytest.raises(ConfigError, match=r"algo\.value_norm = false"):
        ParameterServer(_a2c(value_norm=True), "ps-async")
    with pytest.raises(
        ConfigError,
        match=r"experiment.ray_mode = 'ps' is not allowed: sync, pipelined, async, ps-sync, ps-async or null",
    ):
        make_run_config("ia2c", "spread-v0", workers=2, ray_mode="ps")
    with pytest.raises(ConfigError, match=r"ray_mode = 'ps-sync' runs on Ray workers, .* --workers N"):
        Runner(make_run_config("ia2c", "spread-v0", ray_mode="ps-sync", **QUIET), default_callbacks=False)


# ------------------------------------------------------------------------------------------------------ on Ray
def _cfg(tmp_path, name, mode="ps-sync", steps=400, algo="maa2c", seed=3, **fields):
    base = dict(num_envs=8, workers=2, rollout_steps=5, advantage_norm=False, preset="none", **QUIET)
    return make_run_config(
        algo, "spread-v0", steps=steps, seed=seed, out=str(tmp_path), name=name, ray_mode=mode,
        **{**base, **fields},
    )  # fmt: skip


def test_one_sync_step_on_ray_equals_the_single_learner(ray_local, tmp_path):
    from marlkit.distributed import ParameterServerSource
    from marlkit.experiment.runner import learn_step

    learner = _a2c()
    single = copy.deepcopy(learner)
    source = ParameterServerSource(learner, "spread-v0", 8, workers=2, seed=11, mode="ps-sync")
    try:
        env_steps, metrics, _ = learn_step(learner, source, 0, 400)
    finally:
        source.close()
    _single_learner_step(single, seed=11)
    assert env_steps == 40 and metrics["perf/server_version"] == 1.0
    _assert_same_weights(learner, single)  # the driver's learner holds the server's weights after the step


def test_a_ps_sync_run_is_reproducible_and_resumes_to_the_same_numbers(ray_local, tmp_path):
    import shutil

    a = Runner(_cfg(tmp_path, "a", checkpoint_every=200), default_callbacks=False)
    ra = a.run()
    b = Runner(_cfg(tmp_path, "b", checkpoint_every=200), default_callbacks=False)
    b.run()
    assert ra.env_steps == 400
    _assert_same_weights(a.learner, b.learner, rtol=0, atol=0)
    # resume a's run from its checkpoint at 200 env-steps: the server's learner (its optimiser included) and
    # counters and the workers' streams come back from the checkpoint
    run_dir = tmp_path / "resumed"
    shutil.copytree(a.run_dir, run_dir)
    for path in (run_dir / "checkpoints").iterdir():
        if "200" not in path.name:
            path.unlink()
    (run_dir / "eval.json").unlink()
    saved = ckpt.load_latest(run_dir / "checkpoints")[1]["source"]
    resumed = Runner.resume(run_dir, default_callbacks=False)
    assert resumed.env_steps == 200 and resumed.source.version == saved["server"]["version"] == 200 // 40
    now = resumed.source.state()
    assert now["workers"] == saved["workers"]
    adam_now, adam_saved = (
        now["server"]["learner"]["optimizer"]["state"],
        saved["server"]["learner"]["optimizer"]["state"],
    )
    assert int(adam_now[0]["step"]) == int(adam_saved[0]["step"]) == 5  # not a fresh optimiser
    torch.testing.assert_close(adam_now[0]["exp_avg"], adam_saved[0]["exp_avg"], rtol=0, atol=0)
    assert resumed.run().env_steps == 400 and resumed.source.version == 400 // 40  # the server counted on from 5
    assert not torch.equal(next(resumed.learner.parameters()), next(_a2c().parameters()))


def test_ps_async_solves_the_penalty_game_from_two_workers(ray_local, tmp_path):
    """Penalty game, k=0: (a, a) and (c, c) pay 10, (b, b) 2, other pairs 0 (random play: about 2.4). IA2C, two
    workers of 32 copies each pushing gradients of one-step batches asynchronously (max_staleness 2), 20k
    env-steps: the greedy joint action must pay 10. Measured: 10.0 for seeds 0, 1, 2 and 3 (this test: 0)."""
    cfg = make_run_config(
        "ia2c", "penalty-v0", steps=20_000, seed=0, out=str(tmp_path), name="async", num_envs=64, workers=2,
        rollout_steps=1, ray_mode="ps-async", preset="none", checkpoint_every=0,
        **{**QUIET, "eval_episodes": 64, "log_every": 2_000, "env.kwargs": {"k": 0}},
    )  # fmt: skip
    runner = Runner(cfg, default_callbacks=False)
    rows = []
    runner.callbacks.append(type("Rows", (), {"on_log": lambda self, r, row: rows.append(row)})())
    result = runner.run()
    assert result.env_steps == 20_000
    assert max(r["perf/staleness_max"] for r in rows) >= 1  # the other worker's gradient arrived first
    assert result.eval_return == pytest.approx(10.0), result.eval


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_ps_async_learns_spread_from_two_workers(ray_local, tmp_path, seed):
    """IA2C on spread-v0, two workers of 8 copies each pushing gradients of 5-step batches asynchronously
    (max_staleness 2), 80k env-steps: the greedy team must score at least -26 per agent (uniform random -26.3; the
    untrained greedy policy about -44). Measured at 80k: seed 0 -20.8, seed 1 -22.8 (about 35 s each on a loaded
    machine); at 40k seed 0 fell short (-36.0), so 40k is no budget for this floor."""
    cfg = _cfg(
        tmp_path, "spread", mode="ps-async", steps=80_000, algo="ia2c", num_envs=16, checkpoint_every=0,
        advantage_norm=True, seed=seed, **{"eval_episodes": 100, "log_every": 8_000},
    )  # fmt: skip
    result = Runner(cfg, default_callbacks=False).run()
    assert result.env_steps == 80_000
    assert result.eval_return >= -26.0, result.eval


class _KillServer:
    def __init__(self, after):
        self.after = after

    def on_update(self, runner, metrics):
        if runner.updates == self.after:
            import ray

            ray.kill(runner.source.server, no_restart=True)


def test_a_lost_parameter_server_fails_a_ps_async_run_cleanly_and_it_resumes_from_its_checkpoint(ray_local, tmp_path):
    """ps-async, 20 env-steps per gradient (one worker's 4 copies x 5 steps), a checkpoint at 200: the server is
    killed after 13 updates; the run fails with ParameterServerLost, the checkpoint at 200 is intact, and
    ``Runner.resume`` continues from it (the server's learner, its Adam state and counters restored) to 400."""
    from marlkit.distributed import ParameterServerLost
    from marlkit.experiment.runner import load_run

    cfg = _cfg(tmp_path, "lost", mode="ps-async", checkpoint_every=200)
    runner = Runner(cfg, [_KillServer(after=13)], default_callbacks=False)
    with pytest.raises(ParameterServerLost, match=r"parameter server \(the run's learner\) was lost.*--resume"):
        runner.run()
    assert runner.source.actors == []  # the workers were stopped
    path = ckpt.latest(runner.run_dir / "checkpoints")
    assert path is not None and ckpt.verify(path) is None and "200" in path.name
    _, _, algo, env_steps = load_run(runner.run_dir)
    assert env_steps == 200 and isinstance(algo, A2C)
    saved = ckpt.load_latest(runner.run_dir / "checkpoints")[1]["source"]["server"]
    resumed = Runner.resume(runner.run_dir, default_callbacks=False)
    assert resumed.env_steps == 200 and resumed.source.version == saved["version"] >= 1
    now = resumed.source.state()["server"]
    assert (now["dropped"], now["staleness_max"]) == (saved["dropped"], saved["staleness_max"])
    adam_now, adam_saved = now["learner"]["optimizer"]["state"], saved["learner"]["optimizer"]["state"]
    assert int(adam_now[0]["step"]) == int(adam_saved[0]["step"]) == saved["version"]  # not a fresh optimiser
    torch.testing.assert_close(adam_now[0]["exp_avg"], adam_saved[0]["exp_avg"], rtol=0, atol=0)
    for name, v in algo.state_dict().items():  # the driver's learner holds the checkpoint's weights
        torch.testing.assert_close(resumed.learner.state_dict()[name], v, rtol=0, atol=0, msg=name)
    assert resumed.run().env_steps == 400
    assert resumed.source.version > saved["version"]  # the server counted on


def test_too_few_cpus_for_the_workers_and_the_server_is_a_clear_error(ray_local):
    from marlkit.distributed import ParameterServerSource

    with pytest.raises(ConfigError, match=r"asks for 2.25 CPUs, but the Ray cluster has 2: use fewer workers"):
        ParameterServerSource(_a2c(), "spread-v0", 8, workers=4, seed=0)
