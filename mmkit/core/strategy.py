"""Quoting strategies: (book touch, signals, inventory, budget, params) -> desired quotes.

A strategy is anything with ``quotes(ctx) -> list[DesiredQuote]`` (``Strategy``).  Three
ship in the registry ``STRATEGIES``, chosen by ``strategy.model`` in config:

``vol`` (default, seed "Quick Start")
    reservation ``r = mid + micro_bias - skew_coeff * q * h`` with ``q`` the inventory
    normalized by the symbol's budget; half-spread ``h = max(k_vola_spread * vol_1s,
    maker fee)`` in bps of the mid; ``levels_per_side`` levels at ``h * (1 + i *
    level_spacing_coeff)`` from ``r``; the side the book leans against (``|imbalance| >
    imbalance_cutoff``) is pulled; the budget is split evenly over the levels.
``avellaneda``
    Avellaneda-Stoikov with a rolling horizon, in bps of the mid: ``r = mid - q * gamma *
    sigma**2 * T``, spread ``gamma * sigma**2 * T + (2 / gamma) * ln(1 + gamma / kappa)``.
``fixed``
    the plain baseline: ``r = mid - skew_ticks * position / order_qty``, bid
    ``floor(r - half_spread_ticks)``, ask ``ceil(r + half_spread_ticks)``, in exact integer
    arithmetic, so other tools can reproduce it tick for tick.

Every quote comes out on the grid (integer ticks and lots), post-only safe (a bid below
the best ask, an ask above the best bid), with a positive size that meets the
instrument's minimum notional; ``vol`` and ``avellaneda`` also never quote inside the
maker-fee breakeven measured from the mid.  Each model checks its output on every call
with a few inline comparisons (not ``assert``, so ``python -O`` keeps them) and raises
``QuoteInvariantError``; ``check_quotes`` is the general validator for any quote list.  ``docs/strategy.md``
has the formulas, units, defaults and worked examples.

Configuration arrives as duck-typed objects (the ``strategy:`` section, see
``StrategyParams``); the core never imports the config package.  Pure: stdlib only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from math import ceil, floor, log
from typing import Protocol

from mmkit.core.events import BUY, SELL
from mmkit.core.instruments import Instrument
from mmkit.core.signals import BPS, cap_micro_bias, top_imbalance
from mmkit.core.types import DesiredQuote

__all__ = [
    "StrategyError",
    "UnknownStrategyError",
    "StrategyConfigError",
    "QuoteInvariantError",
    "QuoteSignals",
    "QuoteContext",
    "make_quote_context",
    "make_desired_quote",
    "QuotePlan",
    "Strategy",
    "VolParams",
    "FixedParamsLike",
    "AvellanedaParamsLike",
    "StrategyParams",
    "VolStrategy",
    "AvellanedaStrategy",
    "FixedStrategy",
    "STRATEGIES",
    "make_strategy",
    "register_strategy",
    "check_quotes",
    "MIN_HALF_SPREAD_TICKS",
]


MIN_HALF_SPREAD_TICKS = 0.5
"""Floor of the ``vol``/``avellaneda`` half-spread: with ``ask - bid >= 1`` tick before
snapping, ``floor(r - h) < ceil(r + h)`` always, and every later clamp (fee breakeven,
post-only, level spacing) only moves a bid down or an ask up, so our bid stays strictly
below our ask whatever the skew, bias or fees."""


class StrategyError(ValueError):
    """Base of the strategy module's errors (a ``ValueError``: bad input, not a crash)."""


class UnknownStrategyError(StrategyError):
    """``strategy.model`` names no registered strategy."""


class StrategyConfigError(StrategyError):
    """A strategy parameter is out of range or does not fit the instrument's grid."""


class QuoteInvariantError(AssertionError):
    """A strategy produced a crossed, zero-size, off-grid or non-post-only quote: a bug."""


# ----------------------------------------------------------------------------- inputs
class QuoteSignals(Protocol):
    """What a strategy reads from the signals (``core.signals.SignalSnapshot`` is one)."""

    @property
    def vol_per_sqrt_s(self) -> float: ...

    @property
    def imbalance(self) -> float: ...

    @property
    def micro_bias_raw_ticks(self) -> float: ...

    @property
    def impact_cap_ratio(self) -> float: ...


