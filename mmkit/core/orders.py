"""The order manager: desired quotes in, create/amend/cancel actions out, one symbol.

Why it exists: the strategy says *what* it wants resting ("bid level 0 at 61837.6 for
0.02"); the venue only knows orders.  Between them sit every rule about *how* to get
there without burning queue priority, rate limits or the budget: keep what already rests
at the right price, do not chase one-tick wiggles, refresh what went stale, cancel at
once what the strategy pulled, stay under the levels and notional caps, and survive acks
and fills that arrive late, twice or out of order.  ``docs/orders.md`` is the user
reference (state machine, parameters, policies, idempotency rules).

One decision tick::

    actions = om.reconcile(desired, now_ns, mid_ticks, Budget(target_usd, max_levels))
    for report in venue.execute(actions): om.on_report(report)

Every returned action counts as sent (gates were told via ``on_sent``): the driver must
send all of them, cancels first (they come first in the list).

Matching.  Per side, a live order whose price equals a desired price keeps resting and
takes that level (so a ladder that shifts by one level keeps its queue places).  The
orders and desired quotes left over are paired nearest-the-mid first: each pair is a
*replacement*, done only when the order is at least ``min_time_in_book_ms`` old and the
price moved at least ``replace_threshold_bps`` -- or, with the anti-stale guard, when
the order is older than ``order_ttl_ms`` or the mid drifted ``price_drift_bps`` since it
was priced.  Surplus orders are canceled at once (reason ``pulled``), surplus desired
quotes become creates.  Orders older than ``tail_age_ms`` are batch-canceled (``tail``)
and re-created at the desired price.

Budget (exact, per side).  An order *commits* the notional of its filled part (at the
fill prices) plus its unfilled part (at its limit price, the larger version while an
amend is in flight) for as long as it is live, including while a cancel is in flight (a
fill can still win that race).  For each side, a create or amend is sent only if the
side's committed notional stays ``<= target_usd`` afterwards; notional is computed in
integer units of the instrument (ticks x lots, or lots for inverse contracts), so the
check is exact.  A partial fill therefore keeps using the budget until the order is
done, and a refill cannot overflow it.  Per side, because fills on one side move the
position one way: bids and asks filling together net out, so the exposure the resting
orders can add is the larger side, not the sum (``QuoteContext.target_usd`` in
``core/strategy.py`` is per side for the same reason).

Pure: stdlib only, no I/O, time passed in, randomness (tail jitter) from a passed-in
``random.Random``.  Configuration arrives as duck-typed sections (``OrderParams.
from_config``); the core never imports the config package.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Protocol

from mmkit.core.events import BUY, SELL
from mmkit.core.gates import Gate, GateChain
from mmkit.core.instruments import Instrument
from mmkit.core.types import (
    OP_AMEND,
    OP_CANCEL,
    OP_CREATE,
    Ack,
    Action,
    AmendOrder,
    CancelOrder,
    Canceled,
    CreateOrder,
    DesiredQuote,
    Fill,
    Order,
    OrderState,
    Reject,
    VenueReport,
    make_cancel_order,
    make_create_order,
)

__all__ = [
    "POLICY_AMEND",
    "POLICY_CANCEL_REPLACE",
    "POLICIES",
    "CANCEL_REASONS",
    "EXTERNAL_LEVEL",
    "FLOW_CONTROL_PREFIXES",
    "SNAPSHOT_VERSION",
    "StrategySection",
    "ReplaceSection",
    "TailBatchSection",
    "LatencyBoostSection",
    "TradingSection",
    "OrderParams",
    "Budget",
    "OrderCounters",
    "OrderManager",
    "OrderSnapshotError",
]

POLICY_AMEND = "amend"
POLICY_CANCEL_REPLACE = "cancel_replace"
POLICIES = (POLICY_AMEND, POLICY_CANCEL_REPLACE)
SNAPSHOT_VERSION = 1

# Cancel reasons (``CancelOrder.reason`` and the ``cancels`` counter keys).
R_PULLED = "pulled"  # the strategy no longer wants this level (or the level cap dropped)
R_REPLACE = "replace"  # cancel half of a cancel_replace
R_STALE_TTL = "stale:ttl"  # anti-stale guard, order older than order_ttl_ms
R_STALE_DRIFT = "stale:drift"  # anti-stale guard, mid drifted price_drift_bps
R_TAIL = "tail"  # tail batch-cancel (latency boost)
R_BUDGET = "budget"  # the budget shrank under what the resting orders commit
R_TIMEOUT = "pending_timeout"  # no ack/confirmation within pending_timeout_ms (cancel re-sent)
CANCEL_REASONS = (R_PULLED, R_REPLACE, R_STALE_TTL, R_STALE_DRIFT, R_TAIL, R_BUDGET, R_TIMEOUT)
# Gate reasons that only delay an order (flow control); any other reason is risk-class.
FLOW_CONTROL_PREFIXES = ("throttle", "circuit")
EXTERNAL_LEVEL = -1  # the level of an order created by ``submit_external``: it holds no ladder slot

NS_PER_MS = 1_000_000
_NEVER = -(1 << 62)
_FOREVER = 1 << 62

_PENDING_NEW = OrderState.PENDING_NEW
_OPEN = OrderState.OPEN
_PENDING_AMEND = OrderState.PENDING_AMEND
_PENDING_CANCEL = OrderState.PENDING_CANCEL
_PARTIAL = OrderState.PARTIALLY_FILLED
_FILLED = OrderState.FILLED
_CANCELED = OrderState.CANCELED
_REJECTED = OrderState.REJECTED
_RESTING = frozenset({_OPEN, _PARTIAL})  # acknowledged, nothing in flight: may be replaced
_PENDING = frozenset({_PENDING_NEW, _PENDING_AMEND, _PENDING_CANCEL})
_TERMINAL = frozenset({_FILLED, _CANCELED, _REJECTED})
_ALL_STATES = _RESTING | _PENDING | _TERMINAL


# ----------------------------------------------------------------------------- configuration
class StrategySection(Protocol):
    """The fields of the ``strategy:`` config section the order manager reads."""

    @property
    def levels_per_side(self) -> int: ...

    @property
    def min_time_in_book_ms(self) -> int: ...

    @property
    def replace_threshold_bps(self) -> float: ...

    @property
    def order_ttl_ms(self) -> int: ...

    @property
    def price_drift_bps(self) -> float: ...

    @property
    def enable_anti_stale_guard(self) -> bool: ...


class ReplaceSection(Protocol):
    """``latency_boost.replace``."""

    @property
    def max_concurrent(self) -> int: ...

    @property
    def min_interval_ms(self) -> int: ...


class TailBatchSection(Protocol):
    """``latency_boost.tail_batch``."""

    @property
    def tail_age_ms(self) -> int: ...

    @property
    def max_batch(self) -> int: ...

    @property
    def jitter_ms(self) -> int: ...


class LatencyBoostSection(Protocol):
    """The ``latency_boost:`` config section."""

    @property
    def replace(self) -> ReplaceSection: ...

    @property
    def tail_batch(self) -> TailBatchSection: ...


class TradingSection(Protocol):
    """The field of the ``trading:`` section the order manager reads."""

    @property
    def post_only(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class OrderParams:
    """Every knob of the order manager, flat, with the config defaults.

    Zero switches a mechanism off where that makes sense: ``min_time_in_book_ms=0`` and
    ``replace_threshold_bps=0`` replace on any price change, ``tail_age_ms=0`` disables
    the tail batch-cancel, ``replace_min_interval_ms=0`` removes the spacing between
    replacements.  ``policy`` is ``"amend"`` (move a resting order in place) or
    ``"cancel_replace"`` (cancel it and create a new one; never touches an order that
    rests at the desired price -- the benchmark baseline).  ``pending_timeout_ms`` and
    ``max_cancel_retries`` are not config keys: they bound how long an order may wait for
    an ack or a cancel confirmation before the manager (re-)sends a cancel, and how many
    times it re-sends before it gives the order up as canceled.
    """

    levels_per_side: int = 3
    min_time_in_book_ms: int = 500
    replace_threshold_bps: float = 3.0
    order_ttl_ms: int = 800
    price_drift_bps: float = 2.0
    enable_anti_stale_guard: bool = True
    replace_max_concurrent: int = 2
    replace_min_interval_ms: int = 60
    tail_age_ms: int = 800
    tail_max_batch: int = 10
    tail_jitter_ms: int = 0
    post_only: bool = True
    policy: str = POLICY_AMEND
    pending_timeout_ms: int = 5000
    max_cancel_retries: int = 3
    terminal_retention: int = 4096

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {self.policy!r}")
        if self.levels_per_side < 0:
            raise ValueError(f"levels_per_side must be >= 0, got {self.levels_per_side}")
        if self.replace_max_concurrent < 1:
            raise ValueError(f"replace_max_concurrent must be >= 1, got {self.replace_max_concurrent}")
        if self.tail_max_batch < 1:
            raise ValueError(f"tail_max_batch must be >= 1, got {self.tail_max_batch}")
        if self.pending_timeout_ms < 1:
            raise ValueError(f"pending_timeout_ms must be >= 1, got {self.pending_timeout_ms}")
        for name in ("min_time_in_book_ms", "order_ttl_ms", "replace_min_interval_ms", "tail_age_ms",
                     "tail_jitter_ms", "max_cancel_retries", "terminal_retention"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("replace_threshold_bps", "price_drift_bps"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    @classmethod
    def from_config(cls, strategy: StrategySection, latency_boost: LatencyBoostSection,
                    trading: TradingSection | None = None, *, policy: str = POLICY_AMEND,
                    **overrides: Any) -> OrderParams:
        """Build from the ``strategy``, ``latency_boost`` and ``trading`` config sections."""
        rep, tail = latency_boost.replace, latency_boost.tail_batch
        values: dict[str, Any] = {
            "levels_per_side": int(strategy.levels_per_side),
            "min_time_in_book_ms": int(strategy.min_time_in_book_ms),
            "replace_threshold_bps": float(strategy.replace_threshold_bps),
            "order_ttl_ms": int(strategy.order_ttl_ms),
            "price_drift_bps": float(strategy.price_drift_bps),
            "enable_anti_stale_guard": bool(strategy.enable_anti_stale_guard),
            "replace_max_concurrent": int(rep.max_concurrent),
            "replace_min_interval_ms": int(rep.min_interval_ms),
            "tail_age_ms": int(tail.tail_age_ms),
            "tail_max_batch": int(tail.max_batch),
            "tail_jitter_ms": int(tail.jitter_ms),
            "post_only": True if trading is None else bool(trading.post_only),
            "policy": policy,
        }
        values.update(overrides)
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Budget:
    """The allocator's caps for one symbol: ``target_usd`` of committed notional *per
    side* (quote currency, ``None`` = no notional cap) and ``max_levels_per_side``
    (``None`` = only ``OrderParams.levels_per_side``; the smaller of the two applies).

    ``target_usd`` is stored as an exact ``Decimal`` (a float is converted through its
    shortest repr, so ``2500.1`` means 2500.1, not its binary neighbour).
    """

    target_usd: Decimal | None = None
    max_levels_per_side: int | None = None

    def __post_init__(self) -> None:
        t = self.target_usd
        if t is not None and not isinstance(t, Decimal):
            t = Decimal(repr(t)) if isinstance(t, float) else Decimal(t)
            object.__setattr__(self, "target_usd", t)
        if t is not None and (not t.is_finite() or t < 0):
            raise ValueError(f"target_usd must be a finite number >= 0, got {self.target_usd}")
        if self.max_levels_per_side is not None and self.max_levels_per_side < 0:
            raise ValueError(f"max_levels_per_side must be >= 0, got {self.max_levels_per_side}")


# ----------------------------------------------------------------------------- counters
class OrderCounters:
    """Monotonic counters for metrics (``as_dict`` for exporters and tests).

    Sent actions: ``created``, ``amended``, ``canceled`` (and ``cancels`` by reason);
    ``replaces`` (replacements started, amend or cancel+create), ``refresh_amends`` and
    ``stale_cancels`` by anti-stale reason (``ttl``/``drift``), ``tail_batch_events`` and
    ``tail_cancels``.  Held back: ``replace_throttled``, ``budget_capped``,
    ``level_capped`` (desired quotes beyond the level cap), ``gated`` by gate reason.
    Reports: ``acked``, ``rejected`` by op, ``fills``, ``late_fills`` (for an order already
    finished), ``canceled_confirmed``, ``filled_orders``, ``idem_hits`` by op (duplicate
    reports and venue "duplicate client id" rejects), ``late_reports`` (acks/rejects that
    no longer apply), ``unknown_reports``.  Recovery: ``pending_timeouts``,
    ``cancel_give_ups``.
    """

    __slots__ = ("created", "amended", "canceled", "cancels", "replaces", "refresh_amends", "stale_cancels",
                 "tail_batch_events", "tail_cancels", "replace_throttled", "budget_capped", "level_capped",
                 "gated", "acked", "rejected", "fills", "late_fills", "canceled_confirmed", "filled_orders",
                 "idem_hits", "late_reports", "unknown_reports", "pending_timeouts", "cancel_give_ups")

    _DICTS = ("cancels", "refresh_amends", "stale_cancels", "gated", "rejected", "idem_hits")

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, {} if name in self._DICTS else 0)

    def as_dict(self) -> dict[str, Any]:
        return {name: (dict(sorted(getattr(self, name).items())) if name in self._DICTS else getattr(self, name))
                for name in self.__slots__}

    def load(self, data: Mapping[str, Any]) -> None:
        for name in self.__slots__:
            if name in data:
                setattr(self, name, dict(data[name]) if name in self._DICTS else int(data[name]))


def _bump(d: dict[str, int], key: str, n: int = 1) -> None:
    d[key] = d.get(key, 0) + n


# ----------------------------------------------------------------------------- the tracked order
@dataclass(slots=True, eq=False)
class _Live(Order):
    """An ``Order`` plus the manager's bookkeeping (never handed out: see ``open_orders``).

    ``priced_ns``: when the venue acknowledged the current price (the age every timing
    rule uses); ``ref_mid``: the mid when the current price was chosen (drift);
    ``sent_ns``: when the last action on it was sent (pending timeout); ``committed``:
    its budget units (see the module doc); ``fill_units``/``fill_lots``: sums over the
    distinct fills applied; ``fill_keys``: the ``cum_qty`` values seen (duplicates).
    """

    side_idx: int = 0
    attached: bool = True
    acked: bool = False
    priced_ns: int = 0
    sent_ns: int = 0
    ref_mid: float = 0.0
    pending_ref_mid: float = 0.0
    committed: int = 0
    fill_units: int = 0
    fill_lots: int = 0
    fill_keys: set[int] | None = None
    cancel_retries: int = 0
    cancel_rejected: bool = False

    # identity, not field equality: list.remove() and set membership stay O(1) per item
    __eq__ = object.__eq__
    __hash__ = object.__hash__


_SNAP_FIELDS = ("client_id", "side", "price", "qty", "level", "created_ns", "state", "filled", "updated_ns",
                "placed_ns", "venue_id", "post_only", "pending_price", "pending_qty", "acked", "priced_ns",
                "sent_ns", "ref_mid", "pending_ref_mid", "fill_units", "fill_lots", "cancel_retries",
                "cancel_rejected")


class OrderSnapshotError(ValueError):
    """A payload that is not an order-manager snapshot for this symbol and id prefix."""


def _side_idx(side: int) -> int:
    if side == BUY:
        return 0
    if side == SELL:
        return 1
    raise ValueError(f"side must be BUY (+1) or SELL (-1), got {side!r}")


# ----------------------------------------------------------------------------- the manager
class OrderManager:
    """Orders of one symbol: reconcile desired quotes, track reports, enforce the caps.

    ``gates``: a ``Gate`` (e.g. a ``GateChain``) or an iterable of gates asked, in order,
    before every create and amend; cancels are never asked (but every sent action is
    reported with ``on_sent``).  ``id_prefix``: client ids are
    ``f"{id_prefix}{symbol}-{seq}"`` with ``seq`` counting up from 1 per manager, so the
    same inputs give the same ids (and ``snapshot``/``restore`` carry ``seq`` across a
    restart, so an id is never reused).  ``rng`` draws the tail batch jitter (required
    when ``tail_jitter_ms > 0``).
    """

    # slots: the compiled engine loop reads the reconcile fast path's state on every decision
    __slots__ = ("instrument", "symbol", "params", "id_prefix", "counters", "_id_base", "_rng", "_gate", "_inverse",
                 "_unit_usd", "_min_tib_ns", "_ttl_ns", "_guard", "_thr_bps", "_drift_bps", "_timeout_ns",
                 "_min_interval_ns", "_tail_age_ns", "_tail_thr_ns", "_amend", "_seq", "_orders", "_live", "_att", "_tot",
                 "_det", "_n_detached", "_finished", "_replacing", "_last_replace_ns", "_deadline_ns", "_budget", "_cap",
                 "_max_levels")

    def __init__(self, instrument: Instrument, params: OrderParams | None = None,
                 gates: Gate | Iterable[Gate] | None = None, id_prefix: str = "",
                 *, rng: random.Random | None = None) -> None:
        if isinstance(instrument, str) or not hasattr(instrument, "tick_size"):
            raise TypeError("OrderManager needs the symbol's Instrument (exact notional for the budget), "
                            f"got {instrument!r}")
        p = params if params is not None else OrderParams()
        if p.tail_jitter_ms > 0 and rng is None:
            raise ValueError("tail_jitter_ms > 0 needs a random.Random (rng=...) for deterministic jitter")
        self.instrument = instrument
        self.symbol = instrument.symbol
        self.params = p
        self.id_prefix = id_prefix
        self._id_base = f"{id_prefix}{instrument.symbol}-"
        self._rng = rng
        if gates is None:
            self._gate: Gate | None = None
        elif hasattr(gates, "check") and hasattr(gates, "on_sent"):
            self._gate = gates  # type: ignore[assignment]
        else:
            chain = GateChain(gates)  # type: ignore[arg-type]
            self._gate = chain if chain.gates else None
        # exact budget units: linear ticks*lots (value tick*lot*mult USD), inverse lots (lot*mult USD)
        self._inverse = bool(instrument.inverse)
        if self._inverse:
            self._unit_usd = instrument.lot_size * instrument.contract_multiplier
        else:
            self._unit_usd = instrument.tick_size * instrument.lot_size * instrument.contract_multiplier
        # timing, in ns
        self._min_tib_ns = p.min_time_in_book_ms * NS_PER_MS
        self._ttl_ns = p.order_ttl_ms * NS_PER_MS
        self._guard = p.enable_anti_stale_guard
        self._thr_bps = float(p.replace_threshold_bps)
        self._drift_bps = float(p.price_drift_bps)
        self._timeout_ns = p.pending_timeout_ms * NS_PER_MS
        self._min_interval_ns = p.replace_min_interval_ms * NS_PER_MS
        self._tail_age_ns = p.tail_age_ms * NS_PER_MS if p.tail_age_ms > 0 else _FOREVER
        self._tail_thr_ns = self._tail_age_ns
        self._draw_tail_jitter()
        self._amend = p.policy == POLICY_AMEND
        # state
        self._seq = 1
        self._orders: dict[str, _Live] = {}  # live and recently finished, by client id
        self._live: dict[str, _Live] = {}
        self._att: tuple[list[_Live], list[_Live]] = ([], [])  # live, not pending_cancel, by level
        self._tot = [0, 0]  # committed units per side (all live orders)
        self._det = [0, 0]  # committed units per side of detached orders (pending_cancel, external)
        self._n_detached = 0
        self._finished: deque[str] = deque()
        self._replacing: set[str] = set()
        self._last_replace_ns = _NEVER
        self._deadline_ns = _FOREVER  # earliest pending timeout (may be early, never late)
        self._budget: Budget | None = None
        self._cap: int | None = None
        self._max_levels = p.levels_per_side
        self.counters = OrderCounters()

    # ------------------------------------------------------------------ small helpers
    def _draw_tail_jitter(self) -> None:
        j = self.params.tail_jitter_ms
        if j > 0 and self._tail_age_ns < _FOREVER:
            assert self._rng is not None
            self._tail_thr_ns = self._tail_age_ns + self._rng.randint(0, j) * NS_PER_MS
        else:
            self._tail_thr_ns = self._tail_age_ns

    def _units(self, price: int, lots: int) -> int:
        return lots if self._inverse else price * lots

    def _commit_value(self, o: _Live) -> int:
        if o.state in _TERMINAL:
            return 0
        # filled part at the fill prices; filled lots not yet seen as fills (cum_qty ahead of
        # the fills we got) and the unfilled part at the limit price
        extra = o.filled - o.fill_lots
        unfilled = o.qty - o.filled
        lots = (extra if extra > 0 else 0) + (unfilled if unfilled > 0 else 0)
        c = o.fill_units + self._units(o.price, lots)
        if o.pending_qty:
            unfilled = o.pending_qty - o.filled
            lots = (extra if extra > 0 else 0) + (unfilled if unfilled > 0 else 0)
            c2 = o.fill_units + self._units(o.pending_price, lots)
            if c2 > c:
                c = c2
        return c

    def _recommit(self, o: _Live) -> None:
        c = self._commit_value(o)
        d = c - o.committed
        if d:
            o.committed = c
            self._tot[o.side_idx] += d
            if not o.attached:
                self._det[o.side_idx] += d

    def _detach(self, o: _Live) -> None:
        if o.attached:
            o.attached = False
            self._att[o.side_idx].remove(o)
            self._det[o.side_idx] += o.committed
            self._n_detached += 1

    def _finish(self, o: _Live, state: str, ts: int) -> None:
        """Move a live order to a terminal state: release its budget and its slot."""
        if o.attached:
            self._att[o.side_idx].remove(o)
            o.attached = False
        else:
            self._det[o.side_idx] -= o.committed
            self._n_detached -= 1
        self._tot[o.side_idx] -= o.committed
        o.committed = 0
        o.state = state
        o.updated_ns = ts
        o.pending_price = o.pending_qty = 0
        self._live.pop(o.client_id, None)
        self._replacing.discard(o.client_id)
        if state == _FILLED:
            self.counters.filled_orders += 1
        fin = self._finished
        fin.append(o.client_id)
        keep = self.params.terminal_retention
        while len(fin) > keep:
            old = fin.popleft()
            gone = self._orders.get(old)
            if gone is not None and gone.state in _TERMINAL:
                del self._orders[old]

    def _set_budget(self, budget: Budget | None) -> None:
        self._budget = budget
        lv = self.params.levels_per_side
        if budget is None:
            self._cap = None
        else:
            if budget.max_levels_per_side is not None and budget.max_levels_per_side < lv:
                lv = budget.max_levels_per_side
            t = budget.target_usd
            self._cap = None if t is None else int(t // self._unit_usd)
        self._max_levels = lv

    # ------------------------------------------------------------------ sending
    def _send_cancel(self, o: _Live, reason: str, now_ns: int, out: list[Action]) -> None:
        a = make_cancel_order(o.client_id, self.symbol, reason)
        if self._gate is not None:
            self._gate.on_sent(a, now_ns)
        if o.attached:
            self._detach(o)
        o.state = _PENDING_CANCEL
        o.sent_ns = now_ns
        o.updated_ns = now_ns
        o.cancel_rejected = False
        due = now_ns + self._timeout_ns
        if due < self._deadline_ns:
            self._deadline_ns = due
        c = self.counters
        c.canceled += 1
        _bump(c.cancels, reason)
        out.append(a)

    def _try_create(self, q: DesiredQuote, si: int, now_ns: int, mid: float, out: list[Action]) -> str | None:
        c = self.counters
        att = self._att[si]
        if len(att) >= self._max_levels:
            c.level_capped += 1
            return None
        units = q.qty if self._inverse else q.price * q.qty
        cap = self._cap
        if cap is not None and self._tot[si] + units > cap:
            c.budget_capped += 1
            return None
        cid = self._id_base + str(self._seq)
        a = make_create_order(cid, self.symbol, q.side, q.price, q.qty, self.params.post_only, q.level)
        gate = self._gate
        if gate is not None:
            why = gate.check(a, now_ns)
            if why is not None:
                _bump(c.gated, why)
                return None
            gate.on_sent(a, now_ns)
        self._seq += 1
        o = _Live(cid, self.symbol, q.side, q.price, q.qty, q.level, now_ns, updated_ns=now_ns,
                  post_only=self.params.post_only, side_idx=si, sent_ns=now_ns, ref_mid=mid, committed=units)
        self._orders[cid] = o
        self._live[cid] = o
        att.append(o)
        self._tot[si] += units
        due = now_ns + self._timeout_ns
        if due < self._deadline_ns:
            self._deadline_ns = due
        c.created += 1
        out.append(a)
        return cid

    def _throttled(self, now_ns: int) -> bool:
        return (len(self._replacing) >= self.params.replace_max_concurrent
                or now_ns - self._last_replace_ns < self._min_interval_ns)

    def _blocked_replace(self, o: _Live, stale: str | None, why: str, now_ns: int, cancels: list[Action]) -> None:
        """A gate refused the replacement of ``o``: keep it, or cancel it when it must not rest.

        A stale order is canceled (the anti-stale guard's job is that it does not rest);
        so is any order whose replacement a risk-class gate refused (``risk:*``,
        ``intraday:*``, ``pos_skew:*``, ``killswitch``...): those gates block only
        risk-increasing orders, and the resting order on the same side is one too.  Flow
        control (``throttle*``, ``circuit*``) only delays: the order keeps resting.
        """
        c = self.counters
        _bump(c.gated, why)
        if stale is not None:
            _bump(c.stale_cancels, stale)
            self._send_cancel(o, R_STALE_TTL if stale == "ttl" else R_STALE_DRIFT, now_ns, cancels)
        elif not why.startswith(FLOW_CONTROL_PREFIXES):
            self._send_cancel(o, why, now_ns, cancels)

    def _try_replace(self, q: DesiredQuote, o: _Live, si: int, stale: str | None, now_ns: int, mid: float,
                     cancels: list[Action], out: list[Action]) -> None:
        c = self.counters
        if self._throttled(now_ns):
            c.replace_throttled += 1
            return
        stale_reason = R_STALE_TTL if stale == "ttl" else R_STALE_DRIFT
        cap = self._cap
        gate = self._gate
        if self._amend:
            new_total = o.filled + q.qty
            # committed while the amend is in flight: the larger of the two versions
            pp, pq = o.pending_price, o.pending_qty
            o.pending_price, o.pending_qty = q.price, new_total
            newc = self._commit_value(o)
            o.pending_price, o.pending_qty = pp, pq
            if cap is not None and self._tot[si] - o.committed + newc > cap:
                c.budget_capped += 1
                if stale is not None:
                    _bump(c.stale_cancels, stale)
                    self._send_cancel(o, stale_reason, now_ns, cancels)
                return
            a: Action = AmendOrder(o.client_id, self.symbol, o.side, q.price, new_total)
            if gate is not None:
                why = gate.check(a, now_ns)
                if why is not None:
                    self._blocked_replace(o, stale, why, now_ns, cancels)
                    return
                gate.on_sent(a, now_ns)
            o.state = _PENDING_AMEND
            o.pending_price, o.pending_qty = q.price, new_total
            o.pending_ref_mid = mid
            o.sent_ns = o.updated_ns = now_ns
            self._recommit(o)
            self._replacing.add(o.client_id)
            due = now_ns + self._timeout_ns
            if due < self._deadline_ns:
                self._deadline_ns = due
            self._last_replace_ns = now_ns
            c.replaces += 1
            c.amended += 1
            if stale is not None:
                _bump(c.refresh_amends, stale)
            out.append(a)
            return
        # cancel_replace: cancel the old order, create the new one if the budget already has
        # room with the old one still counted (a cancel in flight may still fill), else the
        # create follows in a later reconcile once the cancel is confirmed
        units = q.qty if self._inverse else q.price * q.qty
        fits = cap is None or self._tot[si] + units <= cap
        if fits and gate is not None:
            probe = make_create_order(self._id_base + str(self._seq), self.symbol, q.side, q.price, q.qty,
                                self.params.post_only, q.level)
            why = gate.check(probe, now_ns)
            if why is not None:
                self._blocked_replace(o, stale, why, now_ns, cancels)
                return
        if stale is not None:
            _bump(c.stale_cancels, stale)
        self._send_cancel(o, stale_reason if stale is not None else R_REPLACE, now_ns, cancels)
        self._last_replace_ns = now_ns
        c.replaces += 1
        new_id = self._try_create(q, si, now_ns, mid, out) if fits else None
        if new_id is not None:
            self._replacing.add(new_id)
        else:
            if not fits:
                c.budget_capped += 1
            self._replacing.add(o.client_id)

    # ------------------------------------------------------------------ reconcile
    def reconcile(self, desired: Sequence[DesiredQuote], now_ns: int, mid_ticks: float = 0,
                  budget: Budget | None = None) -> list[Action]:
        """Diff ``desired`` against the live orders; return the actions to send now.

        ``desired`` holds this symbol's quotes (levels counted from 0 at the mid; sorted
        by side and level is the fast path, any order works); ``mid_ticks`` is the current
        mid in ticks (0 = unknown: no drift checks); ``budget`` caps notional per side and
        levels per side (``None`` = only ``params.levels_per_side``).  Cancels come first
        in the returned list, then amends and creates, nearest level first.
        """
        b = self._budget
        if budget is not b:
            if budget != b:
                self._set_budget(budget)
            else:
                self._budget = budget
        maxlv = self._max_levels
        if not self._n_detached and self._nothing_to_do(desired, now_ns, mid_ticks, maxlv):
            return []
        return self._reconcile_slow(desired, now_ns, mid_ticks)

    def _nothing_to_do(self, desired: Sequence[DesiredQuote], now_ns: int, mid: float, maxlv: int) -> bool:
        """The fast path: True only when the full pass would send nothing and change nothing.

        Holds for most ticks: each side's desired ladder (strictly monotone prices, levels
        0..n-1 under the cap) lines up one-to-one with resting orders (nothing in flight)
        that either rest at the desired price, or differ but are held (younger than
        ``min_time_in_book_ms``, or a move under ``replace_threshold_bps`` and not stale)
        and rest at no other desired price of the side (the full pass would re-match
        those); no order is due for the tail batch; the budget still covers every side.
        Anything else goes to ``_reconcile_slow``, which decides the same way.
        """
        att_b, att_a = self._att
        nb = na = 0
        sym = self.symbol
        tail_thr = self._tail_thr_ns
        guard = self._guard
        ttl = self._ttl_ns if guard else _FOREVER
        min_tib = self._min_tib_ns
        size_down = self._amend
        pb_o = pb_q = _FOREVER  # previous bid prices (order, desired): strictly decreasing
        pa_o = pa_q = 0  # previous ask prices: strictly increasing
        px_sets: tuple[set[int], set[int]] | None = None
        for q in desired:
            qp = q.price
            if q.side == BUY:
                if nb >= len(att_b):
                    return False
                o = att_b[nb]
                nb += 1
                op = o.price
                if op >= pb_o or qp >= pb_q:
                    return False
                pb_o = op
                pb_q = qp
            else:
                if na >= len(att_a):
                    return False
                o = att_a[na]
                na += 1
                op = o.price
                if op <= pa_o or qp <= pa_q:
                    return False
                pa_o = op
                pa_q = qp
            if (o.level != q.level or o.side != q.side or q.level >= maxlv or o.state not in _RESTING
                    or q.qty <= 0 or qp <= 0 or q.symbol != sym):
                return False
            age = now_ns - o.priced_ns
            if age >= tail_thr:
                return False
            if op == qp:
                rem = o.qty - o.filled
                if q.qty != rem and ((size_down and q.qty < rem) or age >= ttl):
                    return False
                continue
            if age >= min_tib:
                if age >= ttl:
                    return False
                if guard and mid > 0:
                    ref = o.ref_mid
                    if ref > 0 and abs(mid - ref) * 10000.0 >= self._drift_bps * ref:
                        return False
                if abs(qp - op) * 10000 >= self._thr_bps * op:
                    return False
            if px_sets is None:
                px_sets = (set(), set())
                for x in desired:
                    px_sets[0 if x.side == BUY else 1].add(x.price)
            if op in px_sets[0 if q.side == BUY else 1]:
                return False
        if nb != len(att_b) or na != len(att_a):
            return False
        cap = self._cap
        return cap is None or (self._tot[0] <= cap and self._tot[1] <= cap)

    def _reconcile_slow(self, desired: Sequence[DesiredQuote], now_ns: int, mid: float) -> list[Action]:
        cancels: list[Action] = []
        out: list[Action] = []
        if now_ns >= self._deadline_ns:
            self._expire_pending(now_ns, cancels)
        sides: tuple[list[DesiredQuote], list[DesiredQuote]] = ([], [])
        sym = self.symbol
        for q in desired:
            if q.symbol != sym:
                raise ValueError(f"order manager for {sym} got a desired quote for {q.symbol}")
            sides[_side_idx(q.side)].append(q)
        intents: list[tuple[int, int, DesiredQuote, _Live | None, str | None]] = []
        kept: list[tuple[_Live, DesiredQuote]] = []
        for si in (0, 1):
            self._plan_side(si, sides[si], now_ns, mid, cancels, intents, kept)
        if self._tail_age_ns < _FOREVER and kept:
            self._tail_batch(now_ns, kept, intents, cancels)
        intents.sort(key=lambda it: (it[0], it[1]))
        for _lv, si, q, o, stale in intents:
            if o is None:
                self._try_create(q, si, now_ns, mid, out)
            elif o.attached and o.state in _RESTING:
                self._try_replace(q, o, si, stale, now_ns, mid, cancels, out)
        for att in self._att:
            if len(att) > 1:
                prev = -1
                for o in att:
                    if o.level <= prev:
                        att.sort(key=_level_key)
                        break
                    prev = o.level
        if cancels:
            cancels.extend(out)
            return cancels
        return out

    def _plan_side(self, si: int, qs: list[DesiredQuote], now_ns: int, mid: float, cancels: list[Action],
                   intents: list[tuple[int, int, DesiredQuote, _Live | None, str | None]],
                   kept: list[tuple[_Live, DesiredQuote]]) -> None:
        c = self.counters
        maxlv = self._max_levels
        # the desired ladder: valid, under the level cap, one quote per level and per price
        if qs:
            # common case first: already clean (levels strictly increasing under the cap,
            # prices strictly moving away from the mid, all positive)
            prev_lv = -1
            prev_px = _FOREVER if si == 0 else 0
            for q in qs:
                lv, px = q.level, q.price
                if (lv <= prev_lv or lv >= maxlv or q.qty <= 0 or px <= 0
                        or (px >= prev_px if si == 0 else px <= prev_px)):
                    break
                prev_lv, prev_px = lv, px
            else:
                prev_lv = -2  # marker: clean
        if qs and prev_lv != -2:
            qs.sort(key=_level_key)
            clean: list[DesiredQuote] = []
            levels: set[int] = set()
            prices: set[int] = set()
            for q in qs:
                if q.qty <= 0 or q.price <= 0 or q.level < 0:
                    continue
                if q.level >= maxlv or len(clean) >= maxlv:
                    c.level_capped += 1
                    continue
                if q.level in levels or q.price in prices:
                    continue
                levels.add(q.level)
                prices.add(q.price)
                clean.append(q)
            qs = clean
        att = self._att[si]
        # a budget that shrank under what the resting orders commit: cancel from the outside in
        cap = self._cap
        if cap is not None and att and self._tot[si] - self._det[si] > cap:
            outer_first = sorted(att, key=_level_key, reverse=True)
            for o in outer_first:
                if self._tot[si] - self._det[si] <= cap:
                    break
                self._send_cancel(o, R_BUDGET, now_ns, cancels)
        # 1. exact price matches keep resting and take the desired level
        free = list(att)
        unmatched: list[DesiredQuote] = []
        guard = self._guard
        ttl = self._ttl_ns
        for q in qs:
            hit = None
            for o in free:
                if (o.pending_price if o.pending_qty else o.price) == q.price:
                    hit = o
                    break
            if hit is None:
                unmatched.append(q)
                continue
            free.remove(hit)
            hit.level = q.level
            kept.append((hit, q))
            if hit.state in _RESTING:
                rem = hit.qty - hit.filled
                if q.qty != rem:
                    stale = "ttl" if guard and now_ns - hit.priced_ns >= ttl else None
                    if stale is not None or (self._amend and q.qty < rem):
                        intents.append((q.level, si, q, hit, stale))
        # 2. leftovers pair up nearest-the-mid first: candidate replacements
        if free:
            side = BUY if si == 0 else SELL
            free.sort(key=lambda o: -o.price * side)
        n = len(unmatched)
        for k, q in enumerate(unmatched):
            if k >= len(free):
                intents.append((q.level, si, q, None, None))
                continue
            o = free[k]
            o.level = q.level
            kept.append((o, q))
            if o.state not in _RESTING:
                continue  # an ack or amend is in flight: wait for it
            age = now_ns - o.priced_ns
            if age < self._min_tib_ns:
                continue
            stale = None
            if guard:
                if age >= ttl:
                    stale = "ttl"
                elif mid > 0 and o.ref_mid > 0 and abs(mid - o.ref_mid) * 10000.0 >= self._drift_bps * o.ref_mid:
                    stale = "drift"
            if stale is None and abs(q.price - o.price) * 10000 < self._thr_bps * o.price:
                continue
            intents.append((q.level, si, q, o, stale))
        # 3. surplus orders: the strategy pulled them
        for o in free[n:]:
            self._send_cancel(o, R_PULLED, now_ns, cancels)

    def _tail_batch(self, now_ns: int, kept: list[tuple[_Live, DesiredQuote]],
                    intents: list[tuple[int, int, DesiredQuote, _Live | None, str | None]],
                    cancels: list[Action]) -> None:
        """Latency boost: cancel the old tail in one batch and re-create those levels."""
        oldest = _FOREVER
        for o, _q in kept:
            if o.priced_ns < oldest and o.state in _RESTING:
                oldest = o.priced_ns
        if now_ns - oldest < self._tail_thr_ns:
            return  # nobody is old enough (the usual case)
        busy = {id(it[3]) for it in intents if it[3] is not None}
        age_min = self._tail_age_ns
        cands = [(o, q) for o, q in kept
                 if o.attached and o.state in _RESTING and id(o) not in busy and now_ns - o.priced_ns >= age_min]
        if not cands:
            return
        cands.sort(key=lambda oq: (oq[0].priced_ns, oq[0].level, oq[0].side_idx))  # oldest, then nearest
        if now_ns - cands[0][0].priced_ns < self._tail_thr_ns:
            return  # the jittered trigger is not reached yet
        batch = cands[: self.params.tail_max_batch]
        for o, q in batch:
            self._send_cancel(o, R_TAIL, now_ns, cancels)
            intents.append((q.level, o.side_idx, q, None, None))
        c = self.counters
        c.tail_batch_events += 1
        c.tail_cancels += len(batch)
        self._draw_tail_jitter()

    def _expire_pending(self, now_ns: int, cancels: list[Action]) -> None:
        """Orders stuck waiting for an ack or a cancel confirmation: (re-)send a cancel."""
        nxt = _FOREVER
        timeout = self._timeout_ns
        c = self.counters
        for o in list(self._live.values()):
            if o.state not in _PENDING:
                continue
            due = o.sent_ns + timeout
            if now_ns >= due:
                if o.state == _PENDING_CANCEL:
                    if o.cancel_retries >= self.params.max_cancel_retries:
                        # the venue never confirmed: give the order up (late fills still apply)
                        c.cancel_give_ups += 1
                        self._finish(o, _CANCELED, now_ns)
                        continue
                    o.cancel_retries += 1
                c.pending_timeouts += 1
                self._send_cancel(o, R_TIMEOUT, now_ns, cancels)
                due = now_ns + timeout
            if due < nxt:
                nxt = due
        self._deadline_ns = nxt

    # ------------------------------------------------------------------ kill switch
    def cancel_all(self, now_ns: int, reason: str = "cancel_all", side: int | None = None) -> list[CancelOrder]:
        """Cancel every live order, or those of one ``side`` (kill switch, shutdown, a risk
        breach on one side). Never gated.

        Orders already waiting for a cancel confirmation get the cancel again: a kill
        switch must not depend on an earlier cancel having arrived.  The next
        ``reconcile`` re-creates what the strategy still wants (gates permitting), so on
        a lasting breach pull the side in the strategy's context as well.
        """
        out: list[Action] = []
        for o in list(self._live.values()):
            if side is None or o.side == side:
                self._send_cancel(o, reason, now_ns, out)
        return out  # type: ignore[return-value]

    # ------------------------------------------------------------------ operator orders and settings
    def submit_external(self, side: int, price: int, qty: int, now_ns: int, *, post_only: bool = False,
                        mid_ticks: float = 0.0) -> tuple[CreateOrder | None, str | None]:
        """Create one order outside the desired-quote ladder (an operator's flatten order)
        and track it like any other, so its ack, fills and cancel go through ``on_report``:
        the driver books its fill and it leaves ``open_orders`` once done.  (An order sent
        with an id the manager did not make is unknown to ``on_report``: never booked,
        never finished.)

        The order holds no level (``EXTERNAL_LEVEL``): ``reconcile`` neither matches,
        replaces nor pulls it, ``cancel_all`` cancels it, the pending timeout applies.  It
        skips the level and budget caps (an operator decision, usually reducing the
        position; its notional still counts as committed while it lives) but asks the gates
        like every create: risk-class gates pass reducing orders, flow control may refuse.
        Returns ``(action, None)``, which the caller must send, or ``(None, reason)`` when a
        gate refused it (counted in ``counters.gated``).
        """
        si = _side_idx(side)
        if isinstance(price, bool) or not isinstance(price, int) or price <= 0:
            raise ValueError(f"price must be a positive integer of ticks, got {price!r}")
        if isinstance(qty, bool) or not isinstance(qty, int) or qty <= 0:
            raise ValueError(f"qty must be a positive integer of lots, got {qty!r}")
        c = self.counters
        cid = self._id_base + str(self._seq)
        a = CreateOrder(cid, self.symbol, side, price, qty, bool(post_only), EXTERNAL_LEVEL)
        gate = self._gate
        if gate is not None:
            why = gate.check(a, now_ns)
            if why is not None:
                _bump(c.gated, why)
                return None, why
            gate.on_sent(a, now_ns)
        self._seq += 1
        units = self._units(price, qty)
        o = _Live(cid, self.symbol, side, price, qty, EXTERNAL_LEVEL, now_ns, updated_ns=now_ns,
                  post_only=bool(post_only), side_idx=si, attached=False, sent_ns=now_ns, ref_mid=float(mid_ticks),
                  committed=units)
        self._orders[cid] = o
        self._live[cid] = o
        self._tot[si] += units
        self._det[si] += units
        self._n_detached += 1
        due = now_ns + self._timeout_ns
        if due < self._deadline_ns:
            self._deadline_ns = due
        c.created += 1
        return a, None

    def set_anti_stale(self, enabled: bool, ttl_ms: int, drift_bps: float) -> None:
        """Change the anti-stale guard while running (an operator's hot change): ``params``
        and the values the hot path caches (the flag, the TTL in ns, the drift) change
        together and apply from the next ``reconcile``.  Raises ``ValueError`` (and changes
        nothing) unless ``enabled`` is a bool, ``ttl_ms`` an int >= 0 and ``drift_bps`` a
        finite number >= 0."""
        if not isinstance(enabled, bool):
            raise ValueError(f"enabled must be a bool, got {enabled!r}")
        if isinstance(ttl_ms, bool) or not isinstance(ttl_ms, int) or ttl_ms < 0:
            raise ValueError(f"order_ttl_ms must be an integer >= 0, got {ttl_ms!r}")
        if isinstance(drift_bps, bool) or not isinstance(drift_bps, (int, float)) or not math.isfinite(drift_bps) \
                or drift_bps < 0:
            raise ValueError(f"price_drift_bps must be a finite number >= 0, got {drift_bps!r}")
        self.params = replace(self.params, enable_anti_stale_guard=enabled, order_ttl_ms=ttl_ms,
                              price_drift_bps=float(drift_bps))
        self._guard = enabled
        self._ttl_ns = ttl_ms * NS_PER_MS
        self._drift_bps = float(drift_bps)

    def anti_stale_settings(self) -> dict[str, Any]:
        """``{"enabled", "order_ttl_ms", "price_drift_bps"}`` as the manager runs them."""
        return {"enabled": self._guard, "order_ttl_ms": self._ttl_ns // NS_PER_MS, "price_drift_bps": self._drift_bps}

    # ------------------------------------------------------------------ reports
    def on_report(self, report: VenueReport, now_ns: int | None = None) -> bool:
        """Apply an ack, reject, fill or cancel confirmation; ``True`` if it changed state.

        Safe against reordering and duplicates: a fill applies whatever state the order
        is in (even canceled); a late ack never resurrects a canceled or pending_cancel
        order; a fill whose ``(client_id, cum_qty)`` was already applied is a duplicate
        (``idem_hits["fill"]``, returns ``False``: the ledger should skip it).  Fills
        without ``cum_qty`` (0) cannot be told from a repeat and are always applied.
        ``now_ns`` is the local receive time (default: the report's ``ts``); it starts an
        order's age on its ack.
        """
        t = report.ts if now_ns is None else now_ns
        o = self._orders.get(report.client_id)
        c = self.counters
        if o is None:
            c.unknown_reports += 1
            return False
        kind = type(report)
        if kind is Fill:
            return self._on_fill(o, report, t)  # type: ignore[arg-type]
        if kind is Ack:
            if report.op == OP_CREATE:  # type: ignore[union-attr]
                return self._on_create_ack(o, report, t)  # type: ignore[arg-type]
            if report.op == OP_AMEND:  # type: ignore[union-attr]
                return self._on_amend_ack(o, report, t)  # type: ignore[arg-type]
            c.late_reports += 1
            return False
        if kind is Reject:
            return self._on_reject(o, report, t)  # type: ignore[arg-type]
        if kind is Canceled:
            st = o.state
            if st in _TERMINAL:
                if st == _CANCELED:
                    _bump(c.idem_hits, OP_CANCEL)
                else:
                    c.late_reports += 1
                return False
            c.canceled_confirmed += 1
            self._finish(o, _CANCELED, t)
            return True
        raise TypeError(f"not a venue report: {report!r}")

    def _on_create_ack(self, o: _Live, r: Ack, t: int) -> bool:
        c = self.counters
        st = o.state
        if st in _TERMINAL:
            c.late_reports += 1
            return False
        if o.acked:
            _bump(c.idem_hits, OP_CREATE)
            return False
        o.acked = True
        c.acked += 1
        if not o.placed_ns:
            o.placed_ns = t
        if not o.priced_ns:
            o.priced_ns = t
        o.updated_ns = t
        if st == _PENDING_NEW:
            if r.price and r.price != o.price:
                o.price = r.price
            if r.qty and r.qty != o.qty:
                o.qty = r.qty
            o.state = _PARTIAL if o.filled else _OPEN
            self._replacing.discard(o.client_id)
            self._recommit(o)
            if o.filled >= o.qty:
                self._finish(o, _FILLED, t)
        elif st == _PENDING_CANCEL:
            self._replacing.discard(o.client_id)
            if o.cancel_rejected:
                # our cancel overtook the create and was refused: re-send it promptly
                o.sent_ns = t - self._timeout_ns
                self._deadline_ns = _NEVER
        return True

    def _on_amend_ack(self, o: _Live, r: Ack, t: int) -> bool:
        c = self.counters
        st = o.state
        if st in _TERMINAL:
            c.late_reports += 1
            return False
        if not o.pending_qty:
            if (r.price or o.price) == o.price and (r.qty or o.qty) == o.qty:
                _bump(c.idem_hits, OP_AMEND)
            else:
                c.late_reports += 1
            return False
        if r.price and r.price != o.pending_price:
            # the ack of an earlier amend delivered again: applying it would undo this one
            c.late_reports += 1
            return False
        c.acked += 1
        new_px = o.pending_price
        new_qty = r.qty or o.pending_qty
        if new_px != o.price:
            o.priced_ns = t
            o.ref_mid = o.pending_ref_mid
        o.price, o.qty = new_px, new_qty
        o.pending_price = o.pending_qty = 0
        o.updated_ns = t
        if st == _PENDING_AMEND:
            o.state = _PARTIAL if o.filled else _OPEN
        self._replacing.discard(o.client_id)
        self._recommit(o)
        if o.filled >= o.qty:
            self._finish(o, _FILLED, t)
        return True

    def _on_reject(self, o: _Live, r: Reject, t: int) -> bool:
        c = self.counters
        st = o.state
        if st in _TERMINAL:
            c.late_reports += 1
            return False
        op = r.op
        if op == OP_CREATE:
            if "duplicate" in r.reason.lower():
                # the venue already has this client id (a re-send after failover): it rests
                if o.acked:
                    _bump(c.idem_hits, OP_CREATE)
                    return False
                _bump(c.idem_hits, OP_CREATE)
                return self._on_create_ack(o, Ack(r.ts, o.client_id, OP_CREATE), t)
            if o.acked or o.filled:
                c.late_reports += 1
                return False
            _bump(c.rejected, OP_CREATE)
            self._finish(o, _REJECTED, t)
            return True
        if op == OP_AMEND:
            if not o.pending_qty:
                c.late_reports += 1
                return False
            _bump(c.rejected, OP_AMEND)
            o.pending_price = o.pending_qty = 0
            o.updated_ns = t
            if st == _PENDING_AMEND:
                o.state = _PARTIAL if o.filled else _OPEN
            self._replacing.discard(o.client_id)
            self._recommit(o)
            if o.filled >= o.qty:
                self._finish(o, _FILLED, t)
            return True
        if op == OP_CANCEL:
            if st != _PENDING_CANCEL:
                c.late_reports += 1
                return False
            # keep waiting: the order may still rest (our cancel overtook the create, or a
            # 429); the pending timeout re-sends the cancel, a fill or cancel ends it
            _bump(c.rejected, OP_CANCEL)
            o.cancel_rejected = True
            return True
        c.late_reports += 1
        return False

    def _on_fill(self, o: _Live, f: Fill, t: int) -> bool:
        c = self.counters
        cum = f.cum_qty
        if cum > 0:
            keys = o.fill_keys
            if keys is None:
                o.fill_keys = {cum}
            elif cum in keys:
                _bump(c.idem_hits, "fill")
                return False
            else:
                keys.add(cum)
            if cum > o.filled:
                o.filled = cum
        else:
            o.filled += f.qty
        o.fill_lots += f.qty
        o.fill_units += f.qty if self._inverse else f.price * f.qty
        o.updated_ns = t
        c.fills += 1
        st = o.state
        if st in _TERMINAL:
            c.late_fills += 1
            if st == _CANCELED and o.filled >= o.qty:
                o.state = _FILLED
                c.filled_orders += 1
            return True
        if not o.placed_ns:
            o.placed_ns = t  # the venue had it, ack or not
        if not o.priced_ns:
            o.priced_ns = t
        pq = o.pending_qty
        if o.filled >= o.qty and (not pq or o.filled >= pq):
            self._finish(o, _FILLED, t)
            return True
        if st == _PENDING_NEW or st == _OPEN:
            o.state = _PARTIAL
        self._recommit(o)
        return True

    # ------------------------------------------------------------------ views
    def open_orders(self) -> list[Order]:
        """Copies of the live orders (pending ones included), buys then sells, by level."""
        out = [_public(o) for o in self._live.values()]
        out.sort(key=lambda o: (-o.side, o.level, o.client_id))
        return out

    def get(self, client_id: str) -> Order | None:
        """A copy of an order still known (live, or finished recently), else ``None``."""
        o = self._orders.get(client_id)
        return None if o is None else _public(o)

    def finished(self, client_id: str) -> Order | None:
        """``get(client_id)`` when that order is in a terminal state (filled, canceled,
        rejected), else ``None``: the engine asks after every report, and most reports
        (acks, partial fills) leave the order live, so no copy is made for those."""
        o = self._orders.get(client_id)
        return None if o is None or o.state not in _TERMINAL else _public(o)

    def committed_usd(self) -> dict[str, Decimal]:
        """Exact committed notional per side (the budget's measure), quote currency."""
        u = self._unit_usd
        return {"buy": self._tot[0] * u, "sell": self._tot[1] * u}

    def levels_in_use(self) -> dict[str, int]:
        """Live orders per side that hold a level (not waiting for a cancel confirmation)."""
        return {"buy": len(self._att[0]), "sell": len(self._att[1])}

    @property
    def next_seq(self) -> int:
        return self._seq

    @property
    def replaces_in_flight(self) -> int:
        return len(self._replacing)

    # ------------------------------------------------------------------ persistence
    def snapshot(self) -> dict[str, Any]:
        """Order-id state as plain JSON-able data: the id counter, live orders, counters."""
        orders = []
        for o in self._live.values():
            d = {name: getattr(o, name) for name in _SNAP_FIELDS}
            d["fill_keys"] = sorted(o.fill_keys) if o.fill_keys else []
            orders.append(d)
        return {
            "version": SNAPSHOT_VERSION,
            "symbol": self.symbol,
            "id_prefix": self.id_prefix,
            "next_seq": self._seq,
            "orders": orders,
            "replacing": sorted(self._replacing),
            "last_replace_ns": self._last_replace_ns,
            "counters": self.counters.as_dict(),
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        """Load a ``snapshot``: ids continue from the larger ``next_seq`` (never reused)."""
        if not isinstance(data, Mapping) or data.get("version") != SNAPSHOT_VERSION:
            raise OrderSnapshotError(f"not an order-manager snapshot v{SNAPSHOT_VERSION}")
        if data.get("symbol") != self.symbol or data.get("id_prefix") != self.id_prefix:
            raise OrderSnapshotError(
                f"snapshot is for {data.get('id_prefix')!r}{data.get('symbol')!r}, "
                f"this manager is {self.id_prefix!r}{self.symbol!r}")
        try:
            seq = int(data["next_seq"])
            rows = list(data["orders"])
            live: list[_Live] = []
            for d in rows:
                kw = {name: d[name] for name in _SNAP_FIELDS}
                if kw["state"] not in _ALL_STATES or kw["state"] in _TERMINAL:
                    raise OrderSnapshotError(f"bad live order state {kw['state']!r}")
                o = _Live(symbol=self.symbol, **kw)
                o.side_idx = _side_idx(o.side)
                o.fill_keys = set(d.get("fill_keys") or ()) or None
                live.append(o)
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, OrderSnapshotError):
                raise
            raise OrderSnapshotError(f"malformed order-manager snapshot: {exc}") from exc
        self._seq = max(self._seq, seq)
        self._orders, self._live = {}, {}
        self._att = ([], [])
        self._tot, self._det = [0, 0], [0, 0]
        self._n_detached = 0
        self._finished.clear()
        for o in live:
            o.attached = o.state != _PENDING_CANCEL and o.level >= 0  # an external order holds no level
            o.committed = 0
            self._orders[o.client_id] = o
            self._live[o.client_id] = o
            if o.attached:
                self._att[o.side_idx].append(o)
            else:
                self._n_detached += 1
            self._recommit(o)
        for att in self._att:
            att.sort(key=_level_key)
        self._replacing = {cid for cid in data.get("replacing", ()) if cid in self._live}
        self._last_replace_ns = int(data.get("last_replace_ns", _NEVER))
        self._deadline_ns = _NEVER  # re-check every pending order on the next reconcile
        self.counters = OrderCounters()
        self.counters.load(data.get("counters", {}))


def _level_key(x: Any) -> int:
    return x.level


def _public(o: _Live) -> Order:
    return Order(o.client_id, o.symbol, o.side, o.price, o.qty, o.level, o.created_ns, o.state, o.filled,
                 o.updated_ns, o.placed_ns, o.venue_id, o.post_only, o.pending_price, o.pending_qty)
