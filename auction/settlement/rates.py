"""Fee rates: exact take rates per currency, and how fees are rounded.

A `FeeSchedule` holds take rates per currency (Akash: 2% on the native token, 20% on a
stablecoin), each an exact `Fraction`. A provider-side rate is deducted from what the provider
receives; a tenant-side rate (io.net's reservation fee) is added to what the tenant pays.
Rounding, stated once: fees are rounded down by default, so **the party that pays a fee keeps
the remainder**; ``rounding="up"`` gives it to the protocol. Leases apply fees to the
cumulative amount of each lease, so rounding never accumulates over periods.

This module sits below `auction.settlement.leases` (which charges these rates); penalties,
which refund lease periods, sit above it in `auction.settlement.penalties`.
"""

from __future__ import annotations

import enum
import numbers
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

import attrs

from auction.settlement.ledger import (
    Account,
    AccountKind,
    InvalidSettlementError,
    currency_code,
)

__all__ = [
    "FeeRates",
    "FeeSchedule",
    "Rounding",
    "as_rate",
    "bps",
    "fee_of",
]

PROTOCOL_FEES = Account(AccountKind.PROTOCOL_FEES)


# -- rates --------------------------------------------------------------------------------------
def bps(points: int) -> Fraction:
    """`points` basis points as an exact fraction: ``bps(25) == Fraction(1, 400)`` (0.25%)."""
    value: Any = points
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidSettlementError("bps", value, "must be an int number of basis points")
    return Fraction(int(value), 10_000)


def as_rate(value: Any, field: str = "rate") -> Fraction:
    """`value` as an exact rate in [0, 1].

    Accepts a `Fraction`, a `Decimal`, an int (0 or 1), or a string: a decimal (``"0.02"``),
    a percentage (``"2%"``) or basis points (``"25bps"``). Floats are refused: most decimal
    rates have no exact float.
    """
    if isinstance(value, bool | float):
        raise InvalidSettlementError(field, value, "pass a Fraction, Decimal or string, not "
                                     + type(value).__name__)
    out: Fraction
    if isinstance(value, Fraction | numbers.Integral):
        out = Fraction(value)
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise InvalidSettlementError(field, value, "must be finite")
        out = Fraction(value)
    elif isinstance(value, str):
        text = value.strip()
        scale = 1
        if text.endswith("%"):
            text, scale = text[:-1], 100
        elif text.endswith("bps"):
            text, scale = text[:-3], 10_000
        try:
            d = Decimal(text.strip())
        except InvalidOperation:
            raise InvalidSettlementError(field, value, "is not a decimal, % or bps rate") from None
        if not d.is_finite():
            raise InvalidSettlementError(field, value, "must be finite")
        out = Fraction(d) / scale
    else:
        raise InvalidSettlementError(field, value, "must be a Fraction, Decimal, int or string")
    if not 0 <= out <= 1:
        raise InvalidSettlementError(field, value, "must be in [0, 1]")
    return out


class Rounding(enum.StrEnum):
    """How a fee is rounded to whole units."""

    #: Round the fee down: whoever pays the fee keeps the remainder (the default).
    DOWN = "down"
    #: Round the fee up: the protocol gets the remainder.
    UP = "up"


def _rate_field(value: Any) -> Fraction:
    return as_rate(value)


@attrs.frozen
class FeeRates:
    """The fee rates of one currency.

    Attributes:
        provider: share of the provider's payment the protocol keeps (the take rate).
        tenant: share added on top of the tenant's payment (a reservation fee).
    """

    provider: Fraction = attrs.field(default=Fraction(0), converter=_rate_field)
    tenant: Fraction = attrs.field(default=Fraction(0), converter=_rate_field)


def _fee_rates(value: Any) -> FeeRates:
    return value if isinstance(value, FeeRates) else FeeRates(provider=value)


def _rates_table(value: Any) -> tuple[tuple[str, FeeRates], ...]:
    if isinstance(value, tuple):  # as stored (attrs.evolve passes it back)
        value = dict(value)
    if not isinstance(value, Mapping):
        raise InvalidSettlementError("rates", value, "must be a mapping of currency to rates")
    return tuple(sorted((currency_code(k), _fee_rates(v)) for k, v in value.items()))


