"""Golden tests for the Aethir preset, from docs.aethir.com (Indexer: feasibility filters,
then lowest fee / best experience / best evaluation, a random indexer; Pricing: uniform
K-value prices per spec and region; Staking: stake K x coefficient, downtime slashes 1/3)."""

from __future__ import annotations

import pytest

from auction import Market, Offer, OrderBook, Request, presets
from auction.errors import InvalidOptionError
from auction.mechanisms import Mechanism
from auction.presets.aethir import AethirIndexer, slash, stake_required
from auction.testing import check_mechanism


def _book() -> OrderBook:
    return OrderBook([
        Offer(id="c1", provider="p1", gpu_model="H100", gpus=1, price=200, region="eu",
              vram_gb=80),
        Offer(id="c2", provider="p2", gpu_model="H100", gpus=1, price=150, region="eu",
              vram_gb=80),
        Offer(id="c3", provider="p3", gpu_model="H100", gpus=1, price=100, region="us",
              vram_gb=80),
        Request(id="u", tenant="t", gpus=1, max_price=260, regions=frozenset({"eu"})),
    ])


def _pick(mech: Mechanism, rep: dict[str, float] | None = None) -> tuple[str, int]:
    assert isinstance(mech, AethirIndexer)
    (row,) = mech.clear(Market(_book(), rep), rng=0).to_records()
    return row["offer_id"], row["unit_price"]


def test_k_value_uniform_price_and_rankings() -> None:
    # K-value for H100 in eu: 250. c3 is outside the latency limit (region us). Both eu
    # containers are paid the uniform 250; lowest fee ties on price, so rank (c2's ask) wins.
    k = {"H100/eu": 250}
    assert _pick(AethirIndexer(k_prices=k, indexers=("lowest-fee",))) == ("c2", 250)
    best = AethirIndexer(k_prices=k, indexers=("best-experience",))
    assert _pick(best, {"p1": 0.9, "p2": 0.5}) == ("c1", 250)
    # no K value: each container's ask; evaluation = rep - price / 260:
    # c1: 0.9 - 200/260 = 0.13, c2: 0.5 - 150/260 = -0.08 -> c1
    ev = AethirIndexer(indexers=("best-evaluation",))
    assert _pick(ev, {"p1": 0.9, "p2": 0.5}) == ("c1", 200)
    # budget filter: K value above the user's budget -> no container
    over = AethirIndexer(k_prices={"H100": 300}, indexers=("lowest-fee",))
    assert over.clear(Market(_book())).n_allocations == 0


def test_random_indexer_is_seeded() -> None:
    mech = presets.get("aethir").mechanism
    assert not mech.tags.deterministic
    runs = {_pick(mech, {"p1": 0.9})[0] for _ in range(3)}
    assert len(runs) == 1  # the same seed, the same indexer
    with pytest.raises(InvalidOptionError):
        AethirIndexer(indexers=("cheapest",))


def test_stake_and_slash() -> None:
    assert stake_required(900, 2) == 1800
    assert slash(900, 2) == 600
    assert slash(900, 2, reason="malice") == 1800


def test_conformance() -> None:
    check_mechanism("aethir-indexer", max_examples=25)
    check_mechanism(AethirIndexer(indexers=("best-evaluation",), reserve_hours=2),
                    max_examples=15)
