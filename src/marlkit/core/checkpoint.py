"""Checkpoints: written atomically, read without arbitrary unpickling.

A checkpoint is one ``torch.save`` of plain data — tensors, numbers, strings, lists, tuples and dicts — so it loads
with ``torch.load(weights_only=True)``. It holds the algorithm's ``checkpoint_state()`` (model, optimiser, its
sampling generator), the global RNG states of torch, NumPy and ``random``, the env-step counter, and the state of
the training environment's generator (``env.np_random``).

Atomic: the bytes go to a temporary file in the same folder, are fsync'ed, and only then ``os.replace``d onto the
final name (and the folder fsync'ed), so a crash at any moment leaves either the previous set of checkpoints or
the new complete one, never a torn file. Stale temporaries of a crashed write are removed by ``clean``.

Verified: after the checkpoint, a manifest ``step_<env_steps>.pt.json`` beside it records its size and sha256
(written atomically too). ``load`` checks a checkpoint against its manifest, so a file truncated, emptied or
overwritten later is recognised; ``load_latest`` then falls back to the newest intact checkpoint, warning which it
skipped and why. A checkpoint without a manifest (written before manifests existed, or by a write that stopped
between the two renames) is trusted if it loads: any failure to read it counts as corrupt.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from marlkit.core.errors import CheckpointError, CheckpointWarning

FORMAT = 1
_NAME = re.compile(r"^step_(\d+)\.pt$")
_TMP_PREFIX = ".tmp-"
MANIFEST_SUFFIX = ".json"
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
    """The newest checkpoint file in ``folder`` (intact or not; ``load_latest`` verifies)."""
    found = list_checkpoints(folder)
    return found[-1][1] if found else None


def manifest_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + MANIFEST_SUFFIX)


def clean(folder: str | Path) -> list[Path]:
    """Remove temporaries left by a write that was interrupted; return what was removed."""
    folder = Path(folder)
    stale = [p for p in folder.glob(f"{_TMP_PREFIX}*")] if folder.is_dir() else []
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def save_atomic(obj: dict[str, Any], path: str | Path) -> Path:
    """``torch.save`` to ``path`` atomically (temp file in the same folder, fsync, rename, fsync the folder), then
    its manifest (size and sha256) the same way."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {}

    def before_rename(tmp: Path) -> None:
        manifest.update(size=tmp.stat().st_size, sha256=_sha256(tmp))
        if delay := float(os.environ.get(SLEEP_ENV, "0") or 0):
            time.sleep(delay)
        manifest_path(path).unlink(missing_ok=True)  # a rewritten checkpoint never sits beside the old manifest

    _write_atomic(path, lambda f: torch.save(obj, f), before_rename)
    _write_atomic(manifest_path(path), lambda f: f.write((json.dumps(manifest) + "\n").encode()))
    _fsync_dir(path.parent)
    return path


def _write_atomic(
    path: Path, write: Callable[[BinaryIO], Any], before_rename: Callable[[Path], None] | None = None
) -> None:
    """``write(file)`` into a temporary beside ``path``, fsync it, then rename it onto ``path``."""
    tmp = path.parent / f"{_TMP_PREFIX}{path.name}.{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if before_rename is not None:
            before_rename(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


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


def verify(path: str | Path) -> str | None:
    """Why the checkpoint at ``path`` does not match its manifest (a phrase), or None when it matches or has none."""
    path, manifest = Path(path), manifest_path(path)
    if not manifest.exists():
        return None
    try:
        recorded = json.loads(manifest.read_text())
        size, sha256 = int(recorded["size"]), str(recorded["sha256"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"has an unreadable manifest {manifest.name} ({type(e).__name__})"
    actual = path.stat().st_size
    if actual != size:
        return f"is {actual:,} bytes but its manifest records {size:,} (truncated or overwritten)"
    if _sha256(path) != sha256:
        return "does not match the sha256 its manifest records (its bytes changed after it was written)"
    return None


def load(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint without unpickling arbitrary objects, after checking it against its manifest.

    Raises ``CheckpointError`` (a ``ValueError``) naming the file and why when it is not intact or not marlkit's.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file {path}")
    if reason := verify(path):
        raise CheckpointError(f"checkpoint {path} {reason}", reason)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch reports a damaged file in many ways (zip, pickle, EOF, ...)
        detail = (str(e).strip().splitlines() or [""])[0][:160]
        reason = f"cannot be read ({type(e).__name__}{': ' + detail if detail else ''})"
        raise CheckpointError(f"checkpoint {path} {reason}", reason) from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        reason = f"is not a marlkit checkpoint (format {FORMAT})"
        raise CheckpointError(f"checkpoint {path} {reason}", reason)
    return obj


def load_latest(folder: str | Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest intact checkpoint in ``folder`` as ``(path, state)``; None when the folder holds no checkpoint.

    Each newer checkpoint that is not intact is skipped with a ``CheckpointWarning`` naming it and why; when none is
    intact, ``CheckpointError`` lists every one with its reason.
    """
    found = list_checkpoints(folder)
    skipped: list[tuple[Path, str]] = []
    for _, path in reversed(found):
        try:
            state = load(path)
        except CheckpointError as e:
            skipped.append((path, e.reason))
            continue
        for bad, reason in skipped:
            warnings.warn(CheckpointWarning(f"skipped checkpoint {bad}: it {reason}; using {path.name}"), stacklevel=2)
        return path, state
    if skipped:
        raise CheckpointError(
            f"no intact checkpoint in {folder}: " + "; ".join(f"{p.name} {reason}" for p, reason in skipped)
        )
    return None


# ------------------------------------------------------------------------------------------ global RNG states
def global_rng_state() -> dict[str, Any]:
    """torch, NumPy and ``random`` global generator states as plain data (NumPy's array becomes a tensor)."""
    legacy = np.random.get_state(legacy=True)
    assert isinstance(legacy, tuple), "the global NumPy generator is an MT19937, whose state is a tuple"
    key, keys, pos, has_gauss, cached = legacy
    return {
        "torch": torch.get_rng_state(),
        "numpy": {
            "key": key,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": random.getstate(),
    }


def set_global_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["key"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def generator_state(rng: np.random.Generator) -> dict[str, Any]:
    """A NumPy ``Generator``'s bit-generator state (a dict of strings and ints; PCG64's are 128-bit ints)."""
    return dict(rng.bit_generator.state)


_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


def restore_generator(state: dict[str, Any]) -> np.random.Generator:
    name = state["bit_generator"]
    if name not in _BIT_GENERATORS:
        raise ValueError(f"unknown NumPy bit generator {name!r} in checkpoint (known: {', '.join(_BIT_GENERATORS)})")
    bit_generator = getattr(np.random, name)()
    bit_generator.state = state
    return np.random.Generator(bit_generator)
