"""Akash: a per-order reverse auction with a bid window, a bid cap, deposits, provider pricing
strategies and the tenant's choice of bid; lazy escrow.

Sources (github.com/akash-network): node ``x/market/handler/server.go`` (a bid only on an open
order, never above its max price, the count check ``count > OrderMaxBids`` counts closed
bids too), chain-sdk ``market/v1beta5/params.go`` (``OrderMaxBids`` 20, bid deposit 0.5 of the
denomination), provider ``bidengine/pricing.go`` (linear scale per resource, GPU-model price
map with fallbacks, random range, external script), ``x/escrow`` (rate per block settled on
withdraw, deposit or close; overdrawn accounts close the lease), and the provider's reclamation
notice of 1 to 720 hours. The chain never picks a bid: the tenant's client does (cheapest by
default).

Here each request is one order, cleared in arrival order (submitted_at, id); every provider
whose offer may serve the whole order and has room bids; its bid is the larger of its ask and
its pricing strategy's price, and is placed only at or under the order's max price, within the
bid window, and while the order has fewer than ``max_bids`` bids (``prior_bids`` counts those
already placed, closed ones included). The tenant's selection rule picks one bid; it pays that
bid (pay-as-bid); losing bids are closed and their deposits returned.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from fractions import Fraction
from typing import Any, ClassVar

import attrs
import numpy as np

from auction.errors import InvalidOptionError, InvalidValueError
from auction.limits import Deadline
from auction.market import Market
from auction.mechanisms import MechanismBase, MechanismTags, options
from auction.presets import _core
from auction.presets._core import Fill, eligible_offers, nonneg_int
from auction.result import ClearingResult, FrozenDict

__all__ = [
    "AKASH_BID_DEPOSIT",
    "AKASH_MAX_BIDS",
    "AkashAuction",
    "AllowList",
    "AskPricing",
    "Bid",
    "EscrowAccount",
    "LinearPricing",
    "ModelPrices",
    "RandomRange",
    "ReputationWeighted",
]

#: ``OrderMaxBids`` default (chain-sdk ``market/v1beta5/params.go``).
AKASH_MAX_BIDS = 20
#: Least bid deposit: 0.5 of the native token, in its smallest unit (uakt).
AKASH_BID_DEPOSIT = 500_000


@attrs.frozen
class Bid:
    """A provider's bid on an order: the offer row, provider, price per GPU-hour, position
    in arrival order, and the provider's reputation."""

    offer_row: int
    provider: str
    price: int
    position: int
    reputation: float


# -- provider pricing strategies (bidengine/pricing.go) ---------------------------------------
@attrs.frozen
class AskPricing:
    """Bid the offer's ask."""

    randomized: ClassVar[bool] = False

    def __call__(self, market: Market, o: int, r: int, rng: np.random.Generator | None) -> int:
        return int(market.snapshot.offers.price[o])


@attrs.frozen
class LinearPricing:
    """Scale per resource unit: ``per_gpu + per_vram_gb x VRAM`` per GPU-hour (the stock
    strategy's linear scale, here for the GPU resources an order rents)."""

    per_gpu: int = 0
    per_vram_gb: int = 0
    randomized: ClassVar[bool] = False

    def __call__(self, market: Market, o: int, r: int, rng: np.random.Generator | None) -> int:
        return self.per_gpu + self.per_vram_gb * int(market.snapshot.offers.vram_gb[o])


@attrs.frozen
class ModelPrices:
    """A price per GPU model, and `fallback` for models not listed (None: no bid)."""

    prices: Mapping[str, int] = attrs.field(converter=FrozenDict, hash=False)
    fallback: int | None = None
    randomized: ClassVar[bool] = False

    def __call__(self, market: Market, o: int, r: int,
                 rng: np.random.Generator | None) -> int | None:
        snap = market.snapshot
        return self.prices.get(snap.models[int(snap.offers.gpu_model[o])], self.fallback)


