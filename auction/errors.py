"""Typed errors raised by the library.

Every error the library raises on purpose is an `AuctionError`, defined here (settlement,
reputation and the conformance suite subclass these); each is also the builtin exception a
caller would expect (`InvalidValueError` a `ValueError`, `MissingDependencyError` an
`ImportError`...), so both ``except AuctionError`` and ``except ValueError`` work.
`tests/test_errors_family.py` holds the library to it. Every error that comes from bad input
names the offending field and value, so a caller can report it without parsing the message.

A leaf module: it imports nothing from the package, so kernels may raise these.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

# `Alternative` (a typed alternative, not an error) is public as `auction.mechanisms.Alternative`.
__all__ = [
    "AuctionError",
    "AuctionOverflowError",
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
    "MechanismNotFoundError",
    "MemoryLimitError",
    "MissingDependencyError",
    "PartitionError",
    "SolverError",
    "TimeLimitError",
    "UnknownBookSchemaError",
    "UnknownLeaseError",
    "UnknownLogSchemaError",
    "UnknownOrderError",
    "UnknownPaymentRuleError",
    "UnknownSchemaError",
    "UnsupportedMarketError",
]


class AuctionError(Exception):
    """Base class of every error this library raises on purpose.

    Every one pickles (so it crosses process pools) with its attributes.
    """

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (type(self), self.args, dict(self.__dict__)))


def _restore(cls: type[AuctionError], args: tuple[Any, ...], state: dict[str, Any]
             ) -> AuctionError:
    err = cls.__new__(cls)
    Exception.__init__(err, *args)
    err.__dict__.update(state)
    return err


# Longest text of a value an error message shows; longer values are cut in the middle.
_MAX_SHOWN = 300


def _shown(value: Any) -> str:
    """`repr(value)` for an error message: cut in the middle past `_MAX_SHOWN` characters, and
    never failing (an int too long for `str` shows its size; the value itself stays on the
    error's attributes)."""
    try:
        text = repr(value)
    except Exception:  # e.g. int -> str past sys.get_int_max_str_digits()
        size = f" of {value.bit_length()} bits" if isinstance(value, int) else ""
        return f"<{type(value).__name__}{size}>"
    if len(text) <= _MAX_SHOWN:
        return text
    half = (_MAX_SHOWN - 5) // 2
    return f"{text[:half]} ... {text[-half:]}"


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
        super().__init__(f"invalid {field}={_shown(value)}{where}: {reason}")


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


class InvalidTypeError(AuctionError, TypeError):
    """An argument of the wrong type: ``{field} must be {expected}, not {type}``.

    Attributes:
        field: the argument's name.
        value: the argument, as given.
        expected: what it must be.
    """

    def __init__(self, field: str, value: Any, expected: str):
        self.field = field
        self.value = value
        self.expected = expected
        super().__init__(f"{field} must be {expected}, not {type(value).__name__}")


class InvalidOptionError(InvalidValueError):
    """A mechanism option failed validation: ``invalid {option}={value!r} in mechanism
    {name!r}: {reason}``; `field` is the option's name."""

    holder = "mechanism"

    def __init__(self, field: str, value: Any, reason: str, *, mechanism: str | None = None):
        self.mechanism = mechanism
        super().__init__(field, value, reason, within=mechanism)


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


_ALTERNATIVE = re.compile(r"^\s*([^\s(]+)\s*(?:\((.*)\))?\s*$")


class Alternative(str):
    """A mechanism that can clear a market another refused: a registry name and the options
    to build it with (``auction.mechanisms.resolve(alt)`` builds it).

    A `str` subclass reading ``"assignment (shape='shared')"`` (or just the name without
    options), so it prints, joins and compares as the text it always was.

    Attributes:
        name: the registry name.
        options: keyword arguments for the mechanism's constructor.
    """

    name: str
    options: Mapping[str, Any]

    def __new__(cls, name: str, options: Mapping[str, Any] | None = None) -> Alternative:
        opts = dict(options or {})
        text = name if not opts else (
            f"{name} ({', '.join(f'{k}={v!r}' for k, v in opts.items())})"
        )
        self = super().__new__(cls, text)
        self.name = name
        self.options = opts
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (Alternative, (self.name, self.options))

    @classmethod
    def parse(cls, value: str | tuple[str, Mapping[str, Any]] | Alternative) -> Alternative:
        """An `Alternative` from itself, a ``(name, options)`` pair or its text,
        ``"name"`` or ``"name (key=literal, ...)"``."""
        if isinstance(value, Alternative):
            return value
        if isinstance(value, tuple):
            name, options = value
            return cls(str(name), options)
        m = _ALTERNATIVE.match(str(value))
        if m is None or not m.group(2):
            return cls(str(value).strip())
        try:
            call = ast.parse(f"f({m.group(2)})", mode="eval").body
            if not isinstance(call, ast.Call) or call.args:
                return cls(str(value).strip())
            opts = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords if kw.arg}
        except (SyntaxError, ValueError):
            return cls(str(value).strip())
        return cls(m.group(1), opts)


