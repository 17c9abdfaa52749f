"""Order latency models for the fill simulator: how long an action takes to reach the
exchange (entry) and how long the exchange's answer takes to come back (response).

Why a model and not a number: a market maker's edge is decided in the milliseconds
between seeing the book and the exchange acting on the reply -- a cancel that arrives
after the trade that fills the order is the classic loss.  Every model answers, per
operation, ``entry_ns(op, now_ns, rng)`` (``op`` in ``ENTRY_OPS``: create, amend,
cancel) and ``response_ns(op, now_ns, rng)`` (``RESPONSE_OPS``: the same plus ``fill``,
the private-stream push of a fill that a market event caused).  Three ship in
``LATENCY_MODELS``, chosen by name in config:

``constant``
    fixed milliseconds per operation (default 10 ms entry, 10 ms response: the benchmark
    baseline).  Draws nothing from the rng.
``normal``
    a normal draw per action/report, ``N(mean_ms, std_ms)`` clamped below at ``min_ms``
    (default 0.1 ms: a latency is never zero or negative).  Clamped, not resampled, so
    one draw per value and a run is reproducible draw for draw; a ``std`` large next to
    the mean therefore piles mass at ``min_ms``.  ``std_ms == 0`` draws nothing.
``empirical``
    a uniform pick (``rng.choice``) from recorded latencies in integer ns.  Reading the
    recording is the caller's job; the core takes the list.

Per-operation overrides: every generic parameter ``X`` may be given per operation as
``<op>_X`` (``cancel_entry_ms``, ``fill_response_ms``, ``amend_entry_ns``...); an
operation without an override uses the generic value.

This module also holds the small error types shared by the fill simulator's registries
(``ModelError`` and subclasses, all ``ValueError``) and the parameter-reading helpers, so
``queue.py`` and ``fillsim.py`` raise the same kinds the CLI maps to ``E_CFG_*``.

Pure: stdlib only, no I/O, no clock; randomness only from the ``random.Random`` passed
to each call (the simulator owns it), so a seed fixes every latency.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

__all__ = [
    "ModelError",
    "UnknownModelError",
    "ModelParamError",
    "ENTRY_OPS",
    "RESPONSE_OPS",
    "NS_PER_MS",
    "LatencyModel",
    "ConstantLatency",
    "NormalLatency",
    "EmpiricalLatency",
    "LATENCY_MODELS",
    "make_latency_model",
    "ms_to_ns",
]

NS_PER_MS = 1_000_000
ENTRY_OPS = ("create", "amend", "cancel")
"""Operations that travel to the exchange (``Action.op``)."""
RESPONSE_OPS = ("create", "amend", "cancel", "fill")
"""Operations whose answer travels back: the three actions, and ``fill`` for a fill a
market event caused (the order's resting, no request is in flight)."""


# ----------------------------------------------------------------------------- errors
class ModelError(ValueError):
    """Base of the fill simulator's configuration errors (bad input, not a crash)."""


class UnknownModelError(ModelError):
    """A registry lookup named no model; the message lists the known ones.

    ``kind`` is ``"latency"``, ``"queue"`` or ``"fee"``; ``name`` what was asked for;
    ``known`` the registered names, sorted.
    """

    def __init__(self, kind: str, name: object, known: Sequence[str]) -> None:
        self.kind = kind
        self.name = name
        self.known = tuple(sorted(known))
        super().__init__(f"unknown {kind} model {name!r}; known: {', '.join(self.known)}")


class ModelParamError(ModelError):
    """A model or calibration parameter is unknown, of the wrong type or out of range.

    ``key`` names the offending parameter; ``reason`` is ``"unknown_key"``, ``"type"`` or
    ``"range"`` so a CLI can map it to ``E_CFG_UNKNOWN_KEY`` / ``E_CFG_TYPE`` /
    ``E_CFG_RANGE`` without parsing the message.
    """

    def __init__(self, key: str, message: str, reason: str = "range") -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"{key}: {message}")


# ----------------------------------------------------------------------------- param helpers
def check_keys(params: Mapping[str, Any] | None, allowed: Sequence[str], what: str) -> dict[str, Any]:
    """``params`` as a dict after refusing keys not in ``allowed`` (None = no params)."""
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise ModelParamError(what, f"parameters must be a mapping, got {type(params).__name__}", "type")
    for key in params:
        if key not in allowed:
            raise ModelParamError(str(key), f"unknown {what} parameter; known: {', '.join(sorted(allowed))}",
                                  "unknown_key")
    return dict(params)


