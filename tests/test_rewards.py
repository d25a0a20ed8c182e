"""Reward splits: largest remainder by provider, work and availability weights, payouts.

Goldens: the Alabama-paradox vector (6, 6, 2) at totals 10 and 11. Properties: shares sum
exactly, each within one unit of its quota, zero weight gets zero, permuting the providers
changes no share, and the array version agrees with the mapping version.
"""

from __future__ import annotations

import time
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from auction.errors import AuctionOverflowError
from auction.money import split_largest_remainder
from auction.settlement.ledger import Account, AccountKind, Ledger, TxKind
from auction.settlement.rewards import (
    availability_weights,
    quotas,
    reward_transaction,
    split_rewards,
    split_rewards_array,
    work_weights,
    work_weights_array,
)
from auction.settlement.tokenomics import (
    DecayingEmission,
    InvalidTokenomicsError,
    mint_transaction,
)

ids = st.text(alphabet="abcdefgh0123", min_size=1, max_size=4)
int_weights = st.one_of(st.integers(0, 10), st.integers(0, 2**64))
weights_maps = st.dictionaries(ids, int_weights, min_size=1, max_size=12)
totals = st.one_of(st.integers(0, 1000), st.integers(0, 2**70))


# -- goldens --------------------------------------------------------------------------------------
def test_alabama_paradox_golden() -> None:
    """Weights 6, 6, 2: of 10 the third gets 2, of 11 only 1 (the Alabama paradox)."""
    w = {"a": 6, "b": 6, "c": 2}
    assert quotas(10, w) == {"a": Fraction(30, 7), "b": Fraction(30, 7), "c": Fraction(10, 7)}
    # quotas 4.2857, 4.2857, 1.4286: floors 4, 4, 1; the spare unit to the largest part (.4286)
    assert split_rewards(10, w) == {"a": 4, "b": 4, "c": 2}
    # quotas 4.7143, 4.7143, 1.5714: floors 4, 4, 1; two spare units to .7143 and .7143
    assert quotas(11, w) == {"a": Fraction(33, 7), "b": Fraction(33, 7), "c": Fraction(11, 7)}
    assert split_rewards(11, w) == {"a": 5, "b": 5, "c": 1}
    assert split_rewards_array(10, [6, 6, 2]).tolist() == [4, 4, 2]
    assert split_rewards_array(11, [6, 6, 2]).tolist() == [5, 5, 1]


def test_ties_go_to_the_smallest_id_whatever_the_order() -> None:
    assert split_rewards(1, {"b": 1, "a": 1}) == {"b": 0, "a": 1}
    assert split_rewards(2, {"z": 1, "m": 1, "a": 1}) == {"z": 0, "m": 1, "a": 1}
    assert split_rewards_array(1, [1, 1], ids=["b", "a"]).tolist() == [0, 1]
    assert split_rewards_array(1, [1, 1]).tolist() == [1, 0]  # without ids: earlier index


def test_fraction_and_decimal_weights() -> None:
    # GPU-hours 1/3 and 2/3 are weights 1 and 2
    assert split_rewards(10, {"a": Fraction(1, 3), "b": Fraction(2, 3)}) == {"a": 3, "b": 7}
    mixed: dict[str, Any] = {"a": Decimal("0.5"), "b": "1.5"}  # a decimal string works too
    assert split_rewards(10, mixed) == {"a": 3, "b": 7}  # quotas 2.5 and 7.5: tie to "a"
    assert split_rewards(0, {}) == {}
    assert split_rewards(0, {"a": 0}) == {"a": 0}


# -- properties -------------------------------------------------------------------------------
@given(total=totals, weights=weights_maps.filter(lambda w: any(w.values())), data=st.data())
def test_split_properties(total: int, weights: dict[str, int], data: st.DataObject) -> None:
    shares = split_rewards(total, weights)
    assert list(shares) == list(weights)
    assert sum(shares.values()) == total
    q = quotas(total, weights)
    for k, share in shares.items():
        assert type(share) is int
        assert q[k] - 1 < share < q[k] + 1
        if weights[k] == 0:
            assert share == 0
    # order independence: a permutation of the mapping changes no share
    keys = data.draw(st.permutations(list(weights)))
    assert split_rewards(total, {k: weights[k] for k in keys}) == shares
    # the tie rule is money.split_largest_remainder's over ids in sorted order
    order = sorted(weights)
    want = split_largest_remainder(total, [weights[k] for k in order])
    assert [shares[k] for k in order] == want
    # the array version agrees, with or without ids
    arr_ids = np.array(list(weights))
    w = [weights[k] for k in weights]
    if max(w) < 2**63 and total < 2**63:
        got = split_rewards_array(total, np.array(w, dtype=np.int64), ids=arr_ids)
        assert got.tolist() == list(shares.values())
        assert split_rewards_array(total, w).tolist() == split_largest_remainder(total, w)


