"""The `lp` mechanism: optimum against independent oracles, exact prices by their invariants."""

from __future__ import annotations

import itertools
from typing import Any

import attrs
import numpy as np
import pytest
from hypothesis import assume, given, note, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

import auction
from auction import Market, Offer, OrderBook, Request, Status
from auction.errors import InvalidOptionError, SolverError, UnsupportedMarketError
from auction.mechanisms import lp as lp_module
from auction.mechanisms.lp import (
    LinearProgram,
    equilibrium_prices,
    solve_transport,
    transport_problem,
)
from auction.testing import describe_market, is_eligible, markets
from auction.testing.oracles import reputation_of

SPLITTABLE = markets(splittable=True, huge_prices=False, max_offers=6, max_requests=6)


def offer(oid: str, price: int, gpus: int = 1, provider: str | None = None, **kw: Any) -> Offer:
    return Offer(id=oid, provider=provider or f"p-{oid}", gpu_model="H100", gpus=gpus,
                 price=price, region="us-east", vram_gb=80, **kw)


def request(rid: str, max_price: int, gpus: int = 1, **kw: Any) -> Request:
    kw.setdefault("divisible", gpus > 1)
    return Request(id=rid, tenant=f"t-{rid}", gpus=gpus, max_price=max_price, **kw)


def score(market: Market, result: auction.ClearingResult) -> int:
    """Total score: surplus plus quality bonus, per GPU-hour (the welfare without quality)."""
    return result.welfare + int((market.offer_bonus[result.offer_row] * result.gpus).sum())


def brute_force_welfare(market: Market) -> int:
    """Best score over every integer flow (tiny markets only)."""
    p = transport_problem(market)
    ranges = [range(min(int(p.demand[a]), int(p.capacity[b])) + 1)
              for a, b in zip(p.person, p.obj, strict=True)]
    best = 0
    for x in itertools.product(*ranges):
        flow = np.array(x, dtype=np.int64)
        if (np.bincount(p.person, flow, p.n) <= p.demand).all() and (
            np.bincount(p.obj, flow, p.m) <= p.capacity
        ).all():
            best = max(best, int((flow * p.weight).sum()))
    return best


def lowest_total_rent(market: Market, welfare: int) -> float:
    """Independent oracle: the least total rent sum(c.p) over optimal duals, by a HiGHS LP."""
    p = transport_problem(market)
    n, m, e = p.n, p.m, p.n_edges
    if e == 0:
        return 0.0
    # variables [u (n), p (m)]; u_r + p_o >= w_e on every edge; g.u + c.p == welfare
    a = np.zeros((e, n + m))
    a[np.arange(e), p.person] = -1
    a[np.arange(e), n + p.obj] = -1
    res = linprog(
        np.concatenate([np.zeros(n), p.capacity.astype(float)]),
        A_ub=a, b_ub=-p.weight.astype(float),
        A_eq=np.concatenate([p.demand, p.capacity]).astype(float)[None, :], b_eq=[welfare],
        bounds=(0, None), method="highs",
    )
    assert res.status == 0
    return float(res.fun)


# -- the optimum -----------------------------------------------------------------------------
@given(market=SPLITTABLE)
def test_lp_matches_shared_assignment_and_highs_value(market: Market) -> None:
    note(describe_market(market))
    result = auction.clear(market, "lp")
    assert result.status is Status.SUCCESS
    shared = auction.clear(market, "assignment", shape="shared")
    assert score(market, result) == score(market, shared) == result.diagnostics["objective"]


