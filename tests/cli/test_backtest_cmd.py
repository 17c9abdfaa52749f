"""``mmkit backtest run`` end to end: exit codes and status line, the report and its
schema, Markdown from JSON, traces, byte-identical reruns, the golden report of the real
USD-M 0718 recording, queue models, bad input and Ctrl-C."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from mmkit.research.backtest import render_markdown
from support import FIXTURES, ROOT, assert_golden, run_cli, validate_artifact

USDM = FIXTURES / "real/binance/usdm/btcusdt_20240718.gz"
BASELINE = ROOT / "bench/configs/baseline.yaml"
LOOSE_GATES = {"min_net_bps": -1000.0, "max_taker_share_pct": 100.0, "max_order_age_p95_ms": 1.0e9}


def write_config(folder: Path, name: str, **sections: dict[str, Any]) -> str:
    """baseline.yaml with some section keys replaced, written to ``folder/name``."""
    raw = yaml.safe_load(BASELINE.read_text())
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values)
    (folder / name).write_text(yaml.safe_dump(raw, sort_keys=True))
    return name


@pytest.fixture
def inputs(workdir: Path) -> Path:
    """Relative copies of the recording and the baseline in the working folder."""
    shutil.copy(USDM, workdir / "usdm_0718.gz")
    shutil.copy(BASELINE, workdir / "baseline.yaml")
    write_config(workdir, "pass.yaml", backtest={"gates": LOOSE_GATES})
    return workdir


def bt(*args: str) -> Any:
    return run_cli("backtest", "run", "--ticks", "usdm_0718.gz", "--seed", "1", *args)


def report(path: str = "artifacts/BACKTEST_REPORT.json") -> dict[str, Any]:
    return json.loads(Path(path).read_text())


# ----------------------------------------------------------------------------- verdicts
def test_failing_gates_exit_2(inputs: Path) -> None:
    res = bt("--config", "baseline.yaml")
    assert res.code == 2, res.stderr
    assert res.stdout.splitlines()[-1] == "BACKTEST=FAIL"
    rep = report()
    assert rep["verdict"] == "FAIL" and not all(g["passed"] for g in rep["gates"])
    validate_artifact(rep)


def test_passing_gates_exit_0(inputs: Path) -> None:
    res = bt("--config", "pass.yaml")
    assert res.code == 0, res.stderr
    assert res.stdout.splitlines()[-1] == "BACKTEST=PASS"
    rep = report()
    assert rep["verdict"] == "PASS" and all(g["passed"] for g in rep["gates"])
    assert [g["threshold"] for g in rep["gates"]] == [-1000.0, 100.0, 1.0e9]
    validate_artifact(rep)


def test_out_dash_puts_json_on_stdout_and_status_on_stderr(inputs: Path) -> None:
    res = bt("--config", "pass.yaml", "--out", "-", "--out-md", "r.md")
    assert res.code == 0
    validate_artifact(res.json())
    assert "BACKTEST=PASS" in res.stderr.splitlines()
    assert Path("r.md").read_text() == render_markdown(res.json())


def test_markdown_is_rendered_from_the_json(inputs: Path) -> None:
    assert bt("--config", "baseline.yaml", "--out", "out/r.json").code == 2
    rep = report("out/r.json")
    md = Path("out/r.md").read_text()
    assert md == render_markdown(rep) and md.isascii() and md.endswith("\n")
    for key in ("net_bps", "turnover_usd", "order_age_p95_ms"):
        cell = re.escape("%.6f" % rep["stats"][key])
        assert re.search(rf"\| {key} +\| {cell} +\|", md), key
    assert "| net_bps          | " in md  # the gates table is fixed width too


# ----------------------------------------------------------------------------- traces
def test_trace_files_have_the_documented_fields(inputs: Path) -> None:
    assert bt("--config", "baseline.yaml", "--trace", "trace").code == 2
    fills = [json.loads(x) for x in Path("trace/fills.jsonl").read_text().splitlines()]
    orders = [json.loads(x) for x in Path("trace/orders.jsonl").read_text().splitlines()]
    rep = report()
    assert len(fills) == rep["stats"]["fills"] == rep["engine"]["fills"] > 0
    dec = re.compile(r"^-?\d+(\.\d+)?$")
    for f in fills:
        assert set(f) == {"ts", "symbol", "order_id", "side", "price", "qty", "liquidity", "fee"}
        assert isinstance(f["ts"], int) and f["symbol"] == "BTCUSDT" and f["side"] in ("buy", "sell")
        assert f["liquidity"] in ("maker", "taker")
        assert all(isinstance(f[k], str) and dec.match(f[k]) for k in ("price", "qty", "fee"))
    kinds = {o["event"] for o in orders}
    assert {"create", "ack_create", "fill"} <= kinds
    assert len([o for o in orders if o["event"] == "create"]) == rep["engine"]["creates"]
    for o in orders:
        assert isinstance(o["ts"], int) and o["order_id"].startswith("bt-BTCUSDT-")
        if o["event"] not in ("create", "amend", "cancel"):
            assert isinstance(o["exchange_ts"], int) and o["exchange_ts"] <= o["ts"]
        for k in ("price", "qty"):
            if k in o:
                assert isinstance(o[k], str) and dec.match(o[k])
    assert [o["ts"] for o in orders] == sorted(o["ts"] for o in orders)


# ----------------------------------------------------------------------------- determinism, golden
def test_two_runs_are_byte_identical(inputs: Path, frozen: None) -> None:
    outs = []
    for i in range(2):
        assert bt("--config", "baseline.yaml", "--out", f"r{i}.json", "--trace", f"t{i}").code == 2
        outs.append([Path(p).read_bytes() for p in (f"r{i}.json", f"r{i}.md", f"t{i}/fills.jsonl", f"t{i}/orders.jsonl")])
    assert outs[0] == outs[1]
    assert report("r0.json")["meta"]["generated_at"] == "1970-01-01T00:00:00Z"


def test_golden_report_of_the_usdm_0718_recording(inputs: Path, frozen: None) -> None:
    assert bt("--config", "baseline.yaml").code == 2
    blob = Path("artifacts/BACKTEST_REPORT.json").read_text()
    assert "/work" not in blob and str(ROOT) not in blob
    assert_golden("BACKTEST_REPORT.json", blob)


def test_compiled_and_pure_paths_give_byte_identical_artifacts(inputs: Path, frozen: None,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The compiled modules (book loops, cache row builder, the engine loop over cache
    rows) change speed, never results: the same backtest from the raw file and from its
    cache, once on each path, writes the same bytes, and the raw-file report is the golden
    one either way."""
    from mmkit.core import book, engine
    from mmkit.data import cache

    if book._compiled_apply_side is None or not cache.COMPILED:
        pytest.skip("the compiled modules are not built")
    assert run_cli("data", "convert", "usdm_0718.gz", "--to", "cache", "--out", "usdm.mmc").code == 0
    outs = {}
    before = book._apply_side is not None
    try:
        for path in ("compiled", "pure"):
            monkeypatch.setenv("MMKIT_PURE_PYTHON", "0" if path == "compiled" else "1")
            book.use_compiled(path == "compiled")
            monkeypatch.setattr(engine, "_feed_rows", engine._compiled_feed_rows if path == "compiled" else None)
            for ticks in ("usdm_0718.gz", "usdm.mmc"):
                out = f"{path}-{ticks}"
                res = run_cli("backtest", "run", "--ticks", ticks, "--seed", "1", "--config", "baseline.yaml",
                              "--out", f"{out}.json", "--trace", out)
                assert res.code == 2, res.stderr
                outs[path, ticks] = [Path(p).read_bytes() for p in (f"{out}.json", f"{out}/fills.jsonl",
                                                                    f"{out}/orders.jsonl")]
    finally:
        book.use_compiled(before)
    for ticks in ("usdm_0718.gz", "usdm.mmc"):
        assert outs["compiled", ticks] == outs["pure", ticks], ticks
    assert_golden("BACKTEST_REPORT.json", outs["pure", "usdm_0718.gz"][0].decode())


