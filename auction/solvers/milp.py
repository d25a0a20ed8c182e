"""MILP solvers for the gang problem: HiGHS (through `scipy.optimize.milp`) and PuLP, behind
the library's one solver outcome type (`auction.solvers.outcome.SolverOutcome`, built by
`milp_outcome`); and the LP relaxation (a bound and a guide)."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import math
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from auction.errors import GangSolverError
from auction.problems.gang import GangProblem
from auction.solvers.outcome import ERROR, OPTIMAL, TIME_LIMIT, SolverOutcome, solver_stats
from auction.solvers.pulp_solvers import pulp_solver

__all__ = ["lp_relaxation", "lp_relaxation_bound", "milp_outcome", "solve_highs", "solve_pulp"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

#: Largest distance of a solver value from an integer that rounding accepts.
_INT_TOL = 1e-4

#: A debug line the HiGHS bundled with scipy prints to the process's stdout whatever its
#: log options say (ERGO-Code/HiGHS#2783, fixed upstream after HiGHS 1.12).
_HIGHS_STRAY = b"HighsMipSolverData::transformNewIntegerFeasibleSolution tmpSolver.run();"
_redirect_lock = threading.Lock()
_redirect_state: dict[str, Any] = {"depth": 0, "saved": -1, "tmp": None}


def _flush_c_stdio() -> None:
    with contextlib.suppress(OSError, AttributeError):  # no POSIX libc: nothing to flush
        ctypes.CDLL(None).fflush(None)


@contextlib.contextmanager
def _without_highs_stray_line() -> Iterator[None]:
    """Run a HiGHS MIP solve with file descriptor 1 sent to a temporary file, then write back
    everything but HiGHS' stray debug line. Nested and concurrent solves share one redirect
    (the last to finish restores the descriptor and writes the output back, in order)."""
    with contextlib.suppress(AttributeError, ValueError, OSError):
        sys.stdout.flush()
    with _redirect_lock:
        st = _redirect_state
        if st["depth"] == 0:
            try:
                tmp = tempfile.TemporaryFile()  # noqa: SIM115 (closed on the last exit)
                st["saved"] = os.dup(1)
                os.dup2(tmp.fileno(), 1)
                st["tmp"] = tmp
            except OSError:  # no stdout descriptor to redirect: solve as is
                st["tmp"] = None
        st["depth"] += 1
    try:
        yield
    finally:
        with _redirect_lock:
            st["depth"] -= 1
            tmp = st["tmp"]
            if st["depth"] == 0 and tmp is not None:
                _flush_c_stdio()
                os.dup2(st["saved"], 1)
                os.close(st["saved"])
                tmp.seek(0)
                kept = [line for line in tmp.read().splitlines(keepends=True)
                        if _HIGHS_STRAY not in line]
                tmp.close()
                st["tmp"] = None
                out = memoryview(b"".join(kept))
                while out:
                    out = out[os.write(1, out):]


def milp_outcome(
    values: IntArray | None, optimal: bool, bound: float | None, message: str, *,
    error: bool = False, nodes: int | None = None, solver: str = "highs",
    solve_seconds: float = 0.0, edges: int = 0,
) -> SolverOutcome:
    """A MILP solver's report as a `SolverOutcome`: `ERROR` when it failed, `OPTIMAL` when it
    proved its solution optimal (within its gap), else `TIME_LIMIT` (stopped by the limit,
    with its best solution or none: the gang MILP is never infeasible, nobody trading is
    feasible)."""
    status = ERROR if error else OPTIMAL if optimal else TIME_LIMIT
    return SolverOutcome(
        values, status, bound,
        solver_stats(solver, status, message, 0.0, solve_seconds, edges, nodes=nodes),
    )


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
    with _without_highs_stray_line():
        return milp(
            -problem.weight.astype(np.float64),
            integrality=np.full(n, 1 if integral else 0),
            bounds=Bounds(np.zeros(n), problem.upper.astype(np.float64)),
            constraints=LinearConstraint(problem.matrix, problem.row_lower, problem.row_upper)
            if problem.n_rows else None,
            options={"time_limit": float(time_limit), "mip_rel_gap": float(mip_gap),
                     "disp": False},
        )


def solve_highs(problem: GangProblem, *, time_limit: float, mip_gap: float) -> SolverOutcome:
    """Solve with HiGHS through `scipy.optimize.milp`."""
    t0 = time.perf_counter()
    res = _milp(problem, time_limit, mip_gap, True)
    run = functools.partial(milp_outcome, solver="highs",
                            solve_seconds=time.perf_counter() - t0, edges=problem.n_pairs)
    bound = getattr(res, "mip_dual_bound", None)
    bound_f = -float(bound) if bound is not None and math.isfinite(bound) else None
    nodes = getattr(res, "mip_node_count", None)
    text = str(res.message)
    if res.status in (0, 1) and res.x is not None:
        return run(_round(res.x, "highs"), res.status == 0, bound_f, text,
                            nodes=None if nodes is None else int(nodes))
    if res.status == 1:
        return run(None, False, bound_f, text)
    return run(None, False, None, text, error=True)


def solve_pulp(
    problem: GangProblem, *, solver: str, time_limit: float, mip_gap: float
) -> SolverOutcome:
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
    t0 = time.perf_counter()
    try:
        prob.solve(engine)
    except pulp.PulpSolverError as exc:
        return milp_outcome(None, False, None, f"{solver}: {exc}", error=True,
                            solver=f"pulp:{solver}", edges=problem.n_pairs)
    run = functools.partial(milp_outcome, solver=f"pulp:{solver}",
                            solve_seconds=time.perf_counter() - t0, edges=problem.n_pairs)
    text = f"{pulp.LpStatus.get(prob.status, prob.status)} / " + str(
        pulp.LpSolution.get(prob.sol_status, prob.sol_status)
    )
    # sol_status, not status: CBC stopped by its time limit reports status "Optimal" with
    # sol_status "Solution Found" (integer feasible)
    if prob.sol_status in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible):
        raw = [v.varValue for v in variables]
        if any(x is None for x in raw):
            return run(None, False, None, text, error=True)
        return run(_round(raw, solver), prob.sol_status == pulp.LpSolutionOptimal, None, text)
    if prob.sol_status == pulp.LpSolutionNoSolutionFound:
        return run(None, False, None, text)
    return run(None, False, None, text, error=True)


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

