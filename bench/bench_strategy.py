"""Benchmark the quoting strategies: decisions (quotes() calls) per second, one symbol.

Input is synthetic and seeded (standalone): a drifting touch around 60,000 USD (tick 0.1,
lot 0.001, min notional 5 USD), signals snapshots with varying volatility, imbalance and
micro bias, and a position that wanders within the limits, so every branch of the hot
path runs.  The vol model quotes 3 levels per side.  Contexts and snapshots are built
before timing; a second figure also times building them per decision (what the engine
pays), and a third the signals snapshot from a real L2Book.

    .venv/bin/python bench/bench_strategy.py [--decisions 100000] [--seed 7] [--repeat 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import time
from decimal import Decimal

from mmkit.core.book import L2Book
from mmkit.core.instruments import Instrument
from mmkit.core.signals import SymbolSignals, make_signal_snapshot
from mmkit.core.strategy import make_quote_context, make_strategy


@dataclasses.dataclass(frozen=True)
class _Fixed:
    half_spread_ticks: float = 3.0
    skew_ticks: float = 0.5
    order_qty: float = 0.01
    max_position: float = 0.2


@dataclasses.dataclass(frozen=True)
class _Avellaneda:
    gamma: float = 0.1
    kappa: float = 1.5
    horizon_sec: float = 60.0
    order_qty: float = 0.01
    max_position: float = 0.2


@dataclasses.dataclass(frozen=True)
class _Params:
    """The ``strategy:`` section's defaults (the bench stays independent of the config package)."""

    model: str = "vol"
    k_vola_spread: float = 1.0
    skew_coeff: float = 0.3
    levels_per_side: int = 3
    level_spacing_coeff: float = 0.4
    imbalance_cutoff: float = 0.65
    fixed: _Fixed = dataclasses.field(default_factory=_Fixed)
    avellaneda: _Avellaneda = dataclasses.field(default_factory=_Avellaneda)


@dataclasses.dataclass(frozen=True)
class _Signals:
    vol_half_life_sec: float = 30.0
    trade_intensity_half_life_sec: float = 10.0
    imbalance_levels: int = 5
    imbalance_bias_bps: float = 0.5
    microprice_weight_ratio: float = 0.5
    impact_cap_ratio: float = 0.10
    markout_horizons_ms: tuple[int, ...] = (200, 500)


INST = Instrument("BTCUSDT", Decimal("0.1"), Decimal("0.001"), min_notional=Decimal("5"))


def make_inputs(n: int, seed: int) -> list[tuple]:
    rng = random.Random(seed)
    mid = 600_000
    pos = 0
    rows = []
    for i in range(n):
        mid += rng.choice((-2, -1, 0, 0, 0, 1, 2))
        spread = rng.choice((1, 1, 1, 2, 3))
        bid, ask = mid, mid + spread
        bq, aq = rng.randint(1, 5000), rng.randint(1, 5000)
        vol = rng.uniform(0.2e-4, 2.5e-4)
        imb = rng.uniform(-0.9, 0.9)
        pos = max(-200, min(200, pos + rng.choice((-10, 0, 0, 10))))
        snap = make_signal_snapshot(i, (bid + ask) / 2, vol, 100, 2.0, 1.0, 1.0, imb, 0.1, imb * 3.0, 0.10)
        rows.append(("BTCUSDT", INST, bid, ask, bq, aq, snap, pos, i * 1_000_000, 2000.0, 10, 1.0, 5.0))
    return rows


def bench(n: int, seed: int, repeat: int) -> None:
    rows = make_inputs(n, seed)
    ctxs = [make_quote_context(*r) for r in rows]
    print(f"decisions={n} levels_per_side=3 (vol) repeat={repeat}")
    for model in ("vol", "avellaneda", "fixed"):
        strat = make_strategy(_Params(model=model))  # type: ignore[arg-type]
        quotes = strat.quotes
        best = float("inf")
        emitted = 0
        for _ in range(repeat):
            t0 = time.perf_counter()
            for ctx in ctxs:
                quotes(ctx)
            best = min(best, time.perf_counter() - t0)
        emitted = sum(len(quotes(c)) for c in ctxs[:10000])
        best_ctx = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            for r in rows:
                quotes(make_quote_context(*r))
            best_ctx = min(best_ctx, time.perf_counter() - t0)
        print(f"{model:11s} quotes/s={n / best:12,.0f}  us/call={best / n * 1e6:6.2f}  "
              f"with context build: us/call={best_ctx / n * 1e6:6.2f}  avg quotes/decision={emitted / 10000:4.2f}")
    # signals snapshot from a real book (what the engine adds per decision)
    book = L2Book("BTCUSDT", INST)
    rng = random.Random(seed)
    book.apply_snapshot([(600_000 - i, rng.randint(1, 5000)) for i in range(1000)],
                        [(600_001 + i, rng.randint(1, 5000)) for i in range(1000)])
    for levels in (1, 5):
        sig = SymbolSignals("BTCUSDT", dataclasses.replace(_Signals(), imbalance_levels=levels))  # type: ignore[arg-type]
        sig.on_book(0, book)
        m = min(n, 100_000)
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            for i in range(m):
                sig.snapshot(i, book)
            best = min(best, time.perf_counter() - t0)
        print(f"signals snapshot (imbalance_levels={levels}, 1000-level book): us/call={best / m * 1e6:6.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--decisions", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    bench(a.decisions, a.seed, a.repeat)


if __name__ == "__main__":
    main()
