"""``mmkit run``: the live engine on the replay venue (paper fills on recorded data), with
its metrics, health checks and admin API; stops fail-safe on SIGTERM/SIGINT or --duration."""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated, Any

import typer

from mmkit.cli.options import ConfigOpt, artifacts_dir, status_line
from mmkit.config import load_config


def _started(service: Any) -> None:
    url = service.metrics_url
    sys.stdout.write(f"metrics: {url}\n" if url else "metrics: off (--no-http)\n")
    sys.stdout.flush()


def app(
    config: ConfigOpt,
    venue: Annotated[str | None, typer.Option("--venue", help="Execution venue: replay (default; paper fills on recorded data).")] = None,
    data: Annotated[list[str] | None, typer.Option("--data", help="Recording(s) to replay, any supported format (default: the bundled BTCUSDT recording).")] = None,
    speed: Annotated[str, typer.Option("--speed", help="Replay pace: 1 (real time), 10, or max.")] = "1",
    loop: Annotated[bool, typer.Option("--loop", help="Replay the data again and again (times shifted so they keep increasing).")] = False,
    duration: Annotated[float | None, typer.Option("--duration", help="Stop (fail-safe) after this many seconds.", min=0.0)] = None,
    host: Annotated[str, typer.Option("--host", help="HTTP bind address (metrics, health, admin API).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="HTTP port (0 = any free port).", min=0, max=65535)] = 8080,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the fill simulator's random draws.")] = 0,
    fmt: Annotated[str | None, typer.Option("--from", help="Input format of --data when detection is ambiguous.")] = None,
    no_http: Annotated[bool, typer.Option("--no-http", help="Run without the HTTP surface.")] = False,
) -> None:
    """Run the live engine until SIGTERM/SIGINT, --duration or the end of the data; then cancel every order and write RUN_SUMMARY.json.

    \b
    Example: mmkit run --config config/example.yaml --speed 10 --duration 60 --port 8080
    """
    from mmkit.live.service import LiveService, RunOptions  # the service stack loads only for `run`
    from mmkit.venues.replay import parse_speed

    options = RunOptions(data=tuple(data or ()), venue=venue, speed=parse_speed(speed), loop=loop, duration_s=duration,
                         host=host, port=port, seed=seed, fmt=fmt, http=not no_http, signals=True)
    service = LiveService(load_config(config), options, artifacts_dir())
    summary = asyncio.run(service.run(on_started=_started))
    status_line("RUN", f"OK open_orders={summary['open_orders']} fills={summary['fills']} "
                       f"events={summary['events']} reason={summary['exit_reason']}")
