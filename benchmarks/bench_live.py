"""Live market: continuous matching throughput and latency, incremental re-clears, threads.

Three measurements, each against its anchor in the same run:

1. **Continuous matching** at `--n` open orders (10^5): a `LiveMarket` (rule ``price-time``)
   is loaded with non-crossing offers and requests, then a stream of `--events` arrivals
   (new requests and offers that may trade, and cancels) is applied one by one. Printed:
   events per second and p50/p99 latency per event, wall clock and thread CPU time (on a
   shared machine the wall p99 is mostly the scheduler preempting the process). Anchor:
   what a service did before, rebuild a `Market` from the book and clear it with
   ``first-price`` per arrival
   (timed on a few arrivals; the ratio is anchor time / live p50).
2. **Periodic re-clear vs from scratch** per epoch at 10^4 and 10^5 open orders, 1% churn per
   epoch (half new orders, half cancels), ``first-price``. Printed: the re-clear alone
   (`IncrementalClearer.clear`: the changed orders' prefixes, the sub-market clear, the
   result stitched over the whole book) and the whole ``LiveMarket.clear`` (that plus
   applying the fills as leases); the anchor is ``auction.clear(book.snapshot(),
   "first-price")`` on a copy of the same open book (a snapshot of the live book itself
   would share its columns and make the market's next write copy them, which a service
   never pays), whose result must be identical (``to_dict``, checked every epoch). Two
   workloads: ``mixed`` (`benchmarks/instances.make_orders`: 2% of requests accept
   anything, so the class/profile graph is one component) and ``zoned`` (every order pinned
   to one GPU model and one of `--zones` zones, as a request naming its data centre). The
   book is topped up until it holds about `--n` open orders, then two epochs of churn run
   untimed. Median over the timed epochs.
3. **Threads**: `--markets` independent markets (`--size` orders each, 10^5; `--assign-size`
   for ``assignment``, 10^4) cleared one after another vs in a `ThreadPoolExecutor` of 2
   threads: built and cleared with ``first-price``; prebuilt and cleared with
   ``first-price``, ``second-price`` and ``assignment``; the sealed-bid kernel alone. One
   line per case: both times, the cores busy (process CPU / wall: a speed-up needs 2) and the
   speed-up (1.0 means the threads serialize on the GIL, or the scheduler grants one core);
   results are compared after the timing. Then a GIL probe per mechanism
   (`auction.kernels.jit.gil_probe`): a pure-Python thread's longest stall while the kernels
   run vs the longest kernel call, which does not depend on the load.

Run:

    python benchmarks/bench_live.py            # 10^5 open orders (a few minutes)
    python benchmarks/bench_live.py --quick    # 10^4 (under a minute)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attrs
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from instances import MODELS, REGIONS, make_orders

import auction
from auction import Market, Offer, OrderBook, Request
from auction.live import LiveMarket


# -- workloads ------------------------------------------------------------------------------
def resting_orders(n: int, rng: np.random.Generator, crossing: bool, start: int
                   ) -> list[Offer | Request]:
    """Offers and requests over models and regions; non-crossing unless `crossing`."""
    out: list[Offer | Request] = []
    for k in range(n):
        m = int(rng.integers(0, len(MODELS)))
        model, vram, base = MODELS[m]
        region = REGIONS[int(rng.integers(0, len(REGIONS)))]
        i = start + k
        if rng.random() < 0.5:
            lo, hi = (0.8, 1.2) if crossing else (1.0, 1.4)
            out.append(Offer(id=f"o{i}", provider=f"p{i % 997}", gpu_model=model,
                             gpus=int(rng.choice([1, 2, 4, 8])),
                             price=int(base * rng.uniform(lo, hi)), region=region,
                             vram_gb=vram, submitted_at=i))
        else:
            lo, hi = (0.8, 1.2) if crossing else (0.6, 0.99)
            out.append(Request(id=f"r{i}", tenant=f"t{i % 991}",
                               gpus=int(rng.choice([1, 2, 4, 8], p=[0.4, 0.3, 0.2, 0.1])),
                               max_price=int(base * rng.uniform(lo, hi)),
                               gpu_models=frozenset({model}),
                               regions=frozenset() if rng.random() < 0.4 else frozenset(
                                   {region}), divisible=bool(rng.random() < 0.1),
                               submitted_at=i))
    return out


def zoned_orders(n: int, zones: int, rng: np.random.Generator, start: int
                 ) -> list[Offer | Request]:
    """Orders pinned to one model and one zone each (a request naming its data centre)."""
    out: list[Offer | Request] = []
    for k in range(n):
        i = start + k
        model, vram, base = MODELS[int(rng.integers(0, len(MODELS)))]
        zone = f"z{int(rng.integers(0, zones))}"
        if rng.random() < 0.4:
            out.append(Offer(id=f"o{i}", provider=f"p{i % 997}", gpu_model=model,
                             gpus=int(rng.choice([1, 2, 4, 8])),
                             price=int(base * rng.uniform(0.6, 1.4)), region=zone,
                             vram_gb=vram, submitted_at=i))
        else:
            out.append(Request(id=f"r{i}", tenant=f"t{i % 991}",
                               gpus=int(rng.choice([1, 2, 4, 8], p=[0.4, 0.3, 0.2, 0.1])),
                               max_price=int(base * rng.uniform(0.7, 1.6)),
                               gpu_models=frozenset({model}), regions=frozenset({zone}),
                               divisible=bool(rng.random() < 0.1), submitted_at=i))
    return out


def mixed_orders(n: int, rng: np.random.Generator, start: int) -> list[Offer | Request]:
    offers, requests = make_orders(n * 3 // 10, n - n * 3 // 10,
                                   seed=int(rng.integers(0, 2**31)))
    out: list[Offer | Request] = []
    for o in [*offers, *requests]:
        rec = o.to_record()
        rec["id"] = f"{rec['id'][0]}{start}-{rec['id'][1:]}"
        rec["submitted_at"] = start + rec["submitted_at"]
        out.append(type(o).from_record(rec))
    return out


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


# -- 1. continuous ----------------------------------------------------------------------------
def bench_continuous(n: int, events: int, anchor_events: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    m = LiveMarket(mode="continuous", rule="price-time")
    t = time.perf_counter()
    for o in resting_orders(n, rng, crossing=False, start=0):
        m.submit(o)
    load = time.perf_counter() - t
    stream = resting_orders(events, rng, crossing=True, start=n)
    open_ids = [o.id for o in m.orders()]
    lat: list[float] = []
    cpu: list[float] = []  # thread CPU time: what the event costs without preemption
    n_fill = n_cancel = 0
    t0 = time.perf_counter()
    for k, o in enumerate(stream):
        if k % 4 == 3:  # every fourth event cancels a resting order
            oid = open_ids[int(rng.integers(0, len(open_ids)))]
            s, c = time.perf_counter(), time.thread_time()
            if oid in m.book:
                m.cancel(oid)
                n_cancel += 1
            cpu.append(time.thread_time() - c)
            lat.append(time.perf_counter() - s)
            continue
        s, c = time.perf_counter(), time.thread_time()
        out = m.submit(o)
        cpu.append(time.thread_time() - c)
        lat.append(time.perf_counter() - s)
        n_fill += sum(e.kind == "fill" for e in out)
    wall = time.perf_counter() - t0
    # anchor: rebuild a Market and clear from scratch per arrival
    anchor: list[float] = []
    book = m.book
    for o in stream[:anchor_events]:
        if o.id in book:
            continue
        s = time.perf_counter()
        book.add(o)
        auction.clear(Market(book.snapshot()), "first-price")
        anchor.append(time.perf_counter() - s)
        book.cancel(o.id)
    p50, p99 = pct(lat, 50), pct(lat, 99)
    a50 = statistics.median(anchor)
    print(f"continuous price-time, {len(book):,} open orders (loaded in {load:.1f} s): "
          f"{len(lat):,} events ({n_fill:,} fills, {n_cancel:,} cancels)")
    print(f"  live:    {len(lat) / wall:,.0f} events/s ({len(lat) / sum(cpu):,.0f} per CPU "
          f"second), wall p50 {p50 * 1e6:,.0f} us, "
          f"p99 {p99 * 1e6:,.0f} us; thread CPU p50 {pct(cpu, 50) * 1e6:,.0f} us, "
          f"p99 {pct(cpu, 99) * 1e6:,.0f} us (wall minus CPU is preemption)")
    print(f"  anchor:  rebuild Market + first-price per arrival: median {a50 * 1e3:,.1f} ms "
          f"({len(anchor)} arrivals); live p50 is {a50 / p50:,.0f}x faster")


# -- 2. periodic re-clear ------------------------------------------------------------------
def bench_reclear(n: int, epochs: int, workload: str, zones: int, seed: int) -> None:
    import os

    rng = np.random.default_rng(seed)
    gen = ((lambda k, s: zoned_orders(k, zones, rng, s)) if workload == "zoned"
           else (lambda k, s: mixed_orders(k, rng, s)))
    m = LiveMarket(mode="periodic", mechanism="first-price", epoch=10**9)
    now, nxt = 0, 10**7
    for o in gen(n, 0):
        m.submit(o)
    for _ in range(6):  # clear what crosses, top the book up, until it holds ~n
        now += 1
        m.clear(at=now)
        if len(m.book) >= 0.97 * n:
            break
        # a top-up's offers fill its requests and older ones: about a fifth of what is
        # submitted stays open (mixed), so submit a few times the shortfall
        for o in gen(min(5 * (n - len(m.book)), 2 * n), nxt):
            m.submit(o)
        nxt += 10**7
    live_t: list[float] = []
    clear_t: list[float] = []
    scratch_t: list[float] = []
    recleared: list[str] = []
    warm = 2  # epochs of churn before timing: the top-ups' fills settle
    for _ in range(warm + epochs):
        churn = max(1, len(m.book) // 100)
        ids = [o.id for o in m.orders()]
        for oid in rng.choice(ids, churn // 2, replace=False).tolist():
            m.cancel(oid)
        for o in gen(churn - churn // 2, nxt):
            m.submit(o)
        nxt += 10**7
        # the anchor clears a copy: a snapshot of the live book would share its columns,
        # and the live market's next write would pay the copy (a service never takes one)
        anchor = OrderBook(m.orders())
        s = time.perf_counter()
        expected = auction.clear(anchor.snapshot(), "first-price")
        scratch_t.append(time.perf_counter() - s)
        del anchor
        now += 1
        s = time.perf_counter()
        m.clear(at=now)  # re-clear, stitch, and apply the fills as leases
        live_t.append(time.perf_counter() - s)
        got = m.last_result
        if got is None or got.to_dict() != expected.to_dict():
            raise SystemExit("the re-clear differs from the from-scratch clear")
        st = m._clearer.last_stats
        clear_t.append(st["seconds"])
        recleared.append(f"{st.get('recleared')}/{st.get('changed')}/{st.get('rounds')}"
                         + ("" if st.get("direct", True) else " (via a Market)")
                         if st["incremental"] else "full")
    lv, sc = statistics.median(live_t[warm:]), statistics.median(scratch_t[warm:])
    cl = statistics.median(clear_t[warm:])
    print(f"re-clear {workload:5s} {len(m.book):>7,} open orders, 1% churn, {epochs} epochs "
          f"(median): from scratch {sc * 1e3:7.1f} ms; re-clear {cl * 1e3:7.1f} ms = "
          f"{cl / sc:.3f}x; with fills applied as leases {lv * 1e3:7.1f} ms = {lv / sc:.3f}x")
    print(f"  per epoch, sub-market orders/changed orders/rounds: "
          f"{', '.join(recleared[warm:])}; load average {os.getloadavg()[0]:.2f}")


# -- 3. threads ------------------------------------------------------------------------------
def _timed(fn: Any, items: list[Any], threads: int) -> tuple[list[Any], float, float]:
    """(results, wall seconds, process CPU seconds / wall: how many cores were busy)."""
    c, s = time.process_time(), time.perf_counter()
    if threads == 1:
        out = [fn(x) for x in items]
    else:
        with ThreadPoolExecutor(threads) as pool:
            out = list(pool.map(fn, items))
    wall = time.perf_counter() - s
    return out, wall, (time.process_time() - c) / wall


def bench_threads(markets: int, size: int, assign_size: int, seed: int) -> None:
    """Independent markets cleared one after another vs in a `ThreadPoolExecutor` of 2
    threads: built and cleared with ``first-price`` (`Market` build is numpy and Python),
    prebuilt and cleared with ``first-price`` and ``second-price`` (the sealed-bid kernel,
    ``nogil``, plus the result) and with ``assignment`` (the auction kernel, ``nogil``,
    dominates), and the sealed-bid kernel alone. One line per case: times, the cores busy
    (process CPU / wall; a speed-up needs 2) and the speed-up; results must be identical.
    Then the GIL probe per mechanism, which does not depend on the load."""
    import os

    from auction.kernels.jit import gil_probe
    from auction.kernels.sealed_bid import sealed_bid
    from auction.mechanisms.sealed_bid import sealed_bid_arrays

    def books_of(n: int) -> list[OrderBook]:
        out = []
        for k in range(markets):
            offers, requests = make_orders(n * 3 // 10, n - n * 3 // 10, seed=seed + k)
            out.append(OrderBook([*offers, *requests]))
        return out

    books, small_books = books_of(size), books_of(assign_size)
    mk = [Market(b.snapshot()) for b in books]
    small = [Market(b.snapshot()) for b in small_books]
    args = [(*sealed_bid_arrays(x), False) for x in mk]
    divisible = Market(OrderBook([  # shared capacity (the flow kernel) needs divisible requests
        attrs.evolve(o, divisible=True) if isinstance(o, Request) else o
        for o in small_books[0]]).snapshot())
    for name in ("first-price", "second-price", "assignment"):
        auction.clear(small[0], name)  # compile (or load) the kernels

    # the timed calls return results as they are; they are compared after the timing (a
    # result's to_dict is Python work holding the GIL, longer than a first-price clear)
    def whole(b: OrderBook) -> Any:
        return auction.clear(Market(b.snapshot()), "first-price")

    def clearing(name: str, **options: Any) -> Any:
        return lambda m: auction.clear(m, name, **options)

    def kernel(a: tuple[Any, ...]) -> Any:
        for _ in range(5):
            out = sealed_bid(*a)
        return out

    def plain(results: list[Any]) -> list[Any]:
        return [r.to_dict() if hasattr(r, "to_dict") else [x.tolist() for x in r]
                for r in results]

    cases: list[tuple[str, Any, list[Any], int]] = [
        ("build + first-price", whole, books, size),
        ("prebuilt first-price", clearing("first-price"), mk, size),
        ("prebuilt second-price", clearing("second-price"), mk, size),
        ("prebuilt assignment", clearing("assignment"), small, assign_size),
        ("sealed-bid kernel x5", kernel, args, size)]
    print(f"threads: load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    for name, fn, items, n in cases:
        _timed(fn, items, 1)  # untimed pass: a market caches what its first clear builds
        seq, t_seq, c_seq = _timed(fn, items, 1)
        par, t_par, c_par = _timed(fn, items, 2)
        if plain(seq) != plain(par):
            raise SystemExit(f"threads {name}: results differ from the sequential ones")
        print(f"threads {name:22s} {markets} x {n:>7,} orders: 1 thread {t_seq:6.2f} s "
              f"({c_seq:.2f} cores busy), 2 threads {t_par:6.2f} s ({c_par:.2f} cores busy): "
              f"speed-up {t_seq / t_par:.2f}x")
    probes: tuple[tuple[str, Any, Any], ...] = (("build + first-price", whole, books[0]),
                           ("first-price", clearing("first-price"), mk[0]),
                           ("second-price", clearing("second-price"), mk[0]),
                           ("assignment", clearing("assignment"), small[0]),
                           ("assignment shared", clearing("assignment", shape="shared"),
                            divisible),
                           ("lp", clearing("lp"), divisible))
    for name, fn, item in probes:
        fn(item)
        p = gil_probe(lambda: fn(item))  # noqa: B023 (called at once)
        print(f"GIL probe {name:20s}: {p.call * 1e3:7.1f} ms call, {p.kernels / p.call:4.0%} "
              f"in kernels (longest call {p.longest * 1e3:7.1f} ms); a Python thread's longest "
              f"stall inside kernels {p.stall_in * 1e3:5.1f} ms, outside "
              f"{p.stall_out * 1e3:5.1f} ms")
    print(f"threads: load average {os.getloadavg()[0]:.2f} after")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--zones", type=int, default=1000)
    ap.add_argument("--markets", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", choices=("continuous", "reclear", "threads"), action="append",
                    help="run only these measurements (repeatable)")
    ap.add_argument("--size", type=int, default=None, help="orders per market (threads)")
    ap.add_argument("--assign-size", type=int, default=None,
                    help="orders per market (threads, assignment)")
    a = ap.parse_args(argv)
    parts = set(a.only or ("continuous", "reclear", "threads"))
    sizes = [10_000] if a.quick else [10_000, a.n]
    n_cont = 10_000 if a.quick else a.n
    events = 1_000 if a.quick else a.events
    epochs = 3 if a.quick else a.epochs
    if "continuous" in parts:
        bench_continuous(n_cont, events, 5 if a.quick else 10, a.seed)
    for n in sizes if "reclear" in parts else []:
        for workload in ("mixed", "zoned"):
            bench_reclear(n, epochs, workload, a.zones if n >= 10**5 else a.zones // 10,
                          a.seed)
    if "threads" in parts:
        bench_threads(a.markets, a.size or (20_000 if a.quick else 100_000),
                      a.assign_size or (2_000 if a.quick else 10_000), a.seed)


if __name__ == "__main__":
    main()
