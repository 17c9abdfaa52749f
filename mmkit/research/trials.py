"""The backtest trial: one config overlay, one seed, one window of a recording -> metrics.

Contract (used by ``mmkit sweep``, ``mmkit wf`` and ``mmkit tune report``), as the Trial
function ``"mmkit.research.trials:backtest_trial"`` of ``mmkit.research.executors``::

    backtest_trial(params: dict, seed: int, inputs: tuple[tuple[str, str], ...]) -> dict

``params`` (JSON-safe; unknown keys are refused so a typo cannot silently change a run):

- ``config`` (str, required): the base config file.  Use absolute paths: a worker of a
  pool or a cluster may run in another folder.
- ``ticks`` (list of str, required): the market data file(s), read together as one input,
  exactly like ``mmkit backtest run --ticks A --ticks B``.
- ``overrides`` (dict, optional): dotted config keys -> values, applied to the base config
  through the config layer's overlay mechanism (``config.apply_overlay``) and validated
  (``E_CFG_*`` on a bad key or value).
- ``window`` (``{"start_ns": int|null, "end_ns": int|null}`` or null): keep the events with
  ``start_ns <= ts < end_ns`` (exchange time).  ``event_window`` (``{"start": int, "stop":
  int|null}`` or null): keep events ``[start, stop)`` by position.  At most one of the two.
  A window that starts after the first event is *warmed up*: the order book built from
  every earlier event is handed to the engine as one ``BookSnapshot`` stamped with the
  first kept event's times, so the window does not start blind.
- ``profile``, ``fmt``, ``symbol``, ``venue``, ``mode``, ``queue_model``,
  ``decision_interval_ms`` (optional): as the ``mmkit backtest run`` flags of those names
  (``profile`` is the config profile; ``$MM_PROFILE`` is NOT read in a worker).

``inputs`` are ``(path, sha256)`` pairs; every path in ``config`` and ``ticks`` must be one
of them and its file must still have that sha256 (``E_TRIAL_INPUT_CHANGED`` otherwise),
so a stored result never describes other data.  ``base_params(config, ticks, **options)``
builds the shared params (absolute paths) and the inputs for a run's trials.

The result (flat, JSON-safe): every ``core.stats.STATS_KEYS`` metric as in
``BACKTEST_REPORT.json`` (``net_pnl_usd``, ``net_bps``, ``taker_share_pct``,
``order_age_p95_ms``, ``fill_rate``, ``sharpe``, ``max_drawdown_usd``, ``cvar95_usd``,
``hit_rate``, ``fills``, ``turnover_usd``, ...), plus ``maker_share_pct`` (100 -
taker share when there are fills, else 0), ``events`` (events of the window, warm-up
snapshots not counted), ``warmup_snapshots``, ``first_ts`` / ``last_ts`` (int ns of the
window's first and last event), ``duration_s``, ``cfg_hash`` (of the overridden config),
``seed``, ``gates`` (``{name: {"value", "op", "threshold", "pass"}}``, the backtest gates of
the overridden config) and ``safe`` (every gate passed).

Data are loaded once per process (``load_events``, cached by path, size and mtime), not
once per trial; configs likewise.
"""

from __future__ import annotations

import bisect
import os
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mmkit.artifacts import sha256_file
from mmkit.config import LoadedConfig, apply_overlay, build_config, load_config, to_dict
from mmkit.core.book import L2Book
from mmkit.core.events import BookSnapshot
from mmkit.core.instruments import Instrument
from mmkit.errors import MmkitError
from mmkit.research.backtest import BacktestRequest, read_all_events, run_backtest_on_events

TRIAL_FN = "mmkit.research.trials:backtest_trial"
PARAM_KEYS = frozenset({"config", "ticks", "overrides", "window", "event_window", "profile", "fmt", "symbol",
                        "venue", "mode", "queue_model", "decision_interval_ms"})
CACHE_SLOTS = 4
"""Recordings kept in memory per process (least recently used is dropped first)."""


