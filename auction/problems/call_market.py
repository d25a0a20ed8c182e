"""Call markets: the one resource class each request trades in, or why there is none."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from auction.errors import UnsupportedMarketError
from auction.market import Market

__all__ = ["CALL_MARKET_ALTERNATIVES", "class_label", "request_classes"]

IntArray = npt.NDArray[np.int64]

#: Mechanisms that clear markets that are not call markets (named when one is refused).
CALL_MARKET_ALTERNATIVES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("lp", {}), ("assignment", {"shape": "shared"}),
)

Refuse = Callable[[str, Iterable[Any]], UnsupportedMarketError]


def class_label(market: Market, cls: int) -> str:
    """A resource class by name, e.g. ``"H100/us-east/80GB/nvlink+soc2"``."""
    o = market.snapshot.offer(int(market.class_offers[market.class_indptr[cls]]))
    label = f"{o.gpu_model}/{o.region}/{o.vram_gb}GB"
    return label + (f"/{'+'.join(sorted(o.tags))}" if o.tags else "")


def _default_refuse(mechanism: str) -> Refuse:
    def refuse(reason: str, alternatives: Iterable[str | tuple[str, Mapping[str, Any]]]
               ) -> UnsupportedMarketError:
        return UnsupportedMarketError(mechanism, reason, alternatives)

    return refuse


def request_classes(
    market: Market, mechanism: str = "double auction", refuse: Refuse | None = None
) -> IntArray:
    """The offer class each request trades in (-1: none), or `UnsupportedMarketError`.

    A request trades in class c when its eligible offers, ignoring price and capacity, are
    exactly c's offers. It trades in none when it has no eligible offer (no class suits its
    model, region, VRAM and tags, or its reputation floor is above every provider of its
    class). Anything else (several classes, or a reputation floor that excludes some but not
    all of the class's providers) is not a call market and is refused, naming the first such
    request by priority. `refuse` builds the error (a mechanism's `MechanismBase.refuse`).
    """
    build = refuse if refuse is not None else _default_refuse(mechanism)
    rq = market.snapshot.requests
    n_eligible = np.diff(market.profile_indptr)[market.request_profile]
    out = np.full(market.n_requests, -1, dtype=np.int64)
    multi = np.flatnonzero(n_eligible > 1)
    if len(multi):
        r = int(multi[np.argmin(market.request_rank[multi])])
        labels = sorted(class_label(market, int(c)) for c in market.eligible_classes(r))
        shown = ", ".join(labels[:4]) + (", ..." if len(labels) > 4 else "")
        raise build(
            f"request {str(rq.id[r])!r} accepts offers of {len(labels)} resource classes "
            f"({shown}); a call market needs every request in one class's book",
            CALL_MARKET_ALTERNATIVES,
        )
    one = np.flatnonzero(n_eligible == 1)
    out[one] = market.profile_classes[market.profile_indptr[market.request_profile[one]]]
    if len(one):
        lowest, highest = np.full(market.n_classes, np.inf), np.full(market.n_classes, -np.inf)
        np.minimum.at(lowest, market.offer_class, market.offer_reputation)
        np.maximum.at(highest, market.offer_class, market.offer_reputation)
        floor = rq.min_reputation[one]
        out[one[floor > highest[out[one]]]] = -1  # excludes the whole class: eligible for none
        bad = one[(floor > lowest[out[one]]) & (floor <= highest[out[one]])]
        if len(bad):
            r = int(bad[np.argmin(market.request_rank[bad])])
            raise build(
                f"request {str(rq.id[r])!r} has min_reputation {float(rq.min_reputation[r])}, "
                f"which excludes some providers of its class {class_label(market, int(out[r]))}; "
                "a call market needs every request to accept its whole class",
                CALL_MARKET_ALTERNATIVES,
            )
    return out
