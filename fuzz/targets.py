"""Fuzz targets: one function per target taking raw bytes; only `AuctionError` may escape
them silently (anything else is a finding). Shared by the atheris harnesses and `run.py`."""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from collections.abc import Callable

from auction import AuctionError, OrderBook
from auction.cli import main
from auction.constraints import parse


def book_json(data: bytes) -> None:
    """`OrderBook.from_json` on arbitrary bytes."""
    with contextlib.suppress(AuctionError):
        OrderBook.from_json(data)


def from_columns(data: bytes) -> None:
    """`OrderBook.from_columns` on columns decoded from JSON (objects of lists)."""
    try:
        cols = json.loads(data)
    except (ValueError, RecursionError):
        return
    if not isinstance(cols, dict):
        return
    with contextlib.suppress(AuctionError):
        OrderBook.from_columns(offers=cols.get("offers"), requests=cols.get("requests"))


def constraints(data: bytes) -> None:
    """`auction.constraints.parse` on arbitrary text."""
    with contextlib.suppress(AuctionError):
        parse(data.decode("utf-8", "replace"))


def event_log(data: bytes) -> None:
    """The live event-log reader on an arbitrary file."""
    from auction.live.log import read_log

    fd, path = tempfile.mkstemp(suffix=".log")
    try:
        os.write(fd, data)
        os.close(fd)
        with contextlib.suppress(AuctionError):
            read_log(path)
    finally:
        os.unlink(path)


def cli(data: bytes) -> None:
    """The CLI on arbitrary argv (NUL-separated): exit 0, 1 or 2, no traceback; exit 2 prints
    exactly one line, an ``error:`` line or (no command) the usage with a hint."""
    argv = [a for a in data.decode("utf-8", "replace").split("\0") if a not in ("-o", "--output")]
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 2
    text = err.getvalue()
    if "Traceback" in text or code not in (0, 1, 2):
        raise RuntimeError(f"cli {argv!r}: exit {code}: {text}")
    if code == 2 and (len(text.splitlines()) != 1
                      or not (text.startswith("usage:") or "error:" in text)):
        raise RuntimeError(f"cli {argv!r}: not one error line: {text}")


TARGETS: dict[str, Callable[[bytes], None]] = {
    "book_json": book_json, "from_columns": from_columns, "constraints": constraints,
    "event_log": event_log, "cli": cli,
}
