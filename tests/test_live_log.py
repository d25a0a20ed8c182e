"""Durability: the event log replays bit for bit, snapshots plus the log's tail recover, and a
process killed (SIGKILL) in the middle of an epoch recovers with nothing lost and nothing
applied twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from auction import Offer, Request
from auction.errors import (
    EventLogError,
    InvalidValueError,
    UnknownLogSchemaError,
    UnknownSchemaError,
)
from auction.live import LiveMarket, open_market, read_log, replay, save_snapshot

ROOT = Path(__file__).resolve().parents[1]


def flow(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """A deterministic stream of input records for `LiveMarket.handle`."""
    rng = np.random.default_rng(seed)
    out: list[dict[str, Any]] = []
    t = 0
    for k in range(n):
        t += int(rng.integers(0, 4))
        u = rng.random()
        if u < 0.4:
            o = Offer(id=f"o{k}", provider=f"p{k % 5}", gpu_model=["H100", "A100"][k % 2],
                      gpus=int(rng.integers(1, 5)), price=int(rng.integers(1, 10)),
                      region=["us", "eu"][int(rng.integers(0, 2))], vram_gb=80, submitted_at=t)
            rec: dict[str, Any] = {"kind": "submit", "order": {"side": "offer", **o.to_record()}}
        elif u < 0.85:
            r = Request(id=f"r{k}", tenant=f"t{k % 3}", gpus=int(rng.integers(1, 4)),
                        max_price=int(rng.integers(1, 12)), submitted_at=t,
                        divisible=bool(rng.random() < 0.3), duration_hours=1)
            rec = {"kind": "submit", "order": {"side": "request", **r.to_record()},
                   "expires_at": t * 100 + 2500}
        else:
            rec = {"kind": "advance"}
        out.append({**rec, "id": f"in{k}", "at": t * 100})
    return out


def run_all(m: LiveMarket, records: list[dict[str, Any]]) -> None:
    for rec in records:
        m.handle(rec)


CONFIG: dict[str, Any] = {"mode": "periodic", "mechanism": "first-price", "epoch": 700}


def written(tmp_path: Path, records: list[dict[str, Any]], snap_after: int | None = None,
            **config: Any) -> tuple[Path, Path, LiveMarket]:
    """(log, snapshot, market): `records` run on a logged market (config: `CONFIG`, then
    `config`), snapshotted after the first `snap_after` of them; the log is closed."""
    log, snap = tmp_path / "m.log", tmp_path / "m.snap"
    m = open_market(log, snapshot=snap, **{**CONFIG, **config})
    cut = len(records) if snap_after is None else snap_after
    run_all(m, records[:cut])
    if snap_after is not None:
        save_snapshot(m, snap)
    run_all(m, records[cut:])
    assert m.log is not None
    m.log.close()
    return log, snap, m


def test_replay_reproduces_every_output(tmp_path: Path) -> None:
    log = tmp_path / "market.log"
    m = open_market(log, **CONFIG)
    run_all(m, flow(300))
    m.log.close()
    assert not [e for e in m.recent if e.kind == "rejected"]
    r = replay(log)  # raises if any output differs
    assert r.to_state() == m.to_state()
    header, pairs = read_log(log)
    assert header == m.config()
    assert all(outs is not None for _, outs in pairs)
    cleared = [e for _, outs in pairs for e in outs or [] if e["kind"] == "cleared"]
    assert len(cleared) >= 5
    assert any(e["data"]["allocations"] for e in cleared)
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    # the library's one JSON header, on the first line only
    assert {k: lines[0][k] for k in ("format", "version", "type")} == {
        "format": "auction.live.log", "version": 1, "type": "header"}
    assert all({"v", "format", "version"}.isdisjoint(x) for x in lines[1:])


def test_replay_detects_a_tampered_log(tmp_path: Path) -> None:
    log = tmp_path / "market.log"
    m = open_market(log, **CONFIG)
    run_all(m, flow(120))
    m.log.close()
    text = log.read_text()
    assert '"kind":"fill"' in text
    log.write_text(text.replace('"unit_price":', '"unit_price":1', 1))
    with pytest.raises(EventLogError):
        replay(log)


def test_snapshot_plus_tail_recovers(tmp_path: Path) -> None:
    records = flow(300, seed=3)
    log, snap, m = written(tmp_path, records[:250], snap_after=150)
    r = open_market(log, snapshot=snap)
    assert r.to_state() == m.to_state()
    run_all(r, records[250:])
    run_all(m := LiveMarket(**CONFIG), records)
    assert r.to_state() == m.to_state()


def test_old_ids_stay_refused_after_snapshot_and_tail_recovery(tmp_path: Path) -> None:
    log, snap = tmp_path / "m.log", tmp_path / "m.snap"
    records = flow(200, seed=5)
    cfg = {**CONFIG, "id_window": 8}
    m = open_market(log, snapshot=snap, **cfg)
    run_all(m, records[:100])
    save_snapshot(m, snap)
    run_all(m, records[100:])
    m.log.close()
    r = open_market(log, snapshot=snap)
    assert r.to_state() == m.to_state()
    assert len(r.to_state()["applied"]) <= 8 + 4  # the window, plus the current instant
    state = r.to_state()
    for rec in records:  # resend everything: each is a no-op or refused, none applied
        out = r.handle(rec)
        assert all(e.kind == "rejected" for e in out)
        assert not out or out[0].data["field"] == "at"
    after = r.to_state()
    assert {k: v for k, v in after.items() if k != "seq"} == {
        k: v for k, v in state.items() if k != "seq"}
    assert after["seq"] == state["seq"]


def _to_old_form(path: Path) -> None:
    """Rewrite a log in the form written before the two-key header: ``"v": 1`` on every line."""
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    old = [{"v": 1, **{k: v for k, v in x.items() if k not in ("format", "version")}}
           for x in lines]
    path.write_text("".join(json.dumps(x, separators=(",", ":")) + "\n" for x in old))


def test_the_older_v_form_still_reads_replays_and_appends(tmp_path: Path) -> None:
    records = flow(200, seed=7)
    log, snap, m = written(tmp_path, records[:150], snap_after=80)
    _to_old_form(log)
    state = json.loads(snap.read_text())
    assert (state.pop("format"), state.pop("version")) == ("auction.live.snapshot", 1)
    snap.write_text(json.dumps({"v": 1, **state}))

    assert replay(log).to_state() == m.to_state()  # bit for bit, as before
    r = open_market(log, snapshot=snap)
    assert r.to_state() == m.to_state()
    run_all(r, records[150:])  # appended in the log's own (older) form
    r.log.close()
    assert all(json.loads(x)["v"] == 1 for x in log.read_text().splitlines())
    m.log = None
    run_all(m, records[150:])
    assert replay(log).to_state() == m.to_state()


def test_a_log_written_by_the_older_writer_reads() -> None:
    """tests/fixtures/live_log_v1.log: 20 inputs of `flow(20)`, written by the code before the
    two-key header (every line ``"v": 1``)."""
    path = Path(__file__).parent / "fixtures" / "live_log_v1.log"
    assert all(json.loads(x)["v"] == 1 for x in path.read_text().splitlines())
    config, pairs = read_log(path)
    assert {k: config[k] for k in CONFIG} == CONFIG
    ids = [ev.id for ev, _ in pairs]  # each input, and the clock advances it logged
    assert [i for i in ids if not i.endswith("~advance")] == [rec["id"] for rec in flow(20)]
    seqs = [ev.seq for ev, _ in pairs]
    assert seqs == sorted(set(seqs))
    assert all(outs is not None for _, outs in pairs)


@pytest.mark.parametrize(
    ("first", "field", "value"),
    [
        ({"format": "auction.live.log", "version": 2}, "version", 2),
        ({"format": "auction.book", "version": 1}, "format", "auction.book"),
        ({"format": "auction.live.log"}, "version", None),
        ({"v": 2}, "v", 2),
        ({"v": "1"}, "v", "1"),
        ({}, "format", None),
    ],
)
def test_an_unknown_header_is_refused(tmp_path: Path, first: dict[str, Any], field: str,
                                      value: Any) -> None:
    log, _, _ = written(tmp_path, flow(10))
    lines = log.read_text().splitlines()
    head = {k: v for k, v in json.loads(lines[0]).items() if k not in ("format", "version")}
    log.write_text("\n".join([json.dumps({**first, **head}), *lines[1:]]) + "\n")
    for read in (read_log, replay, open_market):
        with pytest.raises(UnknownLogSchemaError) as info:
            read(log)
        assert isinstance(info.value, EventLogError)
        assert isinstance(info.value, UnknownSchemaError)
        assert (info.value.field, info.value.value) == (field, value)
        assert info.value.supported == ("auction.live.log/1",)
        assert info.value.newer == (value == 2 and field == "version")


def test_an_unknown_snapshot_header_is_refused(tmp_path: Path) -> None:
    log, snap, _ = written(tmp_path, flow(10), snap_after=10)
    state = json.loads(snap.read_text())["state"]
    for doc, field in (({"format": "auction.live.snapshot", "version": 9}, "version"),
                       ({"format": "auction.live.log", "version": 1}, "format"),
                       ({"v": 2}, "v")):
        snap.write_text(json.dumps({**doc, "state": state}))
        with pytest.raises(UnknownLogSchemaError) as info:
            open_market(log, snapshot=snap)
        assert info.value.field == field
    for text in ("{", "[]", '{"format": "auction.live.snapshot", "version": 1}'):
        snap.write_text(text)
        with pytest.raises(EventLogError):
            open_market(log, snapshot=snap)


def test_header_keys_after_the_header_line_are_refused(tmp_path: Path) -> None:
    log, _, _ = written(tmp_path, flow(10))
    lines = log.read_text().splitlines()
    for bad in ([lines[1], lines[0], *lines[2:]],  # the header is not first
                [lines[0], json.dumps({"v": 1, **json.loads(lines[1])}), *lines[2:]]):
        log.write_text("\n".join(bad) + "\n")
        with pytest.raises(EventLogError):
            read_log(log)


def test_a_bad_fsync_policy_is_refused_before_any_file_is_made(tmp_path: Path) -> None:
    with pytest.raises(InvalidValueError) as info:
        open_market(tmp_path / "m.log", fsync="sometimes", **CONFIG)
    assert (info.value.field, info.value.value) == ("fsync", "sometimes")
    assert not (tmp_path / "m.log").exists()


def test_a_torn_last_line_is_cut(tmp_path: Path) -> None:
    log = tmp_path / "m.log"
    m = open_market(log, **CONFIG)
    run_all(m, flow(40))
    m.log.close()
    with open(log, "ab") as f:
        f.write(b'{"type":"in","event":{"kind":"sub')
    r = open_market(log)
    assert r.to_state() == m.to_state()


CHILD = textwrap.dedent("""
    import json, sys, time
    sys.path.insert(0, sys.argv[1])
    from auction.live import open_market, save_snapshot
    from tests.test_live_log import CONFIG, flow
    log, snap, slow = sys.argv[2], sys.argv[3], float(sys.argv[4])
    m = open_market(log, snapshot=snap, **CONFIG)
    for k, rec in enumerate(flow(400, seed=7)):
        m.handle(rec)  # a retry of an applied id is a no-op
        if k % 97 == 0:
            save_snapshot(m, snap)
        time.sleep(slow)
    print(json.dumps(m.to_state()))
""")


def test_sigkill_mid_epoch_recovers_with_nothing_lost_or_doubled(tmp_path: Path) -> None:
    log, snap, script = tmp_path / "m.log", tmp_path / "m.snap", tmp_path / "child.py"
    script.write_text(CHILD)
    args = [sys.executable, str(script), str(ROOT), str(log), str(snap)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([*args, "0.002"], env=env, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait until well into the stream
            if log.exists() and log.read_bytes().count(b'"type":"in"') > 150:
                break
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    killed_at = read_log(log)[1][-1][0]
    done = subprocess.run([*args, "0"], env=env, capture_output=True, text=True, timeout=120,
                          check=True)
    recovered = json.loads(done.stdout)
    clean = LiveMarket(**CONFIG)
    run_all(clean, flow(400, seed=7))
    assert recovered == json.loads(json.dumps(clean.to_state()))
    # every input exactly once, in order, and the whole log replays
    _, pairs = read_log(log)
    ids = [ev.id for ev, _ in pairs]
    assert len(ids) == len(set(ids))
    assert [ev.seq for ev, _ in pairs] == sorted(
        ev.seq for ev, _ in pairs)
    assert 0 < killed_at.seq < pairs[-1][0].seq
    assert replay(log).to_state() == clean.to_state()
