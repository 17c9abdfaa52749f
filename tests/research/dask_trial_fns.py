"""Trial functions for tests/research/test_dask.py.  Dask workers import them by name
(``research.dask_trial_fns:<name>``) with ``tests/`` on their ``PYTHONPATH``."""

from __future__ import annotations

import os
import random
import time
from typing import Any


def _note(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, (line + "\n").encode("ascii"))
    finally:
        os.close(fd)


def slow_square(params: dict[str, Any], seed: int, inputs: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """Like ``trial_fns.square`` but takes ``params["sleep"]`` seconds and logs
    ``start <x> <pid>`` / ``end <x> <pid>``, so a test can see which worker runs what and
    kill one mid-trial.  The result depends on params and seed only, never on the pid."""
    log = params.get("log")
    if log:
        _note(log, f"start {params['x']} {os.getpid()}")
    time.sleep(float(params.get("sleep", 0.0)))
    if log:
        _note(log, f"end {params['x']} {os.getpid()}")
    return {"x": params["x"], "y": params["x"] ** 2, "draw": random.Random(seed).random(), "n_inputs": len(inputs)}
