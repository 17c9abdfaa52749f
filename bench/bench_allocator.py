"""Benchmark the portfolio allocator and the fee arithmetic.

Input is synthetic and seeded (standalone): 50 symbols whose vols, spreads, volumes,
fill rates, depths, turnover, positions and equity move every rebalance, with every
attenuation stage switched on, drawdown softening, a dust guard and skew breaches now and
then, so each rebalance runs the whole pipeline.  Also timed: risk parity with a full
correlation matrix, exact ``fee_for`` on Decimal notionals, and tier lookups.

    .venv/bin/python bench/bench_allocator.py [--symbols 50] [--rebalances 2000] [--fees 200000] [--seed 7]
"""

from __future__ import annotations

import argparse
import random
import time
from dataclasses import replace
from decimal import Decimal

from mmkit.config_schema import Config, CostConfig
from mmkit.core.allocator import Allocator, AllocatorInputs, SoftBudget, SymbolInputs
from mmkit.core.fees import FeeSchedule, FeeTiers, RollingVolume, fee_bias, fee_for

MIN_NS = 60 * 1_000_000_000


def make_inputs(n_sym: int, n_reb: int, seed: int, corr: bool) -> list[AllocatorInputs]:
    rng = random.Random(seed)
    syms = [f"SYM{i:02d}USDT" for i in range(n_sym)]
    base_vol = {s: rng.uniform(0.005, 0.08) for s in syms}
    cm = None
    if corr:
        # one common factor: rho_ij = b_i * b_j keeps the matrix positive semi-definite
        beta = {s: rng.uniform(0.2, 0.9) for s in syms}
        cm = {(a, b): beta[a] * beta[b] for i, a in enumerate(syms) for b in syms[i + 1:]}
    out = []
    equity = 10_000.0
    for k in range(n_reb):
        equity *= 1.0 + rng.gauss(0.0, 0.004)
        per = {
            s: SymbolInputs(
                vol=base_vol[s] * rng.uniform(0.8, 1.25) if rng.random() > 0.02 else None,
                spread_bps=rng.uniform(0.5, 8.0),
                volume_usd=rng.uniform(200.0, 5e6),
                fill_rate=rng.random(),
                depth_usd=rng.uniform(5e3, 2e5),
                turnover_usd=rng.uniform(0.0, 2e4),
                position_usd=rng.uniform(-900.0, 900.0),
                color="blue" if i % 2 else "green",
            )
            for i, s in enumerate(syms)
        }
        out.append(AllocatorInputs(per, equity_usd=equity, skew_breach=(k % 37 == 0),
                                   fee_bias_ratio=0.02 if k % 5 == 0 else 0.0, correlations=cm))
    return out


def bench_allocator(n_sym: int, n_reb: int, seed: int, mode: str, corr: bool) -> float:
    cfg = Config()
    cost = replace(CostConfig(), fill_rate_floor=0.7, fill_rate_sensitivity=0.5, liquidity_depth_usd_target=5e4,
                   liquidity_sensitivity=0.5, liquidity_min_floor=0.6, turnover_sensitivity=0.4, turnover_floor=0.7)
    pf = replace(cfg.portfolio, mode=mode, min_weight=0.005, max_weight=0.1, cost=cost)
    alloc = Allocator(pf, cfg.allocator.smoothing, cfg.guards.pos_skew, SoftBudget(0.05, 0.5, 5.0))
    inputs = make_inputs(n_sym, n_reb, seed, corr)
    t0 = time.perf_counter()
    for k, inp in enumerate(inputs):
        alloc.rebalance(inp, k * MIN_NS)
    return n_reb / (time.perf_counter() - t0)


def bench_fees(n: int, seed: int) -> tuple[float, float, float]:
    rng = random.Random(seed)
    notionals = [Decimal(f"{rng.uniform(1, 100000):.2f}") * Decimal(f"{rng.uniform(0.001, 2):.3f}") for _ in range(n)]
    sched = FeeSchedule(maker_bps=-0.25, taker_bps=5.5)
    t0 = time.perf_counter()
    total = Decimal(0)
    for i, x in enumerate(notionals):
        total += fee_for(x, sched.maker_bps if i % 4 else sched.taker_bps)
    fee_rate = n / (time.perf_counter() - t0)
    tiers = FeeTiers(Config().fees.bybit.tiers)
    vols = [rng.uniform(0, 3e8) for _ in range(n)]
    t0 = time.perf_counter()
    for v in vols:
        fee_bias(tiers.status(v, 0.9), 25_000.0, 0.2, 0.05)
    tier_rate = n / (time.perf_counter() - t0)
    rv = RollingVolume()
    t0 = time.perf_counter()
    for i, x in enumerate(notionals):
        rv.add(i * 20_000_000_000, x)  # one fill every 20 s: ~4,300 per day
    add_rate = n / (time.perf_counter() - t0)
    return fee_rate, tier_rate, add_rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=50)
    ap.add_argument("--rebalances", type=int, default=2000)
    ap.add_argument("--fees", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    iv = bench_allocator(args.symbols, args.rebalances, args.seed, "inverse_vol", False)
    print(f"allocator inverse_vol, all stages: {iv:,.0f} rebalances/s ({args.symbols} symbols, {args.rebalances:,} rebalances)")
    rp = bench_allocator(args.symbols, max(1, args.rebalances // 10), args.seed, "risk_parity", True)
    print(f"allocator risk_parity + correlations: {rp:,.0f} rebalances/s ({args.symbols} symbols)")
    fee_rate, tier_rate, add_rate = bench_fees(args.fees, args.seed)
    print(f"fee_for (exact Decimal): {fee_rate:,.0f} fees/s ({args.fees:,} fills)")
    print(f"tier status + fee bias: {tier_rate:,.0f} /s")
    print(f"rolling 30-day volume add: {add_rate:,.0f} fills/s")


if __name__ == "__main__":
    main()
