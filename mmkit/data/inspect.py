"""Inspect market data: one streaming pass, one deterministic JSON report.

``inspect_files(paths)`` reads any supported input(s) through ``readers.open_events`` and
returns the body of a ``mmkit.data_inspect/v1`` artifact: events by kind, time span,
sequence gaps, skipped lines by code, and per symbol the gaps between updates (per
channel: book, trade, quote), crossed books, spread and depth statistics and the final
book's top levels as decimal strings; over all events the feed latency ``recv_ts - ts``
and an explicit clock-skew verdict (a recorder whose clock is behind the exchange makes
``recv_ts - ts`` negative: that is reported as skew with an offset estimate, never hidden
or clipped).

Constant memory: events are not kept; each distribution is an exact histogram of whole
units (``Hist``: times floored to whole ms, spreads in ticks), so percentiles are exact
over the floored values (nearest rank) and the same input gives the same bytes.  A
histogram that would exceed ``MAX_BUCKETS`` distinct values doubles its bucket width
(reported as ``resolution_ms``/``resolution_ticks``); min, max and mean stay exact.

The book of each symbol is a ``core.book.L2Book``.  A book that never saw a snapshot is
incomplete (e.g. a slice without ``--snapshot``), so crossed-book counts, spread and depth
come only from books that had one and are not stale after a sequence gap.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mmkit.core.book import ASK, BID, L2Book
from mmkit.core.events import BookDelta, BookSnapshot, Event, Quote, SeqGap
from mmkit.core.instruments import Instrument, format_units, step_scale
from mmkit.data.convert import PROGRESS_EVERY, iso_utc
from mmkit.progress import Progress
from mmkit.data.readers import ReadReport, open_events

MS = 1_000_000
S = 1_000_000_000
MAX_BUCKETS = 4096
TOP_LEVELS = 5
DEPTH_BPS = 10.0
DEPTH_SAMPLE_NS = S
MAX_POSITIONS = 5
PERCENTILES = (50, 95, 99)
PERCENTILE_METHOD = ("exact nearest-rank percentiles over values floored to whole units (ms, ticks), from a histogram; "
                     f"past {MAX_BUCKETS} distinct values the bucket width doubles (see resolution_*); min, max, mean are exact")
CHANNEL = {"book_snapshot": "book", "book_delta": "book", "seq_gap": "book", "trade": "trade", "quote": "quote"}


class Hist:
    """Counts of ``raw // (scale * width)``: exact percentiles of floored values in bounded memory.

    ``scale`` converts raw integers to the reported unit (ns -> ms: 1e6; ticks: 1).
    """

    __slots__ = ("counts", "scale", "width", "n", "total", "lo", "hi")

    def __init__(self, scale: int = 1) -> None:
        self.counts: dict[int, int] = {}
        self.scale = scale
        self.width = 1
        self.n = 0
        self.total = 0
        self.lo = 0
        self.hi = 0

    def add(self, raw: int) -> None:
        counts = self.counts
        k = raw // (self.scale * self.width)
        counts[k] = counts.get(k, 0) + 1
        if len(counts) > MAX_BUCKETS:
            self.width *= 2
            merged: dict[int, int] = {}
            for key, c in counts.items():
                merged[key // 2] = merged.get(key // 2, 0) + c
            self.counts = merged
        if self.n == 0:
            self.lo = self.hi = raw
        elif raw < self.lo:
            self.lo = raw
        elif raw > self.hi:
            self.hi = raw
        self.n += 1
        self.total += raw

    def percentiles(self, ps: Iterable[int] = PERCENTILES) -> dict[str, int]:
        """``{"p50": v, ...}`` in whole units: the smallest bucket holding rank ceil(p * n / 100)."""
        want = sorted(ps)
        out: dict[str, int] = {}
        cum = 0
        i = 0
        for key in sorted(self.counts):
            cum += self.counts[key]
            while i < len(want) and cum * 100 >= want[i] * self.n:
                out[f"p{want[i]}"] = key * self.width
                i += 1
            if i == len(want):
                break
        return out

    def summary(self, unit: str) -> dict[str, Any] | None:
        if not self.n:
            return None
        s = self.scale
        return {"n": self.n, **self.percentiles(), "min": round(self.lo / s, 3), "max": round(self.hi / s, 3),
                "mean": round(self.total / self.n / s, 3), f"resolution_{unit}": self.width}


@dataclass
class _Spread:
    ticks: Hist = field(default_factory=Hist)
    bps_sum: float = 0.0
    bps_min: float = 0.0
    bps_max: float = 0.0
    crossed: int = 0

    def add(self, bid: int, ask: int) -> None:
        spread = ask - bid
        if spread <= 0:
            self.crossed += 1
            return
        bps = spread * 20000.0 / (ask + bid)
        if not self.ticks.n:
            self.bps_min = self.bps_max = bps
        elif bps < self.bps_min:
            self.bps_min = bps
        elif bps > self.bps_max:
            self.bps_max = bps
        self.bps_sum += bps
        self.ticks.add(spread)

    def summary(self) -> dict[str, Any] | None:
        if not self.ticks.n:
            return None
        return {"ticks": self.ticks.summary("ticks"),
                "bps": {"mean": round(self.bps_sum / self.ticks.n, 6), "min": round(self.bps_min, 6), "max": round(self.bps_max, 6)}}


class _Symbol:
    """Running statistics of one symbol."""

    def __init__(self, symbol: str, inst: Instrument | None, depth_bps: float) -> None:
        self.symbol = symbol
        self.inst = inst
        self.counts: dict[str, int] = {}
        self.first_ts: int | None = None
        self.last_ts: int | None = None
        self.last: dict[str, int] = {}
        self.gaps: dict[str, Hist] = {}
        self.book: L2Book | None = None
        self.crossed = 0
        self.crossed_at: list[int] = []
        self.spread = _Spread()
        self.quote_spread = _Spread()
        self.depth_bps = depth_bps
        self.next_depth = 0
        self.depth_n = 0
        self.depth_sums = [0, 0, 0, 0]  # sums over samples: bid levels, ask levels, bid lots, ask lots
        self.depth_notional = [0.0, 0.0]
        self.depth_max = [0, 0]

    def add(self, ev: Event) -> None:
        kind = ev.kind
        ts = ev.ts
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if self.first_ts is None:
            self.first_ts = ts
        self.last_ts = ts if self.last_ts is None or ts > self.last_ts else self.last_ts
        ch = CHANNEL[kind]
        prev = self.last.get(ch)
        if prev is not None:
            hist = self.gaps.get(ch)
            if hist is None:
                hist = self.gaps[ch] = Hist(MS)
            hist.add(max(0, ts - prev))
        self.last[ch] = ts
        cls = type(ev)
        if cls is Quote:
            self.quote_spread.add(ev.bid_px, ev.ask_px)  # type: ignore[union-attr]
        elif cls is BookDelta or cls is BookSnapshot or cls is SeqGap:
            self._book_event(ev)

    def _book_event(self, ev: Event) -> None:
        book = self.book
        if book is None:
            book = self.book = L2Book(self.symbol, self.inst)
        book.apply(ev)
        if not book.snapshots or book.stale:
            return
        bid, ask = book.best_bid, book.best_ask
        if bid is None or ask is None:
            return
        if bid >= ask:
            self.crossed += 1
            if len(self.crossed_at) < MAX_POSITIONS:
                self.crossed_at.append(ev.ts)
            return
        self.spread.add(bid, ask)
        if ev.ts >= self.next_depth and self.inst is not None:
            self.next_depth = (ev.ts // DEPTH_SAMPLE_NS + 1) * DEPTH_SAMPLE_NS
            self._sample_depth(book)

    def _sample_depth(self, book: L2Book) -> None:
        self.depth_n += 1
        nb, na = len(book.bids), len(book.asks)
        sums = self.depth_sums
        sums[0] += nb
        sums[1] += na
        self.depth_max = [max(self.depth_max[0], nb), max(self.depth_max[1], na)]
        for i, side in enumerate((BID, ASK)):
            lots, notional = book.depth_within_bps(self.depth_bps, side)
            sums[2 + i] += lots
            self.depth_notional[i] += notional

    def body(self) -> dict[str, Any]:
        inst = self.inst
        out: dict[str, Any] = {
            "venue": inst.venue if inst else None,
            "events": dict(sorted(self.counts.items())),
            "events_total": sum(self.counts.values()),
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "update_gaps_ms": {ch: h.summary("ms") for ch, h in sorted(self.gaps.items())},
            "seq_gaps": self.counts.get("seq_gap", 0),
            "crossed_books": self.crossed,
            "crossed_at_ts": list(self.crossed_at),
            "crossed_quotes": self.quote_spread.crossed,
            "spread": self.spread.summary(),
            "quote_spread": self.quote_spread.summary(),
            "depth": self._depth_body(),
            "final_book": self._final_book(),
        }
        return out

    def _depth_body(self) -> dict[str, Any] | None:
        n = self.depth_n
        if not n or self.inst is None:
            return None
        lot = float(self.inst.lot_size)
        s = self.depth_sums
        return {"samples": n, "sample_every_ms": DEPTH_SAMPLE_NS // MS, "within_bps": self.depth_bps,
                "bid_levels": {"mean": round(s[0] / n, 3), "max": self.depth_max[0]},
                "ask_levels": {"mean": round(s[1] / n, 3), "max": self.depth_max[1]},
                "bid_qty_mean": round(s[2] * lot / n, 6), "ask_qty_mean": round(s[3] * lot / n, 6),
                "bid_notional_mean": round(self.depth_notional[0] / n, 2), "ask_notional_mean": round(self.depth_notional[1] / n, 2)}

    def _final_book(self) -> dict[str, Any] | None:
        book, inst = self.book, self.inst
        if book is None or inst is None:
            return None
        pm, pp = step_scale(inst.tick_size)
        qm, qp = step_scale(inst.lot_size)

        def fmt(levels: list[tuple[int, int]]) -> list[list[str]]:
            return [[format_units(px, pm, pp), format_units(q, qm, qp)] for px, q in levels]

        return {"ts": book.ts, "stale": book.stale, "snapshots": book.snapshots,
                "levels": {"bid": len(book.bids), "ask": len(book.asks)},
                "bids": fmt(book.levels(BID, TOP_LEVELS)), "asks": fmt(book.levels(ASK, TOP_LEVELS))}


class Inspector:
    """Feed events with ``add``; ``body(report)`` is the report.  Usable on any event iterable."""

    def __init__(self, instruments: Mapping[str, Instrument], depth_bps: float = DEPTH_BPS) -> None:
        self.instruments = instruments
        self.depth_bps = depth_bps
        self.symbols: dict[str, _Symbol] = {}
        self.latency = Hist(MS)
        self.counts: dict[str, int] = {}
        self.first_ts: int | None = None
        self.last_ts: int | None = None

    def consume(self, events: Iterable[Event], progress: Progress | None = None) -> None:
        symbols, latency = self.symbols, self.latency
        n = 0
        for ev in events:
            latency.add(ev.recv_ts - ev.ts)
            sym = symbols.get(ev.symbol)
            if sym is None:
                sym = symbols[ev.symbol] = _Symbol(ev.symbol, self.instruments.get(ev.symbol), self.depth_bps)
            sym.add(ev)
            n += 1
            if progress is not None and not n & (PROGRESS_EVERY - 1):
                progress(n)

    def body(self, report: ReadReport | None = None) -> dict[str, Any]:
        rep = report.to_dict() if report is not None else {"on_error": None, "sources": [], "seq_gaps": 0, "instruments": {}}
        counts: dict[str, int] = {}
        for s in self.symbols.values():
            for k, v in s.counts.items():
                counts[k] = counts.get(k, 0) + v
        firsts = [s.first_ts for s in self.symbols.values() if s.first_ts is not None]
        lasts = [s.last_ts for s in self.symbols.values() if s.last_ts is not None]
        span = None
        if firsts:
            lo, hi = min(firsts), max(lasts)  # type: ignore[type-var]
            span = {"first_ts": lo, "last_ts": hi, "first_utc": iso_utc(lo), "last_utc": iso_utc(hi),
                    "duration_s": round((hi - lo) / S, 6)}
        skipped: dict[str, int] = {}
        for src in rep["sources"]:
            for code, n in src["skipped"].items():
                skipped[code] = skipped.get(code, 0) + n
        return {
            "on_error": rep["on_error"],
            "sources": rep["sources"],
            "events": dict(sorted(counts.items())),
            "events_total": sum(counts.values()),
            "time_span": span,
            "seq_gaps": rep["seq_gaps"],
            "trade_id_gaps": sum(src["trade_id_gaps"] for src in rep["sources"]),
            "crossed_books": sum(s.crossed for s in self.symbols.values()),
            "skipped": dict(sorted(skipped.items())),
            "skipped_total": sum(skipped.values()),
            "feed_latency_ms": self.latency.summary("ms"),
            "clock_skew": clock_skew(self.latency, rep["sources"]),
            "percentile_method": PERCENTILE_METHOD,
            "instruments": rep["instruments"],
            "symbols": {sym: s.body() for sym, s in sorted(self.symbols.items())},
        }


def clock_skew(latency: Hist, sources: list[dict[str, Any]]) -> dict[str, Any]:
    """The skew verdict on ``recv_ts - ts``: negative at the median = the recorder's clock is behind.

    ``offset_ms_estimate`` is the recorder clock minus the exchange clock, estimated as the
    smallest ``recv_ts - ts`` (latency >= 0, so the offset is at most that; the estimate
    assumes the fastest message took ~0 ms).  ``latency_after_deskew_ms`` subtracts it.
    """
    clocks = sorted({src["clock"]["recv_clock"] for src in sources}) or ["stored"]
    recv_clock = clocks[0] if len(clocks) == 1 else "mixed"
    out: dict[str, Any] = {"detected": False, "direction": None, "offset_ms_estimate": None, "latency_after_deskew_ms": None,
                           "recv_clock": recv_clock, "note": ""}
    if not latency.n:
        out["note"] = "no events"
        return out
    pct = latency.percentiles()
    flagged = any(src["clock"].get("skewed") for src in sources)
    if recv_clock == "exchange":
        out["note"] = ("recv_ts was copied from an exchange time (the input has no local clock): recv_ts - ts is the "
                       "exchange's own delay, not a feed latency")
        return out
    if pct["p50"] < 0 or pct["p50"] > 1000 or flagged:
        offset_ms = latency.lo / MS
        floor_ms = latency.lo // (MS * latency.width) * latency.width
        behind = pct["p50"] < 0
        out.update(detected=True, direction="behind" if behind else "ahead", offset_ms_estimate=round(offset_ms, 3),
                   latency_after_deskew_ms={k: v - floor_ms for k, v in pct.items()})
        out["note"] = (("recv_ts - ts negative: recorder clock behind exchange" if behind else
                        "recv_ts - ts above 1 s at the median: recorder clock ahead of the exchange (or a stalled feed)")
                       + f" by about {abs(offset_ms) / 1000:.2f} s; recv_ts is kept as recorded, so feed_latency_ms is not a "
                       "latency here: subtract offset_ms_estimate to de-skew")
        return out
    out["note"] = "recv_ts - ts is within [0, 1 s] at the median: no clock skew detected"
    return out


def inspect_files(paths: str | Iterable[str], *, fmt: str | None = None, symbol: str | None = None, venue: str | None = None,
                  on_error: str = "skip", depth_bps: float = DEPTH_BPS, progress: bool = False) -> dict[str, Any]:
    """Read ``paths`` (any format, merged like ``open_events``) and return the inspect report body."""
    names = [paths] if isinstance(paths, str) else [str(p) for p in paths]
    stream = open_events(names, fmt=fmt, symbol=symbol, on_error=on_error, venue=venue)
    insp = Inspector(stream.instruments, depth_bps)
    bar = Progress(None, "data inspect", unit="events") if progress else None
    try:
        insp.consume(stream, bar)
    finally:
        if bar is not None:
            bar.close()
    body = insp.body(stream.report)
    body["from"] = fmt
    return body


def summary(body: dict[str, Any]) -> str:
    """One line for stderr: events, span, gaps, crossed books, skew."""
    skew = body["clock_skew"]
    skew_text = f"clock_skew={skew['direction']}:{skew['offset_ms_estimate']}ms" if skew["detected"] else "clock_skew=none"
    span = body["time_span"]
    dur = f" span={span['duration_s']}s" if span else ""
    return (f"data inspect: {body['events_total']} events{dur} seq_gaps={body['seq_gaps']} "
            f"crossed_books={body['crossed_books']} skipped={body['skipped_total']} {skew_text}")
