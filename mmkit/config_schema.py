"""The config schema: one frozen dataclass per concern, with the seed's defaults.

Why a module of its own: the schema is data that several parts read (the loader, the
overlay and grid validators, ``describe``, the docs test), while the loading mechanics
live in ``config.py``.  Units live in the field names (``_bps``, ``_usd``, ``_ratio``,
``_ms``, ``_sec``) and the loader enforces the units policy from those suffixes, so adding
a field with a unit suffix gets its range check for free.

Cross-field rules that a field-level check cannot see go in a section's ``check()``
method, which returns ``(code, relative_path, message)`` problems.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Problem = tuple[str, str, str]


# ----------------------------------------------------------------------------- strategy
@dataclass(frozen=True, slots=True)
class FixedParams:
    """The plain baseline: one quote per side at reservation -/+ ``half_spread_ticks``."""

    half_spread_ticks: float = 3.0
    skew_ticks: float = 0.5
    order_qty: float = 0.01
    max_position: float = 0.2

    def check(self) -> list[Problem]:
        out: list[Problem] = []
        if self.half_spread_ticks <= 0:
            out.append(("E_CFG_RANGE", "half_spread_ticks", "must be > 0"))
        if self.order_qty <= 0:
            out.append(("E_CFG_RANGE", "order_qty", "must be > 0"))
        if self.max_position <= 0:
            out.append(("E_CFG_RANGE", "max_position", "must be > 0"))
        if self.skew_ticks < 0:
            out.append(("E_CFG_RANGE", "skew_ticks", "must be >= 0"))
        return out


@dataclass(frozen=True, slots=True)
class AvellanedaParams:
    """Avellaneda-Stoikov: risk aversion ``gamma``, order-arrival decay ``kappa``, horizon."""

    gamma: float = 0.1
    kappa: float = 1.5
    horizon_sec: float = 60.0
    order_qty: float = 0.01
    max_position: float = 0.2

    def check(self) -> list[Problem]:
        out: list[Problem] = []
        for name in ("gamma", "kappa", "order_qty", "max_position", "horizon_sec"):
            if getattr(self, name) <= 0:
                out.append(("E_CFG_RANGE", name, "must be > 0"))
        return out


@dataclass(frozen=True, slots=True)
class StrategyConfig:
    """Quoting model and its parameters (seed "Quick Start", "M0.2 - Order aging")."""

    model: Literal["vol", "avellaneda", "fixed"] = "vol"
    k_vola_spread: float = 1.0
    skew_coeff: float = 0.3
    levels_per_side: int = 3
    level_spacing_coeff: float = 0.4
    min_time_in_book_ms: int = 500
    replace_threshold_bps: float = 3.0
    imbalance_cutoff: float = 0.65
    order_ttl_ms: int = 800
    price_drift_bps: float = 2.0
    enable_anti_stale_guard: bool = True
    fixed: FixedParams = field(default_factory=FixedParams)
    avellaneda: AvellanedaParams = field(default_factory=AvellanedaParams)

    def check(self) -> list[Problem]:
        out: list[Problem] = []
        if self.levels_per_side < 1:
            out.append(("E_CFG_RANGE", "levels_per_side", "must be >= 1 (0 levels quotes nothing)"))
        for name in ("k_vola_spread", "skew_coeff", "level_spacing_coeff"):
            if getattr(self, name) < 0:
                out.append(("E_CFG_RANGE", name, "must be >= 0"))
        if not 0.0 < self.imbalance_cutoff <= 1.0:
            out.append(("E_CFG_RANGE", "imbalance_cutoff", "must be in (0, 1]"))
        if self.replace_threshold_bps < 0:
            out.append(("E_CFG_RANGE", "replace_threshold_bps", "must be >= 0"))
        return out


@dataclass(frozen=True, slots=True)
class TradingConfig:
    """What to trade and the flat fee schedule (negative maker = rebate)."""

    symbols: list[str] = field(default_factory=lambda: ["BTCUSDT"])
    maker_fee_bps: float = 1.0
    taker_fee_bps: float = 5.0
    post_only: bool = True

    def check(self) -> list[Problem]:
        out: list[Problem] = []
        if not self.symbols:
            out.append(("E_CFG_RANGE", "symbols", "needs at least one symbol"))
        if len(set(self.symbols)) != len(self.symbols):
            out.append(("E_CFG_RANGE", "symbols", "has duplicates"))
        if self.taker_fee_bps < self.maker_fee_bps:
            out.append(("E_CFG_RANGE", "taker_fee_bps", "must be >= maker_fee_bps"))
        return out


@dataclass(frozen=True, slots=True)
class RiskConfig:
    """Hard risk limits. ``*_pct`` fields here are fractions (0.05 = 5%), as in the seed."""

    max_position_usd: float = 10000.0
    max_drawdown_pct: float = 0.05
    risk_pause_threshold: float = 0.03

    def check(self) -> list[Problem]:
        out: list[Problem] = []
        for name in ("max_drawdown_pct", "risk_pause_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                out.append(("E_CFG_RANGE", name, "is a fraction and must be in [0, 1] (0.05 = 5%)"))
        if 0 < self.max_drawdown_pct < self.risk_pause_threshold:
            out.append(("E_CFG_RANGE", "risk_pause_threshold", "must be <= max_drawdown_pct: the pause has to come before the stop"))
        return out


# ----------------------------------------------------------------------------- portfolio
@dataclass(frozen=True, slots=True)
class CostOverride:
    """Per-symbol overrides of the cost/fill-rate/liquidity/turnover stages (None = global)."""

    fee_bps: float | None = None
    slippage_bps_base: float | None = None
    slippage_k_bps_per_kusd: float | None = None
    fill_rate_floor: float | None = None
    fill_rate_sensitivity: float | None = None
    liquidity_depth_usd_target: float | None = None
    liquidity_sensitivity: float | None = None
    liquidity_min_floor: float | None = None
    turnover_sensitivity: float | None = None
    turnover_floor: float | None = None


@dataclass(frozen=True, slots=True)
class CostConfig:
    """Attenuation stages L6-L7 (seed "L6 - Cost/Slippage allocator" .. "L7 - Turnover")."""

    fee_bps_default: float = 1.0
    slippage_bps_base: float = 0.5
    slippage_k_bps_per_kusd: float = 0.1
    cost_sensitivity: float = 0.5
    use_shadow_spread: bool = True
    use_shadow_volume: bool = True
    min_volume_usd: float = 1000.0
    max_slippage_bps_cap: float = 50.0
    fill_rate_half_life_sec: float = 600.0
    fill_rate_floor: float = 0.0
    fill_rate_sensitivity: float = 0.0
    liquidity_depth_usd_target: float = 0.0
    liquidity_sensitivity: float = 0.0
    liquidity_min_floor: float = 0.0
    turnover_half_life_sec: float = 600.0
    turnover_sensitivity: float = 0.0
    turnover_floor: float = 0.0
    per_symbol: dict[str, CostOverride] = field(default_factory=dict)

    def check(self) -> list[Problem]:
        out: list[Problem] = []
        for name in ("cost_sensitivity", "fill_rate_floor", "fill_rate_sensitivity", "liquidity_sensitivity",
                     "liquidity_min_floor", "turnover_sensitivity", "turnover_floor"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                out.append(("E_CFG_RANGE", name, "must be in [0, 1]"))
        for name in ("fill_rate_half_life_sec", "turnover_half_life_sec"):
            if getattr(self, name) < 10:
                out.append(("E_CFG_RANGE", name, "must be >= 10"))
        for name in ("max_slippage_bps_cap", "slippage_k_bps_per_kusd", "slippage_bps_base"):
            if getattr(self, name) < 0:
                out.append(("E_CFG_RANGE", name, "must be >= 0"))
        for sym, ov in self.per_symbol.items():
            for name in ("fill_rate_floor", "fill_rate_sensitivity", "liquidity_sensitivity", "liquidity_min_floor",
                         "turnover_sensitivity", "turnover_floor"):
                value = getattr(ov, name)
                if value is not None and not 0.0 <= value <= 1.0:
                    out.append(("E_CFG_RANGE", f"per_symbol.{sym}.{name}", "must be in [0, 1]"))
            for name in ("slippage_bps_base", "slippage_k_bps_per_kusd"):
                value = getattr(ov, name)
                if value is not None and value < 0:
                    out.append(("E_CFG_RANGE", f"per_symbol.{sym}.{name}", "must be >= 0"))
        return out


@dataclass(frozen=True, slots=True)
class BudgetConfig:
    """Drawdown softening of the budget and the dust guard (0 = off)."""

    drawdown_soft_cap_ratio: float = 0.0
    pnl_sensitivity_ratio: float = 0.0
    min_target_usd: float = 0.0


@dataclass(frozen=True, slots=True)
class PortfolioConfig:
    """Budget split across symbols (seed "Portfolio Allocator (L1/L2)")."""

    budget_usd: float = 10000.0
    mode: Literal["manual", "inverse_vol", "risk_parity"] = "inverse_vol"
    manual_weights: dict[str, float] = field(default_factory=dict)
    min_weight: float = 0.02
    max_weight: float = 0.5
    rebalance_minutes: float = 5.0
    ema_alpha: float = 0.3
    levels_per_side_min: int = 1
    levels_per_side_max: int = 10
    cost: CostConfig = field(default_factory=CostConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)

    def check(self) -> list[Problem]:
        out: list[Problem] = []
        if not 0.0 <= self.min_weight <= 1.0:
            out.append(("E_CFG_RANGE", "min_weight", "must be in [0, 1]"))
        if not 0.0 < self.max_weight <= 1.0:
            out.append(("E_CFG_RANGE", "max_weight", "must be in (0, 1]"))
        if self.min_weight > self.max_weight:
            out.append(("E_CFG_WEIGHTS", "min_weight", f"{self.min_weight} > max_weight {self.max_weight}"))
        if not 0.0 < self.ema_alpha <= 1.0:
            out.append(("E_CFG_RANGE", "ema_alpha", "must be in (0, 1]"))
        if self.levels_per_side_min < 1 or self.levels_per_side_max < self.levels_per_side_min:
            out.append(("E_CFG_RANGE", "levels_per_side_max", "need 1 <= levels_per_side_min <= levels_per_side_max"))
        if self.rebalance_minutes <= 0:
            out.append(("E_CFG_RANGE", "rebalance_minutes", "must be > 0"))
        for sym, w in self.manual_weights.items():
            if w < 0:
                out.append(("E_CFG_RANGE", f"manual_weights.{sym}", "weights must be >= 0"))
        if self.mode == "manual" and self.manual_weights and sum(self.manual_weights.values()) <= 0:
            out.append(("E_CFG_WEIGHTS", "manual_weights", "must have a positive sum in manual mode"))
        return out


# ----------------------------------------------------------------------------- guards
@dataclass(frozen=True, slots=True)
class PosSkewConfig:
    """Position Skew Guard limits in USD (0 = disabled)."""

    per_symbol_abs_limit: float = 1000.0
    per_color_abs_limit: float = 2000.0

    def check(self) -> list[Problem]:
        return [("E_CFG_RANGE", n, "must be >= 0 (USD, 0 = disabled)")
                for n in ("per_symbol_abs_limit", "per_color_abs_limit") if getattr(self, n) < 0]


@dataclass(frozen=True, slots=True)
class IntradayCapsConfig:
    """Per-UTC-day stops (0 = disabled): PnL stop (EUR in the seed, USD here), turnover, vol."""

    daily_pnl_stop: float = 0.0
    daily_turnover_cap: float = 0.0
    daily_vol_cap: float = 0.0

    def check(self) -> list[Problem]:
        return [("E_CFG_RANGE", n, "must be >= 0 (0 = disabled)")
                for n in ("daily_pnl_stop", "daily_turnover_cap", "daily_vol_cap") if getattr(self, n) < 0]


@dataclass(frozen=True, slots=True)
class GuardsConfig:
    pos_skew: PosSkewConfig = field(default_factory=PosSkewConfig)
    intraday_caps: IntradayCapsConfig = field(default_factory=IntradayCapsConfig)


# ----------------------------------------------------------------------------- fees
@dataclass(frozen=True, slots=True)
class FeeTier:
    """One VIP tier: reached at ``min_volume_usd`` of 30-day volume."""

    level: int = 0
    min_volume_usd: float = 0.0
    maker_bps: float = 2.0
    taker_bps: float = 5.5


def _bybit_tiers() -> list[FeeTier]:
    # Bybit derivatives VIP schedule by 30-day volume (USD): maker/taker bps. Check it
    # against the exchange's current page before relying on it; override in config.
    rows = [(0, 0.0, 2.0, 5.5), (1, 10e6, 1.8, 4.0), (2, 25e6, 1.6, 3.75), (3, 50e6, 1.4, 3.5),
            (4, 100e6, 1.2, 3.2), (5, 250e6, 1.0, 3.2)]
    return [FeeTier(level=lv, min_volume_usd=v, maker_bps=m, taker_bps=t) for lv, v, m, t in rows]


@dataclass(frozen=True, slots=True)
class BybitFeesConfig:
    """VIP fee awareness (seed "VIP Fee Awareness")."""

    distance_usd_threshold: float = 25000.0
    min_improvement_bps: float = 0.2
    tiers: list[FeeTier] = field(default_factory=_bybit_tiers)

    def check(self) -> list[Problem]:
        out: list[Problem] = []
        if not self.tiers:
            out.append(("E_CFG_FEE_TIERS", "tiers", "needs at least one tier"))
            return out
        if self.tiers[0].min_volume_usd != 0:
            out.append(("E_CFG_FEE_TIERS", "tiers[0].min_volume_usd", "the first tier must start at 0"))
        for i in range(1, len(self.tiers)):
            prev, cur = self.tiers[i - 1], self.tiers[i]
            if cur.min_volume_usd <= prev.min_volume_usd or cur.level <= prev.level:
                out.append(("E_CFG_FEE_TIERS", f"tiers[{i}]", "tiers must be in increasing level and min_volume_usd order"))
            if cur.maker_bps > prev.maker_bps or cur.taker_bps > prev.taker_bps:
                out.append(("E_CFG_FEE_TIERS", f"tiers[{i}]", "a higher tier may not charge more than the one below"))
        return out


@dataclass(frozen=True, slots=True)
class FeesConfig:
    bybit: BybitFeesConfig = field(default_factory=BybitFeesConfig)


# ----------------------------------------------------------------------------- allocator
@dataclass(frozen=True, slots=True)
class SmoothingConfig:
    """Allocator smoothing: delta cap with backoff on skew breach (seed "Allocator smoothing")."""

    max_delta_ratio: float = 0.15
    max_delta_abs: float = 50.0
    backoff_steps: list[float] = field(default_factory=lambda: [1.0, 0.7, 0.5])
    bias_cap_ratio: float = 0.10
    fee_bias_cap_ratio: float = 0.05

    def check(self) -> list[Problem]:
        out: list[Problem] = []
        if not self.backoff_steps or any(not 0.0 < s <= 1.0 for s in self.backoff_steps):
            out.append(("E_CFG_RANGE", "backoff_steps", "needs one or more multipliers in (0, 1]"))
        elif any(b > a for a, b in zip(self.backoff_steps, self.backoff_steps[1:])):
            out.append(("E_CFG_RANGE", "backoff_steps", "must be non-increasing"))
        if self.max_delta_abs < 0:
            out.append(("E_CFG_RANGE", "max_delta_abs", "must be >= 0"))
        return out


@dataclass(frozen=True, slots=True)
class AllocatorConfig:
    smoothing: SmoothingConfig = field(default_factory=SmoothingConfig)


# ----------------------------------------------------------------------------- latency boost
@dataclass(frozen=True, slots=True)
class ReplaceThrottleConfig:
    max_concurrent: int = 2
    min_interval_ms: int = 60

    def check(self) -> list[Problem]:
        return [("E_CFG_RANGE", "max_concurrent", "must be >= 1")] if self.max_concurrent < 1 else []


@dataclass(frozen=True, slots=True)
class TailBatchConfig:
    tail_age_ms: int = 800
    max_batch: int = 10
    jitter_ms: int = 0

    def check(self) -> list[Problem]:
        return [("E_CFG_RANGE", "max_batch", "must be >= 1")] if self.max_batch < 1 else []


@dataclass(frozen=True, slots=True)
class LatencyBoostConfig:
    """Per-symbol replace throttle and tail batch-cancel (seed "Latency Boost")."""

    replace: ReplaceThrottleConfig = field(default_factory=ReplaceThrottleConfig)
    tail_batch: TailBatchConfig = field(default_factory=TailBatchConfig)


# ----------------------------------------------------------------------------- circuit / throttle
@dataclass(frozen=True, slots=True)
class CircuitConfig:
    """Circuit breaker over API outcomes (seed "Circuit Breaker")."""

    window_sec: float = 60.0
    err_rate_open: float = 0.5
    http_5xx_rate_open: float = 0.2
    http_429_rate_open: float = 0.2
    open_duration_sec: float = 30.0
    half_open_probes: int = 5
    cooldown_sec: float = 5.0
    min_requests: int = 10

    def check(self) -> list[Problem]:
        out: list[Problem] = []
        for name in ("err_rate_open", "http_5xx_rate_open", "http_429_rate_open"):
            if not 0.0 < getattr(self, name) <= 1.0:
                out.append(("E_CFG_RANGE", name, "is a rate and must be in (0, 1]"))
        if self.window_sec <= 0:
            out.append(("E_CFG_RANGE", "window_sec", "must be > 0"))
        if self.half_open_probes < 1:
            out.append(("E_CFG_RANGE", "half_open_probes", "must be >= 1"))
        if self.min_requests < 0:
            out.append(("E_CFG_RANGE", "min_requests", "must be >= 0"))
        return out


@dataclass(frozen=True, slots=True)
class ThrottleThresholds:
    max_throttle_backoff_ms: int = 5000
    max_throttle_events_in_window_total: int = 50


@dataclass(frozen=True, slots=True)
class ThrottleConfig:
    """Per-(op, symbol) sliding-window limits and adaptive backoff (seed "Throttle & Backoff")."""

    window_sec: int = 3
    creates_per_sec: float = 10.0
    amends_per_sec: float = 20.0
    cancels_per_sec: float = 25.0
    backoff_base_ms: int = 200
    backoff_cap_ms: int = 5000
    error_rate_trigger_ratio: float = 0.05
    ws_lag_trigger_ms: int = 3000
    jitter_ratio: float = 0.10
    # YAML key ``global`` (a Python keyword, hence the metadata alias).
    global_thresholds: ThrottleThresholds = field(default_factory=ThrottleThresholds, metadata={"key": "global"})
    per_symbol: dict[str, ThrottleThresholds] = field(default_factory=dict)

    def check(self) -> list[Problem]:
        out: list[Problem] = []
        if self.window_sec < 1:
            out.append(("E_CFG_RANGE", "window_sec", "must be >= 1"))
        for name in ("creates_per_sec", "amends_per_sec", "cancels_per_sec"):
            if getattr(self, name) <= 0:
                out.append(("E_CFG_RANGE", name, "must be > 0"))
        for name in ("creates_per_sec", "amends_per_sec", "cancels_per_sec"):
            if 0 < getattr(self, name) * self.window_sec < 1:
                out.append(("E_CFG_RANGE", name, f"x window_sec must be >= 1, or no {name.split('_')[0][:-1]} is ever allowed"))
        if self.backoff_base_ms < 1:
            out.append(("E_CFG_RANGE", "backoff_base_ms", "must be >= 1"))
        if self.backoff_cap_ms < self.backoff_base_ms:
            out.append(("E_CFG_RANGE", "backoff_cap_ms", "must be >= backoff_base_ms"))
        if not 0.0 <= self.jitter_ratio < 1.0:
            out.append(("E_CFG_RANGE", "jitter_ratio", "must be in [0, 1)"))
        for where, th in [("global", self.global_thresholds), *((f"per_symbol.{k}", v) for k, v in self.per_symbol.items())]:
            if th.max_throttle_backoff_ms < 0 or th.max_throttle_events_in_window_total < 0:
                out.append(("E_CFG_RANGE", where, "thresholds must be >= 0"))
        return out


# ----------------------------------------------------------------------------- rollout / canary
@dataclass(frozen=True, slots=True)
class RolloutConfig:
    """Blue/green split; ``blue``/``green`` are dotted-key overlays on this config."""

    traffic_split_pct: int = 0
    blue: dict[str, Any] = field(default_factory=dict)
    green: dict[str, Any] = field(default_factory=dict)

    def check(self) -> list[Problem]:
        return [] if 0 <= self.traffic_split_pct <= 100 else [("E_CFG_RANGE", "traffic_split_pct", "must be in [0, 100]")]


@dataclass(frozen=True, slots=True)
class CanaryGateConfig:
    """F2 canary gate thresholds (seed "S3 - F2 gate", "S3.2", "S3.3", "M1.1")."""

    max_reject_delta: float = 0.02
    max_latency_delta_ms: int = 50
    min_sample_fills: int = 500
    drift_cap_pct: float = 5.0
    tail_min_sample: int = 200
    tail_p95_cap_ms: int = 50
    tail_p99_cap_ms: int = 100
    slo_tail_min_sample: int = 200
    slo_tail_p95_cap_ms: int = 50
    slo_tail_p99_cap_ms: int = 100
    markout_min_sample: int = 50
    markout_cap_bps_200: float = 0.5
    markout_cap_bps_500: float = 0.5
    max_throttle_backoff_ms: int = 5000
    max_throttle_events_in_window_total: int = 50
    max_autopolicy_level_on_promote: int = 1


@dataclass(frozen=True, slots=True)
class KillswitchConfig:
    """Canary kill switch (seed "F4 - Canary kill-switch")."""

    enabled: bool = False
    dry_run: bool = True
    max_reject_delta: float = 0.02
    max_latency_delta_ms: int = 50
    min_fills: int = 100
    action: Literal["rollback", "freeze"] = "rollback"

    def check(self) -> list[Problem]:
        out: list[Problem] = []
        if not 0.0 <= self.max_reject_delta <= 1.0:
            out.append(("E_CFG_RANGE", "max_reject_delta", "is a rate delta and must be in [0, 1]"))
        if self.min_fills < 0:
            out.append(("E_CFG_RANGE", "min_fills", "must be >= 0"))
        return out


@dataclass(frozen=True, slots=True)
class AutopolicyConfig:
    level_max: int = 3
    soft_canary_shrink_pct: float = 25.0
    soft_tib_bump_pct: float = 15.0
    soft_repbps_bump_pct: float = 15.0


@dataclass(frozen=True, slots=True)
class CanaryConfig:
    export_interval_sec: int = 60
    min_sample_fills: int = 500


# ----------------------------------------------------------------------------- signals / logging / venue
@dataclass(frozen=True, slots=True)
class SignalsConfig:
    """Signal estimators (seed "Micro Signals", "M1 - Markout")."""

    vol_half_life_sec: float = 30.0
    trade_intensity_half_life_sec: float = 10.0
    imbalance_levels: int = 5
    imbalance_bias_bps: float = 0.5
    microprice_weight_ratio: float = 0.5
    impact_cap_ratio: float = 0.10
    markout_horizons_ms: list[int] = field(default_factory=lambda: [200, 500])

    def check(self) -> list[Problem]:
        out: list[Problem] = []
        if self.imbalance_levels < 1:
            out.append(("E_CFG_RANGE", "imbalance_levels", "must be >= 1"))
        for name in ("vol_half_life_sec", "trade_intensity_half_life_sec"):
            if getattr(self, name) <= 0:
                out.append(("E_CFG_RANGE", name, "must be > 0"))
        if any(h <= 0 for h in self.markout_horizons_ms):
            out.append(("E_CFG_RANGE", "markout_horizons_ms", "horizons must be > 0"))
        return out


_MUX_PROFILES = ("Conservative", "Moderate", "Aggressive")
_MUX_REGIMES = ("low", "mid", "high")


def _mux_weights() -> dict[str, dict[str, float]]:
    rows = {"low": (0.2, 0.4, 0.4), "mid": (0.4, 0.4, 0.2), "high": (0.7, 0.3, 0.0)}
    return {r: dict(zip(_MUX_PROFILES, w)) for r, w in rows.items()}


@dataclass(frozen=True, slots=True)
class MuxConfig:
    """Multi-strategy mux (seed "Multi-Strategy Mux"): sigma bands in bps per sqrt(s)."""

    band_edges: list[float] = field(default_factory=lambda: [0.8, 1.5, 9.99])
    weights: dict[str, dict[str, float]] = field(default_factory=_mux_weights)
    weight_caps: dict[str, float] = field(default_factory=lambda: {"Conservative": 1.0, "Moderate": 1.0, "Aggressive": 0.35})
    hysteresis_sec: float = 60.0

    def check(self) -> list[Problem]:
        out: list[Problem] = []
        e = self.band_edges
        if len(e) != 3 or not 0 < e[0] < e[1] <= e[2]:
            out.append(("E_CFG_RANGE", "band_edges", "needs 3 edges with 0 < low/mid < mid/high <= top"))
        if set(self.weights) != set(_MUX_REGIMES):
            out.append(("E_CFG_RANGE", "weights", f"needs exactly the regimes {', '.join(_MUX_REGIMES)}"))
        for regime, row in self.weights.items():
            bad = sorted(set(row) - set(_MUX_PROFILES))
            if bad or any(w < 0 for w in row.values()) or sum(row.values()) <= 0:
                out.append(("E_CFG_RANGE", f"weights.{regime}",
                            f"profiles {', '.join(_MUX_PROFILES)} with weights >= 0 and a positive sum"))
        bad = sorted(set(self.weight_caps) - set(_MUX_PROFILES))
        caps = [self.weight_caps.get(p, 1.0) for p in _MUX_PROFILES]
        if bad or any(not 0 <= c <= 1 for c in caps):
            out.append(("E_CFG_RANGE", "weight_caps", f"caps in [0, 1] for {', '.join(_MUX_PROFILES)}"))
        elif sum(caps) < 1.0:
            out.append(("E_CFG_RANGE", "weight_caps", "caps sum below 1: the weights could never sum to 1"))
        return out


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["logfmt", "json"] = "logfmt"


@dataclass(frozen=True, slots=True)
class BybitVenueConfig:
    """Live venue credentials. Prefer the environment (BYBIT_API_KEY/BYBIT_API_SECRET):
    values here are secrets, excluded from ``cfg_hash`` and redacted in ``describe``."""

    testnet: bool = True
    api_key: str = ""
    api_secret: str = ""
    recv_window_ms: int = 5000


@dataclass(frozen=True, slots=True)
class VenueConfig:
    name: Literal["replay", "bybit"] = "replay"
    bybit: BybitVenueConfig = field(default_factory=BybitVenueConfig)


# ----------------------------------------------------------------------------- backtest / fill simulation
@dataclass(frozen=True, slots=True)
class FillSimConfig:
    """The simulated venue (docs/fillsim.md): queue and latency models by name."""

    queue_model: Literal["risk_averse", "prob_power", "prob_log", "optimistic"] = "risk_averse"
    queue_params: dict[str, float] = field(default_factory=dict)
    latency_model: Literal["constant", "normal", "empirical"] = "constant"
    latency_params: dict[str, float] = field(default_factory=lambda: {"entry_ms": 10.0, "response_ms": 10.0})
    latency_file: str = ""
    toxic_sweep_prob: float = 0.0
    extra_slippage_bps: float = 0.0
    cross_fills: bool = True

    def check(self) -> list[Problem]:
        out: list[Problem] = []
        if not 0.0 <= self.toxic_sweep_prob <= 1.0:
            out.append(("E_CFG_RANGE", "toxic_sweep_prob", "is a probability and must be in [0, 1]"))
        if self.extra_slippage_bps < 0:
            out.append(("E_CFG_RANGE", "extra_slippage_bps", "must be >= 0"))
        if self.latency_model == "empirical" and not self.latency_file:
            out.append(("E_CFG_RANGE", "latency_file", "the empirical latency model needs a file of recorded latencies"))
        return out


@dataclass(frozen=True, slots=True)
class BacktestGatesConfig:
    """Release gates on a backtest (seed "Backtest Pipe" defaults)."""

    min_net_bps: float = 2.5
    max_taker_share_pct: float = 15.0
    max_order_age_p95_ms: float = 350.0


@dataclass(frozen=True, slots=True)
class BacktestConfig:
    """How the engine replays history (docs/backtest.md)."""

    decision_interval_ms: int = 100
    feed_clock: Literal["auto", "raw", "offset"] = "auto"
    feed_clock_offset_ns: int = 0
    equity_interval_ms: int = 1000
    replace_policy: Literal["amend", "cancel_replace"] = "amend"
    gates: BacktestGatesConfig = field(default_factory=BacktestGatesConfig)

    def check(self) -> list[Problem]:
        return [] if self.equity_interval_ms >= 1 else [("E_CFG_RANGE", "equity_interval_ms", "must be >= 1")]


# ----------------------------------------------------------------------------- root
@dataclass(frozen=True, slots=True)
class Config:
    """The whole mmkit config. Every section is optional in YAML and defaults as documented."""

    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    trading: TradingConfig = field(default_factory=TradingConfig)
    risk: RiskConfig = field(default_factory=RiskConfig)
    portfolio: PortfolioConfig = field(default_factory=PortfolioConfig)
    guards: GuardsConfig = field(default_factory=GuardsConfig)
    fees: FeesConfig = field(default_factory=FeesConfig)
    allocator: AllocatorConfig = field(default_factory=AllocatorConfig)
    latency_boost: LatencyBoostConfig = field(default_factory=LatencyBoostConfig)
    circuit: CircuitConfig = field(default_factory=CircuitConfig)
    throttle: ThrottleConfig = field(default_factory=ThrottleConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    canary_gate: CanaryGateConfig = field(default_factory=CanaryGateConfig)
    canary: CanaryConfig = field(default_factory=CanaryConfig)
    killswitch: KillswitchConfig = field(default_factory=KillswitchConfig)
    autopolicy: AutopolicyConfig = field(default_factory=AutopolicyConfig)
    signals: SignalsConfig = field(default_factory=SignalsConfig)
    mux: MuxConfig = field(default_factory=MuxConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    venue: VenueConfig = field(default_factory=VenueConfig)
    backtest: BacktestConfig = field(default_factory=BacktestConfig)
    fillsim: FillSimConfig = field(default_factory=FillSimConfig)

    def check(self) -> list[Problem]:
        out: list[Problem] = []
        n = len(self.trading.symbols)
        pf = self.portfolio
        unknown = sorted(set(pf.manual_weights) - set(self.trading.symbols))
        if unknown:
            out.append(("E_CFG_WEIGHTS", "portfolio.manual_weights",
                        f"names symbols not in trading.symbols: {', '.join(unknown)}"))
        # One symbol takes the whole budget: weight clamps only bind from two symbols on.
        if n >= 2 and pf.min_weight <= pf.max_weight:
            if n * pf.min_weight > 1.0 + 1e-9:
                out.append(("E_CFG_WEIGHTS", "portfolio.min_weight",
                            f"{n} symbols x min_weight {pf.min_weight} > 1: weights cannot sum to 1"))
            if n * pf.max_weight < 1.0 - 1e-9:
                out.append(("E_CFG_WEIGHTS", "portfolio.max_weight",
                            f"{n} symbols x max_weight {pf.max_weight} < 1: weights cannot sum to 1"))
        return out


# Keys whose values are secrets: never hashed, never shown.
SECRET_KEYS = ("api_key", "api_secret", "token", "secret", "password", "passphrase", "hmac_key")

# Keys a profile (MM_PROFILE) may set; anything else in a profile is ignored with a warning.
PROFILE_WHITELIST = (
    "allocator.smoothing",
    "signals",
    "latency_boost.replace",
    "latency_boost.tail_batch",
    "canary",
    "logging",
)

# Legacy key renames: old leaf name -> (new leaf name, value transform).
LEGACY_KEYS: dict[str, tuple[str, float]] = {
    "bias_cap": ("bias_cap_ratio", 1.0),
    "fee_bias_cap": ("fee_bias_cap_ratio", 1.0),
    "fee_bias_cap_bps": ("fee_bias_cap_ratio", 1.0 / 10000.0),
}
