"""`split_largest_remainder` against Hamilton's method computed with exact fractions."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auction.errors import InvalidValueError
from auction.money import split_largest_remainder


def hamilton(total: int, weights: list[int]) -> list[int]:
    """Each weight's quota total * w / sum, rounded down; the units left over go one each to
    the largest fractional parts, ties to the earlier weight."""
    s = sum(weights)
    quotas = [Fraction(total * w, s) for w in weights]
    floors = [int(q) for q in quotas]  # quotas are >= 0: int() rounds down
    ranked = sorted(range(len(weights)), key=lambda k: (floors[k] - quotas[k], k))
    for k in ranked[: total - sum(floors)]:
        floors[k] += 1
    return floors


small = st.integers(0, 10)
amounts = st.one_of(st.integers(0, 1000), st.integers(0, 2**70))


@settings(deadline=None)
@given(
    total=amounts,
    weights=st.lists(st.one_of(small, st.integers(0, 2**64)), min_size=1, max_size=12).filter(
        lambda ws: sum(ws) > 0
    ),
)
def test_matches_hamilton(total: int, weights: list[int]) -> None:
    shares = split_largest_remainder(total, weights)
    assert shares == hamilton(total, weights)
    assert all(type(x) is int for x in shares)
    assert sum(shares) == total
    s = sum(weights)
    for share, w in zip(shares, weights, strict=True):
        quota = Fraction(total * w, s)
        assert quota - 1 < share < quota + 1
        if w == 0:
            assert share == 0


@settings(deadline=None)
@given(total=st.integers(0, 50), n=st.integers(1, 8), w=st.integers(1, 5))
def test_equal_weights_favour_earlier(total: int, n: int, w: int) -> None:
    shares = split_largest_remainder(total, [w] * n)
    base, extra = divmod(total, n)
    assert shares == [base + 1] * extra + [base] * (n - extra)


@pytest.mark.parametrize(
    ("total", "weights", "want"),
    [
        (10, [1, 1, 1], [4, 3, 3]),
        (25, [4, 36], [3, 22]),  # quotas 2.5 and 22.5: the tie goes to the earlier weight
        (9, [3, 12], [2, 7]),  # 1.8 and 7.2
        (5, [3, 8], [1, 4]),  # 1.36 and 3.64
        (7, [0, 2, 0, 5], [0, 2, 0, 5]),
        (0, [3, 4], [0, 0]),
        (0, [0, 0], [0, 0]),
        (0, [], []),
        (3, [2**64, 2**64 + 1, 1], [1, 2, 0]),  # 1.4999.., 1.5, 0.0..
        (2**70, [1, 2], [2**70 // 3, 2**71 // 3 + 1]),  # remainders 1/3, 2/3
    ],
)
def test_hand_examples(total: int, weights: list[int], want: list[int]) -> None:
    assert split_largest_remainder(total, weights) == want
    assert sum(want) == total


@pytest.mark.parametrize(
    ("total", "weights", "message", "field"),
    [
        (-1, [1], "non-negative", "total"),
        (1, [-1, 2], "non-negative", "weights[0]"),
        (1, [0, 0], "zero weights", "sum(weights)"),
        (1, [], "zero weights", "sum(weights)"),
    ],
)
def test_refuses_bad_input(total: int, weights: list[int], message: str, field: str) -> None:
    with pytest.raises(InvalidValueError, match=message) as info:  # a ValueError too
        split_largest_remainder(total, weights)
    assert isinstance(info.value, ValueError)
    assert info.value.field == field
