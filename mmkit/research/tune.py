"""The tuning loop: a sweep's best SAFE result becomes a config overlay, a before/after
report judges it, a failing guard rolls it back, and a baseline lock records what was
tuned against.

Overlays are plain YAML mappings of dotted config keys (the config layer's overlay
mechanism: ``load_config(path, overlays=[...])``).  They are validated against the config
before they are written and rendered deterministically (sorted keys, a header naming
the sweep and trial they came from, no timestamp), so applying the same sweep twice gives
the same bytes.  Writing a new overlay keeps the one it replaces as ``overlay_prev.yaml``;
``rollback`` restores it.

Guard reports (the input of ``rollback``) are JSON objects ``{"verdict": "PASS"|"FAIL",
"guard": "<name>" (optional), "reason": str (optional), "reasons": [str] (optional)}``;
``TUNING_REPORT.json`` is one (``guard: "regression"``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

import mmkit
from mmkit import artifacts
from mmkit.config import LoadedConfig, check_dotted_key, describe, load_config
from mmkit.errors import ConfigError, EXIT_GATE_FAILED, MmkitError
from mmkit.research.backtest import _cell, _table
from mmkit.research.inputs import read_input
from mmkit.research.executors import Executor, Trial, TrialResult, TrialStore
from mmkit.research.trials import TRIAL_FN, base_params, load_base_config, with_overrides

OVERLAY_NAME = "overlay_profile.yaml"
PREV_NAME = "overlay_prev.yaml"
HEAD_LINES = 5

# metric -> +1 higher is better, -1 lower is better (TUNING_REPORT verdicts)
DIRECTIONS: dict[str, int] = {
    "net_pnl_usd": 1, "net_bps": 1, "taker_share_pct": -1, "order_age_p95_ms": -1, "fill_rate": 1, "sharpe": 1,
    "max_drawdown_usd": -1, "cvar95_usd": 1, "hit_rate": 1, "maker_share_pct": 1, "fills": 1, "turnover_usd": 1,
}
SAME_EPS = 1e-9


# ----------------------------------------------------------------------------- overlays
def flatten(node: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}, "c.d": 2}`` -> ``{"a.b": 1, "c.d": 2}``, stopping at config leaves
    (a mapping-valued config key such as ``fillsim.latency_params`` stays one value)."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value and check_dotted_key(dotted) is not None:
            out.update(flatten(value, dotted))
        else:
            out[dotted] = value
    return out


def validate_overlay(overlay: Mapping[str, Any], config: str, profile: str | None = None) -> LoadedConfig:
    """The config with ``overlay`` applied, or ``E_TUNE_BAD_OVERLAY`` naming every problem."""
    unknown = [f"{k}: {msg}" for k in overlay if (msg := check_dotted_key(k))]
    if unknown:
        raise MmkitError("E_TUNE_BAD_OVERLAY", "; ".join(unknown))
    base = load_base_config(config, profile)
    try:
        return with_overrides(base, overlay)
    except ConfigError as exc:
        raise MmkitError("E_TUNE_BAD_OVERLAY", exc.message) from exc


def render_overlay(overlay: Mapping[str, Any], header: Sequence[str]) -> str:
    """Deterministic overlay YAML: ``# `` header lines, then sorted dotted keys."""
    body = yaml.safe_dump(dict(sorted(overlay.items())), sort_keys=True, default_flow_style=False, width=1000)
    return "".join(f"# {line}\n" for line in header) + body


def read_overlay(path: str) -> dict[str, Any]:
    """An overlay file as flat dotted keys (``{}`` for an empty file)."""
    data = read_input(path, "yaml", "overlay file")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise MmkitError("E_TUNE_BAD_OVERLAY", f"{path}: an overlay is a mapping of dotted config keys")
    return flatten(data)


