"""mmkit JSONL: reading (fast and general paths agree), writing, round trips, schema,
instrument resolution and the error policy."""

from __future__ import annotations

import gzip
import io
import json
from decimal import Decimal
from pathlib import Path

import jsonschema
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mmkit import log
from mmkit.core.events import BUY, SELL, BookDelta, BookSnapshot, Quote, SeqGap, Trade
from mmkit.core.instruments import Instrument
from mmkit.data import jsonl
from mmkit.data.instruments import InstrumentRegistry, load_registry
from mmkit.data.jsonl import JsonlReader, JsonlWriter, format_event, read_jsonl, write_jsonl
from mmkit.errors import MmkitError

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "fixtures" / "synthetic" / "events_small.jsonl"
SCHEMA = json.loads((ROOT / "schemas" / "events.jsonl.schema.json").read_text())
SPOT = Instrument("BTCUSDT", Decimal("0.01"), Decimal("0.000001"), min_notional=Decimal("5"), venue="binance-spot")
COINM = Instrument("BTCUSD_PERP", Decimal("0.1"), Decimal("1"), contract_multiplier=Decimal("100"), inverse=True,
                   venue="binance-coinm")
PINNED = {"BTCUSDT": SPOT, "BTCUSD_PERP": COINM}


@pytest.fixture(autouse=True, params=["compiled", "pure"])
def no_user_registry(monkeypatch, request):
    """Every test runs on both reader paths: the compiled scanner (when built) and pure Python."""
    if request.param == "compiled" and not jsonl.COMPILED:
        pytest.skip("the compiled scanner is not built (no C compiler at install time)")
    monkeypatch.setenv("MMKIT_PURE_PYTHON", "1" if request.param == "pure" else "0")
    monkeypatch.delenv("MMKIT_INSTRUMENTS", raising=False)


@pytest.fixture
def log_stream(monkeypatch) -> io.StringIO:
    stream = io.StringIO()
    monkeypatch.setattr(log.SETTINGS, "stream", stream)
    return stream


def read(lines, **kw):
    kw.setdefault("instruments", PINNED)
    reader = JsonlReader(lines, **kw)
    return list(reader), reader


# ----------------------------------------------------------------------------- the fixture
EXPECTED = [
    BookSnapshot(1723161255000000000, 1723161255000500000, "BTCUSDT",
                 ((6183763, 3788260), (6183762, 1000), (6183700, 1500000)), ((6183764, 1546980), (6183770, 250000), (6183800, 2000000))),
    Quote(1723161255100000000, 1723161255100400000, "BTCUSDT", 6183763, 3788260, 6183764, 1546980),
    Trade(1723161255342000000, 1723161255342700000, "BTCUSDT", SELL, 6183763, 20000),
    BookDelta(1723161255400000000, 1723161255400300000, "BTCUSDT", ((6183763, 3768260),), ()),
    Trade(1723161255500000000, 1723161255500600000, "BTCUSDT", BUY, 6183764, 1546980),
    BookDelta(1723161255600000000, 1723161255600200000, "BTCUSDT", (), ((6183764, 0), (6183765, 500000))),
    SeqGap(1723161255700000000, 1723161255700100000, "BTCUSDT", 50093239203, 50093239210),
    BookSnapshot(1723161255800000000, 1723161255800500000, "BTCUSDT", ((6183760, 1000000),), ((6183765, 500000), (6183790, 4000000))),
    Quote(1723161255900000000, 1723161255900300000, "BTCUSDT", 6183760, 1000000, 6183765, 500000),
    Trade(1723161256000000000, 1723161256000900000, "BTCUSDT", BUY, 6183765, 500000),
]


def test_fixture_reads_exactly_with_the_registry_venue():
    reader = JsonlReader(FIXTURE, venue="binance-spot")
    assert list(reader) == EXPECTED
    assert reader.instruments == {"BTCUSDT": load_registry().get("BTCUSDT", "binance-spot")}
    assert reader.stats.as_dict() == {"lines": 11, "events": 10, "skipped": 0, "reasons": {}, "first_error": None}


