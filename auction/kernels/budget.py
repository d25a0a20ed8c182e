"""Work bounds, wall-clock deadlines and memory estimates shared by the iterative kernels.

Every iterative kernel counts its work (bids, pushes, relabels, edges scanned) and stops past a
``max_work`` bound derived from its theory, returning a status code instead of running on:

* `DONE`: finished; the result is what the kernel promises (optimal, for the exact kernels).
* `WORK_LIMIT`: the work bound was reached first.
* `DEADLINE`: the wall-clock deadline passed first.

Deadlines: numba code cannot read a clock in a way that can be cached to disk, so a kernel
takes a one-byte `stop` array instead and tests ``stop[0]`` every `CHECK_EVERY` units of work.
`stop_at` sets that byte from a timer thread at the deadline (a ``time.monotonic()`` value);
the kernels release the GIL (``nogil=True``), so the timer runs while they do, and the
pure-Python references yield the GIL on their own. The byte is read through the array on every
check, so a set flag stops the kernel within `CHECK_EVERY` units of work.

Memory: ``*_bytes`` functions give the bytes a kernel allocates for given sizes (its own
arrays, not its inputs), so a mechanism can refuse before allocating.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import numpy.typing as npt

__all__ = [
    "CHAIN_STEPS",
    "CHECK_EVERY",
    "DEADLINE",
    "DONE",
    "NO_LIMIT",
    "STATUS_NAMES",
    "WORK_LIMIT",
    "auction_bytes",
    "auction_work_bound",
    "exact_matching_bytes",
    "exact_matching_work_bound",
    "no_stop",
    "stop_at",
    "transport_bytes",
    "transport_work_bound",
    "vcg_bytes",
    "vcg_work_bound",
]

DONE = 0
#: Codes 1-3 are the flow kernel's overflow and internal-error statuses.
WORK_LIMIT = 4
DEADLINE = 5
STATUS_NAMES = {DONE: "done", WORK_LIMIT: "work_limit", DEADLINE: "deadline"}
#: No bound (the largest int64 the kernels compare against without overflow).
NO_LIMIT = 1 << 62
#: Work units between two reads of the stop flag.
CHECK_EVERY = 1024
#: Objects a VCG certificate walks per displaced person along zero-cost routes before it
#: gives up (`auction.kernels.assignment._certified_loss`).
CHAIN_STEPS = 128

StopFlag = npt.NDArray[np.uint8]
_I64 = 8


def no_stop() -> StopFlag:
    """A stop flag that is never set."""
    return np.zeros(1, dtype=np.uint8)


@contextmanager
def stop_at(deadline: float | None) -> Iterator[StopFlag]:
    """A stop flag set at `deadline` (``time.monotonic()`` seconds; None: never).

    A deadline already past sets the flag at once. The timer is cancelled on exit.
    """
    flag = no_stop()
    if deadline is None:
        yield flag
        return
    delay = deadline - time.monotonic()
    if delay <= 0:
        flag[0] = 1
        yield flag
        return
    timer = threading.Timer(delay, flag.fill, args=(1,))
    timer.daemon = True
    timer.start()
    try:
        yield flag
    finally:
        timer.cancel()


def _log2_ceil(x: int) -> int:
    return max(1, int(x).bit_length())


def auction_work_bound(n: int, m: int, edges: int, top_benefit: int, theta: int) -> int:
    """Bids allowed to `auction_matching`: ``4 (n + 1) (E + n + m)`` per scaling phase.

    Bertsekas and Eckstein (1988): with epsilon scaling the auction does O(n E) work per phase
    and ``log_theta(C) + 1`` phases (C the largest benefit); a bid scans one person's edges, so
    O(n (E + n + m)) bids per phase bound it with room (the constant 4 is a safety margin, not
    a measured rate: random markets take under 3 bids per person per phase).
    """
    phases = _log2_ceil(max(1, top_benefit)) // max(1, _log2_ceil(theta) - 1) + 2
    return min(NO_LIMIT, 4 * (n + 1) * (edges + n + m + 1) * phases)


def exact_matching_work_bound(n: int, m: int, edges: int) -> int:
    """Work of `exact_matching`: n Dijkstra searches of at most ``2 (E + m + 1)`` units each."""
    return min(NO_LIMIT, (n + 1) * (2 * (edges + m + 1) + n))


def vcg_work_bound(n: int, m: int, edges: int) -> int:
    """Work of `vcg_groups`: the object-optimal duals (one multi-source search, at most
    ``2 E + m`` units) and, per matched object, one search (``2 (E + m) + 1``), one walk of
    its zero-cost route (rows of distinct persons, at most E) and one certificate walk (at
    most `CHAIN_STEPS` objects)."""
    return min(NO_LIMIT,
               (min(n, m) + 2) * (2 * (edges + m + 1) + edges + CHAIN_STEPS) + m + 1)


def transport_work_bound(n: int, m: int, edges: int, top_weight: int, alpha: int) -> int:
    """Pushes + relabels allowed to the cost-scaling flow kernel.

    Goldberg and Tarjan (1990): per refine phase at most O(V^2) relabels and O(V^2 A)
    pushes for FIFO selection with O(V^3) overall; here ``V = n + m + 1`` nodes, A arcs, and
    ``log_alpha(C V) + 1`` phases. The bound is ``(4 V^2 + 2 V A) * phases``.
    """
    v = n + m + 1
    arcs = 2 * (edges + n + m)
    phases = _log2_ceil(max(1, top_weight) * (2 * min(n, m) + 3)) // max(
        1, _log2_ceil(alpha) - 1
    ) + 2
    return min(NO_LIMIT, (4 * v * v + 2 * v * arcs) * phases)


def auction_bytes(n: int, m: int, edges: int) -> int:
    """Bytes `auction_matching` allocates: the transposed graph and per-node state."""
    return _I64 * (3 * edges + (m + 1) + 2 * m + 2 * n + max(n, m))


def exact_matching_bytes(n: int, m: int, edges: int) -> int:
    """Bytes `exact_matching` allocates: edge rows, heap, and per-node labels."""
    return _I64 * (3 * (edges + 1) + 2 * n + 6 * m) + 2 * m


def vcg_bytes(n: int, m: int, edges: int) -> int:
    """Bytes `vcg_bonuses` allocates on top of the auction's solution (duals, heap, undo log)."""
    return (_I64 * (3 * (edges + 1) + 2 * n + 7 * m + 3 * (2 * n + 2 * m) + 3 + n)
            + 4 * (max(n, m) + 1) + 2 * m)


def transport_bytes(n: int, m: int, edges: int) -> int:
    """Bytes the flow kernel allocates: the residual network (4 int64 per arc) and node state."""
    v = n + m + 1
    arcs = 2 * (edges + n + m)
    return _I64 * (4 * arcs + 2 * edges + 8 * v + 2) + v
