"""``mmkit backtest run``: replay recorded events through the engine and the fill simulator."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mmkit.cli.options import ConfigOpt, FromOpt, OutMdOpt, SymbolOpt, TraceOpt, VenueOpt, resolve_out, status_line
from mmkit.config import load_config
from mmkit.errors import EXIT_GATE_FAILED
from mmkit.progress import Progress
from mmkit.research.backtest import BacktestRequest, run_backtest, write_outcome

app = typer.Typer(help="Queue- and latency-aware backtests on recorded market data.\n\n"
                  "Example: mmkit backtest run --ticks fixtures/real/binance/usdm/btcusdt_20240718.gz "
                  "--config bench/configs/baseline.yaml", no_args_is_help=True)


@app.command()
def run(
    ticks: Annotated[list[str], typer.Option("--ticks", help="Market data file(s) in any supported format, or '-' (repeatable).")],
    config: ConfigOpt,
    mode: Annotated[str, typer.Option("--mode", help="queue_aware (the configured queue model) or optimistic.")] = "queue_aware",
    queue_model: Annotated[str | None, typer.Option("--queue-model", help="Override fillsim.queue_model.")] = None,
    calibration: Annotated[str | None, typer.Option("--calibration", help="Calibration JSON (latency, toxic sweeps, slippage).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of every random draw.")] = 0,
    fmt: FromOpt = None,
    symbol: SymbolOpt = None,
    venue: VenueOpt = None,
    on_error: Annotated[str, typer.Option("--on-error", help="fail or skip bad input lines.")] = "fail",
    decision_interval_ms: Annotated[int | None, typer.Option("--decision-interval-ms", help="Override backtest.decision_interval_ms.")] = None,
    out: Annotated[str | None, typer.Option("--out", help="Report JSON ('-' = stdout). Default: <artifacts>/BACKTEST_REPORT.json")] = None,
    out_md: OutMdOpt = None,
    trace: TraceOpt = None,
) -> None:
    """Run one backtest; the report lists each gate; a failed gate exits 2.

    \b
    Example: mmkit backtest run --ticks fixtures/real/binance/usdm/btcusdt_20240718.gz --config bench/configs/baseline.yaml --seed 1
    """
    req = BacktestRequest(tuple(ticks), load_config(config), fmt=fmt, symbol=symbol, venue=venue, mode=mode,
                          queue_model=queue_model, calibration=calibration, seed=seed, on_error=on_error,
                          decision_interval_ms=decision_interval_ms, trace=trace is not None)
    with Progress(None, "backtest", unit="events") as bar:
        outcome = run_backtest(req, bar)
    target = resolve_out(out, "BACKTEST_REPORT.json")
    md = out_md or (str(Path(target).with_suffix(".md")) if target != "-" else resolve_out(None, "BACKTEST_REPORT.md"))
    write_outcome(outcome, target, md, trace)
    status_line("BACKTEST", outcome.report["verdict"], stdout_has_json=target == "-")
    if not outcome.passed:
        raise typer.Exit(EXIT_GATE_FAILED)
