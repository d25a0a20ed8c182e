"""Tokenomics: oracle conversion, burn-and-mint, emission schedules, demand-driven issuance.

Amounts are ints in smallest units; prices and rates are `Fraction`s; every division says how
it rounds, and floats are refused. One rule picks the direction: **the protocol is never
short**. What a user pays the protocol rounds up; what the protocol pays out or mints rounds
down; fees are rounded down and the rest of a payment is burned, so fee + burn is exactly
what was paid.

* `render_burn`: the tokens a tenant pays for a USD-priced job round **up** (the burn is
  worth at least the job); the 5% fee rounds **down** (the burn, paid - fee, is never
  under-stated).
* `BmeState.mint_credit` and `BmeState.redeem_credit`: the credit or tokens minted round
  **down** (nothing is minted that the burn did not back); `tokens_for_credit`, the least
  burn that buys a credit, rounds **up**.
* Emission schedules: the cumulative target is the exact total rounded **down** (no drift,
  never more than the exact total).
* `DemandController`: the next issuance rounds **down**.

Ledger side: a mint moves an amount out of ``ISSUANCE`` (whose balance goes negative) and a
burn moves it into ``BURNED``, so ``supply = minted - burned`` and the supply identity
``S(t+1) = S(t) + minted(t) - burned(t)`` holds exactly, by construction. The functions that
build ledger transactions are `mint_transaction`, `burn_transaction`,
`render_burn_transaction`, `bme_mint_transaction` and `bme_redeem_transaction`.
"""

from __future__ import annotations

import abc
import enum
import numbers
from collections.abc import Iterable, Sequence
from decimal import Decimal
from fractions import Fraction
from typing import Any, Literal, TypeAlias

import attrs
import numpy as np
import numpy.typing as npt

from auction.errors import AuctionOverflowError
from auction.money import MAX_MONEY
from auction.settlement.ledger import (
    Account,
    AccountKind,
    Currency,
    InvalidSettlementError,
    Posting,
    SettlementError,
    Transaction,
    TxKind,
    TxMeta,
    currency_code,
    transfer,
)
from auction.settlement.rates import as_rate

__all__ = [
    "AKASH_MINT_SPREAD_BPS",
    "AKASH_REDEEM_SPREAD_BPS",
    "BME_HALT_RATIO",
    "BME_WARN_RATIO",
    "RENDER_FEE_RATE",
    "BmeParams",
    "BmeState",
    "BreakerStatus",
    "CappedSupply",
    "CreditMint",
    "CreditRedeem",
    "DecayingEmission",
    "DemandController",
    "EmissionSchedule",
    "Exact",
    "FixedEmission",
    "InvalidTokenomicsError",
    "MintingHaltedError",
    "OraclePrice",
    "RenderBurn",
    "RoundingMode",
    "YearlyEmission",
    "bme_mint_transaction",
    "bme_redeem_transaction",
    "burn_transaction",
    "convert",
    "mint_transaction",
    "render_burn",
    "render_burn_transaction",
    "round_rational",
    "tokens_for_credit",
]

IntArray: TypeAlias = npt.NDArray[np.int64]
ObjArray: TypeAlias = npt.NDArray[np.object_]

#: An exact number as input: an int, `Fraction`, `Decimal` or a decimal or fraction string
#: (``"0.05"``, ``"1/20"``). Floats are refused: most decimal rates have no exact float.
Exact: TypeAlias = int | Fraction | Decimal | str

#: How a division rounds: ``"down"`` (floor), ``"up"`` (ceiling) or ``"half-even"`` (to the
#: nearest unit, exact halves to the even one). Amounts are non-negative, so down is toward 0.
RoundingMode: TypeAlias = Literal["down", "up", "half-even"]
_ROUNDINGS = ("down", "up", "half-even")

#: Render: share of a job's payment kept as a fee; the rest of the tokens are burned.
RENDER_FEE_RATE = Fraction(5, 100)
#: Akash BME: spread, in basis points, taken when burning the token to mint credit.
AKASH_MINT_SPREAD_BPS = 25
#: Akash BME: spread, in basis points, taken when burning credit back into the token.
AKASH_REDEEM_SPREAD_BPS = 0
#: Akash BME: below this collateral ratio the breaker reports a warning.
BME_WARN_RATIO = Fraction(95, 100)
#: Akash BME: below this collateral ratio minting credit is halted.
BME_HALT_RATIO = Fraction(90, 100)

#: Most decimal places a currency's smallest unit may have (ERC-20 tokens use 18).
MAX_DECIMALS = 36
#: Largest epoch index the schedules accept: epoch indices live in int64 arrays.
MAX_EPOCH = 2**62
#: A decaying emission is computed exactly (big rationals) for this many years at most.
MAX_DECAY_YEARS = 1000


# -- errors -------------------------------------------------------------------------------------
class InvalidTokenomicsError(InvalidSettlementError):
    """A tokenomics or reward parameter failed validation.

    Attributes:
        field: the name of the offending field or argument.
        value: the offending value, as given.
        reason: what is wrong with it.
    """


