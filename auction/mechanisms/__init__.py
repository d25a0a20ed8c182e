"""Clearing mechanisms: the interface, the registry and the built-in mechanisms.

Examples:
    >>> from auction import mechanisms
    >>> mechanisms.available()[:2]
    ['first-price', 'second-price']
"""

from auction.errors import Alternative
from auction.mechanisms.base import Mechanism, MechanismBase, MechanismTags, resolve_rng
from auction.mechanisms.registry import (
    ENTRY_POINT_GROUP,
    AuctionPluginWarning,
    available,
    get,
    refresh,
    resolve,
    supporting,
    tags_of,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "Alternative",
    "AuctionPluginWarning",
    "Mechanism",
    "MechanismBase",
    "MechanismTags",
    "available",
    "get",
    "refresh",
    "resolve",
    "resolve_rng",
    "supporting",
    "tags_of",
]
