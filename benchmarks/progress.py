"""Live benchmark output: rows print as they are measured, long steps show a progress line.

A benchmark that holds its timings for the end prints nothing for minutes; these helpers make
each printed line reach the terminal (or a pipe) at once and show, on stderr, which step is
running and for how long. No dependency: a small printer, not tqdm.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO

__all__ = ["Progress", "live_stdout"]


def live_stdout() -> None:
    """Flush stdout at every line, even into a pipe or a file."""
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(line_buffering=True)


class Progress:
    """A progress bar on stderr: ``with Progress(3, "10^6 requests") as p: p.step("market")``.

    On a terminal the bar redraws one line; elsewhere (a log file) each step is one line.
    """

    def __init__(self, total: int, label: str, stream: TextIO | None = None) -> None:
        self.total = max(1, total)
        self.label = label
        self.stream = sys.stderr if stream is None else stream
        self.count = 0
        self.start = time.perf_counter()
        self._width = 0
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def step(self, what: str) -> None:
        """Say that step `what` starts now."""
        self.count += 1
        filled = 20 * (self.count - 1) // self.total
        bar = "#" * filled + "-" * (20 - filled)
        text = (f"[{bar}] {self.count}/{self.total} {self.label}: {what} "
                f"({time.perf_counter() - self.start:.0f} s)")
        if self._tty:
            self.stream.write("\r" + text.ljust(self._width))
            self._width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._tty and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
        self._width = 0

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
