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
