"""Fairness and efficiency metrics of a clearing result.

`report` measures one `ClearingResult` against the `Market` it cleared and returns a frozen
`FairnessReport`. Money stays exact: welfare, payments and budget balance are Python ints in the
smallest currency unit per hour (every amount in a result is per GPU-hour, so totals are per
hour of the allocation, whatever each request's ``duration_hours``). Ratios are floats.

Revenue fairness (Jain's index, Gini coefficient) is measured over **every provider with an
offer in the market**, including providers that sold nothing: a mechanism that sends all the
trade to one of ten providers should look unequal, which it would not if only winners counted.
Both indices are computed exactly on integers and rounded once, so scaling every revenue by the
same factor gives the very same float, and equal revenues give exactly 1.0 and 0.0.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs
import numpy as np

from auction.errors import InvalidTypeError, InvalidValueError
from auction.market import Market
from auction.result import ClearingResult, exact_dot

__all__ = [
    "FairnessReport",
    "efficiency",
    "gini",
    "jain_index",
    "provider_revenues",
    "report",
]


@attrs.frozen(kw_only=True)
class FairnessReport:
    """Welfare, fill, revenue fairness and money checks of one result.

    Attributes:
        mechanism: the result's mechanism name.
        welfare: sum of (max_price - ask) x gpus over allocations, per hour.
        optimum: the optimum welfare the result was compared with, if one was given.
        efficiency: ``welfare / optimum`` (see `efficiency`); None without an optimum.
        gpus_requested: GPUs asked for by all requests in the market.
        gpus_filled: GPUs allocated.
        fill_rate: ``gpus_filled / gpus_requested`` (1.0 when nothing was requested).
        requests: requests in the market.
        requests_filled: requests that got all the GPUs they asked for.
        request_fill_rate: ``requests_filled / requests`` (1.0 when there are no requests).
        providers: providers with at least one offer in the market (the fairness population).
        providers_paid: providers that received a positive revenue.
        jain: Jain's index of provider revenue, in [1/providers, 1]; 1.0 is perfectly even.
        gini: Gini coefficient of provider revenue, in [0, 1); 0.0 is perfectly even.
        ir_violations: allocation rows breaking individual rationality: ask > unit_price,
            tenant_price > max_price, or unit_price > tenant_price (each row counted once).
        total_payment: what tenants pay, per hour: the sum of the exact row payments
            (``result.total_payment``).
        provider_revenue: what providers receive, per hour: the sum of the exact row payments
            (``result.provider_revenue``; VCG bonuses included to the smallest unit).
        budget_balance: ``total_payment - provider_revenue``: 0 when balanced, positive when the
            mechanism keeps a margin, negative when it runs a deficit.
        average_price: mean price paid to providers per GPU-hour, in smallest units (revenue
            / GPUs); None when no GPU was allocated.
        average_tenant_price: mean price paid by tenants per GPU-hour; None when no GPU was
            allocated.
    """

    mechanism: str
    welfare: int
    optimum: int | None
    efficiency: float | None
    gpus_requested: int
    gpus_filled: int
    fill_rate: float
    requests: int
    requests_filled: int
    request_fill_rate: float
    providers: int
    providers_paid: int
    jain: float
    gini: float
    ir_violations: int
    total_payment: int
    provider_revenue: int
    budget_balance: int
    average_price: float | None
    average_tenant_price: float | None

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return attrs.asdict(self)


def _check_revenues(values: Iterable[int]) -> list[int]:
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | np.integer):
            raise InvalidTypeError("revenues", v, "ints")
        iv = int(v)
        if iv < 0:
            raise InvalidValueError("revenues", iv, "must be >= 0")
        out.append(iv)
    return out


def jain_index(values: Iterable[int]) -> float:
    """Jain's fairness index ``(sum x)**2 / (n * sum x**2)`` of non-negative ints.

    It is 1.0 when all values are equal and 1/n when one value holds everything. Edge cases:
    no values, or all zeros, count as perfectly even (1.0): nobody got more than anybody else.
    Computed exactly on ints and rounded once, so it is exactly invariant to scaling.

    Raises:
        ValueError: a value is negative.
        TypeError: a value is not an int.
    """
    xs = _check_revenues(values)
    total = sum(xs)
    if total == 0:
        return 1.0
    return (total * total) / (len(xs) * sum(x * x for x in xs))


def gini(values: Iterable[int]) -> float:
    """Gini coefficient ``sum_i sum_j |x_i - x_j| / (2 n sum x)`` of non-negative ints.

    It is 0.0 when all values are equal and (n - 1)/n, below 1, when one value holds everything
    (the population form, without small-sample correction). Edge cases: no values, one value,
    or all zeros give 0.0. Computed exactly on ints, from the sorted values as
    ``sum_i (2i - n - 1) x_(i) / (n sum x)``, and rounded once.

    Raises:
        ValueError: a value is negative.
        TypeError: a value is not an int.
    """
    xs = sorted(_check_revenues(values))
    n, total = len(xs), sum(xs)
    if total == 0:
        return 0.0
    weighted = sum((2 * i - n - 1) * x for i, x in enumerate(xs, start=1))
    return weighted / (n * total)


def efficiency(welfare: int, optimum: int) -> float:
    """Share of the optimum welfare a result achieved: ``welfare / optimum``.

    When the optimum is 0 no trade could create surplus: a result with welfare 0 is fully
    efficient (1.0), and one with negative welfare (possible only with individual-rationality
    violations) gets ``-inf``.

    Raises:
        ValueError: the optimum is negative (doing nothing already achieves 0) or below the
            welfare (then it is not an optimum of this market).
    """
    if optimum < 0:
        raise InvalidValueError(
            "optimum", optimum, "optimum welfare must be >= 0 (trading nothing achieves 0)"
        )
    if welfare > optimum:
        raise InvalidValueError(
            "optimum", optimum, f"below the achieved welfare {welfare}: not an optimum"
        )
    if optimum == 0:
        return 1.0 if welfare == 0 else float("-inf")
    return welfare / optimum


def _check_same_market(result: ClearingResult, market: Market) -> None:
    """Refuse a result whose rows do not point at this market's orders."""
    snap = market.snapshot
    n = result.n_allocations
    if n == 0:
        return
    req, off = result.request_row, result.offer_row
    if (
        int(req.min()) < 0
        or int(off.min()) < 0
        or int(req.max()) >= snap.n_requests
        or int(off.max()) >= snap.n_offers
        or not np.array_equal(snap.requests.id[req], result.request_id)
        or not np.array_equal(snap.offers.id[off], result.offer_id)
    ):
        raise InvalidValueError(
            "result", result, "the result was not cleared on this market: its rows name other "
            "orders"
        )


