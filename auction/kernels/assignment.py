"""Maximum-weight bipartite matching by the forward/reverse auction algorithm (Bertsekas).

Persons (requests) bid for objects (offers) and objects bid for persons, with epsilon scaling,
on a CSR graph of integer benefits. Either side may stay unmatched (value 0), so this solves
the asymmetric, sparse problem directly, without dummy nodes. Optimality conditions kept at all
times (epsilon-complementary slackness, eps-CS): for every edge (i, j),
``profit[i] + price[j] >= a[i, j] - eps``, with equality on matched pairs; ``price >= 0``;
unmatched objects end each phase at price 0, unmatched persons at profit 0.

* Forward step (person i): best value ``v1 = max_j a_ij - p_j`` and second best ``v2``
  (at least 0, the value of staying out). If ``v1 <= 0`` i stays out; else i takes the best
  object and raises its price by ``v1 - v2 + eps``, displacing the former holder.
* Reverse step (unmatched object j with a positive price): best ``b1 = max_i a_ij - profit_i``
  and second best ``b2``. If ``b1 <= eps`` the price drops to 0; else j takes the best person
  at price ``max(0, b2 - eps)``, freeing that person's former object.

Epsilon starts at ``max(1, largest benefit // theta)`` and shrinks by `theta` each phase down
to 1; assignments are reset at each phase, prices kept. With eps = 1 a matching satisfying
eps-CS is within n (persons) of the optimum in benefit units; the caller scales integer
welfare weights so that this is less than one unit of welfare (see
`auction.mechanisms.assignment.scaled_benefits`): exact.

`vcg_bonuses` re-solves the market without each group of objects (a provider's offers) by
shortest augmenting paths (Dijkstra, Hungarian dual updates) warm-started from exact integer
duals rounded from the auction's prices (`exact_duals`), one path per displaced person, undoing
its changes afterwards. Total work at most one O(E log E) search per matched object; each
search settles only the objects whose reduced distance is below the path's. (A warm-started
auction at eps = 1 was used before: on the example book its price wars ran for hours, since a
bid at eps = 1 raises a price by as little as 1 unit of ``w * (2n + 1)``.)

Work bounds and deadlines: `exact_matching` and `vcg_groups` take ``max_work`` (edges scanned
plus heap pops) and return a status (`DONE`, `WORK_LIMIT`); `vcg_groups` resumes from the group
it stopped at, so a caller can run it in slices and test a wall-clock deadline between them
(`auction.kernels.budget`).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from auction.kernels.budget import (
    CHAIN_STEPS,
    CHECK_EVERY,
    DEADLINE,
    DONE,
    WORK_LIMIT,
    auction_work_bound,
    stop_at,
    vcg_work_bound,
)
from auction.kernels.jit import KernelGroup

__all__ = [
    "DEADLINE", "DONE", "WORK_LIMIT", "auction_matching", "auction_matching_bounded",
    "check_eps_cs", "exact_duals", "exact_matching", "max_duals", "solve_bounded", "transpose",
    "vcg_bonuses", "vcg_bonuses_bounded", "vcg_groups", "vcg_hybrid",
]

IntArray = npt.NDArray[np.int64]
_group = KernelGroup(nogil=True)
NEG = -(1 << 62)
#: Price that takes an object out of the market: no benefit (< 2**61) can pay it.
UNREACHABLE = 1 << 61
NO_LIMIT = 1 << 62
#: Bid budget per displaced person (plus 16) of the local VCG auction before shortest paths.
LOCAL_BIDS = 64
#: Work units (edges scanned, heap pops) per local-auction bid that a group's shortest-path
#: re-solve may spend before the local auction is tried instead.
SEARCH_FIRST = 1
#: Once the cheap tries (capped search, local auction) have finished on fewer than one group
#: in this many (after at least this many tries), a group where both gave up sends the next
#: `tries` groups straight to uncapped searches, then probes again: on markets where every
#: removal needs long searches (sparse d = 30, dense) the cheap tries are only overhead, and
#: the probes cost O(sqrt(groups)) tries.
SKIP_AFTER = 16
#: `vcg_hybrid` sends each group one of two ways, cheap tries first (local auction, capped
#: search) or an uncapped search at once, whichever has read fewer edges per group so far;
#: each way is first tried on this many groups ...
PROBES = 8
#: ... and the other way again on every this-many-th group, so the averages stay current.
PROBE_EVERY = 32
#: `_by_slack` sorts at most this many cheapest edges per person (the rest follow, dearer).
SORTED = 32
#: Quickselect rounds before `_select` sorts what is left (a worst-case bound).
SELECT_ROUNDS = 64


@_group.add
def transpose(
    n: int, m: int, indptr: IntArray, cols: IntArray, a: IntArray
) -> tuple[IntArray, IntArray, IntArray, IntArray]:
    """Object-major copy of the graph: tptr, and per entry its person, forward edge, benefit."""
    return _transposed(n, m, indptr, cols, a, True)


@_group.add
def _transposed(
    n: int, m: int, indptr: IntArray, cols: IntArray, a: IntArray, edges: bool
) -> tuple[IntArray, IntArray, IntArray, IntArray]:
    """`transpose`; without `edges` the forward edges are left out (an empty array): one
    scattered array less to write, the costliest part on dense markets."""
    tptr = np.zeros(m + 1, dtype=np.int64)
    for e in range(len(cols)):
        tptr[cols[e] + 1] += 1
    for j in range(m):
        tptr[j + 1] += tptr[j]
    pos = tptr[:-1].copy()
    trow = np.empty(len(cols), dtype=np.int64)
    tedge = np.empty(len(cols) if edges else 0, dtype=np.int64)
    ta = np.empty(len(cols), dtype=np.int64)
    for i in range(n):
        for e in range(indptr[i], indptr[i + 1]):
            j = cols[e]
            trow[pos[j]] = i
            if edges:
                tedge[pos[j]] = e
            ta[pos[j]] = a[e]
            pos[j] += 1
    return tptr, trow, tedge, ta


@_group.add
def _save(
    log: IntArray, top: int, marks: npt.NDArray[np.bool_], kind: int, index: int, value: int
) -> int:
    """Log the old value of (kind, index) on its first change since the last undo."""
    if marks[kind, index]:
        return top
    marks[kind, index] = True
    log[top] = kind
    log[top + 1] = index
    log[top + 2] = value
    return top + 3


@_group.add
def _forward(
    indptr: IntArray, cols: IntArray, a: IntArray, price: IntArray, profit: IntArray,
    pedge: IntArray, oown: IntArray, stack: IntArray, top: int, eps: int, log: IntArray,
    marks: npt.NDArray[np.bool_], log_top: int, logging: bool, max_bids: int,
    stop: npt.NDArray[np.uint8],
) -> tuple[int, int, int, int]:
    """Forward steps until every person on the stack is matched or out.

    Returns (bids, log top, stack top, status): `WORK_LIMIT` once `max_bids` bids were made,
    `DEADLINE` when the stop flag is set (read every `CHECK_EVERY` bids); the stack then holds
    the persons still to bid.
    """
    bids = 0
    while top > 0:
        if bids >= max_bids:
            return bids, log_top, top, WORK_LIMIT
        if bids % CHECK_EVERY == CHECK_EVERY - 1 and stop[0] != 0:
            return bids, log_top, top, DEADLINE
        top -= 1
        i = stack[top]
        b1 = NEG
        b2 = NEG
        eb = -1
        for e in range(indptr[i], indptr[i + 1]):
            v = a[e] - price[cols[e]]
            if v > b1:
                b2 = b1
                b1 = v
                eb = e
            elif v > b2:
                b2 = v
        if logging:
            log_top = _save(log, log_top, marks, 1, i, profit[i])
            log_top = _save(log, log_top, marks, 2, i, pedge[i])
        if b1 <= 0:
            profit[i] = 0
            pedge[i] = -1
            continue
        j = cols[eb]
        w = b2 if b2 > 0 else 0
        if logging:
            log_top = _save(log, log_top, marks, 0, j, price[j])
            log_top = _save(log, log_top, marks, 3, j, oown[j])
        price[j] += b1 - w + eps
        profit[i] = a[eb] - price[j]
        bids += 1
        k = oown[j]
        oown[j] = i
        pedge[i] = eb
        if k >= 0:
            if logging:
                log_top = _save(log, log_top, marks, 2, k, pedge[k])
            pedge[k] = -1
            stack[top] = k
            top += 1
    return bids, log_top, top, DONE


@_group.add
def _reverse(
    indptr: IntArray, cols: IntArray, a: IntArray, tptr: IntArray, trow: IntArray,
    tedge: IntArray, ta: IntArray, price: IntArray, profit: IntArray,
    pedge: IntArray, oown: IntArray, stack: IntArray, top: int, eps: int,
    log: IntArray, marks: npt.NDArray[np.bool_], log_top: int, logging: bool, max_bids: int,
    stop: npt.NDArray[np.uint8],
) -> tuple[int, int, int, int]:
    """Reverse steps for unmatched objects with positive prices on the stack (as `_forward`)."""
    bids = 0
    while top > 0:
        if bids >= max_bids:
            return bids, log_top, top, WORK_LIMIT
        if bids % CHECK_EVERY == CHECK_EVERY - 1 and stop[0] != 0:
            return bids, log_top, top, DEADLINE
        top -= 1
        j = stack[top]
        if oown[j] >= 0 or price[j] == 0 or price[j] >= UNREACHABLE:
            continue
        b1 = NEG
        b2 = NEG
        tb = -1
        for t in range(tptr[j], tptr[j + 1]):
            v = ta[t] - profit[trow[t]]
            if v > b1:
                b2 = b1
                b1 = v
                tb = t
            elif v > b2:
                b2 = v
        if logging:
            log_top = _save(log, log_top, marks, 0, j, price[j])
        if b1 <= eps:
            price[j] = 0
            continue
        w = b2 if b2 > 0 else 0
        p = w - eps if w > eps else 0
        i = trow[tb]
        eb = tedge[tb]
        if logging:
            log_top = _save(log, log_top, marks, 1, i, profit[i])
            log_top = _save(log, log_top, marks, 2, i, pedge[i])
            log_top = _save(log, log_top, marks, 3, j, oown[j])
        price[j] = p
        profit[i] = a[eb] - p
        bids += 1
        old = pedge[i]
        pedge[i] = eb
        oown[j] = i
        if old >= 0:
            jo = cols[old]
            if logging:
                log_top = _save(log, log_top, marks, 3, jo, oown[jo])
            oown[jo] = -1
            if price[jo] > 0:
                stack[top] = jo
                top += 1
    return bids, log_top, top, DONE


@_group.add
def auction_matching(
    n: int, m: int, indptr: IntArray, cols: IntArray, a: IntArray, theta: int
) -> tuple[IntArray, IntArray, IntArray, int, int, int]:
    """Solve; return (pedge, price, profit, forward bids, reverse bids, phases).

    ``pedge[i]`` is the CSR edge matching person i, or -1. No work bound or deadline: see
    `auction_matching_bounded`.
    """
    out = auction_matching_bounded(n, m, indptr, cols, a, theta, NO_LIMIT,
                                   np.zeros(1, dtype=np.uint8))
    return out[0], out[1], out[2], out[3], out[4], out[5]


@_group.add
def auction_matching_bounded(
    n: int, m: int, indptr: IntArray, cols: IntArray, a: IntArray, theta: int, max_work: int,
    stop: npt.NDArray[np.uint8],
) -> tuple[IntArray, IntArray, IntArray, int, int, int, int]:
    """`auction_matching` with a bound on bids and a stop flag; the status comes last.

    Past `max_work` bids (forward plus reverse; `auction.kernels.budget.auction_work_bound`
    states the theoretical bound) the status is `WORK_LIMIT`, after ``stop[0]`` is set
    `DEADLINE`; pedge is then a feasible matching (every object held once), not an optimal one.
    """
    tptr, trow, tedge, ta = transpose(n, m, indptr, cols, a)
    top_a = 0
    for e in range(len(a)):
        top_a = max(top_a, a[e])
    price = np.zeros(m, dtype=np.int64)
    profit = np.zeros(n, dtype=np.int64)
    pedge = np.full(n, -1, dtype=np.int64)
    oown = np.full(m, -1, dtype=np.int64)
    stack = np.empty(max(n, m), dtype=np.int64)
    log = np.empty(0, dtype=np.int64)
    marks = np.zeros((4, 0), dtype=np.bool_)
    eps = max(1, top_a // theta)
    fbids = 0
    rbids = 0
    phases = 0
    status = DONE
    while True:
        phases += 1
        pedge[:] = -1
        oown[:] = -1
        for i in range(n):
            stack[i] = n - 1 - i
        b, _, _, status = _forward(indptr, cols, a, price, profit, pedge, oown, stack, n, eps,
                                   log, marks, 0, False, max_work - fbids - rbids, stop)
        fbids += b
        if status != DONE:
            break
        top = 0
        for j in range(m):
            if oown[j] < 0 and price[j] > 0:
                stack[top] = j
                top += 1
        b, _, _, status = _reverse(indptr, cols, a, tptr, trow, tedge, ta, price, profit,
                                   pedge, oown, stack, top, eps, log, marks, 0, False,
                                   max_work - fbids - rbids, stop)
        rbids += b
        if status != DONE or eps == 1:
            break
        eps = max(1, eps // theta)
    for i in range(n):
        if pedge[i] < 0:
            profit[i] = 0
    return pedge, price, profit, fbids, rbids, phases, status


@_group.add
def _violates(
    indptr: IntArray, cols: IntArray, a: IntArray, price: IntArray, pedge: IntArray, i: int,
    eps: int,
) -> bool:
    """True if person i's profit is more than eps below its best value (0 = staying out)."""
    held = a[pedge[i]] - price[cols[pedge[i]]] if pedge[i] >= 0 else 0
    best = 0
    for e in range(indptr[i], indptr[i + 1]):
        v = a[e] - price[cols[e]]
        if v > best:
            best = v
    return held < best - eps


