"""The rollout worker as a plain class (no Ray): its batches are the local collector's for the same seeds and
weights, it returns rollout_steps of every copy, a resumed worker continues its stream, and batches merge along the
copies."""

import numpy as np
import pytest
import torch

from marlkit.algorithms.ppo import PPO, PPOConfig
from marlkit.collect import Collector
from marlkit.core import policy_from_state
from marlkit.core.config import ConfigError
from marlkit.distributed import RolloutWorker, merge_rollouts, merge_stats, split_envs, worker_seed
from marlkit.distributed.worker import pack_state, unpack_state
from marlkit.envs.registry import make


def _learner(num_envs=4):
    return PPO(make("spread-v0", num_envs=num_envs, seed=0), PPOConfig(centralised_critic=True, rollout_steps=5))


def _same(a, b):
    for name in ("obs", "actions", "rewards", "next_obs", "terminated", "truncated"):
        for g in getattr(a, name):
            torch.testing.assert_close(getattr(a, name)[g], getattr(b, name)[g], rtol=0, atol=0)
    torch.testing.assert_close(a.state, b.state, rtol=0, atol=0)
    torch.testing.assert_close(a.extras["agents"]["logp"], b.extras["agents"]["logp"], rtol=0, atol=0)


def test_a_worker_collects_what_a_local_collector_of_the_same_seeds_and_weights_does():
    learner = _learner()
    state = learner.policy().policy_state()
    worker = RolloutWorker("spread-v0", 4, 5, seed=7, index=1, store_state=True)
    rollout, stats, version = worker.sample(state, 3)
    assert version == 3 and rollout.source == "worker-1"
    assert rollout.obs["agents"].shape == (5, 4, 3, 18)  # rollout_steps of every copy, state stored
    policy = policy_from_state(state, seed=worker_seed(7, 1, "policy", 3))
    env = make("spread-v0", num_envs=4)
    local, _ = Collector(env, policy, 5, seed=worker_seed(7, 1, "env"), store_state=True).collect()
    _same(rollout, local)


def test_workers_of_one_run_get_different_streams_and_new_weights_new_sampling_seeds():
    assert len({worker_seed(0, i, "env") for i in range(4)}) == 4
    assert worker_seed(0, 0, "policy", 1) != worker_seed(0, 0, "policy", 2)
    assert worker_seed(0, 0, "env") != worker_seed(1, 0, "env")


def test_a_restored_worker_continues_from_the_saved_generator_not_from_its_seed():
    """As a resumed local run does: every copy is reset from the saved generator (episodes in progress are dropped),
    so two workers restored from one state make the same batches, and not those of a fresh start."""
    state = _learner().policy().policy_state()
    a = RolloutWorker("spread-v0", 4, 5, seed=0)
    first, _, _ = a.sample(state, 0)
    first = first.obs["agents"].clone()
    saved = a.state()
    batches = []
    for _ in range(2):
        b = RolloutWorker("spread-v0", 4, 5, seed=0)
        b.load_state(saved)  # before its first weights, as a resumed run restores it
        batches.append(b.sample(state, 1)[0].obs["agents"].clone())
    torch.testing.assert_close(batches[0], batches[1], rtol=0, atol=0)
    assert not torch.equal(batches[0][0], first[0])


def test_a_worker_without_weights_says_so():
    with pytest.raises(RuntimeError, match="no weights yet"):
        RolloutWorker("spread-v0", 2, 3, seed=0).sample()


def test_merged_rollouts_put_the_copies_side_by_side_in_worker_order():
    state = _learner().policy().policy_state()
    parts = []
    for i, n in enumerate((3, 2)):
        r, s, _ = RolloutWorker("spread-v0", n, 5, seed=0, index=i, store_state=True).sample(state, 0)
        parts.append((r._replace(obs={g: v.clone() for g, v in r.obs.items()}), s))
    merged = merge_rollouts([p[0] for p in parts], "ray")
    assert merged.source == "ray" and merged.obs["agents"].shape == (5, 5, 3, 18) and merged.state.shape[1] == 5
    torch.testing.assert_close(merged.obs["agents"][:, 3:], parts[1][0].obs["agents"], rtol=0, atol=0)
    stats = merge_stats([p[1] for p in parts])
    assert len(stats) == len(parts[0][1]) + len(parts[1][1])


def test_batches_sent_as_arrays_merge_into_the_same_tensors_in_storage_of_their_own():
    """What a worker sends (``sample_arrays``: NumPy views of its buffer) merges into the tensors the tensor parts
    give, copied out: the worker's next collection cannot change a batch already handed over."""
    state = _learner().policy().policy_state()
    workers = [RolloutWorker("spread-v0", n, 5, seed=0, index=i, store_state=True) for i, n in enumerate((3, 2))]
    arrays = [w.sample_arrays(state, 0)[0] for w in workers]
    assert isinstance(arrays[0].obs["agents"], np.ndarray) and isinstance(
        arrays[0].extras["agents"]["logp"], np.ndarray
    )
    merged = merge_rollouts(arrays, "ray")
    again = [RolloutWorker("spread-v0", n, 5, seed=0, index=i, store_state=True) for i, n in enumerate((3, 2))]
    expected = merge_rollouts([w.sample(state, 0)[0] for w in again], "ray")
    _same(merged, expected)
    single = merge_rollouts(arrays[:1], "ray")
    kept = single.obs["agents"].clone()
    workers[0].sample_arrays(state, 0)  # overwrites the worker's buffer, which arrays[0] views
    assert isinstance(single.obs["agents"], torch.Tensor)
    torch.testing.assert_close(single.obs["agents"], kept, rtol=0, atol=0)


def test_a_packed_policy_state_unpacks_to_a_policy_that_acts_the_same():
    state = _learner().policy().policy_state()
    packed = pack_state(state)
    assert not any(isinstance(v, torch.Tensor) for v in packed["actors"]["agents"]["weights"].values())
    obs = {"agents": np.random.default_rng(0).normal(size=(4, 3, 18)).astype(np.float32)}
    a = policy_from_state(state, seed=3).act(obs, explore=True)
    b = policy_from_state(unpack_state(packed), seed=3).act(obs, explore=True)
    np.testing.assert_array_equal(a[0]["agents"], b[0]["agents"])
    np.testing.assert_array_equal(a[1]["agents"]["logp"], b[1]["agents"]["logp"])


def test_copies_are_shared_evenly_and_every_worker_needs_one():
    assert split_envs(128, 2) == [64, 64]
    assert split_envs(5, 2) == [3, 2]
    assert sum(split_envs(17, 4)) == 17
    with pytest.raises(ConfigError, match=r"experiment.workers = 3 .* 1 <= workers <= num_envs"):
        split_envs(2, 3)


def test_batches_hold_rollout_steps_of_every_copy_even_while_episodes_run_on():
    """spread-v0's episodes last 25 steps: a 5-step batch ends mid-episode for every copy and is still returned."""
    state = _learner().policy().policy_state()
    rollout, stats, _ = RolloutWorker("spread-v0", 4, 5, seed=0).sample(state, 0)
    assert len(stats) == 0 and rollout.rewards["agents"].shape[:2] == (5, 4)
    assert not np.any(rollout.truncated["agents"].numpy())
