"""The example plugin is found by the registry and passes the conformance suite."""

from __future__ import annotations

import pytest

import auction
from auction.errors import InvalidOptionError
from auction.testing import Check, parametrize_with_checks


def test_the_registry_finds_the_plugin() -> None:
    assert "greedy-reserve" in auction.mechanisms.available()
    mech = auction.mechanisms.get("greedy-reserve", reserve=5)
    assert repr(mech).startswith("GreedyReserve(payment='pay-as-bid'")
    with pytest.raises(InvalidOptionError, match="reserve"):
        auction.mechanisms.get("greedy-reserve", reserve=-1)


def test_the_reserve_holds_back_thin_trades() -> None:
    book = auction.OrderBook([
        auction.Offer(id="o", provider="p", gpu_model="H100", gpus=1, price=10, region="x",
                      vram_gb=80),
        auction.Request(id="r", tenant="t", gpus=1, max_price=12),
    ])
    assert len(auction.clear(book, "greedy-reserve")) == 1
    assert len(auction.clear(book, "greedy-reserve", reserve=3)) == 0


@parametrize_with_checks(["greedy-reserve"])
def test_conformance(mechanism: str, check: Check) -> None:
    check(mechanism, max_examples=25)
