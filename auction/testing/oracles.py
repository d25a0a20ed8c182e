"""Independent oracles: eligibility and the sealed-bid rule, replayed on order objects.

These re-derive from the documented rules (`auction.market` for eligibility,
`auction.kernels.sealed_bid` for the auction) what the library computes from its arrays, with
none of its machinery (no columns, classes, profiles or ranks), so that agreement between the
two means something. They are slow (all pairs, every step) and meant for small markets.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from fractions import Fraction
from typing import Any

import numpy as np

from auction.errors import InvalidValueError
from auction.market import Market
from auction.orders import Offer, Request

__all__ = [
    "PAYMENT_RULES",
    "brute_force_sealed_bid",
    "constraints_hold",
    "is_eligible",
    "offer_rank_key",
    "quality_bonus",
    "reputation_of",
    "request_priority_key",
]

#: Payment rules `brute_force_sealed_bid` knows.
PAYMENT_RULES = ("pay-as-bid", "vickrey")


def is_eligible(offer: Offer, request: Request, reputation_of_provider: float) -> bool:
    """Whether `offer` may serve `request`, by the rules in `auction.market`'s docstring.

    Args:
        offer: the offer.
        request: the request.
        reputation_of_provider: the reputation of ``offer.provider`` in the market (its score,
            or the market's default when it has none).
    """
    return (
        (not request.gpu_models or offer.gpu_model in request.gpu_models)
        and (not request.regions or offer.region in request.regions)
        and offer.vram_gb >= request.min_vram_gb
        and request.required_tags <= offer.tags
        and (not request.providers or offer.provider in request.providers)
        and offer.provider not in request.exclude_providers
        and (not offer.tenants or request.tenant in offer.tenants)
        and request.tenant not in offer.exclude_tenants
        and offer.cpu_per_gpu >= request.min_cpu_per_gpu
        and offer.ram_gb_per_gpu >= request.min_ram_gb_per_gpu
        and offer.disk_gb_per_gpu >= request.min_disk_gb_per_gpu
        and constraints_hold(offer, request)
        and reputation_of_provider >= request.min_reputation
        and offer.price <= request.max_price
        and (request.divisible or request.cluster or offer.gpus >= request.gpus)
    )


def _one_row_table(order: Offer | Request, names: frozenset[str]) -> Any:
    """A one-row table of an order's attributes and the built-in fields in `names`."""
    from auction.constraints import AttributeTable
    from auction.orders import OFFER_BUILTINS, REQUEST_BUILTINS

    builtins = OFFER_BUILTINS if isinstance(order, Offer) else REQUEST_BUILTINS
    table = AttributeTable.from_records([dict(order.attributes)])
    cols: dict[str, Any] = {}
    for f in sorted(names & set(builtins)):
        v = getattr(order, f)
        if isinstance(v, frozenset):
            cols[f] = [set(v)]
        elif isinstance(v, bool):
            cols[f] = np.array([v])
        elif isinstance(v, int):
            cols[f] = np.array([v], dtype=np.int64)
        else:
            cols[f] = np.array([v])
    return table.with_columns(cols) if cols else table


def constraints_hold(offer: Offer, request: Request) -> bool:
    """Both sides' constraint expressions, evaluated on this one pair's order objects."""
    from auction.constraints import parse

    for text, other in ((request.constraints, offer), (offer.constraints, request)):
        if text is None:
            continue
        expr = parse(text)
        if not bool(expr.evaluate(_one_row_table(other, expr.names))[0]):
            return False
    return True


def reputation_of(market: Market, provider: str) -> float:
    """A provider's reputation in `market`: its score, or the market's default."""
    return market.reputation.get(provider, market.default_reputation)


def offer_rank_key(offer: Offer, bonus: int = 0) -> tuple[int, int, str]:
    """Offer rank, best first: price minus the quality bonus, then submitted_at, then id."""
    return (offer.price - bonus, offer.submitted_at, offer.id)


def quality_bonus(market: Market, provider: str) -> int:
    """A provider's quality bonus in `market`: floor(quality_weight x quality), exactly."""
    if not market.quality_weight:
        return 0
    if market.quality is None:
        q = reputation_of(market, provider)
    else:
        q = market.quality.get(provider, 0.0)
    return math.floor(Fraction(repr(float(q))) * market.quality_weight)


def request_priority_key(request: Request) -> tuple[int, str]:
    """Request priority, first served first: submitted_at, then id."""
    return (request.submitted_at, request.id)


def brute_force_sealed_bid(
    offers: Iterable[Offer],
    requests: Iterable[Request],
    reputation: Mapping[str, float] | None = None,
    default_reputation: float = 0.0,
    payment: str = "pay-as-bid",
    bonus: Mapping[str, int] | None = None,
) -> list[dict[str, Any]]:
    """The sealed-bid reverse auction, replayed step by step on order objects.

    Requests clear in priority order (submitted_at, then id). Each looks at every offer it is
    eligible for (`is_eligible`) that still has enough capacity for its next chunk (all its
    GPUs if non-divisible, at least one GPU if divisible) and takes the best-ranked one (price
    minus its provider's quality `bonus`, then submitted_at, then id), as many GPUs as it still
    needs or the offer has left; a divisible request repeats until filled or out of offers.
    Payment ``pay-as-bid`` pays the ask; ``vickrey`` (second score, with bonuses) pays the best
    ranked of those same candidates that belong to other providers, at its price minus its
    bonus plus the winner's bonus, capped at the request's max price, which is also the price
    when there is none.

    Returns:
        One dict per allocation with the keys and order of `ClearingResult.to_records()`:
        request priority, then offer rank.
    """
    if payment not in PAYMENT_RULES:
        raise InvalidValueError("payment", payment, f"must be one of {PAYMENT_RULES}")
    scores = dict(reputation or {})
    bonuses = dict(bonus or {})
    offer_list = sorted(offers, key=lambda o: offer_rank_key(o, bonuses.get(o.provider, 0)))
    remaining = {o.id: o.gpus for o in offer_list}
    rank = {o.id: i for i, o in enumerate(offer_list)}
    records: list[dict[str, Any]] = []
    for r in sorted(requests, key=request_priority_key):
        eligible = [
            o for o in offer_list if is_eligible(o, r, scores.get(o.provider, default_reputation))
        ]
        need = r.gpus
        chunks: list[dict[str, Any]] = []
        while need > 0:
            least = 1 if r.divisible else need
            candidates = [o for o in eligible if remaining[o.id] >= least]
            if not candidates:
                break
            best = candidates[0]
            take = min(need, remaining[best.id])
            if payment == "vickrey":
                others = [o for o in candidates if o.provider != best.provider]
                price = r.max_price
                if others:
                    b = bonuses.get(best.provider, 0) - bonuses.get(others[0].provider, 0)
                    price = min(r.max_price, others[0].price + b)
            else:
                price = best.price
            chunks.append(
                {
                    "request_id": r.id,
                    "offer_id": best.id,
                    "tenant": r.tenant,
                    "provider": best.provider,
                    "gpus": take,
                    "unit_price": price,
                    "tenant_price": price,
                }
            )
            remaining[best.id] -= take
            need -= take
        records += sorted(chunks, key=lambda rec: rank[rec["offer_id"]])
    return records
