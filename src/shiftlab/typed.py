"""Typed options: dataclasses built from YAML mappings, with unknown keys named.

Every method owns a dataclass of its options, declared with :func:`param` (a default, a
one-line description and, where it has one, the range a value must lie in) or :func:`ref` (the
name of another recipe's predictor). :func:`build` turns a mapping into that dataclass,
converting values to the annotated types, rejecting unknown keys with the closest valid one,
non-finite numbers, and values outside a field's declared range, emptiness or duplicates: one
line naming the key, before anything runs.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from shiftlab.errors import ConfigError
from shiftlab.registry import closest


def param(
    default: Any,
    help: str,
    *,
    within: str | None = None,
    nonempty: bool = False,
    unique: bool = False,
    unset: str | None = None,
    added_later: bool = False,
) -> Any:
    """A dataclass field with a default and a one-line description (shown by ``shiftlab list``).

    Args:
        within: the interval a number must lie in, ``"[0, 1]"``, ``"(0, inf)"`` (brackets
            closed, parentheses open); for a list or a mapping, every item or value.
        nonempty: an empty list, mapping or string is refused.
        unique: a list with a repeated item is refused.
        unset: what null means, added to the range's message (``"null for all examples"``).
        added_later: the option came after run directories that lack it; at its default it is
            left out of an entry's digest, so those runs stay finished (:mod:`shiftlab.store`).
    """
    metadata: dict[str, Any] = {"help": help}
    if within is not None:
        metadata["within"] = Interval.parse(within)
    if nonempty:
        metadata["nonempty"] = True
    if unique:
        metadata["unique"] = True
    if unset is not None:
        metadata["unset"] = unset
    if added_later:
        metadata["added_later"] = True
    if isinstance(default, (list, dict, set)) or dataclasses.is_dataclass(default):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Interval:
    """A range of numbers, as written: ``[0, 1]``, ``(0, inf)``, ``[1, inf)``."""

    text: str
    low: float
    high: float
    low_open: bool
    high_open: bool

    @classmethod
    def parse(cls, text: str) -> Interval:
        found = re.fullmatch(r"\s*([\[(])\s*([^,\s]+)\s*,\s*([^,\s]+)\s*([\])])\s*", text)
        if found is None:
            raise ValueError(f"not an interval: {text!r}")
        left, low, high, right = found.groups()
        return cls(text.strip(), float(low), float(high), left == "(", right == ")")

    def describe(self) -> str:
        """``>= 1`` for a half-line, else the interval as written: ``in [0, 1)``."""
        if math.isinf(self.high) and not math.isinf(self.low):
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        return f"in {self.text}"

    def __contains__(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return bool(above and below)


CONSTRAINTS = ("within", "nonempty", "unique", "unset")


def constraints(cls: type, name: str) -> dict[str, Any]:
    """The range, emptiness and uniqueness rules of field ``name`` of dataclass ``cls``: its
    own, else those of the nearest base class declaring the field (a subclass that only changes
    a default keeps the base's range)."""
    for klass in cls.__mro__:
        if not dataclasses.is_dataclass(klass):
            continue
        declared = klass.__dict__.get("__dataclass_fields__", {}).get(name)
        if declared is not None and any(k in declared.metadata for k in CONSTRAINTS):
            return {k: declared.metadata[k] for k in CONSTRAINTS if k in declared.metadata}
    return {}


def check_field(meta: Mapping[str, Any], value: Any, where: str) -> None:
    """Raise a ConfigError when ``value`` breaks a field's declared range, emptiness or
    uniqueness (``meta``: :func:`constraints`; None is always allowed: optional fields)."""
    if value is None:
        return
    if meta.get("nonempty") and isinstance(value, (list, tuple, dict, str)) and not value:
        raise ConfigError(f"{where} must not be empty")
    if meta.get("unique") and isinstance(value, (list, tuple)):
        repeated = sorted({str(v) for v in value if list(value).count(v) > 1})
        if repeated:
            raise ConfigError(f"{where} repeats {', '.join(repeated)}; each must appear once")
    interval = meta.get("within")
    if interval is None:
        return
    if isinstance(value, dict):
        items = [(f"{where}.{k}", v) for k, v in value.items()]
    elif isinstance(value, (list, tuple)):
        items = [(where, v) for v in value]
    else:
        items = [(where, value)]
    unset = f" (or {meta['unset']})" if meta.get("unset") else ""
    for path, item in items:
        if isinstance(item, (int, float)) and not isinstance(item, bool) and item not in interval:
            raise ConfigError(f"{path} must be {interval.describe()}{unset}, got {item!r}")


def validate(obj: Any, where: str) -> Any:
    """``obj`` (a dataclass instance, e.g. options built in Python rather than from YAML) after
    checking every field against its constraints, as :func:`build` does."""
    for f in dataclasses.fields(obj):
        check_field(constraints(type(obj), f.name), getattr(obj, f.name), f"{where}.{f.name}")
    return obj


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
        args = typing.get_args(tp) or (Any,)
        if origin is tuple and Ellipsis not in args:  # fixed length: tuple[float, float]
            if len(value) != len(args):
                raise ConfigError(f"{where} must be a list of {len(args)} values, got {value!r}")
            return tuple(
                coerce(v, t, f"{where}[{i}]")
                for i, (v, t) in enumerate(zip(value, args, strict=True))
            )
        items = [coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
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
        if isinstance(value, int):
            return value
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{where} must be an integer, got {value!r}") from None
        if not math.isfinite(number) or number != int(number):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return int(number)
    if tp is float:
        # YAML 1.1 reads "3e-5" (no dot) as a string; accept it as the number it means.
        if isinstance(value, bool):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where} must be a number, got {value!r}") from None
        if not math.isfinite(number):
            raise ConfigError(f"{where} must be a finite number, got {value!r}")
        return number
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
    for key, value in kwargs.items():
        check_field(constraints(cls, key), value, f"{where}.{key}")
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise ConfigError(f"{where}: {exc}") from None


def options_of(cls: type | None, options: Any, where: str) -> Any:
    """A method's options: ``options`` itself when it is already an instance of ``cls``, else
    ``cls`` built from it (a mapping, or None for the defaults); None for a method without
    options.

    Raises:
        ConfigError: unknown keys, bad values, or options given to a method that takes none.
    """
    if cls is None:
        if options:
            raise ConfigError(f"{where} takes no options, got {options!r}")
        return None
    if isinstance(options, cls):
        return validate(options, where)
    if options is not None and not isinstance(options, Mapping):
        raise ConfigError(f"{where} options must be a mapping or {cls.__name__}, got {options!r}")
    return build(cls, options, where)


def non_default(options: Any) -> dict[str, Any]:
    """The options of a dataclass that differ from its defaults, nested ones compared field by
    field (what a user set, in the plain form records keep)."""
    if options is None or not dataclasses.is_dataclass(options):
        return {}
    defaults = type(options)()
    changed: dict[str, Any] = {}
    for f in dataclasses.fields(options):
        value, default = getattr(options, f.name), getattr(defaults, f.name)
        if dataclasses.is_dataclass(value) and type(value) is type(default):
            inner = non_default(value)
            if inner:
                changed[f.name] = inner
        elif to_plain(value) != to_plain(default):
            changed[f.name] = to_plain(value)
    return changed


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
