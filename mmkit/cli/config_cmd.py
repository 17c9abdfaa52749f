"""``mmkit config validate|describe|hash``: check a config and show what it resolves to."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from mmkit import artifacts
from mmkit.cli.options import ConfigOpt
from mmkit.config import LoadedConfig, load_config

app = typer.Typer(help="Validate, describe and hash configs.\n\nExample: mmkit config validate --config config/example.yaml",
                  no_args_is_help=True)

ProfileOpt = Annotated[str | None, typer.Option("--profile", help="Profile name (default: $MM_PROFILE).")]
OverlayOpt = Annotated[list[Path] | None, typer.Option("--overlay", help="Dotted-key overlay YAML, applied in order (repeatable).")]


def _load(config: Path, profile: str | None, overlay: list[Path] | None) -> LoadedConfig:
    return load_config(config, profile=profile, overlays=list(overlay or []))


@app.command()
def validate(config: ConfigOpt, profile: ProfileOpt = None, overlay: OverlayOpt = None,
             out: Annotated[str | None, typer.Option("--out", help="Also write a JSON report ('-' = stdout).")] = None) -> None:
    """Validate a config: every problem is reported at once, exit 1 if any.

    Example: mmkit config validate --config config/example.yaml
    """
    loaded = _load(config, profile, overlay)
    if out:
        body = {"valid": True, "path": loaded.path, "profile": loaded.profile, "overlays": list(loaded.overlays),
                "warnings": list(loaded.warnings), "cfg_hash": loaded.cfg_hash}
        meta = artifacts.build_meta(cfg_hash=loaded.cfg_hash, inputs=[config, *(overlay or [])])
        artifacts.write_json(out, artifacts.artifact("config_validate", body, meta))
    stream = sys.stderr if out == "-" else sys.stdout
    stream.write(f"config: ok cfg_hash={loaded.cfg_hash}\n")


@app.command()
def describe(config: ConfigOpt, profile: ProfileOpt = None, overlay: OverlayOpt = None,
             out: Annotated[str | None, typer.Option("--out", help="Write to a file instead of stdout.")] = None) -> None:
    """Print the resolved config as sorted dotted keys (floats to 6 decimals, secrets masked).

    Example: mmkit config describe --config config/example.yaml
    """
    artifacts.write_text(out or "-", _load(config, profile, overlay).describe())


@app.command("hash")
def hash_(config: ConfigOpt, profile: ProfileOpt = None, overlay: OverlayOpt = None) -> None:
    """Print the cfg_hash: sha256 of the sanitized canonical config (secrets excluded).

    Example: mmkit config hash --config config/example.yaml
    """
    sys.stdout.write(_load(config, profile, overlay).cfg_hash + "\n")
