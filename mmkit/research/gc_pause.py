"""The cyclic garbage collector paused around a long engine run.

Why: a backtest keeps one record per order and per fill until its report, so the objects
the collector walks grow with the run, and its passes over them cost about a tenth of a
5M-event synthetic run (5.86 s with the collector, 5.31 s without, on the development
machine).  The engine makes no reference cycles of its own (the whole 5M-event run leaves
11 objects for the collector), so everything it drops is still freed at once by reference
counting; only the collector's bookkeeping is skipped.  ``tests/research/test_gc_pause.py``
checks both: the state is restored (also after an error) and a backtest leaves next to no
cyclic garbage.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """Disable the cyclic collector inside the block, restore its previous state after
    (a block inside another leaves it disabled for the outer one)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
