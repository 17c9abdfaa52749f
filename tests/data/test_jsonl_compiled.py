"""The compiled JSONL scanner (mmkit/data/_jsonlscan.c) against the pure-Python reader.

The scanner may only ever build an event the general ``json.loads`` path would build
identically; everything else must fall back (return None) so the general path decides,
errors and messages included.  These tests hold it to that on the real fixtures, on
hypothesis-made streams and on mutated near-canonical lines of every kind it takes.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mmkit.core.events import BUY, SELL, BookDelta, BookSnapshot, Quote, Trade
from mmkit.core.events import make_book_delta, make_book_snapshot, make_quote, make_trade
from mmkit.core.instruments import GridError, Instrument, is_decimal_text, plain_to_units, step_scale
from mmkit.data import jsonl
from mmkit.data.jsonl import JsonlReader, write_jsonl
from mmkit.data.readers import open_events
from mmkit.errors import MmkitError

ROOT = Path(__file__).resolve().parents[2]
REAL = ROOT / "fixtures" / "real"

if os.environ.get("MMKIT_REQUIRE_COMPILED") == "1":
    def test_the_compiled_scanner_is_built():
        """CI sets MMKIT_REQUIRE_COMPILED=1: a silently failed C build must not pass as green."""
        assert jsonl.COMPILED

pytestmark = pytest.mark.skipif(not jsonl.COMPILED, reason="the compiled scanner is not built")

SPOT = Instrument("BTCUSDT", Decimal("0.01"), Decimal("0.000001"), venue="binance-spot")
HALF = Instrument("HALFUSD", Decimal("0.5"), Decimal("0.025"), venue="test")  # mantissas != 1
PINNED = {"BTCUSDT": SPOT, "HALFUSD": HALF}


def outcome(lines, compiled, **kw):
    """Events, skip counts and first error of a read, or the error that stopped it."""
    kw.setdefault("instruments", PINNED)
    reader = JsonlReader(list(lines), on_error="skip", compiled=compiled, **kw)
    try:
        events = list(reader)
    except MmkitError as exc:
        return exc.code, exc.message, reader.stats.lines
    return events, reader.stats.reasons, reader.stats.first_error, reader.stats.lines


def scanner():
    from mmkit.data._jsonlscan import Scanner

    return Scanner(make_book_snapshot, make_book_delta, make_trade, make_quote, BUY, SELL)


# ----------------------------------------------------------------------------- real data
REAL_SOURCES = [
    ([REAL / "binance/usdm/btcusdt_20240718.gz", REAL / "binance/usdm/btcusdt_20240719.gz"], "binance-usdm"),
    (sorted((REAL / "binance/spot").glob("*")), "binance-spot"),
    (sorted((REAL / "binance/cm").glob("*")), "binance-coinm"),
    ([REAL / "bybit/raw_md_stream.jsonl"], None),
    ([REAL / "tardis/deribit_incremental_book_L2_BTC-PERPETUAL.csv"], None),
    ([REAL / "tardis/huobi-dm-swap_quotes_BTC-USD.csv"], None),
]


@pytest.mark.parametrize(("paths", "venue"), REAL_SOURCES, ids=lambda v: getattr(v, "name", None) or str(v))
def test_real_recordings_read_identically_on_both_paths(tmp_path, paths, venue):
    paths = [str(p) for p in paths if p.suffix != ".md"]
    stream = open_events(paths, venue=venue)
    events = list(stream)
    assert events, paths
    out = tmp_path / "real.jsonl"
    write_jsonl(out, events, dict(stream.instruments))
    lines = out.read_text().splitlines(keepends=True)
    fast = JsonlReader(out, instruments=dict(stream.instruments), compiled=True)
    slow = JsonlReader(out, instruments=dict(stream.instruments), compiled=False)
    got, ref = list(fast), list(slow)
    assert got == events and ref == events and len(got) == len(lines)
    assert [type(e) for e in got] == [type(e) for e in events]
    # every canonical line of these kinds was built by the scanner itself, none fell back
    sc = scanner()
    for sym, inst in stream.instruments.items():
        sc.add(sym, *step_scale(inst.tick_size), *step_scale(inst.lot_size))
    assert all(sc.scan(line) is not None for line in lines if '"kind":"seq_gap"' not in line)


# ----------------------------------------------------------------------------- the scanner itself
def test_scan_asks_for_unknown_symbols_and_falls_back_on_anything_else():
    sc = scanner()
    trade = '{"kind":"trade","price":"1.00","qty":"0.5","recv_ts":11,"side":"sell","symbol":"BTCUSDT","ts":10}\n'
    assert sc.scan(trade) == "BTCUSDT"
    assert sc.add("BTCUSDT", 1, 2, 1, 6) is True
    ev = sc.scan(trade)
    assert type(ev) is Trade and ev == Trade(10, 11, "BTCUSDT", SELL, 100, 500000)
    for bad in (trade.replace("1.00", "1.001"), trade.replace('"0.5"', '"-0.5"'), trade.replace("}", "} x"),
                trade.replace('"ts":10', '"ts":' + "9" * 20), trade.replace("BTCUSDT", "BTC\\u0055SDT"),
                trade.replace("BTCUSDT", "BTC\u00e9USDT"), " " + trade, trade.replace(":", ": ", 1), ""):
        assert sc.scan(bad) is None, bad
    with pytest.raises(TypeError):
        sc.scan(b"bytes")  # type: ignore[arg-type]


def test_book_lines_build_levels_in_order_and_empty_sides():
    sc = scanner()
    sc.add("BTCUSDT", 1, 2, 1, 6)
    line = ('{"asks":[["2.00","1"],["2.01","0.000001"]],"bids":[],"kind":"book_snapshot","recv_ts":5,'
            '"symbol":"BTCUSDT","ts":4}')
    assert sc.scan(line) == BookSnapshot(4, 5, "BTCUSDT", (), ((200, 1000000), (201, 1)))
    delta = line.replace("snapshot", "delta").replace('"bids":[]', '"bids":[["1.99","0"]]')
    assert sc.scan(delta) == BookDelta(4, 5, "BTCUSDT", ((199, 0),), ((200, 1000000), (201, 1)))
    assert sc.scan(line.replace("book_snapshot", "book_other")) is None
    assert sc.scan(line.replace('["2.00","1"],', '["2.00","1"] ,')) is None


def test_a_grid_the_scanner_cannot_hold_always_falls_back():
    sc = scanner()
    assert sc.add("BTCUSDT", 10**30, 0, 1, 6) is False
    quote = ('{"ask_px":"2","ask_qty":"1","bid_px":"1","bid_qty":"1","kind":"quote","recv_ts":11,'
             '"symbol":"BTCUSDT","ts":10}')
    assert sc.scan(quote) is None


def test_the_environment_switch_forces_pure_python(monkeypatch):
    line = '{"kind":"trade","price":"1.00","qty":"1","recv_ts":11,"side":"buy","symbol":"BTCUSDT","ts":10}'
    monkeypatch.setenv("MMKIT_PURE_PYTHON", "1")
    assert JsonlReader([line], instruments=PINNED)._scanner() is None
    monkeypatch.setenv("MMKIT_PURE_PYTHON", "0")
    assert JsonlReader([line], instruments=PINNED)._scanner() is not None
    assert JsonlReader([line], instruments=PINNED, compiled=False)._scanner() is None


@pytest.mark.parametrize("step", ["0.01", "0.5", "0.025", "10", "0.000001", "1", "0.00000001"])
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(st.from_regex(r"-?[0-9]{0,12}\.?[0-9]{0,10}", fullmatch=True),
                      st.text(alphabet="0123456789.-+ e", max_size=24)))
@example(text="9" * 18)
@example(text="9" * 19)
@example(text="0" * 40 + "1")
@example(text="1." + "0" * 40)
@example(text="-0")
@example(text="-0.000")
@example(text="0.0000000000000000001")
@example(text="922337203685477580.7")
def test_decimal_conversion_equals_plain_to_units(step, text):
    """A trade line whose price and size are ``text``: the scanner builds exactly what
    plain_to_units gives, or falls back; it never builds a different number."""
    mantissa, places = step_scale(Decimal(step))
    sc = scanner()
    sc.add("X", mantissa, places, mantissa, places)
    line = '{"kind":"trade","price":"%s","qty":"%s","recv_ts":1,"side":"buy","symbol":"X","ts":1}' % (text, text)
    got = sc.scan(line)
    try:
        expected = plain_to_units(text, mantissa, places) if is_decimal_text(text) else None
    except (GridError, ValueError):
        expected = None
    if got is None:
        return  # fell back: the general path decides (tested against it below)
    assert expected is not None and expected >= 0
    assert (got.price, got.qty) == (expected, expected)


# ----------------------------------------------------------------------------- near misses == general path
QUOTE = ('{"ask_px":"1.01","ask_qty":"2","bid_px":"1.00","bid_qty":"1","kind":"quote","recv_ts":11,'
         '"symbol":"BTCUSDT","ts":10}')
TRADE = '{"kind":"trade","price":"1.00","qty":"1","recv_ts":11,"side":"buy","symbol":"BTCUSDT","ts":10}'
BOOK = ('{"asks":[["1.01","2"],["1.02","0"]],"bids":[["1.00","1"]],"kind":"book_delta","recv_ts":11,'
        '"symbol":"BTCUSDT","ts":10}')
MUTATIONS = [
    ('"ts":10', '"ts":010'), ('"ts":10', '"ts":9223372036854775807'), ('"ts":10', '"ts":9223372036854775808'),
    ('"ts":10', '"ts":18446744073709551616'), ('"ts":10', '"ts":5'), ('"ts":10', '"ts":-10'), ('"ts":10', '"ts":1e1'),
    ('"recv_ts":11', '"recv_ts":0'), ('"recv_ts":11', '"recv_ts":"11"'), ('"recv_ts":11', '"recv_ts":99999999999999999999'),
    ('"BTCUSDT"', '"BTC\\u0055SDT"'), ('"BTCUSDT"', '""'), ('"BTCUSDT"', '"HALFUSD"'), ('"BTCUSDT"', '"ETHUSDT"'),
    ('"BTCUSDT"', '"BTCUSDT\u00e9"'),
    ('"1.00"', '"01.00"'), ('"1.00"', '"1.000"'), ('"1.00"', '"1.001"'), ('"1.00"', '"1."'), ('"1.00"', '"-1.00"'),
    ('"1.00"', '"1.5"'), ('"1.00"', '"-0"'), ('"1.00"', '"1e2"'), ('"1.00"', '1.00'),
    ('"1"', '"-1"'), ('"1"', '"-0"'), ('"1"', '"0.025"'), ('"1"', '"0.0250"'), ('"1"', '"0.03"'), ('"2"', '"2.000000"'),
    ('"2"', '"0.0000001"'), ('"buy"', '"sell"'), ('"buy"', '"BUY"'),
    ('"book_delta"', '"book_snapshot"'), ('"book_delta"', '"book_update"'), ('"bids":[["1.00","1"]]', '"bids":[]'),
    ('"bids":[["1.00","1"]]', '"bids":[["1.00"]]'), ('"bids":[["1.00","1"]]', '"bids":[["1.00","1","2"]]'),
    ('"bids":[["1.00","1"]]', '"bids":[[]]'), ('"bids":[["1.00","1"]]', '"bids":{}'), ('],[', '] ,['),
    ('"asks":[["1.01","2"],["1.02","0"]]', '"asks":[]'), ('"asks":[["1.01","2"],', '"asks":[["1.01","2"],,'),
    ("}", "} \r\n"), ("}", "}x"), ("}", ',"extra":1}'), ("{", '{"a":1,'), ("{", " {"), ('"kind"', '"Kind"'),
]


@settings(max_examples=400, deadline=None)
@given(st.sampled_from([QUOTE, TRADE, BOOK]), st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=3),
       st.sampled_from(["\n", "\r\n", ""]))
def test_near_canonical_lines_read_as_the_pure_reader_reads_them(base, mutations, newline):
    line = base
    for old, new in mutations:
        line = line.replace(old, new, 1)
    line += newline
    prev = [TRADE.replace('"ts":10', '"ts":7') + "\n", QUOTE.replace('"ts":10', '"ts":7') + "\n",
            BOOK.replace('"ts":10', '"ts":7') + "\n"]
    lines = prev + [line, line, TRADE.replace('"ts":10', '"ts":20') + "\n"]
    assert outcome(lines, True) == outcome(lines, False), line


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["trade", "quote", "delta", "snap"]), st.integers(0, 50),
                          st.sampled_from(["BTCUSDT", "HALFUSD"]),
                          st.lists(st.tuples(st.integers(-5, 10**6), st.integers(0, 10**9)), max_size=4)),
                max_size=30))
def test_streams_round_trip_identically_on_both_paths(tmp_path_factory, rows):
    events, ts = [], 0
    for kind, step, sym, levels in rows:
        ts += step
        lv = tuple(levels)
        if kind == "trade":
            events.append(Trade(ts, ts + 1, sym, BUY if step % 2 else SELL, step - 3, step * 7))
        elif kind == "quote":
            events.append(Quote(ts, ts + 1, sym, step, step + 1, step + 2, step * 3))
        else:
            events.append((BookDelta if kind == "delta" else BookSnapshot)(ts, ts + 2, sym, lv, lv[::-1]))
    out = tmp_path_factory.mktemp("cmp") / "s.jsonl"
    write_jsonl(out, events, PINNED)
    lines = out.read_text().splitlines(keepends=True)
    assert outcome(lines, True) == outcome(lines, False) == (events, {}, None, len(events))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=80), st.sampled_from([QUOTE, TRADE, BOOK]).flatmap(
    lambda base: st.tuples(st.integers(0, len(base)), st.integers(0, 8), st.text(max_size=6)).map(
        lambda cut: base[:cut[0]] + cut[2] + base[cut[0] + cut[1]:]))), max_size=6))
def test_arbitrary_text_never_crashes_the_scanner_and_reads_as_the_pure_reader(lines):
    """Random text and canonical lines with random splices (truncations, insertions, any
    characters): the compiled path gives exactly the pure path's outcome."""
    lines = [line.replace("\n", " ") + "\n" for line in lines]
    assert outcome(lines, True) == outcome(lines, False), lines
