"""Columnar cache: exact round trips (also through JSONL), documented layout, raw columns,
spilling, integrity errors."""

from __future__ import annotations

import hashlib
import json
import struct
from array import array
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmkit.core.events import BUY, SELL, BookDelta, BookSnapshot, Quote, SeqGap, Trade
from mmkit.core.instruments import Instrument
from mmkit.data import cache as mc
from mmkit.data.cache import CacheWriter, build_cache, load_cache, write_cache
from mmkit.data.instruments import instrument_record, load_registry
from mmkit.data.jsonl import JsonlReader
from mmkit.errors import MmkitError
from support import ROOT

FIXTURE = ROOT / "fixtures" / "synthetic" / "events_small.jsonl"
SPOT = load_registry(env=False).get("BTCUSDT", "binance-spot")
COINM = load_registry(env=False).get("BTCUSD_PERP", "binance-coinm")
PINNED = {"BTCUSDT": SPOT, "BTCUSD_PERP": COINM}
EXPECTED = list(JsonlReader(FIXTURE, instruments=PINNED))  # tests/data/test_jsonl.py checks these exactly
MIXED = EXPECTED + [
    Trade(1723161257000000000, 1723161257000000001, "BTCUSD_PERP", SELL, 618014, 3),
    Quote(1723161257000000002, 1723161257000000003, "BTCUSD_PERP", 618014, 392, 618015, 0),
    BookDelta(1723161257000000004, 1723161257000000005, "BTCUSD_PERP", (), ()),
]


@pytest.fixture(autouse=True, params=["compiled", "pure"])
def no_user_registry(monkeypatch, request):
    """Every test runs with the compiled row builder (when built) and the pure-Python one."""
    if request.param == "compiled" and not mc.COMPILED:
        pytest.skip("mmkit.data._cacheiter is not built (no C compiler at install time)")
    monkeypatch.setenv("MMKIT_PURE_PYTHON", "1" if request.param == "pure" else "0")
    monkeypatch.delenv("MMKIT_INSTRUMENTS", raising=False)


@pytest.mark.parametrize("use_mmap", [True, False], ids=["mmap", "read"])
def test_round_trip_is_exact(tmp_path, use_mmap):
    path = tmp_path / "c.mmc"
    header = write_cache(path, MIXED, PINNED)
    with load_cache(path, use_mmap=use_mmap, verify=True) as cache:
        assert list(cache) == MIXED
        assert len(cache) == len(MIXED) == header["events"]
        assert cache.symbols == ("BTCUSDT", "BTCUSD_PERP")
        assert cache.instruments == (SPOT, COINM)
        assert cache.event(2) == MIXED[2] and cache.event(-1) == MIXED[-1]
        assert list(cache.iter_events(3, 6)) == MIXED[3:6]
        assert [cache.row_event(i) for i in range(len(MIXED))] == MIXED
        with pytest.raises(IndexError):
            cache.event(len(MIXED))
        with pytest.raises(IndexError):
            cache.row_event(len(MIXED))