@settings(max_examples=60, deadline=None)
@given(market=markets(splittable=True, huge_prices=False, max_offers=6, max_requests=6))
def test_shared_vcg_is_remove_and_resolve_by_highs(market: Market) -> None:
    """The shared shape's VCG bonuses (flow kernel re-solves) against HiGHS on the problem
    without each provider's offers, an independent solver."""
    note(describe_market(market))
    assume(not market.scoring)
    result = auction.clear(market, "assignment", shape="shared", payment="vcg", debug=True)
    assert result.status is Status.SUCCESS
    assert result.payment == "vcg"
    problem = transport_problem(market)
    flow, _ = solve_transport(problem, backend="highs")
    assert flow is not None
    whole = int((problem.weight * flow).sum())
    assert result.welfare == whole
    provider = market.snapshot.offers.provider[problem.offer_row]
    parties = market.snapshot.parties
    bonus = result.diagnostics["vcg_bonus"]
    for code in np.unique(provider).tolist():
        rest = attrs.evolve(problem, capacity=np.where(provider == code, 0, problem.capacity))
        flow, _ = solve_transport(rest, backend="highs")
        assert flow is not None
        lost = whole - int((problem.weight * flow).sum())
        assert bonus.get(parties[code], 0) == lost, parties[code]
    # payments add up to asks plus bonuses
    asks = int((market.snapshot.offers.price[result.offer_row] * result.gpus).sum())
    assert int(result.provider_payment.sum()) == asks + sum(bonus.values())


@settings(max_examples=60)
@given(market=markets(splittable=True, huge_prices=False, max_offers=3, max_requests=3))
def test_lp_matches_brute_force(market: Market) -> None:
    note(describe_market(market))
    if len(transport_problem(market).weight) > 6:
        return
    assert score(market, auction.clear(market, "lp")) == brute_force_welfare(market)


@pytest.mark.parametrize(
    ("backend", "method"),
    [("highs", "dual-simplex"), ("highs", "auto"), ("highspy", "primal-simplex"),
     ("highspy", "ipm"), ("pulp", "ipm"), ("flow", "ipm")],
)
@settings(max_examples=15)
@given(market=SPLITTABLE)
def test_backends_agree(backend: str, method: str, market: Market) -> None:
    reference = auction.clear(market, "lp")
    other = auction.clear(market, "lp", backend=backend, backend_options={"method": method})
    assert other.status is Status.SUCCESS, other.message
    assert score(market, other) == score(market, reference)


def test_pulp_highs_solver_by_name() -> None:
    book = OrderBook([offer("o1", 10, gpus=4), request("r1", 15, gpus=3), request("r2", 12)])
    result = auction.clear(book, "lp", backend="pulp", backend_options={"solver": "HiGHS"})
    assert result.welfare == 3 * 5 + 2


# -- prices ----------------------------------------------------------------------------------
def _price_invariants(market: Market, result: auction.ClearingResult) -> None:
    """Competitive equilibrium, checked on the order objects."""
    snap = market.snapshot
    offers = {o.id: o for o in snap.offer_list()}
    reqs = {r.id: r for r in snap.request_list()}
    rows = snap.offers.id.tolist()
    price = dict(zip(rows, result.diagnostics["offer_price"].tolist(), strict=True))
    got: dict[str, int] = {}
    used: dict[str, int] = {}
    utility: dict[str, set[int]] = {}
    for rec in result.to_records():
        o, r = offers[rec["offer_id"]], reqs[rec["request_id"]]
        assert rec["unit_price"] == rec["tenant_price"] == price[o.id]
        assert o.price <= price[o.id] <= r.max_price
        got[r.id] = got.get(r.id, 0) + rec["gpus"]
        used[o.id] = used.get(o.id, 0) + rec["gpus"]
        utility.setdefault(r.id, set()).add(r.max_price - price[o.id])
    for o in offers.values():
        if used.get(o.id, 0) < o.gpus:
            assert price[o.id] == o.price, f"idle GPUs of {o.id} priced above the ask"
    for r in reqs.values():
        assert len(utility.get(r.id, {0})) == 1, f"{r.id} pays different margins"
        u = next(iter(utility.get(r.id, {0})))
        if got.get(r.id, 0) < r.gpus:
            assert u == 0 or r.id not in got, f"partly served {r.id} keeps a margin"
            u = 0
        for o in offers.values():
            rep = reputation_of(market, o.provider)
            if is_eligible(o, r, rep):
                assert r.max_price - price[o.id] <= u, f"{r.id} envies {o.id}"


