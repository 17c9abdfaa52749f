"""The dask executor against a REAL local cluster: a ``dask scheduler`` and two
``dask worker`` processes bound to 127.0.0.1, started and shut down by PID.

Results must be byte-identical to the process pool; a worker SIGKILLed mid-run must not
fail the run; a trial that kills its workers is recorded failed; an interrupt cancels the
cluster's tasks.  Plus the cluster-less errors: unreachable scheduler, missing extra.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

from mmkit.artifacts import canonical_json
from mmkit.errors import EXIT_USAGE, MmkitError
from mmkit.research.executors import (
    DaskExecutor,
    ProcessExecutor,
    SerialExecutor,
    Trial,
    TrialResult,
    TrialStore,
    execute_trial,
    make_executor,
)
from support import FIXTURES, ROOT, run_cli

TESTS = ROOT / "tests"
CODE = "test-code-dask"
SQUARE = "research.trial_fns:square"
SLOW = "research.dask_trial_fns:slow_square"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A real scheduler and two single-threaded workers on 127.0.0.1, shut down by PID at
    the end of the module (also when a test fails); no process of it may survive."""
    from mmkit.research.dask_local import LocalDaskCluster

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS), env.get("PYTHONPATH", "")) if p)
    # one task per single-threaded worker (so only the running trial is on a worker that
    # dies) and one reschedule before KilledWorker, like the process pool's single retry
    env["DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION"] = "1.0"
    env["DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES"] = "1"
    c = LocalDaskCluster(tmp_path_factory.mktemp("dask"), workers=2, env=env)
    try:
        c.start()
        yield c
    finally:
        c.close()
        leftover = c.alive()
        assert not leftover, f"orphan dask processes: {leftover}"


def trials(n: int, fn: str = SQUARE, **extra: object) -> list[Trial]:
    return [Trial(f"t{i:02d}", fn, {"x": i, **extra}, seed=500 + i, inputs=(("data/a.gz", "cd" * 32),))
            for i in range(n)]


def run(executor, ts, path: Path, on_result=None) -> tuple[list[TrialResult], list[TrialResult]]:
    streamed: list[TrialResult] = []

    def sink(res: TrialResult) -> None:
        streamed.append(res)
        if on_result is not None:
            on_result(res)

    return executor.run(ts, TrialStore(path, code_version=CODE), on_result=sink), streamed


def as_json(results: list[TrialResult]) -> bytes:
    return canonical_json([r.to_record() for r in results]).encode("ascii")


def store_lines(path: Path) -> list[str]:
    return sorted(path.read_text().splitlines())


# ----------------------------------------------------------------------------- with a cluster
@pytest.mark.dask
@pytest.mark.slow
def test_cluster_listens_on_loopback_only(cluster):
    import psutil

    with cluster.client() as c:
        info = c.scheduler_info()
    assert info["address"] == cluster.address
    assert len(info["workers"]) == 2
    for addr, w in info["workers"].items():
        assert addr.startswith("tcp://127.0.0.1:") and w["nanny"].startswith("tcp://127.0.0.1:")
    listening = []
    for pid in cluster.alive():
        try:
            conns = psutil.Process(pid).net_connections(kind="inet")
        except psutil.NoSuchProcess:
            continue
        listening += [(pid, c.laddr) for c in conns if c.status == psutil.CONN_LISTEN]
    # scheduler + dashboard, and per worker a nanny and a worker
    assert len(listening) >= 6
    assert all(laddr.ip == "127.0.0.1" for _, laddr in listening), listening


