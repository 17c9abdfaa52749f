"""Parameter sweeps: a grid (or seeded random draws) of config overrides, one backtest
trial each, aggregated into ``PARAM_SWEEP.json`` and rendered to Markdown.

A grid file maps dotted config keys to a list of values (``strategy.fixed.half_spread_ticks:
[2, 3, 4]``) or to a range ``{min, max}`` (random method; ``{min, max, step}`` also works
on a grid).  Everything that can be refused is refused before the first trial runs: an
unknown key (with a did-you-mean from the config layer), an empty axis, a value the
config rejects in any combination.  Trials are pure (``trials.backtest_trial``) and run on
any executor; results are sorted by trial id, so the artifact is byte-identical whichever
executor ran them and whether a trial ran now or came from the trial store.

SAFE means the trial passed every backtest gate of its (overridden) config;
``top3_by_net_bps_safe`` ranks the SAFE trials by ``net_bps`` (ties: trial id).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mmkit import artifacts, log
from mmkit.config import LoadedConfig, check_dotted_key
from mmkit.errors import ConfigError, MmkitError
from mmkit.research.backtest import _cell, _table
from mmkit.research.executors import Executor, Trial, TrialResult, TrialStore, trial_key
from mmkit.research.inputs import read_input
from mmkit.research.trials import TRIAL_FN, base_params, load_base_config, with_overrides

METHODS = ("grid", "random")
MAX_TRIALS = 100_000
RANDOM_DRAW_ATTEMPTS = 50
SWEEP_MAX_BYTES = 64 << 20
TOP_N = 3
TABLE_METRICS = ("net_bps", "net_pnl_usd", "taker_share_pct", "order_age_p95_ms", "fill_rate", "sharpe",
                 "max_drawdown_usd", "cvar95_usd", "fills")
RANGE_KEYS = frozenset({"min", "max", "step"})

Axis = list[Any] | dict[str, Any]


# ----------------------------------------------------------------------------- grid files
def _is_range(v: Any) -> bool:
    return isinstance(v, dict) and bool(v) and set(v) <= RANGE_KEYS and {"min", "max"} <= set(v)


def _flatten(node: Mapping[str, Any], prefix: str, out: dict[str, Any]) -> None:
    for key, value in node.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and not _is_range(value):
            _flatten(value, dotted, out)
        else:
            out[dotted] = value


def read_grid(path: str) -> dict[str, Axis]:
    """The grid file as ``{dotted key: list | {min, max[, step]}}`` (nested mappings are
    flattened; a top-level ``grid:`` wrapper is accepted).  Shape errors: ``E_SWEEP_BAD_GRID``."""
    raw = read_input(path, "yaml", "grid file")
    if raw is None:
        raw = {}
    if isinstance(raw, dict) and set(raw) == {"grid"} and isinstance(raw["grid"], dict):
        raw = raw["grid"]
    if not isinstance(raw, dict):
        raise MmkitError("E_SWEEP_BAD_GRID", f"{path}: a grid is a mapping of dotted config keys to lists of values")
    flat: dict[str, Any] = {}
    _flatten(raw, "", flat)
    grid: dict[str, Axis] = {}
    for key in sorted(flat):
        value = flat[key]
        if isinstance(value, list):
            grid[key] = value
        elif _is_range(value):
            grid[key] = _check_range(path, key, value)
        else:
            raise MmkitError("E_SWEEP_BAD_GRID", f"{path}: {key}: expected a list of values or {{min, max}}, "
                                                 f"got {type(value).__name__} {value!r}"[:300])
    return grid


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_range(path: str, key: str, rng: dict[str, Any]) -> dict[str, Any]:
    lo, hi, step = rng["min"], rng["max"], rng.get("step")
    if not (_number(lo) and _number(hi)) or lo > hi or (step is not None and (not _number(step) or step <= 0)):
        raise MmkitError("E_SWEEP_BAD_GRID", f"{path}: {key}: a range needs numbers min <= max (and step > 0), got {rng!r}")
    return dict(sorted(rng.items()))


def _stepped(rng: Mapping[str, Any]) -> list[Any]:
    lo, hi, step = rng["min"], rng["max"], rng["step"]
    ints = all(isinstance(v, int) for v in (lo, hi, step))
    n = int((hi - lo) / step + 1e-9) + 1
    return [lo + k * step if ints else round(lo + k * step, 9) for k in range(n)]


def check_grid(grid: Mapping[str, Axis], source: str, method: str) -> None:
    """Keys against the config schema (every unknown key at once, with did-you-mean) and
    the axes' shape for ``method``.  Raises before any trial runs."""
    if not grid:
        raise MmkitError("E_SWEEP_EMPTY_GRID", f"{source}: the grid has no parameters; map dotted config keys to "
                                               "lists, e.g. 'strategy.fixed.half_spread_ticks: [2, 3]'")
    unknown = [f"{key}: {msg}" for key in grid if (msg := check_dotted_key(key))]
    if unknown:
        raise MmkitError("E_SWEEP_UNKNOWN_KEY", f"{source}: " + "; ".join(unknown))
    for key, axis in grid.items():
        if isinstance(axis, list) and not axis:
            raise MmkitError("E_SWEEP_EMPTY_GRID", f"{source}: {key} has an empty list of values; nothing to sweep")
        if method == "grid" and isinstance(axis, dict) and "step" not in axis:
            raise MmkitError("E_SWEEP_BAD_GRID", f"{source}: {key} is a range {{min, max}}: use --method random, "
                                                 "or give it a step to enumerate it on a grid")


