"""``mmkit sim run|report``: Live-Sim mode on recorded events (simulated, deterministic
execution through the one engine) and the Markdown view of a saved report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mmkit import artifacts
from mmkit.cli.options import ConfigOpt, FromOpt, OutMdOpt, SymbolOpt, TraceOpt, VenueOpt, resolve_out, status_line
from mmkit.config import load_config
from mmkit.errors import EXIT_GATE_FAILED
from mmkit.progress import Progress
from mmkit.research.backtest import BacktestRequest, read_report, render_markdown, run_backtest, write_outcome

app = typer.Typer(help="Live-Sim mode: simulated execution, no money, deterministic fills.\n\n"
                  "Example: mmkit sim run --events fixtures/real/binance/usdm/btcusdt_20240718.gz "
                  "--config bench/configs/baseline.yaml", no_args_is_help=True)


@app.command()
def run(
    events: Annotated[list[str], typer.Option("--events", help="Market data file(s) in any supported format, or '-' (repeatable).")],
    config: ConfigOpt,
    seed: Annotated[int, typer.Option("--seed", help="Seed of every random draw.")] = 0,
    fmt: FromOpt = None,
    symbol: SymbolOpt = None,
    venue: VenueOpt = None,
    out: Annotated[str | None, typer.Option("--out", help="Report JSON ('-' = stdout). Default: <artifacts>/SIM_REPORT.json")] = None,
    out_md: OutMdOpt = None,
    trace: TraceOpt = None,
) -> None:
    """Simulate trading on recorded events; writes SIM_REPORT.json and .md, prints SIM=PASS|FAIL; a failed gate exits 2.

    \b
    Example: mmkit sim run --events fixtures/real/binance/usdm/btcusdt_20240718.gz --config bench/configs/baseline.yaml --seed 1
    """
    req = BacktestRequest(tuple(events), load_config(config), fmt=fmt, symbol=symbol, venue=venue, seed=seed,
                          trace=trace is not None, kind="sim_report")
    with Progress(None, "sim", unit="events") as bar:
        outcome = run_backtest(req, bar)
    target = resolve_out(out, "SIM_REPORT.json")
    md = out_md or (str(Path(target).with_suffix(".md")) if target != "-" else resolve_out(None, "SIM_REPORT.md"))
    write_outcome(outcome, target, md, trace)
    status_line("SIM", outcome.report["verdict"], stdout_has_json=target == "-")
    if not outcome.passed:
        raise typer.Exit(EXIT_GATE_FAILED)


@app.command()
def report(
    path: Annotated[str, typer.Argument(help="A saved SIM_REPORT.json (or BACKTEST_REPORT.json); '-' = stdin.")],
    out: Annotated[str | None, typer.Option("--out", help="Markdown file ('-' = stdout). Default: next to the JSON.")] = None,
) -> None:
    """Render the Markdown report from a saved sim or backtest report JSON.

    \b
    Example: mmkit sim report artifacts/SIM_REPORT.json --out artifacts/SIM_REPORT.md
    """
    obj = read_report(path)
    target = out or (str(Path(path).with_suffix(".md")) if path != "-" else "-")
    artifacts.write_text(target, render_markdown(obj))
