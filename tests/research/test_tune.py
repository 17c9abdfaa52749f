"""The tuning loop as a library: overlays validated and rendered deterministically and
usable by the config layer, prev kept on apply, guard reports, rollback, baseline lock."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from mmkit import artifacts
from mmkit.config import describe, load_config
from mmkit.errors import MmkitError
from mmkit.research import tune
from support import FIXTURES, validate_artifact

CONFIG = str(FIXTURES / "research/sweep_config.yaml")


def sweep_doc(*tops: dict[str, Any]) -> dict[str, Any]:
    """The parts of a PARAM_SWEEP.json that apply reads."""
    return {"base": {"config": CONFIG, "cfg_hash": "c" * 64, "profile": None},
            "top3_by_net_bps_safe": [{"rank": k, "trial_id": f"t{k:04d}", "net_bps": 1.0 / k, **t}
                                     for k, t in enumerate(tops, 1)]}


BEST = {"params": {"strategy.fixed.half_spread_ticks": 3, "strategy.fixed.skew_ticks": 1.0}}
SECOND = {"params": {"strategy.fixed.half_spread_ticks": 2, "strategy.fixed.skew_ticks": 1.0}}


def test_overlay_is_deterministic_and_loads_through_the_config_layer(tmp_path: Path) -> None:
    out, prev = tmp_path / "overlay_profile.yaml", tmp_path / "overlay_prev.yaml"
    done = tune.apply_from_sweep(sweep_doc(BEST), "s" * 64, "sweep.json", str(out), str(prev))
    assert done.changed and done.prev is None and not prev.exists()
    text = out.read_text()
    assert text.endswith("strategy.fixed.half_spread_ticks: 3\nstrategy.fixed.skew_ticks: 1.0\n")
    assert "# trial: t0001 rank 1" in text and "sha256 " + "s" * 64 in text
    cfg = load_config(CONFIG, overlays=[str(out)], use_env_profile=False).config
    assert (cfg.strategy.fixed.half_spread_ticks, cfg.strategy.fixed.skew_ticks) == (3, 1.0)
    again = tune.apply_from_sweep(sweep_doc(BEST), "s" * 64, "sweep.json", str(out), str(prev))
    assert not again.changed and not prev.exists() and out.read_text() == text


def test_apply_keeps_the_previous_overlay(tmp_path: Path) -> None:
    out, prev = tmp_path / "o.yaml", tmp_path / "p.yaml"
    tune.apply_from_sweep(sweep_doc(BEST, SECOND), "s" * 64, "a", str(out), str(prev))
    first = out.read_bytes()
    done = tune.apply_from_sweep(sweep_doc(BEST, SECOND), "s" * 64, "a", str(out), str(prev), rank=2)
    assert done.prev == str(prev) and prev.read_bytes() == first
    assert tune.read_overlay(str(out)) == SECOND["params"]


def test_bad_overlays_and_empty_sweeps_write_nothing(tmp_path: Path) -> None:
    out, prev = tmp_path / "o.yaml", tmp_path / "p.yaml"
    typo = {"params": {"strategy.fixed.half_spred_ticks": 3}}
    with pytest.raises(MmkitError) as err:
        tune.apply_from_sweep(sweep_doc(typo), "s" * 64, "a", str(out), str(prev))
    assert err.value.code == "E_TUNE_BAD_OVERLAY" and "did you mean" in err.value.message
    with pytest.raises(MmkitError) as err:
        tune.apply_from_sweep(sweep_doc({"params": {"strategy.fixed.half_spread_ticks": "x"}}), "s" * 64, "a",
                              str(out), str(prev))
    assert err.value.code == "E_TUNE_BAD_OVERLAY"
    with pytest.raises(MmkitError) as err:
        tune.apply_from_sweep(sweep_doc(), "s" * 64, "a", str(out), str(prev))
    assert (err.value.code, err.value.exit_code) == ("E_TUNE_NO_SAFE", 2)
    with pytest.raises(MmkitError):
        tune.apply_from_sweep(sweep_doc(BEST), "s" * 64, "a", str(out), str(prev), rank=2)
    assert not out.exists() and not prev.exists()


def test_flatten_stops_at_config_leaves() -> None:
    nested = {"strategy": {"fixed": {"half_spread_ticks": 3}}, "fillsim.latency_params": {"entry_ms": 1.0},
              "fillsim": {"queue_params": {"alpha": 2.0}}}
    assert tune.flatten(nested) == {"strategy.fixed.half_spread_ticks": 3, "fillsim.latency_params": {"entry_ms": 1.0},
                                    "fillsim.queue_params": {"alpha": 2.0}}


def guard(tmp_path: Path, name: str, **doc: Any) -> str:
    path = tmp_path / name
    path.write_bytes(artifacts.canonical_bytes(doc))
    return str(path)


def test_rollback_restores_prev_only_when_a_guard_fails(tmp_path: Path) -> None:
    cur, prev = tmp_path / "o.yaml", tmp_path / "p.yaml"
    cur.write_text("strategy.fixed.half_spread_ticks: 3\n")
    prev.write_text("strategy.fixed.half_spread_ticks: 2\n")
    ok = guard(tmp_path, "ok.json", guard="drift", verdict="PASS")
    bad = guard(tmp_path, "bad.json", guard="regression", verdict="FAIL", reason="net_bps fell")
    doc = tune.rollback([ok], str(cur), str(prev))
    validate_artifact(doc)
    assert (doc["triggered"], doc["action"]) == (False, "none") and "3" in cur.read_text()
    doc = tune.rollback([ok, bad], str(cur), str(prev), dry_run=True)
    assert doc["action"] == "would_roll_back" and "3" in cur.read_text()
    doc = tune.rollback([ok, bad], str(cur), str(prev))
    validate_artifact(doc)
    assert doc["action"] == "rolled_back" and cur.read_bytes() == prev.read_bytes()
    assert doc["guards"][1]["reasons"] == ["net_bps fell"]
    assert doc["overlay"]["sha256_after"] == doc["prev"]["sha256"] != doc["overlay"]["sha256_before"]
    prev.unlink()
    with pytest.raises(MmkitError) as err:
        tune.rollback([bad], str(cur), str(prev))
    assert err.value.code == "E_TUNE_NO_PREV"
    for body in ({"verdict": "MAYBE"}, {"status": "FAIL"}):
        with pytest.raises(MmkitError) as err:
            tune.rollback([guard(tmp_path, "g.json", **body)], str(cur), str(prev))
        assert err.value.code == "E_TUNE_BAD_GUARD"


def test_baseline_lock_records_config_overlays_and_sources(tmp_path: Path) -> None:
    ov = tmp_path / "overlay_profile.yaml"
    ov.write_text("# head\nstrategy.fixed.half_spread_ticks: 3\n")
    doc = tune.baseline_lock(CONFIG, [str(ov), str(tmp_path / "overlay_prev.yaml")])
    validate_artifact(doc)
    loaded = load_config(CONFIG, use_env_profile=False)
    assert doc["config"]["describe"] == describe(loaded.config)
    assert doc["config"]["sanitized_sha256"] == loaded.cfg_hash == doc["meta"]["cfg_hash"]
    assert doc["config"]["file_sha256"] == artifacts.sha256_file(CONFIG)
    assert doc["overlays"][0]["head"] == ["# head", "strategy.fixed.half_spread_ticks: 3"]
    assert doc["overlays"][1] == {"path": str(tmp_path / "overlay_prev.yaml"), "exists": False, "sha256": None, "head": []}
    paths = [f["path"] for f in doc["tool_files"]]
    assert "mmkit/research/tune.py" in paths and paths == sorted(paths)
    tools = copy.deepcopy(doc["tool_files"])
    assert doc["tool_files_sha256"] == artifacts.sha256_bytes(artifacts.canonical_json(tools).encode("ascii"))
