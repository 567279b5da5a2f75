"""Strategies: each runs a tiny sequence through the trainer, and each does what it names on the weights."""

import json

import numpy as np
import pytest
import torch

from marlkit.core.config import ConfigError
from marlkit.lifelong.strategies import STRATEGIES, make_strategy
from marlkit.lifelong.trainer import ContinualTrainer, LifelongConfig

TINY = dict(num_tasks=2, steps_per_task=200, evals_per_task=2, eval_episodes=2, num_envs=4, plots=False)
#: Fewer samples for the Fisher and the replay store than their defaults, to keep the test short.
SMALL = {"ewc": {"samples": 16, "steps": 32}, "online-ewc": {"samples": 16, "steps": 32}, "replay": {"steps": 32}}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = {}
    for name in [*STRATEGIES, "heads+replay"]:
        cfg = LifelongConfig(
            strategy=name, strategy_kwargs=SMALL.get(name, {}), **{**TINY, "plots": name == "finetune"}
        )
        trainer = ContinualTrainer(cfg, tmp_path_factory.mktemp(name.replace("+", "_")))
        out[name] = (trainer, trainer.run())
    return out


def test_every_strategy_runs_the_sequence_and_writes_its_results(runs):
    for name, (trainer, res) in runs.items():
        R = np.asarray(res["R"])
        assert R.shape == (2, 2) and np.isfinite(R).all() and ((R >= 0) & (R <= 1)).all(), name
        assert len(res["curves"][0]) == 3 and res["curves"][0][-1] == R[0, 0], name  # before, mid-stage, end
        saved = json.loads((trainer.run_dir / "lifelong.json").read_text())
        assert saved["completed"] == 2 and saved["R"] == res["R"]
        if name == "finetune":
            assert (trainer.run_dir / "plots" / "R.png").stat().st_size > 0
        assert (trainer.run_dir / "stage-01" / "config.yaml").exists()


def test_l2_and_ewc_hold_the_weights_near_the_anchor(runs):
    for name in ("l2", "ewc", "online-ewc"):
        strategy = runs[name][0].strategy
        anchor = strategy.anchor if name == "l2" else strategy.terms[-1][0]
        assert anchor and all(torch.is_tensor(a) for a in anchor.values())
    ewc = runs["ewc"][0].strategy
    assert len(ewc.terms) == 2 and len(runs["online-ewc"][0].strategy.terms) == 1
    fisher = ewc.terms[0][1]
    assert sum(float(f.sum()) for f in fisher.values()) > 0  # the policy's log-likelihood has gradients


def test_packnet_splits_the_weights_and_freezes_earlier_tasks(runs):
    trainer = runs["packnet"][0]
    owner = trainer.strategy.owner
    counts = {t: sum(int((o == t).sum()) for o in owner.values()) for t in (-1, 0, 1)}
    assert counts[0] > 0 and counts[1] > 0 and counts[-1] == 0  # the last task takes what is left
    # Task 0 acts with its own weights only: the others are zero while it is evaluated, and come back after.
    params = dict(trainer.learner.named_parameters())
    before = {n: p.detach().clone() for n, p in params.items()}
    with trainer.strategy.acting_for(trainer.learner, 0):
        for n, p in params.items():
            assert (p[owner[n] == 1] == 0).all()
            assert torch.equal(p[owner[n] == 0], trainer.strategy.frozen[n][owner[n] == 0])
    assert all(torch.equal(before[n], p) for n, p in params.items())


def test_packnet_prunes_then_retrains_the_kept_weights_within_the_stage(tmp_path):
    cfg = LifelongConfig(strategy="packnet", strategy_kwargs={"retrain": 0.5}, **{**TINY, "steps_per_task": 300})
    trainer = ContinualTrainer(cfg, tmp_path)
    strategy, params = trainer.strategy, dict(trainer.learner.named_parameters())
    at_prune, prune = {}, strategy._prune

    def snapshot(task):
        prune(task)
        at_prune.update({n: p.detach().clone() for n, p in params.items()})

    strategy._prune = snapshot
    trainer._run_stage(0)  # 3 updates of 100 env-steps: pruned after the 2nd, the 3rd retrains what was kept
    assert at_prune, "pruned within the stage, not after it"
    owner = strategy.owner
    kept = sum(int((o == 0).sum()) for o in owner.values())
    released = sum(int((o < 0).sum()) for o in owner.values())
    assert kept > 0 and released > 0  # half of the weights kept for task 0, the rest released for task 1
    assert all((p[owner[n] < 0] == 0).all() for n, p in params.items())  # released weights stay 0
    assert any(not torch.equal(p[owner[n] == 0], at_prune[n][owner[n] == 0]) for n, p in params.items())


def test_heads_swap_per_task(runs):
    trainer = runs["heads"][0]
    heads = trainer.strategy.heads
    assert set(heads) == {0, 1}
    assert any(not torch.equal(a["weight"], b["weight"]) for a, b in zip(heads[0], heads[1]))


def test_resume_continues_after_the_last_finished_stage(tmp_path):
    cfg = LifelongConfig(strategy="ewc", strategy_kwargs=SMALL["ewc"], **TINY)
    whole = ContinualTrainer(cfg, tmp_path / "whole").run()
    part = ContinualTrainer(cfg, tmp_path / "part")
    part._run_stage(0)  # one stage, then stop as if interrupted
    part.completed = 1
    torch.save(
        {"algo": part.learner.state(), "strategy": part.strategy.state()},
        tmp_path / "part" / "stage-00" / "lifelong_state.pt",
    )
    part._save()
    resumed = ContinualTrainer.resume(tmp_path / "part").run()
    assert resumed["R"] == whole["R"] and resumed["history"] == whole["history"]


def test_bad_strategies_are_clear_errors():
    with pytest.raises(ConfigError, match=r"unknown strategy 'ewk'.*did you mean 'ewc'"):
        make_strategy("ewk")
    with pytest.raises(ConfigError, match="does not compose"):
        make_strategy("multitask+ewc")
    with pytest.raises(ConfigError, match="strategy 'l2'"):
        make_strategy("l2", weight=3)
    with pytest.raises(ConfigError, match=r"gradient descent|loss-term hook"):
        from marlkit.algorithms.tabular import TabularConfig, TabularQ
        from marlkit.envs.registry import make
        from marlkit.lifelong.strategies import EWC, StrategyContext

        env = make("climbing-v0")
        EWC().attach(TabularQ(env, TabularConfig()), StrategyContext(2, None, None))


def test_reset_replay_starts_each_task_fresh_and_clones_the_earlier_ones_back(tmp_path):
    import torch.nn.functional as F

    from marlkit.lifelong.strategies import policy_logits

    trainer = ContinualTrainer(LifelongConfig(strategy="reset+replay", **TINY), tmp_path)
    reset, replay = trainer.strategy.parts
    learner = trainer.learner
    trainer._run_stage(0)
    (group, (obs, mask, logp_old)), *_ = replay.store.items()
    stored = obs.shape[0]

    def kl() -> float:
        with torch.no_grad():
            logp = F.log_softmax(policy_logits(learner, group, obs, mask if mask.numel() else None), -1)
            return float((logp_old.exp() * (logp_old - logp)).sum(-1).mean())

    trained = kl()
    trainer.strategy.before_task(learner, 1)  # the learner is a fresh one; the stored samples stay
    after_reset = kl()
    assert after_reset > trained and replay.store[group][0].shape[0] == stored
    trainer._run_stage(1)  # learning task 1 while cloning task 0 brings task 0's policy back
    assert replay.store[group][0].shape[0] == 2 * stored
    assert kl() < 0.5 * after_reset
