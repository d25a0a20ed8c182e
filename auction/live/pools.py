"""Pools: open orders grouped by what they are (offer class) and what they want (request
profile), with the eligibility between groups memoized and a change stamp per group.

An offer's *class* is (gpu_model, region, vram_gb, tags); a request's *profile* is
(gpu_models, regions, min_vram_gb, required_tags). A profile accepts a class when the model
and region are acceptable (an empty set accepts any), the VRAM is enough and the class carries
every required tag: the same rule as `auction.Market`, before price, reputation and size.
The bipartite graph of profiles and classes is therefore a supergraph of the market's
eligibility graph.

Continuous matching (`auction.live.matching`) and the incremental re-clear
(`auction.live.incremental`) read this index: each group keeps its orders sorted by the
rule's priority key (periodic markets: offers by rank, requests by priority), so the best
counterparts of an order are a merge of the heads of the groups it accepts.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Iterator
from typing import Any

from auction.errors import UnknownOrderError
from auction.orders import Offer, Request

__all__ = ["ClassKey", "Pools", "ProfileKey", "accepts", "offer_class", "request_profile"]

#: (gpu_model, region, vram_gb, tags), plus the size bucket in `Pools` with ``by_size``
ClassKey = tuple[Any, ...]
#: (gpu_models, regions, min_vram_gb, required_tags), plus the size bucket with ``by_size``
ProfileKey = tuple[Any, ...]
SortKey = tuple[Any, ...]


def offer_class(offer: Offer) -> ClassKey:
    """The class of an offer: what it is, apart from price, size and provider."""
    return (offer.gpu_model, offer.region, offer.vram_gb, offer.tags)


def request_profile(request: Request) -> ProfileKey:
    """The profile of a request: what it accepts, apart from price, size and reputation."""
    return (request.gpu_models, request.regions, request.min_vram_gb, request.required_tags)


def accepts(profile: ProfileKey, cls: ClassKey) -> bool:
    """True when requests of `profile` may be served by offers of class `cls` (as `Market`)."""
    models, regions, min_vram, required = profile[:4]
    model, region, vram, tags = cls[:4]
    return (
        (not models or model in models)
        and (not regions or region in regions)
        and vram >= min_vram
        and required <= tags
        and (len(cls) < 5 or len(profile) < 5 or cls[4] >= profile[4])
    )


def size_bucket(order: Offer | Request) -> int:
    """The bit length of an offer's GPUs, or of the GPUs a request needs from one offer (1
    for divisible and cluster requests): an offer can serve a request only when its bucket
    is at least the request's."""
    if isinstance(order, Offer):
        return order.gpus.bit_length()
    return (1 if order.divisible or order.cluster else order.gpus).bit_length()


class _Group:
    """The open orders of one class or profile, sorted by a priority key."""

    __slots__ = ("index", "keys", "peers", "prices", "stamp")

    def __init__(self, index: int) -> None:
        self.index = index  # dense id of the group, in order of first sight
        self.keys: list[SortKey] = []  # (priority..., order id), sorted
        self.stamp = 0  # changes whenever the group's orders change
        self.peers: list[_Group] = []  # the groups on the other side it shares an edge with
        self.prices: list[int] = []  # profiles, `price_index`: max price of each of `keys`

    def add(self, key: SortKey) -> None:
        bisect.insort(self.keys, key)

    def remove(self, key: SortKey) -> None:
        i = bisect.bisect_left(self.keys, key)
        if i == len(self.keys) or self.keys[i] != key:
            raise UnknownOrderError(str(key[-1]))
        del self.keys[i]

    def ids(self) -> Iterator[str]:
        return (k[-1] for k in self.keys)


