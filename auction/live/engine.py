"""`LiveMarket`: an event-driven market for services: orders arrive, are cancelled and
amended, clear continuously or every epoch, and turn into leases that end and give capacity
back.

Modes:

* ``"continuous"``: every arriving (or amended, or capacity-regaining) order trades at once
  with the best resting order under a rule of `auction.live.matching` (``price-time``,
  ``fifo``, ``posted-price``).
* ``"periodic"``: orders rest; every ``epoch`` seconds (and on a ``clear`` event) the open
  book is cleared by a mechanism (a registry name or an instance), incrementally where that is
  exact (`auction.live.incremental`).

Time is integer seconds and never goes back. When an input comes with a later time, the
things due by then happen first, in order of (time, lease ends, expiries, epoch clear, lease
or order id), as a logged ``advance`` event of their own, so a rejected input never leaves
part of itself applied. A fill takes GPUs from the offer at once (the offer's open ``gpus`` is
its free capacity; an offer with none free waits off the book); the lease starts at
``max(fill time, request start)``, lasts ``duration_hours`` and then returns the GPUs to the
offer, if it is still open. A request is filled whole (divisible ones may fill in part and
keep the rest open). Unfilled orders leave the book at ``expires_at``.

Idempotency: the ids of applied inputs are remembered in a bounded window (see
`LiveMarket`'s ``id_window``): the last ``id_window`` caller-chosen ids, plus every id applied
at the current instant. A retry of a remembered id is a no-op; a retry of an older one with
its original ``at`` is refused, since that time is before the clock. So an input that carries
an id and an ``at`` is applied at most once, however late it is retried, and memory stays
bounded.

Order ids: a submitted order's id is refused (`DuplicateOrderError`) while the order is open,
while a lease names it (as request or offer), and for the last ``id_window`` orders retired
after that (closed with no lease left). An id older than that may be submitted again, as a new
order: the window is part of the state, so replay and snapshot plus tail recovery forget the
same ids at the same input, and memory stays bounded by open orders, live leases and the
window.

Locking: one re-entrant lock per market guards all state; every public method (inputs and
reads) holds it for its whole run, so a market may be shared by many threads and each input
is applied atomically, in one total order (the ``seq``). Different markets share nothing and
run in parallel as far as the GIL allows (numba kernels with ``nogil`` clear outside it).
"""

from __future__ import annotations

import hashlib
import heapq
import json
import math
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from fractions import Fraction
from typing import Any, cast

import attrs
import numpy as np

from auction.book import OrderBook
from auction.clearing import clear as clear_from_scratch
from auction.errors import (
    DuplicateOrderError,
    InvalidEventError,
    InvalidOrderError,
    UnknownLeaseError,
    UnknownOrderError,
)
from auction.live.events import (
    INPUT_KINDS,
    Event,
    Lease,
    order_from_record,
    order_record,
)
from auction.live.incremental import IncrementalClearer
from auction.live.matching import RULES, best_offer, best_request, sort_keys
from auction.live.pools import Pools
from auction.market import Market
from auction.mechanisms.base import Mechanism
from auction.mechanisms.registry import get as get_mechanism
from auction.orders import Offer, Request
from auction.result import ClearingResult

__all__ = ["MODES", "LiveMarket"]

MODES = ("continuous", "periodic")
HOUR = 3600
_LEASE_END, _EXPIRE, _CLEAR = 0, 1, 2
_INF = float("inf")
#: Groups in the pools and parties in the re-clear's table are never dropped one by one (an
#: index stays valid); past `_COMPACT_FACTOR` x open orders + `_COMPACT_SLACK` they are
#: rebuilt from the open orders, so a market that churns through distinct attributes or
#: names keeps memory and per-group work bounded (amortized O(1) per submit).
_COMPACT_FACTOR = 2
_COMPACT_SLACK = 1024


