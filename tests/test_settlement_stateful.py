"""Stateful tests of settlement: random lease lifecycles, top-ups, terminations, penalties,
bid deposits, conversions and reward epochs on one ledger, checked after every step.

`SettlementMachine` drives two `LeaseBook`s (Akash-like fees rounded down; fees with a
tenant-side rate rounded up and the margin sent to the treasury) on one `Ledger`, next to
Render burn-and-mint, an Akash burn-mint equilibrium and an emission schedule. After every
step it checks:

1. conservation: in every currency the balances (ISSUANCE and BURNED included) sum to zero,
   and equal the postings of the journal summed independently;
2. no account outside ``ledger.allow_negative`` is below zero;
3. replay equals live: ``Ledger.replay``, ``Ledger.from_json(to_json())`` and
   ``LeaseBook.restore`` rebuild the same balances, flows and per-lease state;
4. the supply identity ``S(t+1) = S(t) + minted - burned - redeemed`` exactly, step to step,
   with the flows recomputed from the journal;
5. a shadow model of every lease (the documented formulas for ``T(n)``, Akash's overdrawn
   rule, termination), of the burn-mint equilibrium and of the emission schedule.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)

from auction.reputation import Event, Outcome
from auction.settlement import (
    BLOCK,
    DAY,
    HOUR,
    SECOND,
    Account,
    AccountKind,
    BmeState,
    CappedSupply,
    DecayingEmission,
    DepositResolvedError,
    DuplicateTransactionError,
    EmissionSchedule,
    FeeRates,
    FeeSchedule,
    FixedEmission,
    InsufficientFundsError,
    InvalidSettlementError,
    InvalidTokenomicsError,
    Lease,
    LeaseBook,
    LeaseClosedError,
    LeaseState,
    LeaseStatus,
    Ledger,
    MintingHaltedError,
    OraclePrice,
    PenaltyPolicy,
    Period,
    Rounding,
    Transaction,
    bme_mint_transaction,
    bme_redeem_transaction,
    forfeit_bid_deposit,
    lock_bid_deposit,
    mint_transaction,
    quotas,
    render_burn,
    render_burn_transaction,
    return_bid_deposit,
    reward_transaction,
    sla_penalty,
    split_rewards,
    transfer,
    work_weights,
)
from auction.settlement.tokenomics import BME_HALT_RATIO

ISSUANCE = Account(AccountKind.ISSUANCE)
BURNED = Account(AccountKind.BURNED)
TREASURY = Account(AccountKind.TREASURY)
FEES = Account(AccountKind.PROTOCOL_FEES)
POOL = Account(AccountKind.EMISSIONS_POOL)

TENANTS = ("t0", "t1", "t2")
PROVIDERS = ("p0", "p1", "p2")
#: Currencies money enters from ISSUANCE; ACT (the BME credit) is only ever minted by BME.
FUNDABLE = ("AKT", "USDC", "IO", "RNDR")
CURRENCIES = ("AKT", "USDC", "IO", "ACT", "RNDR")
LEASE_CURRENCIES = ("AKT", "USDC", "IO", "ACT")
#: Rewards are paid in RNDR (Render pays providers from the epoch's emission).
REWARD = "RNDR"

# (period, unit): rates per hour charged per hour, per block, per half hour, per day; and
# rates per block charged per block (Akash).
TIMINGS = (
    (HOUR, HOUR),
    (BLOCK, BLOCK),
    (BLOCK, HOUR),
    (Period(1800, "half-hour"), HOUR),
    (DAY, HOUR),
    (SECOND, SECOND),
)
AKT_PRICES = tuple(OraclePrice("AKT", "ACT", p) for p in ("2", "1/2", "3/2", "1/5"))
RENDER_PRICES = tuple(
    OraclePrice("RNDR", "USD", p, base_decimals=2, quote_decimals=2) for p in ("7.25", "1/3", "2")
)
#: Terms of a random lease (the rules add `periods` and `deposit`), for `SettlementMachine._open`.
LEASE_TERMS: dict[str, st.SearchStrategy[Any]] = {
    "book": st.integers(0, 1),
    "tenant": st.sampled_from(TENANTS),
    "provider": st.sampled_from(PROVIDERS),
    "currency": st.sampled_from(LEASE_CURRENCIES),
    "timing": st.sampled_from(TIMINGS),
    "rate": st.integers(0, 5_000),
    "share": st.sampled_from([Fraction(1), Fraction(3, 4), Fraction(1, 2), Fraction(0)]),
    "start": st.integers(0, 4),  # periods from now
}
#: When a lease operation happens: periods from now, mostly near; sometimes far ahead.
AHEAD = st.integers(-3, 8) | st.just(60)
POLICIES = (
    PenaltyPolicy(),
    PenaltyPolicy(slash_to=BURNED),
    PenaltyPolicy(slash_to="tenant", waive_fees=False),
    PenaltyPolicy(slash={Outcome.FAILED: "50%", Outcome.AUDIT_FAILED: "1"}),
)


def akash_like() -> FeeSchedule:
    """Akash's 2% native / 20% stablecoin take rates, plus io.net-like tenant-side rates on
    IO."""
    return FeeSchedule(
        {"AKT": "2%", "USDC": "20%", "IO": FeeRates(provider="25bps", tenant="225bps")}
    )


def tenant_side() -> FeeSchedule:
    """Tenant-side rates, a default rate and fees rounded up (to the protocol)."""
    return FeeSchedule(
        {"USDC": FeeRates(provider="5%", tenant="1%"), "ACT": FeeRates(tenant="50bps")},
        default="3%",
        rounding="up",
    )


# -- the shadow model of a lease ----------------------------------------------------------------
def _fee(amount: int, rate: Fraction, rounding: Rounding) -> int:
    x = amount * rate
    return math.floor(x) if rounding is Rounding.DOWN else math.ceil(x)


@attrs.define
class Shadow:
    """A lease as the documentation describes it, computed independently of `LeaseBook`."""

    lease: Lease
    book: int
    rates: FeeRates
    rounding: Rounding
    deposited: int = 0
    escrow: int = 0
    n: int = 0
    status: LeaseStatus = LeaseStatus.OPEN
    closed_at: int | None = None
    unpaid: int = 0
    close_refund: int = 0
    refunded: set[int] = attrs.Factory(set)

    def cum(self, n: int) -> tuple[int, int]:
        """(T(n), provider net) after `n` periods: the formulas of docs/settlement.md."""
        lease = self.lease
        assert lease.provider_rate is not None
        h = lease.period.seconds / lease.unit.seconds
        gross = math.floor(lease.provider_rate * n * h)
        margin = math.floor((lease.rate - lease.provider_rate) * n * h)
        pfee = _fee(gross, self.rates.provider, self.rounding)
        tfee = _fee(gross + margin, self.rates.tenant, self.rounding)
        return gross + margin + tfee, gross - pfee

    def tenant_cost(self, n: int) -> int:
        return self.cum(n)[0]

    def target(self, period: int) -> int:
        t = max(0, period - self.lease.start + 1)
        return t if self.lease.periods is None else min(t, self.lease.periods)

    def plan(self, target: int, close_at: int | None = None) -> tuple[int, int, int]:
        """Charge through `target` periods (Akash's rule when the escrow runs out); returns
        (tenant paid, provider received, refunded to the tenant on closing)."""
        t0, p0 = self.cum(self.n)
        t1, _ = self.cum(target)
        if t1 - t0 <= self.escrow:
            m = target
            ends = self.lease.periods is not None and m >= self.lease.periods
            status = LeaseStatus.CLOSED if close_at is not None or ends else LeaseStatus.OPEN
        else:
            m = self.n
            while m < target and self.tenant_cost(m + 1) - t0 <= self.escrow:
                m += 1
            status = LeaseStatus.OVERDRAWN
            self.unpaid = t1 - self.tenant_cost(m)
        tm, pm = self.cum(m)
        self.escrow -= tm - t0
        self.n = m
        refund = 0
        if status is not LeaseStatus.OPEN:
            self.status = status
            at_end = close_at is None or status is LeaseStatus.OVERDRAWN
            self.closed_at = self.lease.start + m if at_end else close_at
            refund, self.escrow = self.escrow, 0
            self.close_refund = refund
        return tm - t0, pm - p0, refund

    def accrue(self, period: int) -> tuple[int, int, int]:
        if self.status is not LeaseStatus.OPEN or self.target(period) <= self.n:
            return 0, 0, 0
        return self.plan(self.target(period))

    def state(self) -> LeaseState:
        return LeaseState(
            id=self.lease.id,
            status=self.status,
            charged=self.n,
            paid_through=self.lease.start + self.n - 1 if self.n else None,
            closed_at=self.closed_at,
            unpaid=self.unpaid,
            escrow=self.escrow,
        )


def _journal_flows(ledger: Ledger) -> tuple[dict[tuple[Account, str], int], dict[str, list[int]]]:
    """Balances and (minted, burned, redeemed) per currency, summed from the journal's
    postings without the ledger's own bookkeeping."""
    balances: dict[tuple[Account, str], int] = {}
    flows: dict[str, list[int]] = {}
    for tx in ledger.journal:
        net: dict[tuple[Account, str], int] = {}
        for p in tx.postings:
            net[(p.account, p.currency)] = net.get((p.account, p.currency), 0) + p.amount
        for (account, currency), d in net.items():
            balances[(account, currency)] = balances.get((account, currency), 0) + d
            f = flows.setdefault(currency, [0, 0, 0])
            if account.kind is AccountKind.ISSUANCE:
                f[0 if d < 0 else 2] += abs(d)
            elif account.kind is AccountKind.BURNED:
                f[1] += d
    return {k: v for k, v in balances.items() if v}, flows


# -- the machine --------------------------------------------------------------------------------
class SettlementMachine(RuleBasedStateMachine):
    leases = Bundle("leases")
    bids = Bundle("bids")
    events = Bundle("events")

    def __init__(self) -> None:
        super().__init__()
        self.ledger = Ledger()
        self.books = (
            LeaseBook(self.ledger, fees=akash_like()),
            LeaseBook(self.ledger, fees=tenant_side(), margin_account=TREASURY),
        )
        self.shadows: dict[str, Shadow] = {}
        self.bid_status: dict[str, str | None] = {}
        self.bme = BmeState()
        self.akt_price = AKT_PRICES[0]
        self.credit_minted = 0
        self.credit_redeemed = 0
        self.tokens_burned = 0
        self.reminted = 0
        self.schedule: EmissionSchedule = FixedEmission(1_000)
        self.epoch = 0
        self.emitted = 0
        self.rewarded = 0
        self.prev: dict[str, tuple[int, int, int, int]] = {}
        self.k = 0
        self.now = 0  # the lease clock, in periods

    def _id(self, prefix: str) -> str:
        self.k += 1
        return f"{prefix}:{self.k}"

    # ---- helpers
    def snapshot(self) -> tuple[Any, ...]:
        """Everything a failed call must leave unchanged."""
        led = self.ledger
        return (
            led.balances(),
            len(led),
            led.journal,
            {c: (led.minted(c), led.burned(c), led.redeemed(c)) for c in CURRENCIES},
            [(b.state(lease.id), b.refunded(lease.id)) for b in self.books for lease in b],
        )

    def fail_unchanged(self, error: type[Exception], call: Callable[[], object]) -> Exception:
        """`call` raises exactly `error` and changes nothing."""
        before = self.snapshot()
        with pytest.raises(error) as e:
            call()
        assert type(e.value) is error
        assert self.snapshot() == before
        return e.value

    def bal(self, account: Account, currency: str) -> int:
        return self.ledger.balance(account, currency)

    # ---- setup
    @initialize(
        schedule=st.one_of(
            st.builds(FixedEmission, st.integers(0, 3_000)),
            st.builds(
                DecayingEmission,
                initial_per_year=st.integers(0, 40_000),
                decay=st.sampled_from(["12%", Fraction(1, 2), "0"]),
                epochs_per_year=st.sampled_from([1, 4, 12]),
                years=st.none() | st.integers(0, 3),
            ),
            st.tuples(st.integers(0, 5_000), st.integers(0, 5_000), st.integers(1, 2_000)).map(
                lambda t: CappedSupply(t[0] + t[1], FixedEmission(t[2]), initial_supply=t[0])
            ),
        )
    )
    def choose_schedule(self, schedule: EmissionSchedule) -> None:
        self.schedule = schedule

    @initialize(
        amounts=st.lists(
            st.integers(0, 2_000_000),
            min_size=len(FUNDABLE) * len(TENANTS + PROVIDERS),
            max_size=len(FUNDABLE) * len(TENANTS + PROVIDERS),
        ),
        stakes=st.lists(st.integers(0, 50_000), min_size=len(PROVIDERS), max_size=len(PROVIDERS)),
    )
    def open_wallets(self, amounts: list[int], stakes: list[int]) -> None:
        """Fund every wallet in every currency, and every provider's AKT stake, in one
        batch."""
        txs = []
        owners = [(o, c) for o in TENANTS + PROVIDERS for c in FUNDABLE]
        for (owner, currency), amount in zip(owners, amounts, strict=True):
            kind = AccountKind.TENANT if owner.startswith("t") else AccountKind.PROVIDER
            txs.append(
                transfer(
                    f"open:{owner}:{currency}", ISSUANCE, Account(kind, owner), currency, amount
                )
            )
        for provider, amount in zip(PROVIDERS, stakes, strict=True):
            stake = Account(AccountKind.PROVIDER_STAKE, provider)
            txs.append(transfer(f"open-stake:{provider}", ISSUANCE, stake, "AKT", amount))
        assert self.ledger.post_many(txs) == len(txs)

    # ---- money in and out
    @rule(
        owner=st.sampled_from(TENANTS + PROVIDERS),
        currency=st.sampled_from(FUNDABLE),
        amount=st.integers(0, 1_000_000),
    )
    def fund(self, owner: str, currency: str, amount: int) -> None:
        kind = AccountKind.TENANT if owner.startswith("t") else AccountKind.PROVIDER
        account = Account(kind, owner)
        before = self.bal(account, currency)
        assert self.ledger.post(transfer(self._id("fund"), ISSUANCE, account, currency, amount))
        assert self.bal(account, currency) == before + amount

    @rule(
        provider=st.sampled_from(PROVIDERS),
        currency=st.sampled_from(("AKT", "USDC", "IO")),
        amount=st.integers(0, 50_000),
    )
    def fund_stake(self, provider: str, currency: str, amount: int) -> None:
        stake = Account(AccountKind.PROVIDER_STAKE, provider)
        self.ledger.post(transfer(self._id("stake"), ISSUANCE, stake, currency, amount))

    @rule(
        owner=st.sampled_from(TENANTS + PROVIDERS),
        currency=st.sampled_from(CURRENCIES),
        share=st.sampled_from([Fraction(0), Fraction(1, 3), Fraction(1)]),
    )
    def cash_out(self, owner: str, currency: str, share: Fraction) -> None:
        """Withdraw to off-ledger money: back to ISSUANCE (the ledger's `redeemed`)."""
        kind = AccountKind.TENANT if owner.startswith("t") else AccountKind.PROVIDER
        account = Account(kind, owner)
        amount = math.floor(self.bal(account, currency) * share)
        redeemed = self.ledger.redeemed(currency)
        self.ledger.post(transfer(self._id("cash-out"), account, ISSUANCE, currency, amount))
        assert self.ledger.redeemed(currency) == redeemed + amount

    # ---- leases
    def at(self, ahead: int) -> int:
        """The period `ahead` periods from now (never before period 0)."""
        return max(0, self.now + ahead)

    @rule(by=st.integers(1, 6))
    def tick(self, by: int) -> None:
        self.now += by

    @rule(
        target=leases,
        terms=st.fixed_dictionaries(LEASE_TERMS),
        periods=st.none() | st.integers(1, 10),
        deposit=st.integers(0, 60_000),
    )
    def open_lease(self, terms: dict[str, Any], periods: int | None, deposit: int) -> Any:
        return self._open(periods=periods, deposit=deposit, **terms)

    @rule(
        target=leases,
        terms=st.fixed_dictionaries(LEASE_TERMS),
        periods=st.integers(1, 10) | st.none(),
    )
    def open_prepaid_lease(self, terms: dict[str, Any], periods: int | None) -> Any:
        """Nosana-style: the deposit is the whole lease's cost."""
        return self._open(periods=periods, deposit="cost", **terms)

    def _open(
        self,
        book: int,
        tenant: str,
        provider: str,
        currency: str,
        timing: tuple[Period, Period],
        rate: int,
        share: Fraction,
        start: int,
        periods: int | None,
        deposit: str | int,
    ) -> Any:
        period, unit = timing
        start += self.now
        lid = self._id("L")
        lease = Lease(
            id=lid,
            tenant=tenant,
            provider=provider,
            currency=currency,
            rate=rate,
            provider_rate=math.floor(rate * share),
            period=period,
            unit=unit,
            start=start,
            periods=periods,
        )
        b = self.books[book]
        shadow = Shadow(lease, book, b.fees.of(currency), b.fees.rounding)
        if deposit == "cost":
            if periods is None:
                self.fail_unchanged(InvalidSettlementError, lambda: b.cost(lease))
                deposit = shadow.tenant_cost(3)
            else:
                deposit = b.cost(lease)
                assert deposit == shadow.tenant_cost(periods)
        assert isinstance(deposit, int)
        wallet = Account(AccountKind.TENANT, tenant)
        if self.bal(wallet, currency) < deposit:
            self.fail_unchanged(InsufficientFundsError, lambda: b.open(lease, deposit=deposit))
            assert lid not in b
            return multiple()
        assert b.open(lease, deposit=deposit, time=start)
        before = self.snapshot()
        assert not b.open(lease, deposit=deposit, time=start)  # a retry
        assert self.snapshot() == before
        shadow.deposited = shadow.escrow = deposit
        self.shadows[lid] = shadow
        return lid

    @rule(lid=leases, amount=st.integers(0, 80_000))
    def top_up(self, lid: str, amount: int) -> None:
        shadow = self.shadows[lid]
        b = self.books[shadow.book]
        wallet = Account(AccountKind.TENANT, shadow.lease.tenant)
        if shadow.status is not LeaseStatus.OPEN:
            self.fail_unchanged(LeaseClosedError, lambda: b.top_up(lid, amount))
        elif self.bal(wallet, shadow.lease.currency) < amount:
            self.fail_unchanged(InsufficientFundsError, lambda: b.top_up(lid, amount))
        else:
            b.top_up(lid, amount)
            shadow.deposited += amount
            shadow.escrow += amount

    @rule(lid=leases, ahead=AHEAD)
    def accrue(self, lid: str, ahead: int) -> None:
        period = self.at(ahead)
        shadow = self.shadows[lid]
        n = shadow.n
        paid, _, _ = shadow.accrue(period)
        tx = self.books[shadow.book].accrue(lid, period)
        if shadow.n > n:  # periods accrued, even if they charged nothing: one transaction
            assert tx is not None
            escrow = (Account(AccountKind.TENANT_ESCROW, lid), shadow.lease.currency)
            assert -tx.net().get(escrow, 0) == paid
        else:
            assert tx is None

    def _accrue_many(self, book: int, period: int, provider: str | None) -> dict[str, list[int]]:
        expected: dict[str, list[int]] = {}
        for shadow in self.shadows.values():
            if shadow.book != book or provider not in (None, shadow.lease.provider):
                continue
            paid, received, _ = shadow.accrue(period)
            tot = expected.setdefault(shadow.lease.currency, [0, 0])
            tot[0] += paid
            tot[1] += received
        return expected

    @rule(book=st.integers(0, 1), ahead=AHEAD)
    def accrue_all(self, book: int, ahead: int) -> None:
        period = self.at(ahead)
        expected = self._accrue_many(book, period, None)
        report = self.books[book].accrue_all(period)
        assert dict(report.tenant_paid) == {c: v[0] for c, v in expected.items() if v[0]}
        assert dict(report.provider_received) == {c: v[1] for c, v in expected.items() if v[1]}

    @rule(book=st.integers(0, 1), provider=st.sampled_from(PROVIDERS), ahead=AHEAD)
    def withdraw(self, book: int, provider: str, ahead: int) -> None:
        period = self.at(ahead)
        expected = self._accrue_many(book, period, provider)
        received = self.books[book].withdraw(provider, period)
        assert received == sum(v[1] for v in expected.values())

    @rule(lid=leases, ahead=AHEAD)
    def terminate(self, lid: str, ahead: int) -> None:
        at = self.at(ahead)
        shadow = self.shadows[lid]
        b = self.books[shadow.book]
        lease = shadow.lease
        if shadow.status is not LeaseStatus.OPEN:
            before = self.snapshot()
            assert b.terminate(lid, at) == 0
            assert self.snapshot() == before
            return
        if shadow.n and at < lease.start + shadow.n:
            self.fail_unchanged(InvalidSettlementError, lambda: b.terminate(lid, at))
            return
        target = shadow.target(at - 1) if at > lease.start else 0
        _, _, refund = shadow.plan(target, at if lease.end is None else min(at, lease.end))
        assert b.terminate(lid, at) == refund
        assert b.status(lid) is not LeaseStatus.OPEN

    # ---- penalties and stakes
    @rule(
        target=events,
        lid=leases,
        outcome=st.sampled_from(list(Outcome)),
        span=st.none() | st.tuples(st.integers(-2, 8), st.integers(0, 6)),
        policy=st.sampled_from(POLICIES),
        stake=st.none() | st.integers(0, 20_000),
        wrong_provider=st.integers(0, 7).map(lambda x: x == 0),
    )
    def penalty(
        self,
        lid: str,
        outcome: Outcome,
        span: tuple[int, int] | None,
        policy: PenaltyPolicy,
        stake: int | None,
        wrong_provider: bool,
    ) -> Any:
        shadow = self.shadows[lid]
        lease = shadow.lease
        b = self.books[shadow.book]
        if span is None:  # the event's time: the middle of period p
            p = lease.start + shadow.n // 2
            first = last = p
            periods = None
            time = float(lease.period.seconds * p + lease.period.seconds / 2)
        else:
            first = max(0, lease.start + span[0])
            last = first + span[1]
            periods = (first, last)
            time = float(first)
        provider = "elsewhere" if wrong_provider else lease.provider
        event = Event(
            id=self._id("ev"), provider=provider, time=time, outcome=outcome, tenant=lease.tenant
        )

        def call() -> Transaction | None:
            return sla_penalty(b, event, lid, periods=periods, policy=policy, stake=stake)

        if wrong_provider:
            self.fail_unchanged(InvalidSettlementError, call)
            return multiple()
        refunds = outcome in policy.refund and not outcome.positive
        charged = range(max(first, lease.start), min(last, lease.start + shadow.n - 1) + 1)
        expect = [p for p in charged if p not in shadow.refunded] if refunds else []
        amount = sum(
            shadow.tenant_cost(p - lease.start + 1) - shadow.tenant_cost(p - lease.start)
            for p in expect
        )
        before = self.snapshot()
        try:
            tx = call()
        except InsufficientFundsError:
            assert self.snapshot() == before
            return multiple()
        if tx is None:
            assert self.snapshot() == before
            assert outcome.positive or amount == 0
            return multiple()
        assert not outcome.positive
        assert tx.id == f"penalty:{event.id}"
        assert self.ledger.journal[-1] == tx
        got = tx.net().get((Account(AccountKind.TENANT, lease.tenant), lease.currency), 0)
        if policy.slash_to == "tenant":
            assert got >= amount
        else:
            assert got == amount
        shadow.refunded.update(expect)
        assert b.refunded(lid) == shadow.refunded
        return (event, lid)

    @rule(ev=events)
    def retry_penalty(self, ev: tuple[Event, str]) -> None:
        event, lid = ev
        b = self.books[self.shadows[lid].book]
        before = self.snapshot()
        tx = sla_penalty(b, event, lid)
        assert tx is not None
        assert tx == self.ledger.get(f"penalty:{event.id}")
        assert self.snapshot() == before

    @rule(
        target=bids,
        provider=st.sampled_from(PROVIDERS),
        currency=st.sampled_from(FUNDABLE),
        amount=st.integers(0, 30_000),
    )
    def lock_bid(self, provider: str, currency: str, amount: int) -> Any:
        bid = self._id("bid")
        if self.bal(Account(AccountKind.PROVIDER, provider), currency) < amount:
            self.fail_unchanged(
                InsufficientFundsError,
                lambda: lock_bid_deposit(self.ledger, bid, provider, currency, amount),
            )
            return multiple()
        lock_bid_deposit(self.ledger, bid, provider, currency, amount)
        hold = Account(AccountKind.PROVIDER_STAKE, f"bid:{bid}")
        assert self.bal(hold, currency) == amount
        self.bid_status[bid] = None
        return bid

    @rule(
        bid=bids,
        how=st.sampled_from(["returned", "forfeited"]),
        to=st.sampled_from([TREASURY, BURNED, Account(AccountKind.TENANT, "t0")]),
    )
    def resolve_bid(self, bid: str, how: str, to: Account) -> None:
        def call() -> Transaction:
            if how == "returned":
                return return_bid_deposit(self.ledger, bid)
            return forfeit_bid_deposit(self.ledger, bid, to=to)

        status = self.bid_status[bid]
        if status is None:
            tx = call()
            assert tx.memo == how
            self.bid_status[bid] = how
        elif status == how:  # resolving again the same way: a no-op
            before = self.snapshot()
            assert call() == self.ledger.get(f"bid-deposit:{bid}:resolve")
            assert self.snapshot() == before
        else:
            e = self.fail_unchanged(DepositResolvedError, call)
            assert isinstance(e, DepositResolvedError)
            assert e.resolution == status
        lock = self.ledger.get(f"bid-deposit:{bid}")
        assert lock is not None
        hold = Account(AccountKind.PROVIDER_STAKE, f"bid:{bid}")
        assert self.bal(hold, lock.postings[0].currency) == 0

    # ---- conversions
    @rule(
        tenant=st.sampled_from(TENANTS),
        job=st.integers(0, 100_000),
        price=st.sampled_from(RENDER_PRICES),
    )
    def render_job(self, tenant: str, job: int, price: OraclePrice) -> None:
        burn = render_burn(job, price)
        assert burn.paid == math.ceil(job / price.unit_rate)
        assert burn.fee == math.floor(burn.paid * Fraction(5, 100))
        assert burn.fee + burn.burned == burn.paid
        wallet = Account(AccountKind.TENANT, tenant)
        tx = render_burn_transaction(self._id("render"), burn, tenant=wallet)
        if self.bal(wallet, "RNDR") < burn.paid:
            self.fail_unchanged(InsufficientFundsError, lambda: self.ledger.post(tx))
            return
        burned, fees = self.ledger.burned("RNDR"), self.bal(FEES, "RNDR")
        assert self.ledger.post(tx)
        assert self.ledger.burned("RNDR") == burned + burn.burned
        assert self.bal(FEES, "RNDR") == fees + burn.fee

    @rule(price=st.sampled_from(AKT_PRICES))
    def move_akt_price(self, price: OraclePrice) -> None:
        self.akt_price = price

    @rule(tenant=st.sampled_from(TENANTS), tokens=st.integers(0, 40_000))
    def bme_mint(self, tenant: str, tokens: int) -> None:
        price = self.akt_price
        bme = self.bme
        ratio = bme.vault * price.price / bme.outstanding if bme.outstanding else None
        credit = math.floor(tokens * price.price * Fraction(9975, 10_000))
        try:
            state, mint = bme.mint_credit(tokens, price)
        except MintingHaltedError:
            assert ratio is not None
            assert ratio < BME_HALT_RATIO
            return
        except InvalidTokenomicsError:
            assert credit == 0
            return
        assert ratio is None or ratio >= BME_HALT_RATIO
        assert (mint.tokens, mint.credit) == (tokens, credit)
        wallet = Account(AccountKind.TENANT, tenant)
        tx = bme_mint_transaction(self._id("bme-mint"), mint, account=wallet)
        if self.bal(wallet, "AKT") < tokens:
            self.fail_unchanged(InsufficientFundsError, lambda: self.ledger.post(tx))
            return
        assert self.ledger.post(tx)
        self.bme = state
        self.credit_minted += credit
        self.tokens_burned += tokens

    def credit_holders(self) -> list[Account]:
        kinds = (AccountKind.TENANT, AccountKind.PROVIDER)
        return [a for (a, c) in self.ledger.balances() if c == "ACT" and a.kind in kinds]

    @precondition(lambda self: self.credit_holders())
    @rule(
        data=st.data(),
        share=st.sampled_from([Fraction(1), Fraction(1, 2), Fraction(1, 1000)]),
    )
    def bme_redeem(self, data: st.DataObject, share: Fraction) -> None:
        account = data.draw(st.sampled_from(self.credit_holders()))
        credit = math.floor(self.bal(account, "ACT") * share)
        price = self.akt_price
        tokens = math.floor(credit / price.price)
        try:
            state, red = self.bme.redeem_credit(credit, price)
        except InvalidTokenomicsError:
            assert tokens == 0
            return
        assert red.tokens == tokens
        assert red.reminted == min(tokens, self.bme.vault)
        assert red.reminted + red.new_issuance == tokens
        assert self.ledger.post(
            bme_redeem_transaction(self._id("bme-redeem"), red, account=account)
        )
        self.bme = state
        self.credit_redeemed += credit
        self.reminted += red.reminted

    # ---- epochs
    @rule(
        hours=st.lists(st.integers(0, 20), min_size=len(PROVIDERS), max_size=len(PROVIDERS)),
        power=st.lists(
            st.sampled_from([1, 2, Fraction(3, 2)]),
            min_size=len(PROVIDERS),
            max_size=len(PROVIDERS),
        ),
    )
    def epoch_rewards(self, hours: list[int], power: list[int | Fraction]) -> None:
        k = self.epoch
        emission = self.schedule.emission(k)
        assert emission == self.schedule.cumulative(k + 1) - self.schedule.cumulative(k)
        weights = work_weights(
            {p: Fraction(h, 2) for p, h in zip(PROVIDERS, hours, strict=True)},
            dict(zip(PROVIDERS, power, strict=True)),
        )
        mint = mint_transaction(f"emission:{k}", POOL, REWARD, emission, time=k)
        total = self.bal(POOL, REWARD) + emission
        if total and not any(weights.values()):
            with pytest.raises(InvalidTokenomicsError):
                split_rewards(total, weights)
            assert self.ledger.post(mint)  # the emission waits in the pool
        else:
            shares = split_rewards(total, weights)
            assert sum(shares.values()) == total
            for p, q in quotas(total, weights).items():
                assert abs(shares[p] - q) < 1
            wallets = {p: self.bal(Account(AccountKind.PROVIDER, p), REWARD) for p in PROVIDERS}
            pay = reward_transaction(f"rewards:{k}", shares, currency=REWARD, time=k)
            assert self.ledger.post_many([mint, pay]) == 2
            for p in PROVIDERS:
                assert self.bal(Account(AccountKind.PROVIDER, p), REWARD) == wallets[p] + shares[p]
            self.rewarded += total
        self.emitted += emission
        self.epoch += 1

    # ---- retries and refused transactions
    @precondition(lambda self: len(self.ledger) > 0)
    @rule(i=st.integers(0, 10**6), tamper=st.booleans())
    def retry(self, i: int, tamper: bool) -> None:
        tx = self.ledger.journal[i % len(self.ledger)]
        copy = Transaction.from_record(tx.to_record())
        before = self.snapshot()
        assert not self.ledger.post(tx)
        assert not self.ledger.post(copy)
        assert self.ledger.post_many([copy, tx]) == 0
        assert self.snapshot() == before
        if tamper:  # the same id with other content is refused whole
            other = attrs.evolve(copy, memo=copy.memo + " (edited)")
            self.fail_unchanged(DuplicateTransactionError, lambda: self.ledger.post(other))

    @rule(
        data=st.data(),
        currency=st.sampled_from(CURRENCIES),
        excess=st.integers(1, 10_000),
        batch=st.booleans(),
    )
    def overdraft(self, data: st.DataObject, currency: str, excess: int, batch: bool) -> None:
        candidates = sorted(
            {a for a, _ in self.ledger.balances() if a.kind not in self.ledger.allow_negative}
            - {BURNED}  # nothing may leave BURNED: such a transaction cannot even be built
            | {Account(AccountKind.TENANT, t) for t in TENANTS}
            | {TREASURY, FEES, POOL}
        )
        source = data.draw(st.sampled_from(candidates))
        amount = self.bal(source, currency) + excess
        bad = transfer(self._id("overdraft"), source, BURNED, currency, amount)
        if batch:  # a good transaction first: the batch is refused whole
            bystander = Account(AccountKind.TENANT, "bystander")
            good = transfer(self._id("good"), ISSUANCE, bystander, currency, 1)
            e = self.fail_unchanged(
                InsufficientFundsError, lambda: self.ledger.post_many([good, bad])
            )
            assert good.id not in self.ledger
        else:
            e = self.fail_unchanged(InsufficientFundsError, lambda: self.ledger.post(bad))
        assert isinstance(e, InsufficientFundsError)
        assert (e.account, e.currency, e.amount, e.tx_id) == (source, currency, amount, bad.id)

    # ---- invariants
    @invariant()
    def conservation(self) -> None:
        balances = self.ledger.balances()
        totals: dict[str, int] = {}
        for (_, currency), amount in balances.items():
            totals[currency] = totals.get(currency, 0) + amount
        assert all(v == 0 for v in totals.values()), totals
        assert _journal_flows(self.ledger)[0] == balances

    @invariant()
    def no_forbidden_negative(self) -> None:
        allow = self.ledger.allow_negative
        assert allow == {AccountKind.ISSUANCE}
        for (account, currency), amount in self.ledger.balances().items():
            assert amount >= 0 or account.kind in allow, (account, currency, amount)

    @invariant()
    def replay_equals_live(self) -> None:
        live = self.ledger
        copies = (
            Ledger.replay(live.journal, allow_negative=live.allow_negative),
            Ledger.from_json(live.to_json()),
        )
        for other in copies:
            assert other == live
            assert other.balances() == live.balances()
            for c in CURRENCIES:
                assert (other.supply(c), other.minted(c), other.burned(c), other.redeemed(c)) == (
                    live.supply(c),
                    live.minted(c),
                    live.burned(c),
                    live.redeemed(c),
                )
        replayed = copies[0]
        for b in self.books:
            leases = list(b)
            restored = LeaseBook.restore(
                replayed, leases, fees=b.fees, margin_account=b.margin_account
            )
            for lease in leases:
                assert restored.state(lease.id) == b.state(lease.id)
                assert restored.refunded(lease.id) == b.refunded(lease.id)

    @invariant()
    def supply_identity(self) -> None:
        led = self.ledger
        balances, flows = _journal_flows(led)
        for c in CURRENCIES:
            supply, minted, burned, redeemed = (
                led.supply(c),
                led.minted(c),
                led.burned(c),
                led.redeemed(c),
            )
            assert [minted, burned, redeemed] == flows.get(c, [0, 0, 0])
            outside = (AccountKind.ISSUANCE, AccountKind.BURNED)
            assert supply == sum(
                v for (a, cur), v in balances.items() if cur == c and a.kind not in outside
            )
            assert supply == minted - redeemed - burned
            s0, m0, b0, r0 = self.prev.get(c, (0, 0, 0, 0))
            assert supply == s0 + (minted - m0) - (burned - b0) - (redeemed - r0)
            self.prev[c] = (supply, minted, burned, redeemed)

    @invariant()
    def leases_match_the_model(self) -> None:
        for lid, shadow in self.shadows.items():
            b = self.books[shadow.book]
            state = b.state(lid)
            assert state == shadow.state(), (state, shadow.state())
            paid = shadow.tenant_cost(shadow.n)
            assert shadow.escrow + paid + shadow.close_refund == shadow.deposited
            lease = shadow.lease
            assert lease.periods is None or state.charged <= lease.periods
            if state.status is not LeaseStatus.OPEN:
                assert state.escrow == 0
                assert b.periods_covered(lid) == 0
            assert b.refunded(lid) == shadow.refunded
            assert shadow.refunded <= set(range(lease.start, lease.start + state.charged))
        assert sum(len(b) for b in self.books) == len(self.shadows)

    @invariant()
    def tokenomics_match_the_model(self) -> None:
        assert self.bme.outstanding == self.credit_minted - self.credit_redeemed
        assert self.bme.vault == self.tokens_burned - self.reminted
        assert self.ledger.minted("ACT") == self.credit_minted  # ACT is minted only by BME
        assert self.emitted == self.schedule.cumulative(self.epoch)
        assert self.bal(POOL, REWARD) == self.emitted - self.rewarded
        if isinstance(self.schedule, CappedSupply):
            assert self.emitted <= self.schedule.budget

    def check_all(self) -> None:
        """Every invariant, as the machine checks them after each step."""
        self.conservation()
        self.no_forbidden_negative()
        self.replay_equals_live()
        self.supply_identity()
        self.leases_match_the_model()
        self.tokenomics_match_the_model()


SettlementMachine.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TestSettlement = SettlementMachine.TestCase


# -- the invariants can fail ------------------------------------------------------------------
def busy_machine() -> SettlementMachine:
    """A machine after a few steps of every kind, all invariants holding."""
    m = SettlementMachine()
    m.choose_schedule(FixedEmission(100))
    m.fund("t0", "AKT", 500_000)
    m.fund("t1", "USDC", 500_000)
    m.fund("p0", "AKT", 40_000)
    m.fund_stake("p0", "AKT", 9_000)
    a = m._open(0, "t0", "p0", "AKT", (HOUR, HOUR), 1_000, Fraction(3, 4), 0, 5, "cost")
    b = m._open(1, "t1", "p1", "USDC", (BLOCK, HOUR), 3_000, Fraction(1), 2, None, 9_000)
    m.accrue_all(0, 2)
    m.accrue_all(1, 30)
    m.penalty(a, Outcome.SLA_BREACH, None, POLICIES[0], None, False)
    m.terminate(b, 40)
    bid = m.lock_bid("p0", "AKT", 1_000)
    m.resolve_bid(bid, "forfeited", BURNED)
    m.bme_mint("t0", 10_000)
    m.cash_out("p0", "AKT", Fraction(1, 3))
    m.epoch_rewards([1, 2, 0], [1, 2, 1])
    m.check_all()
    return m


def _corrupt_balance(m: SettlementMachine, monkeypatch: pytest.MonkeyPatch) -> None:
    real = Ledger.balances
    target = m.ledger

    def balances(self: Ledger) -> dict[tuple[Account, str], int]:
        out = real(self)
        if self is target:  # one unit appears from nowhere on the live ledger only
            key = (Account(AccountKind.TENANT, "t0"), "AKT")
            out[key] = out.get(key, 0) + 1
        return out

    monkeypatch.setattr(Ledger, "balances", balances)


def _corrupt_supply(m: SettlementMachine, monkeypatch: pytest.MonkeyPatch) -> None:
    real = Ledger.supply
    monkeypatch.setattr(Ledger, "supply", lambda self, c: real(self, c) + (c == "AKT"))


def _corrupt_negative(m: SettlementMachine, monkeypatch: pytest.MonkeyPatch) -> None:
    # Lets the treasury go negative, then posts a transaction that overdraws it.
    m.ledger._allow_keys = m.ledger._allow_keys | {"treasury"}
    m.ledger.post(transfer("overdrawn", TREASURY, FEES, "AKT", 10**9))


def _corrupt_lease(m: SettlementMachine, monkeypatch: pytest.MonkeyPatch) -> None:
    m.books[0]._n[0] += 1  # the live book forgets what it charged


def _corrupt_journal(m: SettlementMachine, monkeypatch: pytest.MonkeyPatch) -> None:
    m.ledger._journal.pop()  # a transaction applied but no longer in the journal
    m.ledger._journal_cache = None


@pytest.mark.parametrize(
    "corrupt",
    [_corrupt_balance, _corrupt_supply, _corrupt_negative, _corrupt_lease, _corrupt_journal],
)
def test_invariants_catch_a_corrupted_state(
    corrupt: Callable[[SettlementMachine, pytest.MonkeyPatch], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    m = busy_machine()
    corrupt(m, monkeypatch)
    with pytest.raises(AssertionError):
        m.check_all()


def test_restore_sees_periods_that_charged_nothing() -> None:
    """Periods whose charge rounds to zero get an accrual transaction of zero amounts, so the
    journal records them and `restore` rebuilds the same state."""
    ledger = Ledger()
    ledger.post(transfer("fund", ISSUANCE, Account(AccountKind.TENANT, "t"), "X", 100))
    book = LeaseBook(ledger)
    lease = Lease(
        id="l", tenant="t", provider="p", currency="X", rate=1, period=SECOND, unit=HOUR, periods=5
    )  # 1 unit an hour, charged per second: 0 a period
    book.open(lease, deposit=10)
    tx = book.accrue("l", 10)  # 5 periods pass, charging nothing; the lease ends
    assert tx is not None
    assert [p.amount for p in tx.postings] == [0, 0]
    assert book.state("l").charged == 5
    restored = LeaseBook.restore(Ledger.replay(ledger.journal), [lease])
    assert restored.state("l") == book.state("l")


@pytest.mark.parametrize(
    "policy", [PenaltyPolicy(), PenaltyPolicy(slash_to=BURNED), PenaltyPolicy(slash_to="tenant")]
)
def test_a_refund_the_stake_cannot_cover_is_refused(policy: PenaltyPolicy) -> None:
    """Found by the machine: when the refund took more than the stake held, the slash came out
    negative, so the treasury (or the tenant) topped the stake up to pay the refund, or the
    penalty failed with "burning is final". Now it is refused whole, as documented."""
    ledger = Ledger()
    stake = Account(AccountKind.PROVIDER_STAKE, "node")
    ledger.post(transfer("fund", ISSUANCE, Account(AccountKind.TENANT, "lab"), "X", 1_000))
    ledger.post(transfer("stake", ISSUANCE, stake, "X", 2))
    ledger.post(transfer("treasury", ISSUANCE, TREASURY, "X", 500))
    book = LeaseBook(ledger)
    book.open(Lease(id="l", tenant="lab", provider="node", currency="X", rate=100), deposit=300)
    book.accrue("l", 2)
    ledger.post(transfer("cash-out", Account(AccountKind.PROVIDER, "node"), ISSUANCE, "X", 300))
    before = (ledger.balances(), len(ledger))
    event = Event(id="e", provider="node", time=1.0, outcome="audit_failed", tenant="lab")
    with pytest.raises(InsufficientFundsError) as e:  # the refund is 300, the stake holds 2
        sla_penalty(book, event, "l", periods=(0, 2), policy=policy)
    assert (e.value.account, e.value.balance, e.value.amount) == (stake, 2, 300)
    assert (ledger.balances(), len(ledger)) == before
    assert book.refunded("l") == frozenset()
