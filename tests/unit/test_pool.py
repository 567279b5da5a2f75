"""The policy pool: weights-only snapshots round trip, damaged files are named, opponent sampling and PFSP weights
on hand-built win-rate tables."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import marlkit
from marlkit.algorithms.ppo import PPO, PPOConfig
from marlkit.core.errors import CheckpointError
from marlkit.population.pool import PolicyPool, opponent_weights, pfsp_weight, read_snapshot, sample_opponents


def _policy(seed: int):
    env = marlkit.make("rock-paper-scissors-v0", num_envs=2)
    return PPO(env, PPOConfig(), seed=seed).policy(seed=0), env


def test_snapshots_round_trip_weights_only(tmp_path) -> None:
    (a, env), (b, _) = _policy(0), _policy(1)
    pool = PolicyPool(tmp_path)
    pool.add(a, updates=0, env_steps=0)
    pool.add(b, updates=10, env_steps=500)
    # Each file is plain data: it loads with weights_only=True and names no module or class.
    raw = torch.load(tmp_path / "snapshot_000001.pt", weights_only=True)
    assert raw["kind"] == "pool_snapshot" and raw["updates"] == 10 and raw["policy"]["kind"] == b.kind
    back = PolicyPool.load(tmp_path)
    assert back.names == ["main@0", "main@10"] and [s.env_steps for s in back] == [0, 500]
    obs, info = env.reset(seed=3)
    for original, snap in zip((a, b), back):
        rebuilt = snap.build(seed=0)
        for k, v in original.policy_state()["nets"].items() if "nets" in original.policy_state() else []:
            assert torch.equal(v, rebuilt.policy_state()["nets"][k])
        probe = {"players": np.random.default_rng(0).random((64, 2, 8)).astype(np.float32)}
        assert np.array_equal(original.act(probe)[0]["players"], rebuilt.act(probe)[0]["players"])
    # The two snapshots are different policies (the round trip did not lose which is which).
    probe = {"players": np.random.default_rng(1).random((256, 2, 8)).astype(np.float32)}
    assert not np.array_equal(back[0].build().act(probe)[0]["players"], back[1].build().act(probe)[0]["players"])
    with pytest.raises(ValueError, match="already holds"):
        pool.add(b, updates=10, env_steps=600)


def test_a_damaged_snapshot_is_a_clear_error(tmp_path) -> None:
    pool = PolicyPool(tmp_path)
    snap = pool.add(_policy(0)[0], updates=0, env_steps=0)
    assert snap.path is not None
    data = snap.path.read_bytes()
    snap.path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"snapshot_000000\.pt .*truncated"):
        PolicyPool.load(tmp_path)
    snap.path.write_bytes(b"\0" * len(data))  # same size, other bytes
    with pytest.raises(CheckpointError, match="sha256"):
        PolicyPool.load(tmp_path)
    other = tmp_path / "elsewhere" / "snapshot_000000.pt"
    from marlkit.core import checkpoint as ckpt

    ckpt.save_atomic({"format": ckpt.FORMAT, "env_steps": 0}, other)  # a run checkpoint, not a snapshot
    with pytest.raises(CheckpointError, match="not a policy-pool snapshot"):
        read_snapshot(other)


def test_truncate_drops_later_snapshots_and_their_files(tmp_path) -> None:
    pool = PolicyPool(tmp_path)
    for u in range(3):
        pool.add(_policy(u)[0], updates=u, env_steps=u)
    pool.truncate(1)
    assert PolicyPool.load(tmp_path).names == ["main@0"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snapshot_000000.pt", "snapshot_000000.pt.json"]


def test_pfsp_weights_on_a_hand_built_table() -> None:
    p = [0.0, 0.5, 0.9, 1.0]  # the learner's win rate against each snapshot
    assert pfsp_weight(np.array(p), "hard").tolist() == pytest.approx([1.0, 0.25, 0.01, 0.0])
    assert opponent_weights("pfsp", p, "hard") == pytest.approx(np.array([1.0, 0.25, 0.01, 0.0]) / 1.26)
    assert opponent_weights("pfsp", p, "variance") == pytest.approx(np.array([0.0, 0.25, 0.09, 0.0]) / 0.34)
    assert opponent_weights("pfsp", p, "linear") == pytest.approx(np.array([1.0, 0.5, 0.1, 0.0]) / 1.6)
    assert opponent_weights("latest", p).tolist() == [0, 0, 0, 1]
    assert opponent_weights("uniform", p).tolist() == [0.25] * 4
    # Nothing left to learn from (every snapshot beaten; or only certain outcomes under variance): uniform.
    assert opponent_weights("pfsp", [1.0, 1.0], "hard").tolist() == [0.5, 0.5]
    assert opponent_weights("pfsp", [0.0, 1.0], "variance").tolist() == [0.5, 0.5]
    with pytest.raises(ValueError, match="'pfsp'"):
        opponent_weights("pfps", p)
    with pytest.raises(ValueError, match="variance"):
        opponent_weights("pfsp", p, "varaince")
    with pytest.raises(ValueError, match="empty"):
        opponent_weights("uniform", [])


def test_sampling_follows_the_weights() -> None:
    rng = np.random.default_rng(0)
    drawn = sample_opponents(rng, 20_000, "pfsp", [0.0, 0.5, 0.9, 1.0], "hard")
    freq = np.bincount(drawn, minlength=4) / len(drawn)
    assert freq == pytest.approx(np.array([1.0, 0.25, 0.01, 0.0]) / 1.26, abs=0.01)
    assert freq[3] == 0.0
