"""The conformance suite: property checks every clearing mechanism must pass.

After scikit-learn's ``check_estimator``: each check is a public function
``check_xxx(mechanism)`` that runs a hypothesis property over `markets()` and raises an
`AssertionError` with a falsifying example when the mechanism breaks it. `checks_for` picks
the checks from the mechanism's `MechanismTags`; `check_mechanism` runs them all and reports
every failure at once; `parametrize_with_checks` makes one pytest test per (mechanism, check).

Mechanisms are given as registry names (a fresh instance is built for each check, and the
registry path `auction.clear(..., payment=...)` is checked too) or as instances.
"""

from __future__ import annotations

import functools
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import attrs
import hypothesis.strategies as st
import numpy as np
from hypothesis import HealthCheck, Phase, given, note, reject, settings

from auction.book import OrderBook
from auction.errors import (
    Alternative,
    AuctionError,
    AuctionOverflowError,
    InvalidTypeError,
    InvalidValueError,
    UnknownPaymentRuleError,
    UnsupportedMarketError,
)
from auction.market import Market
from auction.mechanisms.base import Mechanism, MechanismTags
from auction.mechanisms.registry import available, get, resolve
from auction.money import MAX_MONEY
from auction.orders import Offer, Order, Request
from auction.result import ClearingResult, Status
from auction.testing.oracles import (
    is_eligible,
    offer_rank_key,
    quality_bonus,
    reputation_of,
    request_priority_key,
)
from auction.testing.strategies import books, describe_market, markets, requests

if TYPE_CHECKING:
    import pytest

__all__ = [
    "SAFE_AMOUNT",
    "Check",
    "ConformanceError",
    "MechanismLike",
    "check_budget_balance",
    "check_capacity",
    "check_divisible_support",
    "check_eligibility",
    "check_empty_markets",
    "check_individual_rationality",
    "check_invalid_input",
    "check_mechanism",
    "check_misreport",
    "check_misreport_single_order",
    "check_misreport_unit_traders",
    "check_no_mutation",
    "check_order_independence",
    "check_result_consistency",
    "check_rng",
    "checks_for",
    "mechanism_label",
    "parametrize_with_checks",
]

MechanismLike = str | Mechanism
"""A registry name or a mechanism instance."""

#: Every mechanism must clear markets whose prices and max prices are all below this (over
#: $2,000 per GPU-hour in micro-dollars) exactly. With larger amounts a mechanism may instead
#: refuse with `AuctionOverflowError` (its arithmetic would leave int64); the checks then
#: discard the example, as they do a refused misreport.
SAFE_AMOUNT = 2**31

_SEEDS = st.integers(0, 2**32 - 1)
#: Misreport searches run on markets this small (the search re-clears many times per market).
_MISREPORT_OFFERS = 4
_MISREPORT_REQUESTS = 3
#: Orders per side in the unit-trader search (one GPU each: larger books stay cheap).
_MISREPORT_UNIT_ORDERS = 5


class Check(Protocol):
    """A conformance check: raises `AssertionError` when `mechanism` breaks its property."""

    __name__: str

    def __call__(self, mechanism: MechanismLike, *, max_examples: int | None = None) -> None: ...


class ConformanceError(AuctionError, AssertionError):
    """A mechanism failed one or more conformance checks.

    Attributes:
        mechanism: the mechanism's name.
        failures: check name -> what failed, with the falsifying example.
    """

    def __init__(self, mechanism: str, failures: Mapping[str, str]) -> None:
        self.mechanism = mechanism
        self.failures = dict(failures)
        parts = [f"mechanism {mechanism!r} failed {len(self.failures)} conformance check(s):"]
        for name, text in self.failures.items():
            parts.append(f"--- {name}\n{text}")
        super().__init__("\n".join(parts))


# -- helpers ------------------------------------------------------------------------------
def _resolve(mechanism: MechanismLike) -> Mechanism:
    """A fresh instance for a registry name; the instance itself otherwise."""
    if isinstance(mechanism, str):
        return get(mechanism)
    if not isinstance(mechanism, Mechanism):
        raise InvalidTypeError("mechanism", mechanism, "a mechanism name or a Mechanism")
    return mechanism


def _settings(max_examples: int | None, scale: float = 1.0) -> settings:
    """Settings for one check: the active profile's, without a deadline (kernels compile on
    first call) or explain phase, with `max_examples` if given (else the profile's, times
    `scale`)."""
    current = settings()
    n = max_examples if max_examples is not None else current.max_examples
    return settings(
        max_examples=max(1, round(n * scale)),
        # the explain phase re-runs a failing example many times to annotate it: slow, and
        # the market printed with the failure says more
        phases=[p for p in current.phases if p is not Phase.explain],
        deadline=None,
        report_multiple_bugs=False,
        suppress_health_check=[
            *current.suppress_health_check, HealthCheck.too_slow, HealthCheck.data_too_large
        ],
    )


