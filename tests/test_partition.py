"""Partitioned clearing: the parts are closed under eligibility, and the merged result equals
the single clear for every mechanism the decomposition table says decomposes."""

from __future__ import annotations

from collections import Counter
from typing import Any

import attrs
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import auction
from auction import Market, Offer, OrderBook, Request
from auction.errors import AuctionError, InvalidValueError, PartitionError, UnsupportedMarketError
from auction.mechanisms.registry import available, get
from auction.scale.partition import (
    DECOMPOSITION,
    Partition,
    clear_partitioned,
    partition,
    rule_for,
)
from auction.testing import books
from auction.testing.strategies import GPU_MODELS, PROVIDERS, reputations

CASES = sorted(k for k, rule in DECOMPOSITION.items() if rule.decomposes)
COUPLED = sorted(k for k, rule in DECOMPOSITION.items() if not rule.decomposes)


def _mech(name: str, payment: str) -> Any:
    return get(name) if payment == "*" else get(name, payment=payment)


def _outcome(r: auction.ClearingResult) -> dict[str, Any]:
    """Everything a result says, but diagnostics (per-part there, see the docs)."""
    d = r.to_dict()
    return {**d, "status": r.status, "request_row": r.request_row.tolist(),
            "offer_row": r.offer_row.tolist()}


def _regional_book(n_regions: int = 4, per_region: int = 5) -> OrderBook:
    """Requests pinned to one region each; a provider per region (and one in all of them)."""
    orders: list[Offer | Request] = []
    for g in range(n_regions):
        region = f"r{g}"
        for i in range(3):
            orders.append(Offer(id=f"o{g}-{i}", provider=f"p{g}", gpu_model="H100",
                                region=region, gpus=2, price=100 + 10 * i, vram_gb=80))
        orders.append(Offer(id=f"o{g}-x", provider="everywhere", gpu_model="H100",
                            region=region, gpus=1, price=105, vram_gb=80))
        for i in range(per_region):
            orders.append(Request(id=f"q{g}-{i}", tenant=f"t{i % 2}", gpus=1 + i % 2,
                                  max_price=150 - i, regions=frozenset({region}),
                                  submitted_at=i))
    return OrderBook(orders)


# -- the partition itself ---------------------------------------------------------------------
@pytest.mark.parametrize(("book", "by"), [
    (auction.demo.example_book(3), "pairs"),
    (_regional_book(), "classes"),
    (_regional_book(), "region"),
])
def test_parts_are_closed_under_eligibility(book: OrderBook, by: str) -> None:
    market = Market(book)
    parts = partition(market, by=by)
    pairs = market.pairs()
    rows = np.repeat(np.arange(market.n_requests), np.diff(pairs.indptr))
    assert len(parts) >= 2
    assert (parts.request_part[rows] == parts.offer_part[pairs.offers]).all()
    assert (parts.request_part[rows] >= 0).all()
    idle = parts.request_part < 0
    assert (np.diff(pairs.indptr)[idle] == 0).all()
    seen = np.concatenate([parts.requests(i) for i in range(len(parts))])
    assert sorted(seen.tolist()) == np.flatnonzero(~idle).tolist()
    # numbered by each part's highest-priority request
    firsts = [int(market.request_rank[parts.requests(i)].min()) for i in range(len(parts))]
    assert firsts == sorted(firsts)
    assert int(parts.work.min()) > 0


def test_regions_make_parts_and_keys_agree() -> None:
    market = Market(_regional_book())
    by_pairs = partition(market)
    by_region = partition(market, by="region")
    by_classes = partition(market, by="classes")
    assert len(by_pairs) == len(by_region) == len(by_classes) == 4
    for i in range(4):
        assert set(market.snapshot.offers.region[by_region.offers(i)].tolist()) == {
            market.snapshot.regions.index(f"r{i}")}
    # vcg keeps a provider's offers together: "everywhere" joins every region
    assert len(partition(market, mechanism=get("assignment", payment="vcg"))) == 1


def test_submarket_keeps_reputation_and_renumbers_parties() -> None:
    market = Market(_regional_book(), {"p1": 0.5}, default_reputation=0.25)
    parts = partition(market, by="region")
    sub = parts.submarket(1)
    assert set(sub.snapshot.parties) == {"p1", "everywhere", "t0", "t1"}
    assert sub.reputation == {"p1": 0.5}
    assert sub.default_reputation == 0.25
    assert sub.snapshot.offers.id.tolist() == market.snapshot.offers.id[parts.offers(1)].tolist()


