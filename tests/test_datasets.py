"""The example markets of `auction.datasets`: deterministic, realistic, and what the demo and
the simulation use."""

from __future__ import annotations

import numpy as np
import pytest

import auction
from auction import InvalidValueError, Market, Offer, OrderBook, Request
from auction.datasets import (
    GPU_MODELS,
    N_REQUESTS,
    REGIONS,
    as_exchange,
    example_book,
    example_exchange_book,
    example_history,
    example_reputation,
    example_request,
)


def test_same_seed_same_book_other_seed_other_book() -> None:
    assert example_book(4).to_records() == example_book(4).to_records()
    assert example_book(4).to_records() != example_book(5).to_records()
    assert example_exchange_book(4).to_records() == example_exchange_book(4).to_records()
    assert example_reputation(4) == example_reputation(4)


def test_example_book_is_realistic() -> None:
    book = example_book(0)
    requests, offers = book.requests(), book.offers()
    assert len(requests) == N_REQUESTS
    assert 100 < len(offers) < 300
    asks = {g.model: (g.low_units, g.high_units) for g in GPU_MODELS}
    for o in offers:
        lo, hi = asks[o.gpu_model]
        assert lo <= o.price <= hi, o  # asks stay in each model's quoted range
        assert o.region in REGIONS
    assert {r.gpus for r in requests} <= {1, 2, 4, 8}
    assert set(example_reputation(0)) == {o.provider for o in offers}


def test_exchange_book_is_one_instrument_per_request() -> None:
    book = example_exchange_book(0)
    assert [o.id for o in book.offers()] == [o.id for o in example_book(0).offers()]
    for r in book.requests():
        assert r.divisible
        assert len(r.gpu_models) == 1
        assert len(r.regions) == 1
        assert not r.required_tags
    assert all(not o.tags for o in book.offers())
    market = Market(book)
    for name in ("lp", "uniform-price", "mcafee", "sbba"):
        assert auction.clear(market, name, rng=0).n_allocations > 0, name


def test_generators_are_public_and_seeded() -> None:
    a = [example_request(i, np.random.default_rng(9)) for i in range(3)]
    b = [example_request(i, np.random.default_rng(9)) for i in range(3)]
    assert a == b
    assert [r.id for r in a] == ["req-0001", "req-0002", "req-0003"]
    custom = example_request(0, np.random.default_rng(1), rid="x", submitted_at=7)
    assert (custom.id, custom.submitted_at) == ("x", 7)
    pinned = as_exchange(custom, np.random.default_rng(2))
    assert isinstance(pinned, Request)
    assert pinned.divisible
    assert len(pinned.gpu_models) == 1
    offer = example_book(0).offers()[0]
    assert isinstance(offer, Offer)
    traded = as_exchange(offer, np.random.default_rng(0))
    assert isinstance(traded, Offer)
    assert traded.tags == frozenset()


def test_history_covers_every_provider() -> None:
    events = example_history(0)
    providers = {e.provider for e in events}
    assert set(example_reputation(0)) <= providers


@pytest.mark.parametrize("seed", [-1, 1.5, True, "0"])
def test_bad_seed_is_a_typed_error(seed: object) -> None:
    with pytest.raises(InvalidValueError, match="seed"):
        example_book(seed)  # type: ignore[arg-type]


def test_demo_and_simulation_use_the_datasets() -> None:
    from auction import datasets, demo, simulation

    assert demo.example_book is datasets.example_book
    assert auction.datasets is datasets
    flow = simulation.ExampleFlow(seed=0)
    orders = flow(0, np.random.default_rng(0))
    offers = [o for o in orders if isinstance(o, Offer)]
    assert offers == example_book(0).offers()
    assert isinstance(OrderBook(orders), OrderBook)
