"""Several learners (``experiment.learners``): the driver's learner and a Ray replica joined in a gloo group on
127.0.0.1. Their averaged step on the two halves of a batch is one learner's step on the whole batch (the same
gradient norm before clipping, the same weights, the replica included, over two updates), and for MAPPO every
minibatch step is averaged before clipping with normalisation over the whole batch; a run with two learners
fed by two Ray workers runs, a lost replica fails it cleanly with its checkpoint intact and it resumes from there; bad
settings are clear errors."""

import copy

import pytest
import torch

from marlkit.algorithms.a2c import A2C, A2CConfig
from marlkit.algorithms.happo import HAPPO, HAPPOConfig
from marlkit.algorithms.ppo import PPO, PPOConfig
from marlkit.core import checkpoint as ckpt
from marlkit.core.config import ConfigError
from marlkit.core.contracts import GroupUpdatable, Progress
from marlkit.data.rollout import EpisodeStats
from marlkit.distributed import RolloutWorker, merge_rollouts
from marlkit.envs.registry import make
from marlkit.experiment.run import make_run_config
from marlkit.experiment.runner import Runner

QUIET = dict(progress=False, gif=False, eval_every=0, eval_episodes=8, log_every=40)


def _a2c(seed=0):
    torch.manual_seed(seed)
    cfg = A2CConfig(centralised_critic=True, rollout_steps=5, advantage_norm=False)
    return A2C(make("spread-v0", num_envs=8, seed=0), cfg, seed=seed)


class _Fixed:
    """A source of given batches (the same ones for the group and the single learner)."""

    steps_per_batch = 40

    def __init__(self, batches):
        self.batches = list(batches)

    def collect(self):
        return self.batches.pop(0), EpisodeStats()

    def state(self):
        return {}

    def load_state(self, state):
        pass


def _batch(learner, seed):
    state = learner.policy().policy_state()
    parts = [RolloutWorker("spread-v0", 4, 5, seed, i, store_state=True).sample(state, 0)[0] for i in range(2)]
    return merge_rollouts(parts, "local")


def test_the_ppo_family_updates_in_a_group_through_its_hooks_and_a2c_through_gradients():
    ppo = PPO(make("spread-v0", num_envs=4, seed=0), PPOConfig(), seed=0)
    assert isinstance(ppo, GroupUpdatable)
    assert not isinstance(_a2c(), GroupUpdatable)  # its group step is gradients / apply_gradients
    del ppo.reduce_gradients  # a learner without both hooks cannot average inside its update
    assert not isinstance(ppo, GroupUpdatable)


def test_two_gloo_learners_take_one_learners_step_on_the_whole_batch(ray_local):
    from marlkit.distributed.learner_group import LearnerGroup

    learner = _a2c()
    single = copy.deepcopy(learner)
    group = LearnerGroup(learner, _Fixed([]), 2)
    try:
        for k in range(2):
            batch = _batch(single, seed=11 + k)  # acted by the current weights (equal in both)
            progress = Progress(40 * (k + 1), 400, 40)
            learner.set_progress(progress)
            single.set_progress(progress)
            got, want = group.update(learner, batch), single.update(batch)
            # the norm of the gradient the step used, before clipping: a sum over the learners would be twice it
            assert got["loss/grad_norm"] == pytest.approx(want["loss/grad_norm"], rel=1e-5)
            assert {k: got[k] for k in want} == pytest.approx(want, rel=1e-5, abs=1e-7)
            for (name, p), (_, q) in zip(learner.named_parameters(), single.named_parameters()):
                torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=name)
            (replica,) = group.replica_weights()
            for name, v in learner.state_dict().items():
                torch.testing.assert_close(torch.from_numpy(replica[name].copy()), v, rtol=0, atol=0, msg=name)
        assert got["perf/learners"] == 2.0
        assert not torch.equal(next(learner.parameters()), next(_a2c().parameters()))  # the steps moved them
    finally:
        group.close()


def _ppo(algo="mappo", seed=0):
    torch.manual_seed(seed)
    kw = dict(centralised_critic=True, rollout_steps=5, epochs=2, minibatches=2, max_grad_norm=0.5)
    env = make("spread-v0", num_envs=8, seed=0)
    return PPO(env, PPOConfig(**kw), seed=seed) if algo == "mappo" else HAPPO(env, HAPPOConfig(**kw), seed=seed)


