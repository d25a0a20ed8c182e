"""Every public value type of settlement, reputation and the simulation pickles and
deep-copies, and comes back equal from a process pool (work runs on other processes, or a
cluster, and its results travel back by pickle)."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from fractions import Fraction
from typing import Any

import numpy as np
import pytest

import auction
from auction import Offer, OrderBook, Request
from auction.reputation import (
    RENDER_TIERS,
    AuditSchedule,
    BetaModel,
    EigenTrustResult,
    Event,
    EventBatch,
    EvidenceWeights,
    IExecModel,
    Outcome,
    ReputationBook,
    eigentrust,
)
from auction.settlement import (
    BLOCK,
    HOUR,
    Account,
    AccountKind,
    BmeParams,
    BmeState,
    CappedSupply,
    DecayingEmission,
    DemandController,
    FeeSchedule,
    FixedEmission,
    Lease,
    LeaseBook,
    Ledger,
    OraclePrice,
    PenaltyPolicy,
    Transaction,
    TxKind,
    YearlyEmission,
    leases_from_result,
    render_burn,
    sla_penalty,
    transfer,
)
from auction.simulation import Design, ExampleFlow, LeaseRecord, SimulationResult, simulate

ISSUANCE = Account(AccountKind.ISSUANCE)


def _book() -> LeaseBook:
    """A lease book with deposits, accruals, a penalty and an overdrawn close."""
    ledger = Ledger()
    ledger.post(transfer("fund", ISSUANCE, Account(AccountKind.TENANT, "lab"), "USDC", 10**6))
    ledger.post(transfer("stake", ISSUANCE, Account(AccountKind.PROVIDER_STAKE, "p"), "USDC",
                         500))
    book = LeaseBook(ledger, fees=FeeSchedule.akash())
    book.open(Lease(id="l1", tenant="lab", provider="p", currency="USDC", rate=100, periods=5),
              deposit=1000)
    book.open(Lease(id="l2", tenant="lab", provider="p", currency="USDC", rate=70,
                    period=BLOCK), deposit=300)
    book.accrue_all(3)
    sla_penalty(book, Event(id="e1", provider="p", time=3600.0, outcome="sla_breach"), "l1")
    book.accrue_all(5000)
    return book


def _simulation() -> SimulationResult:
    design = Design(fees=FeeSchedule({"USDC": "20%"}), emission=FixedEmission(1000),
                    reputation="beta")
    return simulate(ExampleFlow(seed=3), design, epochs=2, epoch_hours=6, seed=1)


def _values() -> dict[str, Any]:
    book = _book()
    ledger = book.ledger
    accrual = next(tx for tx in ledger.journal if tx.meta.kind is TxKind.ACCRUAL)
    events = [Event(id="a", provider="p", time=1.0, outcome="completed", tenant="t"),
              Event(id="b", provider="q", time=2.5, outcome=Outcome.FAILED, weight=0.5)]
    rep = ReputationBook(BetaModel(half_life=3600.0), events)
    result = auction.clear(OrderBook([
        Offer(id="o", provider="p", gpu_model="H100", gpus=4, price=900, region="us",
              vram_gb=80),
        Request(id="r", tenant="lab", gpus=2, max_price=2000, duration_hours=3),
    ]), "first-price")
    price = OraclePrice("TOKEN", "USDC", Fraction(3, 2))
    return {
        "Account": Account(AccountKind.TENANT, "lab"),
        "Posting": accrual.postings[0],
        "TxMeta": accrual.meta,
        "Transaction": accrual,
        "Ledger": ledger,
        "Lease": book.lease("l1"),
        "leases_from_result": leases_from_result(result, "USDC"),
        "LeaseState": book.state("l2"),
        "Charges": book.charges("l1", 2),
        "Refund": book.refund_amounts("l1", 0, 4),
        "AccrualReport": book.accrue_all(6000),
        "Period": HOUR,
        "FeeSchedule": FeeSchedule.io_net(),
        "PenaltyPolicy": PenaltyPolicy(),
        "OraclePrice": price,
        "RenderBurn": render_burn(1_000_000, price),
        "BmeState": BmeState(BmeParams()),
        "emissions": (FixedEmission(5), DecayingEmission(10**6, Fraction(1, 2), 10),
                      YearlyEmission((5, 3), 4), CappedSupply(10**6, FixedEmission(7), 10),
                      DemandController(100, Fraction(1, 10), 0, 50)),
        "Event": events[0],
        "Outcome": Outcome.AUDIT_FAILED,
        "EventBatch": EventBatch.from_events(events),
        "EvidenceWeights": EvidenceWeights(),
        "BetaModel": BetaModel(),
        "IExecModel": IExecModel(),
        "BetaOpinion": rep.opinion("p"),
        "ReputationBook": rep,
        "EigenTrustResult": eigentrust(["a", "b"], ["b", "a"], [1.0, 2.0]),
        "TierSchedule": RENDER_TIERS,
        "AuditSchedule": AuditSchedule(period=900, origin=7),
    }


def _same(a: Any, b: Any) -> bool:
    """Equal as values: by fields for types without value equality."""
    if type(a) is not type(b):
        return False
    if isinstance(a, LeaseBook):
        return a.ledger == b.ledger and [a.state(x.id) for x in a] == [b.state(x.id) for x in b] \
            and [a.refunded(x.id) for x in a] == [b.refunded(x.id) for x in b]
    if isinstance(a, ReputationBook):
        return bool(a.to_json() == b.to_json())
    if isinstance(a, SimulationResult):
        return (a.to_records() == b.to_records() and a.ledger == b.ledger
                and a.lease_log == b.lease_log and a.totals() == b.totals()
                and _same(a.reputation, b.reputation)
                and np.array_equal(a.provider_income, b.provider_income))
    if isinstance(a, EigenTrustResult):
        return bool(a.peers == b.peers and np.array_equal(a.trust, b.trust)
                    and a.scores() == b.scores() and not b.trust.flags.writeable)
    if isinstance(a, EventBatch):
        return a == b and not any(getattr(b, c).flags.writeable for c in (
            "times", "outcomes", "weights", "provider_codes", "tenant_codes"))
    return bool(a == b)


ROUND_TRIPS: dict[str, Callable[[Any], Any]] = {
    "pickle": lambda v: pickle.loads(pickle.dumps(v)),
    "pickle-protocol-2": lambda v: pickle.loads(pickle.dumps(v, protocol=2)),
    "deepcopy": copy.deepcopy,
}


@pytest.mark.parametrize("how", sorted(ROUND_TRIPS))
def test_every_value_type_round_trips(how: str) -> None:
    values = {**_values(), "LeaseBook": _book(),
              "IExec book": ReputationBook("iexec", [Event(id="x", provider="p", time=0.0,
                                                           outcome="completed")])}
    for name, value in values.items():
        again = ROUND_TRIPS[how](value)
        assert _same(value, again), name
    # a copied book works on: it accrues like the original and never touches it
    book = _book()
    twin = ROUND_TRIPS[how](book)
    assert twin.ledger is not book.ledger
    before = book.ledger.journal
    twin.ledger.post(transfer("more", ISSUANCE, Account(AccountKind.TENANT, "lab"), "USDC", 1))
    assert book.ledger.journal == before


def test_a_simulation_round_trips() -> None:
    result = _simulation()
    assert len(result.lease_log) > 0
    assert isinstance(result.lease_log[0], LeaseRecord)
    for how, fn in ROUND_TRIPS.items():
        assert _same(result, fn(result)), how


def _transactions_from(values: dict[str, Any]) -> list[Transaction]:
    return [v for v in values.values() if isinstance(v, Transaction)]


def test_values_come_back_from_a_process_pool() -> None:
    """Values go to worker processes and back (pickled both ways); work done there (a
    restore, a simulation) comes back equal to the same work done here."""
    values = _values()
    book = _book()
    leases = list(book)
    with ProcessPoolExecutor(max_workers=2) as pool:
        echoed = dict(zip(values, pool.map(copy.copy, values.values()), strict=True))
        restored = pool.submit(LeaseBook.restore, book.ledger, leases, fees=book.fees)
        replayed = pool.submit(Ledger.replay, book.ledger.journal)
        simulated = pool.submit(simulate, ExampleFlow(seed=3), Design(
            fees=FeeSchedule({"USDC": "20%"}), emission=FixedEmission(1000), reputation="beta",
        ), epochs=2, epoch_hours=6, seed=1)
        rep = pool.submit(ReputationBook, "beta", values["EventBatch"])
        restored_book, replayed_ledger = restored.result(), replayed.result()
        simulation, rep_book = simulated.result(), rep.result()
    for name, value in values.items():
        assert _same(value, echoed[name]), name
    assert _same(book, restored_book)
    assert replayed_ledger == book.ledger
    assert _same(simulation, _simulation())
    assert rep_book.to_json() == ReputationBook("beta", values["EventBatch"]).to_json()
    assert _transactions_from(echoed) == _transactions_from(values)