def _check_time(name: str, value: Any, eid: str | None, lo: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise InvalidEventError(name, value, f"must be an int >= {lo} (seconds)", event_id=eid)
    return int(value)


class LiveMarket:
    """An event-driven market (see the module docstring).

    Args:
        mode: ``"continuous"`` or ``"periodic"``.
        rule: continuous matching rule, one of `auction.live.matching.RULES`.
        mechanism: periodic mode: registry name or `Mechanism` instance.
        options: options for a mechanism given by name.
        epoch: periodic mode: seconds between clears (the first at ``start + epoch``).
        start: the clock's starting time, in seconds.
        reputation: provider scores in [0, 1] (0 for providers not listed).
        quality, quality_weight: a scoring market, as `auction.Market` takes them: each offer
            carries the bonus ``floor(quality_weight x quality)`` of its provider (quality
            None: the reputation is the quality); continuous ``price-time`` and
            ``posted-price`` rank offers by ``ask - bonus``, and periodic clears build their
            `Market` with them (from scratch: the incremental path is price-only).
        incremental: periodic mode: re-clear only the changed orders and those they can
            trade with, where that is exact (`auction.live.incremental`).
        log: an `auction.live.log.EventLog` to write every input (ahead of applying it) and
            its outputs to; see `auction.live.log.open_market` to create or recover one.
        id_window: how many caller-chosen input ids to remember (more are kept while they
            share the clock's current time); older ids are forgotten, and a retry of one
            with its original ``at`` is refused as before the clock. The same bound holds for
            retired order ids (see the module docstring).
    """

    def __init__(
        self,
        *,
        mode: str = "continuous",
        rule: str = "price-time",
        mechanism: str | Mechanism = "first-price",
        options: Mapping[str, Any] | None = None,
        epoch: int = HOUR,
        start: int = 0,
        reputation: Mapping[str, float] | None = None,
        quality: Mapping[str, float] | None = None,
        quality_weight: int = 0,
        incremental: bool = True,
        log: Any = None,
        id_window: int = 100_000,
    ) -> None:
        if mode not in MODES:
            raise InvalidEventError("mode", mode, f"must be one of {MODES}")
        if rule not in RULES:
            raise InvalidEventError("rule", rule, f"must be one of {RULES}")
        self.mode = mode
        self.rule = rule
        self.epoch = _check_time("epoch", epoch, None, 1)
        self.start = _check_time("start", start, None)
        self.id_window = _check_time("id_window", id_window, None, 1)
        self.options = dict(options or {})
        if isinstance(mechanism, str):
            self.mechanism: Mechanism = get_mechanism(mechanism, **self.options)
        else:
            if self.options:
                raise InvalidEventError("options", self.options, "go with a mechanism name")
            self.mechanism = mechanism
        # validates the scores and the weight (InvalidOrderError)
        Market(OrderBook(), reputation, quality=quality, quality_weight=quality_weight)
        self.reputation = {str(k): float(v) for k, v in (reputation or {}).items()}
        self.quality = None if quality is None else {
            str(k): float(v) for k, v in quality.items()}
        self.quality_weight = int(quality_weight)
        self._bonuses: dict[str, int] = {}
        self.incremental = bool(incremental)
        self.book = OrderBook()
        # continuous matching walks the pools' sorted groups; a periodic market only groups
        # orders there (the re-clear keeps columns of its own)
        ok, rk = sort_keys(rule, self.bonus if self.quality_weight else None)
        self._pools = Pools(ok, rk)
        self._keyed = mode == "continuous"
        self._orders: dict[str, Offer | Request] = {}
        self._parked: dict[str, Offer] = {}
        self._retired: OrderedDict[str, int] = OrderedDict()  # id -> at, oldest first
        self._held: dict[str, int] = {}  # order id -> live leases naming it (derived)
        self._expires: dict[str, int] = {}
        self._starts: dict[str, int] = {}
        self._leases: dict[str, Lease] = {}
        self._timers: list[tuple[int, int, str]] = []
        self._reclaimed: set[str] = set()
        self._now = self.start
        self._next_clear = self.start + self.epoch
        self._seq = 0
        # id -> at, oldest first (bounded: _remember); an OrderedDict because a plain dict's
        # next(iter(d)) rescans the slots its deletions left, quadratic over a churning window
        self._applied: OrderedDict[str, int] = OrderedDict()
        self._clearer = IncrementalClearer(self.mechanism, self.reputation)
        if not self.incremental or self.quality_weight or mode != "periodic":
            self._clearer.incremental = False  # then it keeps no per-order state
        self._lock = threading.RLock()
        self._listeners: list[Callable[[Event], None]] = []
        self._cause = ""
        self._outs: list[Event] = []
        self.recent: deque[Event] = deque(maxlen=10_000)
        self.last_result: ClearingResult | None = None
        self.log = log

    # -- reading ------------------------------------------------------------------------
    @property
    def now(self) -> int:
        """The market's clock, in seconds."""
        return self._now

    @property
    def seq(self) -> int:
        """The last sequence number used."""
        return self._seq

    @property
    def next_clear(self) -> int | None:
        """Periodic mode: when the next epoch clear is due."""
        return self._next_clear if self.mode == "periodic" else None

    def config(self) -> dict[str, Any]:
        """The constructor arguments (JSON-ready) that rebuild an empty twin of this market."""
        mech = self.mechanism
        opts = dict(mech.get_options()) if hasattr(mech, "get_options") else {}
        return {"mode": self.mode, "rule": self.rule, "mechanism": mech.name,
                "options": opts, "epoch": self.epoch, "start": self.start,
                "reputation": self.reputation, "quality": self.quality,
                "quality_weight": self.quality_weight, "incremental": self.incremental,
                "id_window": self.id_window}

    def orders(self) -> list[Offer | Request]:
        """The open orders (offers with their free GPUs), offers first, in book order."""
        with self._lock:
            return list(self.book)

    def leases(self) -> list[Lease]:
        """Active leases, by id."""
        with self._lock:
            return [self._leases[k] for k in sorted(self._leases)]

    def has_applied(self, event_id: str) -> bool:
        """True when an input with this id was applied and is still remembered (a retry of
        it is a no-op); ids older than the ``id_window`` are forgotten."""
        with self._lock:
            return event_id in self._applied

    def events_since(self, seq: int) -> list[Event]:
        """Recent output events with a sequence number above `seq` (the last 10,000 kept)."""
        with self._lock:
            return [e for e in self.recent if e.seq > seq]

    def subscribe(self, callback: Callable[[Event], None]) -> None:
        """Call `callback` with every output event, under the market's lock (keep it short)."""
        with self._lock:
            self._listeners.append(callback)

    # -- inputs -------------------------------------------------------------------------
    def submit(
        self,
        order: Offer | Request,
        *,
        at: int | None = None,
        event_id: str | None = None,
        expires_at: int | None = None,
        start: int | None = None,
    ) -> list[Event]:
        """Submit an order; returns the output events (accepted, fills, leases)."""
        if not isinstance(order, Offer | Request):
            raise InvalidOrderError("order", order, "must be an Offer or a Request")
        data: dict[str, Any] = {"order": order_record(order)}
        if expires_at is not None:
            data["expires_at"] = expires_at
        if start is not None:
            data["start"] = start
        return self.apply_input("submit", data, at=at, event_id=event_id)

    def cancel(self, order_id: str, *, at: int | None = None,
               event_id: str | None = None) -> list[Event]:
        """Withdraw an open (or fully leased) order; its active leases run on."""
        return self.apply_input("cancel", {"order_id": order_id}, at=at, event_id=event_id)

    def amend(self, order_id: str, changes: Mapping[str, Any], *, at: int | None = None,
              event_id: str | None = None) -> list[Event]:
        """Change fields of an open order (an offer's ``gpus`` is its free capacity)."""
        return self.apply_input("amend", {"order_id": order_id, "changes": dict(changes)},
                                at=at, event_id=event_id)

    def advance(self, to: int, *, event_id: str | None = None) -> list[Event]:
        """Move the clock to `to`: expiries, lease ends and epoch clears due by then happen."""
        return self.apply_input("advance", {}, at=to, event_id=event_id)

    def reclaim(self, lease_id: str, notice: int, *, at: int | None = None,
                event_id: str | None = None) -> list[Event]:
        """The provider takes a lease back after `notice` seconds (or at its end if sooner)."""
        return self.apply_input("reclaim", {"lease_id": lease_id, "notice": notice},
                                at=at, event_id=event_id)

    def clear(self, *, at: int | None = None, event_id: str | None = None) -> list[Event]:
        """Periodic mode: clear the open book now, off the epoch schedule."""
        return self.apply_input("clear", {}, at=at, event_id=event_id)

    def handle(self, record: Mapping[str, Any]) -> list[Event]:
        """Apply an input given as a dict (``kind``, optional ``id`` and ``at``, the kind's
        fields); a bad input comes back as one ``rejected`` event instead of an exception."""
        from auction.errors import AuctionError

        eid = record.get("id") if isinstance(record, Mapping) else None
        try:
            if not isinstance(record, Mapping):
                raise InvalidEventError("record", record, "must be a mapping")
            kind = record.get("kind")
            data = {k: v for k, v in record.items() if k not in ("kind", "id", "at")}
            return self.apply_input(str(kind), data, at=record.get("at"), event_id=eid)
        except AuctionError as exc:
            return [self._rejection(exc, eid if isinstance(eid, str) else None)]

    def _rejection(self, exc: Exception, eid: str | None) -> Event:
        with self._lock:
            data = {"error": type(exc).__name__, "message": str(exc),
                    "field": getattr(exc, "field", None),
                    "value": _jsonable(getattr(exc, "value", None)),
                    "reason": getattr(exc, "reason", None), "input": eid}
            ev = Event("rejected", f"{eid or 'input'}!rejected", self._seq, self._now, data)
            self._publish(ev)
            return ev

    def apply_input(self, kind: str, data: Mapping[str, Any], *, at: Any = None,
                    event_id: Any = None) -> list[Event]:
        """Apply one input event; all inputs go through here (and through the log)."""
        if kind not in INPUT_KINDS:
            raise InvalidEventError("kind", kind, f"must be one of {INPUT_KINDS}")
        if event_id is not None and (not isinstance(event_id, str) or not event_id
                                     or (event_id.startswith("e") and event_id[1:].isdigit())):
            raise InvalidEventError("id", event_id, "must be a non-empty str, not e<digits>")
        with self._lock:
            if event_id is not None and event_id in self._applied:
                return []
            when = self._now if at is None else _check_time("at", at, event_id)
            if when < self._now:
                raise InvalidEventError("at", when, f"is before the clock ({self._now})",
                                        event_id=event_id)
            out: list[Event] = []
            if kind != "advance" and self._due() <= when:
                adv = None if event_id is None else f"{event_id}~advance"
                if adv is None or adv not in self._applied:
                    out += self._run("advance", adv, when, {})
            return out + self._run(kind, event_id, when, dict(data))

    def _due(self) -> float:
        t: float = self._timers[0][0] if self._timers else _INF
        if self.mode == "periodic":
            t = min(t, self._next_clear)
        return t

    # -- the one place inputs are applied --------------------------------------------
    def _run(self, kind: str, event_id: str | None, at: int, data: dict[str, Any],
             expect_seq: int | None = None) -> list[Event]:
        check = getattr(self, f"_check_{kind}")
        prepared = check(data, event_id, at)  # raises before anything changes
        seq = self._seq + 1
        if expect_seq is not None and expect_seq != seq:
            from auction.errors import EventLogError

            raise EventLogError(f"event {event_id!r} has seq {expect_seq}, replay is at {seq}")
        ev = Event(kind, event_id or f"e{seq}", seq, at, data)
        if self.log is not None:
            self.log.write_input(ev)
        self._seq = seq
        self._remember(ev.id, at)
        self._cause, self._outs = ev.id, []
        self._advance_to(at)
        getattr(self, f"_do_{kind}")(prepared, at)
        self._advance_to(at)  # timers the input itself made due now (a reclaim with no notice)
        outs = self._outs
        self._outs = []
        if self.log is not None:
            self.log.write_outputs(seq, outs)
        return outs

    def _remember(self, eid: str, at: int) -> None:
        """Remember an applied caller-chosen id; forget the oldest beyond the window, but
        only those applied before `at` (a retry of those is refused by the clock)."""
        if eid.startswith("e") and eid[1:].isdigit():
            return  # an automatic id: no caller can send it
        applied = self._applied
        applied[eid] = at
        while len(applied) > self.id_window:
            t = next(iter(applied.values()))
            if t >= at:
                break
            applied.popitem(last=False)

    def _emit(self, kind: str, at: int, data: Mapping[str, Any]) -> None:
        self._seq += 1
        ev = Event(kind, f"{self._cause}.{len(self._outs) + 1}", self._seq, at, data)
        self._outs.append(ev)
        self._publish(ev)

    def _publish(self, ev: Event) -> None:
        self.recent.append(ev)
        for cb in self._listeners:
            cb(ev)

    # -- checks (pure) -------------------------------------------------------------------
    def _check_submit(self, data: dict[str, Any], eid: str | None, at: int) -> Any:
        extra = set(data) - {"order", "expires_at", "start"}
        if extra:
            name = sorted(extra)[0]
            raise InvalidEventError(name, data[name], "is not a field of submit", event_id=eid)
        rec = data.get("order")
        order = order_from_record(rec) if isinstance(rec, Mapping) else rec
        if not isinstance(order, Offer | Request):
            raise InvalidOrderError("order", rec, "must be an Offer or Request record")
        if self._known(order.id):
            raise DuplicateOrderError(order.id)
        exp = data.get("expires_at")
        if exp is not None:
            exp = _check_time("expires_at", exp, eid, at + 1)
        start = data.get("start")
        if start is not None:
            if isinstance(order, Offer):
                raise InvalidEventError("start", start, "only requests have a start",
                                        event_id=eid)
            start = _check_time("start", start, eid)
        data["order"] = order_record(order)
        return order, exp, start

    def _check_cancel(self, data: dict[str, Any], eid: str | None, at: int) -> Any:
        oid = data.get("order_id")
        if set(data) != {"order_id"}:
            raise InvalidEventError("order_id", oid, "cancel takes only order_id", event_id=eid)
        if not isinstance(oid, str) or (oid not in self._orders and oid not in self._parked):
            raise UnknownOrderError(str(oid))
        return oid

    def _check_amend(self, data: dict[str, Any], eid: str | None, at: int) -> Any:
        oid, changes = data.get("order_id"), data.get("changes")
        if set(data) != {"order_id", "changes"} or not isinstance(changes, Mapping):
            raise InvalidEventError("changes", changes, "amend takes order_id and changes",
                                    event_id=eid)
        if not isinstance(oid, str) or oid not in self._orders:
            raise UnknownOrderError(str(oid))
        old = self._orders[oid]
        names = {a.name for a in attrs.fields(type(old))}
        for k, v in changes.items():
            if k == "id" or k not in names:
                raise InvalidOrderError(k, v, "cannot be amended", order_id=oid)
        conv = dict(changes)
        for k in ("tags", "gpu_models", "regions", "required_tags"):
            if k in conv and isinstance(conv[k], list):
                conv[k] = frozenset(conv[k])
        new = attrs.evolve(old, **conv)  # validates (InvalidOrderError)
        return old, new

    def _check_advance(self, data: dict[str, Any], eid: str | None, at: int) -> Any:
        if data:
            name = sorted(data)[0]
            raise InvalidEventError(name, data[name], "advance takes no fields", event_id=eid)
        return None

    def _check_clear(self, data: dict[str, Any], eid: str | None, at: int) -> Any:
        if self.mode != "periodic":
            raise InvalidEventError("kind", "clear", "only a periodic market clears",
                                    event_id=eid)
        return self._check_advance(data, eid, at)

    def _check_reclaim(self, data: dict[str, Any], eid: str | None, at: int) -> Any:
        lid, notice = data.get("lease_id"), data.get("notice")
        if set(data) != {"lease_id", "notice"}:
            raise InvalidEventError("lease_id", lid, "reclaim takes lease_id and notice",
                                    event_id=eid)
        if not isinstance(lid, str) or lid not in self._leases:
            raise UnknownLeaseError(str(lid))
        return lid, _check_time("notice", notice, eid)

    # -- effects -------------------------------------------------------------------------
    def _do_submit(self, prepared: Any, at: int) -> None:
        order, exp, start = prepared
        if exp is not None:
            self._expires[order.id] = exp
            heapq.heappush(self._timers, (exp, _EXPIRE, order.id))
        if start is not None:
            self._starts[order.id] = start
        self._open(order)
        self._emit("accepted", at, {"order_id": order.id})
        self._match(order.id, at)

    def _do_cancel(self, oid: str, at: int) -> None:
        self._withdraw(oid)
        self._emit("cancelled", at, {"order_id": oid})

    def _do_amend(self, prepared: Any, at: int) -> None:
        old, new = prepared
        self._close(old)
        self._open(new)
        self._emit("amended", at, {"order_id": new.id})
        self._match(new.id, at)

    def _do_advance(self, prepared: Any, at: int) -> None:
        return None  # the clock moved in _run

    def _do_clear(self, prepared: Any, at: int) -> None:
        self._clear_now(at)

    def _do_reclaim(self, prepared: Any, at: int) -> None:
        lid, notice = prepared
        lease = self._leases[lid]
        if at + notice >= lease.end:
            return  # the lease ends first anyway
        self._leases[lid] = attrs.evolve(lease, end=at + notice)
        self._reclaimed.add(lid)
        heapq.heappush(self._timers, (at + notice, _LEASE_END, lid))

    def _advance_to(self, at: int) -> None:
        while True:
            timer = self._timers[0] if self._timers else None
            t_clear = self._next_clear if self.mode == "periodic" else None
            if timer is not None and timer[0] <= at and (t_clear is None or timer[0] <= t_clear):
                t, kind, ref = heapq.heappop(self._timers)
                self._now = t
                if kind == _LEASE_END:
                    self._end_lease(ref, t)
                else:
                    self._expire(ref, t)
            elif t_clear is not None and t_clear <= at:
                self._now = t_clear
                self._next_clear = t_clear + self.epoch
                self._clear_now(t_clear)
            else:
                break
        self._now = at

    # -- state changes ---------------------------------------------------------------------
    def _open(self, order: Offer | Request) -> None:
        self.book.add(order)
        if self._keyed:
            self._pools.add(order)
        self._orders[order.id] = order
        self._clearer.opened(order)
        self._compact()

    def _compact(self) -> None:
        """Rebuild the pools (and the re-clear's columns and party table) from the open
        orders once they hold more dead groups or names than `_COMPACT_FACTOR` allows."""
        bound = _COMPACT_FACTOR * len(self._orders) + _COMPACT_SLACK
        if self._pools.n_groups <= bound and self._clearer.parties <= bound:
            return
        pools = Pools(self._pools.offer_key, self._pools.request_key)
        if self._keyed:
            for order in self._orders.values():
                pools.add(order)
        self._pools = pools
        self._clearer.reindex(self.book, pools)

    def _close(self, order: Offer | Request) -> None:
        self.book.cancel(order.id)
        if self._keyed:
            self._pools.remove(order)
        del self._orders[order.id]
        self._clearer.closed(order)

    def _withdraw(self, oid: str) -> None:
        if oid in self._parked:
            del self._parked[oid]
        else:
            self._close(self._orders[oid])
        self._expires.pop(oid, None)
        self._starts.pop(oid, None)
        self._retire(oid, self._now)

    def _resize(self, order: Offer | Request, gpus: int) -> None:
        new = self.book.amend(order.id, gpus=gpus)
        self._orders[order.id] = new  # the pools' sort keys do not hold the GPUs
        self._clearer.resized(order, new)

    # -- order ids: open, held by leases, or recently retired ------------------------------
    def _known(self, oid: str) -> bool:
        """Whether a new order may not take the id `oid` (see the module docstring)."""
        return (oid in self._orders or oid in self._parked or oid in self._held
                or oid in self._retired)

    def _hold(self, lease: Lease) -> None:
        for oid in (lease.request_id, lease.offer_id):
            self._held[oid] = self._held.get(oid, 0) + 1

    def _release(self, lease: Lease, at: int) -> None:
        for oid in (lease.request_id, lease.offer_id):
            n = self._held[oid] - 1
            if n:
                self._held[oid] = n
            else:
                del self._held[oid]
                self._retire(oid, at)

    def _retire(self, oid: str, at: int) -> None:
        """Remember `oid` in the bounded window once no open order nor lease has it."""
        if oid in self._orders or oid in self._parked or oid in self._held:
            return
        self._retired[oid] = at
        if len(self._retired) > self.id_window:
            self._retired.popitem(last=False)

    def _expire(self, oid: str, t: int) -> None:
        if self._expires.get(oid) != t:
            return
        self._withdraw(oid)
        self._emit("expired", t, {"order_id": oid})

    def _end_lease(self, lid: str, t: int) -> None:
        lease = self._leases.get(lid)
        if lease is None or lease.end != t:
            return  # already ended (a reclaim moved it earlier)
        del self._leases[lid]
        self._release(lease, t)
        oid = lease.offer_id
        reason = "reclaimed" if lid in self._reclaimed else "end"
        self._reclaimed.discard(lid)
        self._emit("lease-ended", t, {"lease_id": lid, "offer_id": oid, "gpus": lease.gpus,
                                      "reason": reason})
        if oid in self._parked:
            offer = attrs.evolve(self._parked.pop(oid), gpus=lease.gpus)
            self._open(offer)
        elif oid in self._orders:
            self._resize(self._orders[oid], self._orders[oid].gpus + lease.gpus)
        else:
            return  # the offer was withdrawn: its capacity leaves with it
        self._match(oid, t)

    def _fill(self, rid: str, oid: str, gpus: int, unit: int, tenant: int, at: int) -> None:
        req = cast(Request, self._orders[rid])
        off = cast(Offer, self._orders[oid])
        lid = f"L{self._seq + 1}"
        start = max(at, self._starts.get(rid, at))
        length = HOUR * req.duration_hours
        lease = Lease(id=lid, request_id=rid, offer_id=oid, tenant=req.tenant,
                      provider=off.provider, gpus=gpus, unit_price=unit, tenant_price=tenant,
                      filled_at=at, start=start, end=start + length)
        self._emit("fill", at, {"request_id": rid, "offer_id": oid, "gpus": gpus,
                                "unit_price": unit, "tenant_price": tenant, "lease_id": lid})
        self._leases[lid] = lease
        self._hold(lease)
        heapq.heappush(self._timers, (lease.end, _LEASE_END, lid))
        self._emit("lease-started", at, lease.to_record())
        if off.gpus == gpus:
            self._close(off)
            self._parked[oid] = off
        else:
            self._resize(off, off.gpus - gpus)
        if req.gpus == gpus:
            self._close(req)
            self._expires.pop(rid, None)
            self._starts.pop(rid, None)
        else:
            self._resize(req, req.gpus - gpus)

    def _match(self, oid: str, at: int) -> None:
        """Continuous mode: trade the order `oid` against resting orders while it can."""
        if self.mode != "continuous":
            return
        rep = self._rep
        while oid in self._orders:
            order = self._orders[oid]
            if isinstance(order, Request):
                m = best_offer(self._pools, self.rule, order,
                               cast(Mapping[str, Offer], self._orders), rep)
                if m is None:
                    return
                o, price = m
                g = min(order.gpus, o.gpus) if order.divisible else order.gpus
                self._fill(order.id, o.id, g, price, price, at)
            else:
                n = best_request(self._pools, self.rule, order,
                                 cast(Mapping[str, Request], self._orders), rep)
                if n is None:
                    return
                r, price = n
                g = min(r.gpus, order.gpus) if r.divisible else r.gpus
                self._fill(r.id, order.id, g, price, price, at)

    def _rep(self, provider: str) -> float:
        return self.reputation.get(provider, 0.0)

    def bonus(self, provider: str) -> int:
        """The quality bonus of `provider` per GPU-hour, as `auction.Market.offer_bonus`."""
        b = self._bonuses.get(provider)
        if b is None:
            q = (self.quality.get(provider, 0.0) if self.quality is not None
                 else self._rep(provider))
            b = self._bonuses[provider] = math.floor(Fraction(repr(float(q)))
                                                     * self.quality_weight)
        return b

    def _clear_now(self, at: int) -> None:
        if self.quality_weight:
            market = Market(self.book.snapshot(), self.reputation, quality=self.quality,
                            quality_weight=self.quality_weight)
            result = clear_from_scratch(market, self.mechanism)
        else:
            self._compact()
            result = self._clearer.clear(self.book, self._pools)
        self.last_result = result
        digest = _digest(result)
        # "incremental" says whether this market re-clears incrementally where exact, not
        # which path this clear took (that depends on the clearer's memory, which a market
        # recovered from a snapshot starts without; the result is the same either way)
        self._emit("cleared", at, {
            "mechanism": result.mechanism, "status": str(result.status),
            "allocations": result.n_allocations, "welfare": result.welfare,
            "total_payment": result.total_payment, "digest": digest,
            "incremental": self._clearer.incremental,
        })
        rows = zip(result.request_id.tolist(), result.offer_id.tolist(), result.gpus.tolist(),
                   result.unit_price.tolist(), result.tenant_price.tolist(), strict=True)
        for rid, oid, g, up, tp in rows:
            self._fill(rid, oid, g, up, tp, at)

    # -- state (for snapshots) -----------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """Everything needed to rebuild this market exactly (JSON-ready)."""
        with self._lock:
            return {
                "config": self.config(),
                "now": self._now, "seq": self._seq, "next_clear": self._next_clear,
                "applied": [[k, t] for k, t in self._applied.items()],
                "retired": [[k, t] for k, t in self._retired.items()],
                "book": [order_record(o) for o in self.book],
                "parked": [order_record(o) for o in self._parked.values()],
                "expires": self._expires, "starts": self._starts,
                "leases": [le.to_record() for le in self._leases.values()],
                "reclaimed": sorted(self._reclaimed),
                "timers": [list(t) for t in sorted(self._timers)],
            }

    @classmethod
    def from_state(cls, state: Mapping[str, Any], *, log: Any = None) -> LiveMarket:
        """The market `to_state` described."""
        m = cls(**state["config"], log=log)
        m._now, m._seq, m._next_clear = state["now"], state["seq"], state["next_clear"]
        m._applied = OrderedDict((str(k), int(t)) for k, t in (
            (a, m._now) if isinstance(a, str) else a for a in state["applied"]))
        for rec in state["book"]:
            m._open(order_from_record(rec))
        for rec in state["parked"]:
            o = cast(Offer, order_from_record(rec))
            m._parked[o.id] = o
        m._expires, m._starts = dict(state["expires"]), dict(state["starts"])
        for rec in state["leases"]:
            le = Lease.from_record(rec)
            m._leases[le.id] = le
        m._reclaimed = set(state["reclaimed"])
        for le in m._leases.values():
            m._hold(le)
        if "retired" in state:
            m._retired = OrderedDict((str(k), int(t)) for k, t in state["retired"])
        else:  # an older snapshot kept every id ever seen: keep the window's worth
            for oid in state.get("seen", ()):
                m._retire(str(oid), m._now)
        m._timers = [(int(a), int(b), str(c)) for a, b, c in state["timers"]]
        heapq.heapify(m._timers)
        return m

    def replay_input(self, ev: Event) -> list[Event]:
        """Apply a logged input again, checking its sequence number (used by recovery)."""
        with self._lock:
            if ev.id in self._applied:
                from auction.errors import EventLogError

                raise EventLogError(f"input {ev.id!r} appears twice in the log")
            return self._run(ev.kind, ev.id, ev.at, dict(ev.data), expect_seq=ev.seq)


def _jsonable(v: Any) -> Any:
    if v is None or isinstance(v, str | int | float | bool):
        return v
    return repr(v)


def _digest(result: ClearingResult) -> str:
    """SHA-256 over the result's allocation columns, unmatched and partial requests and
    totals: equal digests mean the same result, bit for bit."""
    h = hashlib.sha256()
    for col in (result.request_id, result.offer_id, result.gpus, result.unit_price,
                result.tenant_price, result.unmatched_request_ids, result.partial_request_ids,
                result.shortfall_gpus):
        h.update(str(col.dtype).encode())
        h.update(np.ascontiguousarray(col).tobytes())
    for col in (result.provider_payment, result.tenant_payment):
        h.update(json.dumps(col.tolist()).encode())
    h.update(json.dumps([str(result.status), result.message, result.welfare,
                         result.total_payment, result.provider_revenue]).encode())
    return h.hexdigest()
