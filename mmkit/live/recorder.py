"""The execution recorder (seed "E2.7 - Orders/Fills recorder & replay").

Why: an offline, append-only record of what the service sent and what came back, for
post-mortems and for replaying the execution flow without the market.  Enabled with
``EXEC_RECORDER_ENABLED=1``; off by default (it costs an fsync per batch).

File: ``<artifacts>/exe_YYYYmmdd.jsonl`` (UTC day of the wall clock), one canonical ASCII
JSON object per line::

    {"cid": "bt-BTCUSDT-7", "color": "default", "kind": "order|fill|reject", "price": "64000.1",
     "qty": "0.010", "side": "buy|sell", "symbol": "BTCUSDT", "ts": 1721347022557000000}

``order`` is a create or amend as sent (cancels carry no price and are not recorded),
``fill`` a booked fill, ``reject`` a venue reject (price and qty of the refused action
when known, else ``""``).  ``ts`` is the engine's clock in integer ns (the data time on the
replay venue).  Prices and sizes are decimal strings, exact.

Lines are buffered per engine batch and written by ``flush`` in one ``O_APPEND`` write
with one fsync (``artifacts.append_lines``), so a crash loses at most the batch in flight
and never tears a line.  ``rotate`` moves today's file aside as ``exe_YYYYmmdd.N.jsonl``
(the next free ``N``) so the next write starts a new one.

Replay (``POST /admin/execution/replay``): ``read_recording`` reads a recorder file with
the bounded control-file reader (ASCII only, at most ``REPLAY_MAX_BYTES``) and validates
every line before anything is counted, so a bad file changes nothing; ``ReplayTally``
counts fills and rejects per symbol and per color (orders are only counted as events);
``pacing`` says how long to wait before each event: ``1x`` honours the gaps between
consecutive ``ts`` (each gap capped at ``REPLAY_MAX_GAP_S``, the whole replay's waiting
at ``REPLAY_MAX_PACED_S``, then the rest goes unpaced), ``10x`` a tenth of that, ``max``
never waits.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mmkit import artifacts
from mmkit.clock import frozen, utc_now_iso
from mmkit.errors import MmkitError

__all__ = ["ENV", "FIELDS", "KINDS", "REPLAY_SPEEDS", "ExecRecorder", "RecordedEvent", "ReplayTally", "enabled_from_env",
           "pacing", "read_recording"]

ENV = "EXEC_RECORDER_ENABLED"
KINDS = ("order", "fill", "reject")
FIELDS = ("ts", "kind", "symbol", "side", "price", "qty", "cid", "color")
REPLAY_SPEEDS: dict[str, float | None] = {"1x": 1.0, "10x": 10.0, "max": None}
REPLAY_MAX_BYTES = 64 << 20  # a busy day of one symbol is a few MB; the whole file is held in memory
REPLAY_MAX_GAP_S = 1.0
REPLAY_MAX_PACED_S = 60.0
NS_PER_S = 1_000_000_000


def enabled_from_env() -> bool:
    return os.environ.get(ENV, "") == "1"


def _day() -> str:
    if frozen():
        return "19700101"
    return datetime.now(timezone.utc).strftime("%Y%m%d")


class ExecRecorder:
    """Buffered, fsynced JSONL of orders, fills and rejects (see the module doc)."""

    def __init__(self, folder: str | Path, enabled: bool | None = None, color: str = "default") -> None:
        self.folder = Path(folder)
        self.enabled = enabled_from_env() if enabled is None else bool(enabled)
        self.color = color
        self._buf: list[str] = []
        self.lines = 0
        self.last_write_ts: str | None = None
        self.errors = 0

    def path(self) -> Path:
        return self.folder / f"exe_{_day()}.jsonl"

    def record(self, kind: str, ts_ns: int, symbol: str, side: str, price: str, qty: str, cid: str) -> None:
        """Buffer one line (no-op when disabled)."""
        if not self.enabled:
            return
        if kind not in KINDS:
            raise ValueError(f"recorder kind must be one of {KINDS}, got {kind!r}")
        self._buf.append(artifacts.canonical_json({
            "ts": int(ts_ns), "kind": kind, "symbol": symbol, "side": side, "price": price, "qty": qty,
            "cid": cid, "color": self.color,
        }))

    def flush(self) -> int:
        """Write the buffered lines (one write, one fsync); returns how many were written."""
        if not self._buf:
            return 0
        lines, self._buf = self._buf, []
        try:
            artifacts.append_lines(self.path(), lines)
        except MmkitError:
            self.errors += 1
            raise
        self.lines += len(lines)
        self.last_write_ts = utc_now_iso()
        return len(lines)

    def pending(self) -> int:
        return len(self._buf)

    def status(self) -> dict[str, Any]:
        """The seed's ``{enabled, last_write_ts, file}`` plus line and error counts."""
        return {"enabled": self.enabled, "last_write_ts": self.last_write_ts, "file": str(self.path()),
                "lines": self.lines, "pending": len(self._buf), "errors": self.errors}

    def rotate(self) -> dict[str, Any]:
        """Flush, then move today's file aside (``exe_YYYYmmdd.N.jsonl``); the seed's ``{ok, file}``
        plus ``rotated_to`` (``None`` when there was nothing to move)."""
        self.flush()
        cur = self.path()
        moved: str | None = None
        if cur.exists():
            n = 1
            while (cur.parent / f"{cur.stem}.{n}.jsonl").exists():
                n += 1
            target = cur.parent / f"{cur.stem}.{n}.jsonl"
            try:
                os.replace(cur, target)
            except OSError as exc:
                raise MmkitError("E_IO_WRITE", f"cannot rotate {cur}: {exc.strerror or exc}") from exc
            moved = str(target)
        return {"ok": True, "file": str(cur), "rotated_to": moved}


