"""The one engine loop: market events -> book and signals -> strategy -> order manager ->
venue -> reports -> ledger, for backtest, sim and live alike (DESIGN.md section 6).

Two clocks run side by side.  The *exchange* side sees every market event at its
exchange time ``ts`` and our actions when they arrive (send time + entry latency); the
fill simulator lives there.  The *local* side, where the strategy lives, sees a market
event only at its local receive time and a venue report only after the response
latency.  Local time is ``recv_ts - clock_shift_ns``: recorders' clocks are often offset
from the exchange's, and the driver chooses the shift (``feed_clock: auto`` makes the
smallest feed latency of the stream 0).  Both sides share one timeline, and the loop
always handles the earliest pending thing next, so a cancel can lose the race against a
fill exactly as it would on a venue.

Decisions happen on a timer in local time: the first local book change at or after
``next_decision`` runs the strategy for that symbol (``decision_interval_ms = 0`` decides
on every book change).  A stale book (sequence gap) cancels the symbol's orders and
quotes nothing until the next snapshot.

The engine is pure: no I/O, no clock, randomness only inside the venue it is given.
Everything it produced is in ``EngineResult``; the research layer turns that into reports.

``feed_rows`` is ``feed`` over a columnar source (the cache), with the loop compiled
(``mmkit.core._fastfeed``): the steps that only move book, queue, signal and mark state,
a print's walk through the queues at our prices, the reports' move to the engine's heap,
a decision's own steps around the strategy (and the stock ``fixed`` strategy itself), and
an order's common life (the cancel_replace reconcile with the stock gates, the send, the
simulator's arrival, the ack or cancel confirmation) run in C on the same Python objects
(the books native, ``NativeL2Book``); fills, with their exact fee and ledger entry, stay in
Python.  Every other step
calls the Python method ``feed`` would call (``_STOCK`` lists the mirrored ones: a patched
one runs in Python), so there is one implementation of each rule and the results are
byte-identical (tests/research/test_feed_rows.py runs every scenario both ways).
"""

from __future__ import annotations

import heapq
from collections import deque
from decimal import Context, Decimal, Inexact, Rounded
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from operator import attrgetter
from typing import Any, Protocol

from mmkit.core.allocator import Allocation, Allocator, AllocatorInputs, SymbolInputs
from mmkit.core.book import L2Book, NativeL2Book
from mmkit.core.events import BookDelta, BookSnapshot, Quote, SeqGap, Trade
from mmkit.core import fillsim as fillsim_mod
from mmkit.core import orders as orders_mod
from mmkit.core import stats as stats_mod
from mmkit.core.fillsim import FillSimulator
from mmkit.core.gates import GateChain
from mmkit.core.instruments import Instrument
from mmkit.core.latency import ConstantLatency
from mmkit.core.ledger import Ledger
from mmkit.core.orders import Budget, OrderManager
from mmkit.core.queue import OptimisticQueue, ProbQueue, RiskAverseQueue
from mmkit.core.circuit import CLOSED, CircuitBreaker
from mmkit.core.risk import KillSwitch, PositionBook
from mmkit.core.throttle import Throttle
from mmkit.core.signals import LN2, MarkoutTracker, SymbolSignals, make_signal_snapshot
from mmkit.core.stats import OrderRecord, make_order_record
from mmkit.core.strategy import FixedStrategy, Strategy, make_desired_quote, make_quote_context
from mmkit.core.types import (
    OP_CANCEL,
    OP_CREATE,
    Ack,
    Action,
    Canceled,
    CancelOrder,
    CreateOrder,
    Fill,
    OrderState,
    Reject,
    VenueReport,
)

NS_PER_MS = 1_000_000

try:  # Engine.feed over cache rows, the common steps in C (setup.py builds it; optional)
    from mmkit.core._fastfeed import run as _compiled_feed_rows
except ImportError:  # pragma: no cover - a build without a C compiler
    _compiled_feed_rows = None

_feed_rows = _compiled_feed_rows


def use_compiled(flag: bool) -> bool:
    """Turn ``Engine.feed_rows``'s compiled loop on or off for this process (on by default
    when it is built; ``mmkit`` turns it off when ``MMKIT_PURE_PYTHON=1``).  Returns
    whether it is now active."""
    global _feed_rows
    _feed_rows = _compiled_feed_rows if flag else None
    return _feed_rows is not None


@dataclass(frozen=True, slots=True)
class Rows:
    """Market events as columns (the cache's layout, ``data.cache``): ``columns`` are the 8
    event columns (kind b, sym H, ts q, recv_ts q, a..d q), ``levels`` the level price and
    size columns, ``symbols`` the symbol of each ``sym`` id, ``event(i)`` row ``i`` as an
    event object (it raises the source's own error for a row that is not one)."""

    columns: tuple[Any, ...]
    levels: tuple[Any, Any]
    symbols: tuple[str, ...]
    event: Callable[[int], object]


class Venue(Protocol):
    """What the engine needs from an execution venue in event time (the fill simulator,
    the replay venue): accept actions, say when the next one reaches the exchange, process
    arrivals and market events, and hand back reports with their local delivery time."""

    def submit(self, action: Action, send_local_ns: int) -> int: ...

    def next_arrival_ns(self) -> int | None: ...

    def process_arrivals(self, until_ns: int) -> None: ...

    def on_market(self, event: object) -> None: ...

    def drain_reports(self) -> list[tuple[int, VenueReport]]: ...


