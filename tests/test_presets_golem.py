"""Golden tests for the Golem preset, from golemfactory/yapapi (strategy/least_expensive.py:
score 100 / (cost + 1.01) over 60 s; decrease_score_unconfirmed.py: x0.5 for providers that
rejected; engine.py: idle agreements reused first) and yagna's resolver (matching.rs: both
sides' constraints must hold)."""

from __future__ import annotations

from fractions import Fraction

import pytest

from auction import Market, Offer, OrderBook, Request, presets
from auction.errors import InvalidOptionError
from auction.mechanisms import Mechanism
from auction.orders import Attributes
from auction.presets.golem import GolemMatch, golem_score
from auction.testing import check_mechanism

# prices in micro-units per GPU-hour: 60 units/h costs 1.0 unit over 60 s
A = 60_000_000
B = 120_000_000


def _book() -> OrderBook:
    return OrderBook([
        Offer(id="a", provider="pa", gpu_model="H100", gpus=1, price=A, region="eu",
              vram_gb=80, attributes=Attributes({"golem.inf.cpu.threads": 4})),
        Offer(id="b", provider="pb", gpu_model="H100", gpus=1, price=B, region="eu",
              vram_gb=80, attributes=Attributes({"golem.inf.cpu.threads": 16})),
        Request(id="d", tenant="alice", gpus=1, max_price=B),
    ])


def _pick(mech: Mechanism) -> str:
    assert isinstance(mech, GolemMatch)
    (row,) = mech.clear(Market(_book()), rng=1).to_records()
    return str(row["offer_id"])


def test_score_and_rejection_penalty() -> None:
    # a: cost 1.0 -> 100 / 2.01 = 49.75; b: cost 2.0 -> 100 / 3.01 = 33.22: a wins.
    assert golem_score(Fraction(1)) == Fraction(10000, 201)
    assert _pick(presets.get("golem").mechanism) == "a"
    # pa rejected an agreement: 49.75 x 0.5 = 24.88 < 33.22: b wins
    assert _pick(presets.get("golem", rejected=frozenset({"pa"})).mechanism) == "b"


def test_idle_agreement_reused_first() -> None:
    assert _pick(presets.get("golem", agreements={"alice": "b"}).mechanism) == "b"


def test_two_sided_constraints() -> None:
    # the demand wants >= 8 threads (a Golem LDAP filter): only b qualifies
    d = GolemMatch(demand_constraints={"d": "(golem.inf.cpu.threads>=8)"})
    assert _pick(d) == "b"
    # offer b accepts only bob: nothing left for alice
    both = GolemMatch(demand_constraints={"d": "(golem.inf.cpu.threads>=8)"},
                      offer_constraints={"b": "tenant == 'bob'"})
    assert both.clear(Market(_book()), rng=1).n_allocations == 0
    with pytest.raises(InvalidOptionError):
        GolemMatch(demand_constraints={"d": "threads >="})


def test_conformance() -> None:
    check_mechanism("golem-match", max_examples=25)


def test_constraints_on_the_orders() -> None:
    # Market v2: the demand and the offer carry their constraints; the market checks both
    # sides (matching.rs), the strategy then scores what is left.
    from auction.constraints import from_golem

    book = OrderBook([
        Offer(id="a", provider="pa", gpu_model="H100", gpus=1, price=A, region="eu",
              vram_gb=80, attributes=Attributes({"golem.inf.cpu.threads": 4})),
        Offer(id="b", provider="pb", gpu_model="H100", gpus=1, price=B, region="eu",
              vram_gb=80, attributes=Attributes({"golem.inf.cpu.threads": 16}),
              constraints="tenant == 'alice'"),
        Request(id="d", tenant="alice", gpus=1, max_price=B,
                constraints=from_golem("(golem.inf.cpu.threads>=8)")),
        Request(id="e", tenant="bob", gpus=1, max_price=B,
                constraints=from_golem("(golem.inf.cpu.threads>=8)")),
    ])
    mech = presets.get("golem").mechanism
    assert isinstance(mech, GolemMatch)
    res = mech.clear(Market(book), rng=1)
    assert [(r["request_id"], r["offer_id"]) for r in res.to_records()] == [("d", "b")]
