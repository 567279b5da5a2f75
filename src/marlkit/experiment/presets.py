"""Tuned presets: the settings each learner trains with on a task, shipped as YAML files beside this module.

``presets/<task>.yaml`` lists under ``tasks`` the env ids it is for (one task may have several ids: spread-v0 and
mpe2's ``pz:simple_spread_v3`` are the same task) and holds one section per algorithm with the ``env`` copies
(``num_envs``, ``eval_num_envs``) and the ``algo`` fields that algorithm trains with there: the settings of its row
in the reproduction table, which ``benchmarks/reproduce.py`` reads from these same files::

    tasks: [spread-v0, pz:simple_spread_v3]
    qmix:
      env: {num_envs: 16}
      algo: {lr: 0.001, residual: true}

A preset tunes the learner, never the task: ``env.kwargs`` (rewards, rules, action spaces) and the budget
(``experiment``) are the run's own, and a preset that sets them is an error.

``make_run_config`` applies a preset beneath the config file, fields and ``--set`` (each of which overrides it) and
records which one in ``RunConfig.preset``. ``select`` says which: ``"auto"`` the shipped one of the algorithm for the
env (if any), ``"none"`` (or ``None``) none, a task id that task's shipped presets, a path a file of the same shape.
A run directory's config.yaml is already resolved, so resuming, evaluating or rendering a run never applies one.
``explain`` prints a resolved config with, after each value, where it came from (its ``Origin``; ``marlkit train
--print-config``). This module knows presets as files and sections; ``marlkit.experiment.run``, which builds run
configs on top of it, checks a preset's values as a run config's.
"""

from __future__ import annotations

import functools
import importlib.resources
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from marlkit.core.config import ConfigError, yaml_load
from marlkit.core.errors import did_you_mean

#: ``preset`` values with a meaning of their own: the shipped preset of the algorithm for the env, or none.
AUTO, NONE = "auto", "none"
#: The env fields a preset may set: how many copies are stepped at once, not what each copy is.
ENV_FIELDS = ("num_envs", "eval_num_envs")
#: Where the shipped files are, as error messages and ``--print-config`` name them.
SHIPPED_DIR = "marlkit/experiment/presets"


@dataclass(frozen=True)
class Preset:
    """One algorithm's section of a preset file, checked against its config."""

    name: str
    """What ``RunConfig.preset`` records and ``preset=`` accepts: a shipped file's task (spread-v0) or a path."""
    file: str
    """The file it was read from (``marlkit/experiment/presets/spread-v0.yaml``, or the path given)."""
    algorithm: str
    env: dict[str, Any]
    """``env`` fields (``num_envs``, ``eval_num_envs``)."""
    algo: dict[str, Any]
    """Fields of the algorithm's config."""

    @property
    def where(self) -> str:
        """How errors name it: ``preset FILE (ALGORITHM)``."""
        return _where(self.file, self.algorithm)

    def settings(self) -> dict[str, Any]:
        """The preset as ``{"env.num_envs": 16, "algo.lr": 0.001, ...}``."""
        return {**{f"env.{k}": v for k, v in self.env.items()}, **{f"algo.{k}": v for k, v in self.algo.items()}}

    def under(self, data: dict[str, Any]) -> dict[str, Any]:
        """The run config mapping ``data`` with this preset beneath its ``env`` and ``algo`` sections."""
        out = {**data, "env": {**self.env, **(data.get("env") or {})}}
        if data.get("algo") is None or isinstance(data["algo"], dict):  # a config dataclass is complete already
            out["algo"] = {**self.algo, **(data.get("algo") or {})}
        return out


def shipped() -> dict[str, dict[str, Any]]:
    """The shipped preset files, their shape checked: name (the file's stem) -> its mapping."""
    return {name: _parse(text, f"{SHIPPED_DIR}/{name}.yaml") for name, text in _shipped()}


@functools.cache
def _shipped() -> tuple[tuple[str, str], ...]:
    folder = importlib.resources.files(__package__).joinpath("presets")
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".yaml")), key=lambda f: f.name)
    return tuple((f.name.removesuffix(".yaml"), f.read_text()) for f in files)


@functools.cache
def shipped_tasks() -> dict[str, str]:
    """Env id -> the shipped preset file for it (its name), from every file's ``tasks``."""
    tasks: dict[str, str] = {}
    for name, data in shipped().items():
        for task in data.get("tasks", []):
            if task in tasks:
                raise ConfigError(
                    f"preset {SHIPPED_DIR}/{name}.yaml: task {task!r} is already in "
                    f"{SHIPPED_DIR}/{tasks[task]}.yaml; a task belongs to one file"
                )
            tasks[task] = name
    return tasks


