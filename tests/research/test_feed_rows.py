"""``Engine.feed_rows`` (the compiled engine loop over cache rows) against ``Engine.feed``
over the same cache's events: every backtest here runs both ways and must produce the
same report, fills, order records, order trace, ledger equity curve and counters.

The scenarios cover each branch the compiled loop hands back to Python or does itself:
queue models (the queue update at our prices), latency models and decision intervals
(scheduling), cross fills and toxic sweeps, quote-only feeds (the simulator's top-of-book
view), snapshots and sequence gaps (stale books), several symbols and symbols the config
does not trade, real recordings of four venues, and a corrupt row."""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmkit.config import load_config
from mmkit.core import engine as engine_mod
from mmkit.core.events import SeqGap, make_book_delta, make_book_snapshot
from mmkit.data.cache import write_cache
from mmkit.data.readers import open_events
from mmkit.data.synth import generate, synth_instrument
from mmkit.errors import MmkitError
from mmkit.research.backtest import BacktestRequest, run_backtest
from support import FIXTURES
from research.test_backtest import config_file

pytestmark = pytest.mark.skipif(engine_mod._compiled_feed_rows is None, reason="mmkit.core._fastfeed is not built")


def config(folder: Path, **sections: dict[str, Any]) -> Any:
    return load_config(config_file(folder, **sections), use_env_profile=False)


def synth_cache(folder: Path, n: int = 12_000, symbols: tuple[str, ...] = ("SYNUSDT",), seed: int = 5) -> Path:
    streams = [generate(seed + i, n, symbol=sym) for i, sym in enumerate(symbols)]
    events = list(heapq.merge(*streams, key=lambda e: e.ts)) if len(streams) > 1 else list(streams[0])
    path = folder / f"synth_{'_'.join(symbols)}_{n}_{seed}.mmc"
    write_cache(path, events, {sym: synth_instrument(sym) for sym in symbols})
    return path


def outcome(cache: Path, loaded: Any, compiled: bool, monkeypatch: pytest.MonkeyPatch, **req: Any) -> dict[str, Any]:
    """Everything a run produced, as comparable plain data (with the order trace unless
    ``trace=False``)."""
    monkeypatch.setattr(engine_mod, "_feed_rows", engine_mod._compiled_feed_rows if compiled else None)
    closed: list[Any] = []
    real_close = engine_mod.Engine.close

    def close(self: Any) -> Any:
        closed.append(self)
        return real_close(self)

    monkeypatch.setattr(engine_mod.Engine, "close", close)
    out = run_backtest(BacktestRequest((str(cache),), loaded, seed=req.pop("seed", 3), trace=req.pop("trace", True),
                                       **req))
    monkeypatch.setattr(engine_mod.Engine, "close", real_close)
    report = dict(out.report)
    report.pop("meta", None)
    res = out.result
    return {
        "report": json.dumps(report, sort_keys=True, default=str),
        "fills": [repr(f) for f in res.fills],
        "orders": [repr(o) for o in res.orders],
        "trace": res.order_trace,
        "counters": res.counters.as_dict(),
        "equity": (res.ledger.equity_ts_ns, res.ledger.equity_e8),
        "start_end": (res.start_ns, res.end_ns),
        "signals": {sym: signal_state(rt.signals) for sym, rt in res.runtimes.items()},
        "managers": {sym: manager_state(rt.orders) for sym, rt in res.runtimes.items()},
        "simulator": simulator_state(closed[0].venue),
    }


def manager_state(om: Any) -> tuple[Any, ...]:
    """An order manager's whole state at the end (every tracked order with its types:
    the compiled steps make these objects too)."""
    return ([repr(o) for o in om._orders.values()], [[o.client_id for o in att] for att in om._att], list(om._tot),
            list(om._det), om._n_detached, om._deadline_ns, om._seq, sorted(om._replacing), om._last_replace_ns,
            list(om._finished), om.counters.as_dict())


def simulator_state(sim: Any) -> tuple[Any, ...]:
    """The fill simulator's state at the end: its orders (field values with their types),
    ids, in-flight counts, ordering state and per-symbol resting orders."""
    def order(o: Any) -> tuple[Any, ...]:
        return tuple(repr(getattr(o, name)) for name in type(o).__slots__)

    syms = {sym: (st.max_bid, st.min_ask, st.n, {p: [o.cid for o in lst] for p, lst in st.bids.items()},
                  {p: [o.cid for o in lst] for p, lst in st.asks.items()}) for sym, st in sim._syms.items()}
    return ({cid: order(o) for cid, o in sim._live.items()}, list(sim._finished), dict(sim._inflight),
            dict(sim._last_arrival), dict(sim._last_delivery), sim._join_seq, sim._rseq, sim._aseq, sim.now_ns,
            sim.counters.as_dict(), syms)


def signal_state(sig: Any) -> tuple[Any, ...]:
    """The estimators' whole state (the report shows only part of it)."""
    vol, ti, mk = sig.vol, sig.intensity, sig.markouts
    return (sig._last_mid2, vol.last_ts, vol.last_log_mid, vol._var_sum, vol._weight, vol.samples, vol.rejected,
            ti.last_ts, ti._count, ti._buy, ti._sell, ti.trades, mk._mid2, mk.all_stats())


