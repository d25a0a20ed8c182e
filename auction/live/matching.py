"""Continuous matching rules: an arriving order trades at once with the best resting order.

Three rules (the ``rule=`` of a continuous `LiveMarket`); each names which resting order wins
and at what price. Eligibility is the market's (model, region, VRAM, tags, ``max_price >=
ask``, provider reputation ``>= min_reputation``; a non-divisible or cluster request is
served whole by one offer, a divisible one fills from several in whole GPUs, best first).

=================  ===========================================  =============================
rule               resting order that wins (ties in this order)  price per GPU-hour
=================  ===========================================  =============================
``price-time``     arriving request: lowest ask, earliest, id;   the resting order's price
                   arriving offer: highest max_price, earliest,  (ask, or max_price)
                   id
``fifo``           earliest ``submitted_at``, then id, either    the offer's ask
                   side (price only has to be acceptable)
``posted-price``   arriving request: lowest ask, earliest, id;   the offer's ask (posted)
                   arriving offer: earliest request, then id
=================  ===========================================  =============================

``earliest`` is ``submitted_at``; the id (string order) breaks the last tie, so the outcome
does not depend on dict or arrival order inside one instant. Tenants pay what providers
receive.

Scoring markets (a `LiveMarket` with ``quality_weight``): ``price-time`` and
``posted-price`` rank offers by *score*, ``ask - bonus`` (then earliest, then id), exactly as
`auction.Market` ranks them for the batch mechanisms, so a better provider can win at a
higher ask; the ask still has to be at most the request's max price, and the price is still
the ask (or the resting request's max price). ``fifo`` stays first come, first served.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from auction.errors import InvalidValueError
from auction.live.pools import Pools, SortKey, offer_class, request_profile
from auction.orders import Offer, Request

__all__ = ["RULES", "best_offer", "best_request", "sort_keys"]

RULES = ("price-time", "fifo", "posted-price")


def _offer_by_price(o: Offer) -> SortKey:
    return (o.price, o.submitted_at, o.id)


def _by_time(o: Offer | Request) -> SortKey:
    return (o.submitted_at, o.id)


def _request_by_price(r: Request) -> SortKey:
    return (-r.max_price, r.submitted_at, r.id)


def sort_keys(
    rule: str,
    bonus: Callable[[str], int] | None = None,
) -> tuple[Callable[[Offer], SortKey], Callable[[Request], SortKey]]:
    """(offer key, request key): priority inside a pool under `rule`, best first.

    `bonus` gives the quality bonus of a provider (>= 0): offers then rank by score.
    """
    by_price: Callable[[Offer], SortKey] = _offer_by_price
    if bonus is not None:
        def by_price(o: Offer) -> SortKey:
            return (o.price - bonus(o.provider), o.submitted_at, o.id)

    if rule == "price-time":
        return by_price, _request_by_price
    if rule == "fifo":
        return _by_time, _by_time
    if rule == "posted-price":
        return by_price, _by_time
    raise InvalidValueError("rule", rule, f"must be one of {', '.join(RULES)}")


def best_offer(
    pools: Pools,
    rule: str,
    request: Request,
    offers: Mapping[str, Offer],
    reputation: Callable[[str], float],
) -> tuple[Offer, int] | None:
    """The resting offer an arriving `request` trades with, and the price; None if none.

    `offers` maps ids to the open offers with their current free GPUs.
    """
    by_price = rule != "fifo"
    best: SortKey | None = None
    found: Offer | None = None
    whole = not request.divisible
    for group in pools.profiles[request_profile(request)].peers:
        for key in group.keys:
            if best is not None and key >= best:
                break
            o = offers[key[-1]]
            if o.price > request.max_price:
                if by_price and key[0] > request.max_price:
                    break  # the key is the ask or the score, and ask >= score
                continue
            if whole and o.gpus < request.gpus:
                continue
            if reputation(o.provider) < request.min_reputation:
                continue
            best, found = key, o
            break
    if found is None:
        return None
    return found, found.price


def best_request(
    pools: Pools,
    rule: str,
    offer: Offer,
    requests: Mapping[str, Request],
    reputation: Callable[[str], float],
) -> tuple[Request, int] | None:
    """The resting request an arriving `offer` trades with, and the price; None if none."""
    rep = reputation(offer.provider)
    by_price = rule == "price-time"
    best: SortKey | None = None
    found: Request | None = None
    for group in pools.classes[offer_class(offer)].peers:
        for key in group.keys:
            if best is not None and key >= best:
                break
            r = requests[key[-1]]
            if r.max_price < offer.price:
                if by_price:
                    break
                continue
            if not r.divisible and r.gpus > offer.gpus:
                continue
            if rep < r.min_reputation:
                continue
            best, found = key, r
            break
    if found is None:
        return None
    return found, (found.max_price if rule == "price-time" else offer.price)
