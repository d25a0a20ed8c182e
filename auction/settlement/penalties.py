"""SLA penalties and bid deposits: what a provider's failures cost it.

**Penalties.** `sla_penalty` turns a negative reputation event (an SLA breach, a failed job, a
failed audit) into money, Aethir-style: the tenant gets back what it paid for the affected
periods (the protocol's fee waived), and a share of the provider's stake is slashed.

**Bid deposits.** `lock_bid_deposit` holds a provider's deposit on a bid; it resolves once,
either returned (`return_bid_deposit`, a losing or completed bid) or forfeited
(`forfeit_bid_deposit`).

This module sits above `auction.settlement.leases` (a penalty refunds lease periods), which
sits above `auction.settlement.rates`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fractions import Fraction
from typing import Any

import attrs

from auction.reputation.events import Event, Outcome
from auction.settlement.leases import LeaseBook, Refund
from auction.settlement.ledger import (
    Account,
    AccountKind,
    InvalidSettlementError,
    Ledger,
    Posting,
    SettlementError,
    Transaction,
    TxKind,
    TxMeta,
    currency_code,
    transfer,
)
from auction.settlement.rates import _account, as_rate, fee_of

__all__ = [
    "DepositResolvedError",
    "PenaltyPolicy",
    "forfeit_bid_deposit",
    "lock_bid_deposit",
    "return_bid_deposit",
    "sla_penalty",
]

TREASURY = Account(AccountKind.TREASURY)


# -- SLA penalties ------------------------------------------------------------------------------
def _share(value: Any) -> Fraction:
    return as_rate(value, "slash")


def _slash_table(value: Any) -> tuple[tuple[Outcome, Fraction], ...]:
    if not isinstance(value, Mapping):
        raise InvalidSettlementError("slash", value, "must be a mapping of outcome to share")
    out = {}
    for k, v in value.items():
        try:
            o = Outcome(k)
        except ValueError:
            raise InvalidSettlementError("slash", k, "is not an Outcome") from None
        if o.positive:
            raise InvalidSettlementError("slash", k, "a positive outcome is never penalized")
        out[o] = _share(v)
    return tuple(sorted(out.items(), key=lambda kv: kv[0].code))


def _outcomes(value: Any) -> frozenset[Outcome]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise InvalidSettlementError("refund", value, "must be a set of outcomes")
    try:
        return frozenset(Outcome(v) for v in value)
    except ValueError:
        raise InvalidSettlementError("refund", value, "holds something not an Outcome") from None


def _slash_to(value: Any) -> Account | str:
    if value == "tenant":
        return "tenant"
    if not isinstance(value, Account):
        raise InvalidSettlementError("slash_to", value, "must be an Account or 'tenant'")
    return value


@attrs.frozen
class PenaltyPolicy:
    """What a negative event costs a provider (defaults after Aethir).

    Attributes:
        refund: outcomes whose affected periods are refunded to the tenant.
        slash: share of the stake base slashed per outcome. Aethir: downtime (an SLA breach)
            slashes 1/3 of the required stake K x coefficient, malice (a failed audit) all of
            it; a plain failed job slashes nothing.
        slash_to: where slashed stake goes: an `Account` (`TREASURY` by default, or
            ``Account(AccountKind.BURNED)``) or ``"tenant"`` (the lease's tenant).
        waive_fees: True (Aethir): the protocol gives back its fee and margin on refunded
            periods, so the tenant gets back all it paid; False: the provider refunds the
            tenant's whole payment and the protocol keeps its fee.
    """

    refund: frozenset[Outcome] = attrs.field(
        default=frozenset({Outcome.SLA_BREACH, Outcome.FAILED, Outcome.AUDIT_FAILED}),
        converter=_outcomes,
    )
    slash: tuple[tuple[Outcome, Fraction], ...] = attrs.field(
        default={Outcome.SLA_BREACH: Fraction(1, 3), Outcome.AUDIT_FAILED: Fraction(1)},
        converter=_slash_table,
    )
    slash_to: Account | str = attrs.field(default=TREASURY, converter=_slash_to)
    waive_fees: bool = True

    def share(self, outcome: Outcome) -> Fraction:
        """Share of the stake base slashed for `outcome` (0 if not listed)."""
        return dict(self.slash).get(outcome, Fraction(0))


def sla_penalty(
    book: LeaseBook,
    event: Event,
    lease_id: str,
    *,
    periods: tuple[int, int] | None = None,
    policy: PenaltyPolicy | None = None,
    stake: int | None = None,
    stake_currency: str | None = None,
) -> Transaction | None:
    """Refund the periods an event affected and slash the provider's stake, in one
    transaction ``penalty:{event.id}``.

    Args:
        book: the lease book (and its ledger).
        event: the reputation event; its provider must be the lease's provider. Positive
            outcomes cost nothing (returns None).
        lease_id: the lease it concerns.
        periods: the affected periods ``(first, last)``, inclusive, on the lease's period
            clock; None: the period containing ``event.time`` (seconds).
        policy: what each outcome costs (`PenaltyPolicy()`, Aethir-like, by default).
        stake: the stake base the slash share is taken of (Aethir: the required stake
            K x coefficient); None: the provider's current `PROVIDER_STAKE` balance. The slash
            is ``floor(share x stake)`` (the provider keeps the remainder), at most what the
            stake holds after the refund.
        stake_currency: currency of the stake (default: the lease's).

    Rules: only periods already charged and not refunded before are refunded (accrue first);
    the provider's part comes out of its `PROVIDER` wallet and, when that falls short, out of
    its stake; with ``waive_fees`` the protocol's fee and margin on those periods come back
    from the fee and margin accounts.

    Returns:
        The penalty transaction (posted now, or posted before for this event id: a retry is a
        no-op), or None when the event costs nothing.

    Raises:
        InvalidSettlementError: the event is about another provider, or bad arguments.
        InsufficientFundsError: the provider's wallet and stake cannot cover the refund (or
            the fee accounts their part); nothing is applied.
    """
    policy = PenaltyPolicy() if policy is None else policy
    if not isinstance(event, Event):
        raise InvalidSettlementError("event", event, "must be an Event")
    lease = book.lease(lease_id)
    if event.provider != lease.provider:
        raise InvalidSettlementError(
            "event", event.id, f"is about provider {event.provider!r}, "
            f"but lease {lease_id!r} is served by {lease.provider!r}"
        )
    tx_id = f"penalty:{event.id}"
    ledger = book.ledger
    prior = ledger.get(tx_id)
    if prior is not None:
        return prior
    if event.outcome.positive:
        return None
    if periods is None:
        p = lease.period.index_at(event.time)
        periods = (p, p)
    refund = (book.refund_amounts(lease_id, periods[0], periods[1])
              if event.outcome in policy.refund else None)
    cur = lease.currency
    scur = cur if stake_currency is None else currency_code(stake_currency, "stake_currency")
    tenant = Account(AccountKind.TENANT, lease.tenant)
    wallet = Account(AccountKind.PROVIDER, lease.provider)
    stake_acct = Account(AccountKind.PROVIDER_STAKE, lease.provider)
    postings: list[Posting] = []
    stake_used = 0
    if refund is not None and refund.tenant:
        provider_part = refund.provider_net
        if not policy.waive_fees:
            provider_part = refund.tenant
        from_wallet = min(provider_part, max(ledger.balance(wallet, cur), 0))
        stake_used = provider_part - from_wallet
        if stake_used and scur != cur:  # the stake cannot cover a refund in another currency
            from_wallet, stake_used = provider_part, 0
        postings += [Posting(tenant, cur, refund.tenant), Posting(wallet, cur, -from_wallet)]
        if stake_used:
            postings.append(Posting(stake_acct, cur, -stake_used))
        if policy.waive_fees:
            postings += [Posting(book.fees.account, cur, -refund.fees),
                         Posting(book.margin_account, cur, -refund.margin)]
    share = policy.share(event.outcome)
    if share:
        if stake is not None and (isinstance(stake, bool) or not isinstance(stake, int)
                                  or stake < 0):
            raise InvalidSettlementError("stake", stake, "must be an int >= 0")
        # what the stake holds after the refund; below zero (the refund overdraws the stake,
        # and the ledger refuses it) nothing is left to slash: never a negative slash
        held = max(ledger.balance(stake_acct, scur) - stake_used, 0)
        base = held if stake is None else stake
        amount = min(fee_of(base, share), held)
        if amount:
            target = tenant if policy.slash_to == "tenant" else policy.slash_to
            assert isinstance(target, Account)
            postings += [Posting(stake_acct, scur, -amount), Posting(target, scur, amount)]
    postings = [p for p in postings if p.amount]
    if not postings:
        return None
    tx = Transaction(tx_id, tuple(postings), time=max(0, int(event.time)),
                     memo=f"{event.outcome.value}; refunded {_runs(refund)}; lease {lease_id}",
                     meta=TxMeta(kind=TxKind.PENALTY, lease=lease_id, periods=_run_pairs(refund)))
    book.post_refund(lease_id, tx, refund)
    return tx


def _run_pairs(refund: Refund | None) -> tuple[tuple[int, int], ...]:
    """Refunded periods as runs ``((2, 2), (4, 6))``, for the penalty's metadata."""
    runs: list[list[int]] = []
    for p in () if refund is None else refund.periods:
        if runs and runs[-1][1] == p - 1:
            runs[-1][1] = p
        else:
            runs.append([p, p])
    return tuple((a, b) for a, b in runs)


def _runs(refund: Refund | None) -> str:
    """Refunded periods as runs, ``"2-2,4-6"`` (``"-"``: none), for the penalty's memo."""
    return ",".join(f"{a}-{b}" for a, b in _run_pairs(refund)) or "-"


# -- bid deposits -------------------------------------------------------------------------------
class DepositResolvedError(SettlementError, ValueError):
    """A bid deposit was already resolved the other way (returned vs forfeited)."""

    def __init__(self, bid_id: str, resolution: str) -> None:
        self.bid_id = bid_id
        self.resolution = resolution
        super().__init__(f"the deposit on bid {bid_id!r} was already {resolution}")


def _hold(bid_id: str) -> Account:
    return Account(AccountKind.PROVIDER_STAKE, f"bid:{bid_id}")


def lock_bid_deposit(
    ledger: Ledger, bid_id: str, provider: str, currency: str, amount: int, *, time: int = 0
) -> Transaction:
    """Hold `amount` of the provider's wallet as a deposit on a bid (Akash: at least 0.5
    token per bid), in the hold account ``PROVIDER_STAKE:bid:{bid_id}``.

    Transaction id ``bid-deposit:{bid_id}``; locking again with the same values is a no-op.
    """
    tx = transfer(f"bid-deposit:{bid_id}", Account(AccountKind.PROVIDER, provider),
                  _hold(bid_id), currency, amount, time=time, memo="lock",
                  meta=TxMeta(kind=TxKind.BID_LOCK, bid=bid_id))
    ledger.post(tx)
    return tx


def _resolve(ledger: Ledger, bid_id: str, how: str, to: Account | None, time: int) -> Transaction:
    lock = ledger.get(f"bid-deposit:{bid_id}")
    if lock is None:
        raise InvalidSettlementError("bid_id", bid_id, "has no locked deposit")
    rid = f"bid-deposit:{bid_id}:resolve"
    prior = ledger.get(rid)
    if prior is not None:
        if prior.meta.status != how:
            raise DepositResolvedError(bid_id, prior.meta.status)
        return prior
    source = lock.postings[0]
    target = source.account if to is None else to
    tx = transfer(rid, _hold(bid_id), target, source.currency, -source.amount, time=time,
                  memo=how, meta=TxMeta(kind=TxKind.BID_RESOLVE, bid=bid_id, status=how))
    ledger.post(tx)
    return tx


def return_bid_deposit(ledger: Ledger, bid_id: str, *, time: int = 0) -> Transaction:
    """Give a bid's deposit back to the provider (the bid lost, or the lease ended well).

    A deposit resolves once: returning it again is a no-op (the first transaction is
    returned); returning a forfeited deposit raises `DepositResolvedError`.
    """
    return _resolve(ledger, bid_id, "returned", None, time)


def forfeit_bid_deposit(
    ledger: Ledger, bid_id: str, *, to: Account = TREASURY, time: int = 0
) -> Transaction:
    """Forfeit a bid's deposit to `to` (the treasury by default; the tenant, or
    ``Account(AccountKind.BURNED)``, are other choices). Resolves once, as
    `return_bid_deposit`."""
    return _resolve(ledger, bid_id, "forfeited", _account(to), time)