class MintingHaltedError(SettlementError, RuntimeError):
    """The collateral-ratio breaker halts minting: the ratio is below the halt threshold.

    Burning credit back into the token stays allowed while minting is halted.

    Attributes:
        ratio: the collateral ratio when the mint was attempted.
        threshold: the halt threshold it fell below.
    """

    def __init__(self, ratio: Fraction, threshold: Fraction) -> None:
        self.ratio = ratio
        self.threshold = threshold
        super().__init__(
            f"minting halted: collateral ratio {float(ratio):.4f} ({ratio}) is below the halt "
            f"threshold {float(threshold):.4f}; burning credit into the token is still allowed"
        )


# -- validation helpers -------------------------------------------------------------------------
def _amount(value: Any, field: str, *, positive: bool = False) -> int:
    """An int >= 0 (> 0 when `positive`); numpy ints are accepted, bools and floats are not."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        kind = "a bool" if isinstance(value, bool) else type(value).__name__
        raise InvalidTokenomicsError(field, value, f"must be an int, not {kind}")
    out = int(value)
    if out < 0 or (positive and out == 0):
        raise InvalidTokenomicsError(field, value, "must be > 0" if positive else "must be >= 0")
    return out


def _rational(value: Any, field: str) -> Fraction:
    """An exact rational: int, `Fraction`, `Decimal` or a decimal or fraction string."""
    if isinstance(value, bool | float):
        kind = "bool" if isinstance(value, bool) else "float"
        raise InvalidTokenomicsError(
            field, value, f"must be exact (int, Fraction, Decimal or str), not a {kind}"
        )
    try:
        if isinstance(value, str):
            return Fraction(value.strip())
        if isinstance(value, Decimal):
            return Fraction(value)  # raises on NaN and infinities
        if isinstance(value, numbers.Rational):
            return Fraction(int(value.numerator), int(value.denominator))
    except (ValueError, OverflowError, ZeroDivisionError):
        raise InvalidTokenomicsError(field, value, "is not a finite rational number") from None
    raise InvalidTokenomicsError(field, value, "must be an int, Fraction, Decimal or str")


def _rate(value: Any, field: str) -> Fraction:
    """A rate in [0, 1]: as `auction.settlement.fees.as_rate` (``"5%"``, ``"25bps"`` work)."""
    try:
        return as_rate(value, field)
    except InvalidSettlementError as e:
        raise InvalidTokenomicsError(e.field, e.value, e.reason) from None


def _name(value: Any, field: str) -> str:
    try:
        return currency_code(value, field)
    except InvalidSettlementError as e:
        raise InvalidTokenomicsError(e.field, e.value, e.reason) from None


def _as_given(value: Any) -> Any:
    """Converter that keeps the value: lets a `Fraction` field take an int or str (checked in
    ``__attrs_post_init__``)."""
    return value


def _as_tuple(value: Iterable[int]) -> tuple[int, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise InvalidTokenomicsError("per_year", value, "must be a sequence of ints")
    return tuple(value)


def _rounding(value: Any) -> RoundingMode:
    if value not in _ROUNDINGS:
        raise InvalidTokenomicsError("rounding", value, f"must be one of {list(_ROUNDINGS)}")
    return value  # type: ignore[no-any-return]


def round_rational(value: Fraction, rounding: RoundingMode) -> int:
    """`value` rounded to an int: down (floor), up (ceiling) or half-even."""
    n, d = value.numerator, value.denominator
    match _rounding(rounding):
        case "down":
            return n // d
        case "up":
            return -(-n // d)
        case _:
            return round(value)  # Fraction.__round__ rounds exact halves to even


# -- oracle prices --------------------------------------------------------------------------------
@attrs.frozen
class OraclePrice:
    """The price of one whole `base` unit in whole `quote` units, exact.

    Each currency has its own smallest unit, ``10 ** -decimals`` of a whole one (RENDER and IO
    have 8 decimals, AKT and a micro-dollar 6). `convert` maps an amount of base smallest
    units to quote smallest units; `inverse` converts the other way.

    Attributes:
        base: the currency priced, such as ``"RENDER"``.
        quote: the currency it is priced in, such as ``"USD"``.
        price: quote per base, > 0: an int, `Fraction`, `Decimal` or a decimal or fraction
            string (``"7.25"``, ``"29/4"``); stored as a `Fraction`. Floats are refused.
        base_decimals: decimal places of the base currency's smallest unit.
        quote_decimals: decimal places of the quote currency's smallest unit.
    """

    base: str
    quote: str
    price: Fraction = attrs.field(converter=_as_given)
    base_decimals: int = attrs.field(default=0, kw_only=True)
    quote_decimals: int = attrs.field(default=0, kw_only=True)

    def __attrs_post_init__(self) -> None:
        s = object.__setattr__
        s(self, "base", _name(self.base, "base"))
        s(self, "quote", _name(self.quote, "quote"))
        if self.base == self.quote:
            raise InvalidTokenomicsError("quote", self.quote, "must differ from base")
        price = _rational(self.price, "price")
        if price <= 0:
            raise InvalidTokenomicsError("price", self.price, "must be > 0")
        s(self, "price", price)
        for field in ("base_decimals", "quote_decimals"):
            d = _amount(getattr(self, field), field)
            if d > MAX_DECIMALS:
                raise InvalidTokenomicsError(field, d, f"must be at most {MAX_DECIMALS}")
            s(self, field, d)

    @property
    def unit_rate(self) -> Fraction:
        """Quote smallest units per base smallest unit, exact."""
        return self.price * Fraction(10**self.quote_decimals, 10**self.base_decimals)

    @classmethod
    def of(cls, base: Currency, quote: Currency, price: Exact) -> OraclePrice:
        """The price of `base` in `quote`, decimals taken from the two `Currency` objects."""
        return cls(
            base.code, quote.code, price,
            base_decimals=base.decimals, quote_decimals=quote.decimals,
        )

    def inverse(self) -> OraclePrice:
        """The same price seen from the quote side: base and quote swapped."""
        return OraclePrice(
            self.quote, self.base, 1 / self.price,
            base_decimals=self.quote_decimals, quote_decimals=self.base_decimals,
        )

    def value(self, amount: int) -> Fraction:
        """The exact value of `amount` base smallest units, in quote smallest units."""
        return _amount(amount, "amount") * self.unit_rate

    def __str__(self) -> str:
        return f"1 {self.base} = {self.price} {self.quote}"


def convert(amount: int, price: OraclePrice, *, rounding: RoundingMode) -> int:
    """Convert `amount` smallest units of ``price.base`` into smallest units of ``price.quote``.

    Exact rational arithmetic, one rounding at the end, in the direction the caller states
    (there is no default: each flow has its own, see the module docstring). The result is
    within one smallest unit of the exact value. Use ``price.inverse()`` to convert the
    other way.
    """
    if not isinstance(price, OraclePrice):
        raise InvalidTokenomicsError("price", price, "must be an OraclePrice")
    return round_rational(price.value(amount), rounding)


# -- ledger transactions ----------------------------------------------------------------------
_ISSUANCE = Account(AccountKind.ISSUANCE)
_BURNED = Account(AccountKind.BURNED)


def mint_transaction(
    tx_id: str, target: Account, currency: str, amount: int, *, time: int = 0, memo: str = ""
) -> Transaction:
    """Mint `amount` of `currency` into `target`: a transfer out of ``ISSUANCE``.

    The ledger's supply of `currency` rises by exactly `amount`.
    """
    return transfer(
        tx_id, _ISSUANCE, target, currency, _amount(amount, "amount"), time=time, memo=memo,
        meta=TxMeta(kind=TxKind.MINT),
    )


def burn_transaction(
    tx_id: str, source: Account, currency: str, amount: int, *, time: int = 0, memo: str = ""
) -> Transaction:
    """Burn `amount` of `currency` held by `source`: a transfer into ``BURNED``.

    The ledger's supply of `currency` falls by exactly `amount`.
    """
    return transfer(
        tx_id, source, _BURNED, currency, _amount(amount, "amount"), time=time, memo=memo,
        meta=TxMeta(kind=TxKind.BURN),
    )


def _transaction(
    tx_id: str, postings: Iterable[tuple[Account, str, int]], time: int, memo: str,
    kind: TxKind,
) -> Transaction:
    """One transaction from (account, currency, amount) postings."""
    return Transaction(
        tx_id, tuple(Posting(a, c, x) for a, c, x in postings), time=time, memo=memo,
        meta=TxMeta(kind=kind),
    )


# -- Render: burn the fiat value of a job, keep a fee ------------------------------------------
@attrs.frozen
class RenderBurn:
    """How a USD-priced job is paid in tokens, Render style (see `render_burn`).

    Attributes:
        job_price: the job's price in quote smallest units (micro-dollars, say).
        price: the oracle price used: base the token, quote the job's currency.
        paid: tokens the tenant pays, base smallest units: the job's value, rounded up.
        fee: tokens kept as the protocol fee, ``floor(paid x fee_rate)``.
        burned: tokens burned, ``paid - fee``.
    """

    job_price: int
    price: OraclePrice
    paid: int
    fee: int
    burned: int

    @property
    def token(self) -> str:
        """The currency paid, burned and charged as the fee."""
        return self.price.base


def render_burn(
    job_price: int, price: OraclePrice, *, fee_rate: Exact = RENDER_FEE_RATE
) -> RenderBurn:
    """Tokens to pay, keep and burn for a job priced in fiat (Render burn-and-mint).

    The tenant pays the job's value in tokens at the oracle price, rounded **up** (the
    burn is never worth less than the job); a fee of `fee_rate` (5% on Render) is kept,
    rounded **down**, and the rest is burned. Providers are not paid from this payment: on
    Render they are paid from the epoch's emission (`EmissionSchedule`, then
    `auction.settlement.rewards.split_rewards`).

    Args:
        job_price: the job's price in smallest units of ``price.quote``.
        price: the token's price: base the token, quote the job's currency.
        fee_rate: the share kept as a fee, in [0, 1] (a `Fraction`, or a string such as
            ``"5%"``).
    """
    job = _amount(job_price, "job_price")
    rate = _rate(fee_rate, "fee_rate")
    if not isinstance(price, OraclePrice):
        raise InvalidTokenomicsError("price", price, "must be an OraclePrice")
    paid = convert(job, price.inverse(), rounding="up")
    fee = round_rational(paid * rate, "down")
    return RenderBurn(job_price=job, price=price, paid=paid, fee=fee, burned=paid - fee)


def render_burn_transaction(
    tx_id: str,
    burn: RenderBurn,
    *,
    tenant: Account,
    fee_account: Account | None = None,
    time: int = 0,
    memo: str = "",
) -> Transaction:
    """The ledger transaction of a `RenderBurn`: the tenant pays, the fee is kept, the rest burned.

    `fee_account` defaults to the ``PROTOCOL_FEES`` account (on Render the fee goes to the
    foundation; pass a ``TREASURY`` account to model that). Only ``burn.burned`` leaves the
    supply; the fee stays in circulation.
    """
    fees = Account(AccountKind.PROTOCOL_FEES) if fee_account is None else fee_account
    t = burn.token
    postings = [(tenant, t, -burn.paid), (fees, t, burn.fee), (_BURNED, t, burn.burned)]
    return _transaction(tx_id, postings, time, memo or f"render burn: job {burn.job_price}",
                        TxKind.BURN)


# -- Akash: burn-mint equilibrium with a collateral-ratio breaker -----------------------------
class BreakerStatus(enum.StrEnum):
    """State of the collateral-ratio breaker."""

    HEALTHY = "healthy"  #: ratio >= warn threshold, or no credit outstanding
    WARNING = "warning"  #: halt <= ratio < warn: minting still allowed
    HALTED = "halted"  #: ratio < halt: minting credit refused, redeeming allowed


def _bps(value: Any, field: str) -> int:
    out = _amount(value, field)
    if out >= 10_000:
        raise InvalidTokenomicsError(field, value, "must be in [0, 10000) basis points")
    return out


@attrs.frozen
class BmeParams:
    """Parameters of an Akash-style burn-mint equilibrium (AEP-76).

    Attributes:
        token: the volatile token burned to mint credit (``"AKT"``).
        credit: the pegged credit (``"ACT"``, one credit = one USD).
        mint_spread_bps: spread taken when burning the token to mint credit (25 bps).
        redeem_spread_bps: spread taken when burning credit back into the token (0 bps).
        warn_ratio: collateral ratio below which the breaker warns (0.95).
        halt_ratio: collateral ratio below which minting halts (0.90), <= `warn_ratio`.
    """

    token: str = "AKT"
    credit: str = "ACT"
    mint_spread_bps: int = AKASH_MINT_SPREAD_BPS
    redeem_spread_bps: int = AKASH_REDEEM_SPREAD_BPS
    warn_ratio: Fraction = attrs.field(default=BME_WARN_RATIO, converter=_as_given)
    halt_ratio: Fraction = attrs.field(default=BME_HALT_RATIO, converter=_as_given)

    def __attrs_post_init__(self) -> None:
        s = object.__setattr__
        s(self, "token", _name(self.token, "token"))
        s(self, "credit", _name(self.credit, "credit"))
        if self.token == self.credit:
            raise InvalidTokenomicsError("credit", self.credit, "must differ from token")
        s(self, "mint_spread_bps", _bps(self.mint_spread_bps, "mint_spread_bps"))
        s(self, "redeem_spread_bps", _bps(self.redeem_spread_bps, "redeem_spread_bps"))
        warn = _rational(self.warn_ratio, "warn_ratio")
        halt = _rational(self.halt_ratio, "halt_ratio")
        if halt < 0:
            raise InvalidTokenomicsError("halt_ratio", self.halt_ratio, "must be >= 0")
        if warn < halt:
            raise InvalidTokenomicsError(
                "warn_ratio", self.warn_ratio, f"must be >= halt_ratio ({halt})"
            )
        s(self, "warn_ratio", warn)
        s(self, "halt_ratio", halt)

    def check_price(self, price: OraclePrice) -> OraclePrice:
        """`price` if it prices the token in the credit, else `InvalidTokenomicsError`."""
        if not isinstance(price, OraclePrice) or (price.base, price.quote) != (
            self.token, self.credit
        ):
            raise InvalidTokenomicsError(
                "price", price, f"must be an OraclePrice of {self.token} in {self.credit}"
            )
        return price

    def credit_for(self, tokens: int, price: OraclePrice) -> int:
        """Credit minted for burning `tokens`: value less the mint spread, rounded down."""
        keep = Fraction(10_000 - self.mint_spread_bps, 10_000)
        return round_rational(self.check_price(price).value(tokens) * keep, "down")

    def tokens_for(self, credit: int, price: OraclePrice) -> int:
        """Tokens minted for burning `credit`: value less the redeem spread, rounded down."""
        keep = Fraction(10_000 - self.redeem_spread_bps, 10_000)
        return round_rational(self.check_price(price).inverse().value(credit) * keep, "down")

    def status_of(self, ratio: Fraction | None) -> BreakerStatus:
        """Breaker status at a collateral ratio (None: no credit outstanding, healthy)."""
        if ratio is None or ratio >= self.warn_ratio:
            return BreakerStatus.HEALTHY
        return BreakerStatus.WARNING if ratio >= self.halt_ratio else BreakerStatus.HALTED


def tokens_for_credit(credit: int, price: OraclePrice, params: BmeParams | None = None) -> int:
    """The least burn of tokens that mints at least `credit` (rounded up).

    ``params.credit_for(tokens_for_credit(c, p), p) >= c`` always holds.
    """
    params = BmeParams() if params is None else params
    c = _amount(credit, "credit")
    keep = Fraction(10_000 - params.mint_spread_bps, 10_000)
    return round_rational(c / (params.check_price(price).unit_rate * keep), "up")


@attrs.frozen
class CreditMint:
    """Tokens burned to mint credit (`BmeState.mint_credit`).

    Attributes:
        tokens: token smallest units burned.
        credit: credit smallest units minted.
        price: the oracle price used.
        status: breaker status before the mint (never ``HALTED``: that raises).
    """

    tokens: int
    credit: int
    price: OraclePrice
    status: BreakerStatus


@attrs.frozen
class CreditRedeem:
    """Credit burned back into the token (`BmeState.redeem_credit`).

    Attributes:
        credit: credit smallest units burned.
        tokens: token smallest units minted, ``reminted + new_issuance``.
        reminted: the part re-minted from the vault's remint credits (non-inflationary).
        new_issuance: the part beyond the vault: new supply (inflationary).
        price: the oracle price used.
        status: breaker status before the redeem (redeeming is allowed in every status).
    """

    credit: int
    tokens: int
    reminted: int
    new_issuance: int
    price: OraclePrice
    status: BreakerStatus


@attrs.frozen
class BmeState:
    """The state of a burn-mint equilibrium: the vault and the credit outstanding.

    Immutable: `mint_credit` and `redeem_credit` return the next state with a record of
    what moved. The collateral ratio is ``vault x price / outstanding``; see `BmeParams` for
    the breaker thresholds.

    Attributes:
        params: the mechanism's parameters.
        vault: remint credits, in token smallest units: tokens burned to mint credit and not
            yet re-minted to redeemers.
        outstanding: credit in circulation, in credit smallest units.
    """

    params: BmeParams = attrs.field(factory=BmeParams)
    vault: int = 0
    outstanding: int = 0

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.params, BmeParams):
            raise InvalidTokenomicsError("params", self.params, "must be a BmeParams")
        object.__setattr__(self, "vault", _amount(self.vault, "vault"))
        object.__setattr__(self, "outstanding", _amount(self.outstanding, "outstanding"))

    def collateral_ratio(self, price: OraclePrice) -> Fraction | None:
        """``vault value / outstanding credit``, exact; None when no credit is outstanding."""
        value = self.params.check_price(price).value(self.vault)
        return value / self.outstanding if self.outstanding else None

    def status(self, price: OraclePrice) -> BreakerStatus:
        """The breaker's status at `price`."""
        return self.params.status_of(self.collateral_ratio(price))

    def mint_credit(self, tokens: int, price: OraclePrice) -> tuple[BmeState, CreditMint]:
        """Burn `tokens` to mint credit at `price` less the mint spread (rounded down).

        Raises:
            MintingHaltedError: the collateral ratio is below ``params.halt_ratio``.
            InvalidTokenomicsError: `tokens` is not an int, or buys no credit at all.
        """
        n = _amount(tokens, "tokens")
        ratio = self.collateral_ratio(price)
        status = self.params.status_of(ratio)
        if status is BreakerStatus.HALTED:
            assert ratio is not None
            raise MintingHaltedError(ratio, self.params.halt_ratio)
        credit = self.params.credit_for(n, price)
        if credit == 0:
            raise InvalidTokenomicsError("tokens", tokens, f"buys no credit at {price}")
        state = attrs.evolve(self, vault=self.vault + n, outstanding=self.outstanding + credit)
        return state, CreditMint(tokens=n, credit=credit, price=price, status=status)

    def redeem_credit(self, credit: int, price: OraclePrice) -> tuple[BmeState, CreditRedeem]:
        """Burn `credit` to mint tokens at `price` less the redeem spread (rounded down).

        Allowed whatever the breaker's status. Tokens come from the vault's remint credits
        first; the rest is new issuance.

        Raises:
            InvalidTokenomicsError: `credit` exceeds the credit outstanding, or buys no token.
        """
        c = _amount(credit, "credit")
        if c > self.outstanding:
            raise InvalidTokenomicsError(
                "credit", credit, f"exceeds the credit outstanding ({self.outstanding})"
            )
        status = self.status(price)
        tokens = self.params.tokens_for(c, price)
        if tokens == 0:
            raise InvalidTokenomicsError("credit", credit, f"buys no token at {price}")
        reminted = min(tokens, self.vault)
        state = attrs.evolve(self, vault=self.vault - reminted, outstanding=self.outstanding - c)
        record = CreditRedeem(
            credit=c, tokens=tokens, reminted=reminted, new_issuance=tokens - reminted,
            price=price, status=status,
        )
        return state, record


