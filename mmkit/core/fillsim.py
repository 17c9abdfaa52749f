"""The fill simulator: a pure, event-time exchange for backtests.

Why: a market maker's backtest is only as honest as its fills.  This module answers,
for every action the strategy sends, what a real venue would have done -- when the
action arrived (entry latency), whether a post-only order crossed, where it queued at its
price, which trades reached it, what each fill cost (maker rebate or taker fee), and when
the strategy learned about it (response latency).  ``docs/fillsim.md`` is the reference:
every assumption, every model and parameter, the tie rules, what is not modeled.

The three seams are small protocols with registries, chosen by name in config:
``LatencyModel`` (``latency.py``: constant, normal, empirical), ``QueueModel``
(``queue.py``: risk_averse, prob_power, prob_log, optimistic) and ``FeeModel`` (here:
flat, tiered).  ``make_latency_model`` / ``make_queue_model`` / ``make_fee_model`` build
them from ``(name, params)`` and raise ``UnknownModelError`` / ``ModelParamError``
(``ValueError``s naming the known models or the bad key).

How the engine drives it (one symbol or many, one ``random.Random``)::

    sim = FillSimulator(instruments, latency, queue, fees, rng, params)
    arrival_ns = sim.submit(action, send_ns)      # every action the order manager returns
    sim.on_market(event)                          # every market event, in ts order
    for deliver_ns, report in sim.drain_reports(now_ns):
        om.on_report(report, deliver_ns)

Time and ordering rules (the tie rules):

1. ``submit`` draws the entry latency: arrival = send + entry(op).  With
   ``preserve_order`` (default) an action never arrives before an earlier action of the
   same ``client_id`` (one connection is FIFO), so a cancel cannot overtake its create.
2. Arrivals are processed in arrival order; equal arrival times in submission order.
3. Each arrival sees the book as it stands after every market event with ``ts <`` the
   arrival time, and *before* events with ``ts ==`` the arrival time: ``on_market(ev)``
   first processes every arrival with time ``<= ev.ts``.  So an order arriving at the
   very ns of a trade rests before that trade and may be filled by it.
4. Every report carries the exchange time ``ts`` of what caused it (the arrival or the
   market event) and is delivered at ``ts + response(op)``, ``op`` the action's op for
   acks, rejects, cancels and taker fills, ``"fill"`` for fills caused by market events.
   With ``preserve_order`` one order's reports are delivered in the order the exchange
   produced them.  ``drain_reports`` returns ``(deliver_ns, report)`` sorted by delivery
   time, ties in production order.
5. A fill that completes an order is its last report (no separate "filled" message).

Fast path: ``on_market`` costs a few comparisons when the event touches none of our
price levels and crosses none of our orders (per symbol we keep our best bid and ask
price; a trade is checked with one comparison, a book delta with one dict lookup per
level it changes).

Pure: stdlib only, no I/O, no clock (event ``ts`` is the clock); randomness (latency
draws, toxic sweeps) only from the ``random.Random`` given to the constructor.
"""

from __future__ import annotations

import math
import random
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Context, Decimal
from heapq import heappop, heappush
from typing import Any, Protocol

from mmkit.core.book import L2Book
from mmkit.core.events import BUY, SELL, BookDelta, BookSnapshot, Level, Quote, SeqGap, Trade
from mmkit.core.fees import FeeTierLike, FeeTiers, RollingVolume, Tier, fee_for, to_decimal
from mmkit.core.instruments import Instrument
from mmkit.core.latency import (
    ENTRY_OPS,
    LATENCY_MODELS,
    RESPONSE_OPS,
    ConstantLatency,
    EmpiricalLatency,
    LatencyModel,
    ModelError,
    ModelParamError,
    NormalLatency,
    UnknownModelError,
    check_keys,
    make_latency_model,
    number,
)
from mmkit.core.queue import (
    QUEUE_MODELS,
    OptimisticQueue,
    ProbQueue,
    QueueModel,
    RiskAverseQueue,
    make_queue_model,
)
from mmkit.core.types import (
    OP_AMEND,
    OP_CANCEL,
    OP_CREATE,
    Action,
    AmendOrder,
    CancelOrder,
    CreateOrder,
    Reject,
    VenueReport,
    make_ack,
    make_canceled,
    make_fill,
)

__all__ = [
    # errors and seams
    "ModelError",
    "UnknownModelError",
    "ModelParamError",
    "CalibrationError",
    "LatencyModel",
    "QueueModel",
    "FeeModel",
    "ConstantLatency",
    "NormalLatency",
    "EmpiricalLatency",
    "RiskAverseQueue",
    "ProbQueue",
    "OptimisticQueue",
    "FlatFees",
    "TieredFees",
    "LATENCY_MODELS",
    "QUEUE_MODELS",
    "FEE_MODELS",
    "ENTRY_OPS",
    "RESPONSE_OPS",
    "make_latency_model",
    "make_queue_model",
    "make_fee_model",
    # calibration and params
    "CalibrationParams",
    "CALIBRATION_KEYS",
    "calibration_from_mapping",
    "latency_from_calibration",
    "FillSimParams",
    # the simulator
    "SimOrder",
    "FillSimCounters",
    "FillSimulator",
    "MAKER",
    "TAKER",
    "OP_FILL",
    "R_POST_ONLY",
    "R_UNKNOWN_ORDER",
    "R_DUPLICATE",
    "R_INVALID_QTY",
    "R_INVALID_PRICE",
    "R_INVALID_SIDE",
]

MAKER = "maker"
TAKER = "taker"
OP_FILL = "fill"
"""Response-latency operation of a fill caused by a market event (no request in flight)."""

