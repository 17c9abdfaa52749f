"""Fill simulator fidelity: crafted micro-scenarios with hand-computed answers for each
queue model, latency races, partial fills, takers walking levels, fees and rebates,
amend priority rules, book crossing, toxic sweeps, tie rules and report ordering,
calibration parsing, conservation properties, and the order manager consuming the
reports end to end."""

from __future__ import annotations

import random
from collections import defaultdict
from decimal import Decimal

import pytest

from mmkit.core.events import BUY, SELL, BookDelta, BookSnapshot, Quote, SeqGap, Trade
from mmkit.core.fillsim import (
    CALIBRATION_KEYS,
    FEE_MODELS,
    CalibrationError,
    CalibrationParams,
    ConstantLatency,
    FillSimParams,
    FillSimulator,
    FlatFees,
    ModelParamError,
    NormalLatency,
    TieredFees,
    UnknownModelError,
    calibration_from_mapping,
    make_fee_model,
    make_latency_model,
    make_queue_model,
)
from mmkit.core.instruments import Instrument
from mmkit.core.ledger import Ledger
from mmkit.core.orders import OrderManager, OrderParams
from mmkit.core.types import (
    Ack,
    AmendOrder,
    CancelOrder,
    Canceled,
    CreateOrder,
    DesiredQuote,
    Fill,
    Reject,
)

SYM = "BTCUSDT"
INST = Instrument(SYM, Decimal("0.1"), Decimal("0.001"))  # 1 lot = 0.001 BTC
MS = 1_000_000
PX = 600_000  # 60,000.0 USD in ticks: 1 lot is worth 60 USD


def snap(ts, bids, asks, sym=SYM):
    return BookSnapshot(ts, ts, sym, tuple(bids), tuple(asks))


def delta(ts, bids=(), asks=()):
    return BookDelta(ts, ts, SYM, tuple(bids), tuple(asks))


def trade(ts, side, px, qty):
    return Trade(ts, ts, SYM, side, px, qty)


def make_sim(queue="risk_averse", qparams=None, *, latency=None, fees=None, seed=1, instruments=None, **params):
    return FillSimulator(instruments or {SYM: INST}, latency or ConstantLatency(10.0, 10.0),
                         make_queue_model(queue, qparams), fees or FlatFees(-0.5, 5.0), random.Random(seed),
                         FillSimParams(**params))


def drain(sim, until=None):
    return [r for _, r in sim.drain_reports(until)]


def fills_of(reports, cid=None):
    return [r for r in reports if isinstance(r, Fill) and (cid is None or r.client_id == cid)]


def rest_bid(sim, cid="b1", qty=2, px=PX, visible=5, t=0):
    """Book bid px x visible / ask px+10 x5; our post-only bid joins at t + 10 ms."""
    sim.on_market(snap(t, [(px, visible)], [(px + 10, 5)]))
    sim.submit(CreateOrder(cid, SYM, BUY, px, qty), t)
    sim.process_arrivals(t + 10 * MS)
    return sim.order(cid)


ALL_QUEUES = ("risk_averse", "prob_power", "prob_log", "optimistic")


# ============================================================================= queue position
@pytest.mark.parametrize("queue,expected", [
    ("risk_averse", [0, 0, 1, 1]),
    ("prob_power", [0, 0, 1, 1]),
    ("prob_log", [0, 0, 1, 1]),
    ("optimistic", [2, 0, 0, 0]),  # fills whole on the first touch
])
def test_order_behind_5_lots_fills_only_after_5_lots_trade(queue, expected):
    sim = make_sim(queue)
    o = rest_bid(sim)
    assert o is not None and o.ahead_lots == 5
    assert drain(sim) == [Ack(10 * MS, "b1", "create", PX, 2)]
    got = []
    for i, q in enumerate((3, 2, 1, 4)):  # 3 + 2 exhaust the 5 ahead; then 1 fills 1, then the rest
        sim.on_market(trade(20 * MS + i, SELL, PX, q))
        got.append(sum(f.qty for f in fills_of(drain(sim))))
    assert got == expected
    assert sim.open_orders() == []


@pytest.mark.parametrize("queue", ALL_QUEUES[:3])
def test_depth_update_after_a_print_does_not_advance_the_queue_twice(queue):
    sim = make_sim(queue)
    rest_bid(sim)
    drain(sim)
    sim.on_market(trade(20 * MS, SELL, PX, 3))  # ahead 5 -> 2
    sim.on_market(delta(20 * MS + 1, bids=[(PX, 2)]))  # the book shows the same 3 lots gone
    assert sim.order("b1").ahead_lots == 2
    sim.on_market(trade(21 * MS, SELL, PX, 1))  # ahead 2 -> 1: no fill
    assert fills_of(drain(sim)) == []
    sim.on_market(delta(21 * MS + 1, bids=[(PX, 1)]))
    sim.on_market(trade(22 * MS, SELL, PX, 2))  # 1 ahead, then 1 for us
    assert [(f.qty, f.cum_qty) for f in fills_of(drain(sim))] == [(1, 1)]


def test_risk_averse_ignores_unexplained_decreases_prob_models_advance():
    ahead = {}
    for queue in ("risk_averse", "prob_power", "prob_log"):
        sim = make_sim(queue)
        rest_bid(sim, visible=5)
        sim.on_market(delta(11 * MS, bids=[(PX, 10)]))  # 5 more join behind us: front 5, back 5
        sim.on_market(delta(12 * MS, bids=[(PX, 8)]))  # 2 canceled, no print
        ahead[queue] = sim.order("b1").ahead_lots
    assert ahead["risk_averse"] == 5
    assert ahead["prob_power"] == pytest.approx(5 - 2 * 0.5)  # n=2, front == back: half each
    assert ahead["prob_log"] == pytest.approx(4.0)