@given(market=SPLITTABLE, rule=st.sampled_from(["lowest", "highest"]))
def test_uniform_prices_are_a_competitive_equilibrium(market: Market, rule: str) -> None:
    note(describe_market(market))
    assume(not market.scoring)
    result = auction.clear(market, "lp", payment="uniform", prices=rule)
    assert result.status is Status.SUCCESS
    _price_invariants(market, result)


@given(market=SPLITTABLE)
def test_lowest_and_highest_bracket_every_equilibrium(market: Market) -> None:
    assume(not market.scoring)
    low = auction.clear(market, "lp", payment="uniform", prices="lowest")
    high = auction.clear(market, "lp", payment="uniform", prices="highest")
    assert (low.diagnostics["offer_price"] <= high.diagnostics["offer_price"]).all()
    assert (low.diagnostics["request_profit"] >= high.diagnostics["request_profit"]).all()
    # the lowest prices minimize total rent over all optimal duals (an LP says so too)
    of = market.snapshot.offers
    rent = int(((low.diagnostics["offer_price"] - of.price) * of.gpus).sum())
    assert rent == pytest.approx(lowest_total_rent(market, low.welfare), abs=1e-6)


@settings(max_examples=60)
@given(
    asks=st.lists(st.integers(1, 30), min_size=1, max_size=6),
    bids=st.lists(st.integers(1, 30), min_size=1, max_size=6),
    rule=st.sampled_from(["lowest", "highest"]),
)
def test_one_class_price_lies_between_marginal_orders(
    asks: list[int], bids: list[int], rule: str
) -> None:
    book = OrderBook([offer(f"o{i}", a) for i, a in enumerate(asks)]
                     + [request(f"r{i}", b) for i, b in enumerate(bids)])
    result = auction.clear(book, "lp", payment="uniform", prices=rule)
    if not len(result):
        assert min(asks) >= max(bids)
        return
    prices = set(result.unit_price.tolist())
    assert len(prices) == 1, "one class, one price"
    q = prices.pop()
    won = set(result.offer_id.tolist())
    served = set(result.request_id.tolist())
    accepted_asks = [a for i, a in enumerate(asks) if f"o{i}" in won]
    rejected_asks = [a for i, a in enumerate(asks) if f"o{i}" not in won]
    accepted_bids = [b for i, b in enumerate(bids) if f"r{i}" in served]
    rejected_bids = [b for i, b in enumerate(bids) if f"r{i}" not in served]
    assert max(accepted_asks + rejected_bids) <= q <= min(accepted_bids + rejected_asks)
    k = len(won)
    s, b = sorted(asks), sorted(bids, reverse=True)
    low = max([s[k - 1]] + ([b[k]] if k < len(b) else []))
    high = min([b[k - 1]] + ([s[k]] if k < len(s) else []))
    assert q == (low if rule == "lowest" else high)


def test_golden_one_class_prices() -> None:
    # asks 10, 20, 30 and bids 40, 25, 15: two trades; price in [max(20, 15), min(25, 30)]
    book = OrderBook([offer("o1", 10), offer("o2", 20), offer("o3", 30),
                      request("r1", 40), request("r2", 25), request("r3", 15)])
    low = auction.clear(book, "lp", payment="uniform")
    high = auction.clear(book, "lp", payment="uniform", prices="highest")
    assert low.unit_price.tolist() == [20, 20]
    assert high.unit_price.tolist() == [25, 25]
    assert low.welfare == high.welfare == (40 - 10) + (25 - 20)
    assert low.total_payment == low.provider_revenue == 40


def test_certificate_rejects_a_suboptimal_flow() -> None:
    book = OrderBook([offer("o1", 10, gpus=2), request("r1", 15, gpus=2)])
    problem = transport_problem(Market(book))
    assert equilibrium_prices(problem, np.array([2])) is not None
    assert equilibrium_prices(problem, np.array([1])) is None
    assert equilibrium_prices(problem, np.array([0])) is None


# -- failures are results or typed errors, never wrong allocations ---------------------------
def _book() -> OrderBook:
    return OrderBook([offer("o1", 10, gpus=4), request("r1", 15, gpus=3), request("r2", 12)])


