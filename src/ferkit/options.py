"""Dataclasses as the single declaration of options: command-line flags, recipe files and run records.

A field declared with `option(default, help, ...)` becomes a flag (`--snake-name`, or the metadata's
`flag`), a key in a recipe file (YAML or JSON) and a key in a run's config.json. A nested dataclass
field becomes an argument group whose flags carry no prefix. The order of precedence is
defaults < recipe file < flags.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from dataclasses import MISSING, Field, asdict, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError


def option(default: Any = MISSING, help: str = "", *, flag: str | None = None, choices: tuple | None = None,
           metavar: str | None = None, default_factory: Any = MISSING) -> Any:
    """A dataclass field with what the command line needs to know about it."""
    metadata = {"help": help, "flag": flag, "choices": choices, "metavar": metavar}
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def _default(f: Field) -> Any:
    return f.default_factory() if f.default_factory is not MISSING else f.default


def _leaves(cls: type, prefix: str = "") -> Iterator[tuple[str, Field, Any]]:
    """(dotted name, field, default) for every option, nested dataclasses flattened."""
    for f in fields(cls):
        default = _default(f)
        if is_dataclass(default):
            yield from _leaves(type(default), f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", f, default


def _section_titles(cls: type, prefix: str = "") -> dict[str, str]:
    """Argument-group title of each nested dataclass: its field's help, else its name."""
    titles = {}
    for f in fields(cls):
        default = _default(f)
        if is_dataclass(default):
            titles[prefix + f.name] = f.metadata.get("help") or f.name
            titles.update(_section_titles(type(default), f"{prefix}{f.name}."))
    return titles


def flag_of(f: Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """One flag per option of `cls`. Flags not given stay out of the namespace (argparse.SUPPRESS)."""
    titles = _section_titles(cls)
    groups: dict[str, Any] = {}
    for dotted, f, default in _leaves(cls):
        section = dotted.rpartition(".")[0]
        target = (parser if not section
                  else groups.setdefault(section, parser.add_argument_group(titles[section])))
        meta = f.metadata
        shown = f" (default: {default})" if default not in ("", None, []) else ""
        kwargs: dict[str, Any] = {"dest": dotted, "default": argparse.SUPPRESS,
                                  "help": meta.get("help", "") + shown}
        if isinstance(default, bool):
            kwargs["action"] = argparse.BooleanOptionalAction
        elif isinstance(default, list):  # a list of words (paths): one or more after the flag
            kwargs.update(nargs="+", metavar=meta.get("metavar") or f.name.upper())
        else:
            kwargs["type"] = type(default) if isinstance(default, (int, float, str)) else float
            kwargs["choices"] = meta.get("choices")
            kwargs["metavar"] = meta.get("metavar") or (None if kwargs["choices"] else f.name.upper())
        target.add_argument(flag_of(f), **kwargs)


def given(namespace: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The options set on the command line, as a nested dict ready for `build`."""
    out: dict[str, Any] = {}
    for dotted, _, _ in _leaves(cls):
        if hasattr(namespace, dotted):
            _set(out, dotted, getattr(namespace, dotted))
    return out


def _set(tree: dict, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for name in parents:
        tree = tree.setdefault(name, {})
    tree[leaf] = value


def merge(base: dict, override: dict) -> dict:
    """`override` on top of `base`, nested dicts merged key by key."""
    out = dict(base)
    for key, value in override.items():
        out[key] = (merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict)
                    else value)
    return out


def _check_value(where: str, name: str, value: Any, default: Any) -> Any:
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, list):
        if isinstance(value, str):  # one word alone is a list of one
            value = [value] if value else []
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
        value = list(value) if ok else value
    elif isinstance(default, (int, float)) and not isinstance(default, bool):
        pair = (isinstance(value, (list, tuple)) and len(value) == 2
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value))
        is_range = isinstance(default, float) and pair  # augmentation ranges may be (lo, hi)
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = is_range or (number and (isinstance(default, float) or isinstance(value, int)))
        if is_range:
            value = tuple(value)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ConfigError(f"{where}: option {name} must be {type(default).__name__} like {default!r}, "
                          f"got {value!r}")
    return float(value) if isinstance(default, float) and isinstance(value, int) else value


def build(cls: type, values: dict, where: str = "options") -> Any:
    """`cls(**values)` with unknown keys and wrong types refused in one line naming the option."""
    kwargs: dict[str, Any] = {}
    known = {f.name: f for f in fields(cls)}
    for name, value in values.items():
        if name not in known:
            raise ConfigError(f"{where}: unknown option {name!r} (known: {', '.join(known)})")
        default = _default(known[name])
        if is_dataclass(default):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: option {name} must be a mapping of its own options, "
                                  f"got {value!r}")
            kwargs[name] = build(type(default), value, f"{where}: {name}")
        else:
            kwargs[name] = _check_value(where, name, value, default)
    return cls(**kwargs)


def to_dict(obj: Any) -> dict:
    """Plain values (tuples as lists), ready for JSON or YAML."""
    return json.loads(json.dumps(asdict(obj)))


def to_args(obj: Any) -> list[str]:
    """The flags that rebuild `obj` from the defaults: only the options that differ from them."""
    args: list[str] = []
    current = to_dict(obj)
    for dotted, f, default in _leaves(type(obj)):
        value = current
        for name in dotted.split("."):
            value = value[name]
        if value == to_dict_value(default):
            continue
        if isinstance(default, bool):
            args.append(flag_of(f) if value else "--no-" + flag_of(f)[2:])
        elif isinstance(default, list):
            args += [flag_of(f), *value]
        elif isinstance(value, list):
            raise ConfigError(f"option {dotted} = {value} is a range; "
                              "flags take one number, use a recipe file")
        else:
            args += [flag_of(f), repr(value) if isinstance(value, float) else str(value)]
    return args


def to_dict_value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def read_recipe(path: str | Path) -> dict:
    """A YAML (.yaml/.yml) or JSON recipe file as a dict of options."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such recipe file")
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            values = yaml.safe_load(text)
        else:
            values = json.loads(text)
    except Exception as exc:  # UnicodeDecodeError, json's JSONDecodeError, yaml's YAMLError
        raise ConfigError(f"{path}: not a readable recipe ({_first_line(exc)})") from exc
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: a recipe is a mapping of option names to values")
    return values


def _first_line(exc: BaseException) -> str:
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


def recipe_text(obj: Any, fmt: str = "yaml") -> str:
    values = to_dict(obj)
    if fmt == "json":
        return json.dumps(values, indent=2) + "\n"
    import yaml

    return yaml.safe_dump(values, sort_keys=False)
