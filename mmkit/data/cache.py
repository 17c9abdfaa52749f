"""Columnar binary cache of a normalized event stream: what the backtester loads.

Parsing JSONL costs microseconds per event; this file loads at memory speed.  Layout
(all integers little-endian)::

    offset 0   8 bytes   magic b"MMKCACHE"
    offset 8   uint32    format version (1)
    offset 12  uint32    H = header length in bytes
    offset 16  H bytes   header: canonical ASCII JSON, space-padded so 16 + H is a multiple of 8
    16 + H     ...       columns, back to back, each starting on an 8-byte boundary

The header (``"schema": "mmkit.cache/v1"``) records ``byteorder``, ``events`` and ``levels``
counts, the ``instruments`` (registry records: tick/lot/multiplier as exact decimal
strings; the ``sym`` column indexes this list), the ``source`` (path and sha256 of the
input it was built from, or null), and ``columns``: name, array typecode, ``offset``
(relative to the first column), ``count``, ``nbytes`` and ``sha256`` of each column.

Event columns (one row per event, in stream order):

========  ====  ====================================================================
kind      b     0 book_snapshot, 1 book_delta, 2 trade, 3 quote, 4 seq_gap (``KINDS``)
sym       H     index into ``instruments``
ts        q     exchange time, ns
recv_ts   q     local receive time, ns
a,b,c,d   q     payload, by kind (``PAYLOAD``):
                book_*: a = first row in the level columns, b = bid levels, c = ask levels
                trade: a = side (+1 buy / -1 sell aggressor), b = price ticks, c = lots
                quote: a = bid ticks, b = bid lots, c = ask ticks, d = ask lots
                seq_gap: a = expected, b = got
========  ====  ====================================================================

Level columns (one row per book level; an event's bids, then its asks):
``level_px`` (q, ticks) and ``level_qty`` (q, lots).

Writing streams in constant memory (columns spill to temp files every ``SPILL_ROWS``
rows) and lands atomically through ``artifacts.atomic_writer``.  ``load_cache`` maps the
file (or reads it into memory) and exposes each column as a ``memoryview`` without copying;
``EventCache`` also iterates the events back as ``core.events`` objects, equal to the ones
written.
"""

from __future__ import annotations

import hashlib
import mmap
import operator
import os
import struct
import sys
import tempfile
from array import array
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

from mmkit import artifacts
from mmkit.core.events import (
    EVENT_KINDS,
    BookDelta,
    BookSnapshot,
    Event,
    Quote,
    SeqGap,
    Trade,
    make_book_delta,
    make_book_snapshot,
    make_quote,
    make_seq_gap,
    make_trade,
)
from mmkit.core.engine import Rows
from mmkit.core.instruments import Instrument
from mmkit.data.instruments import instrument_from_record, instrument_record
from mmkit.data.io import split_member
from mmkit.compiled import pure_python_forced
from mmkit.errors import MmkitError

MAGIC = b"MMKCACHE"
FORMAT_VERSION = 1
SCHEMA = "mmkit.cache/v1"
PREAMBLE = struct.Struct("<8sII")
KINDS = EVENT_KINDS
K_SNAPSHOT, K_DELTA, K_TRADE, K_QUOTE, K_SEQ_GAP = range(5)
EVENT_COLUMNS = (("kind", "b"), ("sym", "H"), ("ts", "q"), ("recv_ts", "q"), ("a", "q"), ("b", "q"), ("c", "q"), ("d", "q"))
LEVEL_COLUMNS = (("level_px", "q"), ("level_qty", "q"))
PAYLOAD = {
    "book_snapshot": ["level_offset", "bid_levels", "ask_levels", None],
    "book_delta": ["level_offset", "bid_levels", "ask_levels", None],
    "trade": ["side", "price", "qty", None],
    "quote": ["bid_px", "bid_qty", "ask_px", "ask_qty"],
    "seq_gap": ["expected", "got", None, None],
}
"""What payload columns a, b, c, d hold for each kind (also written into the header)."""
SPILL_ROWS = 1 << 18
_BUILD_ROWS = 128  # rows per call of the compiled builder: short lists keep events young for the GC (4096 ran 2x slower)
_MAKERS = (make_book_snapshot, make_book_delta, make_trade, make_quote, make_seq_gap)

