"""The instrument registry: (venue, symbol) -> ``Instrument``, from package data plus user files.

The built-in list is the package data file ``mmkit/resources/instruments.yaml`` (the one
source of truth; see its header for the format).  Users extend or override it with their
own files in the same format: ``$MMKIT_INSTRUMENTS`` (one path, or several separated by
``os.pathsep``) and/or an explicit path; later files win per (venue, symbol).  Files are
read as control files (``artifacts.read_control_file``: size cap, ASCII only).

The same symbol means different contracts on different venues (Binance spot and USD-M
``BTCUSDT`` differ in tick and lot), so lookups take a venue; without one, a symbol
listed on several venues is refused as ambiguous rather than guessed.  A symbol the
registry does not know can be inferred from sample data (``infer_instrument``), always
with a logged warning, because an inferred grid can be too coarse for later data.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any

from mmkit import log
from mmkit.artifacts import read_control_file
from mmkit.core.instruments import GridError, Instrument, infer_step, is_decimal_text
from mmkit.errors import MmkitError

ENV_VAR = "MMKIT_INSTRUMENTS"
INFERRED_VENUE = "inferred"
REQUIRED_FIELDS = ("venue", "symbol", "tick_size", "lot_size")
OPTIONAL_FIELDS = ("contract_multiplier", "inverse", "min_notional")


# ----------------------------------------------------------------------------- records
def decimal_text(value: Decimal) -> str:
    """A decimal as a plain string without exponent or trailing zeros (``Decimal('1E+2')`` -> ``'100'``)."""
    return format(value.normalize(), "f")


def _exact(value: Any, field: str, where: str) -> Decimal:
    """A registry number: a quoted decimal string or an int, never a float."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        hint = f" (write it quoted: {field}: \"{value}\")" if isinstance(value, float) else ""
        raise MmkitError("E_DATA_BAD_INSTRUMENT", f"{where}: {field} must be a decimal string, got {type(value).__name__}{hint}")
    text = str(value).strip()
    if not is_decimal_text(text):
        raise MmkitError("E_DATA_BAD_INSTRUMENT", f"{where}: {field} {text!r} is not a plain decimal number")
    try:
        return Decimal(decimal_text(Decimal(text)))
    except InvalidOperation as exc:  # pragma: no cover - is_decimal_text already checked
        raise MmkitError("E_DATA_BAD_INSTRUMENT", f"{where}: {field} {text!r} is not a number") from exc


def instrument_record(inst: Instrument) -> dict[str, Any]:
    """An instrument as a JSON/YAML record with exact decimal strings (registry and cache format)."""
    return {
        "venue": inst.venue,
        "symbol": inst.symbol,
        "tick_size": decimal_text(inst.tick_size),
        "lot_size": decimal_text(inst.lot_size),
        "contract_multiplier": decimal_text(inst.contract_multiplier),
        "inverse": bool(inst.inverse),
        "min_notional": decimal_text(inst.min_notional),
    }


def instrument_from_record(rec: Any, where: str = "<record>") -> Instrument:
    """Validate one registry record and build its ``Instrument`` (``E_DATA_BAD_INSTRUMENT`` if wrong)."""
    if not isinstance(rec, Mapping):
        raise MmkitError("E_DATA_BAD_INSTRUMENT", f"{where}: expected a mapping with {', '.join(REQUIRED_FIELDS)}")
    unknown = sorted(set(map(str, rec)) - set(REQUIRED_FIELDS) - set(OPTIONAL_FIELDS))
    if unknown:
        allowed = ", ".join(REQUIRED_FIELDS + OPTIONAL_FIELDS)
        raise MmkitError("E_DATA_BAD_INSTRUMENT", f"{where}: unknown field(s) {', '.join(unknown)} (allowed: {allowed})")
    missing = [f for f in REQUIRED_FIELDS if f not in rec]
    if missing:
        raise MmkitError("E_DATA_BAD_INSTRUMENT", f"{where}: missing field(s) {', '.join(missing)}")
    venue, symbol = rec["venue"], rec["symbol"]
    if not isinstance(venue, str) or not venue or not isinstance(symbol, str) or not symbol:
        raise MmkitError("E_DATA_BAD_INSTRUMENT", f"{where}: venue and symbol must be non-empty strings")
    where = f"{where} ({venue} {symbol})"
    tick = _exact(rec["tick_size"], "tick_size", where)
    lot = _exact(rec["lot_size"], "lot_size", where)
    mult = _exact(rec.get("contract_multiplier", "1"), "contract_multiplier", where)
    min_notional = _exact(rec.get("min_notional", "0"), "min_notional", where)
    inverse = rec.get("inverse", False)
    if not isinstance(inverse, bool):
        raise MmkitError("E_DATA_BAD_INSTRUMENT", f"{where}: inverse must be true or false")
    if tick <= 0 or lot <= 0 or mult <= 0 or min_notional < 0:
        raise MmkitError("E_DATA_BAD_INSTRUMENT",
                         f"{where}: tick_size, lot_size and contract_multiplier must be > 0, min_notional >= 0")
    return Instrument(symbol=symbol, tick_size=tick, lot_size=lot, contract_multiplier=mult, inverse=inverse,
                      min_notional=min_notional, venue=venue)


# ----------------------------------------------------------------------------- registry
class InstrumentRegistry:
    """Instruments keyed by (venue, symbol), with venue aliases (e.g. Tardis exchange ids)."""

    def __init__(self, instruments: Iterable[Instrument] = (), aliases: Mapping[str, str] | None = None) -> None:
        self._by_key: dict[tuple[str, str], Instrument] = {}
        self._aliases: dict[str, str] = dict(aliases or {})
        for inst in instruments:
            self.add(inst)

    def add(self, inst: Instrument) -> None:
        """Add or replace the instrument for ``(inst.venue, inst.symbol)``."""
        self._by_key[(inst.venue, inst.symbol)] = inst

    def update(self, other: InstrumentRegistry) -> None:
        """Merge ``other`` into this registry; its entries and aliases win."""
        for inst in other:
            self.add(inst)
        self._aliases.update(other._aliases)

    def venue(self, name: str) -> str:
        """The registry's venue key for ``name`` (aliases resolved)."""
        return self._aliases.get(name, name)

    def candidates(self, symbol: str) -> list[Instrument]:
        """Every instrument named ``symbol``, sorted by venue."""
        return sorted((i for (_v, s), i in self._by_key.items() if s == symbol), key=lambda i: i.venue)

    def find(self, symbol: str, venue: str | None = None) -> Instrument | None:
        """The instrument, or None if unknown.  Without a venue, a symbol on several venues
        raises ``E_DATA_AMBIGUOUS_INSTRUMENT``."""
        if venue:
            return self._by_key.get((self.venue(venue), symbol))
        found = self.candidates(symbol)
        if len(found) > 1:
            venues = ", ".join(i.venue for i in found)
            raise MmkitError("E_DATA_AMBIGUOUS_INSTRUMENT",
                             f"{symbol} is listed for several venues ({venues}); name the venue (--venue VENUE)")
        return found[0] if found else None

    def get(self, symbol: str, venue: str | None = None) -> Instrument:
        """Like ``find`` but an unknown instrument raises ``E_DATA_UNKNOWN_INSTRUMENT``."""
        inst = self.find(symbol, venue)
        if inst is None:
            elsewhere = ", ".join(i.venue for i in self.candidates(symbol))
            where = f" on venue {venue}" if venue else ""
            hint = f" (it is listed for: {elsewhere})" if elsewhere and venue else ""
            raise MmkitError("E_DATA_UNKNOWN_INSTRUMENT",
                             f"{symbol}{where} is not in the instrument registry{hint}; add it to a file named by ${ENV_VAR}")
        return inst

    def venues(self) -> list[str]:
        return sorted({v for v, _s in self._by_key})

    def aliases(self) -> dict[str, str]:
        return dict(self._aliases)

    def records(self) -> list[dict[str, Any]]:
        """Every instrument as a record, sorted by (venue, symbol)."""
        return [instrument_record(self._by_key[k]) for k in sorted(self._by_key)]

    def __iter__(self) -> Iterator[Instrument]:
        return iter(list(self._by_key.values()))

    def __len__(self) -> int:
        return len(self._by_key)

    def __contains__(self, key: object) -> bool:
        return key in self._by_key


def builtin_registry_path() -> Path:
    """Where the package data file lives (``mmkit/resources/instruments.yaml``)."""
    return Path(str(resources.files("mmkit").joinpath("resources", "instruments.yaml")))


def load_instruments_file(path: str | os.PathLike[str]) -> InstrumentRegistry:
    """Read one registry file (package-data format); raise on any malformed entry."""
    name = str(path)
    doc = read_control_file(path, fmt="yaml")
    if not isinstance(doc, Mapping) or not isinstance(doc.get("instruments", []), list):
        raise MmkitError("E_DATA_BAD_INSTRUMENT", f"{name}: expected a mapping with an 'instruments' list")
    unknown = sorted(set(map(str, doc)) - {"version", "aliases", "instruments"})
    if unknown:
        raise MmkitError("E_DATA_BAD_INSTRUMENT", f"{name}: unknown top-level key(s) {', '.join(unknown)} (allowed: version, aliases, instruments)")
    if doc.get("version", 1) != 1:
        raise MmkitError("E_DATA_BAD_INSTRUMENT", f"{name}: unsupported registry version {doc.get('version')!r} (this mmkit reads 1)")
    aliases = doc.get("aliases") or {}
    if not isinstance(aliases, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in aliases.items()):
        raise MmkitError("E_DATA_BAD_INSTRUMENT", f"{name}: aliases must map venue names to venue names")
    registry = InstrumentRegistry(aliases=aliases)
    for i, rec in enumerate(doc.get("instruments") or []):
        inst = instrument_from_record(rec, f"{name}: instruments[{i}]")
        if (inst.venue, inst.symbol) in registry:
            raise MmkitError("E_DATA_BAD_INSTRUMENT", f"{name}: instruments[{i}]: {inst.venue} {inst.symbol} is listed twice")
        registry.add(inst)
    return registry


def user_registry_paths() -> list[str]:
    """The files named by ``$MMKIT_INSTRUMENTS`` (``os.pathsep``-separated), in order."""
    return [p for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p.strip()]


def load_registry(paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None, *,
                  builtin: bool = True, env: bool = True) -> InstrumentRegistry:
    """The registry: built-in list, then ``$MMKIT_INSTRUMENTS`` files, then ``paths``; later wins."""
    registry = load_instruments_file(builtin_registry_path()) if builtin else InstrumentRegistry()
    extra: list[str | os.PathLike[str]] = list(user_registry_paths()) if env else []
    if paths is not None:
        extra += [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    for path in extra:
        registry.update(load_instruments_file(path))
    return registry


def infer_instrument(symbol: str, sample_prices: Iterable[str], sample_sizes: Iterable[str],
                     venue: str = INFERRED_VENUE) -> Instrument:
    """Guess an instrument from decimal strings seen in the data, with a logged warning.

    The tick (lot) is the coarsest power of ten on which every sample price (size) lies,
    so a later, finer value fails with an off-grid error that says to register it.
    """
    prices = [p for p in sample_prices if is_decimal_text(p)]
    sizes = [s for s in sample_sizes if is_decimal_text(s)]
    try:
        inst = Instrument(symbol=symbol, tick_size=infer_step(prices), lot_size=infer_step(sizes), venue=venue)
    except GridError as exc:  # pragma: no cover - infer_step always returns a positive step
        raise MmkitError("E_DATA_UNKNOWN_INSTRUMENT", f"{symbol}: cannot infer an instrument ({exc})") from exc
    log.warning("instrument_inferred", symbol=symbol, tick_size=decimal_text(inst.tick_size),
                lot_size=decimal_text(inst.lot_size), price_samples=len(prices), size_samples=len(sizes),
                hint=f"not in the registry; add it to a file named by ${ENV_VAR} to make the grid exact")
    return inst
