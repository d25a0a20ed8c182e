"""`gang` on a realistic batch: 2,000 requests / 500 offers, with multi-GPU and cluster requests.

The market follows auction.datasets and docs/markets.md: datacenter providers post 4- and 8-GPU
H100/H200/A100 nodes (most with nvlink, half with infiniband) in one or two regions, several
nodes per region; community providers post 1- to 4-GPU RTX and T4 boxes. Requests ask for 1,
2, 4 or 8 GPUs (whole, or divisible for about a fifth), and about one in ten is a cluster of
8 to 32 datacenter GPUs that requires an interconnect tag. Asks and max prices are in
micro-dollars per GPU-hour, in the 2026 ranges of `auction.datasets.GPU_MODELS`. Demand exceeds
supply about 3 to 1, so offers are contested.

Prints, per solver: model build time, solve time, status, welfare, bound and gap. Run:

    python benchmarks/bench_gang.py                       # HiGHS, time limit 30 s
    python benchmarks/bench_gang.py --quick               # 500 / 125, limit 10 s (< 60 s)
    python benchmarks/bench_gang.py --pulp                # and PuLP + CBC
    python benchmarks/bench_gang.py --pulp --pulp-solver HiGHS
    python benchmarks/bench_gang.py --payment uniform     # with supporting prices

Then the same on the library's own example book (`instances.example_book_repeated`: 1, 4 and
16 copies, 422 to 6,716 orders; ``--quick``: 1 and 4), with PuLP / HiGHS as the ratio.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from instances import example_book_repeated, example_copies
from progress import live_stdout

from auction import Market, Offer, OrderBook, Request
from auction.datasets import GPU_MODELS, REGIONS, example_reputation
from auction.mechanisms.gang import Gang, build_problem

_DC = ("H100", "H200", "A100 80GB")
_CONSUMER = ("RTX 5090", "RTX 4090", "RTX 3090", "T4")
_SPEC = {g.model: g for g in GPU_MODELS}


def _price(rng: np.random.Generator, model: str, lo: float, hi: float) -> int:
    spec = _SPEC[model]
    q = rng.uniform(lo, hi)
    units = spec.low_units + q * (spec.high_units - spec.low_units)
    return max(10_000, round(units / 10_000) * 10_000)  # whole cents


def make_book(n_requests: int = 2000, n_offers: int = 500, seed: int = 0) -> OrderBook:
    """A deterministic book of about `n_offers` offers and exactly `n_requests` requests."""
    rng = np.random.default_rng(seed)
    offers: list[Offer] = []
    p = 0
    while len(offers) < n_offers:
        p += 1
        dc = rng.random() < 0.45
        regions = list(rng.choice(REGIONS, size=1 + int(dc and rng.random() < 0.4),
                                  replace=False))
        tags = {"soc2"} if rng.random() < (0.7 if dc else 0.1) else set()
        if dc:
            tags |= {"nvlink"} if rng.random() < 0.8 else set()
            tags |= {"infiniband"} if rng.random() < 0.5 else set()
            model = str(rng.choice(_DC, p=[0.55, 0.15, 0.30]))
        else:
            model = str(rng.choice(_CONSUMER, p=[0.2, 0.35, 0.3, 0.15]))
        level = rng.uniform(0.0, 0.8)
        for _ in range(int(rng.integers(3, 13)) if dc else int(rng.integers(1, 5))):
            if len(offers) == n_offers:
                break
            gpus = int(rng.choice([4, 8], p=[0.4, 0.6])) if dc else int(rng.choice([1, 2, 4]))
            offers.append(Offer(
                id=f"o{len(offers):04d}", provider=f"provider-{p:03d}", gpu_model=model,
                gpus=gpus, price=_price(rng, model, level, level + 0.2),
                region=str(rng.choice(regions)), vram_gb=_SPEC[model].vram_gb,
                tags=frozenset(tags), submitted_at=len(offers),
            ))
    requests: list[Request] = []
    for i in range(n_requests):
        kind = rng.random()
        cluster = kind < 0.1
        dc = cluster or kind < 0.5
        if dc:
            models = {str(rng.choice(_DC, p=[0.55, 0.15, 0.30]))}
            if rng.random() < 0.3:
                models.add("H100" if "H100" not in models else "H200")
        else:
            models = {str(rng.choice(_CONSUMER, p=[0.2, 0.35, 0.3, 0.15]))}
        cheapest = min(models, key=lambda m: _SPEC[m].low_units)
        needs: set[str] = set()
        if cluster:
            gpus = int(rng.choice([8, 16, 32], p=[0.5, 0.35, 0.15]))
            needs.add(str(rng.choice(["nvlink", "infiniband"], p=[0.6, 0.4])))
        else:
            gpus = int(rng.choice([1, 2, 4, 8], p=[0.35, 0.25, 0.25, 0.15]))
        if dc and rng.random() < 0.2:
            needs.add("soc2")
        where = {str(rng.choice(REGIONS))} if rng.random() < 0.4 else set()
        requests.append(Request(
            id=f"r{i:05d}", tenant=f"tenant-{int(rng.integers(300)):03d}", gpus=gpus,
            max_price=_price(rng, cheapest, -0.2, 1.4), gpu_models=frozenset(models),
            regions=frozenset(where), required_tags=frozenset(needs),
            divisible=(not cluster) and rng.random() < 0.2, cluster=cluster,
            submitted_at=n_offers + i,
        ))
    return OrderBook([*offers, *requests])


def run(market: Market, label: str, **options: object) -> tuple[float, int]:
    """Clear with `Gang(**options)`, print a row; (wall seconds, welfare)."""
    mech = Gang(**options)  # type: ignore[arg-type]
    print(f"{label}: solving (time limit {options.get('time_limit')} s) ...", file=sys.stderr)
    t = time.perf_counter()
    result = mech.clear(market)
    wall = time.perf_counter() - t
    d = result.diagnostics
    gap = "-" if d.get("gap") is None else f"{100 * d['gap']:.4f}%"
    pricing = f", pricing {d['pricing_seconds']:.2f} s" if "pricing_seconds" in d else ""
    print(f"{label:18} build {d['build_seconds']:.2f} s, solve {d['solve_seconds']:.2f} s"
          f"{pricing}, total {wall:.2f} s | {result.status} ({d['source']}), welfare "
          f"{result.welfare}, bound {d['bound']}, gap {gap}")
    print(f"{'':18} {result.message}")
    return wall, int(result.welfare)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--offers", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--time-limit", type=float, default=30.0)
    ap.add_argument("--mip-gap", type=float, default=0.0)
    ap.add_argument("--payment", choices=["pay-as-bid", "uniform"], default="pay-as-bid")
    ap.add_argument("--pulp", action="store_true", help="also run a PuLP solver")
    ap.add_argument("--pulp-solver", default="PULP_CBC_CMD",
                    help="with --pulp: the PuLP solver (PULP_CBC_CMD, HiGHS, ...)")
    ap.add_argument("--quick", action="store_true",
                    help="500 requests, 125 offers, time limit 10 s (under a minute)")
    args = ap.parse_args(argv)
    live_stdout()
    if args.quick:
        args.requests, args.offers = min(args.requests, 500), min(args.offers, 125)
        args.time_limit = min(args.time_limit, 10.0)

    print(f"building {args.requests} requests / {args.offers} offers ...", file=sys.stderr)
    t = time.perf_counter()
    book = make_book(args.requests, args.offers, args.seed)
    market = Market(book, example_reputation(0))
    market.pairs()
    t_market = time.perf_counter() - t
    rq = [r for r in book.requests()]
    n_cluster = sum(r.cluster for r in rq)
    n_div = sum(r.divisible for r in rq)
    print(f"{book.n_requests} requests ({n_cluster} clusters, {n_div} divisible, "
          f"{sum(r.gpus for r in rq):,} GPUs), {book.n_offers} offers "
          f"({sum(o.gpus for o in book.offers()):,} GPUs); book + market + pairs "
          f"{t_market:.2f} s")
    t = time.perf_counter()
    problem = build_problem(market)
    print(f"model: {problem.n_vars:,} variables ({problem.n_pairs:,} pairs, {problem.n_sites:,} "
          f"cluster sites), {problem.n_rows:,} constraints, {problem.matrix.nnz:,} nonzeros; "
          f"built in {time.perf_counter() - t:.2f} s")
    common = {"payment": args.payment, "time_limit": args.time_limit, "mip_gap": args.mip_gap}
    books = [(f"{book.n_requests} requests", market)]
    # the library's own example book (no clusters: gang's MIP on plain requests)
    for copies in example_copies(args.quick, largest=16):
        ex = example_book_repeated(copies)
        books.append((f"example x{copies} ({len(ex)} orders)", Market(ex)))
    for name, mk in books:
        print(f"\n{name}: {mk.pair_count():,} pairs")
        t_highs, w_highs = run(mk, "highs", **common)
        if args.pulp:
            t_pulp, w_pulp = run(mk, f"pulp {args.pulp_solver}", backend="pulp",
                                 backend_options={"solver": args.pulp_solver}, **common)
            print(f"{'':18} pulp / highs {t_pulp / t_highs:.2f}x"
                  f"{'' if w_pulp == w_highs else f' (welfare differs: {w_pulp} vs {w_highs})'}")


if __name__ == "__main__":
    main()
