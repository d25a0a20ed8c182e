"""Call markets: the one book each request trades in, or why there is none.

A double auction clears a *book*: a set of offers that every request trading in it accepts
whole (ignoring price and capacity). The market's offer classes are the bricks: offers a
request cannot tell apart. A book is the set of classes one request accepts, provided

* they are one *resource class* (same GPU model, region, VRAM and tags): a request that
  accepts several resource classes is refused, as a book mixes no resources;
* every other request that accepts one of them accepts all of them: classes that differ only
  by what splits them for *some* requests (offers' tenant lists and constraints, requests'
  provider lists, node-resource floors, attribute constraints) are one book when no request
  trading there tells them apart, and are refused, naming two requests that disagree, when
  one does;
* the request's reputation floor admits every provider of the book, or none (then it trades
  nothing).

So a list or a constraint splits a book only when a request that trades in it is affected.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from auction.book import CodeLists
from auction.errors import UnsupportedMarketError
from auction.market import Market, gather_ranges, intern_lists, unique_rows

__all__ = ["CALL_MARKET_ALTERNATIVES", "Books", "books", "class_label", "request_classes"]

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


@attrs.frozen(eq=False)
class Books:
    """The books of a call market.

    Attributes:
        request_book: the book each request trades in (-1: none).
        indptr, classes: CSR of each book's offer classes (ascending).
    """

    request_book: IntArray
    indptr: IntArray
    classes: IntArray

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def offers(self, market: Market, book: int) -> IntArray:
        """The offers of `book` (class by class, each in rank order)."""
        cls = self.classes[self.indptr[book] : self.indptr[book + 1]]
        starts = market.class_indptr[:-1][cls]
        return market.class_offers[gather_ranges(starts, market.class_indptr[1:][cls] - starts)]

    def first_class(self, book: int) -> int:
        """The book's first class (its resource class names it: `class_label`)."""
        return int(self.classes[self.indptr[book]])


def _first(market: Market, rows: IntArray) -> int:
    """The request of `rows` first in priority."""
    return int(rows[np.argmin(market.request_rank[rows])])


def _labels(market: Market, classes: IntArray) -> list[str]:
    return sorted({class_label(market, int(c)) for c in classes})