def test_raw_columns_follow_the_documented_payload(tmp_path):
    path = tmp_path / "c.mmc"
    write_cache(path, MIXED, PINNED)
    with load_cache(path) as c:
        kinds = [mc.KINDS[k] for k in c.kind]
        assert kinds == [ev.kind for ev in MIXED]
        trade = MIXED[2]
        assert (c.ts[2], c.recv_ts[2], c.a[2], c.b[2], c.c[2], c.d[2]) == (trade.ts, trade.recv_ts, SELL, 6183763, 20000, 0)
        quote = MIXED[1]
        assert (c.a[1], c.b[1], c.c[1], c.d[1]) == (quote.bid_px, quote.bid_qty, quote.ask_px, quote.ask_qty)
        snap = MIXED[0]
        off, nb, na = c.a[0], c.b[0], c.c[0]
        assert (off, nb, na) == (0, 3, 3)
        assert list(zip(c.level_px[off:off + nb], c.level_qty[off:off + nb])) == list(snap.bids)
        assert list(zip(c.level_px[off + nb:off + nb + na], c.level_qty[off + nb:off + nb + na])) == list(snap.asks)
        # levels_end: the level row after the last book event of a row range
        book_rows = [i for i, ev in enumerate(MIXED) if ev.kind in ("book_delta", "book_snapshot")]
        last = book_rows[-1]
        assert c.levels_end(0, len(MIXED)) == c.a[last] + c.b[last] + c.c[last]
        assert c.levels_end(0, 1) == 6
        no_book = [i for i in range(len(MIXED)) if i not in book_rows]
        assert c.levels_end(no_book[0], no_book[0] + 1) == 0
        rows = c.rows()
        assert rows.symbols == c.symbols and rows.event(3) == MIXED[3] and len(rows.columns) == 8
        gap = MIXED[6]
        assert (c.a[6], c.b[6]) == (gap.expected, gap.got)
        assert [c.sym[i] for i in range(len(MIXED))] == [0] * 10 + [1] * 3
        assert c.columns["ts"].format == "q" and c.kind.format == "b" and c.sym.format == "H"
        assert c.n_levels == sum(len(e.bids) + len(e.asks) for e in MIXED if hasattr(e, "bids"))


def test_file_layout_matches_the_docs(tmp_path):
    path = tmp_path / "c.mmc"
    write_cache(path, MIXED, PINNED, source={"path": "x.jsonl", "sha256": "ab" * 32})
    blob = path.read_bytes()
    magic, version, hlen = struct.unpack_from("<8sII", blob)
    assert (magic, version) == (b"MMKCACHE", 1) and (16 + hlen) % 8 == 0
    header = json.loads(blob[16:16 + hlen])
    assert header["schema"] == "mmkit.cache/v1" and header["byteorder"] == "little"
    assert header["source"] == {"path": "x.jsonl", "sha256": "ab" * 32}
    assert header["instruments"] == [instrument_record(SPOT), instrument_record(PINNED["BTCUSD_PERP"])]
    assert header["instruments"][0]["tick_size"] == "0.01" and header["instruments"][0]["lot_size"] == "0.000001"
    assert [c["name"] for c in header["columns"]] == [n for n, _ in mc.EVENT_COLUMNS + mc.LEVEL_COLUMNS]
    start = 16 + hlen
    for col in header["columns"]:
        assert col["offset"] % 8 == 0
        data = blob[start + col["offset"]:start + col["offset"] + col["nbytes"]]
        assert hashlib.sha256(data).hexdigest() == col["sha256"]
    last = header["columns"][-1]
    assert len(blob) == start + last["offset"] + (last["nbytes"] + 7) // 8 * 8


def test_same_events_same_bytes(tmp_path):
    write_cache(tmp_path / "a.mmc", MIXED, PINNED)
    write_cache(tmp_path / "b.mmc", MIXED, PINNED)
    assert (tmp_path / "a.mmc").read_bytes() == (tmp_path / "b.mmc").read_bytes()


def test_empty_stream(tmp_path):
    path = tmp_path / "empty.mmc"
    header = write_cache(path, [], {})
    assert header["events"] == 0 and header["instruments"] == []
    with load_cache(path, verify=True) as cache:
        assert list(cache) == [] and len(cache) == 0


def test_spilling_keeps_order_and_values(tmp_path, monkeypatch):
    monkeypatch.setattr(mc, "SPILL_ROWS", 7)
    events = EXPECTED * 13
    events = [type(e)(*(i if j == 0 else getattr(e, f) for j, f in enumerate(e.__slots__))) for i, e in enumerate(events)]
    path = tmp_path / "spill.mmc"
    with CacheWriter(path, PINNED) as writer:
        writer.extend(events)
        assert writer._cols[0].spill is not None, "the test should exercise spilling"
        header = writer.finish()
    assert writer.finish() is header, "finishing twice must not rewrite the file"
    with load_cache(path, verify=True) as cache:
        assert list(cache) == events
    assert [p.name for p in tmp_path.iterdir()] == ["spill.mmc"]


