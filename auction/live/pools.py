"""Pools: open orders grouped by what they are (offer class) and what they want (request
profile), with the eligibility between groups memoized.

An offer's *class* is (gpu_model, region, vram_gb, tags); a request's *profile* is
(gpu_models, regions, min_vram_gb, required_tags). A profile accepts a class when the model
and region are acceptable (an empty set accepts any), the VRAM is enough and the class carries
every required tag: the same rule as `auction.Market`, before price, reputation and size.
The bipartite graph of profiles and classes is therefore a supergraph of the market's
eligibility graph.

Continuous matching (`auction.live.matching`) reads this index: each group keeps its orders
sorted by the rule's priority key, so the best counterparts of an order are a merge of the
heads of the groups it accepts. The incremental re-clear (`auction.live.incremental`) reads
only the groups' dense indexes and their counterparts (`peer_indexes`).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from auction.errors import UnknownOrderError
from auction.orders import Offer, Request

__all__ = ["ClassKey", "Pools", "ProfileKey", "accepts", "offer_class", "request_profile"]

#: (gpu_model, region, vram_gb, tags)
ClassKey = tuple[Any, ...]
#: (gpu_models, regions, min_vram_gb, required_tags)
ProfileKey = tuple[Any, ...]
SortKey = tuple[Any, ...]
#: where groups are filed: (model, region), either None for "any"
Spot = tuple[str | None, str | None]


def offer_class(offer: Offer) -> ClassKey:
    """The class of an offer: what it is, apart from price, size and provider."""
    return (offer.gpu_model, offer.region, offer.vram_gb, offer.tags)


def request_profile(request: Request) -> ProfileKey:
    """The profile of a request: what it accepts, apart from price, size and reputation."""
    return (request.gpu_models, request.regions, request.min_vram_gb, request.required_tags)


def accepts(profile: ProfileKey, cls: ClassKey) -> bool:
    """True when requests of `profile` may be served by offers of class `cls` (as `Market`)."""
    models, regions, min_vram, required = profile
    model, region, vram, tags = cls
    return (
        (not models or model in models)
        and (not regions or region in regions)
        and vram >= min_vram
        and required <= tags
    )


class _Group:
    """The open orders of one class or profile, sorted by a priority key."""

    __slots__ = ("_peer_array", "_peer_ix", "index", "keys", "peers")

    def __init__(self, index: int) -> None:
        self.index = index  # dense id of the group, in order of first sight
        self.keys: list[SortKey] = []  # (priority..., order id), sorted
        self.peers: list[_Group] = []  # the groups on the other side it shares an edge with
        self._peer_ix: list[int] = []  # the dense indexes of `peers`
        self._peer_array: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)

    def add(self, key: SortKey) -> None:
        bisect.insort(self.keys, key)

    def remove(self, key: SortKey) -> None:
        i = bisect.bisect_left(self.keys, key)
        if i == len(self.keys) or self.keys[i] != key:
            raise UnknownOrderError(str(key[-1]))
        del self.keys[i]

    def ids(self) -> Iterator[str]:
        return (k[-1] for k in self.keys)

    def peer_indexes(self) -> npt.NDArray[np.int64]:
        """The dense indexes of `peers`, as an array (extended when peers are linked)."""
        arr, ix = self._peer_array, self._peer_ix
        if len(arr) < len(ix):
            arr = self._peer_array = np.concatenate(
                (arr, np.array(ix[len(arr):], dtype=np.int64)))
        return arr


class Pools:
    """Open orders indexed by class and profile, with eligibility memoized both ways.

    Args:
        offer_key: sort key of an offer inside its class; its last item must be the id.
        request_key: sort key of a request inside its profile; its last item must be the id.

    Groups get dense indexes (`_Group.index`, classes and profiles counted together, in
    order of first sight; ``groups[index]``); a group is never dropped, so an index stays
    valid while the pools live.
    """

    def __init__(
        self,
        offer_key: Callable[[Offer], SortKey],
        request_key: Callable[[Request], SortKey],
    ) -> None:
        self.offer_key = offer_key
        self.request_key = request_key
        self.classes: dict[ClassKey, _Group] = {}
        self.profiles: dict[ProfileKey, _Group] = {}
        self.groups: list[_Group] = []  # by dense index
        # where a new group finds its counterparts, reading only groups that may accept it:
        # a class is filed under (model, region), (model, None), (None, region) and (None,
        # None); a profile under the one of those forms it names (each (model, region) pair,
        # each model when it names no region, ...). Under each spot, groups are bucketed by
        # (VRAM, tags): a bucket is accepted or not as a whole.
        self._classes_at: dict[Spot, dict[tuple[int, frozenset[str]], list[_Group]]] = {}
        self._profiles_at: dict[Spot, dict[tuple[int, frozenset[str]], list[_Group]]] = {}

    # -- groups -------------------------------------------------------------------------
    @property
    def n_groups(self) -> int:
        return len(self.groups)

    def _new_group(self) -> _Group:
        g = _Group(len(self.groups))
        self.groups.append(g)
        return g

    def _class(self, key: ClassKey) -> _Group:
        g = self.classes.get(key)
        if g is None:
            g = self.classes[key] = self._new_group()
            model, region, vram, tags = key
            for at in ((model, region), (model, None), (None, region), (None, None)):
                self._classes_at.setdefault(at, {}).setdefault((vram, tags), []).append(g)
                for (min_vram, required), profiles in self._profiles_at.get(at, {}).items():
                    if vram >= min_vram and required <= tags:
                        _link(g, profiles)
        return g

    def _profile(self, key: ProfileKey) -> _Group:
        g = self.profiles.get(key)
        if g is None:
            g = self.profiles[key] = self._new_group()
            models, regions, min_vram, required = key
            for at in [(m, r) for m in sorted(models) or [None]
                       for r in sorted(regions) or [None]]:
                self._profiles_at.setdefault(at, {}).setdefault(
                    (min_vram, required), []).append(g)
                for (vram, tags), classes in self._classes_at.get(at, {}).items():
                    if vram >= min_vram and required <= tags:
                        _link(g, classes)
        return g

    def group_of(self, order: Offer | Request) -> _Group:
        """The group an order belongs in (created on first sight)."""
        if isinstance(order, Offer):
            return self._class(offer_class(order))
        return self._profile(request_profile(order))

    def sort_key(self, order: Offer | Request) -> SortKey:
        return self.offer_key(order) if isinstance(order, Offer) else self.request_key(order)

    # -- changes ------------------------------------------------------------------------
    def add(self, order: Offer | Request) -> None:
        self.group_of(order).add(self.sort_key(order))

    def remove(self, order: Offer | Request) -> None:
        self.group_of(order).remove(self.sort_key(order))


def _link(g: _Group, others: list[_Group]) -> None:
    """`g` and each of `others` (on the other side) accept each other."""
    g.peers.extend(others)
    g._peer_ix.extend([o.index for o in others])
    for o in others:
        o.peers.append(g)
        o._peer_ix.append(g.index)
