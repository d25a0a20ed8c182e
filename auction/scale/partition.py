"""Partitioned clearing: cut a market into independent parts, clear each, merge the results.

A market whose requests and offers fall into groups that no eligibility crosses (regions,
GPU models, resource classes) is several markets in one. `partition` finds the groups:

* ``by="pairs"``: connected components of the eligibility graph, requests and offers joined
  by every eligible pair of `Market.pairs` (price, reputation and capacity included): the
  finest cut;
* ``by="classes"``: components of the request-profile x offer-class graph, which ignores
  price and reputation: coarser, never materializes pairs, and keeps each resource class's
  whole book together (what the double auctions need);
* ``by=("region",)`` (any of ``"region"``, ``"gpu_model"``, ``"class"``): declared keys;
  every offer class with the same key values is one group, and a request whose eligible
  offers span two groups raises `PartitionError` naming it (the declaration would cut it).

Requests with no eligible offer and offers no request can use are in no part (*idle*): no
mechanism trades or prices them, and the merged result lists such requests as unmatched.

`clear_partitioned` clears each part as its own market (`Market.like`: the same reputation
and quality settings), on any executor (`auction.scale.executors`), and merges the parts'
allocations into one `ClearingResult` over the whole market; rows are put in the result's
documented order (request priority, then offer rank), so for a mechanism that decomposes the
merged result equals the single clear. Whether a mechanism decomposes is decided by one table,
`DECOMPOSITION` (see docs/scale-out.md for why each entry is what it is); mechanisms not in
it, or marked as coupling parts, are refused with `PartitionError`.
"""

from __future__ import annotations

import os
import resource
import secrets
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from auction.book import BookSnapshot, OrderBook
from auction.errors import InvalidValueError, PartitionError
from auction.market import Market
from auction.mechanisms.base import Mechanism
from auction.mechanisms.registry import get
from auction.result import ClearingResult, Status
from auction.scale.executors import batch_by_work, runner

__all__ = [
    "DECOMPOSITION",
    "KEYS",
    "Partition",
    "Rule",
    "clear_partitioned",
    "partition",
    "rule_for",
]

IntArray = npt.NDArray[np.int64]

#: Declared partition keys: columns of an offer class.
KEYS = ("region", "gpu_model", "class")


@attrs.frozen(kw_only=True)
class Rule:
    """How (or whether) a mechanism's clearing decomposes over parts.

    Attributes:
        decomposes: each part cleared on its own gives, merged, the single clear.
        graph: the finest graph whose components are valid parts: ``"pairs"`` or
            ``"classes"`` (a mechanism whose prices read offers no request can afford).
        providers: a provider's offers must stay in one part (its payment is computed over
            all of them).
        seeded: the mechanism's randomness is one seed option; it is drawn once, as the
            mechanism would draw it, and every part gets it.
        ties: the mechanism optimizes and breaks ties among equally good allocations by
            something global (a scale of the whole problem, a solver's path): the merged
            result has the single clear's status and welfare (and, for VCG, each provider's
            bonus), but may pick another optimal allocation when several exist.
        why: the reason, in a sentence (shown in `PartitionError`).
    """

    decomposes: bool
    why: str
    graph: str = "pairs"
    providers: bool = False
    seeded: bool = False
    ties: bool = False


_PER_REQUEST = "each request is cleared from its own eligible offers, capacity links only " \
    "requests that share offers"
_PER_CLASS = "each resource class is its own call market, priced from its whole book " \
    "(asks above every bid included)"

