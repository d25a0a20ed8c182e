"""Time limits end to end (issue 12 item 2): `assignment`, `lp` (flow and HiGHS), `gang` and
the sealed-bid auctions stop at their ``time_limit`` with status ``time_limit`` and a feasible
allocation (or a typed `TimeLimitError` before they have one), never a hang; VCG payments that
cannot finish are an explicit downgrade to pay-as-bid.

Stops are forced deterministically by handing the bounded kernels a deadline already past, a
stop flag already set, or a work bound of a few units; the wall-time checks run the
adversarial instances of `benchmarks/instances.py` with a tiny limit, and slow plain-Python
kernels on multi-second markets.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import auction
import auction.kernels.assignment as assignment_kernels
import auction.mechanisms.assignment as assignment_module
import auction.solvers.flow as flow_solver
from auction.errors import TimeLimitError
from auction.market import Market
from auction.result import ClearingResult, Status

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from instances import adversarial_book


def assert_feasible(result: ClearingResult, market: Market) -> None:
    """Every request and offer within its GPUs, every pair eligible."""
    snap = market.snapshot
    req_row = {str(i): k for k, i in enumerate(snap.requests.id.tolist())}
    off_row = {str(i): k for k, i in enumerate(snap.offers.id.tolist())}
    pairs = market.pairs()
    rows = np.repeat(np.arange(market.n_requests), np.diff(pairs.indptr))
    eligible = set(zip(rows.tolist(), pairs.offers.tolist(), strict=True))
    took: dict[str, int] = {}
    gave: dict[str, int] = {}
    for rec in result.to_records():
        r, o, g = rec["request_id"], rec["offer_id"], int(rec["gpus"])
        assert (req_row[r], off_row[o]) in eligible
        took[r] = took.get(r, 0) + g
        gave[o] = gave.get(o, 0) + g
    for r, g in took.items():
        assert g <= int(snap.requests.gpus[req_row[r]])
    for o, g in gave.items():
        assert g <= int(snap.offers.gpus[off_row[o]])


def _past(real: Any) -> Any:
    def stopped(*args: Any, **kwargs: Any) -> Any:
        kwargs["deadline"] = time.monotonic() - 1.0
        return real(*args, **kwargs)
    return stopped


@pytest.mark.parametrize("payment", ["pay-as-bid", "vcg", "uniform"])
def test_assignment_stopped_by_the_deadline_returns_its_feasible_matching(
    monkeypatch: pytest.MonkeyPatch, payment: str
) -> None:
    market = Market(adversarial_book("asks-equal", 300))
    monkeypatch.setattr(assignment_module, "solve_bounded",
                        _past(assignment_kernels.solve_bounded))
    result = auction.clear(market, "assignment", payment=payment, time_limit=60)
    assert result.status is Status.TIME_LIMIT
    assert not result.success
    assert "time limit of 60 s reached in the auction" in result.message
    assert result.diagnostics["kernel_status"] == "deadline"
    assert_feasible(result, market)
    if payment == "vcg":  # VCG needs the optimum: an explicit downgrade
        assert result.payment == "pay-as-bid"
        assert result.requested_payment == "vcg"
        assert result.payment_downgraded
        assert result.diagnostics["payment_downgraded"]
        assert "payment downgraded from 'vcg'" in result.message
        assert "vcg_bonus" not in result.diagnostics


def test_assignment_stopped_by_the_work_bound_is_feasible_not_success(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    market = Market(adversarial_book("values-equal", 300))
    optimum = auction.clear(market, "assignment")
    real = assignment_kernels.solve_bounded

    def tight(*args: Any, **kwargs: Any) -> Any:
        kwargs["max_work"] = 50
        return real(*args, **kwargs)

    monkeypatch.setattr(assignment_module, "solve_bounded", tight)
    result = auction.clear(market, "assignment")
    assert result.status is Status.FEASIBLE
    assert not result.success
    assert "work bound reached in the auction" in result.message
    assert_feasible(result, market)
    assert optimum.success
    assert result.welfare <= optimum.welfare


def test_vcg_stopped_keeps_the_optimal_matching_and_downgrades_the_payment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    market = Market(adversarial_book("one-offer", 200))
    optimum = auction.clear(market, "assignment")
    monkeypatch.setattr(assignment_module, "vcg_bonuses_bounded",
                        _past(assignment_kernels.vcg_bonuses_bounded))
    result = auction.clear(market, "assignment", payment="vcg", time_limit=60)
    assert result.status is Status.TIME_LIMIT
    assert not result.success
    assert "reached in the VCG payments: the optimal allocation" in result.message
    assert result.payment == "pay-as-bid"
    assert result.payment_downgraded
    assert result.welfare == optimum.welfare
    assert result.to_records() == optimum.to_records()


def test_vcg_that_finishes_is_not_downgraded() -> None:
    result = auction.clear(adversarial_book("identical", 40), "assignment", payment="vcg")
    assert result.status is Status.SUCCESS
    assert result.payment == "vcg"
    assert not result.payment_downgraded
    assert not result.diagnostics["payment_downgraded"]


@pytest.mark.parametrize("payment", ["pay-as-bid", "vcg"])
def test_shared_shape_stopped_by_the_deadline_trades_nothing(
    monkeypatch: pytest.MonkeyPatch, payment: str
) -> None:
    """The shared shape's flow kernel stopped: an unfinished flow is not feasible, so the
    allocation is empty (nobody trading), status time_limit, VCG downgraded."""
    market = Market(adversarial_book("identical", 200))
    monkeypatch.setattr(assignment_module, "solve_flow", _past(flow_solver.solve_flow))
    result = auction.clear(market, "assignment", shape="shared", payment=payment,
                           time_limit=60)
    assert result.status is Status.TIME_LIMIT
    assert not result.success
    assert "reached in the min-cost flow" in result.message
    assert len(result) == 0
    assert result.payment_downgraded == (payment == "vcg")


def test_shared_vcg_stopped_keeps_the_optimal_allocation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    market = Market(adversarial_book("one-offer", 200))
    optimum = auction.clear(market, "assignment", shape="shared")
    real = flow_solver.solve_flow
    calls: list[int] = []

    def second_stops(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) > 1:
            kwargs["deadline"] = time.monotonic() - 1.0
        return real(*args, **kwargs)

    monkeypatch.setattr(assignment_module, "solve_flow", second_stops)
    result = auction.clear(market, "assignment", shape="shared", payment="vcg", time_limit=60)
    assert result.status is Status.TIME_LIMIT
    assert "reached in the VCG payments" in result.message
    assert result.payment_downgraded
    assert result.to_records() == optimum.to_records()


def test_no_time_for_the_build_is_a_typed_error() -> None:
    market = Market(adversarial_book("chains", 300))
    with pytest.raises(TimeLimitError) as info:
        auction.clear(market, "assignment", time_limit=1e-9)
    assert info.value.mechanism == "assignment"


CASES: list[tuple[str, dict[str, Any]]] = [
    ("assignment", {}),
    ("assignment", {"shape": "shared", "payment": "vcg"}),
    ("assignment", {"payment": "vcg"}),
    ("lp", {"backend": "flow"}),
    ("lp", {"backend": "highs"}),
    ("gang", {}),
]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["asks-equal", "values-equal", "one-offer", "chains",
                                  "identical"])
def test_tiny_time_limits_hold_end_to_end_on_adversarial_books(kind: str) -> None:
    """The whole `clear`, market build included, within the limit plus 10% and a second."""
    book = adversarial_book(kind, 800)
    limit = 0.3
    for name, opts in CASES:  # compile outside the clock: numba compiles on a kernel's first
        # call, and the full size reaches kernels (the dense JV path) a small book does not
        auction.clear(adversarial_book(kind, 8), name, **opts)
        with contextlib.suppress(TimeLimitError):
            auction.clear(Market(book), name, time_limit=limit, **opts)
    for name, opts in CASES:
        market = Market(book)
        t0 = time.perf_counter()
        try:
            result = auction.clear(market, name, time_limit=limit, **opts)
        except TimeLimitError:
            result = None
        elapsed = time.perf_counter() - t0
        assert elapsed <= 1.1 * limit + 1.0, (name, opts, elapsed)
        if result is not None:
            assert result.status in (Status.SUCCESS, Status.TIME_LIMIT), result.message
            assert result.success == (result.status is Status.SUCCESS)
            assert_feasible(result, market)
            if result.status is Status.TIME_LIMIT and opts.get("payment") == "vcg":
                assert result.payment_downgraded


def test_lp_highs_skips_the_solver_when_its_overhead_exceeds_the_time_left(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import auction.mechanisms.lp as lp_module

    monkeypatch.setattr(lp_module, "_HIGHS_OVERHEAD", 10.0)
    result = auction.clear(adversarial_book("identical", 30), "lp", backend="highs",
                           time_limit=5)
    assert result.status is Status.TIME_LIMIT
    assert "HiGHS not run" in result.message
    assert len(result) == 0


def test_gang_skips_the_milp_when_its_overhead_exceeds_the_time_left(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import auction.mechanisms.gang.mechanism as gang_mechanism

    monkeypatch.setattr(gang_mechanism, "_SOLVER_OVERHEAD", 10.0)
    market = Market(adversarial_book("one-offer", 30))
    result = auction.clear(market, "gang", time_limit=5)
    assert result.status is Status.TIME_LIMIT
    assert result.diagnostics["solver_status"] == "time_limit"
    assert result.diagnostics["solver_message"].startswith("not run")
    assert result.diagnostics["source"] == "greedy"
    assert len(result) > 0
    assert_feasible(result, market)
    assert np.isfinite(result.diagnostics["gap"])


# -- the market build counts against the limit (issue 12 item 2) ---------------------------
from bench_market import random_columns  # noqa: E402

import auction.kernels.eligibility as eligibility  # noqa: E402
import auction.market as market_module  # noqa: E402
from auction.book import OrderBook  # noqa: E402
from auction.limits import Deadline, watch  # noqa: E402


def _random_book(n_offers: int = 2000) -> OrderBook:
    return OrderBook.from_columns(*random_columns(n_offers, 4 * n_offers))


@pytest.fixture
def no_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    """Builds read the clock from the start (by default a build does about a million units
    of work first, more than these test markets hold)."""
    monkeypatch.setattr(market_module, "_GRACE_WORK", 0)


def _assert_stopped_in_time(run: Any, limit: float, stage: str) -> TimeLimitError:
    t0 = time.perf_counter()
    with pytest.raises(TimeLimitError) as info:
        run()
    elapsed = time.perf_counter() - t0
    assert elapsed <= 1.1 * limit + 1.0, elapsed
    assert stage in info.value.stage, info.value.stage
    return info.value


@pytest.mark.usefixtures("no_grace")
@pytest.mark.parametrize("name", ["first-price", "assignment"])
def test_a_slow_join_stops_at_the_time_limit_through_the_kernels_stop_flag(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """The join in one block of the plain-Python kernel (seconds on this book, many times the
    limit): the stop flag set at the deadline ends it inside the block."""
    book = _random_book()
    monkeypatch.setattr(market_module, "_USE_KERNEL", True)
    monkeypatch.setattr(eligibility, "join_block", eligibility.join_block_reference)
    err = _assert_stopped_in_time(lambda: auction.clear(book, name, time_limit=0.2), 0.2,
                                  "the market build (eligibility join)")
    assert err.mechanism == name
    assert err.time_limit == 0.2


@pytest.mark.usefixtures("no_grace")
@pytest.mark.parametrize("name", ["first-price", "assignment"])
def test_a_slow_join_stops_at_the_time_limit_between_blocks(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """The numpy join in tiny blocks, each slowed down (over 10 s in all): the clock is read
    between blocks."""
    book = _random_book()
    real = Market._eligible

    def slow(self: Market, *args: Any) -> Any:
        time.sleep(0.01)
        return real(self, *args)

    monkeypatch.setattr(market_module, "_USE_KERNEL", False)
    monkeypatch.setattr(market_module, "_BLOCK_CANDIDATES", 64)
    monkeypatch.setattr(Market, "_eligible", slow)
    _assert_stopped_in_time(lambda: auction.clear(book, name, time_limit=0.3), 0.3,
                            "the market build (eligibility join)")


@pytest.mark.usefixtures("no_grace")
def test_a_slow_pair_build_inside_the_mechanism_stops_at_its_time_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A market built beforehand, cleared by the mechanism itself (no `auction.clear`): its
    lazy pair build (slowed down, over 10 s in all) watches the mechanism's deadline."""
    market = Market(_random_book())
    real = Market._expand_pairs

    def slow(self: Market, *args: Any) -> Any:
        time.sleep(0.01)
        yield from real(self, *args)

    monkeypatch.setattr(market_module, "_BLOCK_PAIRS", 256)
    monkeypatch.setattr(Market, "_expand_pairs", slow)
    mech = auction.mechanisms.get("assignment", time_limit=0.3)
    _assert_stopped_in_time(lambda: mech.clear(market), 0.3, "the market build (eligible pairs)")
    assert "_pairs" not in vars(market)  # nothing half-built is kept


