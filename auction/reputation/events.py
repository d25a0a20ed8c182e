"""Reputation events: what happened to a provider, when, and how much it counts.

An `Event` is one fact about one provider (a job completed or failed, an SLA breach, an audit
passed or failed), with an id, a time and a weight. Events are immutable and validated once;
a `ReputationBook` is rebuilt from them alone. Bulk input goes through `EventBatch`, the same
facts as numpy columns, validated with vectorized checks so that a million events cost well
under a second.

Every bad value raises `InvalidEventError` naming the field, the value and (when known) the
event id; an id recorded twice with different content raises `ConflictingEventError`.
"""

from __future__ import annotations

import enum
import math
import numbers
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from auction import errors
from auction.errors import DuplicateIdError, InvalidValueError

__all__ = [
    "MAX_TIME",
    "MAX_WEIGHT",
    "ConflictingEventError",
    "Event",
    "EventBatch",
    "EvidenceWeights",
    "InvalidEventError",
    "InvalidReputationError",
    "Outcome",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Largest event time: times are float64, exact for integers up to 2**53.
MAX_TIME = float(2**53)
#: Largest event weight; keeps sums of a provider's evidence far from overflow.
MAX_WEIGHT = 1e9


class InvalidReputationError(InvalidValueError):
    """A reputation parameter (or an event) failed validation (`field`, `value`, `reason`)."""


class InvalidEventError(InvalidReputationError, errors.InvalidEventError):
    """An event failed validation; `event_id` names it when it is known (an
    `auction.InvalidEventError`, as the live market's)."""


class ConflictingEventError(DuplicateIdError):
    """An event id was recorded before with different content (ids are never reused); a
    `DuplicateIdError` of kind ``"event"``.

    Attributes:
        event_id: the id.
        field: the first field that differs.
        recorded: its value in the recorded event.
        given: its value in the new event.
    """

    def __init__(self, event_id: str, field: str, recorded: Any, given: Any) -> None:
        self.event_id = event_id
        self.field = field
        self.recorded = recorded
        self.given = given
        super().__init__(
            "event", event_id, f"event id {event_id!r} was recorded with {field}={recorded!r}, "
            f"now given with {field}={given!r}"
        )


class Outcome(enum.Enum):
    """What an event reports. Completed jobs and passed audits are positive evidence; the
    others negative."""

    COMPLETED = "completed"
    FAILED = "failed"
    SLA_BREACH = "sla_breach"
    AUDIT_PASSED = "audit_passed"
    AUDIT_FAILED = "audit_failed"

    @property
    def code(self) -> int:
        """Position in declaration order: the integer stored in event columns."""
        return _CODES[self]

    @property
    def positive(self) -> bool:
        """True for completed jobs and passed audits."""
        return self in (Outcome.COMPLETED, Outcome.AUDIT_PASSED)


OUTCOMES: tuple[Outcome, ...] = tuple(Outcome)
_CODES = {o: i for i, o in enumerate(OUTCOMES)}
_LOOKUP: dict[Any, int] = {**_CODES, **{o.value: i for o, i in _CODES.items()}}
#: Per outcome code: True when the outcome is positive evidence.
POSITIVE = np.array([o.positive for o in OUTCOMES], dtype=np.bool_)


@attrs.frozen(kw_only=True)
class EvidenceWeights:
    """How much evidence one event of weight 1 adds, per outcome.

    Completed jobs and passed audits add positive evidence, the rest negative. The defaults
    make failures that cost a tenant more count more. An SLA breach (the job ran, but broke
    its terms) counts as two plain failures. A failed audit (a provider caught misreporting)
    counts as three SLA breaches, as Aethir slashes a whole stake for malice and a third of it
    for downtime. A passed audit, an independent check, counts as two completed jobs.
    A weight of 0 ignores that outcome.
    """

    completed: float = 1.0
    failed: float = 1.0
    sla_breach: float = 2.0
    audit_passed: float = 2.0
    audit_failed: float = 6.0

    def __attrs_post_init__(self) -> None:
        for o in OUTCOMES:
            v = getattr(self, o.value)
            v = _real(v, o.value, 0.0, 1e6, "in [0, 1e6]", param=True)
            object.__setattr__(self, o.value, v)

    def of(self, outcome: Outcome | str) -> float:
        """Evidence per unit of weight for `outcome`."""
        return float(getattr(self, _outcome(outcome, "outcome", None).value))

    def tables(self) -> tuple[FloatArray, FloatArray]:
        """(positive, negative) evidence per unit weight, indexed by outcome code."""
        pos = np.array([getattr(self, o.value) if o.positive else 0.0 for o in OUTCOMES])
        neg = np.array([0.0 if o.positive else getattr(self, o.value) for o in OUTCOMES])
        return pos, neg

    def to_record(self) -> dict[str, float]:
        return {o.value: float(getattr(self, o.value)) for o in OUTCOMES}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> EvidenceWeights:
        if not isinstance(record, Mapping):
            raise InvalidReputationError("evidence", record, "must be a mapping")
        for key in record:
            if key not in _LOOKUP or not isinstance(key, str):
                raise InvalidReputationError(str(key), record[key], "is not an outcome")
        return cls(**record)


# -- validation helpers -------------------------------------------------------------------------
def _fail(
    field: str, value: Any, reason: str, event_id: str | None, param: bool = False
) -> InvalidReputationError:
    if param:
        return InvalidReputationError(field, value, reason)
    return InvalidEventError(field, value, reason, event_id=event_id)


def _name(value: Any, field: str, event_id: str | None, *, param: bool = False) -> str:
    if not isinstance(value, str):
        raise _fail(field, value, f"must be a str, not {type(value).__name__}", event_id, param)
    if not value or value != value.strip():
        raise _fail(field, value, "must be non-empty, without surrounding spaces", event_id, param)
    if "\0" in value:
        raise _fail(field, value, "must not contain NUL characters", event_id, param)
    return str(value)  # a str subclass (numpy.str_) becomes a plain str


def _real(
    value: Any, field: str, lo: float, hi: float, bounds: str, *,
    open_lo: bool = False, event_id: str | None = None, param: bool = False,
) -> float:
    """`value` as a float in [lo, hi] ((lo, hi] if `open_lo`), else a typed error."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        kind = "a bool" if isinstance(value, bool) else type(value).__name__
        raise _fail(field, value, f"must be a number, not {kind}", event_id, param)
    try:
        out = float(value)
    except OverflowError:  # an int or Fraction too large for a float
        out = math.inf
    if isinstance(value, numbers.Integral) and math.isfinite(out) and out != value:
        raise _fail(field, value, "is an int a float cannot hold exactly", event_id, param)
    if not math.isfinite(out) or out < lo or out > hi or (open_lo and out == lo):
        raise _fail(field, value, f"must be {bounds}", event_id, param)
    return out


def _outcome(value: Any, field: str, event_id: str | None) -> Outcome:
    if isinstance(value, Outcome):
        return value
    code = _LOOKUP.get(value) if isinstance(value, str) else None
    if code is None:
        names = ", ".join(o.value for o in OUTCOMES)
        raise _fail(field, value, f"must be an Outcome or one of: {names}", event_id)
    return OUTCOMES[code]


def _time(value: Any, event_id: str | None) -> float:
    return _real(value, "time", 0.0, MAX_TIME, "finite, in [0, 2**53]", event_id=event_id)


def _weight(value: Any, event_id: str | None) -> float:
    return _real(value, "weight", 0.0, MAX_WEIGHT, "in (0, 1e9]", open_lo=True, event_id=event_id)


def _outcome_arg(value: Outcome | str) -> Outcome:
    """Lets ``Event(outcome="failed")`` type-check; `Event` validates the value itself, so
    that its errors can name the event."""
    return value  # type: ignore[return-value]


@attrs.frozen(kw_only=True)
class Event:
    """One fact about one provider.

    Attributes:
        id: unique event id; recording the same event twice counts once.
        provider: the provider it is about.
        time: when it happened, in the book's time unit (seconds unless the model's half-life
            says otherwise), finite and >= 0; forgetting is measured on this clock.
        outcome: an `Outcome` (or its string value, such as ``"completed"``).
        weight: how much the event counts, > 0 (for example GPU-hours of the job).
        tenant: who reports it (a tenant, or an auditor), or None. EigenTrust reads
            (tenant, provider) pairs as ratings.
    """

    id: str
    provider: str
    time: float
    outcome: Outcome = attrs.field(converter=_outcome_arg)
    weight: float = 1.0
    tenant: str | None = None

    def __attrs_post_init__(self) -> None:
        eid = _name(self.id, "id", None)
        s = object.__setattr__
        s(self, "id", eid)
        s(self, "provider", _name(self.provider, "provider", eid))
        s(self, "time", _time(self.time, eid))
        s(self, "outcome", _outcome(self.outcome, "outcome", eid))
        s(self, "weight", _weight(self.weight, eid))
        if self.tenant is not None:
            s(self, "tenant", _name(self.tenant, "tenant", eid))

    def to_record(self) -> dict[str, Any]:
        """A JSON-ready dict (the outcome as its string value)."""
        return {
            "id": self.id, "provider": self.provider, "time": self.time,
            "outcome": self.outcome.value, "weight": self.weight, "tenant": self.tenant,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Event:
        """Build an event from a dict as `to_record` writes it (unknown keys are errors)."""
        if not isinstance(record, Mapping):
            raise InvalidEventError("record", record, "an event record must be a mapping")
        eid = record.get("id") if isinstance(record.get("id"), str) else None
        for key in record:
            if key not in _EVENT_FIELDS:
                raise InvalidEventError(str(key), record[key], "is not a field of Event",
                                        event_id=eid)
        for key in ("id", "provider", "time", "outcome"):
            if key not in record:
                raise InvalidEventError(key, None, "is required", event_id=eid)
        return cls(**record)


_EVENT_FIELDS = ("id", "provider", "time", "outcome", "weight", "tenant")
# In ids joined by NUL (and in the reverse of that string): an id that is empty or starts with
# whitespace. The literal NUL prefix lets the regex engine skip ahead at C speed.
_BAD_START = re.compile(r"\x00[\s\x00]")


class EventBatch:
    """Events as columns, validated with vectorized checks: the fast way into a book.

    Args:
        ids: event ids (strings).
        providers: provider per event.
        times: event times (numbers, finite, in [0, 2**53]).
        outcomes: `Outcome` members or their string values, or a numpy integer array of
            outcome codes (`Outcome.code`).
        weights: event weights in (0, 1e9]; None means 1 for every event.
        tenants: reporting tenant per event (None entries allowed); None means no tenants.

    The columns are read-only numpy arrays: ``times`` and ``weights`` float64, ``outcomes``
    int8 codes (`Outcome.code`), ``provider_codes`` and ``tenant_codes`` int64 indices into
    ``provider_names`` and ``tenant_names`` (-1: no tenant). ``ids`` is a tuple of str.
    """

    __slots__ = (
        "ids", "outcomes", "provider_codes", "provider_names", "tenant_codes", "tenant_names",
        "times", "weights",
    )

    ids: tuple[str, ...]
    provider_names: tuple[str, ...]
    provider_codes: IntArray
    times: FloatArray
    outcomes: npt.NDArray[np.int8]
    weights: FloatArray
    tenant_names: tuple[str, ...]
    tenant_codes: IntArray

    def __init__(
        self,
        ids: Sequence[str],
        providers: Sequence[str],
        times: Sequence[float] | npt.ArrayLike,
        outcomes: Sequence[Outcome | str] | npt.ArrayLike,
        weights: Sequence[float] | npt.ArrayLike | None = None,
        tenants: Sequence[str | None] | None = None,
    ) -> None:
        ids = _id_column(ids)
        n = len(ids)
        pnames, pcodes = _factorize(providers, "providers", ids, allow_none=False)
        if len(pcodes) != n:
            raise InvalidEventError("providers", len(pcodes), f"must hold {n} entries, one per id")
        if tenants is None:
            tnames: tuple[str, ...] = ()
            tcodes = np.full(n, -1, dtype=np.int64)
        else:
            tnames, tcodes = _factorize(tenants, "tenants", ids, allow_none=True)
            if len(tcodes) != n:
                raise InvalidEventError("tenants", len(tcodes), f"must hold {n} entries")
        self._fill(ids, pnames, pcodes, times, outcomes, weights, tnames, tcodes)

    @classmethod
    def from_codes(
        cls,
        ids: Sequence[str],
        provider_names: Sequence[str],
        provider_codes: npt.ArrayLike,
        times: Sequence[float] | npt.ArrayLike,
        outcomes: Sequence[Outcome | str] | npt.ArrayLike,
        weights: Sequence[float] | npt.ArrayLike | None = None,
        tenant_names: Sequence[str] = (),
        tenant_codes: npt.ArrayLike | None = None,
    ) -> EventBatch:
        """A batch from dictionary-encoded columns: event k's provider is
        ``provider_names[provider_codes[k]]`` (and likewise its tenant, -1 for none).

        The fastest input: names are checked once each, codes with vectorized checks.
        """
        ids = _id_column(ids)
        n = len(ids)
        pnames = _unique_names(provider_names, "provider_names")
        pcodes = _code_column(provider_codes, "provider_codes", len(pnames), n, ids, 0)
        tnames = _unique_names(tenant_names, "tenant_names")
        if tenant_codes is None:
            tcodes = np.full(n, -1, dtype=np.int64)
        else:
            tcodes = _code_column(tenant_codes, "tenant_codes", len(tnames), n, ids, -1)
        out = cls.__new__(cls)
        out._fill(ids, pnames, pcodes, times, outcomes, weights, tnames, tcodes)
        return out

    def _fill(
        self,
        ids: tuple[str, ...],
        pnames: tuple[str, ...],
        pcodes: IntArray,
        times: Any,
        outcomes: Any,
        weights: Any,
        tnames: tuple[str, ...],
        tcodes: IntArray,
    ) -> None:
        n = len(ids)
        t = _float_column(times, "time", ids, 0.0, MAX_TIME, "finite, in [0, 2**53]", False)
        oc = _outcome_column(outcomes, ids)
        if weights is None:
            w = np.ones(n, dtype=np.float64)
        else:
            w = _float_column(weights, "weight", ids, 0.0, MAX_WEIGHT, "in (0, 1e9]", True)
        s = object.__setattr__
        s(self, "ids", ids)
        s(self, "provider_names", pnames)
        s(self, "provider_codes", _readonly(pcodes))
        s(self, "times", _readonly(t))
        s(self, "outcomes", _readonly(oc))
        s(self, "weights", _readonly(w))
        s(self, "tenant_names", tnames)
        s(self, "tenant_codes", _readonly(tcodes))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("EventBatch is immutable")

    def __getstate__(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickled and deep-copied batches keep read-only columns."""
        for name, value in state.items():
            object.__setattr__(self, name, _readonly(value) if isinstance(value, np.ndarray)
                               else value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EventBatch):
            return NotImplemented
        return self.to_columns() == other.to_columns()

    __hash__ = None  # type: ignore[assignment]  # holds arrays

    @classmethod
    def from_events(cls, events: Iterable[Event]) -> EventBatch:
        """Columns of already validated `Event` objects."""
        evs = list(events)
        for i, e in enumerate(evs):
            if not isinstance(e, Event):
                raise InvalidEventError("events", e, f"events[{i}] is not an Event")
        return cls(
            [e.id for e in evs],
            [e.provider for e in evs],
            np.array([e.time for e in evs], dtype=np.float64),
            np.array([e.outcome.code for e in evs], dtype=np.int8),
            np.array([e.weight for e in evs], dtype=np.float64),
            [e.tenant for e in evs] if any(e.tenant is not None for e in evs) else None,
        )

    @classmethod
    def coerce(cls, events: EventBatch | Event | Iterable[Event]) -> EventBatch:
        """`events` as a batch: a batch as is, one event or an iterable of events converted."""
        if isinstance(events, EventBatch):
            return events
        if isinstance(events, Event):
            return cls.from_events([events])
        return cls.from_events(events)

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return f"EventBatch({len(self)} events, {len(self.provider_names)} providers)"

    def event(self, i: int) -> Event:
        """Row `i` as an `Event`."""
        tc = int(self.tenant_codes[i])
        return Event(
            id=self.ids[i],
            provider=self.provider_names[int(self.provider_codes[i])],
            time=float(self.times[i]),
            outcome=OUTCOMES[int(self.outcomes[i])],
            weight=float(self.weights[i]),
            tenant=self.tenant_names[tc] if tc >= 0 else None,
        )

    def __iter__(self) -> Iterator[Event]:
        return (self.event(i) for i in range(len(self)))

    def to_columns(self) -> dict[str, list[Any]]:
        """JSON-ready columns: lists of ids, providers, times, outcome values, weights,
        tenants (None for no tenant)."""
        pn, tn = self.provider_names, self.tenant_names
        return {
            "id": list(self.ids),
            "provider": [pn[c] for c in self.provider_codes.tolist()],
            "time": self.times.tolist(),
            "outcome": [OUTCOMES[c].value for c in self.outcomes.tolist()],
            "weight": self.weights.tolist(),
            "tenant": [tn[c] if c >= 0 else None for c in self.tenant_codes.tolist()],
        }