#: The decomposition table, by (mechanism name, payment rule); ``"*"`` matches any rule.
#: Every entry is checked by tests/test_partition.py against the single clear.
DECOMPOSITION: Mapping[tuple[str, str], Rule] = {
    ("first-price", "*"): Rule(decomposes=True, why=_PER_REQUEST),
    ("second-price", "*"): Rule(
        decomposes=True,
        why=_PER_REQUEST + "; the second price is the best other eligible offer, in the part",
    ),
    ("assignment", "pay-as-bid"): Rule(
        decomposes=True, ties=True, why="a maximum-weight matching is one per component"),
    ("assignment", "vcg"): Rule(
        decomposes=True, providers=True, ties=True,
        why="a provider's VCG bonus is the welfare lost without all its offers, split over "
        "all its rows: its offers stay in one part",
    ),
    ("assignment", "uniform"): Rule(
        decomposes=False,
        why="one price for every trade of the market: parts would each set their own",
    ),
    ("lp", "pay-as-bid"): Rule(
        decomposes=True, ties=True,
        why="the transportation LP is block diagonal over components"),
    ("lp", "uniform"): Rule(
        decomposes=True, ties=True,
        why="the lowest (highest) equilibrium prices are the lattice extreme per component",
    ),
    ("gang", "pay-as-bid"): Rule(
        decomposes=True, ties=True,
        why="the MILP is block diagonal over components (sites included)"),
    ("gang", "uniform"): Rule(
        decomposes=False,
        why="whether item prices support the allocation is decided for the whole market "
        "(one part without them makes every part pay as bid) and a time limit applies to "
        "the whole solve",
    ),
    ("uniform-price", "*"): Rule(decomposes=True, graph="classes", why=_PER_CLASS),
    ("mcafee", "*"): Rule(decomposes=True, graph="classes", why=_PER_CLASS),
    ("sbba", "*"): Rule(
        decomposes=True, graph="classes", seeded=True,
        why=_PER_CLASS + "; the lottery depends only on the seed, the class and offer ids",
    ),
    # The seed markets' rules (auction.presets): each keeps state or an order across the whole
    # market (a FIFO queue, tier spillover, a seeded indexer draw, a price-time book, bid
    # caps counted per provider), not shown to decompose, so they clear whole.
    **{
        (name, "*"): Rule(decomposes=False, why=why)
        for name, why in (
            ("aethir-indexer", "one seeded indexer draw per order over the whole market"),
            ("akash-auction", "bid windows and caps are counted over the whole market"),
            ("golem-match", "one seeded shuffle and agreement reuse over the whole market"),
            ("iexec-book", "one price-time order book over the whole market"),
            ("ionet-clusters", "clusters are procured in arrival order over the whole market"),
            ("nosana-queue", "one FIFO queue of jobs or nodes per market"),
            ("render-tiers", "tier spillover and rotation over the whole market"),
        )
    },
}


def rule_for(mechanism: Mechanism) -> Rule:
    """The table's rule for a mechanism instance; `PartitionError` if it does not decompose."""
    name = str(mechanism.name)
    payment = str(getattr(mechanism, "payment", "*"))
    rule = DECOMPOSITION.get((name, payment)) or DECOMPOSITION.get((name, "*"))
    if rule is None:
        raise PartitionError(
            name, "it is not in the decomposition table (auction.scale.partition."
            "DECOMPOSITION); nothing says its clearing decomposes over parts"
        )
    if not rule.decomposes:
        raise PartitionError(name, f"payment {payment!r} couples parts: {rule.why}")
    return rule


