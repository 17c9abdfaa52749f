"""The fast builders of the hot-path records: each returns a real instance of its frozen
dataclass, equal (and hashing equal) to the dataclass built the slow way."""
from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from mmkit.core.stats import OrderRecord, make_order_record
from mmkit.core.types import (
    BUY,
    SELL,
    Ack,
    CancelOrder,
    Canceled,
    CreateOrder,
    Fill,
    make_ack,
    make_cancel_order,
    make_canceled,
    make_create_order,
    make_fill,
)

CASES = [
    (make_create_order, CreateOrder, ("c1", "BTCUSDT", BUY, 600_001, 10, True, 2)),
    (make_cancel_order, CancelOrder, ("c1", "BTCUSDT", "replace")),
    (make_ack, Ack, (5, "c1", "create", 600_001, 10)),
    (make_fill, Fill, (7, "c1", "BTCUSDT", SELL, 600_002, 3, "maker", Decimal("-0.0015"), 3)),
    (make_canceled, Canceled, (9, "c1", "replace")),
    (make_order_record, OrderRecord, ("c1", "BTCUSDT", BUY, 1, 2, 3, 10, 4, True, False, 1)),
]


@pytest.mark.parametrize("builder, cls, args", CASES, ids=[c[1].__name__ for c in CASES])
def test_builders_make_the_real_records(builder, cls, args):
    assert builder.__slots__ == tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[attr-defined]
    fast, slow = builder(*args), cls(*args)
    assert type(fast) is cls and fast == slow and hash(fast) == hash(slow) and repr(fast) == repr(slow)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(fast, dataclasses.fields(cls)[0].name, None)
    if hasattr(cls, "op"):
        assert fast.op == slow.op  # the class-level op of an action
