"""Format detection: every real fixture, the synthetic Bybit trade files, mmkit JSONL and
cache files, compressed copies, and inputs that are unknown or ambiguous."""

from __future__ import annotations

import gzip
import shutil
import zipfile
from pathlib import Path

import pytest

from mmkit.data.detect import detect_format, sniff
from mmkit.errors import MmkitError
from support import FIXTURES

REAL = FIXTURES / "real"


@pytest.mark.parametrize("rel,fmt", [
    ("binance/usdm/btcusdt_20240718.gz", "binance"),
    ("binance/usdm/btcusdt_20240719.gz", "binance"),
    ("binance/spot/btcusdt_20240808.gz", "binance"),
    ("binance/cm/btcusd_perp_20240808.gz", "binance"),
    ("bybit/raw_md_stream.jsonl", "bybit"),
    ("bybit/xrpusdt-ob500.data.zip", "bybit"),
    ("tardis/deribit_incremental_book_L2_BTC-PERPETUAL.csv", "tardis"),
    ("tardis/bitmex_trades_XBTUSD.csv", "tardis"),
    ("tardis/binance-futures_book_snapshot_25_BTCUSDT.csv", "tardis"),
    ("tardis/binance-futures_book_snapshot_5_BTCUSDT.csv", "tardis"),
    ("tardis/huobi-dm-swap_quotes_BTC-USD.csv", "tardis"),
])
def test_real_fixtures(rel, fmt):
    assert detect_format(REAL / rel) == fmt


def test_synthetic_bybit_trade_history():
    assert detect_format(FIXTURES / "synthetic" / "bybit_trades_BTCUSDT2024-01-01.csv.gz") == "bybit"
    assert detect_format(FIXTURES / "synthetic" / "bybit_trades_BTCUSDT-2024-01-01.csv") == "bybit"


def test_stream_identity_groups_one_recording():
    a = sniff(str(REAL / "binance/usdm/btcusdt_20240718.gz"))
    b = sniff(str(REAL / "binance/usdm/btcusdt_20240719.gz"))
    spot = sniff(str(REAL / "binance/spot/btcusdt_20240808.gz"))
    assert a.stream == b.stream == "binance:BTCUSDT/binance-usdm"
    assert spot.stream == "binance:BTCUSDT/binance-spot", "same symbol, different market: a different stream"
    assert a.first_time == 1721347020984480942 and b.first_time == 1721347200064916040
    t5 = sniff(str(REAL / "tardis/binance-futures_book_snapshot_5_BTCUSDT.csv"))
    t25 = sniff(str(REAL / "tardis/binance-futures_book_snapshot_25_BTCUSDT.csv"))
    assert t5.stream != t25.stream


def test_compressed_copies_detect_the_same(tmp_path: Path):
    src = REAL / "tardis/bitmex_trades_XBTUSD.csv"
    gz = tmp_path / "bitmex_trades_XBTUSD.csv.gz"
    with open(src, "rb") as fin, gzip.open(gz, "wb") as fout:
        shutil.copyfileobj(fin, fout)
    zp = tmp_path / "bitmex_trades_XBTUSD.zip"
    with zipfile.ZipFile(zp, "w") as z:
        z.write(src, "bitmex_trades_XBTUSD.csv")
    assert detect_format(gz) == detect_format(zp) == "tardis"


def test_mmkit_jsonl_and_cache(tmp_path: Path):
    from mmkit.data.cache import write_cache
    from mmkit.data.readers import open_events

    stream = open_events(str(REAL / "bybit/xrpusdt-ob500.data.zip"))
    events = list(stream)
    p = tmp_path / "events.jsonl"
    p.write_text('{"kind":"trade","price":"1.5","qty":"2","recv_ts":1,"side":"buy","symbol":"XRPUSDT","ts":1}\n')
    assert detect_format(p) == "jsonl"
    c = tmp_path / "events.mmkc"
    write_cache(c, events, stream.instruments)
    assert detect_format(c) == "cache"


@pytest.mark.parametrize("name,why", [("unknown_format.txt", "neither JSON nor a known CSV header"),
                                      ("mixed_formats.jsonl", "several formats")])
def test_unknown_or_ambiguous(name, why):
    with pytest.raises(MmkitError) as err:
        detect_format(FIXTURES / "bad" / name)
    assert err.value.code == "E_DATA_UNKNOWN_FORMAT" and why in err.value.message


def test_only_control_frames_is_bybit_and_empty_is_unknown(tmp_path: Path):
    p = tmp_path / "acks.jsonl"
    p.write_text('{"success":true,"ret_msg":"pong","conn_id":"x","op":"ping"}\n')
    assert detect_format(p) == "bybit"
    e = tmp_path / "empty.txt"
    e.write_text("\n\n")
    with pytest.raises(MmkitError) as err:
        detect_format(e)
    assert err.value.code == "E_DATA_UNKNOWN_FORMAT"


def test_missing_file():
    with pytest.raises(MmkitError) as err:
        detect_format(FIXTURES / "nope.gz")
    assert err.value.code == "E_IO_MISSING"
