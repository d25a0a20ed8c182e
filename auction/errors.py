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
    "DuplicateIdError",
    "DuplicateOrderError",
    "InvalidOrderError",
    "InvalidValueError",
    "MechanismNotFoundError",
    "MissingDependencyError",
    "SolverError",
    "UnknownOrderError",
    "UnknownPaymentRuleError",
    "UnknownSchemaError",
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


class UnknownSchemaError(InvalidValueError):
    """A saved document's ``schema`` key names a format or version this library cannot read.

    Every JSON format of the library names itself in one key, ``schema`` (``"name/version"``),
    checked on read. `field` is ``"schema"``, `value` what the document says.

    Attributes:
        supported: the schemas this library reads.
    """

    holder = "document"

    def __init__(self, value: Any, supported: Sequence[str], *, document: str | None = None):
        self.supported = tuple(supported)
        super().__init__("schema", value, f"this library reads {', '.join(self.supported)}",
                         within=document)


class DuplicateIdError(AuctionError, ValueError):
    """An id was used before for other content: a transaction posted, a lease opened or an
    event recorded (the same content again is a retry, never an error).

    The one type every such duplicate outside the order book raises (each as a subclass that
    names its fields), so ``except DuplicateIdError`` handles any of them.

    Attributes:
        id: the id.
        kind: what it identifies: ``"transaction"``, ``"lease"`` or ``"event"``.
    """

    def __init__(self, kind: str, id: str, message: str):
        self.kind = kind
        self.id = id
        super().__init__(message)


class MissingDependencyError(AuctionError, ImportError):
    """An optional feature needs a package that is not installed.

    Attributes:
        feature: what needs it (``"plotting"``).
        package: the missing package.
        install: how to install it.
    """

    def __init__(self, feature: str, package: str, install: str):
        self.feature = feature
        self.package = package
        self.install = install
        super().__init__(f"{feature} needs {package}: {install}", name=package)