@_group.add
def _recheck(
    indptr: IntArray, cols: IntArray, a: IntArray, price: IntArray, profit: IntArray,
    pedge: IntArray, oown: IntArray, stack: IntArray, top: int, eps: int, log: IntArray,
    marks: npt.NDArray[np.bool_], log_top: int, queued: npt.NDArray[np.bool_], i: int,
) -> tuple[int, int]:
    """Unmatch person i (logged) and push it once if it breaks eps-CS; (stack top, log top)."""
    if queued[i] or not _violates(indptr, cols, a, price, pedge, i, eps):
        return top, log_top
    if pedge[i] >= 0:
        j = cols[pedge[i]]
        log_top = _save(log, log_top, marks, 3, j, oown[j])
        oown[j] = -1
    log_top = _save(log, log_top, marks, 2, i, pedge[i])
    log_top = _save(log, log_top, marks, 1, i, profit[i])
    pedge[i] = -1
    profit[i] = 0
    queued[i] = True
    stack[top] = i
    return top + 1, log_top


@_group.add
def _undo(
    log: IntArray, log_top: int, marks: npt.NDArray[np.bool_], price: IntArray,
    profit: IntArray, pedge: IntArray, oown: IntArray, w: IntArray,
) -> int:
    """Undo the logged changes, newest first; return the welfare change they had made."""
    change = 0
    while log_top > 0:
        log_top -= 3
        kind = log[log_top]
        idx = log[log_top + 1]
        val = log[log_top + 2]
        marks[kind, idx] = False
        if kind == 0:
            price[idx] = val
        elif kind == 1:
            profit[idx] = val
        elif kind == 2:
            if pedge[idx] >= 0:
                change += w[pedge[idx]]
            if val >= 0:
                change -= w[val]
            pedge[idx] = val
        else:
            oown[idx] = val
    return change


INF = 1 << 62


#: Buckets of the radix heap: keys are below 2**62, so ``key ^ last`` has at most 62 bits.
NB = 64


