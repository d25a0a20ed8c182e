"""The conformance suite over every registered mechanism, and proof that it can fail.

Broken toy mechanisms below each violate one property; the suite must catch each one, and only
that one, so that a passing run over the real mechanisms means something.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

import attrs
import numpy as np
import pytest
from hypothesis import Phase, find, given, settings
from hypothesis import strategies as st

import auction
from auction import Market, Offer, OrderBook, Request
from auction.mechanisms import Mechanism, MechanismBase, MechanismTags
from auction.mechanisms.sealed_bid import FirstPrice
from auction.result import ClearingResult
from auction.testing import (
    SAFE_AMOUNT,
    Check,
    ConformanceError,
    books,
    check_capacity,
    check_mechanism,
    checks_for,
    is_eligible,
    markets,
    mechanism_label,
    parametrize_with_checks,
)
from auction.testing.oracles import reputation_of

# -- every registered mechanism -----------------------------------------------------------


@parametrize_with_checks(auction.mechanisms.available())
def test_registered_mechanism_conforms(mechanism: str, check: Check) -> None:
    check(mechanism)


def _payment_variants() -> list[Mechanism]:
    """Each registered mechanism once more per payment rule beyond its default: promises such
    as truthfulness may hold for one rule only, so each rule gets its own checks."""
    mechanisms = auction.mechanisms
    return [
        mechanisms.get(name, payment=payment)
        for name in mechanisms.available()
        for payment in mechanisms.tags_of(name).payments[1:]
    ]


@parametrize_with_checks(_payment_variants())
def test_payment_rule_conforms(mechanism: Mechanism, check: Check) -> None:
    check(mechanism)


@parametrize_with_checks(
    [auction.mechanisms.get("assignment", shape="shared", payment=p) for p in ("pay-as-bid", "vcg")]
)
def test_shared_capacity_assignment_conforms(mechanism: Mechanism, check: Check) -> None:
    check(mechanism)


# -- broken toy mechanisms -----------------------------------------------------------------


def _greedy(
    market: Market, *, priority: bool = True, consume: bool = True
) -> tuple[list[int], list[int], list[int]]:
    """Each request (non-divisible) takes its best-ranked eligible offer with room.

    ``priority=False`` serves requests in row order (the order they were added), and
    ``consume=False`` never uses up capacity: the two bugs the toys below carry.
    """
    pairs = market.pairs()
    remaining = market.snapshot.offers.gpus.tolist()
    gpus = market.snapshot.requests.gpus.tolist()
    order = market.request_order.tolist() if priority else list(range(market.n_requests))
    rows, offs, got = [], [], []
    for r in order:
        for o in pairs.offers[pairs.indptr[r] : pairs.indptr[r + 1]].tolist():
            if remaining[o] >= gpus[r]:
                if consume:
                    remaining[o] -= gpus[r]
                rows.append(r)
                offs.append(o)
                got.append(gpus[r])
                break
    return rows, offs, got


class _Toy(MechanismBase):
    """A pay-as-bid greedy mechanism for non-divisible markets; subclasses break it."""

    tags = MechanismTags(payments=("pay-as-bid",), divisible=False)
    priority = True
    consume = True

    # the documented deadline-less form, which MechanismBase.clear calls with (market, rng);
    # no library mechanism uses it, so these tests keep it covered
    def _clear(  # type: ignore[override]
        self, market: Market, rng: np.random.Generator | None
    ) -> ClearingResult:
        rows, offs, got = _greedy(market, priority=self.priority, consume=self.consume)
        prices = market.snapshot.offers.price[np.asarray(offs, dtype=np.int64)]
        return ClearingResult.from_allocation(
            market, rows, offs, got, self._prices(market, rows, prices),
            mechanism=self.name, payment=self.payment,
        )

    def _prices(self, market: Market, rows: list[int], asks: np.ndarray) -> np.ndarray:
        return asks


class OverCapacity(_Toy):
    """Never consumes capacity, so several requests share one offer's GPUs."""

    name = "over-capacity"
    consume = False


