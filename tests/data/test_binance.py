"""Binance raw WebSocket recordings: real fixtures (spot, USD-M across midnight, COIN-M) and
crafted bad input (gaps, crossed books, negative sizes, garbage, out-of-order times)."""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from mmkit.core.events import BUY, SELL, BookDelta, BookSnapshot, Quote, SeqGap, Trade
from mmkit.data import binance
from mmkit.data.binance import BinanceReader, symbol_from_name, venue_of
from mmkit.errors import MmkitError
from support import FIXTURES

REAL = FIXTURES / "real" / "binance"
BAD = FIXTURES / "bad"
USDM = [str(REAL / "usdm" / "btcusdt_20240718.gz"), str(REAL / "usdm" / "btcusdt_20240719.gz")]
SPOT = str(REAL / "spot" / "btcusdt_20240808.gz")
COINM = str(REAL / "cm" / "btcusd_perp_20240808.gz")


@pytest.fixture
def spot_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The built-in registry lists the spot data's grid (0.000001 BTC); pin it explicitly so
    these tests do not depend on the shipped file."""
    reg = tmp_path / "instruments.yaml"
    reg.write_text('version: 1\ninstruments:\n  - {venue: binance-spot, symbol: BTCUSDT, tick_size: "0.01", lot_size: "0.000001"}\n')
    monkeypatch.setenv("MMKIT_INSTRUMENTS", str(reg))


def read(paths, **kw):
    reader = BinanceReader(paths if isinstance(paths, list) else [paths], **kw)
    return list(reader), reader.report


def raw_lines(path: str) -> list[tuple[int, dict]]:
    out = []
    with gzip.open(path, "rt") as fh:
        for line in fh:
            recv, body = line.split(" ", 1)
            out.append((int(recv), json.loads(body)))
    return out


# ----------------------------------------------------------------------------- USD-M, across midnight
@pytest.fixture(scope="module")
def usdm():
    return read(USDM)


def test_usdm_pair_is_one_recording_without_gaps(usdm):
    events, report = usdm
    kinds = Counter(e.kind for e in events)
    assert kinds == {"quote": 52260, "trade": 10701, "book_delta": 9017, "book_snapshot": 1}, kinds
    assert report.seq_gaps == 0 and report.skipped == 0
    first, second = report.sources
    assert first.dropped == {"before_snapshot": 5}, "updates already inside the REST snapshot are dropped"
    # the second file has no snapshot: its first update continues the first file's sequence
    assert second.snapshots == 0 and not second.dropped and second.events["book_delta"] == 5696
    assert first.trade_id_gaps == second.trade_id_gaps == 0
    assert first.symbols == second.symbols == {"BTCUSDT"} and second.venue == "binance-usdm"
    assert not any(isinstance(e, SeqGap) for e in events)


def test_usdm_snapshot_is_aligned_on_last_update_id(usdm):
    events, _ = usdm
    raw = raw_lines(USDM[0])
    snap_line = next(i for i, (_, o) in enumerate(raw) if "lastUpdateId" in o)
    L = raw[snap_line][1]["lastUpdateId"]
    depth = [o["data"] for _, o in raw[:snap_line] if "stream" in o and "@depth" in o["stream"]]
    bridge = next(d for d in depth if d["u"] >= L)
    assert bridge["U"] <= L <= bridge["u"], "futures rule: the first applied update straddles lastUpdateId"
    snap, delta = events.index(next(e for e in events if isinstance(e, BookSnapshot))), None
    delta = next(e for e in events[snap:] if isinstance(e, BookDelta))
    assert events[snap].ts == delta.ts == bridge["E"] * 1_000_000, "snapshot stamped with its bridging update's E"
    assert len(events[snap].bids) == len(events[snap].asks) == 1000
    # the bridging update keeps its own receive time (before the snapshot line's)
    assert delta.recv_ts < events[snap].recv_ts


def test_usdm_values_sides_and_clocks(usdm):
    events, report = usdm
    inst = report.instruments["BTCUSDT"]
    assert (str(inst.tick_size), str(inst.lot_size), inst.venue) == ("0.1", "0.001", "binance-usdm")
    raw = [o["data"] for _, o in raw_lines(USDM[1]) if o.get("stream", "").endswith("@trade")][:2]
    trades = [e for e in events if isinstance(e, Trade) and e.ts >= raw[0]["T"] * 1_000_000][:2]
    for t, r in zip(trades, raw):
        assert t.ts == r["T"] * 1_000_000
        assert t.price == inst.px_to_ticks(r["p"]) and t.qty == inst.qty_to_lots(r["q"])
        assert t.side == (SELL if r["m"] else BUY), "m=true: the buyer was the maker, the aggressor sold"
    assert trades[0].side == BUY and trades[1].side == SELL
    q = next(e for e in events if isinstance(e, Quote))
    assert q.bid_px < q.ask_px


def test_usdm_clock_skew_is_reported_and_recv_ts_kept_raw(usdm):
    events, report = usdm
    for src in report.sources:
        clock = src.clock()
        assert clock["recv_clock"] == "local" and clock["skewed"] is True
        assert -1530 < clock["recv_minus_ts_median_ms"] < -1510, clock
        assert clock["recv_minus_ts_max_ms"] < 0
    trade = next(e for e in events if isinstance(e, Trade))
    assert trade.recv_ts < trade.ts, "the recorder clock is behind the exchange: recv_ts stays as recorded"


def test_second_file_alone_has_no_book_but_keeps_trades():
    events, report = read(USDM[1])
    kinds = Counter(e.kind for e in events)
    assert "book_delta" not in kinds and "book_snapshot" not in kinds
    assert kinds["trade"] == 9727 and kinds["quote"] == 45147
    dropped = report.sources[0].dropped
    assert sum(dropped.values()) == 5696 and dropped["buffer_overflow"] == 5696 - binance.BUFFER_MAX


# ----------------------------------------------------------------------------- spot and COIN-M
def test_spot_recording(spot_registry):
    events, report = read(SPOT)
    kinds = Counter(e.kind for e in events)
    assert kinds == {"quote": 28040, "trade": 9757, "book_delta": 3449, "book_snapshot": 1}, kinds
    src = report.sources[0]
    assert report.seq_gaps == 0 and src.dropped == {"before_snapshot": 2} and src.venue == "binance-spot"
    clock = src.clock()
    assert clock["skewed"] and -1280 < clock["recv_minus_ts_median_ms"] < -1260, clock
    # spot bookTicker has no event time: ts is the latest exchange time already seen
    raw = raw_lines(SPOT)
    latest = 0
    for recv, o in raw:
        d = o.get("data", {})
        if o.get("stream", "").endswith("@bookTicker"):
            q = next(e for e in events if isinstance(e, Quote) and e.recv_ts == recv)
            assert q.ts == latest * 1_000_000 and q.recv_ts == recv
            break
        latest = max(latest, d.get("E", 0), d.get("T", 0))


def test_spot_registry_grid_is_checked_not_rounded(tmp_path, monkeypatch):
    """With a lot coarser than the data, the reader refuses instead of rounding."""
    reg = tmp_path / "coarse.yaml"
    reg.write_text('version: 1\ninstruments:\n  - {venue: binance-spot, symbol: BTCUSDT, tick_size: "0.01", lot_size: "0.00001"}\n')
    monkeypatch.setenv("MMKIT_INSTRUMENTS", str(reg))
    with pytest.raises(MmkitError) as err:
        read(SPOT)
    assert err.value.code == "E_DATA_OFF_GRID" and re.search(r"btcusdt_20240808\.gz:\d+:", err.value.message)


def test_coinm_inverse_integer_contracts():
    events, report = read(COINM)
    kinds = Counter(e.kind for e in events)
    assert kinds == {"book_delta": 26824, "quote": 19136, "trade": 2286, "book_snapshot": 1}, kinds
    assert report.seq_gaps == 0 and report.sources[0].dropped == {"before_snapshot": 23}
    inst = report.instruments["BTCUSD_PERP"]
    assert inst.inverse and str(inst.lot_size) == "1" and str(inst.contract_multiplier) == "100"
    raw = next(o["data"] for _, o in raw_lines(COINM) if o.get("stream", "").endswith("@trade"))
    trade = next(e for e in events if isinstance(e, Trade))
    assert trade.qty == int(raw["q"]) and trade.price == inst.px_to_ticks(raw["p"])
    assert -1280 < report.sources[0].clock()["recv_minus_ts_median_ms"] < -1260


@pytest.mark.slow
def test_fast_paths_equal_the_json_path(monkeypatch: pytest.MonkeyPatch, spot_registry):
    never = re.compile(r"(?!)")
    names = ("_TICKER", "_TRADE_FUT", "_TRADE_SPOT")
    fast_res = {n: getattr(binance, n) for n in names}
    for paths in (USDM, [SPOT], [COINM]):
        for n in names:
            monkeypatch.setattr(binance, n, fast_res[n])
        fast, _ = read(paths)
        for n in names:
            monkeypatch.setattr(binance, n, never)
        slow, _ = read(paths)
        assert len(fast) == len(slow) and fast == slow, f"fast and JSON paths differ on {paths}"


# ----------------------------------------------------------------------------- crafted input
def test_futures_gap_fails_with_position():
    with pytest.raises(MmkitError) as err:
        read(str(BAD / "binance_usdm_gap.txt"))
    assert err.value.code == "E_DATA_SEQ_GAP"
    assert "binance_usdm_gap.txt:6:" in err.value.message and "expected 104, got 108" in err.value.message


def test_futures_gap_skip_marks_stale_until_next_snapshot():
    events, report = read(str(BAD / "binance_usdm_gap.txt"), on_error="skip")
    assert [e.kind for e in events] == ["book_snapshot", "book_delta", "trade", "book_delta", "seq_gap", "quote",
                                        "book_snapshot", "book_delta", "book_delta"]
    gap = events[4]
    assert isinstance(gap, SeqGap) and (gap.expected, gap.got) == (104, 108)
    src = report.sources[0]
    assert src.seq_gaps == 1 and src.gaps_at[0]["at"].endswith("binance_usdm_gap.txt:6")
    assert src.dropped == {"before_snapshot": 2}  # line 1 (before the first snapshot), line 6 (inside the second)
    resync = events[6]
    assert resync.bids == ((1001, 500), (999, 1000)) and resync.asks == ((1002, 1500),)
    assert events[7].bids == ((1000, 0),), "the held update that bridges the re-sync snapshot is applied"


def test_spot_gap_rule_is_u_plus_one():
    with pytest.raises(MmkitError) as err:
        read(str(BAD / "binance_spot_gap.txt"))
    assert err.value.code == "E_DATA_SEQ_GAP" and "binance_spot_gap.txt:4:" in err.value.message
    events, report = read(str(BAD / "binance_spot_gap.txt"), on_error="skip")
    assert [e.kind for e in events] == ["book_snapshot", "book_delta", "book_delta", "seq_gap"]
    assert (events[-1].expected, events[-1].got) == (15, 16)
    assert report.sources[0].dropped == {"never_synced": 2}


@pytest.mark.parametrize("name,code,line,kinds", [
    ("binance_crossed.txt", "E_DATA_CROSSED_BOOK", 3, ["book_snapshot", "book_delta", "seq_gap", "trade"]),
    ("binance_negative.txt", "E_DATA_NEGATIVE_SIZE", 3, ["book_snapshot", "book_delta", "trade"]),
    ("binance_off_grid.txt", "E_DATA_OFF_GRID", 3, ["book_snapshot", "book_delta", "trade"]),
    ("binance_garbage.txt", "E_DATA_BAD_LINE", 3, ["book_snapshot", "book_delta", "trade"]),
    ("binance_out_of_order.txt", "E_DATA_OUT_OF_ORDER", 4, ["book_snapshot", "book_delta", "trade", "trade"]),
])
def test_bad_input_fails_or_is_skipped_and_counted(name, code, line, kinds):
    path = str(BAD / name)
    with pytest.raises(MmkitError) as err:
        read(path)
    assert err.value.code == code and f"{name}:{line}:" in err.value.message and err.value.exit_code == 1
    assert "--on-error skip" in err.value.message
    events, report = read(path, on_error="skip")
    assert [e.kind for e in events] == kinds
    src = report.sources[0]
    assert src.skipped[code] >= 1 and src.skipped_at[0] == f"{path}:{line} {code}"


def test_skipped_crossed_update_leads_to_a_gap_not_a_patch():
    events, report = read(str(BAD / "binance_crossed.txt"), on_error="skip")
    gap = next(e for e in events if isinstance(e, SeqGap))
    assert (gap.expected, gap.got) == (101, 103), "the refused update u=103 is missing from the book"
    assert report.sources[0].skipped == {"E_DATA_CROSSED_BOOK": 1}


# ----------------------------------------------------------------------------- line shapes
def _write(tmp_path: Path, lines: list[str]) -> str:
    p = tmp_path / "btcusdt_20240101.txt"
    p.write_text("\n".join(lines) + "\n")
    return str(p)


def test_bare_payloads_aggtrades_and_lines_without_receive_time(tmp_path: Path):
    E = 1_700_000_000_000
    lines = [
        json.dumps({"e": "aggTrade", "E": E, "s": "BTCUSDT", "a": 7, "p": "100.1", "q": "0.002", "f": 1, "l": 2, "T": E, "m": True}),
        json.dumps({"e": "aggTrade", "E": E + 1, "s": "BTCUSDT", "a": 9, "p": "100.2", "q": "0.001", "f": 3, "l": 3, "T": E + 1, "m": False}),
        json.dumps({"result": None, "id": 1}),
    ]
    events, report = read(_write(tmp_path, lines), venue="binance-usdm")
    assert events == [Trade(E * 10**6, E * 10**6, "BTCUSDT", SELL, 1001, 2), Trade((E + 1) * 10**6, (E + 1) * 10**6, "BTCUSDT", BUY, 1002, 1)]
    src = report.sources[0]
    assert src.trade_id_gaps == 1 and src.recv_clock == "exchange" and src.ignored == {"control": 1}


def test_symbol_filter_and_helpers(tmp_path: Path):
    events, report = read(USDM[0], symbol="ETHUSDT")
    assert events == [] and report.sources[0].ignored["other_symbol"] > 0
    assert symbol_from_name("x/btcusd_perp_20240808.gz") == "BTCUSD_PERP"
    assert symbol_from_name("btcusdt_20240718.gz") == "BTCUSDT"
    assert venue_of("BTCUSDT", {"pu": 1}, "depth") == "binance-usdm"
    assert venue_of("BTCUSDT", {}, "depth") == "binance-spot"
    assert venue_of("BTCUSD_PERP", {}, "trade") == "binance-coinm"
    assert venue_of("BTCUSDT", {"M": True}, "trade") == "binance-spot"
    assert venue_of("BTCUSDT", {"u": 1}, "quote") == "binance-spot"
