"""Clearing mechanisms: the interface, the registry and the built-in mechanisms.

Examples:
    >>> from auction import mechanisms
    >>> mechanisms.available()[:2]
    ['first-price', 'second-price']
"""

from auction.mechanisms.base import Mechanism, MechanismBase, MechanismTags
from auction.mechanisms.registry import (
    ENTRY_POINT_GROUP,
    AuctionPluginWarning,
    available,
    get,
    refresh,
    supporting,
    tags_of,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "AuctionPluginWarning",
    "Mechanism",
    "MechanismBase",
    "MechanismTags",
    "available",
    "get",
    "refresh",
    "supporting",
    "tags_of",
]
