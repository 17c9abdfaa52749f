"""convert and slice (mmkit.data.convert): exact round trips through JSONL and the cache on
real recordings, merging, the error policy with no partial output, window bounds, the
standalone snapshot of a slice, and the small helpers (times, formats, input records)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmkit.core.book import L2Book
from mmkit.data.cache import load_cache
from mmkit.data.convert import (
    LATE_NS,
    convert,
    input_records,
    iso_utc,
    output_format,
    parse_time,
    slice_events,
    write_events,
)
from mmkit.data.jsonl import JsonlReader
from mmkit.data.readers import open_events
from mmkit.errors import MmkitError
from support import FIXTURES, validate_artifact

REAL = FIXTURES / "real"
BAD = FIXTURES / "bad"
USDM = [str(REAL / "binance/usdm/btcusdt_20240718.gz"), str(REAL / "binance/usdm/btcusdt_20240719.gz")]
TARDIS = [str(REAL / "tardis/bitmex_trades_XBTUSD.csv"), str(REAL / "tardis/huobi-dm-swap_quotes_BTC-USD.csv")]
MINUTE = (parse_time("2024-07-19T00:01:00Z"), parse_time("2024-07-19T00:02:00Z"))


@pytest.fixture(scope="module")
def usdm_events():
    return list(open_events(USDM))


@pytest.fixture(scope="module")
def usdm_jsonl(tmp_path_factory):
    out = tmp_path_factory.mktemp("conv") / "usdm.jsonl"
    res = convert(USDM, str(out))
    return out, res


def test_convert_binance_to_jsonl_then_cache_then_jsonl_is_exact(usdm_jsonl, usdm_events, tmp_path: Path):
    jsonl, res = usdm_jsonl
    assert res.to_fmt == "jsonl" and res.tally.total == len(usdm_events) == 71979
    assert res.tally.counts == {"book_delta": 9017, "book_snapshot": 1, "quote": 52260, "trade": 10701}
    assert (res.tally.first_ts, res.tally.last_ts) == (min(e.ts for e in usdm_events), max(e.ts for e in usdm_events))
    assert list(JsonlReader(jsonl, venue="binance-usdm")) == usdm_events
    cache = tmp_path / "usdm.mmkc"
    back = convert([str(jsonl)], str(cache), venue="binance-usdm")
    assert back.to_fmt == "cache" and back.tally.total == len(usdm_events)
    with load_cache(cache, verify=True) as loaded:
        assert list(loaded) == usdm_events
        assert loaded.source == input_records([str(jsonl)])[0], "one input: the cache header names it"
        assert loaded.instruments[0].venue == "binance-usdm"
    again = tmp_path / "again.jsonl"
    convert([str(cache)], str(again))
    assert again.read_bytes() == jsonl.read_bytes()


def test_convert_straight_to_cache_matches(usdm_events, tmp_path: Path):
    res = convert(USDM, str(tmp_path / "pair.mmc"))
    with load_cache(tmp_path / "pair.mmc") as loaded:
        assert list(loaded) == usdm_events
        assert loaded.source is None, "several inputs: no single source record"
    body = res.body()
    assert body["seq_gaps"] == 0 and body["skipped_total"] == 0 and body["events_read"] == len(usdm_events)
    assert [s["path"] for s in body["sources"]] == USDM
    validate_artifact(res.artifact())


def test_several_streams_are_merged_in_time_order(tmp_path: Path):
    res = convert(TARDIS, str(tmp_path / "m.jsonl"))
    events = list(JsonlReader(tmp_path / "m.jsonl"))
    assert len(events) == res.tally.total == 20
    assert [e.ts for e in events] == sorted(e.ts for e in events)
    assert {e.symbol for e in events} == {"XBTUSD", "BTC-USD"}
    assert "20 events" in res.summary() and "trade=10" in res.summary() and "quote=10" in res.summary()


def test_bad_input_fails_with_code_and_position_and_leaves_no_file(tmp_path: Path):
    out = tmp_path / "out.jsonl"
    out.write_text("old\n")
    for name, code, line in (("binance_crossed.txt", "E_DATA_CROSSED_BOOK", 3), ("binance_negative.txt", "E_DATA_NEGATIVE_SIZE", 3),
                             ("binance_garbage.txt", "E_DATA_BAD_LINE", 3), ("binance_usdm_gap.txt", "E_DATA_SEQ_GAP", 6)):
        with pytest.raises(MmkitError) as err:
            convert([str(BAD / name)], str(out))
        assert err.value.code == code, name
        assert f"{name}:{line}:" in err.value.message, err.value.message
        assert out.read_text() == "old\n", "the old output is untouched"
        with pytest.raises(MmkitError):
            convert([str(BAD / name)], str(tmp_path / "new.mmkc"))
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"], "no partial or temp file"


def test_skip_counts_what_it_drops(tmp_path: Path):
    res = convert([str(BAD / "bybit_bad.jsonl")], str(tmp_path / "b.jsonl"), on_error="skip")
    body = res.body()
    assert body["skipped_total"] == sum(body["skipped"].values()) > 0
    assert body["skipped"]["E_DATA_CROSSED_BOOK"] == 1 and body["seq_gaps"] == 1
    assert res.tally.total == len(list(JsonlReader(tmp_path / "b.jsonl", venue="bybit-linear")))


def test_slice_keeps_exactly_the_window(usdm_events, tmp_path: Path):
    start, end = MINUTE
    res = slice_events(USDM, str(tmp_path / "s.jsonl"), start, end)
    got = list(JsonlReader(tmp_path / "s.jsonl", venue="binance-usdm"))
    assert got == [e for e in usdm_events if start <= e.ts < end]
    assert res.window == {"from_ts": start, "to_ts": end, "from_utc": "2024-07-19T00:01:00Z", "to_utc": "2024-07-19T00:02:00Z",
                          "snapshots": 0}
    assert res.body()["events_read"] < len(usdm_events), "reading stops a minute past the window"
    assert all(s.lines for s in res.report.sources), "the readers' report is complete after the early stop"
    # bounds: an event exactly at --from is in, exactly at --to is out
    t0 = usdm_events[100].ts
    edge = slice_events(USDM, str(tmp_path / "e.jsonl"), t0, t0 + 1)
    assert edge.tally.total == sum(1 for e in usdm_events if e.ts == t0) > 0
    none = slice_events(USDM, str(tmp_path / "n.jsonl"), t0 + 1, t0 + 2)
    assert none.tally.total == sum(1 for e in usdm_events if e.ts == t0 + 1)
    assert LATE_NS == 60 * 10**9


def test_slice_snapshot_makes_the_slice_stand_alone(usdm_events, tmp_path: Path):
    start, end = MINUTE
    res = slice_events(USDM, str(tmp_path / "s.mmkc"), start, end, snapshot=True)
    assert res.window["snapshots"] == 1
    with load_cache(tmp_path / "s.mmkc") as loaded:
        got = list(loaded)
    assert got[0].kind == "book_snapshot" and got[0].ts == got[0].recv_ts == start
    assert got[1:] == [e for e in usdm_events if start <= e.ts < end]
    full, part = L2Book("BTCUSDT"), L2Book("BTCUSDT")
    for e in usdm_events:
        if e.ts < end:
            full.apply(e)
    for e in got:
        part.apply(e)
    assert (part.bids, part.asks) == (full.bids, full.asks), "snapshot + window rebuilds the same book"


def test_slice_refuses_an_empty_window(tmp_path: Path):
    with pytest.raises(MmkitError) as err:
        slice_events(USDM, str(tmp_path / "x.jsonl"), 10, 10)
    assert err.value.code == "E_USAGE" and err.value.exit_code == 64
    assert not (tmp_path / "x.jsonl").exists()


def test_parse_time_and_iso_utc():
    assert parse_time("2024-07-19T00:01:00Z") == 1721347260 * 10**9
    assert parse_time("2024-07-19") == parse_time("2024-07-19T00:00:00Z") == parse_time("2024-07-19 00:00")
    assert parse_time("2024-07-19T02:00:00+02:00") == parse_time("2024-07-19T00:00:00") == parse_time("2024-07-19T00:00:00-0000")
    assert parse_time("2024-07-19T00:00:00.000000001Z") == parse_time("2024-07-19") + 1
    assert parse_time("2024-07-19T00:00:00.5Z") == parse_time("2024-07-19") + 500_000_000
    assert parse_time("1721347260000000000") == 1721347260 * 10**9
    for bad in ("yesterday", "2024-13-01", "2024-07-19T25:00:00Z", "2024-07-19T00:00:00.1234567890Z", ""):
        with pytest.raises(MmkitError) as err:
            parse_time(bad, "--from")
        assert err.value.code == "E_USAGE" and err.value.exit_code == 64 and "--from" in err.value.message
    assert iso_utc(1721347260 * 10**9) == "2024-07-19T00:01:00Z"
    assert iso_utc(1721347260 * 10**9 + 60_000_000) == "2024-07-19T00:01:00.06Z"
    assert iso_utc(1) == "1970-01-01T00:00:00.000000001Z" and iso_utc(None) is None
    for ns in (0, 1, 123456789, 1721347260 * 10**9 + 987654321):
        assert parse_time(iso_utc(ns)) == ns


def test_output_format_and_input_records(tmp_path: Path):
    assert output_format("a.jsonl", None) == "jsonl" and output_format("-", None) == "jsonl"
    assert output_format("a.MMKC", None) == output_format("a.mmc", None) == output_format("a.cache", None) == "cache"
    assert output_format("a.mmkc", "jsonl") == "jsonl"
    with pytest.raises(MmkitError) as err:
        output_format("a", "parquet")
    assert err.value.exit_code == 64
    with pytest.raises(MmkitError):
        write_events(str(tmp_path / "x"), [], {}, "parquet")
    zipped = str(REAL / "bybit/xrpusdt-ob500.data.zip")
    recs = input_records(["-", zipped + "::2024-12-01_XRPUSDT_ob500.data"])
    assert recs[0] == {"path": "-", "sha256": "stdin"}
    assert recs[1]["sha256"] == input_records([zipped])[0]["sha256"] == "5e53f958e58340da19e8fd00be203fed6032eb92155f0430f0deca3076aad314"


def test_progress_only_on_a_tty(capsys, monkeypatch, tmp_path):
    """convert draws the shared progress line only when stderr is a terminal."""
    monkeypatch.delenv("MM_PROGRESS", raising=False)
    src = next(iter(sorted((FIXTURES / "real" / "binance" / "usdm").glob("*.gz"))))
    convert([str(src)], str(tmp_path / "a.jsonl"), progress=True)
    assert capsys.readouterr().err == ""  # pytest's stderr is not a terminal
    monkeypatch.setenv("MM_PROGRESS", "1")
    convert([str(src)], str(tmp_path / "b.jsonl"), progress=True)
    err = capsys.readouterr().err
    assert err.startswith("\rdata convert ") and " events " in err and err.endswith("\n")
