"""RC-Validator: the pre-deploy sanity check (seed "RC-Validator").

It answers "can this box start the bot right now?" before anything trades: the required
environment is set, the config parses and validates, the artifact folders are writable,
the ports the service will bind are free, and optional state files are well-formed.
Each failure is a short stable code (``missing_env:MM_CONFIG_PATH``, ``port_busy:8080``)
that cron mail and dashboards can count, plus a human detail.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmkit import artifacts
from mmkit.config import load_config
from mmkit.errors import ControlFileError, MmkitError

REQUIRED_ENV = ("MM_ENV", "MM_CONFIG_PATH")
OPTIONAL_ARTIFACTS = ("snapshots.json",)


@dataclass(frozen=True, slots=True)
class Check:
    """One check: ``code`` is set when it failed (e.g. ``port_busy:8080``)."""

    name: str
    ok: bool
    detail: str
    code: str | None = None


@dataclass(slots=True)
class PreflightResult:
    checks: list[Check] = field(default_factory=list)
    cfg_hash: str | None = None
    inputs: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        return [c.code for c in self.checks if c.code]

    @property
    def ok(self) -> bool:
        return not self.errors

    def add(self, name: str, ok: bool, detail: str, code: str | None = None) -> None:
        self.checks.append(Check(name, ok, detail, None if ok else code))

    def to_body(self, env: Mapping[str, str]) -> dict[str, Any]:
        return {
            "status": "ok" if self.ok else "failed",
            "env": env.get("MM_ENV", ""),
            "errors": self.errors,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail, "code": c.code} for c in self.checks],
        }


def parse_ports(text: str) -> tuple[list[int], list[str]]:
    """Parse ``MM_PORTS`` (``8080,9090``): valid ports and the tokens that are not ports."""
    ports, bad = [], []
    for token in (t.strip() for t in text.split(",")):
        if not token:
            continue
        if token.isdigit() and 1 <= int(token) <= 65535:
            ports.append(int(token))
        else:
            bad.append(token)
    return ports, bad


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """True if ``host:port`` can be bound now (the service could start on it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def dir_writable(path: Path) -> str | None:
    """None if a file can be created and replaced in ``path`` (created if missing), else why not."""
    try:
        probe = path / ".preflight_probe"
        artifacts.write_bytes(probe, b"ok\n")
        probe.unlink()
    except MmkitError as exc:
        return exc.message
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def run_preflight(env: Mapping[str, str], artifacts_dir: Path) -> PreflightResult:
    """Run every check and collect results; never raises for a failed check."""
    res = PreflightResult()
    for var in REQUIRED_ENV:
        present = bool(env.get(var))
        res.add(f"env:{var}", present, "set" if present else "required environment variable is not set", f"missing_env:{var}")

    ports, bad = parse_ports(env.get("MM_PORTS", ""))
    if bad:
        res.add("env:MM_PORTS", False, f"not port numbers (1-65535): {','.join(bad)}", "bad_env:MM_PORTS")
    for port in ports:
        free = port_free(port)
        res.add(f"port:{port}", free, "free on 127.0.0.1" if free else "already in use on 127.0.0.1", f"port_busy:{port}")

    cfg_path = env.get("MM_CONFIG_PATH")
    if cfg_path:
        res.inputs.append(cfg_path)
        try:
            loaded = load_config(cfg_path, profile=env.get("MM_PROFILE") or None, use_env_profile=False)
        except ControlFileError as exc:
            res.add("config", False, exc.line(), "config_parse")
        except MmkitError as exc:
            code = "config_parse" if exc.code in ("E_CFG_PARSE", "E_CFG_MISSING") else "config_invalid"
            res.add("config", False, exc.line(), code)
        else:
            res.cfg_hash = loaded.cfg_hash
            res.add("config", True, f"valid cfg_hash={loaded.cfg_hash}")

    for folder in (artifacts_dir, artifacts_dir / "runtime"):
        why = dir_writable(folder)
        res.add(f"writable:{folder}", why is None, why or "writable", f"writable_dir:{folder}")

    for name in OPTIONAL_ARTIFACTS:
        path = artifacts_dir / name
        if not path.exists():
            res.add(f"artifact:{name}", True, "absent (optional)")
            continue
        try:
            obj = artifacts.read_control_file(path, "json")
            if not isinstance(obj, dict):
                raise ControlFileError("invalid_structure", str(path), "expected a JSON object")
        except ControlFileError as exc:
            res.add(f"artifact:{name}", False, f"{exc.reason}: {exc.message}", f"bad_artifact:{name}")
        else:
            res.add(f"artifact:{name}", True, "well-formed")
    return res


def preflight_report(env: Mapping[str, str], artifacts_dir: Path) -> tuple[PreflightResult, dict[str, Any]]:
    """Run the checks and build the ``rc_validator`` artifact."""
    res = run_preflight(env, artifacts_dir)
    inputs = [p for p in res.inputs if Path(p).is_file()]
    meta = artifacts.build_meta(cfg_hash=res.cfg_hash, inputs=inputs)
    return res, artifacts.artifact("rc_validator", res.to_body(env), meta)


def summary_line(res: PreflightResult) -> str:
    return "rc_validator: ok" if res.ok else f"rc_validator: failed ({len(res.errors)} errors)"


__all__ = ["Check", "PreflightResult", "run_preflight", "preflight_report", "summary_line", "parse_ports", "port_free"]
