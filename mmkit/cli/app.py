"""The root ``mmkit`` command: global options, command registration, exit-code mapping.

Exit codes are one contract for every command (DESIGN.md section 3): 0 ok, 1 error with
``E_<AREA>_<WHAT>: message`` as the last stderr line, 2 a gate failed, 64 usage error
(Click's own usage errors included), 130 interrupted.  The mapping lives in
``MmkitGroup.main`` so the console script and ``CliRunner`` behave identically.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from typer.core import TyperGroup

from mmkit import __version__, log
from mmkit.errors import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE, MmkitError


def _fail(code: str, message: str, exit_code: int) -> int:
    line = f"{code}: {message}"
    sys.stderr.write(log.to_ascii(" ".join(line.split())) + "\n")
    sys.stderr.flush()
    return exit_code


class MmkitGroup(TyperGroup):
    """A Typer group whose ``main`` maps every outcome to mmkit's exit codes."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:  # noqa: D102
        try:
            rv = super().main(args=args, prog_name=prog_name or "mmkit", complete_var=complete_var,
                              standalone_mode=False, **extra)
            code = rv if isinstance(rv, int) else 0
            if code == EXIT_INTERRUPTED:  # Typer turns Ctrl-C into a silent Exit(130)
                _fail("E_INTERRUPTED", "interrupted; no partial artifact was written", EXIT_INTERRUPTED)
        except click.exceptions.NoArgsIsHelpError as exc:
            sys.stdout.write(exc.ctx.get_help() + "\n")
            code = EXIT_USAGE
        except click.UsageError as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            code = _fail("E_USAGE", exc.format_message() + hint, EXIT_USAGE)
        except click.exceptions.Abort:
            code = _fail("E_INTERRUPTED", "interrupted; no partial artifact was written", EXIT_INTERRUPTED)
        except click.ClickException as exc:
            code = _fail("E_USAGE", exc.format_message(), EXIT_USAGE)
        except MmkitError as exc:
            if os.environ.get("MM_DEBUG") == "1":
                traceback.print_exc()
            sys.stderr.write(exc.line() + "\n")
            code = exc.exit_code
        except KeyboardInterrupt:
            code = _fail("E_INTERRUPTED", "interrupted; no partial artifact was written", EXIT_INTERRUPTED)
        except BrokenPipeError:
            code = 0  # a reader such as `head` closed the pipe: not our failure
        except OSError as exc:
            if os.environ.get("MM_DEBUG") == "1":
                traceback.print_exc()
            code = _fail("E_IO", f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""), EXIT_ERROR)
        except Exception as exc:  # noqa: BLE001 - the one place internal errors become exit 1
            if os.environ.get("MM_DEBUG") == "1":
                traceback.print_exc()
            code = _fail("E_INTERNAL", f"{type(exc).__name__}: {exc} (re-run with MM_DEBUG=1 for a traceback)", EXIT_ERROR)
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    cls=MmkitGroup,
    name="mmkit",
    help="mmkit: run and validate a crypto market-making business.\n\n"
    "Example: mmkit config validate --config config/example.yaml",
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=False,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from mmkit import compiled

        paths = " ".join(f"{name}={'on' if st['active'] else 'built-off' if st['built'] else 'pure'}"
                         for name, st in compiled.status().items())
        sys.stdout.write(f"mmkit {__version__}\ncompiled: {paths}\n")
        raise typer.Exit(0)


@app.callback()
def root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
    artifacts_dir: Annotated[
        Path | None,
        typer.Option("--artifacts-dir", help="Folder for default outputs (default: $ARTIFACTS_DIR or ./artifacts)."),
    ] = None,
    log_format: Annotated[str, typer.Option("--log-format", help="Log line format on stderr: logfmt or json.")] = "logfmt",
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Only warnings and errors on stderr.")] = False,
) -> None:
    """Global options apply to every command."""
    if log_format not in ("logfmt", "json"):
        raise click.BadParameter("must be 'logfmt' or 'json'", param_hint="--log-format")
    log.configure(log_format, quiet)
    if artifacts_dir is not None:
        os.environ["ARTIFACTS_DIR"] = str(artifacts_dir)


def _register() -> None:
    """Add every working command; a command that does not work yet is not listed here."""
    import importlib

    for module_name, name in COMMANDS:
        module = importlib.import_module(f"mmkit.cli.{module_name}")
        if isinstance(module.app, typer.Typer):
            app.add_typer(module.app, name=name)
        else:  # a single command: a function with its help in the docstring
            app.command(name)(module.app)


# (module under mmkit/cli, command name): one line per working command.
COMMANDS: list[tuple[str, str]] = [
    ("config_cmd", "config"),
    ("preflight_cmd", "preflight"),
    ("audit_cmd", "audit"),
    ("data_cmd", "data"),
    ("backtest_cmd", "backtest"),
    ("sim_cmd", "sim"),
    ("run_cmd", "run"),
    ("sweep_cmd", "sweep"),
    ("tune_cmd", "tune"),
    ("wf_cmd", "wf"),
]


_register()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    app(args=argv, prog_name="mmkit")
