"""Tier schedules: validation, boundaries, monotonicity, exact pricing, requests and offers."""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from auction import Market, Offer, OrderBook, Request
from auction.errors import InvalidOrderError
from auction.money import MAX_MONEY
from auction.reputation.tiers import RENDER_TIERS, Tier, TierSchedule

STAKED = TierSchedule(
    [
        Tier(name="bronze", min_score=0.0),
        Tier(name="silver", min_score=0.4, multiplier="1.5", min_stake=100),
        Tier(name="gold", min_score=0.4, multiplier=Fraction(7, 3), min_stake=1000, min_age=30),
        Tier(name="platinum", min_score=0.95, multiplier=Decimal("4.25"), min_stake=1000,
             min_age=90),
    ]
)


def round_half_up(x: Fraction) -> int:
    return math.floor(x + Fraction(1, 2))


# -- construction ------------------------------------------------------------------------------
def test_render_schedule_numbers() -> None:
    assert RENDER_TIERS.names == ("economy", "priority", "trusted")
    assert [t.multiplier for t in RENDER_TIERS] == [1, 2, 8]
    assert [t.min_score for t in RENDER_TIERS] == [0.0, 0.5, 0.9]
    assert all(t.score_only for t in RENDER_TIERS)


def test_multiplier_forms_are_exact() -> None:
    for value in (3, "3", "6/2", Decimal("3.0"), Fraction(3), np.int64(3)):
        assert Tier(name="t", multiplier=value).multiplier == Fraction(3)
    assert Tier(name="t", multiplier="0.1").multiplier == Fraction(1, 10)
    assert STAKED["platinum"].multiplier == Fraction(17, 4)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": " gold"}, "name"),
        ({"name": 3}, "name"),
        ({"min_score": -0.1}, "tier 't' min_score"),
        ({"min_score": 1.5}, "tier 't' min_score"),
        ({"min_score": math.nan}, "tier 't' min_score"),
        ({"min_score": True}, "tier 't' min_score"),
        ({"min_score": "0.5"}, "tier 't' min_score"),
        ({"multiplier": 2.5}, "tier 't' multiplier"),
        ({"multiplier": True}, "tier 't' multiplier"),
        ({"multiplier": 0}, "tier 't' multiplier"),
        ({"multiplier": "-1"}, "tier 't' multiplier"),
        ({"multiplier": "nan"}, "tier 't' multiplier"),
        ({"multiplier": Decimal("inf")}, "tier 't' multiplier"),
        ({"multiplier": "two"}, "tier 't' multiplier"),
        ({"multiplier": None}, "tier 't' multiplier"),
        ({"min_stake": -1}, "tier 't' min_stake"),
        ({"min_stake": 2**63}, "tier 't' min_stake"),
        ({"min_stake": 1.0}, "tier 't' min_stake"),
        ({"min_age": -1}, "tier 't' min_age"),
    ],
)
def test_bad_tier_names_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidOrderError) as info:
        Tier(**{"name": "t", **kwargs})  # type: ignore[arg-type]
    assert info.value.field == field


@pytest.mark.parametrize(
    ("tiers", "field"),
    [
        ([], "tiers"),
        ("abc", "tiers"),
        ([Tier(name="a"), "b"], "tiers[1]"),
        ([Tier(name="a"), Tier(name="a", min_score=0.5)], "tiers[1].name"),
        ([Tier(name="a", min_score=0.5), Tier(name="b", min_score=0.4)], "tiers[1].min_score"),
        ([Tier(name="a", min_stake=5), Tier(name="b", min_score=0.4)], "tiers[1].min_stake"),
        ([Tier(name="a", min_age=5), Tier(name="b", min_score=0.4)], "tiers[1].min_age"),
        ([Tier(name="a", multiplier=2), Tier(name="b", min_score=0.4)], "tiers[1].multiplier"),
        ([Tier(name="a"), Tier(name="b", multiplier=2)], "tiers[1]"),  # unreachable "a"
    ],
)
def test_bad_schedule_names_the_field(tiers: object, field: str) -> None:
    with pytest.raises(InvalidOrderError) as info:
        TierSchedule(tiers)  # type: ignore[arg-type]
    assert info.value.field == field


