"""The one writer: deterministic bytes, crash safety, bounded control-file reads."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mmkit import artifacts
from mmkit.errors import ControlFileError, MmkitError


def test_canonical_bytes_are_sorted_compact_ascii_with_lf():
    data = artifacts.canonical_bytes({"b": 1, "a": "\u00e9", "c": [1.5, None]})
    assert data == b'{"a":"\\u00e9","b":1,"c":[1.5,null]}\n'


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_numbers_are_an_error(tmp_path, bad):
    target = tmp_path / "x.json"
    with pytest.raises(MmkitError) as err:
        artifacts.write_json(target, {"v": [1, {"w": bad}]})
    assert err.value.code == "E_ART_NON_FINITE"
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_unserializable_value_is_an_error():
    with pytest.raises(MmkitError) as err:
        artifacts.canonical_json({"x": object()})
    assert err.value.code == "E_ART_NOT_SERIALIZABLE"


def test_write_json_replaces_atomically_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "r.json"
    artifacts.write_json(target, {"v": 1})
    artifacts.write_json(target, {"v": 2})
    assert json.loads(target.read_text()) == {"v": 2}
    assert sorted(p.name for p in target.parent.iterdir()) == ["r.json"]


def test_exception_mid_write_keeps_old_file_and_removes_temp(tmp_path, monkeypatch):
    target = tmp_path / "r.json"
    artifacts.write_json(target, {"v": "old"})
    real_write = os.write

    def failing_write(fd, data):
        real_write(fd, bytes(data)[:3])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(artifacts.os, "write", failing_write)
    with pytest.raises(MmkitError) as err:
        artifacts.write_json(target, {"v": "new" * 100})
    monkeypatch.undo()
    assert err.value.code == "E_IO_WRITE"
    assert json.loads(target.read_text()) == {"v": "old"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_keyboard_interrupt_mid_write_keeps_old_file(tmp_path, monkeypatch):
    target = tmp_path / "r.json"
    artifacts.write_json(target, {"v": "old"})

    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(artifacts.os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        artifacts.write_json(target, {"v": "new"})
    monkeypatch.undo()
    assert json.loads(target.read_text()) == {"v": "old"}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


_REWRITER = """
import sys
from mmkit import artifacts
target = sys.argv[1]
i = 0
while True:
    i += 1
    artifacts.write_json(target, {"i": i, "pad": "x" * (1000 + (i % 7) * 5000)})
