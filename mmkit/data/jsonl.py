"""mmkit JSONL: the interchange and fixture format, one normalized event per line.

Line shapes (DESIGN.md section 5; JSON Schema: ``schemas/events.jsonl.schema.json``),
prices and sizes as decimal strings so nothing is lost::

    {"kind":"book_snapshot"|"book_delta","ts":N,"recv_ts":N,"symbol":"S","bids":[["px","qty"],...],"asks":[...]}
    {"kind":"trade","ts":N,"recv_ts":N,"symbol":"S","side":"buy"|"sell","price":"px","qty":"qty"}
    {"kind":"quote","ts":N,"recv_ts":N,"symbol":"S","bid_px":"px","bid_qty":"qty","ask_px":"px","ask_qty":"qty"}
    {"kind":"seq_gap","ts":N,"recv_ts":N,"symbol":"S","expected":N,"got":N}

Reading (``JsonlReader``/``read_jsonl``) streams in constant memory from a path, ``-``,
``.gz``/``.zip`` (via ``data.io``) or any iterable of lines.  Each symbol's instrument
comes from, in order: the ``instruments`` mapping given, the registry (``venue`` picks
among venues listing the symbol), else it is inferred from that symbol's values in the
first ``infer_lines`` lines, with a warning.  Decimal strings become integer ticks/lots
exactly (``core.instruments.plain_to_units``); values off the instrument's grid are errors,
never rounded.

Checks per line: valid JSON object, known kind, integer ``ts``/``recv_ts`` >= 0, decimal
strings on the grid, sizes >= 0, and ``ts`` not going backwards per symbol and channel
(trades, quotes, book; ``CHANNEL_OF``).  With
``on_error="fail"`` (default) the first problem raises ``DataLineError`` naming
``file:line``, with the same codes as the exchange readers (``CODES``: E_DATA_BAD_LINE,
E_DATA_OFF_GRID, E_DATA_NEGATIVE_SIZE, E_DATA_OUT_OF_ORDER); with ``"skip"`` the line is
dropped and counted in ``reader.stats.reasons`` by code.

Speed: canonical lines (the writer's own sorted-key form) of trades, quotes and book
events are parsed by the compiled scanner ``data/_jsonlscan.c`` when it is built
(``COMPILED``; about 3x the pure path on real data: a book delta carries ~45 levels and
``json.loads`` alone reads only ~78k such lines/s).  Without it, canonical trade/quote
lines are matched by one anchored regex each and decimal conversions are memoized per
symbol.  Anything the fast paths do not take goes through the general ``json.loads``
path, which is also where every error message comes from; all paths produce identical
events (tests/data/test_jsonl_compiled.py, and test_jsonl.py runs on both paths).

Writing (``JsonlWriter``/``write_jsonl``) emits canonical JSON lines through
``artifacts.canonical_json`` and ``artifacts.atomic_writer`` (temp file, fsync, rename).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import chain
from types import TracebackType
from typing import Any, BinaryIO

from mmkit import artifacts
from mmkit.core.events import (
    BUY,
    SELL,
    BookDelta,
    BookSnapshot,
    Event,
    Level,
    Quote,
    SeqGap,
    Trade,
    make_book_delta,
    make_book_snapshot,
    make_quote,
    make_seq_gap,
    make_trade,
)
from mmkit.core.instruments import GridError, Instrument, format_units, is_decimal_text, plain_to_units, step_scale
from mmkit.data import io as dio
from mmkit.data.instruments import InstrumentRegistry, infer_instrument, load_registry
from mmkit.compiled import pure_python_forced
from mmkit.errors import MmkitError

try:  # the compiled fast path (setup.py builds it; optional: see COMPILED)
    from mmkit.data._jsonlscan import Scanner as _Scanner
except ImportError:  # pragma: no cover - a build without a C compiler
    _Scanner = None

COMPILED = _Scanner is not None
"""True when the compiled scanner is installed.  Readers use it unless ``compiled=False``
or the environment sets ``MMKIT_PURE_PYTHON=1``; both paths yield identical events."""

ON_ERROR = ("fail", "skip")
SIDE_OF = {"buy": BUY, "sell": SELL}
SIDE_TEXT = {BUY: "buy", SELL: "sell"}
CODES = {
    "bad_json": "E_DATA_BAD_LINE",
    "bad_event": "E_DATA_BAD_LINE",
    "off_grid": "E_DATA_OFF_GRID",
    "negative_size": "E_DATA_NEGATIVE_SIZE",
    "out_of_order": "E_DATA_OUT_OF_ORDER",
}
"""Why a line was refused (``DataLineError.reason``) -> its error code (the stats key)."""

CHANNEL_OF = {"trade": "trade_ts", "quote": "quote_ts", "book_snapshot": "book_ts", "book_delta": "book_ts", "seq_gap": "book_ts"}
"""Exchange time is checked per symbol and channel: trades, quotes and the book come from
separate exchange streams whose clocks interleave (a trade may carry an earlier ``ts``
than the quote before it), so only each channel's own order is an error."""
CONVERSION_CACHE_MAX = 1 << 16
INFER_MAX_BYTES = 8 << 20

