"""Order manager: diffing, replace rules, anti-stale, latency boost, caps, state machine,
out-of-order and duplicate reports, gates, snapshots; property tests for the caps and
for cancels always going out."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmkit.config_schema import CircuitConfig, LatencyBoostConfig, StrategyConfig, ThrottleConfig, TradingConfig
from mmkit.core.circuit import CircuitBreaker
from mmkit.core.gates import GateChain
from mmkit.core.instruments import Instrument
from mmkit.core.orders import (
    POLICY_AMEND,
    POLICY_CANCEL_REPLACE,
    Budget,
    OrderManager,
    OrderParams,
    OrderSnapshotError,
)
from mmkit.core.throttle import Throttle
from mmkit.core.types import (
    BUY,
    SELL,
    Ack,
    AmendOrder,
    CancelOrder,
    Canceled,
    CreateOrder,
    DesiredQuote,
    Fill,
    OrderState,
    Reject,
)

SYM = "BTCUSDT"
INST = Instrument(SYM, Decimal("0.1"), Decimal("0.001"))  # one unit (tick x lot) = 0.0001 USD
MS = 1_000_000
T0 = 1_700_000_000 * 1_000_000_000
MID = 600_000  # 60000.0 USD in ticks; 1 bps = 60 ticks
BIG = 300  # a 5 bps move: above replace_threshold_bps (3) and price_drift_bps (2)


def ladder(bid0: int = MID - 10, ask0: int = MID + 10, n: int = 3, step: int = 10, qty: int = 10,
           nb: int | None = None, na: int | None = None) -> list[DesiredQuote]:
    nb = n if nb is None else nb
    na = n if na is None else na
    return ([DesiredQuote(SYM, BUY, i, bid0 - i * step, qty) for i in range(nb)]
            + [DesiredQuote(SYM, SELL, i, ask0 + i * step, qty) for i in range(na)])


def make(gates=None, rng=None, **kw) -> OrderManager:
    return OrderManager(INST, OrderParams(**kw), gates, "t", rng=rng)


def ack(om: OrderManager, actions, ts: int) -> None:
    """The venue accepts everything at ``ts``."""
    for a in actions:
        if isinstance(a, CreateOrder):
            assert om.on_report(Ack(ts, a.client_id, "create", a.price, a.qty))
        elif isinstance(a, AmendOrder):
            assert om.on_report(Ack(ts, a.client_id, "amend", a.price, a.qty))
        else:
            om.on_report(Canceled(ts, a.client_id))


def placed(**kw) -> tuple[OrderManager, list]:
    """A manager with the default 3x3 ladder created and acked at T0."""
    om = make(**kw)
    acts = om.reconcile(ladder(), T0, MID)
    ack(om, acts, T0)
    return om, acts


def ops(actions) -> list[tuple[str, str]]:
    return [(a.op, a.client_id) for a in actions]


class RecordingGate:
    """A fake gate: blocks creates/amends while ``block`` is set, records every call."""

    def __init__(self, block: str | None = None) -> None:
        self.block = block
        self.checked: list = []
        self.sent: list = []

    def check(self, action, now_ns):
        self.checked.append(action)
        return self.block

    def on_sent(self, action, now_ns):
        self.sent.append(action)


# ----------------------------------------------------------------------------- params
def test_params_from_config_take_the_seed_defaults():
    p = OrderParams.from_config(StrategyConfig(), LatencyBoostConfig(), TradingConfig())
    assert p == OrderParams()
    assert (p.min_time_in_book_ms, p.replace_threshold_bps, p.order_ttl_ms, p.price_drift_bps) == (500, 3.0, 800, 2.0)
    assert (p.replace_max_concurrent, p.replace_min_interval_ms) == (2, 60)
    assert (p.tail_age_ms, p.tail_max_batch, p.tail_jitter_ms) == (800, 10, 0)
    assert p.levels_per_side == 3 and p.enable_anti_stale_guard and p.post_only and p.policy == POLICY_AMEND
    q = OrderParams.from_config(replace(StrategyConfig(), levels_per_side=5), LatencyBoostConfig(),
                                replace(TradingConfig(), post_only=False), policy=POLICY_CANCEL_REPLACE,
                                pending_timeout_ms=100)
    assert (q.levels_per_side, q.post_only, q.policy, q.pending_timeout_ms) == (5, False, POLICY_CANCEL_REPLACE, 100)


def test_params_validate():
    with pytest.raises(ValueError, match="policy"):
        OrderParams(policy="yolo")
    with pytest.raises(ValueError, match="replace_max_concurrent"):
        OrderParams(replace_max_concurrent=0)
    with pytest.raises(ValueError, match="tail_jitter_ms"):
        OrderManager(INST, OrderParams(tail_jitter_ms=5))  # jitter without an rng
    with pytest.raises(TypeError, match="Instrument"):
        OrderManager(SYM, OrderParams())  # type: ignore[arg-type]


def test_budget_is_exact():
    assert Budget(2500.1).target_usd == Decimal("2500.1")
    assert Budget("10").target_usd == Decimal(10)
    with pytest.raises(ValueError):
        Budget(-1)
    with pytest.raises(ValueError):
        Budget(None, -1)


# ----------------------------------------------------------------------------- diffing
def test_creates_nearest_level_first_with_deterministic_ids():
    om = make()
    acts = om.reconcile(ladder(), T0, MID)
    assert [a.op for a in acts] == ["create"] * 6
    assert [a.client_id for a in acts] == [f"t{SYM}-{i}" for i in range(1, 7)]
    assert [(a.side, a.level) for a in acts] == [(BUY, 0), (SELL, 0), (BUY, 1), (SELL, 1), (BUY, 2), (SELL, 2)]
    assert all(a.post_only and a.symbol == SYM and a.qty == 10 for a in acts)
    assert om.counters.created == 6 and om.next_seq == 7
    # same inputs, same ids and actions
    again = make().reconcile(ladder(), T0, MID)
    assert again == acts
    # nothing acked yet: no duplicates on the next tick
    assert om.reconcile(ladder(), T0 + MS, MID) == []
    assert [o.state for o in om.open_orders()] == [OrderState.PENDING_NEW] * 6


def test_steady_state_is_silent():
    om, _ = placed()
    for k in range(1, 50):
        assert om.reconcile(ladder(), T0 + k * 10 * MS, MID) == []
    assert all(o.state == OrderState.OPEN for o in om.open_orders())


def test_shifted_ladder_keeps_orders_resting_at_desired_prices():
    om, first = placed(min_time_in_book_ms=0, replace_threshold_bps=0, enable_anti_stale_guard=False, tail_age_ms=0)
    # bids move down one level: old L0/L1 prices become L1/L2, one new inner price
    new = ladder(bid0=MID, ask0=MID + 10)
    acts = om.reconcile(new, T0 + MS, MID)
    # the old bid L2 order (farthest) is the only one moved: amended to the new L0 price
    assert ops(acts) == [("amend", first[4].client_id)]
    assert acts[0].price == MID
    by_id = {o.client_id: o for o in om.open_orders()}
    assert by_id[first[0].client_id].level == 1 and by_id[first[2].client_id].level == 2


def test_pulled_levels_are_canceled_at_once_even_when_young():
    om, first = placed()
    acts = om.reconcile(ladder(nb=1, na=3), T0 + MS, MID)  # strategy pulls bid levels 1 and 2
    assert sorted(ops(acts)) == sorted([("cancel", first[2].client_id), ("cancel", first[4].client_id)])
    assert all(a.reason == "pulled" for a in acts)
    assert om.levels_in_use() == {"buy": 1, "sell": 3}
    # and a whole side at once, with an empty list
    acts = om.reconcile([], T0 + 2 * MS, MID)
    assert len(acts) == 4 and all(isinstance(a, CancelOrder) for a in acts)
    assert om.levels_in_use() == {"buy": 0, "sell": 0}


def test_min_time_in_book_and_replace_threshold():
    om, first = placed(enable_anti_stale_guard=False, tail_age_ms=0)
    moved = ladder(bid0=MID - 10 - BIG, ask0=MID + 10 - BIG)
    assert om.reconcile(moved, T0 + 499 * MS, MID) == []  # too young
    acts = om.reconcile(moved, T0 + 500 * MS, MID)
    assert [a.op for a in acts] == ["amend"]  # one replace at a time (throttle: 60 ms spacing)
    assert acts[0].client_id == first[0].client_id and acts[0].price == MID - 10 - BIG and acts[0].qty == 10
    # a move below 3 bps (170 ticks = 2.8 bps) is not worth the queue place
    om2, _ = placed(enable_anti_stale_guard=False, tail_age_ms=0)
    small = ladder(bid0=MID - 10 - 170, ask0=MID + 10 - 170)
    assert om2.reconcile(small, T0 + 700 * MS, MID) == []
    assert om2.reconcile(ladder(bid0=MID - 10 - 180, ask0=MID + 10 - 180), T0 + 700 * MS, MID) != []


def test_replace_throttle_spacing_and_concurrency():
    om, first = placed(enable_anti_stale_guard=False, tail_age_ms=0, replace_min_interval_ms=60, replace_max_concurrent=2)
    moved = ladder(bid0=MID - 10 - BIG, ask0=MID + 10 - BIG)
    t = T0 + 600 * MS
    a1 = om.reconcile(moved, t, MID)
    assert len(a1) == 1 and om.counters.replace_throttled == 5
    assert om.reconcile(moved, t + 59 * MS, MID) == []  # min_interval_ms
    a2 = om.reconcile(moved, t + 60 * MS, MID)
    assert len(a2) == 1 and om.replaces_in_flight == 2
    assert om.reconcile(moved, t + 200 * MS, MID) == []  # max_concurrent: two amends in flight
    ack(om, a1, t + 210 * MS)
    a3 = om.reconcile(moved, t + 220 * MS, MID)
    assert len(a3) == 1 and om.replaces_in_flight == 2
    assert [a.client_id for a in a1 + a2 + a3] == [first[0].client_id, first[1].client_id, first[2].client_id]
    assert om.counters.replaces == 3 and om.counters.amended == 3


def test_anti_stale_ttl_refreshes_small_moves_and_counts():
    om, first = placed(tail_age_ms=0)
    small = ladder(bid0=MID - 10 - 60, ask0=MID + 10 - 60)  # 1 bps: under the threshold
    assert om.reconcile(small, T0 + 799 * MS, MID) == []
    acts = om.reconcile(small, T0 + 800 * MS, MID)
    assert ops(acts) == [("amend", first[0].client_id)]
    assert om.counters.refresh_amends == {"ttl": 1}
    # guard off: the same order stays
    om2, _ = placed(tail_age_ms=0, enable_anti_stale_guard=False)
    assert om2.reconcile(small, T0 + 900 * MS, MID) == []


def test_anti_stale_drift_against_the_mid_at_pricing():
    om, first = placed(tail_age_ms=0)
    small = ladder(bid0=MID - 10 - 60, ask0=MID + 10 - 60)
    assert om.reconcile(small, T0 + 600 * MS, MID - 119) == []  # mid moved 1.98 bps
    acts = om.reconcile(small, T0 + 600 * MS, MID - 120)  # 2 bps
    assert ops(acts) == [("amend", first[0].client_id)]
    assert om.counters.refresh_amends == {"drift": 1}
    assert om.reconcile(small, T0 + 601 * MS, 0) == []  # mid unknown: no drift check


def test_cancel_replace_policy_is_the_keep_if_equal_baseline():
    om, first = placed(policy=POLICY_CANCEL_REPLACE, min_time_in_book_ms=0, replace_threshold_bps=0,
                       enable_anti_stale_guard=False, tail_age_ms=0, replace_min_interval_ms=0,
                       replace_max_concurrent=100)
    # same prices, other sizes: kept (the baseline never touches an order at the desired price)
    assert om.reconcile(ladder(qty=3), T0 + MS, MID) == []
    assert om.reconcile(ladder(qty=30), T0 + MS, MID) == []
    # bid L0 moves one tick: cancel it and create the new price, no amends
    desired = ladder()
    desired[0] = replace(desired[0], price=desired[0].price + 1)
    acts = om.reconcile(desired, T0 + 2 * MS, MID)
    assert ops(acts) == [("cancel", first[0].client_id), ("create", f"t{SYM}-7")]
    assert acts[0].reason == "replace" and acts[1].price == MID - 9
    assert om.counters.amended == 0 and om.levels_in_use() == {"buy": 3, "sell": 3}


def test_cancel_replace_waits_for_the_cancel_when_the_budget_is_tight():
    per_side = Decimal(3 * 10) * Decimal("0.0001") * MID  # exactly the three levels of a side
    budget = Budget(per_side)
    om = make(policy=POLICY_CANCEL_REPLACE, min_time_in_book_ms=0, replace_threshold_bps=0,
              enable_anti_stale_guard=False, tail_age_ms=0)
    desired = ladder(bid0=MID, step=1, na=0)  # bids at MID, MID-1, MID-2: they fit exactly
    acts = om.reconcile(desired, T0, MID, budget)
    buys = [a for a in acts if a.side == BUY]
    assert len(buys) == 3 and om.counters.budget_capped == 0
    ack(om, acts, T0)
    moved = [replace(q, price=q.price - 3) if q.level == 0 else q for q in desired]
    acts = om.reconcile(moved, T0 + MS, MID, budget)
    assert ops(acts) == [("cancel", buys[0].client_id)]  # no room while the cancel is in flight
    assert om.counters.budget_capped == 1
    assert om.reconcile(moved, T0 + 2 * MS, MID, budget) == []
    om.on_report(Canceled(T0 + 3 * MS, buys[0].client_id))
    acts = om.reconcile(moved, T0 + 4 * MS, MID, budget)
    assert [a.op for a in acts] == ["create"] and acts[0].price == MID - 3


# ----------------------------------------------------------------------------- tail batch
def test_tail_batch_cancels_the_old_tail_and_recreates():
    om, first = placed(tail_max_batch=4, enable_anti_stale_guard=False)
    assert om.reconcile(ladder(), T0 + 799 * MS, MID) == []
    acts = om.reconcile(ladder(), T0 + 800 * MS, MID)
    cancels = [a for a in acts if a.op == "cancel"]
    creates = [a for a in acts if a.op == "create"]
    assert len(cancels) == 4 and all(a.reason == "tail" for a in cancels)
    assert [a.client_id for a in cancels] == [a.client_id for a in first[:4]]  # oldest first, nearest level on ties
    assert len(creates) == 4 and acts.index(creates[0]) > acts.index(cancels[-1])  # cancels go first
    assert [(a.side, a.level, a.price) for a in creates] == [(a.side, a.level, a.price) for a in first[:4]]
    assert om.counters.tail_batch_events == 1 and om.counters.tail_cancels == 4
    # the remaining two go in the next batch
    acts = om.reconcile(ladder(), T0 + 801 * MS, MID)
    assert sum(a.op == "cancel" for a in acts) == 2 and om.counters.tail_batch_events == 2


def test_tail_jitter_is_drawn_from_the_passed_rng():
    def first_batch(seed: int) -> int:
        om = make(rng=random.Random(seed), tail_jitter_ms=100, enable_anti_stale_guard=False)
        ack(om, om.reconcile(ladder(), T0, MID), T0)
        for ms in range(790, 1000):
            if any(a.op == "cancel" for a in om.reconcile(ladder(), T0 + ms * MS, MID)):
                return ms
        raise AssertionError("no tail batch")

    a, b = first_batch(1), first_batch(1)
    assert a == b and 800 <= a <= 900
    assert len({first_batch(s) for s in range(8)}) > 1


def test_tail_disabled_with_zero_age():
    om, _ = placed(tail_age_ms=0, enable_anti_stale_guard=False)
    assert om.reconcile(ladder(), T0 + 10_000 * MS, MID) == []


# ----------------------------------------------------------------------------- caps
def test_level_cap_is_the_smaller_of_params_and_budget():
    om = make()
    acts = om.reconcile(ladder(n=5), T0, MID)
    assert len(acts) == 6 and om.counters.level_capped == 4
    ack(om, acts, T0)
    acts = om.reconcile(ladder(n=5), T0 + MS, MID, Budget(None, 1))
    assert len(acts) == 4 and all(a.reason == "pulled" for a in acts)
    assert om.levels_in_use() == {"buy": 1, "sell": 1}
    assert om.reconcile(ladder(n=5), T0 + 2 * MS, MID, Budget(None, 0)) != []
    assert om.levels_in_use() == {"buy": 0, "sell": 0}


def test_budget_per_side_with_partial_fills():
    unit = Decimal("0.0001")
    px = MID - 10
    # room for exactly two 10-lot orders at px on each side (asks are dearer: only one fits)
    budget = Budget(Decimal(2 * 10 * px) * unit)
    om = make(enable_anti_stale_guard=False, tail_age_ms=0)
    desired = ladder(bid0=px, ask0=px + 1, step=0)
    desired = [replace(q, price=q.price - q.level if q.side == BUY else q.price + q.level) for q in desired]
    acts = om.reconcile(desired, T0, MID, budget)
    assert [(a.side, a.level) for a in acts] == [(BUY, 0), (SELL, 0), (BUY, 1)]
    assert om.counters.budget_capped >= 2
    ack(om, acts, T0)
    assert om.committed_usd()["buy"] <= budget.target_usd
    # bid L0 fills 6 of 10: the filled part still counts, so L2 cannot take its place
    b0 = acts[0].client_id
    om.on_report(Fill(T0 + MS, b0, SYM, BUY, px, 6, "maker", cum_qty=6))
    assert om.get(b0).state == OrderState.PARTIALLY_FILLED
    assert om.reconcile(desired, T0 + 2 * MS, MID, budget) == []
    assert om.committed_usd()["buy"] == Decimal(10 * px + 10 * (px - 1)) * unit
    # the order completes: its budget is released and the level is re-quoted
    om.on_report(Fill(T0 + 3 * MS, b0, SYM, BUY, px, 4, "maker", cum_qty=10))
    assert om.get(b0).state == OrderState.FILLED
    acts = om.reconcile(desired, T0 + 4 * MS, MID, budget)
    assert [(a.op, a.side, a.level) for a in acts] == [("create", BUY, 0)]


def test_budget_shrink_cancels_from_the_outside_in():
    om, first = placed(enable_anti_stale_guard=False, tail_age_ms=0)
    unit = Decimal("0.0001")
    one_level = Decimal(10 * (MID + 30)) * unit  # the dearest single order
    acts = om.reconcile(ladder(), T0 + MS, MID, Budget(one_level * 2))
    reasons = {(a.client_id, a.reason) for a in acts if a.op == "cancel"}
    assert reasons == {(first[4].client_id, "budget"), (first[5].client_id, "budget")}
    assert om.levels_in_use() == {"buy": 2, "sell": 2}


def test_amend_that_would_overflow_the_budget_is_held():
    unit = Decimal("0.0001")
    om = make(enable_anti_stale_guard=False, tail_age_ms=0, min_time_in_book_ms=0)
    budget = Budget(Decimal(10 * (MID - 10)) * unit, 1)
    acts = om.reconcile(ladder(n=1, na=0), T0, MID, budget)
    ack(om, acts, T0)
    up = ladder(n=1, na=0, bid0=MID - 10 + 1000)  # a dearer bid: its notional no longer fits
    assert om.reconcile(up, T0 + MS, MID, budget) == []
    assert om.counters.budget_capped == 1
    down = ladder(n=1, na=0, bid0=MID - 10 - 1000)
    assert [a.op for a in om.reconcile(down, T0 + 2 * MS, MID, budget)] == ["amend"]


def test_inverse_contracts_count_lots_not_price():
    inv = Instrument("BTCUSD", Decimal("0.5"), Decimal("1"), contract_multiplier=Decimal("1"), inverse=True)
    om = OrderManager(inv, OrderParams(enable_anti_stale_guard=False, tail_age_ms=0))
    desired = [DesiredQuote("BTCUSD", BUY, i, 120_000 - i, 100) for i in range(3)]
    acts = om.reconcile(desired, T0, 120_001, Budget(250))
    assert len(acts) == 2 and om.committed_usd()["buy"] == Decimal(200)


# ----------------------------------------------------------------------------- reports
def test_state_machine_happy_path():
    om = make(min_time_in_book_ms=0, enable_anti_stale_guard=False, tail_age_ms=0)
    (c,) = om.reconcile(ladder(n=1, na=0), T0, MID)
    assert om.get(c.client_id).state == OrderState.PENDING_NEW
    assert om.on_report(Ack(T0 + MS, c.client_id, "create", c.price, c.qty))
    o = om.get(c.client_id)
    assert o.state == OrderState.OPEN and o.placed_ns == T0 + MS
    (a,) = om.reconcile(ladder(n=1, na=0, bid0=MID - 10 - BIG), T0 + 2 * MS, MID)
    assert isinstance(a, AmendOrder) and om.get(c.client_id).state == OrderState.PENDING_AMEND
    assert om.get(c.client_id).pending_price == a.price
    om.on_report(Ack(T0 + 3 * MS, c.client_id, "amend", a.price, a.qty))
    assert (om.get(c.client_id).state, om.get(c.client_id).price) == (OrderState.OPEN, a.price)
    om.on_report(Fill(T0 + 4 * MS, c.client_id, SYM, BUY, a.price, 4, "maker", cum_qty=4))
    assert om.get(c.client_id).state == OrderState.PARTIALLY_FILLED
    (x,) = om.reconcile([], T0 + 5 * MS, MID)
    assert om.get(c.client_id).state == OrderState.PENDING_CANCEL
    assert om.finished(c.client_id) is None  # live: the engine makes no copy for it
    om.on_report(Canceled(T0 + 6 * MS, c.client_id))
    assert om.get(c.client_id).state == OrderState.CANCELED and om.open_orders() == []
    assert om.finished(c.client_id) == om.get(c.client_id) and om.finished("nope") is None


def test_fill_before_ack_and_late_ack_after_cancel():
    om = make()
    c1, c2 = om.reconcile(ladder(n=1), T0, MID)
    # a fill overtakes the ack: the order is live and partially filled
    assert om.on_report(Fill(T0 + 1, c1.client_id, SYM, BUY, c1.price, 3, "maker", cum_qty=3))
    assert om.get(c1.client_id).state == OrderState.PARTIALLY_FILLED
    assert om.on_report(Ack(T0 + 2, c1.client_id, "create", c1.price, c1.qty))
    assert om.get(c1.client_id).state == OrderState.PARTIALLY_FILLED
    # c2 is pulled before its ack; the venue's cancel confirmation beats the ack
    om.reconcile(ladder(n=1, na=0), T0 + 3, MID)
    assert om.get(c2.client_id).state == OrderState.PENDING_CANCEL
    om.on_report(Canceled(T0 + 4, c2.client_id))
    assert not om.on_report(Ack(T0 + 5, c2.client_id, "create", c2.price, c2.qty))
    assert om.get(c2.client_id).state == OrderState.CANCELED and om.counters.late_reports == 1
    # a fill that happened before the cancel but is reported after it still counts
    assert om.on_report(Fill(T0 + 6, c2.client_id, SYM, SELL, c2.price, 2, "maker", cum_qty=2))
    assert om.get(c2.client_id).filled == 2 and om.counters.late_fills == 1
    assert om.get(c2.client_id).state == OrderState.CANCELED


def test_ack_while_cancel_pending_does_not_resurrect():
    om = make()
    (c,) = om.reconcile(ladder(n=1, na=0), T0, MID)
    om.reconcile([], T0 + 1, MID)
    assert om.on_report(Ack(T0 + 2, c.client_id, "create", c.price, c.qty))
    assert om.get(c.client_id).state == OrderState.PENDING_CANCEL
    assert om.levels_in_use()["buy"] == 0


def test_duplicate_and_out_of_order_fills_by_cumulative_qty():
    om = make()
    (c,) = om.reconcile(ladder(n=1, na=0), T0, MID)
    ack(om, [c], T0)
    f1 = Fill(T0 + 1, c.client_id, SYM, BUY, c.price, 3, "maker", cum_qty=3)
    f2 = Fill(T0 + 2, c.client_id, SYM, BUY, c.price, 2, "maker", cum_qty=5)
    assert om.on_report(f2)  # the later fill first
    assert om.get(c.client_id).filled == 5
    assert om.on_report(f1)  # the earlier one is still a distinct fill
    assert om.get(c.client_id).filled == 5
    assert not om.on_report(f1) and not om.on_report(f2)  # duplicates: ledger must skip them
    assert om.counters.idem_hits == {"fill": 2} and om.counters.fills == 2
    assert om.committed_usd()["buy"] == Decimal(10 * c.price) * Decimal("0.0001")
    assert om.on_report(Fill(T0 + 3, c.client_id, SYM, BUY, c.price, 5, "maker", cum_qty=10))
    assert om.get(c.client_id).state == OrderState.FILLED and om.counters.filled_orders == 1
    assert not om.on_report(Fill(T0 + 3, c.client_id, SYM, BUY, c.price, 5, "maker", cum_qty=10))


def test_duplicate_acks_and_cancels_are_idempotent_hits():
    om = make()
    (c,) = om.reconcile(ladder(n=1, na=0), T0, MID)
    ack(om, [c], T0)
    assert not om.on_report(Ack(T0, c.client_id, "create", c.price, c.qty))
    om.reconcile([], T0 + 1, MID)
    om.on_report(Canceled(T0 + 2, c.client_id))
    assert not om.on_report(Canceled(T0 + 3, c.client_id))
    assert om.counters.idem_hits == {"cancel": 1, "create": 1}
    assert not om.on_report(Ack(T0, "nope", "create"))
    assert om.counters.unknown_reports == 1


def test_duplicate_client_id_reject_means_the_order_rests():
    """HA failover: the new leader re-sends a deterministic id the venue already has."""
    om = make()
    (c,) = om.reconcile(ladder(n=1, na=0), T0, MID)
    assert om.on_report(Reject(T0 + 1, c.client_id, "create", "duplicate_client_order_id"))
    assert om.get(c.client_id).state == OrderState.OPEN
    assert om.counters.idem_hits == {"create": 1}


def test_rejects():
    om = make(min_time_in_book_ms=0, tail_age_ms=0, enable_anti_stale_guard=False)
    c1, c2 = om.reconcile(ladder(n=1), T0, MID)
    om.on_report(Reject(T0 + 1, c1.client_id, "create", "post_only_would_cross"))
    assert om.get(c1.client_id).state == OrderState.REJECTED and om.levels_in_use()["buy"] == 0
    ack(om, [c2], T0 + 1)
    (a,) = [x for x in om.reconcile(ladder(n=1, ask0=MID + 10 + BIG), T0 + 2, MID) if x.op == "amend"]
    om.on_report(Reject(T0 + 3, c2.client_id, "amend", "post_only_would_cross"))
    o = om.get(c2.client_id)
    assert (o.state, o.price, o.pending_qty) == (OrderState.OPEN, c2.price, 0)
    assert om.counters.rejected == {"amend": 1, "create": 1}
    # a stale amend ack (price of an amend that is not the pending one) is ignored
    (a2,) = [x for x in om.reconcile(ladder(n=1, ask0=MID + 10 + BIG), T0 + 100 * MS, MID) if x.op == "amend"]
    assert not om.on_report(Ack(T0 + 101 * MS, c2.client_id, "amend", a2.price + 7, a2.qty))
    assert om.get(c2.client_id).state == OrderState.PENDING_AMEND


def test_cancel_reject_then_timeouts_resend_then_give_up():
    om = make(pending_timeout_ms=100, max_cancel_retries=2)
    (c,) = om.reconcile(ladder(n=1, na=0), T0, MID)
    assert om.reconcile([], T0 + MS, MID)[0].reason == "pulled"
    assert om.on_report(Reject(T0 + 2 * MS, c.client_id, "cancel", "order_not_found"))
    assert om.get(c.client_id).state == OrderState.PENDING_CANCEL
    # the create ack arrives after our refused cancel: re-send at once
    om.on_report(Ack(T0 + 3 * MS, c.client_id, "create", c.price, c.qty))
    acts = om.reconcile([], T0 + 4 * MS, MID)
    assert ops(acts) == [("cancel", c.client_id)] and acts[0].reason == "pending_timeout"
    assert om.reconcile([], T0 + 50 * MS, MID) == []
    assert len(om.reconcile([], T0 + 104 * MS, MID)) == 1  # retry 2
    assert om.reconcile([], T0 + 204 * MS, MID) == []  # gave up
    assert om.get(c.client_id).state == OrderState.CANCELED and om.counters.cancel_give_ups == 1


def test_pending_new_without_ack_is_canceled_after_the_timeout():
    om = make(pending_timeout_ms=200)
    acts = om.reconcile(ladder(n=1), T0, MID)
    assert om.reconcile(ladder(n=1), T0 + 199 * MS, MID) == []
    out = om.reconcile(ladder(n=1), T0 + 200 * MS, MID)
    assert {a.client_id for a in out if a.op == "cancel"} == {a.client_id for a in acts}
    assert om.counters.pending_timeouts == 2
    # the levels are free again: new orders go out in the same call
    assert sum(a.op == "create" for a in out) == 2


# ----------------------------------------------------------------------------- gates
def test_gates_block_creates_but_never_cancels():
    gate = RecordingGate(block="circuit_open")
    om = make(gates=gate)
    assert om.reconcile(ladder(), T0, MID) == []
    assert om.counters.gated == {"circuit_open": 6} and om.next_seq == 1  # no id burnt
    gate.block = None
    acts = om.reconcile(ladder(), T0 + MS, MID)
    assert len(acts) == 6 and gate.sent == acts
    gate.block = "risk:max_position"
    cancels = om.reconcile([], T0 + 2 * MS, MID)
    assert len(cancels) == 6
    assert not any(isinstance(a, CancelOrder) for a in gate.checked)
    assert gate.sent[-6:] == cancels


def test_stale_order_is_canceled_when_its_refresh_is_gated():
    gate = RecordingGate()
    om = make(gates=[gate], tail_age_ms=0)
    acts = om.reconcile(ladder(n=1, na=0), T0, MID)
    ack(om, acts, T0)
    gate.block = "throttle:amend"
    small = ladder(n=1, na=0, bid0=MID - 10 - 60)
    out = om.reconcile(small, T0 + 800 * MS, MID)
    assert ops(out) == [("cancel", acts[0].client_id)] and out[0].reason == "stale:ttl"
    assert om.counters.stale_cancels == {"ttl": 1} and om.counters.gated == {"throttle:amend": 1}


def test_risk_blocked_replacement_cancels_but_flow_control_only_delays():
    gate = RecordingGate()
    om = make(gates=gate, tail_age_ms=0, enable_anti_stale_guard=False)
    acts = om.reconcile(ladder(n=1), T0, MID)
    ack(om, acts, T0)
    moved = ladder(n=1, bid0=MID - 10 - BIG, ask0=MID + 10 - BIG)
    gate.block = "throttle:amend"
    assert om.reconcile(moved, T0 + 600 * MS, MID) == []  # flow control: keep resting, retry later
    assert om.counters.gated == {"throttle:amend": 2}
    gate.block = "risk:max_position"
    out = om.reconcile(moved, T0 + 700 * MS, MID)
    assert [(a.op, a.reason) for a in out] == [("cancel", "risk:max_position")] * 2
    assert om.counters.cancels == {"risk:max_position": 2} and om.levels_in_use() == {"buy": 0, "sell": 0}


def test_cancel_all_of_one_side():
    om, first = placed()
    out = om.cancel_all(T0 + 1, "risk:max_position", side=BUY)
    assert sorted(a.client_id for a in out) == sorted(a.client_id for a in first if a.side == BUY)
    assert om.levels_in_use() == {"buy": 0, "sell": 3}


def test_cancel_all_cancels_everything_including_pending():
    gate = RecordingGate()
    om = make(gates=gate)
    acts = om.reconcile(ladder(), T0, MID)
    ack(om, acts[:3], T0)
    om.reconcile(ladder(nb=3, na=2), T0 + 1, MID)  # one cancel already pending
    gate.block = "kill"
    out = om.cancel_all(T0 + 2, "kill_switch")
    assert sorted(a.client_id for a in out) == sorted(a.client_id for a in acts)
    assert all(isinstance(a, CancelOrder) and a.reason == "kill_switch" for a in out)
    assert om.levels_in_use() == {"buy": 0, "sell": 0}


def test_real_throttle_and_circuit_in_a_chain():
    """The throttle's create limit holds over the manager's own traffic, cancels are
    counted by it, and an open circuit stops creates/amends but not cancel_all."""
    throttle = Throttle(replace(ThrottleConfig(), window_sec=1, creates_per_sec=4, amends_per_sec=4))
    circuit = CircuitBreaker(CircuitConfig())
    chain = GateChain([circuit, throttle])
    om = OrderManager(INST, OrderParams(min_time_in_book_ms=0, replace_threshold_bps=0, tail_age_ms=200,
                                        replace_min_interval_ms=0, replace_max_concurrent=6), chain, "i")
    rng = random.Random(3)
    sent: list[tuple[int, object]] = []
    t = T0
    for _ in range(400):
        t += 25 * MS
        shift = rng.choice([0, 0, 0, 5, -5, 200, -200])
        acts = om.reconcile(ladder(bid0=MID - 10 + shift, ask0=MID + 10 + shift), t, MID + shift)
        sent += [(t, a) for a in acts]
        ack(om, acts, t + MS)
    creates = [ts for ts, a in sent if a.op == "create"]
    assert om.counters.gated.get("throttle:create", 0) > 0  # the limit was actually reached
    for i in range(len(creates)):
        in_window = [x for x in creates if creates[i] <= x < creates[i] + 1_000_000_000]
        assert len(in_window) <= throttle.limit("create")
    last_cancel = max(ts for ts, a in sent if a.op == "cancel")
    assert throttle.events_in_window("cancel", SYM, last_cancel) > 0  # told about cancels, never asked
    # the circuit opens: no creates or amends, but everything can still be canceled
    for i in range(10):
        circuit.on_result("create", False, 500, t + i * MS)
    t += 20 * MS
    acts = om.reconcile(ladder(bid0=MID + 500, ask0=MID + 520), t, MID + 510)
    assert all(a.op == "cancel" for a in acts)
    assert om.counters.gated.get("circuit_open", 0) > 0
    out = om.cancel_all(t + MS, "shutdown")
    assert {o.client_id for o in om.open_orders()} <= {a.client_id for a in out}


# ----------------------------------------------------------------------------- persistence
def test_snapshot_restore_keeps_ids_unique_and_state():
    om, first = placed()
    om.on_report(Fill(T0 + 1, first[0].client_id, SYM, BUY, first[0].price, 4, "maker", cum_qty=4))
    om.reconcile(ladder(nb=2), T0 + 2, MID)
    snap = om.snapshot()
    blob = json.loads(json.dumps(snap, sort_keys=True))  # plain data
    om2 = make()
    om2.restore(blob)
    assert om2.open_orders() == om.open_orders()
    assert om2.committed_usd() == om.committed_usd() and om2.levels_in_use() == om.levels_in_use()
    assert om2.counters.as_dict() == om.counters.as_dict()
    # the next id continues; the duplicate fill is still recognized after the restart
    assert not om2.on_report(Fill(T0 + 1, first[0].client_id, SYM, BUY, first[0].price, 4, "maker", cum_qty=4))
    a1 = om.reconcile(ladder(bid0=MID + 1000, n=1, na=0), T0 + 700 * MS, MID)
    a2 = om2.reconcile(ladder(bid0=MID + 1000, n=1, na=0), T0 + 700 * MS, MID)
    assert a1 == a2
    with pytest.raises(OrderSnapshotError):
        OrderManager(Instrument("ETHUSDT", Decimal("0.01"), Decimal("0.01")), OrderParams(), None, "t").restore(blob)
    with pytest.raises(OrderSnapshotError):
        make().restore({"version": 99})


def test_desired_validation():
    om = make()
    with pytest.raises(ValueError, match="ETHUSDT"):
        om.reconcile([DesiredQuote("ETHUSDT", BUY, 0, 1, 1)], T0, MID)
    dup = [DesiredQuote(SYM, BUY, 0, MID - 10, 5), DesiredQuote(SYM, BUY, 0, MID - 20, 5),
           DesiredQuote(SYM, BUY, 1, MID - 10, 5), DesiredQuote(SYM, BUY, 2, MID - 30, 0)]
    acts = om.reconcile(dup, T0, MID)
    assert [(a.level, a.price) for a in acts] == [(0, MID - 10)]


def test_unsorted_desired_gives_the_same_result():
    a = make().reconcile(ladder(), T0, MID)
    b = make().reconcile(list(reversed(ladder())), T0, MID)
    assert a == b


class _AlwaysFullPass(OrderManager):
    """The manager without its fast path: every reconcile takes the full pass."""

    __slots__ = ()

    def _nothing_to_do(self, *args: object) -> bool:
        return False


def test_fast_path_matches_the_full_pass_over_a_long_session():
    """A 20,000-tick session with a drifting mid, acks, fills and both policies: the fast
    path is taken most of the time and never changes an action or the state."""
    for policy in (POLICY_AMEND, POLICY_CANCEL_REPLACE):
        rng = random.Random(11)
        om = make(policy=policy)
        twin = make(policy=policy)
        twin.__class__ = _AlwaysFullPass  # type: ignore[assignment]
        fast = 0
        mid = MID
        t = T0
        inflight: list = []
        for i in range(20_000):
            t += 10 * MS
            mid += rng.choice((-3, -2, -1, 0, 0, 0, 0, 1, 2, 3)) + (rng.choice((-150, 150)) if rng.random() < 0.01 else 0)
            desired = ladder(bid0=mid - 5, ask0=mid + 5, step=15, qty=11)
            acts = om.reconcile(desired, t, mid)
            fast += om._nothing_to_do(desired, t, mid, om._max_levels) if not acts and not om._n_detached else 0
            assert twin.reconcile(desired, t, mid) == acts, f"tick {i}"
            if i % 50 == 0:
                assert twin.snapshot() == om.snapshot(), f"tick {i}"
            for a in acts:
                if isinstance(a, CreateOrder):
                    inflight.append(Ack(t, a.client_id, "create", a.price, a.qty))
                elif isinstance(a, AmendOrder):
                    inflight.append(Ack(t, a.client_id, "amend", a.price, a.qty))
                else:
                    inflight.append(Canceled(t, a.client_id))
            if rng.random() < 0.5:  # reports arrive a tick or more later
                for r in inflight:
                    assert om.on_report(r) == twin.on_report(r)
                inflight = []
            if rng.random() < 0.01:
                live = [o for o in om.open_orders() if o.state in (OrderState.OPEN, OrderState.PARTIALLY_FILLED)]
                if live:
                    o = rng.choice(live)
                    f = Fill(t, o.client_id, SYM, o.side, o.price, 1, "maker", cum_qty=o.filled + 1)
                    assert om.on_report(f) == twin.on_report(f)
        assert twin.snapshot() == om.snapshot()
        assert fast > 10_000, f"fast path taken {fast} times of 20000"


def test_docs_example_runs_and_prints_what_it_says(capsys):
    """docs/orders.md: the Python example runs as is and prints the commented results."""
    import re

    from support import ROOT

    text = (ROOT / "docs" / "orders.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    exec(compile(code, "docs/orders.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    expected = [m.strip() for m in re.findall(r"# (\[.*|\{.*)$", code, re.M)]
    assert printed[0] == expected[0] and printed[1] == "[]" and printed[2] == expected[1]


# ----------------------------------------------------------------------------- properties
class ChaosVenue:
    """A venue that executes actions at once but delivers its reports in any order,
    some twice; fills happen whenever the test says.  Keeps the exact truth per order.
    Its own choices come from a seeded ``random.Random`` (hypothesis draws the seed):
    far fewer hypothesis draws per example, so more examples per second."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.orders: dict[str, dict] = {}
        self.pool: list = []

    def send(self, actions, ts: int) -> None:
        for a in actions:
            if isinstance(a, CreateOrder):
                assert a.client_id not in self.orders, "client id reused"
                if self.rng.random() < 0.1:
                    self.pool.append(Reject(ts, a.client_id, "create", "post_only_would_cross"))
                    self.orders[a.client_id] = {"alive": False}
                else:
                    self.orders[a.client_id] = {"alive": True, "side": a.side, "price": a.price, "qty": a.qty,
                                                "filled": 0, "fill_units": 0}
                    self.pool.append(Ack(ts, a.client_id, "create", a.price, a.qty))
            elif isinstance(a, AmendOrder):
                v = self.orders[a.client_id]
                if v["alive"] and a.qty > v["filled"] and self.rng.random() < 0.8:
                    v["price"], v["qty"] = a.price, a.qty
                    self.pool.append(Ack(ts, a.client_id, "amend", a.price, a.qty))
                else:
                    self.pool.append(Reject(ts, a.client_id, "amend", "rejected"))
            else:
                v = self.orders[a.client_id]
                if v["alive"]:
                    v["alive"] = False
                    self.pool.append(Canceled(ts, a.client_id))
                else:
                    self.pool.append(Reject(ts, a.client_id, "cancel", "order_not_found"))

    def fill(self, ts: int) -> None:
        alive = sorted(cid for cid, v in self.orders.items() if v["alive"])
        if not alive:
            return
        cid = self.rng.choice(alive)
        v = self.orders[cid]
        q = self.rng.randint(1, v["qty"] - v["filled"])
        v["filled"] += q
        v["fill_units"] += q * v["price"]
        if v["filled"] == v["qty"]:
            v["alive"] = False
        self.pool.append(Fill(ts, cid, SYM, v["side"], v["price"], q, "maker", cum_qty=v["filled"]))

    def exposure(self, side: int) -> int:
        """Units the venue could still fill on ``side`` plus what its live orders filled."""
        return sum(v["fill_units"] + (v["qty"] - v["filled"]) * v["price"]
                   for v in self.orders.values() if v["alive"] and v["side"] == side)


