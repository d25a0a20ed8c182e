"""Double auctions per resource class: `uniform-price`, `mcafee` and `sbba`.

The rules are replayed by an independent oracle on order objects (units expanded, sorted in
plain Python); incentive properties are checked by exhaustive misreport search on small unit
markets; efficiency against an optimum from sorted units, itself checked by an assignment
solver.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import Counter
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import attrs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

import auction
from auction import Market, Offer, OrderBook, Request
from auction.errors import UnsupportedMarketError
from auction.mechanisms.double_auction import SBBA, McAfee, UniformPrice
from auction.money import MAX_MONEY
from auction.orders import Attributes
from auction.result import ClearingResult
from auction.testing import markets
from auction.testing.oracles import is_eligible, reputation_of

MECHANISMS = ("uniform-price", "mcafee", "sbba")


def offer(id: str, price: int, gpus: int = 1, *, model: str = "H100", region: str = "eu",
          provider: str | None = None, submitted_at: int = 0) -> Offer:
    return Offer(id=id, provider=provider or f"p-{id}", gpu_model=model, gpus=gpus, price=price,
                 region=region, vram_gb=80, submitted_at=submitted_at)


def request(id: str, max_price: int, gpus: int = 1, *, model: str = "H100", region: str = "eu",
            divisible: bool = False, submitted_at: int = 0, **kw: Any) -> Request:
    return Request(id=id, tenant=kw.pop("tenant", f"t-{id}"), gpus=gpus, max_price=max_price,
                   gpu_models=frozenset({model}), regions=frozenset({region}), divisible=divisible,
                   submitted_at=submitted_at, **kw)


def unit_market(bids: Sequence[int], asks: Sequence[int]) -> Market:
    """One book: buyer b<i> bids bids[i], seller s<i> asks asks[i], one GPU each."""
    return Market(OrderBook([*(offer(f"s{i}", a) for i, a in enumerate(asks)),
                             *(request(f"b{i}", b) for i, b in enumerate(bids))]))


def trades(result: ClearingResult) -> list[tuple[str, str, int, int, int]]:
    return [(r["request_id"], r["offer_id"], r["gpus"], r["tenant_price"], r["unit_price"])
            for r in result.to_records()]


# -- golden examples ------------------------------------------------------------------------


def test_mcafee_reduces_trade_when_the_midpoint_is_missing() -> None:
    # q = 2 and there is no third bid or ask: the second pair drops out; the buyer pays b_2 = 8,
    # the seller receives s_2 = 4, and the platform keeps 4
    result = auction.clear(unit_market([9, 8], [3, 4]), "mcafee")
    assert trades(result) == [("b0", "s0", 1, 8, 4)]
    assert result.total_payment - result.provider_revenue == 4
    assert result.unmatched_request_ids.tolist() == ["b1"]


def test_mcafee_trades_everyone_at_the_midpoint() -> None:
    # q = 1; p0 = (b_2 + s_2) / 2 = (4 + 8) / 2 = 6 is in [s_1, b_1] = [3, 9]
    result = auction.clear(unit_market([9, 4], [3, 8]), "mcafee")
    assert trades(result) == [("b0", "s0", 1, 6, 6)]


def test_mcafee_rounds_a_half_midpoint_down() -> None:
    # p0 = (5 + 8) / 2 = 6.5: one price, 6; s_1 = 3 <= 6 still
    result = auction.clear(unit_market([9, 5], [3, 8]), "mcafee")
    assert trades(result) == [("b0", "s0", 1, 6, 6)]
    # p0 = (3 + 4) / 2 = 3.5 and s_1 = 3: rounding down keeps the seller whole
    result = auction.clear(unit_market([9, 3], [3, 4]), "mcafee")
    assert trades(result) == [("b0", "s0", 1, 3, 3)]


def test_mcafee_reduces_when_the_midpoint_leaves_the_crossing() -> None:
    # q = 2, p0 = (1 + 20) / 2 = 10.5 > b_2 = 6: reduce to one trade at b_2 / s_2
    result = auction.clear(unit_market([9, 6, 1], [2, 5, 20]), "mcafee")
    assert trades(result) == [("b0", "s0", 1, 6, 5)]


@pytest.mark.parametrize(
    ("bids", "asks", "expected"),
    [
        # s_2 = 4 <= b_1 = 9: all q = 1 trade at p = s_2 = 4
        ([9], [3, 4], [("b0", "s0", 1, 4, 4)]),
        # no s_2: p = b_1 = 9, buyer 1 drops out, nobody trades
        ([9, 8], [4], []),
        ([9], [4], []),
        # q = 2, s_3 = 5 <= b_2 = 8: two trades at 5
        ([9, 8], [3, 4, 5], [("b0", "s0", 1, 5, 5), ("b1", "s1", 1, 5, 5)]),
        # s_{q+1} = b_q = 8: p = 8 = s_3, so all q = 2 trade
        ([9, 8], [3, 4, 8], [("b0", "s0", 1, 8, 8), ("b1", "s1", 1, 8, 8)]),
    ],
)
def test_sbba_without_lottery(bids: list[int], asks: list[int], expected: list[Any]) -> None:
    assert trades(auction.clear(unit_market(bids, asks), "sbba", rng=0)) == expected


def test_sbba_lottery_picks_q_minus_1_sellers_at_b_q() -> None:
    # q = 2, no s_3: p = b_2 = 8; buyer 2 drops out and one of sellers 1..2 sells at 8
    market = unit_market([9, 8], [3, 4])
    winners: Counter[str] = Counter()
    for seed in range(400):
        result = auction.clear(market, SBBA(), rng=seed)
        (row,) = trades(result)
        assert row[0] == "b0"
        assert row[2:] == (1, 8, 8)
        winners[row[1]] += 1
    assert set(winners) == {"s0", "s1"}
    assert 160 <= winners["s0"] <= 240  # a fair coin: 4.6 standard deviations either side


def test_uniform_price_k() -> None:
    # q = 2; interval [max(s_2, b_3), min(b_2, s_3)] = [max(4, 2), min(8, 7)] = [4, 7]
    market = unit_market([9, 8, 2], [3, 4, 7])
    for k, price in ((0, 4), (Fraction(1, 2), 5), ("1/3", 5), (0.75, 6), (1, 7)):
        result = auction.clear(market, "uniform-price", k=k)
        assert trades(result) == [("b0", "s0", 1, price, price), ("b1", "s1", 1, price, price)]


def test_uniform_price_is_exact_with_huge_prices() -> None:
    lo, hi = 2**62 + 1, MAX_MONEY
    result = auction.clear(unit_market([hi], [lo]), "uniform-price", k="1/3")
    assert result.unit_price.tolist() == [lo + (hi - lo) // 3]
    assert result.welfare == hi - lo


@pytest.mark.parametrize("k", [-1, 2, Fraction(3, 2), "x", True, None, float("nan"),
                               float("inf"), [0.5]])
def test_uniform_price_rejects_bad_k(k: Any) -> None:
    with pytest.raises(ValueError, match="k must be"):
        UniformPrice(k=k)


@pytest.mark.parametrize("seed", [-1, 1.5, True, "7"])
def test_sbba_rejects_bad_rng(seed: Any) -> None:
    market = unit_market([9, 8], [3, 4])
    with pytest.raises(ValueError, match="rng") as info:
        auction.clear(market, SBBA(), rng=seed)
    assert isinstance(info.value, auction.AuctionError)
    with pytest.raises(ValueError, match="rng"):
        SBBA().clear(market, rng=seed)


def test_sbba_has_no_seed_option() -> None:
    """One randomness argument: `rng` of `clear`, not a constructor seed."""
    with pytest.raises(auction.errors.InvalidOptionError, match="seed"):
        auction.mechanisms.get("sbba", seed=3)


def test_options_rebuild_the_mechanism() -> None:
    for mech in (UniformPrice(k=0.25), McAfee(), SBBA()):
        again = auction.mechanisms.get(mech.name, **mech.get_options())
        assert isinstance(again, type(mech))
        assert again.get_options() == mech.get_options()
        assert again == mech
        assert mech.clone() == mech
    assert UniformPrice(k=0.25).get_options() == {
        "payment": "uniform", "k": "1/4", "time_limit": 30.0, "max_memory": None}
    assert repr(UniformPrice(k=0.25)) == (
        "UniformPrice(payment='uniform', time_limit=30.0, max_memory=None, k='1/4')")
    changed = UniformPrice(k=0.25).with_options(k="1/3")
    assert isinstance(changed, UniformPrice)
    assert changed.k == Fraction(1, 3)


# -- units, rows and classes ----------------------------------------------------------------


def test_multi_gpu_orders_pair_in_runs() -> None:
    book = OrderBook([
        offer("s0", 1, gpus=2), offer("s1", 2, gpus=3),
        request("b0", 10, gpus=3, divisible=True), request("b1", 9, gpus=4, divisible=True),
        request("b2", 1),
    ])
    # units: bids 10 10 10 9 9 9 9 1, asks 1 1 2 2 2: q = 5; b_6 = 9 > s_6 (none)
    result = auction.clear(book, "uniform-price", k=0)
    # lo = max(s_5, b_6) = max(2, 9) = 9; hi = b_5 = 9
    assert trades(result) == [("b0", "s0", 2, 9, 9), ("b0", "s1", 1, 9, 9),
                              ("b1", "s1", 2, 9, 9)]
    assert result.partial_request_ids.tolist() == ["b1"]
    assert result.shortfall_gpus.tolist() == [2]
    assert result.unmatched_request_ids.tolist() == ["b2"]


def test_classes_clear_independently() -> None:
    h100: list[Offer | Request] = [
        offer("h0", 3, gpus=2), offer("h1", 5), request("hb0", 9, gpus=2, divisible=True),
        request("hb1", 6), request("hb2", 4)]
    a100: list[Offer | Request] = [offer("a0", 1, model="A100"), offer("a1", 2, model="A100"),
            request("ab0", 7, model="A100"), request("ab1", 3, model="A100"),
            request("ab2", 2, model="A100")]
    for mech in (UniformPrice(), McAfee(), SBBA()):
        both = auction.clear(OrderBook([*h100, *a100]), mech, rng=11)
        alone = [auction.clear(OrderBook(orders), mech, rng=11) for orders in (h100, a100)]
        assert sorted(trades(both)) == sorted(trades(alone[0]) + trades(alone[1]))
        labels = sorted(b["class"] for b in both.diagnostics["books"])
        assert labels == ["A100/eu/80GB", "H100/eu/80GB"]


def test_requests_without_a_class_trade_nothing() -> None:
    book = OrderBook([offer("s0", 1), request("b0", 5), request("b1", 5, model="B200"),
                      request("b2", 5, min_vram_gb=96)])
    result = auction.clear(book, "uniform-price")
    assert result.unmatched_request_ids.tolist() == ["b1", "b2"]
    assert len(result) == 1


@pytest.mark.parametrize("name", MECHANISMS)
def test_refuses_requests_spanning_classes(name: str) -> None:
    book = OrderBook([offer("s0", 1), offer("s1", 1, model="A100"), request("b0", 5),
                      Request(id="any", tenant="t", gpus=1, max_price=5, submitted_at=1)])
    with pytest.raises(UnsupportedMarketError) as info:
        auction.clear(book, name)
    err = info.value
    assert err.mechanism == name
    assert "request 'any' accepts offers of 2 resource classes" in err.reason
    assert "A100/eu/80GB" in err.reason
    assert "H100/eu/80GB" in err.reason
    assert "assignment (shape='shared')" in err.alternatives


def test_refuses_a_reputation_floor_that_splits_a_class() -> None:
    book = OrderBook([offer("s0", 1, provider="good"), offer("s1", 1, provider="new"),
                      request("b0", 5, min_reputation=0.5)])
    with pytest.raises(UnsupportedMarketError, match="excludes some providers of its class"):
        auction.clear(book, "mcafee", reputation={"good": 0.9, "new": 0.1})
    # when every provider of the class clears the floor, it is a call market
    result = auction.clear(book, "mcafee", reputation={"good": 0.9, "new": 0.6})
    assert result.success
    # and when none does, the request is eligible for nothing and trades nothing
    result = auction.clear(book, "uniform-price", reputation={"good": 0.4, "new": 0.1})
    assert result.unmatched_request_ids.tolist() == ["b0"]


def test_refuses_whole_multi_gpu_requests() -> None:
    book = OrderBook([offer("s0", 1, gpus=4), request("b0", 5, gpus=2)])
    with pytest.raises(UnsupportedMarketError, match="wants 2 GPUs from one offer") as info:
        auction.clear(book, "sbba")
    assert "first-price" in info.value.alternatives


def test_divisible_refusal_elsewhere_does_not_suggest_call_markets() -> None:
    from auction.mechanisms import supporting

    assert not set(MECHANISMS) & set(supporting(divisible=True, call_market=False))
    assert set(MECHANISMS) <= set(supporting(call_market=True))


# -- seeds ------------------------------------------------------------------------------------


def test_sbba_seed_is_recorded_and_reproducible() -> None:
    market = unit_market([9, 8, 7, 6], [1, 2, 3, 4])
    first = auction.clear(market, "sbba", rng=123)
    seed = first.diagnostics["seed"]
    assert isinstance(seed, int)
    assert auction.clear(market, "sbba", rng=123).diagnostics["seed"] == seed
    assert trades(auction.clear(market, SBBA(), rng=123)) == trades(first)
    # every form of the one randomness argument: an int, a SeedSequence, a Generator
    same = np.random.SeedSequence(123)
    assert auction.clear(market, "sbba", rng=same).diagnostics["seed"] == seed
    assert SBBA().clear(market, rng=123).diagnostics["seed"] == seed
    assert SBBA().clear(market, rng=np.random.default_rng(123)).diagnostics["seed"] == seed
    assert "seed" not in first.options
    fresh = {auction.clear(market, "sbba").diagnostics["seed"] for _ in range(3)}
    assert len(fresh) == 3  # fresh entropy without an rng


def test_sbba_lottery_ignores_row_order() -> None:
    orders: list[Offer | Request] = [*(offer(f"s{i}", i, gpus=2) for i in range(5)),
              *(request(f"b{i}", 20 - i, gpus=2, divisible=True) for i in range(4))]
    for seed in range(20):
        want = trades(auction.clear(OrderBook(orders), SBBA(), rng=seed))
        got = trades(auction.clear(OrderBook(orders[::-1]), SBBA(), rng=seed))
        assert got == want


# -- an independent oracle ------------------------------------------------------------------


def _class_key(o: Offer) -> tuple[str, str, int, frozenset[str]]:
    return (o.gpu_model, o.region, o.vram_gb, o.tags)


def _label(key: tuple[str, str, int, frozenset[str]]) -> str:
    model, region, vram, tags = key
    return f"{model}/{region}/{vram}GB" + (f"/{'+'.join(sorted(tags))}" if tags else "")


def _books(market: Market) -> dict[Any, tuple[list[Request], list[Offer]]]:
    """Per class: its requests (eligible, ignoring price, for exactly its offers) and offers."""
    snap = market.snapshot
    offers = snap.offer_list()
    out: dict[Any, tuple[list[Request], list[Offer]]] = {}
    for o in offers:
        out.setdefault(_class_key(o), ([], []))[1].append(o)
    for r in snap.request_list():
        anyprice = attrs.evolve(r, max_price=MAX_MONEY)
        keys = {_class_key(o) for o in offers
                if is_eligible(o, anyprice, reputation_of(market, o.provider))}
        assert len(keys) <= 1
        if keys:
            out[keys.pop()][0].append(r)
    return out


Books = dict[Any, tuple[list[Request], list[Offer]]]


def _oracle(market: Market, name: str, k: Fraction = Fraction(1, 2), seed: int = 0,
            books: Books | None = None) -> dict[Any, dict[str, Any]]:
    """Per book (by default per class, `_books`): units bought per request, sold per offer,
    and the prices, from the rule."""
    out = {}
    for key, (reqs, offs) in (_books(market) if books is None else books).items():
        bids = sorted((-r.max_price, r.submitted_at, r.id) for r in reqs for _ in range(r.gpus))
        asks = sorted((o.price, o.submitted_at, o.id) for o in offs for _ in range(o.gpus))
        b = [-x[0] for x in bids]
        s = [x[0] for x in asks]
        q = 0
        while q < min(len(b), len(s)) and b[q] >= s[q]:
            q += 1
        b_next = b[q] if q < len(b) else None
        s_next = s[q] if q < len(s) else None
        n, tp, up, sellers = 0, 0, 0, [x[2] for x in asks[:q]]
        if q and name == "uniform-price":
            lo = max(s[q - 1], b_next) if b_next is not None else s[q - 1]
            hi = min(b[q - 1], s_next) if s_next is not None else b[q - 1]
            n, tp = q, lo + int(k * (hi - lo))  # int() truncates: hi >= lo, so it floors
            up = tp
        elif q and name == "mcafee":
            if b_next is not None and s_next is not None and (
                    s[q - 1] <= Fraction(b_next + s_next, 2) <= b[q - 1]):
                n, tp = q, (b_next + s_next) // 2
                up = tp
            else:
                n, tp, up = q - 1, b[q - 1], s[q - 1]
            sellers = sellers[:n]
        elif q and name == "sbba":
            if s_next is not None and s_next <= b[q - 1]:
                n, tp = q, s_next
            else:
                n, tp = q - 1, b[q - 1]
                # the documented lottery: offers by sha256(seed:id), unit u mod q drops out
                ids = sorted(set(sellers), key=lambda i: hashlib.sha256(
                    f"{seed}:{i}".encode()).digest())
                units = [i for i in ids for _ in range(sellers.count(i))]
                label = _label(key[0] if len(key) == 2 else key)
                u = int.from_bytes(hashlib.sha256(f"{seed}:{label}".encode()).digest(),
                                   "big") % q
                sellers = units[:u] + units[u + 1:]
            up = tp
        out[key] = {"bought": Counter(x[2] for x in bids[:n]), "sold": Counter(sellers),
                    "tenant_price": tp, "unit_price": up, "q": q, "units": n}
    return out


def _observed(market: Market, result: ClearingResult, books: Books | None = None
              ) -> dict[Any, dict[str, Any]]:
    books = _books(market) if books is None else books
    of_class = {o.id: key for key, (_, offs) in books.items() for o in offs}
    out: dict[Any, dict[str, Any]] = {
        key: {"bought": Counter(), "sold": Counter(), "prices": set()} for key in books
    }
    for row in result.to_records():
        d = out[of_class[row["offer_id"]]]
        d["bought"][row["request_id"]] += row["gpus"]
        d["sold"][row["offer_id"]] += row["gpus"]
        d["prices"].add((row["tenant_price"], row["unit_price"]))
    return out


CALL_MARKETS = markets(call_market=True, splittable=True, max_offers=8, max_requests=8,
                       huge_prices=False)


@pytest.mark.parametrize("name", MECHANISMS)
@given(market=CALL_MARKETS, seed=st.integers(0, 2**32))
def test_matches_the_oracle(name: str, market: Market, seed: int) -> None:
    result = auction.clear(market, name, rng=seed)
    lottery = result.diagnostics.get("seed", 0)  # sbba records the seed it drew from rng
    want, got = _oracle(market, name, seed=lottery), _observed(market, result)
    assert want.keys() == got.keys()
    for key in want:
        w, g = want[key], got[key]
        assert g["bought"] == w["bought"], key
        assert g["sold"] == w["sold"], key
        assert g["prices"] <= {(w["tenant_price"], w["unit_price"])}, key


@pytest.mark.parametrize("k", [Fraction(0), Fraction(1, 2), Fraction(1), Fraction(2, 7)])
@given(market=CALL_MARKETS)
def test_uniform_price_lies_in_the_crossing_interval(k: Fraction, market: Market) -> None:
    result = auction.clear(market, UniformPrice(k=k))
    got = _observed(market, result)
    for key, (reqs, offs) in _books(market).items():
        b = sorted((r.max_price for r in reqs for _ in range(r.gpus)), reverse=True)
        s = sorted(o.price for o in offs for _ in range(o.gpus))
        q = sum(1 for x, y in zip(b, s, strict=False) if x >= y)
        if q == 0:
            assert not got[key]["prices"]
            continue
        lo = max([s[q - 1], *b[q : q + 1]])
        hi = min([b[q - 1], *s[q : q + 1]])
        (price, provider_price), = got[key]["prices"]
        assert price == provider_price
        assert lo <= price <= hi
        if k == 0:
            assert price == lo
        if k == 1:
            assert price == hi
        # every trader is content at the price
        assert all(r.max_price >= price for r in reqs if r.id in got[key]["bought"])
        assert all(o.price <= price for o in offs if o.id in got[key]["sold"])
        assert sum(got[key]["bought"].values()) == q


# -- budget balance and efficiency -------------------------------------------------------------


def _optimum(market: Market) -> dict[Any, tuple[int, int, int]]:
    """Per class: (q, the largest gains from trade, b_q - s_1), from sorted units."""
    out = {}
    for key, (reqs, offs) in _books(market).items():
        b = sorted((r.max_price for r in reqs for _ in range(r.gpus)), reverse=True)
        s = sorted(o.price for o in offs for _ in range(o.gpus))
        gains = [x - y for x, y in zip(b, s, strict=False) if x >= y]
        q = len(gains)
        out[key] = (q, sum(gains), b[q - 1] - s[0] if q else 0)
    return out


@given(bids=st.lists(st.integers(0, 20), max_size=5), asks=st.lists(st.integers(0, 20),
                                                                       max_size=5))
def test_sorted_optimum_matches_an_assignment_solver(bids: list[int], asks: list[int]) -> None:
    best = sum(opt for _, opt, _ in _optimum(unit_market(bids, asks)).values())
    if bids and asks:
        w = np.array([[max(0, b - a) for a in asks] for b in bids])
        rows, cols = linear_sum_assignment(w, maximize=True)
        assert best == int(w[rows, cols].sum())
    else:
        assert best == 0


@given(market=CALL_MARKETS, seed=st.integers(0, 2**32))
def test_budget_balance_and_gains_from_trade(market: Market, seed: int) -> None:
    by_class = _optimum(market)
    total_opt = sum(opt for _, opt, _ in by_class.values())
    for mech in (UniformPrice(), McAfee(), SBBA()):
        result = auction.clear(market, mech, rng=seed)
        surplus = result.total_payment - result.provider_revenue
        if mech.name == "mcafee":
            assert surplus >= 0
        else:
            assert surplus == 0
            assert (result.tenant_price == result.unit_price).all()
        if mech.name == "uniform-price":
            assert result.welfare == total_opt
            continue
        # McAfee loses the least valuable of the q optimal trades per class, b_q - s_q; SBBA
        # loses b_q - s_drop for the seller unit its lottery drops: at most b_q - s_1, and
        # (1 - 1/q) of the optimum in expectation (next test)
        of_class = {o.id: _class_key(o) for o in market.snapshot.offer_list()}
        asks = {o.id: o.price for o in market.snapshot.offer_list()}
        bids = {r.id: r.max_price for r in market.snapshot.request_list()}
        welfare: Counter[Any] = Counter()
        for row in result.to_records():
            gain = (bids[row["request_id"]] - asks[row["offer_id"]]) * row["gpus"]
            welfare[of_class[row["offer_id"]]] += gain
        for key, (q, opt, worst) in by_class.items():
            assert welfare[key] <= opt
            if q and mech.name == "mcafee":
                assert welfare[key] * q >= (q - 1) * opt, (key, q, opt)
            assert welfare[key] >= opt - worst


def test_sbba_gains_from_trade_in_expectation() -> None:
    # q = 3, no s_4: buyers 10 and 9 trade at b_3 = 8 with two of the sellers 1, 2, 7. The
    # optimum is 17; dropping seller 1, 2 or 7 leaves 10, 11 or 16, on average 37/3 >= 2/3 x 17
    # even though the worst draw, 10, is below it
    market = unit_market([10, 9, 8], [1, 2, 7])
    seen = Counter(auction.clear(market, SBBA(), rng=seed).welfare for seed in range(600))
    assert set(seen) == {10, 11, 16}
    mean = Fraction(sum(w * n for w, n in seen.items()), 600)
    assert mean >= Fraction(2, 3) * 17
    assert all(150 <= n <= 250 for n in seen.values())


# -- incentives: exhaustive misreport search on unit markets ---------------------------------


def _utilities(result: ClearingResult, bids: Sequence[int], asks: Sequence[int]
               ) -> dict[str, int]:
    """Each trader's utility at its true value, from the exact row payments."""
    out = {f"b{i}": 0 for i in range(len(bids))} | {f"s{i}": 0 for i in range(len(asks))}
    for rec, tpay, ppay in zip(result.to_records(), result.tenant_payment.tolist(),
                               result.provider_payment.tolist(), strict=True):
        out[rec["request_id"]] += bids[int(rec["request_id"][1:])] - tpay
        out[rec["offer_id"]] += ppay - asks[int(rec["offer_id"][1:])]
    return out


