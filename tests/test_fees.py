"""Fees (Akash, io.net, Render), SLA penalties (Aethir) and bid deposits."""

from __future__ import annotations

import ast
import json
import os
from decimal import Decimal
from fractions import Fraction
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from auction.errors import AuctionError, UnknownSchemaError
from auction.reputation.events import Event, Outcome
from auction.settlement import (
    DAY,
    HOUR,
    Account,
    AccountKind,
    DepositResolvedError,
    FeeRates,
    FeeSchedule,
    InsufficientFundsError,
    InvalidSettlementError,
    InvalidTransactionError,
    Lease,
    LeaseBook,
    Ledger,
    PenaltyPolicy,
    Rounding,
    TxKind,
    TxMeta,
    UnknownLedgerSchemaError,
    as_rate,
    bps,
    fee_of,
    fees,
    forfeit_bid_deposit,
    lock_bid_deposit,
    penalties,
    rates,
    return_bid_deposit,
    sla_penalty,
    transfer,
)
from auction.settlement.ledger import FORMAT, SCHEMA, VERSION

ISSUANCE = Account(AccountKind.ISSUANCE)
FEES = Account(AccountKind.PROTOCOL_FEES)
TREASURY = Account(AccountKind.TREASURY)


def acct(kind: str, owner: str = "") -> Account:
    return Account(kind, owner)


def one_hour(fees: FeeSchedule, currency: str, rate: int) -> tuple[int, int, int]:
    """(tenant paid, provider received, protocol received) for one hour at `rate`."""
    ledger = Ledger()
    ledger.post(transfer("fund", ISSUANCE, acct("tenant", "t"), currency, 10 * rate + 10))
    book = LeaseBook(ledger, fees=fees)
    book.open(Lease(id="l", tenant="t", provider="p", currency=currency, rate=rate, periods=1),
              deposit=10 * rate + 10)
    book.accrue("l", 0)
    return (10 * rate + 10 - ledger.balance(acct("tenant", "t"), currency),
            ledger.balance(acct("provider", "p"), currency), ledger.balance(FEES, currency))


# -- rates --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "want"),
    [("2%", Fraction(1, 50)), ("25bps", Fraction(1, 400)), ("0.02", Fraction(1, 50)),
     (" 20 % ", Fraction(1, 5)), (Fraction(1, 3), Fraction(1, 3)), (Decimal("0.05"),
                                                                    Fraction(1, 20)),
     (0, Fraction(0)), (1, Fraction(1))],
)
def test_rates_are_exact(value: object, want: Fraction) -> None:
    assert as_rate(value) == want


@pytest.mark.parametrize("value", [0.02, True, "2", "-1%", "x", "nan", Fraction(3, 2), None,
                                   Decimal("inf")])
def test_bad_rates_are_refused(value: object) -> None:
    with pytest.raises(InvalidSettlementError):
        as_rate(value)


def test_bps_and_fee_rounding() -> None:
    assert bps(25) == Fraction(1, 400)
    with pytest.raises(InvalidSettlementError):
        bps(2.5)  # type: ignore[arg-type]
    assert fee_of(999, Fraction(1, 100)) == 9  # down: the payer keeps 0.99
    assert fee_of(999, Fraction(1, 100), "up") == 10  # up: the protocol gets it
    assert fee_of(1000, Fraction(1, 100), Rounding.UP) == 10


def test_schedule_lookup_and_validation() -> None:
    fees = FeeSchedule({"AKT": "2%", "USDC": FeeRates(provider="20%", tenant="1%")},
                       default="5%")
    assert fees.of("AKT") == FeeRates(provider=Fraction(1, 50))
    assert fees.of("USDC").tenant == Fraction(1, 100)
    assert fees.of("OTHER") == FeeRates(provider=Fraction(1, 20))
    assert fees.provider_fee(1001, "USDC") == 200
    assert fees.tenant_fee(1001, "USDC") == 10
    assert FeeSchedule().of("AKT") == FeeRates()
    assert FeeSchedule({"AKT": "2%"}) == FeeSchedule({"AKT": Fraction(1, 50)})
    for bad in ({"A K T": "2%"}, {"AKT": 0.02}, "2%"):
        with pytest.raises(InvalidSettlementError):
            FeeSchedule(bad)
    with pytest.raises(InvalidSettlementError):
        FeeSchedule(rounding="sideways")
    with pytest.raises(InvalidSettlementError):
        FeeSchedule(account="fees")