def _markets_for(mech: Mechanism, **kwargs: Any) -> st.SearchStrategy[Market]:
    """`markets()` with divisible requests only if the mechanism supports them, only
    splittable requests, or call markets, for mechanisms that need them, and sometimes quality
    bonuses (scoring markets)."""
    kwargs.setdefault("divisible", mech.tags.divisible)
    kwargs.setdefault("splittable", mech.tags.splittable_only)
    kwargs.setdefault("call_market", mech.tags.call_market)
    kwargs.setdefault("quality", True)  # every mechanism clears scoring markets (or ignores)
    return markets(**kwargs)


def _largest_amount(market: Market) -> int:
    snap = market.snapshot
    amounts = [*snap.offers.price.tolist(), *snap.requests.max_price.tolist()]
    return max(amounts, default=0)


def _try_clear(mech: Mechanism, market: Market, seed: int | None) -> ClearingResult | None:
    """Clear with a seeded rng; None if the mechanism refused the market in a way the contract
    allows.

    Allowed: `UnsupportedMarketError` naming alternatives that the registry resolves (each a
    registered name with options its constructor takes), and `AuctionOverflowError` when some
    price is `SAFE_AMOUNT` or more. Any other refusal fails the check.
    """
    rng = None if seed is None else np.random.default_rng(seed)
    try:
        result = mech.clear(market, rng=rng)
    except UnsupportedMarketError as exc:
        if not exc.alternatives:
            raise AssertionError(
                f"UnsupportedMarketError without alternatives (it must say which can): {exc}"
            ) from exc
        for alt in exc.alternatives:
            try:
                resolve(alt)
            except Exception as bad:
                raise AssertionError(
                    f"UnsupportedMarketError names alternative {alt!r}, which the registry "
                    f"cannot build: {bad!r}"
                ) from exc
        return None
    except AuctionOverflowError as exc:
        if _largest_amount(market) < SAFE_AMOUNT:
            raise AssertionError(
                f"AuctionOverflowError on a market whose prices are all below 2**31: {exc}"
            ) from exc
        return None
    if not isinstance(result, ClearingResult):
        raise AssertionError(f"clear returned {type(result).__name__}, not a ClearingResult")
    return result


def _clear(mech: Mechanism, market: Market, seed: int | None) -> ClearingResult:
    """`_try_clear`, discarding the hypothesis example when the mechanism refused it (a
    mechanism that refuses most markets fails hypothesis' health check instead)."""
    result = _try_clear(mech, market, seed)
    if result is None:
        reject()
    return result


def _for_each_result(
    mech: Mechanism, max_examples: int | None,
    holds: Callable[[Market, ClearingResult], None],
) -> None:
    """Clear drawn markets with `mech` and assert `holds(market, result)` on each."""

    @_settings(max_examples)
    @given(market=_markets_for(mech), seed=_SEEDS)
    def run(market: Market, seed: int) -> None:
        _note(market)
        result = _clear(mech, market, seed)
        _note_result(result)
        holds(market, result)

    run()


def _note(market: Market) -> None:
    """Attach the market, as code that rebuilds it, to a falsifying example."""
    note(describe_market(market))


def _note_result(result: ClearingResult) -> None:
    note(f"result: {result!r}\nallocations: {result.to_records()!r}")


def _orders(market: Market) -> tuple[dict[str, Offer], dict[str, Request]]:
    snap = market.snapshot
    return (
        {o.id: o for o in snap.offer_list()},
        {r.id: r for r in snap.request_list()},
    )


def _rows(result: ClearingResult) -> list[dict[str, Any]]:
    """Allocation records with the exact row payments."""
    return [
        {**rec, "provider_payment": int(p), "tenant_payment": int(t)}
        for rec, p, t in zip(result.to_records(), result.provider_payment.tolist(),
                             result.tenant_payment.tolist(), strict=True)
    ]


def _rebuild(market: Market, orders: Iterable[Order], prices: Mapping[str, int] | None = None
             ) -> Market:
    """A new market over `orders` (with some offers' prices, or requests' max prices,
    replaced), same reputation."""
    changed = prices or {}
    built: list[Order] = [
        o if o.id not in changed
        else attrs.evolve(o, price=changed[o.id]) if isinstance(o, Offer)
        else attrs.evolve(o, max_price=changed[o.id])
        for o in orders
    ]
    return market.like(OrderBook(built))


def _all_orders(market: Market) -> list[Order]:
    snap = market.snapshot
    return [*snap.offer_list(), *snap.request_list()]


def _outcome(result: ClearingResult) -> dict[str, Any]:
    """Everything about a result that must not depend on row order or repetition."""
    return {
        "status": str(result.status),
        "allocations": result.to_records(),
        "unmatched_request_ids": result.unmatched_request_ids.tolist(),
        "partial_request_ids": result.partial_request_ids.tolist(),
        "shortfall_gpus": result.shortfall_gpus.tolist(),
        "welfare": result.welfare,
        "total_payment": result.total_payment,
        "provider_revenue": result.provider_revenue,
    }


