"""Risk guards: hard limits, intraday caps, position skew, kill switch; cancels and reducing
orders always pass."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmkit.config_schema import GuardsConfig, IntradayCapsConfig, KillswitchConfig, PosSkewConfig, RiskConfig
from mmkit.core.risk import (
    DAY_NS,
    IntradayCapsGuard,
    KillSwitch,
    PositionBook,
    PositionSkewGuard,
    RiskGuard,
    increases_risk,
    utc_day,
)
from mmkit.core.types import BUY, SELL, AmendOrder, CancelOrder, CreateOrder

SEC = 1_000_000_000
T0 = 1_704_067_200 * SEC  # 2024-01-01T00:00:00Z


def buy(qty: int = 1, sym: str = "BTCUSDT") -> CreateOrder:
    return CreateOrder("b", sym, BUY, 100, qty)


def sell(qty: int = 1, sym: str = "BTCUSDT") -> CreateOrder:
    return CreateOrder("s", sym, SELL, 100, qty)


CANCEL = CancelOrder("x", "BTCUSDT")


@pytest.mark.parametrize("pos, side, qty, expected", [
    (0, BUY, 1, True), (0, SELL, 1, True),           # from flat everything adds risk
    (5, BUY, 1, True), (5, SELL, 3, False),          # long: buys add, sells reduce
    (5, SELL, 10, False), (5, SELL, 11, True),       # crossing zero: only ending further out adds
    (-5, SELL, 1, True), (-5, BUY, 5, False),
])
def test_increases_risk_table(pos, side, qty, expected):
    assert increases_risk(pos, side, qty) is expected


def test_utc_day_is_integer_86400s_days():
    assert utc_day(T0) == 19723
    assert utc_day(T0 - 1) == 19722
    ts = int(datetime(2025, 6, 30, 23, 59, 59, tzinfo=timezone.utc).timestamp()) * SEC
    assert utc_day(ts) == (datetime(2025, 6, 30, tzinfo=timezone.utc) - datetime(1970, 1, 1, tzinfo=timezone.utc)).days


# ----------------------------------------------------------------------------- RiskGuard
def book_with(pos: int = 0, lot_usd: float | None = 60.0, sym: str = "BTCUSDT") -> PositionBook:
    b = PositionBook()
    b.update_position(sym, pos, T0)
    if lot_usd is not None:
        b.update_mark(sym, lot_usd, T0)
    return b


def test_max_position_usd_default_10000_blocks_only_what_would_exceed():
    b = book_with(0, 60.0)  # e.g. a 0.001 BTC lot at 60,000 USD
    g = RiskGuard(RiskConfig(), b)
    assert g.check(buy(166), T0) is None          # 9,960 USD
    assert g.check(buy(167), T0) == "risk:max_position"  # 10,020 USD
    b.update_position("BTCUSDT", 166, T0)
    assert g.check(buy(1), T0) == "risk:max_position"
    assert g.check(sell(1), T0) is None           # reducing
    assert g.check(sell(332), T0) is None         # flips to -166: not further from zero
    assert g.check(sell(333), T0) == "risk:max_position"
    assert g.check(CANCEL, T0) is None


def test_no_mark_blocks_only_risk_increasing_orders():
    b = book_with(3, None)
    g = RiskGuard(RiskConfig(), b)
    assert g.check(buy(), T0) == "risk:no_mark"
    assert g.check(sell(), T0) is None


def test_position_breach_and_recover_events_follow_the_mark():
    b = book_with(150, 60.0)
    g = RiskGuard(RiskConfig(), b)
    b.update_mark("BTCUSDT", 70.0, T0 + SEC)   # 10,500 USD
    b.update_mark("BTCUSDT", 71.0, T0 + 2 * SEC)
    b.update_mark("BTCUSDT", 60.0, T0 + 3 * SEC)
    evs = g.drain_events()
    assert [(e.guard, e.symbol, e.kind, e.ts_ns) for e in evs] == [
        ("risk:max_position", "BTCUSDT", "breach", T0 + SEC), ("risk:max_position", "BTCUSDT", "recover", T0 + 3 * SEC)]
    assert evs[0].detail == "position_usd=10500.000000 limit_usd=10000.000000"


def test_a_repeated_mark_is_no_change():
    """Listeners hear of a mark only when the lot value changed (the engine marks every
    decision); a position change still notifies at an unchanged mark."""
    b = book_with(3, 60.0)
    heard: list[tuple[str, int]] = []
    b.subscribe(lambda sym, now: heard.append((sym, now)))
    b.update_mark("BTCUSDT", 60.0, T0 + SEC)
    b.update_mark("BTCUSDT", 61.0, T0 + 2 * SEC)
    b.update_mark("BTCUSDT", 61.0, T0 + 3 * SEC)
    b.apply_fill("BTCUSDT", 1, 2, T0 + 4 * SEC)
    assert heard == [("BTCUSDT", T0 + 2 * SEC), ("BTCUSDT", T0 + 4 * SEC)]
    assert b.position_usd("BTCUSDT") == 5 * 61.0


def test_drawdown_pause_at_3pct_recovers_and_stop_at_5pct_latches_until_reset():
    b = book_with(3, 60.0)  # long 3 lots: sells reduce
    g = RiskGuard(RiskConfig(), b)  # pause 0.03, stop 0.05
    g.update_equity(100_000, T0)
    g.update_equity(97_000, T0 + 1)  # 3%
    assert g.paused and g.check(buy(), T0 + 1) == "risk:paused"
    g.update_equity(97_500, T0 + 2)
    assert not g.paused and g.check(buy(), T0 + 2) is None
    g.update_equity(95_000, T0 + 3)  # 5%
    assert g.stopped and g.check(buy(), T0 + 3) == "risk:max_drawdown"
    assert g.check(sell(), T0 + 3) is None and g.check(CANCEL, T0 + 3) is None
    g.update_equity(99_000, T0 + 4)  # recovered equity does not lift a stop
    assert g.check(buy(), T0 + 4) == "risk:max_drawdown"
    g.reset_drawdown(T0 + 5)
    assert g.check(buy(), T0 + 5) is None and g.peak_equity_usd == 99_000
    kinds = [(e.guard, e.kind) for e in g.drain_events()]
    assert kinds == [("risk:paused", "breach"), ("risk:paused", "recover"), ("risk:max_drawdown", "breach"),
                     ("risk:paused", "breach"), ("risk:paused", "recover"), ("risk:max_drawdown", "reset")]


def test_peak_equity_can_be_restored_and_zero_disables_limits():
    b = book_with(0, 60.0)
    g = RiskGuard(RiskConfig(), b, peak_equity_usd=200_000)
    g.update_equity(190_000, T0)
    assert g.drawdown_ratio() == pytest.approx(0.05) and g.stopped
    off = RiskGuard(RiskConfig(max_position_usd=0, max_drawdown_pct=0, risk_pause_threshold=0), book_with(0, None))
    off.update_equity(1, T0)
    off.update_equity(0.5, T0)
    assert off.check(buy(10**9), T0) is None


def test_bad_risk_parameters_are_rejected():
    with pytest.raises(ValueError, match="max_drawdown_pct"):
        RiskGuard(RiskConfig(max_drawdown_pct=5.0), PositionBook())
    with pytest.raises(ValueError, match="lot_value_usd"):
        PositionBook().update_mark("X", 0.0, T0)
    with pytest.raises(ValueError, match="finite"):
        RiskGuard(RiskConfig(), PositionBook()).update_equity(float("nan"), T0)


# ----------------------------------------------------------------------------- intraday caps
def test_intraday_caps_default_to_disabled():
    g = IntradayCapsGuard(GuardsConfig().intraday_caps, book_with(), T0)
    g.update_pnl(0, T0)
    g.update_pnl(-1e9, T0)
    g.add_turnover(1e12, T0)
    g.update_vol(1e3, T0)
    assert g.check(buy(), T0) is None and g.drain_events() == []


def test_daily_pnl_stop_blocks_at_minus_stop_until_the_utc_day_ends():
    b = book_with(2, 60.0)
    g = IntradayCapsGuard(IntradayCapsConfig(daily_pnl_stop=500.0), b, T0)
    g.update_pnl(1_000.0, T0 + 10 * SEC)      # the day's origin
    g.update_pnl(600.0, T0 + 20 * SEC)        # -400: fine
    assert g.check(buy(), T0 + 20 * SEC) is None
    g.update_pnl(500.0, T0 + 30 * SEC)        # -500 <= -500: stop
    assert g.check(buy(), T0 + 30 * SEC) == "intraday:pnl_stop"
    g.update_pnl(2_000.0, T0 + 40 * SEC)      # a stop is a stop for the day
    assert g.check(buy(), T0 + 40 * SEC) == "intraday:pnl_stop"
    assert g.check(sell(), T0 + 40 * SEC) is None and g.check(CANCEL, T0 + 40 * SEC) is None
    assert g.check(buy(), T0 + DAY_NS - 1) == "intraday:pnl_stop"
    assert g.check(buy(), T0 + DAY_NS) is None  # 00:00:00 UTC next day
    st_ = g.state(T0 + DAY_NS)
    assert (st_.day, st_.pnl_usd, st_.breached) == (19724, 0.0, ())
    g.update_pnl(1_600.0, T0 + DAY_NS + SEC)  # origin is the last value of the previous day (2,000)
    assert g.day_pnl_usd() == -400.0
    evs = g.drain_events()
    assert [(e.guard, e.kind, e.ts_ns) for e in evs] == [("intraday:pnl_stop", "block", T0 + 30 * SEC),
                                                         ("intraday:pnl_stop", "resume", T0 + DAY_NS)]
    assert evs[0].detail == "day_pnl_usd=-500.000000 stop_usd=500.000000"


def test_turnover_and_vol_caps():
    g = IntradayCapsGuard(IntradayCapsConfig(daily_turnover_cap=10_000.0, daily_vol_cap=3.0), book_with(), T0)
    g.add_turnover(6_000.0, T0)
    g.add_turnover(-3_999.0, T0)  # notional counts by absolute value
    assert g.check(buy(), T0) is None
    g.add_turnover(1.0, T0)
    assert g.check(buy(), T0) == "intraday:turnover_cap"
    g.update_vol(3.0, T0)
    assert g.state(T0).breached == ("intraday:turnover_cap", "intraday:vol_cap")
    g.add_turnover(5.0, T0 + DAY_NS + 1)  # the roll happens before counting
    assert g.state(T0 + DAY_NS + 1).turnover_usd == 5.0
    assert g.check(buy(), T0 + DAY_NS + 1) is None


# ----------------------------------------------------------------------------- position skew
def test_symbol_freeze_past_per_symbol_abs_limit():
    b = book_with(0, 10.0)
    g = PositionSkewGuard(PosSkewConfig(), b)  # 1,000 USD per symbol
    b.update_position("BTCUSDT", 100, T0)       # exactly the limit: not past it
    assert not g.frozen("BTCUSDT") and g.check(buy(), T0) is None
    b.apply_fill("BTCUSDT", BUY, 1, T0 + 1)     # 1,010 USD
    assert g.frozen("BTCUSDT")
    assert g.check(buy(), T0 + 1) == "pos_skew:freeze"
    assert g.check(AmendOrder("b", "BTCUSDT", BUY, 100, 1), T0 + 1) == "pos_skew:freeze"
    assert g.check(sell(), T0 + 1) is None and g.check(CANCEL, T0 + 1) is None
    assert g.check(buy(sym="ETHUSDT"), T0 + 1) is None
    b.apply_fill("BTCUSDT", SELL, 1, T0 + 2)
    assert not g.frozen("BTCUSDT")
    assert [(e.guard, e.kind) for e in g.drain_events()] == [("pos_skew:freeze", "breach"), ("pos_skew:freeze", "recover")]
    assert g.state().symbol_breach == ()


def test_color_bias_is_5_to_10_pct_toward_reducing_the_color_net():
    b = PositionBook()
    g = PositionSkewGuard(PosSkewConfig(per_symbol_abs_limit=0.0), b, colors={"BTCUSDT": "blue", "ETHUSDT": "blue",
                                                                              "SOLUSDT": "green"})
    for sym in ("BTCUSDT", "ETHUSDT", "SOLUSDT"):
        b.update_mark(sym, 1.0, T0)
    b.update_position("BTCUSDT", 1_500, T0)
    b.update_position("ETHUSDT", 500, T0)        # blue net 2,000: at the limit, no bias
    assert g.size_factor("BTCUSDT", SELL) == 1.0
    b.update_position("ETHUSDT", 600, T0 + 1)    # 2,100: 5% + 5% x 100/2000
    assert g.bias_ratio("blue") == pytest.approx(0.0525)
    assert g.size_factor("ETHUSDT", SELL) == pytest.approx(1.0525)  # sells reduce a long color
    assert g.size_factor("ETHUSDT", BUY) == pytest.approx(0.9475)
    assert g.size_factor("SOLUSDT", BUY) == 1.0  # other colors untouched
    b.update_position("ETHUSDT", 2_500, T0 + 2)  # 4,000 = 2x the limit: 10%
    assert g.size_factor("BTCUSDT", SELL) == pytest.approx(1.10)
    b.update_position("ETHUSDT", 9_000, T0 + 3)  # capped at bias_cap_ratio 0.10
    assert g.size_factor("BTCUSDT", BUY) == pytest.approx(0.90)
    assert g.check(buy(), T0 + 3) is None        # color breach biases, never blocks
    b.update_position("BTCUSDT", -20_000, T0 + 4)  # net short: buys reduce
    assert g.size_factor("BTCUSDT", BUY) == pytest.approx(1.10)
    assert g.state().color_breach == ("blue",)
    b.update_position("BTCUSDT", 0, T0 + 5)
    b.update_position("ETHUSDT", 0, T0 + 5)
    evs = g.drain_events()
    assert [(e.symbol, e.kind) for e in evs] == [("color:blue", "breach"), ("color:blue", "recover")]


def test_bias_cap_below_5pct_wins_and_set_color_reevaluates():
    b = PositionBook()
    g = PositionSkewGuard(PosSkewConfig(per_symbol_abs_limit=0.0, per_color_abs_limit=100.0), b, bias_cap_ratio=0.02)
    b.update_mark("A", 1.0, T0)
    b.update_mark("B", 1.0, T0)
    b.update_position("A", 80, T0)
    b.update_position("B", 80, T0)  # both "default": 160 > 100
    assert g.size_factor("A", SELL) == pytest.approx(1.02)
    g.set_color("B", "green", T0 + 1)
    assert g.size_factor("A", SELL) == 1.0
    assert [(e.symbol, e.kind) for e in g.drain_events()] == [("color:default", "breach"), ("color:default", "recover")]


# ----------------------------------------------------------------------------- kill switch
def test_manual_kill_switch_blocks_expansion_until_reset():
    b = book_with(5, 60.0)
    k = KillSwitch(KillswitchConfig(), b)
    assert k.check(buy(), T0) is None
    k.trip("operator", T0)
    assert k.check(buy(), T0) == "killswitch"
    assert k.check(sell(), T0) is None and k.check(CANCEL, T0) is None
    assert k.status() == {"enabled": False, "dry_run": True, "action": "rollback", "fired": True, "reason": "operator"}
    k.reset(T0 + 1)
    assert k.check(buy(), T0 + 1) is None
    assert [e.kind for e in k.drain_events()] == ["fire", "reset"]


def test_canary_evaluation_follows_the_seed_rules():
    k = KillSwitch(KillswitchConfig(), book_with())  # disabled by default
    args = dict(fills_blue=500, fills_green=500, reject_rate_blue=0.01, reject_rate_green=0.05,
                latency_ms_blue=20.0, latency_ms_green=20.0)
    assert k.evaluate_canary(T0, **args) == "none"
    cfg = KillswitchConfig(enabled=True, dry_run=True)
    k = KillSwitch(cfg, book_with())
    assert k.evaluate_canary(T0, **{**args, "fills_green": 99}) == "none"  # min_fills 100
    assert k.evaluate_canary(T0, **args) == "reject_delta"  # 0.04 > 0.02
    assert k.evaluate_canary(T0 + 1, **args) == "reject_delta"
    assert not k.tripped and k.check(buy(), T0) is None  # dry run: report only, once per episode
    [ev] = k.drain_events()
    assert ev.kind == "fire" and "dry_run=true" in ev.detail and "reason=reject_delta" in ev.detail
    live = KillSwitch(replace(cfg, dry_run=False, action="freeze"), book_with())
    lat = {**args, "reject_rate_green": 0.02, "latency_ms_green": 71.0}  # +51 ms > 50
    assert live.evaluate_canary(T0, **lat) == "latency_delta"
    assert live.tripped and live.check(buy(), T0) == "killswitch"
    assert "action=freeze" in live.drain_events()[0].detail


# ----------------------------------------------------------------------------- the common rule
ACT = st.tuples(st.sampled_from(["create", "amend", "cancel"]), st.sampled_from([BUY, SELL]), st.integers(0, 400))


@settings(max_examples=200, deadline=None)
@given(pos=st.integers(-500, 500), lot=st.floats(0.5, 100.0), equity=st.floats(1.0, 200_000.0),
       pnl=st.floats(-5_000.0, 5_000.0), turnover=st.floats(0, 50_000.0), trip=st.booleans(), actions=st.lists(ACT, max_size=20))
def test_property_cancels_and_reducing_orders_pass_every_risk_guard(pos, lot, equity, pnl, turnover, trip, actions):
    b = book_with(pos, lot)
    guards = [
        RiskGuard(RiskConfig(max_position_usd=1_000.0), b, peak_equity_usd=200_000.0),
        IntradayCapsGuard(IntradayCapsConfig(daily_pnl_stop=100.0, daily_turnover_cap=1_000.0, daily_vol_cap=1.0), b, T0),
        PositionSkewGuard(PosSkewConfig(per_symbol_abs_limit=500.0, per_color_abs_limit=500.0), b),
        KillSwitch(KillswitchConfig(), b),
    ]
    guards[0].update_equity(equity, T0)
    guards[1].update_pnl(0.0, T0)
    guards[1].update_pnl(pnl, T0)
    guards[1].add_turnover(turnover, T0)
    guards[1].update_vol(2.0, T0)
    if trip:
        guards[3].trip("test", T0)
    for op, side, qty in actions:
        a = {"create": CreateOrder("c", "BTCUSDT", side, 1, qty), "amend": AmendOrder("c", "BTCUSDT", side, 1, qty),
             "cancel": CancelOrder("c", "BTCUSDT")}[op]
        reasons = [g.check(a, T0) for g in guards]
        if op == "cancel" or not increases_risk(pos, side, qty):
            assert reasons == [None] * 4, (op, pos, side, qty, reasons)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(-50, 50), st.floats(1.0, 1e6), st.sampled_from([BUY, SELL]),
                          st.integers(1, 40)), min_size=1, max_size=15))
def test_guards_with_every_limit_off_refuse_nothing(steps):
    """``checks_orders`` is False only when the guard can never refuse (so ``GateChain``
    may skip asking it): with every limit off, no position, mark or equity path makes
    ``check`` answer anything; any limit on turns it back on."""
    pos_book = book_with(0, 60.0)
    risk = RiskGuard(RiskConfig(max_position_usd=0, max_drawdown_pct=0, risk_pause_threshold=0), pos_book,
                     peak_equity_usd=1000.0)
    skew = PositionSkewGuard(PosSkewConfig(per_symbol_abs_limit=0, per_color_abs_limit=5.0), pos_book)
    assert not risk.checks_orders and not skew.checks_orders
    for i, (pos, equity, side, qty) in enumerate(steps):
        pos_book.update_position("BTCUSDT", pos, T0 + i)
        risk.update_equity(equity, T0 + i)
        action = CreateOrder("c", "BTCUSDT", side, 100, qty)
        assert risk.check(action, T0 + i) is None and skew.check(action, T0 + i) is None
    for cfg in (RiskConfig(max_position_usd=1.0, max_drawdown_pct=0, risk_pause_threshold=0),
                RiskConfig(max_position_usd=0, max_drawdown_pct=0.5, risk_pause_threshold=0),
                RiskConfig(max_position_usd=0, max_drawdown_pct=0, risk_pause_threshold=0.1)):
        assert RiskGuard(cfg, book_with()).checks_orders
    assert PositionSkewGuard(PosSkewConfig(per_symbol_abs_limit=1.0, per_color_abs_limit=0), book_with()).checks_orders


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["pnl", "turnover", "vol", "check", "state"]), st.floats(-1e5, 1e5),
                          st.integers(0, 3 * DAY_NS // SEC)), min_size=1, max_size=25))
def test_intraday_caps_off_checks_nothing_and_skipping_check_changes_nothing(steps):
    """Every cap off: ``checks_orders`` is False, ``check`` never blocks, and a guard whose
    ``check`` is never called (the chain skips it) reports the same day figures and events
    as one asked before every order (the day roll happens at the next update or state)."""
    cfg = IntradayCapsConfig(daily_pnl_stop=0, daily_turnover_cap=0, daily_vol_cap=0)
    asked, skipped = IntradayCapsGuard(cfg, book_with(), T0), IntradayCapsGuard(cfg, book_with(), T0)
    assert not asked.checks_orders and not skipped.checks_orders
    now = T0
    for kind, value, dt in sorted(steps, key=lambda s: s[2]):
        now = T0 + dt * SEC
        for g in (asked, skipped):
            if kind == "pnl":
                g.update_pnl(value, now)
            elif kind == "turnover":
                g.add_turnover(value, now)
            elif kind == "vol":
                g.update_vol(abs(value) % 50, now)
        if kind == "check":
            assert asked.check(buy(), now) is None
        if kind == "state":
            assert asked.state(now) == skipped.state(now)
    assert asked.state(now) == skipped.state(now) and asked.drain_events() == skipped.drain_events() == []
    assert IntradayCapsGuard(IntradayCapsConfig(daily_turnover_cap=5.0), book_with(), T0).checks_orders
