"""The order book: offers and requests held as numpy columns.

Strings (providers, tenants, GPU models, regions, tags) are interned to integer codes and sets
(tags, acceptable models and regions, provider and tenant lists) are stored as CSR lists of
those codes (`CodeLists`), whose size grows with the names an order lists, never with the
vocabulary, so the market and the mechanisms read plain arrays and never loop over Python
objects. `OrderBook.from_columns` loads whole columns at once without building an order
object per row; `BookSnapshot.to_columns` (and pandas / arrow) writes them back.

`OrderBook` is mutable; `OrderBook.snapshot()` returns an immutable `BookSnapshot` in O(1) by
sharing the book's arrays and copying them on the book's next write (copy on write).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import operator
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal, cast, overload

import attrs
import numpy as np
import numpy.typing as npt

from auction._formats import read_version
from auction.errors import (
    DuplicateOrderError,
    InvalidOrderError,
    MissingDependencyError,
    UnknownBookSchemaError,
    UnknownOrderError,
)
from auction.money import MAX_MONEY
from auction.orders import MAX_COUNT, Attributes, Offer, Order, Request, _as_name

__all__ = [
    "FORMAT",
    "SCHEMA",
    "VERSION",
    "BookSnapshot",
    "CodeLists",
    "ListColumn",
    "OfferColumns",
    "OrderBook",
    "RequestColumns",
    "Vocabulary",
]

#: The ``"format"`` key of every JSON book this version writes.
FORMAT = "auction.book"
#: The JSON book format version written; every earlier version still reads.
VERSION = 2
#: Format 1's header (``{"schema": "auction.book/1"}``), still read.
SCHEMA = "auction.book/1"

IntArray = npt.NDArray[np.int64]

_OFFER_SCALARS: dict[str, type] = {
    "provider": np.int32,
    "gpu_model": np.int32,
    "region": np.int32,
    "gpus": np.int64,
    "price": np.int64,
    "vram_gb": np.int64,
    "submitted_at": np.int64,
    "cpu_per_gpu": np.int64,
    "ram_gb_per_gpu": np.int64,
    "disk_gb_per_gpu": np.int64,
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
    "min_cpu_per_gpu": np.int64,
    "min_ram_gb_per_gpu": np.int64,
    "min_disk_gb_per_gpu": np.int64,
}
# list column -> vocabulary its codes index
_OFFER_LISTS = {"tags": "tags", "tenants": "parties", "exclude_tenants": "parties"}
_REQUEST_LISTS = {
    "gpu_models": "models",
    "regions": "regions",
    "required_tags": "tags",
    "providers": "parties",
    "exclude_providers": "parties",
}
# per-row Python values (free-form): attributes mappings and constraint texts
_EXTRAS = ("attributes", "constraints")


#: Columns holding party codes, per side (renumbered by `BookSnapshot.take`).
_PARTY_COLUMNS = frozenset({"provider", "tenant", "providers", "exclude_providers", "tenants",
                            "exclude_tenants"})

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

    def code_many(self, names: Sequence[str]) -> IntArray:
        """The codes of `names` (adding new ones in order), in bulk: for column ingest."""
        codes = self._codes
        new = [n for n in dict.fromkeys(names) if n not in codes]
        codes.update(zip(new, range(len(self._names), len(self._names) + len(new)),
                         strict=True))
        self._names.extend(new)
        return np.fromiter(map(codes.__getitem__, names), dtype=np.int64, count=len(names))

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


@attrs.frozen(eq=False)
class CodeLists:
    """One set-valued column as CSR: row i's codes are ``codes[indptr[i]:indptr[i+1]]``,
    sorted and distinct. Its width never depends on the vocabulary size."""

    indptr: IntArray
    codes: IntArray

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def row(self, i: int) -> IntArray:
        """The codes of row `i`."""
        return self.codes[self.indptr[i] : self.indptr[i + 1]]

    @property
    def lengths(self) -> IntArray:
        """Number of codes per row."""
        return np.diff(self.indptr)

    @property
    def owner(self) -> IntArray:
        """The row of each code: ``repeat(arange(len(self)), lengths)``."""
        return np.repeat(np.arange(len(self), dtype=np.int64), self.lengths)

    @property
    def nbytes(self) -> int:
        return int(self.indptr.nbytes + self.codes.nbytes)

    def copy(self) -> CodeLists:
        """A copy with its own (read-only) arrays."""
        return CodeLists(_frozen(self.indptr.copy()), _frozen(self.codes.copy()))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CodeLists):
            return NotImplemented
        return bool(np.array_equal(self.indptr, other.indptr)
                    and np.array_equal(self.codes, other.codes))

    __hash__ = None  # type: ignore[assignment]

    @staticmethod
    def from_rows(rows: Sequence[tuple[int, ...]]) -> CodeLists:
        """CSR of a sequence of sorted code tuples."""
        lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        codes = np.fromiter(
            itertools.chain.from_iterable(rows), dtype=np.int64, count=int(indptr[-1])
        )
        return CodeLists(_frozen(indptr), _frozen(codes))

    def to_rows(self) -> list[tuple[int, ...]]:
        """The rows as tuples of codes."""
        flat, ip = self.codes.tolist(), self.indptr.tolist()
        return [tuple(flat[a:b]) for a, b in itertools.pairwise(ip)]

    def take(self, rows: IntArray) -> CodeLists:
        """The lists of the given rows, in that order."""
        lengths = self.lengths[rows]
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        idx = _gather(self.indptr[:-1][rows], lengths)
        return CodeLists(_frozen(indptr), _frozen(self.codes[idx]))


def _gather(starts: IntArray, lengths: IntArray) -> IntArray:
    total = int(lengths.sum())
    first = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(starts, lengths) + np.arange(total, dtype=np.int64) - first


def _frozen(a: Any) -> Any:
    a.flags.writeable = False
    return a


_EMPTY_ROW: tuple[int, ...] = ()


class _Table:
    """Growable, copy-on-write columns for one side of the book.

    Scalars live in numpy arrays with spare capacity; set-valued columns as per-row code
    tuples (cheap single-row writes) or as CSR (built in bulk by `from_columns`), whichever
    was written last, converted lazily; order objects are built lazily for bulk-loaded rows.
    """

    def __init__(self, scalars: Mapping[str, type], lists: Mapping[str, str]) -> None:
        self.scalars = dict(scalars)
        self.list_vocab = dict(lists)
        self.n = 0
        self.cap = 16
        self._ids: list[str] | None = []
        self.objects: list[Order | None] = []
        self.cols: dict[str, np.ndarray] = {
            k: np.zeros(self.cap, dtype=t) for k, t in scalars.items()
        }
        self.rows: dict[str, list[tuple[int, ...]] | None] = {k: [] for k in lists}
        self.csr: dict[str, CodeLists | None] = {k: None for k in lists}
        self.extras: dict[str, list[Any]] = {k: [] for k in _EXTRAS}
        self.shared = False
        self.ids_array: np.ndarray | None = None

    @property
    def ids(self) -> list[str]:
        """The row ids (listed from `ids_array` on first use after a bulk load)."""
        if self._ids is None:
            assert self.ids_array is not None
            self._ids = self.ids_array.tolist()
        return self._ids

    @ids.setter
    def ids(self, ids: list[str]) -> None:
        self._ids = ids

    def _forget_ids_array(self) -> None:
        """Before a write: the ids list becomes the only copy."""
        self._ids = self.ids
        self.ids_array = None

    def own(self) -> None:
        """Copy everything a snapshot may share before the first write after it."""
        if self.shared:
            self.cols = {k: v.copy() for k, v in self.cols.items()}
            self.ids = list(self.ids)
            self.objects = list(self.objects)
            self.rows = {k: None if v is None else list(v) for k, v in self.rows.items()}
            self.extras = {k: list(v) for k, v in self.extras.items()}
            self.shared = False

    def _row_lists(self, k: str) -> list[tuple[int, ...]]:
        rows = self.rows[k]
        if rows is None:
            csr = self.csr[k]
            assert csr is not None
            rows = self.rows[k] = csr.to_rows()
        self.csr[k] = None  # about to change
        return rows

    def reserve(self, extra: int) -> None:
        need = self.n + extra
        if need > self.cap:
            cap = max(need, 2 * self.cap)
            for k, v in self.cols.items():
                grown = np.zeros((cap, *v.shape[1:]), dtype=v.dtype)
                grown[: self.n] = v[: self.n]
                self.cols[k] = grown
            self.cap = cap

    def write(self, i: int, row: Mapping[str, Any], order: Order) -> None:
        self._forget_ids_array()
        for k, v in row.items():
            if k in self.rows:
                rows = self._row_lists(k)
                if i == self.n:
                    rows.append(v)
                else:
                    rows[i] = v
            elif k in self.extras:
                if i == self.n:
                    self.extras[k].append(v)
                else:
                    self.extras[k][i] = v
            else:
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
        self._forget_ids_array()
        last = self.n - 1
        moved = None
        lists = [self._row_lists(k) for k in self.rows]
        if i != last:
            for v in self.cols.values():
                v[i] = v[last]
            for seq in (*lists, *self.extras.values()):
                seq[i] = seq[last]
            self.ids[i] = self.ids[last]
            self.objects[i] = self.objects[last]
            moved = self.ids[i]
        for seq in (*lists, *self.extras.values()):
            seq.pop()
        self.ids.pop()
        self.objects.pop()
        self.n -= 1
        return moved

    def load(self, cols: Mapping[str, np.ndarray], lists: Mapping[str, CodeLists],
             extras: Mapping[str, list[Any]], ids: Sequence[str],
             ids_array: np.ndarray | None = None) -> None:
        """Replace an empty table by bulk columns (`OrderBook.from_columns`); `ids_array`,
        when given, is the ids as a read-only numpy str array the table keeps (and lists
        only when needed)."""
        n = len(ids)
        self.cols = {k: np.ascontiguousarray(cols[k], dtype=t) for k, t in self.scalars.items()}
        self.cap = n
        self.n = n
        self._ids = None if ids_array is not None else list(ids)
        self.objects = [None] * n
        self.rows = {k: None for k in self.list_vocab}
        self.csr = dict(lists)
        self.extras = {k: list(extras[k]) for k in _EXTRAS}
        self.ids_array = ids_array

    def view(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in self.cols.items():
            a = v[: self.n]
            a.flags.writeable = False
            out[k] = a
        for k in self.rows:
            csr = self.csr[k]
            if csr is None:  # rebuilt only after a write
                rows = self.rows[k]
                assert rows is not None
                csr = self.csr[k] = CodeLists.from_rows(rows)
            out[k] = csr
        for k, values in self.extras.items():
            col = np.empty(len(values), dtype=object)
            col[:] = values
            col.flags.writeable = False
            out[k] = col
        if self.ids_array is None:  # rebuilt only after a write
            ids = np.array(self.ids, dtype=str) if self.n else np.empty(0, dtype="<U1")
            ids.flags.writeable = False
            self.ids_array = ids
        out["id"] = self.ids_array
        self.shared = True
        return out


@attrs.frozen(eq=False)
class OfferColumns:
    """Offers as columns; row i of every array is one offer. Set-valued fields are
    `CodeLists` of vocabulary codes; ``attributes`` and ``constraints`` hold per-row values
    (an empty mapping / None when unset)."""

    id: npt.NDArray[np.str_]
    provider: npt.NDArray[np.int32]
    gpu_model: npt.NDArray[np.int32]
    region: npt.NDArray[np.int32]
    gpus: IntArray
    price: IntArray
    vram_gb: IntArray
    submitted_at: IntArray
    cpu_per_gpu: IntArray
    ram_gb_per_gpu: IntArray
    disk_gb_per_gpu: IntArray
    tags: CodeLists
    tenants: CodeLists
    exclude_tenants: CodeLists
    attributes: npt.NDArray[np.object_]
    constraints: npt.NDArray[np.object_]

    def __len__(self) -> int:
        return len(self.id)


@attrs.frozen(eq=False)
class RequestColumns:
    """Requests as columns; set-valued fields are `CodeLists` (``any_model`` and
    ``any_region`` flag the empty sets, which mean 'any')."""

    id: npt.NDArray[np.str_]
    tenant: npt.NDArray[np.int32]
    gpus: IntArray
    max_price: IntArray
    any_model: npt.NDArray[np.bool_]
    any_region: npt.NDArray[np.bool_]
    min_vram_gb: IntArray
    min_reputation: npt.NDArray[np.float64]
    duration_hours: IntArray
    divisible: npt.NDArray[np.bool_]
    cluster: npt.NDArray[np.bool_]
    submitted_at: IntArray
    min_cpu_per_gpu: IntArray
    min_ram_gb_per_gpu: IntArray
    min_disk_gb_per_gpu: IntArray
    gpu_models: CodeLists
    regions: CodeLists
    required_tags: CodeLists
    providers: CodeLists
    exclude_providers: CodeLists
    attributes: npt.NDArray[np.object_]
    constraints: npt.NDArray[np.object_]

    def __len__(self) -> int:
        return len(self.id)


@attrs.frozen(eq=False)
class BookSnapshot:
    """An immutable view of a book at one moment: columns, vocabularies and the orders.

    Attributes:
        offers: offer columns.
        requests: request columns.
        parties: names behind the provider and tenant codes (and provider/tenant lists).
        models: names behind GPU model codes.
        regions: names behind region codes.
        tags: names behind tag codes.
    """

    offers: OfferColumns
    requests: RequestColumns
    parties: tuple[str, ...]
    models: tuple[str, ...]
    regions: tuple[str, ...]
    tags: tuple[str, ...]
    _offer_objects: list[Offer | None] = attrs.field(alias="offer_objects", repr=False)
    _request_objects: list[Request | None] = attrs.field(alias="request_objects", repr=False)

    @property
    def n_offers(self) -> int:
        return len(self.offers)

    @property
    def n_requests(self) -> int:
        return len(self.requests)

    def offer(self, row: int) -> Offer:
        """The `Offer` behind column row `row` (built from the columns on first use when the
        book was loaded with `OrderBook.from_columns`)."""
        o = self._offer_objects[row]
        if o is None:
            o = _offer_of(self, row)
            self._offer_objects[row] = o
        return o

    def request(self, row: int) -> Request:
        """The `Request` behind column row `row`."""
        r = self._request_objects[row]
        if r is None:
            r = _request_of(self, row)
            self._request_objects[row] = r
        return r

    def offer_list(self) -> list[Offer]:
        """All offers in row order."""
        return [self.offer(i) for i in range(self.n_offers)]

    def request_list(self) -> list[Request]:
        """All requests in row order."""
        return [self.request(i) for i in range(self.n_requests)]

    def to_records(self) -> dict[str, list[dict[str, Any]]]:
        """Offers and requests as dicts, each side sorted by (submitted_at, id)."""
        key = _priority_key
        return {
            "offers": [o.to_record() for o in sorted(self.offer_list(), key=key)],
            "requests": [r.to_record() for r in sorted(self.request_list(), key=key)],
        }

    def to_json(self, *, indent: int | None = None) -> str:
        """The book as JSON, format `FORMAT` version `VERSION` (see docs/market.md)."""
        return json.dumps({"format": FORMAT, "version": VERSION, **self.to_records()},
                          indent=indent)

    def take(self, offer_rows: npt.ArrayLike, request_rows: npt.ArrayLike) -> BookSnapshot:
        """The given rows as a snapshot of their own, sliced from the columns (no order
        object is rebuilt or copied: they are built from the columns when asked for).

        Parties are renumbered to those the rows use (a market's per-party arrays stay as
        small as the part); the other vocabularies are shared, since no column's width grows
        with them. Rows keep the given order.
        """
        offer_rows = np.asarray(offer_rows, dtype=np.int64).reshape(-1)
        request_rows = np.asarray(request_rows, dtype=np.int64).reshape(-1)

        def take(cols: Any, rows: IntArray) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for f in attrs.fields(type(cols)):
                col = getattr(cols, f.name)
                out[f.name] = col.take(rows) if isinstance(col, CodeLists) else col[rows]
            return out

        return _parted(take(self.offers, offer_rows), take(self.requests, request_rows),
                       self.parties, self.models, self.regions, self.tags)

    def to_columns(self) -> dict[str, dict[str, Any]]:
        """Both sides as columns, names decoded: ``{"offers": {...}, "requests": {...}}``.

        Scalars are numpy arrays (strings as ``str`` arrays); set-valued fields are
        `ListColumn` (offsets and values); ``attributes`` and ``constraints`` are object
        arrays (empty mapping / None when unset). Rows are in book row order; the result
        reads back with `OrderBook.from_columns`.
        """
        return {
            "offers": _side_columns(self, self.offers, _OFFER_SCALARS, _OFFER_LISTS),
            "requests": _side_columns(self, self.requests, _REQUEST_SCALARS, _REQUEST_LISTS),
        }

    def to_pandas(self) -> tuple[Any, Any]:
        """(offers, requests) as pandas DataFrames, set-valued columns as lists (needs pandas)."""
        import pandas as pd

        out = []
        for side in self.to_columns().values():
            data = {k: (v.to_lists() if isinstance(v, ListColumn) else v) for k, v in side.items()}
            out.append(pd.DataFrame(data))
        return out[0], out[1]

    def to_arrow(self) -> tuple[Any, Any]:
        """(offers, requests) as pyarrow Tables, set-valued columns as list<string>
        (needs pyarrow: ``pip install auction[columns]``)."""
        import pyarrow as pa

        out = []
        for side in self.to_columns().values():
            arrays = {}
            for k, v in side.items():
                if isinstance(v, ListColumn):
                    arrays[k] = pa.ListArray.from_arrays(
                        pa.array(v.offsets.astype(np.int32)), pa.array(v.values, pa.string())
                    )
                elif k == "attributes":
                    arrays[k] = pa.array([json.dumps(dict(a)) if a else None for a in v],
                                         pa.string())
                elif k == "constraints":
                    arrays[k] = pa.array(list(v), pa.string())
                else:
                    arrays[k] = pa.array(v)
            out.append(pa.table(arrays))
        return out[0], out[1]



def _picker(rows: Sequence[int]) -> Callable[[Sequence[Any]], Sequence[Any]]:
    """Reads the given rows of a per-row list in one C call (`OrderBook.take` reads a few
    rows of a large book's lists every epoch)."""
    if len(rows) > 1:
        return operator.itemgetter(*rows)
    return lambda values: tuple(values[r] for r in rows)


def _parted(offers: dict[str, Any], requests: dict[str, Any], parties: Sequence[str],
            models: Any, regions: Any, tags: Any) -> BookSnapshot:
    """Columns taken from a book as a snapshot of their own, parties renumbered to those
    the rows use (`BookSnapshot.take`)."""
    party_cols = [(side, name) for side in (offers, requests) for name in side
                  if name in _PARTY_COLUMNS]

    def codes_of(col: Any) -> IntArray:
        return np.asarray(col.codes if isinstance(col, CodeLists) else col, dtype=np.int64)

    used = np.unique(np.concatenate(
        [codes_of(side[name]) for side, name in party_cols] + [np.zeros(0, dtype=np.int64)]))
    for side, name in party_cols:
        col = side[name]
        if isinstance(col, CodeLists):
            side[name] = CodeLists(col.indptr, _frozen(
                np.searchsorted(used, col.codes).astype(col.codes.dtype)))
        else:
            side[name] = np.searchsorted(used, col).astype(col.dtype)
    for side in (offers, requests):
        for col in side.values():
            if isinstance(col, np.ndarray):
                col.flags.writeable = False
    return BookSnapshot(
        offers=OfferColumns(**offers),
        requests=RequestColumns(**requests),
        parties=tuple(map(parties.__getitem__, used.tolist())),
        models=models,
        regions=regions,
        tags=tags,
        offer_objects=[None] * len(offers["id"]),
        request_objects=[None] * len(requests["id"]),
    )


@attrs.frozen(eq=False)
class ListColumn:
    """A set-valued column by name: row i holds ``values[offsets[i]:offsets[i+1]]``."""

    offsets: IntArray
    values: npt.NDArray[np.str_]

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def to_lists(self) -> list[list[str]]:
        """The rows as Python lists."""
        vals, ip = self.values.tolist(), self.offsets.tolist()
        return [vals[a:b] for a, b in itertools.pairwise(ip)]


_LIST_VOCABS = {"tags": "tags", "models": "models", "regions": "regions", "parties": "parties"}
_NAME_FIELDS = {"provider": "parties", "tenant": "parties", "gpu_model": "models",
                "region": "regions"}
_DERIVED = frozenset({"any_model", "any_region"})


def _vocab_names(snap: BookSnapshot, vocab: str) -> tuple[str, ...]:
    return cast(tuple[str, ...], getattr(snap, vocab))


def _side_columns(
    snap: BookSnapshot, cols: Any, scalars: Mapping[str, type], lists: Mapping[str, str]
) -> dict[str, Any]:
    out: dict[str, Any] = {"id": np.asarray(cols.id)}
    for k in scalars:
        if k in _DERIVED:
            continue
        a = getattr(cols, k)
        if k in _NAME_FIELDS:
            names = np.asarray(_vocab_names(snap, _NAME_FIELDS[k]) or ("",), dtype=str)
            out[k] = names[a]
        else:
            out[k] = np.array(a)
    for k, vocab in lists.items():
        cl: CodeLists = getattr(cols, k)
        names = np.asarray(_vocab_names(snap, vocab) or ("",), dtype=str)
        out[k] = ListColumn(np.array(cl.indptr), names[cl.codes])
    attrs_col = np.empty(len(cols), dtype=object)
    attrs_col[:] = [dict(a) if a else {} for a in cols.attributes]
    out["attributes"] = attrs_col
    out["constraints"] = np.array(cols.constraints, dtype=object)
    return out


def _names_of(snap: BookSnapshot, cl: CodeLists, vocab: str, row: int) -> frozenset[str]:
    names = _vocab_names(snap, vocab)
    return frozenset(names[c] for c in cl.row(row).tolist())


def _offer_of(snap: BookSnapshot, i: int) -> Offer:
    c = snap.offers
    return Offer(
        id=str(c.id[i]), provider=snap.parties[c.provider[i]],
        gpu_model=snap.models[c.gpu_model[i]], gpus=int(c.gpus[i]), price=int(c.price[i]),
        region=snap.regions[c.region[i]], vram_gb=int(c.vram_gb[i]),
        tags=_names_of(snap, c.tags, "tags", i), submitted_at=int(c.submitted_at[i]),
        tenants=_names_of(snap, c.tenants, "parties", i),
        exclude_tenants=_names_of(snap, c.exclude_tenants, "parties", i),
        cpu_per_gpu=int(c.cpu_per_gpu[i]), ram_gb_per_gpu=int(c.ram_gb_per_gpu[i]),
        disk_gb_per_gpu=int(c.disk_gb_per_gpu[i]),
        attributes=Attributes(c.attributes[i] or {}), constraints=c.constraints[i],
    )


def _request_of(snap: BookSnapshot, i: int) -> Request:
    c = snap.requests
    return Request(
        id=str(c.id[i]), tenant=snap.parties[c.tenant[i]], gpus=int(c.gpus[i]),
        max_price=int(c.max_price[i]), gpu_models=_names_of(snap, c.gpu_models, "models", i),
        regions=_names_of(snap, c.regions, "regions", i), min_vram_gb=int(c.min_vram_gb[i]),
        required_tags=_names_of(snap, c.required_tags, "tags", i),
        min_reputation=float(c.min_reputation[i]), duration_hours=int(c.duration_hours[i]),
        divisible=bool(c.divisible[i]), cluster=bool(c.cluster[i]),
        submitted_at=int(c.submitted_at[i]),
        providers=_names_of(snap, c.providers, "parties", i),
        exclude_providers=_names_of(snap, c.exclude_providers, "parties", i),
        min_cpu_per_gpu=int(c.min_cpu_per_gpu[i]),
        min_ram_gb_per_gpu=int(c.min_ram_gb_per_gpu[i]),
        min_disk_gb_per_gpu=int(c.min_disk_gb_per_gpu[i]),
        attributes=Attributes(c.attributes[i] or {}), constraints=c.constraints[i],
    )


def _priority_key(order: Order) -> tuple[int, str]:
    return (order.submitted_at, order.id)


class OrderBook:
    """A mutable book of offers and requests, stored as numpy columns.

    Order ids share one namespace across offers and requests. Every operation validates fully
    before it writes: a duplicate or unknown id raises a typed error and leaves the book as it
    was.
    """

    def __init__(self, orders: Iterable[Order] = ()) -> None:
        self._offers = _Table(_OFFER_SCALARS, _OFFER_LISTS)
        self._requests = _Table(_REQUEST_SCALARS, _REQUEST_LISTS)
        self._where_map: dict[str, tuple[Literal["offer", "request"], int]] | None = {}
        self._vocab = {k: Vocabulary() for k in ("parties", "models", "regions", "tags")}
        self._shared = False
        self.add_many(orders)

    @property
    def _where(self) -> dict[str, tuple[Literal["offer", "request"], int]]:
        """Order id -> (side, row); built on first use after `from_columns`, which only
        checks the ids are distinct (a market never looks orders up by id)."""
        where = self._where_map
        if where is None:
            o, r = self._offers, self._requests
            sides: tuple[Literal["offer", "request"], Literal["offer", "request"]] = (
                "offer", "request")
            where = dict(zip(o.ids, zip(itertools.repeat(sides[0]), range(o.n)), strict=True))
            where.update(zip(r.ids, zip(itertools.repeat(sides[1]), range(r.n)), strict=True))
            self._where_map = where
        return where

    @_where.setter
    def _where(self, where: dict[str, tuple[Literal["offer", "request"], int]]) -> None:
        self._where_map = where

    # -- reading ------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._offers.n + self._requests.n

    def __contains__(self, order_id: object) -> bool:
        return order_id in self._where

    def __iter__(self) -> Iterator[Order]:
        yield from self.offers()
        yield from self.requests()

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
        return self._object(side, row)

    def offers(self) -> list[Offer]:
        return [cast(Offer, self._object("offer", i)) for i in range(self._offers.n)]

    def requests(self) -> list[Request]:
        return [cast(Request, self._object("request", i)) for i in range(self._requests.n)]

    def _object(self, side: Literal["offer", "request"], row: int) -> Order:
        table = self._offers if side == "offer" else self._requests
        o = table.objects[row]
        if o is None:  # a bulk-loaded row: build it from a snapshot's columns
            snap = self.snapshot()
            o = snap.offer(row) if side == "offer" else snap.request(row)
        return o

    # -- writing ------------------------------------------------------------------------
    def add(self, order: Order) -> None:
        """Add one offer or request."""
        self.add_many((order,))

    def add_many(self, orders: Iterable[Order]) -> None:
        """Add several orders at once: all of them, or (on any error) none."""
        batch = list(orders)
        seen: set[str] = set()
        where = self._where
        for o in batch:
            if not isinstance(o, Offer | Request):
                raise InvalidOrderError("order", o, "must be an Offer or a Request")
            if o.id in where or o.id in seen:
                raise DuplicateOrderError(o.id)
            seen.add(o.id)
        if not batch:
            return
        self._own()
        offers = [o for o in batch if isinstance(o, Offer)]
        requests = [o for o in batch if isinstance(o, Request)]
        rows_o = [self._offer_row(o) for o in offers]
        rows_r = [self._request_row(r) for r in requests]
        self._offers.reserve(len(offers))
        self._requests.reserve(len(requests))
        where = self._where  # after _own, which may have copied it
        for o, row in zip(offers, rows_o, strict=True):
            where[o.id] = ("offer", self._offers.n)
            self._offers.write(self._offers.n, row, o)
        for r, row in zip(requests, rows_r, strict=True):
            where[r.id] = ("request", self._requests.n)
            self._requests.write(self._requests.n, row, r)

    def cancel(self, order_id: str) -> Order:
        """Remove an order by id and return it."""
        side, row = self._locate(order_id)
        order = self._object(side, row)
        self._own()
        table = self._offers if side == "offer" else self._requests
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
        old = self._object(side, row)
        names = {a.name for a in attrs.fields(type(old))}
        for k, v in changes.items():
            if k not in names:
                raise InvalidOrderError(k, v, f"is not a field of {type(old).__name__}",
                                        order_id=order_id)
        new = attrs.evolve(old, **changes)
        self._own()
        built = self._offer_row(new) if isinstance(new, Offer) else self._request_row(new)
        table.write(row, built, new)
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
            offer_objects=cast(list[Offer | None], self._offers.objects),
            request_objects=cast(list[Request | None], self._requests.objects),
        )

    def take(self, offer_ids: Sequence[str], request_ids: Sequence[str]) -> BookSnapshot:
        """Some orders as a snapshot of their own, in the given order: `BookSnapshot.take`
        of `snapshot`, but read from the live columns in O(orders taken), without the
        full view a snapshot builds after a write (the live re-clear reads a few orders of a
        large book every epoch)."""

        def side(table: _Table, ids: Sequence[str], kind: str) -> dict[str, Any]:
            try:
                located = list(map(self._where.__getitem__, ids))
            except (KeyError, TypeError):
                located = [self._locate(i) for i in ids]  # UnknownOrderError
            sides, picked = zip(*located, strict=True) if located else ((), ())
            if not set(sides) <= {kind}:
                i = next(i for i, s in zip(ids, sides, strict=True) if s != kind)
                raise InvalidOrderError("order_id", i, f"is not an open {kind}")
            rows = np.fromiter(picked, dtype=np.int64, count=len(picked))
            pick = _picker(picked)
            out: dict[str, Any] = {k: v[rows] for k, v in table.cols.items()}
            for k, lists in table.rows.items():
                csr = table.csr[k]
                if csr is None:  # written since the last view: the per-row tuples are current
                    assert lists is not None
                    out[k] = CodeLists.from_rows(pick(lists))
                else:
                    out[k] = csr.take(rows)
            for k, values in table.extras.items():
                col = np.empty(len(picked), dtype=object)
                col[:] = list(pick(values))
                out[k] = col
            out["id"] = np.array(ids, dtype=str) if len(ids) else np.empty(0, dtype="<U1")
            return out

        v = self._vocab
        return _parted(side(self._offers, offer_ids, "offer"),
                       side(self._requests, request_ids, "request"), v["parties"]._names,
                       v["models"].names(), v["regions"].names(), v["tags"].names())

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
        """The book as JSON, format `FORMAT` version `VERSION`."""
        return self.snapshot().to_json(indent=indent)

    @classmethod
    def from_json(cls, text: str | bytes) -> OrderBook:
        """Read a book written by `to_json`, by this version or any earlier one (format 1:
        ``{"schema": "auction.book/1"}``); errors name the offending order and field. A header
        of another format or version (one newer than this library reads, say) raises
        `UnknownBookSchemaError` (an `UnknownSchemaError` and an `InvalidOrderError`) naming
        the key."""
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError, nesting
            raise InvalidOrderError("json", str(e), "is not valid JSON") from None
        if not isinstance(data, dict):
            raise InvalidOrderError("json", type(data).__name__, "top level must be an object")
        _, header = read_version(data, FORMAT, range(1, VERSION + 1), legacy=(1,),
                                 document="book", error=UnknownBookSchemaError)
        extra = sorted(set(data) - header - {"offers", "requests"})
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
        This is the record path (one order object per row); `from_columns` is the fast one.
        """
        try:
            import pandas as pd
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise MissingDependencyError("OrderBook.from_dataframe", "pandas",
                                         "pip install 'auction[columns]'") from e

        def records(df: Any) -> list[dict[str, Any]]:
            if df is None:
                return []
            if not isinstance(df, pd.DataFrame):
                raise InvalidOrderError("dataframe", type(df).__name__, "must be a DataFrame")
            out = []
            for rec in df.to_dict(orient="records"):
                clean = {}
                for k, v in rec.items():
                    collection = isinstance(v, list | tuple | set | frozenset | np.ndarray | dict)
                    if not collection and pd.isna(v) is True:
                        continue  # absent: the field's default, or "is required"
                    if isinstance(v, np.generic):
                        v = v.item()
                    clean[str(k)] = v
                out.append(clean)
            return out

        return cls.from_records(records(offers), records(requests))

    @classmethod
    def from_columns(cls, offers: Any = None, requests: Any = None) -> OrderBook:
        """Build a book from columns, vectorised: no order object is built per row.

        Each side is a mapping of field name -> array-like (numpy array, list), a pandas
        DataFrame or a pyarrow Table, one row per order, with the fields of `Offer` /
        `Request` as columns (required ones must be present; others take their defaults).
        Set-valued columns hold lists/sets of names per row (or None), a pyarrow list
        column, or a `ListColumn`; ``attributes`` holds mappings (or None); ``constraints``
        strings (or None). Validation is the same as the order constructors': the first bad
        row raises `InvalidOrderError` naming its order id, the field and the value.
        """
        book = cls()
        loaded: list[tuple[_Table, _Loaded]] = []
        sides: tuple[tuple[Literal["offer", "request"], Any], ...] = (
            ("offer", offers), ("request", requests)
        )
        for side, data in sides:
            if data is None:
                continue
            table = book._offers if side == "offer" else book._requests
            part = _load_side(side, data, book._vocab)
            if not _distinct([*(p for _, p in loaded), part]):  # name the first duplicate
                _raise_duplicate(part.ids, {i for _, p in loaded for i in p.ids})
            loaded.append((table, part))
        for table, part in loaded:
            table.load(part.cols, part.lists, part.extras, part.ids, part.ids_array)
        book._where_map = None  # built on first use (`_where`)
        return book

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

    def _codes(self, vocab: str, names: Iterable[str]) -> tuple[int, ...]:
        v = self._vocab[vocab]
        return tuple(sorted(v.code(n) for n in names))

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
            "cpu_per_gpu": o.cpu_per_gpu,
            "ram_gb_per_gpu": o.ram_gb_per_gpu,
            "disk_gb_per_gpu": o.disk_gb_per_gpu,
            "tags": self._codes("tags", o.tags),
            "tenants": self._codes("parties", o.tenants),
            "exclude_tenants": self._codes("parties", o.exclude_tenants),
            "attributes": o.attributes or None,
            "constraints": o.constraints,
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
            "providers": self._codes("parties", r.providers),
            "exclude_providers": self._codes("parties", r.exclude_providers),
            "min_cpu_per_gpu": r.min_cpu_per_gpu,
            "min_ram_gb_per_gpu": r.min_ram_gb_per_gpu,
            "min_disk_gb_per_gpu": r.min_disk_gb_per_gpu,
            "attributes": r.attributes or None,
            "constraints": r.constraints,
        }


def _raise_duplicate(ids: Iterable[str], seen: Container[str]) -> None:
    """Raise `DuplicateOrderError` for the first id already seen (earlier or on the other
    side)."""
    now: set[str] = set()
    for i in ids:
        if i in now or i in seen:
            raise DuplicateOrderError(i)
        now.add(i)


def _distinct(parts: Sequence[_Loaded]) -> bool:
    """Whether the ids of `parts` are all distinct: by sorting their hashes when every part
    came as a numpy str array (equal hashes are then compared as strings), else by a set."""
    arrays = [p.ids_array for p in parts]
    if all(a is not None for a in arrays):
        width = max(cast(np.ndarray, a).dtype.itemsize for a in arrays) // 4
        width += width % 2  # one even width for all: no copy in `_hash_str`
        h = np.sort(np.concatenate([_hash_str(cast(np.ndarray, a).astype(f"<U{width}",
                                                                         copy=False))
                                    for a in arrays]))
        if not bool((h[1:] == h[:-1]).any()):
            return True
    ids = [p.ids for p in parts]
    return len(set(itertools.chain.from_iterable(ids))) == sum(map(len, ids))


# -- columnar ingest ------------------------------------------------------------------------
_REQUIRED = {
    "offer": ("id", "provider", "gpu_model", "gpus", "price", "region", "vram_gb"),
    "request": ("id", "tenant", "gpus", "max_price"),
}
_INT_BOUNDS: dict[str, tuple[int, int]] = {
    "gpus": (1, MAX_COUNT), "price": (0, MAX_MONEY), "max_price": (0, MAX_MONEY),
    "vram_gb": (0, MAX_COUNT), "min_vram_gb": (0, MAX_COUNT), "submitted_at": (0, 2**63 - 1),
    "duration_hours": (1, MAX_COUNT), "cpu_per_gpu": (0, MAX_COUNT),
    "ram_gb_per_gpu": (0, MAX_COUNT), "disk_gb_per_gpu": (0, MAX_COUNT),
    "min_cpu_per_gpu": (0, MAX_COUNT), "min_ram_gb_per_gpu": (0, MAX_COUNT),
    "min_disk_gb_per_gpu": (0, MAX_COUNT),
}
_INT_DEFAULTS = {"duration_hours": 1}


@attrs.frozen
class _Loaded:
    ids: Sequence[str]
    cols: dict[str, np.ndarray]
    lists: dict[str, CodeLists]
    extras: dict[str, list[Any]]
    ids_array: np.ndarray | None = None


def _column_dict(data: Any, kind: str) -> dict[str, Any]:
    """Field name -> column, from a mapping, a pandas DataFrame or a pyarrow Table."""
    if isinstance(data, Mapping):
        return {str(k): _unwrap(v) for k, v in data.items()}
    mod = type(data).__module__
    if mod.startswith("pandas") and hasattr(data, "columns"):
        return {str(c): _unwrap(data[c]) for c in data.columns}
    if mod.startswith("pyarrow") and hasattr(data, "column_names"):
        return {str(c): data.column(c) for c in data.column_names}
    raise InvalidOrderError(
        f"{kind}s", type(data).__name__, "must be a mapping of columns, a DataFrame or a Table"
    )


def _unwrap(col: Any) -> Any:
    """A pandas column stored by pyarrow (pandas' default string dtype) as its Arrow array,
    which the Arrow paths read without a Python object per row; anything else as it is."""
    if (type(col).__module__.startswith("pandas")
            and getattr(getattr(col, "dtype", None), "storage", None) == "pyarrow"
            and hasattr(getattr(col, "array", None), "__arrow_array__")):
        import pyarrow as pa

        return pa.array(col.array)
    return col


def _is_missing(v: Any) -> bool:
    if v is None:
        return True
    try:
        return bool(v != v)  # NaN, pd.NA raises
    except TypeError:
        return True


def _is_arrow(col: Any) -> bool:
    return type(col).__module__.startswith("pyarrow") and hasattr(col, "type")


def _arrow_array(col: Any) -> Any:
    """One contiguous pyarrow Array of an Array or ChunkedArray."""
    return col.combine_chunks() if hasattr(col, "combine_chunks") else col


def _plain(col: Any) -> Any:
    """A column as a numpy array (numeric/bool/str dtypes kept) or a list of Python values."""
    if _is_arrow(col):
        col = _arrow_array(col)
        if col.null_count:
            return col.to_pylist()
        try:
            return col.to_numpy(zero_copy_only=False)
        except Exception:  # nested types: Python values
            return col.to_pylist()
    if type(col).__module__.startswith("pandas"):
        if col.hasnans if hasattr(col, "hasnans") else False:
            return col.to_numpy(dtype=object)
        return col.to_numpy()
    if isinstance(col, np.ndarray):
        return col
    return np.asarray(col) if not isinstance(col, list | tuple) else list(col)


def _first_bad(mask: Any) -> int:
    return int(np.flatnonzero(mask)[0])


def _types(items: Sequence[Any]) -> set[type]:
    return set(map(type, items))


def _int_column(vals: Any, field: str, ids: Sequence[str], n: int) -> IntArray:
    lo, hi = _INT_BOUNDS[field]
    if isinstance(vals, list) and _types(vals) == {int}:  # plain ints: convert in one go
        with contextlib.suppress(OverflowError):  # out of int64: the loop names the row
            vals = np.array(vals, dtype=np.int64)
    arr = np.asarray(vals) if not isinstance(vals, list) else None
    if arr is not None and arr.dtype.kind in "iu":
        if arr.dtype.kind == "u":
            big = arr > np.uint64(2**63 - 1)
            if big.any():
                i = _first_bad(big)
                raise InvalidOrderError(field, int(arr[i]), f"must be in [{lo}, {hi}]",
                                        order_id=ids[i])
        out = arr.astype(np.int64)
        bad = (out < lo) | (out > hi)
        if bad.any():
            i = _first_bad(bad)
            raise InvalidOrderError(field, int(out[i]), f"must be in [{lo}, {hi}]",
                                    order_id=ids[i])
        return out
    items = vals if isinstance(vals, list) else list(np.asarray(vals, dtype=object))
    out_l = []
    for i, v in enumerate(items):
        if isinstance(v, np.generic):
            v = v.item()
        if _is_missing(v):
            raise InvalidOrderError(field, None, "is required", order_id=ids[i])
        if isinstance(v, bool) or not isinstance(v, int):
            kind = "a bool" if isinstance(v, bool) else type(v).__name__
            raise InvalidOrderError(field, v, f"must be an int, not {kind}", order_id=ids[i])
        if v < lo or v > hi:
            raise InvalidOrderError(field, v, f"must be in [{lo}, {hi}]", order_id=ids[i])
        out_l.append(v)
    return np.array(out_l, dtype=np.int64).reshape(n)


def _bool_column(vals: Any, field: str, ids: Sequence[str], n: int) -> npt.NDArray[np.bool_]:
    arr = np.asarray(vals) if not isinstance(vals, list) else None
    if arr is not None and arr.dtype == np.bool_:
        return arr
    items = vals if isinstance(vals, list) else list(np.asarray(vals, dtype=object))
    if not _types(items) <= {bool, np.bool_}:
        for i, v in enumerate(items):
            if not isinstance(v, bool | np.bool_):
                raise InvalidOrderError(field, v, "must be a bool", order_id=ids[i])
    return np.array(items, dtype=bool).reshape(n)


def _rep_column(vals: Any, ids: Sequence[str], n: int) -> npt.NDArray[np.float64]:
    arr = np.asarray(vals) if not isinstance(vals, list) else None
    if arr is None or arr.dtype.kind not in "iuf":
        items = vals if isinstance(vals, list) else list(np.asarray(vals, dtype=object))
        for i, v in enumerate(items):
            if isinstance(v, bool | np.bool_) or not isinstance(v, int | float | np.number):
                raise InvalidOrderError("min_reputation", v, "must be a number in [0, 1]",
                                        order_id=ids[i])
        arr = np.array([float(v) for v in items], dtype=np.float64)
    out = arr.astype(np.float64).reshape(n)
    bad = ~((out >= 0.0) & (out <= 1.0))  # NaN too
    if bad.any():
        i = _first_bad(bad)
        raise InvalidOrderError("min_reputation", arr[i].item(), "must be in [0, 1]",
                                order_id=ids[i])
    return out


# -- factorizing string columns: code per row, distinct values in first-seen order ----------
_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


def _hash_str(arr: npt.NDArray[np.str_]) -> npt.NDArray[np.uint64]:
    """A 64-bit FNV-style hash of each string of a 1-D numpy unicode array, vectorised over
    its code points two at a time. Equal strings in arrays of one width hash alike (callers
    compare the strings of equal hashes, and cast arrays to one width before comparing)."""
    width = arr.dtype.itemsize // 4
    if width % 2:  # whole 64-bit words: pad with one NUL code point
        arr = arr.astype(f"<U{width + 1}")
        width += 1
    words = np.ascontiguousarray(arr).view(np.uint64).reshape(len(arr), width // 2)
    h = np.full(len(arr), _FNV_OFFSET, dtype=np.uint64)
    for j in range(width // 2):
        h ^= words[:, j]
        h *= _FNV_PRIME
    return h


def _first_seen(first: IntArray, inverse: IntArray) -> tuple[IntArray, IntArray]:
    """Renumber `np.unique`'s output in order of first appearance: (codes, first rows)."""
    order = np.argsort(first, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order), dtype=np.int64)
    return rank[inverse.reshape(-1)], first[order]