def read_source(path: str) -> dict[str, Any]:
    """What ``tune apply`` deploys from: a ``PARAM_SWEEP.json``, or a walk-forward
    ``champion.json`` (``mmkit wf``), presented in the sweep's shape so one code path
    applies both.  A champion is deployable only if it passed its gates (verdict PASS); it
    names no base config file, so ``--config`` is required with it."""
    from mmkit.research.sweep import SWEEP_MAX_BYTES, check_sweep

    doc = read_input(path, "json", "file", "E_SWEEP_INVALID", SWEEP_MAX_BYTES)
    where = "stdin" if path == "-" else path
    if not (isinstance(doc, dict) and doc.get("schema") == "mmkit.champion/v1"):
        return check_sweep(doc, where)
    params, meta = doc.get("params"), doc.get("meta")
    if not isinstance(params, dict) or not isinstance(meta, dict) or doc.get("verdict") not in ("PASS", "FAIL"):
        raise MmkitError("E_TUNE_BAD_CHAMPION", f"{where}: a champion.json needs params, meta and verdict")
    if doc["verdict"] != "PASS":
        raise MmkitError("E_TUNE_NO_SAFE", f"{where}: the walk-forward champion failed its gates (verdict FAIL); "
                                           "nothing to apply", EXIT_GATE_FAILED)
    metrics = doc.get("metrics") if isinstance(doc.get("metrics"), dict) else {}
    top = {"trial_id": f"champion (candidate {doc.get('candidate')})", "rank": 1, "params": params,
           "net_bps": metrics.get("net_bps")}
    return {"schema": doc["schema"], "meta": meta, "base": {"config": None, "cfg_hash": meta.get("cfg_hash"), "profile": None},
            "top3_by_net_bps_safe": [top]}


def pick(doc: Mapping[str, Any], rank: int = 1) -> dict[str, Any]:
    """The ``rank``-th entry of the sweep's ``top3_by_net_bps_safe`` (``E_TUNE_NO_SAFE``, exit 2,
    when the sweep has no SAFE trial: nothing passed the gates, nothing to deploy)."""
    top = doc["top3_by_net_bps_safe"]
    if not top:
        raise MmkitError("E_TUNE_NO_SAFE", "the sweep has no SAFE trial (none passed every backtest gate); "
                                           "nothing to apply", EXIT_GATE_FAILED)
    if not 1 <= rank <= len(top):
        raise MmkitError("E_USAGE", f"--rank must be between 1 and {len(top)}, got {rank}", 64)
    return dict(top[rank - 1])


@dataclass(frozen=True)
class Applied:
    overlay: dict[str, Any]
    trial_id: str
    out: str
    prev: str | None
    changed: bool


def apply_from_sweep(doc: Mapping[str, Any], source_sha256: str, source: str, out: str, prev: str,
                     config: str | None = None, rank: int = 1, profile: str | None = None) -> Applied:
    """Write the overlay of the sweep's ``rank``-th SAFE trial to ``out``, validated against
    ``config`` (default: the sweep's base config); the overlay it replaces goes to ``prev``.

    Re-applying identical bytes changes nothing (``prev`` keeps the real previous one)."""
    top = pick(doc, rank)
    overlay = {str(k): v for k, v in top["params"].items()}
    base = config or str(doc["base"].get("config") or "")
    if not base:
        raise MmkitError("E_USAGE", "the source names no base config (a champion.json never does); pass --config", 64)
    validate_overlay(overlay, base, profile if profile is not None else doc["base"].get("profile"))
    header = ["mmkit tune overlay: apply with the config layer's overlays (docs/tune.md)",
              f"source: {source} sha256 {source_sha256}",
              (f"trial: {top['trial_id']} rank {top['rank']} of top3_by_net_bps_safe, net_bps {_cell(top.get('net_bps'))}"
               if doc.get("schema") != "mmkit.champion/v1" else f"walk-forward {top['trial_id']}, gates PASS"),
              f"base cfg_hash: {doc['base'].get('cfg_hash')}"]
    text = artifacts.ascii_text(render_overlay(overlay, header))
    target = Path(out)
    old = target.read_bytes() if target.is_file() else None
    if old == text.encode("ascii"):
        return Applied(overlay, top["trial_id"], out, None, False)
    if old is not None:
        artifacts.write_bytes(prev, old)
    artifacts.write_text(out, text)
    return Applied(overlay, top["trial_id"], out, prev if old is not None else None, True)


# ----------------------------------------------------------------------------- tuning report
@dataclass(frozen=True)
class ReportRequest:
    config: str
    overlay: str
    ticks: tuple[str, ...]
    seed: int = 0
    profile: str | None = None
    fmt: str | None = None
    symbol: str | None = None
    venue: str | None = None


def _trials(req: ReportRequest, overlay: Mapping[str, Any]) -> list[Trial]:
    common, inputs = base_params(req.config, req.ticks, profile=req.profile, fmt=req.fmt, symbol=req.symbol,
                                 venue=req.venue)
    return [Trial("after", TRIAL_FN, {**common, "overrides": dict(overlay)}, req.seed, inputs),
            Trial("before", TRIAL_FN, {**common, "overrides": {}}, req.seed, inputs)]


