"""Executors: run independent, pure trials serially or on a process pool, resumably.

A ``Trial`` is ``inputs + params + seed -> result``: its function is named by a
``"module:function"`` string (so it pickles and its key is stable), called as
``fn(params, seed, inputs)`` and must return a JSON-safe ``dict``.  Params are handed to the
function as a fresh JSON round-trip copy and the result is normalized the same way, so a
trial's result is identical whichever executor ran it (and whether it was run now or
loaded from the store).

Every finished trial is appended, as one fsynced canonical JSON line, to a ``TrialStore``
keyed by ``trial_key`` (sha256 over fn, params, seed, inputs and the code version).  A
re-run skips every key already in the store, so a killed sweep continues where it stopped.
A trial that raises (or returns a non-dict, or NaN/inf) is recorded ``failed`` with its
error and does not stop the run.  On the process pool a worker that dies
(``BrokenProcessPool``) is handled by recreating the pool and retrying each unfinished
trial once, alone, so an innocent neighbour is not blamed; a trial that kills its worker
again is recorded ``failed`` with error ``"worker died"``.

Results stream to ``on_result`` as they finish (after their line is fsynced); ``run``
returns every result, executed or loaded, sorted by ``trial_id`` (a string sort: zero-pad
numeric ids).  An interrupt (``KeyboardInterrupt``, or any exception raised by
``on_result``) cancels pending work, shuts the pool down and propagates; the store then
holds only whole lines of finished trials.

``DaskExecutor`` (``tcp://HOST:PORT``) runs the same ``execute_trial`` on a Dask cluster;
``distributed`` is imported only when that executor is built, so mmkit works without the
``mmkit[dask]`` extra.  A worker that dies is handled by the scheduler, which reschedules
its tasks on the surviving workers; a trial that keeps killing workers ends as
``KilledWorker`` and is recorded failed with ``"worker died"``.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import re
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, CancelledError, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mmkit.artifacts import append_jsonl, canonical_json, git_sha, mmkit_version, parse_json, sha256_bytes
from mmkit.errors import EXIT_USAGE, MmkitError

STATUS_OK = "ok"
STATUS_FAILED = "failed"
WORKER_DIED = "worker died"
ERROR_MAX_CHARS = 2000

OnResult = Callable[["TrialResult"], None]


# ----------------------------------------------------------------------------- trials
@dataclass(frozen=True)
class Trial:
    """One independent trial.

    ``fn`` is ``"module:function"`` naming a module-level callable
    ``fn(params: dict, seed: int, inputs: tuple[tuple[str, str], ...]) -> dict``;
    ``inputs`` are ``(path, sha256)`` pairs (they enter the key, so a changed input file
    changes the key).  ``params`` must be JSON-safe.
    """

    trial_id: str
    fn: str
    params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    inputs: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.trial_id, str) or not self.trial_id:
            raise ValueError(f"trial_id must be a non-empty string, got {self.trial_id!r}")
        module, sep, name = self.fn.partition(":") if isinstance(self.fn, str) else ("", "", "")
        if not (sep and module and name.isidentifier()):
            raise ValueError(f"trial fn must be 'module:function', got {self.fn!r}")
        if not isinstance(self.params, dict):
            raise ValueError(f"trial params must be a dict, got {type(self.params).__name__}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"trial seed must be an int, got {self.seed!r}")
        pairs = tuple((str(p), str(h)) for p, h in self.inputs)
        object.__setattr__(self, "inputs", pairs)


def default_code_version() -> str:
    """``<mmkit version>+<git sha>``: changing the code invalidates stored trials."""
    return f"{mmkit_version()}+{git_sha()}"


def trial_key(trial: Trial, code_version: str) -> str:
    """sha256 hex of canonical JSON ``{fn, params, seed, inputs, code_version}``.

    The trial id is not part of the key: renaming a trial does not re-run it.
    """
    doc = {
        "fn": trial.fn,
        "params": trial.params,
        "seed": trial.seed,
        "inputs": [[p, h] for p, h in trial.inputs],
        "code_version": code_version,
    }
    return sha256_bytes(canonical_json(doc).encode("ascii"))


@dataclass(frozen=True)
class TrialResult:
    """The outcome of one trial: ``status`` is ``"ok"`` (``result`` set) or ``"failed"``
    (``error`` set)."""

    trial_id: str
    key: str
    status: str
    result: dict[str, Any] | None
    error: str | None

    def to_record(self) -> dict[str, Any]:
        return {"trial_id": self.trial_id, "key": self.key, "status": self.status,
                "result": self.result, "error": self.error}

    @classmethod
    def from_record(cls, rec: Any, where: str) -> TrialResult:
        ok = (
            isinstance(rec, dict)
            and isinstance(rec.get("trial_id"), str)
            and isinstance(rec.get("key"), str)
            and rec.get("status") in (STATUS_OK, STATUS_FAILED)
            and (isinstance(rec.get("result"), dict) if rec.get("status") == STATUS_OK else isinstance(rec.get("error"), str))
        )
        if not ok:
            raise MmkitError("E_EXEC_BAD_STORE", f"{where}: not a trial record; move the trial store aside and re-run")
        return cls(rec["trial_id"], rec["key"], rec["status"], rec.get("result"), rec.get("error"))


# ----------------------------------------------------------------------------- store
class TrialStore:
    """Finished trials, one canonical JSON line each, appended with fsync.

    Loading tolerates a torn last line (a crash mid-append leaves bytes without a trailing
    newline): it is ignored, as if that trial never finished, and the first ``append``
    truncates it away before writing so later lines stay whole.  Any other bad line is an
    error (``E_DATA_BAD_JSON`` or ``E_EXEC_BAD_STORE``, naming ``file:line``).  When a key
    appears twice the first record wins.  One writer per store.
    """

    def __init__(self, path: str | os.PathLike[str], code_version: str | None = None) -> None:
        self.path = Path(path)
        self.code_version = code_version if code_version is not None else default_code_version()
        self._records: dict[str, TrialResult] = {}
        self._torn_at: int | None = None
        self.torn_line_ignored = False
        self._load()

    def _load(self) -> None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise MmkitError("E_IO_READ", f"cannot read {self.path}: {exc.strerror or exc}") from exc
        end = data.rfind(b"\n") + 1
        if end < len(data):
            self._torn_at = end
            self.torn_line_ignored = True
        for no, raw in enumerate(data[:end].split(b"\n")[:-1], 1):
            if not raw.strip():
                continue
            where = f"{self.path}:{no}"
            rec = TrialResult.from_record(parse_json(raw, where), where)
            self._records.setdefault(rec.key, rec)

    def done(self) -> set[str]:
        """Keys of every recorded trial (ok or failed)."""
        return set(self._records)

    def get(self, key: str) -> TrialResult | None:
        return self._records.get(key)

    def results(self) -> dict[str, TrialResult]:
        """Recorded results by key."""
        return dict(self._records)

    def __len__(self) -> int:
        return len(self._records)

    def append(self, result: TrialResult) -> None:
        """Append one result as a whole fsynced line (repairing a torn tail first)."""
        if self._torn_at is not None:
            try:
                os.truncate(self.path, self._torn_at)
            except OSError as exc:
                raise MmkitError("E_IO_WRITE", f"cannot repair {self.path}: {exc.strerror or exc}") from exc
            self._torn_at = None
        append_jsonl(self.path, result.to_record())
        self._records.setdefault(result.key, result)


# ----------------------------------------------------------------------------- running one
def _describe(exc: BaseException) -> str:
    text = exc.line() if isinstance(exc, MmkitError) else f"{type(exc).__name__}: {exc}"
    text = " ".join(text.split())
    return text if len(text) <= ERROR_MAX_CHARS else text[: ERROR_MAX_CHARS - 3] + "..."


def _resolve(ref: str) -> Callable[..., Any]:
    module, _, name = ref.partition(":")
    fn = getattr(importlib.import_module(module), name)
    if not callable(fn):
        raise TypeError(f"{ref} is not callable")
    return fn


def execute_trial(fn_ref: str, params: dict[str, Any], seed: int, inputs: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """Run one trial and return ``{"status", "result", "error"}`` (never raises for a
    failing trial; ``KeyboardInterrupt`` propagates).  Runs in the worker process."""
    try:
        fn = _resolve(fn_ref)
        out = fn(parse_json(canonical_json(params)), seed, inputs)
        if not isinstance(out, dict):
            raise TypeError(f"trial function returned {type(out).__name__}, expected a dict")
        result = parse_json(canonical_json(out))
    except (Exception, SystemExit) as exc:
        return {"status": STATUS_FAILED, "result": None, "error": _describe(exc)}
    return {"status": STATUS_OK, "result": result, "error": None}


def _died() -> dict[str, Any]:
    return {"status": STATUS_FAILED, "result": None, "error": WORKER_DIED}


class _Run:
    """Bookkeeping shared by the executors: skip stored keys, record, stream, sort."""

    def __init__(self, trials: Iterable[Trial], store: TrialStore, on_result: OnResult | None) -> None:
        self.store = store
        self.on_result = on_result
        self.results: dict[str, TrialResult] = {}
        self.todo: list[tuple[Trial, str]] = []
        seen: set[str] = set()
        for trial in trials:
            if trial.trial_id in seen:
                raise ValueError(f"duplicate trial_id {trial.trial_id!r}")
            seen.add(trial.trial_id)
            key = trial_key(trial, store.code_version)
            stored = store.get(key)
            if stored is None:
                self.todo.append((trial, key))
            else:
                self.results[trial.trial_id] = TrialResult(trial.trial_id, key, stored.status, stored.result, stored.error)

    def record(self, trial: Trial, key: str, payload: dict[str, Any]) -> None:
        res = TrialResult(trial.trial_id, key, payload["status"], payload["result"], payload["error"])
        self.store.append(res)
        self.results[trial.trial_id] = res
        if self.on_result is not None:
            self.on_result(res)

    def sorted(self) -> list[TrialResult]:
        return [self.results[k] for k in sorted(self.results)]


# ----------------------------------------------------------------------------- executors
class Executor(Protocol):
    def run(self, trials: Sequence[Trial], store: TrialStore, on_result: OnResult | None = None) -> list[TrialResult]:
        """Run the trials not yet in ``store``, stream each finished one to ``on_result``,
        return all results (executed and loaded) sorted by ``trial_id``."""
        ...


class SerialExecutor:
    """Runs trials one after another in this process."""

    def run(self, trials: Sequence[Trial], store: TrialStore, on_result: OnResult | None = None) -> list[TrialResult]:
        state = _Run(trials, store, on_result)
        for trial, key in state.todo:
            state.record(trial, key, execute_trial(trial.fn, trial.params, trial.seed, trial.inputs))
        return state.sorted()


def _default_workers() -> int:
    return os.cpu_count() or 1


class ProcessExecutor:
    """Runs trials on a ``ProcessPoolExecutor`` with ``workers`` processes (default: cores).

    At most ``workers`` trials are in flight, so when a worker dies only those are
    suspects: the pool is recreated and each suspect is retried once, alone; one that
    kills its worker again is recorded failed with error ``"worker died"``.
    """

    def __init__(self, workers: int | None = None) -> None:
        n = _default_workers() if workers is None else workers
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"workers must be a positive int, got {workers!r}")
        self.workers = n

    def run(self, trials: Sequence[Trial], store: TrialStore, on_result: OnResult | None = None) -> list[TrialResult]:
        state = _Run(trials, store, on_result)
        queue: deque[tuple[Trial, str]] = deque(state.todo)
        suspects: deque[tuple[Trial, str]] = deque()
        pool: ProcessPoolExecutor | None = None
        try:
            while queue or suspects:
                if pool is None:
                    pool = ProcessPoolExecutor(max_workers=self.workers)
                if suspects:
                    broken = self._retry_alone(pool, suspects.popleft(), state)
                else:
                    broken = self._batch(pool, queue, suspects, state)
                if broken:
                    pool.shutdown(wait=True, cancel_futures=True)
                    pool = None
        except BaseException:
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
                pool = None
            raise
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
        return state.sorted()

    @staticmethod
    def _submit(pool: ProcessPoolExecutor, trial: Trial) -> Future[dict[str, Any]]:
        return pool.submit(execute_trial, trial.fn, trial.params, trial.seed, trial.inputs)

    @staticmethod
    def _outcome(fut: Future[dict[str, Any]]) -> dict[str, Any] | None:
        """The worker's payload, ``None`` if the pool broke under it."""
        try:
            return fut.result()
        except BrokenProcessPool:
            return None
        except Exception as exc:  # e.g. an unpicklable payload
            return {"status": STATUS_FAILED, "result": None, "error": _describe(exc)}

    def _retry_alone(self, pool: ProcessPoolExecutor, item: tuple[Trial, str], state: _Run) -> bool:
        trial, key = item
        payload = self._outcome(self._submit(pool, trial))
        state.record(trial, key, payload if payload is not None else _died())
        return payload is None

    def _batch(self, pool: ProcessPoolExecutor, queue: deque[tuple[Trial, str]],
               suspects: deque[tuple[Trial, str]], state: _Run) -> bool:
        inflight: dict[Future[dict[str, Any]], tuple[Trial, str]] = {}
        broken = False
        while True:
            while queue and not broken and len(inflight) < self.workers:
                item = queue.popleft()
                try:
                    inflight[self._submit(pool, item[0])] = item
                except BrokenProcessPool:
                    queue.appendleft(item)
                    broken = True
            if not inflight:
                return broken
            done, _ = wait(inflight, return_when=FIRST_COMPLETED)
            for fut in sorted(done, key=lambda f: inflight[f][0].trial_id):
                trial, key = inflight.pop(fut)
                payload = self._outcome(fut)
                if payload is None:
                    suspects.append((trial, key))
                    broken = True
                else:
                    state.record(trial, key, payload)