try:  # the compiled row -> event builder (setup.py builds it; optional)
    from mmkit.data._cacheiter import build as _build_rows
    from mmkit.data._cacheiter import histogram as _histogram
    from mmkit.data._cacheiter import min_diff as _min_diff
except ImportError:  # pragma: no cover - a build without a C compiler
    _build_rows = _min_diff = _histogram = None

COMPILED = _build_rows is not None
"""True when the compiled row builder is installed; ``iter_events`` uses it unless the
environment sets ``MMKIT_PURE_PYTHON=1`` (read per iteration).  Same events either way."""


def _use_compiled() -> bool:
    return _build_rows is not None and not pure_python_forced()


_DONTNEED = getattr(mmap, "MADV_DONTNEED", None)  # Linux and most Unixes; elsewhere pages are not dropped early
_PAGE = mmap.PAGESIZE
_ITER_CHUNK = 1 << 16
_MAX_SYMBOLS = 1 << 16


def _align8(n: int) -> int:
    return (n + 7) & ~7


class _Column:
    """One growing column: an ``array`` buffer that spills to a temp file, hashed as it goes."""

    __slots__ = ("name", "typecode", "data", "spill", "count", "sha", "_dir")

    def __init__(self, name: str, typecode: str, directory: str) -> None:
        self.name = name
        self.typecode = typecode
        self.data = array(typecode)
        self.spill: BinaryIO | None = None
        self.count = 0
        self.sha = hashlib.sha256()
        self._dir = directory

    def _bytes(self) -> bytes:
        data = self.data
        if sys.byteorder != "little":  # pragma: no cover - the file is little-endian everywhere
            data = array(self.typecode, data)
            data.byteswap()
        return data.tobytes()

    def flush(self) -> None:
        if not self.data:
            return
        blob = self._bytes()
        self.sha.update(blob)
        self.count += len(self.data)
        if self.spill is None:
            self.spill = tempfile.TemporaryFile(dir=self._dir, prefix=".mmkit-cache-")  # noqa: SIM115 - closed in close()
        self.spill.write(blob)
        del self.data[:]

    def nbytes(self) -> int:
        return (self.count + len(self.data)) * self.data.itemsize

    def digest(self) -> str:
        sha = self.sha.copy()
        if self.data:
            sha.update(self._bytes())
        return sha.hexdigest()

    def copy_to(self, out: BinaryIO) -> None:
        if self.spill is not None:
            self.spill.seek(0)
            while block := self.spill.read(1 << 20):
                out.write(block)
        if self.data:
            out.write(self._bytes())

    def close(self) -> None:
        if self.spill is not None:
            self.spill.close()
            self.spill = None