def assert_same(cache: Path, loaded: Any, monkeypatch: pytest.MonkeyPatch, **req: Any) -> dict[str, Any]:
    """The compiled loop and Engine.feed agree, with the order trace and without it (the
    loop applies acks and cancel confirmations itself only when nothing traces them)."""
    fast = outcome(cache, loaded, True, monkeypatch, **dict(req))
    pure = outcome(cache, loaded, False, monkeypatch, **dict(req))
    untraced = outcome(cache, loaded, True, monkeypatch, trace=False, **dict(req))
    for key in pure:
        assert fast[key] == pure[key], key
        if key != "trace":
            assert untraced[key] == pure[key], key
    assert untraced["trace"] == []
    return fast


def test_the_compiled_loop_is_the_one_that_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a test that cannot fail: the fast path must really be taken (feed is not called
    per event) and really be skipped when switched off."""
    cache = synth_cache(tmp_path, 3000)
    loaded = config(tmp_path)
    calls: list[int] = []
    real_feed = engine_mod.Engine.feed

    def counting_feed(self: Any, events: Any) -> int:
        n = real_feed(self, events)
        calls.append(n)
        return n

    monkeypatch.setattr(engine_mod.Engine, "feed", counting_feed)
    outcome(cache, loaded, True, monkeypatch)
    assert sum(calls) == 1  # only the first event (it starts the clocks)
    calls.clear()
    outcome(cache, loaded, False, monkeypatch)
    assert sum(calls) == 3000


@pytest.mark.parametrize("interval_ms", [100, 1, 0])
def test_decision_intervals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, interval_ms: int) -> None:
    out = assert_same(synth_cache(tmp_path), config(tmp_path), monkeypatch, decision_interval_ms=interval_ms)
    assert out["counters"]["fills"] > 0 and out["counters"]["decisions"] > 0


@pytest.mark.parametrize("queue_model", ["risk_averse", "prob_power", "prob_log"])
def test_queue_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, queue_model: str) -> None:
    out = assert_same(synth_cache(tmp_path), config(tmp_path), monkeypatch, queue_model=queue_model,
                      decision_interval_ms=10)
    assert out["counters"]["fills"] > 0


def test_optimistic_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert_same(synth_cache(tmp_path), config(tmp_path), monkeypatch, mode="optimistic")


def test_seeded_normal_latency_toxic_sweeps_and_slippage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = config(tmp_path, fillsim={"latency_model": "normal",
                                       "latency_params": {"entry_mean_ms": 30.0, "entry_std_ms": 20.0},
                                       "toxic_sweep_prob": 0.3, "extra_slippage_bps": 1.0})
    for seed in (1, 2):
        out = assert_same(synth_cache(tmp_path), loaded, monkeypatch, seed=seed, decision_interval_ms=5)
        assert out["counters"]["fills"] > 0


def test_without_cross_fills(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert_same(synth_cache(tmp_path), config(tmp_path, fillsim={"cross_fills": False}), monkeypatch,
                decision_interval_ms=5)


def test_two_symbols_and_one_the_config_does_not_trade(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = synth_cache(tmp_path, 8000, symbols=("SYNUSDT", "SYNETH", "SYNSOL"))
    loaded = config(tmp_path, trading={"symbols": ["SYNUSDT", "SYNETH"]})
    out = assert_same(cache, loaded, monkeypatch, decision_interval_ms=20)
    assert {json.loads(out["report"])["engine"]["events"]} == {24_000}


def gapped_events(n: int) -> Iterator[Any]:
    """Synthetic events with a sequence gap every ~3000 events and a fresh snapshot ~200
    events later (the book is stale in between)."""
    book: dict[str, dict[int, int]] = {"bids": {}, "asks": {}}
    stale_until = -1
    for i, ev in enumerate(generate(11, n)):
        if ev.kind in ("book_delta", "book_snapshot"):
            for side, levels in (("bids", ev.bids), ("asks", ev.asks)):
                if ev.kind == "book_snapshot":
                    book[side] = {}
                for px, qty in levels:
                    if qty:
                        book[side][px] = qty
                    else:
                        book[side].pop(px, None)
        if i and i % 3000 == 0:
            yield SeqGap(ev.ts, ev.recv_ts, ev.symbol, i, i + 5)
            stale_until = i + 200
        if i == stale_until and ev.kind == "book_delta":
            yield make_book_snapshot(ev.ts, ev.recv_ts, ev.symbol, tuple(sorted(book["bids"].items())),
                                     tuple(sorted(book["asks"].items())))
            continue
        yield ev


def test_sequence_gaps_and_snapshots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "gapped.mmc"
    write_cache(path, gapped_events(12_000), {"SYNUSDT": synth_instrument()})
    out = assert_same(path, config(tmp_path), monkeypatch, decision_interval_ms=10)
    assert out["counters"]["stale_cancels"] > 0


LOTS = {"strategy": {"fixed": {"half_spread_ticks": 3, "skew_ticks": 0.5, "order_qty": 1, "max_position": 20}}}
REAL: dict[str, tuple[Path, str | None, dict[str, Any]]] = {
    "usdm": (FIXTURES / "real/binance/usdm/btcusdt_20240718.gz", "binance-usdm", {}),
    "bybit": (FIXTURES / "real/bybit/raw_md_stream.jsonl", None, {}),
    "spot": (FIXTURES / "real/binance/spot/btcusdt_20240808.gz", None, {}),
    "coinm_inverse": (FIXTURES / "real/binance/cm/btcusd_perp_20240808.gz", None, LOTS),
}


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_recordings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    source, venue, sections = REAL[name]
    cache = tmp_path / f"{name}.mmc"
    stream = open_events([str(source)], venue=venue)
    events = list(stream)
    write_cache(cache, events, dict(stream.instruments))
    loaded = config(tmp_path, trading={"symbols": sorted(stream.instruments)}, **sections)
    for interval in (100, 1):
        out = assert_same(cache, loaded, monkeypatch, decision_interval_ms=interval)
        assert out["counters"]["decisions"] > 0 and out["counters"]["creates"] > 0


def test_quotes_before_any_depth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Quotes drive the simulator's top-of-book view until the first depth event."""
    events = [ev for i, ev in enumerate(generate(5, 12_000)) if i >= 3000 or ev.kind in ("quote", "trade")]
    path = tmp_path / "quotes_first.mmc"
    write_cache(path, events, {"SYNUSDT": synth_instrument()})
    out = assert_same(path, config(tmp_path), monkeypatch, decision_interval_ms=10)
    assert out["counters"]["fills"] > 0