class RowOrder(_Toy):
    """Serves requests in the order they were added instead of by priority."""

    name = "row-order"
    priority = False


class AboveMaxPrice(_Toy):
    """Charges one unit above the tenant's max price."""

    name = "above-max-price"

    def _prices(self, market: Market, rows: list[int], asks: np.ndarray) -> np.ndarray:
        maxp = market.snapshot.requests.max_price[np.asarray(rows, dtype=np.int64)]
        return maxp + 1


class LyingFirstPrice(FirstPrice):
    """Pay-as-bid, but tagged truthful: providers gain by asking more."""

    name = "lying-first-price"
    tags = MechanismTags(payments=("pay-as-bid",), divisible=True, truthful=True)


class NeverProven(_Toy):
    """Reports every result as merely feasible, like a solver that always hits its time
    limit: sound allocations, but empty markets do not clear with status success."""

    name = "never-proven"

    # the documented deadline-less form, which MechanismBase.clear calls with (market, rng);
    # no library mechanism uses it, so these tests keep it covered
    def _clear(  # type: ignore[override]
        self, market: Market, rng: np.random.Generator | None
    ) -> ClearingResult:
        result = super()._clear(market, rng)
        return attrs.evolve(result, status=auction.Status.FEASIBLE)


class RefusesSilently(_Toy):
    """Refuses markets with several requests, but names no alternative."""

    name = "refuses-silently"

    # the documented deadline-less form, which MechanismBase.clear calls with (market, rng);
    # no library mechanism uses it, so these tests keep it covered
    def _clear(  # type: ignore[override]
        self, market: Market, rng: np.random.Generator | None
    ) -> ClearingResult:
        if market.n_requests > 1:
            raise auction.UnsupportedMarketError(self.name, "too many requests")
        return super()._clear(market, rng)


class Sound(_Toy):
    """The toy without a bug, which the suite must accept (so the toys' failures are theirs)."""

    name = "sound-toy"


@pytest.mark.parametrize(
    ("toy", "failing"),
    [
        (OverCapacity, "check_capacity"),
        (RowOrder, "check_order_independence"),
        (AboveMaxPrice, "check_individual_rationality"),
        (LyingFirstPrice, "check_misreport"),
    ],
    ids=lambda v: v if isinstance(v, str) else v.name,
)
@pytest.mark.usefixtures("no_shrinking")
def test_suite_catches_broken_mechanism(toy: Callable[[], MechanismBase], failing: str) -> None:
    """Each toy is `Sound` plus one bug: the check for that bug catches it. (That the other
    checks pass on the toy is `Sound`'s test: only the bug differs.)"""
    with pytest.raises(ConformanceError) as info:
        # each toy is caught in > 10% of examples
        check_mechanism(toy(), max_examples=100, checks=[failing])
    err = info.value
    assert isinstance(err, AssertionError)
    assert set(err.failures) == {failing}
    text = str(err)
    assert failing in text
    assert "market = Market(OrderBook(orders)" in text  # the falsifying market, rebuildable


def test_suite_accepts_sound_toy() -> None:
    ran = check_mechanism(Sound(), max_examples=10)
    assert "check_capacity" in ran
    assert "check_misreport" not in ran
    # the toys' bugs are theirs alone: each toy with its bug's check left out conforms
    for toy, failing in ((OverCapacity, "check_capacity"),
                         (RowOrder, "check_order_independence"),
                         (AboveMaxPrice, "check_individual_rationality")):
        others = [c for c, _ in checks_for(toy()) if c != failing]
        assert check_mechanism(toy(), max_examples=5, checks=others) == others


def test_check_mechanism_runs_named_checks_only() -> None:
    assert check_mechanism(Sound(), max_examples=2, checks=["check_capacity"]) == [
        "check_capacity"]
    with pytest.raises(ValueError, match="check_misreport"):
        check_mechanism(Sound(), checks=["check_misreport"])  # not tagged truthful