def _readonly(a: np.ndarray) -> Any:
    a.flags.writeable = False
    return a


def _id_column(ids: Any) -> tuple[str, ...]:
    if isinstance(ids, str | bytes) or not isinstance(ids, Iterable):
        raise InvalidEventError("ids", ids, "must be a sequence of strings")
    out = tuple(ids.tolist() if isinstance(ids, np.ndarray) else ids)
    if out and set(map(type, out)) != {str}:
        out = tuple(_name(v, "id", None) for v in out)
    # One C-level pass finds NULs, empty ids and surrounding spaces; the slow loop only runs
    # to name the offending id.
    joined = "\x00" + "\x00".join(out) + "\x00"
    if out and (
        joined.count("\x00") != len(out) + 1
        or _BAD_START.search(joined)
        or _BAD_START.search(joined[::-1])
    ):
        for v in out:
            _name(v, "id", None)
    return out


def _first_bad_id(ids: tuple[str, ...], bad: npt.NDArray[np.bool_]) -> tuple[int, str | None]:
    i = int(np.flatnonzero(bad)[0])
    return i, ids[i] if i < len(ids) else None


def _float_column(
    values: Any, field: str, ids: tuple[str, ...], lo: float, hi: float, bounds: str,
    open_lo: bool,
) -> FloatArray:
    n = len(ids)
    arr = np.asarray(values)
    if arr.ndim != 1 or len(arr) != n:
        raise InvalidEventError(field + "s", arr.shape, f"must be one value per event ({n})")
    if arr.dtype.kind in "fiu" and arr.dtype != np.bool_:
        out = arr.astype(np.float64)
        if arr.dtype.kind in "iu":
            bad_int = out.astype(arr.dtype) != arr  # ints a float64 cannot hold
            if bad_int.any():
                i, eid = _first_bad_id(ids, bad_int)
                raise InvalidEventError(field, arr[i].item(),
                                        "is an int a float cannot hold exactly", event_id=eid)
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(out) | (out < lo) | (out > hi)
            if open_lo:
                bad |= out == lo
        if bad.any():
            i, eid = _first_bad_id(ids, bad)
            raise InvalidEventError(field, arr[i].item(), f"must be {bounds}", event_id=eid)
        return np.ascontiguousarray(out)
    # anything else (objects, strings, a list mixing types): validate the values one by one
    items = values.tolist() if isinstance(values, np.ndarray) else list(values)
    return np.array(
        [_real(v, field, lo, hi, bounds, open_lo=open_lo, event_id=ids[i])
         for i, v in enumerate(items)],
        dtype=np.float64,
    )


