"""Throttle: exact sliding-window limits, the seed ring buffer, jittered backoff, snapshots."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmkit.config_schema import ThrottleConfig, ThrottleThresholds
from mmkit.core.throttle import JITTER_BUCKET_NS, SecondRing, Throttle, ThrottleSnapshotError
from mmkit.core.types import BUY, AmendOrder, CancelOrder, CreateOrder

SEC = 1_000_000_000
MS = 1_000_000
T0 = 1_700_000_000 * SEC  # a whole second, so bucket edges are easy to read


def create(sym: str = "BTCUSDT", cid: str = "c") -> CreateOrder:
    return CreateOrder(cid, sym, BUY, 100, 1)


def amend(sym: str = "BTCUSDT") -> AmendOrder:
    return AmendOrder("c", sym, BUY, 101, 1)


def cancel(sym: str = "BTCUSDT") -> CancelOrder:
    return CancelOrder("c", sym)


def send_until_blocked(t: Throttle, action, now: int, cap: int = 10_000) -> int:
    n = 0
    while n < cap and t.check(action, now) is None:
        t.on_sent(action, now)
        n += 1
    return n


# ----------------------------------------------------------------------------- seed defaults
def test_seed_defaults_window_3s_creates_10_amends_20_cancels_25():
    t = Throttle(ThrottleConfig())
    assert t.window_sec == 3
    assert (t.limit("create"), t.limit("amend"), t.limit("cancel")) == (30, 60, 75)


def test_burst_fills_the_window_then_blocks_until_the_oldest_send_is_window_old():
    t = Throttle(ThrottleConfig())
    assert send_until_blocked(t, create(), T0) == 30
    assert t.check(create(), T0) == "throttle:create"
    assert t.check(create(), T0 + 3 * SEC - 1) == "throttle:create"
    assert t.check(create(), T0 + 3 * SEC) is None
    # other ops and other symbols have their own windows
    assert t.check(amend(), T0) is None
    assert t.check(create("ETHUSDT"), T0) is None


def test_exact_across_a_second_boundary_where_whole_second_buckets_would_allow_double():
    t = Throttle(ThrottleConfig())
    assert send_until_blocked(t, create(), T0 + 999 * MS) == 30  # end of second 0
    # 2 ms later, in the next second: second-bucket counting would see an empty bucket 3 s later
    assert t.check(create(), T0 + 1001 * MS) == "throttle:create"
    assert t.check(create(), T0 + 3 * SEC + 998 * MS) == "throttle:create"
    assert t.check(create(), T0 + 3 * SEC + 999 * MS) is None


def test_amend_limit_and_reason():
    t = Throttle(ThrottleConfig())
    assert send_until_blocked(t, amend(), T0) == 60
    assert t.check(amend(), T0) == "throttle:amend"


def test_cancels_are_counted_but_never_blocked():
    t = Throttle(ThrottleConfig())
    for _ in range(200):
        assert t.check(cancel(), T0) is None
        t.on_sent(cancel(), T0)
    assert t.events_in_window("cancel", "BTCUSDT", T0) == 200
    assert not t.allowed("cancel", "BTCUSDT", T0)
    assert t.headroom("cancel", "BTCUSDT", T0) == 0
    assert t.headroom("cancel", "BTCUSDT", T0 + 3 * SEC) == 75
    assert t.headroom("create", "BTCUSDT", T0) == 30


def test_events_in_window_counts_whole_seconds_and_rolls_off():
    t = Throttle(ThrottleConfig())
    for s in range(5):
        for _ in range(s + 1):
            t.on_sent(create(), T0 + s * SEC + 500 * MS)
    # at second 4 the window holds seconds 2, 3, 4: 3 + 4 + 5
    assert t.events_in_window("create", "BTCUSDT", T0 + 4 * SEC) == 12
    assert t.events_in_window_total(T0 + 4 * SEC) == 12
    assert t.events_in_window("create", "BTCUSDT", T0 + 7 * SEC) == 0
    assert t.events_in_window("amend", "BTCUSDT", T0) == 0


def test_rate_times_window_below_one_is_rejected():
    with pytest.raises(ValueError, match="creates_per_sec"):
        Throttle(replace(ThrottleConfig(), creates_per_sec=0.2))  # 0.2 x 3 s < 1 send


def test_fractional_rates_floor_to_whole_sends():
    t = Throttle(replace(ThrottleConfig(), creates_per_sec=2.5, window_sec=3))
    assert t.limit("create") == 7


# ----------------------------------------------------------------------------- the ring
def test_ring_layout_base_ts_plus_idx_is_the_newest_second():
    r = SecondRing(3, 100)
    r.add(100)
    r.add(101, 2)
    r.add(102, 3)
    assert r.head_sec == 102 and r.base_ts + r.idx == 102
    assert r.total(102) == 6
    r.add(103)  # second 100 leaves
    assert r.total(103) == 6
    assert r.buckets() == [(101, 2), (102, 3), (103, 1)]
    assert r.total(110) == 0 and r.head_sec == 110
    assert r.add(105) is False  # already outside the ring


def test_ring_late_add_lands_in_its_own_bucket():
    r = SecondRing(3, 0)
    r.add(10)
    assert r.add(9) is True
    assert r.buckets() == [(9, 1), (10, 1)]
    assert r.total(9) == 1  # a look back in time only sums seconds <= 9


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(1, 5)), max_size=60), st.integers(1, 6))
def test_ring_matches_a_naive_count(steps, size):
    r = SecondRing(size, 0)
    events: list[int] = []
    now = 0
    for dt, n in steps:
        now += dt
        r.add(now, n)
        events += [now] * n
        assert r.total(now) == sum(1 for e in events if now - size < e <= now)
        assert r.base_ts + r.idx == now


# ----------------------------------------------------------------------------- backoff
def test_error_starts_backoff_at_base_with_jitter_and_spaces_sends():
    t = Throttle(ThrottleConfig())
    t.on_sent(create(), T0)
    t.on_error("BTCUSDT", T0 + 10 * MS)
    b = t.backoff_ms("BTCUSDT", T0 + 10 * MS)
    assert 180 <= b <= 220  # 200 ms +/- 10%
    [ev] = t.drain_events()
    assert (ev.guard, ev.symbol, ev.kind) == ("throttle:backoff", "BTCUSDT", "breach")
    assert "backoff_ms=200" in ev.detail
    assert t.check(create(), T0 + 10 * MS) == "throttle:backoff"
    assert t.check(amend(), T0 + b * MS - 1) == "throttle:backoff"
    assert t.check(create(), T0 + b * MS) is None
    assert t.check(cancel(), T0 + 10 * MS) is None
    assert t.check(create("ETHUSDT"), T0 + 10 * MS) is None  # per symbol


def test_error_ratio_under_the_trigger_does_not_back_off():
    t = Throttle(ThrottleConfig())  # trigger 5%
    for i in range(99):
        t.on_success("BTCUSDT", T0 + i * MS)
    t.on_error("BTCUSDT", T0 + 100 * MS)  # 1/100 = 1%
    assert t.error_ratio("BTCUSDT", T0 + 100 * MS) == pytest.approx(0.01)
    assert t.backoff_ms("BTCUSDT", T0 + 100 * MS) == 0


def test_backoff_doubles_once_per_period_and_the_cap_is_a_hard_ceiling():
    cfg = replace(ThrottleConfig(), jitter_ratio=0.0)
    t = Throttle(cfg)
    now = T0
    t.on_error("X", now)
    assert t.backoff_ms("X", now) == 200
    t.on_error("X", now + 1 * MS)  # in-flight error within the same period: no compounding
    assert t.backoff_ms("X", now + 1 * MS) == 200
    seen = []
    for _ in range(10):
        now += t.backoff_ms("X", now) * MS
        t.on_error("X", now)
        seen.append(t.backoff_ms("X", now))
    assert seen == [400, 800, 1600, 3200, 5000, 5000, 5000, 5000, 5000, 5000]
    jittered = Throttle(ThrottleConfig())
    for i in range(12):
        jittered.on_error("X", T0 + i * 6 * SEC)
    for k in range(40):  # every 5 s bucket draws a new jitter; none may pass the cap
        assert jittered.backoff_ms("X", T0 + 66 * SEC + k * JITTER_BUCKET_NS // 4) <= 5000


def test_success_halves_the_backoff_back_to_zero_and_reports_recover():
    t = Throttle(replace(ThrottleConfig(), jitter_ratio=0.0))
    now = T0
    for _ in range(4):
        t.on_error("X", now)
        now += t.backoff_ms("X", now) * MS
    assert t.backoff_ms("X", now) == 1600
    t.drain_events()
    # the error ratio must come back under 5% before successes relax it
    for i in range(200):
        t.on_success("X", now + i * MS)
    now += 199 * MS
    assert t.backoff_ms("X", now) == 0
    assert [e.kind for e in t.drain_events()] == ["recover"]


def test_backoff_decays_by_half_every_window_without_a_trigger():
    t = Throttle(replace(ThrottleConfig(), jitter_ratio=0.0))
    now = T0
    for _ in range(3):
        t.on_error("X", now)
        now += t.backoff_ms("X", now) * MS
    t.on_error("X", now)
    assert t.backoff_ms("X", now) == 1600
    end = now + 1600 * MS  # quiet time counts from the end of the backoff period
    assert t.backoff_ms("X", end + 3 * SEC - 1) == 1600
    assert t.backoff_ms("X", end + 3 * SEC) == 800
    assert t.backoff_ms("X", end + 6 * SEC) == 400
    assert t.backoff_ms("X", end + 9 * SEC) == 200
    assert t.backoff_ms("X", end + 12 * SEC) == 0  # 100 < base: gone
    assert [e.kind for e in t.drain_events()] == ["breach", "recover"]


def test_ws_lag_backs_off_every_symbol_and_recovers():
    t = Throttle(replace(ThrottleConfig(), jitter_ratio=0.0))
    t.on_ws_lag(2999, T0)
    assert t.backoff_ms("BTCUSDT", T0) == 0
    t.on_ws_lag(3000, T0)
    assert t.backoff_ms("BTCUSDT", T0) == 200 and t.backoff_ms("ETHUSDT", T0) == 200
    t.on_sent(create("ETHUSDT"), T0)
    assert t.check(create("ETHUSDT"), T0 + 199 * MS) == "throttle:backoff"
    t.on_ws_lag(50, T0 + 10 * MS)
    assert t.backoff_ms("ETHUSDT", T0 + 10 * MS) == 0
    assert [(e.symbol, e.kind) for e in t.drain_events()] == [("", "breach"), ("", "recover")]


def test_jitter_is_deterministic_keyed_by_symbol_and_5s_bucket_and_bounded():
    t = Throttle(ThrottleConfig())
    b0 = T0 - T0 % JITTER_BUCKET_NS
    assert t.jitter("BTCUSDT", b0, 1000) == t.jitter("BTCUSDT", b0 + JITTER_BUCKET_NS - 1, 1000)
    assert t.jitter("BTCUSDT", b0, 1000) == Throttle(ThrottleConfig()).jitter("BTCUSDT", b0, 1000)
    values = {t.jitter(s, b0 + k * JITTER_BUCKET_NS, 1000) for s in ("BTCUSDT", "ETHUSDT") for k in range(50)}
    assert len(values) > 20  # it does vary across symbols and buckets
    assert all(900 <= v <= 1100 for v in values)
    flat = Throttle(replace(ThrottleConfig(), jitter_ratio=0.0))
    assert flat.jitter("BTCUSDT", b0, 1000) == 1000


# ----------------------------------------------------------------------------- F2 thresholds
def test_per_symbol_thresholds_seed_example():
    cfg = replace(
        ThrottleConfig(),
        global_thresholds=ThrottleThresholds(max_throttle_backoff_ms=2000, max_throttle_events_in_window_total=100),
        per_symbol={"BTCUSDT": ThrottleThresholds(max_throttle_backoff_ms=100, max_throttle_events_in_window_total=10)},
    )
    t = Throttle(cfg)
    for sym in ("BTCUSDT", "ETHUSDT"):
        for _ in range(11):
            t.on_sent(create(sym), T0)
    assert t.threshold_failures(T0) == ["Throttle events in window too high: 11 > 10 (BTCUSDT)"]
    t.on_error("BTCUSDT", T0)
    t.on_error("ETHUSDT", T0)
    fails = t.threshold_failures(T0)
    assert fails[0].startswith("Throttle backoff too high: ") and fails[0].endswith(" > 100 (BTCUSDT)")
    assert len(fails) == 2  # ETHUSDT's ~200 ms is under the global 2000


def test_default_thresholds_pass_a_quiet_throttle():
    t = Throttle(ThrottleConfig())
    t.on_sent(create(), T0)
    assert t.threshold_failures(T0) == []
    assert t.backoff_ms_max(T0) == 0


# ----------------------------------------------------------------------------- property: never exceeded
ACTIONS = st.tuples(
    st.integers(0, 400),  # ms since previous attempt
    st.sampled_from(["create", "amend", "cancel"]),
    st.sampled_from(["A", "B"]),
    st.sampled_from(["none", "error", "success", "lag", "calm"]),
)


def _action(op: str, sym: str):
    return {"create": create(sym), "amend": amend(sym), "cancel": cancel(sym)}[op]


def _assert_never_exceeded(sends: dict, t: Throttle) -> None:
    w = t.window_sec * SEC
    for (op, _sym), times in sends.items():
        if op == "cancel":
            continue
        lim = t.limit(op)
        for i in range(len(times) - lim):
            assert times[i + lim] - times[i] >= w, f"{op}: {lim + 1} sends within {(times[i + lim] - times[i]) / 1e9}s"


@settings(max_examples=150, deadline=None)
@given(st.lists(ACTIONS, max_size=400), st.sampled_from([1, 2, 3]), st.sampled_from([1.0, 2.0, 10.0]))
def test_property_limits_never_exceeded_in_any_window(steps, window, rate):
    t = Throttle(replace(ThrottleConfig(), window_sec=window, creates_per_sec=rate, amends_per_sec=rate))
    now = T0
    sends: dict[tuple[str, str], list[int]] = {}
    for dt, op, sym, outcome in steps:
        now += dt * MS
        if outcome == "error":
            t.on_error(sym, now)
        elif outcome == "success":
            t.on_success(sym, now)
        elif outcome == "lag":
            t.on_ws_lag(5000, now)
        elif outcome == "calm":
            t.on_ws_lag(10, now)
        a = _action(op, sym)
        reason = t.check(a, now)
        if op == "cancel":
            assert reason is None
        if reason is None:
            t.on_sent(a, now)
            sends.setdefault((op, sym), []).append(now)
        assert t.events_in_window(op, sym, now) <= (t.limit(op) if op != "cancel" else 10**9)
        assert 0 <= t.backoff_ms(sym, now) <= 5000
    _assert_never_exceeded(sends, t)


# ----------------------------------------------------------------------------- snapshots
def test_snapshot_v2_shape_is_plain_json():
    t = Throttle(ThrottleConfig())
    t.on_sent(create(), T0)
    t.on_sent(create(), T0 + SEC)
    t.on_sent(cancel("ETHUSDT"), T0)
    t.on_error("BTCUSDT", T0)
    snap = t.to_snapshot()
    assert json.loads(json.dumps(snap)) == snap
    assert snap["version"] == 2 and snap["window_sec"] == 3
    c = snap["symbols"]["BTCUSDT"]["create"]
    assert c["base_ts"] + c["idx"] == T0 // SEC + 1
    assert sorted(c["ring"]) == [0, 1, 1]
    assert c["stamps_ns"] == [T0, T0 + SEC]
    assert snap["backoff"]["BTCUSDT"] == {"ms": 200, "since_ns": T0}
    assert set(snap["symbols"]["ETHUSDT"]) == {"cancel"}


def test_snapshot_round_trip_is_exact_and_behaves_the_same():
    cfg = ThrottleConfig()
    t = Throttle(cfg)
    for i in range(45):
        t.on_sent(create(), T0 + i * 50 * MS)
    t.on_ws_lag(4000, T0)
    snap = t.to_snapshot()
    u = Throttle.from_snapshot(json.loads(json.dumps(snap)), cfg)
    assert u.to_snapshot() == snap
    for k in range(100):
        now = T0 + 2 * SEC + k * 37 * MS
        assert u.check(create(), now) == t.check(create(), now)
        assert u.events_in_window("create", "BTCUSDT", now) == t.events_in_window("create", "BTCUSDT", now)


def test_seed_v2_example_with_a_60s_window_loads_its_newest_seconds():
    ring = [0, 1, 2, 0, 0, 7] + [0] * 54
    seed = {"version": 2, "window_sec": 60,
            "symbols": {"BTCUSDT": {"create": {"base_ts": 1640000000, "idx": 5, "ring": ring},
                                    "amend": {"base_ts": 1640000000, "idx": 5, "ring": [0] * 60},
                                    "cancel": {"base_ts": 1640000000, "idx": 5, "ring": [3] + [0] * 59}}}}
    t = Throttle.from_snapshot(seed, ThrottleConfig())  # window 3 s: keeps seconds ...03..05
    now = 1640000005 * SEC
    assert t.events_in_window("create", "BTCUSDT", now) == 7  # ring[3], ring[4], ring[5]
    assert t.events_in_window("cancel", "BTCUSDT", now) == 0
    same = Throttle.from_snapshot(seed, replace(ThrottleConfig(), window_sec=60))
    assert same.events_in_window("create", "BTCUSDT", now) == 10
    assert same.to_snapshot()["symbols"]["BTCUSDT"]["create"]["ring"] == ring


def test_snapshot_without_stamps_is_rebuilt_conservatively():
    cfg = ThrottleConfig()
    snap = {"version": 2, "window_sec": 3,
            "symbols": {"BTCUSDT": {"create": {"base_ts": T0 // SEC, "idx": 0, "ring": [30, 0, 0]}}}}
    t = Throttle.from_snapshot(snap, cfg)
    # the 30 sends of second T0 are assumed at its last nanosecond: blocked until T0 + 4 s - 1 ns
    assert t.check(create(), T0 + 3 * SEC + 999 * MS) == "throttle:create"
    assert t.check(create(), T0 + 4 * SEC - 1) is None


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(0, 300), min_size=1, max_size=120), st.lists(st.integers(0, 300), max_size=120),
       st.booleans())
def test_property_restored_throttle_never_exceeds_with_the_true_history(before, after, drop_stamps):
    cfg = ThrottleConfig()
    t = Throttle(cfg)
    now, sends = T0, []
    for dt in before:
        now += dt * MS
        if t.check(create(), now) is None:
            t.on_sent(create(), now)
            sends.append(now)
    snap = t.to_snapshot()
    if drop_stamps:
        for ops in snap["symbols"].values():
            for w in ops.values():
                del w["stamps_ns"]
    u = Throttle.from_snapshot(snap, cfg)
    for dt in after:
        now += dt * MS
        if u.check(create(), now) is None:
            u.on_sent(create(), now)
            sends.append(now)
    _assert_never_exceeded({("create", "BTCUSDT"): sends}, u)


def test_legacy_v1_timestamps_convert():
    v1 = {"version": 1, "window_since": "2025-01-01T00:00:00+00:00", "events_total": 31, "backoff_ms_max": 0,
          "last_event_ts": "2025-01-01T00:00:00+00:00",
          "symbols": {"BTCUSDT": {"create": [T0 / SEC + i * 0.01 for i in range(30)], "cancel": [T0 / SEC - 10]}}}
    t = Throttle.from_snapshot(v1, ThrottleConfig())
    assert t.events_in_window("create", "BTCUSDT", T0) == 30
    assert t.events_in_window("cancel", "BTCUSDT", T0) == 0  # older than the window
    assert t.check(create(), T0 + 2 * SEC) == "throttle:create"
    assert t.check(create(), T0 + 3 * SEC + 10 * MS) is None
    assert t.to_snapshot()["version"] == 2
    # no version key = legacy
    del v1["version"]
    assert Throttle.from_snapshot(v1, ThrottleConfig()).events_in_window("create", "BTCUSDT", T0) == 30


@pytest.mark.parametrize("bad, where", [
    ([], "object"),
    ({"version": 3}, "version"),
    ({"version": 2, "window_sec": 0}, "window_sec"),
    ({"version": 2, "window_sec": 3, "symbols": []}, "symbols"),
    ({"version": 2, "window_sec": 3, "symbols": {"X": {"place": {}}}}, "unknown op"),
    ({"version": 2, "window_sec": 3, "symbols": {"X": {"create": {"base_ts": 1, "idx": 0, "ring": [1, 2]}}}}, "ring"),
    ({"version": 2, "window_sec": 3, "symbols": {"X": {"create": {"base_ts": 1, "idx": 3, "ring": [0, 0, 0]}}}}, "idx"),
    ({"version": 2, "window_sec": 3, "symbols": {"X": {"create": {"base_ts": 1, "idx": 0, "ring": [0, -1, 0]}}}}, ">= 0"),
    ({"version": 2, "window_sec": 3, "symbols": {"X": {"create": {"base_ts": 1, "idx": 0, "ring": [0, 0, 0],
                                                                  "stamps_ns": [5, 1]}}}}, "ascending"),
    ({"version": 2, "window_sec": 3, "backoff": {"X": {"ms": -1, "since_ns": 0}}}, "backoff.X"),
    ({"version": 1, "symbols": {"X": {"create": ["yesterday"]}}}, "unix timestamps"),
])
def test_bad_snapshots_are_invalid_payload(bad, where):
    with pytest.raises(ThrottleSnapshotError, match=where) as exc:
        Throttle.from_snapshot(bad, ThrottleConfig())
    assert exc.value.reason == "invalid_payload"


def test_seed_throttle_guard_v1_meta_only_snapshot_loads_as_empty():
    # seed "Throttle snapshots": the ThrottleGuard's v1 file carries only derived meta fields
    seed = json.loads('{"version":1,"window_since":"2025-01-01T00:00:00+00:00","events_total":0,'
                      '"backoff_ms_max":0,"last_event_ts":"2025-01-01T00:00:00+00:00"}')
    t = Throttle.from_snapshot(seed, ThrottleConfig())
    assert t.symbols() == [] and t.to_snapshot()["symbols"] == {}
