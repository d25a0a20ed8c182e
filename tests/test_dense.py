"""The dense Jonker-Volgenant kernel (`auction.kernels.dense`) against scipy, with certificates.

Oracle: ``scipy.optimize.linear_sum_assignment`` on the matrix with forbidden and non-positive
pairs at 0 (with weights >= 0, a zero-weight pair is as good as staying unmatched, so its
optimum is the partial-matching optimum). Certificate: the returned integer duals are checked
here, edge by edge (feasibility, tightness, signs, zero on unmatched nodes), which proves
optimality independently of scipy. The numba kernel must return what its pure-Python reference
returns.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from auction.errors import InvalidValueError
from auction.kernels.budget import DEADLINE, DONE, WORK_LIMIT, no_stop
from auction.kernels.dense import (
    FORBIDDEN,
    MAX_WEIGHT,
    dense_assignment,
    dense_bytes,
    dense_matrix,
    dense_work_bound,
    jv_matrix,
    use_dense,
)

IntArray = np.ndarray
Graph = tuple[int, int, IntArray, IntArray, IntArray]
SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large]
KINDS = ("dense", "sparse", "signed", "ties", "binary")


def to_csr(mat: IntArray, allowed: IntArray) -> Graph:
    """The CSR graph of the allowed pairs of `mat` (any weight, zero and negative included)."""
    n, m = mat.shape
    r, c = np.nonzero(allowed)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(r, minlength=n), out=indptr[1:])
    return n, m, indptr, c.astype(np.int64), mat[r, c].astype(np.int64)


def draw(rng: np.random.Generator, n: int, m: int, kind: str) -> Graph:
    """A random graph of one kind: complete, sparse, signed weights, few values, 0/1."""
    if kind == "dense":
        mat, allowed = rng.integers(1, 1000, (n, m)), np.ones((n, m), dtype=bool)
    elif kind == "sparse":
        mat, allowed = rng.integers(1, 1000, (n, m)), rng.random((n, m)) < 0.3
    elif kind == "signed":
        mat, allowed = rng.integers(-20, 21, (n, m)), rng.random((n, m)) < 0.8
    elif kind == "ties":
        mat, allowed = rng.integers(1, 4, (n, m)), rng.random((n, m)) < 0.9
    else:
        mat, allowed = rng.integers(0, 2, (n, m)), np.ones((n, m), dtype=bool)
    return to_csr(mat.astype(np.int64), allowed)


def scipy_optimum(g: Graph) -> int:
    n, m, indptr, cols, w = g
    mat = np.zeros((n, m), dtype=np.int64)
    rows = np.repeat(np.arange(n), np.diff(indptr))
    np.maximum.at(mat, (rows, cols), np.maximum(w, 0))
    r, c = linear_sum_assignment(mat, maximize=True)
    return int(mat[r, c].sum())


def certify(g: Graph, pedge: IntArray, u: IntArray, p: IntArray) -> int:
    """Check the matching and its dual certificate; return the matching's weight."""
    n, m, indptr, cols, w = g
    rows = np.repeat(np.arange(n), np.diff(indptr))
    matched = pedge >= 0
    e = pedge[matched]
    assert (rows[e] == np.flatnonzero(matched)).all(), "an edge of another person"
    objs = cols[e]
    assert len(set(objs.tolist())) == len(objs), "an object matched twice"
    assert (w[e] > 0).all(), "a pair with weight <= 0 matched"
    assert (u >= 0).all()
    assert (p >= 0).all()
    assert (u[~matched] == 0).all(), "an unmatched person with u > 0"
    free = np.ones(m, dtype=bool)
    free[objs] = False
    assert (p[free] == 0).all(), "an unmatched object with p > 0"
    assert (u[rows] + p[cols] >= w).all(), "a dual constraint violated"
    assert (u[matched] + p[objs] == w[e]).all(), "a matched edge not tight"
    return int(w[e].sum())


sizes = st.tuples(st.integers(0, 9), st.integers(0, 9))


@settings(max_examples=150, deadline=None, suppress_health_check=SLOW)
@given(sizes, st.sampled_from(KINDS), st.integers(0, 2**32 - 1))
def test_small_optimal_and_certified(shape: tuple[int, int], kind: str, seed: int) -> None:
    g = draw(np.random.default_rng(seed), *shape, kind)
    pedge, u, p, status = dense_assignment(*g)
    assert status == DONE
    assert certify(g, pedge, u, p) == scipy_optimum(g)


