"""Integrity-checked snapshots: the seed's envelope, every refusal reason with its code,
the store's all-or-nothing loads, and the throttle / allocator / order-id codecs."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal

import pytest

from mmkit import artifacts
from mmkit.config import build_config
from mmkit.core.allocator import Allocator, AllocatorInputs, SymbolInputs
from mmkit.core.instruments import Instrument
from mmkit.core.orders import OrderManager
from mmkit.core.throttle import Throttle
from mmkit.core.types import CreateOrder, DesiredQuote
from mmkit.errors import MmkitError
from mmkit.live import snapshots as snap

CFG = build_config({})
NS = 1_000_000_000


def inst() -> Instrument:
    return Instrument("BTCUSDT", Decimal("0.1"), Decimal("0.001"), min_notional=Decimal("5"), venue="binance-usdm")


def busy_throttle(t0: int = 1_700_000_000 * NS) -> Throttle:
    t = Throttle(CFG.throttle)
    for i in range(12):
        t.on_sent(CreateOrder(f"c{i}", "BTCUSDT", 1, 600000, 1), t0 + i * 10_000_000)
    return t


def test_envelope_matches_the_seed_checksum():
    payload = {"version": 1, "hwm_equity_usd": 123.0, "b": [1, 2]}
    env = snap.envelope(payload)
    seed_digest = hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()
    assert env == {"version": 1, "sha256": seed_digest, "payload": payload}
    assert snap.open_envelope(env, "allocator") == payload


def test_write_then_read_round_trip(tmp_path):
    path = tmp_path / "s" / "allocator.json"
    snap.write_snapshot(path, {"version": 1, "x": 1.5})
    assert path.read_bytes() == artifacts.canonical_bytes(snap.envelope({"version": 1, "x": 1.5}))
    assert snap.read_snapshot(path, "allocator") == {"version": 1, "x": 1.5}
    assert snap.read_snapshot(tmp_path / "absent.json", "allocator") is None
    assert not list(path.parent.glob("*.tmp.*"))


def _refusal(tmp_path, data: bytes) -> MmkitError:
    path = tmp_path / "throttle.json"
    path.write_bytes(data)
    with pytest.raises(snap.SnapshotError) as exc:
        snap.read_snapshot(path, "throttle")
    return exc.value


def test_every_refusal_has_its_reason_and_code(tmp_path):
    good = artifacts.canonical_bytes(snap.envelope({"version": 2, "window_sec": 3, "symbols": {}}))
    tampered = good.replace(b'"window_sec":3', b'"window_sec":4')
    cases = {
        "bad_checksum": tampered,
        "non_ascii": good.replace(b'"symbols"', b'"symb\xc3\xb6ls"'),
        "file_too_large": b" " * (snap.MAX_BYTES + 1),
        "invalid_structure": b'{"version":1,"sha256":"' + b"0" * 64 + b'","payload":{},"extra":1}',
    }
    for reason, data in cases.items():
        err = _refusal(tmp_path, data)
        assert err.reason == reason and err.code == snap.CODES[reason] == f"E_SNAPSHOT_{reason.upper()}"
        assert err.kind == "throttle"
    for data in (b"not json", b"[1,2]", b'{"version":1,"sha256":"abc","payload":{}}',
                 b'{"version":true,"sha256":"' + b"0" * 64 + b'","payload":{}}',
                 b'{"version":1,"sha256":"' + b"0" * 64 + b'","payload":[1]}'):
        assert _refusal(tmp_path, data).reason == "invalid_structure"


def test_store_counts_refusals_and_leaves_state_alone(tmp_path):
    outcomes = []
    store = snap.SnapshotStore(tmp_path, on_load=lambda k, ok: outcomes.append((k, ok)))
    assert store.load("throttle", lambda p: None) == "missing" and outcomes == []
    t = busy_throttle()
    before = t.to_snapshot()
    # a valid envelope whose payload is not a throttle: invalid_payload, throttle untouched
    snap.write_snapshot(store.path("throttle"), {"version": 2, "window_sec": "three"})
    assert store.load("throttle", lambda p: snap.restore_throttle(t, p, CFG.throttle)) == "refused"
    assert t.to_snapshot() == before
    assert store.status()["throttle"]["reason"] == "invalid_payload"
    # a corrupt file: bad_checksum
    store.path("allocator").write_bytes(b'{"payload":{"version":1},"sha256":"' + b"a" * 64 + b'","version":1}\n')
    assert store.load("allocator", lambda p: None) == "refused"
    assert store.status()["allocator"]["reason"] == "bad_checksum"
    assert outcomes == [("throttle", False), ("allocator", False)]
    # writes
    writes = []
    store.on_write = lambda k, ok: writes.append((k, ok))
    assert store.save("throttle", before) and writes == [("throttle", True)]
    assert store.load("throttle", lambda p: snap.restore_throttle(t, p, CFG.throttle)) == "loaded"
    assert outcomes[-1] == ("throttle", True) and store.status()["throttle"]["writes"] == 1


def test_throttle_restores_in_place(tmp_path):
    t = busy_throttle()
    payload = t.to_snapshot()
    fresh = Throttle(CFG.throttle)
    held_by_chain = fresh  # the gate chain keeps this very object
    snap.restore_throttle(fresh, json.loads(artifacts.canonical_json(payload)), CFG.throttle)
    assert held_by_chain.to_snapshot() == payload
    now = 1_700_000_000 * NS + 200_000_000
    probe = CreateOrder("p", "BTCUSDT", 1, 600000, 1)
    assert held_by_chain.check(probe, now) == t.check(probe, now)
    assert snap.payload_clock_ns("throttle", payload) >= 1_700_000_000 * NS + 110_000_000
    with pytest.raises(snap.SnapshotError) as exc:
        snap.restore_throttle(fresh, {"version": 9}, CFG.throttle)
    assert exc.value.reason == "invalid_payload"
    with pytest.raises(TypeError):
        snap.transfer_state(fresh, object())


def test_allocator_state_round_trip():
    cfg = CFG
    a = Allocator(cfg.portfolio, cfg.allocator.smoothing, cfg.guards.pos_skew, cfg.portfolio.budget)
    inputs = AllocatorInputs({"BTCUSDT": SymbolInputs(vol=0.5), "ETHUSDT": SymbolInputs(vol=1.0)}, equity_usd=10_500.0)
    a.rebalance(inputs, 5 * NS)
    payload = json.loads(artifacts.canonical_json(snap.allocator_payload(a)))
    assert payload["hwm_equity_usd"] == 10_500.0 and set(payload["targets_usd"]) == {"BTCUSDT", "ETHUSDT"}
    b = Allocator(cfg.portfolio, cfg.allocator.smoothing, cfg.guards.pos_skew, cfg.portfolio.budget)
    snap.restore_allocator(b, payload)
    assert b.hwm_equity_usd == 10_500.0 and b.due(6 * NS)  # forced rebalance from the restored targets
    assert snap.allocator_payload(b) == snap.allocator_payload(a)
    assert snap.payload_clock_ns("allocator", payload) == 5 * NS
    later = b.rebalance(AllocatorInputs({"BTCUSDT": SymbolInputs(vol=0.5), "ETHUSDT": SymbolInputs(vol=1.0)}), 7 * NS)
    assert later.hwm_equity_usd == 10_500.0
    for bad in ({"version": 2}, {"version": 1, "weights": {"X": -1}}, {"version": 1, "hwm_equity_usd": "x"},
                {"version": 1, "backoff_level": -1}, {"version": 1, "last_rebalance_ns": 1.5}):
        c = Allocator(cfg.portfolio, cfg.allocator.smoothing, cfg.guards.pos_skew, cfg.portfolio.budget)
        with pytest.raises(ValueError):
            snap.restore_allocator(c, bad)
        assert snap.allocator_payload(c)["hwm_equity_usd"] == 0.0


def test_order_ids_continue_and_live_orders_are_dropped():
    om = OrderManager(inst(), gates=None, id_prefix="bt-")
    acts = om.reconcile([DesiredQuote("BTCUSDT", 1, 0, 600000, 10), DesiredQuote("BTCUSDT", -1, 0, 600100, 10)],
                        1 * NS, 600050)
    assert len(acts) == 2 and om.next_seq == 3
    payload = json.loads(artifacts.canonical_json(snap.orders_payload({"BTCUSDT": om}, 42 * NS)))
    assert payload["clock_ns"] == 42 * NS and snap.payload_clock_ns("orders", payload) == 42 * NS
    fresh = OrderManager(inst(), gates=None, id_prefix="bt-")
    dropped = snap.restore_orders({"BTCUSDT": fresh, }, payload)
    assert dropped == {"BTCUSDT": 2} and fresh.next_seq == 3 and fresh.open_orders() == []
    nxt = fresh.reconcile([DesiredQuote("BTCUSDT", 1, 0, 600000, 10)], 2 * NS, 600050)
    assert nxt[0].client_id == "bt-BTCUSDT-3"  # never reuses an id
    # another symbol in the snapshot is ignored; a wrong prefix refuses the whole payload
    assert snap.restore_orders({}, payload) == {}
    other = OrderManager(inst(), gates=None, id_prefix="lv-")
    with pytest.raises(ValueError):
        snap.restore_orders({"BTCUSDT": other}, payload)
    assert other.next_seq == 1
    for bad in ({"version": 1}, {"version": 1, "symbols": {"BTCUSDT": {"version": 1, "next_seq": 0}}},
                {"version": 1, "clock_ns": "x", "symbols": {}}):
        with pytest.raises(ValueError):
            snap.restore_orders({"BTCUSDT": OrderManager(inst(), gates=None, id_prefix="bt-")}, bad)
