"""The exact transportation kernel (`auction.kernels.flow`) against independent oracles.

Oracles: scipy's HiGHS LP on the same problem (the constraint matrix is totally unimodular, so
the LP optimum is the integer optimum), enumeration of every integer x on tiny instances, and an
optimality certificate computed here: Bellman-Ford on the residual graph of the returned x, in
the original (unscaled) integers, finds no negative cycle. The numba kernel and its pure-Python
reference must return the same x.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from scipy.optimize import linprog
from scipy.sparse import csr_matrix, vstack

import auction
from auction.errors import AuctionOverflowError, InvalidTypeError, InvalidValueError
from auction.kernels import flow
from auction.kernels.flow import (
    COST_LIMIT,
    OK,
    PRICE_OVERFLOW,
    flow_scale,
    transport_kernel,
    transport_max_weight,
)

IntArray = np.ndarray
Instance = tuple[int, int, IntArray, IntArray, IntArray, IntArray, IntArray]
SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large]


def examples(n: int) -> int:
    """`n` examples, or the active profile's count if larger (the ``thorough`` profile)."""
    profile = settings.default
    return max(n, profile.max_examples if profile is not None else 0)


# -- oracles ---------------------------------------------------------------------------------


def rows_of(inst: Instance) -> IntArray:
    n, _, _, _, indptr, _, _ = inst
    return np.repeat(np.arange(n), np.diff(indptr))


def lp_optimum(inst: Instance) -> int:
    """Optimal value by HiGHS; the vertex it returns is integral, so its value is recomputed
    exactly from the rounded x (and checked against the float objective)."""
    n, m, demand, capacity, _, cols, w = inst
    n_edges = len(cols)
    if n_edges == 0:
        return 0
    e = np.arange(n_edges)
    a_req = csr_matrix((np.ones(n_edges), (rows_of(inst), e)), shape=(n, n_edges))
    a_off = csr_matrix((np.ones(n_edges), (cols, e)), shape=(m, n_edges))
    res = linprog(
        -w.astype(np.float64),
        A_ub=vstack([a_req, a_off]).tocsr(),
        b_ub=np.concatenate([demand, capacity]).astype(np.float64),
        bounds=(0, None),
        method="highs",
    )
    assert res.status == 0, res.message
    x = np.round(res.x).astype(np.int64)
    assert np.abs(res.x - x).max(initial=0) < 1e-6, "HiGHS returned a fractional vertex"
    assert_feasible(inst, x)
    value = int((x * w).sum())
    assert abs(value + res.fun) <= 1e-9 * max(1.0, abs(res.fun)) + 0.5
    return value


def brute_optimum(inst: Instance) -> int:
    """Best value over every integer x with 0 <= x[e] <= min(d, c), enumerated."""
    n, m, demand, capacity, _, cols, w = inst
    rows = rows_of(inst)
    ranges = [range(min(int(demand[r]), int(capacity[o])) + 1) for r, o in zip(rows, cols,
                                                                                 strict=True)]
    if not ranges:
        return 0
    xs = np.array(list(itertools.product(*ranges)), dtype=np.int64)
    by_req = np.zeros((len(cols), n), dtype=np.int64)
    by_req[np.arange(len(cols)), rows] = 1
    by_off = np.zeros((len(cols), m), dtype=np.int64)
    by_off[np.arange(len(cols)), cols] = 1
    ok = (xs @ by_req <= demand).all(axis=1) & (xs @ by_off <= capacity).all(axis=1)
    return int((xs[ok] @ w).max(initial=0))


def assert_feasible(inst: Instance, x: IntArray) -> None:
    n, m, demand, capacity, _, cols, _ = inst
    assert x.dtype == np.int64
    assert x.shape == cols.shape
    assert (x >= 0).all()
    used_r = np.zeros(n, dtype=np.int64)
    used_o = np.zeros(m, dtype=np.int64)
    np.add.at(used_r, rows_of(inst), x)
    np.add.at(used_o, cols, x)
    assert (used_r <= demand).all(), "a request gets more than its demand"
    assert (used_o <= capacity).all(), "an offer gives more than its capacity"


