"""The short version of benchmarks/lifelong.py: two tasks whose controls disagree, learned one after the other by
IPPO. Fine-tuning learns the first and forgets it on the second; EWC and replay (behaviour cloning of the first
task) keep it while they learn the second. The whole sequence with every strategy and 3 seeds is the benchmark."""

import numpy as np
import pytest

from marlkit.lifelong import metrics as M
from marlkit.lifelong.trainer import ContinualTrainer, LifelongConfig

SHORT = dict(
    sequence="foraging-controls",
    num_tasks=2,
    steps_per_task=12000,
    evals_per_task=1,
    eval_episodes=16,
    num_envs=16,
    sets=("algo.entropy_coef=0.03",),
    plots=False,
)


@pytest.fixture(scope="module")
def matrices(tmp_path_factory):
    out = {}
    for name, kwargs in (("finetune", {}), ("ewc", {"lam": 10.0}), ("replay", {"lam": 0.3})):
        cfg = LifelongConfig(strategy=name, strategy_kwargs=kwargs, **SHORT)
        out[name] = np.asarray(ContinualTrainer(cfg, tmp_path_factory.mktemp(name)).run()["R"])
    return out


def test_finetuning_learns_each_task_and_forgets_the_first(matrices):
    R = matrices["finetune"]
    assert R[0, 0] >= 0.8, R  # the first task is learned in its stage
    assert R[0, 1] <= 0.3, R  # the second task's controls are not the first's
    assert R[1, 1] >= R[0, 1] + 0.2, R  # and the second stage learns them
    assert M.forgetting(R) >= 0.3, R


@pytest.mark.parametrize("strategy", ["ewc", "replay"])
def test_ewc_and_replay_forget_less(matrices, strategy):
    R, base = matrices[strategy], matrices["finetune"]
    assert R[0, 0] >= 0.8, R
    assert M.forgetting(R) <= 0.5 * M.forgetting(base), (R, base)
    assert R[1, 1] >= R[0, 1] + 0.2, R  # it still learns the second task (not forgetting by not learning)
