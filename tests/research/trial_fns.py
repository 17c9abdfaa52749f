"""Tiny module-level trial functions for tests/research/test_executors.py (a process pool
needs importable functions).  Referenced as ``research.trial_fns:<name>``."""

from __future__ import annotations

import os
import random
from typing import Any


def _log(params: dict[str, Any]) -> None:
    if params.get("log"):
        fd = os.open(params["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, f"{params['x']}\n".encode("ascii"))
        finally:
            os.close(fd)


def square(params: dict[str, Any], seed: int, inputs: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """x squared plus a seeded draw, so results depend on the seed alone."""
    _log(params)
    return {"x": params["x"], "y": params["x"] ** 2, "draw": random.Random(seed).random(), "n_inputs": len(inputs)}


def boom(params: dict[str, Any], seed: int, inputs: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    raise ValueError(f"boom {params['x']}")


def nan(params: dict[str, Any], seed: int, inputs: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    return {"v": float("nan")}


def die(params: dict[str, Any], seed: int, inputs: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """Kill the worker process outright (process executor only)."""
    _log(params)
    os._exit(1)