def books(market: Market, mechanism: str = "double auction", refuse: Refuse | None = None
          ) -> Books:
    """The books of `market` as a call market (see the module docstring), or
    `UnsupportedMarketError` naming the first request (by priority) that makes it none.
    `refuse` builds the error (a mechanism's `MechanismBase.refuse`)."""
    build = refuse if refuse is not None else _default_refuse(mechanism)
    rq = market.snapshot.requests
    n_prof = market.n_profiles
    p_ptr, p_cls = market.profile_indptr, market.profile_classes
    sizes = np.diff(p_ptr)
    # resource class of each offer class; a profile must accept one resource class only
    cl = market.class_tags
    family = unique_rows([market.class_gpu_model, market.class_region, market.class_vram_gb,
                          intern_lists(cl)], market.n_classes)[1]
    p_owner = np.repeat(np.arange(n_prof, dtype=np.int64), sizes)
    fam = family[p_cls]
    lo = np.full(n_prof, np.iinfo(np.int64).max)
    hi = np.full(n_prof, -1)
    np.minimum.at(lo, p_owner, fam)
    np.maximum.at(hi, p_owner, fam)
    mixed = np.flatnonzero((sizes > 0) & (lo != hi))
    if len(mixed):
        r = _first(market, np.flatnonzero(np.isin(market.request_profile, mixed)))
        labels = _labels(market, market.eligible_classes(r))
        shown = ", ".join(labels[:4]) + (", ..." if len(labels) > 4 else "")
        raise build(
            f"request {str(rq.id[r])!r} accepts offers of {len(labels)} resource classes "
            f"({shown}); a call market needs every request in one class's book",
            CALL_MARKET_ALTERNATIVES,
        )
    # a book per distinct set of classes; every class in at most one book
    set_of = intern_lists(CodeLists(p_ptr, p_cls))
    set_of[sizes == 0] = -1
    lo = np.full(market.n_classes, np.iinfo(np.int64).max)
    hi = np.full(market.n_classes, -1)
    np.minimum.at(lo, p_cls, set_of[p_owner])
    np.maximum.at(hi, p_cls, set_of[p_owner])
    split = np.flatnonzero((hi >= 0) & (lo != hi))
    if len(split):
        _refuse_split(market, build, split, set_of, p_owner)
    # books numbered by their first class (they are disjoint), each with a profile
    reached = np.flatnonzero(set_of >= 0)
    sets, first = np.unique(set_of[reached], return_index=True)
    first = reached[first[np.argsort(p_cls[p_ptr[:-1][reached[first]]])]]
    set_book = np.full(max(1, int(set_of.max(initial=-1)) + 1), -1, dtype=np.int64)
    set_book[set_of[first]] = np.arange(len(sets), dtype=np.int64)
    profile_book = np.where(set_of >= 0, set_book[np.maximum(set_of, 0)], -1)
    counts = sizes[first]
    indptr = np.zeros(len(sets) + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    classes = p_cls[gather_ranges(p_ptr[:-1][first], counts)]
    out = Books(profile_book[market.request_profile], indptr, classes)
    _check_reputation(market, build, out)
    return out


def _refuse_split(
    market: Market, build: Refuse, split: IntArray, set_of: IntArray, p_owner: IntArray
) -> None:
    """Refuse a market where requests accept different parts of one book: the first request
    by priority reaching a split class, and the first reaching it with another set."""
    rq = market.snapshot.requests
    p_cls = market.profile_classes
    hit = np.isin(p_cls, split)
    profiles = np.unique(p_owner[hit])
    rows = np.flatnonzero(np.isin(market.request_profile, profiles))
    r = _first(market, rows)
    mine = market.eligible_classes(r)
    shared = p_owner[np.isin(p_cls, mine)]
    other = np.unique(shared[set_of[shared] != set_of[market.request_profile[r]]])
    r2 = _first(market, np.flatnonzero(np.isin(market.request_profile, other)))
    theirs = market.eligible_classes(r2)
    label = class_label(market, int(mine[0]))
    raise build(
        f"requests {str(rq.id[r])!r} and {str(rq.id[r2])!r} trade in resource class {label} "
        f"but accept different offers of it ({len(mine)} and {len(theirs)} offer groups: "
        "split by provider or tenant lists, node resources, attributes or constraints); "
        "a call market needs every request to accept its whole book",
        CALL_MARKET_ALTERNATIVES,
    )


def _check_reputation(market: Market, build: Refuse, out: Books) -> None:
    """A request whose reputation floor excludes every provider of its book trades nothing
    (its book becomes -1); one that excludes some of them is refused."""
    rq = market.snapshot.requests
    one = np.flatnonzero(out.request_book >= 0)
    if len(one) == 0:
        return
    class_book = np.full(market.n_classes, -1, dtype=np.int64)
    class_book[out.classes] = np.repeat(np.arange(len(out), dtype=np.int64),
                                        np.diff(out.indptr))
    offer_book = class_book[market.offer_class]
    held = offer_book >= 0
    lowest, highest = np.full(len(out), np.inf), np.full(len(out), -np.inf)
    np.minimum.at(lowest, offer_book[held], market.offer_reputation[held])
    np.maximum.at(highest, offer_book[held], market.offer_reputation[held])
    b = out.request_book[one]
    floor = rq.min_reputation[one]
    bad = one[(floor > lowest[b]) & (floor <= highest[b])]
    if len(bad):
        r = _first(market, bad)
        c = out.first_class(int(out.request_book[r]))
        raise build(
            f"request {str(rq.id[r])!r} has min_reputation {float(rq.min_reputation[r])}, "
            f"which excludes some providers of its class {class_label(market, c)}; "
            "a call market needs every request to accept its whole class",
            CALL_MARKET_ALTERNATIVES,
        )
    out.request_book[one[floor > highest[b]]] = -1  # excludes the whole book: trades nothing


def request_classes(
    market: Market, mechanism: str = "double auction", refuse: Refuse | None = None
) -> IntArray:
    """The book each request trades in, named by its first offer class (-1: none), or
    `UnsupportedMarketError` (see `books`)."""
    out = books(market, mechanism, refuse)
    first = np.append(out.classes[out.indptr[:-1]], -1)
    return first[out.request_book]  # -1 (no book) reads the appended -1
