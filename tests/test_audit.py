"""The hash-chained audit log: format, every tamper reason, signatures, days, concurrency."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jsonschema
import pytest

from mmkit import artifacts, audit
from mmkit.errors import EXIT_ERROR, EXIT_USAGE, MmkitError
from support import ROOT, schema_for

KEY = b"test-audit-key"


def entry_validator() -> jsonschema.Draft202012Validator:
    schema = json.loads((ROOT / "schemas" / "audit_entry.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def make_log(path: Path, n: int = 10, key: bytes | None = None) -> list[bytes]:
    audit.append_many(path, [("GUARD", {"i": i, "state": "breach"}) for i in range(1, n + 1)], key=key)
    return path.read_bytes().splitlines(keepends=True)


def write_lines(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(lines))


def rehash_from(lines: list[bytes], start: int) -> list[bytes]:
    """Recompute hash and prev from index ``start`` on, as a forger without the key would."""
    out = list(lines)
    prev = json.loads(out[start - 1])["hash"] if start > 0 else audit.GENESIS
    for i in range(start, len(out)):
        obj = json.loads(out[i])
        obj["prev"] = prev
        obj.pop("hash")
        obj["hash"] = hashlib.sha256(artifacts.canonical_json(obj).encode()).hexdigest()
        prev = obj["hash"]
        out[i] = (artifacts.canonical_json(obj) + "\n").encode()
    return out


# ----------------------------------------------------------------------------- format
def test_chain_ok_and_every_line_matches_the_entry_schema(tmp_path):
    log = tmp_path / "audit.jsonl"
    lines = make_log(log, 10)
    res = audit.verify(log, key=None)
    assert (res.status, res.entries_checked, res.entries_scanned) == ("OK", 10, 10)
    assert (res.first_broken_seq, res.reason, res.line, res.detail) == (None, None, None, None)
    objs = [json.loads(ln) for ln in lines]
    assert [o["seq"] for o in objs] == list(range(1, 11))
    assert objs[0]["prev"] == "0" * 64
    assert all(b["prev"] == a["hash"] for a, b in zip(objs, objs[1:]))
    assert res.last_hash == objs[-1]["hash"]
    validator = entry_validator()
    for o in objs:
        assert not list(validator.iter_errors(o)), o


def test_hash_is_sha256_of_canonical_entry_without_hash_and_is_the_first_member(tmp_path):
    log = tmp_path / "audit.jsonl"
    for raw in make_log(log, 5, key=KEY):
        line = raw.rstrip(b"\n").decode("ascii")
        obj = json.loads(line)
        assert line == artifacts.canonical_json(obj), "lines are canonical JSON"
        without_hash = {k: v for k, v in obj.items() if k != "hash"}
        canon = artifacts.canonical_json(without_hash)
        assert obj["hash"] == hashlib.sha256(canon.encode()).hexdigest()
        # the property verify's fast path relies on: the line minus its leading hash member
        assert line.startswith('{"hash":"' + obj["hash"] + '",')
        assert "{" + line[75:] == canon
        unsigned = {k: v for k, v in without_hash.items() if k != "sig"}
        assert obj["sig"] == hmac.new(KEY, artifacts.canonical_json(unsigned).encode(), "sha256").hexdigest()


def test_append_returns_the_written_entry_and_freezes_ts(tmp_path, frozen):
    log = tmp_path / "a" / "audit.jsonl"
    e1 = audit.append(log, "GUARD", {"x": 1}, key=None)
    e2 = audit.AuditLog(log, key=None).append("ALLOC", {"y": [1, 2]})
    assert (e1["seq"], e2["seq"]) == (1, 2)
    assert e1["ts"] == e2["ts"] == "1970-01-01T00:00:00Z"
    assert e2["prev"] == e1["hash"]
    assert log.read_text().splitlines()[1] == artifacts.canonical_json(e2)
    assert audit.AuditLog(log, key=None).last() == e2


def test_ts_never_goes_backwards_when_the_clock_steps_back(tmp_path, monkeypatch):
    log = tmp_path / "audit.jsonl"
    monkeypatch.setattr(audit, "utc_now_iso", lambda: "2025-01-02T00:00:05Z")
    audit.append(log, "GUARD", {}, key=None)
    monkeypatch.setattr(audit, "utc_now_iso", lambda: "2025-01-02T00:00:01Z")
    second = audit.append(log, "GUARD", {}, key=None)
    assert second["ts"] == "2025-01-02T00:00:05Z"


TRICKY_PAYLOADS = [
    {"prev": "0" * 64, "seq": 1, "sig": "f" * 64, "ts": "1970-01-01T00:00:00Z", "hash": "a" * 64},
    {"a": 1, "prev": ',"prev":"' + "0" * 64 + '","seq":1,"ts":"x"}', "z": {"q": [{"ts": "}"}]}},
    {"text": "quote \" backslash \\ brace } newline \n tab \t", "u": "\u00e9\u2603"},
    {},
]


@pytest.mark.parametrize("key", [None, KEY, b"k" * 100], ids=["unsigned", "signed", "long-key"])
def test_fast_path_accepts_every_good_line_itself(tmp_path, monkeypatch, key):
    """Good lines never reach the strict judge, however their payloads look."""
    log = tmp_path / "audit.jsonl"
    records = [("GUARD", p) for p in TRICKY_PAYLOADS] + [("x" * 64, {"i": 1}), ("a.b:c-d_e", {"i": 2})]
    audit.append_many(log, records * 50, key=key)
    judged: list[int] = []
    real = audit._judge
    monkeypatch.setattr(audit, "_judge", lambda *a, **k: judged.append(a[1]) or real(*a, **k))
    res = audit.verify(log, key=key)
    assert (res.status, res.entries_checked, res.signed) == ("OK", 300, key is not None)
    assert judged == [], f"fast path refused good lines {judged[:5]}"
    deep = audit.verify(log, key=key, deep=True)
    assert (deep.status, deep.entries_checked, deep.last_hash) == ("OK", 300, res.last_hash)
    assert len(judged) == 300


def test_empty_log_is_ok_and_missing_log_is_an_error(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    res = audit.verify(empty, key=None)
    assert (res.status, res.entries_checked, res.last_hash) == ("OK", 0, None)
    with pytest.raises(MmkitError) as err:
        audit.verify(tmp_path / "nope.jsonl", key=None)
    assert (err.value.code, err.value.exit_code) == ("E_AUDIT_MISSING", EXIT_ERROR)


# ----------------------------------------------------------------------------- tampering
def _modify_payload(lines):
    lines[3] = lines[3].replace(b'"i":4', b'"i":99')
    return lines


def _delete(lines):
    del lines[3]
    return lines


def _delete_three(lines):
    del lines[3:6]
    return lines


def _delete_first(lines):
    del lines[0]
    return lines


def _insert_duplicate(lines):
    lines.insert(4, lines[3])
    return lines


def _append_old_duplicate(lines):
    return lines + [lines[1]]


def _swap(lines):
    lines[3], lines[4] = lines[4], lines[3]
    return lines


def _move_to_end(lines):
    return lines[:2] + lines[3:] + [lines[2]]


def _truncate_mid_line(lines):
    lines[-1] = lines[-1][: len(lines[-1]) // 2]
    return lines


def _drop_final_lf(lines):
    lines[-1] = lines[-1].rstrip(b"\n")
    return lines


def _garbled_last_line_with_lf(lines):
    lines[-1] = lines[-1][:40] + b"\n"
    return lines


def _edit_seq_field(lines):
    lines[3] = lines[3].replace(b'"seq":4,', b'"seq":40,')
    return lines


def _garbage_line(lines):
    lines[3] = b"this is not json\n"
    return lines


def _non_ascii(lines):
    lines[3] = lines[3].replace(b"breach", b"br\xc3\xa9ach")
    return lines


def _blank_line(lines):
    lines.insert(3, b"\n")
    return lines


def _reencoded(lines):
    lines[3] = lines[3].replace(b',"kind":', b', "kind": ')  # same JSON value, not canonical bytes
    return lines


def _forged_prev(lines):
    obj = json.loads(lines[3])
    obj["prev"] = "f" * 64
    lines[3] = (artifacts.canonical_json(obj) + "\n").encode()
    return lines


# (tamper, reason, first_broken_seq, broken line, found_seq, entries_checked)
TAMPERS = [
    (_modify_payload, "modified", 4, 4, 4, 3),
    (_delete, "deleted", 4, 4, 5, 3),
    (_delete_three, "deleted", 4, 4, 7, 3),
    (_delete_first, "deleted", 1, 1, 2, 0),
    (_insert_duplicate, "inserted", 5, 5, 4, 4),
    (_append_old_duplicate, "inserted", 11, 11, 2, 10),
    (_swap, "reordered", 4, 4, 5, 3),
    (_move_to_end, "reordered", 3, 3, 4, 2),
    (_truncate_mid_line, "truncated", 10, 10, None, 9),
    (_drop_final_lf, "truncated", 10, 10, 10, 9),
    (_garbled_last_line_with_lf, "truncated", 10, 10, None, 9),
    (_edit_seq_field, "modified", 4, 4, 40, 3),
    (_garbage_line, "modified", 4, 4, None, 3),
    (_non_ascii, "modified", 4, 4, None, 3),
    (_blank_line, "inserted", 4, 4, None, 3),
    (_reencoded, "modified", 4, 4, 4, 3),
    (_forged_prev, "modified", 4, 4, 4, 3),
]


@pytest.mark.parametrize("mode", ["fast", "fast-tiny-blocks", "deep"])
@pytest.mark.parametrize(("tamper", "reason", "seq", "line", "found", "checked"), TAMPERS, ids=[t[0].__name__[1:] for t in TAMPERS])
def test_each_tamper_is_detected_with_its_seq_and_reason(tmp_path, monkeypatch, mode, tamper, reason, seq, line, found, checked):
    if mode == "fast-tiny-blocks":
        monkeypatch.setattr(audit, "_BLOCK", 700)  # lines straddle read boundaries
    log = tmp_path / "audit.jsonl"
    original = make_log(log, 10)
    write_lines(log, tamper(list(original)))
    res = audit.verify(log, key=None, deep=mode == "deep")
    got = (res.status, res.reason, res.first_broken_seq, res.line, res.found_seq, res.entries_checked)
    assert got == ("BROKEN", reason, seq, line, found, checked), res.detail
    assert res.detail.startswith(f"line {line}: ")
    assert res.last_hash == (json.loads(original[checked - 1])["hash"] if checked else None)


def test_deleted_detail_names_the_missing_range(tmp_path):
    log = tmp_path / "audit.jsonl"
    write_lines(log, _delete_three(make_log(log, 10)))
    assert "seqs 4..6 missing" in audit.verify(log, key=None).detail


def test_whole_lines_deleted_from_the_tail_are_only_visible_through_last_hash(tmp_path):
    """The documented limit: the chain alone cannot see its last lines removed; anchor last_hash."""
    log = tmp_path / "audit.jsonl"
    lines = make_log(log, 10)
    anchored = audit.verify(log, key=None).last_hash
    write_lines(log, lines[:-2])
    res = audit.verify(log, key=None)
    assert res.ok and res.entries_checked == 8 and res.last_hash != anchored


def test_overlong_line_is_reported_not_loaded(tmp_path):
    log = tmp_path / "audit.jsonl"
    lines = make_log(log, 5)
    lines.insert(2, b"x" * (audit.MAX_LINE_BYTES + 10) + b"\n")
    write_lines(log, lines)
    res = audit.verify(log, key=None)
    assert (res.reason, res.first_broken_seq, res.line) == ("modified", 3, 3)


# ----------------------------------------------------------------------------- signatures
def test_signed_chain_verifies_with_the_key_and_without_it(tmp_path):
    log = tmp_path / "audit.jsonl"
    make_log(log, 10, key=KEY)
    signed = audit.verify(log, key=KEY)
    assert signed.ok and signed.signed and signed.entries_checked == 10
    unsigned = audit.verify(log, key=None)
    assert unsigned.ok and not unsigned.signed


@pytest.mark.parametrize("deep", [False, True], ids=["fast", "deep"])
def test_wrong_key_is_bad_signature_at_seq_1(tmp_path, deep):
    log = tmp_path / "audit.jsonl"
    make_log(log, 10, key=KEY)
    res = audit.verify(log, key=b"another-key", deep=deep)
    assert (res.status, res.reason, res.first_broken_seq, res.entries_checked) == ("BROKEN", "bad_signature", 1, 0)


def test_fast_hmac_matches_the_standard_library():
    for key in (b"", b"k", b"x" * 64, b"y" * 65, bytes(range(256))):
        for data in (b"", b"{}", b"z" * 1000):
            assert audit._HmacSha256(key).hexdigest(data) == hmac.new(key, data, "sha256").hexdigest()


def test_missing_sig_when_key_is_set_is_bad_signature(tmp_path):
    log = tmp_path / "audit.jsonl"
    make_log(log, 5, key=None)
    res = audit.verify(log, key=KEY)
    assert (res.reason, res.first_broken_seq) == ("bad_signature", 1)
    # a log that starts signed and later loses its key: the first unsigned entry breaks it
    log2 = tmp_path / "mixed.jsonl"
    make_log(log2, 5, key=KEY)
    audit.append_many(log2, [("GUARD", {"late": True})], key=None)
    res2 = audit.verify(log2, key=KEY)
    assert (res2.reason, res2.first_broken_seq, res2.entries_checked) == ("bad_signature", 6, 5)


def test_stripped_sig_is_bad_signature_not_modified(tmp_path):
    log = tmp_path / "audit.jsonl"
    lines = make_log(log, 6, key=KEY)
    obj = json.loads(lines[2])
    del obj["sig"]
    lines[2] = (artifacts.canonical_json(obj) + "\n").encode()
    write_lines(log, lines)
    res = audit.verify(log, key=KEY)
    assert (res.reason, res.first_broken_seq) == ("bad_signature", 3)


def test_rehashed_forgery_is_caught_only_by_the_signature(tmp_path):
    log = tmp_path / "audit.jsonl"
    lines = make_log(log, 8, key=KEY)
    lines[2] = lines[2].replace(b'"i":3', b'"i":333')
    write_lines(log, rehash_from(lines, 2))
    assert audit.verify(log, key=None).ok, "without a key a full rehash is undetectable (documented)"
    res = audit.verify(log, key=KEY)
    assert (res.reason, res.first_broken_seq, res.entries_checked) == ("bad_signature", 3, 2)


def test_key_comes_from_the_environment_and_never_shows(tmp_path, monkeypatch):
    monkeypatch.setenv(audit.KEY_ENV, "env-secret-key-123")
    log = tmp_path / "audit.jsonl"
    alog = audit.AuditLog(log)
    assert alog.signed and "env-secret" not in repr(alog)
    alog.append("GUARD", {"x": 1})
    assert b"env-secret" not in log.read_bytes()
    assert audit.verify(log).ok
    monkeypatch.setenv(audit.KEY_ENV, "other")
    assert audit.verify(log).reason == "bad_signature"
    monkeypatch.delenv(audit.KEY_ENV)
    assert audit.key_from_env() is None


# ----------------------------------------------------------------------------- utc days
def _log_over_days(log: Path, monkeypatch) -> list[bytes]:
    for day, n in (("2025-01-01", 3), ("2025-01-02", 4), ("2025-01-03", 2)):
        monkeypatch.setattr(audit, "utc_now_iso", lambda d=day: f"{d}T12:00:00Z")
        audit.append_many(log, [("GUARD", {"day": day, "i": i}) for i in range(n)], key=None)
    return log.read_bytes().splitlines(keepends=True)


def test_utc_date_counts_only_that_day(tmp_path, monkeypatch):
    log = tmp_path / "audit.jsonl"
    lines = _log_over_days(log, monkeypatch)
    res = audit.verify(log, utc_date="2025-01-02", key=None)
    assert (res.status, res.entries_checked, res.entries_scanned, res.utc_date) == ("OK", 4, 8, "2025-01-02")
    assert res.last_hash == json.loads(lines[6])["hash"]
    none = audit.verify(log, utc_date="2024-12-31", key=None)
    assert (none.status, none.entries_checked, none.last_hash) == ("OK", 0, None)


def test_utc_date_chain_is_verified_from_the_start(tmp_path, monkeypatch):
    log = tmp_path / "audit.jsonl"
    lines = _log_over_days(log, monkeypatch)
    write_lines(log, _modify_payload_at(lines, 1))  # a day-1 entry
    res = audit.verify(log, utc_date="2025-01-02", key=None)
    assert (res.status, res.reason, res.first_broken_seq, res.entries_checked) == ("BROKEN", "modified", 2, 0)


def test_a_break_after_the_day_does_not_affect_it(tmp_path, monkeypatch):
    log = tmp_path / "audit.jsonl"
    lines = _log_over_days(log, monkeypatch)
    write_lines(log, _modify_payload_at(lines, 8))  # the second day-3 entry
    assert audit.verify(log, utc_date="2025-01-02", key=None).ok
    whole = audit.verify(log, key=None)
    assert (whole.reason, whole.first_broken_seq) == ("modified", 9)


def _modify_payload_at(lines: list[bytes], index: int) -> list[bytes]:
    out = list(lines)
    out[index] = out[index].replace(b'"i":', b'"i":1')
    assert out[index] != lines[index]
    return out


@pytest.mark.parametrize("bad", ["2025-1-2", "2025-02-30", "yesterday", "2025-01-02T00:00:00Z"])
def test_bad_utc_date_is_a_usage_error(tmp_path, bad):
    log = tmp_path / "audit.jsonl"
    make_log(log, 1)
    with pytest.raises(MmkitError) as err:
        audit.verify(log, utc_date=bad, key=None)
    assert (err.value.code, err.value.exit_code) == ("E_AUDIT_BAD_DATE", EXIT_USAGE)


# ----------------------------------------------------------------------------- inputs
@pytest.mark.parametrize(
    "raw",
    ["not json", "[1,2]", '"text"', "42", '{"a":NaN}', '{"a":1e999}', '{"a":"\u00e9"}', b'{"a":"\xff"}', "{'a':1}"],
    ids=["garbage", "array", "string", "number", "nan", "inf", "non-ascii-text", "non-ascii-bytes", "single-quotes"],
)
def test_bad_payloads_are_refused(raw):
    with pytest.raises(MmkitError) as err:
        audit.parse_payload(raw)
    assert err.value.code == "E_AUDIT_BAD_PAYLOAD"
    assert "\n" not in str(err.value)


def test_oversized_payload_is_refused():
    with pytest.raises(MmkitError) as err:
        audit.parse_payload('{"a":"' + "x" * audit.MAX_PAYLOAD_BYTES + '"}')
    assert err.value.code == "E_AUDIT_BAD_PAYLOAD"


@pytest.mark.parametrize("kind", ["", "has space", "x" * 65, "caf\u00e9", "a\nb"])
def test_bad_kinds_are_refused_and_nothing_is_written(tmp_path, kind):
    log = tmp_path / "audit.jsonl"
    with pytest.raises(MmkitError) as err:
        audit.append(log, kind, {"x": 1}, key=None)
    assert err.value.code == "E_AUDIT_BAD_KIND"
    assert not log.exists() or log.read_bytes() == b""


def test_library_payload_must_be_a_finite_json_object(tmp_path):
    log = tmp_path / "audit.jsonl"
    for bad in ([1], {"x": float("nan")}, {"x": object()}):
        with pytest.raises(MmkitError) as err:
            audit.append(log, "GUARD", bad, key=None)  # type: ignore[arg-type]
        assert err.value.code == "E_AUDIT_BAD_PAYLOAD"


# ----------------------------------------------------------------------------- appending
def test_append_refuses_a_torn_tail_and_leaves_the_file_alone(tmp_path):
    log = tmp_path / "audit.jsonl"
    lines = make_log(log, 3)
    write_lines(log, _truncate_mid_line(lines))
    before = log.read_bytes()
    with pytest.raises(MmkitError) as err:
        audit.append(log, "GUARD", {"x": 1}, key=None)
    assert err.value.code == "E_AUDIT_CORRUPT_TAIL" and "mmkit audit verify" in err.value.message
    assert log.read_bytes() == before


def test_append_reads_only_the_tail_of_a_big_log(tmp_path, monkeypatch):
    log = tmp_path / "audit.jsonl"
    audit.append_many(log, [("GUARD", {"i": i, "pad": "p" * 200}) for i in range(20000)], key=None)
    assert log.stat().st_size > 4_000_000
    reads: list[int] = []
    real_pread = audit.os.pread

    def spy(fd, n, off):
        reads.append(n)
        return real_pread(fd, n, off)

    monkeypatch.setattr(audit.os, "pread", spy)
    entry = audit.append(log, "GUARD", {"last": True}, key=None)
    assert entry["seq"] == 20001
    assert sum(reads) <= 1 << 16, reads


def test_append_after_a_large_last_entry(tmp_path):
    log = tmp_path / "audit.jsonl"
    audit.append(log, "GUARD", {"blob": "b" * 300_000}, key=None)
    assert audit.append(log, "GUARD", {"x": 1}, key=None)["seq"] == 2
    assert audit.verify(log, key=None).entries_checked == 2


def test_batched_append_is_one_chain(tmp_path):
    log = tmp_path / "audit.jsonl"
    first = audit.append_many(log, [("ALLOC", {"i": i}) for i in range(3)], key=KEY)
    second = audit.append_many(log, [("CANCEL", {"i": i}) for i in range(2)], key=KEY)
    assert [e["seq"] for e in first + second] == [1, 2, 3, 4, 5]
    assert second[0]["prev"] == first[-1]["hash"]
    assert audit.append_many(log, [], key=KEY) == []
    assert audit.verify(log, key=KEY).entries_checked == 5


WORKER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from mmkit import audit
    log, who, n, batch, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), Path(sys.argv[5])
    while not go.exists():
        time.sleep(0.001)
    alog = audit.AuditLog(log, key=b"k")
    i = 0
    while i < n:
        if batch == 1:
            alog.append("GUARD", {"who": who, "i": i})
            i += 1
        else:
            alog.append_many([("GUARD", {"who": who, "i": j}) for j in range(i, min(n, i + batch))])
            i += batch
    """
)