@settings(max_examples=40, deadline=None, suppress_health_check=SLOW)
@given(sizes, st.sampled_from(KINDS), st.integers(0, 2**32 - 1))
def test_python_reference_matches_numba(shape: tuple[int, int], kind: str, seed: int) -> None:
    g = draw(np.random.default_rng(seed), *shape, kind)
    fast = dense_assignment(*g)
    slow = dense_assignment(*g, backend="python")
    for a, b in zip(fast[:3], slow[:3], strict=True):
        np.testing.assert_array_equal(a, b)
    assert fast[3] == slow[3] == DONE


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("n", "m"), [(120, 120), (150, 60), (40, 170)])
def test_medium_against_scipy(n: int, m: int, kind: str) -> None:
    g = draw(np.random.default_rng(n * 1000 + m), n, m, kind)
    pedge, u, p, status = dense_assignment(*g)
    assert status == DONE
    assert certify(g, pedge, u, p) == scipy_optimum(g)


@pytest.mark.parametrize("kind", ["dense", "sparse", "signed", "ties"])
@pytest.mark.parametrize("top", [1, 2, 10**6, MAX_WEIGHT - 1])
def test_square_and_general_modes_agree(top: int, kind: str) -> None:
    """Square graphs take the classic JV path (missing pairs at weight 0); the general path,
    with dummies and forbidden pairs, finds the same weight on the same graph."""
    rng = np.random.default_rng(top % 1000)
    n = 80
    mat = rng.integers(max(1, top - 50), top + 1, (n, n)).astype(np.int64)
    allowed = {"dense": 1.0, "sparse": 0.1, "signed": 0.7, "ties": 0.95}[kind] > rng.random(
        (n, n))
    if kind == "signed":
        mat[rng.random((n, n)) < 0.5] *= -1
    g = to_csr(mat, allowed)
    bound = dense_work_bound(n, n)
    values = []
    for square, fill in ((True, 0), (False, FORBIDDEN)):
        built, _ = dense_matrix(n, n, g[2], g[3], g[4], False, fill)
        x, y, _, _, status, work = jv_matrix(built, square, bound, no_stop())
        assert status == DONE
        assert work <= bound
        assert (y[x[x >= 0]] == np.flatnonzero(x >= 0)).all()
        values.append(int(built[np.flatnonzero(x >= 0), x[x >= 0]].sum()))
    assert values[0] == values[1]
    pedge, u, p, _ = dense_assignment(*g)
    assert certify(g, pedge, u, p) == values[0]
    if top < 10**6:
        assert values[0] == scipy_optimum(g)


@pytest.mark.parametrize(("n", "m"), [(30, 30), (20, 35), (35, 20)])
def test_edge_order_within_rows_does_not_matter(n: int, m: int) -> None:
    """Unsorted rows take the scanning path; the matching (as pairs) is the same."""
    g = draw(np.random.default_rng(11), n, m, "sparse")
    _, _, indptr, cols, w = g
    perm = np.concatenate([lo + np.random.default_rng(lo).permutation(hi - lo)
                           for lo, hi in itertools.pairwise(indptr)])
    shuffled = (n, m, indptr, cols[perm], w[perm])
    a, ua, pa, _ = dense_assignment(*g)
    b, ub, pb, _ = dense_assignment(*shuffled)
    assert (cols[a[a >= 0]] == shuffled[3][b[b >= 0]]).all()
    np.testing.assert_array_equal(ua, ub)
    np.testing.assert_array_equal(pa, pb)
    assert certify(shuffled, b, ub, pb) == scipy_optimum(g)


def test_duplicate_edges_keep_the_largest_weight() -> None:
    g = (2, 2, np.array([0, 3, 4]), np.array([0, 0, 1, 0]), np.array([1, 9, 2, 5]))
    pedge, _u, _p, status = dense_assignment(*g)
    assert status == DONE
    assert pedge[0] == 1
    assert pedge[1] == -1
    assert int(g[4][pedge[pedge >= 0]].sum()) == 9


@pytest.mark.parametrize("kind", ["dense", "ties", "signed"])
def test_work_stays_within_the_bound(kind: str) -> None:
    for n, m in [(60, 60), (30, 90), (90, 30)]:
        g = draw(np.random.default_rng(7), n, m, kind)
        square = n == m
        mat, _ = dense_matrix(n, m, g[2], g[3], g[4], n > m, 0 if square else FORBIDDEN)
        *_, status, work = jv_matrix(mat, square, dense_work_bound(n, m), no_stop())
        assert status == DONE
        assert 0 < work <= dense_work_bound(n, m)