_VALUES = st.lists(st.integers(0, 6), min_size=1, max_size=3)


@pytest.mark.parametrize("name", ["mcafee", "sbba"])
@settings(max_examples=60)
@given(bids=_VALUES, asks=_VALUES, seed=st.integers(0, 2**32))
def test_no_unit_trader_gains_by_misreporting(
    name: str, bids: list[int], asks: list[int], seed: int
) -> None:
    mech = McAfee() if name == "mcafee" else SBBA()
    # the same rng seed for every clearing: the same lottery draw (truthful for every draw)
    honest = _utilities(auction.clear(unit_market(bids, asks), mech, rng=seed), bids, asks)
    for side, values in (("b", bids), ("s", asks)):
        for i, report in itertools.product(range(len(values)), range(8)):
            lie = list(values)
            lie[i] = report
            market = unit_market(lie, asks) if side == "b" else unit_market(bids, lie)
            got = _utilities(auction.clear(market, mech, rng=seed), bids, asks)[f"{side}{i}"]
            assert got <= honest[f"{side}{i}"], (side, i, report)


def test_uniform_price_is_not_truthful() -> None:
    # q = 1, interval [max(s_1, b_2), b_1] = [3, 9], k = 1/2: price 6. The buyer bidding 5
    # instead of 9 moves the interval to [3, 5] and the price to 4.
    honest = auction.clear(unit_market([9], [3]), "uniform-price")
    lying = auction.clear(unit_market([5], [3]), "uniform-price")
    assert (honest.tenant_price.tolist(), lying.tenant_price.tolist()) == ([6], [4])


