"""Quoting strategies: worked examples per model, registry, and invariants under hypothesis.

Config comes from the real ``mmkit.config_schema`` dataclasses, so each model is shown to
consume its section with the documented defaults (seed "Quick Start" strategy block and
``strategy.fixed`` / ``strategy.avellaneda``; fees from ``trading:``).
"""

from __future__ import annotations

import dataclasses
import math
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mmkit.config_schema import AvellanedaParams, FixedParams, SignalsConfig, StrategyConfig, TradingConfig
from mmkit.core.book import L2Book
from mmkit.core.events import BUY, SELL
from mmkit.core.instruments import Instrument
from mmkit.core.signals import SymbolSignals, make_signal_snapshot
from mmkit.core.strategy import (
    MIN_HALF_SPREAD_TICKS,
    STRATEGIES,
    AvellanedaStrategy,
    FixedStrategy,
    QuoteContext,
    QuoteInvariantError,
    StrategyConfigError,
    StrategyError,
    UnknownStrategyError,
    VolStrategy,
    check_quotes,
    make_desired_quote,
    make_quote_context,
    make_strategy,
    register_strategy,
)
from mmkit.core.types import DesiredQuote

TRADING = TradingConfig()
BTC = Instrument("BTCUSDT", Decimal("0.1"), Decimal("0.001"), min_notional=Decimal("5"))
UNIT = Instrument("UNIT", Decimal("1"), Decimal("0.001"))  # tick 1: prices read as ticks
INVERSE = Instrument("BTCUSD", Decimal("0.5"), Decimal("1"), contract_multiplier=Decimal("100"), inverse=True,
                     min_notional=Decimal("100"))


def snap(vol: float = 0.0, imbalance: float = 0.0, raw_bias: float = 0.0, cap: float = 0.10):
    return make_signal_snapshot(0, None, vol, 10, 0.0, 0.0, 0.0, imbalance, 0.0, raw_bias, cap)


def ctx(bid: int | None = 600000, ask: int | None = 600002, *, inst: Instrument = BTC, signals=None, pos: int = 0,
        target: float = 1000.0, max_levels: int = 10, maker: float = TRADING.maker_fee_bps,
        taker: float = TRADING.taker_fee_bps, size_bias: float = 1.0, pull_bid: bool = False, pull_ask: bool = False,
        bq: int = 5, aq: int = 5) -> QuoteContext:
    return make_quote_context(inst.symbol, inst, bid, ask, bq, aq, signals, pos, 0, target, max_levels, maker, taker,
                              size_bias, pull_bid, pull_ask)


def sides(quotes: list[DesiredQuote]) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    bids = [(q.price, q.qty) for q in quotes if q.side == BUY]
    asks = [(q.price, q.qty) for q in quotes if q.side == SELL]
    return bids, asks


# ----------------------------------------------------------------------------- registry
def test_registry_builds_each_model_from_the_config_defaults():
    cfg = StrategyConfig()
    assert set(STRATEGIES) == {"vol", "avellaneda", "fixed"}
    vol = make_strategy(cfg)
    assert isinstance(vol, VolStrategy) and vol.name == "vol"
    assert (vol.k_vola_spread, vol.skew_coeff, vol.levels_per_side, vol.level_spacing_coeff, vol.imbalance_cutoff) == (
        1.0, 0.3, 3, 0.4, 0.65)
    fixed = make_strategy(dataclasses.replace(cfg, model="fixed"))
    assert isinstance(fixed, FixedStrategy)
    assert (fixed.half_spread_ticks, fixed.skew_ticks, fixed.order_qty, fixed.max_position) == (3.0, 0.5, 0.01, 0.2)
    av = make_strategy(dataclasses.replace(cfg, model="avellaneda"))
    assert isinstance(av, AvellanedaStrategy)
    assert (av.gamma, av.kappa, av.horizon_sec, av.order_qty, av.max_position) == (0.1, 1.5, 60.0, 0.01, 0.2)
    # parameters live under strategy.<model>
    custom = make_strategy(dataclasses.replace(cfg, model="fixed", fixed=FixedParams(half_spread_ticks=7)))
    assert custom.half_spread_ticks == 7  # type: ignore[attr-defined]


