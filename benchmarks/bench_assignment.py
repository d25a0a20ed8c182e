"""Welfare-optimal matching: the numba auction against scipy, OR-tools and lap.

Every solver gets the same instance in the same run; the optimal welfare of all of them is
asserted equal before any time is printed. Competitors that cannot be imported are skipped
(OR-tools and lap are benchmark-only extras: ``pip install -e ".[bench]"``), and each competitor
runs in a subprocess with a time limit so a slow one is reported as "> limit".

    python benchmarks/bench_assignment.py                # the full table (~10 minutes)
    python benchmarks/bench_assignment.py --quick        # 10^4 sparse, 1000 dense
    python benchmarks/bench_assignment.py --plot out.png # also plot time against size

Sparse instances: n requests x n offers, each request eligible for d random offers, integer
surplus in [1, 10^6]. Requests may stay unmatched, so scipy's and OR-tools' full-matching
solvers get the standard reduction: a private zero-surplus dummy per request (and for OR-tools,
which needs a square problem, a dummy per offer plus one dummy arc per real arc).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix

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


def run_ortools(inst: Instance) -> tuple[float, int]:
    from ortools.graph.python import linear_sum_assignment as ort

    n, indptr, cols, w = inst
    t = time.perf_counter()
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
    ar = np.arange(n, dtype=np.int64)
    big = int(w.max()) + 1
    solver = ort.SimpleLinearSumAssignment()
    solver.add_arcs_with_cost(
        np.concatenate([rows, ar, n + ar, n + cols]),
        np.concatenate([cols, n + ar, ar, n + rows]),
        np.concatenate([big - w, np.full(n, big), np.zeros(n + len(cols), np.int64)]),
    )
    status = solver.solve()
    dt = time.perf_counter() - t
    assert status == solver.OPTIMAL, status
    mate = np.array([solver.right_mate(i) for i in range(n)])
    keep = mate < n
    dense_w = csr_matrix((w, cols, indptr), shape=(n, n))
    return dt, int(dense_w[ar[keep], mate[keep]].sum())


SOLVERS: dict[str, Callable[[Instance], tuple[float, int]]] = {
    "auction": run_auction,
    "scipy-sparse": run_scipy_sparse,
    "scipy-dense": run_scipy_dense,
    "ortools": run_ortools,
    "lap": run_lap,
}


def _child(name: str, inst: Instance, queue: Any) -> None:
    try:
        if name == "auction":
            run_auction(sparse_instance(8, 3))  # compile outside the timing
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


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--limit", type=float, default=300.0, help="seconds per competitor run")
    ap.add_argument("--plot", help="save a plot of time against size to this PNG file")
    args = ap.parse_args(argv)
    compile_s, first_s = compile_and_first_result()
    print(f"numba compile of the auction kernels: {compile_s:.2f} s")
    print(f"import auction -> first assignment result (demo market, with compile): {first_s:.2f} s")

    sparse_sizes = [10**4] if args.quick else [10**4, 5 * 10**4, 10**5]
    dense_sizes = [1000] if args.quick else [1000, 2000, 4000]
    cases: list[tuple[str, Instance, list[str]]] = []
    for d in (10, 30):
        for n in sparse_sizes:
            cases.append((f"sparse n={n} d={d}", sparse_instance(n, d, seed=n + d),
                          ["auction", "scipy-sparse", "ortools"]))
    for n in dense_sizes:
        cases.append((f"dense {n}x{n}", dense_instance(n, seed=n),
                      ["auction", "scipy-dense", "lap"]))

    rows = []
    for label, inst, names in cases:
        results = {name: timed(name, inst, args.limit) for name in names}
        welfare = {r[2] for r in results.values() if r[0] == "ok"}
        assert len(welfare) == 1, f"{label}: solvers disagree on the optimum: {results}"
        rows.append((label, results))
        print(f"  solved {label}: optimum {welfare.pop()} agreed by "
              f"{[k for k, v in results.items() if v[0] == 'ok']}", flush=True)

    print(f"\n{'instance':<22} {'solver':<13} {'seconds':>9} {'auction speed-up':>17}")
    print("-" * 64)
    for label, results in rows:
        base = results["auction"][1]
        for name, (status, secs, _) in results.items():
            if status == "ok" and secs is not None and base:
                shown, ratio = f"{secs:9.3f}", f"{secs / base:16.1f}x"
            elif status == "timeout":
                shown = f"{'>' + str(int(args.limit)):>9}"
                ratio = f"{'>' + format(args.limit / base, '.0f'):>16}x"
            else:
                shown, ratio = f"{status:>9}", ""
            print(f"{label:<22} {name:<13} {shown} {ratio if name != 'auction' else '':>17}")
    if args.plot:
        plot(rows, args.plot, args.limit)


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
