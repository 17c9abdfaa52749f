"""mmkit.research.gc_pause: the cyclic collector is paused around a backtest's engine
run, restored after (also after an error), and the run leaves next to no cyclic garbage
(the premise that makes the pause safe: reference counting frees what the engine drops)."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest

from mmkit.research import backtest as bt
from mmkit.research.backtest import BacktestRequest, run_backtest
from mmkit.research.gc_pause import gc_paused

from research.test_feed_rows import config, synth_cache


def test_the_previous_state_comes_back() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner block leaves the outer one paused
    assert gc.isenabled()
    with pytest.raises(RuntimeError):
        with gc_paused():
            raise RuntimeError("boom")
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # a caller's own pause is kept
    finally:
        gc.enable()


@pytest.mark.parametrize("rows", [True, False])
def test_a_backtest_pauses_the_collector_and_makes_no_cycles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             rows: bool) -> None:
    seen: list[bool] = []
    real_close = bt.Engine.close

    def close(self: Any) -> Any:
        seen.append(gc.isenabled())
        return real_close(self)

    monkeypatch.setattr(bt.Engine, "close", close)
    if not rows:
        monkeypatch.setattr(bt.Engine, "row_feed_supported", lambda self: False)
    cache = synth_cache(tmp_path, 6000)
    gc.collect()
    gc.disable()
    try:
        out = run_backtest(BacktestRequest((str(cache),), config(tmp_path), seed=3, decision_interval_ms=5))
        left = gc.collect()
    finally:
        gc.enable()
    assert out.result.counters.creates > 20
    assert seen == [False] and gc.isenabled()
    assert left < 50  # a few objects of the run's setup, not one per event or order