@dataclass(frozen=True, slots=True)
class EngineParams:
    """Loop settings.  ``clock_shift_ns`` maps receive time to local time (see module doc);
    ``equity_interval_ms`` is the ledger's sampling step; ``cancel_on_stale`` pulls a
    symbol's orders when its book goes stale."""

    decision_interval_ms: int = 100
    clock_shift_ns: int = 0
    equity_interval_ms: int = 1000
    cancel_on_stale: bool = True


@dataclass(slots=True)
class SymbolRuntime:
    """Everything the local side keeps per symbol."""

    symbol: str
    instrument: Instrument
    book: L2Book
    signals: SymbolSignals
    strategy: Strategy
    orders: OrderManager
    budget: Budget
    target_usd_per_side: float
    max_levels: int
    next_decision_ns: int = 0
    decisions: int = 0
    last_mid2: int = 0


@dataclass(slots=True)
class EngineCounters:
    events: int = 0
    book_events: int = 0
    trades: int = 0
    decisions: int = 0
    actions: int = 0
    creates: int = 0
    amends: int = 0
    cancels: int = 0
    reports: int = 0
    fills: int = 0
    rejects: int = 0
    stale_cancels: int = 0
    skipped_decisions: int = 0
    rebalances: int = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class FlattenOrder:
    """What ``Engine.flatten`` did for one symbol.  ``sent`` is True when a crossing order
    went out (``client_id``, ``side``, ``price`` in ticks, ``qty`` in lots); otherwise
    ``why`` says why not: ``"flat"`` (no position), ``"empty book side"``, or the reason of
    the gate that refused it."""

    symbol: str
    before_lots: int
    sent: bool
    side: int = 0
    price: int | None = None
    qty: int = 0
    client_id: str | None = None
    why: str | None = None


@dataclass(slots=True)
class EngineResult:
    """What one run produced; the research layer renders reports from it."""

    ledger: Ledger
    orders: list[OrderRecord]
    fills: list[Fill]
    counters: EngineCounters
    start_ns: int
    end_ns: int
    clock_shift_ns: int
    runtimes: dict[str, SymbolRuntime]
    guard_events: list[Any] = field(default_factory=list)
    order_trace: list[dict[str, Any]] = field(default_factory=list)


