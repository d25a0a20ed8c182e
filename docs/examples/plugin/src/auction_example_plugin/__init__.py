"""An example mechanism plugin: a greedy pay-as-bid auction with a reserve surplus.

Objective: none global. Requests, in priority order, each take the best-ranked eligible offer
with room for all their GPUs whose surplus (max_price - ask) is at least ``reserve``; each
provider is paid its ask. Whole requests only: the base class refuses markets with divisible
requests and names the mechanisms that clear them.
"""

from __future__ import annotations

from typing import ClassVar

import attrs
import numpy as np

from auction import ClearingResult, Market
from auction.limits import Deadline
from auction.mechanisms import MechanismBase, MechanismTags, options

__all__ = ["GreedyReserve"]


@attrs.frozen
class GreedyReserve(MechanismBase):
    """Greedy pay-as-bid clearing that trades only pairs with surplus >= `reserve`.

    Args:
        payment: ``"pay-as-bid"`` (the only rule).
        reserve: the least surplus per GPU-hour, in the smallest money unit, for a trade.
        time_limit, max_memory: every mechanism's options (see `MechanismBase`).
    """

    name: ClassVar[str] = "greedy-reserve"
    tags = MechanismTags(payments=("pay-as-bid",), divisible=False)

    reserve: int = options.integer(0, minimum=0)

    def _clear(
        self, market: Market, rng: np.random.Generator | None, deadline: Deadline
    ) -> ClearingResult:
        pairs = market.pairs()
        left = market.snapshot.offers.gpus.tolist()
        want = market.snapshot.requests.gpus.tolist()
        rows: list[int] = []
        offers: list[int] = []
        for r in market.request_order.tolist():
            lo, hi = int(pairs.indptr[r]), int(pairs.indptr[r + 1])
            for o, surplus in zip(pairs.offers[lo:hi].tolist(), pairs.surplus[lo:hi].tolist(),
                                  strict=True):
                if surplus >= self.reserve and left[o] >= want[r]:
                    left[o] -= want[r]
                    rows.append(r)
                    offers.append(o)
                    break
        off = np.asarray(offers, dtype=np.int64)
        return ClearingResult.from_allocation(
            market, rows, off, [want[r] for r in rows], market.snapshot.offers.price[off],
            mechanism=self.name, payment=self.payment, options=self.get_options(),
        )
