"""auction.live: continuous rules against a brute-force oracle, time and leases, typed errors
with nothing half-applied, idempotent event ids, periodic clears, threads."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import auction
from auction import (
    DuplicateOrderError,
    InvalidOrderError,
    Offer,
    OrderBook,
    Request,
    UnknownOrderError,
)
from auction.errors import InvalidEventError, UnknownLeaseError
from auction.live import RULES, LiveMarket

MODELS = ("H100", "A100")
REGIONS = ("us", "eu")


def offer(i: int, price: int, gpus: int = 4, model: str = "H100", region: str = "us",
          provider: str | None = None, t: int = 0) -> Offer:
    return Offer(id=f"o{i}", provider=provider or f"p{i % 3}", gpu_model=model, gpus=gpus,
                 price=price, region=region, vram_gb=80, submitted_at=t)


def request(i: int, max_price: int, gpus: int = 1, models: tuple[str, ...] = (),
            divisible: bool = False, t: int = 0, hours: int = 1) -> Request:
    return Request(id=f"r{i}", tenant=f"t{i % 2}", gpus=gpus, max_price=max_price,
                   gpu_models=frozenset(models), divisible=divisible, submitted_at=t,
                   duration_hours=hours)


def fills(events: list[Any]) -> list[tuple[str, str, int, int]]:
    return [(e.data["request_id"], e.data["offer_id"], e.data["gpus"], e.data["unit_price"])
            for e in events if e.kind == "fill"]


# -- an independent oracle: scan every open order, pick by the rule's documented key -------
def _eligible(o: Offer, r: Request) -> bool:
    return ((not r.gpu_models or o.gpu_model in r.gpu_models)
            and (not r.regions or o.region in r.regions)
            and o.vram_gb >= r.min_vram_gb and r.required_tags <= o.tags
            and o.price <= r.max_price and (r.divisible or o.gpus >= r.gpus))


def oracle(rule: str, orders: list[Offer | Request]) -> list[tuple[str, str, int, int]]:
    book: dict[str, Offer | Request] = {}
    out = []
    for new in orders:
        book[new.id] = new
        while new.id in book:
            cur = book[new.id]
            if isinstance(cur, Request):
                cands = [o for o in book.values() if isinstance(o, Offer) and _eligible(o, cur)]
                if not cands:
                    break
                key = ((lambda o: (o.submitted_at, o.id)) if rule == "fifo"
                       else (lambda o: (o.price, o.submitted_at, o.id)))
                o = min(cands, key=key)
                r, price = cur, o.price
            else:
                rs = [r for r in book.values() if isinstance(r, Request) and _eligible(cur, r)]
                if not rs:
                    break
                rkey = ((lambda r: (-r.max_price, r.submitted_at, r.id)) if rule == "price-time"
                        else (lambda r: (r.submitted_at, r.id)))
                r = min(rs, key=rkey)
                o = cur
                price = r.max_price if rule == "price-time" else o.price
            g = min(r.gpus, o.gpus) if r.divisible else r.gpus
            out.append((r.id, o.id, g, price))
            for x in (r, o):
                left = x.gpus - g
                if left:
                    book[x.id] = Offer(**{**x.to_record(), "gpus": left}) if isinstance(
                        x, Offer) else Request(**{**x.to_record(), "gpus": left})
                else:
                    del book[x.id]
    return out


@st.composite
def order_flows(draw: st.DrawFn) -> list[Offer | Request]:
    n = draw(st.integers(1, 25))
    flow: list[Offer | Request] = []
    for i in range(n):
        t = draw(st.integers(0, 5))
        if draw(st.booleans()):
            flow.append(offer(i, draw(st.integers(1, 9)), draw(st.integers(1, 4)),
                              draw(st.sampled_from(MODELS)), t=t))
        else:
            models = draw(st.sampled_from([(), ("H100",), ("A100",)]))
            flow.append(request(i, draw(st.integers(1, 9)), draw(st.integers(1, 4)), models,
                                draw(st.booleans()), t=t))
    return flow


@pytest.mark.parametrize("rule", RULES)
@given(flow=order_flows())
def test_continuous_rules_match_the_oracle(rule: str, flow: list[Offer | Request]) -> None:
    m = LiveMarket(mode="continuous", rule=rule)
    got = []
    for order in flow:
        got += fills(m.submit(order))
    assert got == oracle(rule, flow)
    # what rests is what the oracle leaves, and the GPU totals balance
    filled = sum(g for _, _, g, _ in got)
    offered = sum(o.gpus for o in flow if isinstance(o, Offer))
    free = sum(o.gpus for o in m.orders() if isinstance(o, Offer))
    assert free + filled == offered


def run_flow(rule: str, flow: list[Offer | Request]) -> list[tuple[str, str, int, int]]:
    m = LiveMarket(rule=rule)
    return [f for o in flow for f in fills(m.submit(o))]


@st.composite
def scoring_flows(draw: st.DrawFn) -> tuple[list[Offer], list[Request], dict[str, float],
                                            int, dict[str, float]]:
    """Offers that rest first, then requests arriving one by one, with quality per
    provider (some unlisted), a quality weight (0 included) and reputations."""
    n_off, n_req = draw(st.integers(1, 7)), draw(st.integers(1, 8))
    offers = [offer(i, draw(st.integers(1, 12)), gpus=draw(st.integers(1, 4)),
                    model=draw(st.sampled_from(MODELS)), provider=f"p{draw(st.integers(0, 4))}",
                    t=draw(st.integers(0, 3))) for i in range(n_off)]
    requests = [request(100 + i, draw(st.integers(1, 14)), gpus=draw(st.integers(1, 4)),
                        models=draw(st.sampled_from([(), ("H100",), ("A100",)])),
                        divisible=draw(st.booleans()), t=4 + i) for i in range(n_req)]
    grades = st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.95, 1.0])
    quality = {f"p{k}": draw(grades) for k in range(5) if draw(st.booleans())}
    reputation = {f"p{k}": draw(grades) for k in range(5) if draw(st.booleans())}
    weight = draw(st.sampled_from([0, 1, 3, 10, 1_000]))
    return offers, requests, quality, weight, reputation


@pytest.mark.parametrize("rule", ["price-time", "posted-price"])
@pytest.mark.parametrize("own_quality", [True, False])
@given(scoring_flows())
def test_continuous_scoring_ranks_offers_like_a_batch_clear(
    rule: str, own_quality: bool,
    flow: tuple[list[Offer], list[Request], dict[str, float], int, dict[str, float]],
) -> None:
    """Where the rules coincide (every offer rests before the first request, requests
    arrive in priority order), continuous matching with quality bonuses gives the fills of
    a batch `first-price` clear of the same book on a scoring `Market`."""
    offers, requests, quality, weight, reputation = flow
    q = quality if own_quality else None
    m = LiveMarket(rule=rule, quality=q, quality_weight=weight, reputation=reputation)
    for o in offers:
        m.submit(o, at=0)
    got = []
    for k, r in enumerate(requests):
        got += fills(m.submit(r, at=1 + k))
    market = auction.Market(OrderBook([*offers, *requests]), reputation, quality=q,
                            quality_weight=weight)
    res = auction.clear(market, "first-price")
    want = list(zip(res.request_id.tolist(), res.offer_id.tolist(), res.gpus.tolist(),
                    res.unit_price.tolist(), strict=True))
    assert sorted(got) == sorted(want)
    provider_of = {o.id: o.provider for o in offers}
    assert [m.bonus(provider_of[i]) for i in market.snapshot.offers.id.tolist()] == (
        market.offer_bonus.tolist())


def test_a_quality_bonus_wins_at_a_higher_ask() -> None:
    for rule in ("price-time", "posted-price"):
        m = LiveMarket(rule=rule, quality={"good": 1.0}, quality_weight=3)
        m.submit(offer(1, 10, provider="good"), at=0)  # score 7
        m.submit(offer(2, 8, provider="plain"), at=0)  # score 8
        assert m.bonus("good") == 3
        assert m.bonus("plain") == 0
        assert fills(m.submit(request(1, 12), at=1)) == [("r1", "o1", 1, 10)]
        # the ask must still be at most the max price: o1 (ask 10) cannot serve 9
        assert fills(m.submit(request(2, 9), at=2)) == [("r2", "o2", 1, 8)]
    fifo = LiveMarket(rule="fifo", quality={"good": 1.0}, quality_weight=3)
    fifo.submit(offer(2, 8, provider="plain", t=0), at=0)
    fifo.submit(offer(1, 10, provider="good", t=1), at=0)
    assert fills(fifo.submit(request(1, 12), at=1)) == [("r1", "o2", 1, 8)]  # first come
    per = LiveMarket(mode="periodic", mechanism="first-price", quality={"good": 1.0},
                     quality_weight=3)
    per.submit(offer(1, 10, provider="good"), at=0)
    per.submit(offer(2, 8, provider="plain"), at=0)
    per.submit(request(1, 12), at=1)
    assert fills(per.clear(at=2)) == [("r1", "o1", 1, 10)]
    with pytest.raises(InvalidOrderError):
        LiveMarket(quality_weight=-1)


def test_rules_differ_where_documented() -> None:
    flow: list[Offer | Request] = [request(1, 10, t=1), request(2, 20, t=2), offer(3, 5, gpus=1)]
    got = {rule: run_flow(rule, flow) for rule in RULES}
    assert got == {"price-time": [("r2", "o3", 1, 20)],  # best bid, at the resting bid
                   "fifo": [("r1", "o3", 1, 5)],  # earliest, at the ask
                   "posted-price": [("r1", "o3", 1, 5)]}
    flow2: list[Offer | Request] = [offer(1, 9, t=1), offer(2, 5, t=2), request(3, 10)]
    got2 = {rule: run_flow(rule, flow2) for rule in RULES}
    assert got2 == {"price-time": [("r3", "o2", 1, 5)], "fifo": [("r3", "o1", 1, 9)],
                    "posted-price": [("r3", "o2", 1, 5)]}


def test_leases_hold_capacity_then_return_it_and_rematch() -> None:
    m = LiveMarket()
    m.submit(offer(1, 5, gpus=2), at=0)
    out = m.submit(request(1, 9, gpus=2, hours=2), at=100)
    assert [e.kind for e in out] == ["accepted", "fill", "lease-started"]
    (lease,) = m.leases()
    assert (lease.start, lease.end, lease.gpus) == (100, 100 + 7200, 2)
    assert m.orders() == [] or all(isinstance(o, Request) for o in m.orders())
    # a second request waits: the offer is fully leased
    assert fills(m.submit(request(2, 9, gpus=1), at=200)) == []
    out = m.advance(7300)
    kinds = [e.kind for e in out]
    assert kinds == ["lease-ended", "fill", "lease-started"]  # capacity back, r2 served
    assert out[0].at == 7300
    assert out[0].data["reason"] == "end"
    assert [le.request_id for le in m.leases()] == ["r2"]


def test_request_start_delays_the_lease_and_reclaim_ends_it_early() -> None:
    m = LiveMarket()
    m.submit(offer(1, 5, gpus=1), at=0)
    m.submit(request(1, 9), at=10, start=1000)
    (lease,) = m.leases()
    assert (lease.filled_at, lease.start, lease.end) == (10, 1000, 4600)
    m.reclaim(lease.id, notice=60, at=500)
    out = m.advance(600)
    assert [(e.kind, e.at, e.data.get("reason")) for e in out] == [
        ("lease-ended", 560, "reclaimed")]
    assert m.leases() == []
    assert [o.id for o in m.orders()] == ["o1"]
    with pytest.raises(UnknownLeaseError):
        m.reclaim(lease.id, notice=0)


def test_unfilled_orders_expire() -> None:
    m = LiveMarket()
    m.submit(request(1, 9, gpus=3, divisible=True), at=0, expires_at=50)
    m.submit(offer(1, 5, gpus=1), at=10)  # fills 1 of 3
    assert m.book.get("r1").gpus == 2
    out = m.advance(60)
    assert [(e.kind, e.at) for e in out] == [("expired", 50)]
    assert "r1" not in m.book
    assert len(m.leases()) == 1


def test_bad_events_raise_typed_errors_and_change_nothing() -> None:
    m = LiveMarket()
    m.submit(offer(1, 5), at=10, event_id="a")
    before = (m.to_state(), m.seq, m.now)
    with pytest.raises(DuplicateOrderError):
        m.submit(offer(1, 6), at=20)
    with pytest.raises(UnknownOrderError):
        m.cancel("nope", at=20)
    with pytest.raises(InvalidOrderError) as info:
        m.amend("o1", {"price": -1}, at=20)
    assert info.value.field == "price"
    with pytest.raises(InvalidOrderError):
        m.amend("o1", {"id": "x"})
    with pytest.raises(InvalidEventError) as ev:
        m.submit(offer(2, 5), at=5)  # time goes back
    assert ev.value.field == "at"
    with pytest.raises(InvalidEventError):
        m.submit(offer(2, 5), at=20, expires_at=20)
    with pytest.raises(InvalidEventError):
        m.submit(offer(2, 5), at=20, start=30)  # offers have no start
    with pytest.raises(InvalidEventError):
        m.clear()  # continuous markets do not clear
    with pytest.raises(InvalidEventError):
        m.submit(offer(2, 5), event_id="e7")  # e<digits> ids are the engine's own
    assert (m.to_state(), m.seq, m.now) == before
    rej = m.handle({"kind": "cancel", "order_id": "nope", "id": "c1"})
    assert [e.kind for e in rej] == ["rejected"]
    assert rej[0].data["error"] == "UnknownOrderError"
    assert (m.to_state(), m.seq, m.now) == before


def test_event_ids_are_idempotent() -> None:
    m = LiveMarket()
    assert m.submit(offer(1, 5), at=1, event_id="x")
    assert m.submit(offer(1, 5), at=1, event_id="x") == []  # a retry: no-op, no error
    assert m.has_applied("x")
    assert len(m.book) == 1


def test_the_id_window_is_bounded_and_old_ids_never_apply_twice() -> None:
    m = LiveMarket(id_window=3)
    for k in range(10):
        m.submit(offer(k, 5), at=k, event_id=f"x{k}")
    assert len(m.to_state()["applied"]) == 3  # bounded: x7, x8, x9
    assert m.has_applied("x9")
    assert not m.has_applied("x0")
    before = m.to_state()
    assert m.submit(offer(8, 5), at=8, event_id="x8") == []  # remembered: a no-op
    with pytest.raises(InvalidEventError, match="before the clock"):
        m.submit(offer(0, 5), at=0, event_id="x0")  # forgotten: refused by its time
    assert m.to_state() == before
    # ids that share the clock's instant are all kept, whatever the window
    for k in range(10, 16):
        m.submit(offer(k, 5), at=20, event_id=f"x{k}")
    assert {f"x{k}" for k in range(10, 16)} <= {k for k, _ in m.to_state()["applied"]}
    assert m.submit(offer(10, 5), at=20, event_id="x10") == []
    m.advance(21, event_id="tick")
    assert len(m.to_state()["applied"]) == 3
    with pytest.raises(InvalidEventError):
        m.submit(offer(10, 5), at=20, event_id="x10")
    assert len(m.book) == 16
    with pytest.raises(InvalidEventError):
        LiveMarket(id_window=0)


@given(st.lists(st.tuples(st.integers(0, 9), st.integers(0, 2)), min_size=1, max_size=40),
       st.integers(1, 4))
def test_retries_never_apply_twice_whatever_the_window(
    retries: list[tuple[int, int]], window: int
) -> None:
    """Inputs x0..x9 at times 0,0,1,1,...; then retries of any of them, each with its own
    time: every retry is a no-op or refused, never applied again."""
    m = LiveMarket(id_window=window)
    for k in range(10):
        m.submit(offer(k, 5), at=k // 2, event_id=f"x{k}")
    before = m.to_state()
    for k, _ in retries:
        try:
            out = m.submit(offer(k, 5), at=k // 2, event_id=f"x{k}")
        except InvalidEventError:
            continue
        assert out == []
    after = m.to_state()
    assert after == before
    assert len(after["applied"]) <= max(window, 2)


def test_order_ids_are_refused_while_open_or_leased_then_for_a_window() -> None:
    m = LiveMarket(id_window=2)
    m.submit(offer(1, 5, gpus=1), at=0)
    m.submit(request(1, 9), at=1)  # fills o1 whole: o1 parked, r1 leased until 3601
    m.cancel("o1", at=2)  # o1 leaves, but its lease still names it
    for oid in ("o1", "r1"):
        with pytest.raises(DuplicateOrderError):
            m.submit(offer(1, 5) if oid == "o1" else request(1, 9), at=3)
    assert sorted(m._held) == ["o1", "r1"]
    m.advance(3601)  # the lease ends: o1 and r1 retire into the window
    assert [k for k, _ in m.to_state()["retired"]] == ["r1", "o1"]
    with pytest.raises(DuplicateOrderError):
        m.submit(offer(1, 5), at=3601)
    for k in (2, 3):  # two more retire: r1 and o1 fall out of the window of 2
        m.submit(offer(k, 5), at=3602)
        m.cancel(f"o{k}", at=3602)
    assert [k for k, _ in m.to_state()["retired"]] == ["o2", "o3"]
    # a forgotten id is a new order (documented); no old lease gives it capacity
    m.submit(offer(1, 6, gpus=2), at=3603)
    assert m.orders() == [offer(1, 6, gpus=2)]
    assert m.leases() == []
    assert not m._held
    with pytest.raises(DuplicateOrderError):
        m.submit(offer(2, 5), at=3603)


@st.composite
def long_flows(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Submits of ids drawn from a small pool (so ids come back), cancels, reclaims and
    advances, each with an id and a time."""
    steps = draw(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 11), st.integers(1, 9),
                                    st.integers(0, 1200)), min_size=50, max_size=150))
    out: list[dict[str, Any]] = []
    t = 0
    for k, (kind, i, price, dt) in enumerate(steps):
        t += dt
        rec: dict[str, Any]
        if kind <= 1:
            rec = {"kind": "submit", "order": {"side": "offer", **offer(
                i, price, gpus=1 + i % 3, t=t).to_record()}}
        elif kind <= 3:
            rec = {"kind": "submit", "order": {"side": "request", **request(
                i, price, gpus=1 + i % 2, divisible=i % 4 == 0, t=t).to_record()},
                "expires_at": t + 1800}
        elif kind == 4:
            rec = {"kind": "cancel", "order_id": f"{'or'[i % 2]}{i}"}
        else:
            rec = {"kind": "reclaim", "lease_id": f"L{i * 7}", "notice": price * 100}
        out.append({**rec, "id": f"in{k}", "at": t})
    return out


