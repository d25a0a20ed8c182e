"""Dense maximum-weight matching by Jonker-Volgenant, exact on integer weights.

The same problem as the auction (`auction.kernels.assignment`): n persons, m objects, a CSR
graph of integer weights, maximise the total weight of a matching in which either side may stay
unmatched; a missing edge (or a weight <= 0, never worth matching) is not allowed. Here the
graph is laid out as a dense R x C matrix (rows = the smaller side, R <= C) and solved by the
Jonker-Volgenant method (Jonker and Volgenant 1987, the structure of ``lap.lapjv``): an
initialisation that matches most rows cheaply, then one shortest augmenting path (Dijkstra on
dense rows, no heap) per row still free. The optimality conditions, in integers (prices p on
columns; ``u_i = w[i, x_i] - p[x_i]`` for matched rows):

* ``u_i + p_j >= w_ij`` on every allowed pair, equality on matched pairs;
* ``u, p >= 0``, and zero on every unmatched row and column.

These are the LP duals of the partial matching problem, so they certify optimality; they are
returned, in weight units, for VCG re-solves to warm-start from. Two modes:

* *Square* (n = m): forbidden and non-positive pairs become weight 0 and the classic JV finds
  a perfect matching of maximum weight (column reduction, reduction transfer, augmenting row
  reduction in up to `ARR_PASSES` passes, then augmentation); it has the partial optimum's
  weight, and its pairs of weight 0 are dropped. Its duals are shifted by a constant
  (``u - t``, ``p + t``) so that the smallest price is 0; every pair has a weight >= 0, so
  ``u >= 0`` follows, and a dropped pair (``u_i + p_j = 0``) has ``u_i = p_j = 0``.
* *General* (n != m): "stay unmatched" is an implicit dummy column of weight 0 per row, which
  only that row may take (the rectangular R x (C + R) problem with a zero-weight dummy per
  row), handled in O(1) per row reached instead of as R more columns; forbidden pairs hold
  `FORBIDDEN`. Prices start at 0 and rise only on matched columns, so free columns keep price
  0. Augmenting row reduction is an auction step with epsilon 0 (the dummy, at value 0, counts
  as a second best); each shortest path ends at a free column or at a row moving to its dummy,
  whichever is nearer (distances are negative until the dummy wins, so columns at distance
  >= 0 are never scanned).

Either mode ends with an O(R C) check of the conditions above (`check_dense`); a result that
failed it is reported (`CHECK_FAILED`), never returned as optimal.

Work: O(R^2 C) worst case: R searches, each settling at most R matched columns with one pass
over a row of C entries each (`dense_work_bound`); the initialisation is O(R C) plus a bid
budget of `ARR_BIDS` per row. Past `max_work` matrix entries read the status is `WORK_LIMIT`,
once ``stop[0]`` is set `DEADLINE` (both checked after every settled column and every 64 bids),
with a feasible matching, not an optimal one. Memory: the R x C int64 matrix (`dense_bytes`).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from auction.errors import InvalidValueError
from auction.kernels.budget import DEADLINE, DONE, NO_LIMIT, WORK_LIMIT, stop_at
from auction.kernels.jit import KernelGroup

__all__ = [
    "ARR_BIDS", "CHECK_FAILED", "DEADLINE", "DENSE_MIN_DENSITY", "DONE", "FORBIDDEN",
    "MAX_WEIGHT", "WORK_LIMIT", "check_dense", "dense_assignment", "dense_bytes",
    "dense_matrix", "dense_work_bound", "jv_matrix", "use_dense",
]

IntArray = npt.NDArray[np.int64]
StopFlag = npt.NDArray[np.uint8]
_group = KernelGroup(nogil=True)

#: Weights must be below this (2^57): then every price lies in [0, 2 MAX_WEIGHT), every
#: distance in (-3 MAX_WEIGHT, 3 MAX_WEIGHT), and no sum of them overflows int64.
MAX_WEIGHT = 1 << 57
#: The matrix entry of a pair that may not be matched.
FORBIDDEN = -(1 << 61)
INF = 1 << 62
#: A settled column's price inside a search: any relaxation gives more than `INF`.
SETTLED = INF + (1 << 60)
#: Bids per row allowed to the augmenting row reduction (all passes together), and its passes
#: at most (it stops early once a pass frees no row); the rows still free after it go to
#: shortest paths, so these change speed, never the result. JV used 2 passes; more cut the
#: path work at 4000 x 4000 uniform from 12.2 to 9-10 n^2 entries.
ARR_BIDS = 16
ARR_PASSES = 8
#: Status of a result that failed its own optimality check (a bug, reported, never used).
CHECK_FAILED = 20
#: Density (edges / (n m)) from which `use_dense` picks this kernel over the auction.
DENSE_MIN_DENSITY = 0.3
#: Largest matrix (R x C entries) `use_dense` accepts by default: 2^26 entries, 512 MiB.
DENSE_MAX_ENTRIES = 1 << 26


@_group.add
def dense_matrix(
    n: int, m: int, indptr: IntArray, cols: IntArray, w: IntArray, transpose: bool, fill: int,
) -> tuple[IntArray, bool]:
    """The R x C matrix of the CSR graph (transposed if asked), and whether rows are sorted.

    Pairs without an edge, or with a weight <= 0, hold `fill`; a repeated pair keeps its
    largest weight. Sorted: every person's columns strictly increase (no repeats), so
    `_edges_of` may search them by bisection. (`dense_assignment` skips this copy for a
    complete graph in row order: its weights already are the matrix.)
    """
    r, c = (m, n) if transpose else (n, m)
    mat = np.full((r, c), fill, dtype=np.int64)
    ordered = True
    for i in range(n):
        lo, hi = indptr[i], indptr[i + 1]
        for e in range(lo, hi):
            if e > lo and cols[e] <= cols[e - 1]:
                ordered = False
            v = w[e]
            if v > 0:
                a, b = (cols[e], i) if transpose else (i, cols[e])
                if v > mat[a, b]:
                    mat[a, b] = v
    return mat, ordered


@_group.add
def _inspect(
    n: int, m: int, indptr: IntArray, cols: IntArray, w: IntArray,
) -> tuple[int, int, bool]:
    """(smallest weight, largest weight, grid) in one pass; grid: the graph is complete with
    every person's columns in order 0..m-1 (its weights then are the matrix, row by row)."""
    lo_w = INF
    hi_w = -INF
    for e in range(len(w)):
        v = w[e]
        lo_w = min(lo_w, v)
        hi_w = max(hi_w, v)
    if len(cols) != n * m:
        return lo_w, hi_w, False
    for i in range(n):
        lo = indptr[i]
        if lo != i * m:
            return lo_w, hi_w, False
        for k in range(m):
            if cols[lo + k] != k:
                return lo_w, hi_w, False
    return lo_w, hi_w, True