def bme_mint_transaction(
    tx_id: str,
    mint: CreditMint,
    *,
    account: Account,
    time: int = 0,
    memo: str = "",
) -> Transaction:
    """The ledger transaction of a `CreditMint`: `account` burns tokens and receives credit."""
    token, credit = mint.price.base, mint.price.quote
    postings = [
        (account, token, -mint.tokens),
        (_BURNED, token, mint.tokens),
        (_ISSUANCE, credit, -mint.credit),
        (account, credit, mint.credit),
    ]
    return _transaction(tx_id, postings, time, memo or f"bme mint {credit}", TxKind.BME_MINT)


def bme_redeem_transaction(
    tx_id: str,
    redeem: CreditRedeem,
    *,
    account: Account,
    time: int = 0,
    memo: str = "",
) -> Transaction:
    """The ledger transaction of a `CreditRedeem`: `account` burns credit and receives tokens.

    Re-minted and newly issued tokens are both mints on the ledger (the tokens burned into
    the vault already left the supply); `CreditRedeem` tells the two apart.
    """
    token, credit = redeem.price.base, redeem.price.quote
    postings = [
        (account, credit, -redeem.credit),
        (_BURNED, credit, redeem.credit),
        (_ISSUANCE, token, -redeem.tokens),
        (account, token, redeem.tokens),
    ]
    return _transaction(tx_id, postings, time, memo or f"bme redeem {credit}",
                        TxKind.BME_REDEEM)


