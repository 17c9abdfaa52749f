"""Benchmark the gate chain on the order manager's hot path: checks per second.

The chain is the full default one (kill switch, risk, intraday caps, position skew,
circuit breaker, throttle) built from the config defaults, over a seeded synthetic stream
shaped like a busy quoting loop: 10 symbols, mostly amends, some creates and cancels,
about 30 actions a second per symbol (near the 10 creates/20 amends limits), fills moving positions, marks ticking. Standalone.

    .venv/bin/python bench/bench_gates.py [--actions 300000] [--seed 7] [--repeat 3]

Prints checks/s of the chain alone, check+on_sent for allowed actions, and each gate alone.
"""

from __future__ import annotations

import argparse
import random
import time

from mmkit.config import build_config
from mmkit.core.circuit import CircuitBreaker
from mmkit.core.gates import GateChain
from mmkit.core.risk import IntradayCapsGuard, KillSwitch, PositionBook, PositionSkewGuard, RiskGuard
from mmkit.core.throttle import Throttle
from mmkit.core.types import BUY, SELL, AmendOrder, CancelOrder, CreateOrder

SYMBOLS = [f"SYM{i}USDT" for i in range(10)]
T0 = 1_704_067_200 * 1_000_000_000


def make_stream(n: int, seed: int) -> list[tuple[int, object]]:
    rng = random.Random(seed)
    now = T0
    out: list[tuple[int, object]] = []
    for i in range(n):
        now += rng.randint(1_500_000, 5_100_000)  # ~300 actions/s over 10 symbols: near the limits
        sym = rng.choice(SYMBOLS)
        side = BUY if rng.random() < 0.5 else SELL
        r = rng.random()
        if r < 0.6:
            a: object = AmendOrder(f"c{i % 64}", sym, side, 6_000_000 + rng.randint(-50, 50), rng.randint(1, 20))
        elif r < 0.85:
            a = CreateOrder(f"c{i}", sym, side, 6_000_000 + rng.randint(-50, 50), rng.randint(1, 20))
        else:
            a = CancelOrder(f"c{i % 64}", sym)
        out.append((now, a))
    return out


def build():
    cfg = build_config({"guards": {"intraday_caps": {"daily_pnl_stop": 500.0}}})
    book = PositionBook()
    for i, sym in enumerate(SYMBOLS):
        book.update_mark(sym, 1.0 + i, T0)
        book.update_position(sym, (i - 5) * 3, T0)
    gates = {
        "killswitch": KillSwitch(cfg.killswitch, book),
        "risk": RiskGuard(cfg.risk, book),
        "intraday_caps": IntradayCapsGuard(cfg.guards.intraday_caps, book, T0),
        "pos_skew": PositionSkewGuard(cfg.guards.pos_skew, book),
        "circuit": CircuitBreaker(cfg.circuit),
        "throttle": Throttle(cfg.throttle),
    }
    return book, gates, GateChain(gates.values())


def rate(fn, stream, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn(stream)
        best = min(best, time.perf_counter() - t)
    return len(stream) / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--actions", type=int, default=300_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    stream = make_stream(args.actions, args.seed)

    def check_only(s):
        _, _, chain = build()
        check = chain.check
        for now, a in s:
            check(a, now)

    blocked = {}

    def check_and_send(s):
        book, _, chain = build()
        check, sent = chain.check, chain.on_sent
        blocked.clear()
        for i, (now, a) in enumerate(s):
            reason = check(a, now)
            if reason is None:
                sent(a, now)
            else:
                blocked[reason] = blocked.get(reason, 0) + 1
            if i % 50 == 0 and a.op != "cancel":  # a fill every 50 actions
                book.apply_fill(a.symbol, a.side, 1, now)
        chain.drain_events()

    print(f"actions: {len(stream)} over {len(SYMBOLS)} symbols (seed {args.seed}), best of {args.repeat}")
    print(f"chain check only:        {rate(check_only, stream, args.repeat):>12,.0f} checks/s")
    print(f"chain check + on_sent:   {rate(check_and_send, stream, args.repeat):>12,.0f} actions/s")
    print("blocked: " + ", ".join(f"{k}={v}" for k, v in sorted(blocked.items())))
    for name in ("killswitch", "risk", "intraday_caps", "pos_skew", "circuit", "throttle"):
        def one(s, name=name):
            check = build()[1][name].check
            for now, a in s:
                check(a, now)
        print(f"  {name + ' check:':<22} {rate(one, stream, args.repeat):>12,.0f} checks/s")


if __name__ == "__main__":
    main()