@parametrize_with_checks(
    [NeverProven()],
    expected_failed_checks={"never-proven": {"check_empty_markets": "never proves optimality"}},
    checks=["check_empty_markets", "check_capacity"],  # the target, and one that passes
)
def test_expected_failed_checks_escape_hatch(mechanism: MechanismBase, check: Check) -> None:
    check(mechanism)


# -- the machinery ---------------------------------------------------------------------------


def test_checks_follow_tags() -> None:
    def names(tags: MechanismTags) -> set[str]:
        class Tagged(Sound):
            pass

        Tagged.tags = tags
        return {n for n, _ in checks_for(Tagged())}

    base = names(MechanismTags(divisible=False))
    assert "check_capacity" in base
    assert "check_individual_rationality" in base
    assert "check_budget_balance" in base
    assert "check_misreport" not in base
    assert "check_misreport_single_order" not in base
    loose = names(MechanismTags(individually_rational=False, budget_balanced=False))
    assert "check_individual_rationality" not in loose
    assert "check_budget_balance" not in loose
    assert "check_misreport" in names(MechanismTags(truthful=True))
    assert "check_misreport_single_order" in names(MechanismTags(truthful_single_order=True))


def test_parametrize_ids_and_marks() -> None:
    mark = parametrize_with_checks(
        ["first-price", "second-price"],
        expected_failed_checks={"first-price": {"check_rng": "a reason"}},
    )
    assert mark.args[0] == ("mechanism", "check")
    params = {p.id: p for p in mark.args[1]}
    assert "first-price-check_capacity" in params
    assert "second-price-check_misreport_single_order" in params
    assert "first-price-check_misreport_single_order" not in params
    assert "second-price-check_misreport" not in params
    (xfail,) = params["first-price-check_rng"].marks
    assert xfail.name == "xfail"
    assert xfail.kwargs == {"reason": "a reason", "strict": True}
    assert list(params["first-price-check_capacity"].marks) == []
    assert params["first-price-check_capacity"].values[0] == "first-price"


def test_parametrize_selects_checks() -> None:
    mark = parametrize_with_checks(["first-price", "second-price"], checks=["check_capacity"])
    assert [p.id for p in mark.args[1]] == ["first-price-check_capacity",
                                            "second-price-check_capacity"]
    mark = parametrize_with_checks(
        ["first-price"], checks=["check_rng", "check_capacity"],
        expected_failed_checks={"first-price": {"check_rng": "a reason"}},
    )
    assert sorted(p.id for p in mark.args[1]) == ["first-price-check_capacity",
                                                  "first-price-check_rng"]
    with pytest.raises(ValueError, match="check_misreport_single_order"):
        parametrize_with_checks(["first-price"], checks=["check_misreport_single_order"])
    with pytest.raises(ValueError, match="check_rng"):  # an expected failure not selected
        parametrize_with_checks(["first-price"], checks=["check_capacity"],
                                expected_failed_checks={"first-price": {"check_rng": "x"}})


def test_parametrize_rejects_unknown_expected_failures() -> None:
    with pytest.raises(ValueError, match="check_nothing"):
        parametrize_with_checks(
            ["first-price"], expected_failed_checks={"first-price": {"check_nothing": "x"}}
        )
    with pytest.raises(ValueError, match="no-such-mechanism"):
        parametrize_with_checks(
            ["first-price"], expected_failed_checks={"no-such-mechanism": {"check_rng": "x"}}
        )


class RefusesWithAlternatives(Sound):
    """Refuses markets with several requests, naming mechanisms that can: allowed."""

    name = "refuses-politely"

    # the documented deadline-less form, which MechanismBase.clear calls with (market, rng);
    # no library mechanism uses it, so these tests keep it covered
    def _clear(  # type: ignore[override]
        self, market: Market, rng: np.random.Generator | None
    ) -> ClearingResult:
        if market.n_requests > 1:
            raise auction.UnsupportedMarketError(self.name, "too many requests", ["first-price"])
        return super()._clear(market, rng)