@_group.add
def _column_reduction(mat: IntArray, x: IntArray, y: IntArray, p: IntArray,
                      free: IntArray) -> int:
    """JV column reduction and reduction transfer (square mode); returns the free row count.

    Each column takes the price of its best row and goes to it if that row has no column yet
    (columns from last to first); a row holding exactly one column then lowers its value to its
    second best by raising that column's price.
    """
    r, c = mat.shape
    y[:] = -1
    p[:] = -INF
    for i in range(r):
        row = mat[i]
        for j in range(c):
            if row[j] > p[j]:
                p[j] = row[j]
                y[j] = i
    unique = np.ones(r, dtype=np.bool_)
    for j in range(c - 1, -1, -1):
        i = y[j]
        if x[i] < 0:
            x[i] = j
        else:
            unique[i] = False
            y[j] = -1
    nfree = 0
    for i in range(r):
        if x[i] < 0:
            free[nfree] = i
            nfree += 1
        elif unique[i] and c > 1:
            j = x[i]
            row = mat[i]
            best = INF
            for k in range(c):
                if k != j:
                    red = p[k] - row[k]
                    if red < best:
                        best = red
            p[j] += best
    return nfree


@_group.add
def _row_reduction(
    mat: IntArray, x: IntArray, y: IntArray, p: IntArray, free_in: IntArray, nin: int,
    free_out: IntArray, dummy: bool, max_bids: int, stop: StopFlag,
) -> tuple[int, int]:
    """One pass of JV augmenting row reduction; returns (rows left free, bids made).

    A free row takes its best column at the price that makes its value the second best (the
    dummy, value 0, counts when `dummy`; a row whose best value is <= 0 takes its dummy:
    ``x = -2``). The row it displaces is served next if the price rose, else in the next pass;
    on a tie (no rise) the row takes a free column of the best value if there is one, else
    its second column when the first is held. Past
    `max_bids` bids, or once ``stop[0]`` is set, the rows left are handed back unserved.
    """
    c = mat.shape[1]
    cur = 0
    nout = 0
    bids = 0
    while cur < nin:
        i = free_in[cur]
        cur += 1
        if bids >= max_bids or ((bids & 63) == 0 and stop[0] != 0):
            free_out[nout] = i
            nout += 1
            continue
        bids += 1
        row = mat[i]
        v1 = -INF
        v2 = -INF
        j1 = -1
        j2 = -1
        jf = -1  # the first free column among those of value v1
        for j in range(c):
            h = row[j] - p[j]
            if h >= v2:
                if h > v1:
                    v2 = v1
                    j2 = j1
                    v1 = h
                    j1 = j
                    jf = j if y[j] < 0 else -1
                else:
                    if h > v2:
                        v2 = h
                        j2 = j
                    if h == v1 and jf < 0 and y[j] < 0:
                        jf = j
        if dummy:
            if v1 <= 0:
                x[i] = -2
                continue
            if v2 < 0:
                v2 = 0
                j2 = -1
        elif j2 < 0:
            v2 = v1
        i0 = y[j1]
        rises = v1 > v2
        if rises:
            p[j1] += v1 - v2
        elif i0 >= 0 and jf >= 0:
            j1 = jf
            i0 = -1
        elif i0 >= 0 and j2 >= 0:
            j1 = j2
            i0 = y[j2]
        x[i] = j1
        y[j1] = i
        if i0 >= 0:
            x[i0] = -1
            if rises:
                cur -= 1
                free_in[cur] = i0
            else:
                free_out[nout] = i0
                nout += 1
    return nout, bids


