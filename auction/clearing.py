"""`clear`: the one-line entry from a book (or market) to a result."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from auction.book import BookSnapshot, OrderBook
from auction.market import Market
from auction.mechanisms.base import Mechanism
from auction.mechanisms.registry import get
from auction.result import ClearingResult

__all__ = ["clear"]


def clear(
    book_or_market: OrderBook | BookSnapshot | Market,
    mechanism: str | Mechanism = "first-price",
    payment: str | None = None,
    *,
    rng: np.random.Generator | int | None = None,
    reputation: Mapping[str, float] | None = None,
    **options: Any,
) -> ClearingResult:
    """Clear a book or market with a mechanism chosen by name (or given as an instance).

    Args:
        book_or_market: what to clear; a book is turned into a `Market` first.
        mechanism: a registry name (see `auction.mechanisms.available`) or a mechanism.
        payment: the payment rule, where the mechanism offers several.
        rng: a numpy Generator or a seed, for mechanisms that randomize.
        reputation: provider scores for the market (only with a book).
        **options: further options for the mechanism's constructor.

    Examples:
        >>> import auction
        >>> book = auction.demo.example_book()
        >>> result = auction.clear(book, "second-price")
        >>> result.status
        <Status.SUCCESS: 'success'>
    """
    if isinstance(book_or_market, Market):
        if reputation is not None:
            raise ValueError("pass reputation when building the Market, not with a Market")
        market = book_or_market
    else:
        market = Market(book_or_market, reputation)
    if isinstance(mechanism, str):
        if payment is not None:
            options["payment"] = payment
        mech = get(mechanism, **options)
    else:
        if payment is not None or options:
            raise ValueError("options and payment go to the mechanism's constructor, not here")
        mech = mechanism
    generator = rng if isinstance(rng, np.random.Generator) or rng is None else (
        np.random.default_rng(rng)
    )
    return mech.clear(market, rng=generator)
