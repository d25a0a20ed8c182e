"""Money helpers: exact decimal <-> smallest-unit conversion, never rounding silently."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from auction.errors import AuctionError, InvalidOrderError
from auction.money import MAX_MONEY, format_units, to_units

scales = st.integers(min_value=0, max_value=24)


@pytest.mark.parametrize(
    ("amount", "scale", "expected"),
    [
        ("2.71", 6, 2_710_000),
        ("2.71", 2, 271),
        ("0", 6, 0),
        ("0.000", 0, 0),
        ("0e-99", 2, 0),
        ("-0", 3, 0),
        ("0.000001", 6, 1),
        ("2.7100000", 2, 271),
        ("  3.5 ", 1, 35),
        ("1e3", 0, 1000),
        ("123.45e3", 0, 123_450),
        ("1E-2", 2, 1),
        ("007.50", 2, 750),
        (5, 2, 500),
        (0, 0, 0),
        (Decimal("1.5"), 1, 15),
        (Decimal("1.50000000000000000000000000000000000"), 1, 15),
        (str(MAX_MONEY), 0, MAX_MONEY),
        ("9223372036854.775807", 6, MAX_MONEY),
        (MAX_MONEY, 0, MAX_MONEY),
    ],
)
def test_to_units_exact(amount: Any, scale: int, expected: int) -> None:
    got = to_units(amount, scale)
    assert got == expected
    assert type(got) is int


@pytest.mark.parametrize(
    ("amount", "scale"),
    [
        # floats and bools are refused whatever their value
        (2.71, 2),
        (2.0, 2),
        (0.0, 0),
        (float("nan"), 2),
        (float("inf"), 2),
        (np.float64(1.0), 2),
        (True, 2),
        (False, 2),
        # not finite
        ("NaN", 2),
        ("nan", 2),
        ("sNaN", 2),
        ("inf", 2),
        ("-Infinity", 2),
        (Decimal("NaN"), 2),
        (Decimal("Infinity"), 2),
        # negative
        ("-1", 2),
        ("-0.01", 2),
        (-1, 0),
        (Decimal("-0.5"), 1),
        # more decimals than the scale: refuse to round
        ("2.715", 2),
        ("0.0000001", 6),
        ("1.5", 0),
        ("1e-999999999", 6),
        ("1.00000000000000000000000000001", 0),  # 30 significant digits: Decimal would round
        ("2.7100000000000000000000000001", 6),
        # too large for int64
        ("9223372036854775808", 0),
        ("9223372036854.775808", 6),
        (MAX_MONEY + 1, 0),
        ("1e999999999", 6),
        ("9" * 40, 0),
        (1, 10**6),
        # not a decimal at all
        ("abc", 2),
        ("", 2),
        ("   ", 2),
        ("2,71", 2),
        ("1/2", 2),
        (None, 2),
        (b"2.71", 2),
        ([2], 2),
        (np.int64(3), 2),
    ],
)
def test_to_units_refuses(amount: Any, scale: int) -> None:
    with pytest.raises(InvalidOrderError) as info:
        to_units(amount, scale, field="price")
    err = info.value
    assert isinstance(err, ValueError)
    assert isinstance(err, AuctionError)
    assert err.field == "price"
    assert err.value is amount
    assert "price" in str(err)


def test_default_field_name() -> None:
    with pytest.raises(InvalidOrderError) as info:
        to_units("x", 2)
    assert info.value.field == "amount"


@pytest.mark.parametrize("scale", [-1, True, 1.0, "2", None])
def test_bad_scale(scale: Any) -> None:
    with pytest.raises(InvalidOrderError) as info:
        to_units("1", scale, field="price")
    assert info.value.field == "scale"
    assert info.value.value is scale


@pytest.mark.parametrize(
    ("units", "scale", "text"),
    [
        (0, 0, "0"),
        (0, 2, "0.00"),
        (271, 2, "2.71"),
        (2_710_000, 6, "2.710000"),
        (5, 3, "0.005"),
        (MAX_MONEY, 0, str(MAX_MONEY)),
        (-271, 2, "-2.71"),
        (-5, 3, "-0.005"),
    ],
)
def test_format_units(units: int, scale: int, text: str) -> None:
    assert format_units(units, scale) == text


@given(units=st.integers(min_value=0, max_value=MAX_MONEY), scale=scales)
def test_format_then_parse_round_trips(units: int, scale: int) -> None:
    text = format_units(units, scale)
    assert to_units(text, scale) == units
    assert Decimal(text) == Decimal(units).scaleb(-scale)


@given(
    whole=st.integers(min_value=0, max_value=10**12),
    frac=st.text(alphabet="0123456789", max_size=8),
    scale=st.integers(min_value=0, max_value=10),
)
def test_parse_then_format_round_trips(whole: int, frac: str, scale: int) -> None:
    text = f"{whole}.{frac}" if frac else str(whole)
    significant = frac.rstrip("0")
    units = whole * 10**scale + (int(significant.ljust(scale, "0")) if significant else 0)
    if len(significant) > scale or units > MAX_MONEY:
        with pytest.raises(InvalidOrderError):
            to_units(text, scale)
    else:
        got = to_units(text, scale)
        assert got == units
        assert Decimal(format_units(got, scale)) == Decimal(text)
        assert to_units(Decimal(text), scale) == got


@given(n=st.integers(min_value=0, max_value=10**25), scale=st.integers(0, 20))
def test_int_amounts_are_whole_units(n: int, scale: int) -> None:
    expected = n * 10**scale
    if expected > MAX_MONEY:
        with pytest.raises(InvalidOrderError):
            to_units(n, scale)
    else:
        assert to_units(n, scale) == expected
        assert to_units(str(n), scale) == expected


@given(x=st.floats(allow_nan=True, allow_infinity=True))
def test_no_float_is_accepted(x: float) -> None:
    with pytest.raises(InvalidOrderError) as info:
        to_units(x, 6, field="max_price")  # type: ignore[arg-type]
    assert info.value.field == "max_price"
    assert info.value.value is x or (math.isnan(x) and math.isnan(info.value.value))


@given(
    digits=st.integers(min_value=1, max_value=10**40),
    exponent=st.integers(min_value=-60, max_value=60),
    scale=scales,
)
def test_decimal_conversion_is_exact(digits: int, exponent: int, scale: int) -> None:
    """Whatever the size of the number, the result is exact or an error, never a rounding."""
    value = Decimal(f"{digits}e{exponent}")
    exact = digits * 10 ** (exponent + scale) if exponent + scale >= 0 else None
    if exponent + scale < 0 and digits % 10 ** (-(exponent + scale)) == 0:
        exact = digits // 10 ** (-(exponent + scale))
    if exact is None or exact > MAX_MONEY:
        with pytest.raises(InvalidOrderError):
            to_units(value, scale)
    else:
        assert to_units(value, scale) == exact
        assert to_units(str(value), scale) == exact
