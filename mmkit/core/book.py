"""The L2 order book of one symbol, in integer ticks and lots.

Layout: per side a ``dict`` price -> size (all levels, O(1) lookup/update/delete) plus a
cached best price and a lazily pruned binary heap of prices (bids stored negated), so
deleting the best level finds the next one without sorting.  A level deleted anywhere
but at the top stays in the heap as a stale entry until it surfaces at the top, where it
is discarded; when a heap grows past ``2 * levels + 64`` entries it is rebuilt from the
dict (O(n), amortized O(1) per update).

Complexity, n = levels on a side:

==============================================  =====================================
``apply_level`` update of an existing level     O(1)
``apply_level`` new level                       O(log n) (heap push)
``apply_level`` delete (not the best)           O(1)
``apply_level`` delete of the best              O(log n) amortized (stale pops)
``best_bid``/``best_ask`` read                  O(1) (plain attributes)
``size_at``                                     O(1)
``apply_snapshot``                              O(n) (heapify)
``levels(side, k)``, ``imbalance(k)``           O(n log k)
``depth_within_bps``                            O(n)
==============================================  =====================================

``apply_levels`` and ``apply_delta`` run as one C call when the optional
``mmkit.core._levels`` is built (same dict and heap, same effects and errors; see
``use_compiled``).  ``NativeL2Book`` (end of this module, when ``mmkit.core._nbook`` is
built) is the same book with its levels in C arrays, for the compiled engine loop
(``Engine.feed_rows``).  ``bench/bench_book.py`` measures the hot path.  Sizes must be >= 0 (0 deletes a level);
negative sizes raise ``ValueError``.  The book never fixes a crossed state by itself: it
reports it (``crossed``) and leaves the decision to the caller.  ``stale`` is set by
``mark_stale()`` (a ``SeqGap`` in the stream) and cleared only by the next snapshot.

Pure: stdlib only (and the optional C modules), no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from heapq import heapify, heappop, heappush, nlargest, nsmallest

from mmkit.core.events import BookDelta, BookSnapshot, Event, Level, SeqGap
from mmkit.core.instruments import Instrument

BID = 1
"""Side of the book holding buy orders (same value as ``events.BUY``)."""
ASK = -1
"""Side of the book holding sell orders (same value as ``events.SELL``)."""

_HEAP_SLACK = 64

try:  # the compiled inner loop of ``apply_levels`` (setup.py builds it; optional)
    from mmkit.core._levels import apply_delta as _compiled_apply_delta
    from mmkit.core._levels import apply_side as _compiled_apply_side
except ImportError:  # pragma: no cover - a build without a C compiler
    _compiled_apply_side = _compiled_apply_delta = None

_apply_side = _compiled_apply_side
_apply_delta = _compiled_apply_delta

try:  # the native book's storage (setup.py builds it; optional): NativeL2Book below
    from mmkit.core._nbook import LevelsView as _LevelsView
    from mmkit.core._nbook import NativeBook as _NativeBook
except ImportError:  # pragma: no cover - a build without a C compiler
    _NativeBook = _LevelsView = None


def use_compiled(flag: bool) -> bool:
    """Turn the compiled ``apply_levels`` loop on or off for this process (on by default
    when it is built; ``mmkit`` turns it off when ``MMKIT_PURE_PYTHON=1``).  Both loops
    have the same effects on the same data (tests/core/test_book.py runs on both).
    Returns whether the compiled loop is now active."""
    global _apply_side, _apply_delta
    _apply_side = _compiled_apply_side if flag else None
    _apply_delta = _compiled_apply_delta if flag else None
    return _apply_side is not None


class _BookReads:
    """What both books answer the same way from their storage (``bids``/``asks`` mappings,
    ``best_bid``/``best_ask``): the event dispatch and the readers."""

    __slots__ = ()
    symbol: str
    instrument: Instrument | None
    bids: Mapping[int, int]
    asks: Mapping[int, int]
    best_bid: int | None
    best_ask: int | None
    stale: bool
    ts: int

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.symbol!r}, bid={self.best_bid}x{self.best_bid_qty}, ask={self.best_ask}x{self.best_ask_qty}, "
                f"levels={len(self.bids)}/{len(self.asks)}, stale={self.stale})")

    def apply(self, event: Event) -> bool:
        """Apply a book event; returns True if it was one (trades and quotes are ignored).

        ``BookSnapshot`` replaces, ``BookDelta`` updates, ``SeqGap`` marks the book stale.
        """
        cls = type(event)
        if cls is BookDelta:
            self._check_symbol(event)
            self.apply_delta(event.bids, event.asks)  # type: ignore[union-attr]
        elif cls is BookSnapshot:
            self._check_symbol(event)
            self.apply_snapshot(event.bids, event.asks)  # type: ignore[union-attr]
        elif cls is SeqGap:
            self._check_symbol(event)
            self.mark_stale()
        else:
            return False
        self.ts = event.ts
        return True

    def mark_stale(self) -> None:
        """Flag the book as untrustworthy (a sequence gap) until the next snapshot."""
        self.stale = True

    def _check_symbol(self, event: Event) -> None:
        if event.symbol != self.symbol:
            raise ValueError(f"event for {event.symbol} applied to the {self.symbol} book")

    @property
    def best_bid_qty(self) -> int | None:
        """Lots at the best bid, or None if there are no bids."""
        best = self.best_bid
        return None if best is None else self.bids[best]

    @property
    def best_ask_qty(self) -> int | None:
        """Lots at the best ask, or None if there are no asks."""
        best = self.best_ask
        return None if best is None else self.asks[best]

    @property
    def mid_ticks(self) -> float | None:
        """(best bid + best ask) / 2 in ticks (may be a half tick), or None if a side is empty."""
        bid, ask = self.best_bid, self.best_ask
        if bid is None or ask is None:
            return None
        return (bid + ask) / 2

    @property
    def spread_ticks(self) -> int | None:
        """best ask - best bid in ticks (<= 0 when crossed/locked), or None."""
        bid, ask = self.best_bid, self.best_ask
        if bid is None or ask is None:
            return None
        return ask - bid

    @property
    def spread_bps(self) -> float | None:
        """Spread relative to the mid, in basis points, or None (also None if mid <= 0)."""
        bid, ask = self.best_bid, self.best_ask
        if bid is None or ask is None or bid + ask <= 0:
            return None
        return (ask - bid) * 20000.0 / (bid + ask)

    @property
    def microprice_ticks(self) -> float | None:
        """Size-weighted mid in ticks: ``(bid * ask_qty + ask * bid_qty) / (bid_qty + ask_qty)``."""
        bid, ask = self.best_bid, self.best_ask
        if bid is None or ask is None:
            return None
        bq, aq = self.bids[bid], self.asks[ask]
        return (bid * aq + ask * bq) / (bq + aq)

    @property
    def crossed(self) -> bool:
        """True if best bid >= best ask (crossed or locked); False if a side is empty."""
        bid, ask = self.best_bid, self.best_ask
        return bid is not None and ask is not None and bid >= ask

    @property
    def empty(self) -> bool:
        return not self.bids and not self.asks

    def levels(self, side: int, n: int | None = None) -> list[Level]:
        """The top ``n`` (all if None) levels of ``side`` as ``(ticks, lots)``, best first."""
        if side > 0:
            items = self.bids.items()
            return sorted(items, reverse=True) if n is None else nlargest(n, items)
        items = self.asks.items()
        return sorted(items) if n is None else nsmallest(n, items)

    def levels_within(self, side: int, limit: int) -> list[Level]:
        """The levels of ``side`` from the best price through ``limit`` (bids priced >=
        ``limit``, asks <= ``limit``), best first: what a taker order limited at ``limit``
        could reach."""
        if side > 0:
            bids = self.bids
            return [(px, bids[px]) for px in sorted((p for p in bids if p >= limit), reverse=True)]
        asks = self.asks
        return [(px, asks[px]) for px in sorted(p for p in asks if p <= limit)]

    def imbalance(self, n: int = 1) -> float | None:
        """``(B - A) / (B + A)`` over the top ``n`` levels' lots, in [-1, 1]; None if both are empty."""
        bid_lots = sum(qty for _px, qty in self.levels(BID, n))
        ask_lots = sum(qty for _px, qty in self.levels(ASK, n))
        total = bid_lots + ask_lots
        return None if total == 0 else (bid_lots - ask_lots) / total

    def depth_within_bps(self, bps: float, side: int | None = None) -> tuple[int, float]:
        """Resting size within ``bps`` of the mid: ``(lots, quote notional)``.

        Bids priced >= mid * (1 - bps/1e4) and asks <= mid * (1 + bps/1e4) count; ``side``
        limits it to BID or ASK.  The notional is in the quote currency (USD for inverse
        contracts: contracts x multiplier), computed exactly and returned as a float; it
        needs ``instrument``.  A one-sided book has no mid: ``(0, 0.0)``.
        """
        if bps < 0:
            raise ValueError(f"bps must be >= 0, got {bps}")
        mid = self.mid_ticks
        if mid is None:
            return 0, 0.0
        lots = 0
        px_lots = 0
        if side is None or side > 0:
            floor = mid * (1 - bps / 10000.0)
            for px, qty in self.bids.items():
                if px >= floor:
                    lots += qty
                    px_lots += px * qty
        if side is None or side < 0:
            cap = mid * (1 + bps / 10000.0)
            for px, qty in self.asks.items():
                if px <= cap:
                    lots += qty
                    px_lots += px * qty
        return lots, self._notional(lots, px_lots)

    def _notional(self, lots: int, px_lots: int) -> float:
        inst = self.instrument
        if inst is None:
            raise ValueError(f"{self.symbol}: depth notional needs the book's instrument")
        if inst.inverse:
            return float(Decimal(lots) * inst.lot_size * inst.contract_multiplier)
        return float(Decimal(px_lots) * inst.tick_size * inst.lot_size * inst.contract_multiplier)


