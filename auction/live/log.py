"""Durability: an append-only JSON-lines event log, snapshots, replay and crash recovery.

Log format (`LOG_FORMAT`, version `LOG_VERSION`): one JSON object per line. The first line
is the header, ``{"format": "auction.live.log", "version": 1, "type": "header", "config":
{...}}`` (the library's one JSON header, then the market's ``config``); then, per input, an
``"in"`` line (the input event) written and flushed *before* the input is applied, and an
``"out"`` line (its output events) after. Logs of the older form, where every line carries
``"v": 1`` instead of the header keys, still read, and a log is appended to in its own form.
A header naming another format or version raises `UnknownLogSchemaError` (an
`EventLogError`). Snapshots open with ``{"format": "auction.live.snapshot", "version": 1}``
(older ones with ``"v": 1``).

fsync policy (``fsync=``):

* ``"always"`` (default): every ``in`` line is fsynced before the input is applied, so an
  input whose call returned is on disk. ``out`` lines are flushed, not fsynced: they are
  recomputed by replay.
* ``"never"``: lines are flushed to the OS only; a power loss may drop the last inputs, a
  process crash does not.

Recovery (`open_market`): load the snapshot if given (written atomically by
`save_snapshot`: temp file, fsync, rename), then replay the log's inputs after the snapshot's
``seq``, checking each replayed input's outputs against the logged ones (`EventLogError` on
any difference). A torn last line (a crash mid-write) is cut off: its input never returned to
its caller, who retries it; input ids make retries idempotent.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from auction._formats import header, read_version
from auction.errors import EventLogError, InvalidValueError, UnknownLogSchemaError
from auction.live.engine import LiveMarket
from auction.live.events import Event

__all__ = [
    "LOG_FORMAT",
    "LOG_VERSION",
    "SNAPSHOT_FORMAT",
    "EventLog",
    "open_market",
    "read_log",
    "replay",
    "save_snapshot",
]

#: The ``"format"`` of an event log's header line.
LOG_FORMAT = "auction.live.log"
#: The version of the log (and snapshot) format written; the older ``"v": 1`` form still reads.
LOG_VERSION = 1
#: The ``"format"`` of a snapshot written by `save_snapshot`.
SNAPSHOT_FORMAT = "auction.live.snapshot"
_FSYNC = ("always", "never")
_OLD_KEY = "v"  # the version key of every line (and snapshot) of the older form


def _line(obj: Mapping[str, Any], old: bool) -> bytes:
    """One log line; in a log of the older form every line carries ``"v"``."""
    rec = {_OLD_KEY: LOG_VERSION, **obj} if old else dict(obj)
    return (json.dumps(rec, separators=(",", ":")) + "\n").encode()


def _is_old(rec: Mapping[str, Any]) -> bool:
    """Whether `rec` (a log's first line, or a snapshot) has the older ``"v"`` header."""
    return _OLD_KEY in rec and "format" not in rec and "version" not in rec


def _check_header(rec: Mapping[str, Any], name: str, document: str) -> bool:
    """Check the header of `rec` (format `name`); whether it is of the older form.

    Raises:
        UnknownLogSchemaError: another format or version, naming the key.
    """
    if not _is_old(rec):
        read_version(rec, name, (LOG_VERSION,), legacy=(), document=document,
                     error=UnknownLogSchemaError)
        return False
    if type(rec[_OLD_KEY]) is not int or rec[_OLD_KEY] != LOG_VERSION:
        raise UnknownLogSchemaError(rec[_OLD_KEY], [f"{name}/{LOG_VERSION}"],
                                    document=document, field=_OLD_KEY)
    return True


def _first_line(path: Path) -> dict[str, Any] | None:
    """The first line of a log, parsed, or None when it is not a JSON object."""
    with open(path, "rb") as f:
        raw = f.readline()
    try:
        rec = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return rec if isinstance(rec, dict) else None


class EventLog:
    """An append-only event log file (see the module docstring).

    Args:
        path: the file; created with a header from `config` when missing or empty.
        config: the market's `LiveMarket.config`, for the header of a new log.
        fsync: ``"always"`` or ``"never"``.
    """

    def __init__(self, path: str | os.PathLike[str], config: Mapping[str, Any] | None = None,
                 *, fsync: str = "always") -> None:
        if fsync not in _FSYNC:
            raise InvalidValueError("fsync", fsync, f"must be one of {', '.join(_FSYNC)}")
        self.path = Path(path)
        self.fsync = fsync
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        self._old = False  # append in the log's own form
        if not fresh:
            _cut_torn_tail(self.path)
            first = _first_line(self.path)
            self._old = first is not None and _is_old(first)
        self._f: IO[bytes] = open(self.path, "ab")  # noqa: SIM115 - closed by close()
        if fresh:
            if config is None:
                raise EventLogError(f"{self.path}: a new log needs the market's config")
            line = {**header(LOG_FORMAT, LOG_VERSION), "type": "header", "config": dict(config)}
            self._write(_line(line, False), sync=True)

    def _write(self, data: bytes, *, sync: bool) -> None:
        self._f.write(data)
        self._f.flush()
        if sync and self.fsync == "always":
            os.fsync(self._f.fileno())

    def write_input(self, ev: Event) -> None:
        """Append an input event (before it is applied)."""
        self._write(_line({"type": "in", "event": ev.to_record()}, self._old), sync=True)

    def write_outputs(self, seq: int, outs: list[Event]) -> None:
        """Append the output events of the input with sequence number `seq`."""
        self._write(_line({"type": "out", "cause": seq,
                           "events": [e.to_record() for e in outs]}, self._old), sync=False)

    def close(self) -> None:
        self._f.close()


def _cut_torn_tail(path: Path) -> None:
    """Truncate a last line that is not complete JSON (a crash in the middle of a write)."""
    data = path.read_bytes()
    end = len(data)
    if data.endswith(b"\n"):
        return
    cut = data.rfind(b"\n") + 1
    if cut < end:
        with open(path, "r+b") as f:
            f.truncate(cut)
            f.flush()
            os.fsync(f.fileno())


def read_log(
    path: str | os.PathLike[str],
) -> tuple[dict[str, Any], list[tuple[Event, list[dict[str, Any]] | None]]]:
    """The header config and the (input, logged outputs or None) pairs of a log.

    Raises:
        UnknownLogSchemaError: the header names another format or version.
        EventLogError: any other fault of the file.
    """
    config: dict[str, Any] | None = None
    pairs: list[tuple[Event, list[dict[str, Any]] | None]] = []
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    old: bool | None = None  # the form, known from the first line
    for k, raw in enumerate(lines):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            if k == len(lines) - 1:
                break  # a torn last line
            raise EventLogError(f"{path}: line {k + 1} is not JSON") from None
        if not isinstance(rec, dict):
            raise EventLogError(f"{path}: line {k + 1} is not a JSON object")
        if old is None:
            old = _check_header(rec, LOG_FORMAT, f"{path}, line {k + 1}")
            if not old and rec.get("type") != "header":
                raise EventLogError(f"{path}: line {k + 1}: the header line comes first")
        elif old:  # the older form: every line carries its version
            _check_header(rec, LOG_FORMAT, f"{path}, line {k + 1}")
        elif not {_OLD_KEY, "format", "version"}.isdisjoint(rec):
            raise EventLogError(f"{path}: line {k + 1}: a header key after the header line")
        kind = rec.get("type")
        missing = {"header": "config", "in": "event", "out": "events"}.get(
            kind if isinstance(kind, str) else "")
        if missing is not None and missing not in rec:
            raise EventLogError(f"{path}: line {k + 1}: {kind} record without {missing!r}")
        if kind == "header":
            if not isinstance(rec["config"], dict):
                raise EventLogError(f"{path}: line {k + 1}: config is not an object")
            config = rec["config"]
        elif kind == "in":
            pairs.append((Event.from_record(rec["event"]), None))
        elif kind == "out":
            if not pairs or pairs[-1][0].seq != rec.get("cause") or pairs[-1][1] is not None:
                raise EventLogError(f"{path}: line {k + 1}: outputs without their input")
            if not isinstance(rec["events"], list):
                raise EventLogError(f"{path}: line {k + 1}: events is not a list")
            pairs[-1] = (pairs[-1][0], list(rec["events"]))
        else:
            raise EventLogError(f"{path}: line {k + 1}: unknown type {kind!r}")
    if config is None:
        raise EventLogError(f"{path}: no header")
    return config, pairs


def _replay_into(market: LiveMarket, pairs: list[tuple[Event, list[dict[str, Any]] | None]],
                 after: int) -> None:
    for ev, logged in pairs:
        if ev.seq <= after:
            continue
        outs = market.replay_input(ev)
        if logged is not None and [e.to_record() for e in outs] != logged:
            raise EventLogError(f"replaying input {ev.id!r} (seq {ev.seq}) gave other outputs")


def replay(path: str | os.PathLike[str]) -> LiveMarket:
    """A new market rebuilt from a whole log; every input's outputs must equal the logged
    ones, bit for bit (`EventLogError` otherwise)."""
    config, pairs = read_log(path)
    market = LiveMarket(**config)
    _replay_into(market, pairs, 0)
    return market


def save_snapshot(market: LiveMarket, path: str | os.PathLike[str]) -> None:
    """Write the market's state atomically (temp file, fsync, rename)."""
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    data = json.dumps({**header(SNAPSHOT_FORMAT, LOG_VERSION),
                       "state": market.to_state()}).encode()
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, p)


