"""Records shared by the trading core: desired quotes, orders, actions and venue reports.

These are the words the strategy, the order manager, the guards, the fill simulator and
the venues speak to each other.  Prices are integer ticks and sizes integer lots of the
symbol's ``Instrument``; times are integer nanoseconds passed in by the driver (the core
never reads a clock).  ``side`` is ``BUY`` (+1) or ``SELL`` (-1) from ``core.events``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from mmkit.core.events import BUY, SELL

__all__ = [
    "BUY",
    "SELL",
    "side_name",
    "OrderState",
    "OPEN_STATES",
    "TERMINAL_STATES",
    "DesiredQuote",
    "Order",
    "CreateOrder",
    "AmendOrder",
    "CancelOrder",
    "Action",
    "Ack",
    "Reject",
    "Fill",
    "Canceled",
    "VenueReport",
    "OP_CREATE",
    "OP_AMEND",
    "OP_CANCEL",
    "make_create_order",
    "make_cancel_order",
    "make_ack",
    "make_fill",
    "make_canceled",
]

OP_CREATE = "create"
OP_AMEND = "amend"
OP_CANCEL = "cancel"


def side_name(side: int) -> str:
    """``"buy"`` / ``"sell"`` for traces and logs."""
    if side == BUY:
        return "buy"
    if side == SELL:
        return "sell"
    raise ValueError(f"side must be BUY (+1) or SELL (-1), got {side!r}")


class OrderState:
    """Order lifecycle states (string constants, cheap to compare and to serialize).

    pending_new -> open -> (partially_filled ->)* filled
    open / partially_filled -> pending_amend -> open | partially_filled
    any live state -> pending_cancel -> canceled (or filled, if a fill wins the race)
    pending_new -> rejected
    """

    PENDING_NEW = "pending_new"
    OPEN = "open"
    PENDING_AMEND = "pending_amend"
    PENDING_CANCEL = "pending_cancel"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"


OPEN_STATES = frozenset(
    {OrderState.PENDING_NEW, OrderState.OPEN, OrderState.PENDING_AMEND, OrderState.PENDING_CANCEL, OrderState.PARTIALLY_FILLED}
)
TERMINAL_STATES = frozenset({OrderState.FILLED, OrderState.CANCELED, OrderState.REJECTED})


@dataclass(frozen=True, slots=True)
class DesiredQuote:
    """What the strategy wants resting: one price level on one side.

    ``level`` 0 is the level nearest the mid.  The order manager reconciles a list of
    these against live orders; the strategy never sees order ids.
    """

    symbol: str
    side: int
    level: int
    price: int
    qty: int


@dataclass(slots=True)
class Order:
    """A live or finished order as the order manager tracks it (mutable by design)."""

    client_id: str
    symbol: str
    side: int
    price: int
    qty: int
    level: int
    created_ns: int
    state: str = OrderState.PENDING_NEW
    filled: int = 0
    updated_ns: int = 0
    placed_ns: int = 0  # when the venue acknowledged it (0 until acked)
    venue_id: str = ""
    post_only: bool = True
    pending_price: int = 0  # target of an in-flight amend
    pending_qty: int = 0

    @property
    def remaining(self) -> int:
        return self.qty - self.filled

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES


@dataclass(frozen=True, slots=True)
class CreateOrder:
    """Place a new limit order."""

    client_id: str
    symbol: str
    side: int
    price: int
    qty: int
    post_only: bool = True
    level: int = 0

    op = OP_CREATE


@dataclass(frozen=True, slots=True)
class AmendOrder:
    """Change price and/or size of a resting order (queue priority is lost on a price change).

    ``qty`` is the new total quantity, filled part included (Bybit ``qty`` semantics).
    """

    client_id: str
    symbol: str
    side: int
    price: int
    qty: int

    op = OP_AMEND


@dataclass(frozen=True, slots=True)
class CancelOrder:
    """Cancel a resting order. Cancels are never blocked by any guard or throttle."""

    client_id: str
    symbol: str
    reason: str = ""

    op = OP_CANCEL


Action = CreateOrder | AmendOrder | CancelOrder


@dataclass(frozen=True, slots=True)
class Ack:
    """The venue accepted a create or amend; ``price``/``qty`` are what now rests.

    ``qty`` is the order's total quantity, filled part included (as venues report it and
    as ``AmendOrder.qty`` asks for it); 0 for either means "as requested".
    """

    ts: int
    client_id: str
    op: str
    price: int = 0
    qty: int = 0


@dataclass(frozen=True, slots=True)
class Reject:
    """The venue refused an action (``reason`` e.g. ``post_only_would_cross``, ``http_429``)."""

    ts: int
    client_id: str
    op: str
    reason: str
    http_code: int = 0


@dataclass(frozen=True, slots=True)
class Fill:
    """A (partial) execution of one of our orders.

    ``fee`` is exact (``Decimal``) in quote currency (USD; base coin for inverse
    contracts) and negative for a rebate; ``liquidity`` is ``"maker"`` or ``"taker"``.
    Fills are rare next to market events, so exact money here costs nothing measurable.
    ``cum_qty`` is the order's cumulative filled lots *after* this fill (0 = unknown):
    ``(client_id, cum_qty)`` identifies a fill, so a report delivered twice is applied
    once (venues give it: Bybit ``cumExecQty`` / ``orderQty - leavesQty``, Binance ``z``).
    """

    ts: int
    client_id: str
    symbol: str
    side: int
    price: int
    qty: int
    liquidity: str
    fee: Decimal = Decimal(0)
    cum_qty: int = 0


@dataclass(frozen=True, slots=True)
class Canceled:
    """The venue confirmed a cancel (or expired the order)."""

    ts: int
    client_id: str
    reason: str = ""


VenueReport = Ack | Reject | Fill | Canceled


# ----------------------------------------------------------------------------- fast builders
# The order manager and the fill simulator make one action and one or two reports per
# order; a frozen dataclass ``__init__`` costs ~1 us (``object.__setattr__`` per field),
# these ~0.3 us.  Same relabeling trick as ``core.events``: a plain slotted class with the
# dataclass's slots in the same order sets them, then becomes the real class (tests check
# the slots match).  Positional, every field given.
class _CreateOrderBuilder:
    __slots__ = ("client_id", "symbol", "side", "price", "qty", "post_only", "level")

    def __init__(self, client_id: str, symbol: str, side: int, price: int, qty: int, post_only: bool,
                 level: int) -> None:
        self.client_id = client_id
        self.symbol = symbol
        self.side = side
        self.price = price
        self.qty = qty
        self.post_only = post_only
        self.level = level
        self.__class__ = CreateOrder  # type: ignore[assignment]


class _CancelOrderBuilder:
    __slots__ = ("client_id", "symbol", "reason")

    def __init__(self, client_id: str, symbol: str, reason: str) -> None:
        self.client_id = client_id
        self.symbol = symbol
        self.reason = reason
        self.__class__ = CancelOrder  # type: ignore[assignment]


class _AckBuilder:
    __slots__ = ("ts", "client_id", "op", "price", "qty")

    def __init__(self, ts: int, client_id: str, op: str, price: int, qty: int) -> None:
        self.ts = ts
        self.client_id = client_id
        self.op = op
        self.price = price
        self.qty = qty
        self.__class__ = Ack  # type: ignore[assignment]


class _FillBuilder:
    __slots__ = ("ts", "client_id", "symbol", "side", "price", "qty", "liquidity", "fee", "cum_qty")

    def __init__(self, ts: int, client_id: str, symbol: str, side: int, price: int, qty: int, liquidity: str,
                 fee: Decimal, cum_qty: int) -> None:
        self.ts = ts
        self.client_id = client_id
        self.symbol = symbol
        self.side = side
        self.price = price
        self.qty = qty
        self.liquidity = liquidity
        self.fee = fee
        self.cum_qty = cum_qty
        self.__class__ = Fill  # type: ignore[assignment]


class _CanceledBuilder:
    __slots__ = ("ts", "client_id", "reason")

    def __init__(self, ts: int, client_id: str, reason: str) -> None:
        self.ts = ts
        self.client_id = client_id
        self.reason = reason
        self.__class__ = Canceled  # type: ignore[assignment]


make_create_order: Callable[[str, str, int, int, int, bool, int], CreateOrder] = _CreateOrderBuilder  # type: ignore[assignment]
make_cancel_order: Callable[[str, str, str], CancelOrder] = _CancelOrderBuilder  # type: ignore[assignment]
make_ack: Callable[[int, str, str, int, int], Ack] = _AckBuilder  # type: ignore[assignment]
make_fill: Callable[[int, str, str, int, int, int, str, Decimal, int], Fill] = _FillBuilder  # type: ignore[assignment]
make_canceled: Callable[[int, str, str], Canceled] = _CanceledBuilder  # type: ignore[assignment]
