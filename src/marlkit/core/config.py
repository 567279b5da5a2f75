"""Configs are nested dataclasses: typed, documented field by field, validated at construction, YAML in and out.

A field is documented by the string literal right under it (as CleanRL does), and that text is what ``--help``
and ``marlkit algos`` show. ``from_dict`` builds a config from plain data (YAML) and rejects an unknown key with
the nearest valid one; ``override`` applies ``"algo.lr=3e-4"`` strings from the command line; a value of the wrong
type is an error that names the field and the type it wants. Range checks live in each config's ``__post_init__``
(use ``check``).
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import itertools
import re
import textwrap
import types
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, Union

import yaml

from marlkit.core.errors import did_you_mean

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

C = TypeVar("C", bound="DataclassInstance")


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, but reading ``3e-4`` as a float (YAML 1.2 does; PyYAML's 1.1 rules need ``3.0e-4``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def yaml_load(text: str) -> Any:
    """Parse YAML text (safe: plain data only)."""
    return yaml.load(text, Loader=_Loader)


class ConfigError(ValueError):
    """A config key or value is not what the config allows."""


def check(condition: bool, field: str, allowed: str, value: Any) -> None:
    """Raise ``ConfigError`` naming ``field``, the ``value`` given and what is ``allowed`` unless ``condition``."""
    if not condition:
        raise ConfigError(f"{field} = {value!r} is not allowed: {allowed}")


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of a dataclass (and of its dataclass bases)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        definition = tree.body[0]  # the class statement getsource gave
        if not isinstance(definition, ast.ClassDef):
            continue
        for node, following in itertools.pairwise(definition.body):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                docs[node.target.id] = " ".join(following.value.value.split())
    return docs


def to_dict(cfg: Any) -> dict[str, Any]:
    """A config as plain data (for YAML)."""
    return dataclasses.asdict(cfg)


def from_dict(cls: type[C], data: dict[str, Any] | None, where: str = "") -> C:
    """Build ``cls`` from plain data, checking every key and value."""
    data = dict(data or {})
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in fields:
            raise ConfigError(_unknown(key, list(fields), where))
        kwargs[key] = _coerce(value, hints[key], f"{where}{key}")
    try:
        return cls(**kwargs)
    except TypeError as e:  # a required field is missing
        raise ConfigError(f"{where.rstrip('.') or cls.__name__}: {e}") from None


def override(cfg: C, assignment: str) -> C:
    """Return a copy of ``cfg`` with one ``"path.to.field=value"`` applied (value parsed as YAML)."""
    if "=" not in assignment:
        raise ConfigError(f"an override looks like key=value (e.g. algo.lr=3e-4), got {assignment!r}")
    path, _, raw = assignment.partition("=")
    try:
        value = yaml_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        # A parse error carries ``problem``; a reader error (a control character) does not, its first line says it
        problem = e.problem if isinstance(e, yaml.MarkedYAMLError) else str(e).splitlines()[0]
        raise ConfigError(f"the value of {path.strip()} is not valid YAML: {raw!r} ({problem})") from None
    return _set(cfg, path.strip().split("."), value, "")


def set_path(cfg: C, path: str, value: Any) -> C:
    """Return a copy of ``cfg`` with the field at ``"path.to.field"`` set to the Python ``value`` (checked)."""
    return _set(cfg, path.split("."), value, "")


def _set(cfg: C, parts: list[str], value: Any, where: str) -> C:
    names = [f.name for f in dataclasses.fields(cfg)]
    head = parts[0]
    if head not in names:
        raise ConfigError(_unknown(head, names, where))
    current = getattr(cfg, head)
    new: Any
    if len(parts) > 1:
        if dataclasses.is_dataclass(current) and not isinstance(current, type):
            new = _set(current, parts[1:], value, f"{where}{head}.")
        elif isinstance(current, dict):  # free-form kwargs (env.kwargs.k=-50) or named entries (algo.members.x.lr)
            new = _set_in_mapping(current, parts[1:], value, f"{where}{head}.")
        else:
            raise ConfigError(f"{where}{head} is a {type(current).__name__}, it has no field {parts[1]!r}")
    else:
        new = _coerce(value, typing.get_type_hints(type(cfg))[head], f"{where}{head}")
    data = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.init}
    data[head] = new
    return type(cfg)(**data)


def _set_in_mapping(mapping: dict[str, Any], parts: list[str], value: Any, where: str) -> dict[str, Any]:
    """A copy of ``mapping`` with ``value`` at ``parts``, merged into what is there: a dataclass on the way is set
    field by field (checked), a mapping entry by entry; missing entries are created."""
    key, inner = parts[0], mapping.get(parts[0])
    if len(parts) == 1:
        new = value
    elif dataclasses.is_dataclass(inner) and not isinstance(inner, type):
        new = _set(inner, parts[1:], value, f"{where}{key}.")
    elif isinstance(inner, dict):
        new = _set_in_mapping(inner, parts[1:], value, f"{where}{key}.")
    else:
        new = _nested(parts[1:], value)
    return {**mapping, key: new}


def _nested(parts: list[str], value: Any) -> dict[str, Any]:
    return {parts[0]: value} if len(parts) == 1 else {parts[0]: _nested(parts[1:], value)}


def _unknown(key: str, allowed: list[str], where: str) -> str:
    hint = did_you_mean(key, allowed, show=lambda k: f"'{where}{k}'")
    return f"unknown config key '{where}{key}'{hint} (valid keys: {', '.join(allowed)})"


def _coerce(value: Any, tp: Any, name: str) -> Any:
    """Check ``value`` against the annotation ``tp``; convert where lossless (int -> float, dict -> dataclass)."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, name)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{name} = {value!r} matches none of {_type_name(tp)}")
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(f"{name} = {value!r} is not allowed: choose one of {', '.join(map(repr, choices))}")
        return value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{name} must be a mapping of {tp.__name__} fields, got {value!r}")
        return from_dict(tp, value, f"{name}.")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name} must be a list, got {value!r}")
        (arg, *_) = typing.get_args(tp) or (Any,)
        items = [_coerce(v, arg, f"{name}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{name} must be a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)  # 2e6 in YAML is a float
            raise ConfigError(f"{name} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be a string, got {value!r}")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{name} must be a {tp.__name__}, got {value!r}")
    return value


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def save_yaml(cfg: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))


def load_yaml(cls: type[C], path: str | Path) -> C:
    return from_dict(cls, yaml_load(Path(path).read_text()) or {})
