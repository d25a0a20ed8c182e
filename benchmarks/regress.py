"""Quick regression check: time a small subset, keep the result per commit, compare.

``python benchmarks/regress.py`` times market build, columnar ingest and a few mechanisms on
small example books (best of 5 runs each), stores ``{commit: {name: seconds}}`` in
``$AUCTION_BENCH_HISTORY`` (default ``.bench-history/``, gitignored) as ``<host>.json``, and
compares with the run of the previous commit (``HEAD~1``) on the same machine. Exits 1 when any
benchmark is more than 20% slower, 0 otherwise (including the first run, with nothing to
compare). docs/benchmark-history.md.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

THRESHOLD = 1.20


def _commit(ref: str) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", ref], capture_output=True, text=True,
                             check=True, cwd=Path(__file__).resolve().parent.parent)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


def _cases() -> dict[str, Callable[[], object]]:
    from auction import Market, OrderBook
    from auction.attacks import small_book
    from auction.clearing import clear

    book = small_book(0, n_requests=12)
    market = Market(book)
    cols = book.snapshot().to_columns()
    cases: dict[str, Callable[[], object]] = {
        "market_build": lambda: Market(book),
        "first_price": lambda: clear(market, "first-price"),
        "second_price": lambda: clear(market, "second-price"),
        "assignment": lambda: clear(market, "assignment"),
        "json_roundtrip": lambda: OrderBook.from_json(book.to_json()),
    }
    cases["from_columns"] = lambda: OrderBook.from_columns(**cols)
    return cases


def measure(repeat: int = 5) -> dict[str, float]:
    """Best-of-`repeat` seconds per case (after one warm-up call that compiles kernels)."""
    out = {}
    for name, fn in _cases().items():
        fn()
        best = float("inf")
        for _ in range(repeat):
            t = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t)
        out[name] = best
    return out


def main() -> int:
    """Measure, store, compare with the previous commit's run; 1 on a >20% regression."""
    root = Path(os.environ.get("AUCTION_BENCH_HISTORY", ".bench-history"))
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{platform.node() or 'host'}.json"
    history = json.loads(path.read_text()) if path.exists() else {}
    head, prev = _commit("HEAD") or "unknown", _commit("HEAD~1")
    now = measure()
    history[head] = now
    path.write_text(json.dumps(history, indent=1, sort_keys=True))
    before = history.get(prev or "")
    if before is None:
        print(f"regress: no run of the previous commit {prev} in {path}; stored {head[:10]}")
        for k, v in now.items():
            print(f"  {k:16s} {v * 1e3:9.3f} ms")
        return 0
    slow = []
    for k, v in now.items():
        b = before.get(k)
        ratio = v / b if b else float("nan")
        flag = "  SLOWER" if b and ratio > THRESHOLD else ""
        print(f"  {k:16s} {v * 1e3:9.3f} ms  vs {b * 1e3 if b else float('nan'):9.3f} ms"
              f"  x{ratio:.2f}{flag}")
        if flag:
            slow.append(k)
    if slow:
        print(f"regress: more than 20% slower than {prev[:10] if prev else '?'}: {slow}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
