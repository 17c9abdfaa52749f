"""Convert and slice market data: any readable format in, mmkit JSONL or the cache out.

``convert(inputs, out)`` reads one or more inputs through ``readers.open_events`` (format
detected per file unless given; several inputs are merged in exchange-time order, the
files of one recording continue each other) and writes every event to ``out`` as mmkit
JSONL or the columnar cache.  ``slice_events(inputs, out, start_ns, end_ns)`` does the
same for the events with ``start_ns <= ts < end_ns`` only.  Both stream: the readers hold
a line at a time and the writers spill, so peak memory does not grow with the input
(``bench/bench_data.py`` measures it).  Output lands atomically (``artifacts.atomic_writer``
inside the writers): a failed run leaves no file behind, and an old file is untouched.

The error policy is the readers' (``on_error``: ``fail`` stops at the first bad line with
its ``E_DATA_*`` code and ``file:line``; ``skip`` counts it).  Each call returns a
``ConvertResult``: what was written, per-kind counts, times, and the readers' report;
``result.artifact()`` is the ``mmkit.data_convert/v1`` report, ``result.summary()`` the
one-line summary the CLI prints on stderr.

Also here, shared with ``data.inspect``: ``input_records`` (path + sha256 of each input for
an artifact's meta), ``parse_time`` (ISO 8601 UTC or integer ns -> ns), ``iso_utc`` and
the TTY-only progress line (``mmkit.progress``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from mmkit import artifacts
from mmkit.core.book import L2Book
from mmkit.core.events import EVENT_KINDS, BookDelta, BookSnapshot, Event, SeqGap, make_book_snapshot
from mmkit.core.instruments import Instrument
from mmkit.data.io import STDIN, split_member
from mmkit.data.readers import ReadReport, open_events
from mmkit.errors import EXIT_USAGE, MmkitError
from mmkit.progress import Progress

OUT_FORMATS = ("jsonl", "cache")
CACHE_SUFFIXES = (".mmkc", ".mmc", ".cache")
LATE_NS = 60 * 10**9
"""A slice stops reading once an event is this far (60 s of exchange time) past ``end``:
channels interleave a little, never by a minute."""
PROGRESS_EVERY = 1 << 16
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ISO = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?(Z|[+-]\d{2}:?\d{2})?\Z")


# ----------------------------------------------------------------------------- helpers
def output_format(out: str, to_fmt: str | None) -> str:
    """``to_fmt`` if given, else ``cache`` for an ``out`` ending in .mmkc/.mmc/.cache, else ``jsonl``."""
    if to_fmt is None:
        return "cache" if str(out).lower().endswith(CACHE_SUFFIXES) else "jsonl"
    if to_fmt not in OUT_FORMATS:
        raise MmkitError("E_USAGE", f"output format must be one of {', '.join(OUT_FORMATS)}, got {to_fmt!r}", EXIT_USAGE)
    return to_fmt


def check_out(out: str | None) -> None:
    """Refuse a non-regular output before any work (``artifacts.check_output_path``)."""
    artifacts.check_output_path(out)


def input_records(paths: Iterable[str]) -> list[dict[str, str]]:
    """``{"path", "sha256"}`` per input, for an artifact's ``meta.inputs`` (an ``a.zip::m`` hashes the archive)."""
    out = []
    for path in paths:
        name = str(path)
        archive, _member = split_member(name)
        out.append({"path": name, "sha256": "stdin" if archive == STDIN else artifacts.sha256_file(archive)})
    return out


def parse_time(text: str, what: str = "time") -> int:
    """ns since the epoch from ISO 8601 (``2024-07-19``, ``2024-07-19T00:00:00.5Z``, ``+02:00``; naive = UTC) or integer ns."""
    s = text.strip()
    if s.isdigit():
        return int(s)
    m = _ISO.match(s)
    bad = MmkitError("E_USAGE", f"{what} {text!r} is not an ISO 8601 time (e.g. 2024-07-19T00:00:00Z) or integer ns", EXIT_USAGE)
    if not m:
        raise bad
    y, mo, d, hh, mi, ss, frac, tz = m.groups()
    try:
        dt = datetime(int(y), int(mo), int(d), int(hh or 0), int(mi or 0), int(ss or 0), tzinfo=timezone.utc)
    except ValueError:
        raise bad from None
    offset = 0
    if tz and tz != "Z":
        digits = tz[1:].replace(":", "")
        offset = (1 if tz[0] == "+" else -1) * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    seconds = (dt - _EPOCH) // timedelta(seconds=1) - offset
    return seconds * 10**9 + int((frac or "0").ljust(9, "0"))