def _market_providers(market: Market) -> list[str]:
    """Names of providers with an offer in the market, in name order."""
    snap = market.snapshot
    codes = np.unique(snap.offers.provider)
    return sorted(snap.parties[int(c)] for c in codes)


def provider_revenues(result: ClearingResult, market: Market) -> dict[str, int]:
    """Revenue per hour (sum of exact row payments) of every provider in the market.

    Providers that sold nothing are included with 0; keys are in provider-name order.
    """
    _check_same_market(result, market)
    snap = market.snapshot
    revenue = dict.fromkeys(_market_providers(market), 0)
    n = result.n_allocations
    if n == 0:
        return revenue
    codes = snap.offers.provider[result.offer_row].astype(np.int64)
    for c, p in zip(codes.tolist(), result.provider_payment.tolist(), strict=True):
        revenue[snap.parties[c]] += int(p)
    return revenue


def _ratio(num: int, den: int) -> float:
    return 1.0 if den == 0 else num / den


def report(
    result: ClearingResult, market: Market, optimum: int | None = None
) -> FairnessReport:
    """Measure a result against the market it cleared.

    Args:
        result: the clearing result.
        market: the market `result` was cleared on (its orders give asks, max prices, GPUs
            requested and the provider population).
        optimum: the best welfare achievable on `market` (for example from an exact
            mechanism), to report efficiency against; None leaves efficiency unset.

    Raises:
        ValueError: `result` does not belong to `market`, or `optimum` is negative or below the
            result's welfare.
    """
    _check_same_market(result, market)
    snap = market.snapshot
    rq, of = snap.requests, snap.offers
    req, off = result.request_row, result.offer_row
    gpus, up, tp = result.gpus, result.unit_price, result.tenant_price

    ask = of.price[off]
    max_price = rq.max_price[req]
    welfare = exact_dot(max_price, gpus) - exact_dot(ask, gpus)
    pp = np.array([int(v) for v in result.provider_payment.tolist()], dtype=object)
    tpay = np.array([int(v) for v in result.tenant_payment.tolist()], dtype=object)
    ask_g = ask.astype(object) * gpus.astype(object)
    max_g = max_price.astype(object) * gpus.astype(object)
    violations = (
        (ask > up) | (tp > max_price) | (up > tp)
        | (ask_g > pp).astype(bool) | (tpay > max_g).astype(bool) | (pp > tpay).astype(bool)
    )

    filled = np.zeros(snap.n_requests, dtype=np.int64)
    np.add.at(filled, req, gpus)
    gpus_requested = int(rq.gpus.sum())
    gpus_filled = int(gpus.sum())
    requests_filled = int(np.count_nonzero(filled >= rq.gpus))

    revenues = provider_revenues(result, market)
    negative = sorted(name for name, v in revenues.items() if v < 0)
    if negative:
        raise InvalidValueError(
            "provider_payment", revenues[negative[0]],
            f"provider {negative[0]!r} has negative revenue: revenue fairness is defined for "
            "revenues >= 0",
        )
    # exact row payments (VCG bonuses are whole-row amounts; unit_price x gpus rounds them)
    total_payment = int(sum(tpay.tolist()))
    provider_revenue = int(sum(pp.tolist()))
    return FairnessReport(
        mechanism=result.mechanism,
        welfare=welfare,
        optimum=optimum,
        efficiency=None if optimum is None else efficiency(welfare, optimum),
        gpus_requested=gpus_requested,
        gpus_filled=gpus_filled,
        fill_rate=_ratio(gpus_filled, gpus_requested),
        requests=snap.n_requests,
        requests_filled=requests_filled,
        request_fill_rate=_ratio(requests_filled, snap.n_requests),
        providers=len(revenues),
        providers_paid=sum(1 for v in revenues.values() if v > 0),
        jain=jain_index(revenues.values()),
        gini=gini(revenues.values()),
        ir_violations=int(np.count_nonzero(violations)),
        total_payment=total_payment,
        provider_revenue=provider_revenue,
        budget_balance=total_payment - provider_revenue,
        average_price=provider_revenue / gpus_filled if gpus_filled else None,
        average_tenant_price=total_payment / gpus_filled if gpus_filled else None,
    )