# ----------------------------------------------------------------------------- planning
def expand(grid: Mapping[str, Axis], method: str, trials: int | None, seed: int) -> list[dict[str, Any]]:
    """The override sets, in trial order.

    ``grid``: the cartesian product over the keys in sorted order (the last key varies
    fastest); ``trials`` caps it.  ``random``: ``trials`` distinct draws from
    ``random.Random(seed)``, keys in sorted order; a list draws one of its values, ``{min,
    max}`` draws uniformly (an integer when both bounds are; floats rounded to 6 dp)."""
    keys = sorted(grid)
    if method == "grid":
        axes = [grid[k] if isinstance(grid[k], list) else _stepped(grid[k]) for k in keys]
        total = 1
        for axis in axes:
            total *= len(axis)
        if total > MAX_TRIALS and (trials is None or trials > MAX_TRIALS):
            raise MmkitError("E_SWEEP_TOO_LARGE", f"the grid has {total} combinations, more than {MAX_TRIALS}; "
                                                  "shrink it or cap it with --trials")
        combos = itertools.islice(itertools.product(*axes), trials)
        return [dict(zip(keys, combo)) for combo in combos]
    if trials is None or trials < 1:
        raise MmkitError("E_USAGE", "--method random needs --trials N (N >= 1)", 64)
    if trials > MAX_TRIALS:
        raise MmkitError("E_SWEEP_TOO_LARGE", f"--trials {trials} is more than {MAX_TRIALS}")
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for _ in range(trials * RANDOM_DRAW_ATTEMPTS):
        combo = {k: _draw(rng, grid[k]) for k in keys}
        ident = artifacts.canonical_json(combo)
        if ident not in seen:
            seen.add(ident)
            out.append(combo)
            if len(out) == trials:
                break
    if len(out) < trials:
        log.warning("sweep_fewer_trials", requested=trials, distinct=len(out))
    return out


def _draw(rng: random.Random, axis: Axis) -> Any:
    if isinstance(axis, list):
        return axis[rng.randrange(len(axis))]
    if "step" in axis:
        values = _stepped(axis)
        return values[rng.randrange(len(values))]
    lo, hi = axis["min"], axis["max"]
    if isinstance(lo, int) and isinstance(hi, int):
        return rng.randint(lo, hi)
    return round(rng.uniform(float(lo), float(hi)), 6)


def validate_combos(base: LoadedConfig, combos: Sequence[Mapping[str, Any]], source: str) -> None:
    """Build the config of every combination (cheap, no data read): a value the config layer
    refuses stops the sweep before any trial runs (``E_SWEEP_BAD_VALUE``)."""
    checked: set[str] = set()
    for no, combo in enumerate(combos):
        ident = artifacts.canonical_json(combo)
        if ident in checked:
            continue
        checked.add(ident)
        try:
            with_overrides(base, combo)
        except ConfigError as exc:
            shown = ", ".join(f"{k}={v!r}" for k, v in combo.items())
            raise MmkitError("E_SWEEP_BAD_VALUE", f"{source}: trial {trial_id(no)} ({shown}): {exc.message}"[:600]) from exc


def trial_id(no: int) -> str:
    return f"t{no:04d}"


@dataclass(frozen=True)
class SweepRequest:
    """One sweep: inputs as the user gave them (recorded in meta) and the knobs."""

    ticks: tuple[str, ...]
    config: str
    grid_path: str
    method: str = "grid"
    trials: int | None = None
    seed: int = 0
    profile: str | None = None
    fmt: str | None = None
    symbol: str | None = None
    venue: str | None = None