def _assert_same(a: ClearingResult, b: ClearingResult, what: str) -> None:
    oa, ob = _outcome(a), _outcome(b)
    diff = [k for k in oa if oa[k] != ob[k]]
    if diff:
        lines = [f"{what}: results differ in {', '.join(diff)}"]
        lines += [f"  {k}: {oa[k]!r}\n   vs {ob[k]!r}" for k in diff]
        raise AssertionError("\n".join(lines))


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


# -- checks every mechanism runs ----------------------------------------------------------
def check_capacity(mechanism: MechanismLike, *, max_examples: int | None = None) -> None:
    """No offer is allocated more GPUs than it has."""
    mech = _resolve(mechanism)

    def holds(market: Market, result: ClearingResult) -> None:
        offers, _ = _orders(market)
        used: Counter[str] = Counter()
        for row in _rows(result):
            assert row["offer_id"] in offers, f"unknown offer {row['offer_id']!r} allocated"
            used[row["offer_id"]] += row["gpus"]
        for oid, n in used.items():
            assert n <= offers[oid].gpus, (
                f"offer {oid!r} has {offers[oid].gpus} GPUs but {n} were allocated"
            )


    _for_each_result(mech, max_examples, holds)


def check_eligibility(mechanism: MechanismLike, *, max_examples: int | None = None) -> None:
    """Every allocation pairs a request with an offer that may serve it (by the oracle)."""
    mech = _resolve(mechanism)

    def holds(market: Market, result: ClearingResult) -> None:
        offers, reqs = _orders(market)
        for row in _rows(result):
            assert row["request_id"] in reqs, f"unknown request {row['request_id']!r}"
            assert row["offer_id"] in offers, f"unknown offer {row['offer_id']!r}"
            o, r = offers[row["offer_id"]], reqs[row["request_id"]]
            rep = reputation_of(market, o.provider)
            assert is_eligible(o, r, rep), (
                f"offer {o.id!r} is not eligible for request {r.id!r} "
                f"(provider reputation {rep}): {o!r} / {r!r}"
            )


    _for_each_result(mech, max_examples, holds)


def check_result_consistency(
    mechanism: MechanismLike, *, max_examples: int | None = None
) -> None:
    """The result's columns, unmatched and partial lists and totals agree with its rows.

    Non-divisible requests get all their GPUs from one offer or nothing, divisible ones at most
    what they asked; each (request, offer) pair appears once with >= 1 GPU; rows are in
    canonical order; welfare, total payment and provider revenue are exact ints equal to their
    recomputation from the rows and the orders.
    """
    mech = _resolve(mechanism)

    def holds(market: Market, result: ClearingResult) -> None:
        _assert_consistent(mech, market, result)


    _for_each_result(mech, max_examples, holds)


