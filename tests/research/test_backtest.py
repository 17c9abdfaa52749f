"""run_backtest on the real Binance USD-M recording: conservation of volume, position and
the ledger; the report and its Markdown; interrupts; bad requests."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from mmkit.config import load_config
from mmkit.data.readers import open_events
from mmkit.errors import MmkitError
from mmkit.research.backtest import BacktestRequest, render_markdown, run_backtest

ROOT = Path(__file__).resolve().parents[2]
USDM = str(ROOT / "fixtures/real/binance/usdm/btcusdt_20240718.gz")
BASELINE = ROOT / "bench/configs/baseline.yaml"


def config_file(tmp_path: Path, name: str = "cfg.yaml", **sections: dict[str, Any]) -> str:
    """baseline.yaml with some sections' keys replaced (an overlay written out)."""
    raw = yaml.safe_load(BASELINE.read_text())
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw, sort_keys=True))
    return str(path)


def request(cfg: str, **kw: Any) -> BacktestRequest:
    kw.setdefault("seed", 1)
    return BacktestRequest((kw.pop("ticks", USDM),), load_config(cfg, use_env_profile=False), **kw)


@pytest.fixture(scope="module")
def no_cross(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("bt")
    cfg = config_file(tmp, fillsim={"queue_model": "risk_averse", "cross_fills": False})
    return run_backtest(request(cfg, trace=True))


def test_fills_never_exceed_the_traded_volume(no_cross: Any) -> None:
    """risk_averse without cross fills: every lot we got filled was printed at or through
    our price at that exchange time by an aggressor on the other side."""
    inst = no_cross.result.runtimes["BTCUSDT"].instrument
    trades = [ev for ev in open_events([USDM]) if ev.kind == "trade"]
    assert trades
    filled: Counter[tuple[int, int, int]] = Counter()
    for f in no_cross.result.fills:
        filled[(f.ts, f.side, f.price)] += f.qty
    assert filled, "the baseline should fill on this recording"
    for (ts, side, price), qty in filled.items():
        # our buy is hit by sellers at or below our price; our sell is lifted at or above it
        volume = sum(t.qty for t in trades if t.ts == ts and t.side == -side
                     and (t.price <= price if side > 0 else t.price >= price))
        assert 0 < qty <= volume, (ts, side, price, qty, volume)
    assert all(f.liquidity == "maker" for f in no_cross.result.fills)


def test_position_is_the_signed_sum_of_fills_and_the_ledger_reconciles(no_cross: Any) -> None:
    res = no_cross.result
    signed = sum(f.side * f.qty for f in res.fills)
    assert res.ledger.qty_lots("BTCUSDT") == signed
    assert no_cross.report["per_symbol"]["BTCUSDT"]["position_lots"] == signed
    assert res.ledger.reconcile(res.fills).ok
    assert res.counters.fills == len(res.fills) == no_cross.report["stats"]["fills"]
    # every filled lot belongs to an order record, and no order is overfilled
    by_order: Counter[str] = Counter()
    for f in res.fills:
        by_order[f.client_id] += f.qty
    records = {r.client_id: r for r in res.orders}
    for cid, qty in by_order.items():
        assert records[cid].filled_lots == qty <= records[cid].qty_lots


def test_report_shape_and_markdown(no_cross: Any, tmp_path: Path) -> None:
    rep = no_cross.report
    assert rep["schema"] == "mmkit.backtest_report/v1"
    assert rep["run"]["queue_model"] == "risk_averse" and rep["run"]["clock_shift_ns"] < -1_000_000_000
    assert rep["data"]["by_kind"]["book_snapshot"] == 1 and rep["engine"]["events"] == rep["data"]["events"]
    md = render_markdown(rep)
    assert md.startswith("# Backtest report\n") and md.endswith("\n") and md.isascii()
    assert f"| net_bps " in md and f"{rep['stats']['net_bps']:.6f}" in md


class Sink:
    """Records what ``run_backtest`` reports to its progress sink."""

    def __init__(self, interrupt: bool = False) -> None:
        self.total: int | None = None
        self.steps: list[int] = []
        self.interrupt = interrupt

    def set_total(self, n: int) -> None:
        self.total = n

    def advance(self, n: int) -> None:
        self.steps.append(n)
        if self.interrupt:
            raise KeyboardInterrupt


def test_progress_interrupt_propagates(tmp_path: Path) -> None:
    sink = Sink(interrupt=True)
    with pytest.raises(KeyboardInterrupt):
        run_backtest(request(str(BASELINE)), progress=sink)
    assert sink.steps


def test_progress_learns_the_total_then_counts_every_event() -> None:
    sink = Sink()
    out = run_backtest(request(str(BASELINE)), progress=sink)
    assert sink.total == sum(sink.steps) == out.report["data"]["events"]


@pytest.mark.parametrize(("kw", "code"), [
    ({"mode": "bogus"}, "E_USAGE"),
    ({"queue_model": "bogus"}, "E_CFG_MODEL"),
    ({"decision_interval_ms": -1}, "E_USAGE"),
    ({"venue": "no-such-venue"}, "E_DATA_UNKNOWN_VENUE"),
])
def test_bad_requests_fail_before_reading(kw: dict[str, Any], code: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import mmkit.research.backtest as bt

    def boom(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("the input was read before the request was checked")

    monkeypatch.setattr(bt, "open_events", boom)
    with pytest.raises(MmkitError) as exc:
        run_backtest(request(str(BASELINE), **kw))
    assert exc.value.code == code
