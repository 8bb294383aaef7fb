"""Named presets in configs/ (YAML) merged into a config dataclass, CLI options on top."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
import types
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from stylenorm.errors import StylenormError

T = TypeVar("T")

CONFIG_DIR = Path(__file__).resolve().parent / "configs"  # a link to the top-level configs/ in a clone


def resolve_config(name_or_path: str) -> Path:
    """A config is a YAML path, or the name of a preset in configs/ (without .yaml)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    preset = CONFIG_DIR / f"{name_or_path}.yaml"
    if preset.is_file():
        return preset
    known = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))) or "none"
    raise StylenormError(f"config {name_or_path!r} is neither a file nor a preset; presets: {known}")


def build_config(cls: type[T], config: str | os.PathLike | None, overrides: dict[str, Any]) -> T:
    """Defaults of `cls`, then the config file's values, then every override that is not None."""
    values: dict[str, Any] = {}
    if config is not None:
        path = resolve_config(str(config))
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            where = getattr(exc, "problem_mark", None)
            at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
            raise StylenormError(f"config {path} is not valid YAML{at} ({getattr(exc, 'problem', None) or exc}); "
                                 "fix the file") from None
        if not isinstance(loaded, dict):
            raise StylenormError(f"config {path} must be a mapping of option: value")
        values.update(loaded)
    values.update({k: v for k, v in overrides.items() if v is not None})
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise StylenormError(f"unknown config option(s) {', '.join(unknown)}; valid: {', '.join(sorted(fields))}")
    hints = get_type_hints(cls)
    return cls(**{k: _coerce(k, v, hints[k]) for k, v in values.items()})


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """Numbers from YAML as the field's type: YAML 1.1 reads `5e4` as a string, not a float."""
    if get_origin(hint) in (Union, types.UnionType):
        if value is None and type(None) in get_args(hint):
            return None
        hint = next((a for a in get_args(hint) if a is not type(None)), hint)
    if hint in (int, float) and not isinstance(value, bool):
        try:
            number = float(value)
            if hint is int:
                if not number.is_integer():
                    raise ValueError
                return int(number)
            return number
        except (TypeError, ValueError):
            raise StylenormError(f"config option {name} must be {'an integer' if hint is int else 'a number'}, got {value!r}") from None
    return value