def _factorize_str(arr: npt.NDArray[np.str_]) -> tuple[IntArray, list[Any]]:
    """`_factorize` of a numpy unicode array: distinct 64-bit hashes, checked against the
    strings (a collision, never seen in practice, falls back to sorting the strings)."""
    _, first, inverse = np.unique(_hash_str(arr), return_index=True, return_inverse=True)
    codes, rows = _first_seen(first, inverse)
    uniques = arr[rows]
    block = 1 << 16  # compare in blocks: no n-row string temporaries
    if not all(bool((uniques[codes[i:i + block]] == arr[i:i + block]).all())
               for i in range(0, len(arr), block)):
        _, first, inverse = np.unique(arr, return_index=True, return_inverse=True)
        codes, rows = _first_seen(first, inverse)
        uniques = arr[rows]
    return codes, uniques.tolist()


def _factorize_arrow(col: Any) -> tuple[IntArray, list[Any]]:
    """`_factorize` of a pyarrow string column by Arrow's hash table (`dictionary_encode`,
    which numbers values in order of appearance); other types and nulls as Python values."""
    import pyarrow as pa

    arr = _arrow_array(col)
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    t = arr.type
    if arr.null_count or not (pa.types.is_string(t) or pa.types.is_large_string(t)):
        return _factorize(arr.to_pylist())
    enc = arr.dictionary_encode()
    codes = np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    return codes, enc.dictionary.to_pylist()


