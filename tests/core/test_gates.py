"""The gate interface, the chain, guard events, and docs/risk.md's examples (run as written)."""

from __future__ import annotations

import contextlib
import io
import re
from dataclasses import FrozenInstanceError

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from mmkit.config import build_config, load_config
from mmkit.core.circuit import CircuitBreaker
from mmkit.core.gates import EVENT_KINDS, EventLog, Gate, GateChain, GuardEvent
from mmkit.core.risk import IntradayCapsGuard, KillSwitch, PositionBook, PositionSkewGuard, RiskGuard, increases_risk
from mmkit.core.throttle import Throttle
from mmkit.core.types import BUY, SELL, AmendOrder, CancelOrder, CreateOrder
from support import ROOT

SEC = 1_000_000_000
T0 = 1_704_067_200 * SEC
NEW = CreateOrder("c", "BTCUSDT", BUY, 100, 1)
CANCEL = CancelOrder("c", "BTCUSDT")


class Fake(EventLog):
    """A gate that answers a fixed reason and records what it was asked."""

    def __init__(self, reason: str | None, name: str = "") -> None:
        super().__init__()
        self.reason, self.name, self.checked, self.sent = reason, name, [], []

    def check(self, action, now_ns):
        self.checked.append(action)
        return self.reason

    def on_sent(self, action, now_ns):
        self.sent.append(action)
        self._emit(now_ns, self.name, action.symbol, "breach")


class Plain:
    """A gate with no events at all (the chain must not require drain_events)."""

    def check(self, action, now_ns):
        return None

    def on_sent(self, action, now_ns):
        pass


def test_first_reason_wins_and_later_gates_are_not_asked():
    a, b, c = Fake(None), Fake("b:no"), Fake("c:no")
    chain = GateChain([a, b, c])
    assert chain.check(NEW, T0) == "b:no"
    assert (len(a.checked), len(b.checked), len(c.checked)) == (1, 1, 0)
    assert GateChain([]).check(NEW, T0) is None


def test_cancels_skip_every_gate_but_on_sent_reaches_all():
    gates = [Fake("x"), Fake("y"), Plain()]
    chain = GateChain(gates)
    assert chain.check(CANCEL, T0) is None
    assert gates[0].checked == []
    chain.on_sent(CANCEL, T0)
    assert gates[0].sent == [CANCEL] and gates[1].sent == [CANCEL]


def test_gates_that_do_not_track_sends_are_not_told():
    """``tracks_sends = False`` (the risk guards, whose on_sent does nothing) keeps the
    chain from calling on_sent; check is still asked, and the default is to tell."""

    class Quiet(Fake):
        tracks_sends = False

    loud, quiet = Fake(None), Quiet(None)
    chain = GateChain([quiet, loud])
    assert chain.check(NEW, T0) is None and quiet.checked == [NEW] and loud.checked == [NEW]
    chain.on_sent(NEW, T0)
    assert quiet.sent == [] and loud.sent == [NEW]
    assert [g.tracks_sends for g in (RiskGuard, IntradayCapsGuard, PositionSkewGuard, KillSwitch)] == [False] * 4
    assert not hasattr(Throttle, "tracks_sends") and not hasattr(CircuitBreaker, "tracks_sends")


def test_gates_that_check_nothing_are_not_asked():
    """``checks_orders = False`` (a guard with every limit off) keeps the chain from
    asking it; on_sent still reaches it, and the default is to ask."""

    class Inert(Fake):
        checks_orders = False

    inert, live = Inert("never"), Fake(None)
    chain = GateChain([inert, live])
    assert chain.check(NEW, T0) is None and inert.checked == [] and live.checked == [NEW]
    chain.on_sent(NEW, T0)
    assert inert.sent == [NEW] and live.sent == [NEW]


def test_drain_events_merges_in_time_order_and_ties_keep_chain_order():
    a, b = Fake(None, "a"), Fake(None, "b")
    chain = GateChain([a, b, Plain()])
    b.on_sent(NEW, T0 + 2)
    a.on_sent(NEW, T0 + 2)
    a.on_sent(NEW, T0 + 1)
    evs = chain.drain_events()
    assert [(e.ts_ns, e.guard) for e in evs] == [(T0 + 1, "a"), (T0 + 2, "a"), (T0 + 2, "b")]
    assert chain.drain_events() == []


def test_guard_event_is_a_frozen_record_with_known_kinds():
    ev = GuardEvent(T0, "risk:paused", "", "breach", "x=1")
    with pytest.raises(FrozenInstanceError):
        ev.kind = "recover"  # type: ignore[misc]
    assert not hasattr(ev, "__dict__")
    with pytest.raises(ValueError, match="unknown guard event kind"):
        Fake(None)._emit(T0, "g", "", "exploded")
    assert set(EVENT_KINDS) == {"breach", "recover", "block", "resume", "open", "half_open", "closed", "fire", "reset"}


def test_every_component_is_a_gate():
    cfg = build_config({})
    book = PositionBook()
    gates: list[Gate] = [Throttle(cfg.throttle), CircuitBreaker(cfg.circuit), RiskGuard(cfg.risk, book),
                         IntradayCapsGuard(cfg.guards.intraday_caps, book), PositionSkewGuard(cfg.guards.pos_skew, book),
                         KillSwitch(cfg.killswitch, book), GateChain([])]
    for g in gates:
        assert callable(g.check) and callable(g.on_sent) and callable(g.drain_events)


