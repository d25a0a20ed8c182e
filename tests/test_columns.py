"""Columnar ingest and output: `OrderBook.from_columns`, `BookSnapshot.to_columns`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auction.book import ListColumn, OrderBook
from auction.errors import DuplicateOrderError, InvalidOrderError
from auction.market import Market, Pairs
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
    def ids(m: Market, p: Pairs) -> list[tuple[str, str]]:
        return sorted(
            (str(m.snapshot.requests.id[r]), str(m.snapshot.offers.id[o]))
            for r in range(m.n_requests)
            for o in p.offers[p.indptr[r] : p.indptr[r + 1]].tolist()
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
                                  region="eu", vram_gb=80, tags=frozenset({"soc2"}), cpu_per_gpu=16)
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


# -- from_columns against from_records, in every input form ---------------------------------
#: Names: ASCII and not (accents, CJK, emoji), never valid-looking only by luck.
NAMES = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Zs", "Cc")),
                min_size=1, max_size=6).filter(lambda s: s == s.strip())
SET_FIELDS = {"offers": ("tags", "tenants", "exclude_tenants"),
              "requests": ("gpu_models", "regions", "required_tags", "providers",
                           "exclude_providers")}
NAME_FIELDS = {"offers": ("provider", "gpu_model", "region"), "requests": ("tenant",)}
#: (side, field) -> bad values: each must make both paths raise, naming the field and order.
BAD: dict[tuple[str, str], list[Any]] = {
    ("offers", "provider"): ["", " p", "p ", "a\0b", 5, None],
    ("offers", "gpu_model"): ["", "x\t"],
    ("offers", "region"): [" ", 3.5],
    ("offers", "gpus"): [0, -1, 1.5, True, 2**31],
    ("offers", "price"): [-1, 2.0],
    ("offers", "vram_gb"): [-2],
    ("offers", "cpu_per_gpu"): [-1],
    ("offers", "tags"): [[""], ["ok", " x"], ["a\0b"]],
    ("offers", "tenants"): [["t", ""]],
    ("requests", "tenant"): ["", "\u3000t", None],
    ("requests", "gpus"): [0, 2.5],
    ("requests", "max_price"): [-5],
    ("requests", "gpu_models"): [[" H100"]],
    ("requests", "regions"): [["", "us"]],
    ("requests", "required_tags"): [["x "]],
    ("requests", "providers"): [["p", "a\0b"]],
    ("requests", "min_reputation"): [1.5, -0.1],
    ("requests", "duration_hours"): [0],
    ("requests", "divisible"): [1],
}


@st.composite
def _sides(draw: st.DrawFn) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
    """Valid columns as Python lists (set-valued ones may hold None or empty lists)."""
    names = st.one_of(st.sampled_from(["p", "H100", "us-east", "soc2", "é", "區域", "🚀x"]),
                      NAMES)
    sets = st.one_of(st.none(), st.lists(names, max_size=3))
    n, m = draw(st.integers(0, 6)), draw(st.integers(0, 6))

    def col(strategy: st.SearchStrategy[Any], k: int) -> list[Any]:
        return draw(st.lists(strategy, min_size=k, max_size=k))

    ids = draw(st.lists(NAMES, min_size=n + m, max_size=n + m, unique=True))
    offers = {"id": ids[:n], "provider": col(names, n), "gpu_model": col(names, n),
              "gpus": col(st.integers(1, 16), n), "price": col(st.integers(0, 10**12), n),
              "region": col(names, n), "vram_gb": col(st.integers(0, 141), n),
              **{k: col(sets, n) for k in SET_FIELDS["offers"]},
              "cpu_per_gpu": col(st.integers(0, 64), n)}
    divisible = col(st.booleans(), m)
    requests = {"id": ids[n:], "tenant": col(names, m), "gpus": col(st.integers(1, 16), m),
                "max_price": col(st.integers(0, 10**12), m),
                **{k: col(sets, m) for k in SET_FIELDS["requests"]},
                "min_reputation": col(st.sampled_from([0.0, 0.5, 1.0]), m),
                "duration_hours": col(st.integers(1, 100), m),
                "divisible": divisible,
                "cluster": [not d and draw(st.booleans()) for d in divisible]}
    return offers, requests


def _records(cols: dict[str, list[Any]], side: str) -> list[dict[str, Any]]:
    n = len(cols["id"])
    return [{k: ([] if v[i] is None and k in SET_FIELDS[side] else v[i])
             for k, v in cols.items()} for i in range(n)]


def _form(cols: dict[str, list[Any]], side: str, form: str) -> Any:
    """The columns in one input form: Python lists (name columns as numpy str arrays when
    they fit one), `ListColumn`s, a pyarrow Table or a pandas DataFrame."""
    if form == "lists":
        out: dict[str, Any] = dict(cols)
        for k in ("id", *NAME_FIELDS[side]):
            if cols[k] and all(type(v) is str and "\0" not in v for v in cols[k]):
                out[k] = np.array(cols[k])
        return out
    if form == "ListColumn":
        out = dict(cols)
        for k in SET_FIELDS[side]:
            rows = [v or [] for v in cols[k]]
            offsets = np.cumsum([0, *map(len, rows)])
            flat = [x for r in rows for x in r]
            out[k] = ListColumn(offsets, np.array(flat, dtype=str) if flat
                                else np.zeros(0, dtype="<U1"))
        return out
    if form == "pandas":
        return pd.DataFrame(cols)
    return pa.table({k: pa.array(v, pa.list_(pa.string())) if k in SET_FIELDS[side]
                     else pa.array(v) for k, v in cols.items()})


def _outcome(load: Any) -> Any:
    """The book's records, or the error building it raised (type, field, order id)."""
    try:
        book = load()
    except (InvalidOrderError, DuplicateOrderError) as e:
        return type(e).__name__, e.field if isinstance(e, InvalidOrderError) else None, e.order_id
    return book.to_records()  # outside the try: a bad value let in would fail here