def _factorize(values: Any) -> tuple[IntArray, list[Any]]:
    """(code per value, distinct values in order of first appearance) of a 1-D column.

    Numpy unicode arrays go through a vectorised hash, pyarrow string arrays through Arrow's,
    anything else through one C-level dict pass; unhashable values (always invalid names)
    each count as distinct, so the caller names the first bad row."""
    if isinstance(values, np.ndarray) and values.ndim == 1 and values.dtype.kind == "U":
        return _factorize_str(values)
    if _is_arrow(values):
        return _factorize_arrow(values)
    items = values if isinstance(values, list) else (
        values.tolist() if isinstance(values, np.ndarray) else list(values))
    try:
        first: dict[Any, None] = dict.fromkeys(items)
    except TypeError:  # an unhashable value: number values one by one
        index: dict[Any, int] = {}
        codes = np.empty(len(items), dtype=np.int64)
        for i, v in enumerate(items):
            try:
                codes[i] = index.setdefault(v, len(index))
            except TypeError:
                codes[i] = index.setdefault(_Unhashable(v), len(index))
        return codes, [v.value if isinstance(v, _Unhashable) else v for v in index]
    uniques = list(first)
    index = dict(zip(uniques, range(len(uniques)), strict=True))
    return np.fromiter(map(index.__getitem__, items), dtype=np.int64, count=len(items)), uniques


