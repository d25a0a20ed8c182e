"""Golden tests for the Render preset, worked by hand from the Render knowledge base's job
assignment rules (know.rendernetwork.com: tier spillover, fewest active nodes first, sticky
node-job pairs, reputation only below 100% utilisation) and RNP-019 (least-work rotation)."""

from __future__ import annotations

from auction import Market, Offer, OrderBook, Request, presets
from auction.presets.render import RenderTiers
from auction.testing import check_mechanism


def _off(i: str, price: int, tags: set[str] | None = None, gpus: int = 1) -> Offer:
    return Offer(id=i, provider="p" + i, gpu_model="4090", gpus=gpus, price=price, region="eu",
                 vram_gb=24, tags=frozenset(tags or ()))


def _req(i: str, gpus: int, t: int, tags: set[str] | None = None, div: bool = False
         ) -> Request:
    return Request(id=i, tenant="t" + i, gpus=gpus, max_price=100, submitted_at=t,
                   required_tags=frozenset(tags or ()), divisible=div)


def _rows(res: object) -> list[tuple[str, str, int]]:
    return sorted((r["request_id"], r["offer_id"], r["gpus"])
                  for r in res.to_records())  # type: ignore[attr-defined]


def test_tier_spillover() -> None:
    # Node A qualifies for tiers 2 and 3, node B for tier 3 only. The tier-3 job arrived first,
    # but tier-2 work is assigned before any tier-3 work: j2 gets A, j3 spills to B.
    book = OrderBook([_off("A", 5, {"tier:2", "tier:3"}), _off("B", 10, {"tier:3"}),
                      _req("j3", 1, 0, {"tier:3"}), _req("j2", 1, 1, {"tier:2"})])
    assert _rows(presets.get("render").mechanism.clear(Market(book))) == [
        ("j2", "A", 1), ("j3", "B", 1)]
    # first come, first served on price (first-price) would give A to j3 and starve j2
    from auction import clear
    assert _rows(clear(Market(book), "first-price")) == [("j3", "A", 1)]


def test_fewest_active_nodes_next() -> None:
    # j1 wants 3 GPUs, j2 one; five 1-GPU nodes (supply 5 > demand 4: reputation orders).
    # Order of hand-outs: j1 (0 nodes) <- n1; j2 (0) <- n2; j1 (1) <- n3; j1 (2) <- n4.
    offers = [_off(f"n{i}", 10 + i) for i in range(1, 6)]
    book = OrderBook([*offers, _req("j1", 3, 0, div=True), _req("j2", 1, 1)])
    res = presets.get("render").mechanism.clear(Market(book))
    assert _rows(res) == [("j1", "n1", 1), ("j1", "n3", 1), ("j1", "n4", 1), ("j2", "n2", 1)]
    # with reputations, and utilisation below 100%, the best-reputed nodes go first:
    # node order n5 (0.9), n4 (0.8), n1, n2, n3; j1 <- n5, j2 <- n4, j1 <- n1, j1 <- n2
    rep = {"pn5": 0.9, "pn4": 0.8}
    res = presets.get("render").mechanism.clear(Market(book, rep))
    assert _rows(res) == [("j1", "n1", 1), ("j1", "n2", 1), ("j1", "n5", 1), ("j2", "n4", 1)]


def test_reputation_ignored_at_full_utilisation_and_sticky() -> None:
    # supply 2 = demand 2: every node will be used; order by rank (price), not reputation
    book = OrderBook([_off("a", 1), _off("b", 2), _req("x", 1, 0), _req("y", 1, 1)])
    res = presets.get("render").mechanism.clear(Market(book, {"pb": 1.0}))
    assert _rows(res) == [("x", "a", 1), ("y", "b", 1)]
    sticky = RenderTiers(sticky={"x": "b"})
    assert _rows(sticky.clear(Market(book))) == [("x", "b", 1), ("y", "a", 1)]


def test_least_work_rotation() -> None:
    book = OrderBook([_off("a", 1), _off("b", 2), _off("c", 3), _req("x", 1, 0)])
    mech = RenderTiers(node_order="least-work", work={"pa": 10, "pb": 5, "pc": 5})
    assert _rows(mech.clear(Market(book))) == [("x", "b", 1)]


def test_conformance() -> None:
    check_mechanism("render-tiers", max_examples=25)
    check_mechanism(RenderTiers(node_order="least-work"), max_examples=15)