def _assert_consistent(mech: Mechanism, market: Market, result: ClearingResult) -> None:
    offers, reqs = _orders(market)
    snap = market.snapshot
    assert result.mechanism == mech.name, (
        f"result names mechanism {result.mechanism!r}, not {mech.name!r}"
    )
    assert isinstance(result.status, Status), f"status {result.status!r} is not a Status"
    cols = ("request_row", "offer_row", "request_id", "offer_id", "tenant", "provider", "gpus",
            "unit_price", "tenant_price", "provider_payment", "tenant_payment")
    lengths = {c: len(getattr(result, c)) for c in cols}
    assert len(set(lengths.values())) == 1, f"allocation columns differ in length: {lengths}"
    rows = _rows(result)
    if result.status is Status.FAILED:
        assert not rows, "a failed result must have no allocations"
    assert result.request_id.tolist() == snap.requests.id[result.request_row].tolist(), (
        "request_id does not match request_row"
    )
    assert result.offer_id.tolist() == snap.offers.id[result.offer_row].tolist(), (
        "offer_id does not match offer_row"
    )
    filled: Counter[str] = Counter()
    chunks: Counter[str] = Counter()
    sites: defaultdict[str, set[tuple[str, str]]] = defaultdict(set)
    pairs: set[tuple[str, str]] = set()
    keys = []
    welfare = payment = revenue = 0
    for row in rows:
        r, o = reqs[row["request_id"]], offers[row["offer_id"]]
        assert row["tenant"] == r.tenant, (
            f"tenant of {r.id!r} is {r.tenant!r}, not {row['tenant']!r}"
        )
        assert row["provider"] == o.provider, (
            f"provider of {o.id!r} is {o.provider!r}, not {row['provider']!r}"
        )
        g = row["gpus"]
        assert _is_int(g), f"allocation {row!r} has GPUs {g!r}, not an int"
        assert g >= 1, f"allocation {row!r} has {g} GPUs"
        pair = (r.id, o.id)
        assert pair not in pairs, f"pair {pair} is allocated in more than one row"
        pairs.add(pair)
        filled[r.id] += g
        chunks[r.id] += 1
        sites[r.id].add((o.provider, o.region))
        bonus = quality_bonus(market, o.provider)
        keys.append((request_priority_key(r), offer_rank_key(o, bonus)))
        welfare += (r.max_price - o.price) * g
        assert row["unit_price"] == row["provider_payment"] // g, (
            f"unit_price is not the row's provider payment per GPU, rounded down: {row!r}"
        )
        assert row["tenant_price"] == row["tenant_payment"] // g, (
            f"tenant_price is not the row's tenant payment per GPU, rounded down: {row!r}"
        )
        payment += row["tenant_payment"]
        revenue += row["provider_payment"]
    assert keys == sorted(keys), "rows are not in canonical order (request priority, offer rank)"
    for rid, n in filled.items():
        r = reqs[rid]
        if r.divisible:
            assert n <= r.gpus, f"divisible request {rid!r} wants {r.gpus} GPUs but got {n}"
        elif r.cluster:
            assert n == r.gpus, f"cluster request {rid!r} wants all {r.gpus} GPUs but got {n}"
            hosts = sorted(sites[rid])
            assert len(hosts) == 1, (
                f"cluster request {rid!r} is served from several (provider, region): {hosts}"
            )
        else:
            got = (n, chunks[rid])
            assert got == (r.gpus, 1), (
                f"non-divisible request {rid!r} wants {r.gpus} GPUs from one offer but got "
                f"{n} in {chunks[rid]} allocation(s)"
            )
    by_priority = sorted(reqs.values(), key=request_priority_key)
    unmatched = [r.id for r in by_priority if filled[r.id] == 0]
    partial = [r for r in by_priority if 0 < filled[r.id] < r.gpus]
    assert result.unmatched_request_ids.tolist() == unmatched, (
        f"unmatched_request_ids {result.unmatched_request_ids.tolist()} != {unmatched}"
    )
    assert result.partial_request_ids.tolist() == [r.id for r in partial], (
        f"partial_request_ids {result.partial_request_ids.tolist()} != {[r.id for r in partial]}"
    )
    shortfall = [r.gpus - filled[r.id] for r in partial]
    assert result.shortfall_gpus.tolist() == shortfall, (
        f"shortfall_gpus {result.shortfall_gpus.tolist()} != {shortfall}"
    )
    for name, want in (("welfare", welfare), ("total_payment", payment),
                       ("provider_revenue", revenue)):
        got = getattr(result, name)
        assert _is_int(got), f"{name} is {type(got).__name__}, not an exact int"
        assert got == want, f"{name} is {got}, recomputed from the rows: {want}"


def check_order_independence(
    mechanism: MechanismLike, *, max_examples: int | None = None
) -> None:
    """The result does not depend on the order in which orders were added to the book."""
    mech = _resolve(mechanism)

    @st.composite
    def market_and_permutation(draw: st.DrawFn) -> tuple[Market, list[Order]]:
        market = draw(_markets_for(mech))
        return market, draw(st.permutations(_all_orders(market)))

    @_settings(max_examples)
    @given(case=market_and_permutation(), seed=_SEEDS)
    def run(case: tuple[Market, list[Order]], seed: int) -> None:
        market, shuffled = case
        other = _rebuild(market, shuffled)
        _note(market)
        note(f"re-added in the order: {[o.id for o in shuffled]}")
        _assert_same(_clear(mech, market, seed), _clear(mech, other, seed), "after reordering")

    run()


def check_rng(mechanism: MechanismLike, *, max_examples: int | None = None) -> None:
    """The same rng seed gives the same result; for deterministic mechanisms, any rng does."""
    mech = _resolve(mechanism)
    deterministic = mech.tags.deterministic

    @_settings(max_examples)
    @given(market=_markets_for(mech), seed=_SEEDS, other=_SEEDS)
    def run(market: Market, seed: int, other: int) -> None:
        _note(market)
        first = _clear(mech, market, seed)
        _assert_same(first, _clear(mech, market, seed), f"twice with seed {seed}")
        if deterministic:
            _assert_same(first, _clear(mech, market, other), f"seeds {seed} and {other}")
            _assert_same(first, _clear(mech, market, None), f"seed {seed} and rng=None")

    run()


def _fingerprint(market: Market) -> dict[str, Any]:
    """Copies of everything a market holds, to tell whether clearing changed it."""
    out: dict[str, Any] = {
        f"market.{k}": v.copy() for k, v in vars(market).items() if isinstance(v, np.ndarray)
    }
    snap = market.snapshot
    for side in ("offers", "requests"):
        cols = getattr(snap, side)
        for a in attrs.fields(type(cols)):
            out[f"snapshot.{side}.{a.name}"] = getattr(cols, a.name).copy()
    for name in ("parties", "models", "regions", "tags"):
        out[f"snapshot.{name}"] = getattr(snap, name)
    out["snapshot.records"] = snap.to_records()
    out["reputation"] = dict(market.reputation)
    out["default_reputation"] = market.default_reputation
    return out


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray):
        return (
            isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and bool(np.array_equal(a, b))
        )
    return bool(a == b)


