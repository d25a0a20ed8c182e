"""Golem: two-sided constraint matching, linear usage pricing, the requestor's scoring.

Sources (github.com/golemfactory): ``core/market/resolver/src/resolver/matching.rs`` (an
offer and a demand match when both sides' constraints hold over the other's properties;
three-valued evaluation), ``yapapi/strategy/least_expensive.py`` (an offer scores
100 / (cost + 1.01), cost being its linear price over an expected 60 s of use; offers above
the caps are rejected), ``yapapi/strategy/decrease_score_unconfirmed.py`` (a provider that
rejected an agreement has its score multiplied by 0.5), ``yapapi/engine.py`` (an idle
agreement is reused first; otherwise offers are shuffled and the highest score taken). A
provider accepts the requestor's price when it is at least its own on every component.

Here a demand is a request and an offer an offer; both may carry Golem constraints (a
Golem LDAP filter, translated by `auction.constraints.from_golem`, or this library's
constraint language) in the mechanism's ``demand_constraints`` / ``offer_constraints``, over
the other side's attributes and built-in fields (offers: ``provider``, ``gpu_model``,
``region``, ``gpus``, ``vram_gb``, ``price``; requests: ``tenant``, ``gpus``,
``max_price``). Constraints carried on the orders themselves are the market's to check.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Any, ClassVar

import attrs
import numpy as np

from auction.constraints import AttributeTable, from_golem, parse
from auction.errors import InvalidOptionError
from auction.limits import Deadline
from auction.market import Market
from auction.mechanisms import MechanismBase, MechanismTags, options
from auction.presets import _core
from auction.presets._core import Fill, eligible_offers
from auction.result import ClearingResult

__all__ = ["GolemMatch", "golem_score", "preset"]

#: The rejection penalty (``decrease_score_unconfirmed.py``).
REJECTION_FACTOR = Fraction(1, 2)


def _text(key: str, value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return "must be a constraint text"
    try:
        _compile(value)
    except Exception as e:  # a typed syntax error, reported as a bad option
        return f"cannot be parsed: {e}"
    return None


def _compile(text: str) -> Any:
    t = text.strip()
    return parse(from_golem(t) if t.startswith("(") else t)


def _providers(value: Any) -> frozenset[str]:
    return frozenset(value)


def golem_score(cost: Fraction, rejected: bool = False) -> Fraction:
    """The stock requestor's score of an offer: 100 / (cost + 1.01), halved for a provider
    that rejected an agreement."""
    s = Fraction(100) / (cost + Fraction(101, 100))
    return s * REJECTION_FACTOR if rejected else s


@attrs.frozen
class GolemMatch(MechanismBase):
    """Golem's matching and requestor strategy.

    Objective: none global; demands in arrival order each take one offer: an idle agreement
    with an eligible offer that still has room, or else the highest-scoring eligible offer,
    ties broken by a shuffle drawn from the clearing's rng (canonical order first).

    A divisible request is served like a whole one, all its GPUs from one offer: the
    market rents whole units and never splits an order.

    Args:
        payment: ``"linear"``: the agreement's linear price (the offer's price per GPU-hour).
        expected_seconds: the usage over which the strategy prices an offer (60 s).
        unit: smallest money units per currency unit (the score reads costs in GLM-like
            whole units: 10**6 for micro-units).
        rejected: providers that rejected an agreement (score x 0.5).
        agreements: idle agreements to reuse, tenant -> offer id.
        demand_constraints, offer_constraints: constraints by order id (see the module).
        time_limit, max_memory: every mechanism's options (see `MechanismBase`).
    """

    name: ClassVar[str] = "golem-match"
    tags = MechanismTags(payments=("linear",), divisible=True, deterministic=False)

    expected_seconds: int = options.integer(60, minimum=1)
    unit: int = options.integer(10**6, minimum=1)
    rejected: frozenset[str] = attrs.field(factory=frozenset, converter=_providers,
                                           kw_only=True)
    agreements: Mapping[str, str] = _core.frozen_mapping(
        lambda k, v: None if isinstance(v, str) and v else
                                     "must be an offer id", what="tenant -> offer id")
    demand_constraints: Mapping[str, str] = _core.frozen_mapping(
        _text, what="request id -> constraint")
    offer_constraints: Mapping[str, str] = _core.frozen_mapping(
        _text, what="offer id -> constraint")

    def _check_options(self) -> None:
        if any(not isinstance(p, str) or not p for p in self.rejected):
            raise InvalidOptionError("rejected", sorted(map(str, self.rejected)),
                                     "must be provider names", mechanism=self.name)

    def _two_sided(self, market: Market) -> set[tuple[int, int]] | None:
        """Pairs that fail a constraint of the options, or None when there are none."""
        if not self.demand_constraints and not self.offer_constraints:
            return None
        snap = market.snapshot
        offers = [snap.offer(o) for o in range(snap.n_offers)]
        reqs = [snap.request(r) for r in range(snap.n_requests)]
        off_tab = AttributeTable.from_records([{
            **dict(o.attributes), "provider": o.provider, "gpu_model": o.gpu_model,
            "region": o.region, "gpus": o.gpus, "vram_gb": o.vram_gb, "price": o.price,
        } for o in offers])
        req_tab = AttributeTable.from_records([{
            **dict(r.attributes), "tenant": r.tenant, "gpus": r.gpus, "max_price": r.max_price,
        } for r in reqs])
        bad: set[tuple[int, int]] = set()
        row_of = {o.id: i for i, o in enumerate(offers)}
        for r, req in enumerate(reqs):
            text = self.demand_constraints.get(req.id)
            if text is not None:
                ok = _compile(text).evaluate(off_tab)
                bad.update((r, int(o)) for o in np.flatnonzero(~ok))
        for oid, text in self.offer_constraints.items():
            if oid in row_of:
                ok = _compile(text).evaluate(req_tab)
                bad.update((int(r), row_of[oid]) for r in np.flatnonzero(~ok))
        return bad

    def _clear(
        self, market: Market, rng: np.random.Generator | None, deadline: Deadline
    ) -> ClearingResult:
        snap = market.snapshot
        off, req = snap.offers, snap.requests
        gen = rng if rng is not None else np.random.default_rng()
        bad = self._two_sided(market) or set()
        providers = [snap.parties[p] for p in off.provider.tolist()]
        ids = {str(i): o for o, i in enumerate(off.id.tolist())}
        fill = Fill(market)
        reused = 0
        for r in fill.each(deadline):
            need = int(req.gpus[r])
            cand = [o for o in eligible_offers(market, r)
                    if fill.left[o] >= need and (r, o) not in bad]
            if not cand:
                continue
            tenant = snap.parties[int(req.tenant[r])]
            idle = ids.get(self.agreements.get(tenant, ""), -1)
            if idle in cand:
                fill.add(r, idle, need, int(off.price[idle]))
                reused += 1
                continue
            shuffled = [cand[k] for k in gen.permutation(len(cand)).tolist()]
            scale = Fraction(self.expected_seconds, 3600 * self.unit)

            def score(o: int, need: int = need, scale: Fraction = scale) -> Fraction:
                cost = int(off.price[o]) * need * scale
                return golem_score(cost, providers[o] in self.rejected)

            best = max(shuffled, key=score)  # the first of the highest in shuffled order
            fill.add(r, best, need, int(off.price[best]))
        return fill.result(self.name, self.payment, self.get_options(),
                           diagnostics={"agreements_reused": reused})


def preset(*, expected_seconds: int = 60, unit: int = 10**6,
           rejected: frozenset[str] = frozenset(), agreements: Mapping[str, str] | None = None,
           currency: str = "USDC",
           audit_sample_rate: str = "0%", audit_stake: int = 0,
           audit_slash: str = "0%", audit_exclude_epochs: int = 0) -> Any:
    """The Golem preset (see the module docstring and ``docs/presets/golem.md``)."""
    from auction.presets import Parameter, Preset
    from auction.settlement.fees import FeeSchedule
    from auction.simulation import Design

    mech = GolemMatch(expected_seconds=expected_seconds, unit=unit, rejected=rejected,
                      agreements=agreements or {})
    y = "golemfactory/yapapi"
    policy, audit_rows = _core.audit(
        sample_rate=audit_sample_rate, stake=audit_stake, slash=audit_slash,
        exclude_epochs=audit_exclude_epochs,
        checks="nothing by the protocol (requestors verify results their own way)",
        sources=dict(
            sample_rate="Golem publishes no audit; default off",
            stake="Golem has no provider stake; default 0",
            slash="Golem publishes no slash; default 0",
            exclude_epochs="Golem publishes none (a requestor halves a rejecting provider's "
                           "score); default 0",
        ))
    return Preset(
        name="golem", title="two-sided constraint matching; the requestor's 100/(cost+1.01)",
        mechanism=mech, design=Design(mechanism=mech, currency=currency, fees=FeeSchedule(),
                                      audit=policy),
        parameters=(
            Parameter("expected_seconds", expected_seconds, "usage an offer is priced over",
                      y + " strategy/least_expensive.py"),
            Parameter("unit", unit, "money units per whole currency unit in the score",
                      "simulation choice (micro-units)"),
            Parameter("rejected", frozenset(rejected), "providers that rejected (score x 0.5)",
                      y + " strategy/decrease_score_unconfirmed.py"),
            Parameter("agreements", dict(agreements or {}), "idle agreements reused first",
                      y + " engine.py"),
            Parameter("currency", currency, "what agreements are paid in (GLM on chain)",
                      "simulation choice"),
            *audit_rows,
        ),
    )
