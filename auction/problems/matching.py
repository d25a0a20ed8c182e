"""The matching problem of a market with exclusive offers, for the auction kernel.

Each request is served whole by one offer or not at all and each offer hosts at most one
request: a sparse, rectangular maximum-weight bipartite matching over the market's eligible
pairs, in canonical order (requests by priority, offers by rank), weighted by the welfare
(max_price - ask + bonus) x gpus. `scaled_benefits` turns the weights into the auction's
integer benefits, exact with a final epsilon of 1. (Shared capacity is a transportation
problem: `auction.problems.transport`.)
"""

from __future__ import annotations

import attrs
import numpy as np
import numpy.typing as npt

from auction._arrays import group_starts
from auction.errors import AuctionOverflowError
from auction.kernels.pairs import exclusive_csr
from auction.market import Market

__all__ = ["WEIGHT_LIMIT", "MatchingProblem", "check_weights", "matching_problem",
           "matching_problem_reference", "scaled_benefits"]

IntArray = npt.NDArray[np.int64]
#: Benefits and prices stay below this (the kernel prices removed offers here).
WEIGHT_LIMIT = 1 << 61
_LIMIT = WEIGHT_LIMIT


@attrs.frozen(eq=False)
class MatchingProblem:
    """A market as a matching problem in canonical order.

    Person p stands for request row ``person_request[p]`` and object o for offer row
    ``object_offer[o]``; persons follow request priority and objects offer rank. Row p's
    edges are ``cols[indptr[p]:indptr[p+1]]`` with welfare weight ``weight`` per hour.
    One person per request and one object per offer, weight (max_price - ask + bonus) x gpus.
    """

    person_request: IntArray
    object_offer: IntArray
    indptr: IntArray
    cols: IntArray
    weight: IntArray

    @property
    def n(self) -> int:
        return len(self.indptr) - 1

    @property
    def m(self) -> int:
        return len(self.object_offer)


def check_weights(weight: IntArray) -> None:
    if len(weight) and int(weight.max()) >= _LIMIT:
        raise AuctionOverflowError(
            "surplus x gpus exceeds 2**61 smallest units per hour; use a coarser currency unit"
        )


def matching_problem(market: Market) -> MatchingProblem:
    """Exclusive offers: pairs whose offer can host the whole request, weighted by surplus."""
    rq, of = market.snapshot.requests, market.snapshot.offers
    pairs = market.pairs()
    indptr, cols, weight, best, gmax = exclusive_csr(
        pairs.indptr, pairs.offers, pairs.surplus, market.request_order, market.offer_rank,
        market.offer_bonus, rq.gpus, of.gpus)
    if len(cols) and best > (_LIMIT - 1) // max(1, gmax):
        check_weights(np.array([_LIMIT]))
    return MatchingProblem(
        person_request=market.request_order,
        object_offer=market.offer_order,
        indptr=indptr,
        cols=cols,
        weight=weight,
    )


def matching_problem_reference(market: Market) -> MatchingProblem:
    """`matching_problem` in numpy from `Market.priority_pairs` (the tests' reference)."""
    rq, of = market.snapshot.requests, market.snapshot.offers
    person, rows, offers, surplus = market.priority_pairs()
    surplus = surplus + market.offer_bonus[offers]  # the score (Che 1993); bonus 0 by default
    keep = of.gpus[offers] >= rq.gpus[rows]
    person, rows, offers, surplus = person[keep], rows[keep], offers[keep], surplus[keep]
    gpus = rq.gpus[rows]
    if len(surplus) and int(surplus.max()) > (_LIMIT - 1) // max(1, int(gpus.max())):
        check_weights(np.array([_LIMIT]))
    return MatchingProblem(
        person_request=market.request_order,
        object_offer=market.offer_order,
        indptr=group_starts(person, market.n_requests),
        cols=market.offer_rank[offers],
        weight=surplus * gpus,
    )


def scaled_benefits(problem: MatchingProblem) -> tuple[IntArray, int]:
    """Bidding benefits ``weight * (2n + 1) + 1`` and the scale ``2n + 1``.

    With final epsilon 1 the auction is within n scaled units of the optimum. A matching that
    lost one unit of welfare would lose at least ``scale - n > n`` scaled units, even counting
    the +1 per trade (at most n), so the result is welfare-exact; the +1 leans the auction
    towards more trades among allocations of equal welfare (not guaranteed: the last n
    scaled units are not resolved).
    """
    scale = 2 * problem.n + 1
    w = problem.weight
    if len(w) and int(w.max()) > (_LIMIT // 4 - 1) // scale:
        raise AuctionOverflowError(
            f"welfare weights up to {int(w.max())} x scale {scale} overflow the exact auction "
            "(limit 2**59); use a coarser currency unit or clear smaller batches"
        )
    return w * scale + 1, scale