@settings(max_examples=20)  # each example runs a stream of up to 150 inputs three times
@given(long_flows(), st.sampled_from([1, 2, 4, 10**6]), st.integers(0, 149))
def test_order_id_memory_stays_bounded_and_replays_identically(
    records: list[dict[str, Any]], window: int, cut: int
) -> None:
    """However long the stream, the remembered order ids are the open orders, those named by
    live leases and at most `window` retired ones; only an id submitted before is refused,
    and with a window longer than the stream every one is (as if all were kept); a second
    run, and a run restarted from a snapshot taken mid-stream, give the same outputs and the
    same state, bit for bit."""
    m = LiveMarket(id_window=window)
    outs = []
    ever: set[str] = set()
    for rec in records:
        got = [e.to_record() for e in m.handle(rec)]
        outs += got
        if rec["kind"] == "submit":
            oid = rec["order"]["id"]
            dup = [e for e in got if e["kind"] == "rejected"
                   and e["data"]["error"] == "DuplicateOrderError"]
            assert not dup or oid in ever
            if window > len(records):
                assert bool(dup) == (oid in ever)
            ever |= {e["data"]["order_id"] for e in got if e["kind"] == "accepted"}
        assert len(m._retired) <= window
        leases = m._leases.values()
        live = {le.request_id for le in leases} | {le.offer_id for le in leases}
        assert set(m._held) == live
        assert not set(m._retired) & (set(m._orders) | set(m._parked) | live)
    again = LiveMarket(id_window=window)
    assert [e.to_record() for rec in records for e in again.handle(rec)] == outs
    assert again.to_state() == m.to_state()
    cut = min(cut, len(records))
    first = LiveMarket(id_window=window)
    head = [e.to_record() for rec in records[:cut] for e in first.handle(rec)]
    restored = LiveMarket.from_state(first.to_state())
    tail = [e.to_record() for rec in records[cut:] for e in restored.handle(rec)]
    assert head + tail == outs
    assert restored.to_state() == m.to_state()


