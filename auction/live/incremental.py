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
result (`IncrementalClearer._short`): a changed offer must have no GPU left when the first
request cut from its prefix comes (capacity only shrinks, so that request and every later one
find nothing there),
and a changed request must be filled whole by offers ranked before the first offer cut from
its prefix (and, for ``second-price``, be paid less than that offer's ask, so its runner-up
ranks before it too). A prefix that fails grows fourfold and the sub-market is cleared again;
after `_MAX_ROUNDS` the clear is from scratch.

The open orders are kept as numpy columns in the two orders the prefixes read (`_Index`):
requests by priority (submitted_at, id), offers by rank (ask, submitted_at, id), each with its
group in the pools, price, size and reputation. Changes are queued and applied once per
clear. The prefixes of all changed orders of one side are then found in one compiled pass
over the other side's columns (`auction.kernels.matches.first_matches`).

The sub-market is cleared straight from those columns by the sealed-bid kernel
(`IncrementalClearer._direct`: rows are index positions, already in the market's orders; the
pools' groups are its classes and profiles), unless it holds an order whose eligibility reads
more than its group (`_SPECIAL`: provider or tenant lists, resource floors, constraints,
clusters); then it is sliced from the book and cleared as a `Market` (`_via_market`). The
result is assembled over the whole book without a snapshot of it (`_assemble`): the
allocation in canonical order, rows looked up in the book's index, and the unmatched requests
read from the request columns. The work per epoch is the changed orders and the
prefixes they read, plus a few O(open orders) numpy and compiled passes (applying the
queued changes, the prefix scans, the unmatched list).

The clear is from scratch for other mechanisms (batch mechanisms with global prices, solvers
whose tie-breaks read the whole instance, plugins), for markets with quality bonuses, for the
first clear (nothing is settled yet) and when more than `_WHOLE_SHARE` of the open orders
changed. `tests/test_live_incremental.py` checks identity with a from-scratch clear by
hypothesis.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from auction.book import OrderBook
from auction.clearing import clear as clear_from_scratch
from auction.kernels.matches import (
    contention,
    first_matches,
    group_lists,
    key_ranges,
    leftovers,
    splice,
    take_rows,
)
from auction.kernels.sealed_bid import sealed_bid, sealed_bid_reference
from auction.live.pools import Pools
from auction.market import Market, gather_ranges
from auction.mechanisms.base import Mechanism
from auction.mechanisms.sealed_bid import SealedBidAuction
from auction.orders import Offer, Order, Request
from auction.result import ClearingResult, Status, _row_payment, exact_dot

__all__ = ["DECOMPOSABLE", "IncrementalClearer", "decomposable"]

#: Registry names of the mechanisms the re-clear is exact for.
DECOMPOSABLE = frozenset({"first-price", "second-price"})

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
StrArray = npt.NDArray[np.str_]
#: An allocation over index positions: (request positions, offer positions, gpus, unit
#: price) per row, in canonical order.
Allocation = tuple[IntArray, IntArray, IntArray, IntArray]
#: An order's row in an `_Index`: its payload (`_PAYLOAD`).
Payload = tuple[int, int, int, float, int, int, int, int]
#: When more than this share of the open orders changed since the last clear, clear from
#: scratch (the sub-market would be most of the book).
_WHOLE_SHARE = 0.25
#: Sub-clears before giving up on the prefixes and clearing from scratch.
_MAX_ROUNDS = 6
#: Scale of the first prefixes (tests shrink it to 0 to force prefixes to grow).
_FIRST = 1.0
#: A changed offer's first prefix: this many requests per GPU, plus one.
_OFFER_PREFIX = 1
#: Size the first prefixes by a rough play of them (tests turn it off to force growth).
_ESTIMATE = True
#: Per row: the order's group in the pools; value, size, floor and amount (what the prefix
#: kernels compare); its party's code (tenant or provider); `_DIVISIBLE` | `_SPECIAL`; the
#: request's duration_hours (0 for offers).
_PAYLOAD = (("group", np.int64), ("value", np.int64), ("size", np.int64),
            ("floor", np.float64), ("amount", np.int64), ("party", np.int64),
            ("flags", np.int64), ("hours", np.int64))
#: Payload kept per id slot (`_Index.extra`), not per sorted row: only sub-markets read it, so
#: a flush need not move it.
_BY_SLOT = frozenset({"party", "flags", "hours"})
#: flags: a divisible request
_DIVISIBLE = 1
#: flags: an order whose eligibility reads more than its group (provider or tenant lists,
#: resource floors, constraints, clusters): a sub-market holding one is built as a `Market`
_SPECIAL = 2


def decomposable(mechanism: Mechanism) -> bool:
    """True when `mechanism` may be re-cleared incrementally (see the module docstring)."""
    return isinstance(mechanism, SealedBidAuction) and mechanism.name in DECOMPOSABLE


def _first(want: int) -> int:
    return max(1, round(_FIRST * want))


def _least(r: Request) -> int:
    """GPUs an offer must have free to serve `r` at all (a superset of the market's rule)."""
    return 1 if r.divisible or r.cluster else r.gpus


class _Fallback(Exception):
    """The re-clear cannot vouch for its result: the caller clears from scratch."""


class _Index:
    """The open orders of one side sorted by (`key` integers..., id), as numpy columns: the
    keys, the ids and a payload per row (`_PAYLOAD`: the order's group in the pools, the
    value, size, floor and amount the prefix kernels compare, and what a sub-clear reads).

    Changes are queued (`added`, `removed`, `updated`) and applied in one batch (`flush`):
    O(changes x log n) searches plus one compiled O(n) pass per column (`splice`: the deletes
    and inserts together), no Python work per open
    order.
    """

    def __init__(self, key: Callable[[Order], tuple[int, ...]], python: bool = False) -> None:
        self.key = key
        self.keys: list[IntArray] = [np.zeros(0, dtype=np.int64)
                                     for _ in range(len(key(_PROBE)))]
        # ids do not move with the sorted rows: each row holds the slot of its id in `table`
        self.slot: IntArray = np.zeros(0, dtype=np.int64)
        self.table: StrArray = np.zeros(16, dtype="<U1")
        self._free: list[int] = []  # slots of ids dropped
        self._used = 0  # slots ever handed out
        self.cols: dict[str, Any] = {k: np.zeros(0, dtype=t) for k, t in _PAYLOAD
                                     if k not in _BY_SLOT}
        self.extra: dict[str, Any] = {k: np.zeros(len(self.table), dtype=t)
                                      for k, t in _PAYLOAD if k in _BY_SLOT}
        self._add: dict[str, Order] = {}  # id -> order, its row made at `flush`
        self._drop: dict[str, tuple[int, ...]] = {}  # id -> key integers of its indexed row
        self._set: dict[str, Order] = {}  # id -> order whose payload (not key) changed
        self.lengths: Counter[int] = Counter()  # id lengths of the open orders
        self.python = python  # search with `key_ranges`'s reference, not the kernel

    def __len__(self) -> int:
        return len(self.slot)

    @property
    def ids(self) -> StrArray:
        """The ids in index order."""
        return self.id_at(np.arange(len(self.slot)))

    def id_at(self, positions: IntArray) -> StrArray:
        """The ids of the rows at `positions`."""
        out: StrArray = self.table[self.slot[positions]]
        return out

    def added(self, order: Order) -> None:
        self.lengths[len(order.id)] += 1
        self._add[order.id] = order

    def removed(self, order: Order) -> None:
        n = len(order.id)
        self.lengths[n] -= 1
        if not self.lengths[n]:
            del self.lengths[n]
        self._set.pop(order.id, None)
        if self._add.pop(order.id, None) is None:
            self._drop[order.id] = self.key(order)

    def updated(self, order: Order) -> None:
        """`order` replaces the order of its id, with the same key (its GPUs changed)."""
        if order.id in self._add:
            self._add[order.id] = order
        else:
            self._set[order.id] = order

    def width(self) -> str:
        """The dtype of the book's id column of this side (as wide as its longest id)."""
        return f"<U{max(self.lengths, default=1) or 1}"

    def positions(self, keys: Sequence[IntArray], ids: StrArray, *, insert: bool = False
                  ) -> IntArray:
        """Where the rows (keys..., ids) are (or, `insert`, go) in the index."""
        mine = self.keys
        lo = np.searchsorted(mine[0], keys[0], side="left").astype(np.int64)
        hi = np.searchsorted(mine[0], keys[0], side="right").astype(np.int64)
        tied = np.flatnonzero((hi - lo) != (0 if insert else 1))
        if len(mine) > 1 and len(tied):  # ties on the first key (offers' asks): narrowed by
            ranges = key_ranges.py_func if self.python else key_ranges  # the second at once
            lo[tied], hi[tied] = ranges(mine[1], keys[1][tied], lo[tied], hi[tied])
            tied = tied[(hi[tied] - lo[tied]) != (0 if insert else 1)]
        pos = lo.copy()
        for i in tied.tolist():
            a, b = int(lo[i]), int(hi[i])
            for col, want in zip(mine[2:], keys[2:], strict=True):
                part = col[a:b]
                a, b = (a + int(np.searchsorted(part, want[i], side="left")),
                        a + int(np.searchsorted(part, want[i], side="right")))
            pos[i] = a + int(np.searchsorted(self.id_at(np.arange(a, b)), ids[i]))
        if not insert and len(pos) and (
                int(pos.max()) >= len(self.slot) or not bool((self.id_at(pos) == ids).all())
                or not all(bool((c[pos] == k).all()) for c, k in zip(mine, keys, strict=True))):
            raise _Fallback  # the index lost track of the book: clear from scratch
        return pos

    def _keys_of(self, keys: Iterable[tuple[int, ...]], n: int) -> list[IntArray]:
        rows = list(keys)
        return [np.fromiter((k[c] for k in rows), np.int64, n) for c in range(len(self.keys))]

    def locate(self, orders: Sequence[Order]) -> IntArray:
        """The positions of these (indexed) orders."""
        ids = np.array([o.id for o in orders], dtype=str) if orders else self.table[:0]
        return self.positions(self._keys_of(map(self.key, orders), len(orders)), ids)

    def flush(self, group: Callable[[Order], int],
              payload: Callable[[Order, int], Payload],
              splice: Callable[..., Any] = splice) -> None:
        """Apply the queued changes; `group` and `payload` give an order's columns (`splice`:
        the kernel or its reference). Deletes and inserts go in one pass per column."""
        gone = none = np.zeros(0, dtype=np.int64)
        if self._drop:
            drop_ids = np.array(list(self._drop), dtype=str)
            gone = np.sort(self.positions(self._keys_of(self._drop.values(), len(drop_ids)),
                                          drop_ids))
            self._drop = {}
            self._free += self.slot[gone].tolist()
        if self._add or len(gone):
            added = list(self._add.values())
            self._add = {}
            k = len(added)
            ids = np.array([o.id for o in added], dtype=str) if k else self.table[:0]
            keys = self._keys_of(map(self.key, added), k)
            order = np.lexsort((ids, *keys[::-1]))
            ids, keys = ids[order], [c[order] for c in keys]
            rows = [payload(added[i], group(added[i])) for i in order.tolist()]
            per_col = zip(*rows, strict=True) if k else [()] * len(_PAYLOAD)
            cols = {name: np.array(c, dtype=t)
                    for (name, t), c in zip(_PAYLOAD, per_col, strict=True)}
            # insert positions among the rows kept: found among all rows, less the gone
            # rows before them (a gone row equal to an added one is not before it)
            at = self.positions(keys, ids, insert=True) if k else none
            at = at - np.searchsorted(gone, at)
            self.keys = [splice(c, gone, at, a) for c, a in zip(self.keys, keys, strict=True)]
            slots = self._store(ids)
            self.slot = splice(self.slot, gone, at, slots)
            self.cols = {name: splice(c, gone, at, cols[name]) for name, c in self.cols.items()}
            for name, c in self.extra.items():
                c[slots] = cols[name]
        if self._set:  # new payloads in place (the group stays)
            orders = list(self._set.values())
            self._set = {}
            pos = self.locate(orders)
            rows = [payload(o, 0) for o in orders]
            for c, (name, _) in enumerate(_PAYLOAD):
                if name in self.extra:
                    self.extra[name][self.slot[pos]] = [r[c] for r in rows]
                elif name != "group":
                    self.cols[name][pos] = [r[c] for r in rows]

    def at(self, name: str, positions: IntArray) -> Any:
        """Payload column `name` (kept per row or per slot) at `positions`."""
        if name in self.extra:
            return self.extra[name][self.slot[positions]]
        return self.cols[name][positions]

    def _store(self, ids: StrArray) -> IntArray:
        """Put new ids in free slots of `table` (grown as needed); their slots."""
        k = len(ids)
        reuse = self._free[-k:] if k else []
        del self._free[len(self._free) - len(reuse):]
        slots = np.array(reuse + list(range(self._used, self._used + k - len(reuse))),
                         dtype=np.int64)
        self._used += k - len(reuse)
        table = self.table
        if ids.dtype.itemsize > table.dtype.itemsize:  # a longer id than any so far
            table = table.astype(ids.dtype)
        if self._used > len(table):
            grow = max(self._used, 2 * len(table)) - len(table)
            table = np.concatenate((table, np.zeros(grow, dtype=table.dtype)))
            self.extra = {name: np.concatenate((c, np.zeros(grow, dtype=c.dtype)))
                          for name, c in self.extra.items()}
        table[slots] = ids
        self.table = table
        return slots

    def unmatched(self, served: IntArray, take: Callable[..., Any] = take_rows) -> StrArray:
        """The ids but those at positions `served`, in index order, at the book's width
        (`take`: the `take_rows` kernel or its reference)."""
        keep = np.ones(len(self.slot), dtype=bool)
        keep[served] = False
        slots = self.slot[keep]
        w = self.table.dtype.itemsize // 4
        rows = take(self.table.view(np.uint32).reshape(len(self.table), w), slots)
        out: StrArray = _frozen(rows.reshape(-1).view(self.table.dtype).astype(
            self.width(), copy=False))
        return out


def _request_key(r: Order) -> tuple[int, ...]:
    return (r.submitted_at,)


def _offer_key(o: Order) -> tuple[int, ...]:
    assert isinstance(o, Offer)
    return (o.price, o.submitted_at)


_PROBE = Offer(id="probe", provider="p", gpu_model="m", gpus=1, price=1, region="r",
               vram_gb=1)


class _Kernels:
    """The prefix kernels, compiled or (a mechanism with ``backend="python"``) their
    pure-Python references."""

    def __init__(self, python: bool) -> None:
        self.python = python
        self.first_matches: Any = first_matches.py_func if python else first_matches
        self.group_lists: Any = group_lists.py_func if python else group_lists
        self.contention: Any = contention.py_func if python else contention
        self.leftovers: Any = leftovers.py_func if python else leftovers
        self.take_rows: Any = take_rows.py_func if python else take_rows
        self.splice: Any = splice.py_func if python else splice


class _Seekers:
    """The changed orders of one side and their prefixes: the first counterparts each may
    trade with, in the order of the other side's `_Index` (`counter`), found for all of them
    in one `first_matches` pass.

    Per seeker: ``want`` (the prefix's target length), the positions taken so far, whether
    its matches ran out (``done``), and ``cut``, the first match left out of the sub-market
    (-1 when none is).
    """

    def __init__(self, orders: Sequence[Order], positions: IntArray, counter: _Index,
                 need: IntArray, cap: IntArray, cap_floor: FloatArray,
                 groups: tuple[IntArray, IntArray], n_groups: int, descending: bool,
                 kernels: _Kernels) -> None:
        self.orders, self.positions, self.counter = orders, positions, counter
        self.kernels = kernels
        self.need, self.cap, self.cap_floor = need, cap, cap_floor
        self.descending = descending
        k = len(orders)
        self.n_groups = n_groups
        self.sptr, self.sgroups = groups  # seeker i's groups: sgroups[sptr[i]:sptr[i + 1]]
        # each group's seekers by need ascending (a scan stops at the first it misses)
        self.gptr, self.gseek = kernels.group_lists(n_groups, self.sptr, self.sgroups,
                                            np.argsort(need, kind="stable"))
        self.want = np.zeros(k, dtype=np.int64)
        self.taken: list[IntArray] = []
        self.last = np.full(k, -1, dtype=np.int64)
        self.next = np.full(k, -1, dtype=np.int64)
        self.some = np.zeros(k, dtype=bool)  # took at least one
        self.done = np.zeros(k, dtype=bool)
        self.cut = np.full(k, -1, dtype=np.int64)

    def contention(self, weight: IntArray) -> IntArray:
        """Per seeker, the most `weight` the seekers before it (in counterpart order) put on
        one of its groups."""
        out: IntArray = self.kernels.contention(self.n_groups, self.sptr, self.sgroups,
                                                np.argsort(self.positions, kind="stable"),
                                                weight)
        return out

    def _find(self, want: IntArray, start: IntArray, present: npt.NDArray[np.bool_]
              ) -> tuple[IntArray, IntArray, IntArray]:
        c = self.counter.cols
        out, count = self.kernels.first_matches(
            c["value"], c["size"], c["floor"], c["group"], present, self.gptr, self.gseek,
            self.need, self.cap, self.cap_floor, want, start, self.descending)
        ends = np.cumsum(want) - 1  # where each seeker's slots end in `out`
        return out, count, ends

    def take(self, more: IntArray, start: IntArray, present: npt.NDArray[np.bool_]
             ) -> tuple[IntArray, IntArray, IntArray]:
        """Take up to `more` further matches per seeker, from `start` on, and note the match
        after them (`next`, -1 when there is none: the seeker is `done`). Returns the
        kernel's (out, count) and the slots it had per seeker."""
        asked = more > 0
        slots = np.where(asked, more + 1, 0)
        out, count, ends = self._find(slots, start, present)
        first = ends - slots + 1  # each seeker's first slot in `out`
        got = np.minimum(count, more)
        rel = np.arange(len(out)) - np.repeat(first, slots)
        self.taken.append(out[rel < np.repeat(got, slots)])
        some = got > 0
        self.last[some] = out[first[some] + got[some] - 1]
        self.some |= some
        more_left = asked & (count > more)
        self.next[asked] = -1
        self.next[more_left] = out[first[more_left] + more[more_left]]
        self.done |= asked & ~more_left
        return out, got, slots

    def estimate(self, out: IntArray, got: IntArray, slots: IntArray,
                 present: npt.NDArray[np.bool_]) -> None:
        """Offers: lengthen the prefixes that a rough play of the first ones (cheaper offers
        take the requests first, `leftovers`) leaves with capacity, before the first clear:
        by their length plus three requests per GPU left."""
        c = self.counter.cols
        left = self.kernels.leftovers(out, got, slots, np.argsort(self.positions), self.cap,
                                      c["amount"], c["size"])
        more = np.where((left > 0) & ~self.done, self.want + 3 * left, 0)
        if more.any():
            self.take(more, np.maximum(self.next, 0), present)
            self.want += more

    def sub_counterparts(self) -> IntArray:
        return np.concatenate(self.taken) if self.taken else np.zeros(0, dtype=np.int64)

    def find_cuts(self, present: npt.NDArray[np.bool_]) -> None:
        """The first match after the prefix that the sub-market lacks, per seeker: the
        noted next match, or (when the sub-market holds it) the first one after it that it
        lacks."""
        nxt = self.next
        cut = np.where(self.done, -1, nxt)
        hidden = ~self.done & (nxt >= 0)
        hidden[hidden] = present[nxt[hidden]]
        if hidden.any():
            want = hidden.astype(np.int64)
            out, count, ends = self._find(want, nxt + 1, present)
            cut[hidden] = np.where(count[hidden] > 0, out[ends[hidden]], -1)
        self.cut = cut

    def grow(self, short: list[int], present: npt.NDArray[np.bool_]) -> None:
        """Take three times its prefix more for each seeker in `short`, from its cut."""
        more = np.zeros(len(self.orders), dtype=np.int64)
        more[short] = 3 * self.want[short]
        self.take(more, np.maximum(self.cut, 0), present)
        self.want[short] *= 4


def _peers(pools: Pools, index: _Index, positions: IntArray) -> tuple[IntArray, IntArray]:
    """The groups on the other side that the groups of the orders at `positions` accept, as
    CSR (indptr, groups)."""
    groups = pools.groups
    own, which = np.unique(index.cols["group"][positions], return_inverse=True)
    peers = [groups[g].peer_indexes() for g in own.tolist()]  # once per group
    lens = np.array([len(p) for p in peers], dtype=np.int64)
    starts = np.cumsum(lens) - lens
    which = which.reshape(-1)
    counts = lens[which]
    indptr = np.zeros(len(positions) + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    flat = np.concatenate(peers) if peers else np.zeros(0, dtype=np.int64)
    return indptr, flat[gather_ranges(starts[which], counts)].astype(np.int64)


def _frozen(a: np.ndarray) -> Any:
    a.flags.writeable = False
    return a


class IncrementalClearer:
    """Clears a live book epoch after epoch, reading only what changed since the last clear.

    The engine reports every change of its book (`opened`, `closed`, `resized`); `clear`
    returns the result a from-scratch clear of the book gives (see the module docstring).

    Args:
        mechanism: the mechanism; when not `decomposable`, every clear is from scratch.
        reputation: provider scores for the market.

    Attributes:
        last_stats: ``{"incremental", "changed", "recleared", "rounds", "direct",
            "seconds"}`` of the last clear: whether it was incremental, how many open orders
            had changed, how many orders the sub-market held, how many sub-clears it took,
            and whether the last went straight to the kernel (`_direct`) or through a
            `Market`.
    """

    def __init__(self, mechanism: Mechanism, reputation: Mapping[str, float] | None) -> None:
        self.mechanism = mechanism
        self.reputation = dict(reputation or {})
        self.incremental = decomposable(mechanism)
        self.vickrey = getattr(mechanism, "payment", "") == "vickrey"
        self._kernels = _Kernels(getattr(mechanism, "backend", "numba") == "python")
        self._settled = False  # the book holds a settled remainder plus the changes below
        self._changed: dict[str, Order] = {}
        self._requests = self._index(_request_key)  # by priority: (submitted_at, id)
        self._offers = self._index(_offer_key)  # by rank: (price, submitted_at, id)
        self._party_width = 1
        self._party_code: dict[str, int] = {}
        self._party_names: list[str] = []
        self.last_stats: dict[str, Any] = {}

    def _index(self, key: Callable[[Order], tuple[int, ...]]) -> _Index:
        return _Index(key, self._kernels.python)

    # -- changes ----------------------------------------------------------------------------
    def opened(self, order: Order) -> None:
        """`order` entered the book (submitted, amended or given capacity back)."""
        if not self.incremental:
            return
        self._changed[order.id] = order
        if isinstance(order, Request):
            self._requests.added(order)
            names: tuple[str, ...] = (order.tenant, *order.providers, *order.exclude_providers)
        else:
            self._offers.added(order)
            names = (order.provider, *order.tenants, *order.exclude_tenants)
        self._party_width = max(self._party_width, *map(len, names))

    def closed(self, order: Order) -> None:
        """`order` left the book."""
        if not self.incremental:
            return
        self._changed.pop(order.id, None)
        (self._requests if isinstance(order, Request) else self._offers).removed(order)

    def resized(self, old: Order, new: Order) -> None:
        """`old` became `new` in place, its GPUs changed (a fill, or a lease's end)."""
        if not self.incremental:
            return
        (self._requests if isinstance(new, Request) else self._offers).updated(new)
        if old.id in self._changed or new.gpus > old.gpus or (
                isinstance(new, Request) and not new.divisible):
            self._changed[new.id] = new  # more capacity, or a request that needs less

    # -- clearing -------------------------------------------------------------------------
    def clear(self, book: OrderBook, pools: Pools) -> ClearingResult:
        """Clear `book` (whose orders `pools` groups); identical to a from-scratch clear."""
        start = time.perf_counter()
        result = None
        if self.incremental:
            try:
                self._flush(pools)
            except _Fallback:  # the columns lost track of the book: index it again
                self._reindex(book, pools)
                self._settled = False
        if (self.incremental and self._settled
                and len(self._changed) <= _WHOLE_SHARE * max(len(book), 1)):
            try:
                result = self._reclear(book, pools)
            except _Fallback:
                result = None
        if result is None:
            self.last_stats = {"incremental": False, "changed": len(self._changed)}
            result = clear_from_scratch(Market(book.snapshot(), self.reputation),
                                        self.mechanism)
        # the engine applies every fill of the result: what stays open is settled
        self._changed = {}
        self._settled = self.incremental
        self.last_stats["seconds"] = time.perf_counter() - start
        return result

    def _flush(self, pools: Pools) -> None:
        rep = self.reputation
        party = self._party

        def group(o: Order) -> int:
            return pools.group_of(o).index

        def request_payload(r: Order, group: int) -> Payload:
            assert isinstance(r, Request)
            special = bool(r.cluster or r.providers or r.exclude_providers or r.min_cpu_per_gpu
                           or r.min_ram_gb_per_gpu or r.min_disk_gb_per_gpu
                           or r.constraints is not None)
            flags = _DIVISIBLE * r.divisible | _SPECIAL * special
            return (group, r.max_price, _least(r), r.min_reputation, r.gpus, party(r.tenant),
                    flags, r.duration_hours)

        def offer_payload(o: Order, group: int) -> Payload:
            assert isinstance(o, Offer)
            special = bool(o.tenants or o.exclude_tenants or o.constraints is not None)
            return (group, -o.price, -o.gpus, -rep.get(o.provider, 0.0), o.gpus,
                    party(o.provider), _SPECIAL * special, 0)

        self._requests.flush(group, request_payload, self._kernels.splice)
        self._offers.flush(group, offer_payload, self._kernels.splice)

    def _party(self, name: str) -> int:
        """The code of a tenant or provider (given on first sight; dropped only by `reindex`)."""
        code = self._party_code.get(name)
        if code is None:
            code = self._party_code[name] = len(self._party_names)
            self._party_names.append(name)
        return code

    @property
    def parties(self) -> int:
        """Tenant and provider names in the party table (open orders' and departed ones')."""
        return len(self._party_names)

    def reindex(self, book: OrderBook, pools: Pools) -> None:
        """Rebuild the columns and the party table from `book`, grouped by `pools` (new
        pools, or names that departed): what changed since the last clear stays changed."""
        if not self.incremental:
            return
        self._party_code, self._party_names = {}, []
        self._reindex(book, pools)

    def _reindex(self, book: OrderBook, pools: Pools) -> None:
        self._requests, self._offers = self._index(_request_key), self._index(_offer_key)
        for o in book:
            (self._requests if isinstance(o, Request) else self._offers).added(o)
        self._flush(pools)

    def _seekers(self, pools: Pools) -> tuple[_Seekers, _Seekers]:
        """The changed offers seeking requests, and the changed requests seeking offers, with
        the first length of their prefixes."""
        offers = [o for o in self._changed.values() if isinstance(o, Offer)]
        requests = [r for r in self._changed.values() if isinstance(r, Request)]
        n_groups = pools.n_groups
        at_o, at_r = self._offers.locate(offers), self._requests.locate(requests)
        co, cr = self._offers.cols, self._requests.cols
        by_offers = _Seekers(  # ask <= max price, GPUs needed <= GPUs, floor <= reputation
            offers, at_o, self._requests, -co["value"][at_o], co["amount"][at_o],
            -co["floor"][at_o], _peers(pools, self._offers, at_o), n_groups,
            descending=False, kernels=self._kernels)
        by_requests = _Seekers(  # the same, negated: offers come by ask ascending
            requests, at_r, self._offers, -cr["value"][at_r], -cr["size"][at_r],
            -cr["floor"][at_r], _peers(pools, self._requests, at_r), n_groups,
            descending=True, kernels=self._kernels)
        by_offers.want[:] = [_first(_OFFER_PREFIX * o.gpus + 1) for o in offers]
        # a changed request reads past the offers the changed requests before it may take
        base = np.array([(r.gpus if r.divisible else 1) + 1 + self.vickrey for r in requests],
                        dtype=np.int64)
        more = by_requests.contention(np.ones(len(requests), dtype=np.int64))
        by_requests.want[:] = [_first(w) for w in (base + 2 * more).tolist()]
        return by_offers, by_requests

    def _reclear(self, book: OrderBook, pools: Pools) -> ClearingResult:
        by_offers, by_requests = self._seekers(pools)
        req_idx, off_idx = self._requests, self._offers
        none_r = np.zeros(len(req_idx), dtype=bool)
        none_o = np.zeros(len(off_idx), dtype=bool)
        taken = by_offers.take(by_offers.want, np.zeros(len(by_offers.want), np.int64),
                               none_r)
        if _ESTIMATE:
            by_offers.estimate(*taken, none_r)
        by_requests.take(by_requests.want, np.zeros(len(by_requests.want), np.int64), none_o)
        for rounds in range(1, _MAX_ROUNDS + 1):
            # the sub-market: the changed orders with a counterpart, and their prefixes
            rpos = np.unique(np.concatenate((by_requests.positions[by_requests.some],
                                             by_offers.sub_counterparts())))
            opos = np.unique(np.concatenate((by_offers.positions[by_offers.some],
                                             by_requests.sub_counterparts())))
            in_r, in_o = none_r.copy(), none_o.copy()
            in_r[rpos] = True
            in_o[opos] = True
            by_offers.find_cuts(in_r)
            by_requests.find_cuts(in_o)
            alloc = self._direct(rpos, opos, pools)
            direct = alloc is not None
            if alloc is None:  # the sub-market needs the full eligibility rules
                alloc = self._via_market(book, rpos, opos)
            short_o, short_r = self._short(alloc, by_offers, by_requests)
            if not short_o and not short_r:
                self.last_stats = {"incremental": True, "changed": len(self._changed),
                                   "recleared": len(rpos) + len(opos), "rounds": rounds,
                                   "direct": direct}
                return self._assemble(book, *alloc)
            if short_o:
                by_offers.grow(short_o, in_r)
            if short_r:
                by_requests.grow(short_r, in_o)
        raise _Fallback

    def _direct(self, rpos: IntArray, opos: IntArray, pools: Pools) -> Allocation | None:
        """Clear the sub-market of the requests at `rpos` and offers at `opos` with the
        sealed-bid kernel, its arrays read straight from the columns, or None when an order
        in it is `_SPECIAL`. Rows are the index positions, in canonical order (request
        priority, then offer rank); (request, offer, gpus, unit price) per allocation.

        Both index orders are the market's: requests by (submitted_at, id), offers by (ask,
        submitted_at, id) (no quality bonuses here), so sub-market row i is the i-th position.
        Classes and profiles are the pools' groups: with no special order the market's
        eligibility is exactly theirs, and the kernel's choices do not depend on how classes
        are cut (each search takes the best-ranked eligible offer with capacity).
        """
        rc, oc = self._requests.cols, self._offers.cols
        rflags = self._requests.at("flags", rpos)
        oflags = self._offers.at("flags", opos)
        if bool((rflags & _SPECIAL).any()) or bool((oflags & _SPECIAL).any()):
            return None
        n_r, n_o = len(rpos), len(opos)
        price = -oc["value"][opos]
        max_price = rc["value"][rpos]
        # classes: the offers' groups, members in rank order; profiles: the requests' groups
        own, oclass = np.unique(oc["group"][opos], return_inverse=True)
        oclass = oclass.reshape(-1)
        class_indptr = np.zeros(len(own) + 1, dtype=np.int64)
        np.cumsum(np.bincount(oclass, minlength=len(own)), out=class_indptr[1:])
        class_offers = np.argsort(oclass, kind="stable").astype(np.int64)
        prof, rprof = np.unique(rc["group"][rpos], return_inverse=True)
        local = np.full(pools.n_groups, -1, dtype=np.int64)
        local[own] = np.arange(len(own), dtype=np.int64)
        groups = pools.groups
        peers = [groups[g].peer_indexes() for g in prof.tolist()]
        owner = np.repeat(np.arange(len(prof), dtype=np.int64), [len(c) for c in peers])
        cls = local[np.concatenate(peers)] if peers else owner
        keep = cls >= 0
        owner, cls = owner[keep], cls[keep]
        o = np.lexsort((cls, owner))  # per profile, its classes present, sorted
        profile_classes = cls[o].astype(np.int64)
        profile_indptr = np.zeros(len(prof) + 1, dtype=np.int64)
        np.cumsum(np.bincount(owner, minlength=len(prof)), out=profile_indptr[1:])
        kernel: Callable[..., Any] = (
            sealed_bid_reference if self._kernels.python else sealed_bid)
        req, off, gpus, unit = kernel(
            np.arange(n_r, dtype=np.int64), rc["amount"][rpos],
            np.searchsorted(price, max_price, side="right").astype(np.int64), max_price,
            rc["floor"][rpos], (rflags & _DIVISIBLE).astype(bool),
            rprof.reshape(-1).astype(np.int64), profile_indptr, profile_classes,
            class_indptr, class_offers, price, oc["amount"][opos], -oc["floor"][opos],
            self._offers.at("party", opos).astype(np.int32), np.arange(n_o, dtype=np.int64),
            np.zeros(n_o, dtype=np.int64), self.vickrey)
        o = np.lexsort((off, req))
        return rpos[req[o]], opos[off[o]], gpus[o], unit[o]

    def _via_market(self, book: OrderBook, rpos: IntArray, opos: IntArray) -> Allocation:
        """The sub-market of `rpos` and `opos` sliced from `book` and cleared as a `Market`
        by the mechanism; its allocation as `_direct`'s."""
        rids, oids = self._requests.id_at(rpos).tolist(), self._offers.id_at(opos).tolist()
        result = self.mechanism.clear(Market(book.take(oids, rids), self.reputation), rng=None)
        if result.status is not Status.SUCCESS or result.diagnostics:
            raise _Fallback
        where_r = dict(zip(rids, rpos.tolist(), strict=True))
        where_o = dict(zip(oids, opos.tolist(), strict=True))
        at_r = np.array([where_r[i] for i in result.request_id.tolist()], dtype=np.int64)
        at_o = np.array([where_o[i] for i in result.offer_id.tolist()], dtype=np.int64)
        return at_r, at_o, result.gpus.copy(), result.unit_price.copy()

    def _short(self, alloc: Allocation, by_offers: _Seekers, by_requests: _Seekers
               ) -> tuple[list[int], list[int]]:
        """The seekers whose prefixes the sub-clear may have needed more of (see the module
        docstring): (changed offers, changed requests), by their index in the seekers."""
        at_r, at_o, gpus, price = alloc

        def rows_of(seekers: _Seekers, at: IntArray) -> tuple[IntArray, IntArray]:
            """Per allocation row, the seeker at its position `at` (-1 for none), and each
            seeker's cut (a match left out of the sub-market, -1 when none is)."""
            pos = seekers.positions
            o = np.argsort(pos)
            k = np.minimum(np.searchsorted(pos[o], at), max(len(pos) - 1, 0))
            who = np.where(pos[o][k] == at, o[k], -1) if len(pos) else np.full(len(at), -1)
            return who, seekers.cut

        # a changed offer: GPUs left when the first request cut from its prefix came
        who, cut = rows_of(by_offers, at_o)
        mine = who >= 0
        before = mine.copy()
        before[mine] = at_r[mine] < cut[who[mine]]
        used = np.bincount(who[before], weights=gpus[before], minlength=len(cut))
        has = self._offers.cols["amount"][by_offers.positions]
        short_o = np.flatnonzero((cut >= 0) & (has - used >= 1)).tolist()
        # a changed request: filled whole by offers ranked before its cut (and, second
        # price, paid less than the cut offer's ask)
        who, cut = rows_of(by_requests, at_r)
        mine = who >= 0
        bad = np.zeros(len(at_r), dtype=bool)
        c = cut[who[mine]]
        bad[mine] = at_o[mine] >= c
        if self.vickrey:
            bad[mine] |= price[mine] >= -self._offers.cols["value"][c]
        filled = np.bincount(who[mine], weights=gpus[mine], minlength=len(cut))
        wrong = np.bincount(who[mine], weights=bad[mine], minlength=len(cut))
        want = self._requests.cols["amount"][by_requests.positions]
        short_r = np.flatnonzero((cut >= 0) & ((filled != want) | (wrong > 0))).tolist()
        return short_o, short_r

    def _assemble(self, book: OrderBook, at_r: IntArray, at_o: IntArray, gpus: IntArray,
                  unit: IntArray) -> ClearingResult:
        """The whole book's result of an allocation over index positions (canonical order):
        what `ClearingResult.from_allocation` derives, from the columns, at the book's
        column widths."""
        req, off = self._requests, self._offers
        rc, oc = req.cols, off.cols
        where = book._where
        rw, ow, pw = req.width(), off.width(), f"<U{self._party_width}"
        rids, oids = req.id_at(at_r), off.id_at(at_o)
        names = self._party_names
        n = len(at_r)
        # divisible requests filled in part: among those allocated, in priority order
        seen, first = np.unique(at_r, return_index=True)
        filled = np.add.reduceat(gpus, first) if n else gpus
        want = rc["amount"][seen]
        part = filled < want
        payment = _row_payment(unit, gpus)
        m = self.mechanism
        assert isinstance(m, SealedBidAuction)  # only `decomposable` ones re-clear
        return ClearingResult(
            mechanism=m.name, payment=m.payment, status=Status.SUCCESS,
            message="",
            request_row=_frozen(np.array([where[i][1] for i in rids.tolist()],
                                         dtype=np.int64)),
            offer_row=_frozen(np.array([where[i][1] for i in oids.tolist()], dtype=np.int64)),
            request_id=_frozen(rids.astype(rw)),
            offer_id=_frozen(oids.astype(ow)),
            tenant=_frozen(np.array([names[c] for c in req.at("party", at_r).tolist()],
                                    dtype=pw if n else str)),
            provider=_frozen(np.array([names[c] for c in off.at("party", at_o).tolist()],
                                      dtype=pw if n else str)),
            gpus=_frozen(gpus), unit_price=_frozen(unit), tenant_price=_frozen(unit.copy()),
            provider_payment=_frozen(payment), tenant_payment=_frozen(payment.copy()),
            unmatched_request_ids=req.unmatched(at_r, self._kernels.take_rows),
            partial_request_ids=_frozen(req.id_at(seen[part]).astype(rw)),
            shortfall_gpus=_frozen(want[part] - filled[part]),
            welfare=exact_dot(rc["value"][at_r] + oc["value"][at_o], gpus),
            total_payment=sum(payment.tolist()), provider_revenue=sum(payment.tolist()),
            options=m.get_options(), diagnostics=None,
            duration_hours=_frozen(req.at("hours", at_r)),
        )
