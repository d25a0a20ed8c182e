"""Market: eligibility and surplus against a brute-force all-pairs check on the order objects."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import auction.market as market_module
from auction.book import OrderBook
from auction.errors import InvalidOrderError
from auction.market import Market, Pairs
from auction.money import MAX_MONEY
from auction.orders import MAX_COUNT, Offer, Order, Request
from auction.testing.oracles import constraints_hold, is_eligible
from auction.testing.strategies import markets

PROVIDERS = ("p0", "p1", "p2", "p3")
MODELS = ("H100", "A100", "RTX4090")
REGIONS = ("us-east", "eu-west")
TAGS = ("soc2", "nvlink", "hipaa")
SCORES = (0.0, 0.5, 0.9, 1.0)
FILLER = 70  # names per filler vocabulary: more than 64, so bitsets take two words


def some(names: tuple[str, ...], extra: str) -> st.SearchStrategy[frozenset[str]]:
    return st.frozensets(st.sampled_from((*names, extra)), max_size=3)


def offer_strategy(oid: str) -> st.SearchStrategy[Offer]:
    return st.builds(
        Offer,
        id=st.just(oid),
        provider=st.sampled_from(PROVIDERS),
        gpu_model=st.sampled_from(MODELS),
        gpus=st.integers(1, 6),
        price=st.one_of(st.integers(0, 10), st.just(MAX_MONEY)),
        region=st.sampled_from(REGIONS),
        vram_gb=st.sampled_from((24, 40, 80, MAX_COUNT)),
        tags=st.frozensets(st.sampled_from(TAGS)),
        submitted_at=st.one_of(st.integers(0, 3), st.just(2**63 - 1)),
    )


def request_strategy(rid: str) -> st.SearchStrategy[Request]:
    return st.builds(
        Request,
        id=st.just(rid),
        tenant=st.sampled_from(("t0", "t1")),
        gpus=st.integers(1, 6),
        max_price=st.one_of(st.integers(0, 12), st.just(MAX_MONEY)),
        gpu_models=some(MODELS, "B200"),
        regions=some(REGIONS, "mars"),
        min_vram_gb=st.sampled_from((0, 24, 40, 80, 96)),
        required_tags=some(TAGS, "audited-by:nobody"),
        min_reputation=st.sampled_from(SCORES),
        divisible=st.booleans(),
        submitted_at=st.integers(0, 3),
    )


FILLER_OFFER = Offer(
    id="filler-offer",
    provider="p0",
    gpu_model="filler-model",
    gpus=1,
    price=1000,
    region="filler-region",
    vram_gb=1,
    tags=frozenset(f"ftag{i}" for i in range(FILLER)),
)
FILLER_REQUEST = Request(
    id="filler-request",
    tenant="t0",
    gpus=1,
    max_price=0,
    gpu_models=frozenset(f"fmodel{i}" for i in range(FILLER)),
    regions=frozenset(f"fregion{i}" for i in range(FILLER)),
)


@st.composite
def order_sets(draw: st.DrawFn, max_offers: int = 10, max_requests: int = 10) -> list[Order]:
    n_off = draw(st.integers(0, max_offers))
    n_req = draw(st.integers(0, max_requests))
    numbers = draw(st.permutations(range(n_off + n_req)))  # ids unrelated to add order
    orders: list[Order] = [draw(offer_strategy(f"o{numbers[i]}")) for i in range(n_off)]
    orders += [draw(request_strategy(f"r{numbers[n_off + i]}")) for i in range(n_req)]
    if draw(st.booleans()):  # names beyond the first bitset word
        orders += [FILLER_OFFER, FILLER_REQUEST]
    return draw(st.permutations(orders))


@st.composite
def reputation_maps(draw: st.DrawFn) -> tuple[dict[str, float] | None, float]:
    default = draw(st.sampled_from(SCORES))
    if not draw(st.booleans()):
        return None, default
    scored = draw(st.lists(st.sampled_from(PROVIDERS), unique=True))
    return {p: draw(st.sampled_from(SCORES)) for p in scored}, default


# -- the brute-force check --------------------------------------------------------------------
def offer_key(o: Offer) -> tuple[int, int, str]:
    return (o.price, o.submitted_at, o.id)


def structurally_eligible(o: Offer, r: Request) -> bool:
    """The class-level part of eligibility: model, region, VRAM, tags, provider and tenant
    lists, node resources."""
    return (
        (not r.gpu_models or o.gpu_model in r.gpu_models)
        and (not r.regions or o.region in r.regions)
        and o.vram_gb >= r.min_vram_gb
        and r.required_tags <= o.tags
        and (not r.providers or o.provider in r.providers)
        and o.provider not in r.exclude_providers
        and (not o.tenants or r.tenant in o.tenants)
        and r.tenant not in o.exclude_tenants
        and o.cpu_per_gpu >= r.min_cpu_per_gpu
        and o.ram_gb_per_gpu >= r.min_ram_gb_per_gpu
        and o.disk_gb_per_gpu >= r.min_disk_gb_per_gpu
        and constraints_hold(o, r)
    )


def uses_v2(offers: list[Offer], requests: list[Request]) -> bool:
    """Whether some order sets a list or resource field (classes may then split further)."""
    return any(o.tenants or o.exclude_tenants or o.constraints for o in offers) or any(
        r.providers or r.exclude_providers or r.min_cpu_per_gpu or r.min_ram_gb_per_gpu
        or r.min_disk_gb_per_gpu or r.constraints for r in requests
    )


def check_market(m: Market) -> None:
    snap = m.snapshot
    offers, requests = snap.offer_list(), snap.request_list()
    n_off, n_req = len(offers), len(requests)
    assert (m.n_offers, m.n_requests) == (n_off, n_req)

    def rep(o: Offer) -> float:
        return m.reputation.get(o.provider, m.default_reputation)

    # ranks
    by_rank = sorted(range(n_off), key=lambda i: offer_key(offers[i]))
    assert m.offer_order.tolist() == by_rank
    assert m.offer_rank[m.offer_order].tolist() == list(range(n_off))
    by_priority = sorted(range(n_req), key=lambda i: (requests[i].submitted_at, requests[i].id))
    assert m.request_order.tolist() == by_priority
    assert m.request_rank[m.request_order].tolist() == list(range(n_req))
    assert m.offer_reputation.tolist() == [rep(o) for o in offers]

    # offer classes: a partition of the offers into (model, region, VRAM, tags) groups, split
    # further by provider, tenant lists or resources when some order uses them
    assert len(m.class_indptr) == m.n_classes + 1
    assert m.class_indptr[0] == 0
    assert sorted(m.class_offers.tolist()) == list(range(n_off))
    keys = set()
    for c in range(m.n_classes):
        members = m.class_offers[m.class_indptr[c] : m.class_indptr[c + 1]].tolist()
        assert members, "empty class"
        assert members == sorted(members, key=lambda i: offer_key(offers[i]))
        assert all(m.offer_class[i] == c for i in members)
        key = {
            (offers[i].gpu_model, offers[i].region, offers[i].vram_gb, offers[i].tags)
            for i in members
        }
        assert len(key) == 1
        ((model, region, vram, tags),) = key
        keys.add((model, region, vram, tags))
        assert snap.models[m.class_gpu_model[c]] == model
        assert snap.regions[m.class_region[c]] == region
        assert m.class_vram_gb[c] == vram
        full = {(o.provider, o.tenants, o.exclude_tenants, o.cpu_per_gpu, o.ram_gb_per_gpu,
                 o.disk_gb_per_gpu) for o in (offers[i] for i in members)}
        if len(full) > 1:  # the class ignores these: then no request reads them
            assert not uses_v2(offers, requests) or all(
                len({structurally_eligible(offers[i], q) for i in members}) == 1
                for q in requests
            )
    v2 = uses_v2(offers, requests)
    assert len(keys) == m.n_classes if not v2 else len(keys) <= m.n_classes

    # request profiles: equal constraints share a profile, different ones do not
    profile_of: dict[Any, int] = {}
    for i, q in enumerate(requests):
        k = (q.gpu_models, q.regions, q.min_vram_gb, q.required_tags)
        if not v2:
            assert profile_of.setdefault(k, int(m.request_profile[i])) == m.request_profile[i]
        else:  # split further by what the lists, resources and expressions read
            profile_of.setdefault((*k, int(m.request_profile[i])), int(m.request_profile[i]))
    assert len(set(profile_of.values())) == m.n_profiles
    if not v2:
        assert len(profile_of) == m.n_profiles
    for p in range(m.n_profiles):  # a profile's requests are alike to every offer
        same = [q for i, q in enumerate(requests) if m.request_profile[i] == p]
        for o in offers:
            assert len({structurally_eligible(o, q) for q in same}) == 1

    # pairs: exactly the eligible ones, in offer rank order, with their surplus
    pairs = m.pairs()
    assert isinstance(pairs, Pairs)
    assert m.pairs() is pairs
    assert pairs.indptr.tolist()[0] == 0
    assert len(pairs.indptr) == n_req + 1
    for arr in (pairs.indptr, pairs.offers, pairs.surplus):
        assert arr.dtype == np.int64
        assert not arr.flags.writeable
    total = 0
    for r, req in enumerate(requests):
        want = sorted(
            (i for i, o in enumerate(offers) if is_eligible(o, req, rep(o))),
            key=lambda i: offer_key(offers[i]),
        )
        lo, hi = pairs.indptr[r], pairs.indptr[r + 1]
        assert pairs.offers[lo:hi].tolist() == want, (req, [offers[i] for i in want])
        assert pairs.surplus[lo:hi].tolist() == [req.max_price - offers[i].price for i in want]
        total += len(want)
        # classes: the eligible ones are exactly those whose members suit the request
        eligible = set(m.eligible_classes(r).tolist())
        for c in range(m.n_classes):
            first = int(m.class_offers[m.class_indptr[c]])
            assert (c in eligible) == structurally_eligible(offers[first], req)
    assert len(pairs) == total
    assert m.pair_count() == total
    assert pairs.nbytes == 8 * (n_req + 1 + 2 * total)


@given(orders=order_sets(), reputation=reputation_maps())
def test_eligibility_matches_brute_force(
    orders: list[Order], reputation: tuple[dict[str, float] | None, float]
) -> None:
    scores, default = reputation
    book = OrderBook(orders)
    market = Market(book, scores, default_reputation=default)
    check_market(market)
    # a market from the snapshot is the same market
    again = Market(book.snapshot(), scores, default_reputation=default)
    assert again.pairs().offers.tolist() == market.pairs().offers.tolist()


@given(market=markets())
def test_eligibility_on_library_strategies(market: Market) -> None:
    check_market(market)


def ids_view(m: Market) -> dict[str, Any]:
    snap = m.snapshot
    pairs = m.pairs()
    return {
        "offer_order": [snap.offer(int(i)).id for i in m.offer_order],
        "request_order": [snap.request(int(i)).id for i in m.request_order],
        "pairs": {
            snap.request(r).id: [
                (snap.offer(int(o)).id, int(s))
                for o, s in zip(
                    pairs.offers[pairs.indptr[r] : pairs.indptr[r + 1]],
                    pairs.surplus[pairs.indptr[r] : pairs.indptr[r + 1]],
                    strict=True,
                )
            ]
            for r in range(m.n_requests)
        },
        "sizes": (m.n_classes, m.n_profiles, m.pair_count()),
        "reputation": sorted(
            (snap.offer(i).id, float(x)) for i, x in enumerate(m.offer_reputation)
        ),
    }


@given(orders=order_sets(), reputation=reputation_maps(), data=st.data())
def test_result_does_not_depend_on_add_order(
    orders: list[Order], reputation: tuple[dict[str, float] | None, float], data: st.DataObject
) -> None:
    scores, default = reputation
    shuffled = data.draw(st.permutations(orders))
    a = Market(OrderBook(orders), scores, default_reputation=default)
    b = Market(OrderBook(shuffled), scores, default_reputation=default)
    assert ids_view(a) == ids_view(b)


def test_ties_are_broken_by_submitted_at_then_id() -> None:
    def o(oid: str, price: int, seq: int) -> Offer:
        return Offer(
            id=oid, provider="p", gpu_model="H100", gpus=1, price=price, region="x", vram_gb=1,
            submitted_at=seq,
        )

    book = OrderBook(
        [
            o("b", 5, 1),
            o("a", 5, 1),
            o("c", 5, 0),
            o("d", 4, 9),
            o("a2", 5, 1),
            Request(id="r2", tenant="t", gpus=1, max_price=9, submitted_at=0),
            Request(id="r1", tenant="t", gpus=1, max_price=9, submitted_at=0),
            Request(id="r0", tenant="t", gpus=1, max_price=9, submitted_at=1),
        ]
    )
    m = Market(book)
    snap = m.snapshot
    assert [snap.offer(int(i)).id for i in m.offer_order] == ["d", "c", "a", "a2", "b"]
    assert [snap.request(int(i)).id for i in m.request_order] == ["r1", "r2", "r0"]
    pairs = m.pairs()
    first = [snap.offer(int(i)).id for i in pairs.offers[pairs.indptr[0] : pairs.indptr[1]]]
    assert first == ["d", "c", "a", "a2", "b"]
    assert pairs.surplus[: pairs.indptr[1]].tolist() == [5, 4, 4, 4, 4]


# -- reputation -----------------------------------------------------------------------------
def small_book() -> OrderBook:
    return OrderBook(
        [
            Offer(id="o0", provider="p0", gpu_model="H", gpus=2, price=1, region="x", vram_gb=80),
            Offer(id="o1", provider="p1", gpu_model="H", gpus=2, price=2, region="x", vram_gb=80),
            Request(id="r0", tenant="t", gpus=1, max_price=5, min_reputation=0.5),
            Request(id="r1", tenant="t", gpus=1, max_price=5),
        ]
    )


@pytest.mark.parametrize(
    "score",
    [float("nan"), float("inf"), -0.1, 1.5, 2, -1, True, False, "0.5", None, 10**400, [0.5],
     np.float64("nan"), np.bool_(True)],
    ids=repr,
)
def test_invalid_reputation(score: Any) -> None:
    with pytest.raises(InvalidOrderError) as info:
        Market(small_book(), {"p0": score})
    assert info.value.field == "reputation['p0']"
    assert info.value.value is score
    with pytest.raises(InvalidOrderError) as info:
        Market(small_book(), default_reputation=score)
    assert info.value.field == "default_reputation"
    assert info.value.value is score


@pytest.mark.parametrize("scores", [[("p0", 0.5)], "p0", 0.5])
def test_reputation_must_be_a_mapping(scores: Any) -> None:
    with pytest.raises(InvalidOrderError) as info:
        Market(small_book(), scores)
    assert info.value.field == "reputation"


@pytest.mark.parametrize(
    "score", [0, 1, 0.0, 1.0, 0.5, np.float64(0.75), np.int64(1), np.float32(0.5)]
)
def test_valid_reputation(score: Any) -> None:
    m = Market(small_book(), {"p0": score})
    assert m.reputation == {"p0": float(score)}
    assert type(m.reputation["p0"]) is float
    assert m.offer_reputation.tolist() == [float(score), 0.0]


def test_unscored_providers_get_the_default() -> None:
    book = small_book()

    def served_by(m: Market) -> list[str]:
        pairs, snap = m.pairs(), m.snapshot
        r0 = [snap.request(i).id for i in range(2)].index("r0")
        row = pairs.offers[pairs.indptr[r0] : pairs.indptr[r0 + 1]]
        return [snap.offer(int(o)).id for o in row]

    assert served_by(Market(book)) == []  # default 0.0 is below the floor
    assert served_by(Market(book, {"p0": 0.9})) == ["o0"]
    assert served_by(Market(book, {"p0": 0.9}, default_reputation=0.5)) == ["o0", "o1"]
    assert served_by(Market(book, {"p0": 0.4}, default_reputation=0.6)) == ["o1"]
    # a score for a name the book does not hold is harmless
    m = Market(book, {"nobody": 1.0, "t": 1.0}, default_reputation=0.25)
    assert m.offer_reputation.tolist() == [0.25, 0.25]
    assert m.default_reputation == 0.25
    check_market(m)


# -- shapes ---------------------------------------------------------------------------------
def test_empty_books() -> None:
    offer = Offer(id="o", provider="p", gpu_model="m", gpus=1, price=1, region="x", vram_gb=1)
    request = Request(id="r", tenant="t", gpus=1, max_price=1)
    cases: list[tuple[list[Order], list[int]]] = [
        ([], [0]),
        ([offer], [0]),
        ([request], [0, 0]),
        ([request, offer], [0, 1]),
    ]
    for orders, indptr in cases:
        m = Market(OrderBook(orders))
        check_market(m)
        assert m.pairs().indptr.tolist() == indptr
    assert len(Market(OrderBook()).pairs()) == 0
    assert Market(OrderBook()).nbytes >= 0
    assert "0 requests" in repr(Market(OrderBook()))
    with pytest.raises(TypeError):
        Market([offer])  # type: ignore[arg-type]


def test_market_is_frozen_at_its_snapshot() -> None:
    book = small_book()
    m = Market(book)
    before = m.pairs().offers.tolist()
    book.cancel("o0")
    book.amend("o1", price=0, provider="p9")
    book.add(Offer(id="o2", provider="p2", gpu_model="H", gpus=9, price=0, region="x", vram_gb=80))
    assert m.pairs().offers.tolist() == before
    assert m.n_offers == 2
    check_market(m)
    for name, value in vars(m).items():
        if isinstance(value, np.ndarray):
            assert not value.flags.writeable, name


def test_many_names() -> None:
    models = [f"gpu{i}" for i in range(80)]
    regions = [f"zone{i}" for i in range(80)]
    tags = [f"tag{i}" for i in range(140)]
    offers = [
        Offer(
            id=f"o{i}", provider=f"p{i % 5}", gpu_model=models[i % 80], gpus=1 + i % 3,
            price=i % 7, region=regions[(i * 7) % 80], vram_gb=24 * (1 + i % 3),
            tags=frozenset(tags[(i * 3) % 140 : (i * 3) % 140 + 4]),
        )
        for i in range(200)
    ]
    requests = [
        Request(
            id=f"r{j}", tenant="t", gpus=1 + j % 3, max_price=j % 8,
            gpu_models=frozenset(models[j % 80 : j % 80 + 30]) if j % 4 else frozenset(),
            regions=frozenset(regions[(j * 5) % 80 :]) if j % 3 else frozenset(),
            min_vram_gb=24 * (j % 3),
            required_tags=frozenset(tags[j % 140 : j % 140 + (j % 3)]),
            divisible=bool(j % 2),
            min_reputation=0.5 * (j % 3 == 0),
        )
        for j in range(120)
    ]
    m = Market(OrderBook([*offers, *requests]), {f"p{i}": i / 4 for i in range(5)})
    # set-valued columns are lists of codes: as long as the names listed, not the vocabulary
    assert len(m.snapshot.offers.tags.codes) == sum(len(o.tags) for o in offers)
    assert m.snapshot.requests.gpu_models.lengths.max() == 30
    check_market(m)
    assert m.pair_count() > 0


def test_any_model_requests_keep_memory_bounded() -> None:
    """Requests that accept anything pair with every offer; the market stays O(orders)."""
    offers = [
        Offer(
            id=f"o{i}", provider=f"p{i % 50}", gpu_model=("H100", "A100", "L40S")[i % 3],
            gpus=8, price=100 + i % 97, region=("us", "eu")[i % 2], vram_gb=80,
            tags=frozenset({"soc2"} if i % 5 else set()),
        )
        for i in range(600)
    ]

    def market(n_req: int) -> Market:
        reqs = [
            Request(id=f"r{j}", tenant=f"t{j % 7}", gpus=1 + j % 4, max_price=10_000,
                    min_vram_gb=24 * (j % 2), submitted_at=j)
            for j in range(n_req)
        ]
        return Market(OrderBook([*offers, *reqs]))

    small, large = market(3_000), market(6_000)
    for m in (small, large):
        assert m.n_classes == 12  # 3 models x 2 regions x 2 tag sets
        assert m.n_profiles == 2  # two VRAM floors, otherwise anything goes
        assert len(m.profile_classes) == m.n_profiles * m.n_classes
        assert m.pair_count() == m.n_requests * m.n_offers
    # the class structure does not grow with the requests ...
    structure = ("profile_indptr", "profile_classes", "class_indptr", "class_offers",
                 "class_gpu_model", "class_region", "class_vram_gb",
                 "offer_order", "offer_rank", "offer_class", "offer_reputation")
    for name in structure:
        assert np.array_equal(getattr(small, name), getattr(large, name)), name
    for part in ("indptr", "codes"):
        assert np.array_equal(getattr(small.class_tags, part), getattr(large.class_tags, part))
    # ... only the per-request arrays do (request_order, request_rank, request_profile)
    assert large.nbytes - small.nbytes <= 4 * 8 * 3_000
    pair_bytes = 16 * large.pair_count()
    assert large.nbytes < pair_bytes / 100
    assert "_pairs" not in vars(large)  # nothing was materialized per pair


def test_pair_count_is_exact_on_a_dense_market() -> None:
    offers = [
        Offer(id=f"o{i}", provider="p", gpu_model="H100", gpus=1 + i % 4, price=i % 10,
              region="x", vram_gb=80)
        for i in range(300)
    ]
    requests = [
        Request(id=f"r{j}", tenant="t", gpus=1 + j % 5, max_price=j % 12, divisible=j % 3 == 0)
        for j in range(400)
    ]
    m = Market(OrderBook([*offers, *requests]))
    expected = sum(
        1 for r in requests for o in offers
        if o.price <= r.max_price and (r.divisible or o.gpus >= r.gpus)
    )
    assert m.pair_count() == expected == len(m.pairs())
    assert int(m.pairs().surplus.min()) == 0


@given(
    orders=order_sets(),
    reputation=reputation_maps(),
    block=st.integers(1, 7),
)
def test_small_pair_blocks_give_the_same_pairs(
    orders: list[Order], reputation: tuple[dict[str, float] | None, float], block: int
) -> None:
    """Pairs are generated in bounded blocks; tiny blocks must not change them."""
    scores, default = reputation
    book = OrderBook(orders)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(market_module, "_BLOCK_PAIRS", block)
        m = Market(book, scores, default_reputation=default)
        check_market(m)


@pytest.mark.parametrize("candidates", [20_000, 1 << 22])
def test_profile_classes_over_several_blocks(candidates: int) -> None:
    """The sparse join in blocks of any size gives the eligible classes."""
    tags = [f"tag{i:03d}" for i in range(150)]
    offers = [
        Offer(
            id=f"o{i}", provider="p", gpu_model=("H100", "A100")[i % 2], gpus=1, price=1,
            region=("us", "eu", "ap")[i % 3], vram_gb=(24, 80)[i % 2],
            tags=frozenset({tags[i % 150], tags[(i // 150) % 150], tags[(7 * i) % 150]}),
        )
        for i in range(6000)
    ]
    requests = [
        Request(
            id=f"r{j}", tenant="t", gpus=1, max_price=1,
            gpu_models=frozenset({"H100"}) if j % 5 == 0 else frozenset(),
            regions=frozenset({("us", "eu", "ap")[j % 3]}) if j % 2 else frozenset(),
            min_vram_gb=(0, 24, 80)[j % 3],
            required_tags=(
                frozenset({tags[j % 150], tags[(j // 150) % 150]}) if j % 7 else frozenset()
            ),
        )
        for j in range(3000)
    ]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(market_module, "_BLOCK_CANDIDATES", candidates)
        m = Market(OrderBook([*offers, *requests]))
    block = max(1, candidates // m.n_classes)
    first_member = m.class_offers[m.class_indptr[:-1]]
    representative = {int(p): j for j, p in enumerate(m.request_profile)}
    edges = {k * block + d for k in range(1, m.n_profiles // block + 1) for d in (-2, -1, 0, 1)}
    checked = sorted(p for p in edges | set(range(0, m.n_profiles, 60)) if 0 <= p < m.n_profiles)
    for j in (representative[p] for p in checked):
        r = m.snapshot.request(j)
        got = set(m.eligible_classes(j).tolist())
        want = {
            c for c in range(m.n_classes)
            if structurally_eligible(m.snapshot.offer(int(first_member[c])), r)
        }
        assert got == want, r