px = st.integers(min_value=-10, max_value=2**62)
lots = st.integers(min_value=0, max_value=2**62)
ns = st.integers(min_value=0, max_value=2**63 - 1)
levels = st.lists(st.tuples(px, lots), max_size=4).map(tuple)
symbols = st.sampled_from(sorted(PINNED))
events_st = st.lists(st.one_of(
    st.builds(Trade, ns, ns, symbols, st.sampled_from([BUY, SELL]), px, lots),
    st.builds(Quote, ns, ns, symbols, px, lots, px, lots),
    st.builds(BookSnapshot, ns, ns, symbols, levels, levels),
    st.builds(BookDelta, ns, ns, symbols, levels, levels),
    st.builds(SeqGap, ns, ns, symbols, st.integers(-(2**63), 2**63 - 1), st.integers(-(2**63), 2**63 - 1)),
), max_size=30)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(events_st)
def test_round_trip_property(tmp_path, events):
    path = tmp_path / "p.mmc"
    write_cache(path, events, PINNED)
    with load_cache(path, verify=True) as cache:
        assert list(cache) == events


def test_convert_jsonl_to_cache_reproduces_the_stream(tmp_path):
    out = tmp_path / "fixture.mmc"
    header, stats = build_cache(FIXTURE, out, venue="binance-spot")
    assert stats.events == 10 and header["events"] == 10
    assert header["source"]["path"] == str(FIXTURE)
    assert header["source"]["sha256"] == hashlib.sha256(FIXTURE.read_bytes()).hexdigest()
    with load_cache(out) as cache:
        assert list(cache) == list(JsonlReader(FIXTURE, venue="binance-spot")) == EXPECTED
        assert cache.instrument("BTCUSDT").venue == "binance-spot"
        assert cache.source_matches(FIXTURE)
        copy = tmp_path / "changed.jsonl"
        copy.write_bytes(FIXTURE.read_bytes() + b"\n")
        assert not cache.source_matches(copy)
        with pytest.raises(MmkitError, match="ETHUSDT"):
            cache.instrument("ETHUSDT")


def test_unknown_instrument_at_finish_writes_nothing(tmp_path):
    path = tmp_path / "c.mmc"
    with pytest.raises(MmkitError) as err:
        write_cache(path, [Trade(1, 2, "ETHUSDT", BUY, 1, 1)], PINNED)
    assert err.value.code == "E_DATA_UNKNOWN_INSTRUMENT" and list(tmp_path.iterdir()) == []


def test_values_beyond_64_bits_are_refused_cleanly(tmp_path):
    path = tmp_path / "c.mmc"
    with CacheWriter(path, PINNED) as writer:
        writer.append(EXPECTED[2])
        with pytest.raises(MmkitError) as err:
            writer.append(Trade(5, 6, "BTCUSDT", BUY, 1, 2**63))
        assert err.value.code == "E_CACHE_RANGE"
        with pytest.raises(MmkitError):
            writer.append(BookDelta(5, 6, "BTCUSDT", ((1, 1), (2**64, 1)), ()))
        writer.append(EXPECTED[4])
    with load_cache(path, verify=True) as cache:
        assert list(cache) == [EXPECTED[2], EXPECTED[4]]


def test_not_a_cache_and_wrong_version(tmp_path):
    junk = tmp_path / "junk.mmc"
    junk.write_bytes(b"hello world, not a cache")
    with pytest.raises(MmkitError) as err:
        load_cache(junk)
    assert err.value.code == "E_CACHE_BAD_FORMAT"
    good = tmp_path / "c.mmc"
    write_cache(good, MIXED, PINNED)
    blob = bytearray(good.read_bytes())
    struct.pack_into("<I", blob, 8, 99)
    junk.write_bytes(bytes(blob))
    with pytest.raises(MmkitError) as err:
        load_cache(junk)
    assert err.value.code == "E_CACHE_VERSION"
    with pytest.raises(MmkitError) as err:
        load_cache(tmp_path / "absent.mmc")
    assert err.value.code == "E_IO_MISSING"


