"""``marlkit.load``: the trained policy of a run directory, weights only.

The policy is the one the checkpoint holds, read weights only (``marlkit.core.rundir``): no learner, optimiser,
replay or environment is built, and nothing the file names is imported. A checkpoint written before policies were
stored has no ``"policy"``; for it the learner is rebuilt from the run's config (as ``marlkit eval`` does) and its
``policy()`` returned, which is why ``load`` lives with the runner rather than in ``core``.

Example::

    policy = marlkit.load("runs/mappo_spread-v0_s0_...")          # latest checkpoint
    actions, _ = policy.act(obs, info=info)                       # batched, greedy
    action_dict = policy.act_pettingzoo(pettingzoo_obs)           # one PettingZoo ParallelEnv step
"""

from __future__ import annotations

from pathlib import Path

from marlkit.core import rundir
from marlkit.core.contracts import Policy


def load(run_dir: str | Path, checkpoint: str | Path | None = None, seed: int | None = None) -> Policy:
    """The trained policy of ``run_dir`` (its newest intact checkpoint unless ``checkpoint`` names one), weights
    only. ``seed`` seeds the policy's sampling when it acts with ``explore=True`` (and random team members)."""
    path, state = rundir.find_checkpoint(run_dir, checkpoint)
    found = rundir.policy_of(state, seed)
    if found is not None:
        return found[0]
    # A checkpoint from before policies were stored in it: rebuild the learner, then take its snapshot.
    from marlkit.experiment.runner import load_run

    _, _, learner, _ = load_run(path.parent.parent, num_envs=1, checkpoint=path)
    return learner.policy(seed)
