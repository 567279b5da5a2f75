"""Shared pieces of the benchmark scripts: one JSON shape, versions, the BLAS that ran, a printed table.

Every marlkit benchmark writes ``{"benchmark": NAME, "versions": {...}, "machine": {...}, "records": [flat dicts]}``.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import platform
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any


def pin_one_core() -> int | None:
    """Run this process (and the BLAS/XLA threads it starts) on one core, so every implementation gets the same."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
    try:  # the variables above only reach libraries loaded later; cap the ones already loaded too
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        pass
    if hasattr(os, "sched_setaffinity"):
        cpu = sorted(os.sched_getaffinity(0))[0]
        os.sched_setaffinity(0, {cpu})
        return cpu
    return None


def versions(*packages: str) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for p in ("marlkit", "numpy", *packages):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[p] = importlib.metadata.version(p)
    return out


def machine() -> dict[str, Any]:
    """Facts that change NumPy speed: cores, the BLAS kernel that runs, and OPENBLAS_CORETYPE if set."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
    }
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = [
            {k: p.get(k) for k in ("internal_api", "version", "architecture", "num_threads")} for p in threadpool_info()
        ]
    except ImportError:
        info["blas"] = "threadpoolctl not installed"
    return info


def rate(fn: Callable[[], Any], items_per_call: int, seconds: float, repeats: int = 3) -> float:
    """Items per second of ``fn`` (median over ``repeats`` windows of about ``seconds`` each), after a warm-up."""
    fn()
    results = []
    for _ in range(repeats):
        calls, start = 0, time.perf_counter()
        while True:
            fn()
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                break
        results.append(calls * items_per_call / elapsed)
    return sorted(results)[len(results) // 2]


def write_json(
    name: str, records: list[dict[str, Any]], path: str | Path | None, packages: Iterable[str] = ()
) -> dict[str, Any]:
    doc = {"benchmark": name, "versions": versions(*packages), "machine": machine(), "records": records}
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(doc, indent=2) + "\n")
    return doc


def print_table(title: str, records: list[dict[str, Any]], columns: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for c in columns:
        table.add_column(c, justify="right")
    for r in records:
        table.add_row(*(_fmt(r.get(c)) for c in columns))
    console = Console()
    (console if console.is_terminal else Console(width=160)).print(table)


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.2f}"
    return str(v)
