"""The gang mechanism: build the MILP, solve it within the time limit, fall back to the
greedy allocation, price (see `auction.mechanisms.gang`)."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import attrs
import numpy as np
import numpy.typing as npt

from auction.errors import InvalidOptionError
from auction.limits import Deadline
from auction.market import Market
from auction.mechanisms import options
from auction.mechanisms.base import MechanismBase, MechanismTags
from auction.mechanisms.gang.heuristic import greedy_allocation, welfare_of
from auction.mechanisms.gang.pricing import supporting_prices
from auction.problems.gang import GangProblem, build_problem, verify_allocation
from auction.problems.memory import pair_memory
from auction.result import ClearingResult, Status
from auction.solvers.milp import lp_relaxation, milp_outcome, solve_highs, solve_pulp
from auction.solvers.outcome import SolverOutcome
from auction.solvers.pulp_solvers import available_pulp_solvers

__all__ = ["Gang"]

IntArray = npt.NDArray[np.int64]
Allocation = tuple[IntArray, IntArray, IntArray]

#: Share of the time left after the build that the MILP solver gets; the rest is for the LP
#: relaxation, the greedy fallback and the pricing.
SOLVER_SHARE = 0.5
#: Seconds HiGHS (through scipy) spends outside its own time limit, per variable and nonzero
#: (model conversion and setup; measured: about 1 s at 0.46 M variables, 0.92 M nonzeros).
_SOLVER_OVERHEAD = 0.8e-6
#: Fewest seconds worth handing the solver after its overhead; with less it is not run.
_MIN_SOLVER_SECONDS = 0.05
#: Seconds standing for "no limit" where a solver needs a number.
_UNLIMITED = 1e9
#: Bytes held per eligible pair: the market's pairs, the model's arrays and sparse matrix,
#: and HiGHS' copy of it (PuLP holds far more: Python objects per variable and term).
_BYTES_PER_PAIR = {"highs": 600, "pulp": 6000}


@attrs.frozen
class Gang(MechanismBase):
    """Welfare-maximizing clearing of whole, divisible and cluster requests on shared offers,
    by a MILP (see the package docstring and docs/gang.md).

    Args:
        payment: ``"pay-as-bid"`` (default) or ``"uniform"`` (supporting per-offer prices,
            when they exist; else pay-as-bid, and the result says so).
        backend: ``"highs"`` (default: HiGHS through `scipy.optimize.milp`) or ``"pulp"``.
        backend_options: with ``backend="pulp"``, ``{"solver": name}``, the PuLP solver
            (``"PULP_CBC_CMD"``, the default, CBC; ``"HiGHS"``; ...).
        mip_gap: relative gap at which the solver may stop. 0 (default) solves to proven
            optimality; a positive gap trades optimality for time, and a result stopped by it
            is ``feasible``, not ``success``.
        time_limit: seconds of wall time for the whole clearing (see the package docstring);
            past it the result has status ``time_limit``.
        max_memory: see `MechanismBase`.
    """

    name: ClassVar[str] = "gang"
    tags = MechanismTags(
        payments=("pay-as-bid", "uniform"), exact_optimal=False, divisible=True,
        needs_solver=True, individually_rational=True, budget_balanced=True,
    )
    backends: ClassVar[tuple[str, ...]] = ("highs", "pulp")

    backend: str = options.choice("highs", backends)
    backend_options: Mapping[str, Any] = options.mapping(("solver",))
    mip_gap: float = options.number(0.0, minimum=0.0, maximum=1.0)

    @property
    def solver(self) -> str:
        """The PuLP solver's name (``backend_options["solver"]``, default ``"PULP_CBC_CMD"``)."""
        return str(self.backend_options.get("solver", "PULP_CBC_CMD"))

    def _check_options(self) -> None:
        if not isinstance(self.backend_options.get("solver", "x"), str) or not self.solver:
            raise InvalidOptionError("backend_options", dict(self.backend_options),
                                     "solver must be a PuLP solver name", mechanism=self.name)
        if self.backend == "pulp":
            found = available_pulp_solvers()
            if self.solver not in found:
                raise InvalidOptionError(
                    "backend_options", dict(self.backend_options),
                    f"PuLP solver {self.solver!r} is not available; available: {found}",
                    mechanism=self.name,
                )

    def memory_estimate(self, market: Market) -> tuple[str, int] | None:
        return pair_memory(market, _BYTES_PER_PAIR[self.backend], self.memory_limit)

    @property
    def _solver_label(self) -> str:
        return "highs" if self.backend == "highs" else f"pulp:{self.solver}"

    def _solve(self, problem: GangProblem, seconds: float) -> SolverOutcome:
        if self.backend == "highs":
            return solve_highs(problem, time_limit=seconds, mip_gap=self.mip_gap)
        return solve_pulp(problem, solver=self.solver, time_limit=seconds, mip_gap=self.mip_gap)

    def _clear(
        self, market: Market, rng: np.random.Generator | None, deadline: Deadline
    ) -> ClearingResult:
        # build
        t0 = time.perf_counter()
        problem = build_problem(market)
        diag: dict[str, Any] = {
            "solver": self._solver_label, "variables": problem.n_vars,
            "constraints": problem.n_rows, "nonzeros": int(problem.matrix.nnz),
            "edges": problem.n_pairs, "sites": problem.n_sites,
            "build_seconds": time.perf_counter() - t0,
        }
        empty = np.zeros(0, dtype=np.int64)
        if problem.n_pairs == 0:
            diag.update(source="none", solver_status="not_run",
                        solver_message="not run: no eligible pairs", nodes=None,
                        solve_seconds=0.0, objective=0, bound=0.0, gap=0.0)
            return self._result(market, problem, (empty, empty, empty), Status.SUCCESS,
                                "optimal: no request has an eligible offer", diag, deadline)
        # solve
        t1 = time.perf_counter()
        budget = deadline.remaining(SOLVER_SHARE)
        overhead = _SOLVER_OVERHEAD * (problem.n_vars + int(problem.matrix.nnz))
        if budget is not None:
            budget -= overhead
        if budget is not None and budget < _MIN_SOLVER_SECONDS:
            # HiGHS would spend longer taking the model in than the time left: skip it
            outcome = milp_outcome(None, False, None, f"not run: {budget + overhead:.3g} s left, "
                                   f"below the solver's estimated overhead of {overhead:.3g} s",
                                   solver=self._solver_label, edges=problem.n_pairs)
        else:
            outcome = self._solve(problem, _UNLIMITED if budget is None else budget)
        diag.update(solve_seconds=time.perf_counter() - t1, solver_status=outcome.status,
                    solver_message=outcome.message,
                    nodes=outcome.nodes)
        if outcome.error:
            diag.update(source="none", objective=None, bound=None, gap=None)
            return self._result(market, problem, (empty, empty, empty), Status.FAILED,
                                f"the solver {self._solver_label} failed: {outcome.message}", diag,
                                deadline)
        # an upper bound on the optimum: the least of the solver's, the LP relaxation's (when
        # the result is not proven optimal) and "every request at its best surplus"
        bound = _min_bound(float(_trivial_bound(problem, market)), outcome.bound)
        solver = self._solver_label
        status = Status.FEASIBLE
        why = ""
        alloc: Allocation = (empty, empty, empty)
        welfare, source = 0, "none"
        if outcome.values is not None:
            alloc = problem.allocation(outcome.values)
            verify_allocation(market, *alloc)
            welfare, source = welfare_of(market, *alloc), "milp"
            proven = outcome.optimal and (
                bound - welfare < 1 if outcome.bound is not None else self.mip_gap == 0
            )
            if proven:
                diag.update(source=source, objective=welfare, bound=float(welfare), gap=0.0)
                return self._result(market, problem, alloc, Status.SUCCESS,
                                    f"optimal (proven by {solver})", diag, deadline)
            if outcome.optimal:
                why = f"stopped at mip_gap={self.mip_gap:g}"
            else:
                why, status = self._time_limit_text(), Status.TIME_LIMIT
            message = f"{why}: best solution found by {solver}"
        else:
            status = Status.TIME_LIMIT
        # fall back: not proven optimal. The LP relaxation (if time is left) gives a bound and
        # guides the greedy allocation, which is always computed (fast, and valid)
        t2 = time.perf_counter()
        greedy = greedy_allocation(problem, market)
        how = "greedy allocation (by surplus density)"
        greedy_seconds = time.perf_counter() - t2
        left = deadline.remaining()
        lp = None
        reserve = 2 * greedy_seconds + overhead  # a 2nd greedy, and HiGHS' own overhead
        if left is None or left > reserve + greedy_seconds + 0.1:
            lp = lp_relaxation(problem, time_limit=_UNLIMITED if left is None
                               else max(0.05, left - reserve))
        bound = _min_bound(bound, None if lp is None else lp[0])
        left = deadline.remaining()
        if lp is not None and (left is None or left > 1.5 * greedy_seconds):
            guided = greedy_allocation(problem, market, lp[1])
            if welfare_of(market, *guided) > welfare_of(market, *greedy):
                greedy, how = guided, "greedy allocation guided by the LP relaxation"
        verify_allocation(market, *greedy)
        diag["fallback_seconds"] = time.perf_counter() - t2
        g_welfare = welfare_of(market, *greedy)
        if outcome.values is None:
            alloc, welfare, source = greedy, g_welfare, "greedy"
            message = (f"{solver} found no solution within the {self._time_limit_text()}: "
                       f"{how}")
        elif g_welfare > welfare:
            alloc, welfare, source = greedy, g_welfare, "greedy"
            message = f"{why}: the {how} beats {solver}'s best solution"
        gap = _gap(welfare, bound)
        message += f", welfare {welfare}, within {100 * gap:.3g}% of the bound {bound:.12g}"
        diag.update(source=source, objective=welfare, bound=bound, gap=gap)
        return self._result(market, problem, alloc, status, message, diag, deadline)

    def _time_limit_text(self) -> str:
        limit = "none" if self.time_limit is None else f"{self.time_limit:g} s"
        return f"time limit of {limit} reached"

    def _result(
        self, market: Market, problem: GangProblem, alloc: Allocation, status: Status,
        message: str, diag: dict[str, Any], deadline: Deadline,
    ) -> ClearingResult:
        req, off, gpus = alloc
        of = market.snapshot.offers
        unit = of.price[off]
        payment = self.payment
        if self.payment == "uniform" and status is not Status.FAILED:
            t = time.perf_counter()
            left = deadline.remaining()
            if left is not None and left <= 0:
                prices, found = None, "no time left to look for supporting prices"
            else:
                prices, found = supporting_prices(
                    problem, market, req, off, gpus,
                    time_limit=_UNLIMITED if left is None else max(left, 0.05),
                )
            diag["pricing_seconds"] = time.perf_counter() - t
            diag["equilibrium"] = found
            if prices is None:
                diag["equilibrium_prices"] = None
                payment = "pay-as-bid"
                message += f"; {found}: paid as bid (payment downgraded from 'uniform')"
            else:
                ids = of.id[market.offer_order].tolist()
                diag["equilibrium_prices"] = dict(
                    zip(ids, prices[market.offer_order].tolist(), strict=True)
                )
                unit = prices[off]
                message += f"; {found}"
                if status in (Status.FEASIBLE, Status.TIME_LIMIT):
                    # supporting prices prove optimality (first welfare theorem)
                    status = Status.SUCCESS
                    welfare = diag["objective"]
                    diag.update(bound=float(welfare), gap=0.0)
                    message = (f"optimal (proven by supporting prices; the solver had not "
                               f"proven it): {found}")
        elif self.payment == "uniform":
            diag["equilibrium"] = "not checked: no allocation"
            diag["equilibrium_prices"] = None
        diag["payment_downgraded"] = payment != self.payment
        return ClearingResult.from_allocation(
            market, req, off, gpus, unit, mechanism=self.name, payment=payment, status=status,
            message=message, options=self.get_options(), diagnostics=diag,
        )


def _trivial_bound(problem: GangProblem, market: Market) -> int:
    """Each request at its best surplus for all its GPUs: an upper bound on the welfare."""
    if problem.n_pairs == 0:
        return 0
    best = np.zeros(market.n_requests, dtype=np.int64)
    np.maximum.at(best, problem.pair_request, problem.pair_surplus)
    gp = market.snapshot.requests.gpus
    return sum(int(b) * int(g) for b, g in zip(best.tolist(), gp.tolist(), strict=True) if b)


def _min_bound(a: float, b: float | None) -> float:
    return a if b is None else min(a, b)


def _gap(welfare: int, bound: float) -> float:
    """Share of the bound that the welfare may fall short of the optimum by, in [0, 1]."""
    if bound <= 0 or not math.isfinite(bound):
        return 0.0
    return max(0.0, (bound - welfare) / bound)