@_group.add
def _bits(x: int) -> int:
    """The bit length of ``x >= 0`` (0 for 0), by halving: six comparisons."""
    b = 0
    step = 32
    while step > 0:
        if x >= 1 << step:
            x >>= step
            b += step
        step >>= 1
    return b + x


@_group.add
def _rreset(hk: IntArray, hx: IntArray) -> None:
    """Empty the radix heap: no bucket heads, last popped key 0, node pool from 0."""
    top = len(hk)
    for b in range(NB):
        hx[top + b] = -1
    hx[top + NB] = 0
    hx[top + NB + 1] = 0


@_group.add
def _rpush(hk: IntArray, hv: IntArray, hx: IntArray, key: int, val: int) -> None:
    """Push (key, val), ``key >=`` the last popped key (Dijkstra's keys only grow).

    A radix heap (Ahuja, Mehlhorn, Orlin and Tarjan 1990): a node in a pool (hk: key, hv:
    value, hx: next in its bucket; the bucket heads, the last key and the pool's top follow
    the pool in hx) goes to bucket ``bit_length(key ^ last)``: bucket 0 holds keys equal to the
    last popped one, bucket b keys whose highest bit differing from it is b - 1. O(1).
    """
    top = len(hk)
    node = hx[top + NB + 1]
    hx[top + NB + 1] = node + 1
    hk[node] = key
    hv[node] = val
    x = key ^ hx[top + NB]
    b = _bits(x) if x >= 0 else NB - 1  # infeasible duals only: stays inside the array
    hx[node] = hx[top + b]
    hx[top + b] = node


@_group.add
def _rmin(hk: IntArray, hv: IntArray, hx: IntArray) -> tuple[int, int, int]:
    """(node, key, value) of a smallest key (`_rpop` drops the node); node -1 when empty.

    When bucket 0 is empty, the first non-empty bucket's smallest key becomes the last key and
    its nodes move to lower buckets (each node moves down at most 62 times in all): amortized
    O(log C) per pop, C the largest key, with no comparisons between heap entries.
    """
    top = len(hk)
    if hx[top] < 0:
        _rsplit(hk, hx)
    node = hx[top]
    if node < 0:
        return -1, 0, 0
    return int(node), int(hk[node]), int(hv[node])


@_group.add
def _rsplit(hk: IntArray, hx: IntArray) -> None:
    """Bucket 0 being empty: the first non-empty bucket's smallest key becomes the last key and
    its nodes move to lower buckets (bucket 0 gets those with that key); nothing when empty."""
    top = len(hk)
    b = 1
    while b < NB and hx[top + b] < 0:
        b += 1
    if b == NB:
        return
    node = hx[top + b]
    low = hk[node]
    while node >= 0:
        if hk[node] < low:
            low = hk[node]
        node = hx[node]
    hx[top + NB] = low
    node = hx[top + b]
    hx[top + b] = -1
    while node >= 0:
        after = hx[node]
        nb = _bits(hk[node] ^ low)
        hx[node] = hx[top + nb]
        hx[top + nb] = node
        node = after


@_group.add
def _rpop(hk: IntArray, hx: IntArray, node: int) -> None:
    """Drop `node`, the one `_rmin` returned (the head of bucket 0)."""
    hx[len(hk)] = hx[node]


@_group.add
def _augment(
    i: int, indptr: IntArray, cols: IntArray, w: IntArray, erow: IntArray, pedge: IntArray,
    oown: IntArray, u: IntArray, p: IntArray, removed: npt.NDArray[np.bool_], dist: IntArray,
    pred: IntArray, done: npt.NDArray[np.bool_], seen: IntArray, settled: IntArray,
    hk: IntArray, hv: IntArray, hx: IntArray, slack: IntArray, u0: IntArray, log: IntArray,
    marks: npt.NDArray[np.bool_], log_top: int, logging: bool, cap: int,
) -> tuple[int, int]:
    """Match free person i by one shortest augmenting path (Dijkstra); (work, log top).

    Past `cap` units of work the search gives up unchanged (nothing matched, no dual moved)
    and returns a work above `cap`.

    Exact integer duals: ``u[k] + p[j] >= w[e]`` on every edge, equality on matched edges,
    ``u, p >= 0``, 0 for unmatched persons and objects (complementary slackness). Person i
    enters with any feasible ``u[i]``. Dijkstra on reduced costs ``u + p - w >= 0`` from i over
    alternating paths ends at a free object j (cost ``d_j``) or at an object j whose owner k
    drops out (cost ``d_j + u[k]``), or i itself stays out (cost ``u[i]``). An end is noted as
    soon as an edge reaches its object (its cost from the tentative distance, an upper bound
    that pops only lower), and the search stops when the next pop is no shorter than the best
    end: on tie-heavy markets (long zero-cost plateaus) it stops at the first edge reaching an
    end of cost 0 instead of exploring the plateau. The duals of settled nodes move by
    ``delta - d`` (the Hungarian update; the end, if unsettled, has ``d = delta``), which keeps
    feasibility and makes the path tight, then the path is flipped. Work: O(E log E) for the
    edges the search scans (at most every edge once; the radix heap's pops cost amortized
    O(log C), C the largest reduced cost).

    With `slack` (non-empty: `_by_slack`) every person's first `SORTED` edges are in increasing
    order of their reduced cost ``slack[e]`` under reference duals (u0, p0) with ``p >= p0``,
    and the rest no cheaper: the reduced cost now is at least ``slack[e] - (u0[k] - u[k])``, so
    the scan of person k's edges stops at the first one of the sorted prefix that cannot beat
    the best end (``best - d``), and past the prefix skips such edges: on a long search most
    edges are never read. Duals only move that way (p rises, u drops) inside a group's re-solve.
    """
    ranked = len(slack) > 0
    work = 0
    _rreset(hk, hx)
    nseen = 0
    nsettled = 0
    best = u[i]
    end = -1  # the path's last object; -1: i stays out
    for e in range(indptr[i], indptr[i + 1]):
        work += 1
        if ranked and slack[e] - (u0[i] - u[i]) >= best:
            if e - indptr[i] < SORTED:
                break
            continue
        j = cols[e]
        if removed[j]:
            continue
        d = u[i] + p[j] - w[e]
        if d < dist[j]:
            if dist[j] == INF:
                seen[nseen] = j
                nseen += 1
            dist[j] = d
            pred[j] = e
            _rpush(hk, hv, hx, d, j)
            cost = d if oown[j] < 0 else d + u[oown[j]]
            if cost < best:
                best = cost
                end = j
    while True:
        node, d, j = _rmin(hk, hv, hx)
        if node < 0:
            break
        if d >= best:
            break
        if work > cap:
            for s in range(nseen):
                dist[seen[s]] = INF
                done[seen[s]] = False
            return work, log_top
        _rpop(hk, hx, node)
        work += 1
        if done[j] or d > dist[j]:
            continue
        done[j] = True
        settled[nsettled] = j
        nsettled += 1
        k = oown[j]
        if k < 0:
            break  # a free object: its cost d was noted when it was reached
        ek = pedge[k]
        for e in range(indptr[k], indptr[k + 1]):
            work += 1
            if ranked and d + slack[e] - (u0[k] - u[k]) >= best:
                if e - indptr[k] < SORTED:
                    break
                continue
            jj = cols[e]
            if e == ek or removed[jj] or done[jj]:
                continue
            nd = d + u[k] + p[jj] - w[e]
            if nd < dist[jj]:
                if dist[jj] == INF:
                    seen[nseen] = jj
                    nseen += 1
                dist[jj] = nd
                pred[jj] = e
                _rpush(hk, hv, hx, nd, jj)
                cost = nd if oown[jj] < 0 else nd + u[oown[jj]]
                if cost < best:
                    best = cost
                    end = jj
    delta = best
    # dual update on the settled tree: u drops and p rises by delta - d
    if logging:
        log_top = _save(log, log_top, marks, 1, i, u[i])
    u[i] -= delta
    for s in range(nsettled):
        j = settled[s]
        step = delta - dist[j]
        if step > 0:
            if logging:
                log_top = _save(log, log_top, marks, 0, j, p[j])
            p[j] += step
            k = oown[j]
            if k >= 0:
                if logging:
                    log_top = _save(log, log_top, marks, 1, k, u[k])
                u[k] -= step
    # flip the path: the end's owner (if any) drops out, then each person moves one object on
    if end >= 0:
        j = end
        k = oown[j]
        if k >= 0:
            if logging:
                log_top = _save(log, log_top, marks, 2, k, pedge[k])
            pedge[k] = -1
        while True:
            e = pred[j]
            k = erow[e]
            old = cols[pedge[k]] if pedge[k] >= 0 else -1
            if logging:
                log_top = _save(log, log_top, marks, 2, k, pedge[k])
                log_top = _save(log, log_top, marks, 3, j, oown[j])
            pedge[k] = e
            oown[j] = k
            if k == i:
                break
            j = old
    for s in range(nseen):
        dist[seen[s]] = INF
        done[seen[s]] = False
    return work, log_top


