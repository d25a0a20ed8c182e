"""The multi-epoch simulation: exact per-epoch accounting, capacity, emissions and designs."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from fractions import Fraction
from typing import Any, cast

import attrs
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auction import DuplicateOrderError, Offer, Request
from auction.errors import MissingDependencyError
from auction.mechanisms import available, tags_of
from auction.orders import Order
from auction.settlement import (
    Account,
    AccountKind,
    CappedSupply,
    Currency,
    DemandController,
    FeeSchedule,
    FixedEmission,
    InsufficientFundsError,
    InvalidSettlementError,
    Ledger,
    OraclePrice,
    render_burn,
    split_rewards,
)
from auction.simulation import (
    AuditPolicy,
    Design,
    ExampleFlow,
    InvalidSimulationError,
    Payment,
    Rewards,
    SimulationResult,
    compare,
    plot,
    simulate,
)

USDC = Currency("USDC", 6)
TOK = Currency("TOK", 6)
PRICE = OraclePrice.of(TOK, USDC, "2")  # one token is worth 2 USDC


def offer(oid: str, provider: str, gpus: int = 4, price: int = 2_000_000, **kw: Any) -> Offer:
    return Offer(id=oid, provider=provider, gpu_model=kw.pop("gpu_model", "H100"), gpus=gpus,
                 price=price, region="us-east", vram_gb=80, **kw)


def request(rid: str, gpus: int, hours: int, tenant: str = "lab", **kw: Any) -> Request:
    return Request(id=rid, tenant=tenant, gpus=gpus, max_price=kw.pop("max_price", 3_000_000),
                   duration_hours=hours, **kw)


class ScriptFlow:
    """A fixed script: the orders of each epoch (nothing after the script)."""

    def __init__(self, script: Sequence[Iterable[Order]]) -> None:
        self.script = [list(orders) for orders in script]

    def __call__(self, epoch: int, rng: np.random.Generator) -> list[Order]:
        return list(self.script[epoch]) if epoch < len(self.script) else []


# One 4-GPU offer every epoch. A 36-hour lease from epoch 0 holds it through epoch 1, so the
# request of epoch 1 finds no capacity; epoch 2 serves a 2-GPU day.
GOLDEN = ScriptFlow([
    [offer("o1", "p1"), request("r0", 4, 36)],
    [offer("o1", "p1"), request("r1", 4, 1)],
    [offer("o1", "p1"), request("r2", 2, 24)],
])


def check_books(r: SimulationResult) -> None:
    """Conservation, no forbidden negative balance, replay and the supply identity."""
    led = r.ledger
    sums: dict[str, int] = {}
    for (account, currency), amount in led.balances().items():
        sums[currency] = sums.get(currency, 0) + amount
        if account.kind not in led.allow_negative:
            assert amount >= 0, (account, currency, amount)
    assert all(v == 0 for v in sums.values()), sums
    assert Ledger.replay(led.journal) == led
    token = r.design.token
    prev = r.initial_supply
    for e in range(r.epochs):
        assert int(r.supply[e]) == prev + int(r.minted[e]) - int(r.burned[e])
        prev = int(r.supply[e])
    assert prev == led.supply(token)
    assert led.supply(token) == led.minted(token) - led.redeemed(token) - led.burned(token)


# -- golden: the rules, worked by hand ---------------------------------------------------------
def test_golden_leases_capacity_and_revenue() -> None:
    r = simulate(GOLDEN, Design(fees=FeeSchedule({"USDC": "20%"})), epochs=3)
    check_books(r)
    assert r.status == ("success", "success", "success")  # epoch 1: nothing to trade
    assert r.requests.tolist() == [1, 1, 1]
    assert r.served.tolist() == [1, 0, 1]
    assert r.leases.tolist() == [1, 0, 1]
    assert r.offered_gpu_hours.tolist() == [96, 96, 96]
    assert r.served_gpu_hours.tolist() == [4 * 24, 4 * 12, 2 * 24]
    assert r.utilization.tolist() == [1.0, 0.5, 0.5]
    (a, b) = r.lease_log
    assert (a.lease.start, a.stop, a.lease.gpus, b.lease.start, b.stop) == (0, 36, 4, 48, 72)
    hours = [24, 12, 24]
    rates = [a.lease.rate, a.lease.rate, b.lease.rate]
    assert r.revenue.tolist() == [x * h for x, h in zip(rates, hours, strict=True)]
    # 20% of each hour's payment to the protocol, the rest to the provider
    assert r.protocol_revenue.tolist() == [x * h // 5 for x, h in zip(rates, hours, strict=True)]
    assert r.provider_income[:, 0].tolist() == (r.revenue - r.protocol_revenue).tolist()
    assert r.providers == ("p1",)
    # tenants deposited every lease's whole cost: paid out, or still in escrow
    led = r.ledger
    escrow = led.total(AccountKind.TENANT_ESCROW, "USDC")
    assert escrow == 0
    assert led.minted("USDC") == sum(int(x) for x in r.revenue)


def test_golden_render_burns_the_value_of_each_epoch() -> None:
    design = Design(settle=Payment.RENDER, token="TOK", token_price=PRICE,
                    genesis_supply=10**12, emission=FixedEmission(1_000))
    r = simulate(GOLDEN, design, epochs=3)
    check_books(r)
    assert r.initial_supply == 10**12
    for e in range(3):
        burn = render_burn(int(r.revenue[e]), PRICE)
        assert burn.paid == -(-int(r.revenue[e]) // 2)  # same decimals: value / 2, rounded up
        assert (int(r.burned[e]), int(r.token_fees[e])) == (burn.burned, burn.fee)
    assert r.protocol_revenue.tolist() == [0, 0, 0]
    assert r.provider_income.tolist() == [[0], [0], [0]]  # paid only by the emission
    assert r.provider_rewards.tolist() == [[1_000], [1_000], [1_000]]
    assert r.ledger.balance(Account(AccountKind.MARKET), "TOK") == 10**12 - sum(
        render_burn(int(v), PRICE).paid for v in r.revenue
    )


def test_render_needs_enough_tokens_on_the_market() -> None:
    design = Design(settle="render", token="TOK", token_price=PRICE, genesis_supply=5)
    with pytest.raises(InsufficientFundsError, match="market"):
        simulate(GOLDEN, design, epochs=1)


# -- failures -------------------------------------------------------------------------------------
def test_failed_leases_stop_and_refund() -> None:
    r = simulate(GOLDEN, Design(), epochs=3, reliability=0.0, seed=3)
    check_books(r)
    assert all(rec.failed for rec in r.lease_log)
    for rec in r.lease_log:
        assert rec.lease.start <= rec.stop < rec.lease.start + (rec.lease.periods or 0)
    # only the hours before each failure were paid; the rest came back to the tenant
    paid = sum(rec.lease.rate * (rec.stop - rec.lease.start) for rec in r.lease_log)
    assert sum(int(x) for x in r.revenue) == paid
    led = r.ledger
    assert led.total(AccountKind.TENANT_ESCROW, "USDC") == 0
    assert led.total(AccountKind.TENANT, "USDC") == led.minted("USDC") - paid
    assert int(r.failures.sum()) == len(r.lease_log)


def test_reliability_per_provider() -> None:
    flow = ExampleFlow()
    r = simulate(flow, Design(), epochs=2, reliability={"missing-provider": 0.0})
    assert not any(rec.failed for rec in r.lease_log)
    bad = r.lease_log[0].lease.provider
    r = simulate(flow, Design(), epochs=2, reliability={bad: 0.0})
    assert {rec.lease.provider for rec in r.lease_log if rec.failed} == {bad}
    check_books(r)


# -- capacity and accounting, on random flows -------------------------------------------------
@st.composite
def script_flows(draw: st.DrawFn) -> ScriptFlow:
    epochs = draw(st.integers(1, 4))
    providers = ["p1", "p2", "p3"]
    script = []
    for e in range(epochs):
        orders: list[Order] = []
        for i in range(draw(st.integers(0, 3))):
            orders.append(offer(f"o{i}", providers[i], gpus=draw(st.integers(1, 4)),
                                price=draw(st.integers(0, 5)) * 500_000))
        for j in range(draw(st.integers(0, 4))):
            orders.append(request(f"e{e}-r{j}", draw(st.integers(1, 4)),
                                  draw(st.sampled_from([1, 5, 24, 30, 60])),
                                  tenant=f"t{j % 2}", divisible=draw(st.booleans()),
                                  max_price=draw(st.integers(0, 6)) * 500_000))
        script.append(orders)
    return ScriptFlow(script)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flow=script_flows(), reliability=st.sampled_from([1.0, 0.5]),
       payment=st.sampled_from(["pay-as-bid", "vcg"]), seed=st.integers(0, 3))
def test_capacity_and_accounting_on_random_flows(
    flow: ScriptFlow, reliability: float, payment: str, seed: int
) -> None:
    design = Design(mechanism="assignment", payment=payment,
                    fees=FeeSchedule({"USDC": "20%"}), emission=FixedEmission(7))
    epochs = len(flow.script)
    h = 24
    r = simulate(flow, design, epochs=epochs, epoch_hours=h, reliability=reliability, seed=seed)
    check_books(r)
    # capacity: an epoch's new leases on an offer, plus the GPUs earlier leases still hold on
    # it, never exceed what the offer posted that epoch (a running lease keeps its GPUs
    # whether or not the offer is posted again)
    for e, orders in enumerate(flow.script):
        posted = {o.id: o.gpus for o in orders if isinstance(o, Offer)}
        held: dict[str, int] = {}
        for rec in r.lease_log:
            lease = rec.lease
            if lease.start == e * h or (lease.start < e * h < rec.stop):
                held[lease.offer_id] = held.get(lease.offer_id, 0) + lease.gpus
        new = {rec.lease.offer_id for rec in r.lease_log if rec.lease.start == e * h}
        assert all(held[o] <= posted.get(o, 0) for o in new), (e, held, posted)
    # served GPU-hours and revenue per epoch, recomputed from the lease log
    for e in range(epochs):
        lo, hi = e * h, (e + 1) * h
        spans = [(rec, max(rec.lease.start, lo), min(rec.stop, hi)) for rec in r.lease_log]
        spans = [(rec, a, b) for rec, a, b in spans if b > a]
        assert int(r.served_gpu_hours[e]) == sum(rec.lease.gpus * (b - a) for rec, a, b in spans)
        assert int(r.revenue[e]) == sum(rec.lease.rate * (b - a) for rec, a, b in spans)
        assert int(r.served_gpu_hours[e]) <= int(r.offered_gpu_hours[e])
    assert int(r.revenue.sum()) == int(r.protocol_revenue.sum()) + int(r.income.sum())
    # every epoch's emission was minted; the pool holds what had no one to go to
    assert r.minted.tolist() == [7] * epochs
    pool = r.ledger.balance(Account(AccountKind.EMISSIONS_POOL), "TOKEN")
    assert int(r.rewards.sum()) + pool == 7 * epochs


# -- emissions --------------------------------------------------------------------------------
def test_pool_carries_over_epochs_without_work() -> None:
    flow = ScriptFlow([
        [offer("o1", "p1"), offer("o2", "p2", gpu_model="A100"),
         request("r0", 6, 2, divisible=True)],
        [],
        [offer("o1", "p1"), request("r2", 1, 1)],
    ])
    power = {"H100": 3, "A100": 1}
    design = Design(emission=FixedEmission(100), gpu_power=power)
    r = simulate(flow, design, epochs=3)
    check_books(r)
    # epoch 0: 4 H100 GPUs x 2 h x 3 against 2 A100 GPUs x 2 h x 1 (cheaper first: equal asks,
    # so the book's order); epoch 1: no work, the pool keeps 100; epoch 2 pays 200 to p1
    served = {rec.lease.offer_id: rec.lease.gpus for rec in r.lease_log if rec.lease.start == 0}
    weights = {"p1": served.get("o1", 0) * 2 * 3, "p2": served.get("o2", 0) * 2 * 1}
    expect0 = split_rewards(100, {k: v for k, v in weights.items() if v})
    col = {p: i for i, p in enumerate(r.providers)}
    assert {p: int(r.provider_rewards[0, col[p]]) for p in expect0} == expect0
    assert r.rewards.tolist() == [100, 0, 200]
    assert int(r.provider_rewards[2, col["p1"]]) == 200


def test_design_evolves_with_gpu_power() -> None:
    """attrs.evolve copies every field, gpu_power's stored pairs included."""
    design = Design(emission=FixedEmission(100), gpu_power={"H100": 3, "A100": 1})
    moved = attrs.evolve(design, quality_weight=0, currency="USDT")
    assert moved.gpu_power == design.gpu_power == (("A100", 1), ("H100", 3))
    assert moved.currency == "USDT"
    assert moved.emission == design.emission
    assert attrs.evolve(design) == design
    for bad in ((("H100", 1), ("H100", 2)), ("H100",), 5):
        with pytest.raises(InvalidSimulationError, match="gpu_power"):
            attrs.evolve(design, gpu_power=bad)  # type: ignore[arg-type]