def test_a_corrupt_row_fails_the_same_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events = list(generate(5, 4000))
    at = next(i for i in range(2500, 4000) if events[i].kind == "book_delta" and events[i].bids)
    ev = events[at]
    events[at] = make_book_delta(ev.ts, ev.recv_ts, ev.symbol, ((ev.bids[0][0], -3),), ev.asks)
    path = tmp_path / "neg.mmc"
    write_cache(path, events, {"SYNUSDT": synth_instrument()})
    loaded = config(tmp_path)
    errors = []
    for compiled in (True, False):
        monkeypatch.setattr(engine_mod, "_feed_rows", engine_mod._compiled_feed_rows if compiled else None)
        with pytest.raises((MmkitError, ValueError)) as info:
            run_backtest(BacktestRequest((str(path),), loaded, seed=1))
        errors.append(f"{type(info.value).__name__}: {info.value}")
    assert errors[0] == errors[1]


def test_ctrl_c_inside_the_compiled_loop_leaves_no_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A KeyboardInterrupt raised in a Python step the loop called (here the 40th
    decision) leaves the loop at once: exit 130, no report, no temp files."""
    from support import run_cli

    cache = synth_cache(tmp_path, 6000)
    config_file(tmp_path, "cfg.yaml")
    monkeypatch.chdir(tmp_path)
    real = engine_mod.Engine._decide
    calls = []

    def interrupted(self: Any, rt: Any, now: int) -> None:
        calls.append(now)
        if len(calls) == 40:
            raise KeyboardInterrupt
        real(self, rt, now)

    monkeypatch.setattr(engine_mod.Engine, "_decide", interrupted)
    res = run_cli("backtest", "run", "--ticks", cache.name, "--config", "cfg.yaml", "--out", "R.json", "--trace", "tr")
    assert res.code == 130 and len(calls) == 40
    assert not Path("R.json").exists() and not Path("tr").exists()
    assert not list(Path(".").rglob("*.tmp.*"))


def test_an_error_mid_loop_leaves_the_same_engine_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Python step raising inside the loop (the 60th strategy call): the compiled loop
    hands the rows it still had queued for local delivery back to ``Engine._local`` (as
    row numbers), so the engine holds the same pending events, clock and counters as after
    ``Engine.feed`` raising at the same point."""
    import mmkit.research.backtest as bt
    from mmkit.core.strategy import FixedStrategy

    cache = synth_cache(tmp_path, 5000)
    loaded = config(tmp_path, backtest={"feed_clock": "offset", "feed_clock_offset_ns": -40_000_000})
    real_quotes, real_build = FixedStrategy.quotes, bt.build_engine
    states = []
    for compiled in (True, False):
        engines: list[Any] = []

        def build(*args: Any, **kw: Any) -> Any:
            engines.append(real_build(*args, **kw))
            return engines[-1]

        calls: list[int] = []

        def quotes(self: Any, ctx: Any) -> Any:
            calls.append(1)
            if len(calls) == 60:
                raise RuntimeError("strategy failed")
            return real_quotes(self, ctx)

        monkeypatch.setattr(bt, "build_engine", build)
        monkeypatch.setattr(FixedStrategy, "quotes", quotes)
        monkeypatch.setattr(engine_mod, "_feed_rows", engine_mod._compiled_feed_rows if compiled else None)
        rows = None
        if compiled:
            from mmkit.data.cache import load_cache

            rows = load_cache(cache).rows()
        with pytest.raises(RuntimeError, match="strategy failed"):
            run_backtest(BacktestRequest((str(cache),), loaded, seed=2))
        eng = engines[0]
        pending = [(when, rows.event(ev) if isinstance(ev, int) else ev) for when, ev in eng._local]
        states.append((pending, eng._now, eng._last_ts, eng.counters.as_dict()))
    assert len(states[0][0]) > 1
    assert states[0] == states[1]