def assert_feasible(g: Graph, pedge: IntArray) -> None:
    n, _, indptr, cols, _ = g
    rows = np.repeat(np.arange(n), np.diff(indptr))
    e = pedge[pedge >= 0]
    assert (rows[e] == np.flatnonzero(pedge >= 0)).all()
    assert len(set(cols[e].tolist())) == len(e)


@pytest.mark.parametrize("backend", ["numba", "python"])
@pytest.mark.parametrize("kind", ["dense", "ties"])
def test_work_limit_stops_with_a_feasible_matching(backend: str, kind: str) -> None:
    g = draw(np.random.default_rng(3), 40, 40, kind)
    pedge, u, p, status = dense_assignment(*g, max_work=200, backend=backend)
    assert status == WORK_LIMIT
    assert_feasible(g, pedge)
    assert not u.any()
    assert not p.any()


@pytest.mark.parametrize("backend", ["numba", "python"])
def test_past_deadline_stops(backend: str) -> None:
    g = draw(np.random.default_rng(4), 50, 50, "sparse")
    pedge, _, _, status = dense_assignment(*g, deadline=time.monotonic() - 1, backend=backend)
    assert status == DEADLINE
    assert_feasible(g, pedge)


def test_bad_input_is_refused() -> None:
    g = draw(np.random.default_rng(5), 3, 3, "dense")
    with pytest.raises(ValueError, match="backend") as info:
        dense_assignment(*g, backend="fortran")
    assert isinstance(info.value, InvalidValueError)
    assert (info.value.field, info.value.value) == ("backend", "fortran")
    big = (g[0], g[1], g[2], g[3], np.full_like(g[4], MAX_WEIGHT))
    with pytest.raises(ValueError, match="2\\^57") as info:
        dense_assignment(*big)
    assert isinstance(info.value, InvalidValueError)
    assert (info.value.field, info.value.value) == ("w", MAX_WEIGHT)


def test_when_to_use_dense() -> None:
    assert use_dense(1000, 1000, 10**6)
    assert use_dense(1000, 1000, 300_000)
    assert not use_dense(1000, 1000, 299_999)
    assert not use_dense(0, 5, 0)
    assert not use_dense(10**5, 10**5, 10**10)  # 80 GB of matrix
    assert dense_bytes(1000, 2000) >= 8 * 1000 * 2000
    assert dense_work_bound(3, 5) >= 3 * 5 * 3 * 2


@pytest.mark.parametrize(("n", "m"), [(25, 25), (30, 18), (15, 28)])
def test_duals_warm_start_vcg(n: int, m: int) -> None:
    """The duals are what `vcg_groups` needs: its welfare losses match re-solves by scipy."""
    from auction.kernels.assignment import vcg_groups

    rng = np.random.default_rng(n * m)
    g = draw(rng, n, m, "sparse" if n == m else "dense")
    _, _, indptr, cols, w = g
    pedge, u, p, status = dense_assignment(*g)
    assert status == DONE
    groups = rng.integers(0, 6, m)
    order = np.argsort(groups, kind="stable")
    group_indptr = np.searchsorted(groups[order], np.arange(7)).astype(np.int64)
    out = np.zeros(6, dtype=np.int64)
    st_, done, _ = vcg_groups(n, m, indptr, cols, w, pedge, u, p, group_indptr,
                              order.astype(np.int64), 0, out, 1 << 62, no_stop())
    assert (st_, done) == (DONE, 6)
    total = scipy_optimum(g)
    for k in range(6):
        keep = ~np.isin(cols, order[group_indptr[k]:group_indptr[k + 1]])
        rows = np.repeat(np.arange(n), np.diff(indptr))[keep]
        ptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=n), out=ptr[1:])
        sub = (n, m, ptr, cols[keep], w[keep])
        assert out[k] == total - scipy_optimum(sub)


def test_any_integer_arrays_are_accepted() -> None:
    g = draw(np.random.default_rng(9), 12, 12, "dense")
    # int32 on purpose: the kernel takes any integer arrays, whatever its int64 annotations
    small: tuple[Any, ...] = (g[0], g[1], g[2].astype(np.int32), g[3].astype(np.int32),
                              g[4].astype(np.int32))
    a, ua, pa, _ = dense_assignment(*g)
    b, ub, pb, _ = dense_assignment(*small)
    for x, y in ((a, b), (ua, ub), (pa, pb)):
        np.testing.assert_array_equal(x, y)
