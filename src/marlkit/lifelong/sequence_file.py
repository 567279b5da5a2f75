"""Task sequences from YAML files: an ordered list of env configs, validated before anything is built.

``marlkit lifelong path/to/sequence.yaml`` (or ``LifelongConfig(sequence="path/to/sequence.yaml")``; ``any_sequence``
takes a built-in name or a file) loads::

    name: my-sequence            # optional (default: the file's stem)
    tasks:                       # one entry per task, in order (at least one)
      - name: small              # optional (default: task-<index>); unique
        env: foraging-v0         # a registered batched env id (marlkit envs)
        kwargs: {size: 6, num_food: 1}   # the env's options (optional)
        action_perm: [1, 2, 3, 4, 5, 0]  # optional: relabelled discrete actions (a permutation)
        hide: [6, 7, 8]          # optional: observation entries zeroed (a channel switched off)
        partners: 1              # optional: the last N agents are a fixed teammate ...
        partner: random          # ... "noop", "random" or a weights-only policy file (relative to the YAML file)
        success_threshold: 0.8   # optional: the success rate at which the task counts as mastered

The file is read with ``yaml.safe_load`` (no tags, nothing executed); a policy file is only opened when its task's
env is built, with ``torch.load(weights_only=True)``. Every mistake is a ``ConfigError`` naming the field
(``tasks[2].action_perm``) and what is allowed; each task's env is then built once so that a bad option of the env
itself is reported against its task.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from marlkit.core.config import ConfigError
from marlkit.core.errors import did_you_mean
from marlkit.lifelong.sequences import Task, TaskSequence, first_tasks, sequence
from marlkit.lifelong.tasks import PARTNER_KINDS, TASK_ENV_ID

SEQUENCE_SUFFIXES = (".yaml", ".yml")
TOP_KEYS = ("name", "tasks")
TASK_KEYS = ("name", "env", "kwargs", "action_perm", "hide", "partners", "partner", "success_threshold")


def is_sequence_file(name: str) -> bool:
    """Whether a sequence name is a path to a YAML file (by its suffix)."""
    return name.lower().endswith(SEQUENCE_SUFFIXES)


def _int_list(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in value):
        raise ConfigError(f"{where} = {value!r} is not allowed: a list of integers")
    return tuple(value)


def _task(entry: Any, index: int, base_dir: Path) -> Task:
    where = f"tasks[{index}]"
    if not isinstance(entry, dict):
        raise ConfigError(
            f"{where} is a {type(entry).__name__}: each task is a mapping with keys {', '.join(TASK_KEYS)}"
        )
    for key in entry:
        if key not in TASK_KEYS:
            raise ConfigError(
                f"{where}: unknown key {key!r}{did_you_mean(str(key), TASK_KEYS)} (allowed: {', '.join(TASK_KEYS)})"
            )
    from marlkit.envs.registry import list_envs

    envs = [e for e in list_envs() if e != TASK_ENV_ID]
    env = entry.get("env")
    if not isinstance(env, str) or env not in envs:
        raise ConfigError(
            f"{where}.env = {env!r} is not allowed: a registered batched env id{did_you_mean(str(env), envs)} "
            f"({', '.join(envs)})"
        )
    name = entry.get("name", f"task-{index}")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}.name = {name!r} is not allowed: a non-empty string")
    kwargs = entry.get("kwargs", {}) or {}
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise ConfigError(f"{where}.kwargs = {kwargs!r} is not allowed: a mapping of {env}'s option names to values")
    perm = entry.get("action_perm")
    action_perm = None if perm is None else _int_list(perm, f"{where}.action_perm")
    hide = _int_list(entry.get("hide", []) or [], f"{where}.hide")
    partners = entry.get("partners", 0)
    if not isinstance(partners, int) or isinstance(partners, bool) or partners < 0:
        raise ConfigError(f"{where}.partners = {partners!r} is not allowed: an integer >= 0 (agents a teammate plays)")
    partner = entry.get("partner", "noop")
    if not isinstance(partner, str) or not partner:
        raise ConfigError(
            f"{where}.partner = {partner!r} is not allowed: {', '.join(PARTNER_KINDS)} or a policy file's path"
        )
    if partner not in PARTNER_KINDS:
        path = Path(partner) if Path(partner).is_absolute() else base_dir / partner
        if not path.is_file():
            raise ConfigError(
                f"{where}.partner = {partner!r} is not allowed: {', '.join(PARTNER_KINDS)} or an existing policy "
                f"file (relative to the sequence file); {path} does not exist"
            )
        partner = str(path)
    threshold = entry.get("success_threshold", 0.8)
    if not isinstance(threshold, (int, float)) or isinstance(threshold, bool) or not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"{where}.success_threshold = {threshold!r} is not allowed: a number in [0, 1]")
    task = Task(name, env, dict(kwargs), action_perm, hide, partners, partner, float(threshold))
    from marlkit.lifelong.tasks import TaskEnv

    try:  # the env's own options, checked against its task
        TaskEnv(**task.env_kwargs())
    except (ConfigError, TypeError, ValueError) as e:
        raise ConfigError(f"{where} ({name}): {e}") from None
    return task


def load_sequence(path: str | Path) -> TaskSequence:
    """The ``TaskSequence`` of a YAML file (the format of the module docstring)."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"sequence file {str(path)!r} does not exist (a built-in sequence name or a .yaml file)")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"sequence file {p} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"sequence file {p}: the top level must be a mapping with keys {', '.join(TOP_KEYS)}")
    for key in data:
        if key not in TOP_KEYS:
            raise ConfigError(
                f"sequence file {p}: unknown key {key!r}{did_you_mean(str(key), TOP_KEYS)} "
                f"(allowed: {', '.join(TOP_KEYS)})"
            )
    name = data.get("name", p.stem)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"sequence file {p}: name = {name!r} is not allowed: a non-empty string")
    tasks = data.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        raise ConfigError(f"sequence file {p}: tasks = {tasks!r} is not allowed: a non-empty list of tasks")
    seq = TaskSequence(name, tuple(_task(t, i, p.parent) for i, t in enumerate(tasks)))
    seq.layout()  # tasks that cannot share a learner are refused here, naming them
    return seq


def any_sequence(name: str, num_tasks: int | None = None) -> TaskSequence:
    """The sequence of a YAML file when ``name`` is a ``.yaml``/``.yml`` path, else the built-in sequence ``name``;
    its first ``num_tasks`` tasks when given."""
    if is_sequence_file(name):
        return first_tasks(load_sequence(name), num_tasks)
    return sequence(name, num_tasks)
