"""The market: which offers may serve which requests, and the surplus of each pair.

Eligibility of offer o for request r (all must hold):

* o's GPU model is in r's ``gpu_models`` (or r accepts any model);
* o's region is in r's ``regions`` (or r accepts any region);
* ``o.vram_gb >= r.min_vram_gb`` and ``r.required_tags`` is a subset of ``o.tags``;
* o's provider is in r's ``providers`` (or r lists none) and not in r's ``exclude_providers``;
* r's tenant is in o's ``tenants`` (or o lists none) and not in o's ``exclude_tenants``;
* node resources: ``o.cpu_per_gpu >= r.min_cpu_per_gpu``, and likewise RAM and disk;
* r's ``constraints`` hold over o, and o's ``constraints`` hold over r (`auction.constraints`);
* the provider's reputation is ``>= r.min_reputation``;
* ``o.price <= r.max_price``;
* for a non-divisible request that is not a cluster request, ``o.gpus >= r.gpus``.

Offers alike in everything eligibility reads but price, capacity, reputation and order form an
*offer class* (model, region, VRAM and tags; plus the provider, resources, tenant lists,
attributes or constraints when some order in the market makes them matter); requests alike in
their constraints form a *profile*. The profile -> class eligibility is a sparse join built from
inverted indexes over the classes (model, region, tag, provider -> classes), starting from each
profile's most selective constraint, so its cost is about O(orders log orders + candidate
pairs), never profiles x classes, and nothing grows with a vocabulary's size. Per-pair
eligibility is materialized only on demand (`Market.pairs`), for mechanisms that need it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from fractions import Fraction
from typing import Any, NamedTuple

import attrs
import numpy as np
import numpy.typing as npt

from auction.book import BookSnapshot, CodeLists, OrderBook
from auction.constraints import AttributeTable, Column, Expression, parse
from auction.errors import InvalidOrderError, InvalidTypeError
from auction.kernels.budget import stop_at
from auction.limits import check_watched, watched_monotonic
from auction.money import MAX_MONEY
from auction.orders import OFFER_BUILTINS, REQUEST_BUILTINS, Attributes

__all__ = ["Market", "Pairs", "gather_ranges"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: Pairs generated per block when materializing or counting pairs (bounds peak memory).
_BLOCK_PAIRS = 1 << 22
#: Candidate (profile, class) pairs examined per block of the sparse join.
_BLOCK_CANDIDATES = 1 << 22
#: Join with the compiled kernel (True), the numpy reference join (False) or, None, the
#: kernel once profiles x classes reach `_KERNEL_MIN_CELLS`: below that the numpy join is as
#: fast, and small markets neither import numba nor wait for a compile.
_USE_KERNEL: bool | None = None
_KERNEL_MIN_CELLS = 1 << 16
#: Node resources: (offer field, request floor).
#: Work (orders, candidates, pairs) a build does before it reads the clock (see `_Clock`).
_GRACE_WORK = 1 << 20
_RESOURCES = (("cpu_per_gpu", "min_cpu_per_gpu"), ("ram_gb_per_gpu", "min_ram_gb_per_gpu"),
              ("disk_gb_per_gpu", "min_disk_gb_per_gpu"))


class _Clock:
    """The deadline of the clear building this market (watched by `auction.clear` and the
    mechanisms, `auction.limits.watch`) for one build: read once `_GRACE_WORK` units of work
    (orders, candidates, pairs) are done, then after every chunk, so a small market is always
    built (each mechanism's own time-limit convention then applies) and a large one stops
    within a chunk of the limit with `TimeLimitError`. Nothing outside a clear."""

    def __init__(self) -> None:
        self.end = watched_monotonic()
        self.work = 0

    def tick(self, work: int, stage: str, *, stopped: bool = False) -> None:
        """Count `work` done; past the grace (or when a kernel's stop flag fired), raise
        `TimeLimitError` if the time is up."""
        self.work += int(work)
        if self.end is not None and (stopped or self.work >= _GRACE_WORK):
            check_watched(f"the market build ({stage})", stopped=stopped)

    def flag(self) -> Any:
        """A stop flag (context manager) set at the deadline, for a kernel call."""
        return stop_at(self.end)

    @property
    def after(self) -> int:
        """Work the next kernel call does before it reads the flag (what is left of the
        grace)."""
        return max(0, _GRACE_WORK - self.work)


def _readonly(a: np.ndarray) -> Any:
    a.flags.writeable = False
    return a


def _ro(a: np.ndarray) -> IntArray:
    """A read-only contiguous int64 view (a copy only when the dtype differs), so that the
    kernels see one argument type whatever the caller's flags."""
    v = np.ascontiguousarray(a, dtype=np.int64).view()
    v.flags.writeable = False
    return v


def _profile_blocks(est: IntArray) -> list[tuple[int, int]]:
    """Ranges of profiles whose candidate estimates sum to about `_BLOCK_CANDIDATES` each."""
    cum = np.cumsum(est)
    out = []
    lo, n = 0, len(est)
    while lo < n:
        base = cum[lo - 1] if lo else 0
        hi = max(int(np.searchsorted(cum, base + _BLOCK_CANDIDATES, side="right")), lo + 1)
        out.append((lo, hi))
        lo = hi
    return out


def _csr_from_groups(group: IntArray, n_groups: int) -> tuple[IntArray, IntArray]:
    """indptr and members (stable) of a grouping of range(len(group))."""
    members = np.argsort(group, kind="stable").astype(np.int64)
    indptr = np.zeros(n_groups + 1, dtype=np.int64)
    np.cumsum(np.bincount(group, minlength=n_groups), out=indptr[1:])
    return indptr, members


def _mix(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64 finalizer, vectorized (wrapping uint64 arithmetic)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def intern_lists(lists: CodeLists) -> IntArray:
    """An id per row such that rows with equal code lists (and only those) share it.

    Vectorized: rows are hashed, grouped by hash, and every row is checked code by code
    against its group's first row; on a hash collision (never seen in practice) the rows are
    interned exactly in Python instead.
    """
    n = len(lists)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    lengths = lists.lengths
    if len(lists.codes) == 0:
        return np.zeros(n, dtype=np.int64)
    owner = lists.owner
    pos = np.arange(len(lists.codes), dtype=np.int64) - lists.indptr[:-1][owner]
    with np.errstate(over="ignore"):
        el = _mix(lists.codes.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
                  + pos.astype(np.uint64))
        h = np.zeros(n, dtype=np.uint64)
        nz = np.flatnonzero(lengths)
        h[nz] = np.add.reduceat(el, lists.indptr[:-1][nz])
        h = _mix(h ^ _mix(lengths.astype(np.uint64) + np.uint64(1)))
    _, first, ids = np.unique(h, return_index=True, return_inverse=True)
    ids = ids.reshape(-1).astype(np.int64)
    rep = first[ids]
    ok = bool(np.array_equal(lengths[rep], lengths))
    if ok:
        a = lists.codes
        b = lists.codes[gather_ranges(lists.indptr[:-1][rep], lengths)]
        ok = bool(np.array_equal(a, b))
    if ok:
        return ids
    seen: dict[tuple[int, ...], int] = {}  # pragma: no cover - a 64-bit hash collision
    return np.array([seen.setdefault(t, len(seen)) for t in lists.to_rows()], dtype=np.int64)


def unique_rows(cols: list[IntArray], n: int) -> tuple[IntArray, IntArray]:
    """``np.unique(column_stack(cols), axis=0, return_index=True, return_inverse=True)``
    without its row sort: rows are hashed, grouped by hash and checked equal to their group's
    first row; only the distinct rows are then sorted, to number the groups in the same
    (lexicographic) order. Returns (first row of each group, group of each row)."""
    key = np.column_stack(cols) if n else np.zeros((0, len(cols)), dtype=np.int64)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    with np.errstate(over="ignore"):
        h = np.zeros(n, dtype=np.uint64)
        for col in cols:
            h = _mix(h * np.uint64(0x9E3779B97F4A7C15) + col.astype(np.uint64))
    _, first, ids = np.unique(h, return_index=True, return_inverse=True)
    ids = ids.reshape(-1)
    if not np.array_equal(key, key[first[ids]]):  # pragma: no cover - a 64-bit collision
        _, first, ids = np.unique(key, axis=0, return_index=True, return_inverse=True)
        return first.astype(np.int64), ids.reshape(-1).astype(np.int64)
    _, lex = np.unique(key[first], axis=0, return_inverse=True)
    lex = lex.reshape(-1).astype(np.int64)
    out_first = np.empty(len(first), dtype=np.int64)
    out_first[lex] = first
    return out_first, lex[ids]


class _JoinPlan(NamedTuple):
    """What both join implementations read: profile blocks, each profile's most selective
    constraint (`source`, its estimated candidates `est`, its rarest tag), the profiles'
    set-valued constraints and the inverted indexes of the offer classes."""

    blocks: list[tuple[int, int]]
    source: IntArray
    best_tag: IntArray
    p_models: CodeLists
    p_regions: CodeLists
    p_tags: CodeLists
    p_prov: CodeLists
    by_model: tuple[IntArray, IntArray]
    by_region: tuple[IntArray, IntArray]
    by_tag: tuple[IntArray, IntArray]
    by_prov: tuple[IntArray, IntArray]
    est: IntArray


class _MemberIndex:
    """Sorted (row, code) keys of a `CodeLists`, to test membership with a binary search."""

    def __init__(self, lists: CodeLists) -> None:
        self.lists = lists
        self.lengths = lists.lengths
        self.width = np.int64(int(lists.codes.max(initial=-1)) + 2)
        # sorted: rows ascending, codes sorted within a row
        self.keys = lists.owner * self.width + lists.codes

    def contains(self, rows: IntArray, codes: IntArray) -> BoolArray:
        """Whether ``codes[k]`` is in list ``rows[k]``."""
        if len(self.keys) == 0 or len(rows) == 0:
            return np.zeros(len(rows), dtype=bool)
        fits = codes < self.width  # larger codes are in no list (and must not alias)
        q = rows * self.width + np.where(fits, codes, 0)
        at = np.searchsorted(self.keys, q)
        at[at == len(self.keys)] = 0
        return np.asarray(fits & (self.keys[at] == q))


def _all_members(
    have: _MemberIndex, rows: IntArray, need: _MemberIndex, need_rows: IntArray
) -> BoolArray:
    """Whether list ``need_rows[k]`` of `need` is a subset of list ``rows[k]`` of `have`."""
    lists = need.lists
    counts = lists.lengths[need_rows]
    ok = np.ones(len(rows), dtype=bool)
    if not counts.any():
        return ok
    pair = np.repeat(np.arange(len(rows), dtype=np.int64), counts)
    codes = lists.codes[gather_ranges(lists.indptr[:-1][need_rows], counts)]
    present = have.contains(rows[pair], codes)
    ok[pair[~present]] = False
    return ok


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

    Structure read by mechanisms: ``offer_class`` and ``class_indptr``/``class_offers`` (the
    members of each class in rank order), ``request_profile`` and
    ``profile_indptr``/``profile_classes`` (the classes each profile may trade with, sorted).
    Every offer of an eligible class is eligible for the profile's requests up to price,
    capacity and reputation, which the mechanisms check per offer.
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
            raise InvalidTypeError("book", book, "an OrderBook or a BookSnapshot")
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

        # Requests: priority by (submitted_at, id).
        rorder = np.lexsort((req.id, req.submitted_at)).astype(np.int64)
        rrank = np.empty(len(req), dtype=np.int64)
        rrank[rorder] = np.arange(len(req), dtype=np.int64)
        self.request_order: IntArray = _readonly(rorder)
        self.request_rank: IntArray = _readonly(rrank)

        clock = _Clock()
        clock.tick(len(off) + len(req), "ranking the orders")
        self._constraints = _Constraints(snap)
        self._build_classes()
        clock.tick(len(off), "offer classes")
        self._build_profiles()
        clock.tick(len(req), "request profiles")
        self.profile_indptr, self.profile_classes = self._join(clock)

    # -- construction helpers -----------------------------------------------------------
    def _build_classes(self) -> None:
        """Offer classes: offers equal in every field some request's eligibility reads."""
        off, req = self.snapshot.offers, self.snapshot.requests
        n = len(off)
        self._provider_in_key = bool(len(req.providers.codes) or len(req.exclude_providers.codes))
        self._tenant_lists = bool(len(off.tenants.codes) or len(off.exclude_tenants.codes))
        cols: list[IntArray] = [
            off.gpu_model.astype(np.int64), off.region.astype(np.int64), off.vram_gb,
            intern_lists(off.tags),
        ]
        if self._provider_in_key:  # providers no list names are alike: one key for them all
            cols.append(np.where(self._named_offers(), off.provider.astype(np.int64), -1))
        for o_col, r_col in _RESOURCES:
            if bool(getattr(req, r_col).any()):
                cols.append(getattr(off, o_col))
        if self._tenant_lists:
            cols += [intern_lists(off.tenants), intern_lists(off.exclude_tenants)]
        cols += self._constraints.offer_key()
        first, offer_class = unique_rows(cols, n)
        n_class = len(first)
        self.offer_class: IntArray = _readonly(offer_class)
        # class members in rank order: stable sort of rank-ordered offers by class
        members = self.offer_order[np.argsort(offer_class[self.offer_order], kind="stable")]
        indptr = np.zeros(n_class + 1, dtype=np.int64)
        np.cumsum(np.bincount(offer_class, minlength=n_class), out=indptr[1:])
        self.class_indptr: IntArray = _readonly(indptr)
        self.class_offers: IntArray = _readonly(members.astype(np.int64))
        #: an offer of each class (every field eligibility reads is the same in the class)
        self.class_first: IntArray = _readonly(first)
        self.class_gpu_model: IntArray = _readonly(off.gpu_model[first].astype(np.int64))
        self.class_region: IntArray = _readonly(off.region[first].astype(np.int64))
        self.class_vram_gb: IntArray = _readonly(off.vram_gb[first].copy())
        self.class_tags: CodeLists = off.tags.take(first)
        self.class_provider: IntArray = _readonly(off.provider[first].astype(np.int64))

    def _named_offers(self) -> BoolArray:
        """Offers whose provider a request's provider list (or exclusion list) names while
        it accepts their model and region: only those need their provider in the class key.
        Other offers stay together whatever their provider, so a list on one request does
        not split the classes of books it cannot trade in (a call market stays one)."""
        off, req = self.snapshot.offers, self.snapshot.requests
        named = np.zeros(len(off), dtype=bool)
        lists = (req.providers, req.exclude_providers)
        rows = np.unique(np.concatenate([x.owner for x in lists]))
        if len(rows) == 0 or len(off) == 0:
            return named
        local = [x.take(rows) for x in lists]
        r = np.concatenate([x.owner for x in local])
        q = np.concatenate([x.codes for x in local])
        ptr, members = _csr_from_groups(off.provider.astype(np.int64), len(self.snapshot.parties))
        counts = ptr[q + 1] - ptr[q]
        rr = np.repeat(r, counts)
        oo = members[gather_ranges(ptr[q], counts)]
        rq = rows[rr]
        ok = req.any_model[rq] | _MemberIndex(req.gpu_models.take(rows)).contains(
            rr, off.gpu_model[oo].astype(np.int64))
        ok &= req.any_region[rq] | _MemberIndex(req.regions.take(rows)).contains(
            rr, off.region[oo].astype(np.int64))
        named[oo[ok]] = True
        return named

    def _build_profiles(self) -> None:
        """Request profiles: requests equal in every field eligibility reads, but price,
        size and reputation floor."""
        off, req = self.snapshot.offers, self.snapshot.requests
        n = len(req)
        cols: list[IntArray] = [
            intern_lists(req.gpu_models), intern_lists(req.regions), req.min_vram_gb,
            intern_lists(req.required_tags),
        ]
        if self._provider_in_key:
            cols += [intern_lists(req.providers), intern_lists(req.exclude_providers)]
        for r_col in ("min_cpu_per_gpu", "min_ram_gb_per_gpu", "min_disk_gb_per_gpu"):
            a = getattr(req, r_col)
            if bool(a.any()):
                cols.append(a)
        if self._tenant_lists:  # tenants no offer's list names are alike
            named = np.zeros(len(self.snapshot.parties), dtype=bool)
            named[off.tenants.codes] = True
            named[off.exclude_tenants.codes] = True
            cols.append(np.where(named[req.tenant], req.tenant.astype(np.int64), -1))
        cols += self._constraints.request_key()
        first, request_profile = unique_rows(cols, n)
        self.request_profile: IntArray = _readonly(request_profile)
        #: a request of each profile
        self.profile_first: IntArray = _readonly(first)

    def _join(self, clock: _Clock | None = None) -> tuple[IntArray, IntArray]:
        """CSR of eligible classes per profile: a sparse join from inverted indexes."""
        req = self.snapshot.requests
        n_prof, n_class = len(self.profile_first), self.n_classes
        pr = self.profile_first
        if n_prof == 0 or n_class == 0:
            return (_readonly(np.zeros(n_prof + 1, dtype=np.int64)),
                    _readonly(np.zeros(0, dtype=np.int64)))
        p_models, p_regions = req.gpu_models.take(pr), req.regions.take(pr)
        p_tags = req.required_tags.take(pr)
        p_prov = req.providers.take(pr)
        # inverted indexes: name code -> classes holding it
        n_models, n_regions = len(self.snapshot.models), len(self.snapshot.regions)
        n_tags, n_parties = len(self.snapshot.tags), len(self.snapshot.parties)
        by_model = _csr_from_groups(self.class_gpu_model, n_models)
        by_region = _csr_from_groups(self.class_region, n_regions)
        ct = self.class_tags
        by_tag_ptr, order = _csr_from_groups(ct.codes, n_tags)
        by_tag = (by_tag_ptr, ct.owner[order])
        by_prov = _csr_from_groups(self.class_provider, n_parties)
        inf = np.iinfo(np.int64).max

        def list_cost(lists: CodeLists, index: tuple[IntArray, IntArray]) -> IntArray:
            per = np.diff(index[0])[lists.codes]
            cost = np.bincount(lists.owner, weights=per, minlength=n_prof).astype(np.int64)
            cost[lists.lengths == 0] = inf
            return cost

        costs = [np.full(n_prof, n_class, dtype=np.int64),  # 0: every class
                 list_cost(p_models, by_model), list_cost(p_regions, by_region)]
        # 3: the rarest required tag
        tag_cost = np.full(n_prof, inf, dtype=np.int64)
        best_tag = np.zeros(n_prof, dtype=np.int64)
        if len(p_tags.codes):
            per = np.diff(by_tag[0])[p_tags.codes]
            o = np.lexsort((per, p_tags.owner))  # by profile, the rarest tag first
            firsts = o[p_tags.indptr[:-1][p_tags.lengths > 0]]
            rows = p_tags.owner[firsts]
            tag_cost[rows] = per[firsts]
            best_tag[rows] = p_tags.codes[firsts]
        costs.append(tag_cost)
        costs.append(list_cost(p_prov, by_prov) if self._provider_in_key
                     else np.full(n_prof, inf, dtype=np.int64))
        cost = np.column_stack(costs)
        source = np.argmin(cost, axis=1)
        est = cost[np.arange(n_prof), source]

        blocks = _profile_blocks(est)
        clock = _Clock() if clock is None else clock
        use_kernel = _USE_KERNEL
        if use_kernel is None:
            use_kernel = n_prof * self.n_classes >= _KERNEL_MIN_CELLS
        plan = _JoinPlan(blocks, source, best_tag, p_models, p_regions, p_tags, p_prov,
                         by_model, by_region, by_tag, by_prov, est)
        join = self._join_kernel if use_kernel else self._join_numpy
        out_p, out_c = join(plan, clock)
        p_all = np.concatenate(out_p) if out_p else np.zeros(0, dtype=np.int64)
        c_all = np.concatenate(out_c) if out_c else np.zeros(0, dtype=np.int64)
        indptr = np.zeros(n_prof + 1, dtype=np.int64)
        np.cumsum(np.bincount(p_all, minlength=n_prof), out=indptr[1:])
        return _readonly(indptr), _readonly(c_all)

    def _join_kernel(
        self, plan: _JoinPlan, clock: _Clock
    ) -> tuple[list[IntArray], list[IntArray]]:
        """The join with the compiled kernel (`auction.kernels.eligibility`); constraint
        expressions then filter its survivors on columns."""
        (blocks, source, best_tag, p_models, p_regions, p_tags, p_prov,
         by_model, by_region, by_tag, by_prov, est) = plan
        from auction.kernels import eligibility

        join_block: Callable[..., tuple[IntArray, IntArray, bool]] = eligibility.join_block
        off, req = self.snapshot.offers, self.snapshot.requests
        floors = [(o, r) for o, r in _RESOURCES if bool(getattr(req, r).any())]
        req_floor = np.zeros((len(floors), len(req)), dtype=np.int64)
        off_res = np.zeros((len(floors), len(off)), dtype=np.int64)
        for k, (o_col, r_col) in enumerate(floors):
            req_floor[k] = getattr(req, r_col)
            off_res[k] = getattr(off, o_col)
        fixed = [_ro(a) for a in (
            source, best_tag, self.profile_first, self.class_first,
            p_models.indptr, p_models.codes, p_regions.indptr, p_regions.codes,
            p_tags.indptr, p_tags.codes, p_prov.indptr, p_prov.codes,
            *by_model, *by_region, *by_tag, *by_prov,
            self.class_gpu_model, self.class_region, self.class_tags.indptr,
            self.class_tags.codes, req.min_vram_gb, off.vram_gb,
        )]
        req_floor_ro, off_res_ro = _ro(req_floor), _ro(off_res)
        prov = (_ro(off.provider), _ro(req.exclude_providers.indptr),
                _ro(req.exclude_providers.codes))
        ten = (_ro(req.tenant), _ro(off.tenants.indptr), _ro(off.tenants.codes),
               _ro(off.exclude_tenants.indptr), _ro(off.exclude_tenants.codes))
        out_p: list[IntArray] = []
        out_c: list[IntArray] = []
        for lo, hi in blocks:
            cap = int(est[lo:hi].sum())
            with clock.flag() as stop:
                cp, cc, stopped = join_block(
                    lo, hi, self.n_classes, *fixed, req_floor_ro, off_res_ro,
                    self._provider_in_key, *prov, self._tenant_lists, *ten, cap, stop,
                    clock.after)
            clock.tick(cap, "eligibility join", stopped=stopped)
            if self._constraints.active and len(cp):
                keep = self._constraints.holds(self.profile_first[cp], self.class_first[cc])
                cp, cc = cp[keep], cc[keep]
            out_p.append(cp)
            out_c.append(cc)
        return out_p, out_c

    def _join_numpy(
        self, plan: _JoinPlan, clock: _Clock
    ) -> tuple[list[IntArray], list[IntArray]]:
        """The join in numpy, candidates gathered then filtered per check: the reference the
        tests compare the kernel with."""
        (blocks, source, best_tag, p_models, p_regions, p_tags, p_prov,
         by_model, by_region, by_tag, by_prov, est) = plan
        n_class = self.n_classes
        off, req = self.snapshot.offers, self.snapshot.requests
        ix = {"models": _MemberIndex(p_models), "regions": _MemberIndex(p_regions),
              "tags": _MemberIndex(p_tags), "class_tags": _MemberIndex(self.class_tags),
              "providers": _MemberIndex(p_prov),
              "exclude_providers": _MemberIndex(req.exclude_providers),
              "tenants": _MemberIndex(off.tenants),
              "exclude_tenants": _MemberIndex(off.exclude_tenants)}
        out_p: list[IntArray] = []
        out_c: list[IntArray] = []
        for lo, hi in blocks:
            ps = np.arange(lo, hi, dtype=np.int64)
            cand_p: list[IntArray] = []
            cand_c: list[IntArray] = []
            src = source[lo:hi]
            every = ps[src == 0]
            if len(every):
                cand_p.append(np.repeat(every, n_class))
                cand_c.append(np.tile(np.arange(n_class, dtype=np.int64), len(every)))
            for k, lists, index in ((1, p_models, by_model), (2, p_regions, by_region),
                                    (4, p_prov, by_prov)):
                chosen = ps[src == k]
                if len(chosen) == 0:
                    continue
                counts = lists.lengths[chosen]
                el_p = np.repeat(chosen, counts)
                el = lists.codes[gather_ranges(lists.indptr[:-1][chosen], counts)]
                self._expand(el_p, el, index, cand_p, cand_c)
            chosen = ps[src == 3]
            if len(chosen):
                self._expand(chosen, best_tag[chosen], by_tag, cand_p, cand_c)
            if cand_p:
                cp, cc = np.concatenate(cand_p), np.concatenate(cand_c)
                keep = self._eligible(cp, cc, ix)
                cp, cc = cp[keep], cc[keep]
                o = np.argsort(cp * n_class + cc, kind="stable")
                out_p.append(cp[o])
                out_c.append(cc[o])
            clock.tick(int(est[lo:hi].sum()), "eligibility join")
        return out_p, out_c

    @staticmethod
    def _expand(
        owner: IntArray, codes: IntArray, index: tuple[IntArray, IntArray],
        cand_p: list[IntArray], cand_c: list[IntArray],
    ) -> None:
        ptr, members = index
        counts = ptr[codes + 1] - ptr[codes]
        cand_p.append(np.repeat(owner, counts))
        cand_c.append(members[gather_ranges(ptr[codes], counts)])

    def _eligible(
        self, p: IntArray, c: IntArray, ix: dict[str, _MemberIndex],
    ) -> BoolArray:
        """Exact class-level eligibility of candidate (profile, class) pairs. Checks run
        cheapest first, each on the candidates still standing."""
        off, req = self.snapshot.offers, self.snapshot.requests
        ok = np.zeros(len(p), dtype=bool)
        at = np.arange(len(p), dtype=np.int64)
        r = self.profile_first[p]
        o = self.class_first[c]

        def keep(mask: BoolArray) -> None:
            nonlocal at, p, c, r, o
            if not mask.all():
                at, p, c, r, o = at[mask], p[mask], c[mask], r[mask], o[mask]

        keep(req.min_vram_gb[r] <= off.vram_gb[o])
        for o_col, r_col in _RESOURCES:
            floor = getattr(req, r_col)
            if floor.any():
                keep(getattr(off, o_col)[o] >= floor[r])
        for name, flag, col in (("models", req.any_model, self.class_gpu_model),
                                ("regions", req.any_region, self.class_region)):
            need = ~flag[r]
            if need.any():
                sub = np.flatnonzero(need)
                mask = np.ones(len(p), dtype=bool)
                mask[sub] = ix[name].contains(p[sub], col[c[sub]])
                keep(mask)
        keep(_all_members(ix["class_tags"], c, ix["tags"], p))
        if self._provider_in_key:
            prov = off.provider[o].astype(np.int64)
            keep((ix["providers"].lengths[p] == 0) | ix["providers"].contains(p, prov))
            prov = off.provider[o].astype(np.int64)
            keep(~ix["exclude_providers"].contains(r, prov))
        if self._tenant_lists:
            tenant = req.tenant[r].astype(np.int64)
            keep((ix["tenants"].lengths[o] == 0) | ix["tenants"].contains(o, tenant))
            tenant = req.tenant[r].astype(np.int64)
            keep(~ix["exclude_tenants"].contains(o, tenant))
        if self._constraints.active and len(at):
            keep(self._constraints.holds(r, o))
        ok[at] = True
        return ok

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
            int(v.nbytes) for k, v in vars(self).items()
            if isinstance(v, np.ndarray | CodeLists) and not k.startswith("_")
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

    def _price_members(self) -> tuple[IntArray, IntArray, IntArray, np.int64]:
        """Class members sorted by (class, price), and sorted keys to count, per class, the
        members priced at or below a limit with one binary search: (members, keys, distinct
        prices, key width)."""
        cached = self.__dict__.get("_price_index")
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        price = self.snapshot.offers.price
        members = self.class_offers
        if self.scoring:  # rank order is not price order: put members in price order
            members = members[np.lexsort((price[members], self.offer_class[members]))]
        uprices, dense = np.unique(price, return_inverse=True)
        width = np.int64(len(uprices) + 1)
        keys = self.offer_class[members] * width + dense.reshape(-1)[members]
        out = (members, keys, uprices, width)
        self.__dict__["_price_index"] = out
        return out

    def _blocks(self) -> Iterator[tuple[IntArray, IntArray]]:
        """Eligible (request row, offer row) pairs in request row order (within a request,
        by class, then by price), in bounded blocks."""
        req = self.snapshot.requests
        if self.n_profiles == 0 or self.n_classes == 0:
            return
        members, keys, uprices, width = self._price_members()
        n_cls = np.diff(self.profile_indptr)[self.request_profile]
        cum_cls = np.cumsum(n_cls)
        step = max(1, _BLOCK_PAIRS // 4)
        n_req = self.n_requests
        lo = 0
        while lo < n_req:
            base = cum_cls[lo - 1] if lo else 0
            hi = int(np.searchsorted(cum_cls, base + step, side="right"))
            hi = max(hi, lo + 1)
            rs = np.arange(lo, hi, dtype=np.int64)
            counts = n_cls[lo:hi]
            rc_r = np.repeat(rs, counts)
            rc_c = self.profile_classes[
                gather_ranges(self.profile_indptr[:-1][self.request_profile[rs]], counts)
            ]
            q = rc_c * width + np.searchsorted(uprices, req.max_price[rc_r], side="right")
            start = self.class_indptr[:-1][rc_c]
            k = np.searchsorted(keys, q, side="left") - start
            yield from self._expand_pairs(rc_r, start, k, members)
            lo = hi

    def _expand_pairs(
        self, rows: IntArray, start: IntArray, k: IntArray, members: IntArray
    ) -> Iterator[tuple[IntArray, IntArray]]:
        req, off = self.snapshot.requests, self.snapshot.offers
        cum = np.cumsum(k)
        a = 0
        while a < len(rows):
            base = cum[a - 1] if a else 0
            b = int(np.searchsorted(cum, base + _BLOCK_PAIRS, side="right"))
            b = max(b, a + 1)
            ks = k[a:b]
            if int(ks.sum()):
                r = np.repeat(rows[a:b], ks)
                cols = members[gather_ranges(start[a:b], ks)]
                keep = self.offer_reputation[cols] >= req.min_reputation[r]
                whole = off.gpus[cols] >= req.gpus[r]
                keep &= req.divisible[r] | req.cluster[r] | whole
                yield r[keep], cols[keep]
            a = b

    def pair_count(self) -> int:
        """Number of eligible (request, offer) pairs, counted without keeping them (in a
        compiled kernel, `auction.kernels.eligibility.count_pairs`)."""
        from auction.kernels.eligibility import count_pairs

        if self.n_profiles == 0 or self.n_classes == 0:
            return 0
        req, off = self.snapshot.requests, self.snapshot.offers
        members = self._price_members()[0]
        clock = _Clock()
        with clock.flag() as stop:
            n = int(count_pairs(
                self.request_profile, self.profile_indptr, self.profile_classes,
                self.class_indptr, _ro(members), _ro(off.price), _ro(off.gpus),
                self.offer_reputation, _ro(req.max_price), _ro(req.gpus),
                np.asarray(req.divisible | req.cluster),
                np.asarray(req.min_reputation, dtype=np.float64), stop, clock.after))
        clock.tick(0, "counting the eligible pairs", stopped=n < 0)
        return n

    def pairs(self) -> Pairs:
        """Materialize every eligible pair as CSR over requests (cached after the first call).

        Memory grows with the pair count: requests that accept any offer pair with all of them.
        Mechanisms that can work on offer classes should, and only call this when they must.
        """
        cached: Pairs | None = self.__dict__.get("_pairs")
        if cached is not None:
            return cached
        width = np.int64(max(1, self.n_offers))
        keys_l = []
        clock = _Clock()
        for r, c in self._blocks():
            keys_l.append(r * width + self.offer_rank[c])
            clock.tick(len(r) + 1, "eligible pairs")
        key = np.concatenate(keys_l) if keys_l else np.zeros(0, dtype=np.int64)
        del keys_l
        rows = key // width
        # rows come in order: sort each request's offers into rank order, in chunks of whole
        # requests (the same as one sort, and the clock is checked between chunks)
        lo, n = 0, len(key)
        while lo < n:
            hi = min(n, lo + _BLOCK_PAIRS)
            if hi < n:
                hi = int(np.searchsorted(rows, rows[hi - 1], side="right"))
            key[lo:hi].sort(kind="stable")  # keys are distinct: the same order as quicksort,
            # and 2.5-3x faster here, since a request's pairs come as runs sorted by rank
            clock.tick(hi - lo, "eligible pairs")
            lo = hi
        cols = self.offer_order[key % width]
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


def _expression_ids(texts: npt.NDArray[np.object_]) -> tuple[IntArray, list[Expression]]:
    """Per row, the index of its expression (-1: none) and the expressions, each distinct text
    parsed (compiled) once."""
    ids = np.full(len(texts), -1, dtype=np.int64)
    exprs: list[Expression] = []
    seen: dict[str, int] = {}
    rows = np.flatnonzero(texts != None).tolist()  # noqa: E711 (elementwise, a C loop)
    for i in rows:
        t = texts[i]
        k = seen.get(t)
        if k is None:
            k = seen[t] = len(exprs)
            exprs.append(parse(t))
        ids[i] = k
    return ids, exprs


def _attribute_ids(values: npt.NDArray[np.object_]) -> IntArray:
    """Per row, an id shared by rows with equal attributes (0: none)."""
    ids = np.zeros(len(values), dtype=np.int64)
    seen: dict[Attributes, int] = {}
    for i, a in enumerate(values.tolist()):
        if a:
            key = a if isinstance(a, Attributes) else Attributes(a)
            ids[i] = seen.setdefault(key, len(seen) + 1)
    return ids


class _Constraints:
    """Two-sided constraint expressions of a market (`auction.constraints`).

    A request's expression reads offer fields, an offer's reads request fields. Each distinct
    text is compiled once; the fields some expression reads join the class (offers) or
    profile (requests) key, so evaluating on one offer of a class and one request of a
    profile decides for all, and evaluation runs on the candidate (profile, class) pairs of
    the sparse join, grouped by expression, on columns.
    """

    def __init__(self, snap: BookSnapshot) -> None:
        self.snap = snap
        off, req = snap.offers, snap.requests
        self.offer_expr, self.offer_exprs = _expression_ids(off.constraints)
        self.request_expr, self.request_exprs = _expression_ids(req.constraints)
        self.active = bool(self.offer_exprs or self.request_exprs)
        #: fields of offers read by request expressions, and of requests by offer expressions
        self.offer_names: frozenset[str] = frozenset().union(
            *(e.names for e in self.request_exprs))
        self.request_names: frozenset[str] = frozenset().union(
            *(e.names for e in self.offer_exprs))
        self._tables: dict[str, AttributeTable] = {}

    def offer_key(self) -> list[IntArray]:
        """Columns the offer class key needs beside model, region, VRAM and tags."""
        off = self.snap.offers
        cols: list[IntArray] = []
        if self.offer_exprs:
            cols.append(self.offer_expr)
        names = self.offer_names
        if names - set(OFFER_BUILTINS):
            cols.append(_attribute_ids(off.attributes))
        for f in ("provider", "gpus", "price", "submitted_at", "cpu_per_gpu", "ram_gb_per_gpu",
                  "disk_gb_per_gpu"):
            if f in names:
                cols.append(getattr(off, f).astype(np.int64))
        if "id" in names:
            cols.append(np.arange(len(off), dtype=np.int64))
        return cols

    def request_key(self) -> list[IntArray]:
        """Columns the request profile key needs beside the request's own constraints."""
        req = self.snap.requests
        cols: list[IntArray] = []
        if self.request_exprs:
            cols.append(self.request_expr)
        names = self.request_names
        if names - set(REQUEST_BUILTINS):
            cols.append(_attribute_ids(req.attributes))
        for f in ("tenant", "gpus", "max_price", "duration_hours", "divisible", "cluster",
                  "submitted_at", "min_cpu_per_gpu", "min_ram_gb_per_gpu",
                  "min_disk_gb_per_gpu"):
            if f in names:
                cols.append(getattr(req, f).astype(np.int64))
        if "id" in names:
            cols.append(np.arange(len(req), dtype=np.int64))
        return cols

    def _table(self, side: str) -> AttributeTable:
        """One side's attributes plus the built-in fields the other side's expressions read."""
        table = self._tables.get(side)
        if table is not None:
            return table
        snap = self.snap
        cols: Any = snap.offers if side == "offers" else snap.requests
        names = self.offer_names if side == "offers" else self.request_names
        builtins = OFFER_BUILTINS if side == "offers" else REQUEST_BUILTINS
        n = len(cols)
        held = {i: a for i, a in enumerate(cols.attributes.tolist()) if a}
        table = AttributeTable.from_records(held, n=n)
        vocab = {"provider": snap.parties, "tenant": snap.parties, "gpu_model": snap.models,
                 "region": snap.regions, "tags": snap.tags, "required_tags": snap.tags,
                 "gpu_models": snap.models, "regions": snap.regions}
        extra: dict[str, Any] = {}
        for f in sorted(names & set(builtins)):
            if f == "id":
                extra[f] = Column.from_strings(cols.id.tolist())
            elif f in ("provider", "tenant", "gpu_model", "region"):
                extra[f] = Column.from_codes(getattr(cols, f).astype(np.int64), vocab[f])
            elif f in ("tags", "required_tags", "gpu_models", "regions"):
                lists: CodeLists = getattr(cols, f)
                extra[f] = Column.from_set_codes(lists.indptr, lists.codes, vocab[f])
            elif f in ("divisible", "cluster"):
                extra[f] = Column.from_bools(np.asarray(getattr(cols, f), dtype=bool))
            else:
                extra[f] = Column.from_ints(np.asarray(getattr(cols, f), dtype=np.int64))
        if extra:
            table = table.with_columns(extra)
        self._tables[side] = table
        return table

    def holds(self, r: IntArray, o: IntArray) -> BoolArray:
        """Whether both sides' constraints hold on the pairs (request r[k], offer o[k])."""
        ok = np.ones(len(r), dtype=bool)
        for expr_of, exprs, mine, other, side in (
            (self.request_expr, self.request_exprs, r, o, "offers"),
            (self.offer_expr, self.offer_exprs, o, r, "requests"),
        ):
            if not exprs:
                continue
            e = expr_of[mine]
            at = np.flatnonzero(e >= 0)
            if len(at) == 0:
                continue
            order = at[np.argsort(e[at], kind="stable")]
            keys = e[order]
            cuts = np.flatnonzero(np.diff(keys)) + 1
            table = self._table(side)
            for grp in np.split(order, cuts):
                ok[grp] &= exprs[int(e[grp[0]])].evaluate(table, other[grp])
        return ok


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
