"""Nosana: fixed-price markets paired first come, first served, from one queue.

Source: Nosana's job program, ``programs/nosana-jobs/src/state.rs`` (github.com/nosana-ci/
nosana-programs), and its docs (docs.nosana.io, "Markets"): a market has a fixed price per
second, a job timeout and a minimum node stake; its one queue holds either waiting jobs or
waiting nodes (at most 314 entries) and is popped from the front; ``assign`` lets a payer give
a job to a named queued node; ``extend`` tops up a job's timeout; a job deposits
price x timeout, the node is paid price x min(run time, timeout) and the rest is refunded.

Two ways in:

* `NosanaQueue`, the registered mechanism ``nosana-queue``: a whole book cleared as the queue
  would see it, orders arriving in (submitted_at, nodes before jobs, id) order; a job takes
  the first queued node that may serve it, a node the first queued job it may serve. An offer
  is a node (its GPUs may host several jobs); its ask is its market's fixed price, which the
  job pays. An arrival that finds no partner waits in the queue, or is dropped when the queue
  is full (``queue_cap``).
* `NosanaMarket`, one market's queue as a state machine: `post_job`, `post_node`, `assign`,
  `extend`, `finish` (deposit, pay and refund, as ledger transactions).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any, ClassVar

import attrs
import numpy as np

from auction.errors import InvalidValueError
from auction.limits import Deadline
from auction.market import Market
from auction.mechanisms import MechanismBase, MechanismTags, options
from auction.presets import _core
from auction.presets._core import Fill, eligible_offers, nonneg_int
from auction.result import ClearingResult
from auction.settlement.ledger import Account, AccountKind, Transaction, transfer

__all__ = [
    "NOSANA_QUEUE_CAP",
    "JobSettlement",
    "NosanaMarket",
    "NosanaQueue",
]

#: Largest number of entries in a market's queue (``state.rs``: ``queue`` of 314 keys).
NOSANA_QUEUE_CAP = 314


@attrs.frozen
class NosanaQueue(MechanismBase):
    """First come, first served pairing at each market's fixed price (one queue).

    Objective: none; arrival order decides. A job (request) takes the earliest-queued node
    (offer) that is eligible and has room for all its GPUs; a node takes queued jobs in queue
    order while it has room. The tenant pays the node's market price (its ask).

    A divisible request is served like a whole one, all its GPUs from one offer: the
    market rents whole units and never splits an order.

    Args:
        payment: ``"market-price"`` (the only rule: the market's fixed price).
        queue_cap: most entries (jobs or nodes) waiting at once; an arrival that would wait in
            a full queue is dropped (314, ``state.rs``).
        min_stake: least stake of a node's provider (in the staking token's smallest units);
            nodes under it are not queued.
        stakes: each provider's stake (providers not listed have 0).
        time_limit, max_memory: every mechanism's options (see `MechanismBase`).
    """

    name: ClassVar[str] = "nosana-queue"
    tags = MechanismTags(payments=("market-price",), divisible=True)

    queue_cap: int = options.integer(NOSANA_QUEUE_CAP, minimum=1)
    min_stake: int = options.integer(0, minimum=0)
    stakes: Mapping[str, int] = _core.frozen_mapping(nonneg_int, what="provider -> stake")

    def _clear(
        self, market: Market, rng: np.random.Generator | None, deadline: Deadline
    ) -> ClearingResult:
        snap = market.snapshot
        off, req = snap.offers, snap.requests
        eligible: set[tuple[int, int]] = set()
        for r in range(market.n_requests):
            for o in eligible_offers(market, r):
                eligible.add((r, o))
        providers = [snap.parties[p] for p in off.provider.tolist()]
        staked = [self.stakes.get(p, 0) >= self.min_stake for p in providers]
        events = [(int(off.submitted_at[o]), 0, str(off.id[o]), o) for o in range(len(off))]
        events += [(int(req.submitted_at[r]), 1, str(req.id[r]), r) for r in range(len(req))]
        events.sort()
        fill = Fill(market)
        want = req.gpus.tolist()
        queue: list[tuple[int, int]] = []  # (side, row) in queue order
        dropped = 0
        for step, (_, side, _, row) in enumerate(events):
            if step % 256 == 0 and deadline.expired():
                fill.stopped = True
                break
            if side == 0 and not staked[row]:
                continue
            if side == 1:  # a job: the first queued node that can run it
                hit = next((i for i, (s, o) in enumerate(queue) if s == 0
                            and (row, o) in eligible and fill.left[o] >= want[row]), None)
                if hit is not None:
                    o = queue[hit][1]
                    fill.add(row, o, want[row], int(off.price[o]))
                    if fill.left[o] == 0:
                        del queue[hit]
                    continue
            else:  # a node: queued jobs in order while it has room
                kept = []
                for s, r in queue:
                    if s == 1 and (r, row) in eligible and fill.left[row] >= want[r]:
                        fill.add(r, row, want[r], int(off.price[row]))
                    else:
                        kept.append((s, r))
                queue = kept
                if fill.left[row] == 0:
                    continue
            if len(queue) < self.queue_cap:
                queue.append((side, row))
            else:
                dropped += 1
        return fill.result(self.name, self.payment, self.get_options(), diagnostics={
            "queued_jobs": sum(1 for s, _ in queue if s == 1),
            "queued_nodes": sum(1 for s, _ in queue if s == 0),
            "dropped": dropped,
        })


@attrs.frozen
class JobSettlement:
    """How a finished job's deposit is split: `paid` to the node, `refund` to the payer."""

    job: str
    node: str
    run_seconds: int
    deposit: int
    paid: int
    refund: int
    transactions: tuple[Transaction, ...]


