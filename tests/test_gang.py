"""The `gang` mechanism against independent oracles.

Oracles work on the order objects with `auction.testing.is_eligible`, never on the library's
arrays: every bundle a request may take is enumerated (nothing; one offer for a whole request;
any split for a divisible one; any split over one (provider, region) for a cluster), the best
allocation is found by dynamic programming over the offers' remaining capacities, and
supporting prices are checked by comparing each request's allocation with every bundle it
could have bought, or searched for on a grid of whole-unit prices.
"""

from __future__ import annotations

import functools
import itertools
import os
import random
import types
from collections import Counter, defaultdict
from typing import Any

import attrs
import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import auction
from auction import Market, Offer, OrderBook, Request
from auction.demo import example_book
from auction.errors import AuctionOverflowError, InvalidOptionError, UnsupportedMarketError
from auction.mechanisms import gang as gang_module
from auction.mechanisms.gang import (
    Gang,
    GangSolverError,
    SolverOutcome,
    build_problem,
    greedy_allocation,
    lp_relaxation,
    lp_relaxation_bound,
    milp_outcome,
    verify_allocation,
)
from auction.mechanisms.gang import mechanism as gang_mechanism
from auction.orders import Order
from auction.result import ClearingResult, Status
from auction.solvers import milp as milp_module
from auction.testing import describe_market, is_eligible, markets
from auction.testing.oracles import reputation_of

SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]


def examples(n: int) -> int:
    """`n` examples, or the active profile's count if larger (the ``thorough`` profile)."""
    profile = settings.default
    return max(n, profile.max_examples if profile is not None else 0)


# -- oracles ---------------------------------------------------------------------------------

Bundle = dict[int, int]  # offer index -> GPUs


def eligible_offers(market: Market, r: Request) -> list[int]:
    offers = market.snapshot.offer_list()
    return [j for j, o in enumerate(offers)
            if is_eligible(o, r, reputation_of(market, o.provider))]


def splits(caps: list[int], total_lo: int, total_hi: int) -> list[tuple[int, ...]]:
    """Every vector k with 0 <= k_i <= caps[i] and total_lo <= sum(k) <= total_hi."""
    return [k for k in itertools.product(*(range(c + 1) for c in caps))
            if total_lo <= sum(k) <= total_hi]


def bundles(market: Market, r: Request) -> list[Bundle]:
    """Every non-empty bundle request `r` may take, by its kind, within full capacities."""
    offers = market.snapshot.offer_list()
    elig = eligible_offers(market, r)
    out: list[Bundle] = []
    if r.divisible:
        caps = [min(offers[j].gpus, r.gpus) for j in elig]
        for k in splits(caps, 1, r.gpus):
            out.append({j: n for j, n in zip(elig, k, strict=True) if n})
    elif r.cluster:
        sites: defaultdict[tuple[str, str], list[int]] = defaultdict(list)
        for j in elig:
            sites[(offers[j].provider, offers[j].region)].append(j)
        for members in sites.values():
            caps = [min(offers[j].gpus, r.gpus) for j in members]
            for k in splits(caps, r.gpus, r.gpus):
                out.append({j: n for j, n in zip(members, k, strict=True) if n})
    else:
        out += [{j: r.gpus} for j in elig if offers[j].gpus >= r.gpus]
    return out


def brute_force_welfare(market: Market) -> int:
    """The best welfare over every allocation, by DP over requests and remaining capacity."""
    offers = market.snapshot.offer_list()
    reqs = market.snapshot.request_list()
    options = [
        [(sum(n * (r.max_price - offers[j].price) for j, n in b.items()), b)
         for b in bundles(market, r)]
        for r in reqs
    ]

    @functools.cache
    def best(i: int, left: tuple[int, ...]) -> int:
        if i == len(reqs):
            return 0
        value = best(i + 1, left)
        for v, b in options[i]:
            if all(left[j] >= n for j, n in b.items()):
                rest = list(left)
                for j, n in b.items():
                    rest[j] -= n
                value = max(value, v + best(i + 1, tuple(rest)))
        return value

    return best(0, tuple(o.gpus for o in offers))


