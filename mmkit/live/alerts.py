"""The alerts log: ``artifacts/alerts.log``, one JSON object per line (seed "E2.3 - Alerts
log", "E2.4 - Artifacts prune").

Why a file and not only metrics: an operator (or a cron job) greps what happened and when,
after the process is gone.  Each line is ``{"kind", "payload", "ts"}`` in canonical ASCII
JSON, appended whole with ``O_APPEND`` + fsync; ``kind`` is a short name such as
``killswitch_fired``, ``guard_breach``, ``soak_guard_breach``, ``snapshot_refused``.

The file is kept to the last ``ALERTS_MAX_LINES`` lines (default 5000) by ``prune``, which
rewrites it atomically (so a reader never sees half a file); ``clear`` empties it the same
way.  ``tail(n)`` reads backwards from the end, so it stays cheap on a full log.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

from mmkit import artifacts, log
from mmkit.clock import utc_now_iso
from mmkit.errors import MmkitError

__all__ = ["DEFAULT_MAX_LINES", "AlertsLog", "max_lines_from_env"]

DEFAULT_MAX_LINES = 5000
TAIL_MAX = 10_000
_BLOCK = 1 << 16


def max_lines_from_env() -> int:
    """``ALERTS_MAX_LINES`` (a positive integer), else 5000."""
    raw = os.environ.get("ALERTS_MAX_LINES", "")
    try:
        value = int(raw)
    except ValueError:
        return DEFAULT_MAX_LINES
    return value if value > 0 else DEFAULT_MAX_LINES


class AlertsLog:
    """Append, tail, prune and clear ``alerts.log``; counts appended alerts by kind."""

    def __init__(self, path: str | Path, max_lines: int | None = None) -> None:
        self.path = Path(path)
        self.max_lines = max_lines if max_lines is not None else max_lines_from_env()
        if self.max_lines < 1:
            raise ValueError(f"max_lines must be >= 1, got {self.max_lines}")
        self.counts: Counter[str] = Counter()

    def append(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Append one alert (fsynced); returns the record written."""
        record = {"kind": str(kind), "payload": dict(payload), "ts": utc_now_iso()}
        artifacts.append_jsonl(self.path, record)
        self.counts[record["kind"]] += 1
        return record

    def _read_tail_bytes(self, n: int) -> list[bytes]:
        """The last ``n`` non-empty lines, read backwards in blocks."""
        try:
            fh = open(self.path, "rb")
        except FileNotFoundError:
            return []
        with fh:
            end = fh.seek(0, os.SEEK_END)
            pos, buf = end, b""
            while pos > 0 and buf.count(b"\n") <= n:
                step = min(_BLOCK, pos)
                pos -= step
                fh.seek(pos)
                buf = fh.read(step) + buf
        lines = [ln for ln in buf.split(b"\n") if ln.strip()]
        if pos > 0:
            lines = lines[1:]  # the first piece may be a partial line
        return lines[-n:] if n else []

    def tail(self, n: int = 100) -> list[dict[str, Any]]:
        """The last ``n`` alerts, oldest first (a line that does not parse is skipped)."""
        n = max(0, min(int(n), TAIL_MAX))
        out = []
        for raw in self._read_tail_bytes(n):
            try:
                obj = artifacts.parse_json(raw, str(self.path))
            except MmkitError:  # a torn or foreign line is not an alert
                continue
            if isinstance(obj, dict):
                out.append(obj)
        return out

    def line_count(self) -> int:
        try:
            with open(self.path, "rb") as fh:
                return sum(1 for ln in fh if ln.strip())
        except FileNotFoundError:
            return 0

    def prune(self) -> int:
        """Keep the last ``max_lines`` lines (atomic rewrite); returns how many were dropped."""
        try:
            with open(self.path, "rb") as fh:
                lines = [ln.rstrip(b"\n") for ln in fh if ln.strip()]
        except FileNotFoundError:
            return 0
        drop = len(lines) - self.max_lines
        if drop <= 0:
            return 0
        artifacts.write_bytes(self.path, b"".join(ln + b"\n" for ln in lines[drop:]))
        log.info("alerts_pruned", path=str(self.path), dropped=drop, kept=self.max_lines)
        return drop

    def clear(self) -> int:
        """Empty the log (atomic rewrite); returns how many lines it held."""
        n = self.line_count()
        artifacts.write_bytes(self.path, b"")
        return n

    def writable(self) -> bool:
        """Can the log be appended to (for /admin/selfcheck)?  Opens it for append without writing."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError:
            return False
        os.close(fd)
        return True