def test_unknown_model_raises_a_value_error_naming_the_known_ones():
    with pytest.raises(UnknownStrategyError, match="known: avellaneda, fixed, vol") as err:
        make_strategy(dataclasses.replace(StrategyConfig(), model="martingale"))  # type: ignore[arg-type]
    assert isinstance(err.value, ValueError) and isinstance(err.value, StrategyError)


def test_register_strategy_adds_a_model_once():
    class Null:
        name = "null"

        def quotes(self, c):
            return []

    try:
        register_strategy("null", lambda cfg: Null())
        assert make_strategy(dataclasses.replace(StrategyConfig(), model="null")).quotes(ctx()) == []  # type: ignore[arg-type]
        with pytest.raises(StrategyError):
            register_strategy("null", lambda cfg: Null())
    finally:
        STRATEGIES.pop("null", None)


@pytest.mark.parametrize("kwargs", [dict(k_vola_spread=-1), dict(levels_per_side=0), dict(levels_per_side=1.5),
                                    dict(imbalance_cutoff=0), dict(imbalance_cutoff=1.5), dict(skew_coeff=-0.1)])
def test_vol_rejects_bad_parameters(kwargs):
    with pytest.raises(StrategyConfigError):
        VolStrategy(**kwargs)


def test_fixed_and_avellaneda_reject_bad_parameters():
    for bad in (dict(half_spread_ticks=0), dict(skew_ticks=-1), dict(order_qty=0), dict(max_position=0)):
        with pytest.raises(StrategyConfigError):
            FixedStrategy(**bad)
    for bad in (dict(gamma=0), dict(kappa=0), dict(horizon_sec=0), dict(order_qty=-1)):
        with pytest.raises(StrategyConfigError):
            AvellanedaStrategy(**bad)
    # order_qty must be a whole number of lots of the instrument (no silent rounding)
    with pytest.raises(StrategyConfigError, match="not a whole number of lots"):
        FixedStrategy(order_qty=0.0015).quotes(ctx())


# ----------------------------------------------------------------------------- fixed model
FIXED = FixedStrategy.from_config(dataclasses.replace(StrategyConfig(), model="fixed"))  # the config


def test_fixed_worked_examples():
    # strategy: {model: fixed, fixed: {half_spread_ticks: 3, skew_ticks: 0.5, order_qty: 0.01, max_position: 0.2}}
    # BTCUSDT tick 0.1, lot 0.001: order_qty = 10 lots; touch 60000.0 / 60000.1 -> mid 600000.5 ticks
    c = ctx(600000, 600001)
    assert sides(FIXED.quotes(c)) == ([(599997, 10)], [(600004, 10)])  # floor(599997.5), ceil(600003.5)
    # long 0.01 (one order_qty): reservation 0.5 tick lower -> 600000.0
    assert sides(FIXED.quotes(ctx(600000, 600001, pos=10))) == ([(599997, 10)], [(600003, 10)])
    # long 0.03: reservation 600000.5 - 1.5 = 599999.0
    assert sides(FIXED.quotes(ctx(600000, 600001, pos=30))) == ([(599996, 10)], [(600002, 10)])
    # short 0.05: reservation 600003.0 -> bid 600000 (below the ask), ask 600006
    assert sides(FIXED.quotes(ctx(600000, 600001, pos=-50))) == ([(600000, 10)], [(600006, 10)])
    # at max_position 0.2 (200 lots): no bid; the ask (r = 599990.5 -> 599994) is lifted to best_bid + 1
    assert sides(FIXED.quotes(ctx(600000, 600001, pos=200))) == ([], [(600001, 10)])
    assert sides(FIXED.quotes(ctx(600000, 600001, pos=199)))[0] == [(599987, 10)]
    # at -max_position: no ask; the bid (r = 600010.5 -> 600007) is capped at best_ask - 1
    assert sides(FIXED.quotes(ctx(600000, 600001, pos=-200))) == ([(600000, 10)], [])