# Reject reasons (``Reject.reason``).
R_POST_ONLY = "post_only_would_cross"
R_UNKNOWN_ORDER = "unknown_order"  # cancel/amend of an order already filled or canceled (lost the race), or never seen
R_DUPLICATE = "duplicate_client_id"  # a create whose client id the venue already knows
R_INVALID_QTY = "invalid_qty"  # create qty <= 0, or amend total qty <= the filled part
R_INVALID_PRICE = "invalid_price"  # price <= 0 ticks
R_INVALID_SIDE = "invalid_side"

_NEG = -(1 << 62)  # "no bid of ours": every price is above it
_POS = 1 << 62  # "no ask of ours"
_EPS = 1e-9  # float noise allowed when a fractional queue estimate is rounded up to lots
# fill values: exact for any real grid, only the inverse 1/price rounds (at 1e-50); a fixed
# context, so the caller's thread context (precision, rounding) never leaks in
_CTX = Context(prec=50, rounding=ROUND_HALF_EVEN)


# ============================================================================= fees
class FeeModel(Protocol):
    """Per-fill fee rate in bps (negative maker = rebate) and the volume that may move it."""

    def rate_bps(self, symbol: str, liquidity: str, ts_ns: int) -> float | Decimal:
        """The rate for a fill of ``liquidity`` (``"maker"``/``"taker"``) at ``ts_ns``."""
        ...

    def record_fill(self, symbol: str, ts_ns: int, notional_usd: Decimal) -> None:
        """Told after every fill (tiered schedules count 30-day volume)."""
        ...


class FlatFees:
    """One maker/taker schedule for every symbol (default: the benchmark baseline,
    maker -0.5 bps = a rebate, taker 5 bps)."""

    __slots__ = ("maker_bps", "taker_bps")

    def __init__(self, maker_bps: float = -0.5, taker_bps: float = 5.0) -> None:
        self.maker_bps = number("maker_bps", maker_bps, -100.0, 100.0)
        self.taker_bps = number("taker_bps", taker_bps, -100.0, 100.0)

    def __repr__(self) -> str:
        return f"FlatFees(maker_bps={self.maker_bps}, taker_bps={self.taker_bps})"

    def rate_bps(self, symbol: str, liquidity: str, ts_ns: int) -> float:
        return self.maker_bps if liquidity == MAKER else self.taker_bps

    def record_fill(self, symbol: str, ts_ns: int, notional_usd: Decimal) -> None:
        return None

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None = None) -> FlatFees:
        p = check_keys(params, ("maker_bps", "taker_bps"), "flat fee")
        return cls(p.get("maker_bps", -0.5), p.get("taker_bps", 5.0))


class TieredFees:
    """A VIP table: each fill pays the tier of the account's 30-day volume *before* it.

    Volume is the fills' USD notional (``RollingVolume``, UTC days) plus a constant
    ``volume_30d_usd`` the account brings in (an approximation: it never ages out).
    ``tiers`` rows have ``level, min_volume_usd, maker_bps, taker_bps`` (mappings or
    objects, e.g. the ``fees.bybit.tiers`` config section); ``FeeTiers`` checks them.
    """

    __slots__ = ("tiers", "base_usd", "_vol")

    def __init__(self, tiers: Iterable[FeeTierLike], volume_30d_usd: float = 0.0, window_days: int = 30) -> None:
        try:
            self.tiers = FeeTiers(tiers)
        except ValueError as exc:
            raise ModelParamError("tiers", str(exc)) from exc
        self.base_usd = number("volume_30d_usd", volume_30d_usd, 0.0)
        if isinstance(window_days, bool) or not isinstance(window_days, int) or window_days < 1:
            raise ModelParamError("window_days", f"must be an int >= 1, got {window_days!r}")
        self._vol = RollingVolume(window_days)

    def __repr__(self) -> str:
        return f"TieredFees(tiers={len(self.tiers)}, volume_30d_usd={self.base_usd})"

    def rate_bps(self, symbol: str, liquidity: str, ts_ns: int) -> float:
        tier = self.tiers.tier_for(self.base_usd + self._vol.total_usd(ts_ns))
        return tier.maker_bps if liquidity == MAKER else tier.taker_bps

    def record_fill(self, symbol: str, ts_ns: int, notional_usd: Decimal) -> None:
        self._vol.add(ts_ns, notional_usd)

    def volume_usd(self, ts_ns: int) -> float:
        """The volume that picks the tier at ``ts_ns`` (base + fills in the window)."""
        return self.base_usd + self._vol.total_usd(ts_ns)

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None = None) -> TieredFees:
        p = check_keys(params, ("tiers", "volume_30d_usd", "window_days"), "tiered fee")
        rows = p.get("tiers")
        if rows is None:
            raise ModelParamError("tiers", "the tiered fee model needs a tier table")
        if isinstance(rows, (str, bytes)) or not isinstance(rows, Iterable):
            raise ModelParamError("tiers", "must be a list of {level, min_volume_usd, maker_bps, taker_bps}", "type")
        tiers = []
        for row in rows:
            if isinstance(row, Mapping):
                extra = set(row) - {"level", "min_volume_usd", "maker_bps", "taker_bps"}
                if extra:
                    raise ModelParamError(f"tiers.{sorted(extra)[0]}", "unknown tier field", "unknown_key")
                try:
                    row = Tier(int(row["level"]), float(row["min_volume_usd"]), float(row["maker_bps"]),
                               float(row["taker_bps"]))
                except (KeyError, TypeError, ValueError) as exc:
                    raise ModelParamError("tiers", f"bad tier row: {exc}", "type") from exc
            tiers.append(row)
        return cls(tiers, p.get("volume_30d_usd", 0.0), p.get("window_days", 30))


FeeFactory = Callable[[Mapping[str, Any] | None], FeeModel]

FEE_MODELS: dict[str, FeeFactory] = {
    "flat": FlatFees.from_params,
    "tiered": TieredFees.from_params,
}
"""Model name -> factory (``flat``: maker_bps, taker_bps; ``tiered``: tiers,
volume_30d_usd, window_days)."""


