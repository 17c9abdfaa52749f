"""THE artifact writer and the bounded readers of control files.

Every byte mmkit leaves on disk goes through here, so three promises hold everywhere:
the bytes are deterministic (canonical ASCII JSON), a crash never leaves a torn file
(temp file -> fsync -> rename -> fsync(dir)), and appends are whole fsynced lines.
Control files (configs, thresholds, snapshots, overlays) are read with a size cap and an
ASCII check so a corrupt or hostile file is refused with a stable reason instead of
half-parsed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO

from mmkit import __version__
from mmkit.clock import utc_now_iso
from mmkit.errors import ControlFileError, MmkitError

CONTROL_FILE_MAX_BYTES = 1 << 20
STDIO = "-"


# ----------------------------------------------------------------------------- encoding
def canonical_json(obj: Any) -> str:
    """The one JSON encoding: ASCII, sorted keys, compact separators, no NaN/inf."""
    try:
        return json.dumps(obj, ensure_ascii=True, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except ValueError as exc:  # NaN / inf
        raise MmkitError("E_ART_NON_FINITE", f"refusing to write a non-finite number ({exc}); fix the computation that produced it") from exc
    except TypeError as exc:
        raise MmkitError("E_ART_NOT_SERIALIZABLE", f"value is not JSON-serializable: {exc}") from exc


def canonical_bytes(obj: Any) -> bytes:
    """Canonical JSON plus a trailing LF, as bytes: the content of every JSON artifact."""
    return (canonical_json(obj) + "\n").encode("ascii")


def parse_json(text: str | bytes, where: str = "<json>") -> Any:
    """Parse JSON strictly (NaN/Infinity literals refused), mapping errors to E_DATA_BAD_JSON."""

    def _refuse(token: str) -> float:
        raise ValueError(f"non-finite literal {token}")

    try:
        return json.loads(text, parse_constant=_refuse)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MmkitError("E_DATA_BAD_JSON", f"{where}: invalid JSON ({exc})") from exc


def is_finite_tree(obj: Any) -> bool:
    """True if no float anywhere in ``obj`` is NaN or infinite."""
    if isinstance(obj, float):
        return math.isfinite(obj)
    if isinstance(obj, Mapping):
        return all(is_finite_tree(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return all(is_finite_tree(v) for v in obj)
    return True


# ----------------------------------------------------------------------------- writing
def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def check_output_path(path: str | os.PathLike[str] | None) -> None:
    """Refuse an output that exists but is not a regular file (a folder, ``/dev/null``, a
    FIFO): the atomic writer replaces its target by rename, which would swap a device for a
    plain file when run as root.  ``-`` (stdout) is always fine.  Commands may call this
    before any work; the writers call it too."""
    if path is None or str(path) == STDIO:
        return
    name = os.fspath(path)
    if os.path.lexists(name) and not os.path.isfile(name):
        raise MmkitError("E_IO_WRITE", f"{name} exists and is not a regular file; the atomic writer would replace it "
                                       "(write to stdout with --out - instead)")


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path | None:
    """Atomically replace ``path`` with ``data`` (or write to stdout for ``-``).

    temp file ``NAME.tmp.PID.HEX`` in the same folder -> write -> flush -> fsync ->
    ``os.replace`` -> fsync(folder).  On any failure the temp file is removed and the old
    target is untouched.
    """
    if str(path) == STDIO:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return None
    check_output_path(path)
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MmkitError("E_IO_WRITE", f"cannot create folder {parent}: {exc.strerror or exc}") from exc
    tmp = parent / f"{target.name}.tmp.{os.getpid()}.{os.urandom(4).hex()}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise MmkitError("E_IO_WRITE", f"cannot write {target}: {exc.strerror or exc}") from exc
        raise
    _fsync_dir(parent)
    return target


@contextmanager
def atomic_writer(path: str | os.PathLike[str], buffer_bytes: int = 1 << 20) -> Iterator[BinaryIO]:
    """Stream bytes into ``path`` atomically, for outputs too large to hold in memory.

    Yields a binary file: the same protocol as ``write_bytes`` (temp file ``NAME.tmp.PID.HEX``
    in the target folder -> write -> flush -> fsync -> ``os.replace`` -> fsync(folder)), run
    when the ``with`` block ends normally; if the block raises, the temp file is removed, the
    old target is untouched and the exception propagates unchanged.  ``-`` streams to stdout.
    """
    if str(path) == STDIO:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    check_output_path(path)
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    tmp = parent / f"{target.name}.tmp.{os.getpid()}.{os.urandom(4).hex()}"
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fh = os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644), "wb", buffering=buffer_bytes)
    except OSError as exc:
        raise MmkitError("E_IO_WRITE", f"cannot write {target}: {exc.strerror or exc}") from exc
    committed = False
    try:
        yield fh
        try:
            fh.flush()
            os.fsync(fh.fileno())
            fh.close()
            os.replace(tmp, target)
        except OSError as exc:
            raise MmkitError("E_IO_WRITE", f"cannot write {target}: {exc.strerror or exc}") from exc
        committed = True
    finally:
        if not committed:
            try:
                fh.close()
            except OSError:
                pass
            try:
                os.unlink(tmp)
            except OSError:
                pass
    _fsync_dir(parent)


def write_json(path: str | os.PathLike[str], obj: Any) -> Path | None:
    """Write ``obj`` as a canonical JSON artifact, atomically (``-`` = stdout)."""
    return write_bytes(path, canonical_bytes(obj))


def ascii_text(text: str) -> str:
    """Normalize report text: ASCII only (checked), LF endings, exactly one trailing LF."""
    try:
        text.encode("ascii")
    except UnicodeEncodeError as exc:
        raise MmkitError("E_ART_NON_ASCII", f"report text must be ASCII (position {exc.start})") from exc
    return text.replace("\r\n", "\n").rstrip("\n") + "\n"


def write_text(path: str | os.PathLike[str], text: str) -> Path | None:
    """Write an ASCII text artifact (Markdown, YAML, CSV) atomically with a trailing LF."""
    return write_bytes(path, ascii_text(text).encode("ascii"))


def append_line(path: str | os.PathLike[str], line: str) -> None:
    """Append one whole line with ``O_APPEND`` and fsync, so a crash never tears it."""
    append_lines(path, [line])


def append_lines(path: str | os.PathLike[str], lines: list[str]) -> None:
    """Append whole lines in one ``O_APPEND`` write and one fsync (batched appends)."""
    if not lines:
        return
    data = "".join(line.rstrip("\n") + "\n" for line in lines).encode("ascii")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError as exc:
        raise MmkitError("E_IO_WRITE", f"cannot append to {target}: {exc.strerror or exc}") from exc
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except OSError as exc:
        raise MmkitError("E_IO_WRITE", f"cannot append to {target}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)


def append_jsonl(path: str | os.PathLike[str], obj: Any) -> None:
    """Append ``obj`` as one canonical JSON line (fsynced)."""
    append_line(path, canonical_json(obj))


def dumps_jsonl(objs: Iterable[Any]) -> bytes:
    """Canonical JSONL bytes for a sequence of objects (for whole-file JSONL artifacts)."""
    return "".join(canonical_json(o) + "\n" for o in objs).encode("ascii")


# ----------------------------------------------------------------------------- hashing
def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hash_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError as exc:
        raise MmkitError("E_IO_READ", f"cannot read {path}: {exc.strerror or exc}") from exc
    return h.hexdigest()


def _file_key(path: str | os.PathLike[str]) -> tuple[str, int, int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (os.fspath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class _Prehash(threading.Thread):
    """One file's sha256 computed on a worker thread (hashlib and file reads release the
    GIL, so it runs on another core while the caller works)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(name="mmkit-prehash", daemon=True)
        self.path = path
        self.digest: str | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.digest = _hash_file(self.path)
        except BaseException as exc:  # handed to the reader, re-raised there
            self.error = exc

    def result(self) -> str:
        self.join()
        if self.error is not None:
            raise self.error
        assert self.digest is not None
        return self.digest