class CacheWriter:
    """Append events, get a cache file: ``with CacheWriter(path, instruments, source=src) as w: w.append(ev)``.

    ``instruments`` maps symbol -> Instrument (it may still be filling while events stream
    in, e.g. a ``JsonlReader.instruments``); it is read when the file is assembled.
    ``source`` is the input path (hashed now) or an ``{"path", "sha256"}`` record, or None.
    The file appears atomically when the block ends without error.
    """

    def __init__(self, path: str | os.PathLike[str], instruments: Mapping[str, Instrument],
                 source: str | os.PathLike[str] | Mapping[str, str] | None = None) -> None:
        self.path = Path(path)
        self._instruments = instruments
        if source is None or isinstance(source, Mapping):
            self.source = dict(source) if source is not None else None
        else:
            self.source = artifacts.input_record(source)
        directory = str(self.path.parent if str(self.path.parent) else Path("."))
        os.makedirs(directory, exist_ok=True)
        self._cols = [_Column(name, tc, directory) for name, tc in EVENT_COLUMNS]
        self._levels = [_Column(name, tc, directory) for name, tc in LEVEL_COLUMNS]
        self._symbols: dict[str, int] = {}
        self._appends = tuple(col.data.append for col in self._cols)  # arrays are emptied in place on spill
        self.events = 0
        self.levels = 0
        self.header: dict[str, Any] | None = None

    def __enter__(self) -> CacheWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            if exc_type is None:
                self.finish()
        finally:
            for col in self._cols + self._levels:
                col.close()

    def _symbol_id(self, symbol: str) -> int:
        sid = self._symbols.get(symbol)
        if sid is None:
            if len(self._symbols) >= _MAX_SYMBOLS:
                raise MmkitError("E_CACHE_RANGE", f"more than {_MAX_SYMBOLS} symbols in one cache; split the input")
            sid = self._symbols[symbol] = len(self._symbols)
        return sid

    def append(self, ev: Event) -> None:
        """Add one event (any of the five kinds) as the next row."""
        cls = type(ev)
        if cls is Trade:
            row = (K_TRADE, ev.side, ev.price, ev.qty, 0)  # type: ignore[union-attr]
        elif cls is Quote:
            row = (K_QUOTE, ev.bid_px, ev.bid_qty, ev.ask_px, ev.ask_qty)  # type: ignore[union-attr]
        elif cls is BookDelta or cls is BookSnapshot:
            bids, asks = ev.bids, ev.asks  # type: ignore[union-attr]
            row = (K_DELTA if cls is BookDelta else K_SNAPSHOT, self.levels, len(bids), len(asks), 0)
            lpx, lqty = self._levels[0].data, self._levels[1].data
            before = len(lpx)
            try:
                for px, qty in bids + asks:
                    lpx.append(px)
                    lqty.append(qty)
            except OverflowError as exc:
                del lpx[before:], lqty[before:]
                raise MmkitError("E_CACHE_RANGE", f"{ev.symbol} ts={ev.ts}: a level does not fit a 64-bit integer") from exc
            self.levels += len(bids) + len(asks)
            if len(lpx) >= SPILL_ROWS:
                for col in self._levels:
                    col.flush()
        elif cls is SeqGap:
            row = (K_SEQ_GAP, ev.expected, ev.got, 0, 0)  # type: ignore[union-attr]
        else:
            raise TypeError(f"not an mmkit event: {cls.__name__}")
        sid = self._symbols.get(ev.symbol)
        if sid is None:
            sid = self._symbol_id(ev.symbol)
        kind, sym, ts, rts, a, b, c, d = self._appends
        try:
            kind(row[0])
            sym(sid)
            ts(ev.ts)
            rts(ev.recv_ts)
            a(row[1])
            b(row[2])
            c(row[3])
            d(row[4])
        except OverflowError as exc:
            rows = min(len(col.data) for col in self._cols)  # undo the partial row
            for col in self._cols:
                del col.data[rows:]
            raise MmkitError("E_CACHE_RANGE", f"{ev.symbol} ts={ev.ts}: a value does not fit a 64-bit integer") from exc
        self.events += 1
        if self.events % SPILL_ROWS == 0:
            for col in self._cols:
                col.flush()

    def extend(self, events: Iterable[Event]) -> int:
        for ev in events:
            self.append(ev)
        return self.events

    def finish(self) -> dict[str, Any]:
        """Assemble the file (header, then columns) atomically; returns the header (once: later calls return it again)."""
        if self.header is not None:
            return self.header
        instruments = []
        for symbol in self._symbols:
            inst = self._instruments.get(symbol)
            if inst is None:
                raise MmkitError("E_DATA_UNKNOWN_INSTRUMENT", f"no instrument given for {symbol}; the cache header needs it")
            instruments.append(instrument_record(inst))
        columns = []
        offset = 0
        for col in self._cols + self._levels:
            nbytes = col.nbytes()
            columns.append({"name": col.name, "type": col.typecode, "offset": offset, "count": nbytes // col.data.itemsize,
                            "nbytes": nbytes, "sha256": col.digest()})
            offset += _align8(nbytes)
        header = {
            "schema": SCHEMA,
            "byteorder": "little",
            "events": self.events,
            "levels": self.levels,
            "kinds": list(KINDS),
            "payload": PAYLOAD,
            "instruments": instruments,
            "source": self.source,
            "columns": columns,
        }
        text = artifacts.canonical_json(header).encode("ascii")
        text += b" " * (_align8(PREAMBLE.size + len(text)) - PREAMBLE.size - len(text))
        with artifacts.atomic_writer(self.path) as out:
            out.write(PREAMBLE.pack(MAGIC, FORMAT_VERSION, len(text)))
            out.write(text)
            for col in self._cols + self._levels:
                col.copy_to(out)
                pad = _align8(col.nbytes()) - col.nbytes()
                if pad:
                    out.write(b"\0" * pad)
        for col in self._cols + self._levels:
            col.close()
        self.header = header
        return header


