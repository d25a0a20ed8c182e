"""Welfare-optimal batch clearing: maximum-weight matching by the auction algorithm.

Objective: maximize total surplus, the sum over allocations of (max_price - ask) x gpus, where
each request is served whole by one offer or not at all, and (exclusive offers, the default)
each offer hosts at most one request, as an Akash bid answers one order. This is a sparse,
rectangular maximum-weight bipartite matching, solved exactly by Bertsekas' forward/reverse
auction with epsilon scaling (`auction.kernels.assignment`).

Ties: among allocations of equal welfare the auction prefers more trades (each pair's weight
gets a +1 below the exactness threshold), and runs in canonical order (requests by priority,
offers by rank), so the same market always gives the same allocation.

Payment rules:

* ``pay-as-bid`` (default): each provider is paid its ask.
* ``vcg``: each provider is paid its asks plus its marginal contribution W* - W*(without it),
  the welfare lost if all its offers left. Truthful for providers. A provider's bonus is split
  over its allocations in proportion to their surplus (largest remainder) and paid per GPU-hour
  rounded down: at most ``gpus - 1`` units per hour of a row's bonus stay with the tenant.
  The exact bonuses are in ``diagnostics["vcg_bonus"]``.
* ``uniform``: for a market with one resource class, one price for every trade: the highest
  accepted ask, the lowest price that pays every accepted provider at least its ask. If it
  exceeds some served request's max price, no uniform price supports the optimal allocation
  and `UnsupportedMarketError` says so.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import numpy as np
import numpy.typing as npt

from auction.errors import AuctionOverflowError, UnsupportedMarketError
from auction.kernels.assignment import auction_matching, check_eps_cs, vcg_bonuses
from auction.market import Market
from auction.mechanisms.base import MechanismBase, MechanismTags
from auction.money import split_largest_remainder
from auction.result import ClearingResult

__all__ = ["Assignment", "MatchingProblem", "matching_problem", "solve_matching"]

IntArray = npt.NDArray[np.int64]
_LIMIT = 1 << 61  # benefits and prices stay below this (the kernel prices removed offers here)


@attrs.frozen(eq=False)
class MatchingProblem:
    """A market as a matching problem in canonical order.

    Person p is request row ``request_order[p]`` (priority order); object o is offer row
    ``offer_order[o]`` (rank order). Row p's edges are ``cols[indptr[p]:indptr[p+1]]`` with
    welfare weight ``weight`` = (max_price - ask) x gpus, per hour.
    """

    request_order: IntArray
    offer_order: IntArray
    indptr: IntArray
    cols: IntArray
    weight: IntArray

    @property
    def n(self) -> int:
        return len(self.indptr) - 1

    @property
    def m(self) -> int:
        return len(self.offer_order)


def matching_problem(market: Market) -> MatchingProblem:
    """Eligible pairs whose offer can host the whole request, weighted by total surplus."""
    pairs = market.pairs()
    rq, of = market.snapshot.requests, market.snapshot.offers
    order = market.request_order
    counts = np.diff(pairs.indptr)[order]
    starts = pairs.indptr[:-1][order]
    total = int(counts.sum())
    first = np.repeat(np.cumsum(counts) - counts, counts)
    idx = np.repeat(starts, counts) + np.arange(total, dtype=np.int64) - first
    offers, surplus = pairs.offers[idx], pairs.surplus[idx]
    person = np.repeat(np.arange(len(order), dtype=np.int64), counts)
    rows = order[person]
    keep = of.gpus[offers] >= rq.gpus[rows]
    person, offers, surplus, rows = person[keep], offers[keep], surplus[keep], rows[keep]
    gpus = rq.gpus[rows]
    if len(surplus) and int(surplus.max()) > (_LIMIT - 1) // max(1, int(gpus.max())):
        raise AuctionOverflowError(
            "surplus x gpus exceeds 2**61 smallest units per hour; use a coarser currency unit"
        )
    indptr = np.zeros(len(order) + 1, dtype=np.int64)
    np.cumsum(np.bincount(person, minlength=len(order)), out=indptr[1:])
    return MatchingProblem(
        request_order=order,
        offer_order=market.offer_order,
        indptr=indptr,
        cols=market.offer_rank[offers],
        weight=surplus * gpus,
    )


def scaled_benefits(problem: MatchingProblem) -> tuple[IntArray, int]:
    """Bidding benefits ``weight * (2n + 1) + 1`` and the scale ``2n + 1``.

    With final epsilon 1 the auction is within n scaled units of the optimum. A matching that
    lost one unit of welfare would lose at least ``scale - n > n`` scaled units, even counting
    the +1 per trade (at most n), so the result is welfare-exact; the +1 makes the auction
    prefer more trades among allocations of equal welfare.
    """
    scale = 2 * problem.n + 1
    w = problem.weight
    if len(w) and int(w.max()) > (_LIMIT // 4 - 1) // scale:
        raise AuctionOverflowError(
            f"welfare weights up to {int(w.max())} x scale {scale} overflow the exact auction "
            "(limit 2**59); use a coarser currency unit or clear smaller batches"
        )
    return w * scale + 1, scale


def solve_matching(
    problem: MatchingProblem, *, theta: int = 10, backend: str = "numba"
) -> tuple[IntArray, IntArray, IntArray, IntArray, dict[str, Any]]:
    """Run the auction; return (benefits, pedge, price, profit, stats)."""
    a, scale = scaled_benefits(problem)
    kernel = auction_matching if backend == "numba" else auction_matching.py_func
    pedge, price, profit, fbids, rbids, phases = kernel(
        problem.n, problem.m, problem.indptr, problem.cols, a, theta
    )
    stats = {"forward_bids": int(fbids), "reverse_bids": int(rbids), "phases": int(phases),
             "scale": scale}
    return a, pedge, price, profit, stats


class Assignment(MechanismBase):
    """Welfare-optimal matching of requests to exclusive offers (see the module docstring).

    Args:
        payment: ``"pay-as-bid"`` (default), ``"vcg"`` or ``"uniform"``.
        theta: epsilon reduction factor between scaling phases (speed only, never the result).
        debug: check epsilon-complementary slackness of the final solution and raise
            `RuntimeError` on a violation.
        backend: ``"numba"`` (default) or ``"python"`` (the kernel run as plain Python).
    """

    name: ClassVar[str] = "assignment"
    tags = MechanismTags(
        payments=("pay-as-bid", "vcg", "uniform"), exact_optimal=True, divisible=True
    )
    backends: ClassVar[tuple[str, ...]] = ("numba", "python")

    def __init__(
        self,
        payment: str | None = None,
        *,
        theta: int = 10,
        debug: bool = False,
        backend: str = "numba",
    ) -> None:
        super().__init__(payment)
        if isinstance(theta, bool) or not isinstance(theta, int) or theta < 2:
            raise ValueError(f"theta must be an int >= 2, got {theta!r}")
        if backend not in self.backends:
            raise ValueError(f"backend must be one of {self.backends}, got {backend!r}")
        self.theta, self.debug, self.backend = theta, bool(debug), backend
        self.tags = attrs.evolve(type(self).tags, truthful=self.payment == "vcg")

    def get_options(self) -> dict[str, Any]:
        return {"payment": self.payment, "theta": self.theta, "debug": self.debug,
                "backend": self.backend}

    def check_market(self, market: Market) -> None:
        super().check_market(market)
        if self.payment == "uniform" and market.n_classes > 1:
            raise UnsupportedMarketError(
                self.name,
                f"payment 'uniform' needs one resource class, the market has {market.n_classes}",
                ["assignment (payment='vcg')", "assignment (payment='pay-as-bid')"],
            )

    def _clear(self, market: Market, rng: np.random.Generator | None) -> ClearingResult:
        problem = matching_problem(market)
        a, pedge, price, profit, stats = solve_matching(
            problem, theta=self.theta, backend=self.backend
        )
        if self.debug:
            violation = check_eps_cs(problem.indptr, problem.cols, a, pedge, price, profit, 1)
            if violation is not None:
                raise RuntimeError(f"assignment: eps-CS violated: {violation}")
            stats["eps_cs"] = "ok"
        matched = np.flatnonzero(pedge >= 0)
        edges = pedge[matched]
        req = problem.request_order[matched]
        off = problem.offer_order[problem.cols[edges]]
        rq, of = market.snapshot.requests, market.snapshot.offers
        gpus = rq.gpus[req]
        ask = of.price[off]
        scale = stats["scale"]
        diagnostics: dict[str, Any] = {
            **stats,
            # duals in welfare units per hour: offer prices and request profits
            "dual_prices": _by_row(price / scale, problem.offer_order, market.n_offers),
            "dual_profits": _by_row(profit / scale, problem.request_order, market.n_requests),
            "pairs": len(problem.cols),
        }
        unit = ask.copy()
        if self.payment == "vcg":
            unit, bonus = self._vcg(market, problem, a, pedge, price, profit, edges, req, off)
            diagnostics["vcg_bonus"] = bonus
        elif self.payment == "uniform" and len(req):
            p = int(ask.max())
            if p > int(rq.max_price[req].min()):
                raise UnsupportedMarketError(
                    self.name,
                    f"no uniform price supports the optimal allocation: the highest accepted "
                    f"ask {p} exceeds the lowest served max price {int(rq.max_price[req].min())}",
                    ["assignment (payment='vcg')", "assignment (payment='pay-as-bid')"],
                )
            unit = np.full(len(req), p, dtype=np.int64)
        return ClearingResult.from_allocation(
            market, req, off, gpus, unit,
            mechanism=self.name, payment=self.payment, options=self.get_options(),
            diagnostics=diagnostics,
        )

    def _vcg(
        self, market: Market, problem: MatchingProblem, a: IntArray, pedge: IntArray,
        price: IntArray, profit: IntArray, edges: IntArray, req: IntArray, off: IntArray,
    ) -> tuple[IntArray, dict[str, int]]:
        """Unit prices with each provider's VCG bonus, and the exact bonus per provider."""
        of = market.snapshot.offers
        provider = of.provider[problem.offer_order]  # per object
        groups = np.argsort(provider, kind="stable").astype(np.int64)
        n_parties = len(market.snapshot.parties)
        gptr = np.zeros(n_parties + 1, dtype=np.int64)
        np.cumsum(np.bincount(provider, minlength=n_parties), out=gptr[1:])
        kernel = vcg_bonuses if self.backend == "numba" else vcg_bonuses.py_func
        bonus = kernel(problem.n, problem.m, problem.indptr, problem.cols, a, problem.weight,
                       pedge, price, profit, gptr, groups, self.theta)
        row_bonus = np.zeros(len(edges), dtype=np.int64)
        row_provider = of.provider[off]
        weight = problem.weight[edges]
        for code in np.unique(row_provider):
            rows = np.flatnonzero(row_provider == code)
            shares = split_largest_remainder(int(bonus[code]), weight[rows].tolist())
            row_bonus[rows] = shares
        gpus = market.snapshot.requests.gpus[req]
        unit = of.price[off] + row_bonus // gpus
        parties = market.snapshot.parties
        paid = {parties[c]: int(bonus[c]) for c in np.unique(row_provider).tolist()}
        return unit, paid


def _by_row(values: npt.NDArray[Any], order: IntArray, n: int) -> npt.NDArray[Any]:
    out = np.empty(n, dtype=values.dtype)
    out[order] = values
    out.flags.writeable = False
    return out