# ----------------------------------------------------------------------------- loading
@dataclass(frozen=True)
class LoadedEvents:
    """A recording in memory: the events in replay order and what a backtest needs to know."""

    paths: tuple[str, ...]
    key: tuple[Any, ...]
    events: list[Any]
    instruments: dict[str, Instrument]
    first_ts: int
    last_ts: int
    n_events: int
    min_feed_latency_ns: int
    kinds: Counter[str]
    sha256: dict[str, str] = field(default_factory=dict)
    read_report: Any = None
    _ts: list[int] = field(default_factory=list, repr=False)
    _monotonic: bool = True

    def index_window(self, start_ns: int | None, end_ns: int | None) -> tuple[int, int]:
        """``[i, j)`` of the events with ``start_ns <= ts < end_ns`` (None = unbounded).

        On a recording whose ``ts`` is not monotonic (merged streams are; a single one may
        jitter) the window is the contiguous run from the first event at or after
        ``start_ns`` up to the first one after it at or after ``end_ns``."""
        ts = self._ts
        if self._monotonic:
            i = 0 if start_ns is None else bisect.bisect_left(ts, start_ns)
            j = len(ts) if end_ns is None else bisect.bisect_left(ts, end_ns, lo=i)
            return i, max(i, j)
        i = 0 if start_ns is None else next((k for k, t in enumerate(ts) if t >= start_ns), len(ts))
        j = len(ts) if end_ns is None else next((k for k in range(i, len(ts)) if ts[k] >= end_ns), len(ts))
        return i, j


_EVENTS: OrderedDict[tuple[Any, ...], LoadedEvents] = OrderedDict()
_CONFIGS: OrderedDict[tuple[Any, ...], LoadedConfig] = OrderedDict()
_WARMUP: OrderedDict[tuple[Any, int], tuple[BookSnapshot, ...]] = OrderedDict()


def _stat_key(path: str) -> tuple[str, int, int]:
    try:
        st = os.stat(path)
    except OSError as exc:
        raise MmkitError("E_IO_MISSING", f"{path}: {exc.strerror or exc}") from exc
    return os.path.abspath(path), st.st_size, st.st_mtime_ns


def _remember(cache: OrderedDict[Any, Any], key: Any, value: Any, slots: int = CACHE_SLOTS) -> Any:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > slots:
        cache.popitem(last=False)
    return value


def load_events(paths: Sequence[str], fmt: str | None = None, symbol: str | None = None,
                venue: str | None = None) -> LoadedEvents:
    """The recording of ``paths`` in memory, read once per process.

    Cached by ``(path, size, mtime)`` of every file (plus the read options): a worker that
    runs a hundred trials on one recording reads it once.  Read exactly as ``mmkit
    backtest run`` reads it (``backtest.read_all_events``: readers, columnar cache)."""
    names = [str(p) for p in paths]
    if not names or "-" in names:
        raise MmkitError("E_TRIAL_BAD_PARAMS", "a trial reads market data from files, not from stdin")
    key = (tuple(_stat_key(p) for p in names), fmt, symbol, venue)
    hit = _EVENTS.get(key)
    if hit is not None:
        _EVENTS.move_to_end(key)
        return hit
    events, instruments, report = read_all_events(names, fmt=fmt, symbol=symbol, venue=venue)
    ts = [ev.ts for ev in events]
    monotonic = all(a <= b for a, b in zip(ts, ts[1:]))
    loaded = LoadedEvents(
        paths=tuple(names), key=key, events=events, instruments=instruments,
        first_ts=ts[0] if ts else 0, last_ts=ts[-1] if ts else 0, n_events=len(events),
        min_feed_latency_ns=min((ev.recv_ts - ev.ts for ev in events), default=0),
        kinds=Counter(ev.kind for ev in events), sha256={p: sha256_file(p) for p in names},
        read_report=report, _ts=ts, _monotonic=monotonic,
    )
    return _remember(_EVENTS, key, loaded)


def load_base_config(path: str, profile: str | None = None) -> LoadedConfig:
    """A config file loaded once per process (cached by path, size, mtime and profile)."""
    key = (_stat_key(path), profile)
    hit = _CONFIGS.get(key)
    if hit is not None:
        _CONFIGS.move_to_end(key)
        return hit
    return _remember(_CONFIGS, key, load_config(path, profile=profile, use_env_profile=False))


