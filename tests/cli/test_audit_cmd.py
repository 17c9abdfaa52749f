"""``mmkit audit append|verify`` through the real root command: exit codes, status line,
artifacts (schema-checked), goldens, determinism, and the HMAC key never leaking."""

from __future__ import annotations

import json
from pathlib import Path

from support import assert_golden, run_cli, validate_artifact, validate_file

LOG = "artifacts/audit.jsonl"
SECRET = "golden-hmac-key-do-not-print"


def _append(kind: str, payload: str, *extra: str, input: str | None = None):
    return run_cli("audit", "append", "--audit", LOG, "--kind", kind, "--payload", payload, *extra, input=input)


def _seed_log() -> None:
    for kind, payload in (("GUARD", '{"guard":"position_skew","state":"breach"}'),
                          ("ALLOC", '{"backoff_level":1,"cap":0.5,"delta_raw":0.75}'),
                          ("CANCEL", '{"batch":3,"decision":"allow"}')):
        res = _append(kind, payload)
        assert res.code == 0, res.stderr


def _status(stdout: str) -> str:
    return stdout.rstrip("\n").splitlines()[-1]


def test_append_then_verify_ok_with_default_outputs(workdir):
    res = _append("GUARD", '{"x":1}')
    assert res.code == 0, res.stderr
    entry = json.loads(res.stdout)
    assert (entry["seq"], entry["kind"], entry["payload"], entry["prev"]) == (1, "GUARD", {"x": 1}, "0" * 64)
    assert Path(LOG).read_text() == res.stdout, "append prints exactly the line it wrote"
    ver = run_cli("audit", "verify")  # every default: $ARTIFACTS_DIR/audit.jsonl and reports
    assert ver.code == 0, ver.stderr
    assert _status(ver.stdout) == "AUDIT_VERIFY=OK"
    report = validate_file(workdir / "artifacts" / "AUDIT_CHAIN_VERIFY.json")
    assert (report["status"], report["entries_checked"], report["first_broken_seq"], report["reason"]) == ("OK", 1, None, None)
    assert report["last_hash"] == entry["hash"]
    assert report["meta"]["inputs"][0]["path"] == LOG
    md = (workdir / "artifacts" / "AUDIT_CHAIN_VERIFY.md").read_bytes()
    assert md.endswith(b"\n") and not md.endswith(b"\n\n")
    md.decode("ascii")
    assert b"| entries_checked  | 1 " in md and md.rstrip().endswith(b"AUDIT_VERIFY=OK")


def test_payload_from_stdin(workdir):
    res = _append("ALLOC", "-", input='{"delta_raw": 0.25, "cap": 0.1}\n')
    assert res.code == 0, res.stderr
    assert json.loads(res.stdout)["payload"] == {"cap": 0.1, "delta_raw": 0.25}
    assert run_cli("audit", "verify", "--audit", LOG).code == 0


def test_bad_payload_is_one_error_line_and_exit_1(workdir):
    for payload, stdin in (("{not json", None), ("[1]", None), ('{"a":"caf\u00e9"}', None), ("-", "nope")):
        res = _append("GUARD", payload, input=stdin)
        assert res.code == 1, (payload, res.stdout, res.stderr)
        assert res.last_err.startswith("E_AUDIT_BAD_PAYLOAD: "), res.stderr
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
        assert res.stdout == ""
    assert not Path(LOG).exists() or Path(LOG).read_bytes() == b""


def test_bad_kind_exit_1(workdir):
    res = _append("not a kind", '{"x":1}')
    assert res.code == 1 and res.last_err.startswith("E_AUDIT_BAD_KIND: ")


def test_broken_chain_exit_2_with_reason(workdir):
    _seed_log()
    lines = Path(LOG).read_bytes().splitlines(keepends=True)
    Path(LOG).write_bytes(lines[0] + lines[2])  # delete seq 2
    res = run_cli("audit", "verify", "--audit", LOG, "--out-json", "out/v.json", "--out-md", "out/v.md")
    assert res.code == 2
    assert _status(res.stdout) == "AUDIT_VERIFY=BROKEN"
    report = validate_file("out/v.json")
    assert (report["status"], report["reason"], report["first_broken_seq"], report["found_seq"]) == ("BROKEN", "deleted", 2, 3)
    assert (report["entries_checked"], report["broken_line"]) == (1, 2)
    md = Path("out/v.md").read_text()
    assert "| reason           | deleted" in md and "seq 2 missing" in md


