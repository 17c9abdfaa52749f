"""Test helpers shared by every test module: import them with ``from support import ...``."""

from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
GOLDEN = ROOT / "golden"
SCHEMAS = ROOT / "schemas"


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    @property
    def last_err(self) -> str:
        lines = [ln for ln in self.stderr.splitlines() if ln.strip()]
        return lines[-1] if lines else ""


def run_cli(*args: str, input: str | bytes | None = None, env: dict[str, str] | None = None) -> CliResult:
    """Invoke the real ``mmkit`` root command in-process and return code/stdout/stderr."""
    from mmkit.cli.app import app

    runner = CliRunner()
    res = runner.invoke(app, list(args), input=input, env=env, catch_exceptions=False)
    return CliResult(res.exit_code, res.stdout, res.stderr)




_REGISTRY: Any = None


def _registry() -> Any:
    """All schemas under ``schemas/`` keyed by their ``$id`` so ``$ref`` between them resolves."""
    global _REGISTRY
    if _REGISTRY is None:
        from referencing import Registry, Resource

        resources = []
        for path in sorted(SCHEMAS.glob("*.json")):
            doc = json.loads(path.read_text())
            if "$id" in doc:
                resources.append((doc["$id"], Resource.from_contents(doc)))
        _REGISTRY = Registry().with_resources(resources)
    return _REGISTRY


def schema_for(schema_id: str) -> Any:
    """Load ``schemas/<kind>.schema.json`` for an id like ``mmkit.<kind>/v1``."""
    kind = schema_id.split(".", 1)[1].split("/", 1)[0]
    path = SCHEMAS / f"{kind}.schema.json"
    assert path.exists(), f"no schema file {path} for artifact kind {schema_id}"
    return json.loads(path.read_text())


def validate_artifact(obj: Any) -> None:
    """Validate a JSON artifact against the schema named by its ``schema`` field."""
    import jsonschema

    assert isinstance(obj, dict) and "schema" in obj, f"artifact has no 'schema' field: {str(obj)[:200]}"
    schema = schema_for(obj["schema"])
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema, registry=_registry())
    errors = sorted(validator.iter_errors(obj), key=lambda e: list(e.path))
    assert not errors, "schema violations:\n" + "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:10])


def validate_file(path: Path | str) -> Any:
    obj = json.loads(Path(path).read_text())
    validate_artifact(obj)
    return obj


def assert_golden(name: str, data: bytes | str) -> None:
    """Compare bytes with ``golden/<name>``; ``MMKIT_UPDATE_GOLDEN=1`` rewrites the golden."""
    blob = data.encode("ascii") if isinstance(data, str) else data
    path = GOLDEN / name
    if os.environ.get("MMKIT_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(blob)
    assert path.exists(), f"golden file {path} missing; run with MMKIT_UPDATE_GOLDEN=1 once and review it"
    expected = path.read_bytes()
    if expected != blob:
        diff = "\n".join(
            difflib.unified_diff(
                expected.decode("ascii", "replace").splitlines(),
                blob.decode("ascii", "replace").splitlines(),
                "golden/" + name,
                "actual",
                lineterm="",
                n=1,
            )
        )
        raise AssertionError(f"output differs from golden/{name}:\n{diff[:4000]}")