def tuning_report(req: ReportRequest, executor: Executor, store: TrialStore,
                  on_result: Callable[[TrialResult], None] | None = None) -> dict[str, Any]:
    """Backtest the base config (before) and the base plus the overlay (after) on the same
    data and seed; compare every metric; ``verdict`` PASS when the after run is SAFE and its
    net_bps is not below the before run's (see docs/tune.md)."""
    overlay = read_overlay(req.overlay)
    before_cfg = load_base_config(req.config, req.profile)
    after_cfg = validate_overlay(overlay, req.config, req.profile)
    results = {r.trial_id: r for r in executor.run(_trials(req, overlay), store, on_result)}
    for name in ("before", "after"):
        if results[name].status != "ok":
            raise MmkitError("E_TUNE_TRIAL_FAILED", f"the {name} backtest failed: {results[name].error}")
    before, after = results["before"].result or {}, results["after"].result or {}
    metrics = {}
    for m, direction in DIRECTIONS.items():
        b, a = before.get(m), after.get(m)
        if b is None or a is None:
            continue
        delta = a - b if isinstance(a, int) and isinstance(b, int) else round(float(a) - float(b), 6)
        verdict = "same" if abs(delta) <= SAME_EPS else ("better" if delta * direction > 0 else "worse")
        metrics[m] = {"before": b, "after": a, "delta": delta, "verdict": verdict}
    reasons = [f"after fails gate {n}: {_cell(g['value'])} {g['op']} {_cell(g['threshold'])} is false"
               for n, g in sorted(after["gates"].items()) if not g["pass"]]
    if after["net_bps"] < before["net_bps"]:
        reasons.append(f"net_bps regressed from {_cell(before['net_bps'])} to {_cell(after['net_bps'])}")
    body = {
        "guard": "regression",
        "verdict": "FAIL" if reasons else "PASS",
        "reasons": reasons,
        "overlay": {"path": req.overlay, "sha256": artifacts.sha256_file(req.overlay), "params": overlay},
        "before": _side(before_cfg, before),
        "after": _side(after_cfg, after),
        "metrics": metrics,
    }
    meta = artifacts.build_meta(cfg_hash=before_cfg.cfg_hash, seed=req.seed, inputs=[*req.ticks, req.config, req.overlay])
    return artifacts.artifact("tuning_report", body, meta)


def _side(cfg: LoadedConfig, res: Mapping[str, Any]) -> dict[str, Any]:
    return {"cfg_hash": cfg.cfg_hash, "safe": bool(res["safe"]), "gates": res["gates"],
            "events": res["events"], "first_ts": res["first_ts"], "last_ts": res["last_ts"]}


def render_report_markdown(doc: Mapping[str, Any]) -> str:
    """TUNING_REPORT.md from the JSON."""
    meta, b, a = doc["meta"], doc["before"], doc["after"]
    lines = ["# Tuning report", "", f"verdict: {doc['verdict']}", f"generated_at: {meta['generated_at']}",
             f"git_sha: {meta['git_sha']}", f"seed: {meta['seed']}", f"overlay: {doc['overlay']['path']} "
             f"sha256 {doc['overlay']['sha256']}", f"cfg_hash before: {b['cfg_hash']}", f"cfg_hash after: {a['cfg_hash']}",
             "", "## Overlay", ""]
    lines += _table(["key", "value"], [[k, artifacts.canonical_json(v)] for k, v in sorted(doc["overlay"]["params"].items())])
    lines += ["", "## Metrics (before -> after)", ""]
    lines += _table(["metric", "before", "after", "delta", "verdict"],
                    [[m, _cell(r["before"]), _cell(r["after"]), _cell(r["delta"]), r["verdict"]]
                     for m, r in doc["metrics"].items()])
    lines += ["", "## Gates", ""]
    lines += _table(["gate", "op", "threshold", "before", "after"],
                    [[n, g["op"], _cell(g["threshold"]), f"{_cell(b['gates'][n]['value'])} "
                      f"{'PASS' if b['gates'][n]['pass'] else 'FAIL'}" if n in b["gates"] else "-",
                      f"{_cell(g['value'])} {'PASS' if g['pass'] else 'FAIL'}"] for n, g in sorted(a["gates"].items())])
    lines += ["", "## Verdict", "", f"{doc['verdict']}: " + ("; ".join(doc["reasons"]) or
                                                            "the overlay is SAFE and net_bps did not regress")]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- rollback
def read_guard(path: str) -> dict[str, Any]:
    """A drift or regression guard report (shape in the module docstring)."""
    doc = read_input(path, "json", "guard report", "E_TUNE_BAD_GUARD", 16 << 20)
    if not isinstance(doc, dict) or doc.get("verdict") not in ("PASS", "FAIL"):
        raise MmkitError("E_TUNE_BAD_GUARD", f"{path}: a guard report is a JSON object with \"verdict\": "
                                             "\"PASS\" or \"FAIL\" (docs/tune.md)")
    reasons = doc.get("reasons") if isinstance(doc.get("reasons"), list) else []
    if isinstance(doc.get("reason"), str):
        reasons = [doc["reason"], *reasons]
    return {"path": path, "sha256": artifacts.sha256_file(path), "guard": str(doc.get("guard") or "unnamed"),
            "verdict": doc["verdict"], "reasons": [str(r) for r in reasons]}


