"""The order book: offers and requests held as numpy columns.

Strings (providers, tenants, GPU models, regions) are interned to integer codes and sets
(tags, acceptable models and regions) are stored as bitsets over those codes, so the market
and the mechanisms read plain arrays and never loop over Python objects.

`OrderBook` is mutable; `OrderBook.snapshot()` returns an immutable `BookSnapshot` in O(1) by
sharing the book's arrays and copying them on the book's next write (copy on write).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal, cast

import attrs
import numpy as np
import numpy.typing as npt

from auction.errors import DuplicateOrderError, InvalidOrderError, UnknownOrderError
from auction.orders import Offer, Order, Request

__all__ = ["SCHEMA", "BookSnapshot", "OrderBook", "Vocabulary"]

#: Schema tag written into (and required from) every JSON book.
SCHEMA = "auction.book/1"

IntArray = npt.NDArray[np.int64]
Bitset = npt.NDArray[np.uint64]

_OFFER_SCALARS: dict[str, type] = {
    "provider": np.int32,
    "gpu_model": np.int32,
    "region": np.int32,
    "gpus": np.int64,
    "price": np.int64,
    "vram_gb": np.int64,
    "submitted_at": np.int64,
}
_REQUEST_SCALARS: dict[str, type] = {
    "tenant": np.int32,
    "gpus": np.int64,
    "max_price": np.int64,
    "any_model": np.bool_,
    "any_region": np.bool_,
    "min_vram_gb": np.int64,
    "min_reputation": np.float64,
    "duration_hours": np.int64,
    "divisible": np.bool_,
    "cluster": np.bool_,
    "submitted_at": np.int64,
}
# bitset column -> vocabulary it indexes
_OFFER_BITSETS = {"tags": "tags"}
_REQUEST_BITSETS = {"gpu_models": "models", "regions": "regions", "required_tags": "tags"}


class Vocabulary:
    """Append-only interning of strings to dense integer codes."""

    __slots__ = ("_codes", "_names")

    def __init__(self, names: Iterable[str] = ()) -> None:
        self._names: list[str] = []
        self._codes: dict[str, int] = {}
        for n in names:
            self.code(n)

    def code(self, name: str) -> int:
        """Return the code of `name`, adding it if new."""
        c = self._codes.get(name)
        if c is None:
            c = len(self._names)
            self._codes[name] = c
            self._names.append(name)
        return c

    def lookup(self, name: str) -> int:
        """Return the code of `name`, or -1 if it was never seen."""
        return self._codes.get(name, -1)

    def names(self) -> tuple[str, ...]:
        return tuple(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def copy(self) -> Vocabulary:
        v = Vocabulary()
        v._names = list(self._names)
        v._codes = dict(self._codes)
        return v


def _words(n_names: int) -> int:
    return max(1, (n_names + 63) // 64)


def bitset_of(codes: Iterable[int], words: int) -> Bitset:
    """Pack integer codes into a bitset of `words` uint64 words."""
    out = np.zeros(words, dtype=np.uint64)
    for c in codes:
        out[c >> 6] |= np.uint64(1) << np.uint64(c & 63)
    return out


class _Table:
    """Growable, copy-on-write columns for one side of the book."""

    def __init__(self, scalars: Mapping[str, type], bitsets: Mapping[str, str]) -> None:
        self.scalars = dict(scalars)
        self.bitsets = dict(bitsets)
        self.n = 0
        self.cap = 16
        self.ids: list[str] = []
        self.objects: list[Order] = []
        self.cols: dict[str, np.ndarray] = {
            k: np.zeros(self.cap, dtype=t) for k, t in scalars.items()
        }
        for k in bitsets:
            self.cols[k] = np.zeros((self.cap, 1), dtype=np.uint64)
        self.shared = False
        self.ids_array: np.ndarray | None = None

    def own(self) -> None:
        """Copy everything a snapshot may share before the first write after it."""
        if self.shared:
            self.cols = {k: v.copy() for k, v in self.cols.items()}
            self.ids = list(self.ids)
            self.objects = list(self.objects)
            self.shared = False

    def reserve(self, extra: int, widths: Mapping[str, int]) -> None:
        need = self.n + extra
        if need > self.cap:
            cap = max(need, 2 * self.cap)
            for k, v in self.cols.items():
                grown = np.zeros((cap, *v.shape[1:]), dtype=v.dtype)
                grown[: self.n] = v[: self.n]
                self.cols[k] = grown
            self.cap = cap
        for k, vocab in self.bitsets.items():
            w = widths[vocab]
            v = self.cols[k]
            if v.shape[1] < w:
                self.cols[k] = np.pad(v, ((0, 0), (0, w - v.shape[1])))

    def write(self, i: int, row: Mapping[str, Any], order: Order) -> None:
        self.ids_array = None
        for k, v in row.items():
            self.cols[k][i] = v
        if i == self.n:
            self.ids.append(order.id)
            self.objects.append(order)
            self.n += 1
        else:
            self.ids[i] = order.id
            self.objects[i] = order

    def swap_remove(self, i: int) -> str | None:
        """Remove row `i` by moving the last row into it; return the moved row's id."""
        self.ids_array = None
        last = self.n - 1
        moved = None
        if i != last:
            for v in self.cols.values():
                v[i] = v[last]
            self.ids[i] = self.ids[last]
            self.objects[i] = self.objects[last]
            moved = self.ids[i]
        self.ids.pop()
        self.objects.pop()
        self.n -= 1
        return moved

    def view(self) -> dict[str, np.ndarray]:
        out = {}
        for k, v in self.cols.items():
            a = v[: self.n]
            a.flags.writeable = False
            out[k] = a
        if self.ids_array is None:  # rebuilt only after a write
            ids = np.array(self.ids, dtype=str) if self.n else np.empty(0, dtype="<U1")
            ids.flags.writeable = False
            self.ids_array = ids
        out["id"] = self.ids_array
        self.shared = True
        return out


