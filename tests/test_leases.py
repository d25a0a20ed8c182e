"""Leases: exact accrual, escrow, top-ups, termination, overdrawn closes, bulk accrual."""

from __future__ import annotations

import math
from fractions import Fraction

import attrs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import auction
from auction import Offer, OrderBook, Request
from auction.errors import DuplicateIdError
from auction.settlement import (
    BLOCK,
    DAY,
    HOUR,
    SECOND,
    Account,
    AccountKind,
    DuplicateLeaseError,
    FeeRates,
    FeeSchedule,
    InsufficientFundsError,
    InvalidSettlementError,
    Lease,
    LeaseBook,
    LeaseClosedError,
    LeaseStatus,
    Ledger,
    Period,
    Rounding,
    UnknownLeaseError,
    cumulative_charges,
    leases_from_result,
    period_charges,
    transfer,
)

ISSUANCE = Account(AccountKind.ISSUANCE)
FEES = Account(AccountKind.PROTOCOL_FEES)


def wallet(kind: str, owner: str) -> Account:
    return Account(kind, owner)


def book_with(money: dict[tuple[str, str], int] | None = None,
              fees: FeeSchedule | None = None) -> LeaseBook:
    """A book on a fresh ledger; `money` funds tenant wallets: {(tenant, currency): amount}."""
    ledger = Ledger()
    for (tenant, cur), amount in (money or {("lab", "AKT"): 10**12}).items():
        ledger.post(transfer(f"fund:{tenant}:{cur}", ISSUANCE, wallet("tenant", tenant), cur,
                             amount))
    return LeaseBook(ledger, fees=fees)


# -- golden examples ----------------------------------------------------------------------------
def test_akash_escrow_pays_whole_blocks_then_closes_overdrawn() -> None:
    """Akash: 100 uakt per block, 2% take rate on AKT; a deposit of 350 covers 3.5 blocks.

    Three blocks are paid (98 to the provider, 2 to the protocol each), the lease is marked
    overdrawn and closed at block 3, and the half block left (50) goes back to the tenant.
    """
    book = book_with({("lab", "uakt"): 1000}, FeeSchedule.akash(native="uakt"))
    lease = Lease(id="dseq-1", tenant="lab", provider="akash-farm", currency="uakt", rate=100,
                  period=BLOCK, unit=BLOCK)
    book.open(lease, deposit=350)
    assert book.periods_covered("dseq-1") == 3
    tx = book.accrue("dseq-1", 9)  # settle lazily, ten blocks later
    assert tx is not None
    assert tx.id == "accrue:dseq-1:2"
    state = book.state("dseq-1")
    assert state.status is LeaseStatus.OVERDRAWN
    assert (state.charged, state.paid_through, state.closed_at) == (3, 2, 3)
    assert state.unpaid == 1000 - 300  # due through block 9, not paid
    assert state.escrow == 0
    led = book.ledger
    assert led.balance(wallet("provider", "akash-farm"), "uakt") == 294
    assert led.balance(FEES, "uakt") == 6
    assert led.balance(wallet("tenant", "lab"), "uakt") == 1000 - 350 + 50
    close = led.get("close:dseq-1")
    assert close is not None
    assert close.memo == "overdrawn: unpaid 700"
    assert close.postings[1].amount == 50
    # closed: no more charges, no more deposits
    assert book.accrue("dseq-1", 20) is None
    with pytest.raises(LeaseClosedError):
        book.top_up("dseq-1", 100)
    assert book.periods_covered("dseq-1") == 0
    assert book.terminate("dseq-1", 30) == 0


def test_akash_top_up_extends_the_lease() -> None:
    book = book_with({("lab", "uakt"): 1000})
    book.open(Lease(id="d", tenant="lab", provider="p", currency="uakt", rate=100,
                    period=BLOCK, unit=BLOCK), deposit=250)
    book.accrue("d", 0)
    assert book.periods_covered("d") == 1  # warn: top up
    book.top_up("d", 200, ref="t1")
    book.top_up("d", 200, ref="t1")  # a retry with the same ref: no-op
    assert book.escrow("d") == 350
    assert book.periods_covered("d") == 3
    book.accrue("d", 3)
    assert book.state("d").status is LeaseStatus.OPEN
    assert book.escrow("d") == 50


