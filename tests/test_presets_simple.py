"""Golden tests for the Nosana, iExec and io.net presets: small books worked by hand from each
system's published rule (sources in each test), plus their conformance."""

from __future__ import annotations

import pytest

from auction import Market, Offer, OrderBook, Request, presets
from auction.errors import InvalidValueError
from auction.presets.iexec import consensus_weight, pool_stake, worker_score
from auction.presets.nosana import NosanaMarket
from auction.testing import check_mechanism


def _off(i: str, provider: str, price: int, gpus: int = 1, t: int = 0, **kw: object) -> Offer:
    return Offer(id=i, provider=provider, gpu_model=str(kw.pop("model", "H100")), gpus=gpus,
                 price=price, region=str(kw.pop("region", "eu")), vram_gb=80,
                 submitted_at=t, **kw)  # type: ignore[arg-type]


def _req(i: str, gpus: int, max_price: int, t: int = 0, **kw: object) -> Request:
    return Request(id=i, tenant="t-" + i, gpus=gpus, max_price=max_price, submitted_at=t,
                   **kw)  # type: ignore[arg-type]


def _rows(result: object) -> list[tuple[str, str, int, int]]:
    return [(r["request_id"], r["offer_id"], r["gpus"], r["unit_price"])
            for r in result.to_records()]  # type: ignore[attr-defined]


def test_available_and_unknown() -> None:
    assert presets.available() == sorted(
        ["akash", "render", "ionet", "aethir", "nosana", "iexec", "golem"])
    with pytest.raises(InvalidValueError, match="available"):
        presets.get("nope")
    with pytest.raises(InvalidValueError, match="queue_cap"):
        presets.get("nosana", queue_size=3)


# -- Nosana: programs/nosana-jobs/src/state.rs (one queue of jobs or nodes, FIFO, cap 314) ----
def test_nosana_fifo_not_cheapest() -> None:
    # Nodes a (t=0, 900) and b (t=1, 100) queue; job x (t=2) takes the FRONT node a even though
    # b is cheaper: first come, first served, no bidding. Job y (t=3) takes b.
    book = OrderBook([_off("a", "pa", 900, t=0), _off("b", "pb", 100, t=1),
                      _req("x", 1, 1000, t=2), _req("y", 1, 1000, t=3)])
    res = presets.get("nosana").mechanism.clear(Market(book))
    assert _rows(res) == [("x", "a", 1, 900), ("y", "b", 1, 100)]


def test_nosana_single_sided_queue_and_cap() -> None:
    # Jobs x, y, z arrive first and wait (the queue holds jobs); with queue_cap=2 job z is
    # dropped. Node a (t=5, 2 GPUs) then serves the queued jobs from the front: x and y.
    book = OrderBook([_req("x", 1, 10, t=0), _req("y", 1, 10, t=1), _req("z", 1, 10, t=2),
                      _off("a", "pa", 10, gpus=2, t=5)])
    res = presets.get("nosana", queue_cap=2).mechanism.clear(Market(book))
    assert _rows(res) == [("x", "a", 1, 10), ("y", "a", 1, 10)]
    assert res.diagnostics["dropped"] == 1
    full = presets.get("nosana").mechanism.clear(Market(book))
    assert [r[0] for r in _rows(full)] == ["x", "y"]
    assert full.diagnostics["queued_jobs"] == 1


def test_nosana_min_stake() -> None:
    book = OrderBook([_off("a", "pa", 5, t=0), _off("b", "pb", 5, t=1), _req("x", 1, 10, t=2)])
    mech = presets.get("nosana", min_stake=100, stakes={"pb": 100}).mechanism
    assert _rows(mech.clear(Market(book))) == [("x", "b", 1, 5)]


def test_nosana_market_deposit_refund_assign_extend() -> None:
    # state.rs / docs: deposit = price x timeout; the node gets price x min(run, timeout);
    # the rest is refunded.
    m = NosanaMarket(price=3, timeout=100, min_stake=10)
    dep, node = m.post_job("j1", "alice")
    assert node is None
    assert m.queue_kind == "job"
    assert dep.postings[1].amount == 300
    assert m.post_node("n1", stake=10) == "j1"
    s = m.finish("j1", run_seconds=40)
    assert (s.deposit, s.paid, s.refund) == (300, 120, 180)
    # the queue holds nodes now; assign a job to the second queued node
    m.post_node("n2", stake=10)
    m.post_node("n3", stake=10)
    assert m.queue_kind == "node"
    _, node = m.post_job("j2", "bob")
    assert node == "n2"  # the front node
    m.post_node("n2b", stake=50)
    with pytest.raises(InvalidValueError, match="stake"):
        m.post_node("poor", stake=9)
    m2 = NosanaMarket(price=2, timeout=10)
    m2.post_job("j", "carol")
    m2.post_node("x", stake=0)  # takes j
    m2.post_node("y", stake=0)
    m2.post_job("k", "dan")  # takes y (front)
    m2.post_node("z", stake=0)
    m2.post_node("w", stake=0)
    m2.jobs["k"].node = None  # pretend k still waits, to assign it to a named node
    m2.assign("k", "w")
    job = m2.jobs["k"]  # a fresh read: assign changed it behind mypy's narrowing to None
    assert job.node == "w"
    assert list(m2.queue) == [("node", "z")]
    m2.extend("k", 5)
    s = m2.finish("k", run_seconds=1000)  # ran past the timeout: paid for the timeout only
    assert (s.deposit, s.paid, s.refund) == (30, 30, 0)