# -- golden: published fee rules ----------------------------------------------------------------
def test_akash_takes_2_percent_of_akt_and_20_percent_of_usdc() -> None:
    fees = FeeSchedule.akash()
    assert one_hour(fees, "AKT", 1_000_000) == (1_000_000, 980_000, 20_000)
    assert one_hour(fees, "USDC", 1_000_000) == (1_000_000, 800_000, 200_000)


def test_render_keeps_5_percent_and_the_provider_gets_the_remainder() -> None:
    fees = FeeSchedule.render("USDC")
    assert one_hour(fees, "USDC", 1_000_000) == (1_000_000, 950_000, 50_000)
    # 5% of 999,999 is 49,999.95: rounded down, the provider keeps the 0.95
    assert one_hour(fees, "USDC", 999_999) == (999_999, 950_000, 49_999)
    up = FeeSchedule({"USDC": "5%"}, rounding="up")
    assert one_hour(up, "USDC", 999_999) == (999_999, 949_999, 50_000)


def test_io_net_reservation_fee_on_both_sides_and_2_percent_on_stablecoin() -> None:
    fees = FeeSchedule.io_net()
    # USDC: the tenant pays 0.25% + 2% on top, the provider has 0.25% deducted
    assert one_hour(fees, "USDC", 1_000_000) == (1_022_500, 997_500, 25_000)
    # the native token: 0.25% on each side only
    assert one_hour(fees, "IO", 1_000_000) == (1_002_500, 997_500, 5_000)


def test_fees_on_cumulative_amounts_never_lose_rounding() -> None:
    """A 2% fee on 49 units is 0.98: charged per period and rounded down it would never be
    paid; on the cumulative amount the protocol gets floor(2% x 490) = 9 after 10 periods."""
    ledger = Ledger()
    ledger.post(transfer("fund", ISSUANCE, acct("tenant", "t"), "AKT", 1000))
    book = LeaseBook(ledger, fees=FeeSchedule.akash())
    book.open(Lease(id="l", tenant="t", provider="p", currency="AKT", rate=49), deposit=1000)
    for p in range(10):
        book.accrue("l", p)
    assert ledger.balance(FEES, "AKT") == 9
    assert ledger.balance(acct("provider", "p"), "AKT") == 481


@given(st.integers(0, 10**12), st.integers(0, 10_000), st.sampled_from(list(Rounding)))
def test_fee_plus_net_is_the_amount(amount: int, points: int, rounding: Rounding) -> None:
    fee = fee_of(amount, bps(points), rounding)
    exact = Fraction(amount * points, 10_000)
    assert 0 <= fee <= amount
    assert (fee <= exact < fee + 1) if rounding is Rounding.DOWN else (fee - 1 < exact <= fee)


# -- SLA penalties (Aethir) ---------------------------------------------------------------------
def aethir(stake: int = 3000, wallet_spend: int = 0) -> LeaseBook:
    """A daily lease at 1,000 per day, 20% protocol fee, paid through day 4; the provider
    staked `stake` (K x coefficient) and spent `wallet_spend` of its earnings."""
    ledger = Ledger()
    ledger.post(transfer("fund-t", ISSUANCE, acct("tenant", "t"), "ATH", 100_000))
    ledger.post(transfer("fund-p", ISSUANCE, acct("provider_stake", "node"), "ATH", stake))
    book = LeaseBook(ledger, fees=FeeSchedule({"ATH": "20%"}))
    book.open(Lease(id="l", tenant="t", provider="node", currency="ATH", rate=1000, period=DAY,
                    unit=DAY), deposit=10_000)
    book.accrue("l", 4)
    if wallet_spend:
        ledger.post(transfer("spend", acct("provider", "node"), ISSUANCE, "ATH", wallet_spend))
    return book


def breach(eid: str = "e1", day: float = 2.0, outcome: str = "sla_breach") -> Event:
    return Event(id=eid, provider="node", time=day * 86400 + 100, outcome=outcome, tenant="t")


