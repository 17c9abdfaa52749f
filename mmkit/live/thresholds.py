"""Hot-reloadable gate thresholds: the seed's thresholds YAML, validated, merged and
swapped in one step (seed "Per-symbol throttle thresholds", "S3.1", "S3.3").

Why a separate file from the config: thresholds are tuned while the service runs
(``POST /admin/thresholds/reload``), and a typo must never half-apply.  A file is read with
the bounded control-file reader, validated completely, and only then published as a new
immutable ``Thresholds`` (read-copy-update: readers hold whichever version they fetched).

Format (every section optional; symbols are upper-cased)::

    throttle:
      global:     {max_throttle_backoff_ms: 2000, max_throttle_events_in_window_total: 100}
      per_symbol: {BTCUSDT: {max_throttle_backoff_ms: 100}}
    canary_gate:            {max_reject_delta: 0.02, ...}       # CanaryGateConfig keys
    canary_gate_per_symbol: {BTCUSDT: {max_reject_delta: 0.01}}

STRICT mode (``STRICT_THRESHOLDS=1``, meant for dev/CI): an unknown key or a bad value is
an error and nothing changes.  Otherwise (prod) it is one ASCII warning and the key falls
back (to the global value for a per-symbol override, to the default for a global key), so
a newer file does not take an older service down.  A file that is not the right shape
(not a mapping, unparsable, too large, non-ASCII) is an error in both modes.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from mmkit import artifacts
from mmkit.config_schema import CanaryGateConfig, ThrottleThresholds
from mmkit.errors import MmkitError

STRICT_ENV = "STRICT_THRESHOLDS"
SECTIONS = ("throttle", "canary_gate", "canary_gate_per_symbol")
_SYMBOL_RX = re.compile(r"[A-Z0-9][A-Z0-9_\-]{0,31}")


def _defaults(cls: type) -> dict[str, int | float]:
    return {f.name: f.default for f in dataclasses.fields(cls)}


THROTTLE_DEFAULTS: dict[str, int | float] = _defaults(ThrottleThresholds)
CANARY_DEFAULTS: dict[str, int | float] = {k: v for k, v in _defaults(CanaryGateConfig).items()
                                           if isinstance(v, (int, float)) and not isinstance(v, bool)}


def strict_from_env() -> bool:
    """``STRICT_THRESHOLDS`` as a bool (1/true/yes/on, case-insensitive)."""
    return os.environ.get(STRICT_ENV, "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True, slots=True)
class Thresholds:
    """One validated, immutable thresholds version.  ``*_global`` hold only the keys the
    file set; lookups merge defaults <- global <- per-symbol."""

    version: int = 0
    path: str | None = None
    sha256: str | None = None
    strict: bool = False
    throttle_global: dict[str, int | float] = field(default_factory=dict)
    throttle_per_symbol: dict[str, dict[str, int | float]] = field(default_factory=dict)
    canary_global: dict[str, int | float] = field(default_factory=dict)
    canary_per_symbol: dict[str, dict[str, int | float]] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def throttle_for(self, symbol: str | None = None) -> dict[str, int | float]:
        """Effective throttle thresholds for ``symbol`` (or the global ones)."""
        out = {**THROTTLE_DEFAULTS, **self.throttle_global}
        if symbol:
            out.update(self.throttle_per_symbol.get(symbol.upper(), {}))
        return out

    def canary_for(self, symbol: str | None = None) -> dict[str, int | float]:
        """Effective canary-gate thresholds for ``symbol`` (or the global ones)."""
        out = {**CANARY_DEFAULTS, **self.canary_global}
        if symbol:
            out.update(self.canary_per_symbol.get(symbol.upper(), {}))
        return out

    @property
    def symbols(self) -> list[str]:
        return sorted(set(self.throttle_per_symbol) | set(self.canary_per_symbol))

    def summary(self) -> dict[str, Any]:
        """The reload answer of the seed: ``{"global_keys", "per_symbol_count", "symbols"}`` (+ version)."""
        return {
            "global_keys": len(self.throttle_global) + len(self.canary_global),
            "per_symbol_count": len(self.symbols),
            "symbols": self.symbols,
            "version": self.version,
            "strict": self.strict,
            "warnings": list(self.warnings),
        }

    def snapshot(self) -> dict[str, Any]:
        """Everything in effect: the summary plus the merged values per symbol."""
        out = self.summary()
        out.update({
            "path": self.path,
            "sha256": self.sha256,
            "throttle": {"global": self.throttle_for(None),
                         "per_symbol": {s: self.throttle_for(s) for s in sorted(self.throttle_per_symbol)}},
            "canary_gate": self.canary_for(None),
            "canary_gate_per_symbol": {s: self.canary_for(s) for s in sorted(self.canary_per_symbol)},
        })
        return out


class _Checker:
    """Collects strict-mode errors or lenient warnings while walking one file."""

    def __init__(self, strict: bool, source: str) -> None:
        self.strict = strict
        self.source = source
        self.warnings: list[str] = []

    def soft(self, code: str, where: str, msg: str) -> None:
        """An unknown key or bad value: an error in STRICT mode, else a warning and a fallback."""
        if self.strict:
            raise MmkitError(code, f"{self.source}: {where}: {msg} (STRICT_THRESHOLDS=1)")
        text = f"{where}: {msg}; ignored, falling back"
        self.warnings.append(text.encode("ascii", "backslashreplace").decode("ascii"))

    def hard(self, where: str, msg: str) -> MmkitError:
        return MmkitError("E_THR_INVALID", f"{self.source}: {where}: {msg}")

    def mapping(self, value: Any, where: str) -> dict[Any, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.hard(where, f"must be a mapping, got {type(value).__name__}")
        return value

    def values(self, raw: Any, known: dict[str, int | float], where: str) -> dict[str, int | float]:
        out: dict[str, int | float] = {}
        for key, value in self.mapping(raw, where).items():
            name = f"{where}.{key}"
            if key not in known:
                self.soft("E_THR_UNKNOWN_KEY", name, f"unknown key (known: {', '.join(sorted(known))})")
                continue
            good = _coerce(value, known[key])
            if good is None:
                kind = "an integer" if isinstance(known[key], int) else "a number"
                self.soft("E_THR_BAD_VALUE", name, f"{str(value)[:40]!r} is not {kind} >= 0")
                continue
            out[str(key)] = good
        return out

    def per_symbol(self, raw: Any, known: dict[str, int | float], where: str) -> dict[str, dict[str, int | float]]:
        out: dict[str, dict[str, int | float]] = {}
        for sym in sorted(self.mapping(raw, where), key=str):
            name = str(sym).upper()
            if not _SYMBOL_RX.fullmatch(name):
                raise self.hard(f"{where}.{str(sym)[:40]}", "is not a symbol (1-32 chars of A-Z 0-9 _ -)")
            if name in out:
                self.soft("E_THR_INVALID", f"{where}.{sym}", f"duplicates {name} after upper-casing")
                continue
            out[name] = self.values(self.mapping(raw[sym], f"{where}.{sym}"), known, f"{where}.{name}")
        return out


def _coerce(value: Any, default: int | float) -> int | float | None:
    """A finite value >= 0 of the default's type (ints accept integral floats), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not math.isfinite(value) or value < 0:
        return None
    if isinstance(default, int):
        return int(value) if float(value).is_integer() else None
    return float(value)


