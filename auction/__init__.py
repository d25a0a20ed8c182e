"""auction: exact, fast reverse-auction clearing for decentralized GPU compute markets.

Describe offers and requests, put them in an `OrderBook`, and `clear` it with a mechanism
chosen by name::

    import auction
    book = auction.OrderBook([...])
    result = auction.clear(book, "second-price")

Importing this package is light: numba and scipy load only when a kernel or solver first runs.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from auction.book import BookSnapshot, OrderBook
from auction.errors import (
    AuctionError,
    AuctionOverflowError,
    ConstraintSyntaxError,
    DuplicateOrderError,
    InvalidOrderError,
    InvalidValueError,
    MechanismNotFoundError,
    SolverError,
    UnknownOrderError,
    UnknownPaymentRuleError,
    UnsupportedMarketError,
)
from auction.market import Market
from auction.money import format_units, to_units
from auction.orders import Offer, Request
from auction.result import ClearingResult, Status

if TYPE_CHECKING:
    from auction import compare, demo, fairness, mechanisms, presets, testing
    from auction.clearing import clear

__version__ = "0.1.0"

__all__ = [
    "AuctionError",
    "AuctionOverflowError",
    "BookSnapshot",
    "ClearingResult",
    "ConstraintSyntaxError",
    "DuplicateOrderError",
    "InvalidOrderError",
    "InvalidValueError",
    "Market",
    "MechanismNotFoundError",
    "Offer",
    "OrderBook",
    "Request",
    "SolverError",
    "Status",
    "UnknownOrderError",
    "UnknownPaymentRuleError",
    "UnsupportedMarketError",
    "clear",
    "compare",
    "demo",
    "fairness",
    "format_units",
    "mechanisms",
    "presets",
    "testing",
    "to_units",
]

_LAZY_MODULES = {"compare", "demo", "fairness", "mechanisms", "presets", "testing"}


def __getattr__(name: str) -> Any:
    if name == "clear":
        from auction.clearing import clear

        return clear
    if name in _LAZY_MODULES:
        return import_module(f"auction.{name}")
    raise AttributeError(f"module 'auction' has no attribute {name!r}")
