"""Sealed-bid reverse auction kernel (Akash-style, per order, in priority order).

Requests are taken in the given priority order. A non-divisible request takes the best-ranked
eligible offer whose remaining capacity covers all its GPUs; a divisible request fills from the
best-ranked eligible offers upward, one chunk per offer, and may end partly filled. Capacity is
consumed as it goes. Offers are reached through classes (offers alike but for price, sorted by
rank), so the cost per request grows with the classes it accepts, not with the offer count.

Payment (``vickrey``): False pays each chunk its ask. True is the second-score rule (Che
1993): the winner is paid so that its score equals the runner-up's, ``ask - bonus`` of the
best-ranked eligible offer of *another provider* that could have served the request at that
moment (all its GPUs free for a non-divisible request; at least one GPU free for a divisible
one) plus the winner's own bonus, capped at the request's max price; with no runner-up, the max
price. Without quality bonuses this is the lowest competing ask: Vickrey's rule. A provider's
own offers never set its price.

Offer ranks order offers by (ask - bonus, submitted_at, id). Every scan checks ``ask <= max
price``; without bonuses ranks follow asks, so "ask <= max price" is also "rank <
``req_rank_limit[r]``" (callers of scoring markets pass the offer count), and each class keeps
the rank of its first offer with capacity left:
a class whose head cannot beat the best offer found so far is skipped with one comparison.
Head ranks only grow, so the least head rank a profile's classes had at its last scan stays a
lower bound: a request whose rank limit is at or below it is refused without a scan (this makes
requests that arrive after their market sold out cost O(1)).

Deadline: given a one-byte `stop` flag (`auction.kernels.budget.stop_at`, set by a timer at the
clearing's deadline), the kernel reads it between requests once `after` units of work are done
(a unit: a request, a class, or an offer it may look at) and then every `CHECK_EVERY` units
or so, never a clock in the loop. Set, it stops before the next request and marks the flag
`STOPPED`: the allocation returned is that of the requests cleared so far, a prefix of the
sequential auction, so it is feasible. Without a flag (None, the default) it always finishes.

`sealed_bid` is the numba kernel; `sealed_bid_reference` is the same algorithm in plain Python,
the oracle the tests compare the kernel with.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from auction.kernels.budget import CHECK_EVERY
from auction.kernels.jit import lazy_njit

__all__ = ["STOPPED", "sealed_bid", "sealed_bid_reference"]

#: What the kernels write into the stop flag when they stopped early because it was set.
STOPPED = 2

IntArray = npt.NDArray[np.int64]
Outputs = tuple[IntArray, IntArray, IntArray, IntArray]


@lazy_njit(nogil=True)
def sealed_bid(
    request_order: IntArray,
    req_gpus: IntArray,
    req_rank_limit: IntArray,
    req_max_price: IntArray,
    req_min_rep: npt.NDArray[np.float64],
    req_divisible: npt.NDArray[np.bool_],
    req_profile: IntArray,
    profile_indptr: IntArray,
    profile_classes: IntArray,
    class_indptr: IntArray,
    class_offers: IntArray,
    offer_price: IntArray,
    offer_gpus: IntArray,
    offer_rep: npt.NDArray[np.float64],
    offer_provider: npt.NDArray[np.int32],
    offer_rank: IntArray,
    offer_bonus: IntArray,
    vickrey: bool,
    stop: npt.NDArray[np.uint8] | None = None,
    after: int = 0,
) -> Outputs:
    """Clear requests in order; return (request, offer, gpus, unit_price) per allocation
    (those of the requests before the stop, with ``stop[0] == STOPPED``, if `stop` fired)."""
    n_offers = len(offer_rank)
    n_class = len(class_indptr) - 1
    n_out = len(request_order) + n_offers
    out_req = np.empty(n_out, dtype=np.int64)
    out_off = np.empty(n_out, dtype=np.int64)
    out_gpus = np.empty(n_out, dtype=np.int64)
    out_price = np.empty(n_out, dtype=np.int64)
    remaining = offer_gpus.copy()
    head = class_indptr[:-1].copy()
    head_rank = np.full(n_class, n_offers, dtype=np.int64)
    for c in range(n_class):
        if class_indptr[c + 1] > head[c]:
            head_rank[c] = offer_rank[class_offers[head[c]]]
    profile_floor = np.zeros(len(profile_indptr) - 1, dtype=np.int64)
    n = 0
    work = 0
    check_at = after
    for r in request_order:
        if stop is not None and work >= check_at:
            if stop[0]:
                stop[0] = STOPPED
                break
            check_at = work + CHECK_EVERY
        work += 1
        p = req_profile[r]
        limit = req_rank_limit[r]
        if profile_floor[p] >= limit:
            continue
        c_lo = profile_indptr[p]
        c_hi = profile_indptr[p + 1]
        min_rep = req_min_rep[r]
        divisible = req_divisible[r]
        need = req_gpus[r]
        maxp = req_max_price[r]
        while need > 0:
            # smallest chunk an offer must cover: all GPUs, or one for divisible requests
            least = 1 if divisible else need
            best = -1
            best_rank = limit
            floor = n_offers
            work += c_hi - c_lo
            for ci in range(c_lo, c_hi):
                c = profile_classes[ci]
                hr = head_rank[c]
                if hr < floor:
                    floor = hr
                if hr >= best_rank:
                    continue
                end = class_indptr[c + 1]
                h = head[c]
                work += end - h  # at most this many offers looked at
                if remaining[class_offers[h]] == 0:
                    h += 1
                    while h < end and remaining[class_offers[h]] == 0:
                        h += 1
                    head[c] = h
                    head_rank[c] = offer_rank[class_offers[h]] if h < end else n_offers
                    if head_rank[c] >= best_rank:
                        continue
                for j in range(h, end):
                    o = class_offers[j]
                    rk = offer_rank[o]
                    if rk >= best_rank:
                        break
                    if remaining[o] >= least and offer_rep[o] >= min_rep and (
                        offer_price[o] <= maxp
                    ):
                        best = o
                        best_rank = rk
                        break
            profile_floor[p] = floor
            if best < 0:
                break
            take = min(need, remaining[best])
            price = offer_price[best]
            if vickrey:
                skip = offer_provider[best]
                other = -1
                other_rank = limit
                work += c_hi - c_lo
                for ci in range(c_lo, c_hi):
                    c = profile_classes[ci]
                    if head_rank[c] >= other_rank:
                        continue
                    work += class_indptr[c + 1] - head[c]
                    for j in range(head[c], class_indptr[c + 1]):
                        o = class_offers[j]
                        rk = offer_rank[o]
                        if rk >= other_rank:
                            break
                        if (
                            offer_provider[o] != skip
                            and remaining[o] >= least
                            and offer_rep[o] >= min_rep
                            and offer_price[o] <= maxp
                        ):
                            other = o
                            other_rank = rk
                            break
                price = maxp
                if other >= 0:  # the runner-up's score, met: its ask - bonus + our bonus
                    price = min(maxp, offer_price[other] - offer_bonus[other] + offer_bonus[best])
            out_req[n] = r
            out_off[n] = best
            out_gpus[n] = take
            out_price[n] = price
            n += 1
            remaining[best] -= take
            need -= take
    return out_req[:n], out_off[:n], out_gpus[:n], out_price[:n]


def sealed_bid_reference(
    request_order: IntArray,
    req_gpus: IntArray,
    req_rank_limit: IntArray,
    req_max_price: IntArray,
    req_min_rep: npt.NDArray[np.float64],
    req_divisible: npt.NDArray[np.bool_],
    req_profile: IntArray,
    profile_indptr: IntArray,
    profile_classes: IntArray,
    class_indptr: IntArray,
    class_offers: IntArray,
    offer_price: IntArray,
    offer_gpus: IntArray,
    offer_rep: npt.NDArray[np.float64],
    offer_provider: npt.NDArray[np.int32],
    offer_rank: IntArray,
    offer_bonus: IntArray,
    vickrey: bool,
    stop: npt.NDArray[np.uint8] | None = None,
    after: int = 0,
) -> Outputs:
    """The kernel's algorithm in plain Python over lists: the oracle for `sealed_bid` (its
    work count and stop checks included)."""
    n_offers = len(offer_rank)
    price_of = offer_price.tolist()
    rep_of = offer_rep.tolist()
    prov_of = offer_provider.tolist()
    rank_of = offer_rank.tolist()
    remaining = offer_gpus.tolist()
    bounds = class_indptr.tolist()
    members = [class_offers[bounds[c] : bounds[c + 1]].tolist() for c in range(len(bounds) - 1)]
    by_profile = [
        profile_classes[profile_indptr[p] : profile_indptr[p + 1]].tolist()
        for p in range(len(profile_indptr) - 1)
    ]
    heads = [0] * len(members)  # per class: offers before it have no capacity left
    head_rank = [rank_of[m[0]] if m else n_offers for m in members]
    profile_floor = [0] * len(by_profile)
    gpus_of, limit_of, maxp_of = req_gpus.tolist(), req_rank_limit.tolist(), req_max_price.tolist()
    minrep_of, div_of, prof_of = req_min_rep.tolist(), req_divisible.tolist(), req_profile.tolist()
    out: list[tuple[int, int, int, int]] = []

    bonus_of = offer_bonus.tolist()

    def best_offer(
        classes: list[int], least: int, min_rep: float, limit: int, skip: int, maxp: int
    ) -> tuple[int, int, int]:
        """Best-ranked offer below `limit` with `least` GPUs free, not from provider `skip`,
        the least head rank seen, and the work (classes, and offers at most looked at)."""
        best, best_rank, floor, work = -1, limit, n_offers, len(classes)
        for c in classes:
            hr = head_rank[c]
            if hr < floor:
                floor = hr
            if hr >= best_rank:
                continue
            offers = members[c]
            h = heads[c]
            work += len(offers) - h
            if skip < 0 and remaining[offers[h]] == 0:  # heads move in the first search only
                while h < len(offers) and remaining[offers[h]] == 0:
                    h += 1
                heads[c] = h
                head_rank[c] = rank_of[offers[h]] if h < len(offers) else n_offers
                if head_rank[c] >= best_rank:
                    continue
            for j in range(h, len(offers)):
                o = offers[j]
                if rank_of[o] >= best_rank:
                    break
                if (remaining[o] >= least and rep_of[o] >= min_rep and prov_of[o] != skip
                        and price_of[o] <= maxp):
                    best, best_rank = o, rank_of[o]
                    break
        return best, floor, work

    work = 0
    check_at = after
    for r in request_order.tolist():
        if stop is not None and work >= check_at:
            if stop[0]:
                stop[0] = STOPPED
                break
            check_at = work + CHECK_EVERY
        work += 1
        p = prof_of[r]
        if profile_floor[p] >= limit_of[r]:
            continue
        classes = by_profile[p]
        need = gpus_of[r]
        while need > 0:
            least = 1 if div_of[r] else need
            maxp = maxp_of[r]
            best, profile_floor[p], scanned = best_offer(classes, least, minrep_of[r],
                                                         limit_of[r], -1, maxp)
            work += scanned
            if best < 0:
                break
            take = min(need, remaining[best])
            price = price_of[best]
            if vickrey:
                other, _, scanned = best_offer(classes, least, minrep_of[r], limit_of[r],
                                               prov_of[best], maxp)
                work += scanned
                price = maxp if other < 0 else min(
                    maxp, price_of[other] - bonus_of[other] + bonus_of[best]
                )
            out.append((r, best, take, price))
            remaining[best] -= take
            need -= take
    cols = np.array(out, dtype=np.int64).reshape(-1, 4)
    return cols[:, 0].copy(), cols[:, 1].copy(), cols[:, 2].copy(), cols[:, 3].copy()