def make_fee_model(name: str, params: Mapping[str, Any] | None = None) -> FeeModel:
    """Build the fee model ``name``; ``UnknownModelError`` lists the known names."""
    factory = FEE_MODELS.get(name)
    if factory is None:
        raise UnknownModelError("fee", name, list(FEE_MODELS))
    return factory(params)


# ============================================================================= calibration
class CalibrationError(ModelParamError):
    """A calibration JSON key is unknown, not a number, or out of range (``key`` names it)."""


CALIBRATION_KEYS = ("latency_ms_mean", "latency_ms_std", "amend_latency_ms", "cancel_latency_ms",
                    "toxic_sweep_prob", "extra_slippage_bps", "response_latency_ms")
"""The seed's six calibration keys, plus mmkit's ``response_latency_ms``."""

_MAX_MS = 60_000.0
_CALIBRATION_RANGES = (  # key, min, max, may be None
    ("latency_ms_mean", 0.0, _MAX_MS, False),
    ("latency_ms_std", 0.0, _MAX_MS, False),
    ("amend_latency_ms", 0.0, _MAX_MS, True),
    ("cancel_latency_ms", 0.0, _MAX_MS, True),
    ("response_latency_ms", 0.0, _MAX_MS, True),
    ("toxic_sweep_prob", 0.0, 1.0, False),
    ("extra_slippage_bps", 0.0, 10_000.0, False),
)


@dataclass(frozen=True, slots=True)
class CalibrationParams:
    """The seed's "Calibration Parameters" JSON, validated.

    - ``latency_ms_mean`` / ``latency_ms_std``: create (placement) entry latency, ms,
      normal; std 0 = constant.  Defaults 10 / 0 (the benchmark baseline).
    - ``amend_latency_ms`` / ``cancel_latency_ms``: entry means of amends and cancels
      (same std); None = ``latency_ms_mean``.  The seed marked them "future use"; mmkit
      uses them.
    - ``response_latency_ms``: mean response latency of every report (mmkit's addition;
      same std); None = ``latency_ms_mean``.
    - ``toxic_sweep_prob`` in [0, 1]: per trade that reaches one of our orders, the
      probability that the order is swept whole (adverse selection).  Default 0.
    - ``extra_slippage_bps`` >= 0: taker fills are priced this much worse, rounded away
      to the tick.  Default 0.
    """

    latency_ms_mean: float = 10.0
    latency_ms_std: float = 0.0
    amend_latency_ms: float | None = None
    cancel_latency_ms: float | None = None
    toxic_sweep_prob: float = 0.0
    extra_slippage_bps: float = 0.0
    response_latency_ms: float | None = None

    def __post_init__(self) -> None:
        for key, lo, hi, optional in _CALIBRATION_RANGES:
            v = getattr(self, key)
            if v is None and optional:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise CalibrationError(key, f"must be a number, got {type(v).__name__}", "type")
            if not math.isfinite(v):
                raise CalibrationError(key, f"must be finite, got {v!r}")
            if v < lo or v > hi:
                raise CalibrationError(key, f"must be in [{lo:g}, {hi:g}], got {v!r}")

    def as_dict(self) -> dict[str, float | None]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def latency_model(self, min_ms: float = 0.1) -> LatencyModel:
        """``latency_from_calibration(self, min_ms)``."""
        return latency_from_calibration(self, min_ms)


def calibration_from_mapping(obj: Any) -> CalibrationParams:
    """Validate a parsed calibration JSON object; missing keys take the defaults.

    Raises ``CalibrationError`` (``key``, ``reason`` ``unknown_key``/``type``/``range``)
    for an unknown key, a non-number (bools and strings included) or a value out of range.
    """
    if not isinstance(obj, Mapping):
        raise CalibrationError("calibration", f"must be a JSON object, got {type(obj).__name__}", "type")
    for key in obj:
        if key not in CALIBRATION_KEYS:
            raise CalibrationError(str(key), f"unknown calibration key; known: {', '.join(CALIBRATION_KEYS)}",
                                   "unknown_key")
    return CalibrationParams(**{str(k): v for k, v in obj.items()})


def latency_from_calibration(cal: CalibrationParams, min_ms: float = 0.1) -> LatencyModel:
    """The latency model a calibration describes: constant when ``latency_ms_std`` is 0,
    else normal (clamped at ``min_ms``) with the per-operation means."""
    mean = cal.latency_ms_mean
    amend = mean if cal.amend_latency_ms is None else cal.amend_latency_ms
    cancel = mean if cal.cancel_latency_ms is None else cal.cancel_latency_ms
    resp = mean if cal.response_latency_ms is None else cal.response_latency_ms
    by_op = {"create": mean, "amend": amend, "cancel": cancel}
    if cal.latency_ms_std == 0:
        return ConstantLatency(mean, resp, entry_ms_by_op=by_op)
    return NormalLatency(mean, cal.latency_ms_std, response_mean_ms=resp, response_std_ms=cal.latency_ms_std,
                         min_ms=min_ms, entry_mean_ms_by_op=by_op)


