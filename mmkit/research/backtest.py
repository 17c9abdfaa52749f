"""Backtests: map a config onto the core, replay recorded events through the engine and
the fill simulator, and turn the result into the ``backtest_report`` artifact.

This is the one place that knows both the config schema and the core's constructors, so
the same wiring serves ``mmkit backtest run``, ``mmkit sim run``, walk-forward trials
and sweeps.  The report is plain data (rendered to Markdown from the JSON, never
recomputed), and every number in it is explained in docs/backtest.md.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

from mmkit import artifacts
from mmkit.clock import iso_from_ns
from mmkit.config import LoadedConfig
from mmkit.config_schema import Config
from mmkit.core.allocator import Allocator
from mmkit.core.book import L2Book
from mmkit.core.circuit import CircuitBreaker
from mmkit.core.engine import Engine, EngineParams, EngineResult, SymbolRuntime, feed_clock_shift
from mmkit.core.fillsim import (
    CalibrationParams,
    FillSimParams,
    FillSimulator,
    calibration_from_mapping,
    latency_from_calibration,
    make_fee_model,
)
from mmkit.core.gates import GateChain
from mmkit.core.instruments import Instrument
from mmkit.core.latency import ModelError, make_latency_model
from mmkit.core.ledger import Ledger
from mmkit.core.orders import Budget, OrderManager, OrderParams
from mmkit.core.queue import QUEUE_MODELS, make_queue_model
from mmkit.core.risk import IntradayCapsGuard, KillSwitch, PositionBook, PositionSkewGuard, RiskGuard
from mmkit.core.signals import SymbolSignals
from mmkit.core.stats import STATS_KEYS, GateSpec, compute_stats, evaluate_gates
from mmkit.core.strategy import StrategyError, make_strategy
from mmkit.core.throttle import Throttle
from mmkit.data.cache import KINDS as CACHE_KINDS
from mmkit.data.cache import load_cache
from mmkit.data.detect import sniff
from mmkit.data.readers import ON_ERROR_CHOICES, ReadReport, open_events, registry
from mmkit.errors import EXIT_USAGE, MmkitError
from mmkit.research.gc_pause import gc_paused

MODES = ("queue_aware", "optimistic")
_SCAN_CHUNK = 1 << 20  # cache rows per step of the feed-clock pre-pass
_ROW_CHUNK = 1 << 16  # cache rows per compiled engine call (progress and page dropping between)


@dataclass(frozen=True, slots=True)
class BacktestRequest:
    """One backtest: inputs, config and the knobs the CLI exposes."""

    ticks: tuple[str, ...]
    loaded: LoadedConfig
    fmt: str | None = None
    symbol: str | None = None
    venue: str | None = None
    mode: str = "queue_aware"
    queue_model: str | None = None
    calibration: str | None = None
    seed: int = 0
    on_error: str = "fail"
    decision_interval_ms: int | None = None
    trace: bool = False
    kind: str = "backtest_report"


@dataclass(slots=True)
class BacktestOutcome:
    report: dict[str, Any]
    result: EngineResult
    passed: bool


# ----------------------------------------------------------------------------- inputs
def load_calibration(path: str | None) -> CalibrationParams | None:
    """Read and validate a calibration JSON (the seed's "Calibration Parameters")."""
    if not path:
        return None
    obj = artifacts.read_control_file(path, "json")
    try:
        return calibration_from_mapping(obj)
    except ModelError as exc:
        reason = getattr(exc, "reason", "range")
        code = {"unknown_key": "E_CFG_UNKNOWN_KEY", "type": "E_CFG_TYPE"}.get(reason, "E_CFG_RANGE")
        raise MmkitError(code, f"{path}: {exc}") from exc


class _Replay:
    """Events of the inputs, readable twice (the feed-clock pre-pass, then the run).

    Files are simply re-opened; stdin is buffered once in memory (say so in the docs).

    Fast path: a single columnar cache file (``data.cache``) is loaded once and never
    read twice.  The pre-pass is computed from its raw columns (the smallest
    ``recv_ts - ts`` and a count per kind code, no event objects), and the run iterates
    ``EventCache.iter_events`` directly, without the per-event bookkeeping of the generic
    reader (a cache has nothing to skip or repair).  The events, their order and the
    instruments are exactly those ``open_events`` yields for the same file."""

    def __init__(self, req: BacktestRequest) -> None:
        self.req = req
        self._buffer: list[Any] | None = None
        self._cache: Any = None
        self.report: Any = None
        self.instruments: dict[str, Instrument] = {}
        if "-" in req.ticks:
            stream = self._open()
            self._buffer = list(stream)
            self.report, self.instruments = stream.report, dict(stream.instruments)
        elif len(req.ticks) == 1 and req.on_error in ON_ERROR_CHOICES:
            self._cache = _open_cache(req.ticks[0], req.fmt, req.symbol)

    def _open(self) -> Any:
        return open_events(list(self.req.ticks), fmt=self.req.fmt, symbol=self.req.symbol,
                           on_error=self.req.on_error, venue=self.req.venue)

    def scan(self) -> tuple[int, int, Counter[str]]:
        """One pass: the smallest feed latency, the event count and the kinds."""
        if self._cache is not None:
            return self._scan_cache()
        kinds: Counter[str] = Counter()
        lo: int | None = None
        n = 0
        for ev in self._iter():
            n += 1
            kinds[ev.kind] += 1
            lat = ev.recv_ts - ev.ts
            if lo is None or lat < lo:
                lo = lat
        return (lo or 0), n, kinds

    def _scan_cache(self) -> tuple[int, int, Counter[str]]:
        """The pre-pass from the cache columns; also fills ``report`` and ``instruments``
        (symbols in order of first appearance, as the generic reader registers them)."""
        cache = self._cache
        n = cache.n_events
        kinds: Counter[str] = Counter()
        lo: int | None = None
        order: list[int] = []  # symbol ids in order of first appearance
        for start in range(0, n, _SCAN_CHUNK):  # chunked, dropping mapped pages behind: flat RSS
            stop = min(n, start + _SCAN_CHUNK)
            counts = cache.kind_counts(start, stop)
            for code, name in enumerate(CACHE_KINDS):
                if counts[code]:
                    kinds[name] += counts[code]
            low = cache.min_latency(start, stop)
            lo = low if lo is None or (low is not None and low < lo) else lo
            first = cache.first_rows(start, stop, order)
            order += sorted(first, key=first.__getitem__)
            cache.drop_pages(stop, 0)
        if sum(kinds.values()) != n:
            raise MmkitError("E_CACHE_CORRUPT", f"{cache.path}: unknown event kind codes in the kind column")
        report = ReadReport(on_error=self.req.on_error)
        src = report.add(cache.path, "cache")
        src.recv_clock = "stored"
        src.events.update(kinds)
        src.seq_gaps = kinds.get("seq_gap", 0)
        if n:
            src.first_ts, src.last_ts = cache.ts[0], cache.ts[n - 1]
        for sid in order:
            inst = cache.instruments[sid]
            report.register(inst)
            src.symbols.add(inst.symbol)
        self.report, self.instruments = report, dict(report.instruments)
        return lo or 0, n, kinds

    def _iter(self) -> Iterator[Any]:
        if self._cache is not None:
            try:
                yield from self._cache.iter_events()
            finally:
                self._cache.close()
            return
        if self._buffer is not None:
            yield from self._buffer
            return
        stream = self._open()
        yield from stream
        self.report, self.instruments = stream.report, dict(stream.instruments)

    def events(self) -> Iterator[Any]:
        return self._iter()


def _open_cache(path: str, fmt: str | None, symbol: str | None) -> Any:
    """``path`` loaded as a cache if it is one and ``--symbol`` keeps all of it, else None
    (the generic reader then handles it, errors included)."""
    if fmt not in (None, "cache"):
        return None
    try:
        if sniff(path, fmt).fmt != "cache":
            return None
    except MmkitError:
        return None
    cache = load_cache(path)
    if symbol is not None and any(s != symbol.upper() for s in cache.symbols):
        cache.close()
        return None
    return cache


# ----------------------------------------------------------------------------- wiring
def build_fillsim(cfg: Config, instruments: dict[str, Instrument], rng: random.Random, mode: str,
                  queue_model: str | None, cal: CalibrationParams | None, retention: int | None = None) -> FillSimulator:
    """The simulated venue the config (and an optional calibration) describes.  ``retention``
    overrides how many finished client ids it remembers (a long-running service keeps it
    small so memory stays flat)."""
    fs = cfg.fillsim
    qname = "optimistic" if mode == "optimistic" else (queue_model or fs.queue_model)
    try:
        queue = make_queue_model(qname, fs.queue_params if qname == fs.queue_model else None)
        if cal is not None:
            latency = latency_from_calibration(cal)
            params = FillSimParams.from_calibration(cal, cross_fills=fs.cross_fills)
        else:
            lat_params: dict[str, Any] = dict(fs.latency_params)
            if fs.latency_model == "empirical":
                lat_params = {"entry_ns": _read_latency_file(fs.latency_file)}
            latency = make_latency_model(fs.latency_model, lat_params)
            params = FillSimParams(toxic_sweep_prob=fs.toxic_sweep_prob, extra_slippage_bps=fs.extra_slippage_bps,
                                   cross_fills=fs.cross_fills)
        fees = make_fee_model("flat", {"maker_bps": cfg.trading.maker_fee_bps, "taker_bps": cfg.trading.taker_fee_bps})
    except ModelError as exc:
        raise MmkitError("E_CFG_MODEL", str(exc)) from exc
    if retention is not None:
        params = dataclasses.replace(params, retention=retention)
    return FillSimulator(instruments, latency, queue, fees, rng, params)


def _read_latency_file(path: str) -> list[int]:
    text = artifacts.read_control_bytes(path, 16 << 20)
    values = []
    for no, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not line.isdigit():
            raise MmkitError("E_CFG_LATENCY_FILE", f"{path}:{no}: expected a latency in integer ns, got {line[:40]!r}")
        values.append(int(line))
    if not values:
        raise MmkitError("E_CFG_LATENCY_FILE", f"{path}: no latencies in the file")
    return values


def build_engine(cfg: Config, instruments: dict[str, Instrument], venue: FillSimulator, shift_ns: int,
                 decision_interval_ms: int, start_ns: int, trace: bool) -> Engine:
    """Runtimes per symbol, the shared gate chain and the ledger, from the config."""
    positions = PositionBook()
    gates = GateChain([
        KillSwitch(cfg.killswitch, positions),
        RiskGuard(cfg.risk, positions, peak_equity_usd=cfg.portfolio.budget_usd),
        IntradayCapsGuard(cfg.guards.intraday_caps, positions, start_ns),
        PositionSkewGuard(cfg.guards.pos_skew, positions),
        CircuitBreaker(cfg.circuit),
        Throttle(cfg.throttle),
    ])
    policy = cfg.backtest.replace_policy
    params = OrderParams.from_config(cfg.strategy, cfg.latency_boost, cfg.trading, policy=policy)
    symbols = [s for s in cfg.trading.symbols if s in instruments] or sorted(instruments)
    weights = _static_weights(cfg, symbols)
    runtimes = {}
    for sym in symbols:
        inst = instruments[sym]
        try:
            strategy = make_strategy(cfg.strategy)
        except StrategyError as exc:
            raise MmkitError("E_CFG_MODEL", str(exc)) from exc
        target = cfg.portfolio.budget_usd * weights[sym] / 2.0  # per side
        levels = min(cfg.strategy.levels_per_side, cfg.portfolio.levels_per_side_max)
        runtimes[sym] = SymbolRuntime(
            symbol=sym, instrument=inst, book=L2Book(sym, inst), signals=SymbolSignals(sym, cfg.signals),
            strategy=strategy, orders=OrderManager(inst, params, gates, "bt-"),
            budget=Budget(Decimal(repr(target)), levels), target_usd_per_side=target, max_levels=levels,
        )
    ledger = Ledger({s: instruments[s] for s in symbols}, cfg.backtest.equity_interval_ms)
    eparams = EngineParams(decision_interval_ms=decision_interval_ms, clock_shift_ns=shift_ns,
                           equity_interval_ms=cfg.backtest.equity_interval_ms)
    try:
        allocator = Allocator(cfg.portfolio, cfg.allocator.smoothing, cfg.guards.pos_skew, cfg.portfolio.budget)
    except ValueError as exc:
        raise MmkitError("E_CFG_RANGE", f"portfolio: {exc}") from exc
    return Engine(runtimes, venue, ledger, eparams, gates=gates, positions=positions,
                  maker_fee_bps=cfg.trading.maker_fee_bps, taker_fee_bps=cfg.trading.taker_fee_bps, trace_orders=trace,
                  allocator=allocator)


def _static_weights(cfg: Config, symbols: Sequence[str]) -> dict[str, float]:
    """The budget split of the run: manual weights if given, else equal (see docs)."""
    pf = cfg.portfolio
    if pf.mode == "manual" and pf.manual_weights:
        raw = {s: pf.manual_weights.get(s, pf.min_weight) for s in symbols}
    else:
        raw = {s: 1.0 for s in symbols}
    total = sum(raw.values()) or 1.0
    return {s: v / total for s, v in raw.items()}


# ----------------------------------------------------------------------------- run
def run_backtest(req: BacktestRequest, progress: Any = None) -> BacktestOutcome:
    """Validate everything that can be checked up front, then replay and report.

    ``progress`` (a ``mmkit.progress.Progress`` or anything with ``set_total(n)`` and
    ``advance(n)``) learns the event count after the pre-pass, then advances as events
    are consumed."""
    if req.mode not in MODES:
        raise MmkitError("E_USAGE", f"--mode must be one of {', '.join(MODES)}, got {req.mode!r}", EXIT_USAGE)
    cfg = req.loaded.config
    check_request(req)
    cal = load_calibration(req.calibration)
    artifacts.prehash(req.ticks)  # the report's input hashes, on the other core while the run works
    replay = _Replay(req)
    min_latency, n_events, kinds = replay.scan()
    if n_events == 0:
        raise MmkitError("E_DATA_EMPTY", f"{', '.join(req.ticks)}: no market events in the input")
    if not (kinds.get("book_snapshot") or kinds.get("book_delta")):
        raise MmkitError("E_DATA_NO_BOOK", f"{', '.join(req.ticks)}: no order book events, nothing to quote against")
    instruments = replay.instruments
    bt = cfg.backtest
    shift = feed_clock_shift([min_latency], bt.feed_clock, bt.feed_clock_offset_ns)
    interval = bt.decision_interval_ms if req.decision_interval_ms is None else req.decision_interval_ms
    rng = random.Random(req.seed)
    venue = build_fillsim(cfg, instruments, rng, req.mode, req.queue_model, cal)
    engine = build_engine(cfg, instruments, venue, shift, interval, 0, req.trace)
    with gc_paused():  # no reference cycles in the engine: see gc_pause
        if replay._cache is not None and engine.row_feed_supported():
            result = _run_rows(engine, replay._cache, progress)
        else:
            result = engine.run(_tracked(replay.events(), n_events, progress))
    report, passed = build_report(req, cfg, result, kinds, n_events, min_latency, cal, replay.report)
    return BacktestOutcome(report, result, passed)


def _run_rows(engine: Engine, cache: Any, progress: Any) -> EngineResult:
    """The run straight from the cache columns (``Engine.feed_rows``: same results as
    feeding the cache's events, compiled loop), chunk by chunk for the progress bar and to
    drop the mapped pages behind (flat RSS).  The cache stays open until the engine closed:
    rows still in flight are rebuilt from it."""
    n = cache.n_events
    rows = cache.rows()
    draw = progress is not None and getattr(progress, "enabled", True)
    if progress is not None:
        progress.set_total(n)
    try:
        for lo in range(0, n, _ROW_CHUNK):
            hi = min(n, lo + _ROW_CHUNK)
            engine.feed_rows(rows, lo, hi)
            cache.drop_pages(hi, cache.levels_end(lo, hi))
            if draw:
                progress.advance(hi - lo)
        return engine.close()
    finally:
        cache.close()


@dataclass(frozen=True, slots=True)
class _ReadSpec:
    """What ``_Replay`` needs to read inputs, without a config (``read_all_events``)."""

    ticks: tuple[str, ...]
    fmt: str | None = None
    symbol: str | None = None
    venue: str | None = None
    on_error: str = "fail"


def read_all_events(ticks: Sequence[str], fmt: str | None = None, symbol: str | None = None,
                    venue: str | None = None, on_error: str = "fail") -> tuple[list[Any], dict[str, Instrument], Any]:
    """Every event of the inputs in memory, plus the instruments and the read report.

    Read exactly as ``run_backtest`` reads them (the cache fast path included), so a
    backtest of the list (``run_backtest_on_events``) equals ``run_backtest`` of the files.
    For callers that replay the same data many times (sweeps, walk-forward trials)."""
    replay = _Replay(cast(BacktestRequest, _ReadSpec(tuple(ticks), fmt, symbol, venue, on_error)))
    if replay._cache is not None:
        replay.scan()  # fills the report and instruments from the cache columns
    events = list(replay.events())
    return events, dict(replay.instruments), replay.report


def scan_events(events: Sequence[Any]) -> tuple[int, int, Counter[str]]:
    """The pre-pass of ``run_backtest`` over an in-memory list: the smallest feed latency,
    the event count and the kinds."""
    kinds: Counter[str] = Counter(ev.kind for ev in events)
    lo = min((ev.recv_ts - ev.ts for ev in events), default=0)
    return lo, len(events), kinds


def run_backtest_on_events(req: BacktestRequest, events: Sequence[Any], instruments: dict[str, Instrument],
                           read_report: Any = None, progress: Any = None) -> BacktestOutcome:
    """``run_backtest`` over events already in memory (a window of a loaded recording).

    ``req.ticks`` only names the inputs in the report's meta; the events replayed are
    ``events`` (in their order) and the instruments ``instruments``.  Same checks, same
    wiring, same report as ``run_backtest``."""
    if req.mode not in MODES:
        raise MmkitError("E_USAGE", f"--mode must be one of {', '.join(MODES)}, got {req.mode!r}", EXIT_USAGE)
    cfg = req.loaded.config
    check_request(req)
    cal = load_calibration(req.calibration)
    min_latency, n_events, kinds = scan_events(events)
    where = ", ".join(req.ticks) or "<events>"
    if n_events == 0:
        raise MmkitError("E_DATA_EMPTY", f"{where}: no market events in the window")
    if not (kinds.get("book_snapshot") or kinds.get("book_delta")):
        raise MmkitError("E_DATA_NO_BOOK", f"{where}: no order book events in the window, nothing to quote against")
    bt = cfg.backtest
    shift = feed_clock_shift([min_latency], bt.feed_clock, bt.feed_clock_offset_ns)
    interval = bt.decision_interval_ms if req.decision_interval_ms is None else req.decision_interval_ms
    venue = build_fillsim(cfg, instruments, random.Random(req.seed), req.mode, req.queue_model, cal)
    engine = build_engine(cfg, instruments, venue, shift, interval, 0, req.trace)
    result = engine.run(_tracked(events, n_events, progress))
    report, passed = build_report(req, cfg, result, kinds, n_events, min_latency, cal, read_report)
    return BacktestOutcome(report, result, passed)


def check_request(req: BacktestRequest) -> None:
    """Everything about the request that can be refused before the input is read."""
    if req.queue_model is not None and req.queue_model not in QUEUE_MODELS:
        raise MmkitError("E_CFG_MODEL", f"unknown queue model {req.queue_model!r}; known: {', '.join(sorted(QUEUE_MODELS))}")
    if req.decision_interval_ms is not None and req.decision_interval_ms < 0:
        raise MmkitError("E_USAGE", f"--decision-interval-ms must be >= 0, got {req.decision_interval_ms}", EXIT_USAGE)
    if req.loaded.config.backtest.decision_interval_ms < 0:
        raise MmkitError("E_CFG_RANGE", f"backtest.decision_interval_ms must be >= 0, got "
                         f"{req.loaded.config.backtest.decision_interval_ms}")
    if req.venue:
        known = registry()
        if known.venue(req.venue) not in known.venues():
            raise MmkitError("E_DATA_UNKNOWN_VENUE", f"--venue {req.venue}: not a venue of the instrument registry; "
                             f"known: {', '.join(known.venues())}")


def _tracked(events: Iterable[Any], n_events: int, progress: Any) -> Iterable[Any]:
    """``events``, counted into ``progress`` when there is one to draw; a sink that says it
    is disabled (``enabled = False``: not a TTY) adds nothing to the per-event path."""
    if progress is None:
        return events
    progress.set_total(n_events)
    if not getattr(progress, "enabled", True):
        return events
    return _with_progress(events, progress.advance)


def _with_progress(events: Iterable[Any], progress: Callable[[int], None], step: int = 50_000) -> Iterator[Any]:
    n = 0
    for ev in events:
        n += 1
        if n % step == 0:
            progress(step)
        yield ev
    progress(n % step)


def build_report(req: BacktestRequest, cfg: Config, result: EngineResult, kinds: Counter[str], n_events: int,
                 min_latency_ns: int, cal: CalibrationParams | None, read_report: Any) -> tuple[dict[str, Any], bool]:
    """The ``backtest_report`` artifact body plus the gate verdict."""
    stats = compute_stats(result.ledger, result.orders, _markouts(result), start_ns=result.start_ns,
                          end_ns=result.end_ns, starting_capital_usd=Decimal(repr(cfg.portfolio.budget_usd)))
    g = cfg.backtest.gates
    specs = [GateSpec("net_bps", ">=", g.min_net_bps), GateSpec("taker_share_pct", "<=", g.max_taker_share_pct),
             GateSpec("order_age_p95_ms", "<=", g.max_order_age_p95_ms)]
    gates = evaluate_gates(stats, specs)
    passed = all(r.passed for r in gates)
    queue = "optimistic" if req.mode == "optimistic" else (req.queue_model or cfg.fillsim.queue_model)
    per_symbol = {}
    for sym, rt in sorted(result.runtimes.items()):
        pos = result.ledger.position(sym)
        per_symbol[sym] = {
            "position_lots": pos.qty_lots,
            "position": rt.instrument.lots_to_qty(pos.qty_lots),
            "decisions": rt.decisions,
            "fills": pos.fills,
            "maker_fills": pos.maker_fills,
            "taker_fills": pos.taker_fills,
            "orders_created": rt.orders.counters.created,
            "realized_pnl_usd": _num(pos.realized_pnl_usd),
            "unrealized_pnl_usd": _num(pos.unrealized_pnl_usd),
        }
    body = {
        "verdict": "PASS" if passed else "FAIL",
        "run": {
            "mode": req.mode,
            "queue_model": queue,
            "latency_model": "calibration" if cal is not None else cfg.fillsim.latency_model,
            "strategy_model": cfg.strategy.model,
            "decision_interval_ms": req.decision_interval_ms if req.decision_interval_ms is not None
            else cfg.backtest.decision_interval_ms,
            "feed_clock": cfg.backtest.feed_clock,
            "clock_shift_ns": result.clock_shift_ns,
            "min_feed_latency_ns": min_latency_ns,
            "seed": req.seed,
            "calibration": cal.as_dict() if cal is not None else None,
        },
        "data": {
            "events": n_events,
            "by_kind": dict(sorted(kinds.items())),
            "symbols": sorted(result.runtimes),
            "start": iso_from_ns(result.start_ns),
            "end": iso_from_ns(result.end_ns),
            "duration_s": round((result.end_ns - result.start_ns) / 1e9, 6),
            "skipped": _skipped(read_report),
        },
        "engine": result.counters.as_dict(),
        "stats": _finite(stats.to_dict()),
        "per_symbol": per_symbol,
        "gates": [{"name": r.name, "value": _num(r.value), "op": r.op, "threshold": r.threshold, "passed": r.passed}
                  for r in gates],
    }
    meta = artifacts.build_meta(cfg_hash=req.loaded.cfg_hash, seed=req.seed,
                                inputs=[t for t in req.ticks if t != "-"] + ([req.calibration] if req.calibration else []))
    return artifacts.artifact(req.kind, body, meta), passed


def _markouts(result: EngineResult) -> list[Any]:
    out: list[Any] = []
    for rt in result.runtimes.values():
        out.extend(rt.signals.markouts.all_stats())
    return out


def _skipped(read_report: Any) -> int:
    return int(getattr(read_report, "skipped", 0) or 0) if read_report is not None else 0


def _num(v: Any) -> Any:
    return round(float(v), 6) if isinstance(v, (float, Decimal)) else v


def _finite(d: dict[str, Any]) -> dict[str, Any]:
    return {k: _num(v) for k, v in d.items()}


# ----------------------------------------------------------------------------- traces and markdown
def write_traces(result: EngineResult, folder: str | Path) -> list[Path]:
    """``fills.jsonl`` and ``orders.jsonl`` (decimal strings for prices and sizes)."""
    folder = Path(folder)
    insts = {s: rt.instrument for s, rt in result.runtimes.items()}
    fills = []
    for f in result.fills:
        inst = insts[f.symbol]
        fills.append({"ts": f.ts, "symbol": f.symbol, "order_id": f.client_id, "side": "buy" if f.side > 0 else "sell",
                      "price": inst.ticks_to_px(f.price), "qty": inst.lots_to_qty(f.qty), "liquidity": f.liquidity,
                      "fee": str(f.fee)})
    orders = []
    for row in result.order_trace:
        out = dict(row)
        sym = out.get("symbol")
        inst = insts.get(sym) if sym else None
        if inst is None:
            oid = out.get("order_id", "")
            inst = next((i for s, i in insts.items() if f"{s}-" in oid), None)
        if inst is not None:
            if "price" in out:
                out["price"] = inst.ticks_to_px(out["price"])
            if "qty" in out:
                out["qty"] = inst.lots_to_qty(out["qty"])
        if "side" in out:
            out["side"] = "buy" if out["side"] > 0 else "sell"
        orders.append(out)
    paths = [folder / "fills.jsonl", folder / "orders.jsonl"]
    artifacts.write_bytes(paths[0], artifacts.dumps_jsonl(fills))
    artifacts.write_bytes(paths[1], artifacts.dumps_jsonl(orders))
    return paths


REPORT_SCHEMAS = ("mmkit.backtest_report/v1", "mmkit.sim_report/v1")
_REPORT_SHAPE: dict[str, type] = {"meta": dict, "verdict": str, "run": dict, "data": dict, "engine": dict,
                                  "stats": dict, "per_symbol": dict, "gates": list}
_REPORT_FIELDS = {"meta": ("generated_at", "git_sha", "cfg_hash", "seed"),
                  "data": ("start", "end", "duration_s", "events")}


def read_report(path: str) -> dict[str, Any]:
    """A saved backtest or sim report, checked enough to render (``E_REPORT_INVALID`` if not)."""
    try:
        obj = artifacts.read_control_file(path, "json", max_bytes=16 << 20)
    except MmkitError as exc:
        if exc.code == "E_CTRL_MISSING":
            raise MmkitError("E_IO_MISSING", f"{path}: no such file") from exc
        raise MmkitError("E_REPORT_INVALID", exc.message) from exc

    def bad(why: str) -> MmkitError:
        return MmkitError("E_REPORT_INVALID", f"{path}: {why}")

    if not isinstance(obj, dict):
        raise bad("not a JSON object")
    if obj.get("schema") not in REPORT_SCHEMAS:
        raise bad(f"schema is {obj.get('schema')!r}, expected one of {', '.join(REPORT_SCHEMAS)}")
    for key, typ in _REPORT_SHAPE.items():
        if not isinstance(obj.get(key), typ):
            raise bad(f"{key!r} is missing or not a {'list' if typ is list else 'JSON ' + typ.__name__}")
    for key, names in _REPORT_FIELDS.items():
        missing = [n for n in names if n not in obj[key]]
        if missing:
            raise bad(f"{key} lacks {', '.join(missing)}")
    for g in obj["gates"]:
        if not isinstance(g, dict) or not {"name", "value", "op", "threshold", "passed"} <= set(g):
            raise bad("a gate lacks name, value, op, threshold or passed")
    try:
        render_markdown(obj)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise bad(f"cannot be rendered ({type(exc).__name__}: {exc})") from exc
    return obj


def write_outcome(outcome: BacktestOutcome, json_out: str, md_out: str, trace: str | Path | None) -> None:
    """Write a run's artifacts: traces, then the Markdown, then the JSON report last, so an
    interrupted write never leaves a JSON report without its companions."""
    if trace is not None:
        write_traces(outcome.result, trace)
    artifacts.write_text(md_out, render_markdown(outcome.report))
    artifacts.write_json(json_out, outcome.report)


def render_markdown(report: dict[str, Any]) -> str:
    """BACKTEST_REPORT.md from the JSON: fixed-width ASCII tables, numbers as %.6f."""
    title = "Backtest report" if report["schema"].startswith("mmkit.backtest") else "Sim report"
    meta, run, data = report["meta"], report["run"], report["data"]
    lines = [f"# {title}", "",
             f"verdict: {report['verdict']}", f"generated_at: {meta['generated_at']}", f"git_sha: {meta['git_sha']}",
             f"cfg_hash: {meta['cfg_hash']}", f"seed: {meta['seed']}",
             f"window: {data['start']} .. {data['end']} ({data['duration_s']:.6f} s, {data['events']} events)", "",
             "## Run", ""]
    lines += _table(["key", "value"], [[k, _cell(v)] for k, v in sorted(run.items()) if k != "calibration"])
    lines += ["", "## Statistics", ""]
    stats = report["stats"]  # the documented order, whatever order a parsed JSON has
    keys = [k for k in STATS_KEYS if k in stats] + sorted(k for k in stats if k not in STATS_KEYS)
    lines += _table(["metric", "value"], [[k, _cell(stats[k])] for k in keys])
    lines += ["", "## Gates", ""]
    lines += _table(["gate", "value", "op", "threshold", "verdict"],
                    [[g["name"], _cell(g["value"]), g["op"], _cell(g["threshold"]), "PASS" if g["passed"] else "FAIL"]
                     for g in report["gates"]])
    lines += ["", "## Engine", ""]
    lines += _table(["counter", "value"], [[k, _cell(v)] for k, v in sorted(report["engine"].items())])
    return "\n".join(lines) + "\n"


def _cell(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.6f}"
    return "-" if v is None else str(v)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)] if rows else [len(h) for h in header]
    fmt = "| " + " | ".join(f"{{:<{w}}}" for w in widths) + " |"
    out = [fmt.format(*header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [fmt.format(*[str(c) for c in r]) for r in rows]
    return out


__all__ = ["BacktestRequest", "BacktestOutcome", "run_backtest", "render_markdown", "write_traces", "read_report",
           "load_calibration", "build_engine", "build_fillsim", "MODES", "read_all_events", "scan_events",
           "run_backtest_on_events"]