def test_fixed_is_exact_where_binary_floats_are_not():
    # tick 1, lot 0.001: order_qty 0.01 = 10 lots; skew 0.1 and half-spread 0.1 ticks;
    # short 10 lots -> r = 4 + 0.1 = 4.1, r - h = 4.0 exactly: floor 4 (float math gives 3.9999... -> 3)
    s = FixedStrategy(half_spread_ticks=0.1, skew_ticks=0.1, order_qty=0.01, max_position=1)
    assert math.floor(4 - 0.1 * -10 / 10 - 0.1) == 3  # the float trap
    assert sides(s.quotes(ctx(3, 5, inst=UNIT, pos=-10))) == ([(4, 10)], [(5, 10)])


def _reference_fixed(bid: int, ask: int, pos: int, h: str, s: str, order_lots: int) -> tuple[int, int]:
    r = Fraction(bid + ask, 2) - Fraction(Decimal(s)) * pos / order_lots
    b = math.floor(r - Fraction(Decimal(h)))
    a = math.ceil(r + Fraction(Decimal(h)))
    return min(b, ask - 1), max(a, bid + 1)


@settings(max_examples=300)
@given(bid=st.integers(1, 10**7), spread=st.integers(1, 50), pos=st.integers(-10**4, 10**4),
       h=st.sampled_from(["0.1", "0.5", "1", "2.5", "3", "7.3", "0.01"]),
       s=st.sampled_from(["0", "0.1", "0.5", "0.3", "2", "0.25"]), order_lots=st.sampled_from([1, 3, 10, 25]))
def test_fixed_prices_match_an_exact_rational_reference(bid, spread, pos, h, s, order_lots):
    strat = FixedStrategy(half_spread_ticks=float(h), skew_ticks=float(s), order_qty=order_lots / 1000, max_position=100)
    assert strat.prices(bid, bid + spread, pos, order_lots) == _reference_fixed(bid, bid + spread, pos, h, s, order_lots)


def test_fixed_ignores_budget_fees_and_size_bias_but_honours_pulls_and_min_notional():
    base = FIXED.quotes(ctx(600000, 600001))
    assert FIXED.quotes(ctx(600000, 600001, target=0.0, maker=-5.0, size_bias=0.1)) == base
    assert sides(FIXED.quotes(ctx(600000, 600001, pull_bid=True)))[0] == []
    assert sides(FIXED.quotes(ctx(600000, 600001, pull_ask=True)))[1] == []
    assert FIXED.quotes(ctx(600000, 600001, max_levels=0)) == []
    tiny = Instrument("BTCUSDT", Decimal("0.1"), Decimal("0.001"), min_notional=Decimal("1000"))  # 0.01 BTC < 1000 USD
    assert FIXED.quotes(ctx(600000, 600001, inst=tiny)) == []


# ----------------------------------------------------------------------------- vol model
VOL = make_strategy(StrategyConfig())


def test_vol_worked_example_flat_inventory():
    # touch 60000.0 / 60000.2 (ticks 600000 / 600002): mid 600001; vol 2 bps per sqrt(s);
    # k_vola_spread 1 -> half-spread 2 bps = 120.0002 ticks (> maker fee 1 bps);
    # levels at 1.0, 1.4, 1.8 half-spreads; 1000 USD per side -> 333.33 USD per level
    c = ctx(600000, 600002, signals=snap(vol=2e-4))
    plan = VOL.explain(c)  # type: ignore[attr-defined]
    assert plan.half_spread_ticks == pytest.approx(120.0002)
    assert plan.reservation_ticks == 600001.0 and plan.skew_ticks == 0.0
    bids, asks = sides(VOL.quotes(c))
    assert bids == [(599880, 5), (599832, 5), (599784, 5)]  # floor(600001 - 120.0002 * m)
    assert asks == [(600122, 5), (600170, 5), (600218, 5)]  # ceil(600001 + 120.0002 * m)
    # 5 lots = 0.005 BTC ~ 300 USD per level: int(333.33 / (59988.0 * 0.001))
    assert [q.level for q in VOL.quotes(c)] == [0, 1, 2, 0, 1, 2]


