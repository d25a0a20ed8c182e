"""io.net: clusters procured at posted per-card prices.

Source: io.net docs (docs.io.net, "Deploy a cluster", "Fees"): users build a cluster by
processor type, location, connectivity tier, compliance and duration, at a price per GPU card
set per GPU type; a 0.25% reservation fee is charged on each side, and a 2% payment fee on
stablecoin payments (0% in the native token). Workers need at least 12 GB RAM and 256 GB SSD.

Here a request is a cluster order: GPU types (``gpu_models``), locations (``regions``),
connectivity and compliance (``required_tags``, e.g. ``"tier:ultra"``, ``"soc2"``). A cluster
request (``cluster=True``) is served all or nothing by offers of one provider in one region;
any other request by one offer. The fees are `auction.settlement.FeeSchedule.io_net`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import numpy as np

from auction.limits import Deadline
from auction.market import Market
from auction.mechanisms import MechanismBase, MechanismTags
from auction.presets import _core
from auction.presets._core import Fill, eligible_offers
from auction.result import ClearingResult

__all__ = ["IonetClusters"]


@attrs.frozen
class IonetClusters(MechanismBase):
    """First come, first served cluster procurement at the cheapest posted prices.

    Objective: none global; each request, in arrival order (submitted_at, id), buys the
    cheapest way to get all its GPUs. A whole request takes the cheapest eligible offer with
    room (ties by offer rank). A cluster request takes, at each (provider, region) site, the
    cheapest GPUs of its eligible offers there, and buys at the site whose total is lowest
    (ties: the site whose best offer ranks first); no site with enough GPUs, no cluster.

    A divisible request is served like a whole one, all its GPUs from one offer: the
    market rents whole units and never splits an order.

    Args:
        payment: ``"posted"``: each card at its offer's posted price.
        time_limit, max_memory: every mechanism's options (see `MechanismBase`).
    """

    name: ClassVar[str] = "ionet-clusters"
    tags = MechanismTags(payments=("posted",), divisible=True)

    def _clear(
        self, market: Market, rng: np.random.Generator | None, deadline: Deadline
    ) -> ClearingResult:
        snap = market.snapshot
        off, req = snap.offers, snap.requests
        price = off.price.tolist()
        rank = market.offer_rank.tolist()
        site_of = list(zip(off.provider.tolist(), off.region.tolist(), strict=True))
        fill = Fill(market)
        clusters = 0
        for r in fill.each(deadline):
            cand = sorted(eligible_offers(market, r), key=lambda o: (price[o], rank[o]))
            need = int(req.gpus[r])
            whole = next((o for o in cand if fill.left[o] >= need), None)
            if not bool(req.cluster[r]):
                if whole is not None:
                    fill.add(r, whole, need, price[whole])
                continue
            best: tuple[int, int, list[tuple[int, int]]] | None = None
            sites: dict[tuple[int, int], list[int]] = {}
            for o in cand:
                if fill.left[o]:
                    sites.setdefault(site_of[o], []).append(o)
            for members in sites.values():
                plan, left, cost = [], need, 0
                for o in members:  # already cheapest first
                    take = min(left, fill.left[o])
                    plan.append((o, take))
                    cost += take * price[o]
                    left -= take
                    if not left:
                        break
                if left:
                    continue
                key = (cost, rank[members[0]])
                if best is None or key < best[:2]:
                    best = (cost, rank[members[0]], plan)
            if best is not None:
                clusters += 1
                for o, take in best[2]:
                    fill.add(r, o, take, price[o])
        return fill.result(self.name, self.payment, self.get_options(),
                           diagnostics={"clusters": clusters})


def preset(*, currency: str = "USDC", native: str = "IO", reservation_fee: str = "0.25%",
           stable_payment_fee: str = "2%",
           audit_sample_rate: str = "100%", audit_stake: int = 0,
           audit_slash: str = "0%", audit_exclude_epochs: int = 1) -> Any:
    """The io.net preset (see the module docstring and ``docs/presets/ionet.md``)."""
    from auction.presets import Parameter, Preset
    from auction.settlement.fees import FeeSchedule
    from auction.simulation import Design

    mech = IonetClusters()
    fees = FeeSchedule.io_net(native, currency, reservation=reservation_fee,
                              stable_payment=stable_payment_fee)
    src = "docs.io.net, Fees; ../shared/MARKETS.md"
    policy, audit_rows = _core.audit(
        sample_rate=audit_sample_rate, stake=audit_stake, slash=audit_slash,
        exclude_epochs=audit_exclude_epochs,
        checks="health: every worker every 60 s, removed below an 80% score",
        sources=dict(
            sample_rate="io.net health checks every 60 s cover every worker (low confidence; "
                        "../shared/MARKETS.md)",
            stake="io.net publishes no slashing stake for this; default 0",
            slash="io.net publishes no slash; default 0",
            exclude_epochs="io.net removes a worker below an 80% health score (low confidence): "
                           "out for the next epoch",
        ))
    return Preset(
        name="ionet", title="clusters bought at posted per-card prices, fees on both sides",
        mechanism=mech,
        design=Design(mechanism=mech, currency=currency, fees=fees, audit=policy),
        parameters=(
            Parameter("reservation_fee", reservation_fee, "fee on each side of a reservation",
                      src),
            Parameter("stable_payment_fee", stable_payment_fee,
                      "payment fee on stablecoin payments (0 in the native token)", src),
            Parameter("currency", currency, "what tenants pay in", "simulation choice"),
            Parameter("native", native, "the native token (no payment fee)", src),
            *audit_rows,
        ),
    )
