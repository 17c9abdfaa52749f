"""mmkit.compiled: which compiled fast paths are built and active, and the switch that turns
them off (MMKIT_PURE_PYTHON=1), checked in fresh interpreters as a user would set it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from mmkit import compiled
from mmkit.core import book, engine
from mmkit.data import cache, jsonl

PROBE = "import json, mmkit.compiled as c; print(json.dumps(c.status(), sort_keys=True))"


def status_in_fresh_interpreter(**env: str) -> dict:
    full = {k: v for k, v in os.environ.items() if k != compiled.ENV}
    full.update(env)
    out = subprocess.run([sys.executable, "-c", PROBE], env=full, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_status_reports_what_is_built():
    st = compiled.status()
    assert st["book_levels"]["built"] == (book._compiled_apply_side is not None)
    assert st["jsonl_scanner"]["built"] == jsonl.COMPILED
    assert st["cache_rows"]["built"] == cache.COMPILED
    assert st["engine_loop"]["built"] == (engine._compiled_feed_rows is not None)


@pytest.mark.parametrize("value", ["1", "yes"])
def test_the_environment_turns_every_compiled_path_off(value):
    st = status_in_fresh_interpreter(MMKIT_PURE_PYTHON=value)
    assert not any(st[name]["active"] for name in ("book_levels", "engine_loop", "cache_rows", "jsonl_scanner"))
    assert st["book_levels"]["built"] == (book._compiled_apply_side is not None)


@pytest.mark.parametrize("value", [None, "", "0"])
def test_built_paths_are_active_by_default(value):
    st = status_in_fresh_interpreter(**({} if value is None else {"MMKIT_PURE_PYTHON": value}))
    for name in ("book_levels", "engine_loop", "cache_rows", "jsonl_scanner"):
        assert st[name]["active"] == st[name]["built"]
        if os.environ.get("MMKIT_REQUIRE_COMPILED") == "1":
            assert st[name]["active"], name
