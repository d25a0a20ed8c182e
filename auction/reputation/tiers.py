"""Reputation tiers: Render-style multi-tier pricing from score, stake and age thresholds.

A `TierSchedule` is an ordered list of `Tier` objects, lowest first. A provider belongs to the
highest tier whose thresholds (score, and optionally stake and age) it meets, each ``>=``: a
value exactly at a threshold qualifies. Thresholds never decrease up the schedule, so meeting a tier
means meeting every tier below it. Each tier carries an exact price multiplier (a `Fraction`);
`Tier.price` applies it to an integer price, rounding half up in smallest units.

A request demands a minimum tier in one of two ways: `TierSchedule.min_reputation` gives the
``Request.min_reputation`` score that is equivalent when tiers depend on score only; tags from
`TierSchedule.tiered_offers` (``"tier:<name>"`` for a provider's tier and every tier below)
express any tier, stake and age thresholds included, through ``Request.required_tags``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal
from fractions import Fraction
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from auction.errors import InvalidOrderError
from auction.money import MAX_MONEY
from auction.orders import Offer

__all__ = ["MAX_THRESHOLD", "RENDER_TIERS", "Tier", "TierSchedule"]

IntArray = npt.NDArray[np.int64]

#: Largest stake or age threshold: vectorized lookups hold stakes and ages in int64 arrays.
MAX_THRESHOLD = 2**63 - 1


# -- validation helpers -----------------------------------------------------------------------
def _name(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidOrderError(field, value, f"must be a str, not {type(value).__name__}")
    if not value or value != value.strip() or "\0" in value:
        raise InvalidOrderError(
            field, value, "must be non-empty, without surrounding spaces or NUL characters"
        )
    return str(value)


def _score(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidOrderError(field, value, "must be a number in [0, 1]")
    try:
        out = float(value)
    except OverflowError:  # an int or Fraction too large for a float
        out = math.inf
    if not math.isfinite(out) or not 0.0 <= out <= 1.0:
        raise InvalidOrderError(field, value, "must be in [0, 1]")
    return out


def _count(value: Any, field: str, hi: int | None = MAX_THRESHOLD) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        kind = "a bool" if isinstance(value, bool) else type(value).__name__
        raise InvalidOrderError(field, value, f"must be an int, not {kind}")
    out = int(value)
    if out < 0 or (hi is not None and out > hi):
        raise InvalidOrderError(field, value, f"must be in [0, {hi}]" if hi else "must be >= 0")
    return out


def _multiplier(value: Any, field: str = "multiplier") -> Fraction:
    if isinstance(value, bool | float):
        raise InvalidOrderError(
            field, value, "must be exact: an int, Fraction, Decimal or decimal string, not a "
            + ("bool" if isinstance(value, bool) else "float")
        )
    try:
        if isinstance(value, str):
            out = Fraction(value.strip())
        elif isinstance(value, Decimal):
            out = Fraction(value)  # raises on NaN and infinities
        elif isinstance(value, numbers.Rational):
            out = Fraction(int(value.numerator), int(value.denominator))
        else:
            raise InvalidOrderError(
                field, value, "must be an int, Fraction, Decimal or decimal string"
            )
    except (ValueError, OverflowError, ZeroDivisionError):
        raise InvalidOrderError(field, value, "is not a finite rational number") from None
    if out <= 0:
        raise InvalidOrderError(field, value, "must be > 0")
    return out


def _as_given(value: Any) -> Any:
    """Converter that keeps the value: lets ``multiplier`` take an int or str (checked later)."""
    return value


def _round_half_up(numerator: int, denominator: int) -> int:
    """round(numerator / denominator), halves up, for numerator >= 0 and denominator > 0."""
    return (2 * numerator + denominator) // (2 * denominator)


# -- tiers --------------------------------------------------------------------------------------
@attrs.frozen(kw_only=True)
class Tier:
    """One tier: the thresholds a provider must meet and the price multiplier it earns.

    Attributes:
        name: unique in its schedule; also names the tag ``"<prefix><name>"``.
        min_score: least reputation score, in [0, 1].
        multiplier: exact price multiplier, > 0: an int, `Fraction`, `Decimal` or a decimal
            or fraction string (``"2.5"``, ``"5/2"``); stored as a `Fraction`. Floats are
            refused, as for money.
        min_stake: least stake, an int >= 0 in the caller's unit (whole tokens, say).
        min_age: least age, an int >= 0 in the caller's unit (days, epochs).
    """

    name: str
    min_score: float = 0.0
    multiplier: Fraction = attrs.field(default=Fraction(1), converter=_as_given)
    min_stake: int = 0
    min_age: int = 0

    def __attrs_post_init__(self) -> None:
        s = object.__setattr__
        name = _name(self.name, "name")
        s(self, "name", name)
        s(self, "min_score", _score(self.min_score, f"tier {name!r} min_score"))
        s(self, "multiplier", _multiplier(self.multiplier, f"tier {name!r} multiplier"))
        s(self, "min_stake", _count(self.min_stake, f"tier {name!r} min_stake"))
        s(self, "min_age", _count(self.min_age, f"tier {name!r} min_age"))

    @property
    def score_only(self) -> bool:
        """True when the tier has no stake or age threshold."""
        return self.min_stake == 0 and self.min_age == 0

    def qualifies(self, score: float, stake: int = 0, age: int = 0) -> bool:
        """Whether a provider meets all three thresholds (each ``>=``)."""
        return (
            _score(score, "score") >= self.min_score
            and _count(stake, "stake", None) >= self.min_stake
            and _count(age, "age", None) >= self.min_age
        )

    def price(self, base_price: int) -> int:
        """``base_price x multiplier``, rounded to the nearest smallest unit, halves up.

        The error is at most half a smallest unit; an exact half goes to the provider (the
        tenant pays it). Raises `InvalidOrderError` when the base price is not an int in
        [0, MAX_MONEY] or the result exceeds MAX_MONEY.
        """
        base = _count(base_price, "base_price", MAX_MONEY)
        m = self.multiplier
        out = _round_half_up(base * m.numerator, m.denominator)
        if out > MAX_MONEY:
            raise InvalidOrderError(
                "base_price", base_price, f"x {m} in tier {self.name!r} exceeds MAX_MONEY"
            )
        return out


def _as_tiers(value: Iterable[Tier]) -> tuple[Tier, ...]:
    if isinstance(value, Tier | str | bytes) or not isinstance(value, Iterable):
        raise InvalidOrderError("tiers", value, "must be a sequence of Tier, lowest first")
    return tuple(value)


@attrs.frozen
class TierSchedule:
    """Tiers in order, lowest first, each at least as demanding and as well paid as the last.

    Validated at construction: at least one tier; every member a `Tier`; names unique;
    ``min_score``, ``min_stake``, ``min_age`` and ``multiplier`` each non-decreasing up the
    schedule (a better provider is never paid less); no two consecutive tiers with the same
    thresholds (the lower one could never be reached).

    Attributes:
        tiers: the tiers, lowest first.
        tag_prefix: prefix of the tier tags that `tiered_offers` puts on offers.
    """

    tiers: tuple[Tier, ...] = attrs.field(converter=_as_tiers)
    tag_prefix: str = "tier:"

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "tag_prefix", _name(self.tag_prefix, "tag_prefix"))
        if not self.tiers:
            raise InvalidOrderError("tiers", self.tiers, "must hold at least one tier")
        seen: dict[str, int] = {}
        for i, t in enumerate(self.tiers):
            if not isinstance(t, Tier):
                raise InvalidOrderError(f"tiers[{i}]", t, "must be a Tier")
            if t.name in seen:
                raise InvalidOrderError(
                    f"tiers[{i}].name", t.name, f"duplicates the name of tiers[{seen[t.name]}]"
                )
            seen[t.name] = i
            if i == 0:
                continue
            prev = self.tiers[i - 1]
            for field in ("min_score", "min_stake", "min_age", "multiplier"):
                if getattr(t, field) < getattr(prev, field):
                    raise InvalidOrderError(
                        f"tiers[{i}].{field}", getattr(t, field),
                        f"is below tiers[{i - 1}] ({prev.name!r}: {getattr(prev, field)}); "
                        "tiers go lowest first and thresholds and multipliers never decrease",
                    )
            if _thresholds(t) == _thresholds(prev):
                raise InvalidOrderError(
                    f"tiers[{i}]", t.name,
                    f"has the same thresholds as {prev.name!r}, which could never be reached",
                )

    # -- lookup -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.tiers)

    def __iter__(self) -> Iterator[Tier]:
        return iter(self.tiers)

    def __getitem__(self, key: int | str) -> Tier:
        """A tier by position (0 is the lowest) or by name."""
        return self.tiers[self.index(key) if isinstance(key, str) else key]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tiers)

    def index(self, tier: Tier | str) -> int:
        """Position of a tier (given by name or as a member), 0 for the lowest."""
        name = tier.name if isinstance(tier, Tier) else tier
        for i, t in enumerate(self.tiers):
            if t.name == name and (not isinstance(tier, Tier) or t == tier):
                return i
        raise InvalidOrderError("tier", tier, f"is not in the schedule {list(self.names)}")

    def tier_of(self, score: float, stake: int = 0, age: int = 0) -> Tier | None:
        """The highest tier whose thresholds all hold (``>=``), or None below the lowest."""
        i = self.index_of(score, stake, age)
        return self.tiers[i] if i >= 0 else None

    def index_of(self, score: float, stake: int = 0, age: int = 0) -> int:
        """Position of `tier_of` (0 is the lowest tier), -1 below the lowest tier."""
        score = _score(score, "score")
        stake = _count(stake, "stake", None)
        age = _count(age, "age", None)
        best = -1
        for i, t in enumerate(self.tiers):  # qualifying tiers form a prefix
            if score < t.min_score or stake < t.min_stake or age < t.min_age:
                break
            best = i
        return best

    def tiers_of(
        self,
        scores: npt.ArrayLike,
        stakes: npt.ArrayLike | None = None,
        ages: npt.ArrayLike | None = None,
    ) -> IntArray:
        """`index_of` over arrays: an int64 array of tier positions, -1 below the lowest tier.

        Args:
            scores: floats in [0, 1].
            stakes: ints >= 0 (int64), the shape of `scores`; None means all 0.
            ages: ints >= 0 (int64), the shape of `scores`; None means all 0.

        Each threshold list is sorted, so the number of tiers a value meets is one
        `numpy.searchsorted`; a provider's tier count is the least of its three counts.
        """
        s = np.asarray(scores)
        if s.dtype.kind not in "iuf":
            raise InvalidOrderError("scores", scores, "must be an array of numbers in [0, 1]")
        s = s.astype(np.float64)
        bad = ~(np.isfinite(s) & (s >= 0.0) & (s <= 1.0))
        if bad.any():
            at = tuple(int(x) for x in np.argwhere(bad)[0])
            raise InvalidOrderError(f"scores{list(at)}", s[at].item(), "must be in [0, 1]")
        count = np.asarray(
            np.searchsorted(
                np.array([t.min_score for t in self.tiers], dtype=np.float64), s, side="right"
            ),
            dtype=np.int64,
        )
        for field, values, attr in (("stakes", stakes, "min_stake"), ("ages", ages, "min_age")):
            if values is None:
                continue
            v = _int_array(values, field, s.shape)
            thresholds = np.array([getattr(t, attr) for t in self.tiers], dtype=np.int64)
            np.minimum(count, np.searchsorted(thresholds, v, side="right"), out=count)
        count -= 1
        return count

    # -- pricing ------------------------------------------------------------------------------
    def price(self, base_price: int, tier: Tier | str) -> int:
        """`Tier.price` of the named tier: base x multiplier, rounded half up."""
        return self[self.index(tier)].price(base_price)

    def prices(self, base_prices: npt.ArrayLike, tiers: npt.ArrayLike) -> IntArray:
        """`price` over arrays: base prices (ints in [0, MAX_MONEY]) and tier positions.

        Exact: int64 arithmetic when no intermediate can overflow, Python ints otherwise.
        Raises `InvalidOrderError` on a position outside the schedule (-1 included) or a
        result above MAX_MONEY.
        """
        base = _int_array(base_prices, "base_prices", None)
        idx = _int_array(tiers, "tiers", base.shape, lo=None)
        out_of_range = (idx < 0) | (idx >= len(self.tiers))
        if out_of_range.any():
            at = tuple(int(x) for x in np.argwhere(out_of_range)[0])
            raise InvalidOrderError(
                f"tiers{list(at)}", idx[at].item(), f"is not a tier position in [0, {len(self)})"
            )
        num_of = [t.multiplier.numerator for t in self.tiers]
        den_of = [t.multiplier.denominator for t in self.tiers]
        top = 2 * int(base.max(initial=0)) * max(num_of) + max(den_of)
        if top <= np.iinfo(np.int64).max:
            num = np.array(num_of, dtype=np.int64)[idx]
            den = np.array(den_of, dtype=np.int64)[idx]
            out = (2 * base * num + den) // (2 * den)
        else:  # object arrays: the same formula in Python ints
            num_o = np.array(num_of, dtype=object)[idx]
            den_o = np.array(den_of, dtype=object)[idx]
            exact = (2 * base.astype(object) * num_o + den_o) // (2 * den_o)
            over = exact > MAX_MONEY
            if np.any(over):
                at = tuple(int(x) for x in np.argwhere(over)[0])
                raise InvalidOrderError(
                    f"base_prices{list(at)}", base[at].item(),
                    f"x {self.tiers[int(idx[at])].multiplier} exceeds MAX_MONEY",
                )
            out = exact.astype(np.int64)
        return np.asarray(out, dtype=np.int64)

    # -- requests and offers ------------------------------------------------------------------
    def tag(self, tier: Tier | str) -> str:
        """The tag that marks offers of providers at this tier or above: put it in a request's
        ``required_tags`` to demand the tier."""
        return f"{self.tag_prefix}{self[self.index(tier)].name}"

    def min_reputation(self, tier: Tier | str) -> float:
        """The ``Request.min_reputation`` that admits exactly the providers at `tier` or above.

        Exact when the tier has no stake or age threshold (then no tier below it has one
        either), given the market's reputation scores are the ones tiers were computed from.
        A tier with a stake or age threshold raises `InvalidOrderError`: a score alone cannot
        express it; require `tag` on offers built by `tiered_offers` instead.
        """
        t = self[self.index(tier)]
        if not t.score_only:
            raise InvalidOrderError(
                "tier", t.name,
                f"has a stake or age threshold that a score cannot express; "
                f"require the tag {self.tag(t)!r} on offers from tiered_offers instead",
            )
        return t.min_score

    def tiered_offers(
        self,
        offers: Iterable[Offer],
        scores: Mapping[str, float],
        stakes: Mapping[str, int] | None = None,
        ages: Mapping[str, int] | None = None,
    ) -> list[Offer]:
        """Offers priced and tagged by their provider's tier, ready for a new `OrderBook`.

        Each offer's ``price`` is taken as the base (lowest-tier) price and becomes
        ``price(base, tier)``; its tags gain ``tag(t)`` for its tier and every tier below, and
        lose any tag that already starts with `tag_prefix` (a provider cannot claim a tier).
        Offers of providers below the lowest tier are left out: no tier prices them.
        Providers missing from `scores` score 0.0 (the market's default reputation); missing
        from `stakes` or `ages`, 0.

        Typical use::

            book = OrderBook([*schedule.tiered_offers(old.offers(), scores), *old.requests()])
        """
        offers = list(offers)
        for i, o in enumerate(offers):
            if not isinstance(o, Offer):
                raise InvalidOrderError(f"offers[{i}]", o, "must be an Offer")
        providers = sorted({o.provider for o in offers})
        score = np.array(
            [_score(scores.get(p, 0.0), f"scores[{p!r}]") for p in providers], dtype=np.float64
        )
        extra: list[IntArray | None] = []
        for field, values in (("stakes", stakes), ("ages", ages)):
            extra.append(
                None if values is None else np.array(
                    [_count(values.get(p, 0), f"{field}[{p!r}]") for p in providers],
                    dtype=np.int64,
                )
            )
        level = dict(zip(providers, self.tiers_of(score, *extra).tolist(), strict=True))
        tags = [self.tag(t) for t in self.tiers]
        out = []
        for o in offers:
            i = level[o.provider]
            if i < 0:
                continue
            kept = {t for t in o.tags if not t.startswith(self.tag_prefix)}
            out.append(
                attrs.evolve(
                    o, price=self.tiers[i].price(o.price), tags=frozenset(kept | set(tags[: i + 1]))
                )
            )
        return out


def _thresholds(t: Tier) -> tuple[float, int, int]:
    return (t.min_score, t.min_stake, t.min_age)


def _int_array(
    values: npt.ArrayLike, field: str, shape: tuple[int, ...] | None, lo: int | None = 0
) -> IntArray:
    """An int64 array of `values` (ints only, >= lo unless lo is None, of `shape` if given)."""
    a = np.asarray(values)
    if a.dtype.kind not in "iu" and not (a.size == 0 and a.dtype.kind == "f"):
        raise InvalidOrderError(field, values, "must be an array of ints (not floats or bools)")
    if a.dtype.kind == "u" and a.size and int(a.max()) > MAX_THRESHOLD:
        raise InvalidOrderError(field, int(a.max()), f"must be <= {MAX_THRESHOLD}")
    a = a.astype(np.int64)
    if shape is not None and a.shape != shape:
        raise InvalidOrderError(field, a.shape, f"must have shape {shape}, that of the first array")
    if lo is not None and a.size and (bad := a < lo).any():
        at = tuple(int(x) for x in np.argwhere(bad)[0])
        raise InvalidOrderError(f"{field}{list(at)}", a[at].item(), f"must be >= {lo}")
    return a


RENDER_TIERS = TierSchedule(
    [
        Tier(name="economy", min_score=0.0, multiplier=1),
        Tier(name="priority", min_score=0.5, multiplier=2),
        Tier(name="trusted", min_score=0.9, multiplier=8),
    ]
)
"""A Render-like schedule. Render Network prices work in OctaneBench-hours (OBh) in three
tiers; one credit buys 200 OBh in Tier 3 (economy), 100 OBh in Tier 2 (priority) and, by
its published work multipliers (Tier 1 x1, Tier 2 x2-4, Tier 3 x8-16), 1/8 to 1/16 of the
Tier 3 work in Tier 1 (trusted). Per unit of work, priority costs 2x economy and trusted 8x
(the low end of 8-16x, consistent with Tier 2 at 4x). Render publishes no numeric score
thresholds; 0.5 and 0.9 are this library's choice.
"""