def check_no_mutation(mechanism: MechanismLike, *, max_examples: int | None = None) -> None:
    """Clearing leaves the market, its snapshot and its orders exactly as they were."""
    mech = _resolve(mechanism)

    @_settings(max_examples)
    @given(market=_markets_for(mech), seed=_SEEDS)
    def run(market: Market, seed: int) -> None:
        _note(market)
        before = _fingerprint(market)
        _clear(mech, market, seed)
        after = _fingerprint(market)
        changed = [k for k, v in before.items() if k not in after or not _same_value(v, after[k])]
        assert not changed, f"clearing changed {', '.join(changed)}"

    run()


def check_empty_markets(mechanism: MechanismLike, *, max_examples: int | None = None) -> None:
    """Markets with no offers, no requests, or neither clear successfully with no allocations."""
    mech = _resolve(mechanism)
    empty = st.one_of(
        _markets_for(mech, max_offers=0, max_requests=0),
        _markets_for(mech, max_offers=0, min_requests=1),
        _markets_for(mech, min_offers=1, max_requests=0),
    )

    @_settings(max_examples, scale=0.5)
    @given(market=empty, seed=_SEEDS)
    def run(market: Market, seed: int) -> None:
        _note(market)
        result = _clear(mech, market, seed)
        _note_result(result)
        assert result.status is Status.SUCCESS, f"status {result.status!r}: {result.message}"
        assert result.n_allocations == 0, f"{result.n_allocations} allocations in an empty market"
        by_priority = sorted(market.snapshot.request_list(), key=request_priority_key)
        assert result.unmatched_request_ids.tolist() == [r.id for r in by_priority], (
            "every request of a market without offers is unmatched, in priority order"
        )
        assert len(result.partial_request_ids) == 0, "partial fills in an empty market"
        assert len(result.shortfall_gpus) == 0, "shortfalls in an empty market"
        totals = (result.welfare, result.total_payment, result.provider_revenue)
        assert all(_is_int(t) and t == 0 for t in totals), f"totals {totals} are not exactly 0"

    run()


def check_divisible_support(
    mechanism: MechanismLike, *, max_examples: int | None = None
) -> None:
    """Divisible requests are cleared if the tags say so, else refused with a typed error.

    A mechanism tagged ``divisible=False`` must raise `UnsupportedMarketError` naming
    registered mechanisms that do support them (`alternatives`); one tagged ``divisible=True``
    must clear such markets.
    """
    mech = _resolve(mechanism)
    supports = mech.tags.divisible

    @st.composite
    def with_divisible(draw: st.DrawFn) -> Market:
        call = mech.tags.call_market
        book = draw(books(divisible=False, splittable=mech.tags.splittable_only, call_market=call))
        extra = draw(requests(order_id="r-divisible", divisible=True, call_market=call))
        return Market(OrderBook([*book, extra]))

    @_settings(max_examples, scale=0.5)
    @given(market=with_divisible(), seed=_SEEDS)
    def run(market: Market, seed: int) -> None:
        _note(market)
        if supports:
            result = _clear(mech, market, seed)
            _assert_consistent(mech, market, result)
            return
        alternatives: tuple[Alternative, ...] | None = None
        try:
            mech.clear(market, rng=np.random.default_rng(seed))
        except UnsupportedMarketError as exc:
            alternatives = exc.alternatives
        if alternatives is None:
            raise AssertionError(
                "a mechanism tagged divisible=False cleared a market with a divisible request "
                "instead of raising UnsupportedMarketError"
            )
        assert alternatives, "UnsupportedMarketError must name mechanisms that can"
        registered = set(available())
        for alt in alternatives:
            assert alt.name in registered, f"alternative {alt!r} is not a registered mechanism"
            assert resolve(alt).tags.divisible, f"alternative {alt!r} does not support divisible"

    run()


def check_invalid_input(mechanism: MechanismLike, *, max_examples: int | None = None) -> None:
    """`clear` given something not a `Market` raises TypeError; for a registry name, an
    unknown payment rule through `auction.clear` raises `UnknownPaymentRuleError`."""
    mech = _resolve(mechanism)
    name = mechanism if isinstance(mechanism, str) else None

    @_settings(max_examples, scale=0.25)
    @given(book=books(divisible=mech.tags.divisible, splittable=mech.tags.splittable_only,
                      call_market=mech.tags.call_market))
    def run(book: OrderBook) -> None:
        for bad in (book, book.snapshot(), None, "market", object()):
            try:
                mech.clear(bad)  # type: ignore[arg-type]
            except TypeError:
                pass
            else:
                raise AssertionError(f"clear({type(bad).__name__}) did not raise TypeError")
        if name is not None:
            from auction.clearing import clear

            try:
                clear(book, name, payment="no-such-rule")
            except UnknownPaymentRuleError:
                pass
            else:
                raise AssertionError(
                    f"auction.clear(book, {name!r}, payment='no-such-rule') "
                    "did not raise UnknownPaymentRuleError"
                )

    run()