def select(preset: str | os.PathLike[str] | None, algorithm: str, env_id: str) -> Preset | None:
    """The preset ``make_run_config`` applies for ``algorithm`` on ``env_id`` (see the module's docstring), its shape
    checked (``make_run_config`` checks its values); ``None`` when there is none. A preset chosen by name or path must
    have a section for the algorithm."""
    if preset is None or preset == NONE:
        return None
    if preset == AUTO:
        name = shipped_tasks().get(env_id)
        if name is None:
            return None
        file, data = f"{SHIPPED_DIR}/{name}.yaml", shipped()[name]
        if algorithm not in data:
            return None
    elif isinstance(preset, os.PathLike) or Path(preset).suffix in (".yaml", ".yml") or os.sep in preset:
        name = file = os.fspath(preset)
        try:
            text = Path(file).read_text()
        except FileNotFoundError:
            raise FileNotFoundError(f"preset {file}: no such file") from None
        data = _parse(text, file)
    else:
        tasks = shipped_tasks()
        if preset not in tasks:
            hint = did_you_mean(preset, tasks)
            raise ConfigError(
                f"preset {preset!r}: no shipped presets for that task{hint} (shipped: "
                f"{', '.join(sorted(tasks))}; or give a YAML file, or none for the code defaults)"
            )
        name = tasks[preset]
        file, data = f"{SHIPPED_DIR}/{name}.yaml", shipped()[name]
    if algorithm not in data:
        sections = [k for k in data if k != "tasks"]
        raise ConfigError(f"preset {file} has no section for {algorithm} (it has: {', '.join(sections) or 'none'})")
    return _check(data[algorithm], name, file, algorithm)


def _parse(text: str, file: str) -> dict[str, Any]:
    """A preset file's mapping, its shape checked: ``tasks`` (env ids) and one mapping per registered algorithm."""
    from marlkit.algorithms.registry import algo_spec

    try:
        data = yaml_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"preset {file} is not valid YAML: {getattr(e, 'problem', None) or e}{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"preset {file} must hold a mapping of algorithm names to sections, got {data!r}")
    tasks = data.get("tasks", [])
    if not isinstance(tasks, list) or not all(isinstance(t, str) for t in tasks):
        raise ConfigError(f"preset {file}: tasks must be a list of env ids, got {tasks!r}")
    for key in data:
        if key != "tasks":
            try:
                algo_spec(key)
            except KeyError as e:
                raise ConfigError(f"preset {file}: {e.args[0]}") from None
    return data


def _where(file: str, algorithm: str) -> str:
    return f"preset {file} ({algorithm})"


def _check(section: Any, name: str, file: str, algorithm: str) -> Preset:
    """The section as a ``Preset``, its keys checked (a preset tunes the learner), errors naming the file."""
    where = _where(file, algorithm)
    section = {} if section is None else section
    if not isinstance(section, dict):
        raise ConfigError(f"{where} must be a mapping with env and/or algo, got {section!r}")
    for key in section:
        if key not in ("env", "algo"):
            if key == "experiment":
                raise ConfigError(
                    f"{where}: experiment is not allowed in a preset: a preset tunes the learner "
                    f"(env.num_envs, env.eval_num_envs, algo); the budget is the run's"
                )
            raise ConfigError(
                f"{where}: unknown config key {key!r}{did_you_mean(key, ('env', 'algo'))} (valid keys: env, algo)"
            )
    env, algo = section.get("env") or {}, section.get("algo") or {}
    for part, value in (("env", env), ("algo", algo)):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: {part} must be a mapping of fields, got {value!r}")
    for key in env:
        if key in ("id", "kwargs"):
            raise ConfigError(
                f"{where}: env.{key} is not allowed in a preset: a preset tunes the learner "
                f"({', '.join(f'env.{k}' for k in ENV_FIELDS)}, algo), env.{key} is the task's; "
                f"set it in the run's config or with --set"
            )
    return Preset(name, file, algorithm, dict(env), dict(algo))


# ---------------------------------------------------------------------------------------- where values came from
@dataclass(frozen=True)
class Origin:
    """Where a value of a run config came from (``marlkit train --print-config`` shows it)."""

    kind: Literal["default", "preset", "config", "field", "set"]
    what: str = ""
    """The preset or config file, the field given by name (``steps``, ``env`` for the env id) or the --set string."""


def origin_of(path: str, origins: Mapping[str, Origin]) -> Origin | None:
    """The origin of the value at ``path``: the last one recorded for it or for a section holding it."""
    for key in reversed(list(origins)):
        if path == key or path.startswith(key + "."):
            return origins[key]
    return None


def explain(config: Mapping[str, Any], origins: Mapping[str, Origin], flags: Mapping[str, str] = {}) -> str:
    """A run config's plain data (``RunConfig.to_dict()``) as YAML (a valid config file) with, after each value,
    where it came from: ``default``, ``preset FILE``, ``config FILE``, ``--set``, or the field given by name
    (``flags`` turns it into the command line's flag, e.g. ``{"steps": "--steps"}``; else ``steps=``)."""

    def label(origin: Origin | None) -> str:
        if origin is None or origin.kind == "default":
            return "default"
        if origin.kind == "field":
            return flags.get(origin.what, f"{origin.what}=")
        if origin.kind == "set":
            return "--set"
        return f"{origin.kind} {origin.what}".rstrip()

    lines: list[tuple[str, str | None]] = []

    def emit(key: str, value: Any, path: str, indent: int) -> None:
        if isinstance(value, dict) and value:
            lines.append((f"{'  ' * indent}{key}:", None))
            for k, v in value.items():
                emit(k, v, f"{path}.{k}", indent + 1)
        else:
            lines.append((f"{'  ' * indent}{key}: {_flow(value)}", label(origin_of(path, origins))))

    for key, value in config.items():
        emit(key, value, key, 0)
    width = min(max(len(text) for text, _ in lines), 40)
    return "\n".join(text if note is None else f"{text.ljust(width)}  # {note}" for text, note in lines)


def _flow(value: Any) -> str:
    """One value as one line of YAML."""
    return yaml.safe_dump(value, default_flow_style=True, width=1 << 16).removesuffix("\n...\n").rstrip("\n")