class OverflowsEarly(Sound):
    """Raises AuctionOverflowError on prices above 10: allowed only from `SAFE_AMOUNT` up."""

    name = "overflows-early"
    limit = 10

    # the documented deadline-less form, which MechanismBase.clear calls with (market, rng);
    # no library mechanism uses it, so these tests keep it covered
    def _clear(  # type: ignore[override]
        self, market: Market, rng: np.random.Generator | None
    ) -> ClearingResult:
        amounts = [*market.snapshot.offers.price.tolist(),
                   *market.snapshot.requests.max_price.tolist()]
        if max(amounts, default=0) > self.limit:
            raise auction.errors.AuctionOverflowError("amounts too large")
        return super()._clear(market, rng)


class OverflowsLate(OverflowsEarly):
    name = "overflows-late"
    limit = SAFE_AMOUNT - 1


def test_typed_refusals_follow_the_contract() -> None:
    """Refusing with alternatives, or refusing huge amounts, conforms; refusing without
    alternatives, or refusing small amounts with AuctionOverflowError, does not."""
    check_capacity(RefusesWithAlternatives(), max_examples=30)
    check_capacity(OverflowsLate(), max_examples=30)
    with pytest.raises(AssertionError, match="without alternatives"):
        check_capacity(RefusesSilently(), max_examples=100)
    with pytest.raises(AssertionError, match="below 2\\*\\*31"):
        check_capacity(OverflowsEarly(), max_examples=100)


def test_labels_show_non_default_options() -> None:
    assert mechanism_label("first-price") == "first-price"
    assert mechanism_label(FirstPrice()) == "first-price"
    assert mechanism_label(FirstPrice(backend="python")) == "first-price(backend='python')"
    assert mechanism_label(Sound()) == "sound-toy"  # not registered: name only


def test_check_mechanism_passes_on_registered_name() -> None:
    ran = check_mechanism("second-price", max_examples=5)
    assert "check_misreport_single_order" in ran
    assert "check_invalid_input" in ran


def test_check_mechanism_rejects_non_mechanisms() -> None:
    with pytest.raises(TypeError):
        check_mechanism(42)  # type: ignore[arg-type]
    with pytest.raises(auction.MechanismNotFoundError):
        check_mechanism("no-such-mechanism")


