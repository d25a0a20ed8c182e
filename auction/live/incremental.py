"""Incremental re-clears: an epoch's clear reads only the orders that changed and the orders
they can trade with.

For the sequential sealed-bid auctions (`DECOMPOSABLE`: ``first-price`` and
``second-price``, without quality bonuses), the book a periodic clear leaves behind is
*settled*: every request that is still open found no eligible offer with the capacity it
needs (all its GPUs, one for a divisible request) at its turn, and capacity only shrinks
during a clear, so no settled request can trade with a settled offer. Between two clears the
book changes by events: orders leave (cancel, expiry, fills: no new trade can come of that),
orders arrive or are amended, and leases end and give offers capacity back. Those are the
*changed* orders (an offer whose capacity grew counts as changed). A from-scratch clear of
the new book therefore trades exactly like a clear of the sub-market of

* the changed requests that some open offer may serve (eligible by model, region, VRAM and
  tags, ask at most the max price, enough GPUs, enough reputation), each with the
  best-ranked such offers (a *prefix* of them in rank order), and
* the changed offers that some open request may take, each with the first such requests in
  priority order (a prefix),

provided no request or offer needed more than its prefix. That is checked on the sub-clear's
result (`_Prefix`): a changed offer must have no GPU left when the first request cut from its
prefix comes (capacity only shrinks, so that request and every later one find nothing there),
and a changed request must be filled whole by offers ranked before the first offer cut from
its prefix (and, for ``second-price``, be paid less than that offer's ask, so its runner-up
ranks before it too). A prefix that fails grows fourfold and the sub-market is cleared again;
after `_MAX_ROUNDS` the clear is from scratch.

The result is then stitched over the whole book without a snapshot of it: the sub-clear's
allocation (already in canonical order), rows looked up in the book's index, and the unmatched
requests read from a persistent priority-ordered index of the open requests (`_Priority`). The
work per epoch is proportional to the changed orders and the prefixes they read, plus one
O(open requests) numpy pass for the unmatched list.

The clear is from scratch for other mechanisms (batch mechanisms with global prices, solvers
whose tie-breaks read the whole instance, plugins), for markets with quality bonuses, for the
first clear (nothing is settled yet) and when more than `_WHOLE_SHARE` of the open orders
changed. `tests/test_live_incremental.py` checks identity with a from-scratch clear by
hypothesis.
"""

from __future__ import annotations

import heapq
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, cast

import attrs
import numpy as np
import numpy.typing as npt

from auction.book import OrderBook
from auction.clearing import clear as clear_from_scratch
from auction.live.pools import Pools
from auction.market import Market
from auction.mechanisms.base import Mechanism
from auction.mechanisms.sealed_bid import SealedBidAuction
from auction.orders import Offer, Order, Request
from auction.result import ClearingResult, Status

__all__ = ["DECOMPOSABLE", "IncrementalClearer", "decomposable"]

#: Registry names of the mechanisms the re-clear is exact for.
DECOMPOSABLE = frozenset({"first-price", "second-price"})

IntArray = npt.NDArray[np.int64]
_PeerPrices = tuple[list[Any], IntArray, IntArray]
#: When more than this share of the open orders changed since the last clear, clear from
#: scratch (the sub-market would be most of the book).
_WHOLE_SHARE = 0.25
#: Sub-clears before giving up on the prefixes and clearing from scratch.
_MAX_ROUNDS = 6
#: Scale of the first prefixes (tests shrink it to 0 to force prefixes to grow).
_FIRST = 1.0
SortKey = tuple[Any, ...]


def decomposable(mechanism: Mechanism) -> bool:
    """True when `mechanism` may be re-cleared incrementally (see the module docstring)."""
    return isinstance(mechanism, SealedBidAuction) and mechanism.name in DECOMPOSABLE


def _first(want: int) -> int:
    return max(1, round(_FIRST * want))


def _rank(o: Order) -> SortKey:
    assert isinstance(o, Offer)
    return (o.price, o.submitted_at, o.id)


def _least(r: Request) -> int:
    """GPUs an offer must have free to serve `r` at all (a superset of the market's rule)."""
    return 1 if r.divisible or r.cluster else r.gpus


