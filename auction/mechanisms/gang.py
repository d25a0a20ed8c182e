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

Solvers: HiGHS through `scipy.optimize.milp` (``solver="highs"``, the default) or any PuLP
solver (``solver="pulp"``, ``pulp_solver=`` its name), with a time limit and a relative gap.
The solution is rounded and verified exactly, in integers, before it is returned (capacity,
demand, eligibility, one offer per whole request, one site per cluster); a violation raises
`GangSolverError`. When the solver finds nothing in time, a greedy allocation by surplus
density is returned instead (status ``feasible``); a solver error gives status ``failed``.

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
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any, ClassVar

import attrs
import numpy as np
import numpy.typing as npt

from auction.errors import AuctionError, AuctionOverflowError
from auction.market import Market
from auction.mechanisms.base import MechanismBase, MechanismTags
from auction.result import ClearingResult, Status

if TYPE_CHECKING:
    from scipy.sparse import csr_array

__all__ = [
    "CLUSTER",
    "DIVISIBLE",
    "WHOLE",
    "Gang",
    "GangProblem",
    "GangSolverError",
    "MilpOutcome",
    "build_problem",
    "check_supporting_prices",
    "greedy_allocation",
    "lp_relaxation",
    "lp_relaxation_bound",
    "solve_highs",
    "solve_pulp",
    "supporting_prices",
    "verify_allocation",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

#: Request kinds.
DIVISIBLE, WHOLE, CLUSTER = 0, 1, 2
#: Integers below this are exact in float64, the solvers' arithmetic.
_FLOAT_EXACT = 2**53
#: Largest distance of a solver value from an integer that rounding accepts.
_INT_TOL = 1e-4


class GangSolverError(AuctionError, RuntimeError):
    """A solver returned a solution that fails the exact check (never returned silently)."""


def _gather(starts: IntArray, lengths: IntArray) -> IntArray:
    """Concatenation of ranges [starts[k], starts[k] + lengths[k]), vectorized."""
    total = int(lengths.sum())
    first = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(starts, lengths) + np.arange(total, dtype=np.int64) - first


def _kind(market: Market) -> IntArray:
    rq = market.snapshot.requests
    kind = np.full(market.n_requests, WHOLE, dtype=np.int64)
    kind[rq.divisible] = DIVISIBLE
    kind[rq.cluster] = CLUSTER
    return kind


@attrs.frozen(eq=False)
class GangProblem:
    """The MILP of a market, in canonical order, with the arrays it was built from.

    Variables: one per kept eligible pair (columns ``0 .. n_pairs - 1``), then one binary per
    cluster site (``n_pairs .. n_pairs + n_sites - 1``). Pair k is request row
    ``pair_request[k]`` on offer row ``pair_offer[k]``; it uses ``pair_unit[k]`` GPUs per
    unit of its variable (g_r for whole requests, else 1) and is bounded by ``upper[k]``.
    Constraints: ``row_lower <= matrix @ v <= row_upper``. The objective is to maximize
    ``weight @ v`` (exact ints: surplus x unit; 0 on site variables).
    """

    pair_request: IntArray
    pair_offer: IntArray
    pair_surplus: IntArray
    pair_kind: IntArray
    pair_unit: IntArray
    pair_site: IntArray
    site_request: IntArray
    weight: IntArray
    upper: IntArray
    matrix: csr_array
    row_lower: FloatArray
    row_upper: FloatArray

    @property
    def n_pairs(self) -> int:
        return len(self.pair_request)

    @property
    def n_sites(self) -> int:
        return len(self.site_request)

    @property
    def n_vars(self) -> int:
        return self.n_pairs + self.n_sites

    @property
    def n_rows(self) -> int:
        return len(self.row_lower)

    def allocation(self, values: npt.ArrayLike) -> tuple[IntArray, IntArray, IntArray]:
        """(request rows, offer rows, GPUs) of the pair variables' integer values."""
        v = np.asarray(values, dtype=np.int64)[: self.n_pairs]
        used = np.flatnonzero(v > 0)
        return self.pair_request[used], self.pair_offer[used], v[used] * self.pair_unit[used]


def build_problem(market: Market) -> GangProblem:
    """The gang MILP of `market` (see the module docstring), built from numpy index arrays.

    Raises:
        AuctionOverflowError: the welfare could reach 2**53, past exact float arithmetic.
    """
    from scipy.sparse import coo_array

    rq, of = market.snapshot.requests, market.snapshot.offers
    pairs = market.pairs()
    order = market.request_order
    counts = np.diff(pairs.indptr)[order]
    idx = _gather(pairs.indptr[:-1][order], counts)
    pos = np.repeat(np.arange(len(order), dtype=np.int64), counts)  # request position
    req, off, sur = order[pos], pairs.offers[idx], pairs.surplus[idx]
    kind = _kind(market)[req]
    g, cap = rq.gpus[req], of.gpus[off]

    # cluster sites: (request, provider, region), numbered by first appearance in canonical
    # order (provider and region codes depend on the order orders were added; this does not)
    site = np.full(len(req), -1, dtype=np.int64)
    cl = np.flatnonzero(kind == CLUSTER)
    if len(cl):
        key = np.column_stack([pos[cl], of.provider[off[cl]], of.region[off[cl]]])
        _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1)
        canon = np.empty(len(first), dtype=np.int64)
        canon[np.argsort(first, kind="stable")] = np.arange(len(first), dtype=np.int64)
        sid = canon[inverse]
        room = np.bincount(sid, weights=np.minimum(cap[cl], g[cl]), minlength=len(first))
        site_g = np.zeros(len(first), dtype=np.int64)
        site_g[sid] = g[cl]
        ok = room >= site_g  # a site with fewer GPUs than the cluster needs cannot host it
        renum = np.cumsum(ok) - 1
        site[cl] = np.where(ok[sid], renum[sid], -1)
    keep = (kind != CLUSTER) | (site >= 0)
    pos, req, off, sur, kind, g, cap, site = (
        a[keep] for a in (pos, req, off, sur, kind, g, cap, site)
    )
    n_pairs = len(req)
    n_sites = int(site.max()) + 1 if len(site) and site.max() >= 0 else 0
    site_req = np.zeros(n_sites, dtype=np.int64)
    site_pos = np.zeros(n_sites, dtype=np.int64)
    in_site = site >= 0
    site_req[site[in_site]] = req[in_site]
    site_pos[site[in_site]] = pos[in_site]

    unit = np.where(kind == WHOLE, g, 1)
    upper = np.where(kind == WHOLE, 1, np.minimum(g, cap))
    # welfare bound: each request at its best surplus for all its GPUs
    best = np.zeros(len(order), dtype=np.int64)
    if n_pairs:
        np.maximum.at(best, pos, np.maximum(sur, 0))
        if int(sur.max()) >= _FLOAT_EXACT or int(g.max()) >= _FLOAT_EXACT:
            _overflow()
    gp = rq.gpus[order]
    if sum(int(a) * int(b) for a, b in zip(best.tolist(), gp.tolist(), strict=True)) >= (
        _FLOAT_EXACT
    ):
        _overflow()
    weight = np.concatenate([sur * unit, np.zeros(n_sites, dtype=np.int64)])
    upper_all = np.concatenate([upper, np.ones(n_sites, dtype=np.int64)])

    rows: list[IntArray] = []
    cols: list[IntArray] = []
    data: list[IntArray] = []
    lo: list[FloatArray] = []
    hi: list[FloatArray] = []
    n_rows = 0

    def add_rows(
        row_of: IntArray, col: IntArray, coef: IntArray, n: int, lower: FloatArray,
        upper_: FloatArray,
    ) -> None:
        nonlocal n_rows
        rows.append(row_of + n_rows)
        cols.append(col)
        data.append(coef)
        lo.append(lower)
        hi.append(upper_)
        n_rows += n

    pair_col = np.arange(n_pairs, dtype=np.int64)
    # demand: one row per request whose variables could exceed it
    dn = np.flatnonzero(kind != CLUSTER)
    d_pos, d_col, d_use = pos[dn], pair_col[dn], np.where(kind[dn] == WHOLE, 1, upper[dn])
    d_pos = np.concatenate([d_pos, site_pos])
    d_col = np.concatenate([d_col, n_pairs + np.arange(n_sites, dtype=np.int64)])
    d_use = np.concatenate([d_use, np.ones(n_sites, dtype=np.int64)])
    n_req = len(order)
    reach = np.bincount(d_pos, weights=d_use, minlength=n_req)
    limit = np.where(_kind(market)[order] == DIVISIBLE, gp, 1)
    binding = np.flatnonzero(reach > limit)
    row_id = np.full(n_req, -1, dtype=np.int64)
    row_id[binding] = np.arange(len(binding), dtype=np.int64)
    sel = row_id[d_pos] >= 0
    add_rows(row_id[d_pos[sel]], d_col[sel], np.ones(int(sel.sum()), dtype=np.int64),
             len(binding), np.full(len(binding), -np.inf), limit[binding].astype(np.float64))

    # capacity: one row per offer (in rank order) that its pairs could overfill
    rank = market.offer_rank[off]
    load = unit * upper
    ranks, inv = np.unique(rank, return_inverse=True)
    inv = inv.reshape(-1)
    offer_of_rank = market.offer_order[ranks]
    reach_o = np.bincount(inv, weights=load, minlength=len(ranks))
    over = reach_o > of.gpus[offer_of_rank]
    crow = np.full(len(ranks), -1, dtype=np.int64)
    crow[over] = np.arange(int(over.sum()), dtype=np.int64)
    sel = crow[inv] >= 0
    add_rows(crow[inv[sel]], pair_col[sel], unit[sel], int(over.sum()),
             np.full(int(over.sum()), -np.inf),
             of.gpus[offer_of_rank[over]].astype(np.float64))

    # cluster links: sum of a site's x = g * y
    lk = np.flatnonzero(in_site)
    add_rows(
        np.concatenate([site[lk], np.arange(n_sites, dtype=np.int64)]),
        np.concatenate([pair_col[lk], n_pairs + np.arange(n_sites, dtype=np.int64)]),
        np.concatenate([np.ones(len(lk), dtype=np.int64), -rq.gpus[site_req]]),
        n_sites, np.zeros(n_sites), np.zeros(n_sites),
    )
    matrix = coo_array(
        (np.concatenate(data).astype(np.float64),
         (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_rows, n_pairs + n_sites),
    ).tocsr()
    return GangProblem(
        pair_request=req, pair_offer=off, pair_surplus=sur, pair_kind=kind, pair_unit=unit,
        pair_site=site, site_request=site_req, weight=weight, upper=upper_all, matrix=matrix,
        row_lower=np.concatenate(lo), row_upper=np.concatenate(hi),
    )


def _overflow() -> None:
    raise AuctionOverflowError(
        "gang: the welfare (surplus x GPUs, summed) could reach 2**53, past the exact range "
        "of the solvers' float arithmetic; use a coarser currency unit"
    )


# -- solving -------------------------------------------------------------------------------
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
        raise GangSolverError(f"{what}: variable {k} = {v[k]!r} is not an integer")
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
    engine = pulp.getSolver(solver, msg=False, timeLimit=float(time_limit),
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


# -- greedy fallback --------------------------------------------------------------------------
def greedy_allocation(
    problem: GangProblem, market: Market, guide: npt.ArrayLike | None = None
) -> tuple[IntArray, IntArray, IntArray]:
    """A fast feasible allocation: requests by surplus density, then priority, each taking its
    best feasible placement on the capacity left.

    Density is the best surplus per GPU among a request's eligible offers. Offers are tried
    cheapest first (most surplus; ties by offer rank). A whole request takes the first offer
    with room for all its GPUs; a divisible one fills from its offers in that order, partly
    if need be; a cluster takes the site whose cheapest fill of all its GPUs has the most
    surplus, ties to the site met first.

    `guide`: a fractional solution of the model (the LP relaxation's), to follow first:
    requests by the share of their GPUs it serves, then by density and priority; offers (and a
    cluster's sites) by the GPUs it sends there, then as above.

    Returns (request rows, offer rows, GPUs).
    """
    rq, of = market.snapshot.requests, market.snapshot.offers
    left = of.gpus.copy()
    req, off, sur, site = (problem.pair_request, problem.pair_offer, problem.pair_surplus,
                           problem.pair_site)
    n = problem.n_pairs
    if n == 0:
        e = np.zeros(0, dtype=np.int64)
        return e, e, e
    # the guide is rounded, so that solver noise does not reorder ties
    v = np.zeros(problem.n_vars) if guide is None else np.asarray(guide, dtype=np.float64)
    v = np.round(v, 6)
    flow, site_flow = v[:n] * problem.pair_unit, v[n:]
    # pairs are grouped by request in priority order; within a request, put them in
    # placement order: most guided flow, most surplus (cheapest ask), then offer rank
    starts = np.flatnonzero(np.r_[True, req[1:] != req[:-1]])
    ends = np.r_[starts[1:], n]
    group = np.repeat(np.arange(len(starts)), ends - starts)
    served = np.round(np.add.reduceat(flow, starts) / rq.gpus[req[starts]], 6)
    perm = np.lexsort((market.offer_rank[off], -sur, -flow, group))
    req, off, sur, site = req[perm], off[perm], sur[perm], site[perm]
    density = np.maximum.reduceat(sur, starts)
    prio = market.request_rank[req[starts]]
    out_r: list[int] = []
    out_o: list[int] = []
    out_g: list[int] = []

    def take(r: int, fill: list[tuple[int, int]]) -> None:
        for o, k in fill:
            left[o] -= k
            out_r.append(r)
            out_o.append(o)
            out_g.append(k)

    for k in np.lexsort((prio, -density, -served)).tolist():
        a, b = int(starts[k]), int(ends[k])
        r, g, kind = int(req[a]), int(rq.gpus[int(req[a])]), int(problem.pair_kind[a])
        offers = off[a:b]
        if kind == WHOLE:
            fit = np.flatnonzero(left[offers] >= g)
            if len(fit):
                take(r, [(int(offers[fit[0]]), g)])
        elif kind == DIVISIBLE:
            fill, need = [], g
            for o in offers.tolist():
                if need == 0:
                    break
                k_o = min(need, int(left[o]))
                if k_o > 0:
                    fill.append((o, k_o))
                    need -= k_o
            take(r, fill)
        else:
            best: tuple[tuple[float, int], list[tuple[int, int]]] | None = None
            sites, surs = site[a:b], sur[a:b]
            for s in dict.fromkeys(sites.tolist()):
                fill, need, value = [], g, 0
                for m in np.flatnonzero(sites == s).tolist():
                    if need == 0:
                        break
                    o = int(offers[m])
                    k_o = min(need, int(left[o]))
                    if k_o > 0:
                        fill.append((o, k_o))
                        value += k_o * int(surs[m])
                        need -= k_o
                score = (float(site_flow[s]), value)
                if need == 0 and (best is None or score > best[0]):
                    best = (score, fill)
            if best is not None:
                take(r, best[1])
    return (np.array(out_r, dtype=np.int64), np.array(out_o, dtype=np.int64),
            np.array(out_g, dtype=np.int64))


# -- exact checks -----------------------------------------------------------------------------
def verify_allocation(
    market: Market, req: npt.ArrayLike, off: npt.ArrayLike, gpus: npt.ArrayLike
) -> None:
    """Check an allocation exactly, in integers; raise `GangSolverError` naming a violation.

    Every (request, offer) pair is eligible and appears once with >= 1 GPU; no offer gives more
    GPUs than it has; a divisible request gets at most its GPUs; a whole request gets all of
    them from one offer, or nothing; a cluster gets all of them from one (provider, region),
    or nothing.
    """
    r = np.asarray(req, dtype=np.int64)
    o = np.asarray(off, dtype=np.int64)
    k = np.asarray(gpus, dtype=np.int64)
    rq, of = market.snapshot.requests, market.snapshot.offers
    n_off = max(1, market.n_offers)

    def fail(text: str) -> None:
        raise GangSolverError(f"gang: the solution fails the exact check: {text}")

    if not len(r) == len(o) == len(k):
        fail("allocation columns differ in length")
    if len(r) == 0:
        return
    if int(k.min()) < 1:
        fail(f"an allocation of {int(k.min())} GPUs")
    key = r * n_off + o
    if len(np.unique(key)) != len(key):
        fail("a (request, offer) pair is allocated twice")
    pairs = market.pairs()
    rows = np.repeat(np.arange(market.n_requests, dtype=np.int64), np.diff(pairs.indptr))
    eligible = np.isin(key, rows * n_off + pairs.offers)
    if not eligible.all():
        bad = int(np.flatnonzero(~eligible)[0])
        fail(f"offer {str(of.id[o[bad]])!r} is not eligible for request {str(rq.id[r[bad]])!r}")
    used = np.bincount(o, weights=k, minlength=market.n_offers)
    over = np.flatnonzero(used > of.gpus)
    if len(over):
        j = int(over[0])
        fail(f"offer {str(of.id[j])!r} gives {int(used[j])} of its {of.gpus[j]} GPUs")
    filled = np.bincount(r, weights=k, minlength=market.n_requests).astype(np.int64)
    chunks = np.bincount(r, minlength=market.n_requests)
    kind = _kind(market)
    served = filled > 0
    bad_div = (kind == DIVISIBLE) & (filled > rq.gpus)
    bad_whole = (kind == WHOLE) & served & ((filled != rq.gpus) | (chunks != 1))
    bad_cluster = (kind == CLUSTER) & served & (filled != rq.gpus)
    cl = kind[r] == CLUSTER
    if cl.any():
        site = np.unique(np.column_stack([r[cl], of.provider[o[cl]], of.region[o[cl]]]), axis=0)
        bad_cluster |= np.bincount(site[:, 0], minlength=market.n_requests) > 1
    for name, bad in (("divisible", bad_div), ("whole", bad_whole), ("cluster", bad_cluster)):
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            fail(f"{name} request {str(rq.id[i])!r} (wants {rq.gpus[i]}) gets {filled[i]} GPUs "
                 f"in {chunks[i]} allocation(s)")


def check_supporting_prices(
    problem: GangProblem,
    market: Market,
    req: npt.ArrayLike,
    off: npt.ArrayLike,
    gpus: npt.ArrayLike,
    price: npt.ArrayLike,
) -> str | None:
    """None if per-offer prices (`price[offer row]`, exact ints) support the allocation as a
    Walrasian equilibrium, else the first reason they do not. Exact, in Python ints.

    Checks: every price >= the offer's ask, == the ask if the offer has unused GPUs, <= the max
    price of every request it serves; each request's bundle is a best one at these prices
    among the bundles its kind allows (offers as in `problem`: its eligible pairs), and worth
    at least 0.
    """
    rq, of = market.snapshot.requests, market.snapshot.offers
    p = [int(v) for v in np.asarray(price).tolist()]
    ask = of.price.tolist()
    cap = of.gpus.tolist()
    r_l = np.asarray(req, dtype=np.int64).tolist()
    o_l = np.asarray(off, dtype=np.int64).tolist()
    g_l = np.asarray(gpus, dtype=np.int64).tolist()
    used = [0] * market.n_offers
    got: dict[int, dict[int, int]] = {}
    for r, o, k in zip(r_l, o_l, g_l, strict=True):
        used[o] += k
        got.setdefault(r, {})[o] = k
    maxp = rq.max_price.tolist()
    for o in set(problem.pair_offer.tolist()) | set(o_l):
        if p[o] < ask[o]:
            return f"offer {str(of.id[o])!r} priced {p[o]} below its ask {ask[o]}"
        if used[o] < cap[o] and p[o] != ask[o]:
            return f"offer {str(of.id[o])!r} has unused GPUs but is priced {p[o]}, not its ask"
    for r, o in zip(r_l, o_l, strict=True):
        if p[o] > maxp[r]:
            return f"offer {str(of.id[o])!r} priced {p[o]} above the max price of {str(rq.id[r])!r}"
    pr, po, ps = (problem.pair_request.tolist(), problem.pair_offer.tolist(),
                  problem.pair_site.tolist())
    kind = problem.pair_kind.tolist()
    a = 0
    while a < len(pr):
        b = a
        while b < len(pr) and pr[b] == pr[a]:
            b += 1
        r = pr[a]
        m, g = maxp[r], int(rq.gpus[r])
        have = sum(k * (m - p[o]) for o, k in got.get(r, {}).items())
        offers = po[a:b]
        if kind[a] == WHOLE:
            best = max(0, max(g * (m - p[o]) for o in offers))
        elif kind[a] == DIVISIBLE:
            best, need = 0, g
            for o in sorted(offers, key=lambda o: p[o]):
                if m - p[o] <= 0 or need == 0:
                    break
                take = min(need, cap[o])
                best += take * (m - p[o])
                need -= take
        else:
            best = 0
            by_site: dict[int, list[int]] = {}
            for o, s in zip(offers, ps[a:b], strict=True):
                by_site.setdefault(s, []).append(o)
            for members in by_site.values():
                need, cost = g, 0
                for o in sorted(members, key=lambda o: p[o]):
                    take = min(need, cap[o])
                    cost += take * p[o]
                    need -= take
                if need == 0:
                    best = max(best, g * m - cost)
        if have < best:
            return (f"request {str(rq.id[r])!r} gains {have} from its allocation but {best} from "
                    "its best bundle at these prices")
        a = b
    return None


# -- supporting prices --------------------------------------------------------------------------
def supporting_prices(
    problem: GangProblem,
    market: Market,
    req: IntArray,
    off: IntArray,
    gpus: IntArray,
    *,
    time_limit: float = 30.0,
) -> tuple[IntArray | None, str]:
    """The lowest per-offer prices that support the allocation, or None and why not.

    Builds the equilibrium conditions of `check_supporting_prices` as an LP over the prices of
    the offers in `problem` (a cluster's "no cheaper bundle at another site" is written with the
    LP dual of its cheapest fill there), minimizes the money paid (sum of capacity x price),
    rounds the solution and checks it exactly; if rounding fails, solves again with integer
    prices. Returns (price per offer row, or None; a sentence on what was found).
    """
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import coo_array

    rq, of = market.snapshot.requests, market.snapshot.offers
    n_pairs = problem.n_pairs
    price = of.price.copy()
    if n_pairs == 0:
        return price, "item prices support the allocation (every offer at its ask)"
    # LP price variables: the offers of the model, in rank order
    offers = market.offer_order[np.unique(market.offer_rank[problem.pair_offer])]
    n_p = len(offers)
    col_of_offer = np.full(market.n_offers, -1, dtype=np.int64)
    col_of_offer[offers] = np.arange(n_p, dtype=np.int64)
    n_off = max(1, market.n_offers)
    alloc = dict(zip((req * n_off + off).tolist(), gpus.tolist(), strict=True))
    x = np.array([alloc.get(k, 0) for k in
                  (problem.pair_request * n_off + problem.pair_offer).tolist()], dtype=np.int64)
    used = np.bincount(off, weights=gpus, minlength=market.n_offers).astype(np.int64)
    filled = np.bincount(req, weights=gpus, minlength=market.n_requests).astype(np.int64)

    # money amounts must stay exact in floats
    if n_p:
        big = max(int(rq.max_price[problem.pair_request].max()), int(of.price[offers].max()))
        if big * int(of.gpus[offers].sum()) >= _FLOAT_EXACT:
            raise AuctionOverflowError(
                "gang: prices x GPUs reach 2**53, past the exact range of the price LP; use a "
                "coarser currency unit"
            )

    lb = of.price[offers].astype(np.float64)
    ub = np.full(n_p, np.inf)
    unused = used[offers] < of.gpus[offers]
    ub[unused] = lb[unused]
    pr, po, kind = problem.pair_request, problem.pair_offer, problem.pair_kind
    m = rq.max_price[pr].astype(np.float64)
    g = rq.gpus[pr]
    pc = col_of_offer[po]
    served_pair = x > 0
    np.minimum.at(ub, pc[served_pair], m[served_pair])  # no row above its max price
    # requests that are not fully served want no more at these prices
    short = filled[pr] < g
    sat = np.where(kind == WHOLE, False, x >= of.gpus[po])
    floor_pair = (kind != CLUSTER) & short & ~sat
    np.maximum.at(lb, pc[floor_pair], m[floor_pair])
    if (lb > ub).any():
        j = int(np.flatnonzero(lb > ub)[0])
        why = ("its ask: it has unused GPUs" if unused[j]
               else "the max price of a request it serves")
        return None, (
            f"no item prices support the allocation: offer {str(of.id[offers[j]])!r} would "
            f"need a price of at least {int(lb[j])} (else a request left short wants it) and "
            f"at most {int(ub[j])} ({why})"
        )

    rows: list[IntArray] = []
    cols: list[IntArray] = []
    vals: list[FloatArray] = []
    rhs: list[FloatArray] = []
    n_rows = 0
    n_cols = n_p

    def new_cols(n: int) -> IntArray:
        nonlocal n_cols
        out = np.arange(n_cols, n_cols + n, dtype=np.int64)
        n_cols += n
        return out

    def add(r: IntArray, c: IntArray, v: npt.ArrayLike, b: FloatArray) -> None:
        nonlocal n_rows
        rows.append(r + n_rows)
        cols.append(c)
        vals.append(np.asarray(v, dtype=np.float64))
        rhs.append(b)
        n_rows += len(b)

    # divisible and whole requests that are served: allocated prices <= t_r <= the price of
    # every offer they could take more from
    dn = (kind != CLUSTER) & (filled[pr] > 0)
    reqs = np.unique(market.request_rank[pr[dn]])
    t_of_req = np.full(market.n_requests, -1, dtype=np.int64)
    t_of_req[market.request_order[reqs]] = new_cols(len(reqs))
    a_ = np.flatnonzero(dn & served_pair)
    n_a = len(a_)
    add(np.repeat(np.arange(n_a, dtype=np.int64), 2),
        np.column_stack([pc[a_], t_of_req[pr[a_]]]).reshape(-1),
        np.tile([1.0, -1.0], n_a), np.zeros(n_a))
    b_ = np.flatnonzero(dn & ~sat)
    n_b = len(b_)
    add(np.repeat(np.arange(n_b, dtype=np.int64), 2),
        np.column_stack([t_of_req[pr[b_]], pc[b_]]).reshape(-1),
        np.tile([1.0, -1.0], n_b), np.zeros(n_b))

    # clusters: per site h, lambda_h - mu_o <= p_o and g*lambda_h - sum cap*mu >= what it pays
    cl = np.flatnonzero(kind == CLUSTER)
    if len(cl):
        s = problem.pair_site[cl]
        lam = new_cols(problem.n_sites)
        mu = new_cols(len(cl))
        n_c = len(cl)
        add(np.repeat(np.arange(n_c, dtype=np.int64), 3),
            np.column_stack([lam[s], mu, pc[cl]]).reshape(-1),
            np.tile([1.0, -1.0, -1.0], n_c), np.zeros(n_c))
        site_r = problem.site_request
        sg = rq.gpus[site_r].astype(np.float64)
        served_site = filled[site_r] > 0
        # row per site: sum_{alloc} x p - g lambda + sum cap mu <= 0 (served)
        #               - g lambda + sum cap mu <= -g m (unserved)
        srow = np.arange(problem.n_sites, dtype=np.int64)
        rr = [srow, s]
        cc = [lam, mu]
        vv = [-sg, np.minimum(of.gpus[po[cl]], g[cl]).astype(np.float64)]
        # a served cluster's payment, sum of x * p over its pairs, in each of its sites' rows
        # (the sites of one request are numbered consecutively)
        n_sites_of = np.bincount(site_r, minlength=market.n_requests)
        site_first = np.zeros(market.n_requests, dtype=np.int64)
        first_r, first_i = np.unique(site_r, return_index=True)
        site_first[first_r] = first_i
        pay = cl[served_pair[cl]]
        cnt = n_sites_of[pr[pay]]
        rep = np.repeat(pay, cnt)
        rr.append(_gather(site_first[pr[pay]], cnt))
        cc.append(pc[rep])
        vv.append(x[rep].astype(np.float64))
        b = np.where(served_site, 0.0, -sg * rq.max_price[site_r].astype(np.float64))
        add(np.concatenate(rr), np.concatenate(cc), np.concatenate(vv), b)

    a_mat = coo_array(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_rows, n_cols),
    ).tocsr()
    lower = np.concatenate([lb, np.full(n_cols - n_p, -np.inf)])
    upper = np.concatenate([ub, np.full(n_cols - n_p, np.inf)])
    if len(cl):
        lower[n_p + len(reqs) + problem.n_sites:] = 0.0  # mu >= 0
    cost = np.zeros(n_cols)
    cost[:n_p] = of.gpus[offers]
    cons = LinearConstraint(a_mat, -np.inf, np.concatenate(rhs)) if n_rows else None

    def solve(integral: bool) -> Any:
        integrality = np.zeros(n_cols)
        if integral:
            integrality[:n_p] = 1
        return milp(cost, integrality=integrality, bounds=Bounds(lower, upper),
                    constraints=cons, options={"time_limit": float(time_limit), "disp": False})

    res = solve(False)
    if res.status == 2:
        return None, "no item prices support the allocation (the price LP is infeasible)"
    if res.status != 0 or res.x is None:
        return None, f"supporting prices were not found: the price LP stopped ({res.message})"
    tried: list[str] = []
    for attempt in range(2):
        if attempt == 1:
            res = solve(True)
            if res.status == 2:
                return None, ("no item prices in whole units support the allocation (they "
                              "exist only in fractions of the currency unit)")
            if res.x is None:
                break
        lp = np.asarray(res.x[:n_p])
        for cand in (np.rint(lp), np.ceil(lp - 1e-6), np.floor(lp + 1e-6)):
            price = of.price.copy()
            price[offers] = cand.astype(np.int64)
            reason = check_supporting_prices(problem, market, req, off, gpus, price)
            if reason is None:
                return price, "item prices support the allocation (a Walrasian equilibrium)"
            tried.append(reason)
    return None, ("supporting prices were not found: the price LP's solution fails the exact "
                  f"check ({tried[-1] if tried else 'no solution'})")


# -- the mechanism ---------------------------------------------------------------------------
class Gang(MechanismBase):
    """Welfare-maximizing clearing of whole, divisible and cluster requests on shared offers,
    by a MILP (see the module docstring and docs/gang.md).

    Args:
        payment: ``"pay-as-bid"`` (default) or ``"uniform"`` (supporting per-offer prices,
            when they exist; else pay-as-bid, and the result says so).
        solver: ``"highs"`` (default: HiGHS through `scipy.optimize.milp`) or ``"pulp"``.
        pulp_solver: with ``solver="pulp"``, the PuLP solver's name (``"PULP_CBC_CMD"``,
            ``"HiGHS"``, ...; see ``pulp.listSolvers(onlyAvailable=True)``).
        time_limit: seconds the MILP solver may run; when it stops unproven, the LP
            relaxation (for a bound and to guide the greedy fallback) gets as long again, and
            so does the price LP of ``payment="uniform"``.
        mip_gap: relative gap at which the solver may stop. 0 (default) solves to proven
            optimality; a positive gap trades optimality for time, and a result stopped by it
            is ``feasible``, not ``success``.
    """

    name: ClassVar[str] = "gang"
    tags = MechanismTags(
        payments=("pay-as-bid", "uniform"), exact_optimal=False, divisible=True,
        needs_solver=True, individually_rational=True, budget_balanced=True,
    )
    solvers: ClassVar[tuple[str, ...]] = ("highs", "pulp")

    def __init__(
        self,
        payment: str | None = None,
        *,
        solver: str = "highs",
        pulp_solver: str = "PULP_CBC_CMD",
        time_limit: float = 30.0,
        mip_gap: float = 0.0,
    ) -> None:
        super().__init__(payment)
        if solver not in self.solvers:
            raise ValueError(f"solver must be one of {self.solvers}, got {solver!r}")
        if not isinstance(pulp_solver, str) or not pulp_solver:
            raise ValueError(f"pulp_solver must be a solver name, got {pulp_solver!r}")
        if solver == "pulp":
            import pulp

            found = pulp.listSolvers(onlyAvailable=True)
            if pulp_solver not in found:
                raise ValueError(
                    f"PuLP solver {pulp_solver!r} is not available; available: {found}"
                )
        for label, value in (("time_limit", time_limit), ("mip_gap", mip_gap)):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{label} must be a number, got {value!r}")
        if not (math.isfinite(time_limit) and time_limit > 0):
            raise ValueError(f"time_limit must be finite and > 0 seconds, got {time_limit!r}")
        if not 0 <= mip_gap < 1:
            raise ValueError(f"mip_gap must be in [0, 1), got {mip_gap!r}")
        self.solver, self.pulp_solver = solver, pulp_solver
        self.time_limit, self.mip_gap = float(time_limit), float(mip_gap)

    def __repr__(self) -> str:
        return (f"Gang(payment={self.payment!r}, solver={self.solver!r}, "
                f"time_limit={self.time_limit!r}, mip_gap={self.mip_gap!r})")

    def get_options(self) -> dict[str, Any]:
        return {"payment": self.payment, "solver": self.solver, "pulp_solver": self.pulp_solver,
                "time_limit": self.time_limit, "mip_gap": self.mip_gap}

    @property
    def _solver_label(self) -> str:
        return "highs" if self.solver == "highs" else f"pulp:{self.pulp_solver}"

    def _clear(self, market: Market, rng: np.random.Generator | None) -> ClearingResult:
        t0 = time.perf_counter()
        problem = build_problem(market)
        diag: dict[str, Any] = {
            "solver": self._solver_label, "variables": problem.n_vars,
            "constraints": problem.n_rows, "nonzeros": int(problem.matrix.nnz),
            "pairs": problem.n_pairs, "sites": problem.n_sites,
            "build_time": time.perf_counter() - t0,
        }
        empty = np.zeros(0, dtype=np.int64)
        if problem.n_pairs == 0:
            diag.update(source="none", solver_status="not run: no eligible pairs", nodes=None,
                        solve_time=0.0, objective=0, bound=0.0, gap=0.0)
            return self._result(market, problem, (empty, empty, empty), Status.SUCCESS,
                                "optimal: no request has an eligible offer", diag)
        t1 = time.perf_counter()
        if self.solver == "highs":
            outcome = solve_highs(problem, time_limit=self.time_limit, mip_gap=self.mip_gap)
        else:
            outcome = solve_pulp(problem, solver=self.pulp_solver, time_limit=self.time_limit,
                                 mip_gap=self.mip_gap)
        diag.update(solve_time=time.perf_counter() - t1, solver_status=outcome.status,
                    nodes=outcome.nodes)
        if outcome.error:
            diag.update(source="none", objective=None, bound=None, gap=None)
            return self._result(market, problem, (empty, empty, empty), Status.FAILED,
                                f"the solver {self._solver_label} failed: {outcome.status}", diag)
        # an upper bound on the optimum: the least of the solver's, the LP relaxation's (when
        # the result is not proven optimal) and "every request at its best surplus"
        bound = _min_bound(float(_trivial_bound(problem, market)), outcome.bound)
        solver = self._solver_label
        if outcome.values is not None:
            alloc = problem.allocation(outcome.values)
            verify_allocation(market, *alloc)
            welfare, source = _welfare(market, *alloc), "milp"
            proven = outcome.optimal and (
                bound - welfare < 1 if outcome.bound is not None else self.mip_gap == 0
            )
            if proven:
                diag.update(source=source, objective=welfare, bound=float(welfare), gap=0.0)
                return self._result(market, problem, alloc, Status.SUCCESS,
                                    f"optimal (proven by {solver})", diag)
            why = (f"stopped at mip_gap={self.mip_gap:g}" if outcome.optimal
                   else f"time limit of {self.time_limit:g} s reached")
            message = f"{why}: best solution found by {solver}"
        # not proven optimal: the LP relaxation gives a bound (the solver's may be missing, or
        # no better than the trivial one if it stopped before its root LP) and guides the
        # greedy fallback
        lp = lp_relaxation(problem, time_limit=self.time_limit)
        bound = _min_bound(bound, None if lp is None else lp[0])
        greedy, how = _best_greedy(problem, market, None if lp is None else lp[1])
        verify_allocation(market, *greedy)
        g_welfare = _welfare(market, *greedy)
        if outcome.values is None:
            alloc, welfare, source = greedy, g_welfare, "greedy"
            message = (f"{solver} found no solution within the time limit of "
                       f"{self.time_limit:g} s: {how}")
        elif g_welfare > welfare:
            alloc, welfare, source = greedy, g_welfare, "greedy"
            message = f"{why}: the {how} beats {solver}'s best solution"
        gap = _gap(welfare, bound)
        message += f", welfare {welfare}, within {100 * gap:.3g}% of the bound {bound:.12g}"
        diag.update(source=source, objective=welfare, bound=bound, gap=gap)
        return self._result(market, problem, alloc, Status.FEASIBLE, message, diag)

    def _result(
        self, market: Market, problem: GangProblem, alloc: tuple[IntArray, IntArray, IntArray],
        status: Status, message: str, diag: dict[str, Any],
    ) -> ClearingResult:
        req, off, gpus = alloc
        of = market.snapshot.offers
        unit = of.price[off]
        payment = self.payment
        if self.payment == "uniform" and status is not Status.FAILED:
            t = time.perf_counter()
            prices, found = supporting_prices(problem, market, req, off, gpus,
                                              time_limit=self.time_limit)
            diag["pricing_time"] = time.perf_counter() - t
            diag["equilibrium"] = found
            if prices is None:
                diag["equilibrium_prices"] = None
                payment = "pay-as-bid"
                message += f"; {found}: paid as bid"
            else:
                ids = of.id[market.offer_order].tolist()
                diag["equilibrium_prices"] = dict(
                    zip(ids, prices[market.offer_order].tolist(), strict=True)
                )
                unit = prices[off]
                message += f"; {found}"
                if status is Status.FEASIBLE:  # supporting prices prove optimality
                    status = Status.SUCCESS
                    welfare = diag["objective"]
                    diag.update(bound=float(welfare), gap=0.0)
                    message = (f"optimal (proven by supporting prices; the solver had not "
                               f"proven it): {found}")
        elif self.payment == "uniform":
            diag["equilibrium"] = "not checked: no allocation"
            diag["equilibrium_prices"] = None
        return ClearingResult.from_allocation(
            market, req, off, gpus, unit, mechanism=self.name, payment=payment, status=status,
            message=message, options=self.get_options(), diagnostics=diag,
        )


def _best_greedy(
    problem: GangProblem, market: Market, guide: FloatArray | None
) -> tuple[tuple[IntArray, IntArray, IntArray], str]:
    """The density greedy, or the LP-guided one when it is better; and what it was."""
    plain = greedy_allocation(problem, market)
    if guide is not None:
        guided = greedy_allocation(problem, market, guide)
        if _welfare(market, *guided) > _welfare(market, *plain):
            return guided, "greedy allocation guided by the LP relaxation"
    return plain, "greedy allocation (by surplus density)"


def _welfare(market: Market, req: IntArray, off: IntArray, gpus: IntArray) -> int:
    rq, of = market.snapshot.requests, market.snapshot.offers
    sur = (rq.max_price[req] - of.price[off]).tolist()
    return sum(s * k for s, k in zip(sur, gpus.tolist(), strict=True))


def _trivial_bound(problem: GangProblem, market: Market) -> int:
    """Each request at its best surplus for all its GPUs: an upper bound on the welfare."""
    best: dict[int, int] = {}
    for r, s in zip(problem.pair_request.tolist(), problem.pair_surplus.tolist(), strict=True):
        best[r] = max(best.get(r, 0), s)
    gp = market.snapshot.requests.gpus
    return sum(s * int(gp[r]) for r, s in best.items())


def _min_bound(a: float, b: float | None) -> float:
    return a if b is None else min(a, b)


def _gap(welfare: int, bound: float) -> float:
    """Share of the bound that the welfare may fall short of the optimum by, in [0, 1]."""
    if bound <= 0:
        return 0.0
    return max(0.0, (bound - welfare) / bound)