def test_fractional_solution_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    def fractional(problem: Any, method: str, limit: Any) -> Any:
        return lp_module._answer(problem, "highs", np.full(problem.n_edges, 0.5), "optimal",
                                 "", 0.0, 0.0)

    monkeypatch.setattr(lp_module, "_solve_highs", fractional)
    result = auction.clear(_book(), "lp", backend="highs")
    assert result.status is Status.FAILED
    assert len(result) == 0
    assert "fractional" in result.message


def test_suboptimal_solution_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    def lazy(problem: Any, method: str, limit: Any) -> Any:
        return lp_module._answer(problem, "highs", np.zeros(problem.n_edges), "optimal", "", 0, 0)

    monkeypatch.setattr(lp_module, "_solve_highs", lazy)
    result = auction.clear(_book(), "lp", backend="highs")
    assert result.status is Status.FAILED
    assert "not optimal" in result.message


def test_infeasible_solution_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    def greedy(problem: Any, method: str, limit: Any) -> Any:
        return lp_module._answer(problem, "highs", problem.demand[problem.person], "optimal",
                                 "", 0, 0)

    monkeypatch.setattr(lp_module, "_solve_highs", greedy)
    result = auction.clear(OrderBook([offer("o1", 10, gpus=2), request("r1", 15, gpus=3)]), "lp",
                           backend="highs")
    assert result.status is Status.FAILED
    assert "more GPUs" in result.message


def test_time_limit_gives_a_time_limit_result(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    real = lp_module._solve_highs

    def spy(problem: Any, method: str, limit: Any) -> Any:
        seen["limit"] = limit
        out = real(problem, method, limit)
        return lp_module._answer(problem, "highs", None, "time_limit", "Time limit reached.",
                                 0.0, 0.0) if limit else out

    monkeypatch.setattr(lp_module, "_solve_highs", spy)
    result = auction.clear(_book(), "lp", backend="highs", time_limit=0.5)
    assert 0 < seen["limit"] <= 0.5  # what is left of the clearing's 0.5 s after the build
    assert result.status is Status.TIME_LIMIT
    assert not result.success
    assert len(result) == 0
    assert "Time limit" in result.message


def test_unknown_pulp_solver_is_a_typed_error() -> None:
    with pytest.raises(SolverError, match="NO_SUCH_SOLVER"):
        auction.clear(_book(), "lp", backend="pulp", backend_options={"solver": "NO_SUCH_SOLVER"})


def test_missing_highspy_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "highspy" else real(name, *a))
    with pytest.raises(SolverError, match=r"auction\[highs\]"):
        LinearProgram(backend="highspy")


@pytest.mark.parametrize(
    "options",
    [{"backend": "cplex"}, {"backend_options": {"method": "primal-simplex"}},
     {"backend_options": {"method": "barrier"}}, {"time_limit": 0}, {"time_limit": True},
     {"prices": "middle"}, {"backend_options": {"solver": ""}},
     {"backend_options": {"no_such": 1}}],
)
def test_bad_options(options: dict[str, Any]) -> None:
    with pytest.raises(InvalidOptionError, match=next(iter(options))) as info:
        LinearProgram(**options)
    assert info.value.field == next(iter(options))
    assert isinstance(info.value, auction.AuctionError)


def test_unknown_option_is_a_typed_error() -> None:
    with pytest.raises(InvalidOptionError, match="method") as info:
        auction.clear(_book(), "lp", method="ipm")
    assert info.value.field == "method"


def test_all_or_nothing_requests_are_refused_with_alternatives() -> None:
    book = OrderBook([offer("o1", 10, gpus=4), request("r1", 15, gpus=3, divisible=False)])
    with pytest.raises(UnsupportedMarketError, match="'r1'") as info:
        auction.clear(book, "lp")
    assert "gang" in info.value.alternatives


def test_empty_and_no_edge_markets() -> None:
    assert auction.clear(OrderBook(), "lp").status is Status.SUCCESS
    book = OrderBook([offer("o1", 20), request("r1", 10)])
    result = auction.clear(book, "lp", payment="uniform")
    assert result.status is Status.SUCCESS
    assert len(result) == 0


