"""Shared option aliases and small output helpers, written once and stacked onto commands."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from mmkit import artifacts

ConfigOpt = Annotated[
    Path,
    typer.Option("--config", "-c", help="YAML config file (see docs/config.md).", envvar="MM_CONFIG_PATH", show_envvar=True),
]
OutOpt = Annotated[
    str | None,
    typer.Option("--out", help="Where to write the JSON artifact ('-' = stdout). Default: under the artifacts dir."),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed for every random choice; same seed, same bytes.")]
FromOpt = Annotated[str | None, typer.Option("--from", help="Input format when detection is ambiguous.")]
SymbolOpt = Annotated[str | None, typer.Option("--symbol", help="Keep one symbol (or name it when the source has none).")]
VenueOpt = Annotated[str | None, typer.Option("--venue", help="Instrument registry venue, e.g. binance-usdm.")]
OutMdOpt = Annotated[str | None, typer.Option("--out-md", help="Markdown report. Default: next to the JSON.")]
TraceOpt = Annotated[Path | None, typer.Option("--trace", help="Folder for fills.jsonl and orders.jsonl.")]


def artifacts_dir() -> Path:
    """The artifacts folder chosen by ``--artifacts-dir`` / ``$ARTIFACTS_DIR`` (default ``artifacts``)."""
    return Path(os.environ.get("ARTIFACTS_DIR") or "artifacts")


def resolve_out(out: str | None, default_name: str) -> str:
    """``--out`` as given, or ``<artifacts dir>/<default_name>``."""
    return out if out else str(artifacts_dir() / default_name)


def status_line(key: str, value: str, stdout_has_json: bool = False) -> None:
    """Print the gate status line ``KEY=VALUE`` (stderr when stdout carries JSON)."""
    stream = sys.stderr if stdout_has_json else sys.stdout
    stream.write(f"{key}={value}\n")
    stream.flush()


def emit_json(out: str, obj: Any) -> None:
    """Write ``obj`` through the one writer to ``out`` (a path or ``-``)."""
    artifacts.write_json(out, obj)
