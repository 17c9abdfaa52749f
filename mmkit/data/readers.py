"""One entry point for market-data files: detect, read, check, merge, report.

``open_events(paths)`` turns exchange recordings into the normalized events of
``core/events.py`` (prices in ticks, sizes in lots) and a ``ReadReport`` that says what was
read, skipped, dropped and how the clocks look.  It streams: memory stays constant on
multi-GB inputs (one line at a time; a bounded buffer while a Binance book syncs).

Inputs are grouped into recordings: files of one stream (same format, venue and symbols,
e.g. ``btcusdt_20240718.gz`` + ``btcusdt_20240719.gz``) are read one after the other
through ONE reader, so sequence numbers continue across the file boundary; distinct
streams are merged in exchange-time (``ts``) order with ``heapq.merge``.

This module also holds the machinery the format readers (``binance.py``, ``bybit.py``,
``tardis.py``) share: the error policy, exact decimal -> integer conversion without
``Decimal`` on the hot path, a best-bid/ask tracker that detects crossed books, timestamp
order checks and the per-file statistics.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import heapq
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from heapq import heapify, heappop, heappush
from pathlib import Path
from typing import Any

from mmkit import log
from mmkit.core.events import Event, SeqGap
from mmkit.core.instruments import GridError, Instrument, is_decimal_text, plain_to_units, step_scale
from mmkit.errors import MmkitError

ON_ERROR_CHOICES = ("fail", "skip")

# Error codes of the exchange readers (listed in docs/errors.md).
E_BAD_LINE = "E_DATA_BAD_LINE"
E_BAD_JSON = "E_DATA_BAD_LINE"  # unparsable lines share the JSONL reader's code
E_BAD_VALUE = "E_DATA_BAD_LINE"
E_NEGATIVE_SIZE = "E_DATA_NEGATIVE_SIZE"
E_OFF_GRID = "E_DATA_OFF_GRID"
E_OUT_OF_ORDER = "E_DATA_OUT_OF_ORDER"
E_CROSSED_BOOK = "E_DATA_CROSSED_BOOK"
E_SEQ_GAP = "E_DATA_SEQ_GAP"
E_SYMBOL_CONFLICT = "E_DATA_SYMBOL_CONFLICT"

MAX_POSITIONS = 20  # gap / skip positions kept verbatim in the report (the counts are exact)


# ----------------------------------------------------------------------------- exact units
class BadNumber(GridError):
    """Not a finite decimal number."""


class OffGrid(GridError):
    """A number that is not a whole multiple of the instrument's tick or lot."""


class NegativeValue(GridError):
    """A size below zero, or a price at or below zero."""

    def __init__(self, message: str, size: bool) -> None:
        super().__init__(message)
        self.size = size


_PLAIN = re.compile(r"[0-9]+(?:\.[0-9]*)?\Z")
_EXP = re.compile(r"-?[0-9]+(?:\.[0-9]+)?[eE][+-]?[0-9]{1,3}\Z")
_CACHE_MAX = 1 << 17


class UnitCache(dict):  # type: ignore[type-arg]
    """``cache[text] -> units``: a dict of converted values that converts on a miss.

    A hit is one C-level dict lookup (no Python call), which matters when a depth message
    carries a hundred levels.  ``__missing__`` runs the checked conversion and stores only
    valid results, so a bad value raises every time it is seen.  Calling works too.
    """

    __slots__ = ("convert",)

    def __missing__(self, text: Any) -> int:
        units = self.convert(text)
        if len(self) >= _CACHE_MAX:
            self.clear()
        self[text] = units
        return units

    def __call__(self, text: Any) -> int:
        return self[text]