# ----------------------------------------------------------------------------- queue models
def test_queue_model_and_optimistic_mode(inputs: Path) -> None:
    fills = {}
    for name, args in (("risk_averse", ()), ("prob_power", ("--queue-model", "prob_power")),
                       ("optimistic", ("--mode", "optimistic"))):
        res = bt("--config", "pass.yaml", "--out", f"{name}.json", *args)
        assert res.code == 0, res.stderr
        rep = report(f"{name}.json")
        validate_artifact(rep)
        assert rep["run"]["queue_model"] == name
        fills[name] = rep["stats"]["turnover_usd"]  # filled volume (optimistic fills whole orders at once)
    assert report("optimistic.json")["run"]["mode"] == "optimistic"
    assert fills["optimistic"] >= fills["prob_power"] >= fills["risk_averse"] > 0
    assert fills["optimistic"] > fills["risk_averse"]


def test_decision_interval_override(inputs: Path) -> None:
    assert bt("--config", "pass.yaml", "--decision-interval-ms", "0", "--out", "r0.json").code == 0
    assert bt("--config", "pass.yaml", "--out", "r100.json").code == 0
    r0, r100 = report("r0.json"), report("r100.json")
    assert r0["run"]["decision_interval_ms"] == 0 and r100["run"]["decision_interval_ms"] == 100
    # interval 0: every book change decides (the REST snapshot received after the first
    # depth update it precedes included: the local clock does not run backwards)
    assert r0["engine"]["decisions"] == r0["engine"]["book_events"] > r100["engine"]["decisions"]


