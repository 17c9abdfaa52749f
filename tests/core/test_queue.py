"""Queue models in isolation: joining, risk-averse clamping, the probabilistic split
with hand-computed numbers, the optimistic flag, the registry and its errors."""

from __future__ import annotations

import math

import pytest

from mmkit.core.latency import ModelParamError, UnknownModelError
from mmkit.core.queue import QUEUE_MODELS, ProbQueue, log_prob, make_queue_model, power_prob


@pytest.mark.parametrize("name", sorted(QUEUE_MODELS))
def test_every_model_joins_behind_the_visible_size(name):
    assert make_queue_model(name).on_join(7) == 7
    assert make_queue_model(name).on_join(0) == 0


@pytest.mark.parametrize("name", sorted(QUEUE_MODELS))
def test_increases_never_move_us_and_a_vanished_level_puts_us_first(name):
    q = make_queue_model(name)
    assert q.on_depth(6, 10, 14, 0) == 6  # someone joined behind
    assert q.on_depth(6, 10, 0, 0) == 0  # the level vanished: nothing can be ahead
    assert q.on_depth(6, 10, 4, 6) <= 4  # a level smaller than our estimate caps it


def test_risk_averse_assumes_every_unexplained_decrease_is_behind():
    q = make_queue_model("risk_averse")
    assert q.on_depth(6, 10, 8, 0) == 6
    assert q.on_depth(6, 10, 5, 0) == 5  # cannot be more ahead than the level holds
    assert q.touch_fills is False


def test_prob_power_split_hand_computed():
    q = make_queue_model("prob_power", {"n": 2})
    # front 6, back 4, 2 lots canceled: p_back = 4^2 / (4^2 + 6^2) = 16/52
    assert q.on_depth(6, 10, 8, 0) == pytest.approx(6 - 2 * 36 / 52)
    # n = 1: in proportion to the sizes: 2 * 6/10 from the front
    assert make_queue_model("prob_power", {"n": 1}).on_depth(6, 10, 8, 0) == pytest.approx(6 - 1.2)


def test_prob_log_split_hand_computed():
    q = make_queue_model("prob_log")
    p_back = math.log(5) / (math.log(5) + math.log(7))
    assert q.on_depth(6, 10, 8, 0) == pytest.approx(6 - 2 * (1 - p_back))


def test_prob_models_do_not_double_count_traded_lots():
    for name in ("prob_power", "prob_log"):
        q = make_queue_model(name)
        # 3 lots printed (already taken off the queue front by the simulator), level 10 -> 7
        assert q.on_depth(3, 10, 7, 3) == 3
        # printed 3, level 10 -> 5: only 2 lots are unexplained; back = 10 - 3 - 3 = 4
        got = q.on_depth(3, 10, 5, 3)
        assert 1 <= got < 3


def test_prob_overflow_from_back_comes_from_front():
    q = make_queue_model("prob_power", {"n": 1})
    # front 8, back 1: p_back = 1/9; 5 canceled: 5/9 would come from back, but back holds 1
    assert q.on_depth(8, 9, 4, 0) == pytest.approx(8 - (5 - 5 / 9))
    # nobody behind: everything comes from the front
    assert q.on_depth(8, 8, 5, 0) == 5


def test_probability_functions():
    assert power_prob(2)(0, 0) == 1.0
    assert power_prob(2)(3, 0) == 0.0
    assert power_prob(3)(1, 1) == 0.5
    assert log_prob(0, 5) == 1.0
    assert log_prob(5, 5) == 0.5


def test_optimistic_flag():
    assert make_queue_model("optimistic").touch_fills is True
    assert make_queue_model("prob_log").touch_fills is False


def test_registry_errors():
    with pytest.raises(UnknownModelError) as ei:
        make_queue_model("fifo")
    assert all(n in str(ei.value) for n in QUEUE_MODELS) and ei.value.kind == "queue"
    with pytest.raises(ModelParamError) as ei2:
        make_queue_model("prob_power", {"m": 2})
    assert ei2.value.key == "m" and ei2.value.reason == "unknown_key"
    with pytest.raises(ModelParamError) as ei3:
        make_queue_model("prob_power", {"n": 0})
    assert ei3.value.key == "n"
    with pytest.raises(ModelParamError):
        make_queue_model("risk_averse", {"n": 2})
    assert isinstance(make_queue_model("prob_power"), ProbQueue)
    assert make_queue_model("prob_power").params == {"n": 2.0}