def test_prob_power_fractional_queue_rounds_up_when_matched():
    sim = make_sim("prob_power", {"n": 2})
    rest_bid(sim, visible=6)
    sim.on_market(delta(11 * MS, bids=[(PX, 10)]))  # front 6, back 4
    sim.on_market(delta(12 * MS, bids=[(PX, 8)]))  # 2 canceled: ahead 6 - 2*36/52 = 4.615
    assert sim.order("b1").ahead_lots == pytest.approx(6 - 72 / 52)
    sim.on_market(trade(13 * MS, SELL, PX, 5))  # 4.615 rounds up to 5: the print is all ahead of us
    assert fills_of(drain(sim)) == []
    sim.on_market(trade(14 * MS, SELL, PX, 1))
    assert [f.qty for f in fills_of(drain(sim))] == [1]


def test_level_vanishing_puts_us_first():
    sim = make_sim()
    rest_bid(sim, visible=5)
    sim.on_market(delta(11 * MS, bids=[(PX, 0)]))  # everyone ahead left without a print
    assert sim.order("b1").ahead_lots == 0
    sim.on_market(trade(12 * MS, SELL, PX, 1))
    assert [f.qty for f in fills_of(drain(sim))] == [1]


def test_level_improving_does_not_touch_our_queue():
    sim = make_sim()
    rest_bid(sim, visible=5)
    sim.on_market(delta(11 * MS, bids=[(PX + 1, 4)]))  # someone bids better than us
    assert sim.order("b1").ahead_lots == 5
    sim.on_market(trade(12 * MS, SELL, PX + 1, 4))  # prints at the better level never reach us
    assert fills_of(drain(sim)) == [] and sim.order("b1").ahead_lots == 5


def test_trade_through_our_level_fills_up_to_the_print_size():
    sim = make_sim()
    rest_bid(sim, qty=3, visible=5)
    drain(sim)
    sim.on_market(trade(20 * MS, SELL, PX - 1, 2))  # a sell printed below our bid: our level is gone
    f = fills_of(drain(sim))
    assert [(x.price, x.qty, x.liquidity, x.cum_qty) for x in f] == [(PX, 2, "maker", 2)]
    assert sim.order("b1").ahead_lots == 0
    sim.on_market(trade(21 * MS, SELL, PX - 1, 5))
    assert [(x.qty, x.cum_qty) for x in fills_of(drain(sim))] == [(1, 3)]


def test_one_print_is_shared_by_our_orders_best_price_first_then_fifo():
    sim = make_sim()
    sim.on_market(snap(0, [(PX, 1), (PX - 1, 4)], [(PX + 10, 5)]))
    for cid, px in (("a", PX), ("b", PX), ("c", PX - 1)):
        sim.submit(CreateOrder(cid, SYM, BUY, px, 2), 0)
    sim.process_arrivals(10 * MS)
    assert [o.ahead_lots for o in sim.open_orders()] == [1, 1, 4]
    drain(sim)
    sim.on_market(trade(20 * MS, SELL, PX, 4))  # 1 visible ahead, a gets 2, b gets 1
    assert [(f.client_id, f.qty) for f in fills_of(drain(sim))] == [("a", 2), ("b", 1)]
    sim.on_market(trade(21 * MS, SELL, PX - 1, 3))  # through b's level: b 1; then c: 4 ahead take the rest
    assert [(f.client_id, f.qty) for f in fills_of(drain(sim))] == [("b", 1)]
    assert sim.order("c").ahead_lots == 2


def test_prints_on_the_other_side_or_away_never_fill():
    sim = make_sim()
    rest_bid(sim, visible=0)
    drain(sim)
    sim.on_market(trade(20 * MS, BUY, PX, 5))  # a buyer lifting at our price does not hit bids
    sim.on_market(trade(21 * MS, SELL, PX + 1, 5))  # a sell above our bid does not reach it
    assert fills_of(drain(sim)) == []


# ============================================================================= latency races
def test_cancel_loses_the_race_against_a_fill_under_10ms_latency():
    sim = make_sim()
    rest_bid(sim, qty=2, visible=0)  # first in the queue from 10 ms
    om_like = drain(sim)
    assert om_like == [Ack(10 * MS, "b1", "create", PX, 2)]
    sim.submit(CancelOrder("b1", SYM, "pulled"), 100 * MS)  # arrives at 110 ms
    sim.on_market(trade(105 * MS, SELL, PX, 2))  # the fill happens while the cancel travels
    sim.process_arrivals(110 * MS)
    out = sim.drain_reports()
    assert [(d, type(r).__name__) for d, r in out] == [(115 * MS, "Fill"), (120 * MS, "Reject")]
    f, rj = out[0][1], out[1][1]
    assert (f.ts, f.qty, f.cum_qty) == (105 * MS, 2, 2)
    assert rj == Reject(110 * MS, "b1", "cancel", "unknown_order", 0)


def test_cancel_wins_the_race_when_the_trade_comes_later():
    sim = make_sim()
    rest_bid(sim, qty=2, visible=0)
    drain(sim)
    sim.submit(CancelOrder("b1", SYM, "pulled"), 100 * MS)
    sim.on_market(trade(115 * MS, SELL, PX, 2))
    assert sim.drain_reports() == [(120 * MS, Canceled(110 * MS, "b1", "pulled"))]


def test_tie_an_arrival_at_the_event_ts_is_processed_before_the_event():
    sim = make_sim()
    sim.on_market(snap(0, [(PX, 5)], [(PX + 10, 5)]))
    sim.submit(CreateOrder("b1", SYM, BUY, PX + 1, 1), 0)  # improves the bid; arrives at 10 ms
    sim.on_market(trade(10 * MS, SELL, PX + 1, 1))  # a print at exactly the arrival ns
    assert [type(r).__name__ for r in drain(sim)] == ["Ack", "Fill"]
    # and a cancel arriving at the print's ns wins
    sim2 = make_sim()
    rest_bid(sim2, qty=1, visible=0)
    sim2.submit(CancelOrder("b1", SYM), 90 * MS)
    sim2.on_market(trade(100 * MS, SELL, PX, 1))
    assert [type(r).__name__ for r in drain(sim2)] == ["Ack", "Canceled"]