# -- checks chosen by tags ----------------------------------------------------------------
def check_individual_rationality(
    mechanism: MechanismLike, *, max_examples: int | None = None
) -> None:
    """ask <= unit_price <= tenant_price <= max_price for every allocation, and the same for
    the exact row payments: ask x gpus <= provider_payment <= tenant_payment <= max x gpus."""
    mech = _resolve(mechanism)

    def holds(market: Market, result: ClearingResult) -> None:
        offers, reqs = _orders(market)
        for row in _rows(result):
            ask, cap = offers[row["offer_id"]].price, reqs[row["request_id"]].max_price
            up, tp = row["unit_price"], row["tenant_price"]
            assert ask <= up, f"provider paid {up} below its ask {ask}: {row!r}"
            assert up <= tp, f"tenant pays {tp} less than the provider gets ({up}): {row!r}"
            assert tp <= cap, f"tenant pays {tp} above its max price {cap}: {row!r}"
            g, pp, tpay = row["gpus"], row["provider_payment"], row["tenant_payment"]
            assert ask * g <= pp <= tpay <= cap * g, f"row payments break IR: {row!r}"


    _for_each_result(mech, max_examples, holds)


def check_budget_balance(mechanism: MechanismLike, *, max_examples: int | None = None) -> None:
    """Tenants pay exactly what providers receive: tenant_price == unit_price on every row."""
    mech = _resolve(mechanism)

    def holds(market: Market, result: ClearingResult) -> None:
        for row in _rows(result):
            assert row["tenant_price"] == row["unit_price"], f"margin kept on {row!r}"
            assert row["tenant_payment"] == row["provider_payment"], f"margin kept on {row!r}"
        assert result.total_payment == result.provider_revenue, (
            f"tenants pay {result.total_payment}, providers receive {result.provider_revenue}"
        )


    _for_each_result(mech, max_examples, holds)


def _utility(result: ClearingResult, provider: str, true_ask: Mapping[str, int]) -> int:
    """A provider's profit per hour at its true asks, exactly (from the exact row payments)."""
    return sum(
        row["provider_payment"] - true_ask[row["offer_id"]] * row["gpus"]
        for row in _rows(result)
        if row["provider"] == provider
    )


def _tenant_utility(result: ClearingResult, tenant: str, true_max: Mapping[str, int]) -> int:
    """A tenant's surplus per hour at its true max prices, exactly: value minus payments."""
    return sum(
        true_max[row["request_id"]] * row["gpus"] - row["tenant_payment"]
        for row in _rows(result)
        if row["tenant"] == tenant
    )


def _candidate_asks(offers: Sequence[Offer], reqs: Sequence[Request]) -> list[int]:
    """0, every distinct ask and max price, each +-1, and a very high ask."""
    base = {o.price for o in offers} | {r.max_price for r in reqs}
    out = {0, MAX_MONEY} | {v + d for v in base for d in (-1, 0, 1)}
    return sorted(v for v in out if 0 <= v <= MAX_MONEY)


def _reported(order: Order) -> int:
    """An offer's ask or a request's max price."""
    return order.price if isinstance(order, Offer) else order.max_price


def _misreports(own: Sequence[Order], candidates: Sequence[int]) -> Iterator[dict[str, int]]:
    """Price changes to try for one party: each order alone, then all orders shifted."""
    for o in own:
        for v in candidates:
            if v != _reported(o):
                yield {o.id: v}
    if len(own) > 1:
        deltas = sorted({v - _reported(o) for v in candidates for o in own} - {0})
        for d in deltas:
            yield {o.id: min(MAX_MONEY, max(0, _reported(o) + d)) for o in own}


def _misreport_search(mech: Mechanism, market: Market, seed: int, *, tenants: bool = False
                      ) -> None:
    """Assert no provider gains (at its true asks) by any misreport in the candidate grid;
    with `tenants`, no tenant either (at its true max prices)."""
    orders = _all_orders(market)
    offers = market.snapshot.offer_list()
    reqs = market.snapshot.request_list()
    true_ask = {o.id: o.price for o in offers}
    true_max = {r.id: r.max_price for r in reqs}
    truthful = _clear(mech, _rebuild(market, orders), seed)
    note(f"truthful allocations: {truthful.to_records()!r}")
    candidates = _candidate_asks(offers, reqs)
    parties: list[tuple[str, str, list[Order], Callable[[ClearingResult], int]]] = [
        ("provider", p, [o for o in offers if o.provider == p],
         functools.partial(_utility, provider=p, true_ask=true_ask))
        for p in sorted({o.provider for o in offers})
    ]
    if tenants:
        parties += [
            ("tenant", t, [r for r in reqs if r.tenant == t],
             functools.partial(_tenant_utility, tenant=t, true_max=true_max))
            for t in sorted({r.tenant for r in reqs})
        ]
    for role, party, own, utility in parties:
        honest = utility(truthful)
        for lie in _misreports(own, candidates):
            result = _try_clear(mech, _rebuild(market, orders, lie), seed)
            if result is None:  # the lie made amounts too large to clear: no gain
                continue
            gain = utility(result)
            if gain > honest:
                what = "asks" if role == "provider" else "max prices"
                true = {o.id: _reported(o) for o in own if o.id in lie}
                raise AssertionError(
                    f"{role} {party!r} gains by misreporting {what} {lie} "
                    f"(true {what} {true}): utility {gain} > {honest} "
                    f"when truthful; allocations when lying: {result.to_records()!r}"
                )