def test_vol_worked_example_inventory_skew():
    # long 0.01 BTC = 10 lots ~ 600 USD of a 1000 USD budget: q = 0.600001;
    # skew = 0.3 * q * 120.0002 = 21.6001 ticks -> reservation 599979.40
    c = ctx(600000, 600002, signals=snap(vol=2e-4), pos=10)
    plan = VOL.explain(c)  # type: ignore[attr-defined]
    assert plan.inventory_ratio == pytest.approx(0.600001)
    assert plan.skew_ticks == pytest.approx(0.3 * 0.600001 * 120.0002)
    bids, asks = sides(VOL.quotes(c))
    assert [p for p, _ in bids] == [599859, 599811, 599763]
    assert [p for p, _ in asks] == [600100, 600148, 600196]
    # inventory beyond the budget saturates at q = 1
    assert VOL.explain(ctx(600000, 600002, signals=snap(vol=2e-4), pos=10**6)).inventory_ratio == 1.0  # type: ignore[attr-defined]
    assert VOL.explain(ctx(600000, 600002, signals=snap(vol=2e-4), pos=-10**6)).inventory_ratio == -1.0  # type: ignore[attr-defined]


def test_vol_micro_bias_is_capped_at_impact_cap_ratio_of_the_half_spread():
    # raw bias +50 ticks, half-spread 120.0002: capped at 0.10 * 120.0002 = 12.00002
    c = ctx(600000, 600002, signals=snap(vol=2e-4, raw_bias=50.0))
    plan = VOL.explain(c)  # type: ignore[attr-defined]
    assert plan.micro_bias_ticks == pytest.approx(12.00002)
    assert plan.micro_bias_strength == pytest.approx(0.10)
    bids, asks = sides(VOL.quotes(c))
    assert bids[0][0] == math.floor(600001 + 12.00002 - 120.0002) == 599892
    assert asks[0][0] == math.ceil(600001 + 12.00002 + 120.0002) == 600134
    # a small bias passes unchanged
    assert VOL.explain(ctx(600000, 600002, signals=snap(vol=2e-4, raw_bias=-3.0))).micro_bias_ticks == -3.0  # type: ignore[attr-defined]


def test_vol_pulls_the_side_the_book_leans_against():
    assert sides(VOL.quotes(ctx(signals=snap(vol=2e-4, imbalance=0.7))))[1] == []  # bids dominate: no asks
    assert sides(VOL.quotes(ctx(signals=snap(vol=2e-4, imbalance=-0.7))))[0] == []  # asks dominate: no bids
    both = sides(VOL.quotes(ctx(signals=snap(vol=2e-4, imbalance=0.65))))  # at the cutoff: keep both
    assert both[0] and both[1]
    # without a signals snapshot the touch sizes decide: 95 vs 5 lots -> imbalance 0.9
    assert sides(VOL.quotes(ctx(bq=95, aq=5)))[1] == []
    # guards can pull either side too
    assert sides(VOL.quotes(ctx(signals=snap(vol=2e-4), pull_bid=True)))[0] == []
    assert sides(VOL.quotes(ctx(signals=snap(vol=2e-4), pull_ask=True)))[1] == []


def test_vol_never_quotes_inside_the_maker_fee_breakeven():
    # vol 0.2 bps < maker fee 1 bps: the half-spread is the fee, 60.0001 ticks
    c = ctx(600000, 600002, signals=snap(vol=0.2e-4))
    assert VOL.explain(c).half_spread_ticks == pytest.approx(60.0001)  # type: ignore[attr-defined]
    bids, asks = sides(VOL.quotes(c))
    assert bids[0][0] == 599940 and asks[0][0] == 600062
    # skew toward the fee floor is clamped there (short: reservation up, bid held at the breakeven)
    short = ctx(600000, 600002, signals=snap(vol=0.2e-4), pos=-10**6)
    assert sides(VOL.quotes(short))[0][0][0] == math.floor(600001 - 60.0001)
    # a maker rebate puts no floor on the spread but our bid and ask still never meet
    rebate = VOL.quotes(ctx(600000, 600002, maker=-0.5))
    bids, asks = sides(rebate)
    assert bids[0][0] == 600000 and asks[0][0] == 600002  # half-spread floored at 0.5 tick
    assert MIN_HALF_SPREAD_TICKS == 0.5