@attrs.frozen
class RandomRange:
    """A price drawn uniformly from [low, high] (from the clearing's rng)."""

    low: int
    high: int
    randomized: ClassVar[bool] = True

    def __attrs_post_init__(self) -> None:
        if not 0 <= self.low <= self.high:
            raise InvalidValueError("high", self.high, f"must be >= low ({self.low}) >= 0")

    def __call__(self, market: Market, o: int, r: int, rng: np.random.Generator | None) -> int:
        g = rng if rng is not None else np.random.default_rng(0)
        return int(g.integers(self.low, self.high, endpoint=True))


# -- tenant bid selection ----------------------------------------------------------------------
def _providers(names: Iterable[str]) -> frozenset[str]:
    """`AllowList`'s converter, typed so that callers may pass any iterable of names."""
    return frozenset(names)


@attrs.frozen
class AllowList:
    """Only bids of these providers; the cheapest of them (then the earliest)."""

    providers: frozenset[str] = attrs.field(converter=_providers)

    def __call__(self, bids: Sequence[Bid]) -> int | None:
        ok = [i for i, b in enumerate(bids) if b.provider in self.providers]
        return min(ok, key=lambda i: (bids[i].price, bids[i].position)) if ok else None


@attrs.frozen
class ReputationWeighted:
    """The bid with the least ``price x (1 - weight x reputation)`` (then the earliest)."""

    weight: Fraction = attrs.field(default=Fraction(1, 2), converter=Fraction)

    def __call__(self, bids: Sequence[Bid]) -> int | None:
        if not bids:
            return None

        def key(i: int) -> tuple[Fraction, int]:
            rep = Fraction(repr(bids[i].reputation))
            return bids[i].price * (1 - self.weight * rep), bids[i].position

        return min(range(len(bids)), key=key)


def _cheapest(bids: Sequence[Bid]) -> int | None:
    return min(range(len(bids)), key=lambda i: (bids[i].price, bids[i].position)) \
        if bids else None


def _first(bids: Sequence[Bid]) -> int | None:
    return 0 if bids else None


_SELECTIONS: dict[str, Callable[[Sequence[Bid]], int | None]] = {
    "cheapest": _cheapest, "first": _first,
}