@pytest.mark.parametrize("batch", [1, 25], ids=["single", "batched"])
def test_two_processes_appending_concurrently_keep_one_chain(tmp_path, batch):
    log = tmp_path / "audit.jsonl"
    go = tmp_path / "go"
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER, str(log), who, "500", str(batch), str(go)], cwd=ROOT)
        for who in ("A", "B")
    ]
    time.sleep(0.5)  # both interpreters started and waiting
    go.touch()
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    res = audit.verify(log, key=b"k")
    assert (res.status, res.entries_checked) == ("OK", 1000), res.detail
    objs = [json.loads(ln) for ln in log.read_bytes().splitlines()]
    assert [o["seq"] for o in objs] == list(range(1, 1001))
    for who in ("A", "B"):
        assert [o["payload"]["i"] for o in objs if o["payload"]["who"] == who] == list(range(500))
    switches = sum(1 for a, b in zip(objs, objs[1:]) if a["payload"]["who"] != b["payload"]["who"])
    assert switches >= 2, "the two writers never interleaved; the test did not exercise the lock"


def test_verify_result_body_matches_the_schema(tmp_path):
    log = tmp_path / "audit.jsonl"
    write_lines(log, _swap(make_log(log, 6)))
    res = audit.verify(log, key=None)
    report = artifacts.artifact("audit_verify", res.to_body(str(log)), artifacts.build_meta(inputs=[log]))
    schema = schema_for(report["schema"])
    assert not list(jsonschema.Draft202012Validator(schema).iter_errors(report))