@_group.add
def _augment(
    mat: IntArray, x: IntArray, y: IntArray, p: IntArray, s: int, d: IntArray, pred: IntArray,
    q: IntArray, done: IntArray, dsett: IntArray, dummy: bool, max_work: int, work: int,
    stop: StopFlag,
) -> tuple[int, int]:
    """One shortest augmenting path from free row `s` (dense Dijkstra); returns (status, work).

    Distances are reduced costs ``u_i + p_j - w_ij`` with ``u_s = 0``. Each step settles the
    nearest column (a free one first on ties) and, in one contiguous pass over the row of its
    owner, relaxes every column and finds the next nearest; a settled column leaves the pass by
    its entry of ``q`` (the prices, `SETTLED` once settled: no relaxation can reach it) and of
    ``d`` (`INF`). Ends at the nearest free column, or (with `dummy`) at the nearest row moving
    to its dummy (distance ``d(row) + u_row``; 0 for `s`). Prices of the settled columns rise by
    ``D - d_j``, then the path is flipped. Nothing changes when it stops early.
    """
    c = mat.shape[1]
    for j in range(c):
        q[j] = p[j]
        d[j] = INF
    best_out = 0 if dummy else INF
    out_row = s
    ndone = 0
    final = -1
    i = s
    h = 0  # d(i) + u_i, with u_s = 0: the base of row i's edges
    while True:
        wi = mat[i]
        mind = INF
        jmin = -1
        for j in range(c):
            red = h + q[j] - wi[j]
            dj = d[j]
            if red < dj:
                dj = red
                d[j] = red
                pred[j] = i
            if dj <= mind and (dj < mind or y[j] < 0):
                mind = dj
                jmin = j
        work += c
        if best_out <= mind:
            dist = best_out
            break
        if y[jmin] < 0:
            final = jmin
            dist = mind
            break
        if work > max_work:
            return WORK_LIMIT, work
        if stop[0] != 0:
            return DEADLINE, work
        done[ndone] = jmin
        dsett[ndone] = mind
        ndone += 1
        q[jmin] = SETTLED
        d[jmin] = INF
        i = y[jmin]
        h = mind + mat[i, jmin] - p[jmin]  # also the distance of i's dummy
        if dummy and h < best_out:
            best_out = h
            out_row = i
    for k in range(ndone):
        p[done[k]] += dist - dsett[k]
    if final >= 0:
        j = final
    elif out_row == s:
        x[s] = -2
        return DONE, work
    else:
        j = x[out_row]
        x[out_row] = -2
    while True:
        i = pred[j]
        y[j] = i
        k = x[i]
        x[i] = j
        j = k
        if i == s:
            break
    return DONE, work