@pytest.mark.dask
@pytest.mark.slow
def test_dask_results_are_byte_identical_to_the_process_pool(cluster, tmp_path):
    ts = trials(12)[::-1]
    executor = make_executor(cluster.address)
    assert isinstance(executor, DaskExecutor)
    dask_results, streamed = run(executor, ts, tmp_path / "dask.jsonl")
    process_results, _ = run(ProcessExecutor(2), ts, tmp_path / "process.jsonl")
    assert as_json(dask_results) == as_json(process_results)
    assert [r.trial_id for r in dask_results] == [f"t{i:02d}" for i in range(12)]
    assert all(r.status == "ok" for r in dask_results)
    assert sorted(streamed, key=lambda r: r.trial_id) == dask_results
    assert store_lines(tmp_path / "dask.jsonl") == store_lines(tmp_path / "process.jsonl")
    # resumable: a re-run loads every trial and does not even need the cluster
    again, streamed = run(DaskExecutor("tcp://127.0.0.1:9", timeout=0.5), ts, tmp_path / "dask.jsonl")
    assert streamed == [] and as_json(again) == as_json(dask_results)


@pytest.mark.dask
@pytest.mark.slow
def test_a_raising_trial_is_recorded_failed_on_dask(cluster, tmp_path):
    ts = trials(4) + [Trial("t99", "research.trial_fns:boom", {"x": 99}, seed=1),
                      Trial("t98", "research.trial_fns:nan", {"x": 98}, seed=1),
                      Trial("t97", "research.trial_fns:missing_fn", {}, seed=1)]
    results, _ = run(DaskExecutor(cluster.address), ts, tmp_path / "d.jsonl")
    serial, _ = run(SerialExecutor(), ts, tmp_path / "s.jsonl")
    assert as_json(results) == as_json(serial)
    by_id = {r.trial_id: r for r in results}
    assert by_id["t99"].status == "failed" and by_id["t99"].error == "ValueError: boom 99"
    assert by_id["t98"].error.startswith("E_ART_NON_FINITE") and "AttributeError" in by_id["t97"].error


@pytest.mark.dask
@pytest.mark.slow
def test_interrupt_cancels_the_cluster_tasks_and_keeps_the_store_whole(cluster, tmp_path):
    store = tmp_path / "s.jsonl"
    ts = trials(20, SLOW, sleep=0.1)
    seen: list[TrialResult] = []

    def stop_after_three(res: TrialResult) -> None:
        seen.append(res)
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        DaskExecutor(cluster.address).run(ts, TrialStore(store, code_version=CODE), on_result=stop_after_three)
    assert len(store.read_text().splitlines()) == 3
    with cluster.client() as c:  # the scheduler forgets our tasks (nothing keeps running)
        deadline = time.monotonic() + 10
        while c.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert c.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)) == 0
    results, streamed = run(DaskExecutor(cluster.address), ts, store)
    assert len(streamed) == 17 and len(results) == 20 and all(r.status == "ok" for r in results)


@pytest.mark.dask
@pytest.mark.slow
def test_a_trial_that_kills_its_workers_is_recorded_failed(cluster, tmp_path):
    log = tmp_path / "calls.log"
    ts = trials(4) + [Trial("t50", "research.trial_fns:die", {"x": 50, "log": str(log)}, seed=7)]
    results, streamed = run(DaskExecutor(cluster.address), ts, tmp_path / "d.jsonl")
    by_id = {r.trial_id: r for r in results}
    assert by_id["t50"] == TrialResult("t50", by_id["t50"].key, "failed", None, "worker died")
    assert all(by_id[f"t{i:02d}"].status == "ok" for i in range(4)) and len(streamed) == 5
    assert log.read_text().split() == ["50", "50"]  # ran, rescheduled once (allowed-failures=1), given up
    cluster.wait_for_workers(2)  # the nannies restart their workers