def test_fixture_lines_validate_against_the_schema():
    validator = jsonschema.Draft202012Validator(SCHEMA)
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    for no, line in enumerate(FIXTURE.read_text().splitlines(), 1):
        if line.strip():
            errors = list(validator.iter_errors(json.loads(line)))
            assert not errors, f"line {no}: {errors[0].message}"


def test_gzip_and_stdin_sources(tmp_path, monkeypatch):
    gz = tmp_path / "events.jsonl.gz"
    gz.write_bytes(gzip.compress(FIXTURE.read_bytes()))
    assert list(read_jsonl(gz, venue="binance-spot")) == EXPECTED
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(FIXTURE.read_bytes())))
    assert list(read_jsonl("-", venue="binance-spot")) == EXPECTED


def test_binance_style_padded_decimals_are_exact():
    line = ('{"kind":"quote","ts":1,"recv_ts":2,"symbol":"BTCUSDT","bid_px":"61837.63000000","bid_qty":"3.78826000",'
            '"ask_px":"61837.64000000","ask_qty":"1.54698000"}')
    events, _ = read([line])
    assert events == [Quote(1, 2, "BTCUSDT", 6183763, 3788260, 6183764, 1546980)]


def test_writer_output_is_canonical_and_schema_valid(tmp_path):
    out = tmp_path / "out.jsonl"
    assert write_jsonl(out, EXPECTED, SPOT) == len(EXPECTED)
    text = out.read_text()
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for line in text.splitlines():
        obj = json.loads(line)
        assert line == json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        assert not list(validator.iter_errors(obj))
    assert list(read_jsonl(out, instruments=PINNED)) == EXPECTED
    assert format_event(EXPECTED[2], SPOT) == ('{"kind":"trade","price":"61837.63","qty":"0.020000","recv_ts":1723161255342700000,'
                                               '"side":"sell","symbol":"BTCUSDT","ts":1723161255342000000}')
    assert not list(tmp_path.glob("*.tmp.*"))


def test_writer_to_stdout(capsysbinary):
    write_jsonl("-", EXPECTED[:2], SPOT)
    out = capsysbinary.readouterr().out.decode()
    assert out.count("\n") == 2 and out.startswith('{"asks":[["61837.64","1.546980"]')


def test_writer_failure_leaves_nothing(tmp_path):
    out = tmp_path / "out.jsonl"

    def events():
        yield EXPECTED[0]
        raise RuntimeError("source broke")

    with pytest.raises(RuntimeError):
        write_jsonl(out, events(), SPOT)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(MmkitError) as err:
        write_jsonl(out, [Trade(1, 2, "ETHUSDT", BUY, 1, 1)], PINNED)
    assert err.value.code == "E_DATA_UNKNOWN_INSTRUMENT" and list(tmp_path.iterdir()) == []


def test_streaming_writer_counts(tmp_path):
    out = tmp_path / "w.jsonl"
    with JsonlWriter(out, PINNED) as writer:
        for ev in EXPECTED * 1000:  # crosses the flush threshold
            writer.write(ev)
    assert writer.count == 10_000 and out.read_text().count("\n") == 10_000


# ----------------------------------------------------------------------------- property tests
ts_steps = st.integers(min_value=0, max_value=10**9)
px = st.integers(min_value=-10, max_value=10**9)
lots = st.integers(min_value=0, max_value=10**12)
levels = st.lists(st.tuples(px, lots), max_size=5).map(tuple)
symbols = st.sampled_from(["BTCUSDT", "BTCUSD_PERP"])


