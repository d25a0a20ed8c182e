"""Typed errors raised by the library.

Every error that comes from bad input names the offending field and value, so a caller can
report it without parsing the message.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

__all__ = [
    "AuctionError",
    "AuctionOverflowError",
    "DuplicateOrderError",
    "InvalidOrderError",
    "InvalidValueError",
    "MechanismNotFoundError",
    "SolverError",
    "UnknownOrderError",
    "UnknownPaymentRuleError",
    "UnsupportedMarketError",
]


class AuctionError(Exception):
    """Base class of every error this library raises on purpose."""


class InvalidValueError(AuctionError, ValueError):
    """A value failed validation: ``invalid {field}={value!r} in {holder} {id!r}: {reason}``.

    The base of every validation error (orders, reputation, settlement); subclasses name
    what holds the value (`holder`: ``"order"``, ``"event"``, ``"transaction"``).

    Attributes:
        field: the name of the offending field or parameter.
        value: the offending value, as given.
        reason: what is wrong with it.
    """

    holder: ClassVar[str] = ""

    def __init__(self, field: str, value: Any, reason: str, *, within: str | None = None):
        self.field = field
        self.value = value
        self.reason = reason
        where = f" in {self.holder} {within!r}" if within is not None else ""
        super().__init__(f"invalid {field}={value!r}{where}: {reason}")


class InvalidOrderError(InvalidValueError):
    """An order (or a money amount) failed validation.

    Attributes:
        field: the name of the offending field.
        value: the offending value, as given.
        order_id: the id of the order being validated, when known.
    """

    holder = "order"

    def __init__(self, field: str, value: Any, reason: str, *, order_id: str | None = None):
        self.order_id = order_id
        super().__init__(field, value, reason, within=order_id)


class DuplicateOrderError(AuctionError, KeyError):
    """An order id is already in the book (or twice in one batch)."""

    def __init__(self, order_id: str):
        self.order_id = order_id
        super().__init__(order_id)

    def __str__(self) -> str:
        return f"order id {self.order_id!r} is already in the book"


class UnknownOrderError(AuctionError, KeyError):
    """No order with this id is in the book."""

    def __init__(self, order_id: str):
        self.order_id = order_id
        super().__init__(order_id)

    def __str__(self) -> str:
        return f"no order with id {self.order_id!r} in the book"


class MechanismNotFoundError(AuctionError, LookupError):
    """No registered mechanism has this name."""

    def __init__(self, name: str, available: Sequence[str]):
        self.name = name
        self.available = tuple(available)
        super().__init__(
            f"no mechanism named {name!r}; available: {', '.join(self.available) or 'none'}"
        )


class UnknownPaymentRuleError(AuctionError, ValueError):
    """The mechanism does not offer the requested payment rule."""

    def __init__(self, mechanism: str, payment: str, offered: Sequence[str]):
        self.mechanism = mechanism
        self.payment = payment
        self.offered = tuple(offered)
        super().__init__(
            f"mechanism {mechanism!r} has no payment rule {payment!r}; "
            f"it offers: {', '.join(self.offered)}"
        )


class UnsupportedMarketError(AuctionError, ValueError):
    """A mechanism cannot clear this market; `alternatives` names mechanisms that can."""

    def __init__(self, mechanism: str, reason: str, alternatives: Sequence[str] = ()):
        self.mechanism = mechanism
        self.reason = reason
        self.alternatives = tuple(alternatives)
        hint = f"; use one of: {', '.join(self.alternatives)}" if self.alternatives else ""
        super().__init__(f"mechanism {mechanism!r} cannot clear this market: {reason}{hint}")


class AuctionOverflowError(AuctionError, OverflowError):
    """Values too large for exact int64 arithmetic in a kernel; the message says which."""


class SolverError(AuctionError, RuntimeError):
    """An optimization solver is missing or failed in a way no result can describe.

    Attributes:
        mechanism: the mechanism that called the solver.
        solver: the solver's name.
        reason: what went wrong.
    """

    def __init__(self, mechanism: str, solver: str, reason: str):
        self.mechanism = mechanism
        self.solver = solver
        self.reason = reason
        super().__init__(f"mechanism {mechanism!r}, solver {solver!r}: {reason}")


class InvalidEventError(InvalidValueError):
    """A live-market event failed validation (`auction.live`); nothing of it was applied.

    Attributes:
        field: the offending field of the event.
        value: the offending value, as given.
        event_id: the id of the event, when known.
    """

    holder = "event"

    def __init__(self, field: str, value: Any, reason: str, *, event_id: str | None = None):
        self.event_id = event_id
        super().__init__(field, value, reason, within=event_id)


class UnknownLeaseError(AuctionError, KeyError):
    """No active lease with this id in the live market."""

    def __init__(self, lease_id: str):
        self.lease_id = lease_id
        super().__init__(lease_id)

    def __str__(self) -> str:
        return f"no active lease with id {self.lease_id!r}"


class EventLogError(AuctionError, RuntimeError):
    """A live-market event log or snapshot is unreadable, of another version, or disagrees
    with what replaying it produces."""


__all__ += ["EventLogError", "InvalidEventError", "UnknownLeaseError"]