FORMS = ("lists", "ListColumn", "arrow", "pandas")


@given(sides=_sides(), form=st.sampled_from(FORMS))
@settings(max_examples=150, deadline=None)
def test_from_columns_equals_from_records_in_every_form(
    sides: tuple[dict[str, list[Any]], dict[str, list[Any]]], form: str
) -> None:
    offers, requests = sides
    want = OrderBook.from_records(_records(offers, "offers"), _records(requests, "requests"))
    got = OrderBook.from_columns(_form(offers, "offers", form),
                                 _form(requests, "requests", form))
    assert got.to_records() == want.to_records()
    assert len(got) == len(want)
    snap = got.snapshot()
    for side, table in (("offers", snap.offers), ("requests", snap.requests)):
        for k in SET_FIELDS[side]:  # each row's codes sorted and distinct, as the market reads
            cl = getattr(table, k)
            assert all(bool((np.diff(cl.row(i)) > 0).all()) for i in range(len(cl)))
    for i in [*offers["id"], *requests["id"]]:  # the id index, built on first use
        assert got.get(i) == want.get(i)


@given(sides=_sides(), form=st.sampled_from(FORMS), data=st.data())
@settings(max_examples=200, deadline=None)
def test_a_bad_value_or_duplicate_id_fails_both_paths_alike(
    sides: tuple[dict[str, list[Any]], dict[str, list[Any]]], form: str, data: st.DataObject
) -> None:
    cols = {"offers": sides[0], "requests": sides[1]}
    side = data.draw(st.sampled_from([s for s in cols if cols[s]["id"]]), label="side") \
        if cols["offers"]["id"] or cols["requests"]["id"] else None
    if side is None:
        return
    row = data.draw(st.integers(0, len(cols[side]["id"]) - 1), label="row")
    keys = [k for k in BAD if k[0] == side]
    if form != "lists":  # only string values fit a numpy str array or an Arrow string column
        keys = [k for k in keys if k[1] in SET_FIELDS[side] or k[1] in NAME_FIELDS[side]]
    field = data.draw(st.sampled_from([*(k[1] for k in keys), "id"]), label="field")
    if field == "id":  # a duplicate: an id of either side again
        everyone = [*cols["offers"]["id"], *cols["requests"]["id"]]
        value: Any = data.draw(st.sampled_from([i for i in everyone
                                                if i != cols[side]["id"][row]] or everyone))
    else:
        choices = BAD[side, field]
        if form != "lists":
            choices = [v for v in choices if isinstance(v, str | list) and "\0" not in str(v)]
            if not choices:
                return
        value = data.draw(st.sampled_from(choices), label="value")
    cols[side][field] = [*cols[side][field][:row], value, *cols[side][field][row + 1:]]
    if len(set(cols["offers"]["id"]) | set(cols["requests"]["id"])) == len(
            cols["offers"]["id"]) + len(cols["requests"]["id"]) and field == "id":
        return  # the only id: nothing to duplicate
    want = _outcome(lambda: OrderBook.from_records(_records(cols["offers"], "offers"),
                                                   _records(cols["requests"], "requests")))
    got = _outcome(lambda: OrderBook.from_columns(_form(cols["offers"], "offers", form),
                                                  _form(cols["requests"], "requests", form)))
    assert isinstance(want, tuple), "the bad value was accepted by the records path"
    assert got == want