def test_partial_fill_then_cancel():
    sim = make_sim()
    rest_bid(sim, qty=3, visible=0)
    sim.on_market(trade(20 * MS, SELL, PX, 1))
    sim.submit(CancelOrder("b1", SYM), 30 * MS)
    sim.on_market(trade(50 * MS, SELL, PX, 5))  # after the cancel arrived (40 ms): nothing
    rs = drain(sim)
    assert [type(r).__name__ for r in rs] == ["Ack", "Fill", "Canceled"]
    assert (rs[1].qty, rs[1].cum_qty) == (1, 1) and rs[2].ts == 40 * MS
    assert sim.open_orders() == []


def test_preserve_order_keeps_each_orders_actions_and_reports_fifo():
    sim = make_sim(latency=NormalLatency(5.0, 20.0), seed=3)
    sim.on_market(snap(0, [(PX, 5)], [(PX + 10, 5)]))
    arrivals = []
    for i in range(300):
        a1 = sim.submit(CreateOrder(f"o{i}", SYM, BUY, PX - i % 5, 1), i * MS)
        a2 = sim.submit(CancelOrder(f"o{i}", SYM), i * MS + 1)
        arrivals.append((a1, a2))
    assert all(a2 >= a1 for a1, a2 in arrivals)
    sim.process_arrivals(10**12)
    seen: dict[str, list[str]] = defaultdict(list)
    out = sim.drain_reports()
    assert [d for d, _ in out] == sorted(d for d, _ in out)
    for _, r in out:
        seen[r.client_id].append(type(r).__name__)
    assert all(v == ["Ack", "Canceled"] for v in seen.values()) and len(seen) == 300


def test_without_preserve_order_a_cancel_can_overtake_its_create():
    sim = make_sim(latency=NormalLatency(5.0, 20.0), seed=3, preserve_order=False)
    sim.on_market(snap(0, [(PX, 5)], [(PX + 10, 5)]))
    overtaken = 0
    for i in range(300):
        a1 = sim.submit(CreateOrder(f"o{i}", SYM, BUY, PX, 1), i * MS)
        a2 = sim.submit(CancelOrder(f"o{i}", SYM), i * MS + 1)
        overtaken += a2 < a1
    sim.process_arrivals(10**12)
    rs = drain(sim)
    rejects = [r for r in rs if isinstance(r, Reject)]
    assert overtaken > 0 and len(rejects) == overtaken
    assert all(r.reason == "unknown_order" and r.op == "cancel" for r in rejects)
    assert len(sim.open_orders()) == overtaken  # those creates then rest


# ============================================================================= crossing, takers, post-only
def test_post_only_create_that_would_cross_is_rejected():
    sim = make_sim()
    sim.on_market(snap(0, [(PX, 5)], [(PX + 10, 5)]))
    sim.submit(CreateOrder("b1", SYM, BUY, PX + 10, 1), 0)
    sim.submit(CreateOrder("s1", SYM, SELL, PX, 1), 0)
    sim.process_arrivals(10 * MS)
    assert drain(sim) == [Reject(10 * MS, "b1", "create", "post_only_would_cross"),
                          Reject(10 * MS, "s1", "create", "post_only_would_cross")]
    assert sim.open_orders() == []


def test_taker_walks_two_levels_at_taker_fee_and_the_rest_rests():
    sim = make_sim()
    sim.on_market(snap(0, [(PX, 5)], [(PX + 10, 2), (PX + 20, 2), (PX + 40, 5)]))
    sim.submit(CreateOrder("b1", SYM, BUY, PX + 30, 5, post_only=False), 0)
    sim.process_arrivals(10 * MS)
    rs = drain(sim)
    assert rs[0] == Ack(10 * MS, "b1", "create", PX + 30, 5)
    # 2 lots at 60001.0 = 120.002 USD x 5 bps = 0.0600010; 2 at 60002.0 = 120.004 USD -> 0.0600020
    assert [(f.price, f.qty, f.liquidity, f.fee, f.cum_qty) for f in rs[1:]] == [
        (PX + 10, 2, "taker", Decimal("0.06000100"), 2),
        (PX + 20, 2, "taker", Decimal("0.06000200"), 4),
    ]
    o = sim.order("b1")
    assert (o.price, o.filled, o.remaining, o.ahead_lots) == (PX + 30, 4, 1, 0)


def test_taker_fully_filled_needs_no_ack():
    sim = make_sim()
    sim.on_market(snap(0, [(PX, 5)], [(PX + 10, 2), (PX + 20, 2)]))
    sim.submit(CreateOrder("b1", SYM, BUY, PX + 20, 3, post_only=False), 0)
    sim.process_arrivals(10 * MS)
    rs = drain(sim)
    assert [(type(r).__name__, r.qty, r.cum_qty) for r in rs] == [("Fill", 2, 2), ("Fill", 1, 3)]
    assert sim.open_orders() == []


def test_extra_slippage_rounds_away_to_the_tick():
    sim = make_sim(extra_slippage_bps=1.0)
    sim.on_market(snap(0, [(PX, 5)], [(PX + 10, 2)]))
    sim.submit(CreateOrder("b1", SYM, BUY, PX + 10, 1, post_only=False), 0)
    sim.submit(CreateOrder("s1", SYM, SELL, PX, 1, post_only=False), 0)
    sim.process_arrivals(10 * MS)
    rs = fills_of(drain(sim))
    # 600010 x 1 bp = 60.001 ticks -> 61 ticks worse; 600000 x 1 bp = 60 ticks exactly
    assert [(f.client_id, f.price) for f in rs] == [("b1", PX + 10 + 61), ("s1", PX - 60)]


