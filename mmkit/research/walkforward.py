"""Walk-forward tuning: search each rolling train window, judge the pick out of sample.

A market maker tunes on history and must not fool itself, so parameters are only ever
judged on data they were not chosen on:

1. **Splits.**  The recording is cut into rolling ``(train, validate)`` window pairs, by
   time (``--train-days|hours|minutes``, ``--validate-hours|minutes``, ``--step-hours|minutes``
   defaulting to the validate length, inside ``--start``/``--end``) or by event count
   (``--train N --test N``, stepping by the test length).  Windows are half-open
   ``[start_ns, end_ns)`` in exchange time; a window starting mid-recording is warmed up
   with the order book built from the events before it (``trials.py``).
2. **Search.**  Each split's train window is searched over the grid (cartesian product) or
   over ``--trials`` seeded random draws (split ``i`` draws with its own seed derived from
   ``--seed`` and ``i``); the best candidate maximizes the objective
   ``net_pnl_usd - lambda_cvar * |cvar95_usd|`` (ties: the earlier candidate).
3. **Validation.**  Every distinct split best is replayed on the validation window of the
   split where it was first picked and of every later split: windows it could not have
   seen.  A split is *skipped* (listed with its reasons, left out of every aggregate) when
   a window is empty, its validation window is shorter than ``--min-val-minutes``, every
   train trial failed, or its own best made fewer than ``--min-fills`` fills out of
   sample.
4. **Champion.**  The candidate with the best objective over its usable validation windows,
   ``avg(net_pnl_usd) - lambda_cvar * |avg(cvar95_usd)|``, is the champion; the gates
   (``--gate-min-hit``, ``--gate-min-maker``, ``--gate-max-cvar``, ``--gate-min-pnl``) judge
   its aggregated metrics.  ``walkforward`` in the summary is the classic walk-forward
   estimate: each split's own best on its own validation window, averaged.

Every trial is a pure ``trials.backtest_trial`` run through an executor with a resumable
trial store; all results are sorted by trial id and every number is rounded to
``--round-dp`` before it is compared or written, so the same ``--seed`` gives
byte-identical ``champion.json`` and ``walkforward_summary.json`` whichever executor ran
the trials.  JSON holds base units (USD, 0-1 fractions, ns, ms); percent and bps appear
only in REPORT.md column headers.
"""

from __future__ import annotations

import hashlib
import os
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from mmkit import artifacts
from mmkit.clock import iso_from_ns
from mmkit.config import LoadedConfig
from mmkit.core.stats import GateSpec, evaluate_gates
from mmkit.errors import EXIT_USAGE, MmkitError
from mmkit.research.backtest import _cell, _table
from mmkit.research.executors import Executor, Trial, TrialResult, TrialStore, trial_key
from mmkit.research.sweep import METHODS, check_grid, expand, read_grid, validate_combos
from mmkit.research.trials import TRIAL_FN, LoadedEvents, load_base_config, load_events

NS_PER_MIN = 60_000_000_000
UNIT_NS = {"days": 24 * 60 * NS_PER_MIN, "hours": 60 * NS_PER_MIN, "minutes": NS_PER_MIN}
MAX_SPLITS = 10_000
STORE_NAME = "trials.jsonl"
OBJECTIVE = "avg(net_pnl_usd) - lambda_cvar * |avg(cvar95_usd)|"
METRICS = ("net_pnl_usd", "cvar95_usd", "hit_rate", "maker_share", "fills", "turnover_usd", "sharpe",
           "max_drawdown_usd", "order_age_p95_ms", "events")
"""Per-window metrics kept from a trial, in base units (``maker_share`` is a 0-1 fraction)."""

OnResult = Callable[[TrialResult], None]
Phase = Callable[[str, Sequence[Trial]], list[TrialResult]]


