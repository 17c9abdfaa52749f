"""Latency models: constant per op, seeded normal clamped at its floor, empirical picks,
per-op overrides, the registry and its errors, and calibration -> latency."""

from __future__ import annotations

import random

import pytest

from mmkit.core.fillsim import (
    CalibrationParams,
    latency_from_calibration,
)
from mmkit.core.latency import (
    ENTRY_OPS,
    LATENCY_MODELS,
    RESPONSE_OPS,
    ConstantLatency,
    EmpiricalLatency,
    ModelError,
    ModelParamError,
    NormalLatency,
    UnknownModelError,
    make_latency_model,
)

MS = 1_000_000


def test_constant_defaults_are_the_baseline_10ms_each_way():
    lat = make_latency_model("constant")
    rng = random.Random(1)
    state = rng.getstate()
    assert all(lat.entry_ns(op, 0, rng) == 10 * MS for op in ENTRY_OPS)
    assert all(lat.response_ns(op, 0, rng) == 10 * MS for op in RESPONSE_OPS)
    assert rng.getstate() == state, "a constant model must not consume random draws"


def test_constant_per_op_overrides_and_fractional_ms():
    lat = make_latency_model("constant", {"entry_ms": 2.5, "cancel_entry_ms": 1, "response_ms": 4,
                                          "fill_response_ms": 0.25})
    rng = random.Random(0)
    assert lat.entry_ns("create", 0, rng) == 2_500_000
    assert lat.entry_ns("amend", 0, rng) == 2_500_000
    assert lat.entry_ns("cancel", 0, rng) == 1_000_000
    assert lat.response_ns("create", 0, rng) == 4_000_000
    assert lat.response_ns("fill", 0, rng) == 250_000


def test_normal_is_seeded_and_clamped_at_min_ms():
    lat = make_latency_model("normal", {"entry_mean_ms": 1.0, "entry_std_ms": 5.0, "min_ms": 0.5})
    a = [lat.entry_ns("create", 0, random.Random(7)) for _ in range(1)]
    r1, r2 = random.Random(42), random.Random(42)
    xs = [lat.entry_ns("create", 0, r1) for _ in range(2000)]
    ys = [lat.entry_ns("create", 0, r2) for _ in range(2000)]
    assert xs == ys, "same seed, same draws"
    assert min(xs) == 500_000, "values below min_ms are clamped to it"
    assert sum(x == 500_000 for x in xs) > 500  # mean 1, std 5: many draws fall below 0.5 ms
    assert a[0] >= 500_000


def test_normal_mean_and_std_are_respected():
    lat = NormalLatency(15.0, 5.0)
    rng = random.Random(3)
    xs = [lat.entry_ns("create", 0, rng) / MS for _ in range(20000)]
    mean = sum(xs) / len(xs)
    std = (sum((x - mean) ** 2 for x in xs) / len(xs)) ** 0.5
    assert abs(mean - 15.0) < 0.15 and abs(std - 5.0) < 0.15
    # response defaults to the entry distribution
    ys = [lat.response_ns("fill", 0, rng) / MS for _ in range(20000)]
    assert abs(sum(ys) / len(ys) - 15.0) < 0.15


def test_normal_with_zero_std_draws_nothing():
    lat = NormalLatency(3.0, 0.0)
    rng = random.Random(5)
    state = rng.getstate()
    assert lat.entry_ns("amend", 0, rng) == 3 * MS and lat.response_ns("cancel", 0, rng) == 3 * MS
    assert rng.getstate() == state


def test_empirical_samples_only_recorded_values_and_is_seeded():
    values = [1_000_000, 2_000_000, 7_000_000]
    lat = make_latency_model("empirical", {"entry_ns": values, "cancel_entry_ns": [5], "response_ns": [9]})
    r1, r2 = random.Random(11), random.Random(11)
    xs = [lat.entry_ns("create", 0, r1) for _ in range(300)]
    assert xs == [lat.entry_ns("create", 0, r2) for _ in range(300)]
    assert set(xs) == set(values)
    assert lat.entry_ns("cancel", 0, r1) == 5
    assert lat.response_ns("fill", 0, r1) == 9


def test_empirical_response_defaults_to_entry_values():
    lat = EmpiricalLatency([4, 4])
    assert lat.response_ns("create", 0, random.Random(0)) == 4


@pytest.mark.parametrize("params,key", [
    ({"entry_ns": []}, "entry_ns"),
    ({"entry_ns": [1.5]}, "entry_ns"),
    ({"entry_ns": [-1]}, "entry_ns"),
    ({"entry_ns": "123"}, "entry_ns"),
    ({}, "entry_ns"),
])
def test_empirical_rejects_bad_recordings(params, key):
    with pytest.raises(ModelParamError) as ei:
        make_latency_model("empirical", params)
    assert ei.value.key == key


def test_unknown_model_names_the_known_ones():
    with pytest.raises(UnknownModelError) as ei:
        make_latency_model("gaussian")
    msg = str(ei.value)
    assert "gaussian" in msg and all(name in msg for name in LATENCY_MODELS)
    assert isinstance(ei.value, ValueError) and isinstance(ei.value, ModelError)
    assert ei.value.kind == "latency" and ei.value.known == ("constant", "empirical", "normal")


@pytest.mark.parametrize("name,params,key,reason", [
    ("constant", {"entry": 1}, "entry", "unknown_key"),
    ("constant", {"entry_ms": -1}, "entry_ms", "range"),
    ("constant", {"entry_ms": True}, "entry_ms", "type"),
    ("constant", {"cancel_entry_ms": float("nan")}, "cancel_entry_ms", "range"),
    ("constant", {"fill_entry_ms": 1}, "fill_entry_ms", "unknown_key"),  # a fill is never sent
    ("normal", {"entry_std_ms": -0.1}, "entry_std_ms", "range"),
    ("normal", {"min_ms": "0.1"}, "min_ms", "type"),
    ("normal", {"entry_mean_ms": 1e9}, "entry_mean_ms", "range"),
])
def test_bad_params_name_the_key(name, params, key, reason):
    with pytest.raises(ModelParamError) as ei:
        make_latency_model(name, params)
    assert ei.value.key == key and ei.value.reason == reason
    assert key in str(ei.value)


def test_constructor_rejects_unknown_op():
    with pytest.raises(ModelParamError):
        ConstantLatency(entry_ms_by_op={"replace": 1.0})


def test_calibration_std_zero_gives_constant_per_op_latency():
    cal = CalibrationParams(latency_ms_mean=15.0, latency_ms_std=0.0, amend_latency_ms=10.0, cancel_latency_ms=8.0)
    lat = latency_from_calibration(cal)
    assert isinstance(lat, ConstantLatency)
    rng = random.Random(0)
    assert [lat.entry_ns(op, 0, rng) for op in ENTRY_OPS] == [15 * MS, 10 * MS, 8 * MS]
    assert lat.response_ns("fill", 0, rng) == 15 * MS


def test_calibration_with_std_gives_seeded_normal():
    cal = CalibrationParams(latency_ms_mean=15.0, latency_ms_std=5.0, amend_latency_ms=10.0, cancel_latency_ms=8.0,
                            response_latency_ms=3.0)
    lat = cal.latency_model()
    assert isinstance(lat, NormalLatency)
    rng = random.Random(9)
    xs = [lat.entry_ns("cancel", 0, rng) / MS for _ in range(20000)]
    assert abs(sum(xs) / len(xs) - 8.0) < 0.2
    ys = [lat.response_ns("create", 0, rng) / MS for _ in range(20000)]
    assert min(ys) == pytest.approx(0.1), "clamped at the documented 0.1 ms floor"
