"""``mmkit audit append|verify``: the hash-chained audit log (docs/audit.md)."""

from __future__ import annotations

from typing import Annotated

import click
import typer

from mmkit import artifacts, audit
from mmkit.cli.options import artifacts_dir, resolve_out, status_line
from mmkit.errors import EXIT_GATE_FAILED

app = typer.Typer(help="Append to and verify the hash-chained audit log.\n\n"
                  "Example: mmkit audit verify --audit artifacts/audit.jsonl", no_args_is_help=True)

AuditOpt = Annotated[str | None, typer.Option("--audit", help="Audit log (JSONL). Default: $ARTIFACTS_DIR/audit.jsonl.")]


def _log(path: str | None) -> str:
    return path or str(artifacts_dir() / audit.DEFAULT_LOG_NAME)


@app.command()
def append(
    kind: Annotated[str, typer.Option("--kind", help="Entry kind, e.g. GUARD, ALLOC, CANCEL, admin.rotate.")],
    payload: Annotated[str, typer.Option("--payload", help="A JSON object (ASCII), or '-' to read it from stdin.")],
    audit_path: AuditOpt = None,
) -> None:
    """Append one entry (HMAC-signed when ADMIN_AUDIT_HMAC_KEY is set) and print it as one JSON line.

    \b
    Example: mmkit audit append --audit artifacts/audit.jsonl --kind GUARD --payload '{"x":1}'
    """
    raw = click.get_binary_stream("stdin").read(audit.MAX_PAYLOAD_BYTES + 1) if payload == "-" else payload
    entry = audit.AuditLog(_log(audit_path)).append(kind, audit.parse_payload(raw))
    artifacts.write_json("-", entry)


@app.command()
def verify(
    audit_path: AuditOpt = None,
    utc_date: Annotated[str | None, typer.Option("--utc-date", help="Report only this UTC day (YYYY-MM-DD); "
                                                 "the chain is still verified from seq 1.")] = None,
    out_json: Annotated[str | None, typer.Option("--out-json", help="JSON report ('-' = stdout). "
                                                 "Default: $ARTIFACTS_DIR/AUDIT_CHAIN_VERIFY.json.")] = None,
    out_md: Annotated[str | None, typer.Option("--out-md", help="Markdown report. "
                                               "Default: $ARTIFACTS_DIR/AUDIT_CHAIN_VERIFY.md.")] = None,
    deep: Annotated[bool, typer.Option("--deep", help="Parse and re-encode every line strictly (slower).")] = False,
) -> None:
    """Verify the chain; print AUDIT_VERIFY=OK|BROKEN last; exit 0 OK, 2 BROKEN, 1 error.

    \b
    Example: mmkit audit verify --audit artifacts/audit.jsonl --utc-date 2025-01-31 --out-json artifacts/AUDIT_CHAIN_VERIFY.json --out-md artifacts/AUDIT_CHAIN_VERIFY.md
    """
    path = _log(audit_path)
    result = audit.verify(path, utc_date=utc_date, deep=deep)
    report = artifacts.artifact("audit_verify", result.to_body(path), artifacts.build_meta(inputs=[path]))
    json_out = resolve_out(out_json, "AUDIT_CHAIN_VERIFY.json")
    artifacts.write_json(json_out, report)
    artifacts.write_text(resolve_out(out_md, "AUDIT_CHAIN_VERIFY.md"), audit.render_markdown(report))
    status_line("AUDIT_VERIFY", result.status, stdout_has_json=json_out == "-")
    if not result.ok:
        raise typer.Exit(EXIT_GATE_FAILED)
