"""Live-market events: what comes in (orders, cancels, time) and what comes out (fills,
leases, rejections), one small frozen type for both.

Time is an integer number of **seconds** (any epoch: a Unix time or seconds since start); a
request's ``duration_hours`` becomes ``3600 * duration_hours`` seconds of lease.

Every event has an ``id`` (inputs: chosen by the caller or ``"e<seq>"``; a repeated id is
a no-op, so retries are safe; ids are remembered in a bounded window, and a retry of an
older one with its original ``at`` is refused as before the clock), a ``seq`` (one counter
over inputs and outputs: an input gets ``n``, its outputs ``n+1, n+2, ...``) and ``at``,
the time it happened. ``data`` holds the kind's fields as JSON-ready values.

Input kinds (`INPUT_KINDS`):

* ``submit``: ``order`` (an `Offer`/`Request` record with ``side``), optional ``expires_at``
  (unfilled remainder leaves the book then) and, for requests, ``start`` (the lease starts no
  earlier).
* ``cancel``: ``order_id``.
* ``amend``: ``order_id`` and ``changes`` (fields of the order; not its id).
* ``advance``: nothing; the clock moves to ``at`` (expiries, lease ends and epoch clears due
  by then happen, in time order).
* ``reclaim``: ``lease_id`` and ``notice`` (seconds): the provider takes the lease back at
  ``at + notice`` (or its end, if sooner).
* ``clear``: periodic mode: clear the open book now, off the epoch schedule.

Output kinds (`OUTPUT_KINDS`): ``accepted`` (an order rests in the book), ``rejected`` (an
input failed; ``error``, ``field``, ``value``, ``reason``; nothing of it was applied),
``fill`` (``request_id``, ``offer_id``, ``gpus``, ``unit_price``, ``tenant_price``,
``lease_id``), ``lease-started``, ``lease-ended`` (``reason``: ``"end"`` or
``"reclaimed"``), ``expired``, ``cancelled``, ``amended`` and ``cleared`` (a periodic clear:
``mechanism``, ``status``, ``allocations``, ``welfare``, ``total_payment``, ``incremental``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import attrs

from auction.errors import InvalidEventError, InvalidOrderError
from auction.orders import Offer, Request

__all__ = [
    "INPUT_KINDS",
    "OUTPUT_KINDS",
    "TIME_UNIT",
    "Event",
    "Lease",
    "order_from_record",
    "order_record",
]

TIME_UNIT = "seconds"
INPUT_KINDS = ("submit", "cancel", "amend", "advance", "reclaim", "clear")
OUTPUT_KINDS = (
    "accepted", "rejected", "fill", "lease-started", "lease-ended", "expired", "cancelled",
    "amended", "cleared",
)


def _frozen(m: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(m or {}))


@attrs.frozen
class Event:
    """One event, in or out (see the module docstring for the kinds and their data)."""

    kind: str
    id: str
    seq: int
    at: int
    data: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen)

    def to_record(self) -> dict[str, Any]:
        """JSON-ready dict: ``kind``, ``id``, ``seq``, ``at`` and ``data``."""
        return {"kind": self.kind, "id": self.id, "seq": self.seq, "at": self.at,
                "data": _plain(self.data)}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Event:
        """The event a `to_record` dict describes; `InvalidEventError` if it is malformed."""
        if not isinstance(record, Mapping):
            raise InvalidEventError("record", record, "must be a mapping")
        eid = record.get("id")
        where = eid if isinstance(eid, str) else None
        for name in ("kind", "id"):
            if not isinstance(record.get(name), str) or not record[name]:
                raise InvalidEventError(name, record.get(name), "must be a non-empty str",
                                        event_id=where)
        kind = record["kind"]
        if kind not in INPUT_KINDS and kind not in OUTPUT_KINDS:
            raise InvalidEventError("kind", kind, f"must be one of {INPUT_KINDS + OUTPUT_KINDS}",
                                    event_id=where)
        for name in ("seq", "at"):
            v = record.get(name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise InvalidEventError(name, v, "must be an int >= 0", event_id=where)
        data = record.get("data", {})
        if not isinstance(data, Mapping):
            raise InvalidEventError("data", data, "must be a mapping", event_id=where)
        extra = set(record) - {"kind", "id", "seq", "at", "data"}
        if extra:
            name = sorted(extra)[0]
            raise InvalidEventError(name, record[name], "is not a field of Event", event_id=where)
        return cls(kind, record["id"], record["seq"], record["at"], data)


def _plain(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    if isinstance(v, frozenset | set):
        return sorted(v)
    return v


def order_record(order: Offer | Request) -> dict[str, Any]:
    """An order as a JSON-ready dict with a ``side`` key (``"offer"`` or ``"request"``)."""
    side = "offer" if isinstance(order, Offer) else "request"
    return {"side": side, **order.to_record()}


def order_from_record(record: Mapping[str, Any]) -> Offer | Request:
    """The order an `order_record` dict describes; `InvalidOrderError` names a bad field."""
    if not isinstance(record, Mapping):
        raise InvalidOrderError("order", record, "must be a mapping with a side")
    side = record.get("side")
    rest = {k: v for k, v in record.items() if k != "side"}
    if side == "offer":
        return Offer.from_record(rest)
    if side == "request":
        return Request.from_record(rest)
    raise InvalidOrderError("side", side, "must be 'offer' or 'request'")


@attrs.frozen(kw_only=True)
class Lease:
    """GPUs of one offer held for one request from `start` to `end` (seconds).

    Attributes:
        id: lease id, ``"L<seq>.<k>"`` after the fill that made it.
        request_id, offer_id, tenant, provider: the parties.
        gpus: GPUs held.
        unit_price: paid to the provider per GPU-hour; tenant_price: paid by the tenant.
        filled_at: when the fill happened (capacity is held from then).
        start: when the lease starts (``max(filled_at, request start)``).
        end: when it ends and the capacity returns to the offer.
    """

    id: str
    request_id: str
    offer_id: str
    tenant: str
    provider: str
    gpus: int
    unit_price: int
    tenant_price: int
    filled_at: int
    start: int
    end: int

    def to_record(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Lease:
        return cls(**dict(record))
