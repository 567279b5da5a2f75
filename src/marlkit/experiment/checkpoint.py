"""Checkpoints: written atomically, read without arbitrary unpickling.

A checkpoint is one ``torch.save`` of plain data — tensors, numbers, strings, lists, tuples and dicts — so it loads
with ``torch.load(weights_only=True)``. It holds the algorithm's ``checkpoint_state()`` (model, optimiser, its
sampling generator), the global RNG states of torch, NumPy and ``random``, the env-step counter, and the state of
the training environment's generator (``env.np_random``).

Atomic: the bytes go to a temporary file in the same folder, are fsync'ed, and only then ``os.replace``d onto the
final name (and the folder fsync'ed), so a crash at any moment leaves either the previous set of checkpoints or
the new complete one, never a torn file. Stale temporaries of a crashed write are removed by ``clean``.
"""

from __future__ import annotations

import os
import random
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

FORMAT = 1
_NAME = re.compile(r"^step_(\d+)\.pt$")
_TMP_PREFIX = ".tmp-"
#: Test hook: seconds to sleep between writing the temporary file and renaming it (to kill a run mid-write).
SLEEP_ENV = "MARLKIT_TEST_CHECKPOINT_SLEEP"


def path_for(folder: Path, env_steps: int) -> Path:
    return Path(folder) / f"step_{env_steps:012d}.pt"


def list_checkpoints(folder: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints in ``folder`` as ``(env_steps, path)``, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def latest(folder: str | Path) -> Path | None:
    found = list_checkpoints(folder)
    return found[-1][1] if found else None


def clean(folder: str | Path) -> list[Path]:
    """Remove temporaries left by a write that was interrupted; return what was removed."""
    folder = Path(folder)
    stale = [p for p in folder.glob(f"{_TMP_PREFIX}*")] if folder.is_dir() else []
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def save_atomic(obj: dict[str, Any], path: str | Path) -> Path:
    """``torch.save`` to ``path`` atomically: temp file in the same folder, fsync, rename, fsync the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f"{_TMP_PREFIX}{path.name}.{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        if delay := float(os.environ.get(SLEEP_ENV, "0") or 0):
            time.sleep(delay)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def load(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint without unpickling arbitrary objects."""
    obj = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise ValueError(f"{path} is not a marlkit checkpoint (format {FORMAT})")
    return obj


# ------------------------------------------------------------------------------------------ global RNG states
def global_rng_state() -> dict[str, Any]:
    """torch, NumPy and ``random`` global generator states as plain data (NumPy's array becomes a tensor)."""
    key, keys, pos, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "numpy": {"key": key, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
            "python": random.getstate()}


def set_global_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["key"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def generator_state(rng: np.random.Generator) -> dict[str, Any]:
    """A NumPy ``Generator``'s bit-generator state (a dict of strings and ints; PCG64's are 128-bit ints)."""
    return rng.bit_generator.state


_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


def restore_generator(state: dict[str, Any]) -> np.random.Generator:
    name = state["bit_generator"]
    if name not in _BIT_GENERATORS:
        raise ValueError(f"unknown NumPy bit generator {name!r} in checkpoint (known: {', '.join(_BIT_GENERATORS)})")
    bit_generator = getattr(np.random, name)()
    bit_generator.state = state
    return np.random.Generator(bit_generator)
