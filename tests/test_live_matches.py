"""The live re-clear's building blocks against brute force: the prefix kernels of
`auction.kernels.matches` (compiled and pure Python) and the sorted columns of the open
orders (`auction.live.incremental._Index`)."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import auction
from auction import Offer, Request
from auction.kernels.matches import (
    contention,
    first_matches,
    group_lists,
    key_ranges,
    splice,
    take_rows,
)
from auction.live import LiveMarket
from auction.live.incremental import _Index
from auction.live.pools import Pools, accepts
from auction.mechanisms import get


def _csr(groups: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    sptr = np.zeros(len(groups) + 1, dtype=np.int64)
    np.cumsum([len(g) for g in groups], out=sptr[1:])
    flat = np.array([x for g in groups for x in g], dtype=np.int64)
    return sptr, flat


@st.composite
def scans(draw: st.DrawFn) -> dict[str, Any]:
    """Counterparts in order and seekers with their groups, wants and starts."""
    n_groups = draw(st.integers(1, 4))
    n = draw(st.integers(0, 25))
    descending = draw(st.booleans())
    value = sorted(draw(st.lists(st.integers(-5, 5), min_size=n, max_size=n)),
                   reverse=True) if descending else draw(
        st.lists(st.integers(-5, 5), min_size=n, max_size=n))
    k = draw(st.integers(0, 6))
    return {
        "n_groups": n_groups, "descending": descending,
        "value": np.array(value, dtype=np.int64),
        "size": np.array(draw(st.lists(st.integers(-3, 3), min_size=n, max_size=n)),
                         dtype=np.int64),
        "floor": np.array(draw(st.lists(st.sampled_from([0.0, 0.5, 1.0]), min_size=n,
                                        max_size=n)), dtype=np.float64),
        "group": np.array(draw(st.lists(st.integers(0, n_groups - 1), min_size=n,
                                        max_size=n)), dtype=np.int64),
        "present": np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)),
                            dtype=bool),
        "groups": [sorted(draw(st.sets(st.integers(0, n_groups - 1)))) for _ in range(k)],
        "need": np.array(draw(st.lists(st.integers(-5, 5), min_size=k, max_size=k)),
                         dtype=np.int64),
        "cap": np.array(draw(st.lists(st.integers(-3, 3), min_size=k, max_size=k)),
                        dtype=np.int64),
        "cap_floor": np.array(draw(st.lists(st.sampled_from([0.0, 0.5, 1.0]), min_size=k,
                                            max_size=k)), dtype=np.float64),
        "want": np.array(draw(st.lists(st.integers(0, 4), min_size=k, max_size=k)),
                         dtype=np.int64),
        "start": np.array(draw(st.lists(st.integers(0, max(n, 1)), min_size=k, max_size=k)),
                          dtype=np.int64),
    }


@settings(max_examples=300, deadline=None)
@given(case=scans())
def test_first_matches_are_the_first_eligible_counterparts(case: dict[str, Any]) -> None:
    sptr, flat = _csr(case["groups"])
    order = np.argsort(case["need"], kind="stable")
    gptr, gseek = group_lists(case["n_groups"], sptr, flat, order)
    ref_lists = group_lists.py_func(case["n_groups"], sptr, flat, order)
    assert all(np.array_equal(a, b) for a, b in zip((gptr, gseek), ref_lists, strict=True))
    for g in range(case["n_groups"]):  # each group's seekers, in `order`
        members = [i for i in order.tolist() if g in case["groups"][i]]
        assert gseek[gptr[g]:gptr[g + 1]].tolist() == members
    args = (case["value"], case["size"], case["floor"], case["group"], case["present"],
            gptr, gseek, case["need"], case["cap"], case["cap_floor"], case["want"],
            case["start"], case["descending"])
    out, count = first_matches(*args)
    ref_out, ref_count = first_matches.py_func(*args)
    assert np.array_equal(out, ref_out)
    assert np.array_equal(count, ref_count)
    at = 0
    for i, want in enumerate(case["want"].tolist()):
        brute = [j for j in range(len(case["value"]))
                 if j >= case["start"][i] and not case["present"][j]
                 and int(case["group"][j]) in case["groups"][i]
                 and case["value"][j] >= case["need"][i] and case["size"][j] <= case["cap"][i]
                 and case["floor"][j] <= case["cap_floor"][i]][:want]
        assert count[i] == len(brute)
        assert out[at:at + want].tolist() == brute + [-1] * (want - len(brute))
        at += want


@settings(max_examples=200, deadline=None)
@given(groups=st.lists(st.sets(st.integers(0, 3)), max_size=8), data=st.data())
def test_contention_counts_the_weight_of_earlier_seekers_per_group(
        groups: list[set[int]], data: st.DataObject) -> None:
    k = len(groups)
    sptr, flat = _csr([sorted(g) for g in groups])
    order = np.array(data.draw(st.permutations(range(k))), dtype=np.int64)
    weight = np.array(data.draw(st.lists(st.integers(1, 5), min_size=k, max_size=k)),
                      dtype=np.int64)
    got = contention(4, sptr, flat, order, weight)
    assert np.array_equal(got, contention.py_func(4, sptr, flat, order, weight))
    rank = {int(i): r for r, i in enumerate(order.tolist())}
    for i in range(k):
        earlier = [j for j in range(k) if rank[j] < rank[i]]
        want = max((sum(int(weight[j]) for j in earlier if g in groups[j]) for g in groups[i]),
                   default=0)
        assert got[i] == want


@settings(max_examples=100, deadline=None)
@given(old=st.lists(st.integers(-5, 5), max_size=20), data=st.data())
def test_splice_deletes_and_inserts_as_numpy(old: list[int], data: Any) -> None:
    """`splice` (compiled and reference) equals ``np.insert(np.delete(...))``, on ints and
    floats, with inserts at equal positions, at both ends and next to deleted rows."""
    n = len(old)
    gone = sorted(data.draw(st.sets(st.integers(0, max(n - 1, 0)), max_size=n)) if n else [])
    at = sorted(data.draw(st.lists(st.integers(0, n - len(gone)), max_size=8)))
    values = list(range(100, 100 + len(at)))
    want = np.insert(np.delete(np.array(old, dtype=np.int64), gone), at, values)
    g, a = np.array(gone, dtype=np.int64), np.array(at, dtype=np.int64)
    for f in (splice, splice.py_func):
        got = f(np.array(old, dtype=np.int64), g, a, np.array(values, dtype=np.int64))
        assert got.dtype == np.int64
        assert got.tolist() == want.tolist()
        got = f(np.array(old, dtype=np.float64), g, a, np.array(values, dtype=np.float64))
        assert got.dtype == np.float64
        assert got.tolist() == want.astype(float).tolist()


@settings(max_examples=100, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), max_size=30),
       queries=st.lists(st.tuples(st.integers(-1, 4), st.integers(-1, 4)), max_size=10))
def test_key_ranges_find_the_rows_equal_in_both_keys(rows: list[tuple[int, int]],
                                                     queries: list[tuple[int, int]]) -> None:
    rows.sort()
    first = np.array([r[0] for r in rows], dtype=np.int64)
    second = np.array([r[1] for r in rows], dtype=np.int64)
    q0 = np.array([q[0] for q in queries], dtype=np.int64)
    q1 = np.array([q[1] for q in queries], dtype=np.int64)
    lo = np.searchsorted(first, q0, side="left").astype(np.int64)
    hi = np.searchsorted(first, q0, side="right").astype(np.int64)
    for f in (key_ranges, key_ranges.py_func):
        a, b = f(second, q1, lo, hi)
        for i, q in enumerate(queries):
            equal = [j for j, r in enumerate(rows) if r == q]
            below = sum(r < q for r in rows)  # where the query goes when nothing equals it
            assert (int(a[i]), int(b[i])) == ((equal[0], equal[-1] + 1) if equal
                                              else (below, below))


@settings(max_examples=100, deadline=None)
@given(ops=st.lists(st.tuples(st.sampled_from(["add", "remove", "resize", "flush"]),
                              st.integers(0, 11), st.integers(0, 2), st.integers(0, 2),
                              st.integers(1, 9)), max_size=40))
def test_index_keeps_the_open_orders_sorted_with_their_payload(
        ops: list[tuple[str, int, int, int, int]]) -> None:
    """Adds, removes, in-place updates and re-adds queued between flushes, with ties on the
    keys: after each flush the columns are the open orders sorted by (price, time, id)."""
    def key(o: Any) -> tuple[int, ...]:
        return (o.price, o.submitted_at)

    def payload(o: Any, group: int) -> tuple[int, int, int, float, int, int, int, int]:
        return (group, -o.price, -o.gpus, 0.5, o.gpus, 0, 0, 0)

    index = _Index(key)
    live: dict[str, Offer] = {}

    def check() -> None:
        for kernel in (splice, splice.py_func):  # both must leave the same columns
            twin = copy.deepcopy(index)
            twin.flush(lambda o: len(o.id), payload, kernel)
        index.flush(lambda o: len(o.id), payload)
        assert all((a == b).all() for a, b in zip(twin.keys, index.keys, strict=True))
        assert all((twin.cols[k] == index.cols[k]).all() for k in index.cols)
        want = sorted(live.values(), key=lambda o: (o.price, o.submitted_at, o.id))
        assert index.ids.tolist() == [o.id for o in want]
        assert index.keys[0].tolist() == [o.price for o in want]
        assert index.keys[1].tolist() == [o.submitted_at for o in want]
        assert index.cols["size"].tolist() == [-o.gpus for o in want]
        assert index.cols["amount"].tolist() == [o.gpus for o in want]
        assert index.cols["group"].tolist() == [len(o.id) for o in want]
        if want:
            assert index.locate(want).tolist() == list(range(len(want)))
        served = np.arange(0, len(want), 2)
        for take in (take_rows, take_rows.py_func):
            rest = index.unmatched(served, take)
            assert rest.tolist() == [o.id for o in want[1::2]]
            assert rest.dtype == np.dtype(index.width())
        assert index.width() == f"<U{max((len(o.id) for o in want), default=1)}"

    for op, n, price, at, gpus in ops:
        oid = "o" * (1 + n % 3) + str(n) * (1 + n % 2)  # ids of several widths
        if op == "add" and oid not in live:
            live[oid] = Offer(id=oid, provider="p", gpu_model="m", gpus=gpus, price=price + 1,
                              region="x", vram_gb=1, submitted_at=at)
            index.added(live[oid])
        elif op == "remove" and oid in live:
            index.removed(live.pop(oid))
        elif op == "resize" and oid in live:  # the GPUs change in place, or as a new order
            old = live[oid]
            live[oid] = Offer(id=oid, provider="p", gpu_model="m", gpus=gpus,
                              price=old.price if at else price + 1, region="x", vram_gb=1,
                              submitted_at=old.submitted_at)
            if key(live[oid]) == key(old):
                index.updated(live[oid])
            else:
                index.removed(old)
                index.added(live[oid])
        elif op == "flush":
            check()
    check()


def test_python_backend_reclears_without_the_compiled_kernels() -> None:
    """A mechanism with ``backend="python"`` re-clears with the kernels' pure-Python
    references, with the same result."""
    for backend in ("python", "numba"):
        m = LiveMarket(mode="periodic", mechanism=get("first-price", backend=backend),
                       epoch=10**6)
        for j in range(12):
            m.submit(Request(id=f"r{j}", tenant="t", gpus=1 + j % 3, max_price=4 + j % 5,
                             submitted_at=j), at=0)
        m.submit(Offer(id="o0", provider="p", gpu_model="H100", gpus=2, price=20,
                       region="us", vram_gb=80), at=0)
        m.clear(at=1)
        m.submit(Offer(id="o1", provider="q", gpu_model="H100", gpus=4, price=6,
                       region="us", vram_gb=80), at=2)
        scratch = auction.clear(auction.Market(m.book.snapshot()), m.mechanism)
        m.clear(at=3)
        assert m._clearer.last_stats["incremental"] is True
        assert m._clearer.last_stats["direct"] is True  # the sealed-bid kernel or reference
        assert m.last_result is not None
        assert m.last_result.to_dict() == scratch.to_dict()
        assert m.last_result.request_id.tolist() == ["r2", "r3"]  # 3 + 1 GPUs at 6


@settings(max_examples=150, deadline=None)
@given(orders=st.lists(st.tuples(
    st.booleans(), st.sets(st.sampled_from(["A", "B", "C"]), max_size=2),
    st.sets(st.sampled_from(["x", "y"]), max_size=2), st.sampled_from([16, 40, 80]),
    st.sets(st.sampled_from(["s", "t"]))), max_size=25))
def test_pools_link_every_profile_to_the_classes_it_accepts(
        orders: list[tuple[bool, set[str], set[str], int, set[str]]]) -> None:
    """Groups created in any order end up linked exactly as `accepts` says."""
    pools = Pools(lambda o: (o.price, o.id), lambda r: (r.submitted_at, r.id))
    for k, (is_offer, models, regions, vram, tags) in enumerate(orders):
        if is_offer:
            pools.group_of(Offer(id=f"o{k}", provider="p", gpu_model=min(models, default="A"),
                                 gpus=1, price=1, region=min(regions, default="x"),
                                 vram_gb=vram, tags=frozenset(tags)))
        else:
            pools.group_of(Request(id=f"r{k}", tenant="t", gpus=1, max_price=1,
                                   gpu_models=frozenset(models), regions=frozenset(regions),
                                   min_vram_gb=vram, required_tags=frozenset(tags)))
    for ckey, c in pools.classes.items():
        want = {id(pools.profiles[p]) for p in pools.profiles if accepts(p, ckey)}
        assert {id(g) for g in c.peers} == want
        assert len(c.peers) == len(want)
        assert sorted(c.peer_indexes().tolist()) == sorted(g.index for g in c.peers)
    for pkey, p in pools.profiles.items():
        want = {id(pools.classes[c]) for c in pools.classes if accepts(pkey, c)}
        assert {id(g) for g in p.peers} == want
        assert len(p.peers) == len(want)
    assert [g.index for g in pools.groups] == list(range(pools.n_groups))
