"""Double auctions per resource class: a call market on GPU units.

Each resource class (same GPU model, region, VRAM and tags) is one book (or several, below).
A request's GPUs are unit bids at its ``max_price``; an offer's GPUs are unit asks at its
``price``. Per book, buyer units are sorted by bid, highest first (ties: request priority,
earlier first) and seller units by ask, lowest first (ties: offer rank), and ``q`` is the
largest number with ``b_q >= s_q``: the first ``q`` units of each side make the
welfare-optimal trade. The three mechanisms differ in how many of those units trade and at
what price:

* ``uniform-price``: the k-double auction. All ``q`` units trade at
  ``lo + floor(k * (hi - lo))`` in the crossing interval ``[lo, hi] =
  [max(s_q, b_{q+1}), min(b_q, s_{q+1})]`` (a missing ``b_{q+1}`` or ``s_{q+1}`` drops out).
  Budget balanced, individually rational and welfare-optimal; not truthful.
* ``mcafee``: McAfee's (1992) trade reduction. With ``p0 = (b_{q+1} + s_{q+1}) / 2``: if both
  exist and ``s_q <= p0 <= b_q``, all ``q`` units trade at ``floor(p0)``; otherwise the ``q``-th
  units drop out and ``q - 1`` units trade, buyers paying ``b_q`` and sellers receiving
  ``s_q`` (the platform keeps the difference). Truthful for unit traders, weakly budget
  balanced, at least ``1 - 1/q`` of the optimal gains from trade.
* ``sbba``: Segal-Halevi, Hassidim and Aumann's (2016) strongly budget-balanced variant. One
  price ``p = min(b_q, s_{q+1})``: if ``s_{q+1} <= b_q`` all ``q`` units trade at ``s_{q+1}``;
  otherwise buyer unit ``q`` drops out and ``q - 1`` of seller units ``1..q``, drawn by a seeded
  lottery, trade at ``b_q`` with buyer units ``1..q-1``.

A call market needs each request to trade in one book: every request's eligible offers,
ignoring price, must be one whole book (or none: such a request trades nothing). A book is one
resource class, or the part of it that the requests trading there accept alike: lists and
constraints (offers' tenant lists and constraints, requests' provider lists, attribute
constraints, node-resource floors) split a resource class into several books only where a
request trading in it is affected (`auction.problems.call_market`). Markets where a request
accepts several resource classes, where two requests accept different parts of one, or whose
reputation floor excludes some providers of a book, are refused with
`UnsupportedMarketError`. Non-divisible requests for
several GPUs cannot be cut into units and are refused too (``splittable_only``).

Traded units become allocation rows by pairing the sorted buyer units with the sorted seller
units in order, one row per (request, offer) run. Everything is exact integer arithmetic.
"""

from __future__ import annotations

import abc
import hashlib
import numbers
import secrets
from collections.abc import Iterator
from decimal import Decimal
from fractions import Fraction
from typing import Any, ClassVar

import attrs
import numpy as np
import numpy.typing as npt

from auction.errors import InvalidOptionError
from auction.limits import Deadline
from auction.market import Market
from auction.mechanisms.base import MechanismBase, MechanismTags
from auction.problems import call_market
from auction.problems.call_market import Books, class_label, request_classes
from auction.result import ClearingResult

__all__ = [
    "SBBA",
    "Crossing",
    "DoubleAuction",
    "McAfee",
    "UniformPrice",
    "class_label",
    "crossing",
    "request_classes",
]

IntArray = npt.NDArray[np.int64]

# -- the call market ------------------------------------------------------------------------
def _books(market: Market, books: Books) -> Iterator[tuple[int, IntArray, IntArray]]:
    """(first class, buyer request rows, seller offer rows) for each book with requests, both
    sides best first: bids descending (ties by request priority), asks ascending (ties by
    submitted_at, then id). Prices alone: quality bonuses of scoring markets play no part."""
    rq, of = market.snapshot.requests, market.snapshot.offers
    req_book = books.request_book
    rows = np.flatnonzero(req_book >= 0)
    if len(rows) == 0:
        return
    order = np.lexsort((market.request_rank[rows], -rq.max_price[rows], req_book[rows]))
    rows = rows[order]
    ask_rank = np.empty(market.n_offers, dtype=np.int64)
    ask_rank[np.lexsort((of.id, of.submitted_at, of.price))] = np.arange(market.n_offers)
    ids, starts = np.unique(req_book[rows], return_index=True)
    ends = [*starts[1:].tolist(), len(rows)]
    for b, lo, hi in zip(ids.tolist(), starts.tolist(), ends, strict=True):
        sellers = books.offers(market, b)
        yield books.first_class(b), rows[lo:hi], sellers[np.argsort(ask_rank[sellers])]


