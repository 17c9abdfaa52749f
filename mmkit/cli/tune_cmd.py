"""``mmkit tune apply|report|rollback|baseline-lock``: the tuning loop around sweeps."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mmkit import artifacts
from mmkit.cli.options import ConfigOpt, FromOpt, SymbolOpt, VenueOpt, artifacts_dir, resolve_out, status_line
from mmkit.errors import EXIT_GATE_FAILED
from mmkit.progress import Progress
from mmkit.research import tune
from mmkit.research.executors import TrialStore, make_executor

app = typer.Typer(help="Turn a sweep into a config overlay, judge it, roll it back, lock the baseline.\n\n"
                  "Example: mmkit tune apply --sweep artifacts/PARAM_SWEEP.json", no_args_is_help=True)

OverlayOpt = Annotated[str | None, typer.Option("--overlay", help=f"Overlay YAML. Default: <artifacts>/{tune.OVERLAY_NAME}")]
PrevOpt = Annotated[str | None, typer.Option("--prev", help=f"Previous overlay. Default: <artifacts>/{tune.PREV_NAME}")]
ProfileOpt = Annotated[str | None, typer.Option("--profile", help="Config profile (profiles/NAME.yaml).")]


@app.command()
def apply(
    sweep_file: Annotated[str, typer.Option("--sweep", help="PARAM_SWEEP.json, a wf champion.json, or '-' (stdin).")],
    config: Annotated[str | None, typer.Option("--config", "-c", help="Validate against this config. Default: the sweep's base config.")] = None,
    rank: Annotated[int, typer.Option("--rank", help="Which of top3_by_net_bps_safe (1 = best).")] = 1,
    out: Annotated[str | None, typer.Option("--out", help=f"Overlay to write. Default: <artifacts>/{tune.OVERLAY_NAME}")] = None,
    prev: PrevOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """Write overlay_profile.yaml from the best SAFE sweep trial (or a passing wf champion), keeping the old one as overlay_prev.yaml.

    \b
    Example: mmkit sweep run --events fixtures/real/binance/usdm/btcusdt_20240718.gz --grid fixtures/research/grid_fixed.yaml --config fixtures/research/sweep_config.yaml --out - | mmkit tune apply --sweep -
    """
    doc = tune.read_source(sweep_file)
    sha = artifacts.sha256_bytes(artifacts.canonical_bytes(doc))
    done = tune.apply_from_sweep(doc, sha, "stdin" if sweep_file == "-" else sweep_file,
                                 out or resolve_out(None, tune.OVERLAY_NAME), prev or resolve_out(None, tune.PREV_NAME),
                                 config, rank, profile)
    params = " ".join(f"{k}={artifacts.canonical_json(v)}" for k, v in sorted(done.overlay.items()))
    typer.echo(f"overlay: {done.out} trial={done.trial_id} {params}" + (f" prev={done.prev}" if done.prev else ""))
    status_line("TUNE_APPLY", "OK" if done.changed else "UNCHANGED")


@app.command()
def report(
    config: ConfigOpt,
    events: Annotated[list[str], typer.Option("--events", "--ticks", help="Market data file(s), read together (repeatable).")],
    overlay: OverlayOpt = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of both backtests.")] = 0,
    executor: Annotated[str, typer.Option("--executor", help="serial, process, process:N or tcp://HOST:PORT.")] = "process",
    out: Annotated[str | None, typer.Option("--out", help="TUNING_REPORT.json path or '-'. Default: <artifacts>/TUNING_REPORT.json")] = None,
    out_md: Annotated[str | None, typer.Option("--out-md", help="Markdown. Default: next to the JSON.")] = None,
    profile: ProfileOpt = None,
    fmt: FromOpt = None,
    symbol: SymbolOpt = None,
    venue: VenueOpt = None,
) -> None:
    """Backtest the config before and after the overlay; TUNING_REPORT.{json,md}; exit 2 on FAIL.

    \b
    Example: mmkit tune report --config fixtures/research/sweep_config.yaml --events fixtures/real/binance/usdm/btcusdt_20240718.gz --overlay artifacts/overlay_profile.yaml
    """
    target = resolve_out(out, "TUNING_REPORT.json")
    artifacts.check_output_path(target)
    folder = artifacts_dir() if target == "-" else Path(target).parent
    req = tune.ReportRequest(str(config), overlay or resolve_out(None, tune.OVERLAY_NAME), tuple(events), seed, profile,
                             fmt, symbol, venue)
    with Progress(2, "tune report", unit="backtests") as bar:
        doc = tune.tuning_report(req, make_executor(executor), TrialStore(folder / "tune_trials.jsonl"),
                                 lambda _res: bar.advance(1))
    md = out_md or (str(Path(target).with_suffix(".md")) if target != "-" else resolve_out(None, "TUNING_REPORT.md"))
    artifacts.write_text(md, tune.render_report_markdown(doc))
    artifacts.write_json(target, doc)
    status_line("TUNE_REPORT", doc["verdict"], stdout_has_json=target == "-")
    if doc["verdict"] != "PASS":
        raise typer.Exit(EXIT_GATE_FAILED)


@app.command()
def rollback(
    guard: Annotated[list[str], typer.Option("--guard", help="Drift/regression guard report JSON (repeatable).")],
    overlay: OverlayOpt = None,
    prev: PrevOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would happen; change nothing.")] = False,
    out: Annotated[str | None, typer.Option("--out", help="AUTO_ROLLBACK.json path or '-'. Default: <artifacts>/AUTO_ROLLBACK.json")] = None,
) -> None:
    """Restore overlay_prev.yaml when any guard report says FAIL; write AUTO_ROLLBACK.json.

    \b
    Example: mmkit tune rollback --guard artifacts/TUNING_REPORT.json
    """
    target = resolve_out(out, "AUTO_ROLLBACK.json")
    artifacts.check_output_path(target)
    doc = tune.rollback(guard, overlay or resolve_out(None, tune.OVERLAY_NAME), prev or resolve_out(None, tune.PREV_NAME),
                        dry_run)
    artifacts.write_json(target, doc)
    status_line("AUTO_ROLLBACK", doc["action"].upper(), stdout_has_json=target == "-")


@app.command("baseline-lock")
def baseline_lock(
    config: ConfigOpt,
    overlay: Annotated[list[str] | None, typer.Option("--overlay", help="Overlay files to record. Default: overlay_profile.yaml and overlay_prev.yaml in the artifacts dir.")] = None,
    out: Annotated[str | None, typer.Option("--out", help="BASELINE_LOCK.json path or '-'. Default: <artifacts>/BASELINE_LOCK.json")] = None,
    profile: ProfileOpt = None,
) -> None:
    """Record the config (describe, sanitized sha256), the overlays, mmkit's files and the git sha.

    \b
    Example: mmkit tune baseline-lock --config fixtures/research/sweep_config.yaml --out artifacts/BASELINE_LOCK.json
    """
    target = resolve_out(out, "BASELINE_LOCK.json")
    artifacts.check_output_path(target)
    overlays = overlay or [resolve_out(None, tune.OVERLAY_NAME), resolve_out(None, tune.PREV_NAME)]
    artifacts.write_json(target, tune.baseline_lock(str(config), overlays, profile))