def rows_of(result: ClearingResult) -> list[tuple[str, str, int]]:
    return list(zip(result.request_id.tolist(), result.offer_id.tolist(),
                    result.gpus.tolist(), strict=True))


def assert_valid(market: Market, rows: list[tuple[str, str, int]]) -> None:
    """The allocation obeys eligibility, capacity and each request kind's rule."""
    offers = {o.id: o for o in market.snapshot.offer_list()}
    reqs = {r.id: r for r in market.snapshot.request_list()}
    used: Counter[str] = Counter()
    got: defaultdict[str, list[tuple[Offer, int]]] = defaultdict(list)
    for rid, oid, n in rows:
        o, r = offers[oid], reqs[rid]
        assert n >= 1
        assert is_eligible(o, r, reputation_of(market, o.provider)), (rid, oid)
        used[oid] += n
        got[rid].append((o, n))
    for oid, n in used.items():
        assert n <= offers[oid].gpus, f"offer {oid} over capacity"
    for rid, parts in got.items():
        r = reqs[rid]
        total = sum(n for _, n in parts)
        if r.divisible:
            assert total <= r.gpus
        elif r.cluster:
            assert total == r.gpus
            assert len({(o.provider, o.region) for o, _ in parts}) == 1, f"{rid} spans sites"
        else:
            assert len(parts) == 1
            assert total == r.gpus


def welfare_of(market: Market, rows: list[tuple[str, str, int]]) -> int:
    offers = {o.id: o for o in market.snapshot.offer_list()}
    reqs = {r.id: r for r in market.snapshot.request_list()}
    return sum((reqs[r].max_price - offers[o].price) * n for r, o, n in rows)


def envy(market: Market, rows: list[tuple[str, str, int]], price: dict[str, int]) -> str | None:
    """None if `price` (per offer id) supports the allocation, else the first reason not.

    Prices >= asks, == ask on offers with unused GPUs, <= the max price of every request an
    offer serves, and each request's allocation is worth at least every bundle it may take.
    """
    offers = market.snapshot.offer_list()
    reqs = {r.id: r for r in market.snapshot.request_list()}
    used: Counter[str] = Counter()
    for rid, oid, n in rows:
        used[oid] += n
        if price[oid] > reqs[rid].max_price:
            return f"{oid} above the max price of {rid}"
    for o in offers:
        if price[o.id] < o.price:
            return f"{o.id} below its ask"
        if used[o.id] < o.gpus and price[o.id] != o.price:
            return f"{o.id} has unused GPUs but is not at its ask"
    for r in reqs.values():
        have = sum(n * (r.max_price - price[o]) for rid, o, n in rows if rid == r.id)
        for b in bundles(market, r):
            alt = sum(n * (r.max_price - price[offers[j].id]) for j, n in b.items())
            if alt > have:
                return f"{r.id} prefers {b} ({alt}) to its allocation ({have})"
        if have < 0:
            return f"{r.id} is worse off than with nothing"
    return None


def price_grid_search(market: Market, rows: list[tuple[str, str, int]]) -> bool:
    """Whether some whole-unit prices support the allocation (exhaustive over the grid)."""
    offers = market.snapshot.offer_list()
    reqs = {r.id: r for r in market.snapshot.request_list()}
    used: Counter[str] = Counter()
    top: dict[str, int] = {}
    for rid, oid, n in rows:
        used[oid] += n
        top[oid] = min(top.get(oid, reqs[rid].max_price), reqs[rid].max_price)
    ranges = []
    for o in offers:  # full offers range from the ask to the lowest served max price
        full = used[o.id] == o.gpus
        ranges.append(range(o.price, top[o.id] + 1) if full else range(o.price, o.price + 1))
    if any(len(rg) == 0 for rg in ranges):
        return False
    grid = np.array(list(itertools.product(*ranges)), dtype=np.int64).reshape(-1, len(offers))
    ok = np.ones(len(grid), dtype=bool)
    index = {o.id: j for j, o in enumerate(offers)}
    for r in reqs.values():
        mine = np.zeros(len(offers), dtype=np.int64)
        for rid, oid, n in rows:
            if rid == r.id:
                mine[index[oid]] += n
        have = int(mine.sum()) * r.max_price - grid @ mine
        ok &= have >= 0
        for b in bundles(market, r):
            vec = np.zeros(len(offers), dtype=np.int64)
            for j, n in b.items():
                vec[j] = n
            ok &= have >= int(vec.sum()) * r.max_price - grid @ vec
    return bool(ok.any())


