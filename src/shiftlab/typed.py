"""Typed options: dataclasses built from YAML mappings, with unknown keys named.

Every method owns a dataclass of its options, declared with :func:`param` (a default and a
one-line description) or :func:`ref` (the name of another recipe's predictor). :func:`build`
turns a mapping into that dataclass, converting values to the annotated types and rejecting
unknown keys with the closest valid one.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from shiftlab.errors import ConfigError
from shiftlab.registry import closest


def param(default: Any, help: str) -> Any:
    """A dataclass field with a default and a one-line description (shown by ``shiftlab list``)."""
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


def ref(default: str | list[str] | None, help: str) -> Any:
    """A field naming earlier recipes' predictors; the run checks they exist before starting."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help, "ref": True})
    return field(default=default, metadata={"help": help, "ref": True})


@dataclass
class NoOptions:
    """A method without options."""


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def coerce(value: Any, tp: Any, where: str) -> Any:
    """Convert a YAML value to the annotated type, or raise a ConfigError naming ``where``."""
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if _is_union(tp):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: unexpected value {value!r}")
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            hint = closest(str(value), [str(c) for c in choices])
            more = f"; did you mean '{hint}'?" if hint else ""
            raise ConfigError(f"{where} must be one of {list(choices)}, got {value!r}{more}")
        return value
    if origin in (list, tuple):
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        (item_type, *_) = typing.get_args(tp) or (Any,)
        items = [coerce(v, item_type, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a mapping, got {value!r}")
        _, value_type = typing.get_args(tp) or (Any, Any)
        return {str(k): coerce(v, value_type, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return value if isinstance(value, tp) else build(tp, value, where)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{where} must be an integer, got {value!r}") from None
        if number != int(number):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return int(number)
    if tp is float:
        # YAML 1.1 reads "3e-5" (no dot) as a string; accept it as the number it means.
        if isinstance(value, bool):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where} must be a number, got {value!r}") from None
    if tp is str:
        if isinstance(value, (dict, list)) or value is None:
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return str(value)
    return value


def build(cls: type, data: Mapping[str, Any] | None, where: str) -> Any:
    """Instantiate dataclass ``cls`` from a mapping, rejecting unknown keys by name."""
    data = {} if data is None else data
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a mapping of options, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in fields:
            hint = closest(str(key), list(fields))
            more = f"; did you mean '{hint}'?" if hint else ""
            valid = ", ".join(fields) or "none"
            raise ConfigError(f"unknown key '{where}.{key}'{more} (valid keys: {valid})")
    hints = typing.get_type_hints(cls)
    kwargs = {k: coerce(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise ConfigError(f"{where}: {exc}") from None


def to_plain(obj: Any) -> Any:
    """Dataclasses, tuples and paths to plain YAML/JSON-able values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj
