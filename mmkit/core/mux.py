"""Multi-strategy mux: volatility regime -> weights of the quoting profiles.

Seed "Multi-Strategy Mux": the volatility ``sigma`` falls in one of three bands, low
``[0, 0.8)``, mid ``[0.8, 1.5)`` and high ``[1.5, 9.99]`` (anything above 9.99 counts as
high); each regime has a weight per profile (Conservative, Moderate, Aggressive); a
profile's weight is capped (``weight_caps``, e.g. Aggressive <= 0.35) and the weights are
renormalized to sum to 1.0.  Hysteresis: the mux switches regime only after the new band
has held for ``hysteresis_sec`` (60 s) without interruption, so a noisy sigma near a band
edge does not flip the weights back and forth.

``sigma`` is whatever volatility the caller passes; the bands are meant for the signals'
``vol_bps_per_sqrt_s`` (bps per sqrt(second): 0.8 is about 45% a year, 1.5 about 84%).

The weights say how much each profile counts: callers blend per-profile parameter values
with ``MuxDecision.blend`` (e.g. a spread multiplier of 1.5 / 1.0 / 0.7).  The core returns
the seed's ASCII log line (``MuxDecision.log_line``) and does no I/O.

Pure: stdlib only, no clock (time is passed in as integer nanoseconds).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from math import isfinite

__all__ = [
    "PROFILES",
    "REGIMES",
    "MuxParams",
    "MuxDecision",
    "StrategyMux",
    "cap_weights",
    "regime_of",
    "mux_log_line",
]

PROFILES = ("Conservative", "Moderate", "Aggressive")
"""Profile names, in the order of every weights tuple and of the log line."""
REGIMES = ("low", "mid", "high")

NS_PER_S = 1_000_000_000


def _default_weights() -> dict[str, tuple[float, float, float]]:
    return {
        "low": (0.2, 0.4, 0.4),
        "mid": (0.4, 0.4, 0.2),
        "high": (0.7, 0.3, 0.0),
    }


def _default_caps() -> tuple[float, float, float]:
    return (1.0, 1.0, 0.35)


@dataclass(frozen=True, slots=True)
class MuxParams:
    """Mux parameters with the seed's defaults (there is no ``mux:`` config section yet).

    ``band_edges``: the lower edges of mid and high, and the top of high (sigma units).
    ``weights``: regime -> raw (Conservative, Moderate, Aggressive) weights, before caps.
    ``weight_caps``: per-profile maximum weight after renormalization (0..1).
    ``hysteresis_sec``: how long a new band must hold before the regime switches.
    """

    band_edges: tuple[float, float, float] = (0.8, 1.5, 9.99)
    weights: Mapping[str, Sequence[float]] = field(default_factory=_default_weights)
    weight_caps: Sequence[float] = field(default_factory=_default_caps)
    hysteresis_sec: float = 60.0

    def __post_init__(self) -> None:
        lo, hi, top = self.band_edges
        if not 0 < lo < hi <= top:
            raise ValueError(f"band_edges must satisfy 0 < low/mid edge < mid/high edge <= top, got {self.band_edges}")
        if set(self.weights) != set(REGIMES):
            raise ValueError(f"weights needs exactly the regimes {REGIMES}, got {sorted(self.weights)}")
        if len(self.weight_caps) != len(PROFILES) or any(not 0 <= c <= 1 for c in self.weight_caps):
            raise ValueError(f"weight_caps needs {len(PROFILES)} values in [0, 1], got {list(self.weight_caps)}")
        if sum(self.weight_caps) < 1.0 - 1e-12:
            raise ValueError(f"weight_caps sum to {sum(self.weight_caps)} < 1: weights could never sum to 1")
        for regime, ws in self.weights.items():
            if len(ws) != len(PROFILES) or any(not (w >= 0 and isfinite(w)) for w in ws):
                raise ValueError(f"weights[{regime}] needs {len(PROFILES)} finite values >= 0, got {list(ws)}")
        if self.hysteresis_sec < 0:
            raise ValueError(f"hysteresis_sec must be >= 0, got {self.hysteresis_sec}")

    @classmethod
    def from_config(cls, section: object) -> MuxParams:
        """Build from a duck-typed ``mux:`` section; absent fields keep their defaults.

        ``weights`` maps a regime to a list in profile order or to ``{profile: weight}``;
        ``weight_caps`` is a list in profile order or ``{profile: cap}`` (absent = 1.0).
        """
        d = cls()
        edges = getattr(section, "band_edges", None)
        weights = getattr(section, "weights", None)
        caps = getattr(section, "weight_caps", None)
        hyst = getattr(section, "hysteresis_sec", None)
        if isinstance(caps, Mapping):
            caps = {p: 1.0 for p in PROFILES} | dict(caps)
        return cls(
            band_edges=tuple(float(e) for e in edges) if edges else d.band_edges,  # type: ignore[arg-type]
            weights={r: _per_profile(w, f"weights.{r}") for r, w in weights.items()} if weights else d.weights,
            weight_caps=_per_profile(caps, "weight_caps") if caps else d.weight_caps,
            hysteresis_sec=float(hyst) if hyst is not None else d.hysteresis_sec,
        )


def _per_profile(value: Mapping[str, float] | Sequence[float], what: str) -> tuple[float, ...]:
    """Profile-ordered floats from a list or a ``{profile: value}`` mapping (missing = 0)."""
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(PROFILES))
        if unknown:
            raise ValueError(f"{what}: unknown profiles {unknown}; known: {', '.join(PROFILES)}")
        return tuple(float(value.get(p, 0.0)) for p in PROFILES)
    return tuple(float(v) for v in value)


def regime_of(sigma: float, band_edges: tuple[float, float, float] = (0.8, 1.5, 9.99)) -> str:
    """The band of ``sigma``: low ``[0, e0)``, mid ``[e0, e1)``, high ``[e1, inf)``.

    The seed writes the high band as ``[1.5, 9.99]``; a sigma above its top is still high
    (the calmest reading of "very volatile"), not an error.  Negative or non-finite sigma
    is a caller bug and raises ``ValueError``.
    """
    if not (sigma >= 0 and isfinite(sigma)):
        raise ValueError(f"sigma must be finite and >= 0, got {sigma}")
    if sigma < band_edges[0]:
        return "low"
    if sigma < band_edges[1]:
        return "mid"
    return "high"


def cap_weights(raw: Sequence[float], caps: Sequence[float]) -> tuple[float, ...]:
    """Normalize ``raw`` to sum 1 with no weight above its cap (water-filling).

    Normalize; every weight over its cap is pinned to the cap; the rest of the mass is
    spread over the unpinned profiles in proportion to their raw weights (equally if
    those are all 0); repeat until nothing exceeds its cap.  Needs ``sum(caps) >= 1``.
    A zero raw vector gives equal weights (then capped the same way).
    """
    k = len(raw)
    if len(caps) != k:
        raise ValueError("raw weights and caps differ in length")
    if sum(caps) < 1.0 - 1e-12:
        raise ValueError(f"caps sum to {sum(caps)} < 1")
    base = [float(w) for w in raw]
    if sum(base) <= 0:
        base = [1.0] * k
    pinned = [False] * k
    out = [0.0] * k
    for _ in range(k + 1):
        free = [i for i in range(k) if not pinned[i]]
        mass = 1.0 - sum(out[i] for i in range(k) if pinned[i])
        free_raw = sum(base[i] for i in free)
        for i in free:
            out[i] = mass * (base[i] / free_raw if free_raw > 0 else 1.0 / len(free))
        over = [i for i in free if out[i] > caps[i] + 1e-15]
        if not over:
            break
        for i in over:
            pinned[i] = True
            out[i] = float(caps[i])
        if all(pinned):
            break
    return tuple(out)


def mux_log_line(ts_ns: int, sigma: float, regime: str, weights: Sequence[float]) -> str:
    """``MUX ts=<ns> sigma=%.6f regime=<r> weights=Conservative:%.6f,Moderate:%.6f,Aggressive:%.6f``."""
    ws = ",".join(f"{name}:{w:.6f}" for name, w in zip(PROFILES, weights))
    return f"MUX ts={ts_ns} sigma={sigma:.6f} regime={regime} weights={ws}"


@dataclass(frozen=True, slots=True)
class MuxDecision:
    """The mux's answer for one update: regime in force, capped weights, and whether it switched."""

    ts_ns: int
    sigma: float
    regime: str
    weights: tuple[float, float, float]
    switched: bool
    observed_regime: str

    def weight(self, profile: str) -> float:
        return self.weights[PROFILES.index(profile)]

    def blend(self, values: Mapping[str, float]) -> float:
        """``sum(weight[p] * values[p])``: a parameter blended across the profiles."""
        return sum(w * values[p] for p, w in zip(PROFILES, self.weights))

    def log_line(self) -> str:
        """The seed's ASCII line (ts in integer ns, the core's time unit)."""
        return mux_log_line(self.ts_ns, self.sigma, self.regime, self.weights)


class StrategyMux:
    """Regime state machine with hysteresis for one symbol (or one book of symbols).

    ``update(ts_ns, sigma)``: the first call adopts sigma's band at once; afterwards a
    different band becomes a *candidate* and replaces the regime once it has held for
    ``hysteresis_sec`` (``ts - candidate_since >= hysteresis``); a reading back in the
    current band, or in a third band, restarts the candidate.  Times must not go back.
    ``switches`` counts regime changes (the seed's ``strategy_switch_total``).
    """

    __slots__ = ("params", "regime", "candidate", "candidate_since_ns", "last_ts_ns", "switches", "_weights",
                 "_hyst_ns")

    def __init__(self, params: MuxParams | None = None) -> None:
        self.params = params or MuxParams()
        self.regime: str | None = None
        self.candidate: str | None = None
        self.candidate_since_ns = 0
        self.last_ts_ns: int | None = None
        self.switches = 0
        caps = self.params.weight_caps
        self._weights = {r: cap_weights(self.params.weights[r], caps) for r in REGIMES}
        self._hyst_ns = round(self.params.hysteresis_sec * NS_PER_S)

    def weights_for(self, regime: str) -> tuple[float, float, float]:
        """The capped, renormalized weights of a regime."""
        return self._weights[regime]  # type: ignore[return-value]

    def update(self, ts_ns: int, sigma: float) -> MuxDecision:
        if self.last_ts_ns is not None and ts_ns < self.last_ts_ns:
            raise ValueError(f"mux time went back: {ts_ns} < {self.last_ts_ns}")
        self.last_ts_ns = ts_ns
        observed = regime_of(sigma, self.params.band_edges)
        switched = False
        if self.regime is None:
            self.regime = observed
        elif observed == self.regime:
            self.candidate = None
        else:
            if observed != self.candidate:
                self.candidate = observed
                self.candidate_since_ns = ts_ns
            if ts_ns - self.candidate_since_ns >= self._hyst_ns:
                self.regime = observed
                self.candidate = None
                self.switches += 1
                switched = True
        regime = self.regime
        return MuxDecision(ts_ns, sigma, regime, self._weights[regime], switched, observed)  # type: ignore[arg-type]