def assert_no_negative_cycle(inst: Instance, x: IntArray) -> None:
    """Certificate of optimality: the residual graph of x has no negative-cost cycle.

    Min-cost form with a sink T: r -> o (cost -w), o -> T and the bypass r -> T (cost 0), and
    the reverse of every arc carrying flow. Bellman-Ford from a virtual source at distance 0 to
    every node, in exact Python ints: still relaxing after N rounds means a negative cycle.
    """
    n, m, demand, capacity, _, cols, w = inst
    rows = rows_of(inst)
    t = n + m
    tails: list[int] = []
    heads: list[int] = []
    costs: list[int] = []

    def arc(u: int, v: int, c: int, cap: int, flow_on: int) -> None:
        if flow_on < cap:
            tails.append(u)
            heads.append(v)
            costs.append(c)
        if flow_on > 0:
            tails.append(v)
            heads.append(u)
            costs.append(-c)

    used_r = [0] * n
    used_o = [0] * m
    for e in range(len(cols)):
        r, o = int(rows[e]), int(cols[e])
        arc(r, n + o, -int(w[e]), min(int(demand[r]), int(capacity[o])), int(x[e]))
        used_r[r] += int(x[e])
        used_o[o] += int(x[e])
    for r in range(n):
        arc(r, t, 0, int(demand[r]), int(demand[r]) - used_r[r])
    for o in range(m):
        arc(n + o, t, 0, int(capacity[o]), used_o[o])
    dist = [0] * (t + 1)
    for _ in range(t + 1):
        changed = False
        for u, v, c in zip(tails, heads, costs, strict=True):
            if dist[u] + c < dist[v]:
                dist[v] = dist[u] + c
                changed = True
        if not changed:
            return
    raise AssertionError("the residual graph has a negative cycle: x is not optimal")


