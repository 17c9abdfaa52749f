"""Binance raw WebSocket recordings -> normalized events, with Binance's book sync rules.

Input: one message per line, ``<local receive time, ns> <raw JSON>`` as common collectors
write it (a line without the numeric prefix is accepted too: recv_ts is then the exchange
time).  Messages are combined-stream envelopes ``{"stream": ..., "data": {...}}`` (or the
bare payload) for ``depthUpdate``, ``trade``, ``aggTrade`` and ``bookTicker``, plus the
REST depth snapshot written as its bare JSON response (``{"lastUpdateId": ...}``).  Spot,
USD-M futures and COIN-M futures (inverse, integer contracts) are told apart by the data.

Mapping (ts = exchange time, recv_ts = the recorder's clock, both ns):
- depthUpdate -> ``BookDelta``: ts = ``E`` (event time; futures also carry the transaction
  time ``T``, not used, so every market's depth uses the same clock).
- REST snapshot -> ``BookSnapshot``: ts = ``E`` of the update that bridges it (the first one
  applied on top of it), so the book channel's time never runs backwards; recv_ts = the
  line's receive time.
- trade / aggTrade -> ``Trade``: ts = trade time ``T``; ``m: true`` means the buyer was the
  maker, so the aggressor SOLD.
- bookTicker -> ``Quote``: ts = ``E`` on futures.  Spot bookTicker has no event time: ts is
  the latest exchange time already seen for that symbol on any of its streams (a lower
  bound on the true time, on the exchange clock), or recv_ts before any was seen.

Sync rules (Binance's "how to manage a local order book"): depth updates are buffered until
the snapshot line arrives (it is usually written after the first updates); updates the
snapshot already contains are dropped (spot: ``u <= lastUpdateId``; futures:
``u < lastUpdateId``); the first applied update must straddle it (spot:
``U <= lastUpdateId + 1 <= u``; futures: ``U <= lastUpdateId <= u``); after that every
update must continue the previous one (spot: ``U == previous u + 1``; futures:
``pu == previous u``).  A break is a sequence gap: ``E_DATA_SEQ_GAP`` under
on_error='fail'; under 'skip' a ``SeqGap`` event, the book is stale and updates are held
until the next snapshot line re-syncs it.  Several files of one recording continue each
other: the second file has no snapshot, its first update continues the first file's.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

from mmkit import log
from mmkit.core.events import BUY, SELL, Event, make_book_delta, make_book_snapshot, make_quote, make_trade
from mmkit.core.instruments import GridError
from mmkit.data.readers import (
    E_BAD_JSON,
    E_BAD_LINE,
    E_BAD_VALUE,
    E_CROSSED_BOOK,
    E_OUT_OF_ORDER,
    BaseReader,
    BookTracker,
    LineError,
    split_recv_prefix,
    Units,
    grid_code,
)

VENUE_SPOT = "binance-spot"
VENUE_USDM = "binance-usdm"
VENUE_COINM = "binance-coinm"

INIT, SYNCING, LIVE, STALE = 0, 1, 2, 3
BUFFER_MAX = 5000  # depth updates held while waiting for a snapshot (bounded memory)
MS = 1_000_000


def _refuse(token: str) -> Any:
    raise ValueError(f"non-finite literal {token}")


_decode = json.JSONDecoder(parse_constant=_refuse).decode
_DATE_SUFFIX = re.compile(r"[_-]?\d{8}$")


def symbol_from_name(path: str) -> str | None:
    """``.../btcusd_perp_20240808.gz`` -> ``BTCUSD_PERP`` (the collector's file naming)."""
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    stem = name.split(".", 1)[0]
    stem = _DATE_SUFFIX.sub("", stem)
    return stem.upper() or None


def venue_of(symbol: str, d: dict[str, Any], kind: str) -> str:
    """Spot, USD-M or COIN-M from the message itself."""
    if "_" in symbol or "ps" in d or "pair" in d:
        return VENUE_COINM
    if kind == "depth":
        return VENUE_USDM if "pu" in d else VENUE_SPOT
    if kind == "trade":
        return VENUE_SPOT if "M" in d else VENUE_USDM
    if kind == "quote":
        return VENUE_USDM if "e" in d else VENUE_SPOT
    return VENUE_USDM if "E" in d else VENUE_SPOT  # REST snapshot


class _Sym:
    """Per-symbol state: converters, book tracker, sync mode and last ids."""

    __slots__ = ("symbol", "venue", "px", "qty", "book", "mode", "last_u", "sync_id", "buffer", "last_E", "last_depth_E",
                 "last_tid", "last_aid", "last_trade_ts", "last_quote_ts", "last_book_ts")

    def __init__(self, symbol: str, venue: str, units: Units) -> None:
        self.symbol = symbol
        self.venue = venue
        self.px = units.px
        self.qty = units.qty
        self.book = BookTracker()
        self.mode = INIT
        self.last_u = 0
        self.sync_id = 0
        self.buffer: deque[tuple[str, int, int, dict[str, Any]]] = deque()
        self.last_E = 0  # latest exchange time seen on any stream of the symbol (ns)
        self.last_depth_E = 0
        self.last_tid: int | None = None
        self.last_aid: int | None = None
        self.last_trade_ts = 0
        self.last_quote_ts = 0
        self.last_book_ts = 0

    def marks(self) -> tuple[int, ...]:
        """Changes whenever the symbol emits an event (used to list a file's symbols cheaply)."""
        return (self.last_trade_ts, self.last_quote_ts, self.last_book_ts, self.last_u, self.mode, self.last_E)


_D = r'([0-9]+(?:\.[0-9]+)?)'
_SYM = r'([A-Z0-9_]+)'
# The common message shapes, byte for byte as Binance sends them, parsed without the JSON
# decoder (2-3x faster); any line they do not match takes the general JSON path, which
# produces the same events (tests check both paths agree).
_TICKER = re.compile(
    r'\{"stream":"[a-z0-9_]+@bookTicker","data":\{(?:"e":"bookTicker",)?"u":[0-9]+,(?:"e":"bookTicker",)?"s":"'
    + _SYM + r'",(?:"ps":"[A-Z0-9_]+",)?"b":"' + _D + r'","B":"' + _D + r'","a":"' + _D + r'","A":"' + _D
    + r'"(?:,"T":[0-9]+,"E":([0-9]+))?\}\}\s*\Z', re.ASCII)
_TRADE_FUT = re.compile(
    r'\{"stream":"[a-z0-9_]+@trade","data":\{"e":"trade","E":[0-9]+,"T":([0-9]+),"s":"' + _SYM + r'","t":([0-9]+),"p":"'
    + _D + r'","q":"' + _D + r'","X":"[A-Z_]+","m":(true|false)\}\}\s*\Z', re.ASCII)
_TRADE_SPOT = re.compile(
    r'\{"stream":"[a-z0-9_]+@trade","data":\{"e":"trade","E":[0-9]+,"s":"' + _SYM + r'","t":([0-9]+),"p":"' + _D
    + r'","q":"' + _D + r'","T":([0-9]+),"m":(true|false),"M":(?:true|false)\}\}\s*\Z', re.ASCII)


class BinanceReader(BaseReader):
    """Reads one Binance recording (one or more consecutive files) into events."""

    fmt = "binance"

    def __init__(self, paths: Iterable[Any], **kw: Any) -> None:
        super().__init__(paths, **kw)
        self._syms: dict[str, _Sym] = {}
        self._last_recv = 0
        self.n_trade = self.n_quote = self.n_delta = 0
        self._file_marks: dict[str, tuple[int, ...]] = {}

    # -- the line loop -----------------------------------------------------------------
    def _read(self, lines: Iterable[str]) -> Iterator[Event]:  # noqa: C901 - one flat loop is the fast path
        src = self.src
        src.recv_clock = "local"
        want = self.symbol
        syms = self._syms
        ticker, trade_fut, trade_spot = _TICKER.match, _TRADE_FUT.match, _TRADE_SPOT.match
        quote, trade, general = self._quote, self._trade, self._general
        marks = {sym: st.marks() for sym, st in syms.items()}
        self._file_marks = marks
        last = None
        no = 0
        for line in lines:
            no += 1
            self.line_no = no
            try:
                c = line[:1]
                if "0" <= c <= "9":
                    recv, body = split_recv_prefix(line, self._last_recv, "'<recv_ns> <json>'")
                    self._last_recv = recv
                elif not line or line.isspace():
                    continue
                else:
                    recv = 0  # no local clock: recv_ts = exchange time (set per message)
                    src.recv_clock = "exchange"
                    body = line
                m = ticker(body)
                if m is not None:
                    sym, b, bq, a, aq, e_ms = m.groups()
                    st = syms.get(sym)
                    if st is not None:
                        if want is not None and sym != want:
                            src.ignored["other_symbol"] += 1
                            continue
                        out = quote(st, b, bq, a, aq, None if e_ms is None else int(e_ms), recv)
                        if out is None:
                            continue
                        if last is None and src.first_ts is None:
                            src.first_ts = out.ts
                        last = out
                        yield out
                        continue
                elif body.find("@trade\"", 10, 64) > 0:
                    m = trade_fut(body)
                    if m is not None:
                        t_ms, sym, tid, p, q, mk = m.groups()
                    else:
                        m = trade_spot(body)
                        if m is not None:
                            sym, tid, p, q, t_ms, mk = m.groups()
                    if m is not None:
                        st = syms.get(sym)
                        if st is not None:
                            if want is not None and sym != want:
                                src.ignored["other_symbol"] += 1
                                continue
                            out = trade(st, p, q, int(t_ms), mk == "true", int(tid), False, recv)
                            if last is None and src.first_ts is None:
                                src.first_ts = out.ts
                            last = out
                            yield out
                            continue
                out = general(body, recv)
            except LineError as exc:
                self.problem(exc.code, exc.detail)
                continue
            except GridError as exc:
                self.problem(grid_code(exc), str(exc))
                continue
            except KeyError as exc:
                self.problem(E_BAD_LINE, f"missing field {exc}")
                continue
            except (TypeError, ValueError, IndexError, AttributeError) as exc:
                self.problem(E_BAD_LINE, f"malformed message ({type(exc).__name__}: {exc})")
                continue
            if out is None:
                continue
            if type(out) is list:
                if not out:
                    continue
                last = out[-1]
                if src.first_ts is None:
                    src.first_ts = out[0].ts
                yield from out
            else:
                last = out
                if src.first_ts is None:
                    src.first_ts = out.ts
                yield out
        if last is not None:
            src.last_ts = last.ts
        src.lines = no

    def _general(self, body: str, recv: int) -> Event | list[Event] | None:
        """Any message through the JSON decoder: envelope or bare payload, every event type."""
        src = self.src
        try:
            obj = _decode(body)
        except ValueError as exc:
            raise LineError(E_BAD_JSON, f"invalid JSON ({exc})") from None
        if type(obj) is not dict:
            raise LineError(E_BAD_LINE, "not a JSON object")
        d = obj.get("data")
        if d is None or "stream" not in obj:
            d = obj
        if type(d) is not dict:
            raise LineError(E_BAD_LINE, "'data' is not an object")
        e = d.get("e")
        want = self.symbol
        if e == "depthUpdate" or e == "trade" or e == "aggTrade" or e == "bookTicker" or (e is None and "B" in d and "A" in d and "s" in d):
            symbol = d["s"]
            if want is not None and symbol != want:
                src.ignored["other_symbol"] += 1
                return None
            if e == "depthUpdate":
                return self._on_depth(d, recv)
            if e == "trade" or e == "aggTrade":
                st = self._syms.get(symbol) or self._state(symbol, d, "trade")
                m = d["m"]
                if m is not True and m is not False:
                    raise LineError(E_BAD_VALUE, f"trade field m must be true/false, got {m!r}")
                tid = d["t"] if e == "trade" else d["a"]
                T = d["T"]
                if type(tid) is not int or type(T) is not int:
                    raise LineError(E_BAD_VALUE, "trade id and time must be integers")
                return self._trade(st, d["p"], d["q"], T, m, tid, e == "aggTrade", recv)
            st = self._syms.get(symbol) or self._state(symbol, d, "quote")
            E = d.get("E")
            if E is not None and type(E) is not int:
                raise LineError(E_BAD_VALUE, f"event time E must be an integer, got {E!r}")
            return self._quote(st, d["b"], d["B"], d["a"], d["A"], E, recv)
        if "lastUpdateId" in d and "bids" in d:
            return self._on_snapshot(d, recv)
        src.ignored[str(e or obj.get("stream") or ("control" if "result" in obj or "id" in obj else "unknown"))] += 1
        return None

    # -- per-symbol state ---------------------------------------------------------------
    def _state(self, symbol: str, d: dict[str, Any], kind: str) -> _Sym:
        st = self._syms.get(symbol)
        if st is None:
            if type(symbol) is not str or not symbol:
                raise LineError(E_BAD_LINE, "message without a symbol")
            venue = self.venue or venue_of(symbol, d, kind)

            def sample() -> list[tuple[list[str], list[str]]]:
                if kind == "depth":
                    lv = list(d.get("b", [])) + list(d.get("a", []))
                elif kind == "snapshot":
                    lv = list(d.get("bids", [])) + list(d.get("asks", []))
                elif kind == "trade":
                    lv = [[d["p"], d["q"]]]
                else:
                    lv = [[d["b"], d["B"]], [d["a"], d["A"]]]
                return [([x[0] for x in lv], [x[1] for x in lv])]

            st = self._syms[symbol] = _Sym(symbol, venue, self.units(symbol, venue, sample))
        return st

    # -- trades and quotes --------------------------------------------------------------
    def _trade(self, st: _Sym, p: Any, q: Any, t_ms: int, m: bool, tid: int, agg: bool, recv: int) -> Event:
        symbol = st.symbol
        ts = t_ms * MS
        price = st.px[p]
        qty = st.qty[q]
        last = st.last_aid if agg else st.last_tid
        if last is not None and tid != last + 1:
            if tid <= last:
                raise LineError(E_OUT_OF_ORDER, f"{symbol} {'aggregate ' if agg else ''}trade id {tid} after {last}")
            self._trade_gap(symbol, last + 1, tid)
        if ts < st.last_trade_ts:
            raise LineError(E_OUT_OF_ORDER, f"{symbol} trade time goes backwards: {ts} after {st.last_trade_ts} (ns)")
        if agg:
            st.last_aid = tid
        else:
            st.last_tid = tid
        st.last_trade_ts = ts
        if ts > st.last_E:
            st.last_E = ts
        if recv:
            self.src.skew(recv - ts)
        else:
            recv = ts
        self.n_trade += 1
        return make_trade(ts, recv, symbol, SELL if m else BUY, price, qty)

    def _trade_gap(self, symbol: str, expected: int, got: int) -> None:
        self.src.trade_id_gaps += 1
        log.warning("data_trade_id_gap", at=self.where(), symbol=symbol, expected=expected, got=got,
                    action="trades missing from the recording; the book is not affected")

    def _quote(self, st: _Sym, b: Any, bq: Any, a: Any, aq: Any, e_ms: int | None, recv: int) -> Event | None:
        symbol = st.symbol
        if e_ms is not None:
            ts = e_ms * MS
            if ts > st.last_E:
                st.last_E = ts
        else:
            ts = st.last_E or recv  # spot: no event time (see the module doc)
        px, qty = st.px, st.qty
        bp, ap = px[b], px[a]
        bqty, aqty = qty[bq], qty[aq]
        if bp >= ap:
            raise LineError(E_CROSSED_BOOK, f"{symbol} bookTicker bid {b} >= ask {a}")
        if not ts:
            self.src.ignored["quote_without_time"] += 1  # no local clock and no exchange time seen yet
            return None
        if ts < st.last_quote_ts:
            raise LineError(E_OUT_OF_ORDER, f"{symbol} quote time goes backwards: {ts} after {st.last_quote_ts} (ns)")
        st.last_quote_ts = ts
        if not recv:
            recv = ts  # (quotes are left out of the clock statistics: trades and depth carry them)
        self.n_quote += 1
        return make_quote(ts, recv, symbol, bp, bqty, ap, aqty)

    # -- depth ----------------------------------------------------------------------------
    def _on_depth(self, d: dict[str, Any], recv: int) -> Event | list[Event] | None:
        symbol = d["s"]
        st = self._syms.get(symbol) or self._state(symbol, d, "depth")
        E = d["E"]
        if type(E) is not int or type(d["u"]) is not int or type(d["U"]) is not int:
            raise LineError(E_BAD_VALUE, "depth update E, U and u must be integers")
        E *= MS
        if E > st.last_E:
            st.last_E = E
        if E > st.last_depth_E:
            st.last_depth_E = E
        mode = st.mode
        if mode == LIVE:
            pu = d.get("pu")
            if (d["U"] == st.last_u + 1) if pu is None else (pu == st.last_u):
                return self._apply(st, d, recv)
            if d["u"] <= st.last_u:
                self.src.dropped["duplicate"] += 1
                return None
            expected, got = (st.last_u + 1, d["U"]) if pu is None else (st.last_u, pu)
            return self._gap(st, d, recv, expected, got)
        if mode == SYNCING:
            return self._bridge(st, d, recv)
        # INIT or STALE: hold the update until a snapshot arrives
        buf = st.buffer
        if len(buf) >= BUFFER_MAX:
            buf.popleft()
            self.src.dropped["buffer_overflow"] += 1
        buf.append((self.path, self.line_no, recv, d))
        return None

    def _bridge(self, st: _Sym, d: dict[str, Any], recv: int) -> Event | list[Event] | None:
        """First update after a snapshot: drop what it contains, apply the straddling one."""
        L = st.sync_id
        U, u = d["U"], d["u"]
        if "pu" in d:  # futures
            if u < L:
                self.src.dropped["before_snapshot"] += 1
                return None
            if U <= L <= u:
                return self._apply(st, d, recv)
            return self._gap(st, d, recv, L, U)
        if u <= L:
            self.src.dropped["before_snapshot"] += 1
            return None
        if U <= L + 1 <= u:
            return self._apply(st, d, recv)
        return self._gap(st, d, recv, L + 1, U)

    def _apply(self, st: _Sym, d: dict[str, Any], recv: int) -> Event | None:
        px, qty = st.px, st.qty
        bids = tuple([(px[p], qty[q]) for p, q in d["b"]])
        asks = tuple([(px[p], qty[q]) for p, q in d["a"]])
        ts = d["E"] * MS
        symbol = st.symbol
        # A refused update leaves last_u as it was, so the next update reports the gap and the
        # book goes stale until a snapshot: a skipped update is never silently patched over.
        if ts < st.last_book_ts:
            raise LineError(E_OUT_OF_ORDER, f"{symbol} depth time goes backwards: {ts} after {st.last_book_ts} (ns)")
        book = st.book
        if book.apply(bids, asks):
            raise LineError(E_CROSSED_BOOK, f"{symbol} book crossed after update u={d['u']}: "
                                            f"best bid {book.bb} >= best ask {book.ba} (ticks)")
        st.last_book_ts = ts
        st.last_u = d["u"]
        st.mode = LIVE
        if not recv:
            recv = ts
        self.src.skew(recv - ts)
        self.n_delta += 1
        return make_book_delta(ts, recv, symbol, bids, asks)

    def _gap(self, st: _Sym, d: dict[str, Any], recv: int, expected: int, got: int) -> Event:
        ts = d["E"] * MS
        ev = self.gap(st.symbol, expected, got, ts, recv or ts, "depth")  # raises under on_error='fail'
        st.mode = STALE
        st.buffer.clear()
        st.buffer.append((self.path, self.line_no, recv, d))  # it may bridge the next snapshot
        self.src.events["seq_gap"] += 1
        return ev

    def _snapshot_symbol(self, d: dict[str, Any]) -> str:
        sym = d.get("symbol")
        if sym:
            return sym
        guess = symbol_from_name(self.path)
        known = set(self._syms)
        if guess and (guess in known or not known):
            return guess
        if len(known) == 1:
            return next(iter(known))
        raise LineError(E_BAD_LINE, f"depth snapshot without a symbol and the file name does not name one of {sorted(known)}")

    def _on_snapshot(self, d: dict[str, Any], recv: int) -> list[Event] | None:
        symbol = self._snapshot_symbol(d)
        if self.symbol is not None and symbol != self.symbol:
            self.src.ignored["other_symbol"] += 1
            return None
        st = self._syms.get(symbol) or self._state(symbol, d, "snapshot")
        L = d["lastUpdateId"]
        if type(L) is not int:
            raise LineError(E_BAD_VALUE, f"lastUpdateId must be an integer, got {L!r}")
        if st.mode == LIVE and L <= st.last_u:
            self.src.dropped["snapshot_behind_stream"] += 1  # the book is already newer
            return None
        px, qty = st.px, st.qty
        bids = tuple([(px[lv[0]], qty[lv[1]]) for lv in d["bids"]])
        asks = tuple([(px[lv[0]], qty[lv[1]]) for lv in d["asks"]])
        bids = tuple([lv for lv in bids if lv[1]])
        asks = tuple([lv for lv in asks if lv[1]])
        book = st.book
        book.reset(bids, asks)
        if book.crossed():
            book.reset((), ())
            raise LineError(E_CROSSED_BOOK, f"{symbol} depth snapshot is crossed")
        # ts: the bridging update's E if it is already buffered, else the newest depth time seen
        futures = "E" in d or "T" in d
        first_needed = L if futures else L + 1
        ts = 0
        for _, _, _, bd in st.buffer:
            if bd["u"] >= first_needed:
                ts = bd["E"] * MS
                break
        if not ts:
            ts = st.last_depth_E or (d["E"] * MS if "E" in d else 0) or st.last_E or recv
        if not recv:
            recv = ts
        if ts < st.last_book_ts:
            raise LineError(E_OUT_OF_ORDER, f"{symbol} depth snapshot time goes backwards: {ts} after {st.last_book_ts} (ns)")
        st.last_book_ts = ts
        self.src.snapshots += 1
        self.src.events["book_snapshot"] += 1
        out: list[Event] = [make_book_snapshot(ts, recv, symbol, bids, asks)]
        st.mode = SYNCING
        st.sync_id = L
        st.last_u = L
        held, st.buffer = st.buffer, deque()
        here = (self.path, self.line_no)
        try:
            for path, line_no, brecv, bd in held:
                self.path, self.line_no = path, line_no
                try:
                    r = self._on_depth(bd, brecv)
                except LineError as exc:
                    self.problem(exc.code, exc.detail)
                    continue
                except GridError as exc:
                    self.problem(grid_code(exc), str(exc))
                    continue
                if r is not None:
                    out.append(r)  # type: ignore[arg-type]
        finally:
            self.path, self.line_no = here
        return out

    # -- end of input -------------------------------------------------------------------
    def _end_file(self) -> None:
        src = self.src
        for kind, n in (("trade", self.n_trade), ("quote", self.n_quote), ("book_delta", self.n_delta)):
            if n:
                src.events[kind] += n
        self.n_trade = self.n_quote = self.n_delta = 0
        marks = self._file_marks
        seen = {sym for sym, st in self._syms.items() if st.buffer or marks.get(sym) != st.marks()}
        src.symbols.update(seen)
        src.venue = ",".join(sorted({self._syms[s].venue for s in seen}))

    def _end_all(self) -> None:
        for st in self._syms.values():
            if st.buffer:
                n = len(st.buffer)
                self.src.dropped["never_synced"] += n
                log.warning("data_book_not_synced", symbol=st.symbol, dropped_updates=n,
                            reason="no depth snapshot after them" if st.mode == INIT else "stale after a gap, no later snapshot")
