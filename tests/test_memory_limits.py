"""Memory is bounded and said (issue 12 item 3): on the 52 MB book of the issue (the example
book repeated, 85,440 requests and some 255 M eligible pairs) `assignment` and `gang` with a
``max_memory`` below their estimate raise `MemoryLimitError` naming the estimate and the way
out, before allocating per-pair arrays (the pairs are counted in bounded blocks).

Before this check, ``clear -m assignment`` on that book peaked at 24 GB and ``clear -m gang``
was killed by the out-of-memory killer.
"""

from __future__ import annotations

import tracemalloc
from typing import Any

import numpy as np
import pytest

import auction
from auction.book import ListColumn
from auction.errors import MemoryLimitError
from auction.market import Market

#: Copies of the example book: 85,440 requests, as the issue's 52 MB book.
COPIES = 356
#: What clearing may allocate while it refuses: far below any per-pair array of this book.
FLAT = 1 << 30


def repeated_example_book(copies: int) -> auction.OrderBook:
    """`copies` copies of `auction.datasets.example_book(0)`, ids and providers suffixed per
    copy (``#k``), built through columns (seconds, where one order object per row takes
    minutes)."""
    cols = auction.datasets.example_book(0).snapshot().to_columns()
    sides: dict[str, dict[str, Any]] = {}
    for side, table in cols.items():
        out: dict[str, Any] = {}
        n = len(table["id"])
        suffix = np.repeat(np.array([f"#{k}" for k in range(copies)]), n)
        for name, col in table.items():
            if isinstance(col, ListColumn):
                lists = col.to_lists()
                out[name] = [lists[i] for i in np.tile(np.arange(n), copies).tolist()]
            elif name in ("id", "provider"):
                out[name] = np.char.add(np.tile(np.asarray(col, dtype=str), copies), suffix)
            else:
                out[name] = np.tile(np.asarray(col), copies)
        sides[side] = out
    return auction.OrderBook.from_columns(sides["offers"], sides["requests"])


@pytest.fixture(scope="module")
def big_market() -> Market:
    return Market(repeated_example_book(COPIES))


@pytest.mark.slow
@pytest.mark.parametrize("mechanism", ["assignment", "gang"])
def test_52mb_book_is_refused_before_allocating(big_market: Market, mechanism: str) -> None:
    market = big_market
    assert market.n_requests == 240 * COPIES
    assert "_pairs" not in market.__dict__
    limit = 2**30
    tracemalloc.start()
    try:
        with pytest.raises(MemoryLimitError) as info:
            auction.clear(market, mechanism, max_memory=limit)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    err = info.value
    assert err.mechanism == mechanism
    assert err.limit == limit
    assert err.estimate > limit
    assert "eligible (request, offer) pairs" in err.what
    pairs = int(err.what.split()[0].replace(",", ""))
    assert pairs > 2 * 10**8  # the real count, not the class-table bound
    assert err.estimate >= 8 * pairs  # at least one int64 per pair
    text = str(err)
    assert f"{err.estimate / 2**30:.3g} GiB" in text
    for way_out in ("partition", "first-price", "max_memory="):
        assert way_out in text
    # refused before allocating: nothing per pair was built, memory stayed flat
    assert "_pairs" not in market.__dict__
    assert peak < FLAT, f"peak {peak / 2**20:.0f} MiB while refusing"