def unit_converter(step: Decimal, what: str = "value", positive: bool = False) -> UnitCache:
    """A cached exact ``text -> int(text / step)`` for one tick or lot size.

    Plain decimal strings (``"61837.63000000"``) go through ``core.instruments``'
    ``plain_to_units`` (string slicing and ``int``, no ``Decimal``); the exponent form
    (``"1e-05"``, as some CSV exporters write tiny sizes) takes a ``Decimal`` path.  A value
    off the grid raises ``OffGrid``, a non-number ``BadNumber``, a negative one (with
    ``positive``: also zero) ``NegativeValue``.
    """
    mant, places = step_scale(step)
    scale = 10**places
    pow10 = [10**k for k in range(places + 1)]

    def convert(text: Any) -> int:
        if type(text) is str:
            # the common case inline: unsigned plain decimal, e.g. "61837.63000000"
            whole, dot, frac = text.partition(".")
            if whole.isdigit() and (frac.isdigit() or not dot) and text.isascii() and len(text) < 200:
                n = len(frac)
                if n > places:
                    if frac[places:].strip("0"):
                        raise OffGrid(f"{what} {text} is not a multiple of {step}")
                    units = int(whole + frac[:places])
                else:
                    units = int(whole + frac) * pow10[places - n]
                if mant != 1:
                    units, rest = divmod(units, mant)
                    if rest:
                        raise OffGrid(f"{what} {text} is not a multiple of {step}")
                if positive and not units:
                    raise NegativeValue(f"{what} {text} must be > 0", size=False)
                return units
        return general(text)

    def general(text: Any) -> int:
        if type(text) is float and text == text and abs(text) != float("inf"):
            text = repr(text)  # a JSON number: its shortest repr is the literal that was written
        if type(text) is int:
            units, rest = divmod(text * scale, mant)
        elif type(text) is str and is_decimal_text(text):
            try:
                units = plain_to_units(text, mant, places)
            except GridError:
                raise OffGrid(f"{what} {text} is not a multiple of {step}") from None
            except ValueError:
                raise BadNumber(f"{what} {text[:40]!r} is too long") from None
            rest = 0
        elif type(text) is str and _EXP.match(text):
            q, r = divmod(Decimal(text).scaleb(places), mant)
            units, rest = int(q), r
        else:
            raise BadNumber(f"{what} is not a decimal number: {str(text)[:40]!r}")
        if rest:
            raise OffGrid(f"{what} {text} is not a multiple of {step}")
        if units < 0 or (positive and units == 0):
            raise NegativeValue(f"{what} {text} must be {'> 0' if positive else '>= 0'}", size=not positive)
        return units

    cache = UnitCache()
    cache.convert = convert
    return cache


def decimal_to_ns(text: str, unit_exp: int) -> int:
    """Exact integer nanoseconds from a decimal time string in units of ``10**unit_exp`` s.

    ``decimal_to_ns("1735689600.0974", 0)`` (seconds) -> 1735689600097400000;
    ``unit_exp=-6`` for microseconds, ``-3`` for milliseconds.  Digits beyond ns are refused.
    """
    s = text.strip()
    if not _PLAIN.match(s):
        raise BadNumber(f"timestamp is not a non-negative decimal: {text[:40]!r}")
    ip, _, fp = s.partition(".")
    places = 9 + unit_exp  # decimals kept to reach ns
    if places < 0:
        raise ValueError("unit finer than ns")
    if len(fp) > places:
        if fp[places:].strip("0"):
            raise BadNumber(f"timestamp {text} is finer than a nanosecond")
        fp = fp[:places]
    return int((ip or "0") + fp.ljust(places, "0"))


