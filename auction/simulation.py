"""Run a market over many epochs: orders, clearing, settlement, burns and emissions.

A protocol designer compares designs by running each on the same order flow: `simulate` takes
an `OrderFlow` (what tenants and providers post each epoch) and a `Design` (the mechanism,
fees, how tenants pay, the token's emission and rewards) and returns a `SimulationResult` of
per-epoch arrays: revenue, protocol revenue, tokens burned and minted, supply, utilization and
each provider's income and rewards. Every amount moves on one exact `Ledger`, which the result
keeps.

Time is counted in hours: an epoch is `epoch_hours` hours, epoch ``e`` covers hours
``[e x H, (e + 1) x H)``, and leases accrue per hour. This module sits above the others: it
clears with any registered mechanism and settles with `auction.settlement`.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Protocol

import attrs
import numpy as np
import numpy.typing as npt

from auction.book import OrderBook
from auction.clearing import clear
from auction.datasets import N_REQUESTS as _N_REQUESTS
from auction.datasets import as_exchange as _as_exchange
from auction.datasets import example_book
from auction.datasets import example_request as _request
from auction.market import Market
from auction.mechanisms import Mechanism
from auction.money import MAX_MONEY
from auction.orders import Offer, Order, Request
from auction.reputation import Event, ReputationBook
from auction.reputation.audit import audit_sample
from auction.reputation.events import Outcome
from auction.reputation.models import ReputationModel
from auction.result import ClearingResult
from auction.settlement.leases import HOUR, Lease, LeaseBook, leases_from_result
from auction.settlement.ledger import (
    Account,
    AccountKind,
    InvalidSettlementError,
    Ledger,
    Transaction,
    transfer,
)
from auction.settlement.penalties import PenaltyPolicy
from auction.settlement.rates import FeeSchedule, as_rate, fee_of
from auction.settlement.rewards import reward_transaction, split_rewards
from auction.settlement.tokenomics import (
    RENDER_FEE_RATE,
    DemandController,
    EmissionSchedule,
    OraclePrice,
    mint_transaction,
    render_burn,
    render_burn_transaction,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "AuditPolicy",
    "Design",
    "ExampleFlow",
    "InvalidSimulationError",
    "LeaseRecord",
    "OrderFlow",
    "Payment",
    "Rewards",
    "SimulationResult",
    "compare",
    "plot",
    "simulate",
]

_SECONDS_PER_HOUR = 3600
_MARKET = Account(AccountKind.MARKET)
_POOL = Account(AccountKind.EMISSIONS_POOL)
_ISSUANCE = Account(AccountKind.ISSUANCE)

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


class InvalidSimulationError(InvalidSettlementError):
    """A simulation was set up wrongly, or its order flow returned something else than
    orders; names the field and the value."""


class OrderFlow(Protocol):
    """What tenants and providers post in an epoch.

    Called once per epoch with the epoch number and a numpy Generator seeded for that epoch
    (draw from it, never from global state, and the simulation is reproducible). Returns the
    epoch's offers (the capacity providers make available; GPUs still busy with earlier
    leases on the same offer id are taken off by the simulation) and requests (new jobs;
    those not served are dropped). Order ids need only be unique within an epoch: leases
    are named ``{epoch}:{request}/{offer}``.
    """

    def __call__(self, epoch: int, rng: np.random.Generator) -> Iterable[Order]: ...


class Payment(enum.StrEnum):
    """How tenants pay for what they lease."""

    #: Through leases in the payment currency: escrow, hourly accrual, fees (Akash, io.net,
    #: Nosana, Aethir). Providers are paid by the tenant; emissions come on top.
    LEASE = "lease"
    #: Render's burn-and-mint: each epoch a tenant buys the fiat value of the hours it used in
    #: tokens from the market (rounded up), a fee is kept (5%) and the rest is burned.
    #: Providers are paid only from the emission.
    RENDER = "render"


class Rewards(enum.StrEnum):
    """How an epoch's emission is split among providers (largest remainder)."""

    #: GPU-hours served in the epoch, times the GPU model's power (Nosana, Aethir, Render).
    WORK = "work"
    #: GPU-hours offered in the epoch, times the GPU model's power (availability rewards).
    AVAILABILITY = "availability"


def _payment(value: Any) -> Payment:
    try:
        return Payment(value)
    except ValueError:
        raise InvalidSimulationError(
            "settle", value, f"must be one of: {', '.join(p.value for p in Payment)}") from None


def _rewards(value: Any) -> Rewards:
    try:
        return Rewards(value)
    except ValueError:
        raise InvalidSimulationError(
            "rewards", value, f"must be one of: {', '.join(r.value for r in Rewards)}") from None


def _schedule(value: Any) -> EmissionSchedule | DemandController | None:
    if value is None or isinstance(value, EmissionSchedule | DemandController):
        return value
    raise InvalidSimulationError(
        "emission", value, "must be an EmissionSchedule, a DemandController or None"
    )


def _fees(value: Any) -> FeeSchedule:
    if not isinstance(value, FeeSchedule):
        raise InvalidSimulationError("fees", value, "must be a FeeSchedule")
    return value


def _power(
    value: Mapping[str, int] | Iterable[tuple[str, int]] | None,
) -> tuple[tuple[str, int], ...]:
    """Sorted (model, power) pairs from a mapping, or from the pairs a `Design` stores (so
    ``attrs.evolve`` can copy the field)."""
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        pairs = list(value) if isinstance(value, tuple | list) else None
        if pairs is None or not all(isinstance(p, tuple) and len(p) == 2 for p in pairs):
            raise InvalidSimulationError("gpu_power", value,
                                         "must be a mapping of model -> int")
        if len({m for m, _ in pairs}) != len(pairs):
            raise InvalidSimulationError("gpu_power", value, "names a model twice")
        value = dict(pairs)
    out = []
    for model, w in sorted(value.items()):
        if isinstance(w, bool) or not isinstance(w, int | np.integer) or not 0 <= w <= 10**9:
            raise InvalidSimulationError(f"gpu_power[{model!r}]", w, "must be an int in [0, 1e9]")
        out.append((str(model), int(w)))
    return tuple(out)


