"""``mmkit preflight``: the RC-Validator gate before a deploy."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from mmkit import artifacts
from mmkit.cli.options import artifacts_dir, resolve_out
from mmkit.errors import EXIT_GATE_FAILED
from mmkit.ops.preflight import preflight_report, summary_line


def app(
    out: Annotated[str | None, typer.Option("--out", help="Report path ('-' = stdout). Default: <artifacts>/rc_validator.json")] = None,
) -> None:
    """Pre-deploy sanity: env (MM_ENV, MM_CONFIG_PATH, MM_PORTS), config, writable dirs, free ports, snapshots.

    Writes rc_validator.json, prints 'rc_validator: ok' or 'rc_validator: failed (N errors)'; exit 0 or 2.

    Example: MM_ENV=dev MM_CONFIG_PATH=config/example.yaml MM_PORTS=8080 mmkit preflight
    """
    res, report = preflight_report(os.environ, artifacts_dir())
    target = resolve_out(out, "rc_validator.json")
    artifacts.write_json(target, report)
    stream = sys.stderr if target == "-" else sys.stdout
    stream.write(summary_line(res) + "\n")
    if not res.ok:
        raise typer.Exit(EXIT_GATE_FAILED)
