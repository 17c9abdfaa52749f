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
"""

from __future__ import annotations

import importlib
import os
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
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


def make_executor(spec: str) -> SerialExecutor | ProcessExecutor:
    """``"serial"``, ``"process"`` (one worker per core) or ``"process:N"``."""
    text = spec.strip() if isinstance(spec, str) else ""
    if text == "serial":
        return SerialExecutor()
    if text == "process":
        return ProcessExecutor()
    kind, sep, count = text.partition(":")
    if kind == "process" and sep and count.isascii() and count.isdigit() and int(count) >= 1:
        return ProcessExecutor(int(count))
    raise MmkitError("E_EXEC_BAD_SPEC", f"unknown executor {spec!r}; use serial, process or process:N (N >= 1)",
                     exit_code=EXIT_USAGE)
