"""Typed errors with stable codes and the process exit codes they map to.

Every failure a user can cause surfaces as one ``MmkitError``: a stable machine code
(``E_<AREA>_<WHAT>``), a one-line human message that says how to fix it, and the exit code
the CLI returns.  Codes are an API: scripts grep them, so they are never renamed; every
code is listed in ``docs/errors.md`` (a test enforces that).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_GATE_FAILED = 2
EXIT_USAGE = 64
EXIT_INTERRUPTED = 130


class MmkitError(Exception):
    """An expected failure: bad input, I/O trouble, a refused operation.

    ``str(err)`` is the one line the CLI prints last on stderr: ``CODE: message``.
    """

    def __init__(self, code: str, message: str, exit_code: int = EXIT_ERROR) -> None:
        if not code.startswith("E_"):
            raise ValueError(f"error codes start with E_: {code!r}")
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.exit_code = exit_code

    def line(self) -> str:
        """The single ASCII line shown to the user."""
        text = f"{self.code}: {self.message}"
        return " ".join(text.encode("ascii", "backslashreplace").decode("ascii").split())


class ControlFileError(MmkitError):
    """A control file (config, thresholds, snapshot, overlay) was refused.

    ``reason`` is the short, stable reason of DESIGN.md section 4 (``file_too_large``,
    ``non_ascii``, ``invalid_structure``, ``bad_checksum``, ``missing``), so callers can count
    refusals by reason (e.g. ``snapshot_integrity_fail_total``) without parsing messages.
    """

    def __init__(self, reason: str, path: str, detail: str) -> None:
        super().__init__(f"E_CTRL_{reason.upper()}", f"{path}: {detail}")
        self.reason = reason
        self.path = path


class ConfigError(MmkitError):
    """One or more config problems, all reported at once.

    ``problems`` holds ``(code, dotted_path, message)`` triples; the headline code is the
    first problem's, and the message lists every problem on one line separated by ``; ``.
    """

    def __init__(self, problems: list[tuple[str, str, str]], source: str = "") -> None:
        if not problems:
            raise ValueError("ConfigError needs at least one problem")
        self.problems = list(problems)
        prefix = f"{source}: " if source else ""
        if len(problems) == 1:
            _, path, msg = problems[0]
            body = f"{path}: {msg}" if path else msg
        else:
            body = f"{len(problems)} problems: " + "; ".join(
                f"{code} {path}: {msg}" if path else f"{code} {msg}" for code, path, msg in problems
            )
        super().__init__(problems[0][0], prefix + body)
