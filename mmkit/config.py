"""Loading, validating, describing and hashing mmkit configs.

A config is YAML on disk and a tree of frozen dataclasses (``config_schema.Config``) in
memory.  Loading is a pipeline whose order matters and is documented in docs/config.md:

    read (bounded, ASCII) -> legacy key migration -> profile merge (MM_PROFILE, whitelisted
    keys) -> dotted-key overlays -> schema build with type and units checks -> cross-field
    checks

Every problem found on the way is collected and raised together as one ``ConfigError``,
so a user fixes a file in one pass instead of one error per run.  ``describe()`` and
``cfg_hash()`` are deterministic so that artifacts can record exactly which config made them.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import hashlib
import os
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmkit import log
from mmkit.artifacts import canonical_json, read_control_file
from mmkit.config_schema import LEGACY_KEYS, PROFILE_WHITELIST, SECRET_KEYS, Config, Problem
from mmkit.errors import ConfigError, ControlFileError, MmkitError

__all__ = [
    "Config",
    "LoadedConfig",
    "load_config",
    "build_config",
    "describe",
    "cfg_hash",
    "to_dict",
    "apply_overlay",
    "leaf_paths",
    "check_dotted_key",
]

_HINTS: dict[type, dict[str, Any]] = {}


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """A validated config plus how it was made: where from, what was merged, what warned."""

    config: Config
    path: str
    profile: str | None
    overlays: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def cfg_hash(self) -> str:
        return cfg_hash(self.config)

    def describe(self) -> str:
        return describe(self.config)


# ----------------------------------------------------------------------------- type helpers
def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _key(f: dataclasses.Field[Any]) -> str:
    return f.metadata.get("key", f.name)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp) if a is not type(None)) + " or null"
    if origin is list:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return f"mapping of {_type_name(typing.get_args(tp)[1])}"
    if dataclasses.is_dataclass(tp):
        return "mapping"
    if tp is Any:
        return "any value"
    return getattr(tp, "__name__", str(tp))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _units_problem(name: str, value: Any) -> str | None:
    """The units policy of the seed's "Config hygiene & units", by name suffix."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    if name.endswith("_bps") and not -1000.0 <= value <= 1000.0:
        return "is in bps and must be in [-1000, 1000]"
    if name.endswith(("_usd", "_eur")) and value < 0:
        return "is money and must be >= 0"
    if name.endswith("_base_units") and value < 0:
        return "is in base units and must be >= 0"
    if name.endswith("_ratio") and not 0.0 <= value <= 1.0:
        return "is a ratio and must be in [0, 1]"
    if name.endswith(("_ms", "_sec")) and value < 0:
        return "is a duration and must be >= 0"
    return None