def write_cache(path: str | os.PathLike[str], events: Iterable[Event], instruments: Mapping[str, Instrument],
                source: str | os.PathLike[str] | Mapping[str, str] | None = None) -> dict[str, Any]:
    """Write ``events`` as a cache file at ``path`` (atomic); returns the header."""
    with CacheWriter(path, instruments, source=source) as writer:
        writer.extend(events)
    assert writer.header is not None
    return writer.header


def build_cache(source: str | os.PathLike[str], path: str | os.PathLike[str], **reader_options: Any) -> tuple[dict[str, Any], Any]:
    """mmkit JSONL ``source`` -> cache at ``path``; returns ``(header, reader stats)``.

    ``reader_options`` go to ``JsonlReader`` (registry, venue, instruments, on_error, ...).
    """
    from mmkit.data.jsonl import JsonlReader

    reader = JsonlReader(source, **reader_options)
    archive, _member = split_member(source)
    record = {"path": str(source), "sha256": artifacts.input_record(archive)["sha256"]}
    with CacheWriter(path, reader.instruments, source=record) as writer:
        writer.extend(reader)
    assert writer.header is not None
    return writer.header, reader.stats


# ----------------------------------------------------------------------------- loading
class EventCache:
    """A loaded cache: header, instruments, raw columns (``memoryview``s) and event iteration.

    Columns are attributes (``kind``, ``sym``, ``ts``, ``recv_ts``, ``a``..``d``,
    ``level_px``, ``level_qty``) and ``columns[name]``; index them like lists, hand them
    to ``array``/``numpy.frombuffer``, or iterate events (``for ev in cache``).  Close it
    (or use ``with``) to release a mapped file.
    """

    def __init__(self, path: str, header: dict[str, Any], buffer: Any, data_start: int, mapped: mmap.mmap | None) -> None:
        self.path = path
        self.header = header
        self._buffer = buffer
        self._mapped = mapped
        self.instruments: tuple[Instrument, ...] = tuple(
            instrument_from_record(rec, f"{path}: header instruments[{i}]") for i, rec in enumerate(header["instruments"]))
        self.symbols: tuple[str, ...] = tuple(i.symbol for i in self.instruments)
        self.source: dict[str, str] | None = header.get("source")
        self.n_events: int = header["events"]
        self.n_levels: int = header["levels"]
        view = memoryview(buffer)
        self._views = [view]
        self.columns: dict[str, memoryview] = {}
        self._spans: dict[str, tuple[int, int]] = {}  # column -> (file offset, item size), for dropping pages
        for col in header["columns"]:
            start = data_start + col["offset"]
            self._spans[col["name"]] = (start, array(col["type"]).itemsize)
            raw = view[start : start + col["nbytes"]]
            if sys.byteorder != "little":  # pragma: no cover
                swapped = array(col["type"], raw.tobytes())
                swapped.byteswap()
                cast = memoryview(swapped)
            else:
                cast = raw.cast(col["type"])
            self._views += [raw, cast]
            self.columns[col["name"]] = cast
        c = self.columns
        self.kind, self.sym, self.ts, self.recv_ts = c["kind"], c["sym"], c["ts"], c["recv_ts"]
        self.a, self.b, self.c, self.d = c["a"], c["b"], c["c"], c["d"]
        self.level_px, self.level_qty = c["level_px"], c["level_qty"]

    def __len__(self) -> int:
        return self.n_events

    def __enter__(self) -> EventCache:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Release the columns and unmap the file (views handed out before become invalid)."""
        for view in reversed(self._views):
            view.release()
        self._views = []
        self.columns = {}
        if self._mapped is not None:
            try:
                self._mapped.close()
            except BufferError:  # a caller still holds a derived view; the map closes when it goes
                pass
            self._mapped = None
        self._buffer = None

    def drop_pages(self, rows: int | None = None, levels: int | None = None) -> None:
        """Let the OS reclaim the mapped pages of event rows ``< rows`` and level rows
        ``< levels`` (None: all of them).  The data stays readable: a page touched again is
        read back from the file.  Why: mapped pages count in the process's RSS until
        unmapped, so a pass over a multi-GB cache would otherwise grow to the file's size;
        ``iter_events`` drops what it has consumed as it goes, which keeps a backtest's
        memory flat in the number of events.  A no-op for a cache read into memory."""
        mapped = self._mapped
        if mapped is None or _DONTNEED is None:
            return
        for name, (start, size) in self._spans.items():
            is_level = name.startswith("level_")
            count = self.n_levels if is_level else self.n_events
            limit = levels if is_level else rows
            upto = count if limit is None else min(count, limit)
            lo = start - start % _PAGE
            hi = start + upto * size
            hi -= hi % _PAGE
            if hi > lo:
                mapped.madvise(_DONTNEED, lo, hi - lo)

    def instrument(self, symbol: str) -> Instrument:
        for inst in self.instruments:
            if inst.symbol == symbol:
                return inst
        raise MmkitError("E_DATA_UNKNOWN_INSTRUMENT", f"{self.path}: no instrument for {symbol} in this cache")

    def source_matches(self, path: str | os.PathLike[str]) -> bool:
        """True if ``path`` still has the sha256 recorded when the cache was built."""
        return self.source is not None and self.source.get("sha256") == artifacts.sha256_file(path)

    def event(self, i: int) -> Event:
        """Row ``i`` as an event object."""
        if not -self.n_events <= i < self.n_events:
            raise IndexError(f"event {i} out of range (0..{self.n_events - 1})")
        return next(self.iter_events(i % self.n_events, i % self.n_events + 1))

    def rows(self) -> Rows:
        """The columns as the engine's columnar source (``Engine.feed_rows``), rows rebuilt
        with ``row_event``."""
        return Rows(self._event_columns(), (self.level_px, self.level_qty), tuple(self.symbols), self.row_event)

    def min_latency(self, lo: int, hi: int) -> int | None:
        """The smallest feed latency ``recv_ts - ts`` of rows ``lo..hi-1`` (``None`` for no
        rows): one C loop over the two columns when compiled, Python ints otherwise (and
        when a difference leaves 64 bits)."""
        rts, ts = self.recv_ts[lo:hi], self.ts[lo:hi]
        if _use_compiled() and _min_diff is not None:
            try:
                return _min_diff(rts, ts)  # type: ignore[no-any-return]
            except OverflowError:
                pass
        return min(map(operator.sub, rts, ts), default=None)

    def kind_counts(self, lo: int, hi: int) -> list[int]:
        """How many rows of ``lo..hi-1`` carry each kind code (index = code, 0..255;
        codes past ``KINDS`` mean a corrupt column): one C pass when compiled."""
        col = self.kind[lo:hi]
        if _use_compiled() and _histogram is not None:
            return _histogram(col)  # type: ignore[no-any-return]
        codes = col.tobytes()
        return [codes.count(bytes((k,))) for k in range(256)]

    def first_rows(self, lo: int, hi: int, skip: Iterable[int] = ()) -> dict[int, int]:
        """Symbol id -> its first row among ``lo..hi-1``, for the ids that occur there
        (``skip``: ids already known).  One C scan (``array.index``) per instrument, so
        cheap for the few symbols a cache holds."""
        ids = array("H")
        ids.frombytes(self.sym[lo:hi].cast("B"))
        known = set(skip)
        out: dict[int, int] = {}
        for sid in range(len(self.instruments)):
            if sid in known:
                continue
            try:
                out[sid] = lo + ids.index(sid)
            except ValueError:
                pass
        return out

    def levels_end(self, lo: int, hi: int) -> int:
        """The level row after the last book event among rows ``lo..hi-1`` (0 when none
        is): what ``drop_pages`` may release once those rows are consumed."""
        codes = self.kind[lo:hi].tobytes()
        last = max(codes.rfind(bytes((K_SNAPSHOT,))), codes.rfind(bytes((K_DELTA,))))
        if last < 0:
            return 0
        r = lo + last
        return max(0, self.a[r] + self.b[r] + self.c[r])

    def _event_columns(self) -> tuple[memoryview, ...]:
        return (self.kind, self.sym, self.ts, self.recv_ts, self.a, self.b, self.c, self.d)

    def row_event(self, i: int) -> Event:
        """Row ``i`` (``0 <= i < n_events``) as an event object, the one ``iter_events``
        yields for it, in one call of the compiled builder when it is active (a few us
        less than ``event``; the engine's compiled loop rebuilds the rows it hands to
        Python with it), else ``event(i)``.  Errors are ``event``'s."""
        if 0 <= i < self.n_events and _use_compiled():
            events, bad, _end = _build_rows(self._event_columns(), (self.level_px, self.level_qty), i, i + 1,
                                            self.symbols, _MAKERS)
            if bad < 0:
                return events[0]
        return self.event(i)

    def __iter__(self) -> Iterator[Event]:
        return self.iter_events()

    def iter_events(self, start: int = 0, stop: int | None = None) -> Iterator[Event]:
        """Events ``start..stop`` rebuilt as ``core.events`` objects, in order."""
        stop = self.n_events if stop is None else min(stop, self.n_events)
        symbols = self.symbols
        lpx, lqty = self.level_px, self.level_qty
        cols = self._event_columns()
        drop = self._mapped is not None and stop - start > _ITER_CHUNK
        levels_done = 0  # level rows of the book events yielded so far end here
        build = _build_rows if _use_compiled() else None
        n_levels = self.n_levels
        n_symbols = len(symbols)
        for lo in range(start, stop, _ITER_CHUNK):
            hi = min(lo + _ITER_CHUNK, stop)
            if drop and lo > start:  # the previous chunk is consumed: release its pages (flat RSS)
                self.drop_pages(lo, levels_done)
            if build is not None:
                for sub in range(lo, hi, _BUILD_ROWS):
                    events, bad, levels_end = build(cols, (lpx, lqty), sub, min(sub + _BUILD_ROWS, hi), symbols, _MAKERS)
                    if levels_end >= 0:
                        levels_done = levels_end
                    yield from events
                    if bad >= 0:
                        raise self._bad_row(bad)
                continue
            for row, (k, s, ts, rts, a, b, c, d) in enumerate(zip(*(col[lo:hi].tolist() for col in cols)), lo):
                if s >= n_symbols:
                    raise self._bad_row(row)
                if k == K_QUOTE:
                    yield make_quote(ts, rts, symbols[s], a, b, c, d)
                elif k == K_TRADE:
                    yield make_trade(ts, rts, symbols[s], a, b, c)
                elif k == K_DELTA or k == K_SNAPSHOT:
                    mid = a + b
                    end = mid + c
                    if a < 0 or b < 0 or c < 0 or end > n_levels:
                        raise self._bad_row(row)
                    levels_done = end
                    bids = tuple(zip(lpx[a:mid].tolist(), lqty[a:mid].tolist()))
                    asks = tuple(zip(lpx[mid:end].tolist(), lqty[mid:end].tolist()))
                    make = make_book_delta if k == K_DELTA else make_book_snapshot
                    yield make(ts, rts, symbols[s], bids, asks)
                elif k == K_SEQ_GAP:
                    yield make_seq_gap(ts, rts, symbols[s], a, b)
                else:
                    raise self._bad_row(row)

    def _bad_row(self, row: int) -> MmkitError:
        """The E_CACHE_CORRUPT error for a row that cannot be an event, saying why."""
        k, s = self.kind[row], self.sym[row]
        if s >= len(self.symbols):
            why = f"symbol index {s} at row {row}, the header lists {len(self.symbols)} instruments"
        elif k in (K_DELTA, K_SNAPSHOT):
            why = (f"book levels {self.a[row]}+{self.b[row]}+{self.c[row]} at row {row} fall outside the "
                   f"{self.n_levels} level rows")
        else:
            why = f"unknown event kind code {k} at row {row}"
        return _corrupt(self.path, why)