def rebuild(market: Market, orders: list[Order]) -> Market:
    return Market(OrderBook(orders), market.reputation,
                  default_reputation=market.default_reputation)


def h100(oid: str, provider: str, gpus: int, price: int, region: str = "eu-west",
         tags: frozenset[str] = frozenset({"nvlink"})) -> Offer:
    return Offer(id=oid, provider=provider, gpu_model="H100", gpus=gpus, price=price,
                 region=region, vram_gb=80, tags=tags)


def contested_book() -> OrderBook:
    """The demo book with every fifth datacenter request made an 8-16 GPU nvlink cluster."""
    orders: list[Order] = []
    k = 0
    for o in example_book(0):
        if isinstance(o, Request) and o.gpu_models and not o.divisible and (
            o.gpu_models <= {"H100", "H200", "A100 80GB"}
        ):
            k += 1
            if k % 5 == 0:
                o = attrs.evolve(o, cluster=True, gpus=8 + 8 * (k % 2),
                                 required_tags=o.required_tags | {"nvlink"})
        orders.append(o)
    return OrderBook(orders)


@st.composite
def contested_markets(draw: st.DrawFn, max_offers: int = 4, max_requests: int = 4) -> Market:
    """Small markets where everything competes: one GPU model, two providers, two regions,
    offers of 1-3 GPUs, and whole, divisible and cluster requests of 1-4 GPUs at close prices
    (clusters often need nvlink, which some offers lack)."""
    n_off = draw(st.integers(1, max_offers))
    n_req = draw(st.integers(1, max_requests))
    orders: list[Order] = []
    for j in range(n_off):
        nvlink = draw(st.booleans()) or draw(st.booleans())
        orders.append(h100(f"o{j}", draw(st.sampled_from(["p0", "p1"])), draw(st.integers(1, 3)),
                           draw(st.integers(0, 6)), draw(st.sampled_from(["eu", "eu", "us"])),
                           frozenset({"nvlink"}) if nvlink else frozenset()))
    for i in range(n_req):
        kind = draw(st.sampled_from(["whole", "divisible", "cluster", "cluster"]))
        orders.append(Request(
            id=f"r{i}", tenant=f"t{i}", gpus=draw(st.integers(1, 4)),
            max_price=draw(st.integers(2, 10)), divisible=kind == "divisible",
            cluster=kind == "cluster",
            required_tags=frozenset({"nvlink"} if kind == "cluster" and draw(st.booleans())
                                    else set()),
            regions=frozenset({"eu"} if draw(st.integers(0, 3)) == 0 else set()),
            submitted_at=draw(st.integers(0, 2)),
        ))
    return Market(OrderBook(draw(st.permutations(orders))))


small_markets = st.one_of(contested_markets(), markets(max_offers=3, max_requests=4,
                                                       huge_prices=False))


# -- optimality ---------------------------------------------------------------------------------


@settings(deadline=None, max_examples=examples(120), suppress_health_check=SLOW)
@given(market=small_markets)
def test_matches_brute_force_and_lp_bound(market: Market) -> None:
    note(describe_market(market))
    result = auction.clear(market, "gang")
    assert result.status is Status.SUCCESS, result.message
    rows = rows_of(result)
    assert_valid(market, rows)
    assert result.welfare == welfare_of(market, rows)
    assert result.welfare == brute_force_welfare(market)
    bound = lp_relaxation_bound(build_problem(market))
    assert bound is not None
    assert result.welfare <= bound + 1e-6
    assert result.diagnostics["gap"] == 0.0