def test_an_old_snapshot_with_every_seen_id_loads_into_the_window() -> None:
    m = LiveMarket(id_window=2)
    for k in range(4):
        m.submit(offer(k, 5), at=k)
    m.cancel("o3", at=5)
    state = m.to_state()
    old = {k: v for k, v in state.items() if k != "retired"}
    old["seen"] = ["o0", "o1", "o2", "o3", "r9"]  # the format before the window
    r = LiveMarket.from_state(old)
    assert [k for k, _ in r.to_state()["retired"]] == ["o3", "r9"]  # open ones stay open
    with pytest.raises(DuplicateOrderError):
        r.submit(request(9, 9), at=6)


def test_amend_rematches_and_cancel_withdraws() -> None:
    m = LiveMarket()
    m.submit(offer(1, 8), at=0)
    m.submit(request(1, 5), at=1)
    out = m.amend("o1", {"price": 4}, at=2)
    assert fills(out) == [("r1", "o1", 1, 5)]  # price-time: at the resting bid
    m.cancel("o1", at=3)
    assert "o1" not in m.book
    assert len(m.leases()) == 1


def test_periodic_clears_every_epoch_like_a_from_scratch_clear() -> None:
    m = LiveMarket(mode="periodic", mechanism="first-price", epoch=60)
    flow: list[Offer | Request] = [offer(1, 5, gpus=2), offer(2, 3, gpus=1),
                                   request(1, 9, gpus=2), request(2, 4), request(3, 9)]
    for k, o in enumerate(flow):
        m.submit(o, at=k)
    expected = auction.clear(OrderBook(flow), "first-price")
    out = m.advance(60)
    cleared = [e for e in out if e.kind == "cleared"]
    assert len(cleared) == 1
    assert cleared[0].at == 60
    assert m.last_result is not None
    assert m.last_result.to_dict() == expected.to_dict()
    assert fills(out) == [(a["request_id"], a["offer_id"], a["gpus"], a["unit_price"])
                          for a in expected.to_dict()["allocations"]]
    assert m.next_clear == 120


