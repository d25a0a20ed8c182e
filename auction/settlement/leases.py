"""Leases: a tenant pays a provider per period out of an escrow, as on Akash.

A `Lease` comes from one row of a `ClearingResult` (`leases_from_result`): the tenant pays the
row's exact ``tenant_payment`` per hour, the provider gets its exact ``provider_payment`` per
hour, and the difference (the margin a double auction keeps) goes to the protocol. A
`LeaseBook` opens leases on a `Ledger`, takes deposits into one escrow account per lease
(``TENANT_ESCROW:{lease id}``), and accrues: each period the lease's cost moves from the escrow
to the provider, minus fees (`FeeSchedule`), which go to the protocol.

**Exact accrual.** A period is a rational number of seconds (`Period`: a block of 6.1 s, a
second, an hour, a day), so a per-hour price is not a whole number of units per period. No
per-period rounding is ever carried forward: with ``h = period / unit`` (the period in hours,
for rates per hour), after ``n`` periods a lease has charged exactly

* provider gross ``G(n) = floor(provider_rate x n x h)``,
* margin ``M(n) = floor((rate - provider_rate) x n x h)``,
* take-rate fee ``Fp(n) = fee(G(n))`` and tenant-side fee ``Ft(n) = fee(G(n) + M(n))``,
* so the escrow has paid ``T(n) = G(n) + M(n) + Ft(n)``, the provider has received
  ``G(n) - Fp(n)`` and the protocol ``M(n) + Fp(n) + Ft(n)``,

and period ``k`` charges the difference between ``n = k + 1`` and ``n = k``. Every one of these
is non-decreasing in ``n``, so no period ever charges a negative amount. Who gets remainders:
the provider's gross and the margin are rounded down separately, so the tenant pays at most
``floor(rate x n x h)`` (at most one unit less: **the tenant keeps the remainder**); fees
follow the schedule's rounding (down by default: **whoever pays a fee keeps the remainder**).

**When the escrow runs out** (Akash's rule, in whole periods): an accrual pays the whole
periods the escrow covers, then marks the lease `OVERDRAWN` and closes it; the provider stops
serving at the first unpaid period, the amount that would have been due through the requested
period is recorded as ``unpaid``, and what is left in the escrow (less than one period's cost)
goes back to the tenant. A deposit that covers 3.5 periods pays 3 and refunds the half.

**Idempotent.** Accrual is a catch-up: ``accrue(lease, p)`` charges every period up to and
including ``p`` not charged yet, so processing the same period twice charges nothing the second
time. Transaction ids are deterministic (``accrue:{lease}:{last period}``,
``close:{lease}``, ``deposit:{lease}:{ref}``), so a retried posting is a no-op in the ledger.
"""

from __future__ import annotations

import contextlib
import enum
import gc
import math
import numbers
from collections.abc import Callable, Iterable, Iterator, Mapping
from decimal import Decimal
from fractions import Fraction
from typing import Any, Literal

import attrs
import numpy as np
import numpy.typing as npt

from auction import errors
from auction.errors import DuplicateIdError
from auction.orders import Request
from auction.result import ClearingResult
from auction.settlement.ledger import (
    MAX_AMOUNT,
    Account,
    AccountKind,
    InvalidSettlementError,
    InvalidTransactionError,
    Ledger,
    Posting,
    SettlementError,
    Transaction,
    TxKind,
    TxMeta,
    _net,
    currency_code,
    transfer,
)
from auction.settlement.rates import FeeRates, FeeSchedule, Rounding, fee_of

__all__ = [
    "BLOCK",
    "DAY",
    "HOUR",
    "MAX_PERIOD",
    "SECOND",
    "AccrualReport",
    "Charges",
    "DuplicateLeaseError",
    "Lease",
    "LeaseBook",
    "LeaseClosedError",
    "LeaseState",
    "LeaseStatus",
    "Period",
    "Refund",
    "UnknownLeaseError",
    "cumulative_charges",
    "leases_from_result",
    "period_charges",
]

IntArray = npt.NDArray[np.int64]
_I64 = 2**63 - 1
#: Largest period index, lease start or length: period arithmetic stays inside int64.
MAX_PERIOD = 2**62
# Row bounds are estimated in float64 and compared with 2**62: a factor 2 of headroom over
# float rounding, so a row that passes cannot overflow int64.
_SAFE = float(2**62)


# -- errors -------------------------------------------------------------------------------------
class UnknownLeaseError(SettlementError, errors.UnknownLeaseError):
    """No lease with this id is in the book (an `auction.UnknownLeaseError`, as the live
    market's, and a `KeyError`)."""

    def __str__(self) -> str:
        return f"no lease with id {self.lease_id!r} in the book"


class DuplicateLeaseError(SettlementError, DuplicateIdError):
    """A lease id is already in the book with other terms (or twice in what `restore` is
    given); a `DuplicateIdError` of kind ``"lease"``."""

    def __init__(self, lease_id: str) -> None:
        self.lease_id = lease_id
        DuplicateIdError.__init__(
            self, "lease", lease_id, f"lease id {lease_id!r} is already in the book with other "
            "terms")


class LeaseClosedError(SettlementError, ValueError):
    """The lease is closed (or overdrawn); it takes no more deposits."""

    def __init__(self, lease_id: str, status: LeaseStatus) -> None:
        self.lease_id = lease_id
        self.status = status
        super().__init__(f"lease {lease_id!r} is {status.value}")


# -- periods ------------------------------------------------------------------------------------
def _seconds(value: Any) -> Fraction:
    if isinstance(value, bool | float):
        raise InvalidSettlementError("seconds", value, "pass an int, Fraction, Decimal or "
                                     "decimal string, not " + type(value).__name__)
    try:
        out = Fraction(value) if isinstance(value, numbers.Rational | Decimal | str) else None
    except (ValueError, ZeroDivisionError):
        out = None
    if out is None or out <= 0 or out > 10**12:
        raise InvalidSettlementError("seconds", value, "must be a number of seconds in (0, 1e12]")
    return out