@settings(deadline=None, max_examples=examples(60), suppress_health_check=SLOW)
@given(market=markets(max_offers=8, max_requests=8, huge_prices=False))
def test_value_at_most_lp_relaxation(market: Market) -> None:
    result = auction.clear(market, "gang")
    assert_valid(market, rows_of(result))
    bound = lp_relaxation_bound(build_problem(market))
    assert bound is not None
    assert result.welfare <= bound + 1e-6 * max(1.0, bound)


@settings(deadline=None, max_examples=examples(60), suppress_health_check=SLOW)
@given(market=markets(max_offers=7, max_requests=7, huge_prices=False),
       mode=st.sampled_from(["unit", "large"]))
def test_equals_assignment_when_each_offer_hosts_one_request(market: Market, mode: str) -> None:
    """With 1-GPU offers and 1-GPU requests, or whole requests of 2-3 GPUs on offers of at
    most 3 (two never fit in one), sharing is impossible: both solve the same matching."""
    orders: list[Order] = []
    for o in market.snapshot.offer_list():
        orders.append(attrs.evolve(o, gpus=1 if mode == "unit" else 1 + o.gpus % 3))
    for r in market.snapshot.request_list():
        if mode == "unit":
            orders.append(attrs.evolve(r, gpus=1))
        else:
            orders.append(attrs.evolve(r, gpus=2 + r.gpus % 2, divisible=False, cluster=False))
    m = rebuild(market, orders)
    gang = auction.clear(m, "gang")
    exclusive = auction.clear(m, "assignment", shape="exclusive")
    assert gang.welfare == exclusive.welfare


@pytest.mark.filterwarnings("ignore:PULP_CBC_CMD is deprecated:DeprecationWarning")
@pytest.mark.parametrize("pulp_solver", ["PULP_CBC_CMD", "HiGHS"])
@settings(deadline=None, max_examples=examples(12), suppress_health_check=SLOW)
@given(market=markets(max_offers=6, max_requests=6, huge_prices=False))
def test_pulp_agrees_with_highs(pulp_solver: str, market: Market) -> None:
    highs = auction.clear(market, "gang")
    pulp = auction.clear(market, "gang", backend="pulp",
                         backend_options={"solver": pulp_solver})
    assert pulp.status is Status.SUCCESS, pulp.message
    assert pulp.welfare == highs.welfare
    assert pulp.diagnostics["solver"] == f"pulp:{pulp_solver}"
    assert_valid(market, rows_of(pulp))


# -- time limits, fallbacks and failures ----------------------------------------------------------


def test_tiny_time_limit_gives_a_verified_feasible_result_with_a_gap() -> None:
    market = Market(contested_book())
    result = auction.clear(market, "gang", time_limit=0.001)
    d = result.diagnostics
    assert result.status is Status.TIME_LIMIT
    assert not result.success
    assert d["source"] in ("milp", "greedy")
    assert "time limit" in result.message
    assert d["bound"] >= result.welfare
    assert 0.0 <= d["gap"] <= 1.0
    assert d["objective"] == result.welfare
    assert_valid(market, rows_of(result))


def _no_solution(*args: Any, **kwargs: Any) -> SolverOutcome:
    return milp_outcome(None, False, None, "Time limit reached.")


def test_greedy_fallback_when_the_solver_finds_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    market = Market(contested_book())
    optimum = auction.clear(market, "gang", time_limit=60)
    monkeypatch.setattr(gang_mechanism, "solve_highs", _no_solution)
    result = auction.clear(market, "gang")
    d = result.diagnostics
    assert result.status is Status.TIME_LIMIT
    assert d["source"] == "greedy"
    assert "found no solution" in result.message
    assert "greedy" in result.message
    problem = build_problem(market)
    lp = lp_relaxation(problem)
    assert lp is not None
    snap = market.snapshot
    candidates = [
        sorted(zip(snap.requests.id[req].tolist(), snap.offers.id[off].tolist(),
                   gpus.tolist(), strict=True))
        for req, off, gpus in (greedy_allocation(problem, market),
                               greedy_allocation(problem, market, lp[1]))
    ]
    assert sorted(rows_of(result)) in candidates  # the better of the two
    assert result.welfare == max(welfare_of(market, c) for c in candidates)
    assert_valid(market, rows_of(result))
    # the bound is the LP relaxation's: above the optimum, and the gap is measured against it
    assert optimum.welfare <= d["bound"] + 1e-6 * d["bound"]
    assert result.welfare <= optimum.welfare
    assert d["gap"] == pytest.approx((d["bound"] - result.welfare) / d["bound"])


