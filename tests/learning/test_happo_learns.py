"""HAPPO learns: the penalty game's coordination solved exactly in a small budget (HAPPO's continuous-control runs on
MaMuJoCo are in benchmarks/learning.py; results in benchmarks/results/)."""

import pytest

import marlkit


@pytest.mark.parametrize("seed", [0, 1])
def test_coordination_game_solved(seed, tmp_path):
    """Penalty game with k=0: (a, a) and (c, c) pay 10, the safe (b, b) 2, miscoordination 0; 20k env-steps, 64
    copies, 4 epochs per batch (the settings of IPPO/MAPPO's test); the greedy joint action must pay 10."""
    result = marlkit.train(
        "happo",
        "penalty-v0",
        steps=20_000,
        seed=seed,
        out=str(tmp_path),
        num_envs=64,
        eval_every=0,
        eval_episodes=64,
        rollout_steps=4,
        epochs=4,
        progress=False,
        gif=False,
        checkpoint_every=0,
        **{"env.kwargs": {"k": 0}},
    )
    assert result.eval_return == pytest.approx(10.0)