def test_truncated_and_corrupted_files(tmp_path):
    good = tmp_path / "c.mmc"
    write_cache(good, MIXED, PINNED)
    blob = good.read_bytes()
    bad = tmp_path / "bad.mmc"
    bad.write_bytes(blob[:-8])
    with pytest.raises(MmkitError) as err:
        load_cache(bad)
    assert err.value.code == "E_CACHE_CORRUPT" and "rebuild" in err.value.message
    flipped = bytearray(blob)
    flipped[-20] ^= 0xFF  # inside the level columns
    bad.write_bytes(bytes(flipped))
    load_cache(bad).close()  # cheap load does not hash
    with pytest.raises(MmkitError) as err:
        load_cache(bad, verify=True)
    assert err.value.code == "E_CACHE_CHECKSUM"
    hlen = struct.unpack_from("<I", blob, 12)[0]
    header = blob[16:16 + hlen].replace(b'"byteorder":"little"', b'"byteorder":"bigxxx"')
    bad.write_bytes(blob[:16] + header + blob[16 + hlen:])
    with pytest.raises(MmkitError) as err:
        load_cache(bad)
    assert err.value.code == "E_CACHE_CORRUPT"
    bad.write_bytes(blob[:16] + b"[" + blob[17:])
    with pytest.raises(MmkitError) as err:
        load_cache(bad)
    assert err.value.code == "E_CACHE_CORRUPT"


def _patched(tmp_path, column: str, row: int, value: int):
    """A copy of a MIXED cache with one cell of an event column overwritten (no re-hash)."""
    good = tmp_path / "good.mmc"
    header = write_cache(good, MIXED, PINNED)
    blob = bytearray(good.read_bytes())
    data_start = 16 + struct.unpack_from("<I", blob, 12)[0]
    col = next(c for c in header["columns"] if c["name"] == column)
    fmt = "<" + col["type"]
    struct.pack_into(fmt, blob, data_start + col["offset"] + row * struct.calcsize(fmt), value)
    bad = tmp_path / "bad.mmc"
    bad.write_bytes(bytes(blob))
    return bad


@pytest.mark.parametrize(("column", "value", "needle"), [
    ("kind", 9, "unknown event kind code 9 at row 4"),
    ("sym", 7, "symbol index 7 at row 4, the header lists 2 instruments"),
    ("a", 10**6, "book levels 1000000+"),  # row 0 is a snapshot: its first level row, far outside
    ("c", -1, "fall outside"),
])
def test_a_row_that_cannot_be_an_event_stops_iteration_with_its_position(tmp_path, column, value, needle):
    row = 0 if column in ("a", "c") else 4
    bad = _patched(tmp_path, column, row, value)
    seen = []
    with load_cache(bad) as cache, pytest.raises(MmkitError) as err:
        for ev in cache:
            seen.append(ev)
    assert err.value.code == "E_CACHE_CORRUPT" and needle in err.value.message and "rebuild" in err.value.message
    assert seen == MIXED[:row]  # every row before the bad one came out, exactly


def test_close_releases_the_mapping_even_with_views_held(tmp_path):
    path = tmp_path / "c.mmc"
    write_cache(path, MIXED, PINNED)
    cache = load_cache(path)
    held = cache.ts[0:3]  # a derived view outlives close(): the map closes when it is dropped
    cache.close()
    assert held.tolist() == [e.ts for e in MIXED[:3]]
    cache.close()  # idempotent


def test_inverse_instrument_header_round_trip(tmp_path):
    inst = Instrument("XBTUSD", Decimal("0.5"), Decimal("1"), inverse=True, venue="bitmex")
    path = tmp_path / "c.mmc"
    write_cache(path, [Trade(1, 2, "XBTUSD", BUY, 17063, 2152)], {"XBTUSD": inst})
    with load_cache(path) as cache:
        assert cache.instruments == (inst,)


