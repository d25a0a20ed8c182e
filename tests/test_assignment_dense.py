"""The assignment mechanism's dense path (Jonker-Volgenant) against its auction path and scipy.

Dense markets (every request eligible for most offers) of at least
`DENSE_MIN_CELLS` cells are solved by `auction.kernels.dense`; the auction solves the rest.
Both are exact: the same welfare, and the same VCG bonus per provider (a provider's bonus is
W* - W*(without it), which does not depend on which optimal matching was found).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

import auction
from auction import Market, Offer, OrderBook, Request
from auction.mechanisms import assignment as assignment_module


def dense_book(n_req: int, n_off: int, seed: int, *, ties: bool) -> OrderBook:
    """One resource class: every request is eligible for every offer."""
    rng = np.random.default_rng(seed)
    top = 5 if ties else 10_000
    asks = 100 + rng.integers(0, top, n_off)
    bids = 100 + rng.integers(0, top, n_req) + (0 if ties else top // 2)
    book = OrderBook()
    for j, ask in enumerate(asks.tolist()):
        book.add(Offer(id=f"o{j}", provider=f"p{j % (n_off // 2)}", gpu_model="H100",
                       region="eu", gpus=1, vram_gb=80, price=ask, submitted_at=j))
    for i, bid in enumerate(bids.tolist()):
        book.add(Request(id=f"r{i}", tenant=f"t{i}", gpu_models=frozenset({"H100"}), gpus=1,
                         max_price=bid, submitted_at=i))
    return book


def scipy_welfare(market: Market) -> int:
    rq, of = market.snapshot.requests, market.snapshot.offers
    w = np.maximum(rq.max_price[:, None] - of.price[None, :], 0)
    r, c = linear_sum_assignment(w, maximize=True)
    return int(w[r, c].sum())


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("payment", ["pay-as-bid", "vcg"])
def test_dense_path_matches_auction_and_scipy(
    monkeypatch: pytest.MonkeyPatch, ties: bool, payment: str
) -> None:
    market = Market(dense_book(520, 500, seed=3, ties=ties))
    dense = auction.clear(market, "assignment", payment=payment)
    assert dense.diagnostics["method"] == "jv"
    assert dense.success
    monkeypatch.setattr(assignment_module, "DENSE_MIN_CELLS", 1 << 62)
    sparse = auction.clear(market, "assignment", payment=payment)
    assert "method" not in sparse.diagnostics
    assert dense.welfare == sparse.welfare == scipy_welfare(market)
    if payment == "vcg":
        assert dense.payment == sparse.payment == "vcg"
        # a provider idle in some optimal matching has bonus 0: compare the positive ones
        def positive(bonus: dict[str, int]) -> dict[str, int]:
            return {k: v for k, v in bonus.items() if v}

        assert positive(dense.diagnostics["vcg_bonus"]) == positive(
            sparse.diagnostics["vcg_bonus"])
        if not ties:
            assert dense.provider_revenue == sparse.provider_revenue


def test_dense_path_small_markets_use_the_auction() -> None:
    market = Market(dense_book(40, 30, seed=1, ties=False))
    result = auction.clear(market, "assignment")
    assert "method" not in result.diagnostics


def test_dense_path_deadline_gives_a_feasible_matching(monkeypatch: pytest.MonkeyPatch) -> None:
    market = Market(dense_book(520, 500, seed=5, ties=True))
    monkeypatch.setattr(assignment_module, "monotonic_deadline",
                        lambda deadline, share=1.0: 0.0)  # already past: stop at once
    result = auction.clear(market, "assignment")
    assert result.diagnostics["method"] == "jv"
    assert not result.success
    assert result.status == auction.Status.TIME_LIMIT
    assert len(set(result.offer_row.tolist())) == len(result.offer_row)
    assert len(set(result.request_row.tolist())) == len(result.request_row)