@pytest.mark.parametrize("algo", ["mappo", "happo"])
def test_two_gloo_ppo_learners_take_one_learners_minibatch_steps(ray_local, algo):
    """MAPPO (2 epochs x 2 minibatches per update, value and advantage normalisation, gradients clipped at 0.5,
    below their norm) with 2 learners on the two halves of each batch equals one learner on the whole batch drawing
    the same minibatches (``minibatch_shares``): the mean gradient norm before clipping, every loss statistic, the
    weights and the value normalisation's running statistics (the replica's too), over two updates. A sum in place of
    the mean doubles the norm; clipping before averaging, or per-share advantage or value-target statistics, change
    the losses and the weights. HAPPO: the same for each agent's actor steps and the critics' steps."""
    from marlkit.distributed.learner_group import LearnerGroup

    learner = _ppo(algo)
    single = copy.deepcopy(learner)
    single.minibatch_shares = 2
    group = LearnerGroup(learner, _Fixed([]), 2)
    try:
        for k in range(2):
            batch = _batch(single, seed=21 + k)
            progress = Progress(40 * (k + 1), 400, 40)
            learner.set_progress(progress)
            single.set_progress(progress)
            got, want = group.update(learner, batch), single.update(batch)
            assert got["loss/grad_norm"] == pytest.approx(want["loss/grad_norm"], rel=1e-5)
            assert {k: got[k] for k in want} == pytest.approx(want, rel=1e-5, abs=1e-6)
            for name, v in single.state_dict().items():  # parameters and the value norms' statistics
                torch.testing.assert_close(learner.state_dict()[name], v, rtol=1e-5, atol=1e-6, msg=name)
            (replica,) = group.replica_weights()
            for name, v in learner.state_dict().items():
                torch.testing.assert_close(torch.from_numpy(replica[name].copy()), v, rtol=0, atol=0, msg=name)
        assert not torch.equal(next(learner.parameters()), next(_ppo(algo).parameters()))  # the steps moved them
    finally:
        group.close()
    assert learner.reduce_gradients is None and learner.sum_over_learners is None  # one learner again


class _KillReplica:
    def __init__(self, after):
        self.after = after

    def on_update(self, runner, metrics):
        if runner.updates == self.after:
            import ray

            ray.kill(runner.source.replicas[0], no_restart=True)


def test_a_run_with_two_learners_stops_cleanly_when_one_is_lost(ray_local, tmp_path):
    """MAA2C with learners=2 fed by two pipelined Ray workers: 6 updates with both learners, a checkpoint at 200
    env-steps, then the replica is killed: the next update fails with LearnerLost, the workers are stopped and
    the checkpoint at 200 is intact; the run resumes from it with a fresh replica of the resumed learner and
    completes its 400 env-steps."""
    from marlkit.distributed.learner_group import LearnerLost
    from marlkit.experiment.runner import load_run

    cfg = make_run_config(
        "maa2c", "spread-v0", steps=400, seed=3, num_envs=8, learners=2, workers=2, rollout_steps=5,
        advantage_norm=False, preset="none", checkpoint_every=200, out=str(tmp_path), name="group", **QUIET,
    )  # fmt: skip
    rows = []
    runner = Runner(cfg, [_KillReplica(after=6)], default_callbacks=False)
    runner.callbacks.append(type("Rows", (), {"on_log": lambda self, r, row: rows.append(row)})())
    with pytest.raises(LearnerLost, match=r"a learner of the group of 2 was lost .*--resume"):
        runner.run()
    assert [r["perf/learners"] for r in rows] == [2.0] * 6 and runner.source.replicas == []
    assert {r["perf/policy_lag"] for r in rows[1:]} == {1.0} and runner.source.source.actors == []
    path = ckpt.latest(runner.run_dir / "checkpoints")
    assert path is not None and ckpt.verify(path) is None and "200" in path.name
    _, _, algo, env_steps = load_run(runner.run_dir)
    assert env_steps == 200 and isinstance(algo, A2C)
    # --resume: the replica starts as the resumed learner (weights from the checkpoint), and the run completes
    resumed = Runner.resume(runner.run_dir, default_callbacks=False)
    assert resumed.env_steps == 200
    (replica,) = resumed.source.replica_weights()
    for name, v in algo.state_dict().items():
        torch.testing.assert_close(torch.from_numpy(replica[name].copy()), v, rtol=0, atol=0, msg=name)
    assert resumed.run().env_steps == 400


def test_bad_learner_settings_are_clear_errors(ray_local, tmp_path):
    from marlkit.distributed.learner_group import LearnerGroup

    with pytest.raises(ConfigError, match=r"experiment.learners .* 1 with a parameter server"):
        make_run_config("ia2c", "spread-v0", workers=2, learners=2, ray_mode="ps-sync")
    with pytest.raises(ConfigError, match=r"experiment.learners .* an integer >= 1"):
        make_run_config("ia2c", "spread-v0", learners=0)
    base = dict(steps=400, out=str(tmp_path), preset="none", **QUIET)
    with pytest.raises(ConfigError, match=r"VDN has neither gradients/apply_gradients .* experiment.learners = 1"):
        Runner(make_run_config("vdn", "spread-v0", learners=2, **base), default_callbacks=False)
    with pytest.raises(ConfigError, match=r"env.num_envs \(9 copies of spread-v0\) must be a multiple of it"):
        Runner(make_run_config("ia2c", "spread-v0", learners=2, num_envs=9, **base), default_callbacks=False)
    with pytest.raises(ConfigError, match=r"learners = 6 asks for 2.5 CPUs .* but the Ray cluster has 2"):
        LearnerGroup(_a2c(), _Fixed([]), 6)
