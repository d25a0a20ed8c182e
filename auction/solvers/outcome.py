"""One outcome type for every solver the mechanisms call, with one diagnostics schema.

Every adapter (HiGHS, highspy and PuLP for `lp`, the min-cost-flow kernel for `lp` and for
`assignment`'s shared shape, HiGHS and PuLP for `gang`'s MILP) returns a `SolverOutcome`:

* ``values``: the integer solution, one per variable or edge (None: the solver has none);
* ``status``: one of `OPTIMAL`, `FEASIBLE` (a solution not proven optimal, e.g. stopped at a
  gap), `TIME_LIMIT` and `WORK_LIMIT` (stopped by the limit, with or without a solution),
  `NO_SOLUTION` (finished without one, e.g. infeasible) and `ERROR` (the solver failed: nothing
  it returned can be trusted);
* ``bound``: an upper bound on the optimal objective, when the solver gives one;
* ``stats``: diagnostics under the keys of `STATS_KEYS` (the same names in every mechanism's
  ``diagnostics``), plus solver-specific extras.

Failures that no outcome can describe (a solver that is not installed, a solution that fails
the exact integer check) raise `auction.errors.SolverError` (or its subclass
`GangSolverError`): the one failure channel.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from auction.errors import InvalidValueError

__all__ = [
    "ERROR",
    "FEASIBLE",
    "NO_SOLUTION",
    "OPTIMAL",
    "STATS_KEYS",
    "TIME_LIMIT",
    "WORK_LIMIT",
    "SolverOutcome",
    "solver_stats",
]

IntArray = npt.NDArray[np.int64]

OPTIMAL = "optimal"
FEASIBLE = "feasible"
TIME_LIMIT = "time_limit"
WORK_LIMIT = "work_limit"
NO_SOLUTION = "no_solution"
ERROR = "error"
STATUSES = (OPTIMAL, FEASIBLE, TIME_LIMIT, WORK_LIMIT, NO_SOLUTION, ERROR)

#: Diagnostics every adapter reports, under these names: the solver's name, its status
#: (normalized, one of the statuses above) and own words, seconds to build its model and to
#: solve it, and the edges (eligible pairs) of the problem.
STATS_KEYS = ("solver", "solver_status", "solver_message", "build_seconds", "solve_seconds",
              "edges")


def solver_stats(
    solver: str, status: str, message: str, build_seconds: float, solve_seconds: float,
    edges: int, **extra: Any,
) -> dict[str, Any]:
    """The diagnostics of one solve in the shared schema (`STATS_KEYS`), plus `extra`."""
    return {"solver": solver, "solver_status": status, "solver_message": message,
            "build_seconds": float(build_seconds), "solve_seconds": float(solve_seconds),
            "edges": int(edges), **extra}


def _status(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value not in STATUSES:
        raise InvalidValueError("status", value, f"must be one of {', '.join(STATUSES)}")


@attrs.frozen
class SolverOutcome:
    """What a solver returned (see the module docstring)."""

    values: IntArray | None
    status: str = attrs.field(validator=_status)
    bound: float | None = None
    stats: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def optimal(self) -> bool:
        """The solver proved its solution optimal (within its gap tolerance)."""
        return self.status == OPTIMAL

    @property
    def error(self) -> bool:
        """The solver failed: no solution can be trusted."""
        return self.status == ERROR

    @property
    def stopped(self) -> bool:
        """Stopped by a time or work limit."""
        return self.status in (TIME_LIMIT, WORK_LIMIT)

    @property
    def message(self) -> str:
        """The solver's own words."""
        return str(self.stats.get("solver_message", ""))

    @property
    def nodes(self) -> int | None:
        """Branch-and-bound nodes, when the solver reports them."""
        nodes = self.stats.get("nodes")
        return None if nodes is None else int(nodes)