def parse_thresholds(raw: Any, *, strict: bool, source: str = "<thresholds>", version: int = 0,
                     sha256: str | None = None) -> Thresholds:
    """Validate a parsed thresholds document into ``Thresholds`` (see the module doc)."""
    chk = _Checker(strict, source)
    doc = chk.mapping(raw, "top level")
    for key in doc:
        if key not in SECTIONS:
            chk.soft("E_THR_UNKNOWN_KEY", str(key), f"unknown section (known: {', '.join(SECTIONS)})")
    throttle = chk.mapping(doc.get("throttle"), "throttle")
    for key in throttle:
        if key not in ("global", "per_symbol"):
            chk.soft("E_THR_UNKNOWN_KEY", f"throttle.{key}", "unknown key (known: global, per_symbol)")
    return Thresholds(
        version=version,
        path=None if source.startswith("<") else source,
        sha256=sha256,
        strict=strict,
        throttle_global=chk.values(throttle.get("global"), THROTTLE_DEFAULTS, "throttle.global"),
        throttle_per_symbol=chk.per_symbol(throttle.get("per_symbol"), THROTTLE_DEFAULTS, "throttle.per_symbol"),
        canary_global=chk.values(doc.get("canary_gate"), CANARY_DEFAULTS, "canary_gate"),
        canary_per_symbol=chk.per_symbol(doc.get("canary_gate_per_symbol"), CANARY_DEFAULTS, "canary_gate_per_symbol"),
        warnings=tuple(chk.warnings),
    )


def load_thresholds(path: str, *, strict: bool | None = None, version: int = 0) -> Thresholds:
    """Read (bounded, ASCII) and validate a thresholds YAML/JSON file."""
    if strict is None:
        strict = strict_from_env()
    raw = artifacts.read_control_file(path, "auto")
    return parse_thresholds(raw, strict=strict, source=str(path), version=version, sha256=artifacts.sha256_file(path))


class ThresholdsStore:
    """The current ``Thresholds``; ``reload`` validates fully, then swaps (readers never see a mix)."""

    def __init__(self, initial: Thresholds | None = None) -> None:
        self._current = initial or Thresholds()
        self._lock = threading.Lock()  # serializes writers; readers just read the attribute

    @property
    def current(self) -> Thresholds:
        return self._current

    @property
    def version(self) -> int:
        return self._current.version

    def reload(self, path: str, strict: bool | None = None) -> Thresholds:
        """Load ``path`` as the next version; on any error the current version stays."""
        with self._lock:
            new = load_thresholds(path, strict=strict, version=self._current.version + 1)
            self._current = new
            return new