@_group.add
def check_dense(mat: IntArray, x: IntArray, y: IntArray, u: IntArray, p: IntArray) -> bool:
    """Whether (x, u, p) meets the optimality conditions of the module docstring on `mat`.

    O(R C): x and y are inverse partial maps, u and p are >= 0, zero on unmatched rows and
    free columns, tight on matched pairs, and ``u_i + p_j >= w_ij`` on every allowed pair.
    """
    r, c = mat.shape
    for j in range(c):
        if p[j] < 0 or (y[j] < 0 and p[j] != 0):
            return False
        if y[j] >= 0 and x[y[j]] != j:
            return False
    for i in range(r):
        if u[i] < 0:
            return False
        if x[i] >= 0:
            if y[x[i]] != i or u[i] + p[x[i]] != mat[i, x[i]]:
                return False
        elif u[i] != 0:
            return False
        row = mat[i]
        ui = u[i]
        for j in range(c):
            if ui + p[j] < row[j]:
                return False
    return True


@_group.add
def jv_matrix(
    mat: IntArray, square: bool, max_work: int, stop: StopFlag,
) -> tuple[IntArray, IntArray, IntArray, IntArray, int, int]:
    """Solve the dense problem on `mat` (R <= C); return (x, y, u, p, status, work).

    ``x[i]`` is row i's column (-1: unmatched), ``y[j]`` column j's row; u and p are the exact
    duals when the status is `DONE`. `square` selects the square mode of the module docstring
    (R = C, entries >= 0; pairs of weight 0 end unmatched), else the general mode (R <= C,
    forbidden pairs `FORBIDDEN`). Past `max_work` entries read: `WORK_LIMIT`; after
    ``stop[0]``: `DEADLINE`; either way a feasible matching.
    """
    r, c = mat.shape
    x = np.full(r, -1, dtype=np.int64)
    y = np.full(c, -1, dtype=np.int64)
    p = np.zeros(c, dtype=np.int64)
    u = np.zeros(r, dtype=np.int64)
    free = np.empty(r, dtype=np.int64)
    free2 = np.empty(r, dtype=np.int64)
    work = 0
    status = DONE
    dummy = not square
    if square and r > 0:
        nfree = _column_reduction(mat, x, y, p, free)
        work += 2 * r * c
    else:
        nfree = r
        for i in range(r):
            free[i] = r - 1 - i
    bids_left = ARR_BIDS * r
    for _ in range(ARR_PASSES):
        if nfree == 0 or bids_left <= 0:
            break
        before = nfree
        allowed = min(bids_left, max(0, (max_work - work) // max(1, c)))
        nfree, bids = _row_reduction(mat, x, y, p, free, nfree, free2, dummy, allowed, stop)
        free, free2 = free2, free
        bids_left -= bids
        work += bids * c
        if nfree >= before:
            break
    d = np.empty(c, dtype=np.int64)
    pred = np.empty(c, dtype=np.int64)
    q = np.empty(c, dtype=np.int64)
    done = np.empty(c, dtype=np.int64)
    dsett = np.empty(c, dtype=np.int64)
    for k in range(nfree):
        if work > max_work:
            status = WORK_LIMIT
            break
        if stop[0] != 0:
            status = DEADLINE
            break
        status, work = _augment(mat, x, y, p, free[k], d, pred, q, done, dsett, dummy, max_work,
                                work, stop)
        if status != DONE:
            break
    for i in range(r):
        if x[i] < 0:
            x[i] = -1
    if status != DONE:
        return x, y, u, p, status, work
    for i in range(r):
        if x[i] >= 0:
            u[i] = mat[i, x[i]] - p[x[i]]
    if square and r > 0:
        shift = p[0]
        for j in range(c):
            shift = min(shift, p[j])
        for j in range(c):
            p[j] -= shift
        for i in range(r):
            u[i] += shift
            if mat[i, x[i]] <= 0:  # a pair of weight 0 stands for staying unmatched
                y[x[i]] = -1
                x[i] = -1
    work += r * c
    if not check_dense(mat, x, y, u, p):
        status = CHECK_FAILED
    return x, y, u, p, status, work


@_group.add
def _edges_of(
    n: int, indptr: IntArray, cols: IntArray, w: IntArray, mate: IntArray, ordered: bool,
) -> IntArray:
    """The CSR edge of each person's matched object (the heaviest if the pair repeats).

    With `ordered` rows (strictly increasing columns) by bisection, else by a scan.
    """
    pedge = np.full(n, -1, dtype=np.int64)
    for i in range(n):
        j = mate[i]
        if j < 0:
            continue
        lo, hi = indptr[i], indptr[i + 1]
        if ordered:
            e = lo + np.searchsorted(cols[lo:hi], j)
            if e < hi and cols[e] == j and w[e] > 0:
                pedge[i] = e
            continue
        for e in range(lo, hi):
            if cols[e] == j and w[e] > 0 and (pedge[i] < 0 or w[e] > w[pedge[i]]):
                pedge[i] = e
    return pedge


def dense_work_bound(n: int, m: int) -> int:
    """Entries read by `jv_matrix` at most: ``R C (R + ARR_BIDS + 4)``, R = min(n, m).

    Initialisation 2 R C (column reduction and transfer) plus ``ARR_BIDS`` R bids of C each;
    then at most R searches, each reading one row of C entries per column it settles (at most
    the R matched ones) plus one; one more R C for the final check. JV's O(R^2 C).
    """
    r, c = min(n, m), max(n, m)
    return min(NO_LIMIT, r * c * (r + ARR_BIDS + 4) + c + 1)


def dense_bytes(n: int, m: int) -> int:
    """Bytes `dense_assignment` allocates: the int64 matrix and O(n + m) vectors."""
    return 8 * (n * m + 6 * (n + m)) + 8 * (2 * n + 2 * m)


def use_dense(n: int, m: int, edges: int, *, max_entries: int = DENSE_MAX_ENTRIES) -> bool:
    """Whether `dense_assignment` should be used instead of the auction for this graph.

    Yes when the graph holds at least `DENSE_MIN_DENSITY` of all n m pairs and the matrix has
    at most `max_entries` entries (memory: 8 bytes each). Measured in
    ``benchmarks/bench_dense.py --density`` (docs/dense.md).
    """
    cells = n * m
    return 0 < cells <= max_entries and edges >= DENSE_MIN_DENSITY * cells


def dense_assignment(
    n: int, m: int, indptr: IntArray, cols: IntArray, w: IntArray, *,
    max_work: int | None = None, deadline: float | None = None, backend: str = "numba",
) -> tuple[IntArray, IntArray, IntArray, int]:
    """Maximum-weight matching of the CSR graph, exact; returns (pedge, u, p, status).

    ``pedge[i]``: the CSR edge matched to person i, or -1. u (persons) and p (objects): exact
    integer duals in `w` units, ``u_i + p_j >= w_e`` on every edge e = (i, j) with equality on
    matched edges, ``u, p >= 0`` and zero on unmatched nodes (the duals VCG re-solves can warm
    start from). Weights must be below `MAX_WEIGHT`; weights <= 0 are never matched. `max_work`
    (default `dense_work_bound`, never reached) bounds the matrix entries read and `deadline`
    is a ``time.monotonic()`` value; past either the status is `WORK_LIMIT` or `DEADLINE` and
    pedge a feasible matching, not an optimal one (u and p are then zero). `backend`:
    ``"numba"`` or ``"python"`` (the pure-Python reference, slow). A bad `backend` or a
    weight of `MAX_WEIGHT` or more raises `InvalidValueError` (a ValueError) naming it.
    """
    if backend not in ("numba", "python"):
        raise InvalidValueError("backend", backend, "must be 'numba' or 'python'")
    indptr, cols, w = (np.ascontiguousarray(a, dtype=np.int64) for a in (indptr, cols, w))
    py = backend == "python"
    inspect = _inspect.py_func if py else _inspect
    lo_w, hi_w, grid = inspect(n, m, indptr, cols, w)
    if hi_w >= MAX_WEIGHT:
        raise InvalidValueError("w", hi_w, "weights must be below 2^57 (MAX_WEIGHT)")
    if max_work is None:
        max_work = dense_work_bound(n, m)
    build = dense_matrix.py_func if py else dense_matrix
    solve = jv_matrix.py_func if py else jv_matrix
    edges_of = _edges_of.py_func if py else _edges_of
    transpose = n > m
    square = n == m
    floor = 0 if square else 1  # the matrix may hold 0 (square mode) but not FORBIDDEN
    if grid and not transpose and n * m > 0 and lo_w >= floor:
        mat, ordered = w.reshape(n, m), True
    else:
        mat, ordered = build(n, m, indptr, cols, w, transpose, 0 if square else FORBIDDEN)
    with stop_at(deadline) as stop:
        x, y, u_rows, p_cols, status, _ = solve(mat, square, max_work, stop)
    mate, u, p = (y, p_cols, u_rows) if transpose else (x, u_rows, p_cols)
    pedge = edges_of(n, indptr, cols, w, mate, ordered)
    if status != DONE:
        u, p = np.zeros(n, dtype=np.int64), np.zeros(m, dtype=np.int64)
    return pedge, u, p, int(status)
