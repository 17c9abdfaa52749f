"""Fees: exact fee arithmetic, the VIP tier table, rolling 30-day volume, fee-aware bias.

Why this module exists (seed "VIP Fee Awareness"): a market maker lives on a few basis
points, so which fee tier it pays is part of its edge.  Bybit's tier follows the account's
30-day traded volume; when the next tier is close and meaningfully cheaper, the allocator
may lean sizes up a little (``fee_bias``) to get there sooner.

Two kinds of numbers live here, on purpose:

- money that the ledger books (``fee_for``) is exact: ``Decimal`` notional times ``Decimal``
  bps, quantized to ``FEE_QUANTUM`` (1e-8) with ``ROUND_HALF_EVEN``.  Replaying the same
  fills gives the same fees to the last digit, on any platform;
- decisions (which tier, how far to the next, how much bias) may use floats: they steer
  sizing, they are never booked.

A negative maker fee is a rebate: ``fee_for`` then returns a negative amount (money
received).  The tier table is input (``fees.bybit.tiers`` in the config, Bybit's VIP
schedule by default), read through the ``FeeTierLike`` protocol; this module imports
nothing outside the standard library.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Protocol

__all__ = [
    "FEE_QUANTUM",
    "NS_PER_DAY",
    "FeeTierLike",
    "BybitFeesParams",
    "Tier",
    "FeeSchedule",
    "FeeTiers",
    "TierStatus",
    "FeeBias",
    "RollingVolume",
    "to_decimal",
    "fee_for",
    "fee_bps_for",
    "effective_fee_bps",
    "utc_day",
    "fee_bias",
    "fee_bias_from_config",
]

FEE_QUANTUM = Decimal("0.00000001")
"""Fees are quantized to 1e-8 of the settlement currency: a satoshi for inverse (coin)
contracts and well below a cent for USDT, so rounding never moves money that matters,
and every fee has one canonical representation."""

NS_PER_DAY = 86_400 * 1_000_000_000

MAKER = "maker"
TAKER = "taker"

# Decimal precision for fee products: a 1e15 USD notional with 8 decimals times a bps
# value with a few decimals stays far inside 50 digits, so no product is ever rounded
# before the one deliberate quantization.
_PREC = 50
_CTX = Context(prec=_PREC, rounding=ROUND_HALF_EVEN)  # fixed: the caller's thread context never leaks in
_TEN_K = Decimal(10000)
# float rates seen by fee_for, as Decimals: a run repeats its few maker/taker rates, and
# Decimal(repr(rate)) per fill was a tenth of the fee's cost.  0.0 and -0.0 share a key
# (they compare equal); both give the same fee, a zero rate's 0 (see fee_for's sign rule).
_RATES: dict[float, Decimal] = {}
_RATES_MAX = 4096

# Decision-side rates (effective fee, improvement) are rounded to this many decimals of a bps.
_BPS_DIGITS = 9


# ----------------------------------------------------------------------------- inputs
class FeeTierLike(Protocol):
    """One row of a VIP table (``mmkit.config_schema.FeeTier`` satisfies it)."""

    @property
    def level(self) -> int: ...
    @property
    def min_volume_usd(self) -> float: ...
    @property
    def maker_bps(self) -> float: ...
    @property
    def taker_bps(self) -> float: ...


class BybitFeesParams(Protocol):
    """The ``fees.bybit`` config section (``BybitFeesConfig`` satisfies it)."""

    @property
    def distance_usd_threshold(self) -> float: ...
    @property
    def min_improvement_bps(self) -> float: ...
    @property
    def tiers(self) -> Sequence[FeeTierLike]: ...


# ----------------------------------------------------------------------------- exact money
def to_decimal(value: Decimal | int | float | str) -> Decimal:
    """An exact ``Decimal`` for a config or input number.

    Floats go through ``repr`` so ``1.8`` becomes ``Decimal("1.8")`` (what the config
    said), not the binary expansion ``1.8000000000000000444...``.  NaN/inf are refused:
    a non-finite fee is a bug upstream, never a value to book.
    """
    if isinstance(value, Decimal):
        out = value
    elif isinstance(value, bool):
        raise TypeError("a bool is not a number here")
    elif isinstance(value, int):
        out = Decimal(value)
    elif isinstance(value, float):
        out = Decimal(repr(value))
    elif isinstance(value, str):
        out = Decimal(value)
    else:
        raise TypeError(f"expected Decimal, int, float or str, got {type(value).__name__}")
    if not out.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return out


def fee_for(notional: Decimal, bps: Decimal | int | float | str, quantum: Decimal = FEE_QUANTUM) -> Decimal:
    """Exact fee for a fill: ``notional * bps / 10000`` quantized to ``quantum`` half-even.

    ``notional`` is the fill's value in the settlement currency (USD for linear, coin for
    inverse contracts), as a ``Decimal``; a float notional is refused because it would
    hide a rounding upstream.  ``bps`` may be negative (maker rebate), giving a negative
    fee.  Half-even rounding is symmetric, so a rebate and a charge of the same size are
    the same amount with opposite signs, and there is no bias over many fills.
    """
    if not isinstance(notional, Decimal):
        raise TypeError(f"notional must be a Decimal (exact money), got {type(notional).__name__}")
    if not notional.is_finite():
        raise ValueError(f"notional is not finite: {notional!r}")
    rate = _RATES.get(bps) if type(bps) is float else None
    if rate is None:
        rate = to_decimal(bps)
        if type(bps) is float and len(_RATES) < _RATES_MAX:
            _RATES[bps] = rate
    raw = _CTX.divide(_CTX.multiply(notional, rate), _TEN_K)
    out = raw.quantize(quantum, rounding=ROUND_HALF_EVEN, context=_CTX)
    return out.copy_abs() if out == 0 else out  # a rebate that rounds to nothing is 0, not -0


def fee_bps_for(liquidity: str, maker_bps: float, taker_bps: float) -> float:
    """The rate that applies to a fill of the given ``liquidity`` (``"maker"``/``"taker"``)."""
    if liquidity == MAKER:
        return maker_bps
    if liquidity == TAKER:
        return taker_bps
    raise ValueError(f"liquidity must be 'maker' or 'taker', got {liquidity!r}")


def effective_fee_bps(maker_share_ratio: float, maker_bps: float, taker_bps: float) -> float:
    """Volume-weighted fee rate: ``share * maker + (1 - share) * taker`` in bps.

    ``maker_share_ratio`` is the fraction of traded notional done as maker (1.0 for a
    purely post-only book).  This is what one more dollar of volume costs on average,
    so it is the number to compare between tiers.
    """
    if not 0.0 <= maker_share_ratio <= 1.0:
        raise ValueError(f"maker_share_ratio must be in [0, 1], got {maker_share_ratio!r}")
    return maker_share_ratio * maker_bps + (1.0 - maker_share_ratio) * taker_bps


# ----------------------------------------------------------------------------- schedules and tiers
@dataclass(frozen=True, slots=True)
class FeeSchedule:
    """A flat maker/taker schedule in bps (``trading.maker_fee_bps``/``taker_fee_bps``, or
    one VIP tier's).  A negative ``maker_bps`` is a rebate."""

    maker_bps: float
    taker_bps: float

    def __post_init__(self) -> None:
        for name in ("maker_bps", "taker_bps"):
            v = getattr(self, name)
            if not math.isfinite(v):
                raise ValueError(f"{name} must be finite, got {v!r}")

    def bps(self, liquidity: str) -> float:
        return fee_bps_for(liquidity, self.maker_bps, self.taker_bps)

    def fee_for(self, notional: Decimal, liquidity: str) -> Decimal:
        """Exact fee for a fill of ``notional`` (see module ``fee_for``)."""
        return fee_for(notional, self.bps(liquidity))

    def effective_bps(self, maker_share_ratio: float = 1.0) -> float:
        return effective_fee_bps(maker_share_ratio, self.maker_bps, self.taker_bps)


@dataclass(frozen=True, slots=True)
class Tier:
    """One VIP tier: reached when the 30-day volume is at least ``min_volume_usd``."""

    level: int
    min_volume_usd: float
    maker_bps: float
    taker_bps: float

    @property
    def schedule(self) -> FeeSchedule:
        return FeeSchedule(self.maker_bps, self.taker_bps)


class FeeTiers:
    """A validated VIP table: tier lookup by volume, next tier, distance to it.

    The config already rejects an out-of-order table (``E_CFG_FEE_TIERS``); the core
    checks again, because a table that is not sorted would make ``tier_for`` silently
    pick the wrong fee.  Rules: at least one tier, the first at 0 volume, strictly
    increasing ``level`` and ``min_volume_usd``, fees never higher in a higher tier.
    """

    __slots__ = ("tiers", "_mins")

    def __init__(self, tiers: Iterable[FeeTierLike]) -> None:
        rows = tuple(Tier(int(t.level), float(t.min_volume_usd), float(t.maker_bps), float(t.taker_bps)) for t in tiers)
        if not rows:
            raise ValueError("fee tier table is empty; it needs at least the base tier at 0 volume")
        for t in rows:
            if not all(math.isfinite(x) for x in (t.min_volume_usd, t.maker_bps, t.taker_bps)):
                raise ValueError(f"fee tier {t.level} has a non-finite number")
        if rows[0].min_volume_usd != 0.0:
            raise ValueError(f"the first fee tier must start at 0 volume, got {rows[0].min_volume_usd}")
        for prev, cur in zip(rows, rows[1:]):
            if cur.level <= prev.level or cur.min_volume_usd <= prev.min_volume_usd:
                raise ValueError(f"fee tiers out of order at level {cur.level}: levels and min_volume_usd must increase")
            if cur.maker_bps > prev.maker_bps or cur.taker_bps > prev.taker_bps:
                raise ValueError(f"fee tier {cur.level} charges more than tier {prev.level}")
        self.tiers: tuple[Tier, ...] = rows
        self._mins = [t.min_volume_usd for t in rows]

    def __len__(self) -> int:
        return len(self.tiers)

    def tier_for(self, volume_30d_usd: float | Decimal) -> Tier:
        """The highest tier whose threshold the volume reaches (the base tier below all)."""
        v = float(volume_30d_usd)
        if not math.isfinite(v):
            raise ValueError(f"volume must be finite, got {volume_30d_usd!r}")
        i = bisect.bisect_right(self._mins, max(0.0, v)) - 1
        return self.tiers[max(0, i)]

    def next_tier(self, tier: Tier) -> Tier | None:
        """The tier above ``tier``, or None at the top of the table."""
        for i, t in enumerate(self.tiers):
            if t.level == tier.level:
                return self.tiers[i + 1] if i + 1 < len(self.tiers) else None
        raise ValueError(f"tier level {tier.level} is not in this table")

    def distance_to_next_usd(self, volume_30d_usd: float | Decimal) -> float:
        """USD of volume still needed to reach the next tier (0.0 at the top tier)."""
        nxt = self.next_tier(self.tier_for(volume_30d_usd))
        return 0.0 if nxt is None else max(0.0, nxt.min_volume_usd - float(volume_30d_usd))

    def status(self, volume_30d_usd: float | Decimal, maker_share_ratio: float = 1.0) -> TierStatus:
        """Everything the metrics and the bias need about where the account stands."""
        cur = self.tier_for(volume_30d_usd)
        nxt = self.next_tier(cur)
        # Rates are rounded to 1e-9 bps so a gate like "improvement >= 0.2" sees 2.0 - 1.8 as
        # 0.2 and not 0.19999999999999996: float noise must not decide eligibility.
        now_bps = round(effective_fee_bps(maker_share_ratio, cur.maker_bps, cur.taker_bps), _BPS_DIGITS)
        if nxt is None:
            return TierStatus(float(volume_30d_usd), cur.level, cur.maker_bps, cur.taker_bps, now_bps, None, 0.0, now_bps, 0.0)
        next_bps = round(effective_fee_bps(maker_share_ratio, nxt.maker_bps, nxt.taker_bps), _BPS_DIGITS)
        dist = max(0.0, nxt.min_volume_usd - float(volume_30d_usd))
        return TierStatus(float(volume_30d_usd), cur.level, cur.maker_bps, cur.taker_bps, now_bps, nxt.level, dist, next_bps,
                          round(now_bps - next_bps, _BPS_DIGITS))


@dataclass(frozen=True, slots=True)
class TierStatus:
    """Where the account stands in the VIP table (metrics ``fee_tier_level``,
    ``fee_tier_distance_usd``, ``effective_fee_bps_now``, ``fee_tier_expected_bps``).

    ``next_level`` is None at the top tier, with ``distance_usd`` 0.0 and
    ``improvement_bps`` 0.0.  ``expected_next_bps`` is the effective fee at the next
    tier with the same maker share; ``improvement_bps = effective_bps_now - expected_next_bps``.
    """

    volume_30d_usd: float
    level: int
    maker_bps: float
    taker_bps: float
    effective_bps_now: float
    next_level: int | None
    distance_usd: float
    expected_next_bps: float
    improvement_bps: float


# ----------------------------------------------------------------------------- rolling volume
def utc_day(ts_ns: int) -> int:
    """UTC day index (days since 1970-01-01) of an integer-ns timestamp."""
    if isinstance(ts_ns, bool) or not isinstance(ts_ns, int):
        raise TypeError(f"ts_ns must be an int of nanoseconds, got {type(ts_ns).__name__}")
    return ts_ns // NS_PER_DAY


class RollingVolume:
    """Traded notional over the last ``days`` UTC days, fed fill by fill.

    Keyed by UTC day (``ts_ns // 86400e9``) rather than a sliding 30x24h window because
    exchange VIP programs count calendar days, and because a day bucket makes the sum
    exact and cheap: at most ``days`` buckets, each an exact ``Decimal``.  The window is
    the ``days`` days ending with the day of ``now_ns``, inclusive.  Fills older than the
    window are ignored; fills may arrive out of order within it.
    """

    __slots__ = ("days", "_buckets", "_latest_day")

    def __init__(self, days: int = 30) -> None:
        if days < 1:
            raise ValueError(f"days must be >= 1, got {days}")
        self.days = days
        self._buckets: dict[int, Decimal] = {}
        self._latest_day: int | None = None

    def add(self, ts_ns: int, notional_usd: Decimal | int | float | str) -> None:
        """Record one fill's notional (absolute value: a sell counts as volume too)."""
        amount = abs(to_decimal(notional_usd))
        day = utc_day(ts_ns)
        if self._latest_day is not None and day <= self._latest_day - self.days:
            return  # older than any window we can still be asked about
        self._buckets[day] = self._buckets.get(day, Decimal(0)) + amount
        if self._latest_day is None or day > self._latest_day:
            self._latest_day = day
            oldest = day - self.days + 1
            for d in [d for d in self._buckets if d < oldest]:
                del self._buckets[d]

    def total(self, now_ns: int) -> Decimal:
        """Exact notional traded in the window ending on ``now_ns``'s UTC day."""
        today = utc_day(now_ns)
        oldest = today - self.days + 1
        return sum((v for d, v in self._buckets.items() if oldest <= d <= today), Decimal(0))

    def total_usd(self, now_ns: int) -> float:
        """``total`` as a float, for tier selection and metrics."""
        return float(self.total(now_ns))


# ----------------------------------------------------------------------------- fee-aware bias
@dataclass(frozen=True, slots=True)
class FeeBias:
    """The fee-aware sizing bias and why.

    ``ratio`` is the fraction by which the allocator may scale targets up (0 = none,
    at most ``fee_bias_cap_ratio``); ``reason`` is one of ``top_tier``, ``too_far``,
    ``small_improvement``, ``applied`` (or ``cap_zero``), for logs and tests.
    """

    ratio: float
    reason: str
    status: TierStatus


def fee_bias(
    status: TierStatus,
    distance_usd_threshold: float,
    min_improvement_bps: float,
    fee_bias_cap_ratio: float,
) -> FeeBias:
    """Seed "VIP Fee Awareness": lean sizes up when the next tier is close and worth it.

    Eligible when a next tier exists, ``distance_usd <= distance_usd_threshold`` and the
    effective-fee improvement is ``>= min_improvement_bps``.  The size of the lean is
    mmkit's (the seed only states the gate and the cap)::

        ratio = fee_bias_cap_ratio * clamp01(1 - distance_usd / distance_usd_threshold)

    so it grows linearly from 0 at the threshold to the cap at the tier boundary: no
    jump when the distance crosses the threshold (a jump would make sizes flicker), and
    the strongest push where one more trade day tips the tier.
    """
    if fee_bias_cap_ratio < 0 or not math.isfinite(fee_bias_cap_ratio):
        raise ValueError(f"fee_bias_cap_ratio must be >= 0, got {fee_bias_cap_ratio!r}")
    if status.next_level is None:
        return FeeBias(0.0, "top_tier", status)
    if status.distance_usd > distance_usd_threshold or distance_usd_threshold <= 0:
        return FeeBias(0.0, "too_far", status)
    if status.improvement_bps < min_improvement_bps:
        return FeeBias(0.0, "small_improvement", status)
    if fee_bias_cap_ratio == 0:
        return FeeBias(0.0, "cap_zero", status)
    closeness = min(1.0, max(0.0, 1.0 - status.distance_usd / distance_usd_threshold))
    return FeeBias(fee_bias_cap_ratio * closeness, "applied", status)


def fee_bias_from_config(
    volume_30d_usd: float | Decimal,
    bybit: BybitFeesParams,
    fee_bias_cap_ratio: float,
    maker_share_ratio: float = 1.0,
    tiers: FeeTiers | None = None,
) -> FeeBias:
    """``fee_bias`` with the thresholds of the ``fees.bybit`` section and
    ``allocator.smoothing.fee_bias_cap_ratio``.  Pass a prebuilt ``tiers`` to skip
    re-validating the table on every call."""
    table = tiers if tiers is not None else FeeTiers(bybit.tiers)
    return fee_bias(table.status(volume_30d_usd, maker_share_ratio), bybit.distance_usd_threshold,
                    bybit.min_improvement_bps, fee_bias_cap_ratio)

