"""Structured, ASCII-only logs on stderr: logfmt by default, JSON lines on request.

Logs are for operators and for grep in cron mail, so one event is one line, every value
is ASCII (anything else is backslash-escaped), secrets are redacted by key name, and the
format is chosen once by the CLI root (``--log-format``, ``-q``).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Any, TextIO

from mmkit.artifacts import canonical_json
from mmkit.clock import utc_now_iso

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}
_SECRET_KEY = re.compile(r"(token|secret|api_key|apikey|password|passphrase|hmac)", re.IGNORECASE)
_BARE = re.compile(r"^[A-Za-z0-9_.:/@+\-,%*]+$")


@dataclass(slots=True)
class LogSettings:
    """Process-wide log settings, set by the CLI root callback."""

    fmt: str = "logfmt"
    level: int = LEVELS["info"]
    stream: TextIO | None = None


SETTINGS = LogSettings()


def configure(fmt: str = "logfmt", quiet: bool = False, stream: TextIO | None = None) -> None:
    if fmt not in ("logfmt", "json"):
        raise ValueError(f"unknown log format {fmt!r}")
    SETTINGS.fmt = fmt
    SETTINGS.level = LEVELS["warning"] if quiet else LEVELS["info"]
    SETTINGS.stream = stream


def to_ascii(text: str) -> str:
    """Backslash-escape anything outside printable ASCII so a log line stays one ASCII line."""
    return text.encode("ascii", "backslashreplace").decode("ascii").replace("\n", "\\n").replace("\r", "\\r")


def redact(key: str, value: Any) -> Any:
    return "****" if _SECRET_KEY.search(key) and value not in (None, "") else value


def _logfmt_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6f}"
    text = to_ascii(str(value))
    if text and _BARE.match(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_line(level: str, event: str, fields: dict[str, Any]) -> str:
    """Render one log event as a single ASCII line (no trailing newline)."""
    clean = {k: redact(k, v) for k, v in fields.items()}
    if SETTINGS.fmt == "json":
        record = {"ts": utc_now_iso(), "level": level, "event": event}
        for key, value in clean.items():
            record[key] = value if isinstance(value, (int, float, bool, type(None))) else to_ascii(str(value))
        return canonical_json(record)
    parts = [f"ts={utc_now_iso()}", f"level={level}", f"event={_logfmt_value(event)}"]
    parts += [f"{to_ascii(k)}={_logfmt_value(v)}" for k, v in clean.items()]
    return " ".join(parts)


def log(level: str, event: str, **fields: Any) -> None:
    if LEVELS[level] < SETTINGS.level:
        return
    stream = SETTINGS.stream or sys.stderr
    stream.write(format_line(level, event, fields) + "\n")
    stream.flush()


def info(event: str, **fields: Any) -> None:
    log("info", event, **fields)


def warning(event: str, **fields: Any) -> None:
    log("warning", event, **fields)


def error(event: str, **fields: Any) -> None:
    log("error", event, **fields)


def debug(event: str, **fields: Any) -> None:
    log("debug", event, **fields)
