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
    DuplicateIdError,
    DuplicateOrderError,
    EventLogError,
    GangSolverError,
    InvalidEventError,
    InvalidOptionError,
    InvalidOrderError,
    InvalidTypeError,
    InvalidValueError,
    MechanismNotFoundError,
    MemoryLimitError,
    MissingDependencyError,
    PartitionError,
    SolverError,
    TimeLimitError,
    UnknownBookSchemaError,
    UnknownLeaseError,
    UnknownLogSchemaError,
    UnknownOrderError,
    UnknownPaymentRuleError,
    UnknownSchemaError,
    UnsupportedMarketError,
)
from auction.market import Market
from auction.money import format_units, to_units
from auction.orders import Offer, Request
from auction.result import ClearingResult, Status

if TYPE_CHECKING:
    from auction import (
        compare,
        datasets,
        demo,
        fairness,
        live,
        mechanisms,
        presets,
        scale,
        testing,
    )
    from auction._warmup import WarmupReport, warmup
    from auction.clearing import clear
    from auction.scale.partition import clear_partitioned, partition
    from auction.scale.sweep import sweep

__version__ = "0.1.0"

__all__ = [
    "AuctionError",
    "AuctionOverflowError",
    "BookSnapshot",
    "ClearingResult",
    "ConstraintSyntaxError",
    "DuplicateIdError",
    "DuplicateOrderError",
    "EventLogError",
    "GangSolverError",
    "InvalidEventError",
    "InvalidOptionError",
    "InvalidOrderError",
    "InvalidTypeError",
    "InvalidValueError",
    "Market",
    "MechanismNotFoundError",
    "MemoryLimitError",
    "MissingDependencyError",
    "Offer",
    "OrderBook",
    "PartitionError",
    "Request",
    "SolverError",
    "Status",
    "TimeLimitError",
    "UnknownBookSchemaError",
    "UnknownLeaseError",
    "UnknownLogSchemaError",
    "UnknownOrderError",
    "UnknownPaymentRuleError",
    "UnknownSchemaError",
    "UnsupportedMarketError",
    "WarmupReport",
    "clear",
    "clear_partitioned",
    "compare",
    "datasets",
    "demo",
    "fairness",
    "format_units",
    "live",
    "mechanisms",
    "partition",
    "presets",
    "scale",
    "sweep",
    "testing",
    "to_units",
    "warmup",
]

_LAZY_MODULES = {
    "compare", "datasets", "demo", "fairness", "live", "mechanisms", "presets", "scale", "testing",
}
_SCALE = {"clear_partitioned": "partition", "partition": "partition", "sweep": "sweep"}


def __getattr__(name: str) -> Any:
    if name == "clear":
        from auction.clearing import clear

        return clear
    if name in _SCALE:
        return getattr(import_module(f"auction.scale.{_SCALE[name]}"), name)
    if name in ("warmup", "WarmupReport"):
        from auction import _warmup

        return getattr(_warmup, name)
    if name in _LAZY_MODULES:
        return import_module(f"auction.{name}")
    raise AttributeError(f"module 'auction' has no attribute {name!r}")