# ----------------------------------------------------------------------------- the request
@dataclass(frozen=True)
class WfRequest:
    """One walk-forward run, as the user asked for it (recorded in meta and the repro line)."""

    ticks: tuple[str, ...]
    config: str
    grid: str | None = None
    method: str = "grid"
    trials: int | None = None
    seed: int = 0
    train_days: float | None = None
    train_hours: float | None = None
    train_minutes: float | None = None
    validate_hours: float | None = None
    validate_minutes: float | None = None
    step_hours: float | None = None
    step_minutes: float | None = None
    start: str | None = None
    end: str | None = None
    train: int | None = None
    test: int | None = None
    lambda_cvar: float = 0.2
    gate_min_hit: float = 0.6
    gate_min_maker: float = 0.7
    gate_max_cvar: float = 1000.0
    gate_min_pnl: float = 100.0
    min_fills: int = 1
    min_val_minutes: float = 0.0
    round_dp: int = 6
    out: str = "artifacts/wf"
    fmt: str | None = None
    symbol: str | None = None
    venue: str | None = None

    def repro(self) -> str:
        """The exact command that reproduces this run (every option that differs from the default)."""
        words = ["mmkit", "wf"]
        for t in self.ticks:
            words += ["--ticks", t]
        words += ["--config", self.config]
        for f in fields(self):
            if f.name in ("ticks", "config"):
                continue
            value = getattr(self, f.name)
            if f.name in ("seed", "out") or value != f.default:
                words += ["--from" if f.name == "fmt" else "--" + f.name.replace("_", "-"), str(value)]
        return " ".join(shlex.quote(w) for w in words)


def _usage(message: str) -> MmkitError:
    return MmkitError("E_USAGE", message, EXIT_USAGE)


def _span(req: WfRequest, what: str, units: Sequence[str]) -> int | None:
    """``--<what>-<unit>`` in ns: at most one unit may be given; > 0."""
    given = [(u, getattr(req, f"{what}_{u}")) for u in units if getattr(req, f"{what}_{u}") is not None]
    if len(given) > 1:
        raise _usage(f"give one of {', '.join(f'--{what}-{u}' for u, _ in given)}, not several")
    if not given:
        return None
    unit, value = given[0]
    try:
        ns = int(Decimal(repr(float(value))) * UNIT_NS[unit])
    except (InvalidOperation, ValueError, OverflowError) as exc:
        raise _usage(f"--{what}-{unit} must be a number, got {value!r}") from exc
    if ns <= 0:
        raise _usage(f"--{what}-{unit} must be > 0, got {value}")
    return ns


def parse_time(text: str, flag: str) -> int:
    """``--start``/``--end``: ISO 8601 (``2024-07-18T23:58:00Z``; no zone = UTC) or integer ns."""
    s = text.strip()
    if s.isascii() and s.isdigit():
        return int(s)
    try:
        dt = datetime.fromisoformat(s[:-1] + "+00:00" if s.endswith(("Z", "z")) else s)
    except ValueError as exc:
        raise MmkitError("E_WF_BAD_TIME", f"{flag} {text!r}: expected ISO 8601 UTC like 2024-07-18T23:58:00Z "
                                          "or integer nanoseconds") from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    delta = dt - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def check_request(req: WfRequest) -> None:
    """Option checks that need no file: refused before anything is read."""
    if req.method not in METHODS:
        raise _usage(f"--method must be one of {', '.join(METHODS)}, got {req.method!r}")
    if req.trials is not None and req.trials < 1:
        raise _usage(f"--trials must be >= 1, got {req.trials}")
    if req.method == "random" and req.grid is None:
        raise _usage("--method random draws from a grid file: give --grid")
    if "-" in req.ticks:
        raise _usage("a walk-forward replays its input many times: give files, not '-'")
    if not 0 <= req.round_dp <= 12:
        raise _usage(f"--round-dp must be in 0..12, got {req.round_dp}")
    for name in ("lambda_cvar", "gate_max_cvar", "min_val_minutes"):
        if getattr(req, name) < 0:
            raise _usage(f"--{name.replace('_', '-')} must be >= 0, got {getattr(req, name)}")
    if req.min_fills < 0:
        raise _usage(f"--min-fills must be >= 0, got {req.min_fills}")
    by_time = any(getattr(req, f.name) is not None for f in fields(req)
                  if f.name.startswith(("train_", "validate_", "step_")))
    by_events = req.train is not None or req.test is not None
    if by_time and by_events:
        raise _usage("split by time (--train-hours ...) or by events (--train N --test N), not both")
    if by_events:
        if req.train is None or req.test is None or req.train < 1 or req.test < 1:
            raise _usage("splits by events need --train N and --test N, both >= 1")
        if req.start is not None or req.end is not None:
            raise _usage("--start/--end bound time splits; with --train/--test events they do not apply")
        return
    train = _span(req, "train", ("days", "hours", "minutes"))
    validate = _span(req, "validate", ("hours", "minutes"))
    _span(req, "step", ("hours", "minutes"))
    if train is None or validate is None:
        raise _usage("give the windows: --train-days|--train-hours|--train-minutes and --validate-hours|"
                     "--validate-minutes (or --train N --test N events)")
    lo = parse_time(req.start, "--start") if req.start is not None else None
    hi = parse_time(req.end, "--end") if req.end is not None else None
    if lo is not None and hi is not None:
        if lo >= hi:
            raise MmkitError("E_WF_RANGE", f"--start {req.start} is not before --end {req.end}")