@attrs.frozen(eq=False)
class _Unhashable:
    """A key standing for one unhashable value (compared by identity)."""

    value: Any


def _first_bad_name(uniques: list[Any]) -> int:
    """Make the distinct names plain strs in place; return the index of the first one that is
    not a valid name (a non-empty str without surrounding spaces or NUL), or -1."""
    for j in [j for j, u in enumerate(uniques)
              if type(u) is not str or not u or u != u.strip() or "\0" in u]:
        u = uniques[j]
        if not isinstance(u, str) or not u or u != u.strip() or "\0" in u:
            return j
        uniques[j] = str(u)  # numpy.str_
    return -1


def _name_error(value: Any, field: str, order_id: str) -> InvalidOrderError:
    """The error `_as_name` raises for a bad name."""
    try:
        _as_name(value, field, order_id)
    except InvalidOrderError as e:
        return e
    raise AssertionError(f"{value!r} is a valid name")  # pragma: no cover


def _name_codes(vals: Any, field: str, ids: Sequence[str], vocab: Vocabulary) -> IntArray:
    """Vocabulary codes of a column of names, each distinct name validated once."""
    codes, uniques = _factorize(vals)
    j = _first_bad_name(uniques)
    if j >= 0:
        raise _name_error(uniques[j], field, ids[_first_bad(codes == j)])
    return vocab.code_many(uniques)[codes]