class Engine:
    """Drive one stream of market events through the trading core and a venue.

    The components are built by the caller (``research.backtest`` maps a config to them),
    so tests can assemble an engine from hand-made parts.  ``on_fill`` hooks (risk books,
    allocator turnover, metrics) run after the ledger booked a fill.
    """

    # slots: the compiled loop reads and writes ``_now`` on every event
    __slots__ = ("rt", "venue", "ledger", "params", "gates", "positions", "maker_fee_bps", "taker_fee_bps",
                 "trace_orders", "on_fill_hooks", "allocator", "allocations", "counters", "interval_ns", "shift",
                 "_local", "_reports", "_seq", "_records", "_live", "_replaces", "_fills", "_trace", "_now", "_start",
                 "_last_ts", "_started", "_row_event", "paused", "pause_reason", "_lot_usd")

    def __init__(
        self,
        runtimes: Mapping[str, SymbolRuntime],
        venue: Venue,
        ledger: Ledger,
        params: EngineParams = EngineParams(),
        gates: GateChain | None = None,
        positions: PositionBook | None = None,
        maker_fee_bps: float = 0.0,
        taker_fee_bps: float = 0.0,
        trace_orders: bool = False,
        on_fill: Sequence[Callable[[Fill], None]] = (),
        allocator: Allocator | None = None,
    ) -> None:
        self.rt = dict(runtimes)
        self.venue = venue
        self.ledger = ledger
        self.params = params
        self.gates = gates
        self.positions = positions
        self.maker_fee_bps = maker_fee_bps
        self.taker_fee_bps = taker_fee_bps
        self.trace_orders = trace_orders
        self.on_fill_hooks = list(on_fill)
        self.allocator = allocator
        self.allocations: list[Allocation] = []
        self.counters = EngineCounters()
        self.interval_ns = max(0, int(params.decision_interval_ms)) * NS_PER_MS
        self.shift = int(params.clock_shift_ns)
        self._local: deque[tuple[int, object]] = deque()   # market events awaiting local delivery (FIFO by local time)
        self._reports: list[tuple[int, int, VenueReport]] = []  # heap of (delivery, seq, report)
        self._seq = 0
        self._records: dict[str, OrderRecord] = {}
        self._live: dict[str, tuple[str, int, int, int]] = {}  # client_id -> (symbol, side, created_ns, qty)
        self._replaces: dict[str, int] = {}
        self._lot_usd: dict[str, tuple[int, float]] = {}  # symbol -> (mid ticks, USD per lot there)
        self._fills: list[Fill] = []
        self._trace: list[dict[str, Any]] = []
        self._now = 0
        self._start = 0
        self._last_ts = 0
        self._started = False
        self._row_event: Callable[[int], object] = _no_rows
        self.paused = False
        self.pause_reason = ""

    # ------------------------------------------------------------------ the loop
    def run(self, events: Iterable[object]) -> EngineResult:
        """Consume every event, then close: the backtest's whole life in one call."""
        self.feed(events)
        return self.close()

    def feed(self, events: Iterable[object]) -> int:
        """Consume ``events`` (exchange-time order per channel, as the readers emit them);
        may be called many times (the live service feeds one batch per wall-clock tick).
        Returns how many events were consumed.

        Per event: hand over everything due at or before its ``ts`` (``_advance``), show
        the event to the venue, then queue it for local delivery at ``recv_ts - shift``.

        Fast path (same order as ``_advance``, which stays the reference): usually the
        only thing due is the head of the local FIFO, so the loop delivers it itself while
        no exchange arrival and no report is due at or before the head's time (ties go
        to arrivals, then reports), and calls ``_advance`` only when one of those is due by
        ``ts``.  After that nothing is due by ``ts``, so the venue's own arrival check in
        ``on_market`` finds nothing either.  Methods are bound to locals once.
        """
        venue = self.venue
        local = self._local
        reports = self._reports
        shift = self.shift
        next_arrival = venue.next_arrival_ns
        on_market = venue.on_market
        drain = venue.drain_reports
        advance = self._advance
        deliver = self._on_local_market
        pop_local = local.popleft
        push_local = local.append
        n = 0
        last_ts = self._last_ts
        started = self._started
        try:
            for ev in events:
                ts = ev.ts  # type: ignore[attr-defined]
                if not started:
                    started = self._started = True
                    self._start = self._now = ev.recv_ts - shift  # type: ignore[attr-defined]
                n += 1
                while local:
                    when = local[0][0]
                    if when > ts:
                        break
                    t_arr = next_arrival()
                    if (t_arr is not None and t_arr <= when) or (reports and reports[0][0] <= when):
                        break  # an arrival or a report goes first: the general scheduler
                    lev = pop_local()[1]
                    if when > self._now:
                        self._now = when
                    deliver(lev, self._now)
                t_arr = next_arrival()
                if (t_arr is not None and t_arr <= ts) or (reports and reports[0][0] <= ts):
                    advance(ts)
                on_market(ev)
                out = drain()
                if out:
                    self._push_reports(out)
                push_local((ev.recv_ts - shift, ev))  # type: ignore[attr-defined]
                if ts > last_ts:
                    last_ts = ts
        finally:
            self.counters.events += n
            self._last_ts = last_ts
        return n

    def row_feed_supported(self) -> bool:
        """Whether ``feed_rows`` can run its compiled loop here: the module is built and
        active, and the parts are the ones it mirrors (this ``Engine``, the
        ``FillSimulator``, ``L2Book`` or ``NativeL2Book`` and ``SymbolSignals`` per symbol,
        the ``Ledger``)."""
        if _feed_rows is None or type(self) is not Engine or type(self.venue) is not FillSimulator:
            return False
        if type(self.ledger) is not Ledger or not set(self.rt) <= set(self.ledger._books):
            return False
        books = (L2Book, NativeL2Book)
        return all(type(rt.book) in books and type(rt.signals) is SymbolSignals and rt.book.symbol == sym == rt.symbol
                   for sym, rt in self.rt.items()) and all(type(st.book) in books for st in self.venue._syms.values())

    def _native_books(self) -> None:
        """Every book (each runtime's and the simulator's) as a ``NativeL2Book``: the
        compiled loop updates those in place.  A dict-backed book is copied, levels,
        counters and flags included, and replaced; later readers get the copy through
        ``rt.book`` and ``FillSimulator.book``."""
        for rt in self.rt.values():
            if type(rt.book) is not NativeL2Book:
                rt.book = NativeL2Book.from_book(rt.book)
        for st in self.venue._syms.values():  # type: ignore[attr-defined]
            if type(st.book) is not NativeL2Book:
                st.book = NativeL2Book.from_book(st.book)

    def feed_rows(self, rows: Rows, lo: int, hi: int) -> int:
        """``feed`` for rows ``lo..hi-1`` of a columnar source, with the same effects and
        results, in one compiled loop (``mmkit.core._fastfeed``): the common steps run there
        (docs/backtest.md lists them), every other step calls the same Python method
        ``feed`` would.  Needs ``row_feed_supported()``.  Rows still queued for local delivery stay
        in the local FIFO as row numbers and are rebuilt with ``rows.event`` when delivered,
        so the source must stay readable until ``close``.  The books become
        ``NativeL2Book``s on the first call (``_native_books``): same contents and reads,
        levels in C the loop updates without Python objects.  Returns how many rows
        were fed."""
        if not self.row_feed_supported():
            raise RuntimeError("feed_rows needs the compiled engine loop and the stock components")
        self._native_books()
        self._row_event = rows.event
        n = 0
        if lo < hi and not self._started:
            n += self.feed((rows.event(lo),))
            lo += 1
        if lo >= hi:
            return n
        sim: Any = self.venue
        ids = {sym: i for i, sym in enumerate(rows.symbols)}
        runtimes: list[Any] = [None] * len(rows.symbols)
        sims: list[Any] = [None] * len(rows.symbols)
        books = self.ledger._books
        for sym, i in ids.items():
            rt = self.rt.get(sym)
            if rt is not None:
                runtimes[i] = (rt, rt.book, rt.signals, books[sym], _stock_orders(rt.orders), _fixed_terms(rt),
                               _lot_unit(rt.instrument))
            sims[i] = sim._syms.get(sym)
        # the loop mirrors _decide's own steps and SymbolSignals.snapshot (and reconcile's
        # fast path per stock order manager): only while those are the stock methods
        stock_decide = _stock(Engine, "_decide", "_mark_positions") and _stock(SymbolSignals, "snapshot")
        cross = (2 if _stock(FillSimulator, "_check_cross") else 1) if sim._cross_fills else 0
        ctx = (tuple(runtimes), tuple(sims), rows.event, self.shift, self.interval_ns, cross,
               self._local, self._reports, sim._arrivals, sim._reports, self.ledger, sim._on_depth, LN2,
               stock_decide, type(self.allocator) is Allocator, make_signal_snapshot, make_quote_context,
               OrderState.OPEN, OrderState.PARTIALLY_FILLED, _plain_trades(sim), make_desired_quote,
               _stock(Engine, "_collect", "_push_reports") and _stock(FillSimulator, "drain_reports"),
               self._report_kit(), _arrival_kit(sim), _reconcile_kit(), self._send_kit(),
               getattr(sim._on_depth, "__func__", None) in _DEPTH_AS_MIN,
               _stock(MarkoutTracker, "on_mid", "advance", "_mature"))
        return n + _feed_rows(self, sim, ctx, rows.columns, rows.levels, lo, hi)  # type: ignore[misc]

    def _report_kit(self) -> tuple[Any, ...] | None:
        """What the compiled loop needs to apply a create's ack, a cancel confirmation and
        a fill that completes its order itself (``Engine._on_report``'s common steps; the
        fill's booking still through ``_book_fill``), or ``None``: order traces on, or a
        patched report method (those reports then go to ``_on_report``)."""
        if self.trace_orders or not (_stock(Engine, "_on_report", "_finish") and _stock(
                OrderManager, "on_report", "_on_create_ack", "_on_fill", "_finish", "finished", "_recommit",
                "_commit_value")):
            return None
        return (Ack, Canceled, OrderManager, make_order_record, OP_CREATE, OrderState.PENDING_NEW, OrderState.OPEN,
                OrderState.CANCELED, OrderState.FILLED, OrderState.REJECTED, Fill,
                OrderRecord if make_order_record is stats_mod._OrderRecordBuilder and _RECORD_FIELDS == tuple(
                    f.name for f in dataclass_fields(OrderRecord)) else None)

    def _send_kit(self) -> tuple[Any, ...] | None:
        """What the compiled loop needs to send creates and cancels itself
        (``Engine._send`` and ``FillSimulator.submit``), or ``None``: order traces on, a
        patched send or submit, another venue.  The entry latency is read from a stock
        ``ConstantLatency``'s table, else asked of the model."""
        sim = self.venue
        if (self.trace_orders or type(sim) is not FillSimulator or not _stock(Engine, "_send")
                or not _stock(FillSimulator, "submit")):
            return None
        lat = sim.latency
        entry = lat._entry if type(lat) is ConstantLatency and _stock(ConstantLatency, "entry_ns") else None
        return (CreateOrder, CancelOrder, OP_CREATE, OP_CANCEL, entry)

    def close(self) -> EngineResult:
        """The stream ended: deliver everything in flight, then close the books."""
        self._advance(None)
        end = max(self._now, self._last_ts)
        self.ledger.sample(end)
        return self._result(end)

    # ------------------------------------------------------------------ operator controls
    @property
    def now_ns(self) -> int:
        """The local clock: the time of the last thing the strategy side saw."""
        return self._now

    def pause(self, reason: str = "paused") -> int:
        """Stop deciding (no new quotes) and cancel every open order now; returns how many
        cancels were sent.  The kill switch and a shutdown start here."""
        self.paused = True
        self.pause_reason = reason
        return self.cancel_all(reason)

    def resume(self) -> None:
        """Decide again from the next book change."""
        self.paused = False
        self.pause_reason = ""

    def cancel_all(self, reason: str = "cancel_all") -> int:
        """Send a cancel for every live order of every symbol at the current local time."""
        sent = 0
        for rt in self.rt.values():
            actions = rt.orders.cancel_all(self._now, reason)
            if actions:
                sent += len(actions)
                self._send(rt, actions, self._now)
        return sent

    def send(self, symbol: str, actions: Sequence[Action]) -> None:
        """Send operator actions (a flatten order) for ``symbol`` at the current local
        time, through the same path as the strategy's."""
        self._send(self.rt[symbol], actions, self._now)

    def flatten(self, symbol: str) -> FlattenOrder:
        """Send one crossing (taker) limit order that closes ``symbol``'s position, at the
        current local time: priced at the level of the opposite book side that covers its
        size (the worst level when the book is thinner), created through the symbol's order
        manager (``OrderManager.submit_external``) so its ack and fill are tracked and booked
        like the strategy's and it leaves ``open_orders()`` once done.

        It only sends: the caller decides how long to wait (``settle``) and what to do with
        a rest that did not fill (``cancel_all``).  The gates are asked as for any create:
        risk-class gates let a reducing order pass, flow control may refuse it (``why``)."""
        rt = self.rt[symbol]
        lots = self.ledger.qty_lots(symbol)
        if lots == 0:
            return FlattenOrder(symbol, 0, False, why="flat")
        side = -1 if lots > 0 else 1
        price = crossing_price(rt.book.asks if side > 0 else rt.book.bids, side, abs(lots))
        if price is None:
            return FlattenOrder(symbol, lots, False, side, why="empty book side")
        bid, ask = rt.book.best_bid, rt.book.best_ask
        mid = (bid + ask) // 2 if bid is not None and ask is not None else 0
        action, why = rt.orders.submit_external(side, price, abs(lots), self._now, post_only=False, mid_ticks=mid)
        if action is None:
            return FlattenOrder(symbol, lots, False, side, price, abs(lots), why=why)
        self._send(rt, [action], self._now)
        return FlattenOrder(symbol, lots, True, side, price, abs(lots), action.client_id)

    def trim_history(self, keep_fills: int = 1000, keep_equity_points: int = 3600) -> dict[str, int]:
        """Drop history that only the final report reads, for a driver that never calls
        ``close`` (the live service runs for days and must keep a flat RSS).  Dropped: every
        finished order record, all but the last ``keep_fills`` fills, all but the last
        ``keep_equity_points`` equity/exposure samples of the ledger.  Kept: positions, PnL,
        fees and turnover (the ledger's running totals), the counters, live orders, the
        order managers, the allocations list and the order trace.

        A report computed after trimming (``close()``'s ``EngineResult``: order statistics,
        the fill list, the equity curve, drawdown and daily rows) covers only the kept
        window; totals stay exact.  A backtest never calls this.  Returns how many records,
        fills and equity points were dropped."""
        if keep_fills < 0 or keep_equity_points < 0:
            raise ValueError("keep_fills and keep_equity_points must be >= 0")
        records = len(self._records)
        self._records.clear()
        fills = max(0, len(self._fills) - keep_fills)
        if fills:
            del self._fills[:fills]
        points = self.ledger.trim_samples(keep_equity_points)
        return {"records": records, "fills": fills, "equity_points": points}

    def settle(self) -> None:
        """Deliver every exchange arrival and report in flight (cancels reach the venue,
        acks come back), leaving queued market events alone: a bounded wait for the acks."""
        venue = self.venue
        reports = self._reports
        while True:
            t_arr = venue.next_arrival_ns()
            t_rep = reports[0][0] if reports else None
            if t_arr is None and t_rep is None:
                return
            if t_rep is None or (t_arr is not None and t_arr <= t_rep):
                venue.process_arrivals(t_arr)  # type: ignore[arg-type]
                self._collect()
            else:
                when, _, report = heapq.heappop(reports)
                if when > self._now:
                    self._now = when
                self._on_report(report, self._now)

    def open_orders(self) -> int:
        """Orders sent and not yet terminal (what a shutdown must bring to 0)."""
        return len(self._live)

    def _advance(self, until: int | None) -> None:
        """Handle every local delivery and exchange arrival due at or before ``until``
        (None = everything pending), earliest first; ties: exchange arrivals, then
        reports, then market deliveries."""
        venue = self.venue
        local = self._local
        reports = self._reports
        while True:
            t_local = local[0][0] if local else None
            t_rep = reports[0][0] if reports else None
            t_arr = venue.next_arrival_ns()
            best = None
            for t in (t_arr, t_rep, t_local):
                if t is not None and (best is None or t < best):
                    best = t
            if best is None or (until is not None and best > until):
                return
            if t_arr is not None and t_arr == best:
                venue.process_arrivals(best)
                self._collect()
            elif t_rep is not None and t_rep == best:
                when, _, report = heapq.heappop(reports)
                if when > self._now:
                    self._now = when
                self._on_report(report, self._now)
            else:
                # the local clock never runs backwards: receive times are not monotonic
                # across channels (a REST snapshot arrives after the first update it precedes),
                # and the FIFO hands such an event over at the current local time
                when, ev = local.popleft()
                if when > self._now:
                    self._now = when
                self._on_local_market(ev, self._now)

    def _collect(self) -> None:
        out = self.venue.drain_reports()
        if out:
            self._push_reports(out)

    def _push_reports(self, out: list[tuple[int, VenueReport]]) -> None:
        for when, report in out:
            self._seq += 1
            heapq.heappush(self._reports, (when, self._seq, report))

    # ------------------------------------------------------------------ local side
    def _on_local_market(self, ev: object, now: int) -> None:
        """One market event reaches the strategy side at local time ``now``.

        Trades and quotes only feed the signals; book events update the book, the
        signals (the touch), the ledger's mark and equity grid, then maybe decide.  The
        signal calls are the ones ``SymbolSignals.on_event`` would dispatch to."""
        if ev.__class__ is int:  # a row ``feed_rows`` queued
            ev = self._row_event(ev)  # type: ignore[arg-type]
        rt = self.rt.get(ev.symbol)  # type: ignore[attr-defined]
        if rt is None:
            return
        cls = type(ev)
        if cls is Trade:
            self.counters.trades += 1
            rt.signals.on_trade(ev.ts, ev.side, ev.qty)  # type: ignore[attr-defined]
            return
        if cls is Quote:
            rt.signals.on_touch(ev.ts, ev.bid_px, ev.ask_px)  # type: ignore[attr-defined]
            return
        book = rt.book
        was_stale = book.stale
        book.apply(ev)  # type: ignore[arg-type]
        self.counters.book_events += 1
        if cls is SeqGap:
            if self.params.cancel_on_stale and not was_stale:
                self._send(rt, rt.orders.cancel_all(now, "stale_book"), now)
                self.counters.stale_cancels += 1
            return
        bid, ask = book.best_bid, book.best_ask
        if cls is BookDelta or cls is BookSnapshot:
            rt.signals.on_touch(ev.ts, bid, ask)  # type: ignore[attr-defined]
        if bid is not None and ask is not None and bid < ask and bid + ask != rt.last_mid2:
            rt.last_mid2 = bid + ask
            self.ledger.mark_mid2(rt.symbol, bid + ask, now)
        self.ledger.sample(now)
        if now >= rt.next_decision_ns and not self.paused:
            self._decide(rt, now)
            rt.next_decision_ns = (now // self.interval_ns + 1) * self.interval_ns if self.interval_ns else now

    def _decide(self, rt: SymbolRuntime, now: int) -> None:
        book = rt.book
        bid, ask = book.best_bid, book.best_ask
        if book.stale or bid is None or ask is None or bid >= ask:
            self.counters.skipped_decisions += 1
            return
        if self.allocator is not None and self.allocator.due(now):
            self.rebalance(now)
        self.counters.decisions += 1
        rt.decisions += 1
        if self.positions is not None:
            self._mark_positions(rt, (bid + ask) // 2, now)
        snap = rt.signals.snapshot(now, book)
        position = self.ledger.qty_lots(rt.symbol)
        ctx = make_quote_context(rt.symbol, rt.instrument, bid, ask, book.bids[bid], book.asks[ask], snap, position,
                                 now, rt.target_usd_per_side, rt.max_levels, self.maker_fee_bps, self.taker_fee_bps)
        desired = rt.strategy.quotes(ctx)
        actions = rt.orders.reconcile(desired, now, (bid + ask) // 2, rt.budget)
        if actions:
            self._send(rt, actions, now)

    def _mark_positions(self, rt: SymbolRuntime, mid: int, now: int) -> None:
        """The position book's mark of ``rt``'s symbol: one lot at ``mid`` ticks, in USD
        (the exact notional as a float), set only when the mid moved (the compiled loop
        makes the same check before calling this)."""
        sym = rt.symbol
        last = self._lot_usd.get(sym)
        if last is None or last[0] != mid:  # else the position book has this mark already
            last = self._lot_usd[sym] = (mid, float(rt.instrument.notional_usd(mid, 1)))
            self.positions.update_mark(sym, last[1], now)  # type: ignore[union-attr]

    def rebalance(self, now: int) -> Allocation:
        """Re-split the budget across symbols with the allocator (every
        ``portfolio.rebalance_minutes`` of local time, checked on decision ticks) from what
        the local side observes: each symbol's volatility, touch spread and position, and
        the account equity.  Each runtime's per-side target is half its symbol's
        ``target_usd``; its level cap is the allocator's, within the configured maximum."""
        assert self.allocator is not None
        inputs: dict[str, SymbolInputs] = {}
        for sym, rt in self.rt.items():
            vol = rt.signals.vol
            bid, ask = rt.book.best_bid, rt.book.best_ask
            spread_bps = pos_usd = None
            if bid is not None and ask is not None and bid < ask:
                spread_bps = (ask - bid) * 2e4 / (ask + bid)
                pos_usd = float(rt.instrument.notional_usd((bid + ask) // 2, self.ledger.qty_lots(sym)))
            inputs[sym] = SymbolInputs(vol=vol.vol_per_sqrt_s if vol.samples > 0 else None, spread_bps=spread_bps,
                                       position_usd=pos_usd or 0.0)
        equity = self.allocator.portfolio.budget_usd + float(self.ledger.net_pnl_exact())
        alloc = self.allocator.rebalance(AllocatorInputs(symbols=inputs, equity_usd=equity), now)
        for sa in alloc.symbols:
            rt = self.rt[sa.symbol]
            per_side = sa.target_usd / 2.0
            rt.target_usd_per_side = per_side
            rt.budget = Budget(Decimal(repr(per_side)), min(sa.max_levels, rt.max_levels))
        self.counters.rebalances += 1
        self.allocations.append(alloc)
        return alloc

    def _send(self, rt: SymbolRuntime, actions: Sequence[Action], now: int) -> None:
        venue = self.venue
        counters = self.counters
        for action in actions:
            counters.actions += 1
            op = action.op
            if op == "create":
                counters.creates += 1
                self._live[action.client_id] = (action.symbol, action.side, now, action.qty)  # type: ignore[union-attr]
            elif op == "amend":
                counters.amends += 1
                self._replaces[action.client_id] = self._replaces.get(action.client_id, 0) + 1
            else:
                counters.cancels += 1
            if self.trace_orders:
                self._trace.append(_trace_row(now, action))
            venue.submit(action, now)
        self._collect()

    def _on_report(self, report: VenueReport, now: int) -> None:
        self.counters.reports += 1
        cid = report.client_id
        live = self._live.get(cid)
        if live is None:
            return
        rt = self.rt[live[0]]
        changed = rt.orders.on_report(report, now)
        if self.trace_orders:
            self._trace.append(_trace_report(now, report))
        cls = type(report)
        if cls is Fill and changed:
            self._book_fill(rt, report)  # type: ignore[arg-type]
        elif cls is Reject:
            self.counters.rejects += 1
        order = rt.orders.finished(cid)
        if order is not None:
            self._finish(cid, order, now)

    def _book_fill(self, rt: SymbolRuntime, fill: Fill) -> None:
        self.counters.fills += 1
        self._fills.append(fill)
        self.ledger.on_fill(fill)
        rt.signals.on_fill(fill.ts, fill.side, fill.price)  # exchange time, like the mids it is marked against
        if self.positions is not None:
            self.positions.apply_fill(fill.symbol, fill.side, fill.qty, self._now)
        for hook in self.on_fill_hooks:
            hook(fill)

    def _finish(self, cid: str, order: Any, now: int) -> None:
        live = self._live.pop(cid, None)
        if live is None:
            return
        symbol, side, created, qty = live
        state = order.state
        self._records[cid] = make_order_record(cid, symbol, side, created, order.placed_ns, now, order.qty,
                                               order.filled, state == OrderState.CANCELED,
                                               state == OrderState.REJECTED, self._replaces.pop(cid, 0))

    # ------------------------------------------------------------------ results
    def _result(self, end: int) -> EngineResult:
        records = dict(self._records)
        for cid, (symbol, side, created, qty) in self._live.items():
            order = self.rt[symbol].orders.get(cid)
            placed = order.placed_ns if order is not None else 0
            filled = order.filled if order is not None else 0
            total = order.qty if order is not None else qty
            records[cid] = OrderRecord(client_id=cid, symbol=symbol, side=side, created_ns=created, placed_ns=placed,
                                       done_ns=0, qty_lots=total, filled_lots=filled,
                                       replaces=self._replaces.get(cid, 0))
        ordered = sorted(records.values(), key=_BY_CREATION)  # client ids are unique: a total order
        events = self.gates.drain_events() if self.gates is not None else []
        return EngineResult(self.ledger, ordered, list(self._fills), self.counters, self._start, end, self.shift,
                            self.rt, list(events), list(self._trace))


_BY_CREATION = attrgetter("created_ns", "client_id")


def _methods(*owners_names: tuple[type, tuple[str, ...]]) -> dict[str, Callable[..., Any]]:
    return {f"{cls.__name__}.{name}": getattr(cls, name) for cls, names in owners_names for name in names}


_STOCK: dict[str, Callable[..., Any]] = _methods(
    (Engine, ("_decide", "_mark_positions", "_collect", "_push_reports", "_on_report", "_finish", "_send")),
    (SymbolSignals, ("snapshot",)),
    (MarkoutTracker, ("on_mid", "advance", "_mature")),
    (Instrument, ("notional_usd",)),
    (OrderManager, ("reconcile", "_nothing_to_do", "on_report", "_on_create_ack", "_on_fill", "_finish", "finished",
                    "_recommit",
                    "_commit_value", "_reconcile_slow", "_plan_side", "_try_create", "_try_replace", "_send_cancel",
                    "_detach", "_blocked_replace", "_throttled")),
    (FixedStrategy, ("quotes", "prices", "_sized")),
    (FillSimulator, ("drain_reports", "_trade", "process_arrivals", "_on_create", "_on_cancel", "_rest", "_unrest",
                     "_done", "_remember", "_emit", "_crosses", "submit", "_check_cross")),
    (ConstantLatency, ("response_ns", "entry_ns")),
    (GateChain, ("check", "on_sent")),
)
"""The methods the compiled loop mirrors, as defined here (a patched one runs in Python)."""


_JOIN_AS_VISIBLE = (RiskAverseQueue.on_join, ProbQueue.on_join, OptimisticQueue.on_join)
"""The stock queue models' ``on_join``: an order joins behind the visible size."""


_DEPTH_AS_MIN = (RiskAverseQueue.on_depth, OptimisticQueue.on_depth)
"""The stock queue models whose ``on_depth`` is ``min(ahead, new size)``."""


def _stock(cls: type, *names: str) -> bool:
    """Whether ``cls``'s methods ``names`` are still the ones the compiled loop mirrors."""
    return all(getattr(cls, name) is _STOCK[f"{cls.__name__}.{name}"] for name in names)


def _arrival_kit(sim: Any) -> tuple[Any, ...] | None:
    """What the compiled loop needs to run a create's and a cancel's arrival at the
    simulator itself (``FillSimulator.process_arrivals``' common steps), or ``None``: a
    patched arrival method (every arrival then goes to ``process_arrivals``).  The
    response latency is read from a stock ``ConstantLatency``'s table, else asked of the
    model; the queue position on joining is the visible size for the stock queue models,
    else asked of the model."""
    if type(sim) is not FillSimulator or not _stock(FillSimulator, "process_arrivals", "_on_create", "_on_cancel",
                                                    "_rest", "_unrest", "_done", "_remember", "_emit", "_crosses"):
        return None
    lat = sim.latency
    resp = lat._resp if type(lat) is ConstantLatency and _stock(ConstantLatency, "response_ns") else None
    join_visible = getattr(type(sim.queue), "on_join", None) in _JOIN_AS_VISIBLE
    return (CreateOrder, CancelOrder, fillsim_mod._Order, Ack, Canceled, OP_CREATE, OP_CANCEL, "canceled",
            fillsim_mod._NEG, fillsim_mod._POS, resp, join_visible)


_RECORD_FIELDS = ("client_id", "symbol", "side", "created_ns", "placed_ns", "done_ns", "qty_lots", "filled_lots",
                  "canceled", "rejected", "replaces")
"""An order record's fields in the order the compiled loop sets them (make_order_record's)."""

_LIVE_FIELDS = ("client_id", "symbol", "side", "price", "qty", "level", "created_ns", "state", "filled", "updated_ns",
                "placed_ns", "venue_id", "post_only", "pending_price", "pending_qty", "side_idx", "attached", "acked",
                "priced_ns", "sent_ns", "ref_mid", "pending_ref_mid", "committed", "fill_units", "fill_lots",
                "fill_keys", "cancel_retries", "cancel_rejected")
"""The tracked order's fields in the order the compiled reconcile sets them."""


def _reconcile_kit() -> tuple[Any, ...] | None:
    """What the compiled loop needs to run ``OrderManager._reconcile_slow``'s common case
    (cancel_replace, a clean ladder) itself, or ``None``: a patched reconcile step, or a
    tracked order whose fields are not the ones it sets."""
    if not _stock(OrderManager, "_reconcile_slow", "_plan_side", "_try_create", "_try_replace", "_send_cancel",
                  "_detach", "_blocked_replace", "_throttled"):
        return None
    if tuple(f.name for f in dataclass_fields(orders_mod._Live)) != _LIVE_FIELDS:
        return None
    return (orders_mod._Live, CreateOrder, CancelOrder, OrderState.PENDING_NEW, OrderState.PENDING_CANCEL,
            orders_mod.R_PULLED, orders_mod.R_REPLACE, orders_mod.R_STALE_TTL, orders_mod.R_STALE_DRIFT, "ttl", "drift",
            tuple(orders_mod.FLOW_CONTROL_PREFIXES), "", 0.0, _gate_kit())


def _gate_kit() -> tuple[Any, ...] | None:
    """What the compiled reconcile needs to ask the stock gate chain itself (the kill
    switch, circuit breaker and throttle's checks and send records in their common
    state), or ``None``: a patched chain (its methods are then called)."""
    if not _stock(GateChain, "check", "on_sent"):
        return None
    return (GateChain, KillSwitch.check, CircuitBreaker.check, CircuitBreaker.on_sent, Throttle.check, Throttle.on_sent,
            CLOSED, OP_CREATE, OP_CANCEL)


def _plain_trades(sim: Any) -> bool:
    """Whether the compiled loop may run ``FillSimulator._trade`` for a print at our price
    itself (no touch fills or toxic sweeps, the stock ``_trade``; its fills still go to
    ``FillSimulator._fill``)."""
    return not sim._touch and not sim._toxic and _stock(FillSimulator, "_trade")


def _lot_unit(inst: Instrument) -> tuple[int, int] | None:
    """One lot's value per tick of a linear instrument as ``(coefficient, exponent)``
    (``tick_size x lot_size x contract_multiplier``, exact), for the compiled loop's
    position mark (``float(notional_usd(mid, 1))``), or None: an inverse contract, another
    instrument class or a patched ``notional_usd``, a coefficient beyond 64 bits."""
    if type(inst) is not Instrument or inst.inverse or not _stock(Instrument, "notional_usd"):
        return None
    ctx = Context(prec=200, traps=[Inexact, Rounded])
    try:
        unit = ctx.multiply(ctx.multiply(inst.tick_size, inst.lot_size), inst.contract_multiplier)
    except (Inexact, Rounded):  # pragma: no cover - 200 digits hold any product of three grids
        return None
    sign, digits, exp = unit.as_tuple()
    if sign or not isinstance(exp, int) or not digits:
        return None
    coef = int("".join(map(str, digits)))
    return (coef, exp) if 0 < coef < 1 << 63 else None


def _fixed_terms(rt: SymbolRuntime) -> tuple[int, ...] | None:
    """The stock ``fixed`` strategy's integers for the compiled loop's copy of its
    ``quotes`` (which then skips the signal snapshot and the quote context: this strategy
    reads neither), or None: another strategy, a patched method, or terms beyond 64 bits."""
    s = rt.strategy
    if type(s) is not FixedStrategy or not _stock(FixedStrategy, "quotes", "prices", "_sized"):
        return None
    return s.exact_terms(rt.symbol, rt.instrument)


def _stock_orders(orders: object) -> bool:
    return type(orders) is OrderManager and _stock(OrderManager, "reconcile", "_nothing_to_do")


def _no_rows(row: int) -> object:
    raise RuntimeError(f"row {row} queued without a row source (feed_rows sets one)")


def _trace_row(now: int, action: Action) -> dict[str, Any]:
    row: dict[str, Any] = {"ts": now, "event": action.op, "order_id": action.client_id, "symbol": action.symbol}
    if isinstance(action, CreateOrder):
        row.update(side=action.side, price=action.price, qty=action.qty, level=action.level)
    elif isinstance(action, CancelOrder):
        row.update(reason=action.reason)
    else:
        row.update(price=action.price, qty=action.qty)  # type: ignore[union-attr]
    return row


def _trace_report(now: int, report: VenueReport) -> dict[str, Any]:
    cls = type(report)
    row: dict[str, Any] = {"ts": now, "order_id": report.client_id, "exchange_ts": report.ts}
    if cls is Ack:
        row.update(event="ack_" + report.op, price=report.price, qty=report.qty)  # type: ignore[union-attr]
    elif cls is Reject:
        row.update(event="reject_" + report.op, reason=report.reason)  # type: ignore[union-attr]
    elif cls is Fill:
        row.update(event="fill", price=report.price, qty=report.qty, liquidity=report.liquidity)  # type: ignore[union-attr]
    elif cls is Canceled:
        row.update(event="canceled", reason=report.reason)  # type: ignore[union-attr]
    return row


def crossing_price(levels: Mapping[int, int], side: int, lots: int) -> int | None:
    """The limit price (ticks) of a ``side`` order of ``lots`` that reaches far enough into
    the opposite book side ``levels`` (price -> lots: the asks for a buy, the bids for a
    sell) to cover its size, or the worst level when the side is thinner; ``None`` when the
    side is empty."""
    if not levels:
        return None
    prices = sorted(levels) if side > 0 else sorted(levels, reverse=True)
    need = lots
    for px in prices:
        need -= levels[px]
        if need <= 0:
            return px
    return prices[-1]


def feed_clock_shift(latencies_ns: Iterable[int], mode: str = "auto", offset_ns: int = 0) -> int:
    """The constant subtracted from every ``recv_ts``: ``auto`` = the smallest feed latency
    (so it becomes 0), ``raw`` = 0, ``offset`` = ``offset_ns``."""
    if mode == "raw":
        return 0
    if mode == "offset":
        return int(offset_ns)
    if mode != "auto":
        raise ValueError(f"feed_clock must be auto, raw or offset, got {mode!r}")
    lo = None
    for lat in latencies_ns:
        if lo is None or lat < lo:
            lo = lat
    return int(lo) if lo is not None else 0


__all__ = [
    "Engine",
    "EngineParams",
    "EngineResult",
    "EngineCounters",
    "FlattenOrder",
    "Rows",
    "SymbolRuntime",
    "Venue",
    "crossing_price",
    "feed_clock_shift",
]
