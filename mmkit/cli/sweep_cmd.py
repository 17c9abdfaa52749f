"""``mmkit sweep run|render``: grid or random parameter sweeps of the backtest."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mmkit import artifacts
from mmkit.cli.options import ConfigOpt, FromOpt, SymbolOpt, VenueOpt, artifacts_dir, resolve_out, status_line
from mmkit.errors import EXIT_ERROR
from mmkit.progress import Progress
from mmkit.research import sweep
from mmkit.research.executors import TrialStore, make_executor

app = typer.Typer(help="Parameter sweeps of the backtest over a grid of config keys.\n\n"
                  "Example: mmkit sweep run --events fixtures/real/binance/usdm/btcusdt_20240718.gz "
                  "--grid fixtures/research/grid_fixed.yaml --config fixtures/research/sweep_config.yaml",
                  no_args_is_help=True)

STORE_NAME = "sweep_trials.jsonl"


@app.command()
def run(
    events: Annotated[list[str], typer.Option("--events", "--ticks", help="Market data file(s), read together (repeatable).")],
    grid: Annotated[str, typer.Option("--grid", help="Grid YAML: dotted config keys -> lists or {min, max}.")],
    config: ConfigOpt,
    method: Annotated[str, typer.Option("--method", help="grid (cartesian product) or random (seeded draws).")] = "grid",
    trials: Annotated[int | None, typer.Option("--trials", help="Random: how many draws. Grid: cap on combinations.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random draws and of every trial's backtest.")] = 0,
    executor: Annotated[str, typer.Option("--executor", help="serial, process, process:N or tcp://HOST:PORT.")] = "process",
    out: Annotated[str | None, typer.Option("--out", help="PARAM_SWEEP.json path or '-' (stdout). Default: <artifacts>/PARAM_SWEEP.json")] = None,
    store: Annotated[str | None, typer.Option("--store", help=f"Trial store (resume file). Default: {STORE_NAME} next to --out.")] = None,
    profile: Annotated[str | None, typer.Option("--profile", help="Config profile (profiles/NAME.yaml); default $MM_PROFILE.", envvar="MM_PROFILE")] = None,
    fmt: FromOpt = None,
    symbol: SymbolOpt = None,
    venue: VenueOpt = None,
) -> None:
    """Run one backtest per grid point; finished trials are stored, so a re-run resumes.

    \b
    Example: mmkit sweep run --events fixtures/real/binance/usdm/btcusdt_20240718.gz --grid fixtures/research/grid_fixed.yaml --config fixtures/research/sweep_config.yaml --executor process:2 --out artifacts/PARAM_SWEEP.json
    """
    target = resolve_out(out, "PARAM_SWEEP.json")
    artifacts.check_output_path(target)
    folder = artifacts_dir() if target == "-" else Path(target).parent
    req = sweep.SweepRequest(tuple(events), str(config), grid, method, trials, seed, profile or None, fmt, symbol, venue)
    plan = sweep.plan_sweep(req)
    runner = make_executor(executor)
    trial_store = TrialStore(store or folder / STORE_NAME)
    with Progress(len(plan.trials), "sweep", unit="trials") as bar:
        bar.advance(len(plan.trials) - sweep.pending(plan, trial_store))
        doc = sweep.run_sweep(plan, runner, trial_store, lambda _res: bar.advance(1))
    artifacts.write_json(target, doc)
    verdict = sweep.status(doc)
    status_line("SWEEP", verdict, stdout_has_json=target == "-")
    if verdict == "FAILED":
        raise typer.Exit(EXIT_ERROR)


@app.command()
def render(
    sweep_file: Annotated[str, typer.Argument(metavar="PARAM_SWEEP.json", help="A sweep artifact, or '-' for stdin.")],
    out: Annotated[str | None, typer.Option("--out", help="Markdown path or '-'. Default: next to the JSON (<artifacts>/PARAM_SWEEP.md for stdin).")] = None,
) -> None:
    """Write the sorted Markdown table of a sweep with SAFE flags.

    \b
    Example: mmkit sweep render artifacts/PARAM_SWEEP.json --out artifacts/PARAM_SWEEP.md
    """
    doc = sweep.read_sweep(sweep_file)
    default = resolve_out(None, "PARAM_SWEEP.md") if sweep_file == "-" else str(Path(sweep_file).with_suffix(".md"))
    artifacts.write_text(out or default, sweep.render_markdown(doc))
