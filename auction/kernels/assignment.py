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
NO_LIMIT = 1 << 62


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
    marks: npt.NDArray[np.bool_], log_top: int, logging: bool, max_bids: int,
) -> tuple[int, int]:
    """Forward steps until every person on the stack is matched or out; (bids, log top).

    Gives up with bids = -1 once `max_bids` bids were made.
    """
    bids = 0
    while top > 0:
        if bids >= max_bids:
            return -1, log_top
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
                        stack, n, eps, log, marks, 0, False, NO_LIMIT)
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
    scaling over the part of the market it touches (first at eps = 1 alone, with a bid budget,
    since most removals are local): forward steps only until the last phase
    (prices only rise, so a person that has not moved keeps the 1-CS of the optimum and each
    new phase re-checks only persons that moved), then reverse steps at eps = 1 for touched
    objects left unmatched at a positive price. Every change is logged once and undone.
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
    queued = np.zeros(n, dtype=np.bool_)
    queued_obj = np.zeros(m, dtype=np.bool_)
    for g in range(n_groups):
        displaced = 0
        for k in range(group_indptr[g], group_indptr[g + 1]):
            if oown[group_objects[k]] >= 0:
                displaced += 1
        if displaced == 0:
            continue
        # First try the warm start at eps = 1 with a bid budget (most removals are local);
        # on a price war, undo and re-run with epsilon scaling from the largest benefit.
        for attempt in range(2):
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
            eps = 1 if attempt == 0 else max(1, top_a // theta)
            budget = 64 * (displaced + 16) if attempt == 0 else NO_LIMIT
            ok = True
            while True:
                bids, log_top = _forward(indptr, cols, a, price, profit, pedge, oown,
                                         stack, top, eps, log, marks, log_top, True, budget)
                if bids < 0:
                    ok = False
                    break
                if eps == 1:
                    break
                eps = max(1, eps // theta)
                # only persons that moved can break eps-CS at the new eps: until the last
                # phase prices only rise, and a person's own object is repriced only by
                # displacing it
                top = 0
                for t in range(0, log_top, 3):
                    if log[t] == 1:
                        top, log_top = _recheck(indptr, cols, a, price, profit, pedge, oown,
                                                stack, top, eps, log, marks, log_top, queued,
                                                log[t + 1])
                for s in range(top):
                    queued[stack[s]] = False
            if ok:
                # eps = 1: touched objects left unmatched at a positive price bid for persons;
                # reverse steps at eps = 1 keep every neighbour's 1-CS
                rtop = 0
                for t in range(0, log_top, 3):
                    j = log[t + 1]
                    repriced = log[t] == 0 or log[t] == 3
                    if repriced and oown[j] < 0 and 0 < price[j] < UNREACHABLE and not (
                        queued_obj[j]
                    ):
                        queued_obj[j] = True
                        stack[rtop] = j
                        rtop += 1
                for s in range(rtop):
                    queued_obj[stack[s]] = False
                _, log_top = _reverse(indptr, cols, a, tptr, trow, tedge, ta, price, profit,
                                      pedge, oown, stack, rtop, 1, log, marks, log_top, True)
            change = _undo(log, log_top, marks, price, profit, pedge, oown, w)
            if ok:
                out[g] = -change
                break
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
