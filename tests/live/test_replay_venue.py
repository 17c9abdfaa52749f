"""The replay venue: recording scan, wall-clock pacing, loops shifted in time, and the
Venue protocol forwarded to the fill simulator (real bundled Binance recording)."""

from __future__ import annotations

import asyncio
import gzip
import random
import time
from pathlib import Path

import pytest

from mmkit.config import build_config
from mmkit.core.engine import feed_clock_shift
from mmkit.core.types import CancelOrder, CreateOrder
from mmkit.errors import MmkitError
from mmkit.live.service import default_data_path
from mmkit.research.backtest import build_engine, build_fillsim
from mmkit.venues.replay import LOOP_GAP_NS, ReplayVenue, parse_speed, scan_recording


def small_recording(tmp_path: Path, lines: int = 400) -> str:
    """The first ``lines`` lines of the bundled recording (REST snapshot on line 14)."""
    out = tmp_path / f"head{lines}.gz"
    with gzip.open(default_data_path(), "rb") as src:
        head = b"".join(src.readline() for _ in range(lines))
    out.write_bytes(gzip.compress(head))
    return str(out)


def collect(venue: ReplayVenue, limit: int | None = None) -> list:
    async def go():
        out = []
        async for batch in venue.batches(max_batch=64):
            out.append(batch)
            if limit is not None and sum(len(b.events) for b in out) >= limit:
                break
        return out

    return asyncio.run(go())


def make_venue(scan, speed=None, loop=False, **kw) -> ReplayVenue:
    cfg = build_config({})
    sim = build_fillsim(cfg, scan.instruments, random.Random(0), "queue_aware", None, None)
    return ReplayVenue(scan, sim, speed, loop, **kw)


def test_parse_speed():
    assert parse_speed("1") == 1.0 and parse_speed("10") == 10.0 and parse_speed("max") is None
    assert parse_speed("10x") == 10.0 and parse_speed("2.5") == 2.5 and parse_speed(None) is None
    for bad in ("0", "-1", "fast", "inf"):
        with pytest.raises(MmkitError) as exc:
            parse_speed(bad)
        assert exc.value.code == "E_USAGE" and exc.value.exit_code == 64


def test_scan_reads_the_recording_once(tmp_path):
    path = small_recording(tmp_path)
    scan = scan_recording([path])
    assert scan.n_events > 300 and sum(scan.kinds.values()) == scan.n_events
    assert scan.kinds["book_snapshot"] == 1 and scan.kinds["book_delta"] > 0
    assert list(scan.instruments) == ["BTCUSDT"]
    # the recorder's clock is ~1.52 s behind the exchange (PROVENANCE.md): negative latency
    assert -1_600_000_000 < scan.min_latency_ns < -1_400_000_000
    assert scan.t_min_ns <= scan.first_recv_ns < scan.t_max_ns
    assert scan.loop_shift_ns == scan.span_ns + LOOP_GAP_NS


def test_scan_refuses_data_without_a_book(tmp_path):
    trades = tmp_path / "trades.jsonl"
    trades.write_text('{"kind":"trade","ts":1,"recv_ts":2,"symbol":"BTCUSDT","side":"buy","price":"60000.0","qty":"0.001"}\n')
    with pytest.raises(MmkitError) as exc:
        scan_recording([str(trades)], venue="binance-usdm")
    assert exc.value.code == "E_DATA_NO_BOOK"
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(MmkitError) as exc:
        scan_recording([str(empty)], fmt="jsonl", venue="binance-usdm")
    assert exc.value.code == "E_DATA_EMPTY"


def test_max_speed_hands_out_every_event_in_order(tmp_path):
    scan = scan_recording([small_recording(tmp_path)])
    venue = make_venue(scan)
    batches = collect(venue)
    events = [e for b in batches for e in b.events]
    assert len(events) == scan.n_events and venue.events_out == scan.n_events
    assert all(b.due_ns is None and b.loop == 0 for b in batches)
    assert max(len(b.events) for b in batches) == 64
    assert venue.finished and venue.loops_started == 1


