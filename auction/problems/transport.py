"""The transportation problem of a market, and its exact certificate of optimality.

Requests have demand (GPUs), offers capacity (GPUs), and every eligible pair is an edge with an
integer surplus per GPU (plus the offer's quality bonus on a scoring market). Maximizing the
total surplus over integer GPUs per edge is the transportation LP (totally unimodular, so a
vertex optimum is integral) that `lp`'s backends solve, and the capacity-aware problem behind
`assignment`'s ``shape="shared"`` (solved by the min-cost-flow kernel,
`auction.kernels.flow`): edges stay requests x offers whatever the capacities.

`equilibrium_prices` certifies a solution optimal, exactly, by exhibiting integer duals that
satisfy complementary slackness, and gives the lowest or highest competitive-equilibrium
prices.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from auction._arrays import group_starts
from auction.errors import AuctionOverflowError, InvalidOptionError
from auction.kernels.prices import UNREACHABLE, shortest_paths
from auction.market import Market

__all__ = [
    "PRICE_RULES",
    "TransportProblem",
    "constraint_matrix",
    "equilibrium_prices",
    "infeasibility",
    "transport_problem",
]

IntArray = npt.NDArray[np.int64]
PRICE_RULES = ("lowest", "highest")
_LIMIT = 1 << 62


@attrs.frozen(eq=False)
class TransportProblem:
    """A market as a transportation problem in canonical order.

    Person p is request row ``request_row[p]`` (requests in priority order) with ``demand[p]``
    GPUs; object o is offer row ``offer_row[o]`` (offers in rank order) with ``capacity[o]``.
    Edge e joins person ``person[e]`` and object ``obj[e]`` with surplus ``weight[e]`` per GPU;
    edges are sorted by person, then object.
    """

    request_row: IntArray
    offer_row: IntArray
    demand: IntArray
    capacity: IntArray
    person: IntArray
    obj: IntArray
    weight: IntArray

    @property
    def n(self) -> int:
        return len(self.demand)

    @property
    def m(self) -> int:
        return len(self.capacity)

    @property
    def n_edges(self) -> int:
        return len(self.weight)


def transport_problem(market: Market) -> TransportProblem:
    """The transportation problem of `market` (every eligible pair is an edge)."""
    rq, of = market.snapshot.requests, market.snapshot.offers
    person, _, offers, surplus = market.priority_pairs()
    surplus = surplus + market.offer_bonus[offers]  # score: bonus 0 unless a scoring market
    return TransportProblem(
        request_row=market.request_order,
        offer_row=market.offer_order,
        demand=rq.gpus[market.request_order],
        capacity=of.gpus[market.offer_order],
        person=person,
        obj=market.offer_rank[offers],
        weight=surplus,
    )


def constraint_matrix(problem: TransportProblem) -> Any:
    """The ``(n + m) x edges`` 0/1 constraint matrix (requests' rows, then offers'), CSR."""
    import scipy.sparse as sp

    e = problem.n_edges
    cols = np.arange(e, dtype=np.int64)
    rows = np.concatenate([problem.person, problem.n + problem.obj])
    return sp.csr_array(
        (np.ones(2 * e), (rows, np.concatenate([cols, cols]))), shape=(problem.n + problem.m, e)
    )


def infeasibility(problem: TransportProblem, flow: IntArray) -> str:
    """Why `flow` is not a feasible allocation, or '' if it is (exact integer checks)."""
    if len(flow) and int(flow.min()) < 0:
        return "negative flow"
    used_d = np.bincount(problem.person, weights=flow, minlength=problem.n)
    used_c = np.bincount(problem.obj, weights=flow, minlength=problem.m)
    # float bincount is exact: totals stay below 2**53 (GPU counts are at most MAX_COUNT)
    if bool((used_d > problem.demand).any()):
        return "a request is given more GPUs than it asked for"
    if bool((used_c > problem.capacity).any()):
        return "an offer is allocated more GPUs than it has"
    return ""


def equilibrium_prices(
    problem: TransportProblem, flow: IntArray, rule: str = "lowest"
) -> tuple[IntArray, IntArray] | None:
    """Exact optimal duals (p per object, u per person) for a feasible `flow`, chosen by `rule`.

    The optimal duals of the transportation LP are the solutions of a system of difference
    constraints (dual feasibility and complementary slackness with `flow`), with node z = 0,
    u_r, and w_o = -p_o:

    * u_r >= 0, p_o >= 0; u_r + p_o >= surplus_ro on every edge (nobody envies another offer);
    * u_r + p_o <= surplus_ro on edges with flow (an allocation pays exactly its surplus);
    * u_r = 0 if r is not fully served, p_o = 0 if o has idle GPUs.

    Shortest distances from z give its largest solution (lowest prices p); distances to z its
    smallest (highest prices). Returns None when the system has no solution: by LP duality,
    exactly when `flow` is not optimal. A certificate that needs no trust in the solver.
    """
    if rule not in PRICE_RULES:
        raise InvalidOptionError("prices", rule, f"prices must be one of {PRICE_RULES}")
    n, m = problem.n, problem.m
    w = problem.weight
    if len(w) and int(np.abs(w).max()) >= _LIMIT // (n + m + 2):
        raise AuctionOverflowError(
            "surplus x (requests + offers) exceeds 2**62: equilibrium prices would overflow "
            "int64; use a coarser currency unit"
        )
    u_node = 1 + np.arange(n, dtype=np.int64)
    w_node = 1 + n + np.arange(m, dtype=np.int64)
    zeros_n, zeros_m = np.zeros(n, dtype=np.int64), np.zeros(m, dtype=np.int64)
    used = flow > 0
    served = np.bincount(problem.person, weights=flow, minlength=n) >= problem.demand
    full = np.bincount(problem.obj, weights=flow, minlength=m) >= problem.capacity
    pu, po = 1 + problem.person, 1 + n + problem.obj
    tails = np.concatenate([u_node, zeros_m, pu, po[used], zeros_n[~served], w_node[~full]])
    heads = np.concatenate([zeros_n, w_node, po, pu[used], u_node[~served], zeros_m[~full]])
    lengths = np.concatenate([zeros_n, zeros_m, -w, w[used], zeros_n[~served], zeros_m[~full]])
    if rule == "highest":  # distances *to* z: shortest paths from z against the arcs
        tails, heads = heads, tails
    order = np.argsort(tails, kind="stable")
    indptr = group_starts(tails, n + m + 1)
    dist, ok = shortest_paths(n + m + 1, indptr, heads[order], lengths[order], 0)
    if not ok or bool((dist == UNREACHABLE).any()):
        return None
    if rule == "lowest":  # x = dist: u = x_u, p = -x_w
        return -dist[1 + n :], dist[1 : 1 + n]
    return dist[1 + n :], -dist[1 : 1 + n]  # x = -dist