_STR = r'([^"\\\x00-\x1f]*)'  # a JSON string body without escapes; decimals are checked on a cache miss
_SYM = r'([^"\\\x00-\x1f]+)'
_INT = r'(0|[1-9][0-9]*)'
_END = r'\}[ \t\r\n]*\Z'
# Canonical (sorted-key, compact) trade and quote lines; anything else goes through json.loads.
_TRADE_LINE = re.compile(
    r'\{"kind":"trade","price":"' + _STR + r'","qty":"' + _STR + r'","recv_ts":' + _INT
    + r',"side":"(buy|sell)","symbol":"' + _SYM + r'","ts":' + _INT + _END, re.ASCII)
_QUOTE_LINE = re.compile(
    r'\{"ask_px":"' + _STR + r'","ask_qty":"' + _STR + r'","bid_px":"' + _STR + r'","bid_qty":"' + _STR
    + r'","kind":"quote","recv_ts":' + _INT + r',"symbol":"' + _SYM + r'","ts":' + _INT + _END, re.ASCII)


class DataLineError(MmkitError):
    """One refused input line: ``code`` from ``CODES``, ``reason`` (its key), ``where`` (file:line)."""

    def __init__(self, reason: str, where: str, detail: str) -> None:
        super().__init__(CODES[reason], f"{where}: {detail}; fix the line or re-run with --on-error skip to drop bad lines")
        self.reason = reason
        self.where = where
        self.detail = detail