def test_downtime_refunds_the_day_with_the_fee_waived_and_slashes_a_third() -> None:
    book = aethir()
    led = book.ledger
    before_tenant = led.balance(acct("tenant", "t"), "ATH")
    tx = sla_penalty(book, breach(), "l")
    assert tx is not None
    assert tx.id == "penalty:e1"
    assert led.balance(acct("tenant", "t"), "ATH") == before_tenant + 1000
    assert led.balance(acct("provider", "node"), "ATH") == 5 * 800 - 800
    assert led.balance(FEES, "ATH") == 5 * 200 - 200
    assert led.balance(acct("provider_stake", "node"), "ATH") == 2000
    assert led.balance(TREASURY, "ATH") == 1000
    # a retry is a no-op
    balances = led.balances()
    assert sla_penalty(book, breach(), "l") == tx
    assert led.balances() == balances
    # another report of the same day refunds nothing more; the slash uses the required stake
    tx2 = sla_penalty(book, breach("e2"), "l", stake=3000)
    assert tx2 is not None
    assert led.balance(acct("tenant", "t"), "ATH") == before_tenant + 1000
    assert led.balance(TREASURY, "ATH") == 2000
    assert tx.memo == "sla_breach; refunded 2-2; lease l"
    assert tx2.memo == "sla_breach; refunded -; lease l"
    restored = LeaseBook.restore(led, book, fees=book.fees)
    assert restored.refunded("l") == book.refunded("l") == {2}
    assert restored.state("l") == book.state("l")
    assert tx.meta == TxMeta(kind=TxKind.PENALTY, lease="l", periods=((2, 2),))
    assert tx2.meta == TxMeta(kind=TxKind.PENALTY, lease="l")


def _as_version_1(ledger: Ledger) -> str:
    """`ledger` as version 1 wrote it: a "format" key and no metadata."""
    doc = json.loads(ledger.to_json())
    del doc["format"], doc["version"]
    for record in doc["journal"]:
        record.pop("meta", None)
    return json.dumps({"format": "auction.settlement.ledger/1", **doc})


def test_restore_folds_over_metadata_and_version_1_journals_still_load() -> None:
    """`restore` reads typed metadata, never memos: blanking every memo changes nothing; a
    version-1 document (no metadata) reads back with the metadata its ids implied."""
    book = aethir()
    sla_penalty(book, breach(), "l")
    sla_penalty(book, breach("e3"), "l", periods=(0, 3))  # day 2 was refunded before
    lock_bid_deposit(book.ledger, "b1", "node", "ATH", 5)
    forfeit_bid_deposit(book.ledger, "b1")
    book.terminate("l", 6)
    journal = book.ledger.journal
    assert [tx.meta.kind for tx in journal] == [
        TxKind.TRANSFER, TxKind.TRANSFER, TxKind.DEPOSIT, TxKind.ACCRUAL, TxKind.PENALTY,
        TxKind.PENALTY, TxKind.BID_LOCK, TxKind.BID_RESOLVE, TxKind.ACCRUAL, TxKind.CLOSE]
    assert journal[5].meta.periods == ((0, 1), (3, 3))
    assert journal[9].meta == TxMeta(kind=TxKind.CLOSE, lease="l", status="closed")
    blank = Ledger.replay(attrs.evolve(tx, memo="") for tx in journal)
    for ledger in (blank, Ledger.from_json(book.ledger.to_json())):
        restored = LeaseBook.restore(ledger, book, fees=book.fees)
        assert restored.state("l") == book.state("l")
        assert restored.refunded("l") == book.refunded("l") == {0, 1, 2, 3}
    bogus = [attrs.evolve(tx, meta=attrs.evolve(tx.meta, status="bogus"))
             if tx.meta.kind is TxKind.CLOSE else tx for tx in journal]
    with pytest.raises(InvalidTransactionError) as bad:
        LeaseBook.restore(Ledger.replay(bogus), book, fees=book.fees)
    assert (bad.value.field, bad.value.value, bad.value.tx_id) == ("meta", "bogus", "close:l")
    old = Ledger.from_json(_as_version_1(book.ledger))
    assert old == book.ledger  # the same journal, metadata included
    assert LeaseBook.restore(old, book, fees=book.fees).refunded("l") == {0, 1, 2, 3}
    with pytest.raises(DepositResolvedError):
        return_bid_deposit(old, "b1")
    doc = json.loads(book.ledger.to_json())
    assert (doc["format"], doc["version"]) == (FORMAT, VERSION) == ("auction.settlement.ledger", 2)
    body = {k: v for k, v in doc.items() if k not in ("format", "version")}
    # the older single key of version 2 still reads, to the same ledger
    assert Ledger.from_json(json.dumps({"schema": SCHEMA, **body})) == book.ledger
    assert SCHEMA == "auction.settlement.ledger/2"
    refused: list[tuple[dict[str, Any], str, Any]] = [
        ({"schema": "auction.settlement.ledger/3"}, "schema", "auction.settlement.ledger/3"),
        ({"schema": "auction.book/1"}, "schema", "auction.book/1"),
        ({"schema": None}, "schema", None),
        ({"format": FORMAT, "version": 3}, "version", 3),
        ({"format": FORMAT, "version": "2"}, "version", "2"),
        ({"format": FORMAT, "version": True}, "version", True),
        ({"format": FORMAT, "version": 2.0}, "version", 2.0),
        ({"format": "auction.book", "version": 2}, "format", "auction.book"),
        ({"format": FORMAT}, "version", None),
        ({"format": FORMAT, "version": 2, "schema": SCHEMA}, "schema", SCHEMA),
    ]
    for head, field, value in refused:
        with pytest.raises(UnknownLedgerSchemaError) as info:
            Ledger.from_json(json.dumps({**head, **body}))
        assert isinstance(info.value, UnknownSchemaError)
        assert isinstance(info.value, InvalidSettlementError)
        assert (info.value.field, info.value.value) == (field, value)
        assert SCHEMA in info.value.supported