def test_availability_rewards_pay_idle_capacity() -> None:
    flow = ScriptFlow([[offer("o1", "p1", gpus=3), offer("o2", "p2", gpus=1)]])
    r = simulate(flow, Design(emission=FixedEmission(10), rewards=Rewards.AVAILABILITY), epochs=1)
    assert r.served_gpu_hours.tolist() == [0]
    assert r.provider_rewards.tolist() == [[8, 2]]  # quotas 7.5 and 2.5: tie to the first id
    r = simulate(flow, Design(emission=FixedEmission(10)), epochs=1)  # work: no one worked
    assert r.provider_rewards.tolist() == [[0, 0]]
    assert r.ledger.balance(Account(AccountKind.EMISSIONS_POOL), "TOKEN") == 10


def test_capped_emission_stops_at_the_cap() -> None:
    cap = CappedSupply(cap=1_000 + 250, inner=FixedEmission(100), initial_supply=1_000)
    design = Design(emission=cap, genesis_supply=1_000)
    r = simulate(ExampleFlow(), design, epochs=4)
    check_books(r)
    assert r.minted.tolist() == [100, 100, 50, 0]
    assert r.supply.tolist() == [1_100, 1_200, 1_250, 1_250]


def test_demand_controller_follows_revenue() -> None:
    ctrl = DemandController(target_revenue=10_000_000_000, gain=Fraction(1, 2),
                            min_issuance=1_000, max_issuance=10**9)
    flow = ExampleFlow(demand=(0.3, 1.0, 2.0, 0.2))
    r = simulate(flow, Design(emission=ctrl, initial_issuance=10**6), epochs=5)
    check_books(r)
    minted = r.minted.tolist()
    assert minted[0] == 10**6
    for e in range(4):
        assert minted[e + 1] == ctrl.next_issuance(minted[e], int(r.revenue[e]))
    # issuance falls after an epoch above target revenue, rises after one below (within bounds)
    for e in range(4):
        above = int(r.revenue[e]) > ctrl.target_revenue
        assert (minted[e + 1] <= minted[e]) if above else (minted[e + 1] >= minted[e])
    assert any(int(x) > ctrl.target_revenue for x in r.revenue)
    assert any(int(x) < ctrl.target_revenue for x in r.revenue)


