"""Eligibility: the market's sparse join against a brute-force oracle over every pair.

The oracle below is written from the rules in `auction.market`'s docstring, in plain Python
over the order objects; it shares no code with the market (nor with
`auction.testing.oracles`).
"""

from __future__ import annotations

import re
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import auction.market as market_module
from auction.book import OrderBook
from auction.market import Market
from auction.orders import (
    OFFER_BUILTINS,
    REQUEST_BUILTINS,
    Attributes,
    AttributeValue,
    Offer,
    Order,
    Request,
)

PROVIDERS = ("p0", "p1", "p2")
TENANTS = ("t0", "t1", "t2")
MODELS = ("H100", "A100")
REGIONS = ("us", "eu", "ap")
TAGS = ("soc2", "nvlink", "hipaa")


# -- constraint expressions: generated as trees, rendered to text, evaluated here ----------
Expr = tuple[Any, ...]
_DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)\.[0-9]+")


def _kind(value: Any) -> tuple[str, Any]:
    if isinstance(value, bool):
        return "bool", value
    if isinstance(value, int):
        return "num", Fraction(value)
    if isinstance(value, frozenset | set):
        return "set", value
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        return "num", Fraction(value)
    return "str", value


def _lit(value: Any) -> tuple[str, Any]:
    if isinstance(value, Decimal):
        return "num", Fraction(value)
    return _kind(value)


def _compare(have: Any, op: str, lit: Any) -> bool:
    hk, hv = _kind(have)
    lk, lv = _lit(lit)
    if hk == "set":
        if lk != "str" or op not in ("==", "!="):
            return False
        return (lv in hv) == (op == "==")
    if hk != lk:
        return False
    if hk == "bool" and op not in ("==", "!="):
        return False
    return bool({"==": hv == lv, "!=": hv != lv, "<": hv < lv, "<=": hv <= lv, ">": hv > lv,
                 ">=": hv >= lv}[op])


def _fields(order: Order) -> dict[str, Any]:
    builtins = OFFER_BUILTINS if isinstance(order, Offer) else REQUEST_BUILTINS
    return {**dict(order.attributes), **{f: getattr(order, f) for f in builtins}}


def evaluate(e: Expr, fields: dict[str, Any]) -> bool:
    """The documented semantics: a missing field or another kind makes an atom false."""
    op = e[0]
    if op == "not":
        return not evaluate(e[1], fields)
    if op == "and":
        return evaluate(e[1], fields) and evaluate(e[2], fields)
    if op == "or":
        return evaluate(e[1], fields) or evaluate(e[2], fields)
    if op == "has":
        v = fields.get(e[1])
        return v is not None and not (isinstance(v, frozenset) and not v)
    if e[1] not in fields:
        return False
    if op == "in":
        return any(_compare(fields[e[1]], "==", lit) for lit in e[2])
    return _compare(fields[e[1]], op, e[2])


def render(e: Expr) -> str:
    def lit(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | Decimal):
            return str(v)
        assert isinstance(v, str), v
        return "'" + v + "'"

    op = e[0]
    if op == "not":
        return f"not ({render(e[1])})"
    if op in ("and", "or"):
        return f"({render(e[1])}) {op} ({render(e[2])})"
    if op == "has":
        return f"has {e[1]}"
    if op == "in":
        return f"{e[1]} in ({', '.join(lit(v) for v in e[2])})"
    return f"{e[1]} {op} {lit(e[2])}"


