"""Sealed-bid clearing throughput: the numba kernel against its pure-Python reference.

Same market, same run: for 10^3 .. 10^6 requests against 10^4 offers, this builds the market
(timed), checks that both backends give identical allocations, then times each and prints
requests cleared per second and the ratio. Run:

    python benchmarks/bench_sealed_bid.py            # full table (about two minutes)
    python benchmarks/bench_sealed_bid.py --quick    # 10^3 .. 10^5 (under a minute)

Then the same on the library's own example book (`instances.example_book_repeated`, 1, 4, 16
and 64 copies: 240 to 15,360 requests; ``--quick``: 1 and 4). Each row prints as soon as it
is measured; stderr shows the step running.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from instances import best_of, example_book_repeated, example_copies, make_book
from progress import Progress, live_stdout

from auction import Market
from auction.kernels.sealed_bid import sealed_bid, sealed_bid_reference
from auction.mechanisms.sealed_bid import sealed_bid_arrays


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--offers", type=int, default=10_000)
    ap.add_argument("--quick", action="store_true", help="stop at 10^5 requests")
    ap.add_argument("--payment", choices=["pay-as-bid", "vickrey"], default="pay-as-bid")
    args = ap.parse_args(argv)
    live_stdout()
    sizes = [10**3, 10**4, 10**5] + ([] if args.quick else [10**6])
    vickrey = args.payment == "vickrey"

    t = time.perf_counter()
    book = make_book(args.offers, max(sizes))
    print(f"built {args.offers} offers + {max(sizes)} requests in {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    sealed_bid(*sealed_bid_arrays(Market(make_book(10, 10))), vickrey)
    print(f"numba compile, or load from the disk cache: {time.perf_counter() - t:.2f} s "
          "(once per process; excluded below)")

    requests = book.requests()
    header = (
        f"{'requests':>14} {'market s':>9} {'classes':>8} {'profiles':>9} {'pairs':>12} "
        f"{'market MB':>10} {'pairs MB*':>10} {'numba req/s':>12} {'python req/s':>13} {'ratio':>7}"
    )
    print(f"\npayment={args.payment}, offers={args.offers}")
    print(header)
    print("-" * len(header))
    for n in sizes:
        row(str(n), make_subbook(book, requests[:n]), vickrey, 1 if n >= 10**6 else 3,
            1 if n >= 10**5 else 3)
    # the library's own example book at every size (its offers, not --offers)
    for copies in example_copies(args.quick):
        row(f"example x{copies}", example_book_repeated(copies), vickrey, 3, 1 if copies >= 16
            else 3)
    print("* pairs MB: what materializing every pair would take; the market keeps classes.")


def row(label: str, book: Any, vickrey: bool, repeat_market: int, repeat_py: int) -> None:
    """Build the market of `book` (timed), check numba against the reference, print a row."""
    n = book.n_requests
    with Progress(3, label) as bar:
        bar.step("market")
        t_market, market = best_of(lambda: Market(book), repeat_market)
        arrays = sealed_bid_arrays(market)
        bar.step("numba kernel")
        t_nb, out_nb = best_of(lambda: sealed_bid(*arrays, vickrey), 5)
        bar.step("Python reference")
        t_py, out_py = best_of(lambda: sealed_bid_reference(*arrays, vickrey), repeat_py)
    for a, b in zip(out_nb, out_py, strict=True):
        assert np.array_equal(a, b), "numba kernel and reference disagree"
    pairs = market.pair_count()
    pairs_mb = pairs * 16 / 2**20  # what a materialized CSR (int64 offer + surplus) would take
    print(
        f"{label:>14} {t_market:>9.3f} {market.n_classes:>8} {market.n_profiles:>9} {pairs:>12} "
        f"{market.nbytes / 2**20:>10.1f} {pairs_mb:>10.1f} {n / t_nb:>12.3e} "
        f"{n / t_py:>13.3e} {t_py / t_nb:>7.0f}x"
    )


def make_subbook(book: Any, requests: list[Any]) -> Any:
    from auction import OrderBook

    sub = OrderBook(book.offers())
    sub.add_many(requests)
    return sub


if __name__ == "__main__":
    main()
