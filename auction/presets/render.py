"""Render: work assigned by tier, reputation and availability; no bidding.

Sources: Render Network knowledge base ("Job assignment", "Tiers", "Node reputation";
know.rendernetwork.com) and the Render Network Foundation's RNP-001/RNP-004 (burn-and-mint,
5% fee, emissions) and the compute subnet's RNP-019 (95% of credits buy and burn; jobs
rotate to the node with the least work this epoch); ../shared/MARKETS.md lists them.

* **Tier spillover**: higher-tier work is assigned first, to the nodes qualified for it;
  tier-2 work goes to tier-2-qualified nodes before any tier-3 work is assigned. A node's
  qualifications are its tags ``tier:1``, ``tier:2``, ...; a job's tier is the best (lowest)
  ``tier:k`` in its ``required_tags`` (``default_tier`` when it names none), so eligibility
  already keeps it on qualified nodes.
* **Fewest active nodes next**: within a tier, the job with the fewest nodes so far gets the
  next node (a divisible job takes one GPU at a time; a whole job takes one node at once).
* **Sticky pairs**: a job first goes back to a node that already serves it (in this
  clearing, or its node in ``sticky``).
* **Node order**: by reputation (highest first) only while utilisation is below 100% (fewer
  GPUs asked for than offered); at full utilisation every node is used, in rank order. On
  the compute subnet (``node_order="least-work"``) the next node is the one with the least
  work this epoch (``work`` plus what this clearing gave it).

The price is the node's ask (its tier's price per OctaneBench-hour, converted to a GPU-hour);
settlement is burn-and-mint (`auction.simulation.Payment.RENDER`).
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from typing import Any, ClassVar

import attrs
import numpy as np

from auction.limits import Deadline
from auction.market import Market
from auction.mechanisms import MechanismBase, MechanismTags, options
from auction.presets import _core
from auction.presets._core import Fill, eligible_offers, nonneg_int
from auction.result import ClearingResult

__all__ = ["RenderTiers", "preset"]


def _offer_id(key: str, value: Any) -> str | None:
    return None if isinstance(value, str) and value else "must be an offer id"


@attrs.frozen
class RenderTiers(MechanismBase):
    """Render's assignment: tiers with spillover, fewest-nodes-first, sticky pairs.

    Objective: none global (a scheduler, not an auction): higher tiers first, and within a
    tier the most starved job gets the next node.

    Args:
        payment: ``"ask"``: the job pays the node's tier price.
        tier_prefix: the tag prefix naming tiers (``"tier:"``).
        default_tier: the tier of jobs that name none.
        node_order: ``"reputation"`` (Render) or ``"least-work"`` (the compute subnet).
        work: each provider's work so far this epoch (GPU-hours), for ``"least-work"``.
        sticky: a job's previous node (request id -> offer id), tried first.
        time_limit, max_memory: every mechanism's options (see `MechanismBase`).
    """

    name: ClassVar[str] = "render-tiers"
    tags = MechanismTags(payments=("ask",), divisible=True)

    tier_prefix: str = options.text("tier:")
    default_tier: int = options.integer(3, minimum=0)
    node_order: str = options.choice("reputation", ("reputation", "least-work"))
    work: Mapping[str, int] = _core.frozen_mapping(nonneg_int, what="provider -> GPU-hours")
    sticky: Mapping[str, str] = _core.frozen_mapping(_offer_id, what="request id -> offer id")

    def _tier(self, market: Market, r: int) -> int:
        best = self.default_tier
        for tag in market.snapshot.request(r).required_tags:
            digits = tag[len(self.tier_prefix):]
            if tag.startswith(self.tier_prefix) and digits.isdigit():
                best = min(best, int(digits))
        return best

    def _clear(
        self, market: Market, rng: np.random.Generator | None, deadline: Deadline
    ) -> ClearingResult:
        snap = market.snapshot
        off, req = snap.offers, snap.requests
        providers = [snap.parties[p] for p in off.provider.tolist()]
        rank = market.offer_rank.tolist()
        rep = market.offer_reputation.tolist()
        by_id = {str(i): o for o, i in enumerate(off.id.tolist())}
        busy = int(req.gpus.sum()) >= int(off.gpus.sum())  # utilisation reaches 100%
        work = {p: self.work.get(p, 0) for p in set(providers)}
        fill = Fill(market)
        tiers: dict[int, list[int]] = {}
        for r in market.request_order.tolist():
            tiers.setdefault(self._tier(market, r), []).append(r)

        def key(o: int) -> tuple[Any, ...]:
            if self.node_order == "least-work":
                return (work[providers[o]], rank[o])
            return (rank[o],) if busy else (-rep[o], rank[o])

        steps = 0
        for tier in sorted(tiers):
            heap = [(0, int(market.request_rank[r]), r) for r in tiers[tier]]
            heapq.heapify(heap)
            got = {r: 0 for r in tiers[tier]}
            serving: dict[int, list[int]] = {r: [] for r in tiers[tier]}
            while heap:
                steps += 1
                if steps % 256 == 0 and deadline.expired():
                    fill.stopped = True
                    break
                _, pos, r = heapq.heappop(heap)
                need = int(req.gpus[r])
                divisible = bool(req.divisible[r])
                size = 1 if divisible else need
                cand = eligible_offers(market, r)
                room = [o for o in cand if fill.left[o] >= size]
                if not room:
                    continue  # starved: no qualified node is free
                prev = by_id.get(self.sticky.get(str(req.id[r]), ""), -1)
                first = [o for o in serving[r] if o in room] or (
                    [prev] if prev in room else [])
                o = first[0] if first else min(room, key=key)
                fill.add(r, o, size, int(off.price[o]))
                work[providers[o]] += size * int(req.duration_hours[r])
                if o not in serving[r]:
                    serving[r].append(o)
                got[r] += size
                if divisible and got[r] < need:
                    heapq.heappush(heap, (len(serving[r]), pos, r))
            if fill.stopped:
                break
        return fill.result(self.name, self.payment, self.get_options(), diagnostics={
            "tiers": sorted(tiers), "full_utilisation": busy,
        })


def preset(*, tier_prefix: str = "tier:", default_tier: int = 3,
           node_order: str = "reputation", fee: str = "5%", currency: str = "USD",
           token: str = "RENDER", token_price_micro: int = 5_000_000,
           year1_emission: int = 9_126_804, epochs_per_year: int = 365,
           reputation: str | None = "beta",
           audit_sample_rate: str = "0%", audit_stake: int = 0,
           audit_slash: str = "0%", audit_exclude_epochs: int = 0) -> Any:
    """The Render preset (see the module docstring and ``docs/presets/render.md``).

    Token amounts are in whole tokens x 10^6 (6 decimals); `token_price_micro` is the
    token's price in `currency` micro-units per token."""
    from fractions import Fraction

    from auction.presets import Parameter, Preset
    from auction.settlement.tokenomics import OraclePrice, YearlyEmission
    from auction.simulation import Design, Payment, Rewards

    mech = RenderTiers(tier_prefix=tier_prefix, default_tier=default_tier,
                       node_order=node_order)
    price = OraclePrice(token, currency, Fraction(token_price_micro, 10**6), base_decimals=6,
                        quote_decimals=6)
    policy, audit_rows = _core.audit(
        sample_rate=audit_sample_rate, stake=audit_stake, slash=audit_slash,
        exclude_epochs=audit_exclude_epochs,
        checks="proof of render: rejected frames are re-rendered elsewhere, and reputation drops",
        sources=dict(
            sample_rate="Render knowledge base (proof of render) publishes no sample rate; default"
                        " off",
            stake="Render publishes no node stake; default 0",
            slash="Render publishes no slash (reputation falls instead); default 0",
            exclude_epochs="Render publishes none; default 0",
        ))
    design = Design(
        mechanism=mech, currency=currency, settle=Payment.RENDER, render_fee=fee, token=token,
        token_price=price, genesis_supply=10**9 * 10**6,
        emission=YearlyEmission((year1_emission * 10**6,), epochs_per_year),
        rewards=Rewards.WORK, reputation=reputation, audit=policy,
    )
    kb = "Render knowledge base, Job assignment (know.rendernetwork.com)"
    return Preset(
        name="render", title="tiers with spillover, fewest-nodes-first, burn-and-mint",
        mechanism=mech, design=design,
        parameters=(
            Parameter("tier_prefix", tier_prefix, "tag naming a node's tier qualification",
                      kb),
            Parameter("default_tier", default_tier, "tier of jobs naming none", kb),
            Parameter("node_order", node_order, "reputation (Render) or least-work "
                      "(compute subnet)", kb + "; RNP-019"),
            Parameter("fee", fee, "share of each burn kept as a fee", "RNP-001 (5%)"),
            Parameter("currency", currency, "what jobs are priced in", "RNP-001 (USD)"),
            Parameter("token", token, "the burned and minted token", "RNP-001"),
            Parameter("token_price_micro", token_price_micro, "token price, micro-USD",
                      "simulation input (oracle)"),
            Parameter("year1_emission", year1_emission, "tokens minted in year 1",
                      "RNP-001 emission schedule (9,126,804)"),
            Parameter("epochs_per_year", epochs_per_year, "epochs a year (daily epochs)",
                      "simulation choice"),
            Parameter("reputation", reputation, "reputation model ordering nodes (from "
                      "completed and failed jobs)", kb + " (Node reputation)"),
            *audit_rows,
        ),
    )