def solve_both(inst: Instance) -> tuple[IntArray, dict[str, int]]:
    """Numba and the pure-Python reference agree exactly and leave their inputs alone."""
    before = [a.copy() for a in inst[2:]]
    x, stats = transport_max_weight(*inst)
    x_py, stats_py = transport_max_weight(*inst, backend="python")
    for a, b in zip(before, inst[2:], strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(x, x_py)
    assert stats == stats_py
    assert_feasible(inst, x)
    return x, stats


# -- strategies ------------------------------------------------------------------------------


@st.composite
def instances(
    draw: st.DrawFn, max_n: int = 8, max_m: int = 8, max_units: int = 12, max_w: int = 50,
    max_deg: int | None = None,
) -> Instance:
    """Small transportation problems: equal weights, weights in {0..3} (ties, zeros) or wide;
    complete or random rows (empty rows included); demand far above or below capacity; now
    and then a pair listed twice (parallel edges)."""
    n = draw(st.integers(0, max_n))
    m = draw(st.integers(0, max_m))
    mode = draw(st.sampled_from(["equal", "few", "wide"]))
    if mode == "equal":
        weight = st.just(draw(st.integers(0, max_w)))
    elif mode == "few":
        weight = st.integers(0, 3)
    else:
        weight = st.integers(0, max_w)
    dmax = draw(st.sampled_from([1, 3, max_units]))
    cmax = draw(st.sampled_from([1, 3, max_units]))
    demand = draw(st.lists(st.integers(1, dmax), min_size=n, max_size=n))
    capacity = draw(st.lists(st.integers(1, cmax), min_size=m, max_size=m))
    complete = draw(st.booleans()) and m > 0
    parallel = draw(st.integers(0, 4)) == 0
    deg = m if max_deg is None else min(m, max_deg)
    indptr, cols, w = [0], [], []
    for _ in range(n):
        if complete and max_deg is None:
            row = draw(st.permutations(range(m)))
        elif m:
            row = draw(st.lists(st.integers(0, m - 1), unique=not parallel, max_size=deg))
        else:
            row = []
        cols += row
        w += [draw(weight) for _ in row]
        indptr.append(len(cols))
    arrays = (demand, capacity, indptr, cols, w)
    return n, m, *(np.array(a, dtype=np.int64) for a in arrays)  # type: ignore[return-value]


def random_instance(m: int, n: int, deg: int, seed: int, wmax: int = 10**6,
                    caps: tuple[int, int] = (8, 64), dems: tuple[int, int] = (1, 16)) -> Instance:
    """The benchmark shape: `deg` distinct random offers per request."""
    rng = np.random.default_rng(seed)
    capacity = rng.integers(caps[0], caps[1] + 1, m).astype(np.int64)
    demand = rng.integers(dems[0], dems[1] + 1, n).astype(np.int64)
    cols = np.concatenate([rng.choice(m, deg, replace=False) for _ in range(n)]).astype(np.int64)
    w = rng.integers(0, wmax + 1, n * deg).astype(np.int64)
    indptr = np.arange(0, n * deg + 1, deg, dtype=np.int64)
    return n, m, demand, capacity, indptr, cols, w


def describe(inst: Instance) -> str:
    n, m, d, c, ip, cols, w = inst
    return (f"n={n} m={m} demand={d.tolist()} capacity={c.tolist()} indptr={ip.tolist()} "
            f"cols={cols.tolist()} weight={w.tolist()}")


# -- properties ------------------------------------------------------------------------------


@settings(deadline=None, max_examples=examples(150), suppress_health_check=SLOW)
@given(inst=instances())
def test_optimum_matches_linprog(inst: Instance) -> None:
    note(describe(inst))
    x, stats = solve_both(inst)
    assert int((x * inst[6]).sum()) == lp_optimum(inst)
    assert_no_negative_cycle(inst, x)
    assert stats["scale"] == flow_scale(inst[0], inst[1])


@settings(deadline=None, max_examples=examples(150), suppress_health_check=SLOW)
@given(inst=instances(max_n=3, max_m=3, max_units=3, max_w=9, max_deg=2))
def test_optimum_matches_brute_force(inst: Instance) -> None:
    note(describe(inst))
    x, _ = solve_both(inst)
    want = brute_optimum(inst)
    assert int((x * inst[6]).sum()) == want
    assert want == lp_optimum(inst)


@settings(deadline=None, max_examples=examples(40), suppress_health_check=SLOW)
@given(inst=instances(max_n=6, max_m=6), top=st.integers(30, 40), data=st.data())
def test_huge_weights_stay_exact(inst: Instance, top: int, data: st.DataObject) -> None:
    """Weights near 2**40, differing in the last units: exact, certified in Python ints."""
    w = inst[6]
    base = 1 << top
    offsets = data.draw(st.lists(st.integers(-3, 3), min_size=len(w), max_size=len(w)))
    huge = np.where(w > 0, base + np.array(offsets, dtype=np.int64) * w, 0).astype(np.int64)
    inst = (*inst[:6], huge)
    note(describe(inst))
    x, _ = solve_both(inst)
    assert_no_negative_cycle(inst, x)


# -- examples --------------------------------------------------------------------------------


def make(n: int, m: int, demand: list[int], capacity: list[int], rows: list[list[int]],
         weights: list[list[int]]) -> Instance:
    indptr = np.cumsum([0] + [len(r) for r in rows]).astype(np.int64)
    cols = np.array([c for r in rows for c in r], dtype=np.int64)
    w = np.array([x for r in weights for x in r], dtype=np.int64)
    return n, m, np.array(demand, dtype=np.int64), np.array(capacity, dtype=np.int64), indptr, \
        cols, w


def test_hand_example_splits_and_shares() -> None:
    # r0 (5 units) values o0 at 10 and o1 at 8; r1 (1 unit) values o0 at 30 and o1 at 18.
    # o0 has 4 units, o1 2: r1 on o0 (30) + r0 3 on o0 (30) and 2 on o1 (16) = 76 beats r1 on
    # o1 (18) + r0 4 on o0 (40) and 1 on o1 (8) = 66.
    inst = make(2, 2, [5, 1], [4, 2], [[0, 1], [0, 1]], [[10, 8], [30, 18]])
    x, _ = solve_both(inst)
    assert x.tolist() == [3, 2, 1, 0]


def test_demand_above_capacity_fills_the_best() -> None:
    inst = make(3, 1, [4, 4, 4], [5], [[0], [0], [0]], [[1], [3], [2]])
    x, _ = solve_both(inst)
    assert x.tolist() == [0, 4, 1]


def test_zero_weights_trade_nothing() -> None:
    inst = make(2, 2, [3, 3], [3, 3], [[0, 1], [1]], [[0, 0], [0]])
    x, stats = solve_both(inst)
    assert x.tolist() == [0, 0, 0]
    assert stats["phases"] == 0


@pytest.mark.parametrize(("n", "m"), [(0, 0), (0, 3), (3, 0), (4, 4)])
def test_empty_markets(n: int, m: int) -> None:
    inst = make(n, m, [2] * n, [2] * m, [[] for _ in range(n)], [[] for _ in range(n)])
    x, stats = solve_both(inst)
    assert len(x) == 0
    assert stats["pushes"] == 0


def test_seeded_instance_matches_linprog() -> None:
    inst = random_instance(m=150, n=700, deg=12, seed=3)
    x, stats = transport_max_weight(*inst)
    assert_feasible(inst, x)
    assert int((x * inst[6]).sum()) == lp_optimum(inst)
    assert stats["phases"] > 0
    assert stats["pushes"] > 0
    assert stats["relabels"] > 0


def test_seeded_market_like_instance_matches_linprog() -> None:
    """Surplus ``bid - ask`` (many near-ties, zeros), capacity far above demand in total."""
    n, m, demand, capacity, indptr, cols, _ = random_instance(m=60, n=300, deg=15, seed=5,
                                                             caps=(40, 200))
    rng = np.random.default_rng(9)
    ask = rng.integers(10**5, 10**6, m)
    bid = rng.integers(10**5, 2 * 10**6, n)
    rows = np.repeat(np.arange(n), np.diff(indptr))
    w = np.maximum(bid[rows] - ask[cols], 0).astype(np.int64)
    inst = (n, m, demand, capacity, indptr, cols, w)
    x, _ = transport_max_weight(*inst)
    assert_feasible(inst, x)
    assert int((x * w).sum()) == lp_optimum(inst)


def test_python_reference_agrees_on_a_medium_instance() -> None:
    inst = random_instance(m=25, n=90, deg=6, seed=11, wmax=1000)
    x, _ = solve_both(inst)
    assert int((x * inst[6]).sum()) == lp_optimum(inst)
    assert_no_negative_cycle(inst, x)


def test_accepts_lists_and_other_int_dtypes() -> None:
    inst = random_instance(m=5, n=12, deg=3, seed=2, wmax=20)
    x, _ = transport_max_weight(*inst)
    as_lists = [a.tolist() for a in inst[2:]]
    x_lists, _ = transport_max_weight(inst[0], inst[1], *as_lists)
    np.testing.assert_array_equal(x, x_lists)
    d, c, ip, cols, w = (a.astype(np.int32) for a in inst[2:])
    x_i32, _ = transport_max_weight(inst[0], inst[1], d, c, ip, cols, w)
    np.testing.assert_array_equal(x, x_i32)


# -- guards ----------------------------------------------------------------------------------


def test_scaled_weights_beyond_the_limit_are_refused() -> None:
    inst = make(2, 2, [1, 1], [1, 1], [[0], [1]], [[1], [1]])
    scale = flow_scale(2, 2)
    ok = COST_LIMIT // scale
    x, _ = transport_max_weight(*inst[:6], np.array([ok, ok - 1], dtype=np.int64))
    assert x.tolist() == [1, 1]
    with pytest.raises(AuctionOverflowError, match="2\\*\\*59"):
        transport_max_weight(*inst[:6], np.array([ok + 1, 1], dtype=np.int64))
    with pytest.raises(OverflowError):  # AuctionOverflowError is an OverflowError
        transport_max_weight(*inst[:6], np.array([2**62, 1], dtype=np.int64))
    # the kernel guards itself too
    out = transport_kernel(*inst[:6], np.array([ok + 1, 1], dtype=np.int64), 5, flow.PRICE_LIMIT)
    assert out[2] == flow.COST_OVERFLOW


def test_price_overflow_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    """Prices that would pass the limit stop the kernel with a status, never wrap around."""
    inst = make(2, 2, [2, 1], [1, 2], [[0, 1], [0]], [[5, 4], [6]])
    out = transport_kernel(*inst, 5, flow.PRICE_LIMIT)
    assert out[2] == OK
    low = transport_kernel(*inst, 5, 3)
    assert low[2] == PRICE_OVERFLOW
    assert transport_kernel.py_func(*inst, 5, 3)[2] == PRICE_OVERFLOW
    monkeypatch.setattr(flow, "PRICE_LIMIT", 10)  # above the 6 units
    with pytest.raises(AuctionOverflowError, match="prices"):
        transport_max_weight(*inst)


def test_total_units_beyond_the_limit_are_refused() -> None:
    inst = make(1, 1, [2**61], [2**61], [[0]], [[1]])
    with pytest.raises(AuctionOverflowError, match="units"):
        transport_max_weight(*inst)


@pytest.mark.parametrize(
    ("change", "error", "match", "field"),
    [
        ({"demand": [1]}, ValueError, "must be \\(2,\\)", "demand.shape"),
        ({"capacity": [[1, 1]]}, ValueError, "one-dimensional", "capacity.shape"),
        ({"indptr": [1, 1, 2]}, ValueError, "must be 0", "indptr[0]"),
        ({"indptr": [0, 2, 1]}, ValueError, "non-decreasing", "indptr[2]"),
        ({"cols": [0, 5]}, ValueError, "must lie in", "cols[1]"),
        ({"cols": [0]}, ValueError, "must be \\(2,\\)", "cols.shape"),
        ({"weight": [1.5, 2.0]}, TypeError, "integers", "weight"),
        ({"weight": [1, -1]}, ValueError, ">= 0", "weight[1]"),
        ({"demand": [1, -2]}, ValueError, ">= 0", "demand[1]"),
        ({"n": -1}, ValueError, ">= 0", "n"),
        ({"m": -1}, ValueError, ">= 0", "m"),
        ({"backend": "fortran"}, ValueError, "backend", "backend"),
        ({"alpha": 1}, ValueError, "alpha", "alpha"),
    ],
)
def test_malformed_input_is_rejected(change: dict[str, Any], error: type[Exception],
                                     match: str, field: str) -> None:
    """Each is a typed `AuctionError` (and still the builtin type) naming the entry."""
    args: dict[str, Any] = {"n": 2, "m": 2, "demand": [1, 2], "capacity": [2, 2],
                            "indptr": [0, 1, 2], "cols": [0, 1], "weight": [3, 4]}
    args.update(change)
    with pytest.raises(error, match=match) as info:
        transport_max_weight(**args)
    assert isinstance(info.value, InvalidValueError | InvalidTypeError)
    assert info.value.field == field


def test_importing_the_kernel_compiles_nothing() -> None:
    """Importing the module and running the Python backend never imports numba."""
    root = Path(auction.__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_", "AUCTION_"))}
    env["PYTHONPATH"] = str(root)
    code = textwrap.dedent(
        """
        import json, sys
        from auction.kernels.flow import transport_kernel, transport_max_weight
        before = "numba" in sys.modules
        x, _ = transport_max_weight(1, 1, [2], [1], [0, 1], [0], [5], backend="python")
        print(json.dumps({"numba": before or "numba" in sys.modules, "x": x.tolist(),
                          "compiled": transport_kernel.group.is_compiled}))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"numba": False, "x": [1], "compiled": False}