def with_overrides(base: LoadedConfig, overrides: Mapping[str, Any]) -> LoadedConfig:
    """``base`` with dotted-key ``overrides`` applied by the config layer and validated.

    Raises the config layer's ``ConfigError`` (``E_CFG_*``, every problem at once)."""
    if not overrides:
        return base
    raw = apply_overlay(to_dict(base.config), dict(overrides))
    cfg = build_config(raw, f"{base.path} + overrides")
    return LoadedConfig(cfg, base.path, base.profile, base.overlays, base.warnings)


# ----------------------------------------------------------------------------- windows
def warmup_snapshots(data: LoadedEvents, start: int) -> tuple[BookSnapshot, ...]:
    """One ``BookSnapshot`` per symbol whose book, built from ``events[:start]``, is usable
    (synced, not stale, not empty), stamped with the times of ``events[start]``."""
    if start <= 0 or start >= data.n_events:
        return ()
    key = (data.key, start)
    hit = _WARMUP.get(key)
    if hit is not None:
        return hit
    books: dict[str, L2Book] = {}
    for ev in data.events[:start]:
        sym = getattr(ev, "symbol", None)
        if sym is None or ev.kind not in ("book_snapshot", "book_delta", "seq_gap"):
            continue
        book = books.get(sym)
        if book is None:
            book = books[sym] = L2Book(sym, data.instruments.get(sym))
        book.apply(ev)
    first = data.events[start]
    snaps = tuple(
        BookSnapshot(first.ts, first.recv_ts, sym, tuple(book.levels(1)), tuple(book.levels(-1)))
        for sym, book in sorted(books.items()) if book.snapshots and not book.stale and not book.empty
    )
    return _remember(_WARMUP, key, snaps, slots=64)


def select_window(data: LoadedEvents, window: Mapping[str, Any] | None,
                  event_window: Mapping[str, Any] | None) -> tuple[int, int]:
    """The ``[i, j)`` index range a trial replays (see the module docstring)."""
    if window and event_window:
        raise MmkitError("E_TRIAL_BAD_PARAMS", "give a time window or an event window, not both")
    if window:
        start, end = _opt_int(window, "start_ns"), _opt_int(window, "end_ns")
        if start is not None and end is not None and start >= end:
            raise MmkitError("E_TRIAL_BAD_PARAMS", f"window start_ns {start} is not before end_ns {end}")
        return data.index_window(start, end)
    if event_window:
        start = _opt_int(event_window, "start") or 0
        stop = _opt_int(event_window, "stop")
        if start < 0 or (stop is not None and stop < start):
            raise MmkitError("E_TRIAL_BAD_PARAMS", f"event window [{start}, {stop}) is not a forward range of indices")
        i = min(start, data.n_events)
        return i, max(i, data.n_events if stop is None else min(stop, data.n_events))
    return 0, data.n_events


def _opt_int(m: Mapping[str, Any], key: str) -> int | None:
    v = m.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise MmkitError("E_TRIAL_BAD_PARAMS", f"{key} must be an integer or null, got {v!r}")
    return v


# ----------------------------------------------------------------------------- trial plans
def base_params(config: str, ticks: Sequence[str], **options: Any) -> tuple[dict[str, Any], tuple[tuple[str, str], ...]]:
    """The params every trial of one run shares and the trials' ``inputs``.

    Paths are made absolute (a pool or cluster worker may run elsewhere) and pinned by
    sha256; ``options`` with a value other than None (``profile``, ``fmt``, ``symbol``,
    ``venue``, ``mode``, ...) are added.  Add ``overrides`` / ``window`` per trial::

        common, inputs = base_params("cfg.yaml", ["a.gz"])
        Trial("t0000", TRIAL_FN, {**common, "overrides": {...}}, seed, inputs)
    """
    unknown = sorted(set(options) - PARAM_KEYS)
    if unknown:
        raise ValueError(f"unknown trial params {unknown}")
    names = [os.path.abspath(t) for t in ticks]
    for t in names:
        if not os.path.isfile(t):
            raise MmkitError("E_IO_MISSING", f"{t}: no such market data file")
    cfg = os.path.abspath(config)
    inputs = tuple((p, sha256_file(p)) for p in (*names, cfg))
    common: dict[str, Any] = {"config": cfg, "ticks": names}
    common.update({k: v for k, v in sorted(options.items()) if v is not None})
    return common, inputs


