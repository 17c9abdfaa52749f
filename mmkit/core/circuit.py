"""Circuit breaker over API outcomes (seed "Circuit Breaker").

Why: when a venue's API is failing (errors, 5xx, rate limiting with 429), sending more
orders only adds load and leaves orders in unknown states.  The breaker watches the
outcome of every request over a sliding window and, past a threshold, stops new
creates and amends for a while; cancels always go through, because removing exposure
must never wait for the venue to feel better.

States (``circuit_state`` metric):

- ``closed``: everything passes; each result is recorded.  When the window holds at
  least ``min_requests`` results and any of ``error rate >= err_rate_open``,
  ``5xx rate >= http_5xx_rate_open``, ``429 rate >= http_429_rate_open`` -> ``open``.
- ``open``: creates/amends get ``"circuit_open"`` for ``open_duration_sec``, then
  ``half_open`` (decided lazily, at the next call that carries a time).
- ``half_open``: up to ``half_open_probes`` creates/amends are let through as probes,
  spaced at least ``cooldown_sec`` apart (the first one at once); others get
  ``"circuit_half_open"``.  A failed result re-opens (a new ``open_duration_sec``);
  ``half_open_probes`` successful create/amend results close it and clear the window,
  so errors from before the outage cannot re-open it.

Rates are over whole-second buckets covering ``ceil(window_sec)`` seconds (the current
second included), the same ``SecondRing`` the throttle uses.  ``ok=False`` is whatever
the caller counts as an API failure (transport error, timeout, 5xx, 429); a business
reject such as post-only-would-cross is the venue working and should be ``ok=True``.
A 5xx or 429 code is counted in its own rate whatever ``ok`` says.
Transitions are ``GuardEvent``s with guard ``"circuit"`` and kind ``open`` /
``half_open`` / ``closed``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from mmkit.core.gates import EventLog, fmt_num
from mmkit.core.throttle import NS_PER_SEC, SecondRing
from mmkit.core.types import OP_CANCEL, Action

__all__ = ["CLOSED", "HALF_OPEN", "OPEN", "CircuitBreaker", "CircuitParams", "CircuitRates"]

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"


class CircuitParams(Protocol):
    """The ``circuit`` config section (``CircuitConfig``), read-only."""

    @property
    def window_sec(self) -> float: ...

    @property
    def err_rate_open(self) -> float: ...

    @property
    def http_5xx_rate_open(self) -> float: ...

    @property
    def http_429_rate_open(self) -> float: ...

    @property
    def open_duration_sec(self) -> float: ...

    @property
    def half_open_probes(self) -> int: ...

    @property
    def cooldown_sec(self) -> float: ...

    @property
    def min_requests(self) -> int: ...


@dataclass(frozen=True, slots=True)
class CircuitRates:
    """Outcome counts and rates over the window (rates are fractions 0..1; 0 with no results)."""

    total: int
    err_rate: float
    http_5xx_rate: float
    http_429_rate: float


def _ns(sec: float) -> int:
    return round(sec * NS_PER_SEC)


class CircuitBreaker(EventLog):
    """closed / open / half_open over API outcomes; a ``Gate`` that never blocks cancels."""

    __slots__ = (
        "_cfg", "_size", "_open_ns", "_cooldown_ns", "_total", "_err", "_5xx", "_429",
        "_state", "_opened_ns", "_probes_sent", "_probes_ok", "_last_probe_ns",
    )

    def __init__(self, cfg: CircuitParams) -> None:
        super().__init__()
        if not cfg.window_sec > 0:
            raise ValueError(f"circuit.window_sec must be > 0, got {cfg.window_sec}")
        for name in ("err_rate_open", "http_5xx_rate_open", "http_429_rate_open"):
            if not 0.0 < getattr(cfg, name) <= 1.0:
                raise ValueError(f"circuit.{name} is a rate in (0, 1], got {getattr(cfg, name)}")
        if cfg.half_open_probes < 1:
            raise ValueError(f"circuit.half_open_probes must be >= 1, got {cfg.half_open_probes}")
        if cfg.open_duration_sec < 0 or cfg.cooldown_sec < 0 or cfg.min_requests < 0:
            raise ValueError("circuit.open_duration_sec, cooldown_sec and min_requests must be >= 0")
        self._cfg = cfg
        self._size = max(1, math.ceil(cfg.window_sec))
        self._open_ns = _ns(cfg.open_duration_sec)
        self._cooldown_ns = _ns(cfg.cooldown_sec)
        self._reset_window(0)
        self._state = CLOSED
        self._opened_ns = 0
        self._probes_sent = 0
        self._probes_ok = 0
        self._last_probe_ns = 0

    def _reset_window(self, now_sec: int) -> None:
        self._total = SecondRing(self._size, now_sec)
        self._err = SecondRing(self._size, now_sec)
        self._5xx = SecondRing(self._size, now_sec)
        self._429 = SecondRing(self._size, now_sec)

    # ------------------------------------------------------------------ state
    def state(self, now_ns: int) -> str:
        """``closed`` | ``open`` | ``half_open`` at ``now_ns`` (moves open -> half_open when due)."""
        if self._state == OPEN and now_ns >= self._opened_ns + self._open_ns:
            self._state = HALF_OPEN
            self._probes_sent = self._probes_ok = 0
            self._emit(now_ns, "circuit", "", HALF_OPEN, f"after_sec={fmt_num(self._cfg.open_duration_sec)}")
        return self._state

    def allowed(self, op: str, now_ns: int) -> bool:
        """The seed's ``circuit.allowed(op)``: may an ``op`` be sent now?"""
        if op == OP_CANCEL:
            return True
        return self._blocked(now_ns) is None

    def rates(self, now_ns: int) -> CircuitRates:
        sec = now_ns // NS_PER_SEC
        n = self._total.total(sec)
        if n == 0:
            return CircuitRates(0, 0.0, 0.0, 0.0)
        return CircuitRates(n, self._err.total(sec) / n, self._5xx.total(sec) / n, self._429.total(sec) / n)

    # ------------------------------------------------------------------ gate
    def _blocked(self, now_ns: int) -> str | None:
        st = self.state(now_ns)
        if st == CLOSED:
            return None
        if st == OPEN:
            return "circuit_open"
        if self._probes_sent >= self._cfg.half_open_probes:
            return "circuit_half_open"
        if self._probes_sent and now_ns < self._last_probe_ns + self._cooldown_ns:
            return "circuit_half_open"
        return None

    def check(self, action: Action, now_ns: int) -> str | None:
        if action.op == OP_CANCEL or self._state == CLOSED:
            return None
        return self._blocked(now_ns)

    def on_sent(self, action: Action, now_ns: int) -> None:
        if action.op != OP_CANCEL and self.state(now_ns) == HALF_OPEN:
            self._probes_sent += 1
            self._last_probe_ns = now_ns

    # ------------------------------------------------------------------ results
    def on_result(self, op: str, ok: bool, http_code: int, now_ns: int) -> None:
        """Record one API outcome (any op) and move the state machine."""
        sec = now_ns // NS_PER_SEC
        self._total.add(sec)
        if not ok:
            self._err.add(sec)
        if 500 <= http_code <= 599:
            self._5xx.add(sec)
        elif http_code == 429:
            self._429.add(sec)
        st = self.state(now_ns)
        if st == CLOSED:
            self._maybe_open(now_ns)
        elif st == HALF_OPEN:
            if not ok:
                self._open(now_ns, f"probe_failed http_code={http_code} op={op}")
            elif op != OP_CANCEL:
                self._probes_ok += 1
                if self._probes_ok >= self._cfg.half_open_probes:
                    self._state = CLOSED
                    self._reset_window(sec)
                    self._emit(now_ns, "circuit", "", CLOSED, f"probes_ok={self._probes_ok}")

    def _maybe_open(self, now_ns: int) -> None:
        cfg = self._cfg
        r = self.rates(now_ns)
        if r.total < cfg.min_requests:
            return
        if r.err_rate >= cfg.err_rate_open:
            why = f"err_rate={fmt_num(r.err_rate)} >= {fmt_num(cfg.err_rate_open)}"
        elif r.http_5xx_rate >= cfg.http_5xx_rate_open:
            why = f"http_5xx_rate={fmt_num(r.http_5xx_rate)} >= {fmt_num(cfg.http_5xx_rate_open)}"
        elif r.http_429_rate >= cfg.http_429_rate_open:
            why = f"http_429_rate={fmt_num(r.http_429_rate)} >= {fmt_num(cfg.http_429_rate_open)}"
        else:
            return
        self._open(now_ns, f"{why} requests={r.total}")

    def _open(self, now_ns: int, why: str) -> None:
        self._state = OPEN
        self._opened_ns = now_ns
        self._probes_sent = self._probes_ok = 0
        self._emit(now_ns, "circuit", "", OPEN, why)
