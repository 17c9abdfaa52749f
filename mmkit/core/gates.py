"""The gate interface shared by every flow-control and risk component, and the chain.

Why one tiny interface: the order manager asks the same question of the throttle, the
circuit breaker and every risk guard ("may I send this action now?") and tells each of
them the same fact afterwards ("I sent it").  With ``Gate`` it does not need to know
what a gate is made of, and a new guard plugs in without touching the order manager.

Rules every gate keeps:

- ``check(action, now_ns)`` returns ``None`` (allowed) or a short reason string such as
  ``"throttle:create"``, ``"circuit_open"``, ``"risk:max_position"``; it never mutates
  counters (asking twice is harmless).
- A ``CancelOrder`` is never blocked: a cancel only removes exposure, and a cancel that
  cannot be sent is more dangerous than one the venue rate-limits.
- Risk guards block only risk-increasing creates/amends (see ``increases_risk`` in
  ``core/risk.py``); reducing orders always pass.
- ``on_sent(action, now_ns)`` is called once per action actually sent (the throttle counts it).

Gates also record ``GuardEvent``s (breach/recover, state changes) in memory for the audit
log; the caller drains them with ``drain_events()``.  Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from mmkit.core.types import OP_CANCEL, Action

__all__ = [
    "EVENT_KINDS",
    "EventLog",
    "Gate",
    "GateChain",
    "GuardEvent",
    "fmt_num",
]

EVENT_KINDS = ("breach", "recover", "block", "resume", "open", "half_open", "closed", "fire", "reset")
"""Every ``GuardEvent.kind``:

- ``breach`` / ``recover``: a limit was crossed / is respected again (risk, position skew,
  throttle backoff);
- ``block`` / ``resume``: an intraday cap stopped risk-increasing trading / the UTC day rolled;
- ``open`` / ``half_open`` / ``closed``: circuit breaker state transitions;
- ``fire`` / ``reset``: the kill switch fired (or would have, in dry run) / was reset.
"""


@dataclass(frozen=True, slots=True)
class GuardEvent:
    """One audit-worthy change of a gate's state.

    ``guard`` names the limit (it equals the reason a blocked ``check`` returns where
    there is one, e.g. ``"risk:max_position"``), ``symbol`` is the symbol, ``""`` for a
    global gate, or ``"color:<name>"`` for a position-skew color group; ``detail`` is a
    short ASCII ``key=value`` text with the numbers that decided it.
    """

    ts_ns: int
    guard: str
    symbol: str
    kind: str
    detail: str = ""


def fmt_num(x: float) -> str:
    """Numbers in event details: ``%.6f`` like every report, so details are deterministic."""
    return f"{x:.6f}"


class Gate(Protocol):
    """What the order manager needs from a throttle, breaker or guard.

    A gate whose ``on_sent`` does nothing may say so with a class attribute
    ``tracks_sends = False``: ``GateChain`` then does not call it (one Python call less
    per gate and per action sent).  A gate whose ``check`` can never refuse an order, as
    configured (every limit of a guard off), may say so with ``checks_orders = False``
    (read once, when the chain is built): the chain then does not ask it."""

    def check(self, action: Action, now_ns: int) -> str | None: ...

    def on_sent(self, action: Action, now_ns: int) -> None: ...


class EventLog:
    """In-memory list of ``GuardEvent``s that a gate appends to and the caller drains.

    A base class rather than a helper object so ``gate.drain_events()`` is the one call
    the engine needs; draining hands over the list and starts a new one (no copy).
    """

    __slots__ = ("_events",)

    def __init__(self) -> None:
        self._events: list[GuardEvent] = []

    def _emit(self, ts_ns: int, guard: str, symbol: str, kind: str, detail: str = "") -> None:
        if kind not in EVENT_KINDS:
            raise ValueError(f"unknown guard event kind {kind!r}")
        self._events.append(GuardEvent(ts_ns, guard, symbol, kind, detail))

    def _flip(self, active: set[str], key: str, ts_ns: int, guard: str, symbol: str, detail: str) -> None:
        """Toggle ``key`` in the ``active`` breach set and record ``breach`` or ``recover``.

        Callers test ``over != (key in active)`` first, so details are only formatted on a flip.
        """
        if key in active:
            active.discard(key)
            self._emit(ts_ns, guard, symbol, "recover", detail)
        else:
            active.add(key)
            self._emit(ts_ns, guard, symbol, "breach", detail)

    def drain_events(self) -> list[GuardEvent]:
        """All events recorded since the last drain, oldest first."""
        out, self._events = self._events, []
        return out

    def pending_events(self) -> int:
        return len(self._events)


class GateChain:
    """An ordered list of gates that acts as one gate.

    ``check`` asks each gate in order and returns the first reason (so put the cheapest
    and most fundamental gates first, e.g. kill switch before throttle); a cancel returns
    ``None`` without asking anyone.  ``on_sent`` tells every gate.  ``drain_events``
    collects the events of every gate that keeps any, in time order (stable: ties keep
    chain order).
    """

    __slots__ = ("_gates", "_checks", "_sents")

    def __init__(self, gates: Iterable[Gate] = ()) -> None:
        self._gates: tuple[Gate, ...] = tuple(gates)
        # Bound methods resolved once: the chain sits on the order manager's hot path.
        self._checks: tuple[Callable[[Action, int], str | None], ...] = tuple(
            g.check for g in self._gates if getattr(g, "checks_orders", True))
        self._sents: tuple[Callable[[Action, int], None], ...] = tuple(
            g.on_sent for g in self._gates if getattr(g, "tracks_sends", True))

    @property
    def gates(self) -> tuple[Gate, ...]:
        return self._gates

    def check(self, action: Action, now_ns: int) -> str | None:
        if action.op == OP_CANCEL:
            return None
        for check in self._checks:
            reason = check(action, now_ns)
            if reason is not None:
                return reason
        return None

    def on_sent(self, action: Action, now_ns: int) -> None:
        for sent in self._sents:
            sent(action, now_ns)

    def drain_events(self) -> list[GuardEvent]:
        out: list[GuardEvent] = []
        for gate in self._gates:
            drain = getattr(gate, "drain_events", None)
            if drain is not None:
                out.extend(drain())
        out.sort(key=lambda e: e.ts_ns)
        return out