@settings(deadline=None, max_examples=examples(80), suppress_health_check=SLOW)
@given(market=st.one_of(contested_markets(6, 6), markets(max_offers=8, max_requests=8)))
def test_greedy_with_and_without_guide_is_always_feasible(market: Market) -> None:
    try:
        problem = build_problem(market)
    except AuctionOverflowError:
        return
    lp = lp_relaxation(problem)
    assert lp is not None
    snap = market.snapshot
    for guide in (None, lp[1]):
        req, off, gpus = greedy_allocation(problem, market, guide)
        verify_allocation(market, req, off, gpus)
        assert_valid(market, list(zip(snap.requests.id[req].tolist(),
                                      snap.offers.id[off].tolist(), gpus.tolist(), strict=True)))


def test_greedy_goes_by_surplus_density() -> None:
    """The denser request (more surplus per GPU) places first, though it came later."""
    book = OrderBook([
        h100("o", "p", 4, 10),
        Request(id="early", tenant="t", gpus=4, max_price=12, submitted_at=0),
        Request(id="dense", tenant="t", gpus=2, max_price=20, submitted_at=1),
    ])
    market = Market(book)
    req, _, gpus = greedy_allocation(build_problem(market), market)
    assert market.snapshot.requests.id[req].tolist() == ["dense"]
    assert gpus.tolist() == [2]


def test_poor_incumbent_is_replaced_by_greedy(monkeypatch: pytest.MonkeyPatch) -> None:
    market = Market(contested_book())
    n = build_problem(market).n_vars
    monkeypatch.setattr(gang_mechanism, "solve_highs", lambda *a, **k: milp_outcome(
        np.zeros(n, dtype=np.int64), False, None, "Time limit reached."))
    result = auction.clear(market, "gang")
    assert result.status is Status.TIME_LIMIT
    assert result.diagnostics["source"] == "greedy"
    assert "beats" in result.message
    assert result.welfare > 0


def test_positive_mip_gap_is_reported_as_feasible(monkeypatch: pytest.MonkeyPatch) -> None:
    market = Market(contested_book())
    real = auction.clear(market, "gang", time_limit=60)
    n = build_problem(market).n_vars
    monkeypatch.setattr(gang_mechanism, "solve_highs", lambda *a, **k: milp_outcome(
        np.zeros(n, dtype=np.int64), True, float(real.welfare), "Optimal"))
    result = auction.clear(market, "gang", mip_gap=0.5)
    assert result.status is Status.FEASIBLE
    assert "stopped at mip_gap=0.5" in result.message
    assert result.diagnostics["bound"] == pytest.approx(real.welfare)


def test_solver_error_fails_with_no_allocations(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gang_mechanism, "solve_highs", lambda *a, **k: milp_outcome(
        None, False, None, "Solver error", error=True))
    result = auction.clear(example_book(0), "gang")
    assert result.status is Status.FAILED
    assert result.n_allocations == 0
    assert "failed" in result.message
    assert "Solver error" in result.message