def test_nosana_deposit_is_price_times_timeout_and_unused_time_is_refunded() -> None:
    """Nosana: 10 units per second, timeout one hour: deposit 36,000. The job runs 1,000 s:
    the node gets 10,000 (less the old 10% fee), the tenant 26,000 back."""
    book = book_with({("dev", "NOS"): 100_000}, FeeSchedule({"NOS": "10%"}))
    job = Lease(id="job-1", tenant="dev", provider="node", currency="NOS", rate=10,
                period=SECOND, unit=SECOND, periods=3600)
    deposit = book.cost(job)
    assert deposit == 36_000
    book.open(job, deposit=deposit)
    assert book.terminate("job-1", 1000) == 26_000
    led = book.ledger
    assert led.balance(wallet("provider", "node"), "NOS") == 9_000
    assert led.balance(FEES, "NOS") == 1_000
    assert led.balance(wallet("tenant", "dev"), "NOS") == 100_000 - 10_000
    state = book.state("job-1")
    assert (state.status, state.charged, state.closed_at) == (LeaseStatus.CLOSED, 1000, 1000)
    assert book.terminate("job-1", 2000) == 0  # already closed


def test_a_lease_that_runs_to_its_end_closes_and_refunds_the_rest() -> None:
    book = book_with()
    book.open(Lease(id="l", tenant="lab", provider="p", currency="AKT", rate=7200, periods=3,
                    start=10), deposit=30_000)
    assert book.accrue("l", 9) is None  # before the start
    book.accrue("l", 100)
    state = book.state("l")
    assert (state.status, state.charged, state.paid_through, state.closed_at) == (
        LeaseStatus.CLOSED, 3, 12, 13)
    assert book.ledger.balance(wallet("provider", "p"), "AKT") == 3 * 7200
    assert book.ledger.get("close:l").postings[1].amount == 30_000 - 21_600  # type: ignore[union-attr]


# -- exact accrual ------------------------------------------------------------------------------
def test_a_per_hour_price_accrues_exactly_per_block() -> None:
    # 2.71 USDC per hour at 6 decimals, per 6.1 s block: 4591.94... units per block
    book = book_with({("lab", "USDC"): 10**9})
    book.open(Lease(id="l", tenant="lab", provider="p", currency="USDC", rate=2_710_000,
                    period=BLOCK), deposit=10**8)
    for block in range(0, 590):
        book.accrue("l", block)
    paid = book.ledger.balance(wallet("provider", "p"), "USDC")
    assert paid == 2_710_000 * 590 * 61 // 36_000  # exact: floor of the cumulative amount
    assert paid == book.charges("l", 590).provider_net
    charges = period_charges(np.array([2_710_000]), np.arange(590), period=BLOCK)
    assert int(charges.sum()) == paid
    assert set(charges.tolist()) == {4591, 4592}


def test_processing_the_same_period_twice_charges_nothing() -> None:
    book = book_with()
    book.open(Lease(id="l", tenant="lab", provider="p", currency="AKT", rate=100), deposit=1000)
    assert book.accrue("l", 2) is not None
    journal = book.ledger.journal
    assert book.accrue("l", 2) is None
    assert book.accrue("l", 1) is None
    assert book.accrue_all(2).transactions == 0
    assert book.ledger.journal == journal


def test_margin_goes_to_the_margin_account_and_the_tenant_keeps_the_remainder() -> None:
    treasury = Account(AccountKind.TREASURY)
    book = LeaseBook(book_with().ledger, margin_account=treasury)
    # rate 3 per hour, provider 2 per hour, 20-minute periods: T(n) = floor(2n/3) + floor(n/3)
    book.open(Lease(id="l", tenant="lab", provider="p", currency="AKT", rate=3,
                    provider_rate=2, period=Period(1200)), deposit=100)
    book.accrue("l", 4)  # n = 5
    led = book.ledger
    assert led.balance(wallet("provider", "p"), "AKT") == 3  # floor(10/3)
    assert led.balance(treasury, "AKT") == 1  # floor(5/3)
    assert book.escrow("l") == 100 - 4  # floor(15/3) = 5 would be exact; the tenant keeps 1


