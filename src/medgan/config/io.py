"""Config dataclasses <-> plain dicts and YAML, with the type of every key checked."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, Collection, Mapping

import yaml

from medgan.config.checks import validate
from medgan.config.sections import RunConfig
from medgan.errors import ConfigError

# --------------------------------------------------------------------------------------------------------
# dict <-> dataclass with type checking


def to_dict(config: Any) -> dict[str, Any]:
    """A plain, YAML-safe dict of a config dataclass (tuples become lists).

    A RunConfig's ``options`` (the task's own section) is written under the task's name, as users write it.
    """

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in fields(value)}
        if isinstance(value, Mapping):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, (tuple, list)):
            return [plain(v) for v in value]
        return value

    values = plain(config)
    if isinstance(config, RunConfig):
        options = values.pop("options")
        if config.task:
            values[config.task] = options
    return values


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Checks ``value`` against a field annotation and converts YAML-ish values (lists -> tuples, int -> float)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except ConfigError as error:
                errors.append(error)
        raise errors[0]
    if origin is tuple:
        args = typing.get_args(annotation)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {key!r} must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], key) for v in value)
        if len(value) != len(args):
            raise ConfigError(f"config key {key!r} must have {len(args)} values, got {list(value)!r}")
        return tuple(_coerce(v, a, key) for v, a in zip(value, args))
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0", "on", "off"):
            return value.lower() in ("true", "yes", "1", "on")
        raise ConfigError(f"config key {key!r} must be true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, bool):
            raise ConfigError(f"config key {key!r} must be an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"config key {key!r} must be an integer, got {value!r}")
    if annotation is float:
        if isinstance(value, bool):
            raise ConfigError(f"config key {key!r} must be a number, got {value!r}")
        number = None
        if isinstance(value, (int, float)):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                pass
        if number is None:
            raise ConfigError(f"config key {key!r} must be a number, got {value!r}")
        if not math.isfinite(number):  # .inf / .nan in YAML, "inf" in --set: never a meaningful setting
            raise ConfigError(f"config key {key!r} must be a finite number, got {value!r}")
        return number
    if annotation is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"config key {key!r} must be a string, got {value!r}")
    raise TypeError(f"unsupported config annotation {annotation!r} for {key}")  # a bug, not user input


def _merge(config: Any, values: Mapping[str, Any], prefix: str = "") -> Any:
    """A copy of dataclass ``config`` with ``values`` (a nested mapping) applied; unknown keys raise."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"config section {prefix.rstrip('.') or 'root'!r} must be a mapping, got {values!r}")
    hints = typing.get_type_hints(type(config))
    known = {f.name for f in fields(config)} - {"options"}
    changes = {}
    for key, value in values.items():
        full = f"{prefix}{key}"
        if key not in known:
            where = " (and the task's own section, named after the task)" if isinstance(config, RunConfig) else ""
            raise ConfigError(f"unknown config key {full!r}; valid keys here: {', '.join(sorted(known))}{where}")
        current = getattr(config, key)
        if dataclasses.is_dataclass(current):
            changes[key] = _merge(current, value or {}, f"{full}.")
        else:
            changes[key] = _coerce(value, hints[key], full)
    return replace(config, **changes)


def merge_section(section: Any, values: Mapping[str, Any], name: str) -> Any:
    """A copy of section dataclass ``section`` with ``values`` applied and every key's type checked; errors name
    the key as ``name.key`` (tasks type their own section with it)."""
    return _merge(section, values, f"{name}.")


def from_dict(values: Mapping[str, Any], base: RunConfig | None = None) -> RunConfig:
    """A RunConfig from a nested mapping applied on top of ``base`` (default: every section's defaults), with the
    shared sections validated.

    The section named after the run's task (``values["task"]``, else ``base.task``) is the task's own: it is
    merged into ``base.options`` as plain values, which the task types and checks
    (``medgan.training.tasks.resolve_config``); any other unknown key raises ConfigError.
    """
    if not isinstance(values, Mapping):
        raise ConfigError(f"a config must be a mapping of sections, got {values!r}")
    base = base or RunConfig()
    task = values.get("task", base.task)
    shared = {key: value for key, value in values.items() if not (isinstance(task, str) and task and key == task)}
    if "options" in shared:
        raise ConfigError(f"unknown config key 'options'; a task's own keys go in a section named after the task "
                          f"(e.g. {task or 'TASK'}: {{...}})")
    config = _merge(base, shared)
    section = values.get(config.task, {}) if config.task else {}
    if section is None:
        section = {}
    if not isinstance(section, Mapping):
        raise ConfigError(f"config section {config.task!r} must be a mapping, got {section!r}")
    same_task = not base.task or base.task == config.task  # the base's section belongs to this run's task
    options = deep_update(dict(base.options), section) if same_task else dict(section)
    config = replace(config, options=options)
    validate(config)
    return config


# Keys added after runs were saved, with the value that a saved config without the key was trained with: a default
# may change (a new run gets the new one), but a saved run must rebuild the networks its weights belong to.
SAVED_BEFORE = {("model", "upsample"): "transposed"}  # the default until issue 25


def saved_config(values: Mapping[str, Any]) -> RunConfig:
    """``from_dict`` for a config a run, checkpoint or bundle saved (every key written out): a key it lacks because
    it was saved before the key existed takes the value it was trained with (``SAVED_BEFORE``), not today's default."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"a config must be a mapping of sections, got {values!r}")
    filled = {key: dict(value) if isinstance(value, Mapping) else value for key, value in values.items()}
    for (section, key), value in SAVED_BEFORE.items():
        if isinstance(filled.get(section), dict):
            filled[section].setdefault(key, value)
    return from_dict(filled)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Reads a YAML config file into a mapping; a missing or malformed file raises ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("config file not found", path)
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        problem = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError(f"not valid YAML ({problem})", path) from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError("a config file must hold a mapping of sections", path)
    return values


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """Turns ``["train.steps=10", "optim.betas=[0.5, 0.9]"]`` into a nested mapping (values parsed as YAML)."""
    nested: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} must look like section.key=value")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        node = nested
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r} conflicts with another override")
        node[parts[-1]] = value
    return nested


def deep_update(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of nested dict ``base`` with nested ``update`` merged in."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = deep_update(merged[key], value)
        elif isinstance(value, Mapping) and merged.get(key) is not None:
            # A section given as a scalar or list (e.g. ``train: 5`` in YAML) must not be silently replaced
            # by the section a CLI flag builds: the user's file is wrong, say so.
            raise ConfigError(f"config section {key!r} must be a mapping, got {merged[key]!r}")
        else:
            merged[key] = value
    return merged


def first_difference(first: Any, second: Any, skip: Collection[str] = (), key: str = ""
                     ) -> tuple[str, Any, Any] | None:
    """The first dotted key (not in ``skip``) whose value differs between two nested mappings, with its value in
    each (a missing key's is None); None when they agree."""
    if isinstance(first, Mapping) and isinstance(second, Mapping):
        for name in [*first, *(name for name in second if name not in first)]:
            inner = f"{key}.{name}" if key else str(name)
            found = None if inner in skip else first_difference(first.get(name), second.get(name), skip, inner)
            if found is not None:
                return found
        return None
    return None if first == second else (key, first, second)


def save_yaml(config: RunConfig, path: str | Path) -> None:
    """Writes the resolved config atomically as YAML."""
    from medgan.utils import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(to_dict(config), sort_keys=False))
