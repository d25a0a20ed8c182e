"""Declared, validated mechanism options (attrs fields), after scikit-learn's parameter
constraints: each option states its type and range once; a bad value raises
`InvalidOptionError` naming the option, the value and the mechanism.

Use them in a mechanism class body::

    @attrs.frozen
    class MyAuction(MechanismBase):
        name: ClassVar[str] = "my-auction"
        tags = MechanismTags(...)
        theta: int = options.integer(10, minimum=2)
        backend: str = options.choice("numba", ("numba", "python"))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from auction.errors import InvalidOptionError
from auction.result import FrozenDict

__all__ = ["choice", "flag", "integer", "mapping", "number", "seconds", "text"]

Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]
_REAL = (int, float, np.integer, np.floating)


def _to_int(value: Any) -> Any:
    """ints (numpy's too) as int; anything else as given, for the validator to refuse."""
    return int(value) if isinstance(value, int | np.integer) and not isinstance(value, bool) \
        else value


def _to_float(value: Any) -> Any:
    """real numbers as float; anything else as given, for the validator to refuse."""
    return float(value) if isinstance(value, _REAL) and not isinstance(value, bool) else value


def _fail(instance: Any, attribute: attrs.Attribute[Any], value: Any, reason: str) -> None:
    raise InvalidOptionError(attribute.name, value, reason,
                             mechanism=getattr(instance, "name", None) or None)


def choice(default: str, choices: Sequence[str], **kw: Any) -> Any:
    """A name among `choices`."""
    allowed = tuple(choices)

    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value not in allowed:
            _fail(instance, attribute, value, f"{attribute.name} must be one of {allowed}")

    return attrs.field(default=default, validator=check, kw_only=True, **kw)


def flag(default: bool) -> Any:
    """A bool."""

    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not isinstance(value, bool):
            _fail(instance, attribute, value, f"{attribute.name} must be True or False")

    return attrs.field(default=default, validator=check, kw_only=True)


def integer(default: int, *, minimum: int | None = None, maximum: int | None = None) -> Any:
    """An int (not a bool) in [minimum, maximum]."""

    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if (isinstance(value, bool) or not isinstance(value, int | np.integer)
                or (minimum is not None and int(value) < minimum)
                or (maximum is not None and int(value) > maximum)):
            lo = "" if minimum is None else f" >= {minimum}"
            hi = "" if maximum is None else f" <= {maximum}"
            _fail(instance, attribute, value, f"{attribute.name} must be an int{lo}{hi}")

    return attrs.field(default=default, validator=check, kw_only=True,
                       converter=_to_int)


def number(default: float, *, minimum: float, maximum: float, closed_max: bool = False) -> Any:
    """A real number in [minimum, maximum) (or [minimum, maximum] with `closed_max`)."""

    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        ok = (not isinstance(value, bool) and isinstance(value, _REAL)
              and math.isfinite(float(value)) and minimum <= float(value)
              and (float(value) <= maximum if closed_max else float(value) < maximum))
        if not ok:
            bracket = "]" if closed_max else ")"
            _fail(instance, attribute, value,
                  f"{attribute.name} must be a number in [{minimum:g}, {maximum:g}{bracket}")

    return attrs.field(default=default, validator=check, kw_only=True,
                       converter=_to_float)


def seconds(default: float | None) -> Any:
    """A time limit in seconds: a finite number > 0, or None for no limit."""

    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None:
            return
        if (isinstance(value, bool) or not isinstance(value, _REAL)
                or not math.isfinite(float(value)) or not float(value) > 0):
            _fail(instance, attribute, value,
                  f"{attribute.name} must be a finite number of seconds > 0, or None")

    return attrs.field(default=default, validator=check, kw_only=True,
                       converter=_to_float)


def text(default: str) -> Any:
    """A non-empty string."""

    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not isinstance(value, str) or not value:
            _fail(instance, attribute, value, f"{attribute.name} must be a non-empty string")

    return attrs.field(default=default, validator=check, kw_only=True)


def mapping(allowed: Sequence[str]) -> Any:
    """A mapping of option names (among `allowed`) to values, default empty; kept read-only
    and left out of the hash."""
    names = tuple(allowed)

    def convert(value: Any) -> Any:
        return FrozenDict(value) if isinstance(value, Mapping) else value

    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not isinstance(value, Mapping):
            _fail(instance, attribute, value, f"{attribute.name} must be a mapping")
        unknown = sorted(set(value) - set(names))
        if unknown:
            _fail(instance, attribute, value,
                  f"{attribute.name} takes the keys {names}, not {unknown}")

    return attrs.field(factory=FrozenDict, converter=convert, validator=check, kw_only=True,
                       hash=False)
