"""The market: which offers may serve which requests, and the surplus of each pair.

Eligibility of offer o for request r (all must hold):

* o's GPU model is in r's ``gpu_models`` (or r accepts any model);
* o's region is in r's ``regions`` (or r accepts any region);
* ``o.vram_gb >= r.min_vram_gb`` and ``r.required_tags`` is a subset of ``o.tags``;
* the provider's reputation is ``>= r.min_reputation``;
* ``o.price <= r.max_price``;
* for a non-divisible request that is not a cluster request, ``o.gpus >= r.gpus``.

Memory stays bounded when requests accept anything: offers with the same model, region, VRAM and
tags form an *offer class*; requests with the same constraints form a *profile*. The market keeps
the profile x class eligibility (small) and, per class, the offers sorted by price. Per-pair
eligibility is materialized only on demand (`Market.pairs`), for mechanisms that need it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from fractions import Fraction
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from auction.book import BookSnapshot, OrderBook
from auction.errors import InvalidOrderError
from auction.money import MAX_MONEY

__all__ = ["Market", "Pairs", "gather_ranges"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

#: Pairs generated per block when materializing or counting pairs (bounds peak memory).
_BLOCK_PAIRS = 1 << 22


def _readonly(a: np.ndarray) -> Any:
    a.flags.writeable = False
    return a


def _csr_from_groups(group: IntArray, n_groups: int) -> tuple[IntArray, IntArray]:
    """indptr and members (stable) of a grouping of range(len(group))."""
    members = np.argsort(group, kind="stable").astype(np.int64)
    indptr = np.zeros(n_groups + 1, dtype=np.int64)
    np.cumsum(np.bincount(group, minlength=n_groups), out=indptr[1:])
    return indptr, members


@attrs.frozen(eq=False)
class Pairs:
    """Eligible (request, offer) pairs in CSR form over request rows.

    Row r's eligible offers are ``offers[indptr[r]:indptr[r+1]]``, in offer rank order
    (ask - bonus, then submitted_at, then id), with ``surplus`` = max_price - ask per GPU-hour
    (the quality bonus is not in it: see `Market.offer_bonus`).
    """

    indptr: IntArray
    offers: IntArray
    surplus: IntArray

    def __len__(self) -> int:
        return len(self.offers)

    @property
    def nbytes(self) -> int:
        return int(self.indptr.nbytes + self.offers.nbytes + self.surplus.nbytes)


class Market:
    """Eligibility and surplus of a book snapshot, ready for clearing.

    Args:
        book: an `OrderBook` (snapshotted here) or a `BookSnapshot`.
        reputation: score in [0, 1] per provider name; providers not listed get
            `default_reputation`.
        default_reputation: reputation of providers with no score (0.0: requests that set
            ``min_reputation > 0`` will not trade with unknown providers).
        quality: quality in [0, 1] per provider name for scoring auctions (Che 1993);
            providers not listed get 0. None: the reputation scores are the quality.
        quality_weight: what one unit of quality is worth, in smallest money units per
            GPU-hour (0, the default: price-only clearing). Each offer carries the bonus
            ``offer_bonus = floor(quality_weight x quality)``, exact with the quality read as
            its shortest decimal (0.95 is 95/100, not the binary float below it), and the
            *score* of an offer for a request is ``max_price - ask + offer_bonus``.

    Rows in every array index the snapshot's columns. Orderings that decide ties:

    * ``offer_rank``: position in (ask - bonus, submitted_at, id) order: best score first
      (cheaper first when there is no quality term);
    * ``request_rank``: position in (submitted_at, id) order: earlier first.
    """

    def __init__(
        self,
        book: OrderBook | BookSnapshot,
        reputation: Mapping[str, float] | None = None,
        *,
        default_reputation: float = 0.0,
        quality: Mapping[str, float] | None = None,
        quality_weight: int = 0,
    ) -> None:
        snap = book.snapshot() if isinstance(book, OrderBook) else book
        if not isinstance(snap, BookSnapshot):
            raise TypeError(f"Market needs an OrderBook or BookSnapshot, not {type(book).__name__}")
        self.snapshot = snap
        self.reputation = _check_reputation(reputation, default_reputation)
        self.default_reputation = float(default_reputation)
        self.quality = (
            None if quality is None else _check_reputation(quality, 0.0, "quality")
        )
        if (
            isinstance(quality_weight, bool)
            or not isinstance(quality_weight, int | np.integer)
            or not 0 <= int(quality_weight) <= MAX_MONEY
        ):
            raise InvalidOrderError(
                "quality_weight", quality_weight, f"must be an int in [0, {MAX_MONEY}]"
            )
        self.quality_weight = int(quality_weight)
        off, req = snap.offers, snap.requests

        codes = {name: i for i, name in enumerate(snap.parties)}
        rep = np.full(len(snap.parties), self.default_reputation, dtype=np.float64)
        for name, score in self.reputation.items():
            if name in codes:
                rep[codes[name]] = score
        self.offer_reputation: FloatArray = _readonly(rep[off.provider])
        # Quality bonus per provider: floor(quality_weight x quality), exact (see offer_bonus).
        bonus = np.zeros(len(snap.parties), dtype=np.int64)
        if self.quality_weight:
            q_of = self.quality if self.quality is not None else None
            for name, code in codes.items():
                q = q_of.get(name, 0.0) if q_of is not None else float(rep[code])
                bonus[code] = math.floor(Fraction(repr(float(q))) * self.quality_weight)
        self.offer_bonus: IntArray = _readonly(bonus[off.provider])

        # Offers: global rank by (price - bonus, submitted_at, id): the best score first.
        order = np.lexsort((off.id, off.submitted_at, off.price - self.offer_bonus))
        order = order.astype(np.int64)
        rank = np.empty(len(off), dtype=np.int64)
        rank[order] = np.arange(len(off), dtype=np.int64)
        self.offer_order: IntArray = _readonly(order)
        self.offer_rank: IntArray = _readonly(rank)

        # Offer classes: same model, region, VRAM and tags.
        key = np.column_stack(
            [off.gpu_model.astype(np.int64), off.region, off.vram_gb, off.tags.view(np.int64)]
        ) if len(off) else np.zeros((0, 3 + off.tags.shape[1]), dtype=np.int64)
        ukeys, offer_class = np.unique(key, axis=0, return_inverse=True)
        offer_class = offer_class.reshape(-1).astype(np.int64)
        n_class = len(ukeys)
        self.offer_class: IntArray = _readonly(offer_class)
        # class members in rank order: stable sort of rank-ordered offers by class
        members = order[np.argsort(offer_class[order], kind="stable")]
        indptr = np.zeros(n_class + 1, dtype=np.int64)
        np.cumsum(np.bincount(offer_class, minlength=n_class), out=indptr[1:])
        self.class_indptr: IntArray = _readonly(indptr)
        self.class_offers: IntArray = _readonly(members.astype(np.int64))
        self.class_gpu_model: IntArray = _readonly(ukeys[:, 0].copy())
        self.class_region: IntArray = _readonly(ukeys[:, 1].copy())
        self.class_vram_gb: IntArray = _readonly(ukeys[:, 2].copy())
        self.class_tags = _readonly(np.ascontiguousarray(ukeys[:, 3:]).view(np.uint64))

        # Requests: priority by (submitted_at, id).
        rorder = np.lexsort((req.id, req.submitted_at)).astype(np.int64)
        rrank = np.empty(len(req), dtype=np.int64)
        rrank[rorder] = np.arange(len(req), dtype=np.int64)
        self.request_order: IntArray = _readonly(rorder)
        self.request_rank: IntArray = _readonly(rrank)

        # Request profiles: same model, region, VRAM and tag constraints.
        pkey = np.column_stack(
            [
                req.any_model.astype(np.int64),
                req.gpu_models.view(np.int64),
                req.any_region.astype(np.int64),
                req.regions.view(np.int64),
                req.min_vram_gb,
                req.required_tags.view(np.int64),
            ]
        )
        upk, request_profile = np.unique(pkey, axis=0, return_inverse=True)
        request_profile = request_profile.reshape(-1).astype(np.int64)
        self.request_profile: IntArray = _readonly(request_profile)
        wm, wr = req.gpu_models.shape[1], req.regions.shape[1]
        self.profile_indptr, self.profile_classes = self._profile_classes(upk, wm, wr)

    # -- construction helpers -----------------------------------------------------------
    def _profile_classes(self, upk: IntArray, wm: int, wr: int) -> tuple[IntArray, IntArray]:
        """CSR of eligible classes per request profile, computed in bounded blocks."""
        n_prof, n_class = len(upk), len(self.class_indptr) - 1
        col = 0
        any_model = upk[:, col].astype(bool)
        models = np.ascontiguousarray(upk[:, col + 1 : col + 1 + wm]).view(np.uint64)
        col += 1 + wm
        any_region = upk[:, col].astype(bool)
        regions = np.ascontiguousarray(upk[:, col + 1 : col + 1 + wr]).view(np.uint64)
        col += 1 + wr
        min_vram = upk[:, col]
        tags = np.ascontiguousarray(upk[:, col + 1 :]).view(np.uint64)

        ctags = self.class_tags
        wt = min(tags.shape[1], ctags.shape[1])
        cm, cr = self.class_gpu_model, self.class_region
        m_word, m_bit = cm >> 6, (cm & 63).astype(np.uint64)
        r_word, r_bit = cr >> 6, (cr & 63).astype(np.uint64)
        one = np.uint64(1)
        lists: list[IntArray] = []
        counts = np.zeros(n_prof, dtype=np.int64)
        block = max(1, (1 << 24) // max(1, n_class * max(1, tags.shape[1])))
        for lo in range(0, n_prof, block):
            hi = min(n_prof, lo + block)
            sl = slice(lo, hi)
            ok = (min_vram[sl, None] <= self.class_vram_gb[None, :])
            if n_class:
                has_m = (models[sl][:, m_word] >> m_bit[None, :]) & one
                ok &= any_model[sl, None] | (has_m == one)
                has_r = (regions[sl][:, r_word] >> r_bit[None, :]) & one
                ok &= any_region[sl, None] | (has_r == one)
                for w in range(tags.shape[1]):
                    need = tags[sl, w][:, None]
                    have = ctags[None, :, w] if w < wt else np.uint64(0)
                    ok &= (need & ~have) == 0
            p, c = np.nonzero(ok)
            counts[lo:hi] = np.bincount(p, minlength=hi - lo)
            lists.append(c.astype(np.int64))
        indptr = np.zeros(n_prof + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        flat = np.concatenate(lists) if lists else np.zeros(0, dtype=np.int64)
        return _readonly(indptr), _readonly(flat)

    def like(self, book: OrderBook | BookSnapshot) -> Market:
        """A market over another book with this one's reputation and quality settings."""
        return Market(book, self.reputation, default_reputation=self.default_reputation,
                      quality=self.quality, quality_weight=self.quality_weight)

    # -- sizes --------------------------------------------------------------------------
    @property
    def n_offers(self) -> int:
        return self.snapshot.n_offers

    @property
    def n_requests(self) -> int:
        return self.snapshot.n_requests

    @property
    def scoring(self) -> bool:
        """True when some offer carries a quality bonus (a scoring auction market)."""
        return bool(self.offer_bonus.any())

    @property
    def n_classes(self) -> int:
        return len(self.class_indptr) - 1

    @property
    def n_profiles(self) -> int:
        return len(self.profile_indptr) - 1

    @property
    def nbytes(self) -> int:
        """Bytes held by the market's own arrays (not the snapshot's, not lazily built pairs)."""
        return sum(
            int(v.nbytes) for v in vars(self).values() if isinstance(v, np.ndarray)
        )

    def __repr__(self) -> str:
        return (
            f"Market({self.n_requests} requests, {self.n_offers} offers, "
            f"{self.n_classes} offer classes, {self.n_profiles} request profiles)"
        )

    # -- eligibility --------------------------------------------------------------------
    def eligible_classes(self, request_row: int) -> IntArray:
        """Offer classes whose model, region, VRAM and tags suit request row `request_row`."""
        p = self.request_profile[request_row]
        return self.profile_classes[self.profile_indptr[p] : self.profile_indptr[p + 1]]

    def _blocks(self) -> Iterator[tuple[IntArray, IntArray]]:
        """Eligible (request row, offer row) pairs, class by class, in bounded blocks."""
        req = self.snapshot.requests
        off = self.snapshot.offers
        n_prof, n_class = self.n_profiles, self.n_classes
        if n_prof == 0 or n_class == 0:
            return
        prof_req_indptr, prof_reqs = _csr_from_groups(self.request_profile, n_prof)
        # class -> eligible profiles
        pc_prof = np.repeat(np.arange(n_prof, dtype=np.int64), np.diff(self.profile_indptr))
        cls_prof_indptr, order = _csr_from_groups(self.profile_classes, n_class)
        cls_prof = pc_prof[order]
        price = off.price
        for c in range(n_class):
            profs = cls_prof[cls_prof_indptr[c] : cls_prof_indptr[c + 1]]
            if len(profs) == 0:
                continue
            reqs = np.concatenate([prof_reqs[prof_req_indptr[p] : prof_req_indptr[p + 1]]
                                   for p in profs])
            members = self.class_offers[self.class_indptr[c] : self.class_indptr[c + 1]]
            if self.scoring:  # rank order is not price order: put members in price order
                members = members[np.argsort(price[members], kind="stable")]
            prices = price[members]
            k = np.searchsorted(prices, req.max_price[reqs], side="right").astype(np.int64)
            cum = np.cumsum(k)
            start = 0
            while start < len(reqs):
                base = cum[start - 1] if start else 0
                stop = int(np.searchsorted(cum, base + _BLOCK_PAIRS, side="right"))
                stop = max(stop, start + 1)
                rs, ks = reqs[start:stop], k[start:stop]
                total = int(ks.sum())
                if total:
                    rows = np.repeat(rs, ks)
                    first = np.repeat(np.cumsum(ks) - ks, ks)
                    cols = members[np.arange(total, dtype=np.int64) - first]
                    keep = self.offer_reputation[cols] >= req.min_reputation[rows]
                    whole = off.gpus[cols] >= req.gpus[rows]
                    keep &= req.divisible[rows] | req.cluster[rows] | whole
                    yield rows[keep], cols[keep]
                start = stop

    def pair_count(self) -> int:
        """Number of eligible (request, offer) pairs, counted without keeping them."""
        return sum(len(r) for r, _ in self._blocks())

    def pairs(self) -> Pairs:
        """Materialize every eligible pair as CSR over requests (cached after the first call).

        Memory grows with the pair count: requests that accept any offer pair with all of them.
        Mechanisms that can work on offer classes should, and only call this when they must.
        """
        cached: Pairs | None = self.__dict__.get("_pairs")
        if cached is not None:
            return cached
        rows_l, cols_l = [], []
        for r, c in self._blocks():
            rows_l.append(r)
            cols_l.append(c)
        rows = np.concatenate(rows_l) if rows_l else np.zeros(0, dtype=np.int64)
        cols = np.concatenate(cols_l) if cols_l else np.zeros(0, dtype=np.int64)
        o = np.lexsort((self.offer_rank[cols], rows))
        rows, cols = rows[o], cols[o]
        indptr = np.zeros(self.n_requests + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=self.n_requests), out=indptr[1:])
        surplus = self.snapshot.requests.max_price[rows] - self.snapshot.offers.price[cols]
        out = Pairs(_readonly(indptr), _readonly(cols), _readonly(surplus))
        self.__dict__["_pairs"] = out
        return out

    def priority_pairs(self) -> tuple[IntArray, IntArray, IntArray, IntArray]:
        """Eligible pairs with requests in priority order: (position, request row, offer row,
        surplus), where position is the request's index in `request_order`; within a request,
        offers stay in rank order. The canonical edge list of the batch mechanisms."""
        pairs = self.pairs()
        order = self.request_order
        counts = np.diff(pairs.indptr)[order]
        idx = gather_ranges(pairs.indptr[:-1][order], counts)
        position = np.repeat(np.arange(len(order), dtype=np.int64), counts)
        return position, order[position], pairs.offers[idx], pairs.surplus[idx]


def gather_ranges(starts: IntArray, lengths: IntArray) -> IntArray:
    """Concatenation of the ranges [starts[k], starts[k] + lengths[k]), vectorized."""
    total = int(lengths.sum())
    first = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(starts, lengths) + np.arange(total, dtype=np.int64) - first


def _check_reputation(
    reputation: Mapping[str, float] | None, default: float, name: str = "reputation"
) -> dict[str, float]:
    def check(field: str, v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float | np.floating | np.integer):
            raise InvalidOrderError(field, v, "must be a number in [0, 1]")
        try:
            f = float(v)
        except OverflowError:  # an int too large for a float
            f = math.inf
        if not math.isfinite(f) or not 0.0 <= f <= 1.0:
            raise InvalidOrderError(field, v, "must be in [0, 1]")
        return f

    check("default_reputation", default)
    if reputation is None:
        return {}
    if not isinstance(reputation, Mapping):
        raise InvalidOrderError(name, reputation, "must map provider names to scores")
    return {str(k): check(f"{name}[{k!r}]", v) for k, v in reputation.items()}
