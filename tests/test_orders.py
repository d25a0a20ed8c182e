"""Order value types: every invalid value is refused, naming the field and the value."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from typing import Any

import attrs
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from auction.errors import AuctionError, InvalidOrderError
from auction.money import MAX_MONEY
from auction.orders import MAX_COUNT, Attributes, Offer, Request

MAX_SEQ = 2**63 - 1

OFFER: dict[str, Any] = {
    "id": "o1",
    "provider": "p1",
    "gpu_model": "H100",
    "gpus": 8,
    "price": 2_500_000,
    "region": "us-east",
    "vram_gb": 80,
    "tags": frozenset({"soc2", "nvlink"}),
    "submitted_at": 3,
}
REQUEST: dict[str, Any] = {
    "id": "r1",
    "tenant": "t1",
    "gpus": 4,
    "max_price": 3_000_000,
    "gpu_models": frozenset({"H100", "A100"}),
    "regions": frozenset({"us-east"}),
    "min_vram_gb": 40,
    "required_tags": frozenset({"soc2"}),
    "min_reputation": 0.5,
    "duration_hours": 2,
    "divisible": False,
    "cluster": False,
    "submitted_at": 1,
}

# (class, field, kind, bounds) for every field of both order types
NAME, INT, SET, REP, BOOL = "name", "int", "set", "rep", "bool"
ATTRS, EXPR = "attributes", "constraints"  # validated by auction.constraints: own tests below
FIELDS: list[tuple[type[Offer] | type[Request], str, str, tuple[int, int]]] = [
    (Offer, "id", NAME, (0, 0)),
    (Offer, "provider", NAME, (0, 0)),
    (Offer, "gpu_model", NAME, (0, 0)),
    (Offer, "gpus", INT, (1, MAX_COUNT)),
    (Offer, "price", INT, (0, MAX_MONEY)),
    (Offer, "region", NAME, (0, 0)),
    (Offer, "vram_gb", INT, (0, MAX_COUNT)),
    (Offer, "tags", SET, (0, 0)),
    (Offer, "submitted_at", INT, (0, MAX_SEQ)),
    (Offer, "tenants", SET, (0, 0)),
    (Offer, "exclude_tenants", SET, (0, 0)),
    (Offer, "cpu_per_gpu", INT, (0, MAX_COUNT)),
    (Offer, "ram_gb_per_gpu", INT, (0, MAX_COUNT)),
    (Offer, "disk_gb_per_gpu", INT, (0, MAX_COUNT)),
    (Offer, "attributes", ATTRS, (0, 0)),
    (Offer, "constraints", EXPR, (0, 0)),
    (Request, "id", NAME, (0, 0)),
    (Request, "tenant", NAME, (0, 0)),
    (Request, "gpus", INT, (1, MAX_COUNT)),
    (Request, "max_price", INT, (0, MAX_MONEY)),
    (Request, "gpu_models", SET, (0, 0)),
    (Request, "regions", SET, (0, 0)),
    (Request, "min_vram_gb", INT, (0, MAX_COUNT)),
    (Request, "required_tags", SET, (0, 0)),
    (Request, "min_reputation", REP, (0, 0)),
    (Request, "duration_hours", INT, (1, MAX_COUNT)),
    (Request, "divisible", BOOL, (0, 0)),
    (Request, "cluster", BOOL, (0, 0)),
    (Request, "submitted_at", INT, (0, MAX_SEQ)),
    (Request, "providers", SET, (0, 0)),
    (Request, "exclude_providers", SET, (0, 0)),
    (Request, "min_cpu_per_gpu", INT, (0, MAX_COUNT)),
    (Request, "min_ram_gb_per_gpu", INT, (0, MAX_COUNT)),
    (Request, "min_disk_gb_per_gpu", INT, (0, MAX_COUNT)),
    (Request, "attributes", ATTRS, (0, 0)),
    (Request, "constraints", EXPR, (0, 0)),
]
#: fields whose invalid values the generic tests draw (the others have their own tests)
PLAIN_FIELDS = [f for f in FIELDS if f[2] not in (ATTRS, EXPR)]
V1_NAMES = {cls: set(base) for cls, base in ((Offer, OFFER), (Request, REQUEST))}
FIELD_IDS = [f"{c.__name__}.{f}" for c, f, _, _ in PLAIN_FIELDS]


def test_catalog_covers_every_field() -> None:
    for cls, base in ((Offer, OFFER), (Request, REQUEST)):
        names = [a.name for a in attrs.fields(cls)]
        assert sorted(n for n in names if n in V1_NAMES[cls]) == sorted(base)
        assert sorted(f for c, f, _, _ in FIELDS if c is cls) == sorted(names)


def base_of(cls: type[Offer] | type[Request]) -> dict[str, Any]:
    return dict(OFFER if cls is Offer else REQUEST)


# -- strategies for invalid values ---------------------------------------------------------
valid_names = st.text(min_size=1, max_size=12).filter(lambda s: s == s.strip() and "\0" not in s)
with_nul = st.tuples(valid_names, st.sampled_from(["\0", "\0\0"])).map("".join)
whitespace = st.text(alphabet=" \t\n\r\x0b\x0c\u00a0\u2003\u3000", min_size=1, max_size=4)
not_str = st.one_of(
    st.none(),
    st.integers(),
    st.floats(allow_nan=True),
    st.booleans(),
    st.binary(min_size=1, max_size=4),
    st.lists(valid_names, max_size=2),
    st.frozensets(valid_names, max_size=2),
)
invalid_names = st.one_of(
    st.just(""),
    with_nul,  # numpy string columns would drop the NULs: "a\0" would read as "a"
    whitespace,
    st.tuples(whitespace, st.text(max_size=6)).map("".join),
    st.tuples(st.text(max_size=6), whitespace).map("".join),
    not_str,
)
bad_members = st.one_of(
    st.just(""),
    with_nul,
    whitespace,
    st.tuples(whitespace, valid_names).map("".join),
    st.tuples(valid_names, whitespace).map("".join),
    st.none(),
    st.integers(),
    st.floats(allow_nan=True),
    st.booleans(),
    st.binary(min_size=1, max_size=3),
)
containers: list[Callable[[list[Any]], Any]] = [list, tuple, lambda xs: iter(list(xs))]


@st.composite
def sets_with_a_bad_member(draw: st.DrawFn) -> Any:
    good = draw(st.lists(valid_names, max_size=3))
    bad = draw(bad_members)
    at = draw(st.integers(0, len(good)))
    items = [*good[:at], bad, *good[at:]]
    make = draw(st.sampled_from(containers))
    try:
        return draw(st.sampled_from([make(items), set(items), frozenset(items)]))
    except TypeError:  # unhashable member
        return make(items)


invalid_sets = st.one_of(
    st.text(max_size=6),  # a bare string is not a set of strings
    st.binary(max_size=4),
    st.none(),
    st.integers(),
    st.floats(allow_nan=True),
    st.booleans(),
    sets_with_a_bad_member(),
)


def invalid_ints(lo: int, hi: int) -> st.SearchStrategy[Any]:
    out = [
        st.floats(allow_nan=True, allow_infinity=True),  # integral floats too: 2.0 is refused
        st.booleans(),
        st.integers(max_value=lo - 1),
        st.integers(min_value=hi + 1),
        st.integers(min_value=-(2**63), max_value=lo - 1).map(np.int64),
        st.integers(lo, min(hi, 10**6)).map(str),
        st.integers(lo, min(hi, 10**6)).map(np.float64),
        st.integers(lo, min(hi, 10**6)).map(Decimal),
        st.integers(lo, min(hi, 10**6)).map(Fraction),
        st.sampled_from([None, [1], 1 + 0j, np.bool_(True), np.bool_(False)]),
    ]
    if hi < 2**64 - 1:
        out.append(st.integers(hi + 1, 2**64 - 1).map(np.uint64))
    return st.one_of(out)


invalid_reputations = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).filter(lambda x: not 0.0 <= x <= 1.0),
    st.floats(min_value=1.0, exclude_min=True, allow_infinity=True).map(np.float64),
    st.integers().filter(lambda n: n not in (0, 1)),
    st.booleans(),
    st.sampled_from(
        [None, "0.5", 10**400, -(10**400), np.float64("nan"), 1 + 0j, Fraction(3, 2), [0.5]]
    ),
)
invalid_bools = st.one_of(
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=5),
    st.sampled_from([None, "True", "false", [True], (), 1.0]),
)


def invalid_values(kind: str, bounds: tuple[int, int]) -> st.SearchStrategy[Any]:
    return {
        NAME: invalid_names,
        INT: invalid_ints(*bounds) if kind == INT else st.nothing(),
        SET: invalid_sets,
        REP: invalid_reputations,
        BOOL: invalid_bools,
    }[kind]


def same(a: Any, b: Any) -> bool:
    """The very object (or, for a NaN rebuilt as a float, another NaN)."""
    nan = isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
    return a is b or nan


@pytest.mark.parametrize(("cls", "field", "kind", "bounds"), PLAIN_FIELDS, ids=FIELD_IDS)
@given(data=st.data())
def test_no_invalid_value_is_accepted(
    cls: type[Offer] | type[Request],
    field: str,
    kind: str,
    bounds: tuple[int, int],
    data: st.DataObject,
) -> None:
    value = data.draw(invalid_values(kind, bounds), label=field)
    kwargs = base_of(cls)
    kwargs[field] = value
    with pytest.raises(InvalidOrderError) as info:
        cls(**kwargs)
    err = info.value
    assert isinstance(err, ValueError)
    assert isinstance(err, AuctionError)
    assert err.field == field
    assert same(err.value, value)
    assert err.order_id == (None if field == "id" else kwargs["id"])
    assert f"invalid {field}=" in str(err)


@pytest.mark.parametrize(
    ("cls", "field", "value"),
    [
        (Offer, "gpus", 0),
        (Request, "gpus", 0),
        (Request, "duration_hours", 0),
        (Offer, "price", -1),
        (Request, "max_price", -1),
        (Offer, "price", MAX_MONEY + 1),
        (Offer, "gpus", MAX_COUNT + 1),
        (Offer, "price", float("nan")),
        (Offer, "price", float("inf")),
        (Offer, "price", 2.0),
        (Offer, "gpus", True),
        (Offer, "id", ""),
        (Offer, "id", " o1"),
        (Offer, "id", "o1\0"),
        (Offer, "provider", "p\0q"),
        (Request, "required_tags", {"soc2\0"}),
        (Request, "tenant", "t1 "),
        (Offer, "tags", "soc2"),
        (Request, "gpu_models", "H100"),
        (Request, "regions", {"us-east", 3}),
        (Request, "required_tags", [""]),
        (Request, "min_reputation", 1.01),
        (Request, "min_reputation", -0.01),
        (Request, "min_reputation", float("nan")),
        (Request, "min_reputation", True),
        (Request, "min_reputation", 10**400),
        (Request, "divisible", 1),
        (Request, "divisible", "yes"),
        (Request, "cluster", 1),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else repr(v)[:24],
)
def test_named_invalid_values(cls: type[Offer] | type[Request], field: str, value: Any) -> None:
    kwargs = base_of(cls)
    kwargs[field] = value
    with pytest.raises(InvalidOrderError) as info:
        cls(**kwargs)
    assert info.value.field == field
    assert same(info.value.value, value)


# -- valid values ---------------------------------------------------------------------------
def valid_ints(lo: int, hi: int) -> st.SearchStrategy[Any]:
    def variants(v: int) -> st.SearchStrategy[Any]:
        forms: list[Any] = [v, np.int64(v), np.uint64(v)]
        if v < 2**31:
            forms += [np.int32(v)]
        if v < 2**15:
            forms += [np.int16(v)]
        return st.sampled_from(forms)

    edges = st.sampled_from(sorted({lo, lo + 1, hi - 1, hi}))
    return st.one_of(edges, st.integers(lo, hi)).flatmap(variants)


SET_FORMS: dict[str, Callable[[list[str]], Any]] = {
    "list": list,
    "tuple": tuple,
    "set": set,
    "frozenset": frozenset,
    "iterator": lambda xs: iter(list(xs)),
    "generator": lambda xs: (x for x in xs),
    "duplicates": lambda xs: xs + xs,
    "array": lambda xs: np.array(xs, dtype=object),
    "numpy strings": lambda xs: [np.str_(x) for x in xs],
}


@st.composite
def valid_sets(draw: st.DrawFn) -> tuple[Any, frozenset[str]]:
    """A set-valued field in some iterable form, with the frozenset it must become."""
    items = draw(st.lists(valid_names, max_size=4))
    form = draw(st.sampled_from(sorted(SET_FORMS)))
    return SET_FORMS[form](items), frozenset(items)


valid_reputations = st.one_of(
    st.floats(0.0, 1.0),
    st.sampled_from([0, 1, np.float64(0.25), np.float32(0.5), Fraction(1, 3), np.int64(1)]),
)


def valid_values(kind: str, bounds: tuple[int, int]) -> st.SearchStrategy[Any]:
    if kind == NAME:
        return st.one_of(valid_names, valid_names.map(np.str_))
    if kind == INT:
        return valid_ints(*bounds)
    if kind == SET:
        return valid_sets()
    if kind == REP:
        return valid_reputations
    if kind == ATTRS:
        return st.dictionaries(
            st.sampled_from(["cpu.arch", "tier", "audited_by", "x1"]),
            st.one_of(st.integers(-5, 5), st.booleans(), st.sampled_from(["a", "b c", "2.5"])),
            max_size=3,
        )
    if kind == EXPR:
        return st.none()
    return st.booleans()


def expected_normal(kind: str, value: Any) -> Any:
    if kind == INT:
        return int(value)
    if kind == REP:
        return float(value)
    if kind == NAME:
        return str(value)
    return value


@pytest.mark.parametrize("cls", [Offer, Request])
@given(data=st.data())
def test_valid_values_are_accepted_and_normalized(
    cls: type[Offer] | type[Request], data: st.DataObject
) -> None:
    kwargs: dict[str, Any] = {}
    expected: dict[str, Any] = {}
    for c, field, kind, bounds in FIELDS:
        if c is not cls:
            continue
        value = data.draw(valid_values(kind, bounds), label=field)
        if field == "cluster" and kwargs["divisible"]:
            value = False  # a divisible request cannot be a cluster request
        if kind == SET:
            value, expected[field] = value
        else:
            expected[field] = expected_normal(kind, value)
        kwargs[field] = value
    order = cls(**kwargs)
    for c, field, kind, _ in FIELDS:
        if c is not cls:
            continue
        got = getattr(order, field)
        assert got == expected[field], field
        want_type: type = {INT: int, SET: frozenset, REP: float, BOOL: bool, NAME: str,
                           ATTRS: Attributes, EXPR: type(None)}[kind]
        assert type(got) is want_type, (field, type(got))
        if kind == SET:
            assert all(type(x) is str for x in getattr(order, field))
    # records: set fields become sorted lists, and the record round-trips (also through JSON);
    # fields added by format 2 appear only when set
    record = order.to_record()
    assert list(record) == [
        a.name for a in attrs.fields(cls) if a.name in V1_NAMES[cls] or getattr(order, a.name)
    ]
    for name in cls._set_fields:
        assert record.get(name, []) == sorted(getattr(order, name))
    assert cls.from_record(record) == order
    assert cls.from_record(json.loads(json.dumps(record))) == order
    assert hash(cls.from_record(record)) == hash(order)


def test_defaults() -> None:
    o = Offer(id="o", provider="p", gpu_model="m", gpus=1, price=0, region="r", vram_gb=0)
    assert (o.tenants, o.exclude_tenants) == (frozenset(), frozenset())
    assert (o.cpu_per_gpu, o.ram_gb_per_gpu, o.disk_gb_per_gpu) == (0, 0, 0)
    assert (o.attributes, o.constraints) == (Attributes(), None)
    q = Request(id="r", tenant="t", gpus=1, max_price=0)
    assert (q.providers, q.exclude_providers) == (frozenset(), frozenset())
    assert (q.min_cpu_per_gpu, q.min_ram_gb_per_gpu, q.min_disk_gb_per_gpu) == (0, 0, 0)
    assert (q.attributes, q.constraints) == (Attributes(), None)
    assert o.tags == frozenset()
    assert o.submitted_at == 0
    r = Request(id="r", tenant="t", gpus=1, max_price=0)
    assert (r.gpu_models, r.regions, r.required_tags) == (frozenset(),) * 3
    assert r.min_vram_gb == 0
    assert r.min_reputation == 0.0
    assert type(r.min_reputation) is float
    assert r.duration_hours == 1
    assert r.divisible is False
    assert r.submitted_at == 0


def test_orders_are_frozen_and_hashable() -> None:
    o = Offer(**OFFER)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        o.price = 1  # type: ignore[misc]
    r = Request(**REQUEST)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        r.gpus = 1  # type: ignore[misc]
    assert len({o, Offer(**OFFER), r}) == 2
    with pytest.raises(TypeError):
        Offer("o1", "p1", "H100", 1, 1, "r", 1)  # type: ignore[call-arg]  # keyword-only


def test_attrs_evolve_revalidates() -> None:
    o = Offer(**OFFER)
    with pytest.raises(InvalidOrderError) as info:
        attrs.evolve(o, gpus=0)
    assert info.value.field == "gpus"
    assert attrs.evolve(o, tags=["a"]).tags == frozenset({"a"})  # type: ignore[arg-type]


# -- from_record ----------------------------------------------------------------------------
def records(cls: type[Offer] | type[Request]) -> dict[str, Any]:
    return cls(**base_of(cls)).to_record()


@pytest.mark.parametrize("cls", [Offer, Request])
def test_from_record_unknown_key(cls: type[Offer] | type[Request]) -> None:
    rec = records(cls)
    rec["colour"] = "blue"
    with pytest.raises(InvalidOrderError) as info:
        cls.from_record(rec)
    assert info.value.field == "colour"
    assert info.value.value == "blue"
    assert info.value.order_id == rec["id"]


@pytest.mark.parametrize("cls", [Offer, Request])
def test_from_record_non_string_key(cls: type[Offer] | type[Request]) -> None:
    rec: dict[Any, Any] = records(cls)
    rec[7] = 1
    with pytest.raises(InvalidOrderError) as info:
        cls.from_record(rec)
    assert info.value.field == "7"


@pytest.mark.parametrize(
    ("cls", "field"),
    [
        (c, a.name)
        for c in (Offer, Request)
        for a in attrs.fields(c)
        if a.default is attrs.NOTHING
    ],
)
def test_from_record_missing_required_field(cls: type[Offer] | type[Request], field: str) -> None:
    rec = records(cls)
    del rec[field]
    with pytest.raises(InvalidOrderError) as info:
        cls.from_record(rec)
    assert info.value.field == field
    assert info.value.order_id == rec.get("id")


@pytest.mark.parametrize("cls", [Offer, Request])
def test_from_record_optional_fields_may_be_missing(cls: type[Offer] | type[Request]) -> None:
    rec = records(cls)
    for a in attrs.fields(cls):
        if a.default is not attrs.NOTHING:
            rec.pop(a.name, None)
    order = cls.from_record(rec)
    for a in attrs.fields(cls):
        if isinstance(a.default, attrs.Factory):  # type: ignore[arg-type]
            assert getattr(order, a.name) == a.default.factory()
        elif a.default is not attrs.NOTHING:
            assert getattr(order, a.name) == a.default


@pytest.mark.parametrize("record", [None, [("id", "o1")], "o1", 3])
def test_from_record_needs_a_mapping(record: Any) -> None:
    with pytest.raises(InvalidOrderError) as info:
        Offer.from_record(record)
    assert info.value.field == "record"


@pytest.mark.parametrize("cls", [Offer, Request])
@given(data=st.data())
def test_from_record_invalid_value_names_field(
    cls: type[Offer] | type[Request], data: st.DataObject
) -> None:
    field, kind, bounds = data.draw(
        st.sampled_from([(f, k, b) for c, f, k, b in PLAIN_FIELDS if c is cls and f != "id"])
    )
    rec = records(cls)
    rec[field] = data.draw(invalid_values(kind, bounds))
    with pytest.raises(InvalidOrderError) as info:
        cls.from_record(rec)
    assert info.value.field == field
    assert info.value.order_id == rec["id"]


def test_cluster_request_cannot_be_divisible() -> None:
    with pytest.raises(InvalidOrderError) as info:
        Request(**{**REQUEST, "cluster": True, "divisible": True})
    assert info.value.field == "cluster"
    assert info.value.order_id == "r1"
    assert Request(**{**REQUEST, "cluster": True}).cluster is True


@pytest.mark.parametrize("drop", [("price",), ("price", "region"), ("tenant",)])
def test_book_json_with_a_missing_field_names_it(drop: tuple[str, ...]) -> None:
    """`OrderBook.from_json` with required fields missing raises the typed error naming the
    first missing field, and no constructor message leaks into it."""
    from auction.book import OrderBook

    offer = {"id": "o1", "provider": "p", "gpu_model": "H100", "gpus": 1, "price": 5,
             "region": "us", "vram_gb": 80}
    request = {"id": "r1", "tenant": "t", "gpus": 1, "max_price": 9}
    offers = [{k: v for k, v in offer.items() if k not in drop}]
    requests = [{k: v for k, v in request.items() if k not in drop}]
    text = json.dumps({"format": "auction.book", "version": 2, "offers": offers,
                       "requests": requests})
    with pytest.raises(InvalidOrderError) as info:
        OrderBook.from_json(text)
    err = info.value
    assert isinstance(err, AuctionError)
    assert err.field == drop[0]
    assert err.order_id == ("r1" if drop == ("tenant",) else "o1")
    assert "__init__" not in str(err)
    assert "is required" in str(err)
    if len(drop) > 1:
        assert repr(drop[1]) in str(err)
