"""The gang MILP of a market: variables, constraints and the exact check of an allocation.

See `auction.mechanisms.gang` for the model; this module builds it from the market's
canonical edge list (`Market.pairs`, requests in priority order, offers in rank order) and
checks allocations exactly, in integers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
import numpy as np
import numpy.typing as npt

from auction._arrays import gather_ranges
from auction.errors import AuctionOverflowError, GangSolverError
from auction.market import Market

if TYPE_CHECKING:
    from scipy.sparse import csr_array

__all__ = [
    "CLUSTER",
    "DIVISIBLE",
    "FLOAT_EXACT",
    "WHOLE",
    "GangProblem",
    "build_problem",
    "request_kind",
    "verify_allocation",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

#: Request kinds.
DIVISIBLE, WHOLE, CLUSTER = 0, 1, 2
#: Integers below this are exact in float64, the solvers' arithmetic.
FLOAT_EXACT = 2**53
_FLOAT_EXACT = FLOAT_EXACT


def request_kind(market: Market) -> IntArray:
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
    idx = gather_ranges(pairs.indptr[:-1][order], counts)
    pos = np.repeat(np.arange(len(order), dtype=np.int64), counts)  # request position
    req, off, sur = order[pos], pairs.offers[idx], pairs.surplus[idx]
    kind = request_kind(market)[req]
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
    limit = np.where(request_kind(market)[order] == DIVISIBLE, gp, 1)
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
        raise GangSolverError("gang", "exact check", f"the solution fails the exact check: {text}")

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
    kind = request_kind(market)
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