def test_the_mechanism_takes_over_the_deadline_started_before_the_build(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`auction.clear` starts the limit before the market build; a build that ends past it
    (here slowed after its last check, pairs built) leaves the mechanism no time: it stops at
    its first check instead of starting a fresh limit."""
    book = adversarial_book("chains", 60)
    real = Market.__init__

    def slow(self: Market, *args: Any, **kwargs: Any) -> None:
        real(self, *args, **kwargs)
        self.pairs()  # built (and cached) in time
        time.sleep(0.6)

    monkeypatch.setattr(Market, "__init__", slow)
    with pytest.raises(TimeLimitError) as info:
        auction.clear(book, "assignment", time_limit=0.5)
    assert info.value.stage == "building the matching problem"
    assert auction.clear(book, "assignment", time_limit=5).status is Status.SUCCESS


@pytest.mark.usefixtures("no_grace")
def test_counting_pairs_past_the_watched_deadline_is_a_typed_error() -> None:
    market = Market(_random_book())
    n = market.pair_count()
    assert n > 100_000
    with watch(Deadline(1e-9, start=time.perf_counter() - 1.0), "lp"), \
            pytest.raises(TimeLimitError) as info:
        market.pair_count()
    assert info.value.mechanism == "lp"
    assert info.value.stage == "the market build (counting the eligible pairs)"
    with watch(Deadline(None), "lp"):  # no limit: nothing checked
        assert market.pair_count() == n


@pytest.mark.parametrize("python", [False, True])
def test_join_and_count_kernels_read_the_stop_flag(python: bool) -> None:
    """With the flag set, the join returns part of a block and says it stopped, the count
    returns -1; with it clear both are complete."""
    captured: dict[str, Any] = {}
    real = eligibility.join_block

    def spy(*args: Any) -> Any:
        captured["args"] = args
        return real(*args)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(market_module, "_USE_KERNEL", True)
        mp.setattr(eligibility, "join_block", spy)
        market = Market(_random_book(400))
    join = eligibility.join_block_reference if python else eligibility.join_block
    args = list(captured["args"])
    args[-2:] = [np.ones(1, dtype=np.uint8), 0]
    p, c, stopped = join(*args)
    assert stopped
    assert len(p) < len(market.profile_classes)
    for flag, after in ((0, 0), (1, 1 << 40)):  # flag clear, or set within the grace
        args[-2:] = [np.full(1, flag, dtype=np.uint8), after]
        p, c, stopped = join(*args)
        assert not stopped
    lo, hi = args[0], args[1]
    assert c.tolist() == market.profile_classes[
        market.profile_indptr[lo]:market.profile_indptr[hi]].tolist()
    count = eligibility._group.python("count_pairs") if python else eligibility.count_pairs
    req, off = market.snapshot.requests, market.snapshot.offers
    members = market._price_members()[0]
    base = (market.request_profile, market.profile_indptr, market.profile_classes,
            market.class_indptr, members.astype(np.int64), off.price, off.gpus.astype(np.int64),
            market.offer_reputation, req.max_price, req.gpus.astype(np.int64),
            np.asarray(req.divisible | req.cluster),
            np.asarray(req.min_reputation, dtype=np.float64))
    assert count(*base, np.ones(1, dtype=np.uint8), 0) == -1
    assert count(*base, np.zeros(1, dtype=np.uint8), 0) == market.pair_count()
    assert count(*base, np.ones(1, dtype=np.uint8), 1 << 40) == market.pair_count()


@pytest.mark.parametrize("name", ["first-price", "gang"])
def test_a_small_market_is_built_whatever_the_limit(name: str) -> None:
    """A build reads the clock only after its grace (about a million orders, candidates or
    pairs), so a small market is always built and the mechanism's own convention answers:
    first-price clears, gang returns its greedy allocation with status time_limit."""
    book = adversarial_book("one-offer", 60)
    result = auction.clear(book, name, time_limit=1e-9)
    assert result.valid
    assert len(result) > 0


# -- the sealed-bid kernels read the stop flag (issue 12 item 2) ----------------------------
import auction.mechanisms.sealed_bid as sealed_bid_module  # noqa: E402


def _unreachable_floor_book(n_offers: int, n_requests: int) -> OrderBook:
    """Random orders where nine requests in ten ask a reputation no provider has: each scans
    every offer of its classes in vain (seconds for the plain-Python kernel at 5,000 x
    40,000), while the others trade."""
    offers, requests = random_columns(n_offers, n_requests)
    rng = np.random.default_rng(1)
    requests["min_reputation"] = np.where(rng.random(n_requests) < 0.9, 0.5, 0.0)
    return OrderBook.from_columns(offers, requests)


@pytest.fixture(scope="module")
def floor_market() -> Market:
    return Market(_unreachable_floor_book(5000, 40_000))


@pytest.mark.parametrize("name", ["first-price", "second-price"])
def test_sealed_bid_stops_at_the_time_limit_with_the_prefix_cleared(
    name: str, floor_market: Market
) -> None:
    """The plain-Python kernel on a multi-second market: the stop flag set at the deadline
    ends it between requests; the result is the allocation of the requests cleared before,
    in priority order, a prefix of the full result."""
    market = floor_market
    full = auction.clear(market, name, time_limit=None)
    assert full.status is Status.SUCCESS
    limit = 0.3
    t0 = time.perf_counter()
    result = auction.clear(market, name, backend="python", time_limit=limit)
    elapsed = time.perf_counter() - t0
    assert elapsed <= 1.1 * limit + 1.0, elapsed
    assert result.status is Status.TIME_LIMIT
    assert not result.success
    assert "reached in the sealed-bid kernel" in result.message
    assert result.diagnostics["kernel_status"] == "deadline"
    assert_feasible(result, market)
    records = result.to_records()
    assert records == full.to_records()[:len(records)]
    assert len(records) < len(full)


@pytest.mark.parametrize("name", ["first-price", "second-price"])
def test_sealed_bid_kernel_stopped_by_its_flag_returns_a_time_limit_result(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """The numba kernel handed a flag already set, read after a grace of 20,000 units of
    work: it stops partway, and the mechanism says so; without a limit nothing changes."""
    market = Market(_random_book(1000))
    full = auction.clear(market, name, time_limit=None)
    assert full.to_records() == auction.clear(market, name).to_records()
    monkeypatch.setattr(sealed_bid_module, "_GRACE_WORK", 20_000)
    monkeypatch.setattr(sealed_bid_module, "stop_at", lambda end: contextlib.nullcontext(
        np.ones(1, dtype=np.uint8)))
    result = auction.clear(market, name, time_limit=60)
    assert result.status is Status.TIME_LIMIT
    assert "time limit of 60 s reached in the sealed-bid kernel" in result.message
    assert_feasible(result, market)
    records = result.to_records()
    assert 0 < len(records) < len(full)
    assert records == full.to_records()[:len(records)]
