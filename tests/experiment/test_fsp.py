"""Fictitious self-play with a new response per iteration: the learner restarts after every snapshot (weights and
optimiser, not its random streams), the pool's average strategy approaches the Nash mixture of biased
rock-paper-scissors where self-play against the latest snapshot does not, and the self-play evaluation's
win/draw/loss against a random player and the first snapshot."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import marlkit
from marlkit.algorithms.team_policies import ConstantPolicy
from marlkit.core import PolicySpaces
from marlkit.experiment.selfplay import SelfPlayEval, score_metrics, selfplay
from marlkit.population import env_payoffs, exploitability
from marlkit.population.pool import PolicyPool
from marlkit.population.selfplay import SelfPlayConfig, SelfPlaySource, default_sides, one_shot_strategy

BIASED = "biased-rock-paper-scissors-v0"
ROCK, PAPER = 0, 1
QUIET = {"progress": False, "gif": False, "eval_every": 0, "log_every": 10**9, "eval_episodes": 4, "preset": "none"}
SETS = {
    "algo.rollout_steps": 5,
    "algo.epochs": 1,
    "algo.minibatches": 1,
    "algo.advantage_norm": False,
    "algo.entropy_coef": 0.03,
    "algo.lr": 1e-2,
    "algo.gamma": 0.0,
}


def test_a_fresh_response_restarts_the_weights_but_not_the_random_streams() -> None:
    from marlkit.experiment.run import make_run_config
    from marlkit.experiment.runner import build_algo, learn

    cfg = make_run_config("ippo", BIASED, preset="none", num_envs=16, **{"algo.rollout_steps": 4})
    env = marlkit.make(BIASED, num_envs=16, seed=0)
    learner = build_algo(cfg, env, 0)
    sp = SelfPlayConfig(sampling="uniform", snapshot_every=3, fresh_response=True)
    source = SelfPlaySource(learner, env, marlkit.make(BIASED, num_envs=4), PolicyPool(), sp, seed=0)
    initial = source.initial_state
    assert initial is not None
    learn(learner, source, 3)
    trained = learner.state()
    assert any(not torch.equal(initial["model"][k], v) for k, v in trained["model"].items())
    source.collect()  # the 4th collection: snapshot of the trained learner, then the restart
    restarted = learner.state()
    assert all(torch.equal(initial["model"][k], v) for k, v in restarted["model"].items())
    assert restarted["optimizer"]["state"] == {} or restarted["optimizer"] == initial["optimizer"]
    assert not torch.equal(restarted["generator"], initial["generator"]) and restarted["rng"] != initial["rng"]
    assert len(source.pool) == 2  # the initial policy and the trained response


def _average_exploitability(sampling: str, seed: int, out) -> tuple[float, float]:
    sp = {"sampling": sampling, "snapshot_every": 10, "fresh_response": True}
    run = selfplay(
        "ippo",
        BIASED,
        steps=64 * 5 * 10 * 12,
        seed=seed,
        selfplay=sp,
        num_envs=64,
        checkpoint_every=0,
        out=str(out),
        name=sampling,
        **QUIET,
        **SETS,
    )
    game = marlkit.make(BIASED)
    payoffs = env_payoffs(game)
    strategies = np.array([one_shot_strategy(s.build(0), game) for s in PolicyPool.load(run.run_dir / "pool")])
    avg = strategies.mean(axis=0)
    return float(exploitability(payoffs, [avg, avg])), float(np.abs(avg - [0.25, 0.5, 0.25]).max())


def test_fictitious_self_play_average_approaches_nash_and_latest_does_not(tmp_path) -> None:
    fsp, fsp_gap = _average_exploitability("uniform", 0, tmp_path)
    latest, _ = _average_exploitability("latest", 0, tmp_path)
    # Uniform over the whole pool: 12 responses to the average so far; latest: each response to the one before.
    assert fsp < FSP_SHORT and fsp_gap < 0.12
    assert latest > fsp + 0.1


def test_one_shot_strategy_reads_the_exact_probabilities() -> None:
    from marlkit.algorithms.ppo import PPO, PPOConfig

    env = marlkit.make(BIASED, num_envs=4)
    policy = PPO(env, PPOConfig(), seed=3).policy(seed=0)
    obs, info = env.reset(seed=0)
    first = {"players": np.repeat(obs["players"][:1], 20_000, axis=0)}
    sampled = np.bincount(policy.act(first, None, info, explore=True)[0]["players"][:, 1], minlength=3) / 20_000
    np.testing.assert_allclose(one_shot_strategy(policy, env, seat=1), sampled, atol=0.015)


def test_score_metrics_by_hand() -> None:
    m = score_metrics("selfplay/vs_first", np.array([1.0, 1.0, 0.5, 0.0]))
    assert m["selfplay/vs_first_win"] == 0.5 and m["selfplay/vs_first_draw"] == 0.25
    assert m["selfplay/vs_first_loss"] == 0.25
    assert m["selfplay/elo_vs_first"] == pytest.approx(400 * np.log10(0.625 / 0.375))
    clipped = score_metrics("selfplay/vs_random", np.ones(8))
    assert clipped["selfplay/elo_vs_random"] == pytest.approx(400 * np.log10(15))  # s clipped to 1 - 1/16


class _Learner:
    def __init__(self, policy) -> None:
        self._policy = policy

    def policy(self, seed=None):
        return self._policy


def test_selfplay_eval_plays_the_first_snapshot_and_a_random_player() -> None:
    env = marlkit.make("rock-paper-scissors-v0", num_envs=64)
    spaces = PolicySpaces.from_env(env)
    pool = PolicyPool()
    pool.add(ConstantPolicy(spaces, ROCK), 0, 0)
    pool.add(ConstantPolicy(spaces, ROCK + 2), 5, 100)  # a later snapshot (scissors): not the one played
    source = type(
        "S", (), {"learner": _Learner(ConstantPolicy(spaces, PAPER)), "pool": pool, "sides": default_sides(env)}
    )
    m = SelfPlayEval(source, env, seed=0, explore=False).eval_metrics(None)  # type: ignore[arg-type]
    assert m["selfplay/vs_first_win"] == 1.0 and m["selfplay/vs_first_loss"] == 0.0
    assert m["selfplay/elo_vs_first"] == pytest.approx(400 * np.log10(127))
    wdl = [m[f"selfplay/vs_random_{k}"] for k in ("win", "draw", "loss")]
    assert sum(wdl) == pytest.approx(1.0) and 0.2 < wdl[0] < 0.6 and wdl[2] > 0.1  # random wins some games


def test_selfplay_runs_log_the_match_metrics(tmp_path) -> None:
    sp = {"sampling": "uniform", "snapshot_every": 2}
    kw = {**QUIET, "eval_episodes": 8, "algo.rollout_steps": 4}
    run = selfplay("ippo", BIASED, steps=16 * 4 * 4, seed=0, selfplay=sp, num_envs=16, out=str(tmp_path), **kw)
    measured = run.eval["callback_metrics"]
    for key in ("selfplay/vs_random_win", "selfplay/vs_first_loss", "selfplay/elo_vs_first"):
        assert f"eval/{key}" in run.metrics and measured[key] == run.metrics[f"eval/{key}"]
    assert sum(measured[f"selfplay/vs_random_{k}"] for k in ("win", "draw", "loss")) == pytest.approx(1.0)
    header = (run.run_dir / "metrics.csv").read_text().splitlines()[0]
    assert "eval/selfplay/vs_first_win" in header


FSP_SHORT = 0.25
