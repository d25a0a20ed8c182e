"""Aethir: indexers match users to containers at uniform K-value prices.

Sources: Aethir docs (docs.aethir.com: "Indexer", "Checker", "Pricing", "Staking and
slashing", "Rewards"), summarised in ../shared/MARKETS.md: indexers filter containers that
are on standby, have the service, fit the specs, are within the latency limit and the user's
budget, then rank them by lowest fee, best experience or best overall evaluation; the
indexer is picked at random. Prices are uniform per hardware spec and region (the K-value
table), in Reserve or OnDemand mode; a 20% protocol fee; stake = K x coefficient, downtime
slashes 1/3 of it, malice all of it.

Here a container is an offer (standby: it has free GPUs), specs and the latency limit are the
request's models, VRAM, tags and acceptable regions (the regions within its latency limit),
and the budget is the request's max price, compared with the K-value price (or the ask, for a
spec with no K value). A container takes the uniform price only if it is at least its ask.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Any, ClassVar

import attrs
import numpy as np

from auction.errors import InvalidOptionError, InvalidValueError
from auction.limits import Deadline
from auction.market import Market
from auction.mechanisms import MechanismBase, MechanismTags
from auction.presets import _core
from auction.presets._core import Fill, eligible_offers, nonneg_int
from auction.result import ClearingResult

__all__ = ["RANKINGS", "AethirIndexer", "preset", "slash", "stake_required"]

#: The indexers' ranking rules.
RANKINGS = ("lowest-fee", "best-experience", "best-evaluation")


def _rankings(value: Any) -> tuple[str, ...]:
    return tuple(value) if isinstance(value, list | tuple) else value


def _check_rankings(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, tuple) or not value or any(v not in RANKINGS for v in value):
        raise InvalidOptionError("indexers", value, f"must be a non-empty sequence of {RANKINGS}",
                                 mechanism="aethir-indexer")


@attrs.frozen
class AethirIndexer(MechanismBase):
    """Feasibility filters, then one randomly drawn indexer's ranking; uniform prices.

    Objective: none global. Reserved requests (``duration_hours >= reserve_hours``) are
    matched before on-demand ones, each group in arrival order; each request draws an indexer
    (uniformly, from the clearing's rng, in request priority order) and takes the container
    that indexer ranks first:

    * ``lowest-fee``: the lowest price, then rank;
    * ``best-experience``: the highest reputation, then rank;
    * ``best-evaluation``: the highest ``reputation - price / max_price``, then rank.

    A divisible request is served like a whole one, all its GPUs from one offer: the
    market rents whole units and never splits an order.

    Args:
        payment: ``"k-value"``: the uniform price of the spec and region (or the ask).
        k_prices: price per GPU-hour by ``"MODEL/REGION"`` or ``"MODEL"`` (the K-value table).
        indexers: the rankings the indexers use; one is drawn per request.
        reserve_hours: least duration of a Reserve-mode request (None: all on demand).
        time_limit, max_memory: every mechanism's options (see `MechanismBase`).
    """

    name: ClassVar[str] = "aethir-indexer"
    tags = MechanismTags(payments=("k-value",), divisible=True, deterministic=False)

    k_prices: Mapping[str, int] = _core.frozen_mapping(nonneg_int, what="'MODEL/REGION' -> price")
    indexers: tuple[str, ...] = attrs.field(default=RANKINGS, converter=_rankings,
                                            validator=_check_rankings, kw_only=True)
    reserve_hours: int | None = attrs.field(default=None, kw_only=True)

    def _check_options(self) -> None:
        h = self.reserve_hours
        if h is not None and (isinstance(h, bool) or not isinstance(h, int) or h < 1):
            raise InvalidOptionError("reserve_hours", h, "must be an int >= 1 or None",
                                     mechanism=self.name)

    def __auction_tags__(self) -> MechanismTags:
        return attrs.evolve(type(self)._declared_tags, deterministic=len(self.indexers) == 1)

    def _clear(
        self, market: Market, rng: np.random.Generator | None, deadline: Deadline
    ) -> ClearingResult:
        snap = market.snapshot
        off, req = snap.offers, snap.requests
        gen = rng if rng is not None else np.random.default_rng()
        models = [snap.models[m] for m in off.gpu_model.tolist()]
        regions = [snap.regions[g] for g in off.region.tolist()]
        price = [self.k_prices.get(f"{m}/{g}", self.k_prices.get(m, int(a)))
                 for m, g, a in zip(models, regions, off.price.tolist(), strict=True)]
        rank = market.offer_rank.tolist()
        rep = [Fraction(repr(float(x))) for x in market.offer_reputation.tolist()]
        order = market.request_order.tolist()
        if self.reserve_hours is not None:
            h = self.reserve_hours
            order = [r for r in order if int(req.duration_hours[r]) >= h] + [
                r for r in order if int(req.duration_hours[r]) < h]
        fill = Fill(market)
        drawn: dict[str, int] = {}
        for r in fill.each(deadline, order):
            need, cap = int(req.gpus[r]), int(req.max_price[r])
            ranking = self.indexers[int(gen.integers(len(self.indexers)))] if len(
                self.indexers) > 1 else self.indexers[0]
            drawn[ranking] = drawn.get(ranking, 0) + 1
            feasible = [o for o in eligible_offers(market, r)
                        if fill.left[o] >= need and int(off.price[o]) <= price[o] <= cap]
            if not feasible:
                continue
            if ranking == "lowest-fee":
                o = min(feasible, key=lambda o: (price[o], rank[o]))
            elif ranking == "best-experience":
                o = min(feasible, key=lambda o: (-rep[o], rank[o]))
            else:
                o = min(feasible, key=lambda o: (Fraction(price[o], max(cap, 1)) - rep[o],
                                                 rank[o]))
            fill.add(r, o, need, price[o])
        return fill.result(self.name, self.payment, self.get_options(),
                           diagnostics={"indexers_drawn": dict(sorted(drawn.items()))})


def stake_required(k: int, coefficient: Fraction | int = 1) -> int:
    """A container's stake: K x coefficient, rounded up."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise InvalidValueError("k", k, "must be an int >= 0")
    c = Fraction(coefficient)
    return -(-k * c.numerator // c.denominator)


def slash(k: int, coefficient: Fraction | int = 1, *, reason: str = "downtime") -> int:
    """The stake slashed: 1/3 of K x coefficient for downtime, all of it for malice or
    underperformance (rounded down)."""
    full = stake_required(k, coefficient)
    if reason == "downtime":
        return full // 3
    if reason in ("malice", "underperformance"):
        return full
    raise InvalidValueError("reason", reason, "must be 'downtime', 'malice' or "
                            "'underperformance'")


def preset(*, k_prices: Any = None, indexers: tuple[str, ...] = RANKINGS,
           reserve_hours: int | None = 720, fee: str = "20%", currency: str = "USDC",
           reputation: str | None = "beta",
           audit_sample_rate: str = "0%", audit_stake: int = 0,
           audit_slash: str | Fraction = Fraction(1, 3), audit_exclude_epochs: int = 0) -> Any:
    """The Aethir preset (see the module docstring and ``docs/presets/aethir.md``)."""
    from auction.presets import Parameter, Preset
    from auction.settlement.fees import FeeSchedule
    from auction.simulation import Design

    mech = AethirIndexer(k_prices=k_prices or {}, indexers=indexers, reserve_hours=reserve_hours)
    docs = "docs.aethir.com"
    policy, audit_rows = _core.audit(
        sample_rate=audit_sample_rate, stake=audit_stake, slash=audit_slash,
        exclude_epochs=audit_exclude_epochs,
        checks="proof of capacity every 15 min on a random selection of nodes (downtime)",
        sources=dict(
            sample_rate="docs.aethir.com Checker: a random selection, no rate published; default "
                        "off",
            stake="docs.aethir.com Staking: K x coefficient, not published per node; default 0",
            slash="docs.aethir.com Staking: downtime slashes 1/3 of K x coefficient",
            exclude_epochs="Aethir publishes none; default 0",
        ))
    return Preset(
        name="aethir", title="indexers filter and rank containers; uniform K-value prices",
        mechanism=mech,
        design=Design(mechanism=mech, currency=currency, fees=FeeSchedule({currency: fee}),
                      reputation=reputation, audit=policy),
        parameters=(
            Parameter("k_prices", dict(k_prices or {}), "uniform price per spec and region",
                      docs + " Pricing (K-value)"),
            Parameter("indexers", tuple(indexers), "rankings an indexer may use",
                      docs + " Indexer"),
            Parameter("reserve_hours", reserve_hours, "least hours of a Reserve order "
                      "(low confidence: a month)", docs + " Pricing (Reserve/OnDemand)"),
            Parameter("fee", fee, "protocol fee on provider payments", docs + " Rewards"),
            Parameter("currency", currency, "what users pay (priced in fiat)", docs),
            Parameter("reputation", reputation, "reputation model behind best experience "
                      "and evaluation (checkers' results)", docs + " Checker"),
            *audit_rows,
        ),
    )
