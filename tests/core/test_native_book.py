"""NativeL2Book (levels in C, for the compiled engine loop) against L2Book: the same
operations leave the same readable state and raise the same errors; its side views
behave as read-only mappings, best price first."""

from __future__ import annotations

import random
from collections.abc import Mapping
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmkit.core import book as book_module
from mmkit.core.book import ASK, BID, L2Book
from mmkit.core.events import BookDelta, BookSnapshot, SeqGap
from mmkit.core.instruments import Instrument

pytestmark = pytest.mark.skipif(not book_module.NATIVE, reason="mmkit.core._nbook is not built (no C compiler)")
NativeL2Book = book_module.NativeL2Book
SPOT = Instrument("BTCUSDT", Decimal("0.01"), Decimal("0.00001"), venue="binance-spot")


def state(book) -> tuple:
    """Everything a reader of either book can see."""
    return (dict(book.bids), dict(book.asks), book.best_bid, book.best_ask, book.best_bid_qty, book.best_ask_qty,
            book.updates, book.snapshots, book.stale, book.ts, book.levels(BID), book.levels(ASK), book.levels(BID, 3),
            book.levels(ASK, 3), book.imbalance(3), book.mid_ticks, book.spread_ticks, book.crossed, book.empty,
            book.depth_within_bps(25) if book.instrument is not None else None, len(book.bids), len(book.asks))


def run_both(operations, lo: int, hi: int) -> None:
    books = (L2Book(SPOT.symbol, SPOT), NativeL2Book(SPOT.symbol, SPOT))
    for op in operations:
        errors = []
        for book in books:
            try:
                kind = op[0]
                if kind == "delta":
                    book.apply_delta(op[1], op[2])
                elif kind == "levels":
                    book.apply_levels(op[1], op[2])
                elif kind == "level":
                    book.apply_level(op[1], op[2], op[3])
                elif kind == "snapshot":
                    book.apply_snapshot(op[1], op[2])
                elif kind == "event":
                    book.apply(op[1])
                elif kind == "clear":
                    book.clear()
                else:
                    book.mark_stale()
                errors.append(None)
            except ValueError as exc:
                errors.append(str(exc))
        assert errors[0] == errors[1]
        assert state(books[0]) == state(books[1])
        for px in (lo, (lo + hi) // 2, hi):
            assert books[0].size_at(BID, px) == books[1].size_at(BID, px)
            assert books[0].size_at(ASK, px) == books[1].size_at(ASK, px)


prices = st.integers(min_value=90, max_value=130)
signed = st.lists(st.tuples(prices, st.integers(min_value=-1, max_value=4)), max_size=12)
sides = st.sampled_from([BID, ASK])
op = st.one_of(
    st.tuples(st.just("delta"), signed, signed),
    st.tuples(st.just("levels"), sides, signed),
    st.tuples(st.just("level"), sides, prices, st.integers(min_value=-1, max_value=4)),
    st.tuples(st.just("snapshot"), st.lists(st.tuples(prices, st.integers(min_value=-1, max_value=4)), max_size=10),
              st.lists(st.tuples(prices, st.integers(min_value=0, max_value=4)), max_size=10)),
    st.tuples(st.just("event"), st.builds(lambda b, a: BookDelta(5, 6, SPOT.symbol, tuple(b), tuple(a)),
                                          st.lists(st.tuples(prices, st.integers(0, 4)), max_size=6),
                                          st.lists(st.tuples(prices, st.integers(0, 4)), max_size=6))),
    st.tuples(st.just("event"), st.just(SeqGap(7, 8, SPOT.symbol, 1, 3))),
    st.tuples(st.just("clear")),
    st.tuples(st.just("stale")),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(op, max_size=80))
def test_same_operations_same_state_and_errors(operations):
    run_both(operations, 90, 130)


def test_deep_book_churn_matches():
    """Thousands of levels, updates all over the book, the best deleted again and again:
    table growth, backward-shift deletes and heap rebuilds (past 2 * levels + 64)."""
    rng = random.Random(11)
    ops: list[tuple] = [("snapshot", [(p, 1 + p % 7) for p in range(1, 2_000)], [(p, 1 + p % 5) for p in range(2_000, 4_000)])]
    for i in range(6_000):
        bids = [(rng.randint(1, 1_999), rng.choice((0, 0, 1, 3))) for _ in range(rng.randint(0, 20))]
        asks = [(rng.randint(2_000, 4_000), rng.choice((0, 0, 2))) for _ in range(rng.randint(0, 20))]
        ops.append(("delta", bids, asks))
        if i % 5 == 0:
            ops.append(("level", BID, 1_999 - i % 40, 0))  # near the top: the best goes, the next is found
            ops.append(("level", ASK, 2_000 + i % 40, 0))
        if i % 997 == 0:
            ops.append(("snapshot", [(p, 2) for p in range(500, 1_500, 3)], [(p, 2) for p in range(2_500, 3_500, 7)]))
    books = (L2Book("X"), NativeL2Book("X"))
    for o in ops:
        for book in books:
            if o[0] == "snapshot":
                book.apply_snapshot(o[1], o[2])
            elif o[0] == "delta":
                book.apply_delta(o[1], o[2])
            else:
                book.apply_level(o[1], o[2], o[3])
        assert (books[0].best_bid, books[0].best_ask) == (books[1].best_bid, books[1].best_ask)
    assert dict(books[0].bids) == dict(books[1].bids) and dict(books[0].asks) == dict(books[1].asks)
    assert books[0].updates == books[1].updates


def test_views_are_read_only_mappings_best_first():
    book = NativeL2Book("X")
    book.apply_snapshot([(100, 5), (98, 1), (99, 7)], [(103, 9), (102, 3)])
    bids, asks = book.bids, book.asks
    assert isinstance(bids, Mapping)
    assert list(bids) == [100, 99, 98] and bids.keys() == [100, 99, 98] and asks.keys() == [102, 103]
    assert bids.items() == [(100, 5), (99, 7), (98, 1)] and asks.values() == [3, 9]
    assert bids[99] == 7 and bids.get(97) is None and bids.get(97, 0) == 0 and len(bids) == 3 and bids
    assert 98 in bids and 97 not in bids and "98" not in bids and 2**80 not in bids
    with pytest.raises(KeyError):
        bids[97]
    assert bids == {100: 5, 99: 7, 98: 1} and bids != {100: 5} and bids.copy() == {98: 1, 99: 7, 100: 5}
    assert dict(asks) == {102: 3, 103: 9} and sorted(asks) == [102, 103]
    assert repr(bids) == "LevelsView({100: 5, 99: 7, 98: 1})"
    with pytest.raises(TypeError):
        bids[97] = 1  # type: ignore[index]
    book.clear()
    assert not bids and len(asks) == 0 and book.best_bid is None and book.best_ask is None


def test_from_book_copies_levels_counters_and_flags():
    src = L2Book(SPOT.symbol, SPOT)
    src.apply(BookSnapshot(10, 11, SPOT.symbol, ((100, 5), (99, 2)), ((101, 4),)))
    src.apply(BookDelta(12, 13, SPOT.symbol, ((99, 0), (98, 3)), ((102, 1),)))
    src.mark_stale()
    copy = NativeL2Book.from_book(src)
    assert state(copy) == state(src) and copy.instrument is SPOT and copy.symbol == SPOT.symbol
    assert repr(copy).startswith("NativeL2Book('BTCUSDT', bid=100x5, ask=101x4")


def test_int64_range_and_symbol_checks():
    book = NativeL2Book("X")
    with pytest.raises(OverflowError):
        book.apply_level(BID, 2**63, 1)
    book.apply_level(BID, 2**63 - 1, 1)
    book.apply_level(ASK, -(2**63), 1)  # both extremes hash and compare like any price
    assert (book.best_bid, book.best_ask, book.size_at(BID, 2**70)) == (2**63 - 1, -(2**63), 0)
    with pytest.raises(ValueError, match="does not match"):
        NativeL2Book("ETHUSDT", SPOT)
    with pytest.raises(ValueError, match="X: negative size -2 at 5"):
        book.apply_levels(ASK, [(4, 1), (5, -2), (6, 1)])
    assert book.asks == {4: 1, -(2**63): 1}  # applied up to the bad level, as L2Book


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 400), st.integers(0, 2**62)), max_size=40),
       st.lists(st.tuples(st.integers(1, 400), st.integers(0, 9)), max_size=40), st.integers(-1, 20))
