"""Tardis.dev downloadable CSV datasets -> normalized events.

Tardis exports each exchange's real-time feed as daily CSV files (usually ``.csv.gz``), one
per exchange, data type and symbol.  Common columns: ``exchange`` (Tardis exchange id, used
as the instrument registry's venue), ``symbol``, ``timestamp`` (exchange time) and
``local_timestamp`` (Tardis's receive time), both in MICROseconds since the epoch; they
become ``ts`` and ``recv_ts`` in ns.  The data type is recognized from the header:

- ``incremental_book_L2`` (``is_snapshot,side,price,amount``): rows of one message share a
  ``local_timestamp``; consecutive rows with the same times form one ``BookDelta``.
  ``amount`` is the new absolute size at that price (0 deletes).  Consecutive
  ``is_snapshot=true`` rows form one ``BookSnapshot``; a snapshot after updates replaces the
  whole book.  Updates before the first snapshot are dropped (counted), as Tardis advises.
- ``book_snapshot_N`` (``asks[0].price,asks[0].amount,bids[0].price,...``): each row is a
  top-N ``BookSnapshot`` (empty cells: fewer levels).
- ``quotes`` (``ask_amount,ask_price,bid_price,bid_amount``): ``Quote``; a row with an empty
  side is skipped (counted as ignored).
- ``trades`` (``id,side,price,amount``): ``Trade``; ``side`` is the taker's side; rows with
  side ``unknown`` are ignored (counted).

Tardis CSVs carry no sequence numbers, so no gaps can be detected; the reader still checks
that times do not run backwards, sizes are not negative and updates do not cross the book
(an update refused under on_error='skip' is undone, so the book stays consistent).
Inverse contracts (Deribit, BitMEX, Huobi swaps) report ``amount`` in USD or contracts, as
their registry entries say.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from mmkit.core.events import BUY, SELL, Event, make_book_delta, make_book_snapshot, make_quote, make_trade
from mmkit.core.instruments import GridError
from mmkit.data.readers import (
    E_BAD_LINE,
    E_CROSSED_BOOK,
    E_OUT_OF_ORDER,
    BaseReader,
    BookTracker,
    LineError,
    Units,
    grid_code,
)
from mmkit.errors import MmkitError

US = 1000  # microseconds -> ns
SIDES = {"buy": BUY, "sell": SELL}
BOOK_SIDES = {"bid": 1, "ask": -1}
COMMON = ("exchange", "symbol", "timestamp", "local_timestamp")


def data_type(header: list[str]) -> str:
    """The Tardis data type a CSV header belongs to, or '' if it is not a supported one."""
    cols = set(header)
    if not set(COMMON) <= cols:
        return ""
    if {"is_snapshot", "side", "price", "amount"} <= cols:
        return "incremental_book_L2"
    if "asks[0].price" in cols and "bids[0].price" in cols:
        n = sum(1 for c in header if c.startswith("asks[") and c.endswith("].price"))
        return f"book_snapshot_{n}"
    if {"ask_amount", "ask_price", "bid_price", "bid_amount"} <= cols:
        return "quotes"
    if {"id", "side", "price", "amount"} <= cols:
        return "trades"
    return ""


class _Sym:
    __slots__ = ("units", "tracker", "synced", "last_book_ts", "last_trade_ts", "last_quote_ts")

    def __init__(self, units: Units) -> None:
        self.units = units
        self.tracker = BookTracker()
        self.synced = False
        self.last_book_ts = 0
        self.last_trade_ts = 0
        self.last_quote_ts = 0


def _int_us(text: str, what: str) -> int:
    if not text.isdigit() or not text.isascii():
        raise LineError(E_BAD_LINE, f"{what} must be an integer number of microseconds, got {text[:30]!r}")
    return int(text) * US


class TardisReader(BaseReader):
    """Reads Tardis CSV files (one data type per file; files of one recording in order)."""

    fmt = "tardis"

    def __init__(self, paths: Iterable[Any], **kw: Any) -> None:
        super().__init__(paths, **kw)
        self._syms: dict[str, _Sym] = {}
        self._last_recv = 0

    def _sym(self, venue: str, symbol: str, sample: Any) -> _Sym:
        st = self._syms.get(symbol)
        if st is None:
            if not symbol:
                raise LineError(E_BAD_LINE, "empty symbol")
            st = self._syms[symbol] = _Sym(self.units(symbol, self.venue or venue, sample))
        else:
            self.src.symbols.add(symbol)
        return st

    def _read(self, lines: Iterable[str]) -> Iterator[Event]:
        src = self.src
        src.recv_clock = "local"
        it = iter(lines)
        header: list[str] = []
        no = 0
        for line in it:
            no += 1
            if line.strip():
                header = [h.strip() for h in line.lstrip("\ufeff").strip().split(",")]
                break
        self.line_no = no
        kind = data_type(header)
        if not kind:
            raise MmkitError("E_DATA_UNKNOWN_FORMAT",
                             f"{self.where()}: not a supported Tardis CSV header ({','.join(header[:8])}...); "
                             "supported data types: incremental_book_L2, trades, quotes, book_snapshot_N")
        src.fmt = f"tardis:{kind}"
        cols = {h: i for i, h in enumerate(header)}
        rows = self._rows(it, len(header), no)
        if kind == "incremental_book_L2":
            yield from self._incremental(rows, cols)
        elif kind == "trades":
            yield from self._trades(rows, cols)
        elif kind == "quotes":
            yield from self._quotes(rows, cols)
        else:
            yield from self._snapshots(rows, cols, int(kind.rsplit("_", 1)[1]))

    def _rows(self, it: Iterator[str], n_cols: int, no: int) -> Iterator[list[str]]:
        """Split rows, check the column count and the receive-time order; count lines."""
        src = self.src
        for line in it:
            no += 1
            self.line_no = no
            src.lines = no
            if not line.strip():
                continue
            f = line.rstrip("\r\n").split(",")
            if len(f) != n_cols:
                self.problem(E_BAD_LINE, f"expected {n_cols} columns, got {len(f)}")
                continue
            yield f
        src.lines = no

    def _times(self, f: list[str]) -> tuple[int, int]:
        ts = _int_us(f[2], "timestamp")
        recv = _int_us(f[3], "local_timestamp")
        if recv < self._last_recv:
            raise LineError(E_OUT_OF_ORDER, f"local_timestamp goes backwards: {f[3]} after {self._last_recv // US}")
        self._last_recv = recv
        return ts, recv

    def _bad(self, exc: Exception) -> None:
        if isinstance(exc, LineError):
            self.problem(exc.code, exc.detail)
        elif isinstance(exc, GridError):
            self.problem(grid_code(exc), str(exc))
        else:
            self.problem(E_BAD_LINE, f"malformed row ({type(exc).__name__}: {exc})")

    # ------------------------------------------------------------------ incremental_book_L2
    def _incremental(self, rows: Iterator[list[str]], cols: dict[str, int]) -> Iterator[Event]:
        i_snap, i_side, i_px, i_amt = cols["is_snapshot"], cols["side"], cols["price"], cols["amount"]
        want = self.symbol
        key: tuple[Any, ...] | None = None
        group: list[tuple[int, int, int]] = []  # (side, px, qty)
        g_sym = ""
        g_ts = g_recv = g_line = 0
        g_snap = False
        for f in rows:
            try:
                symbol = f[1]
                if want is not None and symbol != want:
                    self.src.ignored["other_symbol"] += 1
                    continue
                ts, recv = self._times(f)
                flag = f[i_snap]
                if flag not in ("true", "false"):
                    raise LineError(E_BAD_LINE, f"is_snapshot must be true or false, got {flag[:20]!r}")
                snap = flag == "true"
                side = BOOK_SIDES.get(f[i_side])
                if side is None:
                    raise LineError(E_BAD_LINE, f"side must be bid or ask, got {f[i_side][:20]!r}")
                st = self._syms.get(symbol) or self._sym(f[0], symbol, lambda f=f: [([f[i_px]], [f[i_amt]])])
                px, qty = st.units.px[f[i_px]], st.units.qty[f[i_amt]]
            except (LineError, GridError, ValueError, IndexError) as exc:
                if group:  # the message so far is complete as far as this reader can tell
                    ev = self._flush_book(g_sym, g_snap, g_ts, g_recv, group, g_line)
                    key, group = None, []
                    if ev is not None:
                        yield ev
                self._bad(exc)
                continue
            k = (symbol, True) if snap else (symbol, False, ts, recv)
            if k != key:
                if group:
                    ev = self._flush_book(g_sym, g_snap, g_ts, g_recv, group, g_line)
                    if ev is not None:
                        yield ev
                key, group, g_sym, g_snap, g_ts, g_recv = k, [], symbol, snap, ts, recv
            group.append((side, px, qty))
            g_line = self.line_no
        if group:
            ev = self._flush_book(g_sym, g_snap, g_ts, g_recv, group, g_line)
            if ev is not None:
                yield ev

    def _flush_book(self, symbol: str, snap: bool, ts: int, recv: int, group: list[tuple[int, int, int]],
                    line_no: int) -> Event | None:
        """One message's rows -> a snapshot or delta; problems are reported at its last row."""
        here = self.line_no
        self.line_no = line_no
        try:
            return self._book_event(symbol, snap, ts, recv, group)
        finally:
            self.line_no = here

    def _book_event(self, symbol: str, snap: bool, ts: int, recv: int, group: list[tuple[int, int, int]]) -> Event | None:
        st = self._syms[symbol]
        src = self.src
        bids = tuple([(p, q) for s, p, q in group if s > 0])
        asks = tuple([(p, q) for s, p, q in group if s < 0])
        try:
            if ts < st.last_book_ts:
                raise LineError(E_OUT_OF_ORDER, f"{symbol} book time goes backwards: {ts} after {st.last_book_ts} (ns)")
            tracker = st.tracker
            if snap:
                bids = tuple([lv for lv in bids if lv[1]])
                asks = tuple([lv for lv in asks if lv[1]])
                tracker.reset(bids, asks)
                if tracker.crossed():
                    tracker.reset((), ())
                    st.synced = False
                    raise LineError(E_CROSSED_BOOK, f"{symbol} snapshot is crossed")
                st.synced = True
                st.last_book_ts = ts
                src.snapshots += 1
                src.skew(recv - ts)
                return self.counted(make_book_snapshot(ts, recv, symbol, bids, asks))
            if not st.synced:
                src.dropped["before_snapshot"] += 1
                return None
            crossed, old = tracker.apply_logged(bids, asks)
            if crossed:
                tracker.undo(bids, asks, old)
                raise LineError(E_CROSSED_BOOK, f"{symbol} book crossed after the update at local_timestamp {recv // US}")
        except LineError as exc:
            self.problem(exc.code, exc.detail)
            return None
        st.last_book_ts = ts
        src.skew(recv - ts)
        return self.counted(make_book_delta(ts, recv, symbol, bids, asks))

    # ------------------------------------------------------------------ book_snapshot_N
    def _snapshots(self, rows: Iterator[list[str]], cols: dict[str, int], depth: int) -> Iterator[Event]:
        idx = [(cols[f"bids[{i}].price"], cols[f"bids[{i}].amount"], cols[f"asks[{i}].price"], cols[f"asks[{i}].amount"])
               for i in range(depth) if f"bids[{i}].price" in cols and f"asks[{i}].price" in cols]
        want = self.symbol
        src = self.src
        for f in rows:
            try:
                symbol = f[1]
                if want is not None and symbol != want:
                    src.ignored["other_symbol"] += 1
                    continue
                ts, recv = self._times(f)
                st = self._syms.get(symbol) or self._sym(
                    f[0], symbol, lambda f=f: [([f[i] for i in (a, c) if f[i]], [f[i] for i in (b, d) if f[i]]) for a, b, c, d in idx])
                px, qty = st.units.px, st.units.qty
                bids = tuple([(px[f[a]], qty[f[b]]) for a, b, _, _ in idx if f[a]])
                asks = tuple([(px[f[c]], qty[f[d]]) for _, _, c, d in idx if f[c]])
                bids = tuple([lv for lv in bids if lv[1]])
                asks = tuple([lv for lv in asks if lv[1]])
                if bids and asks and max(p for p, _ in bids) >= min(p for p, _ in asks):
                    raise LineError(E_CROSSED_BOOK, f"{symbol} book snapshot is crossed")
                if ts < st.last_book_ts:
                    raise LineError(E_OUT_OF_ORDER, f"{symbol} book time goes backwards: {ts} after {st.last_book_ts} (ns)")
            except (LineError, GridError, ValueError, IndexError) as exc:
                self._bad(exc)
                continue
            st.last_book_ts = ts
            src.snapshots += 1
            src.skew(recv - ts)
            yield self.counted(make_book_snapshot(ts, recv, symbol, bids, asks))

    # ------------------------------------------------------------------ quotes
    def _quotes(self, rows: Iterator[list[str]], cols: dict[str, int]) -> Iterator[Event]:
        i_ap, i_aq, i_bp, i_bq = cols["ask_price"], cols["ask_amount"], cols["bid_price"], cols["bid_amount"]
        want = self.symbol
        src = self.src
        for f in rows:
            try:
                symbol = f[1]
                if want is not None and symbol != want:
                    src.ignored["other_symbol"] += 1
                    continue
                ts, recv = self._times(f)
                if not (f[i_ap] and f[i_aq] and f[i_bp] and f[i_bq]):
                    src.ignored["one_sided_quote"] += 1
                    continue
                st = self._syms.get(symbol) or self._sym(f[0], symbol, lambda f=f: [([f[i_ap], f[i_bp]], [f[i_aq], f[i_bq]])])
                px, qty = st.units.px, st.units.qty
                bp, ap = px[f[i_bp]], px[f[i_ap]]
                bq, aq = qty[f[i_bq]], qty[f[i_aq]]
                if bp >= ap:
                    raise LineError(E_CROSSED_BOOK, f"{symbol} quote bid {f[i_bp]} >= ask {f[i_ap]}")
                if ts < st.last_quote_ts:
                    raise LineError(E_OUT_OF_ORDER, f"{symbol} quote time goes backwards: {ts} after {st.last_quote_ts} (ns)")
            except (LineError, GridError, ValueError, IndexError) as exc:
                self._bad(exc)
                continue
            st.last_quote_ts = ts
            src.skew(recv - ts)
            yield self.counted(make_quote(ts, recv, symbol, bp, bq, ap, aq))

    # ------------------------------------------------------------------ trades
    def _trades(self, rows: Iterator[list[str]], cols: dict[str, int]) -> Iterator[Event]:
        i_side, i_px, i_amt = cols["side"], cols["price"], cols["amount"]
        want = self.symbol
        src = self.src
        for f in rows:
            try:
                symbol = f[1]
                if want is not None and symbol != want:
                    src.ignored["other_symbol"] += 1
                    continue
                ts, recv = self._times(f)
                side = SIDES.get(f[i_side])
                if side is None:
                    if f[i_side] == "unknown":
                        src.ignored["unknown_side"] += 1
                        continue
                    raise LineError(E_BAD_LINE, f"side must be buy, sell or unknown, got {f[i_side][:20]!r}")
                st = self._syms.get(symbol) or self._sym(f[0], symbol, lambda f=f: [([f[i_px]], [f[i_amt]])])
                price, qty = st.units.px[f[i_px]], st.units.qty[f[i_amt]]
                if ts < st.last_trade_ts:
                    raise LineError(E_OUT_OF_ORDER, f"{symbol} trade time goes backwards: {ts} after {st.last_trade_ts} (ns)")
            except (LineError, GridError, ValueError, IndexError) as exc:
                self._bad(exc)
                continue
            st.last_trade_ts = ts
            src.skew(recv - ts)
            yield self.counted(make_trade(ts, recv, symbol, side, price, qty))

