"""Gang clearing: multi-GPU and cluster requests on shared offers, solved as a MILP.

An offer hosts several requests up to its GPU capacity. Each request is served by its kind:

* **divisible**: any whole number of GPUs from any of its eligible offers, at most what it asks;
* **whole** (not divisible, not a cluster): all its GPUs from one offer, or nothing;
* **cluster**: all its GPUs or nothing, from one or several offers of **one provider in one
  region** (a *site*); the interconnect it needs is one of its ``required_tags``, which every
  serving offer must carry (eligibility, see `auction.market`).

Objective: maximize the welfare, the sum over allocations of (max_price - ask) x gpus.

The model, over the eligible pairs of `Market.pairs` (requests in priority order, each
request's offers in rank order, so the model is the same whatever order the orders were
added in), with ``g_r`` the GPUs request r asks for and ``c_o`` the GPUs offer o has:

* divisible r: integer ``x_ro`` in [0, min(g_r, c_o)], ``sum_o x_ro <= g_r``;
* whole r: binary ``z_ro`` (only offers with ``c_o >= g_r``), ``sum_o z_ro <= 1``; it uses
  ``g_r * z_ro`` GPUs of o;
* cluster r: binary ``y_rh`` per site h with at least ``g_r`` GPUs among r's eligible offers,
  ``sum_h y_rh <= 1``, and integer ``x_ro`` in [0, min(g_r, c_o)] with
  ``sum_{o in h} x_ro = g_r * y_rh`` for each site h;
* capacity: the GPUs used on offer o are at most ``c_o``.

Backends: HiGHS through `scipy.optimize.milp` (``backend="highs"``, the default) or any PuLP
solver (``backend="pulp"``, ``backend_options={"solver": name}``), with a relative gap
(``mip_gap``). ``time_limit`` is wall time for the whole clearing: the model build, the
solver (which gets 60% of what is left), the LP relaxation and greedy fallback, and the
pricing; past it the result has status ``time_limit`` and holds the best valid allocation
found (the solver's or the greedy one), never a hang. The solution is rounded and verified
exactly, in integers, before it is returned (capacity, demand, eligibility, one offer per
whole request, one site per cluster); a violation raises `GangSolverError`. A solver stopped
by ``mip_gap`` gives ``feasible``; a solver error gives ``failed``.

Payment rules:

* ``pay-as-bid`` (default): each provider is paid its ask.
* ``uniform``: one price per offer (per GPU-hour), the same for every request it serves, that
  supports the allocation as a Walrasian equilibrium: every served request gets a best bundle
  at those prices among the bundles its kind allows, unserved requests want none, every price
  is at least the offer's ask and at most the max price of each request it serves, and an
  offer with unused GPUs is priced at its ask. The lowest such prices are found by a small LP
  and checked exactly in integers. They need not exist (complementarities: a cluster or a
  multi-GPU request that needs several GPUs at once); then the allocation is paid as bid, the
  result's ``payment`` is ``"pay-as-bid"`` and its message and ``diagnostics`` say that no
  item prices support it. Supporting prices prove the allocation optimal (first welfare
  theorem), so a time-limited result with supporting prices is reported as ``success``.

See docs/gang.md for statuses, diagnostics and examples.

The package: `auction.problems.gang` builds the model, `auction.solvers.milp` solves it,
`heuristic` holds the greedy fallback, `pricing` the supporting prices and `mechanism` the
`Gang` mechanism, which reads build -> solve -> fall back -> price.
"""

from auction.errors import GangSolverError
from auction.mechanisms.gang.heuristic import greedy_allocation
from auction.mechanisms.gang.mechanism import Gang
from auction.mechanisms.gang.pricing import check_supporting_prices, supporting_prices
from auction.problems.gang import (
    CLUSTER,
    DIVISIBLE,
    WHOLE,
    GangProblem,
    build_problem,
    verify_allocation,
)
from auction.solvers.milp import (
    lp_relaxation,
    lp_relaxation_bound,
    milp_outcome,
    solve_highs,
    solve_pulp,
)
from auction.solvers.outcome import SolverOutcome

__all__ = [
    "CLUSTER",
    "DIVISIBLE",
    "WHOLE",
    "Gang",
    "GangProblem",
    "GangSolverError",
    "SolverOutcome",
    "build_problem",
    "check_supporting_prices",
    "greedy_allocation",
    "lp_relaxation",
    "lp_relaxation_bound",
    "milp_outcome",
    "solve_highs",
    "solve_pulp",
    "supporting_prices",
    "verify_allocation",
]
