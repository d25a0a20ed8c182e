"""Time limits end to end (issue 12 item 2): `assignment`, `lp` (flow and HiGHS) and `gang`
stop at their ``time_limit`` with status ``time_limit`` and a feasible allocation (or a typed
`TimeLimitError` before they have one), never a hang; VCG payments that cannot finish are an
explicit downgrade to pay-as-bid.

Stops are forced deterministically by handing the bounded kernels a deadline already past or
a work bound of a few units; the wall-time check runs the adversarial instances of
`benchmarks/instances.py` with a tiny limit.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import auction
import auction.mechanisms.assignment as assignment_module
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
                        _past(assignment_module.solve_bounded))
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
    real = assignment_module.solve_bounded

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
                        _past(assignment_module.vcg_bonuses_bounded))
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
    monkeypatch.setattr(assignment_module, "solve_flow", _past(assignment_module.solve_flow))
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
    real = assignment_module.solve_flow
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


CASES = [
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
    for name, opts in CASES:
        auction.clear(adversarial_book(kind, 8), name, **opts)  # compile outside the clock
    limit = 0.3
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
