"""Experiments: run configs, the runner (collect → update → log → evaluate → checkpoint), logging, presets.

Imported lazily: the runner pulls in torch. Config validation and checkpoint files are ``marlkit.core``'s.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Callback", "EnvConfig", "ExperimentConfig", "RunConfig", "RunResult", "Runner", "make_run_config", "train"]

_WHERE = {
    "Callback": "callbacks",
    "Runner": "runner",
    "train": "runner",
    "EnvConfig": "run",
    "ExperimentConfig": "run",
    "RunConfig": "run",
    "RunResult": "run",
    "make_run_config": "run",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"marlkit.experiment.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'marlkit.experiment' has no attribute {name!r}")
