"""The synthetic generator: seeded determinism (events and bytes), the shape it promises
(monotonic clocks, an uncrossed book, trades at the touch that deplete it, volatility
clustering), and that readers get its instrument exactly from the data."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from mmkit.core.book import L2Book
from mmkit.core.events import BUY, BookSnapshot
from mmkit.data.jsonl import JsonlReader, write_jsonl
from mmkit.data.synth import SYNTH_SYMBOL, SynthParams, generate, synth_instrument, write_synth
from support import assert_golden

N = 20_000


@pytest.fixture(scope="module")
def events():
    return list(generate(7, N))


def test_same_seed_same_events_and_bytes(tmp_path: Path, events):
    assert list(generate(7, N)) == events
    assert list(generate(8, N)) != events
    assert list(generate(7, 500)) == events[:500], "a shorter run is a prefix of a longer one"
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_synth(str(a), 7, 3000)
    write_synth(str(b), 7, 3000)
    assert a.read_bytes() == b.read_bytes()


def test_golden_bytes_of_a_small_run(tmp_path: Path):
    out = tmp_path / "s.jsonl"
    write_synth(str(out), 7, 200)
    assert_golden("data_synth_seed7_200.jsonl", out.read_bytes())


def test_clocks_are_monotonic_and_latency_is_positive(events):
    ts = [e.ts for e in events]
    recv = [e.recv_ts for e in events]
    assert all(b > a for a, b in zip(ts, ts[1:])), "ts strictly increases"
    assert all(b >= a for a, b in zip(recv, recv[1:])), "recv_ts never decreases"
    lat = sorted(r - t for r, t in zip(recv, ts))
    assert lat[0] > 0
    assert 1_000_000 <= lat[len(lat) // 2] <= 4_000_000, "median latency about 2 ms"
    assert all(t % 1000 == 0 for t in ts), "whole microseconds"


def test_kinds_and_delta_sizes(events):
    kinds = Counter(e.kind for e in events)
    assert type(events[0]) is BookSnapshot and kinds["book_snapshot"] == 1
    assert kinds["book_delta"] > kinds["trade"] > kinds["quote"] > 0
    assert "seq_gap" not in kinds
    deltas = [len(e.bids) + len(e.asks) for e in events if e.kind == "book_delta"]
    assert sum(deltas) / len(deltas) < 4, "deltas touch a few levels"


def test_book_never_crosses_and_trades_hit_and_deplete_the_touch(events):
    inst = synth_instrument()
    book = L2Book(SYNTH_SYMBOL, inst)
    spreads = Counter()
    depleted = 0
    for i, ev in enumerate(events):
        if ev.kind == "trade":
            touch = book.best_ask if ev.side == BUY else book.best_bid
            assert ev.price == touch, f"event {i}: trade away from the touch"
            assert 0 < ev.qty <= book.size_at(-ev.side, ev.price)
            nxt = events[i + 1]
            if nxt.kind == "book_delta":  # the following delta lowers or deletes the traded level
                levels = dict(nxt.asks if ev.side == BUY else nxt.bids)
                assert ev.price in levels
                depleted += levels[ev.price] == 0
        elif ev.kind == "quote":
            assert (ev.bid_px, ev.ask_px) == (book.best_bid, book.best_ask)
            assert (ev.bid_qty, ev.ask_qty) == (book.best_bid_qty, book.best_ask_qty)
        if book.apply(ev):
            assert not book.crossed, f"event {i}: crossed book"
            assert len(book.bids) <= 20 and len(book.asks) <= 20
            spreads[book.spread_ticks] += 1
    assert depleted > 0
    assert spreads[1] > 0.8 * sum(spreads.values()), "mostly a one-tick spread"
    bids = book.levels(1)
    assert bids[0][1] > 0 and sum(q for _, q in bids[:5]) > sum(q for _, q in bids[-5:]), "sizes decay away from the touch"


def test_volatility_clusters(events):
    mids = []
    book = L2Book(SYNTH_SYMBOL)
    for ev in events:
        if book.apply(ev) and book.mid_ticks is not None:
            mids.append(book.mid_ticks)
    # realized variance per block of 200 mid updates: calm and busy blocks follow each other
    blocks = [sum((b - a) ** 2 for a, b in zip(chunk, chunk[1:])) for chunk in (mids[i:i + 200] for i in range(0, len(mids) - 200, 200))]
    mean = sum(blocks) / len(blocks)
    cov = sum((a - mean) * (b - mean) for a, b in zip(blocks, blocks[1:])) / (len(blocks) - 1)
    var = sum((a - mean) ** 2 for a in blocks) / len(blocks)
    assert cov / var > 0.2, f"lag-1 autocorrelation of block variance {cov / var:.2f}"
    assert max(blocks) > 3 * min(blocks)


def test_reader_infers_the_instrument_exactly(tmp_path: Path, events):
    path = tmp_path / "s.jsonl"
    write_jsonl(path, events[:3000], {SYNTH_SYMBOL: synth_instrument()})
    reader = JsonlReader(path)
    assert list(reader) == events[:3000]
    inst = reader.instruments[SYNTH_SYMBOL]
    assert (inst.tick_size, inst.lot_size) == (synth_instrument().tick_size, synth_instrument().lot_size)


def test_options_and_edges(tmp_path: Path):
    assert list(generate(1, 0)) == []
    assert [e.kind for e in generate(1, 1)] == ["book_snapshot"]
    snaps = [e for e in generate(3, 1000, params=SynthParams(snapshot_every=250, levels=5))]
    assert [i for i, e in enumerate(snaps) if e.kind == "book_snapshot"] == [0, 250, 500, 750]
    assert max(len(e.bids) for e in snaps if e.kind == "book_snapshot") == 5
    other = list(generate(3, 50, symbol="FAKEUSD"))
    assert {e.symbol for e in other} == {"FAKEUSD"}
    with pytest.raises(ValueError):
        list(generate(1, 10, params=SynthParams(levels=1)))
    with pytest.raises(ValueError):
        list(generate(1, 10, params=SynthParams(garch_alpha=0.5, garch_beta=0.6)))
    with pytest.raises(ValueError):
        list(generate(1, -1))
    cache = tmp_path / "s.mmkc"
    tally = write_synth(str(cache), 5, 400)
    assert tally.total == 400 and cache.read_bytes()[:8] == b"MMKCACHE"
    write_synth(str(tmp_path / "t.mmkc"), 5, 400)
    assert (tmp_path / "t.mmkc").read_bytes() == cache.read_bytes()