class _Ids(Sequence[str]):
    """Row ids kept as a numpy str array, read as plain strs (error messages name them)."""

    __slots__ = ("array",)

    def __init__(self, array: npt.NDArray[np.str_]) -> None:
        self.array = array

    def __len__(self) -> int:
        return len(self.array)

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...
    def __getitem__(self, i: int | slice) -> str | list[str]:
        return self.array[i].tolist() if isinstance(i, slice) else str(self.array[i])

    def __iter__(self) -> Iterator[str]:
        return iter(self.array.tolist())


def _id_column(vals: Any, n: int) -> tuple[Sequence[str], np.ndarray | None]:
    """The ids, checked: as a list of strs, or when given as a numpy str array as a read-only
    copy of it (and a view of that as strs), listed only if the book needs it."""
    vals = _plain(vals)
    if isinstance(vals, np.ndarray) and vals.dtype.kind == "U" and vals.ndim == 1:
        arr = vals
        bad = (np.strings.str_len(arr) == 0) | (np.strings.strip(arr) != arr)
        bad |= np.strings.find(arr, "\0") >= 0
        if bad.any():
            _as_name(str(arr[_first_bad(bad)]), "id", None)  # raises, naming the position
        arr = _frozen(np.array(arr, dtype=str))
        return _Ids(arr), arr
    ids = vals.tolist() if isinstance(vals, np.ndarray) else list(vals)
    for i in [i for i, v in enumerate(ids)
              if type(v) is not str or not v or "\0" in v or v != v.strip()]:
        v = ids[i]
        try:
            ids[i] = _as_name(v.item() if isinstance(v, np.generic) else v, "id", None)
        except InvalidOrderError as e:
            raise InvalidOrderError("id", v, e.reason, order_id=f"row {i}") from None
    return ids, None