def open_market(
    log_path: str | os.PathLike[str],
    *,
    snapshot: str | os.PathLike[str] | None = None,
    fsync: str = "always",
    **config: Any,
) -> LiveMarket:
    """A market writing to `log_path`: a new one built from `config` when the log is missing
    or empty, else the one the snapshot (if any) and the log's tail recover."""
    p = Path(log_path)
    if not p.exists() or p.stat().st_size == 0:
        market = LiveMarket(**config)
        market.log = EventLog(p, market.config(), fsync=fsync)
        return market
    _cut_torn_tail(p)
    header, pairs = read_log(p)
    after = 0
    if snapshot is not None and Path(snapshot).exists():
        try:
            snap = json.loads(Path(snapshot).read_bytes())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise EventLogError(f"{snapshot}: not JSON") from None
        if not isinstance(snap, dict) or "state" not in snap:
            raise EventLogError(f"{snapshot}: not a snapshot (a JSON object with a state)")
        _check_header(snap, SNAPSHOT_FORMAT, str(snapshot))
        market = LiveMarket.from_state(snap["state"])
        after = market.seq
    else:
        market = LiveMarket(**header)
    log = EventLog(p, fsync=fsync)
    # inputs logged without outputs (a crash mid-apply) get their outputs written now
    market.log = None
    for ev, logged in pairs:
        if ev.seq <= after:
            continue
        if logged is None:
            market.log = _OutputsOnly(log)
        _replay_into(market, [(ev, logged)], after)
        market.log = None
    market.log = log
    return market


class _OutputsOnly:
    """Writes the outputs of a replayed input whose outputs were never logged."""

    def __init__(self, log: EventLog) -> None:
        self._log = log

    def write_input(self, ev: Event) -> None:
        return None

    def write_outputs(self, seq: int, outs: list[Event]) -> None:
        self._log.write_outputs(seq, outs)
