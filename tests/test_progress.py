"""The progress bar: drawn only on a TTY (or when forced), with rate and ETA."""

from __future__ import annotations

import io

import pytest

from mmkit.progress import Progress


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_silent_when_stderr_is_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MM_PROGRESS", raising=False)
    out = io.StringIO()
    with Progress(10, "sweep", stream=out) as bar:
        bar.advance(10)
    assert out.getvalue() == ""


def test_draws_bar_rate_and_eta_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MM_PROGRESS", raising=False)
    out = Tty()
    with Progress(4, "sweep", unit="trials", stream=out, min_interval=0) as bar:
        bar.advance(1)
        text = bar.line(bar._t0 + 2.0)
        bar.advance(3)
    assert "[######..................]  25.0% 1/4 trials 0.5/s ETA 0:00:06" in text
    final = out.getvalue()
    assert final.startswith("\rsweep [") and final.endswith("\n") and "100.0% 4/4" in final


def test_unknown_total_shows_count_and_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MM_PROGRESS", "1")
    out = io.StringIO()
    bar = Progress(None, "backtest", unit="ev", stream=out)
    bar.advance(500)
    assert bar.line(bar._t0 + 1.0).startswith("backtest 500 ev 500 ev/s")
    bar.close()
    assert out.getvalue().endswith("\n")


def test_forced_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MM_PROGRESS", "0")
    out = Tty()
    with Progress(3, "x", stream=out) as bar:
        bar.advance(3)
    assert out.getvalue() == ""