def _render_fee(value: Any) -> Fraction:
    return as_rate(value, "render_fee")


def _demand(value: Any) -> float | tuple[float, ...]:
    if isinstance(value, Sequence) and not isinstance(value, str):
        return tuple(float(v) for v in value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidSimulationError("demand", value, "must be a number or a sequence of them")
    return float(value)


def _nonneg(field: str) -> Callable[[Any, Any, Any], None]:
    def check(_: Any, __: Any, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidSimulationError(field, value, "must be an int >= 0")

    return check


def _sample_rate(value: Any) -> Fraction:
    return as_rate(value, "sample_rate")


def _penalty(value: Any) -> PenaltyPolicy:
    if not isinstance(value, PenaltyPolicy):
        raise InvalidSimulationError("penalty", value, "must be a PenaltyPolicy")
    return value


@attrs.frozen(kw_only=True)
class AuditPolicy:
    """Who is audited each epoch, what an audit checks, and what failing one costs.

    Each epoch, after settlement, ``ceil(sample_rate x n)`` of the ``n`` providers that
    offered capacity are drawn without replacement, weighted by the GPUs they offered
    (`auction.reputation.audit.audit_sample`, seeded by ``(seed, the simulation's seed)`` and
    the epoch, so the draw is reproducible and verifiable). An audit checks delivery: a
    provider fails it when one of its leases failed in the epoch (its GPUs went down, see
    `simulate`'s ``reliability``), and passes otherwise. A failure slashes the share of
    `stake` that `penalty` (an `auction.settlement.penalties.PenaltyPolicy`) sets for
    `Outcome.AUDIT_FAILED`, to its ``slash_to`` (the treasury by default; reported as
    `SimulationResult.slashed`, apart from fees), and leaves the provider's offers out of the
    next `exclude_epochs` epochs. With a
    reputation model, every audit is an event (``audit_passed`` or ``audit_failed``).

    Attributes:
        sample_rate: share of providers audited per epoch, in [0, 1] (0: no audits).
        checks: what the system checks, in words (for the preset's table).
        penalty: refund and slash shares per outcome (`PenaltyPolicy`, Aethir's by default).
        stake: the stake base each provider posts when first seen (smallest units of the
            design's currency), which slashes take from; 0: nothing to slash.
        exclude_epochs: epochs a provider that failed an audit may not offer (0: none).
        seed: the audit's seed text (the auditor's, not the market's).
    """

    sample_rate: Fraction = attrs.field(default=Fraction(0), converter=_sample_rate)
    checks: str = "delivery: a provider whose lease failed in the epoch fails"
    penalty: PenaltyPolicy = attrs.field(factory=PenaltyPolicy, converter=_penalty)
    stake: int = attrs.field(default=0, validator=_nonneg("stake"))
    exclude_epochs: int = attrs.field(default=0, validator=_nonneg("exclude_epochs"))
    seed: str = "audit"

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.checks, str) or not isinstance(self.seed, str) or not self.seed:
            bad = ("checks", self.checks) if not isinstance(self.checks, str) else (
                "seed", self.seed)
            raise InvalidSimulationError(bad[0], bad[1], "must be a (non-empty) str")

    def sample_size(self, providers: int) -> int:
        """How many of `providers` are audited in an epoch: ``ceil(sample_rate x n)``."""
        r = self.sample_rate
        return -(-r.numerator * providers // r.denominator)


def _audit(value: Any) -> AuditPolicy | None:
    if value is None or isinstance(value, AuditPolicy):
        return value
    raise InvalidSimulationError("audit", value, "must be an AuditPolicy or None")


@attrs.frozen(kw_only=True)
class Design:
    """One protocol design: how orders clear and how money and tokens move.

    Attributes:
        mechanism: a registry name or a `Mechanism` instance.
        payment: the mechanism's payment rule (None: its default).
        options: further options for the mechanism's constructor.
        currency: what tenants pay in (`Payment.LEASE`) or what jobs are priced in
            (`Payment.RENDER`): prices in the orders are in its smallest units.
        fees: take rates on lease payments (`Payment.LEASE`).
        settle: `Payment.LEASE` or `Payment.RENDER`.
        render_fee: the share of a Render burn kept as a fee (5%).
        token: the protocol token's currency code.
        token_price: the token's oracle price (base `token`, quote `currency`): one
            `OraclePrice`, one per epoch, or a function of the epoch. Needed by
            `Payment.RENDER`; otherwise only reported.
        genesis_supply: tokens that exist before epoch 0, held by the ``MARKET`` account
            (where `Payment.RENDER` tenants buy what they burn).
        emission: tokens minted per epoch: an `EmissionSchedule`, or a `DemandController`
            that sets each epoch's issuance from the previous epoch's revenue (in `currency`
            units), starting at `initial_issuance`. None: no emission.
        initial_issuance: a controller's issuance in epoch 0.
        rewards: how the emission pool is split among providers each epoch.
        gpu_power: weight per GPU model for rewards (models not listed weigh 1).
        reputation: a reputation model (or its name) scoring providers from the leases they
            completed or failed; each epoch's market then uses the scores (for requests'
            ``min_reputation`` and, with `quality_weight`, as quality in a scoring auction).
            None: no reputation (requests that need some are not served).
        quality_weight: what a reputation of 1 is worth per GPU-hour, in `currency` units
            (0: price-only clearing).
        audit: the audit policy (`AuditPolicy`); None: no audits.
    """

    mechanism: str | Mechanism = "first-price"
    payment: str | None = None
    options: Mapping[str, Any] = attrs.field(factory=dict, converter=dict)
    currency: str = "USDC"
    fees: FeeSchedule = attrs.field(factory=FeeSchedule, converter=_fees)
    settle: Payment = attrs.field(default=Payment.LEASE, converter=_payment)
    render_fee: Fraction = attrs.field(default=RENDER_FEE_RATE, converter=_render_fee)
    token: str = "TOKEN"
    token_price: OraclePrice | Sequence[OraclePrice] | Callable[[int], OraclePrice] | None = None
    genesis_supply: int = attrs.field(default=0, validator=_nonneg("genesis_supply"))
    emission: EmissionSchedule | DemandController | None = attrs.field(
        default=None, converter=_schedule
    )
    initial_issuance: int = attrs.field(default=0, validator=_nonneg("initial_issuance"))
    rewards: Rewards = attrs.field(default=Rewards.WORK, converter=_rewards)
    gpu_power: tuple[tuple[str, int], ...] = attrs.field(default=None, converter=_power)
    reputation: ReputationModel | str | None = None
    quality_weight: int = attrs.field(default=0, validator=_nonneg("quality_weight"))
    audit: AuditPolicy | None = attrs.field(default=None, converter=_audit)

    def __attrs_post_init__(self) -> None:
        if self.settle is Payment.RENDER and self.token_price is None:
            raise InvalidSimulationError(
                "token_price", None, "Render payments convert at the token's price: give one"
            )
        if not isinstance(self.mechanism, str) and (self.payment is not None or self.options):
            raise InvalidSimulationError(
                "mechanism", self.mechanism,
                "is an instance: give its payment rule and options when building it",
            )
        if self.quality_weight and self.reputation is None:
            raise InvalidSimulationError(
                "quality_weight", self.quality_weight, "scores quality by reputation: give one"
            )

    def price_at(self, epoch: int) -> OraclePrice | None:
        """The token's oracle price in `epoch`."""
        p = self.token_price
        if p is None or isinstance(p, OraclePrice):
            return p
        out = p(epoch) if callable(p) else p[min(epoch, len(p) - 1)]
        if not isinstance(out, OraclePrice):
            raise InvalidSimulationError(f"token_price[{epoch}]", out, "must be an OraclePrice")
        if out.base != self.token or out.quote != self.currency:
            raise InvalidSimulationError(
                f"token_price[{epoch}]", out,
                f"must price {self.token} in {self.currency} (base {self.token})",
            )
        return out


#: Arrival numbers an `ExampleFlow` with patience gives each epoch (more than it can post).
ARRIVALS_PER_EPOCH = 1_000_000


@attrs.frozen(kw_only=True)
class ExampleFlow:
    """The demo's market, epoch after epoch.

    Every epoch the example's providers offer the same capacity (`auction.demo.example_book`'s
    offers), and tenants post about ``240 x demand`` new requests drawn like the example's
    (1 to 336 hours long), with ids ``e{epoch}-req-NNNN``. With ``patience=k`` a tenant
    whose request is not served keeps it open for up to `k` more epochs (`simulate` carries
    it over), and requests arrive in time: request ``i`` of epoch ``e`` has ``submitted_at =
    e x ARRIVALS_PER_EPOCH + i``, so a waiting request is ahead of later ones in every
    arrival-order (FIFO) rule. With ``exchange=True`` the orders
    are traded as a call market, as in `auction.demo.example_exchange_book` (divisible requests
    pinned to one GPU model and region, no tags), which bulk mechanisms (`lp`, the double
    auctions, `assignment` with ``shape="shared"``) clear.

    Attributes:
        seed: seeds the providers; requests come from the simulation's per-epoch generator.
        demand: requests per epoch as a multiple of the example's 240: one number, or one per
            epoch (the last repeats), to model a demand ramp or a shock.
        exchange: post the orders as a call market.
        patience: epochs an unserved request waits for GPUs before its tenant gives up
            (0: requests not served in their epoch are dropped, and every epoch's arrivals
            count from 0).
    """

    seed: int = 0
    demand: float | tuple[float, ...] = attrs.field(default=1.0, converter=_demand)
    exchange: bool = False
    patience: int = attrs.field(default=0, validator=_nonneg("patience"))

    def __attrs_post_init__(self) -> None:
        values = self.demand if isinstance(self.demand, tuple) else (self.demand,)
        if not values or any(not 0 <= float(v) <= 100 for v in values):
            raise InvalidSimulationError("demand", self.demand, "must be in [0, 100]")

    def offers(self) -> list[Offer]:
        """The providers' offers, the same every epoch."""
        return list(_example_offers(self.seed, self.exchange))

    def __call__(self, epoch: int, rng: np.random.Generator) -> list[Order]:
        d = self.demand
        level = d[min(epoch, len(d) - 1)] if isinstance(d, tuple) else d
        n = round(_N_REQUESTS * float(level))
        start = epoch * ARRIVALS_PER_EPOCH if self.patience else 0
        requests: list[Order] = [
            _request(i, rng, rid=f"e{epoch}-req-{i + 1:04d}", submitted_at=start + i)
            for i in range(n)
        ]
        if self.exchange:
            requests = [_as_exchange(r, rng) for r in requests]
        return [*self.offers(), *requests]


@functools.lru_cache(maxsize=8)
def _example_offers(seed: int, exchange: bool) -> tuple[Offer, ...]:
    offers = [o for o in example_book(seed) if isinstance(o, Offer)]
    if exchange:
        offers = [attrs.evolve(o, tags=frozenset()) for o in offers]
    return tuple(offers)


def _ints(values: Sequence[int]) -> npt.NDArray[Any]:
    """int64 when every value fits, else an object array of Python ints."""
    if all(-MAX_MONEY <= v <= MAX_MONEY for v in values):
        return np.array(values, dtype=np.int64)
    return np.array(values, dtype=object)


@attrs.frozen(kw_only=True, eq=False)
class SimulationResult:
    """Per-epoch arrays of a simulation (one entry per epoch unless stated).

    Money is in smallest units: `currency` for revenue and income, `token` for burns, mints,
    supply and rewards; int64 arrays (object arrays of Python ints if an amount exceeds int64).

    Attributes:
        design: the design simulated.
        epoch_hours: hours per epoch.
        status: the clearing status of each epoch.
        requests, served: requests in the epoch's book (posted, or still waiting), and
            requests that got at least one GPU.
        leases: leases opened; failures: leases that ended early (provider failure).
        offered_gpu_hours: GPU-hours of capacity in the epoch: per offer, the GPUs posted, or
            the GPUs earlier leases still hold on it if more (a running lease keeps its GPUs
            whether or not the offer is posted again).
        served_gpu_hours: GPU-hours leased and delivered in the epoch (from this epoch's
            and earlier leases); never more than `offered_gpu_hours`.
        utilization: ``served_gpu_hours / offered_gpu_hours`` (0 when nothing is offered).
        revenue: what tenants paid for the epoch's hours, fees included (`currency`).
        protocol_revenue: fees and margins the protocol kept (`currency`).
        token_fees: tokens the protocol kept from Render burns.
        burned, minted: tokens burned and minted.
        supply: token supply at the end of each epoch; `initial_supply` before epoch 0.
        supply identity: ``supply[e] = supply[e - 1] + minted[e] - burned[e]`` holds exactly.
        providers: every provider seen, sorted; columns of the two arrays below.
        provider_income: shape (epochs, providers): what each provider received from
            tenants, after fees (`currency`).
        provider_rewards: shape (epochs, providers): tokens each provider got from the
            emission.
        prices: the token's oracle price per epoch (None where there is none).
        lease_log: every lease opened, in order, with how it ended.
        ledger: the ledger every amount moved on.
        reputation: the reputation book (None without a reputation model).
        waiting: requests carried into the epoch's book from earlier epochs (`simulate`'s
            ``patience``); they count in `requests` too.
        audited, audit_failures: providers audited, and those that failed (`AuditPolicy`).
        slashed: stake slashed for failed audits (`currency`), wherever it goes; neither in
            `revenue` nor in `protocol_revenue` (tenants did not pay it).
    """

    design: Design
    epoch_hours: int
    status: tuple[str, ...]
    requests: IntArray
    served: IntArray
    leases: IntArray
    failures: IntArray
    offered_gpu_hours: IntArray
    served_gpu_hours: IntArray
    revenue: npt.NDArray[Any]
    protocol_revenue: npt.NDArray[Any]
    token_fees: npt.NDArray[Any]
    burned: npt.NDArray[Any]
    minted: npt.NDArray[Any]
    supply: npt.NDArray[Any]
    initial_supply: int
    providers: tuple[str, ...]
    provider_income: npt.NDArray[Any]
    provider_rewards: npt.NDArray[Any]
    prices: tuple[OraclePrice | None, ...]
    lease_log: tuple[LeaseRecord, ...]
    ledger: Ledger
    reputation: ReputationBook | None
    audited: IntArray = attrs.field(factory=lambda: np.zeros(0, dtype=np.int64))
    audit_failures: IntArray = attrs.field(factory=lambda: np.zeros(0, dtype=np.int64))
    slashed: npt.NDArray[Any] = attrs.field(factory=lambda: np.zeros(0, dtype=np.int64))
    waiting: IntArray = attrs.field(factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def epochs(self) -> int:
        """Number of epochs simulated."""
        return len(self.status)

    @property
    def utilization(self) -> FloatArray:
        """Served over offered GPU-hours per epoch."""
        offered = self.offered_gpu_hours.astype(np.float64)
        served = self.served_gpu_hours.astype(np.float64)
        return np.divide(served, offered, out=np.zeros_like(served), where=offered > 0)

    @property
    def fill_rate(self) -> FloatArray:
        """Share of each epoch's requests that were served."""
        posted = self.requests.astype(np.float64)
        got = self.served.astype(np.float64)
        return np.divide(got, posted, out=np.zeros_like(got), where=posted > 0)

    @property
    def income(self) -> npt.NDArray[Any]:
        """Total provider income per epoch (`currency`)."""
        out: npt.NDArray[Any] = self.provider_income.sum(axis=1)
        return out

    @property
    def rewards(self) -> npt.NDArray[Any]:
        """Total provider rewards per epoch (tokens)."""
        out: npt.NDArray[Any] = self.provider_rewards.sum(axis=1)
        return out

    def to_records(self) -> list[dict[str, Any]]:
        """One plain dict per epoch (Python ints and floats), for tables and DataFrames."""
        util, fill = self.utilization.tolist(), self.fill_rate.tolist()
        rows = []
        for e in range(self.epochs):
            price = self.prices[e]
            rows.append({
                "epoch": e,
                "status": self.status[e],
                "requests": int(self.requests[e]),
                "waiting": int(self.waiting[e]) if len(self.waiting) else 0,
                "served": int(self.served[e]),
                "fill_rate": fill[e],
                "leases": int(self.leases[e]),
                "failures": int(self.failures[e]),
                "offered_gpu_hours": int(self.offered_gpu_hours[e]),
                "served_gpu_hours": int(self.served_gpu_hours[e]),
                "utilization": util[e],
                "revenue": int(self.revenue[e]),
                "protocol_revenue": int(self.protocol_revenue[e]),
                "provider_income": int(self.income[e]),
                "token_fees": int(self.token_fees[e]),
                "burned": int(self.burned[e]),
                "minted": int(self.minted[e]),
                "supply": int(self.supply[e]),
                "provider_rewards": int(self.rewards[e]),
                "audited": int(self.audited[e]) if len(self.audited) else 0,
                "audit_failures": int(self.audit_failures[e]) if len(self.audit_failures) else 0,
                "slashed": int(self.slashed[e]) if len(self.slashed) else 0,
                "token_price": None if price is None else price.price,
            })
        return rows

    def totals(self) -> dict[str, int]:
        """Sums over all epochs, exact."""
        names = ("revenue", "protocol_revenue", "token_fees", "burned", "minted")
        out = {n: sum(int(x) for x in getattr(self, n)) for n in names}
        out["provider_income"] = sum(int(x) for x in self.income)
        out["provider_rewards"] = sum(int(x) for x in self.rewards)
        out["supply_change"] = (int(self.supply[-1]) if self.epochs else self.initial_supply) - (
            self.initial_supply
        )
        return out

    def plot(self, path: str | None = None) -> Figure:
        """Plot this run (see `plot`)."""
        return plot({"design": self}, path)


# -- the run -------------------------------------------------------------------------------------
@attrs.frozen
class LeaseRecord:
    """A lease a simulation opened, and how it ended.

    Attributes:
        lease: its terms (``start`` is its first hour, ``periods`` its length in hours).
        gpu_model: the model of the offer it runs on.
        stop: the first hour it did not serve: its end, or the hour its provider failed.
        failed: whether its provider failed before the end.
    """

    lease: Lease
    gpu_model: str
    stop: int
    failed: bool


def _stream(seed: int, epoch: int, what: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, epoch, what]))


def _reliability(value: float | Mapping[str, float], provider: str) -> float:
    if isinstance(value, Mapping):
        return float(value.get(provider, 1.0))
    return float(value)


def _check_reliability(value: float | Mapping[str, float]) -> None:
    items = value.items() if isinstance(value, Mapping) else [("reliability", value)]
    for name, p in items:
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0 <= p <= 1:
            field = name if name == "reliability" else f"reliability[{name!r}]"
            raise InvalidSimulationError(field, p, "must be a probability in [0, 1]")


def _split_orders(orders: Iterable[Order], epoch: int) -> tuple[list[Offer], list[Request]]:
    offers: list[Offer] = []
    requests: list[Request] = []
    if not isinstance(orders, Iterable):
        raise InvalidSimulationError(f"flow({epoch})", orders, "must return orders (a list)")
    for o in orders:
        if isinstance(o, Offer):
            offers.append(o)
        elif isinstance(o, Request):
            requests.append(o)
        else:
            raise InvalidSimulationError(f"flow({epoch})", o, "must yield Offer or Request")
    return offers, requests


def simulate(
    flow: OrderFlow,
    design: Design | None = None,
    *,
    epochs: int,
    epoch_hours: int = 24,
    seed: int = 0,
    reliability: float | Mapping[str, float] = 1.0,
    executor: Any = None,
    patience: int | None = None,
    on_clear: Callable[[int, Sequence[Order], Market, ClearingResult], None] | None = None,
) -> SimulationResult:
    """Run `design` on the orders of `flow` for `epochs` epochs.

    Each epoch, in this order:

    1. **orders**: `flow` posts offers and requests; GPUs of an offer still leased from
       earlier epochs are taken off it. Requests still waiting from earlier epochs (see
       `patience`) join the new ones; a new request with a waiting one's id replaces it.
    2. **clearing**: the mechanism clears the epoch's market (with reputation scores, if the
       design has a model); each allocated row becomes a lease starting at the epoch's first
       hour and lasting its request's ``duration_hours``.
    3. **failures**: a lease runs to its end with probability `reliability` (one number, or
       per provider, default 1); otherwise its provider fails at an hour drawn uniformly in
       its life, the lease ends there and is recorded as a failure.
    4. **settlement**: under `Payment.LEASE` each tenant deposits its lease's whole cost in
       escrow, failed leases are terminated (unused escrow refunded) and every lease accrues
       through the epoch's last hour; under `Payment.RENDER` each tenant buys and burns the
       value of the hours it used this epoch.
    5. **emission**: the epoch's emission is minted into the emissions pool, and the pool is
       split among providers by work or availability (largest remainder). When no provider
       has weight, the pool carries over.

    Randomness comes from per-epoch generators seeded by ``(seed, epoch)``, so a run is
    reproducible and changing one epoch's draws does not shift the others.

    With an `executor` (any `concurrent.futures.Executor`, an initialised ``ray`` or a Dask
    ``Client``), each epoch's market is cleared part by part on it (`auction.clear` with
    ``executor=``; see docs/scale-out.md); epochs stay in order, since each depends on the last.

    `on_clear(epoch, orders, market, result)`, if given, is called after each epoch's clearing
    with the orders the mechanism saw (offers cut to their free GPUs, waiting requests
    included), the `Market` built from them and the `ClearingResult`: `auction.compare`
    measures welfare against the exact optimum of that same market with it.

    `patience`: epochs a request that got no GPUs stays in the book after the epoch it was
    posted in (None: the flow's ``patience`` attribute, 0 if it has none: unserved requests
    are dropped). A request served in part is not carried over. ``requests`` and
    ``fill_rate`` then count every request in the book, waiting ones included
    (``waiting`` counts those).

    Raises:
        InvalidSimulationError: a bad argument or flow output.
        InsufficientFundsError: Render tenants need more tokens than the market holds
            (raise `Design.genesis_supply`).
    """
    design = Design() if design is None else design
    if not isinstance(design, Design):
        raise InvalidSimulationError("design", design, "must be a Design")
    for field, value, lo in (("epochs", epochs, 0), ("epoch_hours", epoch_hours, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < lo:
            raise InvalidSimulationError(field, value, f"must be an int >= {lo}")
    if not callable(flow):
        raise InvalidSimulationError("flow", flow, "must be callable(epoch, rng)")
    _check_reliability(reliability)
    wait = getattr(flow, "patience", 0) if patience is None else patience
    if isinstance(wait, bool) or not isinstance(wait, int) or wait < 0:
        raise InvalidSimulationError("patience", wait, "must be an int >= 0")
    if on_clear is not None and not callable(on_clear):
        raise InvalidSimulationError("on_clear", on_clear, "must be callable")
    sim = _Simulation(design, epoch_hours, seed, reliability, executor)
    sim.patience = wait
    sim.on_clear = on_clear
    return sim.run(flow, epochs)


class _Simulation:
    def __init__(
        self, design: Design, epoch_hours: int, seed: int,
        reliability: float | Mapping[str, float], executor: Any = None,
    ) -> None:
        self.d = design
        self.executor = executor
        self.h = epoch_hours
        self.seed = seed
        self.reliability = reliability
        self.ledger = Ledger()
        self.book = LeaseBook(self.ledger, fees=design.fees)
        self.rep = None if design.reputation is None else ReputationBook(design.reputation)
        self.power = dict(design.gpu_power)
        self.running: list[LeaseRecord] = []
        self.log: list[LeaseRecord] = []
        self.providers: set[str] = set()
        if design.genesis_supply:
            self.ledger.post(mint_transaction("genesis", _MARKET, design.token,
                                              design.genesis_supply, memo="genesis supply"))
        self.issuance = design.initial_issuance
        self.rows: dict[str, list[Any]] = {}
        self._render_revenue = 0
        self._slashed_to_platform = 0  # slashes on the fee accounts: not fees tenants paid
        #: provider -> the last epoch it may not offer in (a failed audit's exclusion)
        self.excluded: dict[str, int] = {}
        self.patience = 0
        self.on_clear: Callable[[int, Sequence[Order], Market, ClearingResult], None] | None = None
        #: unserved requests still waiting: id -> (request, the last epoch it waits in)
        self.waiting: dict[str, tuple[Request, int]] = {}

    def _add(self, **values: Any) -> None:
        for k, v in values.items():
            self.rows.setdefault(k, []).append(v)

    def run(self, flow: OrderFlow, epochs: int) -> SimulationResult:
        d, token, currency = self.d, self.d.token, self.d.currency
        initial_supply = self.ledger.supply(token)
        income: list[dict[str, int]] = []
        rewards: list[dict[str, int]] = []
        prices: list[OraclePrice | None] = []
        for e in range(epochs):
            price = d.price_at(e)
            prices.append(price)
            before = self._flows()
            paid_before = self._provider_balances(currency)
            got = self._epoch(e, flow, price, before["revenue"])
            after = self._flows()
            income.append(self._diff(self._provider_balances(currency), paid_before))
            rewards.append(got)
            self._add(
                revenue=after["revenue"] - before["revenue"],
                protocol_revenue=after["protocol"] - before["protocol"],
                token_fees=after["token_fees"] - before["token_fees"],
                burned=after["burned"] - before["burned"],
                minted=after["minted"] - before["minted"],
                supply=self.ledger.supply(token),
            )
        providers = tuple(sorted(self.providers))
        col = {p: i for i, p in enumerate(providers)}

        def matrix(rows: list[dict[str, int]]) -> npt.NDArray[Any]:
            flat = [0] * (epochs * len(providers))
            for e, row in enumerate(rows):
                for p, v in row.items():
                    flat[e * len(providers) + col[p]] = v
            return _ints(flat).reshape(epochs, len(providers))

        r = self.rows

        def ints(name: str) -> npt.NDArray[Any]:
            return _ints(r.get(name, []))

        return SimulationResult(
            design=d, epoch_hours=self.h, status=tuple(r.get("status", [])),
            requests=ints("requests"), served=ints("served"), leases=ints("leases"),
            failures=ints("failures"), offered_gpu_hours=ints("offered"),
            served_gpu_hours=ints("served_hours"), revenue=ints("revenue"),
            protocol_revenue=ints("protocol_revenue"), token_fees=ints("token_fees"),
            burned=ints("burned"), minted=ints("minted"), supply=ints("supply"),
            initial_supply=initial_supply, providers=providers,
            provider_income=matrix(income), provider_rewards=matrix(rewards),
            prices=tuple(prices), lease_log=tuple(self.log), ledger=self.ledger,
            reputation=self.rep, audited=ints("audited"), audit_failures=ints("audit_failures"),
            slashed=ints("slashed"), waiting=ints("waiting"),
        )

    # -- ledger readings ---------------------------------------------------------------------------
    def _flows(self) -> dict[str, int]:
        """Cumulative amounts the per-epoch arrays are differences of."""
        led, c, t = self.ledger, self.d.currency, self.d.token
        protocol = (led.total(AccountKind.PROTOCOL_FEES, c) + led.total(AccountKind.TREASURY, c)
                    - self._slashed_to_platform)
        return {
            "protocol": protocol,
            "revenue": led.total(AccountKind.PROVIDER, c) + protocol + self._render_revenue,
            "token_fees": led.total(AccountKind.PROTOCOL_FEES, t) if t != c else 0,
            "burned": led.burned(t),
            "minted": led.minted(t),
        }

    def _provider_balances(self, currency: str) -> dict[str, int]:
        kind = AccountKind.PROVIDER
        return {p: self.ledger.balance(Account(kind, p), currency) for p in self.providers}

    @staticmethod
    def _diff(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
        return {p: v - before.get(p, 0) for p, v in after.items() if v != before.get(p, 0)}

    # -- one epoch -----------------------------------------------------------------------------
    def _epoch(
        self, e: int, flow: OrderFlow, price: OraclePrice | None, revenue_before: int
    ) -> dict[str, int]:
        d, h = self.d, self.h
        t0, t1 = e * h, (e + 1) * h
        offers, requests = _split_orders(flow(e, _stream(self.seed, e, 0)), e)
        self.running = [r for r in self.running if r.stop > t0]
        busy: dict[tuple[str, str], int] = {}  # GPUs earlier leases hold, per (provider, offer)
        for run in self.running:
            key = (run.lease.provider, run.lease.offer_id)
            busy[key] = busy.get(key, 0) + run.lease.gpus
        capacity = dict(busy)
        offered_hours: dict[str, int] = {}
        model_of: dict[str, str] = {}
        free: list[Order] = []
        gpus_offered: dict[str, int] = {}
        for o in offers:
            if self.excluded.get(o.provider, -1) >= e:
                continue
            self._first_seen(o.provider)
            gpus_offered[o.provider] = gpus_offered.get(o.provider, 0) + o.gpus
            offered_hours[o.provider] = offered_hours.get(o.provider, 0) + (
                o.gpus * h * self.power.get(o.gpu_model, 1)
            )
            model_of[o.id] = o.gpu_model
            key = (o.provider, o.id)
            left = o.gpus - busy.get(key, 0)
            capacity[key] = max(o.gpus, busy.get(key, 0))
            if left > 0:
                free.append(o if left == o.gpus else attrs.evolve(o, gpus=left))
        new_ids = {r.id for r in requests}
        carried = [(r, until) for rid, (r, until) in sorted(self.waiting.items())
                   if until >= e and rid not in new_ids]
        book = [r for r, _ in carried] + requests
        free.extend(book)
        self._add(requests=len(book), waiting=len(carried), offered=sum(capacity.values()) * h)

        leases = self._clear(e, free)
        served_ids = {lease.request_id for lease in leases}
        self._add(leases=len(leases), served=len(served_ids))
        self.waiting = {}
        if self.patience:
            for r, until in [*carried, *((r, e + self.patience) for r in requests)]:
                if until > e and r.id not in served_ids:
                    self.waiting[r.id] = (r, until)
        fail = _stream(self.seed, e, 2)
        for lease in leases:
            assert lease.periods is not None
            stop, failed = lease.start + lease.periods, False
            if fail.random() >= _reliability(self.reliability, lease.provider):
                stop, failed = lease.start + int(fail.integers(lease.periods)), True
            record = LeaseRecord(lease, model_of.get(lease.offer_id, ""), stop, failed)
            self.running.append(record)
            self.log.append(record)
        # Every lease still running ends after t0 (or is new and may fail at once): those
        # with stop <= t1 end in this epoch.
        self._add(failures=sum(r.failed and r.stop <= t1 for r in self.running))

        if d.settle is Payment.LEASE:
            self._settle_leases(e, leases, t0, t1)
        else:
            assert price is not None
            self._settle_render(e, t0, t1, price)
        self._record_reputation(t1)
        self._audit(e, t1, gpus_offered)

        served_hours = 0
        work: dict[str, int] = {}
        for run in self.running:
            lo, hi = max(run.lease.start, t0), min(run.stop, t1)
            if hi > lo:
                g = run.lease.gpus * (hi - lo)
                served_hours += g
                p = run.lease.provider
                work[p] = work.get(p, 0) + g * self.power.get(run.gpu_model, 1)
        self._add(served_hours=served_hours)
        weights = work if d.rewards is Rewards.WORK else offered_hours
        return self._emit(e, weights, self._flows()["revenue"] - revenue_before)

    def _clear(self, e: int, orders: list[Order]) -> list[Lease]:
        d = self.d
        book = OrderBook(orders)
        if self.rep is None:
            market = Market(book)
        else:
            scores = self.rep.scores(at=float(e * self.h * _SECONDS_PER_HOUR))
            market = Market(book, scores, quality_weight=d.quality_weight)
        if isinstance(d.mechanism, str):
            result = clear(market, d.mechanism, d.payment, rng=_stream(self.seed, e, 1),
                           executor=self.executor, **d.options)
        else:
            result = clear(market, d.mechanism, rng=_stream(self.seed, e, 1),
                           executor=self.executor)
        self._add(status=str(result.status.value))
        if self.on_clear is not None:
            self.on_clear(e, orders, market, result)
        if not len(result.request_id):
            return []
        return leases_from_result(result, d.currency, period=HOUR, start=e * self.h,
                                  prefix=f"{e}:")

    def _settle_leases(self, e: int, leases: list[Lease], t0: int, t1: int) -> None:
        book, currency = self.book, self.d.currency
        costs = [book.cost(lease) for lease in leases]
        need: dict[str, int] = {}
        for lease, cost in zip(leases, costs, strict=True):
            need[lease.tenant] = need.get(lease.tenant, 0) + cost
        self.ledger.post_many(
            transfer(f"fund:{e}:{t}", _ISSUANCE, Account(AccountKind.TENANT, t), currency, x,
                     memo="tenant deposit")
            for t, x in sorted(need.items()) if x
        )
        book.open_many(leases, costs, time=t0)
        for run in self.running:
            if run.failed and run.stop <= t1:
                book.terminate(run.lease.id, run.stop)
        book.accrue_all(t1 - 1)

    def _settle_render(self, e: int, t0: int, t1: int, price: OraclePrice) -> None:
        """Each tenant buys and burns the value of the hours it used in the epoch."""
        value: dict[str, int] = {}
        for run in self.running:
            lo, hi = max(run.lease.start, t0), min(run.stop, t1)
            if hi > lo:
                t = run.lease.tenant
                value[t] = value.get(t, 0) + run.lease.rate * (hi - lo)
        txs: list[Transaction] = []
        for t, v in sorted(value.items()):
            if not v:
                continue
            burn = render_burn(v, price, fee_rate=self.d.render_fee)
            tenant = Account(AccountKind.TENANT, t)
            txs.append(transfer(f"buy:{e}:{t}", _MARKET, tenant, self.d.token, burn.paid,
                                memo=f"buys tokens worth {v} {self.d.currency}"))
            txs.append(render_burn_transaction(f"burn:{e}:{t}", burn, tenant=tenant))
            self._render_revenue += v
        self.ledger.post_many(txs)

    def _first_seen(self, provider: str) -> None:
        """Note a provider; the first time, it posts the audit policy's stake."""
        if provider in self.providers:
            return
        self.providers.add(provider)
        audit = self.d.audit
        if audit is not None and audit.stake:
            self.ledger.post(transfer(
                f"stake:{provider}", _ISSUANCE, Account(AccountKind.PROVIDER_STAKE, provider),
                self.d.currency, audit.stake, memo="provider stake (audit policy)"))

    def _audit(self, e: int, t1: int, gpus: dict[str, int]) -> None:
        """Draw the epoch's audits (`AuditPolicy`); a provider whose lease failed in the
        epoch fails: reputation event, slash, exclusion."""
        a = self.d.audit
        audited = caught = slashed = 0
        k = 0 if a is None else min(a.sample_size(len(gpus)), sum(g > 0 for g in gpus.values()))
        if a is not None and k:
            providers = sorted(gpus)
            sample = audit_sample(f"{a.seed}:{self.seed}", e, providers,
                                  [gpus[p] for p in providers], k)
            failed: dict[str, LeaseRecord] = {}
            for run in self.running:  # this epoch's failures (as in `failures`)
                if run.failed and run.stop <= t1:
                    failed.setdefault(run.lease.provider, run)
            events = []
            share = a.penalty.share(Outcome.AUDIT_FAILED)
            currency = self.d.currency
            for p in sorted(sample):
                bad = failed.get(p)
                outcome = Outcome.AUDIT_FAILED if bad is not None else Outcome.AUDIT_PASSED
                events.append(Event(id=f"audit:{e}:{p}", provider=p,
                                    time=float(t1 * _SECONDS_PER_HOUR), outcome=outcome))
                audited += 1
                if bad is None:
                    continue
                caught += 1
                if a.exclude_epochs:
                    self.excluded[p] = e + a.exclude_epochs
                stake = Account(AccountKind.PROVIDER_STAKE, p)
                amount = min(fee_of(a.stake, share), self.ledger.balance(stake, currency))
                if amount:
                    target = a.penalty.slash_to
                    to = (Account(AccountKind.TENANT, bad.lease.tenant) if target == "tenant"
                          else target)
                    assert isinstance(to, Account)
                    self.ledger.post(transfer(f"slash:{e}:{p}", stake, to, currency, amount,
                                              time=t1, memo=f"failed audit, epoch {e}"))
                    slashed += amount
                    if to.kind in (AccountKind.TREASURY, AccountKind.PROTOCOL_FEES):
                        self._slashed_to_platform += amount
            if self.rep is not None:
                self.rep.record_many(events)
        self._add(audited=audited, audit_failures=caught, slashed=slashed)

    def _record_reputation(self, t1: int) -> None:
        """A completed or failed event for each lease that ends in the epoch."""
        if self.rep is None:
            return
        events = []
        for run in self.running:
            lease = run.lease
            if run.stop > t1:
                continue
            outcome = "failed" if run.failed else "completed"
            events.append(Event(
                id=f"{lease.id}:{outcome}", provider=lease.provider,
                time=float(run.stop * _SECONDS_PER_HOUR), outcome=outcome,
                weight=float(lease.gpus * max(run.stop - lease.start, 1)), tenant=lease.tenant,
            ))
        self.rep.record_many(sorted(events, key=lambda ev: (ev.time, ev.id)))

    def _emit(self, e: int, weights: dict[str, int], revenue: int) -> dict[str, int]:
        """Mint the epoch's emission into the pool and split the pool among providers."""
        d = self.d
        emission = d.emission
        if emission is None:
            return {}
        if isinstance(emission, DemandController):
            amount = self.issuance
            self.issuance = emission.next_issuance(amount, max(revenue, 0))
        else:
            amount = emission.emission(e)
        if amount:
            self.ledger.post(mint_transaction(f"emit:{e}", _POOL, d.token, amount,
                                              memo=f"epoch {e} emission"))
        pool = self.ledger.balance(_POOL, d.token)
        live = {p: w for p, w in weights.items() if w > 0}
        if not pool or not live:
            return {}
        shares = split_rewards(pool, live)
        self.ledger.post(reward_transaction(f"rewards:{e}", shares, currency=d.token))
        return {p: s for p, s in shares.items() if s}


# -- comparing designs ----------------------------------------------------------------------------
def compare(results: Mapping[str, SimulationResult]) -> list[dict[str, Any]]:
    """One row of totals per named run: revenue, protocol revenue, provider income and
    rewards, burned, minted, supply change, mean utilization and fill rate."""
    if not isinstance(results, Mapping):
        raise InvalidSimulationError("results", results, "must map names to SimulationResults")
    rows = []
    for name, r in results.items():
        if not isinstance(r, SimulationResult):
            raise InvalidSimulationError(f"results[{name!r}]", r, "must be a SimulationResult")
        row: dict[str, Any] = {"design": name, **r.totals()}
        row["utilization"] = float(r.utilization.mean()) if r.epochs else 0.0
        row["fill_rate"] = float(r.fill_rate.mean()) if r.epochs else 0.0
        rows.append(row)
    return rows


_PANELS = (
    ("revenue", "tenant revenue", "currency"),
    ("utilization", "utilization", ""),
    ("income", "provider income", "currency"),
    ("rewards", "provider rewards", "token"),
    ("burned", "burned", "token"),
    ("minted", "minted", "token"),
    ("supply", "supply", "token"),
)


def plot(results: Mapping[str, SimulationResult], path: str | None = None) -> Figure:
    """Per-epoch panels (revenue, utilization, provider income and rewards, burn, mint,
    supply), one line per named run, to compare designs. Needs the ``plot`` extra
    (matplotlib); draws on a standalone `Figure`, so no GUI backend or global pyplot state
    is involved. Saves a PNG to `path` when given; returns the figure."""
    try:
        from matplotlib.figure import Figure
    except ImportError as e:  # pragma: no cover - depends on the environment
        from auction.errors import MissingDependencyError

        raise MissingDependencyError("plotting", "matplotlib",
                                     "pip install 'auction[plot]'") from e
    if not isinstance(results, Mapping) or not results:
        raise InvalidSimulationError("results", results, "must name at least one run")
    from matplotlib.ticker import MaxNLocator

    rows = (len(_PANELS) + 1) // 2
    fig = Figure(figsize=(11, 2.4 * rows))
    grid = fig.subplots(rows, 2, sharex=True).ravel()
    for ax in grid[len(_PANELS):]:
        ax.set_visible(False)
    for name, r in results.items():
        x = np.arange(r.epochs)
        for ax, (attr, title, unit) in zip(grid, _PANELS, strict=False):
            ax.plot(x, np.asarray(getattr(r, attr), dtype=np.float64), label=name)
            label = {"currency": r.design.currency, "token": r.design.token}.get(unit, "")
            ax.set_title(f"{title} ({label} units)" if label else title, fontsize=9)
    for ax in grid:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=8)
    grid[0].legend(fontsize=8)
    for ax in grid[len(_PANELS) - 2 : len(_PANELS)]:
        ax.set_xlabel("epoch", fontsize=8)
        ax.xaxis.set_tick_params(labelbottom=True)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig
