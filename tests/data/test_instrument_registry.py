"""data.instruments: the built-in registry, user files (env and explicit), lookups, inference."""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path

import pytest

from mmkit import log
from mmkit.core.instruments import Instrument
from mmkit.data import instruments as reg
from mmkit.errors import MmkitError


@pytest.fixture(autouse=True)
def no_user_registry(monkeypatch):
    monkeypatch.delenv(reg.ENV_VAR, raising=False)


@pytest.fixture
def log_stream(monkeypatch) -> io.StringIO:
    stream = io.StringIO()
    monkeypatch.setattr(log.SETTINGS, "stream", stream)
    return stream


def test_builtin_registry_is_package_data():
    path = reg.builtin_registry_path()
    assert path.parts[-2:] == ("resources", "instruments.yaml") and path.exists()
    assert not (Path(__file__).resolve().parents[2] / "fixtures" / "instruments.yaml").exists(), "one source of truth"


@pytest.mark.parametrize(("venue", "symbol", "tick", "lot", "mult", "inverse"), [
    ("binance-spot", "BTCUSDT", "0.01", "0.000001", "1", False),
    ("binance-usdm", "BTCUSDT", "0.1", "0.001", "1", False),
    ("binance-coinm", "BTCUSD_PERP", "0.1", "1", "100", True),
    ("bybit-linear", "XRPUSDT", "0.0001", "1", "1", False),
    ("deribit", "BTC-PERPETUAL", "0.5", "10", "1", True),
    ("bitmex", "XBTUSD", "0.5", "1", "1", True),
])
def test_builtin_entries(venue, symbol, tick, lot, mult, inverse):
    inst = reg.load_registry().get(symbol, venue)
    assert (inst.venue, inst.symbol, inst.tick_size, inst.lot_size, inst.contract_multiplier, inst.inverse) == (
        venue, symbol, Decimal(tick), Decimal(lot), Decimal(mult), inverse)


def test_spot_and_futures_btcusdt_differ_and_no_venue_is_ambiguous():
    r = reg.load_registry()
    assert r.get("BTCUSDT", "binance-spot").tick_size != r.get("BTCUSDT", "binance-usdm").tick_size
    with pytest.raises(MmkitError) as err:
        r.get("BTCUSDT")
    assert err.value.code == "E_DATA_AMBIGUOUS_INSTRUMENT" and "--venue" in err.value.message
    assert r.get("XBTUSD").venue == "bitmex"  # unique symbols need no venue


def test_aliases_and_unknown():
    r = reg.load_registry()
    assert r.get("BTCUSDT", "binance") == r.get("BTCUSDT", "binance-spot")
    assert r.find("NOPE") is None and r.find("BTCUSDT", "nowhere") is None
    with pytest.raises(MmkitError) as err:
        r.get("BTCUSD_PERP", "binance-spot")
    assert err.value.code == "E_DATA_UNKNOWN_INSTRUMENT" and "binance-coinm" in err.value.message