def _coerce(tp: Any, value: Any, path: str, problems: list[Problem]) -> Any:
    """Check ``value`` against ``tp``; return the typed value (or None after recording a problem)."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, path, problems)
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if value in allowed and type(value) is type(allowed[0]):
            return value
        hint = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1)
        extra = f" (did you mean {hint[0]!r}?)" if hint else ""
        problems.append(("E_CFG_BAD_VALUE", path, f"{value!r} is not {_type_name(tp)}{extra}"))
        return None
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            problems.append(("E_CFG_TYPE", path, f"expected a mapping, got {type(value).__name__}"))
            return None
        return _build(tp, value, path, problems)
    if origin is list:
        if not isinstance(value, list):
            problems.append(("E_CFG_TYPE", path, f"expected {_type_name(tp)}, got {type(value).__name__}"))
            return None
        (item_tp,) = typing.get_args(tp)
        return [_coerce(item_tp, v, f"{path}[{i}]", problems) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            problems.append(("E_CFG_TYPE", path, f"expected {_type_name(tp)}, got {type(value).__name__}"))
            return None
        _, val_tp = typing.get_args(tp)
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                problems.append(("E_CFG_TYPE", f"{path}.{k}", "keys must be strings"))
                continue
            out[k] = _coerce(val_tp, v, f"{path}.{k}", problems)
        return out
    if tp is bool:
        if isinstance(value, bool):
            return value
        problems.append(("E_CFG_TYPE", path, f"expected bool (true/false), got {type(value).__name__} {value!r}"))
        return None
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        problems.append(("E_CFG_TYPE", path, f"expected int, got {type(value).__name__} {value!r}"))
        return None
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            fv = float(value)
            if fv != fv or fv in (float("inf"), float("-inf")):
                problems.append(("E_CFG_BAD_VALUE", path, "must be a finite number"))
                return None
            return fv
        problems.append(("E_CFG_TYPE", path, f"expected float, got {type(value).__name__} {value!r}"))
        return None
    if tp is str:
        if isinstance(value, str):
            return value
        problems.append(("E_CFG_TYPE", path, f"expected str, got {type(value).__name__} {value!r}"))
        return None
    raise TypeError(f"unsupported config type {tp!r} at {path}")


def _build(cls: type, data: Mapping[str, Any], path: str, problems: list[Problem]) -> Any:
    """Build dataclass ``cls`` from a mapping, recording unknown keys, type and unit problems."""
    fields = {_key(f): f for f in dataclasses.fields(cls)}
    hints = _hints(cls)
    for key in data:
        if key not in fields:
            hint = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.6)
            extra = f"; did you mean '{_join(path, hint[0])}'?" if hint else f"; known keys: {', '.join(sorted(fields))}"
            problems.append(("E_CFG_UNKNOWN_KEY", _join(path, str(key)), f"unknown key{extra}"))
    kwargs: dict[str, Any] = {}
    before = len(problems)
    for key, f in fields.items():
        if key not in data:
            continue
        sub = _join(path, key)
        value = _coerce(hints[f.name], data[key], sub, problems)
        if value is not None or data[key] is None:
            unit = _units_problem(key, value)
            if unit:
                problems.append(("E_CFG_RANGE", sub, f"{value!r} {unit}"))
            kwargs[f.name] = value
    if len(problems) > before:
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
    try:
        obj = cls(**kwargs)
    except TypeError as exc:  # a None slipped into a required position
        problems.append(("E_CFG_TYPE", path, str(exc)))
        return cls()
    check = getattr(obj, "check", None)
    if check is not None:
        for code, sub, msg in check():
            problems.append((code, _join(path, sub), msg))
    return obj


# ----------------------------------------------------------------------------- raw-dict passes
def _migrate_legacy(raw: Any, path: str, warnings: list[str]) -> Any:
    """Rename legacy keys anywhere in the tree, with one ASCII warning each."""
    if not isinstance(raw, dict):
        return raw
    out: dict[str, Any] = {}
    for key, value in raw.items():
        value = _migrate_legacy(value, _join(path, str(key)), warnings)
        if key in LEGACY_KEYS:
            new, factor = LEGACY_KEYS[key]
            if new in raw:
                warnings.append(f"legacy key {_join(path, key)} ignored: {_join(path, new)} is also set")
                continue
            if isinstance(value, (int, float)) and not isinstance(value, bool) and factor != 1.0:
                value = value * factor
            warnings.append(f"legacy key {_join(path, key)} -> {_join(path, new)}")
            out[new] = value
        else:
            out[key] = value
    return out


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(dict(out[key]), value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = copy.deepcopy(value)


def _expand_dotted(overlay: Mapping[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1, "c": {"d.e": 2}}`` -> ``{"a": {"b": 1}, "c": {"d": {"e": 2}}}``."""
    out: dict[str, Any] = {}
    for key, value in overlay.items():
        val = _expand_dotted(value) if isinstance(value, Mapping) else value
        if "." in str(key):
            holder: dict[str, Any] = {}
            _set_dotted(holder, str(key), val)
            out = _deep_merge(out, holder)
        elif isinstance(val, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], val)
        else:
            out[key] = val
    return out