@st.composite
def lease_terms(draw: st.DrawFn, big_ok: bool = True) -> tuple[Lease, FeeRates, Rounding]:
    big = big_ok and draw(st.booleans())
    rate = draw(st.integers(0, 2**90 if big else 10**7))
    prate = draw(st.integers(0, rate))
    seconds = Fraction(draw(st.integers(1, 10**5)), draw(st.sampled_from([1, 10, 7, 1000])))
    unit = draw(st.sampled_from([HOUR, SECOND, DAY, BLOCK]))
    fees = FeeRates(
        provider=Fraction(draw(st.integers(0, 7)), draw(st.sampled_from([100, 10_000, 7]))),
        tenant=Fraction(draw(st.integers(0, 3)), draw(st.sampled_from([100, 400, 3]))),
    )
    start = draw(st.integers(0, 5))
    lease = Lease(id="l", tenant="lab", provider="p", currency="AKT", rate=rate,
                  provider_rate=prate, period=Period(seconds), unit=unit, start=start)
    return lease, fees, draw(st.sampled_from(list(Rounding)))


def expected(lease: Lease, fees: FeeRates, rounding: Rounding, n: int) -> tuple[int, int, int]:
    """(escrow drawn, provider received, protocol received) after n periods, from Fractions."""
    rnd = math.floor if rounding is Rounding.DOWN else math.ceil
    h = lease.period.seconds / lease.unit.seconds
    assert lease.provider_rate is not None
    gross = math.floor(lease.provider_rate * n * h)
    margin = math.floor((lease.rate - lease.provider_rate) * n * h)
    pfee = rnd(gross * fees.provider)
    tfee = rnd((gross + margin) * fees.tenant)
    return gross + margin + tfee, gross - pfee, margin + pfee + tfee


@settings(max_examples=60, deadline=None)
@given(lease_terms(), st.lists(st.integers(0, 300), min_size=1, max_size=8), st.data())
def test_accrual_total_equals_the_cumulative_formula(
    terms: tuple[Lease, FeeRates, Rounding], periods: list[int], data: st.DataObject
) -> None:
    lease, rates, rounding = terms
    fees = FeeSchedule({"AKT": rates}, rounding=rounding)
    scalar = book_with({("lab", "AKT"): 2**127 - 1}, fees)
    bulk = book_with({("lab", "AKT"): 2**127 - 1}, fees)
    last = max(periods)
    n_last = max(0, last - lease.start + 1)
    need = expected(lease, rates, rounding, n_last)[0]
    for b in (scalar, bulk):
        b.open(lease, deposit=need)
    for p in periods:
        scalar.accrue("l", p)
        bulk.accrue_all(p)
    for p in sorted(periods):  # catching up in order, or twice, changes nothing more
        scalar.accrue("l", p)
    n = max(0, max(periods) - lease.start + 1)
    drawn, provider, protocol = expected(lease, rates, rounding, n)
    for b in (scalar, bulk):
        led = b.ledger
        assert b.state("l").charged == n
        assert need - b.escrow("l") == drawn
        assert led.balance(wallet("provider", "p"), "AKT") == provider
        assert led.balance(FEES, "AKT") == protocol
        assert b.state("l").status is LeaseStatus.OPEN
    assert scalar.ledger.balances() == bulk.ledger.balances()


@settings(max_examples=60, deadline=None)
@given(lease_terms(big_ok=False), st.integers(0, 10**6), st.integers(0, 200),
       st.integers(0, 20))
