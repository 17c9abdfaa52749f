"""Opening inputs: plain files, gzip, zip archives and stdin, all as one streaming reader.

``open_binary``/``open_text`` sniff the first bytes, not the file name: gzip (``1f 8b``)
is decompressed on the fly, a zip archive yields its only member (or the one named by
``member=`` or the ``archive.zip::member`` suffix), anything else is read as is.  ``-``
is stdin (gzip works there too; a zip on stdin is spooled to a temporary file because zip
needs seeking).  Memory stays constant whatever the input size: 1 MiB buffers, no
whole-file reads.  Closing the returned stream closes everything it opened and never
closes stdin.

Errors are ``MmkitError``s: ``E_IO_MISSING``, ``E_IO_READ``, ``E_DATA_BAD_ARCHIVE``
(corrupt or truncated gzip/zip), ``E_DATA_ZIP_MEMBER`` (no such member, or several and
none chosen) and ``E_DATA_BAD_ENCODING`` (text that is not UTF-8).  Errors that surface
while iterating (a truncated gzip, bad UTF-8) are mapped by ``reading()`` and
``iter_lines()``.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, BinaryIO, TextIO

from mmkit.errors import MmkitError

STDIN = "-"
MEMBER_SEP = "::"
BUFFER_BYTES = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")


def split_member(path: str | os.PathLike[str]) -> tuple[str, str | None]:
    """``'a.zip::m.csv'`` -> ``('a.zip', 'm.csv')``; a path that exists as given is never split."""
    name = os.fspath(path)
    if MEMBER_SEP in name and name != STDIN and not os.path.exists(name):
        archive, member = name.rsplit(MEMBER_SEP, 1)
        return archive, member or None
    return name, None


def display_name(path: str | os.PathLike[str], member: str | None = None) -> str:
    """How messages name an input: ``path``, ``path::member`` or ``<stdin>``."""
    name = "<stdin>" if os.fspath(path) == STDIN else os.fspath(path)
    return f"{name}{MEMBER_SEP}{member}" if member else name


@contextmanager
def reading(name: str) -> Iterator[None]:
    """Map the exceptions of opening/reading an input to ``MmkitError``s naming ``name``."""
    try:
        yield
    except MmkitError:
        raise
    except FileNotFoundError as exc:
        raise MmkitError("E_IO_MISSING", f"{name}: no such file") from exc
    except IsADirectoryError as exc:
        raise MmkitError("E_IO_READ", f"{name}: is a directory, expected a file") from exc
    except (gzip.BadGzipFile, zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise MmkitError("E_DATA_BAD_ARCHIVE", f"{name}: corrupt or truncated archive ({exc}); re-download or re-compress it") from exc
    except UnicodeDecodeError as exc:
        raise MmkitError("E_DATA_BAD_ENCODING", f"{name}: not UTF-8 text ({exc.reason}, byte 0x{exc.object[exc.start]:02x})") from exc
    except OSError as exc:
        raise MmkitError("E_IO_READ", f"cannot read {name}: {exc.strerror or exc}") from exc


class _Borrowed(io.RawIOBase):
    """A raw reader over a stream it does not own: closing it leaves the stream open (stdin)."""

    def __init__(self, stream: IO[bytes]) -> None:
        super().__init__()
        # read1 returns what is available now, so a live pipe is not held back to fill a buffer
        self._read = getattr(stream, "read1", stream.read)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._read(len(buffer))
        n = len(data)
        buffer[:n] = data
        return n


class _Owning(io.BufferedReader):
    """A buffered reader that also closes the objects its source depends on."""

    def __init__(self, raw: IO[bytes], owned: list[IO[bytes] | zipfile.ZipFile]) -> None:
        super().__init__(raw, BUFFER_BYTES)  # type: ignore[arg-type]
        self._owned = owned

    def close(self) -> None:
        try:
            super().close()
        finally:
            for obj in reversed(self._owned):
                obj.close()
            self._owned = []


def _pick_member(archive: zipfile.ZipFile, member: str | None, name: str) -> zipfile.ZipInfo:
    files = [info for info in archive.infolist() if not info.is_dir()]
    if member is not None:
        for info in files:
            if info.filename == member:
                return info
        listing = ", ".join(i.filename for i in files[:10]) or "none"
        raise MmkitError("E_DATA_ZIP_MEMBER", f"{name}: no member {member!r} (members: {listing})")
    if len(files) != 1:
        listing = ", ".join(i.filename for i in files[:10]) or "none"
        raise MmkitError("E_DATA_ZIP_MEMBER", f"{name}: {len(files)} members ({listing}); name one as ARCHIVE.zip{MEMBER_SEP}MEMBER")
    return files[0]


def open_binary(path: str | os.PathLike[str], member: str | None = None) -> BinaryIO:
    """Open ``path`` (or ``-``) for streaming reads of its decompressed bytes."""
    archive_path, suffix_member = split_member(path)
    member = member if member is not None else suffix_member
    name = display_name(archive_path, member)
    with reading(name):
        if archive_path == STDIN:
            base = io.BufferedReader(_Borrowed(sys.stdin.buffer), BUFFER_BYTES)
        else:
            base = open(archive_path, "rb", buffering=BUFFER_BYTES)  # noqa: SIM115 - closed by the returned stream
        try:
            head = base.peek(4)[:4]
            if head[:2] == GZIP_MAGIC:
                if member is not None:
                    raise MmkitError("E_DATA_ZIP_MEMBER", f"{name}: a gzip file has no members; drop '{MEMBER_SEP}{member}'")
                return _Owning(gzip.GzipFile(fileobj=base, mode="rb"), [base])  # type: ignore[arg-type]
            if head in ZIP_MAGICS:
                seekable: IO[bytes] = base
                owned: list[IO[bytes] | zipfile.ZipFile] = [base]
                if archive_path == STDIN:
                    seekable = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the returned stream
                    owned.append(seekable)
                    shutil.copyfileobj(base, seekable, BUFFER_BYTES)
                    seekable.seek(0)
                archive = zipfile.ZipFile(seekable)
                owned.append(archive)
                return _Owning(archive.open(_pick_member(archive, member, name)), owned)  # type: ignore[arg-type]
            if member is not None:
                raise MmkitError("E_DATA_ZIP_MEMBER", f"{name}: not a zip archive, so it has no member {member!r}")
            return base  # type: ignore[return-value]
        except BaseException:
            base.close()
            raise


def open_text(path: str | os.PathLike[str], member: str | None = None, *, encoding: str = "utf-8",
              newline: str | None = None) -> TextIO:
    """``open_binary`` decoded as text (strict UTF-8 by default; ``newline`` as for ``open``)."""
    return io.TextIOWrapper(open_binary(path, member), encoding=encoding, errors="strict", newline=newline)


def iter_lines(path: str | os.PathLike[str], member: str | None = None, *, start: int = 1,
               encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """Yield ``(line_no, line)`` (line with its ``\\n``) from any input ``open_text`` accepts.

    Read errors are raised as ``MmkitError``s that name the input and the last good line.
    """
    archive_path, suffix_member = split_member(path)
    member = member if member is not None else suffix_member
    name = display_name(archive_path, member)
    no = start - 1
    with open_text(archive_path, member, encoding=encoding) as fh:
        try:
            for no, line in enumerate(fh, start):  # noqa: B007 - ``no`` is used after the loop
                yield no, line
        except (OSError, EOFError, zlib.error, zipfile.BadZipFile, UnicodeDecodeError) as exc:
            with reading(f"{name} (after line {no})"):
                raise exc
