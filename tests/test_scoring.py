"""Scoring auctions (Che 1993): quality bonuses in the market, second-score payments, and
welfare-optimal clearing by total score."""

from __future__ import annotations

import itertools
from typing import Any

import attrs
import pytest
from hypothesis import given, note
from hypothesis import strategies as st

import auction
from auction import Market, Offer, OrderBook, Request
from auction.errors import InvalidOrderError, UnsupportedMarketError
from auction.testing import describe_market, is_eligible, markets
from auction.testing.oracles import quality_bonus, reputation_of


def offer(oid: str, price: int, provider: str, gpus: int = 1) -> Offer:
    return Offer(id=oid, provider=provider, gpu_model="H100", gpus=gpus, price=price,
                 region="us-east", vram_gb=80)


def request(rid: str, max_price: int, gpus: int = 1, **kw: Any) -> Request:
    return Request(id=rid, tenant=f"t-{rid}", gpus=gpus, max_price=max_price, **kw)


def test_bonus_is_weight_times_quality_rounded_down() -> None:
    book = OrderBook([offer("a", 100, "good"), offer("b", 90, "new"), offer("c", 95, "ok")])
    market = Market(book, {"good": 1.0, "ok": 0.333}, quality_weight=20)
    bonus = dict(zip(market.snapshot.offers.id.tolist(), market.offer_bonus.tolist(),
                     strict=True))
    assert bonus == {"a": 20, "b": 0, "c": 6}  # 20 x 0.333 = 6.66 -> 6
    assert market.scoring
    assert not Market(book, {"good": 1.0}).scoring  # weight 0: price-only
    explicit = Market(book, {"good": 1.0}, quality={"new": 0.5}, quality_weight=20)
    assert explicit.offer_bonus.tolist() == [0, 10, 0]


def test_golden_second_score() -> None:
    # good: ask 100, bonus 20 -> score 80 per GPU below max; new: ask 90, bonus 0 -> 90
    book = OrderBook([offer("a", 100, "good"), offer("b", 90, "new"), request("r", 150)])
    market = Market(book, {"good": 1.0}, quality_weight=20)
    first = auction.clear(market, "first-price")
    second = auction.clear(market, "second-price", payment="vickrey")
    assert first.offer_id.tolist() == second.offer_id.tolist() == ["a"]
    assert first.unit_price.tolist() == [100]
    # paid so that its score equals the runner-up's: 150 - p + 20 == 150 - 90 + 0
    assert second.unit_price.tolist() == [110]
    assert auction.clear(market, "second-price").unit_price.tolist() == [110]  # vickrey alias
    # price only, the cheaper provider wins at the runner-up's ask
    plain = auction.clear(Market(book), "second-price")
    assert plain.offer_id.tolist() == ["b"]
    assert plain.unit_price.tolist() == [100]


def test_second_score_is_capped_at_the_max_price() -> None:
    book = OrderBook([offer("a", 100, "good"), offer("b", 110, "new"), request("r", 115)])
    market = Market(book, {"good": 1.0}, quality_weight=50)
    result = auction.clear(market, "second-price", payment="vickrey")
    assert result.unit_price.tolist() == [115]  # 110 - 0 + 50 = 160, capped


def test_quality_never_makes_an_offer_above_max_price_eligible() -> None:
    book = OrderBook([offer("a", 200, "good"), offer("b", 90, "new"), request("r", 150)])
    market = Market(book, {"good": 1.0}, quality_weight=1000)
    for name in ("first-price", "second-price", "assignment", "lp"):
        assert auction.clear(market, name).offer_id.tolist() == ["b"], name


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"quality_weight": -1}, "quality_weight"), ({"quality_weight": 1.5}, "quality_weight"),
     ({"quality_weight": True}, "quality_weight"),
     ({"quality": {"p": 1.5}, "quality_weight": 1}, "quality['p']"),
     ({"quality": [0.5], "quality_weight": 1}, "quality")],
)
def test_bad_quality_is_a_typed_error(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidOrderError) as info:
        Market(OrderBook(), **kwargs)
    assert info.value.field == field


def test_like_keeps_reputation_and_quality() -> None:
    market = Market(OrderBook([offer("a", 1, "p")]), {"p": 0.5}, default_reputation=0.25,
                    quality={"p": 1.0}, quality_weight=7)
    other = market.like(OrderBook([offer("b", 2, "p")]))
    assert (other.reputation, other.default_reputation) == ({"p": 0.5}, 0.25)
    assert (other.quality, other.quality_weight) == ({"p": 1.0}, 7)
    assert other.offer_bonus.tolist() == [7]