@pytest.mark.parametrize("by", ["pairs", "classes"])
def test_parts_rebuild_the_very_orders_from_their_columns(by: str) -> None:
    market = Market(auction.demo.example_book(1), default_reputation=0.5)
    parts = partition(market, by=by)
    for i in range(len(parts)):
        snap = parts.snapshot(i)
        assert snap.offer_list() == [market.snapshot.offer(k) for k in parts.offers(i)]
        assert snap.request_list() == [market.snapshot.request(k) for k in parts.requests(i)]
        assert len(snap.models) <= len(market.snapshot.models)  # vocabularies compacted
        assert snap.offer(0) == market.snapshot.offer(int(parts.offers(i)[0]))


def test_partition_is_independent_of_arrival_order() -> None:
    book = _regional_book()
    orders = list(book)
    rng = np.random.default_rng(1)
    shuffled = OrderBook([orders[i] for i in rng.permutation(len(orders))])
    a, b = partition(Market(book)), partition(Market(shuffled))
    def ids(p: Partition, m: Market) -> list[list[str]]:
        return [sorted(m.snapshot.requests.id[p.requests(i)].tolist()) for i in range(len(p))]

    assert ids(a, a.market) == ids(b, b.market)


def test_declared_keys_refuse_a_request_they_would_cut() -> None:
    book = _regional_book()
    book.add(Request(id="roamer", tenant="t9", gpus=1, max_price=200,
                     regions=frozenset({"r0", "r2"})))
    with pytest.raises(PartitionError, match=r"'roamer' accepts offers in 2 groups.*r0, r2"):
        partition(Market(book), by=("region",))
    assert len(partition(Market(book))) == 3  # the components merge r0 and r2 instead


def test_bad_by_is_a_typed_error() -> None:
    market = Market(_regional_book())
    for by in ("everything", ("region", "region"), ()):
        with pytest.raises(InvalidValueError) as info:
            partition(market, by=by)
        assert info.value.field == "by"


def test_empty_and_idle_markets() -> None:
    assert len(partition(Market(OrderBook()))) == 0
    book = OrderBook([Offer(id="o", provider="p", gpu_model="H100", region="x", gpus=1, vram_gb=80,
                            price=10),
                      Request(id="r", tenant="t", gpus=1, max_price=5)])
    assert len(partition(Market(book))) == 1  # the class graph ignores price
    parts = partition(Market(book), by="pairs")
    assert len(parts) == 0
    assert parts.request_part.tolist() == [-1]
    r = clear_partitioned(book, "first-price")
    assert r.unmatched_request_ids.tolist() == ["r"]
    assert r.status is auction.Status.SUCCESS


# -- the decomposition table ------------------------------------------------------------------
def test_every_builtin_mechanism_is_in_the_table() -> None:
    for name in available():
        mech = get(name)
        for payment in mech.tags.payments:
            assert (name, payment) in DECOMPOSITION or (name, "*") in DECOMPOSITION, (
                name, payment)


@pytest.mark.parametrize(("name", "payment"), COUPLED)
def test_coupled_mechanisms_are_refused(name: str, payment: str) -> None:
    with pytest.raises(PartitionError, match="couples parts") as info:
        clear_partitioned(_regional_book(), name, None if payment == "*" else payment)
    assert info.value.mechanism == name
    assert isinstance(info.value, AuctionError)


def test_unknown_mechanisms_are_refused() -> None:
    class Mine:
        name = "mine"
        tags = get("first-price").tags

        def clear(self, market: Market, *, rng: Any = None) -> auction.ClearingResult:
            raise NotImplementedError

    with pytest.raises(PartitionError, match="not in the decomposition table"):
        rule_for(Mine())


def test_pairs_are_too_fine_for_call_markets() -> None:
    with pytest.raises(PartitionError, match="too fine"):
        partition(Market(_regional_book()), by="pairs", mechanism="uniform-price")


def test_the_single_clears_refusal_comes_first() -> None:
    book = _regional_book()
    book.add(Request(id="big", tenant="t", gpus=3, max_price=500))  # multi-GPU, non-divisible
    with pytest.raises(UnsupportedMarketError):
        clear_partitioned(book, "mcafee")


# -- merged equals single ---------------------------------------------------------------------
def _capacity_ok(market: Market, r: auction.ClearingResult) -> None:
    used: Counter[int] = Counter()
    for o, g in zip(r.offer_row.tolist(), r.gpus.tolist(), strict=True):
        used[o] += g
    cap = market.snapshot.offers.gpus
    assert all(g <= int(cap[o]) for o, g in used.items())


def _block(book: OrderBook, j: int) -> list[Offer | Request]:
    """A drawn book's orders moved to GPU models of their own (``H100#j``), so blocks share
    no eligibility but do share providers and tenants; ids prefixed to stay unique."""
    out: list[Offer | Request] = []
    for o in book:
        if isinstance(o, Offer):
            out.append(attrs.evolve(o, id=f"b{j}-{o.id}", gpu_model=f"{o.gpu_model}#{j}"))
        else:
            models = o.gpu_models or frozenset(GPU_MODELS)  # "any" = any model of the block
            out.append(attrs.evolve(o, id=f"b{j}-{o.id}",
                                    gpu_models=frozenset(f"{m}#{j}" for m in models)))
    return out


