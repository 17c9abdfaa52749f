"""Throttle and adaptive backoff (seed "Throttle & Backoff (L4)", "Throttle ring buffer").

Why: venues cap request rates per endpoint and punish bursts (HTTP 429, bans), and a
venue that is already failing or a market-data feed that lags makes every new order a
worse bet.  The throttle keeps each (op, symbol) under ``rate x window_sec`` sends in any
window, and slows creates/amends of a symbol down while its REST error rate or the
WebSocket lag says the venue is struggling.

Two structures per (op, symbol), both O(1) per send:

- ``SecondRing``: counts per whole second over the last ``window_sec`` seconds (the seed's
  ``_Ring``: ``ring[size]``, ``base_ts + idx`` is the newest second).  It feeds the
  ``throttle_events_in_window`` metric and the snapshot.
- an exact limiter: the send times of the last ``limit = floor(rate x window_sec)`` sends
  in a circular array.  A send is allowed iff the oldest of them is at least
  ``window_sec`` old, so no half-open window ``(t - window_sec, t]`` of any start, to the
  nanosecond, ever holds more than ``limit`` sends.  Whole-second buckets alone cannot
  promise that: a burst at the end of one second and another at the start of the next
  would both fit their buckets.

Backoff (per symbol, plus one for WebSocket lag that applies to every symbol):

- trigger: a REST error while the symbol's error ratio over the window is
  ``>= error_rate_trigger_ratio``, or ``on_ws_lag`` with ``lag_ms >= ws_lag_trigger_ms``;
- escalation: 0 -> ``backoff_base_ms`` -> x2 -> ... capped at ``backoff_cap_ms``, at most
  once per current backoff period (errors of requests already in flight do not compound);
- decay: each success (error ratio back under the trigger) or WS lag sample under the
  trigger halves it, and so does every ``window_sec`` without a new trigger once the
  backoff period itself has run out; under ``backoff_base_ms`` it drops to 0;
- effect: while a symbol's backoff ``B > 0``, a create/amend on it is allowed only ``B`` ms
  after the previous create/amend sent on it (cancels are never held back);
- jitter: the effective value is ``B x (1 + j)`` with ``j`` in ``[-jitter_ratio, +jitter_ratio]``
  drawn deterministically from ``crc32("<symbol>:<now_ns // 5 s>")`` (integer arithmetic,
  ppm resolution), then clamped to ``backoff_cap_ms`` so the cap is a hard ceiling.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any, Protocol

from mmkit.core.gates import EventLog, fmt_num
from mmkit.core.types import OP_AMEND, OP_CANCEL, OP_CREATE, Action

__all__ = [
    "JITTER_BUCKET_NS",
    "OPS",
    "SNAPSHOT_VERSION",
    "SecondRing",
    "Throttle",
    "ThrottleParams",
    "ThrottleSnapshotError",
    "ThresholdParams",
]

NS_PER_SEC = 1_000_000_000
NS_PER_MS = 1_000_000
JITTER_BUCKET_NS = 5 * NS_PER_SEC
SNAPSHOT_VERSION = 2
OPS = (OP_CREATE, OP_AMEND, OP_CANCEL)
_NEVER = -(1 << 62)
_PPM = 1_000_000


class ThresholdParams(Protocol):
    """F2-gate thresholds (``ThrottleThresholds``: ``throttle.global`` / ``throttle.per_symbol.X``)."""

    @property
    def max_throttle_backoff_ms(self) -> int: ...

    @property
    def max_throttle_events_in_window_total(self) -> int: ...


class ThrottleParams(Protocol):
    """The ``throttle`` config section (``ThrottleConfig``), read-only."""

    @property
    def window_sec(self) -> int: ...

    @property
    def creates_per_sec(self) -> float: ...

    @property
    def amends_per_sec(self) -> float: ...

    @property
    def cancels_per_sec(self) -> float: ...

    @property
    def backoff_base_ms(self) -> int: ...

    @property
    def backoff_cap_ms(self) -> int: ...

    @property
    def error_rate_trigger_ratio(self) -> float: ...

    @property
    def ws_lag_trigger_ms(self) -> int: ...

    @property
    def jitter_ratio(self) -> float: ...

    @property
    def global_thresholds(self) -> ThresholdParams: ...

    @property
    def per_symbol(self) -> Mapping[str, ThresholdParams]: ...


class ThrottleSnapshotError(ValueError):
    """A snapshot payload that is not a throttle snapshot (``reason`` = ``invalid_payload``)."""

    reason = "invalid_payload"


class SecondRing:
    """Event counts per whole second over the last ``size`` seconds.

    ``ring[(idx - k) % size]`` counts second ``base_ts + idx - k`` for ``k`` in
    ``[0, size)``; ``base_ts + idx`` is the newest second seen (the seed's layout, kept so
    snapshots read the same).  Advancing clears at most ``size`` buckets and a running
    sum keeps ``total`` O(1), so cost per call is O(1) amortized and memory is fixed.
    A time before the newest second is counted in its own bucket if still in range
    (late reports), never rewinding the ring.
    """

    __slots__ = ("ring", "base_ts", "idx", "size", "_sum")

    def __init__(self, size: int, now_sec: int = 0) -> None:
        if size < 1:
            raise ValueError(f"ring size must be >= 1, got {size}")
        self.size = size
        self.ring = [0] * size
        self.idx = 0
        self.base_ts = now_sec
        self._sum = 0

    @property
    def head_sec(self) -> int:
        return self.base_ts + self.idx

    def _advance(self, now_sec: int) -> None:
        head = self.base_ts + self.idx
        if now_sec <= head:
            return
        gap = now_sec - head
        ring, size = self.ring, self.size
        if gap >= size:
            for i in range(size):
                ring[i] = 0
            self._sum = 0
            self.idx = 0
        else:
            idx = self.idx
            for _ in range(gap):
                idx += 1
                if idx == size:
                    idx = 0
                self._sum -= ring[idx]
                ring[idx] = 0
            self.idx = idx
        self.base_ts = now_sec - self.idx

    def add(self, now_sec: int, n: int = 1) -> bool:
        """Count ``n`` events at ``now_sec``; False if that second already left the ring."""
        self._advance(now_sec)
        k = self.base_ts + self.idx - now_sec
        if k >= self.size:
            return False
        self.ring[(self.idx - k) % self.size] += n
        self._sum += n
        return True

    def total(self, now_sec: int) -> int:
        """Events in seconds ``[now_sec - size + 1, now_sec]``."""
        self._advance(now_sec)
        k0 = self.base_ts + self.idx - now_sec
        if k0 <= 0:
            return self._sum
        return sum(self.ring[(self.idx - k) % self.size] for k in range(k0, self.size))

    def buckets(self) -> list[tuple[int, int]]:
        """``(second, count)`` of the non-empty buckets, oldest first."""
        head = self.base_ts + self.idx
        out = []
        for k in range(self.size - 1, -1, -1):
            c = self.ring[(self.idx - k) % self.size]
            if c:
                out.append((head - k, c))
        return out

    def to_obj(self) -> dict[str, Any]:
        return {"base_ts": self.base_ts, "idx": self.idx, "ring": list(self.ring)}


class _OpWindow:
    """Per (op, symbol): the per-second counts and the exact last-``limit`` send times."""

    __slots__ = ("counts", "stamps", "pos")

    def __init__(self, size: int, limit: int, now_sec: int) -> None:
        self.counts = SecondRing(size, now_sec)
        self.stamps = [_NEVER] * limit
        self.pos = 0  # index of the oldest of the last ``limit`` sends

    def push(self, now_ns: int) -> None:
        self.stamps[self.pos] = now_ns
        self.pos += 1
        if self.pos == len(self.stamps):
            self.pos = 0

    def recent(self) -> list[int]:
        """The remembered send times, oldest first."""
        s = self.stamps[self.pos:] + self.stamps[: self.pos]
        return [t for t in s if t != _NEVER]


class _Backoff:
    __slots__ = ("ms", "since_ns")

    def __init__(self, ms: int = 0, since_ns: int = 0) -> None:
        self.ms = ms
        self.since_ns = since_ns


def _limit(rate_per_sec: float, window_sec: int, name: str) -> int:
    if not rate_per_sec > 0:
        raise ValueError(f"throttle.{name} must be > 0, got {rate_per_sec}")
    n = int(rate_per_sec * window_sec + 1e-9)
    if n < 1:
        raise ValueError(f"throttle.{name} x window_sec = {rate_per_sec * window_sec} allows no send at all; need >= 1")
    return n


class Throttle(EventLog):
    """Per-(op, symbol) sliding-window rate limits with adaptive, jittered backoff.

    A ``Gate``: ``check`` returns ``"throttle:create"`` / ``"throttle:amend"`` when the
    window is full and ``"throttle:backoff"`` while a backoff holds the symbol; cancels
    always pass (they are still counted, and ``allowed``/``headroom`` tell a caller that
    wants to pace or batch them).  Events: ``throttle:backoff`` ``breach`` when a symbol's
    backoff (or the WS-lag backoff, symbol ``""``) leaves 0, ``recover`` when it is back to 0.
    """

    __slots__ = (
        "_window_sec", "_window_ns", "_limits", "_base_ms", "_cap_ms", "_err_trigger", "_ws_trigger_ms",
        "_jitter_ppm", "_global_thr", "_per_symbol_thr", "_windows", "_results", "_backoff", "_ws",
        "_last_sent", "_last_ns", "_reasons",
    )

    def __init__(self, cfg: ThrottleParams) -> None:
        super().__init__()
        if int(cfg.window_sec) != cfg.window_sec or cfg.window_sec < 1:
            raise ValueError(f"throttle.window_sec must be a whole number of seconds >= 1, got {cfg.window_sec}")
        if cfg.backoff_base_ms < 1 or cfg.backoff_cap_ms < cfg.backoff_base_ms:
            raise ValueError(f"throttle needs 1 <= backoff_base_ms <= backoff_cap_ms, got {cfg.backoff_base_ms}, {cfg.backoff_cap_ms}")
        if not 0.0 <= cfg.jitter_ratio < 1.0:
            raise ValueError(f"throttle.jitter_ratio must be in [0, 1), got {cfg.jitter_ratio}")
        if not 0.0 <= cfg.error_rate_trigger_ratio <= 1.0:
            raise ValueError(f"throttle.error_rate_trigger_ratio must be in [0, 1], got {cfg.error_rate_trigger_ratio}")
        self._window_sec = int(cfg.window_sec)
        self._window_ns = self._window_sec * NS_PER_SEC
        self._limits = {
            OP_CREATE: _limit(cfg.creates_per_sec, self._window_sec, "creates_per_sec"),
            OP_AMEND: _limit(cfg.amends_per_sec, self._window_sec, "amends_per_sec"),
            OP_CANCEL: _limit(cfg.cancels_per_sec, self._window_sec, "cancels_per_sec"),
        }
        self._base_ms = int(cfg.backoff_base_ms)
        self._cap_ms = int(cfg.backoff_cap_ms)
        self._err_trigger = float(cfg.error_rate_trigger_ratio)
        self._ws_trigger_ms = int(cfg.ws_lag_trigger_ms)
        self._jitter_ppm = round(cfg.jitter_ratio * _PPM)
        self._global_thr = cfg.global_thresholds
        self._per_symbol_thr = dict(cfg.per_symbol)
        self._windows: dict[tuple[str, str], _OpWindow] = {}
        self._results: dict[str, tuple[SecondRing, SecondRing]] = {}  # symbol -> (all results, errors)
        self._backoff: dict[str, _Backoff] = {}  # symbols with a non-zero stored backoff
        self._ws = _Backoff()
        self._last_sent: dict[str, int] = {}  # symbol -> last create/amend sent
        self._last_ns = _NEVER
        self._reasons = {OP_CREATE: "throttle:create", OP_AMEND: "throttle:amend"}

    # ------------------------------------------------------------------ properties
    @property
    def window_sec(self) -> int:
        return self._window_sec

    def limit(self, op: str) -> int:
        """Sends of ``op`` allowed per symbol in any ``window_sec`` window: ``floor(rate x window_sec)``."""
        return self._limits[op]

    # ------------------------------------------------------------------ gate
    def check(self, action: Action, now_ns: int) -> str | None:
        op = action.op
        if op == OP_CANCEL:
            return None
        sym = action.symbol
        w = self._windows.get((op, sym))
        if w is not None and w.stamps[w.pos] > now_ns - self._window_ns:
            return self._reasons[op]
        if self._backoff or self._ws.ms:
            b = self.backoff_ms(sym, now_ns)
            if b and now_ns - self._last_sent.get(sym, _NEVER) < b * NS_PER_MS:
                return "throttle:backoff"
        return None

    def on_sent(self, action: Action, now_ns: int) -> None:
        # Time never runs backwards inside the throttle: an earlier stamp would break the
        # oldest-first order of the exact limiter, so it counts as the latest time seen.
        if now_ns < self._last_ns:
            now_ns = self._last_ns
        else:
            self._last_ns = now_ns
        op = action.op
        sym = action.symbol
        w = self._windows.get((op, sym))
        if w is None:
            w = self._windows[(op, sym)] = _OpWindow(self._window_sec, self._limits[op], now_ns // NS_PER_SEC)
        w.counts.add(now_ns // NS_PER_SEC)
        w.push(now_ns)
        if op != OP_CANCEL:
            self._last_sent[sym] = now_ns

    # ------------------------------------------------------------------ queries
    def allowed(self, op: str, symbol: str, now_ns: int) -> bool:
        """Would one more ``op`` on ``symbol`` stay within its window limit (any op, cancels too)?"""
        w = self._windows.get((op, symbol))
        return w is None or w.stamps[w.pos] <= now_ns - self._window_ns

    def headroom(self, op: str, symbol: str, now_ns: int) -> int:
        """How many ``op`` sends on ``symbol`` the window still allows right now (for batching cancels)."""
        w = self._windows.get((op, symbol))
        if w is None:
            return self._limits[op]
        cut = now_ns - self._window_ns
        return sum(1 for t in w.stamps if t <= cut)

    def events_in_window(self, op: str, symbol: str, now_ns: int) -> int:
        """Sends counted in whole seconds ``[now_sec - window_sec + 1, now_sec]`` (metric)."""
        w = self._windows.get((op, symbol))
        return 0 if w is None else w.counts.total(now_ns // NS_PER_SEC)

    def events_in_window_total(self, now_ns: int, symbol: str | None = None) -> int:
        """Sum of ``events_in_window`` over ops (and symbols, unless one is given)."""
        sec = now_ns // NS_PER_SEC
        return sum(w.counts.total(sec) for (_, s), w in self._windows.items() if symbol is None or s == symbol)

    def symbols(self) -> list[str]:
        """Every symbol the throttle has seen a send or a result for, sorted."""
        seen = {s for _, s in self._windows} | set(self._results) | set(self._backoff)
        return sorted(seen)

    def error_ratio(self, symbol: str, now_ns: int) -> float:
        """REST errors / results of ``symbol`` over the window (0 with no results)."""
        rings = self._results.get(symbol)
        if rings is None:
            return 0.0
        sec = now_ns // NS_PER_SEC
        n = rings[0].total(sec)
        return rings[1].total(sec) / n if n else 0.0

    # ------------------------------------------------------------------ backoff
    def _decayed(self, st: _Backoff, now_ns: int) -> int:
        ms = st.ms
        if ms == 0:
            return 0
        # Quiet time only counts once the backoff period itself has run out.
        halvings = (now_ns - st.since_ns - ms * NS_PER_MS) // self._window_ns
        if halvings > 0:
            ms = ms >> halvings if halvings < 63 else 0
            if ms < self._base_ms:
                return 0
        return ms

    def jitter(self, symbol: str, now_ns: int, ms: int) -> int:
        """``ms`` with the deterministic +/- ``jitter_ratio`` keyed by (symbol, 5 s bucket), capped."""
        if ms <= 0:
            return 0
        ppm = self._jitter_ppm
        if ppm:
            u = zlib.crc32(f"{symbol}:{now_ns // JITTER_BUCKET_NS}".encode("ascii"))
            ms = ms * (_PPM + u % (2 * ppm + 1) - ppm) // _PPM
        return ms if ms < self._cap_ms else self._cap_ms

    def backoff_ms(self, symbol: str, now_ns: int) -> int:
        """The effective (decayed, jittered, capped) backoff of ``symbol`` now, in ms; 0 = none."""
        st = self._backoff.get(symbol)
        raw = self._decayed(st, now_ns) if st is not None else 0
        if st is not None and raw == 0:
            del self._backoff[symbol]
            self._emit(now_ns, "throttle:backoff", symbol, "recover", "backoff_ms=0 reason=decay")
        ws = self._decayed(self._ws, now_ns) if self._ws.ms else 0
        if self._ws.ms and ws == 0:
            self._ws.ms = 0
            self._emit(now_ns, "throttle:backoff", "", "recover", "backoff_ms=0 reason=decay")
        raw = raw if raw >= ws else ws
        return self.jitter(symbol, now_ns, raw) if raw else 0

    def backoff_ms_max(self, now_ns: int) -> int:
        """Largest effective backoff over the known symbols (metric ``throttle_backoff_ms_max``)."""
        syms = self.symbols() or [""]
        return max(self.backoff_ms(s, now_ns) for s in syms)

    def _escalate(self, st: _Backoff, now_ns: int) -> tuple[int, int]:
        """Double (or start) a backoff at most once per current period; returns (before, after)."""
        cur = self._decayed(st, now_ns)
        if cur and now_ns < st.since_ns + cur * NS_PER_MS:
            return cur, cur
        new = self._base_ms if cur == 0 else min(self._cap_ms, cur * 2)
        st.ms, st.since_ns = new, now_ns
        return cur, new

    def _relax(self, st: _Backoff, now_ns: int) -> tuple[int, int]:
        cur = self._decayed(st, now_ns)
        new = cur // 2
        if new < self._base_ms:
            new = 0
        st.ms, st.since_ns = new, now_ns
        return cur, new

    def _result(self, symbol: str, now_ns: int, error: bool) -> float:
        rings = self._results.get(symbol)
        sec = now_ns // NS_PER_SEC
        if rings is None:
            rings = self._results[symbol] = (SecondRing(self._window_sec, sec), SecondRing(self._window_sec, sec))
        rings[0].add(sec)
        if error:
            rings[1].add(sec)
        n = rings[0].total(sec)
        return rings[1].total(sec) / n if n else 0.0

    def on_error(self, symbol: str, now_ns: int) -> None:
        """A REST request of ``symbol`` failed (error, 5xx, 429, timeout)."""
        ratio = self._result(symbol, now_ns, True)
        if ratio < self._err_trigger:
            return
        st = self._backoff.get(symbol)
        if st is None:
            st = self._backoff[symbol] = _Backoff()
        before, after = self._escalate(st, now_ns)
        if before == 0 and after > 0:
            self._emit(now_ns, "throttle:backoff", symbol, "breach", f"backoff_ms={after} error_ratio={fmt_num(ratio)}")

    def on_success(self, symbol: str, now_ns: int) -> None:
        """A REST request of ``symbol`` succeeded; relaxes the backoff once the error ratio is under the trigger."""
        ratio = self._result(symbol, now_ns, False)
        st = self._backoff.get(symbol)
        if st is None or ratio >= self._err_trigger:
            return
        before, after = self._relax(st, now_ns)
        if after == 0:
            del self._backoff[symbol]
            if before > 0:
                self._emit(now_ns, "throttle:backoff", symbol, "recover", f"backoff_ms=0 error_ratio={fmt_num(ratio)}")

    def on_ws_lag(self, lag_ms: float, now_ns: int) -> None:
        """A market-data lag sample; at or over ``ws_lag_trigger_ms`` it backs off every symbol."""
        if lag_ms >= self._ws_trigger_ms:
            before, after = self._escalate(self._ws, now_ns)
            if before == 0 and after > 0:
                self._emit(now_ns, "throttle:backoff", "", "breach", f"backoff_ms={after} ws_lag_ms={fmt_num(lag_ms)}")
        elif self._ws.ms:
            before, after = self._relax(self._ws, now_ns)
            if before > 0 and after == 0:
                self._emit(now_ns, "throttle:backoff", "", "recover", f"backoff_ms=0 ws_lag_ms={fmt_num(lag_ms)}")

    # ------------------------------------------------------------------ F2 gate thresholds
    def thresholds_for(self, symbol: str) -> ThresholdParams:
        """``throttle.per_symbol[symbol]`` if present, else ``throttle.global``."""
        return self._per_symbol_thr.get(symbol, self._global_thr)

    def threshold_failures(self, now_ns: int) -> list[str]:
        """F2 gate reasons (seed "Per-symbol throttle thresholds"), one per symbol over its thresholds.

        Each symbol's effective backoff and its events in window (all ops) are compared
        with its own thresholds (the per-symbol override, else ``global``); empty = pass.
        """
        out: list[str] = []
        for sym in self.symbols():
            thr = self.thresholds_for(sym)
            b = self.backoff_ms(sym, now_ns)
            if b > thr.max_throttle_backoff_ms:
                out.append(f"Throttle backoff too high: {b} > {thr.max_throttle_backoff_ms} ({sym})")
            tot = self.events_in_window_total(now_ns, sym)
            if tot > thr.max_throttle_events_in_window_total:
                out.append(f"Throttle events in window too high: {tot} > {thr.max_throttle_events_in_window_total} ({sym})")
        return out

    # ------------------------------------------------------------------ snapshots
    def to_snapshot(self) -> dict[str, Any]:
        """Snapshot v2 as plain JSON-able data (the integrity header and file I/O live elsewhere).

        ``{"version": 2, "window_sec": W, "symbols": {sym: {op: {"base_ts", "idx", "ring",
        "stamps_ns"}}}, "backoff": {sym: {"ms", "since_ns"}}, "ws_backoff": {"ms", "since_ns"}}``.
        ``ring``/``base_ts``/``idx`` are the seed's layout; ``stamps_ns`` (the exact
        limiter's recent send times, oldest first), ``backoff`` and ``ws_backoff`` are
        mmkit additions, optional on load.
        """
        symbols: dict[str, dict[str, Any]] = {}
        for (op, sym), w in sorted(self._windows.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            obj = w.counts.to_obj()
            obj["stamps_ns"] = w.recent()
            symbols.setdefault(sym, {})[op] = obj
        return {
            "version": SNAPSHOT_VERSION,
            "window_sec": self._window_sec,
            "symbols": symbols,
            "backoff": {s: {"ms": b.ms, "since_ns": b.since_ns} for s, b in sorted(self._backoff.items())},
            "ws_backoff": {"ms": self._ws.ms, "since_ns": self._ws.since_ns},
        }

    @classmethod
    def from_snapshot(cls, obj: Any, cfg: ThrottleParams) -> Throttle:
        """A throttle configured by ``cfg`` with the counts of a v2 (or legacy v1) snapshot.

        v1 (legacy) is ``{"version": 1, "symbols": {sym: {op: [unix_seconds, ...]}}, ...}``
        (a missing ``version`` means v1); its meta fields (``window_since``,
        ``events_total``, ``backoff_ms_max``, ``last_event_ts``) are derived numbers and are
        recomputed rather than trusted.  Without ``stamps_ns`` the exact limiter is rebuilt
        from the buckets as if each second's sends happened at its last nanosecond: the
        latest they can have been, so a restored throttle never allows more than the real
        history would.  A snapshot with another ``window_sec`` keeps its newest seconds.
        Raises ``ThrottleSnapshotError`` on anything malformed.
        """
        t = cls(cfg)
        if not isinstance(obj, dict):
            raise ThrottleSnapshotError("throttle snapshot must be an object")
        version = obj.get("version", 1)
        if version == 1:
            t._load_v1(obj)
        elif version == 2:
            t._load_v2(obj)
        else:
            raise ThrottleSnapshotError(f"unknown throttle snapshot version {version!r}")
        return t

    def _symbol_ops(self, obj: dict[str, Any]) -> list[tuple[str, str, Any]]:
        symbols = obj.get("symbols", {})
        if not isinstance(symbols, dict):
            raise ThrottleSnapshotError("'symbols' must be an object")
        out = []
        for sym, ops in symbols.items():
            if not isinstance(sym, str) or not isinstance(ops, dict):
                raise ThrottleSnapshotError(f"symbols.{sym}: must map op names to windows")
            for op, val in ops.items():
                if op not in OPS:
                    raise ThrottleSnapshotError(f"symbols.{sym}.{op}: unknown op (expected one of {', '.join(OPS)})")
                out.append((sym, op, val))
        return out

    def _restore(self, sym: str, op: str, ring: SecondRing, stamps: list[int] | None) -> None:
        buckets = ring.buckets()
        if not buckets and not stamps:
            return
        limit = self._limits[op]
        if not stamps:
            # Conservative rebuild: each bucket's sends at the bucket's last nanosecond.
            stamps = []
            for sec, n in reversed(buckets):
                stamps.extend([(sec + 1) * NS_PER_SEC - 1] * min(n, limit - len(stamps)))
                if len(stamps) >= limit:
                    break
            stamps.reverse()
        w = _OpWindow(self._window_sec, limit, 0)
        w.counts = ring
        for ts in stamps[-limit:]:
            w.push(ts)
        self._windows[(op, sym)] = w
        self._last_ns = max(self._last_ns, stamps[-1])

    def _ring_from(self, buckets: list[tuple[int, int]], head_sec: int) -> SecondRing:
        """A ring of this throttle's size holding the newest of ``buckets`` (oldest first)."""
        ring = SecondRing(self._window_sec, head_sec - self._window_sec + 1)
        for sec, n in buckets:
            ring.add(sec, n)
        ring.total(head_sec)  # advance the head to the snapshot's newest second
        return ring

    def _load_v1(self, obj: dict[str, Any]) -> None:
        for sym, op, val in self._symbol_ops(obj):
            if not isinstance(val, list) or not all(_is_num(x) and x >= 0 for x in val):
                raise ThrottleSnapshotError(f"symbols.{sym}.{op}: v1 expects a list of unix timestamps in seconds")
            if not val:
                continue
            stamps = sorted(int(x * NS_PER_SEC) for x in val)
            counts: dict[int, int] = {}
            for ts in stamps:
                counts[ts // NS_PER_SEC] = counts.get(ts // NS_PER_SEC, 0) + 1
            self._restore(sym, op, self._ring_from(sorted(counts.items()), stamps[-1] // NS_PER_SEC), stamps)

    def _load_v2(self, obj: dict[str, Any]) -> None:
        wsec = obj.get("window_sec")
        if not _is_int(wsec) or wsec < 1:
            raise ThrottleSnapshotError("'window_sec' must be an integer >= 1")
        for sym, op, val in self._symbol_ops(obj):
            where = f"symbols.{sym}.{op}"
            if not isinstance(val, dict):
                raise ThrottleSnapshotError(f"{where}: must be an object with base_ts, idx, ring")
            base_ts, idx, ring = val.get("base_ts"), val.get("idx"), val.get("ring")
            if not _is_int(base_ts) or not isinstance(ring, list) or len(ring) != wsec:
                raise ThrottleSnapshotError(f"{where}: needs integer base_ts and a ring of window_sec={wsec} counts")
            if not _is_int(idx) or not 0 <= idx < wsec:
                raise ThrottleSnapshotError(f"{where}: idx must be in [0, {wsec})")
            if not all(_is_int(c) and c >= 0 for c in ring):
                raise ThrottleSnapshotError(f"{where}: ring counts must be integers >= 0")
            stamps = val.get("stamps_ns")
            if stamps is not None and (
                not isinstance(stamps, list) or not all(_is_int(s) for s in stamps) or stamps != sorted(stamps)
            ):
                raise ThrottleSnapshotError(f"{where}: stamps_ns must be ascending integer nanoseconds")
            if wsec == self._window_sec:  # same layout: keep it as is (exact round trip)
                r = SecondRing(wsec)
                r.ring, r.base_ts, r.idx, r._sum = list(ring), base_ts, idx, sum(ring)
            else:  # keep the newest min(wsec, window_sec) seconds
                head = base_ts + idx
                buckets = [(head - k, ring[(idx - k) % wsec]) for k in range(wsec - 1, -1, -1)]
                r = self._ring_from([(sec, n) for sec, n in buckets if n], head)
            self._restore(sym, op, r, stamps)
        backoff = obj.get("backoff", {})
        if not isinstance(backoff, dict):
            raise ThrottleSnapshotError("'backoff' must be an object")
        for sym, b in backoff.items():
            ms, since = _backoff_obj(b, f"backoff.{sym}")
            if ms:
                self._backoff[sym] = _Backoff(min(ms, self._cap_ms), since)
        if "ws_backoff" in obj:
            ms, since = _backoff_obj(obj["ws_backoff"], "ws_backoff")
            self._ws = _Backoff(min(ms, self._cap_ms), since)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x == x and x not in (float("inf"), float("-inf"))


def _backoff_obj(b: Any, where: str) -> tuple[int, int]:
    if not isinstance(b, dict) or not _is_int(b.get("ms")) or not _is_int(b.get("since_ns")) or b["ms"] < 0:
        raise ThrottleSnapshotError(f"{where}: must be {{'ms': int >= 0, 'since_ns': int}}")
    return b["ms"], b["since_ns"]
