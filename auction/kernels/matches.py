"""First matches in order: the counterpart prefixes of the live re-clear, for many orders in
one pass.

The live re-clear (`auction.live.incremental`) needs, for each changed order (a *seeker*), the
first counterparts in the counterpart side's order that it may trade with. The counterparts
are columns in that order (``value``, ``size``, ``floor``, ``group``); seeker ``i`` may take
counterpart ``j`` when

* the counterpart's group is one of the seeker's (``gptr``/``gseek``: the seekers of each
  group, by ``need`` ascending),
* ``value[j] >= need[i]``, ``size[j] <= cap[i]`` and ``floor[j] <= cap_floor[i]``,
* ``j >= start[i]`` and ``present[j]`` is False.

Offers seeking requests in priority order pass (max price, GPUs needed from one offer,
reputation floor) against (ask, GPUs, the provider's reputation); requests seeking offers in
rank order pass the negated (ask, GPUs, reputation) against the negated (max price, GPUs
needed, floor), and ``descending`` (the values never grow along the counterparts, as negated
asks in rank order), which ends the scan at the first value below every need.

`first_matches` scans the counterparts once for all seekers, each group's seekers only up to
the first whose need its value misses (a seeker that has all its matches leaves the lists it
is met in), and stops when every seeker has ``want[i]`` matches.
`group_lists` builds the per-group seeker lists. `key_ranges` narrows rows found by a first
sort key to those equal in the second too. `splice` applies an epoch's deletes and
inserts to one sorted column in a single pass. Both are plain loops over arrays; their
``py_func`` is the pure-Python reference the tests compare with.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from auction.kernels.jit import lazy_njit

__all__ = ["contention", "first_matches", "group_lists", "key_ranges", "leftovers", "splice",
           "take_rows"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@lazy_njit(nogil=True)
def group_lists(n_groups: int, sptr: IntArray, sgroups: IntArray, order: IntArray
                ) -> tuple[IntArray, IntArray]:
    """The seekers of each group: seeker ``i`` belongs to the groups
    ``sgroups[sptr[i]:sptr[i + 1]]``; returns the CSR by group, ``seekers of g =
    gseek[gptr[g]:gptr[g + 1]]``, each list in the seekers' `order`. Groups are ``0 <= g <
    n_groups``."""
    gptr = np.zeros(n_groups + 1, dtype=np.int64)
    for t in range(len(sgroups)):
        gptr[sgroups[t] + 1] += 1
    for g in range(n_groups):
        gptr[g + 1] += gptr[g]
    fill = gptr[:-1].copy()
    gseek = np.empty(len(sgroups), dtype=np.int64)
    for i in order:
        for t in range(sptr[i], sptr[i + 1]):
            g = sgroups[t]
            gseek[fill[g]] = i
            fill[g] += 1
    return gptr, gseek


@lazy_njit(nogil=True)
def contention(n_groups: int, sptr: IntArray, sgroups: IntArray, order: IntArray,
               weight: IntArray) -> IntArray:
    """For each seeker, the most `weight` that seekers before it in `order` put on any one of
    its groups (seekers and groups as in `group_lists`): how much of the counterparts it
    shares the earlier ones may take first."""
    load = np.zeros(n_groups, dtype=np.int64)
    out = np.zeros(len(sptr) - 1, dtype=np.int64)
    for i in order:
        most = 0
        for t in range(sptr[i], sptr[i + 1]):
            most = max(most, load[sgroups[t]])
        out[i] = most
        for t in range(sptr[i], sptr[i + 1]):
            load[sgroups[t]] += weight[i]
    return out


@lazy_njit(nogil=True)
def first_matches(
    value: IntArray,
    size: IntArray,
    floor: FloatArray,
    group: IntArray,
    present: BoolArray,
    gptr: IntArray,
    gseek: IntArray,
    need: IntArray,
    cap: IntArray,
    cap_floor: FloatArray,
    want: IntArray,
    start: IntArray,
    descending: bool,
) -> tuple[IntArray, IntArray]:
    """For each seeker ``i``, the positions of its first ``want[i]`` matches (see the module
    docstring), in order: ``out[optr[i]:optr[i] + count[i]]`` with ``optr`` the running sum
    of ``want``. Returns ``(out, count)``; ``count[i] < want[i]`` means there are no more."""
    k = len(want)
    optr = np.zeros(k + 1, dtype=np.int64)
    for i in range(k):
        optr[i + 1] = optr[i] + want[i]
    out = np.full(optr[k], -1, dtype=np.int64)
    count = np.zeros(k, dtype=np.int64)
    left = 0
    lo = len(value)
    least = np.iinfo(np.int64).max
    for i in range(k):
        if want[i] > 0:
            left += 1
            lo = min(lo, start[i])
            least = min(least, need[i])
    if left == 0:
        return out, count
    # each group's list as a linked list, so that a seeker with all its matches is unlinked
    # the first time a scan meets it there (and costs nothing after)
    head = gptr[:-1].copy()
    link = np.arange(1, len(gseek) + 1, dtype=np.int64)
    for j in range(max(lo, 0), len(value)):
        v = value[j]
        if descending and v < least:
            break
        if present[j]:
            continue
        g = group[j]
        end = gptr[g + 1]
        prev = -1
        t = head[g]
        while t < end:
            i = gseek[t]
            if need[i] > v:
                break
            c = count[i]
            if c >= want[i]:  # full (or never asked): unlink it
                t = link[t]
                if prev < 0:
                    head[g] = t
                else:
                    link[prev] = t
                continue
            if j >= start[i] and size[j] <= cap[i] and floor[j] <= cap_floor[i]:
                out[optr[i] + c] = j
                count[i] = c + 1
                if c + 1 == want[i]:
                    left -= 1
            prev = t
            t = link[t]
        if left == 0:
            break
    return out, count


@lazy_njit(nogil=True)
def leftovers(out: IntArray, count: IntArray, want: IntArray, order: IntArray, cap: IntArray,
              amount: IntArray, size: IntArray) -> IntArray:
    """A rough play of the seekers' prefixes (`first_matches` output, `want` slots each):
    seekers in `order` (offers by rank) take their matches in turn, each match (a request of
    ``amount[j]`` GPUs, divisible when ``size[j] < amount[j]``) giving what it still needs;
    returns the capacity each seeker has left. A seeker with capacity left likely needs a
    longer prefix: the re-clear sizes prefixes with it, never trusts it."""
    rest = amount.copy()
    left = cap.copy()
    optr = np.zeros(len(want) + 1, dtype=np.int64)
    for i in range(len(want)):
        optr[i + 1] = optr[i] + want[i]
    for i in order:
        c = left[i]
        for t in range(optr[i], optr[i] + count[i]):
            if c == 0:
                break
            j = out[t]
            g = rest[j]
            if g == 0 or (size[j] >= amount[j] and g > c):
                continue
            x = min(g, c)
            rest[j] -= x
            c -= x
        left[i] = c
    return left


@lazy_njit(nogil=True)
def take_rows(table: npt.NDArray[np.uint32], rows: IntArray) -> npt.NDArray[np.uint32]:
    """``table[rows]`` for a 2-D array (the characters of a string column viewed as
    ``uint32``), a row at a time: numpy copies string items one call each."""
    width = table.shape[1]
    out = np.empty((len(rows), width), dtype=table.dtype)
    for i in range(len(rows)):
        r = rows[i]
        for c in range(width):
            out[i, c] = table[r, c]
    return out


@lazy_njit(nogil=True)
def splice(old: npt.NDArray[np.generic], gone: IntArray, at: IntArray,
           values: npt.NDArray[np.generic]) -> npt.NDArray[np.generic]:
    """``np.insert(np.delete(old, gone), at, values)`` in one pass, copying runs: `gone` are
    distinct positions in `old`, ascending; `at` are positions in `old` without them,
    non-decreasing (``values[k]`` goes before the ``at[k]``-th kept item, after the
    values before it)."""
    n, g_n, a_n = len(old), len(gone), len(at)
    out = np.empty(n - g_n + a_n, dtype=old.dtype)
    i = 0  # read position in old
    o = 0  # write position in out
    kept = 0  # items of old copied so far
    g = 0
    a = 0
    while True:
        if a < a_n and at[a] == kept:
            out[o] = values[a]
            o += 1
            a += 1
            continue
        if g < g_n and gone[g] == i:
            i += 1
            g += 1
            continue
        if i >= n:
            break
        stop = gone[g] if g < g_n else n
        if a < a_n:
            stop = min(stop, i + at[a] - kept)
        out[o:o + stop - i] = old[i:stop]
        o += stop - i
        kept += stop - i
        i = stop
    return out


@lazy_njit(nogil=True)
def key_ranges(second: IntArray, want: IntArray, lo: IntArray, hi: IntArray
               ) -> tuple[IntArray, IntArray]:
    """Per query i, the rows of ``[lo[i], hi[i])`` (rows equal in a first sort key, so sorted
    by `second` there) whose `second` equals ``want[i]``, as ``[out_lo[i], out_hi[i])``: two
    binary searches, where `np.searchsorted` would need a Python call per query."""
    n = len(want)
    out_lo = np.empty(n, dtype=np.int64)
    out_hi = np.empty(n, dtype=np.int64)
    for i in range(n):
        w = want[i]
        a = lo[i]
        b = hi[i]
        while a < b:
            m = (a + b) >> 1
            if second[m] < w:
                a = m + 1
            else:
                b = m
        out_lo[i] = a
        b = hi[i]
        while a < b:
            m = (a + b) >> 1
            if second[m] <= w:
                a = m + 1
            else:
                b = m
        out_hi[i] = a
    return out_lo, out_hi