# -- emission schedules -----------------------------------------------------------------------
def _to_int64(values: ObjArray, what: str) -> IntArray:
    """Exact ints (object array) as int64, or `AuctionOverflowError`."""
    if values.size and (max(values) > MAX_MONEY or min(values) < -MAX_MONEY):
        raise AuctionOverflowError(f"{what} does not fit in int64 (largest {max(values)})")
    return values.astype(np.int64)


class EmissionSchedule(abc.ABC):
    """Tokens minted per epoch, as exact ints without drift.

    A schedule defines the **cumulative target**: the exact total emitted after `k` epochs,
    rounded down. An epoch's emission is the difference of consecutive targets, so any run
    of epochs sums exactly to the difference of its end targets, and rounding never
    accumulates: after `k` epochs the total is within one unit below the exact rational
    total, whatever `k`.
    """

    __slots__ = ()

    @abc.abstractmethod
    def _targets(self, epochs: IntArray) -> ObjArray:
        """Exact cumulative targets after each of `epochs` epochs (ints, object array)."""

    def cumulative(self, n_epochs: int) -> int:
        """Total emitted by epochs ``0 .. n_epochs - 1``."""
        k = _epoch(n_epochs, "n_epochs")
        return int(self._targets(np.array([k], dtype=np.int64))[0])

    def emission(self, epoch: int) -> int:
        """Tokens minted in epoch `epoch` (epochs count from 0)."""
        k = _epoch(epoch, "epoch")
        t = self._targets(np.array([k, k + 1], dtype=np.int64))
        return int(t[1] - t[0])

    def schedule(self, n_epochs: int, *, start: int = 0) -> IntArray:
        """Emissions of epochs ``start .. start + n_epochs - 1`` as an int64 array.

        Vectorized; raises `AuctionOverflowError` when an amount does not fit in int64.
        """
        n = _epoch(n_epochs, "n_epochs")
        s = _epoch(start, "start")
        _epoch(s + n, "start + n_epochs")
        targets = self._targets(np.arange(s, s + n + 1, dtype=np.int64))
        return _to_int64(targets[1:] - targets[:-1], "an epoch's emission")

    def cumulative_schedule(self, n_epochs: int) -> IntArray:
        """Cumulative targets after 0, 1, ..., `n_epochs` epochs (length ``n_epochs + 1``)."""
        n = _epoch(n_epochs, "n_epochs")
        return _to_int64(self._targets(np.arange(n + 1, dtype=np.int64)), "cumulative emission")