# ----------------------------------------------------------------------------- windows and splits
@dataclass(frozen=True)
class Window:
    """Events ``[first, stop)`` of the recording, spanning ``[start_ns, end_ns)``."""

    start_ns: int
    end_ns: int
    first: int
    stop: int

    @property
    def events(self) -> int:
        return self.stop - self.first

    @property
    def minutes(self) -> float:
        return (self.end_ns - self.start_ns) / NS_PER_MIN

    def as_dict(self) -> dict[str, Any]:
        return {"start": iso_from_ns(self.start_ns), "end": iso_from_ns(self.end_ns), "start_ns": self.start_ns,
                "end_ns": self.end_ns, "first_event": self.first, "stop_event": self.stop, "events": self.events}


@dataclass
class Split:
    """One train/validate pair and what became of it."""

    index: int
    train: Window
    validate: Window
    seed: int
    candidates: list[dict[str, Any]] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    best: int | None = None
    validation: dict[str, Any] | None = None

    @property
    def usable(self) -> bool:
        return not self.reasons

    @property
    def pick(self) -> dict[str, Any] | None:
        """The best candidate's params (None before the search, or when every trial failed)."""
        return None if self.best is None else self.candidates[self.best]


def split_seed(seed: int, index: int) -> int:
    """The seed of split ``index``'s random draws: independent streams, fixed by ``--seed``."""
    digest = hashlib.sha256(f"mmkit.wf:{seed}:{index}".encode("ascii")).digest()
    return int.from_bytes(digest[:6], "big")


def _fmt_min(ns: int) -> str:
    return f"{ns / NS_PER_MIN:g} min"


def plan_windows(req: WfRequest, data: LoadedEvents) -> tuple[str, list[tuple[Window, Window]], Window]:
    """The mode (``time`` or ``events``), the window pairs and the range they cover."""
    if data.n_events == 0:
        raise MmkitError("E_DATA_EMPTY", f"{', '.join(req.ticks)}: no market events in the input")
    last_end = data.last_ts + 1
    if req.train is not None and req.test is not None:
        def at(i: int) -> int:
            return data.events[i].ts if i < data.n_events else last_end

        def ewin(i: int, j: int) -> Window:
            return Window(at(i), max(at(j), at(i) + 1) if j > i else at(i), i, j)

        pairs, k = [], 0
        while k * req.test + req.train + req.test <= data.n_events:
            base = k * req.test
            pairs.append((ewin(base, base + req.train), ewin(base + req.train, base + req.train + req.test)))
            k += 1
            if k > MAX_SPLITS:
                raise MmkitError("E_WF_TOO_MANY_SPLITS", f"more than {MAX_SPLITS} splits; use a larger --test")
        if not pairs:
            raise MmkitError("E_WF_WINDOW", f"--train {req.train} + --test {req.test} events do not fit the "
                                            f"{data.n_events} events of the input; use smaller windows")
        return "events", pairs, Window(data.first_ts, last_end, 0, data.n_events)
    train = _span(req, "train", ("days", "hours", "minutes"))
    validate = _span(req, "validate", ("hours", "minutes"))
    step = _span(req, "step", ("hours", "minutes")) or validate
    assert train is not None and validate is not None  # check_request
    lo = data.first_ts if req.start is None else parse_time(req.start, "--start")
    hi = last_end if req.end is None else parse_time(req.end, "--end")
    span = f"{iso_from_ns(data.first_ts)} .. {iso_from_ns(data.last_ts)}"
    if lo > data.last_ts or hi <= data.first_ts:
        raise MmkitError("E_WF_WINDOW", f"the range {iso_from_ns(lo)} .. {iso_from_ns(hi)} of --start/--end lies "
                                        f"outside the data ({span})")
    if lo >= hi:
        raise MmkitError("E_WF_RANGE", f"--start {iso_from_ns(lo)} is not before --end {iso_from_ns(hi)}")
    lo, hi = max(lo, data.first_ts), min(hi, last_end)

    def twin(a: int, b: int) -> Window:
        i, j = data.index_window(a, b)
        return Window(a, b, i, j)

    pairs, k = [], 0
    while lo + k * step + train + validate <= hi:
        a = lo + k * step
        pairs.append((twin(a, a + train), twin(a + train, a + train + validate)))
        k += 1
        if k > MAX_SPLITS:
            raise MmkitError("E_WF_TOO_MANY_SPLITS", f"more than {MAX_SPLITS} splits; use a larger step")
    if not pairs:
        raise MmkitError("E_WF_WINDOW", f"train {_fmt_min(train)} + validate {_fmt_min(validate)} do not fit the "
                                        f"{_fmt_min(hi - lo)} of data in range ({iso_from_ns(lo)} .. "
                                        f"{iso_from_ns(hi)}); shorten the windows or widen --start/--end")
    return "time", pairs, Window(lo, hi, *data.index_window(lo, hi))