def committed_units_single(o, fills: dict[str, list[int]]) -> int:
    """One order's committed units from its public data and the fills applied to it."""
    fu, fl = fills.get(o.client_id, [0, 0])
    extra = max(o.filled - fl, 0)
    c = fu + o.price * (extra + max(o.qty - o.filled, 0))
    if o.pending_qty:
        c = max(c, fu + o.pending_price * (extra + max(o.pending_qty - o.filled, 0)))
    return c


def committed_units(om: OrderManager, fills: dict[str, list[int]]) -> dict[int, int]:
    """Each side's committed units, recomputed independently of the manager's running sums."""
    out = {BUY: 0, SELL: 0}
    for o in om.open_orders():
        out[o.side] += committed_units_single(o, fills)
    return out


STEPS = ["tick"] * 6 + ["deliver"] * 4 + ["flush"] * 3 + ["fill"] * 3 + ["pull", "kill"]


def run_chaos(seed: int, n_steps: int, policy: str, budget: Budget, change_budget: bool) -> None:
    """One random session against the chaos venue; every invariant checked after each step.

    Hypothesis draws the seed, the length and the budget; the session's own choices come
    from ``random.Random(seed)`` (hypothesis' per-draw cost would otherwise dominate), so
    a failure is reproduced exactly by its seed and shrinks on the length."""
    rng = random.Random(seed)
    gate = RecordingGate()
    params = OrderParams(policy=policy, min_time_in_book_ms=rng.choice([0, 500]),
                         replace_threshold_bps=rng.choice([0.0, 3.0]), tail_age_ms=rng.choice([0, 300]),
                         pending_timeout_ms=10**9 if not change_budget else 2000)
    om = OrderManager(INST, params, gate, "p")
    # a twin that always takes the full pass: the fast path must never change an outcome
    twin_gate = RecordingGate()
    twin = OrderManager(INST, params, twin_gate, "p")
    twin.__class__ = _AlwaysFullPass  # type: ignore[assignment]
    shape = (3, 10, 10)
    venue = ChaosVenue(random.Random(rng.random()))
    vr = venue.rng
    fills: dict[str, list[int]] = {}
    unit = Decimal("0.0001")
    t = T0
    mid = MID
    for _ in range(n_steps):
        step = rng.choice(STEPS)
        if step in ("tick", "pull"):
            t += rng.choice([0, 1, 30, 70, 200, 450, 900]) * MS
            mid += rng.choice([0, 0, 0, 1, -1, 10, -10, 50, -50, 150, -150, 400, -400])
            if change_budget:
                budget = Budget(rng.randint(0, 60_000), rng.randint(0, 4))
            gate.block = twin_gate.block = rng.choice([None, None, "throttle:create"])
            if step == "pull":
                desired: list[DesiredQuote] = []
            else:
                if rng.random() < 0.3:  # a new ladder shape now and then; the mid moves every tick
                    shape = (rng.randint(0, 5), rng.randint(1, 20), rng.randint(1, 40))
                n, qty, stp = shape
                desired = ladder(bid0=mid - 10, ask0=mid + 10, n=n, qty=qty, step=stp)
            acts = om.reconcile(desired, t, mid, budget)
            assert twin.reconcile(desired, t, mid, budget) == acts
            assert twin.snapshot() == om.snapshot()
            cap_units = None if budget.target_usd is None else int(budget.target_usd / unit)
            maxlv = min(3, budget.max_levels_per_side if budget.max_levels_per_side is not None else 3)
            # levels cap, and the pulled / over-cap levels are gone at once whatever the gates say
            used = om.levels_in_use()
            assert used["buy"] <= maxlv and used["sell"] <= maxlv
            if not desired:
                assert used == {"buy": 0, "sell": 0}
            # budget: the manager's own count, recomputed independently, within the cap
            mine = committed_units(om, fills)
            assert om.committed_usd() == {"buy": mine[BUY] * unit, "sell": mine[SELL] * unit}
            if cap_units is not None:
                if change_budget:
                    # a shrinking budget is enforced on the orders that hold a level
                    held = {BUY: 0, SELL: 0}
                    for o in om.open_orders():
                        if o.state != OrderState.PENDING_CANCEL:
                            held[o.side] += committed_units_single(o, fills)
                    assert held[BUY] <= cap_units and held[SELL] <= cap_units
                else:
                    assert mine[BUY] <= cap_units and mine[SELL] <= cap_units
            venue.send(acts, t)
        elif step in ("deliver", "flush") and venue.pool:
            # one report picked anywhere in the pool, or the whole pool in a random order
            for _ in range(1 if step == "deliver" else len(venue.pool)):
                r = venue.pool.pop(vr.randrange(len(venue.pool)))
                dup = isinstance(r, (Fill, Canceled)) or (isinstance(r, Ack) and r.op == "create")
                if dup and vr.random() < 0.25:
                    venue.pool.append(r)  # delivered again later
                applied = om.on_report(r)
                assert twin.on_report(r) == applied
                if isinstance(r, Fill) and applied:
                    f = fills.setdefault(r.client_id, [0, 0])
                    f[0] += r.price * r.qty
                    f[1] += r.qty
        elif step == "fill":
            venue.fill(t)
        elif step == "kill":
            before = {o.client_id for o in om.open_orders()}
            gate.block = "kill"
            out = om.cancel_all(t, "kill")
            assert twin.cancel_all(t, "kill") == out
            assert {a.client_id for a in out} == before
            assert om.levels_in_use() == {"buy": 0, "sell": 0}
            venue.send(out, t)
        # the venue's real exposure never exceeds a fixed budget (nothing is ever given up here)
        if not change_budget and budget.target_usd is not None:
            cap_units = int(budget.target_usd / unit)
            assert venue.exposure(BUY) <= cap_units and venue.exposure(SELL) <= cap_units
    assert not any(isinstance(a, CancelOrder) for a in gate.checked), "a cancel was put to a gate"
    ids = [a.client_id for a in gate.sent if isinstance(a, CreateOrder)]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("policy", [POLICY_AMEND, POLICY_CANCEL_REPLACE])