def test_overdrawn_close_pays_exactly_the_whole_periods_covered(
    terms: tuple[Lease, FeeRates, Rounding], deposit: int, period: int, periods: int
) -> None:
    base, rates, rounding = terms
    lease = attrs.evolve(base, periods=periods or None)
    fees = FeeSchedule({"AKT": rates}, rounding=rounding)
    book = book_with({("lab", "AKT"): 10**7}, fees)
    book.open(lease, deposit=deposit)
    book.accrue_all(period)
    state = book.state("l")
    target = max(0, period - lease.start + 1)
    if lease.periods is not None:
        target = min(target, lease.periods)
    m = state.charged
    drawn = expected(lease, rates, rounding, m)[0]
    assert drawn <= deposit
    if state.status is LeaseStatus.OVERDRAWN:
        assert m < target
        assert expected(lease, rates, rounding, m + 1)[0] > deposit  # m is the most covered
        assert state.unpaid == expected(lease, rates, rounding, target)[0] - drawn
        assert state.closed_at == lease.start + m
    else:
        assert m == target
    if state.status is not LeaseStatus.OPEN:  # the rest went back to the tenant
        assert state.escrow == 0
        assert book.ledger.balance(wallet("tenant", "lab"), "AKT") == 10**7 - drawn
    else:
        assert state.escrow == deposit - drawn


def test_bulk_accrual_matches_scalar_over_many_leases_with_overflow_and_overdrafts() -> None:
    rng = np.random.default_rng(7)
    leases = []
    for k in range(300):
        rate = int(rng.integers(0, 10**6)) if k % 10 else 2**80 + k  # some past int64
        leases.append(Lease(
            id=f"l{k}", tenant="lab", provider=f"p{k % 7}", currency="AKT" if k % 3 else "USDC",
            rate=rate, provider_rate=rate - rate // 10 * (k % 2), period=[HOUR, BLOCK, DAY][k % 3],
            start=int(rng.integers(0, 4)), periods=int(rng.integers(1, 40)) if k % 4 else None,
        ))
    money = {("lab", "AKT"): 2**126, ("lab", "USDC"): 2**126}
    fees = FeeSchedule.akash()
    one, many = book_with(money, fees), book_with(money, fees)
    deposits = [int(rng.integers(0, 10**7)) if k % 10 else 2**100 for k in range(300)]
    for b in (one, many):
        for lease, d in zip(leases, deposits, strict=True):
            b.open(lease, deposit=d)
    for p in (0, 3, 3, 10, 25, 60):
        report = many.accrue_all(p)
        for lease in leases:
            one.accrue(lease.id, p)
        assert report.accrued <= len(leases)
    assert one.ledger.balances() == many.ledger.balances()
    assert sorted(tx.id for tx in one.ledger.journal) == sorted(
        tx.id for tx in many.ledger.journal)
    for lease in leases:
        assert one.state(lease.id) == many.state(lease.id)
    statuses = {many.state(lease.id).status for lease in leases}
    assert statuses == set(LeaseStatus)
    # the journal alone (and the leases) rebuilds the book
    restored = LeaseBook.restore(many.ledger, leases, fees=fees)
    for lease in leases:
        assert restored.state(lease.id) == many.state(lease.id)
    restored.accrue_all(80)
    many.accrue_all(80)
    assert restored.ledger.balances() == many.ledger.balances()


def test_accrue_all_report_and_provider_withdrawal() -> None:
    book = book_with({("lab", "AKT"): 10**6})
    book.open(Lease(id="a", tenant="lab", provider="p", currency="AKT", rate=100), deposit=1000)
    book.open(Lease(id="b", tenant="lab", provider="q", currency="AKT", rate=100), deposit=150)
    book.open(Lease(id="c", tenant="lab", provider="p", currency="AKT", rate=100, periods=1),
              deposit=500)
    assert book.withdraw("q", 1) == 100  # only q's lease: 1 period paid, then overdrawn
    assert book.state("b").status is LeaseStatus.OVERDRAWN
    assert book.state("a").charged == 0
    report = book.accrue_all(1)
    assert report.accrued == 2
    assert report.completed == ("c",)
    assert report.overdrawn == ()
    assert report.tenant_paid == {"AKT": 300}
    assert report.provider_received == {"AKT": 300}
    assert report.protocol_received == {}