def number(key: str, value: Any, lo: float | None = None, hi: float | None = None) -> float:
    """A finite real number (bools refused) within ``[lo, hi]``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ModelParamError(key, f"must be a number, got {type(value).__name__}", "type")
    v = float(value)
    if not math.isfinite(v):
        raise ModelParamError(key, f"must be finite, got {value!r}")
    if lo is not None and v < lo:
        raise ModelParamError(key, f"must be >= {lo}, got {value!r}")
    if hi is not None and v > hi:
        raise ModelParamError(key, f"must be <= {hi}, got {value!r}")
    return v


def ms_to_ns(ms: float) -> int:
    """Milliseconds (float) to integer nanoseconds, rounded half-even."""
    return int(round(ms * NS_PER_MS))


MAX_LATENCY_MS = 60_000.0
"""Sanity cap on any configured latency: a minute is a broken link, not a latency."""


def _per_op(p: Mapping[str, Any], generic: str, default: Any, ops: Sequence[str]) -> dict[str, Any]:
    base = p.get(generic, default)
    return {op: p.get(f"{op}_{generic}", base) for op in ops}


def _keys(generics: Sequence[str], ops_for: Mapping[str, Sequence[str]]) -> list[str]:
    out = list(generics)
    for g in generics:
        out += [f"{op}_{g}" for op in ops_for.get(g, ())]
    return out


# ----------------------------------------------------------------------------- protocol
class LatencyModel(Protocol):
    """Entry and response latency per operation, integer ns, drawn with the caller's rng."""

    def entry_ns(self, op: str, now_ns: int, rng: random.Random) -> int:
        """Time from sending ``op`` (at ``now_ns``, local = exchange clock) to the exchange."""
        ...

    def response_ns(self, op: str, now_ns: int, rng: random.Random) -> int:
        """Time from the exchange answering ``op`` (at ``now_ns``) to the strategy seeing it."""
        ...


# ----------------------------------------------------------------------------- models
class ConstantLatency:
    """Fixed latency per operation (the benchmark baseline: 10 ms entry, 10 ms response).

    ``entry_ms``/``response_ms`` are the generic values; ``entry_ms_by_op`` /
    ``response_ms_by_op`` override single operations.  Values are converted to integer
    ns once, so a call is a dict lookup.
    """

    __slots__ = ("_entry", "_resp")

    def __init__(self, entry_ms: float = 10.0, response_ms: float = 10.0, *,
                 entry_ms_by_op: Mapping[str, float] | None = None,
                 response_ms_by_op: Mapping[str, float] | None = None) -> None:
        e = {op: entry_ms for op in ENTRY_OPS}
        e.update(entry_ms_by_op or {})
        r = {op: response_ms for op in RESPONSE_OPS}
        r.update(response_ms_by_op or {})
        for name, table, ops in (("entry_ms", e, ENTRY_OPS), ("response_ms", r, RESPONSE_OPS)):
            for op, v in table.items():
                if op not in ops:
                    raise ModelParamError(f"{op}_{name}", f"unknown operation {op!r}", "unknown_key")
                number(f"{op}_{name}", v, 0.0, MAX_LATENCY_MS)
        self._entry = {op: ms_to_ns(v) for op, v in e.items()}
        self._resp = {op: ms_to_ns(v) for op, v in r.items()}

    def __repr__(self) -> str:
        return f"ConstantLatency(entry_ns={self._entry}, response_ns={self._resp})"

    def entry_ns(self, op: str, now_ns: int, rng: random.Random) -> int:
        return self._entry[op]

    def response_ns(self, op: str, now_ns: int, rng: random.Random) -> int:
        return self._resp[op]

    PARAMS = _keys(("entry_ms", "response_ms"), {"entry_ms": ENTRY_OPS, "response_ms": RESPONSE_OPS})

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None = None) -> ConstantLatency:
        p = check_keys(params, cls.PARAMS, "constant latency")
        e = _per_op(p, "entry_ms", 10.0, ENTRY_OPS)
        r = _per_op(p, "response_ms", 10.0, RESPONSE_OPS)
        for op in ENTRY_OPS:
            number(f"{op}_entry_ms" if f"{op}_entry_ms" in p else "entry_ms", e[op], 0.0, MAX_LATENCY_MS)
        for op in RESPONSE_OPS:
            number(f"{op}_response_ms" if f"{op}_response_ms" in p else "response_ms", r[op], 0.0, MAX_LATENCY_MS)
        return cls(entry_ms_by_op=e, response_ms_by_op=r)


