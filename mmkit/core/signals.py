"""Per-symbol market signals: volatility, trade intensity, imbalance, microprice, markouts.

The strategy quotes from these numbers, the mux picks a regime from the volatility, and
the canary gate compares markouts between colors, so every estimator here is cheap
(O(1) per event), deterministic and explicit about its unit:

=========================  ===================================================  ==========================
estimator                  definition                                           unit
=========================  ===================================================  ==========================
``vol_per_sqrt_s``         EWMA of squared mid log-returns per second, sqrt      log-return per sqrt(second)
``vol_bps_per_sqrt_s``     ``vol_per_sqrt_s * 1e4``                              bps per sqrt(second)
``trades_per_s``           exponentially decayed trade count                    trades per second
``buy/sell_lots_per_s``    exponentially decayed aggressor volume               lots per second
``imbalance``              ``(B - A) / (B + A)`` over the top N levels            -1 .. 1 (+1 = all bids)
``microprice_tilt_ticks``  microprice - mid at the touch                        ticks
``micro_bias_raw_ticks``   imbalance and microprice fair-value shift            ticks
markouts                   ``side * (mid_t+h - px) / px * 1e4`` per fill         bps, summed as int bps*1e4
=========================  ===================================================  ==========================

Volatility over a horizon of ``h`` seconds is ``vol_per_sqrt_s * sqrt(h)``; 0.89 bps per
sqrt(s) is about 50% a year (``0.5 / sqrt(365 * 86400)``).

Configuration arrives as a duck-typed object with the fields of ``SignalParams`` (the
``signals:`` config section); the core never imports the config package.

Pure: stdlib only, no I/O, time is passed in as integer nanoseconds.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from heapq import nlargest, nsmallest
from math import exp, isfinite, log, sqrt
from typing import Protocol

from mmkit.core.events import BUY, SELL, BookDelta, BookSnapshot, Quote, Trade

__all__ = [
    "SignalParams",
    "BookTop",
    "BookView",
    "EwmaVol",
    "TradeIntensity",
    "MarkoutStats",
    "MarkoutTracker",
    "SignalSnapshot",
    "SymbolSignals",
    "make_signal_snapshot",
    "markout_bps_e4",
    "microprice_ticks",
    "top_imbalance",
    "top_lots",
    "book_imbalance",
    "micro_bias_raw_ticks",
    "cap_micro_bias",
    "micro_bias_strength",
    "BPS",
    "BPS_E4",
]

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000
LN2 = log(2.0)
BPS = 10_000
"""Basis points per unit (1 bps = 1e-4)."""
BPS_E4 = 10_000
"""Fixed-point scale of markout sums: an int of bps * 1e4 (seed "M1 - Markout")."""


class SignalParams(Protocol):
    """What the estimators read from the ``signals:`` config section (units in the names)."""

    vol_half_life_sec: float
    trade_intensity_half_life_sec: float
    imbalance_levels: int
    imbalance_bias_bps: float
    microprice_weight_ratio: float
    impact_cap_ratio: float
    markout_horizons_ms: Sequence[int]


class BookTop(Protocol):
    """The touch of a book: best prices in ticks and their sizes in lots (None = empty side)."""

    @property
    def best_bid(self) -> int | None: ...

    @property
    def best_ask(self) -> int | None: ...

    @property
    def best_bid_qty(self) -> int | None: ...

    @property
    def best_ask_qty(self) -> int | None: ...


class BookView(BookTop, Protocol):
    """A book with its levels (``core.book.L2Book`` is one): ``bids``/``asks`` map ticks -> lots."""

    @property
    def bids(self) -> dict[int, int]: ...

    @property
    def asks(self) -> dict[int, int]: ...


# ----------------------------------------------------------------------------- pure formulas
def microprice_ticks(bid: int, ask: int, bid_qty: int, ask_qty: int) -> float:
    """Size-weighted mid: ``(bid * ask_qty + ask * bid_qty) / (bid_qty + ask_qty)``, in ticks.

    Leans toward the side with less size (where the next trade is likelier to move the
    price).  With no size on either side it is the plain mid.
    """
    total = bid_qty + ask_qty
    if total <= 0:
        return (bid + ask) / 2
    return (bid * ask_qty + ask * bid_qty) / total


def top_imbalance(bid_qty: int, ask_qty: int) -> float:
    """``(bid_qty - ask_qty) / (bid_qty + ask_qty)`` in [-1, 1]; 0 when both are empty."""
    total = bid_qty + ask_qty
    return 0.0 if total <= 0 else (bid_qty - ask_qty) / total


def top_lots(levels: dict[int, int], best: int, step: int, n: int) -> int:
    """Total lots of the best ``n`` levels of one side (``step`` -1 for bids, +1 for asks).

    Walks outward from ``best`` one tick at a time (prices are integer ticks, so the
    first ``n`` levels met are exactly the top ``n``): O(n) on the dense top of a crypto
    book instead of the O(levels) of a partial sort.  A sparse side falls back to the
    partial sort once the walk would cost more than it (4 ticks per resting level).
    """
    if len(levels) <= n:
        return sum(levels.values())
    get = levels.get
    total = 0
    found = 0
    px = best
    for _ in range(4 * len(levels) + n):
        qty = get(px)
        if qty:
            total += qty
            found += 1
            if found == n:
                return total
        px += step
    top = nlargest(n, levels) if step < 0 else nsmallest(n, levels)
    return sum(levels[p] for p in top)


def book_imbalance(book: BookView, n: int) -> float:
    """``(B - A) / (B + A)`` over the top ``n`` levels of each side; 0 when empty."""
    bid, ask = book.best_bid, book.best_ask
    native = getattr(book, "top_lots", None)  # NativeL2Book: the same sum in C
    if native is not None:
        b = 0 if bid is None else native(1, n)
        a = 0 if ask is None else native(-1, n)
    else:
        b = 0 if bid is None else top_lots(book.bids, bid, -1, n)
        a = 0 if ask is None else top_lots(book.asks, ask, 1, n)
    total = b + a
    return 0.0 if total <= 0 else (b - a) / total


def micro_bias_raw_ticks(mid_ticks: float, imbalance: float, tilt_ticks: float,
                         imbalance_bias_bps: float, microprice_weight_ratio: float) -> float:
    """The uncapped fair-value shift from the micro signals, in ticks.

    ``imbalance * imbalance_bias_bps`` bps of the mid (book pressure) plus
    ``microprice_weight_ratio`` of the way from the mid to the microprice.  Positive means
    "fair value is above the mid".  ``cap_micro_bias`` limits what a quote may use of it.
    """
    return imbalance * imbalance_bias_bps * mid_ticks / BPS + microprice_weight_ratio * tilt_ticks


def cap_micro_bias(raw_bias: float, delta_raw: float, impact_cap_ratio: float) -> float:
    """Clamp ``raw_bias`` to ``+-impact_cap_ratio * |delta_raw|`` (seed "Micro Signals").

    ``delta_raw`` is the raw move the bias rides on this tick; in the quoting strategy it is
    the raw half-spread, so the micro signals may shade a quote by at most 10% (default) of
    its distance from the reservation price: they can tilt the quotes but never turn an
    edge into a loss or a quote into a taker.
    """
    cap = abs(delta_raw) * (0.0 if impact_cap_ratio < 0 else 1.0 if impact_cap_ratio > 1 else impact_cap_ratio)
    if raw_bias > cap:
        return cap
    if raw_bias < -cap:
        return -cap
    return raw_bias


def micro_bias_strength(bias_adjust: float, delta_raw: float) -> float:
    """``|bias_adjust| / max(|delta_raw|, 1e-9)``: how hard the micro bias pushed (metric)."""
    return abs(bias_adjust) / max(abs(delta_raw), 1e-9)


def markout_bps_e4(side: int, price_ticks: int, mid2_ticks: int) -> int:
    """Markout of one fill as an exact int of bps * 1e4, truncated toward zero.

    ``side * (mid - price) / price * 1e4`` bps (seed "M1 - Markout", signed so that a
    positive markout is good for us: the mid moved up after a buy or down after a sell).
    ``mid2_ticks`` is *twice* the mid (``bid + ask``) so half-tick mids stay exact.
    """
    num = side * (mid2_ticks - 2 * price_ticks) * (BPS * BPS_E4)
    den = 2 * price_ticks
    q = abs(num) // den
    return q if num >= 0 else -q


# ----------------------------------------------------------------------------- volatility
class EwmaVol:
    """EWMA of the realized variance rate of mid log-returns, with a time-based half-life.

    Each valid tick contributes ``x = r**2 / dt`` (variance per second) with weight
    ``a = 1 - 2**(-dt / half_life)``, so a tick's contribution is about ``r**2 * ln2 / hl``
    whatever the spacing of ticks: an exponentially weighted realized variance.  The
    average is normalized by the accumulated weight, so the first return is not biased
    toward zero.  A tick is valid only with ``mid > 0`` (finite) and a strictly later time;
    anything else is ignored and the last valid value is kept (seed "EWMA volatility").
    """

    __slots__ = ("half_life_ns", "last_ts", "last_log_mid", "_var_sum", "_weight", "samples", "rejected")

    def __init__(self, half_life_sec: float) -> None:
        if not half_life_sec > 0:
            raise ValueError(f"vol half-life must be > 0 seconds, got {half_life_sec}")
        self.half_life_ns = half_life_sec * NS_PER_S
        self.last_ts: int | None = None
        self.last_log_mid = 0.0
        self._var_sum = 0.0
        self._weight = 0.0
        self.samples = 0
        self.rejected = 0

    def on_mid(self, ts_ns: int, mid: float) -> bool:
        """Feed one mid (any positive price unit: ticks are fine); True if it was used."""
        if not (mid > 0 and isfinite(mid)):
            self.rejected += 1
            return False
        last = self.last_ts
        if last is None:
            self.last_ts = ts_ns
            self.last_log_mid = log(mid)
            return True
        if ts_ns <= last:
            self.rejected += 1
            return False
        lm = log(mid)
        r = lm - self.last_log_mid
        dt_ns = ts_ns - last
        decay = exp(-LN2 * dt_ns / self.half_life_ns)
        self._var_sum = decay * self._var_sum + (1.0 - decay) * (r * r * NS_PER_S / dt_ns)
        self._weight = decay * self._weight + (1.0 - decay)
        self.last_ts = ts_ns
        self.last_log_mid = lm
        self.samples += 1
        return True

    @property
    def variance_per_s(self) -> float:
        """Variance rate of log-returns per second (0 before the first return)."""
        w = self._weight
        return self._var_sum / w if w > 0 else 0.0

    @property
    def vol_per_sqrt_s(self) -> float:
        """Volatility of log-returns per sqrt(second)."""
        return sqrt(self.variance_per_s)

    @property
    def vol_bps_per_sqrt_s(self) -> float:
        return sqrt(self.variance_per_s) * BPS


# ----------------------------------------------------------------------------- trade intensity
class TradeIntensity:
    """Exponentially decayed trade arrival rate and aggressor volume.

    A counter decays by ``2**(-dt / half_life)`` and each trade adds 1 (and its lots to the
    buy or sell volume); ``counter * ln2 / half_life`` is then an unbiased rate per second
    for a steady flow.  Trades with an earlier time than the last one are added without
    decay (data feeds reorder trades within a millisecond).
    """

    __slots__ = ("half_life_ns", "_k", "last_ts", "_count", "_buy", "_sell", "trades")

    def __init__(self, half_life_sec: float) -> None:
        if not half_life_sec > 0:
            raise ValueError(f"trade intensity half-life must be > 0 seconds, got {half_life_sec}")
        self.half_life_ns = half_life_sec * NS_PER_S
        self._k = LN2 / half_life_sec
        self.last_ts: int | None = None
        self._count = 0.0
        self._buy = 0.0
        self._sell = 0.0
        self.trades = 0

    def _decay_to(self, ts_ns: int) -> None:
        last = self.last_ts
        if last is not None and ts_ns > last:
            d = exp(-LN2 * (ts_ns - last) / self.half_life_ns)
            self._count *= d
            self._buy *= d
            self._sell *= d
        if last is None or ts_ns > last:
            self.last_ts = ts_ns

    def on_trade(self, ts_ns: int, side: int, qty_lots: int) -> None:
        self._decay_to(ts_ns)
        self._count += 1.0
        if side == BUY:
            self._buy += qty_lots
        else:
            self._sell += qty_lots
        self.trades += 1

    def rates(self, now_ns: int) -> tuple[float, float, float]:
        """``(trades_per_s, buy_lots_per_s, sell_lots_per_s)`` as of ``now_ns`` (no state change)."""
        last = self.last_ts
        if last is None:
            return 0.0, 0.0, 0.0
        d = exp(-LN2 * (now_ns - last) / self.half_life_ns) if now_ns > last else 1.0
        k = self._k * d
        return self._count * k, self._buy * k, self._sell * k


# ----------------------------------------------------------------------------- markouts
@dataclass(frozen=True, slots=True)
class MarkoutStats:
    """Matured markouts of one symbol at one horizon, in fixed point (seed "M1 - Markout").

    ``sum_bps_e4`` is the exact sum of per-fill markouts as ints of bps * 1e4, so averages
    are reproducible bit for bit; ``up``/``down`` count positive/negative markouts (a
    ``down`` fill was adversely selected).
    """

    horizon_ms: int
    count: int
    sum_bps_e4: int
    up: int
    down: int

    @property
    def avg_bps(self) -> float:
        """Average markout in bps, rounded to 6 decimals (0.0 with no samples)."""
        return round(self.sum_bps_e4 / self.count / BPS_E4, 6) if self.count else 0.0

    @property
    def adverse_fill_ratio(self) -> float:
        """Share of fills with a negative markout (the seed's ``adverse_fill_rate``)."""
        return self.down / self.count if self.count else 0.0


class MarkoutTracker:
    """Markouts of our fills at fixed horizons (default +200 ms and +500 ms).

    ``on_fill`` queues a fill; ``on_mid`` feeds every mid change (as ``bid + ask``, twice
    the mid, so it stays an exact integer).  A fill at ``t`` matures at ``t + h`` against
    the mid *in force* at that instant: the last mid seen at or before ``t + h``.  A mid
    update at ``ts`` therefore first matures every fill due strictly before ``ts`` with the
    previous mid, then records itself; ``advance(now_ns)`` matures fills due at or before
    ``now_ns`` when no mid changed.  Fills before the first mid wait for it and mature
    against it.
    Per horizon the queue is sorted by due time: O(1) per fill in time order; a fill whose
    exchange time is earlier than one already queued (exchange clocks interleave across
    channels) is inserted in place.
    """

    __slots__ = ("horizons_ms", "_horizons_ns", "_pending", "_count", "_sum", "_up", "_down", "_mid2")

    def __init__(self, horizons_ms: Sequence[int] = (200, 500)) -> None:
        hs = tuple(int(h) for h in horizons_ms)
        if any(h <= 0 for h in hs) or len(set(hs)) != len(hs):
            raise ValueError(f"markout horizons must be distinct and > 0 ms, got {list(horizons_ms)}")
        self.horizons_ms = hs
        self._horizons_ns = tuple(h * NS_PER_MS for h in hs)
        self._pending: tuple[deque[tuple[int, int, int]], ...] = tuple(deque() for _ in hs)
        self._count = [0] * len(hs)
        self._sum = [0] * len(hs)
        self._up = [0] * len(hs)
        self._down = [0] * len(hs)
        self._mid2: int | None = None

    def on_fill(self, ts_ns: int, side: int, price_ticks: int) -> None:
        """Queue one fill (``side`` BUY/SELL, execution price in ticks) for every horizon."""
        if side not in (BUY, SELL):
            raise ValueError(f"side must be BUY (+1) or SELL (-1), got {side!r}")
        if price_ticks <= 0:
            raise ValueError(f"fill price must be > 0 ticks, got {price_ticks}")
        for q, h in zip(self._pending, self._horizons_ns):
            item = (ts_ns + h, side, price_ticks)
            if q and q[-1][0] > item[0]:
                # exchange times interleave across channels (a trade may carry an earlier ts
                # than a fill already queued), so a fill can arrive slightly out of order:
                # keep the queue sorted by due time; the scan from the tail is short
                i = len(q) - 1
                while i > 0 and q[i - 1][0] > item[0]:
                    i -= 1
                q.insert(i, item)
            else:
                q.append(item)

    def on_mid(self, ts_ns: int, mid2_ticks: int) -> None:
        """Feed a mid (``bid + ask`` in ticks) observed at ``ts_ns``."""
        if mid2_ticks <= 0:
            return
        if self._mid2 is None:
            # the first mid: fills that waited for one mature against it
            self._mid2 = mid2_ticks
            self._mature(ts_ns)
            return
        self._mature(ts_ns - 1)
        self._mid2 = mid2_ticks

    def advance(self, now_ns: int) -> None:
        """Mature fills due at or before ``now_ns`` against the current mid."""
        if self._mid2 is not None:
            self._mature(now_ns)

    def _mature(self, upto_ns: int) -> None:
        mid2 = self._mid2
        assert mid2 is not None
        for i, q in enumerate(self._pending):
            while q and q[0][0] <= upto_ns:
                _due, side, px = q.popleft()
                m = markout_bps_e4(side, px, mid2)
                self._count[i] += 1
                self._sum[i] += m
                if m > 0:
                    self._up[i] += 1
                elif m < 0:
                    self._down[i] += 1

    def pending(self) -> int:
        """Fills not yet matured at the longest horizon."""
        return max((len(q) for q in self._pending), default=0)

    def stats(self, horizon_ms: int) -> MarkoutStats:
        i = self.horizons_ms.index(horizon_ms)
        return MarkoutStats(horizon_ms, self._count[i], self._sum[i], self._up[i], self._down[i])

    def all_stats(self) -> tuple[MarkoutStats, ...]:
        return tuple(self.stats(h) for h in self.horizons_ms)


# ----------------------------------------------------------------------------- snapshot
@dataclass(frozen=True, slots=True)
class SignalSnapshot:
    """What the strategy reads on a decision tick (one symbol, as of ``ts_ns``).

    ``mid_ticks`` is None when a side of the book is empty; every other field then holds
    its neutral value (0).  ``impact_cap_ratio`` travels with the snapshot because the
    cap belongs to the micro signals, while the half-spread it applies to belongs to the
    strategy.
    """

    ts_ns: int
    mid_ticks: float | None
    vol_per_sqrt_s: float
    vol_samples: int
    trades_per_s: float
    buy_lots_per_s: float
    sell_lots_per_s: float
    imbalance: float
    microprice_tilt_ticks: float
    micro_bias_raw_ticks: float
    impact_cap_ratio: float

    @property
    def vol_bps_per_sqrt_s(self) -> float:
        """Volatility in bps per sqrt(second) (the unit of the mux's sigma bands)."""
        return self.vol_per_sqrt_s * BPS


class _SignalSnapshotBuilder:
    # Same trick as ``core.events``: a snapshot is built on every decision tick, and the
    # frozen dataclass ``__init__`` costs ~2 us for 11 fields; this costs ~0.7 us.
    __slots__ = ("ts_ns", "mid_ticks", "vol_per_sqrt_s", "vol_samples", "trades_per_s", "buy_lots_per_s",
                 "sell_lots_per_s", "imbalance", "microprice_tilt_ticks", "micro_bias_raw_ticks", "impact_cap_ratio")

    def __init__(self, ts_ns: int, mid_ticks: float | None, vol_per_sqrt_s: float, vol_samples: int, trades_per_s: float,
                 buy_lots_per_s: float, sell_lots_per_s: float, imbalance: float, microprice_tilt_ticks: float,
                 micro_bias_raw_ticks: float, impact_cap_ratio: float) -> None:
        self.ts_ns = ts_ns
        self.mid_ticks = mid_ticks
        self.vol_per_sqrt_s = vol_per_sqrt_s
        self.vol_samples = vol_samples
        self.trades_per_s = trades_per_s
        self.buy_lots_per_s = buy_lots_per_s
        self.sell_lots_per_s = sell_lots_per_s
        self.imbalance = imbalance
        self.microprice_tilt_ticks = microprice_tilt_ticks
        self.micro_bias_raw_ticks = micro_bias_raw_ticks
        self.impact_cap_ratio = impact_cap_ratio
        self.__class__ = SignalSnapshot  # type: ignore[assignment]


make_signal_snapshot = _SignalSnapshotBuilder
"""Fast positional builder returning a real ``SignalSnapshot`` (tests check the slots match)."""


# ----------------------------------------------------------------------------- per symbol
class SymbolSignals:
    """All estimators of one symbol, fed by market events and our fills.

    Feed it ``on_event`` for every market event of the symbol *after* the book applied it
    (``on_book`` reads the new touch), ``on_fill`` for our fills, and call ``snapshot`` on a
    decision tick.  ``params`` is the ``signals:`` config section (see ``SignalParams``).
    """

    __slots__ = ("symbol", "vol", "intensity", "markouts", "imbalance_levels", "imbalance_bias_bps",
                 "microprice_weight_ratio", "impact_cap_ratio", "_last_mid2")

    def __init__(self, symbol: str, params: SignalParams) -> None:
        self.symbol = symbol
        self.vol = EwmaVol(params.vol_half_life_sec)
        self.intensity = TradeIntensity(params.trade_intensity_half_life_sec)
        self.markouts = MarkoutTracker(params.markout_horizons_ms)
        if int(params.imbalance_levels) < 1:
            raise ValueError(f"imbalance_levels must be >= 1, got {params.imbalance_levels}")
        self.imbalance_levels = int(params.imbalance_levels)
        self.imbalance_bias_bps = float(params.imbalance_bias_bps)
        self.microprice_weight_ratio = float(params.microprice_weight_ratio)
        self.impact_cap_ratio = float(params.impact_cap_ratio)
        self._last_mid2 = 0

    def on_touch(self, ts_ns: int, best_bid: int | None, best_ask: int | None) -> None:
        """The touch after a book or quote update: feeds the volatility and the markouts.

        A crossed, locked or one-sided touch is not a valid mid and is skipped.
        """
        if best_bid is None or best_ask is None or best_bid >= best_ask or best_bid + best_ask <= 0:
            return
        mid2 = best_bid + best_ask
        if mid2 == self._last_mid2:
            # An unchanged mid adds a zero return and matures no markout differently:
            # skipping it changes nothing but the cost (the next return spans the gap).
            return
        self._last_mid2 = mid2
        self.markouts.on_mid(ts_ns, mid2)
        self.vol.on_mid(ts_ns, mid2 * 0.5)

    def on_book(self, ts_ns: int, book: BookTop) -> None:
        self.on_touch(ts_ns, book.best_bid, book.best_ask)

    def on_trade(self, ts_ns: int, side: int, qty_lots: int) -> None:
        self.intensity.on_trade(ts_ns, side, qty_lots)

    def on_event(self, event: object, book: BookTop | None = None) -> None:
        """Dispatch one market event: trades feed intensity, book/quote events the mid."""
        cls = type(event)
        if cls is Trade:
            self.intensity.on_trade(event.ts, event.side, event.qty)  # type: ignore[attr-defined]
        elif cls is Quote:
            self.on_touch(event.ts, event.bid_px, event.ask_px)  # type: ignore[attr-defined]
        elif (cls is BookDelta or cls is BookSnapshot) and book is not None:
            self.on_touch(event.ts, book.best_bid, book.best_ask)  # type: ignore[attr-defined]

    def on_fill(self, ts_ns: int, side: int, price_ticks: int) -> None:
        self.markouts.on_fill(ts_ns, side, price_ticks)

    def snapshot(self, now_ns: int, book: BookTop | BookView) -> SignalSnapshot:
        """The signals as of ``now_ns`` with the imbalance and microprice of ``book``.

        The imbalance sums the top ``imbalance_levels`` levels when the book exposes its
        levels (``bids``/``asks``), the touch otherwise.  Matures due markouts as a side effect.
        """
        self.markouts.advance(now_ns)
        tr, bl, sl = self.intensity.rates(now_ns)
        vol = self.vol.vol_per_sqrt_s
        bid, ask = book.best_bid, book.best_ask
        if bid is None or ask is None or bid >= ask:
            return make_signal_snapshot(now_ns, None, vol, self.vol.samples, tr, bl, sl, 0.0, 0.0, 0.0, self.impact_cap_ratio)
        bq = book.best_bid_qty or 0
        aq = book.best_ask_qty or 0
        mid = (bid + ask) * 0.5
        tilt = microprice_ticks(bid, ask, bq, aq) - mid
        n = self.imbalance_levels
        if n > 1 and hasattr(book, "bids"):
            imb = book_imbalance(book, n)  # type: ignore[arg-type]
        else:
            imb = top_imbalance(bq, aq)
        raw = micro_bias_raw_ticks(mid, imb, tilt, self.imbalance_bias_bps, self.microprice_weight_ratio)
        return make_signal_snapshot(now_ns, mid, vol, self.vol.samples, tr, bl, sl, imb, tilt, raw, self.impact_cap_ratio)
