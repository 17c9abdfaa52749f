"""data.io: plain, gzip, zip (single and named member) and stdin inputs, streamed; errors mapped."""

from __future__ import annotations

import gzip
import io
import sys
import zipfile
from pathlib import Path

import pytest

from mmkit.data import io as dio
from mmkit.errors import MmkitError

TEXT = 'line one\nline "two"\n\nlast line without newline'
LINES = ["line one\n", 'line "two"\n', "\n", "last line without newline"]


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    data = TEXT.encode()
    plain = tmp_path / "data.jsonl"
    plain.write_bytes(data)
    gz = tmp_path / "data.jsonl.gz"
    gz.write_bytes(gzip.compress(data))
    misnamed = tmp_path / "really_gzip.jsonl"  # sniffed by content, not by name
    misnamed.write_bytes(gzip.compress(data))
    one = tmp_path / "one.zip"
    with zipfile.ZipFile(one, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("inner/data.jsonl", data)
    many = tmp_path / "many.zip"
    with zipfile.ZipFile(many, "w") as zf:
        zf.writestr("a.jsonl", b"first\n")
        zf.writestr("b.jsonl", data)
    return {"plain": plain, "gz": gz, "misnamed": misnamed, "one": one, "many": many}


def read_all(path, member=None) -> str:
    with dio.open_text(path, member) as fh:
        return fh.read()


@pytest.mark.parametrize("kind", ["plain", "gz", "misnamed", "one"])
def test_transparent_formats(inputs, kind):
    assert read_all(inputs[kind]) == TEXT
    assert [line for _no, line in dio.iter_lines(inputs[kind])] == LINES


def test_iter_lines_numbers_from_start(inputs):
    assert [no for no, _ in dio.iter_lines(inputs["plain"])] == [1, 2, 3, 4]
    assert [no for no, _ in dio.iter_lines(inputs["gz"], start=10)] == [10, 11, 12, 13]


def test_zip_named_member_by_argument_and_suffix(inputs):
    assert read_all(inputs["many"], "b.jsonl") == TEXT
    assert read_all(f"{inputs['many']}::a.jsonl") == "first\n"
    assert [line for _, line in dio.iter_lines(f"{inputs['many']}::b.jsonl")] == LINES


def test_zip_with_several_members_needs_a_name(inputs):
    with pytest.raises(MmkitError) as err:
        read_all(inputs["many"])
    assert err.value.code == "E_DATA_ZIP_MEMBER" and "a.jsonl, b.jsonl" in err.value.message and "::" in err.value.message


def test_zip_missing_member(inputs):
    with pytest.raises(MmkitError) as err:
        read_all(inputs["many"], "nope.jsonl")
    assert err.value.code == "E_DATA_ZIP_MEMBER" and "nope.jsonl" in err.value.message


@pytest.mark.parametrize("kind", ["plain", "gz"])
def test_member_on_a_non_zip_is_refused(inputs, kind):
    with pytest.raises(MmkitError) as err:
        read_all(inputs[kind], "x")
    assert err.value.code == "E_DATA_ZIP_MEMBER"


def test_existing_path_with_separator_is_not_split(tmp_path):
    odd = tmp_path / "odd::name.txt"
    odd.write_text("ok\n")
    assert dio.split_member(odd) == (str(odd), None)
    assert read_all(odd) == "ok\n"
    assert dio.split_member("x.zip::m.csv") == ("x.zip", "m.csv")
    assert dio.display_name("x.zip", "m.csv") == "x.zip::m.csv" and dio.display_name("-") == "<stdin>"


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(MmkitError) as err:
        read_all(tmp_path / "absent.jsonl")
    assert err.value.code == "E_IO_MISSING" and "absent.jsonl" in err.value.message
    with pytest.raises(MmkitError) as err:
        read_all(tmp_path)
    assert err.value.code == "E_IO_READ"


def test_truncated_gzip_is_reported_with_the_last_good_line(tmp_path):
    blob = gzip.compress(("x" * 50 + "\n").encode() * 2000)
    bad = tmp_path / "cut.gz"
    bad.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(MmkitError) as err:
        for _ in dio.iter_lines(bad):
            pass
    assert err.value.code == "E_DATA_BAD_ARCHIVE" and "cut.gz (after line" in err.value.message


def test_corrupt_zip(tmp_path):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04" + b"\0" * 40)
    with pytest.raises(MmkitError) as err:
        read_all(bad)
    assert err.value.code == "E_DATA_BAD_ARCHIVE"


def test_non_utf8_text(tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(b"ok\ncaf\xe9\n")
    with pytest.raises(MmkitError) as err:
        list(dio.iter_lines(bad))
    assert err.value.code == "E_DATA_BAD_ENCODING" and "0xe9" in err.value.message


def test_empty_file(tmp_path):
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert read_all(empty) == "" and list(dio.iter_lines(empty)) == []


class FakeStdin(io.TextIOWrapper):
    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))


@pytest.mark.parametrize("blob", [TEXT.encode(), gzip.compress(TEXT.encode())], ids=["plain", "gzip"])
def test_stdin_is_streamed_and_left_open(monkeypatch, blob):
    fake = FakeStdin(blob)
    monkeypatch.setattr(sys, "stdin", fake)
    assert [line for _, line in dio.iter_lines("-")] == LINES
    assert not fake.buffer.closed, "reading '-' must not close stdin"


def test_zip_on_stdin_is_spooled(monkeypatch, inputs):
    monkeypatch.setattr(sys, "stdin", FakeStdin(inputs["one"].read_bytes()))
    assert read_all("-") == TEXT


def test_binary_reader_closes_what_it_opened(inputs):
    fh = dio.open_binary(inputs["gz"])
    owned = list(fh._owned)
    assert fh.read() == TEXT.encode() and owned
    fh.close()
    assert fh.closed and all(o.closed for o in owned)
