"""A seeded synthetic L2 + trades generator, for benchmarks and tests.  NOT market data.

``generate(seed, events)`` yields a stream of normalized events (``core.events``) with the
shape of a recorded perp feed, so readers, the book, the cache and the backtester can be
exercised at any size without shipping recordings.  Nothing in it comes from an exchange;
never judge a strategy on it.

The model (every draw from one ``random.Random(seed)``, so a seed gives the same events and,
through the canonical writers, the same bytes):

- a fair price in ticks follows a random walk whose per-event variance is a GARCH(1,1)
  (``var = omega + alpha * shock**2 + beta * var``): calm stretches and volatile bursts;
- the book holds ``levels`` price levels per side on consecutive ticks around the fair
  price, sizes decaying away from the touch (mean ``touch_size_lots * size_decay**i`` at
  level ``i``, times a uniform noise factor in [0.2, 1.8)); the spread is one tick, two
  while volatility is above twice its long-run level;
- when the fair price crosses a tick the book re-centres in one ``book_delta`` (new touch
  levels added, crossed and far levels deleted), often right after a trade at the old touch;
- trades hit the touch (side = aggressor, biased towards the last move) and deplete it: the
  next event is the delta that lowers or deletes the touch level; a re-centre refills it;
- other deltas change one to three sizes, mostly near the touch, sometimes deleting one;
- occasional ``quote`` events repeat the best bid/ask (like a bookTicker feed);
- ``ts`` strictly increases (exponential inter-arrival times, shorter while volatile, whole
  microseconds); ``recv_ts = ts + latency`` (a floor of 0.7 x ``latency_ms`` plus an
  exponential tail, median about ``latency_ms``, rare 5-50 ms stalls), never decreasing,
  like a recorder whose clock agrees with the exchange's.

The instrument is ``SYNUSDT`` on venue ``synthetic`` (tick 0.1, lot 0.001).  The first event
is a snapshot of the whole book whose prices and sizes use every decimal of that grid, so a
reader that infers the instrument from the data (the symbol is not in the built-in
registry) gets it exactly.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from mmkit.core.events import BUY, SELL, Event, Level, make_book_delta, make_book_snapshot, make_quote, make_trade
from mmkit.core.instruments import Instrument

if TYPE_CHECKING:
    from mmkit.data.convert import Tally

SYNTH_SYMBOL = "SYNUSDT"
SYNTH_VENUE = "synthetic"
START_TS = 1_704_067_200_000_000_000  # 2024-01-01T00:00:00Z

Change = tuple[tuple[Level, ...], tuple[Level, ...]]


def synth_instrument(symbol: str = SYNTH_SYMBOL) -> Instrument:
    """The synthetic instrument: a BTC-perp-like grid (tick 0.1, lot 0.001) on venue ``synthetic``."""
    return Instrument(symbol, Decimal("0.1"), Decimal("0.001"), min_notional=Decimal("5"), venue=SYNTH_VENUE)


@dataclass(frozen=True, slots=True)
class SynthParams:
    """Shape of the synthetic feed; the defaults look like a liquid BTC perp near 60,000.

    Units are in the names (``_ticks``, ``_lots``, ``_us``, ``_ms``, ``_ts`` in ns);
    ``*_prob`` are per-event probabilities.
    """

    levels: int = 20
    start_mid_ticks: int = 600_000
    vol_ticks: float = 0.35  # long-run standard deviation of the fair price per event
    garch_alpha: float = 0.04
    garch_beta: float = 0.95
    touch_size_lots: float = 2500.0
    size_decay: float = 0.93
    mean_gap_us: float = 1500.0
    latency_ms: float = 2.0
    spike_prob: float = 0.0002
    trade_prob: float = 0.15
    quote_prob: float = 0.08
    start_ts: int = START_TS
    snapshot_every: int = 0  # > 0: also a full snapshot every N events


class _Book:
    """The synthetic book: price -> lots per side, the touch, and the moves that change it."""

    def __init__(self, rng: random.Random, p: SynthParams) -> None:
        if p.levels < 2:
            raise ValueError("levels must be >= 2")
        self.rng = rng
        self.n = p.levels
        self.mean_size = [p.touch_size_lots * p.size_decay ** i for i in range(p.levels)]
        bb = p.start_mid_ticks
        self.bids = {bb - i: self.size(i) for i in range(p.levels)}
        self.asks = {bb + 1 + i: self.size(i) for i in range(p.levels)}
        if all(q % 10 == 0 for q in self.bids.values()):  # every decimal of the lot appears in the first event
            self.bids[bb] += 1
        self.bb, self.ba = bb, bb + 1

    def size(self, i: int) -> int:
        """Lots at level ``i`` from the touch: the level's mean size times noise in [0.2, 1.8)."""
        return max(1, int(self.mean_size[i] * (0.2 + 1.6 * self.rng.random())))

    def snapshot(self) -> Change:
        return tuple(sorted(self.bids.items(), reverse=True)), tuple(sorted(self.asks.items()))

    def recenter(self, new_bb: int, new_ba: int) -> Change:
        """Move the touch to ``new_bb``/``new_ba``: delete crossed and far levels, fill the range."""
        bids, asks, n = self.bids, self.asks, self.n
        bch = {px: 0 for px in bids if px > new_bb or px <= new_bb - n}
        ach = {px: 0 for px in asks if px < new_ba or px >= new_ba + n}
        for px in bch:
            del bids[px]
        for px in ach:
            del asks[px]
        size = self.size
        for i in range(n):
            px = new_bb - i
            if px not in bids:
                bids[px] = bch[px] = size(i)
            px = new_ba + i
            if px not in asks:
                asks[px] = ach[px] = size(i)
        self.bb, self.ba = new_bb, new_ba
        return tuple(sorted(bch.items(), reverse=True)), tuple(sorted(ach.items()))

    def take(self, side: int, qty: int) -> Change:
        """An aggressor of ``side`` takes ``qty`` at the touch; returns the depleting delta."""
        book, px = (self.asks, self.ba) if side == BUY else (self.bids, self.bb)
        left = book[px] - qty
        if left > 0:
            book[px] = left
        else:
            left = 0
            del book[px]
            if side == BUY:
                self.ba = min(self.asks)
            else:
                self.bb = max(self.bids)
        return ((), ((px, left),)) if side == BUY else (((px, left),), ())

    def change_sizes(self) -> Change:
        """One to three size changes, mostly near the touch; sometimes a level is deleted."""
        rng, n = self.rng, self.n
        bch: dict[int, int] = {}
        ach: dict[int, int] = {}
        for _ in range(1 + (rng.random() < 0.35) + (rng.random() < 0.15)):
            i = min(n - 1, int(-4.0 * math.log(1.0 - rng.random())))
            bid = rng.random() < 0.5
            book, ch = (self.bids, bch) if bid else (self.asks, ach)
            px = self.bb - i if bid else self.ba + i
            if px in book and len(book) > 2 and rng.random() < 0.12:
                del book[px]
                ch[px] = 0
                if i == 0 and bid:
                    self.bb = max(book)
                elif i == 0:
                    self.ba = min(book)
            else:
                book[px] = ch[px] = self.size(i)
        return tuple(sorted(bch.items(), reverse=True)), tuple(sorted(ach.items()))


