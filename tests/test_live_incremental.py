"""Incremental re-clears give results identical to a from-scratch clear of the same open book,
epoch after epoch of churn (hypothesis), and re-clear only what changed."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import auction
from auction import Offer, Request
from auction.live import LiveMarket, decomposable, incremental
from auction.mechanisms import get

MODELS = ("H100", "A100", "T4")
REGIONS = ("us", "eu", "asia")


def _same(a: Any, b: Any) -> None:
    assert a.to_dict() == b.to_dict()
    for col in ("request_row", "offer_row", "gpus", "unit_price", "tenant_price",
                "provider_payment", "tenant_payment", "unmatched_request_ids",
                "partial_request_ids", "shortfall_gpus", "request_id", "offer_id"):
        x, y = getattr(a, col), getattr(b, col)
        assert x.dtype == y.dtype, col
        assert np.array_equal(x, y), col
    assert (a.status, a.message, a.welfare, a.total_payment) == (
        b.status, b.message, b.welfare, b.total_payment)


@st.composite
def churn(draw: st.DrawFn) -> list[list[tuple[str, Any]]]:
    """Epochs of (op, payload): submits of small orders, cancels and amends by index."""
    epochs = []
    n = 0
    for _ in range(draw(st.integers(1, 4))):
        ops: list[tuple[str, Any]] = []
        for _ in range(draw(st.integers(0, 12))):
            kind = draw(st.sampled_from(["offer", "request", "request", "cancel", "amend"]))
            t = draw(st.integers(0, 3))
            if kind == "offer":
                ops.append(("submit", Offer(
                    id=f"o{n}", provider=f"p{draw(st.integers(0, 3))}",
                    gpu_model=draw(st.sampled_from(MODELS)), gpus=draw(st.integers(1, 4)),
                    price=draw(st.integers(1, 9)), region=draw(st.sampled_from(REGIONS)),
                    vram_gb=80, tags=frozenset(draw(st.sampled_from([(), ("soc2",)]))),
                    submitted_at=t)))
            elif kind == "request":
                ops.append(("submit", Request(
                    id=f"r{n}", tenant=f"t{n % 3}", gpus=draw(st.integers(1, 4)),
                    max_price=draw(st.integers(1, 9)),
                    gpu_models=frozenset(draw(st.sampled_from([(), ("H100",), ("T4", "A100")]))),
                    regions=frozenset(draw(st.sampled_from([(), ("us",), ("eu",)]))),
                    required_tags=frozenset(draw(st.sampled_from([(), (), ("soc2",)]))),
                    min_reputation=draw(st.sampled_from([0.0, 0.5])),
                    divisible=draw(st.booleans()), submitted_at=t)))
            else:
                ops.append((kind, (draw(st.integers(0, 10**6)), draw(st.integers(1, 9)))))
            n += 1
        epochs.append(ops)
    return epochs


@settings(max_examples=60)
@given(epochs=churn(), name=st.sampled_from(["first-price", "second-price"]),
       rep=st.sampled_from([None, {"p0": 1.0, "p1": 0.6}]), batch=st.sampled_from([1, 256]),
       whole=st.sampled_from([0.0, 0.9, 2.0]))
def test_incremental_reclear_equals_from_scratch(
    epochs: list[list[tuple[str, Any]]], name: str, rep: dict[str, float] | None, batch: int,
    whole: float,
) -> None:
    # batch 1: a market per component; whole 0.0: always the whole book, 2.0: never
    old = incremental._BATCH_GROUPS, incremental._WHOLE_SHARE
    incremental._BATCH_GROUPS, incremental._WHOLE_SHARE = batch, whole
    try:
        _check_epochs(epochs, name, rep)
    finally:
        incremental._BATCH_GROUPS, incremental._WHOLE_SHARE = old


def _check_epochs(
    epochs: list[list[tuple[str, Any]]], name: str, rep: dict[str, float] | None
) -> None:
    m = LiveMarket(mode="periodic", mechanism=name, epoch=100, reputation=rep)
    assert decomposable(m.mechanism)
    t = 0
    for ops in epochs:
        for op, payload in ops:
            t += 1
            open_ids = sorted(o.id for o in m.orders())
            if op == "submit":
                m.submit(payload, at=t)
            elif open_ids:
                oid = open_ids[payload[0] % len(open_ids)]
                if op == "cancel":
                    m.cancel(oid, at=t)
                else:
                    field = "price" if oid.startswith("o") else "max_price"
                    m.amend(oid, {field: payload[1]}, at=t)
        scratch = auction.clear(m.book.snapshot(), name, reputation=rep)
        m.clear(at=t)
        assert m.last_result is not None
        _same(m.last_result, scratch)


def test_only_changed_components_are_recleared() -> None:
    m = LiveMarket(mode="periodic", mechanism="first-price", epoch=10**6)
    for k, region in enumerate(REGIONS):
        for j in range(3):
            m.submit(Offer(id=f"o{k}{j}", provider="p", gpu_model="H100", gpus=1, price=5 + j,
                           region=region, vram_gb=80), at=0)
        m.submit(Request(id=f"r{k}", tenant="t", gpus=1, max_price=4,
                         regions=frozenset({region})), at=0)
    m.clear(at=1)
    stats = {k: v for k, v in m._clearer.last_stats.items() if k != "seconds"}
    assert stats == {"incremental": True, "components": 3, "recleared": 3, "reused": 0}
    m.amend("r0", {"max_price": 6}, at=2)  # touches one region
    m.clear(at=3)
    assert m._clearer.last_stats["recleared"] == 1
    assert m.last_result is not None
    assert m.last_result.n_allocations == 1
    m.clear(at=4)  # r0 left with its fill: region 0 has no request, nothing to clear there
    stats = {k: v for k, v in m._clearer.last_stats.items() if k != "seconds"}
    assert stats == {"incremental": True, "components": 2, "recleared": 0, "reused": 2}


def test_non_decomposable_mechanisms_clear_from_scratch() -> None:
    for name in ("uniform-price", "assignment", "mcafee"):
        assert not decomposable(get(name))


def test_settled_requests_no_new_offer_reaches_are_skipped() -> None:
    """Requests left unserved by the last clear and unchanged since are skipped unless an
    offer that is new (or changed) may serve them; the result stays the from-scratch one."""
    for name in ("first-price", "second-price"):
        m = LiveMarket(mode="periodic", mechanism=name, epoch=10**6)
        for k in range(30):
            m.submit(Request(id=f"r{k}", tenant=f"t{k % 3}", gpus=1 + k % 2,
                             max_price=3 + k % 4, gpu_models=frozenset({MODELS[k % 3]}),
                             regions=frozenset({REGIONS[k % 3]}) if k % 2 else frozenset()),
                     at=k)
        m.submit(Offer(id="o0", provider="p0", gpu_model="T4", gpus=4, price=20, region="us",
                       vram_gb=80), at=40)
        m.clear(at=41)  # nothing crosses: every order is settled
        assert m._clearer.last_skipped == 0
        m.submit(Offer(id="o1", provider="p1", gpu_model="H100", gpus=2, price=5, region="us",
                       vram_gb=80), at=42)
        m.submit(Request(id="r99", tenant="t0", gpus=1, max_price=25), at=43)
        scratch = auction.clear(m.book.snapshot(), name)
        m.clear(at=44)
        assert m.last_result is not None
        _same(m.last_result, scratch)
        # H100 requests in us or anywhere paying >= 5 may take o1; the rest are skipped
        reach = {f"r{k}" for k in range(30)
                 if MODELS[k % 3] == "H100" and 3 + k % 4 >= 5 and (k % 2 == 0 or k % 3 == 0)}
        assert m._clearer.last_skipped == 30 - len(reach)
        assert m.last_result.n_allocations >= 2