@_group.add
def _edge_rows(n: int, indptr: IntArray) -> IntArray:
    """The person of every CSR edge."""
    erow = np.empty(indptr[n], dtype=np.int64)
    for i in range(n):
        for e in range(indptr[i], indptr[i + 1]):
            erow[e] = i
    return erow


@_group.add
def _search_arrays(m: int, edges: int) -> tuple[
    npt.NDArray[np.bool_], IntArray, IntArray, npt.NDArray[np.bool_], IntArray, IntArray,
    IntArray, IntArray, IntArray,
]:
    """Scratch arrays of `_augment`: removed, dist, pred, done, seen, settled, and the radix
    heap's keys, values, links (a pool of one node per edge)."""
    return (np.zeros(m, dtype=np.bool_), np.full(m, INF, dtype=np.int64),
            np.full(m, -1, dtype=np.int64), np.zeros(m, dtype=np.bool_),
            np.empty(m, dtype=np.int64), np.empty(m, dtype=np.int64),
            np.empty(edges + 1, dtype=np.int64), np.empty(edges + 1, dtype=np.int64),
            np.empty(edges + 1 + NB + 2, dtype=np.int64))


@_group.add
def exact_matching(
    n: int, m: int, indptr: IntArray, cols: IntArray, w: IntArray, max_work: int,
    stop: npt.NDArray[np.uint8],
) -> tuple[IntArray, IntArray, IntArray, int, int]:
    """Maximum-weight matching with exact integer duals by successive shortest paths.

    Returns (pedge, u, p, status, work). Persons enter one at a time (Hungarian method with
    Dijkstra, sparse, both sides may stay unmatched); ``w >= 0``. Work bound: n searches of
    O(E log E) each (`auction.kernels.budget.exact_matching_work_bound`); past `max_work` units
    (edges scanned and heap pops) it stops with `WORK_LIMIT`, and once ``stop[0]`` is set with
    `DEADLINE` (both checked between persons), with a feasible, not optimal, matching.
    """
    erow = _edge_rows(n, indptr)
    pedge = np.full(n, -1, dtype=np.int64)
    oown = np.full(m, -1, dtype=np.int64)
    u = np.zeros(n, dtype=np.int64)
    p = np.zeros(m, dtype=np.int64)
    removed, dist, pred, done, seen, settled, hk, hv, hx = _search_arrays(m, len(cols))
    log = np.empty(0, dtype=np.int64)
    marks = np.zeros((4, 0), dtype=np.bool_)
    work = 0
    for i in range(n):
        if work > max_work:
            return pedge, u, p, WORK_LIMIT, work
        if stop[0] != 0:
            return pedge, u, p, DEADLINE, work
        best = 0
        for e in range(indptr[i], indptr[i + 1]):
            v = w[e] - p[cols[e]]
            if v > best:
                best = v
        u[i] = best
        work += indptr[i + 1] - indptr[i]
        if best > 0:
            wk, _ = _augment(i, indptr, cols, w, erow, pedge, oown, u, p, removed, dist, pred,
                             done, seen, settled, hk, hv, hx, log, u, log, marks, 0, False,
                             NO_LIMIT)
            work += wk
    return pedge, u, p, DONE, work


