"""`matching_problem` through the `exclusive_csr` kernel against the numpy reference
(`matching_problem_reference`, from `Market.priority_pairs`), and the kernel against its
plain-Python self, on random markets (with quality bonuses, reputation, huge prices) and on
the example book."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import auction
from auction import Market
from auction.errors import AuctionOverflowError
from auction.kernels.pairs import exclusive_csr
from auction.problems.matching import (
    MatchingProblem,
    matching_problem,
    matching_problem_reference,
)
from auction.testing import markets


def _problem(build: object, market: Market) -> MatchingProblem | type[AuctionOverflowError]:
    try:
        return build(market)  # type: ignore[operator, no-any-return]
    except AuctionOverflowError:
        return AuctionOverflowError


def _same(a: object, b: object) -> None:
    if isinstance(a, MatchingProblem) and isinstance(b, MatchingProblem):
        for field in ("person_request", "object_offer", "indptr", "cols", "weight"):
            x, y = getattr(a, field), getattr(b, field)
            assert x.dtype == y.dtype == np.int64, field
            assert np.array_equal(x, y), field
    else:
        assert a is b


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(markets(max_offers=8, max_requests=8, quality=True))
def test_matching_problem_equals_reference(market: Market) -> None:
    _same(_problem(matching_problem, market), _problem(matching_problem_reference, market))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(markets(max_offers=8, max_requests=8, quality=True))
def test_kernel_equals_python(market: Market) -> None:
    pairs = market.pairs()
    rq, of = market.snapshot.requests, market.snapshot.offers
    args = (pairs.indptr, pairs.offers, pairs.surplus, market.request_order, market.offer_rank,
            market.offer_bonus, rq.gpus, of.gpus)
    with np.errstate(over="ignore"):  # huge prices: weights wrap, as in the kernel
        fast, slow = exclusive_csr(*args), exclusive_csr.py_func(*args)
    for x, y in zip(fast[:3], slow[:3], strict=True):
        assert np.array_equal(x, y)
    assert (int(fast[3]), int(fast[4])) == (int(slow[3]), int(slow[4]))


@pytest.mark.parametrize("seed", [0, 1])
def test_example_book(seed: int) -> None:
    market = Market(auction.demo.example_book(seed))
    problem = matching_problem(market)
    assert len(problem.cols) > 1000
    _same(problem, matching_problem_reference(market))