def iso_utc(ns: int | None) -> str | None:
    """``2024-07-19T00:00:00.06Z``: UTC with the fraction of a second trimmed (exact to the ns)."""
    if ns is None:
        return None
    seconds, frac = divmod(ns, 10**9)
    text = (_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")
    return text + (("." + f"{frac:09d}".rstrip("0")) if frac else "") + "Z"


# ----------------------------------------------------------------------------- writing
@dataclass
class Tally:
    """What went into an output: events per kind and the first/last exchange time."""

    counts: dict[str, int] = field(default_factory=dict)
    total: int = 0
    first_ts: int | None = None
    last_ts: int | None = None

    def body(self) -> dict[str, Any]:
        return {"events": dict(sorted(self.counts.items())), "events_total": self.total, "first_ts": self.first_ts,
                "last_ts": self.last_ts, "first_utc": iso_utc(self.first_ts), "last_utc": iso_utc(self.last_ts)}


def write_events(out: str, events: Iterable[Event], instruments: Mapping[str, Instrument], to_fmt: str = "jsonl", *,
                 source: Mapping[str, str] | None = None, progress: bool = False, label: str = "data") -> Tally:
    """Stream ``events`` into ``out`` (``-`` = stdout) as mmkit JSONL or a cache, atomically; count them.

    ``instruments`` maps symbol -> Instrument and may still be filling while ``events`` streams
    (a reader's ``instruments``).  ``source`` is the cache header's source record.
    ``progress``: show ``label: N events`` on stderr while writing, if it is a TTY.
    """
    from mmkit.data.cache import CacheWriter
    from mmkit.data.jsonl import JsonlWriter

    check_out(out)
    tally = Tally()
    bar = Progress(None, label, unit="events") if progress else None
    try:
        if to_fmt == "cache":
            with CacheWriter(out, instruments, source=source) as cw:
                _pump(events, cw.append, tally, bar)
        elif to_fmt == "jsonl":
            with JsonlWriter(out, instruments) as jw:
                _pump(events, jw.write, tally, bar)
        else:
            raise MmkitError("E_USAGE", f"output format must be one of {', '.join(OUT_FORMATS)}, got {to_fmt!r}", EXIT_USAGE)
        if bar is not None:
            bar.update(tally.total)
    finally:
        if bar is not None:
            bar.close()
    return tally


def _pump(events: Iterable[Event], write: Callable[[Event], None], tally: Tally, progress: Callable[[int], None] | None) -> None:
    counts = dict.fromkeys(EVENT_KINDS, 0)
    n = 0
    lo = hi = None
    for ev in events:
        write(ev)
        counts[ev.kind] += 1
        ts = ev.ts
        if lo is None:
            lo = hi = ts
        elif ts > hi:  # type: ignore[operator]
            hi = ts
        elif ts < lo:
            lo = ts
        n += 1
        if progress is not None and not n & (PROGRESS_EVERY - 1):
            progress(n)
    tally.counts = {k: v for k, v in counts.items() if v}
    tally.total, tally.first_ts, tally.last_ts = n, lo, hi


# ----------------------------------------------------------------------------- results
@dataclass
class ConvertResult:
    """One convert or slice run: where it wrote, what, and the readers' report."""

    command: str
    inputs: list[str]
    out: str
    src_fmt: str | None
    to_fmt: str
    on_error: str
    symbol: str | None
    venue: str | None
    tally: Tally
    report: ReadReport
    window: dict[str, Any] | None = None

    def body(self) -> dict[str, Any]:
        rep = self.report.to_dict()
        skipped: dict[str, int] = {}
        for src in self.report.sources:
            for code, n in src.skipped.items():
                skipped[code] = skipped.get(code, 0) + n
        return {"command": self.command, "from": self.src_fmt, "to": self.to_fmt, "out": self.out, "on_error": self.on_error,
                "symbol": self.symbol, "venue": self.venue, **self.tally.body(), "events_read": rep["events_total"],
                "window": self.window, "seq_gaps": rep["seq_gaps"], "skipped": dict(sorted(skipped.items())),
                "skipped_total": rep["skipped_total"], "instruments": rep["instruments"], "sources": rep["sources"]}

    def artifact(self) -> dict[str, Any]:
        """The ``mmkit.data_convert/v1`` report (meta.inputs: path and sha256 of each input)."""
        return artifacts.artifact("data_convert", self.body(), artifacts.build_meta(inputs=input_records(self.inputs)))

    def summary(self) -> str:
        kinds = " ".join(f"{k}={v}" for k, v in sorted(self.tally.counts.items()))
        span = f" {iso_utc(self.tally.first_ts)}..{iso_utc(self.tally.last_ts)}" if self.tally.total else ""
        return (f"data {self.command}: {self.tally.total} events -> {self.out} ({self.to_fmt}){span} "
                f"[{kinds or 'none'}] seq_gaps={self.report.seq_gaps} skipped={self.report.skipped}")


# ----------------------------------------------------------------------------- entry points
def convert(inputs: str | Iterable[str], out: str, *, src_fmt: str | None = None, to_fmt: str | None = None,
            symbol: str | None = None, venue: str | None = None, on_error: str = "fail", progress: bool = False) -> ConvertResult:
    """Read ``inputs`` (any format; ``src_fmt`` None = detect) and write every event to ``out``."""
    names = [inputs] if isinstance(inputs, str) else [str(p) for p in inputs]
    fmt = output_format(out, to_fmt)
    stream = open_events(names, fmt=src_fmt, symbol=symbol, on_error=on_error, venue=venue)
    tally = _write(names, out, fmt, stream, stream.instruments, progress, "convert")
    return ConvertResult("convert", names, out, src_fmt, fmt, on_error, symbol, venue, tally, stream.report)


def slice_events(inputs: str | Iterable[str], out: str, start_ns: int, end_ns: int, *, src_fmt: str | None = None,
                 to_fmt: str | None = None, symbol: str | None = None, venue: str | None = None, on_error: str = "fail",
                 snapshot: bool = False, progress: bool = False) -> ConvertResult:
    """Write the events with ``start_ns <= ts < end_ns`` to ``out``.

    ``snapshot``: begin the slice with a ``book_snapshot`` (ts = recv_ts = ``start_ns``) of
    each symbol's book as the events before the window left it, so the slice stands alone;
    a book that never had a snapshot or is stale after a gap gets none.
    """
    if start_ns >= end_ns:
        raise MmkitError("E_USAGE", f"the window is empty: --from {iso_utc(start_ns)} is not before --to {iso_utc(end_ns)}",
                         EXIT_USAGE)
    names = [inputs] if isinstance(inputs, str) else [str(p) for p in inputs]
    fmt = output_format(out, to_fmt)
    stream = open_events(names, fmt=src_fmt, symbol=symbol, on_error=on_error, venue=venue)
    window: dict[str, Any] = {"from_ts": start_ns, "to_ts": end_ns, "from_utc": iso_utc(start_ns), "to_utc": iso_utc(end_ns),
                              "snapshots": 0}
    events = _window(stream, start_ns, end_ns, window, stream.instruments if snapshot else None)
    tally = _write(names, out, fmt, events, stream.instruments, progress, "slice")
    return ConvertResult("slice", names, out, src_fmt, fmt, on_error, symbol, venue, tally, stream.report, window)


def _write(names: list[str], out: str, fmt: str, events: Iterable[Event], instruments: Mapping[str, Instrument],
           progress: bool, label: str) -> Tally:
    source = input_records(names)[0] if fmt == "cache" and len(names) == 1 else None
    return write_events(out, events, instruments, fmt, source=source, progress=progress, label=f"data {label}")


def _window(events: Iterable[Event], start: int, end: int, window: dict[str, Any],
            instruments: Mapping[str, Instrument] | None) -> Iterator[Event]:
    """The events in ``[start, end)``; with ``instruments``, first a snapshot of each book at ``start``."""
    books: dict[str, L2Book] = {}
    late = end + LATE_NS
    opened = instruments is None
    it = iter(events)
    for ev in it:
        ts = ev.ts
        if ts < start:
            if not opened and type(ev) in (BookSnapshot, BookDelta, SeqGap):
                book = books.get(ev.symbol)
                if book is None:
                    book = books[ev.symbol] = L2Book(ev.symbol)
                book.apply(ev)
            continue
        if ts >= end:
            if ts >= late:
                close = getattr(it, "close", None)
                if close is not None:
                    close()  # the readers finish their report (lines read, ...) now, not at garbage collection
                break
            continue
        if not opened:
            opened = True
            for sym in sorted(books):
                book = books[sym]
                if book.snapshots and not book.stale and not book.empty:
                    window["snapshots"] += 1
                    yield make_book_snapshot(start, start, sym, tuple(book.levels(1)), tuple(book.levels(-1)))
        yield ev
