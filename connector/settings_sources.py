"""Where each setting comes from: command-line flags > RADLABEL_* environment > YAML file > defaults.

The three sources are read here, checked for keys the settings do not have (a misspelled key is an error that
names it, with the nearest real key, never a silently ignored one), merged key by key, and validated once. Each
value remembers where it came from, so a bad value is reported as the user wrote it: the environment variable,
the YAML file and key, or the option. pydantic-settings reads the same sources for a plain ``Settings()``; this
module adds what it does not do (unknown keys, per-source error messages, an explicit config path that is not
smuggled through os.environ).
"""

from __future__ import annotations

import difflib
import json
import os
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

PREFIX = "RADLABEL_"
DELIMITER = "__"
CONFIG_ENV = "RADLABEL_CONFIG"
# RADLABEL_* variables that are not settings (paths used by tests, benchmarks and the GGUF exporter; debugging).
RESERVED_ENV = frozenset({"CONFIG", "SHARED", "LLAMA_CPP_DIR", "UPDATE_GOLDEN", "DEBUG"})

Loc = tuple[str, ...]


class SettingsError(ValueError):
    """A setting that cannot be used; the message is one line naming the variable, file key or option."""


def _section_model(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model a field holds (``KafkaSettings``, ``KafkaSettings | None``), or None for a leaf."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _section_model(arg)
            if found is not None:
                return found
    return None


def _fields(model: type[BaseModel]) -> dict[str, Any]:
    return {name: info.annotation for name, info in model.model_fields.items()}


def _suggest(key: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(key, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown_keys(data: Mapping[str, Any], model: type[BaseModel], loc: Loc = ()) -> Iterator[tuple[Loc, str]]:
    """Every key in ``data`` the model does not have, with a suggestion."""
    fields = _fields(model)
    for key, value in data.items():
        if key not in fields:
            yield loc + (str(key),), _suggest(str(key), list(fields))
            continue
        section = _section_model(fields[key])
        if section is not None and isinstance(value, Mapping):
            yield from unknown_keys(value, section, loc + (key,))


def read_yaml(path: Path, model: type[BaseModel], named_by: str) -> tuple[dict[str, Any], dict[Loc, str]]:
    """The YAML file's settings and, per key, where it came from ("FILE: kafka.group_id")."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SettingsError(f"settings file {path} does not exist (named by {named_by})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"settings file {path} cannot be read ({type(exc).__name__}: {exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise SettingsError(f"settings file {path} is not valid YAML{where}: {problem}") from None
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise SettingsError(f"settings file {path} must hold a mapping of settings (e.g. 'kafka:'), not a "
                            f"{type(data).__name__}")
    for loc, hint in unknown_keys(data, model):
        raise SettingsError(f"settings file {path}: unknown setting {'.'.join(loc)}{hint}")
    return data, record_origin(data, lambda loc: f"settings file {path}, key {'.'.join(loc)}")


def read_env(environ: Mapping[str, str], model: type[BaseModel]) -> tuple[dict[str, Any], dict[Loc, str]]:
    """RADLABEL_* variables as nested settings (RADLABEL_KAFKA__GROUP_ID -> kafka.group_id, any case)."""
    data: dict[str, Any] = {}
    origin: dict[Loc, str] = {}
    for name in sorted(environ):
        if not name.upper().startswith(PREFIX):
            continue
        rest = name[len(PREFIX):]
        if rest.upper() in RESERVED_ENV:
            continue
        loc = tuple(part.lower() for part in rest.split(DELIMITER))
        target: type[BaseModel] | None = model
        for depth, key in enumerate(loc):
            fields = _fields(target) if target is not None else {}
            if key not in fields:
                hint = _suggest(key, list(fields))
                if hint:
                    good = DELIMITER.join((*loc[:depth], hint.split("'")[1])).upper()
                    hint = f" (did you mean {PREFIX}{good}?)"
                raise SettingsError(f"environment variable {name}: unknown setting {'.'.join(loc)}{hint}")
            target = _section_model(fields[key])
            if target is not None and depth == len(loc) - 1:
                raise SettingsError(f"environment variable {name}: {'.'.join(loc)} is a section; set its keys one "
                                    f"by one, e.g. {name}{DELIMITER}<KEY>")
        node = data
        for key in loc[:-1]:
            node = node.setdefault(key, {})
        node[loc[-1]] = _env_value(name, environ[name], _fields(_parent_model(model, loc))[loc[-1]])
        origin[loc] = f"environment variable {name}"
    return data, origin


def _parent_model(model: type[BaseModel], loc: Loc) -> type[BaseModel]:
    for key in loc[:-1]:
        model = _section_model(_fields(model)[key])  # type: ignore[assignment]  (checked by read_env's walk)
    return model


def _collection(annotation: Any) -> bool:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_collection(arg) for arg in typing.get_args(annotation))
    return typing.get_origin(annotation) in (list, dict, tuple, set) or annotation in (list, dict, tuple, set)


def _env_value(name: str, value: str, annotation: Any) -> Any:
    """An environment variable is one string: list and mapping settings are written in it as JSON
    (RADLABEL_SCOPE__INCLUDE='["ct:chest"]'), the same shape the YAML file takes; a value that does not start
    like JSON is left to the field (which may accept a comma-separated string, or says it wants a list)."""
    if not _collection(annotation) or not value.lstrip().startswith(("[", "{")):
        return value  # a plain string: the field's own validator may read it (e.g. comma-separated peers)
    try:
        return json.loads(value)
    except ValueError:
        raise SettingsError(f"environment variable {name}: not valid JSON; write the list or mapping as in the "
                            f"YAML file, e.g. {name}='[\"ct:chest\"]'") from None


def record_origin(data: Mapping[str, Any], describe: Any, loc: Loc = (),
                  origin: dict[Loc, str] | None = None) -> dict[Loc, str]:
    """Per key of ``data`` (nested), ``describe(loc)``: where that value came from."""
    origin = {} if origin is None else origin
    for key, value in data.items():
        here = loc + (str(key),)
        origin[here] = describe(here)
        if isinstance(value, Mapping):
            record_origin(value, describe, here, origin)
    return origin


def merge(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Later layers win, key by key (a section given in two sources keeps the keys of both)."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, Mapping) and isinstance(out.get(key), dict):
                out[key] = merge(out[key], value)
            elif isinstance(value, Mapping):
                out[key] = merge(value)
            else:
                out[key] = value
    return out


def drop_unset(flags: Mapping[str, Any]) -> dict[str, Any]:
    """Flags the user did not give (None) override nothing."""
    out: dict[str, Any] = {}
    for key, value in flags.items():
        if isinstance(value, Mapping):
            nested = drop_unset(value)
            if nested:
                out[key] = nested
        elif value is not None:
            out[key] = value
    return out


def describe_error(exc: ValidationError, origin: Mapping[Loc, str]) -> str:
    """The first validation error as one line, named by where its value came from."""
    err = exc.errors()[0]
    loc = tuple(str(p) for p in err["loc"])
    source = f"setting {'.'.join(loc)}"
    for length in range(len(loc), 0, -1):
        if loc[:length] in origin:
            source = origin[loc[:length]]
            break
    message = err["msg"].removeprefix("Value error, ")
    if err.get("type") == "literal_error" and "expected" in err.get("ctx", {}):
        message = f"must be {err['ctx']['expected']}"
    # Values are not echoed: they may be secrets (passwords, API keys).
    return f"{source}: {message[0].lower() + message[1:] if message else 'invalid value'}"


def config_path(config: Path | None, environ: Mapping[str, str] = os.environ) -> tuple[Path | None, str]:
    if config is not None:
        return Path(config), "--config"
    if environ.get(CONFIG_ENV):
        return Path(environ[CONFIG_ENV]), f"{CONFIG_ENV}"
    return None, ""