def write_yaml(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_user_file_from_env_extends_and_overrides(tmp_path, monkeypatch):
    user = write_yaml(tmp_path / "mine.yaml", """
aliases: {myvenue: binance-spot}
instruments:
  - {venue: binance-spot, symbol: BTCUSDT, tick_size: "0.001", lot_size: "0.00001"}
  - {venue: kraken, symbol: XBT/USD, tick_size: "0.1", lot_size: "0.00000001", min_notional: "10"}
""")
    monkeypatch.setenv(reg.ENV_VAR, str(user))
    r = reg.load_registry()
    assert r.get("BTCUSDT", "binance-spot").tick_size == Decimal("0.001")
    assert r.get("BTCUSDT", "myvenue").tick_size == Decimal("0.001")
    assert r.get("XBT/USD").min_notional == Decimal("10")
    assert r.get("BTCUSDT", "binance-usdm").tick_size == Decimal("0.1"), "other built-ins stay"
    assert len(reg.load_registry(env=False)) == len(r) - 1


def test_explicit_paths_win_over_env(tmp_path, monkeypatch):
    a = write_yaml(tmp_path / "a.yaml", 'instruments: [{venue: x, symbol: S, tick_size: "1", lot_size: "1"}]\n')
    b = write_yaml(tmp_path / "b.yaml", 'instruments: [{venue: x, symbol: S, tick_size: "2", lot_size: "1"}]\n')
    monkeypatch.setenv(reg.ENV_VAR, str(a))
    assert reg.load_registry(b).get("S", "x").tick_size == Decimal(2)
    assert reg.load_registry([b, a], env=False, builtin=False).get("S", "x").tick_size == Decimal(1)


@pytest.mark.parametrize(("entry", "needle"), [
    ('{venue: x, symbol: S, tick_size: 0.01, lot_size: "1"}', 'write it quoted: tick_size: "0.01"'),
    ('{venue: x, symbol: S, tick_size: "1e-2", lot_size: "1"}', "not a plain decimal"),
    ('{venue: x, symbol: S, tick_size: "0", lot_size: "1"}', "must be > 0"),
    ('{venue: x, symbol: S, tick_size: "1"}', "missing field(s) lot_size"),
    ('{venue: x, symbol: S, tick_size: "1", lot_size: "1", tick: "2"}', "unknown field(s) tick"),
    ('{venue: x, symbol: S, tick_size: "1", lot_size: "1", inverse: "yes"}', "inverse must be true or false"),
    ('{venue: "", symbol: S, tick_size: "1", lot_size: "1"}', "non-empty"),
])
def test_bad_entries_are_refused_with_a_fix(tmp_path, entry, needle):
    path = write_yaml(tmp_path / "bad.yaml", f"instruments:\n  - {entry}\n")
    with pytest.raises(MmkitError) as err:
        reg.load_instruments_file(path)
    assert err.value.code == "E_DATA_BAD_INSTRUMENT" and needle in err.value.message and "instruments[0]" in err.value.message


def test_bad_files(tmp_path):
    dup = write_yaml(tmp_path / "dup.yaml", 'instruments:\n  - {venue: x, symbol: S, tick_size: "1", lot_size: "1"}\n'
                     '  - {venue: x, symbol: S, tick_size: "1", lot_size: "1"}\n')
    with pytest.raises(MmkitError, match="listed twice"):
        reg.load_instruments_file(dup)
    with pytest.raises(MmkitError, match="unknown top-level"):
        reg.load_instruments_file(write_yaml(tmp_path / "top.yaml", "instrument: []\n"))
    with pytest.raises(MmkitError, match="version"):
        reg.load_instruments_file(write_yaml(tmp_path / "v.yaml", "version: 2\ninstruments: []\n"))
    with pytest.raises(MmkitError) as err:
        reg.load_instruments_file(tmp_path / "absent.yaml")
    assert err.value.code == "E_CTRL_MISSING"


def test_record_round_trip_is_exact():
    r = reg.load_registry()
    records = r.records()
    assert [(x["venue"], x["symbol"]) for x in records] == sorted((i.venue, i.symbol) for i in r)
    assert r.aliases()["binance"] == "binance-spot"
    for rec in records:
        inst = r.get(rec["symbol"], rec["venue"])
        assert reg.instrument_record(inst) == rec
        assert all(isinstance(rec[k], str) for k in ("tick_size", "lot_size", "contract_multiplier", "min_notional"))
        assert reg.instrument_from_record(rec) == inst
    odd = Instrument("S", Decimal("1E+1"), Decimal("0.010"), venue="v")
    assert reg.instrument_record(odd)["tick_size"] == "10" and reg.instrument_record(odd)["lot_size"] == "0.01"


def test_infer_instrument_warns(log_stream):
    inst = reg.infer_instrument("FOO", ["1.25", "3.5000", "junk"], ["10", "0.001"])
    assert (inst.tick_size, inst.lot_size, inst.venue) == (Decimal("0.01"), Decimal("0.001"), "inferred")
    line = log_stream.getvalue()
    assert "level=warning" in line and "event=instrument_inferred" in line and "symbol=FOO" in line and "MMKIT_INSTRUMENTS" in line


def test_infer_without_samples_is_unit_grid(log_stream):
    inst = reg.infer_instrument("BAR", [], [], venue="v")
    assert (inst.tick_size, inst.lot_size, inst.venue) == (Decimal(1), Decimal(1), "v")