@pytest.mark.slow
def test_a_large_market_clears_quickly() -> None:
    rng = np.random.default_rng(1)
    n = 20_000
    models = ("H100", "A100", "L40")
    orders: list[Offer | Request] = [
        offer(f"s{i}", int(rng.integers(10, 100)), int(rng.integers(1, 8)),
              model=models[i % 3]) for i in range(n)
    ]
    orders += [
        request(f"b{i}", int(rng.integers(10, 100)), int(rng.integers(1, 8)), divisible=True,
                model=models[i % 3]) for i in range(n)
    ]
    market = Market(OrderBook(orders))
    for name in MECHANISMS:
        result = auction.clear(market, name, rng=0)
        assert result.gpus_allocated > n


def test_scoring_bonuses_play_no_part() -> None:
    import inspect

    if "quality_weight" not in inspect.signature(Market).parameters:
        pytest.skip("markets without quality bonuses")
    orders: list[Offer | Request] = [offer("cheap", 3, provider="new"),
                                     offer("dear", 5, provider="old"),
              request("b0", 9), request("b1", 4)]
    plain = Market(OrderBook(orders))
    scored = Market(OrderBook(orders), {"old": 1.0}, quality_weight=10)
    for name in MECHANISMS:
        want = trades(auction.clear(plain, name, rng=0))
        assert trades(auction.clear(scored, name, rng=0)) == want


