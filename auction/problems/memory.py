"""What a problem built from a market will hold, estimated before it is built."""

from __future__ import annotations

import numpy as np

from auction.market import Market

__all__ = ["pair_bound", "pair_memory"]



def pair_bound(market: Market) -> int:
    """An upper bound on the eligible pairs, from the profile x class table alone (price,
    reputation and capacity ignored): cheap, whatever the market's size."""
    if market.n_requests == 0 or market.n_offers == 0:
        return 0
    class_size = np.diff(market.class_indptr)
    per_profile = np.add.reduceat(
        np.append(class_size[market.profile_classes], 0), market.profile_indptr[:-1]
    )[: market.n_profiles] if len(market.profile_classes) else np.zeros(market.n_profiles)
    per_profile = np.where(np.diff(market.profile_indptr) > 0, per_profile, 0)
    requests = np.bincount(market.request_profile, minlength=market.n_profiles)
    return int((requests.astype(np.int64) * per_profile.astype(np.int64)).sum())


def pair_memory(market: Market, bytes_per_pair: int, limit: int) -> tuple[str, int]:
    """(description, bytes) of a problem holding `bytes_per_pair` per eligible pair.

    Uses the pairs if the market has built them, else the `pair_bound` when that is within
    `limit` bytes (cheap), and otherwise counts the pairs in bounded blocks
    (`Market.pair_count`: flat memory, time like building them), so that a market is refused
    on its real size, not on the bound."""
    cached = market.__dict__.get("_pairs")
    if cached is not None:
        n, how = len(cached), ""
    else:
        n, how = pair_bound(market), "up to "
        if n * bytes_per_pair > limit:
            n, how = market.pair_count(), ""
    return f"{how}{n:,} eligible (request, offer) pairs", n * bytes_per_pair