@attrs.define
class _Job:
    id: str
    payer: str
    timeout: int
    deposit: int
    node: str | None = None


def _positive(field: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise InvalidValueError(field, value, f"must be an int >= {minimum}")
    return int(value)


class NosanaMarket:
    """One Nosana market: a fixed price per second, a timeout, a minimum stake, one queue.

    The queue holds waiting jobs or waiting nodes, never both (a job arriving to queued nodes
    takes the front one, and the other way round), at most `queue_cap` entries. Amounts are
    ints in the payment token's smallest units; times in seconds.

    Args:
        price: the job price per second.
        timeout: the default job timeout, seconds (a job deposits price x timeout).
        min_stake: least stake a node needs to enter the queue.
        queue_cap: most queued entries (314).
        currency: the payment token's code.
    """

    def __init__(self, price: int, timeout: int, *, min_stake: int = 0,
                 queue_cap: int = NOSANA_QUEUE_CAP, currency: str = "NOS") -> None:
        self.price = _positive("price", price, 0)
        self.timeout = _positive("timeout", timeout)
        self.min_stake = _positive("min_stake", min_stake, 0)
        self.queue_cap = _positive("queue_cap", queue_cap)
        self.currency = currency
        self.queue: deque[tuple[str, str]] = deque()  # ("job" | "node", id)
        self.jobs: dict[str, _Job] = {}

    @property
    def queue_kind(self) -> str | None:
        """``"job"`` or ``"node"``: what the queue holds now (None when empty)."""
        return self.queue[0][0] if self.queue else None

    def _enqueue(self, kind: str, key: str) -> None:
        if len(self.queue) >= self.queue_cap:
            raise InvalidValueError("queue", len(self.queue),
                                    f"is full ({self.queue_cap} entries): {kind} {key!r} "
                                    "cannot wait")
        self.queue.append((kind, key))

    def post_job(self, job: str, payer: str, *, timeout: int | None = None) -> tuple[
            Transaction, str | None]:
        """A job arrives: its deposit (price x timeout) moves from the payer to the job's
        escrow; it runs on the front queued node, or waits. Returns (deposit, node or None)."""
        if job in self.jobs:
            raise InvalidValueError("job", job, "is already posted")
        t = self.timeout if timeout is None else _positive("timeout", timeout)
        entry = _Job(job, payer, t, self.price * t)
        node = None
        if self.queue_kind == "node":
            node = self.queue.popleft()[1]
        else:
            self._enqueue("job", job)
        entry.node = node
        self.jobs[job] = entry
        deposit = transfer(f"deposit:{job}", Account(AccountKind.TENANT, payer),
                           Account(AccountKind.TENANT_ESCROW, job), self.currency,
                           entry.deposit, memo="price x timeout")
        return deposit, node

    def post_node(self, node: str, stake: int) -> str | None:
        """A node arrives: it takes the front queued job, or waits. Nodes staking less than
        `min_stake` are refused. Returns the job it runs, or None."""
        if _positive("stake", stake, 0) < self.min_stake:
            raise InvalidValueError("stake", stake, f"node {node!r} needs a stake >= "
                                    f"{self.min_stake}")
        if any(k == "node" and n == node for k, n in self.queue):
            raise InvalidValueError("node", node, "is already queued")
        if self.queue_kind == "job":
            job = self.queue.popleft()[1]
            self.jobs[job].node = node
            return job
        self._enqueue("node", node)
        return None

    def assign(self, job: str, node: str) -> None:
        """Run a waiting job on a named queued node (the payer's choice, not the queue's)."""
        entry = self._job(job)
        if entry.node is not None:
            raise InvalidValueError("job", job, f"already runs on {entry.node!r}")
        if ("node", node) not in self.queue:
            raise InvalidValueError("node", node, "is not queued")
        self.queue.remove(("node", node))
        if ("job", job) in self.queue:
            self.queue.remove(("job", job))
        entry.node = node

    def extend(self, job: str, seconds: int) -> Transaction:
        """Top up a job's timeout by `seconds`: the payer deposits price x seconds more."""
        entry = self._job(job)
        s = _positive("seconds", seconds)
        entry.timeout += s
        entry.deposit += self.price * s
        return transfer(f"extend:{job}:{entry.timeout}", Account(AccountKind.TENANT, entry.payer),
                        Account(AccountKind.TENANT_ESCROW, job), self.currency,
                        self.price * s, memo="extend")

    def finish(self, job: str, run_seconds: int) -> JobSettlement:
        """The job ended after `run_seconds`: its node is paid price x min(run, timeout) and
        the rest of the deposit is refunded to the payer."""
        entry = self._job(job)
        if entry.node is None:
            raise InvalidValueError("job", job, "has not run on any node")
        run = _positive("run_seconds", run_seconds, 0)
        paid = self.price * min(run, entry.timeout)
        refund = entry.deposit - paid
        escrow = Account(AccountKind.TENANT_ESCROW, job)
        txs = (
            transfer(f"pay:{job}", escrow, Account(AccountKind.PROVIDER, entry.node),
                     self.currency, paid, memo="price x min(run, timeout)"),
            transfer(f"refund:{job}", escrow, Account(AccountKind.TENANT, entry.payer),
                     self.currency, refund, memo="unused deposit"),
        )
        del self.jobs[job]
        return JobSettlement(job, entry.node, run, entry.deposit, paid, refund, txs)

    def _job(self, job: str) -> _Job:
        if job not in self.jobs:
            raise InvalidValueError("job", job, "is not posted")
        return self.jobs[job]


def preset(*, queue_cap: int = NOSANA_QUEUE_CAP, min_stake: int = 0,
           stakes: Any = None, fee: str = "0%", currency: str = "USDC",
           audit_sample_rate: str = "0%", audit_stake: int = 0,
           audit_slash: str = "0%", audit_exclude_epochs: int = 0) -> Any:
    """The Nosana preset (see the module docstring and ``docs/presets/nosana.md``)."""
    from auction.presets import Parameter, Preset
    from auction.settlement.fees import FeeSchedule
    from auction.simulation import Design

    mech = NosanaQueue(queue_cap=queue_cap, min_stake=min_stake, stakes=stakes or {})
    src = "nosana-ci/nosana-programs programs/nosana-jobs/src/state.rs"
    policy, audit_rows = _core.audit(
        sample_rate=audit_sample_rate, stake=audit_stake, slash=audit_slash,
        exclude_epochs=audit_exclude_epochs,
        checks="nothing sampled (uptime and quality reputation is only proposed)",
        sources=dict(
            sample_rate="Nosana publishes no audit; default off",
            stake="Nosana: the market's minimum stake is not slashed; default 0",
            slash="Nosana publishes no slash; default 0",
            exclude_epochs="Nosana publishes none; default 0",
        ))
    return Preset(
        name="nosana", title="fixed-price markets, one FIFO queue of jobs or nodes",
        mechanism=mech,
        design=Design(mechanism=mech, currency=currency, fees=FeeSchedule({currency: fee}),
                      audit=policy),
        parameters=(
            Parameter("queue_cap", queue_cap, "most queued jobs or nodes", src),
            Parameter("min_stake", min_stake, "least node stake to queue",
                      "docs.nosana.io Markets (a market's node stake minimum)"),
            Parameter("stakes", dict(stakes or {}), "each provider's stake", "input"),
            Parameter("fee", fee, "network fee on job payments (was 10%, now 0)",
                      "Nosana docs, Fees; ../shared/MARKETS.md"),
            Parameter("currency", currency, "what jobs are paid in", "simulation choice"),
            *audit_rows,
        ),
    )
