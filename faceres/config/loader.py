"""A typed loader for frozen dataclasses: nested mappings (YAML) -> instances, with one-line errors.

Driven by the type hints (int, float, bool, str, Literal, Optional, tuple, dict and nested dataclasses) and by
per-field checks in the field metadata (``{"check": predicate, "allowed": "what is allowed"}``). Knows nothing
about faces: faceres/config/schema.py is the schema it loads. A field named ``source_file`` is bookkeeping (where
the values came from), not a parameter.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Literal

import yaml

from faceres.core.errors import ConfigError


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is bool:
        return "true or false"
    if tp is str:
        return "a string"
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in typing.get_args(tp))
    if dataclasses.is_dataclass(tp):
        return "a mapping with keys " + ", ".join(f.name for f in schema_fields(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _describe(a) for a in typing.get_args(tp))
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_describe(args[0])}"
        return f"a list of {len(args)} values"
    if origin is dict:
        return "a mapping"
    return str(tp)


def schema_fields(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if f.name != "source_file"]


def _float_or_none(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


class TypedLoader:
    def __init__(self, source: str):
        self.source = source

    def fail(self, key: str, value: Any, allowed: str) -> typing.NoReturn:
        shown = "null" if value is None else repr(value) if isinstance(value, str) else value
        raise ConfigError(f"{self.source}: {key} = {shown}: allowed: {allowed}")

    def convert(self, tp: Any, value: Any, key: str) -> Any:
        origin = typing.get_origin(tp)
        if dataclasses.is_dataclass(tp):
            return self.build(tp, value, key)
        if origin in (typing.Union, types.UnionType):
            args = typing.get_args(tp)
            if value is None and type(None) in args:
                return None
            inner = [a for a in args if a is not type(None)]
            if len(inner) == 1:
                return self.convert(inner[0], value, key)
            self.fail(key, value, _describe(tp))
        if origin is Literal:
            if value not in typing.get_args(tp):
                self.fail(key, value, _describe(tp))
            return value
        if tp is bool:
            if not isinstance(value, bool):
                self.fail(key, value, "true or false")
            return value
        if tp is int:
            if isinstance(value, bool) or not isinstance(value, int):
                self.fail(key, value, "an integer")
            return value
        if tp is float:
            if isinstance(value, str):
                # PyYAML (YAML 1.1) reads exponent-only floats such as 1e-3 -- as `dvc exp run -S lr=1e-3` writes
                # them -- as strings; take them at their face value.
                value = _float_or_none(value)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                self.fail(key, value, "a finite number")
            return float(value)
        if tp is str:
            if not isinstance(value, str):
                self.fail(key, value, "a string")
            return value
        if origin is tuple:
            args = typing.get_args(tp)
            if not isinstance(value, (list, tuple)):
                self.fail(key, value, _describe(tp))
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(self.convert(args[0], v, f"{key}[{i}]") for i, v in enumerate(value))
            if len(value) != len(args):
                self.fail(key, value, _describe(tp))
            return tuple(self.convert(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        if origin is dict:
            _, value_type = typing.get_args(tp)
            if not isinstance(value, dict) or not value:
                self.fail(key, value, "a non-empty mapping")
            return {str(k): self.convert(value_type, v, f"{key}.{k}") for k, v in value.items()}
        raise TypeError(f"config loader cannot handle type {tp!r} at {key}")  # a bug of ours, not user input

    def build(self, cls: type, mapping: Any, prefix: str = "") -> Any:
        where = prefix or "the top level"
        if not isinstance(mapping, dict):
            self.fail(prefix or "<root>", mapping, _describe(cls))
        hints = typing.get_type_hints(cls)
        fields = schema_fields(cls)
        names = {f.name for f in fields}
        unknown = sorted(set(mapping) - names)
        if unknown:
            raise ConfigError(
                f"{self.source}: unknown key {_join(prefix, unknown[0])!r} at {where}; "
                f"allowed: {', '.join(sorted(names))}"
            )
        values = {}
        for f in fields:
            key = _join(prefix, f.name)
            if f.name not in mapping:
                if f.default is not dataclasses.MISSING:
                    values[f.name] = f.default
                    continue
                raise ConfigError(f"{self.source}: missing key {key!r}: {_describe(hints[f.name])} is required")
            value = self.convert(hints[f.name], mapping[f.name], key)
            check = f.metadata.get("check")
            if check is not None and not check(value):
                self.fail(key, mapping[f.name], f.metadata["allowed"])
            values[f.name] = value
        return cls(**values)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def set_dotted(params: dict, dotted: str, value: Any, source: str) -> None:
    """params[a][b][c] = value for dotted 'a.b.c' (copying the mappings on the way, so the caller's stay intact)."""
    node = params
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            raise ConfigError(f"{source}: override {dotted!r}: {part!r} is not a mapping of parameters")
        child = dict(child)
        node[part] = child
        node = child
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """`key.sub=value` (value parsed as YAML, as `dvc exp run -S` does) -> (dotted key, value)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: allowed: KEY=VALUE, e.g. skips=6 or profiles.cpu.epochs=2")
    key, raw = text.split("=", 1)
    return key.strip(), yaml.safe_load(raw)


def to_flat_dict(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten a config into `a.b.c -> value` (MLflow params, reports)."""
    out: dict[str, Any] = {}
    if dataclasses.is_dataclass(obj):
        items = [(f.name, getattr(obj, f.name)) for f in schema_fields(type(obj))]
    elif isinstance(obj, dict):
        items = list(obj.items())
    else:
        return {prefix: obj}
    for name, value in items:
        out.update(to_flat_dict(value, _join(prefix, str(name))))
    return out
