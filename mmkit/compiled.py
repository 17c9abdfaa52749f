"""Which compiled fast paths are built and active.

mmkit has five optional C modules, built by ``setup.py`` when a C compiler is present:
the JSONL reader's scanner (``mmkit.data._jsonlscan``), the inner loop of
``L2Book.apply_levels`` (``mmkit.core._levels``), the cache's row -> event builder
(``mmkit.data._cacheiter``) and the engine loop over cache rows
(``mmkit.core._fastfeed``, ``Engine.feed_rows``) with the native book it runs on
(``mmkit.core._nbook``, ``NativeL2Book``; ``engine_loop`` below counts as built when both
are).  Each has a pure-Python twin with the same results, which is
what runs when a module is not built or when the environment sets ``MMKIT_PURE_PYTHON=1``
(read when ``mmkit`` is imported for the book and the engine loop; per reader or
iteration for the others).  ``status()`` says what is in use (docs/data.md shows the one-liner).
"""

from __future__ import annotations

import os

ENV = "MMKIT_PURE_PYTHON"


def pure_python_forced() -> bool:
    """True when ``MMKIT_PURE_PYTHON`` is set to anything but empty or ``0``."""
    return os.environ.get(ENV, "") not in ("", "0")


def apply_environment() -> None:
    """Switch the book's and the engine's compiled loops off when the environment forces
    pure Python."""
    from mmkit.core import book, engine

    book.use_compiled(not pure_python_forced())
    engine.use_compiled(not pure_python_forced())


def status() -> dict[str, dict[str, bool]]:
    """``{module: {"built": ..., "active": ...}}`` for each compiled fast path."""
    from mmkit.core import book, engine
    from mmkit.data import cache, jsonl

    forced = pure_python_forced()
    return {
        "book_levels": {"built": book._compiled_apply_side is not None, "active": book._apply_side is not None},
        "engine_loop": {"built": engine._compiled_feed_rows is not None, "active": engine._feed_rows is not None},
        "cache_rows": {"built": cache.COMPILED, "active": cache.COMPILED and not forced},
        "jsonl_scanner": {"built": jsonl.COMPILED, "active": jsonl.COMPILED and not forced},
    }
