"""``mmkit wf`` end to end on the real USD-M 0718 recording: artifacts, schemas and goldens,
exit codes and the status line, byte-identical reruns (serial vs process pool, resumed
from the trial store, the repro command of REPORT.md), skipped splits, and bad input
refused with one line before any trial runs."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path
from typing import Any

import pytest

from support import FIXTURES, ROOT, assert_golden, run_cli, validate_file

USDM = FIXTURES / "real/binance/usdm/btcusdt_20240718.gz"
BASELINE = ROOT / "bench/configs/baseline.yaml"
OUTPUTS = ("champion.json", "walkforward_summary.json")
TIME = ("--train-minutes", "1", "--validate-minutes", "0.5")
LOOSE = ("--gate-min-hit", "0", "--gate-min-pnl", "-1")


@pytest.fixture
def inputs(workdir: Path, frozen: None) -> Path:
    """Relative copies of the recording, the baseline and the grids in the working folder."""
    shutil.copy(USDM, workdir / "usdm_0718.gz")
    shutil.copy(BASELINE, workdir / "baseline.yaml")
    for name in ("wf_grid.yaml", "grid_typo.yaml", "grid_empty.yaml", "grid_random.yaml"):
        shutil.copy(FIXTURES / "research" / name, workdir / name)
    return workdir


def wf(*args: str, out: str = "wf", executor: str = "serial", seed: int = 7) -> Any:
    return run_cli("wf", "--ticks", "usdm_0718.gz", "--config", "baseline.yaml", "--seed", str(seed),
                   "--executor", executor, "--out", out, *args)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_walk_forward_writes_every_artifact_and_a_failed_gate_exits_2(inputs: Path) -> None:
    res = wf("--grid", "wf_grid.yaml", *TIME)
    assert res.code == 2, res.stderr
    assert res.stdout.splitlines()[-1] == "WF=FAIL"
    out = inputs / "wf"
    assert sorted(p.name for p in out.iterdir()) == ["REPORT.md", "champion.json", "split_0_best.json",
                                                      "split_1_best.json", "split_2_best.json", "trials.jsonl",
                                                      "walkforward_summary.json"]
    docs = {p.name: validate_file(p) for p in sorted(out.glob("*.json"))}
    summary, champ = docs["walkforward_summary.json"], docs["champion.json"]
    assert [s["status"] for s in summary["splits"]] == ["ok", "ok", "skipped"]
    assert summary["skipped_splits"] == [{"split": 2, "reasons": ["the validation made 0 fills, fewer than --min-fills 1"]}]
    assert docs["split_2_best.json"]["status"] == "skipped" and docs["split_2_best.json"]["best"] is not None
    assert champ["windows"] == [0, 1] and champ["verdict"] == "FAIL" == summary["verdict"]
    assert {g["gate"]: g["passed"] for g in champ["gates"]} == {
        "--gate-min-hit": False, "--gate-min-maker": True, "--gate-max-cvar": True, "--gate-min-pnl": False}
    assert champ["params"] == summary["champion"]["params"] and champ["metrics"] == summary["champion"]["metrics"]
    # 3 splits x 4 grid points to train, then each pick on the validation windows it never saw
    assert len(lines(out / "trials.jsonl")) == 12 + len(summary["splits"]) + 1
    report = (out / "REPORT.md").read_text()
    for needed in ("git_sha: " + "0" * 40, "cfg_hash: " + champ["meta"]["cfg_hash"], "seed: 7", "## Gates",
                   "| --gate-min-pnl   | net_pnl_usd | 0.007211  | >= | 100.000000   | FAIL   |", "2024-07-18T23:57:02.507Z",
                   "mmkit wf --ticks usdm_0718.gz --config baseline.yaml --grid wf_grid.yaml --seed 7 --train-minutes 1.0 "
                   "--validate-minutes 0.5 --out wf"):
        assert needed in report, needed
    # units policy: base units in JSON
    text = (out / "walkforward_summary.json").read_text()
    assert "_pct" not in text and "bps" not in text
    assert_golden("wf_champion.json", (out / "champion.json").read_bytes())
    assert_golden("wf_walkforward_summary.json", (out / "walkforward_summary.json").read_bytes())
    assert_golden("wf_REPORT.md", report)
    assert_golden("wf_split_0_best.json", (out / "split_0_best.json").read_bytes())


def test_same_seed_same_bytes_on_serial_and_process_and_after_resume(inputs: Path) -> None:
    args = ("--grid", "grid_random.yaml", "--method", "random", "--trials", "3", "--train", "3000", "--test", "2000")
    assert wf(*args, out="a").code == 2
    assert wf(*args, out="b", executor="process:2").code == 2
    for name in OUTPUTS:
        assert (inputs / "a" / name).read_bytes() == (inputs / "b" / name).read_bytes(), name
    stored = lines(inputs / "a" / "trials.jsonl")
    before = {n: (inputs / "a" / n).read_bytes() for n in OUTPUTS}
    assert wf(*args, out="a").code == 2
    assert lines(inputs / "a" / "trials.jsonl") == stored  # every trial came from the store
    assert {n: (inputs / "a" / n).read_bytes() for n in OUTPUTS} == before
    assert wf(*args, out="c", seed=8).code == 2
    a, c = (json.loads((inputs / d / "walkforward_summary.json").read_text()) for d in ("a", "c"))
    assert [s["best_params"] for s in a["splits"]] != [s["best_params"] for s in c["splits"]]


def test_the_repro_command_of_report_md_reproduces_the_bytes(inputs: Path) -> None:
    assert wf("--train", "4000", "--test", "3000", "--lambda-cvar", "0.5", *LOOSE, out="r").code == 0
    saved = {n: (inputs / "r" / n).read_bytes() for n in OUTPUTS}
    report = lines(inputs / "r" / "REPORT.md")
    repro = report[report.index("## Reproduce") + 3]
    argv = shlex.split(repro)
    assert argv[:2] == ["mmkit", "wf"] and "--lambda-cvar" in argv and "--gate-min-pnl" in argv
    shutil.rmtree(inputs / "r")
    res = run_cli(*argv[1:], "--executor", "serial")
    assert res.code == 0 and res.stdout.splitlines()[-1] == "WF=PASS", res.stderr
    assert {n: (inputs / "r" / n).read_bytes() for n in OUTPUTS} == saved


def test_every_split_skipped_means_no_champion_and_a_stale_one_is_removed(inputs: Path) -> None:
    assert wf(*TIME, *LOOSE).code == 0
    assert (inputs / "wf" / "champion.json").exists()
    res = wf(*TIME, *LOOSE, "--min-fills", "1000")
    assert res.code == 2 and res.stdout.splitlines()[-1] == "WF=FAIL"
    assert not (inputs / "wf" / "champion.json").exists()
    summary = validate_file(inputs / "wf" / "walkforward_summary.json")
    assert summary["champion"] is None and summary["gates"] == [] and len(summary["skipped_splits"]) == 3
    assert "No champion" in (inputs / "wf" / "REPORT.md").read_text()
    res = wf(*TIME, *LOOSE, "--min-val-minutes", "1")
    assert res.code == 2 and "shorter than --min-val-minutes 1" in (inputs / "wf" / "REPORT.md").read_text()


@pytest.mark.parametrize(("args", "code", "needle"), [
    (("--grid", "grid_typo.yaml", *TIME), "E_SWEEP_UNKNOWN_KEY", "did you mean 'strategy.fixed.half_spread_ticks'"),
    (("--grid", "grid_empty.yaml", *TIME), "E_SWEEP_EMPTY_GRID", "no parameters"),
    (("--train-minutes", "3", "--validate-minutes", "1"), "E_WF_WINDOW", "do not fit"),
    (("--train", "10000", "--test", "2000"), "E_WF_WINDOW", "do not fit the 11409 events"),
    ((*TIME, "--start", "2024-07-18T23:59:00Z", "--end", "2024-07-18T23:58:00Z"), "E_WF_RANGE", "is not before --end"),
    ((*TIME, "--start", "2030-01-01T00:00:00Z"), "E_WF_WINDOW", "outside the data"),
])
def test_bad_input_is_one_line_exit_1_before_any_trial(inputs: Path, args: tuple[str, ...], code: str,
                                                        needle: str) -> None:
    res = wf(*args)
    assert res.code == 1, res.stderr
    assert res.last_err.startswith(code + ": ") and needle in res.last_err, res.last_err
    assert len([ln for ln in res.stderr.splitlines() if ln.startswith("E_")]) == 1
    assert not (inputs / "wf").exists()  # no trial ran, no partial champion


def test_usage_errors_exit_64_and_help_has_an_example(inputs: Path) -> None:
    res = wf("--train-minutes", "1")
    assert res.code == 64 and res.last_err.startswith("E_USAGE: give the windows")
    res = wf(*TIME, "--executor", "threads")
    assert res.code == 64 and res.last_err.startswith("E_EXEC_BAD_SPEC")
    assert not (inputs / "wf").exists()
    res = run_cli("wf", "--help")
    assert res.code == 0 and "Example:" in res.stdout and "--gate-max-cvar" in res.stdout


def test_input_options_reach_the_reader_every_trial_and_the_repro_line(inputs: Path) -> None:
    """mmkit JSONL of BTCUSDT is ambiguous across venues: --venue names it, as for backtest
    and sweep; the trials read it the same way and REPORT.md's repro command keeps it."""
    assert run_cli("data", "convert", "usdm_0718.gz", "--to", "jsonl", "--out", "usdm.jsonl").code == 0
    base = ("wf", "--ticks", "usdm.jsonl", "--config", "baseline.yaml", "--seed", "7", "--executor", "serial",
            *TIME, *LOOSE)
    res = run_cli(*base, "--out", "nov")
    assert res.code == 1 and "E_DATA_AMBIGUOUS_INSTRUMENT" in res.stderr and "--venue" in res.stderr
    res = run_cli(*base, "--out", "v", "--venue", "binance-usdm", "--from", "jsonl", "--symbol", "BTCUSDT")
    assert res.code in (0, 2), res.stderr
    repro = (inputs / "v/REPORT.md").read_text()
    assert "--venue binance-usdm" in repro and "--from jsonl" in repro and "--symbol BTCUSDT" in repro
    # the same recording from the raw file gives the same windows and champion metrics
    assert run_cli("wf", "--ticks", "usdm_0718.gz", "--config", "baseline.yaml", "--seed", "7", "--executor", "serial",
                   *TIME, *LOOSE, "--out", "raw").code == res.code
    ours = json.loads((inputs / "v/walkforward_summary.json").read_text())
    raw = json.loads((inputs / "raw/walkforward_summary.json").read_text())
    assert ours["champion"]["metrics"] == raw["champion"]["metrics"]
    assert [s["train"] for s in ours["splits"]] == [s["train"] for s in raw["splits"]]
