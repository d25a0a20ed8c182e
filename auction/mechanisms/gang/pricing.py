"""Supporting (Walrasian) per-offer prices of a gang allocation: found by a small LP,
checked exactly in integers."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from auction._arrays import gather_ranges
from auction.errors import AuctionOverflowError
from auction.market import Market
from auction.problems.gang import CLUSTER, DIVISIBLE, FLOAT_EXACT, WHOLE, GangProblem

__all__ = ["check_supporting_prices", "supporting_prices"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

_FLOAT_EXACT = FLOAT_EXACT


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
        rr.append(gather_ranges(site_first[pr[pay]], cnt))
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

