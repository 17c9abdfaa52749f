"""Thresholds file: parsing, merging, STRICT mode, bounded reading, atomic reload."""

from __future__ import annotations

import pytest

from mmkit.errors import MmkitError
from mmkit.live.thresholds import (
    CANARY_DEFAULTS,
    THROTTLE_DEFAULTS,
    ThresholdsStore,
    load_thresholds,
    parse_thresholds,
    strict_from_env,
)

SEED_YAML = """\
throttle:
  global:
    max_throttle_backoff_ms: 2000
    max_throttle_events_in_window_total: 100
  per_symbol:
    BTCUSDT:
      max_throttle_backoff_ms: 100
      max_throttle_events_in_window_total: 10
"""


def _write(tmp_path, text: str, name: str = "thresholds.yaml"):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def test_seed_example_summary_and_merge(tmp_path):
    th = load_thresholds(str(_write(tmp_path, SEED_YAML)), strict=True, version=3)
    assert th.summary() == {"global_keys": 2, "per_symbol_count": 1, "symbols": ["BTCUSDT"], "version": 3,
                            "strict": True, "warnings": []}
    assert th.throttle_for("BTCUSDT") == {"max_throttle_backoff_ms": 100, "max_throttle_events_in_window_total": 10}
    assert th.throttle_for("ETHUSDT") == {"max_throttle_backoff_ms": 2000, "max_throttle_events_in_window_total": 100}
    assert th.throttle_for("btcusdt")["max_throttle_backoff_ms"] == 100
    snap = th.snapshot()
    assert snap["throttle"]["per_symbol"]["BTCUSDT"]["max_throttle_backoff_ms"] == 100
    assert snap["sha256"] and len(snap["sha256"]) == 64 and snap["path"].endswith("thresholds.yaml")


def test_canary_sections_merge_per_symbol_over_global_over_defaults():
    raw = {"canary_gate": {"max_reject_delta": 0.05, "slo_tail_p95_cap_ms": 60},
           "canary_gate_per_symbol": {"ethusdt": {"slo_tail_p95_cap_ms": 40}}}
    th = parse_thresholds(raw, strict=True)
    eth = th.canary_for("ETHUSDT")
    assert eth["slo_tail_p95_cap_ms"] == 40 and eth["max_reject_delta"] == 0.05
    assert eth["tail_p99_cap_ms"] == CANARY_DEFAULTS["tail_p99_cap_ms"]
    assert th.symbols == ["ETHUSDT"] and th.summary()["global_keys"] == 2
    assert th.throttle_for("ETHUSDT") == THROTTLE_DEFAULTS


@pytest.mark.parametrize("raw, code", [
    ({"throttle": {"per_symbol": {"BTCUSDT": {"max_backoff": 1}}}}, "E_THR_UNKNOWN_KEY"),
    ({"throttle": {"global": {"max_throttle_backof_ms": 1}}}, "E_THR_UNKNOWN_KEY"),
    ({"throttle": {"per_symbol": {"BTCUSDT": {"max_throttle_backoff_ms": "fast"}}}}, "E_THR_BAD_VALUE"),
    ({"throttle": {"global": {"max_throttle_backoff_ms": -1}}}, "E_THR_BAD_VALUE"),
    ({"throttle": {"global": {"max_throttle_backoff_ms": 2.5}}}, "E_THR_BAD_VALUE"),
    ({"throttle": {"global": {"max_throttle_backoff_ms": True}}}, "E_THR_BAD_VALUE"),
    ({"canary_gate": {"max_reject_delta": float("nan")}}, "E_THR_BAD_VALUE"),
    ({"throttles": {}}, "E_THR_UNKNOWN_KEY"),
    ({"throttle": {"per_sym": {}}}, "E_THR_UNKNOWN_KEY"),
    ({"throttle": {"per_symbol": {"btcusdt": {}, "BTCUSDT": {}}}}, "E_THR_INVALID"),
])
def test_strict_refuses_what_lenient_warns_about_and_falls_back(raw, code):
    with pytest.raises(MmkitError) as err:
        parse_thresholds(raw, strict=True)
    assert err.value.code == code and "STRICT_THRESHOLDS=1" in err.value.message
    th = parse_thresholds(raw, strict=False)
    assert len(th.warnings) == 1 and th.warnings[0].isascii() and "falling back" in th.warnings[0]
    # the bad key is gone: every lookup equals the defaults (or the global value for overrides)
    assert th.throttle_for("BTCUSDT") == THROTTLE_DEFAULTS
    assert th.canary_for(None) == CANARY_DEFAULTS