# ----------------------------------------------------------------------------- the full chain
def full_chain(cfg, book: PositionBook):
    risk = RiskGuard(cfg.risk, book)
    caps = IntradayCapsGuard(cfg.guards.intraday_caps, book, T0)
    kill = KillSwitch(cfg.killswitch, book)
    circuit = CircuitBreaker(cfg.circuit)
    throttle = Throttle(cfg.throttle)
    chain = GateChain([kill, risk, caps, PositionSkewGuard(cfg.guards.pos_skew, book), circuit, throttle])
    return chain, risk, caps, kill, circuit, throttle


EVENT = st.one_of(
    st.tuples(st.just("order"), st.sampled_from(["create", "amend", "cancel"]), st.sampled_from([BUY, SELL]),
              st.integers(1, 50), st.sampled_from(["BTCUSDT", "ETHUSDT"])),
    st.tuples(st.just("fill"), st.sampled_from([BUY, SELL]), st.integers(1, 40), st.sampled_from(["BTCUSDT", "ETHUSDT"])),
    st.tuples(st.just("equity"), st.floats(80_000, 120_000)),
    st.tuples(st.just("pnl"), st.floats(-2_000, 2_000)),
    st.tuples(st.just("result"), st.booleans(), st.sampled_from([200, 429, 503, 0])),
    st.tuples(st.just("trip"), st.booleans()),
    st.tuples(st.just("wait"), st.integers(0, 40 * SEC)),
)


@settings(max_examples=120, deadline=None)
@given(st.lists(EVENT, max_size=120))
def test_property_chain_from_example_yaml_never_blocks_cancels_or_reducing_orders(events):
    raw = yaml.safe_load((ROOT / "config" / "example.yaml").read_text())
    raw["guards"]["intraday_caps"]["daily_pnl_stop"] = 500.0  # one cap on, the rest as example.yaml
    cfg = build_config(raw)
    book = PositionBook()
    book.update_mark("BTCUSDT", 60.0, T0)
    book.update_mark("ETHUSDT", 3.0, T0)
    chain, risk, caps, kill, circuit, _ = full_chain(cfg, book)
    now = T0
    for ev in events:
        now += 1_000_000
        kind = ev[0]
        if kind == "order":
            _, op, side, qty, sym = ev
            a = {"create": CreateOrder("c", sym, side, 1, qty), "amend": AmendOrder("c", sym, side, 1, qty),
                 "cancel": CancelOrder("c", sym)}[op]
            reason = chain.check(a, now)
            if op == "cancel":
                assert reason is None
            elif not increases_risk(book.position_lots(sym), side, qty):
                # risk guards never block a reducing order; only flow control may hold it
                assert reason is None or reason.startswith(("throttle:", "circuit_")), reason
            if reason is None:
                chain.on_sent(a, now)
        elif kind == "fill":
            book.apply_fill(ev[3], ev[1], ev[2], now)
        elif kind == "equity":
            risk.update_equity(ev[1], now)
        elif kind == "pnl":
            caps.update_pnl(ev[1], now)
        elif kind == "result":
            circuit.on_result("create", ev[1], ev[2], now)
        elif kind == "trip":
            kill.trip("test", now) if ev[1] else kill.reset(now)
        else:
            now += ev[1]
    for e in chain.drain_events():
        assert e.kind in EVENT_KINDS and e.detail.isascii()


def test_example_yaml_values_are_the_ones_the_gates_use():
    cfg = load_config(ROOT / "config" / "example.yaml", use_env_profile=False).config
    assert cfg == build_config({})  # example.yaml is the defaults
    t = Throttle(cfg.throttle)
    assert (t.window_sec, t.limit("create"), t.limit("amend"), t.limit("cancel")) == (3, 30, 60, 75)


# ----------------------------------------------------------------------------- docs/risk.md
DOC = (ROOT / "docs" / "risk.md").read_text()


def test_docs_python_example_runs_and_prints_what_the_page_says():
    [code] = re.findall(r"```python\n(.*?)```", DOC, re.S)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "docs/risk.md", "exec"), {})
    shown = re.search(r"It prints the audit events:\n\n```\n(.*?)```", DOC, re.S)
    assert shown, "docs/risk.md should show the example's output"
    assert out.getvalue() == shown.group(1)


def test_docs_yaml_examples_are_valid_configs():
    blocks = re.findall(r"```yaml\n(.*?)```", DOC, re.S)
    assert len(blocks) >= 6
    for block in blocks:
        build_config(yaml.safe_load(block))  # raises ConfigError on any problem


def test_docs_list_every_reason_and_parameter():
    for reason in ("killswitch", "risk:max_drawdown", "risk:paused", "risk:no_mark", "risk:max_position",
                   "intraday:pnl_stop", "intraday:turnover_cap", "intraday:vol_cap", "pos_skew:freeze",
                   "circuit_open", "circuit_half_open", "throttle:create", "throttle:amend", "throttle:backoff"):
        assert f"`{reason}`" in DOC, reason
    from mmkit.config import leaf_paths

    for key in leaf_paths():
        if key.split(".")[0] in ("risk", "circuit", "throttle", "killswitch") or key.startswith("guards."):
            if key == "throttle.per_symbol":
                continue
            assert f"`{key}`" in DOC, f"docs/risk.md does not document {key}"