@given(
    total=totals,
    weights=st.dictionaries(ids, st.fractions(0, 100, max_denominator=50), min_size=1,
                            max_size=8).filter(lambda w: any(w.values())),
    scale=st.integers(1, 10**6),
)
def test_scaling_weights_changes_nothing(
    total: int, weights: dict[str, Fraction], scale: int
) -> None:
    shares = split_rewards(total, weights)
    assert split_rewards(total, {k: w * scale for k, w in weights.items()}) == shares
    assert sum(shares.values()) == total


@given(
    total=st.integers(0, 2**63 - 1),
    w=st.lists(st.one_of(st.integers(0, 3), st.integers(0, 2**63 - 1)), min_size=1, max_size=30),
)
def test_array_exact_beyond_int64_products(total: int, w: list[int]) -> None:
    """Products total x weight and sums of weights beyond int64 stay exact."""
    if not any(w):
        w[0] = 1
    assert split_rewards_array(total, w).tolist() == split_largest_remainder(total, w)


def test_array_many_providers_is_fast() -> None:
    rng = np.random.default_rng(7)
    n = 100_000
    hours = rng.integers(0, 720 * 3600, n)  # GPU-seconds in a 30-day epoch
    power = rng.choice([82, 165, 312, 989], n)  # TFLOPS-like figures of four GPU models
    names = np.array([f"prov-{i:06d}" for i in rng.permutation(n)])
    w = work_weights_array(hours, power)
    total = 190_142 * 10**8  # Render's monthly node-operator emission, in 1e-8 units
    t0 = time.perf_counter()
    shares = split_rewards_array(total, w, ids=names)
    elapsed = time.perf_counter() - t0
    assert elapsed < 1.0
    assert int(shares.sum()) == total
    s = int(w.sum())
    q = w.astype(object) * total
    assert (np.abs(shares.astype(object) * s - q) < s).all()  # within a unit of quota
    # the mapping version gives the same shares
    by_id = split_rewards(total, dict(zip(names.tolist(), w.tolist(), strict=True)))
    assert [by_id[k] for k in names.tolist()] == shares.tolist()


# -- weights ------------------------------------------------------------------------------------
def test_work_weights_golden() -> None:
    # Nosana/Aethir: an H100 (power 4) for 10 hours outweighs a 4090 (power 1) for 30 hours
    hours: dict[str, int | Fraction] = {
        "h100-node": 10, "4090-node": 30, "idle": 0, "partial": Fraction(90, 60)
    }
    power = {"h100-node": 4, "4090-node": 1, "idle": 4, "partial": 2, "unused": 9}
    w = work_weights(hours, power)
    assert w == {"h100-node": 40, "4090-node": 30, "idle": 0, "partial": 3}
    assert split_rewards(7300, w) == {"h100-node": 4000, "4090-node": 3000, "idle": 0,
                                      "partial": 300}
    with pytest.raises(InvalidTokenomicsError, match="no power") as e:
        work_weights({"x": 1}, {})
    assert (e.value.field, e.value.value) == ("gpu_power", "x")


def test_availability_weights() -> None:
    online = {"a": 720, "b": 720, "c": 100}
    busy = {"a": 700, "b": 0}
    w = availability_weights(online, {"a": 1, "b": 1, "c": 3}, busy_hours=busy)
    assert w == {"a": 20, "b": 720, "c": 300}
    with pytest.raises(InvalidTokenomicsError) as e:
        availability_weights({"a": 1}, {"a": 1}, busy_hours={"a": 2})
    assert e.value.field == "busy_hours['a']"
    with pytest.raises(InvalidTokenomicsError):
        availability_weights({"a": 1}, {"a": 1}, busy_hours={"z": 1})


def test_work_weights_array_overflow() -> None:
    assert work_weights_array([2, 3], [5, 0]).tolist() == [10, 0]
    with pytest.raises(AuctionOverflowError):
        work_weights_array([2**40, 1], [2**30, 1])
    with pytest.raises(InvalidTokenomicsError) as e:
        work_weights_array([1.5], [1])
    assert e.value.field == "gpu_hours"
    with pytest.raises(InvalidTokenomicsError):
        work_weights_array([1, 2], [1])