# ----------------------------------------------------------------------------- book tracker
class BookTracker:
    """The price levels of one book, kept to tell whether an update left it crossed.

    Dicts hold ``price_ticks -> size_lots``; the best prices are cached and, when the best
    level is deleted, recovered from a lazily pruned heap (bids negated).  ``apply`` is the
    hot path; ``apply_logged`` also returns what it replaced so ``undo`` can restore it
    (used where no sequence numbers will flag the skipped update later).
    """

    __slots__ = ("bids", "asks", "bb", "ba", "_bh", "_ah")

    def __init__(self) -> None:
        self.reset((), ())

    def reset(self, bids: Iterable[tuple[int, int]], asks: Iterable[tuple[int, int]]) -> None:
        self.bids: dict[int, int] = {p: q for p, q in bids if q}
        self.asks: dict[int, int] = {p: q for p, q in asks if q}
        self._bh = [-p for p in self.bids]
        self._ah = list(self.asks)
        heapify(self._bh)
        heapify(self._ah)
        self.bb: int | None = -self._bh[0] if self._bh else None
        self.ba: int | None = self._ah[0] if self._ah else None

    def apply(self, bids: Iterable[tuple[int, int]], asks: Iterable[tuple[int, int]]) -> bool:
        """Set absolute sizes (0 deletes); True if the book is crossed afterwards."""
        book, heap, best = self.bids, self._bh, self.bb
        lost = False
        for p, q in bids:
            if q:
                if p not in book:
                    heappush(heap, -p)
                    if best is None or p > best:
                        best = p
                book[p] = q
            elif book.pop(p, None) is not None and p == best:
                lost = True
        if lost:
            while heap and -heap[0] not in book:
                heappop(heap)
            best = -heap[0] if heap else None
        if len(heap) > 64 + 4 * len(book):
            heap[:] = [-p for p in book]
            heapify(heap)
        self.bb = bb = best
        book, heap, best = self.asks, self._ah, self.ba
        lost = False
        for p, q in asks:
            if q:
                if p not in book:
                    heappush(heap, p)
                    if best is None or p < best:
                        best = p
                book[p] = q
            elif book.pop(p, None) is not None and p == best:
                lost = True
        if lost:
            while heap and heap[0] not in book:
                heappop(heap)
            best = heap[0] if heap else None
        if len(heap) > 64 + 4 * len(book):
            heap[:] = list(book)
            heapify(heap)
        self.ba = best
        return bb is not None and best is not None and bb >= best

    def apply_logged(self, bids: tuple[tuple[int, int], ...], asks: tuple[tuple[int, int], ...]) -> tuple[bool, list[int | None]]:
        """``apply`` that also returns the replaced sizes (bids then asks) for ``undo``."""
        old = [self.bids.get(p) for p, _ in bids] + [self.asks.get(p) for p, _ in asks]
        return self.apply(bids, asks), old

    def undo(self, bids: tuple[tuple[int, int], ...], asks: tuple[tuple[int, int], ...], old: list[int | None]) -> None:
        """Restore the sizes ``apply_logged`` replaced."""
        n = len(bids)
        restore_b = {}
        for (p, _), prev in zip(bids, old[:n]):
            restore_b.setdefault(p, prev)  # the first old value of a price is its value before the update
        restore_a = {}
        for (p, _), prev in zip(asks, old[n:]):
            restore_a.setdefault(p, prev)
        self.apply(tuple((p, q or 0) for p, q in restore_b.items()), tuple((p, q or 0) for p, q in restore_a.items()))

    def best_bid(self) -> int | None:
        return self.bb

    def best_ask(self) -> int | None:
        return self.ba

    def crossed(self) -> bool:
        return self.bb is not None and self.ba is not None and self.bb >= self.ba


