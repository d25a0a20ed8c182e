"""Sealed-bid reverse auctions, as on Akash: each request, in priority order, takes the
cheapest eligible offer.

Objective: none global. Requests are served greedily in priority order (``submitted_at``,
then id); each takes the best-ranked eligible offer with enough remaining capacity. Offer rank,
which decides ties: price, then offer ``submitted_at``, then offer id. A divisible request
fills from the best-ranked offers upward and may end partly filled (the shortfall is in the
result). Capacity is consumed as requests clear.

* ``first-price`` (payment ``pay-as-bid``): each provider is paid its ask.
* ``second-price`` (payment ``vickrey``): each provider is paid the lowest ask among eligible
  offers of other providers that could have served the request at that moment (all its GPUs
  free for a non-divisible request, at least one for a divisible one, priced per chunk), or the
  request's max price if there is none. Other providers only: if a provider's own second
  offer set its price, it could raise that offer to be paid more. Truthful for providers when
  the market holds one non-divisible request; with several requests, capacity links them and
  no sequential rule is truthful (use a batch mechanism with VCG payments for that).

Scoring auctions (Che 1993): in a market with quality bonuses (`Market` ``quality_weight``),
offers rank by score, ``ask - bonus`` (then submitted_at, then id), so a better provider can
win at a higher ask; every winner's ask still is at most the request's max price. The
``second-price`` rule (payment ``"vickrey"``) is then *second score*: the winner is paid the
runner-up's ``ask - bonus`` plus its own bonus, the price at which its score equals the
runner-up's, capped at the max price. Truthful in price for a single order, as Vickrey is.
``"second-score"``, an older second name of the same rule, is a deprecated alias: it builds
the ``"vickrey"`` mechanism with a `DeprecationWarning` (`auction.mechanisms.base`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import numpy as np

from auction.kernels.sealed_bid import sealed_bid, sealed_bid_reference
from auction.limits import Deadline
from auction.market import Market
from auction.mechanisms import options
from auction.mechanisms.base import MechanismBase, MechanismTags
from auction.result import ClearingResult

__all__ = ["FirstPrice", "SealedBidAuction", "SecondPrice", "sealed_bid_arrays"]


def sealed_bid_arrays(market: Market) -> tuple[Any, ...]:
    """The kernel's array arguments for `market`, in signature order (without `vickrey`)."""
    rq, of = market.snapshot.requests, market.snapshot.offers
    # offers of rank < limit are exactly those priced <= max_price (ranks sort by price first
    # unless quality bonuses reorder them: then no limit, the kernel checks prices itself)
    if market.scoring:
        limit = np.full(market.n_requests, market.n_offers, dtype=np.int64)
    else:
        limit = np.searchsorted(of.price[market.offer_order], rq.max_price, side="right")
    return (
        market.request_order,
        rq.gpus,
        limit.astype(np.int64),
        rq.max_price,
        rq.min_reputation,
        rq.divisible,
        market.request_profile,
        market.profile_indptr,
        market.profile_classes,
        market.class_indptr,
        market.class_offers,
        of.price,
        of.gpus,
        market.offer_reputation,
        of.provider,
        market.offer_rank,
        market.offer_bonus,
    )


@attrs.frozen
class SealedBidAuction(MechanismBase):
    """Per-order sealed-bid reverse auction (see the module docstring).

    The kernels stream over offer classes, so memory stays flat whatever the pair count (no
    memory estimate), and their work is bounded by requests x eligible offers.

    Args:
        payment: ``"pay-as-bid"`` or ``"vickrey"`` (``"second-score"`` is its deprecated
            alias); the default is the subclass's.
        backend: ``"numba"`` (default) or ``"python"``, the pure-Python reference.
        time_limit, max_memory: see `MechanismBase`.
    """

    tags = MechanismTags(
        payments=("pay-as-bid", "vickrey"), divisible=True, scoring=True
    )
    backends: ClassVar[tuple[str, ...]] = ("numba", "python")

    backend: str = options.choice("numba", backends)

    def _clear(
        self, market: Market, rng: np.random.Generator | None, deadline: Deadline
    ) -> ClearingResult:
        kernel = sealed_bid if self.backend == "numba" else sealed_bid_reference
        args = (*sealed_bid_arrays(market), self.payment == "vickrey")
        req, off, gpus, price = kernel(*args)
        return ClearingResult.from_allocation(
            market,
            req,
            off,
            gpus,
            price,
            mechanism=self.name,
            payment=self.payment,
            options=self.get_options(),
        )


@attrs.frozen
class FirstPrice(SealedBidAuction):
    """Sealed-bid reverse auction paying each winner its ask (pay-as-bid)."""

    name: ClassVar[str] = "first-price"
    tags = MechanismTags(payments=("pay-as-bid",), divisible=True, scoring=True)


@attrs.frozen
class SecondPrice(SealedBidAuction):
    """Sealed-bid reverse auction with Vickrey payments, the request's max price as reserve."""

    name: ClassVar[str] = "second-price"
    tags = MechanismTags(
        payments=("vickrey",), divisible=True, truthful_single_order=True,
        scoring=True,
    )