def _search_markets(
    mech: Mechanism, strategy: st.SearchStrategy[Market], max_examples: int | None,
    *, tenants: bool = False,
) -> None:
    """Run the misreport search on markets drawn from `strategy`."""

    @_settings(max_examples)
    @given(market=strategy, seed=_SEEDS)
    def run(market: Market, seed: int) -> None:
        _note(market)
        _misreport_search(mech, market, seed, tenants=tenants)

    run()


def check_misreport(mechanism: MechanismLike, *, max_examples: int | None = None) -> None:
    """Truthful mechanisms: no provider gains by misreporting its asks (small markets).

    For each provider, tries every candidate ask (0, each distinct ask and max price and their
    neighbours, a very high ask) on each of its offers alone, and shifts of all its offers
    together; its profit at its true asks must never exceed its truthful profit.
    """
    mech = _resolve(mechanism)
    strategy = _markets_for(
        mech, max_offers=_MISREPORT_OFFERS, max_requests=_MISREPORT_REQUESTS, huge_prices=False
    )
    _search_markets(mech, strategy, max_examples)


def check_misreport_single_order(
    mechanism: MechanismLike, *, max_examples: int | None = None
) -> None:
    """Truthful for one order: the misreport search on markets with one non-divisible request."""
    mech = _resolve(mechanism)
    strategy = markets(
        min_offers=1,
        max_offers=_MISREPORT_OFFERS,
        min_requests=1,
        max_requests=1,
        divisible=False,
        huge_prices=False,
        quality=True,
    )
    _search_markets(mech, strategy, max_examples)


@st.composite
def _unit_trader_markets(draw: st.DrawFn, call_market: bool) -> Market:
    """Markets where every order is for one GPU and every party places one order."""
    book = draw(books(
        min_offers=2, max_offers=_MISREPORT_UNIT_ORDERS, min_requests=2,
        max_requests=_MISREPORT_UNIT_ORDERS, divisible=False, huge_prices=False,
        splittable=True, call_market=call_market,
    ))
    orders: list[Order] = [
        attrs.evolve(o, provider=f"p-{o.id}", gpus=1) if isinstance(o, Offer)
        else attrs.evolve(o, tenant=f"t-{o.id}", gpus=1)
        for o in book
    ]
    first = next(o for o in orders if isinstance(o, Offer))
    if draw(st.booleans()):  # one book for everyone: more competition, deeper crossings
        orders = [
            attrs.evolve(o, gpu_model=first.gpu_model, region=first.region,
                         vram_gb=first.vram_gb, tags=first.tags) if isinstance(o, Offer)
            else attrs.evolve(o, gpu_models=frozenset({first.gpu_model}),
                              regions=frozenset({first.region}),
                              min_vram_gb=0, required_tags=frozenset(), min_reputation=0.0)
            for o in orders
        ]
    return Market(OrderBook(orders))


def check_misreport_unit_traders(
    mechanism: MechanismLike, *, max_examples: int | None = None
) -> None:
    """Truthful for unit traders (McAfee's setting): the misreport search, over providers'
    asks and tenants' max prices, on markets where every order is for one GPU and every
    party places one order (call markets for mechanisms that need them). A tenant's utility
    is its true max price times its GPUs, minus what it pays, over its allocations."""
    mech = _resolve(mechanism)
    strategy = _unit_trader_markets(mech.tags.call_market)
    _search_markets(mech, strategy, max_examples, tenants=True)


# -- running the suite --------------------------------------------------------------------
_ALWAYS: tuple[Check, ...] = (
    check_capacity,
    check_eligibility,
    check_result_consistency,
    check_order_independence,
    check_rng,
    check_no_mutation,
    check_empty_markets,
    check_divisible_support,
    check_invalid_input,
)
_BY_TAG: tuple[tuple[str, Check], ...] = (
    ("individually_rational", check_individual_rationality),
    ("budget_balanced", check_budget_balance),
    ("truthful", check_misreport),
    ("truthful_single_order", check_misreport_single_order),
    ("truthful_unit_traders", check_misreport_unit_traders),
)


def checks_for(mechanism: MechanismLike) -> Iterator[tuple[str, Check]]:
    """The (name, check) pairs that apply to `mechanism`, chosen by its tags."""
    tags = _resolve(mechanism).tags
    if not isinstance(tags, MechanismTags):
        raise InvalidTypeError("mechanism tags", tags, "MechanismTags")
    for check in _ALWAYS:
        yield check.__name__, check
    for tag, check in _BY_TAG:
        if getattr(tags, tag):
            yield check.__name__, check