def test_bad_tag_prefix() -> None:
    with pytest.raises(InvalidOrderError) as info:
        TierSchedule([Tier(name="a")], tag_prefix="")
    assert info.value.field == "tag_prefix"


# -- membership --------------------------------------------------------------------------------
def test_threshold_exactly_met_qualifies() -> None:
    assert RENDER_TIERS.tier_of(0.5) == RENDER_TIERS["priority"]
    assert RENDER_TIERS.tier_of(math.nextafter(0.5, 0.0)) == RENDER_TIERS["economy"]
    assert RENDER_TIERS.tier_of(0.9).name == "trusted"  # type: ignore[union-attr]
    assert RENDER_TIERS.tier_of(1).name == "trusted"  # type: ignore[union-attr]
    assert RENDER_TIERS.tiers_of([0.0, math.nextafter(0.5, 0.0), 0.5, 0.9, 1.0]).tolist() == [
        0, 0, 1, 2, 2]


def test_every_threshold_must_hold() -> None:
    assert STAKED.tier_of(1.0).name == "bronze"  # type: ignore[union-attr]
    assert STAKED.tier_of(1.0, stake=100).name == "silver"  # type: ignore[union-attr]
    assert STAKED.tier_of(1.0, stake=10**6, age=29).name == "silver"  # type: ignore[union-attr]
    assert STAKED.tier_of(0.94, stake=1000, age=90).name == "gold"  # type: ignore[union-attr]
    assert STAKED.tier_of(0.95, stake=1000, age=90).name == "platinum"  # type: ignore[union-attr]
    high = TierSchedule([Tier(name="only", min_score=0.3)])
    assert high.tier_of(0.2) is None
    assert high.index_of(0.2) == -1
    assert high.tiers_of([0.2, 0.3]).tolist() == [-1, 0]


