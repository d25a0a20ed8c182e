"""Dense assignment: the Jonker-Volgenant kernel against lap.lapjv and scipy, in one run.

Instances (every pair allowed, seeded): ``uniform`` n x n, integer weights in [1, 10^6] (the
``dense n x n`` instance of bench_assignment.py); ``ties`` n x n, weights in [1, 3] (most
optima tied); ``rect`` n/2 x n, weights in [1, 10^6] (the general mode, with unmatched
columns; lap pads it to a square with ``extend_cost``). Solvers, each timed as its users call
it, best of `--repeat`:

* ``jv``: `auction.kernels.dense.dense_assignment` from the CSR graph the mechanisms hold
  (matrix build, solve, certificate check and edge mapping included);
* ``jv-matrix``: the same kernel on a ready int64 matrix (`jv_matrix`), for a like-for-like
  comparison with the tools below, which take a matrix;
* ``lap``: ``lap.lapjv`` on float64 costs ``max(w) - w`` (conversion included);
* ``scipy``: ``scipy.optimize.linear_sum_assignment(w, maximize=True)``;
* ``auction``: the numba auction of the ``assignment`` mechanism (with its exact scaling).

Every solver's welfare must equal scipy's (the run stops otherwise). Ratios are the other
solver's time / ``jv`` (above 1: jv is faster). Compile time is measured apart, in a fresh
process with the disk cache off. ``--density`` times jv against the auction on random graphs
of growing density, the measurement behind `auction.kernels.dense.use_dense`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from instances import best_of

Graph = tuple[int, int, np.ndarray, np.ndarray, np.ndarray]

COMPILE_SNIPPET = """
import time, numpy as np
t = time.perf_counter()
from auction.kernels.dense import dense_assignment
w = np.arange(1, 10, dtype=np.int64)
out = dense_assignment(3, 3, np.arange(0, 10, 3), np.tile(np.arange(3), 3), w)
half = np.array([0, 2, 3, 3]), np.array([0, 2, 1]), np.array([5, 0, 7])
out = dense_assignment(3, 3, half[0], half[1], half[2])
print(time.perf_counter() - t)
"""


def instance(n: int, top: int, seed: int, density: float = 1.0, m: int | None = None) -> Graph:
    """n x m (default n) graph, weights in [1, top]; pairs allowed with probability `density`."""
    m = n if m is None else m
    rng = np.random.default_rng(seed)
    w = rng.integers(1, top + 1, (n, m)).astype(np.int64)
    if density >= 1.0:
        indptr = np.arange(0, n * m + 1, m, dtype=np.int64)
        return n, m, indptr, np.tile(np.arange(m, dtype=np.int64), n), w.reshape(-1)
    keep = rng.random((n, m)) < density
    r, c = np.nonzero(keep)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(r, minlength=n), out=indptr[1:])
    return n, m, indptr, c.astype(np.int64), w[r, c]


def matrix(g: Graph) -> np.ndarray:
    n, m, indptr, cols, w = g
    mat = np.zeros((n, m), dtype=np.int64)
    mat[np.repeat(np.arange(n), np.diff(indptr)), cols] = w
    return mat


def run_jv(g: Graph) -> int:
    from auction.kernels.dense import DONE, dense_assignment

    pedge, _, _, status = dense_assignment(*g)
    assert status == DONE, status
    return int(g[4][pedge[pedge >= 0]].sum())


def run_jv_matrix(mat: np.ndarray) -> int:
    from auction.kernels.budget import no_stop
    from auction.kernels.dense import DONE, dense_work_bound, jv_matrix

    n, m = mat.shape
    x, _, _, _, status, _ = jv_matrix(mat, n == m, dense_work_bound(n, m), no_stop())
    assert status == DONE, status
    return int(mat[np.flatnonzero(x >= 0), x[x >= 0]].sum())


def run_lap(mat: np.ndarray) -> int:
    import lap

    n, m = mat.shape
    _, x, _ = lap.lapjv((int(mat.max()) - mat).astype(np.float64), extend_cost=n != m)
    return int(mat[np.flatnonzero(x >= 0), x[x >= 0]].sum())


def run_scipy(mat: np.ndarray) -> int:
    from scipy.optimize import linear_sum_assignment

    r, c = linear_sum_assignment(mat, maximize=True)
    return int(mat[r, c].sum())


def run_auction(g: Graph) -> int:
    from auction.kernels.assignment import auction_matching

    n, m, indptr, cols, w = g
    a = w * (2 * n + 1) + 1  # the mechanism's exact scaling (scaled_benefits)
    pedge, *_ = auction_matching(n, m, indptr, cols, a, 10)
    return int(w[pedge[pedge >= 0]].sum())


def compile_seconds() -> float:
    """First call of the dense kernels in a fresh process with no disk cache (compile)."""
    env = dict(os.environ, AUCTION_NUMBA_CACHE="0")
    out = subprocess.run([sys.executable, "-c", COMPILE_SNIPPET], env=env, check=True,
                         capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def warm() -> None:
    """Compile (or load) every kernel timed here, untimed."""
    g = instance(8, 10, 0)
    run_jv(g)
    run_jv(instance(8, 10, 0, density=0.5))
    run_jv_matrix(matrix(g))
    run_auction(g)


def compare(sizes: list[int], repeat: int, with_auction: bool) -> None:
    print(f"{'instance':<18} {'solver':<10} {'seconds':>9} {'/ jv':>8} {'welfare':>14}")
    print("-" * 64)
    for n in sizes:
        for kind, top, rows in (("uniform", 10**6, n), ("ties", 3, n), ("rect", 10**6, n // 2)):
            g = instance(rows, top, seed=n, m=n)
            mat = matrix(g)
            label = f"{kind} {rows}x{n}"
            solvers: list[tuple[str, Callable[[], int]]] = [
                ("jv", lambda g=g: run_jv(g)),  # type: ignore[misc]
                ("jv-matrix", lambda mat=mat: run_jv_matrix(mat)),  # type: ignore[misc]
                ("lap", lambda mat=mat: run_lap(mat)),  # type: ignore[misc]
                ("scipy", lambda mat=mat: run_scipy(mat)),  # type: ignore[misc]
            ]
            if with_auction:
                solvers.append(("auction", lambda g=g: run_auction(g)))  # type: ignore[misc]
            base = None
            ref = None
            for name, fn in solvers:
                secs, welfare = best_of(fn, 1 if name == "auction" and n > 2000 else repeat)
                base = secs if base is None else base
                ref = welfare if ref is None else ref
                if welfare != ref:
                    raise AssertionError(f"{label}: {name} welfare {welfare} != jv {ref}")
                print(f"{label:<18} {name:<10} {secs:9.3f} {secs / base:7.2f}x {welfare:>14}",
                      flush=True)


def density_sweep(n: int, repeat: int) -> None:
    """jv against the auction on n x n graphs of growing density (weights in [1, 10^6])."""
    print(f"\n{'density':>8} {'edges':>10} {'jv s':>9} {'auction s':>10} {'auction / jv':>13}")
    for density in (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0):
        g = instance(n, 10**6, seed=7, density=density)
        jv_s, a = best_of(lambda g=g: run_jv(g), repeat)  # type: ignore[misc]
        au_s, b = best_of(lambda g=g: run_auction(g), repeat)  # type: ignore[misc]
        assert a == b, (density, a, b)
        print(f"{density:8.2f} {len(g[3]):10d} {jv_s:9.3f} {au_s:10.3f} {au_s / jv_s:12.2f}x",
              flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="n = 1000 only, one repeat")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 4000])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-auction", action="store_true", help="skip the auction column")
    ap.add_argument("--density", type=int, metavar="N", help="density sweep at N x N only")
    args = ap.parse_args(argv)
    sizes, repeat = ([1000], 1) if args.quick else (args.sizes, args.repeat)
    load = os.getloadavg()
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
          f"on {os.cpu_count()} cores")
    print(f"compile of the dense kernels (fresh process, no disk cache): "
          f"{compile_seconds():.2f} s")
    t = time.perf_counter()
    warm()
    print(f"warm-up in this process (cache load or compile): {time.perf_counter() - t:.2f} s\n")
    if args.density:
        density_sweep(args.density, repeat)
    else:
        compare(sizes, repeat, not args.no_auction)
    load = os.getloadavg()
    print(f"\nload average at end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