def test_slippage_never_touches_maker_fills():
    sim = make_sim(extra_slippage_bps=5.0)
    rest_bid(sim, visible=0)
    sim.on_market(trade(20 * MS, SELL, PX, 2))
    assert [f.price for f in fills_of(drain(sim))] == [PX]


def test_book_crossing_a_resting_order_fills_it_as_maker_once():
    sim = make_sim()
    sim.on_market(snap(0, [(PX - 5, 5)], [(PX + 10, 5)]))
    sim.submit(CreateOrder("b1", SYM, BUY, PX, 3), 0)  # alone at the top
    sim.process_arrivals(10 * MS)
    drain(sim)
    sim.on_market(delta(20 * MS, asks=[(PX, 1)]))  # a seller posts at our price: no print
    f = fills_of(drain(sim))
    assert [(x.price, x.qty, x.liquidity) for x in f] == [(PX, 1, "maker")]
    sim.on_market(delta(21 * MS, asks=[(PX + 10, 4)]))  # unrelated: the same 1 lot is not matched twice
    assert fills_of(drain(sim)) == []
    sim.on_market(delta(22 * MS, asks=[(PX, 4)]))  # 3 more lots at our price: 2 left to fill
    assert [x.qty for x in fills_of(drain(sim))] == [2]
    assert sim.open_orders() == []


def test_cross_fills_can_be_switched_off():
    sim = make_sim(cross_fills=False)
    sim.on_market(snap(0, [(PX - 5, 5)], [(PX + 10, 5)]))
    sim.submit(CreateOrder("b1", SYM, BUY, PX, 3), 0)
    sim.process_arrivals(10 * MS)
    sim.on_market(delta(20 * MS, asks=[(PX, 1)]))
    assert fills_of(drain(sim)) == []


# ============================================================================= amends
def test_amend_size_down_keeps_priority_size_up_and_price_lose_it():
    sim = make_sim()
    rest_bid(sim, qty=4, visible=5)
    sim.on_market(trade(11 * MS, SELL, PX, 3))  # ahead 5 -> 2
    sim.on_market(delta(11 * MS + 1, bids=[(PX, 2), (PX - 1, 7)]))
    drain(sim)
    sim.submit(AmendOrder("b1", SYM, BUY, PX, 3), 20 * MS)
    sim.process_arrivals(30 * MS)
    assert drain(sim) == [Ack(30 * MS, "b1", "amend", PX, 3)]
    assert sim.order("b1").ahead_lots == 2  # size down: same place
    sim.on_market(delta(31 * MS, bids=[(PX, 6)]))  # 4 join behind
    sim.submit(AmendOrder("b1", SYM, BUY, PX, 5), 40 * MS)
    sim.process_arrivals(50 * MS)
    assert drain(sim) == [Ack(50 * MS, "b1", "amend", PX, 5)]
    assert sim.order("b1").ahead_lots == 6  # size up: back of the queue
    sim.submit(AmendOrder("b1", SYM, BUY, PX - 1, 5), 60 * MS)
    sim.process_arrivals(70 * MS)
    assert drain(sim) == [Ack(70 * MS, "b1", "amend", PX - 1, 5)]
    o = sim.order("b1")
    assert (o.price, o.ahead_lots, o.rested_ns) == (PX - 1, 7, 70 * MS)


def test_amend_qty_is_the_total_including_the_filled_part():
    sim = make_sim()
    rest_bid(sim, qty=3, visible=0)
    sim.on_market(trade(11 * MS, SELL, PX, 1))  # 1 of 3 filled
    sim.submit(AmendOrder("b1", SYM, BUY, PX, 2), 20 * MS)  # total 2: 1 left
    sim.submit(AmendOrder("b1", SYM, BUY, PX, 1), 21 * MS)  # total == filled: refused
    sim.process_arrivals(40 * MS)
    rs = drain(sim)
    assert rs[-2:] == [Ack(30 * MS, "b1", "amend", PX, 2), Reject(31 * MS, "b1", "amend", "invalid_qty")]
    sim.on_market(trade(50 * MS, SELL, PX, 5))
    assert [(f.qty, f.cum_qty) for f in fills_of(drain(sim))] == [(1, 2)]


def test_amend_crossing_post_only_is_rejected_and_the_order_keeps_resting():
    sim = make_sim()
    rest_bid(sim, qty=2, visible=5)
    sim.submit(AmendOrder("b1", SYM, BUY, PX + 10, 2), 20 * MS)
    sim.process_arrivals(30 * MS)
    assert drain(sim)[-1] == Reject(30 * MS, "b1", "amend", "post_only_would_cross")
    o = sim.order("b1")
    assert (o.price, o.ahead_lots) == (PX, 5)


def test_amend_crossing_without_post_only_takes_liquidity():
    sim = make_sim()
    sim.on_market(snap(0, [(PX, 5)], [(PX + 10, 1)]))
    sim.submit(CreateOrder("b1", SYM, BUY, PX, 3, post_only=False), 0)
    sim.submit(AmendOrder("b1", SYM, BUY, PX + 10, 3), 20 * MS)
    sim.process_arrivals(30 * MS)
    rs = drain(sim)
    assert [type(r).__name__ for r in rs] == ["Ack", "Ack", "Fill"]
    assert rs[1] == Ack(30 * MS, "b1", "amend", PX + 10, 3)
    assert (rs[2].price, rs[2].qty, rs[2].liquidity) == (PX + 10, 1, "taker")
    assert sim.order("b1").remaining == 2


