"""``mmkit wf``: walk-forward tuning with out-of-sample gates (logic in research/walkforward.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mmkit.cli.options import ConfigOpt, FromOpt, SymbolOpt, VenueOpt, resolve_out, status_line
from mmkit.errors import EXIT_GATE_FAILED
from mmkit.progress import Progress
from mmkit.research import walkforward as wf
from mmkit.research.executors import TrialStore, make_executor

Num = float | None


def _opt(flag: str, text: str) -> typer.models.OptionInfo:
    return typer.Option(flag, help=text)


def app(
    ticks: Annotated[list[str], _opt("--ticks", "Market data file(s), read together as one recording (repeatable).")],
    config: ConfigOpt,
    grid: Annotated[str | None, _opt("--grid", "Grid YAML: dotted config keys -> lists or {min, max}. Default: the config as is.")] = None,
    method: Annotated[str, _opt("--method", "grid (cartesian product) or random (seeded draws per split).")] = "grid",
    trials: Annotated[int | None, _opt("--trials", "Random: draws per split. Grid: cap on combinations.")] = None,
    seed: Annotated[int, _opt("--seed", "Seed of the random draws and of every backtest; same seed, same bytes.")] = 0,
    executor: Annotated[str, _opt("--executor", "serial, process, process:N or tcp://HOST:PORT.")] = "process",
    out: Annotated[str | None, _opt("--out", "Output folder. Default: <artifacts>/wf")] = None,
    train_days: Annotated[Num, _opt("--train-days", "Train window length in days.")] = None,
    train_hours: Annotated[Num, _opt("--train-hours", "Train window length in hours.")] = None,
    train_minutes: Annotated[Num, _opt("--train-minutes", "Train window length in minutes.")] = None,
    validate_hours: Annotated[Num, _opt("--validate-hours", "Validation window length in hours.")] = None,
    validate_minutes: Annotated[Num, _opt("--validate-minutes", "Validation window length in minutes.")] = None,
    step_hours: Annotated[Num, _opt("--step-hours", "Step between splits in hours (default: the validation length).")] = None,
    step_minutes: Annotated[Num, _opt("--step-minutes", "Step between splits in minutes.")] = None,
    start: Annotated[str | None, _opt("--start", "First instant of the range, ISO 8601 UTC (default: the data's start).")] = None,
    end: Annotated[str | None, _opt("--end", "End of the range, exclusive (default: the data's end).")] = None,
    train: Annotated[int | None, _opt("--train", "Split by events: train window of N events.")] = None,
    test: Annotated[int | None, _opt("--test", "Split by events: validation window of N events (also the step).")] = None,
    lambda_cvar: Annotated[float, _opt("--lambda-cvar", "Weight of |CVaR95| in the objective.")] = 0.2,
    gate_min_hit: Annotated[float, _opt("--gate-min-hit", "Gate: champion hit_rate >= X (0-1).")] = 0.6,
    gate_min_maker: Annotated[float, _opt("--gate-min-maker", "Gate: champion maker_share >= X (0-1).")] = 0.7,
    gate_max_cvar: Annotated[float, _opt("--gate-max-cvar", "Gate: champion cvar95_usd >= -X (USD).")] = 1000.0,
    gate_min_pnl: Annotated[float, _opt("--gate-min-pnl", "Gate: champion net_pnl_usd per window >= X (USD).")] = 100.0,
    min_fills: Annotated[int, _opt("--min-fills", "Skip a split whose validation made fewer fills.")] = 1,
    min_val_minutes: Annotated[float, _opt("--min-val-minutes", "Skip a split whose validation window is shorter.")] = 0.0,
    round_dp: Annotated[int, _opt("--round-dp", "Decimal places of every number in the JSON artifacts.")] = 6,
    fmt: FromOpt = None,
    symbol: SymbolOpt = None,
    venue: VenueOpt = None,
) -> None:
    """Walk-forward tuning: search each train window, validate out of sample, gate the champion.

    Writes split_<i>_best.json, walkforward_summary.json, REPORT.md and champion.json to
    --out, prints WF=PASS|FAIL; a failed gate exits 2.  Trials are stored in
    <out>/trials.jsonl, so a re-run resumes.

    \b
    Example: mmkit wf --ticks fixtures/real/binance/usdm/btcusdt_20240718.gz --config bench/configs/baseline.yaml --grid fixtures/research/wf_grid.yaml --train-minutes 1 --validate-minutes 0.5 --seed 7 --gate-min-hit 0 --gate-min-pnl -1 --out artifacts/wf
    """
    folder = resolve_out(out, "wf")
    req = wf.WfRequest(tuple(ticks), str(config), grid, method, trials, seed, train_days, train_hours, train_minutes,
                       validate_hours, validate_minutes, step_hours, step_minutes, start, end, train, test,
                       lambda_cvar, gate_min_hit, gate_min_maker, gate_max_cvar, gate_min_pnl, min_fills,
                       min_val_minutes, round_dp, folder, fmt, symbol, venue)
    runner = make_executor(executor)
    plan = wf.plan_walkforward(req)
    wf.clear_previous(folder)
    store = TrialStore(Path(folder) / wf.STORE_NAME)
    bars: list[Progress] = []

    def progress(label: str, total: int, done: int):  # noqa: ANN202 - a bar's advance callback
        if bars:
            bars[-1].close()
        bar = Progress(total, f"wf {label}", unit="trials")
        bars.append(bar)
        bar.advance(done)
        return lambda _res: bar.advance(1)

    try:
        outcome = wf.run_walkforward(plan, wf.executor_phase(runner, store, progress))
    finally:
        if bars:
            bars[-1].close()
    wf.write_outputs(outcome, folder)
    status_line("WF", outcome.verdict)
    if outcome.verdict != "PASS":
        raise typer.Exit(EXIT_GATE_FAILED)
