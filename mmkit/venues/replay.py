"""The replay venue: recorded market data as the feed, the fill simulator as paper fills.

Why it exists: ``mmkit run`` must trade out of the box on any machine, with no keys and
no network, yet through exactly the engine a real venue would drive.  The replay venue is
that venue: its *market side* is a recording (any format ``mmkit.data`` reads) handed out
at wall-clock pace by an async event source, and its *execution side* is the fill
simulator (``core/fillsim.py``), so orders get the same latency, queue and fee model as a
backtest.  The execution side is the ``Venue`` protocol of ``venues/base.py``; every call
is forwarded to the simulator, with two optional listeners (``on_submit``,
``on_report``) for the execution recorder and metrics.

Pacing.  Event ``i`` is released when the wall clock reaches
``w0 + (r_i - r_0) / speed``, ``r_i`` the running maximum of the receive times (receive
times are not monotonic across channels; the pace never runs backwards) and ``r_0`` the
first one.  ``speed`` ``None`` is ``max``: no waiting, events are handed out in batches as
fast as the consumer takes them (it yields to the event loop between batches).

Looping.  With ``loop=True`` the recording is replayed again and again; loop ``k`` is
shifted by ``k x (span + LOOP_GAP_NS)`` on both ``ts`` and ``recv_ts``, ``span`` the
distance from the earliest to the latest time in the recording, so times keep increasing
and the engine and simulator see one continuous (if repetitive) market.  A recording
starts with a book snapshot, which resets both books at each loop start.  ``start_loop``
starts at loop ``k`` instead of 0: a restarted service continues the data clock where the
previous run stopped, so restored state (throttle windows, the allocator's clock) never
lies in the future.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from mmkit.core.engine import Venue
from mmkit.core.instruments import Instrument
from mmkit.core.types import Action, VenueReport
from mmkit.data.readers import open_events
from mmkit.errors import EXIT_USAGE, MmkitError

__all__ = ["LOOP_GAP_NS", "ReplayBatch", "ReplayScan", "ReplayVenue", "parse_speed", "scan_recording"]

LOOP_GAP_NS = 1_000_000_000
"""Quiet time between the end of one loop and the start of the next (data time)."""

MAX_BATCH = 32
"""Events per batch at ``--speed max``: the consumer yields to the event loop between batches,
so a small batch keeps HTTP requests (each needs several loop turns) within a few ms."""

IDLE_NS = 1_000_000_000
"""While no event is due for longer than this, the source yields an empty batch this often
(the consumer's heartbeat keeps beating through quiet markets and slow paces)."""

_SPEEDS = {"1": 1.0, "10": 10.0, "max": None}


def parse_speed(text: str | float | None) -> float | None:
    """``"1"`` | ``"10"`` | ``"max"`` (or a positive number) -> the factor, ``None`` = max."""
    if text is None:
        return None
    key = str(text).strip().lower()
    if key in _SPEEDS:
        return _SPEEDS[key]
    key = key.removesuffix("x")
    try:
        value = float(key)
    except ValueError:
        value = 0.0
    if not (value > 0 and value < 1e9):
        raise MmkitError("E_USAGE", f"--speed must be 1, 10 or max (or a positive factor), got {text!r}", EXIT_USAGE)
    return value


@dataclass(frozen=True, slots=True)
class ReplayScan:
    """What one pre-pass over a recording learned: the feed-clock input, the size, the
    instruments, and the time span used to shift loops."""

    paths: tuple[str, ...]
    fmt: str | None
    symbol: str | None
    venue: str | None
    n_events: int
    kinds: dict[str, int]
    min_latency_ns: int
    first_recv_ns: int
    t_min_ns: int
    t_max_ns: int
    instruments: dict[str, Instrument] = field(default_factory=dict)

    @property
    def span_ns(self) -> int:
        return self.t_max_ns - self.t_min_ns

    @property
    def loop_shift_ns(self) -> int:
        """How far loop ``k + 1`` is shifted from loop ``k``."""
        return self.span_ns + LOOP_GAP_NS

    def loop_after(self, clock_ns: int | None) -> int:
        """The first loop whose every time is later than ``clock_ns`` (0 if the recording
        already starts after it): where a restarted replay continues the data clock."""
        if clock_ns is None or clock_ns < self.t_min_ns:
            return 0
        return (clock_ns - self.t_min_ns) // self.loop_shift_ns + 1


def scan_recording(paths: Sequence[str], fmt: str | None = None, symbol: str | None = None,
                   venue: str | None = None) -> ReplayScan:
    """Read the recording once: smallest feed latency, counts per kind, instruments, span.

    Refuses an empty recording (``E_DATA_EMPTY``) and one without book events
    (``E_DATA_NO_BOOK``): there would be nothing to quote against."""
    stream = open_events(list(paths), fmt=fmt, symbol=symbol, venue=venue)
    kinds: Counter[str] = Counter()
    n = 0
    lo: int | None = None
    first_recv = 0
    t_min: int | None = None
    t_max = 0
    for ev in stream:
        n += 1
        kinds[ev.kind] += 1
        ts, recv = ev.ts, ev.recv_ts
        if n == 1:
            first_recv = recv
        lat = recv - ts
        if lo is None or lat < lo:
            lo = lat
        a, b = (ts, recv) if ts <= recv else (recv, ts)
        if t_min is None or a < t_min:
            t_min = a
        if b > t_max:
            t_max = b
    names = ", ".join(paths)
    if n == 0:
        raise MmkitError("E_DATA_EMPTY", f"{names}: no market events in the recording")
    if not (kinds.get("book_snapshot") or kinds.get("book_delta")):
        raise MmkitError("E_DATA_NO_BOOK", f"{names}: no order book events, nothing to quote against")
    return ReplayScan(tuple(paths), fmt, symbol, venue, n, dict(sorted(kinds.items())), lo or 0, first_recv,
                      t_min or 0, t_max, dict(stream.instruments))


@dataclass(slots=True)
class ReplayBatch:
    """Events due now.  ``due_ns`` (``time.perf_counter_ns`` scale) is when each event
    arrived by the wall-clock pace, or ``None`` per batch at ``--speed max`` (an event
    arrives when the consumer takes it).  ``loop`` counts from 0."""

    events: list[Any]
    due_ns: list[int] | None
    loop: int


class ReplayVenue:
    """Paper trading on a recording: the ``Venue`` protocol over a fill simulator, plus the
    async market-data source ``batches()``.

    ``sim`` is any ``Venue`` (the live service passes the ``FillSimulator`` the config
    describes, built by ``research.backtest.build_fillsim``).  ``speed``: factor over real
    time, ``None`` = as fast as possible.  ``on_submit(action, send_ns)`` sees every action
    sent; ``on_report(deliver_ns, report)`` every report the simulator produced.
    """

    name = "replay"

    def __init__(self, scan: ReplayScan, sim: Venue, speed: float | None = 1.0, loop: bool = False,
                 on_submit: Callable[[Action, int], None] | None = None,
                 on_report: Callable[[int, VenueReport], None] | None = None,
                 clock: Callable[[], int] = time.perf_counter_ns, start_loop: int = 0) -> None:
        if speed is not None and not speed > 0:
            raise ValueError(f"speed must be > 0 or None (max), got {speed}")
        if start_loop < 0:
            raise ValueError(f"start_loop must be >= 0, got {start_loop}")
        self.scan = scan
        self.sim = sim
        self.speed = speed
        self.loop = loop
        self.on_submit = on_submit
        self.on_report = on_report
        self._clock = clock
        self.start_loop = start_loop
        self.loops_started = 0
        self.events_out = 0
        self.finished = False

    def __repr__(self) -> str:
        speed = "max" if self.speed is None else f"{self.speed:g}"
        return f"ReplayVenue({', '.join(self.scan.paths)!r}, speed={speed}, loop={self.loop})"

    # ------------------------------------------------------------------ Venue protocol
    def submit(self, action: Action, send_local_ns: int) -> int:
        if self.on_submit is not None:
            self.on_submit(action, send_local_ns)
        return self.sim.submit(action, send_local_ns)

    def next_arrival_ns(self) -> int | None:
        return self.sim.next_arrival_ns()

    def process_arrivals(self, until_ns: int) -> None:
        self.sim.process_arrivals(until_ns)

    def on_market(self, event: object) -> None:
        self.sim.on_market(event)

    def drain_reports(self) -> list[tuple[int, VenueReport]]:
        out = self.sim.drain_reports()
        if out and self.on_report is not None:
            for when, report in out:
                self.on_report(when, report)
        return out

    def open_orders(self) -> int:
        """Orders resting or in flight on the paper venue (0 after a clean shutdown)."""
        fn = getattr(self.sim, "open_orders", None)
        resting = len(fn()) if fn is not None else 0
        pending = getattr(self.sim, "pending_arrivals", 0)
        return resting + int(pending() if callable(pending) else pending)

    # ------------------------------------------------------------------ market data
    def _events(self, loop_no: int) -> Iterator[Any]:
        s = self.scan
        stream = open_events(list(s.paths), fmt=s.fmt, symbol=s.symbol, venue=s.venue)
        shift = loop_no * s.loop_shift_ns
        if not shift:
            yield from stream
            return
        replace = dataclasses.replace
        for ev in stream:
            yield replace(ev, ts=ev.ts + shift, recv_ts=ev.recv_ts + shift)

    async def batches(self, max_batch: int = MAX_BATCH) -> AsyncIterator[ReplayBatch]:
        """The market side: batches of events at the wall-clock pace, every loop if asked.

        Paced: an event is released at its due time; events due together form one batch;
        the source sleeps until the next one is due (yielding an empty batch every
        ``IDLE_NS`` of a longer wait).  Max: batches of ``max_batch``.
        Cancelling the consuming task stops the source at its next await."""
        clock = self._clock
        speed = self.speed
        loop_no = self.start_loop
        w0 = clock()
        r0 = self.scan.first_recv_ns + loop_no * self.scan.loop_shift_ns
        pace = r0
        while True:
            self.loops_started += 1
            batch: list[Any] = []
            due: list[int] = []
            for ev in self._events(loop_no):
                if speed is None:
                    batch.append(ev)
                    if len(batch) >= max_batch:
                        self.events_out += len(batch)
                        yield ReplayBatch(batch, None, loop_no)
                        batch = []
                        await asyncio.sleep(0)
                    continue
                if ev.recv_ts > pace:
                    pace = ev.recv_ts
                at = w0 + int((pace - r0) / speed)
                wait = at - clock()
                if wait > 0:
                    if batch:
                        self.events_out += len(batch)
                        yield ReplayBatch(batch, due, loop_no)
                        batch, due = [], []
                    while True:  # a long quiet stretch yields empty batches: the consumer stays live
                        await asyncio.sleep(min(wait, IDLE_NS) / 1e9)
                        wait = at - clock()
                        if wait <= 0:
                            break
                        yield ReplayBatch([], [], loop_no)
                batch.append(ev)
                due.append(at)
                if len(batch) >= max_batch:
                    self.events_out += len(batch)
                    yield ReplayBatch(batch, due, loop_no)
                    batch, due = [], []
                    await asyncio.sleep(0)
            if batch:
                self.events_out += len(batch)
                yield ReplayBatch(batch, due if speed is not None else None, loop_no)
            if not self.loop:
                break
            loop_no += 1
        self.finished = True