class _Priority:
    """The open requests' ids in priority order (submitted_at, id), as numpy columns.

    Changes are queued (`added`, `removed`) and applied in one batch (`flush`): O(changes x
    log n) searches plus one O(n) numpy copy, no Python work per open request.
    """

    def __init__(self) -> None:
        self.sub = np.zeros(0, dtype=np.int64)
        self.ids: npt.NDArray[np.str_] = np.zeros(0, dtype="<U1")
        self._add: dict[str, int] = {}
        self._drop: dict[str, int] = {}
        self.lengths: Counter[int] = Counter()  # id lengths of the open requests

    def rebuild(self, sub: IntArray, ids: npt.NDArray[np.str_]) -> None:
        """Index exactly these requests (a snapshot's columns), dropping queued changes."""
        order = np.lexsort((ids, sub))
        self.sub, self.ids = np.asarray(sub)[order], np.asarray(ids)[order]
        lengths, counts = np.unique(np.strings.str_len(self.ids), return_counts=True)
        self.lengths = Counter(dict(zip(lengths.tolist(), counts.tolist(), strict=True)))
        self._add, self._drop = {}, {}

    def added(self, rid: str, sub: int) -> None:
        self.lengths[len(rid)] += 1
        if self._drop.get(rid) == sub:
            del self._drop[rid]  # left and came back with the same key: still in place
        else:
            self._add[rid] = sub

    def removed(self, rid: str, sub: int) -> None:
        n = len(rid)
        self.lengths[n] -= 1
        if not self.lengths[n]:
            del self.lengths[n]
        if self._add.get(rid) == sub:
            del self._add[rid]
        else:
            self._drop[rid] = sub

    def width(self) -> str:
        """The dtype of the book's request id column (as wide as its longest id)."""
        return f"<U{max(self.lengths, default=1) or 1}"

    def positions(self, subs: IntArray, ids: list[str], *, insert: bool = False) -> IntArray:
        """Where the keys (subs[i], ids[i]) are (or, `insert`, go) in the index."""
        lo = np.searchsorted(self.sub, subs, side="left")
        hi = np.searchsorted(self.sub, subs, side="right")
        pos = lo.astype(np.int64)
        span = hi - lo
        for i in np.flatnonzero(span != (0 if insert else 1)).tolist():
            a, b = int(lo[i]), int(hi[i])
            pos[i] = a + int(np.searchsorted(self.ids[a:b], ids[i]))
        if not insert and len(pos) and not bool((self.ids[pos] == np.asarray(ids)).all()):
            raise _Fallback  # the index lost track of the book: clear from scratch
        return pos

    def flush(self) -> None:
        if self._drop:
            ids = list(self._drop)
            pos = self.positions(np.fromiter(self._drop.values(), np.int64, len(ids)), ids)
            keep = np.ones(len(self.sub), dtype=bool)
            keep[pos] = False
            self.sub, self.ids = self.sub[keep], self.ids[keep]
            self._drop = {}
        if self._add:
            items = sorted((s, i) for i, s in self._add.items())
            subs = np.array([s for s, _ in items], dtype=np.int64)
            new = [i for _, i in items]
            arr = np.array(new, dtype=str)
            if arr.dtype.itemsize > self.ids.dtype.itemsize:
                self.ids = self.ids.astype(arr.dtype)
            pos = self.positions(subs, new, insert=True)
            self.sub = np.insert(self.sub, pos, subs)
            self.ids = np.insert(self.ids, pos, arr)
            self._add = {}

    def unmatched(self, served: Iterable[tuple[int, str]]) -> npt.NDArray[np.str_]:
        """The open requests but `served` ((submitted_at, id) pairs), in priority order."""
        served = list(served)
        keep = np.ones(len(self.sub), dtype=bool)
        if served:
            pos = self.positions(np.array([s for s, _ in served], dtype=np.int64),
                                 [i for _, i in served])
            keep[pos] = False
        out = self.ids[keep].astype(self.width())
        out.flags.writeable = False
        return out