# ============================================================================= params
@dataclass(frozen=True, slots=True)
class FillSimParams:
    """Simulator knobs that are not a model (defaults = the benchmark baseline).

    - ``toxic_sweep_prob`` (0.0): see ``CalibrationParams``; one ``rng.random()`` per
      (trade, order it reaches) when > 0, none when 0.
    - ``extra_slippage_bps`` (0.0): taker fill price worse by ``ceil(price * bps / 1e4)``
      ticks (rounded away from us, so any positive value costs at least a tick).
    - ``toxic_sweep_liquidity`` (``"maker"``): a swept resting order fills as maker at
      its price; ``"taker"`` follows the seed's wording ("becomes taker instead of
      maker": taker fee, and the extra slippage).
    - ``cross_fills`` (True): when the opposite side of the book moves onto or through a
      resting order's price without a print, the order fills as maker at its price
      against that visible size (a real venue would have matched it).  False: only
      prints fill resting orders.
    - ``preserve_order`` (True): one order's actions arrive, and its reports are
      delivered, in the order they were produced (a FIFO connection).
    - ``retention`` (65536): finished client ids remembered to reject duplicates.
    """

    toxic_sweep_prob: float = 0.0
    extra_slippage_bps: float = 0.0
    toxic_sweep_liquidity: str = MAKER
    cross_fills: bool = True
    preserve_order: bool = True
    retention: int = 65536

    def __post_init__(self) -> None:
        number("toxic_sweep_prob", self.toxic_sweep_prob, 0.0, 1.0)
        number("extra_slippage_bps", self.extra_slippage_bps, 0.0, 10_000.0)
        if self.toxic_sweep_liquidity not in (MAKER, TAKER):
            raise ModelParamError("toxic_sweep_liquidity",
                                  f"must be 'maker' or 'taker', got {self.toxic_sweep_liquidity!r}")
        if isinstance(self.retention, bool) or not isinstance(self.retention, int) or self.retention < 0:
            raise ModelParamError("retention", f"must be an int >= 0, got {self.retention!r}")

    @classmethod
    def from_calibration(cls, cal: CalibrationParams, **overrides: Any) -> FillSimParams:
        """``toxic_sweep_prob`` and ``extra_slippage_bps`` from a calibration."""
        values: dict[str, Any] = {"toxic_sweep_prob": float(cal.toxic_sweep_prob),
                                  "extra_slippage_bps": float(cal.extra_slippage_bps)}
        values.update(overrides)
        return cls(**values)


# ============================================================================= records
@dataclass(frozen=True, slots=True)
class SimOrder:
    """An order resting at the simulated exchange (a copy: for tests and final checks).

    ``qty`` is the total (filled part included); ``ahead_lots`` the current estimate of
    the visible size ahead of it at its price (a float for probabilistic models);
    ``rested_ns`` the exchange time it (re)joined the queue.
    """

    client_id: str
    symbol: str
    side: int
    price: int
    qty: int
    filled: int
    ahead_lots: float
    post_only: bool
    rested_ns: int

    @property
    def remaining(self) -> int:
        return self.qty - self.filled


class FillSimCounters:
    """Monotonic counters (``as_dict`` for metrics and tests).

    ``submitted`` actions, ``arrivals`` processed, ``acks``, ``rejects`` by reason,
    ``cancels`` confirmed, ``fills`` (``maker_fills``/``taker_fills``), ``filled_lots``,
    ``sweeps`` (toxic sweeps), ``cross_fills`` (fills from the book crossing an order).
    """

    __slots__ = ("submitted", "arrivals", "acks", "rejects", "cancels", "fills", "maker_fills", "taker_fills",
                 "filled_lots", "sweeps", "cross_fills")

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, {} if name == "rejects" else 0)

    def as_dict(self) -> dict[str, Any]:
        return {name: (dict(sorted(self.rejects.items())) if name == "rejects" else getattr(self, name))
                for name in self.__slots__}


class _Order:
    """Exchange-side state of one of our orders (mutable, never handed out)."""

    __slots__ = ("cid", "symbol", "side", "price", "qty", "filled", "post_only", "ahead", "traded", "seq",
                 "rested_ns", "resting")

    def __init__(self, cid: str, symbol: str, side: int, price: int, qty: int, post_only: bool) -> None:
        self.cid = cid
        self.symbol = symbol
        self.side = side
        self.price = price
        self.qty = qty
        self.filled = 0
        self.post_only = post_only
        self.ahead: float = 0  # lots ahead at our price (int for risk_averse/optimistic)
        self.traded = 0  # lots printed at our price since the last book update there
        self.seq = 0  # join order among our own orders (FIFO at one price)
        self.rested_ns = 0
        self.resting = False


class _Sym:
    """Per-symbol state: the sim's own book, our resting orders by price, crossing use."""

    __slots__ = ("symbol", "book", "bids", "asks", "max_bid", "min_ask", "n", "used_bid", "used_ask", "depth_seen",
                 "inverse", "unit", "contract", "tick")

    def __init__(self, symbol: str, inst: Instrument) -> None:
        self.symbol = symbol
        self.book = L2Book(symbol, inst)
        self.bids: dict[int, list[_Order]] = {}  # our bids: price -> orders, FIFO
        self.asks: dict[int, list[_Order]] = {}
        self.max_bid = _NEG  # our best bid price (or _NEG)
        self.min_ask = _POS  # our best ask price (or _POS)
        self.n = 0  # our resting orders
        self.used_bid: dict[int, int] = {}  # public bid lots our crossing asks already matched
        self.used_ask: dict[int, int] = {}  # public ask lots our crossing bids already matched
        self.depth_seen = False  # a snapshot or delta arrived: quotes no longer drive the book
        self.inverse = inst.inverse
        self.contract = inst.lot_size * inst.contract_multiplier  # USD per lot (inverse)
        self.unit = inst.tick_size * inst.lot_size * inst.contract_multiplier  # USD per tick x lot (linear)
        self.tick = inst.tick_size