@attrs.frozen(eq=False)
class OfferColumns:
    """Offers as columns; row i of every array is one offer."""

    id: npt.NDArray[np.str_]
    provider: npt.NDArray[np.int32]
    gpu_model: npt.NDArray[np.int32]
    region: npt.NDArray[np.int32]
    gpus: IntArray
    price: IntArray
    vram_gb: IntArray
    submitted_at: IntArray
    tags: Bitset

    def __len__(self) -> int:
        return len(self.id)


@attrs.frozen(eq=False)
class RequestColumns:
    """Requests as columns; set-valued fields are bitsets with an any-flag for 'empty'."""

    id: npt.NDArray[np.str_]
    tenant: npt.NDArray[np.int32]
    gpus: IntArray
    max_price: IntArray
    any_model: npt.NDArray[np.bool_]
    gpu_models: Bitset
    any_region: npt.NDArray[np.bool_]
    regions: Bitset
    min_vram_gb: IntArray
    required_tags: Bitset
    min_reputation: npt.NDArray[np.float64]
    duration_hours: IntArray
    divisible: npt.NDArray[np.bool_]
    cluster: npt.NDArray[np.bool_]
    submitted_at: IntArray

    def __len__(self) -> int:
        return len(self.id)


@attrs.frozen(eq=False)
class BookSnapshot:
    """An immutable view of a book at one moment: columns, vocabularies and the orders.

    Attributes:
        offers: offer columns.
        requests: request columns.
        parties: names behind the provider and tenant codes.
        models: names behind GPU model codes (and request model bitsets).
        regions: names behind region codes.
        tags: names behind tag bits.
    """

    offers: OfferColumns
    requests: RequestColumns
    parties: tuple[str, ...]
    models: tuple[str, ...]
    regions: tuple[str, ...]
    tags: tuple[str, ...]
    _offer_objects: Sequence[Offer] = attrs.field(alias="offer_objects", repr=False)
    _request_objects: Sequence[Request] = attrs.field(alias="request_objects", repr=False)

    @property
    def n_offers(self) -> int:
        return len(self.offers)

    @property
    def n_requests(self) -> int:
        return len(self.requests)

    def offer(self, row: int) -> Offer:
        """The `Offer` behind column row `row`."""
        return self._offer_objects[row]

    def request(self, row: int) -> Request:
        """The `Request` behind column row `row`."""
        return self._request_objects[row]

    def offer_list(self) -> list[Offer]:
        """All offers in row order."""
        return list(self._offer_objects)

    def request_list(self) -> list[Request]:
        """All requests in row order."""
        return list(self._request_objects)

    def to_records(self) -> dict[str, list[dict[str, Any]]]:
        """Offers and requests as dicts, each side sorted by (submitted_at, id)."""
        key = _priority_key
        return {
            "offers": [o.to_record() for o in sorted(self._offer_objects, key=key)],
            "requests": [r.to_record() for r in sorted(self._request_objects, key=key)],
        }

    def to_json(self, *, indent: int | None = None) -> str:
        """The book as JSON in the `auction.book/1` schema (see docs/concepts.md)."""
        return json.dumps({"schema": SCHEMA, **self.to_records()}, indent=indent)