def test_import_auction_does_not_import_hypothesis() -> None:
    code = (
        "import sys, auction; auction.clear(auction.OrderBook(), 'first-price'); "
        "assert 'hypothesis' not in sys.modules, 'hypothesis imported'; "
        "import auction.testing; assert 'hypothesis' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- the oracle and the strategies ----------------------------------------------------------


@given(market=markets(max_offers=8, max_requests=8))
def test_oracle_eligibility_matches_market_pairs(market: Market) -> None:
    """The object-level oracle and the market's vectorized pairs agree exactly."""
    snap = market.snapshot
    pairs = market.pairs()
    got = {
        (r, int(o))
        for r in range(market.n_requests)
        for o in pairs.offers[pairs.indptr[r] : pairs.indptr[r + 1]]
    }
    want = {
        (r, o)
        for r in range(market.n_requests)
        for o in range(market.n_offers)
        if is_eligible(
            snap.offer(o), snap.request(r), reputation_of(market, snap.offer(o).provider)
        )
    }
    assert got == want


_OFFER = Offer(
    id="o", provider="p", gpu_model="H100", gpus=4, price=5, region="eu", vram_gb=80,
    tags=frozenset({"soc2", "nvlink"}),
)
_REQUEST = Request(id="r", tenant="t", gpus=4, max_price=5)


@pytest.mark.parametrize(
    ("changes", "reputation", "eligible"),
    [
        ({}, 0.0, True),
        ({"gpu_models": frozenset({"H100", "A100"})}, 0.0, True),
        ({"gpu_models": frozenset({"A100"})}, 0.0, False),
        ({"regions": frozenset({"eu"})}, 0.0, True),
        ({"regions": frozenset({"us"})}, 0.0, False),
        ({"min_vram_gb": 80}, 0.0, True),
        ({"min_vram_gb": 81}, 0.0, False),
        ({"required_tags": frozenset({"soc2", "nvlink"})}, 0.0, True),
        ({"required_tags": frozenset({"soc2", "hipaa"})}, 0.0, False),
        ({"min_reputation": 0.5}, 0.5, True),
        ({"min_reputation": 0.5}, 0.4, False),
        ({"max_price": 4}, 0.0, False),
        ({"gpus": 5}, 0.0, False),
        ({"gpus": 5, "divisible": True}, 0.0, True),
    ],
)
def test_is_eligible_rules(changes: dict[str, Any], reputation: float, eligible: bool) -> None:
    assert is_eligible(_OFFER, attrs.evolve(_REQUEST, **changes), reputation) is eligible


#: `find` without shrinking: any example will do, and shrinking markets is slow.
_FIND = settings(max_examples=500, phases=[Phase.generate], database=None)


@pytest.mark.parametrize(
    ("what", "predicate"),
    [
        ("no offers", lambda b: b.n_offers == 0 and b.n_requests > 0),
        ("no requests", lambda b: b.n_requests == 0 and b.n_offers > 0),
        ("equal prices", lambda b: len({o.price for o in b.offers()}) < b.n_offers),
        (
            "equal price and submitted_at",
            lambda b: len({(o.price, o.submitted_at) for o in b.offers()}) < b.n_offers,
        ),
        (
            "several offers per provider",
            lambda b: len({o.provider for o in b.offers()}) < b.n_offers,
        ),
        (
            "more GPUs wanted than offered",
            lambda b: b.n_offers > 0
            and sum(r.gpus for r in b.requests()) > sum(o.gpus for o in b.offers()),
        ),
        ("a model nobody offers", lambda b: any("B200" in r.gpu_models for r in b.requests())),
        ("a region nobody serves", lambda b: any("ap-south" in r.regions for r in b.requests())),
        (
            "a tag nobody has",
            lambda b: any("audited-by:nobody" in r.required_tags for r in b.requests()),
        ),
        ("a divisible request", lambda b: any(r.divisible for r in b.requests())),
        ("a huge price", lambda b: any(o.price >= 2**62 for o in b.offers())),
    ],
)
def test_books_generate_hard_cases(what: str, predicate: Callable[[OrderBook], bool]) -> None:
    """The strategies reach the cases mechanisms get wrong (`find` fails if they never do)."""
    assert predicate(find(books(), predicate, settings=_FIND))


def test_markets_generate_reputation_floor_above_everyone() -> None:
    def above_all(m: Market) -> bool:
        reqs = m.snapshot.request_list()
        reps = [reputation_of(m, o.provider) for o in m.snapshot.offer_list()]
        return bool(reps) and any(r.min_reputation > max(reps) for r in reqs)

    assert above_all(find(markets(), above_all, settings=_FIND))


@given(book=books(divisible=False, max_offers=10, max_requests=10))
def test_books_respect_options(book: OrderBook) -> None:
    assert not any(r.divisible for r in book.requests())
    ids = [o.id for o in book]
    assert len(ids) == len(set(ids))
    assert book.n_offers <= 10
    assert book.n_requests <= 10


@given(st.data())
def test_describe_market_rebuilds_the_market(data: st.DataObject) -> None:
    from auction.testing import describe_market

    market = data.draw(markets())
    namespace: dict[str, object] = {}
    exec(  # the printed falsifying example must run as written
        "from auction import Market, Offer, OrderBook, Request\n" + describe_market(market),
        namespace,
    )
    rebuilt = namespace["market"]
    assert isinstance(rebuilt, Market)
    assert rebuilt.snapshot.to_records() == market.snapshot.to_records()
    assert rebuilt.reputation == market.reputation
    assert rebuilt.default_reputation == market.default_reputation
