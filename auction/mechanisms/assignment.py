"""Welfare-optimal batch clearing: maximum-weight matching by the auction algorithm.

Objective: maximize total surplus, the sum over allocations of (max_price - ask) x gpus, where
each request is served whole by one offer or not at all, and (exclusive offers, the default)
each offer hosts at most one request, as an Akash bid answers one order. This is a sparse,
rectangular maximum-weight bipartite matching, solved exactly by Bertsekas' forward/reverse
auction with epsilon scaling (`auction.kernels.assignment`).

Scoring markets (`Market` with a ``quality_weight``): the objective is the total *score*,
(max_price - ask + bonus) x gpus (Che 1993), so a better provider may win at a higher ask.
Only ``pay-as-bid`` is offered there: VCG or uniform payments in score units could charge a
tenant above its max price. The result's ``welfare`` stays the surplus without bonuses.

Ties: among allocations of equal welfare the auction leans towards more trades (each pair's
weight gets a +1 below the exactness threshold; a preference, not a guarantee), and runs in
canonical order (requests by priority, offers by rank), so the same market always gives the
same allocation.

Payment rules:

* ``pay-as-bid`` (default): each provider is paid its ask.
* ``vcg``: each provider is paid its asks plus its marginal contribution W* - W*(without it),
  the welfare lost if all its offers left. Truthful for providers. A provider's bonus is split
  over its allocations in proportion to their surplus (largest remainder, ties to the earlier
  row). Row payments (``provider_payment``, ``tenant_payment``) are exact; ``unit_price`` is
  the row payment per GPU-hour rounded down. Bonuses per provider: ``diagnostics["vcg_bonus"]``.
* ``uniform``: for a market with one resource class, one price for every trade: the highest
  accepted ask, the lowest price that pays every accepted provider at least its ask. If it
  exceeds some served request's max price, no uniform price supports the optimal allocation
  and `UnsupportedMarketError` says so.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import attrs
import numpy as np
import numpy.typing as npt

from auction._arrays import gather_ranges, group_starts
from auction.errors import AuctionOverflowError, SolverError, UnsupportedMarketError
from auction.kernels.assignment import (
    DONE,
    LOCAL_BIDS,
    check_eps_cs,
    solve_bounded,
    vcg_bonuses_bounded,
)
from auction.kernels.budget import STATUS_NAMES, vcg_work_bound
from auction.limits import Deadline
from auction.market import Market
from auction.mechanisms import options
from auction.mechanisms.base import MechanismBase, MechanismTags
from auction.money import split_largest_remainder
from auction.problems.memory import pair_memory
from auction.result import ClearingResult, Status

__all__ = [
    "Assignment",
    "MatchingProblem",
    "matching_problem",
    "shared_problem",
    "solve_matching",
]

IntArray = npt.NDArray[np.int64]
_LIMIT = 1 << 61  # benefits and prices stay below this (the kernel prices removed offers here)
#: Bytes held per eligible pair: the market's pair CSR and priority list, the problem's
#: columns and weights, the kernel's benefits and its working arrays.
_BYTES_PER_PAIR = 112
#: Share of the time left after the build that the auction gets when VCG payments follow
#: (the re-solves get the rest).
VCG_SOLVE_SHARE = 0.5


@attrs.frozen(eq=False)
class MatchingProblem:
    """A market as a matching problem in canonical order.

    Person p stands for request row ``person_request[p]`` and object o for offer row
    ``object_offer[o]``; persons follow request priority and objects offer rank. Row p's
    edges are ``cols[indptr[p]:indptr[p+1]]`` with welfare weight ``weight`` per hour.
    Exclusive offers: one person per request and one object per offer, weight
    (max_price - ask) x gpus. Shared capacity: one person per requested GPU and one object
    per offered GPU, weight max_price - ask.
    """

    person_request: IntArray
    object_offer: IntArray
    indptr: IntArray
    cols: IntArray
    weight: IntArray

    @property
    def n(self) -> int:
        return len(self.indptr) - 1

    @property
    def m(self) -> int:
        return len(self.object_offer)


def _check_weights(weight: IntArray) -> None:
    if len(weight) and int(weight.max()) >= _LIMIT:
        raise AuctionOverflowError(
            "surplus x gpus exceeds 2**61 smallest units per hour; use a coarser currency unit"
        )


def matching_problem(market: Market) -> MatchingProblem:
    """Exclusive offers: pairs whose offer can host the whole request, weighted by surplus."""
    rq, of = market.snapshot.requests, market.snapshot.offers
    person, rows, offers, surplus = market.priority_pairs()
    surplus = surplus + market.offer_bonus[offers]  # the score (Che 1993); bonus 0 by default
    keep = of.gpus[offers] >= rq.gpus[rows]
    person, rows, offers, surplus = person[keep], rows[keep], offers[keep], surplus[keep]
    gpus = rq.gpus[rows]
    if len(surplus) and int(surplus.max()) > (_LIMIT - 1) // max(1, int(gpus.max())):
        _check_weights(np.array([_LIMIT]))
    indptr = group_starts(person, market.n_requests)
    return MatchingProblem(
        person_request=market.request_order,
        object_offer=market.offer_order,
        indptr=indptr,
        cols=market.offer_rank[offers],
        weight=surplus * gpus,
    )


def shared_problem(market: Market, max_edges: int) -> MatchingProblem:
    """Shared capacity: one person per requested GPU, one object per offered GPU.

    Each GPU of a request may take any free GPU of an eligible offer, so an offer hosts
    several requests up to its capacity and a divisible request may be split. The auction
    then solves the transportation problem exactly (units of one request or offer are
    interchangeable). Raises `UnsupportedMarketError` past `max_edges` unit edges.
    """
    rq, of = market.snapshot.requests, market.snapshot.offers
    # object ids: the GPUs of each offer, offers in rank order
    cap = of.gpus[market.offer_order]
    slot_base = np.zeros(market.n_offers, dtype=np.int64)
    slot_base[market.offer_order] = np.cumsum(cap) - cap
    person, _, offers, surplus = market.priority_pairs()
    surplus = surplus + market.offer_bonus[offers]
    # per request (priority order): its eligible slots, each offer's GPUs in a run
    slot_idx = gather_ranges(slot_base[offers], of.gpus[offers])
    slot_w = np.repeat(surplus, of.gpus[offers])
    n_req = market.n_requests
    seg_len = np.bincount(person, weights=of.gpus[offers], minlength=n_req).astype(np.int64)
    seg_start = np.cumsum(seg_len) - seg_len
    units = rq.gpus[market.request_order]
    total = int((units * seg_len).sum())
    if total > max_edges:
        raise UnsupportedMarketError(
            "assignment",
            f"shared capacity needs {total} GPU-to-GPU edges, more than max_edges={max_edges}",
            ["first-price", "second-price"],
        )
    unit_req = np.repeat(np.arange(n_req, dtype=np.int64), units)
    idx = gather_ranges(seg_start[unit_req], seg_len[unit_req])
    indptr = np.zeros(len(unit_req) + 1, dtype=np.int64)
    np.cumsum(seg_len[unit_req], out=indptr[1:])
    weight = slot_w[idx]
    _check_weights(weight)
    return MatchingProblem(
        person_request=market.request_order[unit_req],
        object_offer=np.repeat(market.offer_order, cap),
        indptr=indptr,
        cols=slot_idx[idx],
        weight=weight,
    )


def scaled_benefits(problem: MatchingProblem) -> tuple[IntArray, int]:
    """Bidding benefits ``weight * (2n + 1) + 1`` and the scale ``2n + 1``.

    With final epsilon 1 the auction is within n scaled units of the optimum. A matching that
    lost one unit of welfare would lose at least ``scale - n > n`` scaled units, even counting
    the +1 per trade (at most n), so the result is welfare-exact; the +1 leans the auction
    towards more trades among allocations of equal welfare (not guaranteed: the last n
    scaled units are not resolved).
    """
    scale = 2 * problem.n + 1
    w = problem.weight
    if len(w) and int(w.max()) > (_LIMIT // 4 - 1) // scale:
        raise AuctionOverflowError(
            f"welfare weights up to {int(w.max())} x scale {scale} overflow the exact auction "
            "(limit 2**59); use a coarser currency unit or clear smaller batches"
        )
    return w * scale + 1, scale


def solve_matching(
    problem: MatchingProblem, *, theta: int = 10, backend: str = "numba",
    deadline: float | None = None, max_work: int | None = None,
) -> tuple[IntArray, IntArray, IntArray, IntArray, dict[str, Any]]:
    """Run the auction; return (benefits, pedge, price, profit, stats).

    The auction is bounded (`auction.kernels.assignment.solve_bounded`): at most `max_work`
    bids (default: its theoretical bound) and stopped at `deadline` (a ``time.monotonic()``
    value; None: none). ``stats["kernel_status"]`` is ``"done"``, ``"work_limit"`` or
    ``"deadline"``; when it is not ``"done"`` pedge is a feasible matching (each object held
    once), not an optimal one.
    """
    a, scale = scaled_benefits(problem)
    pedge, price, profit, fbids, rbids, phases, status = solve_bounded(
        problem.n, problem.m, problem.indptr, problem.cols, a, theta, max_work=max_work,
        deadline=deadline, backend=backend,
    )
    stats = {"forward_bids": int(fbids), "reverse_bids": int(rbids), "phases": int(phases),
             "scale": scale, "kernel_status": STATUS_NAMES[int(status)]}
    return a, pedge, price, profit, stats


def monotonic_deadline(deadline: Deadline, share: float = 1.0) -> float | None:
    """`deadline`'s end (`share` of what is left) as a ``time.monotonic()`` value for the
    kernels' stop flag; None when unlimited."""
    left = deadline.remaining(share)
    return None if left is None else time.monotonic() + left


