"""``mmkit config validate|describe|hash`` end to end."""

from __future__ import annotations

import json

from support import ROOT, assert_golden, run_cli, validate_artifact

EXAMPLE = str(ROOT / "config" / "example.yaml")


def test_validate_ok_prints_hash():
    res = run_cli("config", "validate", "--config", EXAMPLE)
    assert res.code == 0 and res.stdout.startswith("config: ok cfg_hash=")


def test_validate_json_report_to_stdout(frozen):
    res = run_cli("config", "validate", "--config", EXAMPLE, "--out", "-")
    assert res.code == 0
    obj = json.loads(res.stdout)
    validate_artifact(obj)
    assert obj["valid"] is True and obj["meta"]["cfg_hash"] == obj["cfg_hash"]
    assert "config: ok" in res.stderr


def test_validate_reports_every_problem_on_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("strategy:\n  levels_per_side: 0\n  k_vola_spred: 1\ntrading: {maker_fee_bps: 2000}\n")
    res = run_cli("config", "validate", "--config", str(bad))
    assert res.code == 1
    line = res.last_err
    assert line.startswith("E_CFG_")
    for frag in ("strategy.levels_per_side", "strategy.k_vola_spred", "trading.maker_fee_bps", "4 problems"):
        assert frag in line


def test_describe_matches_golden_and_is_stable(frozen):
    a = run_cli("config", "describe", "--config", EXAMPLE)
    b = run_cli("config", "describe", "--config", EXAMPLE)
    assert a.code == 0 and a.stdout == b.stdout
    assert_golden("config_describe.txt", a.stdout)


def test_describe_to_file(tmp_path):
    out = tmp_path / "d.txt"
    assert run_cli("config", "describe", "--config", EXAMPLE, "--out", str(out)).code == 0
    assert out.read_text().startswith("allocator.smoothing.backoff_steps=")


def test_hash_with_overlay_changes(tmp_path):
    ov = tmp_path / "ov.yaml"
    ov.write_text("strategy.k_vola_spread: 2.0\n")
    base = run_cli("config", "hash", "--config", EXAMPLE).stdout.strip()
    over = run_cli("config", "hash", "--config", EXAMPLE, "--overlay", str(ov)).stdout.strip()
    assert len(base) == 64 and len(over) == 64 and base != over


def test_config_from_env_var():
    res = run_cli("config", "hash", env={"MM_CONFIG_PATH": EXAMPLE})
    assert res.code == 0 and len(res.stdout.strip()) == 64


def test_non_ascii_and_huge_configs_fail_cleanly(tmp_path):
    na = tmp_path / "na.yaml"
    na.write_bytes("strategy: {model: \u00e9}\n".encode())
    res = run_cli("config", "validate", "--config", str(na))
    assert res.code == 1 and res.last_err.startswith("E_CTRL_NON_ASCII")
    big = tmp_path / "big.yaml"
    big.write_bytes(b"# x\n" * 600000)
    res = run_cli("config", "validate", "--config", str(big))
    assert res.code == 1 and res.last_err.startswith("E_CTRL_FILE_TOO_LARGE")
    garbled = tmp_path / "g.yaml"
    garbled.write_text("strategy: {a: [\n")
    res = run_cli("config", "validate", "--config", str(garbled))
    assert res.code == 1 and res.last_err.startswith("E_CFG_PARSE")
