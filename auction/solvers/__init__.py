"""Adapters for the optimization solvers the mechanisms call (HiGHS, PuLP).

`auction.solvers.pulp_solver` builds a PuLP solver by name without PuLP's deprecated entry
points (CBC runs through ``COIN_CMD`` with the binary PuLP bundles).
"""

from auction.solvers.pulp_solvers import available_pulp_solvers, pulp_solver

__all__ = ["available_pulp_solvers", "pulp_solver"]
