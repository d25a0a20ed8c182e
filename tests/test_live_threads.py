"""Threads: independent markets cleared in a ThreadPoolExecutor (the nogil kernels run at
once) give exactly the results they give one after another; one market shared by threads
applies every input once. No timing is asserted (the speed-up is in bench_live.py)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

import auction
from auction import Market, Offer, OrderBook, Request
from auction.live import LiveMarket


def book(seed: int, n_off: int = 60, n_req: int = 120) -> OrderBook:
    rng = np.random.default_rng(seed)
    orders: list[Offer | Request] = [
        Offer(id=f"o{i}", provider=f"p{i % 7}", gpu_model=["H100", "A100"][i % 2],
              gpus=int(rng.integers(1, 9)), price=int(rng.integers(50, 150)),
              region=["us", "eu"][int(rng.integers(0, 2))], vram_gb=80, submitted_at=i)
        for i in range(n_off)]
    orders += [
        Request(id=f"r{i}", tenant=f"t{i % 5}", gpus=int(rng.integers(1, 5)),
                max_price=int(rng.integers(40, 170)), divisible=bool(rng.random() < 0.2),
                gpu_models=frozenset() if i % 3 else frozenset({"H100"}), submitted_at=i)
        for i in range(n_req)]
    return OrderBook(orders)


@pytest.mark.parametrize("mechanism", ["first-price", "second-price", "assignment"])
def test_prebuilt_markets_clear_in_threads_as_in_sequence(mechanism: str) -> None:
    markets = [Market(book(k), {f"p{j}": 0.5 + j / 20 for j in range(7)},
                      quality_weight=10 * (k % 2)) for k in range(6)]

    def run(m: Market) -> dict[str, Any]:
        return auction.clear(m, mechanism).to_dict()

    sequential = [run(m) for m in markets]
    with ThreadPoolExecutor(2) as pool:
        threaded = list(pool.map(run, markets))
    assert threaded == sequential
    assert all(r["allocations"] for r in sequential)


def test_continuous_scoring_markets_in_threads_as_in_sequence() -> None:
    def run(seed: int) -> list[dict[str, Any]]:
        m = LiveMarket(rule="price-time", quality={f"p{j}": j / 6 for j in range(7)},
                       quality_weight=25)
        out = []
        for k, o in enumerate(sorted(book(seed), key=lambda o: (o.submitted_at, o.id))):
            out += [e.to_record() for e in m.submit(o, at=k, event_id=f"in-{o.id}")]
        return out

    sequential = [run(k) for k in range(4)]
    with ThreadPoolExecutor(2) as pool:
        threaded = list(pool.map(run, range(4)))
    assert threaded == sequential
    assert all(any(e["kind"] == "fill" for e in out) for out in sequential)


def test_one_market_from_threads_with_retries_applies_each_input_once() -> None:
    m = LiveMarket(rule="price-time", id_window=16)
    orders = sorted(book(9), key=lambda o: (o.submitted_at, o.id))

    def send(k: int) -> int:
        o = orders[k]
        n = 0
        for _ in range(3):  # the same input three times, from whichever thread runs it
            n += bool(m.submit(o, at=0, event_id=f"in-{o.id}"))
        return n

    with ThreadPoolExecutor(4) as pool:
        applied = list(pool.map(send, range(len(orders))))
    assert applied == [1] * len(orders)  # all at one instant: every id is remembered
    assert m.seq == len(m.recent) + len(orders)  # one input and its outputs each