def test_seeded_larger_market_against_linprog() -> None:
    rng = np.random.default_rng(7)
    orders: list[Offer | Request] = [
        Offer(id=f"o{i}", provider=f"p{i % 17}", gpu_model=["H100", "A100"][i % 2],
              gpus=int(rng.integers(1, 9)), price=int(rng.integers(100, 300)),
              region=["eu", "us"][i % 3 == 0], vram_gb=80)
        for i in range(60)
    ]
    orders += [
        Request(id=f"r{i}", tenant=f"t{i}", gpus=int(rng.integers(1, 9)), divisible=True,
                max_price=int(rng.integers(150, 400)),
                gpu_models=frozenset({["H100", "A100"][i % 2]}))
        for i in range(200)
    ]
    market = Market(OrderBook(orders))
    problem = transport_problem(market)
    flow, _ = solve_transport(problem, backend="highs", method="dual-simplex")
    assert flow is not None
    result = auction.clear(market, "lp", payment="uniform")
    assert result.welfare == int((flow * problem.weight).sum())
    _price_invariants(market, result)


def test_uniform_prices_refused_on_scoring_markets() -> None:
    market = Market(_book(), {"p-o1": 1.0}, quality_weight=5)
    with pytest.raises(UnsupportedMarketError, match="score"):
        auction.clear(market, "lp", payment="uniform")
    assert auction.clear(market, "lp").status is Status.SUCCESS


def test_auto_backend_is_the_default_and_agrees_with_highs() -> None:
    book = OrderBook([offer("o1", 10, gpus=4), offer("o2", 11, gpus=2),
                      request("r1", 15, gpus=3), request("r2", 12, gpus=2)])
    auto = auction.clear(book, "lp")
    highs = auction.clear(book, "lp", backend="highs")
    assert auto.options["backend"] == "auto"
    assert auto.status is Status.SUCCESS
    assert auto.welfare == highs.welfare


def test_flow_backend_honours_the_time_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    import auction.solvers.flow as flow_module

    def stopped(*args: Any, **kwargs: Any) -> Any:
        assert kwargs["deadline"] is not None
        return np.zeros(0, dtype=np.int64), {"status": "deadline", "phases": 1, "pushes": 0,
                                             "relabels": 0, "scale": 3}

    monkeypatch.setattr(flow_module, "transport_max_weight", stopped)
    result = auction.clear(_book(), "lp", backend="flow", time_limit=5)
    assert result.status is Status.TIME_LIMIT
    assert not result.success
    assert len(result) == 0


# -- one solver outcome type, one diagnostics schema ---------------------------------------------
def test_every_solver_adapter_returns_one_outcome_with_one_schema() -> None:
    from auction.mechanisms.gang import build_problem, solve_highs, solve_pulp
    from auction.solvers.outcome import STATS_KEYS, SolverOutcome

    market = Market(_book())
    problem = transport_problem(market)
    outcomes = [lp_module.solve(problem, backend=b) for b in ("flow", "highs", "pulp", "auto")]
    gang = build_problem(market)
    outcomes += [solve_highs(gang, time_limit=10, mip_gap=0),
                 solve_pulp(gang, solver="PULP_CBC_CMD", time_limit=10, mip_gap=0)]
    for out in outcomes:
        assert isinstance(out, SolverOutcome)
        assert out.status == "optimal", out
        assert out.optimal
        assert not out.error
        assert out.values is not None
        for key in STATS_KEYS:
            assert key in out.stats, (out.stats["solver"], key)
        assert out.stats["solver_status"] == out.status
        assert out.stats["edges"] == problem.n_edges
    # lp, assignment (shared) and gang report the same keys in their diagnostics
    for result in (auction.clear(market, "lp"), auction.clear(market, "gang"),
                   auction.clear(market, "assignment", shape="shared")):
        for key in STATS_KEYS:
            assert key in result.diagnostics, (result.mechanism, key)


def test_invalid_outcome_status_is_refused() -> None:
    from auction.solvers.outcome import SolverOutcome

    with pytest.raises(ValueError, match="status"):
        SolverOutcome(None, "done")