_LIST_ROWS = frozenset({list, tuple, set, frozenset})


def _list_column(vals: Any, field: str, ids: Sequence[str], vocab: Vocabulary) -> CodeLists:
    """A set-valued column as sorted, distinct vocabulary codes per row.

    Fast forms: a `ListColumn`, a pyarrow list array, a 2-D numpy str array (same length
    per row) and a list of lists/tuples/sets; None means the empty set."""
    n = len(ids)
    flat: Any
    if isinstance(vals, ListColumn):
        offsets, flat = _list_column_parts(vals, field)
    elif _is_arrow(vals) and _arrow_lists(vals) is not None:
        offsets, flat = cast(tuple[IntArray, Any], _arrow_lists(vals))
    elif isinstance(vals, np.ndarray) and vals.ndim == 2 and vals.dtype.kind == "U":
        offsets = np.arange(len(vals) + 1, dtype=np.int64) * vals.shape[1]
        flat = vals.reshape(-1)
    else:
        if _is_arrow(vals):
            vals = _arrow_array(vals).to_pylist()
        items = vals.tolist() if isinstance(vals, np.ndarray) else list(vals)
        lengths = np.zeros(len(items), dtype=np.int64)
        if _types(items) <= _LIST_ROWS:  # the common case, fast
            lengths = np.fromiter(map(len, items), dtype=np.int64, count=len(items))
            flat = list(itertools.chain.from_iterable(items))
        else:
            chunks: list[Any] = []
            for i, v in enumerate(items):
                if v is None or (isinstance(v, float) and v != v):
                    continue
                if isinstance(v, str | bytes) or not isinstance(v, Iterable):
                    raise InvalidOrderError(
                        field, v, "must be a set of strings (a bare string is not)",
                        order_id=ids[i],
                    )
                v = list(v)
                lengths[i] = len(v)
                chunks.extend(v)
            flat = chunks
        offsets = np.zeros(len(items) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
    if len(offsets) != n + 1:
        raise InvalidOrderError(field, len(offsets) - 1, f"must have {n} rows")
    codes, uniques = _factorize(flat) if len(flat) else (np.zeros(0, np.int64), [])
    j = _first_bad_name(uniques)
    if j >= 0:
        row = int(np.searchsorted(offsets, _first_bad(codes == j), side="right")) - 1
        raise InvalidOrderError(field, uniques[j], "members must be non-empty strings",
                                order_id=ids[row])
    return _csr(offsets, vocab.code_many(uniques)[codes])


def _list_column_parts(col: ListColumn, field: str) -> tuple[IntArray, Any]:
    """(offsets from 0, flat values) of a `ListColumn`, its offsets checked."""
    offsets = np.asarray(col.offsets)
    values = col.values if isinstance(col.values, np.ndarray) else list(col.values)
    if (offsets.ndim != 1 or offsets.dtype.kind not in "iu" or not len(offsets)
            or offsets[0] < 0 or bool((np.diff(offsets) < 0).any())
            or offsets[-1] > len(values)):
        raise InvalidOrderError(
            field, "<ListColumn>",
            "offsets must be non-decreasing ints within the values, one more than the rows",
        )
    start, stop = int(offsets[0]), int(offsets[-1])
    return offsets.astype(np.int64) - start, values[start:stop]


def _arrow_lists(col: Any) -> tuple[IntArray, Any] | None:
    """(offsets from 0, flat values) of a pyarrow list column (null rows: empty sets), or
    None for another type."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = _arrow_array(col)
    if not (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)):
        return None
    if arr.null_count:  # nulls: empty sets
        arr = pc.if_else(arr.is_null(), pa.scalar([], arr.type), arr)
    offsets = np.asarray(arr.offsets, dtype=np.int64)
    return offsets - offsets[0], arr.flatten()


def _csr(offsets: IntArray, codes: IntArray) -> CodeLists:
    """CSR of per-row codes, each row sorted and made distinct (skipped when it already is)."""
    n = len(offsets) - 1
    if len(codes) > 1:
        down = codes[1:] <= codes[:-1]  # out of order or repeated, within a row...
        starts = offsets[1:-1]
        down[starts[(starts > 0) & (starts < len(codes))] - 1] = False  # ...not across rows
        if down.any():
            owner = np.repeat(np.arange(n, dtype=np.int64), np.diff(offsets))
            width = int(codes.max()) + 1
            key = np.sort(owner * width + codes, kind="stable")  # nearly sorted: timsort
            repeated = key[1:] == key[:-1]
            if repeated.any():  # drop repeats; rows get shorter
                key = key[np.concatenate(([True], ~repeated))]
                offsets = np.zeros(n + 1, dtype=np.int64)
                np.cumsum(np.bincount(key // width, minlength=n), out=offsets[1:])
            codes = key % width
    return CodeLists(_frozen(np.array(offsets, dtype=np.int64)),
                     _frozen(np.asarray(codes, dtype=np.int64)))


def _extras(cols: Mapping[str, Any], ids: Sequence[str], n: int,
            kind: type[Offer] | type[Request]) -> dict[str, list[Any]]:
    from auction.orders import _as_attributes, _as_constraints

    out: dict[str, list[Any]] = {"attributes": [None] * n, "constraints": [None] * n}
    if "attributes" in cols:
        vals = _plain(cols["attributes"])
        items = vals.tolist() if isinstance(vals, np.ndarray) else list(vals)
        for i, v in enumerate(items):
            if v is None or (isinstance(v, float) and v != v) or (
                isinstance(v, Mapping) and not v
            ):
                continue
            if isinstance(v, str):  # arrow/JSON text, as to_arrow writes it
                try:
                    v = json.loads(v)
                except ValueError:
                    raise InvalidOrderError("attributes", v, "must be a mapping",
                                            order_id=ids[i]) from None
            out["attributes"][i] = _as_attributes(v, ids[i], kind) or None
    if "constraints" in cols:
        vals = _plain(cols["constraints"])
        items = vals.tolist() if isinstance(vals, np.ndarray) else list(vals)
        parsed: dict[str, str | None] = {}
        for i, v in enumerate(items):
            if v is None or (isinstance(v, float) and v != v):
                continue
            if isinstance(v, str) and v in parsed:
                out["constraints"][i] = parsed[v]
                continue
            text = _as_constraints(v, ids[i])
            parsed[v] = text
            out["constraints"][i] = text
    return out


def _load_side(side: Literal["offer", "request"], data: Any,
               vocab: Mapping[str, Vocabulary]) -> _Loaded:
    """Validate and intern one side's columns (`OrderBook.from_columns`)."""
    kind: type[Offer] | type[Request] = Offer if side == "offer" else Request
    cols = _column_dict(data, side)
    names = {a.name for a in attrs.fields(kind)}
    for k, v in cols.items():
        if isinstance(v, Mapping | str | bytes) or not hasattr(v, "__len__"):
            raise InvalidOrderError(k, type(v).__name__, "must be a column (array or list)")
    lengths = {k: len(v) for k, v in cols.items()}
    if len(set(lengths.values())) > 1:
        raise InvalidOrderError("columns", lengths, "must all have the same length")
    n = next(iter(lengths.values()), 0)
    for k in cols:
        if k not in names:
            raise InvalidOrderError(k, "<column>", f"is not a field of {kind.__name__}")
    ids, ids_array = _id_column(cols["id"], n) if "id" in cols else ([], None)
    for k in _REQUIRED[side]:
        if k not in cols and n:
            raise InvalidOrderError(k, None, "is required", order_id=ids[0] if ids else None)
    scalars = _OFFER_SCALARS if side == "offer" else _REQUEST_SCALARS
    lists = _OFFER_LISTS if side == "offer" else _REQUEST_LISTS
    out: dict[str, np.ndarray] = {}
    for k, dtype in scalars.items():
        if k in _DERIVED:
            continue
        if k not in cols:
            if dtype == np.bool_:
                out[k] = np.zeros(n, dtype=bool)
            elif dtype == np.float64:
                out[k] = np.zeros(n, dtype=np.float64)
            else:
                out[k] = np.full(n, _INT_DEFAULTS.get(k, 0), dtype=np.int64)
            continue
        if k in _NAME_FIELDS:
            vals = cols[k] if _is_arrow(cols[k]) else _plain(cols[k])
            out[k] = _name_codes(vals, k, ids, vocab[_NAME_FIELDS[k]]).astype(np.int32)
            continue
        vals = _plain(cols[k])
        if dtype == np.bool_:
            out[k] = _bool_column(vals, k, ids, n)
        elif k == "min_reputation":
            out[k] = _rep_column(vals, ids, n)
        else:
            out[k] = _int_column(vals, k, ids, n)
    code_lists = {
        k: (_list_column(cols[k], k, ids, vocab[v]) if k in cols
            else CodeLists(_frozen(np.zeros(n + 1, dtype=np.int64)),
                           _frozen(np.zeros(0, dtype=np.int64))))
        for k, v in lists.items()
    }
    if side == "request":
        both = out["cluster"] & out["divisible"]
        if both.any():
            raise InvalidOrderError(
                "cluster", True, "a cluster request is all-or-nothing, so not divisible",
                order_id=ids[_first_bad(both)],
            )
        out["any_model"] = code_lists["gpu_models"].lengths == 0
        out["any_region"] = code_lists["regions"].lengths == 0
    extras = _extras(cols, ids, n, kind)
    return _Loaded(ids=ids, cols=out, lists=code_lists, extras=extras, ids_array=ids_array)
