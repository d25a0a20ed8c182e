"""Order value types: what providers offer and what tenants request.

Both are small frozen attrs classes, validated once at construction. Every money field is an
int in the smallest currency unit per GPU-hour; every bad value raises `InvalidOrderError`
naming the field and the value. Hot paths never touch these objects: the `OrderBook` keeps
their fields as numpy columns (and `OrderBook.from_columns` never builds them at all).

Beside the built-in fields, each side may carry free-form ``attributes`` (name -> str, int,
bool or decimal string) and ``constraints``, an expression over the other side's attributes
and built-in fields (`auction.constraints`); a pair is eligible only when both sides'
constraints hold. Provider and tenant lists and node resources (CPU, RAM, disk per GPU) are
built-in fields, checked by the market without parsing anything.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, ClassVar, Self

import attrs

from auction.constraints import parse, validate_attributes
from auction.errors import InvalidOrderError
from auction.money import MAX_MONEY

__all__ = [
    "MAX_COUNT", "OFFER_BUILTINS", "REQUEST_BUILTINS", "Attributes", "Offer", "Order", "Request",
]

#: Largest GPU count, VRAM size or sequence number: these live in int32/int64 arrays.
MAX_COUNT = 2**31 - 1
_MAX_SEQ = 2**63 - 1


def _as_int(value: Any, field: str, order_id: str | None, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        kind = "a bool" if isinstance(value, bool) else type(value).__name__
        raise InvalidOrderError(field, value, f"must be an int, not {kind}", order_id=order_id)
    out = int(value)
    if out < lo or out > hi:
        raise InvalidOrderError(field, value, f"must be in [{lo}, {hi}]", order_id=order_id)
    return out


def _as_name(value: Any, field: str, order_id: str | None) -> str:
    if not isinstance(value, str):
        raise InvalidOrderError(
            field, value, f"must be a str, not {type(value).__name__}", order_id=order_id
        )
    if not value or value != value.strip():
        raise InvalidOrderError(
            field, value, "must be non-empty, without surrounding spaces", order_id=order_id
        )
    if "\0" in value:  # numpy string columns drop trailing NULs: "a\0" would read as "a"
        raise InvalidOrderError(field, value, "must not contain NUL characters", order_id=order_id)
    return str(value)  # a str subclass (numpy.str_) becomes a plain str


def _as_names(value: Any, field: str, order_id: str | None) -> frozenset[str]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise InvalidOrderError(
            field, value, "must be a set of strings (a bare string is not)", order_id=order_id
        )
    items = list(value)
    for item in items:
        if not isinstance(item, str) or not item or item != item.strip() or "\0" in item:
            raise InvalidOrderError(
                field, value, f"holds {item!r}: members must be non-empty strings",
                order_id=order_id,
            )
    return frozenset(str(item) for item in items)


AttributeValue = str | int | bool


class Attributes(Mapping[str, AttributeValue]):
    """A read-only, hashable mapping of attribute names to values (str, int or bool; decimal
    values are decimal strings such as ``"2.5"``), as orders carry them."""

    __slots__ = ("_data", "_hash")

    def __init__(self, data: Mapping[str, AttributeValue] | None = None) -> None:
        self._data: dict[str, AttributeValue] = dict(sorted((data or {}).items()))
        self._hash: int | None = None

    def __getitem__(self, key: str) -> AttributeValue:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(tuple((k, type(v).__name__, v) for k, v in self._data.items()))
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Attributes):
            other = other._data
        if not isinstance(other, Mapping):
            return NotImplemented
        if dict(other) != self._data:
            return False
        # True == 1 in Python; attributes keep the kinds apart
        return all(type(other[k]) is type(v) for k, v in self._data.items())

    def __repr__(self) -> str:  # a dict literal: an order's repr evaluates back to the order
        return repr(self._data)


#: Built-in offer fields a request's constraints may test (offer attributes may not use them).
OFFER_BUILTINS = (
    "id", "provider", "gpu_model", "gpus", "price", "region", "vram_gb", "tags",
    "submitted_at", "cpu_per_gpu", "ram_gb_per_gpu", "disk_gb_per_gpu",
)
#: Built-in request fields an offer's constraints may test.
REQUEST_BUILTINS = (
    "id", "tenant", "gpus", "max_price", "gpu_models", "regions", "min_vram_gb",
    "required_tags", "duration_hours", "divisible", "cluster", "submitted_at",
    "min_cpu_per_gpu", "min_ram_gb_per_gpu", "min_disk_gb_per_gpu",
)


def _as_attributes(value: Any, order_id: str | None, kind: type | None = None) -> Attributes:
    """Validate an attributes mapping (see `auction.constraints.validate_attributes`);
    names of the side's built-in fields are refused."""
    if isinstance(value, Attributes):
        return value
    reserved = OFFER_BUILTINS if kind is Offer else REQUEST_BUILTINS if kind is Request else ()
    return Attributes(validate_attributes(value, order_id=order_id, reserved=reserved))


