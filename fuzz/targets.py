"""Fuzz targets: one function per target taking raw bytes; only `AuctionError` may escape
them silently (anything else is a finding). Shared by the atheris harnesses and `run.py`."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterator

import auction.cli
import auction.scale.sweep
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


#: Commands whose run time grows with their arguments (epochs, seeds, designs) or that compile
#: every kernel (warmup): the `cli` target parses and checks their arguments in full but does
#: not run them, since a long run on valid arguments is no bug and the per-input time limit
#: would report it as a hang. `clear`, `example-book` and `mechanisms` run end to end.
PARSED_ONLY = ("demo", "simulate", "sweep", "compare", "warmup")


def _parsed_only(args: argparse.Namespace) -> int:
    return 0


def cli(data: bytes) -> None:
    """The CLI on arbitrary argv (NUL-separated): exit 0, 1 or 2, no traceback; exit 2 prints
    exactly one line, an ``error:`` line or (no command) the usage with a hint."""
    argv = [a for a in data.decode("utf-8", "replace").split("\0") if a not in ("-o", "--output")]
    err = io.StringIO()
    with contextlib.ExitStack() as stack:
        for name in PARSED_ONLY:
            stack.enter_context(_run_nothing(name))
        stack.enter_context(contextlib.redirect_stderr(err))
        stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
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


@contextlib.contextmanager
def _run_nothing(command: str) -> Iterator[None]:
    """`command`'s function replaced by one that runs nothing (see `PARSED_ONLY`)."""
    module = auction.scale.sweep if command == "sweep" else auction.cli
    attr = f"_cmd_{command}"
    saved = getattr(module, attr)
    setattr(module, attr, _parsed_only)
    try:
        yield
    finally:
        setattr(module, attr, saved)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "book_json": book_json, "from_columns": from_columns, "constraints": constraints,
    "event_log": event_log, "cli": cli,
}