@pytest.mark.parametrize("chunk", [1, 7, 1000])
def test_rows_in_flight_cross_chunk_boundaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    """The run feeds the cache chunk by chunk, dropping mapped pages behind; rows still in
    the local FIFO at a boundary are delivered (rebuilt from the cache) in the next call."""
    import mmkit.research.backtest as bt

    cache = synth_cache(tmp_path, 4000)
    whole = outcome(cache, config(tmp_path), True, monkeypatch, decision_interval_ms=5)
    monkeypatch.setattr(bt, "_ROW_CHUNK", chunk)
    assert outcome(cache, config(tmp_path), True, monkeypatch, decision_interval_ms=5) == whole
    assert outcome(cache, config(tmp_path), False, monkeypatch, decision_interval_ms=5) == whole


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), interval=st.sampled_from([0, 1, 7, 50]),
       queue=st.sampled_from(["risk_averse", "prob_power", "prob_log"]), entry_ms=st.sampled_from([0.0, 1.0, 25.0]),
       toxic=st.sampled_from([0.0, 0.5]), cross=st.booleans(), half_spread=st.sampled_from([1, 2, 3]))
def test_random_settings_agree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int, interval: int, queue: str,
                               entry_ms: float, toxic: float, cross: bool, half_spread: int) -> None:
    """Random streams and settings: the compiled loop and Engine.feed agree on everything."""
    folder = tmp_path / f"h{seed}_{interval}_{queue}_{entry_ms}_{toxic}_{cross}_{half_spread}"
    folder.mkdir(exist_ok=True)
    cache = synth_cache(folder, 2500, seed=seed)
    loaded = config(folder, fillsim={"toxic_sweep_prob": toxic, "cross_fills": cross,
                                     "latency_params": {"entry_ms": entry_ms, "response_ms": entry_ms}},
                    strategy={"fixed": {"half_spread_ticks": half_spread, "skew_ticks": 0.5, "order_qty": 0.01,
                                        "max_position": 0.2}})
    assert_same(cache, loaded, monkeypatch, seed=seed, decision_interval_ms=interval, queue_model=queue)