def test_vol_budget_levels_and_minimum_notional():
    c = ctx(600000, 600002, signals=snap(vol=2e-4), max_levels=2)
    assert len(sides(VOL.quotes(c))[0]) == 2  # allocator's max_levels caps levels_per_side
    assert VOL.quotes(ctx(target=0.0)) == [] and VOL.quotes(ctx(max_levels=0)) == []
    # one lot (0.001 BTC) is ~60 USD: 130 USD per side cannot fund 3 levels, so 2 levels of 1 lot
    bids, asks = sides(VOL.quotes(ctx(600000, 600002, signals=snap(vol=2e-4), target=130.0)))
    assert [q for _, q in bids] == [1, 1] and [q for _, q in asks] == [1, 1]
    assert VOL.quotes(ctx(600000, 600002, target=59.0)) == []  # less than one lot
    # a minimum notional above one lot: 100 USD -> 2 lots per level; 250 USD funds 2 levels
    big_min = Instrument("BTCUSDT", Decimal("0.1"), Decimal("0.001"), min_notional=Decimal("100"))
    bids, asks = sides(VOL.quotes(ctx(600000, 600002, inst=big_min, signals=snap(vol=2e-4), target=250.0)))
    assert [q for _, q in bids] == [2, 2] and [q for _, q in asks] == [2, 2]
    # size_bias scales the budget
    half = sides(VOL.quotes(ctx(600000, 600002, signals=snap(vol=2e-4), size_bias=0.5)))[0]
    assert [q for _, q in half] == [2, 2, 2]
    # per-side notional stays within the budget
    for side in sides(VOL.quotes(ctx(600000, 600002, signals=snap(vol=2e-4), target=2500.0))):
        assert sum(p * q for p, q in side) * 0.1 * 0.001 <= 2500.0


def test_vol_on_an_inverse_contract_sizes_in_contracts():
    # BTCUSD inverse: 1 contract = 100 USD; 1000 USD per side over 3 levels -> 3 contracts each
    c = ctx(120000, 120002, inst=INVERSE, signals=snap(vol=2e-4))
    bids, asks = sides(VOL.quotes(c))
    assert [q for _, q in bids] == [3, 3, 3] and [q for _, q in asks] == [3, 3, 3]
    # inventory notional for the skew: 5 contracts = 500 USD of 1000 -> q = 0.5
    assert VOL.explain(ctx(120000, 120002, inst=INVERSE, pos=5)).inventory_ratio == 0.5  # type: ignore[attr-defined]
    assert VOL.quotes(ctx(120000, 120002, inst=INVERSE, target=99.0)) == []  # below one contract
    one = sides(VOL.quotes(ctx(120000, 120002, inst=INVERSE, target=250.0, signals=snap(vol=2e-4))))
    assert [q for _, q in one[0]] == [1, 1]  # 2 levels of min notional 100 USD


def test_vol_reuses_unchanged_quote_objects():
    c = ctx(600000, 600002, signals=snap(vol=2e-4))
    a = VOL.quotes(c)
    b = VOL.quotes(c)
    assert a == b and all(x is y for x, y in zip(a, b))
    moved = VOL.quotes(ctx(600010, 600012, signals=snap(vol=2e-4)))
    assert all(type(q) is DesiredQuote for q in moved) and moved[0] is not a[0]


def test_quotes_on_an_unusable_touch_are_empty():
    for model in (VOL, FIXED, make_strategy(dataclasses.replace(StrategyConfig(), model="avellaneda"))):
        for bid, ask in ((None, 10), (10, None), (10, 10), (11, 10), (0, 10)):
            assert model.quotes(ctx(bid, ask)) == []
    assert VOL.explain(ctx(10, 10)) is None  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------- avellaneda
AS = make_strategy(dataclasses.replace(StrategyConfig(), model="avellaneda"))


