"""Benchmark the order manager: reconcile calls per second, one symbol, 3 levels per side.

Input is synthetic and seeded (standalone): BTCUSDT-like grid (tick 0.1, lot 0.001) around
60,000 USD, the seed's default order-manager parameters (min time in book 500 ms, replace
threshold 3 bps, anti-stale guard 800 ms / 2 bps, replace throttle 2 / 60 ms, tail batch
800 ms), a decision tick every 10 ms of simulated time.  Three figures:

- steady state: the desired ladder already rests, nothing due (the fast path; the
  issue's budget is "well under 10 us");
- churn: the mid random-walks (a few ticks a step, a jump now and then), the ladder
  follows it, the venue acks every action at once and fills now and then; timed as
  reconcile alone and as reconcile + report handling (what the engine pays);
- strategy + orders: the vol strategy's ``quotes()`` feeding ``reconcile`` (target
  >= 50k decisions/s), contexts built before timing.

    .venv/bin/python bench/bench_orders.py [--calls 200000] [--seed 7] [--repeat 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import time
from decimal import Decimal

from mmkit.core.events import BUY, SELL
from mmkit.core.instruments import Instrument
from mmkit.core.orders import Budget, OrderManager, OrderParams
from mmkit.core.types import Ack, AmendOrder, Canceled, CreateOrder, DesiredQuote, Fill

SYM = "BTCUSDT"
INST = Instrument(SYM, Decimal("0.1"), Decimal("0.001"), min_notional=Decimal("5"))
MS = 1_000_000
T0 = 1_700_000_000 * 1_000_000_000
TICK_NS = 10 * MS
BUDGET = Budget(Decimal(2000), 3)  # 2,000 USD a side: three ~0.011 BTC levels fit


def ladder(mid: int, qty: int = 11) -> list[DesiredQuote]:
    return ([DesiredQuote(SYM, BUY, i, mid - 5 - 15 * i, qty) for i in range(3)]
            + [DesiredQuote(SYM, SELL, i, mid + 5 + 15 * i, qty) for i in range(3)])


def venue_reports(actions: list, ts: int) -> list:
    out: list = []
    for a in actions:
        if isinstance(a, CreateOrder):
            out.append(Ack(ts, a.client_id, "create", a.price, a.qty))
        elif isinstance(a, AmendOrder):
            out.append(Ack(ts, a.client_id, "amend", a.price, a.qty))
        else:
            out.append(Canceled(ts, a.client_id))
    return out


def bench_steady(calls: int, repeat: int) -> float:
    om = OrderManager(INST, OrderParams(), None, "b")
    mid = 600_000
    desired = ladder(mid)
    for r in venue_reports(om.reconcile(desired, T0, mid, BUDGET), T0):
        om.on_report(r)
    reconcile = om.reconcile
    best = float("inf")
    for _ in range(repeat):
        t = T0 + MS
        t0 = time.perf_counter()
        for _i in range(calls):
            reconcile(desired, t, mid, BUDGET)
        best = min(best, time.perf_counter() - t0)
    assert reconcile(desired, T0 + MS, mid, BUDGET) == [], "steady state emitted actions"
    return best / calls


def make_path(calls: int, seed: int) -> list[tuple[int, list[DesiredQuote], int]]:
    rng = random.Random(seed)
    mid = 600_000
    rows = []
    for i in range(calls):
        mid += rng.choice((-3, -2, -1, 0, 0, 0, 0, 1, 2, 3)) + (rng.choice((-150, 150)) if rng.random() < 0.01 else 0)
        rows.append((T0 + i * TICK_NS, ladder(mid), mid))
    return rows


def bench_churn(calls: int, seed: int, repeat: int) -> tuple[float, float, float, dict]:
    rows = make_path(calls, seed)
    best_rec = best_all = float("inf")
    actions = 0
    counters: dict = {}
    for _ in range(repeat):
        rng = random.Random(seed)
        om = OrderManager(INST, OrderParams(), None, "b")
        reconcile, on_report = om.reconcile, om.on_report
        t_rec = 0.0
        n_act = 0
        t_start = time.perf_counter()
        for t, desired, mid in rows:
            t0 = time.perf_counter()
            acts = reconcile(desired, t, mid, BUDGET)
            t_rec += time.perf_counter() - t0
            if acts:
                n_act += len(acts)
                for r in venue_reports(acts, t + MS):
                    on_report(r)
            if rng.random() < 0.005:  # a partial fill on some resting order
                live = om.open_orders()
                if live:
                    o = live[rng.randrange(len(live))]
                    if o.qty - o.filled > 1:
                        on_report(Fill(t, o.client_id, SYM, o.side, o.price, 1, "maker", cum_qty=o.filled + 1))
        t_all = time.perf_counter() - t_start
        best_rec = min(best_rec, t_rec)
        best_all = min(best_all, t_all)
        actions = n_act
        counters = om.counters.as_dict()
    return best_rec / calls, best_all / calls, actions / calls, counters


def bench_with_strategy(calls: int, seed: int, repeat: int) -> float | None:
    try:
        from mmkit.core.signals import make_signal_snapshot
        from mmkit.core.strategy import make_quote_context, make_strategy
    except ImportError:
        return None

    @dataclasses.dataclass(frozen=True)
    class _Params:  # the ``strategy:`` section's defaults (no config import in a bench)
        model: str = "vol"
        k_vola_spread: float = 1.0
        skew_coeff: float = 0.3
        levels_per_side: int = 3
        level_spacing_coeff: float = 0.4
        imbalance_cutoff: float = 0.65

    rng = random.Random(seed)
    mid = 600_000
    ctxs = []
    for i in range(calls):
        mid += rng.choice((-2, -1, 0, 0, 0, 0, 1, 2))
        snap = make_signal_snapshot(i, mid + 0.5, 0.5e-4, 100, 2.0, 1.0, 1.0, 0.1, 0.1, 0.3, 0.10)
        ctxs.append((make_quote_context(SYM, INST, mid, mid + 1, 1000, 1000, snap, 0, T0 + i * TICK_NS,
                                        2000.0, 3, 1.0, 5.0), mid))
    strat = make_strategy(_Params())  # type: ignore[arg-type]
    best = float("inf")
    for _ in range(repeat):
        om = OrderManager(INST, OrderParams(), None, "b")
        quotes, reconcile, on_report = strat.quotes, om.reconcile, om.on_report
        t0 = time.perf_counter()
        for ctx, m in ctxs:
            acts = reconcile(quotes(ctx), ctx.now_ns, m, BUDGET)
            if acts:
                for r in venue_reports(acts, ctx.now_ns + MS):
                    on_report(r)
        best = min(best, time.perf_counter() - t0)
    return best / calls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    n, rep = args.calls, args.repeat
    print(f"order manager, 1 symbol x 3 levels per side, {n:,} calls, best of {rep}")
    s = bench_steady(n, rep)
    print(f"steady state      reconcile: {1 / s:12,.0f} calls/s  {s * 1e6:6.2f} us/call")
    rec, full, per_call, c = bench_churn(n, args.seed, rep)
    print(f"churn             reconcile: {1 / rec:12,.0f} calls/s  {rec * 1e6:6.2f} us/call  "
          f"({per_call:.3f} actions/call)")
    print(f"churn   reconcile + reports: {1 / full:12,.0f} calls/s  {full * 1e6:6.2f} us/call")
    print(f"  churn counters: created={c['created']} amended={c['amended']} canceled={c['canceled']} "
          f"replace_throttled={c['replace_throttled']} tail_batch_events={c['tail_batch_events']} "
          f"refresh_amends={c['refresh_amends']} fills={c['fills']}")
    both = bench_with_strategy(n, args.seed, rep)
    if both is not None:
        print(f"vol strategy + reconcile:    {1 / both:12,.0f} decisions/s  {both * 1e6:6.2f} us/decision")


if __name__ == "__main__":
    main()