def test_amend_filled_whole_by_its_walk_is_acked_first():
    """Without the ack the order manager (amend in flight, new total 2 < old 4) would
    never see the order complete."""
    sim = make_sim()
    sim.on_market(snap(0, [(PX, 5)], [(PX + 10, 5)]))
    om = OrderManager(INST, OrderParams(min_time_in_book_ms=0, replace_threshold_bps=0.0, post_only=False), None, "t")
    for a in om.reconcile([DesiredQuote(SYM, BUY, 0, PX - 5, 4)], 0, PX + 5):
        sim.submit(a, 0)
    sim.process_arrivals(10 * MS)
    for d, r in sim.drain_reports():
        om.on_report(r, d)
    (amend,) = om.reconcile([DesiredQuote(SYM, BUY, 0, PX + 10, 2)], 30 * MS, PX + 5)
    assert isinstance(amend, AmendOrder) and (amend.price, amend.qty) == (PX + 10, 2)
    sim.submit(amend, 30 * MS)
    sim.process_arrivals(40 * MS)
    out = sim.drain_reports()
    assert [r for _, r in out][0] == Ack(40 * MS, amend.client_id, "amend", PX + 10, 2)
    assert [(type(r).__name__, getattr(r, "liquidity", "")) for _, r in out] == [("Ack", ""), ("Fill", "taker")]
    for d, r in out:
        om.on_report(r, d)
    assert om.get(amend.client_id).state == "filled" and om.open_orders() == []


def test_amend_or_cancel_of_unknown_or_finished_orders_is_rejected():
    sim = make_sim()
    sim.on_market(snap(0, [(PX, 5)], [(PX + 10, 5)]))
    sim.submit(AmendOrder("nope", SYM, BUY, PX, 1), 0)
    sim.submit(CancelOrder("nope", SYM), 0)
    sim.process_arrivals(10 * MS)
    assert [(r.op, r.reason) for r in drain(sim)] == [("amend", "unknown_order"), ("cancel", "unknown_order")]


def test_duplicate_and_invalid_creates():
    sim = make_sim()
    sim.on_market(snap(0, [(PX, 5)], [(PX + 10, 5)]))
    sim.submit(CreateOrder("b1", SYM, BUY, PX, 1), 0)
    sim.submit(CreateOrder("b1", SYM, BUY, PX, 1), 1)
    sim.submit(CreateOrder("z", SYM, BUY, PX, 0), 2)
    sim.submit(CreateOrder("y", SYM, BUY, 0, 1), 3)
    sim.submit(CreateOrder("x", SYM, 0, PX, 1), 4)
    sim.process_arrivals(20 * MS)
    assert [(type(r).__name__, getattr(r, "reason", "")) for r in drain(sim)] == [
        ("Ack", ""), ("Reject", "duplicate_client_id"), ("Reject", "invalid_qty"), ("Reject", "invalid_price"),
        ("Reject", "invalid_side")]
    assert sim.counters.rejects == {"duplicate_client_id": 1, "invalid_price": 1, "invalid_qty": 1, "invalid_side": 1}


# ============================================================================= sweeps
def test_toxic_sweep_fills_the_whole_order_regardless_of_queue():
    sim = make_sim(toxic_sweep_prob=1.0)
    rest_bid(sim, qty=3, visible=50)
    sim.on_market(trade(20 * MS, SELL, PX, 1))
    f = fills_of(drain(sim))
    assert [(x.qty, x.liquidity, x.cum_qty) for x in f] == [(3, "maker", 3)]
    assert sim.counters.sweeps == 1


def test_toxic_sweep_as_taker_pays_taker_fee_and_slippage():
    sim = make_sim(toxic_sweep_prob=1.0, toxic_sweep_liquidity="taker", extra_slippage_bps=1.0)
    rest_bid(sim, qty=1, visible=50)
    sim.on_market(trade(20 * MS, SELL, PX, 1))
    (f,) = fills_of(drain(sim))
    assert (f.liquidity, f.price, f.fee) == ("taker", PX + 60, Decimal("0.03000300"))  # 60.006 USD x 5 bps


def test_toxic_sweeps_are_seeded():
    def run(seed):
        sim = make_sim(toxic_sweep_prob=0.3, seed=seed)
        sim.on_market(snap(0, [(PX, 50)], [(PX + 10, 5)]))
        out = []
        for i in range(200):
            sim.submit(CreateOrder(f"o{i}", SYM, BUY, PX, 1), i * 100 * MS)
            sim.on_market(trade(i * 100 * MS + 50 * MS, SELL, PX, 1))
            out.append(len(fills_of(drain(sim))))
            sim.submit(CancelOrder(f"o{i}", SYM), i * 100 * MS + 60 * MS)
        return out
    a, b = run(4), run(4)
    assert a == b and 30 < sum(a) < 90  # about 0.3 of 200


def test_sweep_probability_zero_draws_nothing():
    sim = make_sim()
    rng_state = sim._rng.getstate()
    rest_bid(sim, visible=0)
    sim.on_market(trade(20 * MS, SELL, PX, 1))
    assert sim._rng.getstate() == rng_state


# ============================================================================= fees
def test_maker_rebate_turns_a_flat_round_trip_positive():
    sim = make_sim()
    sim.on_market(snap(0, [(PX - 1, 5)], [(PX + 1, 5)]))
    sim.submit(CreateOrder("b1", SYM, BUY, PX, 1), 0)
    sim.submit(CreateOrder("s1", SYM, SELL, PX + 1, 1), 0)
    sim.process_arrivals(10 * MS)
    sim.on_market(trade(20 * MS, SELL, PX, 1))  # we buy 1 lot at 60,000.0
    sim.on_market(delta(21 * MS, asks=[(PX + 1, 0), (PX + 2, 5)]))  # the ask level we joined empties
    sim.submit(AmendOrder("s1", SYM, SELL, PX, 1), 30 * MS)  # and sell it at the same price
    sim.process_arrivals(40 * MS)
    sim.on_market(trade(50 * MS, BUY, PX, 1))
    fs = fills_of(drain(sim))
    assert [(f.side, f.price, f.liquidity, f.fee) for f in fs] == [
        (BUY, PX, "maker", Decimal("-0.00300000")), (SELL, PX, "maker", Decimal("-0.00300000"))]
    ledger = Ledger({SYM: INST})
    for f in fs:
        ledger.on_fill(f)
    assert ledger.net_pnl_exact() == Decimal("0.006"), "flat price, two -0.5 bp rebates on 60 USD"