# ----------------------------------------------------------------------------- the plan
@dataclass
class WfPlan:
    """Everything validated and every split laid out; no trial has run yet."""

    request: WfRequest
    base: LoadedConfig
    grid: dict[str, Any] | None
    data: LoadedEvents
    mode: str
    range: Window
    splits: list[Split]
    common: dict[str, Any]
    inputs: tuple[tuple[str, str], ...]
    cfg_hash: str
    meta_inputs: list[dict[str, str]]

    def train_trials(self) -> list[Trial]:
        out = []
        for s in self.splits:
            if s.usable:
                for c, combo in enumerate(s.candidates):
                    out.append(self._trial(f"s{s.index:04d}-t{c:05d}", combo, s.train))
        return out

    def _trial(self, trial_id: str, overrides: Mapping[str, Any], window: Window) -> Trial:
        where: dict[str, Any] = ({"event_window": {"start": window.first, "stop": window.stop}} if self.mode == "events"
                                 else {"window": {"start_ns": window.start_ns, "end_ns": window.end_ns}})
        return Trial(trial_id, TRIAL_FN, {**self.common, "overrides": dict(overrides), **where},
                     self.request.seed, self.inputs)


def plan_walkforward(req: WfRequest) -> WfPlan:
    """Validate everything that can be refused (options, grid keys and values, windows against
    the data), then lay out the splits.  Raises before any trial runs."""
    check_request(req)
    grid = None
    if req.grid is not None:
        grid = read_grid(req.grid)
        check_grid(grid, req.grid, req.method)
    base = load_base_config(req.config)
    ticks = [os.path.abspath(t) for t in req.ticks]
    for t, given in zip(ticks, req.ticks):
        if not os.path.isfile(t):
            raise MmkitError("E_IO_MISSING", f"{given}: no such market data file")
    data = load_events(ticks, fmt=req.fmt, symbol=req.symbol, venue=req.venue)
    mode, pairs, rng = plan_windows(req, data)
    splits = []
    for i, (train, validate) in enumerate(pairs):
        seed = split_seed(req.seed, i)
        combos = [{}] if grid is None else expand(grid, req.method, req.trials, seed if req.method == "random" else req.seed)
        split = Split(i, train, validate, seed, combos)
        if train.events == 0:
            split.reasons.append("the train window holds no events")
        if validate.events == 0:
            split.reasons.append("the validation window holds no events")
        if validate.minutes < req.min_val_minutes:
            split.reasons.append(f"the validation window is {validate.minutes:g} min, shorter than "
                                 f"--min-val-minutes {req.min_val_minutes:g}")
        splits.append(split)
    if grid is not None:
        everything: dict[str, dict[str, Any]] = {}
        for s in splits:
            for combo in s.candidates:
                everything.setdefault(artifacts.canonical_json(combo), combo)
        validate_combos(base, list(everything.values()), req.grid)
    cfg = os.path.abspath(req.config)
    inputs = tuple((p, artifacts.sha256_file(p)) for p in (*ticks, cfg))
    given = [*req.ticks, req.config] + ([req.grid] if req.grid else [])
    meta_inputs = [{"path": g, "sha256": h} for g, (_, h) in zip(given, inputs)]
    if req.grid:
        meta_inputs.append(artifacts.input_record(req.grid))
    common: dict[str, Any] = {"config": cfg, "ticks": ticks}
    common.update({k: v for k, v in (("fmt", req.fmt), ("symbol", req.symbol), ("venue", req.venue)) if v is not None})
    return WfPlan(req, base, grid, data, mode, rng, splits, common, inputs, base.cfg_hash, meta_inputs)


# ----------------------------------------------------------------------------- metrics
def _round(x: float, dp: int) -> float:
    v = round(float(x), dp)
    return 0.0 if v == 0 else v


