"""Market v2 benchmarks: sparse eligibility, columnar ingest, constraint expressions.

Each row is a ratio against an anchor measured in the same run, printed as soon as it is
measured, with the peak memory of the library's side (tracemalloc, in a separate run so the
timings are not slowed by tracing):

* ``highcard``: n requests x n offers, each 1-GPU request accepts 3 of n/3 regions (about 9
  eligible offers each): end-to-end ``auction.clear(book, "assignment")`` (Market included,
  book built) against OR-tools' ``SimpleLinearSumAssignment`` on the same arcs (the market's
  eligible pairs, built beforehand; the usual doubled graph for a matching that may leave
  requests unserved). Both welfare values are checked equal.
* ``example``: the same on the library's own example book (`instances.example_book_repeated`,
  1, 4, 16 and 64 copies: 422 to 26,690 orders, 2,139 to 8.3 M exclusive pairs; ``--quick``:
  1 and 4); the arcs are the exclusive pairs, weight surplus x gpus (`matching_problem`).
* ``random``: random multi-attribute markets (models, regions, VRAM, tags, provider lists,
  node resources): end-to-end ``first-price`` against a plain-Python loop over the orders with
  the same rules, and ``Market`` build time per eligible pair. At 10^6 requests the Python
  loop runs on the first requests in priority order only (sealed-bid allocation of a prefix
  depends on the prefix alone, so it is checked against the library's) and its time is
  extrapolated per request.
* ``ingest``: ``OrderBook.from_columns`` against ``OrderBook.from_records`` on the same
  orders (the records path on a sample, per order), with the set-valued columns in three
  forms, each its own row: Python lists (as `random_columns` builds them: the headline),
  `ListColumn`, and a pyarrow Table per side; each loads the same book (checked).
* ``constraints``: requests with constraint expressions over offers with attributes: pairs
  per second of the market's eligibility (Market + pair count), against evaluating each
  pair's two expressions in Python (`auction.testing.oracles.constraints_hold`) on a sample.

Run ``python benchmarks/bench_market.py`` (the sizes of the issue) or ``--quick`` (small
sizes, under a minute).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import itertools
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from instances import example_book_repeated, example_copies, example_pair_graph

import auction
from auction.book import OrderBook
from auction.market import Market
from auction.orders import Offer, Request

MODELS = [("H200", 141), ("H100", 80), ("A100", 80), ("RTX5090", 32), ("RTX4090", 24),
          ("L40S", 48), ("T4", 16), ("A10", 24)]
REGIONS = ["us-east", "us-west", "eu-central", "eu-west", "asia-east", "asia-south"]
TAGS = ["soc2", "hipaa", "iso27001", "nvlink", "infiniband", "audited-by:foundation"]


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def peak_mb(fn: Callable[[], Any]) -> float:
    """Peak Python/numpy memory of one call (tracemalloc), in MB."""
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def lists(rows: list[list[str]]) -> list[list[str]]:
    return rows


# -- high-cardinality shape -------------------------------------------------------------------
def highcard_columns(n: int, seed: int = 0) -> tuple[dict[str, Any], dict[str, Any]]:
    rng = np.random.default_rng(seed)
    n_regions = max(1, n // 3)
    region_names = np.array([f"zone-{i:06d}" for i in range(n_regions)])
    offers = {
        "id": np.array([f"o{i}" for i in range(n)]),
        "provider": np.array([f"p{i % max(1, n // 10)}" for i in range(n)]),
        "gpu_model": np.full(n, "H100"),
        "gpus": np.ones(n, dtype=np.int64),
        "price": rng.integers(1_000, 2_000_000, n),
        "region": region_names[np.arange(n) % n_regions],
        "vram_gb": np.full(n, 80),
    }
    picks = np.stack([rng.choice(n_regions, 3, replace=False) for _ in range(n)]) if n < 2000 \
        else _three_distinct(rng, n, n_regions)
    requests = {
        "id": np.array([f"r{j}" for j in range(n)]),
        "tenant": np.array([f"t{j % 997}" for j in range(n)]),
        "gpus": np.ones(n, dtype=np.int64),
        "max_price": rng.integers(1_500_000, 3_000_000, n),
        "regions": region_names[picks].tolist(),
        "submitted_at": np.arange(n),
    }
    return offers, requests


def _three_distinct(rng: np.random.Generator, n: int, k: int) -> Any:
    a = rng.integers(0, k, n)
    b = (a + 1 + rng.integers(0, k - 1, n)) % k
    c = rng.integers(0, k, n)
    clash = (c == a) | (c == b)
    while clash.any():
        c[clash] = rng.integers(0, k, int(clash.sum()))
        clash = (c == a) | (c == b)
    return np.stack([a, b, c], axis=1)


def ortools_on_arcs(n_req: int, n_off: int, rows: Any, cols: Any, w: Any) -> tuple[float, int]:
    """Max-weight matching of requests to offers with OR-tools' assignment solver, on a graph
    doubled so that every node may stay unmatched; returns (seconds, welfare)."""
    from ortools.graph.python import linear_sum_assignment as ort

    n = max(n_req, n_off)
    t = time.perf_counter()
    big = int(w.max(initial=0)) + 1
    ar = np.arange(n, dtype=np.int64)
    solver = ort.SimpleLinearSumAssignment()
    solver.add_arcs_with_cost(
        np.concatenate([rows, ar, n + ar, n + cols]),
        np.concatenate([cols, n + ar, ar, n + rows]),
        np.concatenate([big - w, np.full(n, big), np.zeros(n + len(cols), np.int64)]),
    )
    status = solver.solve()
    dt = time.perf_counter() - t
    assert status == solver.OPTIMAL, status
    return dt, n * big - int(solver.optimal_cost())


def bench_highcard(n: int) -> None:
    offers, requests = highcard_columns(n)
    book = OrderBook.from_columns(offers, requests)
    warm = OrderBook.from_columns(*highcard_columns(300, seed=1))
    auction.clear(warm, "assignment")  # compile the kernels outside the timings
    clear_against_ortools(f"highcard n={n:>7,}", book, n)


def bench_example(copies: int) -> None:
    """The library's own example book, `copies` copies (`example_book_repeated`)."""
    auction.clear(auction.demo.example_book(1), "assignment")  # compile outside the timings
    book = example_book_repeated(copies)
    clear_against_ortools(f"example x{copies:<4} ({len(book):,} orders)", book, book.n_requests)