# ----------------------------------------------------------------------------- report
@dataclass
class SourceStats:
    """What happened while reading one input file."""

    path: str
    fmt: str
    lines: int = 0
    events: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)  # error code -> lines/events skipped (on_error=skip)
    skipped_at: list[str] = field(default_factory=list)  # first positions, "file:line CODE"
    ignored: Counter = field(default_factory=Counter)  # silently ignored by design (control frames, other channels)
    dropped: Counter = field(default_factory=Counter)  # book updates dropped by the sync rules
    seq_gaps: int = 0
    gaps_at: list[dict[str, Any]] = field(default_factory=list)
    trade_id_gaps: int = 0
    snapshots: int = 0
    symbols: set[str] = field(default_factory=set)
    venue: str = ""
    recv_clock: str = "local"  # "local": a recorder's clock; "exchange": recv_ts copied from an exchange time
    skew_n: int = 0
    skew_sum: int = 0
    skew_min: int = 0
    skew_max: int = 0
    first_ts: int | None = None
    last_ts: int | None = None
    _samples: list[int] = field(default_factory=list, repr=False)
    _stride: int = 1

    def skew(self, diff: int) -> None:
        """Account one ``recv_ts - ts`` (ns); a bounded, evenly thinned sample keeps the median."""
        n = self.skew_n
        if n == 0:
            self.skew_min = self.skew_max = diff
        elif diff < self.skew_min:
            self.skew_min = diff
        elif diff > self.skew_max:
            self.skew_max = diff
        self.skew_n = n + 1
        self.skew_sum += diff
        if n % self._stride == 0:
            samples = self._samples
            samples.append(diff)
            if len(samples) >= 20000:
                del samples[1::2]
                self._stride *= 2

    def clock(self) -> dict[str, Any]:
        """recv_ts - ts over events that carry both clocks, in ms (mean, min, max)."""
        out: dict[str, Any] = {"recv_clock": self.recv_clock, "n": self.skew_n}
        if self.skew_n:
            mean = self.skew_sum / self.skew_n / 1e6
            ordered = sorted(self._samples)
            out.update(
                recv_minus_ts_median_ms=round(ordered[len(ordered) // 2] / 1e6, 3),
                recv_minus_ts_mean_ms=round(mean, 3),
                recv_minus_ts_min_ms=round(self.skew_min / 1e6, 3),
                recv_minus_ts_max_ms=round(self.skew_max / 1e6, 3),
                # a local clock behind the exchange (negative) or far ahead of it is flagged
                skewed=self.recv_clock == "local" and (mean < 0 or mean > 1000),
                note=("recv_ts is the recorder's clock, kept raw: it is behind the exchange clock, so recv_ts - ts "
                      "is not a latency; de-skew before measuring feed latency")
                if self.recv_clock == "local" and mean < 0 else
                ("recv_ts copied from an exchange time (the file has no local clock)" if self.recv_clock == "exchange" else ""),
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.fmt,
            "venue": self.venue,
            "symbols": sorted(self.symbols),
            "lines": self.lines,
            "events": dict(sorted(self.events.items())),
            "events_total": sum(self.events.values()),
            "snapshots": self.snapshots,
            "seq_gaps": self.seq_gaps,
            "gaps_at": list(self.gaps_at),
            "trade_id_gaps": self.trade_id_gaps,
            "skipped": dict(sorted(self.skipped.items())),
            "skipped_total": sum(self.skipped.values()),
            "skipped_at": list(self.skipped_at),
            "ignored": dict(sorted(self.ignored.items())),
            "dropped": dict(sorted(self.dropped.items())),
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "clock": self.clock(),
        }


@dataclass
class ReadReport:
    """Per-file statistics of one ``open_events`` call plus the instruments it used."""

    sources: list[SourceStats] = field(default_factory=list)
    instruments: dict[str, Instrument] = field(default_factory=dict)
    on_error: str = "fail"

    def add(self, path: str, fmt: str) -> SourceStats:
        src = SourceStats(path=path, fmt=fmt)
        self.sources.append(src)
        return src

    def register(self, inst: Instrument) -> Instrument:
        """Remember the instrument behind a symbol; one symbol may not mean two instruments."""
        have = self.instruments.get(inst.symbol)
        if have is None:
            self.instruments[inst.symbol] = inst
            return inst
        if (have.tick_size, have.lot_size, have.inverse, have.venue) != (inst.tick_size, inst.lot_size, inst.inverse, inst.venue):
            raise MmkitError(
                E_SYMBOL_CONFLICT,
                f"symbol {inst.symbol} appears as two instruments ({have.venue or '?'} and {inst.venue or '?'}); "
                "read the inputs separately or pick one with --symbol",
            )
        return have

    @property
    def seq_gaps(self) -> int:
        return sum(s.seq_gaps for s in self.sources)

    @property
    def skipped(self) -> int:
        return sum(sum(s.skipped.values()) for s in self.sources)

    @property
    def events(self) -> int:
        return sum(sum(s.events.values()) for s in self.sources)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (numbers and strings only)."""
        totals: Counter = Counter()
        for s in self.sources:
            totals.update(s.events)
        return {
            "on_error": self.on_error,
            "sources": [s.to_dict() for s in self.sources],
            "events": dict(sorted(totals.items())),
            "events_total": sum(totals.values()),
            "seq_gaps": self.seq_gaps,
            "skipped_total": self.skipped,
            "instruments": {
                sym: {
                    "venue": i.venue,
                    "tick_size": str(i.tick_size),
                    "lot_size": str(i.lot_size),
                    "contract_multiplier": str(i.contract_multiplier),
                    "inverse": i.inverse,
                }
                for sym, i in sorted(self.instruments.items())
            },
        }


# ----------------------------------------------------------------------------- base reader
class LineError(Exception):
    """A problem with the current line/event, raised inside a parser; ``code`` is E_DATA_*."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def split_recv_prefix(line: str, last_recv: int, shape: str) -> tuple[int, str]:
    """Split a recorder line ``<recv_ns> <json>`` into the receive time and the JSON body.

    Shared by the readers of collector recordings (Binance, Bybit).  ``last_recv`` is the
    previous line's receive time (it must not go backwards within a file); ``shape`` names
    the expected line shape in the error message.
    """
    sp = line.find(" ")
    if sp < 0:
        raise LineError(E_BAD_LINE, f"expected {shape}")
    try:
        recv = int(line[:sp])
    except ValueError:
        raise LineError(E_BAD_LINE, f"bad receive timestamp {line[:min(sp, 24)]!r}") from None
    if recv < last_recv:
        raise LineError(E_OUT_OF_ORDER, f"receive time goes backwards: {recv} after {last_recv}")
    return recv, line[sp + 1:]


def grid_code(exc: GridError) -> str:
    if isinstance(exc, NegativeValue):
        return E_NEGATIVE_SIZE if exc.size else E_BAD_VALUE
    if isinstance(exc, OffGrid):
        return E_OFF_GRID
    return E_BAD_VALUE


class Units:
    """The converters and instrument of one symbol, created once per symbol."""

    __slots__ = ("inst", "px", "qty")

    def __init__(self, inst: Instrument) -> None:
        self.inst = inst
        self.px = unit_converter(inst.tick_size, f"{inst.symbol} price", positive=True)
        self.qty = unit_converter(inst.lot_size, f"{inst.symbol} size")


class BaseReader(ABC):
    """Shared loop state of the format readers: files, positions, policy, checks, stats.

    A subclass implements ``_read(lines)`` and yields events; it reports problems with
    ``self.problem(code, detail)``, which raises ``MmkitError`` (on_error='fail', with
    ``file:line``) or counts the skip (on_error='skip').
    """

    fmt = "?"

    def __init__(
        self,
        paths: Iterable[str | Path],
        *,
        symbol: str | None = None,
        on_error: str = "fail",
        venue: str | None = None,
        report: ReadReport | None = None,
        opener: Callable[[str], Iterable[str]] | None = None,
    ) -> None:
        if on_error not in ON_ERROR_CHOICES:
            raise ValueError(f"on_error must be one of {ON_ERROR_CHOICES}, got {on_error!r}")
        self.paths = [str(p) for p in paths]
        self.symbol = symbol.upper() if symbol else None
        self.on_error = on_error
        self.venue = venue
        self.report = report if report is not None else ReadReport(on_error=on_error)
        self.opener = opener
        self.src: SourceStats = SourceStats("", self.fmt)
        self.path = ""
        self.line_no = 0
        self._last_ts: dict[tuple[str, str], int] = {}
        self._units: dict[str, Units] = {}

    # -- iteration ---------------------------------------------------------------------
    def __iter__(self) -> Iterator[Event]:
        for path in self.paths:
            self.path = path
            self.line_no = 0
            self.src = self.report.add(path, self.fmt)
            if self.venue:
                self.src.venue = self.venue
            lines = self.opener(path) if self.opener is not None else open_lines(path)
            try:
                yield from self._read(lines)
            finally:  # also when the consumer stops early: the report covers what was read
                close = getattr(lines, "close", None)
                if close is not None:
                    close()
                self.src.lines = max(self.src.lines, self.line_no)
                self._end_file()
        self._end_all()

    @abstractmethod
    def _read(self, lines: Iterable[str]) -> Iterator[Event]:
        """Parse one file's lines into events (each format's reader defines it)."""

    def _end_file(self) -> None:
        """Hook: called after each file (the book state carries over to the next file)."""

    def _end_all(self) -> None:
        """Hook: called after the last file."""

    # -- policy ------------------------------------------------------------------------
    def where(self) -> str:
        return f"{self.path}:{self.line_no}"

    def problem(self, code: str, detail: str) -> None:
        """Fail with ``code`` at the current position, or count a skip under on_error='skip'."""
        if self.on_error == "fail":
            raise MmkitError(code, f"{self.where()}: {detail}; re-run with --on-error skip to skip and count such lines")
        self.src.skipped[code] += 1
        if len(self.src.skipped_at) < MAX_POSITIONS:
            self.src.skipped_at.append(f"{self.where()} {code}")

    def gap(self, symbol: str, expected: int, got: int, ts: int, recv_ts: int, what: str) -> SeqGap:
        """A sequence gap: raise under on_error='fail'; else count, log once, return the SeqGap."""
        detail = f"{symbol} {what} sequence gap: expected {expected}, got {got}"
        if self.on_error == "fail":
            raise MmkitError(
                E_SEQ_GAP,
                f"{self.where()}: {detail}; re-run with --on-error skip to continue (the gap is then counted, "
                "a seq_gap event is emitted and the book stays stale until the next snapshot)",
            )
        self.src.seq_gaps += 1
        if len(self.src.gaps_at) < MAX_POSITIONS:
            self.src.gaps_at.append({"at": self.where(), "symbol": symbol, "stream": what, "expected": expected, "got": got})
        log.warning("data_seq_gap", at=self.where(), symbol=symbol, stream=what, expected=expected, got=got,
                    action="book stale until the next snapshot")
        return SeqGap(ts, recv_ts, symbol, expected, got)

    def in_order(self, symbol: str, channel: str, ts: int, hint: str = "") -> bool:
        """Exchange time must not go backwards within one symbol's channel."""
        key = (symbol, channel)
        last = self._last_ts.get(key)
        if last is not None and ts < last:
            self.problem(E_OUT_OF_ORDER, f"{symbol} {channel} time goes backwards: {ts} after {last} (ns){hint}")
            return False
        self._last_ts[key] = ts
        return True

    def counted(self, ev: Event) -> Event:
        src = self.src
        src.events[ev.kind] += 1
        src.symbols.add(ev.symbol)
        if src.first_ts is None:
            src.first_ts = ev.ts
        src.last_ts = ev.ts
        return ev

    def units(self, symbol: str, venue: str, sample: Callable[[], Iterable[tuple[list[str], list[str]]]] | None = None) -> Units:
        """The converters of ``symbol`` (instrument from the registry, else inferred from a sample)."""
        u = self._units.get(symbol)
        if u is None:
            inst = resolve_instrument(venue, symbol, sample)
            inst = self.report.register(inst)
            u = self._units[symbol] = Units(inst)
        self.src.symbols.add(symbol)
        if not self.src.venue:
            self.src.venue = venue
        return u


# ----------------------------------------------------------------------------- seams to io + registry
def open_lines(path: str) -> Iterator[str]:
    """Lines of a (possibly .gz/.zip, or '-') text input, streamed."""
    from mmkit.data.io import open_text

    return iter(open_text(path))


_REGISTRY: dict[str, Any] = {}


def registry() -> Any:
    """The instrument registry (built-in + ``$MMKIT_INSTRUMENTS``), loaded once per setting."""
    from mmkit.data import instruments as reg

    key = ":".join(reg.user_registry_paths())
    if key not in _REGISTRY:
        _REGISTRY.clear()
        _REGISTRY[key] = reg.load_registry()
    return _REGISTRY[key]


def resolve_instrument(venue: str, symbol: str, sample: Callable[[], Iterable[tuple[list[str], list[str]]]] | None) -> Instrument:
    """Registry lookup by venue+symbol; else infer the grid from sample prices/sizes (logged)."""
    from mmkit.data import instruments as reg

    known = registry()
    inst = known.find(symbol, venue)
    if inst is not None:
        return inst
    prices: list[str] = []
    sizes: list[str] = []
    if sample is not None:
        for ps, qs in sample():
            prices += [p for p in ps if isinstance(p, str)]
            sizes += [q for q in qs if isinstance(q, str)]
    if not prices or not sizes:
        raise MmkitError("E_DATA_UNKNOWN_INSTRUMENT",
                         f"{symbol} on {venue} is not in the instrument registry and there is no sample to infer it from; "
                         f"add it to a file named by ${reg.ENV_VAR}")
    return reg.infer_instrument(symbol, prices, sizes, venue=known.venue(venue))


# ----------------------------------------------------------------------------- entry point
class EventStream:
    """Iterator of events with the ``report`` filled in as it goes (complete once exhausted)."""

    def __init__(self, it: Iterator[Event], report: ReadReport, groups: list[tuple[str, list[str]]]) -> None:
        self._it = it
        self.report = report
        self.groups = groups

    def __iter__(self) -> Iterator[Event]:
        return self._it  # the underlying iterator itself: no extra call per event

    def __next__(self) -> Event:
        return next(self._it)

    @property
    def instruments(self) -> dict[str, Instrument]:
        return self.report.instruments


def open_events(
    paths: str | Path | Iterable[str | Path],
    fmt: str | None = None,
    symbol: str | None = None,
    on_error: str = "fail",
    venue: str | None = None,
) -> EventStream:
    """Read market events from one or more files (``-`` = stdin), any supported format.

    ``fmt``: ``binance`` | ``bybit`` | ``tardis`` | ``jsonl`` | ``cache`` or None to detect
    per file (``detect.detect_format``).  Files of one recording (same format and stream
    identity) are read in order as one stream, so sequence numbers continue across files;
    different streams are merged by ``ts``.  ``symbol`` keeps one symbol; ``venue`` names the
    instrument registry's venue when the data cannot tell (e.g. ``bybit-spot``).
    ``on_error``: ``fail`` (raise ``MmkitError`` with file:line) or ``skip`` (count in the report).
    """
    from mmkit.data import detect

    if on_error not in ON_ERROR_CHOICES:
        raise MmkitError("E_USAGE", f"--on-error must be one of {', '.join(ON_ERROR_CHOICES)}, got {on_error!r}", 64)
    if isinstance(paths, (str, Path)):
        paths = [paths]
    names = [str(p) for p in paths]
    if not names:
        raise MmkitError("E_USAGE", "no input files given", 64)
    report = ReadReport(on_error=on_error)
    sniffs = [detect.sniff(n, fmt) for n in names]
    groups: dict[tuple[str, str], list[detect.Sniff]] = {}
    for sn in sniffs:
        groups.setdefault((sn.fmt, sn.stream), []).append(sn)
    iters: list[Iterator[Event]] = []
    layout: list[tuple[str, list[str]]] = []
    for (kind, _), members in groups.items():
        members.sort(key=lambda s: (s.first_time is None, s.first_time or 0))  # one recording: in time order
        layout.append((kind, [m.path for m in members]))
        iters.append(_open_group(kind, members, symbol=symbol, on_error=on_error, venue=venue, report=report))
    it = iters[0] if len(iters) == 1 else heapq.merge(*iters, key=_ts_key)
    return EventStream(iter(it), report, layout)


def _ts_key(ev: Event) -> int:
    return ev.ts


def _open_group(kind: str, members: list[Any], **kw: Any) -> Iterator[Event]:
    opener = _make_opener(members)
    paths = [m.path for m in members]
    if kind == "binance":
        from mmkit.data.binance import BinanceReader

        return iter(BinanceReader(paths, opener=opener, **kw))
    if kind == "bybit":
        from mmkit.data.bybit import BybitReader

        return iter(BybitReader(paths, opener=opener, **kw))
    if kind == "tardis":
        from mmkit.data.tardis import TardisReader

        return iter(TardisReader(paths, opener=opener, **kw))
    if kind in ("jsonl", "cache"):
        return _native(kind, paths, opener=opener, **kw)
    raise MmkitError("E_DATA_UNKNOWN_FORMAT", f"unknown format {kind!r}; use one of binance, bybit, tardis, jsonl, cache")


def _make_opener(members: list[Any]) -> Callable[[str], Iterable[str]]:
    """Opens each path, reusing lines already read while sniffing (needed for stdin)."""
    pre = {m.path: m for m in members}

    def opener(path: str) -> Iterable[str]:
        sn = pre.get(path)
        if sn is not None and sn.stream_lines is not None:
            lines, sn.stream_lines = sn.stream_lines, None
            return lines
        return open_lines(path)

    return opener


def _native(kind: str, paths: list[str], *, symbol: str | None, on_error: str, venue: str | None, report: ReadReport,
            opener: Callable[[str], Iterable[str]] | None = None) -> Iterator[Event]:
    """mmkit's own formats: JSONL interchange (``data.jsonl``) and the columnar cache (``data.cache``).

    stdin was partly consumed by format detection, so JSONL on ``-`` is read through
    ``opener``, which replays the sniffed lines first."""
    want = symbol.upper() if symbol else None
    for path in paths:
        src = report.add(path, kind)
        src.recv_clock = "stored"
        registered: set[str] = set()
        if kind == "jsonl":
            from mmkit.data.jsonl import JsonlReader

            source: Any = opener(path) if (opener is not None and path == "-") else path
            reader = JsonlReader(source, venue=venue, on_error=on_error)
            events: Iterable[Event] = reader
            lookup = reader.instruments
            closer = None
        else:
            from mmkit.data.cache import load_cache

            cache = load_cache(path)
            events = cache
            lookup = {i.symbol: i for i in cache.instruments}
            closer = cache.close
        try:
            for ev in events:
                sym = ev.symbol
                if want is not None and sym != want:
                    src.ignored["other_symbol"] += 1
                    continue
                if sym not in registered:
                    report.register(lookup[sym])
                    registered.add(sym)
                    src.symbols.add(sym)
                src.events[ev.kind] += 1
                if src.first_ts is None:
                    src.first_ts = ev.ts
                src.last_ts = ev.ts
                if ev.kind == "seq_gap":
                    src.seq_gaps += 1
                yield ev
        finally:
            if kind == "jsonl":
                stats = reader.stats
                src.lines = stats.lines
                for reason, n in stats.reasons.items():
                    src.skipped[reason] += n
            elif closer is not None:
                closer()