def _mapped_rss_kib(path) -> int | None:
    """Resident KiB of this process's mappings of ``path`` (Linux /proc/self/smaps), or None."""
    try:
        text = open("/proc/self/smaps").read()
    except OSError:
        return None
    total, inside = 0, False
    for line in text.splitlines():
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5:  # a mapping header line
            inside = line.endswith(str(path))
        elif inside and line.startswith("Rss:"):
            total += int(head[1])
    return total


def test_iterating_a_mapped_cache_drops_the_pages_behind_it(tmp_path):
    """Mapped pages count in RSS until unmapped; iter_events releases the consumed ones, so a
    pass over a cache many times the size of memory stays flat.  The events stay exact."""
    from mmkit.data.synth import SYNTH_SYMBOL, generate, synth_instrument

    path = tmp_path / "big.mmc"
    events = list(generate(3, 4 * mc._ITER_CHUNK))
    write_cache(path, events, {SYNTH_SYMBOL: synth_instrument()})
    size_kib = path.stat().st_size // 1024
    with load_cache(path) as cache:
        if _mapped_rss_kib(path) is None or mc._DONTNEED is None:
            pytest.skip("needs /proc/self/smaps and madvise(MADV_DONTNEED)")
        seen = 0
        for i, ev in enumerate(cache.iter_events()):
            assert ev == events[i]
            seen += 1
        resident = _mapped_rss_kib(path)
        assert seen == len(events)
        # at most the last chunk (plus partial pages) stays resident, not the whole file
        assert resident < size_kib / 2, (resident, size_kib)
        cache.drop_pages()
        assert _mapped_rss_kib(path) <= 8  # everything released ...
        assert list(cache.iter_events(0, 3)) == events[:3]  # ... and still readable from the file
        assert list(cache.iter_events(len(events) - 2)) == events[-2:]


def test_drop_pages_is_a_no_op_for_a_cache_read_into_memory(tmp_path):
    path = tmp_path / "c.mmc"
    write_cache(path, MIXED, PINNED)
    with load_cache(path, use_mmap=False) as cache:
        cache.drop_pages()
        assert list(cache) == MIXED


def test_compiled_and_pure_builders_agree_on_the_real_usdm_pair(tmp_path, monkeypatch):
    """The whole real recording (72k events, 44-level depth updates) through both builders."""
    from mmkit.data.readers import open_events

    if not mc.COMPILED:
        pytest.skip("mmkit.data._cacheiter is not built")
    usdm = [str(ROOT / "fixtures/real/binance/usdm/btcusdt_20240718.gz"),
            str(ROOT / "fixtures/real/binance/usdm/btcusdt_20240719.gz")]
    stream = open_events(usdm, venue="binance-usdm")
    events = list(stream)
    path = tmp_path / "usdm.mmc"
    write_cache(path, events, dict(stream.instruments))
    got = {}
    for flag in ("0", "1"):
        monkeypatch.setenv("MMKIT_PURE_PYTHON", flag)
        with load_cache(path) as cache:
            got[flag] = list(cache)
    assert got["0"] == got["1"] == events
    assert [type(e) for e in got["0"]] == [type(e) for e in events]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cells=st.lists(st.tuples(st.sampled_from(["kind", "sym", "a", "b", "c"]), st.integers(0, len(MIXED) - 1),
                                st.integers(-2**15, 2**15)), min_size=1, max_size=4))
