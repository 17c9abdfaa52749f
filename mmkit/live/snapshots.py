"""Restart-safe state: integrity-checked snapshots of the throttle, the allocator and the
order-id state (seed "Snapshots: integrity header").

Why: a restart must not forget how many orders were just sent (the throttle window), how
far the allocator's smoothing had moved (its targets and equity high-water mark), or which
client ids were used (an id must never be reused).  But state read back from disk is also
the easiest way to poison a fresh process, so a snapshot that is not exactly what was
written is refused, counted, and the service starts clean instead.

File format (canonical ASCII JSON, one object, written by the atomic writer)::

    {"payload": {...}, "sha256": "<hex>", "version": 1}

``sha256`` is over ``canonical_json(payload)``: the seed's ``json.dumps(payload,
sort_keys=True, separators=(",", ":"))`` (ASCII payloads encode identically).  Reading is
bounded (1 MiB) and ASCII-only; each refusal has one reason and code:

=====================  ===============================  =============================================
reason                 code                             when
=====================  ===============================  =============================================
``file_too_large``     ``E_SNAPSHOT_FILE_TOO_LARGE``    over 1 MiB
``non_ascii``          ``E_SNAPSHOT_NON_ASCII``         a byte outside ASCII
``invalid_structure``  ``E_SNAPSHOT_INVALID_STRUCTURE`` not JSON, or not exactly version/sha256/payload
``bad_checksum``       ``E_SNAPSHOT_BAD_CHECKSUM``      sha256 does not match the payload
``invalid_payload``    ``E_SNAPSHOT_INVALID_PAYLOAD``   the payload is not a valid state of its kind
=====================  ===============================  =============================================

Kinds (file ``<folder>/<kind>.json``): ``throttle`` (``Throttle.to_snapshot``),
``allocator`` (smoothing state, see ``allocator_payload``), ``orders`` (each symbol's
``OrderManager.snapshot``: the id counter carries over; live orders are not restored by a
paper venue, which does not know them after a restart).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mmkit import artifacts, log
from mmkit.core.allocator import Allocator
from mmkit.core.orders import SNAPSHOT_VERSION as ORDERS_SNAPSHOT_VERSION
from mmkit.core.orders import OrderManager, OrderSnapshotError
from mmkit.core.throttle import Throttle, ThrottleParams, ThrottleSnapshotError
from mmkit.errors import ControlFileError, MmkitError

__all__ = [
    "CODES",
    "KINDS",
    "MAX_BYTES",
    "REASONS",
    "SNAPSHOT_VERSION",
    "SnapshotError",
    "SnapshotStore",
    "allocator_payload",
    "envelope",
    "open_envelope",
    "orders_payload",
    "payload_clock_ns",
    "read_snapshot",
    "restore_allocator",
    "restore_orders",
    "restore_throttle",
    "transfer_state",
    "write_snapshot",
]

SNAPSHOT_VERSION = 1
MAX_BYTES = artifacts.CONTROL_FILE_MAX_BYTES
KINDS = ("throttle", "allocator", "orders")
CODES = {
    "file_too_large": "E_SNAPSHOT_FILE_TOO_LARGE",
    "non_ascii": "E_SNAPSHOT_NON_ASCII",
    "invalid_structure": "E_SNAPSHOT_INVALID_STRUCTURE",
    "bad_checksum": "E_SNAPSHOT_BAD_CHECKSUM",
    "invalid_payload": "E_SNAPSHOT_INVALID_PAYLOAD",
}
REASONS = tuple(CODES)
_HEX64 = re.compile(r"[0-9a-f]{64}")


class SnapshotError(MmkitError):
    """A snapshot was refused; ``reason`` is one of ``REASONS`` (the metric's vocabulary)."""

    def __init__(self, reason: str, kind: str, where: str, detail: str) -> None:
        super().__init__(CODES[reason], f"{where}: {kind} snapshot refused ({reason}): {detail}")
        self.reason = reason
        self.kind = kind


# ----------------------------------------------------------------------------- the envelope
def envelope(payload: Mapping[str, Any], version: int = SNAPSHOT_VERSION) -> dict[str, Any]:
    """``{"version", "sha256", "payload"}`` for ``payload`` (must be JSON-safe and finite)."""
    text = artifacts.canonical_json(payload)
    return {"version": int(version), "sha256": artifacts.sha256_bytes(text.encode("ascii")), "payload": payload}


def open_envelope(obj: Any, kind: str, where: str = "<snapshot>") -> dict[str, Any]:
    """Check an envelope's shape and checksum; return its payload."""
    if not isinstance(obj, dict) or set(obj) != {"version", "sha256", "payload"}:
        got = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise SnapshotError("invalid_structure", kind, where, f"expected exactly version, sha256, payload; got {got}")
    version, digest, payload = obj["version"], obj["sha256"], obj["payload"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise SnapshotError("invalid_structure", kind, where, f"version must be an integer >= 1, got {version!r}")
    if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
        raise SnapshotError("invalid_structure", kind, where, "sha256 must be 64 lowercase hex digits")
    if not isinstance(payload, dict):
        raise SnapshotError("invalid_structure", kind, where, f"payload must be an object, got {type(payload).__name__}")
    actual = artifacts.sha256_bytes(artifacts.canonical_json(payload).encode("ascii"))
    if actual != digest:
        raise SnapshotError("bad_checksum", kind, where, f"sha256 {digest[:12]}... does not match the payload ({actual[:12]}...)")
    return payload


def write_snapshot(path: str | Path, payload: Mapping[str, Any], version: int = SNAPSHOT_VERSION) -> Path:
    """Write one snapshot atomically (temp file, fsync, rename, fsync of the folder)."""
    data = artifacts.canonical_bytes(envelope(payload, version))
    if len(data) > MAX_BYTES:
        raise MmkitError("E_SNAPSHOT_FILE_TOO_LARGE", f"{path}: snapshot of {len(data)} bytes exceeds the {MAX_BYTES} byte cap")
    out = artifacts.write_bytes(path, data)
    assert out is not None
    return out


def read_snapshot(path: str | Path, kind: str) -> dict[str, Any] | None:
    """The payload of the snapshot at ``path``; ``None`` if there is none; ``SnapshotError``
    if it is refused (size, ASCII, structure, checksum)."""
    where = str(path)
    try:
        obj = artifacts.read_control_file(path, "json", max_bytes=MAX_BYTES)
    except ControlFileError as exc:
        if exc.reason == "missing":
            return None
        reason = exc.reason if exc.reason in CODES else "invalid_structure"
        raise SnapshotError(reason, kind, where, exc.message.split(": ", 1)[-1]) from exc
    return open_envelope(obj, kind, where)


# ----------------------------------------------------------------------------- the store
class SnapshotStore:
    """One folder of snapshots, one file per kind, with outcome callbacks for metrics.

    ``on_load(kind, ok)`` runs for every snapshot found on disk (``ok=False`` for a
    refused one); ``on_write(kind, ok)`` for every write.  ``status()`` says what happened
    per kind (for /healthz and the run summary).
    """

    def __init__(self, folder: str | Path, on_load: Callable[[str, bool], None] | None = None,
                 on_write: Callable[[str, bool], None] | None = None) -> None:
        self.folder = Path(folder)
        self.on_load = on_load
        self.on_write = on_write
        self._status: dict[str, dict[str, Any]] = {k: {"loaded": "none", "writes": 0, "write_errors": 0} for k in KINDS}

    def path(self, kind: str) -> Path:
        if kind not in KINDS:
            raise ValueError(f"unknown snapshot kind {kind!r}")
        return self.folder / f"{kind}.json"

    def save(self, kind: str, payload: Mapping[str, Any]) -> bool:
        """Write one kind; a failure is logged and counted, never raised (the next tick retries)."""
        st = self._status[kind]
        try:
            write_snapshot(self.path(kind), payload)
        except MmkitError as exc:
            st["write_errors"] += 1
            st["last_error"] = exc.code
            log.warning("snapshot_write_failed", kind=kind, code=exc.code, detail=exc.message)
            if self.on_write is not None:
                self.on_write(kind, False)
            return False
        st["writes"] += 1
        if self.on_write is not None:
            self.on_write(kind, True)
        return True

    def load(self, kind: str, apply: Callable[[dict[str, Any]], Any]) -> str:
        """Read ``kind`` and hand its payload to ``apply``; returns ``loaded``, ``missing``
        or ``refused``.  ``apply`` raising ``ValueError``/``TypeError``/``KeyError`` (or a
        ``SnapshotError``) makes the payload ``invalid_payload``; a refusal is logged with
        its code and leaves the caller's state as it was (``apply`` must be all-or-nothing)."""
        st = self._status[kind]
        path = self.path(kind)
        try:
            payload = read_snapshot(path, kind)
            if payload is None:
                st["loaded"] = "missing"
                return "missing"
            try:
                apply(payload)
            except SnapshotError:
                raise
            except (ValueError, TypeError, KeyError) as exc:
                raise SnapshotError("invalid_payload", kind, str(path), str(exc)[:200]) from exc
        except SnapshotError as exc:
            st["loaded"] = "refused"
            st["reason"] = exc.reason
            log.warning("snapshot_refused", kind=kind, code=exc.code, reason=exc.reason, path=str(path),
                        action="starting clean")
            if self.on_load is not None:
                self.on_load(kind, False)
            return "refused"
        st["loaded"] = "loaded"
        if self.on_load is not None:
            self.on_load(kind, True)
        return "loaded"

    def status(self) -> dict[str, Any]:
        return {k: dict(v, path=str(self.path(k))) for k, v in self._status.items()}


# ----------------------------------------------------------------------------- state codecs
def transfer_state(dst: Any, src: Any) -> None:
    """Move every slot of ``src`` (a fresh object of ``dst``'s class) into ``dst``.

    Components like the throttle are referenced by the running gate chain and the order
    managers; loading or resetting one must change the object they hold, not swap it.
    Only the class's own ``__slots__`` move (the guard event log of the base stays)."""
    if type(dst) is not type(src):
        raise TypeError(f"cannot move state of {type(src).__name__} into {type(dst).__name__}")
    for name in type(dst).__slots__:
        setattr(dst, name, getattr(src, name))


def restore_throttle(throttle: Throttle, payload: Any, cfg: ThrottleParams) -> None:
    """Load a throttle snapshot payload into the running throttle (all or nothing)."""
    try:
        fresh = Throttle.from_snapshot(payload, cfg)
    except ThrottleSnapshotError as exc:
        raise SnapshotError("invalid_payload", "throttle", "<payload>", str(exc)) from exc
    transfer_state(throttle, fresh)


def allocator_payload(alloc: Allocator) -> dict[str, Any]:
    """The allocator's smoothing state (``Allocator.state``): previous weights and targets,
    last vols, the equity high-water mark, the backoff ladder position and the last
    rebalance time."""
    return alloc.state()


def restore_allocator(alloc: Allocator, payload: Any) -> None:
    """Load ``allocator_payload`` output (``Allocator.restore``: all or nothing, ``ValueError``
    on anything malformed); the next ``due`` forces a rebalance from the restored targets,
    so smoothing continues where it stopped."""
    alloc.restore(payload)


def orders_payload(managers: Mapping[str, OrderManager], clock_ns: int) -> dict[str, Any]:
    """Each symbol's order-manager snapshot (id counter, live orders, counters) and the
    engine clock when it was taken (a restarted replay continues after it)."""
    return {"version": 1, "clock_ns": int(clock_ns),
            "symbols": {sym: om.snapshot() for sym, om in sorted(managers.items())}}


def payload_clock_ns(kind: str, payload: Mapping[str, Any]) -> int | None:
    """The latest engine time a loaded payload refers to (None if it names none): the
    orders snapshot's ``clock_ns``, the throttle's newest send, the allocator's last
    rebalance.  Restored state must never lie in the future of the restarted clock."""
    times: list[int] = []
    if kind == "orders":
        times.append(payload.get("clock_ns"))  # type: ignore[arg-type]
    elif kind == "allocator":
        times.append(payload.get("last_rebalance_ns"))  # type: ignore[arg-type]
    elif kind == "throttle":
        for ops in (payload.get("symbols") or {}).values():
            for w in (ops or {}).values() if isinstance(ops, dict) else ():
                if isinstance(w, dict):
                    stamps = w.get("stamps_ns") or []
                    if stamps:
                        times.append(stamps[-1])
                    if isinstance(w.get("base_ts"), int) and isinstance(w.get("idx"), int):
                        times.append((w["base_ts"] + w["idx"] + 1) * 1_000_000_000)
                elif isinstance(w, list) and w:
                    times.append(int(max(w) * 1_000_000_000))
        for b in list((payload.get("backoff") or {}).values()) + [payload.get("ws_backoff") or {}]:
            if isinstance(b, dict):
                times.append(b.get("since_ns"))  # type: ignore[arg-type]
    good = [t for t in times if isinstance(t, int) and not isinstance(t, bool)]
    return max(good) if good else None


def restore_orders(managers: Mapping[str, OrderManager], payload: Any) -> dict[str, int]:
    """Carry the id counters over (ids continue, never reused); live orders in the
    snapshot are dropped (the replay venue does not know them after a restart) and
    counted per symbol in the result.  Validates every symbol before changing any."""
    if not isinstance(payload, dict) or payload.get("version") != 1 or not isinstance(payload.get("symbols"), dict):
        raise ValueError("orders snapshot payload must be {'version': 1, 'clock_ns': int, 'symbols': {...}}")
    clock = payload.get("clock_ns", 0)
    if isinstance(clock, bool) or not isinstance(clock, int):
        raise ValueError("clock_ns must be an integer")
    plans = []
    for sym, snap in payload["symbols"].items():
        om = managers.get(sym)
        if om is None:
            continue  # a symbol no longer traded: nothing to carry over
        if not isinstance(snap, dict) or snap.get("version") != ORDERS_SNAPSHOT_VERSION:
            raise ValueError(f"symbols.{sym}: not an order-manager snapshot v{ORDERS_SNAPSHOT_VERSION}")
        seq = snap.get("next_seq")
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
            raise ValueError(f"symbols.{sym}.next_seq must be an integer >= 1")
        if snap.get("symbol") != om.symbol or snap.get("id_prefix") != om.id_prefix:
            raise ValueError(f"symbols.{sym}: snapshot is for {snap.get('id_prefix')!r}{snap.get('symbol')!r}")
        orders = snap.get("orders", [])
        if not isinstance(orders, list) or not isinstance(snap.get("counters", {}), dict):
            raise ValueError(f"symbols.{sym}: orders must be a list and counters an object")
        plans.append((om, dict(snap, orders=[], replacing=[]), len(orders)))
    dropped: dict[str, int] = {}
    for om, clean, n in plans:
        try:
            om.restore(clean)
        except OrderSnapshotError as exc:
            raise ValueError(str(exc)) from exc
        dropped[om.symbol] = n
    return dropped