def test_malice_slashes_the_whole_stake_and_a_failed_job_only_refunds() -> None:
    book = aethir()
    led = book.ledger
    sla_penalty(book, breach("f", 1, "failed"), "l")
    assert led.balance(acct("provider_stake", "node"), "ATH") == 3000
    assert led.balance(acct("provider", "node"), "ATH") == 4000 - 800
    sla_penalty(book, breach("a", 3, "audit_failed"), "l", periods=(3, 4))
    assert led.balance(acct("provider_stake", "node"), "ATH") == 0
    assert led.balance(TREASURY, "ATH") == 3000
    assert led.balance(acct("provider", "node"), "ATH") == 4000 - 3 * 800
    assert sla_penalty(book, breach("ok", 1, "completed"), "l") is None


def test_refund_comes_from_the_stake_when_the_wallet_is_short() -> None:
    book = aethir(wallet_spend=3700)  # 300 left in the wallet
    led = book.ledger
    sla_penalty(book, breach(), "l", policy=PenaltyPolicy(slash={}))
    assert led.balance(acct("provider", "node"), "ATH") == 0
    assert led.balance(acct("provider_stake", "node"), "ATH") == 3000 - 500


def test_penalty_options_slash_to_tenant_and_keep_fees() -> None:
    book = aethir()
    led = book.ledger
    t0 = led.balance(acct("tenant", "t"), "ATH")
    policy = PenaltyPolicy(slash={Outcome.SLA_BREACH: "50%"}, slash_to="tenant",
                           waive_fees=False)
    sla_penalty(book, breach(), "l", policy=policy)
    assert led.balance(acct("tenant", "t"), "ATH") == t0 + 1000 + 1500
    assert led.balance(FEES, "ATH") == 1000  # the protocol kept its fee
    assert led.balance(acct("provider", "node"), "ATH") == 4000 - 1000


def test_only_charged_periods_are_refunded() -> None:
    book = aethir()
    tx = sla_penalty(book, breach(day=9), "l", policy=PenaltyPolicy(slash={}))
    assert tx is None  # day 9 was never charged: nothing to refund, nothing to slash
    refund = book.refund_amounts("l", 3, 9)
    assert refund.periods == (3, 4)
    assert refund.tenant == 2000


def test_penalty_errors_leave_everything_unchanged() -> None:
    book = aethir(stake=0, wallet_spend=3900)  # 100 left: cannot refund a day's 800
    balances = book.ledger.balances()
    with pytest.raises(InsufficientFundsError):
        sla_penalty(book, breach(), "l")
    assert book.ledger.balances() == balances
    assert book.refund_amounts("l", 2, 2).periods == (2,)  # not marked refunded
    other = Event(id="x", provider="someone", time=0, outcome="sla_breach")
    with pytest.raises(InvalidSettlementError, match="served by 'node'"):
        sla_penalty(book, other, "l")
    with pytest.raises(InvalidSettlementError):
        sla_penalty(book, "event", "l")  # type: ignore[arg-type]
    with pytest.raises(InvalidSettlementError):
        sla_penalty(book, breach(), "l", stake=-1)
    with pytest.raises(InvalidSettlementError):
        PenaltyPolicy(slash={"completed": "10%"})
    with pytest.raises(InvalidSettlementError):
        PenaltyPolicy(slash_to="bob")