@pytest.mark.parametrize("name", ["second-price", "uniform-price", "assignment"])
def test_periodic_with_other_mechanisms(name: str) -> None:
    m = LiveMarket(mode="periodic", mechanism=name, epoch=10)
    flow: list[Offer | Request] = [offer(1, 5, gpus=1), offer(2, 3, gpus=1), request(1, 9),
                                   request(2, 6)]
    for o in flow:
        m.submit(o, at=0)
    m.clear(at=1)
    assert m.last_result is not None
    assert m.last_result.to_dict() == auction.clear(OrderBook(flow), name).to_dict()


def test_one_market_from_many_threads() -> None:
    m = LiveMarket(rule="price-time")
    n = 200

    def work(k: int) -> None:
        if k % 2:
            m.submit(offer(k, 5 + k % 7, gpus=1), event_id=f"x{k}")
        else:
            m.submit(request(k, 9), event_id=f"x{k}")
        m.submit(offer(k, 5), event_id=f"x{k}")  # a retry from another thread: no-op

    barrier = threading.Barrier(4)

    def run(chunk: range) -> None:
        barrier.wait()
        for k in chunk:
            work(k)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(run, [range(i, n, 4) for i in range(4)]))
    assert m.seq == sum(1 for e in m.recent) + n  # one input and its outputs per order
    filled = sum(le.gpus for le in m.leases())
    free = sum(o.gpus for o in m.orders() if isinstance(o, Offer))
    assert filled + free == n // 2
    # the final state equals a single-threaded run in the same seq order
    replayed = LiveMarket(rule="price-time")
    for e in sorted((e for e in m.recent if e.kind == "accepted"), key=lambda e: e.seq):
        oid = e.data["order_id"]
        k = int(oid[1:])
        replayed.submit(offer(k, 5 + k % 7, gpus=1) if k % 2 else request(k, 9))
    assert [le.to_record() | {"id": ""} for le in replayed.leases()] == [
        le.to_record() | {"id": ""} for le in m.leases()]


def test_independent_markets_clear_in_threads_as_in_sequence() -> None:
    """Independent periodic markets cleared from a ThreadPoolExecutor give the results they
    give one after another (the speed-up is measured in benchmarks/bench_live.py)."""

    def build(k: int) -> LiveMarket:
        m = LiveMarket(mode="periodic", mechanism="first-price", epoch=100)
        for i in range(40):
            m.submit(offer(i, 3 + (i * k) % 7, gpus=1 + i % 4, t=i), at=0)
            m.submit(request(100 + i, 4 + (i + k) % 6, gpus=1 + (i * 3) % 4, t=i,
                             divisible=i % 5 == 0), at=0)
        return m

    def run(m: LiveMarket) -> list[Any]:
        return [e.to_record() for e in m.advance(300)]

    sequential = [run(build(k)) for k in range(6)]
    with ThreadPoolExecutor(2) as pool:
        threaded = list(pool.map(run, [build(k) for k in range(6)]))
    assert threaded == sequential
    assert all(any(e["kind"] == "fill" for e in out) for out in sequential)