def test_vcg_and_uniform_are_refused_on_scoring_markets() -> None:
    book = OrderBook([offer("a", 100, "good"), request("r", 150)])
    market = Market(book, {"good": 1.0}, quality_weight=20)
    for payment in ("vcg", "uniform"):
        with pytest.raises(UnsupportedMarketError, match="max price"):
            auction.clear(market, "assignment", payment=payment)


# -- the assignment mechanism maximizes total score ------------------------------------------
def brute_force_score(market: Market) -> int:
    """Best total score over every exclusive matching (tiny markets)."""
    offers, reqs = market.snapshot.offer_list(), market.snapshot.request_list()
    best = 0
    for perm in itertools.permutations([*range(len(offers)), *[None] * len(reqs)], len(reqs)):
        total = 0
        for r, j in zip(reqs, perm, strict=True):
            if j is None:
                continue
            o = offers[j]
            if not (is_eligible(o, r, reputation_of(market, o.provider)) and o.gpus >= r.gpus):
                total = -1
                break
            total += (r.max_price - o.price + quality_bonus(market, o.provider)) * r.gpus
        best = max(best, total)
    return best


def _score(market: Market, result: auction.ClearingResult) -> int:
    return result.welfare + int((market.offer_bonus[result.offer_row] * result.gpus).sum())


@given(market=markets(max_offers=4, max_requests=3, huge_prices=False, divisible=False,
                       quality=True))
def test_assignment_maximizes_total_score(market: Market) -> None:
    note(describe_market(market))
    result = auction.clear(market, "assignment")
    assert _score(market, result) == brute_force_score(market)


# -- incentives ----------------------------------------------------------------------------
def _utility(result: auction.ClearingResult, provider: str, asks: dict[str, int]) -> int:
    return sum(int(p) - asks[o] * int(g) for o, g, p, who in zip(
        result.offer_id.tolist(), result.gpus, result.provider_payment, result.provider.tolist(),
        strict=True) if who == provider)


single_order = markets(min_offers=1, max_offers=5, min_requests=1, max_requests=1,
                       divisible=False, huge_prices=False, quality=True)


@given(market=single_order, data=st.data())
def test_raising_ones_reputation_never_hurts_single_order(
    market: Market, data: st.DataObject
) -> None:
    """Second score: more quality (and so more eligibility) never lowers a provider's profit."""
    note(describe_market(market))
    offers = market.snapshot.offer_list()
    provider = data.draw(st.sampled_from(sorted({o.provider for o in offers})))
    now = reputation_of(market, provider)
    higher = data.draw(st.floats(now, 1.0))
    weight = data.draw(st.sampled_from([0, 1, 5, 40]))
    asks = {o.id: o.price for o in offers}
    # quality is the reputation here, so raising it also opens min_reputation gates
    before = Market(market.snapshot, market.reputation,
                    default_reputation=market.default_reputation, quality_weight=weight)
    after = Market(market.snapshot, {**market.reputation, provider: higher},
                   default_reputation=market.default_reputation, quality_weight=weight)
    for payment in ("vickrey",):
        u0 = _utility(auction.clear(before, "second-price", payment=payment), provider, asks)
        u1 = _utility(auction.clear(after, "second-price", payment=payment), provider, asks)
        assert u1 >= u0


@given(market=single_order, data=st.data())
def test_second_score_is_truthful_in_price_single_order(
    market: Market, data: st.DataObject
) -> None:
    note(describe_market(market))
    weight = data.draw(st.sampled_from([1, 5, 40]))
    market = Market(market.snapshot, market.reputation,
                    default_reputation=market.default_reputation, quality_weight=weight)
    offers = market.snapshot.offer_list()
    asks = {o.id: o.price for o in offers}
    honest = auction.clear(market, "second-price", payment="vickrey")
    liar = data.draw(st.sampled_from(offers))
    lie = data.draw(st.integers(0, 40))
    books = [attrs.evolve(o, price=lie) if o.id == liar.id else o for o in offers]
    lied = market.like(OrderBook([*books, *market.snapshot.request_list()]))
    dishonest = auction.clear(lied, "second-price", payment="vickrey")
    assert _utility(dishonest, liar.provider, asks) <= _utility(honest, liar.provider, asks)
