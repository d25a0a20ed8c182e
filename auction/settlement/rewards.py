"""Reward splits: an epoch's emission or a pooled payment, shared in proportion to weights.

Weights measure what each provider contributed: work (GPU-hours x GPU power, as Nosana and
Aethir pay) or availability (idle online GPU-hours x power, as Render's availability pool).
The split is the **largest remainder method** (Hamilton's): each provider's exact quota
``total x weight / sum of weights`` is rounded down, and the units left over go one each to
the largest fractional parts. So:

* the shares sum exactly to the total: nothing is created or left over;
* each share is within one unit of its exact quota (strictly: ``quota - 1 < share < quota + 1``);
* a zero weight gets zero;
* ties between equal fractional parts go to the **smallest provider id** (``str`` order), so
  the split depends on the weights alone, never on the order of the input mapping.

The method has the *Alabama paradox*: a larger total can give a provider one unit less
(weights 6, 6, 2 get 4, 4, 2 of 10 but 5, 5, 1 of 11). Divisor methods (D'Hondt, Webster)
avoid it but can miss a quota by more than one unit, and no method both stays within quota
and avoids the related population paradox (Balinski and Young). Staying within one unit of
quota is the guarantee chosen here; the paradox costs a provider at most one unit.
docs/tokenomics.md works through the example.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from fractions import Fraction
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from auction.errors import AuctionOverflowError
from auction.money import MAX_MONEY, split_largest_remainder
from auction.settlement.ledger import (
    Account,
    AccountKind,
    InvalidSettlementError,
    Posting,
    Transaction,
    TxKind,
    TxMeta,
    currency_code,
)
from auction.settlement.tokenomics import InvalidTokenomicsError, _amount, _rational

__all__ = [
    "Weight",
    "availability_weights",
    "quotas",
    "reward_transaction",
    "split_rewards",
    "split_rewards_array",
    "work_weights",
    "work_weights_array",
]

IntArray: TypeAlias = npt.NDArray[np.int64]

#: A provider's weight: an exact non-negative number (int, `Fraction` or `Decimal`; decimal
#: strings are accepted too). Floats are refused.
Weight: TypeAlias = int | Fraction | Decimal

_METHODS = ("largest_remainder",)


# -- validation ---------------------------------------------------------------------------------
def _provider(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value or value != value.strip() or "\0" in value:
        raise InvalidTokenomicsError(
            field, value, "a provider id must be a non-empty str without surrounding spaces"
        )
    return str(value)


def _weight(value: Any, field: str) -> Fraction:
    out = _rational(value, field)
    if out < 0:
        raise InvalidTokenomicsError(field, value, "must be >= 0")
    return out


def _weights(weights: Any, field: str = "weights") -> dict[str, Fraction]:
    if not isinstance(weights, Mapping):
        raise InvalidTokenomicsError(field, weights, "must be a mapping of provider id to weight")
    return {
        _provider(k, f"{field} key"): _weight(v, f"{field}[{k!r}]") for k, v in weights.items()
    }


def _integer_weights(weights: Mapping[str, Fraction]) -> dict[str, int]:
    """The same proportions as ints: every weight times the lcm of the denominators."""
    scale = math.lcm(*(w.denominator for w in weights.values())) if weights else 1
    return {k: w.numerator * (scale // w.denominator) for k, w in weights.items()}


# -- splits -------------------------------------------------------------------------------------
def quotas(total: int, weights: Mapping[str, Weight]) -> dict[str, Fraction]:
    """Each provider's exact quota ``total x weight / sum of weights`` (what a share rounds)."""
    t = _amount(total, "total")
    ws = _weights(weights)
    s = sum(ws.values(), Fraction(0))
    if s == 0:
        if t:
            raise InvalidTokenomicsError("weights", dict(weights), "all zero: cannot split")
        return dict.fromkeys(ws, Fraction(0))
    return {k: t * w / s for k, w in ws.items()}