def generate(seed: int, events: int, *, symbol: str = SYNTH_SYMBOL, params: SynthParams | None = None) -> Iterator[Event]:
    """Yield ``events`` synthetic events for ``seed`` (same seed, same events); see the module doc."""
    p = params or SynthParams()
    if events < 0:
        raise ValueError("events must be >= 0")
    if not 0 <= p.garch_alpha + p.garch_beta < 1:
        raise ValueError("garch_alpha + garch_beta must be in [0, 1)")
    if events == 0:
        return
    rng = random.Random(seed)
    book = _Book(rng, p)
    rand, gauss, log, sqrt, floor = rng.random, rng.gauss, math.log, math.sqrt, math.floor
    base_var = p.vol_ticks ** 2
    alpha, beta, omega = p.garch_alpha, p.garch_beta, base_var * (1 - p.garch_alpha - p.garch_beta)
    var, fair, move = base_var, p.start_mid_ticks + 0.5, 0.0
    gap_us, lat_ms, spike = p.mean_gap_us, p.latency_ms, p.spike_prob
    p_trade, p_quote_hi = p.trade_prob, p.trade_prob + p.quote_prob
    every = p.snapshot_every
    ts = p.start_ts
    recv = ts + int(lat_ms * 1000) * 1000
    yield make_book_snapshot(ts, recv, symbol, *book.snapshot())
    pending: Change | None = None
    for count in range(1, events):
        # the clocks: busier while volatile; latency = floor + exponential tail (+ rare spike)
        busy = sqrt(base_var / var)
        ts += (1 + int(-log(1.0 - rand()) * gap_us * (4.0 if busy > 4.0 else 0.25 if busy < 0.25 else busy))) * 1000
        lat = lat_ms * (0.7 - 0.43 * log(1.0 - rand()))
        if rand() < spike:
            lat += 5.0 + 45.0 * rand()
        r = ts + int(lat * 1000) * 1000
        if r > recv:
            recv = r
        if pending is not None:
            yield make_book_delta(ts, recv, symbol, *pending)
            pending = None
            continue
        if every and count % every == 0:
            yield make_book_snapshot(ts, recv, symbol, *book.snapshot())
            continue
        # the fair price: one GARCH(1,1) step
        move = gauss(0.0, 1.0) * sqrt(var)
        var = omega + alpha * move * move + beta * var
        fair += move
        u = rand()
        spread = 2 if var > 4 * base_var else 1
        new_bb = floor(fair - (spread - 1) / 2)
        new_ba = new_bb + spread
        if new_bb != book.bb or new_ba != book.ba:
            if (fair >= book.ba or fair < book.bb) and u < 0.6:  # the move trades through the old touch first
                side = BUY if fair >= book.ba else SELL
                px = book.ba if side == BUY else book.bb
                have = book.asks[px] if side == BUY else book.bids[px]
                pending = book.recenter(new_bb, new_ba)  # deletes the traded-through level
                yield make_trade(ts, recv, symbol, side, px, max(1, int(have * (0.05 + 0.95 * rand()))))
                continue
            yield make_book_delta(ts, recv, symbol, *book.recenter(new_bb, new_ba))
        elif u < p_trade:
            side = BUY if rand() < (0.7 if move > 0 else 0.3) else SELL
            px = book.ba if side == BUY else book.bb
            have = book.asks[px] if side == BUY else book.bids[px]
            qty = have if rand() < 0.25 else max(1, min(have, int(have * 0.3 * -log(1.0 - rand()))))
            pending = book.take(side, qty)
            yield make_trade(ts, recv, symbol, side, px, qty)
        elif u < p_quote_hi:
            yield make_quote(ts, recv, symbol, book.bb, book.bids[book.bb], book.ba, book.asks[book.ba])
        else:
            yield make_book_delta(ts, recv, symbol, *book.change_sizes())


def write_synth(out: str, seed: int, events: int, *, to_fmt: str | None = None, symbol: str = SYNTH_SYMBOL,
                params: SynthParams | None = None, progress: bool = False) -> Tally:
    """Generate and write ``events`` synthetic events to ``out`` (JSONL or cache, atomic); returns the ``convert.Tally``."""
    from mmkit.data.convert import output_format, write_events

    fmt = output_format(out, to_fmt)
    return write_events(out, generate(seed, events, symbol=symbol, params=params), {symbol: synth_instrument(symbol)}, fmt,
                        progress=progress, label="data synth")
