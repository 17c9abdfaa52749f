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