@_group.add
def exact_duals(
    n: int, m: int, indptr: IntArray, cols: IntArray, a: IntArray, w: IntArray,
    pedge: IntArray, price: IntArray,
) -> tuple[IntArray, IntArray, bool]:
    """Exact integer duals (u, p) in `w` units for the auction's matching, or ok = False.

    The auction's eps = 1 prices on ``a = w * S + 1`` (S = 2n + 1) give ``u + p >= w`` on every
    edge in rational units price / S, with a slack of 1 / S on matched edges. Rounding
    ``p = ceil((price - c) / S)`` with an offset c in [lo, S), lo <= 2, whose residue avoids
    every matched object's ``price - 1`` (at most n residues, at least 2n - 1 choices) keeps
    every edge feasible and ``u = w - p >= 0`` on matched edges. The result is checked in
    O(E); ok = False means the input was not such an auction solution.
    """
    u = np.zeros(n, dtype=np.int64)
    p = np.zeros(m, dtype=np.int64)
    scale = 2 * n + 1
    for e in range(len(a)):
        if a[e] != w[e] * scale + 1:
            return u, p, False
    forbidden = np.zeros(scale, dtype=np.bool_)
    lo = 0  # u = w - p >= 0 on matched edges needs c >= price - S w (at most 2)
    for i in range(n):
        if pedge[i] >= 0:
            price_j = price[cols[pedge[i]]]
            forbidden[(price_j - 1) % scale] = True
            lo = max(lo, price_j - w[pedge[i]] * scale)
    c = -1
    for r in range(lo, scale):
        if not forbidden[r]:
            c = r
            break
    if c < 0:
        return u, p, False
    for i in range(n):
        if pedge[i] >= 0:
            j = cols[pedge[i]]
            p[j] = -((c - price[j]) // scale)
            u[i] = w[pedge[i]] - p[j]
            if u[i] < 0 or p[j] < 0:
                return u, p, False
    for i in range(n):
        for e in range(indptr[i], indptr[i + 1]):
            if u[i] + p[cols[e]] < w[e]:
                return u, p, False
    return u, p, True


@_group.add
def max_duals(
    n: int, m: int, indptr: IntArray, cols: IntArray, w: IntArray, pedge: IntArray,
    u: IntArray, p: IntArray,
) -> tuple[IntArray, IntArray, int]:
    """The object-optimal exact duals (u, p, work): `_max_duals` without its tree."""
    u2, p2, work, _ = _max_duals(n, m, indptr, cols, w, pedge, u, p)
    return u2, p2, work


@_group.add
def _max_duals(
    n: int, m: int, indptr: IntArray, cols: IntArray, w: IntArray, pedge: IntArray,
    u: IntArray, p: IntArray,
) -> tuple[IntArray, IntArray, int, IntArray]:
    """The object-optimal exact duals: largest ``p`` (smallest ``u``) of all optimal duals.

    (pedge, u, p) must be an optimal matching with exact duals. Raising object j's price by t
    lowers its owner k's ``u[k]`` by t, which needs t <= u[k] and, on every other edge (k, j'),
    ``t <= slack(k, j') + t'`` (t' the rise of j', 0 for a free object); the largest rises are
    the shortest distances from each object to those limits, found by one multi-source Dijkstra
    over the reversed edges. Then ``p[j]`` is object j's VCG marginal contribution
    W* - W*(without j) (Leonard 1983; Demange and Gale 1985: the seller-optimal core point), so
    a single object's removal needs no search, and the searches of a group's removal start at
    distance 0 of their best end. Work: every edge scanned once plus at most E + m heap pops,
    ``O(E + m log C)`` with the radix heap (C the largest key); the work is returned.

    Also returned: the search's tree, ``parent[j]`` the object whose scan set j's distance
    (-1: a root, a free object or one whose owner ends at ``u = 0``). Under the new duals the
    owner of j has a tight edge to ``parent[j]``, and parents are settled before their
    children, so following parents from a matched object is a zero-cost alternating route to
    an exit (`_certified_loss`).
    """
    oown = np.full(m, -1, dtype=np.int64)
    for i in range(n):
        if pedge[i] >= 0:
            oown[cols[pedge[i]]] = i
    tptr, trow, _, tw = _transposed(n, m, indptr, cols, w, False)
    dist = np.empty(m, dtype=np.int64)
    parent = np.full(m, -1, dtype=np.int64)
    done = np.zeros(m, dtype=np.bool_)
    hk = np.empty(len(cols) + m + 1, dtype=np.int64)
    hv = np.empty(len(cols) + m + 1, dtype=np.int64)
    hx = np.empty(len(cols) + m + 1 + NB + 2, dtype=np.int64)
    _rreset(hk, hx)
    for j in range(m):
        dist[j] = u[oown[j]] if oown[j] >= 0 else 0
        _rpush(hk, hv, hx, dist[j], j)
    work = 0
    while True:
        node, d, j = _rmin(hk, hv, hx)
        if node < 0:
            break
        _rpop(hk, hx, node)
        work += 1
        if done[j] or d > dist[j]:
            continue
        done[j] = True
        for t in range(tptr[j], tptr[j + 1]):
            work += 1
            k = trow[t]
            ek = pedge[k]
            if ek < 0:
                continue
            jk = cols[ek]
            if jk == j:  # k's own matched edge (any other edge of k to j relaxes j itself)
                continue
            nd = d + u[k] + p[j] - tw[t]
            if nd < dist[jk] and not done[jk]:
                dist[jk] = nd
                parent[jk] = j
                _rpush(hk, hv, hx, nd, jk)
    u2 = u.copy()
    p2 = p.copy()
    for j in range(m):
        if oown[j] >= 0:
            p2[j] += dist[j]
            u2[oown[j]] -= dist[j]
    return u2, p2, work, parent


@_group.add
def _by_slack(
    n: int, indptr: IntArray, cols: IntArray, w: IntArray, pedge: IntArray, u: IntArray,
    p: IntArray,
) -> tuple[IntArray, IntArray, IntArray]:
    """Every person's edges by reduced cost ``u + p - w`` under exact duals: (order, that
    order's reduced costs, pedge as positions in it). The graph permuted by `order` is the same
    market; `_augment` stops scanning a person's edges at the first one too dear.

    A row of at most `SORTED` edges is sorted (ties in CSR order); a longer row gets its
    `SORTED` cheapest edges first, sorted, then the rest in CSR order, every one of them at
    least as dear: `_augment` stops only inside the sorted prefix and skips dear edges one by
    one past it. The searches read a few edges of a long (dense) row, so selecting the prefix
    in O(d) replaces an O(d log d) sort that cost more than the searches. Work: O(E) plus
    O(SORTED^2) per row."""
    order = np.empty(len(cols), dtype=np.int64)
    slack = np.empty(len(cols), dtype=np.int64)
    longest = 0
    for i in range(n):
        longest = max(longest, indptr[i + 1] - indptr[i])
    row = np.empty(longest, dtype=np.int64)
    for i in range(n):
        lo = indptr[i]
        hi = indptr[i + 1]
        top = hi
        if hi - lo <= SORTED:
            for e in range(lo, hi):
                slack[e] = u[i] + p[cols[e]] - w[e]
                order[e] = e
        else:  # the SORTED cheapest first (ties in CSR order), the rest after in CSR order
            for e in range(lo, hi):
                row[e - lo] = u[i] + p[cols[e]] - w[e]
            kth = _select(row[:hi - lo].copy(), SORTED - 1)
            ties = SORTED
            for e in range(lo, hi):
                if row[e - lo] < kth:
                    ties -= 1
            first = lo
            after = lo + SORTED
            for e in range(lo, hi):
                v = row[e - lo]
                if v < kth or (v == kth and ties > 0):
                    if v == kth:
                        ties -= 1
                    order[first] = e
                    slack[first] = v
                    first += 1
                else:
                    order[after] = e
                    slack[after] = v
                    after += 1
            top = lo + SORTED
        for t in range(lo + 1, top):  # insertion sort of the first min(d, SORTED), stable
            key = slack[t]
            e = order[t]
            q = t
            while q > lo and slack[q - 1] > key:
                slack[q] = slack[q - 1]
                order[q] = order[q - 1]
                q -= 1
            slack[q] = key
            order[q] = e
    pe = np.full(n, -1, dtype=np.int64)
    for i in range(n):
        if pedge[i] >= 0:
            for t in range(indptr[i], indptr[i + 1]):  # tight: near the front of the row
                if order[t] == pedge[i]:
                    pe[i] = t
                    break
    return order, slack, pe


@_group.add
def _select(a: IntArray, k: int) -> int:
    """The k-th smallest of `a` (0-based), reordering `a`: quickselect with the middle
    element as pivot, O(len(a)) expected; after `SELECT_ROUNDS` rounds (bad pivots) the part
    left is sorted instead, so the worst case is O(64 len(a) + len(a) log len(a))."""
    lo = 0
    hi = len(a) - 1
    rounds = 0
    while lo < hi:
        rounds += 1
        if rounds > SELECT_ROUNDS:
            return int(np.sort(a[lo:hi + 1])[k - lo])
        pivot = a[(lo + hi) // 2]
        i = lo
        j = hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            return int(a[k])
    return int(a[k])


@_group.add
def _certified_loss(
    g: int, group_indptr: IntArray, group_objects: IntArray, oown: IntArray, u: IntArray,
    p: IntArray, singles: bool, parent: IntArray, mark: npt.NDArray[np.bool_],
    trail: IntArray,
) -> tuple[bool, int, int, int]:
    """Group g's loss without a search, when exact duals prove it; (proved, loss, displaced,
    steps).

    Taking the group out leaves the other duals feasible, so the loss is at least the sum of
    its matched objects' prices, and it is that sum when every displaced person can be
    re-matched at cost 0 without moving a dual (complementary slackness then holds in the
    smaller market). That is so when every displaced person has ``u = 0`` (it stays out), or
    with object-optimal duals (`_max_duals`, ``singles``) for a group of one object, or when
    the displaced persons' zero-cost routes in `_max_duals`' tree (`parent`, empty: not
    used) are vertex-disjoint and avoid the group's objects: each route's persons move one
    object on along tight edges and its end is a free object or a person at ``u = 0`` who
    drops out, and disjoint routes stay tight and open after the others are flipped. The walk
    stops after `CHAIN_STEPS` objects per displaced person (not proved). `mark` (all False,
    left so) and `trail` are scratch of size m. Work: the group's size plus the steps.
    """
    loss = 0
    displaced = 0
    zero = True
    for k in range(group_indptr[g], group_indptr[g + 1]):
        j = group_objects[k]
        if oown[j] >= 0:
            displaced += 1
            loss += p[j]
            if u[oown[j]] != 0:
                zero = False
    single = singles and group_indptr[g + 1] - group_indptr[g] == 1
    if zero or single or len(parent) == 0:
        return zero or single, loss, displaced, 0
    for k in range(group_indptr[g], group_indptr[g + 1]):
        mark[group_objects[k]] = True
    steps = 0
    limit = CHAIN_STEPS * displaced
    proved = True
    for k in range(group_indptr[g], group_indptr[g + 1]):
        j = group_objects[k]
        if oown[j] < 0 or u[oown[j]] == 0:
            continue
        t = parent[j]
        while t >= 0:
            if mark[t] or steps >= limit:
                proved = False
                break
            mark[t] = True
            trail[steps] = t
            steps += 1
            t = parent[t]
        if not proved:
            break
    for s in range(steps):
        mark[trail[s]] = False
    for k in range(group_indptr[g], group_indptr[g + 1]):
        mark[group_objects[k]] = False
    return proved, loss, displaced, steps


@_group.add
def _tight_edge(k: int, j: int, indptr: IntArray, cols: IntArray, w: IntArray, u: IntArray,
                p: IntArray) -> int:
    """An edge of person k to object j with reduced cost 0 (-1: none); O(k's row)."""
    for e in range(indptr[k], indptr[k + 1]):
        if cols[e] == j and u[k] + p[j] == w[e]:
            return e
    return -1


@_group.add
def _route(
    j: int, indptr: IntArray, cols: IntArray, w: IntArray, oown: IntArray, u: IntArray,
    p: IntArray, removed: npt.NDArray[np.bool_], parent: IntArray, chain: IntArray,
    chain_e: IntArray, holder: int,
) -> tuple[int, int]:
    """A zero-cost augmenting path for free person `holder`, displaced from object j, along
    `_max_duals`' tree, checked against the current matching and duals: (objects on it, -1 if
    none within `CHAIN_STEPS`; work). ``chain[q]`` is the q-th object, ``chain_e[q]`` the
    edge that moves its taker onto it (`holder`, then each object's current owner in turn):
    every one tight now, no object removed, and the last object free or held by a person at
    ``u = 0`` (who drops out). Work: the rows scanned (distinct persons)."""
    t = parent[j]
    k = holder
    q = 0
    work = 0
    while t >= 0:
        if q >= CHAIN_STEPS or removed[t]:
            return -1, work
        e = _tight_edge(k, t, indptr, cols, w, u, p)
        work += indptr[k + 1] - indptr[k]
        if e < 0:
            return -1, work
        chain[q] = t
        chain_e[q] = e
        q += 1
        k = oown[t]
        if k < 0:
            return q, work  # a free object ends it
        t = parent[t]
    if q == 0 or u[k] != 0:
        return -1, work  # the last owner cannot drop out at cost 0
    return q, work


@_group.add
def _vcg_group(
    g: int, indptr: IntArray, cols: IntArray, w: IntArray, erow: IntArray, pedge: IntArray,
    oown: IntArray, u: IntArray, p: IntArray, group_indptr: IntArray, group_objects: IntArray,
    removed: npt.NDArray[np.bool_], dist: IntArray, pred: IntArray,
    done: npt.NDArray[np.bool_], seen: IntArray, settled: IntArray, hk: IntArray, hv: IntArray,
    hx: IntArray, slack: IntArray, u0: IntArray, stack: IntArray, log: IntArray,
    marks: npt.NDArray[np.bool_], parent: IntArray, chain: IntArray, chain_e: IntArray,
    cap: int,
) -> tuple[bool, int, int]:
    """Group g's loss W* - W*(without g) by shortest augmenting paths, all undone;
    (finished, loss, work).

    Takes the group's objects out, re-matches each displaced person by one `_augment` from the
    exact duals (the rest of the matching and the duals stay optimal for the smaller market),
    and undoes every change. Work: one O(E log E) search per displaced person at most; past
    `cap` units it gives up (finished = False).

    Before any search, a displaced person with a zero-cost route along `_max_duals`' tree
    (`parent`, empty: none; `_route` checks it against the current state) is re-matched along
    it without a search: a path of reduced cost 0 is a shortest augmenting path (reduced
    costs and ``u`` are >= 0) and moves no dual, so the matching and duals stay optimal for
    the persons matched so far.
    """
    log_top = 0
    top = 0
    for k in range(group_indptr[g], group_indptr[g + 1]):
        j = group_objects[k]
        removed[j] = True
        i = oown[j]
        if i >= 0:
            log_top = _save(log, log_top, marks, 2, i, pedge[i])
            log_top = _save(log, log_top, marks, 3, j, oown[j])
            pedge[i] = -1
            oown[j] = -1
            stack[top] = i
            seen[top] = j  # the object i held (seen is free until the searches)
            top += 1
    work = group_indptr[g + 1] - group_indptr[g]
    if len(parent) > 0:
        rest = 0
        for s in range(top):
            i = stack[s]
            if u[i] == 0:
                continue  # stays out at cost 0
            q, wk = _route(seen[s], indptr, cols, w, oown, u, p, removed, parent, chain,
                           chain_e, i)
            work += wk
            if q <= 0:  # no open route (a root's owner has u = 0, handled above)
                stack[rest] = i
                rest += 1
                continue
            last = chain[q - 1]
            k = oown[last]
            if k >= 0:  # the exit's owner drops out (u[k] == 0)
                log_top = _save(log, log_top, marks, 2, k, pedge[k])
                pedge[k] = -1
            for r in range(q - 1, -1, -1):
                t = chain[r]
                taker = i if r == 0 else oown[chain[r - 1]]
                log_top = _save(log, log_top, marks, 2, taker, pedge[taker])
                log_top = _save(log, log_top, marks, 3, t, oown[t])
                pedge[taker] = chain_e[r]
                oown[t] = taker
        top = rest
    finished = True
    for s in range(top):
        wk, log_top = _augment(stack[s], indptr, cols, w, erow, pedge, oown, u, p, removed,
                               dist, pred, done, seen, settled, hk, hv, hx, slack, u0, log,
                               marks, log_top, True, cap - work)
        work += wk
        if work > cap:
            finished = False
            break
    change = _undo(log, log_top, marks, p, u, pedge, oown, w)
    for k in range(group_indptr[g], group_indptr[g + 1]):
        removed[group_objects[k]] = False
    return finished, -change, work


@_group.add
def vcg_groups(
    n: int, m: int, indptr: IntArray, cols: IntArray, w: IntArray, pedge: IntArray,
    u: IntArray, p: IntArray, group_indptr: IntArray, group_objects: IntArray, g_start: int,
    out: IntArray, max_work: int, stop: npt.NDArray[np.uint8],
) -> tuple[int, int, int]:
    """Fill ``out[g]`` = W* - W*(without group g) from group `g_start` on; (status, next, work).

    (pedge, u, p) must be an optimal matching with exact duals (`exact_matching` or
    `exact_duals`); they are left unchanged. The duals are first made object-optimal
    (`max_duals`), so a group of one object, or one whose displaced persons all have
    ``u = 0``, has its loss without a search (`_certified_loss`); any other group is re-solved
    by `_vcg_group`, one shortest augmenting path per displaced person from those duals (warm
    start: the rest of the matching and the duals stay optimal for the smaller market). Total
    work bound: the `max_duals` pass, ``O((E + m) log(E + m))``, plus one O(E log E) search
    per matched object, ``min(n, m) * O(E log E)`` (`auction.kernels.budget.vcg_work_bound`).
    Stops between groups once `max_work` units are spent (status `WORK_LIMIT`; every call
    does at least one group, so resuming always ends) or ``stop[0]`` is set (`DEADLINE`);
    `next` is then the first group not done, to resume from.
    """
    erow = _edge_rows(n, indptr)
    oown = np.full(m, -1, dtype=np.int64)
    for i in range(n):
        if pedge[i] >= 0:
            oown[cols[pedge[i]]] = i
    u, p, work, parent = _max_duals(n, m, indptr, cols, w, pedge, u, p)
    order, slack, pe = _by_slack(n, indptr, cols, w, pedge, u, p)
    cols = cols[order]
    w = w[order]
    u0 = u.copy()
    work += len(cols)
    removed, dist, pred, done, seen, settled, hk, hv, hx = _search_arrays(m, len(cols))
    trail = np.empty(m, dtype=np.int64)
    chain = np.empty(CHAIN_STEPS, dtype=np.int64)
    chain_e = np.empty(CHAIN_STEPS, dtype=np.int64)
    stack = np.empty(max(n, 1), dtype=np.int64)
    log = np.empty(3 * (2 * n + 2 * m) + 3, dtype=np.int64)
    marks = np.zeros((4, max(n, m) + 1), dtype=np.bool_)
    n_groups = len(group_indptr) - 1
    for g in range(g_start, n_groups):
        if work > max_work and g > g_start:  # each call does a group at least: resuming ends
            return WORK_LIMIT, g, work
        if stop[0] != 0:
            return DEADLINE, g, work
        proved, loss, _, steps = _certified_loss(g, group_indptr, group_objects, oown, u, p,
                                                 True, parent, removed, trail)
        work += group_indptr[g + 1] - group_indptr[g] + steps
        if not proved:
            _, loss, wk = _vcg_group(g, indptr, cols, w, erow, pe, oown, u, p, group_indptr,
                                     group_objects, removed, dist, pred, done, seen, settled,
                                     hk, hv, hx, slack, u0, stack, log, marks, parent, chain,
                                     chain_e, NO_LIMIT)
            work += wk
        out[g] = loss
    return DONE, n_groups, work


@_group.add
def _local_auction(
    g: int, indptr: IntArray, cols: IntArray, a: IntArray, w: IntArray, tptr: IntArray,
    trow: IntArray, tedge: IntArray, ta: IntArray, price: IntArray, profit: IntArray,
    pedge: IntArray, oown: IntArray, group_indptr: IntArray, group_objects: IntArray,
    stack: IntArray, log: IntArray, marks: npt.NDArray[np.bool_],
    queued_obj: npt.NDArray[np.bool_], budget: int, stop: npt.NDArray[np.uint8],
) -> tuple[bool, int, int]:
    """Try group g's removal by a warm-started auction at eps = 1 within `budget` bids.

    From the optimal eps = 1 prices, the displaced persons bid (forward steps) and touched
    objects left unmatched at a positive price bid back (reverse steps); both keep 1-CS, so a
    finish is exact. Most removals settle in a few bids; a price war (a bid at eps = 1 may
    raise a price by one unit of ``w * (2n + 1)``) runs out of budget instead. Everything is
    undone. Returns (finished, welfare change, bids).
    """
    log_top = 0
    top = 0
    for k in range(group_indptr[g], group_indptr[g + 1]):
        j = group_objects[k]
        if oown[j] >= 0:
            i = oown[j]
            log_top = _save(log, log_top, marks, 2, i, pedge[i])
            log_top = _save(log, log_top, marks, 1, i, profit[i])
            pedge[i] = -1
            profit[i] = 0
            stack[top] = i
            top += 1
        log_top = _save(log, log_top, marks, 0, j, price[j])
        log_top = _save(log, log_top, marks, 3, j, oown[j])
        price[j] = UNREACHABLE
        oown[j] = -1
    bids, log_top, _, status = _forward(indptr, cols, a, price, profit, pedge, oown, stack, top,
                                        1, log, marks, log_top, True, budget, stop)
    if status == DONE:
        rtop = 0
        for t in range(0, log_top, 3):
            j = log[t + 1]
            repriced = log[t] == 0 or log[t] == 3
            if repriced and oown[j] < 0 and 0 < price[j] < UNREACHABLE and not queued_obj[j]:
                queued_obj[j] = True
                stack[rtop] = j
                rtop += 1
        for s in range(rtop):
            queued_obj[stack[s]] = False
        rb, log_top, _, status = _reverse(indptr, cols, a, tptr, trow, tedge, ta, price, profit,
                                          pedge, oown, stack, rtop, 1, log, marks, log_top,
                                          True, budget - bids, stop)
        bids += rb
    change = _undo(log, log_top, marks, price, profit, pedge, oown, w)
    return status == DONE, change, bids


@_group.add
def vcg_hybrid(
    n: int, m: int, indptr: IntArray, cols: IntArray, a: IntArray, w: IntArray,
    pedge: IntArray, price: IntArray, profit: IntArray, u: IntArray, p: IntArray,
    group_indptr: IntArray, group_objects: IntArray, out: IntArray, max_work: int,
    stop: npt.NDArray[np.uint8],
) -> tuple[int, int, int]:
    """`vcg_groups` with a budgeted local auction before each search.

    The duals are made object-optimal (`max_duals`); a group whose loss they prove
    (`_certified_loss`: one object, or every displaced person at ``u = 0``) needs nothing
    more; otherwise `_local_auction` tries the removal with a bid budget of
    ``64 (displaced + 16)``, and on a price war (budget spent) `_vcg_group` re-solves it
    exactly by shortest paths. After a price war the next group first tries a search capped
    at as many work units as its bid budget (tie-heavy markets war on every group while their
    searches end at once), and goes back to auctions first when that cap is hit. When the
    cheap tries finish on fewer than 1 in `SKIP_AFTER` groups, a group where both gave up sends
    as many groups as were tried straight to uncapped searches: where every removal needs long
    searches (every offer matched, few requests at zero profit) the cheap tries only cost.
    Each group not proved goes one of two ways, those cheap tries first or an uncapped search
    at once (its displaced persons re-matched along their tree routes where open, see
    `_vcg_group`), whichever has read fewer edges per group so far (bids count the mean row
    length): `PROBES` groups each way first, then the other way every `PROBE_EVERY` groups.

    (pedge, price, profit) the optimal eps = 1 auction solution and (u, p) exact duals of the
    same matching; all left unchanged. Work bound: the `max_duals` pass, plus twice the
    budgets (``64 (k + 16)`` per group, k its matched objects: ``128 (min(n, m) + 16 G)`` in
    all, bids and capped searches), plus `vcg_groups`' bound. Returns (status, next group,
    work) as `vcg_groups`.
    """
    u, p, work, parent = _max_duals(n, m, indptr, cols, w, pedge, u, p)
    order, slack, pe = _by_slack(n, indptr, cols, w, pedge, u, p)
    cols = cols[order]
    w = w[order]
    a = a[order]
    u0 = u.copy()
    work += len(cols)
    tptr, trow, tedge, ta = transpose(n, m, indptr, cols, a)
    oown = np.full(m, -1, dtype=np.int64)
    for i in range(n):
        if pe[i] >= 0:
            oown[cols[pe[i]]] = i
    stack = np.empty(max(n, m) + 1, dtype=np.int64)
    log = np.empty(3 * (2 * n + 2 * m) + 3, dtype=np.int64)
    marks = np.zeros((4, max(n, m) + 1), dtype=np.bool_)
    queued_obj = np.zeros(m, dtype=np.bool_)
    erow = _edge_rows(n, indptr)
    prof = profit.copy()
    pr = price.copy()
    removed, dist, pred, done, seen, settled, hk, hv, hx = _search_arrays(m, len(cols))
    trail = np.empty(m, dtype=np.int64)
    chain = np.empty(CHAIN_STEPS, dtype=np.int64)
    chain_e = np.empty(CHAIN_STEPS, dtype=np.int64)
    n_groups = len(group_indptr) - 1
    search_first = False  # after a price war, try a capped search before the next auction
    tries = 0  # groups where the cheap tries (capped search, local auction) were made
    wins = 0  # ... and one of them finished
    skip = 0  # groups left that go straight to an uncapped search
    deg = max(1, len(cols) // max(n, 1))  # edges a bid reads, on average
    reads = 0  # edges read by searches and bids so far
    way = -1  # the previous group's way: 0 cheap tries first, 1 a search at once
    start = 0  # reads when it began
    cost = np.zeros(2, dtype=np.int64)  # edges read per way ...
    count = np.zeros(2, dtype=np.int64)  # ... over this many groups
    for g in range(n_groups):
        if way >= 0:
            cost[way] += reads - start
            count[way] += 1
            way = -1
        if work > max_work:
            return WORK_LIMIT, g, work
        if stop[0] != 0:
            return DEADLINE, g, work
        proved, loss, displaced, steps = _certified_loss(g, group_indptr, group_objects, oown,
                                                         u, p, True, parent, removed, trail)
        work += group_indptr[g + 1] - group_indptr[g] + steps
        if proved:
            out[g] = loss
            continue
        if count[0] < PROBES or count[1] < PROBES:
            way = 1 if count[1] < count[0] else 0
        else:  # the cheaper way so far, the other one every PROBE_EVERY groups
            way = 1 if cost[1] * count[0] <= cost[0] * count[1] else 0
            if (count[0] + count[1]) % PROBE_EVERY == 0:
                way = 1 - way
        start = reads
        skipped = way == 0 and skip > 0  # the cheap tries rarely finish here
        if skipped:
            skip -= 1
        if way == 1 or skipped:
            _, loss, wk = _vcg_group(g, indptr, cols, w, erow, pe, oown, u, p, group_indptr,
                                     group_objects, removed, dist, pred, done, seen, settled,
                                     hk, hv, hx, slack, u0, stack, log, marks, parent, chain,
                                     chain_e, NO_LIMIT)
            work += wk
            reads += wk
            out[g] = loss
            continue
        budget = LOCAL_BIDS * (displaced + 16)
        capped = search_first
        if search_first:
            ok, loss, wk = _vcg_group(g, indptr, cols, w, erow, pe, oown, u, p, group_indptr,
                                      group_objects, removed, dist, pred, done, seen, settled,
                                      hk, hv, hx, slack, u0, stack, log, marks, parent, chain,
                                      chain_e, SEARCH_FIRST * budget)
            work += wk
            reads += wk
            if ok:
                out[g] = loss
                tries += 1
                wins += 1
                continue
            search_first = False
        ok, change, bids = _local_auction(g, indptr, cols, a, w, tptr, trow, tedge, ta, pr,
                                          prof, pe, oown, group_indptr, group_objects, stack,
                                          log, marks, queued_obj, budget, stop)
        work += bids
        reads += bids * deg
        tries += 1
        if ok:
            out[g] = -change
            wins += 1
            continue
        search_first = True
        if capped and tries >= SKIP_AFTER and wins * SKIP_AFTER < tries:
            skip = tries  # the cheap tries rarely finish: skip them for as many groups
        _, loss, wk = _vcg_group(g, indptr, cols, w, erow, pe, oown, u, p, group_indptr,
                                 group_objects, removed, dist, pred, done, seen, settled, hk,
                                 hv, hx, slack, u0, stack, log, marks, parent, chain, chain_e,
                                 NO_LIMIT)
        work += wk
        reads += wk
        out[g] = loss
    return DONE, n_groups, work


@_group.add
def vcg_bonuses(
    n: int, m: int, indptr: IntArray, cols: IntArray, a: IntArray, w: IntArray,
    pedge: IntArray, price: IntArray, profit: IntArray,
    group_indptr: IntArray, group_objects: IntArray, theta: int,
) -> IntArray:
    """Welfare lost when each group's objects are removed, W* - W*(-group), in units of `w`.

    `a` are the bidding benefits (``w * (2n + 1) + 1``) and (pedge, price, profit) an optimal
    eps = 1 auction solution, left unchanged. Exact integer duals come from the auction's
    prices (`exact_duals`), then `vcg_hybrid` re-solves each group's removal: a budgeted local
    auction, else warm-started shortest augmenting paths. If the duals cannot be rounded,
    `exact_matching` re-solves from scratch and only the shortest paths run (`vcg_groups`).
    No work limit (see `vcg_hybrid` for the bound); `theta` is kept for compatibility.
    """
    n_groups = len(group_indptr) - 1
    out = np.zeros(n_groups, dtype=np.int64)
    stop = np.zeros(1, dtype=np.uint8)
    u, p, ok = exact_duals(n, m, indptr, cols, a, w, pedge, price)
    if ok:
        vcg_hybrid(n, m, indptr, cols, a, w, pedge, price, profit, u, p, group_indptr,
                   group_objects, out, NO_LIMIT, stop)
    else:
        pe, u, p, _, _ = exact_matching(n, m, indptr, cols, w, NO_LIMIT, stop)
        vcg_groups(n, m, indptr, cols, w, pe, u, p, group_indptr, group_objects, 0, out,
                   NO_LIMIT, stop)
    return out


def solve_bounded(
    n: int, m: int, indptr: IntArray, cols: IntArray, a: IntArray, theta: int, *,
    max_work: int | None = None, deadline: float | None = None, backend: str = "numba",
) -> tuple[IntArray, IntArray, IntArray, int, int, int, int]:
    """`auction_matching_bounded` with its theoretical work bound by default and a deadline.

    `deadline` is a ``time.monotonic()`` value (None: none). Returns the kernel's 7-tuple; the
    last item is the status (`DONE`, `WORK_LIMIT`, `DEADLINE`).
    """
    if max_work is None:
        top = int(a.max()) if len(a) else 0
        max_work = auction_work_bound(n, m, len(cols), top, theta)
    kernel = auction_matching_bounded if backend == "numba" else (
        auction_matching_bounded.py_func)
    with stop_at(deadline) as stop:
        out = kernel(n, m, indptr, cols, a, theta, max_work, stop)
    return out[0], out[1], out[2], int(out[3]), int(out[4]), int(out[5]), int(out[6])


def vcg_hybrid_work_bound(n: int, m: int, edges: int, groups: int) -> int:
    """`vcg_hybrid`'s work bound: its local auctions' budgets and as many capped search units,
    ``2 LOCAL_BIDS (min(n, m) + 16 groups)``, the capped searches' route walks (at most E per
    matched object), plus the shortest-path re-solves' (`vcg_work_bound`)."""
    return (2 * LOCAL_BIDS * (min(n, m) + 16 * groups) + min(n, m) * (edges + 1)
            + vcg_work_bound(n, m, edges))


def vcg_bonuses_bounded(
    n: int, m: int, indptr: IntArray, cols: IntArray, a: IntArray, w: IntArray,
    pedge: IntArray, price: IntArray, group_indptr: IntArray, group_objects: IntArray, *,
    max_work: int | None = None, deadline: float | None = None, backend: str = "numba",
    profit: IntArray | None = None,
) -> tuple[IntArray, int, int]:
    """`vcg_bonuses` with a work bound (default `vcg_hybrid_work_bound`) and a deadline.

    Returns (bonuses, status, groups done): groups from ``groups done`` on are not computed
    (0) when the status is `WORK_LIMIT` or `DEADLINE`. With the auction's `profit` the local
    auction is tried first per group (`vcg_hybrid`), else shortest paths only.
    """
    if max_work is None:
        max_work = vcg_hybrid_work_bound(n, m, len(cols), len(group_indptr) - 1)
    duals = exact_duals if backend == "numba" else exact_duals.py_func
    solve = exact_matching if backend == "numba" else exact_matching.py_func
    groups = vcg_groups if backend == "numba" else vcg_groups.py_func
    hybrid = vcg_hybrid if backend == "numba" else vcg_hybrid.py_func
    out = np.zeros(len(group_indptr) - 1, dtype=np.int64)
    with stop_at(deadline) as stop:
        u, p, ok = duals(n, m, indptr, cols, a, w, pedge, price)
        if ok and profit is not None:
            status, done, _ = hybrid(n, m, indptr, cols, a, w, pedge, price, profit, u, p,
                                     group_indptr, group_objects, out, max_work, stop)
            return out, int(status), int(done)
        pe = pedge.copy()
        used = 0
        if not ok:
            pe, u, p, status, used = solve(n, m, indptr, cols, w, max_work, stop)
            if status != DONE:
                return out, int(status), 0
        status, done, _ = groups(n, m, indptr, cols, w, pe, u, p, group_indptr, group_objects,
                                 0, out, max_work - used, stop)
    return out, int(status), int(done)


def check_eps_cs(
    indptr: IntArray, cols: IntArray, a: IntArray, pedge: IntArray, price: IntArray,
    profit: IntArray, eps: int = 1,
) -> str | None:
    """None if (pedge, price, profit) satisfies eps-CS; else a description of a violation."""
    n, m = len(indptr) - 1, len(price)
    if (price < 0).any():
        return f"negative price at object {int(np.argmin(price))}"
    matched_obj = np.zeros(m, dtype=bool)
    for i in range(n):
        e = pedge[i]
        if e >= 0:
            if profit[i] + price[cols[e]] != a[e]:
                return f"matched pair ({i}, {cols[e]}): profit + price != benefit"
            if matched_obj[cols[e]]:
                return f"object {cols[e]} matched twice"
            if profit[i] < -eps:
                return f"matched person {i} has profit {profit[i]}, below staying out by > eps"
            matched_obj[cols[e]] = True
        elif profit[i] != 0:
            return f"unmatched person {i} has profit {profit[i]}"
    if (price[~matched_obj] != 0).any():
        return "an unmatched object has a positive price"
    rows = np.repeat(np.arange(n), np.diff(indptr))
    slack = profit[rows] + price[cols] - a
    if len(slack) and slack.min() < -eps:
        e = int(np.argmin(slack))
        return f"edge ({rows[e]}, {cols[e]}) violates eps-CS by {-int(slack[e]) - eps}"
    return None
