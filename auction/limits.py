"""Time and memory limits shared by every mechanism.

`Deadline`: the wall-clock budget of one `clear` (model build, solve, fallback and pricing),
started once by the base class and passed down to problem builders and solvers, which ask it
how long they may run (`Deadline.remaining`) and whether the time is up (`Deadline.expired`).

`default_max_memory` and `check_memory`: before a mechanism allocates per-pair arrays it
estimates what it will hold and, past ``max_memory``, refuses with `MemoryLimitError` naming
the estimate and the ways out, instead of being killed by the operating system.
"""

from __future__ import annotations

import math
import os
import time

import attrs

from auction.errors import MemoryLimitError, TimeLimitError

__all__ = [
    "DEFAULT_MEMORY_SHARE",
    "DEFAULT_TIME_LIMIT",
    "Deadline",
    "check_memory",
    "default_max_memory",
    "physical_memory",
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