@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**32), n_steps=st.integers(1, 120), target=st.integers(0, 40_000),
       levels=st.sampled_from([None, 0, 1, 2, 3, 5]))
def test_property_fixed_budget_never_overflows_and_cancels_always_go(policy, seed, n_steps, target, levels):
    """Fixed budget (USD per side; one 10-lot order at 60000 is 600 USD): levels and
    notional stay capped in the manager's books *and* at the venue, pulls and kill
    switches always clear the levels, no cancel is ever put to a gate, ids never repeat."""
    run_chaos(seed, n_steps, policy, Budget(target, levels), change_budget=False)


@pytest.mark.parametrize("policy", [POLICY_AMEND, POLICY_CANCEL_REPLACE])
@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32), n_steps=st.integers(1, 120))
def test_property_changing_budget_and_levels(policy, seed, n_steps):
    """The allocator moves the budget and the level cap every tick (with 2 s pending
    timeouts): the orders holding a level always fit the current caps."""
    run_chaos(seed, n_steps, policy, Budget(10_000, 3), change_budget=True)


# ----------------------------------------------------------------------------- operator orders and settings
def test_submit_external_is_tracked_outside_the_ladder_until_filled():
    om, first = placed(tail_age_ms=0)
    before = om.committed_usd()
    a, why = om.submit_external(SELL, MID - 50, 25, T0 + MS, mid_ticks=MID)
    assert why is None and isinstance(a, CreateOrder) and a.post_only is False and a.level == -1
    assert a.client_id == f"t{SYM}-7" and om.next_seq == 8 and om.counters.created == 7
    assert om.get(a.client_id).state == OrderState.PENDING_NEW and len(om.open_orders()) == 7
    assert om.levels_in_use() == {"buy": 3, "sell": 3}  # it holds no level
    assert om.committed_usd()["sell"] == before["sell"] + 25 * (MID - 50) * Decimal("0.0001")
    # the strategy's ladder is unchanged: reconcile neither pulls nor replaces the external order
    assert om.reconcile(ladder(), T0 + 2 * MS, MID) == []
    pulled = om.reconcile(ladder(n=1), T0 + 3 * MS, MID) + om.reconcile(ladder(n=0), T0 + 4 * MS, MID)
    assert len(pulled) == 6 and a.client_id not in {x.client_id for x in pulled}  # the ladder goes, it stays
    for x in pulled:
        om.on_report(Canceled(T0 + 4 * MS, x.client_id))
    assert [o.client_id for o in om.open_orders()] == [a.client_id]
    assert om.on_report(Ack(T0 + 5 * MS, a.client_id, "create", a.price, a.qty))
    assert om.on_report(Fill(T0 + 6 * MS, a.client_id, SYM, SELL, MID - 50, 10, 0.0, "taker", cum_qty=10))
    assert om.get(a.client_id).state == OrderState.PARTIALLY_FILLED
    assert om.on_report(Fill(T0 + 7 * MS, a.client_id, SYM, SELL, MID - 60, 15, 0.0, "taker", cum_qty=25))
    assert om.get(a.client_id).state == OrderState.FILLED
    assert a.client_id not in {o.client_id for o in om.open_orders()}
    assert om.counters.filled_orders == 1


