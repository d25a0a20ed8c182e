"""Money as integers in the smallest currency unit.

Prices are never floats: a price of 2.71 USD per GPU-hour at scale 6 (micro-dollars) is the
integer 2_710_000. These helpers convert decimal strings to and from that form and refuse to
round silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, InvalidOperation

from auction.errors import InvalidOrderError, InvalidValueError

__all__ = ["MAX_MONEY", "format_units", "split_largest_remainder", "to_units"]

#: Largest amount a single price may hold: prices live in int64 arrays.
MAX_MONEY = 2**63 - 1


def to_units(amount: str | int | Decimal, scale: int, *, field: str = "amount") -> int:
    """Convert a decimal amount to an integer number of smallest units.

    Args:
        amount: a decimal string such as ``"2.71"``, a `Decimal`, or an int (whole units).
            Floats are refused: they cannot represent most decimal prices exactly.
        scale: number of decimal places of the smallest unit (6 for micro-dollars).
        field: name used in the error message.

    Returns:
        ``amount * 10**scale`` as an int.

    Raises:
        InvalidOrderError: the amount is not a finite decimal, is negative, has more decimal
            places than `scale` (it would have to be rounded), or does not fit in int64.
    """
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 0:
        raise InvalidOrderError("scale", scale, "must be an int >= 0")
    if isinstance(amount, bool | float):
        raise InvalidOrderError(field, amount, "pass a decimal string, not a float or bool")
    if isinstance(amount, int):
        value = Decimal(amount)
    elif isinstance(amount, Decimal):
        value = amount
    elif isinstance(amount, str):
        try:
            value = Decimal(amount.strip())
        except InvalidOperation:
            raise InvalidOrderError(field, amount, "is not a decimal number") from None
    else:
        raise InvalidOrderError(field, amount, "must be a decimal string, Decimal or int")
    if not value.is_finite():
        raise InvalidOrderError(field, amount, "must be finite")
    if value < 0:
        raise InvalidOrderError(field, amount, "must be >= 0")
    # Exact integer arithmetic on the digits: Decimal operations round to the context precision
    # (28 digits) and overflow or underflow on large exponents, which would round silently.
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite
    text = "".join(map(str, digits)).lstrip("0")
    if not text:
        return 0
    stripped = text.rstrip("0")
    exponent += scale + len(text) - len(stripped)
    if exponent < 0:
        raise InvalidOrderError(
            field, amount, f"has more than {scale} decimal places; refusing to round"
        )
    if len(stripped) + exponent > len(str(MAX_MONEY)) or (
        units := int(stripped + "0" * exponent)
    ) > MAX_MONEY:
        raise InvalidOrderError(field, amount, "does not fit in a 64-bit integer at this scale")
    return units


def format_units(units: int, scale: int) -> str:
    """Format an integer amount of smallest units as an exact decimal string."""
    if scale == 0:
        return str(units)
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), 10**scale)
    return f"{sign}{whole}.{frac:0{scale}d}"


def split_largest_remainder(total: int, weights: Sequence[int]) -> list[int]:
    """Split `total` in proportion to integer `weights` by the largest remainder method.

    Shares sum exactly to `total`; each is within one unit of its exact quota; a zero weight
    gets zero. The leftover units go to the largest fractional remainders, ties to the
    earlier weight. A positive total cannot be split over weights that are all zero.

    Raises:
        InvalidValueError: a negative total or weight, or a positive total over zero weights.
    """
    if total < 0:
        raise InvalidValueError("total", total, "must be non-negative")
    for i, w in enumerate(weights):
        if w < 0:
            raise InvalidValueError(f"weights[{i}]", w, "must be non-negative")
    s = sum(weights)
    if s == 0:
        if total:
            raise InvalidValueError("sum(weights)", s,
                                    f"cannot split a positive total ({total}) over zero weights")
        return [0] * len(weights)
    shares = [total * w // s for w in weights]
    rems = [total * w % s for w in weights]
    left = total - sum(shares)
    for k in sorted(range(len(weights)), key=lambda k: (-rems[k], k))[:left]:
        shares[k] += 1
    return shares
