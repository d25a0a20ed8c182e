"""The gang mechanism's greedy fallback: a fast feasible allocation by surplus density,
optionally guided by the LP relaxation."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from auction.market import Market
from auction.problems.gang import DIVISIBLE, WHOLE, GangProblem

__all__ = ["best_greedy", "greedy_allocation", "welfare_of"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


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


def best_greedy(
    problem: GangProblem, market: Market, guide: FloatArray | None
) -> tuple[tuple[IntArray, IntArray, IntArray], str]:
    """The density greedy, or the LP-guided one when it is better; and what it was."""
    plain = greedy_allocation(problem, market)
    if guide is not None:
        guided = greedy_allocation(problem, market, guide)
        if welfare_of(market, *guided) > welfare_of(market, *plain):
            return guided, "greedy allocation guided by the LP relaxation"
    return plain, "greedy allocation (by surplus density)"


def welfare_of(market: Market, req: IntArray, off: IntArray, gpus: IntArray) -> int:
    rq, of = market.snapshot.requests, market.snapshot.offers
    sur = (rq.max_price[req] - of.price[off]).tolist()
    return sum(s * k for s, k in zip(sur, gpus.tolist(), strict=True))