def test_prices_beyond_exact_doubles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A mid of more than 2**53 ticks cannot be halved exactly in a double: the compiled
    loop hands that touch to SymbolSignals.on_touch, with the same results."""
    shift = 1 << 52

    def lifted(ev: Any) -> Any:
        if ev.kind in ("book_delta", "book_snapshot"):
            make = make_book_delta if ev.kind == "book_delta" else make_book_snapshot
            return make(ev.ts, ev.recv_ts, ev.symbol, tuple((px + shift, q) for px, q in ev.bids),
                        tuple((px + shift, q) for px, q in ev.asks))
        if ev.kind == "trade":
            return type(ev)(ev.ts, ev.recv_ts, ev.symbol, ev.side, ev.price + shift, ev.qty)
        return type(ev)(ev.ts, ev.recv_ts, ev.symbol, ev.bid_px + shift, ev.bid_qty, ev.ask_px + shift, ev.ask_qty)

    path = tmp_path / "huge.mmc"
    write_cache(path, [lifted(ev) for ev in generate(5, 3000)], {"SYNUSDT": synth_instrument()})
    out = assert_same(path, config(tmp_path), monkeypatch, decision_interval_ms=10)
    assert json.loads(out["report"])["engine"]["decisions"] > 0


# ----------------------------------------------------------------------------- decisions
# The loop does Engine._decide's own steps, SymbolSignals.snapshot and the order manager's
# "nothing to do" check in C (the strategy and a reconcile with work stay Python).  The
# baseline config above quotes one fixed level with every hold rule off; these settings
# reach the rest: ladders of several levels (the vol and Avellaneda models read the
# snapshot's vol, intensity, imbalance and micro bias), orders held by age, by threshold and
# by the anti-stale guard (TTL, drift), amends, the tail batch, a binding budget, a
# one-level imbalance and the allocator's rebalances across symbols.
VOL = {"model": "vol", "levels_per_side": 3, "k_vola_spread": 1.0, "skew_coeff": 0.3, "level_spacing_coeff": 0.4}
DECISION_SETTINGS: dict[str, dict[str, Any]] = {
    "vol_ladder_holds": {"strategy": {**VOL, "min_time_in_book_ms": 500, "replace_threshold_bps": 3.0,
                                      "enable_anti_stale_guard": True, "order_ttl_ms": 800, "price_drift_bps": 2.0}},
    "vol_guard_tight": {"strategy": {**VOL, "min_time_in_book_ms": 50, "replace_threshold_bps": 0.5,
                                     "enable_anti_stale_guard": True, "order_ttl_ms": 120, "price_drift_bps": 0.3}},
    "fixed_amend": {"strategy": {"min_time_in_book_ms": 50, "replace_threshold_bps": 0.0},
                    "backtest": {"replace_policy": "amend"}},
    "vol_tail_batch": {"strategy": {**VOL, "min_time_in_book_ms": 100, "replace_threshold_bps": 1.0},
                       "latency_boost": {"tail_batch": {"tail_age_ms": 300, "max_batch": 2, "jitter_ms": 0}}},
    "avellaneda_one_level_imbalance": {"strategy": {"model": "avellaneda", "levels_per_side": 1,
                                                    "min_time_in_book_ms": 200, "replace_threshold_bps": 0.0},
                                       "signals": {"imbalance_levels": 1, "imbalance_bias_bps": 2.0,
                                                   "microprice_weight_ratio": 0.8}},
    "fixed_small_budget": {"strategy": {"min_time_in_book_ms": 30, "replace_threshold_bps": 0.2},
                           "portfolio": {"budget_usd": 2000}},
    "fixed_tight_throttle": {"strategy": {"min_time_in_book_ms": 0, "replace_threshold_bps": 0.0},
                             "throttle": {"creates_per_sec": 4, "cancels_per_sec": 6, "amends_per_sec": 4}},
    "fixed_position_limit": {"strategy": {"min_time_in_book_ms": 0, "replace_threshold_bps": 0.0},
                             "risk": {"max_position_usd": 2500}},
}


@pytest.mark.parametrize("name", sorted(DECISION_SETTINGS))
def test_decision_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    loaded = config(tmp_path, **DECISION_SETTINGS[name])
    for interval in (100, 7):
        out = assert_same(synth_cache(tmp_path, 8000), loaded, monkeypatch, decision_interval_ms=interval)
        assert out["counters"]["decisions"] > 100 and out["counters"]["creates"] > 0


def test_decisions_on_real_data_with_holds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source, venue, _ = REAL["usdm"]
    cache = tmp_path / "usdm.mmc"
    stream = open_events([str(source)], venue=venue)
    write_cache(cache, list(stream), dict(stream.instruments))
    loaded = config(tmp_path, **DECISION_SETTINGS["vol_ladder_holds"])
    out = assert_same(cache, loaded, monkeypatch, decision_interval_ms=50)
    assert out["counters"]["decisions"] > 1000


def test_rebalances_across_symbols(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rebalances due on decision ticks go to Python (the allocator), the rest stays in C."""
    cache = synth_cache(tmp_path, 8000, symbols=("SYNUSDT", "SYNETH"))
    loaded = config(tmp_path, trading={"symbols": ["SYNUSDT", "SYNETH"]}, portfolio={"rebalance_minutes": 0.05},
                    strategy={**VOL, "min_time_in_book_ms": 100, "replace_threshold_bps": 1.0})
    out = assert_same(cache, loaded, monkeypatch, decision_interval_ms=20)
    assert out["counters"]["rebalances"] > 2


def test_most_decisions_stay_in_the_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a test that cannot fail: Engine._decide and SymbolSignals.snapshot run in Python
    only for the decisions the loop hands over (the first, with its rebalance), and a
    patched _decide is honored (the loop then calls it for every decision)."""
    from mmkit.core.signals import SymbolSignals

    calls = {"decide": 0, "snapshot": 0}
    real_decide, real_snapshot = engine_mod.Engine._decide, SymbolSignals.snapshot

    def counting_snapshot(self: Any, now: int, book: Any) -> Any:
        calls["snapshot"] += 1
        return real_snapshot(self, now, book)

    monkeypatch.setitem(engine_mod._STOCK, "SymbolSignals.snapshot", counting_snapshot)
    monkeypatch.setattr(SymbolSignals, "snapshot", counting_snapshot)
    cache = synth_cache(tmp_path, 6000)
    out = outcome(cache, config(tmp_path), True, monkeypatch, decision_interval_ms=5)
    assert out["counters"]["decisions"] > 500 and calls["snapshot"] <= 2

    def counting_decide(self: Any, rt: Any, now: int) -> None:
        calls["decide"] += 1
        real_decide(self, rt, now)

    monkeypatch.setattr(engine_mod.Engine, "_decide", counting_decide)
    again = outcome(cache, config(tmp_path), True, monkeypatch, decision_interval_ms=5)
    assert again == out and calls["decide"] == out["counters"]["decisions"] + out["counters"]["skipped_decisions"]


def test_the_fixed_strategy_quotes_in_the_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a test that cannot fail: with the stock ``fixed`` strategy the loop computes its
    quotes itself (no ``FixedStrategy.quotes`` call, no context, no snapshot built), and a
    patched ``quotes`` is honored (called on every decision, same results)."""
    from mmkit.core.strategy import FixedStrategy

    calls = {"quotes": 0, "context": 0}
    real_quotes, real_context = FixedStrategy.quotes, engine_mod.make_quote_context

    def counting_context(*args: Any) -> Any:
        calls["context"] += 1
        return real_context(*args)

    monkeypatch.setattr(engine_mod, "make_quote_context", counting_context)
    cache = synth_cache(tmp_path, 6000)
    out = outcome(cache, config(tmp_path), True, monkeypatch, decision_interval_ms=5)
    assert out["counters"]["decisions"] > 500 and calls["context"] <= 2 and out["counters"]["creates"] > 20

    def counting_quotes(self: Any, ctx: Any) -> Any:
        calls["quotes"] += 1
        return real_quotes(self, ctx)

    monkeypatch.setattr(FixedStrategy, "quotes", counting_quotes)
    again = outcome(cache, config(tmp_path), True, monkeypatch, decision_interval_ms=5)
    assert again == out and calls["quotes"] == out["counters"]["decisions"]