@attrs.frozen
class Crossing:
    """Where one book's sorted bid and ask units cross.

    Attributes:
        q: the largest number of units with ``b_q >= s_q`` (0: nothing can trade).
        b_q, s_q: the q-th highest bid and q-th lowest ask (0 when q == 0).
        b_next, s_next: ``b_{q+1}`` and ``s_{q+1}``, None where that side has no more units.
    """

    q: int
    b_q: int
    s_q: int
    b_next: int | None
    s_next: int | None


def _unit(prices: IntArray, cum: IntArray, t: int) -> int | None:
    """Price of the t-th unit (1-based) of a side whose orders hold ``diff(cum)`` units."""
    if t < 1 or len(cum) == 0 or t > int(cum[-1]):
        return None
    return int(prices[int(np.searchsorted(cum, t, side="left"))])


def crossing(bids: IntArray, bid_units: IntArray, asks: IntArray, ask_units: IntArray) -> Crossing:
    """The crossing of a book: bids sorted descending and asks ascending, per order with its
    units. Binary search on the unit index: ``b_t - s_t`` does not increase with t."""
    bcum, scum = np.cumsum(bid_units), np.cumsum(ask_units)
    lo, hi = 0, min(int(bcum[-1]) if len(bcum) else 0, int(scum[-1]) if len(scum) else 0)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        b, s = _unit(bids, bcum, mid), _unit(asks, scum, mid)
        if b is not None and s is not None and b >= s:  # both exist for mid <= hi
            lo = mid
        else:
            hi = mid - 1
    q = lo
    return Crossing(q, _unit(bids, bcum, q) or 0, _unit(asks, scum, q) or 0,
                    _unit(bids, bcum, q + 1), _unit(asks, scum, q + 1))


def _take(units: IntArray, n: int) -> IntArray:
    """Units each order contributes to the first n units of its side."""
    start = np.cumsum(units) - units
    out: IntArray = np.clip(n - start, 0, units).astype(np.int64)
    return out


def _pair(
    b_rows: IntArray, b_take: IntArray, s_rows: IntArray, s_take: IntArray
) -> tuple[IntArray, IntArray, IntArray]:
    """Pair buyer units with seller units in order: (request rows, offer rows, GPUs)."""
    kb, ks = b_take > 0, s_take > 0
    b_rows, b_take, s_rows, s_take = b_rows[kb], b_take[kb], s_rows[ks], s_take[ks]
    cb, cs = np.cumsum(b_take), np.cumsum(s_take)
    ends = np.union1d(cb, cs)
    starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
    bi = np.searchsorted(cb, starts, side="right")
    si = np.searchsorted(cs, starts, side="right")
    return b_rows[bi], s_rows[si], (ends - starts).astype(np.int64)


@attrs.frozen
class Outcome:
    """What one book trades: `units` buyer units (the best ones) at `tenant_price`, and as many
    seller units at `price`; with `lottery`, those seller units are drawn from the best
    ``units + 1`` by the mechanism's lottery instead of being the best ``units``."""

    units: int
    price: int
    tenant_price: int
    lottery: bool = False


