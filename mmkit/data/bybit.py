"""Bybit v5 market data -> normalized events: WebSocket recordings and public history files.

Three inputs, one reader:

- WebSocket recordings: one frame per line, raw JSON as Bybit sent it, or prefixed with the
  recorder's receive time ``<recv_ns> <json>``.  Topics ``orderbook.{1,50,200,500}.SYMBOL``
  (``snapshot``/``delta`` with update id ``u``) and ``publicTrade.SYMBOL``.  Control frames
  (subscribe acks, pongs, rejected subscriptions) are skipped silently and counted.
- Bybit's order-book history files (``YYYY-MM-DD_SYMBOL_ob500.data``, usually zipped): the
  same ``orderbook.500`` frames, one per line.
- Bybit's trade history (``SYMBOLYYYY-MM-DD.csv.gz`` from public.bybit.com/trading): CSV with
  header ``timestamp,symbol,side,size,price,tickDirection,trdMatchID,grossValue,
  homeNotional,foreignNotional`` (``timestamp`` in seconds with a fraction); the spot
  variant ``id,timestamp,price,volume,side`` (``timestamp`` in ms) is read too.

Mapping (ts = exchange time, recv_ts = receive time, both ns):
- book frames: ts = ``cts`` (matching-engine time, the clock trades use) or ``ts`` when
  ``cts`` is absent; recv_ts = the recorder's time if the line has one, else the frame's
  ``ts`` (Bybit's push time: the closest thing to a receive time such files carry).
- ``orderbook.1`` is Bybit's top-of-book feed: it becomes ``Quote`` events.  Deeper topics
  become ``BookSnapshot``/``BookDelta``; when several depths of one symbol are recorded the
  first one seen is the book and the others are ignored (counted).
- publicTrade: ts = ``T`` (trade time), side = ``S`` (the taker).
- trade history CSV: ts = recv_ts = ``timestamp`` (no receive time exists).

Sync rules: a ``snapshot`` replaces the book (also the ``u = 1`` snapshot Bybit sends after a
service restart); each ``delta`` must carry ``u == previous u + 1``.  A delta before the
first snapshot is dropped (counted); a break is a sequence gap (``E_DATA_SEQ_GAP`` under
on_error='fail'; under 'skip' a ``SeqGap`` event and deltas are dropped until the next
snapshot).  ``orderbook.1`` repeats a snapshot with the same ``u`` when nothing changed for
3 s: that is fine.

Venue (for the instrument registry): ``bybit-linear`` unless ``venue=`` says otherwise or a
``publicTrade`` frame without the derivatives-only ``L`` field shows a spot recording
(``bybit-spot``); the spot trade-history CSV is ``bybit-spot``.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from mmkit.core.events import BUY, SELL, Event, make_book_delta, make_book_snapshot, make_quote, make_trade
from mmkit.core.instruments import GridError
from mmkit.errors import MmkitError
from mmkit.data.readers import (
    E_BAD_JSON,
    E_BAD_LINE,
    E_BAD_VALUE,
    E_CROSSED_BOOK,
    E_OFF_GRID,
    BaseReader,
    BookTracker,
    LineError,
    split_recv_prefix,
    Units,
    decimal_to_ns,
    grid_code,
)

VENUE_LINEAR = "bybit-linear"
VENUE_SPOT = "bybit-spot"
MS = 1_000_000
PEEK_LINES = 200  # frames looked at to tell a spot recording from a derivatives one

INIT, LIVE, STALE = 0, 2, 3
SIDES = {"Buy": BUY, "Sell": SELL, "buy": BUY, "sell": SELL, "BUY": BUY, "SELL": SELL}


def _refuse(token: str) -> Any:
    raise ValueError(f"non-finite literal {token}")


_decode = json.JSONDecoder(parse_constant=_refuse).decode
_NAME_SYMBOL = re.compile(r"([A-Z0-9]+?)[-_]?\d{4}-\d{2}-\d{2}")


class _Book:
    __slots__ = ("symbol", "depth", "units", "tracker", "mode", "last_u")

    def __init__(self, symbol: str, depth: int, units: Units) -> None:
        self.symbol = symbol
        self.depth = depth
        self.units = units
        self.tracker = BookTracker()
        self.mode = INIT
        self.last_u = 0


class BybitReader(BaseReader):
    """Reads Bybit WebSocket recordings, ob500 history files and trade-history CSVs."""

    fmt = "bybit"

    def __init__(self, paths: Iterable[Any], **kw: Any) -> None:
        super().__init__(paths, **kw)
        self._books: dict[tuple[str, int], _Book] = {}
        self._book_depth: dict[str, int] = {}  # symbol -> the depth used as its book
        self._ws_venue: str | None = None
        self._last_recv = 0

    # ------------------------------------------------------------------ dispatch per file
    def _read(self, lines: Iterable[str]) -> Iterator[Event]:
        it = iter(lines)
        head: list[str] = []
        for line in it:
            head.append(line)
            if line.strip():
                break
        first = head[-1].lstrip("\ufeff").strip() if head else ""
        lines = itertools.chain(head, it)
        if first.startswith("timestamp,") or first.startswith("id,timestamp"):
            yield from self._read_csv(lines)
        else:
            yield from self._read_ws(lines)

    # ------------------------------------------------------------------ WebSocket frames
    def _venue_for_ws(self, lines: Iterable[str]) -> tuple[str, Iterable[str]]:
        if self.venue:
            return self.venue, lines
        if self._ws_venue is not None:
            return self._ws_venue, lines
        it = iter(lines)
        peek = list(itertools.islice(it, PEEK_LINES))
        venue = VENUE_LINEAR
        for line in peek:
            if '"publicTrade.' in line:
                try:
                    obj = _decode(line[line.index("{"):])
                    trades = obj.get("data") or []
                    if trades and isinstance(trades[0], dict) and "L" not in trades[0]:
                        venue = VENUE_SPOT
                except (ValueError, AttributeError):
                    pass
                break
        self._ws_venue = venue
        return venue, itertools.chain(peek, it)

    def _read_ws(self, lines: Iterable[str]) -> Iterator[Event]:
        src = self.src
        venue, lines = self._venue_for_ws(lines)
        self.src.venue = venue
        want = self.symbol
        decode = _decode
        clock = None
        no = 0
        for line in lines:
            no += 1
            self.line_no = no
            if not line or line.isspace():
                continue
            try:
                c = line[0]
                if "0" <= c <= "9":
                    recv, body = split_recv_prefix(line, self._last_recv, "a JSON frame or '<recv_ns> <json>'")
                    self._last_recv = recv
                    clock = clock or "local"
                else:
                    recv = 0
                    body = line
                    clock = "exchange"
                try:
                    obj = decode(body)
                except ValueError as exc:
                    raise LineError(E_BAD_JSON, f"invalid JSON ({exc})") from None
                if type(obj) is not dict:
                    raise LineError(E_BAD_LINE, "not a JSON object")
                topic = obj.get("topic")
                if topic is None:
                    if "op" in obj or "success" in obj or "ret_msg" in obj:
                        src.ignored["control_frame"] += 1
                        continue
                    raise LineError(E_BAD_LINE, "neither a market-data frame (no 'topic') nor a control frame")
                kind, _, rest = topic.partition(".")
                if kind == "orderbook":
                    depth_s, _, symbol = rest.partition(".")
                    if want is not None and symbol != want:
                        src.ignored["other_symbol"] += 1
                        continue
                    out = self._on_book(obj, symbol, depth_s, recv, venue)
                elif kind == "publicTrade":
                    if want is not None and rest != want:
                        src.ignored["other_symbol"] += 1
                        continue
                    out = self._on_trades(obj, rest, recv, venue)
                else:
                    src.ignored[kind] += 1
                    continue
            except LineError as exc:
                self.problem(exc.code, exc.detail)
                continue
            except GridError as exc:
                self._grid_problem(exc, venue)
                continue
            except KeyError as exc:
                self.problem(E_BAD_LINE, f"missing field {exc}")
                continue
            except (TypeError, ValueError, IndexError, AttributeError) as exc:
                self.problem(E_BAD_LINE, f"malformed frame ({type(exc).__name__}: {exc})")
                continue
            if out is None:
                continue
            if type(out) is list:
                yield from out
            else:
                yield out
        src.lines = no
        src.recv_clock = clock or "exchange"

    def _grid_problem(self, exc: GridError, venue: str) -> None:
        code = grid_code(exc)
        hint = ""
        if code == E_OFF_GRID and not self.venue and venue == VENUE_LINEAR:
            hint = " (if this is a spot recording, pass venue bybit-spot)"
        self.problem(code, f"{exc}{hint}")

    def _units_for(self, symbol: str, venue: str, sample: Any) -> Units:
        if not symbol:
            raise LineError(E_BAD_LINE, "topic without a symbol")
        return self._units.get(symbol) or self.units(symbol, venue, sample)

    def _on_book(self, obj: dict[str, Any], symbol: str, depth_s: str, recv: int, venue: str) -> Event | None:
        try:
            depth = int(depth_s)
        except ValueError:
            raise LineError(E_BAD_LINE, f"bad orderbook topic depth {depth_s!r}") from None
        data = obj["data"]
        typ = obj["type"]
        u = data["u"]
        if type(u) is not int:
            raise LineError(E_BAD_VALUE, f"update id u must be an integer, got {u!r}")
        push_ms = obj["ts"]
        ts = (obj.get("cts") or push_ms) * MS
        if not recv:
            recv = push_ms * MS
        if depth > 1:
            book_depth = self._book_depth.setdefault(symbol, depth)
            if book_depth != depth:
                self.src.ignored[f"orderbook.{depth} (book is orderbook.{book_depth})"] += 1
                return None
        key = (symbol, depth)
        bk = self._books.get(key)
        if bk is None:
            def sample() -> list[tuple[list[str], list[str]]]:
                lv = list(data.get("b", [])) + list(data.get("a", []))
                return [([x[0] for x in lv], [x[1] for x in lv])]

            bk = self._books[key] = _Book(symbol, depth, self._units_for(symbol, venue, sample))
        self.src.symbols.add(symbol)
        units = bk.units
        px, qty = units.px.__getitem__, units.qty.__getitem__
        src = self.src
        if typ == "snapshot":
            bids = tuple([(px(lv[0]), qty(lv[1])) for lv in data["b"]])
            asks = tuple([(px(lv[0]), qty(lv[1])) for lv in data["a"]])
            bids = tuple([lv for lv in bids if lv[1]])
            asks = tuple([lv for lv in asks if lv[1]])
            tracker = bk.tracker
            tracker.reset(bids, asks)
            if tracker.crossed():
                tracker.reset((), ())
                bk.mode = STALE
                raise LineError(E_CROSSED_BOOK, f"{symbol} orderbook.{depth} snapshot u={u} is crossed")
            bk.mode = LIVE
            bk.last_u = u
            if depth == 1:
                return self._quote(bk, ts, recv)
            if not self.in_order(symbol, "book", ts):
                return None
            src.snapshots += 1
            src.skew(recv - ts)
            return self.counted(make_book_snapshot(ts, recv, symbol, bids, asks))
        if typ != "delta":
            raise LineError(E_BAD_LINE, f"unknown orderbook message type {typ!r}")
        if bk.mode != LIVE:
            src.dropped["before_snapshot" if bk.mode == INIT else "stale"] += 1
            return None
        if u != bk.last_u + 1:
            if u <= bk.last_u:
                src.dropped["duplicate"] += 1
                return None
            ev = self.gap(symbol, bk.last_u + 1, u, ts, recv, f"orderbook.{depth}")
            bk.mode = STALE
            src.events["seq_gap"] += 1
            return ev
        bids = tuple([(px(lv[0]), qty(lv[1])) for lv in data["b"]])
        asks = tuple([(px(lv[0]), qty(lv[1])) for lv in data["a"]])
        if depth > 1 and not self.in_order(symbol, "book", ts):
            return None  # last_u unchanged: the next delta reports the gap
        # a refused delta leaves last_u as it was: the next delta reports the gap and the book
        # stays stale until a snapshot, so the tracker need not be rolled back
        if bk.tracker.apply(bids, asks):
            raise LineError(E_CROSSED_BOOK, f"{symbol} orderbook.{depth} crossed after delta u={u}")
        bk.last_u = u
        if depth == 1:
            return self._quote(bk, ts, recv)
        src.skew(recv - ts)
        return self.counted(make_book_delta(ts, recv, symbol, bids, asks))

    def _quote(self, bk: _Book, ts: int, recv: int) -> Event | None:
        t = bk.tracker
        bb, ba = t.best_bid(), t.best_ask()
        if bb is None or ba is None:
            self.src.ignored["one_sided_quote"] += 1
            return None
        if not self.in_order(bk.symbol, "quote", ts):
            return None
        self.src.skew(recv - ts)
        return self.counted(make_quote(ts, recv, bk.symbol, bb, t.bids[bb], ba, t.asks[ba]))

    def _on_trades(self, obj: dict[str, Any], symbol: str, recv: int, venue: str) -> list[Event] | None:
        trades = obj["data"]
        if type(trades) is not list:
            raise LineError(E_BAD_LINE, "publicTrade data is not a list")
        if not recv:
            recv = obj["ts"] * MS
        out: list[Event] = []
        for tr in trades:
            sym = tr.get("s") or symbol
            units = self._units.get(sym) or self._units_for(sym, venue, lambda tr=tr: [([tr["p"]], [tr["v"]])])
            side = SIDES.get(tr["S"])
            if side is None:
                raise LineError(E_BAD_VALUE, f"trade side must be Buy or Sell, got {tr['S']!r}")
            price, qty = units.px[tr["p"]], units.qty[tr["v"]]
            ts = tr["T"] * MS
            if not self.in_order(sym, "trade", ts):
                continue
            self.src.skew(recv - ts)
            out.append(self.counted(make_trade(ts, recv, sym, side, price, qty)))
        return out

    # ------------------------------------------------------------------ trade history CSV
    def _read_csv(self, lines: Iterable[str]) -> Iterator[Event]:
        src = self.src
        src.recv_clock = "exchange"
        want = self.symbol
        no = 0
        cols: dict[str, int] = {}
        n_cols = 0
        spot = False
        name_symbol = None
        m = _NAME_SYMBOL.search(self.path.replace("\\", "/").rsplit("/", 1)[-1].upper())
        if m:
            name_symbol = m.group(1)
        for line in lines:
            no += 1
            self.line_no = no
            if not cols:
                if not line.strip():
                    continue
                header = line.lstrip("\ufeff").strip().split(",")
                cols = {h.strip(): i for i, h in enumerate(header)}
                n_cols = len(header)
                spot = "volume" in cols and "size" not in cols
                src.venue = self.venue or (VENUE_SPOT if spot else VENUE_LINEAR)
                missing = [c for c in ("timestamp", "side", "price") if c not in cols] + ([] if ("size" in cols or "volume" in cols) else ["size"])
                if missing:
                    raise MmkitError(E_BAD_LINE, f"{self.where()}: Bybit trade history header lacks columns {missing}")
                i_ts, i_side, i_px = cols["timestamp"], cols["side"], cols["price"]
                i_qty = cols["size"] if "size" in cols else cols["volume"]
                i_sym = cols.get("symbol")
                continue
            if not line.strip():
                continue
            try:
                f = line.rstrip("\r\n").split(",")
                if len(f) != n_cols:
                    raise LineError(E_BAD_LINE, f"expected {n_cols} columns, got {len(f)}")
                symbol = f[i_sym] if i_sym is not None else name_symbol
                if not symbol:
                    raise LineError(E_BAD_LINE, "no symbol column and the file name does not name one")
                if want is not None and symbol != want:
                    src.ignored["other_symbol"] += 1
                    continue
                units = self._units.get(symbol) or self._units_for(symbol, src.venue, lambda f=f: [([f[i_px]], [f[i_qty]])])
                t = f[i_ts]
                if "." in t or len(t) <= 11:
                    ts = decimal_to_ns(t, 0)  # seconds with a fraction
                else:
                    ts = decimal_to_ns(t, -3)  # milliseconds
                side = SIDES.get(f[i_side])
                if side is None:
                    raise LineError(E_BAD_VALUE, f"side must be Buy or Sell, got {f[i_side]!r}")
                price, qty = units.px[f[i_px]], units.qty[f[i_qty]]
                if not self.in_order(symbol, "trade", ts, " (trade history must be in ascending time order)"):
                    continue
            except LineError as exc:
                self.problem(exc.code, exc.detail)
                continue
            except GridError as exc:
                self.problem(grid_code(exc), str(exc))
                continue
            yield self.counted(make_trade(ts, ts, symbol, side, price, qty))
        src.lines = no