def test_a_patched_collect_is_honored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop moves the simulator's reports onto the engine's heap itself while
    ``Engine._collect`` is the stock one (it is then never called from the loop), and
    calls a patched one instead: same results either way."""
    calls = {"collect": 0}
    real = engine_mod.Engine._collect

    def counting(self: Any) -> None:
        calls["collect"] += 1
        real(self)

    cache = synth_cache(tmp_path, 6000)
    monkeypatch.setattr(engine_mod.Engine, "_send", _count_sends(engine_mod.Engine._send))
    out = outcome(cache, config(tmp_path), True, monkeypatch, decision_interval_ms=5)
    sends = _count_sends.n
    assert out["counters"]["creates"] > 20 and calls["collect"] == 0
    monkeypatch.setattr(engine_mod.Engine, "_collect", counting)
    again = outcome(cache, config(tmp_path), True, monkeypatch, decision_interval_ms=5)
    assert again == out and calls["collect"] > sends  # _send's own calls, and the loop's


def _count_sends(real: Any) -> Any:
    _count_sends.n = 0  # type: ignore[attr-defined]

    def send(self: Any, rt: Any, actions: Any, now: int) -> None:
        _count_sends.n += 1  # type: ignore[attr-defined]
        real(self, rt, actions, now)

    return send


@pytest.mark.parametrize("fixed", [
    {"half_spread_ticks": 2.5, "skew_ticks": 0.3333333, "order_qty": 0.003, "max_position": 0.0171},
    {"half_spread_ticks": 0.7, "skew_ticks": 0.0, "order_qty": 0.01, "max_position": 0.05},
    # products of these leave 64 bits: the strategy's own Python quotes
    {"half_spread_ticks": 1.000000000000001, "skew_ticks": 0.123456789012345, "order_qty": 0.001,
     "max_position": 0.013},
])
def test_fixed_strategy_fractions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fixed: dict[str, float]) -> None:
    """The loop's copy of the fixed quotes is exact for config numbers with long decimal
    expansions and for positions that hit the limits (compared with the Python run)."""
    loaded = config(tmp_path, strategy={"fixed": fixed})
    out = assert_same(synth_cache(tmp_path, 9000), loaded, monkeypatch, decision_interval_ms=3)
    assert out["counters"]["creates"] > 10


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), interval=st.sampled_from([1, 10, 100]), model=st.sampled_from(["fixed", "vol",
                                                                                                     "avellaneda"]),
       min_tib=st.sampled_from([0, 30, 200]), thr=st.sampled_from([0.0, 0.5, 2.0]), guard=st.booleans(),
       ttl=st.sampled_from([100, 800]), drift=st.sampled_from([0.3, 2.0]), amend=st.booleans(),
       levels=st.sampled_from([1, 5]))
def test_random_decision_settings_agree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int, interval: int,
                                        model: str, min_tib: int, thr: float, guard: bool, ttl: int, drift: float,
                                        amend: bool, levels: int) -> None:
    """Random hold rules, models and imbalance depth: the decisions made in the loop and
    Engine.feed's agree on everything."""
    folder = tmp_path / f"d{seed}_{interval}_{model}_{min_tib}_{thr}_{guard}_{ttl}_{drift}_{amend}_{levels}"
    folder.mkdir(exist_ok=True)
    strategy = {"model": model, "levels_per_side": 1 if model == "fixed" else 3, "min_time_in_book_ms": min_tib,
                "replace_threshold_bps": thr, "enable_anti_stale_guard": guard, "order_ttl_ms": ttl,
                "price_drift_bps": drift}
    loaded = config(folder, strategy=strategy, signals={"imbalance_levels": levels},
                    backtest={"replace_policy": "amend" if amend else "cancel_replace"})
    assert_same(synth_cache(folder, 2500, seed=seed), loaded, monkeypatch, seed=seed, decision_interval_ms=interval)


