"""Real and frozen clocks for the edges of the system.

The core never reads the wall clock: time is passed in.  Artifacts and logs ask this
module, so that ``MM_FREEZE_UTC=1`` freezes every timestamp at 1970-01-01T00:00:00Z and two
runs with the same inputs produce byte-identical files.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Protocol

FROZEN_ISO = "1970-01-01T00:00:00Z"


def frozen() -> bool:
    """True when ``MM_FREEZE_UTC=1`` asks for deterministic timestamps."""
    return os.environ.get("MM_FREEZE_UTC", "") == "1"


def utc_now_iso() -> str:
    """Current UTC time as ``YYYY-MM-DDTHH:MM:SSZ`` (or the frozen epoch)."""
    if frozen():
        return FROZEN_ISO
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_now_ns() -> int:
    """Current UTC time in integer nanoseconds (0 when frozen)."""
    if frozen():
        return 0
    return time.time_ns()


def iso_from_ns(ts_ns: int) -> str:
    """Format integer nanoseconds as UTC ISO-8601 with millisecond precision and ``Z``."""
    sec, ns = divmod(int(ts_ns), 1_000_000_000)
    base = datetime.fromtimestamp(sec, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{ns // 1_000_000:03d}Z"


def utc_date(ts_ns: int) -> str:
    """The UTC calendar day (``YYYY-MM-DD``) of a nanosecond timestamp."""
    return datetime.fromtimestamp(int(ts_ns) // 1_000_000_000, timezone.utc).strftime("%Y-%m-%d")


class Clock(Protocol):
    """What drivers need from time: a monotonic-enough ``now_ns`` and an ISO form."""

    def now_ns(self) -> int: ...

    def now_iso(self) -> str: ...


@dataclass(slots=True)
class RealClock:
    """Wall clock, honouring ``MM_FREEZE_UTC`` for the ISO form used in artifacts."""

    def now_ns(self) -> int:
        return time.time_ns()

    def now_iso(self) -> str:
        return utc_now_iso()


@dataclass(slots=True)
class FrozenClock:
    """A clock that only moves when told to: for tests and event-time replay."""

    ts_ns: int = 0

    def now_ns(self) -> int:
        return self.ts_ns

    def now_iso(self) -> str:
        return iso_from_ns(self.ts_ns)

    def advance(self, delta_ns: int) -> None:
        if delta_ns < 0:
            raise ValueError("a frozen clock never runs backwards")
        self.ts_ns += delta_ns

    def set(self, ts_ns: int) -> None:
        if ts_ns < self.ts_ns:
            raise ValueError("a frozen clock never runs backwards")
        self.ts_ns = ts_ns
