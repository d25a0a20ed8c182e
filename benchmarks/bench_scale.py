"""Scale-out: partitioned clearing of many markets on a process pool, Ray and Dask.

The input is one book of N requests (10^6 by default) across M markets (1,000): market m is
region ``r{m}`` with 50 offers of one of three GPU models; its requests are pinned to that
region (any model; 1-8 GPUs; a fifth divisible). `auction.clear_partitioned` cuts it by region
(declared key: no pairs materialized), ships each part to a worker, and merges.

In one run, on the same book, this times:

* the single clear (`auction.clear`, in this process): the anchor every ratio is taken to;
* the partitioned clear in this process (``executor=None``): what cutting and merging cost;
* the partitioned clear on a process pool, Ray and Dask with 1 and 2 workers.

Every partitioned result is checked equal to the single clear before any time is printed.
For each run: wall time, ratio to the single clear, tasks, the summed time the parts took on
the workers (market build + clearing), the *overhead per part* (wall x workers - part
seconds, over the parts: scheduling, transfer and the parent's cutting and merging that the
workers wait on) and the peak resident memory of each worker and of this process. The
measured costs then feed the model of the speed-up at 8, 64 and 512 workers printed at the
end (and explained in docs/scale-out.md).

The machine has 2 cores shared with other jobs: timings are noisy and 2 workers cannot show
more than 2x. Times are the best of `--repeat` runs. Numba kernels are cached on disk
(``AUCTION_NUMBA_CACHE``) and every executor is warmed up before timing, so compilation is
not measured. Run:

    python benchmarks/bench_scale.py            # 10^6 requests, 1,000 markets
    python benchmarks/bench_scale.py --quick    # 3 x 10^4 requests, 60 markets (under 60 s)
    python benchmarks/bench_scale.py --mechanism assignment --requests 200000  # heavier parts
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any

import numpy as np

os.environ.setdefault("AUCTION_NUMBA_CACHE", "1")  # workers load compiled kernels from disk
os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(tempfile.gettempdir(), "auction-numba"))

import auction
from auction import Market, Offer, OrderBook, Request
from auction.mechanisms.registry import get
from auction.scale.executors import RayRunner
from auction.scale.partition import rule_for

MODELS = ("H100", "A100", "L40S")


def make_book(n_requests: int, n_markets: int, offers_per_market: int, seed: int) -> OrderBook:
    """The benchmark's book (see the module docstring)."""
    rng = np.random.default_rng(seed)
    orders: list[Offer | Request] = []
    per = n_requests // n_markets
    for m in range(n_markets):
        region, model = f"r{m}", MODELS[m % 3]
        price = rng.integers(1_000_000, 3_000_000, offers_per_market)
        gpus = rng.integers(1, 9, offers_per_market)
        orders += [Offer(id=f"o{m}-{i}", provider=f"p{(m * 7 + i) % 997}", gpu_model=model,
                         region=region, gpus=int(gpus[i]) * 4, price=int(price[i]),
                         vram_gb=80)
                   for i in range(offers_per_market)]
        bid = rng.integers(1_500_000, 3_500_000, per)
        want = rng.integers(1, 9, per)
        orders += [Request(id=f"q{m}-{i}", tenant=f"t{i % 101}", gpus=int(want[i]),
                           max_price=int(bid[i]), regions=frozenset({region}),
                           divisible=i % 5 == 0, submitted_at=i)
                   for i in range(per)]
    return OrderBook(orders)


def peak_rss() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


@contextmanager
def executors(kind: str, workers: int) -> Iterator[Any]:
    """An executor of `kind` with `workers` workers, closed afterwards."""
    if kind == "process pool":
        # spawned, not forked: a forked worker's peak memory would count the parent's pages
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            yield pool
    elif kind == "ray":
        import ray

        if not ray.is_initialized():
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        # one worker: every task reserves both CPUs, so tasks run one at a time
        yield RayRunner(workers, num_cpus=2 / workers)
    else:
        import distributed

        with distributed.LocalCluster(n_workers=workers, threads_per_worker=1,
                                      processes=True, dashboard_address=":0") as cluster, \
                distributed.Client(cluster) as client:
            yield client