def split_rewards(
    total: int, weights: Mapping[str, Weight], *, method: str = "largest_remainder"
) -> dict[str, int]:
    """Split `total` smallest units among providers in proportion to `weights`.

    Largest remainder method (see the module docstring): shares sum to `total`, each is
    within one unit of its quota, zero weight gets zero, and ties go to the smallest
    provider id, so permuting `weights` changes no share.

    Args:
        total: the amount to split, an int >= 0 (an epoch's emission, a pooled payment).
        weights: provider id -> weight >= 0 (int, `Fraction`, `Decimal` or decimal string;
            not float). Fractional weights are scaled exactly to ints.
        method: ``"largest_remainder"``, the only method (named so that others can be added).

    Returns:
        provider id -> share, in the order of `weights`.

    Raises:
        InvalidTokenomicsError: a bad total, id or weight; or a positive total over weights
            that are all zero.
    """
    if method not in _METHODS:
        raise InvalidTokenomicsError("method", method, f"must be one of {list(_METHODS)}")
    t = _amount(total, "total")
    ws = _weights(weights)
    if t and not any(ws.values()):
        raise InvalidTokenomicsError(
            "weights", dict(weights), f"all zero (or none): cannot split a total of {t}"
        )
    ints = _integer_weights(ws)
    ids = sorted(ints)  # split_largest_remainder ties to the earlier weight: smallest id
    shares = dict(zip(ids, split_largest_remainder(t, [ints[k] for k in ids]), strict=True))
    return {k: shares[k] for k in ws}


def _int_array(values: Any, field: str) -> IntArray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise InvalidTokenomicsError(field, arr.shape, "must be one-dimensional")
    if arr.dtype == np.bool_ or not (
        np.issubdtype(arr.dtype, np.integer) or (arr.size == 0 and arr.dtype == np.float64)
    ):
        raise InvalidTokenomicsError(
            field, str(arr.dtype),
            "must hold ints that fit in int64 (use split_rewards for larger or exact weights)",
        )
    if arr.dtype == np.uint64 and arr.size and int(arr.max()) > MAX_MONEY:
        raise InvalidTokenomicsError(field, int(arr.max()), "does not fit in int64")
    out = arr.astype(np.int64)
    if out.size and int(out.min()) < 0:
        k = int(np.argmin(out))
        raise InvalidTokenomicsError(f"{field}[{k}]", int(out[k]), "must be >= 0")
    return out