def test_corrupted_cells_give_the_same_outcome_on_both_builders(tmp_path, monkeypatch, cells):
    """Arbitrary values written into the kind, symbol and payload columns (checksums not
    verified): the compiled builder never reads outside the columns and yields the same
    events, then the same error, as the pure one."""
    if not mc.COMPILED:
        pytest.skip("mmkit.data._cacheiter is not built")
    good = tmp_path / "good.mmc"
    header = write_cache(good, MIXED, PINNED)
    blob = bytearray(good.read_bytes())
    data_start = 16 + struct.unpack_from("<I", blob, 12)[0]
    for column, row, value in cells:
        col = next(c for c in header["columns"] if c["name"] == column)
        fmt = "<" + col["type"]
        lo, hi = {"b": (-128, 127), "H": (0, 65535)}.get(col["type"], (-2**63, 2**63 - 1))
        struct.pack_into(fmt, blob, data_start + col["offset"] + row * struct.calcsize(fmt), max(lo, min(hi, value)))
    bad = tmp_path / "fuzz.mmc"
    bad.write_bytes(bytes(blob))
    outcomes = []
    for flag in ("0", "1"):
        monkeypatch.setenv("MMKIT_PURE_PYTHON", flag)
        seen = []
        with load_cache(bad) as cache:
            try:
                for ev in cache:
                    seen.append(ev)
                outcomes.append((seen, None))
            except MmkitError as exc:
                outcomes.append((seen, (exc.code, exc.message)))
    assert outcomes[0] == outcomes[1]


def test_min_latency_compiled_and_pure_agree(tmp_path, monkeypatch):
    """The feed-clock pre-pass's smallest recv_ts - ts per row range: the C loop, Python
    ints, and the fallback for differences beyond 64 bits give the same answer."""
    from mmkit.data import cache as cache_mod
    from mmkit.data.synth import generate, synth_instrument

    events = list(generate(3, 5000))
    path = tmp_path / "lat.mmc"
    cache_mod.write_cache(path, events, {"SYNUSDT": synth_instrument()})
    c = cache_mod.load_cache(path)
    want = min(ev.recv_ts - ev.ts for ev in events[100:4000])
    assert c.min_latency(100, 4000) == want and c.min_latency(7, 7) is None
    monkeypatch.setenv("MMKIT_PURE_PYTHON", "1")
    assert c.min_latency(100, 4000) == want and c.min_latency(7, 7) is None
    if cache_mod._min_diff is not None:
        with pytest.raises(OverflowError):
            cache_mod._min_diff(array("q", [2**62]), array("q", [-(2**62)]))
        assert cache_mod._min_diff(array("q", [5, -3]), array("q", [1, 1])) == -4


def test_kind_counts_and_first_rows(tmp_path, monkeypatch):
    """The pre-pass's count per kind code and each symbol's first row: the C histogram and
    the pure fallback agree with counting the events themselves, across symbols, ranges
    and ids already known."""
    import dataclasses
    from collections import Counter

    from mmkit.data import cache as cache_mod
    from mmkit.data.synth import generate, synth_instrument

    events = list(generate(4, 3000))
    inst = synth_instrument()
    other = dataclasses.replace(inst, symbol="OTHUSDT")
    # the second symbol first shows up at row 1700 (a whole book, so the cache is valid)
    events = events[:1700] + [dataclasses.replace(ev, symbol="OTHUSDT") for ev in events[1700:1900]] + events[1900:]
    path = tmp_path / "two.mmc"
    cache_mod.write_cache(path, events, {"SYNUSDT": inst, "OTHUSDT": other})
    c = cache_mod.load_cache(path)
    sid = {i.symbol: k for k, i in enumerate(c.instruments)}
    for pure in ("", "1"):
        monkeypatch.setenv("MMKIT_PURE_PYTHON", pure)
        counts = c.kind_counts(100, 2500)
        want = Counter(cache_mod.KINDS.index(ev.kind) for ev in events[100:2500])
        assert len(counts) == 256 and sum(counts) == 2400
        assert {k: v for k, v in enumerate(counts) if v} == dict(want)
        assert c.first_rows(0, 3000) == {sid["SYNUSDT"]: 0, sid["OTHUSDT"]: 1700}
        assert c.first_rows(1750, 3000) == {sid["OTHUSDT"]: 1750, sid["SYNUSDT"]: 1900}
        assert c.first_rows(1750, 3000, skip=[sid["SYNUSDT"]]) == {sid["OTHUSDT"]: 1750}
        assert c.first_rows(5, 5) == {}
