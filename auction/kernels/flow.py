"""Exact integer transportation problem (b-matching with partial fills) by cost scaling.

Problem: n requests with demand ``d[r]``, m offers with capacity ``c[o]``, eligible pairs in CSR
over requests with an integer surplus per unit ``w[e] >= 0``. Maximize ``sum w[e] * x[e]`` over
integers ``x >= 0`` with at most ``d[r]`` units per request and ``c[o]`` per offer. Nobody has
to trade.

Network (min-cost flow): request r has supply ``d[r]``; arcs r -> o (edge e, capacity
``min(d[r], c[o])``, cost ``-w[e] * scale``), o -> T (capacity ``c[o]``, cost 0) and a bypass
r -> T (capacity ``d[r]``, cost 0) into one sink T with demand ``sum d``. Edges of weight 0 are
left out (they never add welfare; their x is 0).

Algorithm: Goldberg's cost-scaling push-relabel (Goldberg & Tarjan 1990, "Finding minimum-cost
circulations by successive approximation"; Goldberg 1997, "An efficient implementation of a
scaling minimum-cost flow algorithm", the method of CS2 and of OR-tools' min-cost flow). With
prices p and reduced costs ``rc(v, w) = cost + p[v] - p[w]``, a flow is eps-optimal when every
residual arc has ``rc >= -eps``. Each phase divides eps by ``alpha`` and refines:

* saturate every residual arc with ``rc < 0`` (the pseudo-flow is then 0-optimal), which leaves
  excesses and deficits;
* discharge active nodes (positive excess) in FIFO order: push along admissible arcs
  (residual, ``rc < 0``) from the node's current-arc pointer; with none left, relabel:
  ``p[v] = max over residual arcs (p[w] - cost) - eps``, and restart the pointer;
* look-ahead (Goldberg 1997): before pushing into a node w without a deficit, make sure w has an
  admissible arc, relabelling w if not, so flow is not pushed into a node that must push it
  straight back.

The last phase runs at eps = 1. Every simple cycle of the residual graph alternates requests
and offers, passing T at most once, so it has at most ``2 min(n, m) + 2`` arcs; with costs
scaled by ``scale = 2 min(n, m) + 3`` a 1-optimal flow has no negative cycle (a cycle's scaled
cost is a multiple of `scale` and above ``-scale``): it is exactly optimal.

Two choices that measured fastest on random markets (1000 offers x 5000 requests and 5000 x
50000, 20 eligible offers per request): no global price updates, which cost more than they
saved — every active node here is at most two residual arcs from a deficit node (an active
request's bypass is residual; an active offer has spare capacity or holds units of a request
that can bypass or is short), so relabelling alone keeps labels short; and, per node, the
reverse arcs with residual capacity (the units an offer holds, the units T received) kept in a
prefix of its arc list, so an offer scans the few requests it holds, not every request it
could serve. The hot loops inline their pushes by hand: a compiled helper per push or per
arc swap measured 10-60% slower.

Integer guards: scaled costs stay below ``2**59`` (else status `COST_OVERFLOW`), and prices,
shifted each phase so the highest is 0, must stay above ``-2**62`` (else `PRICE_OVERFLOW`), so
every reduced cost and relabel fits in int64.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from auction.errors import AuctionOverflowError, InvalidTypeError, InvalidValueError, SolverError
from auction.kernels.budget import (
    CHECK_EVERY,
    DEADLINE,
    NO_LIMIT,
    STATUS_NAMES,
    WORK_LIMIT,
    stop_at,
    transport_work_bound,
)
from auction.kernels.jit import KernelGroup

__all__ = [
    "COST_LIMIT",
    "COST_OVERFLOW",
    "OK",
    "PRICE_LIMIT",
    "PRICE_OVERFLOW",
    "STUCK",
    "flow_scale",
    "transport_bounded",
    "transport_kernel",
    "transport_max_weight",
]

IntArray = npt.NDArray[np.int64]
_group = KernelGroup(nogil=True)

#: Scaled costs ``weight * scale`` must stay at or below this.
COST_LIMIT = 1 << 59
#: Prices (all <= 0 after the per-phase shift) must stay at or above minus this.
PRICE_LIMIT = 1 << 62
OK = 0
COST_OVERFLOW = 1
PRICE_OVERFLOW = 2
#: Internal error: an active node without a residual arc (a bug, never expected).
STUCK = 3
NEG = -(1 << 62)


def flow_scale(n: int, m: int) -> int:
    """Cost multiplier that makes the final 1-optimal flow exact: ``2 min(n, m) + 3``."""
    return 2 * min(n, m) + 3


@_group.add
def _network(
    n: int, m: int, demand: IntArray, capacity: IntArray, indptr: IntArray, cols: IntArray,
    weight: IntArray, scale: int,
) -> tuple[IntArray, IntArray, IntArray, IntArray, IntArray, IntArray, IntArray]:
    """Residual graph: (first, rstart, head, res, cost, rev, earc).

    Nodes: requests 0..n-1, offers n..n+m-1, sink T = n+m. Node v's arcs are
    ``first[v]..first[v+1]``: its forward arcs, then from ``rstart[v]`` the reverse arcs of arcs
    into v (none for a request). ``rev`` pairs each arc with its reverse; ``earc[e]`` is the
    forward arc of edge e (-1 for a zero-weight edge, left out).
    """
    n_edges = len(cols)
    nn = n + m + 1
    t = n + m
    deg = np.zeros(nn, dtype=np.int64)
    for r in range(n):
        deg[r] = 1
        for e in range(indptr[r], indptr[r + 1]):
            if weight[e] > 0:
                deg[r] += 1
                deg[n + cols[e]] += 1
    for o in range(m):
        deg[n + o] += 1
    deg[t] = n + m
    first = np.zeros(nn + 1, dtype=np.int64)
    for v in range(nn):
        first[v + 1] = first[v] + deg[v]
    rstart = np.empty(nn, dtype=np.int64)
    for r in range(n):
        rstart[r] = first[r + 1]
    for o in range(m):
        rstart[n + o] = first[n + o] + 1
    rstart[t] = first[t]
    n_arcs = first[nn]
    head = np.empty(n_arcs, dtype=np.int64)
    res = np.zeros(n_arcs, dtype=np.int64)
    cost = np.zeros(n_arcs, dtype=np.int64)
    rev = np.empty(n_arcs, dtype=np.int64)
    pos = first[:nn].copy()
    earc = np.full(n_edges, -1, dtype=np.int64)
    for o in range(m):
        a = pos[n + o]
        b = pos[t]
        pos[n + o] += 1
        pos[t] += 1
        head[a] = t
        res[a] = capacity[o]
        rev[a] = b
        head[b] = n + o
        rev[b] = a
    for r in range(n):
        for e in range(indptr[r], indptr[r + 1]):
            if weight[e] == 0:
                continue
            o = n + cols[e]
            a = pos[r]
            b = pos[o]
            pos[r] += 1
            pos[o] += 1
            head[a] = o
            res[a] = min(demand[r], capacity[cols[e]])
            cost[a] = -weight[e] * scale
            rev[a] = b
            head[b] = r
            cost[b] = weight[e] * scale
            rev[b] = a
            earc[e] = a
        a = pos[r]
        b = pos[t]
        pos[r] += 1
        pos[t] += 1
        head[a] = t
        res[a] = demand[r]
        rev[a] = b
        head[b] = r
        rev[b] = a
    return first, rstart, head, res, cost, rev, earc


@_group.add
def transport_kernel(
    n: int, m: int, demand: IntArray, capacity: IntArray, indptr: IntArray, cols: IntArray,
    weight: IntArray, alpha: int, price_limit: int,
) -> tuple[IntArray, IntArray, int, int, int, int, int]:
    """Solve; return (x, price, status, scale, phases, pushes, relabels).

    ``x[e]`` is the flow on edge e; `price` the node prices (requests, offers, T) of the final
    1-optimal flow in scaled units (every residual arc has reduced cost >= -1); `status` is
    `OK`, or `COST_OVERFLOW`, `PRICE_OVERFLOW` or `STUCK`, and then x is not meaningful.
    No work bound or deadline: see `transport_bounded`.
    """
    return transport_bounded(n, m, demand, capacity, indptr, cols, weight, alpha, price_limit,
                             NO_LIMIT, np.zeros(1, dtype=np.uint8))


@_group.add
def transport_bounded(
    n: int, m: int, demand: IntArray, capacity: IntArray, indptr: IntArray, cols: IntArray,
    weight: IntArray, alpha: int, price_limit: int, max_work: int,
    stop: npt.NDArray[np.uint8],
) -> tuple[IntArray, IntArray, int, int, int, int, int]:
    """`transport_kernel` stopping past `max_work` pushes + relabels (status `WORK_LIMIT`) or
    once ``stop[0]`` is set (`DEADLINE`, read every `CHECK_EVERY` node discharges); x is then
    all zeros (the pseudo-flow of an unfinished phase is not feasible; nobody trading is).
    `auction.kernels.budget.transport_work_bound` states the theoretical bound.
    """
    nn = n + m + 1
    t = n + m
    scale = 2 * min(n, m) + 3
    top_w = 0
    for e in range(len(weight)):
        top_w = max(top_w, weight[e])
    if top_w > COST_LIMIT // scale:
        return np.zeros(len(cols), dtype=np.int64), np.zeros(nn, dtype=np.int64), \
            COST_OVERFLOW, scale, 0, 0, 0
    first, rstart, head, res, cost, rev, earc = _network(
        n, m, demand, capacity, indptr, cols, weight, scale)
    nres = np.zeros(nn, dtype=np.int64)
    price = np.zeros(nn, dtype=np.int64)
    excess = np.zeros(nn, dtype=np.int64)
    total = 0
    for r in range(n):
        excess[r] = demand[r]
        total += demand[r]
    excess[t] = -total
    current = np.empty(nn, dtype=np.int64)
    queue = np.empty(nn, dtype=np.int64)
    queued = np.zeros(nn, dtype=np.bool_)
    eps = top_w * scale
    phases = 0
    pushes = 0
    relabels = 0
    discharges = 0
    status = OK
    while eps > 1 and status == OK:
        eps = max(1, eps // alpha)
        phases += 1
        # shift prices so the highest is 0 (only differences matter)
        top_p = NEG
        for v in range(nn):
            top_p = max(top_p, price[v])
        for v in range(nn):
            price[v] -= top_p
        # saturate every admissible arc: the pseudo-flow becomes 0-optimal
        for v in range(nn):
            pv = price[v]
            a = first[v]
            while a < rstart[v] + nres[v]:
                if res[a] > 0 and cost[a] + pv - price[head[a]] < 0:
                    w = head[a]
                    d = res[a]
                    b = rev[a]
                    if res[b] == 0 and b >= rstart[w]:
                        s = rstart[w] + nres[w]
                        if b != s:
                            head[b], head[s] = head[s], head[b]
                            res[b], res[s] = res[s], res[b]
                            cost[b], cost[s] = cost[s], cost[b]
                            ri = rev[b]
                            rj = rev[s]
                            rev[b] = rj
                            rev[s] = ri
                            rev[rj] = b
                            rev[ri] = s
                        nres[w] += 1
                        b = s
                    res[a] = 0
                    res[b] += d
                    excess[v] -= d
                    excess[w] += d
                    if a >= rstart[v]:
                        # an emptied reverse arc leaves the prefix; slot a gets another one
                        nres[v] -= 1
                        s = rstart[v] + nres[v]
                        if a != s:
                            head[a], head[s] = head[s], head[a]
                            res[a], res[s] = res[s], res[a]
                            cost[a], cost[s] = cost[s], cost[a]
                            ri = rev[a]
                            rj = rev[s]
                            rev[a] = rj
                            rev[s] = ri
                            rev[rj] = a
                            rev[ri] = s
                        continue
                a += 1
        qh = 0
        qt = 0
        count = 0
        for v in range(nn):
            current[v] = first[v]
            if excess[v] > 0:
                queue[qt] = v
                qt += 1
                count += 1
                queued[v] = True
        if qt == nn:
            qt = 0
        while count > 0 and status == OK:
            if pushes + relabels > max_work:
                status = WORK_LIMIT
                break
            discharges += 1
            if discharges % CHECK_EVERY == 0 and stop[0] != 0:
                status = DEADLINE
                break
            v = queue[qh]
            qh += 1
            if qh == nn:
                qh = 0
            count -= 1
            queued[v] = False
            while excess[v] > 0:
                pv = price[v]
                a = current[v]
                end = rstart[v] + nres[v]
                while a < end:
                    if res[a] > 0 and cost[a] + pv - price[head[a]] < 0:
                        w = head[a]
                        if excess[w] < 0:
                            break
                        # look-ahead: w must be able to pass the flow on
                        ew = rstart[w] + nres[w]
                        pw = price[w]
                        b = current[w]
                        while b < ew:
                            if res[b] > 0 and cost[b] + pw - price[head[b]] < 0:
                                break
                            b += 1
                        if b < ew:
                            current[w] = b
                            break
                        newp = 0
                        arc = -1
                        for b in range(first[w], ew):
                            if res[b] > 0:
                                q = price[head[b]] - cost[b]
                                if arc < 0 or q > newp:
                                    newp = q
                                    arc = b
                        newp -= eps
                        if arc < 0:
                            break  # w has no residual arc yet: push, it can send flow back
                        if newp < -price_limit:
                            status = PRICE_OVERFLOW
                            break
                        price[w] = newp
                        current[w] = first[w]
                        relabels += 1
                        if cost[a] + pv - newp < 0:
                            break
                    a += 1
                if status != OK:
                    break
                if a < end:
                    current[v] = a
                    w = head[a]
                    d = min(excess[v], res[a])
                    b = rev[a]
                    if res[b] == 0 and b >= rstart[w]:
                        s = rstart[w] + nres[w]
                        if b != s:
                            head[b], head[s] = head[s], head[b]
                            res[b], res[s] = res[s], res[b]
                            cost[b], cost[s] = cost[s], cost[b]
                            ri = rev[b]
                            rj = rev[s]
                            rev[b] = rj
                            rev[s] = ri
                            rev[rj] = b
                            rev[ri] = s
                        nres[w] += 1
                        b = s
                    res[a] -= d
                    res[b] += d
                    excess[v] -= d
                    excess[w] += d
                    if res[a] == 0 and a >= rstart[v]:
                        nres[v] -= 1
                        s = rstart[v] + nres[v]
                        if a != s:
                            head[a], head[s] = head[s], head[a]
                            res[a], res[s] = res[s], res[a]
                            cost[a], cost[s] = cost[s], cost[a]
                            ri = rev[a]
                            rj = rev[s]
                            rev[a] = rj
                            rev[s] = ri
                            rev[rj] = a
                            rev[ri] = s
                    pushes += 1
                    if excess[w] > 0 and not queued[w]:
                        queued[w] = True
                        queue[qt] = w
                        qt += 1
                        if qt == nn:
                            qt = 0
                        count += 1
                else:
                    newp = 0
                    arc = -1
                    for b in range(first[v], end):
                        if res[b] > 0:
                            q = price[head[b]] - cost[b]
                            if arc < 0 or q > newp:
                                newp = q
                                arc = b
                    newp -= eps
                    if arc < 0:  # cannot happen: an active node has a residual arc
                        status = STUCK
                        break
                    if newp < -price_limit:
                        status = PRICE_OVERFLOW
                        break
                    price[v] = newp
                    current[v] = first[v]
                    relabels += 1
    x = np.zeros(len(cols), dtype=np.int64)
    if status != OK:
        return x, price, status, scale, phases, pushes, relabels
    for e in range(len(cols)):
        if earc[e] >= 0:
            x[e] = res[rev[earc[e]]]
    return x, price, status, scale, phases, pushes, relabels


def _int_array(name: str, values: Any, length: int) -> IntArray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise InvalidValueError(f"{name}.shape", arr.shape, "must be one-dimensional")
    if len(arr) and not np.issubdtype(arr.dtype, np.integer):
        raise InvalidTypeError(name, arr.dtype, "an array of integers")
    if len(arr) != length:
        raise InvalidValueError(f"{name}.shape", arr.shape, f"must be ({length},)")
    return np.ascontiguousarray(arr, dtype=np.int64)


def _first_negative(**arrays: IntArray) -> None:
    """Refuse the first negative entry of any of `arrays`, naming it."""
    for name, arr in arrays.items():
        bad = np.flatnonzero(arr < 0)
        if len(bad):
            i = int(bad[0])
            raise InvalidValueError(f"{name}[{i}]", int(arr[i]), "must be >= 0")


def transport_max_weight(
    n: int, m: int, demand: Any, capacity: Any, indptr: Any, cols: Any, weight: Any,
    backend: str = "numba", *, alpha: int = 5, max_work: int | None = None,
    deadline: float | None = None,
) -> tuple[IntArray, dict[str, Any]]:
    """Maximum-weight transportation: units ``x[e]`` per eligible edge, and solver stats.

    Args:
        n: number of requests.
        m: number of offers.
        demand: per request, the most units it takes (int, >= 0).
        capacity: per offer, the most units it gives (int, >= 0).
        indptr: eligible (request, offer) edges in CSR over requests: request r's edges are
            ``indptr[r]..indptr[r+1]``.
        cols: each edge's offer.
        weight: each edge's surplus per unit, ``>= 0``.
        backend: ``"numba"`` (compiled on first use) or ``"python"`` (the same code, uncompiled;
            the reference the tests compare with).
        alpha: epsilon divisor per scaling phase (>= 2).
        max_work: pushes + relabels allowed (default: `transport_work_bound`).
        deadline: a ``time.monotonic()`` value to stop at (None: no deadline).

    Returns ``(x, stats)``: ``x`` (int64, one per edge) maximizes ``sum weight * x`` with at most
    ``demand[r]`` units on request r's edges and ``capacity[o]`` on offer o's; `stats` has the
    ``scale`` of the costs, scaling ``phases``, ``pushes``, ``relabels`` and ``status``
    (``"done"``, or ``"work_limit"`` / ``"deadline"``, and then x is all zeros: no trade).

    Raises:
        AuctionOverflowError: scaled weights or prices would leave exact int64 range.
        SolverError: the kernel reported an internal error (never expected).
        InvalidValueError, InvalidTypeError: malformed arrays or arguments, naming the first
            offending entry (a ValueError or TypeError too).
    """
    for name, size in (("n", n), ("m", m)):
        if size < 0:
            raise InvalidValueError(name, size, "must be >= 0")
    if alpha < 2:
        raise InvalidValueError("alpha", alpha, "must be >= 2")
    if backend not in ("numba", "python"):
        raise InvalidValueError("backend", backend, "must be 'numba' or 'python'")
    d = _int_array("demand", demand, n)
    c = _int_array("capacity", capacity, m)
    ip = _int_array("indptr", indptr, n + 1)
    if ip[0] != 0:
        raise InvalidValueError("indptr[0]", int(ip[0]), "must be 0")
    drops = np.flatnonzero(np.diff(ip) < 0)
    if len(drops):
        i = int(drops[0]) + 1
        raise InvalidValueError(f"indptr[{i}]", int(ip[i]),
                                f"must be non-decreasing (indptr[{i - 1}] = {int(ip[i - 1])})")
    n_edges = int(ip[-1])
    cl = _int_array("cols", cols, n_edges)
    w = _int_array("weight", weight, n_edges)
    out = np.flatnonzero((cl < 0) | (cl >= m))
    if len(out):
        e = int(out[0])
        raise InvalidValueError(f"cols[{e}]", int(cl[e]), f"must lie in [0, {m})")
    _first_negative(demand=d, capacity=c, weight=w)
    scale = flow_scale(n, m)
    top = int(w.max(initial=0))
    if top * scale > COST_LIMIT:
        raise AuctionOverflowError(
            f"weights up to {top} x scale {scale} exceed the exact min-cost flow's limit "
            f"2**59; use a coarser unit or a smaller market"
        )
    if int(d.sum(dtype=object)) + int(c.sum(dtype=object)) >= PRICE_LIMIT:
        raise AuctionOverflowError("total demand plus capacity exceeds 2**62 units")
    if max_work is None:
        max_work = transport_work_bound(n, m, n_edges, top, alpha)
    kernel = transport_bounded if backend == "numba" else transport_bounded.py_func
    with stop_at(deadline) as stop:
        x, _, status, scale, phases, pushes, relabels = kernel(n, m, d, c, ip, cl, w, alpha,
                                                              PRICE_LIMIT, max_work, stop)
    if status == PRICE_OVERFLOW:
        raise AuctionOverflowError(
            f"min-cost flow prices left the int64 range (weights up to {top} x scale {scale}); "
            "use a coarser unit"
        )
    if status not in (OK, WORK_LIMIT, DEADLINE):
        raise SolverError("flow", "transport_kernel", f"internal status {status} (a bug)")
    stats: dict[str, Any] = {"scale": int(scale), "phases": int(phases), "pushes": int(pushes),
                             "relabels": int(relabels), "status": STATUS_NAMES[int(status)]}
    return x, stats
