"""OrderBook: columns that match the orders, atomic writes, immutable snapshots, JSON, pandas."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import attrs
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)

from auction.book import FORMAT, SCHEMA, VERSION, BookSnapshot, CodeLists, OrderBook
from auction.errors import (
    DuplicateOrderError,
    InvalidOrderError,
    UnknownBookSchemaError,
    UnknownOrderError,
    UnknownSchemaError,
)
from auction.money import MAX_MONEY
from auction.orders import Offer, Order, Request

# -- strategies -----------------------------------------------------------------------------
PROVIDERS = ("p0", "p1", "p2", "p3")
TENANTS = ("t0", "t1", "t2")
MODELS = ("H100", "A100", "RTX4090")
MANY_MODELS = tuple(f"gpu{i:02d}" for i in range(70))  # more than 64: several bitset words
REGIONS = ("us-east", "eu-west")
MANY_REGIONS = tuple(f"zone{i:02d}" for i in range(70))
TAGS = ("soc2", "nvlink", "hipaa")
MANY_TAGS = tuple(f"tag{i:03d}" for i in range(150))

models = st.one_of(st.sampled_from(MODELS), st.sampled_from(MANY_MODELS))
regions = st.one_of(st.sampled_from(REGIONS), st.sampled_from(MANY_REGIONS))
tag_names = st.one_of(st.sampled_from(TAGS), st.sampled_from(MANY_TAGS))
prices = st.one_of(st.integers(0, 20), st.just(MAX_MONEY))


def offers(order_id: str) -> st.SearchStrategy[Offer]:
    return st.builds(
        Offer,
        id=st.just(order_id),
        provider=st.sampled_from(PROVIDERS),
        gpu_model=models,
        gpus=st.integers(1, 8),
        price=prices,
        region=regions,
        vram_gb=st.sampled_from((24, 40, 80)),
        tags=st.frozensets(tag_names, max_size=4),
        submitted_at=st.integers(0, 5),
    )


def requests(order_id: str) -> st.SearchStrategy[Request]:
    return st.builds(
        Request,
        id=st.just(order_id),
        tenant=st.sampled_from(TENANTS),
        gpus=st.integers(1, 8),
        max_price=prices,
        gpu_models=st.frozensets(models, max_size=3),
        regions=st.frozensets(regions, max_size=3),
        min_vram_gb=st.sampled_from((0, 24, 80)),
        required_tags=st.frozensets(tag_names, max_size=3),
        min_reputation=st.sampled_from((0.0, 0.5, 1.0)),
        duration_hours=st.integers(1, 10),
        divisible=st.booleans(),
        submitted_at=st.integers(0, 5),
    )


def orders(order_id: str) -> st.SearchStrategy[Order]:
    return st.one_of(offers(order_id), requests(order_id))


@st.composite
def order_lists(draw: st.DrawFn, max_size: int = 16) -> list[Order]:
    names = st.text("abcxyz0123456789-", min_size=1, max_size=5)
    ids = draw(st.lists(names, unique=True, max_size=max_size))
    return [draw(orders(i)) for i in ids]


# -- helpers --------------------------------------------------------------------------------
def decode(lists: CodeLists, i: int, names: tuple[str, ...]) -> frozenset[str]:
    codes = lists.row(i).tolist()
    assert codes == sorted(set(codes))  # sorted, distinct
    return frozenset(names[c] for c in codes)  # IndexError if a code has no name


def flat_columns(cols: Any) -> dict[str, np.ndarray]:
    """Every column of one side as arrays (a list column as its indptr and codes)."""
    out: dict[str, np.ndarray] = {}
    for a in attrs.fields(type(cols)):
        v = getattr(cols, a.name)
        if isinstance(v, CodeLists):
            out[f"{a.name}.indptr"] = v.indptr
            out[f"{a.name}.codes"] = v.codes
        else:
            out[a.name] = v
    return out


def assert_columns_match(snap: BookSnapshot) -> None:
    """Every column row agrees with the order object behind it."""
    off, req = snap.offers, snap.requests
    for names in (snap.parties, snap.models, snap.regions, snap.tags):
        assert len(set(names)) == len(names)
    assert len(off) == snap.n_offers == len(snap.offer_list())
    assert len(req) == snap.n_requests == len(snap.request_list())
    for cols in (off, req):
        for a in attrs.fields(type(cols)):
            arr = getattr(cols, a.name)
            if isinstance(arr, CodeLists):
                assert len(arr) == len(cols), a.name
                assert arr.indptr[0] == 0
                assert len(arr.codes) == arr.indptr[-1]
                for part in (arr.indptr, arr.codes):
                    assert part.dtype == np.int64
                    assert not part.flags.writeable, a.name
            else:
                assert isinstance(arr, np.ndarray)
                assert len(arr) == len(cols), a.name
                assert not arr.flags.writeable, a.name
    for a in ("gpus", "price", "vram_gb", "submitted_at", "cpu_per_gpu"):
        assert getattr(off, a).dtype == np.int64
    for i, o in enumerate(snap.offer_list()):
        assert snap.offer(i) is o
        assert decode(off.tenants, i, snap.parties) == o.tenants
        assert decode(off.exclude_tenants, i, snap.parties) == o.exclude_tenants
        assert (off.cpu_per_gpu[i], off.ram_gb_per_gpu[i], off.disk_gb_per_gpu[i]) == (
            o.cpu_per_gpu, o.ram_gb_per_gpu, o.disk_gb_per_gpu)
        assert (off.attributes[i] or {}) == o.attributes
        assert off.constraints[i] == o.constraints
        assert off.id[i] == o.id
        assert snap.parties[off.provider[i]] == o.provider
        assert snap.models[off.gpu_model[i]] == o.gpu_model
        assert snap.regions[off.region[i]] == o.region
        assert (off.gpus[i], off.price[i], off.vram_gb[i], off.submitted_at[i]) == (
            o.gpus,
            o.price,
            o.vram_gb,
            o.submitted_at,
        )
        assert decode(off.tags, i, snap.tags) == o.tags
    for i, r in enumerate(snap.request_list()):
        assert snap.request(i) is r
        assert req.id[i] == r.id
        assert snap.parties[req.tenant[i]] == r.tenant
        assert (req.gpus[i], req.max_price[i], req.min_vram_gb[i]) == (
            r.gpus,
            r.max_price,
            r.min_vram_gb,
        )
        assert bool(req.any_model[i]) == (not r.gpu_models)
        assert bool(req.any_region[i]) == (not r.regions)
        assert decode(req.gpu_models, i, snap.models) == r.gpu_models
        assert decode(req.regions, i, snap.regions) == r.regions
        assert decode(req.required_tags, i, snap.tags) == r.required_tags
        assert decode(req.providers, i, snap.parties) == r.providers
        assert decode(req.exclude_providers, i, snap.parties) == r.exclude_providers
        assert (req.min_cpu_per_gpu[i], req.min_ram_gb_per_gpu[i],
                req.min_disk_gb_per_gpu[i]) == (
            r.min_cpu_per_gpu, r.min_ram_gb_per_gpu, r.min_disk_gb_per_gpu)
        assert (req.attributes[i] or {}) == r.attributes
        assert req.constraints[i] == r.constraints
        assert req.min_reputation[i] == r.min_reputation
        assert req.duration_hours[i] == r.duration_hours
        assert bool(req.divisible[i]) == r.divisible
        assert req.submitted_at[i] == r.submitted_at


def expected_records(orders: Iterable[Order]) -> dict[str, list[dict[str, Any]]]:
    key = lambda o: (o.submitted_at, o.id)  # noqa: E731
    items = list(orders)
    return {
        "offers": [o.to_record() for o in sorted(items, key=key) if isinstance(o, Offer)],
        "requests": [r.to_record() for r in sorted(items, key=key) if isinstance(r, Request)],
    }


def state(book: OrderBook) -> tuple[Any, ...]:
    """Everything observable about a book, to compare before and after a failed write."""
    snap = book.snapshot()
    cols = {
        f"{side}.{k}": v.copy()
        for side, c in (("o", snap.offers), ("r", snap.requests))
        for k, v in flat_columns(c).items()
    }
    return (book.to_records(), len(book), list(book), cols, snap.tags, snap.models)


def assert_same_state(a: tuple[Any, ...], b: tuple[Any, ...]) -> None:
    assert a[:3] == b[:3]
    assert a[3].keys() == b[3].keys()
    for k in a[3]:
        assert np.array_equal(a[3][k], b[3][k]), k
    assert a[4:] == b[4:]


def offer(oid: str = "o1", **kw: Any) -> Offer:
    base: dict[str, Any] = {
        "id": oid,
        "provider": "p1",
        "gpu_model": "H100",
        "gpus": 8,
        "price": 100,
        "region": "us-east",
        "vram_gb": 80,
        "tags": {"soc2"},
    }
    return Offer(**{**base, **kw})


def request(rid: str = "r1", **kw: Any) -> Request:
    base: dict[str, Any] = {"id": rid, "tenant": "t1", "gpus": 2, "max_price": 150}
    return Request(**{**base, **kw})


# -- basic operations -----------------------------------------------------------------------
def test_add_get_cancel_amend() -> None:
    book = OrderBook()
    assert len(book) == 0
    assert (book.n_offers, book.n_requests) == (0, 0)
    o1, r1 = offer("o1"), request("r1")
    book.add(o1)
    book.add(r1)
    book.add_many([offer("o2", price=90), request("r2", divisible=True)])
    assert len(book) == 4
    assert (book.n_offers, book.n_requests) == (2, 2)
    assert "o1" in book
    assert "zz" not in book
    assert book.get("o1") is o1
    assert book.get("r1") is r1
    assert [o.id for o in book] == ["o1", "o2", "r1", "r2"]
    assert [o.id for o in book.offers()] == ["o1", "o2"]
    assert [r.id for r in book.requests()] == ["r1", "r2"]
    assert repr(book) == "OrderBook(2 offers, 2 requests)"

    new = book.amend("o1", price=80, tags=["nvlink", "soc2"])
    assert new == attrs.evolve(o1, price=80, tags=frozenset({"nvlink", "soc2"}))
    assert book.get("o1") == new
    amended = book.amend("r1", max_price=10, id="r1")
    assert isinstance(amended, Request)
    assert amended.max_price == 10

    assert book.cancel("o1") == new
    assert "o1" not in book
    with pytest.raises(UnknownOrderError):
        book.get("o1")
    assert len(book) == 3
    book.add(offer("o1"))  # an id is free again once cancelled
    assert book.get("o1") == offer("o1")
    assert_columns_match(book.snapshot())


def test_unknown_ids() -> None:
    book = OrderBook([offer("o1"), request("r1")])
    before = state(book)
    for bad in ("nope", "", None, 3, ("o1",)):
        with pytest.raises(UnknownOrderError) as info:
            book.get(bad)  # type: ignore[arg-type]
        assert info.value.order_id == bad
        assert isinstance(info.value, KeyError)
        with pytest.raises(UnknownOrderError):
            book.cancel(bad)
        with pytest.raises(UnknownOrderError):
            book.amend(bad, price=1)
    with pytest.raises(UnknownOrderError):
        book.get(["o1"])  # type: ignore[arg-type]  # unhashable
    assert "nope" in str(UnknownOrderError("nope"))
    assert_same_state(before, state(book))


@pytest.mark.parametrize(
    "batch",
    [
        [offer("o1")],  # already an offer
        [request("o1")],  # an offer's id reused by a request
        [offer("r1")],  # a request's id reused by an offer
        [offer("n1"), offer("n2"), request("n1")],  # twice in one batch
        [offer("n1"), request("n2"), offer("n3"), request("r1")],  # clash last, after good ones
    ],
)
def test_duplicates_leave_the_book_unchanged(batch: list[Order]) -> None:
    book = OrderBook([offer("o1"), request("r1")])
    snap = book.snapshot()
    before = state(book)
    with pytest.raises(DuplicateOrderError) as info:
        book.add_many(batch)
    assert isinstance(info.value, KeyError)
    assert info.value.order_id in {o.id for o in batch}
    assert info.value.order_id in str(info.value)
    assert_same_state(before, state(book))
    if len(batch) == 1:
        with pytest.raises(DuplicateOrderError):
            book.add(batch[0])
    assert_same_state(before, state(book))
    assert_columns_match(snap)
    assert snap.to_records() == before[0]


def test_duplicates_in_constructor() -> None:
    with pytest.raises(DuplicateOrderError):
        OrderBook([offer("x"), request("x")])


def test_non_orders_are_refused_atomically() -> None:
    book = OrderBook([offer("o1")])
    before = state(book)
    with pytest.raises(InvalidOrderError) as info:
        book.add_many([offer("o2"), {"id": "o3"}])  # type: ignore[list-item]
    assert info.value.field == "order"
    assert_same_state(before, state(book))


@pytest.mark.parametrize(
    ("oid", "changes", "field"),
    [
        ("o1", {"price": -1}, "price"),
        ("o1", {"gpus": 0}, "gpus"),
        ("o1", {"tags": "soc2"}, "tags"),
        ("o1", {"gpu_model": " H100"}, "gpu_model"),
        ("o1", {"price": 2.5}, "price"),
        ("o1", {"colour": "red"}, "colour"),
        ("o1", {"id": "o9"}, "id"),
        ("o1", {"max_price": 5}, "max_price"),  # a request field on an offer
        ("r1", {"min_reputation": float("nan")}, "min_reputation"),
        ("r1", {"divisible": 1}, "divisible"),
        ("r1", {"gpu_models": ["A100", ""]}, "gpu_models"),
        ("r1", {"price": 5}, "price"),  # an offer field on a request
        # valid changes together with an invalid one: nothing is applied
        ("r1", {"max_price": 1, "regions": ["brand-new-region"], "gpus": True}, "gpus"),
        ("o1", {"tags": ["brand-new-tag"], "provider": "new-provider", "vram_gb": -4}, "vram_gb"),
    ],
)
def test_invalid_amend_leaves_the_book_unchanged(
    oid: str, changes: dict[str, Any], field: str
) -> None:
    book = OrderBook([offer("o1"), offer("o2"), request("r1")])
    snap = book.snapshot()
    before = state(book)
    with pytest.raises(InvalidOrderError) as info:
        book.amend(oid, **changes)
    assert info.value.field == field
    assert info.value.order_id == oid
    assert_same_state(before, state(book))
    assert snap.to_records() == before[0]
    # the vocabularies did not pick up names from the refused amendment either
    assert "brand-new-tag" not in book.snapshot().tags
    assert "new-provider" not in book.snapshot().parties
    assert "brand-new-region" not in book.snapshot().regions


# -- snapshots ------------------------------------------------------------------------------
def snapshot_arrays(snap: BookSnapshot) -> dict[str, np.ndarray]:
    return {
        f"{side}.{k}": v.copy()
        for side, cols in (("offers", snap.offers), ("requests", snap.requests))
        for k, v in flat_columns(cols).items()
    }


def assert_snapshot_is(snap: BookSnapshot, arrays: dict[str, np.ndarray], records: Any) -> None:
    now = snapshot_arrays(snap)
    for k, v in arrays.items():
        assert now[k].dtype == v.dtype
        assert np.array_equal(now[k], v), k
    assert snap.to_records() == records
    assert_columns_match(snap)


def test_snapshot_is_cheap_and_immutable() -> None:
    book = OrderBook([offer("o1"), offer("o2", tags={"nvlink"}), request("r1")])
    s1 = book.snapshot()
    s2 = book.snapshot()
    # no write in between: the two snapshots share memory (O(1), no copy)
    assert np.shares_memory(s1.offers.price, s2.offers.price)
    assert np.shares_memory(s1.requests.max_price, s2.requests.max_price)
    for arr in (s1.offers.price, s1.offers.tags.codes, s1.requests.gpu_models.indptr,
                s1.offers.id):
        assert not arr.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            arr[0] = arr[0]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        s1.offers = s2.offers  # type: ignore[misc]
    arrays, records = snapshot_arrays(s1), s1.to_records()

    # writes of every kind, growing past the initial capacity and the first bitset word
    book.amend("o1", price=1, tags=[f"t{i}" for i in range(70)])
    book.cancel("o2")
    book.add_many([offer(f"x{i}", gpu_model=f"m{i}", region=f"z{i}") for i in range(40)])
    book.add_many(
        [request(f"y{i}", gpu_models=[f"m{i}"], required_tags=["t65"]) for i in range(40)]
    )
    book.amend("r1", max_price=1, regions=["z3"])
    book.cancel("x0")
    assert_snapshot_is(s1, arrays, records)
    assert s1.n_offers == 2
    assert s1.offer(0) == offer("o1")
    s3 = book.snapshot()
    assert not np.shares_memory(s1.offers.price, s3.offers.price)
    assert_columns_match(s3)
    assert len(s3.offers.tags.row(s3.offers.id.tolist().index("o1"))) == 70


def test_snapshot_lists_are_copies() -> None:
    book = OrderBook([offer("o1"), request("r1")])
    snap = book.snapshot()
    snap.offer_list().append(offer("zz"))
    snap.request_list().clear()
    assert snap.n_offers == 1
    assert [o.id for o in snap.offer_list()] == ["o1"]
    assert [r.id for r in snap.request_list()] == ["r1"]
    book.offers().clear()
    assert book.n_offers == 1


@given(first=order_lists(), data=st.data())
def test_snapshots_never_change(first: list[Order], data: st.DataObject) -> None:
    book = OrderBook(first)
    held: list[tuple[BookSnapshot, dict[str, np.ndarray], Any]] = []
    live = [o.id for o in first]
    for step in range(data.draw(st.integers(1, 12), label="steps")):
        if data.draw(st.booleans(), label="snapshot"):
            s = book.snapshot()
            held.append((s, snapshot_arrays(s), s.to_records()))
        action = data.draw(st.sampled_from(["add", "cancel", "amend"]), label="action")
        if action == "add" or not live:
            new = data.draw(orders(f"new{step}"))
            book.add(new)
            live.append(new.id)
        elif action == "cancel":
            victim = data.draw(st.sampled_from(live))
            book.cancel(victim)
            live.remove(victim)
        else:
            target = data.draw(st.sampled_from(live))
            old = book.get(target)
            template = data.draw(offers(target) if isinstance(old, Offer) else requests(target))
            field = data.draw(st.sampled_from([a.name for a in attrs.fields(type(old))][1:]))
            book.amend(target, **{field: getattr(template, field)})
    for s, arrays, records in held:
        assert_snapshot_is(s, arrays, records)
    assert_columns_match(book.snapshot())


# -- columns --------------------------------------------------------------------------------
@given(batch=order_lists(max_size=30))
def test_columns_agree_with_the_orders(batch: list[Order]) -> None:
    book = OrderBook()
    half = len(batch) // 2
    book.add_many(batch[:half])
    for o in batch[half:]:
        book.add(o)
    snap = book.snapshot()
    assert_columns_match(snap)
    assert book.to_records() == expected_records(batch)


def test_code_lists_with_many_names() -> None:
    tags = [f"tag{i:03d}" for i in range(150)]
    many_models = [f"gpu{i}" for i in range(100)]
    book = OrderBook(
        [offer(f"o{i}", tags=tags[i : i + 5], gpu_model=many_models[i]) for i in range(100)]
        + [
            request("r0", required_tags=["tag000", "tag149"], gpu_models=many_models[60:70]),
            request("r1", required_tags=tags, regions=["us-east", "far-away"]),
            request("r2"),
        ]
    )
    snap = book.snapshot()
    assert len(snap.tags) == 150
    # a list column holds the names each row lists, however large the vocabulary
    assert len(snap.offers.tags.codes) == 500
    assert snap.requests.required_tags.lengths.tolist() == [2, 150, 0]
    assert snap.requests.gpu_models.lengths.tolist() == [10, 0, 0]
    assert_columns_match(snap)
    # the codes are the interning codes, sorted
    code = {t: i for i, t in enumerate(snap.tags)}
    assert snap.requests.required_tags.row(0).tolist() == sorted([code["tag000"], code["tag149"]])
    assert snap.requests.any_model.tolist() == [False, True, True]
    assert snap.requests.any_region.tolist() == [True, False, True]


def test_interning_codes() -> None:
    book = OrderBook(
        [
            offer("o1", provider="alice", gpu_model="H100", region="eu"),
            offer("o2", provider="bob", gpu_model="A100", region="us"),
            offer("o3", provider="alice", gpu_model="A100", region="eu"),
            request("r1", tenant="bob"),
        ]
    )
    snap = book.snapshot()
    o = snap.offers
    assert o.provider[0] == o.provider[2] != o.provider[1]
    assert o.gpu_model[1] == o.gpu_model[2] != o.gpu_model[0]
    assert o.region[0] == o.region[2] != o.region[1]
    # providers and tenants share one vocabulary of parties
    assert snap.requests.tenant[0] == o.provider[1]
    assert_columns_match(snap)


# -- records and JSON -----------------------------------------------------------------------
@given(batch=order_lists())
def test_json_round_trip(batch: list[Order]) -> None:
    book = OrderBook(batch)
    text = book.to_json()
    data = json.loads(text)
    assert (data["format"], data["version"]) == (FORMAT, VERSION) == ("auction.book", 2)
    assert set(data) == {"format", "version", "offers", "requests"}
    again = OrderBook.from_json(text)
    assert again.to_records() == book.to_records() == expected_records(batch)
    assert sorted(again, key=lambda o: o.id) == sorted(batch, key=lambda o: o.id)
    assert OrderBook.from_json(book.to_json(indent=2)).to_records() == book.to_records()
    assert OrderBook.from_json(text.encode()).to_records() == book.to_records()
    recs = book.to_records()
    assert OrderBook.from_records(recs["offers"], recs["requests"]).to_records() == recs
    assert book.snapshot().to_json() == text


def test_json_schema_example() -> None:
    book = OrderBook(
        [
            request("r1", gpu_models={"H100", "A100"}, submitted_at=2),
            offer("o2", submitted_at=1, tags={"b", "a"}),
            offer("o1", submitted_at=1),
        ]
    )
    assert json.loads(book.to_json()) == {
        "format": "auction.book",
        "version": 2,
        "offers": [
            {
                "id": "o1",
                "provider": "p1",
                "gpu_model": "H100",
                "gpus": 8,
                "price": 100,
                "region": "us-east",
                "vram_gb": 80,
                "tags": ["soc2"],
                "submitted_at": 1,
            },
            {
                "id": "o2",
                "provider": "p1",
                "gpu_model": "H100",
                "gpus": 8,
                "price": 100,
                "region": "us-east",
                "vram_gb": 80,
                "tags": ["a", "b"],
                "submitted_at": 1,
            },
        ],
        "requests": [
            {
                "id": "r1",
                "tenant": "t1",
                "gpus": 2,
                "max_price": 150,
                "gpu_models": ["A100", "H100"],
                "regions": [],
                "min_vram_gb": 0,
                "required_tags": [],
                "min_reputation": 0.0,
                "duration_hours": 1,
                "divisible": False,
                "cluster": False,
                "submitted_at": 2,
            }
        ],
    }
    minimal = '{"schema": "auction.book/1"}'
    assert len(OrderBook.from_json(minimal)) == 0
    assert len(OrderBook.from_json('{"format": "auction.book", "version": 2}')) == 0
    assert len(OrderBook.from_json('{"format": "auction.book", "version": 1}')) == 0


GOOD_OFFER = offer("o1").to_record()
GOOD_REQUEST = request("r1").to_record()


def book_json(**data: Any) -> str:
    return json.dumps({"schema": SCHEMA, **data})


@pytest.mark.parametrize(
    ("text", "field", "value"),
    [
        ('{"schema": "auction.book/2", "offers": []}', "schema", "auction.book/2"),
        ('{"offers": []}', "format", None),  # no header: the key it lacks
        ("{not json", "json", None),
        ("", "json", None),
        (b"\xff\xfe\xfa", "json", None),
        ("[" * 100_000, "json", None),
        ("[]", "json", "list"),
        ('"auction.book/1"', "json", "str"),
        ('{"schema": "auction.book/1", "extra": 5}', "extra", 5),
        ('{"schema": "auction.book/1", "offers": {}}', "offers", {}),
        ('{"schema": "auction.book/1", "requests": "r1"}', "requests", "r1"),
        ('{"format": "auction.book", "version": 3}', "version", 3),
        ('{"format": "auction.book", "version": 99, "offers": []}', "version", 99),
        ('{"format": "auction.book", "version": "2"}', "version", "2"),
        ('{"format": "auction.book", "version": true}', "version", True),
        ('{"format": "auction.book", "version": 0}', "version", 0),
        ('{"format": "auction.book"}', "version", None),
        ('{"format": "other", "version": 2}', "format", "other"),
        ('{"version": 2}', "format", None),
        ('{"format": "auction.book", "version": 2, "schema": "auction.book/1"}', "schema",
         "auction.book/1"),
    ],
)
def test_json_errors(text: str | bytes, field: str, value: Any) -> None:
    with pytest.raises(InvalidOrderError) as info:
        OrderBook.from_json(text)
    assert info.value.field == field
    if value is not None:
        assert info.value.value == value
    # a fault of the header is the one schema error every JSON format raises
    header = field in ("schema", "format", "version")
    assert isinstance(info.value, UnknownSchemaError) == header
    if header:
        assert isinstance(info.value, UnknownBookSchemaError)
        assert info.value.supported == ("auction.book/1", "auction.book/2")
        assert info.value.newer == (field == "version" and value in (3, 99))


@pytest.mark.parametrize(
    ("offers_", "requests_", "field", "where"),
    [
        # a bad order with a usable id is reported by its id
        ([GOOD_OFFER, {**GOOD_OFFER, "id": "o2", "price": -5}], [], "price", "o2"),
        ([], [{**GOOD_REQUEST, "min_reputation": 2}], "min_reputation", "r1"),
        ([], [{**GOOD_REQUEST, "nickname": "x"}], "nickname", "r1"),
        ([{**GOOD_OFFER, "tags": "soc2"}], [], "tags", "o1"),
        # without a usable id, by its position
        (
            [
                GOOD_OFFER,
                {**GOOD_OFFER, "id": "o2"},
                {**GOOD_OFFER, "id": "o3"},
                {k: v for k, v in GOOD_OFFER.items() if k != "id"},
            ],
            [],
            "id",
            "offers[3]",
        ),
        ([{**GOOD_OFFER, "id": 7}], [], "id", "offers[0]"),
        ([], [GOOD_REQUEST, {**GOOD_REQUEST, "id": " r2 "}], "id", "requests[1]"),
        ([], [GOOD_REQUEST, ["not", "a", "dict"]], "record", "requests[1]"),
        ([], [GOOD_REQUEST, GOOD_OFFER], "provider", "o1"),  # an offer among the requests
    ],
)
def test_invalid_orders_in_json_name_order_and_field(
    offers_: list[Any], requests_: list[Any], field: str, where: str
) -> None:
    with pytest.raises(InvalidOrderError) as info:
        OrderBook.from_json(book_json(offers=offers_, requests=requests_))
    assert info.value.field == field
    assert info.value.order_id == where
    assert where in str(info.value)


def test_duplicate_ids_in_json() -> None:
    with pytest.raises(DuplicateOrderError) as info:
        OrderBook.from_json(book_json(offers=[GOOD_OFFER], requests=[{**GOOD_REQUEST, "id": "o1"}]))
    assert info.value.order_id == "o1"


def test_from_records_with_objects() -> None:
    book = OrderBook.from_records([offer("o1"), GOOD_OFFER | {"id": "o2"}], [request("r1")])
    assert sorted(o.id for o in book) == ["o1", "o2", "r1"]
    with pytest.raises(InvalidOrderError) as info:
        OrderBook.from_records([request("r1")])  # type: ignore[list-item]
    assert info.value.field == "offers"
    with pytest.raises(InvalidOrderError) as info:
        OrderBook.from_records([], [offer("o1")])  # type: ignore[list-item]
    assert info.value.field == "requests"


# -- pandas ---------------------------------------------------------------------------------
def test_from_dataframe() -> None:
    offers_df = pd.DataFrame(
        [
            {**GOOD_OFFER, "tags": ["soc2", "nvlink"], "submitted_at": 4},
            {**GOOD_OFFER, "id": "o2", "tags": None},
            {**GOOD_OFFER, "id": "o3", "tags": ("a",), "gpus": np.int64(3)},
            {k: v for k, v in GOOD_OFFER.items() if k != "tags"} | {"id": "o4"},
        ]
    ).astype({"submitted_at": "Int64"})
    assert offers_df["gpus"].dtype == np.int64
    requests_df = pd.DataFrame(
        [
            {"id": "r1", "tenant": "t", "gpus": 2, "max_price": 9, "gpu_models": ["H100"]},
            {
                "id": "r2",
                "tenant": "t",
                "gpus": 1,
                "max_price": 3,
                "regions": {"eu", "us"},
                "min_reputation": 0.5,
                "divisible": True,
            },
        ]
    )
    book = OrderBook.from_dataframe(offers_df, requests_df)
    by_id: dict[str, Any] = {o.id: o for o in book}
    assert by_id["o1"].tags == frozenset({"soc2", "nvlink"})
    assert by_id["o1"].submitted_at == 4
    assert type(by_id["o1"].submitted_at) is int
    assert by_id["o2"].tags == frozenset()  # None: the empty set
    assert by_id["o2"].submitted_at == 0  # <NA> in an Int64 column: the default
    assert by_id["o3"].tags == frozenset({"a"})
    assert type(by_id["o3"].gpus) is int
    assert by_id["o4"].tags == frozenset()  # NaN: the empty set
    r1, r2 = by_id["r1"], by_id["r2"]
    assert isinstance(r1, Request)
    assert isinstance(r2, Request)
    assert (r1.gpu_models, r1.regions, r1.min_reputation, r1.divisible) == (
        frozenset({"H100"}),
        frozenset(),
        0.0,
        False,
    )
    assert (r2.gpu_models, r2.regions, r2.min_reputation, r2.divisible) == (
        frozenset(),
        frozenset({"eu", "us"}),
        0.5,
        True,
    )
    assert_columns_match(book.snapshot())
    only_requests = OrderBook.from_dataframe(requests=requests_df)
    assert only_requests.n_offers == 0
    assert only_requests.n_requests == 2


@given(batch=order_lists())
def test_dataframe_round_trip(batch: list[Order]) -> None:
    book = OrderBook(batch)
    recs = book.to_records()
    again = OrderBook.from_dataframe(pd.DataFrame(recs["offers"]), pd.DataFrame(recs["requests"]))
    assert again.to_records() == recs


def test_dataframe_errors() -> None:
    missing_price = pd.DataFrame([GOOD_OFFER, {**GOOD_OFFER, "id": "o2", "price": None}])
    with pytest.raises(InvalidOrderError) as info:
        OrderBook.from_dataframe(missing_price.astype({"price": "Int64"}))
    assert (info.value.field, info.value.order_id) == ("price", "o2")
    with pytest.raises(InvalidOrderError) as info:
        OrderBook.from_dataframe(pd.DataFrame([{**GOOD_OFFER, "gpus": 0}]))
    assert (info.value.field, info.value.order_id) == ("gpus", "o1")
    with pytest.raises(InvalidOrderError) as info:
        OrderBook.from_dataframe(pd.DataFrame([{**GOOD_OFFER, "price": 2.5}]))
    assert info.value.field == "price"
    with pytest.raises(InvalidOrderError) as info:
        OrderBook.from_dataframe(pd.DataFrame([GOOD_OFFER]).assign(colour="red"))
    assert info.value.field == "colour"
    with pytest.raises(InvalidOrderError) as info:
        OrderBook.from_dataframe([GOOD_OFFER])
    assert info.value.field == "dataframe"


# -- stateful -------------------------------------------------------------------------------
AMENDABLE = {
    Offer: ["provider", "gpu_model", "gpus", "price", "region", "vram_gb", "tags", "submitted_at"],
    Request: [
        "tenant",
        "gpus",
        "max_price",
        "gpu_models",
        "regions",
        "min_vram_gb",
        "required_tags",
        "min_reputation",
        "duration_hours",
        "divisible",
        "submitted_at",
    ],
}
INVALID = {
    "provider": "",
    "tenant": " t",
    "gpu_model": 5,
    "region": None,
    "gpus": 0,
    "price": -1,
    "max_price": 1.5,
    "vram_gb": True,
    "min_vram_gb": -3,
    "tags": "soc2",
    "gpu_models": [1],
    "regions": ["ok", ""],
    "required_tags": None,
    "min_reputation": 1.5,
    "duration_hours": 0,
    "divisible": "no",
    "submitted_at": float("nan"),
}


class BookMachine(RuleBasedStateMachine):
    """Random adds, cancels and amends against a plain dict of id -> order."""

    ids = Bundle("ids")

    def __init__(self) -> None:
        super().__init__()
        self.book = OrderBook()
        self.model: dict[str, Order] = {}
        self.held: list[tuple[BookSnapshot, dict[str, np.ndarray], Any]] = []
        self.counter = 0

    def fresh(self) -> str:
        self.counter += 1
        return f"id{self.counter}"

    @initialize()
    def start(self) -> None:
        self.book = OrderBook()

    @rule(target=ids, data=st.data())
    def add(self, data: st.DataObject) -> str:
        o = data.draw(orders(self.fresh()))
        self.book.add(o)
        self.model[o.id] = o
        return o.id

    @rule(target=ids, data=st.data(), n=st.integers(0, 5), clash=st.booleans())
    def add_many(self, data: st.DataObject, n: int, clash: bool) -> MultipleResults[str]:
        batch = [data.draw(orders(self.fresh())) for _ in range(n)]
        if clash and (batch or self.model):
            pool = [o.id for o in batch] + sorted(self.model)
            taken = data.draw(st.sampled_from(pool))
            batch.insert(data.draw(st.integers(0, len(batch))), data.draw(orders(taken)))
            before = state(self.book)
            with pytest.raises(DuplicateOrderError):
                self.book.add_many(batch)
            assert_same_state(before, state(self.book))
            return multiple()
        self.book.add_many(batch)
        self.model.update((o.id, o) for o in batch)
        return multiple(*(o.id for o in batch))

    @rule(oid=ids, data=st.data())
    def add_duplicate(self, oid: str, data: st.DataObject) -> None:
        if oid not in self.model:
            return
        with pytest.raises(DuplicateOrderError):
            self.book.add(data.draw(orders(oid)))

    @rule(oid=consumes(ids))
    def cancel(self, oid: str) -> None:
        got = self.book.cancel(oid)
        assert got == self.model.pop(oid)

    @rule(oid=st.text(max_size=4))
    def cancel_unknown(self, oid: str) -> None:
        if oid in self.model:
            return
        with pytest.raises(UnknownOrderError):
            self.book.cancel(oid)

    @rule(oid=ids, data=st.data())
    def amend(self, oid: str, data: st.DataObject) -> None:
        old = self.model[oid]
        kind = type(old)
        fields = data.draw(st.lists(st.sampled_from(AMENDABLE[kind]), min_size=1, unique=True))
        template = data.draw(offers(oid) if kind is Offer else requests(oid))
        changes = {f: getattr(template, f) for f in fields}
        new = self.book.amend(oid, **changes)
        assert new == attrs.evolve(old, **changes)
        self.model[oid] = new

    @rule(oid=ids, data=st.data())
    def amend_invalid(self, oid: str, data: st.DataObject) -> None:
        kind = type(self.model[oid])
        field = data.draw(st.sampled_from(AMENDABLE[kind]))
        with pytest.raises(InvalidOrderError) as info:
            self.book.amend(oid, **{field: INVALID[field]})
        assert info.value.field == field

    @precondition(lambda self: len(self.held) < 4)
    @rule()
    def snapshot(self) -> None:
        s = self.book.snapshot()
        self.held.append((s, snapshot_arrays(s), s.to_records()))

    @rule()
    def check_columns(self) -> None:
        snap = self.book.snapshot()
        assert_columns_match(snap)
        assert snap.to_records() == expected_records(self.model.values())

    @invariant()
    def same_orders(self) -> None:
        # no snapshot here, so that runs of writes without one happen too
        assert len(self.book) == len(self.model)
        assert {o.id: o for o in self.book} == self.model
        assert self.book.n_offers == sum(isinstance(o, Offer) for o in self.model.values())

    def teardown(self) -> None:
        for s, arrays, records in self.held:
            assert_snapshot_is(s, arrays, records)
        self.check_columns()


TestBookMachine = BookMachine.TestCase
TestBookMachine.settings = settings(
    stateful_step_count=25, suppress_health_check=[HealthCheck.too_slow]
)


def test_format_1_books_still_load() -> None:
    """A book written by the format-1 writer (tests/fixtures/book_v1.json, by the code before
    format 2) loads and clears exactly as it did then."""
    from pathlib import Path

    import auction
    from auction.market import Market

    text = (Path(__file__).parent / "fixtures" / "book_v1.json").read_text()
    assert json.loads(text)["schema"] == SCHEMA == "auction.book/1"
    book = OrderBook.from_json(text)
    assert (book.n_offers, book.n_requests) == (182, 240)
    m = Market(book)
    assert (len(m.pairs()), m.n_classes, m.n_profiles) == (2254, 58, 134)  # as format 1 read
    result = auction.clear(book, "first-price")
    assert len(result.to_records()) == 135
    # written again, it is format 2, and reads back the same
    again = OrderBook.from_json(book.to_json())
    assert again.to_records() == book.to_records()
    assert json.loads(book.to_json())["version"] == VERSION