def _priority_key(order: Order) -> tuple[int, str]:
    return (order.submitted_at, order.id)


class OrderBook:
    """A mutable book of offers and requests, stored as numpy columns.

    Order ids share one namespace across offers and requests. Every operation validates fully
    before it writes: a duplicate or unknown id raises a typed error and leaves the book as it
    was.
    """

    def __init__(self, orders: Iterable[Order] = ()) -> None:
        self._offers = _Table(_OFFER_SCALARS, _OFFER_BITSETS)
        self._requests = _Table(_REQUEST_SCALARS, _REQUEST_BITSETS)
        self._where: dict[str, tuple[Literal["offer", "request"], int]] = {}
        self._vocab = {k: Vocabulary() for k in ("parties", "models", "regions", "tags")}
        self._shared = False
        self.add_many(orders)

    # -- reading ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, order_id: object) -> bool:
        return order_id in self._where

    def __iter__(self) -> Iterator[Order]:
        yield from self._offers.objects
        yield from self._requests.objects

    def __repr__(self) -> str:
        return f"OrderBook({self.n_offers} offers, {self.n_requests} requests)"

    @property
    def n_offers(self) -> int:
        return self._offers.n

    @property
    def n_requests(self) -> int:
        return self._requests.n

    def get(self, order_id: str) -> Order:
        """The order with this id; `UnknownOrderError` if there is none."""
        side, row = self._locate(order_id)
        table = self._offers if side == "offer" else self._requests
        return table.objects[row]

    def offers(self) -> list[Offer]:
        return cast(list[Offer], list(self._offers.objects))

    def requests(self) -> list[Request]:
        return cast(list[Request], list(self._requests.objects))

    # -- writing ------------------------------------------------------------------------
    def add(self, order: Order) -> None:
        """Add one offer or request."""
        self.add_many((order,))

    def add_many(self, orders: Iterable[Order]) -> None:
        """Add several orders at once: all of them, or (on any error) none."""
        batch = list(orders)
        seen: set[str] = set()
        for o in batch:
            if not isinstance(o, Offer | Request):
                raise InvalidOrderError("order", o, "must be an Offer or a Request")
            if o.id in self._where or o.id in seen:
                raise DuplicateOrderError(o.id)
            seen.add(o.id)
        if not batch:
            return
        self._own()
        offers = [o for o in batch if isinstance(o, Offer)]
        requests = [o for o in batch if isinstance(o, Request)]
        rows_o = [self._offer_row(o) for o in offers]
        rows_r = [self._request_row(r) for r in requests]
        widths = self._widths()
        self._offers.reserve(len(offers), widths)
        self._requests.reserve(len(requests), widths)
        for o, row in zip(offers, rows_o, strict=True):
            self._where[o.id] = ("offer", self._offers.n)
            self._offers.write(self._offers.n, self._pad(row, widths), o)
        for r, row in zip(requests, rows_r, strict=True):
            self._where[r.id] = ("request", self._requests.n)
            self._requests.write(self._requests.n, self._pad(row, widths), r)

    def cancel(self, order_id: str) -> Order:
        """Remove an order by id and return it."""
        side, row = self._locate(order_id)
        self._own()
        table = self._offers if side == "offer" else self._requests
        order = table.objects[row]
        moved = table.swap_remove(row)
        del self._where[order_id]
        if moved is not None:
            self._where[moved] = (side, row)
        return order

    def amend(self, order_id: str, **changes: Any) -> Order:
        """Replace fields of an order (not its id or side) and return the new order.

        The amended order is validated in full before the book changes.
        """
        side, row = self._locate(order_id)
        if "id" in changes and changes["id"] != order_id:
            raise InvalidOrderError("id", changes["id"], "cannot be amended", order_id=order_id)
        table = self._offers if side == "offer" else self._requests
        old = table.objects[row]
        names = {a.name for a in attrs.fields(type(old))}
        for k, v in changes.items():
            if k not in names:
                raise InvalidOrderError(k, v, f"is not a field of {type(old).__name__}",
                                        order_id=order_id)
        new = attrs.evolve(old, **changes)
        self._own()
        built = self._offer_row(new) if isinstance(new, Offer) else self._request_row(new)
        widths = self._widths()
        self._offers.reserve(0, widths)
        self._requests.reserve(0, widths)
        table.write(row, self._pad(built, widths), new)
        return new

    def snapshot(self) -> BookSnapshot:
        """An immutable view of the book now, in O(1): arrays are shared until the next write."""
        o = self._offers.view()
        r = self._requests.view()
        self._shared = True
        v = self._vocab
        return BookSnapshot(
            offers=OfferColumns(**o),
            requests=RequestColumns(**r),
            parties=v["parties"].names(),
            models=v["models"].names(),
            regions=v["regions"].names(),
            tags=v["tags"].names(),
            offer_objects=cast(Sequence[Offer], self._offers.objects),
            request_objects=cast(Sequence[Request], self._requests.objects),
        )

    # -- records and JSON ---------------------------------------------------------------
    @classmethod
    def from_records(
        cls,
        offers: Iterable[Mapping[str, Any] | Offer] = (),
        requests: Iterable[Mapping[str, Any] | Request] = (),
    ) -> OrderBook:
        """Build a book from dicts (as `to_records` writes them) or order objects.

        A bad record raises `InvalidOrderError` naming its id, or its position
        (``offers[3]``) when it has no usable id.
        """
        built: list[Order] = []
        for side, kind, records in (("offers", Offer, offers), ("requests", Request, requests)):
            for i, rec in enumerate(records):
                if isinstance(rec, Offer | Request):
                    if not isinstance(rec, kind):
                        raise InvalidOrderError(side, rec, f"{side}[{i}] is not a {kind.__name__}")
                    built.append(rec)
                    continue
                try:
                    built.append(kind.from_record(rec))
                except InvalidOrderError as e:
                    raise InvalidOrderError(
                        e.field, e.value, e.reason, order_id=e.order_id or f"{side}[{i}]"
                    ) from None
        return cls(built)

    def to_records(self) -> dict[str, list[dict[str, Any]]]:
        """Offers and requests as dicts, each side sorted by (submitted_at, id)."""
        return self.snapshot().to_records()

    def to_json(self, *, indent: int | None = None) -> str:
        """The book as JSON in the `auction.book/1` schema."""
        return self.snapshot().to_json(indent=indent)

    @classmethod
    def from_json(cls, text: str | bytes) -> OrderBook:
        """Read a book written by `to_json`; errors name the offending order and field."""
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError, nesting
            raise InvalidOrderError("json", str(e), "is not valid JSON") from None
        if not isinstance(data, dict):
            raise InvalidOrderError("json", type(data).__name__, "top level must be an object")
        if data.get("schema") != SCHEMA:
            raise InvalidOrderError("schema", data.get("schema"), f"must be {SCHEMA!r}")
        extra = sorted(set(data) - {"schema", "offers", "requests"})
        if extra:
            raise InvalidOrderError(extra[0], data[extra[0]], "is not a key of a book")
        for side in ("offers", "requests"):
            if not isinstance(data.get(side, []), list):
                raise InvalidOrderError(side, data[side], "must be a list")
        return cls.from_records(data.get("offers", []), data.get("requests", []))

    @classmethod
    def from_dataframe(cls, offers: Any = None, requests: Any = None) -> OrderBook:
        """Build a book from pandas DataFrames, one row per order (needs pandas).

        Columns are the order fields; set-valued columns hold lists, sets or tuples. A missing
        value (None, NaN, ``pd.NA``) means the field is absent: its default (the empty set for
        set-valued fields), or an error naming the field if it is required. Integer columns
        with missing values need a nullable integer dtype (``"Int64"``): floats are refused.
        """
        try:
            import pandas as pd
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("OrderBook.from_dataframe needs pandas: pip install pandas") from e

        def records(df: Any) -> list[dict[str, Any]]:
            if df is None:
                return []
            if not isinstance(df, pd.DataFrame):
                raise InvalidOrderError("dataframe", type(df).__name__, "must be a DataFrame")
            out = []
            for rec in df.to_dict(orient="records"):
                clean = {}
                for k, v in rec.items():
                    collection = isinstance(v, list | tuple | set | frozenset | np.ndarray)
                    if not collection and pd.isna(v) is True:
                        continue  # absent: the field's default, or "is required"
                    if isinstance(v, np.generic):
                        v = v.item()
                    clean[str(k)] = v
                out.append(clean)
            return out

        return cls.from_records(records(offers), records(requests))

    # -- internals ----------------------------------------------------------------------
    def _locate(self, order_id: str) -> tuple[Literal["offer", "request"], int]:
        try:
            return self._where[order_id]
        except (KeyError, TypeError):
            raise UnknownOrderError(order_id) from None

    def _own(self) -> None:
        if self._shared:
            self._offers.own()
            self._requests.own()
            self._where = dict(self._where)
            self._vocab = {k: v.copy() for k, v in self._vocab.items()}
            self._shared = False

    def _widths(self) -> dict[str, int]:
        return {k: _words(len(v)) for k, v in self._vocab.items()}

    def _codes(self, vocab: str, names: Iterable[str]) -> list[int]:
        v = self._vocab[vocab]
        return [v.code(n) for n in sorted(names)]

    def _offer_row(self, o: Offer) -> dict[str, Any]:
        v = self._vocab
        return {
            "provider": v["parties"].code(o.provider),
            "gpu_model": v["models"].code(o.gpu_model),
            "region": v["regions"].code(o.region),
            "gpus": o.gpus,
            "price": o.price,
            "vram_gb": o.vram_gb,
            "submitted_at": o.submitted_at,
            "tags": self._codes("tags", o.tags),
        }

    def _request_row(self, r: Request) -> dict[str, Any]:
        return {
            "tenant": self._vocab["parties"].code(r.tenant),
            "gpus": r.gpus,
            "max_price": r.max_price,
            "any_model": not r.gpu_models,
            "gpu_models": self._codes("models", r.gpu_models),
            "any_region": not r.regions,
            "regions": self._codes("regions", r.regions),
            "min_vram_gb": r.min_vram_gb,
            "required_tags": self._codes("tags", r.required_tags),
            "min_reputation": r.min_reputation,
            "duration_hours": r.duration_hours,
            "divisible": r.divisible,
            "cluster": r.cluster,
            "submitted_at": r.submitted_at,
        }

    @staticmethod
    def _pad(row: dict[str, Any], widths: Mapping[str, int]) -> dict[str, Any]:
        vocab_of = {**_OFFER_BITSETS, **_REQUEST_BITSETS}
        out = dict(row)
        for k, vocab in vocab_of.items():
            if k in out:
                out[k] = bitset_of(out[k], widths[vocab])
        return out