def _corrupt(path: str, detail: str) -> MmkitError:
    return MmkitError("E_CACHE_CORRUPT", f"{path}: {detail}; rebuild the cache from its source")


def load_cache(path: str | os.PathLike[str], *, use_mmap: bool = True, verify: bool = False) -> EventCache:
    """Open a cache file: check magic, version, header and size; ``verify`` also checks column sha256s.

    ``use_mmap`` maps the file (pages load on demand: right for multi-GB caches); False
    reads it into memory in one call.
    """
    name = str(path)
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError as exc:
        raise MmkitError("E_IO_MISSING", f"{name}: no such file") from exc
    except OSError as exc:
        raise MmkitError("E_IO_READ", f"cannot read {name}: {exc.strerror or exc}") from exc
    with fh:
        size = os.fstat(fh.fileno()).st_size
        pre = fh.read(PREAMBLE.size)
        if len(pre) < PREAMBLE.size or pre[:8] != MAGIC:
            raise MmkitError("E_CACHE_BAD_FORMAT", f"{name}: not an mmkit cache file (bad magic); build one with mmkit data cache")
        _magic, version, header_len = PREAMBLE.unpack(pre)
        if version != FORMAT_VERSION:
            raise MmkitError("E_CACHE_VERSION", f"{name}: cache format version {version}, this mmkit reads {FORMAT_VERSION}; rebuild it")
        if PREAMBLE.size + header_len > size:
            raise _corrupt(name, "truncated header")
        header = _parse_header(name, fh.read(header_len))
        data_start = PREAMBLE.size + header_len
        expected = data_start + sum(_align8(c["nbytes"]) for c in header["columns"])
        if size != expected:
            raise _corrupt(name, f"size {size} bytes, the header describes {expected}")
        mapped: mmap.mmap | None = None
        buffer: Any
        if use_mmap and size:
            buffer = mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        else:
            fh.seek(0)
            buffer = bytearray(size)
            if fh.readinto(buffer) != size:
                raise _corrupt(name, "short read")
    cache = EventCache(name, header, buffer, data_start, mapped)
    if verify:
        for col in header["columns"]:
            start = data_start + col["offset"]
            digest = hashlib.sha256(memoryview(buffer)[start : start + col["nbytes"]]).hexdigest()
            if digest != col["sha256"]:
                cache.close()
                raise MmkitError("E_CACHE_CHECKSUM", f"{name}: column {col['name']} fails its sha256; rebuild the cache from its source")
    return cache


