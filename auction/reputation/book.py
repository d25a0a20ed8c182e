"""The reputation book: an event-sourced record of what providers did, and their scores.

A `ReputationBook` keeps every event it was given (its journal) and, per provider, the state
its model folds those events into. Like a trusted ledger:

* one event per id: recording an id again with the same content is a no-op, with different
  content a `ConflictingEventError` (and nothing of that batch is recorded);
* the state is a function of the set of events only: each provider's events are folded in
  canonical order (time, outcome code, weight), whatever order or batches they came in, so
  `ReputationBook.replay` of any permutation of the journal, with duplicates, gives the same
  state bit for bit;
* `to_json` writes the model, the journal (sorted by id) and the state; `from_json` replays the
  journal and checks the state against it, so a snapshot round-trips exactly.

Batches are folded with numpy and a numba kernel: events arriving in time order per provider
extend each provider's fold; a provider that receives an event older than its latest one is
re-folded from the journal on the next query.

Scores are read at one time for every provider (default: the book's clock, the latest event
time), so forgetting treats every provider alike. `scores` is the mapping a market takes::

    Market(order_book, reputation=rep.scores())

Providers the book has never seen are absent from it and score `NEWCOMER_SCORE` (0), as the
market's default reputation does.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from auction._formats import header, read_version
from auction.errors import UnknownSchemaError
from auction.reputation.eigentrust import EigenTrustResult, eigentrust_arrays
from auction.reputation.events import (
    MAX_TIME,
    OUTCOMES,
    ConflictingEventError,
    Event,
    EventBatch,
    EvidenceWeights,
    InvalidReputationError,
    _name,
    _real,
)
from auction.reputation.models import (
    MODELS,
    BetaModel,
    BetaOpinion,
    ReputationModel,
    get_model,
)

__all__ = ["FORMAT", "SCHEMA", "VERSION", "ReputationBook", "UnknownReputationSchemaError"]

#: The ``"format"`` of a JSON snapshot; with ``"version"``, the header of every JSON format
#: of the library, written and checked on read.
FORMAT = "auction.reputation"
#: The snapshot version written and read.
VERSION = 1
#: The older single-key header (``"schema": SCHEMA``), still read.
SCHEMA = f"{FORMAT}/{VERSION}"


class UnknownReputationSchemaError(UnknownSchemaError, InvalidReputationError):
    """A reputation snapshot names a format or version this library cannot read (see
    `auction.errors.UnknownSchemaError`)."""

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
_LOG_COLUMNS: tuple[tuple[str, type], ...] = (
    ("provider", np.int64), ("time", np.float64), ("outcome", np.int8),
    ("weight", np.float64), ("tenant", np.int64),
)


class ReputationBook:
    """Events per provider, folded into scores by a reputation model.

    Args:
        model: a `ReputationModel` or a name in `MODELS` (``"beta"``, ``"iexec"``).
        events: events to record first (`Event` objects or an `EventBatch`).
    """

    def __init__(
        self,
        model: ReputationModel | str = "beta",
        events: EventBatch | Iterable[Event] = (),
    ) -> None:
        self._model = get_model(model)
        # Event id -> number of the batch that recorded it. Each batch keeps its ids and first
        # journal row; a batch's id -> row map is built only when a duplicate needs it.
        self._index: dict[str, int] = {}
        self._batches: list[tuple[int, tuple[str, ...]]] = []
        self._batch_rows: dict[int, dict[str, int]] = {}
        self._n_events = 0
        # Journal columns in chunks of decreasing size (merged like a binary counter, so that
        # there are O(log n) of them), and each chunk's first row.
        self._chunks: list[dict[str, np.ndarray]] = []
        self._chunk_start: list[int] = []
        self._providers: dict[str, int] = {}
        self._provider_names: list[str] = []
        self._tenants: dict[str, int] = {}
        self._tenant_names: list[str] = []
        self._cap = 0
        self._state: dict[str, np.ndarray] = {
            name: np.zeros(0, dtype=dt) for name, dt in self._model.columns
        }
        self._last_time = np.zeros(0)  # NaN: no events yet
        self._last_outcome = np.zeros(0, dtype=np.int8)
        self._last_weight = np.zeros(0)
        self._dirty = np.zeros(0, dtype=np.bool_)
        self._n_dirty = 0
        self._clock = math.nan
        self._version = 0
        self._cache: tuple[tuple[int, float], dict[str, np.ndarray]] | None = None
        self.record_many(events)

    # -- recording ------------------------------------------------------------------------------
    def record(self, event: Event) -> bool:
        """Record one event; False if its id was already recorded with the same content."""
        if not isinstance(event, Event):
            raise InvalidReputationError("event", event, "must be an Event")
        return self.record_many(EventBatch.from_events([event])) == 1

    def record_many(self, events: EventBatch | Iterable[Event]) -> int:
        """Record events (an `EventBatch` is fastest); returns how many were new.

        All or nothing: if one event conflicts with a recorded one (same id, other content),
        `ConflictingEventError` is raised and none of the batch is recorded.
        """
        batch = EventBatch.coerce(events)
        if len(batch) == 0:
            return 0
        keep = self._new_rows(batch)
        if keep is not None and not keep.any():
            return 0
        rows = None if keep is None else np.flatnonzero(keep)

        def take(a: np.ndarray) -> np.ndarray:
            return a if rows is None else a[rows]

        pcodes = take(batch.provider_codes)
        pmap = self._intern(batch.provider_names, pcodes, self._providers, self._provider_names)
        if len(self._provider_names) > self._cap:
            self._grow(max(2 * self._cap, len(self._provider_names), 16))
        tcodes = take(batch.tenant_codes)
        tmap = self._intern(batch.tenant_names, tcodes, self._tenants, self._tenant_names)
        tmap = np.r_[tmap, -1]  # code -1 (no tenant) reads the last slot
        chunk = {
            "provider": pmap[pcodes],
            "time": take(batch.times).copy(),
            "outcome": take(batch.outcomes).copy(),
            "weight": take(batch.weights).copy(),
            "tenant": tmap[tcodes],
        }
        self._append_chunk(chunk)
        kept = batch.ids if rows is None else tuple(batch.ids[i] for i in rows.tolist())
        self._batches.append((self._n_events, kept))
        self._n_events += len(kept)
        self._fold(chunk["provider"], chunk["time"], chunk["outcome"], chunk["weight"], True)
        top = float(chunk["time"].max())
        self._clock = top if math.isnan(self._clock) else max(self._clock, top)
        self._version += 1
        return len(chunk["time"])

    @classmethod
    def replay(
        cls, events: EventBatch | Iterable[Event], model: ReputationModel | str = "beta"
    ) -> ReputationBook:
        """A new book holding `events`: the same state as any book that recorded them."""
        return cls(model, events)

    def _new_rows(self, batch: EventBatch) -> npt.NDArray[np.bool_] | None:
        """Mask of the batch's new events (None: all new); raises on a conflicting id.

        Commits the new ids to the index under the next batch number.
        """
        ids = batch.ids
        number = len(self._batches)
        fresh = dict.fromkeys(ids, number)
        if len(fresh) == len(ids):
            if not self._index:
                self._index = fresh
                return None
            if self._index.keys().isdisjoint(fresh):
                self._index.update(fresh)
                return None
        # Slow path: duplicates, within the batch or with the journal. Check, then commit.
        keep = np.zeros(len(ids), dtype=np.bool_)
        first: dict[str, int] = {}
        for i, eid in enumerate(ids):
            if eid in self._index:
                self._check_same(eid, self._recorded(self._row(eid)), _batch_content(batch, i))
            elif eid in first:
                self._check_same(
                    eid, _batch_content(batch, first[eid]), _batch_content(batch, i)
                )
            else:
                first[eid] = i
                keep[i] = True
        self._index.update(dict.fromkeys(first, number))
        return keep

    def _row(self, event_id: str) -> int:
        """Journal row of a recorded event id."""
        number = self._index[event_id]
        start, ids = self._batches[number]
        rows = self._batch_rows.get(number)
        if rows is None:
            rows = self._batch_rows[number] = {eid: i for i, eid in enumerate(ids)}
        return start + rows[event_id]

    def _ids(self) -> list[str]:
        """Every recorded id, in journal order."""
        return [eid for _, ids in self._batches for eid in ids]

    @staticmethod
    def _check_same(eid: str, recorded: dict[str, Any], given: dict[str, Any]) -> None:
        for field, value in recorded.items():
            if given[field] != value:
                raise ConflictingEventError(eid, field, value, given[field])

    def _recorded(self, row: int) -> dict[str, Any]:
        k = bisect.bisect_right(self._chunk_start, row) - 1
        log, row = self._chunks[k], row - self._chunk_start[k]
        tc = int(log["tenant"][row])
        return {
            "provider": self._provider_names[int(log["provider"][row])],
            "time": float(log["time"][row]),
            "outcome": OUTCOMES[int(log["outcome"][row])].value,
            "weight": float(log["weight"][row]),
            "tenant": self._tenant_names[tc] if tc >= 0 else None,
        }

    @staticmethod
    def _intern(
        names: tuple[str, ...], codes: IntArray, index: dict[str, int], known: list[str]
    ) -> IntArray:
        """Book code per batch name (-1 for names no kept row uses); new names get codes."""
        valid = codes[codes >= 0]
        if len(valid) < len(names):  # a small batch naming many providers: look up the used
            used = np.unique(valid)
        else:
            used = np.flatnonzero(np.bincount(valid, minlength=len(names)))
        sub = list(names) if len(used) == len(names) else [names[i] for i in used.tolist()]
        got = np.fromiter(map(index.get, sub, itertools.repeat(-1)), dtype=np.int64,
                          count=len(sub))
        miss = np.flatnonzero(got < 0)
        if len(miss):  # new names, coded in order of first use
            fresh = [sub[k] for k in miss.tolist()]
            start = len(known)
            index.update(zip(fresh, range(start, start + len(fresh)), strict=True))
            known.extend(fresh)
            got[miss] = np.arange(start, start + len(fresh))
        out = np.full(len(names), -1, dtype=np.int64)
        out[used] = got
        return out

    def _grow(self, cap: int) -> None:
        def grown(a: np.ndarray, fill: Any) -> np.ndarray:
            out = np.full(cap, fill, dtype=a.dtype)
            out[: len(a)] = a
            return out

        self._state = {k: grown(v, 0) for k, v in self._state.items()}
        self._last_time = grown(self._last_time, np.nan)
        self._last_outcome = grown(self._last_outcome, 0)
        self._last_weight = grown(self._last_weight, 0.0)
        self._dirty = grown(self._dirty, False)
        self._cap = cap

    def _append_chunk(self, chunk: dict[str, np.ndarray]) -> None:
        start = self._chunk_start[-1] + len(self._chunks[-1]["time"]) if self._chunks else 0
        self._chunks.append(chunk)
        self._chunk_start.append(start)
        while len(self._chunks) > 1 and (
            len(self._chunks[-2]["time"]) <= len(self._chunks[-1]["time"])
        ):
            self._merge_chunks(len(self._chunks) - 2)

    def _merge_chunks(self, first: int) -> None:
        """Merge chunks ``first:`` into one."""
        tail = self._chunks[first:]
        merged = {name: np.concatenate([c[name] for c in tail]) for name, _ in _LOG_COLUMNS}
        self._chunks[first:] = [merged]
        del self._chunk_start[first + 1 :]

    def _log(self) -> dict[str, np.ndarray]:
        """The journal as columns (row = order of arrival)."""
        if not self._chunks:
            return {name: np.zeros(0, dtype=dt) for name, dt in _LOG_COLUMNS}
        if len(self._chunks) > 1:
            self._merge_chunks(0)
        return self._chunks[0]

    # -- folding ------------------------------------------------------------------------------
    def _fold(
        self, prov: IntArray, t: FloatArray, oc: npt.NDArray[np.int8], w: FloatArray,
        check_order: bool,
    ) -> None:
        """Fold events into the state; with `check_order`, a provider whose new events do
        not all come after its latest recorded one is marked for a full re-fold instead."""
        order = np.lexsort((w, oc, t, prov))
        prov, t, oc, w = prov[order], t[order], oc[order], w[order]
        start = np.flatnonzero(np.r_[True, prov[1:] != prov[:-1]])
        seg_prov = prov[start]
        ptr = np.r_[start, len(prov)].astype(np.int64)
        if check_order:
            lt = self._last_time[seg_prov]
            lo = self._last_outcome[seg_prov]
            lw = self._last_weight[seg_prov]
            ft, fo, fw = t[start], oc[start], w[start]
            after = np.isnan(lt) | (ft > lt) | (
                (ft == lt) & ((fo > lo) | ((fo == lo) & (fw >= lw)))
            )
            ok = after & ~self._dirty[seg_prov]
            if not ok.all():
                late = seg_prov[~ok]
                self._n_dirty += int((~self._dirty[late]).sum())
                self._dirty[late] = True
                rows = np.repeat(ok, np.diff(ptr))
                prov, t, oc, w = prov[rows], t[rows], oc[rows], w[rows]
                seg_prov = seg_prov[ok]
                ptr = np.r_[0, np.cumsum(np.diff(ptr)[ok])].astype(np.int64)
        if not len(seg_prov):
            return
        self._model.fold(self._state, self._last_time, ptr, seg_prov, t, oc, w)
        end = ptr[1:] - 1
        self._last_time[seg_prov] = t[end]
        self._last_outcome[seg_prov] = oc[end]
        self._last_weight[seg_prov] = w[end]

    def _settle(self) -> None:
        """Re-fold, from the journal, every provider that received events out of order."""
        if not self._n_dirty:
            return
        n = len(self._provider_names)
        dirty = np.flatnonzero(self._dirty[:n])
        for a in self._state.values():
            a[dirty] = 0
        self._last_time[dirty] = np.nan
        self._last_outcome[dirty] = 0
        self._last_weight[dirty] = 0.0
        log = self._log()
        rows = np.flatnonzero(self._dirty[log["provider"]])
        self._dirty[dirty] = False
        self._n_dirty = 0
        self._fold(log["provider"][rows], log["time"][rows], log["outcome"][rows],
                   log["weight"][rows], False)

    # -- reading ------------------------------------------------------------------------------
    @property
    def model(self) -> ReputationModel:
        return self._model

    @property
    def clock(self) -> float | None:
        """The latest event time recorded (None for an empty book): the default query time."""
        return None if math.isnan(self._clock) else self._clock

    @property
    def providers(self) -> tuple[str, ...]:
        """Providers with at least one event, sorted."""
        return tuple(sorted(self._provider_names))

    def __len__(self) -> int:
        return self._n_events

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._index

    def __repr__(self) -> str:
        return (
            f"ReputationBook({self._model!r}, {len(self)} events, "
            f"{len(self._provider_names)} providers)"
        )

    def _at(self, at: Any) -> float:
        if at is None:
            return 0.0 if math.isnan(self._clock) else self._clock
        value = _real(at, "at", 0.0, MAX_TIME, "finite, in [0, 2**53]", param=True)
        if value < self._clock:
            raise InvalidReputationError(
                "at", at, f"must be >= the latest event time {self._clock!r}: scores are not "
                "read in the past of the journal"
            )
        return value

    def _table(self, at: Any) -> dict[str, np.ndarray]:
        self._settle()
        when = self._at(at)
        key = (self._version, when)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        n = len(self._provider_names)
        state = {k: v[:n] for k, v in self._state.items()}
        table = self._model.table(state, self._last_time[:n], when)
        for a in table.values():
            a.flags.writeable = False
        self._cache = (key, table)
        return table

    def _code(self, provider: Any) -> int | None:
        return self._providers.get(_name(provider, "provider", None, param=True))

    def score(self, provider: str, at: float | None = None) -> float:
        """The provider's score in [0, 1] at time `at` (default: the clock); 0 if unknown."""
        code = self._code(provider)
        table = self._table(at)
        return self._model.newcomer_score if code is None else float(table["score"][code])

    def scores(self, at: float | None = None) -> dict[str, float]:
        """Score per known provider, sorted by name: the ``reputation`` mapping of a Market."""
        table = self._table(at)
        values = table["score"].tolist()
        return {name: values[i] for i, name in sorted(
            enumerate(self._provider_names), key=lambda x: x[1])}

    def ranking(self, at: float | None = None) -> list[tuple[str, float]]:
        """(provider, score) pairs, best first; ties by name."""
        return sorted(self.scores(at).items(), key=lambda kv: (-kv[1], kv[0]))

    def influence(self, capacity: Mapping[str, float], at: float | None = None) -> dict[str, float]:
        """``capacity x score`` per provider in `capacity` (GPUs, stake or any other weight):
        how much a provider's identities weigh in capacity- or stake-weighted choices.

        A provider's fresh identities score 0, so moving capacity to them never adds
        influence; see docs/reputation.md for the splitting guarantee.
        """
        if not isinstance(capacity, Mapping):
            raise InvalidReputationError("capacity", capacity, "must map providers to numbers")
        out = {}
        for name, c in capacity.items():
            v = _real(c, f"capacity[{name!r}]", 0.0, 1e300, "finite and >= 0", param=True)
            out[name] = v * self.score(name, at)
        return out

    def table(self, at: float | None = None) -> dict[str, Any]:
        """Every provider's state and score at `at`, as columns sorted by provider.

        ``"provider"`` is a list of names; the other columns are numpy arrays: for the beta
        model ``r``, ``s``, ``expected``, ``belief``, ``disbelief``, ``uncertainty``,
        ``lower_bound`` and ``score``; for iExec ``iexec_score`` and ``score``.
        """
        table = self._table(at)
        order = sorted(range(len(self._provider_names)), key=self._provider_names.__getitem__)
        idx = np.array(order, dtype=np.int64)
        return {"provider": [self._provider_names[i] for i in order],
                **{k: v[idx] for k, v in table.items()}}

    # -- beta model -----------------------------------------------------------------------------
    def opinion(self, provider: str, at: float | None = None) -> BetaOpinion:
        """The provider's beta opinion at `at` (zero evidence if unknown); beta model only."""
        model = self._model
        if not isinstance(model, BetaModel):
            raise InvalidReputationError(
                "model", model.name, "opinions, expected values, uncertainty and lower bounds "
                "need the beta model"
            )
        code = self._code(provider)
        table = self._table(at)
        if code is None:
            zero = np.zeros(1)
            table, code = {"r": zero, "s": zero, **model.opinions(zero, zero)}, 0
        return BetaOpinion(**{f: float(table[f][code]) for f in (
            "r", "s", "expected", "belief", "disbelief", "uncertainty", "lower_bound")})

    def expected(self, provider: str, at: float | None = None) -> float:
        """Beta posterior mean ``(r + 1) / (r + s + 2)`` (0.5 for an unknown provider)."""
        return self.opinion(provider, at).expected

    def uncertainty(self, provider: str, at: float | None = None) -> float:
        """Jøsang's uncertainty ``2 / (r + s + 2)``: 1 with no evidence, towards 0 with more."""
        return self.opinion(provider, at).uncertainty

    def lower_bound(self, provider: str, at: float | None = None) -> float:
        """The ranking bound (the beta model's score): see `BetaModel.lower_bound`."""
        return self.opinion(provider, at).lower_bound

    # -- EigenTrust -----------------------------------------------------------------------------
    def eigentrust(
        self,
        *,
        pretrusted: Iterable[str] | Mapping[str, float] | None = None,
        alpha: float = 0.15,
        tol: float = 1e-10,
        max_iter: int = 1000,
        evidence: EvidenceWeights | None = None,
    ) -> EigenTrustResult:
        """EigenTrust over the events that name a tenant: tenant i rates provider j with its
        positive evidence (satisfactory) and negative evidence (unsatisfactory), summed.

        Evidence per outcome comes from `evidence`, else the model's (beta), else the
        defaults; it is not decayed. Peers are the tenants and the providers (one peer per
        name); every provider of the book is reported, rated or not.
        See `auction.reputation.eigentrust.eigentrust` for the parameters.
        """
        weights = evidence if evidence is not None else getattr(
            self._model, "evidence", EvidenceWeights()
        )
        if not isinstance(weights, EvidenceWeights):
            raise InvalidReputationError("evidence", weights, "must be an EvidenceWeights")
        log = self._log()
        rated = np.flatnonzero(log["tenant"] >= 0)
        peers = tuple(sorted(set(self._provider_names) | set(self._tenant_names)))
        pos = {p: k for k, p in enumerate(peers)}
        pre: FloatArray | None = None
        if pretrusted is not None:
            pre = np.zeros(len(peers))
            items = pretrusted.items() if isinstance(pretrusted, Mapping) else (
                (p, 1.0) for p in _names_of(pretrusted)
            )
            for name, wt in items:
                k = pos.get(_name(name, "pretrusted", None, param=True))
                if k is None:
                    raise InvalidReputationError(
                        "pretrusted", name, "is neither a tenant nor a provider of the book"
                    )
                pre[k] = _real(wt, f"pretrusted[{name!r}]", 0.0, 1e300, ">= 0", param=True)
        prov_peer = np.array([pos[p] for p in self._provider_names], dtype=np.int64)
        ten_peer = np.array([pos[p] for p in self._tenant_names], dtype=np.int64)
        pos_t, neg_t = weights.tables()
        oc, w = log["outcome"][rated], log["weight"][rated]
        t, it, ok, res = eigentrust_arrays(
            ten_peer[log["tenant"][rated]] if len(rated) else np.zeros(0, dtype=np.int64),
            prov_peer[log["provider"][rated]] if len(rated) else np.zeros(0, dtype=np.int64),
            w * pos_t[oc], w * neg_t[oc], len(peers), pre,
            alpha=alpha, tol=tol, max_iter=max_iter,
        )
        t.flags.writeable = False
        return EigenTrustResult(
            peers=peers, trust=t, providers=self.providers, iterations=it, converged=ok,
            residual=res,
        )

    # -- journal and JSON -----------------------------------------------------------------------
    def events(self) -> EventBatch:
        """Every recorded event, in order of arrival."""
        log = self._log()
        return EventBatch(
            self._ids(),
            [self._provider_names[c] for c in log["provider"].tolist()],
            log["time"],
            log["outcome"],
            log["weight"],
            [self._tenant_names[c] if c >= 0 else None for c in log["tenant"].tolist()]
            if self._tenant_names else None,
        )

    def _state_record(self) -> dict[str, list[Any]]:
        self._settle()
        n = len(self._provider_names)
        order = sorted(range(n), key=self._provider_names.__getitem__)
        idx = np.array(order, dtype=np.int64)
        return {
            "provider": [self._provider_names[i] for i in order],
            **{k: v[:n][idx].tolist() for k, v in self._state.items()},
            "last_time": self._last_time[:n][idx].tolist(),
            "last_outcome": [OUTCOMES[c].value for c in self._last_outcome[:n][idx].tolist()],
            "last_weight": self._last_weight[:n][idx].tolist(),
        }

    def to_json(self, *, indent: int | None = None) -> str:
        """The book as JSON (format ``auction.reputation``, version 1): the model and its
        parameters, the journal as columns sorted by event id, and each provider's state.
        Floats are written as their shortest repr, so they read back bit for bit."""
        columns = self.events().to_columns()
        ids = columns["id"]
        order = sorted(range(len(ids)), key=ids.__getitem__)
        journal = {k: [v[i] for i in order] for k, v in columns.items()}
        if not self._tenant_names:
            del journal["tenant"]
        data = {
            **header(FORMAT, VERSION),
            "model": {"name": self._model.name, **self._model.params()},
            "events": journal,
            "state": self._state_record(),
        }
        return json.dumps(data, indent=indent, allow_nan=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> ReputationBook:
        """Read a book written by `to_json`: replay its journal, check the stored state."""
        try:
            data = json.loads(text)
        except (TypeError, ValueError, RecursionError) as e:
            raise InvalidReputationError("json", str(e), "is not valid JSON") from None
        if not isinstance(data, dict):
            raise InvalidReputationError("json", type(data).__name__, "must be an object")
        _, keys = read_version(data, FORMAT, (VERSION,), document="reputation snapshot",
                               error=UnknownReputationSchemaError)
        extra = sorted(set(data) - keys - {"model", "events", "state"})
        if extra:
            raise InvalidReputationError(extra[0], data[extra[0]], "is not a key of a snapshot")
        spec = data.get("model")
        if not isinstance(spec, dict) or spec.get("name") not in MODELS:
            raise InvalidReputationError(
                "model", spec, f"must be an object whose name is one of: {', '.join(MODELS)}"
            )
        params = {k: v for k, v in spec.items() if k != "name"}
        model = MODELS[spec["name"]].from_params(params)
        journal = data.get("events", {})
        if not isinstance(journal, dict):
            raise InvalidReputationError("events", journal, "must be an object of columns")
        unknown = sorted(set(journal) - {"id", "provider", "time", "outcome", "weight", "tenant"})
        if unknown:
            raise InvalidReputationError(unknown[0], journal[unknown[0]], "is not an event column")
        for col in ("id", "provider", "time", "outcome", "weight"):
            if not isinstance(journal.get(col, []), list):
                raise InvalidReputationError(col, journal[col], "must be a list")
        batch = EventBatch(
            journal.get("id", []), journal.get("provider", []),
            _float_list(journal.get("time", []), "time"), journal.get("outcome", []),
            _float_list(journal.get("weight", []), "weight") if "weight" in journal else None,
            journal.get("tenant"),
        )
        book = cls(model, batch)
        if "state" in data and data["state"] != book._state_record():
            raise InvalidReputationError(
                "state", "...", "does not match the replay of the snapshot's events"
            )
        return book


def _float_list(values: Any, field: str) -> Any:
    """A JSON list of numbers as float64 (ints included); other entries stay for the check."""
    if isinstance(values, list) and all(
        isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values
    ):
        return np.array([float(v) for v in values], dtype=np.float64)
    return np.array(values, dtype=object)


def _names_of(values: Any) -> list[Any]:
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise InvalidReputationError("pretrusted", values, "must be a collection of names")
    return list(values)


def _batch_content(batch: EventBatch, i: int) -> dict[str, Any]:
    tc = int(batch.tenant_codes[i])
    return {
        "provider": batch.provider_names[int(batch.provider_codes[i])],
        "time": float(batch.times[i]),
        "outcome": OUTCOMES[int(batch.outcomes[i])].value,
        "weight": float(batch.weights[i]),
        "tenant": batch.tenant_names[tc] if tc >= 0 else None,
    }
