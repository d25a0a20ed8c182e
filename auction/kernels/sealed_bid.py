"""Sealed-bid reverse auction kernel (Akash-style, per order, in priority order).

Requests are taken in the given priority order. A non-divisible request takes the best-ranked
eligible offer whose remaining capacity covers all its GPUs; a divisible request fills from the
best-ranked eligible offers upward, one chunk per offer, and may end partly filled. Capacity is
consumed as it goes. Offers are reached through classes (offers alike but for price, sorted by
rank), so the cost per request grows with the classes it accepts, not with the offer count.

Payment (``vickrey``): False pays each chunk its ask. True pays the lowest ask among eligible
offers of *other providers* that could have served the same chunk at that moment (enough
remaining capacity), capped at the request's max price; a provider's own offers never set its
price.

`sealed_bid` is the numba kernel; `sealed_bid_reference` is the same algorithm in plain Python,
the oracle the tests compare the kernel with.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from auction.kernels.jit import lazy_njit

__all__ = ["sealed_bid", "sealed_bid_reference"]

IntArray = npt.NDArray[np.int64]
Outputs = tuple[IntArray, IntArray, IntArray, IntArray]


@lazy_njit(nogil=True)
def sealed_bid(
    request_order: IntArray,
    req_gpus: IntArray,
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
    vickrey: bool,
) -> Outputs:
    """Clear requests in order; return (request, offer, gpus, unit_price) per allocation."""
    n_out = len(request_order) + len(offer_price)
    out_req = np.empty(n_out, dtype=np.int64)
    out_off = np.empty(n_out, dtype=np.int64)
    out_gpus = np.empty(n_out, dtype=np.int64)
    out_price = np.empty(n_out, dtype=np.int64)
    remaining = offer_gpus.copy()
    head = class_indptr[:-1].copy()
    n = 0
    for r in request_order:
        p = req_profile[r]
        c_lo = profile_indptr[p]
        c_hi = profile_indptr[p + 1]
        max_price = req_max_price[r]
        min_rep = req_min_rep[r]
        divisible = req_divisible[r]
        need = req_gpus[r]
        while need > 0:
            # smallest chunk an offer must cover: all GPUs, or one for divisible requests
            least = 1 if divisible else need
            best = -1
            best_rank = len(offer_rank)
            for ci in range(c_lo, c_hi):
                c = profile_classes[ci]
                end = class_indptr[c + 1]
                h = head[c]
                while h < end and remaining[class_offers[h]] == 0:
                    h += 1
                head[c] = h
                for j in range(h, end):
                    o = class_offers[j]
                    if offer_price[o] > max_price or offer_rank[o] >= best_rank:
                        break
                    if remaining[o] >= least and offer_rep[o] >= min_rep:
                        best = o
                        best_rank = offer_rank[o]
                        break
            if best < 0:
                break
            take = min(need, remaining[best])
            price = offer_price[best]
            if vickrey:
                price = max_price
                for ci in range(c_lo, c_hi):
                    c = profile_classes[ci]
                    for j in range(head[c], class_indptr[c + 1]):
                        o = class_offers[j]
                        if offer_price[o] >= price:
                            break
                        if (
                            offer_provider[o] != offer_provider[best]
                            and remaining[o] >= least
                            and offer_rep[o] >= min_rep
                        ):
                            price = offer_price[o]
                            break
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
    vickrey: bool,
) -> Outputs:
    """The kernel's algorithm in plain Python over lists: the oracle for `sealed_bid`."""
    price_of = offer_price.tolist()
    rep_of = offer_rep.tolist()
    prov_of = offer_provider.tolist()
    remaining = offer_gpus.tolist()
    bounds = class_indptr.tolist()
    members = [class_offers[bounds[c] : bounds[c + 1]].tolist() for c in range(len(bounds) - 1)]
    by_profile = [
        profile_classes[profile_indptr[p] : profile_indptr[p + 1]].tolist()
        for p in range(len(profile_indptr) - 1)
    ]
    heads = [0] * len(members)  # per class: offers before it have no capacity left
    rank_of = offer_rank.tolist()
    gpus_of, maxp_of = req_gpus.tolist(), req_max_price.tolist()
    minrep_of, div_of, prof_of = req_min_rep.tolist(), req_divisible.tolist(), req_profile.tolist()
    out: list[tuple[int, int, int, int]] = []

    def cheapest(classes: list[int], least: int, min_rep: float, max_price: int,
                 skip_provider: int) -> int:
        """Best-ranked offer with `least` GPUs free, optionally from another provider."""
        best, best_rank = -1, len(rank_of)
        for c in classes:
            offers = members[c]
            h = heads[c]
            while h < len(offers) and remaining[offers[h]] == 0:
                h += 1
            heads[c] = h
            for j in range(h, len(offers)):
                o = offers[j]
                if price_of[o] > max_price or rank_of[o] >= best_rank:
                    break
                if remaining[o] >= least and rep_of[o] >= min_rep and prov_of[o] != skip_provider:
                    best, best_rank = o, rank_of[o]
                    break
        return best

    for r in request_order.tolist():
        classes = by_profile[prof_of[r]]
        need = gpus_of[r]
        while need > 0:
            least = 1 if div_of[r] else need
            best = cheapest(classes, least, minrep_of[r], maxp_of[r], -1)
            if best < 0:
                break
            take = min(need, remaining[best])
            price = price_of[best]
            if vickrey:
                other = cheapest(classes, least, minrep_of[r], maxp_of[r], prov_of[best])
                price = maxp_of[r] if other < 0 else price_of[other]
            out.append((r, best, take, price))
            remaining[best] -= take
            need -= take
    cols = np.array(out, dtype=np.int64).reshape(-1, 4)
    return cols[:, 0].copy(), cols[:, 1].copy(), cols[:, 2].copy(), cols[:, 3].copy()