@dataclass(frozen=True, slots=True)
class QuoteContext:
    """Everything a strategy sees on one decision tick for one symbol.

    Prices are ticks and sizes lots of ``instrument``; ``best_*`` is the touch (None when
    a side is empty: no quotes then).  ``position_lots`` is signed (long > 0).
    ``target_usd`` is the notional the strategy may rest *per side* (quote currency, from
    the allocator); ``max_levels`` caps the levels per side (allocator).  Fees are the
    maker/taker rates in bps (negative maker = rebate).  ``size_bias`` multiplies the
    budget (guards, fee-tier awareness: 1.0 = neutral); ``pull_bid``/``pull_ask`` let a
    guard remove a side whatever the model wants.
    """

    symbol: str
    instrument: Instrument
    best_bid: int | None
    best_ask: int | None
    best_bid_qty: int
    best_ask_qty: int
    signals: QuoteSignals | None
    position_lots: int
    now_ns: int
    target_usd: float
    max_levels: int
    maker_fee_bps: float
    taker_fee_bps: float
    size_bias: float = 1.0
    pull_bid: bool = False
    pull_ask: bool = False


class _QuoteContextBuilder:
    # A context is built on every decision tick; the frozen dataclass ``__init__`` costs
    # ~3 us for 16 fields, this ~1 us.  Same relabeling trick as ``core.events`` builders.
    __slots__ = ("symbol", "instrument", "best_bid", "best_ask", "best_bid_qty", "best_ask_qty", "signals",
                 "position_lots", "now_ns", "target_usd", "max_levels", "maker_fee_bps", "taker_fee_bps",
                 "size_bias", "pull_bid", "pull_ask")

    def __init__(self, symbol: str, instrument: Instrument, best_bid: int | None, best_ask: int | None,
                 best_bid_qty: int, best_ask_qty: int, signals: QuoteSignals | None, position_lots: int, now_ns: int,
                 target_usd: float, max_levels: int, maker_fee_bps: float, taker_fee_bps: float,
                 size_bias: float = 1.0, pull_bid: bool = False, pull_ask: bool = False) -> None:
        self.symbol = symbol
        self.instrument = instrument
        self.best_bid = best_bid
        self.best_ask = best_ask
        self.best_bid_qty = best_bid_qty
        self.best_ask_qty = best_ask_qty
        self.signals = signals
        self.position_lots = position_lots
        self.now_ns = now_ns
        self.target_usd = target_usd
        self.max_levels = max_levels
        self.maker_fee_bps = maker_fee_bps
        self.taker_fee_bps = taker_fee_bps
        self.size_bias = size_bias
        self.pull_bid = pull_bid
        self.pull_ask = pull_ask
        self.__class__ = QuoteContext  # type: ignore[assignment]


make_quote_context: Callable[..., QuoteContext] = _QuoteContextBuilder  # type: ignore[assignment]
"""Fast builder with ``QuoteContext``'s signature; returns a real (frozen) ``QuoteContext``."""


class _DesiredQuoteBuilder:
    # Strategies emit up to 2 * levels quotes per tick; ~0.35 us each instead of ~1.2 us.
    __slots__ = ("symbol", "side", "level", "price", "qty")

    def __init__(self, symbol: str, side: int, level: int, price: int, qty: int) -> None:
        self.symbol = symbol
        self.side = side
        self.level = level
        self.price = price
        self.qty = qty
        self.__class__ = DesiredQuote  # type: ignore[assignment]


make_desired_quote: Callable[[str, int, int, int, int], DesiredQuote] = _DesiredQuoteBuilder  # type: ignore[assignment]
"""Fast positional builder returning a real ``DesiredQuote`` (tests check the slots match)."""


@dataclass(frozen=True, slots=True)
class QuotePlan:
    """The intermediate numbers behind one tick's quotes (``explain``; not on the hot path).

    All prices in ticks (floats before snapping).  ``micro_bias_strength`` is
    ``|micro_bias| / max(|half_spread|, 1e-9)`` (the seed's metric; <= impact_cap_ratio).
    """

    mid_ticks: float
    half_spread_ticks: float
    micro_bias_ticks: float
    micro_bias_strength: float
    skew_ticks: float
    reservation_ticks: float
    inventory_ratio: float
    fee_floor_ticks: float
    pull_bid: bool
    pull_ask: bool


class Strategy(Protocol):
    """A quoting model: pure function of the context (state, if any, is only caches)."""

    name: str

    def quotes(self, ctx: QuoteContext) -> list[DesiredQuote]: ...


# ----------------------------------------------------------------------------- config shapes
class VolParams(Protocol):
    """The ``strategy:`` fields the ``vol`` model reads (seed "Quick Start")."""

    k_vola_spread: float
    skew_coeff: float
    levels_per_side: int
    level_spacing_coeff: float
    imbalance_cutoff: float


class FixedParamsLike(Protocol):
    """``strategy.fixed``: ticks and base-currency units."""

    half_spread_ticks: float
    skew_ticks: float
    order_qty: float
    max_position: float