def test_lenient_override_falls_back_to_the_global_value():
    raw = {"throttle": {"global": {"max_throttle_backoff_ms": 700},
                        "per_symbol": {"BTCUSDT": {"max_throttle_backoff_ms": "x", "max_throttle_events_in_window_total": 5}}}}
    th = parse_thresholds(raw, strict=False)
    assert th.throttle_for("BTCUSDT") == {"max_throttle_backoff_ms": 700, "max_throttle_events_in_window_total": 5}


def test_int_keys_accept_integral_floats():
    th = parse_thresholds({"throttle": {"global": {"max_throttle_backoff_ms": 2000.0}}}, strict=True)
    assert th.throttle_for()["max_throttle_backoff_ms"] == 2000
    assert isinstance(th.throttle_for()["max_throttle_backoff_ms"], int)


@pytest.mark.parametrize("raw", [
    ["not", "a", "mapping"],
    {"throttle": ["x"]},
    {"throttle": {"per_symbol": {"BTCUSDT": 5}}},
    {"throttle": {"per_symbol": {"BTC USDT!": {}}}},
    {"canary_gate_per_symbol": "BTCUSDT"},
])
def test_wrong_shape_is_an_error_in_both_modes(raw):
    for strict in (True, False):
        with pytest.raises(MmkitError) as err:
            parse_thresholds(raw, strict=strict)
        assert err.value.code == "E_THR_INVALID"


def test_empty_file_means_defaults(tmp_path):
    th = load_thresholds(str(_write(tmp_path, "")), strict=True)
    assert th.summary()["global_keys"] == 0 and th.throttle_for("X") == THROTTLE_DEFAULTS


@pytest.mark.parametrize("text, code", [
    ("throttle:\n  global: {max_throttle_backoff_ms: 1}\n# caf\u00e9\n", "E_CTRL_NON_ASCII"),
    ("throttle: [unclosed\n", "E_CTRL_INVALID_STRUCTURE"),
    ("#" * ((1 << 20) + 1), "E_CTRL_FILE_TOO_LARGE"),
])
def test_files_are_read_bounded_and_ascii(tmp_path, text, code):
    with pytest.raises(MmkitError) as err:
        load_thresholds(str(_write(tmp_path, text)), strict=False)
    assert err.value.code == code


def test_missing_file(tmp_path):
    with pytest.raises(MmkitError) as err:
        load_thresholds(str(tmp_path / "nope.yaml"))
    assert err.value.code == "E_CTRL_MISSING"


def test_json_thresholds_file(tmp_path):
    th = load_thresholds(str(_write(tmp_path, '{"throttle":{"global":{"max_throttle_backoff_ms":9}}}', "t.json")), strict=True)
    assert th.throttle_for()["max_throttle_backoff_ms"] == 9


def test_store_swaps_only_a_fully_valid_version(tmp_path):
    store = ThresholdsStore()
    assert store.version == 0
    good = _write(tmp_path, SEED_YAML)
    assert store.reload(str(good), strict=True).version == 1
    before = store.current
    bad = _write(tmp_path, SEED_YAML + "      bogus_key: 1\n", "bad.yaml")
    with pytest.raises(MmkitError):
        store.reload(str(bad), strict=True)
    assert store.current is before and store.version == 1
    lenient = store.reload(str(bad), strict=False)
    assert lenient.version == 2 and lenient.warnings and store.current is lenient


def test_strict_from_env(monkeypatch):
    for value, expected in (("1", True), ("true", True), ("YES", True), ("0", False), ("", False), ("off", False)):
        monkeypatch.setenv("STRICT_THRESHOLDS", value)
        assert strict_from_env() is expected