_PREHASH: dict[tuple[str, int, int, int, int], _Prehash] = {}
_PREHASH_LOCK = threading.Lock()


def prehash(paths: Iterable[str | os.PathLike[str]]) -> None:
    """Start hashing ``paths`` in the background, for a later ``sha256_file`` of the same
    unchanged file (same path, inode, size and mtime) to pick up.  Commands call this
    before long work whose report records its inputs' hashes (a backtest over a large
    cache): the hash then costs no wall time.  ``-`` and unreadable paths are skipped
    (``sha256_file`` reports those itself)."""
    for path in paths:
        if os.fspath(path) == STDIO:
            continue
        key = _file_key(path)
        if key is None:
            continue
        with _PREHASH_LOCK:
            if key in _PREHASH:
                continue
            job = _PREHASH[key] = _Prehash(path)
        job.start()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, streamed in 1 MiB blocks (taken from a ``prehash`` of the
    same unchanged file when one was started)."""
    key = _file_key(path)
    if key is not None:
        with _PREHASH_LOCK:
            job = _PREHASH.pop(key, None)
        if job is not None:
            return job.result()
    return _hash_file(path)


# ----------------------------------------------------------------------------- reading
def read_control_bytes(path: str | os.PathLike[str], max_bytes: int = CONTROL_FILE_MAX_BYTES) -> str:
    """Read a control file as ASCII text, refusing oversized or non-ASCII content.

    Reads at most ``max_bytes + 1`` bytes so a huge file is refused without loading it.
    ``-`` reads stdin under the same limits.
    """
    name = str(path)
    try:
        if name == STDIO:
            raw = sys.stdin.buffer.read(max_bytes + 1)
        else:
            with open(path, "rb") as fh:
                raw = fh.read(max_bytes + 1)
    except FileNotFoundError as exc:
        raise ControlFileError("missing", name, "no such file") from exc
    except IsADirectoryError as exc:
        raise ControlFileError("invalid_structure", name, "is a directory, expected a file") from exc
    except OSError as exc:
        raise MmkitError("E_IO_READ", f"cannot read {name}: {exc.strerror or exc}") from exc
    if len(raw) > max_bytes:
        raise ControlFileError("file_too_large", name, f"larger than the {max_bytes} byte cap")
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ControlFileError("non_ascii", name, f"non-ASCII byte 0x{raw[exc.start]:02x} at line {line}") from exc
    return text.replace("\r\n", "\n")


def read_control_file(path: str | os.PathLike[str], fmt: str = "auto", max_bytes: int = CONTROL_FILE_MAX_BYTES) -> Any:
    """Read and parse a control file (``fmt``: ``json``, ``yaml`` or ``auto`` by suffix).

    Structure errors (unparsable YAML/JSON, duplicate-free but not a mapping where one is
    required is the caller's check) raise ``ControlFileError('invalid_structure')``.
    """
    text = read_control_bytes(path, max_bytes)
    name = str(path)
    kind = fmt
    if kind == "auto":
        kind = "json" if name.endswith(".json") else "yaml"
    if kind == "json":
        try:
            return parse_json(text, name)
        except MmkitError as exc:
            raise ControlFileError("invalid_structure", name, exc.message.split(": ", 1)[-1]) from exc
    if kind == "yaml":
        import yaml

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or type(exc).__name__
            raise ControlFileError("invalid_structure", name, f"unparsable YAML{where}: {problem}") from exc
    raise ValueError(f"unknown control file format {fmt!r}")


def iter_jsonl(path: str | os.PathLike[str], max_line_bytes: int = 1 << 20) -> Iterator[tuple[int, Any]]:
    """Yield ``(line_no, obj)`` from a JSONL file, bounded per line; blank lines skipped."""
    name = str(path)
    try:
        fh = sys.stdin.buffer if name == STDIO else open(path, "rb")
    except FileNotFoundError as exc:
        raise MmkitError("E_IO_MISSING", f"{name}: no such file") from exc
    try:
        for no, raw in enumerate(fh, 1):
            if len(raw) > max_line_bytes:
                raise MmkitError("E_DATA_LINE_TOO_LONG", f"{name}:{no}: line longer than {max_line_bytes} bytes")
            if not raw.strip():
                continue
            yield no, parse_json(raw, f"{name}:{no}")
    finally:
        if fh is not sys.stdin.buffer:
            fh.close()


# ----------------------------------------------------------------------------- meta
@lru_cache(maxsize=1)
def _git_sha_from_repo() -> str:
    here = Path(__file__).resolve().parent
    sha = _git_sha_from_files(here)
    if sha is not None:
        return sha
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and len(sha) == 40 else "unknown"


def _git_sha_from_files(start: Path) -> str | None:
    """HEAD's commit read from the ``.git`` folder above ``start`` (HEAD, then the loose
    ref or ``packed-refs``), without starting ``git``: a process costs milliseconds on
    every command.  None when that layout is not there (a worktree's ``.git`` file, an
    unusual ref): the caller then asks ``git`` itself."""
    for folder in (start, *start.parents):
        git = folder / ".git"
        if git.exists():
            break
    else:
        return None
    if not git.is_dir():
        return None
    try:
        head = (git / "HEAD").read_text(encoding="ascii").strip()
        if not head.startswith("ref: "):
            return head if _is_sha(head) else None
        ref = head[5:].strip()
        loose = git / ref
        if loose.is_file():
            sha = loose.read_text(encoding="ascii").strip()
            return sha if _is_sha(sha) else None
        packed = git / "packed-refs"
        if packed.is_file():
            for line in packed.read_text(encoding="ascii").splitlines():
                parts = line.split(" ")
                if len(parts) == 2 and parts[1] == ref and _is_sha(parts[0]):
                    return parts[0]
    except (OSError, UnicodeDecodeError):
        return None
    return None


def _is_sha(text: str) -> bool:
    return len(text) == 40 and all(c in "0123456789abcdef" for c in text)


def git_sha() -> str:
    """``MM_GIT_SHA`` if set, else ``git rev-parse HEAD`` of mmkit's checkout, else ``unknown``."""
    return os.environ.get("MM_GIT_SHA") or _git_sha_from_repo()


