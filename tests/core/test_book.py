"""L2Book: integer-tick book maintenance, derived quantities, and a property test against a
naive sorted model under random updates."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmkit.core import book as book_module
from mmkit.core.book import ASK, BID, L2Book
from mmkit.core.events import BUY, SELL, BookDelta, BookSnapshot, Quote, SeqGap, Trade
from mmkit.core.instruments import Instrument

SPOT = Instrument("BTCUSDT", Decimal("0.01"), Decimal("0.00001"), venue="binance-spot")
COINM = Instrument("BTCUSD_PERP", Decimal("0.1"), Decimal("1"), contract_multiplier=Decimal("100"), inverse=True,
                   venue="binance-coinm")


@pytest.fixture(autouse=True, params=["compiled", "pure"])
def loop(request):
    """Every test runs with the compiled ``apply_levels`` loop (when built) and the pure one."""
    if request.param == "compiled" and book_module._compiled_apply_side is None:
        pytest.skip("mmkit.core._levels is not built (no C compiler at install time)")
    before = book_module._apply_side is not None
    book_module.use_compiled(request.param == "compiled")
    yield request.param
    book_module.use_compiled(before)


def book_with(bids, asks, inst=SPOT) -> L2Book:
    book = L2Book(inst.symbol, inst)
    book.apply_snapshot(bids, asks)
    return book


def test_sides_match_event_sides():
    assert (BID, ASK) == (BUY, SELL)


def test_empty_book_reads_none():
    book = L2Book("X")
    assert book.best_bid is None and book.best_ask is None
    assert book.best_bid_qty is None and book.best_ask_qty is None
    assert book.mid_ticks is None and book.spread_ticks is None and book.spread_bps is None
    assert book.microprice_ticks is None and book.imbalance(5) is None
    assert book.crossed is False and book.empty and book.levels(BID) == [] and book.levels(ASK, 3) == []
    assert book.depth_within_bps(10) == (0, 0.0)


def test_snapshot_top_of_book_and_derived_values():
    book = book_with([(100, 5), (99, 7), (97, 1)], [(102, 3), (103, 9), (110, 2)])
    assert (book.best_bid, book.best_ask, book.best_bid_qty, book.best_ask_qty) == (100, 102, 5, 3)
    assert book.mid_ticks == 101.0
    assert book.spread_ticks == 2
    assert book.spread_bps == pytest.approx(2 / 101 * 1e4)
    assert book.microprice_ticks == pytest.approx((100 * 3 + 102 * 5) / 8)
    assert book.imbalance(1) == pytest.approx((5 - 3) / 8)
    assert book.imbalance(2) == pytest.approx((12 - 12) / 24)
    assert book.levels(BID) == [(100, 5), (99, 7), (97, 1)]
    assert book.levels(ASK, 2) == [(102, 3), (103, 9)]
    assert book.size_at(BID, 99) == 7 and book.size_at(ASK, 99) == 0 and book.size_at(ASK, 110) == 2
    assert (book.updates, book.snapshots, book.stale, book.crossed) == (1, 1, False, False)


def test_mid_can_be_a_half_tick():
    book = book_with([(100, 1)], [(101, 1)])
    assert book.mid_ticks == 100.5 and book.spread_ticks == 1


def test_apply_level_insert_update_delete_and_best_tracking():
    book = book_with([(100, 5), (99, 7)], [(102, 3), (103, 9)])
    book.apply_level(BID, 101, 4)  # new best bid
    assert book.best_bid == 101 and book.best_bid_qty == 4
    book.apply_level(BID, 101, 6)  # size change at the best
    assert book.best_bid_qty == 6
    book.apply_level(BID, 101, 0)  # delete best: next best comes from the heap
    assert book.best_bid == 100
    book.apply_level(ASK, 102, 0)
    assert book.best_ask == 103
    book.apply_level(ASK, 103, 0)
    assert book.best_ask is None and book.mid_ticks is None
    book.apply_level(ASK, 105, 1)
    assert book.best_ask == 105
    book.apply_level(BID, 50, 0)  # deleting a missing level is a no-op
    assert book.levels(BID) == [(100, 5), (99, 7)]
    assert book.updates == 1 + 7


def test_deleted_level_readded_is_found_again():
    book = book_with([(100, 5), (99, 7)], [])
    book.apply_level(BID, 99, 0)
    book.apply_level(BID, 99, 3)  # stale heap entry plus a fresh one for the same price
    book.apply_level(BID, 100, 0)
    assert book.best_bid == 99 and book.best_bid_qty == 3
    book.apply_level(BID, 99, 0)
    assert book.best_bid is None


def test_heap_stays_bounded_under_churn():
    book = L2Book("X")
    for i in range(20_000):
        px = 1_000 + (i % 7)
        book.apply_level(BID, px, 0 if i % 2 else 5)
        book.apply_level(ASK, 2_000 + (i % 5), 0 if i % 3 else 1)
    assert len(book._bid_heap) <= 2 * len(book.bids) + 65
    assert len(book._ask_heap) <= 2 * len(book.asks) + 65


def test_negative_sizes_are_rejected_without_partial_changes():
    book = book_with([(100, 5)], [(102, 3)])
    with pytest.raises(ValueError, match="negative size"):
        book.apply_level(BID, 100, -1)
    with pytest.raises(ValueError, match="negative size"):
        book.apply_delta([(100, 9)], [(102, -3)])
    assert book.levels(BID) == [(100, 5)] and book.levels(ASK) == [(102, 3)]
    with pytest.raises(ValueError, match="negative size"):
        book.apply_snapshot([(100, 1)], [(105, -1)])
    assert book.levels(ASK) == [(102, 3)] and book.updates == 1


def test_snapshot_drops_zero_levels_and_replaces_everything():
    book = book_with([(100, 5), (98, 1)], [(102, 3)])
    book.apply_snapshot([(90, 1), (91, 0)], [(95, 2)])
    assert book.levels(BID) == [(90, 1)] and book.levels(ASK) == [(95, 2)]
    assert book.best_bid == 90 and book.best_ask == 95


def test_crossed_and_locked_are_reported_not_fixed():
    book = book_with([(100, 1)], [(101, 1)])
    book.apply_level(BID, 101, 2)  # locked
    assert book.crossed and book.spread_ticks == 0
    book.apply_level(BID, 102, 2)  # crossed
    assert book.crossed and book.spread_ticks == -1
    assert book.best_bid == 102 and book.best_ask == 101


def test_apply_dispatches_events_and_tracks_staleness():
    book = L2Book("BTCUSDT", SPOT)
    assert book.apply(BookSnapshot(1, 2, "BTCUSDT", ((100, 5),), ((102, 3),)))
    assert book.apply(BookDelta(3, 4, "BTCUSDT", ((101, 1),), ((102, 0), (103, 2))))
    assert (book.best_bid, book.best_ask, book.ts) == (101, 103, 3)
    assert book.apply(SeqGap(5, 6, "BTCUSDT", 10, 12)) and book.stale
    assert book.apply(BookDelta(7, 8, "BTCUSDT", ((101, 2),), ()))
    assert book.stale, "a delta does not clear staleness; only a snapshot does"
    assert not book.apply(Trade(9, 10, "BTCUSDT", BUY, 103, 1))
    assert not book.apply(Quote(9, 10, "BTCUSDT", 101, 1, 103, 1))
    assert book.ts == 7
    book.apply(BookSnapshot(11, 12, "BTCUSDT", ((99, 1),), ((100, 1),)))
    assert not book.stale and book.snapshots == 2
    with pytest.raises(ValueError, match="ETHUSDT"):
        book.apply(BookDelta(13, 14, "ETHUSDT", ((1, 1),), ()))


def test_mark_stale_and_clear():
    book = book_with([(100, 5)], [(102, 3)])
    book.mark_stale()
    assert book.stale
    book.clear()
    assert book.empty and book.best_bid is None and book.stale


def test_instrument_must_match_symbol():
    with pytest.raises(ValueError, match="does not match"):
        L2Book("ETHUSDT", SPOT)


def test_depth_within_bps_linear_exact_notional():
    # mid 101 ticks; 100 bps band = [99.99, 102.01] ticks
    book = book_with([(100, 5), (99, 7), (97, 1)], [(102, 3), (103, 9)])
    lots, notional = book.depth_within_bps(100)
    assert lots == 5 + 3
    expected = (Decimal(100 * 5 + 102 * 3) * SPOT.tick_size * SPOT.lot_size)
    assert notional == float(expected)
    assert book.depth_within_bps(100, side=BID) == (5, float(Decimal(500) * SPOT.tick_size * SPOT.lot_size))
    assert book.depth_within_bps(300, side=ASK)[0] == 12
    assert book.depth_within_bps(0)[0] == 0
    with pytest.raises(ValueError):
        book.depth_within_bps(-1)


def test_depth_within_bps_inverse_is_contracts_times_multiplier():
    book = book_with([(600000, 10), (599000, 4)], [(600010, 3)], inst=COINM)
    lots, usd = book.depth_within_bps(5)
    assert lots == 13 and usd == 1300.0


def test_depth_notional_needs_an_instrument():
    book = L2Book("X")
    book.apply_snapshot([(100, 1)], [(101, 1)])
    with pytest.raises(ValueError, match="instrument"):
        book.depth_within_bps(10)


# ----------------------------------------------------------------------------- property test
class NaiveBook:
    """The obvious model: two dicts, everything recomputed by sorting."""

    def __init__(self) -> None:
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.stale = False

    def level(self, side: int, px: int, qty: int) -> None:
        book = self.bids if side == BID else self.asks
        if qty:
            book[px] = qty
        else:
            book.pop(px, None)

    def snapshot(self, bids, asks) -> None:
        self.bids = {p: q for p, q in bids if q}
        self.asks = {p: q for p, q in asks if q}
        self.stale = False

    def levels(self, side: int) -> list[tuple[int, int]]:
        return sorted(self.bids.items(), reverse=True) if side == BID else sorted(self.asks.items())


prices = st.integers(min_value=90, max_value=130)
sizes = st.integers(min_value=0, max_value=4)
level_op = st.tuples(st.just("level"), st.sampled_from([BID, ASK]), prices, sizes)
snap_op = st.tuples(st.just("snapshot"), st.lists(st.tuples(prices, sizes), max_size=8),
                    st.lists(st.tuples(prices, sizes), max_size=8))
stale_op = st.tuples(st.just("stale"))
ops = st.lists(st.one_of(level_op, level_op, level_op, level_op, snap_op, stale_op), max_size=150)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_book_matches_naive_model(operations):
    book = L2Book(SPOT.symbol, SPOT)
    model = NaiveBook()
    for op in operations:
        if op[0] == "level":
            _, side, px, qty = op
            book.apply_level(side, px, qty)
            model.level(side, px, qty)
        elif op[0] == "snapshot":
            bids = list(dict(op[1]).items())  # a snapshot lists each price once
            asks = list(dict(op[2]).items())
            book.apply_snapshot(bids, asks)
            model.snapshot(bids, asks)
        else:
            book.mark_stale()
            model.stale = True
        mb, ma = model.levels(BID), model.levels(ASK)
        assert book.levels(BID) == mb and book.levels(ASK) == ma
        assert book.best_bid == (mb[0][0] if mb else None)
        assert book.best_ask == (ma[0][0] if ma else None)
        assert book.best_bid_qty == (mb[0][1] if mb else None)
        assert book.best_ask_qty == (ma[0][1] if ma else None)
        assert book.stale == model.stale
        for n in (1, 3):
            assert book.levels(BID, n) == mb[:n] and book.levels(ASK, n) == ma[:n]
            b, a = sum(q for _, q in mb[:n]), sum(q for _, q in ma[:n])
            assert book.imbalance(n) == (None if a + b == 0 else (b - a) / (b + a))
        if mb and ma:
            bid, ask = mb[0][0], ma[0][0]
            assert book.mid_ticks == (bid + ask) / 2
            assert book.spread_ticks == ask - bid
            assert book.crossed == (bid >= ask)
            mid = (bid + ask) / 2
            band = [(p, q) for p, q in mb if p >= mid * (1 - 50 / 1e4)] + [(p, q) for p, q in ma if p <= mid * (1 + 50 / 1e4)]
            lots, notional = book.depth_within_bps(50)
            assert lots == sum(q for _, q in band)
            assert notional == float(Decimal(sum(p * q for p, q in band)) * SPOT.tick_size * SPOT.lot_size)
        else:
            assert book.mid_ticks is None and not book.crossed
        for px in (90, 110, 130):
            assert book.size_at(BID, px) == model.bids.get(px, 0)
            assert book.size_at(ASK, px) == model.asks.get(px, 0)


delta_op = st.tuples(st.sampled_from([BID, ASK]), st.lists(st.tuples(prices, st.integers(min_value=-1, max_value=4)),
                                                             max_size=12))


def _state(book: L2Book) -> tuple:
    return (dict(book.bids), dict(book.asks), book.best_bid, book.best_ask, book.updates, list(book._bid_heap),
            list(book._ask_heap))


signed_levels = st.lists(st.tuples(prices, st.integers(min_value=-1, max_value=4)), max_size=10)
both_sides_op = st.tuples(st.just("delta"), signed_levels, signed_levels)


@pytest.mark.skipif(book_module._compiled_apply_side is None, reason="mmkit.core._levels is not built")
@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(delta_op, delta_op, both_sides_op, both_sides_op, snap_op), max_size=120))
def test_compiled_apply_levels_leaves_the_exact_state_of_the_pure_loop(operations):
    """``apply_levels`` and ``apply_delta``: same dicts, best prices, counters and heap lists
    (stale entries and rebuilds included), and the same error for a negative size (a
    delta with one changes nothing; ``apply_levels`` stops at it)."""
    books = {True: L2Book("X"), False: L2Book("X")}
    for op in operations:
        errors = {}
        for compiled, book in books.items():
            book_module.use_compiled(compiled)
            try:
                if op[0] == "snapshot":
                    book.apply_snapshot(list(dict(op[1]).items()), list(dict(op[2]).items()))
                elif op[0] == "delta":
                    book.apply_delta(op[1], op[2])
                else:
                    book.apply_levels(op[0], op[1])
            except ValueError as exc:
                errors[compiled] = str(exc)
        assert errors.get(True) == errors.get(False)
        assert _state(books[True]) == _state(books[False])


@pytest.mark.skipif(book_module._compiled_apply_side is None, reason="mmkit.core._levels is not built")
def test_compiled_loop_heap_rebuild_and_best_after_churn():
    """Past 2 * levels + 64 heap entries the compiled loop rebuilds the heap like the pure one."""
    books = {True: L2Book("X"), False: L2Book("X")}
    for compiled, book in books.items():
        book_module.use_compiled(compiled)
        for i in range(5_000):
            book.apply_levels(BID, [(1_000 + (i % 97), 0 if i % 3 else 5), (900 + i % 11, i % 2)])
            book.apply_levels(ASK, [(2_000 + (i % 89), 0 if i % 2 else 1)])
    assert _state(books[True]) == _state(books[False])
    assert len(books[True]._bid_heap) <= 2 * len(books[True].bids) + 65