def test_inverse_contract_fees_are_in_coin():
    inv = Instrument("BTCUSD_PERP", Decimal("0.5"), Decimal("1"), Decimal("100"), inverse=True)
    sim = make_sim(instruments={"BTCUSD_PERP": inv})
    sim.on_market(BookSnapshot(0, 0, "BTCUSD_PERP", ((120_000, 50),), ((120_001, 50),)))
    sim.submit(CreateOrder("b1", "BTCUSD_PERP", BUY, 120_001, 10, post_only=False), 0)
    sim.process_arrivals(10 * MS)
    (f,) = fills_of(drain(sim))
    # 10 contracts x 100 USD / 60000.5 USD = 0.01666653 BTC; x 5 bps = 8.3333e-6 BTC
    assert f.fee == Decimal("0.00000833")


def test_tiered_fees_follow_30_day_volume():
    tiers = [{"level": 0, "min_volume_usd": 0, "maker_bps": 2.0, "taker_bps": 5.5},
             {"level": 1, "min_volume_usd": 100, "maker_bps": 1.0, "taker_bps": 4.0}]
    fees = make_fee_model("tiered", {"tiers": tiers})
    sim = make_sim(fees=fees)
    sim.on_market(snap(0, [(PX, 5)], [(PX + 10, 5)]))
    for i in range(3):
        sim.submit(CreateOrder(f"s{i}", SYM, SELL, PX, 1, post_only=False), i * MS)
    sim.process_arrivals(20 * MS)
    # 60 USD at 5.5 bps, again (60 < 100), then level 1 at 4 bps (120 >= 100)
    assert [f.fee for f in fills_of(drain(sim))] == [Decimal("0.03300000"), Decimal("0.03300000"),
                                                     Decimal("0.02400000")]
    assert isinstance(fees, TieredFees) and fees.volume_usd(20 * MS) == 180.0


def test_fee_registry_and_errors():
    assert set(FEE_MODELS) == {"flat", "tiered"}
    flat = make_fee_model("flat")
    assert (flat.rate_bps(SYM, "maker", 0), flat.rate_bps(SYM, "taker", 0)) == (-0.5, 5.0)
    with pytest.raises(UnknownModelError) as ei:
        make_fee_model("vip")
    assert "flat" in str(ei.value) and "tiered" in str(ei.value)
    with pytest.raises(ModelParamError) as ek:
        make_fee_model("flat", {"maker": 1})
    assert ek.value.key == "maker"
    with pytest.raises(ModelParamError) as et:
        make_fee_model("tiered", {"tiers": [{"level": 0, "min_volume_usd": 5, "maker_bps": 1, "taker_bps": 2}]})
    assert et.value.key == "tiers"
    with pytest.raises(ModelParamError):
        make_fee_model("tiered", {})


# ============================================================================= calibration
SEED_CALIBRATION = {"latency_ms_mean": 15.0, "latency_ms_std": 5.0, "amend_latency_ms": 10.0,
                    "cancel_latency_ms": 8.0, "toxic_sweep_prob": 0.02, "extra_slippage_bps": 0.5}


def test_seed_calibration_example_parses():
    cal = calibration_from_mapping(SEED_CALIBRATION)
    assert cal.as_dict() == {**SEED_CALIBRATION, "response_latency_ms": None}
    p = FillSimParams.from_calibration(cal, cross_fills=False)
    assert (p.toxic_sweep_prob, p.extra_slippage_bps, p.cross_fills) == (0.02, 0.5, False)
    assert calibration_from_mapping({}) == CalibrationParams()
    assert set(CALIBRATION_KEYS) >= set(SEED_CALIBRATION)


@pytest.mark.parametrize("obj,key,reason", [
    ({"latency_ms_p99": 3.0}, "latency_ms_p99", "unknown_key"),
    ({"toxic_sweep_prob": 1.5}, "toxic_sweep_prob", "range"),
    ({"toxic_sweep_prob": -0.1}, "toxic_sweep_prob", "range"),
    ({"extra_slippage_bps": -1}, "extra_slippage_bps", "range"),
    ({"latency_ms_mean": -1}, "latency_ms_mean", "range"),
    ({"latency_ms_std": float("inf")}, "latency_ms_std", "range"),
    ({"latency_ms_mean": "15"}, "latency_ms_mean", "type"),
    ({"cancel_latency_ms": True}, "cancel_latency_ms", "type"),
    ([1, 2], "calibration", "type"),
])
def test_bad_calibration_names_the_key(obj, key, reason):
    with pytest.raises(CalibrationError) as ei:
        calibration_from_mapping(obj)
    assert ei.value.key == key and ei.value.reason == reason and key in str(ei.value)
    assert isinstance(ei.value, ValueError)


def test_params_validation():
    with pytest.raises(ModelParamError):
        FillSimParams(toxic_sweep_prob=2)
    with pytest.raises(ModelParamError):
        FillSimParams(toxic_sweep_liquidity="both")
    with pytest.raises(ModelParamError):
        FillSimParams(extra_slippage_bps=-0.1)


