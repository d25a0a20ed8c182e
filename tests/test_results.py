"""Results and mechanisms as values: pickling, deep copies, process pools, statuses, limits."""

from __future__ import annotations

import copy
import pickle
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

import auction
from auction.demo import example_book
from auction.errors import (
    GangSolverError,
    InvalidOptionError,
    MemoryLimitError,
    SolverError,
    TimeLimitError,
    UnsupportedMarketError,
)
from auction.limits import Deadline, check_memory, default_max_memory
from auction.mechanisms import Alternative
from auction.result import ClearingResult, Status

MECHANISMS = ["first-price", "second-price", "assignment", "gang"]


def _clear(name: str) -> ClearingResult:
    return auction.clear(example_book(0), name)


@pytest.mark.parametrize("name", MECHANISMS)
def test_results_pickle_and_deep_copy(name: str) -> None:
    result = _clear(name)
    for again in (pickle.loads(pickle.dumps(result)), copy.deepcopy(result), copy.copy(result)):
        assert again.to_dict() == result.to_dict()
        assert again.status is result.status
        assert dict(again.diagnostics).keys() == dict(result.diagnostics).keys()
        assert not again.gpus.flags.writeable  # columns stay read-only
        with pytest.raises(TypeError):
            again.options["payment"] = "x"  # type: ignore[index]


@pytest.mark.slow  # worker processes import the library and compile kernels
def test_results_come_back_from_a_process_pool() -> None:
    with ProcessPoolExecutor(max_workers=2) as pool:
        got = list(pool.map(_clear, MECHANISMS))
    for name, result in zip(MECHANISMS, got, strict=True):
        assert result.to_dict() == _clear(name).to_dict()


def test_mechanisms_and_errors_pickle() -> None:
    for name in auction.mechanisms.available():
        mech = auction.mechanisms.get(name)
        assert pickle.loads(pickle.dumps(mech)) == mech
    errors = [
        UnsupportedMarketError("m", "why", ["first-price", ("assignment", {"shape": "shared"})]),
        SolverError("m", "s", "r"), GangSolverError("gang", "highs", "r"),
        TimeLimitError("m", 1.5, "solving"), MemoryLimitError("m", "pairs", 10, 5, "advice"),
        InvalidOptionError("theta", 1, "too small", mechanism="assignment"),
    ]
    for err in errors:
        again = pickle.loads(pickle.dumps(err))
        assert type(again) is type(err)
        assert str(again) == str(err)
    alt = pickle.loads(pickle.dumps(errors[0])).alternatives[1]
    assert (alt.name, dict(alt.options)) == ("assignment", {"shape": "shared"})


def test_success_means_proven() -> None:
    result = _clear("first-price")
    assert result.success
    for status in (Status.FEASIBLE, Status.TIME_LIMIT, Status.FAILED):
        other = pickle.loads(pickle.dumps(result))
        object.__setattr__(other, "status", status)
        assert not other.success
        assert other.valid is (status is not Status.FAILED)


def test_gang_payment_downgrade_is_explicit() -> None:
    """Two 1-GPU offers and a 2-GPU whole request: no item prices support it."""
    book = auction.OrderBook([
        auction.Offer(id="a", provider="p", gpu_model="H100", gpus=2, price=1, region="x",
                      vram_gb=80),
        auction.Request(id="r", tenant="t", gpus=2, max_price=10),
        auction.Request(id="s", tenant="u", gpus=1, max_price=9),
    ])
    result = auction.clear(book, "gang", payment="uniform")
    assert result.requested_payment == "uniform"
    if result.payment == "pay-as-bid":
        assert result.payment_downgraded
        assert result.diagnostics["payment_downgraded"]
        assert "downgraded" in result.message
    else:
        assert not result.payment_downgraded


def test_typed_alternatives_resolve() -> None:
    book = auction.OrderBook([
        auction.Offer(id="o", provider="p", gpu_model="H100", gpus=4, price=1, region="x",
                      vram_gb=80),
        auction.Request(id="r", tenant="t", gpus=2, max_price=5),
    ])
    with pytest.raises(UnsupportedMarketError) as info:
        auction.clear(book, "lp")
    alts = info.value.alternatives
    assert all(isinstance(a, Alternative) for a in alts)
    assert alts[0] == "gang"
    assert "assignment (shape='exclusive')" in alts
    shaped = alts[alts.index("assignment (shape='exclusive')")]
    assert shaped.name == "assignment"
    assert shaped.options == {"shape": "exclusive"}
    for alt in alts:
        mech = auction.mechanisms.resolve(alt)
        assert auction.clear(book, mech).welfare == 8
    assert Alternative.parse("assignment (shape='shared', theta=4)").options == {
        "shape": "shared", "theta": 4}


def test_deadline() -> None:
    unlimited = Deadline.after(None)
    assert unlimited.remaining() is None
    assert not unlimited.expired()
    unlimited.check("m", "x")
    gone = Deadline(0.5, start=0.0)  # started long ago
    assert gone.expired()
    assert gone.remaining() == 0.0
    with pytest.raises(TimeLimitError, match="during solving") as info:
        gone.check("m", "solving")
    assert isinstance(info.value, auction.AuctionError)
    assert info.value.time_limit == 0.5


def test_memory_limit_refuses_before_allocating() -> None:
    assert default_max_memory() > 0
    check_memory("m", "pairs", 10, 100, "advice")
    with pytest.raises(MemoryLimitError, match="raise max_memory") as info:
        auction.clear(example_book(0), "assignment", max_memory=1000)
    err = info.value
    assert err.estimate > err.limit == 1000
    assert "eligible (request, offer) pairs" in err.what
    assert isinstance(err, MemoryError)
    assert isinstance(err, auction.AuctionError)
    # the streaming sealed-bid kernels hold no per-pair arrays: no estimate, no refusal
    assert auction.clear(example_book(0), "first-price", max_memory=1000).success


@pytest.mark.parametrize("name", ["assignment", "lp", "gang", "first-price", "sbba"])
def test_every_mechanism_takes_the_common_options(name: str) -> None:
    mech = auction.mechanisms.get(name, time_limit=12, max_memory=2**30)
    assert mech.get_options()["time_limit"] == 12.0  # type: ignore[attr-defined]
    assert mech.get_options()["max_memory"] == 2**30  # type: ignore[attr-defined]
    for bad in ({"time_limit": 0}, {"time_limit": "5"}, {"max_memory": -1}):
        with pytest.raises(InvalidOptionError) as info:
            auction.mechanisms.get(name, **bad)
        assert info.value.field in bad


def test_gang_time_limit_is_a_status_with_a_valid_allocation() -> None:
    market = auction.Market(example_book(0))
    result = auction.clear(market, "gang", time_limit=1e-6)
    assert result.status is Status.TIME_LIMIT
    assert not result.success
    assert result.valid
    assert result.diagnostics["objective"] == result.welfare


def test_rng_forms_are_one_argument() -> None:
    from auction.mechanisms import resolve_rng

    g = np.random.default_rng(1)
    assert resolve_rng(g) is g
    assert resolve_rng(None) is None
    a, b = resolve_rng(5), resolve_rng(np.random.SeedSequence(5))
    assert a is not None
    assert b is not None
    assert a.integers(0, 2**62) == b.integers(0, 2**62)
    with pytest.raises(auction.errors.InvalidValueError, match="rng"):
        resolve_rng(1.5)
