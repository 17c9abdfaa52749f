"""open_events: one recording split over files, distinct streams merged by time, mmkit's own
formats, stdin, the report; and the shared machinery (exact units, the book tracker)."""

from __future__ import annotations

import io
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmkit.artifacts import canonical_json
from mmkit.core.events import BookDelta, BookSnapshot, Trade
from mmkit.core.instruments import to_units
from mmkit.data.readers import (
    BadNumber,
    BookTracker,
    NegativeValue,
    OffGrid,
    decimal_to_ns,
    open_events,
    unit_converter,
)
from mmkit.errors import MmkitError
from support import FIXTURES

REAL = FIXTURES / "real"
USDM = [str(REAL / "binance/usdm/btcusdt_20240718.gz"), str(REAL / "binance/usdm/btcusdt_20240719.gz")]
TARDIS = REAL / "tardis"


def test_files_of_one_recording_are_read_in_time_order_as_one_stream():
    fwd = open_events(USDM)
    rev = open_events(list(reversed(USDM)))
    a, b = list(fwd), list(rev)
    assert a == b and len(a) == 71979
    assert rev.groups == [("binance", USDM)]
    assert rev.report.seq_gaps == 0 and rev.report.skipped == 0
    assert [s.path for s in rev.report.sources] == USDM


def test_distinct_streams_are_merged_by_exchange_time():
    paths = [str(TARDIS / "bitmex_trades_XBTUSD.csv"), str(TARDIS / "huobi-dm-swap_quotes_BTC-USD.csv"),
             str(TARDIS / "deribit_incremental_book_L2_BTC-PERPETUAL.csv")]
    stream = open_events(paths)
    events = list(stream)
    assert len(stream.groups) == 3 and len(events) == 21
    ts = [e.ts for e in events]
    assert ts == sorted(ts)
    assert set(stream.instruments) == {"XBTUSD", "BTC-USD", "BTC-PERPETUAL"}


def test_symbol_filter_and_conflicting_symbols():
    stream = open_events([str(TARDIS / "bitmex_trades_XBTUSD.csv"), str(TARDIS / "huobi-dm-swap_quotes_BTC-USD.csv")],
                         symbol="xbtusd")
    assert {e.symbol for e in stream} == {"XBTUSD"}
    both = open_events([str(TARDIS / "binance-futures_book_snapshot_5_BTCUSDT.csv"), str(REAL / "bybit/raw_md_stream.jsonl")])
    with pytest.raises(MmkitError) as err:
        list(both)
    assert err.value.code == "E_DATA_SYMBOL_CONFLICT"


def test_jsonl_and_cache_inputs_round_trip(tmp_path: Path):
    from mmkit.data.cache import write_cache
    from mmkit.data.jsonl import write_jsonl

    src = open_events(str(REAL / "bybit/raw_md_stream.jsonl"))
    events = list(src)
    write_jsonl(tmp_path / "fastmm.jsonl", events, src.instruments)
    write_cache(tmp_path / "fastmm.mmkc", events, src.instruments)
    for name, fmt in (("fastmm.jsonl", "jsonl"), ("fastmm.mmkc", "cache")):
        back = open_events(str(tmp_path / name), venue="bybit-spot")
        assert list(back) == events, name
        rep = back.report.to_dict()
        assert rep["sources"][0]["format"] == fmt and rep["events_total"] == len(events)
        assert rep["instruments"]["BTCUSDT"]["lot_size"] == "0.000001"


def test_stdin(monkeypatch: pytest.MonkeyPatch):
    data = (TARDIS / "bitmex_trades_XBTUSD.csv").read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    stream = open_events("-")
    events = list(stream)
    assert len(events) == 10 and all(isinstance(e, Trade) for e in events)
    assert stream.report.sources[0].path == "-"


def test_report_is_json_ready_and_usage_errors():
    stream = open_events(str(REAL / "bybit/xrpusdt-ob500.data.zip"))
    list(stream)
    doc = stream.report.to_dict()
    canonical_json(doc)  # ASCII JSON, no NaN: the artifact writer accepts it
    assert doc["events"] == {"book_delta": 49, "book_snapshot": 1} and doc["seq_gaps"] == 0
    with pytest.raises(MmkitError) as err:
        open_events(USDM, on_error="ignore")
    assert err.value.exit_code == 64
    with pytest.raises(MmkitError) as err:
        open_events(USDM, fmt="parquet")
    assert err.value.exit_code == 64