def test_top_lots_is_the_signals_sum(bids, asks, n):
    """``top_lots`` (what ``book_imbalance`` uses on a native book) equals
    ``signals.top_lots`` on the dict side, dense or sparse, sums past 64 bits included."""
    from mmkit.core.signals import top_lots

    book = NativeL2Book("X")
    book.apply_snapshot(bids, asks)
    for side, levels, step in ((BID, dict(book.bids), -1), (ASK, dict(book.asks), 1)):
        best = book.best_bid if side == BID else book.best_ask
        want = 0 if best is None or n <= 0 else top_lots(levels, best, step, n)
        assert book.top_lots(side, n) == want


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 5_000), st.integers(0, 9)), max_size=60),
       st.lists(st.tuples(st.integers(1, 5_000), st.integers(0, 9)), max_size=60),
       st.one_of(st.integers(-10, 5_010), st.sampled_from([2**70, -(2**70), 2**63 - 1, -(2**63)])))
def test_levels_within_matches_the_dict_book(bids, asks, limit):
    """What a taker limited at ``limit`` reaches (``FillSimulator._take``/``_cross``): the
    same levels, best first, on both books; the tick walk and the sorted filter agree."""
    books = (L2Book("X"), NativeL2Book("X"))
    for book in books:
        book.apply_snapshot(bids, asks)
    for side in (BID, ASK):
        want = books[0].levels_within(side, limit)
        assert books[1].levels_within(side, limit) == want
        keep = [(p, q) for p, q in books[0].levels(side) if (p >= limit if side == BID else p <= limit)]
        assert want == keep


def test_init_again_starts_a_fresh_book():
    book = NativeL2Book("X")
    book.apply_snapshot([(100, 5)], [(101, 3)])
    book.mark_stale()
    book.ts = 9
    book.__init__("Y")
    assert (book.symbol, book.best_bid, book.best_ask, len(book.bids), book.updates, book.snapshots, book.stale,
            book.ts) == ("Y", None, None, 0, 0, 0, False, 0)
