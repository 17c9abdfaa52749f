"""A real Dask cluster on this machine, for tests and benchmarks of the dask executor.

``LocalDaskCluster`` starts ``dask scheduler`` and ``dask worker`` processes (the CLI of
this interpreter's environment), never ``distributed.LocalCluster``: the executor is then
exercised exactly as on a real cluster, over TCP, with workers that can be SIGKILLed.

Dask listens on every interface unless told otherwise, so every listener is pinned to
127.0.0.1: the scheduler gets ``--host`` and ``--dashboard-address 127.0.0.1:0``; each
worker ``--host`` and, although it runs ``--no-dashboard``, ``--dashboard-address
127.0.0.1:0`` as well (its /health and /metrics HTTP server binds 0.0.0.0 without it).

Each process is the leader of its own process group (``pgid == pid``), so ``kill`` and
``close`` reach the nanny's worker child too, by PID.  Should the owner die without
``close``, the scheduler exits after ``idle_timeout`` seconds without activity and the
workers ``death_timeout`` seconds after losing it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from mmkit.research.executors import require_distributed

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def dask_cli() -> Path:
    """The ``dask`` command next to this interpreter (installed by ``mmkit[dask]``)."""
    require_distributed()
    path = Path(sys.executable).with_name("dask")
    if not path.exists():
        raise FileNotFoundError(f"no dask command next to {sys.executable}; pip install 'mmkit[dask]'")
    return path


class LocalDaskCluster:
    """A scheduler and ``workers`` single-process workers (``threads`` threads each) on
    127.0.0.1; logs and worker scratch space go to ``folder``; ``env`` (default: this
    process's) is the environment of every process, e.g. ``PYTHONPATH`` for trial
    functions outside mmkit or ``DASK_DISTRIBUTED__SCHEDULER__*`` settings."""

    def __init__(self, folder: str | os.PathLike[str], workers: int = 2, threads: int = 1,
                 env: dict[str, str] | None = None, start_timeout: float = 60.0,
                 idle_timeout: float = 300.0, death_timeout: float = 30.0) -> None:
        self.folder = Path(folder)
        self.n_workers = workers
        self.threads = threads
        self.env = dict(os.environ if env is None else env)
        self.start_timeout = start_timeout
        self.idle_timeout = idle_timeout
        self.death_timeout = death_timeout
        self.address = ""
        self.scheduler: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self.seen_pids: set[int] = set()
        self._cli = dask_cli()

    # -------------------------------------------------------------- lifecycle
    def __enter__(self) -> LocalDaskCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> LocalDaskCluster:
        """Start the scheduler and the workers; return once every worker is registered."""
        self.folder.mkdir(parents=True, exist_ok=True)
        port = free_port()
        self.address = f"tcp://{LOOPBACK}:{port}"
        try:
            self.scheduler = self._spawn("scheduler", "scheduler", "--host", LOOPBACK, "--port", str(port),
                                         "--dashboard-address", f"{LOOPBACK}:0",
                                         "--idle-timeout", f"{self.idle_timeout:g}")
            for _ in range(self.n_workers):
                self.start_worker()
            self.wait_for_workers(self.n_workers)
        except BaseException:
            self.close()
            raise
        return self

    def start_worker(self) -> subprocess.Popen[bytes]:
        proc = self._spawn(f"worker{len(self.workers)}", "worker", self.address, "--host", LOOPBACK,
                           "--nworkers", "1", "--nthreads", str(self.threads), "--no-dashboard",
                           "--dashboard-address", f"{LOOPBACK}:0", "--death-timeout", f"{self.death_timeout:g}",
                           "--local-directory", str(self.folder / "scratch"))
        self.workers.append(proc)
        return proc

    def _spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with open(self.folder / f"{name}.log", "ab") as log:
            return subprocess.Popen([str(self._cli), *args], cwd=self.folder, env=self.env,
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)

    def client(self) -> Any:
        """A ``distributed.Client`` on the scheduler (close it, e.g. ``with``)."""
        return require_distributed().Client(self.address, timeout=self.start_timeout, set_as_default=False)

    def wait_for_workers(self, n: int) -> None:
        """Block until ``n`` workers are registered (a restarted nanny's worker too)."""
        for proc in [self.scheduler, *self.workers[-n:]]:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"dask process {proc.pid} exited with {proc.returncode}; see {self.folder}/*.log")
        with self.client() as c:  # connecting also waits for the scheduler to listen
            if n > 0:
                c.wait_for_workers(n, timeout=self.start_timeout)
        self.note_pids()

    # -------------------------------------------------------------- processes
    def processes(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in (self.scheduler, *self.workers) if p is not None]

    def note_pids(self) -> None:
        """Remember every process of the cluster, nanny children included (see ``alive``)."""
        import psutil

        for proc in self.processes():
            try:
                root = psutil.Process(proc.pid)
                self.seen_pids.update([root.pid] + [c.pid for c in root.children(recursive=True)])
            except psutil.NoSuchProcess:
                pass

    def alive(self) -> list[int]:
        """PIDs ever seen in the cluster that still run (zombies excluded)."""
        import psutil

        out = []
        for pid in sorted(self.seen_pids):
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    out.append(pid)
            except psutil.NoSuchProcess:
                pass
        return out

    def worker_of(self, pid: int) -> subprocess.Popen[bytes] | None:
        """The ``dask worker`` process whose group holds ``pid`` (e.g. a nanny's child)."""
        try:
            pgid = os.getpgid(pid)
        except ProcessLookupError:
            return None
        return next((w for w in self.workers if w.pid == pgid), None)

    @staticmethod
    def kill(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group led by ``proc`` (no-op if it is gone)."""
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass

    def close(self, grace: float = 5.0) -> None:
        """Workers first, then the scheduler: SIGTERM each group, SIGKILL it after ``grace``
        seconds at most, reap the leaders."""
        try:
            self.note_pids()
        except ImportError:
            pass
        for group in (list(self.workers), [self.scheduler] if self.scheduler is not None else []):
            for proc in group:
                self.kill(proc, signal.SIGTERM)
            deadline = time.monotonic() + grace
            for proc in group:
                try:
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
                self.kill(proc, signal.SIGKILL)
                proc.wait()
        self._reap_stragglers(grace)

    def _reap_stragglers(self, grace: float) -> None:
        """Wait (at most ``grace`` s) until no process ever seen in the cluster runs: a
        nanny's child may outlive its group leader by a few ms after the group's SIGKILL
        (delivery is asynchronous; the signal has reached it), and ``close`` promises
        nothing is left."""
        try:
            left = self.alive()
        except ImportError:  # psutil missing: the group kills above are all we can do
            return
        deadline = time.monotonic() + grace
        while left and time.monotonic() < deadline:  # no kill by bare pid: it could be reused
            time.sleep(0.02)
            left = self.alive()