def mmkit_version() -> str:
    """``MM_VERSION`` if set (release builds), else the package version."""
    return os.environ.get("MM_VERSION") or __version__


def input_record(path: str | os.PathLike[str]) -> dict[str, str]:
    """``{"path", "sha256"}`` of one input, the path kept exactly as the user gave it."""
    name = str(path)
    return {"path": name, "sha256": "stdin" if name == STDIO else sha256_file(path)}


def build_meta(
    *,
    cfg_hash: str | None = None,
    seed: int | None = None,
    inputs: Iterable[str | os.PathLike[str] | Mapping[str, str]] = (),
) -> dict[str, Any]:
    """The ``meta`` block every JSON artifact carries (DESIGN.md section 4)."""
    records = [dict(i) if isinstance(i, Mapping) else input_record(i) for i in inputs]
    return {
        "generated_at": utc_now_iso(),
        "mmkit_version": mmkit_version(),
        "git_sha": git_sha(),
        "cfg_hash": cfg_hash,
        "seed": seed,
        "inputs": records,
    }


def artifact(kind: str, body: Mapping[str, Any], meta: Mapping[str, Any], version: int = 1) -> dict[str, Any]:
    """Wrap a body as an artifact: ``{"schema": "mmkit.<kind>/v<N>", "meta": ..., **body}``."""
    out: dict[str, Any] = {"schema": f"mmkit.{kind}/v{version}", "meta": dict(meta)}
    for key, value in body.items():
        if key in out:
            raise ValueError(f"artifact body may not set {key!r}")
        out[key] = value
    return out