@attrs.frozen
class Period:
    """How long one accrual period lasts: an exact, rational number of seconds.

    ``Period(3600, "hour")``, ``Period("6.1", "block")``. Period ``k`` of the book's clock
    covers seconds ``[k x seconds, (k + 1) x seconds)``.
    """

    seconds: Fraction = attrs.field(converter=_seconds)
    name: str = ""

    @property
    def hours(self) -> Fraction:
        """The period's length in hours."""
        return self.seconds / 3600

    def index_at(self, time: float | int | Fraction) -> int:
        """The period containing `time` (seconds). A float is read as its shortest decimal
        (``6.1`` as 61/10), so that ``BLOCK.index_at(6.1) == 1``."""
        value: Any = time
        if isinstance(value, bool):
            raise InvalidSettlementError("time", value, "must be a number, not a bool")
        if isinstance(value, float) and math.isfinite(value):
            t = Fraction(repr(value))
        elif isinstance(value, numbers.Rational):
            t = Fraction(value)
        else:
            raise InvalidSettlementError("time", value, "must be a finite number of seconds")
        if t < 0:
            raise InvalidSettlementError("time", time, "must be >= 0")
        return int(t // self.seconds)

    def periods_in(self, hours: int) -> int:
        """Whole periods needed to cover `hours` (rounded up)."""
        return -(-Fraction(hours) // self.hours)


SECOND = Period(1, "second")
HOUR = Period(3600, "hour")
DAY = Period(86400, "day")
#: An Akash block, about 6.1 s (about 429,909 blocks a month).
BLOCK = Period("6.1", "block")


# -- leases -------------------------------------------------------------------------------------
def _name(value: Any, field: str, lease_id: str | None, empty: bool = False) -> str:
    where = f" in lease {lease_id!r}" if lease_id else ""
    if not isinstance(value, str):
        raise InvalidSettlementError(field, value, f"must be a str{where}")
    if (not value and not empty) or value != value.strip() or "\0" in value:
        raise InvalidSettlementError(
            field, value, f"must be non-empty, without surrounding spaces or NUL{where}"
        )
    return str(value)


def _int(value: Any, field: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidSettlementError(field, value, "must be an int")
    out = int(value)
    if not lo <= out <= hi:
        raise InvalidSettlementError(field, value, f"must be in [{lo}, {hi}]")
    return out


def _period(value: Any) -> Period:
    if not isinstance(value, Period):
        raise InvalidSettlementError("period", value, "must be a Period")
    return value


@attrs.frozen(kw_only=True)
class Lease:
    """The terms of one lease: who pays whom, how much per hour, per which period.

    Attributes:
        id: unique lease id.
        tenant, provider: the parties.
        currency: the currency it is paid in.
        rate: what the tenant pays per `unit` of time (per hour by default) for the whole
            lease (all its GPUs), exact smallest units: a result row's ``tenant_payment``.
        provider_rate: what the provider gets per `unit` before fees (a row's
            ``provider_payment``); None means `rate`. At most `rate`: the difference is the
            platform's margin.
        period: the accrual period (`HOUR` by default).
        unit: the time the rates are quoted per: `HOUR` (result rows are per GPU-hour), or
            for instance `BLOCK` for a price per block as Akash quotes it.
        start: the first period it is charged for, on the book's period clock (period
            indices are ints in [0, `MAX_PERIOD`]).
        periods: how many periods it lasts (None: until terminated or overdrawn).
        request_id, offer_id, gpus: where it came from (informational).
    """

    id: str
    tenant: str
    provider: str
    currency: str
    rate: int
    provider_rate: int | None = None
    period: Period = attrs.field(default=HOUR, converter=_period)
    unit: Period = attrs.field(default=HOUR, converter=_period)
    start: int = 0
    periods: int | None = None
    request_id: str = ""
    offer_id: str = ""
    gpus: int = 0

    def __attrs_post_init__(self) -> None:
        lid = _name(self.id, "id", None)
        s = object.__setattr__
        s(self, "id", lid)
        s(self, "tenant", _name(self.tenant, "tenant", lid))
        s(self, "provider", _name(self.provider, "provider", lid))
        s(self, "currency", currency_code(self.currency))
        s(self, "rate", _int(self.rate, "rate", 0, MAX_AMOUNT))
        pr = self.rate if self.provider_rate is None else self.provider_rate
        s(self, "provider_rate", _int(pr, "provider_rate", 0, self.rate))
        s(self, "start", _int(self.start, "start", 0, MAX_PERIOD))
        if self.periods is not None:
            s(self, "periods", _int(self.periods, "periods", 1, MAX_PERIOD))
        s(self, "request_id", _name(self.request_id, "request_id", lid, empty=True))
        s(self, "offer_id", _name(self.offer_id, "offer_id", lid, empty=True))
        s(self, "gpus", _int(self.gpus, "gpus", 0, _I64))

    @property
    def margin_rate(self) -> int:
        """What the platform keeps per hour: ``rate - provider_rate``."""
        assert self.provider_rate is not None
        return self.rate - self.provider_rate

    @property
    def ratio(self) -> Fraction:
        """Units of rate per period: ``period.seconds / unit.seconds`` (an hour's price times
        this is one period's)."""
        return self.period.seconds / self.unit.seconds

    @property
    def end(self) -> int | None:
        """The first period after the lease (None: open-ended)."""
        return None if self.periods is None else self.start + self.periods


@attrs.frozen
class Charges:
    """Amounts a lease charged over some periods, exact.

    Attributes:
        tenant: taken from the escrow (gross + margin + tenant fee).
        provider_gross: the provider's payment before the take rate.
        provider_fee: the take rate on it.
        tenant_fee: the tenant-side fee.
        margin: the platform's margin.
    """

    tenant: int = 0
    provider_gross: int = 0
    provider_fee: int = 0
    tenant_fee: int = 0
    margin: int = 0

    @property
    def provider_net(self) -> int:
        """What the provider receives."""
        return self.provider_gross - self.provider_fee

    @property
    def fees(self) -> int:
        """Both fees."""
        return self.provider_fee + self.tenant_fee

    def __sub__(self, other: Charges) -> Charges:
        return Charges(*(a - b for a, b in zip(attrs.astuple(self), attrs.astuple(other),
                                                 strict=True)))

    def __add__(self, other: Charges) -> Charges:
        return Charges(*(a + b for a, b in zip(attrs.astuple(self), attrs.astuple(other),
                                                 strict=True)))


def _charges(lease: Lease, fees: FeeRates, rounding: Rounding, n: int) -> Charges:
    """Cumulative charges of the first `n` periods (the formulas of the module docstring)."""
    h = lease.ratio
    assert lease.provider_rate is not None
    gross = lease.provider_rate * n * h.numerator // h.denominator
    margin = lease.margin_rate * n * h.numerator // h.denominator
    pfee = fee_of(gross, fees.provider, rounding)
    tfee = fee_of(gross + margin, fees.tenant, rounding)
    return Charges(gross + margin + tfee, gross, pfee, tfee, margin)


class LeaseStatus(enum.StrEnum):
    """Where a lease stands."""

    #: Accruing.
    OPEN = "open"
    #: Ended: terminated, or its last period paid. The escrow's rest went back to the tenant.
    CLOSED = "closed"
    #: Closed because the escrow could not pay a whole period (Akash's insufficient funds).
    OVERDRAWN = "overdrawn"


_STATUS = tuple(LeaseStatus)
_OPEN = 0


def _close_meta(lease_id: str, status: LeaseStatus, unpaid: int) -> TxMeta:
    return TxMeta(kind=TxKind.CLOSE, lease=lease_id, status=status.value, unpaid=unpaid)


@attrs.frozen
class LeaseState:
    """A lease's state at one moment.

    Attributes:
        id: the lease.
        status: open, closed or overdrawn.
        charged: whole periods charged so far.
        paid_through: the last period charged (None: none yet).
        closed_at: the first period not charged once closed (None while open).
        unpaid: for an overdrawn lease, what was due through the requested period and
            could not be paid.
        escrow: the escrow balance now.
    """

    id: str
    status: LeaseStatus
    charged: int
    paid_through: int | None
    closed_at: int | None
    unpaid: int
    escrow: int


@attrs.frozen
class Refund:
    """What refunding some charged periods gives back (see `LeaseBook.refund_amounts`).

    Attributes:
        periods: the periods refunded (charged, not refunded before).
        tenant, provider_net, fees, margin: what the tenant gets back, and the parts that come
            from the provider, the fee account and the margin account.
    """

    periods: tuple[int, ...]
    tenant: int
    provider_net: int
    fees: int
    margin: int


@attrs.frozen
class AccrualReport:
    """What one `LeaseBook.accrue_all` call did.

    Attributes:
        accrued: leases that accrued at least one period (an accrual transaction each, of
            zero amounts when the periods charged nothing).
        transactions: transactions posted.
        tenant_paid, provider_received, protocol_received: totals per currency.
        overdrawn: leases closed overdrawn.
        completed: leases that paid their last period and closed.
    """

    accrued: int
    transactions: int
    tenant_paid: Mapping[str, int]
    provider_received: Mapping[str, int]
    protocol_received: Mapping[str, int]
    overdrawn: tuple[str, ...]
    completed: tuple[str, ...]


# -- vectorized exact arithmetic ----------------------------------------------------------------
def _int_array(values: npt.ArrayLike, field: str) -> npt.NDArray[Any]:
    a = np.asarray(values)
    if a.dtype.kind in "iu":
        return a
    if a.dtype == object and all(
        issubclass(t, numbers.Integral) and not issubclass(t, bool)
        for t in set(map(type, a.ravel().tolist()))
    ):
        return a
    raise InvalidSettlementError(field, values, "must be integers")


def _max_abs(a: npt.NDArray[Any]) -> int:
    return max(abs(int(a.max())), abs(int(a.min()))) if a.size else 0


def _exact_rows(
    fn: Callable[[list[int], list[int]], list[int]], r: npt.NDArray[Any], k: npt.NDArray[Any],
    num: int,
    fast: Callable[[npt.NDArray[np.int64], npt.NDArray[np.int64]], npt.NDArray[np.int64]],
) -> npt.NDArray[Any]:
    """`fast` (int64) on the elements whose ``|r x k x num|`` is safely below 2**62 (estimated
    in float64, with a margin far above its rounding error), `fn` on lists of Python ints for
    the rest. int64 out when every result fits, else an object array."""
    safe = np.zeros(r.shape, dtype=bool)
    if r.dtype.kind in "iu" and k.dtype.kind in "iu":
        with np.errstate(over="ignore"):
            est = np.abs(r.astype(np.float64)) * np.abs(k.astype(np.float64)) * float(num)
        safe = est < _SAFE
    vals = fn([int(a) for a in r[~safe].tolist()], [int(b) for b in k[~safe].tolist()])
    fits = all(-_I64 - 1 <= v <= _I64 for v in vals)
    out = np.empty(r.shape, dtype=np.int64 if fits else object)
    if safe.any():
        q = fast(r[safe].astype(np.int64), k[safe].astype(np.int64))
        out[safe] = q if fits else q.tolist()
    out[~safe] = vals
    return out


def cumulative_charges(
    rates: npt.ArrayLike, n: npt.ArrayLike, *, period: Period = HOUR
) -> npt.NDArray[Any]:
    """``floor(rates x n x period.hours)``: what each lease charged after `n` periods.

    Vectorized and exact: int64 arithmetic when no product can overflow (one bound check on
    the maxima), else per element: int64 where safe and Python ints past it (an object array
    is returned when a result itself exceeds int64).
    """
    h = _period(period).hours
    num, den = h.numerator, h.denominator
    r, k = np.broadcast_arrays(_int_array(rates, "rates"), _int_array(n, "n"))

    def fast(a: npt.NDArray[np.int64], b: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        out: npt.NDArray[np.int64] = (a * b * num) // den
        return out

    if r.dtype.kind in "iu" and k.dtype.kind in "iu" and (
        _max_abs(r) * _max_abs(k) * num <= _I64
    ):
        return fast(r.astype(np.int64), k.astype(np.int64))

    def exact(rs: list[int], ks: list[int]) -> list[int]:
        return [a * b * num // den for a, b in zip(rs, ks, strict=True)]

    return _exact_rows(exact, r, k, num, fast)


def period_charges(
    rates: npt.ArrayLike, index: npt.ArrayLike, *, period: Period = HOUR
) -> npt.NDArray[Any]:
    """The charge of period `index` (0-based) of each lease: the difference of
    `cumulative_charges` at ``index + 1`` and ``index``, so that any run of periods adds up to
    the exact cumulative amount.

    Vectorized and exact on int64. When ``rate x (index + 1) x period`` could overflow (an
    18-decimal token), the rate is split as ``rate = q x den + r`` (``period.hours = num /
    den``): the charge is ``q x num + floor(r x num x (index + 1) / den) - floor(r x num x
    index / den)``, whose terms stay small, so it still runs on int64. Python ints are used
    only past that (a charge that itself nears the int64 limit; an object array is returned
    when one exceeds it).
    """
    h = _period(period).hours
    num, den = h.numerator, h.denominator
    r, i = np.broadcast_arrays(_int_array(rates, "rates"), _int_array(index, "index"))

    def fast(a: npt.NDArray[np.int64], b: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        step = a * num
        hi = step * (b + 1)
        out: npt.NDArray[np.int64] = hi // den - (hi - step) // den
        return out

    def exact(rs: list[int], i1: list[int]) -> list[int]:  # i1: the index plus one
        return [a * b * num // den - a * (b - 1) * num // den for a, b in zip(rs, i1, strict=True)]

    if r.dtype.kind in "iu" and i.dtype.kind in "iu" and (
        _max_abs(r) * (_max_abs(i) + 1) * num <= _I64
    ):
        return fast(r.astype(np.int64), i.astype(np.int64))
    if r.dtype.kind in "iu" and i.dtype.kind in "iu" and r.size and (
        den * num * (_max_abs(i) + 1) <= _I64 and (_max_abs(r) // den + 1) * num <= _I64
    ):
        q, rem = np.divmod(r.astype(np.int64), den)
        j = i.astype(np.int64)
        step = rem * num
        hi = step * (j + 1)
        split: npt.NDArray[np.int64] = q * num + (hi // den - (hi - step) // den)
        return split
    return _exact_rows(exact, r, i + 1, num, lambda a, b: fast(a, b - 1))


# -- the book -----------------------------------------------------------------------------------
@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a bulk call allocates many objects that form
    no cycles (reference counting still frees them): its full passes over a large journal
    would otherwise cost more than the work. Restores the collector's previous state."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _trusted_posting(account: Account, currency: str, amount: int) -> Posting:
    p = object.__new__(Posting)
    object.__setattr__(p, "account", account)
    object.__setattr__(p, "currency", currency)
    object.__setattr__(p, "amount", amount)
    return p


_COLUMNS = ("prate", "mrate", "hnum", "hden", "start", "cap", "pfn", "pfd", "tfn", "tfd")


class LeaseBook:
    """Leases on a ledger: deposits, accrual, termination, overdrawn closes.

    Args:
        ledger: the ledger money moves on.
        fees: the fee schedule; each lease keeps the rates of its currency from the moment
            it opens (so its cumulative fees stay exact). No fees by default.
        margin_account: where the platform margin (``rate - provider_rate``) goes:
            `PROTOCOL_FEES` by default (``Account(AccountKind.TREASURY)`` is the other usual
            choice).

    Lease transactions carry the period index as their ``time``. The book's own state
    (periods charged, status) changes only after the ledger accepted the transactions, so a
    failed call changes nothing.
    """

    def __init__(
        self,
        ledger: Ledger,
        *,
        fees: FeeSchedule | None = None,
        margin_account: Account = Account(AccountKind.PROTOCOL_FEES),  # noqa: B008
    ) -> None:
        if not isinstance(ledger, Ledger):
            raise InvalidSettlementError("ledger", ledger, "must be a Ledger")
        if fees is not None and not isinstance(fees, FeeSchedule):
            raise InvalidSettlementError("fees", fees, "must be a FeeSchedule")
        if not isinstance(margin_account, Account):
            raise InvalidSettlementError("margin_account", margin_account, "must be an Account")
        self.ledger = ledger
        self.fees = FeeSchedule() if fees is None else fees
        self.margin_account = margin_account
        # accrual postings can skip netting when no two of their accounts can be the same
        self._merge_fees = self.fees.account == margin_account
        self._distinct = all(a.kind not in (AccountKind.PROVIDER, AccountKind.TENANT_ESCROW)
                             for a in (self.fees.account, margin_account))
        self._leases: list[Lease] = []
        self._rates: list[FeeRates] = []
        self._index: dict[str, int] = {}
        self._accounts: list[tuple[Account, Account, Account]] = []  # escrow, tenant, provider
        self._cols: dict[str, list[int]] = {c: [] for c in _COLUMNS}
        self._bound: list[float] = []
        self._arrays: dict[str, npt.NDArray[Any]] | None = None
        self._n = np.zeros(0, dtype=np.int64)
        self._status = np.zeros(0, dtype=np.int8)
        self._size = 0
        self._closed_at: dict[int, int] = {}
        self._unpaid: dict[int, int] = {}
        self._deposits: dict[int, int] = {}
        self._refunded: dict[int, set[int]] = {}

    # ---- registry
    def open(self, lease: Lease, *, deposit: int = 0, time: int = 0) -> bool:
        """Add `lease`, with an optional first deposit from the tenant's wallet (transaction
        ``deposit:{id}:open``).

        Returns:
            True if added; False if the same lease was already open (a retry).

        Raises:
            DuplicateLeaseError: the id is taken by a lease with other terms.
            InsufficientFundsError: the tenant cannot pay the deposit (the lease is not
                added).
        """
        return self.open_many([lease], [deposit], time=time) == 1

    def open_many(
        self, leases: Iterable[Lease], deposits: Iterable[int] | None = None, *, time: int = 0
    ) -> int:
        """`open` several leases with their first deposits, all or nothing.

        Returns:
            how many were added (leases already open with the same terms are skipped).
        """
        items = list(leases)
        deps = [0] * len(items) if deposits is None else list(deposits)
        if len(deps) != len(items):
            raise InvalidSettlementError("deposits", len(deps),
                                         f"must hold one deposit per lease ({len(items)})")
        with _gc_paused():
            new: list[tuple[Lease, Account, Account, bool]] = []
            batch: dict[str, Lease] = {}
            txs = []
            for lease, dep in zip(items, deps, strict=True):
                if not isinstance(lease, Lease):
                    raise InvalidSettlementError("lease", lease, "must be a Lease")
                i = self._index.get(lease.id)
                prior = self._leases[i] if i is not None else batch.get(lease.id)
                if prior is not None:
                    if prior != lease:
                        raise DuplicateLeaseError(lease.id)
                    continue
                batch[lease.id] = lease
                escrow = Account(AccountKind.TENANT_ESCROW, lease.id)
                tenant = Account(AccountKind.TENANT, lease.tenant)
                if dep:
                    txs.append(transfer(f"deposit:{lease.id}:open", tenant, escrow,
                                        lease.currency, dep, time=time, memo="deposit",
                                        meta=TxMeta(kind=TxKind.DEPOSIT, lease=lease.id)))
                new.append((lease, escrow, tenant, bool(dep)))
            self.ledger.post_many(txs)  # raises before anything changes
            for lease, escrow, tenant, deposited in new:
                self._add(lease, escrow, tenant)
                if deposited:
                    self._deposits[self._size - 1] = 1
        return len(new)

    @classmethod
    def restore(
        cls,
        ledger: Ledger,
        leases: Iterable[Lease],
        *,
        fees: FeeSchedule | None = None,
        margin_account: Account = Account(AccountKind.PROTOCOL_FEES),  # noqa: B008
    ) -> LeaseBook:
        """A book rebuilt from `ledger`'s journal and the leases it opened: the same state as
        the live book (periods charged, status, closes, unpaid amounts, refunded periods).

        `fees` and `margin_account` must be those the live book used. The journal holds the
        rest, and the book is a fold over its entries' typed metadata (`TxMeta`, never the
        memo): accruals (the periods charged), deposits, closes (the status, any unpaid
        amount; the transaction's time is the closing period) and penalties (the refunded
        periods), each naming its lease.
        """
        book = cls(ledger, fees=fees, margin_account=margin_account)
        if not isinstance(leases, Iterable):
            raise InvalidSettlementError("leases", leases, "must be a collection of Leases")
        for lease in leases:
            if not isinstance(lease, Lease):
                raise InvalidSettlementError("lease", lease, "must be a Lease")
            if lease.id in book._index:
                raise DuplicateLeaseError(lease.id)
            book._add(lease, Account(AccountKind.TENANT_ESCROW, lease.id),
                      Account(AccountKind.TENANT, lease.tenant))
        index = book._index
        for tx in ledger.journal:
            meta = tx.meta
            if meta.lease and (i := index.get(meta.lease)) is not None:
                book._fold(i, tx)
        return book

    def _fold(self, i: int, tx: Transaction) -> None:
        """Apply one journal entry's metadata to lease `i`'s state (`restore`'s step)."""
        meta = tx.meta
        kind = meta.kind
        if kind is TxKind.ACCRUAL and meta.periods:
            last = max(b for _, b in meta.periods)
            n = min(last - self._leases[i].start + 1, MAX_PERIOD)
            self._n[i] = max(int(self._n[i]), n)
        elif kind is TxKind.DEPOSIT:
            self._deposits[i] = self._deposits.get(i, 0) + 1
        elif kind is TxKind.CLOSE:
            try:
                status = LeaseStatus(meta.status)
            except ValueError:
                raise InvalidTransactionError(
                    "meta", meta.status, "a close's status must be a LeaseStatus", tx_id=tx.id
                ) from None
            self._status[i] = _STATUS.index(status)
            self._closed_at[i] = tx.time
            if meta.unpaid:
                self._unpaid[i] = meta.unpaid
        elif kind is TxKind.PENALTY and meta.periods:
            done = self._refunded.setdefault(i, set())
            for a, b in meta.periods:
                done.update(range(a, b + 1))

    def _add(self, lease: Lease, escrow: Account, tenant: Account) -> None:
        rates = self.fees.of(lease.currency)
        h = lease.ratio
        assert lease.provider_rate is not None
        row = {
            "prate": lease.provider_rate, "mrate": lease.margin_rate,
            "hnum": h.numerator, "hden": h.denominator, "start": lease.start,
            "cap": -1 if lease.periods is None else lease.periods,
            "pfn": rates.provider.numerator, "pfd": rates.provider.denominator,
            "tfn": rates.tenant.numerator, "tfd": rates.tenant.denominator,
        }
        fit = all(abs(v) <= _I64 for v in row.values())
        bound = float(lease.rate) * float(h.numerator) * float(
            max(1, rates.provider.numerator, rates.tenant.numerator))
        if not fit:  # placeholders: the row never takes the int64 path
            row.update(dict.fromkeys(("prate", "mrate", "hnum", "hden", "pfn", "pfd", "tfn",
                                      "tfd"), 1))
            bound = float("inf")
        i = len(self._leases)
        self._leases.append(lease)
        self._rates.append(rates)
        self._index[lease.id] = i
        self._accounts.append((escrow, tenant, Account(AccountKind.PROVIDER, lease.provider)))
        for c in _COLUMNS:
            self._cols[c].append(row[c])
        self._bound.append(bound)
        self._arrays = None
        if i >= len(self._n):
            cap = max(16, 2 * len(self._n))
            self._n = np.concatenate([self._n, np.zeros(cap - len(self._n), dtype=np.int64)])
            self._status = np.concatenate(
                [self._status, np.zeros(cap - len(self._status), dtype=np.int8)])
        self._size = i + 1

    def _cols_array(self) -> dict[str, npt.NDArray[Any]]:
        if self._arrays is None:
            arrs: dict[str, npt.NDArray[Any]] = {
                c: np.array(v, dtype=np.int64) for c, v in self._cols.items()
            }
            arrs["bound"] = np.array(self._bound, dtype=np.float64)
            self._arrays = arrs
        return self._arrays

    def _i(self, lease_id: str) -> int:
        i = self._index.get(lease_id) if isinstance(lease_id, str) else None
        if i is None:
            raise UnknownLeaseError(lease_id)
        return i

    def lease(self, lease_id: str) -> Lease:
        """The lease with this id."""
        return self._leases[self._i(lease_id)]

    def __contains__(self, lease_id: object) -> bool:
        return lease_id in self._index

    def __len__(self) -> int:
        return len(self._leases)

    def __iter__(self) -> Iterator[Lease]:
        return iter(list(self._leases))

    def status(self, lease_id: str) -> LeaseStatus:
        """Open, closed or overdrawn."""
        return _STATUS[int(self._status[self._i(lease_id)])]

    def state(self, lease_id: str) -> LeaseState:
        """The lease's state now (see `LeaseState`)."""
        i = self._i(lease_id)
        lease = self._leases[i]
        n = int(self._n[i])
        return LeaseState(
            id=lease.id,
            status=_STATUS[int(self._status[i])],
            charged=n,
            paid_through=lease.start + n - 1 if n else None,
            closed_at=self._closed_at.get(i),
            unpaid=self._unpaid.get(i, 0),
            escrow=self.ledger.balance(self._accounts[i][0], lease.currency),
        )

    def escrow(self, lease_id: str) -> int:
        """The lease's escrow balance."""
        i = self._i(lease_id)
        return self.ledger.balance(self._accounts[i][0], self._leases[i].currency)

    def fee_rates(self, lease_id: str) -> FeeRates:
        """The fee rates the lease was opened with."""
        return self._rates[self._i(lease_id)]

    # ---- amounts
    def charges(self, lease_id: str, n: int) -> Charges:
        """Cumulative charges of the lease's first `n` periods, exact (whatever was paid)."""
        i = self._i(lease_id)
        n = _int(n, "n", 0, MAX_PERIOD)
        return _charges(self._leases[i], self._rates[i], self.fees.rounding, n)

    def cost(self, lease: Lease | str, periods: int | None = None) -> int:
        """What the tenant pays (escrow drawn) for the first `periods` periods of `lease` (a
        lease or the id of one in the book), under this book's fees; None: the whole lease
        (its `periods`). A Nosana-style deposit: price x timeout, before the lease opens."""
        if isinstance(lease, str):
            i = self._i(lease)
            lease, rates = self._leases[i], self._rates[i]
        elif isinstance(lease, Lease):
            rates = self.fees.of(lease.currency)
        else:
            raise InvalidSettlementError("lease", lease, "must be a Lease or a lease id")
        if periods is None:
            if lease.periods is None:
                raise InvalidSettlementError(
                    "periods", None, f"lease {lease.id!r} is open-ended: give periods")
            periods = lease.periods
        periods = _int(periods, "periods", 0, MAX_PERIOD)
        return _charges(lease, rates, self.fees.rounding, periods).tenant

    def periods_covered(self, lease_id: str) -> int:
        """How many more whole periods the escrow pays for (for top-up warnings); for a lease
        with an end, at most the periods left; 0 once closed."""
        i = self._i(lease_id)
        if self._status[i] != _OPEN:
            return 0
        lease, n = self._leases[i], int(self._n[i])
        return self._covered(i, n, self.escrow(lease_id), lease.periods) - n

    def _covered(self, i: int, n: int, escrow: int, cap: int | None) -> int:
        """Largest m >= n with T(m) - T(n) <= escrow (m <= cap when the lease has an end)."""
        lease, rates, rnd = self._leases[i], self._rates[i], self.fees.rounding
        base = _charges(lease, rates, rnd, n).tenant
        lo, hi = n, n + 1
        while (cap is None or hi <= cap) and (
            _charges(lease, rates, rnd, hi).tenant - base <= escrow
        ):
            lo, hi = hi, n + 2 * (hi - n)
            if hi - n > MAX_PERIOD:  # a free lease: every period costs nothing
                return lo if cap is None else cap
        if cap is not None:
            hi = min(hi, cap + 1)
        while hi - lo > 1:  # T(lo) fits, T(hi) does not (or hi is past the cap)
            mid = (lo + hi) // 2
            if _charges(lease, rates, rnd, mid).tenant - base <= escrow:
                lo = mid
            else:
                hi = mid
        return lo

    # ---- money in
    def deposit(
        self, lease_id: str, amount: int, *, ref: str | None = None, time: int = 0
    ) -> Transaction:
        """Move `amount` from the tenant's wallet into the lease's escrow.

        Transaction id ``deposit:{lease}:{ref}``; `ref` defaults to the number of deposits
        made so far. Pass a `ref` of your own (without ``:``) to make a retry a no-op.

        Raises:
            LeaseClosedError: the lease is closed or overdrawn.
            InsufficientFundsError: the tenant's wallet is short.
        """
        i = self._i(lease_id)
        if self._status[i] != _OPEN:
            raise LeaseClosedError(lease_id, _STATUS[int(self._status[i])])
        k = self._deposits.get(i, 0)
        ref = str(k) if ref is None else _name(ref, "ref", lease_id)
        if ":" in ref:
            raise InvalidSettlementError("ref", ref, "must not contain ':'")
        escrow, tenant, _ = self._accounts[i]
        tx = transfer(f"deposit:{lease_id}:{ref}", tenant, escrow, self._leases[i].currency,
                      amount, time=time, memo="deposit",
                      meta=TxMeta(kind=TxKind.DEPOSIT, lease=lease_id))
        if self.ledger.post(tx):
            self._deposits[i] = k + 1
        return tx

    def top_up(
        self, lease_id: str, amount: int, *, ref: str | None = None, time: int = 0
    ) -> Transaction:
        """Add to an open lease's escrow (the same as `deposit`; Akash's deposit top-up)."""
        return self.deposit(lease_id, amount, ref=ref, time=time)

    # ---- accrual
    def _plan(
        self, i: int, target: int, *, close_at: int | None = None
    ) -> tuple[list[Transaction], tuple[int, int, int | None, int]]:
        """Transactions charging lease `i` through its `target`-th period (and closing it if
        it ends, runs dry, or is terminated at `close_at`), and the state they lead to:
        (charged periods, status code, closed_at, unpaid). Reads the ledger, changes nothing.
        """
        lease, rates, rnd = self._leases[i], self._rates[i], self.fees.rounding
        escrow_acct, tenant, provider = self._accounts[i]
        cur = lease.currency
        n = int(self._n[i])
        escrow = self.ledger.balance(escrow_acct, cur)
        c0 = _charges(lease, rates, rnd, n)
        c1 = _charges(lease, rates, rnd, target)
        status, unpaid = LeaseStatus.OPEN, 0
        if c1.tenant - c0.tenant <= escrow:
            m, cm = target, c1
            if close_at is not None or (lease.periods is not None and m >= lease.periods):
                status = LeaseStatus.CLOSED
        else:
            m = self._covered(i, n, escrow, target)
            cm = _charges(lease, rates, rnd, m)
            status, unpaid = LeaseStatus.OVERDRAWN, c1.tenant - cm.tenant
        txs = []
        d = cm - c0
        if m > n:  # posted even when it charges nothing: the journal records every period
            txs.append(self._accrual_tx(lease, escrow_acct, provider, d, n, m))
        closed_at = None
        if status is not LeaseStatus.OPEN:
            closed_at = lease.start + m if close_at is None or status is LeaseStatus.OVERDRAWN \
                else close_at
            memo = f"overdrawn: unpaid {unpaid}" if unpaid else status.value
            txs.append(transfer(f"close:{lease.id}", escrow_acct, tenant, cur,
                                escrow - d.tenant, time=closed_at, memo=memo,
                                meta=_close_meta(lease.id, status, unpaid)))
        return txs, (m, _STATUS.index(status), closed_at, unpaid)

    def _accrual_tx(
        self, lease: Lease, escrow: Account, provider: Account, d: Charges, n: int, m: int
    ) -> Transaction:
        return self._accrual(lease, escrow, provider, d.tenant, d.provider_net, d.fees,
                             d.margin, n, m)

    def _accrual(
        self, lease: Lease, escrow: Account, provider: Account, tenant: int, net: int,
        fees: int, margin: int, n: int, m: int,
    ) -> Transaction:
        """The accrual transaction of periods n..m-1 (relative), built without re-validating
        what the book already checked (the hot path of `accrue_all`)."""
        cur = lease.currency
        fee_acct = self.fees.account
        items: tuple[tuple[Account, int], ...]
        if self._merge_fees:
            items = ((escrow, -tenant), (provider, net), (fee_acct, fees + margin))
        else:
            items = ((escrow, -tenant), (provider, net), (fee_acct, fees),
                     (self.margin_account, margin))
        postings = tuple([_trusted_posting(a, cur, v) for a, v in items if v]) or (
            # periods that charged nothing (a tiny rate): a transaction of zero amounts
            _trusted_posting(escrow, cur, 0), _trusted_posting(provider, cur, 0),
        )
        if self._distinct:
            deltas = tuple([((p.account._kind, p.account.owner, cur), p.amount, p.account)
                            for p in postings])
        else:
            deltas = _net(postings)
        first, last = lease.start + n, lease.start + m - 1
        return Transaction._trusted(
            f"accrue:{lease.id}:{last}", postings, last, f"periods {first}-{last}", deltas,
            TxMeta._trusted(TxKind.ACCRUAL, lease.id, ((first, last),)))

    def _commit(self, plans: list[tuple[int, tuple[int, int, int | None, int]]],
                txs: list[Transaction]) -> None:
        self.ledger.post_many(txs)  # raises before anything changes
        for i, (m, status, closed_at, unpaid) in plans:
            self._n[i] = m
            self._status[i] = status
            if closed_at is not None:
                self._closed_at[i] = closed_at
            if unpaid:
                self._unpaid[i] = unpaid

    def _target(self, i: int, period: int) -> int:
        lease = self._leases[i]
        t = max(0, period - lease.start + 1)
        return t if lease.periods is None else min(t, lease.periods)

    def accrue(self, lease_id: str, period: int) -> Transaction | None:
        """Charge every period of the lease up to and including `period` not charged yet.

        Pays whole periods from the escrow to the provider (less fees, to the protocol). If
        the escrow cannot pay them all, pays those it covers and closes the lease overdrawn,
        refunding the rest of the escrow to the tenant. A lease that paid its last period
        closes, refunding what is left.

        Returns:
            The accrual transaction, or None when there was nothing to accrue (the period
            was already processed, or the lease is closed). Periods whose charge rounds to
            zero (a tiny rate) still get a transaction, of zero amounts, so that the journal
            records every period charged and `restore` rebuilds the same state.
        """
        i = self._i(lease_id)
        period = _int(period, "period", 0, MAX_PERIOD)
        if self._status[i] != _OPEN:
            return None
        target = self._target(i, period)
        if target <= self._n[i]:
            return None
        txs, state = self._plan(i, target)
        self._commit([(i, state)], txs)
        return next((t for t in txs if t.meta.kind is TxKind.ACCRUAL), None)

    def accrue_all(self, period: int, *, provider: str | None = None) -> AccrualReport:
        """`accrue` every open lease (or every open lease of `provider`) through `period`,
        all or nothing.

        The amounts are computed for all leases at once on int64 columns (each row checked
        against overflow first; rows that could overflow, and leases the escrow cannot pay,
        take the exact scalar path), then posted as one batch. The result is the same as
        calling `accrue` on each lease.
        """
        with _gc_paused():
            return self._accrue_all(period, provider)

    def _accrue_all(self, period: int, provider: str | None) -> AccrualReport:
        period = _int(period, "period", 0, MAX_PERIOD)
        size = self._size
        cols = self._cols_array()
        status = self._status[:size]
        mask = status == _OPEN
        if provider is not None:
            mask &= np.array([a[2].owner == provider for a in self._accounts], dtype=bool)
        idx = np.flatnonzero(mask)
        start, cap = cols["start"][idx], cols["cap"][idx]
        with np.errstate(over="ignore"):
            target = np.maximum(period - start + 1, 0)  # start <= period + 1 < 2**63
        target = np.where(cap >= 0, np.minimum(target, cap), target)
        n0 = self._n[idx]
        act = target > n0
        idx, target, n0 = idx[act], target[act], n0[act]
        bound = cols["bound"][idx]
        fast = bound * target.astype(np.float64) < _SAFE
        f_idx, f_t, f_n = idx[fast], target[fast], n0[fast]
        up = self.fees.rounding is Rounding.UP
        c0 = self._vector_charges(cols, f_idx, f_n, up)
        c1 = self._vector_charges(cols, f_idx, f_t, up)
        d = [b - a for a, b in zip(c0, c1, strict=True)]  # tenant, net, fees, margin
        leases, accts, bal = self._leases, self._accounts, self.ledger.balance
        txs: list[Transaction] = []
        plans: list[tuple[int, tuple[int, int, int | None, int]]] = []
        slow = idx[~fast].tolist()
        cap_f = cap[act][fast]
        paid: dict[str, list[int]] = {}  # currency: [tenant, provider, protocol]
        accrued = 0
        for i, m, nn, dt, dn, df, dm, cp in zip(
            f_idx.tolist(), f_t.tolist(), f_n.tolist(), *(x.tolist() for x in d),
            cap_f.tolist(), strict=True,
        ):
            lease = leases[i]
            escrow_acct, tenant, prov = accts[i]
            escrow = bal(escrow_acct, lease.currency)
            if dt > escrow:
                slow.append(i)
                continue
            txs.append(self._accrual(lease, escrow_acct, prov, dt, dn, df, dm, nn, m))
            tot = paid.get(lease.currency)
            if tot is None:
                tot = paid[lease.currency] = [0, 0, 0]
            tot[0] += dt
            tot[1] += dn
            tot[2] += df + dm
            accrued += 1
            if m == cp:
                closed_at = lease.start + m
                txs.append(transfer(f"close:{lease.id}", escrow_acct, tenant, lease.currency,
                                    escrow - dt, time=closed_at, memo="closed",
                                    meta=_close_meta(lease.id, LeaseStatus.CLOSED, 0)))
                plans.append((i, (m, 1, closed_at, 0)))
            else:
                plans.append((i, (m, _OPEN, None, 0)))
        slow_txs: list[Transaction] = []
        for i in slow:
            ptx, state = self._plan(i, self._target(i, period))
            slow_txs += ptx
            plans.append((i, state))
        txs += slow_txs
        self._commit(plans, txs)
        for tx in slow_txs:
            if tx.meta.kind is TxKind.ACCRUAL:
                accrued += 1
                tot = paid.setdefault(tx.postings[0].currency, [0, 0, 0])
                for p in tx.postings:
                    k = 0 if p.amount < 0 else 1 if p.account.kind is AccountKind.PROVIDER else 2
                    tot[k] += abs(p.amount)
        over = tuple(leases[i].id for i, st in plans if st[1] == 2)
        done = tuple(leases[i].id for i, st in plans if st[1] == 1)
        return AccrualReport(
            accrued, len(txs),
            {c: v[0] for c, v in sorted(paid.items()) if v[0]},
            {c: v[1] for c, v in sorted(paid.items()) if v[1]},
            {c: v[2] for c, v in sorted(paid.items()) if v[2]},
            over, done,
        )

    def _vector_charges(
        self, cols: dict[str, npt.NDArray[Any]], idx: IntArray, n: IntArray, up: bool
    ) -> tuple[IntArray, IntArray, IntArray, IntArray]:
        """Cumulative (tenant, provider net, fees, margin) after `n` periods, int64 (rows
        already checked against overflow)."""
        hn, hd = cols["hnum"][idx], cols["hden"][idx]
        gross = cols["prate"][idx] * n * hn // hd
        margin = cols["mrate"][idx] * n * hn // hd
        base = gross + margin
        if up:
            pfee = -((-gross * cols["pfn"][idx]) // cols["pfd"][idx])
            tfee = -((-base * cols["tfn"][idx]) // cols["tfd"][idx])
        else:
            pfee = gross * cols["pfn"][idx] // cols["pfd"][idx]
            tfee = base * cols["tfn"][idx] // cols["tfd"][idx]
        return base + tfee, gross - pfee, pfee + tfee, margin

    def withdraw(self, provider: str, period: int) -> int:
        """A provider's withdrawal, as Akash's: settle all its open leases through `period`.

        Returns:
            what the provider received (in all currencies together; see `accrue_all` for
            amounts per currency).
        """
        report = self.accrue_all(period, provider=_name(provider, "provider", None))
        return sum(report.provider_received.values())

    def terminate(self, lease_id: str, at_period: int) -> int:
        """End the lease at the start of `at_period`: charge the periods before it, then refund
        the unused escrow to the tenant (a Nosana job that finishes early is paid for the time
        it ran; the rest of its deposit comes back).

        If the escrow cannot pay the periods before `at_period`, the lease closes overdrawn
        instead (see `accrue`). Terminating a closed lease does nothing.

        Returns:
            the amount refunded to the tenant (0 if the lease was already closed).

        Raises:
            InvalidSettlementError: periods at or after `at_period` were already charged.
        """
        i = self._i(lease_id)
        at_period = _int(at_period, "at_period", 0, MAX_PERIOD)
        if self._status[i] != _OPEN:
            return 0
        lease = self._leases[i]
        n = int(self._n[i])
        if n and at_period < lease.start + n:
            raise InvalidSettlementError(
                "at_period", at_period,
                f"lease {lease_id!r} is already charged through period {lease.start + n - 1}",
            )
        target = self._target(i, at_period - 1) if at_period > lease.start else 0
        end = lease.end
        txs, state = self._plan(i, target, close_at=at_period if end is None
                                else min(at_period, end))
        self._commit([(i, state)], txs)
        return sum(t.postings[1].amount for t in txs if t.meta.kind is TxKind.CLOSE)

    # ---- refunds (for penalties)
    def refund_amounts(self, lease_id: str, first: int, last: int) -> Refund:
        """What refunding periods `first` to `last` (inclusive) gives back: only the periods
        charged and not refunded before count.

        Each run of consecutive periods is priced with the cumulative formulas, so refunds
        add up exactly to what those periods charged.
        """
        i = self._i(lease_id)
        first, last = _int(first, "first", 0, MAX_PERIOD), _int(last, "last", 0, MAX_PERIOD)
        lease = self._leases[i]
        lo = max(first, lease.start)
        hi = min(last, lease.start + int(self._n[i]) - 1)
        done = self._refunded.get(i, set())
        periods = tuple(p for p in range(lo, hi + 1) if p not in done)
        total = Charges()
        k = 0
        while k < len(periods):
            j = k
            while j + 1 < len(periods) and periods[j + 1] == periods[j] + 1:
                j += 1
            a, b = periods[k] - lease.start, periods[j] - lease.start + 1
            total = total + (self.charges(lease_id, b) - self.charges(lease_id, a))
            k = j + 1
        return Refund(periods, total.tenant, total.provider_net, total.fees, total.margin)

    def refunded(self, lease_id: str) -> frozenset[int]:
        """The periods of the lease refunded by penalties."""
        return frozenset(self._refunded.get(self._i(lease_id), ()))

    def post_refund(self, lease_id: str, tx: Transaction, refund: Refund | None) -> bool:
        """Post a penalty transaction and mark `refund`'s periods refunded (only once the
        ledger accepted it)."""
        i = self._i(lease_id)
        posted = self.ledger.post(tx)
        if posted and refund is not None and refund.periods:
            self._refunded.setdefault(i, set()).update(refund.periods)
        return posted


# -- from a clearing result ---------------------------------------------------------------------
def leases_from_result(
    result: ClearingResult,
    currency: str,
    *,
    period: Period = HOUR,
    start: int = 0,
    durations: Literal["result"] | Mapping[str, int] | None = "result",
    requests: Iterable[Request] | Mapping[str, int] | None = None,
    prefix: str = "",
) -> list[Lease]:
    """One `Lease` per allocation row of `result`.

    Each lease's `rate` is the row's exact ``tenant_payment`` and its `provider_rate` the
    row's exact ``provider_payment`` (per hour, for all the row's GPUs), never
    ``unit_price x gpus``, which rounds VCG bonuses away.

    Args:
        result: the clearing result.
        currency: what the leases are paid in (a result has prices, not a currency).
        period: the accrual period.
        start: the first period of every lease.
        durations: how long each lease lasts, in hours, rounded up to whole periods:
            ``"result"`` (the default): the request's ``duration_hours``, which the result
            carries per row; a mapping ``{request_id: hours}`` (requests not in it are
            open-ended); None: every lease is open-ended.
        requests: the older form of `durations`: the requests themselves (or
            ``{request_id: duration_hours}``); when given, it takes precedence.
        prefix: prepended to lease ids, which are ``{request_id}/{offer_id}``.

    Raises:
        InvalidSettlementError: ``durations="result"`` on a result that carries no
            durations, or a row that pays the provider more than the tenant pays.
    """
    if not isinstance(result, ClearingResult):
        raise InvalidSettlementError("result", result, "must be a ClearingResult")
    hours_of: Mapping[str, int] | list[int] | None
    if requests is not None:
        hours_of = requests if isinstance(requests, Mapping) else {
            r.id: r.duration_hours for r in requests}
    elif isinstance(durations, str):
        if durations != "result":
            raise InvalidSettlementError("durations", durations,
                                         "must be 'result', a mapping or None")
        column = getattr(result, "duration_hours", None)
        if column is None:
            raise InvalidSettlementError(
                "durations", durations,
                "the result carries no durations: pass a mapping or None")
        hours_of = [int(h) for h in column.tolist()]
    elif durations is None or isinstance(durations, Mapping):
        hours_of = durations
    else:
        raise InvalidSettlementError("durations", durations, "must be 'result', a mapping or None")
    period = _period(period)
    out = []
    seen: dict[str, int] = {}
    cols = zip(result.request_id.tolist(), result.offer_id.tolist(), result.tenant.tolist(),
               result.provider.tolist(), result.gpus.tolist(), result.tenant_payment.tolist(),
               result.provider_payment.tolist(), strict=True)
    for row, (rid, oid, tenant, provider, gpus, pay, ppay) in enumerate(cols):
        lid = f"{prefix}{rid}/{oid}"
        k = seen.get(lid, 0)
        seen[lid] = k + 1
        if k:
            lid = f"{lid}#{k}"
        hours = (None if hours_of is None else hours_of[row] if isinstance(hours_of, list)
                 else hours_of.get(rid))
        if int(ppay) > int(pay):
            raise InvalidSettlementError(
                "provider_payment", int(ppay),
                f"row {rid}/{oid} pays the provider more than the tenant pays ({int(pay)})",
            )
        out.append(Lease(
            id=lid, tenant=tenant, provider=provider, currency=currency, rate=int(pay),
            provider_rate=int(ppay), period=period, start=start,
            periods=None if hours is None else period.periods_in(hours),
            request_id=rid, offer_id=oid, gpus=int(gpus),
        ))
    return out
