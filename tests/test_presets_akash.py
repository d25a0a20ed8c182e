"""Golden tests for the Akash preset, worked by hand from the chain's rules
(akash-network/node x/market/handler/server.go; chain-sdk market/v1beta5/params.go;
provider bidengine/pricing.go; x/escrow)."""

from __future__ import annotations

import pytest

from auction import Market, Offer, OrderBook, Request, presets
from auction.errors import InvalidOptionError, InvalidValueError
from auction.mechanisms import Mechanism
from auction.presets.akash import (
    AkashAuction,
    AllowList,
    EscrowAccount,
    LinearPricing,
    ModelPrices,
    RandomRange,
    ReputationWeighted,
)
from auction.testing import check_mechanism


def _book() -> OrderBook:
    # five providers bid on one order for 2 H100 at max 100; their asks arrive in time order
    offers = [Offer(id=f"o{i}", provider=f"p{i}", gpu_model="H100", gpus=2, price=price,
                    region="us", vram_gb=80, submitted_at=i)
              for i, price in enumerate([90, 80, 70, 60, 50])]
    return OrderBook([*offers, Request(id="order", tenant="t", gpus=2, max_price=100,
                                       submitted_at=0)])


def _pick(mech: Mechanism, market: Market | None = None) -> tuple[str, int]:
    assert isinstance(mech, AkashAuction)
    res = mech.clear(market or Market(_book()), rng=0)
    (row,) = res.to_records()
    return row["offer_id"], row["unit_price"]


def test_cheapest_pay_as_bid() -> None:
    assert _pick(presets.get("akash").mechanism) == ("o4", 50)


def test_bid_cap_counts_closed_bids() -> None:
    # 18 bids were already placed (some closed): the cap of 20 admits only 2 more, the two
    # earliest (o0 at 90, o1 at 80); the chain refuses the bid that makes count > 20.
    mech = presets.get("akash", prior_bids={"order": 18}).mechanism
    res = mech.clear(Market(_book()))
    assert [(r["offer_id"], r["unit_price"]) for r in res.to_records()] == [("o1", 80)]
    assert res.diagnostics["bids"] == 2
    assert res.diagnostics["bids_refused_by_cap"] == 3
    full = presets.get("akash", prior_bids={"order": 20}).mechanism.clear(Market(_book()))
    assert full.n_allocations == 0


def test_selection_rules() -> None:
    base = presets.get("akash").mechanism
    assert isinstance(base, AkashAuction)
    assert _pick(base.with_options(selection="first")) == ("o0", 90)
    assert _pick(base.with_options(selection=AllowList({"p1", "p2"}))) == (
        "o2", 70)
    market = Market(_book(), {"p3": 1.0})
    # p3 (60, reputation 1): 60 x (1 - 0.5) = 30 beats p4's 50
    assert _pick(base.with_options(selection=ReputationWeighted("1/2")), market) == (
        "o3", 60)
    assert _pick(base.with_options(selection=lambda bids: len(bids) - 1)) == (
        "o4", 50)


def test_pricing_strategies() -> None:
    base = presets.get("akash").mechanism
    # linear: 10 + 1 x 80 GB = 90 per GPU-hour; the bid is max(ask, quote) and only <= 100
    assert _pick(base.with_options(pricing=LinearPricing(per_gpu=10, per_vram_gb=1))) == (  # type: ignore[attr-defined]
        "o0", 90)
    # a GPU-model map without H100 and no fallback: nobody bids
    none = base.with_options(pricing=ModelPrices({"A100": 40}))  # type: ignore[attr-defined]
    assert none.clear(Market(_book())).n_allocations == 0
    fb = base.with_options(pricing=ModelPrices({"A100": 40}, fallback=95))  # type: ignore[attr-defined]
    assert _pick(fb) == ("o0", 95)
    rnd = base.with_options(pricing=RandomRange(50, 100))  # type: ignore[attr-defined]
    assert not rnd.tags.deterministic
    assert rnd.clear(Market(_book()), rng=3).to_records() == rnd.clear(
        Market(_book()), rng=3).to_records()


def test_bid_window_and_bad_options() -> None:
    mech = presets.get("akash", bid_window=2).mechanism
    assert _pick(mech) == ("o2", 70)  # bids at t=3, 4 arrive after the window
    with pytest.raises(InvalidOptionError):
        AkashAuction(max_bids=0)
    with pytest.raises(InvalidOptionError):
        AkashAuction(selection="best")
    with pytest.raises(InvalidValueError):
        presets.get("akash", reclamation_notice_hours=721)


def test_lazy_escrow() -> None:
    # x/escrow: accrues per block, paid on settlement; an overdrawn account records the debt
    acct = EscrowAccount(balance=1000, rate=3)
    assert acct.settle(100) == 300
    assert acct.balance == 700
    assert acct.deposit(50, 200) == 300
    assert acct.balance == 450
    assert acct.settle(400) == 450
    assert acct.unpaid == 150
    assert acct.overdrawn


def test_conformance() -> None:
    check_mechanism("akash-auction", max_examples=25)
    check_mechanism(AkashAuction(selection="first", max_bids=2), max_examples=15)