def _check_pricing(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not callable(value):
        raise InvalidOptionError("pricing", value, "must be a pricing strategy: AskPricing(), "
                                 "LinearPricing(...), ModelPrices(...), RandomRange(...) or "
                                 "a callable(market, offer_row, request_row, rng)",
                                 mechanism="akash-auction")


def _check_selection(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not (value in _SELECTIONS or (callable(value) and not isinstance(value, str))):
        raise InvalidOptionError("selection", value, "must be 'cheapest', 'first', "
                                 "AllowList(...), ReputationWeighted(...) or a callable(bids)",
                                 mechanism="akash-auction")


@attrs.frozen
class AkashAuction(MechanismBase):
    """Akash's per-order reverse auction: bids, a cap, the tenant's pick, pay-as-bid.

    Objective: none global; orders clear one by one in arrival order and each takes the bid
    its tenant's selection rule picks.

    A divisible request is served like a whole one, all its GPUs from one offer: the
    market rents whole units and never splits an order.

    Args:
        payment: ``"pay-as-bid"``.
        max_bids: ``OrderMaxBids``: an order takes bids while it holds at most this many
            (the chain refuses the bid that makes ``count > max_bids``), closed bids counted.
        prior_bids: bids already placed on an order (by request id), closed ones included.
        bid_window: how long after an order is posted bids are taken, in the book's
            ``submitted_at`` units; None: no limit. A standing offer bids at
            max(its time, the order's time).
        bid_deposit: the deposit locked with each bid (returned when the bid closes).
        pricing: the providers' pricing strategy.
        selection: the tenant's rule: ``"cheapest"``, ``"first"`` (earliest bid), or a
            callable on the order's bids (`AllowList`, `ReputationWeighted`, your own)
            returning the index of the chosen bid or None.
        time_limit, max_memory: every mechanism's options (see `MechanismBase`).
    """

    name: ClassVar[str] = "akash-auction"
    tags = MechanismTags(payments=("pay-as-bid",), divisible=True)

    max_bids: int = options.integer(AKASH_MAX_BIDS, minimum=1)
    prior_bids: Mapping[str, int] = _core.frozen_mapping(
        nonneg_int, what="request id -> bids already placed")
    bid_window: int | None = attrs.field(default=None, kw_only=True)
    bid_deposit: int = options.integer(AKASH_BID_DEPOSIT, minimum=0)
    pricing: Any = attrs.field(factory=AskPricing, validator=_check_pricing, kw_only=True)
    selection: Any = attrs.field(default="cheapest", validator=_check_selection, kw_only=True)

    def _check_options(self) -> None:
        w = self.bid_window
        if w is not None and (isinstance(w, bool) or not isinstance(w, int) or w < 0):
            raise InvalidOptionError("bid_window", w, "must be an int >= 0 or None",
                                     mechanism=self.name)

    def __auction_tags__(self) -> MechanismTags:
        randomized = getattr(self.pricing, "randomized", True) if not isinstance(
            self.pricing, AskPricing | LinearPricing | ModelPrices) else False
        return attrs.evolve(type(self)._declared_tags, deterministic=not randomized)

    def _clear(
        self, market: Market, rng: np.random.Generator | None, deadline: Deadline
    ) -> ClearingResult:
        snap = market.snapshot
        off, req = snap.offers, snap.requests
        select = _SELECTIONS.get(self.selection) if isinstance(self.selection, str) \
            else self.selection
        assert select is not None
        providers = [snap.parties[p] for p in off.provider.tolist()]
        fill = Fill(market)
        placed = refused = 0
        for r in fill.each(deadline, every=64):
            need, cap, t0 = int(req.gpus[r]), int(req.max_price[r]), int(req.submitted_at[r])
            cand = eligible_offers(market, r)
            arrivals = sorted(
                (max(int(off.submitted_at[o]), t0), int(market.offer_rank[o]), o)
                 for o in cand if fill.left[o] >= need)
            count = self.prior_bids.get(str(req.id[r]), 0)
            bids: list[Bid] = []
            for t, _, o in arrivals:
                if self.bid_window is not None and t - t0 > self.bid_window:
                    continue
                quote = self.pricing(market, o, r, rng)
                if quote is None:
                    continue
                price = max(int(off.price[o]), int(quote))
                if price > cap:
                    continue
                if count + 1 > self.max_bids:  # the chain's ``count > max`` check
                    refused += 1
                    continue
                count += 1
                bids.append(Bid(o, providers[o], price, len(bids),
                                float(market.offer_reputation[o])))
            placed += len(bids)
            pick = select(bids)
            if pick is not None:
                b = bids[int(pick)]
                fill.add(r, b.offer_row, need, b.price)
        return fill.result(self.name, self.payment, self.get_options(), diagnostics={
            "bids": placed, "bids_refused_by_cap": refused,
            "deposits_locked": placed * self.bid_deposit,
        })


@attrs.define
class EscrowAccount:
    """A deployment's escrow, settled lazily (``x/escrow``): the lease rate accrues per block,
    but is paid only when the account is settled (withdraw, deposit or close).

    Attributes:
        balance: what is left in escrow.
        rate: the lease rate per block.
        settled_at: the block of the last settlement.
        unpaid: debt recorded when the balance could not pay (the account is overdrawn).
    """

    balance: int
    rate: int
    settled_at: int = 0
    unpaid: int = 0

    @property
    def overdrawn(self) -> bool:
        """True once a settlement could not pay everything owed (the lease closes)."""
        return self.unpaid > 0

    def settle(self, block: int) -> int:
        """Pay the provider what accrued since the last settlement, up to the balance;
        returns the amount paid."""
        if block < self.settled_at:
            raise InvalidValueError("block", block, f"must be >= {self.settled_at}")
        owed = self.rate * (block - self.settled_at)
        paid = min(owed, self.balance)
        self.balance -= paid
        self.unpaid += owed - paid
        self.settled_at = block
        return paid

    def deposit(self, amount: int, block: int) -> int:
        """Top up (settling first, as the chain does); returns what the settlement paid."""
        paid = self.settle(block)
        self.balance += amount
        return paid


def preset(*, max_bids: int = AKASH_MAX_BIDS, prior_bids: Mapping[str, int] | None = None,
           bid_window: int | None = None, bid_deposit: int = AKASH_BID_DEPOSIT,
           pricing: Any = None, selection: Any = "cheapest", native_rate: str = "2%",
           stable_rate: str = "20%", currency: str = "USDC",
           reclamation_notice_hours: int = 24,
           audit_sample_rate: str = "0%", audit_stake: int = 0,
           audit_slash: str = "0%", audit_exclude_epochs: int = 0) -> Any:
    """The Akash preset (see the module docstring and ``docs/presets/akash.md``)."""
    from auction.presets import Parameter, Preset
    from auction.settlement.fees import FeeSchedule
    from auction.simulation import Design

    h = reclamation_notice_hours
    if isinstance(h, bool) or not isinstance(h, int) or not 1 <= h <= 720:
        raise InvalidValueError("reclamation_notice_hours", h, "must be an int in [1, 720]")
    mech = AkashAuction(max_bids=max_bids, prior_bids=prior_bids or {}, bid_window=bid_window,
                        bid_deposit=bid_deposit, pricing=pricing or AskPricing(),
                        selection=selection)
    fees = FeeSchedule.akash("AKT", currency, native_rate=native_rate, stable_rate=stable_rate)
    node = "akash-network/node x/market/handler/server.go"
    params = "akash-network/chain-sdk market/v1beta5/params.go"
    policy, audit_rows = _core.audit(
        sample_rate=audit_sample_rate, stake=audit_stake, slash=audit_slash,
        exclude_epochs=audit_exclude_epochs,
        checks="auditor-signed provider attributes, required by orders at bid time (not sampled)",
        sources=dict(
            sample_rate="Akash publishes no sampled audit (auditors sign attributes: placement "
                        "signedBy); default off",
            stake="Akash publishes no provider stake; default 0",
            slash="Akash publishes no slash; default 0",
            exclude_epochs="Akash publishes none; default 0",
        ))
    return Preset(
        name="akash", title="per-order reverse auction; the tenant picks a bid; pay-as-bid",
        mechanism=mech, design=Design(mechanism=mech, currency=currency, fees=fees, audit=policy),
        parameters=(
            Parameter("max_bids", max_bids, "OrderMaxBids: bids per order, closed ones "
                      "counted", params),
            Parameter("prior_bids", dict(prior_bids or {}), "bids already on each order",
                      node),
            Parameter("bid_window", bid_window, "how long bids are taken (None: any time)",
                      "provider bidengine (a provider closes an unaccepted bid after 5 min)"),
            Parameter("bid_deposit", bid_deposit, "deposit per bid, uakt (0.5 AKT)", params),
            Parameter("pricing", pricing or AskPricing(), "providers' pricing strategy",
                      "akash-network/provider bidengine/pricing.go"),
            Parameter("selection", selection, "tenant's bid choice (client default cheapest)",
                      "Akash console / CLI defaults; ../shared/MARKETS.md"),
            Parameter("native_rate", native_rate, "take rate on AKT payments",
                      "Akash take rate (until 2026)"),
            Parameter("stable_rate", stable_rate, "take rate on stablecoin payments",
                      "Akash take rate (until 2026)"),
            Parameter("currency", currency, "what tenants pay in", "simulation choice"),
            Parameter("reclamation_notice_hours", h, "provider's notice before reclaiming "
                      "a lease, 1 to 720 h", "Akash provider reclamation (../shared/"
                      "MARKETS.md)"),
            *audit_rows,
        ),
    )
