"""The min-cost-flow kernel (`auction.kernels.flow`) as a solver of `TransportProblem`s,
returning a `SolverOutcome`: bounded work, stopped at a deadline, exact integers."""

from __future__ import annotations

import time

import numpy as np

from auction._arrays import group_starts
from auction.errors import SolverError
from auction.kernels.flow import COST_LIMIT, PRICE_LIMIT, flow_scale, transport_max_weight
from auction.problems.transport import TransportProblem
from auction.solvers.outcome import (
    OPTIMAL,
    TIME_LIMIT,
    WORK_LIMIT,
    SolverOutcome,
    solver_stats,
)

__all__ = ["flow_fits", "solve_flow"]

_STATUS = {"done": OPTIMAL, "deadline": TIME_LIMIT, "work_limit": WORK_LIMIT}


def flow_fits(problem: TransportProblem) -> bool:
    """True when the flow kernel's scaled costs and total units stay in its exact range."""
    top = int(problem.weight.max(initial=0))
    units = int(problem.demand.sum(dtype=object)) + int(problem.capacity.sum(dtype=object))
    return top * flow_scale(problem.n, problem.m) <= COST_LIMIT and units < PRICE_LIMIT


def solve_flow(
    problem: TransportProblem, *, deadline: float | None = None, max_work: int | None = None,
    backend: str = "numba", mechanism: str = "lp",
) -> SolverOutcome:
    """Solve `problem` exactly with the flow kernel; stop past `max_work` (default: its
    theoretical bound) or at `deadline` (a ``time.monotonic()`` value), then with no values (a
    pseudo-flow of an unfinished phase is not feasible).

    Raises `AuctionOverflowError` when the weights leave the kernel's exact range, and
    `SolverError` on an internal kernel failure.
    """
    t0 = time.perf_counter()
    indptr = group_starts(problem.person, problem.n)
    t1 = time.perf_counter()
    try:
        flow, stats = transport_max_weight(
            problem.n, problem.m, problem.demand, problem.capacity, indptr, problem.obj,
            problem.weight, backend, deadline=deadline, max_work=max_work,
        )
    except SolverError as exc:  # an internal kernel status: a bug, never a result
        raise SolverError(mechanism, "flow", exc.reason) from exc
    t2 = time.perf_counter()
    status = _STATUS[str(stats["status"])]
    message = {OPTIMAL: f"cost scaling: {stats['phases']} phases",
               TIME_LIMIT: "the flow kernel reached the time limit",
               WORK_LIMIT: "the flow kernel reached its work bound"}[status]
    extra = {k: stats[k] for k in ("phases", "pushes", "relabels")}
    return SolverOutcome(
        np.asarray(flow, dtype=np.int64) if status == OPTIMAL else None, status, None,
        solver_stats("flow", status, message, t1 - t0, t2 - t1, problem.n_edges, **extra),
    )