# ============================================================================= the simulator
class FillSimulator:
    """The simulated venue: actions in (``submit``), market events in (``on_market``),
    venue reports out (``drain_reports``).  See the module doc for the time rules and
    ``docs/fillsim.md`` for the model."""

    # slots: the engine's compiled loop sets ``now_ns`` on every event
    __slots__ = ("_syms", "_arrivals", "_aseq", "_cross_fills", "_finished", "_inflight", "_join_seq",
                 "_last_arrival", "_last_delivery", "_live", "_on_depth", "_preserve", "_reports", "_rng", "_rseq",
                 "_slip", "_sweep_liq", "_touch", "_toxic", "counters", "fees", "latency", "now_ns", "params", "queue")

    def __init__(self, instruments: Mapping[str, Instrument], latency: LatencyModel, queue: QueueModel,
                 fees: FeeModel, rng: random.Random, params: FillSimParams = FillSimParams()) -> None:
        self._syms: dict[str, _Sym] = {}
        for sym, inst in instruments.items():
            if inst.symbol != sym:
                raise ValueError(f"instrument {inst.symbol} registered under {sym}")
            self._syms[sym] = _Sym(sym, inst)
        self.latency = latency
        self.queue = queue
        self.fees = fees
        self.params = params
        self._rng = rng
        self._on_depth = queue.on_depth
        self._touch = bool(queue.touch_fills)
        self._toxic = float(params.toxic_sweep_prob)
        self._sweep_liq = params.toxic_sweep_liquidity
        self._slip = to_decimal(params.extra_slippage_bps) if params.extra_slippage_bps else None
        self._cross_fills = params.cross_fills
        self._preserve = params.preserve_order
        self._arrivals: list[tuple[int, int, Action]] = []
        self._aseq = 0
        self._reports: list[tuple[int, int, VenueReport]] = []
        self._rseq = 0
        self._join_seq = 0
        self._live: dict[str, _Order] = {}
        # an OrderedDict, not a dict: dropping a dict's first key again and again makes each
        # next(iter(d)) skip every slot deleted since the last resize (0.2 s per 5M events)
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._inflight: dict[str, int] = {}
        self._last_arrival: dict[str, int] = {}
        self._last_delivery: dict[str, int] = {}
        self.now_ns = 0
        """Exchange time of the last arrival or market event processed."""
        self.counters = FillSimCounters()

    @classmethod
    def baseline(cls, instruments: Mapping[str, Instrument], rng: random.Random) -> FillSimulator:
        """The benchmark baseline: risk_averse queue, 10 ms entry and 10 ms response
        latency for every operation, maker -0.5 bps, taker 5 bps, no sweeps, no slippage."""
        return cls(instruments, ConstantLatency(10.0, 10.0), RiskAverseQueue(), FlatFees(-0.5, 5.0), rng)

    def __repr__(self) -> str:
        return (f"FillSimulator(symbols={sorted(self._syms)}, latency={self.latency!r}, queue={self.queue!r}, "
                f"fees={self.fees!r}, live={len(self._live)}, pending={len(self._arrivals)})")

    # ------------------------------------------------------------------ actions in
    def submit(self, action: Action, send_local_ns: int) -> int:
        """The strategy sent ``action`` at ``send_local_ns`` (local clock aligned to
        exchange time).  Returns its exchange arrival time: send + entry latency of the
        op (never before an earlier action of the same order with ``preserve_order``)."""
        cls = type(action)
        if cls is not CreateOrder and cls is not AmendOrder and cls is not CancelOrder:
            raise TypeError(f"not an action: {action!r}")
        if action.symbol not in self._syms:
            raise ValueError(f"{action.symbol}: no instrument for this symbol in the fill simulator")
        cid = action.client_id
        arrival = send_local_ns + self.latency.entry_ns(action.op, send_local_ns, self._rng)
        if self._preserve:
            last = self._last_arrival.get(cid)
            if last is not None and arrival < last:
                arrival = last
            self._last_arrival[cid] = arrival
        self._inflight[cid] = self._inflight.get(cid, 0) + 1
        heappush(self._arrivals, (arrival, self._aseq, action))
        self._aseq += 1
        self.counters.submitted += 1
        return arrival

    def next_arrival_ns(self) -> int | None:
        """Earliest pending arrival time (for the engine's scheduler), or None."""
        return self._arrivals[0][0] if self._arrivals else None

    def process_arrivals(self, until_ns: int) -> None:
        """Process every pending arrival with time ``<= until_ns``, in arrival order,
        against the current book.  ``on_market`` calls it itself before each event."""
        heap = self._arrivals
        while heap and heap[0][0] <= until_ns:
            ts, _, action = heappop(heap)
            if ts > self.now_ns:
                self.now_ns = ts
            self.counters.arrivals += 1
            cls = type(action)
            if cls is CreateOrder:
                self._on_create(action, ts)  # type: ignore[arg-type]
            elif cls is AmendOrder:
                self._on_amend(action, ts)  # type: ignore[arg-type]
            else:
                self._on_cancel(action, ts)  # type: ignore[arg-type]
            cid = action.client_id
            n = self._inflight[cid] - 1
            if n:
                self._inflight[cid] = n
            else:
                del self._inflight[cid]
                if cid not in self._live:
                    self._last_arrival.pop(cid, None)
                    self._last_delivery.pop(cid, None)

    # ------------------------------------------------------------------ market in
    def on_market(self, event: Any) -> None:
        """A market event at exchange time ``event.ts``: arrivals due at or before it are
        processed first (tie rule 3), then the sim's book, queues and fills are updated.
        Events for symbols without an instrument are ignored."""
        ts = event.ts
        arr = self._arrivals
        if arr and arr[0][0] <= ts:
            self.process_arrivals(ts)
        st = self._syms.get(event.symbol)
        if st is None:
            return
        self.now_ns = ts  # events come in ts order
        cls = type(event)
        if cls is BookDelta:
            if st.n:
                self._delta(st, event.bids, event.asks, ts)
            else:
                st.book.apply_delta(event.bids, event.asks)
            st.book.ts = ts
            st.depth_seen = True
        elif cls is Trade:
            if event.side < 0:
                if event.price <= st.max_bid:
                    self._trade(st, event, True)
            elif event.price >= st.min_ask:
                self._trade(st, event, False)
        elif cls is BookSnapshot:
            st.depth_seen = True
            self._replace(st, event.bids, event.asks, ts)
        elif cls is Quote:
            if not st.depth_seen:  # a quote-only feed drives a top-of-book view; depth data wins
                bids = ((event.bid_px, event.bid_qty),) if event.bid_px > 0 and event.bid_qty > 0 else ()
                asks = ((event.ask_px, event.ask_qty),) if event.ask_px > 0 and event.ask_qty > 0 else ()
                self._replace(st, bids, asks, ts)
        elif cls is SeqGap:
            st.book.mark_stale()
        else:
            raise TypeError(f"not a market event: {event!r}")

    # ------------------------------------------------------------------ reports out
    def drain_reports(self, until_ns: int | None = None) -> list[tuple[int, VenueReport]]:
        """``(deliver_ns, report)`` pairs sorted by delivery time (ties: production order).

        ``until_ns=None`` hands out every report produced so far, including deliveries
        still in the future (the caller schedules them: a later drain may hold an earlier
        delivery).  With ``until_ns`` only reports due by then leave; called with the
        engine's clock after processing everything up to it, the stream is globally sorted.
        """
        heap = self._reports
        if not heap:
            return []  # the common case: the engine drains after every event
        if until_ns is None:
            heap.sort()
            out = [(d, r) for d, _, r in heap]
            heap.clear()
            return out
        out = []
        while heap and heap[0][0] <= until_ns:
            d, _, r = heappop(heap)
            out.append((d, r))
        return out

    def next_report_ns(self) -> int | None:
        """Delivery time of the earliest undrained report, or None."""
        return self._reports[0][0] if self._reports else None

    # ------------------------------------------------------------------ views
    def open_orders(self, symbol: str | None = None) -> list[SimOrder]:
        """Copies of the resting orders, by symbol, bids then asks, best price first, FIFO."""
        out = [SimOrder(o.cid, o.symbol, o.side, o.price, o.qty, o.filled, float(o.ahead), o.post_only, o.rested_ns)
               for o in self._live.values() if symbol is None or o.symbol == symbol]
        out.sort(key=lambda o: (o.symbol, -o.side, -o.price * o.side, o.rested_ns, o.client_id))
        return out

    def order(self, client_id: str) -> SimOrder | None:
        """A copy of one resting order, or None (not arrived, finished or unknown)."""
        o = self._live.get(client_id)
        if o is None:
            return None
        return SimOrder(o.cid, o.symbol, o.side, o.price, o.qty, o.filled, float(o.ahead), o.post_only, o.rested_ns)

    def book(self, symbol: str) -> L2Book:
        """The sim's own book of ``symbol`` (exchange-time view; read it, do not change it)."""
        return self._syms[symbol].book

    @property
    def pending_arrivals(self) -> int:
        return len(self._arrivals)

    # ------------------------------------------------------------------ arrivals
    def _emit(self, ts: int, report: VenueReport, op: str) -> None:
        deliver = ts + self.latency.response_ns(op, ts, self._rng)
        if self._preserve:
            cid = report.client_id
            last = self._last_delivery.get(cid)
            if last is not None and deliver < last:
                deliver = last
            self._last_delivery[cid] = deliver
        heappush(self._reports, (deliver, self._rseq, report))
        self._rseq += 1

    def _reject(self, ts: int, cid: str, op: str, reason: str) -> None:
        rj = self.counters.rejects
        rj[reason] = rj.get(reason, 0) + 1
        self._emit(ts, Reject(ts, cid, op, reason), op)

    def _crosses(self, st: _Sym, side: int, price: int) -> bool:
        book = st.book
        if side > 0:
            best = book.best_ask
            return best is not None and price >= best
        best = book.best_bid
        return best is not None and price <= best

    def _on_create(self, a: CreateOrder, ts: int) -> None:
        cid = a.client_id
        if cid in self._live or cid in self._finished:
            self._reject(ts, cid, OP_CREATE, R_DUPLICATE)
            return
        reason = _check_order(a.side, a.price, a.qty)
        if reason:
            self._reject(ts, cid, OP_CREATE, reason)
            self._remember(cid)
            return
        st = self._syms[a.symbol]
        o = _Order(cid, a.symbol, a.side, a.price, a.qty, a.post_only)
        if self._crosses(st, a.side, a.price):
            if a.post_only:
                self._reject(ts, cid, OP_CREATE, R_POST_ONLY)
                self._remember(cid)
                return
            self._live[cid] = o
            self._take(st, o, ts, OP_CREATE)
            return
        self._live[cid] = o
        self._rest(st, o, ts)
        self.counters.acks += 1
        self._emit(ts, make_ack(ts, cid, OP_CREATE, o.price, o.qty), OP_CREATE)

    def _on_amend(self, a: AmendOrder, ts: int) -> None:
        cid = a.client_id
        o = self._live.get(cid)
        if o is None or not o.resting:
            self._reject(ts, cid, OP_AMEND, R_UNKNOWN_ORDER)
            return
        if a.price <= 0:
            self._reject(ts, cid, OP_AMEND, R_INVALID_PRICE)
            return
        if a.qty <= o.filled:
            self._reject(ts, cid, OP_AMEND, R_INVALID_QTY)
            return
        st = self._syms[o.symbol]
        if a.price != o.price:
            crosses = self._crosses(st, o.side, a.price)
            if crosses and o.post_only:
                self._reject(ts, cid, OP_AMEND, R_POST_ONLY)
                return
            self._unrest(st, o)
            o.price, o.qty = a.price, a.qty
            if crosses:
                self._take(st, o, ts, OP_AMEND)
                return
            self._rest(st, o, ts)  # a price change loses priority: behind the visible size
        elif a.qty > o.qty:
            self._unrest(st, o)  # a size increase loses priority too
            o.qty = a.qty
            self._rest(st, o, ts)
        else:
            o.qty = a.qty  # same price, same or smaller size: keeps its place
        self.counters.acks += 1
        self._emit(ts, make_ack(ts, cid, OP_AMEND, o.price, o.qty), OP_AMEND)

    def _on_cancel(self, a: CancelOrder, ts: int) -> None:
        cid = a.client_id
        o = self._live.get(cid)
        if o is None or not o.resting:
            self._reject(ts, cid, OP_CANCEL, R_UNKNOWN_ORDER)
            return
        self._unrest(self._syms[o.symbol], o)
        self._done(o)
        self.counters.cancels += 1
        self._emit(ts, make_canceled(ts, cid, a.reason or "canceled"), OP_CANCEL)

    def _take(self, st: _Sym, o: _Order, ts: int, op: str) -> None:
        """``o`` crosses on arrival (not post-only): walk the opposite levels up to its
        limit as taker; a remainder rests as maker at the limit (Ack first, then fills).
        An accepted amend is always acked, even when the walk fills it whole: the order
        manager learns the new total before the fills that complete it."""
        book = st.book
        rem = o.qty - o.filled
        plan: list[tuple[int, int]] = []
        for p, size in book.levels_within(-o.side, o.price):  # the opposite side up to our limit
            take = min(rem, size)
            plan.append((p, take))
            rem -= take
            if not rem:
                break
        if rem:
            self._rest(st, o, ts)
        if rem or op == OP_AMEND:
            self.counters.acks += 1
            self._emit(ts, make_ack(ts, o.cid, op, o.price, o.qty), op)
        for p, take in plan:
            self._fill(st, o, take, p, TAKER, ts, op)
        if not rem:
            self._done(o)

    def _rest(self, st: _Sym, o: _Order, ts: int) -> None:
        o.ahead = self.queue.on_join(st.book.size_at(o.side, o.price))
        o.traded = 0
        self._join_seq += 1
        o.seq = self._join_seq
        o.rested_ns = ts
        o.resting = True
        if o.side > 0:
            lst = st.bids.get(o.price)
            if lst is None:
                st.bids[o.price] = [o]
            else:
                lst.append(o)
            if o.price > st.max_bid:
                st.max_bid = o.price
        else:
            lst = st.asks.get(o.price)
            if lst is None:
                st.asks[o.price] = [o]
            else:
                lst.append(o)
            if o.price < st.min_ask:
                st.min_ask = o.price
        st.n += 1

    def _unrest(self, st: _Sym, o: _Order) -> None:
        if not o.resting:
            return
        o.resting = False
        lv = st.bids if o.side > 0 else st.asks
        lst = lv[o.price]
        lst.remove(o)
        if not lst:
            del lv[o.price]
            if o.side > 0:
                if o.price == st.max_bid:
                    st.max_bid = max(lv) if lv else _NEG
            elif o.price == st.min_ask:
                st.min_ask = min(lv) if lv else _POS
        st.n -= 1

    def _remember(self, cid: str) -> None:
        fin = self._finished
        fin[cid] = None
        if len(fin) > self.params.retention:
            fin.popitem(last=False)

    def _done(self, o: _Order) -> None:
        cid = o.cid
        self._live.pop(cid, None)
        self._remember(cid)
        if cid not in self._inflight:
            self._last_arrival.pop(cid, None)
            self._last_delivery.pop(cid, None)

    # ------------------------------------------------------------------ fills
    def _fill(self, st: _Sym, o: _Order, qty: int, price: int, liq: str, ts: int, op: str) -> None:
        if qty <= 0:
            return
        o.filled += qty
        if liq == TAKER and self._slip is not None:
            price = self._slipped(price, o.side)
        if st.inverse:
            usd = _CTX.multiply(Decimal(qty), st.contract)
            settle = _CTX.divide(usd, _CTX.multiply(Decimal(price), st.tick))
        else:
            settle = usd = _CTX.multiply(Decimal(price * qty), st.unit)
        fee = fee_for(settle, self.fees.rate_bps(st.symbol, liq, ts))
        self.fees.record_fill(st.symbol, ts, usd)
        c = self.counters
        c.fills += 1
        c.filled_lots += qty
        if liq == MAKER:
            c.maker_fills += 1
        else:
            c.taker_fills += 1
        self._emit(ts, make_fill(ts, o.cid, o.symbol, o.side, price, qty, liq, fee, o.filled), op)
        if o.resting and o.filled >= o.qty:
            self._unrest(st, o)
            self._done(o)

    def _slipped(self, price: int, side: int) -> int:
        assert self._slip is not None
        ticks = int((Decimal(price) * self._slip / 10000).to_integral_value(rounding=ROUND_CEILING))
        return price + ticks if side > 0 else max(1, price - ticks)

    def _trade(self, st: _Sym, ev: Trade, hit_bids: bool) -> None:
        """A print that reaches at least one of our orders (price at or through ours)."""
        p = ev.price
        left = ev.qty  # lots of this print not yet matched: conservation
        ts = ev.ts
        if hit_bids:
            mine = st.bids
            prices = sorted((q for q in mine if q >= p), reverse=True)
        else:
            mine = st.asks
            prices = sorted(q for q in mine if q <= p)
        touch = self._touch
        tox = self._toxic
        rng = self._rng
        for q in prices:
            orders = mine.get(q)
            if not orders:
                continue
            through = q != p
            consumed = 0  # visible lots at q this print consumed ahead of our orders
            for o in list(orders):  # a copy: a complete fill removes the order
                rem = o.qty - o.filled
                if tox and rng.random() < tox:
                    o.ahead = 0
                    self.counters.sweeps += 1
                    self._fill(st, o, rem, q, self._sweep_liq, ts, OP_FILL)
                    continue
                if touch:
                    o.ahead = 0
                    self._fill(st, o, rem, q, MAKER, ts, OP_FILL)
                    continue
                if through:
                    o.ahead = 0  # the print is past our price: everything at q traded
                else:
                    o.traded += ev.qty
                    a = o.ahead
                    if a:
                        need = (a if a.__class__ is int else math.ceil(a - _EPS)) - consumed
                        if need > 0:
                            take = left if left < need else need
                            left -= take
                            consumed += take
                        a -= consumed
                        o.ahead = a if a > 0 else 0
                if left > 0:
                    f = rem if rem < left else left
                    left -= f
                    self._fill(st, o, f, q, MAKER, ts, OP_FILL)

    # ------------------------------------------------------------------ book updates
    def _delta(self, st: _Sym, bids: Sequence[Level], asks: Sequence[Level], ts: int) -> None:
        # A delta that touches none of our prices (the common case) goes to the book in one
        # bulk ``apply_delta``; otherwise ``_delta_at_ours`` moves the queues ahead of us.
        book = st.book
        mine = st.bids
        hit_bids = bool(mine) and not mine.keys().isdisjoint([px for px, _ in bids])
        mine = st.asks
        hit_asks = bool(mine) and not mine.keys().isdisjoint([px for px, _ in asks])
        if hit_bids or hit_asks:
            self._delta_at_ours(st, bids, asks, hit_bids, hit_asks)
        else:
            book.apply_delta(bids, asks)  # none of our prices: one bulk call
        if self._cross_fills:
            ba = book.best_ask
            bb = book.best_bid
            if ((ba is not None and ba <= st.max_bid) or (bb is not None and bb >= st.min_ask)
                    or st.used_ask or st.used_bid):
                self._check_cross(st, ts)

    def _delta_at_ours(self, st: _Sym, bids: Sequence[Level], asks: Sequence[Level], hit_bids: bool,
                       hit_asks: bool) -> None:
        """A delta touching a price where our orders rest: those levels one by one (the
        queues ahead of us move), the others of the side in bulk."""
        book = st.book
        apply = book.apply_level
        on_depth = self._on_depth
        mine = st.bids
        if hit_bids:
            levels = book.bids
            for px, qty in bids:
                orders = mine.get(px)
                if orders is None:
                    apply(1, px, qty)
                else:
                    prev = levels.get(px, 0)
                    apply(1, px, qty)
                    for o in orders:
                        o.ahead = on_depth(o.ahead, prev, qty, o.traded)
                        o.traded = 0
        elif bids:
            book.apply_levels(1, bids)
        mine = st.asks
        if hit_asks:
            levels = book.asks
            for px, qty in asks:
                orders = mine.get(px)
                if orders is None:
                    apply(-1, px, qty)
                else:
                    prev = levels.get(px, 0)
                    apply(-1, px, qty)
                    for o in orders:
                        o.ahead = on_depth(o.ahead, prev, qty, o.traded)
                        o.traded = 0
        elif asks:
            book.apply_levels(-1, asks)

    def _replace(self, st: _Sym, bids: Iterable[Level], asks: Iterable[Level], ts: int) -> None:
        book = st.book
        if not st.n:
            book.apply_snapshot(bids, asks)
            book.ts = ts
            return
        prev_b = {px: book.bids.get(px, 0) for px in st.bids}
        prev_a = {px: book.asks.get(px, 0) for px in st.asks}
        book.apply_snapshot(bids, asks)
        book.ts = ts
        on_depth = self._on_depth
        for mine, prev, levels in ((st.bids, prev_b, book.bids), (st.asks, prev_a, book.asks)):
            for px, orders in mine.items():
                new = levels.get(px, 0)
                for o in orders:
                    o.ahead = on_depth(o.ahead, prev[px], new, o.traded)
                    o.traded = 0
        if self._cross_fills:
            self._check_cross(st, ts)

    def _check_cross(self, st: _Sym, ts: int) -> None:
        book = st.book
        ba = book.best_ask
        if ba is not None and ba <= st.max_bid:
            self._cross(st, True, ts)
        elif st.used_ask:
            st.used_ask.clear()
        bb = book.best_bid
        if bb is not None and bb >= st.min_ask:
            self._cross(st, False, ts)
        elif st.used_bid:
            st.used_bid.clear()

    def _cross(self, st: _Sym, our_bids: bool, ts: int) -> None:
        """The opposite side reached our resting price(s) without a print: fill as maker
        at our price against the visible crossing size not already matched."""
        book = st.book
        if book.crossed:
            return  # the public book itself is crossed (stale or broken data): no trustworthy size
        if our_bids:
            mine, opp, used = st.bids, book.asks, st.used_ask
            best = book.best_ask
            prices = sorted((q for q in mine if q >= best), reverse=True)  # type: ignore[operator]
            levels = [p for p, _ in book.levels_within(-1, prices[0])]
        else:
            mine, opp, used = st.asks, book.bids, st.used_bid
            best = book.best_bid
            prices = sorted(q for q in mine if q <= best)  # type: ignore[operator]
            levels = [p for p, _ in book.levels_within(1, prices[0])]
        for p in list(used):  # size that left a level since we matched it is gone
            size = opp.get(p, 0)
            if used[p] > size:
                if size:
                    used[p] = size
                else:
                    del used[p]
        for q in prices:
            orders = mine.get(q)
            if not orders:
                continue
            for o in list(orders):
                o.ahead = 0
                rem = o.qty - o.filled
                for p in levels:
                    if (p > q) if our_bids else (p < q):
                        break
                    avail = opp[p] - used.get(p, 0)
                    if avail <= 0:
                        continue
                    take = rem if rem < avail else avail
                    used[p] = used.get(p, 0) + take
                    self.counters.cross_fills += 1
                    self._fill(st, o, take, q, MAKER, ts, OP_FILL)
                    rem -= take
                    if not rem:
                        break


def _check_order(side: int, price: int, qty: int) -> str:
    if side != BUY and side != SELL:
        return R_INVALID_SIDE
    if isinstance(price, bool) or not isinstance(price, int) or price <= 0:
        return R_INVALID_PRICE
    if isinstance(qty, bool) or not isinstance(qty, int) or qty <= 0:
        return R_INVALID_QTY
    return ""