def _epoch(value: Any, field: str) -> int:
    out = _amount(value, field)
    if out > MAX_EPOCH:
        raise InvalidTokenomicsError(field, value, f"must be at most {MAX_EPOCH}")
    return out


@attrs.frozen
class FixedEmission(EmissionSchedule):
    """The same number of tokens every epoch, forever.

    Attributes:
        per_epoch: tokens (smallest units) minted each epoch, >= 0.
    """

    per_epoch: int

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "per_epoch", _amount(self.per_epoch, "per_epoch"))

    def _targets(self, epochs: IntArray) -> ObjArray:
        return epochs.astype(object) * self.per_epoch


class _YearlyBase(EmissionSchedule):
    """A yearly total, spread evenly over the year's epochs: cumulative target
    ``floor(C(y) + e x T(y) / epochs_per_year)`` in epoch `e` of year `y`, where ``T(y)`` is
    year `y`'s exact total and ``C(y)`` the exact total of the years before it."""

    __slots__ = ()
    epochs_per_year: int

    @abc.abstractmethod
    def _year(self, year: int) -> tuple[int, int, int, int]:
        """Exact totals as unreduced ratios ``(bn, bd, tn, td)``: the years before `year`
        emit ``bn / bd``, year `year` emits ``tn / td`` (ints: no gcd on large numbers)."""

    def _targets(self, epochs: IntArray) -> ObjArray:
        per = self.epochs_per_year
        years, within = np.divmod(epochs, per)
        out = np.empty(len(epochs), dtype=object)
        for y in np.unique(years).tolist():
            mask = years == y
            bn, bd, tn, td = self._year(y)
            # floor(bn / bd + e * tn / (td * per)) over one common denominator
            e = within[mask].astype(object)
            out[mask] = (bn * td * per + e * (tn * bd)) // (bd * td * per)
        return out


