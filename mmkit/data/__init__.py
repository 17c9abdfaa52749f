"""The data layer: files in, normalized ``core.events`` out (and back).

Readers stream recorded market data (mmkit JSONL here; exchange formats beside it) into
the integer-tick events of ``mmkit.core.events``, resolving each symbol's ``Instrument``
from the registry (``data/instruments.py``); writers turn events back into mmkit JSONL or
the columnar binary cache (``data/cache.py``) the backtester loads.  ``data/io.py`` opens
plain, ``.gz`` and ``.zip`` inputs and stdin alike, streaming in constant memory.

It may import ``mmkit.core``, ``mmkit.errors``, ``mmkit.artifacts`` (every file it writes
goes through the artifact writer) and ``mmkit.log``; never ``mmkit.cli`` or the
orchestration layers.  Failures are ``MmkitError``s with stable ``E_DATA_*``/``E_CACHE_*``
codes and a message that says where (``file:line``) and how to fix it.
"""