def test_avellaneda_worked_example():
    # sigma 1 bps per sqrt(s), T 60 s, gamma 0.1, kappa 1.5:
    # risk term gamma * sigma^2 * T = 6 bps; liquidity term (2/gamma) ln(1 + gamma/kappa) = 1.290770 bps;
    # half-spread 3.645385 bps = 218.7235 ticks at mid 600001
    res, half = AS.spread_bps(1.0, 0, 10)  # type: ignore[attr-defined]
    assert res == 0.0 and half == pytest.approx(0.5 * (6 + 20 * math.log(1 + 0.1 / 1.5)))
    assert half == pytest.approx(3.645385, abs=1e-6)
    bids, asks = sides(AS.quotes(ctx(600000, 600002, signals=snap(vol=1e-4))))
    assert bids == [(599782, 10)] and asks == [(600220, 10)]
    # long one order (10 lots): reservation 6 bps lower = 599641.0; the ask would sit below
    # mid + fee, so it is held at the breakeven ceil(600001 + 60.0001) = 600062
    bids, asks = sides(AS.quotes(ctx(600000, 600002, signals=snap(vol=1e-4), pos=10)))
    assert bids == [(math.floor(600001 * (1 - 6e-4) - 600001 * 3.645385e-4), 10)] == [(599422, 10)]
    assert asks == [(600062, 10)]
    # limits: no bid at +max_position (0.2 = 200 lots), no ask at -max_position
    assert sides(AS.quotes(ctx(600000, 600002, signals=snap(vol=1e-4), pos=200)))[0] == []
    assert sides(AS.quotes(ctx(600000, 600002, signals=snap(vol=1e-4), pos=-200)))[1] == []


def test_avellaneda_reads_its_section():
    strat = make_strategy(dataclasses.replace(StrategyConfig(), model="avellaneda",
                                              avellaneda=AvellanedaParams(gamma=0.5, kappa=2.0, horizon_sec=10)))
    _, half = strat.spread_bps(2.0, 0, 10)  # type: ignore[attr-defined]
    assert half == pytest.approx(0.5 * (0.5 * 4 * 10 + 4 * math.log(1.25)))


# ----------------------------------------------------------------------------- builders and checks
def test_builders_match_their_dataclasses():
    for builder, cls in ((make_quote_context, QuoteContext), (make_desired_quote, DesiredQuote)):
        fields = tuple(f.name for f in dataclasses.fields(cls))
        assert builder.__slots__ == fields  # type: ignore[attr-defined]
    q = make_desired_quote("X", BUY, 0, 5, 1)
    assert type(q) is DesiredQuote and q == DesiredQuote("X", BUY, 0, 5, 1) and hash(q) == hash(DesiredQuote("X", BUY, 0, 5, 1))
    c = ctx()
    assert type(c) is QuoteContext and c.size_bias == 1.0 and not c.pull_bid
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.best_bid = 1  # type: ignore[misc]


def test_check_quotes_rejects_every_broken_quote():
    c = ctx(100, 105, inst=UNIT)
    ok = [DesiredQuote("UNIT", BUY, 0, 104, 1), DesiredQuote("UNIT", SELL, 0, 101, 1)]
    with pytest.raises(QuoteInvariantError, match="own quotes cross"):
        check_quotes(ok, c)
    bad = [
        [DesiredQuote("UNIT", BUY, 0, 105, 1)],  # bid at the best ask
        [DesiredQuote("UNIT", SELL, 0, 100, 1)],  # ask at the best bid
        [DesiredQuote("UNIT", BUY, 0, 101, 0)],  # zero size
        [DesiredQuote("UNIT", BUY, 0, 0, 1)],  # price 0
        [DesiredQuote("UNIT", BUY, 0, 101.5, 1)],  # off tick  # type: ignore[arg-type]
        [DesiredQuote("OTHER", BUY, 0, 101, 1)],
        [DesiredQuote("UNIT", 0, 0, 101, 1)],
        [DesiredQuote("UNIT", BUY, 0, 101, 1), DesiredQuote("UNIT", BUY, 1, 101, 1)],  # same price
        [DesiredQuote("UNIT", BUY, 0, 101, 1), DesiredQuote("UNIT", BUY, 0, 100, 1)],  # same level
    ]
    for quotes in bad:
        with pytest.raises(QuoteInvariantError):
            check_quotes(quotes, c)
    good = [DesiredQuote("UNIT", BUY, 0, 101, 1), DesiredQuote("UNIT", SELL, 0, 104, 1)]
    assert check_quotes(good, c) is good