@attrs.define
class _Prefix:
    """The first matches of a changed order in its counterparts' order (`taken`), the key of
    the first match left out of the sub-market (`cut`, None when none was), and the walk,
    kept to take more."""

    order: Offer | Request
    want: int
    taken: list[Order] = attrs.Factory(list)
    cut: SortKey | None = None
    nxt: tuple[SortKey, Order] | None = None
    rest: Iterator[tuple[SortKey, Order]] = attrs.Factory(lambda: iter(()))

    def start(self, matches: Iterator[tuple[SortKey, Order]]) -> None:
        self.rest, self.taken = matches, []
        self.nxt = next(matches, None)
        self.grow(self.want)

    def grow(self, n: int) -> None:
        """Take `n` more matches."""
        rest, nxt, taken = self.rest, self.nxt, self.taken
        while n > 0 and nxt is not None:
            taken.append(nxt[1])
            nxt = next(rest, None)
            n -= 1
        self.nxt = nxt
        self.cut = None if nxt is None else nxt[0]

    def skip(self, present: Mapping[str, Order]) -> None:
        """Move the cut past matches the sub-market holds anyway (from other prefixes)."""
        while self.nxt is not None and self.nxt[0][-1] in present:
            self.nxt = next(self.rest, None)
        self.cut = None if self.nxt is None else self.nxt[0]


class _Fallback(Exception):
    """The re-clear cannot vouch for its result: the caller clears from scratch."""


def _picked(keys: list[SortKey], positions: IntArray) -> Iterator[SortKey]:
    """The keys at `positions`, lazily (a walk usually needs only the first few)."""
    return (keys[i] for i in positions)


def _merged(groups: Iterable[list[SortKey]]) -> Iterator[SortKey]:
    lists = [g for g in groups if g]
    if len(lists) == 1:
        return iter(lists[0])
    return heapq.merge(*lists)