def _outcome_column(values: Any, ids: tuple[str, ...]) -> npt.NDArray[np.int8]:
    n = len(ids)
    if isinstance(values, np.ndarray) and values.dtype.kind in "iu":
        if values.ndim != 1 or len(values) != n:
            raise InvalidEventError("outcomes", values.shape, f"must be one per event ({n})")
        bad = (values < 0) | (values >= len(OUTCOMES))
        if bad.any():
            i, eid = _first_bad_id(ids, bad)
            raise InvalidEventError("outcome", values[i].item(),
                                    f"must be an outcome code in [0, {len(OUTCOMES) - 1}]",
                                    event_id=eid)
        return values.astype(np.int8)
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise InvalidEventError("outcomes", values, "must be a sequence of outcomes")
    seq = values.tolist() if isinstance(values, np.ndarray) else list(values)
    if len(seq) != n:
        raise InvalidEventError("outcomes", len(seq), f"must be one per event ({n})")
    get = _LOOKUP.get
    try:
        codes = np.fromiter((get(v, -1) for v in seq), dtype=np.int8, count=n)
    except TypeError:  # an unhashable value
        codes = np.array([get(v, -1) if isinstance(v, str | Outcome) else -1 for v in seq],
                         dtype=np.int8)
    bad = codes < 0
    if bad.any():
        i, eid = _first_bad_id(ids, bad)
        _outcome(seq[i], "outcome", eid)
    return codes


