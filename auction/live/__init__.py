"""A live market for services: order events, continuous and periodic clearing, leases over
time, incremental re-clears, a crash-safe event log, and thread safety.

Examples:
    >>> from auction import Offer, Request
    >>> from auction.live import LiveMarket
    >>> m = LiveMarket(mode="continuous", rule="price-time")
    >>> _ = m.submit(Offer(id="o1", provider="p", gpu_model="H100", gpus=8, price=2_000_000,
    ...                    region="us-east", vram_gb=80), at=0)
    >>> out = m.submit(Request(id="r1", tenant="t", gpus=2, max_price=2_500_000), at=10)
    >>> [e.kind for e in out]
    ['accepted', 'fill', 'lease-started']
    >>> m.leases()[0].end
    3610
"""

from auction.live.engine import MODES, LiveMarket
from auction.live.events import INPUT_KINDS, OUTPUT_KINDS, TIME_UNIT, Event, Lease
from auction.live.incremental import DECOMPOSABLE, IncrementalClearer, decomposable
from auction.live.log import LOG_VERSION, EventLog, open_market, read_log, replay, save_snapshot
from auction.live.matching import RULES

__all__ = [
    "DECOMPOSABLE",
    "INPUT_KINDS",
    "LOG_VERSION",
    "MODES",
    "OUTPUT_KINDS",
    "RULES",
    "TIME_UNIT",
    "Event",
    "EventLog",
    "IncrementalClearer",
    "Lease",
    "LiveMarket",
    "decomposable",
    "open_market",
    "read_log",
    "replay",
    "save_snapshot",
]
