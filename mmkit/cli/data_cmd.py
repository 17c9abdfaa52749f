"""``mmkit data convert|inspect|slice|synth``: bring market data in, look at it, cut it (docs/data.md)."""

from __future__ import annotations

import sys
from typing import Annotated

import click
import typer

from mmkit import artifacts
from mmkit.cli.options import OutOpt, resolve_out
from mmkit.data import convert as dconv
from mmkit.data import inspect as dinsp
from mmkit.data import synth

app = typer.Typer(help="Convert, inspect, slice and synthesize market data.\n\n"
                  "Example: mmkit data inspect fixtures/real/bybit/xrpusdt-ob500.data.zip --out -", no_args_is_help=True)

IN_FORMATS = click.Choice(["binance", "bybit", "tardis", "jsonl", "cache"])
OUT_FORMATS = click.Choice(list(dconv.OUT_FORMATS))
InputsArg = Annotated[list[str], typer.Argument(help="Input files (plain, .gz, .zip, ARCHIVE.zip::MEMBER) or '-' for stdin.")]
SymbolOpt = Annotated[str | None, typer.Option("--symbol", help="Keep only this symbol.")]
VenueOpt = Annotated[str | None, typer.Option("--venue", help="Instrument registry venue when the data cannot tell "
                                              "(e.g. binance-usdm for a BTCUSDT JSONL file).")]
ReportOpt = Annotated[str | None, typer.Option("--report", help="Also write a JSON report (mmkit.data_convert/v1; '-' = stdout).")]


OnErrorOpt = Annotated[str, typer.Option("--on-error", click_type=click.Choice(["fail", "skip"]),
                                         help="fail: stop at the first bad line (exit 1, E_DATA_* and file:line); skip: count it.")]


def _finish(result: dconv.ConvertResult, report: str | None) -> None:
    if report:
        artifacts.write_json(report, result.artifact())
    sys.stderr.write(result.summary() + "\n")


@app.command("convert")
def convert_(
    inputs: InputsArg,
    out: Annotated[str, typer.Option("--out", help="Output file ('-' = stdout).")],
    src_fmt: Annotated[str | None, typer.Option("--from", click_type=IN_FORMATS, help="Input format (default: detected per file).")] = None,
    to_fmt: Annotated[str | None, typer.Option("--to", click_type=OUT_FORMATS, help="Output format (default: cache for "
                                               "*.mmkc/*.mmc/*.cache, else jsonl).")] = None,
    symbol: SymbolOpt = None, venue: VenueOpt = None, on_error: OnErrorOpt = "fail",
    report: ReportOpt = None,
) -> None:
    """Convert market data to mmkit JSONL or the cache; several inputs are merged in time order.

    \b
    Example: mmkit data convert --from binance --to jsonl fixtures/real/binance/usdm/btcusdt_20240718.gz fixtures/real/binance/usdm/btcusdt_20240719.gz --out artifacts/usdm.jsonl
    """
    dconv.check_out(report)
    result = dconv.convert(inputs, out, src_fmt=src_fmt, to_fmt=to_fmt, symbol=symbol, venue=venue, on_error=on_error, progress=True)
    _finish(result, report)


@app.command("inspect")
def inspect_(
    inputs: InputsArg,
    src_fmt: Annotated[str | None, typer.Option("--from", click_type=IN_FORMATS, help="Input format (default: detected per file).")] = None,
    out: OutOpt = None, symbol: SymbolOpt = None, venue: VenueOpt = None, on_error: OnErrorOpt = "skip",
    depth_bps: Annotated[float, typer.Option("--depth-bps", min=0.0, help="Depth statistics count levels within this many bps of the mid.")] = 10.0,
) -> None:
    """Report events, time span, gaps, crossed books, spread, depth, feed latency and clock skew (mmkit.data_inspect/v1).

    \b
    Example: mmkit data inspect fixtures/real/binance/usdm/btcusdt_20240718.gz fixtures/real/binance/usdm/btcusdt_20240719.gz --out -
    """
    target = resolve_out(out, "data_inspect.json")
    dconv.check_out(target)
    body = dinsp.inspect_files(inputs, fmt=src_fmt, symbol=symbol, venue=venue, on_error=on_error, depth_bps=depth_bps, progress=True)
    artifacts.write_json(target, artifacts.artifact("data_inspect", body, artifacts.build_meta(inputs=dconv.input_records(inputs))))
    sys.stderr.write(dinsp.summary(body) + "\n")


@app.command("slice")
def slice_(
    inputs: InputsArg,
    start: Annotated[str, typer.Option("--from", help="Window start, inclusive: ISO 8601 (UTC unless an offset is given) or integer ns.")],
    end: Annotated[str, typer.Option("--to", help="Window end, exclusive: ISO 8601 or integer ns.")],
    out: Annotated[str, typer.Option("--out", help="Output file ('-' = stdout).")],
    src_fmt: Annotated[str | None, typer.Option("--format", click_type=IN_FORMATS, help="Input format (default: detected).")] = None,
    to_fmt: Annotated[str | None, typer.Option("--to-format", click_type=OUT_FORMATS, help="Output format (default: cache for "
                                               "*.mmkc/*.mmc/*.cache, else jsonl).")] = None,
    snapshot: Annotated[bool, typer.Option("--snapshot", help="Start with a snapshot of each book at --from, so the slice stands alone.")] = False,
    symbol: SymbolOpt = None, venue: VenueOpt = None, on_error: OnErrorOpt = "fail",
    report: ReportOpt = None,
) -> None:
    """Write the events with --from <= ts < --to (exchange time) as mmkit JSONL or a cache.

    \b
    Example: mmkit data slice fixtures/real/binance/usdm/btcusdt_20240719.gz --from 2024-07-19T00:01:00Z --to 2024-07-19T00:02:00Z --snapshot --out artifacts/minute.jsonl
    """
    dconv.check_out(report)
    result = dconv.slice_events(inputs, out, dconv.parse_time(start, "--from"), dconv.parse_time(end, "--to"), src_fmt=src_fmt,
                                to_fmt=to_fmt, symbol=symbol, venue=venue, on_error=on_error, snapshot=snapshot, progress=True)
    _finish(result, report)


@app.command("synth")
def synth_(
    seed: Annotated[int, typer.Option("--seed", help="Seed of the generator; same seed, same bytes.")],
    events: Annotated[int, typer.Option("--events", min=1, help="Number of events to generate.")],
    out: Annotated[str, typer.Option("--out", help="Output file ('-' = stdout).")],
    to_fmt: Annotated[str | None, typer.Option("--to-format", click_type=OUT_FORMATS, help="Output format (default: cache for "
                                               "*.mmkc/*.mmc/*.cache, else jsonl).")] = None,
    levels: Annotated[int, typer.Option("--levels", min=2, help="Book levels per side.")] = 20,
) -> None:
    """Generate SYNTHETIC L2 + trades events (seeded; for benchmarks and tests, not market data).

    \b
    Example: mmkit data synth --seed 7 --events 100000 --out artifacts/synth.jsonl
    """
    tally = synth.write_synth(out, seed, events, to_fmt=to_fmt, params=synth.SynthParams(levels=levels), progress=True)
    sys.stderr.write(f"data synth: {tally.total} synthetic events -> {out} (seed {seed})\n")