def test_wrong_solver_solution_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two whole 2-GPU requests on one 2-GPU offer: a 'solution' taking both is refused."""
    book = OrderBook([
        h100("o", "p", 2, 1),
        Request(id="a", tenant="t", gpus=2, max_price=5),
        Request(id="b", tenant="t", gpus=2, max_price=6),
    ])
    monkeypatch.setattr(gang_mechanism, "solve_highs", lambda problem, **k: milp_outcome(
        np.ones(problem.n_vars, dtype=np.int64), True, None, "Optimal"))
    with pytest.raises(GangSolverError, match="exact check"):
        auction.clear(book, "gang")


def test_fractional_solver_values_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    book = OrderBook([h100("o", "p", 2, 1), Request(id="a", tenant="t", gpus=1, max_price=5)])

    def half(problem: Any, *args: Any) -> Any:
        return types.SimpleNamespace(status=0, x=np.full(problem.n_vars, 0.5), message="ok",
                                     mip_dual_bound=-4.0, mip_node_count=0)

    monkeypatch.setattr(milp_module, "_milp", half)
    with pytest.raises(GangSolverError, match="not an integer"):
        auction.clear(book, "gang")


# -- clusters ---------------------------------------------------------------------------------


def test_cluster_uses_one_provider_in_one_region_with_its_interconnect() -> None:
    book = OrderBook([
        # the cheapest four GPUs span providers, regions or lack nvlink: not a valid cluster
        h100("a-eu-1", "dc-a", 2, 100),
        h100("b-eu-1", "dc-b", 2, 100),
        h100("a-us-1", "dc-a", 2, 100, region="us-east"),
        h100("a-eu-plain", "dc-a", 2, 50, tags=frozenset()),
        # dc-c in eu-west has four nvlink GPUs over two offers, at a higher ask
        h100("c-eu-1", "dc-c", 2, 150),
        h100("c-eu-2", "dc-c", 2, 160),
        Request(id="job", tenant="lab", gpus=4, max_price=200, cluster=True,
                required_tags=frozenset({"nvlink"})),
    ])
    result = auction.clear(book, "gang")
    assert result.status is Status.SUCCESS
    assert sorted(rows_of(result)) == [("job", "c-eu-1", 2), ("job", "c-eu-2", 2)]
    assert result.welfare == 2 * 50 + 2 * 40


def test_cluster_that_fits_no_site_stays_unmatched() -> None:
    book = OrderBook([
        h100("a", "dc-a", 2, 100),
        h100("b", "dc-b", 2, 100),
        Request(id="job", tenant="lab", gpus=4, max_price=200, cluster=True,
                required_tags=frozenset({"nvlink"})),
        Request(id="small", tenant="app", gpus=1, max_price=120),
    ])
    result = auction.clear(book, "gang")
    assert result.unmatched_request_ids.tolist() == ["job"]
    assert result.diagnostics["sites"] == 0  # neither site has four GPUs


def test_cluster_against_whole_and_divisible_requests() -> None:
    """The cluster takes a whole site when that is worth more than the small requests."""
    book = OrderBook([
        h100("a1", "dc-a", 4, 100),
        h100("a2", "dc-a", 4, 100),
        Request(id="job", tenant="lab", gpus=8, max_price=160, cluster=True,
                required_tags=frozenset({"nvlink"})),
        Request(id="node", tenant="app", gpus=4, max_price=200),
        Request(id="bits", tenant="batch", gpus=3, max_price=170, divisible=True),
    ])
    result = auction.clear(book, "gang")
    # cluster: 8 x 60 = 480; node + bits: 4 x 100 + 3 x 70 = 610
    assert result.welfare == 610
    assert_valid(Market(book), rows_of(result))
    assert result.welfare == brute_force_welfare(Market(book))


def test_same_result_whatever_order_orders_are_added() -> None:
    orders = list(contested_book())
    first = auction.clear(OrderBook(orders), "gang")
    rng = random.Random(0)
    rng.shuffle(orders)
    second = auction.clear(OrderBook(orders), "gang")
    assert first.to_records() == second.to_records()
    assert first.status is Status.SUCCESS


# -- supporting prices ----------------------------------------------------------------------------


def _prices(result: ClearingResult) -> dict[str, int]:
    prices = result.diagnostics["equilibrium_prices"]
    assert isinstance(prices, dict)
    return prices


@settings(deadline=None, max_examples=examples(120), suppress_health_check=SLOW)
@given(market=small_markets)
def test_uniform_prices_pass_the_envy_check_or_do_not_exist(market: Market) -> None:
    note(describe_market(market))
    result = auction.clear(market, "gang", payment="uniform")
    rows = rows_of(result)
    note(f"rows {rows}, message {result.message}")
    assert result.status is Status.SUCCESS
    if result.diagnostics["equilibrium_prices"] is None:
        assert result.payment == "pay-as-bid"
        assert "no item prices" in result.message or "not found" in result.message
        assert result.unit_price.tolist() == market.snapshot.offers.price[
            result.offer_row].tolist()
        assert not price_grid_search(market, rows)
    else:
        prices = _prices(result)
        assert result.payment == "uniform"
        assert envy(market, rows, prices) is None
        assert [prices[o] for _, o, _ in rows] == result.unit_price.tolist()
        assert result.tenant_price.tolist() == result.unit_price.tolist()


def test_uniform_prices_are_the_lowest_that_support_the_allocation() -> None:
    """Three 1-GPU requests, two offers of one class: the unserved request's max price sets
    the price of the contested GPUs (it must not want them)."""
    book = OrderBook([
        h100("a", "p1", 1, 10), h100("b", "p2", 1, 12),
        Request(id="r1", tenant="t1", gpus=1, max_price=30),
        Request(id="r2", tenant="t2", gpus=1, max_price=25),
        Request(id="r3", tenant="t3", gpus=1, max_price=20),
    ])
    result = auction.clear(book, "gang", payment="uniform")
    assert _prices(result) == {"a": 20, "b": 20}
    assert result.unit_price.tolist() == [20, 20]
    assert result.status is Status.SUCCESS


def test_no_item_prices_for_a_cluster_complementarity() -> None:
    """dc-a's two 4-GPU nodes serve a training cluster (8 x (3 - 1) = 16) better than one
    inference node (4 x (4 - 1) = 12). Unserved, the inference tenant must not want a node:
    each costs at least 4. Then the cluster pays at least 4 per GPU, above its 3."""
    book = OrderBook([
        h100("node-1", "dc-a", 4, 1),
        h100("node-2", "dc-a", 4, 1),
        h100("node-3", "dc-b", 4, 1, region="us-east"),  # a second provider: more demand
        Request(id="train", tenant="lab", gpus=8, max_price=3, cluster=True,
                required_tags=frozenset({"nvlink"})),
        Request(id="infer", tenant="app", gpus=4, max_price=4, regions=frozenset({"eu-west"})),
        Request(id="batch", tenant="ml", gpus=4, max_price=5),
    ])
    market = Market(book)
    result = auction.clear(market, "gang", payment="uniform")
    assert result.status is Status.SUCCESS
    assert sorted(rows_of(result)) == [("batch", "node-3", 4), ("train", "node-1", 4),
                                       ("train", "node-2", 4)]
    assert result.payment == "pay-as-bid"
    assert result.diagnostics["equilibrium_prices"] is None
    assert "no item prices support the allocation" in result.message
    assert result.unit_price.tolist() == [1, 1, 1]
    assert not price_grid_search(market, rows_of(result))


def test_no_item_prices_for_packing_whole_requests() -> None:
    """One 3-GPU offer: whole requests of 2 (at 10) and 1 (at 1) GPUs beat the 2-GPU request
    at 9 that no longer fits. It must not want the offer (price >= 9), but the 1-GPU request
    pays at most 1."""
    book = OrderBook([
        h100("o", "p", 3, 0),
        Request(id="big", tenant="t1", gpus=2, max_price=10),
        Request(id="other", tenant="t2", gpus=2, max_price=9),
        Request(id="one", tenant="t3", gpus=1, max_price=1),
    ])
    market = Market(book)
    result = auction.clear(market, "gang", payment="uniform")
    assert result.welfare == 21
    assert result.diagnostics["equilibrium_prices"] is None
    assert not price_grid_search(market, rows_of(result))


def test_supporting_prices_prove_a_time_limited_result_optimal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    book = OrderBook([
        h100("a", "p1", 1, 10), h100("b", "p2", 1, 12),
        Request(id="r1", tenant="t1", gpus=1, max_price=30),
        Request(id="r2", tenant="t2", gpus=1, max_price=25),
    ])
    problem = build_problem(Market(book))
    real = gang_module.solve_highs(problem, time_limit=10, mip_gap=0)
    monkeypatch.setattr(gang_mechanism, "solve_highs", lambda *a, **k: milp_outcome(
        real.values, False, None, "Time limit reached."))
    plain = auction.clear(book, "gang")
    assert plain.status is Status.TIME_LIMIT
    uniform = auction.clear(book, "gang", payment="uniform")
    assert uniform.status is Status.SUCCESS
    assert "proven by supporting prices" in uniform.message
    assert uniform.diagnostics["gap"] == 0.0


# -- edges, options, registry ------------------------------------------------------------------


@pytest.mark.parametrize("payment", ["pay-as-bid", "uniform"])
def test_empty_markets(payment: str) -> None:
    for book in (OrderBook(), OrderBook([h100("o", "p", 1, 5)]),
                 OrderBook([Request(id="r", tenant="t", gpus=1, max_price=5)])):
        result = auction.clear(book, "gang", payment=payment)
        assert result.status is Status.SUCCESS
        assert result.n_allocations == 0


def test_overflow_is_refused() -> None:
    book = OrderBook([h100("o", "p", 8, 0), Request(id="r", tenant="t", gpus=8,
                                                   max_price=2**60)])
    with pytest.raises(AuctionOverflowError, match="2\\*\\*53"):
        auction.clear(book, "gang")


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"backend": "gurobi"}, "backend must be one of"),
        ({"backend": "pulp", "backend_options": {"solver": "NO_SUCH_SOLVER"}}, "not available"),
        ({"backend_options": {"pulp_solver": "HiGHS"}}, "backend_options"),
        ({"time_limit": 0}, "time_limit"),
        ({"time_limit": float("inf")}, "time_limit"),
        ({"time_limit": "10"}, "time_limit"),
        ({"mip_gap": -0.1}, "mip_gap"),
        ({"mip_gap": 1.0}, "mip_gap"),
    ],
)
def test_bad_options(options: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidOptionError, match=match) as info:
        Gang(**options)
    assert info.value.field in options


def test_registry_tags_and_options() -> None:
    mech = auction.mechanisms.get("gang", time_limit=5, mip_gap=0.01)
    assert isinstance(mech, Gang)
    tags = mech.tags
    assert tags.payments == ("pay-as-bid", "uniform")
    assert tags.needs_solver
    assert tags.divisible
    assert not tags.exact_optimal  # time limits
    assert tags.individually_rational
    assert tags.budget_balanced
    result = auction.clear(example_book(0), mech)
    assert result.options == {"payment": "pay-as-bid", "backend": "highs",
                              "backend_options": {}, "time_limit": 5.0, "max_memory": None,
                              "mip_gap": 0.01}
    for key in ("solver", "solver_status", "objective", "bound", "gap", "solve_seconds",
                "build_seconds", "edges", "variables", "constraints", "source"):
        assert key in result.diagnostics


def test_shared_assignment_refusal_names_gang() -> None:
    book = OrderBook([h100("o", "p", 4, 1), Request(id="r", tenant="t", gpus=2, max_price=5)])
    with pytest.raises(UnsupportedMarketError) as info:
        auction.clear(book, "assignment", shape="shared")
    assert info.value.alternatives[0] == "gang"
    assert auction.clear(book, info.value.alternatives[0]).welfare == 8


def test_highs_stray_debug_line_is_dropped_and_other_output_kept(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """HiGHS (as bundled with scipy) prints a debug line to fd 1 whatever its log options;
    the MILP solve drops that line and writes back everything else, in order."""
    from auction.solvers import milp as milp_mod

    with milp_mod._without_highs_stray_line():
        os.write(1, b"before\n" + milp_mod._HIGHS_STRAY + b"\nafter\n")
        with milp_mod._without_highs_stray_line():  # nested solves share the redirect
            os.write(1, milp_mod._HIGHS_STRAY + b"\nnested\n")
    out = capfd.readouterr().out
    assert out == "before\nafter\nnested\n"
