"""Run statistics for the backtest report and the gates: one definition of every metric.

Why it exists: a strategy is promoted or rejected on these numbers (``net_bps >= 2.5``,
``taker_share_pct <= 15``, ``order_age_p95_ms <= 350``), so each one has exactly one
definition, here, with its unit in its name; ``docs/metrics.md`` is the reference.

Inputs: (a) the ``Ledger`` (PnL, fees, turnover, fills, the equity curve on its fixed
grid), (b) ``OrderRecord``s from the order manager/engine (one per order: placed, done,
filled, canceled, replaced), (c) ``MarkoutStats`` from ``core.signals.MarkoutTracker`` (the
one markout implementation: per-fill markouts summed as exact ints of bps x 1e4).

Number kinds:

- money sums and the equity curve are exact (ints of 1e-8 USD from the ledger);
- the moments behind Sharpe/Sortino, the drawdown ratio, CVaR and percentiles are
  computed with integers/``Fraction``; the one float step is the final conversion (and a
  square root), so the same inputs give bit-identical floats on every platform;
- every output is a finite float or int (``Stats`` refuses NaN/inf: they go into JSON
  artifacts, where NaN is an error).  A metric with nothing to measure is 0, never NaN.

Conventions used everywhere in this module:

- percentiles are *nearest-rank*: the ``p``-th percentile of ``n`` sorted values is the
  value at rank ``ceil(p/100 x n)`` (1-based); it is always an observed value;
- CVaR95 takes the worst ``ceil(5% x n)`` observations (nearest-rank, at least one);
- annualization: 365-day years (crypto trades every day), periods per year =
  ``365 x 86400 x 1000 / equity_interval_ms``.

Pure: stdlib only, no I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from decimal import Decimal
from fractions import Fraction

from mmkit.core.ledger import USD_E8, Ledger, usd_e8
from mmkit.core.signals import BPS_E4, MarkoutStats

__all__ = [
    "MS_PER_YEAR",
    "NS_PER_MIN",
    "STATS_KEYS",
    "OrderRecord",
    "Stats",
    "GateSpec",
    "GateResult",
    "GATE_OPS",
    "DEFAULT_GATES",
    "nearest_rank",
    "percentile_nearest_rank",
    "cvar_tail_count",
    "periods_per_year",
    "sharpe_ratio",
    "sortino_ratio",
    "max_drawdown",
    "cvar_e8",
    "order_ages_ns",
    "merge_markouts",
    "compute_stats",
    "evaluate_gates",
]

MS_PER_YEAR = 365 * 86_400 * 1000
"""Milliseconds in a 365-day year (crypto markets never close)."""
NS_PER_MS = 1_000_000
NS_PER_MIN = 60 * 1_000_000_000


# ----------------------------------------------------------------------------- inputs
@dataclass(frozen=True, slots=True)
class OrderRecord:
    """The life of one order, as the order manager/engine reports it (times in int ns).

    ``created_ns``: the create was sent.  ``placed_ns``: the venue acknowledged it (0 =
    never, e.g. rejected).  ``done_ns``: it reached a terminal state (0 = still open when
    the run ended).  ``filled_lots`` of ``qty_lots`` executed.  ``canceled``: it ended by a
    cancel (including the cancel half of a cancel-replace and an expiry); ``rejected``: the
    venue refused it.  ``replaces``: how many times it was repriced or resized in place
    (amends applied); under the cancel-replace policy the canceled order carries 1.
    """

    client_id: str
    symbol: str
    side: int
    created_ns: int
    placed_ns: int
    done_ns: int
    qty_lots: int
    filled_lots: int
    canceled: bool = False
    rejected: bool = False
    replaces: int = 0

    @property
    def was_placed(self) -> bool:
        """Acknowledged by the venue (an order that filled before its ack counts too)."""
        return self.placed_ns > 0 or self.filled_lots > 0


class _OrderRecordBuilder:
    # The engine records every order once it ends; a frozen dataclass with keywords costs
    # ~2.5 us, this ~0.4 us (the ``core.events`` relabeling trick; tests check the slots).
    __slots__ = ("client_id", "symbol", "side", "created_ns", "placed_ns", "done_ns", "qty_lots", "filled_lots",
                 "canceled", "rejected", "replaces")

    def __init__(self, client_id: str, symbol: str, side: int, created_ns: int, placed_ns: int, done_ns: int,
                 qty_lots: int, filled_lots: int, canceled: bool, rejected: bool, replaces: int) -> None:
        self.client_id = client_id
        self.symbol = symbol
        self.side = side
        self.created_ns = created_ns
        self.placed_ns = placed_ns
        self.done_ns = done_ns
        self.qty_lots = qty_lots
        self.filled_lots = filled_lots
        self.canceled = canceled
        self.rejected = rejected
        self.replaces = replaces
        self.__class__ = OrderRecord  # type: ignore[assignment]


make_order_record: Callable[[str, str, int, int, int, int, int, int, bool, bool, int], OrderRecord] = \
    _OrderRecordBuilder  # type: ignore[assignment]
"""Positional builder returning a real ``OrderRecord`` (every field given)."""


# ----------------------------------------------------------------------------- the report
STATS_KEYS = (
    "net_pnl_usd", "gross_pnl_usd", "fees_usd", "rebates_usd", "turnover_usd", "net_bps", "taker_share_pct",
    "fill_rate", "hit_rate", "order_age_p50_ms", "order_age_p95_ms", "order_age_p99_ms", "sharpe", "sortino",
    "max_drawdown_usd", "max_drawdown_ratio", "cvar95_usd", "markout_200ms_bps", "markout_500ms_bps",
    "adverse_fill_rate", "position_max_abs_usd", "position_mean_abs_usd", "quotes_per_min", "cancels_per_min",
    "replaces_per_min", "fills", "orders",
)
"""``Stats.to_dict()`` keys, stable: they are ``BACKTEST_REPORT.json`` fields."""


@dataclass(frozen=True, slots=True)
class Stats:
    """Every metric of a run (see ``docs/metrics.md`` for definitions and units).

    USD amounts are floats converted once from exact ledger values; ``position_*`` are
    gross exposure in USD (sum over symbols of ``|notional|`` at the marks).
    """

    net_pnl_usd: float
    gross_pnl_usd: float
    fees_usd: float
    rebates_usd: float
    turnover_usd: float
    net_bps: float
    taker_share_pct: float
    fill_rate: float
    hit_rate: float
    order_age_p50_ms: float
    order_age_p95_ms: float
    order_age_p99_ms: float
    sharpe: float
    sortino: float
    max_drawdown_usd: float
    max_drawdown_ratio: float
    cvar95_usd: float
    markout_200ms_bps: float
    markout_500ms_bps: float
    adverse_fill_rate: float
    position_max_abs_usd: float
    position_mean_abs_usd: float
    quotes_per_min: float
    cancels_per_min: float
    replaces_per_min: float
    fills: int
    orders: int

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise TypeError(f"stats field {f.name} must be a number, got {type(v).__name__}")
            if not math.isfinite(v):
                raise ValueError(f"stats field {f.name} is not finite: {v!r}")

    def to_dict(self) -> dict[str, float | int]:
        """The report fields (``STATS_KEYS``), plain floats and ints, all finite."""
        return {k: getattr(self, k) for k in STATS_KEYS}


# ----------------------------------------------------------------------------- building blocks
def nearest_rank(n: int, pct: float | int | Fraction) -> int:
    """1-based rank of the ``pct``-th percentile of ``n`` values: ``ceil(pct/100 x n)``, >= 1.

    Exact: ``pct`` is read as written (a float through ``repr``), so 95 of 20 is rank 19.
    """
    if n <= 0:
        raise ValueError("no values")
    p = Fraction(repr(pct)) if isinstance(pct, float) else Fraction(pct)
    if not 0 < p <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {pct}")
    return max(1, math.ceil(p * n / 100))


def percentile_nearest_rank(values: Iterable[int | float], pct: float | int) -> int | float:
    """Nearest-rank percentile (an observed value); 0 for no values."""
    xs = sorted(values)
    if not xs:
        return 0
    return xs[nearest_rank(len(xs), pct) - 1]


def cvar_tail_count(n: int, tail_pct: int = 5) -> int:
    """How many worst observations CVaR averages: ``ceil(tail_pct% x n)``, at least 1 (0 if n = 0)."""
    return 0 if n <= 0 else nearest_rank(n, tail_pct)


def periods_per_year(interval_ms: int) -> Fraction:
    """Equity-curve intervals in a 365-day year (exact): 31,536,000 for 1000 ms."""
    if interval_ms <= 0:
        raise ValueError(f"interval must be > 0 ms, got {interval_ms}")
    return Fraction(MS_PER_YEAR, interval_ms)


def _diffs(equity: Sequence[int]) -> list[int]:
    return [b - a for a, b in zip(equity, equity[1:])]


def _signed_sqrt(sign_src: int, square: Fraction) -> float:
    r = math.sqrt(float(square))
    return r if sign_src >= 0 else -r


def sharpe_ratio(diffs: Sequence[int], ppy: Fraction | int) -> float:
    """Annualized Sharpe of per-interval PnL changes: ``mean / stdev x sqrt(ppy)``.

    ``stdev`` is the sample standard deviation (n - 1).  The changes are in any fixed unit
    (ints of 1e-8 USD here); returns relative to a constant capital give the same number,
    because the capital cancels.  0 when undefined (fewer than 2 changes or no variance).
    Computed as an exact ``Fraction`` of the square, then one ``sqrt``.
    """
    n = len(diffs)
    if n < 2:
        return 0.0
    s1 = sum(diffs)
    s2 = sum(d * d for d in diffs)
    spread = n * s2 - s1 * s1  # n (n - 1) x sample variance
    if spread <= 0 or s1 == 0:
        return 0.0
    square = Fraction(s1 * s1 * (n - 1), n * spread) * Fraction(ppy)
    return _signed_sqrt(s1, square)


def sortino_ratio(diffs: Sequence[int], ppy: Fraction | int) -> float:
    """Annualized Sortino: ``mean / downside_dev x sqrt(ppy)``, target 0.

    ``downside_dev = sqrt(sum(min(d, 0)^2) / n)`` over *all* n changes (Sortino & Price).
    0 when undefined: fewer than 2 changes, or no losing interval (it would be +inf).
    """
    n = len(diffs)
    if n < 2:
        return 0.0
    s1 = sum(diffs)
    d2 = sum(d * d for d in diffs if d < 0)
    if d2 == 0 or s1 == 0:
        return 0.0
    square = Fraction(s1 * s1, n * d2) * Fraction(ppy)
    return _signed_sqrt(s1, square)


def max_drawdown(equity: Sequence[int], capital: int) -> tuple[int, Fraction]:
    """Largest peak-to-trough fall of ``equity`` (PnL, starting from 0), absolute and relative.

    Returns ``(max_dd, max_dd_ratio)``: ``max_dd = max_t(peak_t - E_t)`` in the unit of the
    inputs, ``max_dd_ratio = max_t((peak_t - E_t) / (capital + peak_t))`` where
    ``peak_t`` is the running maximum including the starting 0.  The two maxima may occur
    at different times.  ``capital`` must be > 0 (so the ratio's denominator is too).
    """
    if capital <= 0:
        raise ValueError(f"starting capital must be > 0, got {capital}")
    peak = 0
    dd = 0
    ratio = Fraction(0)
    for e in equity:
        if e > peak:
            peak = e
            continue
        fall = peak - e
        if fall > dd:
            dd = fall
        r = Fraction(fall, capital + peak)
        if r > ratio:
            ratio = r
    return dd, ratio


def cvar_e8(diffs: Sequence[int], tail_pct: int = 5) -> Fraction:
    """Mean of the worst ``ceil(tail_pct% x n)`` observations (signed: < 0 for losses); 0 if none."""
    k = cvar_tail_count(len(diffs), tail_pct)
    if k == 0:
        return Fraction(0)
    worst = sorted(diffs)[:k]
    return Fraction(sum(worst), k)


def order_ages_ns(orders: Iterable[OrderRecord], end_ns: int) -> list[int]:
    """Age of every placed order: ``done_ns - placed_ns`` (still open: ``end_ns - placed_ns``).

    Orders never acknowledged (rejected, or lost before the ack) have no age.  An order
    that filled before its ack (``placed_ns == 0``) is aged from ``created_ns``.
    """
    out = []
    for o in orders:
        placed = o.placed_ns
        if placed <= 0 and o.filled_lots <= 0:  # not o.was_placed (inlined: one call per order)
            continue
        start = placed or o.created_ns
        stop = o.done_ns or end_ns
        out.append(stop - start if stop > start else 0)
    return out


def merge_markouts(markouts: Iterable[MarkoutStats]) -> dict[int, MarkoutStats]:
    """Sum ``MarkoutStats`` of several symbols/trackers per horizon (exact int sums)."""
    acc: dict[int, list[int]] = {}
    for m in markouts:
        a = acc.setdefault(m.horizon_ms, [0, 0, 0, 0])
        a[0] += m.count
        a[1] += m.sum_bps_e4
        a[2] += m.up
        a[3] += m.down
    return {h: MarkoutStats(h, *a) for h, a in sorted(acc.items())}


def _ratio(num: int | Fraction, den: int | Fraction) -> float:
    return float(Fraction(num) / Fraction(den)) if den else 0.0


def _per_min(count: int, minutes: Fraction) -> float:
    return float(count / minutes) if minutes > 0 else 0.0


def _ms(ns: int) -> float:
    return float(Fraction(ns, NS_PER_MS))


def _e8(x: int | Fraction) -> float:
    return float(Fraction(x) / USD_E8)


# ----------------------------------------------------------------------------- the computation
def compute_stats(
    ledger: Ledger,
    orders: Iterable[OrderRecord] = (),
    markouts: Iterable[MarkoutStats] = (),
    *,
    start_ns: int,
    end_ns: int,
    starting_capital_usd: Decimal | int | float | str,
    adverse_horizon_ms: int = 500,
) -> Stats:
    """All metrics of a run over the window ``[start_ns, end_ns]``.

    ``ledger`` should have been sampled up to ``end_ns`` (its equity curve is the
    observation series of Sharpe, Sortino, drawdown and CVaR); PnL, fees and turnover are
    the ledger's exact totals at its current marks.  ``orders`` are the run's order
    records; ``markouts`` the ``MarkoutStats`` of every symbol's tracker (merged per
    horizon).  ``starting_capital_usd`` (> 0; a float is read as written, ``repr``) is the
    capital behind the drawdown ratio.
    ``adverse_horizon_ms`` picks the markout horizon of ``adverse_fill_rate``.
    """
    if end_ns < start_ns:
        raise ValueError(f"end_ns {end_ns} is before start_ns {start_ns}")
    c = starting_capital_usd
    if isinstance(c, bool):
        raise TypeError("starting_capital_usd must be a number, not a bool")
    cap = c if isinstance(c, Decimal) else Decimal(repr(c)) if isinstance(c, float) else Decimal(c)
    if not cap.is_finite() or cap <= 0:
        raise ValueError(f"starting_capital_usd must be > 0, got {starting_capital_usd}")
    capital_e8 = usd_e8(Fraction(cap))

    # (a) the ledger
    gross = Fraction(ledger.realized_pnl_exact()) + Fraction(ledger.unrealized_pnl_exact())
    fees = Fraction(ledger.fees_exact())
    rebates = Fraction(ledger.rebates_exact())
    net = Fraction(ledger.net_pnl_exact())
    turnover = Fraction(ledger.turnover_exact())
    taker = Fraction(ledger.taker_notional_exact())
    notional = Fraction(ledger.maker_notional_exact()) + taker
    t = ledger.totals()

    equity = ledger.equity_e8
    diffs = _diffs(equity)
    ppy = periods_per_year(ledger.equity_interval_ms)
    dd, dd_ratio = max_drawdown(equity, capital_e8)
    exposure = ledger.exposure_e8

    # (b) orders
    recs = list(orders)
    ages = sorted(order_ages_ns(recs, end_ns))
    placed = [o for o in recs if o.was_placed]
    filled = sum(1 for o in placed if o.filled_lots > 0)
    minutes = Fraction(end_ns - start_ns, NS_PER_MIN)

    def age_ms(p: int) -> float:
        return _ms(ages[nearest_rank(len(ages), p) - 1]) if ages else 0.0

    # (c) markouts
    mk = merge_markouts(markouts)

    def mk_bps(h: int) -> float:
        m = mk.get(h)
        return float(Fraction(m.sum_bps_e4, m.count * BPS_E4)) if m and m.count else 0.0

    adverse = mk.get(adverse_horizon_ms)

    return Stats(
        net_pnl_usd=float(net),
        gross_pnl_usd=float(gross),
        fees_usd=float(fees),
        rebates_usd=float(rebates),
        turnover_usd=float(turnover),
        net_bps=_ratio(net * 10_000, turnover),
        taker_share_pct=_ratio(taker * 100, notional),
        fill_rate=_ratio(filled, len(placed)),
        hit_rate=_ratio(t.winning_closes, t.closing_fills),
        order_age_p50_ms=age_ms(50),
        order_age_p95_ms=age_ms(95),
        order_age_p99_ms=age_ms(99),
        sharpe=sharpe_ratio(diffs, ppy),
        sortino=sortino_ratio(diffs, ppy),
        max_drawdown_usd=_e8(dd),
        max_drawdown_ratio=float(dd_ratio),
        cvar95_usd=_e8(cvar_e8(diffs)),
        markout_200ms_bps=mk_bps(200),
        markout_500ms_bps=mk_bps(500),
        adverse_fill_rate=_ratio(adverse.down, adverse.count) if adverse else 0.0,
        position_max_abs_usd=float(Fraction(ledger.peak_exposure_exact())),
        position_mean_abs_usd=_e8(Fraction(sum(exposure), len(exposure))) if exposure else 0.0,
        quotes_per_min=_per_min(len(recs), minutes),
        cancels_per_min=_per_min(sum(1 for o in recs if o.canceled), minutes),
        replaces_per_min=_per_min(sum(o.replaces for o in recs), minutes),
        fills=t.fills,
        orders=len(recs),
    )


# ----------------------------------------------------------------------------- gates
_OPS = {">=": lambda v, t: v >= t, "<=": lambda v, t: v <= t, ">": lambda v, t: v > t, "<": lambda v, t: v < t}

GATE_OPS: dict[str, str] = {
    "net_bps": ">=",
    "net_pnl_usd": ">=",
    "taker_share_pct": "<=",
    "order_age_p50_ms": "<=",
    "order_age_p95_ms": "<=",
    "order_age_p99_ms": "<=",
    "fill_rate": ">=",
    "hit_rate": ">=",
    "sharpe": ">=",
    "sortino": ">=",
    "max_drawdown_usd": "<=",
    "max_drawdown_ratio": "<=",
    "cvar95_usd": ">=",
    "markout_200ms_bps": ">=",
    "markout_500ms_bps": ">=",
    "adverse_fill_rate": "<=",
}
"""The direction of each metric that may be gated on (used when thresholds come as a mapping).