# -- the partition ----------------------------------------------------------------------------
@attrs.frozen(eq=False)
class Partition:
    """A market cut into parts that clear independently (see the module docstring).

    Parts are numbered by their highest-priority request, so the numbering does not depend
    on the order orders were added in.

    Attributes:
        market: the whole market.
        by: how it was cut: ``"pairs"``, ``"classes"`` or a tuple of keys.
        request_part, offer_part: part of each request / offer row; -1: idle (in no part).
        request_indptr, request_rows: part i's request rows (ascending) are
            ``request_rows[request_indptr[i]:request_indptr[i+1]]``.
        offer_indptr, offer_rows: the same for offers.
        work: a work estimate per part (requests + offers + eligible pairs), which sizes tasks.
    """

    market: Market
    by: str | tuple[str, ...]
    request_part: IntArray
    offer_part: IntArray
    request_indptr: IntArray
    request_rows: IntArray
    offer_indptr: IntArray
    offer_rows: IntArray
    work: IntArray

    def __len__(self) -> int:
        return len(self.work)

    def __repr__(self) -> str:
        return (f"Partition({len(self)} parts by {self.by!r}, "
                f"{int((self.request_part < 0).sum())} idle requests, "
                f"{int((self.offer_part < 0).sum())} idle offers)")

    def requests(self, i: int) -> IntArray:
        """Request rows of part `i`, ascending."""
        return self.request_rows[self.request_indptr[i] : self.request_indptr[i + 1]]

    def offers(self, i: int) -> IntArray:
        """Offer rows of part `i`, ascending."""
        return self.offer_rows[self.offer_indptr[i] : self.offer_indptr[i + 1]]

    def snapshot(self, i: int) -> BookSnapshot:
        """Part `i` as a book snapshot of its own (parties renumbered to those it holds)."""
        return _sub_snapshot(self.market.snapshot, self.requests(i), self.offers(i))

    def submarket(self, i: int) -> Market:
        """Part `i` as a market with the whole market's reputation and quality settings."""
        return self.market.like(self.snapshot(i))


def partition(
    market: Market,
    *,
    by: str | Sequence[str] | None = None,
    mechanism: str | Mechanism | None = None,
) -> Partition:
    """Cut `market` into parts that clear independently.

    Args:
        market: the market.
        by: ``"pairs"``, ``"classes"`` or a sequence of keys from `KEYS` (see the module
            docstring). None: ``"classes"``, which every decomposing mechanism accepts and
            which needs no pairs (``"pairs"`` cuts finer, at the cost of materializing them).
        mechanism: the mechanism the parts are for (a name or an instance): its rule in
            `DECOMPOSITION` may keep a provider's offers together or need whole class books.

    Raises:
        PartitionError: the mechanism couples parts, or declared keys would cut a request.
        InvalidValueError: an unknown `by`.
    """
    if not isinstance(market, Market):
        raise InvalidValueError("market", market, "must be a Market")
    rule = None
    if mechanism is not None:
        rule = rule_for(get(mechanism) if isinstance(mechanism, str) else mechanism)
    how = _check_by(by, rule)
    providers = rule is not None and rule.providers
    if how == "pairs":
        req_label, off_label, pair_count = _pair_labels(market, providers)
    else:
        keys = () if how == "classes" else tuple(how)
        req_label, off_label, pair_count = _class_labels(market, keys, providers)
    return _build(market, how, req_label, off_label, pair_count)


def _check_by(by: str | Sequence[str] | None, rule: Rule | None) -> str | tuple[str, ...]:
    if by is None:  # the class graph: cheap, never materializes pairs, valid for all
        return "classes"
    if isinstance(by, str):
        if by in KEYS:
            by = (by,)
        elif by not in ("pairs", "classes"):
            raise InvalidValueError(
                "by", by, f"must be 'pairs', 'classes' or a sequence of keys from {KEYS}")
    if isinstance(by, str):
        if by == "pairs" and rule is not None and rule.graph == "classes":
            raise PartitionError(
                "partition", f"by='pairs' is too fine for this mechanism: {rule.why}; "
                "use by='classes' or declared keys")
        return by
    keys = tuple(by)
    if not keys or any(k not in KEYS for k in keys) or len(set(keys)) != len(keys):
        raise InvalidValueError("by", by, f"keys must be distinct names from {KEYS}")
    return keys


def _components(n: int, rows: IntArray, cols: IntArray) -> IntArray:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n, n)).tocsr()
    _, labels = connected_components(graph, directed=False)
    return np.asarray(labels, dtype=np.int64)