def _parse_header(name: str, raw: bytes) -> dict[str, Any]:
    try:
        header = artifacts.parse_json(raw.decode("ascii"), f"{name} header")
    except (UnicodeDecodeError, MmkitError) as exc:
        raise _corrupt(name, f"unreadable header ({exc})") from exc
    if not isinstance(header, dict) or header.get("schema") != SCHEMA:
        raise _corrupt(name, f"header schema is not {SCHEMA}")
    try:
        ok = (header["byteorder"] == "little" and isinstance(header["events"], int) and isinstance(header["levels"], int)
              and isinstance(header["instruments"], list) and list(header["kinds"]) == list(KINDS)
              and len(header["columns"]) == len(EVENT_COLUMNS + LEVEL_COLUMNS))
        offset = 0
        for col, (cname, tc) in zip(header["columns"], EVENT_COLUMNS + LEVEL_COLUMNS):
            count = header["events"] if (cname, tc) in EVENT_COLUMNS else header["levels"]
            nbytes = count * array(tc).itemsize
            ok = ok and (col["name"], col["type"], col["count"], col["nbytes"], col["offset"]) == (cname, tc, count, nbytes, offset)
            offset += _align8(nbytes)
    except (KeyError, TypeError) as exc:
        raise _corrupt(name, f"header is missing {exc}") from exc
    if not ok:
        raise _corrupt(name, "header columns do not match the format")
    return header