@dataclass(frozen=True)
class SweepPlan:
    request: SweepRequest
    base: LoadedConfig
    grid: dict[str, Axis]
    combos: list[dict[str, Any]]
    trials: list[Trial]


def plan_sweep(req: SweepRequest) -> SweepPlan:
    """Read and validate everything, then the trials (no trial has run yet)."""
    if req.method not in METHODS:
        raise MmkitError("E_USAGE", f"--method must be one of {', '.join(METHODS)}, got {req.method!r}", 64)
    if req.trials is not None and req.trials < 1:
        raise MmkitError("E_USAGE", f"--trials must be >= 1, got {req.trials}", 64)
    if "-" in req.ticks:
        raise MmkitError("E_USAGE", "a sweep replays its input many times: give files, not '-'", 64)
    grid = read_grid(req.grid_path)
    check_grid(grid, req.grid_path, req.method)
    base = load_base_config(req.config, req.profile)
    combos = expand(grid, req.method, req.trials, req.seed)
    validate_combos(base, combos, req.grid_path)
    common, inputs = base_params(req.config, req.ticks, profile=req.profile, fmt=req.fmt, symbol=req.symbol,
                                 venue=req.venue)
    trials = [Trial(trial_id(no), TRIAL_FN, {**common, "overrides": combo}, req.seed, inputs)
              for no, combo in enumerate(combos)]
    return SweepPlan(req, base, grid, combos, trials)


def pending(plan: SweepPlan, store: TrialStore) -> int:
    """How many of the plan's trials the store does not hold yet."""
    done = store.done()
    return sum(1 for t in plan.trials if trial_key(t, store.code_version) not in done)


def run_sweep(plan: SweepPlan, executor: Executor, store: TrialStore,
              on_result: Callable[[TrialResult], None] | None = None) -> dict[str, Any]:
    """Run the plan's trials (skipping those in ``store``) and build ``PARAM_SWEEP.json``."""
    results = executor.run(plan.trials, store, on_result)
    return build_artifact(plan, results)


# ----------------------------------------------------------------------------- the artifact
def build_artifact(plan: SweepPlan, results: Sequence[TrialResult]) -> dict[str, Any]:
    req = plan.request
    combos = {t.trial_id: plan.combos[no] for no, t in enumerate(plan.trials)}
    rows = []
    for res in sorted(results, key=lambda r: r.trial_id):
        ok = res.status == "ok" and res.result is not None
        rows.append({"trial_id": res.trial_id, "params": combos[res.trial_id], "status": res.status,
                     "error": res.error, "safe": bool(ok and res.result and res.result.get("safe")),
                     "result": res.result if ok else None})
    g = plan.base.config.backtest.gates
    body = {
        "method": req.method,
        "seed": req.seed,
        "grid": plan.grid,
        "base": {"config": req.config, "cfg_hash": plan.base.cfg_hash, "profile": req.profile},
        "gates": [{"name": "net_bps", "op": ">=", "threshold": g.min_net_bps},
                  {"name": "taker_share_pct", "op": "<=", "threshold": g.max_taker_share_pct},
                  {"name": "order_age_p95_ms", "op": "<=", "threshold": g.max_order_age_p95_ms}],
        "summary": {"trials": len(rows), "ok": sum(r["status"] == "ok" for r in rows),
                    "failed": sum(r["status"] != "ok" for r in rows), "safe": sum(r["safe"] for r in rows)},
        "results": rows,
        "top3_by_net_bps_safe": top_safe(rows),
    }
    meta = artifacts.build_meta(cfg_hash=plan.base.cfg_hash, seed=req.seed,
                                inputs=[*req.ticks, req.config, req.grid_path])
    return artifacts.artifact("param_sweep", body, meta)


def top_safe(rows: Sequence[Mapping[str, Any]], n: int = TOP_N) -> list[dict[str, Any]]:
    """The ``n`` best SAFE trials by ``net_bps`` (descending; ties by trial id)."""
    safe = sorted((r for r in rows if r["safe"]), key=lambda r: (-r["result"]["net_bps"], r["trial_id"]))
    return [{"rank": k, "trial_id": r["trial_id"], "params": r["params"],
             **{m: r["result"][m] for m in TABLE_METRICS if m in r["result"]}}
            for k, r in enumerate(safe[:n], 1)]


def status(doc: Mapping[str, Any]) -> str:
    """``OK`` every trial ran, ``PARTIAL`` some failed, ``FAILED`` all failed."""
    s = doc["summary"]
    return "OK" if s["failed"] == 0 else ("FAILED" if s["ok"] == 0 else "PARTIAL")