def test_lookup_by_name_and_position() -> None:
    assert STAKED[0] is STAKED["bronze"]
    assert STAKED[-1].name == "platinum"
    assert STAKED.index("gold") == 2
    assert STAKED.index(STAKED["gold"]) == 2
    assert len(STAKED) == 4
    assert [t.name for t in STAKED] == list(STAKED.names)
    with pytest.raises(InvalidOrderError) as info:
        STAKED.index("diamond")
    assert info.value.field == "tier"
    with pytest.raises(InvalidOrderError):
        STAKED.index(Tier(name="gold"))  # same name, different tier


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ((math.nan,), "score"),
        ((1.01,), "score"),
        ((0.5, -1), "stake"),
        ((0.5, 1.0), "stake"),
        ((0.5, 0, -3), "age"),
    ],
)
def test_bad_lookup_names_the_field(args: tuple[object, ...], field: str) -> None:
    with pytest.raises(InvalidOrderError) as info:
        STAKED.tier_of(*args)  # type: ignore[arg-type]
    assert info.value.field == field


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"scores": [0.1, math.nan]}, "scores[1]"),
        ({"scores": [0.1, -0.5]}, "scores[1]"),
        ({"scores": ["a"]}, "scores"),
        ({"scores": [0.1], "stakes": [1.0]}, "stakes"),
        ({"scores": [0.1], "stakes": [True]}, "stakes"),
        ({"scores": [0.1, 0.2], "stakes": [1]}, "stakes"),
        ({"scores": [0.1], "stakes": [-1]}, "stakes[0]"),
        ({"scores": [0.1], "ages": np.array([2**64 - 1], dtype=np.uint64)}, "ages"),
    ],
)
def test_bad_arrays_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidOrderError) as info:
        STAKED.tiers_of(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


scores = st.floats(0.0, 1.0)
counts = st.integers(0, 2000)


@given(rows=st.lists(st.tuples(scores, counts, counts), max_size=40))
def test_vectorized_agrees_with_scalar(rows: list[tuple[float, int, int]]) -> None:
    s = np.array([r[0] for r in rows], dtype=np.float64)
    k = np.array([r[1] for r in rows], dtype=np.int64)
    a = np.array([r[2] for r in rows], dtype=np.int64)
    got = STAKED.tiers_of(s, k, a)
    assert got.dtype == np.int64
    assert got.tolist() == [STAKED.index_of(*r) for r in rows]
    for r, i in zip(rows, got.tolist(), strict=True):  # the highest tier whose thresholds hold
        assert i == max(j for j, t in enumerate(STAKED) if t.qualifies(*r))
    assert RENDER_TIERS.tiers_of(s).tolist() == [RENDER_TIERS.index_of(r[0]) for r in rows]


@given(a=st.tuples(scores, counts, counts), b=st.tuples(scores, counts, counts))
def test_better_provider_never_lower_tier(
    a: tuple[float, int, int], b: tuple[float, int, int]
) -> None:
    lo = tuple(min(x, y) for x, y in zip(a, b, strict=True))
    hi = tuple(max(x, y) for x, y in zip(a, b, strict=True))
    i_lo, i_hi = STAKED.index_of(*lo), STAKED.index_of(*hi)  # type: ignore[arg-type]
    assert i_lo <= i_hi
    assert STAKED[i_lo].multiplier <= STAKED[i_hi].multiplier  # never paid less


# -- pricing -----------------------------------------------------------------------------------
@given(
    base=st.one_of(st.integers(0, 10**7), st.integers(0, MAX_MONEY // 20)),
    num=st.integers(1, 50),
    den=st.integers(1, 50),
)
def test_price_is_base_times_multiplier_rounded_half_up(base: int, num: int, den: int) -> None:
    tier = Tier(name="t", multiplier=Fraction(num, den))
    exact = base * Fraction(num, den)
    got = tier.price(base)
    assert type(got) is int
    assert got == round_half_up(exact)
    assert abs(got - exact) <= Fraction(1, 2)


def test_price_rounding_examples() -> None:
    half = Tier(name="t", multiplier="2.5")
    assert [half.price(b) for b in (0, 1, 2, 3)] == [0, 3, 5, 8]  # 2.5 -> 3, 7.5 -> 8
    third = Tier(name="t", multiplier=Fraction(1, 3))
    assert [third.price(b) for b in (1, 2, 3)] == [0, 1, 1]
    assert RENDER_TIERS.price(2_710_000, "trusted") == 21_680_000
    assert Tier(name="t", multiplier=1).price(MAX_MONEY) == MAX_MONEY


def test_price_errors() -> None:
    with pytest.raises(InvalidOrderError) as info:
        RENDER_TIERS.price(MAX_MONEY // 4, "trusted")
    assert info.value.field == "base_price"
    for bad in (-1, 1.0, True, MAX_MONEY + 1):
        with pytest.raises(InvalidOrderError) as info:
            RENDER_TIERS.price(bad, "economy")  # type: ignore[arg-type]
        assert info.value.field == "base_price"


@given(
    rows=st.lists(
        st.tuples(st.one_of(st.integers(0, 10**6), st.integers(0, MAX_MONEY // 5)),
                  st.integers(0, 3)),
        max_size=20,
    )
)
def test_vectorized_prices_agree_with_scalar(rows: list[tuple[int, int]]) -> None:
    base = np.array([r[0] for r in rows], dtype=np.int64)
    idx = np.array([r[1] for r in rows], dtype=np.int64)
    got = STAKED.prices(base, idx)  # max multiplier 4.25: MAX_MONEY // 5 never overflows
    assert got.dtype == np.int64
    assert got.tolist() == [STAKED[i].price(b) for b, i in rows]


def test_vectorized_price_errors() -> None:
    with pytest.raises(InvalidOrderError) as info:
        RENDER_TIERS.prices([1, 2], [0, -1])
    assert info.value.field == "tiers[1]"
    with pytest.raises(InvalidOrderError) as info:
        RENDER_TIERS.prices([1, MAX_MONEY // 2], [2, 2])
    assert info.value.field == "base_prices[1]"
    with pytest.raises(InvalidOrderError) as info:
        RENDER_TIERS.prices([1.5], [0])
    assert info.value.field == "base_prices"
    assert RENDER_TIERS.prices([], []).tolist() == []


# -- requests and offers -----------------------------------------------------------------------
def _offer(i: int, provider: str, price: int, tags: frozenset[str] = frozenset()) -> Offer:
    return Offer(id=f"o{i}", provider=provider, gpu_model="H100", gpus=8, price=price,
                 region="us-east", vram_gb=80, tags=tags)


REPUTATION = {"p-low": 0.2, "p-mid": 0.5, "p-top": 0.97}


def test_min_reputation_admits_exactly_the_tier_and_above() -> None:
    offers = [_offer(i, p, 1_000_000) for i, p in enumerate(["p-low", "p-mid", "p-top", "p-new"])]
    requests = [
        Request(id=f"r-{t.name}", tenant="t", gpus=1, max_price=10**9,
                min_reputation=RENDER_TIERS.min_reputation(t))
        for t in RENDER_TIERS
    ]
    market = Market(OrderBook([*offers, *requests]), REPUTATION)
    pairs = market.pairs()
    snap = market.snapshot
    for row in range(snap.n_requests):
        need = RENDER_TIERS.index(snap.request(row).id.removeprefix("r-"))
        got = {snap.offer(int(c)).provider
               for c in pairs.offers[pairs.indptr[row]:pairs.indptr[row + 1]]}
        want = {o.provider for o in offers
                if RENDER_TIERS.index_of(REPUTATION.get(o.provider, 0.0)) >= need}
        assert got == want


def test_min_reputation_refuses_stake_and_age_tiers() -> None:
    assert STAKED.min_reputation("bronze") == 0.0
    with pytest.raises(InvalidOrderError, match="tier:silver") as info:
        STAKED.min_reputation("silver")
    assert info.value.field == "tier"


def test_tiered_offers_price_and_tag() -> None:
    forged = frozenset({"soc2", "tier:trusted"})
    offers = [_offer(0, "p-low", 1_000_001), _offer(1, "p-mid", 1_000_001, forged),
              _offer(2, "p-top", 333_333), _offer(3, "p-new", 5)]
    out = RENDER_TIERS.tiered_offers(offers, REPUTATION)
    assert [o.price for o in out] == [1_000_001, 2_000_002, 2_666_664, 5]
    assert [sorted(o.tags) for o in out] == [
        ["tier:economy"],
        ["soc2", "tier:economy", "tier:priority"],  # the forged tier tag is gone
        ["tier:economy", "tier:priority", "tier:trusted"],
        ["tier:economy"],  # unknown provider: score 0.0
    ]
    assert [o.id for o in out] == ["o0", "o1", "o2", "o3"]
    assert offers[1].tags == forged  # inputs untouched


def test_tier_tags_express_stake_and_age() -> None:
    providers = {"a": (1.0, 50, 0), "b": (0.5, 1000, 40), "c": (0.99, 5000, 100)}
    offers = [_offer(i, p, 100) for i, p in enumerate(providers)]
    out = STAKED.tiered_offers(
        offers,
        {p: v[0] for p, v in providers.items()},
        stakes={p: v[1] for p, v in providers.items()},
        ages={p: v[2] for p, v in providers.items()},
    )
    assert [o.price for o in out] == [100, 233, 425]
    request = Request(id="r", tenant="t", gpus=1, max_price=10**6,
                      required_tags=frozenset({STAKED.tag("gold")}))
    market = Market(OrderBook([*out, request]))
    pairs = market.pairs()
    assert sorted(market.snapshot.offer(int(c)).provider for c in pairs.offers) == ["b", "c"]


def test_tiered_offers_drop_providers_below_the_lowest_tier() -> None:
    schedule = TierSchedule([Tier(name="ok", min_score=0.3)], tag_prefix="level/")
    out = schedule.tiered_offers([_offer(0, "p-low", 7), _offer(1, "p-mid", 7)], REPUTATION)
    assert [(o.id, sorted(o.tags)) for o in out] == [("o1", ["level/ok"])]
    assert schedule.tag("ok") == "level/ok"


def test_tiered_offers_validate() -> None:
    with pytest.raises(InvalidOrderError) as info:
        RENDER_TIERS.tiered_offers([_offer(0, "p", 1)], {"p": 1.5})
    assert info.value.field == "scores['p']"
    with pytest.raises(InvalidOrderError) as info:
        STAKED.tiered_offers([_offer(0, "p", 1)], {}, stakes={"p": -1})
    assert info.value.field == "stakes['p']"
    with pytest.raises(InvalidOrderError) as info:
        RENDER_TIERS.tiered_offers(["x"], {})  # type: ignore[list-item]
    assert info.value.field == "offers[0]"
    with pytest.raises(InvalidOrderError) as info:
        RENDER_TIERS.tiered_offers([_offer(0, "p", MAX_MONEY // 2)], {"p": 1.0})
    assert info.value.field == "base_price"
