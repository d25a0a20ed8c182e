"""Incremental re-clears: clear only the parts of the book that changed since the last epoch.

Strategy (mechanism-agnostic, exact): split the open book into the connected components of
the class/profile graph (`auction.live.pools`; a supergraph of the eligibility graph), clear
each component as its own market and cache its allocation under the component's content
(its groups and their change stamps). The next epoch re-clears only components whose content
changed; the others reuse the cached allocation. The pieces are stitched into one
`ClearingResult` over the full book's snapshot, in the canonical order of
`ClearingResult.from_allocation`.

This is exact for mechanisms whose allocation and prices on a market are the union of their
allocations and prices on the market's eligibility components: `DECOMPOSABLE` lists them
(the sequential sealed-bid auctions ``first-price`` and ``second-price``: each request only
reads and consumes offers it is eligible for, and a second price is the best *eligible*
competing ask). Batch mechanisms with global prices (uniform price, McAfee, SBBA), solvers
whose tie-breaks may depend on the whole instance (assignment, lp, gang) and plugins are
cleared from scratch, as are markets with quality bonuses. `tests/test_live_incremental.py`
checks identity with a from-scratch clear by hypothesis.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from auction.book import BookSnapshot, OrderBook
from auction.clearing import clear as clear_from_scratch
from auction.live.pools import ClassKey, Pools, ProfileKey
from auction.market import Market
from auction.mechanisms.base import Mechanism
from auction.mechanisms.sealed_bid import SealedBidAuction
from auction.orders import Order
from auction.result import ClearingResult, Status

__all__ = ["DECOMPOSABLE", "IncrementalClearer", "decomposable"]

#: Registry names of the mechanisms the component cache is exact for.
DECOMPOSABLE = frozenset({"first-price", "second-price"})

IntArray = npt.NDArray[np.int64]
#: Classes plus profiles per re-clear batch (one market build each).
_BATCH_GROUPS = 256
#: When the changed components hold this share of the components' orders, clear the whole
#: book at once (and split the result for the cache).
_WHOLE_SHARE = 0.9
_Piece = tuple[list[Any], ...]


def decomposable(mechanism: Mechanism) -> bool:
    """True when `mechanism` clears components independently (see the module docstring)."""
    return isinstance(mechanism, SealedBidAuction) and mechanism.name in DECOMPOSABLE


class _Ranks:
    """Rank-consistent keys for a subset of rows, computed on demand (no full sort)."""

    def __init__(self, cols: Sequence[np.ndarray]) -> None:
        self.cols = cols  # lexsort columns, most significant last

    def __getitem__(self, rows: IntArray) -> IntArray:
        rows = np.asarray(rows, dtype=np.int64)
        order = np.lexsort(tuple(c[rows] for c in self.cols))
        out = np.empty(len(rows), dtype=np.int64)
        out[order] = np.arange(len(rows), dtype=np.int64)
        return out


class _MarketView:
    """What `ClearingResult.from_allocation` reads of a market, without building one."""

    def __init__(self, snap: BookSnapshot) -> None:
        self.snapshot = snap
        off, req = snap.offers, snap.requests
        self.offer_rank = _Ranks((off.id, off.submitted_at, off.price))
        self.request_rank = _Ranks((req.id, req.submitted_at))
        self.request_order = np.lexsort((req.id, req.submitted_at)).astype(np.int64)
        self.n_requests = len(req)


class IncrementalClearer:
    """Clears a live book epoch after epoch, re-clearing only the components that changed.

    Args:
        mechanism: the mechanism; when not `decomposable`, every clear is from scratch.
        reputation: provider scores for the market.

    Attributes:
        last_stats: ``{"components", "recleared", "reused", "incremental", "seconds"}`` of
            the last clear.
    """

    def __init__(self, mechanism: Mechanism, reputation: Mapping[str, float] | None) -> None:
        self.mechanism = mechanism
        self.reputation = dict(reputation or {})
        self.incremental = decomposable(mechanism)
        self._cache: dict[tuple[tuple[int, int], ...], _Piece] = {}
        #: ids of the order objects of the last cleared book that its result left untouched
        self._settled: set[int] = set()
        self._alive: tuple[Sequence[Order | None], ...] = ()
        #: settled requests the last clear skipped (no offer that changed can reach them)
        self.last_skipped = 0
        self.last_stats: dict[str, Any] = {}

    def clear(self, book: OrderBook, pools: Pools) -> ClearingResult:
        """Clear `book` (whose orders `pools` indexes); identical to a from-scratch clear."""
        start = time.perf_counter()
        result = None
        snap = book.snapshot()
        if self.incremental:
            try:
                result = self._clear_components(book, snap, pools)
            except (_NotDecomposable, AttributeError):
                # AttributeError: `ClearingResult.from_allocation` read more of the market
                # than `_MarketView` offers; the from-scratch clear below is always right
                self._cache = {}
        if result is None:
            self.last_stats = {"incremental": False}
            result = clear_from_scratch(Market(snap, self.reputation), self.mechanism)
        self._settle(snap, result)
        self.last_stats["seconds"] = time.perf_counter() - start
        return result

    def _settle(self, snap: BookSnapshot, result: ClearingResult) -> None:
        """Remember the orders of `snap` that `result` did not touch.

        The greedy sealed-bid clear of a book leaves a remainder on which a clear trades
        nothing (an unserved request found no offer it could take at its turn, and offers
        only lose capacity after that), and so does any part of it. Orders still in the
        next book as the same objects are such a part: a request among them can only trade
        with an offer that is not (new, amended or partly filled), so the next clear skips
        the settled requests no such offer can reach (`_reachable`).
        """
        if not self.incremental:
            return
        offers, requests = snap.built_objects()
        self._alive = (offers, requests)  # holds the objects, so their ids stay theirs
        settled = set(map(id, offers))
        settled.update(map(id, requests))
        settled.discard(id(None))
        for objects, rows in ((offers, result.offer_row), (requests, result.request_row)):
            settled.difference_update(id(objects[r]) for r in rows.tolist())
        self._settled = settled

    def _reachable(self, snap: BookSnapshot) -> npt.NDArray[np.bool_]:
        """Per request row, whether it may trade this epoch: it is not settled, or an offer
        that is not settled may serve it by price, model, region and VRAM (a superset of the
        eligible ones: exact either way, see `_settle`)."""
        from auction.kernels.eligibility import reachable_requests

        settled = self._settled
        n_req = snap.n_requests

        def old(objects: Sequence[Order | None]) -> npt.NDArray[np.bool_]:
            return np.fromiter(map(settled.__contains__, map(id, objects)), dtype=bool,
                               count=len(objects))

        offer_objects, request_objects = snap.built_objects()
        old_req = old(request_objects) if settled else np.zeros(n_req, dtype=bool)
        self.last_skipped = 0
        if not old_req.any():
            return np.ones(n_req, dtype=bool)
        off, req = snap.offers, snap.requests
        fresh = np.flatnonzero(~old(offer_objects))
        fresh = fresh[np.argsort(off.price[fresh], kind="stable")].astype(np.int64)
        i64 = np.int64
        reach = reachable_requests(
            req.max_price.astype(i64), req.gpu_models.indptr, req.gpu_models.codes,
            req.regions.indptr, req.regions.codes, req.min_vram_gb.astype(i64), fresh,
            off.price.astype(i64), off.gpu_model.astype(i64), off.region.astype(i64),
            off.vram_gb.astype(i64))
        out = np.asarray(~old_req | reach)
        self.last_skipped = int(n_req - out.sum())
        return out

    def _clear_components(self, book: OrderBook, snap: BookSnapshot, pools: Pools
                          ) -> ClearingResult:
        cache: dict[tuple[tuple[int, int], ...], _Piece] = {}
        pieces: list[_Piece] = []
        dirty: list[tuple[tuple[tuple[int, int], ...], list[ClassKey], list[ProfileKey]]] = []
        comps = pools.components()
        for classes, profiles in comps:
            key = self._key(pools, classes, profiles)
            piece = self._cache.get(key)
            if piece is None:
                dirty.append((key, classes, profiles))
            else:
                cache[key] = piece
                pieces.append(piece)
        reachable = self._reachable(snap)

        def n_orders(cs: list[ClassKey], ps: list[ProfileKey]) -> int:
            return sum(len(pools.classes[c].keys) for c in cs) + sum(
                len(pools.profiles[p].keys) for p in ps)

        dirty_orders = sum(n_orders(cs, ps) for _, cs, ps in dirty)
        if dirty and dirty_orders >= _WHOLE_SHARE * sum(n_orders(cs, ps) for cs, ps in comps):
            # (nearly) everything changed: one clear of the whole book but its unreachable
            # settled requests, split for the cache
            self.last_stats = {"incremental": True, "components": len(comps),
                               "recleared": len(comps), "reused": 0}
            if reachable.all():
                result = self._clear_market(Market(snap, self.reputation))
                self._cache = self._split(result, pools, comps)
                return result
            rows = np.flatnonzero(reachable).astype(np.int64)
            whole = np.arange(snap.n_offers, dtype=np.int64)
            result = self._clear_market(Market(_slice(snap, whole, rows), self.reputation))
            self._cache = self._split(result, pools, comps)
            return self._stitch(book, snap, list(self._cache.values()))
        # changed components are cleared in batches, one market per batch: few market
        # builds, while the batch's class x profile eligibility table stays small
        batch: list[tuple[tuple[tuple[int, int], ...], list[ClassKey], list[ProfileKey]]] = []
        size = 0
        for k, item in enumerate(dirty):
            batch.append(item)
            size += len(item[1]) + len(item[2])
            if size >= _BATCH_GROUPS or k == len(dirty) - 1:
                for key, piece in self._clear_dirty(book, snap, pools, batch, reachable):
                    cache[key] = piece
                    pieces.append(piece)
                batch, size = [], 0
        self._cache = cache  # keep only what the current book may reuse
        self.last_stats = {"incremental": True, "components": len(comps),
                           "recleared": len(dirty), "reused": len(comps) - len(dirty)}
        return self._stitch(book, snap, pieces)

    @staticmethod
    def _key(
        pools: Pools, classes: list[ClassKey], profiles: list[ProfileKey]
    ) -> tuple[tuple[int, int], ...]:
        groups = [pools.classes[c] for c in classes] + [pools.profiles[p] for p in profiles]
        return tuple(sorted((g.index, g.stamp) for g in groups))

    def _clear_dirty(
        self,
        book: OrderBook,
        snap: BookSnapshot,
        pools: Pools,
        dirty: list[tuple[tuple[tuple[int, int], ...], list[ClassKey], list[ProfileKey]]],
        reachable: npt.NDArray[np.bool_],
    ) -> list[tuple[tuple[tuple[int, int], ...], _Piece]]:
        """Clear the union of the changed components as one market (without their settled
        requests no offer can reach); split the allocation back into per-component pieces
        (by each request's component) for the cache."""
        offer_ids: list[str] = []
        comp_of: dict[str, int] = {}
        for k, (_, classes, profiles) in enumerate(dirty):
            for c in classes:
                offer_ids += pools.classes[c].ids()
            for p in profiles:
                for i in pools.profiles[p].ids():
                    comp_of[i] = k
        orows = np.sort(_rows(book, snap.offers.id, offer_ids))
        rrows = np.sort(_rows(book, snap.requests.id, list(comp_of)))
        rrows = rrows[reachable[rrows]]
        result = self._clear_market(Market(_slice(snap, orows, rrows), self.reputation))
        parts = _pieces(result, comp_of, len(dirty))
        return [(key, part) for (key, _, _), part in zip(dirty, parts, strict=True)]

    def _clear_market(self, market: Market) -> ClearingResult:
        result = self.mechanism.clear(market, rng=None)
        if result.status is not Status.SUCCESS or result.diagnostics:
            raise _NotDecomposable
        return result

    def _split(
        self,
        result: ClearingResult,
        pools: Pools,
        comps: list[tuple[list[ClassKey], list[ProfileKey]]],
    ) -> dict[tuple[tuple[int, int], ...], _Piece]:
        """A whole-book result cut into its components' pieces, keyed for the cache."""
        comp_of: dict[str, int] = {}
        if len(comps) > 1:
            for k, (_, profiles) in enumerate(comps):
                for p in profiles:
                    for i in pools.profiles[p].ids():
                        comp_of[i] = k
        parts = _pieces(result, comp_of, len(comps))
        return {self._key(pools, cs, ps): part
                for (cs, ps), part in zip(comps, parts, strict=True)}

    def _stitch(self, book: OrderBook, snap: BookSnapshot, pieces: list[_Piece]
                ) -> ClearingResult:
        cols: list[list[Any]] = [[] for _ in range(7)]
        for piece in pieces:
            for acc, part in zip(cols, piece, strict=True):
                acc.extend(part)
        rids, oids, gpus, up, tp, pp, tpay = cols
        req_rows = _rows(book, snap.requests.id, rids)
        off_rows = _rows(book, snap.offers.id, oids)
        mech = self.mechanism
        opts = mech.get_options() if hasattr(mech, "get_options") else {}
        return ClearingResult.from_allocation(
            cast(Market, _MarketView(snap)), req_rows, off_rows, gpus, up, tp,
            provider_payment=pp, tenant_payment=tpay, mechanism=mech.name,
            payment=str(getattr(mech, "payment", "")), options=opts,
        )


def _pieces(result: ClearingResult, comp_of: dict[str, int], n: int) -> list[_Piece]:
    """The result's allocation rows grouped by their request's component (all in the one
    component when `comp_of` is empty)."""
    cols = (result.request_id.tolist(), result.offer_id.tolist(), result.gpus.tolist(),
            result.unit_price.tolist(), result.tenant_price.tolist(),
            result.provider_payment.tolist(), result.tenant_payment.tolist())
    if n == 1:
        return [cols]
    parts: list[_Piece] = [tuple([] for _ in range(7)) for _ in range(n)]
    for row in zip(*cols, strict=True):
        piece = parts[comp_of.get(row[0], 0)]
        for acc, v in zip(piece, row, strict=True):
            acc.append(v)
    return parts


class _NotDecomposable(Exception):
    """A component's clear was not a plain success: the caller clears from scratch."""


def _rows(book: OrderBook, ids_col: np.ndarray, ids: list[str]) -> IntArray:
    """Snapshot rows of `ids`: the book's own index when it has one, checked, else a scan."""
    where = getattr(book, "_where", None)
    if isinstance(where, dict):
        try:
            rows = np.array([where[i][1] for i in ids], dtype=np.int64)
            if len(rows) == 0 or bool((ids_col[rows] == np.asarray(ids, dtype=str)).all()):
                return rows
        except (KeyError, IndexError, TypeError):
            pass
    index = {name: r for r, name in enumerate(ids_col.tolist())}
    return np.array([index[i] for i in ids], dtype=np.int64)


def _slice(snap: BookSnapshot, offer_rows: IntArray, request_rows: IntArray) -> BookSnapshot:
    """The sub-book of some rows, sliced from the snapshot's columns (`BookSnapshot.take`)."""
    return snap.take(offer_rows, request_rows)