def read_sweep(path: str) -> dict[str, Any]:
    """A ``PARAM_SWEEP.json`` (a path or ``-``), checked enough to render or apply."""
    doc = read_input(path, "json", "file", "E_SWEEP_INVALID", SWEEP_MAX_BYTES)
    return check_sweep(doc, "stdin" if path == "-" else path)


def check_sweep(doc: Any, where: str) -> dict[str, Any]:
    """``doc`` (already parsed) is a ``PARAM_SWEEP.json`` with the shape render/apply need."""
    if not isinstance(doc, dict) or doc.get("schema") != "mmkit.param_sweep/v1":
        got = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise MmkitError("E_SWEEP_INVALID", f"{where}: not a PARAM_SWEEP.json (schema {got!r}, expected mmkit.param_sweep/v1)")
    shape = {"meta": dict, "grid": dict, "base": dict, "summary": dict, "results": list, "top3_by_net_bps_safe": list}
    for key, typ in shape.items():
        if not isinstance(doc.get(key), typ):
            raise MmkitError("E_SWEEP_INVALID", f"{where}: {key!r} is missing or not a JSON {typ.__name__}")
    for row in doc["results"]:
        if not (isinstance(row, dict) and isinstance(row.get("trial_id"), str) and isinstance(row.get("params"), dict)
                and (row.get("result") is None or isinstance(row.get("result"), dict))):
            raise MmkitError("E_SWEEP_INVALID", f"{where}: a result lacks trial_id, params or result")
    return doc


# ----------------------------------------------------------------------------- markdown
def _params_text(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={artifacts.canonical_json(v)}" for k, v in sorted(params.items()))


def _order(row: Mapping[str, Any]) -> tuple[Any, ...]:
    res = row.get("result")
    if res is None:
        return (2, 0.0, row["trial_id"])
    return (0 if row.get("safe") else 1, -float(res.get("net_bps", 0.0)), row["trial_id"])


def render_markdown(doc: Mapping[str, Any]) -> str:
    """PARAM_SWEEP.md: every trial sorted SAFE first, then by net_bps descending, with its
    SAFE flag; failed trials last with their errors.  Rendered from the JSON only."""
    meta, summary = doc["meta"], doc["summary"]
    lines = ["# Parameter sweep", "",
             f"generated_at: {meta.get('generated_at')}", f"git_sha: {meta.get('git_sha')}",
             f"cfg_hash: {meta.get('cfg_hash')}", f"seed: {doc.get('seed')}", f"method: {doc.get('method')}",
             f"trials: {summary.get('trials')} (ok {summary.get('ok')}, failed {summary.get('failed')}, "
             f"SAFE {summary.get('safe')})", "",
             "SAFE = every backtest gate passed: " + ", ".join(
                 f"{g['name']} {g['op']} {_cell(g['threshold'])}" for g in doc.get("gates", [])), "",
             "## Grid", ""]
    lines += _table(["key", "values"], [[k, artifacts.canonical_json(v)] for k, v in sorted(doc["grid"].items())])
    lines += ["", "## Top 3 by net_bps (SAFE)", ""]
    top = doc["top3_by_net_bps_safe"]
    if top:
        lines += _table(["rank", "trial", "net_bps", "net_pnl_usd", "params"],
                        [[str(t["rank"]), t["trial_id"], _cell(t.get("net_bps")), _cell(t.get("net_pnl_usd")),
                          _params_text(t["params"])] for t in top])
    else:
        lines.append("No trial passed every gate.")
    lines += ["", "## All trials (SAFE first, then net_bps descending)", ""]
    rows = []
    for rank, row in enumerate(sorted(doc["results"], key=_order), 1):
        res = row.get("result")
        if res is None:
            continue
        rows.append([str(rank), row["trial_id"], "SAFE" if row.get("safe") else "-",
                     *[_cell(res.get(m)) for m in TABLE_METRICS], _params_text(row["params"])])
    lines += _table(["rank", "trial", "safe", *TABLE_METRICS, "params"], rows)
    failed = [r for r in doc["results"] if r.get("result") is None]
    if failed:
        lines += ["", "## Failed trials", ""]
        lines += _table(["trial", "error", "params"],
                        [[r["trial_id"], str(r.get("error") or "-").replace("|", "/"), _params_text(r["params"])]
                         for r in failed])
    return "\n".join(lines) + "\n"


__all__ = ["METHODS", "SweepRequest", "SweepPlan", "read_grid", "check_grid", "expand", "validate_combos",
           "plan_sweep", "pending", "run_sweep", "build_artifact", "top_safe", "status", "read_sweep",
           "render_markdown", "trial_id"]