class L2Book(_BookReads):
    """Price-level book for one symbol.

    Read-only attributes (plain attributes for speed; do not assign them):
    ``best_bid``/``best_ask`` (ticks or ``None``), ``bids``/``asks`` (dict ticks -> lots),
    ``stale`` (bool), ``updates`` (level changes applied: one per ``apply_level`` call or
    delta level, one per snapshot), ``snapshots`` (snapshots applied; 0 means the book was
    only ever built from deltas), ``ts`` (``ts`` of the last event given to ``apply``).
    ``instrument`` is needed only for ``depth_within_bps`` notionals.
    """

    __slots__ = ("symbol", "instrument", "bids", "asks", "best_bid", "best_ask", "stale", "updates", "snapshots", "ts",
                 "_bid_heap", "_ask_heap")

    def __init__(self, symbol: str, instrument: Instrument | None = None) -> None:
        if instrument is not None and instrument.symbol != symbol:
            raise ValueError(f"instrument {instrument.symbol} does not match book symbol {symbol}")
        self.symbol = symbol
        self.instrument = instrument
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.best_bid: int | None = None
        self.best_ask: int | None = None
        self.stale = False
        self.updates = 0
        self.snapshots = 0
        self.ts = 0
        self._bid_heap: list[int] = []  # negated prices
        self._ask_heap: list[int] = []

    # ------------------------------------------------------------------ updates
    def apply_level(self, side: int, px: int, qty: int) -> None:
        """Set the size at one price level (``qty == 0`` deletes it): the hot path."""
        if qty < 0:
            raise ValueError(f"{self.symbol}: negative size {qty} at {px}")
        self.updates += 1
        if side > 0:
            book = self.bids
            if px in book:
                if qty:
                    book[px] = qty
                else:
                    del book[px]
                    if px == self.best_bid:
                        self._next_best_bid()
            elif qty:
                book[px] = qty
                heap = self._bid_heap
                heappush(heap, -px)
                if len(heap) > 2 * len(book) + _HEAP_SLACK:
                    self._rebuild(BID)
                best = self.best_bid
                if best is None or px > best:
                    self.best_bid = px
        else:
            book = self.asks
            if px in book:
                if qty:
                    book[px] = qty
                else:
                    del book[px]
                    if px == self.best_ask:
                        self._next_best_ask()
            elif qty:
                book[px] = qty
                heap = self._ask_heap
                heappush(heap, px)
                if len(heap) > 2 * len(book) + _HEAP_SLACK:
                    self._rebuild(ASK)
                best = self.best_ask
                if best is None or px < best:
                    self.best_ask = px

    def apply_delta(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        """Apply the levels one exchange message changed (absolute sizes, 0 = delete).

        All sizes are checked first, so a delta with a negative size changes nothing.
        """
        fast = _apply_delta
        if fast is not None:
            (self.best_bid, self._bid_heap, self.best_ask, self._ask_heap, n,
             bad) = fast(self.bids, self._bid_heap, self.best_bid, self.asks, self._ask_heap, self.best_ask, bids, asks)
            self.updates += n
            if bad is not None:
                raise ValueError(f"{self.symbol}: negative size {bad[1]} at {bad[0][0]}")
            return
        bids = tuple(bids)
        asks = tuple(asks)
        for _px, qty in bids + asks:
            if qty < 0:
                raise ValueError(f"{self.symbol}: negative size {qty} at {_px}")
        if bids:
            self.apply_levels(BID, bids)
        if asks:
            self.apply_levels(ASK, asks)

    def apply_levels(self, side: int, levels: Iterable[Level]) -> None:
        """``apply_level(side, px, qty)`` for each level in order, with the same effects
        (a negative size raises when reached), without a method call per level: the
        hot path of both books (the strategy's and the fill simulator's)."""
        fast = _apply_side
        if fast is not None:
            if side > 0:
                self.best_bid, self._bid_heap, n, bad = fast(self.bids, self._bid_heap, levels, True, self.best_bid)
            else:
                self.best_ask, self._ask_heap, n, bad = fast(self.asks, self._ask_heap, levels, False, self.best_ask)
            self.updates += n
            if bad is not None:
                raise ValueError(f"{self.symbol}: negative size {bad[1]} at {bad[0]}")
            return
        n = 0  # levels applied, added to ``updates`` once (also when a negative size stops it)
        try:
            if side > 0:
                book = self.bids
                for px, qty in levels:
                    if qty < 0:
                        raise ValueError(f"{self.symbol}: negative size {qty} at {px}")
                    n += 1
                    if px in book:
                        if qty:
                            book[px] = qty
                        else:
                            del book[px]
                            if px == self.best_bid:
                                self._next_best_bid()
                    elif qty:
                        book[px] = qty
                        heap = self._bid_heap  # re-read: _rebuild replaces it
                        heappush(heap, -px)
                        if len(heap) > 2 * len(book) + _HEAP_SLACK:
                            self._rebuild(BID)
                        best = self.best_bid
                        if best is None or px > best:
                            self.best_bid = px
            else:
                book = self.asks
                for px, qty in levels:
                    if qty < 0:
                        raise ValueError(f"{self.symbol}: negative size {qty} at {px}")
                    n += 1
                    if px in book:
                        if qty:
                            book[px] = qty
                        else:
                            del book[px]
                            if px == self.best_ask:
                                self._next_best_ask()
                    elif qty:
                        book[px] = qty
                        heap = self._ask_heap
                        heappush(heap, px)
                        if len(heap) > 2 * len(book) + _HEAP_SLACK:
                            self._rebuild(ASK)
                        best = self.best_ask
                        if best is None or px < best:
                            self.best_ask = px
        finally:
            self.updates += n

    def apply_snapshot(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        """Replace the whole book (zero-size levels are dropped) and clear ``stale``."""
        new_bids, new_asks = _snapshot_sides(self.symbol, bids, asks)
        self.bids = new_bids
        self.asks = new_asks
        self._rebuild(BID)
        self._rebuild(ASK)
        self.best_bid = max(new_bids) if new_bids else None
        self.best_ask = min(new_asks) if new_asks else None
        self.stale = False
        self.updates += 1
        self.snapshots += 1

    def clear(self) -> None:
        """Drop every level (``stale``, counters and ``instrument`` are kept)."""
        self.bids = {}
        self.asks = {}
        self._bid_heap = []
        self._ask_heap = []
        self.best_bid = None
        self.best_ask = None

    def _next_best_bid(self) -> None:
        heap, book = self._bid_heap, self.bids
        while heap:
            px = -heap[0]
            if px in book:
                self.best_bid = px
                return
            heappop(heap)
        self.best_bid = None

    def _next_best_ask(self) -> None:
        heap, book = self._ask_heap, self.asks
        while heap:
            px = heap[0]
            if px in book:
                self.best_ask = px
                return
            heappop(heap)
        self.best_ask = None

    def _rebuild(self, side: int) -> None:
        if side > 0:
            heap = [-px for px in self.bids]
            heapify(heap)
            self._bid_heap = heap
        else:
            heap = list(self.asks)
            heapify(heap)
            self._ask_heap = heap

    def size_at(self, side: int, px: int) -> int:
        """Lots resting at ``px`` on ``side`` (BID/ASK), 0 if the level is empty."""
        return (self.bids if side > 0 else self.asks).get(px, 0)


def _snapshot_sides(symbol: str, bids: Iterable[Level], asks: Iterable[Level]) -> tuple[dict[int, int], dict[int, int]]:
    """A snapshot's two sides as dicts price -> size without the zero sizes (the last of
    repeated prices wins), after checking no size is negative."""
    new_bids = {px: qty for px, qty in bids if qty}
    new_asks = {px: qty for px, qty in asks if qty}
    for px, qty in (*new_bids.items(), *new_asks.items()):
        if qty < 0:
            raise ValueError(f"{symbol}: negative size {qty} at {px}")
    return new_bids, new_asks


NATIVE = _NativeBook is not None
"""Whether ``NativeL2Book`` is available (``mmkit.core._nbook`` is built)."""

if _NativeBook is not None:
    Mapping.register(_LevelsView)

    class NativeL2Book(_NativeBook, _BookReads):  # type: ignore[misc, valid-type]
        """``L2Book`` with its levels in C: per side the same design (a hash table price ->
        size, the cached best price, a lazily pruned heap of prices) over int64 ticks and
        lots instead of a dict of int objects and a list (``mmkit/core/_nbook_impl.h``), so
        the compiled engine loop (``Engine.feed_rows``) updates it with no Python object per
        level.  Same interface, effects and errors as ``L2Book`` for int64 prices and sizes
        (larger ints raise ``OverflowError``: the cache, its only feed, stores int64), with
        two differences a reader can see: ``bids``/``asks`` are read-only mappings
        (``LevelsView``: ``[]``, ``get``, ``in``, ``len``, ``keys``/``values``/``items`` as
        lists, ``copy()`` to a dict) that iterate best price first, where the dicts iterate
        in insertion order (sorted on each call: O(n log n)); and the heaps are not Python
        lists (no ``_bid_heap``/``_ask_heap``).  Complexity as ``L2Book``'s table above.
        Not in the pure-Python build (``NATIVE`` says whether it exists)."""

        __slots__ = ()

        def __init__(self, symbol: str, instrument: Instrument | None = None) -> None:
            if instrument is not None and instrument.symbol != symbol:
                raise ValueError(f"instrument {instrument.symbol} does not match book symbol {symbol}")
            super().__init__(symbol, instrument)

        @classmethod
        def from_book(cls, book: L2Book | NativeL2Book) -> NativeL2Book:
            """A native copy of ``book``: its levels, ``stale``, ``updates``, ``snapshots``, ``ts``."""
            new = cls(book.symbol, book.instrument)
            new._load(dict(book.bids), dict(book.asks))
            new.stale = bool(book.stale)
            new.updates = book.updates
            new.snapshots = book.snapshots
            new.ts = book.ts
            return new

        def apply_snapshot(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
            """Replace the whole book (zero-size levels are dropped) and clear ``stale``."""
            new_bids, new_asks = _snapshot_sides(self.symbol, bids, asks)
            self._load(new_bids, new_asks)
            self.stale = False
            self.updates += 1
            self.snapshots += 1
else:  # pragma: no cover - a build without a C compiler
    NativeL2Book = None  # type: ignore[assignment, misc]