# -- designs, determinism ---------------------------------------------------------------------
def test_same_seed_same_run_and_order_independence() -> None:
    design = Design(fees=FeeSchedule.akash(), emission=FixedEmission(1_000))
    a = simulate(ExampleFlow(), design, epochs=3, seed=5, reliability=0.9)
    b = simulate(ExampleFlow(), design, epochs=3, seed=5, reliability=0.9)
    assert a.to_records() == b.to_records()
    assert a.ledger == b.ledger

    class Shuffled(ExampleFlow):
        def __call__(self, epoch: int, rng: np.random.Generator) -> list[Order]:
            orders = super().__call__(epoch, rng)
            perm = np.random.default_rng(99).permutation(len(orders))
            return [orders[i] for i in perm]

    c = simulate(Shuffled(), design, epochs=3, seed=5, reliability=0.9)
    assert c.to_records() == a.to_records()
    assert c.ledger == a.ledger
    d = simulate(ExampleFlow(), design, epochs=3, seed=6, reliability=0.9)
    assert d.to_records() != a.to_records()


def _flow_for(name: str) -> ExampleFlow:
    tags = tags_of(name)
    return ExampleFlow(demand=0.3, exchange=tags.call_market or name in ("lp", "gang"))


@pytest.mark.parametrize("name", available())
def test_every_registered_mechanism_runs(name: str) -> None:
    design = Design(mechanism=name, fees=FeeSchedule.akash(),
                    emission=FixedEmission(500))
    r = simulate(_flow_for(name), design, epochs=2, epoch_hours=12)
    check_books(r)
    assert r.status[0] != "failed"
    assert int(r.served.sum()) > 0
    assert int(r.revenue.sum()) == int(r.protocol_revenue.sum()) + int(r.income.sum())


