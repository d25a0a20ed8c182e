"""Settlement accrual: one period's exact charge for 10^6 leases, in leases per second.

The input is N leases (10^6 by default) with GPU prices of 0.10-40.00 USD per GPU-hour
(log-uniform, whole cents, in micro-USDC) times 1-8 GPUs, each charged per hour, per Akash
block (6.1 s; rates quoted per hour) or per second, at a random period index within its first
year. In one run, on the same arrays, this times the charge of one period of every lease:

* `period_charges` (one call per period kind): int64 with per-element overflow checks;
* plain Python ints, ``r * (i + 1) * num // den - r * i * num // den`` (``.tolist()``
  included), the exact reference every ratio is taken against;
* `fractions.Fraction`, ``floor(r * (i + 1) * h) - floor(r * i * h)``, the obvious exact
  approach, on a sample (`--sample`, 10^5 by default) and reported per lease;
* numpy float64 (inexact: how many of the N charges it gets wrong is printed) and numpy int64
  without overflow checks (wrong past int64): the floor of what vectorizing can give.

The same is timed on inputs past int64: 1% and then all of the leases priced in an
18-decimal token (0.1-1 token per GPU-hour times 1-8 GPUs: rates up to 8e18 still fit int64,
their products do not), which `period_charges` still computes on int64 by splitting each
rate by the period's denominator; then rates that are themselves past int64 (the token rates
times 10^18, an object array of Python ints), which take the Python-int fallback. Every
`period_charges` result is checked equal to the Python-int loop on all N leases, and the
Fraction loop on its sample, before any time is printed.

Then end to end, on a `Ledger` with `--book-n` leases (10^5 by default; Akash fees, 20% of
USDC payments): building the `Lease` objects, `LeaseBook.open_many` with a deposit per lease,
and `LeaseBook.accrue_all` of the first and of the second period (one transaction per lease).
Times are the best of `--repeat` runs. Run:

    python benchmarks/bench_settlement.py            # 10^6 leases, book of 10^5 (about 30 s)
    python benchmarks/bench_settlement.py --quick    # 10^5 leases, book of 10^4
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))

from instances import best_of
from progress import live_stdout

from auction.settlement import Account, AccountKind, FeeSchedule, Ledger, transfer
from auction.settlement.leases import BLOCK, HOUR, SECOND, Lease, LeaseBook, Period, period_charges

IntArray = npt.NDArray[np.int64]
PERIODS: tuple[tuple[Period, float], ...] = ((HOUR, 0.4), (BLOCK, 0.4), (SECOND, 0.2))
YEAR = 365 * 86400  # seconds
I64 = 2**63 - 1


# -- inputs ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Leases:
    """N leases sorted by period kind: `groups` holds (period, start, stop) slices."""

    rates: npt.NDArray[Any]  # int64, or object (Python ints) past int64
    index: IntArray
    groups: list[tuple[Period, int, int]]

    def overflowing(self) -> int:
        """Leases whose ``rate x (index + 1) x num`` exceeds int64 (exact count)."""
        count = 0
        for p, a, b in self.groups:
            num = p.hours.numerator
            rs, ns = self.rates[a:b].tolist(), self.index[a:b].tolist()
            count += sum(r * (i + 1) * num > I64 for r, i in zip(rs, ns, strict=True))
        return count


def usdc_rates(rng: np.random.Generator, n: int) -> IntArray:
    """Micro-USDC per hour: 0.10-40.00 USD per GPU-hour (log-uniform, whole cents) times 1, 2,
    4 or 8 GPUs."""
    cents = np.round(10 ** rng.uniform(1, np.log10(4000), n)).astype(np.int64)
    price = cents * 10**4
    gpus = rng.choice(np.array([1, 2, 4, 8]), n, p=[0.3, 0.2, 0.2, 0.3])
    out: IntArray = price * gpus
    return out


def token_rates(rng: np.random.Generator, n: int) -> IntArray:
    """An 18-decimal token: 0.1-1 token per GPU-hour times 1-8 GPUs (at most 8e18 < 2**63)."""
    price = np.round(rng.uniform(0.1, 1.0, n) * 1e18).astype(np.int64)
    out: IntArray = price * rng.integers(1, 9, n)
    return out


def make_leases(n: int, seed: int = 0) -> Leases:
    """Realistic rates; period kinds mixed; a random period within each lease's first year."""
    rng = np.random.default_rng(seed)
    kinds = np.sort(rng.choice(len(PERIODS), n, p=[w for _, w in PERIODS]))
    per_year = np.array([int(YEAR // p.seconds) for p, _ in PERIODS])
    index = (rng.random(n) * per_year[kinds]).astype(np.int64)
    bounds = np.searchsorted(kinds, np.arange(len(PERIODS) + 1))
    groups = [(p, int(bounds[k]), int(bounds[k + 1])) for k, (p, _) in enumerate(PERIODS)]
    return Leases(usdc_rates(rng, n), index, groups)


# -- the methods: the N charges in lease order (a list, or one array per period kind) -------
def library(ls: Leases) -> list[Any]:
    return [period_charges(ls.rates[a:b], ls.index[a:b], period=p) for p, a, b in ls.groups]


def python_ints(ls: Leases) -> list[int]:
    out: list[int] = []
    for p, a, b in ls.groups:
        num, den = p.hours.numerator, p.hours.denominator
        rs, ns = ls.rates[a:b].tolist(), ls.index[a:b].tolist()
        out += [r * (i + 1) * num // den - r * i * num // den for r, i in zip(rs, ns, strict=True)]
    return out


def fractions_loop(ls: Leases) -> list[int]:
    out: list[int] = []
    floor = math.floor
    for p, a, b in ls.groups:
        h = p.hours
        rs, ns = ls.rates[a:b].tolist(), ls.index[a:b].tolist()
        out += [floor(r * (i + 1) * h) - floor(r * i * h) for r, i in zip(rs, ns, strict=True)]
    return out


def numpy_float(ls: Leases) -> list[npt.NDArray[np.float64]]:
    out = []
    for p, a, b in ls.groups:
        h = float(p.hours)
        r, i = ls.rates[a:b].astype(np.float64), ls.index[a:b].astype(np.float64)
        out.append(np.floor(r * (i + 1) * h) - np.floor(r * i * h))
    return out


def numpy_unchecked(ls: Leases) -> list[IntArray]:
    out = []
    for p, a, b in ls.groups:
        num, den = p.hours.numerator, p.hours.denominator
        r, i = ls.rates[a:b], ls.index[a:b]
        with np.errstate(over="ignore"):
            out.append(r * (i + 1) * num // den - r * i * num // den)
    return out


def flat(parts: list[Any]) -> list[int]:
    """Concatenated per-group arrays as Python ints."""
    return [v for part in parts for v in np.asarray(part).tolist()]


def sample(ls: Leases, k: int, seed: int = 1) -> Leases:
    """k leases drawn without replacement, kept sorted by period kind."""
    pick = np.sort(np.random.default_rng(seed).choice(len(ls.rates), k, replace=False))
    groups = [
        (p, int(np.searchsorted(pick, a)), int(np.searchsorted(pick, b))) for p, a, b in ls.groups
    ]
    return Leases(ls.rates[pick], ls.index[pick], groups)


# -- report ---------------------------------------------------------------------------------


class Table:
    """A markdown table printed row by row as each is measured; `base` is the Python-int
    loop's leases per second, the anchor of the ratio column."""

    def __init__(self, title: str, base: float) -> None:
        self.base = base
        print(f"\n**{title}**\n")
        print("| method | leases timed | seconds | leases/s | vs Python ints | note |")
        print("|---|---:|---:|---:|---:|---|")

    def row(self, name: str, n: int, secs: float, note: str) -> None:
        rate = n / secs
        print(f"| {name} | {n:,} | {secs:.4f} | {rate:.3g} | {rate / self.base:.2f}x | {note} |")


def bench_arrays(title: str, ls: Leases, n_sample: int, repeat: int) -> None:
    n = len(ls.rates)
    over = ls.overflowing()
    print(f"{title}: Python ints ...", file=sys.stderr, flush=True)
    t_py, exact = best_of(lambda: python_ints(ls), repeat)
    table = Table(f"{title}: {n:,} leases, {over:,} past int64", n / t_py)
    t_lib, got = best_of(lambda: library(ls), repeat)
    assert flat(got) == exact, f"{title}: period_charges differs from Python ints"
    dtypes = "/".join(sorted({str(np.asarray(g).dtype) for g in got}))
    table.row("`period_charges` (int64, overflow-checked)", n, t_lib, f"result dtype {dtypes}")
    table.row("Python ints loop", n, t_py, "reference, exact")
    small = sample(ls, min(n_sample, n))
    print(f"{title}: Fraction loop on {len(small.rates):,} ...", file=sys.stderr, flush=True)
    t_fr, fr = best_of(lambda: fractions_loop(small), repeat)
    assert fr == python_ints(small), f"{title}: the Fraction loop differs from Python ints"
    table.row("`fractions.Fraction` loop", len(small.rates), t_fr,
              f"random sample of {len(small.rates):,}, exact")
    if ls.rates.dtype != object:  # rates past int64 cannot be numpy numbers at all
        t_f, fl = best_of(lambda: numpy_float(ls), repeat)
        wrong = sum(a != b for a, b in zip(flat(fl), exact, strict=True))
        table.row("numpy float64", n, t_f, f"inexact: {wrong:,} charges wrong")
        t_u, un = best_of(lambda: numpy_unchecked(ls), repeat)
        bad = sum(a != b for a, b in zip(flat(un), exact, strict=True))
        table.row("numpy int64, no overflow check", n, t_u, f"unsafe: {bad:,} charges wrong")


# -- the book -------------------------------------------------------------------------------
def bench_book(n: int, repeat: int) -> None:
    ls = make_leases(n, seed=2)
    kinds = [p for p, a, b in ls.groups for _ in range(a, b)]
    rates = ls.rates.tolist()
    n_tenants = max(1, n // 100)
    issuance = Account(AccountKind.ISSUANCE)

    def build() -> list[Lease]:
        return [
            Lease(
                id=f"lease-{k:07d}",
                tenant=f"tenant-{k % n_tenants:05d}",
                provider=f"provider-{k % 997:03d}",
                currency="USDC",
                rate=r,
                period=p,
            )
            for k, (r, p) in enumerate(zip(rates, kinds, strict=True))
        ]

    t_build, leases = best_of(build, repeat)
    deposits = [24 * r for r in rates]  # a day of rate: at least two periods of every kind
    need = [0] * n_tenants
    for k, d in enumerate(deposits):
        need[k % n_tenants] += d
    # what the tenants pay for periods 0 and 1 (no tenant-side fee on USDC)
    expect = [sum(python_ints(replace(ls, index=np.full(n, k, dtype=np.int64)))) for k in (0, 1)]
    best = {"open": float("inf"), "accrue 0": float("inf"), "accrue 1": float("inf")}
    for _ in range(repeat):
        ledger = Ledger()
        ledger.post_many(
            [
                transfer(
                    f"fund-{t}",
                    issuance,
                    Account(AccountKind.TENANT, f"tenant-{t:05d}"),
                    "USDC",
                    need[t],
                )
                for t in range(n_tenants)
            ]
        )
        book = LeaseBook(ledger, fees=FeeSchedule.akash())
        t = time.perf_counter()
        opened = book.open_many(leases, deposits)
        best["open"] = min(best["open"], time.perf_counter() - t)
        assert opened == n
        for k in (0, 1):
            t = time.perf_counter()
            report = book.accrue_all(k)
            best[f"accrue {k}"] = min(best[f"accrue {k}"], time.perf_counter() - t)
            assert report.accrued == report.transactions == n, report
            paid = report.tenant_paid["USDC"]
            assert paid == expect[k], f"accrue_all({k}): tenants paid {paid}, not {expect[k]}"
            assert report.provider_received["USDC"] + report.protocol_received["USDC"] == paid
    print(f"\n**`LeaseBook` on a `Ledger`: {n:,} leases, Akash fees (20% of USDC payments)**\n")
    print("| step | seconds | leases/s |")
    print("|---|---:|---:|")
    for name, secs in [
        ("build the `Lease` objects (validated)", t_build),
        ("`open_many` with a deposit each (one transaction per lease)", best["open"]),
        ("`accrue_all(0)`: first period (one transaction per lease)", best["accrue 0"]),
        ("`accrue_all(1)`: second period", best["accrue 1"]),
    ]:
        print(f"| {name} | {secs:.3f} | {n / secs:.3g} |")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10^5 leases, book of 10^4")
    ap.add_argument("--n", type=int, help="leases for the array timings (default 10^6)")
    ap.add_argument("--book-n", type=int, help="leases in the LeaseBook (default 10^5)")
    ap.add_argument("--sample", type=int, default=10**5, help="leases the Fraction loop runs on")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    live_stdout()
    n = args.n or (10**5 if args.quick else 10**6)
    book_n = args.book_n or (10**4 if args.quick else 10**5)
    rep = args.repeat

    t = time.perf_counter()
    ls = make_leases(n)
    rng = np.random.default_rng(3)
    mixed = ls.rates.copy()
    hit = rng.choice(n, max(1, n // 100), replace=False)
    mixed[hit] = token_rates(rng, len(hit))
    big = token_rates(rng, n)
    counts = ", ".join(f"{b - a:,} per {p.name}" for p, a, b in ls.groups)
    print(f"generated {n:,} leases ({counts}) in {time.perf_counter() - t:.2f} s")
    library(make_leases(1000, seed=9))  # warm up

    bench_arrays("USDC rates (int64 path)", ls, args.sample, rep)
    bench_arrays("1% in an 18-decimal token", replace(ls, rates=mixed), args.sample, rep)
    bench_arrays("All in an 18-decimal token", replace(ls, rates=big), args.sample, rep)
    huge = np.array([r * 10**18 for r in big.tolist()], dtype=object)
    bench_arrays("Rates past int64 (Python ints)", replace(ls, rates=huge), args.sample, rep)
    bench_book(book_n, rep)


if __name__ == "__main__":
    main()