def _positive_epochs(value: Any) -> int:
    out = _amount(value, "epochs_per_year", positive=True)
    if out > 2**31:
        raise InvalidTokenomicsError("epochs_per_year", value, "must be at most 2**31")
    return out


@attrs.frozen
class DecayingEmission(_YearlyBase):
    """A yearly emission that falls by a fixed share each year, spread evenly within a year.

    Year `y` (from 0) emits exactly ``initial_per_year x (1 - decay) ** y``; each epoch of
    the year gets ``1 / epochs_per_year`` of it, and the cumulative target is rounded down
    (see `EmissionSchedule`). io.net: 8% of the 500M launch supply (40M) in year 1, falling
    12% a year for 20 years (``decay=Fraction(12, 100), years=20``), hourly epochs (8760).

    Attributes:
        initial_per_year: tokens (smallest units) emitted in year 0.
        decay: the share by which each year's emission falls, in [0, 1); 0 keeps it level
            (a `Fraction`, or a string such as ``"12%"``).
        epochs_per_year: epochs in a year, >= 1 (12 monthly, 52 weekly, 8760 hourly).
        years: emission stops after this many years (at most 1000); None: it never stops,
            but with a positive decay only the first 1000 years can be computed.
    """

    initial_per_year: int
    decay: Fraction = attrs.field(converter=_as_given)
    epochs_per_year: int
    years: int | None = None

    def __attrs_post_init__(self) -> None:
        s = object.__setattr__
        s(self, "initial_per_year", _amount(self.initial_per_year, "initial_per_year"))
        decay = _rate(self.decay, "decay")
        if decay == 1:
            raise InvalidTokenomicsError("decay", self.decay, "must be in [0, 1)")
        s(self, "decay", decay)
        s(self, "epochs_per_year", _positive_epochs(self.epochs_per_year))
        if self.years is not None:
            s(self, "years", _amount(self.years, "years"))
            if self.years > MAX_DECAY_YEARS:
                raise InvalidTokenomicsError("years", self.years, f"must be <= {MAX_DECAY_YEARS}")

    def _year(self, year: int) -> tuple[int, int, int, int]:
        a = self.initial_per_year
        r = 1 - self.decay
        p, q = r.numerator, r.denominator
        stopped = self.years is not None and year >= self.years
        if not stopped and p != q and year > MAX_DECAY_YEARS:
            raise InvalidTokenomicsError(
                "epoch", year * self.epochs_per_year,
                f"is beyond {MAX_DECAY_YEARS} years, the limit of a decaying emission "
                "(computed exactly); end the schedule sooner with years=",
            )
        if stopped:
            year = self.years  # type: ignore[assignment]  # not None here
        if p == q:  # no decay
            return a * year, 1, 0 if stopped else a, 1
        # a (1 + r + ... + r**(y-1)) = a (1 - r**y) / (1 - r) = a q (q**y - p**y) / (q**y (q - p))
        qy, py = q**year, p**year
        return a * q * (qy - py), qy * (q - p), 0 if stopped else a * py, qy