def test_missing_log_exit_1(workdir):
    res = run_cli("audit", "verify", "--audit", "artifacts/none.jsonl")
    assert res.code == 1 and res.last_err.startswith("E_AUDIT_MISSING: artifacts/none.jsonl")
    assert not Path("artifacts/AUDIT_CHAIN_VERIFY.json").exists()


def test_bad_utc_date_is_a_usage_error(workdir):
    _seed_log()
    res = run_cli("audit", "verify", "--audit", LOG, "--utc-date", "31.01.2025")
    assert res.code == 64 and res.last_err.startswith("E_AUDIT_BAD_DATE: ")


def test_out_json_to_stdout_moves_the_status_line_to_stderr(workdir):
    _seed_log()
    res = run_cli("audit", "verify", "--audit", LOG, "--out-json", "-", "--out-md", "artifacts/v.md")
    assert res.code == 0
    report = json.loads(res.stdout)
    validate_artifact(report)
    assert report["entries_checked"] == 3
    assert _status(res.stderr) == "AUDIT_VERIFY=OK"


def test_signed_log_and_the_key_never_leaks(workdir, monkeypatch):
    monkeypatch.setenv("ADMIN_AUDIT_HMAC_KEY", SECRET)
    outputs = [_append("GUARD", '{"x":1}'), _append("GUARD", '{"x":2}')]
    assert all(r.code == 0 for r in outputs)
    assert "sig" in json.loads(outputs[0].stdout)
    outputs.append(run_cli("audit", "verify", "--audit", LOG))
    assert outputs[-1].code == 0
    assert validate_file("artifacts/AUDIT_CHAIN_VERIFY.json")["signed"] is True
    monkeypatch.setenv("ADMIN_AUDIT_HMAC_KEY", "wrong-key")
    outputs.append(run_cli("audit", "verify", "--audit", LOG))
    assert outputs[-1].code == 2
    assert validate_file("artifacts/AUDIT_CHAIN_VERIFY.json")["reason"] == "bad_signature"
    for res in outputs:
        assert SECRET not in res.stdout and SECRET not in res.stderr
    for path in Path("artifacts").rglob("*"):
        assert SECRET.encode() not in path.read_bytes(), path


def test_help_has_runnable_examples(workdir):
    assert "Example: mmkit audit append --audit artifacts/audit.jsonl --kind GUARD --payload '{\"x\":1}'" in run_cli(
        "audit", "append", "--help").stdout
    assert "Example: mmkit audit verify --audit artifacts/audit.jsonl" in run_cli("audit", "verify", "--help").stdout
    assert "verify" in run_cli("audit", "--help").stdout


def _golden_run() -> tuple[bytes, bytes, bytes]:
    _seed_log()
    res = run_cli("audit", "verify", "--audit", LOG, "--utc-date", "1970-01-01",
                  "--out-json", "artifacts/AUDIT_CHAIN_VERIFY.json", "--out-md", "artifacts/AUDIT_CHAIN_VERIFY.md")
    assert res.code == 0, res.stderr
    art = Path("artifacts")
    return (art / "audit.jsonl").read_bytes(), (art / "AUDIT_CHAIN_VERIFY.json").read_bytes(), (art / "AUDIT_CHAIN_VERIFY.md").read_bytes()


def test_golden_verify_report(workdir, frozen, monkeypatch):
    monkeypatch.setenv("ADMIN_AUDIT_HMAC_KEY", SECRET)
    _log, report, md = _golden_run()
    validate_artifact(json.loads(report))
    assert_golden("audit_verify.json", report)
    assert_golden("audit_verify.md", md)


def test_same_run_twice_is_byte_identical(workdir, frozen, monkeypatch, tmp_path):
    monkeypatch.setenv("ADMIN_AUDIT_HMAC_KEY", SECRET)
    runs = []
    for name in ("one", "two"):
        folder = tmp_path / name
        folder.mkdir()
        monkeypatch.chdir(folder)
        runs.append(_golden_run())
    assert runs[0] == runs[1]
