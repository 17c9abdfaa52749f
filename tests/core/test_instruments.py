"""Exact decimal <-> ticks/lots conversion (fast path vs Decimal) and the events' fast builders."""

from __future__ import annotations

import dataclasses
import pickle
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmkit.core import events as ev
from mmkit.core.instruments import (
    GridError,
    Instrument,
    format_units,
    from_units,
    is_decimal_text,
    parse_units,
    step_scale,
    to_units,
)


@pytest.mark.parametrize(("step", "scale"), [
    ("0.01", (1, 2)), ("0.1", (1, 1)), ("0.00001", (1, 5)), ("0.5", (5, 1)), ("0.025", (25, 3)),
    ("1", (1, 0)), ("10", (10, 0)), ("100", (100, 0)), ("0.010", (1, 2)), ("1E+1", (10, 0)),
])
def test_step_scale(step, scale):
    assert step_scale(Decimal(step)) == scale


@pytest.mark.parametrize("step", ["0", "-0.01", "NaN", "Infinity"])
def test_step_scale_refuses_non_positive_steps(step):
    with pytest.raises(GridError):
        step_scale(Decimal(step))


def test_issue_example_is_exact():
    inst = Instrument("BTCUSDT", Decimal("0.01"), Decimal("0.00001"))
    assert inst.px_to_ticks("61837.63") == 6183763
    assert parse_units("61837.63", *step_scale(inst.tick_size)) == 6183763
    assert parse_units("61837.63000000", 1, 2) == 6183763  # Binance pads to 8 decimals
    assert parse_units("3.78826000", *step_scale(inst.lot_size)) == 378826
    assert format_units(6183763, 1, 2) == "61837.63"


@pytest.mark.parametrize(("text", "mantissa", "places", "units"), [
    ("6421.5", 5, 1, 12843), ("6422", 5, 1, 12844), ("-0.5", 5, 1, -1), ("0", 1, 2, 0), ("-0.00", 1, 2, 0),
    ("120", 10, 0, 12), ("18640", 10, 0, 1864), ("1.2300", 1, 2, 123), ("007.10", 1, 1, 71), ("5", 1, 3, 5000),
])
def test_parse_units_cases(text, mantissa, places, units):
    assert parse_units(text, mantissa, places) == units


@pytest.mark.parametrize(("text", "mantissa", "places"), [
    ("61837.635", 1, 2), ("6421.2", 5, 1), ("125", 10, 0), ("1.0000001", 1, 5),
])
def test_parse_units_off_grid(text, mantissa, places):
    with pytest.raises(GridError, match="not a multiple"):
        parse_units(text, mantissa, places)


@pytest.mark.parametrize("text", ["", "-", ".5", "5.", "1e5", "+1", " 1", "1_000", "1.2.3", "NaN", "\u0661", "0x10"])
def test_parse_units_refuses_non_plain_decimals(text):
    assert not is_decimal_text(text)
    with pytest.raises(GridError, match="plain decimal"):
        parse_units(text, 1, 2)


steps = st.sampled_from(["0.01", "0.1", "0.5", "0.00001", "0.0001", "0.025", "1", "10", "25", "0.000001"]).map(Decimal)
plain_decimals = st.from_regex(r"\A-?[0-9]{1,12}(\.[0-9]{1,10})?\Z", fullmatch=True)


@settings(max_examples=400, deadline=None)
@given(plain_decimals, steps)
def test_fast_parse_agrees_with_decimal(text, step):
    mantissa, places = step_scale(step)
    try:
        expected: int | None = to_units(text, step)
    except GridError:
        expected = None
    if expected is None:
        with pytest.raises(GridError):
            parse_units(text, mantissa, places)
    else:
        assert parse_units(text, mantissa, places) == expected


@settings(max_examples=400, deadline=None)
@given(st.integers(min_value=-(10**15), max_value=10**15), steps)
def test_fast_format_agrees_with_decimal_and_round_trips(units, step):
    mantissa, places = step_scale(step)
    text = format_units(units, mantissa, places)
    assert text == from_units(units, step)
    assert Decimal(text) == units * step
    assert parse_units(text, mantissa, places) == units


# ----------------------------------------------------------------------------- fast builders
SAMPLES = {
    ev.BookSnapshot: (1, 2, "S", ((100, 1),), ((101, 2),)),
    ev.BookDelta: (1, 2, "S", ((100, 0),), ()),
    ev.Trade: (1, 2, "S", ev.BUY, 100, 3),
    ev.Quote: (1, 2, "S", 100, 1, 101, 2),
    ev.SeqGap: (1, 2, "S", 10, 12),
}


@pytest.mark.parametrize("cls", list(SAMPLES), ids=lambda c: c.__name__)
def test_builder_slots_match_event_fields(cls):
    builder = ev.BUILDERS[cls]
    fields = tuple(f.name for f in dataclasses.fields(cls))
    slots = tuple(name for klass in reversed(builder.__mro__) for name in klass.__dict__.get("__slots__", ()))
    assert slots == fields, f"{builder.__name__} slots differ from {cls.__name__} fields: update the builder"
    assert cls.__slots__ == fields


@pytest.mark.parametrize("cls", list(SAMPLES), ids=lambda c: c.__name__)
def test_builder_makes_a_real_frozen_event(cls):
    args = SAMPLES[cls]
    built = ev.BUILDERS[cls](*args)
    plain = cls(*args)
    assert type(built) is cls and isinstance(built, cls)
    assert built == plain and hash(built) == hash(plain) and repr(built) == repr(plain)
    assert built.kind == cls.kind
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.ts = 5  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(built)) == plain
    assert dataclasses.replace(built, ts=9) == cls(9, *args[1:])
    assert dataclasses.astuple(built) == dataclasses.astuple(plain)