class NormalLatency:
    """Seeded normal latency per operation, clamped below at ``min_ms``.

    Entry of ``op`` ~ ``N(entry_mean_ms[op], entry_std_ms)``; response ~
    ``N(response_mean_ms[op], response_std_ms)``; each value ``max(min_ms, draw)``.
    Defaults: entry 10 ms +- 2 ms, response as entry, ``min_ms`` 0.1.  The calibration
    JSON's ``latency_ms_mean``/``latency_ms_std`` are the create entry mean/std and its
    ``amend_latency_ms``/``cancel_latency_ms`` the amend/cancel entry means
    (``fillsim.latency_from_calibration``).
    """

    __slots__ = ("_emean", "_estd", "_rmean", "_rstd", "_min")

    def __init__(self, entry_mean_ms: float = 10.0, entry_std_ms: float = 2.0, *,
                 response_mean_ms: float | None = None, response_std_ms: float | None = None,
                 min_ms: float = 0.1, entry_mean_ms_by_op: Mapping[str, float] | None = None,
                 response_mean_ms_by_op: Mapping[str, float] | None = None) -> None:
        rmean = entry_mean_ms if response_mean_ms is None else response_mean_ms
        rstd = entry_std_ms if response_std_ms is None else response_std_ms
        em = {op: entry_mean_ms for op in ENTRY_OPS}
        em.update(entry_mean_ms_by_op or {})
        rm = {op: rmean for op in RESPONSE_OPS}
        rm.update(response_mean_ms_by_op or {})
        for name, table, ops in (("entry_mean_ms", em, ENTRY_OPS), ("response_mean_ms", rm, RESPONSE_OPS)):
            for op, v in table.items():
                if op not in ops:
                    raise ModelParamError(f"{op}_{name}", f"unknown operation {op!r}", "unknown_key")
                number(f"{op}_{name}", v, 0.0, MAX_LATENCY_MS)
        number("entry_std_ms", entry_std_ms, 0.0, MAX_LATENCY_MS)
        number("response_std_ms", rstd, 0.0, MAX_LATENCY_MS)
        number("min_ms", min_ms, 0.0, MAX_LATENCY_MS)
        self._emean = {op: float(v) for op, v in em.items()}
        self._rmean = {op: float(v) for op, v in rm.items()}
        self._estd = float(entry_std_ms)
        self._rstd = float(rstd)
        self._min = float(min_ms)

    def __repr__(self) -> str:
        return (f"NormalLatency(entry_mean_ms={self._emean}, entry_std_ms={self._estd}, "
                f"response_mean_ms={self._rmean}, response_std_ms={self._rstd}, min_ms={self._min})")

    def _draw(self, mean: float, std: float, rng: random.Random) -> int:
        v = rng.gauss(mean, std) if std > 0.0 else mean
        return int(round((v if v > self._min else self._min) * NS_PER_MS))

    def entry_ns(self, op: str, now_ns: int, rng: random.Random) -> int:
        return self._draw(self._emean[op], self._estd, rng)

    def response_ns(self, op: str, now_ns: int, rng: random.Random) -> int:
        return self._draw(self._rmean[op], self._rstd, rng)

    PARAMS = _keys(("entry_mean_ms", "entry_std_ms", "response_mean_ms", "response_std_ms", "min_ms"),
                   {"entry_mean_ms": ENTRY_OPS, "response_mean_ms": RESPONSE_OPS})

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None = None) -> NormalLatency:
        p = check_keys(params, cls.PARAMS, "normal latency")
        emean = number("entry_mean_ms", p.get("entry_mean_ms", 10.0), 0.0, MAX_LATENCY_MS)
        rmean = number("response_mean_ms", p.get("response_mean_ms", emean), 0.0, MAX_LATENCY_MS)
        em = {op: number(f"{op}_entry_mean_ms", p[f"{op}_entry_mean_ms"], 0.0, MAX_LATENCY_MS)
              for op in ENTRY_OPS if f"{op}_entry_mean_ms" in p}
        rm = {op: number(f"{op}_response_mean_ms", p[f"{op}_response_mean_ms"], 0.0, MAX_LATENCY_MS)
              for op in RESPONSE_OPS if f"{op}_response_mean_ms" in p}
        estd = number("entry_std_ms", p.get("entry_std_ms", 2.0), 0.0, MAX_LATENCY_MS)
        return cls(emean, estd,
                   response_mean_ms=rmean,
                   response_std_ms=number("response_std_ms", p.get("response_std_ms", estd), 0.0, MAX_LATENCY_MS),
                   min_ms=number("min_ms", p.get("min_ms", 0.1), 0.0, MAX_LATENCY_MS),
                   entry_mean_ms_by_op=em, response_mean_ms_by_op=rm)


