"""Adapters for the solvers the mechanisms call (the flow kernel, HiGHS, PuLP), each
returning one `auction.solvers.outcome.SolverOutcome` (values, status, bound, stats in one
diagnostics schema) and failing through one channel, `auction.errors.SolverError`.

`auction.solvers.pulp_solver` builds a PuLP solver by name without PuLP's deprecated entry
points (CBC runs through ``COIN_CMD`` with the binary PuLP bundles).
"""

from auction.solvers.pulp_solvers import available_pulp_solvers, pulp_solver

__all__ = ["available_pulp_solvers", "pulp_solver"]