def _file_record(path: str) -> dict[str, Any]:
    p = Path(path)
    return {"path": path, "exists": p.is_file(), "sha256": artifacts.sha256_file(p) if p.is_file() else None}


def rollback(guard_paths: Sequence[str], overlay: str, prev: str, dry_run: bool = False) -> dict[str, Any]:
    """Restore ``prev`` over ``overlay`` when any guard says FAIL; the ``auto_rollback`` artifact.

    No guard failed: nothing changes (``action: none``).  A guard failed but there is no
    previous overlay: ``E_TUNE_NO_PREV`` (nothing is written)."""
    guards = [read_guard(g) for g in guard_paths]
    failed = [g for g in guards if g["verdict"] == "FAIL"]
    before = _file_record(overlay)
    prev_rec = _file_record(prev)
    action = "none"
    if failed:
        if not prev_rec["exists"]:
            raise MmkitError("E_TUNE_NO_PREV", f"guard {failed[0]['guard']} says FAIL but {prev} does not exist; "
                                               "nothing to roll back to")
        action = "would_roll_back" if dry_run else "rolled_back"
        if not dry_run:
            artifacts.write_bytes(overlay, Path(prev).read_bytes())
    body = {"triggered": bool(failed), "action": action, "dry_run": dry_run, "guards": guards,
            "overlay": {"path": overlay, "sha256_before": before["sha256"], "sha256_after": _file_record(overlay)["sha256"]},
            "prev": prev_rec}
    meta = artifacts.build_meta(inputs=[g["path"] for g in guards])
    return artifacts.artifact("auto_rollback", body, meta)


# ----------------------------------------------------------------------------- baseline lock
def _head(path: Path) -> list[str]:
    try:
        text = path.read_bytes().decode("ascii", "backslashreplace")
    except OSError as exc:
        raise MmkitError("E_IO_READ", f"cannot read {path}: {exc.strerror or exc}") from exc
    return text.splitlines()[:HEAD_LINES]


def source_files() -> list[dict[str, str]]:
    """mmkit's own files (``*.py`` and packaged resources) with sha256, sorted by path."""
    pkg = Path(mmkit.__file__).resolve().parent
    files = sorted(p for p in pkg.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")
    return [{"path": str(p.relative_to(pkg.parent)), "sha256": artifacts.sha256_file(p)} for p in files]


def alert_rules() -> list[dict[str, str]]:
    """Prometheus alert rule files of the checkout (``monitoring/**/*.y*ml``), if any."""
    root = Path(mmkit.__file__).resolve().parent.parent / "monitoring"
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in (".yml", ".yaml")) if root.is_dir() else []
    return [{"path": str(p.relative_to(root.parent)), "sha256": artifacts.sha256_file(p)} for p in files]


def baseline_lock(config: str, overlays: Sequence[str], profile: str | None = None) -> dict[str, Any]:
    """The ``baseline_lock`` artifact: what a tuning run compares against."""
    loaded = load_config(config, profile=profile, use_env_profile=False)
    tools = source_files()
    recs = []
    for path in overlays:
        rec = _file_record(path)
        rec["head"] = _head(Path(path)) if rec["exists"] else []
        recs.append(rec)
    body = {
        "config": {"path": config, "profile": profile, "file_sha256": artifacts.sha256_file(config),
                   "sanitized_sha256": loaded.cfg_hash, "describe": describe(loaded.config)},
        "overlays": recs,
        "tool_files": tools,
        "tool_files_sha256": artifacts.sha256_bytes(artifacts.canonical_json(tools).encode("ascii")),
        "alert_rules": alert_rules(),
        "git_sha": artifacts.git_sha(),
    }
    meta = artifacts.build_meta(cfg_hash=loaded.cfg_hash, inputs=[config, *(r["path"] for r in recs if r["exists"])])
    return artifacts.artifact("baseline_lock", body, meta)


__all__ = ["OVERLAY_NAME", "PREV_NAME", "flatten", "validate_overlay", "render_overlay", "read_overlay", "pick",
           "apply_from_sweep", "Applied", "ReportRequest", "tuning_report", "render_report_markdown", "read_guard",
           "rollback", "baseline_lock", "source_files", "alert_rules"]
