"""The operator's live status: one line redrawn in place on a TTY, logfmt lines otherwise.

Why two forms: a person watching a terminal wants one line that changes (mid, position,
PnL, open orders, fills, guard state) and not a scrolling wall; a log collector wants
one structured line every few seconds it can grep and chart.  Both come from the same
``dict`` the service builds, so they cannot disagree.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from mmkit import log

__all__ = ["StatusLine", "render"]

FIELDS = ("mid", "pos", "pnl_usd", "open", "fills", "guard", "events", "uptime_s")


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) >= 100 else f"{value:.4f}"
    return str(value)


def render(state: dict[str, Any], width: int = 160) -> str:
    """The TTY line: ``key=value`` pairs in a fixed order, ASCII, at most ``width`` chars."""
    parts = [f"{k}={_fmt(state.get(k))}" for k in FIELDS if k in state]
    line = " ".join(parts)
    line = line.encode("ascii", "replace").decode("ascii")
    return line[:width]


class StatusLine:
    """Emit the status every ``tty_interval_s`` on a TTY (``\\r`` + padded line), else a
    ``run_status`` logfmt line every ``log_interval_s``.  ``close`` ends the TTY line."""

    def __init__(self, stream: TextIO | None = None, tty: bool | None = None, tty_interval_s: float = 1.0,
                 log_interval_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.interval = tty_interval_s if self.tty else log_interval_s
        self._clock = clock
        self._last = float("-inf")
        self._width = 0
        self.emitted = 0

    def due(self) -> bool:
        return self._clock() - self._last >= self.interval

    def emit(self, state: dict[str, Any], force: bool = False) -> bool:
        """Show ``state`` if the interval passed (or ``force``); returns whether it did."""
        if not force and not self.due():
            return False
        self._last = self._clock()
        self.emitted += 1
        if self.tty:
            line = render(state)
            pad = max(0, self._width - len(line))
            self._width = len(line)
            self.stream.write("\r" + line + " " * pad)
            self.stream.flush()
        else:
            log.info("run_status", **{k: state[k] for k in FIELDS if k in state})
        return True

    def close(self) -> None:
        if self.tty and self.emitted:
            self.stream.write("\n")
            self.stream.flush()