def test_loop_shifts_every_pass_later_in_time(tmp_path):
    scan = scan_recording([small_recording(tmp_path, 200)])
    venue = make_venue(scan, loop=True)
    batches = collect(venue, limit=2 * scan.n_events + 1)
    first = [e for b in batches if b.loop == 0 for e in b.events]
    second = [e for b in batches if b.loop == 1 for e in b.events]
    assert len(first) == scan.n_events and second
    shift = scan.loop_shift_ns
    for a, b in zip(first, second):
        assert (b.ts - a.ts, b.recv_ts - a.recv_ts) == (shift, shift)
        assert type(a) is type(b) and a.symbol == b.symbol
    assert min(min(e.ts, e.recv_ts) for e in second) > max(max(e.ts, e.recv_ts) for e in first)
    assert not venue.finished  # a looping source never ends by itself


def test_start_loop_continues_the_data_clock(tmp_path):
    scan = scan_recording([small_recording(tmp_path, 200)])
    assert scan.loop_after(None) == 0 and scan.loop_after(scan.t_min_ns - 1) == 0
    k = scan.loop_after(scan.t_max_ns + 5 * scan.loop_shift_ns)
    assert k == 6
    venue = make_venue(scan, start_loop=k)
    events = [e for b in collect(venue) for e in b.events]
    assert min(min(e.ts, e.recv_ts) for e in events) > scan.t_max_ns + 5 * scan.loop_shift_ns
    assert len(events) == scan.n_events


def test_paced_replay_follows_the_wall_clock(tmp_path):
    scan = scan_recording([small_recording(tmp_path, 120)])
    span_s = (scan.t_max_ns - scan.first_recv_ns) / 1e9
    speed = span_s / 0.25  # the whole recording in about 0.25 s of wall time
    venue = make_venue(scan, speed=speed)
    t0 = time.perf_counter_ns()
    batches = collect(venue)
    wall = (time.perf_counter_ns() - t0) / 1e9
    events = [e for b in batches for e in b.events]
    due = [d for b in batches for d in b.due_ns]
    assert len(events) == len(due) == scan.n_events
    assert due == sorted(due)
    last_recv = max(e.recv_ts for e in events)
    assert wall >= (last_recv - scan.first_recv_ns) / 1e9 / speed * 0.9
    assert len(batches) > 5  # released in many small batches, not all at once


def test_venue_protocol_goes_to_the_simulator_with_listeners(tmp_path):
    scan = scan_recording([small_recording(tmp_path)])
    seen, reports = [], []
    venue = make_venue(scan, on_submit=lambda a, t: seen.append((a.op, t)),
                       on_report=lambda t, r: reports.append(type(r).__name__))
    cfg = build_config({})
    shift = feed_clock_shift([scan.min_latency_ns])
    eng = build_engine(cfg, scan.instruments, venue, shift, 100, 0, False)
    for batch in collect(venue):
        eng.feed(batch.events)
    assert eng.counters.creates > 0 and len(seen) == eng.counters.actions
    assert "Ack" in reports
    rt = eng.rt["BTCUSDT"]
    open_before = venue.open_orders()
    assert open_before == len(venue.sim.open_orders()) + venue.sim.pending_arrivals
    eng.pause("test")
    eng.settle()
    assert eng.open_orders() == 0 and venue.open_orders() == 0
    # an operator action goes through the same path
    bid = rt.book.best_bid
    eng.send("BTCUSDT", [CreateOrder("op-1", "BTCUSDT", 1, bid - 100, 1)])
    assert seen[-1][0] == "create"
    eng.send("BTCUSDT", [CancelOrder("op-1", "BTCUSDT", "test")])
    assert seen[-1][0] == "cancel"