# -- bid deposits -------------------------------------------------------------------------------
def provider_ledger() -> Ledger:
    ledger = Ledger()
    ledger.post(transfer("fund", ISSUANCE, acct("provider", "farm"), "uakt", 2_000_000))
    return ledger


def test_bid_deposits_resolve_once() -> None:
    ledger = provider_ledger()
    farm = acct("provider", "farm")
    for bid in ("b1", "b2", "b3"):
        lock_bid_deposit(ledger, bid, "farm", "uakt", 500_000)  # Akash: 0.5 AKT per bid
    lock_bid_deposit(ledger, "b1", "farm", "uakt", 500_000)  # a retry
    assert ledger.balance(farm, "uakt") == 500_000
    with pytest.raises(InsufficientFundsError):
        lock_bid_deposit(ledger, "b4", "farm", "uakt", 600_000)
    returned = return_bid_deposit(ledger, "b1")  # the bid lost
    assert return_bid_deposit(ledger, "b1") == returned  # a retry
    with pytest.raises(DepositResolvedError, match="returned"):
        forfeit_bid_deposit(ledger, "b1")
    forfeit_bid_deposit(ledger, "b2")
    forfeit_bid_deposit(ledger, "b3", to=Account(AccountKind.BURNED))
    with pytest.raises(DepositResolvedError, match="forfeited"):
        return_bid_deposit(ledger, "b2")
    assert ledger.balance(farm, "uakt") == 1_000_000
    assert ledger.balance(TREASURY, "uakt") == 500_000
    assert ledger.burned("uakt") == 500_000
    with pytest.raises(InvalidSettlementError):
        return_bid_deposit(ledger, "never")


def test_penalties_and_deposits_replay() -> None:
    book = aethir()
    sla_penalty(book, breach(), "l")
    ledger = book.ledger
    ledger.post(transfer("fund-bid", ISSUANCE, acct("provider", "node"), "ATH", 10))
    lock_bid_deposit(ledger, "b", "node", "ATH", 10)
    return_bid_deposit(ledger, "b")
    assert Ledger.from_json(ledger.to_json()).balances() == ledger.balances()
    assert HOUR.seconds == 3600


def _settlement_imports(module: str) -> set[str]:
    """The `auction.settlement` modules `module` imports (at any level, even for typing)."""
    import auction.settlement

    path = os.path.join(os.path.dirname(auction.settlement.__file__), f"{module}.py")
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    names = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    names |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    return {n.rsplit(".", 1)[1] for n in names if n.startswith("auction.settlement.")}


def test_rates_sit_below_leases_and_penalties_above() -> None:
    """Layers, one way: ledger <- rates <- leases <- penalties; `fees` only re-exports."""
    assert _settlement_imports("rates") == {"ledger"}
    assert _settlement_imports("leases") == {"ledger", "rates"}
    assert _settlement_imports("penalties") == {"ledger", "rates", "leases"}
    assert _settlement_imports("fees") == {"rates", "penalties"}
    assert fees.sla_penalty is penalties.sla_penalty
    assert fees.FeeSchedule is rates.FeeSchedule


def test_every_error_raised_on_purpose_is_an_auction_error() -> None:
    """Each ``raise SomeError(...)`` in settlement, reputation and the simulation names an
    `AuctionError` subclass; the exceptions are Python protocols, listed here."""
    import builtins
    import importlib
    import pkgutil

    import auction.errors
    import auction.reputation
    import auction.settlement

    allowed = {AssertionError, AttributeError}  # unreachable code; assignment to an immutable
    names = ["auction.simulation"] + [
        f"{pkg.__name__}.{m.name}" for pkg in (auction.settlement, auction.reputation)
        for m in pkgutil.iter_modules(pkg.__path__)
    ]
    seen = 0
    for name in names:
        module = importlib.import_module(name)
        assert module.__file__ is not None
        with open(module.__file__, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if not isinstance(node, ast.Raise) or not isinstance(node.exc, ast.Call):
                continue
            func = node.exc.func
            if not isinstance(func, ast.Name):
                continue
            target = (getattr(module, func.id, None) or getattr(auction.errors, func.id, None)
                      or getattr(builtins, func.id, None))
            assert target is not None, (name, func.id)
            if isinstance(target, type):
                seen += 1
                assert issubclass(target, AuctionError) or target in allowed, (name, func.id)
            else:  # a helper that builds the error
                assert "Error" in str(target.__annotations__.get("return")), (name, func.id)
    assert seen > 100
