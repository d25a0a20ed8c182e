"""Fees, SLA penalties and bid deposits, in one namespace (kept for existing imports).

The code lives in two layers: `auction.settlement.rates` (fee rates and rounding, below the
leases that charge them) and `auction.settlement.penalties` (SLA penalties and bid deposits,
above the leases whose periods they refund). This module imports both, so nothing imports it.
"""

from __future__ import annotations

from auction.settlement.penalties import (
    DepositResolvedError,
    PenaltyPolicy,
    forfeit_bid_deposit,
    lock_bid_deposit,
    return_bid_deposit,
    sla_penalty,
)
from auction.settlement.rates import FeeRates, FeeSchedule, Rounding, as_rate, bps, fee_of

__all__ = [
    "DepositResolvedError",
    "FeeRates",
    "FeeSchedule",
    "PenaltyPolicy",
    "Rounding",
    "as_rate",
    "bps",
    "fee_of",
    "forfeit_bid_deposit",
    "lock_bid_deposit",
    "return_bid_deposit",
    "sla_penalty",
]
