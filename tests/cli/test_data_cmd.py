"""``mmkit data convert|inspect|slice|synth`` through the real root command on real
fixtures: reports (schema-checked, golden), exact round trips, errors with their code and
file:line and no output left behind, skip counts, slice bounds, synth determinism."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmkit.data.jsonl import JsonlReader
from mmkit.data.readers import open_events
from support import FIXTURES, ROOT, assert_golden, run_cli, validate_artifact, validate_file

REAL = FIXTURES / "real"
BAD = FIXTURES / "bad"
USDM = [str(REAL / "binance/usdm/btcusdt_20240718.gz"), str(REAL / "binance/usdm/btcusdt_20240719.gz")]


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_inspect_usdm_pair_reports_zero_gaps_and_clock_skew(workdir):
    res = run_cli("data", "inspect", *USDM)
    assert res.code == 0, res.stderr
    report = validate_file(workdir / "artifacts" / "data_inspect.json")
    assert report["seq_gaps"] == 0 and report["skipped_total"] == 0 and report["events_total"] == 71979
    skew = report["clock_skew"]
    assert skew["detected"] is True and skew["direction"] == "behind" and -1530 < skew["offset_ms_estimate"] < -1500
    assert report["feed_latency_ms"]["p50"] < 0
    assert [i["path"] for i in report["meta"]["inputs"]] == USDM
    assert report["meta"]["inputs"][0]["sha256"] == "e4163718b819a93b858d1259bfeb53e170ee31e03738f88e172af74078cd45be"
    assert res.last_err.startswith("data inspect: 71979 events") and "seq_gaps=0" in res.last_err
    assert "clock_skew=behind:-1523.934ms" in res.last_err


def test_inspect_golden_on_a_small_real_file(frozen, monkeypatch):
    monkeypatch.chdir(ROOT)
    res = run_cli("data", "inspect", "fixtures/real/bybit/xrpusdt-ob500.data.zip", "--out", "-")
    assert res.code == 0, res.stderr
    validate_artifact(res.json())
    assert_golden("data_inspect_bybit_ob500.json", res.stdout)
    again = run_cli("data", "inspect", "fixtures/real/bybit/xrpusdt-ob500.data.zip", "--out", "-")
    assert again.stdout == res.stdout


def test_convert_cache_convert_back_reproduces_the_events_exactly(workdir):
    res = run_cli("data", "convert", "--from", "binance", "--to", "jsonl", *USDM, "--out", "usdm.jsonl", "--report", "conv.json")
    assert res.code == 0, res.stderr
    assert res.last_err.startswith("data convert: 71979 events -> usdm.jsonl (jsonl)")
    report = validate_file(workdir / "conv.json")
    assert report["command"] == "convert" and report["events_total"] == 71979 and report["from"] == "binance"
    res = run_cli("data", "convert", "usdm.jsonl", "--venue", "binance-usdm", "--to", "cache", "--out", "usdm.bin")
    assert res.code == 0, res.stderr
    res = run_cli("data", "convert", "usdm.bin", "--out", "back.jsonl")  # format detected from the cache magic
    assert res.code == 0, res.stderr
    assert Path("back.jsonl").read_bytes() == Path("usdm.jsonl").read_bytes()
    assert list(JsonlReader("back.jsonl", venue="binance-usdm")) == list(open_events(USDM))


def test_convert_merges_streams_golden(frozen, monkeypatch, tmp_path: Path):
    monkeypatch.chdir(ROOT)
    out = tmp_path / "merged.jsonl"
    res = run_cli("data", "convert", "fixtures/real/tardis/bitmex_trades_XBTUSD.csv", "fixtures/real/tardis/huobi-dm-swap_quotes_BTC-USD.csv",
                  "--out", str(out), "--report", "-")
    assert res.code == 0, res.stderr
    report = res.json()
    validate_artifact(report)
    report["out"] = "merged.jsonl"
    assert_golden("data_convert_tardis.json", json.dumps(report, sort_keys=True, separators=(",", ":")) + "\n")
    assert_golden("data_convert_tardis.jsonl", out.read_bytes())


def test_bad_input_exits_1_with_code_and_position_and_no_output(workdir):
    for name, code, pos in (("binance_crossed.txt", "E_DATA_CROSSED_BOOK", ":3:"), ("tardis_trades_bad.csv", "E_DATA_OUT_OF_ORDER", ":4:"),
                            ("binance_usdm_gap.txt", "E_DATA_SEQ_GAP", ":6:")):
        path = str(BAD / name)
        for cmd in (["convert", path, "--out", "out.jsonl"], ["slice", path, "--from", "1970-01-01", "--to", "2100-01-01", "--out", "out.mmkc"]):
            res = run_cli("data", *cmd, "--report", "r.json")
            assert res.code == 1, (name, cmd, res.stderr)
            assert res.last_err.startswith(code + ": ") and name + pos in res.last_err, res.last_err
            assert "Traceback" not in res.stderr
            assert sorted(p.name for p in workdir.iterdir()) == [], "no output, report or temp file"
    res = run_cli("data", "inspect", str(BAD / "unknown_format.txt"))
    assert res.code == 1 and res.last_err.startswith("E_DATA_UNKNOWN_FORMAT: ")


def test_on_error_skip_counts(workdir):
    res = run_cli("data", "convert", str(BAD / "bybit_bad.jsonl"), "--on-error", "skip", "--out", "b.jsonl", "--report", "r.json")
    assert res.code == 0, res.stderr
    report = validate_file("r.json")
    assert report["on_error"] == "skip" and report["skipped_total"] > 0 and report["skipped"]["E_DATA_CROSSED_BOOK"] == 1
    assert f"skipped={report['skipped_total']}" in res.last_err
    res = run_cli("data", "inspect", str(BAD / "binance_garbage.txt"), "--out", "-")  # inspect skips by default
    assert res.code == 0 and res.json()["skipped"]["E_DATA_BAD_LINE"] >= 3
    res = run_cli("data", "inspect", str(BAD / "binance_garbage.txt"), "--on-error", "fail", "--out", "-")
    assert res.code == 1 and res.last_err.startswith("E_DATA_BAD_LINE: ") and "binance_garbage.txt:3" in res.last_err


def test_slice_bounds_and_snapshot(workdir):
    res = run_cli("data", "slice", *USDM, "--from", "2024-07-19T00:01:00Z", "--to", "2024-07-19T00:02:00Z", "--snapshot",
                  "--out", "minute.jsonl", "--report", "r.json")
    assert res.code == 0, res.stderr
    report = validate_file("r.json")
    lo, hi = 1721347260 * 10**9, 1721347320 * 10**9
    assert report["command"] == "slice" and report["window"]["from_ts"] == lo and report["window"]["to_ts"] == hi
    assert report["window"]["snapshots"] == 1
    got = list(JsonlReader("minute.jsonl", venue="binance-usdm"))
    assert got[0].kind == "book_snapshot" and all(lo <= e.ts < hi for e in got)
    assert got[1:] == [e for e in open_events(USDM) if lo <= e.ts < hi]
    res = run_cli("data", "slice", *USDM, "--from", str(lo), "--to", str(hi), "--format", "binance", "--to-format", "cache",
                  "--out", "minute.out")
    assert res.code == 0 and res.last_err.startswith(f"data slice: {len(got) - 1} events -> minute.out (cache)")
    for bad in (["--from", "tomorrow", "--to", "2024-07-19"], ["--from", "2024-07-19T00:02:00Z", "--to", "2024-07-19T00:01:00Z"]):
        res = run_cli("data", "slice", USDM[0], *bad, "--out", "x.jsonl")
        assert res.code == 64 and res.last_err.startswith("E_USAGE: "), res.stderr
    assert not Path("x.jsonl").exists()


def test_synth_is_deterministic_and_documented_as_synthetic(workdir):
    a = run_cli("data", "synth", "--seed", "7", "--events", "5000", "--out", "a.jsonl")
    b = run_cli("data", "synth", "--seed", "7", "--events", "5000", "--out", "b.jsonl")
    c = run_cli("data", "synth", "--seed", "8", "--events", "5000", "--out", "c.jsonl")
    assert a.code == b.code == c.code == 0, a.stderr
    assert Path("a.jsonl").read_bytes() == Path("b.jsonl").read_bytes() != Path("c.jsonl").read_bytes()
    assert "5000 synthetic events" in a.last_err
    assert "SYNTHETIC" in run_cli("data", "synth", "--help").stdout
    res = run_cli("data", "synth", "--seed", "7", "--events", "5000", "--out", "a.mmkc")
    assert res.code == 0 and Path("a.mmkc").read_bytes()[:8] == b"MMKCACHE"
    res = run_cli("data", "convert", "a.mmkc", "--out", "a2.jsonl")
    assert res.code == 0 and Path("a2.jsonl").read_bytes() == Path("a.jsonl").read_bytes()
    res = run_cli("data", "inspect", "a.jsonl", "--out", "-")
    assert res.code == 0 and res.json()["clock_skew"]["detected"] is False


def test_stdin_and_stdout(workdir):
    data = (FIXTURES / "synthetic" / "events_small.jsonl").read_text()
    res = run_cli("data", "inspect", "-", "--from", "jsonl", "--venue", "binance-spot", "--out", "-", input=data)
    assert res.code == 0, res.stderr
    report = res.json()
    assert report["meta"]["inputs"] == [{"path": "-", "sha256": "stdin"}] and report["events_total"] == 10
    res = run_cli("data", "convert", "-", "--from", "jsonl", "--venue", "binance-spot", "--out", "-", input=data)
    assert res.code == 0 and len(res.stdout.splitlines()) == 10 and res.last_err.startswith("data convert: 10 events -> -")
    res = run_cli("data", "convert", "-", "--from", "binance", "--out", "-", input=(BAD / "binance_negative.txt").read_text(),
                  env={"MM_DEBUG": ""})
    assert res.code == 1 and res.last_err.startswith("E_DATA_NEGATIVE_SIZE: -:3:"), res.stderr


def test_detected_jsonl_on_stdin_keeps_every_line(workdir):
    data = (FIXTURES / "synthetic" / "events_small.jsonl").read_text()
    res = run_cli("data", "convert", "-", "--venue", "binance-spot", "--out", "-", input=data)
    assert res.code == 0 and len(res.stdout.splitlines()) == 10


def test_outputs_that_are_not_regular_files_are_refused(workdir):
    Path("adir").mkdir()
    for args in (["synth", "--seed", "1", "--events", "10", "--out", "adir"], ["inspect", str(BAD / "binance_negative.txt"), "--out", "adir"],
                 ["convert", str(REAL / "tardis/bitmex_trades_XBTUSD.csv"), "--out", "x.jsonl", "--report", "adir"]):
        res = run_cli("data", *args)
        assert res.code == 1 and res.last_err.startswith("E_IO_WRITE: adir exists and is not a regular file"), res.stderr
    assert Path("adir").is_dir() and not Path("x.jsonl").exists(), "refused before any work"


@pytest.mark.parametrize("args", [["convert", "x", "--out", "y", "--from", "parquet"], ["convert", "x", "--out", "y", "--to", "csv"],
                                  ["slice", "x", "--from", "2024-01-01", "--to", "2024-01-02", "--out", "y", "--to-format", "csv"],
                                  ["synth", "--seed", "1", "--events", "0", "--out", "y"], ["convert", "x"], ["inspect", "x", "--on-error", "warn"]])
def test_usage_errors_exit_64(workdir, args):
    res = run_cli("data", *args)
    assert res.code == 64 and res.last_err.startswith("E_USAGE: "), res.stderr


def test_missing_input_is_an_io_error(workdir):
    res = run_cli("data", "convert", "nope.jsonl", "--out", "y.jsonl")
    assert res.code == 1 and res.last_err.startswith("E_IO_MISSING: ") and not Path("y.jsonl").exists()