@attrs.frozen
class Assignment(MechanismBase):
    """Welfare-optimal matching of requests to offers (see the module docstring).

    Args:
        payment: ``"pay-as-bid"`` (default), ``"vcg"`` or ``"uniform"``.
        shape: ``"exclusive"`` (default: an offer hosts at most one request, every request is
            served whole by one offer) or ``"shared"`` (an offer hosts requests up to its GPU
            capacity; divisible requests may be split; only for divisible or 1-GPU requests).
        theta: epsilon reduction factor between scaling phases (speed; never the welfare, but
            on ties it may change which optimal allocation is returned).
        debug: check epsilon-complementary slackness of the final solution and raise
            `SolverError` on a violation.
        backend: ``"numba"`` (default) or ``"python"`` (the kernel run as plain Python).
        max_edges: in the shared shape, the most GPU-to-GPU edges to build (memory bound).
        time_limit, max_memory: see `MechanismBase`.
    """

    name: ClassVar[str] = "assignment"
    tags = MechanismTags(
        payments=("pay-as-bid", "vcg", "uniform"), exact_optimal=True, divisible=True,
        scoring=True,
    )
    backends: ClassVar[tuple[str, ...]] = ("numba", "python")
    shapes: ClassVar[tuple[str, ...]] = ("exclusive", "shared")
    whole_request_reason: ClassVar[str] = (
        "non-divisible multi-GPU requests on shared offers make a generalized assignment "
        "problem (a MILP: the 'gang' mechanism solves it)"
    )

    shape: str = options.choice("exclusive", shapes)
    theta: int = options.integer(10, minimum=2)
    debug: bool = options.flag(False)
    backend: str = options.choice("numba", backends)
    max_edges: int = options.integer(50_000_000, minimum=0)

    def __auction_tags__(self) -> MechanismTags:
        return attrs.evolve(
            super().__auction_tags__(), truthful=self.payment == "vcg",
            splittable_only=self.shape == "shared",
        )

    def memory_estimate(self, market: Market) -> tuple[str, int] | None:
        return pair_memory(market, _BYTES_PER_PAIR, self.memory_limit)

    def check_market(self, market: Market) -> None:
        super().check_market(market)
        alternatives = [("assignment", {"payment": "vcg"}),
                        ("assignment", {"payment": "pay-as-bid"})]
        if self.payment == "uniform" and market.n_classes > 1:
            raise self.refuse(
                f"payment 'uniform' needs one resource class, the market has {market.n_classes}",
                alternatives,
            )
        if self.payment != "pay-as-bid" and market.scoring:
            raise self.refuse(
                f"payment {self.payment!r} on a scoring market (quality bonuses) could charge "
                "tenants above their max price; scoring clears with pay-as-bid",
                [("assignment", {"payment": "pay-as-bid"}),
                 ("second-price", {"payment": "second-score"})],
            )

    def _clear(
        self, market: Market, rng: np.random.Generator | None, deadline: Deadline
    ) -> ClearingResult:
        if self.shape == "shared":
            problem = shared_problem(market, self.max_edges)
        else:
            problem = matching_problem(market)
        deadline.check(self.name, "building the matching problem")
        # the auction gets all the time left, or half of it when VCG payments follow
        share = VCG_SOLVE_SHARE if self.payment == "vcg" else 1.0
        a, pedge, price, profit, stats = solve_matching(
            problem, theta=self.theta, backend=self.backend,
            deadline=monotonic_deadline(deadline, share),
        )
        status, message = Status.SUCCESS, ""
        if stats["kernel_status"] != "done":
            status, message = self._stopped(stats["kernel_status"], "the auction",
                                             "its matching so far (feasible, not optimal)")
        if self.debug and status is Status.SUCCESS:
            violation = check_eps_cs(problem.indptr, problem.cols, a, pedge, price, profit, 1)
            if violation is not None:
                raise SolverError(self.name, "auction", f"eps-CS violated: {violation}")
            stats["eps_cs"] = "ok"
        rq, of = market.snapshot.requests, market.snapshot.offers
        matched = np.flatnonzero(pedge >= 0)
        edges = pedge[matched]
        # one row per (request, offer): shared units of the same pair add up
        key = problem.person_request[matched] * max(1, market.n_offers) + problem.object_offer[
            problem.cols[edges]
        ]
        pair_key, row_of_edge = np.unique(key, return_inverse=True)
        req = pair_key // max(1, market.n_offers)
        off = pair_key % max(1, market.n_offers)
        weight = np.zeros(len(pair_key), dtype=np.int64)
        np.add.at(weight, row_of_edge, problem.weight[edges])  # integer sums: exact
        if self.shape == "shared":
            gpus = np.bincount(row_of_edge, minlength=len(pair_key)).astype(np.int64)
        else:
            gpus = rq.gpus[req]
        # canonical row order (request priority, offer rank): row numbers depend on the order
        # orders were added, and the VCG split breaks ties by row
        canon = np.lexsort((market.offer_rank[off], market.request_rank[req]))
        req, off, weight, gpus = req[canon], off[canon], weight[canon], gpus[canon]
        ask = of.price[off]
        scale = stats["scale"]
        diagnostics: dict[str, Any] = {
            **stats,
            # duals in welfare units per hour (per GPU in the shared shape); an offer's price
            # is its cheapest GPU's, a request's profit its least-served GPU's
            "dual_prices": _per_row(price / scale, problem.object_offer, market.n_offers),
            "dual_profits": _per_row(profit / scale, problem.person_request, market.n_requests),
            "pairs": len(problem.cols),
            "edges": len(problem.cols),
        }
        unit = ask.copy()
        payment: list[int] | None = None
        rule = self.payment
        if self.payment == "vcg":
            paid = None
            if status is Status.SUCCESS:  # VCG needs the optimum
                paid, vcg_status, done = self._vcg(market, problem, a, pedge, price, profit,
                                                   weight, gpus, off, deadline)
                diagnostics["vcg_groups_done"] = done
            if paid is None:
                if status is Status.SUCCESS:
                    status, message = self._stopped(
                        vcg_status, "the VCG payments", "the optimal matching")
                rule = "pay-as-bid"
                message += "; paid as bid (payment downgraded from 'vcg')"
            else:
                payment, diagnostics["vcg_bonus"] = paid
        elif self.payment == "uniform" and len(req):
            p = int(ask.max())
            lowest = int(rq.max_price[req].min())
            if p > lowest and status is not Status.SUCCESS:
                rule = "pay-as-bid"
                message += ("; no uniform price supports this allocation: paid as bid "
                            "(payment downgraded from 'uniform')")
            elif p > lowest:
                raise self.refuse(
                    f"no uniform price supports the optimal allocation: the highest accepted "
                    f"ask {p} exceeds the lowest served max price {lowest}",
                    [("assignment", {"payment": "vcg"}),
                     ("assignment", {"payment": "pay-as-bid"})],
                )
            else:
                unit = np.full(len(req), p, dtype=np.int64)
        diagnostics["payment_downgraded"] = rule != self.payment
        return ClearingResult.from_allocation(
            market, req, off, gpus, unit,
            provider_payment=payment, tenant_payment=payment,
            mechanism=self.name, payment=rule, options=self.get_options(),
            diagnostics=diagnostics, status=status, message=message,
        )

    def _stopped(self, kernel_status: str, stage: str, kept: str) -> tuple[Status, str]:
        """The status and message of a clearing whose `stage` stopped at a limit."""
        if kernel_status == "deadline":
            limit = "none" if self.time_limit is None else f"{self.time_limit:g} s"
            return Status.TIME_LIMIT, f"time limit of {limit} reached in {stage}: {kept}"
        return Status.FEASIBLE, f"work bound reached in {stage}: {kept}"

    def _vcg(
        self, market: Market, problem: MatchingProblem, a: IntArray, pedge: IntArray,
        price: IntArray, profit: IntArray, weight: IntArray, gpus: IntArray, off: IntArray,
        deadline: Deadline,
    ) -> tuple[tuple[list[int], dict[str, int]] | None, str, int]:
        """Row payments (asks plus each provider's VCG bonus) and the bonus per provider, or
        None when the bounded re-solves stopped (work bound or `deadline`); then the kernel
        status and the provider groups done."""
        of = market.snapshot.offers
        provider = of.provider[problem.object_offer]  # per object
        groups = np.argsort(provider, kind="stable").astype(np.int64)
        n_parties = len(market.snapshot.parties)
        gptr = group_starts(provider, n_parties)
        # the hybrid's bound: its local auctions' budgets plus the shortest-path re-solves'
        # (`vcg_bonuses_bounded`'s default counts the latter only)
        budget = LOCAL_BIDS * (min(problem.n, problem.m) + 16 * n_parties) + vcg_work_bound(
            problem.n, problem.m, len(problem.cols))
        bonus, code, done = vcg_bonuses_bounded(
            problem.n, problem.m, problem.indptr, problem.cols, a, problem.weight, pedge,
            price, gptr, groups, max_work=budget, deadline=monotonic_deadline(deadline),
            backend=self.backend, profit=profit,
        )
        if code != DONE:
            return None, STATUS_NAMES[code], done
        row_bonus = np.zeros(len(off), dtype=np.int64)
        row_provider = of.provider[off]
        for c in np.unique(row_provider):
            rows = np.flatnonzero(row_provider == c)
            row_bonus[rows] = split_largest_remainder(int(bonus[c]), weight[rows].tolist())
        parties = market.snapshot.parties
        paid = {parties[c]: int(bonus[c]) for c in np.unique(row_provider).tolist()}
        amounts = zip(of.price[off].tolist(), gpus.tolist(), row_bonus.tolist(), strict=True)
        # exact: p * g may pass int64
        return ([p * g + b for p, g, b in amounts], paid), STATUS_NAMES[DONE], done


def _per_row(values: npt.NDArray[Any], row: IntArray, n: int) -> npt.NDArray[np.float64]:
    """Least value per row over the units standing for it (NaN-free: rows without units get 0)."""
    out = np.full(n, np.inf)
    np.minimum.at(out, row, values)
    out[np.isinf(out)] = 0.0
    out.flags.writeable = False
    return out