@st.composite
def event_streams(draw):
    ts = draw(st.integers(min_value=0, max_value=2 * 10**18))
    out = []
    for _ in range(draw(st.integers(min_value=0, max_value=25))):
        ts += draw(ts_steps)
        rts = ts + draw(st.integers(min_value=0, max_value=10**9))
        sym = draw(symbols)
        kind = draw(st.sampled_from(["trade", "quote", "snap", "delta", "gap"]))
        if kind == "trade":
            out.append(Trade(ts, rts, sym, draw(st.sampled_from([BUY, SELL])), draw(px), draw(lots)))
        elif kind == "quote":
            out.append(Quote(ts, rts, sym, draw(px), draw(lots), draw(px), draw(lots)))
        elif kind == "snap":
            out.append(BookSnapshot(ts, rts, sym, draw(levels), draw(levels)))
        elif kind == "delta":
            out.append(BookDelta(ts, rts, sym, draw(levels), draw(levels)))
        else:
            out.append(SeqGap(ts, rts, sym, draw(st.integers(0, 2**40)), draw(st.integers(0, 2**40))))
    return out


def general_path_line(ev) -> str:
    """The same event in DESIGN.md key order with spaces: never matches the fast-path regexes."""
    inst = PINNED[ev.symbol]
    rec = jsonl.event_record(ev, inst)
    ordered = {k: rec[k] for k in ("kind", "ts", "recv_ts", "symbol")}
    ordered.update({k: v for k, v in rec.items() if k not in ordered})
    return json.dumps(ordered) + "\n"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event_streams())
def test_round_trip_and_fast_path_equals_general_path(tmp_path_factory, events):
    out = tmp_path_factory.mktemp("rt") / "e.jsonl"
    write_jsonl(out, events, PINNED)
    lines = out.read_text().splitlines(keepends=True)
    for ev, line in zip(events, lines):
        fast_path = jsonl._TRADE_LINE.match(line) or jsonl._QUOTE_LINE.match(line)
        assert bool(fast_path) == (ev.kind in ("trade", "quote")), line
    fast, reader = read(lines)
    assert fast == events
    assert reader.stats.events == len(events)
    general, _ = read([general_path_line(ev) for ev in events])
    assert general == events


def test_fast_path_is_taken_for_canonical_lines():
    trade = format_event(Trade(1, 2, "BTCUSDT", BUY, 6183763, 2000), SPOT)
    quote = format_event(Quote(1, 2, "BTCUSDT", 1, 2, 3, 4), SPOT)
    assert jsonl._TRADE_LINE.match(trade + "\n") and jsonl._QUOTE_LINE.match(quote + "\r\n")
    assert not jsonl._TRADE_LINE.match(trade.replace('"ts":1', '"ts":01'))
    assert not jsonl._TRADE_LINE.match(trade.replace("BTCUSDT", "BTC\\u0055SDT"))


# ----------------------------------------------------------------------------- error policy
GOOD = '{"kind":"trade","ts":10,"recv_ts":11,"symbol":"BTCUSDT","side":"buy","price":"1.00","qty":"1"}'
CANON = '{"kind":"trade","price":"1.00","qty":"1","recv_ts":11,"side":"buy","symbol":"BTCUSDT","ts":%d}'