def test_models_refuse_to_emit_a_crossing_quote_even_when_their_math_is_broken():
    class Broken(FixedStrategy):
        def prices(self, best_bid, best_ask, position_lots, order_lots):
            return best_ask, best_ask + 3  # a bid at the best ask: would take liquidity

    with pytest.raises(QuoteInvariantError, match="against touch"):
        Broken().quotes(ctx(600000, 600001))

    class Flipped(VolStrategy):
        __slots__ = ()

    bad = Flipped()
    bad._mults = (-5.0,)  # level 0 on the wrong side of the reservation  # type: ignore[misc]
    c = ctx(600000, 600100, signals=snap(vol=2e-4), maker=0.0, max_levels=1)
    # the clamps hold the bid at the mid and the ask at the mid: the check refuses the pair
    with pytest.raises(QuoteInvariantError, match="ask 600050 would cross"):
        bad.quotes(c)


# ----------------------------------------------------------------------------- properties
MODELS = {
    "vol": make_strategy(StrategyConfig()),
    "avellaneda": make_strategy(dataclasses.replace(StrategyConfig(), model="avellaneda")),
    "fixed": make_strategy(dataclasses.replace(StrategyConfig(), model="fixed")),
    "vol5": VolStrategy(k_vola_spread=3.0, skew_coeff=1.0, levels_per_side=5, level_spacing_coeff=0.0,
                        imbalance_cutoff=0.2),
}
INSTRUMENTS = [BTC, UNIT, INVERSE, Instrument("ETHUSDT", Decimal("0.01"), Decimal("0.01"), min_notional=Decimal("10"))]


@settings(max_examples=400, deadline=None)
@given(
    model=st.sampled_from(sorted(MODELS)),
    inst=st.sampled_from(INSTRUMENTS),
    bid=st.integers(1, 10**7),
    spread=st.integers(1, 200),
    vol=st.floats(0, 5e-3),
    imb=st.floats(-1, 1),
    raw_bias=st.floats(-1e4, 1e4),
    cap=st.floats(0, 1),
    pos=st.integers(-10**5, 10**5),
    target=st.floats(0, 1e6),
    max_levels=st.integers(0, 12),
    maker=st.floats(-3, 10),
    size_bias=st.floats(0, 2),
    pulls=st.tuples(st.booleans(), st.booleans()),
    with_signals=st.booleans(),
)
def test_quotes_never_cross_the_book_and_are_always_valid(model, inst, bid, spread, vol, imb, raw_bias, cap, pos,
                                                          target, max_levels, maker, size_bias, pulls, with_signals):
    ask = bid + spread
    sig = snap(vol=vol, imbalance=imb, raw_bias=raw_bias, cap=cap) if with_signals else None
    c = make_quote_context(inst.symbol, inst, bid, ask, 7, 3, sig, pos, 0, target, max_levels, maker, 5.0, size_bias,
                           *pulls)
    strat = MODELS[model]
    try:
        quotes = strat.quotes(c)
    except StrategyConfigError:
        assume(False)  # order_qty not on this instrument's lot grid
        return
    check_quotes(quotes, c)  # never crossed, post-only safe, positive ints, distinct levels
    bids = [q for q in quotes if q.side == BUY]
    asks = [q for q in quotes if q.side == SELL]
    assert [q.level for q in bids] == list(range(len(bids)))
    assert [q.level for q in asks] == list(range(len(asks)))
    assert [q.price for q in bids] == sorted((q.price for q in bids), reverse=True)
    assert [q.price for q in asks] == sorted(q.price for q in asks)
    if pulls[0]:
        assert not bids
    if pulls[1]:
        assert not asks
    for q in quotes:  # minimum notional, exactly
        assert inst.notional_usd(q.price, q.qty) >= inst.min_notional
    mid = Fraction(bid + ask, 2)
    if model != "fixed":
        fee = Fraction(max(maker, 0.0)) / 10000 * mid
        # never inside the maker-fee breakeven from the mid (tolerance: float mid * bps)
        for q in bids:
            assert q.price <= mid - fee + Fraction(1, 10**6)
        for q in asks:
            assert q.price >= mid + fee - Fraction(1, 10**6)
        assert len(bids) <= max(0, max_levels) and len(asks) <= max(0, max_levels)
    if model.startswith("vol"):
        budget = Decimal(repr(target * size_bias))
        for side in (bids, asks):
            assert sum(inst.notional_usd(q.price, q.qty) for q in side) <= budget * Decimal("1.000001")
        plan = strat.explain(c)  # type: ignore[attr-defined]
        # quotes() inlines explain()'s arithmetic: the best bid/ask can only be the plan's
        # level-0 price (or further out, when that level missed the minimum notional)
        if bids:
            top = min(math.floor(plan.reservation_ticks - plan.half_spread_ticks),
                      math.floor(plan.mid_ticks - plan.fee_floor_ticks), ask - 1)
            assert bids[0].price <= top
            assert not plan.pull_bid
        if asks:
            top = max(math.ceil(plan.reservation_ticks + plan.half_spread_ticks),
                      math.ceil(plan.mid_ticks + plan.fee_floor_ticks), bid + 1)
            assert asks[0].price >= top
            assert not plan.pull_ask
    else:
        assert len(bids) <= 1 and len(asks) <= 1