# -- the mechanisms ---------------------------------------------------------------------------
@attrs.frozen
class DoubleAuction(MechanismBase):
    """A call market per resource class (see the module docstring); subclasses set the rule.

    The base class enforces the tags: only divisible or 1-GPU requests (``splittable_only``),
    each in one book (``call_market``).
    """

    tags = MechanismTags(divisible=True, splittable_only=True, call_market=True)
    whole_request_reason: ClassVar[str] = (
        "a double auction trades single GPUs: only divisible or 1-GPU requests"
    )

    @abc.abstractmethod
    def _rule(self, x: Crossing) -> Outcome:
        """The trade of one book with ``x.q >= 1``."""

    def _lottery(
        self, market: Market, cls: int, candidates: IntArray, counts: IntArray,
        state: dict[str, Any],
    ) -> IntArray:
        """Seller units kept per candidate offer when one of their units must go."""
        raise NotImplementedError(f"{self.name} has no lottery")

    def _prepare(self, rng: np.random.Generator | None) -> dict[str, Any]:
        """Per-clearing state (the lottery seed), recorded in the diagnostics."""
        return {}

    def _clear(
        self, market: Market, rng: np.random.Generator | None, deadline: Deadline
    ) -> ClearingResult:
        rq, of = market.snapshot.requests, market.snapshot.offers
        state = self._prepare(rng)
        req_l: list[IntArray] = []
        off_l: list[IntArray] = []
        gpus_l: list[IntArray] = []
        up_l: list[IntArray] = []
        tp_l: list[IntArray] = []
        books: list[dict[str, Any]] = []
        for c, buyers, sellers in _books(market, call_market.books(market, self.name)):
            x = crossing(rq.max_price[buyers], rq.gpus[buyers], of.price[sellers], of.gpus[sellers])
            book: dict[str, Any] = {"class": class_label(market, c), "q": x.q, "units": 0}
            books.append(book)
            if x.q == 0:
                continue
            out = self._rule(x)
            if out.units == 0:
                continue
            book.update(units=out.units, price=out.price, tenant_price=out.tenant_price)
            s_take = _take(of.gpus[sellers], out.units + (1 if out.lottery else 0))
            if out.lottery:
                pool = np.flatnonzero(s_take)
                s_take[pool] = self._lottery(market, c, sellers[pool], s_take[pool], state)
            req, off, g = _pair(buyers, _take(rq.gpus[buyers], out.units), sellers, s_take)
            req_l.append(req)
            off_l.append(off)
            gpus_l.append(g)
            up_l.append(np.full(len(req), out.price, dtype=np.int64))
            tp_l.append(np.full(len(req), out.tenant_price, dtype=np.int64))
        req, off, gpus, up, tp = (
            np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
            for parts in (req_l, off_l, gpus_l, up_l, tp_l)
        )
        return ClearingResult.from_allocation(
            market, req, off, gpus, up, tp,
            mechanism=self.name, payment=self.payment, options=self.get_options(),
            diagnostics={**state, "books": tuple(books)},
        )


def _fraction(k: Any) -> Fraction:
    """`k` as an exact fraction in [0, 1] (floats are taken at their exact binary value)."""

    def bad(reason: str) -> InvalidOptionError:
        return InvalidOptionError("k", k, reason, mechanism="uniform-price")

    if isinstance(k, bool) or not isinstance(k, numbers.Rational | float | Decimal | str):
        raise bad("k must be a number in [0, 1]")
    try:
        f = Fraction(k)
    except (ValueError, ZeroDivisionError, OverflowError):
        raise bad("k must be a number in [0, 1]") from None
    if not 0 <= f <= 1:
        raise bad("k must be in [0, 1]")
    return f


@attrs.frozen
class UniformPrice(DoubleAuction):
    """The k-double auction: all ``q`` units trade at one price in the crossing interval.

    The price is ``lo + floor(k * (hi - lo))`` over ``[lo, hi] = [max(s_q, b_{q+1}),
    min(b_q, s_{q+1})]`` (a missing ``b_{q+1}`` or ``s_{q+1}`` is left out), computed exactly and
    rounded down to a whole smallest unit. The price is in ``[s_q, b_q]``, so every trader is
    individually rational; each trade is welfare-optimal for the call market. Not truthful:
    the trader who sets ``lo`` or ``hi`` can move the price.

    Args:
        payment: ``"uniform"`` (the only rule).
        k: where in the crossing interval the price falls, in [0, 1]: 0 is the lowest price
            (best for tenants), 1 the highest (best for providers). Any int, float, Fraction,
            Decimal or string ``"1/3"``, converted exactly.
    """

    name: ClassVar[str] = "uniform-price"
    tags = MechanismTags(
        payments=("uniform",), divisible=True, splittable_only=True, call_market=True,
        exact_optimal=True,
    )

    k: Fraction = attrs.field(default=Fraction(1, 2), converter=_fraction, kw_only=True,
                              repr=lambda f: repr(str(f)), metadata={"export": str})

    def _rule(self, x: Crossing) -> Outcome:
        lo = x.s_q if x.b_next is None else max(x.s_q, x.b_next)
        hi = x.b_q if x.s_next is None else min(x.b_q, x.s_next)
        p = lo + (self.k.numerator * (hi - lo)) // self.k.denominator
        return Outcome(x.q, p, p)