def _alternatives(values: Iterable[Any]) -> tuple[Alternative, ...]:
    return tuple(Alternative.parse(v) for v in values)


class UnsupportedMarketError(AuctionError, ValueError):
    """A mechanism cannot clear this market; `alternatives` names mechanisms that can.

    Attributes:
        mechanism: the mechanism that refused.
        reason: why.
        alternatives: `Alternative` entries (registry name and options), each a str too.
    """

    def __init__(
        self,
        mechanism: str,
        reason: str,
        alternatives: Iterable[str | tuple[str, Mapping[str, Any]]] = (),
    ):
        self.mechanism = mechanism
        self.reason = reason
        self.alternatives = _alternatives(alternatives)
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



class GangSolverError(SolverError):
    """A MILP solver's solution fails the exact integer check (never returned silently)."""


class TimeLimitError(AuctionError, TimeoutError):
    """A mechanism ran out of its ``time_limit`` before it had any valid allocation.

    (With a valid allocation in hand it returns it instead, with status ``time_limit``.)

    Attributes:
        mechanism: the mechanism.
        time_limit: the limit, in seconds.
        stage: what it was doing when the time ran out.
    """

    def __init__(self, mechanism: str, time_limit: float, stage: str):
        self.mechanism = mechanism
        self.time_limit = time_limit
        self.stage = stage
        super().__init__(
            f"mechanism {mechanism!r} reached its time_limit of {time_limit:g} s during "
            f"{stage}, with no valid allocation; raise time_limit= or clear a smaller market"
        )



class MemoryLimitError(AuctionError, MemoryError):
    """A mechanism would hold more memory than its ``max_memory`` allows; raised before it
    allocates, so nothing is half built and the process is not killed by the system.

    Attributes:
        mechanism: the mechanism.
        what: what it would build, e.g. ``"286,000,000 eligible pairs"``.
        estimate: the bytes it would hold.
        limit: ``max_memory``, in bytes.
        advice: the ways out.
    """

    def __init__(self, mechanism: str, what: str, estimate: int, limit: int, advice: str):
        self.mechanism = mechanism
        self.what = what
        self.estimate = int(estimate)
        self.limit = int(limit)
        self.advice = advice
        self._init = (mechanism, what, estimate, limit, advice)
        super().__init__(
            f"mechanism {mechanism!r} would hold about {self.estimate / 2**30:.3g} GiB for "
            f"{what}, past its max_memory of {self.limit / 2**30:.3g} GiB: {advice}"
        )

    def __reduce__(self) -> tuple[Any, ...]:  # MemoryError's __new__ needs the constructor
        return (type(self), self._init)