def test_string_columns_are_exact_even_when_hashes_collide(monkeypatch: Any) -> None:
    """Every string hashed alike: the factorization falls back to comparing strings."""
    import auction.book as book_module

    monkeypatch.setattr(book_module, "_hash_str", lambda a: np.zeros(len(a), dtype=np.uint64))
    offers = {**GOOD_OFFERS, "id": np.array(["o1", "o2"]), "provider": np.array(["p", "q"]),
              "tags": ListColumn(np.array([0, 2, 3]), np.array(["b", "a", "b"]))}
    book = OrderBook.from_columns(offers)
    assert [(o.provider, sorted(o.tags)) for o in book.offers()] == [("p", ["a", "b"]),
                                                                    ("q", ["b"])]
    with pytest.raises(DuplicateOrderError):
        OrderBook.from_columns({**offers, "id": np.array(["o1", "o1"])})


def test_ids_of_different_widths_are_compared_by_value() -> None:
    with pytest.raises(DuplicateOrderError) as dup:
        OrderBook.from_columns({**GOOD_OFFERS, "id": np.array(["o1", "o2"])},
                               {**GOOD_REQUESTS, "id": np.array(["r100", "o2"])})
    assert dup.value.order_id == "o2"


def test_list_column_forms_and_bad_offsets() -> None:
    two_d = OrderBook.from_columns(
        GOOD_OFFERS, {**GOOD_REQUESTS, "regions": np.array([["us", "eu"], ["eu", "eu"]])})
    assert [sorted(r.regions) for r in two_d.requests()] == [["eu", "us"], ["eu"]]
    sliced = ListColumn(np.array([1, 2, 4]), np.array(["x", "a", "b", "c", "y"]))
    book = OrderBook.from_columns({**GOOD_OFFERS, "tags": sliced})
    assert [sorted(o.tags) for o in book.offers()] == [["a"], ["b", "c"]]
    for offsets in ([0, 2, 1], [0, 1, 9], [-1, 0, 1]):
        with pytest.raises(InvalidOrderError) as info:
            OrderBook.from_columns({**GOOD_OFFERS, "tags": ListColumn(
                np.array(offsets), np.array(["a", "b", "c"]))})
        assert info.value.field == "tags"
    arrow = pa.table({**{k: pa.array(v) for k, v in GOOD_OFFERS.items()},
                      "tags": pa.array([["a", None], []], pa.list_(pa.string()))})
    with pytest.raises(InvalidOrderError) as info:
        OrderBook.from_columns(arrow)
    assert (info.value.field, info.value.order_id, info.value.value) == ("tags", "o1", None)