def test_submit_external_asks_the_gates_and_is_canceled_by_cancel_all():
    gate = RecordingGate(block="throttle:create")
    om = make(gates=gate)
    assert om.submit_external(BUY, MID, 5, T0) == (None, "throttle:create")
    assert om.counters.gated == {"throttle:create": 1} and om.open_orders() == [] and om.next_seq == 1
    gate.block = None
    a, _ = om.submit_external(BUY, MID, 5, T0)
    assert gate.sent == [a]
    cancels = om.cancel_all(T0 + MS, "flatten_rest")
    assert ops(cancels) == [("cancel", a.client_id)]
    assert om.on_report(Canceled(T0 + 2 * MS, a.client_id))
    assert om.open_orders() == [] and om.committed_usd() == {"buy": 0, "sell": 0}
    for bad in ((0, MID, 5), (BUY, 0, 5), (BUY, MID, 0), (BUY, MID, 1.5)):
        with pytest.raises(ValueError):
            om.submit_external(bad[0], bad[1], bad[2], T0)


def test_set_anti_stale_changes_the_running_guard():
    om, first = placed(tail_age_ms=0)
    small = ladder(bid0=MID - 10 - 60, ask0=MID + 10 - 60)  # 1 bps: under the replace threshold
    assert om.anti_stale_settings() == {"enabled": True, "order_ttl_ms": 800, "price_drift_bps": 2.0}
    om.set_anti_stale(True, 500, 2.0)
    assert om.params.order_ttl_ms == 500 and om.anti_stale_settings()["order_ttl_ms"] == 500
    acts = om.reconcile(small, T0 + 500 * MS, MID)  # stale at the new TTL, not the old 800 ms
    assert ops(acts) == [("amend", first[0].client_id)] and om.counters.refresh_amends == {"ttl": 1}
    om2, _ = placed(tail_age_ms=0)
    om2.set_anti_stale(False, 800, 2.0)
    assert om2.params.enable_anti_stale_guard is False
    assert om2.reconcile(small, T0 + 900 * MS, MID) == []  # off: the old order stays
    for bad in (("yes", 1, 1.0), (True, -1, 1.0), (True, 1.5, 1.0), (True, 1, float("nan")), (True, 1, -0.1)):
        with pytest.raises(ValueError):
            om2.set_anti_stale(*bad)
    assert om2.anti_stale_settings() == {"enabled": False, "order_ttl_ms": 800, "price_drift_bps": 2.0}
