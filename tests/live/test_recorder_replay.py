"""The execution recorder's replay (seed "E2.7"): ``POST /admin/execution/replay`` over real
HTTP against the real service, on a file the service itself recorded
(``EXEC_RECORDER_ENABLED=1``); pacing, counting and every refusal."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from pathlib import Path

import pytest

from live.admin_support import FAST_CFG, arun, call, live, setup_env
from mmkit.artifacts import canonical_json
from mmkit.errors import MmkitError
from mmkit.live import recorder as rec
from mmkit.live.recorder import ReplayTally, pacing, read_recording
from mmkit.live.service import default_data_path

pytestmark = pytest.mark.service

S = 1_000_000_000
REPLAY = "/admin/execution/replay"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    setup_env(tmp_path, monkeypatch)
    (tmp_path / "cfg.yaml").write_text(FAST_CFG)
    return tmp_path


def recording(folder: Path, lines: int = 3000) -> str:
    """The first ``lines`` lines of the bundled market recording."""
    out = folder / f"head{lines}.gz"
    with gzip.open(default_data_path(), "rb") as src:
        out.write_bytes(gzip.compress(b"".join(src.readline() for _ in range(lines))))
    return str(out)


def line(ts: int, kind: str, symbol: str = "BTCUSDT", color: str = "default", cid: str = "c-1") -> str:
    return canonical_json({"ts": ts, "kind": kind, "symbol": symbol, "side": "buy", "price": "64000.1",
                           "qty": "0.010", "cid": cid, "color": color})


def write(folder: Path, name: str, rows: list[str]) -> str:
    path = folder / name
    path.write_text("".join(r + "\n" for r in rows))
    return str(path)


def sample(svc, name: str, **labels: str) -> float:
    value = svc.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


# ----------------------------------------------------------------------------- the real flow
def test_replay_of_a_file_the_service_recorded(env, monkeypatch):
    monkeypatch.setenv("EXEC_RECORDER_ENABLED", "1")

    async def body():
        async with live(env, speed=None, data=(recording(env),), loop=True) as (svc, s):
            while svc.engine.counters.fills < 5:
                await asyncio.sleep(0.01)
            assert (await call(s, "POST", "/admin/killswitch", json={"action": "pause"}))[0] == 200
            fills = svc.engine.counters.fills  # paused and settled: nothing more is recorded
            st, rot, _ = await call(s, "POST", "/admin/execution/recorder/rotate")
            assert st == 200 and rot["rotated_to"]
            rows = [json.loads(x) for x in Path(rot["rotated_to"]).read_text().splitlines()]
            st, out, raw = await call(s, "POST", REPLAY, json={"path": rot["rotated_to"], "speed": "max"})
            assert st == 200, out
            kinds = [r["kind"] for r in rows]
            assert out["events_total"] == len(rows) and out["orders"] == kinds.count("order") > 0
            assert out["fills"] == kinds.count("fill") == fills
            assert out["rejects"] == kinds.count("reject")
            assert out["by_symbol"] == {"BTCUSDT": {"fills": fills, "rejects": out["rejects"]}}
            assert out["by_color"] == {"default": {"fills": fills, "rejects": out["rejects"]}}
            assert out["speed"] == "max" and out["paced_s"] == 0 and out["duration_ms"] >= 0
            assert raw.isascii() and svc.engine.counters.fills == fills  # the replay trades nothing
            ring = (await call(s, "GET", "/admin/audit/log"))[1]["entries"]
            assert [e["status"] for e in ring if e["endpoint"] == REPLAY] == [200]
            return svc, out

    svc, out = arun(body())
    assert sample(svc, "replay_events_total") == out["events_total"]
    assert sample(svc, "replay_duration_ms") == pytest.approx(out["duration_ms"], abs=1e-3)
    assert sample(svc, "admin_alert_events_total", kind="replay_started") == 1
    assert sample(svc, "admin_alert_events_total", kind="replay_finished") == 1
    done = [a["payload"] for a in svc.alerts_tail(100) if a["kind"] == "replay_finished"]
    assert done[0]["fills"] == out["fills"] and done[0]["events_total"] == out["events_total"]
    chain = [json.loads(x) for x in (env / "artifacts" / "audit.jsonl").read_text().splitlines()]
    replays = [e["payload"] for e in chain if e["kind"] == "execution.replay"]
    assert len(replays) == 1 and replays[0]["fills"] == out["fills"] and len(replays[0]["actor"]) == 8


def test_replay_counts_per_symbol_and_color_and_paces_1x(env):
    rows = [line(10 * S, "order"), line(10 * S, "fill", color="blue"), line(int(10.2 * S), "fill", "ETHUSDT", "green"),
            line(int(10.4 * S), "reject", color="green"), line(int(10.1 * S), "reject", "", "blue"),  # ts steps back
            line(int(10.6 * S), "fill")]
    path = write(env, "exe_test.jsonl", rows + [""])

    async def body():
        async with live(env, speed=1.0, data=(recording(env, 500),), loop=True) as (svc, s):
            t0 = time.monotonic()
            st, out, _ = await call(s, "POST", REPLAY, json={"path": path, "speed": "1x"})
            took = time.monotonic() - t0
            assert st == 200, out
            assert (out["events_total"], out["orders"], out["fills"], out["rejects"]) == (6, 1, 3, 2)
            assert out["by_symbol"] == {"BTCUSDT": {"fills": 2, "rejects": 1}, "ETHUSDT": {"fills": 1, "rejects": 0}}
            assert out["by_color"] == {"blue": {"fills": 1, "rejects": 1}, "default": {"fills": 1, "rejects": 0},
                                       "green": {"fills": 1, "rejects": 1}}
            assert out["paced_s"] == pytest.approx(0.6, abs=1e-6) and took >= 0.55
            # one replay at a time
            first = asyncio.create_task(call(s, "POST", REPLAY, json={"path": path, "speed": "1x"}))
            await asyncio.sleep(0.2)
            st, busy, _ = await call(s, "POST", REPLAY, json={"path": path})
            assert st == 400 and busy["error"] == "E_LIVE_REPLAY_BUSY"
            assert (await first)[0] == 200
            st, fast, _ = await call(s, "POST", REPLAY, json={"path": path})  # speed defaults to max
            assert st == 200 and fast["speed"] == "max" and fast["paced_s"] == 0 and fast["fills"] == 3
            t0 = time.monotonic()
            st, tenth, _ = await call(s, "POST", REPLAY, json={"path": path, "speed": "10x"})
            assert st == 200 and tenth["paced_s"] == pytest.approx(0.06, abs=1e-6) and tenth["fills"] == 3
            assert time.monotonic() - t0 < 0.5

    arun(body())


def test_replay_refuses_bad_requests_and_bad_files_and_counts_nothing(env, monkeypatch):
    good = write(env, "good.jsonl", [line(1, "fill")])
    bad_lines = {
        "not_json.jsonl": [line(1, "fill"), "{not json"],
        "array.jsonl": ["[1, 2]"],
        "missing.jsonl": ['{"ts": 1, "kind": "fill"}'],
        "extra.jsonl": [line(1, "fill")[:-1] + ',"zz":1}'],
        "kind.jsonl": [line(1, "cancel")],
        "ts.jsonl": [line(-5, "fill")],
        "ts_float.jsonl": [line(1, "fill").replace('"ts":1', '"ts":1.5')],
        "color.jsonl": [line(1, "fill").replace('"color":"default"', '"color":7')],
    }
    (env / "accent.jsonl").write_bytes(line(1, "fill", color="cafe").replace("cafe", "caf\u00e9").encode("utf-8") + b"\n")
    big = write(env, "big.jsonl", [line(i, "order") for i in range(40)])
    monkeypatch.setattr(rec, "REPLAY_MAX_BYTES", 2000)

    async def body():
        async with live(env, speed=1.0, data=(recording(env, 500),), loop=True) as (svc, s):
            for name, rows in bad_lines.items():
                st, js, _ = await call(s, "POST", REPLAY, json={"path": write(env, name, rows)})
                assert (st, js["error"]) == (400, "E_LIVE_REPLAY_BAD_LINE"), (name, js)
                assert f"{name}:{len(rows)}:" in js["detail"], js["detail"]
            files = [(str(env / "nope.jsonl"), "E_CTRL_MISSING"), (str(env / "accent.jsonl"), "E_CTRL_NON_ASCII"),
                     (big, "E_CTRL_FILE_TOO_LARGE"), (str(env), "E_CTRL_INVALID_STRUCTURE")]
            for path, code in files:
                st, js, _ = await call(s, "POST", REPLAY, json={"path": path})
                assert (st, js.get("error")) == (400, code), (path, js)
            bodies = [({}, "E_ADMIN_BAD_REQUEST"), ({"path": ""}, "E_ADMIN_BAD_REQUEST"),
                      ({"path": 5}, "E_ADMIN_BAD_REQUEST"), ({"path": good, "speed": "2x"}, "E_ADMIN_BAD_REQUEST"),
                      ({"path": good, "speed": ["max"]}, "E_ADMIN_BAD_REQUEST"),
                      ({"path": good, "extra": 1}, "E_ADMIN_BAD_REQUEST")]
            for req, code in bodies:
                st, js, _ = await call(s, "POST", REPLAY, json=req)
                assert (st, js["error"]) == (400, code), req
            raw = '{"path":"caf\u00e9.jsonl"}'.encode("utf-8")
            assert (await call(s, "POST", REPLAY, data=raw))[1]["error"] == "E_ADMIN_NON_ASCII"
            huge = b'{"path":"' + b"x" * (1 << 20) + b'"}'
            assert (await call(s, "POST", REPLAY, data=huge))[0] == 413
            assert (await call(s, "POST", REPLAY, token=None, json={"path": good}))[0] == 401
            assert sample(svc, "replay_events_total") == 0  # nothing was replayed
            assert not [a for a in svc.alerts_tail(100) if a["kind"].startswith("replay_")]
            st, js, _ = await call(s, "POST", REPLAY, json={"path": good})  # and the endpoint still works
            assert st == 200 and js["fills"] == 1
            ring = (await call(s, "GET", "/admin/audit/log"))[1]["entries"]
            statuses = [e["status"] for e in ring if e["endpoint"] == REPLAY]
            assert statuses.count(400) == len(bad_lines) + len(files) + len(bodies) + 1 and statuses[-1] == 200

    arun(body())


# ----------------------------------------------------------------------------- the pure parts
def test_pacing_gaps_caps_and_speeds(monkeypatch):
    evs = [rec.RecordedEvent(t, "fill", "X", "c") for t in (0, S // 5, S // 10, 3 * S, 3 * S + S // 2, 3600 * S)]
    assert list(pacing(evs, "max")) == [0.0] * 6
    assert list(pacing(evs, "1x")) == pytest.approx([0.0, 0.2, 0.0, 1.0, 0.5, 1.0])  # back-step waits 0; gaps <= 1 s
    assert list(pacing(evs, "10x")) == pytest.approx([0.0, 0.02, 0.0, 0.28, 0.05, 1.0])
    monkeypatch.setattr(rec, "REPLAY_MAX_PACED_S", 1.1)
    assert list(pacing(evs, "1x")) == pytest.approx([0.0, 0.2, 0.0, 0.9, 0.0, 0.0])  # the whole replay's cap
    with pytest.raises(ValueError):
        list(pacing(evs, "3x"))


def test_read_recording_and_tally(tmp_path):
    path = write(tmp_path, "exe.jsonl", [line(3, "order"), "", line(4, "fill", "ETHUSDT", "blue"), line(5, "reject", "")])
    evs = read_recording(path)
    assert [(e.ts, e.kind, e.symbol, e.color) for e in evs] == [(3, "order", "BTCUSDT", "default"),
                                                                (4, "fill", "ETHUSDT", "blue"), (5, "reject", "", "default")]
    t = ReplayTally()
    for e in evs:
        t.add(e)
    assert t.result() == {"events_total": 3, "orders": 1, "fills": 1, "rejects": 1,
                          "by_symbol": {"ETHUSDT": {"fills": 1, "rejects": 0}},
                          "by_color": {"blue": {"fills": 1, "rejects": 0}, "default": {"fills": 0, "rejects": 1}}}
    with pytest.raises(MmkitError) as exc:
        read_recording(write(tmp_path, "x.jsonl", [line(1, "fill"), "", "7"]))
    assert exc.value.code == "E_LIVE_REPLAY_BAD_LINE" and exc.value.message.endswith("x.jsonl:3: expected an object, got int")
