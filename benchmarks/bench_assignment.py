"""Welfare-optimal matching: the numba auction against scipy, OR-tools and lap; VCG cost.

Every solver gets the same instance in the same run; the optimal welfare of all exact solvers is
asserted equal, and each row is printed as soon as it is measured. Competitors that cannot be
imported are skipped (OR-tools and lap are benchmark-only extras: ``pip install -e ".[bench]"``),
and each competitor runs in a subprocess with a time limit so a slow one is reported as
"> limit". The auction runs in this process (compiled once, before any timing).

    python benchmarks/bench_assignment.py                # the full table
    python benchmarks/bench_assignment.py --quick        # small sizes, under a minute
    python benchmarks/bench_assignment.py --plot out.png # also plot time against size
    python benchmarks/bench_assignment.py --vcg-only --vcg-limit 20  # VCG / pay-as-bid, all
    python benchmarks/bench_assignment.py --example-only # the example book rows only

Instances (`benchmarks/instances.py`): sparse n requests x n offers, d random offers per
request, integer surplus in [1, 10^6]; dense n x n; the adversarial kinds of issue 12 (all asks
equal, all values equal, surplus range 1e15, one offer wanted by all, long augmenting chains,
identical requests). Requests may stay unmatched. OR-tools runs as its users run it:
``SimpleMinCostFlow`` with a source, a sink, unit arcs and a zero-cost source-sink bypass for
the partial matching (``ortools-mcf``, exact for this problem), and ``SimpleLinearSumAssignment``
directly on the arcs (``ortools-lsa``) when a perfect matching exists; LSA then maximizes over
perfect matchings only, so its welfare is reported but not asserted (it is the optimum when the
optimal matching is perfect). scipy gets a private zero-surplus dummy per request (it needs a
full matching). Each instance is solved on the path `assignment` takes: the dense
Jonker-Volgenant kernel (rows labelled ``jv``) on dense markets of at least 250,000 cells, the
auction otherwise. VCG: the time of the VCG payments (providers owning four offers each,
``--offers-per-provider`` to change it;
`vcg_bonuses_bounded` after the auction, `vcg_groups` from the JV duals) as a multiple of the
pay-as-bid solve on the same path; the example book is cleared end to end.

The example book at every size (`instances.example_book_repeated`, 1, 4, 16 and 64 copies:
422 to 26,690 orders, 2,139 to 8.3 M exclusive pairs; ``--quick``: 1 and 4): ``auction.clear``
from the book (Market included, pay-as-bid and VCG; ``clear e2e`` / ``clear vcg`` rows, the
ratio there is to the solve, and VCG's to the pay-as-bid clear) and the solve on the market's
pair graph (`matching_problem`, padded to square) against scipy and OR-tools.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix

sys.path.insert(0, str(Path(__file__).resolve().parent))
from instances import (
    ADVERSARIAL,
    adversarial_graph,
    best_of,
    example_book_repeated,
    example_copies,
    example_pair_graph,
)

Instance = tuple[int, np.ndarray, np.ndarray, np.ndarray]  # n, indptr, cols, weights


def sparse_instance(n: int, d: int, seed: int = 0) -> Instance:
    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(n), d)
    cols = rng.integers(0, n, n * d)
    w = rng.integers(1, 10**6 + 1, n * d)
    m = csr_matrix((w, (rows, cols)), shape=(n, n))
    m.sum_duplicates()  # a repeated pair keeps one edge (the summed weight)
    m.sort_indices()
    return n, m.indptr.astype(np.int64), m.indices.astype(np.int64), m.data.astype(np.int64)


def dense_instance(n: int, seed: int = 0) -> Instance:
    rng = np.random.default_rng(seed)
    w = rng.integers(1, 10**6 + 1, (n, n)).astype(np.int64)
    indptr = np.arange(0, n * n + 1, n, dtype=np.int64)
    cols = np.tile(np.arange(n, dtype=np.int64), n)
    return n, indptr, cols, w.reshape(-1)


# -- solvers: each returns (seconds, welfare) ---------------------------------------------
def run_auction(inst: Instance) -> tuple[float, int]:
    from auction.kernels.assignment import auction_matching

    n, indptr, cols, w = inst
    t = time.perf_counter()
    a = w * (2 * n + 1) + 1  # the mechanism's exact scaling (scaled_benefits)
    pedge, *_ = auction_matching(n, n, indptr, cols, a, 10)
    dt = time.perf_counter() - t
    return dt, int(w[pedge[pedge >= 0]].sum())


def run_scipy_sparse(inst: Instance) -> tuple[float, int]:
    from scipy.sparse import hstack, identity
    from scipy.sparse.csgraph import min_weight_full_bipartite_matching

    n, indptr, cols, w = inst
    t = time.perf_counter()
    big = int(w.max()) + 1
    real = csr_matrix(((big - w).astype(np.float64), cols, indptr), shape=(n, n))
    full = hstack([real, identity(n, format="csr") * big]).tocsr()
    rows, match = min_weight_full_bipartite_matching(full)
    dt = time.perf_counter() - t
    keep = match < n
    dense_w = csr_matrix((w, cols, indptr), shape=(n, n))
    return dt, int(dense_w[rows[keep], match[keep]].sum())


def run_scipy_dense(inst: Instance) -> tuple[float, int]:
    from scipy.optimize import linear_sum_assignment

    n, _, _, w = inst
    mat = w.reshape(n, n)
    t = time.perf_counter()
    r, c = linear_sum_assignment(mat, maximize=True)
    dt = time.perf_counter() - t
    return dt, int(mat[r, c].sum())


def run_lap(inst: Instance) -> tuple[float, int]:
    import lap

    n, _, _, w = inst
    mat = w.reshape(n, n)
    t = time.perf_counter()
    _, x, _ = lap.lapjv((int(w.max()) - mat).astype(np.float64))
    dt = time.perf_counter() - t
    return dt, int(mat[np.arange(n), x].sum())


def run_ortools_mcf(inst: Instance) -> tuple[float, int]:
    """OR-tools min-cost flow: source -> requests (unit), arcs (cost -w), offers -> sink
    (unit), and a source -> sink bypass so any matching is feasible."""
    from ortools.graph.python import min_cost_flow

    n, indptr, cols, w = inst
    t = time.perf_counter()
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
    src, snk = 2 * n, 2 * n + 1
    ar = np.arange(n, dtype=np.int64)
    tails = np.concatenate([np.full(n, src), rows, n + ar, [src]])
    heads = np.concatenate([ar, n + cols, np.full(n, snk), [snk]])
    caps = np.concatenate([np.ones(2 * n + len(cols), np.int64), [n]])
    costs = np.concatenate([np.zeros(n, np.int64), -w, np.zeros(n + 1, np.int64)])
    mcf = min_cost_flow.SimpleMinCostFlow()
    mcf.add_arcs_with_capacity_and_unit_cost(tails, heads, caps, costs)
    supplies = np.zeros(2 * n + 2, dtype=np.int64)
    supplies[src], supplies[snk] = n, -n
    mcf.set_nodes_supplies(np.arange(2 * n + 2), supplies)
    status = mcf.solve()
    dt = time.perf_counter() - t
    assert status == mcf.OPTIMAL, status
    return dt, -int(mcf.optimal_cost())


def run_ortools_lsa(inst: Instance) -> tuple[float, int]:
    """OR-tools LSA directly on the arcs (needs a perfect matching: checked first, untimed)."""
    from ortools.graph.python import linear_sum_assignment as ort
    from scipy.sparse.csgraph import maximum_bipartite_matching

    n, indptr, cols, w = inst
    structure = csr_matrix((np.ones(len(cols)), cols, indptr), shape=(n, n))
    if int((maximum_bipartite_matching(structure) >= 0).sum()) < n:
        raise ImportError("no perfect matching: LSA does not apply")
    t = time.perf_counter()
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
    solver = ort.SimpleLinearSumAssignment()
    solver.add_arcs_with_cost(rows, cols, int(w.max()) - w)
    status = solver.solve()
    dt = time.perf_counter() - t
    assert status == solver.OPTIMAL, status
    mate = np.array([solver.right_mate(i) for i in range(n)])
    dense_w = csr_matrix((w, cols, indptr), shape=(n, n))
    return dt, int(dense_w[np.arange(n), mate].sum())


SOLVERS: dict[str, Callable[[Instance], tuple[float, int]]] = {
    "auction": run_auction,
    "scipy-sparse": run_scipy_sparse,
    "scipy-dense": run_scipy_dense,
    "ortools-mcf": run_ortools_mcf,
    "ortools-lsa": run_ortools_lsa,
    "lap": run_lap,
}


def _child(name: str, inst: Instance, queue: Any) -> None:
    try:
        queue.put(SOLVERS[name](inst))
    except ImportError as e:
        queue.put(("skip", str(e)))
    except Exception as e:
        queue.put(("error", repr(e)))


def timed(name: str, inst: Instance, limit: float) -> tuple[str, float | None, int | None]:
    """Run a solver in a subprocess; ('ok'|'timeout'|'skip'|'error', seconds, welfare)."""
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(name, inst, queue))
    proc.start()
    proc.join(limit)
    if proc.is_alive():
        proc.kill()
        proc.join()
        return "timeout", None, None
    out = queue.get() if not queue.empty() else ("error", "no result")
    if out[0] in ("skip", "error"):
        return str(out[0]), None, None
    return "ok", float(out[0]), int(out[1])


def compile_and_first_result() -> tuple[float, float]:
    """(numba compile seconds, seconds from `import auction` to a first cleared result)."""
    code = (
        "import time; t0 = time.perf_counter(); import auction;"
        "book = auction.demo.example_book();"
        "r = auction.clear(book, 'assignment'); t1 = time.perf_counter();"
        "print(t1 - t0)"
    )
    first = float(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                 text=True).stdout)
    from auction.kernels.assignment import auction_matching

    t = time.perf_counter()
    auction_matching.group.compiled("auction_matching")
    inst = sparse_instance(8, 3)
    auction_matching(8, 8, inst[1], inst[2], inst[3] * 17 + 1, 10)
    return time.perf_counter() - t, first


def rectangular(g: tuple[int, int, np.ndarray, np.ndarray, np.ndarray]) -> Instance:
    """A graph with m objects (m <= n) as an `Instance` padded to n objects (unused ones)."""
    n, m, indptr, cols, w = g
    assert m <= n
    return n, indptr, cols, w


def auction_and_vcg(inst: Instance, repeat: int, limit: float,
                    group: int = 4) -> tuple[float, float, int, str]:
    """(pay-as-bid solve seconds, VCG payment seconds or inf past `limit`, welfare, method).

    The path `assignment` takes on this instance: the dense Jonker-Volgenant kernel with VCG
    from its duals (`vcg_groups`) on dense markets (method ``"jv"``), else the auction with
    `vcg_bonuses_bounded` (``"auction"``); providers own `group` consecutive offers each.
    """
    from auction.kernels.assignment import DONE, auction_matching, vcg_bonuses_bounded, vcg_groups
    from auction.kernels.budget import stop_at, vcg_work_bound
    from auction.kernels.dense import dense_assignment, use_dense
    from auction.mechanisms.assignment import DENSE_MIN_CELLS

    n, indptr, cols, w = inst
    m = n
    gptr = np.arange(0, m + group, group, dtype=np.int64)
    gptr[-1] = m
    gobj = np.arange(m, dtype=np.int64)
    if n * m >= DENSE_MIN_CELLS and use_dense(n, m, len(cols)):
        solve_s, (pedge, u, p, _) = best_of(
            lambda: dense_assignment(n, m, indptr, cols, w), repeat)

        def jv_vcg() -> int:
            out = np.zeros(len(gptr) - 1, dtype=np.int64)
            with stop_at(time.monotonic() + limit) as stop:
                code, _, _ = vcg_groups(n, m, indptr, cols, w, pedge, u, p, gptr, gobj, 0,
                                        out, vcg_work_bound(n, m, len(cols)), stop)
            return int(code)

        vcg_s, status = best_of(jv_vcg, repeat)
        welfare = int(w[pedge[pedge >= 0]].sum())
        return solve_s, vcg_s if status == DONE else float("inf"), welfare, "jv"
    a = w * (2 * n + 1) + 1
    solve_s, out = best_of(lambda: auction_matching(n, m, indptr, cols, a, 10), repeat)
    pedge, price, profit = out[0], out[1], out[2]
    vcg_s, (_, status, _) = best_of(lambda: vcg_bonuses_bounded(
        n, m, indptr, cols, a, w, pedge, price, gptr, gobj, profit=profit,
        deadline=time.monotonic() + limit), repeat)
    welfare = int(w[pedge[pedge >= 0]].sum())
    return solve_s, vcg_s if status == DONE else float("inf"), welfare, "auction"


def example_book_vcg(repeat: int, copies: int = 1,
                     vcg_limit: float = 600.0) -> tuple[float, float, int, Instance]:
    """(pay-as-bid, vcg) seconds of ``auction.clear`` on the example book (`copies` copies,
    `example_book_repeated`), end to end from the book (Market included); the welfare, and the
    market's pair graph for the solvers. VCG is inf when it passes `vcg_limit` seconds."""
    import auction

    book = auction.demo.example_book(0) if copies == 1 else example_book_repeated(copies)
    pab, result = best_of(lambda: auction.clear(book, "assignment"), repeat)
    vcg = float("inf")
    if copies == 1 or vcg_limit > 0:
        opts = {} if copies == 1 else {"time_limit": vcg_limit}
        vcg, vres = best_of(lambda: auction.clear(book, "assignment", payment="vcg", **opts),
                            1 if copies > 1 else repeat)
        if copies > 1 and vres.status != "success":
            vcg = float("inf")
    return pab, vcg, int(result.welfare), rectangular(example_pair_graph(auction.Market(book)))