def best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    out, secs = None, float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        secs = min(secs, time.perf_counter() - t)
    return secs, out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 x 10^4 requests, 60 markets")
    ap.add_argument("--requests", type=int, default=None)
    ap.add_argument("--markets", type=int, default=None)
    ap.add_argument("--offers", type=int, default=50, help="offers per market (default 50)")
    ap.add_argument("--mechanism", default="first-price")
    ap.add_argument("--repeat", type=int, default=None)
    ap.add_argument("--only", nargs="*", default=["process pool", "ray", "dask"],
                    help="executors to time (default all)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    n = args.requests or (3 * 10**4 if args.quick else 10**6)
    m = args.markets or (60 if args.quick else 1000)
    repeat = args.repeat or (1 if args.quick else 2)

    t = time.perf_counter()
    book = make_book(n, m, args.offers, args.seed)
    t_book = time.perf_counter() - t
    t = time.perf_counter()
    market = Market(book)
    t_market = time.perf_counter() - t
    print(f"{n:,} requests, {m * args.offers:,} offers in {m:,} markets ({args.mechanism}); "
          f"book built in {t_book:.1f} s, market in {t_market:.2f} s; cpus: {os.cpu_count()}")
    clear = auction.clear_partitioned

    def run(executor: Any = None) -> auction.ClearingResult:
        return clear(market, args.mechanism, executor=executor, by=("region",))

    auction.clear(market, args.mechanism)  # compile (and cache) the kernel
    t_single, single = best(lambda: auction.clear(market, args.mechanism), repeat)
    want = single.to_dict()
    rows: list[dict[str, Any]] = []

    ties = rule_for(get(args.mechanism)).ties

    def record(name: str, workers: int, secs: float, r: auction.ClearingResult) -> None:
        same = (r.welfare, r.status) == (single.welfare, single.status) if ties else (
            r.to_dict() == want)  # optimizers: equal up to ties (docs/scale-out.md)
        if not same:
            raise SystemExit(f"{name} x{workers}: the partitioned result differs from the "
                             "single clear")
        info = r.diagnostics["partition"]
        part_secs = float(np.sum(info["part_seconds"]))
        peaks = sorted(info["peak_rss"].values())
        parent = (info["plan_seconds"] + info["build_seconds"] + info["merge_seconds"])
        rows.append({"name": name, "workers": workers, "secs": secs, "tasks": info["tasks"],
                     "parent": parent,
                     "parts": info["parts"], "part_secs": part_secs,
                     "max_part": float(np.max(info["part_seconds"])),
                     "overhead": (secs * workers - part_secs) / max(1, info["parts"]),
                     "worker_mb": [p / 2**20 for p in peaks] if name != "in process" else [],
                     "plan": info["plan_seconds"], "run": info["run_seconds"]})

    run()  # warm
    secs, r = best(run, repeat)
    record("in process", 1, secs, r)
    for kind in args.only:
        for workers in (1, 2):
            with executors(kind, workers) as ex:
                run(ex)  # warm: workers start and load the kernels
                secs, r = best(lambda ex=ex: run(ex), repeat)
                record(kind, workers, secs, r)
    try:
        import ray

        if ray.is_initialized():
            ray.shutdown()
    except ImportError:
        pass

    print(f"\nsingle clear (anchor): {t_single:.3f} s; parent peak RSS "
          f"{peak_rss() / 2**20:,.0f} MB\n")
    print("| executor | workers | wall s | vs single | tasks | part s (sum) | largest part s "
          "| overhead/part ms | worker peak MB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for row in rows:
        mb = ", ".join(f"{v:,.0f}" for v in row["worker_mb"]) or "-"
        print(f"| {row['name']} | {row['workers']} | {row['secs']:.3f} | "
              f"{t_single / row['secs']:.2f}x | {row['tasks']} | {row['part_secs']:.3f} | "
              f"{row['max_part']:.4f} | {1000 * row['overhead']:.2f} | {mb} |")
    model(rows, t_single)


def model(rows: list[dict[str, Any]], t_single: float) -> None:
    """Speed-up at 8, 64 and 512 workers from the measured costs (docs/scale-out.md):

    T(W) = T_parent + max((P + n c) / W, largest part)

    T_parent: the parent's serial seconds (planning the cut, building task payloads, merging)
    and P the summed part seconds on the workers, both measured; n the parts; c the rest of
    the 1-worker wall time per part (scheduling, transfer, pickling), c = (T(1) - T_parent -
    P) / n. The 2-worker run is the check: its predicted time is printed beside the measured
    one."""
    print("\nModel: T(W) = T_parent + max((P + n c) / W, largest part), from the 1-worker run\n")
    print("| executor | T_parent s | P s | c ms/part | T(2) predicted / measured s "
          "| speed-up vs single at 8 | 64 | 512 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    by: dict[str, dict[int, dict[str, Any]]] = {}
    for row in rows:
        by.setdefault(row["name"], {})[row["workers"]] = row
    for name, w in by.items():
        if 1 not in w:
            continue
        one = w[1]
        serial, p, n, largest = one["parent"], one["part_secs"], one["parts"], one["max_part"]
        c = max(0.0, (one["secs"] - serial - p) / max(1, n))

        def t(k: int, serial: float = serial, p: float = p, n: int = n, c: float = c,
              largest: float = largest) -> float:
            return serial + max((p + n * c) / k, largest)

        two = f"{t(2):.2f} / {w[2]['secs']:.2f}" if 2 in w else "-"
        ups = " | ".join(f"{t_single / t(k):.2f}x" for k in (8, 64, 512))
        print(f"| {name} | {serial:.3f} | {p:.3f} | {1000 * c:.2f} | {two} | {ups} |")


if __name__ == "__main__":
    main()
