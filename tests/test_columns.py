"""Columnar ingest and output: `OrderBook.from_columns`, `BookSnapshot.to_columns`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings

from auction.book import ListColumn, OrderBook
from auction.errors import DuplicateOrderError, InvalidOrderError
from auction.market import Market
from auction.orders import Offer, Order, Request
from auction.testing.strategies import books

pa = pytest.importorskip("pyarrow")


def records_of(book: OrderBook) -> dict[str, list[dict[str, Any]]]:
    return book.to_records()


def as_columns(records: list[dict[str, Any]], kind: type[Offer] | type[Request]) -> dict[str, Any]:
    """Records as a dict of lists, every field present (defaults filled in)."""
    import attrs

    orders = [kind.from_record(r) for r in records]
    out: dict[str, Any] = {}
    for a in attrs.fields(kind):
        vals = [getattr(o, a.name) for o in orders]
        if a.name == "attributes":
            vals = [dict(v) for v in vals]
        out[a.name] = vals
    return out


@given(book=books(max_offers=8, max_requests=8))
@settings(max_examples=60)
def test_from_columns_matches_the_record_path(book: OrderBook) -> None:
    recs = book.to_records()
    offers = as_columns(recs["offers"], Offer)
    requests = as_columns(recs["requests"], Request)
    again = OrderBook.from_columns(offers=offers, requests=requests)
    assert again.to_records() == recs
    # the market sees the same pairs
    a, b = Market(book).pairs(), Market(again).pairs()
    ids = lambda m, p: sorted(  # noqa: E731
        (str(m.snapshot.requests.id[r]), str(m.snapshot.offers.id[o]))
        for r in range(m.n_requests) for o in p.offers[p.indptr[r] : p.indptr[r + 1]].tolist()
    )
    assert ids(Market(book), a) == ids(Market(again), b)


@given(book=books(max_offers=8, max_requests=8))
@settings(max_examples=40)
def test_to_columns_round_trips(book: OrderBook) -> None:
    snap = book.snapshot()
    cols = snap.to_columns()
    again = OrderBook.from_columns(offers=cols["offers"], requests=cols["requests"])
    assert again.to_records() == book.to_records()
    off_df, req_df = snap.to_pandas()
    assert OrderBook.from_columns(off_df, req_df).to_records() == book.to_records()
    off_t, req_t = snap.to_arrow()
    assert OrderBook.from_columns(off_t, req_t).to_records() == book.to_records()


def test_from_columns_builds_no_objects_until_asked() -> None:
    n = 1000
    offers = {
        "id": np.array([f"o{i}" for i in range(n)]),
        "provider": np.array([f"p{i % 7}" for i in range(n)]),
        "gpu_model": np.array(["H100", "A100"] * (n // 2)),
        "gpus": np.full(n, 8),
        "price": np.arange(n),
        "region": np.array(["us", "eu"] * (n // 2)),
        "vram_gb": np.full(n, 80),
        "tags": [["soc2"] if i % 2 else [] for i in range(n)],
        "cpu_per_gpu": np.full(n, 16),
    }
    requests = pd.DataFrame({
        "id": [f"r{j}" for j in range(n)], "tenant": "t", "gpus": 1,
        "max_price": np.arange(n), "regions": [["us"]] * n,
        "providers": [None if j % 3 else ["p1", "p2"] for j in range(n)],
        "min_cpu_per_gpu": 8,
    })
    book = OrderBook.from_columns(offers, requests)
    assert book._offers.objects == [None] * n  # nothing built per row
    snap = book.snapshot()
    assert snap.offers.cpu_per_gpu.tolist() == [16] * n
    assert snap.offer(3) == Offer(id="o3", provider="p3", gpu_model="A100", gpus=8, price=3,
                                  region="eu", vram_gb=80, tags={"soc2"}, cpu_per_gpu=16)
    assert book.get("r3").providers == frozenset({"p1", "p2"})  # type: ignore[union-attr]
    assert book.get("r4").providers == frozenset()  # type: ignore[union-attr]
    m = Market(book)
    assert m.pair_count() > 0
    # writes after a bulk load work as on any book
    book.cancel("o5")
    book.amend("r7", max_price=10**6)
    book.add(Offer(id="new", provider="p", gpu_model="H100", gpus=1, price=1, region="us",
                   vram_gb=80))
    assert len(book) == 2 * n
    assert snap.n_offers == n  # the snapshot taken before is unchanged


GOOD_OFFERS: dict[str, Any] = {
    "id": ["o1", "o2"], "provider": ["p", "p"], "gpu_model": ["H100", "H100"],
    "gpus": [1, 2], "price": [5, 6], "region": ["us", "us"], "vram_gb": [80, 80],
}
GOOD_REQUESTS: dict[str, Any] = {"id": ["r1", "r2"], "tenant": ["t", "t"], "gpus": [1, 1],
                                 "max_price": [9, 9]}


@pytest.mark.parametrize(
    ("side", "changes", "field", "order_id", "value"),
    [
        ("offers", {"gpus": [1, 0]}, "gpus", "o2", 0),
        ("offers", {"gpus": np.array([1, -3])}, "gpus", "o2", -3),
        ("offers", {"price": [1.5, 2.0]}, "price", "o1", 1.5),
        ("offers", {"price": [True, False]}, "price", "o1", True),
        ("offers", {"provider": ["p", " p"]}, "provider", "o2", " p"),
        ("offers", {"gpu_model": ["", "x"]}, "gpu_model", "o1", ""),
        ("offers", {"region": ["us", 5]}, "region", "o2", 5),
        ("offers", {"tags": [["a"], "soc2"]}, "tags", "o2", "soc2"),
        ("offers", {"tags": [["a"], ["b", ""]]}, "tags", "o2", ""),
        ("offers", {"cpu_per_gpu": [0, -1]}, "cpu_per_gpu", "o2", -1),
        ("offers", {"colour": ["r", "g"]}, "colour", None, None),
        ("requests", {"min_reputation": [0.5, 1.5]}, "min_reputation", "r2", 1.5),
        ("requests", {"min_reputation": [float("nan"), 0.5]}, "min_reputation", "r1", None),
        ("requests", {"divisible": [True, True], "cluster": [False, True]}, "cluster", "r2",
         True),
        ("requests", {"divisible": [1, 0]}, "divisible", "r1", 1),
        ("requests", {"providers": [["p"], [" q"]]}, "providers", "r2", " q"),
        ("requests", {"duration_hours": [1, 0]}, "duration_hours", "r2", 0),
        ("requests", {"max_price": [1, 2**63]}, "max_price", "r2", None),
        ("requests", {"tenant": ["t", None]}, "tenant", "r2", None),
    ],
)
def test_bad_rows_name_order_field_and_value(
    side: str, changes: dict[str, Any], field: str, order_id: str | None, value: Any
) -> None:
    data = {"offers": dict(GOOD_OFFERS), "requests": dict(GOOD_REQUESTS)}
    data[side].update(changes)
    with pytest.raises(InvalidOrderError) as info:
        OrderBook.from_columns(data["offers"], data["requests"])
    assert info.value.field == field
    if order_id is not None:
        assert info.value.order_id == order_id
    if value is not None:
        assert info.value.value == value


def test_required_columns_lengths_and_ids() -> None:
    with pytest.raises(InvalidOrderError) as info:
        OrderBook.from_columns({k: v for k, v in GOOD_OFFERS.items() if k != "price"})
    assert info.value.field == "price"
    with pytest.raises(InvalidOrderError) as info:
        OrderBook.from_columns({**GOOD_OFFERS, "gpus": [1]})
    assert info.value.field == "columns"
    with pytest.raises(InvalidOrderError) as info:
        OrderBook.from_columns({**GOOD_OFFERS, "id": ["o1", "o 2 "]})
    assert info.value.field == "id"
    with pytest.raises(DuplicateOrderError):
        OrderBook.from_columns({**GOOD_OFFERS, "id": ["o1", "o1"]})
    with pytest.raises(DuplicateOrderError) as dup:
        OrderBook.from_columns(GOOD_OFFERS, {**GOOD_REQUESTS, "id": ["r1", "o2"]})
    assert dup.value.order_id == "o2"
    with pytest.raises(InvalidOrderError) as info:
        OrderBook.from_columns([1, 2])
    assert info.value.field == "offers"
    empty = OrderBook.from_columns({k: [] for k in GOOD_OFFERS})
    assert len(empty) == 0


def test_arrow_input_with_lists_and_nulls() -> None:
    offers = pa.table({
        **{k: pa.array(v) for k, v in GOOD_OFFERS.items()},
        "tags": pa.array([["soc2", "soc2", "nvlink"], None], pa.list_(pa.string())),
        "tenants": pa.array([[], ["t"]], pa.list_(pa.string())),
    })
    requests = pa.table({k: pa.array(v) for k, v in GOOD_REQUESTS.items()})
    book = OrderBook.from_columns(offers, requests)
    o1, o2 = book.get("o1"), book.get("o2")
    assert isinstance(o1, Offer)
    assert isinstance(o2, Offer)
    assert o1.tags == frozenset({"soc2", "nvlink"})
    assert o2.tags == frozenset()
    assert o2.tenants == frozenset({"t"})


def test_list_column_round_trip() -> None:
    col = ListColumn(np.array([0, 2, 2, 3]), np.array(["a", "b", "c"]))
    assert col.to_lists() == [["a", "b"], [], ["c"]]
    book = OrderBook.from_columns(
        {**{k: [*v, v[0]] for k, v in GOOD_OFFERS.items()}, "id": ["o1", "o2", "o3"],
         "tags": col}
    )
    assert [sorted(o.tags) for o in book.offers()] == [["a", "b"], [], ["c"]]


def orders_equal(a: list[Order], b: list[Order]) -> bool:
    return sorted(a, key=lambda o: o.id) == sorted(b, key=lambda o: o.id)