def _rounding(value: Any) -> Rounding:
    try:
        return Rounding(value)
    except ValueError:
        raise InvalidSettlementError("rounding", value, "must be 'down' or 'up'") from None


def _account(value: Any) -> Account:
    if not isinstance(value, Account):
        raise InvalidSettlementError("account", value, "must be an Account")
    return value


def fee_of(amount: int, rate: Fraction, rounding: Rounding | str = Rounding.DOWN) -> int:
    """`amount` x `rate`, rounded down (the payer keeps the remainder) or up."""
    num = amount * rate.numerator
    if Rounding(rounding) is Rounding.DOWN:
        return num // rate.denominator
    return -(-num // rate.denominator)


@attrs.frozen
class FeeSchedule:
    """Fee rates per currency, the rounding rule, and where fees go.

    Args:
        rates: ``{currency: rates}`` where rates is a `FeeRates` or a single rate (then the
            provider-side take rate): ``FeeSchedule({"AKT": "2%", "USDC": "20%"})``.
        default: the rates of currencies not in `rates` (none by default).
        rounding: `Rounding.DOWN` (the payer keeps the remainder) or `Rounding.UP`.
        account: where fees are paid (`PROTOCOL_FEES` by default).
    """

    rates: tuple[tuple[str, FeeRates], ...] = attrs.field(factory=tuple, converter=_rates_table)
    default: FeeRates = attrs.field(factory=FeeRates, converter=_fee_rates)
    rounding: Rounding = attrs.field(default=Rounding.DOWN, converter=_rounding)
    account: Account = attrs.field(default=PROTOCOL_FEES, converter=_account)

    def __init__(
        self,
        rates: Mapping[str, FeeRates | Fraction | Decimal | str | int] | None = None,
        default: FeeRates | Fraction | Decimal | str | int | None = None,
        rounding: Rounding | str = Rounding.DOWN,
        account: Account = PROTOCOL_FEES,
    ) -> None:
        self.__attrs_init__(  # type: ignore[attr-defined]
            {} if rates is None else rates,
            FeeRates() if default is None else default,
            rounding,
            account,
        )

    def of(self, currency: str) -> FeeRates:
        """The rates that apply to `currency`."""
        for code, r in self.rates:
            if code == currency:
                return r
        return self.default

    def fee(self, amount: int, rate: Fraction) -> int:
        """`amount` x `rate`, rounded by this schedule's rule."""
        return fee_of(amount, rate, self.rounding)

    def provider_fee(self, amount: int, currency: str) -> int:
        """The take on a provider payment of `amount`: the provider receives amount - fee."""
        return self.fee(amount, self.of(currency).provider)

    def tenant_fee(self, amount: int, currency: str) -> int:
        """The fee on top of a tenant payment of `amount`: the tenant pays amount + fee."""
        return self.fee(amount, self.of(currency).tenant)

    # ---- published schedules (every rate a parameter)
    @classmethod
    def akash(
        cls, native: str = "AKT", stable: str = "USDC", *,
        native_rate: Fraction | str = "2%", stable_rate: Fraction | str = "20%",
    ) -> FeeSchedule:
        """Akash's take rate until 2026: 2% of payments in the native token, 20% in a
        stablecoin, deducted from the provider's payment."""
        return cls({native: native_rate, stable: stable_rate})

    @classmethod
    def io_net(
        cls, native: str = "IO", stable: str = "USDC", *,
        reservation: Fraction | str = "0.25%", stable_payment: Fraction | str = "2%",
    ) -> FeeSchedule:
        """io.net: a 0.25% reservation fee on each side (the tenant pays it on top, the
        provider has it deducted), plus a 2% payment fee on stablecoin payments (paid by the
        tenant) and none on the native token."""
        r = as_rate(reservation, "reservation")
        s = as_rate(stable_payment, "stable_payment")
        return cls({native: FeeRates(provider=r, tenant=r),
                    stable: FeeRates(provider=r, tenant=r + s)})

    @classmethod
    def render(cls, currency: str = "USDC", *, rate: Fraction | str = "5%") -> FeeSchedule:
        """Render: 5% of a job's price is kept as a fee (the rest is burned by burn-and-mint,
        which `auction.settlement.tokenomics` models)."""
        return cls({currency: rate})
