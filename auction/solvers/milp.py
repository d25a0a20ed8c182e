"""MILP solvers for the gang problem: HiGHS (through `scipy.optimize.milp`) and PuLP, behind
one outcome type, `MilpOutcome`; and the LP relaxation (a bound and a guide)."""

from __future__ import annotations

import math
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from auction.errors import GangSolverError
from auction.problems.gang import GangProblem
from auction.solvers.pulp_solvers import pulp_solver

__all__ = ["MilpOutcome", "lp_relaxation", "lp_relaxation_bound", "solve_highs", "solve_pulp"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

#: Largest distance of a solver value from an integer that rounding accepts.
_INT_TOL = 1e-4


@attrs.frozen
class MilpOutcome:
    """What a MILP solver returned.

    Attributes:
        values: integer values of every variable (None: no solution).
        optimal: the solver reports an optimal solution (within its gap tolerance).
        bound: an upper bound on the optimal welfare from the solver, if it gives one.
        status: the solver's status text.
        error: the solver failed (no solution can be trusted).
        nodes: branch-and-bound nodes, when reported.
    """

    values: IntArray | None
    optimal: bool
    bound: float | None
    status: str
    error: bool = False
    nodes: int | None = None


def _round(x: npt.ArrayLike, what: str) -> IntArray:
    v = np.asarray(x, dtype=np.float64)
    r = np.rint(v)
    if len(v) and float(np.abs(v - r).max()) > _INT_TOL:
        k = int(np.abs(v - r).argmax())
        raise GangSolverError("gang", what, f"variable {k} = {v[k]!r} is not an integer")
    return r.astype(np.int64)


def _milp(
    problem: GangProblem, time_limit: float, mip_gap: float, integral: bool
) -> Any:
    from scipy.optimize import Bounds, LinearConstraint, milp

    n = problem.n_vars
    return milp(
        -problem.weight.astype(np.float64),
        integrality=np.full(n, 1 if integral else 0),
        bounds=Bounds(np.zeros(n), problem.upper.astype(np.float64)),
        constraints=LinearConstraint(problem.matrix, problem.row_lower, problem.row_upper)
        if problem.n_rows else None,
        options={"time_limit": float(time_limit), "mip_rel_gap": float(mip_gap),
                 "disp": False},
    )


def solve_highs(problem: GangProblem, *, time_limit: float, mip_gap: float) -> MilpOutcome:
    """Solve with HiGHS through `scipy.optimize.milp`."""
    res = _milp(problem, time_limit, mip_gap, True)
    bound = getattr(res, "mip_dual_bound", None)
    bound_f = -float(bound) if bound is not None and math.isfinite(bound) else None
    nodes = getattr(res, "mip_node_count", None)
    text = str(res.message)
    if res.status in (0, 1) and res.x is not None:
        return MilpOutcome(_round(res.x, "highs"), res.status == 0, bound_f, text,
                           nodes=None if nodes is None else int(nodes))
    if res.status == 1:
        return MilpOutcome(None, False, bound_f, text)
    return MilpOutcome(None, False, None, text, error=True)


def solve_pulp(
    problem: GangProblem, *, solver: str, time_limit: float, mip_gap: float
) -> MilpOutcome:
    """Solve with a PuLP solver named `solver` (e.g. ``"PULP_CBC_CMD"``, ``"HiGHS"``), the
    model built from the same arrays."""
    import pulp

    prob = pulp.LpProblem("gang", pulp.LpMaximize)
    width = len(str(max(problem.n_vars, 1)))
    ub = problem.upper.tolist()
    # PuLP >= 3.3 attaches variables to the model (the PuLP 4.0 way); older PuLP builds them
    make = getattr(prob, "add_variable", None) or pulp.LpVariable
    variables = [
        make(f"v{k:0{width}d}", lowBound=0, upBound=ub[k], cat=pulp.LpInteger)
        for k in range(problem.n_vars)
    ]
    w = problem.weight.tolist()
    prob += pulp.LpAffineExpression([(variables[k], w[k]) for k in range(problem.n_vars)])
    a = problem.matrix
    indptr, indices, data = a.indptr.tolist(), a.indices.tolist(), a.data.tolist()
    lo, hi = problem.row_lower.tolist(), problem.row_upper.tolist()
    for i in range(problem.n_rows):
        expr = pulp.LpAffineExpression(
            [(variables[indices[e]], data[e]) for e in range(indptr[i], indptr[i + 1])]
        )
        if lo[i] == hi[i]:
            prob += (expr == hi[i], f"c{i:0{width}d}")
        else:
            prob += (expr <= hi[i], f"c{i:0{width}d}")
    engine = pulp_solver(solver, "gang", msg=False, timeLimit=float(time_limit),
                         gapRel=float(mip_gap))
    try:
        prob.solve(engine)
    except pulp.PulpSolverError as exc:
        return MilpOutcome(None, False, None, f"{solver}: {exc}", error=True)
    text = f"{pulp.LpStatus.get(prob.status, prob.status)} / " + str(
        pulp.LpSolution.get(prob.sol_status, prob.sol_status)
    )
    # sol_status, not status: CBC stopped by its time limit reports status "Optimal" with
    # sol_status "Solution Found" (integer feasible)
    if prob.sol_status in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible):
        raw = [v.varValue for v in variables]
        if any(x is None for x in raw):
            return MilpOutcome(None, False, None, text, error=True)
        return MilpOutcome(
            _round(raw, solver), prob.sol_status == pulp.LpSolutionOptimal, None, text
        )
    if prob.sol_status == pulp.LpSolutionNoSolutionFound:
        return MilpOutcome(None, False, None, text)
    return MilpOutcome(None, False, None, text, error=True)


def lp_relaxation(
    problem: GangProblem, *, time_limit: float = 30.0
) -> tuple[float, FloatArray] | None:
    """The LP relaxation's optimal welfare (an upper bound on the MILP's) and its solution;
    None if it is not solved within `time_limit` seconds."""
    if problem.n_vars == 0:
        return 0.0, np.zeros(0)
    res = _milp(problem, time_limit, 0.0, False)
    if res.status != 0 or res.x is None:
        return None
    return -float(res.fun), np.asarray(res.x, dtype=np.float64)


def lp_relaxation_bound(problem: GangProblem, *, time_limit: float = 30.0) -> float | None:
    """The LP relaxation's optimal welfare, an upper bound on the MILP's (None: not solved
    within `time_limit` seconds)."""
    lp = lp_relaxation(problem, time_limit=time_limit)
    return None if lp is None else lp[0]