def split_rewards_array(
    total: int, weights: npt.ArrayLike, *, ids: npt.ArrayLike | None = None
) -> IntArray:
    """`split_rewards` on arrays: int64 weights in, int64 shares out, for many providers.

    The same largest remainder split. Ties go to the smallest of `ids` when given (so the
    split does not depend on the order of the providers), else to the earlier index, as
    `auction.money.split_largest_remainder`. Exact: products that could overflow int64 are
    computed with Python ints. 10**5 providers take a few milliseconds.

    Raises:
        InvalidTokenomicsError: weights not a 1-D int array >= 0, `ids` of another length,
            or a positive total over weights that are all zero.
        AuctionOverflowError: `total` exceeds int64 (its shares could not be held).
    """
    t = _amount(total, "total")
    if t > MAX_MONEY:
        raise AuctionOverflowError(f"total {t} does not fit in int64")
    w = _int_array(weights, "weights")
    n = len(w)
    key = None
    if ids is not None:
        key = np.asarray(ids)
        if key.shape != (n,):
            raise InvalidTokenomicsError("ids", key.shape, f"must have one id per weight ({n})")
    wmax = int(w.max()) if n else 0
    s = int(w.sum()) if wmax <= MAX_MONEY // max(n, 1) else int(w.astype(object).sum())
    if s == 0:
        if t:
            raise InvalidTokenomicsError("weights", "all zero", f"cannot split a total of {t}")
        return np.zeros(n, dtype=np.int64)
    if t * wmax <= MAX_MONEY and s <= MAX_MONEY:
        prod = w * t
        shares, rems = np.divmod(prod, s)
    else:  # exact with Python ints
        obj = w.astype(object) * t
        shares = (obj // s).astype(np.int64)  # each <= t, fits
        rems = obj % s
        if s <= MAX_MONEY:
            rems = rems.astype(np.int64)
    left = t - int(shares.sum())
    if left:
        tie = np.arange(n) if key is None else key
        if rems.dtype == object:  # remainders beyond int64: sort in Python
            order = sorted(range(n), key=lambda k: (-rems[k], tie[k]))[:left]
            top = np.array(order, dtype=np.int64)
        else:
            top = np.lexsort((tie, -rems))[:left]
        shares[top] += 1
    return shares.astype(np.int64)


# -- weights ------------------------------------------------------------------------------------
def work_weights(
    gpu_hours: Mapping[str, Weight], gpu_power: Mapping[str, Weight]
) -> dict[str, Fraction]:
    """Work weights, Nosana and Aethir style: GPU-hours x GPU power, exact.

    Args:
        gpu_hours: provider id -> GPU-hours of work done in the epoch (>= 0; a `Fraction`
            for partial hours, such as ``Fraction(seconds, 3600)``).
        gpu_power: provider id -> power of its GPUs (>= 0): a benchmark score, TFLOPS or a
            tier multiplier. Must cover every provider in `gpu_hours`; extra ids are ignored.

    Returns:
        provider id -> weight, in the order of `gpu_hours`.
    """
    hours = _weights(gpu_hours, "gpu_hours")
    power = _weights(gpu_power, "gpu_power")
    missing = [k for k in hours if k not in power]
    if missing:
        raise InvalidTokenomicsError("gpu_power", missing[0], "has no power for this provider")
    return {k: h * power[k] for k, h in hours.items()}


def work_weights_array(gpu_hours: npt.ArrayLike, gpu_power: npt.ArrayLike) -> IntArray:
    """`work_weights` on int arrays (GPU-seconds x power, say), checked for int64 overflow."""
    h = _int_array(gpu_hours, "gpu_hours")
    p = _int_array(gpu_power, "gpu_power")
    if h.shape != p.shape:
        raise InvalidTokenomicsError("gpu_power", p.shape, f"must match gpu_hours {h.shape}")
    if h.size:
        hmax, pmax = int(h.max()), int(p.max())
        if hmax and pmax > MAX_MONEY // hmax:
            worst = (h.astype(object) * p).max()
            if worst > MAX_MONEY:
                raise AuctionOverflowError(f"a work weight ({worst}) does not fit in int64")
    return h * p


def availability_weights(
    online_hours: Mapping[str, Weight],
    gpu_power: Mapping[str, Weight],
    *,
    busy_hours: Mapping[str, Weight] | None = None,
) -> dict[str, Fraction]:
    """Availability weights: idle online GPU-hours x GPU power, exact.

    Render pays availability to capacity that was online and idle (busy hours earn work
    rewards instead); pass `busy_hours` to subtract them. Render's own formula also weighs
    log-ratios of benchmark score, VRAM and node age and penalizes wallets with many nodes;
    it is not exact arithmetic, so pass such weights, as `Fraction`s, to `split_rewards`
    directly.

    Raises:
        InvalidTokenomicsError: a provider busy longer than it was online, or without power.
    """
    online = _weights(online_hours, "online_hours")
    busy = _weights({} if busy_hours is None else busy_hours, "busy_hours")
    for k, b in busy.items():
        if b > online.get(k, Fraction(0)):
            raise InvalidTokenomicsError(
                f"busy_hours[{k!r}]", b, f"exceeds online_hours ({online.get(k, 0)})"
            )
    idle = {k: h - busy.get(k, Fraction(0)) for k, h in online.items()}
    return work_weights(idle, gpu_power)


# -- ledger -------------------------------------------------------------------------------------
def reward_transaction(
    tx_id: str,
    shares: Mapping[str, int],
    *,
    currency: str,
    source: Account | None = None,
    kind: AccountKind = AccountKind.PROVIDER,
    time: int = 0,
    memo: str = "",
) -> Transaction:
    """Pay `shares` out of `source` to each provider's account, in one transaction.

    `source` defaults to the ``EMISSIONS_POOL`` account (mint the epoch's emission into it
    first with `auction.settlement.tokenomics.mint_transaction`); providers are paid into
    ``Account(kind, provider_id)``. Zero shares are left out; a total of zero gives a
    transaction of zero amounts that changes nothing.
    """
    src = Account(AccountKind.EMISSIONS_POOL) if source is None else source
    try:
        code = currency_code(currency)
    except InvalidSettlementError as e:
        raise InvalidTokenomicsError(e.field, e.value, e.reason) from None
    if not isinstance(shares, Mapping) or not shares:
        raise InvalidTokenomicsError("shares", shares, "must be a non-empty mapping")
    paid = {_provider(k, "shares key"): _amount(v, f"shares[{k!r}]") for k, v in shares.items()}
    total = sum(paid.values())
    postings = [Posting(src, code, -total)]
    postings += [
        Posting(Account(kind, k), code, v) for k, v in paid.items() if v or not total
    ]
    return Transaction(tx_id, tuple(postings), time=time, memo=memo or f"rewards: {total}",
                       meta=TxMeta(kind=TxKind.REWARD))