@pytest.mark.dask
@pytest.mark.slow
def test_a_sigkilled_worker_does_not_fail_the_run(cluster, tmp_path):
    cluster.wait_for_workers(2)
    log = tmp_path / "calls.log"
    ts = trials(16, SLOW, sleep=0.25, log=str(log))
    killed: list[tuple[int, int]] = []  # (x, pid) of the trial running on the killed worker
    finished: list[str] = []

    def kill_one_mid_trial(res: TrialResult) -> None:
        finished.append(res.trial_id)
        if killed or len(finished) < 3:
            return
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            started, ended = set(), set()
            for line in log.read_text().splitlines():
                what, x, pid = line.split()
                (started if what == "start" else ended).add((int(x), int(pid)))
            for x, pid in sorted(started - ended):
                worker = cluster.worker_of(pid)
                if worker is not None:
                    cluster.kill(worker)  # SIGKILL the nanny and its worker process
                    killed.append((x, pid))
                    return
            time.sleep(0.01)

    results, streamed = run(DaskExecutor(cluster.address), ts, tmp_path / "dask.jsonl", on_result=kill_one_mid_trial)
    assert killed, "no trial was in flight to kill"
    assert all(r.status == "ok" for r in results) and len(results) == 16 and len(streamed) == 16
    x, pid = killed[0]
    runs = [ln.split()[2] for ln in log.read_text().splitlines() if ln.startswith(f"start {x} ")]
    assert len(runs) == 2 and runs[0] == str(pid) and runs[1] != str(pid)  # rescheduled elsewhere
    with cluster.client() as c:
        assert len(c.scheduler_info()["workers"]) == 1
    # the same values as the plain trial (running them serially would take 16 x 0.25 s)
    expected = [execute_trial(SQUARE, {"x": t.params["x"]}, t.seed, t.inputs)["result"] for t in ts]
    assert [r.result for r in results] == expected


@pytest.mark.dask
@pytest.mark.slow
def test_no_worker_and_a_lost_scheduler_are_errors_not_hangs(tmp_path):
    from mmkit.research.dask_local import LocalDaskCluster

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS), env.get("PYTHONPATH", "")) if p)
    lone = LocalDaskCluster(tmp_path / "lone", workers=0, env=env)
    try:
        lone.start()
        t0 = time.monotonic()
        with pytest.raises(MmkitError) as err:
            DaskExecutor(lone.address, timeout=2, worker_wait=1).run(trials(2), TrialStore(tmp_path / "a.jsonl", code_version=CODE))
        assert err.value.code == "E_EXEC_NO_WORKERS" and time.monotonic() - t0 < 8

        lone.start_worker()
        lone.wait_for_workers(1)
        store = tmp_path / "b.jsonl"
        seen: list[TrialResult] = []

        def kill_scheduler(res: TrialResult) -> None:
            seen.append(res)
            if len(seen) == 2:
                lone.kill(lone.scheduler)

        t0 = time.monotonic()
        with pytest.raises(MmkitError) as err:
            DaskExecutor(lone.address, timeout=2, worker_wait=2).run(trials(10, SLOW, sleep=0.2),
                                                                     TrialStore(store, code_version=CODE),
                                                                     on_result=kill_scheduler)
        assert err.value.code == "E_EXEC_LOST" and time.monotonic() - t0 < 20, err.value
        kept = TrialStore(store, code_version=CODE)
        assert len(kept) == len(store.read_text().splitlines()) >= 2 and not kept.torn_line_ignored
    finally:
        lone.close()
        assert not lone.alive()


def sweep_cli(executor: str, out: str):
    return run_cli("sweep", "run", "--events", "usdm_0718.gz", "--grid", "grid_fixed.yaml", "--config",
                   "sweep_config.yaml", "--seed", "1", "--executor", executor, "--out", out)


@pytest.fixture
def sweep_inputs(workdir: Path) -> Path:
    shutil.copy(FIXTURES / "real/binance/usdm/btcusdt_20240718.gz", workdir / "usdm_0718.gz")
    for name in ("sweep_config.yaml", "grid_fixed.yaml"):
        shutil.copy(FIXTURES / "research" / name, workdir / name)
    return workdir


