"""Synthetic GPU markets for benchmarks: realistic shapes, any size, deterministic by seed;
and `best_of`, the timer every benchmark uses."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from auction import Offer, OrderBook, Request


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Fastest of `repeat` runs (seconds) and the last output."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


#: (model, VRAM GB, typical price in micro-USD per GPU-hour), after docs/markets.md (prices)
MODELS = [
    ("H200", 141, 4_450_000),
    ("H100", 80, 1_900_000),
    ("A100", 80, 1_710_000),
    ("RTX5090", 32, 520_000),
    ("RTX4090", 24, 300_000),
    ("RTX3090", 24, 230_000),
    ("T4", 16, 150_000),
]
REGIONS = ["us-east", "us-west", "eu-central", "eu-west", "asia-east", "asia-south"]
TAGS = ["soc2", "hipaa", "iso27001", "nvlink", "infiniband", "audited-by:foundation"]


def make_orders(
    n_offers: int, n_requests: int, seed: int = 0, any_share: float = 0.02
) -> tuple[list[Offer], list[Request]]:
    """Offers from ~n_offers/4 providers and requests of 1-8 GPUs with model/region constraints.

    `any_share` of the requests accept any model and any region (their pairs grow with offers).
    """
    rng = np.random.default_rng(seed)
    n_models = len(MODELS)
    om = rng.integers(0, n_models, n_offers)
    oreg = rng.integers(0, len(REGIONS), n_offers)
    ogpus = rng.choice([1, 2, 4, 8], n_offers, p=[0.2, 0.2, 0.3, 0.3])
    base = np.array([m[2] for m in MODELS])[om]
    oprice = (base * rng.uniform(0.6, 1.4, n_offers)).astype(np.int64)
    otags = rng.random((n_offers, len(TAGS))) < 0.3
    oprov = rng.integers(0, max(1, n_offers // 4), n_offers)
    offers = [
        Offer(
            id=f"o{i}",
            provider=f"p{oprov[i]}",
            gpu_model=MODELS[om[i]][0],
            gpus=int(ogpus[i]),
            price=int(oprice[i]),
            region=REGIONS[oreg[i]],
            vram_gb=MODELS[om[i]][1],
            tags=frozenset(t for t, on in zip(TAGS, otags[i], strict=True) if on),
            submitted_at=int(i),
        )
        for i in range(n_offers)
    ]
    rm = rng.integers(0, n_models, n_requests)
    rm2 = rng.integers(0, n_models, n_requests)
    two_models = rng.random(n_requests) < 0.3
    rreg = rng.integers(0, len(REGIONS), n_requests)
    any_region = rng.random(n_requests) < 0.4
    anything = rng.random(n_requests) < any_share
    rgpus = rng.choice([1, 2, 4, 8], n_requests, p=[0.4, 0.3, 0.2, 0.1])
    rmax = (np.array([m[2] for m in MODELS])[rm] * rng.uniform(0.7, 1.6, n_requests)).astype(
        np.int64
    )
    rtag = rng.integers(-1, len(TAGS), n_requests)
    needs_tag = rng.random(n_requests) < 0.2
    divisible = rng.random(n_requests) < 0.1
    requests = []
    for i in range(n_requests):
        models: frozenset[str] = frozenset()
        regions: frozenset[str] = frozenset()
        if not anything[i]:
            picked = {MODELS[rm[i]][0], MODELS[rm2[i]][0] if two_models[i] else MODELS[rm[i]][0]}
            models = frozenset(picked)
            if not any_region[i]:
                regions = frozenset({REGIONS[rreg[i]]})
        requests.append(
            Request(
                id=f"r{i}",
                tenant=f"t{i % 997}",
                gpus=int(rgpus[i]),
                max_price=int(rmax[i]),
                gpu_models=models,
                regions=regions,
                required_tags=frozenset({TAGS[rtag[i]]} if needs_tag[i] and rtag[i] >= 0 else ()),
                divisible=bool(divisible[i]),
                submitted_at=int(i),
            )
        )
    return offers, requests


def make_book(n_offers: int, n_requests: int, seed: int = 0, any_share: float = 0.02) -> OrderBook:
    offers, requests = make_orders(n_offers, n_requests, seed, any_share)
    book = OrderBook(offers)
    book.add_many(requests)
    return book


# -- matching graphs: sparse, dense and adversarial ------------------------------------------
#: (n persons, m objects, CSR indptr, cols, integer weights >= 0)
Graph = tuple[int, int, np.ndarray, np.ndarray, np.ndarray]


def _csr(n: int, m: int, rows: np.ndarray, cols: np.ndarray, w: np.ndarray) -> Graph:
    """CSR over persons, one edge per (row, col) pair (duplicates keep the largest weight)."""
    key = rows.astype(np.int64) * max(1, m) + cols
    order = np.lexsort((-w, key))
    key, w = key[order], w[order]
    first = np.ones(len(key), dtype=bool)
    first[1:] = key[1:] != key[:-1]
    key, w = key[first], w[first]
    r, c = key // max(1, m), key % max(1, m)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(r, minlength=n), out=indptr[1:])
    return n, m, indptr, c.astype(np.int64), w.astype(np.int64)


def sparse_graph(n: int, d: int, seed: int = 0, m: int | None = None,
                 top: int = 10**6) -> Graph:
    """n persons x m (default n) objects, d random objects per person, weights in [1, top]."""
    m = n if m is None else m
    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(n, dtype=np.int64), d)
    return _csr(n, m, rows, rng.integers(0, m, n * d), rng.integers(1, top + 1, n * d))


def dense_graph(n: int, seed: int = 0, top: int = 10**6) -> Graph:
    rng = np.random.default_rng(seed)
    w = rng.integers(1, top + 1, (n, n)).astype(np.int64)
    indptr = np.arange(0, n * n + 1, n, dtype=np.int64)
    return n, n, indptr, np.tile(np.arange(n, dtype=np.int64), n), w.reshape(-1)


def adversarial_graph(kind: str, n: int, d: int = 10, seed: int = 0) -> Graph:
    """Instances that break naive auctions and augmenting-path codes (issue 12).

    * ``asks-equal``: every offer asks the same, so a pair's surplus depends on the request
      only: every request is indifferent between its offers (ties everywhere).
    * ``values-equal``: every pair has the same surplus.
    * ``range-1e15``: surpluses spread log-uniformly over [1, 1e15] (n <= 280 keeps the exact
      auction's scaled weights under 2**59).
    * ``one-offer``: every request wants offer 0 most, and has d - 1 random lesser choices.
    * ``chains``: a staircase: request i values offer i at 2B and offer i + 1 at 2B - 1, so
      displacing request 0 shifts everyone one offer along (augmenting paths of length n).
    * ``identical``: n identical requests eligible for the same d offers, equal weights.
    """
    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(n, dtype=np.int64), d)
    cols = rng.integers(0, n, n * d)
    if kind == "asks-equal":
        return _csr(n, n, rows, cols, np.repeat(rng.integers(1, 10**6 + 1, n), d))
    if kind == "values-equal":
        return _csr(n, n, rows, cols, np.full(n * d, 1000, dtype=np.int64))
    if kind == "range-1e15":
        w = np.exp(rng.uniform(0, np.log(1e15), n * d)).astype(np.int64)
        return _csr(n, n, rows, cols, np.maximum(w, 1))
    if kind == "one-offer":
        w = rng.integers(1, 10**6 + 1, n * d)
        cols[::d] = 0
        w[::d] = 2 * 10**6
        return _csr(n, n, rows, cols, w)
    if kind == "chains":
        big = 10**6
        r = np.repeat(np.arange(n, dtype=np.int64), 2)
        c = np.minimum(np.arange(2 * n) // 2 + np.arange(2 * n) % 2, n - 1)
        w = np.where(np.arange(2 * n) % 2 == 0, 2 * big, 2 * big - 1)
        return _csr(n, n, r, c.astype(np.int64), w.astype(np.int64))
    if kind == "identical":
        c = np.tile(np.arange(d, dtype=np.int64), n)
        return _csr(n, d, rows, c, np.full(n * d, 1000, dtype=np.int64))
    raise ValueError(f"unknown adversarial kind {kind!r}")


ADVERSARIAL = ("asks-equal", "values-equal", "range-1e15", "one-offer", "chains", "identical")


def adversarial_book(kind: str, n: int, seed: int = 0) -> OrderBook:
    """Order books of the adversarial kinds (n requests, about n/2 offers, 1-GPU H100 orders).

    ``asks-equal`` / ``values-equal`` / ``range-1e15`` / ``one-offer`` / ``identical`` as in
    `adversarial_graph`, at the level of prices: equal asks; equal asks and max prices;
    asks and max prices spread over [1, 1e15]; one offer cheaper than all others by far;
    identical requests.
    """
    rng = np.random.default_rng(seed)
    m = max(1, n // 2)
    ask = rng.integers(1_000_000, 2_000_000, m)
    value = rng.integers(1_500_000, 3_000_000, n)
    if kind == "asks-equal":
        ask[:] = 1_000_000
    elif kind == "values-equal":
        ask[:] = 1_000_000
        value[:] = 2_000_000
    elif kind == "range-1e15":
        ask = np.exp(rng.uniform(0, np.log(1e15), m)).astype(np.int64) + 1
        value = np.exp(rng.uniform(0, np.log(1e15), n)).astype(np.int64) + 1
    elif kind == "one-offer":
        ask[0] = 1
    elif kind == "identical":
        value[:] = 2_500_000
    elif kind != "chains":
        raise ValueError(f"unknown adversarial kind {kind!r}")
    offers = [Offer(id=f"o{j}", provider=f"p{j % max(1, m // 3 + 1)}", gpu_model="H100",
                    gpus=1, price=int(ask[j]), region="us-east", vram_gb=80, submitted_at=j)
              for j in range(m)]
    requests = [Request(id=f"r{i}", tenant=f"t{i % 97}", gpus=1, max_price=int(value[i]),
                        gpu_models=frozenset({"H100"}), submitted_at=m + i) for i in range(n)]
    book = OrderBook(offers)
    book.add_many(requests)
    return book


def example_book_repeated(copies: int, seed: int = 0) -> OrderBook:
    """The example book (`auction.demo.example_book`) at any size: `copies` copies with seeds
    seed, seed + 1, ..., ids and providers suffixed per copy (``#k``)."""
    import attrs

    from auction.demo import example_book

    orders: list[Any] = []
    for k in range(copies):
        for o in example_book(seed + k):
            extra: dict[str, Any] = {"id": f"{o.id}#{k}"}
            if isinstance(o, Offer):
                extra["provider"] = f"{o.provider}#{k}"
            orders.append(attrs.evolve(o, **extra))
    return OrderBook(orders)


#: Copies of the example book the benchmarks clear (orders: 422, 1,694, 6,716, 26,690).
#: Every request is eligible for offers of every copy, so pairs grow with copies squared
#: (2,254, 37,753, 536,206, 8.3 M): 256 copies (about 133 M pairs) are left out.
EXAMPLE_COPIES = (1, 4, 16, 64)


def example_copies(quick: bool, largest: int = EXAMPLE_COPIES[-1]) -> list[int]:
    """The example-book sizes a benchmark runs: the two smallest under ``--quick``."""
    sizes = [c for c in EXAMPLE_COPIES if c <= largest]
    return sizes[:2] if quick else sizes


def example_pair_graph(market: Any) -> Graph:
    """The exclusive-offer matching problem of a market (`matching_problem`: requests by
    priority, offers by rank, weight surplus x gpus) as a `Graph`."""
    from auction.problems.matching import matching_problem

    p = matching_problem(market)
    return p.n, p.m, p.indptr, p.cols, p.weight
