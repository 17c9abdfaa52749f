"""Bybit v5: the real WebSocket recording (spot testnet, with control frames), Bybit's real
ob500 history file (zipped), the trade-history CSV (synthetic sample) and crafted bad input."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from mmkit.core.events import BUY, SELL, BookDelta, BookSnapshot, Quote, SeqGap, Trade
from mmkit.data.bybit import BybitReader
from mmkit.errors import MmkitError
from support import FIXTURES

FASTMM = str(FIXTURES / "real" / "bybit" / "raw_md_stream.jsonl")
OB500 = str(FIXTURES / "real" / "bybit" / "xrpusdt-ob500.data.zip")
SYN = FIXTURES / "synthetic"
BAD = FIXTURES / "bad"
MS = 1_000_000


def read(paths, **kw):
    reader = BybitReader(paths if isinstance(paths, list) else [paths], **kw)
    return list(reader), reader.report


def frames(path: str) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def test_ws_recording_with_control_frames():
    events, report = read(FASTMM)
    kinds = Counter(e.kind for e in events)
    assert kinds == {"book_snapshot": 1, "book_delta": 18, "quote": 14, "trade": 8}, kinds
    src = report.sources[0]
    assert src.ignored == {"control_frame": 3}, "subscribe ack, pong and rejected subscribe: skipped, counted"
    assert src.seq_gaps == 0 and not src.skipped and not src.dropped
    assert src.venue == "bybit-spot", "publicTrade frames without the derivatives-only L field: spot"
    assert src.clock()["recv_clock"] == "exchange"


def test_ws_field_mapping():
    events, _ = read(FASTMM)
    raw = frames(FASTMM)
    snap_frame = next(f for f in raw if f.get("type") == "snapshot" and f["topic"].startswith("orderbook.50"))
    snap = next(e for e in events if isinstance(e, BookSnapshot))
    assert snap.ts == snap_frame["cts"] * MS and snap.recv_ts == snap_frame["ts"] * MS
    assert snap.bids[0] == (7714050, 216593), "77140.5 on a 0.01 tick; 0.216593 on a 0.000001 lot"
    trade_frame = next(f for f in raw if f.get("topic", "").startswith("publicTrade"))
    t0 = trade_frame["data"][0]
    trade = next(e for e in events if isinstance(e, Trade))
    assert (trade.ts, trade.recv_ts, trade.side) == (t0["T"] * MS, trade_frame["ts"] * MS, SELL)
    assert any(e.side == BUY for e in events if isinstance(e, Trade))
    q_frame = next(f for f in raw if f.get("topic", "").startswith("orderbook.1."))
    quote = next(e for e in events if isinstance(e, Quote))
    assert quote.ts == q_frame["cts"] * MS and (quote.bid_px, quote.ask_px) == (7714050, 7714060)


def test_orderbook1_resends_are_not_gaps():
    events, report = read(FASTMM)
    us = [f["data"]["u"] for f in frames(FASTMM) if f.get("topic") == "orderbook.1.BTCUSDT"]
    assert len(us) != len(set(us)), "the recording repeats u on orderbook.1 (no change for 3 s)"
    assert report.seq_gaps == 0 and sum(isinstance(e, Quote) for e in events) == len(us)


def test_book_replay_is_consistent():
    """Snapshot + 18 deltas (u consecutive) keep an uncrossed book; sizes 0 delete levels."""
    from mmkit.data.readers import BookTracker

    events, _ = read(FASTMM)
    t = BookTracker()
    for e in events:
        if isinstance(e, BookSnapshot):
            t.reset(e.bids, e.asks)
        elif isinstance(e, BookDelta):
            assert not t.apply(e.bids, e.asks)
    assert t.bb is not None and t.ba is not None and t.bb < t.ba


def test_ob500_history_file_zipped():
    events, report = read(OB500)
    assert [e.kind for e in events] == ["book_snapshot"] + ["book_delta"] * 49
    assert len(events[0].bids) == len(events[0].asks) == 500
    src = report.sources[0]
    assert src.seq_gaps == 0 and src.venue == "bybit-linear" and src.symbols == {"XRPUSDT"}
    inst = report.instruments["XRPUSDT"]
    assert events[0].bids[0] == (inst.px_to_ticks("1.9531"), inst.qty_to_lots("6203"))
    assert events[0].ts == 1733011200589 * MS and events[0].recv_ts == 1733011200691 * MS


def test_recorder_prefixed_frames_use_the_local_clock(tmp_path: Path):
    lines = Path(FASTMM).read_text().splitlines()
    p = tmp_path / "btcusdt_prefixed.txt"
    p.write_text("".join(f"{1789299650000000000 + i * 1000} {ln}\n" for i, ln in enumerate(lines)))
    events, report = read(str(p))
    assert len(events) == 41 and report.sources[0].clock()["recv_clock"] == "local"
    assert events[0].recv_ts == 1789299650000000000 + 1000  # line 2 (line 1 is the subscribe ack)


def test_spot_book_without_trades_defaults_to_linear_and_says_so(tmp_path: Path):
    """Without a publicTrade frame nothing tells spot from linear: linear's coarser lot refuses
    the spot sizes, and the error says which venue to pass."""
    books = [ln for ln in Path(FASTMM).read_text().splitlines() if '"topic":"orderbook.50.' in ln]
    p = tmp_path / "book_only.jsonl"
    p.write_text("\n".join(books) + "\n")
    with pytest.raises(MmkitError) as err:
        read(str(p))
    assert err.value.code == "E_DATA_OFF_GRID" and "venue bybit-spot" in err.value.message
    events, report = read(str(p), venue="bybit-spot")
    assert len(events) == 19 and report.sources[0].venue == "bybit-spot"


def test_gap_fails_or_marks_stale_until_snapshot():
    path = str(BAD / "bybit_gap.jsonl")
    with pytest.raises(MmkitError) as err:
        read(path)
    assert err.value.code == "E_DATA_SEQ_GAP" and "bybit_gap.jsonl:5:" in err.value.message
    events, report = read(path, on_error="skip")
    assert [e.kind for e in events] == ["book_snapshot", "book_delta", "seq_gap", "trade", "book_snapshot", "book_delta"]
    gap = events[2]
    assert isinstance(gap, SeqGap) and (gap.expected, gap.got) == (44, 45)
    src = report.sources[0]
    assert src.dropped == {"before_snapshot": 1, "stale": 1} and src.ignored == {"control_frame": 1}
    assert events[4].bids == ((1001, 1000),), "the u=1 snapshot after a restart replaces the book"


def test_bad_frames_fail_or_are_skipped():
    path = str(BAD / "bybit_bad.jsonl")
    with pytest.raises(MmkitError) as err:
        read(path)
    assert err.value.code == "E_DATA_BAD_LINE" and "bybit_bad.jsonl:2:" in err.value.message
    events, report = read(path, on_error="skip")
    assert [e.kind for e in events] == ["book_snapshot", "seq_gap", "trade", "book_snapshot"]
    src = report.sources[0]
    assert src.skipped == {"E_DATA_BAD_LINE": 3, "E_DATA_CROSSED_BOOK": 1, "E_DATA_NEGATIVE_SIZE": 1, "E_DATA_OUT_OF_ORDER": 1}
    assert [p.rsplit(":", 1)[1] for p in src.skipped_at] == [
        "2 E_DATA_BAD_LINE", "3 E_DATA_CROSSED_BOOK", "5 E_DATA_NEGATIVE_SIZE", "6 E_DATA_BAD_LINE",
        "8 E_DATA_OUT_OF_ORDER", "9 E_DATA_BAD_LINE"]


# ----------------------------------------------------------------------------- trade history CSV
def test_trade_history_csv_contract_format():
    events, report = read(str(SYN / "bybit_trades_BTCUSDT2024-01-01.csv.gz"))
    assert events == [
        Trade(1704067200097400000, 1704067200097400000, "BTCUSDT", BUY, 422836, 10),
        Trade(1704067200500000000, 1704067200500000000, "BTCUSDT", SELL, 422835, 2),
        Trade(1704067201000000000, 1704067201000000000, "BTCUSDT", SELL, 422835, 125),
        Trade(1704067201250000000, 1704067201250000000, "BTCUSDT", BUY, 422840, 1000),
        Trade(1704067202999900000, 1704067202999900000, "BTCUSDT", BUY, 422841, 1),
    ]
    assert report.sources[0].venue == "bybit-linear" and report.sources[0].clock()["recv_clock"] == "exchange"


def test_trade_history_csv_spot_format():
    events, report = read(str(SYN / "bybit_trades_BTCUSDT-2024-01-01.csv"))
    assert [(e.ts, e.side, e.price, e.qty) for e in events] == [
        (1704067200074000000, SELL, 4228361, 3718), (1704067200150000000, BUY, 4228362, 500),
        (1704067200150000000, BUY, 4228362, 500), (1704067201003000000, SELL, 4228301, 120000)]
    assert report.sources[0].venue == "bybit-spot" and report.sources[0].symbols == {"BTCUSDT"}


def test_trade_history_csv_bad_rows(tmp_path: Path):
    p = tmp_path / "BTCUSDT2024-01-02.csv"
    p.write_text("timestamp,symbol,side,size,price,tickDirection,trdMatchID,grossValue,homeNotional,foreignNotional\n"
                 "1704153600.5,BTCUSDT,Buy,0.010,42000.0,PlusTick,a,1,0.01,420\n"
                 "1704153600.1,BTCUSDT,Buy,0.010,42000.0,PlusTick,b,1,0.01,420\n"
                 "1704153601.0,BTCUSDT,Hold,0.010,42000.0,PlusTick,c,1,0.01,420\n"
                 "1704153602.0,BTCUSDT,Sell,-0.010,42000.0,PlusTick,d,1,0.01,420\n"
                 "1704153603.0,BTCUSDT,Sell,0.010\n"
                 "1704153604.0,BTCUSDT,Sell,0.010,42000.0,PlusTick,e,1,0.01,420\n")
    with pytest.raises(MmkitError) as err:
        read(str(p))
    assert err.value.code == "E_DATA_OUT_OF_ORDER" and "ascending" in err.value.message and ".csv:3:" in err.value.message
    events, report = read(str(p), on_error="skip")
    assert len(events) == 2
    assert report.sources[0].skipped == {"E_DATA_OUT_OF_ORDER": 1, "E_DATA_BAD_LINE": 2, "E_DATA_NEGATIVE_SIZE": 1}
    (tmp_path / "BTCUSDT2024-01-03.csv").write_text("timestamp,symbol,price\n1,BTCUSDT,1\n")
    with pytest.raises(MmkitError) as err:
        read(str(tmp_path / "BTCUSDT2024-01-03.csv"))
    assert err.value.code == "E_DATA_BAD_LINE" and "lacks columns" in err.value.message