def window_metrics(result: Mapping[str, Any], lam: float, dp: int) -> dict[str, Any]:
    """A trial's result as this module's base-unit metrics (rounded) plus its objective."""
    out: dict[str, Any] = {}
    for k in METRICS:
        if k == "maker_share":
            out[k] = _round(float(result.get("maker_share_pct", 0.0)) / 100.0, dp)
        elif k in ("fills", "events"):
            out[k] = int(result.get(k, 0))
        else:
            out[k] = _round(result.get(k, 0.0), dp)
    out["objective"] = _round(out["net_pnl_usd"] - lam * abs(out["cvar95_usd"]), dp)
    return out


def aggregate(windows: Sequence[Mapping[str, Any]], lam: float, dp: int) -> dict[str, Any]:
    """Metrics over several windows: PnL, CVaR95 and Sharpe averaged per window, hit rate and
    maker share averaged weighted by fills, fills/turnover/events summed, drawdown the worst."""
    n = len(windows)
    fills = sum(w["fills"] for w in windows)

    def mean(k: str) -> float:
        return _round(sum(w[k] for w in windows) / n, dp) if n else 0.0

    def by_fills(k: str) -> float:
        return _round(sum(w[k] * w["fills"] for w in windows) / fills, dp) if fills else 0.0

    out = {"windows": n, "net_pnl_usd": mean("net_pnl_usd"), "cvar95_usd": mean("cvar95_usd"),
           "hit_rate": by_fills("hit_rate"), "maker_share": by_fills("maker_share"), "fills": fills,
           "turnover_usd": _round(sum(w["turnover_usd"] for w in windows), dp), "sharpe": mean("sharpe"),
           "max_drawdown_usd": max((w["max_drawdown_usd"] for w in windows), default=0.0),
           "order_age_p95_ms": max((w["order_age_p95_ms"] for w in windows), default=0.0),
           "events": sum(w["events"] for w in windows)}
    out["objective"] = _round(out["net_pnl_usd"] - lam * abs(out["cvar95_usd"]), dp)
    return out


GATES = (("--gate-min-hit", "gate_min_hit", "hit_rate", ">=", 1.0),
         ("--gate-min-maker", "gate_min_maker", "maker_share", ">=", 1.0),
         ("--gate-max-cvar", "gate_max_cvar", "cvar95_usd", ">=", -1.0),
         ("--gate-min-pnl", "gate_min_pnl", "net_pnl_usd", ">=", 1.0))
"""(flag, request field, metric, op, sign): ``--gate-max-cvar X`` is the loss limit ``cvar95_usd >= -X``."""


def judge(req: WfRequest, metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each gate with the champion's value, the threshold and PASS/FAIL (core.stats.evaluate_gates)."""
    specs = [GateSpec(metric, op, sign * float(getattr(req, name)) or 0.0) for _, name, metric, op, sign in GATES]
    results = evaluate_gates({k: v for k, v in metrics.items() if isinstance(v, (int, float))}, specs)
    return [{"gate": flag, "metric": r.name, "value": r.value, "op": r.op, "threshold": r.threshold,
             "passed": r.passed} for (flag, *_), r in zip(GATES, results)]


# ----------------------------------------------------------------------------- running
@dataclass
class Candidate:
    """A distinct split best: where it was first picked and how it did out of sample."""

    index: int
    params: dict[str, Any]
    first_split: int
    windows: list[int] = field(default_factory=list)
    metrics: dict[str, Any] | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"candidate": self.index, "params": self.params, "first_split": self.first_split,
                "windows": self.windows, "metrics": self.metrics, "error": self.error}


@dataclass
class WfOutcome:
    plan: WfPlan
    candidates: list[Candidate]
    champion: Candidate | None
    walkforward: dict[str, Any] | None
    gates: list[dict[str, Any]]

    @property
    def verdict(self) -> str:
        return "PASS" if self.champion is not None and all(g["passed"] for g in self.gates) else "FAIL"