# ----------------------------------------------------------------------------- replay
@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """One validated recorder line (the fields replay uses)."""

    ts: int
    kind: str
    symbol: str
    color: str


def _bad_line(where: str, detail: str) -> MmkitError:
    return MmkitError("E_LIVE_REPLAY_BAD_LINE", f"{where}: {detail}")


def _parse_line(text: str, where: str) -> RecordedEvent:
    try:
        obj = artifacts.parse_json(text, where)
    except MmkitError as exc:
        raise _bad_line(where, "not valid JSON") from exc
    if not isinstance(obj, dict):
        raise _bad_line(where, f"expected an object, got {type(obj).__name__}")
    missing = [k for k in FIELDS if k not in obj]
    extra = sorted(k for k in obj if k not in FIELDS)
    if missing or extra:
        what = "; ".join(x for x in (f"missing {', '.join(missing)}" if missing else "",
                                     f"unknown {', '.join(extra)}"[:120] if extra else "") if x)
        raise _bad_line(where, f"{what} (a recorder line has {', '.join(FIELDS)})")
    ts, kind = obj["ts"], obj["kind"]
    if isinstance(ts, bool) or not isinstance(ts, int) or ts < 0:
        raise _bad_line(where, "ts must be an integer >= 0 (ns)")
    if kind not in KINDS:
        raise _bad_line(where, f"kind must be one of {', '.join(KINDS)}")
    for key in FIELDS[2:]:
        if not isinstance(obj[key], str) or len(obj[key]) > 64:
            raise _bad_line(where, f"{key} must be a string of at most 64 chars")
    return RecordedEvent(ts, kind, obj["symbol"], obj["color"])


def read_recording(path: str | os.PathLike[str], max_bytes: int | None = None) -> list[RecordedEvent]:
    """Every line of a recorder file, validated (blank lines skipped).  Refused as a whole:
    a missing, non-ASCII or oversized file (``E_CTRL_*``, the bounded control-file reader),
    a line that is not a recorder line (``E_LIVE_REPLAY_BAD_LINE``, naming the line)."""
    cap = REPLAY_MAX_BYTES if max_bytes is None else max_bytes
    text = artifacts.read_control_bytes(path, cap)
    name = os.fspath(path)
    return [_parse_line(line, f"{name}:{no}") for no, line in enumerate(text.split("\n"), 1) if line.strip()]


def pacing(events: Sequence[RecordedEvent], speed: str) -> Iterator[float]:
    """Seconds to wait before each event at ``speed`` (``REPLAY_SPEEDS``): the gap from the
    latest ``ts`` seen so far (lines mix clocks, so ``ts`` may step back: that waits 0),
    divided by the speed factor, each capped at ``REPLAY_MAX_GAP_S`` and the total at
    ``REPLAY_MAX_PACED_S`` (after which nothing waits)."""
    if speed not in REPLAY_SPEEDS:
        raise ValueError(f"speed must be one of {', '.join(REPLAY_SPEEDS)}, got {speed!r}")
    factor = REPLAY_SPEEDS[speed]
    budget = REPLAY_MAX_PACED_S
    latest: int | None = None
    for ev in events:
        wait = 0.0
        if factor is not None and latest is not None and ev.ts > latest and budget > 0:
            wait = min((ev.ts - latest) / NS_PER_S / factor, REPLAY_MAX_GAP_S, budget)
            budget -= wait
        if latest is None or ev.ts > latest:
            latest = ev.ts
        yield wait


class ReplayTally:
    """Counts of a replay: ``fill`` and ``reject`` per symbol and per color; ``order`` lines
    only count as events.  A reject of an order the service did not know has symbol ``""``:
    it counts in the totals and its color, not in ``by_symbol``."""

    def __init__(self) -> None:
        self.events = 0
        self.orders = 0
        self.by_symbol: dict[str, dict[str, int]] = {}
        self.by_color: dict[str, dict[str, int]] = {}

    def add(self, ev: RecordedEvent) -> None:
        self.events += 1
        if ev.kind == "order":
            self.orders += 1
            return
        key = "fills" if ev.kind == "fill" else "rejects"
        groups = [self.by_color.setdefault(ev.color, {"fills": 0, "rejects": 0})]
        if ev.symbol:
            groups.append(self.by_symbol.setdefault(ev.symbol, {"fills": 0, "rejects": 0}))
        for g in groups:
            g[key] += 1

    def result(self) -> dict[str, Any]:
        """The seed's ``{events_total, fills, rejects, by_symbol}`` plus ``orders`` and ``by_color``."""
        return {"events_total": self.events, "orders": self.orders,
                "fills": sum(c["fills"] for c in self.by_color.values()),
                "rejects": sum(c["rejects"] for c in self.by_color.values()),
                "by_symbol": {k: dict(v) for k, v in sorted(self.by_symbol.items())},
                "by_color": {k: dict(v) for k, v in sorted(self.by_color.items())}}