@pytest.mark.parametrize(("line", "reason", "needle"), [
    ("{not json", "bad_json", "invalid JSON"),
    ('{"kind":"trade","ts":NaN}', "bad_json", "NaN"),
    ("[1, 2]", "bad_event", "expected a JSON object"),
    (GOOD.replace('"trade"', '"trades"'), "bad_event", "unknown kind"),
    (GOOD.replace('"ts":10', '"ts":10.5'), "bad_event", "ts must be a non-negative integer"),
    (GOOD.replace('"ts":10', '"ts":-1'), "bad_event", "ts must be"),
    (GOOD.replace('"recv_ts":11', '"recv_ts":true'), "bad_event", "recv_ts must be"),
    (GOOD.replace('"symbol":"BTCUSDT"', '"symbol":""'), "bad_event", "symbol must be"),
    (GOOD.replace('"buy"', '"long"'), "bad_event", "side must be"),
    (GOOD.replace('"1.00"', "1.0"), "bad_event", "price must be a plain decimal string"),
    (GOOD.replace('"1.00"', '"1e2"'), "bad_event", "plain decimal"),
    (GOOD.replace('"1.00"', '["1"]'), "bad_event", "wrong value type"),
    (GOOD.replace(',"qty":"1"', ""), "bad_event", "size must be a plain decimal string, missing"),
    ((CANON % 10).replace('"BTCUSDT"', '""'), "bad_event", "symbol must be a non-empty string"),
    ((CANON % 10).replace('"1.00"', '"1e2"'), "bad_event", "price must be a plain decimal string"),
    (GOOD.replace('"1.00"', '"1.005"'), "off_grid", "not a multiple of 0.01"),
    (GOOD.replace('"qty":"1"', '"qty":"-1"'), "negative_size", "negative size -1"),
    (CANON.replace('"qty":"1"', '"qty":"-1"') % 10, "negative_size", "negative size"),
    (CANON.replace('"1.00"', '"1.001"') % 10, "off_grid", "not a multiple"),
    ('{"kind":"book_delta","ts":10,"recv_ts":11,"symbol":"BTCUSDT","bids":[["1.00"]],"asks":[]}', "bad_event", "pairs"),
    ('{"kind":"book_delta","ts":10,"recv_ts":11,"symbol":"BTCUSDT","bids":[],"asks":[["1.00","-0.5"]]}', "negative_size", "negative"),
    ('{"kind":"book_snapshot","ts":10,"recv_ts":11,"symbol":"BTCUSDT","bids":{},"asks":[]}', "bad_event", "bids must be a list"),
    ('{"kind":"seq_gap","ts":10,"recv_ts":11,"symbol":"BTCUSDT","expected":"5","got":6}', "bad_event", "seq_gap needs"),
])
def test_bad_lines_fail_with_location_or_are_skipped(tmp_path, line, reason, needle):
    path = tmp_path / "bad.jsonl"
    path.write_text(GOOD + "\n" + line + "\n" + GOOD.replace('"ts":10', '"ts":12') + "\n")
    with pytest.raises(MmkitError) as err:
        list(JsonlReader(path, instruments=PINNED))
    code = jsonl.CODES[reason]
    assert err.value.code == code and code == {"off_grid": "E_DATA_OFF_GRID", "negative_size": "E_DATA_NEGATIVE_SIZE"}.get(
        reason, "E_DATA_BAD_LINE")
    assert err.value.reason == reason and f"{path}:2:" in err.value.message and needle in err.value.message
    assert "--on-error skip" in err.value.message
    events, reader = read(path, on_error="skip")
    assert [e.ts for e in events] == [10, 12]
    assert reader.stats.skipped == 1 and reader.stats.reasons == {code: 1}
    assert reader.stats.first_error.startswith(f"{code}: ") and ":2:" in reader.stats.first_error