# ----------------------------------------------------------------------------- dask
DASK_ADDRESS = re.compile(r"tcp://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):([0-9]{1,5})")
DEFAULT_DASK_TIMEOUT = 10.0  # seconds to reach the scheduler
DASK_TIMEOUT_ENV = "MM_DASK_TIMEOUT"
DEFAULT_WORKER_WAIT = 60.0  # seconds the cluster may have no worker before the run gives up
# A trial's own exception is caught inside ``execute_trial`` (deterministic: never retried).
# A task that still errs failed outside the trial (e.g. the worker could not deserialize
# it): worth one more attempt.  A dead worker is not an error but a reschedule, bounded by
# the scheduler's ``distributed.scheduler.allowed-failures``.
DASK_RETRIES = 1
_POLL_S = 0.02
_WATCH_EVERY_S = 1.0


def require_distributed() -> Any:
    """``distributed``, imported on demand so mmkit works without the ``dask`` extra."""
    try:
        import distributed
    except ImportError as exc:
        raise MmkitError("E_EXEC_NO_DASK",
                         "the dask executor needs dask.distributed; install it with: pip install 'mmkit[dask]'") from exc
    return distributed


def is_dask_address(text: str) -> bool:
    """True for ``tcp://HOST:PORT`` with a port in 1..65535 (IPv6 hosts in brackets)."""
    m = DASK_ADDRESS.fullmatch(text)
    return m is not None and 1 <= int(m.group(2)) <= 65535


