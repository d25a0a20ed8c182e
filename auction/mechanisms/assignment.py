"""Welfare-optimal batch clearing: maximum-weight matching by the auction algorithm.

Objective: maximize total surplus, the sum over allocations of (max_price - ask) x gpus, where
each request is served whole by one offer or not at all, and (exclusive offers, the default)
each offer hosts at most one request, as an Akash bid answers one order. This is a sparse,
rectangular maximum-weight bipartite matching, solved exactly by Bertsekas' forward/reverse
auction with epsilon scaling (`auction.kernels.assignment`). With ``shape="shared"`` an offer
hosts requests up to its GPU capacity: the transportation problem
(`auction.problems.transport`), solved exactly by the min-cost-flow kernel
(`auction.solvers.flow`) on requests x offers edges, without expanding GPUs into units.

Each shape reads build -> solve -> price: the problem from `auction.problems`, a bounded solve
under the clearing's deadline, then the payment rule. A solve stopped by ``time_limit`` or its
work bound gives status ``time_limit`` (``feasible`` for the work bound) with the best feasible
allocation found; VCG payments that cannot finish are an explicit downgrade to pay-as-bid
(``result.payment_downgraded``), see docs/assignment.md.

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
from collections.abc import Callable
from typing import Any, ClassVar

import attrs
import numpy as np
import numpy.typing as npt

from auction._arrays import group_starts
from auction.errors import AuctionOverflowError, SolverError
from auction.kernels.assignment import (
    DONE,
    check_eps_cs,
    solve_bounded,
    vcg_bonuses_bounded,
    vcg_groups,
)
from auction.kernels.budget import STATUS_NAMES, stop_at, vcg_work_bound
from auction.kernels.dense import CHECK_FAILED, MAX_WEIGHT, dense_assignment, use_dense
from auction.limits import Deadline
from auction.market import Market
from auction.mechanisms import options
from auction.mechanisms.base import MechanismBase, MechanismTags
from auction.money import split_largest_remainder
from auction.problems.matching import MatchingProblem, matching_problem, scaled_benefits
from auction.problems.memory import pair_memory
from auction.problems.transport import TransportProblem, equilibrium_prices, transport_problem
from auction.result import ClearingResult, Status
from auction.solvers.flow import solve_flow

__all__ = [
    "Assignment",
    "MatchingProblem",
    "matching_problem",
    "scaled_benefits",
    "solve_matching",
]

IntArray = npt.NDArray[np.int64]
#: Bytes held per eligible pair: the market's pair CSR and priority list, the problem's
#: columns and weights, the kernel's benefits and its working arrays.
_BYTES_PER_PAIR = 112
#: Share of the time left after the build that the auction gets when VCG payments follow
#: (the re-solves get the rest).
VCG_SOLVE_SHARE = 0.5
#: Least requests x offers for the dense Jonker-Volgenant path (`auction.kernels.dense`);
#: below it the auction is as fast and keeps its lean towards more trades on ties.
DENSE_MIN_CELLS = 250_000


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
        max_edges: in the shared shape, the most request-offer edges to build (memory bound).
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
        # build -> solve (bounded, under the deadline) -> price
        if self.shape == "shared":
            solved = self._solve_shared(market, deadline)
        else:
            solved = self._solve_exclusive(market, deadline)
        req, off, gpus, weight, status, message, diagnostics, vcg = solved
        rq, of = market.snapshot.requests, market.snapshot.offers
        ask = of.price[off]
        unit = ask.copy()
        payment: list[int] | None = None
        rule = self.payment
        if self.payment == "vcg":
            bonus = None
            if status is Status.SUCCESS:  # VCG needs the optimum
                bonus, vcg_status, done = vcg(deadline)
                diagnostics["vcg_groups_done"] = done
                if bonus is None:
                    status, message = self._stopped(
                        vcg_status, "the VCG payments", "the optimal allocation")
            if bonus is None:
                rule = "pay-as-bid"
                message += "; paid as bid (payment downgraded from 'vcg')"
            else:
                payment, diagnostics["vcg_bonus"] = _vcg_rows(market, bonus, weight, gpus, off)
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

    def _solve_exclusive(self, market: Market, deadline: Deadline) -> _Solved:
        """The matching by the bounded auction; VCG by warm-started re-solves."""
        problem = matching_problem(market)
        deadline.check(self.name, "building the matching problem")
        if self._dense(problem):
            return self._solve_dense(market, problem, deadline)
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
        rq = market.snapshot.requests
        req, off, weight = _canonical_rows(market, problem, pedge)
        scale = stats["scale"]
        diagnostics: dict[str, Any] = {
            **stats,
            # duals in welfare units per hour
            "dual_prices": _per_row(price / scale, problem.object_offer, market.n_offers),
            "dual_profits": _per_row(profit / scale, problem.person_request, market.n_requests),
            "pairs": len(problem.cols),
            "edges": len(problem.cols),
        }

        def vcg(deadline: Deadline) -> tuple[IntArray | None, str, int]:
            gptr, groups = _provider_groups(market, problem.object_offer)
            bonus, code, done = vcg_bonuses_bounded(  # work bound: vcg_hybrid_work_bound
                problem.n, problem.m, problem.indptr, problem.cols, a, problem.weight, pedge,
                price, gptr, groups, deadline=monotonic_deadline(deadline),
                backend=self.backend, profit=profit,
            )
            return (bonus if code == DONE else None), STATUS_NAMES[code], done

        return req, off, rq.gpus[req], weight, status, message, diagnostics, vcg

    def _dense(self, problem: MatchingProblem) -> bool:
        """True when the dense Jonker-Volgenant path is the faster exact one: a compiled
        backend, at least `DENSE_MIN_CELLS` cells, density ``DENSE_MIN_DENSITY`` or more, and
        weights in its exact range."""
        return (
            self.backend == "numba" and problem.n * problem.m >= DENSE_MIN_CELLS
            and use_dense(problem.n, problem.m, len(problem.cols))
            and (not len(problem.weight) or int(problem.weight.max()) < MAX_WEIGHT)
        )

    def _solve_dense(
        self, market: Market, problem: MatchingProblem, deadline: Deadline
    ) -> _Solved:
        """Dense markets: the matching and exact duals by Jonker-Volgenant; VCG by
        shortest-path re-solves warm-started from those duals (`vcg_groups`)."""
        share = VCG_SOLVE_SHARE if self.payment == "vcg" else 1.0
        started = time.perf_counter()
        pedge, u, p, code = dense_assignment(
            problem.n, problem.m, problem.indptr, problem.cols, problem.weight,
            deadline=monotonic_deadline(deadline, share),
        )
        if code == CHECK_FAILED:
            raise SolverError(self.name, "dense", "the JV solution failed its optimality check")
        kernel_status = STATUS_NAMES[code]
        status, message = Status.SUCCESS, ""
        if kernel_status != "done":
            status, message = self._stopped(kernel_status, "the dense solve",
                                            "its matching so far (feasible, not optimal)")
        req, off, weight = _canonical_rows(market, problem, pedge)
        diagnostics: dict[str, Any] = {
            "method": "jv", "kernel_status": kernel_status,
            "solve_seconds": time.perf_counter() - started,
            "dual_prices": _per_row(p.astype(np.float64), problem.object_offer,
                                    market.n_offers),
            "dual_profits": _per_row(u.astype(np.float64), problem.person_request,
                                     market.n_requests),
            "pairs": len(problem.cols),
            "edges": len(problem.cols),
        }

        def vcg(deadline: Deadline) -> tuple[IntArray | None, str, int]:
            gptr, groups = _provider_groups(market, problem.object_offer)
            out = np.zeros(len(gptr) - 1, dtype=np.int64)
            with stop_at(monotonic_deadline(deadline)) as stop:
                code, done, _ = vcg_groups(
                    problem.n, problem.m, problem.indptr, problem.cols, problem.weight,
                    pedge, u, p, gptr, groups, 0, out,
                    vcg_work_bound(problem.n, problem.m, len(problem.cols)), stop,
                )
            return (out if code == DONE else None), STATUS_NAMES[int(code)], int(done)

        rq = market.snapshot.requests
        return req, off, rq.gpus[req], weight, status, message, diagnostics, vcg

    def _solve_shared(self, market: Market, deadline: Deadline) -> _Solved:
        """The transportation problem by the bounded min-cost-flow kernel: edges stay
        requests x offers whatever the capacities; VCG by remove-and-resolve per provider."""
        problem = transport_problem(market)
        if problem.n_edges > self.max_edges:
            raise self.refuse(
                f"shared capacity needs {problem.n_edges} request-offer edges, more than "
                f"max_edges={self.max_edges}", ["first-price", "second-price"],
            )
        deadline.check(self.name, "building the transportation problem")
        share = VCG_SOLVE_SHARE if self.payment == "vcg" else 1.0
        outcome = solve_flow(problem, deadline=monotonic_deadline(deadline, share),
                             backend=self.backend, mechanism=self.name)
        diagnostics: dict[str, Any] = {**outcome.stats, "pairs": problem.n_edges}
        empty = np.zeros(0, dtype=np.int64)
        if outcome.values is None:  # stopped: nobody trading is the feasible allocation
            status, message = self._stopped(
                outcome.status.replace("time_limit", "deadline"), "the min-cost flow",
                "no allocation (an unfinished flow is not feasible)")
            return (empty, empty, empty, empty, status, message, diagnostics,
                    lambda _: (None, outcome.status, 0))
        x = outcome.values
        t0 = time.perf_counter()
        duals = _shared_duals(problem, x)
        diagnostics["certify_seconds"] = time.perf_counter() - t0
        if duals is None and self.debug:
            raise SolverError(self.name, "flow", "no duals certify the flow optimal")
        if duals is not None:
            rent, profit = duals
            diagnostics["dual_prices"] = _readonly_float(rent, problem.offer_row, market.n_offers)
            diagnostics["dual_profits"] = _readonly_float(profit, problem.request_row,
                                                          market.n_requests)
            if self.debug:
                diagnostics["certificate"] = "ok"
        used = np.flatnonzero(x)  # edges are in (request priority, offer rank) order
        req = problem.request_row[problem.person[used]]
        off = problem.offer_row[problem.obj[used]]
        gpus = x[used]
        welfare = int((problem.weight * x).sum())

        def vcg(deadline: Deadline) -> tuple[IntArray | None, str, int]:
            return _shared_vcg(market, problem, x, welfare, deadline, self.backend, self.name)

        return (req, off, gpus, problem.weight[used] * gpus, Status.SUCCESS, "", diagnostics,
                vcg)

    def _stopped(self, kernel_status: str, stage: str, kept: str) -> tuple[Status, str]:
        """The status and message of a clearing whose `stage` stopped at a limit."""
        if kernel_status == "deadline":
            limit = "none" if self.time_limit is None else f"{self.time_limit:g} s"
            return Status.TIME_LIMIT, f"time limit of {limit} reached in {stage}: {kept}"
        return Status.FEASIBLE, f"work bound reached in {stage}: {kept}"


#: What a shape's solve hands to the pricing: (request rows, offer rows, GPUs, welfare per
#: row, status, message, diagnostics, the VCG bonuses per party code under a deadline).
_Solved = tuple[IntArray, IntArray, IntArray, IntArray, Status, str, dict[str, Any],
                Callable[[Deadline], tuple[IntArray | None, str, int]]]


def _canonical_rows(
    market: Market, problem: MatchingProblem, pedge: IntArray
) -> tuple[IntArray, IntArray, IntArray]:
    """(request, offer, weight) of the matched edges in canonical row order (request
    priority, offer rank): row numbers must not depend on the order orders were added, and
    the VCG split breaks ties by row."""
    matched = np.flatnonzero(pedge >= 0)
    edges = pedge[matched]
    req = problem.person_request[matched]
    off = problem.object_offer[problem.cols[edges]]
    canon = np.lexsort((market.offer_rank[off], market.request_rank[req]))
    return req[canon], off[canon], problem.weight[edges][canon]


def _provider_groups(market: Market, object_offer: IntArray) -> tuple[IntArray, IntArray]:
    """Objects grouped by provider code: (group CSR pointer over party codes, objects)."""
    provider = market.snapshot.offers.provider[object_offer]
    groups = np.argsort(provider, kind="stable").astype(np.int64)
    return group_starts(provider, len(market.snapshot.parties)), groups


def _vcg_rows(
    market: Market, bonus: IntArray, weight: IntArray, gpus: IntArray, off: IntArray
) -> tuple[list[int], dict[str, int]]:
    """Row payments (asks plus each provider's bonus, split over its rows in proportion to
    their welfare, largest remainder) and the bonus per provider that trades."""
    of = market.snapshot.offers
    row_bonus = np.zeros(len(off), dtype=np.int64)
    row_provider = of.provider[off]
    for c in np.unique(row_provider):
        rows = np.flatnonzero(row_provider == c)
        row_bonus[rows] = split_largest_remainder(int(bonus[c]), weight[rows].tolist())
    parties = market.snapshot.parties
    paid = {parties[c]: int(bonus[c]) for c in np.unique(row_provider).tolist()}
    amounts = zip(of.price[off].tolist(), gpus.tolist(), row_bonus.tolist(), strict=True)
    return [p * g + b for p, g, b in amounts], paid  # exact: p * g may pass int64


def _shared_duals(problem: TransportProblem, x: IntArray) -> tuple[IntArray, IntArray] | None:
    """The lowest equilibrium prices certifying `x` optimal (None: not optimal, or beyond
    int64 at this market's prices, then not reported)."""
    try:
        return equilibrium_prices(problem, x, "lowest")
    except AuctionOverflowError:
        return None


def _readonly_float(values: IntArray, row: IntArray, n: int) -> npt.NDArray[np.float64]:
    out = np.zeros(n)
    out[row] = values
    out.flags.writeable = False
    return out


def _shared_vcg(
    market: Market, problem: TransportProblem, x: IntArray, welfare: int, deadline: Deadline,
    backend: str, mechanism: str,
) -> tuple[IntArray | None, str, int]:
    """VCG bonuses on the shared shape: remove each trading provider's offers (capacity 0)
    and re-solve with the flow kernel, bounded by its work bound and `deadline`; (bonus per
    party code, or None with the status of the re-solve that stopped; providers done)."""
    bonus = np.zeros(len(market.snapshot.parties), dtype=np.int64)
    provider = market.snapshot.offers.provider[problem.offer_row]  # per object
    load = np.bincount(problem.obj, weights=x, minlength=problem.m)
    trading = np.unique(provider[load > 0])  # other providers' removal changes nothing
    for done, code in enumerate(trading.tolist()):
        without = attrs.evolve(problem, capacity=np.where(provider == code, 0, problem.capacity))
        out = solve_flow(without, deadline=monotonic_deadline(deadline), backend=backend,
                         mechanism=mechanism)
        if out.values is None:
            return None, out.status.replace("time_limit", "deadline"), done
        bonus[code] = welfare - int((problem.weight * out.values).sum())
    return bonus, "done", len(trading)


def _per_row(values: npt.NDArray[Any], row: IntArray, n: int) -> npt.NDArray[np.float64]:
    """Least value per row over the units standing for it (NaN-free: rows without units get 0)."""
    out = np.full(n, np.inf)
    np.minimum.at(out, row, values)
    out[np.isinf(out)] = 0.0
    out.flags.writeable = False
    return out