def apply_overlay(raw: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """Apply a (possibly dotted-key) overlay to a raw config tree; returns a new tree."""
    return _deep_merge(dict(raw), _expand_dotted(overlay))


def _profile_path(name: str, config_path: str) -> Path | None:
    candidates = [Path("profiles") / f"{name}.yaml"]
    if config_path and config_path != "-":
        candidates.append(Path(config_path).resolve().parent / "profiles" / f"{name}.yaml")
    return next((c for c in candidates if c.is_file()), None)


def _whitelisted(dotted: str) -> bool:
    return any(dotted == w or dotted.startswith(w + ".") for w in PROFILE_WHITELIST)


def _flatten(raw: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in raw.items():
        dotted = _join(prefix, str(key))
        if isinstance(value, Mapping) and value and not _whitelisted(dotted):
            yield from _flatten(value, dotted)
        else:
            yield dotted, value


def _merge_profile(raw: dict[str, Any], name: str, config_path: str, warnings: list[str]) -> dict[str, Any]:
    path = _profile_path(name, config_path)
    if path is None:
        raise MmkitError("E_PROFILE_NOT_FOUND", f"MM_PROFILE={name}: no profiles/{name}.yaml next to the working "
                                                "directory or the config; create it or unset MM_PROFILE")
    data = read_control_file(path, "yaml") or {}
    if not isinstance(data, Mapping):
        raise ConfigError([("E_PROFILE_INVALID", "", f"{path}: a profile must be a mapping")])
    data = _migrate_legacy(_expand_dotted(data), "", warnings)
    allowed: dict[str, Any] = {}
    for dotted, value in _flatten(data):
        if _whitelisted(dotted):
            _set_dotted(allowed, dotted, value)
        else:
            warnings.append(f"profile {name}: key {dotted} is not in the profile whitelist, ignored")
    return _deep_merge(raw, allowed)


# ----------------------------------------------------------------------------- public API
def build_config(raw: Mapping[str, Any] | None, source: str = "") -> Config:
    """Validate a raw mapping into a ``Config``; raise ``ConfigError`` with every problem."""
    problems: list[Problem] = []
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError([("E_CFG_TYPE", "", f"top level must be a mapping, got {type(raw).__name__}")], source)
    cfg = _build(Config, raw, "", problems)
    if problems:
        raise ConfigError(problems, source)
    problems.extend(_check_rollout_overlays(cfg))
    if problems:
        raise ConfigError(problems, source)
    return cfg


def _check_rollout_overlays(cfg: Config) -> list[Problem]:
    out: list[Problem] = []
    for color in ("blue", "green"):
        for key in getattr(cfg.rollout, color):
            msg = check_dotted_key(key)
            if msg:
                out.append(("E_CFG_UNKNOWN_KEY", f"rollout.{color}.{key}", msg))
    return out


def load_config(
    path: str | os.PathLike[str],
    *,
    profile: str | None = None,
    overlays: list[str | os.PathLike[str]] | None = None,
    use_env_profile: bool = True,
) -> LoadedConfig:
    """Read, migrate, merge (profile, overlays) and validate a config file.

    ``profile`` defaults to ``$MM_PROFILE`` when ``use_env_profile``.  Overlay files are
    YAML mappings of dotted keys (``autopolicy.level_max: 3``) applied in order.
    Warnings (legacy keys, ignored profile keys) are logged once each and returned.
    """
    name = str(path)
    try:
        raw = read_control_file(path, "yaml")
    except ControlFileError as exc:
        if exc.reason == "missing":
            raise MmkitError("E_CFG_MISSING", f"{name}: config file not found; pass --config PATH or set MM_CONFIG_PATH") from exc
        if exc.reason == "invalid_structure":
            raise MmkitError("E_CFG_PARSE", exc.message) from exc
        raise
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([("E_CFG_TYPE", "", f"top level must be a mapping, got {type(raw).__name__}")], name)
    warnings: list[str] = []
    raw = _migrate_legacy(raw, "", warnings)
    if profile is None and use_env_profile:
        profile = os.environ.get("MM_PROFILE") or None
    if profile:
        raw = _merge_profile(raw, profile, name, warnings)
    applied: list[str] = []
    for ov in overlays or []:
        data = read_control_file(ov, "yaml") or {}
        if not isinstance(data, Mapping):
            raise ConfigError([("E_CFG_OVERLAY", "", f"{ov}: an overlay must be a mapping of dotted keys")], name)
        raw = apply_overlay(raw, _migrate_legacy(_expand_dotted(data), "", warnings))
        applied.append(str(ov))
    cfg = build_config(raw, name)
    for w in warnings:
        log.warning("config_warning", detail=w)
    return LoadedConfig(cfg, name, profile, tuple(applied), tuple(warnings))


def to_dict(cfg: Any, sanitize: bool = False) -> Any:
    """The config as plain data (YAML keys), optionally with secrets removed."""
    if dataclasses.is_dataclass(cfg):
        out = {}
        for f in dataclasses.fields(cfg):
            key = _key(f)
            if sanitize and key in SECRET_KEYS:
                continue
            out[key] = to_dict(getattr(cfg, f.name), sanitize)
        return out
    if isinstance(cfg, dict):
        return {k: to_dict(v, sanitize) for k, v in cfg.items()}
    if isinstance(cfg, list):
        return [to_dict(v, sanitize) for v in cfg]
    return cfg


def cfg_hash(cfg: Config) -> str:
    """sha256 of the sanitized canonical config: the identity artifacts record."""
    return hashlib.sha256(canonical_json(to_dict(cfg, sanitize=True)).encode("ascii")).hexdigest()


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6f}"
    if value is None:
        return "null"
    if isinstance(value, list):
        return "[" + ",".join(_fmt(v) for v in value) + "]"
    return str(value)


def _describe_lines(node: Any, prefix: str, out: list[str]) -> None:
    if isinstance(node, dict):
        if not node:
            out.append(f"{prefix}={{}}")
        for key in sorted(node):
            _describe_lines(node[key], _join(prefix, str(key)), out)
    elif isinstance(node, list) and any(isinstance(v, dict) for v in node):
        for i, item in enumerate(node):
            _describe_lines(item, f"{prefix}[{i}]", out)
    else:
        out.append(f"{prefix}={_fmt(node)}")


def describe(cfg: Config) -> str:
    """Deterministic ASCII listing: sorted dotted keys, floats to 6 decimals, trailing LF.

    Secrets are shown as ``****`` when set (empty when not), so a describe can be pasted
    into a ticket safely.
    """
    tree = to_dict(cfg)
    lines: list[str] = []
    _describe_lines(tree, "", lines)
    red = []
    for line in lines:
        key, _, value = line.partition("=")
        if key.rsplit(".", 1)[-1] in SECRET_KEYS and value:
            value = "****"
        red.append(f"{key}={value}")
    text = "\n".join(sorted(red)) + "\n"
    return text.encode("ascii", "backslashreplace").decode("ascii")


def leaf_paths(cls: type = Config, prefix: str = "") -> dict[str, Any]:
    """Every dotted leaf path of the schema with its type (dict-valued fields are leaves)."""
    out: dict[str, Any] = {}
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        key = _join(prefix, _key(f))
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out.update(leaf_paths(tp, key))
        else:
            out[key] = tp
    return out


def check_dotted_key(dotted: str) -> str | None:
    """None if ``dotted`` names a config leaf (or a key inside a mapping field), else a hint."""
    leaves = leaf_paths()
    if dotted in leaves:
        return None
    for leaf, tp in leaves.items():
        if typing.get_origin(tp) is dict and dotted.startswith(leaf + "."):
            return None
    hint = difflib.get_close_matches(dotted, list(leaves), n=1, cutoff=0.6)
    return "unknown config key" + (f"; did you mean '{hint[0]}'?" if hint else "")