def _unique_names(values: Any, field: str) -> tuple[str, ...]:
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise InvalidEventError(field, values, "must be a sequence of strings")
    names = tuple(_name(v, field[:-6], None) for v in values)  # "provider_names" -> "provider"
    if len(set(names)) != len(names):
        seen: set[str] = set()
        for v in names:
            if v in seen:
                raise InvalidEventError(field, v, "appears twice")
            seen.add(v)
    return names


def _code_column(
    values: Any, field: str, n_names: int, n: int, ids: tuple[str, ...], lo: int
) -> IntArray:
    a = np.asarray(values)
    if a.ndim != 1 or len(a) != n or (n and a.dtype.kind not in "iu"):
        raise InvalidEventError(field, getattr(a, "shape", a),
                                f"must be {n} integer codes, one per event")
    a = a.astype(np.int64)
    bad = (a < lo) | (a >= n_names)
    if bad.any():
        i, eid = _first_bad_id(ids, bad)
        raise InvalidEventError(field, int(a[i]), f"must be in [{lo}, {n_names})", event_id=eid)
    return a


def _factorize(
    values: Any, field: str, ids: tuple[str, ...], *, allow_none: bool
) -> tuple[tuple[str, ...], IntArray]:
    """Unique names in first-seen order, and each entry's index among them (None: -1)."""
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise InvalidEventError(field, values, "must be a sequence of strings")
    seq: Sequence[Any] = (
        values.tolist() if isinstance(values, np.ndarray)
        else values if isinstance(values, Sequence) else list(values)
    )
    try:
        uniq = list(dict.fromkeys(seq))  # checks only the distinct names, not every entry
        clean = all(
            (type(v) is str and v and v == v.strip() and "\0" not in v)
            or (v is None and allow_none)
            for v in uniq
        )
    except TypeError:  # an unhashable entry
        clean = False
    if not clean:  # name the first bad entry, or turn str subclasses into plain str
        single = field[:-1]  # "providers" -> "provider"
        seq = [
            None if v is None and allow_none
            else _name(v, single, ids[i] if i < len(ids) else None)
            for i, v in enumerate(seq)
        ]
        uniq = list(dict.fromkeys(seq))
    names = tuple(v for v in uniq if v is not None)
    index: dict[str | None, int] = {v: k for k, v in enumerate(names)}
    index[None] = -1
    codes = np.fromiter(map(index.__getitem__, seq), dtype=np.int64, count=len(seq))
    return names, codes
