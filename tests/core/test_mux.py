"""Multi-strategy mux: sigma bands, 60 s hysteresis, weight caps, the seed's log line."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmkit.core.mux import PROFILES, MuxDecision, MuxParams, StrategyMux, cap_weights, mux_log_line, regime_of

S = 1_000_000_000


@pytest.mark.parametrize(("sigma", "regime"), [
    (0.0, "low"), (0.79999, "low"), (0.8, "mid"), (1.0, "mid"), (1.49999, "mid"), (1.5, "high"), (9.99, "high"),
    (25.0, "high"),
])
def test_seed_sigma_bands(sigma, regime):
    # seed: low [0.0, 0.8), mid [0.8, 1.5), high [1.5, 9.99] (above 9.99 still high)
    assert regime_of(sigma) == regime


@pytest.mark.parametrize("sigma", [-0.1, math.nan, math.inf])
def test_invalid_sigma_is_refused(sigma):
    with pytest.raises(ValueError):
        regime_of(sigma)


def test_seed_log_line():
    # seed: "MUX ts=... sigma=... regime=... weights=Conservative:0.700000,Moderate:0.300000,Aggressive:0.000000"
    mux = StrategyMux()
    d = mux.update(1_700_000_000 * S, 2.0)
    assert d.regime == "high"
    assert d.log_line() == ("MUX ts=1700000000000000000 sigma=2.000000 regime=high "
                            "weights=Conservative:0.700000,Moderate:0.300000,Aggressive:0.000000")
    d.log_line().encode("ascii")
    assert "\n" not in d.log_line()


def test_aggressive_is_capped_at_035_and_weights_renormalize():
    mux = StrategyMux()
    low = mux.weights_for("low")  # raw 0.2 / 0.4 / 0.4, Aggressive capped at 0.35
    assert low == pytest.approx((0.65 / 3, 1.3 / 3, 0.35))
    assert sum(low) == pytest.approx(1.0, abs=1e-12)
    assert mux_log_line(0, 0.5, "low", low).endswith(
        "weights=Conservative:0.216667,Moderate:0.433333,Aggressive:0.350000")
    assert mux.weights_for("mid") == pytest.approx((0.4, 0.4, 0.2))
    assert mux.weights_for("high") == pytest.approx((0.7, 0.3, 0.0))


def test_cap_weights_water_fills_and_handles_edge_cases():
    assert cap_weights((1, 1, 1), (1, 1, 1)) == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    assert cap_weights((0, 0, 0), (1, 1, 0.1)) == pytest.approx((0.45, 0.45, 0.1))
    # pinning one profile pushes another over its cap: both end at their caps
    assert cap_weights((0.1, 0.2, 0.7), (1.0, 0.3, 0.35)) == pytest.approx((0.35, 0.3, 0.35))
    # un-normalized raw weights are normalized first
    assert cap_weights((2, 2, 0), (1, 1, 1)) == pytest.approx((0.5, 0.5, 0.0))
    with pytest.raises(ValueError):
        cap_weights((1, 1, 1), (0.3, 0.3, 0.3))
    with pytest.raises(ValueError):
        cap_weights((1, 1), (1, 1, 1))


@given(raw=st.lists(st.floats(0, 100), min_size=3, max_size=3),
       caps=st.lists(st.floats(0, 1), min_size=3, max_size=3).filter(lambda c: sum(c) >= 1.0))
def test_capped_weights_sum_to_one_and_respect_caps(raw, caps):
    w = cap_weights(raw, caps)
    assert sum(w) == pytest.approx(1.0, abs=1e-9)
    for wi, ci in zip(w, caps):
        assert -1e-12 <= wi <= ci + 1e-9
    # unpinned profiles keep their raw proportions
    free = [i for i in range(3) if w[i] < caps[i] - 1e-9 and raw[i] > 0]
    base = raw if sum(raw) > 0 else [1.0] * 3
    for i in free:
        for j in free:
            assert w[i] * base[j] == pytest.approx(w[j] * base[i], rel=1e-6, abs=1e-12)


def test_hysteresis_switches_only_after_60_seconds_of_the_new_band():
    mux = StrategyMux()
    d = mux.update(0, 1.0)
    assert (d.regime, d.switched) == ("mid", False)  # the first reading is adopted at once
    t0 = 10 * S
    assert mux.update(t0, 2.0).regime == "mid"  # high observed: candidate from 10 s
    d = mux.update(t0 + 59 * S, 3.0)
    assert (d.regime, d.observed_regime, d.switched) == ("mid", "high", False)
    d = mux.update(t0 + 60 * S, 2.5)
    assert (d.regime, d.switched) == ("high", True)
    assert d.weights == pytest.approx((0.7, 0.3, 0.0))
    assert mux.switches == 1
    assert not mux.update(t0 + 61 * S, 2.5).switched


def test_hysteresis_restarts_when_the_band_is_interrupted():
    mux = StrategyMux()
    mux.update(0, 0.5)  # low
    mux.update(1 * S, 1.0)  # mid candidate from 1 s
    mux.update(30 * S, 0.5)  # back in low: candidate dropped
    assert mux.update(61 * S, 1.0).regime == "low"  # mid candidate restarts at 61 s
    assert mux.update(120 * S, 1.0).regime == "low"
    assert mux.update(121 * S, 1.0).regime == "mid"
    # a third band restarts the candidate too
    mux.update(130 * S, 2.0)  # high from 130 s
    mux.update(150 * S, 0.1)  # low from 150 s
    assert mux.update(190 * S, 0.1).regime == "mid"  # only 40 s of low
    assert mux.update(210 * S, 0.1).regime == "low"
    assert mux.switches == 2


def test_mux_refuses_time_going_back_and_bad_params():
    mux = StrategyMux()
    mux.update(5 * S, 1.0)
    with pytest.raises(ValueError):
        mux.update(4 * S, 1.0)
    for bad in (dict(band_edges=(1.5, 0.8, 9.99)), dict(weight_caps=(0.3, 0.3, 0.3)),
                dict(weights={"low": (1, 0, 0)}), dict(weights={"low": (1, 0), "mid": (1, 0, 0), "high": (1, 0, 0)}),
                dict(hysteresis_sec=-1), dict(weight_caps=(1.0, 1.0))):
        with pytest.raises(ValueError):
            MuxParams(**bad)  # type: ignore[arg-type]


def test_zero_hysteresis_switches_immediately_and_custom_bands():
    mux = StrategyMux(MuxParams(band_edges=(1.0, 2.0, 5.0), hysteresis_sec=0))
    assert mux.update(0, 0.9).regime == "low"
    assert mux.update(1, 1.0).regime == "mid"
    assert mux.update(2, 7.0).regime == "high"


def test_blend_weights_profile_values():
    d = MuxDecision(0, 2.0, "high", (0.7, 0.3, 0.0), False, "high")
    assert d.blend({"Conservative": 1.5, "Moderate": 1.0, "Aggressive": 0.7}) == pytest.approx(1.35)
    assert d.weight("Moderate") == 0.3
    assert PROFILES == ("Conservative", "Moderate", "Aggressive")


def test_params_from_a_duck_typed_config_section():
    from types import SimpleNamespace

    # what a future ``mux:`` config section would hold (mappings by profile name)
    section = SimpleNamespace(
        band_edges=[1.0, 2.0, 9.99],
        weights={"low": {"Conservative": 0.1, "Moderate": 0.4, "Aggressive": 0.5},
                 "mid": [0.4, 0.4, 0.2], "high": {"Conservative": 1.0}},
        weight_caps={"Aggressive": 0.3},
        hysteresis_sec=30,
    )
    p = MuxParams.from_config(section)
    assert p.band_edges == (1.0, 2.0, 9.99) and p.hysteresis_sec == 30.0
    assert p.weight_caps == (1.0, 1.0, 0.3)
    mux = StrategyMux(p)
    assert mux.weights_for("low") == pytest.approx((0.14, 0.56, 0.3))
    assert mux.weights_for("high") == (1.0, 0.0, 0.0)
    assert MuxParams.from_config(SimpleNamespace()) == MuxParams()
    with pytest.raises(ValueError, match="unknown profiles"):
        MuxParams.from_config(SimpleNamespace(weight_caps={"Reckless": 0.5}))