def _provider_edges(market: Market, node_of_offer: IntArray, base: int) -> tuple[
    IntArray, IntArray
]:
    """Edges from each offer's node to a node per provider (numbered from `base`)."""
    return node_of_offer, base + market.snapshot.offers.provider.astype(np.int64)


def _pair_labels(market: Market, providers: bool) -> tuple[IntArray, IntArray, IntArray]:
    n_r, n_o = market.n_requests, market.n_offers
    pairs = market.pairs()
    counts = np.diff(pairs.indptr)
    rows = np.repeat(np.arange(n_r, dtype=np.int64), counts)
    cols = n_r + pairs.offers
    n = n_r + n_o
    if providers and n_o:
        pr, pc = _provider_edges(market, n_r + np.arange(n_o, dtype=np.int64), n)
        rows, cols = np.concatenate([rows, pr]), np.concatenate([cols, pc])
        n += len(market.snapshot.parties)
    labels = _components(n, rows, cols)
    req = np.where(counts > 0, labels[:n_r], -1)
    used = np.bincount(pairs.offers, minlength=n_o) > 0
    off = np.where(used, labels[n_r : n_r + n_o], -1)
    return req, off, counts


def _class_labels(
    market: Market, keys: tuple[str, ...], providers: bool
) -> tuple[IntArray, IntArray, IntArray]:
    n_p, n_c = market.n_profiles, market.n_classes
    per_profile = np.diff(market.profile_indptr)
    rows = np.repeat(np.arange(n_p, dtype=np.int64), per_profile)
    cols = n_p + market.profile_classes
    n = n_p + n_c
    if keys:
        columns = []
        for k in keys:
            if k == "region":
                columns.append(market.class_region)
            elif k == "gpu_model":
                columns.append(market.class_gpu_model)
            else:
                columns.append(np.arange(n_c, dtype=np.int64))
        group = (np.unique(np.column_stack(columns), axis=0, return_inverse=True)[1].reshape(-1)
                 if n_c else np.zeros(0, dtype=np.int64)).astype(np.int64)
        _check_declared(market, keys, group, rows)
        rows = np.concatenate([rows, n_p + np.arange(n_c, dtype=np.int64)])
        cols = np.concatenate([cols, n + group])
        n += int(group.max()) + 1 if n_c else 0
    if providers and market.n_offers:
        pr, pc = _provider_edges(market, n_p + market.offer_class, n)
        rows, cols = np.concatenate([rows, pr]), np.concatenate([cols, pc])
        n += len(market.snapshot.parties)
    labels = _components(n, rows, cols)
    req = np.where(per_profile[market.request_profile] > 0,
                   labels[market.request_profile], -1)
    class_used = np.bincount(market.profile_classes, minlength=n_c) > 0
    off = np.where(class_used[market.offer_class], labels[n_p + market.offer_class], -1)
    # work estimate: a request may pair with every offer of its eligible classes
    size = np.diff(market.class_indptr)
    per_prof = np.bincount(rows[: len(market.profile_classes)],
                           weights=size[market.profile_classes], minlength=n_p)
    return req, off, per_prof.astype(np.int64)[market.request_profile]


def _check_declared(market: Market, keys: tuple[str, ...], group: IntArray,
                    profile_of_edge: IntArray) -> None:
    """`PartitionError` if some request's eligible classes span two key groups."""
    n_p = market.n_profiles
    g = group[market.profile_classes]
    lo = np.full(n_p, np.iinfo(np.int64).max)
    hi = np.full(n_p, -1)
    np.minimum.at(lo, profile_of_edge, g)
    np.maximum.at(hi, profile_of_edge, g)
    bad = np.flatnonzero((hi >= 0) & (lo != hi))
    if not len(bad):
        return
    rows = np.flatnonzero(np.isin(market.request_profile, bad))
    r = int(rows[np.argmin(market.request_rank[rows])])
    p = int(market.request_profile[r])
    classes = market.profile_classes[market.profile_indptr[p] : market.profile_indptr[p + 1]]
    snap = market.snapshot
    seen = sorted({
        "/".join(_key_name(market, snap, k, int(c)) for k in keys) for c in classes.tolist()
    })
    raise PartitionError(
        "partition",
        f"request {str(snap.requests.id[r])!r} accepts offers in {len(seen)} groups of "
        f"{'/'.join(keys)} ({', '.join(seen[:4])}{', ...' if len(seen) > 4 else ''}): "
        "the declared partition would cut it; use by='classes' or coarser keys",
    )