# ============================================================================= reports, views, events
def test_drain_until_and_next_times():
    sim = make_sim()
    sim.on_market(snap(0, [(PX, 5)], [(PX + 10, 5)]))
    assert sim.next_arrival_ns() is None and sim.next_report_ns() is None
    assert sim.submit(CreateOrder("b1", SYM, BUY, PX, 1), 3 * MS) == 13 * MS
    assert sim.next_arrival_ns() == 13 * MS and sim.pending_arrivals == 1
    sim.process_arrivals(12 * MS)
    assert sim.next_arrival_ns() == 13 * MS
    sim.process_arrivals(13 * MS)
    assert sim.next_report_ns() == 23 * MS
    assert sim.drain_reports(22 * MS) == []
    assert sim.drain_reports(23 * MS) == [(23 * MS, Ack(13 * MS, "b1", "create", PX, 1))]
    assert sim.next_report_ns() is None


def test_quote_only_feed_drives_a_top_of_book_until_depth_arrives():
    sim = make_sim()
    sim.on_market(Quote(0, 0, SYM, PX, 7, PX + 10, 3))
    sim.submit(CreateOrder("b1", SYM, BUY, PX, 1), 0)
    sim.process_arrivals(10 * MS)
    assert sim.order("b1").ahead_lots == 7
    sim.on_market(snap(11 * MS, [(PX, 4)], [(PX + 10, 3)]))
    sim.on_market(Quote(12 * MS, 0, SYM, PX, 9, PX + 10, 3))  # depth data wins from now on
    assert sim.book(SYM).bids == {PX: 4} and sim.order("b1").ahead_lots == 4


def test_seq_gap_marks_the_sims_book_stale_and_other_symbols_are_ignored():
    sim = make_sim()
    sim.on_market(snap(0, [(PX, 5)], [(PX + 10, 5)]))
    sim.on_market(SeqGap(1, 1, SYM, 5, 9))
    assert sim.book(SYM).stale
    sim.on_market(snap(2, [(1, 1)], [(2, 1)], sym="ETHUSDT"))  # no instrument: ignored
    with pytest.raises(ValueError):
        sim.submit(CreateOrder("e1", "ETHUSDT", BUY, 1, 1), 0)
    with pytest.raises(TypeError):
        sim.submit("create", 0)  # type: ignore[arg-type]


def test_open_orders_are_sorted_copies():
    sim = make_sim()
    sim.on_market(snap(0, [(PX, 5)], [(PX + 10, 5)]))
    for cid, side, px in (("s2", SELL, PX + 12), ("b2", BUY, PX - 2), ("s1", SELL, PX + 11), ("b1", BUY, PX)):
        sim.submit(CreateOrder(cid, SYM, side, px, 1), 0)
    sim.process_arrivals(10 * MS)
    assert [o.client_id for o in sim.open_orders()] == ["b1", "b2", "s1", "s2"]
    assert sim.open_orders("XRPUSDT") == []


def test_baseline_constructor():
    sim = FillSimulator.baseline({SYM: INST}, random.Random(0))
    assert isinstance(sim.fees, FlatFees) and sim.queue.name == "risk_averse"
    assert sim.latency.entry_ns("create", 0, random.Random(0)) == 10 * MS
    assert make_latency_model("constant").response_ns("fill", 0, random.Random(0)) == 10 * MS