``cvar95_usd`` is signed (< 0 for losses): the seed's "``abs(cvar95_usd) <= X``" loss
limit is the gate ``cvar95_usd >= -X``."""


@dataclass(frozen=True, slots=True)
class GateSpec:
    """One gate: ``<metric> <op> <threshold>`` must hold to pass."""

    name: str
    op: str
    threshold: float

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ValueError(f"gate {self.name}: op must be one of {sorted(_OPS)}, got {self.op!r}")
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, float)) \
                or not math.isfinite(self.threshold):
            raise ValueError(f"gate {self.name}: threshold must be a finite number, got {self.threshold!r}")


@dataclass(frozen=True, slots=True)
class GateResult:
    """A gate's verdict for the report: metric, its value, the threshold, the op, pass/fail."""

    name: str
    value: float
    threshold: float
    op: str
    passed: bool


DEFAULT_GATES: tuple[GateSpec, ...] = (
    GateSpec("net_bps", ">=", 2.5),
    GateSpec("taker_share_pct", "<=", 15.0),
    GateSpec("order_age_p95_ms", "<=", 350.0),
)
"""The seed's backtest gates: ``net_bps >= 2.5``, ``taker_share_pct <= 15``, ``order_age_p95_ms <= 350``."""


def evaluate_gates(stats: Stats | Mapping[str, float],
                   thresholds: Iterable[GateSpec] | Mapping[str, float] = DEFAULT_GATES) -> list[GateResult]:
    """Judge ``stats`` against each gate, in the given order (pure; no side effects).

    ``thresholds`` is a sequence of ``GateSpec`` or a mapping ``metric -> threshold`` whose
    ops come from ``GATE_OPS``.  The comparison uses the metric's exact float value (no
    rounding), so ``2.5 >= 2.5`` passes.  An unknown metric is a ``ValueError``.
    """
    values = stats.to_dict() if isinstance(stats, Stats) else dict(stats)
    if isinstance(thresholds, Mapping):
        specs = []
        for name, thr in thresholds.items():
            if name not in GATE_OPS:
                raise ValueError(f"no gate direction known for metric {name!r}; pass a GateSpec")
            specs.append(GateSpec(name, GATE_OPS[name], thr))
    else:
        specs = list(thresholds)
    out = []
    for g in specs:
        if g.name not in values:
            raise ValueError(f"gate on unknown metric {g.name!r}")
        v = values[g.name]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"gate {g.name}: value must be a finite number, got {v!r}")
        out.append(GateResult(g.name, float(v), float(g.threshold), g.op, bool(_OPS[g.op](v, g.threshold))))
    return out
