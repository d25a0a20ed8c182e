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

import contextlib
from collections.abc import Callable
from typing import Any, ClassVar

import attrs
import numpy as np

from auction.kernels.budget import no_stop, stop_at
from auction.kernels.sealed_bid import STOPPED, Outputs, sealed_bid, sealed_bid_reference
from auction.limits import Deadline
from auction.market import Market
from auction.mechanisms import options
from auction.mechanisms.base import MechanismBase, MechanismTags
from auction.result import ClearingResult, Status

__all__ = ["FirstPrice", "SealedBidAuction", "SecondPrice", "sealed_bid_arrays"]

#: Work (requests and classes looked at, about a millisecond of kernel time) the kernel does
#: before it reads the stop flag, so a small market always clears whatever the limit (as its
#: build does, `auction.market`).
_GRACE_WORK = 1 << 20


def _work_bound(market: Market) -> int:
    """An upper bound on the kernel's work units for `market`: a unit per request, and at
    most 2 R + O searches (each ends a request, by filling it or finding nothing, or empties
    an offer), each looking at most twice (the runner-up search) at every class and offer.
    At or below `_GRACE_WORK` the kernel never reads its stop flag, so no timer is started
    (about 0.1 ms, as much as clearing a market of a few hundred orders)."""
    n_req, n_off = market.n_requests, market.n_offers
    return n_req + (2 * n_req + n_off) * 2 * (market.n_classes + n_off)


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
    memory estimate), and their work is bounded by requests x eligible offers. They read a
    stop flag set at the deadline between requests (after a grace of `_GRACE_WORK`): past
    ``time_limit`` the result has status ``time_limit`` and the allocation of the requests
    cleared so far, a prefix of the sequential auction, so feasible.

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
        kernel: Callable[..., Outputs] = (
            sealed_bid if self.backend == "numba" else sealed_bid_reference)
        args = (*sealed_bid_arrays(market), self.payment == "vickrey")
        stop = no_stop()
        timer: Any = contextlib.nullcontext(stop)
        if deadline.limit is not None and _work_bound(market) > _GRACE_WORK:
            timer = stop_at(deadline.monotonic())
        with timer as stop:
            req, off, gpus, price = kernel(*args, stop, _GRACE_WORK)
        status, message, diagnostics = Status.SUCCESS, "", None
        if stop[0] == STOPPED:
            status = Status.TIME_LIMIT
            message = (f"time limit of {deadline.limit:g} s reached in the sealed-bid kernel: "
                       f"the allocation of the requests cleared before it, in priority order")
            diagnostics = {"kernel_status": "deadline"}
        return ClearingResult.from_allocation(
            market,
            req,
            off,
            gpus,
            price,
            mechanism=self.name,
            payment=self.payment,
            status=status,
            message=message,
            options=self.get_options(),
            diagnostics=diagnostics,
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
