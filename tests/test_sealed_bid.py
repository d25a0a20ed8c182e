"""Sealed-bid reverse auctions: the numba kernel, its pure-Python reference, the brute-force
oracle on order objects, and hand-worked examples of every rule."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import auction
from auction import Market, Offer, OrderBook, Request
from auction.kernels.sealed_bid import STOPPED, sealed_bid, sealed_bid_reference
from auction.mechanisms.sealed_bid import sealed_bid_arrays
from auction.orders import Order
from auction.result import ClearingResult
from auction.testing import brute_force_sealed_bid, markets
from auction.testing.oracles import quality_bonus

MECHANISMS = {"first-price": "pay-as-bid", "second-price": "vickrey"}
OUTPUTS = ("request_row", "offer_row", "gpus", "unit_price")

# -- kernel, reference and oracle agree --------------------------------------------------------


@given(market=markets(max_offers=24, max_requests=30, quality=True), vickrey=st.booleans())
def test_kernel_matches_reference(market: Market, vickrey: bool) -> None:
    """Array by array, dtype included, on markets big enough to sell classes out."""
    args = (*sealed_bid_arrays(market), vickrey)
    got = sealed_bid(*args)
    want = sealed_bid_reference(*args)
    for name, g, w in zip(OUTPUTS, got, want, strict=True):
        assert g.dtype == w.dtype == np.int64, name
        np.testing.assert_array_equal(g, w, err_msg=name)


@given(
    market=markets(max_offers=24, max_requests=30, huge_prices=False, quality=True),
    vickrey=st.booleans(),
)
def test_kernel_matches_reference_on_contended_markets(market: Market, vickrey: bool) -> None:
    """As above with small prices only, so many requests compete for the same offers."""
    args = (*sealed_bid_arrays(market), vickrey)
    for name, g, w in zip(OUTPUTS, sealed_bid(*args), sealed_bid_reference(*args), strict=True):
        np.testing.assert_array_equal(g, w, err_msg=name)


@pytest.mark.parametrize("mechanism", sorted(MECHANISMS))
@given(market=markets(max_offers=6, max_requests=6, quality=True))
def test_both_backends_match_brute_force(mechanism: str, market: Market) -> None:
    snap = market.snapshot
    want = brute_force_sealed_bid(
        snap.offer_list(),
        snap.request_list(),
        market.reputation,
        market.default_reputation,
        MECHANISMS[mechanism],
        {o.provider: quality_bonus(market, o.provider) for o in snap.offer_list()},
    )
    for backend in ("numba", "python"):
        result = auction.clear(market, mechanism, backend=backend)
        assert result.to_records() == want, backend


@given(market=markets(max_offers=24, max_requests=30, huge_prices=False, quality=True),
       vickrey=st.booleans(), after=st.integers(0, 300))
def test_a_set_stop_flag_stops_both_at_the_same_request(
    market: Market, vickrey: bool, after: int
) -> None:
    """The flag is read between requests once `after` units of work are done: kernel and
    reference count work alike, so they stop before the same request, mark the flag and
    return the same prefix of the full allocation; a clear flag changes nothing."""
    args = (*sealed_bid_arrays(market), vickrey)
    full = sealed_bid_reference(*args)
    stopped = []
    engines: tuple[Callable[..., Any], ...] = (sealed_bid, sealed_bid_reference)
    for kernel in engines:
        clear = np.zeros(1, dtype=np.uint8)
        for g, w in zip(kernel(*args, clear, after), full, strict=True):
            np.testing.assert_array_equal(g, w)
        assert clear[0] == 0
        flag = np.ones(1, dtype=np.uint8)
        out = kernel(*args, flag, after)
        k = len(out[0])
        for g, w in zip(out, full, strict=True):
            np.testing.assert_array_equal(g, w[:k])  # a prefix, in processing order
        stopped.append((flag[0], [a.tolist() for a in out]))
        if after == 0 and len(market.request_order):
            assert flag[0] == STOPPED  # read before the first request
            assert k == 0
        assert flag[0] in (1, STOPPED)  # STOPPED only when it stopped early
        if flag[0] == 1:
            assert k == len(full[0])
    assert stopped[0] == stopped[1]


@pytest.mark.parametrize("mechanism", sorted(MECHANISMS))
@given(market=markets(max_offers=12, max_requests=12, quality=True))
def test_backends_identical_through_clear(mechanism: str, market: Market) -> None:
    fast = auction.clear(market, mechanism, backend="numba")
    slow = auction.clear(market, mechanism, backend="python")
    for col in (*OUTPUTS, "tenant_price", "request_id", "offer_id", "unmatched_request_ids",
                "partial_request_ids", "shortfall_gpus"):
        np.testing.assert_array_equal(getattr(fast, col), getattr(slow, col), err_msg=col)
    assert (fast.welfare, fast.total_payment, fast.provider_revenue) == (
        slow.welfare,
        slow.total_payment,
        slow.provider_revenue,
    )
    assert fast.status is slow.status is auction.Status.SUCCESS
    common = {"time_limit": 30.0, "max_memory": None}  # every mechanism's options
    assert fast.options == {"payment": MECHANISMS[mechanism], "backend": "numba", **common}
    assert slow.options == {"payment": MECHANISMS[mechanism], "backend": "python", **common}


# -- hand-worked examples ------------------------------------------------------------------------

ENGINES = ("numba", "python", "oracle")
Row = tuple[str, str, int, int]  # request id, offer id, gpus, unit price


def offer(oid: str, provider: str, gpus: int, price: int, submitted_at: int = 0) -> Offer:
    return Offer(
        id=oid, provider=provider, gpu_model="H100", gpus=gpus, price=price, region="eu",
        vram_gb=80, submitted_at=submitted_at,
    )


def request(rid: str, gpus: int, max_price: int, submitted_at: int = 0, **kw: Any) -> Request:
    return Request(
        id=rid, tenant=f"t-{rid}", gpus=gpus, max_price=max_price, submitted_at=submitted_at, **kw
    )


def run(
    engine: str,
    mechanism: str,
    orders: Sequence[Order],
    reputation: dict[str, float] | None = None,
    default_reputation: float = 0.0,
) -> list[Row]:
    """Clear with a backend, or replay with the oracle; rows as (request, offer, gpus, price)."""
    if engine == "oracle":
        records = brute_force_sealed_bid(
            [o for o in orders if isinstance(o, Offer)],
            [r for r in orders if isinstance(r, Request)],
            reputation,
            default_reputation,
            MECHANISMS[mechanism],
        )
    else:
        market = Market(OrderBook(orders), reputation, default_reputation=default_reputation)
        result = auction.clear(market, mechanism, backend=engine)
        assert result.tenant_price.tolist() == result.unit_price.tolist()
        records = result.to_records()
    return [(r["request_id"], r["offer_id"], r["gpus"], r["unit_price"]) for r in records]


def clear_book(mechanism: str, orders: Sequence[Order], **kw: Any) -> ClearingResult:
    return auction.clear(OrderBook(orders), mechanism, **kw)


@pytest.mark.parametrize("engine", ENGINES)
def test_tie_break_price_then_submitted_at_then_id(engine: str) -> None:
    orders: list[Order] = [
        offer("b", "p1", 1, 5, submitted_at=2),
        offer("d", "p2", 1, 6, submitted_at=0),
        offer("c", "p3", 1, 5, submitted_at=1),
        offer("a", "p4", 1, 5, submitted_at=1),
        # requests tie on submitted_at too: (submitted_at, id) decides who goes first
        request("r-y", 1, 10, submitted_at=1),
        request("r-z", 1, 10, submitted_at=0),
        request("r-w", 1, 10, submitted_at=3),
        request("r-x", 1, 10, submitted_at=1),
    ]
    assert run(engine, "first-price", orders) == [
        ("r-z", "a", 1, 5),
        ("r-x", "c", 1, 5),
        ("r-y", "b", 1, 5),
        ("r-w", "d", 1, 6),
    ]


@pytest.mark.parametrize("engine", ENGINES)
def test_second_price_ignores_the_winners_own_offers(engine: str) -> None:
    orders: list[Order] = [
        offer("o1", "p1", 1, 3),
        offer("o2", "p1", 1, 4),  # the winner's own: must not set its price
        offer("o3", "p2", 1, 7),
        request("r", 1, 10),
    ]
    assert run(engine, "second-price", orders) == [("r", "o1", 1, 7)]
    assert run(engine, "first-price", orders) == [("r", "o1", 1, 3)]


@pytest.mark.parametrize("engine", ENGINES)
def test_second_price_reserve_is_max_price_without_competitor(engine: str) -> None:
    alone: list[Order] = [offer("o1", "p1", 2, 3), offer("o2", "p1", 2, 4), request("r", 2, 9)]
    assert run(engine, "second-price", alone) == [("r", "o1", 2, 9)]
    # a competitor priced above the max price is not eligible, so it sets nothing
    pricey: list[Order] = [*alone, offer("o3", "p2", 2, 10)]
    assert run(engine, "second-price", pricey) == [("r", "o1", 2, 9)]
    # a competitor too small for the (non-divisible) request sets nothing either
    small: list[Order] = [*alone, offer("o4", "p2", 1, 5)]
    assert run(engine, "second-price", small) == [("r", "o1", 2, 9)]


@pytest.mark.parametrize("engine", ENGINES)
def test_divisible_partial_fill(engine: str) -> None:
    orders: list[Order] = [
        offer("A", "pa", 2, 4),
        offer("B", "pb", 1, 5),
        offer("C", "pc", 3, 20),  # above the max price
        request("r", 5, 10, divisible=True),
    ]
    assert run(engine, "first-price", orders) == [("r", "A", 2, 4), ("r", "B", 1, 5)]
    # vickrey per chunk: A's chunk is priced by B (1 GPU free); B's by nobody: max price
    assert run(engine, "second-price", orders) == [("r", "A", 2, 5), ("r", "B", 1, 10)]


def test_divisible_shortfall_reported() -> None:
    orders: list[Order] = [
        offer("A", "pa", 2, 4),
        offer("B", "pb", 1, 5),
        offer("C", "pc", 3, 20),
        request("r", 5, 10, divisible=True),
        request("s", 1, 10, submitted_at=1, divisible=True),
    ]
    for backend in ("numba", "python"):
        result = clear_book("second-price", orders, backend=backend)
        assert result.partial_request_ids.tolist() == ["r"]
        assert result.shortfall_gpus.tolist() == [2]
        assert result.unmatched_request_ids.tolist() == ["s"]
        assert result.welfare == (10 - 4) * 2 + (10 - 5) * 1
        assert result.total_payment == result.provider_revenue == 5 * 2 + 10 * 1


@pytest.mark.parametrize("engine", ENGINES)
def test_capacity_consumed_by_earlier_requests(engine: str) -> None:
    orders: list[Order] = [
        offer("X", "px", 4, 2),
        offer("Y", "py", 4, 6),
        request("r1", 3, 10, submitted_at=0),
        request("r2", 2, 10, submitted_at=1),  # X has 1 left: too little, so Y
        request("r3", 1, 10, submitted_at=2),  # X's last GPU
        request("r4", 4, 10, submitted_at=3),  # X empty, Y has 2: unmatched
    ]
    assert run(engine, "first-price", orders) == [
        ("r1", "X", 3, 2),
        ("r2", "Y", 2, 6),
        ("r3", "X", 1, 2),
    ]
    # r2's competitor X had too little capacity left: r2 pays its max price
    assert run(engine, "second-price", orders) == [
        ("r1", "X", 3, 6),
        ("r2", "Y", 2, 10),
        ("r3", "X", 1, 6),
    ]


def test_unserved_request_is_unmatched() -> None:
    orders: list[Order] = [
        offer("X", "px", 4, 2), request("r1", 4, 10), request("r2", 1, 10, submitted_at=1)
    ]
    result = clear_book("first-price", orders)
    assert result.unmatched_request_ids.tolist() == ["r2"]
    assert len(result.partial_request_ids) == 0


@pytest.mark.parametrize("engine", ENGINES)
def test_min_reputation_uses_default_reputation(engine: str) -> None:
    orders: list[Order] = [
        offer("known", "p-known", 1, 5),
        offer("unknown", "p-unknown", 1, 1),
        offer("low", "p-low", 1, 2),
        request("r", 1, 10, min_reputation=0.5),
    ]
    scores = {"p-known": 0.9, "p-low": 0.2}
    # unscored providers get the default: 0.0 is below the floor, 0.6 above it
    assert run(engine, "first-price", orders, scores, 0.0) == [("r", "known", 1, 5)]
    assert run(engine, "first-price", orders, scores, 0.6) == [("r", "unknown", 1, 1)]
    # the second price comes from the eligible competitors only
    assert run(engine, "second-price", orders, scores, 0.6) == [("r", "unknown", 1, 5)]
    # a floor equal to a score admits it; a floor above everyone admits nobody
    at_floor: list[Order] = [*orders[:3], request("r", 1, 10, min_reputation=0.9)]
    assert run(engine, "first-price", at_floor, scores, 0.0) == [("r", "known", 1, 5)]
    above: list[Order] = [*orders[:3], request("r", 1, 10, min_reputation=1.0)]
    assert run(engine, "first-price", above, scores, 0.6) == []


@pytest.mark.parametrize("engine", ENGINES)
def test_huge_prices_stay_exact(engine: str) -> None:
    big = 2**62
    orders: list[Order] = [offer("o", "p", 4, big - 1), request("r", 4, big)]
    assert run(engine, "second-price", orders) == [("r", "o", 4, big)]
    if engine != "oracle":
        result = clear_book("second-price", orders, backend=engine)
        assert result.total_payment == 4 * big  # beyond int64: exact Python int
        assert result.welfare == 4


def test_sealed_bid_mechanisms_accept_divisible_requests() -> None:
    """Both sealed-bid mechanisms take divisible requests (no UnsupportedMarketError)."""
    orders: list[Order] = [offer("o", "p", 1, 1), request("r", 2, 5, divisible=True)]
    for name in MECHANISMS:
        assert clear_book(name, orders).partial_request_ids.tolist() == ["r"]