def test_prints_at_our_price_stay_in_the_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A print at our best price (an int queue estimate) is done in C, the queue ahead
    and, once past it, the fills (``FillSimulator._fill``, Python); one that goes through
    our price goes to ``FillSimulator._trade``: fewer Python calls, the same results
    (test_queue_models covers the fractional estimates of the prob_* models, which go to
    Python).  A patched ``_trade`` is honored: the loop then hands it every print."""
    from mmkit.core.events import Trade
    from mmkit.core.fillsim import FillSimulator

    real_trade, real_market = FillSimulator._trade, FillSimulator.on_market
    trades: list[int] = []
    markets: list[int] = []

    def counting_trade(self: Any, st: Any, ev: Any, hit_bids: bool) -> None:
        trades.append(ev.ts)
        real_trade(self, st, ev, hit_bids)

    def counting_market(self: Any, ev: Any) -> None:
        if type(ev) is Trade:
            markets.append(ev.ts)
        real_market(self, ev)

    monkeypatch.setattr(FillSimulator, "on_market", counting_market)
    cache = synth_cache(tmp_path, 8000)
    fast = outcome(cache, config(tmp_path), True, monkeypatch, decision_interval_ms=5)
    handed_over = len(markets)
    pure = outcome(cache, config(tmp_path), False, monkeypatch, decision_interval_ms=5)
    assert fast == pure and fast["counters"]["fills"] > 0
    monkeypatch.setattr(FillSimulator, "_trade", counting_trade)
    trades.clear()
    assert outcome(cache, config(tmp_path), False, monkeypatch, decision_interval_ms=5) == pure
    reaching = len(trades)
    assert 0 <= handed_over < reaching  # prints that reach our orders, most of them in C
    trades.clear()
    assert outcome(cache, config(tmp_path), True, monkeypatch, decision_interval_ms=5) == pure
    assert len(trades) == reaching


class Spy:
    """A counting stand-in for ``owner.name`` (``count(*args)``: what one call adds).

    Registered in ``engine._STOCK`` by default, so the loop keeps the C step that mirrors
    the method and the count is what it still hands to Python; ``patch()`` unregisters it,
    making it a patched method (the loop then calls it every time).  ``stock=False`` only
    replaces the method (one the loop asks through Python anyway).
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch, owner: type, name: str, *, stock: bool = True,
                 count: Any = lambda *args: 1) -> None:
        self.n = 0
        self.real = real = getattr(owner, name)
        self._monkeypatch = monkeypatch
        self._key = f"{owner.__name__}.{name}"

        def spy(*args: Any) -> Any:
            self.n += count(*args)
            return real(*args)

        if stock:
            monkeypatch.setitem(engine_mod._STOCK, self._key, spy)
        monkeypatch.setattr(owner, name, spy)

    def patch(self) -> None:
        self._monkeypatch.setitem(engine_mod._STOCK, self._key, self.real)


def untraced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path) -> dict[str, Any]:
    return outcome(cache, config(tmp_path), True, monkeypatch, decision_interval_ms=5, trace=False)


def test_acks_and_cancel_confirmations_in_the_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a test that cannot fail: without an order trace the loop applies a create's ack
    and a cancel confirmation itself (``Engine._on_report`` then sees only the fills and
    other reports), with a trace or a patched report method every report goes to Python,
    and the results are the same."""
    spy = Spy(monkeypatch, engine_mod.Engine, "_on_report")
    cache = synth_cache(tmp_path, 6000)
    out = untraced(tmp_path, monkeypatch, cache)
    c = out["counters"]
    assert c["creates"] > 20 and c["cancels"] > 20 and spy.n < c["reports"] - c["creates"]
    spy.n = 0
    traced = outcome(cache, config(tmp_path), True, monkeypatch, decision_interval_ms=5)
    assert spy.n == c["reports"] and {k: v for k, v in traced.items() if k != "trace"} == {
        k: v for k, v in out.items() if k != "trace"}
    spy.n = 0
    spy.patch()
    assert untraced(tmp_path, monkeypatch, cache) == out and spy.n == c["reports"]


def test_arrivals_at_the_simulator_in_the_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a test that cannot fail: the loop runs a create's and a cancel's arrival at the
    simulator itself (``process_arrivals`` is then called only by ``Engine.close`` for
    what is still in flight at the end), asks a queue model with its own ``on_join`` for
    the queue position, and calls a patched ``process_arrivals`` for every arrival
    instead: same results every way."""
    from mmkit.core.fillsim import FillSimulator
    from mmkit.core.queue import RiskAverseQueue

    spy = Spy(monkeypatch, FillSimulator, "process_arrivals")
    cache = synth_cache(tmp_path, 6000)
    out = untraced(tmp_path, monkeypatch, cache)
    c = out["counters"]
    assert c["creates"] > 20 and c["cancels"] > 20 and spy.n <= 1
    spy.n = 0
    join = Spy(monkeypatch, RiskAverseQueue, "on_join", stock=False)
    assert untraced(tmp_path, monkeypatch, cache) == out
    assert join.n > 20 and spy.n <= 1
    spy.patch()
    assert untraced(tmp_path, monkeypatch, cache) == out
    assert spy.n > c["creates"] // 2


