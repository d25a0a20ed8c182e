"""`clear`: the one-line entry from a book (or market) to a result."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from auction.book import BookSnapshot, OrderBook
from auction.errors import InvalidValueError
from auction.limits import Deadline, watch
from auction.market import Market
from auction.mechanisms.base import resolve_rng
from auction.mechanisms.protocol import Mechanism, RngLike
from auction.mechanisms.registry import get
from auction.result import ClearingResult

__all__ = ["clear"]


def clear(
    book_or_market: OrderBook | BookSnapshot | Market,
    mechanism: str | Mechanism = "first-price",
    payment: str | None = None,
    *,
    rng: RngLike = None,
    reputation: Mapping[str, float] | None = None,
    executor: Any = None,
    partition: bool | str | Sequence[str] | None = None,
    **options: Any,
) -> ClearingResult:
    """Clear a book or market with a mechanism chosen by name (or given as an instance).

    Args:
        book_or_market: what to clear; a book is turned into a `Market` first.
        mechanism: a registry name (see `auction.mechanisms.available`) or a mechanism.
        payment: the payment rule, where the mechanism offers several.
        rng: a numpy Generator, a seed (an int >= 0 or a SeedSequence) or None, for
            mechanisms that randomize; resolved once, the same way for every mechanism.
        reputation: provider scores for the market (only with a book).
        executor: clear the market's independent parts on this executor (any
            `concurrent.futures.Executor`, an initialised ``ray``, a Dask ``Client``): see
            `auction.clear_partitioned` and docs/scale-out.md.
        partition: clear part by part in this process: True (the default cut), or how to
            cut (``"pairs"``, ``"classes"`` or declared keys such as ``("region",)``).
        **options: further options for the mechanism's constructor. Its ``time_limit``
            covers the whole call, the `Market` build from a book included: a build that
            outlasts it raises `TimeLimitError`.

    Examples:
        >>> import auction
        >>> book = auction.demo.example_book()
        >>> result = auction.clear(book, "second-price")
        >>> result.status
        <Status.SUCCESS: 'success'>
    """
    if executor is not None or partition not in (None, False):
        from auction.scale.partition import clear_partitioned

        by = partition if isinstance(partition, Sequence) else None
        return clear_partitioned(book_or_market, mechanism, payment, executor=executor,
                                 rng=resolve_rng(rng),
                                 reputation=reputation, by=by, **options)
    _check_reputation(book_or_market, reputation)
    mech = _mechanism(mechanism, payment, options)
    # the time limit covers the market build: start it now, watch it while the market is
    # built (the join checks it), and hand it to the mechanism's clear (`deadline_for`)
    limit = getattr(mech, "time_limit", None)
    deadline = Deadline.after(limit if isinstance(limit, int | float) else None)
    with watch(deadline, str(getattr(mech, "name", mech)), owner=mech):
        market = _market(book_or_market, reputation)
        return mech.clear(market, rng=resolve_rng(rng))


def resolve(
    book_or_market: OrderBook | BookSnapshot | Market,
    mechanism: str | Mechanism,
    payment: str | None,
    reputation: Mapping[str, float] | None,
    options: dict[str, Any],
) -> tuple[Market, Mechanism]:
    """The market and the mechanism instance `clear` (and `clear_partitioned`) works with."""
    _check_reputation(book_or_market, reputation)
    market = _market(book_or_market, reputation)
    return market, _mechanism(mechanism, payment, options)


def _check_reputation(
    book_or_market: OrderBook | BookSnapshot | Market, reputation: Mapping[str, float] | None
) -> None:
    if isinstance(book_or_market, Market) and reputation is not None:
        raise InvalidValueError(
            "reputation", "...", "pass reputation when building the Market, not with a Market"
        )


def _market(
    book_or_market: OrderBook | BookSnapshot | Market, reputation: Mapping[str, float] | None
) -> Market:
    if isinstance(book_or_market, Market):
        return book_or_market
    return Market(book_or_market, reputation)


def _mechanism(
    mechanism: str | Mechanism, payment: str | None, options: dict[str, Any]
) -> Mechanism:
    if isinstance(mechanism, str):
        if payment is not None:
            options["payment"] = payment
        return get(mechanism, **options)
    if payment is not None or options:
        raise InvalidValueError(
            "options", {**options, "payment": payment},
            "options and payment go to the mechanism's constructor, not here",
        )
    return mechanism