def clear_against_ortools(label: str, book: OrderBook, n: int) -> None:
    """End-to-end ``auction.clear(book, "assignment")`` against OR-tools' assignment solver on
    the market's exclusive pairs (`matching_problem`, weight surplus x gpus); one row."""
    t_market, market = timed(lambda: Market(book))
    t_clear, result = timed(lambda: auction.clear(book, "assignment"))
    n_req, n_off, indptr, cols, w = example_pair_graph(market)
    rows = np.repeat(np.arange(n_req, dtype=np.int64), np.diff(indptr))
    t_ort, welfare = ortools_on_arcs(n_req, n_off, rows, cols, w)
    assert int(result.welfare) == welfare, (result.welfare, welfare)
    mem = peak_mb(lambda: auction.clear(book, "assignment"))
    print(f"{label}: pairs {len(cols):>9,} ({len(cols) / n:.1f}/request), "
          f"Market {t_market:6.2f}s, clear(assignment) {t_clear:6.2f}s, OR-tools {t_ort:6.2f}s "
          f"-> library/OR-tools {t_clear / t_ort:5.2f}x, peak {mem:,.0f} MB", flush=True)


# -- random multi-attribute markets --------------------------------------------------------
def random_columns(n_off: int, n_req: int, seed: int = 0) -> tuple[dict[str, Any], dict[str, Any]]:
    rng = np.random.default_rng(seed)
    m = rng.integers(0, len(MODELS), n_off)
    n_prov = max(1, n_off // 8)
    tag_sets = [[t for t, on in zip(TAGS, row, strict=True) if on]
                for row in rng.random((n_off, len(TAGS))) < 0.3]
    offers = {
        "id": np.array([f"o{i}" for i in range(n_off)]),
        "provider": np.array([f"p{i}" for i in rng.integers(0, n_prov, n_off)]),
        "gpu_model": np.array([MODELS[k][0] for k in m]),
        "gpus": rng.choice([1, 2, 4, 8], n_off),
        "price": rng.integers(100_000, 4_000_000, n_off),
        "region": np.array(REGIONS)[rng.integers(0, len(REGIONS), n_off)],
        "vram_gb": np.array([MODELS[k][1] for k in m]),
        "tags": tag_sets,
        "submitted_at": np.arange(n_off),
        "cpu_per_gpu": rng.choice([4, 8, 16, 32], n_off),
        "ram_gb_per_gpu": rng.choice([32, 64, 128, 256], n_off),
    }
    r_models = [
        [] if x < 0.1 else sorted({MODELS[a][0], MODELS[b][0]})
        for x, a, b in zip(rng.random(n_req), rng.integers(0, len(MODELS), n_req),
                           rng.integers(0, len(MODELS), n_req), strict=True)
    ]
    reg = np.array(REGIONS)[rng.integers(0, len(REGIONS), n_req)]
    any_region = rng.random(n_req) < 0.4
    needs_tag = rng.random(n_req) < 0.2
    tag = np.array(TAGS)[rng.integers(0, len(TAGS), n_req)]
    trusted = rng.random(n_req) < 0.05
    requests = {
        "id": np.array([f"r{j}" for j in range(n_req)]),
        "tenant": np.array([f"t{j % 997}" for j in range(n_req)]),
        "gpus": rng.choice([1, 2, 4, 8], n_req, p=[0.4, 0.3, 0.2, 0.1]),
        "max_price": rng.integers(100_000, 5_000_000, n_req),
        "gpu_models": r_models,
        "regions": [[] if a else [r] for a, r in zip(any_region, reg, strict=True)],
        "required_tags": [[t] if k else [] for k, t in zip(needs_tag, tag, strict=True)],
        "min_vram_gb": rng.choice([0, 0, 24, 80], n_req),
        "divisible": rng.random(n_req) < 0.1,
        "submitted_at": np.arange(n_req),
        # trusted lists name a few of twenty well-known providers
        "providers": [[f"p{int(x)}" for x in rng.integers(0, min(20, n_prov), 3)] if t else []
                      for t in trusted],
        "min_cpu_per_gpu": rng.choice([0, 0, 8, 16], n_req),
        "min_ram_gb_per_gpu": rng.choice([0, 0, 0, 64], n_req),
    }
    return offers, requests


def python_first_price(offers: list[Offer], requests: list[Request],
                       limit: int | None = None) -> list[tuple[str, str, int, int]]:
    """Sealed-bid first price in plain Python: requests in priority order, each takes the
    cheapest eligible offer with capacity (divisible ones fill from the cheapest up)."""
    order = sorted(offers, key=lambda o: (o.price, o.submitted_at, o.id))
    remaining = {o.id: o.gpus for o in offers}
    out = []
    reqs = sorted(requests, key=lambda r: (r.submitted_at, r.id))
    for r in reqs[:limit]:
        need = r.gpus
        for o in order:
            if o.price > r.max_price:
                break
            left = remaining[o.id]
            if left == 0 or (not r.divisible and left < need):
                continue
            if r.gpu_models and o.gpu_model not in r.gpu_models:
                continue
            if r.regions and o.region not in r.regions:
                continue
            if o.vram_gb < r.min_vram_gb or not r.required_tags <= o.tags:
                continue
            if r.providers and o.provider not in r.providers:
                continue
            if o.cpu_per_gpu < r.min_cpu_per_gpu or o.ram_gb_per_gpu < r.min_ram_gb_per_gpu:
                continue
            if r.min_reputation > 0.0:  # every provider's reputation is the default, 0
                continue
            take = min(need, left)
            remaining[o.id] = left - take
            need -= take
            out.append((r.id, o.id, take, o.price))
            if need == 0:
                break
    return out


def bench_random(n_off: int, n_req: int, python_requests: int | None) -> None:
    offers_c, requests_c = random_columns(n_off, n_req)
    book = OrderBook.from_columns(offers_c, requests_c)
    auction.clear(OrderBook.from_columns(*random_columns(50, 50, seed=3)), "first-price")
    t_market, market = timed(lambda: Market(book))
    t_clear, result = timed(lambda: auction.clear(book, "first-price"))
    t_count, n_pairs = timed(market.pair_count)
    limit = python_requests if python_requests and python_requests < n_req else None
    snap = book.snapshot()
    offers = snap.offer_list()
    # the anchor's request objects: all of them, or the prefix in priority order only (the
    # sealed-bid allocation of a prefix depends on the prefix alone)
    requests = (snap.request_list() if limit is None else
                [snap.request(int(j)) for j in market.request_order[:limit]])
    t_py, py = timed(lambda: python_first_price(offers, requests, limit))
    lib = sorted((r["request_id"], r["offer_id"], r["gpus"], r["unit_price"])
                 for r in result.to_records())
    if limit is None:
        assert sorted(py) == lib, "plain-Python loop and library disagree"
        t_py_all, note = t_py, ""
    else:
        served = {r.id for r in requests}
        assert sorted(py) == [x for x in lib if x[0] in served], "prefix disagrees"
        t_py_all, note = t_py * n_req / limit, f" (extrapolated from {limit:,} requests)"
    mem = peak_mb(lambda: auction.clear(book, "first-price"))
    print(f"random {n_req:>9,} req x {n_off:>6,} off: pairs {n_pairs:>12,}, "
          f"Market {t_market:6.2f}s ({1e9 * t_market / max(1, n_pairs):.1f} ns/pair), "
          f"clear(first-price) {t_clear:6.2f}s, "
          f"plain Python {t_py_all:8.1f}s{note} -> {t_py_all / t_clear:6.1f}x faster, "
          f"pair count {t_count:.2f}s, peak {mem:,.0f} MB", flush=True)


# -- ingest ---------------------------------------------------------------------------------
def list_column_form(cols: dict[str, Any]) -> dict[str, Any]:
    """The same columns with each set-valued one as a `ListColumn` (offsets + numpy values)."""
    from auction.book import ListColumn

    out = dict(cols)
    for k, v in cols.items():
        if isinstance(v, list):
            lengths = np.fromiter(map(len, v), dtype=np.int64, count=len(v))
            offsets = np.zeros(len(v) + 1, dtype=np.int64)
            np.cumsum(lengths, out=offsets[1:])
            flat = list(itertools.chain.from_iterable(v))
            out[k] = ListColumn(offsets, np.array(flat, dtype=str) if flat
                                else np.zeros(0, dtype="<U1"))
    return out


def arrow_form(cols: dict[str, Any]) -> Any:
    """The same columns as a pyarrow Table (set-valued ones as list<string>)."""
    import pyarrow as pa

    return pa.table({k: pa.array(v, pa.list_(pa.string())) if isinstance(v, list)
                     else pa.array(v) for k, v in cols.items()})


def bench_ingest(n: int, record_sample: int, repeat: int = 3) -> None:
    """`from_columns` on n orders in three input forms (set-valued columns as Python lists, as
    it is built by `random_columns`, the headline; as `ListColumn`; a pyarrow Table), each the
    median of `repeat` runs, against the records path (`from_records` of the same orders as
    dicts) on `record_sample` orders per side, per order."""
    offers_c, requests_c = random_columns(n // 2, n - n // 2, seed=5)
    m = min(record_sample, n // 2)

    def records(cols: dict[str, Any]) -> list[dict[str, Any]]:
        return [{k: (v[i].item() if isinstance(v[i], np.generic) else v[i])
                 for k, v in cols.items()} for i in range(m)]

    forms: dict[str, tuple[Any, Any]] = {"Python lists": (offers_c, requests_c)}
    forms["ListColumn"] = (list_column_form(offers_c), list_column_form(requests_c))
    with contextlib.suppress(ImportError):  # pyarrow is optional
        forms["Arrow table"] = (arrow_form(offers_c), arrow_form(requests_c))
    head = {k: v[:m] for k, v in offers_c.items()}, {k: v[:m] for k, v in requests_c.items()}
    o_recs, r_recs = records(offers_c), records(requests_c)
    per_rec = 0.0
    reference = OrderBook()
    for name, (offers, requests) in forms.items():
        times = []

        def load(o: Any = offers, r: Any = requests) -> OrderBook:
            return OrderBook.from_columns(o, r)

        for _ in range(repeat):
            t, book = timed(load)
            times.append(t)
        if name == "Python lists":  # the anchor, once, after the first (cold) from_columns
            reference = book
            t_recs, small = timed(lambda: OrderBook.from_records(o_recs, r_recs))
            assert small.to_records() == OrderBook.from_columns(*head).to_records()
            per_rec = t_recs / (2 * m)
            print(f"ingest {n:>9,} orders: records path {t_recs:6.2f}s on {2 * m:,} orders "
                  f"= {1e6 * per_rec:.1f} us/order", flush=True)
        else:  # every form loads the same book
            assert same_book(book, reference), name
        del book
        t_cols = sorted(times)[len(times) // 2]
        mem = peak_mb(load)
        per_col = t_cols / n
        print(f"  from_columns, {name:<12}: {t_cols:6.2f}s ({1e6 * per_col:.2f} us/order, "
              f"median of {', '.join(f'{x:.2f}' for x in times)}s) -> "
              f"{per_rec / per_col:5.1f}x the records path, peak {mem:,.0f} MB", flush=True)


def same_book(a: OrderBook, b: OrderBook) -> bool:
    """Whether two books hold the same orders in the same rows (`BookSnapshot.to_columns`)."""
    from auction.book import ListColumn

    ca, cb = a.snapshot().to_columns(), b.snapshot().to_columns()
    for side in ("offers", "requests"):
        for k, x in ca[side].items():
            y = cb[side][k]
            if isinstance(x, ListColumn):
                if not (np.array_equal(x.offsets, y.offsets)
                        and np.array_equal(x.values, y.values)):
                    return False
            elif x.dtype == object:
                if x.tolist() != y.tolist():
                    return False
            elif not np.array_equal(x, y):
                return False
    return True


# -- constraint expressions ---------------------------------------------------------------
def bench_constraints(n_req: int, n_off: int, n_texts: int, sample: int) -> None:
    from auction.testing.oracles import constraints_hold

    rng = np.random.default_rng(11)
    offers_c, _ = random_columns(n_off, 1, seed=7)
    cuda = rng.choice(["11.8", "12.1", "12.4", "12.6"], n_off)
    tier = rng.integers(0, 5, n_off)
    offers_c["attributes"] = [
        {"cuda": c, "tier": int(t), **({"zone": f"z{i % 50}"} if i % 3 else {})}
        for i, (c, t) in enumerate(zip(cuda, tier, strict=True))
    ]
    offers_c["constraints"] = [None if i % 4 else "tenant != 't13' and gpus <= 8"
                               for i in range(n_off)]
    templates = [
        "cuda >= {a} and tier >= {b}",
        "gpu_model in ('H100', 'H200') and price <= {p}",
        "has zone and zone != 'z{z}' and vram_gb >= 40",
        "tier > {b} or tags == 'nvlink'",
        "not (region == 'eu-west') and cuda >= {a}",
    ]
    texts = [templates[k % len(templates)].format(
        a=rng.choice(["11.8", "12.1", "12.4"]), b=int(rng.integers(0, 4)),
        p=int(rng.integers(500_000, 4_000_000)), z=int(rng.integers(0, 50)))
        for k in range(n_texts)]
    requests_c = {
        "id": np.array([f"r{j}" for j in range(n_req)]),
        "tenant": np.array([f"t{j % 97}" for j in range(n_req)]),
        "gpus": np.ones(n_req, dtype=np.int64),
        "max_price": np.full(n_req, 5_000_000),
        "constraints": [texts[int(k)] for k in rng.integers(0, n_texts, n_req)],
        "gpu_models": [[MODELS[int(k)][0]] if k < 6 else [] for k in rng.integers(0, 12, n_req)],
    }
    book = OrderBook.from_columns(offers_c, requests_c)

    def run() -> int:
        return Market(book).pair_count()

    t_lib, n_pairs = timed(run)
    snap = book.snapshot()
    rows = rng.integers(0, n_req, sample)
    cols = rng.integers(0, n_off, sample)
    pairs_py = [(snap.offer(int(o)), snap.request(int(r))) for r, o in zip(rows, cols,
                                                                         strict=True)]
    t_py, _ = timed(lambda: [constraints_hold(o, r) for o, r in pairs_py])
    lib_rate = n_req * n_off / t_lib  # every (request, offer) pair decided
    py_rate = sample / t_py
    mem = peak_mb(run)
    print(f"constraints {n_req:>7,} req ({n_texts} texts) x {n_off:>6,} off: "
          f"{n_pairs:>11,} eligible pairs in {t_lib:6.2f}s = {lib_rate / 1e6:8.1f} M pairs "
          f"decided/s ({n_pairs / t_lib / 1e6:.2f} M eligible/s); Python per pair "
          f"{py_rate / 1e3:.1f} k pairs/s -> {lib_rate / py_rate:,.0f}x, peak {mem:,.0f} MB",
          flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, under a minute")
    ap.add_argument("--only", choices=["highcard", "example", "random", "ingest", "constraints"],
                    action="append", help="run only these groups")
    args = ap.parse_args(argv)
    groups = set(args.only or ["highcard", "example", "random", "ingest", "constraints"])
    if "highcard" in groups:
        for n in ((10_000,) if args.quick else (10_000, 100_000)):
            bench_highcard(n)
    if "example" in groups:
        for copies in example_copies(args.quick):
            bench_example(copies)
    if "random" in groups:
        sizes = ((5_000, 20_000, None),) if args.quick else (
            (5_000, 20_000, None), (10_000, 1_000_000, 100_000))
        for n_off, n_req, py in sizes:
            bench_random(n_off, n_req, py)
    if "ingest" in groups:
        bench_ingest(*((100_000, 20_000) if args.quick else (1_000_000, 100_000)))
    if "constraints" in groups:
        bench_constraints(*((20_000, 2_000, 100, 2_000) if args.quick
                            else (100_000, 10_000, 500, 5_000)))
    print(f"max RSS {rss_mb():,.0f} MB", flush=True)


if __name__ == "__main__":
    main()