def _key_name(market: Market, snap: BookSnapshot, key: str, cls: int) -> str:
    if key == "region":
        return snap.regions[int(market.class_region[cls])]
    if key == "gpu_model":
        return snap.models[int(market.class_gpu_model[cls])]
    return f"class{cls}"


def _build(market: Market, by: str | tuple[str, ...], req_label: IntArray,
           off_label: IntArray, pair_count: IntArray) -> Partition:
    n_labels = int(max(req_label.max(initial=-1), off_label.max(initial=-1))) + 1
    has_req = np.bincount(req_label[req_label >= 0], minlength=n_labels) > 0
    has_off = np.bincount(off_label[off_label >= 0], minlength=n_labels) > 0
    live = has_req & has_off
    first = np.full(n_labels, np.iinfo(np.int64).max)
    active = np.flatnonzero(req_label >= 0)
    np.minimum.at(first, req_label[active], market.request_rank[active])
    labels = np.flatnonzero(live)
    labels = labels[np.argsort(first[labels], kind="stable")]
    part_of = np.full(n_labels + 1, -1, dtype=np.int64)  # the last entry: idle (label -1)
    part_of[labels] = np.arange(len(labels), dtype=np.int64)
    req_part = part_of[req_label]
    off_part = part_of[off_label]
    n_parts = len(labels)
    r_ptr, r_rows = _groups(req_part, n_parts)
    o_ptr, o_rows = _groups(off_part, n_parts)
    work = (np.diff(r_ptr) + np.diff(o_ptr)
            + np.bincount(req_part[req_part >= 0], weights=pair_count[req_part >= 0],
                          minlength=n_parts).astype(np.int64))
    return Partition(market, by, _ro(req_part), _ro(off_part), _ro(r_ptr), _ro(r_rows),
                     _ro(o_ptr), _ro(o_rows), _ro(work.astype(np.int64)))


def _groups(part: IntArray, n_parts: int) -> tuple[IntArray, IntArray]:
    rows = np.flatnonzero(part >= 0).astype(np.int64)
    rows = rows[np.argsort(part[rows], kind="stable")]
    indptr = np.zeros(n_parts + 1, dtype=np.int64)
    np.cumsum(np.bincount(part[part >= 0], minlength=n_parts), out=indptr[1:])
    return indptr, rows


def _ro(a: npt.NDArray[Any]) -> Any:
    a.flags.writeable = False
    return a


def _sub_snapshot(snap: BookSnapshot, req_rows: IntArray, off_rows: IntArray) -> BookSnapshot:
    """The rows of a snapshot as a snapshot of their own (`BookSnapshot.take`): a part goes
    to a worker as arrays alone, its order objects rebuilt from its columns when asked for
    (pickling a Python object per order would cost more than clearing it)."""
    return snap.take(off_rows, req_rows)


# -- clearing the parts -----------------------------------------------------------------------
@attrs.frozen
class _PartInput:
    index: int
    snapshot: BookSnapshot
    reputation: dict[str, float]
    quality: dict[str, float] | None


@attrs.frozen
class _Task:
    mechanism: Mechanism
    default_reputation: float
    quality_weight: int
    parts: tuple[_PartInput, ...]
    #: The bit generator state every part's rng starts from (a seeded rule), or None.
    rng_state: dict[str, Any] | None = None