class _Refused(Exception):
    """Internal: a line problem, before the reader adds the file:line location."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(slots=True)
class ReadStats:
    """What a reader saw: lines read (blank ones included), events yielded, lines skipped by error code."""

    lines: int = 0
    events: int = 0
    skipped: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    first_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"lines": self.lines, "events": self.events, "skipped": self.skipped,
                "reasons": dict(sorted(self.reasons.items())), "first_error": self.first_error}


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class _SymbolState:
    """Per-symbol reader state: the instrument, memoized conversions, the last ``ts`` per channel.

    The caches only ever hold validated text, so a hit needs no check; ``px_miss`` and
    ``qty_miss`` validate, convert and remember a value not seen before.
    """

    __slots__ = ("symbol", "instrument", "px_cache", "qty_cache", "px_miss", "qty_miss", "trade_ts", "quote_ts", "book_ts")

    def __init__(self, symbol: str, instrument: Instrument) -> None:
        self.symbol = symbol
        self.instrument = instrument
        self.px_cache: dict[str, int] = {}
        self.qty_cache: dict[str, int] = {}
        self.px_miss = _converter(instrument.tick_size, self.px_cache, "price", nonneg=False)
        self.qty_miss = _converter(instrument.lot_size, self.qty_cache, "size", nonneg=True)
        self.trade_ts = self.quote_ts = self.book_ts = -1  # last ts per channel (see CHANNEL_OF)


def _converter(step: Any, cache: dict[str, int], what: str, *, nonneg: bool) -> Callable[[object], int]:
    """The slow path of one memoized decimal-string -> units conversion: validate, convert, remember."""
    mantissa, places = step_scale(step)
    step_text = format_units(1, mantissa, places)

    def miss(text: object) -> int:
        if not is_decimal_text(text):
            got = "missing" if text is None else f"got {_short(text)}"
            raise _Refused("bad_event", f"{what} must be a plain decimal string, {got}")
        try:
            units = plain_to_units(text, mantissa, places)  # type: ignore[arg-type]
        except GridError:
            raise _Refused("off_grid", f"{what} {text} is not a multiple of {step_text} (check the instrument/--venue)") from None
        except ValueError:  # more digits than int() accepts
            raise _Refused("bad_event", f"{what} {_short(text)} is too long") from None
        if nonneg and units < 0:
            raise _Refused("negative_size", f"negative {what} {text}")
        if len(cache) >= CONVERSION_CACHE_MAX:
            cache.clear()
        cache[text] = units  # type: ignore[index]
        return units

    return miss


def _samples(obj: Any) -> tuple[list[str], list[str]]:
    """Price and size strings of one parsed line (for instrument inference); junk is ignored."""
    prices: list[str] = []
    sizes: list[str] = []
    if not isinstance(obj, dict):
        return prices, sizes
    for key in ("price", "bid_px", "ask_px"):
        if isinstance(obj.get(key), str):
            prices.append(obj[key])
    for key in ("qty", "bid_qty", "ask_qty"):
        if isinstance(obj.get(key), str):
            sizes.append(obj[key])
    for key in ("bids", "asks"):
        levels = obj.get(key)
        if isinstance(levels, list):
            for lv in levels:
                if isinstance(lv, list) and len(lv) == 2 and isinstance(lv[0], str) and isinstance(lv[1], str):
                    prices.append(lv[0])
                    sizes.append(lv[1])
    return prices, sizes


def _refuse_constant(token: str) -> Any:
    raise ValueError(f"non-finite literal {token}")


class JsonlReader:
    """Stream normalized events from mmkit JSONL.

    ``source``: a path (plain/.gz/.zip, ``archive.zip::member``), ``-`` for stdin, or any
    iterable of text lines.  ``instruments`` pins symbols to instruments; ``registry``
    defaults to ``load_registry()``; ``venue`` picks the registry venue; ``infer=False``
    turns an unknown symbol into ``E_DATA_UNKNOWN_INSTRUMENT`` instead of inferring it.
    After (or during) iteration, ``instruments`` maps every symbol seen to its instrument
    and ``stats`` counts lines, events and skips.  Iterate once.
    """

    def __init__(self, source: str | os.PathLike[str] | Iterable[str], *, registry: InstrumentRegistry | None = None,
                 venue: str | None = None, instruments: Mapping[str, Instrument] | None = None,
                 on_error: str = "fail", infer: bool = True, infer_lines: int = 1000,
                 check_order: bool = True, member: str | None = None, compiled: bool | None = None) -> None:
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
        self.source = source
        self.member = member
        if isinstance(source, (str, os.PathLike)):
            path, suffix_member = dio.split_member(source)
            self.name = dio.display_name(path, member or suffix_member)
        else:
            self.name = str(getattr(source, "name", "<lines>"))
        self.venue = venue
        self.on_error = on_error
        self.infer = infer
        self.infer_lines = infer_lines
        self.check_order = check_order
        self.compiled = compiled
        self.instruments: dict[str, Instrument] = dict(instruments or {})
        self._pinned = set(self.instruments)
        self._registry = registry
        self.stats = ReadStats()
        self._states: dict[str, _SymbolState] = {}
        self._head: list[str] = []
        self._started = False

    # ------------------------------------------------------------------ instruments
    @property
    def registry(self) -> InstrumentRegistry:
        if self._registry is None:
            self._registry = load_registry()
        return self._registry

    def _state(self, symbol: str, line: str) -> _SymbolState:
        """Resolve a symbol seen for the first time (pinned -> registry -> inferred)."""
        inst = self.instruments.get(symbol) if symbol in self._pinned else None
        if inst is None:
            inst = self.registry.find(symbol, self.venue)
        if inst is None:
            if not self.infer:
                where = f" on venue {self.venue}" if self.venue else ""
                raise MmkitError("E_DATA_UNKNOWN_INSTRUMENT",
                                 f"{self.name}: {symbol}{where} is not in the instrument registry; add it to a file named by "
                                 f"$MMKIT_INSTRUMENTS or pass --venue")
            prices: list[str] = []
            sizes: list[str] = []
            for text in chain(self._head, (line,)):
                if symbol in text:
                    try:
                        obj = json.loads(text)
                    except ValueError:
                        continue
                    if isinstance(obj, dict) and obj.get("symbol") == symbol:
                        p, s = _samples(obj)
                        prices += p
                        sizes += s
            inst = infer_instrument(symbol, prices, sizes, venue=self.venue or "inferred")
        if inst.symbol != symbol:
            raise MmkitError("E_DATA_BAD_INSTRUMENT", f"instrument {inst.symbol} given for symbol {symbol}")
        self.instruments[symbol] = inst
        state = self._states[symbol] = _SymbolState(symbol, inst)
        return state

    # ------------------------------------------------------------------ reading
    def __iter__(self) -> Iterator[Event]:
        if self._started:
            raise RuntimeError("a JsonlReader is iterated once; make a new one")
        self._started = True
        return self._events()

    def _open(self) -> Any:
        if isinstance(self.source, (str, os.PathLike)):
            return dio.open_text(self.source, self.member, newline="\n")  # no newline translation: JSON ignores \r
        return None

    def _events(self) -> Iterator[Event]:  # noqa: C901 - one flat loop is the fast path
        stats = self.stats
        name = self.name
        fail = self.on_error == "fail"
        check_order = self.check_order
        states = self._states
        state_for = self._state
        trade_match = _TRADE_LINE.match
        quote_match = _QUOTE_LINE.match
        general = self._general
        side_of = SIDE_OF
        no = 0
        events = 0
        with dio.reading(name):
            fh = self._open()
            try:
                lines: Iterable[str] = fh if fh is not None else self.source  # type: ignore[assignment]
                it = iter(lines)
                head = self._head
                size = 0
                for line in it:
                    head.append(line)
                    size += len(line)
                    if len(head) >= self.infer_lines or size >= INFER_MAX_BYTES:
                        break
                scanner = self._scanner()
                if scanner is not None:
                    numbered = enumerate(chain(head, it), 1)
                    while True:
                        try:
                            for no, line in numbered:
                                ev = scanner.scan(line)
                                if ev is None or type(ev) is str:
                                    ev = self._scan_slow(scanner, ev, line)
                                    if ev is None:
                                        continue
                                else:
                                    st = states[ev.symbol]
                                    ts = ev.ts
                                    cls = type(ev)
                                    if cls is Quote:
                                        if ts < st.quote_ts and check_order:
                                            raise _Refused("out_of_order", f"quote ts {ts} < previous quote ts {st.quote_ts} for {st.symbol}")
                                        st.quote_ts = ts
                                    elif cls is Trade:
                                        if ts < st.trade_ts and check_order:
                                            raise _Refused("out_of_order", f"trade ts {ts} < previous trade ts {st.trade_ts} for {st.symbol}")
                                        st.trade_ts = ts
                                    else:
                                        if ts < st.book_ts and check_order:
                                            raise _Refused("out_of_order", f"book ts {ts} < previous book ts {st.book_ts} for {st.symbol}")
                                        st.book_ts = ts
                                events += 1
                                yield ev
                            break
                        except _Refused as err:  # the for loop resumes with the next line
                            stats.lines, stats.events = no, events
                            self._refuse(err, f"{name}:{no}", fail)
                    return
                cur = None  # the symbol of the previous regex-path line, and its state in locals
                st = pc = qc = pm = qm = None
                for no, line in enumerate(chain(head, it), 1):
                    try:
                        # quotes first: they are most of a recorded feed (Binance bookTicker ~70%)
                        m = quote_match(line)
                        if m is not None:
                            ap, aq, bp, bq, rts, sym, ts = m.groups()
                            if sym != cur:
                                st = states.get(sym) or state_for(sym, line)
                                cur, pc, qc, pm, qm = sym, st.px_cache, st.qty_cache, st.px_miss, st.qty_miss
                            ts = int(ts)
                            if ts < st.quote_ts and check_order:
                                raise _Refused("out_of_order", f"quote ts {ts} < previous quote ts {st.quote_ts} for {sym}")
                            bpx = pc.get(bp)
                            if bpx is None:
                                bpx = pm(bp)
                            bqty = qc.get(bq)
                            if bqty is None:
                                bqty = qm(bq)
                            apx = pc.get(ap)
                            if apx is None:
                                apx = pm(ap)
                            aqty = qc.get(aq)
                            if aqty is None:
                                aqty = qm(aq)
                            st.quote_ts = ts
                            events += 1
                            yield make_quote(ts, int(rts), st.symbol, bpx, bqty, apx, aqty)
                            continue
                        m = trade_match(line)
                        if m is not None:
                            price, qty, rts, side, sym, ts = m.groups()
                            if sym != cur:
                                st = states.get(sym) or state_for(sym, line)
                                cur, pc, qc, pm, qm = sym, st.px_cache, st.qty_cache, st.px_miss, st.qty_miss
                            ts = int(ts)
                            if ts < st.trade_ts and check_order:
                                raise _Refused("out_of_order", f"trade ts {ts} < previous trade ts {st.trade_ts} for {sym}")
                            px = pc.get(price)
                            if px is None:
                                px = pm(price)
                            q = qc.get(qty)
                            if q is None:
                                q = qm(qty)
                            st.trade_ts = ts
                            events += 1
                            yield make_trade(ts, int(rts), st.symbol, side_of[side], px, q)
                            continue
                        ev = general(line)
                        if ev is not None:
                            events += 1
                            yield ev
                    except _Refused as err:
                        stats.lines, stats.events = no, events
                        self._refuse(err, f"{name}:{no}", fail)
            finally:
                stats.lines = max(stats.lines, no)
                stats.events = events
                if fh is not None:
                    fh.close()

    def _scanner(self) -> Any:
        """The compiled line scanner for this read, or None for the pure-Python path."""
        use = self.compiled if self.compiled is not None else not pure_python_forced()
        if not use or _Scanner is None:
            return None
        return _Scanner(make_book_snapshot, make_book_delta, make_trade, make_quote, BUY, SELL)

    def _scan_slow(self, scanner: Any, got: str | None, line: str) -> Event | None:
        """A line the scanner did not build: register a new symbol and scan again, or take
        the general path (which checks the time order itself)."""
        if got is not None:
            st = self._states.get(got) or self._state(got, line)
            inst = st.instrument
            scanner.add(st.symbol, *step_scale(inst.tick_size), *step_scale(inst.lot_size))
            ev = scanner.scan(line)
            if ev is not None and type(ev) is not str:
                channel = CHANNEL_OF[ev.kind]
                last = getattr(st, channel)
                if ev.ts < last and self.check_order:
                    what = channel[:-3]
                    raise _Refused("out_of_order", f"{what} ts {ev.ts} < previous {what} ts {last} for {st.symbol}")
                setattr(st, channel, ev.ts)
                return ev
        return self._general(line)

    def _refuse(self, err: _Refused, where: str, fail: bool) -> None:
        exc = DataLineError(err.reason, where, err.detail)
        if fail:
            raise exc
        stats = self.stats
        stats.skipped += 1
        stats.reasons[exc.code] = stats.reasons.get(exc.code, 0) + 1
        if stats.first_error is None:
            stats.first_error = exc.line()

    def _general(self, line: str) -> Event | None:
        """Any line the canonical regexes did not take: full JSON parse and validation."""
        if not line.strip():
            return None
        try:
            obj = json.loads(line, parse_constant=_refuse_constant)
        except ValueError as exc:
            raise _Refused("bad_json", f"invalid JSON ({exc})") from None
        if type(obj) is not dict:
            raise _Refused("bad_event", "expected a JSON object")
        try:
            return self._build(obj, line)
        except TypeError as exc:  # an unhashable value where a decimal string belongs, and such
            raise _Refused("bad_event", f"wrong value type ({exc})") from None

    def _build(self, obj: dict[str, Any], line: str) -> Event:
        kind = obj.get("kind")
        ts, rts, sym = obj.get("ts"), obj.get("recv_ts"), obj.get("symbol")
        if kind not in ("trade", "quote", "book_snapshot", "book_delta", "seq_gap"):
            raise _Refused("bad_event", f"unknown kind {_short(kind)}")
        for key, value in (("ts", ts), ("recv_ts", rts)):
            if type(value) is not int or value < 0:
                raise _Refused("bad_event", f"{key} must be a non-negative integer of ns, got {_short(value)}")
        if type(sym) is not str or not sym:
            raise _Refused("bad_event", f"symbol must be a non-empty string, got {_short(sym)}")
        st = self._states.get(sym)
        if st is None:
            st = self._state(sym, line)
        channel = CHANNEL_OF[kind]
        last = getattr(st, channel)
        if ts < last and self.check_order:  # type: ignore[operator]
            name = channel[:-3]
            raise _Refused("out_of_order", f"{name} ts {ts} < previous {name} ts {last} for {sym}")
        pc, pm, qc, qm = st.px_cache, st.px_miss, st.qty_cache, st.qty_miss
        ev: Event
        if kind == "trade":
            side = SIDE_OF.get(obj.get("side"))  # type: ignore[arg-type]
            if side is None:
                raise _Refused("bad_event", f"side must be \"buy\" or \"sell\", got {_short(obj.get('side'))}")
            p, q = obj.get("price"), obj.get("qty")
            px = pc.get(p)  # type: ignore[arg-type]
            qty = qc.get(q)  # type: ignore[arg-type]
            ev = make_trade(ts, rts, st.symbol, side, pm(p) if px is None else px, qm(q) if qty is None else qty)  # type: ignore[arg-type]
        elif kind == "quote":
            vals = []
            for key, cache, miss in (("bid_px", pc, pm), ("bid_qty", qc, qm), ("ask_px", pc, pm), ("ask_qty", qc, qm)):
                text = obj.get(key)
                v = cache.get(text)  # type: ignore[arg-type]
                vals.append(miss(text) if v is None else v)
            ev = make_quote(ts, rts, st.symbol, *vals)  # type: ignore[arg-type]
        elif kind == "seq_gap":
            expected, got = obj.get("expected"), obj.get("got")
            if type(expected) is not int or type(got) is not int:
                raise _Refused("bad_event", "seq_gap needs integer expected and got")
            ev = make_seq_gap(ts, rts, st.symbol, expected, got)  # type: ignore[arg-type]
        else:
            bids = self._levels(obj.get("bids"), st, "bids")
            asks = self._levels(obj.get("asks"), st, "asks")
            make = make_book_snapshot if kind == "book_snapshot" else make_book_delta
            ev = make(ts, rts, st.symbol, bids, asks)  # type: ignore[arg-type]
        setattr(st, channel, ts)
        return ev

    @staticmethod
    def _levels(raw: Any, st: _SymbolState, side: str) -> tuple[Level, ...]:
        if type(raw) is not list:
            raise _Refused("bad_event", f"{side} must be a list of [price, size] pairs")
        pc, pm, qc, qm = st.px_cache, st.px_miss, st.qty_cache, st.qty_miss
        out = []
        for lv in raw:
            if type(lv) is not list or len(lv) != 2:
                raise _Refused("bad_event", f"{side} entries must be [price, size] pairs, got {_short(lv)}")
            p, q = lv
            px = pc.get(p)
            if px is None:
                px = pm(p)
            qty = qc.get(q)
            if qty is None:
                qty = qm(q)
            out.append((px, qty))
        return tuple(out)


def read_jsonl(source: str | os.PathLike[str] | Iterable[str], **options: Any) -> Iterator[Event]:
    """``iter(JsonlReader(source, **options))``: events only (use the class for stats/instruments)."""
    return iter(JsonlReader(source, **options))


# ----------------------------------------------------------------------------- writing
class _Formatter:
    __slots__ = ("px", "qty")

    def __init__(self, inst: Instrument) -> None:
        pm, pp = step_scale(inst.tick_size)
        qm, qp = step_scale(inst.lot_size)
        self.px = lambda units: format_units(units, pm, pp)
        self.qty = lambda units: format_units(units, qm, qp)


class _Formatters:
    """Symbol -> number formatters, from one Instrument or a symbol -> Instrument mapping."""

    def __init__(self, instruments: Instrument | Mapping[str, Instrument]) -> None:
        self._instruments = instruments
        self._cache: dict[str, _Formatter] = {}

    def __call__(self, symbol: str) -> _Formatter:
        fmt = self._cache.get(symbol)
        if fmt is None:
            src = self._instruments
            inst = src if isinstance(src, Instrument) else src.get(symbol)
            if inst is None or inst.symbol != symbol:
                raise MmkitError("E_DATA_UNKNOWN_INSTRUMENT", f"no instrument given for {symbol}; cannot format its prices")
            fmt = self._cache[symbol] = _Formatter(inst)
        return fmt


def event_record(event: Event, instrument: Instrument) -> dict[str, Any]:
    """One event as its JSONL object (decimal strings with the instrument's tick/lot decimals)."""
    return _record(event, _Formatter(instrument))


def _record(ev: Event, f: _Formatter) -> dict[str, Any]:
    cls = type(ev)
    if cls is Trade:
        return {"kind": "trade", "ts": ev.ts, "recv_ts": ev.recv_ts, "symbol": ev.symbol, "side": SIDE_TEXT[ev.side],  # type: ignore[union-attr]
                "price": f.px(ev.price), "qty": f.qty(ev.qty)}  # type: ignore[union-attr]
    if cls is Quote:
        return {"kind": "quote", "ts": ev.ts, "recv_ts": ev.recv_ts, "symbol": ev.symbol,
                "bid_px": f.px(ev.bid_px), "bid_qty": f.qty(ev.bid_qty), "ask_px": f.px(ev.ask_px), "ask_qty": f.qty(ev.ask_qty)}  # type: ignore[union-attr]
    if cls is BookDelta or cls is BookSnapshot:
        px, qty = f.px, f.qty
        return {"kind": ev.kind, "ts": ev.ts, "recv_ts": ev.recv_ts, "symbol": ev.symbol,
                "bids": [[px(p), qty(q)] for p, q in ev.bids], "asks": [[px(p), qty(q)] for p, q in ev.asks]}  # type: ignore[union-attr]
    if cls is SeqGap:
        return {"kind": "seq_gap", "ts": ev.ts, "recv_ts": ev.recv_ts, "symbol": ev.symbol, "expected": ev.expected, "got": ev.got}  # type: ignore[union-attr]
    raise TypeError(f"not an mmkit event: {type(ev).__name__}")


def format_event(event: Event, instrument: Instrument) -> str:
    """One event as its canonical JSONL line, without the newline."""
    return artifacts.canonical_json(event_record(event, instrument))


class JsonlWriter:
    """Write events as canonical mmkit JSONL, atomically (``-`` = stdout), streaming.

    ``with JsonlWriter(path, instruments) as w: w.write(event)``; the file appears only when
    the block ends without error.  ``instruments``: one Instrument, or symbol -> Instrument.
    """

    FLUSH_LINES = 4096

    def __init__(self, path: str | os.PathLike[str], instruments: Instrument | Mapping[str, Instrument]) -> None:
        self.path = path
        self.count = 0
        self._formatters = _Formatters(instruments)
        self._pending: list[str] = []
        self._ctx: Any = None
        self._fh: BinaryIO | None = None

    def __enter__(self) -> JsonlWriter:
        self._ctx = artifacts.atomic_writer(self.path)
        self._fh = self._ctx.__enter__()
        return self

    def write(self, event: Event) -> None:
        self._pending.append(artifacts.canonical_json(_record(event, self._formatters(event.symbol))))
        self.count += 1
        if len(self._pending) >= self.FLUSH_LINES:
            self._flush()

    def write_all(self, events: Iterable[Event]) -> int:
        for ev in events:
            self.write(ev)
        return self.count

    def _flush(self) -> None:
        if self._pending and self._fh is not None:
            self._fh.write(("\n".join(self._pending) + "\n").encode("ascii"))
            self._pending = []

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        ctx, self._ctx = self._ctx, None
        if exc_type is None:
            try:
                self._flush()
            except BaseException as err:
                ctx.__exit__(type(err), err, err.__traceback__)  # removes the temp file
                raise
        self._fh = None
        ctx.__exit__(exc_type, exc, tb)


def write_jsonl(path: str | os.PathLike[str], events: Iterable[Event], instruments: Instrument | Mapping[str, Instrument]) -> int:
    """Write ``events`` to ``path`` as canonical mmkit JSONL (atomic); returns the event count."""
    with JsonlWriter(path, instruments) as writer:
        return writer.write_all(events)