@attrs.frozen
class YearlyEmission(_YearlyBase):
    """A table of yearly totals, each spread evenly over its year; nothing after the table.

    Render's schedule is such a table (year 1: 9,126,804 tokens).

    Attributes:
        per_year: tokens (smallest units) emitted in each year, from year 0.
        epochs_per_year: epochs in a year, >= 1.
    """

    per_year: tuple[int, ...] = attrs.field(converter=_as_tuple)
    epochs_per_year: int

    def __attrs_post_init__(self) -> None:
        totals = tuple(_amount(x, f"per_year[{i}]") for i, x in enumerate(self.per_year))
        object.__setattr__(self, "per_year", totals)
        object.__setattr__(self, "epochs_per_year", _positive_epochs(self.epochs_per_year))
        object.__setattr__(self, "_prefix", (0, *np.cumsum(totals, dtype=object).tolist()))

    _prefix: tuple[int, ...] = attrs.field(init=False, repr=False, eq=False, default=())

    def _year(self, year: int) -> tuple[int, int, int, int]:
        y = min(year, len(self.per_year))
        total = self.per_year[y] if y < len(self.per_year) else 0
        return self._prefix[y], 1, total, 1


@attrs.frozen
class CappedSupply(EmissionSchedule):
    """Another schedule, stopped at a supply cap.

    The total supply ``initial_supply + emitted`` never exceeds `cap`: the epoch that would
    cross it gets exactly the remainder, and every later epoch gets nothing. io.net: cap
    800M, 500M at launch.

    Attributes:
        cap: the most tokens (smallest units) that may ever exist.
        inner: the schedule being capped.
        initial_supply: tokens that exist before epoch 0, <= `cap`.
    """

    cap: int
    inner: EmissionSchedule
    initial_supply: int = 0

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "cap", _amount(self.cap, "cap"))
        object.__setattr__(self, "initial_supply", _amount(self.initial_supply, "initial_supply"))
        if not isinstance(self.inner, EmissionSchedule):
            raise InvalidTokenomicsError("inner", self.inner, "must be an EmissionSchedule")
        if self.initial_supply > self.cap:
            raise InvalidTokenomicsError(
                "initial_supply", self.initial_supply, f"exceeds the cap ({self.cap})"
            )

    @property
    def budget(self) -> int:
        """Tokens left to emit: ``cap - initial_supply``."""
        return self.cap - self.initial_supply

    def _targets(self, epochs: IntArray) -> ObjArray:
        return np.minimum(self.inner._targets(epochs), self.budget)