def _generator(state: dict[str, Any] | None) -> np.random.Generator | None:
    """A new Generator in `state` (each part draws what the single clear would draw)."""
    if state is None:
        return None
    bits = getattr(np.random, state["bit_generator"])()
    bits.state = state
    return np.random.Generator(bits)


@attrs.frozen
class PartOutcome:
    """One part's clearing, in the part's own rows, as plain picklable data."""

    index: int
    mechanism: str
    payment: str
    status: str
    message: str
    request_row: IntArray
    offer_row: IntArray
    gpus: IntArray
    unit_price: IntArray
    tenant_price: IntArray
    provider_payment: npt.NDArray[Any] | None  # None: price x gpus
    tenant_payment: npt.NDArray[Any] | None
    options: dict[str, Any]
    diagnostics: dict[str, Any]
    seconds: float
    worker: int
    peak_rss: int


def _exact_or_none(paid: npt.NDArray[Any], price: IntArray, gpus: IntArray) -> Any:
    """None when the row payments are price x gpus (the default), else the payments."""
    if [int(p) for p in paid.tolist()] == [p * g for p, g in zip(price.tolist(), gpus.tolist(),
                                                                   strict=True)]:
        return None
    return np.array(paid)


def _peak_rss() -> int:
    """Peak resident memory of this process, in bytes: ``VmHWM`` on Linux (``ru_maxrss``
    survives ``exec`` there, so a worker spawned by a big parent would report the parent's
    size), else ``ru_maxrss``."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if os.uname().sysname == "Darwin" else peak * 1024)


def clear_task(task: _Task) -> list[PartOutcome]:
    """Clear every part of a task (runs on a worker)."""
    out = []
    for p in task.parts:
        t0 = time.perf_counter()
        market = Market(p.snapshot, p.reputation, default_reputation=task.default_reputation,
                        quality=p.quality, quality_weight=task.quality_weight)
        r = task.mechanism.clear(market, rng=_generator(task.rng_state))
        out.append(PartOutcome(
            index=p.index, mechanism=r.mechanism, payment=r.payment, status=r.status.value,
            message=r.message, request_row=np.array(r.request_row),
            offer_row=np.array(r.offer_row), gpus=np.array(r.gpus),
            unit_price=np.array(r.unit_price), tenant_price=np.array(r.tenant_price),
            provider_payment=_exact_or_none(r.provider_payment, r.unit_price, r.gpus),
            tenant_payment=_exact_or_none(r.tenant_payment, r.tenant_price, r.gpus),
            options=dict(r.options), diagnostics=dict(r.diagnostics),
            seconds=time.perf_counter() - t0, worker=os.getpid(), peak_rss=0,
        ))
    peak = _peak_rss()  # once per task: getrusage is not free
    return [attrs.evolve(o, peak_rss=peak) for o in out]


def _tasks(parts: Partition, mech: Mechanism, plan: list[list[int]],
           spent: list[float], rng_state: dict[str, Any] | None = None) -> Iterator[_Task]:
    """Tasks built one at a time, as the runner asks for them (bounded memory); the seconds
    spent building them are added to ``spent[0]``."""
    market = parts.market
    rep, quality = market.reputation, market.quality
    for batch in plan:
        t0 = time.perf_counter()
        inputs = []
        for i in batch:
            snap = parts.snapshot(i)
            inputs.append(_PartInput(
                i, snap, {p: rep[p] for p in snap.parties if p in rep},
                None if quality is None else {p: quality[p] for p in snap.parties if p in quality},
            ))
        task = _Task(mech, market.default_reputation, market.quality_weight, tuple(inputs),
                     rng_state)
        spent[0] += time.perf_counter() - t0
        yield task


def clear_partitioned(
    book_or_market: OrderBook | BookSnapshot | Market,
    mechanism: str | Mechanism = "first-price",
    payment: str | None = None,
    *,
    executor: Any = None,
    by: str | Sequence[str] | None = None,
    rng: np.random.Generator | int | None = None,
    reputation: Mapping[str, float] | None = None,
    task_size: int | None = None,
    max_in_flight: int | None = None,
    **options: Any,
) -> ClearingResult:
    """Clear a market part by part, on `executor`, and merge: the single clear's result for
    every mechanism that decomposes (`DECOMPOSITION`).

    Args:
        book_or_market, mechanism, payment, rng, reputation, options: as for `auction.clear`.
        executor: where parts clear (see `auction.scale.executors.runner`): None (this
            process), a `concurrent.futures.Executor`, ``ray`` or a Dask ``Client``.
        by: how to cut the market (`partition`); None: ``"classes"``.
        task_size: work per task (requests + offers + pairs); small parts are batched into
            tasks of about this size. None: the total split in four tasks per worker, at
            least `auction.scale.executors.MIN_TASK_WORK` each.
        max_in_flight: tasks submitted and not yet gathered (default twice the workers).

    Returns:
        The merged result. Its ``diagnostics`` hold ``"partition"`` (parts, tasks, idle
        requests and offers, per-part seconds, peak memory per worker, and the parent's
        seconds planning, building task payloads, running and merging), ``"parts"`` (each
        part's own diagnostics, in part order), and the entries every part agrees on; dicts
        of per-provider integers (``vcg_bonus``) are summed.

    Raises:
        PartitionError: the mechanism couples parts (see `DECOMPOSITION`), or the runner
            lost a task.
        UnsupportedMarketError: the mechanism cannot clear the whole market (checked first,
            as the single clear would).
    """
    t0 = time.perf_counter()
    from auction.clearing import resolve

    market, mech = resolve(book_or_market, mechanism, payment, reputation, options)
    rule = rule_for(mech)
    check = getattr(mech, "check_market", None)
    if callable(check):
        check(market)
    original_options = _options_of(mech)
    extra: dict[str, Any] = {}
    rng_state: dict[str, Any] | None = None
    if rule.seeded:  # every part starts from the generator state the single clear starts from
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(
            secrets.randbits(63) if rng is None else rng)
        rng_state = dict(gen.bit_generator.state)
        extra["seed"] = int(_generator(rng_state).integers(0, 2**63 - 1))  # type: ignore[union-attr]
    parts = partition(market, by=by, mechanism=mech)
    run = runner(executor)
    plan = batch_by_work(parts.work.tolist(), run.workers, task_size)
    t1 = time.perf_counter()
    outcomes: list[PartOutcome | None] = [None] * len(parts)
    gathered = 0
    spent = [0.0]
    for _, batch in run.map_unordered(clear_task, _tasks(parts, mech, plan, spent, rng_state),
                                      max_in_flight=max_in_flight):
        for o in batch:
            outcomes[o.index] = o
            gathered += 1
    t2 = time.perf_counter()
    done = [o for o in outcomes if o is not None]
    if len(done) != len(parts):  # pragma: no cover - a runner that lost tasks
        raise PartitionError(str(mech.name), f"{len(parts) - len(done)} of {len(parts)} parts "
                             f"came back missing from {run!r}")
    summary = {
        "by": parts.by, "parts": len(parts), "tasks": len(plan),
        "workers": run.workers, "runner": repr(run),
        "idle_requests": int((parts.request_part < 0).sum()),
        "idle_offers": int((parts.offer_part < 0).sum()),
        "work": parts.work, "part_seconds": np.array([o.seconds for o in done]),
        "peak_rss": _peaks(done), "plan_seconds": t1 - t0, "run_seconds": t2 - t1,
        "build_seconds": spent[0],
    }
    result = _merge(parts, mech, original_options, done, summary, extra)
    timed = {**summary, "merge_seconds": time.perf_counter() - t2}
    return attrs.evolve(result, diagnostics={**result.diagnostics, "partition": timed})


def _options_of(mech: Mechanism) -> dict[str, Any]:
    get_options = getattr(mech, "get_options", None)
    return dict(get_options()) if callable(get_options) else {}


def _peaks(done: Sequence[PartOutcome]) -> dict[int, int]:
    peaks: dict[int, int] = {}
    for o in done:
        peaks[o.worker] = max(peaks.get(o.worker, 0), o.peak_rss)
    return peaks


def _merge(parts: Partition, mech: Mechanism, options: dict[str, Any],
           done: Sequence[PartOutcome], summary: dict[str, Any],
           extra: dict[str, Any]) -> ClearingResult:
    market = parts.market
    name = done[0].mechanism if done else str(mech.name)
    payments = [o.payment for o in done]
    payment = payments[0] if done else str(getattr(mech, "payment", ""))
    statuses = {Status(o.status) for o in done}
    messages = list(dict.fromkeys(o.message for o in done if o.message))
    diagnostics: dict[str, Any] = {**_agreed(done), **extra, "partition": summary,
                                   "parts": tuple(o.diagnostics for o in done)}
    if not options and done:
        options = done[0].options
    empty = np.zeros(0, dtype=np.int64)
    if Status.FAILED in statuses:
        failed = [o for o in done if o.status == Status.FAILED.value]
        message = "; ".join(f"part {o.index}: {o.message}" for o in failed)
        return ClearingResult.from_allocation(
            market, empty, empty, empty, empty, mechanism=name, payment=payment,
            status=Status.FAILED, message=message, options=options, diagnostics=diagnostics)
    status = Status.FEASIBLE if Status.FEASIBLE in statuses else Status.SUCCESS
    if len(set(payments)) > 1:
        raise PartitionError(name, f"parts were paid by different rules: {sorted(set(payments))}")
    req = _cat([parts.requests(o.index)[o.request_row] for o in done])
    off = _cat([parts.offers(o.index)[o.offer_row] for o in done])
    gpus = _cat([o.gpus for o in done])
    up = _cat([o.unit_price for o in done])
    tp = _cat([o.tenant_price for o in done])
    pp = _payments(done, "provider_payment", "unit_price")
    tpay = _payments(done, "tenant_payment", "tenant_price")
    return ClearingResult.from_allocation(
        market, req, off, gpus, up, tp, provider_payment=pp, tenant_payment=tpay,
        mechanism=name, payment=payment, status=status,
        message=messages[0] if len(messages) == 1 else "; ".join(messages),
        options=options, diagnostics=diagnostics,
    )


def _cat(arrays: Sequence[npt.NDArray[Any]]) -> IntArray:
    if not arrays:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate(arrays).astype(np.int64)


def _payments(done: Sequence[PartOutcome], field: str, price: str) -> list[int] | None:
    """Exact row payments when some part has them (others: price x gpus), else None."""
    if all(getattr(o, field) is None for o in done):
        return None
    out: list[int] = []
    for o in done:
        paid = getattr(o, field)
        if paid is None:
            out += [p * g for p, g in zip(getattr(o, price).tolist(), o.gpus.tolist(),
                                          strict=True)]
        else:
            out += [int(v) for v in paid.tolist()]
    return out


def _agreed(done: Sequence[PartOutcome]) -> dict[str, Any]:
    """Diagnostics every part agrees on (same scalar), and per-provider int dicts summed."""
    if not done:
        return {}
    out: dict[str, Any] = {}
    for key, first in done[0].diagnostics.items():
        values = [o.diagnostics.get(key) for o in done]
        if isinstance(first, str | int | float | bool) and all(
            type(v) is type(first) and v == first for v in values
        ):
            out[key] = first
        elif all(isinstance(v, dict) and all(isinstance(x, int) for x in v.values())
                 for v in values):
            total: dict[str, int] = {}
            for v in values:
                for k, x in (v or {}).items():
                    total[k] = total.get(k, 0) + x
            out[key] = total
    return out