def _ns_values(key: str, values: Any) -> tuple[int, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise ModelParamError(key, f"must be a list of integer ns, got {type(values).__name__}", "type")
    if not values:
        raise ModelParamError(key, "must hold at least one latency")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ModelParamError(key, f"latencies are integer ns, got {v!r}", "type")
        if v < 0 or v > MAX_LATENCY_MS * NS_PER_MS:
            raise ModelParamError(key, f"latency {v} ns is outside [0, {int(MAX_LATENCY_MS)} ms]")
        out.append(v)
    return tuple(out)


class EmpiricalLatency:
    """Latencies sampled uniformly (``rng.choice``) from recorded values, integer ns.

    ``entry_ns_values`` serve every entry; ``response_ns_values`` (default: the entry
    values) every response; ``*_by_op`` give an operation its own recording.  The
    recording is typically one day of measured request round trips split in halves;
    reading the file is the caller's job.
    """

    __slots__ = ("_entry", "_resp")

    def __init__(self, entry_ns_values: Sequence[int], response_ns_values: Sequence[int] | None = None, *,
                 entry_ns_by_op: Mapping[str, Sequence[int]] | None = None,
                 response_ns_by_op: Mapping[str, Sequence[int]] | None = None) -> None:
        base_e = _ns_values("entry_ns", entry_ns_values)
        base_r = base_e if response_ns_values is None else _ns_values("response_ns", response_ns_values)
        self._entry = {op: base_e for op in ENTRY_OPS}
        self._resp = {op: base_r for op in RESPONSE_OPS}
        for name, table, ops, given in (("entry_ns", self._entry, ENTRY_OPS, entry_ns_by_op),
                                        ("response_ns", self._resp, RESPONSE_OPS, response_ns_by_op)):
            for op, vals in (given or {}).items():
                if op not in ops:
                    raise ModelParamError(f"{op}_{name}", f"unknown operation {op!r}", "unknown_key")
                table[op] = _ns_values(f"{op}_{name}", vals)

    def __repr__(self) -> str:
        return f"EmpiricalLatency(entry={ {k: len(v) for k, v in self._entry.items()} }, " \
               f"response={ {k: len(v) for k, v in self._resp.items()} })"

    def entry_ns(self, op: str, now_ns: int, rng: random.Random) -> int:
        return rng.choice(self._entry[op])

    def response_ns(self, op: str, now_ns: int, rng: random.Random) -> int:
        return rng.choice(self._resp[op])

    PARAMS = _keys(("entry_ns", "response_ns"), {"entry_ns": ENTRY_OPS, "response_ns": RESPONSE_OPS})

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None = None) -> EmpiricalLatency:
        p = check_keys(params, cls.PARAMS, "empirical latency")
        if "entry_ns" not in p:
            raise ModelParamError("entry_ns", "the empirical model needs a list of recorded latencies in ns",
                                  "range")
        return cls(p["entry_ns"], p.get("response_ns"),
                   entry_ns_by_op={op: p[f"{op}_entry_ns"] for op in ENTRY_OPS if f"{op}_entry_ns" in p},
                   response_ns_by_op={op: p[f"{op}_response_ns"] for op in RESPONSE_OPS if f"{op}_response_ns" in p})


# ----------------------------------------------------------------------------- registry
LatencyFactory = Callable[[Mapping[str, Any] | None], LatencyModel]

LATENCY_MODELS: dict[str, LatencyFactory] = {
    "constant": ConstantLatency.from_params,
    "normal": NormalLatency.from_params,
    "empirical": EmpiricalLatency.from_params,
}
"""Model name -> factory taking the model's parameter mapping (see each class)."""


def make_latency_model(name: str, params: Mapping[str, Any] | None = None) -> LatencyModel:
    """Build the latency model ``name`` from its parameters; ``UnknownModelError`` lists
    the known names, ``ModelParamError`` names a bad key."""
    factory = LATENCY_MODELS.get(name)
    if factory is None:
        raise UnknownModelError("latency", name, list(LATENCY_MODELS))
    return factory(params)