def test_terminate_refunds_unused_escrow_and_refuses_rewriting_history() -> None:
    book = book_with()
    book.open(Lease(id="l", tenant="lab", provider="p", currency="AKT", rate=100, start=5),
              deposit=1000)
    book.accrue("l", 7)  # periods 5, 6, 7
    with pytest.raises(InvalidSettlementError, match="already charged through period 7"):
        book.terminate("l", 7)
    assert book.terminate("l", 10) == 1000 - 500  # periods 5..9 owed
    state = book.state("l")
    assert (state.status, state.charged, state.closed_at) == (LeaseStatus.CLOSED, 5, 10)
    # terminating before the start charges nothing and refunds everything
    book.open(Lease(id="m", tenant="lab", provider="p", currency="AKT", rate=100, start=5),
              deposit=300)
    assert book.terminate("m", 3) == 300
    # terminating after the end of a lease with an end closes it at its end
    book.open(Lease(id="n", tenant="lab", provider="p", currency="AKT", rate=100, periods=2),
              deposit=300)
    assert book.terminate("n", 9) == 100
    assert book.state("n").closed_at == 2


def test_terminate_with_a_short_escrow_closes_overdrawn() -> None:
    book = book_with()
    book.open(Lease(id="l", tenant="lab", provider="p", currency="AKT", rate=100), deposit=250)
    assert book.terminate("l", 5) == 50
    assert book.state("l").status is LeaseStatus.OVERDRAWN


def test_book_errors_and_retries() -> None:
    book = book_with({("lab", "AKT"): 100})
    lease = Lease(id="l", tenant="lab", provider="p", currency="AKT", rate=10)
    assert book.open(lease, deposit=50)
    assert not book.open(lease)  # a retry
    with pytest.raises(DuplicateLeaseError) as dup:
        book.open(Lease(id="l", tenant="lab", provider="p", currency="AKT", rate=11))
    assert isinstance(dup.value, DuplicateIdError)  # one type for every duplicate id
    assert (dup.value.kind, dup.value.id, dup.value.lease_id) == ("lease", "l", "l")
    with pytest.raises(UnknownLeaseError):
        book.accrue("nope", 1)
    with pytest.raises(InvalidSettlementError, match="leases"):
        LeaseBook.restore(book.ledger, 5)  # type: ignore[arg-type]
    with pytest.raises(InvalidSettlementError, match="ClearingResult"):
        leases_from_result(None, "USDC")  # type: ignore[arg-type]
    with pytest.raises(InsufficientFundsError):
        book.deposit("l", 51)
    with pytest.raises(InsufficientFundsError):
        book.open(Lease(id="m", tenant="lab", provider="p", currency="AKT", rate=1), deposit=99)
    assert "m" not in book
    assert len(book) == 1
    assert book.deposit("l", 10).id == "deposit:l:1"
    assert book.deposit("l", 10).id == "deposit:l:2"
    with pytest.raises(InvalidSettlementError):
        book.deposit("l", 1, ref="a:b")
    with pytest.raises(InvalidSettlementError):
        book.accrue("l", -1)
    with pytest.raises(InvalidSettlementError):
        book.cost("l")  # open-ended
    assert book.cost("l", 6) == 60
    assert [x.id for x in book] == ["l"]
    assert book.fee_rates("l") == FeeRates()
    with pytest.raises(InvalidSettlementError):
        LeaseBook("ledger")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"rate": -1}, "rate"),
        ({"rate": 1.5}, "rate"),
        ({"rate": 10, "provider_rate": 11}, "provider_rate"),
        ({"id": ""}, "id"),
        ({"tenant": " x"}, "tenant"),
        ({"currency": "A K T"}, "currency"),
        ({"periods": 0}, "periods"),
        ({"start": -1}, "start"),
        ({"period": 3600}, "period"),
    ],
)
def test_bad_leases_are_refused(kwargs: dict[str, object], field: str) -> None:
    terms: dict[str, object] = {"id": "l", "tenant": "lab", "provider": "p", "currency": "AKT",
                                "rate": 10}
    terms.update(kwargs)
    with pytest.raises(InvalidSettlementError) as e:
        Lease(**terms)  # type: ignore[arg-type]
    assert e.value.field == field