class AvellanedaParamsLike(Protocol):
    """``strategy.avellaneda``."""

    gamma: float
    kappa: float
    horizon_sec: float
    order_qty: float
    max_position: float


class StrategyParams(VolParams, Protocol):
    """The whole ``strategy:`` section: ``model`` picks the entry of ``STRATEGIES``."""

    model: str
    fixed: FixedParamsLike
    avellaneda: AvellanedaParamsLike


# ----------------------------------------------------------------------------- helpers
def _exact(value: float | int | str | Decimal) -> Fraction:
    """A config number as the exact decimal it was written as (0.1 -> 1/10, not the float)."""
    if isinstance(value, Fraction):
        return value
    if isinstance(value, float):
        return Fraction(Decimal(repr(value)))
    return Fraction(Decimal(value))


class _Grid:
    """Per-instrument constants for sizing, computed once (exact where it matters).

    Linear: notional = ticks * lots * ``unit_usd`` with ``unit_usd = tick * lot * mult``;
    the minimum notional becomes an exact integer threshold on ``ticks * lots``.
    Inverse: notional = lots * lot * mult (USD), independent of price.
    """

    __slots__ = ("instrument", "inverse", "unit_usd", "lot_usd", "min_units", "min_lots", "lot_size")

    def __init__(self, inst: Instrument) -> None:
        self.instrument = inst
        self.inverse = inst.inverse
        tick, lot, mult = Fraction(inst.tick_size), Fraction(inst.lot_size), Fraction(inst.contract_multiplier)
        mn = Fraction(inst.min_notional)
        self.lot_size = lot
        if inst.inverse:
            lot_usd = lot * mult
            self.unit_usd = 0.0
            self.lot_usd = float(lot_usd)
            self.min_units = 0
            self.min_lots = max(1, -((-mn.numerator * lot_usd.denominator) // (mn.denominator * lot_usd.numerator)))
        else:
            unit = tick * lot * mult
            self.unit_usd = float(unit)
            self.lot_usd = 0.0
            q = mn / unit
            self.min_units = -((-q.numerator) // q.denominator)  # ceil: ticks * lots >= this
            self.min_lots = 1

    def meets_min(self, px: int, lots: int) -> bool:
        if self.inverse:
            return lots >= self.min_lots
        return lots >= 1 and px * lots >= self.min_units

    def level_usd(self, px: float) -> float:
        """Smallest notional a level can have at ``px``: one lot or the minimum notional."""
        if self.inverse:
            return self.min_lots * self.lot_usd
        lots = ceil(self.min_units / px) if self.min_units > px else 1
        return lots * px * self.unit_usd

    def position_usd(self, lots: int, px: float) -> float:
        return lots * self.lot_usd if self.inverse else lots * px * self.unit_usd

    def base_to_lots(self, qty: float) -> Fraction:
        """Base-currency units (contracts for inverse) as an exact number of lots."""
        return _exact(qty) / self.lot_size


def check_quotes(quotes: list[DesiredQuote], ctx: QuoteContext) -> list[DesiredQuote]:
    """Raise ``QuoteInvariantError`` unless every quote is sane; return ``quotes``.

    Sane: symbol matches, integer price > 0 and size > 0, a bid strictly below the best
    ask and every bid below every ask (post-only safe, never crossed), an ask strictly
    above the best bid, and no two quotes of one side at the same price or level.
    """
    best_bid, best_ask = ctx.best_bid, ctx.best_ask
    max_bid = None
    min_ask = None
    seen: set[tuple[int, int]] = set()
    for q in quotes:
        px = q.price
        if type(px) is not int or type(q.qty) is not int or px <= 0 or q.qty <= 0 or q.symbol != ctx.symbol:
            raise QuoteInvariantError(f"bad quote {q!r}: price and qty must be positive ints of {ctx.symbol}")
        if q.side == BUY:
            if best_ask is not None and px >= best_ask:
                raise QuoteInvariantError(f"bid {px} would cross the best ask {best_ask}: {q!r}")
            if max_bid is None or px > max_bid:
                max_bid = px
        elif q.side == SELL:
            if best_bid is not None and px <= best_bid:
                raise QuoteInvariantError(f"ask {px} would cross the best bid {best_bid}: {q!r}")
            if min_ask is None or px < min_ask:
                min_ask = px
        else:
            raise QuoteInvariantError(f"bad side in {q!r}")
        key_px = (q.side, px)
        key_lv = (q.side, -1 - q.level)
        if key_px in seen or key_lv in seen:
            raise QuoteInvariantError(f"two quotes on one side share a price or a level: {q!r}")
        seen.add(key_px)
        seen.add(key_lv)
    if max_bid is not None and min_ask is not None and max_bid >= min_ask:
        raise QuoteInvariantError(f"own quotes cross: bid {max_bid} >= ask {min_ask}")
    return quotes


def _check_pair(symbol: str, bid: int, ask: int, best_bid: int, best_ask: int, lots: int) -> None:
    """The one-quote-per-side models' invariants in four comparisons (hot path).

    ``bid``/``ask`` are the computed prices whether or not a side is quoted (an unquoted
    side passes trivially): bid below the best ask and our ask, ask above the best bid,
    a positive size.  ``check_quotes`` is the general (slower) form.
    """
    if bid >= best_ask or ask <= best_bid or bid >= ask or lots <= 0:
        raise QuoteInvariantError(f"{symbol}: bid {bid} / ask {ask} x {lots} against touch {best_bid} / {best_ask}")


# ----------------------------------------------------------------------------- vol model
class VolStrategy:
    """The seed's default model: volatility-scaled spread, inventory skew, micro bias, levels.

    Units: ``vol`` is the signals' log-return volatility per sqrt(second), so the
    half-spread ``k_vola_spread * vol * 1e4`` is in bps of the mid over a one-second
    horizon; it is floored at the maker fee (the breakeven of one fill against the mid).
    ``q = position notional / target_usd`` clamped to [-1, 1]; the skew is
    ``skew_coeff * q`` half-spreads.  The micro bias (signals) is capped at
    ``impact_cap_ratio`` of the half-spread.  Level ``i`` sits ``h * (1 + i *
    level_spacing_coeff)`` from the reservation; bids floor and asks ceil to the tick
    (away from the mid); each level rests ``target_usd * size_bias / levels`` of notional.
    The side the book leans against is pulled: the ask when ``imbalance >
    imbalance_cutoff`` (bids dominate, the price tends up), the bid when ``imbalance <
    -imbalance_cutoff``.

    Hot path: ``quotes`` inlines the arithmetic of ``explain`` (a test keeps the two in
    step) and re-uses the previous ``DesiredQuote`` object of a (side, level) slot when
    its price and size did not change, so a quiet book creates no new quote objects and
    the order manager can short-cut its diff with ``is``.
    """

    name = "vol"
    __slots__ = ("k_vola_spread", "skew_coeff", "levels_per_side", "level_spacing_coeff", "imbalance_cutoff",
                 "_mults", "_grids", "_last")

    def __init__(self, k_vola_spread: float = 1.0, skew_coeff: float = 0.3, levels_per_side: int = 3,
                 level_spacing_coeff: float = 0.4, imbalance_cutoff: float = 0.65) -> None:
        if k_vola_spread < 0 or skew_coeff < 0 or level_spacing_coeff < 0:
            raise StrategyConfigError("k_vola_spread, skew_coeff and level_spacing_coeff must be >= 0")
        if int(levels_per_side) != levels_per_side or levels_per_side < 1:
            raise StrategyConfigError(f"levels_per_side must be an int >= 1, got {levels_per_side}")
        if not 0 < imbalance_cutoff <= 1:
            raise StrategyConfigError(f"imbalance_cutoff must be in (0, 1], got {imbalance_cutoff}")
        self.k_vola_spread = float(k_vola_spread)
        self.skew_coeff = float(skew_coeff)
        self.levels_per_side = int(levels_per_side)
        self.level_spacing_coeff = float(level_spacing_coeff)
        self.imbalance_cutoff = float(imbalance_cutoff)
        self._mults = tuple(1.0 + i * self.level_spacing_coeff for i in range(self.levels_per_side))
        self._grids: dict[str, _Grid] = {}
        self._last: dict[str, list[DesiredQuote | None]] = {}

    @classmethod
    def from_config(cls, cfg: StrategyParams) -> VolStrategy:
        return cls(cfg.k_vola_spread, cfg.skew_coeff, cfg.levels_per_side, cfg.level_spacing_coeff, cfg.imbalance_cutoff)

    def _grid(self, ctx: QuoteContext) -> _Grid:
        g = self._grids.get(ctx.symbol)
        if g is None or g.instrument is not ctx.instrument:
            g = self._grids[ctx.symbol] = _Grid(ctx.instrument)
            self._last[ctx.symbol] = [None] * (2 * self.levels_per_side)
        return g

    def explain(self, ctx: QuoteContext) -> QuotePlan | None:
        """The numbers behind ``quotes(ctx)`` (None when the touch is unusable)."""
        bid, ask = ctx.best_bid, ctx.best_ask
        if bid is None or ask is None or not 0 < bid < ask:
            return None
        g = self._grid(ctx)
        mid = (bid + ask) * 0.5
        sig = ctx.signals
        if sig is not None:
            vol, imb, raw_bias, cap = sig.vol_per_sqrt_s, sig.imbalance, sig.micro_bias_raw_ticks, sig.impact_cap_ratio
        else:
            vol, raw_bias, cap = 0.0, 0.0, 0.0
            imb = top_imbalance(ctx.best_bid_qty, ctx.best_ask_qty)
        fee_bps = max(ctx.maker_fee_bps, 0.0)
        half = max(max(self.k_vola_spread * vol * BPS, fee_bps) * mid / BPS, MIN_HALF_SPREAD_TICKS)
        bias = cap_micro_bias(raw_bias, half, cap)
        pos, target = ctx.position_lots, ctx.target_usd
        if pos == 0:
            q = 0.0
        elif target > 0:
            q = min(1.0, max(-1.0, g.position_usd(pos, mid) / target))
        else:
            q = 1.0 if pos > 0 else -1.0
        skew = self.skew_coeff * q * half
        cut = self.imbalance_cutoff
        return QuotePlan(mid, half, bias, abs(bias) / max(abs(half), 1e-9), skew, mid + bias - skew, q,
                         fee_bps * mid / BPS, imb < -cut or ctx.pull_bid, imb > cut or ctx.pull_ask)

    def quotes(self, ctx: QuoteContext) -> list[DesiredQuote]:
        best_bid, best_ask = ctx.best_bid, ctx.best_ask
        if best_bid is None or best_ask is None or not 0 < best_bid < best_ask:
            return []
        n = self.levels_per_side
        if ctx.max_levels < n:
            n = ctx.max_levels
        target = ctx.target_usd
        budget = target * ctx.size_bias
        if n <= 0 or not budget > 0:
            return []
        symbol = ctx.symbol
        g = self._grids.get(symbol)
        if g is None or g.instrument is not ctx.instrument:
            g = self._grid(ctx)
        last = self._last[symbol]
        # --- plan (kept in step with ``explain``)
        mid = (best_bid + best_ask) * 0.5
        sig = ctx.signals
        if sig is not None:
            vol = sig.vol_per_sqrt_s
            imb = sig.imbalance
            raw_bias = sig.micro_bias_raw_ticks
            cap = sig.impact_cap_ratio
        else:
            vol, raw_bias, cap = 0.0, 0.0, 0.0
            imb = top_imbalance(ctx.best_bid_qty, ctx.best_ask_qty)
        fee_bps = ctx.maker_fee_bps
        if fee_bps < 0:
            fee_bps = 0.0
        half_bps = self.k_vola_spread * vol * BPS
        if half_bps < fee_bps:
            half_bps = fee_bps
        half = half_bps * mid / BPS
        if half < MIN_HALF_SPREAD_TICKS:
            half = MIN_HALF_SPREAD_TICKS
        fee_gap = fee_bps * mid / BPS
        bias = cap_micro_bias(raw_bias, half, cap) if raw_bias else 0.0
        pos = ctx.position_lots
        if pos:
            if target > 0:
                q = (pos * g.lot_usd if g.inverse else pos * mid * g.unit_usd) / target
                q = 1.0 if q > 1.0 else -1.0 if q < -1.0 else q
            else:
                q = 1.0 if pos > 0 else -1.0
            r = mid + bias - self.skew_coeff * q * half
        else:
            r = mid + bias
        cut = self.imbalance_cutoff
        # --- sizing: fewer levels rather than none when the budget cannot give each one
        # the minimum notional (or a whole lot)
        n_fit = int(budget / g.level_usd(mid))
        if n_fit < n:
            n = n_fit
            if n <= 0:
                return []
        per_level = budget / n
        inverse = g.inverse
        unit_usd = g.unit_usd
        min_units = g.min_units
        inv_lots = int(per_level / g.lot_usd) if inverse else 0
        mults = self._mults if n == self.levels_per_side else self._mults[:n]
        out: list[DesiredQuote] = []
        top_bid = 0
        if not (imb < -cut or ctx.pull_bid):
            # fee breakeven (from the mid) and post-only (below the best ask)
            prev = floor(mid - fee_gap) + 1
            if prev > best_ask:
                prev = best_ask
            level = 0
            for m in mults:
                px = floor(r - half * m)
                if px >= prev:
                    px = prev - 1
                if px <= 0:
                    break
                if inverse:
                    lots = inv_lots
                else:
                    lots = int(per_level / (px * unit_usd))
                    if lots < 1 or px * lots < min_units:
                        lots = 0
                if lots:
                    # invariants, always on and cheap: ints by construction, strictly
                    # below the best ask and below the previous level
                    if px >= best_ask:
                        raise QuoteInvariantError(f"{symbol}: bid {px} would cross the best ask {best_ask}")
                    slot = 2 * level
                    dq = last[slot]
                    if dq is None or dq.price != px or dq.qty != lots:
                        dq = last[slot] = make_desired_quote(symbol, BUY, level, px, lots)
                    out.append(dq)
                    if not level:
                        top_bid = px
                    level += 1
                prev = px
        if not (imb > cut or ctx.pull_ask):
            prev = ceil(mid + fee_gap) - 1
            if prev < best_bid:
                prev = best_bid
            level = 0
            for m in mults:
                px = ceil(r + half * m)
                if px <= prev:
                    px = prev + 1
                if inverse:
                    lots = inv_lots
                else:
                    lots = int(per_level / (px * unit_usd))
                    if lots < 1 or px * lots < min_units:
                        lots = 0
                if lots:
                    if px <= best_bid or px <= top_bid:
                        raise QuoteInvariantError(
                            f"{symbol}: ask {px} would cross the best bid {best_bid} or our bid {top_bid}")
                    slot = 2 * level + 1
                    dq = last[slot]
                    if dq is None or dq.price != px or dq.qty != lots:
                        dq = last[slot] = make_desired_quote(symbol, SELL, level, px, lots)
                    out.append(dq)
                    level += 1
                prev = px
        return out


# ----------------------------------------------------------------------------- fixed-size models
class _SizedGrid:
    """A ``_Grid`` plus the model's ``order_qty``/``max_position`` converted exactly to lots."""

    __slots__ = ("grid", "order_lots", "max_num", "max_den")

    def __init__(self, inst: Instrument, order_qty: float, max_position: float) -> None:
        g = _Grid(inst)
        ol = g.base_to_lots(order_qty)
        if ol.denominator != 1 or ol <= 0:
            raise StrategyConfigError(
                f"order_qty {order_qty} is not a whole number of lots of {inst.symbol} (lot size {inst.lot_size})")
        ml = g.base_to_lots(max_position)
        self.grid = g
        self.order_lots = int(ol)
        self.max_num, self.max_den = ml.numerator, ml.denominator  # exact |position| limit in lots

    def bid_allowed(self, pos: int) -> bool:
        return pos * self.max_den < self.max_num  # position < max_position

    def ask_allowed(self, pos: int) -> bool:
        return -pos * self.max_den < self.max_num  # position > -max_position


class _FixedSizeModel:
    __slots__ = ("order_qty", "max_position", "_grids")
    name = ""

    def __init__(self, order_qty: float, max_position: float) -> None:
        if not order_qty > 0 or not max_position > 0:
            raise StrategyConfigError(f"order_qty and max_position must be > 0, got {order_qty}, {max_position}")
        self.order_qty = order_qty
        self.max_position = max_position
        self._grids: dict[str, _SizedGrid] = {}

    def _sized(self, ctx: QuoteContext) -> _SizedGrid:
        return self._sized_for(ctx.symbol, ctx.instrument)

    def _sized_for(self, symbol: str, instrument: Instrument) -> _SizedGrid:
        g = self._grids.get(symbol)
        if g is None or g.grid.instrument is not instrument:
            g = self._grids[symbol] = _SizedGrid(instrument, self.order_qty, self.max_position)
        return g


class FixedStrategy(_FixedSizeModel):
    """The plain baseline: one quote per side, exact integer arithmetic, no signals.

    ``r = mid - skew_ticks * position / order_qty`` (mid = (best bid + best ask) / 2),
    bid ``floor(r - half_spread_ticks)`` capped at ``best_ask - 1``, ask
    ``ceil(r + half_spread_ticks)`` floored at ``best_bid + 1``; no bid at ``position >=
    max_position`` and no ask at ``position <= -max_position``; both sizes ``order_qty``.
    Config numbers are taken as the exact decimals they were written as (Fractions
    reduced to integer numerators and one denominator), so floor/ceil never suffer from
    binary rounding.  Fees, budget, ``size_bias`` and ``max_levels`` (beyond 0 = off) do not
    change it; guard pulls do.  A quote under the minimum notional is dropped.
    """

    name = "fixed"
    __slots__ = ("half_spread_ticks", "skew_ticks", "_hn", "_hd", "_sn", "_sd")

    def __init__(self, half_spread_ticks: float = 3.0, skew_ticks: float = 0.5, order_qty: float = 0.01,
                 max_position: float = 0.2) -> None:
        super().__init__(order_qty, max_position)
        h, s = _exact(half_spread_ticks), _exact(skew_ticks)
        if h <= 0 or s < 0:
            raise StrategyConfigError(f"half_spread_ticks must be > 0 and skew_ticks >= 0, got {half_spread_ticks}, {skew_ticks}")
        self.half_spread_ticks = half_spread_ticks
        self.skew_ticks = skew_ticks
        self._hn, self._hd = h.numerator, h.denominator
        self._sn, self._sd = s.numerator, s.denominator

    @classmethod
    def from_config(cls, cfg: StrategyParams) -> FixedStrategy:
        f = cfg.fixed
        return cls(f.half_spread_ticks, f.skew_ticks, f.order_qty, f.max_position)

    def prices(self, best_bid: int, best_ask: int, position_lots: int, order_lots: int) -> tuple[int, int]:
        """Exact ``(bid, ask)`` before the position limits (both post-only clamped).

        With ``D = 2 * sd * OL * hd`` (``s = sn/sd``, ``h = hn/hd``, ``OL`` = order lots):
        ``r -+ h = ((B + A) * sd * OL * hd - 2 * sn * pos * hd -+ 2 * hn * sd * OL) / D``.
        """
        sd_ol = self._sd * order_lots
        hd = self._hd
        base = (best_bid + best_ask) * sd_ol * hd - 2 * self._sn * position_lots * hd
        dh = 2 * self._hn * sd_ol
        den = 2 * sd_ol * hd
        bid = (base - dh) // den
        ask = -((-base - dh) // den)  # ceil
        if bid > best_ask - 1:
            bid = best_ask - 1
        if ask < best_bid + 1:
            ask = best_bid + 1
        return bid, ask

    def exact_terms(self, symbol: str, instrument: Instrument) -> tuple[int, ...] | None:
        """The integers ``quotes`` computes with for ``symbol``, for the compiled engine
        loop's copy of ``quotes`` and ``prices`` (``mmkit.core._fastfeed``): ``(hn, hd, sn,
        sd, order_lots, max_num, max_den, inverse, min_lots, min_units)``.  None when one
        leaves 64 bits or the sizes are invalid (``quotes`` then runs, and raises, in Python)."""
        try:
            sg = self._sized_for(symbol, instrument)
        except StrategyConfigError:
            return None
        g = sg.grid
        terms = (self._hn, self._hd, self._sn, self._sd, sg.order_lots, sg.max_num, sg.max_den, int(g.inverse),
                 g.min_lots, g.min_units)
        return terms if all(-(1 << 63) <= t < (1 << 63) for t in terms) else None

    def quotes(self, ctx: QuoteContext) -> list[DesiredQuote]:
        best_bid, best_ask = ctx.best_bid, ctx.best_ask
        if best_bid is None or best_ask is None or not 0 < best_bid < best_ask or ctx.max_levels <= 0:
            return []
        sg = self._sized(ctx)
        pos = ctx.position_lots
        ol = sg.order_lots
        bid, ask = self.prices(best_bid, best_ask, pos, ol)
        out: list[DesiredQuote] = []
        g = sg.grid
        if not ctx.pull_bid and sg.bid_allowed(pos) and bid > 0 and g.meets_min(bid, ol):
            out.append(make_desired_quote(ctx.symbol, BUY, 0, bid, ol))
        if not ctx.pull_ask and sg.ask_allowed(pos) and g.meets_min(ask, ol):
            out.append(make_desired_quote(ctx.symbol, SELL, 0, ask, ol))
        _check_pair(ctx.symbol, bid, ask, best_bid, best_ask, ol)
        return out


class AvellanedaStrategy(_FixedSizeModel):
    """Avellaneda-Stoikov (2008) with a rolling horizon, prices measured in bps of the mid.

    With ``sigma`` the signals' volatility in bps per sqrt(second), ``T = horizon_sec``
    and ``q = position / order_qty`` (inventory in orders):
    reservation ``r = mid * (1 - q * gamma * sigma**2 * T / 1e4)``; total spread
    ``gamma * sigma**2 * T + (2 / gamma) * ln(1 + gamma / kappa)`` bps, half of it on each
    side of ``r``, floored at the maker fee; bids floor and asks ceil to the tick, never
    inside the maker-fee breakeven from the mid, post-only clamped.  ``gamma`` is in 1/bps
    per order, ``kappa`` (order-arrival decay with distance) in 1/bps.  One quote per
    side of ``order_qty``; no bid at ``position >= max_position``, no ask at
    ``position <= -max_position``.
    """

    name = "avellaneda"
    __slots__ = ("gamma", "kappa", "horizon_sec", "_liq_bps")

    def __init__(self, gamma: float = 0.1, kappa: float = 1.5, horizon_sec: float = 60.0, order_qty: float = 0.01,
                 max_position: float = 0.2) -> None:
        super().__init__(order_qty, max_position)
        if not gamma > 0 or not kappa > 0 or not horizon_sec > 0:
            raise StrategyConfigError(f"gamma, kappa and horizon_sec must be > 0, got {gamma}, {kappa}, {horizon_sec}")
        self.gamma = float(gamma)
        self.kappa = float(kappa)
        self.horizon_sec = float(horizon_sec)
        self._liq_bps = (2.0 / self.gamma) * log(1.0 + self.gamma / self.kappa)

    @classmethod
    def from_config(cls, cfg: StrategyParams) -> AvellanedaStrategy:
        a = cfg.avellaneda
        return cls(a.gamma, a.kappa, a.horizon_sec, a.order_qty, a.max_position)

    def spread_bps(self, sigma_bps_per_sqrt_s: float, position_lots: int, order_lots: int) -> tuple[float, float]:
        """``(reservation offset from mid, half-spread)`` in bps, before the fee floor."""
        risk = self.gamma * sigma_bps_per_sqrt_s * sigma_bps_per_sqrt_s * self.horizon_sec
        return -(position_lots / order_lots) * risk, 0.5 * (risk + self._liq_bps)

    def quotes(self, ctx: QuoteContext) -> list[DesiredQuote]:
        best_bid, best_ask = ctx.best_bid, ctx.best_ask
        if best_bid is None or best_ask is None or not 0 < best_bid < best_ask or ctx.max_levels <= 0:
            return []
        sg = self._sized(ctx)
        pos = ctx.position_lots
        ol = sg.order_lots
        sig = ctx.signals
        sigma_bps = sig.vol_per_sqrt_s * BPS if sig is not None else 0.0
        res_bps, half_bps = self.spread_bps(sigma_bps, pos, ol)
        fee_bps = ctx.maker_fee_bps if ctx.maker_fee_bps > 0 else 0.0
        if half_bps < fee_bps:
            half_bps = fee_bps
        mid = (best_bid + best_ask) * 0.5
        r = mid * (1.0 + res_bps / BPS)
        half = mid * half_bps / BPS
        if half < MIN_HALF_SPREAD_TICKS:
            half = MIN_HALF_SPREAD_TICKS
        fee_gap = mid * fee_bps / BPS
        out: list[DesiredQuote] = []
        g = sg.grid
        if not ctx.pull_bid and sg.bid_allowed(pos):
            px = floor(r - half)
            cap_px = floor(mid - fee_gap)
            if px > cap_px:
                px = cap_px
            if px > best_ask - 1:
                px = best_ask - 1
            if px > 0 and g.meets_min(px, ol):
                out.append(make_desired_quote(ctx.symbol, BUY, 0, px, ol))
        if not ctx.pull_ask and sg.ask_allowed(pos):
            px = ceil(r + half)
            floor_px = ceil(mid + fee_gap)
            if px < floor_px:
                px = floor_px
            if px < best_bid + 1:
                px = best_bid + 1
            if g.meets_min(px, ol):
                out.append(make_desired_quote(ctx.symbol, SELL, 0, px, ol))
        if len(out) == 2:
            _check_pair(ctx.symbol, out[0].price, out[1].price, best_bid, best_ask, ol)
        elif out:
            q = out[0]
            _check_pair(ctx.symbol, q.price if q.side == BUY else 0, q.price if q.side == SELL else best_ask + 1,
                        best_bid, best_ask, ol)
        return out


# ----------------------------------------------------------------------------- registry
StrategyFactory = Callable[[StrategyParams], Strategy]

STRATEGIES: dict[str, StrategyFactory] = {
    "vol": VolStrategy.from_config,
    "avellaneda": AvellanedaStrategy.from_config,
    "fixed": FixedStrategy.from_config,
}
"""Model name (``strategy.model``) -> factory taking the whole ``strategy:`` section."""


def register_strategy(name: str, factory: StrategyFactory) -> None:
    """Add a model to the registry (a plug-in point; names are unique)."""
    if name in STRATEGIES:
        raise StrategyError(f"strategy model {name!r} is already registered")
    STRATEGIES[name] = factory


def make_strategy(cfg: StrategyParams) -> Strategy:
    """Build the model ``cfg.model`` names, reading its parameters from ``cfg``."""
    factory = STRATEGIES.get(cfg.model)
    if factory is None:
        raise UnknownStrategyError(f"unknown strategy model {cfg.model!r}; known: {', '.join(sorted(STRATEGIES))}")
    return factory(cfg)
