"""Threads: independent markets cleared in a ThreadPoolExecutor (the nogil kernels run at
once) give exactly the results they give one after another; one market shared by threads
applies every input once; every kernel releases the GIL while it runs (a pure-Python thread
keeps running: `auction.kernels.jit.gil_probe`). No timing is asserted, only how long a
spinning thread stood still relative to the kernel's own run, with wide margins (the speed-up
is in bench_live.py)."""

from __future__ import annotations

import importlib
import pkgutil
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

import auction
import auction.kernels
from auction import Market, Offer, OrderBook, Request
from auction.kernels.jit import CACHE_ENV, LazyKernel, gil_probe, nogil_kernels
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


# -- the GIL: released while every kernel runs ------------------------------------------------
def test_every_kernel_is_compiled_nogil() -> None:
    for mod in pkgutil.iter_modules(auction.kernels.__path__):
        importlib.import_module(f"auction.kernels.{mod.name}")
    importlib.import_module("auction.reputation.models")
    flags = {k: v for k, v in nogil_kernels().items() if k.startswith("auction.")}
    assert len(flags) > 30
    assert [k for k, nogil in flags.items() if not nogil] == []


def _spin(n: int) -> int:
    x = 0
    for i in range(n):
        x = (x * 1103515245 + 12345 + i) % 2147483647
    return x


def _long_probe(run: Any, size: int, at_least: float = 0.2) -> Any:
    """Probe `run(size)`, doubling `size` until its longest kernel call lasts `at_least`
    seconds (so a stall far below it means something on any machine)."""
    for _ in range(10):
        p = gil_probe(lambda: run(size))  # noqa: B023 (called at once)
        if p.longest >= at_least:
            return p
        size *= 2
    return p


@pytest.mark.slow  # two compiles without the disk cache: over 3 s on a loaded machine
def test_the_probe_tells_a_kernel_holding_the_gil_from_one_releasing_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The control: one loop compiled with and without ``nogil``; the spinning thread stands
    still for (almost) the whole call only when the GIL is held."""
    monkeypatch.setenv(CACHE_ENV, "0")  # two builds of one function: never share a disk cache
    held, free = (LazyKernel(_spin, {"nogil": flag}) for flag in (False, True))
    held(10), free(10)  # compile outside the probe
    p_held = _long_probe(held, 10**7)
    p_free = _long_probe(free, 10**7)
    assert p_held.longest >= 0.2
    assert p_free.longest >= 0.2
    assert p_held.stall_in > 0.7 * p_held.longest
    assert p_free.stall_in < 0.5 * p_free.longest


def _big_book(n: int, seed: int, divisible: bool = False) -> OrderBook:
    rng = np.random.default_rng(seed)
    orders: list[Offer | Request] = [
        Offer(id=f"o{i}", provider=f"p{i % 50}", gpu_model=["H100", "A100"][i % 2],
              gpus=int(rng.integers(1, 9)), price=int(rng.integers(50, 150)), region="us",
              vram_gb=80, submitted_at=i)
        for i in range(n)]
    orders += [
        Request(id=f"r{i}", tenant=f"t{i % 40}", gpus=int(rng.integers(1, 5)),
                max_price=int(rng.integers(40, 170)), divisible=divisible, submitted_at=i)
        for i in range(n)]
    return OrderBook(orders)


@pytest.mark.parametrize(("mechanism", "options", "size", "kind"), [
    ("assignment", {}, 700, "plain"),  # the auction kernel
    ("assignment", {"shape": "shared"}, 500, "divisible"),  # the flow kernel
    ("lp", {}, 500, "divisible"),
])
def test_kernels_release_the_gil_while_they_run(
    mechanism: str, options: dict[str, Any], size: int, kind: str
) -> None:
    """While a clear's kernels run, a pure-Python thread keeps running: its longest stall
    inside them is a small part of the longest kernel call (a kernel holding the GIL would
    stall it for all of it, as the control shows)."""
    def run(n: int) -> None:
        m = Market(_big_book(n, 1, divisible=kind == "divisible"))
        auction.clear(m, mechanism, **options)

    run(50)  # compile (or load) the kernels
    p = _long_probe(run, size)
    assert p.longest >= 0.2, p
    assert p.stall_in < 0.5 * p.longest, p