def test_order_is_checked_per_channel_not_across_channels():
    quote = '{"kind":"quote","ts":%d,"recv_ts":1,"symbol":"BTCUSDT","bid_px":"1.00","bid_qty":"1","ask_px":"1.01","ask_qty":"1"}'
    delta = '{"kind":"book_delta","ts":%d,"recv_ts":1,"symbol":"BTCUSDT","bids":[],"asks":[]}'
    gap = '{"kind":"seq_gap","ts":%d,"recv_ts":1,"symbol":"BTCUSDT","expected":1,"got":3}'
    lines = [quote % 100, CANON % 90, delta % 80, GOOD.replace('"ts":10', '"ts":95'), quote % 100, delta % 85]
    events, _ = read(lines)
    assert [e.ts for e in events] == [100, 90, 80, 95, 100, 85]
    with pytest.raises(MmkitError) as err:
        read(lines + [gap % 84])
    assert err.value.code == "E_DATA_OUT_OF_ORDER" and "book ts 84 < previous book ts 85" in err.value.message
    with pytest.raises(MmkitError) as err:
        read(lines + [(quote % 99).replace('"kind":"quote",', "")[:-1] + ',"kind":"quote"}'])
    assert "quote ts 99 < previous quote ts 100" in err.value.message


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "json-path"])
def test_out_of_order_per_symbol(fast):
    def line(ts, sym="BTCUSDT"):
        if fast:
            return (CANON % ts).replace("BTCUSDT", sym)
        return GOOD.replace('"ts":10', f'"ts":{ts}').replace("BTCUSDT", sym)

    other = "BTCUSD_PERP"
    lines = [line(10), line(5, other), line(10), line(9), line(6, other), line(11)]
    with pytest.raises(MmkitError) as err:
        read(lines)
    assert err.value.code == "E_DATA_OUT_OF_ORDER" and "<lines>:4:" in err.value.message and "trade ts 9 < previous trade ts 10" in err.value.message
    events, reader = read(lines, on_error="skip")
    assert [e.ts for e in events] == [10, 5, 10, 6, 11] and reader.stats.reasons == {"E_DATA_OUT_OF_ORDER": 1}
    events, _ = read(lines, check_order=False)
    assert len(events) == 6


def test_blank_lines_and_crlf_are_fine():
    events, reader = read(["\n", GOOD + "\r\n", "   \n", (CANON % 11) + "\r\n"])
    assert [e.ts for e in events] == [10, 11] and reader.stats.lines == 4 and reader.stats.events == 2


def test_reader_is_single_use_and_validates_options():
    reader = JsonlReader([GOOD], instruments=PINNED)
    list(reader)
    with pytest.raises(RuntimeError):
        iter(reader)
    with pytest.raises(ValueError):
        JsonlReader([GOOD], on_error="ignore")


# ----------------------------------------------------------------------------- instruments
def test_ambiguous_symbol_without_venue_is_an_error():
    with pytest.raises(MmkitError) as err:
        list(JsonlReader(FIXTURE))
    assert err.value.code == "E_DATA_AMBIGUOUS_INSTRUMENT"


def test_unknown_symbol_is_inferred_with_a_warning(log_stream):
    lines = [
        '{"kind":"book_snapshot","ts":1,"recv_ts":2,"symbol":"NEWCOIN","bids":[["0.1234","10"],["0.1230","2.5"]],"asks":[["0.1240","7"]]}',
        '{"kind":"trade","price":"0.1235","qty":"0.5","recv_ts":4,"side":"sell","symbol":"NEWCOIN","ts":3}',
    ]
    events, reader = read(lines, instruments=None)
    inst = reader.instruments["NEWCOIN"]
    assert (inst.tick_size, inst.lot_size, inst.venue) == (Decimal("0.0001"), Decimal("0.1"), "inferred")
    assert events[1] == Trade(3, 4, "NEWCOIN", SELL, 1235, 5)
    assert "event=instrument_inferred" in log_stream.getvalue() and "symbol=NEWCOIN" in log_stream.getvalue()


def test_inference_looks_past_the_first_line(log_stream):
    lines = ['{"kind":"trade","price":"5","qty":"1","recv_ts":1,"side":"buy","symbol":"ZZZ","ts":1}',
             '{"kind":"trade","price":"5.25","qty":"1.5","recv_ts":2,"side":"buy","symbol":"ZZZ","ts":2}']
    events, reader = read(lines, instruments=None)
    assert reader.instruments["ZZZ"].tick_size == Decimal("0.01") and events[0].price == 500


def test_symbol_first_seen_after_the_head_is_inferred_from_its_line(log_stream):
    lines = [GOOD] * 3 + ['{"kind":"trade","price":"7.5","qty":"2","recv_ts":20,"side":"buy","symbol":"LATE","ts":20}']
    events, reader = read(lines, instruments={"BTCUSDT": SPOT}, infer_lines=2)
    assert reader.instruments["LATE"].tick_size == Decimal("0.1") and events[-1].price == 75