def test_periods() -> None:
    assert BLOCK.seconds == Fraction(61, 10)
    assert HOUR.hours == 1
    assert Period("0.5").seconds == Fraction(1, 2)
    assert HOUR.index_at(7199.9) == 1
    assert BLOCK.index_at(6.1) == 1
    assert BLOCK.periods_in(1) == 591
    assert HOUR.periods_in(5) == 5
    assert DAY.periods_in(25) == 2
    for bad in (0, -1, 1.5, "x", True):
        with pytest.raises(InvalidSettlementError):
            Period(bad)


def test_vector_kernels_are_exact_past_int64() -> None:
    rates = np.array([0, 1, 2_710_000, 2**62], dtype=np.int64)
    n = np.array([5, 3600, 10**6, 10**6], dtype=np.int64)
    got = cumulative_charges(rates, n, period=SECOND)
    want = [int(r) * int(k) // 3600 for r, k in zip(rates, n, strict=True)]
    assert got.tolist() == want
    small = cumulative_charges(rates[:3], n[:3], period=BLOCK)
    assert small.dtype == np.int64
    assert small.tolist() == [int(r) * int(k) * 61 // 36000
                              for r, k in zip(rates[:3], n[:3], strict=True)]
    pc = period_charges(np.full(1000, 7, dtype=np.int64), np.arange(1000), period=Period(1000))
    assert int(pc.sum()) == 7 * 1000 * 1000 // 3600


# -- from a clearing result ---------------------------------------------------------------------
def test_leases_from_a_vcg_result_use_the_exact_row_payments() -> None:
    orders: list[Offer | Request] = [
        Offer(id="o0", provider="p0", gpu_model="H100", gpus=2, price=1464, region="us",
              vram_gb=80),
        Offer(id="o1", provider="p1", gpu_model="H100", gpus=3, price=1161, region="us",
              vram_gb=80),
        Offer(id="o2", provider="p0", gpu_model="H100", gpus=2, price=933, region="us",
              vram_gb=80),
        Request(id="r0", tenant="t0", gpus=2, max_price=2089, duration_hours=3),
        Request(id="r1", tenant="t1", gpus=3, max_price=1472, duration_hours=2),
    ]
    result = auction.clear(OrderBook(orders), "assignment", payment="vcg")
    assert result.provider_payment.tolist()[0] == 3255  # unit_price 1627 x 2 = 3254
    leases = leases_from_result(result, "USDC", requests=[o for o in orders
                                                          if isinstance(o, Request)])
    assert [(x.id, x.rate, x.provider_rate, x.periods, x.gpus) for x in leases] == [
        ("r0/o2", 3255, 3255, 3, 2), ("r1/o1", 4416, 4416, 2, 3)]
    book = book_with({("t0", "USDC"): 10**6, ("t1", "USDC"): 10**6})
    for lease in leases:
        book.open(lease, deposit=book.cost(lease))
    book.accrue_all(10)
    assert book.ledger.balance(wallet("provider", "p0"), "USDC") == 3 * 3255
    assert {book.status(x.id) for x in leases} == {LeaseStatus.CLOSED}
    per_block = leases_from_result(result, "USDC", period=BLOCK, start=7,
                                   requests={"r0": 1}, prefix="a:")
    assert per_block[0].id == "a:r0/o2"
    assert per_block[0].periods == 591
    assert per_block[1].periods is None
    assert per_block[0].start == 7


def test_leases_from_a_result_alone_take_each_request_duration_from_the_result() -> None:
    """The result carries each row's request duration: no orders needed to settle it."""
    orders: list[Offer | Request] = [
        Offer(id="o0", provider="p0", gpu_model="H100", gpus=4, price=900, region="us",
              vram_gb=80),
        Request(id="r0", tenant="t0", gpus=2, max_price=2000, duration_hours=5),
        Request(id="r1", tenant="t1", gpus=2, max_price=1500, duration_hours=2),
    ]
    result = auction.clear(OrderBook(orders), "first-price")
    assert result.duration_hours is not None
    assert dict(zip(result.request_id.tolist(), result.duration_hours.tolist(),
                    strict=True)) == {"r0": 5, "r1": 2}
    assert not result.duration_hours.flags.writeable
    leases = leases_from_result(result, "USDC")
    requests = [o for o in orders if isinstance(o, Request)]
    assert leases == leases_from_result(result, "USDC", requests=requests)
    assert {x.request_id: x.periods for x in leases} == {"r0": 5, "r1": 2}
    assert {x.periods for x in leases_from_result(result, "USDC", durations=None)} == {None}
    assert [x.periods for x in leases_from_result(result, "USDC", period=DAY)] == [1, 1]
    assert {x.request_id: x.periods for x in leases_from_result(
        result, "USDC", durations={"r1": 7})} == {"r0": None, "r1": 7}
    with pytest.raises(InvalidSettlementError, match="durations"):
        leases_from_result(result, "USDC", durations="orders")  # type: ignore[arg-type]
    bare = attrs.evolve(result, duration_hours=None)
    with pytest.raises(InvalidSettlementError, match="carries no durations"):
        leases_from_result(bare, "USDC")
    assert len(leases_from_result(bare, "USDC", durations=None)) == 2


def test_leases_from_a_double_auction_keep_the_platform_margin() -> None:
    orders: list[Offer | Request] = [
        Offer(id=f"s{i}", provider=f"p{i}", gpu_model="H100", gpus=1, price=a,
              region="us-east", vram_gb=80) for i, a in enumerate([180, 200, 240, 310])]
    orders += [Request(id=f"b{i}", tenant=f"t{i}", gpus=1, max_price=b,
                       gpu_models=frozenset({"H100"}), regions=frozenset({"us-east"}))
               for i, b in enumerate([300, 280, 260, 220, 150])]
    result = auction.clear(OrderBook(orders), "mcafee")
    leases = leases_from_result(result, "USDC", durations=None)  # open-ended
    assert [(x.rate, x.provider_rate, x.margin_rate) for x in leases] == [(260, 240, 20)] * 2
    book = book_with({("t0", "USDC"): 10**4, ("t1", "USDC"): 10**4})
    for lease in leases:
        book.open(lease, deposit=1000)
    book.accrue_all(2)
    assert book.ledger.balance(FEES, "USDC") == 2 * 3 * 20
    assert book.ledger.balance(wallet("provider", "p0"), "USDC") == 3 * 240


@settings(max_examples=200, deadline=None)
@given(
    rates=st.lists(st.one_of(st.integers(0, 10**9), st.integers(0, 2**63 - 1)), min_size=1,
                   max_size=20),
    index=st.integers(0, 2**40),
    period=st.sampled_from([HOUR, BLOCK, SECOND, DAY, Period("0.37"), Period(7 * 86400)]),
)
def test_period_charges_match_python_ints_on_every_path(
    rates: list[int], index: int, period: Period
) -> None:
    """int64, the split int64 path for huge rates, and the Python-int fallback all give the
    exact charge; the result is int64 whenever every charge fits."""
    h = period.hours
    idx = np.full(len(rates), index, dtype=np.int64)

    def exact(r: int, i: int) -> int:
        return r * (i + 1) * h.numerator // h.denominator - r * i * h.numerator // h.denominator

    got = period_charges(np.array(rates, dtype=np.int64), idx, period=period)
    want = [exact(r, index) for r in rates]
    assert got.tolist() == want
    assert (got.dtype == np.int64) == all(w <= 2**63 - 1 for w in want)
    cum = cumulative_charges(np.array(rates, dtype=np.int64), idx, period=period)
    assert cum.tolist() == [r * index * h.numerator // h.denominator for r in rates]
    huge = np.array([r * 10**20 for r in rates], dtype=object)  # past int64: Python ints
    assert period_charges(huge, idx, period=period).tolist() == [
        exact(r * 10**20, index) for r in rates
    ]
    with pytest.raises(InvalidSettlementError, match="rates"):
        period_charges(np.array([1.5]), idx[:1], period=period)