# ----------------------------------------------------------------------------- the trial
def _check_inputs(paths: Sequence[str], inputs: Sequence[tuple[str, str]], actual: Mapping[str, str]) -> None:
    declared = dict(inputs)
    for p in paths:
        if p not in declared:
            raise MmkitError("E_TRIAL_BAD_PARAMS", f"{p} is read by the trial but not declared in its inputs")
        if declared[p] != actual[p]:
            raise MmkitError("E_TRIAL_INPUT_CHANGED", f"{p}: sha256 is {actual[p][:12]}..., the trial expected "
                                                      f"{declared[p][:12]}...; the file changed since the run was planned")


def backtest_trial(params: dict[str, Any], seed: int, inputs: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """One backtest trial (the contract is in the module docstring)."""
    unknown = sorted(set(params) - PARAM_KEYS)
    if unknown:
        raise MmkitError("E_TRIAL_BAD_PARAMS", f"unknown trial params {', '.join(unknown)}; known: {', '.join(sorted(PARAM_KEYS))}")
    cfg_path, ticks = params.get("config"), params.get("ticks")
    if not isinstance(cfg_path, str) or not isinstance(ticks, list) or not ticks or not all(isinstance(t, str) for t in ticks):
        raise MmkitError("E_TRIAL_BAD_PARAMS", "params need 'config' (a path) and 'ticks' (a non-empty list of paths)")
    overrides = params.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise MmkitError("E_TRIAL_BAD_PARAMS", "'overrides' must be a mapping of dotted config keys to values")
    data = load_events(ticks, fmt=params.get("fmt"), symbol=params.get("symbol"), venue=params.get("venue"))
    base = load_base_config(cfg_path, params.get("profile"))
    _check_inputs([cfg_path, *ticks], inputs, {**data.sha256, cfg_path: _config_sha(cfg_path)})
    loaded = with_overrides(base, overrides)
    i, j = select_window(data, params.get("window"), params.get("event_window"))
    warm = warmup_snapshots(data, i)
    events = [*warm, *data.events[i:j]] if warm else data.events[i:j]
    req = BacktestRequest(tuple(ticks), loaded, fmt=params.get("fmt"), symbol=params.get("symbol"),
                          venue=params.get("venue"), mode=params.get("mode") or "queue_aware",
                          queue_model=params.get("queue_model"), seed=seed,
                          decision_interval_ms=params.get("decision_interval_ms"))
    outcome = run_backtest_on_events(req, events if j > i else [], data.instruments, data.read_report)
    return summarize(outcome.report, n_events=j - i, warmup=len(warm),
                     first_ts=data.events[i].ts if j > i else 0, last_ts=data.events[j - 1].ts if j > i else 0,
                     cfg_hash=loaded.cfg_hash, seed=seed)


_CONFIG_SHA: dict[tuple[str, int, int], str] = {}


def _config_sha(path: str) -> str:
    key = _stat_key(path)
    if key not in _CONFIG_SHA:
        _CONFIG_SHA[key] = sha256_file(path)
    return _CONFIG_SHA[key]


def summarize(report: Mapping[str, Any], *, n_events: int, warmup: int, first_ts: int, last_ts: int,
              cfg_hash: str, seed: int) -> dict[str, Any]:
    """The flat trial result from a ``backtest_report`` (see the module docstring)."""
    stats = dict(report["stats"])
    out: dict[str, Any] = dict(stats)
    taker = float(stats.get("taker_share_pct", 0.0))
    out["maker_share_pct"] = round(100.0 - taker, 6) if stats.get("fills") else 0.0
    gates = {g["name"]: {"value": g["value"], "op": g["op"], "threshold": g["threshold"], "pass": bool(g["passed"])}
             for g in report["gates"]}
    out.update({
        "events": n_events,
        "warmup_snapshots": warmup,
        "first_ts": first_ts,
        "last_ts": last_ts,
        "duration_s": report["data"]["duration_s"],
        "cfg_hash": cfg_hash,
        "seed": seed,
        "gates": gates,
        "safe": all(g["pass"] for g in gates.values()),
    })
    return out


__all__ = ["TRIAL_FN", "LoadedEvents", "load_events", "load_base_config", "with_overrides", "warmup_snapshots",
           "select_window", "base_params", "backtest_trial", "summarize"]
