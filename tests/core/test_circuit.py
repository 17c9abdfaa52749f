"""Circuit breaker: closed -> open -> half_open -> closed over API outcomes; cancels always pass."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmkit.config_schema import CircuitConfig
from mmkit.core.circuit import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from mmkit.core.types import BUY, AmendOrder, CancelOrder, CreateOrder

SEC = 1_000_000_000
MS = 1_000_000
T0 = 1_700_000_000 * SEC
NEW = CreateOrder("c", "BTCUSDT", BUY, 100, 1)
AMEND = AmendOrder("c", "BTCUSDT", BUY, 101, 1)
CANCEL = CancelOrder("c", "BTCUSDT")


def opened(now: int = T0) -> CircuitBreaker:
    cb = CircuitBreaker(CircuitConfig())
    for i in range(10):
        cb.on_result("create", False, 0, now + i * MS)
    assert cb.state(now + 9 * MS) == OPEN
    cb.drain_events()
    return cb


def test_seed_defaults_are_consumed():
    cb = CircuitBreaker(CircuitConfig())
    assert cb.state(T0) == CLOSED
    assert cb.check(NEW, T0) is None and cb.allowed("create", T0)


def test_no_opening_below_min_requests():
    cb = CircuitBreaker(CircuitConfig())  # min_requests 10
    for i in range(9):
        cb.on_result("create", False, 503, T0 + i * MS)
    assert cb.state(T0 + 9 * MS) == CLOSED
    cb.on_result("create", False, 503, T0 + 9 * MS)
    assert cb.state(T0 + 9 * MS) == OPEN
    [ev] = cb.drain_events()
    assert (ev.guard, ev.symbol, ev.kind) == ("circuit", "", "open")
    assert ev.detail == "err_rate=1.000000 >= 0.500000 requests=10"


def test_error_rate_threshold_is_inclusive():
    cb = CircuitBreaker(CircuitConfig())
    for i in range(5):
        cb.on_result("create", True, 200, T0 + i * MS)
    for i in range(4):
        cb.on_result("create", False, 400, T0 + i * MS)
    assert cb.state(T0) == CLOSED  # 4/9 and under min_requests
    cb.on_result("create", False, 400, T0 + 10 * MS)  # 5/10 = 0.5 >= 0.5
    assert cb.state(T0 + 10 * MS) == OPEN


@pytest.mark.parametrize("code, rate_name", [(503, "http_5xx_rate"), (429, "http_429_rate")])
def test_5xx_and_429_rates_open_below_the_error_rate(code, rate_name):
    cb = CircuitBreaker(CircuitConfig())  # 5xx / 429 open at 20%
    for i in range(8):
        cb.on_result("amend", True, 200, T0 + i * MS)
    cb.on_result("amend", False, code, T0 + 8 * MS)
    assert cb.state(T0 + 8 * MS) == CLOSED
    cb.on_result("amend", False, code, T0 + 9 * MS)  # 2/10: err 20% < 50%, code rate 20% >= 20%
    assert cb.state(T0 + 9 * MS) == OPEN
    assert cb.drain_events()[0].detail.startswith(f"{rate_name}=0.200000 >= 0.200000")


def test_old_results_leave_the_window():
    cb = CircuitBreaker(CircuitConfig())  # 60 s
    for i in range(9):
        cb.on_result("create", False, 500, T0 + i * MS)
    cb.on_result("create", False, 500, T0 + 61 * SEC)  # the 9 are gone: 1 result, under min_requests
    assert cb.state(T0 + 61 * SEC) == CLOSED
    assert cb.rates(T0 + 61 * SEC).total == 1


def test_open_blocks_creates_and_amends_never_cancels():
    cb = opened()
    assert cb.check(NEW, T0 + SEC) == "circuit_open"
    assert cb.check(AMEND, T0 + SEC) == "circuit_open"
    assert cb.check(CANCEL, T0 + SEC) is None
    assert cb.allowed("cancel", T0 + SEC) and not cb.allowed("create", T0 + SEC)


def test_half_open_after_open_duration_probes_spaced_by_cooldown_then_closed():
    cb = opened()
    opened_at = T0 + 9 * MS
    assert cb.check(NEW, opened_at + 30 * SEC - 1) == "circuit_open"
    t = opened_at + 30 * SEC
    assert cb.state(t) == HALF_OPEN
    assert [e.kind for e in cb.drain_events()] == ["half_open"]
    for k in range(5):
        assert cb.check(NEW, t) is None, k
        cb.on_sent(NEW, t)
        assert cb.check(NEW, t + 5 * SEC - 1) == "circuit_half_open"  # cooldown between probes
        assert cb.check(CANCEL, t + 1) is None
        cb.on_result("create", True, 200, t + 100 * MS)
        t += 5 * SEC
        if k < 4:
            assert cb.state(t) == HALF_OPEN
    assert cb.state(t) == CLOSED
    [ev] = cb.drain_events()
    assert (ev.kind, ev.detail) == ("closed", "probes_ok=5")
    assert cb.rates(t).total == 0  # window cleared: pre-outage errors cannot re-open it
    assert cb.check(NEW, t) is None


def test_all_probes_out_blocks_more_until_results():
    cb = CircuitBreaker(replace(CircuitConfig(), cooldown_sec=0.0, half_open_probes=2))
    for i in range(10):
        cb.on_result("create", False, 0, T0)
    t = T0 + 30 * SEC
    for _ in range(2):
        assert cb.check(NEW, t) is None
        cb.on_sent(NEW, t)
    assert cb.check(NEW, t) == "circuit_half_open"


def test_failed_probe_reopens_for_a_new_open_duration():
    cb = opened()
    t = T0 + 9 * MS + 30 * SEC
    cb.on_sent(NEW, t)
    cb.on_result("create", False, 502, t + 50 * MS)
    assert cb.state(t + 50 * MS) == OPEN
    assert cb.check(NEW, t + 50 * MS + 30 * SEC - 1) == "circuit_open"
    assert cb.state(t + 50 * MS + 30 * SEC) == HALF_OPEN
    kinds = [e.kind for e in cb.drain_events()]
    assert kinds == ["half_open", "open", "half_open"]


def test_cancel_successes_do_not_close_but_cancel_failures_reopen():
    cb = opened()
    t = T0 + 40 * SEC
    assert cb.state(t) == HALF_OPEN
    for _ in range(10):
        cb.on_result("cancel", True, 200, t)
    assert cb.state(t) == HALF_OPEN
    cb.on_result("cancel", False, 503, t)
    assert cb.state(t) == OPEN


def test_bad_parameters_are_rejected():
    with pytest.raises(ValueError, match="half_open_probes"):
        CircuitBreaker(replace(CircuitConfig(), half_open_probes=0))
    with pytest.raises(ValueError, match="err_rate_open"):
        CircuitBreaker(replace(CircuitConfig(), err_rate_open=0.0))
    with pytest.raises(ValueError, match="window_sec"):
        CircuitBreaker(replace(CircuitConfig(), window_sec=0.0))


STEP = st.tuples(
    st.integers(0, 20_000),  # ms forward
    st.sampled_from(["create", "amend", "cancel"]),
    st.booleans(),  # ok
    st.sampled_from([200, 400, 429, 500, 503, 0]),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(STEP, max_size=300))
def test_property_cancels_always_pass_and_blocks_only_when_not_closed(steps):
    cb = CircuitBreaker(CircuitConfig())
    now = T0
    actions = {"create": NEW, "amend": AMEND, "cancel": CANCEL}
    for dt, op, ok, code in steps:
        now += dt * MS
        a = actions[op]
        reason = cb.check(a, now)
        st_ = cb.state(now)
        assert st_ in (CLOSED, OPEN, HALF_OPEN)
        if op == "cancel" or st_ == CLOSED:
            assert reason is None
        elif st_ == OPEN:
            assert reason == "circuit_open"
        if reason is None:
            cb.on_sent(a, now)
            cb.on_result(op, ok, code, now + MS)
    kinds = [e.kind for e in cb.drain_events()]
    # transitions alternate sensibly: never two opens without a half_open between them
    for a, b in zip(kinds, kinds[1:]):
        assert (a, b) in {("open", "half_open"), ("half_open", "open"), ("half_open", "closed"), ("closed", "open")}