def test_reputation_feeds_the_next_epochs_scoring_auction() -> None:
    # Two 1-GPU offers, "bad" one unit cheaper. Epoch 0 serves two 1-hour requests: bad fails,
    # good completes. In epoch 1 price-only clearing picks bad again; with a quality weight the
    # good provider's score outbids the one-unit difference.
    def orders(e: int, n: int) -> list[Order]:
        return [offer("b", "bad", gpus=1, price=999_999),
                offer("g", "good", gpus=1, price=1_000_000),
                *(request(f"e{e}-r{i}", 1, 1, max_price=2_000_000) for i in range(n))]

    flow = ScriptFlow([orders(0, 2), orders(1, 1)])
    winners = {}
    for w in (0, 1_000):
        design = Design(reputation="beta", quality_weight=w)
        r = simulate(flow, design, epochs=2, epoch_hours=1, reliability={"bad": 0.0})
        check_books(r)
        assert r.reputation is not None
        assert r.reputation.score("bad") == 0.0 < r.reputation.score("good")
        assert [rec.failed for rec in r.lease_log[:2]] == [True, False]
        (late,) = [rec for rec in r.lease_log if rec.lease.start == 1]
        winners[w] = late.lease.provider
    assert winners == {0: "bad", 1_000: "good"}
    r = simulate(flow, Design(), epochs=2, epoch_hours=1, reliability={"bad": 0.0})
    assert r.reputation is None
    assert r.lease_log[-1].lease.provider == "bad"