def test_the_unit_trader_check_is_selected_and_can_fail() -> None:
    from auction.testing import check_misreport_unit_traders, checks_for

    def selected(name: str) -> bool:
        return "check_misreport_unit_traders" in dict(checks_for(name))

    assert (selected("mcafee"), selected("sbba"), selected("uniform-price")) == (
        True, True, False)
    with pytest.raises(AssertionError, match="gains by misreporting"):
        check_misreport_unit_traders(UniformPrice(), max_examples=200)


@pytest.mark.parametrize("name", ["uniform-price", "mcafee", "sbba"])
def test_a_provider_list_does_not_split_books_it_cannot_trade_in(name: str) -> None:
    """A request's provider list (or exclusion list) in the H100 book leaves the A100 book
    whole, so the double auctions clear it; in its own book it still splits by provider,
    and a request accepting both parts is refused."""
    offers = [
        Offer(id=f"o{k}", provider=f"p{k % 2}", gpu_model=("H100", "A100")[k // 2], gpus=1,
              price=5 + k % 2, region=("us", "eu")[k // 2], vram_gb=80)
        for k in range(4)
    ]
    choices: tuple[dict[str, Any], ...] = (
        {"providers": frozenset({"p0"})}, {"exclude_providers": frozenset({"p1"})})
    for lists in choices:
        requests = [
            Request(id="r1", tenant="t", gpus=1, max_price=9, gpu_models=frozenset({"H100"}),
                    **lists),
            Request(id="r2", tenant="t", gpus=1, max_price=9, gpu_models=frozenset({"A100"})),
            Request(id="r3", tenant="t", gpus=1, max_price=8, gpu_models=frozenset({"A100"})),
        ]
        m = Market(OrderBook([*offers, *requests]))
        assert m.n_classes == 3  # H100 split by provider, A100 whole
        result = auction.clear(m, name)
        a100 = {"o2", "o3"}
        for row in result.to_records():
            assert (row["request_id"] == "r1") == (row["offer_id"] not in a100)
            if row["request_id"] == "r1":
                assert row["provider"] == "p0"
        whole = Request(id="r4", tenant="t", gpus=1, max_price=9,
                        gpu_models=frozenset({"H100"}))
        with pytest.raises(UnsupportedMarketError):
            auction.clear(OrderBook([*offers, *requests, whole]), name)


# -- books split by lists and constraints only where a request trading there is affected ----
def _list_books(market: Market) -> Books | None:
    """The books by brute force over the order objects, or None when the market is not a call
    market: each request's eligible offers (ignoring price and reputation) are its book; books
    are one resource class each, pairwise equal or disjoint; a reputation floor admits every
    provider of the book or none (then the request trades nothing)."""
    snap = market.snapshot
    offers = snap.offer_list()
    out: Books = {}
    for r in snap.request_list():
        anyprice = attrs.evolve(r, max_price=MAX_MONEY)
        mine = frozenset(o.id for o in offers if is_eligible(o, anyprice, 1.0))
        if not mine:
            continue
        keys = {_class_key(o) for o in offers if o.id in mine}
        if len(keys) > 1:
            return None
        if any(mine & ids and mine != ids for _, ids in out):
            return None
        key = (keys.pop(), mine)
        out.setdefault(key, ([], [o for o in offers if o.id in mine]))
        admitted = {reputation_of(market, o.provider) >= r.min_reputation for o in offers
                    if o.id in mine}
        if len(admitted) > 1:
            return None
        if admitted == {True}:
            out[key][0].append(r)
    return out


TENANTS = ("t0", "t1", "t2")


@st.composite
def _listed_markets(draw: st.DrawFn) -> Market:
    """Small books whose offers carry tenant lists, exclusions, attributes and constraints
    over requests, and whose requests carry provider lists and constraints over offer
    attributes: most are call markets only because no affected request trades there."""
    tenants = st.frozensets(st.sampled_from(TENANTS), max_size=2)
    orders: list[Offer | Request] = []
    for i in range(draw(st.integers(1, 6))):
        orders.append(Offer(
            id=f"o{i}", provider=draw(st.sampled_from(("p0", "p1", "p2"))),
            gpu_model=draw(st.sampled_from(("H100", "H100", "A100"))), gpus=draw(
                st.integers(1, 3)), price=draw(st.integers(1, 9)), region="eu", vram_gb=80,
            submitted_at=i,
            tenants=draw(st.one_of(st.just(frozenset()), tenants)),
            exclude_tenants=draw(st.one_of(st.just(frozenset()), tenants)),
            attributes=draw(st.sampled_from((Attributes(), Attributes({"zone": "a"}),
                                             Attributes({"zone": "b"}),
                                             Attributes({"zone": "a", "rack": 1})))),
            constraints=draw(st.sampled_from((None, None, "tenant != 't2'", "gpus <= 2",
                                              "tenant in ('t0', 't1')"))),
        ))
    for j in range(draw(st.integers(1, 6))):
        divisible = draw(st.booleans())
        orders.append(Request(
            id=f"r{j}", tenant=draw(st.sampled_from(TENANTS)),
            gpus=draw(st.integers(1, 3)) if divisible else 1, divisible=divisible,
            max_price=draw(st.integers(1, 12)), submitted_at=draw(st.integers(0, 3)),
            gpu_models=draw(st.sampled_from((frozenset({"H100"}), frozenset({"A100"}),
                                             frozenset({"H100"}), frozenset()))),
            providers=draw(st.sampled_from((frozenset(), frozenset(),
                                            frozenset({"p0", "p1"})))),
            exclude_providers=draw(st.sampled_from((frozenset(), frozenset(),
                                                    frozenset({"p2"})))),
            constraints=draw(st.sampled_from((None, None, "zone == 'a'", "has zone",
                                              "not (zone == 'b')"))),
            min_reputation=draw(st.sampled_from((0.0, 0.0, 0.0, 0.5))),
        ))
    scores = draw(st.sampled_from(({}, {"p0": 0.9}, {"p0": 0.9, "p1": 0.6, "p2": 0.7})))
    return Market(OrderBook(orders), scores)


@pytest.mark.parametrize("name", MECHANISMS)
@settings(max_examples=300)
@given(market=_listed_markets(), seed=st.integers(0, 2**32))
def test_lists_and_constraints_split_books_only_where_a_request_is_affected(
    name: str, market: Market, seed: int
) -> None:
    """Against the brute-force books: cleared, book by book as the oracle's rule says, when
    they form a call market; refused with `UnsupportedMarketError` when they do not."""
    books = _list_books(market)
    if books is None:
        with pytest.raises(UnsupportedMarketError):
            auction.clear(market, name, rng=seed)
        return
    result = auction.clear(market, name, rng=seed)
    lottery = result.diagnostics.get("seed", 0)
    want, got = _oracle(market, name, seed=lottery, books=books), _observed(market, result,
                                                                              books)
    for key in want:
        w, g = want[key], got[key]
        assert g["bought"] == w["bought"], key
        assert g["sold"] == w["sold"], key
        assert g["prices"] <= {(w["tenant_price"], w["unit_price"])}, key


def _screened(exclude: frozenset[str], **kw: Any) -> list[Offer]:
    return [Offer(id=f"o{i}", provider=f"p{i}", gpu_model="H100", gpus=1, price=3 + i,
                  region="eu", vram_gb=80, exclude_tenants=exclude if i == 0 else frozenset(),
                  **kw) for i in range(3)]


@pytest.mark.parametrize("name", MECHANISMS)
def test_a_tenant_list_splits_a_book_only_when_its_tenant_trades_there(name: str) -> None:
    offers = _screened(frozenset({"spammer"}))
    buyers = [Request(id=f"r{j}", tenant="lab", gpus=1, max_price=10 - j) for j in range(3)]
    result = auction.clear(OrderBook([*offers, *buyers]), name, rng=1)
    assert result.success
    assert [b["class"] for b in result.diagnostics["books"]] == ["H100/eu/80GB"]
    plain = [attrs.evolve(o, exclude_tenants=frozenset()) for o in offers]
    assert trades(result) == trades(auction.clear(OrderBook([*plain, *buyers]), name, rng=1))
    spam = Request(id="spam", tenant="spammer", gpus=1, max_price=10, submitted_at=1)
    with pytest.raises(UnsupportedMarketError) as info:
        auction.clear(OrderBook([*offers, *buyers, spam]), name)
    assert "requests 'r0' and 'spam' trade in resource class H100/eu/80GB" in (
        info.value.reason)
    assert "lp" in info.value.alternatives


@pytest.mark.parametrize("name", MECHANISMS)
def test_attributes_and_offer_constraints_nobody_reads_apart_stay_one_book(name: str) -> None:
    """Offers with different attributes and constraint texts are different offer classes,
    but a request that reads only `cuda` (and passes every offer's constraint) accepts them
    alike: one book."""
    offers = [Offer(id=f"o{i}", provider="p", gpu_model="H100", gpus=1, price=2 + i,
                    region="eu", vram_gb=80,
                    attributes=Attributes({"cuda": "12.4", "zone": f"z{i}"}),
                    constraints=("tenant != 'x'", "gpus <= 4", None)[i]) for i in range(3)]
    buyers = [Request(id=f"r{j}", tenant="lab", gpus=1, max_price=9 - j,
                      constraints="cuda >= 12") for j in range(3)]
    market = Market(OrderBook([*offers, *buyers]))
    assert market.n_classes == 3
    result = auction.clear(market, name, rng=2)
    assert len(result.diagnostics["books"]) == 1
    assert result.diagnostics["books"][0]["q"] == 3