# -- iExec: IexecPoco1Facet.sol (volume = min remaining, the deal pays the asks) and the
#    market API's price-then-time order ---------------------------------------------------------
def test_iexec_price_time_volume() -> None:
    # Asks: p (price 5, volume 2, t=1), q (price 5, volume 3, t=0), s (price 4, volume 1, t=2).
    # A divisible request for 4 tasks at max 6 takes s (cheapest: 1), then q (same price as p,
    # published earlier: 3). Each match's volume is the smaller remaining volume.
    book = OrderBook([_off("p", "pp", 5, gpus=2, t=1), _off("q", "pq", 5, gpus=3, t=0),
                      _off("s", "ps", 4, gpus=1, t=2),
                      _req("r", 4, 6, t=0, divisible=True), _req("w", 2, 6, t=1)])
    res = presets.get("iexec").mechanism.clear(Market(book))
    assert sorted(_rows(res)) == [("r", "q", 3, 5), ("r", "s", 1, 4), ("w", "p", 2, 5)]
    assert res.total_payment == 3 * 5 + 4 + 2 * 5


def test_iexec_scores_and_stake() -> None:
    assert worker_score(9, True) == 10
    assert worker_score(9, False) == 6
    assert consensus_weight(0) == 2
    assert consensus_weight(30) == 9
    assert pool_stake(1001) == 301


# -- io.net: docs.io.net (clusters by type/location/connectivity at posted per-card prices) ---
def test_ionet_cluster_one_site() -> None:
    # A 4-GPU cluster: provider A has 2+2 GPUs in eu at 10 and 12 (cost 44); provider B has
    # 3 GPUs at 9 in eu and 1 at 9 in us (two sites: not enough at either). A serves it.
    book = OrderBook([_off("a1", "A", 10, gpus=2), _off("a2", "A", 12, gpus=2),
                      _off("b1", "B", 9, gpus=3), _off("b2", "B", 9, gpus=1, region="us"),
                      _req("c", 4, 20, cluster=True)])
    res = presets.get("ionet").mechanism.clear(Market(book))
    assert sorted(_rows(res)) == [("c", "a1", 2, 10), ("c", "a2", 2, 12)]


def test_ionet_fees() -> None:
    fees = presets.get("ionet").design.fees
    assert fees.tenant_fee(10_000, "USDC") == 225  # 0.25% reservation + 2% stablecoin
    assert fees.tenant_fee(10_000, "IO") == 25  # 0.25% reservation, no payment fee
    assert fees.provider_fee(10_000, "USDC") == 25


@pytest.mark.parametrize("name", ["nosana-queue", "iexec-book", "ionet-clusters"])
def test_conformance(name: str) -> None:
    check_mechanism(name, max_examples=25)


@pytest.mark.parametrize("name", presets.available())
def test_every_preset_bundles_its_audit_policy(name: str) -> None:
    """The design's `AuditPolicy` is the one its parameters say (docs/presets/*.md)."""
    from fractions import Fraction

    from auction.reputation.events import Outcome

    p = presets.get(name)
    audit = p.design.audit
    assert audit is not None
    assert audit.sample_rate == Fraction(p.parameter("audit_sample_rate").rstrip("%")) / 100
    assert audit.stake == p.parameter("audit_stake")
    assert audit.exclude_epochs == p.parameter("audit_exclude_epochs")
    slash = p.parameter("audit_slash")
    want = Fraction(slash.rstrip("%")) / 100 if isinstance(slash, str) else Fraction(slash)
    assert audit.penalty.share(Outcome.AUDIT_FAILED) == want
    moved = presets.get(name, audit_sample_rate="10%", audit_stake=7)
    assert moved.design.audit.sample_rate == Fraction(1, 10)
    assert moved.design.audit.stake == 7


def test_ionet_health_checks_remove_a_failing_worker() -> None:
    """io.net checks every worker (rate 100%) and removes one that went down for the next
    epoch (low confidence; ../shared/MARKETS.md): with a worker whose leases all fail, it
    sits out every other epoch; with audits off it serves every epoch."""
    from auction.simulation import simulate

    def flow(epoch: int, rng: object) -> list[object]:
        return [_off("b", "bad", 1_000_000), _off("g", "good", 1_100_000),
                *(_req(f"e{epoch}-r{i}", 1, 2_000_000) for i in range(2))]

    def bad_epochs(design: object) -> list[int]:
        r = simulate(flow, design, epochs=4, epoch_hours=1,  # type: ignore[arg-type]
                     reliability={"bad": 0.0})
        return sorted(rec.lease.start for rec in r.lease_log if rec.lease.provider == "bad")

    assert bad_epochs(presets.get("ionet").design) == [0, 2]
    assert bad_epochs(presets.get("ionet", audit_sample_rate="0%").design) == [0, 1, 2, 3]