def graph_instance(g: tuple[int, int, np.ndarray, np.ndarray, np.ndarray]) -> Instance:
    """A square (n x n) graph from `instances` as this benchmark's (n, indptr, cols, w)."""
    n, m, indptr, cols, w = g
    assert n == m, "square instances only"
    return n, indptr, cols, w


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--limit", type=float, default=300.0, help="seconds per competitor run")
    ap.add_argument("--plot", help="save a plot of time against size to this PNG file")
    ap.add_argument("--vcg-only", action="store_true",
                    help="only the auction and its VCG / pay-as-bid ratio, every instance")
    ap.add_argument("--vcg-limit", type=float, default=None,
                    help="VCG deadline in seconds (default: --limit)")
    ap.add_argument("--offers-per-provider", type=int, default=4, metavar="K",
                    help="offers each provider owns in the graph instances' VCG (default 4; "
                         "with 1, VCG is the objects' largest duals, one pass)")
    ap.add_argument("--example-only", action="store_true",
                    help="only the example book rows (`example_book_repeated` copies)")
    args = ap.parse_args(argv)
    limit = min(args.limit, 3.0) if args.quick else args.limit
    vcg_limit = limit if args.vcg_limit is None else args.vcg_limit
    repeat = 1 if args.quick else 2 if args.vcg_only else 3
    compile_s, first_s = compile_and_first_result()
    print(f"numba compile of the auction kernels: {compile_s:.2f} s")
    print(f"import auction -> first assignment result (demo market, with compile): {first_s:.2f} s")
    auction_and_vcg(sparse_instance(64, 4), 1, 600.0)  # compile the VCG kernels untimed
    auction_and_vcg(dense_instance(500), 1, 600.0)  # and the dense (JV) path's
    pab, vcg, _, _ = example_book_vcg(3)
    print(f"example book, auction.clear: pay-as-bid {pab * 1e3:.2f} ms, vcg {vcg * 1e3:.2f} ms "
          f"(VCG / pay-as-bid {vcg / pab:.2f}x)", flush=True)

    sparse_sizes = [10**4] if args.quick else [10**4, 10**5]
    dense_sizes = [1000] if args.quick else [1000, 2000, 4000]
    adv_n = 2000 if args.quick else 10**4
    cases: list[tuple[str, Instance, list[str]]] = []
    for d in (10,) if args.quick else (10, 30):
        for n in sparse_sizes:
            cases.append((f"sparse n={n} d={d}", sparse_instance(n, d, seed=n + d),
                          ["scipy-sparse", "ortools-mcf", "ortools-lsa"]))
    for n in dense_sizes:
        cases.append((f"dense {n}x{n}", dense_instance(n, seed=n),
                      ["scipy-dense", "lap", "ortools-lsa"]))
    for kind in ADVERSARIAL:
        if kind == "identical":
            if args.vcg_only:  # m = d < n: no square competitors, but VCG is reported
                cases.append((f"adv identical n={10**5}",
                              rectangular(adversarial_graph(kind, 10**5)), []))
            continue
        size = min(adv_n, 250) if kind == "range-1e15" else adv_n
        cases.append((f"adv {kind} n={size}", graph_instance(adversarial_graph(kind, size)),
                      ["scipy-sparse", "ortools-mcf"]))

    if args.example_only:
        cases = []
    e2e: dict[str, tuple[float, float, int]] = {}  # label: (pay-as-bid, vcg, welfare)
    for copies in example_copies(args.quick):
        pab, vcg, wel, inst = example_book_vcg(repeat, copies, min(vcg_limit, 60.0))
        label = f"example x{copies}"
        e2e[label] = pab, vcg, wel
        cases.append((label, inst, ["scipy-sparse", "ortools-mcf"]))

    print(f"\n{'instance':<28} {'solver':<13} {'seconds':>9} {'/ auction':>10} {'welfare':>16}")
    print("-" * 80, flush=True)
    rows = []
    for label, inst, names in cases:
        solve_s, vcg_s, welfare, method = auction_and_vcg(inst, repeat, vcg_limit,
                                                          args.offers_per_provider)
        results: dict[str, tuple[str, float | None, int | None]] = {
            "auction": ("ok", solve_s, welfare)}
        print(f"{label:<28} {method:<13} {solve_s:9.3f} {'':>10} {welfare:>16}", flush=True)
        if label in e2e:  # auction.clear from the book, pay-as-bid and VCG
            pab, vcg, wel = e2e[label]
            assert wel == welfare, f"{label}: auction.clear welfare {wel} != solve {welfare}"
            print(f"{label:<28} {'clear e2e':<13} {pab:9.3f} {pab / solve_s:9.2f}x {wel:>16}"
                  f"  ({inst[0]} requests, {len(inst[2])} pairs)", flush=True)
            vtxt = f"{vcg:9.3f} {vcg / pab:9.2f}x" if vcg < float("inf") else (
                f"{'>' + str(int(vcg_limit)):>9} {'':>10}")
            print(f"{label:<28} {'clear vcg':<13} {vtxt} {'(/ clear e2e)':>16}", flush=True)
        if vcg_s == float("inf"):
            print(f"{label:<28} {method + ' vcg':<13} {'>' + str(int(vcg_limit)):>9} "
                  f"{'>' + format(vcg_limit / solve_s, '.0f'):>9}x (VCG deadline hit)",
                  flush=True)
        else:
            print(f"{label:<28} {method + ' vcg':<13} {vcg_s:9.3f} {vcg_s / solve_s:9.2f}x "
                  f"{'(VCG / pay-as-bid)':>16}", flush=True)
        for name in [] if args.vcg_only else names:
            status, secs, wel = timed(name, inst, limit)
            results[name] = (status, secs, wel)
            if status == "ok" and secs is not None:
                note = "" if wel == welfare else "  (perfect matchings only)"
                if wel != welfare and name != "ortools-lsa":
                    raise AssertionError(f"{label}: {name} welfare {wel} != auction {welfare}")
                print(f"{label:<28} {name:<13} {secs:9.3f} {secs / solve_s:9.2f}x {wel:>16}"
                      f"{note}", flush=True)
            elif status == "timeout":
                print(f"{label:<28} {name:<13} {'>' + str(int(limit)):>9} "
                      f"{'>' + format(limit / solve_s, '.0f'):>9}x", flush=True)
            else:
                print(f"{label:<28} {name:<13} {status:>9}", flush=True)
        rows.append((label, results))
    if args.plot:
        plot(rows, args.plot, limit)


def plot(rows: list[Any], path: str, limit: float) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is missing (pip install -e '.[plot]'); no plot written")
        return
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, kind in zip(axes, ("sparse", "dense"), strict=True):
        series: dict[str, list[tuple[int, float]]] = {}
        for label, results in rows:
            if not label.startswith(kind):
                continue
            size = int(label.split("n=")[1].split()[0]) if kind == "sparse" else int(
                label.split()[1].split("x")[0])
            tag = f" d={label.split('d=')[1]}" if kind == "sparse" else ""
            for name, (status, secs, _) in results.items():
                if status == "ok" and secs is not None:
                    series.setdefault(name + tag, []).append((size, secs))
        for name, pts in sorted(series.items()):
            xs, ys = zip(*sorted(pts), strict=True)
            ax.plot(xs, ys, marker="o", label=name)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("requests (= offers)")
        ax.set_ylabel("seconds")
        ax.set_title(f"{kind} instances (runs over {limit:.0f} s not shown)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"plot written to {path}")


if __name__ == "__main__":
    main()
