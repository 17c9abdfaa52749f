"""A one-line progress bar with rate and ETA for long commands, on stderr, TTY only.

Long work (a backtest over millions of events, a sweep of hundreds of trials) must show
that it is alive, but bytes on stdout are artifacts and logs in cron mail must stay
grep-able, so the bar draws only when stderr is a terminal (``MM_PROGRESS=1`` forces it,
``MM_PROGRESS=0`` silences it) and redraws at most every ``min_interval`` seconds.  When
the total is unknown it shows the count and the rate instead of a bar.
"""

from __future__ import annotations

import os
import sys
import time
from types import TracebackType
from typing import TextIO

from mmkit import log

WIDTH = 24


def _enabled(stream: TextIO) -> bool:
    forced = os.environ.get("MM_PROGRESS")
    if forced in ("0", "1"):
        return forced == "1"
    if log.SETTINGS.level > log.LEVELS["info"]:  # -q
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _clock(seconds: float) -> str:
    s = max(0, int(seconds + 0.5))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class Progress:
    """``with Progress(total, "backtest", unit="ev") as bar: bar.advance(n)``.

    Also a callable: ``bar(n)`` sets the absolute count, so it can be handed to code that
    reports progress through a plain callback."""

    def __init__(self, total: int | None, label: str, unit: str = "", stream: TextIO | None = None,
                 min_interval: float = 0.2) -> None:
        self.total = total if total and total > 0 else None
        self.label = label
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = _enabled(self.stream)
        self.min_interval = min_interval
        self.done = 0
        self._t0 = time.monotonic()
        self._last = 0.0
        self._width = 0

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def update(self, done: int) -> None:
        """Set the absolute count (for callers that count themselves)."""
        self.advance(done - self.done)

    def set_total(self, total: int | None) -> None:
        """The total, once known (a backtest learns it from its pre-pass)."""
        self.total = total if total and total > 0 else None

    def advance(self, n: int = 1) -> None:
        self.done += n
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last >= self.min_interval or (self.total is not None and self.done >= self.total):
            self._last = now
            self._draw(now)

    def line(self, now: float | None = None) -> str:
        """The text of the bar at ``now`` (monotonic seconds)."""
        elapsed = max(1e-9, (time.monotonic() if now is None else now) - self._t0)
        rate = self.done / elapsed
        unit = f" {self.unit}" if self.unit else ""
        if self.total is None:
            return f"{self.label} {self.done}{unit} {rate:,.0f}{unit}/s {_clock(elapsed)}"
        frac = min(1.0, self.done / self.total)
        fill = int(frac * WIDTH)
        eta = (self.total - self.done) / rate if rate > 0 else 0.0
        return (f"{self.label} [{'#' * fill}{'.' * (WIDTH - fill)}] {frac * 100:5.1f}% {self.done}/{self.total}{unit} "
                f"{rate:,.1f}/s ETA {_clock(eta)}")

    def _draw(self, now: float) -> None:
        text = self.line(now)
        pad = " " * max(0, self._width - len(text))
        self._width = len(text)
        self.stream.write("\r" + text + pad)
        self.stream.flush()

    __call__ = update

    def close(self) -> None:
        """Draw the final state and end the line (only if anything was drawn)."""
        if self.enabled and (self._width or self.done):
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()
            self.enabled = False