# -- waiting requests ---------------------------------------------------------------------------
def test_patience_carries_unserved_requests_over() -> None:
    """One 1-GPU offer, three 1-hour requests in epoch 0 and none after: with patience 1 the
    two left wait one epoch (one is served in epoch 1, the other gives up); re-posting an id
    replaces the waiting request; with patience 0 they are dropped."""
    script: list[list[Order]] = [[offer("o", "p", gpus=1), *(request(f"r{i}", 1, 1, submitted_at=i)
                                          for i in range(3))],
              [offer("o", "p", gpus=1)], [offer("o", "p", gpus=1)]]
    r = simulate(ScriptFlow(script), Design(), epochs=3, epoch_hours=1, patience=1)
    check_books(r)
    assert r.requests.tolist() == [3, 2, 0]
    assert r.waiting.tolist() == [0, 2, 0]
    assert [(rec.lease.start, rec.lease.request_id) for rec in r.lease_log] == [
        (0, "r0"), (1, "r1")]
    assert r.to_records()[1]["waiting"] == 2
    plain = simulate(ScriptFlow(script), Design(), epochs=3, epoch_hours=1)
    assert plain.requests.tolist() == [3, 0, 0]
    # a re-posted id replaces the waiting one (here with a lower max price: not served)
    again: list[list[Order]] = [
        script[0], [offer("o", "p", gpus=1), request("r1", 1, 1, max_price=1)],
             script[2]]
    r2 = simulate(ScriptFlow(again), Design(), epochs=3, epoch_hours=1, patience=1)
    assert r2.requests.tolist() == [3, 2, 1]
    assert [rec.lease.request_id for rec in r2.lease_log] == ["r0", "r2"]
    with pytest.raises(InvalidSimulationError, match="patience"):
        simulate(ScriptFlow(script), Design(), epochs=1, patience=-1)
    with pytest.raises(InvalidSimulationError, match="patience"):
        ExampleFlow(patience=-1)


def test_example_flow_patience_orders_arrivals_across_epochs() -> None:
    flow = ExampleFlow(demand=0.05, patience=2)
    first = [o for o in flow(0, np.random.default_rng(0)) if isinstance(o, Request)]
    second = [o for o in flow(1, np.random.default_rng(1)) if isinstance(o, Request)]
    assert max(r.submitted_at for r in first) < min(r.submitted_at for r in second)
    plain = ExampleFlow(demand=0.05)(1, np.random.default_rng(1))
    assert next(r.submitted_at for r in plain if isinstance(r, Request)) == 0


