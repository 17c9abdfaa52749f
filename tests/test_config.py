"""Config: schema defaults, validation, units policy, legacy keys, profiles, overlays,
describe and cfg_hash."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from mmkit.config import (
    Config,
    apply_overlay,
    build_config,
    cfg_hash,
    check_dotted_key,
    describe,
    leaf_paths,
    load_config,
    to_dict,
)
from mmkit.errors import ConfigError, ControlFileError, MmkitError

from support import ROOT, assert_golden

EXAMPLE = ROOT / "config" / "example.yaml"


def write(path, text):
    path.write_text(text)
    return path


def codes(err: ConfigError) -> list[tuple[str, str]]:
    return [(c, p) for c, p, _ in err.problems]


def test_example_config_is_exactly_the_documented_defaults():
    loaded = load_config(EXAMPLE, use_env_profile=False)
    assert loaded.config == Config()
    assert loaded.warnings == ()


def test_seed_quick_start_defaults():
    cfg = Config()
    assert (cfg.strategy.k_vola_spread, cfg.strategy.skew_coeff, cfg.strategy.levels_per_side) == (1.0, 0.3, 3)
    assert (cfg.strategy.level_spacing_coeff, cfg.strategy.min_time_in_book_ms) == (0.4, 500)
    assert (cfg.strategy.replace_threshold_bps, cfg.strategy.imbalance_cutoff) == (3.0, 0.65)
    assert (cfg.trading.maker_fee_bps, cfg.trading.taker_fee_bps) == (1.0, 5.0)
    assert (cfg.risk.max_position_usd, cfg.risk.max_drawdown_pct, cfg.risk.risk_pause_threshold) == (10000.0, 0.05, 0.03)
    assert (cfg.strategy.order_ttl_ms, cfg.strategy.price_drift_bps) == (800, 2.0)
    assert (cfg.latency_boost.replace.max_concurrent, cfg.latency_boost.replace.min_interval_ms) == (2, 60)
    assert (cfg.latency_boost.tail_batch.tail_age_ms, cfg.latency_boost.tail_batch.max_batch) == (800, 10)
    assert (cfg.guards.pos_skew.per_symbol_abs_limit, cfg.guards.pos_skew.per_color_abs_limit) == (1000.0, 2000.0)
    assert cfg.circuit.window_sec == 60.0 and cfg.circuit.half_open_probes == 5
    assert cfg.fees.bybit.distance_usd_threshold == 25000.0 and cfg.fees.bybit.min_improvement_bps == 0.2
    assert cfg.allocator.smoothing.bias_cap_ratio == 0.10 and cfg.allocator.smoothing.fee_bias_cap_ratio == 0.05


def test_empty_file_means_all_defaults(tmp_path):
    assert load_config(write(tmp_path / "c.yaml", ""), use_env_profile=False).config == Config()


def test_unknown_key_names_dotted_path_and_suggests(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path / "c.yaml", "strategy:\n  k_vola_spred: 1.0\n"), use_env_profile=False)
    assert err.value.code == "E_CFG_UNKNOWN_KEY"
    assert "strategy.k_vola_spred" in str(err.value) and "did you mean 'strategy.k_vola_spread'" in str(err.value)


def test_unknown_section_suggests(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path / "c.yaml", "stratgy: {}\n"), use_env_profile=False)
    assert "did you mean 'strategy'" in str(err.value)


def test_all_problems_reported_at_once(tmp_path):
    text = (
        "strategy:\n  levels_per_side: 0\n  model: fixd\n"
        "trading:\n  maker_fee_bps: abc\n"
        "risk:\n  max_position_usd: -5\n"
        "allocator:\n  smoothing:\n    bias_cap_ratio: 1.5\n"
        "bogus: 1\n"
    )
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path / "c.yaml", text), use_env_profile=False)
    got = codes(err.value)
    assert ("E_CFG_RANGE", "strategy.levels_per_side") in got
    assert ("E_CFG_BAD_VALUE", "strategy.model") in got
    assert ("E_CFG_TYPE", "trading.maker_fee_bps") in got
    assert ("E_CFG_RANGE", "risk.max_position_usd") in got
    assert ("E_CFG_RANGE", "allocator.smoothing.bias_cap_ratio") in got
    assert ("E_CFG_UNKNOWN_KEY", "bogus") in got
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("section", "key", "value", "ok"),
    [
        ("strategy", "replace_threshold_bps", 1000, True),
        ("strategy", "replace_threshold_bps", 1000.5, False),
        ("trading", "maker_fee_bps", -1000, True),
        ("trading", "maker_fee_bps", -1001, False),
        ("risk", "max_position_usd", 0, True),
        ("risk", "max_position_usd", -0.01, False),
        ("allocator.smoothing", "fee_bias_cap_ratio", 0.0, True),
        ("allocator.smoothing", "fee_bias_cap_ratio", 1.0, True),
        ("allocator.smoothing", "fee_bias_cap_ratio", 1.0001, False),
        ("allocator.smoothing", "fee_bias_cap_ratio", -0.0001, False),
        ("latency_boost.replace", "min_interval_ms", -1, False),
    ],
)
def test_units_policy_boundaries(section, key, value, ok):
    raw = apply_overlay({}, {f"{section}.{key}": value})
    if section == "trading" and key == "maker_fee_bps":
        raw["trading"]["taker_fee_bps"] = 5.0
    if ok:
        build_config(raw)
    else:
        with pytest.raises(ConfigError) as err:
            build_config(raw)
        assert (err.value.problems[0][0], err.value.problems[0][1]) == ("E_CFG_RANGE", f"{section}.{key}")


def test_type_errors_name_expected_type():
    with pytest.raises(ConfigError) as err:
        build_config({"strategy": {"levels_per_side": "three", "enable_anti_stale_guard": 1}, "trading": {"symbols": "BTCUSDT"}})
    text = str(err.value)
    assert "strategy.levels_per_side: expected int" in text
    assert "strategy.enable_anti_stale_guard: expected bool" in text
    assert "trading.symbols: expected list of str" in text


def test_bool_is_not_a_number():
    with pytest.raises(ConfigError):
        build_config({"strategy": {"k_vola_spread": True}})


def test_nonsense_combinations_rejected():
    cases = [
        ({"portfolio": {"min_weight": 0.6, "max_weight": 0.5}}, "E_CFG_WEIGHTS"),
        ({"trading": {"symbols": ["A", "B", "C"]}, "portfolio": {"min_weight": 0.4}}, "E_CFG_WEIGHTS"),
        ({"trading": {"symbols": ["A", "B", "C"]}, "portfolio": {"max_weight": 0.3}}, "E_CFG_WEIGHTS"),
        ({"strategy": {"k_vola_spread": -1}}, "E_CFG_RANGE"),
        ({"fees": {"bybit": {"tiers": [{"level": 0, "min_volume_usd": 0}, {"level": 1, "min_volume_usd": 0}]}}}, "E_CFG_FEE_TIERS"),
        ({"fees": {"bybit": {"tiers": [{"level": 0, "min_volume_usd": 0, "maker_bps": 1},
                                       {"level": 1, "min_volume_usd": 10, "maker_bps": 2}]}}}, "E_CFG_FEE_TIERS"),
        ({"trading": {"maker_fee_bps": 6, "taker_fee_bps": 5}}, "E_CFG_RANGE"),
        ({"allocator": {"smoothing": {"backoff_steps": [0.5, 0.7]}}}, "E_CFG_RANGE"),
    ]
    for raw, code in cases:
        with pytest.raises(ConfigError) as err:
            build_config(raw)
        assert err.value.problems[0][0] == code, (raw, err.value.problems)


def test_legacy_keys_migrate_with_one_warning_each(tmp_path, capsys):
    text = "allocator:\n  smoothing:\n    bias_cap: 0.08\n    fee_bias_cap_bps: 300\n"
    loaded = load_config(write(tmp_path / "c.yaml", text), use_env_profile=False)
    assert loaded.config.allocator.smoothing.bias_cap_ratio == 0.08
    assert loaded.config.allocator.smoothing.fee_bias_cap_ratio == pytest.approx(0.03)
    assert sorted(loaded.warnings) == [
        "legacy key allocator.smoothing.bias_cap -> allocator.smoothing.bias_cap_ratio",
        "legacy key allocator.smoothing.fee_bias_cap_bps -> allocator.smoothing.fee_bias_cap_ratio",
    ]
    err = capsys.readouterr().err
    assert err.count("config_warning") == 2
    err.encode("ascii")


def test_legacy_fee_bias_cap_plain(tmp_path):
    loaded = load_config(write(tmp_path / "c.yaml", "allocator: {smoothing: {fee_bias_cap: 0.04}}\n"), use_env_profile=False)
    assert loaded.config.allocator.smoothing.fee_bias_cap_ratio == 0.04


def test_profile_merges_whitelisted_keys_only(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "profiles").mkdir()
    write(tmp_path / "profiles" / "econ_moderate.yaml",
          "allocator:\n  smoothing:\n    max_delta_ratio: 0.3\n"
          "latency_boost.replace.max_concurrent: 4\n"
          "strategy:\n  k_vola_spread: 9.0\n"
          "logging: {level: debug}\n")
    cfg_file = write(tmp_path / "c.yaml", "strategy: {k_vola_spread: 1.5}\n")
    monkeypatch.setenv("MM_PROFILE", "econ_moderate")
    loaded = load_config(cfg_file)
    assert loaded.profile == "econ_moderate"
    assert loaded.config.allocator.smoothing.max_delta_ratio == 0.3
    assert loaded.config.latency_boost.replace.max_concurrent == 4
    assert loaded.config.logging.level == "debug"
    assert loaded.config.strategy.k_vola_spread == 1.5  # not whitelisted: ignored
    assert any("strategy.k_vola_spread is not in the profile whitelist" in w for w in loaded.warnings)


def test_profile_applied_before_validation(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "profiles").mkdir()
    write(tmp_path / "profiles" / "bad.yaml", "signals: {impact_cap_ratio: 3}\n")
    monkeypatch.setenv("MM_PROFILE", "bad")
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path / "c.yaml", ""))
    assert codes(err.value) == [("E_CFG_RANGE", "signals.impact_cap_ratio")]


def test_missing_profile(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MmkitError) as err:
        load_config(write(tmp_path / "c.yaml", ""), profile="nope")
    assert err.value.code == "E_PROFILE_NOT_FOUND"


def test_profile_next_to_config(tmp_path, monkeypatch):
    cfgdir = tmp_path / "etc"
    (cfgdir / "profiles").mkdir(parents=True)
    write(cfgdir / "profiles" / "p.yaml", "canary: {export_interval_sec: 5}\n")
    monkeypatch.chdir(tmp_path)
    assert load_config(write(cfgdir / "c.yaml", ""), profile="p").config.canary.export_interval_sec == 5


def test_overlays_with_dotted_keys_apply_in_order(tmp_path):
    a = write(tmp_path / "a.yaml", "autopolicy.level_max: 5\nstrategy.fixed.half_spread_ticks: 4\n")
    b = write(tmp_path / "b.yaml", "autopolicy:\n  level_max: 2\n")
    loaded = load_config(write(tmp_path / "c.yaml", ""), overlays=[a, b], use_env_profile=False)
    assert loaded.config.autopolicy.level_max == 2
    assert loaded.config.strategy.fixed.half_spread_ticks == 4.0
    assert loaded.overlays == (str(a), str(b))


def test_overlay_with_unknown_key_is_rejected(tmp_path):
    a = write(tmp_path / "a.yaml", "strategy.fixed.half_spred_ticks: 4\n")
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path / "c.yaml", ""), overlays=[a], use_env_profile=False)
    assert "did you mean 'strategy.fixed.half_spread_ticks'" in str(err.value)


def test_rollout_overlay_keys_are_checked():
    build_config({"rollout": {"green": {"autopolicy.level_max": 3, "strategy.replace_threshold_bps": 3.5}}})
    with pytest.raises(ConfigError) as err:
        build_config({"rollout": {"green": {"levels_per_side_max": 6}}})
    assert err.value.problems[0][1] == "rollout.green.levels_per_side_max"
    assert check_dotted_key("portfolio.manual_weights.ETHUSDT") is None


def test_throttle_global_alias():
    cfg = build_config({"throttle": {"global": {"max_throttle_backoff_ms": 2000}, "per_symbol": {"BTCUSDT": {"max_throttle_backoff_ms": 100}}}})
    assert cfg.throttle.global_thresholds.max_throttle_backoff_ms == 2000
    assert cfg.throttle.per_symbol["BTCUSDT"].max_throttle_backoff_ms == 100
    assert "throttle.global.max_throttle_backoff_ms=2000" in describe(cfg)


def test_bad_files(tmp_path):
    with pytest.raises(MmkitError) as err:
        load_config(tmp_path / "missing.yaml")
    assert err.value.code == "E_CFG_MISSING"
    with pytest.raises(MmkitError) as err:
        load_config(write(tmp_path / "p.yaml", "strategy: [\n"))
    assert err.value.code == "E_CFG_PARSE" and "line" in err.value.message
    big = tmp_path / "big.yaml"
    big.write_bytes(b"strategy: {}\n" + b"# pad\n" * 400000)
    with pytest.raises(ControlFileError) as err:
        load_config(big)
    assert err.value.reason == "file_too_large"
    na = tmp_path / "na.yaml"
    na.write_bytes("strategy: {model: \u0444}\n".encode())
    with pytest.raises(ControlFileError) as err:
        load_config(na)
    assert err.value.reason == "non_ascii"
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path / "l.yaml", "- a\n- b\n"))
    assert err.value.code == "E_CFG_TYPE"


def test_describe_is_sorted_ascii_six_decimals(frozen):
    text = describe(Config())
    lines = text.splitlines()
    assert lines == sorted(lines) and text.endswith("\n") and not text.endswith("\n\n")
    assert "strategy.k_vola_spread=1.000000" in lines
    assert "strategy.levels_per_side=3" in lines
    assert "strategy.enable_anti_stale_guard=true" in lines
    assert "fees.bybit.tiers[1].min_volume_usd=10000000.000000" in lines
    text.encode("ascii")
    assert_golden("config_describe.txt", text)


def test_secrets_do_not_change_hash_and_are_masked():
    plain = build_config({})
    keyed = build_config({"venue": {"bybit": {"api_key": "AKIAXYZ", "api_secret": "s3cr3t"}}})
    assert cfg_hash(plain) == cfg_hash(keyed)
    text = describe(keyed)
    assert "AKIAXYZ" not in text and "s3cr3t" not in text
    assert "venue.bybit.api_key=****" in text
    assert cfg_hash(build_config({"strategy": {"k_vola_spread": 1.1}})) != cfg_hash(plain)


def test_hash_is_stable_across_key_order(tmp_path):
    a = write(tmp_path / "a.yaml", "strategy: {skew_coeff: 0.2, k_vola_spread: 2}\nrisk: {max_position_usd: 5}\n")
    b = write(tmp_path / "b.yaml", "risk: {max_position_usd: 5.0}\nstrategy: {k_vola_spread: 2.0, skew_coeff: 0.2}\n")
    assert load_config(a, use_env_profile=False).cfg_hash == load_config(b, use_env_profile=False).cfg_hash


def test_leaf_paths_cover_every_documented_key_in_example():
    raw = yaml.safe_load(EXAMPLE.read_text())
    leaves = leaf_paths()

    def walk(node, prefix=""):
        for k, v in node.items():
            dotted = f"{prefix}.{k}" if prefix else k
            if isinstance(v, dict) and dotted not in leaves:
                yield from walk(v, dotted)
            else:
                yield dotted

    for dotted in walk(raw):
        assert dotted in leaves, dotted


@settings(max_examples=60, deadline=None)
@given(
    k=st.floats(min_value=0, max_value=50, allow_nan=False),
    levels=st.integers(min_value=1, max_value=20),
    ratio=st.floats(min_value=0, max_value=1, allow_nan=False),
    bps=st.floats(min_value=-1000, max_value=1000, allow_nan=False),
)
def test_round_trip_through_plain_data(k, levels, ratio, bps):
    cfg = build_config({"strategy": {"k_vola_spread": k, "levels_per_side": levels, "price_drift_bps": bps},
                        "signals": {"impact_cap_ratio": ratio}})
    again = build_config(to_dict(cfg))
    assert again == cfg and describe(again) == describe(cfg) and cfg_hash(again) == cfg_hash(cfg)