def _describe(exc: BaseException) -> str:
    lines = [f"{type(exc).__name__}: {exc}"]
    lines += [str(n) for n in getattr(exc, "__notes__", ())]
    return "\n".join(lines)


def check_mechanism(
    mechanism: MechanismLike,
    *,
    max_examples: int | None = None,
    checks: Iterable[str] | None = None,
) -> list[str]:
    """Run every applicable check on `mechanism` (or only those named in `checks`).

    Args:
        mechanism: a registry name or a mechanism instance.
        max_examples: hypothesis examples per check (default: the active profile's).
        checks: names of the checks to run (each must apply to the mechanism); None runs all.

    Returns:
        The names of the checks run (all passed).

    Raises:
        ConformanceError: naming each failed check with its falsifying example.
        InvalidValueError: `checks` names a check that does not apply.
    """
    _resolve(mechanism)  # a bad argument is a TypeError here, not a failed check
    name = mechanism_label(mechanism)
    selected = list(checks_for(mechanism))
    if checks is not None:
        wanted = list(checks)
        unknown = sorted(set(wanted) - {c for c, _ in selected})
        if unknown:
            raise InvalidValueError("checks", unknown, f"no such check applies to {name!r}")
        selected = [(c, f) for c, f in selected if c in wanted]
    failures: dict[str, str] = {}
    ran: list[str] = []
    for check_name, check in selected:
        ran.append(check_name)
        try:
            check(mechanism, max_examples=max_examples)
        except Exception as exc:  # any error is a failed check
            failures[check_name] = _describe(exc)
    if failures:
        raise ConformanceError(name, failures)
    return ran


def mechanism_label(mechanism: MechanismLike) -> str:
    """A mechanism's name, plus the options that differ from its registry defaults, if any.

    ``"first-price"``, ``"assignment(payment='vcg')"``. Options come from ``get_options()``
    (as `MechanismBase` provides); unregistered mechanisms show their name only.
    """
    if isinstance(mechanism, str):
        return mechanism
    name = mechanism.name
    get_options = getattr(mechanism, "get_options", None)
    if name not in available() or not callable(get_options):
        return name
    defaults: dict[str, Any] = getattr(get(name), "get_options", dict)()
    changed = {k: v for k, v in get_options().items() if k not in defaults or defaults[k] != v}
    if not changed:
        return name
    return f"{name}({', '.join(f'{k}={v!r}' for k, v in changed.items())})"


def parametrize_with_checks(
    mechanisms: Iterable[MechanismLike],
    *,
    expected_failed_checks: Mapping[str, Mapping[str, str]] | None = None,
    checks: Iterable[str] | None = None,
) -> pytest.MarkDecorator:
    """A ``pytest.mark.parametrize`` over (mechanism, check), one test per pair.

    Test ids read ``first-price-check_capacity``; an instance of a registered mechanism built
    with other options shows them: ``assignment(payment='vcg')-check_misreport``. The
    decorated test takes ``mechanism`` and ``check`` and calls ``check(mechanism)``::

        @parametrize_with_checks(auction.mechanisms.available())
        def test_conformance(mechanism, check):
            check(mechanism)

    Args:
        mechanisms: registry names (each check builds a fresh instance) or instances.
        expected_failed_checks: mechanism label (as in the test id) -> {check name: reason}
            for checks known to fail; each is marked as a strict xfail with that reason (it
            must fail). Naming a mechanism or check that is not there is an error.
        checks: names of the checks to parametrize over (as `check_mechanism`'s; each must
            apply to every mechanism given); None: every applicable check.
    """
    import pytest

    expected = expected_failed_checks or {}
    wanted = None if checks is None else list(checks)
    params = []
    seen: set[str] = set()
    for m in mechanisms:
        name = mechanism_label(m)
        seen.add(name)
        applicable = list(checks_for(m))
        if wanted is not None:
            missing = sorted(set(wanted) - {c for c, _ in applicable})
            if missing:
                raise InvalidValueError("checks", missing, f"no such check applies to {name!r}")
            applicable = [(c, f) for c, f in applicable if c in wanted]
        known = dict(expected.get(name, {}))
        unknown = set(known) - {c for c, _ in applicable}
        if unknown:
            raise InvalidValueError("expected_failed_checks", sorted(unknown),
                                    f"expected_failed_checks for {name!r} names unknown checks: "
                             f"{sorted(unknown)}")
        for check_name, check in applicable:
            marks = (
                [pytest.mark.xfail(reason=known[check_name], strict=True)]
                if check_name in known
                else []
            )
            params.append(pytest.param(m, check, id=f"{name}-{check_name}", marks=marks))
    stray = set(expected) - seen
    if stray:
        raise InvalidValueError("expected_failed_checks", sorted(stray),
                                f"names unknown mechanisms: {sorted(stray)}")
    return pytest.mark.parametrize(("mechanism", "check"), params)

