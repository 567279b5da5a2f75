"""A run directory: the names of its parts, and the trained policy its checkpoints hold, read weights only.

Every training run writes one directory (``marlkit.experiment`` makes and fills it)::

    runs/<name>/config.yaml     the resolved config (every field, defaults filled in)
               metrics.csv      one row per log or evaluation event, env_steps as the x axis
               events.out.*     the same metrics as TensorBoard events
               checkpoints/     step_<env_steps>.pt, written atomically, each with a manifest .pt.json
               eval.json        the final evaluation
               media/           GIFs and plots

Every checkpoint holds, besides what resuming needs, the learner's weights-only policy (``Learner.policy()
.policy_state()``, under ``"policy"``). ``policy_of`` rebuilds it from the policy-kind registry
(``marlkit.core.policy_from_state``) out of a checkpoint read with ``torch.load(weights_only=True)``: no learner,
optimiser, replay or environment is built, and nothing the file names is imported. A frozen team member reads a
run this way; ``marlkit.load`` too, and it alone rebuilds the learner of a checkpoint written before checkpoints
held the policy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from marlkit.core import checkpoint as ckpt
from marlkit.core.contracts import Policy
from marlkit.core.policies import policy_from_state

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.csv"
EVAL_FILE = "eval.json"
CHECKPOINT_DIR = "checkpoints"
MEDIA_DIR = "media"


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


def find_checkpoint(run_dir: str | Path, checkpoint: str | Path | None = None) -> tuple[Path, dict[str, Any]]:
    """``(checkpoint file, its state)`` of ``run_dir``: ``checkpoint`` if one is named, else the newest intact
    checkpoint (a damaged newer one is skipped with a ``CheckpointWarning`` saying why)."""
    folder, named = _split(run_dir, checkpoint)
    if named is not None:
        path = checkpoint_path(folder, named)
        return path, ckpt.load(path)
    found = ckpt.load_latest(folder / CHECKPOINT_DIR)
    if found is None:
        raise FileNotFoundError(f"run {folder} has no checkpoint in {CHECKPOINT_DIR}/ to load")
    return found


def policy_of(state: dict[str, Any], seed: int | None = None) -> tuple[Policy, int] | None:
    """The weights-only policy a checkpoint's ``state`` holds and the env-steps it was trained for; ``None`` for a
    checkpoint written before checkpoints held the policy. ``seed`` seeds its sampling."""
    if "policy" not in state:
        return None
    return policy_from_state(state["policy"], seed), int(state["env_steps"])