class ConstraintSyntaxError(InvalidOrderError):
    """A constraint expression (or a Golem filter) cannot be parsed, or is too long or deep.

    The message names the order (when known), the 0-based character position and what was
    expected there, with a short excerpt of the text around that position.

    Attributes:
        field: the field holding the expression (``"constraints"`` by default).
        value: the whole expression text, as given.
        text: the same text.
        position: 0-based index of the character where parsing failed.
        expected: what the parser expected at `position`.
        order_id: the id of the order holding the expression, when known.
    """

    def __init__(
        self,
        text: str,
        position: int,
        expected: str,
        *,
        order_id: str | None = None,
        field: str = "constraints",
    ):
        self.text = text
        self.position = position
        self.expected = expected
        lo = max(0, position - 30)
        hi = min(len(text), position + 30)
        excerpt = ("..." if lo else "") + text[lo:hi] + ("..." if hi < len(text) else "")
        found = repr(text[position]) if position < len(text) else "the end"
        reason = f"at position {position}: expected {expected}, found {found}"
        super().__init__(field, excerpt, reason, order_id=order_id)
        self.value = text

class UnknownSchemaError(InvalidValueError):
    """A saved document's header names a format or version this library cannot read.

    Every JSON document of the library opens with ``{"format": NAME, "version": N}``, checked
    on read; documents of the older single key, ``"schema": "NAME/N"``, still read. `field`
    is the offending key (``"format"``, ``"version"`` or ``"schema"``), `value` what the
    document says there.

    Attributes:
        supported: the formats and versions this library reads, as ``"NAME/N"``.
        newer: the version is above every one this library reads (upgrade the library).
    """

    holder = "document"

    def __init__(self, value: Any, supported: Sequence[str], *, document: str | None = None,
                 field: str = "schema", newer: bool = False):
        self.supported = tuple(supported)
        self.newer = newer
        reason = f"this library reads {', '.join(self.supported)}"
        if newer:
            reason += "; the document is newer than this library: upgrade auction"
        # by name, not super(): subclasses mix in errors of other holders (`UnknownBookSchemaError`)
        InvalidValueError.__init__(self, field, value, reason, within=document)


class UnknownBookSchemaError(UnknownSchemaError, InvalidOrderError):
    """A JSON order book names a format or version this library cannot read: an
    `UnknownSchemaError`, and an `InvalidOrderError` as every other fault of a book file.

    `order_id` is None: the fault is the document's, not an order's.
    """

    order_id = None


class PartitionError(AuctionError, ValueError):
    """A market cannot be cleared in parts: the mechanism couples them, or a declared
    partition would cut a request. `reason` says why.

    Attributes:
        mechanism: the mechanism (or ``"partition"`` for a bad declaration).
        reason: why the parts cannot clear on their own.
    """

    def __init__(self, mechanism: str, reason: str):
        self.mechanism = mechanism
        self.reason = reason
        super().__init__(f"{mechanism!r} cannot clear in parts: {reason}")

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


class UnknownLogSchemaError(UnknownSchemaError, EventLogError):
    """A live-market event log or snapshot names a format or version this library cannot
    read: an `UnknownSchemaError`, and an `EventLogError` as every other fault of a log.
    `field` is ``"format"`` or ``"version"`` (``"v"`` in a log of the older form)."""



class DuplicateIdError(AuctionError, ValueError):
    """An id was used before: an order id already in the book, or the id of a transaction
    posted, a lease opened or an event recorded, for other content (for those, the same
    content again is a retry, never an error).

    The one type every duplicate id raises (each as a subclass that names its fields), so
    ``except DuplicateIdError`` handles any of them, order ids included.

    Attributes:
        id: the id.
        kind: what it identifies: ``"order"``, ``"transaction"``, ``"lease"`` or ``"event"``.
    """

    def __init__(self, kind: str, id: str, message: str):
        self.kind = kind
        self.id = id
        super().__init__(message)


class DuplicateOrderError(DuplicateIdError, KeyError):
    """An order id is already in the book (or twice in one batch): the `DuplicateIdError`
    of kind ``"order"`` (still a `KeyError`, as it always was).

    Attributes:
        order_id: the id (also `id`).
    """

    def __init__(self, order_id: str):
        self.order_id = order_id
        super().__init__("order", order_id, order_id)

    def __str__(self) -> str:
        return f"order id {self.order_id!r} is already in the book"


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

    def __reduce__(self) -> tuple[Any, ...]:  # ImportError keeps `name` outside __dict__
        return (type(self), (self.feature, self.package, self.install))