# -- audits -------------------------------------------------------------------------------------
def _audit_flow(epochs: int) -> ScriptFlow:
    """Three providers, one failing ("bad"): 1-hour requests each epoch for all of them."""
    return ScriptFlow([
        [offer("b", "bad", gpus=1, price=999_998), offer("g", "good", gpus=1, price=999_999),
         offer("h", "ok", gpus=2, price=1_000_000),
         *(request(f"e{e}-r{i}", 1, 1, max_price=2_000_000) for i in range(4))]
        for e in range(epochs)
    ])


def test_audits_sample_catch_slash_and_exclude() -> None:
    """Every provider audited (rate 1): "bad" fails its leases, so it fails each audit, loses
    a third of its stake to the treasury (reported as slashed, not as fees or tenant revenue),
    and sits out the next epoch."""
    from auction.reputation.events import Outcome
    from auction.settlement.penalties import PenaltyPolicy

    policy = AuditPolicy(sample_rate="100%", stake=900,
                         penalty=PenaltyPolicy(slash={Outcome.AUDIT_FAILED: Fraction(1, 3)}),
                         exclude_epochs=1)
    design = Design(reputation="beta", audit=policy)
    r = simulate(_audit_flow(4), design, epochs=4, epoch_hours=1, reliability={"bad": 0.0})
    check_books(r)
    # epoch 0: 3 audited, bad caught; epoch 1: bad excluded (2 audited, none caught); epoch 2
    # as epoch 0, after which 900 - 300 - 300 = 300 remains; epoch 3 excluded again
    assert r.audited.tolist() == [3, 2, 3, 2]
    assert r.audit_failures.tolist() == [1, 0, 1, 0]
    assert r.slashed.tolist() == [300, 0, 300, 0]
    assert {rec.lease.start for rec in r.lease_log if rec.lease.provider == "bad"} == {0, 2}
    stake = Account(AccountKind.PROVIDER_STAKE, "bad")
    assert r.ledger.balance(stake, "USDC") == 300
    assert r.ledger.balance(Account(AccountKind.TREASURY), "USDC") == 600
    assert int(r.protocol_revenue.sum()) == 0  # no fees
    assert int(r.revenue.sum()) == int(r.income.sum())
    assert r.to_records()[0]["audit_failures"] == 1
    assert r.reputation is not None
    assert r.reputation.score("bad") < r.reputation.score("good")
    # the same run without audits: bad serves every epoch and nothing is slashed
    plain = simulate(_audit_flow(4), Design(reputation="beta"), epochs=4, epoch_hours=1,
                     reliability={"bad": 0.0})
    assert plain.audited.tolist() == [0, 0, 0, 0]
    assert {rec.lease.start for rec in plain.lease_log if rec.lease.provider == "bad"} == {
        0, 1, 2, 3}