def run_walkforward(plan: WfPlan, run_phase: Phase) -> WfOutcome:
    """Search every split's train window, validate the picks, choose and judge the champion.

    ``run_phase(label, trials)`` runs a batch on an executor and returns every result sorted
    by trial id (see ``executor_phase``)."""
    req = plan.request
    _search(plan, run_phase("train", plan.train_trials()))
    candidates: list[Candidate] = []
    ident: dict[str, Candidate] = {}
    for s in plan.splits:
        if s.usable and s.pick is not None and _ident(s.pick) not in ident:
            ident[_ident(s.pick)] = Candidate(len(candidates), s.pick, s.index)
            candidates.append(ident[_ident(s.pick)])
    val_trials = [plan._trial(_val_id(s.index, k), k.params, s.validate)
                  for k in candidates for s in plan.splits if s.usable and s.index >= k.first_split]
    vals = {r.trial_id: r for r in run_phase("validate", val_trials)}
    for s in plan.splits:
        if s.usable and s.pick is not None:
            _own_validation(s, vals[_val_id(s.index, ident[_ident(s.pick)])], req)
    usable = [s for s in plan.splits if s.usable]
    for k in candidates:
        picked = [s.index for s in usable if s.pick is not None and ident[_ident(s.pick)] is k]
        _judge_candidate(k, picked, [s.index for s in usable], vals, req)
    ranked = [(k, k.metrics) for k in candidates if k.metrics is not None]
    best = max(ranked, key=lambda km: (km[1]["objective"], -km[0].first_split, -km[0].index), default=None)
    walkforward = aggregate([s.validation for s in usable if s.validation], req.lambda_cvar, req.round_dp) \
        if usable else None
    gates = judge(req, best[1]) if best is not None else []
    return WfOutcome(plan, candidates, best[0] if best is not None else None, walkforward, gates)


def _ident(params: Mapping[str, Any]) -> str:
    return artifacts.canonical_json(params)


def _val_id(split: int, k: Candidate) -> str:
    return f"v{split:04d}-c{k.index:04d}"


def _search(plan: WfPlan, results: Sequence[TrialResult]) -> None:
    """Record every train trial of every live split and pick its best (or skip it)."""
    req = plan.request
    by_id = {r.trial_id: r for r in results}
    if by_id and all(r.status != "ok" for r in by_id.values()):
        raise MmkitError("E_WF_TRIALS_FAILED", f"every train trial failed; the first: {results[0].error}")
    for s in plan.splits:
        if not s.usable:
            continue
        for c, combo in enumerate(s.candidates):
            res = by_id[f"s{s.index:04d}-t{c:05d}"]
            ok = res.status == "ok" and res.result is not None
            s.rows.append({"candidate": c, "params": combo, "status": res.status, "error": res.error,
                           "metrics": window_metrics(res.result, req.lambda_cvar, req.round_dp)
                           if ok and res.result is not None else None})
        scored = [(r["metrics"]["objective"], -r["candidate"]) for r in s.rows if r["metrics"] is not None]
        if not scored:
            s.reasons.append(f"every train trial failed (first error: {s.rows[0]['error']})")
        else:
            s.best = -max(scored)[1]


def _own_validation(s: Split, res: TrialResult, req: WfRequest) -> None:
    """The split's own best on its own validation window; too few fills skips the split."""
    if res.status != "ok" or res.result is None:
        s.reasons.append(f"the validation trial failed: {res.error}")
        return
    s.validation = window_metrics(res.result, req.lambda_cvar, req.round_dp)
    if s.validation["fills"] < req.min_fills:
        s.reasons.append(f"the validation made {s.validation['fills']} fills, fewer than --min-fills {req.min_fills}")


def _judge_candidate(k: Candidate, picked: list[int], usable: list[int], vals: Mapping[str, TrialResult],
                     req: WfRequest) -> None:
    """A candidate's metrics over the usable validation windows from its first usable pick on."""
    if not picked:
        k.error = "every split that picked it was skipped"
        return
    k.first_split = picked[0]
    k.windows = [i for i in usable if i >= k.first_split]
    windows = []
    for i in k.windows:
        res = vals[_val_id(i, k)]
        if res.status != "ok" or res.result is None:
            k.error = f"validation trial {res.trial_id} failed: {res.error}"
            return
        windows.append(window_metrics(res.result, req.lambda_cvar, req.round_dp))
    k.metrics = aggregate(windows, req.lambda_cvar, req.round_dp)


def executor_phase(executor: Executor, store: TrialStore,
                   progress: Callable[[str, int, int], Callable[[TrialResult], None]] | None = None) -> Phase:
    """A ``run_phase`` that runs trials on ``executor`` with the resumable ``store``.

    ``progress(label, total, already_done)`` may return the ``on_result`` callback of a
    progress bar."""
    def run(label: str, trials: Sequence[Trial]) -> list[TrialResult]:
        done = store.done()
        stored = sum(1 for t in trials if trial_key(t, store.code_version) in done)
        on_result = progress(label, len(trials), stored) if progress is not None else None
        return executor.run(trials, store, on_result)
    return run


# ----------------------------------------------------------------------------- artifacts
def _meta(plan: WfPlan) -> dict[str, Any]:
    return artifacts.build_meta(cfg_hash=plan.cfg_hash, seed=plan.request.seed, inputs=plan.meta_inputs)


