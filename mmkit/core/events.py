"""Normalized market events: what every reader produces and the book and engine consume.

Times are integer nanoseconds: ``ts`` is the exchange's event time, ``recv_ts`` the local
receive time.  Prices are integer ticks and sizes integer lots of the event's
``Instrument`` (see ``core/instruments.py``), so nothing drifts.  ``side`` of a trade is the
aggressor's side: ``BUY`` (+1) or ``SELL`` (-1).

``SeqGap`` is mmkit's addition to the four market event kinds: a reader that detects a
sequence gap emits it, the book marks itself stale until the next snapshot, and the
engine does not quote on a stale book.  A gap is never silently patched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

BUY = 1
SELL = -1

Level = tuple[int, int]  # (price_ticks, size_lots); size 0 deletes the level in a delta


@dataclass(frozen=True, slots=True)
class BookSnapshot:
    """A full (or top-N) book that replaces everything known for the symbol."""

    ts: int
    recv_ts: int
    symbol: str
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]

    kind = "book_snapshot"


@dataclass(frozen=True, slots=True)
class BookDelta:
    """The levels one exchange message changed: absolute sizes, 0 = delete."""

    ts: int
    recv_ts: int
    symbol: str
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]

    kind = "book_delta"


@dataclass(frozen=True, slots=True)
class Trade:
    """One public trade; ``side`` is the aggressor (BUY lifts the ask, SELL hits the bid)."""

    ts: int
    recv_ts: int
    symbol: str
    side: int
    price: int
    qty: int

    kind = "trade"


@dataclass(frozen=True, slots=True)
class Quote:
    """A best bid/ask feed update (e.g. Binance bookTicker)."""

    ts: int
    recv_ts: int
    symbol: str
    bid_px: int
    bid_qty: int
    ask_px: int
    ask_qty: int

    kind = "quote"


@dataclass(frozen=True, slots=True)
class SeqGap:
    """The source's sequence numbers jumped: the book is stale until the next snapshot."""

    ts: int
    recv_ts: int
    symbol: str
    expected: int
    got: int

    kind = "seq_gap"


Event = BookSnapshot | BookDelta | Trade | Quote | SeqGap

EVENT_KINDS = ("book_snapshot", "book_delta", "trade", "quote", "seq_gap")


# ----------------------------------------------------------------------------- fast builders
# A frozen dataclass's generated ``__init__`` sets each field through
# ``object.__setattr__`` (about 1 us per event); readers build millions of events, so they
# use these builders instead.  Each one is a plain slotted class with the *same* slots, in
# the same order, as its event class: it stores the fields with ordinary attribute writes
# and then re-labels the instance as the real event class (``__class__`` assignment between
# layout-identical slotted classes).  The result IS a normal, frozen event (``type(e) is
# Trade``, equal and hashable as usual); the builder just skips the frozen-setattr path,
# about 2-3x faster.  No validation happens here: readers validate before building.
# ``tests/core/test_instruments.py`` asserts slots == fields, so adding a field to an event
# class without updating its builder fails loudly.


class _BookBuilder:
    __slots__ = ("ts", "recv_ts", "symbol", "bids", "asks")
    target: type = object

    def __init__(self, ts: int, recv_ts: int, symbol: str, bids: tuple[Level, ...], asks: tuple[Level, ...]) -> None:
        self.ts = ts
        self.recv_ts = recv_ts
        self.symbol = symbol
        self.bids = bids
        self.asks = asks
        self.__class__ = self.target


class _BookSnapshotBuilder(_BookBuilder):
    __slots__ = ()
    target = BookSnapshot


class _BookDeltaBuilder(_BookBuilder):
    __slots__ = ()
    target = BookDelta


class _TradeBuilder:
    __slots__ = ("ts", "recv_ts", "symbol", "side", "price", "qty")

    def __init__(self, ts: int, recv_ts: int, symbol: str, side: int, price: int, qty: int) -> None:
        self.ts = ts
        self.recv_ts = recv_ts
        self.symbol = symbol
        self.side = side
        self.price = price
        self.qty = qty
        self.__class__ = Trade  # type: ignore[assignment]


class _QuoteBuilder:
    __slots__ = ("ts", "recv_ts", "symbol", "bid_px", "bid_qty", "ask_px", "ask_qty")

    def __init__(self, ts: int, recv_ts: int, symbol: str, bid_px: int, bid_qty: int, ask_px: int, ask_qty: int) -> None:
        self.ts = ts
        self.recv_ts = recv_ts
        self.symbol = symbol
        self.bid_px = bid_px
        self.bid_qty = bid_qty
        self.ask_px = ask_px
        self.ask_qty = ask_qty
        self.__class__ = Quote  # type: ignore[assignment]


class _SeqGapBuilder:
    __slots__ = ("ts", "recv_ts", "symbol", "expected", "got")

    def __init__(self, ts: int, recv_ts: int, symbol: str, expected: int, got: int) -> None:
        self.ts = ts
        self.recv_ts = recv_ts
        self.symbol = symbol
        self.expected = expected
        self.got = got
        self.__class__ = SeqGap  # type: ignore[assignment]


# Same positional arguments as the event classes; the return value is an instance of the class.
make_book_snapshot: Callable[[int, int, str, tuple[Level, ...], tuple[Level, ...]], BookSnapshot] = _BookSnapshotBuilder  # type: ignore[assignment]
make_book_delta: Callable[[int, int, str, tuple[Level, ...], tuple[Level, ...]], BookDelta] = _BookDeltaBuilder  # type: ignore[assignment]
make_trade: Callable[[int, int, str, int, int, int], Trade] = _TradeBuilder  # type: ignore[assignment]
make_quote: Callable[[int, int, str, int, int, int, int], Quote] = _QuoteBuilder  # type: ignore[assignment]
make_seq_gap: Callable[[int, int, str, int, int], SeqGap] = _SeqGapBuilder  # type: ignore[assignment]

BUILDERS: dict[type, Callable[..., Event]] = {
    BookSnapshot: make_book_snapshot,
    BookDelta: make_book_delta,
    Trade: make_trade,
    Quote: make_quote,
    SeqGap: make_seq_gap,
}
"""Event class -> its fast builder (tests check each builder's slots equal the class's fields)."""
