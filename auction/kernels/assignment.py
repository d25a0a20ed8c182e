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

Epsilon starts near the largest benefit and shrinks by `theta` each phase down to 1. Benefits
are integers scaled by ``n + 1`` by the caller: with eps = 1 a matching satisfying eps-CS is
within n of the optimum in scaled units, less than one unit of the original: exact.

`vcg_bonuses` re-solves the market without each group of objects (a provider's offers) by a
warm-started auction from the optimal prices, undoing its changes afterwards; the work per group
is local to the persons it displaces.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from auction.kernels.jit import KernelGroup

__all__ = ["auction_matching", "check_eps_cs", "transpose", "vcg_bonuses"]

IntArray = npt.NDArray[np.int64]
_group = KernelGroup(nogil=True)
NEG = -(1 << 62)
#: Price that takes an object out of the market: no benefit (< 2**61) can pay it.
UNREACHABLE = 1 << 61


@_group.add
def transpose(
    n: int, m: int, indptr: IntArray, cols: IntArray, a: IntArray
) -> tuple[IntArray, IntArray, IntArray, IntArray]:
    """Object-major copy of the graph: tptr, and per entry its person, forward edge, benefit."""
    tptr = np.zeros(m + 1, dtype=np.int64)
    for e in range(len(cols)):
        tptr[cols[e] + 1] += 1
    for j in range(m):
        tptr[j + 1] += tptr[j]
    pos = tptr[:-1].copy()
    trow = np.empty(len(cols), dtype=np.int64)
    tedge = np.empty(len(cols), dtype=np.int64)
    ta = np.empty(len(cols), dtype=np.int64)
    for i in range(n):
        for e in range(indptr[i], indptr[i + 1]):
            j = cols[e]
            trow[pos[j]] = i
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
    marks: npt.NDArray[np.bool_], log_top: int, logging: bool,
) -> tuple[int, int]:
    """Forward steps until every person on the stack is matched or out; (bids, log top)."""
    bids = 0
    while top > 0:
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
    return bids, log_top


@_group.add
def _reverse(
    indptr: IntArray, cols: IntArray, a: IntArray, tptr: IntArray, trow: IntArray,
    tedge: IntArray, ta: IntArray, price: IntArray, profit: IntArray,
    pedge: IntArray, oown: IntArray, stack: IntArray, top: int, eps: int,
    log: IntArray, marks: npt.NDArray[np.bool_], log_top: int, logging: bool,
) -> tuple[int, int]:
    """Reverse steps for unmatched objects with positive prices on the stack."""
    bids = 0
    while top > 0:
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
    return bids, log_top


