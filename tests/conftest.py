"""Shared fixtures: a CLI runner with mmkit's exit codes, frozen metadata, a clean
working folder.  Helpers (schema validation, goldens) live in ``support.py``."""

from __future__ import annotations

from pathlib import Path

import pytest

from support import (  # noqa: F401  (re-exported for tests that import from conftest)
    FIXTURES,
    GOLDEN,
    ROOT,
    SCHEMAS,
    CliResult,
    assert_golden,
    run_cli,
    schema_for,
    validate_artifact,
    validate_file,
)


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    """Deterministic metadata: frozen UTC, fixed git sha and version."""
    monkeypatch.setenv("MM_FREEZE_UTC", "1")
    monkeypatch.setenv("MM_GIT_SHA", "0" * 40)
    monkeypatch.setenv("MM_VERSION", "0.0.0-test")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in a clean temp folder with ARTIFACTS_DIR=artifacts (relative, so paths in meta are stable)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ARTIFACTS_DIR", "artifacts")
    for var in ("MM_PROFILE", "MM_CONFIG_PATH", "MM_ENV", "MM_PORTS", "ADMIN_AUDIT_HMAC_KEY"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path