# ============================================================================= properties
def _random_run(seed, queue, cross_fills=True, n=3000):
    """A random market around a wandering mid with our orders coming and going.
    Arrivals land on half-ms, market events on whole ms: each fill's ts tells its cause."""
    rng = random.Random(seed)
    sim = make_sim(queue, seed=seed, cross_fills=cross_fills)
    mid = PX
    book_b = {mid - i: rng.randint(1, 8) for i in range(1, 6)}
    book_a = {mid + i: rng.randint(1, 8) for i in range(1, 6)}
    sim.on_market(snap(0, book_b.items(), book_a.items()))
    trades: dict[int, Trade] = {}
    created: dict[str, CreateOrder] = {}
    k = 0
    for i in range(1, n):
        t = i * MS
        r = rng.random()
        if r < 0.35:
            side = rng.choice((BUY, SELL))
            best = max(book_b, default=mid - 1) if side == SELL else min(book_a, default=mid + 1)
            px = best + rng.choice((0, 0, 0, 1, -1)) * (-side)
            ev = trade(t, side, px, rng.randint(1, 6))
            trades[t] = ev
            sim.on_market(ev)
        elif r < 0.8:  # a delta that keeps the public book uncrossed: bids < mid < asks
            mid += rng.choice((-1, 0, 0, 1))
            bids = [(px, 0) for px in book_b if px >= mid] + [
                (mid - rng.randint(1, 6), rng.choice((0, rng.randint(1, 9)))) for _ in range(2)]
            asks = [(px, 0) for px in book_a if px <= mid] + [
                (mid + rng.randint(1, 6), rng.choice((0, rng.randint(1, 9)))) for _ in range(2)]
            for levels, book in ((bids, book_b), (asks, book_a)):
                for px, q in levels:
                    if q:
                        book[px] = q
                    else:
                        book.pop(px, None)
            sim.on_market(delta(t, bids, asks))
        if rng.random() < 0.1:
            k += 1
            side = rng.choice((BUY, SELL))
            px = mid - side * rng.randint(-3, 3)  # some cross: post-only rejects and takers
            a = CreateOrder(f"o{k}", SYM, side, px, rng.randint(1, 4), post_only=rng.random() < 0.8)
            created[a.client_id] = a
            sim.submit(a, t + MS // 2 - 10 * MS)
        if k and rng.random() < 0.05:
            sim.submit(CancelOrder(f"o{rng.randint(1, k)}", SYM), t + MS // 2 - 10 * MS)
    sim.process_arrivals(10**15)
    return sim, trades, created, sim.drain_reports()


@pytest.mark.parametrize("queue", ["risk_averse", "prob_power", "prob_log"])
@pytest.mark.parametrize("seed", range(6))
def test_conservation_no_print_fills_more_than_its_size(queue, seed):
    sim, trades, created, out = _random_run(seed, queue)
    by_ts: dict[int, int] = defaultdict(int)
    n_trade_fills = 0
    for _, r in out:
        if isinstance(r, Fill) and r.ts in trades:
            tr = trades[r.ts]
            o = created[r.client_id]
            assert r.liquidity == "maker" and r.price == o.price
            assert o.side == -tr.side, "a print only fills the resting side it hits"
            assert (o.price >= tr.price) if o.side == BUY else (o.price <= tr.price), "price at or through"
            by_ts[r.ts] += r.qty
            n_trade_fills += 1
    assert n_trade_fills > 10, "the stream must exercise trade fills"
    for ts, lots in by_ts.items():
        assert lots <= trades[ts].qty, f"print at {ts} of {trades[ts].qty} lots filled {lots}"


@pytest.mark.parametrize("queue", ["risk_averse", "optimistic"])
@pytest.mark.parametrize("seed", range(4))
def test_fills_are_consistent_per_order(queue, seed):
    sim, trades, created, out = _random_run(seed, queue)
    cum: dict[str, int] = defaultdict(int)
    ended: set[str] = set()
    delivered = [d for d, _ in out]
    assert delivered == sorted(delivered)
    for _, r in out:
        cid = r.client_id
        if isinstance(r, Fill):
            assert cid not in ended, f"{cid} filled after it ended"
            assert r.qty > 0 and r.cum_qty == cum[cid] + r.qty
            cum[cid] = r.cum_qty
            assert cum[cid] <= created[cid].qty
            if cum[cid] == created[cid].qty:
                ended.add(cid)
        elif isinstance(r, Canceled):
            assert cid not in ended
            ended.add(cid)
    for o in sim.open_orders():
        assert o.filled == cum[o.client_id] and o.remaining > 0 and o.ahead_lots >= 0


def test_risk_averse_never_fills_more_than_optimistic():
    for seed in range(4):
        lots = {}
        for queue in ("risk_averse", "optimistic"):
            _, _, _, out = _random_run(seed, queue, cross_fills=False)
            lots[queue] = sum(r.qty for _, r in out if isinstance(r, Fill) and r.liquidity == "maker")
        assert lots["risk_averse"] <= lots["optimistic"]


def test_same_seed_same_reports():
    a = _random_run(9, "prob_log")[3]
    b = _random_run(9, "prob_log")[3]
    assert a == b


# ============================================================================= with the order manager
def test_reports_drive_the_order_manager_to_the_same_state():
    """The order manager consumes every report (random latencies, partial fills, races,
    amends) and ends where the venue is: nothing unknown, every fill applied once."""
    rng = random.Random(21)
    sim = make_sim(latency=NormalLatency(6.0, 4.0), seed=21)
    params = OrderParams(levels_per_side=2, min_time_in_book_ms=0, replace_threshold_bps=0.0, order_ttl_ms=300,
                         price_drift_bps=1.0, replace_min_interval_ms=0, replace_max_concurrent=4, tail_age_ms=0)
    om = OrderManager(INST, params, None, "t")
    mid = PX
    fills = 0
    for step in range(1, 3000):
        t = step * MS
        if rng.random() < 0.1:
            mid += rng.choice((-2, -1, 1, 2))
        sim.on_market(snap(t, [(mid - 1 - i, rng.randint(1, 6)) for i in range(5)],
                           [(mid + 1 + i, rng.randint(1, 6)) for i in range(5)]))
        if rng.random() < 0.3:
            side = rng.choice((BUY, SELL))
            sim.on_market(trade(t, side, mid + side * rng.randint(1, 2), rng.randint(1, 8)))
        for d, r in sim.drain_reports(t):
            om.on_report(r, d)
            fills += isinstance(r, Fill)
        desired = [DesiredQuote(SYM, BUY, 0, mid - 1, 3), DesiredQuote(SYM, BUY, 1, mid - 2, 3),
                   DesiredQuote(SYM, SELL, 0, mid + 1, 3), DesiredQuote(SYM, SELL, 1, mid + 2, 3)]
        for a in om.reconcile(desired, t, mid):
            sim.submit(a, t)
    t = 3000 * MS
    for a in om.cancel_all(t):
        sim.submit(a, t)
    sim.process_arrivals(t + 10**9)
    for d, r in sim.drain_reports():
        om.on_report(r, d)
        fills += isinstance(r, Fill)
    c = om.counters
    assert fills > 50 and c.fills == fills
    assert c.unknown_reports == 0 and c.idem_hits.get("fill", 0) == 0
    assert sim.open_orders() == [] and om.open_orders() == []
    assert c.filled_orders > 0 and c.canceled_confirmed > 0


def test_finished_ids_are_remembered_up_to_the_retention():
    sim = make_sim(retention=2)
    sim.on_market(snap(0, [(PX, 5)], [(PX + 10, 5)]))
    for k, cid in enumerate(("a", "b", "c")):  # invalid orders: rejected, then remembered
        sim.submit(CreateOrder(cid, SYM, BUY, PX, 0), k)
    sim.process_arrivals(20 * MS)
    drain(sim)
    for k, cid in enumerate(("a", "b", "c")):
        sim.submit(CreateOrder(cid, SYM, BUY, PX - 1 - k, 1), 30 * MS + k)
    sim.process_arrivals(50 * MS)
    # "a" fell out of the two remembered ids: a new order; "b" and "c" are duplicates
    assert [(type(r).__name__, r.client_id) for r in drain(sim)] == [
        ("Ack", "a"), ("Reject", "b"), ("Reject", "c")]