class Pools:
    """Open orders indexed by class and profile, with eligibility memoized both ways.

    Args:
        offer_key: sort key of an offer inside its class; its last item must be the id.
        request_key: sort key of a request inside its profile; its last item must be the id.
        price_index: also keep each profile's max prices, in the order of its keys
            (`_Group.prices`: the incremental re-clear finds the requests that can pay an ask
            there, with numpy).
        by_size: split classes and profiles by `size_bucket` too, so a walk skips offers too
            small for a request, and requests too large for an offer, a group at a time
            (an offer whose GPUs change must then be removed and added again, not touched).

    Each change to a group takes a fresh stamp from one counter, so two equal
    (group, stamp) pairs always hold the same orders.
    """

    def __init__(
        self,
        offer_key: Callable[[Offer], SortKey],
        request_key: Callable[[Request], SortKey],
        *,
        price_index: bool = False,
        by_size: bool = False,
    ) -> None:
        self.offer_key = offer_key
        self.request_key = request_key
        self.price_index = price_index
        self.by_size = by_size
        self.classes: dict[ClassKey, _Group] = {}
        self.profiles: dict[ProfileKey, _Group] = {}
        self.class_profiles: dict[ClassKey, list[ProfileKey]] = {}
        self.profile_classes: dict[ProfileKey, list[ClassKey]] = {}
        self._stamps = itertools.count(1)
        self._dense = itertools.count()
        # where to look for a new group's counterparts: classes by (model, region), profiles
        # under every (model, region) they name, and profiles accepting any model or region
        self._classes_at: dict[tuple[str, str], list[ClassKey]] = {}
        self._profiles_at: dict[tuple[str, str], list[ProfileKey]] = {}
        self._any_profiles: list[ProfileKey] = []

    # -- groups -------------------------------------------------------------------------
    def _class(self, key: ClassKey) -> _Group:
        g = self.classes.get(key)
        if g is None:
            g = self.classes[key] = _Group(next(self._dense))
            mine = self.class_profiles[key] = []
            self._classes_at.setdefault((key[0], key[1]), []).append(key)
            near = self._profiles_at.get((key[0], key[1]), [])
            for p in (*self._any_profiles, *near):  # only profiles that may accept it
                if accepts(p, key):
                    mine.append(p)
                    self.profile_classes[p].append(key)
                    _link(g, self.profiles[p])
        return g

    def _profile(self, key: ProfileKey) -> _Group:
        g = self.profiles.get(key)
        if g is None:
            g = self.profiles[key] = _Group(next(self._dense))
            mine = self.profile_classes[key] = []
            models, regions = key[0], key[1]
            if models and regions:  # look only where its model and region could be
                for m in sorted(models):
                    for r in sorted(regions):
                        self._profiles_at.setdefault((m, r), []).append(key)
                near = [c for m in sorted(models) for r in sorted(regions)
                        for c in self._classes_at.get((m, r), [])]
            else:
                self._any_profiles.append(key)
                near = list(self.classes)
            for c in near:
                if accepts(key, c):
                    mine.append(c)
                    self.class_profiles[c].append(key)
                    _link(g, self.classes[c])
        return g

    def group_of(self, order: Offer | Request) -> _Group:
        """The group an order belongs in (created on first sight)."""
        if isinstance(order, Offer):
            key: tuple[Any, ...] = offer_class(order)
            if self.by_size:
                key = (*key, size_bucket(order))
            return self._class(key)
        key = request_profile(order)
        if self.by_size:
            key = (*key, size_bucket(order))
        return self._profile(key)

    def sort_key(self, order: Offer | Request) -> SortKey:
        return self.offer_key(order) if isinstance(order, Offer) else self.request_key(order)

    # -- changes ------------------------------------------------------------------------
    def add(self, order: Offer | Request) -> None:
        g = self.group_of(order)
        key = self.sort_key(order)
        g.add(key)
        g.stamp = next(self._stamps)
        if self.price_index and isinstance(order, Request):
            g.prices.insert(bisect.bisect_left(g.keys, key), order.max_price)

    def remove(self, order: Offer | Request) -> None:
        g = self.group_of(order)
        key = self.sort_key(order)
        g.remove(key)
        g.stamp = next(self._stamps)
        if self.price_index and isinstance(order, Request):
            del g.prices[bisect.bisect_left(g.keys, key)]

    def touch(self, order: Offer | Request) -> None:
        """Mark the order's group changed (a field outside the sort key changed)."""
        self.group_of(order).stamp = next(self._stamps)


def _link(a: _Group, b: _Group) -> None:
    a.peers.append(b)
    b.peers.append(a)
