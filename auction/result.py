"""`ClearingResult`: who serves whom, at what price, and how it went.

Like `scipy.optimize`'s results, a plain inspectable object with a `status` and a `message`.
Allocation columns are read-only numpy arrays, one row per (request, offer, GPUs) allocation,
sorted by request priority, then offer rank, so equal markets give equal results. Money is per
GPU-hour in the smallest currency unit; totals are exact Python ints.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from typing import Any, NoReturn

import attrs
import numpy as np
import numpy.typing as npt

from auction._arrays import readonly
from auction.errors import InvalidValueError
from auction.market import Market

__all__ = ["ClearingResult", "FrozenDict", "Status", "exact_dot"]

IntArray = npt.NDArray[np.int64]
StrArray = npt.NDArray[np.str_]


class Status(enum.StrEnum):
    """How a clearing ended."""

    #: Cleared as the mechanism specifies (optimal, for exact mechanisms).
    SUCCESS = "success"
    #: A valid allocation, but optimality was not proven (for example a solver gap).
    FEASIBLE = "feasible"
    #: The mechanism's ``time_limit`` ran out: the best valid allocation found by then, not
    #: proven optimal.
    TIME_LIMIT = "time_limit"
    #: No valid allocation was produced; the allocation columns are empty.
    FAILED = "failed"


def exact_dot(a: npt.ArrayLike, b: npt.ArrayLike) -> int:
    """Sum of a*b over int arrays, exact: int64 when it cannot overflow, else Python ints."""
    x = np.asarray(a, dtype=np.int64)
    y = np.asarray(b, dtype=np.int64)
    if len(x) == 0:
        return 0
    bound = int(np.abs(x).max()) * int(np.abs(y).max()) * len(x)
    if bound < 2**63:
        return int(np.dot(x, y))
    return sum(int(p) * int(q) for p, q in zip(x.tolist(), y.tolist(), strict=True))


def _row_payment(price: IntArray, gpus: IntArray) -> npt.NDArray[Any]:
    """price x gpus per row: int64 when it cannot overflow, else exact Python ints."""
    if len(price) == 0 or int(np.abs(price).max()) * int(gpus.max()) < 2**63:
        return price * gpus
    return np.array([p * k for p, k in zip(price.tolist(), gpus.tolist(), strict=True)],
                    dtype=object)


def _exact(values: npt.ArrayLike) -> npt.NDArray[Any]:
    """Row amounts as int64 when they fit, else as exact Python ints."""
    raw = np.asarray(values).reshape(-1)
    ints = [int(v) for v in raw.tolist()]
    if all(-(2**63) <= v < 2**63 for v in ints):
        return np.array(ints, dtype=np.int64)
    return np.array(ints, dtype=object)


_ro = readonly


class FrozenDict(Mapping[str, Any]):
    """A read-only mapping that pickles and deep-copies (unlike `types.MappingProxyType`)."""

    __slots__ = ("_data",)
    _data: dict[str, Any]

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        object.__setattr__(self, "_data", dict(data or {}))

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise TypeError("a FrozenDict is read-only")

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (self._data,))

    def __repr__(self) -> str:
        return repr(self._data)

    def __eq__(self, other: object) -> bool:
        return dict(self._data) == other if isinstance(other, Mapping) else NotImplemented

    __hash__ = None  # type: ignore[assignment]


def _frozen_map(m: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return m if isinstance(m, FrozenDict) else FrozenDict(m)


@attrs.frozen(eq=False)
class ClearingResult:
    """The outcome of clearing a market.

    Attributes:
        mechanism: registry name of the mechanism that cleared.
        payment: the payment rule used.
        status: how the clearing ended (`Status`).
        message: a human-readable account of the status.
        request_row, offer_row: snapshot rows of each allocation.
        request_id, offer_id, tenant, provider: names of each allocation's parties.
        gpus: GPUs allocated.
        unit_price: paid to the provider, per GPU-hour (``provider_payment // gpus``).
        tenant_price: paid by the tenant, per GPU-hour (``tenant_payment // gpus``; equal to
            `unit_price` unless the mechanism keeps a margin).
        provider_payment: paid to the provider for the row, per hour, exact. Equal to
            ``unit_price * gpus`` except where a mechanism pays whole-row amounts that are
            not a multiple of the GPUs (VCG bonuses): then the per-GPU price is rounded down
            and this column holds the exact amount.
        tenant_payment: paid by the tenant for the row, per hour, exact.
        unmatched_request_ids: requests that got nothing, in priority order.
        partial_request_ids, shortfall_gpus: divisible requests filled in part, and by how
            many GPUs they fell short.
        welfare: sum of (max_price - ask) x gpus over allocations, per hour.
        total_payment: what tenants pay in all, per hour (sum of tenant_payment).
        provider_revenue: what providers receive in all, per hour (sum of provider_payment).
        options: the options the mechanism ran with.
        diagnostics: mechanism-specific extras (duals, iteration counts, timings).
        duration_hours: each allocation's request ``duration_hours`` (what settlement needs
            to know how long a lease lasts); None when the result was not built from a market.
    """

    mechanism: str
    payment: str
    status: Status
    message: str
    request_row: IntArray
    offer_row: IntArray
    request_id: StrArray
    offer_id: StrArray
    tenant: StrArray
    provider: StrArray
    gpus: IntArray
    unit_price: IntArray
    tenant_price: IntArray
    provider_payment: npt.NDArray[Any]
    tenant_payment: npt.NDArray[Any]
    unmatched_request_ids: StrArray
    partial_request_ids: StrArray
    shortfall_gpus: IntArray
    welfare: int
    total_payment: int
    provider_revenue: int
    options: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_map)
    diagnostics: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_map)
    duration_hours: IntArray | None = None

    @classmethod
    def from_allocation(
        cls,
        market: Market,
        request_row: npt.ArrayLike,
        offer_row: npt.ArrayLike,
        gpus: npt.ArrayLike,
        unit_price: npt.ArrayLike,
        tenant_price: npt.ArrayLike | None = None,
        *,
        provider_payment: npt.ArrayLike | None = None,
        tenant_payment: npt.ArrayLike | None = None,
        mechanism: str,
        payment: str,
        status: Status = Status.SUCCESS,
        message: str = "",
        options: Mapping[str, Any] | None = None,
        diagnostics: Mapping[str, Any] | None = None,
    ) -> ClearingResult:
        """Build a result from allocation arrays over `market`'s rows.

        Rows are put in canonical order (request priority, then offer rank); parties' names,
        unmatched and partially filled requests, welfare and totals are derived here so that
        every mechanism reports them the same way. Row payments default to price x gpus;
        a mechanism that pays exact row amounts passes them and the per-GPU prices are
        derived from them (rounded down).
        """
        req = np.asarray(request_row, dtype=np.int64).reshape(-1)
        off = np.asarray(offer_row, dtype=np.int64).reshape(-1)
        g = np.asarray(gpus, dtype=np.int64).reshape(-1)
        up = np.asarray(unit_price, dtype=np.int64).reshape(-1)
        tp = up if tenant_price is None else np.asarray(tenant_price, dtype=np.int64).reshape(-1)
        n = len(req)
        pp = _row_payment(up, g) if provider_payment is None else _exact(provider_payment)
        tpay = _row_payment(tp, g) if tenant_payment is None else _exact(tenant_payment)
        if not (len(off) == len(g) == len(up) == len(tp) == len(pp) == len(tpay) == n):
            raise InvalidValueError(
                "allocation", {"request_row": n, "offer_row": len(off), "gpus": len(g)},
                "allocation columns must have equal lengths",
            )
        if provider_payment is not None:
            up = np.array([int(p) // int(k) for p, k in zip(pp, g, strict=True)], dtype=np.int64)
        if tenant_payment is not None:
            tp = np.array([int(p) // int(k) for p, k in zip(tpay, g, strict=True)], dtype=np.int64)
        o = np.lexsort((market.offer_rank[off], market.request_rank[req])) if n else req
        req, off, g, up, tp, pp, tpay = req[o], off[o], g[o], up[o], tp[o], pp[o], tpay[o]

        snap = market.snapshot
        rq, of = snap.requests, snap.offers
        parties = np.asarray(snap.parties if snap.parties else ("",), dtype=str)
        filled = np.zeros(market.n_requests, dtype=np.int64)
        np.add.at(filled, req, g)
        pr = market.request_order
        unmatched = pr[filled[pr] == 0]
        partial = pr[(filled[pr] > 0) & (filled[pr] < rq.gpus[pr])]
        surplus = rq.max_price[req] - of.price[off]
        return cls(
            mechanism=mechanism,
            payment=payment,
            status=Status(status),
            message=message,
            request_row=_ro(req),
            offer_row=_ro(off),
            request_id=_ro(rq.id[req]),
            offer_id=_ro(of.id[off]),
            tenant=_ro(parties[rq.tenant[req]] if n else np.empty(0, dtype=str)),
            provider=_ro(parties[of.provider[off]] if n else np.empty(0, dtype=str)),
            gpus=_ro(g),
            unit_price=_ro(up),
            tenant_price=_ro(tp.copy() if tp is up else tp),
            provider_payment=_ro(pp),
            tenant_payment=_ro(tpay.copy() if tpay is pp else tpay),
            unmatched_request_ids=_ro(rq.id[unmatched]),
            partial_request_ids=_ro(rq.id[partial]),
            shortfall_gpus=_ro(rq.gpus[partial] - filled[partial]),
            welfare=exact_dot(surplus, g),
            total_payment=sum(tpay.tolist()),
            provider_revenue=sum(pp.tolist()),
            options=options,
            diagnostics=diagnostics,
            duration_hours=_ro(rq.duration_hours[req]),
        )

    @property
    def success(self) -> bool:
        """True when the mechanism cleared as it specifies, optimal where it is exact (status
        ``success``); False for anything not proven (``feasible``, ``time_limit``) and for
        ``failed``. As `scipy.optimize.milp`: stopped by a limit is not a success."""
        return self.status is Status.SUCCESS

    @property
    def valid(self) -> bool:
        """True when the allocation columns hold a valid allocation (any status but
        ``failed``)."""
        return self.status is not Status.FAILED

    @property
    def requested_payment(self) -> str:
        """The payment rule the mechanism was asked for (``options["payment"]``), which may
        differ from `payment`, the rule it applied (see `payment_downgraded`)."""
        asked = self.options.get("payment")
        return asked if isinstance(asked, str) else self.payment

    @property
    def payment_downgraded(self) -> bool:
        """True when the rule applied is not the one asked for: e.g. ``gang`` asked for
        ``uniform`` prices that do not exist pays as bid, and says so in `message`."""
        return self.requested_payment != self.payment

    def __getstate__(self) -> dict[str, Any]:
        return {a.name: getattr(self, a.name) for a in attrs.fields(type(self))}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickled and deep-copied results keep read-only columns."""
        for name, value in state.items():
            if isinstance(value, np.ndarray):
                value = _ro(value)
            object.__setattr__(self, name, value)

    @property
    def n_allocations(self) -> int:
        return len(self.request_row)

    def __len__(self) -> int:
        return self.n_allocations

    @property
    def gpus_allocated(self) -> int:
        return int(self.gpus.sum())

    def to_records(self) -> list[dict[str, Any]]:
        """One dict per allocation, in the result's canonical order."""
        cols = (
            "request_id", "offer_id", "tenant", "provider", "gpus", "unit_price", "tenant_price"
        )
        lists = [getattr(self, c).tolist() for c in cols]
        return [dict(zip(cols, row, strict=True)) for row in zip(*lists, strict=True)]

    def to_dict(self) -> dict[str, Any]:
        """The whole result as JSON-ready data."""
        return {
            "mechanism": self.mechanism,
            "payment": self.payment,
            "status": str(self.status),
            "message": self.message,
            "allocations": [
                {**rec, "provider_payment": p, "tenant_payment": t}
                for rec, p, t in zip(
                    self.to_records(),
                    self.provider_payment.tolist(),
                    self.tenant_payment.tolist(),
                    strict=True,
                )
            ],
            "unmatched_request_ids": self.unmatched_request_ids.tolist(),
            "partial": dict(
                zip(self.partial_request_ids.tolist(), self.shortfall_gpus.tolist(), strict=True)
            ),
            "welfare": self.welfare,
            "total_payment": self.total_payment,
            "provider_revenue": self.provider_revenue,
            "options": {k: _jsonable(v) for k, v in self.options.items()},
        }

    def summary(self) -> str:
        """A few lines for people: status, counts, GPUs, welfare and money."""
        return "\n".join(
            [
                f"{self.mechanism} ({self.payment}): {self.status}"
                + (f" - {self.message}" if self.message else ""),
                f"  allocations: {self.n_allocations}, GPUs: {self.gpus_allocated}, "
                f"unmatched requests: {len(self.unmatched_request_ids)}, "
                f"partially filled: {len(self.partial_request_ids)}",
                f"  welfare/h: {self.welfare}, tenants pay/h: {self.total_payment}, "
                f"providers receive/h: {self.provider_revenue}",
            ]
        )

    def __repr__(self) -> str:
        return (
            f"ClearingResult(mechanism={self.mechanism!r}, payment={self.payment!r}, "
            f"status={self.status.value!r}, allocations={self.n_allocations}, "
            f"welfare={self.welfare})"
        )


def _jsonable(v: Any) -> Any:
    if isinstance(v, str | int | float | bool) or v is None:
        return v
    return repr(v)