def test_reconciles_in_the_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a test that cannot fail: the loop runs the cancel_replace reconciles with work
    itself (``_reconcile_slow`` is then called only for what it does not cover), and
    calls a patched ``_reconcile_slow`` for every one of them: same results, same order
    manager and simulator state."""
    from mmkit.core.orders import OrderManager

    spy = Spy(monkeypatch, OrderManager, "_reconcile_slow")
    cache = synth_cache(tmp_path, 6000)
    out = untraced(tmp_path, monkeypatch, cache)
    c = out["counters"]
    assert c["creates"] > 20 and c["cancels"] > 20 and spy.n <= 2
    spy.patch()
    assert untraced(tmp_path, monkeypatch, cache) == out
    assert spy.n > c["cancels"] // 2


def test_sends_in_the_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a test that cannot fail: without an order trace the loop sends creates and
    cancels to the simulator itself (``Engine._send`` is then called only outside the
    loop), and calls a patched ``_send`` for every batch instead: same results."""
    spy = Spy(monkeypatch, engine_mod.Engine, "_send")
    cache = synth_cache(tmp_path, 6000)
    out = untraced(tmp_path, monkeypatch, cache)
    c = out["counters"]
    assert c["creates"] > 20 and c["cancels"] > 20 and spy.n <= 2
    spy.patch()
    assert untraced(tmp_path, monkeypatch, cache) == out
    assert spy.n > c["creates"] // 2


def test_gates_in_the_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a test that cannot fail: the loop asks the stock gate chain's kill switch,
    circuit breaker and throttle itself in their common state (``GateChain.check`` is then
    never called), a patched ``check`` is called for every create, and a tripped kill
    switch (its Python method answers) refuses the same creates both ways."""
    from mmkit.core.gates import GateChain
    from mmkit.core.risk import KillSwitch

    spy = Spy(monkeypatch, GateChain, "check")
    cache = synth_cache(tmp_path, 6000)
    out = untraced(tmp_path, monkeypatch, cache)
    c = out["counters"]
    assert c["creates"] > 20 and spy.n <= 2
    spy.patch()
    assert untraced(tmp_path, monkeypatch, cache) == out
    assert spy.n > c["creates"] // 2
    monkeypatch.setattr(GateChain, "check", spy.real)
    real_init = KillSwitch.__init__

    def tripped(self: Any, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        self.trip("test", 0)

    monkeypatch.setattr(KillSwitch, "__init__", tripped)
    refused = assert_same(cache, config(tmp_path), monkeypatch, decision_interval_ms=5)
    assert refused["managers"]["SYNUSDT"][-1]["gated"].get("killswitch", 0) > 20


def test_markouts_mature_in_the_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a test that cannot fail: the loop matures the markouts of fills itself
    (``MarkoutTracker._mature`` is then not called from it), and calls a patched
    ``_mature`` instead: same markout sums either way."""
    from mmkit.core.signals import MarkoutTracker

    spy = Spy(monkeypatch, MarkoutTracker, "_mature")
    cache = synth_cache(tmp_path, 6000)
    out = untraced(tmp_path, monkeypatch, cache)
    matured = sum(s.count for s in out["signals"]["SYNUSDT"][-1])
    assert out["counters"]["fills"] > 10 and matured > 20 and spy.n <= 2
    spy.patch()
    assert untraced(tmp_path, monkeypatch, cache) == out
    assert spy.n > 20


@settings(max_examples=300, deadline=None)
@given(ticks=st.integers(1, 10**15), tick_exp=st.integers(-8, 2), tick_coef=st.integers(1, 999),
       lot_exp=st.integers(-8, 2), lot_coef=st.integers(1, 999), mult=st.sampled_from(["1", "0.001", "10", "25.5"]))
def test_the_loops_lot_value_is_float_of_the_exact_notional(ticks: int, tick_exp: int, tick_coef: int, lot_exp: int,
                                                            lot_coef: int, mult: str) -> None:
    """The position mark's lot value in the loop (the exact product as text, then the
    correctly rounded double) is ``float(Instrument.notional_usd(mid, 1))`` bit for bit."""
    from decimal import Decimal

    from mmkit.core._fastfeed import lot_value
    from mmkit.core.instruments import Instrument

    inst = Instrument("X", Decimal(tick_coef).scaleb(tick_exp), Decimal(lot_coef).scaleb(lot_exp), Decimal(mult))
    unit = engine_mod._lot_unit(inst)
    assert unit is not None
    got = lot_value(ticks, *unit)
    want = float(inst.notional_usd(ticks, 1))
    if got is not None:
        assert got == want and got.hex() == want.hex()
    else:  # only a product past Decimal's 28 digits is left to Python
        assert ticks * unit[0] >= 10**28


def test_fills_that_complete_an_order_in_the_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a test that cannot fail: a fill that completes its order is applied in the loop
    (the order manager's fill and finish, the record; its booking through ``_book_fill``),
    so ``Engine._on_report`` sees only the other fills; a patched report method sees all."""
    from mmkit.core.types import Fill

    spy = Spy(monkeypatch, engine_mod.Engine, "_on_report", count=lambda self, report, now: type(report) is Fill)
    cache = synth_cache(tmp_path, 6000)
    out = untraced(tmp_path, monkeypatch, cache)
    n = out["counters"]["fills"]
    assert n > 10 and spy.n < n // 2
    spy.n = 0
    spy.patch()
    assert untraced(tmp_path, monkeypatch, cache) == out
    assert spy.n == n