@attrs.frozen
class McAfee(DoubleAuction):
    """McAfee's (1992) trade-reduction double auction.

    With ``p0 = (b_{q+1} + s_{q+1}) / 2``: if both exist and ``s_q <= p0 <= b_q`` (checked
    exactly, on ``2 * p0``), all ``q`` units trade at ``floor(p0)``. Rounding down keeps the
    sellers whole: ``s_q`` is an integer no greater than ``p0``, so it is no greater than
    ``floor(p0)``; the tenants gain the half unit. Otherwise the ``q``-th buyer and seller
    units drop out and ``q - 1`` units trade: buyers pay ``b_q``, sellers receive ``s_q``,
    and the platform keeps ``(b_q - s_q)`` per unit (``tenant_price > unit_price``).

    Truthful when every order is for one GPU and every party places one order, individually
    rational, weakly budget balanced (platform surplus >= 0), and at least ``1 - 1/q`` of
    the optimal gains from trade.

    Args:
        payment: ``"mcafee"`` (the only rule).
    """

    name: ClassVar[str] = "mcafee"
    tags = MechanismTags(
        payments=("mcafee",), divisible=True, splittable_only=True, call_market=True,
        budget_balanced=False, truthful_unit_traders=True,
    )

    def _rule(self, x: Crossing) -> Outcome:
        if x.b_next is not None and x.s_next is not None:
            twice = x.b_next + x.s_next
            if 2 * x.s_q <= twice <= 2 * x.b_q:
                return Outcome(x.q, twice // 2, twice // 2)
        return Outcome(x.q - 1, x.s_q, x.b_q)


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


@attrs.frozen
class SBBA(DoubleAuction):
    """SBBA, the strongly budget-balanced double auction of Segal-Halevi, Hassidim and Aumann,
    "SBBA: a Strongly-Budget-Balanced Double-Auction Mechanism" (SAGT 2016, arXiv:1607.05139),
    its single-market mechanism applied to GPU units.

    One price ``p = min(b_q, s_{q+1})`` (a missing ``s_{q+1}`` counts as +infinity):

    * if ``p = s_{q+1}`` (``s_{q+1} <= b_q``), buyer units ``1..q`` and seller units ``1..q``
      trade at ``p``;
    * otherwise (``p = b_q``) buyer unit ``q`` is excluded, buyer units ``1..q-1`` trade at
      ``p``, and ``q - 1`` of the ``q`` seller units ``1..q``, chosen by a uniform lottery, sell
      at ``p``.

    Tenants pay exactly what providers receive. Truthful for unit traders (for every lottery
    draw), individually rational, at least ``1 - 1/q`` of the optimal gains from trade.

    The lottery drops one unit uniformly at random from the ``q`` candidates. It depends only
    on the seed, the class and the candidate offer ids, never on row order: candidate offers
    are ordered by ``sha256(f"{seed}:{offer_id}")``, and the unit at position
    ``int(sha256(f"{seed}:{class}")) mod q`` of that order (each offer's candidate units in a
    run) is dropped. The seed used is in ``result.diagnostics["seed"]``.

    The lottery seed is drawn from the `rng` given to `clear` (an int or SeedSequence seeds
    it, so ``rng=7`` always draws the same lottery), or from fresh entropy when it is None.

    Args:
        payment: ``"sbba"`` (the only rule).
    """

    name: ClassVar[str] = "sbba"
    tags = MechanismTags(
        payments=("sbba",), divisible=True, splittable_only=True, call_market=True,
        truthful_unit_traders=True, deterministic=False,
    )

    def _prepare(self, rng: np.random.Generator | None) -> dict[str, Any]:
        seed = int(rng.integers(0, 2**63 - 1)) if rng is not None else secrets.randbits(63)
        return {"seed": seed}

    def _rule(self, x: Crossing) -> Outcome:
        if x.s_next is not None and x.s_next <= x.b_q:
            return Outcome(x.q, x.s_next, x.s_next)
        return Outcome(x.q - 1, x.b_q, x.b_q, lottery=x.q > 1)

    def _lottery(
        self, market: Market, cls: int, candidates: IntArray, counts: IntArray,
        state: dict[str, Any],
    ) -> IntArray:
        seed = state["seed"]
        ids = market.snapshot.offers.id[candidates].tolist()
        order = sorted(range(len(ids)), key=lambda i: _digest(f"{seed}:{ids[i]}"))
        u = int.from_bytes(_digest(f"{seed}:{class_label(market, cls)}"), "big")
        u %= int(counts.sum())
        kept = counts.copy()
        for i in order:  # the u-th candidate unit, offers in hash order, drops out
            if u < kept[i]:
                kept[i] -= 1
                break
            u -= int(kept[i])
        return kept