class _Lost(Exception):
    """The scheduler cancelled a task under us (it restarted or the client lost it)."""


class _ClusterWatch:
    """Turns a cluster that cannot make progress into an error instead of a hang: no
    worker for ``grace`` seconds (``E_EXEC_NO_WORKERS``) or a client that lost its
    scheduler (``E_EXEC_LOST``)."""

    def __init__(self, client: Any, address: str, grace: float) -> None:
        self.client = client
        self.address = address
        self.grace = grace
        self.next_check = time.monotonic() + _WATCH_EVERY_S
        self.stuck_since: float | None = None

    def check(self) -> None:
        now = time.monotonic()
        if now < self.next_check:
            return
        self.next_check = now + _WATCH_EVERY_S
        status = str(getattr(self.client, "status", "running"))
        if status in ("closing", "closed", "failed"):
            raise _lost(self.address)
        workers = self.client.scheduler_info(n_workers=0).get("n_workers", 0) if status == "running" else 0
        if workers:
            self.stuck_since = None
            return
        if self.stuck_since is None:
            self.stuck_since = now
        elif now - self.stuck_since >= self.grace:
            if status != "running":
                raise _lost(self.address)
            raise MmkitError("E_EXEC_NO_WORKERS", f"the dask scheduler at {self.address} has had no worker for "
                             f"{self.grace:g} s; start one (dask worker {self.address} --host 127.0.0.1) and re-run "
                             "to resume")


