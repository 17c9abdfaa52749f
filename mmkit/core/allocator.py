"""Portfolio allocator: split the budget across symbols, then size each symbol's target.

Why it exists (seed "Portfolio Allocator (L1/L2)" .. "L7 - Turnover-aware allocator"):
one budget is shared by several books, and how much each book may rest is a risk
decision made once per ``portfolio.rebalance_minutes``, not per quote.  The order manager
then caps each symbol by the ``target_usd`` and ``max_levels`` decided here.

One rebalance runs these steps, in this order (docs/allocator.md has every formula):

1. **weights** (L1/L2): ``manual`` / ``inverse_vol`` / ``risk_parity`` raw weights, fitted
   to ``sum == 1`` with each weight in ``[min_weight, max_weight]`` (clamps with
   redistribution), then EMA-smoothed with ``ema_alpha`` and fitted again (no budget drift);
2. **soft** (L5): the drawdown soft factor, in integer permille (F3.6b) so it is
   bit-identical everywhere, scales the available budget: ``t = w * budget_available * soft``;
3. **cost** (L6/L6.1/L6.2), **fill-rate** (L6.3), **liquidity** (L6.4), **turnover** (L7):
   each multiplies ``t`` by a factor in ``[0, 1]``;
4. **fee bias** (VIP fee awareness): an optional small global up-scale, never past the budget;
5. **smoothing**: the per-rebalance delta cap with backoff on a position-skew breach;
6. **final normalization**: ``sum(t) <= budget_available * soft``;
7. **min_guard**: a target below ``min_target_usd`` is dust and becomes 0.

Attenuation shrinks what is deployed; it never hands the freed budget to another symbol.
Redistributing would turn a cost signal into concentration (the cheap symbol would grow
past ``max_weight``), so the weights stay the budget split and keep their invariants
(sum 1.0 +/- 1e-9, each in the clamps) through every stage; every stage's factor is kept
per symbol for metrics.  Pure: no I/O, no clock (``now_ns`` is passed in), stdlib only.
Config sections arrive as duck-typed objects described by the ``*Params`` protocols.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "VOL_EPS",
    "WEIGHT_SUM_TOL",
    "RECOVER_TICKS",
    "CALIB_ALPHA",
    "MODES",
    "CostOverrideParams",
    "CostParams",
    "PortfolioParams",
    "SmoothingParams",
    "PosSkewParams",
    "BudgetParams",
    "SoftBudget",
    "InvariantError",
    "SymbolInputs",
    "AllocatorInputs",
    "SymbolAllocation",
    "Allocation",
    "Allocator",
    "fit_weights",
    "check_weights",
    "inverse_vol_raw",
    "risk_parity_raw",
    "drawdown_bps",
    "soft_factor_permille",
    "slippage_bps",
    "cost_attenuation",
    "fill_rate_attenuation",
    "liquidity_attenuation",
    "turnover_factor",
    "delta_cap_usd",
    "step_backoff",
    "max_levels_for",
    "pos_skew_breached",
    "DecayedRate",
    "DecayedSum",
    "CostCalibrator",
    "CalibratedCost",
]

VOL_EPS = 1e-9
"""Inverse-vol and risk parity use ``1 / max(VOL_EPS, vol)``: a zero vol is huge weight
(clamped by ``max_weight``), never a division by zero."""

WEIGHT_SUM_TOL = 1e-9
"""Weights sum to 1.0 within this (seed "invariants & observability")."""

RECOVER_TICKS = 10
"""After a skew breach the backoff recovers one step per this many clean rebalances."""

CALIB_ALPHA = 0.1
"""EWMA weight of each new sample in the L6.2 cost calibration (seed value)."""

MODES = ("manual", "inverse_vol", "risk_parity")

_NS_PER_SEC = 1_000_000_000


class InvariantError(AssertionError):
    """An allocator invariant failed: a bug (or impossible input), never a market state.

    A subclass of ``AssertionError`` so it reads as what it is, but raised explicitly:
    ``python -O`` must not switch the checks off in a component that sizes money.
    """


# ----------------------------------------------------------------------------- config protocols
class CostOverrideParams(Protocol):
    """``portfolio.cost.per_symbol.SYMBOL`` (``CostOverride``): None = use the global value."""

    @property
    def fee_bps(self) -> float | None: ...
    @property
    def slippage_bps_base(self) -> float | None: ...
    @property
    def slippage_k_bps_per_kusd(self) -> float | None: ...
    @property
    def fill_rate_floor(self) -> float | None: ...
    @property
    def fill_rate_sensitivity(self) -> float | None: ...
    @property
    def liquidity_depth_usd_target(self) -> float | None: ...
    @property
    def liquidity_sensitivity(self) -> float | None: ...
    @property
    def liquidity_min_floor(self) -> float | None: ...
    @property
    def turnover_sensitivity(self) -> float | None: ...
    @property
    def turnover_floor(self) -> float | None: ...


class CostParams(Protocol):
    """``portfolio.cost`` (``CostConfig``): the L6..L7 attenuation stages."""

    @property
    def fee_bps_default(self) -> float: ...
    @property
    def slippage_bps_base(self) -> float: ...
    @property
    def slippage_k_bps_per_kusd(self) -> float: ...
    @property
    def cost_sensitivity(self) -> float: ...
    @property
    def use_shadow_spread(self) -> bool: ...
    @property
    def use_shadow_volume(self) -> bool: ...
    @property
    def min_volume_usd(self) -> float: ...
    @property
    def max_slippage_bps_cap(self) -> float: ...
    @property
    def fill_rate_half_life_sec(self) -> float: ...
    @property
    def fill_rate_floor(self) -> float: ...
    @property
    def fill_rate_sensitivity(self) -> float: ...
    @property
    def liquidity_depth_usd_target(self) -> float: ...
    @property
    def liquidity_sensitivity(self) -> float: ...
    @property
    def liquidity_min_floor(self) -> float: ...
    @property
    def turnover_half_life_sec(self) -> float: ...
    @property
    def turnover_sensitivity(self) -> float: ...
    @property
    def turnover_floor(self) -> float: ...
    @property
    def per_symbol(self) -> Mapping[str, CostOverrideParams]: ...


class PortfolioParams(Protocol):
    """``portfolio`` (``PortfolioConfig``)."""

    @property
    def budget_usd(self) -> float: ...
    @property
    def mode(self) -> str: ...
    @property
    def manual_weights(self) -> Mapping[str, float]: ...
    @property
    def min_weight(self) -> float: ...
    @property
    def max_weight(self) -> float: ...
    @property
    def rebalance_minutes(self) -> float: ...
    @property
    def ema_alpha(self) -> float: ...
    @property
    def levels_per_side_min(self) -> int: ...
    @property
    def levels_per_side_max(self) -> int: ...
    @property
    def cost(self) -> CostParams: ...


class SmoothingParams(Protocol):
    """``allocator.smoothing`` (``SmoothingConfig``).  ``max_delta_abs`` is in USD here:
    the delta cap acts on ``target_usd``.  (``bias_cap_ratio`` belongs to the
    position-skew guard and is not read by the allocator.)"""

    @property
    def max_delta_ratio(self) -> float: ...
    @property
    def max_delta_abs(self) -> float: ...
    @property
    def backoff_steps(self) -> Sequence[float]: ...
    @property
    def fee_bias_cap_ratio(self) -> float: ...


class PosSkewParams(Protocol):
    """``guards.pos_skew`` (``PosSkewConfig``): USD limits, 0 = disabled."""

    @property
    def per_symbol_abs_limit(self) -> float: ...
    @property
    def per_color_abs_limit(self) -> float: ...


class BudgetParams(Protocol):
    """Drawdown softening and the dust guard (F3.6b, L5 "soft", ``min_guard``)."""

    @property
    def drawdown_soft_cap_ratio(self) -> float: ...
    @property
    def pnl_sensitivity_ratio(self) -> float: ...
    @property
    def min_target_usd(self) -> float: ...


@dataclass(frozen=True, slots=True)
class SoftBudget:
    """Default ``BudgetParams``: softening and dust guard off.

    ``drawdown_soft_cap_ratio``: the drawdown (fraction of the equity high-water mark) at
    which softening is full; ``pnl_sensitivity_ratio``: how much of the budget full
    softening removes (0.5 = half); ``min_target_usd``: targets below this are zeroed.
    The config schema has no section for these yet, so the defaults keep them off.
    """

    drawdown_soft_cap_ratio: float = 0.0
    pnl_sensitivity_ratio: float = 0.0
    min_target_usd: float = 0.0


# ----------------------------------------------------------------------------- weights
def _fsum(xs: Sequence[float]) -> float:
    return math.fsum(xs)


def fit_weights(raw: Sequence[float], min_weight: float, max_weight: float) -> list[float]:
    """Weights proportional to ``raw``, summing to 1, each in ``[min_weight, max_weight]``.

    Finds the scale ``c`` with ``sum(clip(c * raw_i, lo, hi)) == 1``: that sum is a
    non-decreasing piecewise-linear function of ``c`` with kinks at ``lo/raw_i`` (symbol i
    leaves the floor) and ``hi/raw_i`` (it reaches the cap), so one sweep over the sorted
    kinks finds the segment where it crosses 1 and one linear solve gives ``c`` (exact, no
    iteration tolerance).  That is "clamp with redistribution": a clamped symbol's excess
    or shortfall is spread over the unclamped ones in proportion to their raw weight.  A
    raw weight of 0 ends at ``min_weight`` (never 0); if even every positive weight at
    ``max_weight`` cannot reach 1, the zero-raw symbols share the rest equally.  With one
    symbol the weight is 1.0 and the clamps do not bind.
    """
    n = len(raw)
    if n == 0:
        raise ValueError("no symbols to weight")
    if any(not math.isfinite(r) or r < 0 for r in raw):
        raise ValueError(f"raw weights must be finite and >= 0, got {list(raw)!r}")
    if n == 1:
        return [1.0]
    lo, hi = float(min_weight), float(max_weight)
    if not (0.0 <= lo <= hi <= 1.0):
        raise ValueError(f"need 0 <= min_weight <= max_weight <= 1, got {lo}, {hi}")
    if n * lo > 1.0 + WEIGHT_SUM_TOL or n * hi < 1.0 - WEIGHT_SUM_TOL:
        raise ValueError(f"{n} symbols cannot sum to 1 within [{lo}, {hi}]; "
                         f"need {n} x min_weight <= 1 <= {n} x max_weight")
    top_raw = max(raw)
    if top_raw <= 0.0:
        return _fix_residual([1.0 / n] * n, lo, hi)
    raw = [r / top_raw for r in raw]  # scale-free, and no overflow for huge raw weights
    total = math.fsum(raw)
    # Fast path: plain normalization already inside the clamps (the common case).
    w = [r / total for r in raw]
    if min(w) >= lo and max(w) <= hi:
        return _fix_residual(w, lo, hi)
    pos = [i for i in range(n) if raw[i] > 0]
    zeros = n - len(pos)
    if len(pos) * hi + zeros * lo <= 1.0:
        # Every positive symbol at the cap still leaves budget: the zero-raw ones get it.
        share = min(hi, max(lo, (1.0 - len(pos) * hi) / zeros)) if zeros else hi
        return _fix_residual([hi if r > 0 else share for r in raw], lo, hi)
    # f(c) = sum(clip(c * raw_i, lo, hi)) is non-decreasing in c; bisect over the sorted
    # kinks with an exact fsum at each probe (a running slope sum would lose tiny raw
    # weights next to large ones to float absorption), then solve on the found segment.
    kinks = sorted({lo / raw[i] for i in pos} | {hi / raw[i] for i in pos})

    def f(c: float) -> float:
        return math.fsum(min(hi, max(lo, c * r)) for r in raw)

    a, b = 0, len(kinks) - 1
    if f(kinks[b]) < 1.0:
        a = b
    while b - a > 1:
        mid = (a + b) // 2
        if f(kinks[mid]) >= 1.0:
            b = mid
        else:
            a = mid
    c_prev, c_next = (kinks[a], kinks[b]) if f(kinks[a]) < 1.0 else (0.0, kinks[a])
    # Recompute the segment's line exactly (the running sums above may carry rounding).
    at_lo = at_hi = 0
    interior: list[float] = []
    for r in raw:
        if r <= 0 or lo / r >= c_next:
            at_lo += 1
        elif hi / r <= c_prev:
            at_hi += 1
        else:
            interior.append(r)
    s_int = math.fsum(interior)
    c = (1.0 - at_lo * lo - at_hi * hi) / s_int if s_int > 0 else c_next
    return _fix_residual([min(hi, max(lo, c * r)) for r in raw], lo, hi)


def _fix_residual(w: list[float], lo: float, hi: float) -> list[float]:
    """Put the last float crumbs of ``1 - sum(w)`` on a weight that has room for them."""
    res = 1.0 - _fsum(w)
    if res == 0.0:
        return w
    order = sorted(range(len(w)), key=lambda i: (-w[i], i))
    for i in order:
        v = w[i] + res
        if lo <= v <= hi:
            w[i] = v
            return w
    # No single weight can take it (all pinned at a bound): spread it evenly, clamped.
    share = res / len(w)
    return [min(hi, max(lo, x + share)) for x in w]


def check_weights(weights: Sequence[float], min_weight: float, max_weight: float, where: str = "") -> None:
    """Raise ``InvariantError`` unless ``sum == 1 +/- 1e-9`` and each weight is in the clamps
    (one symbol: weight 1.0, clamps not binding)."""
    if not weights:
        raise InvariantError(f"{where}: no weights")
    s = _fsum(weights)
    if not math.isfinite(s) or abs(s - 1.0) > WEIGHT_SUM_TOL:
        raise InvariantError(f"{where}: weights sum to {s!r}, not 1 +/- {WEIGHT_SUM_TOL}")
    if len(weights) == 1:
        return
    for x in weights:
        if not (min_weight <= x <= max_weight):
            raise InvariantError(f"{where}: weight {x!r} outside [{min_weight}, {max_weight}]")


def inverse_vol_raw(vols: Sequence[float]) -> list[float]:
    """Raw inverse-volatility weights ``1 / max(VOL_EPS, vol)`` (higher vol, lower weight)."""
    return [1.0 / max(VOL_EPS, v) for v in vols]


def risk_parity_raw(vols: Sequence[float], corr: Sequence[Sequence[float]] | None = None,
                    max_iter: int = 500, tol: float = 1e-12) -> list[float]:
    """Raw equal-risk-contribution weights: ``w_i * (Sigma w)_i`` equal for every symbol.

    Without correlations the covariance is diagonal and the exact solution is
    ``w_i ~ 1/vol_i`` (``w_i * vol_i`` constant), the same as inverse-vol.  With a
    correlation matrix it iterates (cyclical coordinate descent, each step the positive
    root of ``Sigma_ii x^2 + c x - b = 0``) until the largest relative change is below
    ``tol``; if it does not converge (a correlation matrix that is not positive
    semi-definite) it falls back to inverse-vol rather than return a wrong answer.
    """
    inv = inverse_vol_raw(vols)
    if corr is None:
        return inv
    n = len(vols)
    if len(corr) != n or any(len(row) != n for row in corr):
        raise ValueError(f"correlation matrix must be {n}x{n}")
    top = max(max(VOL_EPS, v) for v in vols)
    sig = [max(VOL_EPS, v) / top for v in vols]  # scale-free: ERC weights ignore a common factor
    cov = [[float(corr[i][j]) * sig[i] * sig[j] for j in range(n)] for i in range(n)]
    for i in range(n):
        cov[i][i] = sig[i] * sig[i]
    b = 1.0 / n
    s = _fsum(inv)
    x = [v / s for v in inv]
    for _ in range(max_iter):
        worst = 0.0
        for i in range(n):
            row = cov[i]
            c = _fsum([row[j] * x[j] for j in range(n) if j != i])
            a = row[i]
            disc = math.sqrt(c * c + 4.0 * a * b)
            new = 2.0 * b / (c + disc) if c >= 0 else (disc - c) / (2.0 * a)
            if not math.isfinite(new) or new <= 0:
                return inv
            worst = max(worst, abs(new - x[i]) / x[i])
            x[i] = new
        if worst < tol:
            return x
    return inv


# ----------------------------------------------------------------------------- soft (F3.6b)
def drawdown_bps(hwm_equity_usd: float, equity_usd: float) -> int:
    """Drawdown from the high-water mark in integer bps (0..10000), truncated like the seed
    (``int(drawdown * 10000.0)``).  IEEE-754 makes the float steps exact on every platform."""
    if hwm_equity_usd <= 0 or not math.isfinite(hwm_equity_usd) or not math.isfinite(equity_usd):
        return 0
    dd = max(0.0, min(1.0, (hwm_equity_usd - equity_usd) / hwm_equity_usd))
    return int(dd * 10000.0)


def soft_factor_permille(drawdown_bps_i: int, soft_cap_ratio: float, pnl_sensitivity_ratio: float) -> int:
    """Seed F3.6b, in integers so the budget factor is bit-identical across runs and platforms::

        soft_cap_bps      = int(soft_cap * 10000.0)
        pnl_sens_permille = int(pnl_sensitivity * 1000.0)
        x_permille        = min(1000, (drawdown_bps * 1000) // soft_cap_bps)
        soft_permille     = 1000 - (pnl_sens_permille * x_permille) // 1000

    With ``soft_cap == 0`` any drawdown counts as full (``x = 1000``).  Returns 0..1000.
    """
    dd = max(0, min(10000, int(drawdown_bps_i)))
    cap_bps = int(max(0.0, min(1.0, float(soft_cap_ratio))) * 10000.0)
    sens_pm = int(max(0.0, min(1.0, float(pnl_sensitivity_ratio))) * 1000.0)
    if cap_bps > 0:
        x_pm = min(1000, (dd * 1000) // cap_bps)
    else:
        x_pm = 1000 if dd > 0 else 0
    return max(0, min(1000, 1000 - (sens_pm * x_pm) // 1000))


# ----------------------------------------------------------------------------- attenuation stages
def _clamp01(x: float) -> float:
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x


def slippage_bps(target_usd: float, *, base_bps: float, k_bps_per_kusd: float, cap_bps: float,
                 spread_bps: float | None = None, volume_usd: float | None = None,
                 use_shadow_spread: bool = True, use_shadow_volume: bool = True,
                 min_volume_usd: float = 1000.0) -> float:
    """Expected slippage in bps for resting ``target_usd`` (L6, L6.1, L6.2)::

        slip = base_bps
        if use_shadow_spread and spread valid: slip = max(slip, spread_bps / 2)
        k = k_bps_per_kusd;  if use_shadow_volume and volume_usd < min_volume_usd: k = 2 * k
        slip = min(slip + k * max(0, target_usd) / 1000, cap_bps)

    A missing (None) spread or volume means "no observation": the config values stand.
    """
    slip = base_bps
    if use_shadow_spread and spread_bps is not None and math.isfinite(spread_bps) and spread_bps >= 0:
        slip = max(slip, spread_bps / 2.0)
    k = k_bps_per_kusd
    if use_shadow_volume and volume_usd is not None and math.isfinite(volume_usd) and volume_usd < min_volume_usd:
        k = 2.0 * k
    slip += k * max(0.0, target_usd) / 1000.0
    return min(slip, cap_bps)


def cost_attenuation(cost_bps: float, cost_sensitivity: float) -> float:
    """L6: ``max(0, 1 - cost_sensitivity * min(1, cost_bps / 100))``.  A net rebate
    (negative cost) counts as 0: it never inflates a target."""
    ratio = min(1.0, max(0.0, cost_bps / 100.0))
    return _clamp01(1.0 - cost_sensitivity * ratio)


def fill_rate_attenuation(fill_rate: float | None, floor: float, sensitivity: float) -> float:
    """L6.3: ``1 - sensitivity * max(0, floor - r)``, ``r = 1.0`` without data; clamped 0..1."""
    r = 1.0 if fill_rate is None or not math.isfinite(fill_rate) else _clamp01(fill_rate)
    return _clamp01(1.0 - sensitivity * max(0.0, floor - r))


def liquidity_attenuation(depth_usd: float | None, depth_target_usd: float, sensitivity: float,
                          min_floor: float) -> float:
    """L6.4: ``raw = 1 if target == 0 else min(1, depth/target)``,
    ``factor = max(min_floor, raw)``, ``attenuation = 1 - sensitivity * (1 - factor)``.

    No depth observation counts as depth 0 (conservative: unknown liquidity is thin).
    Seed example: target 50000, depth 25000, sensitivity 0.5, floor 0.6 -> 0.8.
    """
    if depth_target_usd <= 0:
        raw = 1.0
    else:
        d = 0.0 if depth_usd is None or not math.isfinite(depth_usd) else max(0.0, depth_usd)
        raw = min(1.0, d / depth_target_usd)
    factor = max(min_floor, raw)
    return _clamp01(1.0 - sensitivity * (1.0 - factor))


def turnover_factor(turnover_usd: float, budget_available_usd: float, weight: float,
                    sensitivity: float, floor: float) -> float:
    """L7: ``r = turnover / max(1, budget_available * weight)``, ``raw = clamp01(1 - r)``,
    ``factor = max(floor, 1 - sensitivity * (1 - raw))``: a symbol that has recently
    turned its own budget over many times is sized down, never below ``floor``."""
    t = 0.0 if not math.isfinite(turnover_usd) else max(0.0, turnover_usd)
    r = t / max(1.0, budget_available_usd * weight)
    raw = _clamp01(1.0 - r)
    return _clamp01(max(floor, 1.0 - sensitivity * (1.0 - raw)))


# ----------------------------------------------------------------------------- smoothing
def delta_cap_usd(current_usd: float, max_delta_ratio: float, max_delta_abs: float, multiplier: float) -> float:
    """Seed "Allocator smoothing": ``max(|current| * max_delta_ratio, max_delta_abs) * multiplier``."""
    return max(abs(current_usd) * max_delta_ratio, max_delta_abs) * multiplier


def step_backoff(level: int, clean_ticks: int, breach: bool, n_steps: int) -> tuple[int, int]:
    """One rebalance of the backoff ladder: ``(level, clean_ticks)`` after this tick.

    A breach moves one step down the ladder (``level + 1``, a smaller multiplier, at most
    the last step) and resets the clean count; ``RECOVER_TICKS`` clean ticks in a row move
    one step back up.  Slow recovery on purpose: a skew that just cleared tends to return.
    """
    if breach:
        return min(level + 1, n_steps - 1), 0
    clean_ticks += 1
    if clean_ticks >= RECOVER_TICKS and level > 0:
        return level - 1, 0
    return level, clean_ticks


def max_levels_for(weight: float, max_weight: float, levels_min: int, levels_max: int) -> int:
    """Quote levels per side: ``round_half_up(levels_max * weight / max_weight)`` clamped to
    ``[levels_min, levels_max]`` (always >= 1): a symbol at the weight cap quotes the most levels."""
    scaled = levels_max * weight / max_weight if max_weight > 0 else float(levels_max)
    return max(levels_min, min(levels_max, int(math.floor(scaled + 0.5))))


def pos_skew_breached(positions_usd: Mapping[str, float], colors: Mapping[str, str],
                      per_symbol_abs_limit: float, per_color_abs_limit: float) -> bool:
    """``guards.pos_skew``: any ``|position| > per_symbol_abs_limit`` or any color's net
    ``|sum of positions| > per_color_abs_limit`` (a limit of 0 disables its check)."""
    if per_symbol_abs_limit > 0 and any(abs(p) > per_symbol_abs_limit for p in positions_usd.values()):
        return True
    if per_color_abs_limit > 0:
        totals: dict[str, float] = {}
        for sym in sorted(positions_usd):
            col = colors.get(sym, "")
            totals[col] = totals.get(col, 0.0) + positions_usd[sym]
        if any(abs(v) > per_color_abs_limit for v in totals.values()):
            return True
    return False


# ----------------------------------------------------------------------------- trackers (inputs)
def _decay(half_life_sec: float, dt_ns: int) -> float:
    return 0.5 ** (dt_ns / (half_life_sec * _NS_PER_SEC)) if dt_ns > 0 else 1.0


class DecayedRate:
    """Per-symbol fill rate ``r`` (L6.3 ``cost_fillrate_ewma``), decayed with a half-life.

    Keeps decayed counts of outcomes and of fills; ``r = fills / outcomes``.  Counting
    (instead of ``r += a * (x - r)`` with a time-based ``a``) lets a burst of outcomes in
    the same nanosecond all count, while old ones still fade with ``half_life_sec``.
    """

    __slots__ = ("half_life_sec", "_state")

    def __init__(self, half_life_sec: float) -> None:
        if not half_life_sec > 0:
            raise ValueError(f"half_life_sec must be > 0, got {half_life_sec!r}")
        self.half_life_sec = float(half_life_sec)
        self._state: dict[str, tuple[int, float, float, int]] = {}  # ts, fills, outcomes, samples

    def record(self, symbol: str, filled: bool, ts_ns: int) -> None:
        """One order outcome: ``filled`` True if it (partly) filled, False if it expired or was canceled."""
        ts0, f, n, k = self._state.get(symbol, (ts_ns, 0.0, 0.0, 0))
        d = _decay(self.half_life_sec, ts_ns - ts0)
        self._state[symbol] = (max(ts0, ts_ns), f * d + (1.0 if filled else 0.0), n * d + 1.0, k + 1)

    def rate(self, symbol: str) -> float | None:
        """The decayed fill rate in [0, 1], or None before the first outcome (stage uses 1.0)."""
        st = self._state.get(symbol)
        if st is None or st[2] <= 0:
            return None
        return _clamp01(st[1] / st[2])

    def samples(self, symbol: str) -> int:
        st = self._state.get(symbol)
        return 0 if st is None else st[3]


class DecayedSum:
    """Per-symbol recent turnover in USD (L7 ``turnover_usd``): fills' notionals, each fading
    with ``half_life_sec``.  Fed by ``record_trade_notional(symbol, usd, ts_ns)`` on every fill.

    A steady flow of F USD/s settles at ``F * half_life_sec / ln 2``: roughly the notional
    of the last 1.44 half-lives, the number L7 compares to the symbol's budget.
    """

    __slots__ = ("half_life_sec", "_state")

    def __init__(self, half_life_sec: float) -> None:
        if not half_life_sec > 0:
            raise ValueError(f"half_life_sec must be > 0, got {half_life_sec!r}")
        self.half_life_sec = float(half_life_sec)
        self._state: dict[str, tuple[int, float]] = {}

    def record_trade_notional(self, symbol: str, usd: float, ts_ns: int) -> None:
        if not math.isfinite(usd):
            raise ValueError(f"notional must be finite, got {usd!r}")
        ts0, s = self._state.get(symbol, (ts_ns, 0.0))
        self._state[symbol] = (max(ts0, ts_ns), s * _decay(self.half_life_sec, ts_ns - ts0) + abs(usd))

    def value(self, symbol: str, now_ns: int) -> float:
        """The decayed sum as of ``now_ns`` (0.0 for a symbol with no fills)."""
        st = self._state.get(symbol)
        if st is None:
            return 0.0
        return st[1] * _decay(self.half_life_sec, now_ns - st[0])


@dataclass(frozen=True, slots=True)
class CalibratedCost:
    """L6.2 calibrated slippage parameters for one symbol (``cost_calib_*`` metrics)."""

    k_eff: float
    cap_eff_bps: float
    samples: int
    spread_ewma_bps: float
    volume_ewma_usd: float
    slippage_ewma_bps: float


class CostCalibrator:
    """L6.2 online calibration: EWMA (alpha 0.1) of spread, volume and observed slippage.

    The seed states the EWMAs and that ``k_eff`` and ``cap_eff_bps`` come out of them; the
    derivation is mmkit's, chosen to need nothing but those observations:

    - each fill gives ``k_obs = max(0, slip_obs - max(base, spread/2)) / (notional/1000)``
      (the size-dependent part of its slippage, per kUSD); ``k_eff = EWMA(k_obs)``;
    - ``cap_eff_bps = min(max_slippage_bps_cap, mean + 3 * std)`` of observed slippage
      (EW mean and variance), at least ``base``: an observed high-water line, not a guess.

    ``params`` returns None until ``min_samples`` fills were seen; the allocator then
    uses ``portfolio.cost`` as configured.
    """

    __slots__ = ("base_bps", "cap_bps", "min_samples", "alpha", "_s")

    def __init__(self, cost: CostParams, min_samples: int = 20, alpha: float = CALIB_ALPHA) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha!r}")
        self.base_bps = float(cost.slippage_bps_base)
        self.cap_bps = float(cost.max_slippage_bps_cap)
        self.min_samples = int(min_samples)
        self.alpha = float(alpha)
        # symbol -> [n, spread, volume, slip_mean, slip_var, k]
        self._s: dict[str, list[float]] = {}

    def record(self, symbol: str, spread_bps: float, volume_usd: float, slippage_bps_observed: float,
               notional_usd: float) -> None:
        if not all(math.isfinite(x) for x in (spread_bps, volume_usd, slippage_bps_observed, notional_usd)):
            raise ValueError("calibration sample has a non-finite number")
        ref = max(self.base_bps, spread_bps / 2.0)
        k_obs = max(0.0, slippage_bps_observed - ref) / (notional_usd / 1000.0) if notional_usd > 0 else 0.0
        st = self._s.get(symbol)
        if st is None:
            self._s[symbol] = [1, spread_bps, volume_usd, slippage_bps_observed, 0.0, k_obs]
            return
        a = self.alpha
        st[0] += 1
        st[1] = a * spread_bps + (1 - a) * st[1]
        st[2] = a * volume_usd + (1 - a) * st[2]
        diff = slippage_bps_observed - st[3]
        st[3] = st[3] + a * diff
        st[4] = (1 - a) * (st[4] + a * diff * diff)
        st[5] = a * k_obs + (1 - a) * st[5]

    def params(self, symbol: str) -> CalibratedCost | None:
        st = self._s.get(symbol)
        if st is None or st[0] < self.min_samples:
            return None
        cap = min(self.cap_bps, max(self.base_bps, st[3] + 3.0 * math.sqrt(max(0.0, st[4]))))
        return CalibratedCost(st[5], cap, int(st[0]), st[1], st[2], st[3])


# ----------------------------------------------------------------------------- inputs / outputs
@dataclass(frozen=True, slots=True)
class SymbolInputs:
    """What the allocator knows about one symbol at a rebalance.  None = no observation.

    ``vol``: volatility estimate (any unit, the same for all symbols; a missing vol falls
    back to the last one seen, else 1.0); ``spread_bps``/``volume_usd``: shadow spread and
    recent traded volume (L6.1); ``fill_rate``: 0..1 (L6.3, ``DecayedRate``);
    ``depth_usd``: book depth (L6.4); ``turnover_usd``: recent notional (L7, ``DecayedSum``);
    ``k_eff``/``cap_eff_bps``: calibrated slippage (L6.2, ``CostCalibrator``) replacing
    ``slippage_k_bps_per_kusd``/``max_slippage_bps_cap``; ``position_usd``/``color``: for
    the ``guards.pos_skew`` breach check.
    """

    vol: float | None = None
    spread_bps: float | None = None
    volume_usd: float | None = None
    fill_rate: float | None = None
    depth_usd: float | None = None
    turnover_usd: float = 0.0
    k_eff: float | None = None
    cap_eff_bps: float | None = None
    position_usd: float = 0.0
    color: str = ""


@dataclass(frozen=True, slots=True)
class AllocatorInputs:
    """One rebalance's inputs.

    ``symbols``: every traded symbol and its observations.  ``equity_usd``: account equity
    for the drawdown soft factor (None = no update).  ``budget_available_usd``: budget left
    after losses/reservations (None = ``budget_usd``; never more than it).
    ``skew_breach``: a position-skew breach reported by the guard (ORed with the check on
    ``position_usd`` against ``guards.pos_skew``).  ``fee_bias_ratio``: the VIP fee lean from
    ``core.fees.fee_bias`` (capped by ``fee_bias_cap_ratio``).  ``correlations``: pairwise
    correlations for risk parity, keyed ``(a, b)`` either order (missing pairs = 0).
    """

    symbols: Mapping[str, SymbolInputs]
    equity_usd: float | None = None
    budget_available_usd: float | None = None
    skew_breach: bool = False
    fee_bias_ratio: float = 0.0
    correlations: Mapping[tuple[str, str], float] | None = None


@dataclass(frozen=True, slots=True)
class SymbolAllocation:
    """The allocator's decision for one symbol and every number behind it (metrics).

    ``weight``: budget share (invariants hold); ``mode_weight``: the share before EMA;
    ``target_usd``: USD the order manager may rest; ``desired_usd``: the target before the
    delta cap; ``max_levels``: quote levels per side.  ``*_factor``: each stage's
    multiplier in pipeline order (``soft`` is the global drawdown factor; ``fee_bias`` is
    ``1 + ratio``, the only one that may exceed 1; ``min_guard`` is 0 or 1).
    ``cost_bps``/``slippage_bps``: L6 estimates (``allocator_estimated_cost_bps``,
    ``allocator_cost_slippage_bps``).  ``delta_*``: the smoothing step
    (``allocator_delta_capped_total``, ``allocator_sizing_delta_ratio``).
    """

    symbol: str
    weight: float
    mode_weight: float
    target_usd: float
    desired_usd: float
    max_levels: int
    soft_factor: float
    cost_factor: float
    fill_factor: float
    liq_factor: float
    turnover_factor: float
    fee_bias_factor: float
    norm_factor: float
    min_guard_factor: float
    cost_bps: float
    slippage_bps: float
    fee_bps: float
    vol: float
    delta_raw_usd: float
    delta_cap_usd: float
    delta_applied_usd: float
    delta_capped: bool

    @property
    def sizing_delta_ratio(self) -> float:
        """``|applied delta| / max(1, |previous target|)`` (metric ``allocator_sizing_delta_ratio``)."""
        prev = self.desired_usd - self.delta_raw_usd
        return abs(self.delta_applied_usd) / max(1.0, abs(prev))


@dataclass(frozen=True, slots=True)
class Allocation:
    """One rebalance's result: per-symbol decisions (sorted by symbol) and global state.

    ``budget_available_usd``: the budget used; ``deploy_usd = budget_available * soft``,
    the most all targets together may reach; ``drawdown_bps``/``soft_permille``: the F3.6b
    integers (``allocator_soft_factor = soft_permille / 1000``); ``backoff_level``/
    ``backoff_multiplier``: the smoothing ladder (``allocator_backoff_level``);
    ``stage_totals_usd``: sum of targets after each stage, in pipeline order.
    """

    ts_ns: int
    mode: str
    budget_usd: float
    budget_available_usd: float
    deploy_usd: float
    hwm_equity_usd: float
    drawdown_bps: int
    soft_permille: int
    backoff_level: int
    backoff_multiplier: float
    skew_breach: bool
    fee_bias_ratio: float
    symbols: tuple[SymbolAllocation, ...]
    stage_totals_usd: tuple[tuple[str, float], ...] = field(default=())

    @property
    def soft_factor(self) -> float:
        return self.soft_permille / 1000.0

    def __getitem__(self, symbol: str) -> SymbolAllocation:
        for s in self.symbols:
            if s.symbol == symbol:
                return s
        raise KeyError(symbol)

    @property
    def weights(self) -> dict[str, float]:
        return {s.symbol: s.weight for s in self.symbols}

    @property
    def targets_usd(self) -> dict[str, float]:
        return {s.symbol: s.target_usd for s in self.symbols}

    @property
    def total_target_usd(self) -> float:
        return _fsum([s.target_usd for s in self.symbols])


# ----------------------------------------------------------------------------- the allocator
@dataclass(frozen=True, slots=True)
class _SymCost:
    """``portfolio.cost`` resolved for one symbol (per-symbol override, else global)."""

    fee_bps: float
    base_bps: float
    k: float
    fill_floor: float
    fill_sens: float
    liq_target: float
    liq_sens: float
    liq_floor: float
    turn_sens: float
    turn_floor: float


def _num_map(obj: Any, name: str) -> dict[str, float]:
    """A ``symbol -> finite number >= 0`` mapping from restored state, as floats."""
    if not isinstance(obj, Mapping):
        raise ValueError(f"{name} must be an object of symbol -> number")
    out = {}
    for k, v in obj.items():
        if not isinstance(k, str) or isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise ValueError(f"{name}.{str(k)[:40]}: must be a finite number >= 0")
        out[k] = float(v)
    return out


def _pick(override: float | None, default: float) -> float:
    return float(default) if override is None else float(override)


def _obs(x: float | None) -> float | None:
    """An observation usable as a number: finite and >= 0, else None (no observation)."""
    return x if x is not None and math.isfinite(x) and x >= 0 else None


class Allocator:
    """Stateful rebalancer: keeps what smoothing needs (previous weights and targets, the
    backoff ladder, the equity high-water mark, last valid vols) between rebalances.

    Usage: ``alloc = Allocator(cfg.portfolio, cfg.allocator.smoothing, cfg.guards.pos_skew)``;
    on each scheduler tick ``if alloc.due(now_ns): a = alloc.rebalance(inputs, now_ns)``.
    """

    def __init__(self, portfolio: PortfolioParams, smoothing: SmoothingParams,
                 pos_skew: PosSkewParams | None = None, budget: BudgetParams | None = None) -> None:
        self._set_params(portfolio, smoothing, pos_skew, budget if budget is not None else SoftBudget())
        self._weights: dict[str, float] = {}
        self._targets: dict[str, float] = {}
        self._last_vol: dict[str, float] = {}
        self._hwm = 0.0
        self._level = 0
        self._clean = 0
        self._last_ns: int | None = None
        self._force = True
        self.last: Allocation | None = None

    # -- configuration
    def _set_params(self, portfolio: PortfolioParams, smoothing: SmoothingParams,
                    pos_skew: PosSkewParams | None, budget: BudgetParams) -> None:
        pf = portfolio
        if pf.mode not in MODES:
            raise ValueError(f"portfolio.mode must be one of {MODES}, got {pf.mode!r}")
        if not (0.0 <= pf.min_weight <= pf.max_weight <= 1.0) or pf.max_weight <= 0:
            raise ValueError(f"need 0 <= min_weight <= max_weight <= 1 and max_weight > 0, "
                             f"got {pf.min_weight}, {pf.max_weight}")
        if not 0.0 < pf.ema_alpha <= 1.0:
            raise ValueError(f"portfolio.ema_alpha must be in (0, 1], got {pf.ema_alpha}")
        if not (math.isfinite(pf.budget_usd) and pf.budget_usd >= 0):
            raise ValueError(f"portfolio.budget_usd must be finite and >= 0, got {pf.budget_usd}")
        if not 1 <= pf.levels_per_side_min <= pf.levels_per_side_max:
            raise ValueError("need 1 <= levels_per_side_min <= levels_per_side_max")
        if not pf.rebalance_minutes >= 0:
            raise ValueError(f"portfolio.rebalance_minutes must be >= 0, got {pf.rebalance_minutes}")
        if any(not (math.isfinite(w) and w >= 0) for w in pf.manual_weights.values()):
            raise ValueError("portfolio.manual_weights must be finite and >= 0")
        steps = [float(s) for s in smoothing.backoff_steps]
        if not steps or any(not 0.0 < s <= 1.0 for s in steps):
            raise ValueError(f"allocator.smoothing.backoff_steps needs multipliers in (0, 1], got {steps}")
        if smoothing.max_delta_ratio < 0 or smoothing.max_delta_abs < 0:
            raise ValueError("allocator.smoothing.max_delta_ratio and max_delta_abs must be >= 0")
        c = pf.cost
        for name in ("cost_sensitivity", "fill_rate_floor", "fill_rate_sensitivity", "liquidity_sensitivity",
                     "liquidity_min_floor", "turnover_sensitivity", "turnover_floor"):
            v = getattr(c, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"portfolio.cost.{name} must be in [0, 1], got {v}")
        self.portfolio = pf
        self.smoothing = smoothing
        self.pos_skew = pos_skew
        self.budget = budget
        self._steps = steps
        self._sym_cost: dict[str, _SymCost] = {}

    def reconfigure(self, portfolio: PortfolioParams | None = None, smoothing: SmoothingParams | None = None,
                    pos_skew: PosSkewParams | None = None, budget: BudgetParams | None = None) -> None:
        """Hot-reload.  A change of mode, budget or weight clamps forces a rebalance on the
        next ``due`` (seed: "Hot-reload ... force immediate rebalance").  State is kept."""
        old = self.portfolio
        pf = portfolio if portfolio is not None else old
        self._set_params(pf, smoothing if smoothing is not None else self.smoothing,
                         pos_skew if pos_skew is not None else self.pos_skew,
                         budget if budget is not None else self.budget)
        self._level = min(self._level, len(self._steps) - 1)
        if (pf.mode, pf.budget_usd, pf.min_weight, pf.max_weight) != (old.mode, old.budget_usd, old.min_weight, old.max_weight):
            self._force = True

    def _cost_for(self, symbol: str) -> _SymCost:
        sc = self._sym_cost.get(symbol)
        if sc is None:
            c = self.portfolio.cost
            ov = c.per_symbol.get(symbol)
            g = (lambda name, default: _pick(getattr(ov, name), default)) if ov is not None else (lambda name, default: float(default))
            sc = _SymCost(
                fee_bps=g("fee_bps", c.fee_bps_default),
                base_bps=g("slippage_bps_base", c.slippage_bps_base),
                k=g("slippage_k_bps_per_kusd", c.slippage_k_bps_per_kusd),
                fill_floor=g("fill_rate_floor", c.fill_rate_floor),
                fill_sens=g("fill_rate_sensitivity", c.fill_rate_sensitivity),
                liq_target=g("liquidity_depth_usd_target", c.liquidity_depth_usd_target),
                liq_sens=g("liquidity_sensitivity", c.liquidity_sensitivity),
                liq_floor=g("liquidity_min_floor", c.liquidity_min_floor),
                turn_sens=g("turnover_sensitivity", c.turnover_sensitivity),
                turn_floor=g("turnover_floor", c.turnover_floor),
            )
            self._sym_cost[symbol] = sc
        return sc

    # -- state
    @property
    def backoff_level(self) -> int:
        return self._level

    @property
    def hwm_equity_usd(self) -> float:
        return self._hwm

    def due(self, now_ns: int) -> bool:
        """True when a rebalance is due: never ran, a forcing reconfigure, or
        ``rebalance_minutes`` elapsed since the last one."""
        if self._force or self._last_ns is None:
            return True
        period_ns = int(round(self.portfolio.rebalance_minutes * 60.0 * _NS_PER_SEC))
        return now_ns - self._last_ns >= period_ns

    STATE_VERSION = 1

    def state(self) -> dict[str, Any]:
        """What smoothing carries between rebalances, as JSON-safe data (a restart snapshot):
        previous weights and targets, last valid vols, the equity high-water mark, the
        backoff ladder position, clean ticks since a breach and the last rebalance time.
        Configuration is not part of it (it comes from the config)."""
        return {
            "version": self.STATE_VERSION,
            "weights": dict(sorted(self._weights.items())),
            "targets_usd": dict(sorted(self._targets.items())),
            "last_vol": dict(sorted(self._last_vol.items())),
            "hwm_equity_usd": self._hwm,
            "backoff_level": self._level,
            "clean_ticks": self._clean,
            "last_rebalance_ns": self._last_ns,
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Load ``state()`` output, all or nothing: anything malformed raises ``ValueError``
        and leaves the allocator as it was.  A backoff level past this config's ladder is
        clamped to its last step.  The next ``due`` forces a rebalance, which continues
        smoothing from the restored targets."""
        if not isinstance(state, Mapping) or state.get("version") != self.STATE_VERSION:
            raise ValueError(f"allocator state must be an object with version {self.STATE_VERSION}")
        unknown = sorted(str(k) for k in state if k not in self.state())
        if unknown:
            raise ValueError(f"allocator state has unknown field(s) {', '.join(unknown)[:200]}")
        weights = _num_map(state.get("weights", {}), "weights")
        targets = _num_map(state.get("targets_usd", {}), "targets_usd")
        vols = _num_map(state.get("last_vol", {}), "last_vol")
        hwm = state.get("hwm_equity_usd", 0.0)
        level = state.get("backoff_level", 0)
        clean = state.get("clean_ticks", 0)
        last = state.get("last_rebalance_ns")
        if isinstance(hwm, bool) or not isinstance(hwm, (int, float)) or not math.isfinite(hwm) or hwm < 0:
            raise ValueError("hwm_equity_usd must be a finite number >= 0")
        for name, v in (("backoff_level", level), ("clean_ticks", clean)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be an integer >= 0")
        if last is not None and (isinstance(last, bool) or not isinstance(last, int)):
            raise ValueError("last_rebalance_ns must be an integer or null")
        self._weights, self._targets, self._last_vol = weights, targets, vols
        self._hwm = float(hwm)
        self._level = min(level, len(self._steps) - 1)
        self._clean = clean
        self._last_ns = last
        self._force = True

    # -- the pipeline
    def _mode_weights(self, syms: list[str], inputs: AllocatorInputs) -> tuple[list[float], list[float]]:
        pf = self.portfolio
        vols: list[float] = []
        for s in syms:
            v = _obs(inputs.symbols[s].vol)
            vols.append(v if v is not None else self._last_vol.get(s, 1.0))
        if pf.mode == "manual":
            raw = [max(0.0, float(pf.manual_weights.get(s, 0.0))) for s in syms]
        elif pf.mode == "inverse_vol":
            raw = inverse_vol_raw(vols)
        else:
            corr = None
            if inputs.correlations:
                cm = inputs.correlations
                corr = [[1.0 if i == j else float(cm.get((a, b), cm.get((b, a), 0.0))) for j, b in enumerate(syms)]
                        for i, a in enumerate(syms)]
                if any(not -1.0 <= x <= 1.0 for row in corr for x in row):
                    raise ValueError("correlations must be in [-1, 1]")
            raw = risk_parity_raw(vols, corr)
        return fit_weights(raw, pf.min_weight, pf.max_weight), vols

    def rebalance(self, inputs: AllocatorInputs, now_ns: int) -> Allocation:
        """Run the whole pipeline once and remember what smoothing needs for the next one."""
        if isinstance(now_ns, bool) or not isinstance(now_ns, int):
            raise TypeError("now_ns must be an int of nanoseconds")
        if self._last_ns is not None and now_ns < self._last_ns:
            raise ValueError(f"time went backwards: now_ns {now_ns} < last rebalance {self._last_ns}")
        if not inputs.symbols:
            raise ValueError("rebalance needs at least one symbol")
        pf, sm = self.portfolio, self.smoothing
        lo, hi = pf.min_weight, pf.max_weight
        syms = sorted(inputs.symbols)
        n = len(syms)

        # 1. weights: mode -> clamp/redistribute -> EMA -> fit again (no drift).
        w_mode, vols = self._mode_weights(syms, inputs)
        check_weights(w_mode, lo, hi, "mode weights")
        a = pf.ema_alpha
        if self._weights and a < 1.0:
            blended = [a * w_mode[i] + (1.0 - a) * self._weights.get(s, w_mode[i]) for i, s in enumerate(syms)]
            w = fit_weights(blended, lo, hi)
        else:
            w = w_mode
        check_weights(w, lo, hi, "smoothed weights")

        # 2. soft (L5, F3.6b): drawdown from the equity high-water mark, integer permille.
        hwm = self._hwm
        if inputs.equity_usd is not None and math.isfinite(inputs.equity_usd):
            hwm = max(hwm, float(inputs.equity_usd))
            dd_bps = drawdown_bps(hwm, float(inputs.equity_usd))
        else:
            dd_bps = self.last.drawdown_bps if self.last is not None else 0
        soft_pm = soft_factor_permille(dd_bps, self.budget.drawdown_soft_cap_ratio, self.budget.pnl_sensitivity_ratio)
        soft = soft_pm / 1000.0
        avail = float(pf.budget_usd)
        if inputs.budget_available_usd is not None and math.isfinite(inputs.budget_available_usd):
            avail = max(0.0, min(avail, float(inputs.budget_available_usd)))
        deploy = avail * soft
        t = [wi * deploy for wi in w]
        totals: list[tuple[str, float]] = [("soft", _fsum(t))]

        # 3. attenuation stages, each a factor in [0, 1] per symbol.
        c = pf.cost
        cost_f, fill_f, liq_f, turn_f = [0.0] * n, [0.0] * n, [0.0] * n, [0.0] * n
        cost_bps_l, slip_l, fee_l = [0.0] * n, [0.0] * n, [0.0] * n
        for i, s in enumerate(syms):
            si = inputs.symbols[s]
            sc = self._cost_for(s)
            k = sc.k if si.k_eff is None or not math.isfinite(si.k_eff) else max(0.0, si.k_eff)
            cap = c.max_slippage_bps_cap if si.cap_eff_bps is None or not math.isfinite(si.cap_eff_bps) else si.cap_eff_bps
            slip = slippage_bps(t[i], base_bps=sc.base_bps, k_bps_per_kusd=k, cap_bps=cap,
                                spread_bps=_obs(si.spread_bps), volume_usd=_obs(si.volume_usd),
                                use_shadow_spread=c.use_shadow_spread, use_shadow_volume=c.use_shadow_volume,
                                min_volume_usd=c.min_volume_usd)
            cost_bps_l[i], slip_l[i], fee_l[i] = sc.fee_bps + slip, slip, sc.fee_bps
            cost_f[i] = cost_attenuation(sc.fee_bps + slip, c.cost_sensitivity)
            fill_f[i] = fill_rate_attenuation(si.fill_rate, sc.fill_floor, sc.fill_sens)
            liq_f[i] = liquidity_attenuation(si.depth_usd, sc.liq_target, sc.liq_sens, sc.liq_floor)
            turn_f[i] = turnover_factor(si.turnover_usd, avail, w[i], sc.turn_sens, sc.turn_floor)
        for name, f in (("cost", cost_f), ("fill", fill_f), ("liq", liq_f), ("turnover", turn_f)):
            t = [t[i] * f[i] for i in range(n)]
            totals.append((name, _fsum(t)))

        # 4. fee bias: a global lean up, capped by config and by the room left in the budget.
        bias = max(0.0, min(float(inputs.fee_bias_ratio), float(sm.fee_bias_cap_ratio)))
        if not math.isfinite(bias):
            bias = 0.0
        total = _fsum(t)
        if bias > 0.0 and total > 0.0:
            bias = min(bias, max(0.0, deploy / total - 1.0))
            t = [x * (1.0 + bias) for x in t]
        else:
            bias = 0.0
        totals.append(("fee_bias", _fsum(t)))

        # 5. smoothing: cap each change, the cap shrinking down the backoff ladder on breach.
        breach = bool(inputs.skew_breach)
        if not breach and self.pos_skew is not None:
            breach = pos_skew_breached({s: inputs.symbols[s].position_usd for s in syms},
                                       {s: inputs.symbols[s].color for s in syms},
                                       self.pos_skew.per_symbol_abs_limit, self.pos_skew.per_color_abs_limit)
        level, clean = step_backoff(self._level, self._clean, breach, len(self._steps))
        mult = self._steps[level]
        desired = t
        t = [0.0] * n
        d_raw, d_cap, d_app, capped = [0.0] * n, [0.0] * n, [0.0] * n, [False] * n
        for i, s in enumerate(syms):
            cur = self._targets.get(s)
            if cur is None:  # first sight: nothing to change from, start at the target
                t[i] = desired[i]
                continue
            d_raw[i] = desired[i] - cur
            d_cap[i] = delta_cap_usd(cur, sm.max_delta_ratio, sm.max_delta_abs, mult)
            if abs(d_raw[i]) > d_cap[i]:
                capped[i] = True
                t[i] = max(0.0, cur + math.copysign(d_cap[i], d_raw[i]))
            else:
                t[i] = desired[i]
            d_app[i] = t[i] - cur
        totals.append(("smoothing", _fsum(t)))

        # 6. final normalization: all targets together within budget_available * soft.
        total = _fsum(t)
        norm = deploy / total if total > deploy and total > 0 else 1.0
        if norm != 1.0:
            t = [x * norm for x in t]
        totals.append(("norm", _fsum(t)))

        # 7. min_guard: dust is zero.
        floor_usd = float(self.budget.min_target_usd)
        guard = [0.0 if x < floor_usd else 1.0 for x in t]
        t = [x * g for x, g in zip(t, guard)]
        totals.append(("min_guard", _fsum(t)))

        # Invariants, asserted every rebalance.
        check_weights(w, lo, hi, "final weights")
        if any(not math.isfinite(x) or x < 0 for x in t):
            raise InvariantError(f"targets must be finite and >= 0: {t!r}")
        if _fsum(t) > deploy * (1.0 + 1e-9) + 1e-9:
            raise InvariantError(f"targets sum {_fsum(t)!r} exceeds budget_available*soft {deploy!r}")

        out = tuple(
            SymbolAllocation(
                symbol=s, weight=w[i], mode_weight=w_mode[i], target_usd=t[i], desired_usd=desired[i],
                max_levels=max_levels_for(w[i], hi, pf.levels_per_side_min, pf.levels_per_side_max),
                soft_factor=soft, cost_factor=cost_f[i], fill_factor=fill_f[i], liq_factor=liq_f[i],
                turnover_factor=turn_f[i], fee_bias_factor=1.0 + bias, norm_factor=norm, min_guard_factor=guard[i],
                cost_bps=cost_bps_l[i], slippage_bps=slip_l[i], fee_bps=fee_l[i], vol=vols[i],
                delta_raw_usd=d_raw[i], delta_cap_usd=d_cap[i], delta_applied_usd=d_app[i],
                delta_capped=capped[i],
            )
            for i, s in enumerate(syms)
        )
        alloc = Allocation(
            ts_ns=now_ns, mode=pf.mode, budget_usd=float(pf.budget_usd), budget_available_usd=avail, deploy_usd=deploy,
            hwm_equity_usd=hwm, drawdown_bps=dd_bps, soft_permille=soft_pm, backoff_level=level,
            backoff_multiplier=mult, skew_breach=breach, fee_bias_ratio=bias, symbols=out,
            stage_totals_usd=tuple(totals),
        )
        # Commit state only now: a rebalance that raised leaves the allocator as it was.
        self._hwm, self._level, self._clean = hwm, level, clean
        self._last_vol.update(zip(syms, vols))
        self._weights = dict(zip(syms, w))
        self._targets = dict(zip(syms, t))
        self._last_ns = now_ns
        self._force = False
        self.last = alloc
        return alloc