def test_explicit_format_overrides_detection():
    stream = open_events(str(REAL / "bybit/raw_md_stream.jsonl"), fmt="bybit")
    assert len(list(stream)) == 41


# ----------------------------------------------------------------------------- exact units
STEPS = [Decimal(s) for s in ("0.01", "0.1", "0.5", "10", "1", "0.00001", "0.000001", "0.0001", "25")]


@settings(max_examples=400, deadline=None)
@given(step=st.sampled_from(STEPS), units=st.integers(min_value=0, max_value=10**12),
       pad=st.integers(min_value=0, max_value=6))
def test_converter_matches_decimal_on_the_grid(step, units, pad):
    text = format(Decimal(units) * step, "f")
    if pad and "." in text:
        text += "0" * pad  # trailing zeros as Binance writes them ("61837.63000000")
    elif pad:
        text += "." + "0" * pad
    conv = unit_converter(step, "size")
    assert conv[text] == to_units(text, step) == units
    assert conv[text] == units  # cached path


@settings(max_examples=300, deadline=None)
@given(step=st.sampled_from(STEPS), value=st.decimals(min_value=0, max_value=10**9, places=8, allow_nan=False))
def test_converter_agrees_with_decimal_or_refuses_off_grid(step, value):
    text = format(value, "f")
    q = value / step
    conv = unit_converter(step, "size")
    if q == q.to_integral_value():
        assert conv[text] == int(q)
    else:
        with pytest.raises(OffGrid):
            conv[text]


def test_converter_refusals():
    px = unit_converter(Decimal("0.1"), "price", positive=True)
    qty = unit_converter(Decimal("0.001"), "size")
    for bad in ("abc", "", "1.2.3", "NaN", "inf", " 1.0", "1,0", "\u0661.0", None, True, [1]):
        with pytest.raises((BadNumber, TypeError)):
            qty[bad]
    with pytest.raises(NegativeValue):
        qty["-0.001"]
    with pytest.raises(NegativeValue):
        px["0"]
    with pytest.raises(OffGrid):
        px["100.05"]
    assert qty["1e-3"] == 1 and qty["0"] == 0 and qty[2] == 2000 and qty[0.5] == 500
    assert "-0.001" not in qty, "refused values are never cached"


def test_decimal_to_ns():
    assert decimal_to_ns("1735689600.0974", 0) == 1735689600097400000
    assert decimal_to_ns("1585699200245000", -6) == 1585699200245000000
    assert decimal_to_ns("1704067201", 0) == 1704067201000000000
    with pytest.raises(BadNumber):
        decimal_to_ns("1.0000000001", 0)
    with pytest.raises(BadNumber):
        decimal_to_ns("-1", 0)


# ----------------------------------------------------------------------------- book tracker
levels = st.lists(st.tuples(st.integers(1, 40), st.integers(0, 3)), max_size=8)


@settings(max_examples=300, deadline=None)
@given(snap_b=levels, snap_a=levels, updates=st.lists(st.tuples(levels, levels), max_size=30))
def test_tracker_best_prices_match_brute_force(snap_b, snap_a, updates):
    t = BookTracker()
    bids = {p: q for p, q in snap_b if q}
    asks = {p: q for p, q in snap_a if q}
    t.reset(snap_b, snap_a)
    for ub, ua in updates:
        before = (dict(t.bids), dict(t.asks), t.bb, t.ba)
        crossed, old = t.apply_logged(tuple(ub), tuple(ua))
        for p, q in ub:
            bids.pop(p, None) if not q else bids.__setitem__(p, q)
        for p, q in ua:
            asks.pop(p, None) if not q else asks.__setitem__(p, q)
        assert t.bids == bids and t.asks == asks
        assert t.bb == (max(bids) if bids else None) and t.ba == (min(asks) if asks else None)
        assert crossed == (bool(bids) and bool(asks) and max(bids) >= min(asks))
        if crossed:
            t.undo(tuple(ub), tuple(ua), old)
            assert (t.bids, t.asks, t.bb, t.ba) == before
            bids, asks = dict(t.bids), dict(t.asks)


def test_events_are_the_core_classes():
    events = list(open_events(str(TARDIS / "deribit_incremental_book_L2_BTC-PERPETUAL.csv")))
    assert type(events[0]) is BookSnapshot and not isinstance(events[0], BookDelta)