@pytest.mark.parametrize("rate", ["10%", "34%", "50%", "100%"])
def test_audit_sample_is_audit_sample(rate: str) -> None:
    """The simulation audits `audit_sample`'s draw, ceil(rate x n) providers weighted by the
    GPUs offered: "bad" (whose leases all fail) is caught exactly in the epochs it is drawn."""
    from auction.reputation.audit import audit_sample

    policy = AuditPolicy(sample_rate=rate, seed="s")
    r = simulate(_audit_flow(12), Design(audit=policy), epochs=12, epoch_hours=1, seed=7,
                 reliability={"bad": 0.0})
    k = policy.sample_size(3)
    assert k == -(-int(rate[:-1]) * 3 // 100)
    assert r.audited.tolist() == [k] * 12
    drawn = [audit_sample("s:7", e, ["bad", "good", "ok"], [1, 1, 2], k) for e in range(12)]
    assert r.audit_failures.tolist() == [int("bad" in d) for d in drawn]


def test_audit_policy_rejects_bad_values() -> None:
    for field, kw in (("sample_rate", {"sample_rate": "150%"}), ("stake", {"stake": -1}),
                      ("exclude_epochs", {"exclude_epochs": 1.5}), ("seed", {"seed": ""}),
                      ("penalty", {"penalty": 3})):
        with pytest.raises(InvalidSettlementError, match=field):  # the simulation's base
            AuditPolicy(**kw)
    with pytest.raises(InvalidSimulationError, match="audit"):
        Design(audit="10%")


def test_compare_and_records() -> None:
    runs = {
        "akash": simulate(ExampleFlow(), Design(fees=FeeSchedule.akash()), epochs=2),
        "io.net": simulate(ExampleFlow(), Design(fees=FeeSchedule.io_net()), epochs=2),
    }
    rows = compare(runs)
    assert [row["design"] for row in rows] == ["akash", "io.net"]
    for row, run in zip(rows, runs.values(), strict=True):
        assert row["revenue"] == sum(rec["revenue"] for rec in run.to_records())
        assert 0 < row["utilization"] <= 1
    # the same hours cost tenants more under io.net's tenant-side fees; Akash keeps more
    assert rows[0]["protocol_revenue"] > rows[1]["protocol_revenue"]


def test_plot(tmp_path: Any) -> None:
    r = simulate(GOLDEN, Design(emission=FixedEmission(5)), epochs=3)
    path = tmp_path / "sim.png"
    fig = plot({"a": r, "b": r}, str(path))
    assert path.stat().st_size > 1_000
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 7
    assert [np.size(line.get_xdata()) for line in visible[0].get_lines()] == [3, 3]
    assert r.plot() is not None


def test_plot_without_matplotlib_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import fails
    r = simulate(GOLDEN, Design(), epochs=1)
    with pytest.raises(MissingDependencyError, match="auction\\[plot\\]") as info:
        plot({"a": r})
    assert isinstance(info.value, ImportError)
    assert (info.value.feature, info.value.package) == ("plotting", "matplotlib")


# -- errors -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"epochs": -1}, "epochs"),
        ({"epochs": 2, "epoch_hours": 0}, "epoch_hours"),
        ({"epochs": 2, "reliability": 1.5}, "reliability"),
        ({"epochs": 2, "reliability": {"p1": -0.1}}, "reliability['p1']"),
    ],
)
def test_bad_arguments_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidSimulationError) as err:
        simulate(GOLDEN, **kwargs)
    assert err.value.field == field


def test_bad_designs_and_flows() -> None:
    with pytest.raises(InvalidSimulationError, match="token_price"):
        Design(settle="render")
    with pytest.raises(InvalidSimulationError, match="quality_weight"):
        Design(quality_weight=5)
    from auction.mechanisms import get

    with pytest.raises(InvalidSimulationError, match="instance"):
        Design(mechanism=get("first-price"), payment="pay-as-bid")
    mech = get("assignment", payment="vcg")
    by_instance = simulate(GOLDEN, Design(mechanism=mech), epochs=3)
    by_name = simulate(GOLDEN, Design(mechanism="assignment", payment="vcg"), epochs=3)
    assert by_instance.to_records() == by_name.to_records()
    with pytest.raises(InvalidSimulationError, match="emission"):
        Design(emission=100)
    with pytest.raises(InvalidSimulationError, match="gpu_power"):
        Design(gpu_power={"H100": 1.5})  # type: ignore[arg-type]
    with pytest.raises(InvalidSimulationError, match="demand"):
        ExampleFlow(demand=-1)
    with pytest.raises(ValueError, match="barter"):
        Design(settle="barter")
    for field in ("settle", "rewards"):
        with pytest.raises(InvalidSimulationError) as bad:
            Design(**cast(dict[str, Any], {field: "barter"}))
        assert (bad.value.field, bad.value.value) == (field, "barter")
    other = OraclePrice.of(Currency("XYZ", 6), USDC, "1")
    with pytest.raises(InvalidSimulationError, match="must price TOK"):
        Design(token="TOK", token_price=[other]).price_at(0)
    with pytest.raises(InvalidSimulationError, match="flow"):
        simulate(ScriptFlow([["not an order"]]), epochs=1)  # type: ignore[list-item]
    bad_ids = ScriptFlow([[offer("o1", "p1"), request("r", 1, 1), request("r", 1, 1)]])
    with pytest.raises(DuplicateOrderError, match="'r'"):
        simulate(bad_ids, epochs=1)
    with pytest.raises(InvalidSimulationError, match="flow"):
        simulate(lambda e, rng: None, epochs=1)  # type: ignore[arg-type]
    with pytest.raises(InvalidSimulationError, match="results"):
        compare({"a": 5})  # type: ignore[dict-item]
    with pytest.raises(InvalidSimulationError, match="results"):
        compare([by_name])  # type: ignore[arg-type]
    assert attrs.asdict(Design())["currency"] == "USDC"