@st.composite
def blocky_markets(draw: st.DrawFn, /, **kwargs: Any) -> Market:
    """Markets made of two or three independent drawn books (several parts), with drawn
    reputation and, sometimes, quality bonuses."""
    blocks = draw(st.lists(books(max_offers=5, max_requests=5, **kwargs), min_size=2,
                           max_size=3))
    book = OrderBook([o for j, b in enumerate(blocks) for o in _block(b, j)])
    scored = draw(st.lists(st.sampled_from(PROVIDERS), unique=True))
    scores = {p: draw(reputations()) for p in scored}
    weight = draw(st.sampled_from((0, 0, 1, 8)))
    return Market(book, scores, default_reputation=draw(reputations()), quality_weight=weight)


def _check_equal(name: str, payment: str, market: Market, seed: int,
                 by: str | None) -> None:
    mech = _mech(name, payment)
    try:
        single = auction.clear(market, mech, rng=seed)
    except AuctionError as e:
        with pytest.raises(type(e)):
            clear_partitioned(market, _mech(name, payment), rng=seed, by=by)
        return
    merged = clear_partitioned(market, _mech(name, payment), rng=seed, by=by)
    if not rule_for(mech).ties:
        assert _outcome(merged) == _outcome(single)
        return
    # optimizers: same status, welfare and VCG bonuses; an equally good allocation
    assert merged.status == single.status
    assert merged.payment == single.payment
    if single.status is auction.Status.SUCCESS:
        assert merged.welfare == single.welfare
    if "vcg_bonus" in single.diagnostics:
        bonus = {k: v for k, v in single.diagnostics["vcg_bonus"].items() if v}
        # each provider's bonus is W* - W*(without it): the same whichever optimum is picked
        assert {k: v for k, v in merged.diagnostics.get("vcg_bonus", {}).items() if v} == bonus
    _capacity_ok(market, merged)
    from auction.testing.checks import _assert_consistent

    _assert_consistent(mech, market, merged)


@pytest.mark.parametrize(("name", "payment"), CASES)
def test_merged_equals_single(name: str, payment: str) -> None:
    tags = _mech(name, payment).tags
    # besides the default (classes): the finest cut the mechanism allows
    finest = "pairs" if rule_for(_mech(name, payment)).graph == "pairs" else "class"

    @settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(
        blocky_markets(divisible=tags.divisible, splittable=tags.splittable_only,
                       call_market=tags.call_market),
        st.integers(0, 3),
        st.sampled_from([None, finest]),
    )
    def holds(market: Market, seed: int, by: str | None) -> None:
        _check_equal(name, payment, market, seed, by)

    holds()


def test_merged_equals_single_on_many_regions() -> None:
    book = _regional_book(6, 7)
    for name, payment in (("first-price", "*"), ("second-price", "*"),
                          ("assignment", "vcg"), ("gang", "pay-as-bid")):
        market = Market(book)
        single = auction.clear(market, _mech(name, payment))
        merged = clear_partitioned(market, _mech(name, payment))
        assert merged.welfare == single.welfare
        if not rule_for(_mech(name, payment)).ties:
            assert _outcome(merged) == _outcome(single)
        assert merged.diagnostics["partition"]["parts"] >= 1


def test_sbba_shares_one_seed_across_parts() -> None:
    book = OrderBook([
        *(Offer(id=f"o{g}{i}", provider=f"p{i}", gpu_model="H100", region=f"r{g}", gpus=1,
                vram_gb=80, price=10 + i) for g in range(3) for i in range(4)),
        *(Request(id=f"q{g}{i}", tenant="t", gpus=1, max_price=14 - i,
                  gpu_models=frozenset({"H100"}), regions=frozenset({f"r{g}"}), divisible=True)
          for g in range(3) for i in range(4)),
    ])
    single = auction.clear(book, "sbba", rng=7)
    merged = clear_partitioned(book, "sbba", rng=7)
    assert _outcome(merged) == _outcome(single)
    assert merged.diagnostics["seed"] == single.diagnostics["seed"]
    assert merged.options == single.options
    assert merged.diagnostics["partition"]["parts"] == 3


def test_diagnostics_say_how_it_was_cut() -> None:
    r = clear_partitioned(_regional_book(), "assignment", task_size=1)
    info = r.diagnostics["partition"]
    assert info["parts"] == 4
    assert info["tasks"] == 4
    assert info["by"] == "classes"
    assert len(r.diagnostics["parts"]) == 4
    assert len(info["part_seconds"]) == 4
    assert info["peak_rss"]
    assert r.diagnostics["phases"] >= 1  # the scalars every part agrees on