# fields each side's expressions read, with literals of every kind (some mismatched)
OFFER_SIDE = {
    "tier": st.integers(0, 3), "cuda": st.sampled_from([Decimal("11.8"), Decimal("12.40")]),
    "zone": st.sampled_from(["a", "b", "zz"]), "ok": st.booleans(),
    "gpu_model": st.sampled_from(MODELS), "price": st.integers(0, 6),
    "gpus": st.integers(1, 4), "tags": st.sampled_from(TAGS),
    "provider": st.sampled_from(PROVIDERS), "region": st.sampled_from(REGIONS),
    "cpu_per_gpu": st.sampled_from([0, 8, 16]),
}
REQUEST_SIDE = {
    "team": st.sampled_from(["ml", "web"]), "prio": st.integers(0, 2), "gold": st.booleans(),
    "tenant": st.sampled_from(TENANTS), "max_price": st.integers(0, 7),
    "duration_hours": st.integers(1, 3), "divisible": st.booleans(),
    "gpu_models": st.sampled_from(MODELS), "required_tags": st.sampled_from(TAGS),
}
OPS = ("==", "!=", "<", "<=", ">", ">=")


def expressions(side: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[Expr]:
    names = st.sampled_from(sorted(side))
    atom = st.one_of(
        names.flatmap(lambda n: st.tuples(st.just("cmp"), st.just(n), st.sampled_from(OPS),
                                          st.one_of(side[n], st.sampled_from(["x", 1])))
                      ).map(lambda t: (t[2] if not isinstance(t[3], bool) or t[2] in ("==", "!=")
                                       else "==", t[1], t[3])),
        names.flatmap(lambda n: st.tuples(st.just("in"), st.just(n),
                                          st.lists(side[n], min_size=1, max_size=3))),
        names.map(lambda n: ("has", n)),
    )
    return st.recursive(
        atom,
        lambda inner: st.one_of(
            inner.map(lambda x: ("not", x)),
            st.tuples(st.sampled_from(["and", "or"]), inner, inner),
        ),
        max_leaves=4,
    )


def oracle_eligible(o: Offer, r: Request, rep: float) -> bool:
    """Every rule, one by one."""
    if not structural(o, r) or rep < r.min_reputation or o.price > r.max_price:
        return False
    return r.divisible or r.cluster or o.gpus >= r.gpus


def structural(o: Offer, r: Request) -> bool:
    """The rules that do not read price, size or reputation."""
    if r.gpu_models and o.gpu_model not in r.gpu_models:
        return False
    if r.regions and o.region not in r.regions:
        return False
    if o.vram_gb < r.min_vram_gb:
        return False
    for t in r.required_tags:
        if t not in o.tags:
            return False
    if r.providers and o.provider not in r.providers:
        return False
    if o.provider in r.exclude_providers:
        return False
    if o.tenants and r.tenant not in o.tenants:
        return False
    if r.tenant in o.exclude_tenants:
        return False
    if o.cpu_per_gpu < r.min_cpu_per_gpu:
        return False
    if o.ram_gb_per_gpu < r.min_ram_gb_per_gpu:
        return False
    if o.disk_gb_per_gpu < r.min_disk_gb_per_gpu:
        return False
    if r.constraints is not None and not evaluate(TREES[r.constraints], _fields(o)):
        return False
    return o.constraints is None or evaluate(TREES[o.constraints], _fields(r))


def oracle_pairs(market: Market) -> set[tuple[str, str]]:
    snap = market.snapshot
    out = set()
    for r in snap.request_list():
        for o in snap.offer_list():
            rep = market.reputation.get(o.provider, market.default_reputation)
            if oracle_eligible(o, r, rep):
                out.add((r.id, o.id))
    return out


def market_pairs(market: Market) -> set[tuple[str, str]]:
    snap = market.snapshot
    pairs = market.pairs()
    out = set()
    for row in range(market.n_requests):
        offers = pairs.offers[pairs.indptr[row] : pairs.indptr[row + 1]].tolist()
        ranks = [int(market.offer_rank[o]) for o in offers]
        assert ranks == sorted(ranks)  # rank order within a request
        for o in offers:
            out.add((snap.request(row).id, snap.offer(o).id))
    assert len(out) == len(pairs) == market.pair_count()
    return out


def check(market: Market) -> None:
    want = oracle_pairs(market)
    assert market_pairs(market) == want
    # the class structure tells the same story: every eligible pair's class is eligible for
    # the request's profile, and classes group offers the oracle cannot tell apart
    snap = market.snapshot
    offer_row = {snap.offer(i).id: i for i in range(market.n_offers)}
    request_row = {snap.request(j).id: j for j in range(market.n_requests)}
    for rid, oid in want:
        classes = market.eligible_classes(request_row[rid]).tolist()
        assert int(market.offer_class[offer_row[oid]]) in classes
    for j in range(market.n_requests):
        r = snap.request(j)
        for c in market.eligible_classes(j).tolist():
            for o in market.class_offers[market.class_indptr[c] : market.class_indptr[c + 1]]:
                assert structural(snap.offer(int(o)), r)


def some(names: tuple[str, ...], extra: str) -> st.SearchStrategy[frozenset[str]]:
    return st.one_of(st.just(frozenset()), st.frozensets(st.sampled_from((*names, extra)),
                                                         max_size=3))


#: rendered text -> tree, for the oracle (the market sees only the text)
TREES: dict[str, Expr] = {}


def _text(draw: st.DrawFn, side: dict[str, st.SearchStrategy[Any]]) -> str | None:
    if draw(st.integers(0, 2)) == 0:
        return None
    tree = draw(expressions(side))
    text = render(tree)
    TREES[text] = tree
    return text


@st.composite
def orders(draw: st.DrawFn) -> list[Order]:
    n_off = draw(st.integers(0, 8))
    n_req = draw(st.integers(0, 8))
    out: list[Order] = []
    offer_attrs: st.SearchStrategy[dict[str, AttributeValue]]
    offer_attrs = st.fixed_dictionaries({}, optional={
        "tier": st.integers(0, 3), "cuda": st.sampled_from(["11.8", "12.4", "12.40"]),
        "zone": st.one_of(st.sampled_from(["a", "b"]), st.just(7)), "ok": st.booleans()})
    request_attrs: st.SearchStrategy[dict[str, AttributeValue]]
    request_attrs = st.fixed_dictionaries({}, optional={
        "team": st.sampled_from(["ml", "web"]), "prio": st.integers(0, 2),
        "gold": st.one_of(st.booleans(), st.just("yes"))})
    for i in range(n_off):
        out.append(Offer(
            id=f"o{i}", provider=draw(st.sampled_from(PROVIDERS)),
            gpu_model=draw(st.sampled_from(MODELS)), gpus=draw(st.integers(1, 4)),
            price=draw(st.integers(0, 6)), region=draw(st.sampled_from(REGIONS)),
            vram_gb=draw(st.sampled_from((24, 80))),
            tags=draw(st.frozensets(st.sampled_from(TAGS))),
            submitted_at=draw(st.integers(0, 2)),
            tenants=draw(some(TENANTS, "t-x")), exclude_tenants=draw(some(TENANTS, "t-y")),
            cpu_per_gpu=draw(st.sampled_from((0, 8, 16))),
            ram_gb_per_gpu=draw(st.sampled_from((0, 64))),
            disk_gb_per_gpu=draw(st.sampled_from((0, 100, 500))),
            attributes=Attributes(draw(offer_attrs)), constraints=_text(draw, REQUEST_SIDE),
        ))
    for j in range(n_req):
        divisible = draw(st.booleans())
        out.append(Request(
            id=f"r{j}", tenant=draw(st.sampled_from(TENANTS)), gpus=draw(st.integers(1, 4)),
            max_price=draw(st.integers(0, 7)), gpu_models=draw(some(MODELS, "B200")),
            regions=draw(some(REGIONS, "mars")), min_vram_gb=draw(st.sampled_from((0, 24, 80))),
            required_tags=draw(some(TAGS, "nobody")),
            min_reputation=draw(st.sampled_from((0.0, 0.5, 1.0))),
            divisible=divisible, cluster=not divisible and draw(st.booleans()),
            submitted_at=draw(st.integers(0, 2)),
            providers=draw(some(PROVIDERS, "p-x")),
            exclude_providers=draw(some(PROVIDERS, "p-y")),
            min_cpu_per_gpu=draw(st.sampled_from((0, 0, 8, 32))),
            min_ram_gb_per_gpu=draw(st.sampled_from((0, 0, 64, 128))),
            min_disk_gb_per_gpu=draw(st.sampled_from((0, 0, 100, 1000))),
            attributes=Attributes(draw(request_attrs)), constraints=_text(draw, OFFER_SIDE),
        ))
    return draw(st.permutations(out))


@given(orders=orders(), scores=st.dictionaries(st.sampled_from(PROVIDERS),
                                               st.sampled_from((0.0, 0.5, 1.0))),
       default=st.sampled_from((0.0, 0.5, 1.0)), weight=st.sampled_from((0, 0, 2)))
@settings(max_examples=300)
def test_pairs_match_the_oracle(
    orders: list[Order], scores: dict[str, float], default: float, weight: int
) -> None:
    check(Market(OrderBook(orders), scores, default_reputation=default, quality_weight=weight))


@given(orders=orders(), block=st.integers(1, 9))
@settings(max_examples=50)
def test_tiny_blocks_give_the_same_pairs(orders: list[Order], block: int) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(market_module, "_BLOCK_PAIRS", block)
        mp.setattr(market_module, "_BLOCK_CANDIDATES", block)
        check(Market(OrderBook(orders), default_reputation=1.0))


@given(orders=orders(), block=st.integers(1, 9))
@settings(max_examples=100)
def test_join_kernel_numpy_join_and_reference_agree(orders: list[Order], block: int) -> None:
    """The compiled join, its plain-Python reference and the numpy join give the same
    profile -> class structure (and the pairs the oracle wants)."""
    import auction.kernels.eligibility as eligibility

    book = OrderBook(orders)
    got = []
    for kernel, python in ((True, False), (True, True), (False, False)):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(market_module, "_USE_KERNEL", kernel)
            mp.setattr(market_module, "_BLOCK_CANDIDATES", block)
            if python:
                mp.setattr(eligibility, "join_block", eligibility.join_block_reference)
            m = Market(book, default_reputation=1.0)
            check(m)
            got.append((m.profile_indptr.tolist(), m.profile_classes.tolist()))
    assert got[0] == got[1] == got[2]


def _offer(i: int, **kw: Any) -> Offer:
    base: dict[str, Any] = {"id": f"o{i}", "provider": "p", "gpu_model": "H100", "gpus": 1,
                            "price": 1, "region": "us", "vram_gb": 80}
    return Offer(**{**base, **kw})


def _request(j: int, **kw: Any) -> Request:
    base: dict[str, Any] = {"id": f"r{j}", "tenant": "t", "gpus": 1, "max_price": 10}
    return Request(**{**base, **kw})


@pytest.mark.parametrize(
    ("offer_kw", "request_kw", "eligible"),
    [
        ({}, {"providers": {"p"}}, True),
        ({}, {"providers": {"q"}}, False),
        ({}, {"exclude_providers": {"p"}}, False),
        ({}, {"exclude_providers": {"q"}}, True),
        ({"tenants": {"t"}}, {}, True),
        ({"tenants": {"u"}}, {}, False),
        ({"exclude_tenants": {"t"}}, {}, False),
        ({"exclude_tenants": {"u"}}, {}, True),
        ({"cpu_per_gpu": 16}, {"min_cpu_per_gpu": 16}, True),
        ({"cpu_per_gpu": 16}, {"min_cpu_per_gpu": 17}, False),
        ({"ram_gb_per_gpu": 64}, {"min_ram_gb_per_gpu": 65}, False),
        ({"disk_gb_per_gpu": 500}, {"min_disk_gb_per_gpu": 500}, True),
        ({}, {"min_disk_gb_per_gpu": 1}, False),
    ],
)
def test_each_new_rule(offer_kw: dict[str, Any], request_kw: dict[str, Any],
                       eligible: bool) -> None:
    m = Market(OrderBook([_offer(0, **offer_kw), _request(0, **request_kw)]))
    assert (m.pair_count() == 1) is eligible
    check(m)


def test_a_vocabulary_of_100k_names() -> None:
    """Requests choosing 3 of 100,000 regions: nothing grows with the vocabulary."""
    rng = np.random.default_rng(7)
    n_names = 100_000
    regions = [f"region-{i:06d}" for i in range(n_names)]
    tags = [f"tag-{i:06d}" for i in range(n_names)]
    hot = rng.choice(n_names, size=60, replace=False)  # offers sit in a few of them
    offers = [
        _offer(i, region=regions[int(hot[i % 60])], price=int(rng.integers(0, 10)),
               tags={tags[int(hot[(i * 7) % 60])]}, provider=f"p{i % 9}",
               cpu_per_gpu=int(rng.choice([4, 8])))
        for i in range(600)
    ]
    requests = [
        _request(
            j, regions={regions[int(x)] for x in rng.choice(hot, size=3, replace=False)},
            required_tags={tags[int(hot[j % 60])]} if j % 3 == 0 else set(),
            providers={f"p{j % 9}", f"p{(j + 1) % 9}"} if j % 4 == 0 else set(),
            min_cpu_per_gpu=8 if j % 5 == 0 else 0,
            max_price=int(rng.integers(0, 10)),
        )
        for j in range(300)
    ]
    # one request lists every region and every tag name: the vocabulary has 100,000 names
    requests.append(_request(300, regions=set(regions), max_price=10))
    requests.append(_request(301, exclude_providers={f"x{i}" for i in range(n_names)}))
    m = Market(OrderBook([*offers, *requests]))
    assert len(m.snapshot.regions) == n_names
    # memory: the market's arrays are O(orders + listed names), nothing x vocabulary
    assert m.nbytes < 64 * (len(offers) + len(requests)) + 16 * (2 * n_names)
    want = oracle_pairs(m)
    assert market_pairs(m) == want
    assert len(want) > 1000  # the big requests pair widely, the rest a few each


def test_constraint_errors_are_typed_and_name_the_order() -> None:
    from auction.errors import ConstraintSyntaxError, InvalidOrderError

    with pytest.raises(ConstraintSyntaxError) as info:
        _request(0, constraints="vram_gb >= 40 and and")
    assert "r0" in str(info.value)
    assert "position" in str(info.value)
    with pytest.raises(InvalidOrderError) as bad:
        _offer(0, attributes={"price": 3})  # a built-in field's name
    assert (bad.value.field, bad.value.order_id) == ("attributes", "o0")
    with pytest.raises(InvalidOrderError) as bad:
        _offer(0, attributes={"tier": 1.5})  # floats are not exact
    assert bad.value.field == "attributes[tier]"
    with pytest.raises(InvalidOrderError) as bad:
        _request(0, constraints=5)
    assert bad.value.field == "constraints"


def test_two_sided_constraints() -> None:
    offers = [
        _offer(0, attributes={"cuda": "12.4", "tier": 3}),
        _offer(1, attributes={"cuda": "11.8", "tier": 3}, constraints="team == 'ml'"),
        _offer(2, attributes={"tier": 1}, constraints="not has team"),
        _offer(3, price=5, constraints="tenant in ('a', 'b') and max_price >= 5"),
    ]
    requests = [
        _request(0, tenant="a", attributes={"team": "ml"}, constraints="cuda >= 11.8"),
        _request(1, tenant="b", constraints="tier >= 2 or price > 4"),
        _request(2, tenant="c", max_price=4),
    ]
    m = Market(OrderBook([*offers, *requests]))
    got = market_pairs(m)
    assert got == {("r0", "o0"), ("r0", "o1"), ("r1", "o0"), ("r1", "o3"),
                   ("r2", "o0"), ("r2", "o2")}
