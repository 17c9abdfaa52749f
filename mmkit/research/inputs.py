"""Reading the research commands' own input files (grids, sweeps, overlays, guard reports).

Every one is a bounded control file read through ``artifacts.read_control_file``; what
differs is only how a refusal is worded: a missing file is ``E_IO_MISSING`` naming what was
expected, and a file that is there but unreadable keeps its ``E_CTRL_*`` code unless the
caller names a more specific one (``E_SWEEP_INVALID`` for a sweep, ...).
"""

from __future__ import annotations

from typing import Any

from mmkit import artifacts
from mmkit.errors import ControlFileError, MmkitError


def read_input(path: str, fmt: str, what: str, invalid_code: str | None = None,
               max_bytes: int = artifacts.CONTROL_FILE_MAX_BYTES) -> Any:
    """Parse ``path`` (``-`` = stdin) as ``fmt``; ``what`` names it in the missing-file error."""
    try:
        return artifacts.read_control_file(path, fmt, max_bytes=max_bytes)
    except ControlFileError as exc:
        if exc.reason == "missing":
            raise MmkitError("E_IO_MISSING", f"{path}: no such {what}") from exc
        if invalid_code is None:
            raise
        raise MmkitError(invalid_code, exc.message) from exc
