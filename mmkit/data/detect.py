"""Which format is this file?  Format detection from the first bytes, lines and the name.

``detect_format(path)`` returns ``binance`` | ``bybit`` | ``tardis`` | ``jsonl`` | ``cache``
or raises ``E_DATA_UNKNOWN_FORMAT`` when nothing matches or the evidence disagrees (then
pass the format explicitly, e.g. ``--format bybit``).  It looks at:

- the first 8 bytes (after .gz/.zip decompression): ``MMKCACHE`` is mmkit's cache;
- a CSV header: Tardis (``exchange,symbol,timestamp,local_timestamp,...``) or Bybit's trade
  history (``timestamp,symbol,side,size,price,...`` / ``id,timestamp,price,volume,side``);
- up to ``SNIFF_LINES`` JSON lines, optionally prefixed with a receive time (``<ns> {...}``):
  mmkit JSONL (``kind``), Binance (combined-stream ``stream``/``data``, ``depthUpdate``/
  ``trade``/``bookTicker`` payloads, a REST ``lastUpdateId`` snapshot) or Bybit v5
  (``topic``; subscribe acks and pongs count for nothing on their own).

``sniff(path)`` also returns the stream identity used by ``readers.open_events`` to tell
the files of one recording (read one after the other) from distinct streams (merged by
time), and the first timestamp, to order a recording's files.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from mmkit.data import io as dio
from mmkit.errors import MmkitError

FORMATS = ("binance", "bybit", "tardis", "jsonl", "cache")
SNIFF_LINES = 50
SNIFF_BYTES = 4 << 20
CACHE_MAGIC = b"MMKCACHE"
E_UNKNOWN_FORMAT = "E_DATA_UNKNOWN_FORMAT"

_PREFIX = re.compile(r"^([0-9]{10,20}) (\{.*)$", re.S)
_EVENT_KINDS = {"book_snapshot", "book_delta", "trade", "quote", "seq_gap"}
_BINANCE_EVENTS = {"depthUpdate", "trade", "aggTrade", "bookTicker"}
_DATE = re.compile(r"[_-]?\d{4}-?\d{2}-?\d{2}")


@dataclass
class Sniff:
    """What the first lines of one input say: format, stream identity, first time."""

    path: str
    fmt: str
    stream: str = ""
    first_time: int | None = None
    stream_lines: Iterable[str] | None = field(default=None, repr=False)  # stdin: lines already read + the rest
    evidence: list[str] = field(default_factory=list)


def _head(path: str) -> tuple[bytes, list[str], Iterator[str] | None]:
    """First bytes and up to SNIFF_LINES non-empty lines; for stdin also the rest of the lines."""
    if path == dio.STDIN:
        fh = dio.open_text(path, newline=None)
        lines = []
        it = iter(fh)
        for line in it:
            lines.append(line)
            if len(lines) >= SNIFF_LINES:
                break
        return b"", lines, it
    with dio.open_binary(path) as raw:
        first = raw.peek(8)[:8] if hasattr(raw, "peek") else b""
        if first[:8] == CACHE_MAGIC:
            return first, [], None
    lines = []
    size = 0
    with dio.reading(dio.display_name(path)), dio.open_text(path) as fh:
        for line in fh:
            if line.strip():
                lines.append(line)
            size += len(line)
            if len(lines) >= SNIFF_LINES or size > SNIFF_BYTES:
                break
    return first, lines, None


def _json(line: str) -> tuple[int | None, Any]:
    text = line.strip()
    recv = None
    m = _PREFIX.match(text)
    if m:
        recv, text = int(m.group(1)), m.group(2)
    if not text.startswith("{"):
        return recv, None
    try:
        return recv, json.loads(text)
    except ValueError:
        return recv, None


def _classify_csv(header: str) -> str | None:
    from mmkit.data.tardis import data_type

    cols = [c.strip() for c in header.lstrip("\ufeff").strip().split(",")]
    if data_type(cols):
        return "tardis"
    if cols[:5] == ["timestamp", "symbol", "side", "size", "price"] or cols[:5] == ["id", "timestamp", "price", "volume", "side"]:
        return "bybit"
    return None


def _binance_market(symbol: str, d: dict[str, Any]) -> str:
    """spot / usdm / coinm from any one Binance message (same rules as the reader)."""
    from mmkit.data.binance import venue_of

    e = d.get("e")
    kind = "depth" if e == "depthUpdate" else "trade" if e in ("trade", "aggTrade") else \
        "quote" if e == "bookTicker" or "B" in d else "snapshot"
    return venue_of(symbol, d, kind)


def _classify_lines(path: str, lines: list[str]) -> Sniff:
    name = os.path.basename(path.replace("\\", "/")).lower()
    votes: dict[str, int] = {}
    evidence: list[str] = []
    first_time: int | None = None
    ids: set[str] = set()
    weak_bybit = False
    nonempty = [ln for ln in lines if ln.strip()]
    if nonempty and not nonempty[0].lstrip("\ufeff").lstrip().startswith(("{", "[")) and not _PREFIX.match(nonempty[0].strip()):
        kind = _classify_csv(nonempty[0])
        if kind is None:
            raise MmkitError(E_UNKNOWN_FORMAT, f"{dio.display_name(path)}: the first line is neither JSON nor a known CSV header "
                                               f"({nonempty[0].strip()[:80]!r}); pass the format explicitly")
        cols = [c.strip() for c in nonempty[0].lstrip("\ufeff").strip().split(",")]
        row = nonempty[1].strip().split(",") if len(nonempty) > 1 else []
        ident = ""
        if kind == "tardis":
            from mmkit.data.tardis import data_type

            if len(row) == len(cols):
                ident = f"{row[0]}:{data_type(cols)}:{row[1]}"
                if row[3].isdigit():
                    first_time = int(row[3]) * 1000
        else:
            i = cols.index("symbol") if "symbol" in cols else -1
            sym = row[i] if 0 <= i < len(row) else _DATE.split(name.upper())[0]
            ident = f"trades:{sym}"
        return Sniff(path, kind, f"{kind}:{ident}" if ident else f"{kind}:{path}", first_time, evidence=[f"csv header ({kind})"])
    for line in nonempty:
        recv, obj = _json(line)
        if not isinstance(obj, dict):
            votes["?"] = votes.get("?", 0) + 1
            continue
        if first_time is None and recv is not None:
            first_time = recv
        if obj.get("kind") in _EVENT_KINDS and "ts" in obj:
            votes["jsonl"] = votes.get("jsonl", 0) + 1
            if first_time is None and isinstance(obj.get("ts"), int):
                first_time = obj["ts"]
            continue
        if isinstance(obj.get("topic"), str):
            votes["bybit"] = votes.get("bybit", 0) + 1
            topic = obj["topic"]
            ids.add(topic.split(".")[-1])
            if first_time is None and isinstance(obj.get("ts"), int):
                first_time = obj["ts"] * 1_000_000
            continue
        if "op" in obj or "ret_msg" in obj or "success" in obj:
            weak_bybit = True
            continue
        data = obj.get("data") if "stream" in obj else obj
        if isinstance(data, dict) and (data.get("e") in _BINANCE_EVENTS or ("lastUpdateId" in data and "bids" in data)
                                       or ({"u", "s", "b", "B", "a", "A"} <= set(data))):
            votes["binance"] = votes.get("binance", 0) + 1
            sym = data.get("s") or data.get("symbol")
            if isinstance(sym, str):
                ids.add(f"{sym}/{_binance_market(sym, data)}")
            if first_time is None and isinstance(data.get("E"), int):
                first_time = data["E"] * 1_000_000
            continue
        if "result" in obj and "id" in obj:  # a Binance subscribe answer
            continue
        votes["?"] = votes.get("?", 0) + 1
    known = {k: v for k, v in votes.items() if k != "?"}
    if not known and weak_bybit:
        known = {"bybit": 1}
    if len(known) != 1:
        what = "no recognizable market-data line" if not known else "lines of several formats (" + ", ".join(sorted(known)) + ")"
        raise MmkitError(E_UNKNOWN_FORMAT, f"{dio.display_name(path)}: {what} in the first {len(nonempty)} lines; "
                                           "pass the format explicitly (binance, bybit, tardis, jsonl, cache)")
    fmt = next(iter(known))
    evidence.append(f"{known[fmt]} {fmt} lines")
    if fmt == "jsonl":
        return Sniff(path, fmt, f"jsonl:{path}", first_time, evidence=evidence)
    if fmt == "binance":
        if not ids:  # only a bare REST snapshot so far: the collector names files after the symbol
            from mmkit.data.binance import symbol_from_name

            ids.add(symbol_from_name(path) or path)
        return Sniff(path, fmt, f"binance:{','.join(sorted(ids))}", first_time, evidence=evidence)
    return Sniff(path, fmt, f"bybit:{','.join(sorted(ids)) or path}", first_time, evidence=evidence)


def sniff(path: str, fmt: str | None = None) -> Sniff:
    """Detect (or take) the format of ``path`` and read its stream identity and first time."""
    if fmt is not None and fmt not in FORMATS:
        raise MmkitError("E_USAGE", f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}", 64)
    if path != dio.STDIN and not os.path.exists(dio.split_member(path)[0]):
        raise MmkitError("E_IO_MISSING", f"{path}: no such file")
    if fmt in ("cache", "jsonl"):
        return Sniff(path, fmt, f"{fmt}:{path}")
    first, lines, rest = _head(path)
    if first[:8] == CACHE_MAGIC:
        if fmt not in (None, "cache"):
            raise MmkitError(E_UNKNOWN_FORMAT, f"{path}: is an mmkit cache file, not {fmt}")
        return Sniff(path, "cache", f"cache:{path}", evidence=["cache magic"])
    stream_lines = itertools.chain(lines, rest) if rest is not None else None
    try:
        found = _classify_lines(path, lines)
    except MmkitError:
        if fmt is None:
            raise
        found = Sniff(path, fmt, f"{fmt}:{path}")
    if fmt is not None and found.fmt != fmt:
        found = Sniff(path, fmt, f"{fmt}:{path}", found.first_time)
    found.stream_lines = stream_lines
    return found


def detect_format(path: str | os.PathLike[str]) -> str:
    """``binance`` | ``bybit`` | ``tardis`` | ``jsonl`` | ``cache``; ``E_DATA_UNKNOWN_FORMAT`` if unsure.

    Reads at most the first ``SNIFF_LINES`` lines (stdin cannot be sniffed twice: use ``sniff``).
    """
    return sniff(os.fspath(path)).fmt