def _split_body(plan: WfPlan, s: Split) -> dict[str, Any]:
    best = s.rows[s.best] if s.best is not None else None
    return {
        "split": s.index, "status": "ok" if s.usable else "skipped", "reasons": list(s.reasons),
        "method": plan.request.method, "search_seed": s.seed,
        "train": s.train.as_dict(), "validate": s.validate.as_dict(),
        "trials": s.rows,
        "best": None if best is None else {"candidate": best["candidate"], "params": best["params"],
                                           "train": best["metrics"]},
        "validation": s.validation,
    }


def split_artifact(outcome: WfOutcome, s: Split) -> dict[str, Any]:
    return artifacts.artifact("wf_split_best", _split_body(outcome.plan, s), _meta(outcome.plan))


def _run_block(plan: WfPlan) -> dict[str, Any]:
    req = plan.request
    if plan.mode == "events":
        windows = {"train_events": req.train, "test_events": req.test, "step_events": req.test}
    else:
        train = _span(req, "train", ("days", "hours", "minutes"))
        validate = _span(req, "validate", ("hours", "minutes"))
        windows = {"train_ns": train, "validate_ns": validate,
                   "step_ns": _span(req, "step", ("hours", "minutes")) or validate}
    return {"mode": plan.mode, **windows, "range": plan.range.as_dict(), "method": req.method, "trials": req.trials,
            "seed": req.seed, "lambda_cvar": req.lambda_cvar, "min_fills": req.min_fills,
            "min_val_minutes": req.min_val_minutes, "round_dp": req.round_dp, "objective": OBJECTIVE}


def _champion_block(k: Candidate) -> dict[str, Any]:
    return {"candidate": k.index, "params": k.params, "first_split": k.first_split, "windows": k.windows,
            "metrics": k.metrics}


def summary_artifact(outcome: WfOutcome) -> dict[str, Any]:
    plan = outcome.plan
    splits = []
    for s in plan.splits:
        best = s.rows[s.best] if s.best is not None else None
        splits.append({"split": s.index, "status": "ok" if s.usable else "skipped", "reasons": list(s.reasons),
                       "train": s.train.as_dict(), "validate": s.validate.as_dict(), "trials": len(s.candidates),
                       "best_params": None if best is None else best["params"],
                       "train_objective": None if best is None else best["metrics"]["objective"],
                       "validation": s.validation})
    body = {
        "verdict": outcome.verdict,
        "run": _run_block(plan),
        "grid": plan.grid,
        "splits": splits,
        "skipped_splits": [{"split": s.index, "reasons": list(s.reasons)} for s in plan.splits if not s.usable],
        "walkforward": outcome.walkforward,
        "candidates": [k.as_dict() for k in outcome.candidates],
        "champion": None if outcome.champion is None else _champion_block(outcome.champion),
        "gates": outcome.gates,
    }
    return artifacts.artifact("walkforward_summary", body, _meta(plan))


def champion_artifact(outcome: WfOutcome) -> dict[str, Any]:
    k = outcome.champion
    assert k is not None
    body = {"verdict": outcome.verdict, **_champion_block(k), "lambda_cvar": outcome.plan.request.lambda_cvar,
            "objective_formula": OBJECTIVE, "gates": outcome.gates}
    return artifacts.artifact("champion", body, _meta(outcome.plan))


def _pct(v: Any) -> str:
    return _cell(float(v) * 100.0) if isinstance(v, (int, float)) else "-"


def _bps(m: Mapping[str, Any]) -> str:
    return _cell(m["net_pnl_usd"] * m["windows"] / m["turnover_usd"] * 10_000.0) if m.get("turnover_usd") else "-"


def _metrics_rows(rows: Sequence[tuple[str, Mapping[str, Any]]]) -> list[str]:
    header = ["", "windows", "net PnL per window (USD)", "CVaR95 (USD)", "objective (USD)", "net (bps)",
              "hit rate (%)", "maker share (%)", "fills", "turnover (USD)", "max drawdown (USD)"]
    return _table(header, [[name, str(m["windows"]), _cell(m["net_pnl_usd"]), _cell(m["cvar95_usd"]),
                            _cell(m["objective"]), _bps(m), _pct(m["hit_rate"]), _pct(m["maker_share"]),
                            str(m["fills"]), _cell(m["turnover_usd"]), _cell(m["max_drawdown_usd"])]
                           for name, m in rows])


