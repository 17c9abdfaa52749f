"""Executors on real processes: serial == process, resumability through a torn store,
failing trials, a dying worker retried once, interrupts, executor specs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmkit.errors import EXIT_USAGE, MmkitError
from mmkit.research.executors import (
    ProcessExecutor,
    SerialExecutor,
    Trial,
    TrialResult,
    TrialStore,
    make_executor,
    trial_key,
)

FN = "research.trial_fns:"
CODE = "test-code-1"


def trials(n: int = 10, fn: str = "square", log: Path | None = None, **extra: object) -> list[Trial]:
    out = []
    for i in range(n):
        params: dict[str, object] = {"x": i, **extra}
        if log is not None:
            params["log"] = str(log)
        out.append(Trial(f"t{i:02d}", FN + fn, params, seed=1000 + i, inputs=(("data/a.gz", "ab" * 32),)))
    return out


def run(executor, ts, path: Path, code: str = CODE) -> tuple[list[TrialResult], list[TrialResult]]:
    streamed: list[TrialResult] = []
    results = executor.run(ts, TrialStore(path, code_version=code), on_result=streamed.append)
    return results, streamed


def lines(path: Path) -> list[dict]:
    return [json.loads(ln) for ln in path.read_text().splitlines()]


def test_serial_and_process_give_identical_sorted_results(tmp_path):
    ts = trials(12)[::-1]  # submission order must not matter
    serial, s_streamed = run(SerialExecutor(), ts, tmp_path / "serial.jsonl")
    process, p_streamed = run(ProcessExecutor(2), ts, tmp_path / "process.jsonl")
    assert serial == process
    assert [r.trial_id for r in serial] == [f"t{i:02d}" for i in range(12)]
    assert all(r.status == "ok" and r.error is None for r in serial)
    assert serial[3].result == {"x": 3, "y": 9, "draw": serial[3].result["draw"], "n_inputs": 1}
    assert sorted(s_streamed, key=lambda r: r.trial_id) == sorted(p_streamed, key=lambda r: r.trial_id) == serial
    # the two stores hold the same records (order may differ)
    assert sorted(lines(tmp_path / "serial.jsonl"), key=str) == sorted(lines(tmp_path / "process.jsonl"), key=str)
    # loaded results equal executed ones
    loaded, streamed = run(ProcessExecutor(2), ts, tmp_path / "serial.jsonl")
    assert loaded == serial and streamed == []


def test_rerun_skips_finished_trials_and_resumes_after_a_torn_store(tmp_path):
    store = tmp_path / "out" / "trials.jsonl"
    log = tmp_path / "calls.log"
    ts = trials(10, log=log)
    first, streamed = run(ProcessExecutor(2), ts, store)
    assert len(streamed) == 10 and len(lines(store)) == 10
    again, streamed = run(ProcessExecutor(2), ts, store)
    assert streamed == [] and again == first
    assert len(log.read_text().splitlines()) == 10 and len(lines(store)) == 10

    raw = store.read_bytes().splitlines(keepends=True)
    store.write_bytes(b"".join(raw[:7]) + raw[7][: len(raw[7]) // 2])  # drop 3 lines, tear the last
    loaded = TrialStore(store, code_version=CODE)
    assert loaded.torn_line_ignored and len(loaded) == 7
    log.write_text("")
    resumed, streamed = run(SerialExecutor(), ts, store)
    executed = sorted(r.trial_id for r in streamed)
    assert executed == ["t07", "t08", "t09"]
    assert sorted(log.read_text().split()) == ["7", "8", "9"]
    assert resumed == first
    assert len(lines(store)) == 10  # torn bytes were cut away, every line whole
    assert TrialStore(store, code_version=CODE).done() == {r.key for r in first}


def test_a_new_code_version_reruns_everything(tmp_path):
    ts = trials(3)
    run(SerialExecutor(), ts, tmp_path / "s.jsonl")
    _, streamed = run(SerialExecutor(), ts, tmp_path / "s.jsonl", code="test-code-2")
    assert len(streamed) == 3


@pytest.mark.parametrize("executor", [SerialExecutor(), ProcessExecutor(2)], ids=["serial", "process"])
def test_a_raising_trial_is_recorded_failed_and_the_rest_succeed(tmp_path, executor):
    ts = trials(5) + [Trial("t99", FN + "boom", {"x": 99}, seed=1), Trial("t98", FN + "nan", {"x": 98}, seed=1),
                      Trial("t97", FN + "missing_fn", {}, seed=1)]
    results, _ = run(executor, ts, tmp_path / "s.jsonl")
    by_id = {r.trial_id: r for r in results}
    assert by_id["t99"].status == "failed" and by_id["t99"].error == "ValueError: boom 99" and by_id["t99"].result is None
    assert by_id["t98"].status == "failed" and by_id["t98"].error.startswith("E_ART_NON_FINITE")
    assert by_id["t97"].status == "failed" and "AttributeError" in by_id["t97"].error
    assert all(by_id[f"t{i:02d}"].status == "ok" for i in range(5))
    assert {rec["trial_id"]: rec["status"] for rec in lines(tmp_path / "s.jsonl")}["t99"] == "failed"
    # failures are finished trials: a re-run does not repeat them
    _, streamed = run(executor, ts, tmp_path / "s.jsonl")
    assert streamed == []


def test_a_dying_worker_is_retried_once_then_recorded_failed(tmp_path):
    log = tmp_path / "calls.log"
    ts = trials(6, log=log)
    ts.insert(3, Trial("t50", FN + "die", {"x": 50, "log": str(log)}, seed=7))
    results, streamed = run(ProcessExecutor(2), ts, tmp_path / "s.jsonl")
    by_id = {r.trial_id: r for r in results}
    assert by_id["t50"] == TrialResult("t50", by_id["t50"].key, "failed", None, "worker died")
    assert all(by_id[f"t{i:02d}"].status == "ok" for i in range(6))
    assert log.read_text().split().count("50") == 2  # ran, then retried exactly once
    assert len(streamed) == 7 and len(lines(tmp_path / "s.jsonl")) == 7
    serial, _ = run(SerialExecutor(), trials(6), tmp_path / "serial.jsonl")
    assert [(r.trial_id, r.result) for r in results if r.trial_id != "t50"] == [(r.trial_id, r.result) for r in serial]


def test_interrupt_cancels_the_pool_and_keeps_the_store_whole(tmp_path):
    store = tmp_path / "s.jsonl"
    ts = trials(30)
    seen: list[TrialResult] = []

    def stop_after_three(res: TrialResult) -> None:
        seen.append(res)
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ProcessExecutor(2).run(ts, TrialStore(store, code_version=CODE), on_result=stop_after_three)
    assert len(lines(store)) == 3
    results, streamed = run(ProcessExecutor(2), ts, store)
    assert len(streamed) == 27 and len(results) == 30 and all(r.status == "ok" for r in results)


def test_trial_key_covers_fn_params_seed_inputs_and_code_not_the_id():
    base = Trial("a", FN + "square", {"x": 1, "y": [1, 2]}, seed=3, inputs=(("f", "00"),))
    key = trial_key(base, CODE)
    assert len(key) == 64 and key == trial_key(Trial("b", FN + "square", {"y": [1, 2], "x": 1}, 3, (("f", "00"),)), CODE)
    variants = [
        Trial("a", FN + "boom", base.params, 3, base.inputs),
        Trial("a", base.fn, {"x": 2, "y": [1, 2]}, 3, base.inputs),
        Trial("a", base.fn, base.params, 4, base.inputs),
        Trial("a", base.fn, base.params, 3, (("f", "01"),)),
    ]
    assert len({key, *(trial_key(v, CODE) for v in variants), trial_key(base, "other")}) == 6


def test_bad_trials_and_stores_are_refused(tmp_path):
    with pytest.raises(ValueError):
        Trial("a", "no_colon", {}, 1)
    with pytest.raises(ValueError):
        Trial("a", FN + "square", {}, seed=True)
    with pytest.raises(ValueError, match="duplicate"):
        SerialExecutor().run(trials(2) + trials(1), TrialStore(tmp_path / "d.jsonl", code_version=CODE))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"key":"k"}\n')
    with pytest.raises(MmkitError) as err:
        TrialStore(bad, code_version=CODE)
    assert err.value.code == "E_EXEC_BAD_STORE" and "bad.jsonl:1" in err.value.message
    bad.write_text("not json\n{}\n")
    with pytest.raises(MmkitError) as err:
        TrialStore(bad, code_version=CODE)
    assert err.value.code == "E_DATA_BAD_JSON"


def test_make_executor_specs():
    assert isinstance(make_executor("serial"), SerialExecutor)
    assert isinstance(make_executor("process"), ProcessExecutor) and make_executor("process").workers >= 1
    assert make_executor("process:3").workers == 3
    for spec in ("", "dask", "process:", "process:0", "process:-1", "process:x", "thread", "tcp://h", "http://h:8786"):
        with pytest.raises(MmkitError) as err:
            make_executor(spec)
        assert err.value.code == "E_EXEC_BAD_SPEC" and err.value.exit_code == EXIT_USAGE
