"""Presets (YAML under experiments/presets/) and `--set key=value` overrides, validated before anything runs.

    >>> cfg = build_config("smoke", ["method=vanilla", "grpo.lr=3e-4"])
    >>> list_presets()                                   # ['demo', 'paper', 'smoke']
    >>> build_config("smok", [])                         # ValueError: unknown preset 'smok' (did you mean 'smoke'?)
    >>> build_config("smoke", ["grpo.temprature=1"])     # ValueError: unknown key 'grpo.temprature' (did you mean ...)

A preset is a partial `TrainConfig` (train/config.py) as YAML; a preset name may also be a path to such a file.
`--set` values are parsed as YAML scalars/lists (`true`, `0.5`, `[overwrite_tests, exit_code]`, `null`), then the
whole config is validated by pydantic, so a bad value fails naming its key and what the key accepts.
"""

from __future__ import annotations

import copy
import difflib
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gradient_quarantine.train.config import TrainConfig, field_docs

# The YAML files sit in a data folder beside this module (not a package: `presets.py` owns the import name).
PRESET_DIR = Path(__file__).resolve().parent / "presets"


class ConfigError(ValueError):
    """A preset, key or value that cannot make a valid config; the message says what to use instead."""


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_preset(name: str) -> dict[str, Any]:
    """The preset's dict (not yet validated). `name` is a shipped preset or a path to a .yaml file."""
    path = Path(name).expanduser()
    if name.endswith((".yaml", ".yml")):
        if not path.is_file():
            raise ConfigError(f"preset file {name!r} does not exist")
        text, label = path.read_text(encoding="utf-8"), str(path)
    else:
        names = list_presets()
        if name not in names:
            close = difflib.get_close_matches(name, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown preset {name!r}{hint}; presets: {', '.join(names)} (or a path to a .yaml file)")
        text, label = (PRESET_DIR / f"{name}.yaml").read_text(encoding="utf-8"), name
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"preset {label}: not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"preset {label}: must be a mapping of config keys, got {type(data).__name__}")
    return data


def valid_keys() -> dict[str, tuple[str, Any]]:
    """{dotted key: (doc, default)} for every settable leaf key."""
    return field_docs(TrainConfig)


def parse_set(item: str) -> tuple[str, Any]:
    """`"grpo.lr=3e-4"` -> `("grpo.lr", 3e-4)`; the value is read as YAML (`null`/`~` -> None; `none` -> None
    too for keys that take None, unless "none" is one of the key's own choices, as for grpo.scale_rewards)."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set grpo.lr=3e-4")
    key, raw = item.split("=", 1)
    key, raw = key.strip(), raw.strip()
    if not key:
        raise ConfigError(f"--set {item!r}: the key is empty")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str) and value.lower() == "none" and _takes_none(key) and not _takes_string(key, value):
        value = None
    return key, value


def _field(key: str):
    model: Any = TrainConfig
    info = None
    for part in key.split("."):
        info = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if info is None:
            return None
        model = info.annotation
    return info


def _takes_none(key: str) -> bool:
    info = _field(key)
    return info is not None and type(None) in typing.get_args(info.annotation)


def _takes_string(key: str, value: str) -> bool:
    info = _field(key)
    if info is None:
        return False
    args = typing.get_args(info.annotation) or (info.annotation,)
    for a in args:
        if a is str or value in typing.get_args(a):
            return True
    return False


def check_key(key: str) -> None:
    keys = valid_keys()
    if key in keys:
        return
    close = difflib.get_close_matches(key, list(keys), n=3, cutoff=0.6)
    hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
    sections = sorted({k.split(".")[0] for k in keys if "." in k})
    raise ConfigError(
        f"unknown config key {key!r}{hint}. Top-level keys: "
        f"{', '.join(k for k in keys if '.' not in k)}; sections: {', '.join(sections)} "
        "(`gq train --help-config` lists every key)"
    )


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and f"{prefix}{k}" not in valid_keys():  # a dict-valued key (data.split) is a leaf
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def set_dotted(d: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = d
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"cannot set {key!r}: {p!r} is not a section")
    node[parts[-1]] = value


def build_config(preset: str, sets: list[str] | None = None, name: str | None = None) -> TrainConfig:
    """Preset + overrides -> a validated `TrainConfig` (with `preset` recorded). Raises `ConfigError`."""
    data = copy.deepcopy(load_preset(preset))
    for key in _flatten(data):
        try:
            check_key(key)
        except ConfigError as e:
            raise ConfigError(f"preset {preset}: {e}") from None
    for item in sets or []:
        key, value = parse_set(item)
        check_key(key)
        set_dotted(data, key, value)
    if name is not None:
        data["name"] = name
    data["preset"] = Path(preset).stem if preset.endswith((".yaml", ".yml")) else preset
    return validate_config(data)


def validate_config(data: dict[str, Any]) -> TrainConfig:
    """pydantic validation with messages in `key=value: problem (key: doc)` form."""
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as e:
        docs = valid_keys()
        lines = []
        flat = _flatten(data)
        for err in e.errors():
            loc = ".".join(str(x) for x in err["loc"] if not isinstance(x, int))
            msg = err["msg"].removeprefix("Value error, ")
            if loc and loc in docs:
                got = flat.get(loc, "<unset>")
                lines.append(f"{loc}={got!r}: {msg} ({loc}: {docs[loc][0]})")
            elif loc:
                lines.append(f"{loc}: {msg}")
            else:
                lines.append(msg)
        raise ConfigError("invalid config:\n  " + "\n  ".join(lines)) from None


def describe_keys() -> str:
    """Every key with its default and doc, one per line (for `gq train --help-config`)."""
    lines = []
    for key, (doc, default) in valid_keys().items():
        lines.append(f"{key} = {default!r}\n    {doc}")
    return "\n".join(lines)