# ----------------------------------------------------------------------------- bad input
def _no_report() -> None:
    assert not Path("artifacts/BACKTEST_REPORT.json").exists()
    assert not Path("artifacts/BACKTEST_REPORT.md").exists()


def _one_line_error(res: Any, code: str, exit_code: int = 1) -> None:
    assert res.code == exit_code, (res.code, res.stderr)
    assert res.last_err.startswith(f"{code}: "), res.stderr
    assert "Traceback" not in res.stderr and "BACKTEST=" not in res.stdout
    _no_report()


BAD_CASES = [
    ("missing file", ["--ticks", "nope.jsonl"], "E_IO_MISSING", 1),
    ("empty file", ["--ticks", "empty.jsonl"], "E_DATA_UNKNOWN_FORMAT", 1),
    ("empty file, format given", ["--ticks", "empty.jsonl", "--from", "jsonl"], "E_DATA_EMPTY", 1),
    ("trades only", ["--ticks", "trades.jsonl", "--venue", "binance-usdm"], "E_DATA_NO_BOOK", 1),
    ("calibration unknown key", ["--ticks", "usdm_0718.gz", "--calibration", "cal_key.json"], "E_CFG_UNKNOWN_KEY", 1),
    ("calibration out of range", ["--ticks", "usdm_0718.gz", "--calibration", "cal_range.json"], "E_CFG_RANGE", 1),
    ("unknown queue model", ["--ticks", "usdm_0718.gz", "--queue-model", "fifo"], "E_CFG_MODEL", 1),
    ("unknown venue", ["--ticks", "unlisted.jsonl", "--venue", "nosuch-exchange"], "E_DATA_UNKNOWN_VENUE", 1),
    ("bad mode", ["--ticks", "usdm_0718.gz", "--mode", "fast"], "E_USAGE", 64),
    ("negative interval", ["--ticks", "usdm_0718.gz", "--decision-interval-ms", "-5"], "E_USAGE", 64),
    ("bad config", ["--ticks", "usdm_0718.gz", "--config", "bad.yaml"], "E_CFG_UNKNOWN_KEY", 1),
]


@pytest.mark.parametrize(("args", "code", "exit_code"), [c[1:] for c in BAD_CASES], ids=[c[0] for c in BAD_CASES])
def test_bad_input_is_a_one_line_error(inputs: Path, args: list[str], code: str, exit_code: int) -> None:
    Path("empty.jsonl").write_text("")
    Path("trades.jsonl").write_text(
        '{"kind":"trade","ts":1000,"recv_ts":2000,"symbol":"BTCUSDT","side":"buy","price":"64000.1","qty":"0.010"}\n')
    Path("unlisted.jsonl").write_text(
        '{"kind":"book_snapshot","ts":1000,"recv_ts":2000,"symbol":"ZZZUSD","bids":[["1.5","2"]],"asks":[["1.6","2"]]}\n')
    Path("cal_key.json").write_text('{"latency_ms_mean": 5, "queue_jitter": 1}')
    Path("cal_range.json").write_text('{"toxic_sweep_prob": 1.5}')
    write_config(Path("."), "bad.yaml", fillsim={"queue_depth": 3})
    argv = ["backtest", "run", "--config", "baseline.yaml", *args]
    _one_line_error(run_cli(*argv), code, exit_code)


def test_unknown_queue_model_in_the_config(inputs: Path) -> None:
    write_config(inputs, "badq.yaml", fillsim={"queue_model": "fifo"})
    res = bt("--config", "badq.yaml")
    assert res.code == 1 and res.last_err.startswith("E_CFG_"), res.stderr
    _no_report()


def test_ctrl_c_mid_run_leaves_no_report(inputs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mmkit.research.backtest as bt_mod

    real = bt_mod._Replay.events

    def interrupted(self: Any) -> Any:
        for i, ev in enumerate(real(self)):
            if i == 3000:
                raise KeyboardInterrupt
            yield ev

    monkeypatch.setattr(bt_mod._Replay, "events", interrupted)
    res = bt("--config", "pass.yaml", "--trace", "trace")
    assert res.code == 130
    assert res.last_err.startswith("E_INTERRUPTED: ")
    _no_report()
    assert not Path("trace").exists()
    assert not list(Path(".").rglob("*.tmp.*"))


def test_help_has_a_runnable_example() -> None:
    res = run_cli("backtest", "run", "--help")
    assert res.code == 0 and "Example: mmkit backtest run --ticks" in res.stdout
