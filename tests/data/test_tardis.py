"""Tardis.dev CSV: the real samples of every supported data type, incremental_book_L2
semantics (grouping, snapshot reset, rows before the first snapshot) and crafted bad rows."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import pytest

from mmkit.core.events import BUY, SELL, BookDelta, BookSnapshot, Quote, Trade
from mmkit.data.tardis import TardisReader, data_type
from mmkit.errors import MmkitError
from support import FIXTURES

REAL = FIXTURES / "real" / "tardis"
BAD = FIXTURES / "bad"
US = 1000


def read(paths, **kw):
    reader = TardisReader(paths if isinstance(paths, list) else [paths], **kw)
    return list(reader), reader.report


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_incremental_book_l2_real_sample_is_one_snapshot():
    path = REAL / "deribit_incremental_book_L2_BTC-PERPETUAL.csv"
    events, report = read(str(path))
    raw = rows(path)
    assert len(events) == 1 and isinstance(events[0], BookSnapshot)
    snap = events[0]
    inst = report.instruments["BTC-PERPETUAL"]
    assert inst.inverse and inst.venue == "deribit"
    assert snap.bids == () and len(snap.asks) == len(raw) == 15
    assert snap.asks[0] == (inst.px_to_ticks(raw[0]["price"]), inst.qty_to_lots(raw[0]["amount"]))
    assert (snap.ts, snap.recv_ts) == (int(raw[0]["timestamp"]) * US, int(raw[0]["local_timestamp"]) * US)


def test_trades_real_sample():
    path = REAL / "bitmex_trades_XBTUSD.csv"
    events, report = read(str(path))
    raw = rows(path)
    assert len(events) == len(raw) == 10 and all(isinstance(e, Trade) for e in events)
    inst = report.instruments["XBTUSD"]
    for e, r in zip(events, raw):
        assert e.side == (SELL if r["side"] == "sell" else BUY)
        assert (e.price, e.qty) == (inst.px_to_ticks(r["price"]), inst.qty_to_lots(r["amount"]))
        assert (e.ts, e.recv_ts) == (int(r["timestamp"]) * US, int(r["local_timestamp"]) * US)
    clock = report.sources[0].clock()
    assert clock["recv_clock"] == "local" and clock["recv_minus_ts_min_ms"] > 0 and not clock["skewed"]


@pytest.mark.parametrize("name,depth", [("binance-futures_book_snapshot_25_BTCUSDT.csv", 25),
                                        ("binance-futures_book_snapshot_5_BTCUSDT.csv", 5)])
def test_book_snapshot_real_samples(name, depth):
    path = REAL / name
    events, report = read(str(path))
    raw = rows(path)
    assert len(events) == len(raw) == 10 and all(isinstance(e, BookSnapshot) for e in events)
    inst = report.instruments["BTCUSDT"]
    assert inst.venue == "binance-futures"
    for e, r in zip(events, raw):
        assert len(e.bids) == len(e.asks) == depth
        assert e.asks[0] == (inst.px_to_ticks(r["asks[0].price"]), inst.qty_to_lots(r["asks[0].amount"]))
        assert e.bids[-1] == (inst.px_to_ticks(r[f"bids[{depth - 1}].price"]), inst.qty_to_lots(r[f"bids[{depth - 1}].amount"]))
        assert e.bids[0][0] < e.asks[0][0]
    assert report.sources[0].fmt == f"tardis:book_snapshot_{depth}"


def test_quotes_real_sample():
    path = REAL / "huobi-dm-swap_quotes_BTC-USD.csv"
    events, report = read(str(path))
    raw = rows(path)
    inst = report.instruments["BTC-USD"]
    assert inst.inverse and str(inst.contract_multiplier) == "100"
    assert [(e.bid_px, e.bid_qty, e.ask_px, e.ask_qty) for e in events] == [
        (inst.px_to_ticks(r["bid_price"]), int(r["bid_amount"]), inst.px_to_ticks(r["ask_price"]), int(r["ask_amount"]))
        for r in raw]
    assert all(isinstance(e, Quote) for e in events)


def test_header_recognition():
    assert data_type("exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount".split(",")) == "incremental_book_L2"
    assert data_type("exchange,symbol,timestamp,local_timestamp,id,side,price,amount".split(",")) == "trades"
    assert data_type("exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount".split(",")) == "quotes"
    assert data_type("exchange,symbol,timestamp,local_timestamp,funding_rate,open_interest".split(",")) == ""


INC = "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount\n"


def test_incremental_grouping_and_snapshot_reset(tmp_path: Path):
    p = tmp_path / "deribit_incremental_book_L2_2020-04-01_BTC-PERPETUAL.csv.gz"
    body = INC + (
        "deribit,BTC-PERPETUAL,100,150,false,bid,6400,10\n"     # before the first snapshot: dropped
        "deribit,BTC-PERPETUAL,200,250,true,bid,6400,100\n"
        "deribit,BTC-PERPETUAL,200,250,true,ask,6401,200\n"
        "deribit,BTC-PERPETUAL,300,350,false,bid,6400.5,50\n"   # one message: two rows, same times
        "deribit,BTC-PERPETUAL,300,350,false,ask,6401,0\n"
        "deribit,BTC-PERPETUAL,400,450,false,ask,6402,70\n"
        "deribit,BTC-PERPETUAL,500,550,true,bid,6390,10\n"      # a snapshot after updates: reset
        "deribit,BTC-PERPETUAL,500,550,true,ask,6391,20\n"
        "deribit,BTC-PERPETUAL,600,650,false,bid,6390,0\n")
    with gzip.open(p, "wt") as fh:
        fh.write(body)
    events, report = read(str(p))
    assert events == [
        BookSnapshot(200 * US, 250 * US, "BTC-PERPETUAL", ((12800, 10),), ((12802, 20),)),
        BookDelta(300 * US, 350 * US, "BTC-PERPETUAL", ((12801, 5),), ((12802, 0),)),
        BookDelta(400 * US, 450 * US, "BTC-PERPETUAL", (), ((12804, 7),)),
        BookSnapshot(500 * US, 550 * US, "BTC-PERPETUAL", ((12780, 1),), ((12782, 2),)),
        BookDelta(600 * US, 650 * US, "BTC-PERPETUAL", ((12780, 0),), ()),
    ]
    assert report.sources[0].dropped == {"before_snapshot": 1} and report.sources[0].snapshots == 2


def test_incremental_bad_rows():
    path = str(BAD / "tardis_incremental_bad.csv")
    with pytest.raises(MmkitError) as err:
        read(path)
    assert err.value.code == "E_DATA_CROSSED_BOOK" and "tardis_incremental_bad.csv:6:" in err.value.message
    events, report = read(path, on_error="skip")
    assert [e.kind for e in events] == ["book_snapshot", "book_delta", "book_delta"]
    src = report.sources[0]
    assert [p.split(":", 1)[1] for p in src.skipped_at] == [
        "6 E_DATA_CROSSED_BOOK", "7 E_DATA_NEGATIVE_SIZE", "8 E_DATA_BAD_LINE", "9 E_DATA_OUT_OF_ORDER",
        "10 E_DATA_BAD_LINE", "11 E_DATA_OFF_GRID"]
    # the refused update was undone: the last delta applies to the book without it
    assert events[-1].asks == ((12804, 4),)


def test_trades_bad_rows():
    path = str(BAD / "tardis_trades_bad.csv")
    with pytest.raises(MmkitError) as err:
        read(path)
    assert err.value.code == "E_DATA_OUT_OF_ORDER" and "tardis_trades_bad.csv:4:" in err.value.message
    events, report = read(path, on_error="skip")
    assert len(events) == 2
    src = report.sources[0]
    assert src.ignored == {"unknown_side": 1}
    assert src.skipped == {"E_DATA_OUT_OF_ORDER": 1, "E_DATA_BAD_LINE": 2}


def test_unsupported_data_type(tmp_path: Path):
    p = tmp_path / "deribit_derivative_ticker.csv"
    p.write_text("exchange,symbol,timestamp,local_timestamp,funding_rate\nderibit,BTC-PERPETUAL,1,2,0.1\n")
    with pytest.raises(MmkitError) as err:
        read(str(p))
    assert err.value.code == "E_DATA_UNKNOWN_FORMAT"
