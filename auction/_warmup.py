"""`warmup`: compile (or load from the disk cache) every numba kernel before serving.

A kernel compiles on its first call, so without a warm-up the first clearing of a process
pays for it (seconds; see docs/service.md). `warmup` clears small example markets with every
registered mechanism, each payment rule and the other kernel backends, and folds a reputation
history, so that every kernel the library has is compiled for the argument types clearing
uses. With the disk cache (opt-in, ``AUCTION_NUMBA_CACHE``; see `auction.kernels.jit`) a
warm-up after the first one on a machine only loads the kernels.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs

__all__ = ["KernelReport", "WarmupReport", "warmup"]


@attrs.frozen
class KernelReport:
    """One kernel after the warm-up.

    Attributes:
        name: ``module.function``.
        signatures: argument types it is compiled for.
        compile_seconds: time numba spent compiling it in this process (not its callees);
            0.0 when every signature came from the disk cache.
        cache_hits: signatures loaded from the disk cache.
    """

    name: str
    signatures: int
    compile_seconds: float
    cache_hits: int


@attrs.frozen
class WarmupReport:
    """What `warmup` did.

    Attributes:
        seconds: wall time of the warm-up.
        cache_dir: where compiled kernels are cached (None: not cached).
        kernels: every kernel of the library, by name.
        runs: the clearings it ran, as ``mechanism(options) on book``.
        skipped: runs that could not be made, with the reason (a plugin refusing both books).
    """

    seconds: float
    cache_dir: str | None
    kernels: tuple[KernelReport, ...]
    runs: tuple[str, ...]
    skipped: tuple[str, ...]

    @property
    def compile_seconds(self) -> float:
        """Total compile time of all kernels in this process."""
        return sum(k.compile_seconds for k in self.kernels)


def _runs() -> Iterator[tuple[str, dict[str, Any]]]:
    """(mechanism, options): every registered mechanism with each payment rule, plus the
    other kernel backends."""
    from auction.mechanisms import available, tags_of

    for name in available():
        try:
            payments = tags_of(name).payments
        except Exception:  # a broken plugin: its default options only
            payments = ()
        yield name, {}
        for payment in payments[1:]:
            yield name, {"payment": payment}
    yield "assignment", {"shape": "shared"}
    yield "lp", {"backend": "flow"}


def _small_books(size: int) -> dict[str, Any]:
    from auction.book import OrderBook
    from auction.datasets import example_book, example_exchange_book, example_reputation
    from auction.market import Market
    from auction.orders import Order

    def head(book: OrderBook) -> OrderBook:
        offers, requests = book.offers(), book.requests()
        return OrderBook([*offers[: size // 2], *requests[:size]])

    exchange = example_exchange_book(0)
    first = exchange.offers()[0]
    key = (first.gpu_model, first.region)
    one_class: list[Order] = [o for o in exchange.offers() if (o.gpu_model, o.region) == key]
    one_class += [r for r in exchange.requests()
                  if r.gpu_models == {first.gpu_model} and r.regions == {first.region}]
    return {
        "example": Market(head(example_book(0)), example_reputation(0)),
        "exchange": Market(head(exchange)),
        "one-class": Market(OrderBook(one_class)),
    }


def _fold_reputation() -> None:
    from auction.datasets import example_history
    from auction.reputation import ReputationBook

    history = example_history(0)[:200]
    for model in ("beta", "iexec"):
        ReputationBook(model, history).scores()
    ReputationBook("beta", history).eigentrust().scores()


def _eligibility_join() -> None:
    """The compiled eligibility join, which only markets of 2**16 profiles x classes or more
    run: 256 offer classes (distinct VRAM) against 256 request profiles (distinct floors)."""
    from auction import Market, Offer, OrderBook, Request

    orders: list[Offer | Request] = [
        Offer(id=f"o{i}", provider="p", gpu_model="m", gpus=1, price=1, region="x",
              vram_gb=i + 1) for i in range(256)
    ]
    orders += [Request(id=f"r{i}", tenant="t", gpus=1, max_price=2, min_vram_gb=i)
               for i in range(256)]
    Market(OrderBook(orders)).pair_count()


def _dense_assignment() -> None:
    """The dense JV kernel, until a mechanism calls it: a square and a rectangular graph."""
    import numpy as np

    from auction.kernels.dense import dense_assignment

    w = np.array([3, 1, 2, 4], dtype=np.int64)
    dense_assignment(2, 2, np.array([0, 2, 4]), np.array([0, 1, 0, 1]), w)
    dense_assignment(2, 3, np.array([0, 2, 4]), np.array([0, 2, 1, 2]), w)


def _live_reclear() -> None:
    """The live re-clear's prefix kernels (`auction.kernels.matches`): a periodic market
    cleared, changed and cleared again."""
    from auction import Offer, Request
    from auction.live import LiveMarket

    m = LiveMarket(mode="periodic", mechanism="first-price", epoch=10)
    for i in range(8):
        m.submit(Request(id=f"r{i}", tenant="t", gpus=1, max_price=2), at=0)
    m.submit(Offer(id="o0", provider="p", gpu_model="m", gpus=1, price=3, region="x",
                   vram_gb=1), at=0)  # too dear: it stays, and "o1" ties with its ask
    m.clear(at=1)
    for oid, price in (("o", 1), ("o1", 3)):
        m.submit(Offer(id=oid, provider="p", gpu_model="m", gpus=1, price=price, region="x",
                       vram_gb=1), at=2)
    m.clear(at=3)  # incremental: two changed orders of eleven


def _compile_times(buffer: list[tuple[float, Any]]) -> dict[int, float]:
    """Seconds each dispatcher spent compiling itself (nested compiles of callees excluded)."""
    own: dict[int, float] = {}
    stack: list[list[Any]] = []  # [dispatcher id, start, seconds spent in nested compiles]
    for t, event in buffer:
        key = id(event.data["dispatcher"])
        if event.is_start:
            stack.append([key, t, 0.0])
        elif stack:
            key, start, nested = stack.pop()
            spent = t - start
            own[key] = own.get(key, 0.0) + spent - nested
            if stack:
                stack[-1][2] += spent
    return own


def warmup(*, size: int = 40, progress: Callable[[str], None] | None = None) -> WarmupReport:
    """Compile every numba kernel now (or load it from the disk cache), not on first use.

    Clears small example markets (`size` requests) with every registered mechanism and payment
    rule, the shared-capacity ``assignment`` and the ``lp`` flow backend, runs the dense
    assignment kernel, and folds a reputation history. Results are discarded. Thread-safe;
    calling it again is cheap.

    Args:
        size: requests per example market (offers: half as many).
        progress: called with a short description before each step (the CLI prints them).
    """
    import numba.core.event as ev

    from auction.clearing import clear
    from auction.errors import UnsupportedMarketError
    from auction.kernels.jit import cache_dir, compiled_kernels

    note = progress or (lambda _msg: None)
    start = time.perf_counter()
    runs: list[str] = []
    skipped: list[str] = []
    with ev.install_recorder("numba:compile") as recorder:
        markets: Mapping[str, Any] = _small_books(size)
        for name, options in _runs():
            label = f"{name}({', '.join(f'{k}={v!r}' for k, v in options.items())})"
            reasons = []
            for which, market in markets.items():
                note(f"{label} on the {which} book")
                try:
                    clear(market, name, rng=0, **options)
                except UnsupportedMarketError as e:
                    reasons.append(e.reason)
                    continue
                runs.append(f"{label} on {which}")
                break
            else:
                skipped.append(f"{label}: {reasons[0] if reasons else 'no book'}")
        note("reputation folds")
        _fold_reputation()
        note("eligibility join kernel")
        _eligibility_join()
        note("dense assignment kernel")
        _dense_assignment()
        note("live re-clear kernels")
        _live_reclear()
    own = _compile_times(recorder.buffer)
    kernels = []
    for name, dispatcher in compiled_kernels():
        stats = dispatcher.stats
        kernels.append(KernelReport(
            name=name,
            signatures=len(dispatcher.signatures),
            compile_seconds=own.get(id(dispatcher), 0.0),
            cache_hits=sum(stats.cache_hits.values()),
        ))
    directory = cache_dir()
    return WarmupReport(
        seconds=time.perf_counter() - start,
        cache_dir=None if directory is None else str(directory),
        kernels=tuple(sorted(kernels, key=lambda k: k.name)),
        runs=tuple(runs),
        skipped=tuple(skipped),
    )