# -- validation ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("total", "weights", "field"),
    [
        (-1, {"a": 1}, "total"),
        (1.0, {"a": 1}, "total"),
        (True, {"a": 1}, "total"),
        (1, {"a": 0.5}, "weights['a']"),
        (1, {"a": True}, "weights['a']"),
        (1, {"a": -1}, "weights['a']"),
        (1, {"": 1}, "weights key"),
        (1, {" a": 1}, "weights key"),
        (1, {3: 1}, "weights key"),
        (1, {"a": 0, "b": 0}, "weights"),
        (1, {}, "weights"),
        (1, [("a", 1)], "weights"),
    ],
)
def test_split_validation(total: object, weights: object, field: str) -> None:
    with pytest.raises(InvalidTokenomicsError) as e:
        split_rewards(total, weights)  # type: ignore[arg-type]
    assert e.value.field == field


def test_split_array_validation() -> None:
    cases: list[tuple[list[Any], str]] = [
        ([0.5, 1.0], "weights"),
        ([[1, 2]], "weights"),
        ([True, False], "weights"),
        ([1, -2], "weights[1]"),
        ([0, 0], "weights"),
    ]
    for bad, field in cases:
        with pytest.raises(InvalidTokenomicsError) as e:
            split_rewards_array(5, bad)
        assert e.value.field == field
    with pytest.raises(InvalidTokenomicsError) as e:
        split_rewards_array(5, [1, 2], ids=["a"])
    assert e.value.field == "ids"
    with pytest.raises(AuctionOverflowError):
        split_rewards_array(2**63, [1])
    with pytest.raises(InvalidTokenomicsError) as e:
        split_rewards(1, {"a": 1}, method="webster")
    assert e.value.field == "method"
    assert split_rewards_array(0, np.array([], dtype=np.int64)).tolist() == []


# -- ledger -------------------------------------------------------------------------------------
def test_epoch_emission_paid_by_work() -> None:
    """Render-style epoch: mint the epoch's emission into the pool, pay it out by work."""
    ledger = Ledger()
    emission = DecayingEmission(9_126_804, 0, 12)  # 760,567 a month
    pool = Account(AccountKind.EMISSIONS_POOL)
    work = work_weights({"n1": 100, "n2": 50, "n3": 0}, {"n1": 1, "n2": 3, "n3": 2})
    for epoch in range(3):
        amount = emission.emission(epoch)
        ledger.post(mint_transaction(f"emit-{epoch}", pool, "RENDER", amount, time=epoch))
        shares = split_rewards(amount, work)
        assert shares == {"n1": 304_227, "n2": 456_340, "n3": 0}  # 304,226.8 and 456,340.2
        tx = reward_transaction(f"pay-{epoch}", shares, currency="RENDER", time=epoch)
        assert len(tx.postings) == 3  # the pool and two providers: zero shares left out
        ledger.post(tx)
        assert ledger.balance(pool, "RENDER") == 0
    assert ledger.supply("RENDER") == 3 * 760_567
    assert ledger.balance(Account(AccountKind.PROVIDER, "n2"), "RENDER") == 3 * 456_340


def test_reward_transaction_edge_cases() -> None:
    zero = reward_transaction("z", {"a": 0, "b": 0}, currency="RENDER")
    assert sum(p.amount for p in zero.postings) == 0
    assert not zero.net()
    treasury = Account(AccountKind.TREASURY)
    tx = reward_transaction("t", {"a": 5}, currency="AKT", source=treasury,
                            kind=AccountKind.PROVIDER_STAKE)
    assert tx.net() == {(treasury, "AKT"): -5,
                        (Account(AccountKind.PROVIDER_STAKE, "a"), "AKT"): 5}
    assert tx.meta.kind is TxKind.REWARD
    for shares, kwargs, field in [
        ({}, {"currency": "AKT"}, "shares"),
        ({"a": -1}, {"currency": "AKT"}, "shares['a']"),
        ({"a": 1}, {"currency": "bad currency"}, "currency"),
    ]:
        with pytest.raises(InvalidTokenomicsError) as e:
            reward_transaction("x", shares, **kwargs)  # type: ignore[arg-type]
        assert e.value.field == field