def test_inference_can_be_refused():
    with pytest.raises(MmkitError) as err:
        read(['{"kind":"trade","price":"5","qty":"1","recv_ts":1,"side":"buy","symbol":"ZZZ","ts":1}'],
             instruments=None, infer=False)
    assert err.value.code == "E_DATA_UNKNOWN_INSTRUMENT" and "MMKIT_INSTRUMENTS" in err.value.message


def test_explicit_registry_and_venue_alias():
    registry = InstrumentRegistry([COINM], aliases={"dapi": "binance-coinm"})
    line = '{"kind":"trade","price":"61801.4","qty":"3","recv_ts":2,"side":"buy","symbol":"BTCUSD_PERP","ts":1}'
    events, reader = read([line], instruments=None, registry=registry, venue="dapi")
    assert events == [Trade(1, 2, "BTCUSD_PERP", BUY, 618014, 3)] and reader.instruments["BTCUSD_PERP"] is COINM


def test_off_grid_under_the_wrong_venue_says_so():
    line = '{"kind":"trade","price":"61837.63","qty":"0.001","recv_ts":2,"side":"buy","symbol":"BTCUSDT","ts":1}'
    with pytest.raises(MmkitError) as err:
        list(JsonlReader([line], venue="binance-usdm"))
    assert err.value.reason == "off_grid" and "0.1" in err.value.message and "--venue" in err.value.message


# ----------------------------------------------------------------------------- fast path == reference, near misses
_PLAIN = {name: __import__("re").compile(getattr(jsonl, name).pattern.replace("*+", "*").replace("++", "+"), __import__("re").ASCII)
          for name in ("_QUOTE_LINE", "_TRADE_LINE")}
"""The fast-path regexes with plain (backtracking) quantifiers: the possessive ones must match exactly the same."""

QUOTE_CANON = ('{"ask_px":"1.01","ask_qty":"2","bid_px":"1.00","bid_qty":"1","kind":"quote","recv_ts":11,'
               '"symbol":"BTCUSDT","ts":10}')
TRADE_CANON = CANON % 10
NEAR_MISSES = [  # (text in a canonical line, replacement): leading zeros, signs, blanks, escapes, control chars, ...
    ('"ts":10', '"ts":010'), ('"ts":10', '"ts":+10'), ('"ts":10', '"ts": 10'), ('"ts":10', '"ts":1_0'), ('"ts":10', '"ts":0'),
    ('"ts":10', '"ts":1\u0660'), ('"ts":10', '"ts":10.0'), ('"ts":10', '"ts":-10'), ('"ts":10', '"ts":1e1'), ('"ts":10', '"ts":5'),
    ('"recv_ts":11', '"recv_ts":011'), ('"recv_ts":11', '"recv_ts":+11'), ('"recv_ts":11', '"recv_ts":0'), ('"recv_ts":11', '"recv_ts":"11"'),
    ('"BTCUSDT"', '"BTC\\u0055SDT"'), ('"BTCUSDT"', '"BTC\x01USDT"'), ('"BTCUSDT"', '"BTCUSDT "'), ('"BTCUSDT"', '""'),
    ('"BTCUSDT"', '"BTCUSD_PERP"'), ('"BTCUSDT"', '"ETHUSDT"'),
    ('"1.00"', '"1.0\\u0030"'), ('"1.00"', '"1.\x000"'), ('"1.00"', '"01.00"'), ('"1.00"', '"+1.00"'), ('"1.00"', '"1.00 "'),
    ('"1.00"', '"\u0661.00"'), ('"1.00"', '"1.000"'), ('"1.00"', '"1.001"'), ('"1.00"', '"1."'), ('"1.00"', '".00"'),
    ('"1.00"', '"-1.00"'), ('"1.00"', '"1_0.00"'), ('"1.00"', '"1.0.0"'), ('"1.00"', '"1e2"'), ('"1.00"', '"x.yz"'),
    ('"1"', '"1.000000"'), ('"1"', '"-0.000001"'), ('"1"', '"1.0000000"'), ('"1"', '"0.00000\u0661"'), ('"1"', '"00.000001"'),
    ('"buy"', '"BUY"'), ('"buy"', '"sell"'), ('"quote"', '"Quote"'),
    ("}", "} \r\n"), ("}", "}\t\n"), ("}", "}x"), ("}", "},"), ("}", "}}"), ("}", ',"extra":1}'), ("{", '{"a":1,'), ("{", " {"),
]


