"""Bulk clearing as a transportation linear program, with competitive-equilibrium prices.

Formulation (one variable per eligible pair, GPUs per hour)::

    maximize    sum_(r,o) (max_price_r - ask_o) * x_ro
    subject to  sum_o x_ro <= gpus_r        for every request r    (dual u_r >= 0)
                sum_r x_ro <= gpus_o        for every offer o      (dual p_o >= 0)
                x_ro >= 0

Requests may be filled in part. The constraint matrix is totally unimodular, so a vertex
optimum is integral: every backend's answer is rounded, checked exactly in integers (demand,
capacity) and *certified optimal* by exhibiting integer duals that satisfy complementary
slackness (`equilibrium_prices`): a solver that stopped early or lost precision gives a
``failed`` result, never a silently wrong allocation.

Backends (``backend=``):

* ``"highs"`` (default): HiGHS through `scipy.optimize.linprog`; ``method`` picks the
  algorithm (``"ipm"``: interior point with crossover to a vertex, the default by
  measurement; ``"dual-simplex"``; ``"auto"``: HiGHS' choice).
* ``"highspy"``: HiGHS through its own Python API (the ``highs`` extra), which also offers
  ``"primal-simplex"``.
* ``"pulp"``: any PuLP solver by name (``solver="PULP_CBC_CMD"``, ``"HiGHS"``, ...).
* ``"flow"``: the library's own exact min-cost-flow kernel (Goldberg's cost-scaling
  push-relabel in numba, `auction.kernels.flow`): no LP solver, the fastest by measurement.

Scoring markets (`Market` with a ``quality_weight``): the objective adds each offer's quality
bonus to its surplus (Che 1993); only ``pay-as-bid`` is offered there. ``welfare`` in the
result stays the surplus without bonuses.

Prices (``payment=``):

* ``"pay-as-bid"`` (default): each provider is paid its ask.
* ``"uniform"``: every GPU of offer o trades at ``ask_o + p_o``, where (u, p) is an optimal
  dual solution: the prices of a competitive equilibrium (each served request buys from
  offers that maximize its surplus at these prices, no unserved request wants any, and an
  offer with idle GPUs is priced at its ask). Duals are not unique at degenerate optima;
  ``prices="lowest"`` (default) returns the lowest equilibrium prices (best for tenants),
  ``prices="highest"`` the highest (best for providers). Both are extreme points of the
  equilibrium lattice, computed exactly as shortest paths over the difference constraints
  that define it (Shapley and Shubik 1971; Demange, Gale and Sotomayor 1986).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar

import attrs
import numpy as np
import numpy.typing as npt

from auction._arrays import group_starts, readonly
from auction.errors import AuctionOverflowError, InvalidOptionError, SolverError
from auction.limits import Deadline
from auction.market import Market
from auction.mechanisms import options
from auction.mechanisms.base import MechanismBase, MechanismTags
from auction.problems.memory import pair_memory
from auction.problems.transport import (
    PRICE_RULES,
    TransportProblem,
    constraint_matrix,
    equilibrium_prices,
    infeasibility,
    transport_problem,
)
from auction.result import ClearingResult, Status
from auction.solvers.flow import flow_fits, solve_flow
from auction.solvers.outcome import (
    ERROR,
    OPTIMAL,
    TIME_LIMIT,
    WORK_LIMIT,
    SolverOutcome,
    solver_stats,
)
from auction.solvers.pulp_solvers import pulp_solver

__all__ = [
    "LinearProgram",
    "TransportProblem",
    "constraint_matrix",
    "equilibrium_prices",
    "solve_transport",
    "transport_problem",
]

IntArray = npt.NDArray[np.int64]

#: method name -> scipy `linprog` method
HIGHS_METHODS = {"ipm": "highs-ipm", "dual-simplex": "highs-ds", "auto": "highs"}
#: method name -> HiGHS ``solver`` and ``simplex_strategy`` options (highspy)
HIGHSPY_METHODS = {
    "ipm": ("ipm", 1),
    "dual-simplex": ("simplex", 1),
    "primal-simplex": ("simplex", 4),
    "auto": ("choose", 1),
}
_INTEGRALITY_TOL = 1e-6
#: Bytes held per eligible pair, by backend: the market's pairs, the problem's arrays, and
#: the solver's model (HiGHS keeps the matrix row- and column-wise, PuLP a Python object per
#: variable and term).
_BYTES_PER_EDGE = {"auto": 400, "flow": 160, "highs": 400, "highspy": 400, "pulp": 4000}
#: Seconds HiGHS spends outside its own time limit per nonzero and row (building and passing
#: the model, and its own overshoot: measured 0.5-1 s past a 0.3 s limit at 1 M nonzeros on a
#: loaded machine), and the fewest seconds
#: worth handing it after that.
_HIGHS_OVERHEAD = 0.6e-6
_MIN_SOLVER_SECONDS = 0.05


def _answer(
    problem: TransportProblem, solver: str, raw: npt.ArrayLike | None, status: str,
    message: str, build_seconds: float, solve_seconds: float,
) -> SolverOutcome:
    """A backend's answer as a `SolverOutcome`: its values rounded to integers (a
    fractional solution is an `ERROR` saying so), in the shared diagnostics schema."""
    values = None
    if raw is not None:
        values, why = _round(raw)
        if values is None:
            status, message = ERROR, why
    return SolverOutcome(values, status, None, solver_stats(
        solver, status, message, build_seconds, solve_seconds, problem.n_edges))


def _round(x: npt.ArrayLike) -> tuple[IntArray | None, str]:
    values = np.asarray(x, dtype=np.float64)
    rounded = np.rint(values)
    if len(values) and float(np.abs(values - rounded).max()) > _INTEGRALITY_TOL:
        worst = float(np.abs(values - rounded).max())
        return None, f"the solver returned a fractional solution (off by {worst:.2e})"
    return rounded.astype(np.int64), ""


def _solver_budget(problem: TransportProblem, time_limit: float | None) -> float | None:
    """Seconds to hand HiGHS: the time left minus its estimated model-passing overhead;
    below zero when that overhead alone would use up the time (then it is not run)."""
    if time_limit is None:
        return None
    return time_limit - _HIGHS_OVERHEAD * (3 * problem.n_edges + problem.n + problem.m)


def _not_run(problem: TransportProblem, solver: str, budget: float) -> SolverOutcome:
    return _answer(problem, solver, None, TIME_LIMIT, "time limit reached: HiGHS not run, the "
                   f"time left is below its estimated model overhead (short by {-budget:.3g} s)",
                   0.0, 0.0)


def _solve_highs(
    problem: TransportProblem, method: str, time_limit: float | None
) -> SolverOutcome:
    from scipy.optimize import linprog

    time_limit = _solver_budget(problem, time_limit)
    if time_limit is not None and time_limit < _MIN_SOLVER_SECONDS:
        return _not_run(problem, "highs", time_limit)
    t0 = time.perf_counter()
    a = constraint_matrix(problem)
    b = np.concatenate([problem.demand, problem.capacity]).astype(np.float64)
    c = -problem.weight.astype(np.float64)
    # HiGHS' presolve does not read the clock (12 s past a 0.25 s limit, measured) and saves
    # little on a transportation LP: off whenever a limit is set
    options: dict[str, Any] = {} if time_limit is None else {"time_limit": float(time_limit),
                                                             "presolve": False}
    t1 = time.perf_counter()
    res = linprog(c, A_ub=a, b_ub=b, bounds=(0, None), method=HIGHS_METHODS[method],
                  options=options)
    t2 = time.perf_counter()
    # scipy: 0 optimal, 1 iteration or time limit, 2 infeasible, 3 unbounded, 4 numerical
    status = OPTIMAL if res.status == 0 and res.x is not None else (
        TIME_LIMIT if res.status == 1 else ERROR)
    return _answer(problem, "highs", res.x if status == OPTIMAL else None, status,
                   str(res.message), t1 - t0, t2 - t1)


def _solve_highspy(
    problem: TransportProblem, method: str, time_limit: float | None
) -> SolverOutcome:
    import highspy

    time_limit = _solver_budget(problem, time_limit)
    if time_limit is not None and time_limit < _MIN_SOLVER_SECONDS:
        return _not_run(problem, "highspy", time_limit)
    t0 = time.perf_counter()
    a = constraint_matrix(problem).tocsc()
    h = highspy.Highs()  # type: ignore[no-untyped-call]
    h.setOptionValue("output_flag", False)
    solver, strategy = HIGHSPY_METHODS[method]
    h.setOptionValue("solver", solver)
    h.setOptionValue("simplex_strategy", strategy)
    if time_limit is not None:
        h.setOptionValue("time_limit", float(time_limit))
        h.setOptionValue("presolve", "off")  # presolve ignores the time limit
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = problem.n_edges, problem.n + problem.m
    lp.col_cost_ = -problem.weight.astype(np.float64)
    lp.col_lower_ = np.zeros(problem.n_edges)
    lp.col_upper_ = np.full(problem.n_edges, np.inf)
    lp.row_lower_ = np.full(problem.n + problem.m, -np.inf)
    lp.row_upper_ = np.concatenate([problem.demand, problem.capacity]).astype(np.float64)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = a.indptr
    lp.a_matrix_.index_ = a.indices
    lp.a_matrix_.value_ = a.data
    h.passModel(lp)
    t1 = time.perf_counter()
    h.run()
    t2 = time.perf_counter()
    status = h.getModelStatus()
    text = h.modelStatusToString(status)
    codes = highspy.HighsModelStatus
    if status != codes.kOptimal:
        stop = {codes.kTimeLimit: TIME_LIMIT, codes.kIterationLimit: WORK_LIMIT}.get(
            status, ERROR)
        return _answer(problem, "highspy", None, stop, f"HiGHS stopped: {text}", t1 - t0,
                       t2 - t1)
    return _answer(problem, "highspy", h.getSolution().col_value, OPTIMAL, text, t1 - t0,
                   t2 - t1)


def _solve_pulp(
    problem: TransportProblem, solver: str, time_limit: float | None
) -> SolverOutcome:
    import pulp

    t0 = time.perf_counter()
    prob = pulp.LpProblem("auction_transport", pulp.LpMaximize)
    x = [prob.add_variable(f"x{e}", lowBound=0) for e in range(problem.n_edges)]
    prob += pulp.LpAffineExpression(zip(x, problem.weight.tolist(), strict=True))
    by_obj = np.argsort(problem.obj, kind="stable")
    for prefix, groups, bounds in (
        ("d", np.arange(problem.n_edges), group_starts(problem.person, problem.n)),
        ("c", by_obj, group_starts(problem.obj[by_obj], problem.m)),
    ):
        limit = problem.demand if prefix == "d" else problem.capacity
        for k in range(len(limit)):
            members = groups[bounds[k] : bounds[k + 1]].tolist()
            if members:
                expr = pulp.LpAffineExpression((x[e], 1) for e in members)
                prob += pulp.LpConstraint(expr, pulp.LpConstraintLE, f"{prefix}{k}", int(limit[k]))
    kwargs: dict[str, Any] = {"msg": False}
    if time_limit is not None:
        kwargs["timeLimit"] = time_limit
    engine = pulp_solver(solver, "lp", **kwargs)
    t1 = time.perf_counter()
    try:
        prob.solve(engine)
    except pulp.PulpSolverError as exc:
        raise SolverError("lp", solver, str(exc)) from exc
    t2 = time.perf_counter()
    text = pulp.LpStatus[prob.status]
    if text != "Optimal":
        return _answer(problem, f"pulp:{solver}", None, ERROR, f"PuLP reports {text}",
                       t1 - t0, t2 - t1)
    return _answer(problem, f"pulp:{solver}", [v.varValue or 0.0 for v in x], OPTIMAL, text,
                   t1 - t0, t2 - t1)


def _solve_flow(problem: TransportProblem, time_limit: float | None = None) -> SolverOutcome:
    """The numba min-cost-flow kernel (`auction.solvers.flow`: exact integers, no solver);
    bounded work, and stopped at `time_limit` seconds from now (then no flow: an LP has no
    valid allocation before it is solved)."""
    deadline = None if time_limit is None else time.monotonic() + max(0.0, time_limit)
    return solve_flow(problem, deadline=deadline, mechanism="lp")


def solve_transport(
    problem: TransportProblem,
    *,
    backend: str = "auto",
    method: str = "ipm",
    solver: str = "PULP_CBC_CMD",
    time_limit: float | None = None,
) -> tuple[IntArray | None, dict[str, Any]]:
    """Solve the LP with a backend: (GPUs per edge, or None when it did not solve; stats in
    the shared schema of `auction.solvers.outcome`, plus ``timed_out``).

    ``backend="auto"``: the flow kernel (exact, the fastest by measurement) whenever it can
    express the problem, that is when its scaled weights fit in int64; HiGHS otherwise.
    """
    outcome = solve(problem, backend=backend, method=method, solver=solver,
                    time_limit=time_limit)
    return outcome.values, {**outcome.stats, "timed_out": outcome.status == TIME_LIMIT}


def solve(
    problem: TransportProblem,
    *,
    backend: str = "auto",
    method: str = "ipm",
    solver: str = "PULP_CBC_CMD",
    time_limit: float | None = None,
) -> SolverOutcome:
    """`solve_transport` as a `SolverOutcome` (the mechanism's solve step)."""
    if problem.n_edges == 0:
        return _answer(problem, "none", np.zeros(0), OPTIMAL, "no eligible pairs", 0.0, 0.0)
    if backend == "auto":
        if flow_fits(problem):
            try:
                return _solve_flow(problem, time_limit)
            except AuctionOverflowError:  # prices left int64 mid-solve: HiGHS has no limit
                pass
        backend = "highs"
    if backend == "flow":
        return _solve_flow(problem, time_limit)
    if backend == "highs":
        return _solve_highs(problem, method, time_limit)
    if backend == "highspy":
        return _solve_highspy(problem, method, time_limit)
    return _solve_pulp(problem, solver, time_limit)


@attrs.frozen
class LinearProgram(MechanismBase):
    """Welfare-optimal bulk clearing of splittable requests by linear programming.

    See the module docstring for the formulation, backends and price rules.

    Args:
        payment: ``"pay-as-bid"`` (default) or ``"uniform"`` (competitive-equilibrium prices).
        backend: ``"auto"`` (default: the numba min-cost-flow kernel, exact and the fastest
            measured, whenever its scaled integer weights fit in int64; HiGHS otherwise),
            ``"flow"`` (the kernel always), ``"highs"``, ``"highspy"`` or ``"pulp"``.
        backend_options: the backend's own options: ``method`` (HiGHS algorithm: ``"ipm"``,
            the default, ``"dual-simplex"``, ``"auto"``, and with ``backend="highspy"`` also
            ``"primal-simplex"``) and ``solver`` (the PuLP solver for ``backend="pulp"``,
            default ``"PULP_CBC_CMD"``, CBC).
        prices: which equilibrium prices ``payment="uniform"`` reports: ``"lowest"``
            (default) or ``"highest"``.
        time_limit: seconds for the whole clearing (see `MechanismBase`); the solver gets what
            is left after the build. A solver stopped by it gives a ``time_limit`` result with
            no allocations (an LP has no valid allocation before it is solved) and a message.
        max_memory: see `MechanismBase`.
    """

    name: ClassVar[str] = "lp"
    tags = MechanismTags(
        payments=("pay-as-bid", "uniform"),
        exact_optimal=True,
        divisible=True,
        splittable_only=True,
        needs_solver=True,
        scoring=True,
    )
    backends: ClassVar[tuple[str, ...]] = ("auto", "highs", "highspy", "pulp", "flow")
    whole_request_reason: ClassVar[str] = "the LP cannot express that (a MILP can)"

    backend: str = options.choice("auto", backends)
    backend_options: Mapping[str, Any] = options.mapping(("method", "solver"))
    prices: str = options.choice("lowest", PRICE_RULES)

    @property
    def method(self) -> str:
        """The HiGHS algorithm (``backend_options["method"]``, default ``"ipm"``)."""
        return str(self.backend_options.get("method", "ipm"))

    @property
    def solver(self) -> str:
        """The PuLP solver (``backend_options["solver"]``, default ``"PULP_CBC_CMD"``)."""
        return str(self.backend_options.get("solver", "PULP_CBC_CMD"))

    def _check_options(self) -> None:
        methods = HIGHSPY_METHODS if self.backend == "highspy" else HIGHS_METHODS
        if "method" in self.backend_options and self.method not in methods:
            raise InvalidOptionError(
                "backend_options", dict(self.backend_options),
                f"method for backend {self.backend!r} must be one of {tuple(methods)}",
                mechanism=self.name,
            )
        if not self.solver:
            raise InvalidOptionError("backend_options", dict(self.backend_options),
                                     "solver must be a PuLP solver name", mechanism=self.name)
        if self.backend == "highspy":
            _require("highspy", "highs")

    def memory_estimate(self, market: Market) -> tuple[str, int] | None:
        return pair_memory(market, _BYTES_PER_EDGE[self.backend], self.memory_limit)

    def check_market(self, market: Market) -> None:
        super().check_market(market)
        if self.payment == "uniform" and market.scoring:
            raise self.refuse(
                "uniform prices on a scoring market (quality bonuses) are in score units and "
                "could exceed a tenant's max price; scoring clears with pay-as-bid",
                [("lp", {"payment": "pay-as-bid"}), ("second-price", {"payment": "second-score"})],
            )

    def _clear(
        self, market: Market, rng: np.random.Generator | None, deadline: Deadline
    ) -> ClearingResult:
        # build -> solve -> certify and price
        problem = transport_problem(market)
        outcome = solve(problem, backend=self.backend, method=self.method, solver=self.solver,
                        time_limit=deadline.remaining())
        flow = outcome.values
        stats = {**outcome.stats, "timed_out": outcome.status == TIME_LIMIT}
        failed = _failure(problem, flow, stats)
        if failed or flow is None:
            timed_out = deadline.expired() or outcome.status == TIME_LIMIT
            return self._failed(market, failed, stats,
                                Status.TIME_LIMIT if timed_out else Status.FAILED)
        t0 = time.perf_counter()
        duals = equilibrium_prices(problem, flow, self.prices)
        stats["certify_seconds"] = time.perf_counter() - t0
        if duals is None:
            why = ("the solver's allocation is not optimal (no duals satisfy complementary "
                   "slackness): a tolerance or time-limit problem in the solver")
            return self._failed(market, why, stats)
        rent, profit = duals
        used = np.flatnonzero(flow)
        req = problem.request_row[problem.person[used]]
        off = problem.offer_row[problem.obj[used]]
        gpus = flow[used]
        ask = market.snapshot.offers.price[off]
        offer_price = market.snapshot.offers.price.copy()
        offer_price[problem.offer_row] += rent
        unit = offer_price[off] if self.payment == "uniform" else ask
        request_profit = np.zeros(market.n_requests, dtype=np.int64)
        request_profit[problem.request_row] = profit
        diagnostics = {
            **stats,
            "objective": int((problem.weight[used] * gpus).sum()) if len(used) else 0,
            "edges": problem.n_edges,
            "offer_price": readonly(offer_price),
            "request_profit": readonly(request_profit),
        }
        return ClearingResult.from_allocation(
            market, req, off, gpus, unit, mechanism=self.name, payment=self.payment,
            options=self.get_options(), diagnostics=diagnostics,
        )

    def _failed(self, market: Market, why: str, stats: dict[str, Any],
                status: Status = Status.FAILED) -> ClearingResult:
        empty = np.zeros(0, dtype=np.int64)
        return ClearingResult.from_allocation(
            market, empty, empty, empty, empty, mechanism=self.name, payment=self.payment,
            status=status, message=why, options=self.get_options(), diagnostics=stats,
        )


def _failure(problem: TransportProblem, flow: IntArray | None, stats: dict[str, Any]) -> str:
    if flow is None:
        return f"no optimal solution: {stats.get('solver_message', '')}"
    return infeasibility(problem, flow)


def _require(module: str, extra: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise SolverError("lp", module, f"not installed; pip install 'auction[{extra}]'")