# -- demand-responsive issuance ---------------------------------------------------------------
@attrs.frozen
class DemandController:
    """Issuance that falls as network revenue rises and rises as it falls, within bounds.

    ``next = clamp(floor(issuance x (1 + gain x (target - revenue) / target)), lo, hi)``,
    exact rational arithmetic and one rounding (down). With ``gain >= 0`` the next issuance
    never rises when revenue rises (monotone), and it always lies in ``[lo, hi]``. Revenue
    above ``target x (1 + 1 / gain)`` drives the raw value below zero: the bounds catch it.
    The rule is multiplicative, so an issuance of 0 stays 0: set ``min_issuance > 0`` for
    issuance to recover once revenue falls.

    Attributes:
        target_revenue: revenue per epoch at which issuance holds steady, > 0 (any unit,
            the same as the revenues passed in).
        gain: how strongly issuance reacts, >= 0: at ``gain=1/2`` a revenue 10% below
            target raises issuance 5%.
        min_issuance: the least issuance per epoch (``lo``), >= 0.
        max_issuance: the most issuance per epoch (``hi``), >= `min_issuance`.
    """

    target_revenue: int
    gain: Fraction = attrs.field(converter=_as_given)
    min_issuance: int
    max_issuance: int

    def __attrs_post_init__(self) -> None:
        s = object.__setattr__
        s(self, "target_revenue", _amount(self.target_revenue, "target_revenue", positive=True))
        gain = _rational(self.gain, "gain")
        if gain < 0:
            raise InvalidTokenomicsError("gain", self.gain, "must be >= 0")
        s(self, "gain", gain)
        s(self, "min_issuance", _amount(self.min_issuance, "min_issuance"))
        s(self, "max_issuance", _amount(self.max_issuance, "max_issuance"))
        if self.max_issuance < self.min_issuance:
            raise InvalidTokenomicsError(
                "max_issuance", self.max_issuance, f"must be >= min_issuance ({self.min_issuance})"
            )

    def next_issuance(self, issuance: int, revenue: int) -> int:
        """Issuance of the next epoch, given this epoch's issuance and revenue."""
        x = _amount(issuance, "issuance")
        r = _amount(revenue, "revenue")
        t = self.target_revenue
        raw = round_rational(x * (1 + self.gain * Fraction(t - r, t)), "down")
        return min(max(raw, self.min_issuance), self.max_issuance)

    def run(self, initial: int, revenues: Sequence[int] | npt.ArrayLike) -> IntArray:
        """Issuance per epoch: ``[initial, next(initial, revenues[0]), ...]``.

        Returns ``len(revenues) + 1`` values; ``out[t + 1]`` follows from ``out[t]`` and
        ``revenues[t]``. `initial` must lie within the bounds.
        """
        x = _amount(initial, "initial")
        if not self.min_issuance <= x <= self.max_issuance:
            raise InvalidTokenomicsError(
                "initial", initial,
                f"must be in [min_issuance, max_issuance] = "
                f"[{self.min_issuance}, {self.max_issuance}]",
            )
        if self.max_issuance > MAX_MONEY:
            raise AuctionOverflowError("max_issuance does not fit in int64")
        out = [x]
        for r in np.asarray(revenues, dtype=object).reshape(-1).tolist():
            x = self.next_issuance(x, r)
            out.append(x)
        return np.array(out, dtype=np.int64)
