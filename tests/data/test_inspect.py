"""data inspect (mmkit.data.inspect): the histogram behind every percentile, the report on
real recordings (zero gaps, the Binance recorder's clock skew), crossed books, gaps between
updates, stale books, and determinism."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from mmkit.artifacts import artifact, build_meta, canonical_bytes
from mmkit.core.book import L2Book
from mmkit.core.events import make_book_delta, make_book_snapshot, make_quote, make_trade
from mmkit.data.convert import convert, input_records
from mmkit.data.inspect import MAX_BUCKETS, Hist, Inspector, clock_skew, inspect_files, summary
from mmkit.data.readers import open_events
from support import FIXTURES, validate_artifact

REAL = FIXTURES / "real"
BAD = FIXTURES / "bad"
USDM = [str(REAL / "binance/usdm/btcusdt_20240718.gz"), str(REAL / "binance/usdm/btcusdt_20240719.gz")]
MS = 1_000_000


@pytest.fixture(scope="module")
def usdm_report():
    return inspect_files(USDM)


def _nearest_rank(values: list[int], p: int) -> int:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p * len(ordered) / 100)) - 1]


def test_hist_percentiles_are_exact_over_floored_values():
    rng = random.Random(3)
    raw = [rng.randint(-2_000 * MS, 3_000 * MS) for _ in range(5000)]
    h = Hist(MS)
    for v in raw:
        h.add(v)
    floored = [v // MS for v in raw]
    for p in (50, 95, 99):
        assert h.percentiles()[f"p{p}"] == _nearest_rank(floored, p)
    s = h.summary("ms")
    assert (s["n"], s["min"], s["max"], s["resolution_ms"]) == (5000, round(min(raw) / MS, 3), round(max(raw) / MS, 3), 1)
    assert s["mean"] == round(sum(raw) / len(raw) / MS, 3)
    assert Hist().summary("ticks") is None
    one = Hist()
    one.add(7)
    assert one.summary("ticks") == {"n": 1, "p50": 7, "p95": 7, "p99": 7, "min": 7.0, "max": 7.0, "mean": 7.0, "resolution_ticks": 1}


def test_hist_memory_is_bounded_by_coarsening():
    h = Hist()
    values = list(range(0, 3 * MAX_BUCKETS * 4, 3))
    for v in values:
        h.add(v)
    assert len(h.counts) <= MAX_BUCKETS and h.width > 1 and h.n == len(values)
    assert (h.lo, h.hi) == (values[0], values[-1]), "min and max stay exact"
    p50 = h.percentiles()["p50"]
    assert p50 <= _nearest_rank(values, 50) < p50 + h.width, "percentile within one bucket"


def test_usdm_pair_has_no_gaps_and_reports_the_recorder_clock_skew(usdm_report):
    r = usdm_report
    assert r["seq_gaps"] == 0 and r["skipped_total"] == 0 and r["crossed_books"] == 0 and r["trade_id_gaps"] == 0
    assert r["events"] == {"book_delta": 9017, "book_snapshot": 1, "quote": 52260, "trade": 10701}
    assert r["time_span"]["first_utc"] == "2024-07-18T23:57:02.507Z" and r["time_span"]["last_utc"] == "2024-07-19T00:05:02.291Z"
    lat = r["feed_latency_ms"]
    assert lat["n"] == 71979 and -1530 < lat["p50"] < -1500 and lat["max"] < 0, "recv_ts - ts is negative: kept, not hidden"
    skew = r["clock_skew"]
    assert skew["detected"] is True and skew["direction"] == "behind" and skew["recv_clock"] == "local"
    assert skew["offset_ms_estimate"] == lat["min"] and -1530 < skew["offset_ms_estimate"] < -1500
    assert "recorder clock behind exchange" in skew["note"]
    deskewed = skew["latency_after_deskew_ms"]
    assert 0 <= deskewed["p50"] <= deskewed["p95"] <= deskewed["p99"] < 100
    assert all(src["clock"]["skewed"] for src in r["sources"])


def test_usdm_symbol_block(usdm_report):
    sym = usdm_report["symbols"]["BTCUSDT"]
    assert sym["venue"] == "binance-usdm" and sym["seq_gaps"] == 0 and sym["crossed_books"] == 0
    gaps = sym["update_gaps_ms"]
    assert set(gaps) == {"book", "trade", "quote"}
    assert gaps["book"]["n"] == 9017 and 40 <= gaps["book"]["p50"] <= 60, "depth@0ms pushes about every 50 ms"
    assert gaps["book"]["max"] >= gaps["book"]["p99"] >= gaps["book"]["p50"]
    assert sym["spread"]["ticks"]["p50"] == 1 and sym["spread"]["bps"]["min"] > 0
    assert sym["quote_spread"]["ticks"]["n"] == 52260
    assert sym["depth"]["samples"] > 400 and sym["depth"]["bid_qty_mean"] > 0
    # the final book matches an L2Book fed the same events, as decimal strings
    events = list(open_events(USDM))
    book = L2Book("BTCUSDT")
    for e in events:
        book.apply(e)
    final = sym["final_book"]
    assert final["bids"][0] == [f"{book.best_bid / 10:.1f}", f"{book.best_bid_qty / 1000:.3f}"]
    assert final["asks"][0][0] == f"{book.best_ask / 10:.1f}"
    assert len(final["bids"]) == len(final["asks"]) == 5 and final["stale"] is False
    assert final["levels"] == {"bid": len(book.bids), "ask": len(book.asks)}


@pytest.mark.parametrize("path, offset", [("binance/spot/btcusdt_20240808.gz", -1274.761), ("binance/cm/btcusd_perp_20240808.gz", -1272.694)])
def test_other_binance_recordings_show_the_same_skew(path, offset):
    r = inspect_files(str(REAL / path))
    assert r["seq_gaps"] == 0 and r["crossed_books"] == 0
    assert r["clock_skew"]["detected"] and r["clock_skew"]["offset_ms_estimate"] == offset


def test_skew_survives_conversion_to_mmkit_formats(tmp_path: Path):
    out = tmp_path / "cm.mmkc"
    convert(str(REAL / "binance/cm/btcusd_perp_20240808.gz"), str(out))
    r = inspect_files(str(out))
    assert r["clock_skew"]["recv_clock"] == "stored" and r["clock_skew"]["detected"] and r["clock_skew"]["direction"] == "behind"


def test_exchange_copied_receive_times_are_not_called_skew():
    r = inspect_files(str(REAL / "bybit/xrpusdt-ob500.data.zip"))
    skew = r["clock_skew"]
    assert skew["recv_clock"] == "exchange" and skew["detected"] is False and "copied from an exchange time" in skew["note"]
    sym = r["symbols"]["XRPUSDT"]
    assert sym["final_book"]["levels"]["bid"] >= 5 and sym["depth"]["samples"] >= 5


def test_gaps_between_updates_crossed_books_and_quotes_on_crafted_events(tmp_path: Path):
    from mmkit.data.synth import synth_instrument

    inst = synth_instrument("X")
    s = 10**9
    events = [
        make_book_snapshot(s, s + 2 * MS, "X", ((100, 5), (99, 5)), ((101, 5), (102, 5))),
        make_book_delta(s + 10 * MS, s + 12 * MS, "X", ((101, 1),), ()),        # crossed: bid 101 >= ask 101
        make_book_delta(s + 30 * MS, s + 31 * MS, "X", ((101, 0),), ()),        # uncrossed again, spread 1
        make_book_delta(s + 70 * MS, s + 72 * MS, "X", (), ((101, 0),)),        # spread 2
        make_trade(s + 5 * MS, s + 6 * MS, "X", 1, 101, 1),
        make_trade(s + 25 * MS, s + 27 * MS, "X", -1, 100, 1),
        make_quote(s + 40 * MS, s + 41 * MS, "X", 100, 5, 100, 5),             # a crossed (locked) quote
    ]
    events.sort(key=lambda e: e.ts)
    insp = Inspector({"X": inst})
    insp.consume(events)
    body = insp.body()
    sym = body["symbols"]["X"]
    assert sym["crossed_books"] == 1 and sym["crossed_at_ts"] == [s + 10 * MS] and sym["crossed_quotes"] == 1
    assert sym["update_gaps_ms"]["book"] == {"n": 3, "p50": 20, "p95": 40, "p99": 40, "min": 10.0, "max": 40.0, "mean": 23.333,
                                             "resolution_ms": 1}
    assert sym["update_gaps_ms"]["trade"]["max"] == 20.0 and "quote" not in sym["update_gaps_ms"]
    assert sym["spread"]["ticks"]["n"] == 3 and sym["spread"]["ticks"]["max"] == 2.0
    assert sym["final_book"]["bids"] == [["10.0", "0.005"], ["9.9", "0.005"]]
    assert sym["final_book"]["asks"] == [["10.2", "0.005"]]
    assert body["crossed_books"] == 1 and body["feed_latency_ms"]["p50"] == 2  # 1,1,1,2,2,2,2 ms: rank 4
    assert body["clock_skew"]["detected"] is False and body["time_span"]["duration_s"] == 0.07


def test_a_gap_makes_the_book_stale_and_is_counted():
    r = inspect_files(str(BAD / "binance_spot_gap.txt"))
    assert r["seq_gaps"] == 1 and r["sources"][0]["gaps_at"]
    sym = next(iter(r["symbols"].values()))
    assert sym["seq_gaps"] == 1 and sym["final_book"]["stale"] is True
    with pytest.raises(Exception) as err:
        inspect_files(str(BAD / "binance_spot_gap.txt"), on_error="fail")
    assert getattr(err.value, "code", "") == "E_DATA_SEQ_GAP"


def test_skip_counts_by_code():
    r = inspect_files(str(BAD / "bybit_bad.jsonl"))
    assert r["on_error"] == "skip" and r["skipped_total"] == sum(r["skipped"].values()) > 0
    assert r["skipped"]["E_DATA_CROSSED_BOOK"] == 1


def test_same_input_same_bytes_and_schema(tmp_path: Path):
    path = str(REAL / "bybit/raw_md_stream.jsonl")
    a = inspect_files(path)
    b = inspect_files(path)
    assert canonical_bytes(a) == canonical_bytes(b)
    art = artifact("data_inspect", a, build_meta(inputs=input_records([path])))
    validate_artifact(art)
    assert "seq_gaps=0" in summary(a) and "clock_skew=none" in summary(a)


def test_clock_skew_verdicts_on_plain_histograms():
    ahead = Hist(MS)
    for v in (1500, 1600, 1700):
        ahead.add(v * MS)
    v = clock_skew(ahead, [{"clock": {"recv_clock": "local", "n": 3}}])
    assert v["detected"] and v["direction"] == "ahead" and v["offset_ms_estimate"] == 1500.0
    ok = Hist(MS)
    ok.add(3 * MS)
    assert clock_skew(ok, [])["detected"] is False and clock_skew(ok, [])["recv_clock"] == "stored"
    assert clock_skew(Hist(MS), [])["note"] == "no events"


def test_crossed_book_in_mmkit_jsonl_is_counted(tmp_path: Path):
    # the JSONL reader does not check crossing itself; inspect's own book does
    lines = [
        '{"kind":"book_snapshot","ts":1000000000,"recv_ts":1001000000,"symbol":"BTCUSDT","bids":[["100.0","1.000"]],"asks":[["100.1","1.000"]]}',
        '{"kind":"book_delta","ts":1002000000,"recv_ts":1003000000,"symbol":"BTCUSDT","bids":[["100.2","1.000"]],"asks":[]}',
        '{"kind":"book_delta","ts":1004000000,"recv_ts":1005000000,"symbol":"BTCUSDT","bids":[["100.2","0"]],"asks":[]}',
    ]
    path = tmp_path / "crossed.jsonl"
    path.write_text("\n".join(lines) + "\n")
    r = inspect_files(str(path), venue="binance-usdm")
    assert r["crossed_books"] == 1 and r["symbols"]["BTCUSDT"]["crossed_at_ts"] == [1002000000]
    assert r["symbols"]["BTCUSDT"]["spread"]["ticks"]["n"] == 2