# ----------------------------------------------------------------------------- with the real book and signals
def test_strategy_on_a_real_book_with_real_signals():
    cfg = SignalsConfig()
    book = L2Book("BTCUSDT", BTC)
    sig = SymbolSignals("BTCUSDT", cfg)
    mid = 600000
    for i in range(600):  # 100 ms ticks, the mid wanders 1-2 ticks
        mid += (1, -1, 2, -2, 0)[i % 5]
        book.apply_snapshot([(mid - k, 5 + k) for k in range(10)], [(mid + 1 + k, 5 + k) for k in range(10)])
        sig.on_book(i * 100_000_000, book)
    s = sig.snapshot(600 * 100_000_000, book)
    assert s.vol_per_sqrt_s > 0
    c = make_quote_context("BTCUSDT", BTC, book.best_bid, book.best_ask, book.best_bid_qty, book.best_ask_qty, s, 0,
                           s.ts_ns, 1000.0, 3, TRADING.maker_fee_bps, TRADING.taker_fee_bps)
    for name in ("vol", "avellaneda", "fixed"):
        quotes = make_strategy(dataclasses.replace(StrategyConfig(), model=name)).quotes(c)  # type: ignore[arg-type]
        check_quotes(quotes, c)
        assert {q.side for q in quotes} == {BUY, SELL}


# ----------------------------------------------------------------------------- docs
def test_the_python_example_in_docs_strategy_runs(capsys):
    import re

    from support import ROOT

    text = (ROOT / "docs" / "strategy.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "docs/strategy.md has no python example"
    exec(compile(blocks[0], "docs/strategy.md", "exec"), {})  # noqa: S102 - our own doc
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("MUX ts=300000000 sigma=") and "regime=" in out[-1]
    assert len(out) == 7  # 3 levels a side and the mux line


def test_docs_strategy_lists_every_parameter_with_its_default():
    from support import ROOT

    from mmkit.config_schema import AvellanedaParams, FixedParams, SignalsConfig, StrategyConfig

    text = (ROOT / "docs" / "strategy.md").read_text()
    text.encode("ascii")
    for prefix, section in (("strategy", StrategyConfig()), ("strategy.fixed", FixedParams()),
                            ("strategy.avellaneda", AvellanedaParams()), ("signals", SignalsConfig())):
        for f in dataclasses.fields(section):
            value = getattr(section, f.name)
            if dataclasses.is_dataclass(value):
                continue
            key = f"`{prefix}.{f.name}`"
            assert key in text, f"docs/strategy.md does not document {key}"
            row = next(line for line in text.splitlines() if line.startswith(f"| {key} |"))
            shown = row.split("|")[2].strip()
            if isinstance(value, bool):
                assert shown == str(value).lower(), row
            elif isinstance(value, list):
                assert shown == str(value), row
            elif isinstance(value, str):
                assert shown == f"`{value}`", row
            else:
                assert float(shown) == float(value), row


def test_only_the_fixed_strategy_offers_exact_terms():
    """The compiled loop's copy of ``quotes`` exists for the fixed strategy alone."""
    from mmkit.core.strategy import AvellanedaStrategy, FixedStrategy, VolStrategy

    assert hasattr(FixedStrategy, "exact_terms")
    assert not hasattr(AvellanedaStrategy, "exact_terms") and not hasattr(VolStrategy, "exact_terms")