@_group.add
def auction_matching(
    n: int, m: int, indptr: IntArray, cols: IntArray, a: IntArray, theta: int
) -> tuple[IntArray, IntArray, IntArray, int, int, int]:
    """Solve; return (pedge, price, profit, forward bids, reverse bids, phases).

    ``pedge[i]`` is the CSR edge matching person i, or -1.
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
    while True:
        phases += 1
        pedge[:] = -1
        oown[:] = -1
        for i in range(n):
            stack[i] = n - 1 - i
        b, _ = _forward(indptr, cols, a, price, profit, pedge, oown,
                        stack, n, eps, log, marks, 0, False)
        fbids += b
        top = 0
        for j in range(m):
            if oown[j] < 0 and price[j] > 0:
                stack[top] = j
                top += 1
        b, _ = _reverse(indptr, cols, a, tptr, trow, tedge, ta, price, profit, pedge,
                        oown, stack, top, eps, log, marks, 0, False)
        rbids += b
        if eps == 1:
            break
        eps = max(1, eps // theta)
    for i in range(n):
        if pedge[i] < 0:
            profit[i] = 0
    return pedge, price, profit, fbids, rbids, phases


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
def vcg_bonuses(
    n: int, m: int, indptr: IntArray, cols: IntArray, a: IntArray, w: IntArray,
    pedge: IntArray, price: IntArray, profit: IntArray,
    group_indptr: IntArray, group_objects: IntArray, theta: int,
) -> IntArray:
    """Welfare lost when each group's objects are removed, W* - W*(-group), in units of `w`.

    `a` are the bidding benefits (`w` scaled so that eps = 1 is exact). Starts from an optimal
    eps = 1 solution (pedge, price, profit), which it leaves unchanged. Per group: price the
    group's objects out of reach, free their persons, and re-run the auction with epsilon
    scaling over the part of the market it touches. Persons it has not touched keep
    1-CS (their object's price is unchanged and other prices only rose), so each new phase
    re-checks only touched persons. Every change is logged once and undone afterwards.
    """
    n_groups = len(group_indptr) - 1
    out = np.zeros(n_groups, dtype=np.int64)
    tptr, trow, tedge, ta = transpose(n, m, indptr, cols, a)
    oown = np.full(m, -1, dtype=np.int64)
    for i in range(n):
        if pedge[i] >= 0:
            oown[cols[pedge[i]]] = i
    top_a = 0
    for e in range(len(a)):
        top_a = max(top_a, a[e])
    stack = np.empty(max(n, m) + 1, dtype=np.int64)
    # undo log: each (kind, index) is saved once per group, so 3 x (2n + 2m) entries suffice
    log = np.empty(3 * (2 * n + 2 * m) + 3, dtype=np.int64)
    marks = np.zeros((4, max(n, m) + 1), dtype=np.bool_)
    for g in range(n_groups):
        log_top = 0
        top = 0
        for k in range(group_indptr[g], group_indptr[g + 1]):
            if oown[group_objects[k]] >= 0:
                stack[top] = oown[group_objects[k]]
                top += 1
        if top == 0:
            continue
        for k in range(group_indptr[g], group_indptr[g + 1]):
            j = group_objects[k]
            log_top = _save(log, log_top, marks, 0, j, price[j])
            log_top = _save(log, log_top, marks, 3, j, oown[j])
            price[j] = UNREACHABLE
            oown[j] = -1
        for s in range(top):
            i = stack[s]
            log_top = _save(log, log_top, marks, 2, i, pedge[i])
            log_top = _save(log, log_top, marks, 1, i, profit[i])
            pedge[i] = -1
            profit[i] = 0
        eps = max(1, top_a // theta)
        while True:
            _, log_top = _forward(indptr, cols, a, price, profit, pedge, oown,
                                  stack, top, eps, log, marks, log_top, True)
            rtop = 0
            for t in range(0, log_top, 3):  # touched objects left unmatched at a price
                j = log[t + 1]
                if log[t] == 0 and oown[j] < 0 and 0 < price[j] < UNREACHABLE:
                    stack[rtop] = j
                    rtop += 1
            _, log_top = _reverse(indptr, cols, a, tptr, trow, tedge, ta, price, profit,
                                  pedge, oown, stack, rtop, eps, log, marks, log_top, True)
            if eps == 1:
                break
            eps = max(1, eps // theta)
            top = 0
            for t in range(0, log_top, 3):  # touched persons that break eps-CS at the new eps
                i = log[t + 1]
                if log[t] == 1 and _violates(indptr, cols, a, price, pedge, i, eps):
                    if pedge[i] >= 0:
                        j = cols[pedge[i]]
                        log_top = _save(log, log_top, marks, 3, j, oown[j])
                        oown[j] = -1
                    log_top = _save(log, log_top, marks, 2, i, pedge[i])
                    pedge[i] = -1
                    profit[i] = 0
                    stack[top] = i
                    top += 1
        # undo, newest first; the welfare change is summed over the persons that moved
        change = 0
        while log_top > 0:
            log_top -= 3
            kind = log[log_top]
            idx = log[log_top + 1]
            val = log[log_top + 2]
            marks[kind, idx] = False
            if kind == 2:
                if pedge[idx] >= 0:
                    change += w[pedge[idx]]
                if val >= 0:
                    change -= w[val]
            if kind == 0:
                price[idx] = val
            elif kind == 1:
                profit[idx] = val
            elif kind == 2:
                pedge[idx] = val
            else:
                oown[idx] = val
        out[g] = -change
    return out


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
