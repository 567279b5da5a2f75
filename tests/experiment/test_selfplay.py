"""Self-play: seats and matches on rock-paper-scissors with fixed players, a learner trained against its pool
(learns the best response; resumes exactly; same seed, same pool), and the league command."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import marlkit
from marlkit.algorithms.team_policies import ConstantPolicy
from marlkit.cli import main
from marlkit.core import PolicySpaces
from marlkit.experiment.selfplay import resume_selfplay, selfplay
from marlkit.population.pool import PolicyPool
from marlkit.population.selfplay import SeatedEnv, cross_play, default_sides, match, seat_masks

ROCK, PAPER, SCISSORS = 0, 1, 2
RPS = "rock-paper-scissors-v0"
QUIET = {"progress": False, "gif": False, "eval_every": 0, "log_every": 10**9, "eval_episodes": 4, "preset": "none"}
FAST = {"algo.rollout_steps": 4, "algo.epochs": 2, "algo.minibatches": 1}


def _constant(env, action: int) -> ConstantPolicy:
    return ConstantPolicy(PolicySpaces.from_env(env), action)


def test_sides_and_seats() -> None:
    rps, tag = marlkit.make(RPS, num_envs=4), marlkit.make("tag-v0", num_envs=2)
    assert default_sides(rps) == [{"players": (0,)}, {"players": (1,)}]
    assert default_sides(tag) == [{"adversaries": (0, 1, 2)}, {"good": (0,)}]
    masks = seat_masks(rps, default_sides(rps), np.array([0, 1, 0, 1]))
    assert masks["players"].tolist() == [[True, False], [False, True], [True, False], [False, True]]


def test_seated_env_gives_opponents_their_seats_and_marks_them_inactive() -> None:
    inner = marlkit.make(RPS, num_envs=4, seed=0)
    seats = seat_masks(inner, default_sides(inner), np.array([0, 1, 0, 1]))
    env = SeatedEnv(inner, seats)
    env.set_opponents(
        [
            (_constant(inner, SCISSORS), np.array([True, True, False, False])),
            (_constant(inner, PAPER), np.array([False, False, True, True])),
        ]
    )
    _, info = env.reset(seed=0)
    assert info["active"]["players"].tolist() == seats["players"].tolist()
    _, rewards, _, _, info = env.step({"players": np.full((4, 2), ROCK)})
    # The learner's rock at its seat; the opponent's action at the other: scissors (copies 0, 1), paper (2, 3).
    assert rewards["players"][:, 0].tolist() == [1, -1, -1, 1]  # copy 1: scissors vs rock -> player_0 loses
    assert info["active"]["players"].tolist() == seats["players"].tolist()


def test_match_is_paired_and_role_swapped() -> None:
    env = marlkit.make(RPS, num_envs=8)
    rock, paper = _constant(env, ROCK), _constant(env, PAPER)
    outcome, score = match(env, rock, paper, default_sides(env), seed=0)
    assert outcome.tolist() == [0.0] * 8 and score.tolist() == [-4.0] * 8  # (-1 + -1) - (1 + 1)
    outcome, _ = match(env, rock, _constant(env, ROCK), default_sides(env), seed=0)
    assert outcome.tolist() == [0.5] * 8
    cross = cross_play(env, [rock, paper, _constant(env, SCISSORS)], ["R", "P", "S"], default_sides(env), seed=0)
    assert cross.win_rate.tolist() == [[0.5, 0.0, 1.0], [1.0, 0.5, 0.0], [0.0, 1.0, 0.5]]
    assert len(cross.games) == 3 * 8


def _strategy(policy) -> np.ndarray:
    obs = np.zeros((2000, 2, 8), np.float32)
    obs[:, :, 6] = 1.0
    return np.bincount(policy.act({"players": obs}, explore=True)[0]["players"][:, 0], minlength=3) / 2000


def test_learner_best_responds_to_a_pool_of_rock(tmp_path) -> None:
    from marlkit.experiment.run import make_run_config
    from marlkit.experiment.runner import build_algo, learn
    from marlkit.population.selfplay import SelfPlayConfig, SelfPlaySource

    cfg = make_run_config("ippo", RPS, preset="none", num_envs=32, **{"algo.rollout_steps": 4})
    env = marlkit.make(RPS, num_envs=32, seed=0)
    learner = build_algo(cfg, env, 0)
    pool = PolicyPool()
    pool.add(_constant(env, ROCK), 0, 0, "rock")
    source = SelfPlaySource(
        learner,
        env,
        marlkit.make(RPS, num_envs=4),
        pool,
        SelfPlayConfig(sampling="uniform", snapshot_every=10**6),
        seed=0,
    )
    source.collections = 1  # no snapshot of the learner: the pool stays rock
    learn(learner, source, 15)
    p = learner.policy(0)
    assert _strategy(p)[PAPER] > 0.9
    obs = np.zeros((2000, 2, 8), np.float32)
    obs[:, :, 6] = 1.0
    seat1 = np.bincount(p.act({"players": obs}, explore=True)[0]["players"][:, 1], minlength=3) / 2000
    assert seat1[PAPER] > 0.9  # it learned on both seats


def test_selfplay_run_resumes_exactly_and_is_seeded(tmp_path) -> None:
    sp = {"sampling": "pfsp", "snapshot_every": 3, "win_rate_games": 8, "match_explore": True}
    kw = dict(selfplay=sp, num_envs=16, checkpoint_every=16 * 4 * 6, **QUIET, **FAST)
    a = selfplay("ippo", RPS, steps=16 * 4 * 12, seed=3, out=str(tmp_path), name="a", **kw)
    b = selfplay("ippo", RPS, steps=16 * 4 * 12, seed=3, out=str(tmp_path), name="b", **kw)
    pa, pb = PolicyPool.load(a.run_dir / "pool"), PolicyPool.load(b.run_dir / "pool")
    assert pa.names == pb.names == ["main@0", "main@3", "main@6", "main@9", "main@12"]
    probe = {"players": np.random.default_rng(0).random((32, 2, 8)).astype(np.float32)}
    for x, y in zip(pa, pb):
        assert np.array_equal(
            x.build(0).act(probe, explore=True)[0]["players"], y.build(0).act(probe, explore=True)[0]["players"]
        )
    # Two resumes of the same mid-run checkpoint: the later snapshots are dropped, then retaken identically.
    for name in ("c", "d"):
        shutil.copytree(a.run_dir, tmp_path / name)
        ckpts = sorted((tmp_path / name / "checkpoints").glob("step_*.pt"))
        for late in ckpts[1:]:
            late.unlink()
            late.with_name(late.name + ".json").unlink()
        (tmp_path / name / "eval.json").unlink()
        resume_selfplay(tmp_path / name)
    pc, pd = PolicyPool.load(tmp_path / "c" / "pool"), PolicyPool.load(tmp_path / "d" / "pool")
    assert pc.names == pd.names == pa.names
    for x, y in zip(pc, pd):
        assert np.array_equal(
            x.build(0).act(probe, explore=True)[0]["players"], y.build(0).act(probe, explore=True)[0]["players"]
        )


def test_league_command_and_bad_options(tmp_path, capsys) -> None:
    sp = {"sampling": "uniform", "snapshot_every": 4}
    run = selfplay(
        "ippo",
        RPS,
        steps=16 * 4 * 8,
        seed=0,
        selfplay=sp,
        num_envs=16,
        out=str(tmp_path),
        name="r",
        checkpoint_every=0,
        **QUIET,
        **FAST,
    )
    png = tmp_path / "heat.png"
    assert main(["league", str(run.run_dir), "--games", "16", "--explore", "--heatmap", str(png)]) == 0
    out = capsys.readouterr().out
    assert "r:main@0" in out and "r:main@8" in out and "openskill" in out and png.stat().st_size > 1000
    assert main(["selfplay", "ippo", RPS, "--sampling", "pfps", "--out", str(tmp_path)]) == 2
    assert "selfplay.sampling = 'pfps' is not allowed" in capsys.readouterr().err
    assert main(["league", str(tmp_path / "nowhere")]) == 2
    assert "not a run directory" in capsys.readouterr().err
    plain = marlkit.train("ippo", RPS, steps=64, num_envs=16, out=str(tmp_path), name="plain", **QUIET, **FAST)
    assert main(["selfplay", "--resume", str(plain.run_dir)]) == 2
    assert "is not a self-play run" in capsys.readouterr().err
    # A plain run's players are its latest policy: it can join the league.
    assert main(["league", str(run.run_dir), str(plain.run_dir), "--games", "8", "--explore"]) == 0
    assert "plain:step_64" in capsys.readouterr().out


@pytest.mark.parametrize("n", [1])
def test_one_sided_env_is_refused(n: int) -> None:
    with pytest.raises(ValueError, match="two sides"):
        default_sides(marlkit.make("spread-v0", num_agents=n))


def test_tag_selfplay_snapshot_outrates_the_untrained_one(tmp_path) -> None:
    """Ten updates of MAPPO self-play on a small tag-v0 (2 predators, 1 prey, no obstacles): the trained player
    beats its untrained snapshot in paired role-swapped games and is rated above it."""
    from marlkit.population import ratings

    kwargs = {"num_adversaries": 2, "num_obstacles": 0}
    run = selfplay(
        "mappo",
        "tag-v0",
        steps=32 * 25 * 10,
        seed=0,
        selfplay={"snapshot_every": 10, "win_rate_games": 8},
        num_envs=32,
        out=str(tmp_path),
        checkpoint_every=0,
        **QUIET,
        **{"env.kwargs": kwargs, "algo.epochs": 4, "algo.minibatches": 2},
    )
    pool = PolicyPool.load(run.run_dir / "pool")
    assert pool.names == ["main@0", "main@10"]
    env = marlkit.make("tag-v0", num_envs=256, **kwargs)
    outcome, _ = match(env, pool[-1].build(0), pool[0].build(0), default_sides(env), seed=1)
    assert outcome.mean() > 0.6
    games = ratings.interleave([(0, 1, float(o)) for o in outcome])
    elo, skill = ratings.elo(games, 2), ratings.openskill_ratings(games, 2)
    assert elo[0] - elo[1] > 100 and skill[0].mu - 2 * skill[0].sigma > skill[1].mu


def _against_pure_pool(sampling: str, updates: int) -> tuple[np.ndarray, list[int]]:
    """IPPO trained on rock-paper-scissors against a pool of pure rock, scissors and paper (newest)."""
    from marlkit.experiment.run import make_run_config
    from marlkit.experiment.runner import build_algo, learn
    from marlkit.population.selfplay import SelfPlayConfig, SelfPlaySource

    sets = {"algo.rollout_steps": 4, "algo.gamma": 0.0, "algo.entropy_coef": 0.03, "algo.lr": 5e-4}
    cfg = make_run_config("ippo", RPS, preset="none", num_envs=64, **sets)
    env = marlkit.make(RPS, num_envs=64, seed=0)
    learner = build_algo(cfg, env, 0)
    pool = PolicyPool()
    for a in (ROCK, SCISSORS, PAPER):
        pool.add(_constant(env, a), 0, 0, f"pure{a}")
    config = SelfPlayConfig(sampling=sampling, snapshot_every=10**6, opponents_per_batch=64)
    source = SelfPlaySource(learner, env, marlkit.make(RPS, num_envs=4), pool, config, seed=0)
    source.collections = 1  # the learner's own snapshots stay out of the pool
    learn(learner, source, updates)
    return _strategy(learner.policy(0)), source.opponent_counts


def test_fictitious_self_play_faces_the_pool_average() -> None:
    """Against the newest snapshot only (plain self-play: paper) the learner commits to the best response,
    scissors; against the uniform mixture of a pool of pure strategies (fictitious self-play) every action is worth
    0, and it meets every snapshot about equally often and commits to none. (That the *average* of a fictitious
    self-play pool approaches the uniform Nash strategy is benchmarks/selfplay.py's rock-paper-scissors record, and
    the slow test below.)"""
    fsp, counts = _against_pure_pool("uniform", 30)
    latest, _ = _against_pure_pool("latest", 30)
    assert min(counts) > 0.3 * 30 * 64  # every pure strategy was met about equally often (1/3 each)
    assert latest[SCISSORS] > 0.95
    assert fsp.max() < 0.75