def render_report(summary: Mapping[str, Any], repro: str) -> str:
    """REPORT.md from the summary JSON (nothing recomputed but unit conversions)."""
    meta, run = summary["meta"], summary["run"]
    n = len(summary["splits"])
    skipped = len(summary["skipped_splits"])
    lines = ["# Walk-forward report", "",
             f"verdict: {summary['verdict']}", f"generated_at: {meta['generated_at']}", f"git_sha: {meta['git_sha']}",
             f"cfg_hash: {meta['cfg_hash']}", f"seed: {meta['seed']}",
             f"inputs: {', '.join(i['path'] for i in meta['inputs'])}",
             f"method: {run['method']}" + (f" (--trials {run['trials']})" if run["trials"] else ""),
             f"splits: {n} (used {n - skipped}, skipped {skipped}), by {run['mode']}",
             f"objective: {run['objective']}, lambda_cvar = {run['lambda_cvar']}", "",
             "## Windows (UTC)", ""]
    rows = [[str(s["split"]), s["train"]["start"], s["train"]["end"], s["validate"]["start"], s["validate"]["end"],
             str(s["validate"]["events"]), s["status"], _cell(s["train_objective"]),
             _cell(s["validation"]["objective"]) if s["validation"] else "-"] for s in summary["splits"]]
    lines += _table(["split", "train start", "train end", "validate start", "validate end", "validate events",
                     "status", "train objective (USD)", "validate objective (USD)"], rows)
    if summary["skipped_splits"]:
        lines += ["", "## Skipped splits (left out of every aggregate)", ""]
        lines += _table(["split", "reasons"], [[str(s["split"]), "; ".join(s["reasons"]).replace("|", "/")]
                                                for s in summary["skipped_splits"]])
    lines += ["", "## Champion", ""]
    champ = summary["champion"]
    if champ is None:
        lines.append("No champion: every split was skipped or every candidate failed.")
    else:
        lines += [f"candidate {champ['candidate']}, first picked by split {champ['first_split']}, judged on "
                  f"validation windows {', '.join(str(w) for w in champ['windows'])}.", "", "Parameters:", "",
                  "```json", artifacts.canonical_json(champ["params"]), "```", "", "### Champion metrics", ""]
        rows2: list[tuple[str, Mapping[str, Any]]] = [("champion", champ["metrics"])]
        if summary["walkforward"]:
            rows2.append(("walk-forward (each split's own best)", summary["walkforward"]))
        lines += _metrics_rows(rows2)
    lines += ["", "## Gates", ""]
    if summary["gates"]:
        lines += _table(["gate", "metric", "value", "op", "threshold", "result"],
                        [[g["gate"], g["metric"], _cell(g["value"]), g["op"], _cell(g["threshold"]),
                          "PASS" if g["passed"] else "FAIL"] for g in summary["gates"]])
        lines += ["", "Values in base units (USD, 0-1 fractions), as in the JSON."]
    else:
        lines.append("FAIL: no champion to judge.")
    lines += ["", "## Reproduce", "", "```bash", repro, "```"]
    return "\n".join(lines) + "\n"


STALE = ("champion.json", "walkforward_summary.json", "REPORT.md")


def clear_previous(folder: str | os.PathLike[str]) -> None:
    """Remove the artifacts of an earlier run in ``folder`` (not the trial store), so a run
    that fails midway never leaves an old champion looking current."""
    root = Path(folder)
    names = list(STALE) + [p.name for p in root.glob("split_*_best.json")] if root.is_dir() else []
    for name in names:
        try:
            (root / name).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise MmkitError("E_IO_WRITE", f"cannot remove the stale {root / name}: {exc.strerror or exc}") from exc


def write_outputs(outcome: WfOutcome, folder: str | os.PathLike[str]) -> None:
    """split_<i>_best.json, walkforward_summary.json, REPORT.md, then champion.json last."""
    root = Path(folder)
    for s in outcome.plan.splits:
        artifacts.write_json(root / f"split_{s.index}_best.json", split_artifact(outcome, s))
    summary = summary_artifact(outcome)
    artifacts.write_json(root / "walkforward_summary.json", summary)
    artifacts.write_text(root / "REPORT.md", render_report(summary, outcome.plan.request.repro()))
    if outcome.champion is not None:
        artifacts.write_json(root / "champion.json", champion_artifact(outcome))


__all__ = ["WfRequest", "WfPlan", "WfOutcome", "Window", "Split", "Candidate", "plan_walkforward", "plan_windows",
           "check_request", "parse_time", "run_walkforward", "executor_phase", "window_metrics", "aggregate",
           "judge", "split_seed", "summary_artifact", "champion_artifact", "split_artifact", "render_report",
           "clear_previous", "write_outputs", "STORE_NAME", "OBJECTIVE"]
