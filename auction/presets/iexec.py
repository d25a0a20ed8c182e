"""iExec: an order book sorted by price then publication time, matched by volume.

Source: iExec PoCo contracts, ``contracts/facets/IexecPoco1Facet.sol`` (matchOrders: equal
category, request trust <= workerpool trust, the workerpool's tag bitmask covers the request's
tags, each max price >= the ask, volume = the smallest remaining volume, the deal pays the
asks) and ``IexecPoco2Facet.sol`` (contribution weight max(score / 3, 3) - 1); the market API
sorts orders by price, then publication time; docs.iex.ec "Proof of Contribution" (worker score
+1 on a correct result, x2/3 and the stake lost on a wrong one; the pool stakes 30% of the
deal).

Here a request is a requester order whose volume is its GPUs (one task per GPU when
divisible), an offer a workerpool order whose volume is its GPUs; category, trust and tags are
the market's eligibility (GPU model, ``min_reputation``, ``required_tags``).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, ClassVar

import attrs
import numpy as np

from auction.errors import InvalidValueError
from auction.limits import Deadline
from auction.market import Market
from auction.mechanisms import MechanismBase, MechanismTags
from auction.presets import _core
from auction.presets._core import Fill, eligible_offers
from auction.result import ClearingResult

__all__ = [
    "IEXEC_POOL_STAKE",
    "IexecBook",
    "consensus_weight",
    "pool_stake",
    "worker_score",
]

#: Share of a deal's price the workerpool stakes (docs.iex.ec, Proof of Contribution).
IEXEC_POOL_STAKE = Fraction(30, 100)


@attrs.frozen
class IexecBook(MechanismBase):
    """Price-time matching with volumes; the requester pays the asks.

    Objective: none global. Requests match in publication order (submitted_at, id); each
    takes asks in (price, publication time, id) order among those it may use; a match's
    volume is the smaller remaining volume of the two orders. A divisible request is
    filled task by task across asks (partly, when the asks run out); a whole request needs
    one ask with all its volume left.

    Args:
        payment: ``"ask"`` (the deal pays the workerpool's ask).
        time_limit, max_memory: every mechanism's options (see `MechanismBase`).
    """

    name: ClassVar[str] = "iexec-book"
    tags = MechanismTags(payments=("ask",), divisible=True)

    def _clear(
        self, market: Market, rng: np.random.Generator | None, deadline: Deadline
    ) -> ClearingResult:
        snap = market.snapshot
        off, req = snap.offers, snap.requests
        # the book's ask order: price, then publication time, then id (the rank breaks ties)
        book_rank = np.empty(len(off), dtype=np.int64)
        book_rank[np.lexsort((market.offer_rank, off.submitted_at, off.price))] = np.arange(
            len(off))
        fill = Fill(market)
        matches = 0
        for r in fill.each(deadline):
            cand = sorted(eligible_offers(market, r), key=book_rank.__getitem__)
            need = int(req.gpus[r])
            if bool(req.divisible[r]):
                for o in cand:
                    take = min(need, fill.left[o])
                    if take:
                        fill.add(r, o, take, int(off.price[o]))
                        matches += 1
                        need -= take
                    if not need:
                        break
            else:
                ask = next((o for o in cand if fill.left[o] >= need), None)
                if ask is not None:
                    fill.add(r, ask, need, int(off.price[ask]))
                    matches += 1
        return fill.result(self.name, self.payment, self.get_options(),
                           diagnostics={"matches": matches})


def worker_score(score: int, correct: bool) -> int:
    """A worker's score after a replicated task: +1 if its result was the consensus,
    otherwise cut to 2/3 (rounded down, as the contract's integer division)."""
    if isinstance(score, bool) or not isinstance(score, int) or score < 0:
        raise InvalidValueError("score", score, "must be an int >= 0")
    return score + 1 if correct else score * 2 // 3


def consensus_weight(score: int) -> int:
    """A contribution's weight in the consensus: max(score // 3, 3) - 1
    (``IexecPoco2Facet.sol``)."""
    if isinstance(score, bool) or not isinstance(score, int) or score < 0:
        raise InvalidValueError("score", score, "must be an int >= 0")
    return max(score // 3, 3) - 1


def pool_stake(deal_price: int, share: Fraction = IEXEC_POOL_STAKE) -> int:
    """What the workerpool locks for a deal: `share` (30%) of its price, rounded up (the
    protocol is never short)."""
    if isinstance(deal_price, bool) or not isinstance(deal_price, int) or deal_price < 0:
        raise InvalidValueError("deal_price", deal_price, "must be an int >= 0")
    return -(-deal_price * share.numerator // share.denominator)


def preset(*, currency: str = "USDC", pool_stake_share: str = "30%",
           reputation: str | None = "iexec",
           audit_sample_rate: str = "0%", audit_stake: int = 0,
           audit_slash: str = "100%", audit_exclude_epochs: int = 0) -> Any:
    """The iExec preset (see the module docstring and ``docs/presets/iexec.md``)."""
    from auction.presets import Parameter, Preset
    from auction.settlement.fees import FeeSchedule, as_rate
    from auction.simulation import Design

    as_rate(pool_stake_share, "pool_stake_share")
    mech = IexecBook()
    policy, audit_rows = _core.audit(
        sample_rate=audit_sample_rate, stake=audit_stake, slash=audit_slash,
        exclude_epochs=audit_exclude_epochs,
        checks="replicated results reach consensus; a wrong result costs score x2/3 and the stake",
        sources=dict(
            sample_rate="docs.iex.ec Proof of Contribution: replication follows the requester's "
                        "trust level, no fixed sample rate; default off",
            stake="docs.iex.ec Proof of Contribution: a worker stakes per task, amount set per "
                  "pool; default 0",
            slash="docs.iex.ec Proof of Contribution: the stake is lost on a wrong result",
            exclude_epochs="iExec publishes none; default 0",
        ))
    return Preset(
        name="iexec", title="price-time order book with volumes; the deal pays the asks",
        mechanism=mech,
        design=Design(mechanism=mech, currency=currency, fees=FeeSchedule(),
                      reputation=reputation, audit=policy),
        parameters=(
            Parameter("pool_stake_share", pool_stake_share,
                      "share of a deal the workerpool stakes", "docs.iex.ec Proof of "
                      "Contribution"),
            Parameter("currency", currency, "what deals are paid in (RLC on chain)",
                      "simulation choice"),
            Parameter("reputation", reputation, "worker score model (+1, x2/3): trust "
                      "checks read it", "IexecPoco2Facet.sol; auction.reputation.IExecModel"),
            *audit_rows,
        ),
    )