def _outcome(lines, compiled=None):
    reader = JsonlReader(lines, instruments=PINNED, on_error="skip", compiled=compiled)
    try:
        events = list(reader)
    except MmkitError as exc:  # not a line error: an unknown/ambiguous symbol and such
        return exc.code, exc.message, reader.stats.lines
    return events, reader.stats.reasons, reader.stats.first_error


def _general_only(lines):
    never = __import__("re").compile(r"(?!)")
    from unittest import mock
    with mock.patch.object(jsonl, "_QUOTE_LINE", never), mock.patch.object(jsonl, "_TRADE_LINE", never):
        return _outcome(lines, compiled=False)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([QUOTE_CANON, TRADE_CANON]), st.lists(st.sampled_from(NEAR_MISSES), min_size=1, max_size=3),
       st.sampled_from(["\n", "\r\n", ""]))
def test_near_canonical_lines_match_the_plain_regexes_and_the_general_path(base, mutations, newline):
    line = base
    for old, new in mutations:
        line = line.replace(old, new, 1)
    line += newline
    for name, plain in _PLAIN.items():
        fast, ref = getattr(jsonl, name).match(line), plain.match(line)
        assert (fast and fast.groups()) == (ref and ref.groups()), (name, line)
    prev = (CANON % 7) + "\n"  # a symbol state, and a ts for the order check, before the line
    lines = [prev, QUOTE_CANON.replace('"ts":10', '"ts":7') + "\n", line, line, (CANON % 20) + "\n"]
    assert _outcome(lines, compiled=False) == _general_only(lines), line


@pytest.mark.parametrize("step", ["0.01", "0.00001", "1", "0.5", "0.025", "10", "0.000001"])
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(st.from_regex(r"-?[0-9]{0,7}\.?[0-9]{0,8}", fullmatch=True),
                      st.text(alphabet="0123456789.-+_ e\u0661\u00b2\x00", max_size=12)))
@example(text="\u0661.00")
@example(text="1.\u0661\u0661")
@example(text="0.0\u0661")
@example(text="0.00000\u0661")
@example(text="0.\u00b2")
@example(text="\u00b2.00")
@example(text=".00")
@example(text=".00000")
@example(text="1.")
@example(text="-1.00")
@example(text="-0.00001")
@example(text="00.10")
@example(text="1.005")
@example(text="0.00025")
@example(text="1" * 5000 + ".00")
def test_converter_fast_path_equals_the_general_check(step, text):
    from mmkit.core.instruments import GridError, is_decimal_text, plain_to_units, step_scale
    mantissa, places = step_scale(Decimal(step))
    if not is_decimal_text(text):
        expected: object = "bad_event"
    else:
        try:
            expected = plain_to_units(text, mantissa, places)
        except GridError:
            expected = "off_grid"
        except ValueError:  # more digits than int() accepts
            expected = "bad_event"
        else:
            expected = "negative_size" if expected < 0 else expected  # type: ignore[operator]
    cache: dict[str, int] = {}
    miss = jsonl._converter(Decimal(step), cache, "size", nonneg=True)
    try:
        got: object = miss(text)
    except jsonl._Refused as err:
        got = err.reason
        assert cache == {}
    else:
        assert cache == {text: got}
    assert got == expected
