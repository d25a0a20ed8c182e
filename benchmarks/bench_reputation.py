"""Reputation throughput: events recorded per second, and EigenTrust at scale.

For 10^6 events over 10^5 providers (the default) this times, best of `--repeat` runs:

* building an `EventBatch` from plain lists (every value validated) and from dictionary-encoded
  columns (`EventBatch.from_codes`), then `ReputationBook.record_many` on it, for the beta and
  iExec models; a stream in time order, the same stream shuffled (providers re-folded from the
  journal at the first query, which is included), and the stream in 100 batches;
* `scores()` for every provider, and a JSON snapshot round trip;
* EigenTrust on 10^5 providers and 10^4 tenants (100 pre-trusted) with 10^6 ratings, by
  sparse power iteration (tol 1e-10), from arrays and from a book.

Run:

    python benchmarks/bench_reputation.py            # full sizes (about a minute)
    python benchmarks/bench_reputation.py --quick    # 10^5 events, 10^4 providers
"""

from __future__ import annotations

import argparse
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from instances import best_of
from progress import Progress, live_stdout

from auction.reputation import EventBatch, ReputationBook, eigentrust_arrays
from auction.reputation.events import OUTCOMES


def make_events(n: int, n_providers: int, n_tenants: int, seed: int = 0) -> dict[str, Any]:
    """A stream of n events in time order: providers uniform, 90% of outcomes positive."""
    rng = np.random.default_rng(seed)
    outcome_p = np.array([0.80, 0.05, 0.03, 0.10, 0.02])  # completed, failed, sla, audits
    return {
        "ids": [f"ev-{i:09d}" for i in range(n)],
        "provider_names": [f"provider-{i:06d}" for i in range(n_providers)],
        "provider_codes": rng.integers(0, n_providers, n),
        "times": np.sort(rng.random(n) * 90 * 86400.0),  # 90 days, seconds
        "outcomes": rng.choice(len(OUTCOMES), size=n, p=outcome_p).astype(np.int8),
        "weights": rng.choice([1.0, 2.0, 4.0, 8.0], size=n),
        "tenant_names": [f"tenant-{i:05d}" for i in range(n_tenants)],
        "tenant_codes": rng.integers(0, n_tenants, n),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10^5 events, 10^4 providers")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    live_stdout()
    n, n_prov, n_ten = (10**5, 10**4, 10**3) if args.quick else (10**6, 10**5, 10**4)
    rep = args.repeat

    t = time.perf_counter()
    ev = make_events(n, n_prov, n_ten)
    names = [ev["provider_names"][c] for c in ev["provider_codes"].tolist()]
    tenants = [ev["tenant_names"][c] for c in ev["tenant_codes"].tolist()]
    print(f"generated {n} events, {n_prov} providers, {n_ten} tenants "
          f"in {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    for model in ("beta", "iexec"):
        warm = EventBatch(["a", "b"], ["p", "p"], [0.0, 1.0], ["completed", "failed"])
        ReputationBook(model, warm).scores()
    print(f"numba compile (or disk-cache load) + scipy import: {time.perf_counter() - t:.2f} s "
          "(excluded below)")

    def from_lists() -> EventBatch:
        return EventBatch(ev["ids"], names, ev["times"], ev["outcomes"], ev["weights"], tenants)

    def from_codes() -> EventBatch:
        return EventBatch.from_codes(
            ev["ids"], ev["provider_names"], ev["provider_codes"], ev["times"], ev["outcomes"],
            ev["weights"], ev["tenant_names"], ev["tenant_codes"],
        )

    with Progress(2, f"{n} events") as bar:
        bar.step("EventBatch from lists")
        t_lists, batch = best_of(from_lists, rep)
        bar.step("EventBatch.from_codes")
        t_codes, batch = best_of(from_codes, rep)
    perm = np.random.default_rng(1).permutation(n)
    shuffled = EventBatch.from_codes(
        [ev["ids"][i] for i in perm.tolist()], ev["provider_names"], ev["provider_codes"][perm],
        ev["times"][perm], ev["outcomes"][perm], ev["weights"][perm], ev["tenant_names"],
        ev["tenant_codes"][perm],
    )
    step = n // 100
    chunks = [  # as a stream would bring them: each batch names only its own providers
        EventBatch(ev["ids"][k : k + step], names[k : k + step], ev["times"][k : k + step],
                   ev["outcomes"][k : k + step], ev["weights"][k : k + step],
                   tenants[k : k + step])
        for k in range(0, n, step)
    ]

    header = f"{'step':<58} {'seconds':>8} {'events/s':>12}"
    print(f"\n{n} events, {n_prov} providers")
    print(header)
    print("-" * len(header))

    def row(label: str, seconds: float, count: int | None = n) -> None:
        rate = f"{count / seconds:>12.3e}" if count else f"{'':>12}"
        print(f"{label:<58} {seconds:>8.3f} {rate}")

    row("EventBatch from lists (validate, factorize names)", t_lists)
    row("EventBatch.from_codes (validate)", t_codes)
    for model in ("beta", "iexec"):
        def record(b: EventBatch = batch, m: str = model) -> ReputationBook:
            book = ReputationBook(m)
            book.record_many(b)
            return book

        def record_shuffled(m: str = model) -> ReputationBook:
            book = ReputationBook(m)
            book.record_many(shuffled)
            book.scores()  # folds everything (out of order: re-folded from the journal)
            return book

        def record_stream(m: str = model) -> ReputationBook:
            book = ReputationBook(m)
            for c in chunks:
                book.record_many(c)
            return book

        print(f"measuring {model} ...", file=sys.stderr, flush=True)
        t_rec, book = best_of(record, rep)
        row(f"{model}: record_many, time order", t_rec)
        row(f"{model}: from_codes + record_many", t_codes + t_rec)
        row(f"{model}: from lists + record_many", t_lists + t_rec)
        t_shuf, shuffled_book = best_of(record_shuffled, rep)
        row(f"{model}: record_many shuffled + first scores()", t_shuf)
        t_stream, stream_book = best_of(record_stream, rep)
        row(f"{model}: record_many in 100 batches of {step}", t_stream)
        later = iter(range(1, 10**6))  # a new query time each run: nothing cached

        def scores_later(b: ReputationBook = book, later: Any = later) -> dict[str, float]:
            return b.scores(at=(b.clock or 0.0) + next(later))

        t_scores, _ = best_of(scores_later, rep)
        scores = book.scores()
        row(f"{model}: scores() for {len(scores)} providers", t_scores, None)
        assert shuffled_book.scores() == scores == stream_book.scores(), "order changed state"
        if model == "beta":
            t_dump, text = best_of(book.to_json, 1)
            row(f"beta: to_json ({len(text) / 2**20:.0f} MB)", t_dump)
            t_load, loaded = best_of(partial(ReputationBook.from_json, text), 1)
            row("beta: from_json (replay + state check)", t_load)
            assert loaded.scores() == scores

    # EigenTrust: tenants rate providers; 1% of tenants pre-trusted
    rng = np.random.default_rng(2)
    n_peers = n_prov + n_ten
    rater = n_prov + rng.integers(0, n_ten, n)
    ratee = rng.integers(0, n_prov, n)
    sat = rng.choice([1.0, 2.0, 4.0], size=n)
    unsat = rng.choice([0.0, 0.0, 0.0, 1.0, 6.0], size=n)
    pre = np.zeros(n_peers)
    pre[n_prov : n_prov + max(1, n_ten // 100)] = 1.0
    t_et, (trust, iters, ok, res) = best_of(
        lambda: eigentrust_arrays(rater, ratee, sat, unsat, n_peers, pre), rep
    )
    print(f"\nEigenTrust: {n_prov} providers + {n_ten} tenants, {n} ratings, alpha 0.15, "
          "tol 1e-10")
    print(header)
    print("-" * len(header))
    row(f"eigentrust_arrays ({iters} iterations, converged={ok})", t_et)
    print(f"{'':<4}residual {res:.1e}, trust sums to {trust.sum():.15f}, min {trust.min():.1e}")
    pre_names = ev["tenant_names"][: max(1, n_ten // 100)]
    t_book, result = best_of(lambda: book.eigentrust(pretrusted=pre_names), rep)
    row(f"book.eigentrust over its tenant events ({result.iterations} iterations)", t_book)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