"""


@pytest.mark.slow
def test_sigkill_during_rewrites_never_leaves_torn_or_empty_file(tmp_path):
    target = tmp_path / "state.json"
    artifacts.write_json(target, {"i": 0, "pad": ""})
    kills = 0
    for round_no in range(12):
        proc = subprocess.Popen([sys.executable, "-c", _REWRITER, str(target)])
        time.sleep(0.15 + 0.02 * round_no)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        raw = target.read_bytes()
        assert raw.endswith(b"\n") and raw, f"round {round_no}: empty or torn file"
        obj = json.loads(raw)
        assert set(obj) == {"i", "pad"}
    assert kills == 12
    # temp files of killed writers may remain (they are never the target) but the target is whole
    leftovers = [p for p in tmp_path.iterdir() if p.name != "state.json"]
    assert all(".tmp." in p.name for p in leftovers)


def test_append_jsonl_writes_whole_lines(tmp_path):
    log = tmp_path / "a.jsonl"
    for i in range(3):
        artifacts.append_jsonl(log, {"i": i})
    lines = log.read_bytes().split(b"\n")
    assert lines[-1] == b"" and [json.loads(x) for x in lines[:-1]] == [{"i": 0}, {"i": 1}, {"i": 2}]


def test_write_text_normalizes_and_refuses_non_ascii(tmp_path):
    p = tmp_path / "r.md"
    artifacts.write_text(p, "a\r\nb\n\n\n")
    assert p.read_bytes() == b"a\nb\n"
    with pytest.raises(MmkitError) as err:
        artifacts.write_text(p, "caf\u00e9")
    assert err.value.code == "E_ART_NON_ASCII"
    assert p.read_bytes() == b"a\nb\n"


def test_write_to_stdout(capsysbinary):
    artifacts.write_json("-", {"z": 1})
    assert capsysbinary.readouterr().out == b'{"z":1}\n'


def test_control_file_size_cap(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_bytes(b"a: 1\n" + b"#" * (2 * 1024 * 1024))
    with pytest.raises(ControlFileError) as err:
        artifacts.read_control_file(big)
    assert err.value.reason == "file_too_large" and err.value.code == "E_CTRL_FILE_TOO_LARGE"


def test_control_file_non_ascii_names_the_line(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_bytes(b"a: 1\nb: caf\xc3\xa9\n")
    with pytest.raises(ControlFileError) as err:
        artifacts.read_control_file(p)
    assert err.value.reason == "non_ascii" and "line 2" in str(err.value)


def test_control_file_invalid_structure(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("a: [1, 2\n")
    with pytest.raises(ControlFileError) as err:
        artifacts.read_control_file(p)
    assert err.value.reason == "invalid_structure"
    j = tmp_path / "c.json"
    j.write_text('{"a": NaN}')
    with pytest.raises(ControlFileError) as err:
        artifacts.read_control_file(j)
    assert err.value.reason == "invalid_structure"


def test_control_file_missing(tmp_path):
    with pytest.raises(ControlFileError) as err:
        artifacts.read_control_file(tmp_path / "nope.yaml")
    assert err.value.reason == "missing"


def test_control_file_strips_bom_and_crlf(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_bytes(b"\xef\xbb\xbfa: 1\r\nb: 2\r\n")
    assert artifacts.read_control_file(p) == {"a": 1, "b": 2}


def test_meta_block_and_inputs(tmp_path, monkeypatch):
    monkeypatch.setenv("MM_FREEZE_UTC", "1")
    monkeypatch.setenv("MM_GIT_SHA", "a" * 40)
    monkeypatch.setenv("MM_VERSION", "9.9.9")
    f = tmp_path / "in.txt"
    f.write_bytes(b"hello")
    meta = artifacts.build_meta(cfg_hash="h", seed=7, inputs=[f])
    assert meta == {
        "generated_at": "1970-01-01T00:00:00Z",
        "mmkit_version": "9.9.9",
        "git_sha": "a" * 40,
        "cfg_hash": "h",
        "seed": 7,
        "inputs": [{"path": str(f), "sha256": "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"}],
    }
    art = artifacts.artifact("thing", {"x": 1}, meta)
    assert art["schema"] == "mmkit.thing/v1" and art["x"] == 1
    with pytest.raises(ValueError):
        artifacts.artifact("thing", {"meta": 1}, meta)


def test_git_sha_unknown_outside_a_checkout(monkeypatch):
    monkeypatch.delenv("MM_GIT_SHA", raising=False)
    sha = artifacts.git_sha()
    assert sha == "unknown" or (len(sha) == 40 and all(c in "0123456789abcdef" for c in sha))


def test_outputs_that_are_not_regular_files_are_refused(tmp_path):
    folder = tmp_path / "adir"
    folder.mkdir()
    for write in (lambda: artifacts.write_json(folder, {"a": 1}), lambda: artifacts.write_text(folder, "x")):
        with pytest.raises(MmkitError) as err:
            write()
        assert err.value.code == "E_IO_WRITE" and "not a regular file" in err.value.message
    with pytest.raises(MmkitError):
        with artifacts.atomic_writer(folder) as fh:
            fh.write(b"x")
    assert folder.is_dir() and list(folder.iterdir()) == []
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(MmkitError):
        artifacts.write_json(tmp_path / "fifo", {"a": 1})
    assert (tmp_path / "fifo").exists() and not (tmp_path / "fifo").is_file()


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout.strip()


def test_git_sha_read_from_the_git_folder_matches_git(tmp_path):
    """HEAD read from ``.git`` without starting git: a loose ref, the same ref after
    ``git pack-refs`` (packed-refs only), a detached HEAD, and no answer (None, so the
    caller asks git) for a worktree's ``.git`` file or outside any checkout."""
    repo = tmp_path / "repo"
    (repo / "pkg" / "sub").mkdir(parents=True)
    _git(repo, "init", "-q")
    (repo / "pkg" / "f.txt").write_text("x")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "one")
    start = repo / "pkg" / "sub"
    head = _git(repo, "rev-parse", "HEAD")
    assert artifacts._git_sha_from_files(start) == head
    _git(repo, "pack-refs", "--all")
    assert not any((repo / ".git" / "refs" / "heads").iterdir())
    assert artifacts._git_sha_from_files(start) == head
    (repo / "pkg" / "f.txt").write_text("y")
    _git(repo, "commit", "-q", "-am", "two")
    second = _git(repo, "rev-parse", "HEAD")
    assert second != head and artifacts._git_sha_from_files(start) == second
    _git(repo, "checkout", "-q", head)
    assert artifacts._git_sha_from_files(start) == head
    _git(repo, "worktree", "add", "-q", str(tmp_path / "wt"), second)
    assert (tmp_path / "wt" / ".git").is_file() and artifacts._git_sha_from_files(tmp_path / "wt" / "pkg") is None
    assert artifacts._git_sha_from_files(Path("/proc/self")) is None


def test_prehash_hands_its_digest_to_sha256_file(tmp_path):
    """A file hashed in the background gives sha256_file the same digest as hashing it
    then; a file changed after ``prehash`` is hashed again (its size or mtime differs), a
    missing one still raises E_IO_READ, and ``-`` is skipped."""
    import hashlib

    f = tmp_path / "big.bin"
    data = os.urandom(3 << 20)
    f.write_bytes(data)
    artifacts.prehash([str(f), "-", str(tmp_path / "missing")])
    assert artifacts.sha256_file(str(f)) == hashlib.sha256(data).hexdigest()
    assert not any(k[0] == str(f) for k in artifacts._PREHASH)
    artifacts.prehash([str(f)])
    f.write_bytes(data + b"more")
    assert artifacts.sha256_file(str(f)) == hashlib.sha256(data + b"more").hexdigest()
    with pytest.raises(MmkitError) as err:
        artifacts.sha256_file(str(tmp_path / "missing"))
    assert err.value.code == "E_IO_READ"
    artifacts._PREHASH.clear()
