"""``marlkit.load``: the trained policy of a run directory, weights only.

Every checkpoint holds, besides what resuming needs, the learner's weights-only policy (``Learner.policy()
.policy_state()``, under ``"policy"``). Loading reads the file with ``torch.load(weights_only=True)`` and rebuilds
that policy from the policy-kind registry (``marlkit.core.policy_from_state``): no learner, optimiser, replay or
environment is built, and nothing the file names is imported. A checkpoint written before policies were stored
has no ``"policy"``; for it the learner is rebuilt from the run's config (as ``marlkit eval`` does) and its
``policy()`` returned.

Example::

    policy = marlkit.load("runs/mappo_spread-v0_s0_...")          # latest checkpoint
    actions, _ = policy.act(obs, info=info)                       # batched, greedy
    action_dict = policy.act_pettingzoo(pettingzoo_obs)           # one PettingZoo ParallelEnv step
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from marlkit.core import checkpoint as ckpt
from marlkit.experiment.run import CHECKPOINT_DIR, CONFIG_FILE

if TYPE_CHECKING:
    from marlkit.core import Policy


def checkpoint_path(run_dir: str | Path, checkpoint: str | Path | None = None) -> Path:
    """The checkpoint file of a run: ``checkpoint`` (a path, or a file name in the run's ``checkpoints/``) or the
    latest. ``run_dir`` may itself be a checkpoint file of a run."""
    run_dir, checkpoint = _split(run_dir, checkpoint)
    folder = run_dir / CHECKPOINT_DIR
    path = Path(checkpoint) if checkpoint else ckpt.latest(folder)
    if path is not None and not path.is_absolute() and not path.exists():
        path = folder / path
    if path is None or not path.is_file():
        found = [p.name for _, p in ckpt.list_checkpoints(folder)]
        raise FileNotFoundError(f"run {run_dir} has no checkpoint {path or ''} to load (checkpoints: {found})")
    return path


def _split(run_dir: str | Path, checkpoint: str | Path | None) -> tuple[Path, str | Path | None]:
    """``(run directory, checkpoint)``, where ``run_dir`` may be a checkpoint file of a run; checked."""
    run_dir = Path(run_dir)
    if run_dir.is_file() and checkpoint is None:
        run_dir, checkpoint = run_dir.parent.parent, run_dir
    if not (run_dir / CONFIG_FILE).is_file():
        raise FileNotFoundError(f"{str(run_dir)!r} is not a run directory (it has no {CONFIG_FILE})")
    return run_dir, checkpoint


def read_policy(path: str | Path, seed: int | None = None) -> tuple[Policy, int]:
    """The policy a checkpoint file holds and the env-steps it was trained for. ``seed`` seeds its sampling."""
    path = Path(path)
    return _policy_of(path, ckpt.load(path), seed)


def _policy_of(path: Path, state: dict[str, Any], seed: int | None) -> tuple[Policy, int]:
    from marlkit.core import policy_from_state

    if "policy" in state:
        return policy_from_state(state["policy"], seed), int(state["env_steps"])
    # A checkpoint from before policies were stored in it: rebuild the learner, then take its snapshot.
    from marlkit.experiment.runner import load_run

    _, _, learner, env_steps = load_run(path.parent.parent, num_envs=1, checkpoint=path)
    return learner.policy(seed), env_steps


def load_policy(run_dir: str | Path, checkpoint: str | Path | None = None,
                seed: int | None = None) -> tuple[Path, Policy, int]:
    """``(checkpoint file, policy, env-steps trained)`` of ``run_dir``: from ``checkpoint`` if one is named, else
    from the newest intact checkpoint (a damaged newer one is skipped with a ``CheckpointWarning`` saying why)."""
    folder, named = _split(run_dir, checkpoint)
    if named is not None:
        path = checkpoint_path(folder, named)
        return (path, *read_policy(path, seed))
    found = ckpt.load_latest(folder / CHECKPOINT_DIR)
    if found is None:
        raise FileNotFoundError(f"run {folder} has no checkpoint in {CHECKPOINT_DIR}/ to load")
    return (found[0], *_policy_of(found[0], found[1], seed))


def load(run_dir: str | Path, checkpoint: str | Path | None = None, seed: int | None = None) -> Policy:
    """The trained policy of ``run_dir`` (its newest intact checkpoint unless ``checkpoint`` names one), weights
    only. ``seed`` seeds the policy's sampling when it acts with ``explore=True`` (and random team members)."""
    return load_policy(run_dir, checkpoint, seed)[1]
