"""Time and memory limits shared by every mechanism.

`Deadline`: the wall-clock budget of one `clear` (model build, solve, fallback and pricing),
started once by the base class and passed down to problem builders and solvers, which ask it
how long they may run (`Deadline.remaining`) and whether the time is up (`Deadline.expired`).

`watch`: the deadline of the `clear` under way, for code that has no deadline argument (the
`Market`'s eligibility join and pair build, which mechanisms reach through the market).
`auction.clear` starts the deadline *before* it builds the market and watches it for the
mechanism, whose own clear then takes it over (`deadline_for`), so the market build counts
against ``time_limit``; `check_watched` raises `TimeLimitError` past it, and
`watched_monotonic` gives its end for a kernel's stop flag (`auction.kernels.budget.stop_at`).
Outside a watch nothing is checked.

`default_max_memory` and `check_memory`: before a mechanism allocates per-pair arrays it
estimates what it will hold and, past ``max_memory``, refuses with `MemoryLimitError` naming
the estimate and the ways out, instead of being killed by the operating system.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import attrs

from auction.errors import MemoryLimitError, TimeLimitError

__all__ = [
    "DEFAULT_MEMORY_SHARE",
    "DEFAULT_TIME_LIMIT",
    "Deadline",
    "check_memory",
    "check_watched",
    "deadline_for",
    "default_max_memory",
    "physical_memory",
    "watch",
    "watched_monotonic",
]

#: Seconds every mechanism may take by default (``time_limit=None``: no limit).
DEFAULT_TIME_LIMIT = 30.0
#: Share of the machine's physical memory a mechanism may hold by default.
DEFAULT_MEMORY_SHARE = 0.5


@attrs.frozen
class Deadline:
    """A wall-clock budget: `limit` seconds (None: unlimited) from `start` (perf_counter)."""

    limit: float | None
    start: float = attrs.field(factory=time.perf_counter)

    @classmethod
    def after(cls, seconds: float | None) -> Deadline:
        """A deadline `seconds` from now."""
        return cls(None if seconds is None else float(seconds))

    def elapsed(self) -> float:
        """Seconds since the start."""
        return time.perf_counter() - self.start

    def remaining(self, share: float = 1.0, *, at_least: float = 0.0) -> float | None:
        """Seconds left times `share` (at least `at_least`); None when unlimited.

        A stage that has later stages to leave time for asks for a share of what is left.
        """
        if self.limit is None:
            return None
        return max(at_least, (self.limit - self.elapsed()) * share)

    def expired(self) -> bool:
        """True when the time is up."""
        return self.limit is not None and self.elapsed() >= self.limit

    def check(self, mechanism: str, stage: str) -> None:
        """Raise `TimeLimitError` when the time is up (for stages with nothing valid yet)."""
        if self.limit is not None and self.expired():
            raise TimeLimitError(mechanism, self.limit, stage)

    def monotonic(self) -> float | None:
        """The end as a ``time.monotonic()`` value, for a kernel's stop flag (None: none)."""
        left = self.remaining()
        return None if left is None else time.monotonic() + left


@attrs.frozen
class _Watch:
    deadline: Deadline
    mechanism: str
    owner: object


_WATCH: ContextVar[_Watch | None] = ContextVar("auction_deadline", default=None)


@contextmanager
def watch(deadline: Deadline, mechanism: str, owner: object = None) -> Iterator[Deadline]:
    """Make `deadline` the one code under this context checks (`check_watched`), as the
    deadline of `mechanism`'s clear; `owner` (the mechanism object) takes it over through
    `deadline_for`. Context-local: other threads and tasks are not affected."""
    token = _WATCH.set(_Watch(deadline, mechanism, owner))
    try:
        yield deadline
    finally:
        _WATCH.reset(token)


def deadline_for(owner: object, limit: float | None) -> Deadline:
    """The deadline watched for `owner` (started by `auction.clear` before the market build),
    or a new one of `limit` seconds."""
    current = _WATCH.get()
    if current is not None and current.owner is owner and owner is not None:
        return current.deadline
    return Deadline.after(limit)


def check_watched(stage: str, *, stopped: bool = False) -> None:
    """Raise `TimeLimitError` (naming the watched mechanism and `stage`) when the watched
    deadline has passed, or when `stopped` (a stop flag set at that deadline fired); nothing
    outside a watch."""
    current = _WATCH.get()
    if current is None or current.deadline.limit is None:
        return
    if stopped:
        raise TimeLimitError(current.mechanism, current.deadline.limit, stage)
    current.deadline.check(current.mechanism, stage)


def watched_monotonic() -> float | None:
    """The watched deadline's end as a ``time.monotonic()`` value (None: none watched, or
    no limit)."""
    current = _WATCH.get()
    return None if current is None else current.deadline.monotonic()


def physical_memory() -> int:
    """Bytes of physical memory on this machine (0 when the system does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):  # not POSIX
        return 0


def default_max_memory() -> int:
    """`DEFAULT_MEMORY_SHARE` of the machine's physical memory (16 GiB if it is unknown)."""
    total = physical_memory()
    return int(total * DEFAULT_MEMORY_SHARE) if total else 16 * 2**30


def check_memory(
    mechanism: str, what: str, estimate: int, max_memory: int | None, advice: str
) -> None:
    """Raise `MemoryLimitError` when `estimate` bytes exceed `max_memory` (None: the default).
    """
    limit = default_max_memory() if max_memory is None else int(max_memory)
    if estimate > limit:
        raise MemoryLimitError(mechanism, what, estimate, limit, advice)


def seconds(value: float | None) -> float:
    """A limit in seconds for a solver option (math.inf when unlimited)."""
    return math.inf if value is None else float(value)
