"""Adversarial instances (issue 12): every kernel stays exact, and stops at its work bound or
deadline with a distinct status instead of running on.

Instances come from `benchmarks/instances.py` (all asks equal, all values equal, a price range
of 1e15, one offer wanted by every request, long augmenting chains, identical requests).
Oracles: scipy's `linear_sum_assignment` on the dense matrix, and remove-and-resolve for VCG.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

import auction
from auction.kernels.assignment import (
    auction_matching,
    exact_matching,
    max_duals,
    solve_bounded,
    vcg_bonuses,
    vcg_bonuses_bounded,
    vcg_groups,
)
from auction.kernels.budget import (
    DEADLINE,
    DONE,
    WORK_LIMIT,
    auction_bytes,
    auction_work_bound,
    no_stop,
    stop_at,
    transport_bytes,
    vcg_bytes,
)
from auction.kernels.flow import transport_max_weight

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from instances import ADVERSARIAL, adversarial_book, adversarial_graph

NO = 1 << 62


def ones(k: int) -> np.ndarray:
    return np.ones(k, dtype=np.int64)


def dense_optimum(n: int, m: int, indptr: np.ndarray, cols: np.ndarray, w: np.ndarray) -> int:
    """Optimal welfare; weights are >= 0 so a non-edge as 0 is welfare-equivalent. Weights up
    to 1e15 are exact in float64 (< 2**53); the welfare is re-added in integers."""
    dense = np.zeros((n, m), dtype=np.int64)
    rows = np.repeat(np.arange(n), np.diff(indptr))
    dense[rows, cols] = w
    r, c = linear_sum_assignment(dense.astype(np.float64), maximize=True)
    return int(dense[r, c].sum())


def without(indptr: np.ndarray, cols: np.ndarray, w: np.ndarray, obj: int) -> tuple[
    np.ndarray, np.ndarray, np.ndarray
]:
    keep = cols != obj
    rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))[keep]
    ptr = np.zeros(len(indptr), dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=len(indptr) - 1), out=ptr[1:])
    return ptr, cols[keep], w[keep]


@pytest.mark.parametrize("kind", ADVERSARIAL)
def test_kernels_are_exact_on_adversarial_graphs(kind: str) -> None:
    n, m, indptr, cols, w = adversarial_graph(kind, 60, d=6)
    want = dense_optimum(n, m, indptr, cols, w)
    a = w * (2 * n + 1) + 1
    pedge, price, profit, *_ = auction_matching(n, m, indptr, cols, a, 10)
    assert int(w[pedge[pedge >= 0]].sum()) == want
    pe = exact_matching(n, m, indptr, cols, w, NO, no_stop())[0]
    assert int(w[pe[pe >= 0]].sum()) == want
    x, stats = transport_max_weight(n, m, ones(n), ones(m), indptr, cols, w)
    assert stats["status"] == "done"
    assert int((x * w).sum()) == want
    # VCG with one group per object against remove-and-resolve
    gptr = np.arange(m + 1, dtype=np.int64)
    gobj = np.arange(m, dtype=np.int64)
    got = vcg_bonuses(n, m, indptr, cols, a, w, pedge, price, profit, gptr, gobj, 10)
    for j in range(m):
        ptr, c, ww = without(indptr, cols, w, j)
        assert int(got[j]) == want - dense_optimum(n, m, ptr, c, ww), (kind, j)


@pytest.mark.parametrize("kind", ["asks-equal", "values-equal", "one-offer", "identical"])
def test_vcg_on_adversarial_books_matches_remove_and_resolve(kind: str) -> None:
    book = adversarial_book(kind, 24)
    result = auction.clear(book, "assignment", payment="vcg")
    base = auction.clear(book, "assignment").welfare
    bonus = result.diagnostics["vcg_bonus"]
    for provider, paid in bonus.items():
        rest = auction.OrderBook(o for o in book if getattr(o, "provider", None) != provider)
        assert paid == base - auction.clear(rest, "assignment").welfare, provider


def test_work_bound_stops_every_kernel_with_a_status() -> None:
    n, m, indptr, cols, w = adversarial_graph("asks-equal", 2000)
    a = w * (2 * n + 1) + 1
    out = solve_bounded(n, m, indptr, cols, a, 10, max_work=100)
    assert out[6] == WORK_LIMIT
    pedge = out[0]
    held = cols[pedge[pedge >= 0]]
    assert len(np.unique(held)) == len(held)  # still a matching
    assert auction_work_bound(n, m, len(cols), int(a.max()), 10) > out[3] + out[4]
    *_, status, _ = exact_matching(n, m, indptr, cols, w, 10, no_stop())
    assert status == WORK_LIMIT
    x, stats = transport_max_weight(n, m, ones(n), ones(m), indptr, cols, w, max_work=10)
    assert stats["status"] == "work_limit"
    assert not x.any()
    full = solve_bounded(n, m, indptr, cols, a, 10)
    assert full[6] == DONE
    _, status, done = vcg_bonuses_bounded(
        n, m, indptr, cols, a, w, full[0], full[1], np.arange(m + 1), np.arange(m), max_work=0
    )
    assert status == WORK_LIMIT
    assert done < m


def test_deadline_already_past_stops_every_kernel() -> None:
    n, m, indptr, cols, w = adversarial_graph("asks-equal", 20000)
    a = w * (2 * n + 1) + 1
    past = time.monotonic() - 1
    assert solve_bounded(n, m, indptr, cols, a, 10, deadline=past)[6] == DEADLINE
    _, stats = transport_max_weight(n, m, ones(n), ones(m), indptr, cols, w,
                                    deadline=past)
    assert stats["status"] in ("deadline", "done")  # done only if it finished within a check
    _, status, _ = vcg_bonuses_bounded(
        n, m, indptr, cols, a, w, np.full(n, -1), np.zeros(m, dtype=np.int64),
        np.arange(m + 1), np.arange(m), deadline=past,
    )
    assert status == DEADLINE


def test_a_timer_stops_a_long_running_kernel() -> None:
    """The stop flag set by a timer thread while the compiled kernel runs (nogil)."""
    n, m, indptr, cols, w = adversarial_graph("asks-equal", 30000)
    a = w * (2 * n + 1) + 1
    solve_bounded(2, 2, np.zeros(3, dtype=np.int64), cols[:0], a[:0], 10)  # compile
    out = solve_bounded(n, m, indptr, cols, a, 10, deadline=time.monotonic() + 0.05)
    assert out[6] in (DEADLINE, DONE)
    with stop_at(time.monotonic() + 3600) as flag:
        assert flag[0] == 0
    with stop_at(None) as flag:
        assert flag[0] == 0


def test_memory_estimates_grow_with_the_problem() -> None:
    for f in (auction_bytes, vcg_bytes, transport_bytes):
        small, big = f(10, 10, 100), f(10_000, 10_000, 1_000_000)
        assert 0 < small < big
        assert big >= 8 * 1_000_000  # at least one int64 per edge


# -- VCG on tie-heavy markets: every path of the hybrid against remove-and-resolve -------------


@st.composite
def tie_heavy(draw: st.DrawFn) -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray]:
    """Small graphs whose weights tie: all equal, per person, per object, or from {1, 2, 3}."""
    n = draw(st.integers(1, 7))
    m = draw(st.integers(1, 7))
    mask = np.array(draw(st.lists(st.booleans(), min_size=n * m, max_size=n * m)))
    rows, cols = np.divmod(np.flatnonzero(mask), m)
    kind = draw(st.sampled_from(["equal", "person", "object", "small"]))
    if kind == "equal":
        w = np.full(len(rows), 1000)
    elif kind == "person":
        w = np.array(draw(st.lists(st.integers(1, 4), min_size=n, max_size=n)))[rows]
    elif kind == "object":
        w = np.array(draw(st.lists(st.integers(1, 4), min_size=m, max_size=m)))[cols]
    else:
        w = np.array(draw(st.lists(st.integers(1, 3), min_size=len(rows),
                                   max_size=len(rows))), dtype=np.int64)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    return n, m, indptr, cols.astype(np.int64), np.asarray(w, dtype=np.int64)


def _remove_and_resolve(n: int, m: int, indptr: np.ndarray, cols: np.ndarray, w: np.ndarray,
                        members: list[list[int]]) -> list[int]:
    total = dense_optimum(n, m, indptr, cols, w)
    keep_all = np.ones(len(cols), dtype=bool)
    out = []
    for objs in members:
        keep = keep_all & ~np.isin(cols, objs)
        rows = np.repeat(np.arange(n), np.diff(indptr))[keep]
        ptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=n), out=ptr[1:])
        out.append(total - dense_optimum(n, m, ptr, cols[keep], w[keep]))
    return out


@settings(deadline=None, max_examples=60,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(g=tie_heavy(), data=st.data())
def test_vcg_every_path_exact_on_tie_heavy_graphs(
    g: tuple[int, int, np.ndarray, np.ndarray, np.ndarray], data: st.DataObject
) -> None:
    """Certified losses, capped searches, local auctions and full searches (numba and the
    pure-Python references) all give W* - W*(without the group) on ties everywhere."""
    n, m, indptr, cols, w = g
    k = data.draw(st.integers(1, m))
    label = data.draw(st.lists(st.integers(0, k - 1), min_size=m, max_size=m))
    members = [[j for j in range(m) if label[j] == c] for c in range(k)]
    gptr = np.cumsum([0] + [len(x) for x in members]).astype(np.int64)
    gobj = np.array([j for x in members for j in x], dtype=np.int64)
    want = _remove_and_resolve(n, m, indptr, cols, w, members)
    a = w * (2 * n + 1) + 1
    pedge, price, profit, *_ = auction_matching(n, m, indptr, cols, a, 10)
    for backend in ("numba", "python"):
        for prof in (profit, None):  # the hybrid, then shortest paths only
            got, status, done = vcg_bonuses_bounded(n, m, indptr, cols, a, w, pedge, price,
                                                    gptr, gobj, profit=prof, backend=backend)
            assert (status, done) == (DONE, k)
            assert got.tolist() == want, (backend, prof is None)
    # a matching from the exact solver (not the auction's): duals then come from it alone
    pe, u, p, status, _ = exact_matching(n, m, indptr, cols, w, NO, no_stop())
    out = np.zeros(k, dtype=np.int64)
    assert vcg_groups(n, m, indptr, cols, w, pe, u, p, gptr, gobj, 0, out, NO,
                      no_stop())[0] == DONE
    assert out.tolist() == want


@settings(deadline=None, max_examples=60,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(g=tie_heavy())
def test_max_duals_are_the_sellers_marginal_contributions(
    g: tuple[int, int, np.ndarray, np.ndarray, np.ndarray]
) -> None:
    """`max_duals` gives optimal duals whose object prices are each object's own VCG loss
    (Leonard 1983), and the reference agrees."""
    n, m, indptr, cols, w = g
    pe, u, p, _, _ = exact_matching(n, m, indptr, cols, w, NO, no_stop())
    u2, p2, work = max_duals(n, m, indptr, cols, w, pe, u, p)
    ref = max_duals.py_func(n, m, indptr, cols, w, pe, u, p)
    np.testing.assert_array_equal(u2, ref[0])
    np.testing.assert_array_equal(p2, ref[1])
    assert 0 <= work <= 2 * (len(cols) + m) + m
    rows = np.repeat(np.arange(n), np.diff(indptr))
    assert (u2 >= 0).all()
    assert (p2 >= 0).all()
    assert (u2[rows] + p2[cols] >= w).all()
    total = dense_optimum(n, m, indptr, cols, w)
    assert int(u2.sum() + p2.sum()) == total  # still optimal
    assert (p2 >= p).all()
    loss = _remove_and_resolve(n, m, indptr, cols, w, [[j] for j in range(m)])
    assert p2.tolist() == loss


@pytest.mark.parametrize("kind", ADVERSARIAL)
def test_vcg_groups_of_four_exact_on_adversarial_graphs(kind: str) -> None:
    """Providers of four offers (the benchmark's grouping) on every adversarial kind."""
    n, m, indptr, cols, w = adversarial_graph(kind, 48, d=5)
    gptr = np.arange(0, m + 4, 4, dtype=np.int64)
    gptr[-1] = m
    members = [list(range(gptr[c], gptr[c + 1])) for c in range(len(gptr) - 1)]
    want = _remove_and_resolve(n, m, indptr, cols, w, members)
    a = w * (2 * n + 1) + 1
    pedge, price, profit, *_ = auction_matching(n, m, indptr, cols, a, 10)
    for backend in ("numba", "python"):
        got, status, _ = vcg_bonuses_bounded(n, m, indptr, cols, a, w, pedge, price, gptr,
                                             np.arange(m, dtype=np.int64), profit=profit,
                                             backend=backend)
        assert status == DONE
        assert got.tolist() == want, backend
