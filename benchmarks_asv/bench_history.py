"""asv benchmarks: every mechanism on small and medium example books, market build,
columnar ingest and settlement accrual; docs/benchmark-history.md says how to run them."""

from __future__ import annotations

from typing import Any

from auction import Market, OrderBook
from auction.attacks import small_book
from auction.clearing import clear
from auction.mechanisms.registry import available

SIZES = {"small": 12, "medium": 40}


class Mechanisms:
    """Clearing time per mechanism (registered names) and book size."""

    params = (sorted(available()), list(SIZES))
    param_names = ("mechanism", "size")
    timeout = 120

    def setup(self, mechanism: str, size: str) -> None:
        self.market = Market(small_book(0, SIZES[size]))
        try:
            clear(self.market, mechanism)  # compiles kernels; refuses unsupported markets
        except Exception as e:  # an unsupported market is skipped, not timed
            raise NotImplementedError(str(e)) from e

    def time_clear(self, mechanism: str, size: str) -> None:
        clear(self.market, mechanism)


class Build:
    """Market build and ingest."""

    params = (list(SIZES),)
    param_names = ("size",)

    def setup(self, size: str) -> None:
        self.book = small_book(0, SIZES[size])
        self.cols: Any = self.book.snapshot().to_columns()
        self.text = self.book.to_json()

    def time_market_build(self, size: str) -> None:
        Market(self.book)

    def time_from_columns(self, size: str) -> None:
        OrderBook.from_columns(**self.cols)

    def time_from_json(self, size: str) -> None:
        OrderBook.from_json(self.text)


class Accrual:
    """Settlement: accrue every open lease of a cleared market for one period."""

    def setup(self) -> None:
        from auction.settlement.leases import LeaseBook, leases_from_result

        result = clear(Market(small_book(0, SIZES["medium"])), "first-price")
        from auction.settlement.ledger import Ledger

        self.lease_book: Any = LeaseBook
        self.ledger: Any = Ledger
        self.leases = leases_from_result(result, "USDC")

    def time_accrue_all(self) -> None:
        book = self.lease_book(self.ledger())
        book.open_many(self.leases)
        book.accrue_all(1)