async def _probe_scheduler(dist: Any, address: str, timeout: float) -> Any:
    """The peer's ``identity`` over one dask comm (the caller bounds the whole exchange)."""
    comm = await dist.comm.connect(address, timeout=timeout)
    try:
        await comm.write({"op": "identity", "reply": True})
        return await comm.read()
    finally:
        comm.abort()


def _lost(address: str) -> MmkitError:
    return MmkitError("E_EXEC_LOST", f"lost the dask scheduler at {address} mid-run; finished trials are kept, "
                      "re-run to resume")


class DaskExecutor:
    """Runs trials on a Dask cluster at ``address`` (``tcp://HOST:PORT``).

    Every trial is one task calling ``execute_trial`` (so results are the same as on the
    other executors), all submitted at once; the scheduler queues them and results stream
    back as they finish.  Workers must import mmkit and every trial ``fn`` (same code:
    the store key holds this process's code version).  The scheduler reschedules the
    tasks of a worker that dies (a SIGKILLed worker does not fail the run); a trial that
    killed more than ``distributed.scheduler.allowed-failures`` workers (a scheduler
    setting, default 3) is recorded failed with ``"worker died"``.

    ``timeout`` bounds reaching the scheduler (``E_EXEC_UNREACHABLE``); ``worker_wait``
    bounds how long the cluster may have no worker (``E_EXEC_NO_WORKERS``).  Connecting is
    deferred to ``run`` and skipped when every trial is already in the store.
    """

    def __init__(self, address: str, timeout: float = DEFAULT_DASK_TIMEOUT,
                 worker_wait: float = DEFAULT_WORKER_WAIT) -> None:
        if not isinstance(address, str) or not is_dask_address(address):
            raise MmkitError("E_EXEC_BAD_SPEC", f"bad dask address {address!r}; use tcp://HOST:PORT",
                             exit_code=EXIT_USAGE)
        for name, value in (("timeout", timeout), ("worker_wait", worker_wait)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        self.address = address
        self.timeout = float(timeout)
        self.worker_wait = float(worker_wait)
        self._dist = require_distributed()

    def run(self, trials: Sequence[Trial], store: TrialStore, on_result: OnResult | None = None) -> list[TrialResult]:
        state = _Run(trials, store, on_result)
        if not state.todo:
            return state.sorted()
        client = self.connect()
        try:
            self._await_worker(client)
            self._drive(client, state)
        finally:
            try:
                client.close(timeout=self.timeout)
            except Exception:  # closing a client whose scheduler is gone; the run's outcome stands
                pass
        return state.sorted()

    def connect(self) -> Any:
        """A ``distributed.Client`` on ``address``, or ``E_EXEC_UNREACHABLE`` within ``timeout``.

        The scheduler is probed first under a hard deadline: ``Client`` bounds the TCP
        connect but then waits for dask's handshake without limit, so a port that accepts
        and never answers (not dask, or a hung scheduler) would hang the run forever.
        """
        probe = asyncio.wait_for(_probe_scheduler(self._dist, self.address, self.timeout), self.timeout)
        try:
            # on a thread of its own: the caller may already run an event loop (a notebook)
            with ThreadPoolExecutor(max_workers=1) as one:
                info = one.submit(asyncio.run, probe).result()
            if not (isinstance(info, dict) and info.get("type") == "Scheduler"):
                raise OSError(f"the peer is not a dask scheduler (identity {str(info)[:80]!r})")
            return self._dist.Client(self.address, timeout=self.timeout, set_as_default=False, name="mmkit")
        except Exception as exc:  # OSError, TimeoutError, a handshake with something that is not dask
            why = _describe(exc) if str(exc) else "timed out"
            raise MmkitError("E_EXEC_UNREACHABLE", f"no dask scheduler answered at {self.address} within "
                             f"{self.timeout:g} s ({why}); start one (dask scheduler --host 127.0.0.1) "
                             "or fix the address") from exc

    def _await_worker(self, client: Any) -> None:
        try:
            client.wait_for_workers(1, timeout=self.worker_wait)
        except TimeoutError as exc:  # (a subclass of OSError: caught first)
            raise MmkitError("E_EXEC_NO_WORKERS", f"the dask scheduler at {self.address} has no worker after "
                             f"{self.worker_wait:g} s; start one (dask worker {self.address} --host 127.0.0.1)") from exc
        except OSError as exc:  # the scheduler went away while we waited
            raise _lost(self.address) from exc

    def _drive(self, client: Any, state: _Run) -> None:
        token = uuid.uuid4().hex[:12]
        pending: dict[Any, tuple[Trial, str]] = {}
        try:
            for trial, key in state.todo:
                fut = client.submit(execute_trial, trial.fn, trial.params, trial.seed, trial.inputs,
                                    key=f"mmkit-trial-{key[:16]}-{token}", pure=False, retries=DASK_RETRIES)
                pending[fut] = (trial, key)
            finished = self._dist.as_completed(list(pending), loop=client.loop)
            watch = _ClusterWatch(client, self.address, self.worker_wait)
            while not finished.is_empty():
                batch = finished.next_batch(block=False)
                if not batch:
                    watch.check()
                    time.sleep(_POLL_S)
                    continue
                for fut in sorted(batch, key=lambda f: pending[f][0].trial_id):
                    trial, key = pending[fut]
                    state.record(trial, key, self._outcome(fut))
                    del pending[fut]
        except _Lost as exc:
            raise _lost(self.address) from exc
        except BaseException:
            if pending:
                try:
                    client.cancel(list(pending), force=True)
                except Exception:  # the scheduler may be gone; it drops our tasks with the client
                    pass
            raise

    def _outcome(self, fut: Any) -> dict[str, Any]:
        """The worker's payload; ``"worker died"`` for ``KilledWorker``; ``_Lost`` if cancelled."""
        try:
            return fut.result()
        except self._dist.KilledWorker:
            return _died()
        except CancelledError as exc:
            raise _Lost(str(exc)) from exc
        except Exception as exc:  # failed outside the trial even after DASK_RETRIES
            return {"status": STATUS_FAILED, "result": None, "error": _describe(exc)}


def _dask_timeout_from_env() -> float:
    """``MM_DASK_TIMEOUT`` (seconds to reach the scheduler), default ``DEFAULT_DASK_TIMEOUT``."""
    raw = os.environ.get(DASK_TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_DASK_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise MmkitError("E_EXEC_BAD_SPEC", f"{DASK_TIMEOUT_ENV}={raw!r} is not a positive number of seconds",
                         exit_code=EXIT_USAGE)
    return value


def make_executor(spec: str) -> SerialExecutor | ProcessExecutor | DaskExecutor:
    """``"serial"``, ``"process"`` (one worker per core), ``"process:N"`` or a Dask
    scheduler ``"tcp://HOST:PORT"`` (needs ``mmkit[dask]``; connects when it runs, within
    ``$MM_DASK_TIMEOUT`` seconds, default 10)."""
    text = spec.strip() if isinstance(spec, str) else ""
    if text == "serial":
        return SerialExecutor()
    if text == "process":
        return ProcessExecutor()
    if is_dask_address(text):
        return DaskExecutor(text, timeout=_dask_timeout_from_env())
    kind, sep, count = text.partition(":")
    if kind == "process" and sep and count.isascii() and count.isdigit() and int(count) >= 1:
        return ProcessExecutor(int(count))
    raise MmkitError("E_EXEC_BAD_SPEC", f"unknown executor {spec!r}; use serial, process, process:N (N >= 1) "
                     "or a dask scheduler tcp://HOST:PORT", exit_code=EXIT_USAGE)