@pytest.mark.dask
@pytest.mark.slow
def test_mmkit_sweep_run_on_the_cluster_is_byte_identical_to_the_process_pool(cluster, sweep_inputs, frozen):
    on_dask = sweep_cli(cluster.address, "dask/PARAM_SWEEP.json")
    on_pool = sweep_cli("process:2", "pool/PARAM_SWEEP.json")
    assert on_dask.code == on_pool.code == 0, on_dask.stderr + on_pool.stderr
    assert on_dask.stdout.strip() == on_pool.stdout.strip() == "SWEEP=OK"
    blob = Path("dask/PARAM_SWEEP.json").read_bytes()
    assert blob == Path("pool/PARAM_SWEEP.json").read_bytes()
    doc = json.loads(blob)
    assert doc["summary"]["trials"] == doc["summary"]["ok"] == 4
    assert store_lines(Path("dask/sweep_trials.jsonl")) == store_lines(Path("pool/sweep_trials.jsonl"))
    # resumed from its store: same bytes without running a trial
    again = sweep_cli(cluster.address, "dask/PARAM_SWEEP.json")
    assert again.code == 0 and Path("dask/PARAM_SWEEP.json").read_bytes() == blob


@pytest.mark.dask
def test_mmkit_sweep_run_with_an_unreachable_scheduler_fails_in_time(sweep_inputs, monkeypatch):
    from mmkit.research.dask_local import free_port

    monkeypatch.setenv("MM_DASK_TIMEOUT", "1")
    address = f"tcp://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    res = sweep_cli(address, "out/PARAM_SWEEP.json")
    assert res.code == 1 and res.last_err.startswith("E_EXEC_UNREACHABLE:") and address in res.last_err
    assert time.monotonic() - t0 < 8
    assert not Path("out/PARAM_SWEEP.json").exists()
    monkeypatch.setenv("MM_DASK_TIMEOUT", "soon")
    res = sweep_cli(address, "out/PARAM_SWEEP.json")
    assert res.code == EXIT_USAGE and res.last_err.startswith("E_EXEC_BAD_SPEC:")


# ----------------------------------------------------------------------------- without a cluster
@pytest.mark.dask
def test_an_unreachable_scheduler_fails_fast(tmp_path):
    from mmkit.research.dask_local import free_port

    closed = f"tcp://127.0.0.1:{free_port()}"  # nobody listens
    silent = socket.socket()  # listens but never speaks dask
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        silent.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(silent.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        for address in (closed, f"tcp://127.0.0.1:{silent.getsockname()[1]}"):
            t0 = time.monotonic()
            with pytest.raises(MmkitError) as err:
                DaskExecutor(address, timeout=1.0).run(trials(2), TrialStore(tmp_path / "s.jsonl", code_version=CODE))
            elapsed = time.monotonic() - t0
            assert err.value.code == "E_EXEC_UNREACHABLE" and address in err.value.message, err.value
            assert elapsed < 6, f"{address}: gave up after {elapsed:.1f} s"
            assert not (tmp_path / "s.jsonl").exists()
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        silent.close()


def test_without_the_extra_the_dask_executor_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(MmkitError) as err:
        make_executor("tcp://127.0.0.1:8786")
    assert err.value.code == "E_EXEC_NO_DASK" and "pip install 'mmkit[dask]'" in err.value.message
    assert isinstance(make_executor("process:2"), ProcessExecutor)  # the rest still works


def test_dask_addresses_are_parsed_strictly():
    pytest.importorskip("distributed")
    for good in ("tcp://127.0.0.1:8786", "tcp://scheduler.local:1", "tcp://[::1]:65535", " tcp://h:8786 "):
        ex = make_executor(good)
        assert isinstance(ex, DaskExecutor) and ex.address == good.strip() and ex.timeout == 10.0
    for bad in ("tcp://h", "tcp://h:0", "tcp://h:65536", "tcp://:8786", "tls://h:8786", "tcp://h:87x6", "tcp://h:8786/"):
        with pytest.raises(MmkitError) as err:
            make_executor(bad)
        assert err.value.code == "E_EXEC_BAD_SPEC" and err.value.exit_code == EXIT_USAGE
    with pytest.raises(ValueError):
        DaskExecutor("tcp://h:1", timeout=0)