class IncrementalClearer:
    """Clears a live book epoch after epoch, reading only what changed since the last clear.

    The engine reports every change of its book (`opened`, `closed`, `resized`); `clear`
    returns the result a from-scratch clear of the book gives (see the module docstring).

    Args:
        mechanism: the mechanism; when not `decomposable`, every clear is from scratch.
        reputation: provider scores for the market.

    Attributes:
        last_stats: ``{"incremental", "changed", "recleared", "rounds", "seconds"}`` of the
            last clear: whether it was incremental, how many open orders had changed, how
            many orders the sub-market held, and how many sub-clears it took.
    """

    def __init__(self, mechanism: Mechanism, reputation: Mapping[str, float] | None) -> None:
        self.mechanism = mechanism
        self.reputation = dict(reputation or {})
        self.incremental = decomposable(mechanism)
        self.vickrey = getattr(mechanism, "payment", "") == "vickrey"
        self._settled = False  # the book holds a settled remainder plus the changes below
        self._changed: dict[str, Order] = {}
        self._priority = _Priority()
        self._offer_lengths: Counter[int] = Counter()
        self._party_width = 1
        self._price_cache: dict[int, tuple[int, IntArray]] = {}  # profile -> (stamp, prices)
        self._peer_cache: dict[int, tuple[list[int], _PeerPrices]] = {}  # class -> its peers
        self.last_stats: dict[str, Any] = {}

    # -- changes ----------------------------------------------------------------------------
    def opened(self, order: Order) -> None:
        """`order` entered the book (submitted, amended or given capacity back)."""
        if not self.incremental:
            return
        self._changed[order.id] = order
        if isinstance(order, Request):
            self._priority.added(order.id, order.submitted_at)
            names: tuple[str, ...] = (order.tenant, *order.providers, *order.exclude_providers)
        else:
            self._offer_lengths[len(order.id)] += 1
            names = (order.provider, *order.tenants, *order.exclude_tenants)
        self._party_width = max(self._party_width, *map(len, names))

    def closed(self, order: Order) -> None:
        """`order` left the book."""
        if not self.incremental:
            return
        self._changed.pop(order.id, None)
        if isinstance(order, Request):
            self._priority.removed(order.id, order.submitted_at)
        else:
            n = len(order.id)
            self._offer_lengths[n] -= 1
            if not self._offer_lengths[n]:
                del self._offer_lengths[n]

    def resized(self, old: Order, new: Order) -> None:
        """`old` became `new` in place, its GPUs changed (a fill, or a lease's end)."""
        if not self.incremental:
            return
        if old.id in self._changed or new.gpus > old.gpus or (
                isinstance(new, Request) and not new.divisible):
            self._changed[new.id] = new  # more capacity, or a request that needs less

    # -- clearing -------------------------------------------------------------------------
    def clear(self, book: OrderBook, pools: Pools,
              orders: Mapping[str, Order] | None = None) -> ClearingResult:
        """Clear `book` (whose orders `pools` indexes and `orders` maps by id);
        identical to a from-scratch clear."""
        start = time.perf_counter()
        result = None
        if (self.incremental and self._settled
                and len(self._changed) <= _WHOLE_SHARE * max(len(book), 1)):
            try:
                result = self._reclear(book, pools, orders or _BookOrders(book))
            except _Fallback:
                result = None
        if result is None:
            self.last_stats = {"incremental": False, "changed": len(self._changed)}
            snap = book.snapshot()
            result = clear_from_scratch(Market(snap, self.reputation), self.mechanism)
            if self.incremental:  # start the next epoch's indexes from this book
                self._priority.rebuild(snap.requests.submitted_at, snap.requests.id)
        # the engine applies every fill of the result: what stays open is settled
        self._changed = {}
        self._settled = self.incremental
        self.last_stats["seconds"] = time.perf_counter() - start
        return result

    def _reclear(self, book: OrderBook, pools: Pools, orders: Mapping[str, Order]
                 ) -> ClearingResult:
        self._priority.flush()
        offers: list[_Prefix] = []
        requests: list[_Prefix] = []
        for o in self._changed.values():
            if isinstance(o, Offer):
                offers.append(_Prefix(o, _first(2 * o.gpus)))
            else:
                requests.append(_Prefix(o, _first((o.gpus if o.divisible else 1) + 1
                                                  + self.vickrey)))
        for p in offers:
            p.start(self._requests_for(cast(Offer, p.order), pools, orders))
        for p in requests:
            p.start(self._offers_for(cast(Request, p.order), pools, orders))
        for rounds in range(1, _MAX_ROUNDS + 1):
            sub_offers = {p.order.id: p.order for p in offers if p.taken}
            sub_requests = {p.order.id: p.order for p in requests if p.taken}
            for p in offers:
                sub_requests.update((r.id, r) for r in p.taken)
            for p in requests:
                sub_offers.update((o.id, o) for o in p.taken)
            for p in offers:  # the first match cut off that the sub-market lacks
                p.skip(sub_requests)
            for p in requests:
                p.skip(sub_offers)
            sub = book.take(list(sub_offers), list(sub_requests))
            result = self.mechanism.clear(Market(sub, self.reputation), rng=None)
            if result.status is not Status.SUCCESS or result.diagnostics:
                raise _Fallback
            short = self._short(result, offers, requests, sub_requests, sub_offers)
            if not short:
                self.last_stats = {"incremental": True, "changed": len(self._changed),
                                   "recleared": len(sub_offers) + len(sub_requests),
                                   "rounds": rounds}
                return self._stitch(book, result, sub_requests)
            for p in short:
                p.grow(3 * p.want)
                p.want *= 4
        raise _Fallback

    def _requests_for(self, o: Offer, pools: Pools, orders: Mapping[str, Order]
                      ) -> Iterator[tuple[SortKey, Order]]:
        """The requests that may take the changed offer `o`, in priority order: in each
        accepting profile the requests that pay the ask (numpy over the profile's max prices,
        which are cached until the profile changes: the oldest requests are often those that
        pay least, so a plain walk would read them all), merged."""
        rep = self.reputation.get(o.provider, 0.0)
        price, gpus = o.price, o.gpus
        get = orders.__getitem__
        peers, big, starts = self._peer_prices(pools.group_of(o))
        pos = np.flatnonzero(big >= price)
        gi = np.searchsorted(starts, pos, side="right") - 1
        local = pos - starts[gi]
        cuts = (np.flatnonzero(np.diff(gi)) + 1).tolist()
        streams = [_picked(peers[int(gi[a])].keys, local[a:b])
                   for a, b in zip([0, *cuts], [*cuts, len(pos)], strict=True) if b > a]
        if not streams:
            return
        it = streams[0] if len(streams) == 1 else heapq.merge(*streams)
        for key in it:
            r = cast(Request, get(key[-1]))
            if r.min_reputation <= rep and (r.gpus <= gpus or r.divisible or r.cluster):
                yield key, r  # pays the ask; _least(r) <= gpus

    def _peer_prices(self, cls: Any) -> _PeerPrices:
        """The non-empty profiles that accept the offer class `cls`, their max prices end
        to end and where each starts (cached until one of them changes)."""
        peers = [g for g in cls.peers if g.keys]
        sig = [g.stamp for g in peers]
        hit = self._peer_cache.get(cls.index)
        if hit is not None and hit[0] == sig:
            return hit[1]
        arrays = [self._prices(g) for g in peers]
        starts = np.zeros(len(arrays), dtype=np.int64)
        if arrays:
            np.cumsum([len(a) for a in arrays[:-1]], out=starts[1:])
        big = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int64)
        out: _PeerPrices = (peers, big, starts)
        self._peer_cache[cls.index] = (sig, out)
        return out

    def _prices(self, g: Any) -> IntArray:
        hit = self._price_cache.get(g.index)
        if hit is not None and hit[0] == g.stamp:
            return hit[1]
        arr = np.array(g.prices, dtype=np.int64)
        self._price_cache[g.index] = (g.stamp, arr)
        return arr

    def _offers_for(self, r: Request, pools: Pools, orders: Mapping[str, Order]
                    ) -> Iterator[tuple[SortKey, Order]]:
        """The offers that may serve the changed request `r`, in rank order."""
        least, rep, maxp = _least(r), self.reputation, r.max_price
        groups = pools.group_of(r).peers
        get = orders.__getitem__
        for key in _merged(g.keys for g in groups if g.keys and g.keys[0][0] <= maxp):
            if key[0] > maxp:  # ranks sort by price first
                return
            o = cast(Offer, get(key[-1]))
            if o.gpus >= least and rep.get(o.provider, 0.0) >= r.min_reputation:
                yield key, o

    def _short(self, result: ClearingResult, offers: list[_Prefix], requests: list[_Prefix],
               sub_requests: Mapping[str, Order], sub_offers: Mapping[str, Order]
               ) -> list[_Prefix]:
        """The prefixes the sub-clear may have needed more of (see the module docstring)."""
        rows: dict[str, list[tuple[str, int, int]]] = {}
        cols = (result.request_id.tolist(), result.offer_id.tolist(), result.gpus.tolist(),
                result.unit_price.tolist())
        for rid, oid, g, price in zip(*cols, strict=True):
            rows.setdefault(rid, []).append((oid, g, price))
            rows.setdefault(oid, []).append((rid, g, price))
        short = []
        for p in offers:
            if p.cut is None:
                continue
            cut = p.cut
            used = sum(g for rid, g, _ in rows.get(p.order.id, ())
                       if (sub_requests[rid].submitted_at, rid) < cut)
            if p.order.gpus - used >= 1:  # GPUs left when the first request cut off came
                short.append(p)
        for p in requests:
            if p.cut is None:
                continue
            cut = p.cut
            got = rows.get(p.order.id, [])
            ok = sum(g for _, g, _ in got) == p.order.gpus and all(
                _rank(sub_offers[oid]) < cut and (not self.vickrey or price < cut[0])
                for oid, _, price in got)
            if not ok:
                short.append(p)
        return short

    def _stitch(self, book: OrderBook, sub: ClearingResult, requests: Mapping[str, Order]
                ) -> ClearingResult:
        """The sub-clear's result as the whole book's: rows in the book, every unmatched
        request, and the book's column widths."""
        where = book._where
        rids, oids = sub.request_id.tolist(), sub.offer_id.tolist()
        rw = self._priority.width()
        ow = f"<U{max(self._offer_lengths, default=1) or 1}"
        pw = f"<U{self._party_width}"
        served = {(requests[i].submitted_at, i) for i in rids}
        n = len(rids)
        return attrs.evolve(
            sub,
            request_row=_frozen(np.array([where[i][1] for i in rids], dtype=np.int64)),
            offer_row=_frozen(np.array([where[i][1] for i in oids], dtype=np.int64)),
            request_id=_frozen(sub.request_id.astype(rw)),
            offer_id=_frozen(sub.offer_id.astype(ow)),
            tenant=_frozen(sub.tenant.astype(pw)) if n else sub.tenant,
            provider=_frozen(sub.provider.astype(pw)) if n else sub.provider,
            unmatched_request_ids=self._priority.unmatched(served),
            partial_request_ids=_frozen(sub.partial_request_ids.astype(rw)),
        )


def _frozen(a: np.ndarray) -> Any:
    a.flags.writeable = False
    return a


class _BookOrders(Mapping[str, Order]):
    """The book's orders by id, for callers without an id map of their own."""

    def __init__(self, book: OrderBook) -> None:
        self.book = book

    def __getitem__(self, key: str) -> Order:
        return self.book.get(key)

    def __iter__(self) -> Iterator[str]:
        return (o.id for o in self.book)

    def __len__(self) -> int:
        return len(self.book)