def _as_constraints(value: Any, order_id: str | None) -> str | None:
    """A constraint expression (parsed once here, so a syntax error names this order)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidOrderError(
            "constraints", value, f"must be a str, not {type(value).__name__}", order_id=order_id
        )
    text = value.strip()
    if not text:
        return None
    parse(text, order_id=order_id)
    return text


#: Fields added by format 2; `to_record` writes them only when they differ from the default,
#: so records of orders that do not use them read exactly as format 1 wrote them.
_V2_FIELDS = frozenset(
    {
        "tenants", "exclude_tenants", "providers", "exclude_providers", "cpu_per_gpu",
        "ram_gb_per_gpu", "disk_gb_per_gpu", "min_cpu_per_gpu", "min_ram_gb_per_gpu",
        "min_disk_gb_per_gpu", "attributes", "constraints",
    }
)


class _Order:
    """Shared record conversion for `Offer` and `Request`."""

    _set_fields: ClassVar[tuple[str, ...]] = ()

    def to_record(self) -> dict[str, Any]:
        """Return a JSON-ready dict; set fields become sorted lists, attributes a dict.

        Fields of format 2 (lists, resources, attributes, constraints) appear only when set.
        """
        out: dict[str, Any] = {}
        for a in attrs.fields(type(self)):  # type: ignore[arg-type]
            v = getattr(self, a.name)
            if a.name in _V2_FIELDS and not v:  # 0, the empty set or mapping, None
                continue
            if a.name in self._set_fields:
                v = sorted(v)
            elif a.name == "attributes":
                v = dict(v)
            out[a.name] = v
        return out

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Self:
        """Build an order from a dict as written by `to_record` (unknown keys are errors)."""
        if not isinstance(record, Mapping):
            raise InvalidOrderError("record", record, f"{cls.__name__} record must be a mapping")
        names = {a.name for a in attrs.fields(cls)}  # type: ignore[arg-type]
        oid = record.get("id") if isinstance(record.get("id"), str) else None
        for key in record:
            if key not in names:
                raise InvalidOrderError(
                    str(key), record[key], f"is not a field of {cls.__name__}", order_id=oid
                )
        try:
            return cls(**record)
        except TypeError as exc:  # a missing required field
            missing = sorted(
                a.name
                for a in attrs.fields(cls)  # type: ignore[arg-type]
                if a.default is attrs.NOTHING and a.name not in record
            )
            if not missing:
                raise InvalidOrderError("record", None, f"is not a valid {cls.__name__} ({exc})",
                                        order_id=oid) from None
            also = f" (so are {', '.join(map(repr, missing[1:]))})" if len(missing) > 1 else ""
            raise InvalidOrderError(missing[0], None, f"is required{also}",
                                    order_id=oid) from None


@attrs.frozen(kw_only=True)
class Offer(_Order):
    """A provider's offer of GPU capacity at an asking price.

    Attributes:
        id: unique order id.
        provider: the provider (an operator may post several offers).
        gpu_model: e.g. ``"H100"``.
        gpus: capacity in GPUs, >= 1.
        price: asking price in smallest currency units per GPU-hour, >= 0.
        region: e.g. ``"us-east"``.
        vram_gb: memory per GPU in GB.
        tags: attributes such as compliance (``"soc2"``), interconnect (``"nvlink"``) or
            auditor signatures (``"audited-by:foundry"``).
        submitted_at: sequence number or timestamp; earlier wins ties at equal price.
        tenants: tenants this offer serves; empty means any.
        exclude_tenants: tenants this offer never serves.
        cpu_per_gpu: CPU cores that come with each GPU (node resources, >= 0).
        ram_gb_per_gpu: RAM in GB that comes with each GPU.
        disk_gb_per_gpu: disk in GB that comes with each GPU.
        attributes: free-form properties (name -> str, int, bool or decimal string) that
            requests' constraints may test.
        constraints: an expression over the request's attributes and built-in fields
            (`auction.constraints`) every served request must satisfy; None: any.
    """

    _set_fields: ClassVar[tuple[str, ...]] = ("tags", "tenants", "exclude_tenants")

    id: str
    provider: str
    gpu_model: str
    gpus: int
    price: int
    region: str
    vram_gb: int
    tags: frozenset[str] = frozenset()
    submitted_at: int = 0
    tenants: frozenset[str] = frozenset()
    exclude_tenants: frozenset[str] = frozenset()
    cpu_per_gpu: int = 0
    ram_gb_per_gpu: int = 0
    disk_gb_per_gpu: int = 0
    attributes: Attributes = attrs.field(factory=Attributes)
    constraints: str | None = None

    def __attrs_post_init__(self) -> None:
        oid = _as_name(self.id, "id", None)
        s = object.__setattr__
        s(self, "id", oid)
        s(self, "provider", _as_name(self.provider, "provider", oid))
        s(self, "gpu_model", _as_name(self.gpu_model, "gpu_model", oid))
        s(self, "gpus", _as_int(self.gpus, "gpus", oid, 1, MAX_COUNT))
        s(self, "price", _as_int(self.price, "price", oid, 0, MAX_MONEY))
        s(self, "region", _as_name(self.region, "region", oid))
        s(self, "vram_gb", _as_int(self.vram_gb, "vram_gb", oid, 0, MAX_COUNT))
        s(self, "tags", _as_names(self.tags, "tags", oid))
        s(self, "submitted_at", _as_int(self.submitted_at, "submitted_at", oid, 0, _MAX_SEQ))
        s(self, "tenants", _as_names(self.tenants, "tenants", oid))
        s(self, "exclude_tenants", _as_names(self.exclude_tenants, "exclude_tenants", oid))
        for f in ("cpu_per_gpu", "ram_gb_per_gpu", "disk_gb_per_gpu"):
            s(self, f, _as_int(getattr(self, f), f, oid, 0, MAX_COUNT))
        s(self, "attributes", _as_attributes(self.attributes, oid, Offer))
        s(self, "constraints", _as_constraints(self.constraints, oid))


@attrs.frozen(kw_only=True)
class Request(_Order):
    """A tenant's request for GPUs, with the most it will pay.

    Attributes:
        id: unique order id.
        tenant: who asks.
        gpus: GPUs wanted, >= 1.
        max_price: the most the tenant pays, smallest units per GPU-hour, >= 0.
        gpu_models: acceptable GPU models; empty means any.
        regions: acceptable regions; empty means any.
        min_vram_gb: least memory per GPU.
        required_tags: tags every serving offer must carry.
        min_reputation: least provider reputation, in [0, 1].
        duration_hours: how long the GPUs are wanted, whole hours >= 1.
        divisible: False (default) means all GPUs from one offer; True allows splitting the
            request across offers in whole GPUs.
        cluster: True makes an all-or-nothing cluster request (io.net style): all its GPUs may
            come from several offers, but all of one provider in one region; the interconnect
            the cluster needs goes in ``required_tags``. Cannot be divisible. Mechanisms
            without cluster support serve it whole from one offer, which is also valid.
        submitted_at: sequence number or timestamp; earlier requests clear first.
        providers: providers the request accepts; empty means any.
        exclude_providers: providers the request never accepts.
        min_cpu_per_gpu: least CPU cores per GPU an offer must come with.
        min_ram_gb_per_gpu: least RAM in GB per GPU.
        min_disk_gb_per_gpu: least disk in GB per GPU.
        attributes: free-form properties offers' constraints may test.
        constraints: an expression over the offer's attributes and built-in fields
            (`auction.constraints`) every serving offer must satisfy; None: any.
    """

    _set_fields: ClassVar[tuple[str, ...]] = (
        "gpu_models", "regions", "required_tags", "providers", "exclude_providers"
    )

    id: str
    tenant: str
    gpus: int
    max_price: int
    gpu_models: frozenset[str] = frozenset()
    regions: frozenset[str] = frozenset()
    min_vram_gb: int = 0
    required_tags: frozenset[str] = frozenset()
    min_reputation: float = 0.0
    duration_hours: int = 1
    divisible: bool = False
    cluster: bool = False
    submitted_at: int = 0
    providers: frozenset[str] = frozenset()
    exclude_providers: frozenset[str] = frozenset()
    min_cpu_per_gpu: int = 0
    min_ram_gb_per_gpu: int = 0
    min_disk_gb_per_gpu: int = 0
    attributes: Attributes = attrs.field(factory=Attributes)
    constraints: str | None = None

    def __attrs_post_init__(self) -> None:
        oid = _as_name(self.id, "id", None)
        s = object.__setattr__
        s(self, "id", oid)
        s(self, "tenant", _as_name(self.tenant, "tenant", oid))
        s(self, "gpus", _as_int(self.gpus, "gpus", oid, 1, MAX_COUNT))
        s(self, "max_price", _as_int(self.max_price, "max_price", oid, 0, MAX_MONEY))
        s(self, "gpu_models", _as_names(self.gpu_models, "gpu_models", oid))
        s(self, "regions", _as_names(self.regions, "regions", oid))
        s(self, "min_vram_gb", _as_int(self.min_vram_gb, "min_vram_gb", oid, 0, MAX_COUNT))
        s(self, "required_tags", _as_names(self.required_tags, "required_tags", oid))
        rep: Any = self.min_reputation
        if isinstance(rep, bool) or not isinstance(rep, numbers.Real):
            raise InvalidOrderError(
                "min_reputation", rep, "must be a number in [0, 1]", order_id=oid
            )
        try:
            value = float(rep)
        except OverflowError:  # an int or Fraction too large for a float
            value = math.inf
        if not math.isfinite(value) or not 0.0 <= value <= 1.0:
            raise InvalidOrderError("min_reputation", rep, "must be in [0, 1]", order_id=oid)
        s(self, "min_reputation", value)
        s(self, "duration_hours", _as_int(self.duration_hours, "duration_hours", oid, 1, MAX_COUNT))
        if not isinstance(self.divisible, bool):
            raise InvalidOrderError("divisible", self.divisible, "must be a bool", order_id=oid)
        if not isinstance(self.cluster, bool):
            raise InvalidOrderError("cluster", self.cluster, "must be a bool", order_id=oid)
        if self.cluster and self.divisible:
            raise InvalidOrderError(
                "cluster", True, "a cluster request is all-or-nothing, so not divisible",
                order_id=oid,
            )
        s(self, "submitted_at", _as_int(self.submitted_at, "submitted_at", oid, 0, _MAX_SEQ))
        s(self, "providers", _as_names(self.providers, "providers", oid))
        s(self, "exclude_providers", _as_names(self.exclude_providers, "exclude_providers", oid))
        for f in ("min_cpu_per_gpu", "min_ram_gb_per_gpu", "min_disk_gb_per_gpu"):
            s(self, f, _as_int(getattr(self, f), f, oid, 0, MAX_COUNT))
        s(self, "attributes", _as_attributes(self.attributes, oid, Request))
        s(self, "constraints", _as_constraints(self.constraints, oid))


Order = Offer | Request
