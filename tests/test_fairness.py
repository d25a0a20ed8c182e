"""Fairness metrics: hand-computed golden values, edge cases and properties of the indices."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import auction
from auction import ClearingResult, Market, Offer, OrderBook, Request
from auction.demo import example_book, example_exchange_book, example_reputation
from auction.fairness import (
    FairnessReport,
    efficiency,
    gini,
    jain_index,
    provider_revenues,
    report,
)


def _small_book() -> OrderBook:
    """Four H100 requests against three H100 offers (A, B, C) and an unwanted A100 (D)."""
    h100 = frozenset({"H100"})
    return OrderBook(
        [
            Offer(id="o1", provider="A", gpu_model="H100", gpus=4, price=100, region="us",
                  vram_gb=80),
            Offer(id="o2", provider="B", gpu_model="H100", gpus=2, price=150, region="us",
                  vram_gb=80),
            Offer(id="o3", provider="C", gpu_model="H100", gpus=2, price=300, region="us",
                  vram_gb=80),
            Offer(id="o4", provider="D", gpu_model="A100", gpus=8, price=50, region="us",
                  vram_gb=80),
            Request(id="r1", tenant="t1", gpus=4, max_price=200, gpu_models=h100, submitted_at=0),
            Request(id="r2", tenant="t2", gpus=2, max_price=250, gpu_models=h100, submitted_at=1),
            Request(id="r3", tenant="t3", gpus=2, max_price=120, gpu_models=h100, submitted_at=2),
            Request(id="r4", tenant="t4", gpus=3, max_price=400, gpu_models=h100, submitted_at=3,
                    divisible=True),
        ]
    )


@pytest.fixture
def market() -> Market:
    return Market(_small_book())


def _rows(market: Market, ids: list[str], side: str) -> list[int]:
    col = getattr(market.snapshot, side).id.tolist()
    return [col.index(i) for i in ids]


# -- golden values ------------------------------------------------------------------------


def test_first_price_golden(market: Market) -> None:
    # r1 takes o1 (4 @ 100), r2 takes o2 (2 @ 150), r3's cap 120 is below o3, r4 gets o3's 2
    # GPUs of 3 (divisible). Revenues: A 400, B 300, C 600, D 0 (D is in the population).
    result = auction.clear(market, "first-price")
    rep = report(result, market)
    assert rep.welfare == 100 * 4 + 100 * 2 + 100 * 2 == 800
    assert rep.gpus_requested == 11
    assert rep.gpus_filled == 8
    assert rep.fill_rate == 8 / 11
    assert (rep.requests, rep.requests_filled, rep.request_fill_rate) == (4, 2, 0.5)
    assert (rep.providers, rep.providers_paid) == (4, 3)
    assert rep.jain == pytest.approx(1300**2 / (4 * (400**2 + 300**2 + 600**2)))
    assert rep.jain == pytest.approx(0.692622950819672)
    # sorted [0, 300, 400, 600]: (-3*0 - 1*300 + 1*400 + 3*600) / (4 * 1300)
    assert rep.gini == pytest.approx(1900 / 5200)
    assert rep.ir_violations == 0
    assert rep.total_payment == rep.provider_revenue == 1300
    assert rep.budget_balance == 0
    assert rep.average_price == rep.average_tenant_price == 1300 / 8
    assert rep.efficiency is None
    assert rep.optimum is None
    assert provider_revenues(result, market) == {"A": 400, "B": 300, "C": 600, "D": 0}


def test_ir_violations_and_budget_balance_golden(market: Market) -> None:
    result = ClearingResult.from_allocation(
        market,
        request_row=_rows(market, ["r1", "r2", "r4", "r3"], "requests"),
        offer_row=_rows(market, ["o1", "o2", "o3", "o2"], "offers"),
        gpus=[4, 2, 1, 1],
        unit_price=[100, 140, 300, 150],
        tenant_price=[120, 140, 500, 100],
        mechanism="handmade",
        payment="custom",
    )
    rep = report(result, market)
    # r1/o1: 100 <= 100 <= 120 <= 200, fine (a margin of 20 per GPU)
    # r2/o2: unit 140 < ask 150; r4/o3: tenant 500 > max 400; r3/o2: unit 150 > tenant 100
    assert rep.ir_violations == 3
    assert rep.total_payment == 120 * 4 + 140 * 2 + 500 + 100 == 1360
    assert rep.provider_revenue == 100 * 4 + 140 * 2 + 300 + 150 == 1130
    assert rep.budget_balance == 230
    assert rep.welfare == 100 * 4 + 100 * 2 + 100 * 1 + (120 - 150) * 1 == 670
    assert rep.mechanism == "handmade"
    assert rep.average_price == 1130 / 8
    assert rep.average_tenant_price == 1360 / 8


def test_jain_and_gini_golden() -> None:
    assert jain_index([1, 2, 3, 4]) == 100 / 120
    assert gini([1, 2, 3, 4]) == 0.25
    assert gini([4, 1, 3, 2]) == 0.25
    # one provider holds everything: the extremes 1/n and (n - 1)/n
    assert jain_index([0, 0, 0, 7]) == 0.25
    assert gini([0, 0, 0, 7]) == 0.75


@pytest.mark.parametrize(
    ("values", "jain", "gini_value"),
    [
        ([], 1.0, 0.0),  # no providers: nobody is treated unequally
        ([0, 0, 0], 1.0, 0.0),  # nobody earned: perfectly even
        ([5], 1.0, 0.0),  # one provider
        ([0], 1.0, 0.0),
    ],
)
def test_index_edge_cases(values: list[int], jain: float, gini_value: float) -> None:
    assert jain_index(values) == jain
    assert gini(values) == gini_value


def test_indices_refuse_negative_and_non_int() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        jain_index([1, -1])
    with pytest.raises(ValueError, match=">= 0"):
        gini([-3])
    with pytest.raises(TypeError):
        jain_index([1.5])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        gini([True])


def test_efficiency() -> None:
    assert efficiency(800, 1000) == 0.8
    assert efficiency(800, 800) == 1.0
    assert efficiency(0, 0) == 1.0  # nothing to gain, nothing lost
    assert efficiency(-5, 0) == -math.inf
    with pytest.raises(ValueError, match="not an optimum"):
        efficiency(801, 800)
    with pytest.raises(ValueError, match=">= 0"):
        efficiency(0, -1)


def test_report_efficiency(market: Market) -> None:
    result = auction.clear(market, "first-price")
    assert report(result, market, optimum=1000).efficiency == 0.8
    assert report(result, market, optimum=800).efficiency == 1.0
    with pytest.raises(ValueError, match="not an optimum"):
        report(result, market, optimum=799)


def test_empty_market() -> None:
    market = Market(OrderBook())
    rep = report(auction.clear(market, "first-price"), market, optimum=0)
    assert rep == FairnessReport(
        mechanism="first-price", welfare=0, optimum=0, efficiency=1.0, gpus_requested=0,
        gpus_filled=0, fill_rate=1.0, requests=0, requests_filled=0, request_fill_rate=1.0,
        providers=0, providers_paid=0, jain=1.0, gini=0.0, ir_violations=0, total_payment=0,
        provider_revenue=0, budget_balance=0, average_price=None, average_tenant_price=None,
    )


def test_nothing_matches_counts_every_provider() -> None:
    book = _small_book()
    for rid in ("r1", "r2", "r3", "r4"):
        book.amend(rid, max_price=10)
    m = Market(book)
    rep = report(auction.clear(m, "second-price"), m)
    assert (rep.gpus_filled, rep.fill_rate, rep.requests_filled) == (0, 0.0, 0)
    assert (rep.providers, rep.providers_paid, rep.jain, rep.gini) == (4, 0, 1.0, 0.0)
    assert rep.average_price is None


def test_result_from_another_market_is_refused(market: Market) -> None:
    other = Market(example_book(0))
    result = auction.clear(other, "first-price")
    with pytest.raises(ValueError, match="not cleared on this market"):
        report(result, market)


def test_report_agrees_with_result_on_example_market() -> None:
    orders = Market(example_book(3), example_reputation(3))
    exchange = Market(example_exchange_book(3))  # for the bulk mechanisms
    for name in auction.mechanisms.available():
        try:
            market, result = orders, auction.clear(orders, name)
        except auction.UnsupportedMarketError:
            market, result = exchange, auction.clear(exchange, name, rng=3)
        rep = report(result, market)
        assert rep.welfare == result.welfare
        assert rep.total_payment == result.total_payment
        assert rep.provider_revenue == result.provider_revenue
        assert rep.gpus_filled == result.gpus_allocated
        assert sum(provider_revenues(result, market).values()) == result.provider_revenue
        assert rep.providers == len(set(market.snapshot.offers.provider.tolist()))
        assert 0.0 < rep.fill_rate < 1.0
        assert rep.requests_filled == (
            rep.requests - len(result.unmatched_request_ids) - len(result.partial_request_ids)
        )
        assert rep.ir_violations == 0  # built-in mechanisms are individually rational
        if auction.mechanisms.tags_of(name).budget_balanced:
            assert rep.budget_balance == 0, name
        else:  # McAfee's trade reduction: the platform keeps a margin, never a deficit
            assert rep.budget_balance >= 0, name
        assert isinstance(rep.to_dict()["jain"], float)


# -- properties of the indices ------------------------------------------------------------

revenues = st.lists(st.integers(min_value=0, max_value=10**15), min_size=1, max_size=40)


@given(revenues)
def test_jain_bounds(xs: list[int]) -> None:
    assert 1 / len(xs) <= jain_index(xs) <= 1.0


@given(revenues)
def test_gini_bounds(xs: list[int]) -> None:
    g = gini(xs)
    assert 0.0 <= g < 1.0
    assert g <= (len(xs) - 1) / len(xs)


@given(revenues, st.integers(min_value=1, max_value=10**9))
def test_indices_are_scale_invariant(xs: list[int], k: int) -> None:
    scaled = [k * x for x in xs]
    assert jain_index(scaled) == jain_index(xs)
    assert gini(scaled) == gini(xs)


@given(st.integers(min_value=0, max_value=10**15), st.integers(min_value=1, max_value=50))
def test_equal_revenues_are_perfectly_fair(x: int, n: int) -> None:
    assert jain_index([x] * n) == 1.0
    assert gini([x] * n) == 0.0


@given(revenues, st.randoms(use_true_random=False))
def test_indices_ignore_order(xs: list[int], rnd: random.Random) -> None:
    shuffled = list(xs)
    rnd.shuffle(shuffled)
    assert jain_index(shuffled) == jain_index(xs)
    assert gini(shuffled) == gini(xs)


@given(revenues)
def test_gini_matches_pairwise_definition(xs: list[int]) -> None:
    total = sum(xs)
    if total == 0:
        assert gini(xs) == 0.0
        return
    pairwise = sum(abs(a - b) for a in xs for b in xs)
    assert gini(xs) == pytest.approx(pairwise / (2 * len(xs) * total), rel=1e-12)


@given(st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=40))
def test_jain_matches_float_formula(xs: list[int]) -> None:
    a = np.asarray(xs, dtype=np.float64)
    expected = 1.0 if a.sum() == 0 else a.sum() ** 2 / (len(a) * (a**2).sum())
    assert jain_index(xs) == pytest.approx(expected, rel=1e-12)


def test_report_money_is_the_results_exact_totals() -> None:
    """VCG pays whole-row bonuses that are not multiples of the GPUs: unit_price x gpus
    rounds them down, the report must not (it reads the exact row payments)."""
    from auction import Market, Offer, OrderBook, Request, clear
    from auction.fairness import report

    book = OrderBook([
        Offer(id="a", provider="p1", gpu_model="H100", gpus=3, price=10, region="x", vram_gb=80),
        Offer(id="b", provider="p2", gpu_model="H100", gpus=3, price=15, region="x", vram_gb=80),
        Request(id="r", tenant="t", gpus=2, max_price=21),
        Request(id="s", tenant="u", gpus=3, max_price=17),
    ])
    market = Market(book)
    result = clear(market, "assignment", payment="vcg")  # p2's bonus 11 over 2 GPUs
    rounded = int((result.unit_price * result.gpus).sum())
    assert rounded != result.provider_revenue  # the case that used to disagree
    rep = report(result, market)
    assert rep.provider_revenue == result.provider_revenue
    assert rep.total_payment == result.total_payment
    assert rep.budget_balance == result.total_payment - result.provider_revenue
