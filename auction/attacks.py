"""Attacks on the market designs, measured on the example flow (issue 17).

Each function runs one attack, seeded, against each relevant design and returns an
`AttackTable`: one row per (design, attack setting) with the attacker's gain and the honest
parties' loss. ``python -m auction.attacks`` prints every table (docs/attacks.md).

Money is in the book's smallest unit (micro-dollars per GPU-hour of the example book);
reputation gains are score differences in [−1, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np

from auction.book import OrderBook
from auction.clearing import clear
from auction.datasets import (
    ATTACKER,
    AUDITORS,
    attacker_offers,
    example_book,
    example_history,
)
from auction.orders import Offer, Request
from auction.result import ClearingResult

__all__ = [
    "AttackTable",
    "audit_detection",
    "bid_cap_exhaustion",
    "collusion_ring",
    "shill_bids",
    "small_book",
    "sybil_split",
    "whitewashing",
]

Cell = str | int | float


@attrs.frozen
class AttackTable:
    """One attack's measurements: a title, column names and rows (one per design/setting)."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]

    def column(self, name: str) -> list[Any]:
        """The values of one column, in row order."""
        i = self.columns.index(name)
        return [row[i] for row in self.rows]

    def where(self, **match: Cell) -> list[dict[str, Any]]:
        """The rows (as dicts) whose named columns equal the given values."""
        out = [dict(zip(self.columns, row, strict=True)) for row in self.rows]
        return [r for r in out if all(r[k] == v for k, v in match.items())]

    def markdown(self) -> str:
        """The table as a Markdown table."""

        def fmt(v: Cell) -> str:
            return f"{v:.4f}" if isinstance(v, float) else str(v)

        lines = [f"### {self.title}", "", "| " + " | ".join(self.columns) + " |",
                 "|" + "---|" * len(self.columns)]
        lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in self.rows]
        return "\n".join(lines)


def small_book(seed: int = 0, n_requests: int = 12) -> OrderBook:
    """A small slice of ``example_book(seed)``: its H100 offers and the first `n_requests`
    requests (by arrival) that accept H100, so that VCG clears in well under a second."""
    book = list(example_book(seed))
    offers = [o for o in book if isinstance(o, Offer) and o.gpu_model == "H100"]
    reqs = sorted((r for r in book if isinstance(r, Request)
                   and (not r.gpu_models or "H100" in r.gpu_models)),
                  key=lambda r: (r.submitted_at, r.id))[:n_requests]
    return OrderBook([*offers, *reqs])


def _later(orders: list[Any], k: int) -> list[Any]:
    """`orders` arriving `k` steps later, so that an attacker's orders can arrive first."""
    return [attrs.evolve(o, submitted_at=o.submitted_at + k) for o in orders]


def _paid_to(result: ClearingResult, provider: str) -> int:
    mine = result.provider == provider
    return int(sum(result.provider_payment[mine].tolist()))


def _tenant_paid(result: ClearingResult, tenants: set[str]) -> int:
    keep = np.array([t in tenants for t in result.tenant.tolist()], dtype=bool)
    return int(sum(result.tenant_payment[keep].tolist())) if keep.size else 0


_DESIGNS: tuple[tuple[str, str, str | None], ...] = (
    ("second-price", "second-price", None),
    ("vcg", "assignment", "vcg"),
)


def shill_bids(seed: int = 0, n_requests: int = 12) -> AttackTable:
    """A winning provider posts a fake request (a shill bid) to raise what it is paid.

    On `small_book`, the provider paid most is the attacker. For each design and each shill
    max price in a grid (the distinct asks of other providers' offers), a shill request for 8
    GPUs of the attacker's model, with no other constraint, arrives first. The best shill
    price for the attacker is reported: the attacker's gain is what it is paid more, minus what
    the shill pays other providers (money it pays itself is a wash); the honest loss is what
    real tenants pay more.
    """
    base_orders = _later(list(small_book(seed, n_requests)), 1)
    book = OrderBook(base_orders)
    tenants = {o.tenant for o in base_orders if isinstance(o, Request)}
    rows: list[tuple[Cell, ...]] = []
    for label, mech, payment in _DESIGNS:
        base = clear(book, mech, payment)
        paid = {p: _paid_to(base, p) for p in set(base.provider.tolist())}
        attacker = max(sorted(paid), key=lambda p: paid[p])
        asks = sorted({o.price for o in base_orders
                       if isinstance(o, Offer) and o.provider != attacker})
        best: tuple[int, int, int, int] = (0, 0, 0, 0)
        for price in asks[:: max(1, len(asks) // 8)]:
            shill = Request(id="shill", tenant="shill-tenant", gpus=8, max_price=price,
                            gpu_models=frozenset({"H100"}), submitted_at=0)
            res = clear(OrderBook([*base_orders, shill]), mech, payment)
            s_cost = _tenant_paid(res, {"shill-tenant"})
            s_self = int(sum(res.tenant_payment[(res.tenant == "shill-tenant")
                                                & (res.provider == attacker)].tolist()))
            gain = _paid_to(res, attacker) - paid[attacker] - (s_cost - s_self)
            loss = _tenant_paid(res, tenants) - _tenant_paid(base, tenants)
            if gain > best[1]:
                best = (price, gain, loss, s_cost)
        rows.append((label, attacker, best[0], paid[attacker], best[1], best[2], best[3]))
    return AttackTable(
        "Shill bids (small_book: H100 offers, first requests accepting H100)",
        ("design", "attacker", "shill max price", "attacker paid (honest)",
         "attacker net gain", "honest tenants pay more", "shill pays"),
        tuple(rows))


def bid_cap_exhaustion(seed: int = 0, spam: Sequence[int] = (0, 10, 20, 40),
                       max_bids: int = 20) -> AttackTable:
    """Bid spam against the Akash preset: the attacker posts `k` 8 x H100 offers at the
    highest request max price, arriving first, so its bids fill the ``max_bids`` cap of each
    order and honest providers' later bids are refused. Measured on ``example_book(seed)``:
    the attacker's revenue (its gain), what tenants pay more and how many GPUs honest
    providers lose."""
    from auction.presets import get

    book = _later(list(example_book(seed)), max(spam, default=0))
    reqs = [r for r in book if isinstance(r, Request)]
    tenants = {r.tenant for r in reqs}
    top = int(np.percentile([r.max_price for r in reqs], 90))
    mech = get("akash", max_bids=max_bids).mechanism
    base = clear(OrderBook(book), mech)
    honest_gpus = int(base.gpus.sum())
    rows: list[tuple[Cell, ...]] = []
    for k in spam:
        offers = [Offer(id=f"spam-{i}", provider=f"spammer-{i}", gpu_model="H100", gpus=8,
                        price=top, region="us-east", vram_gb=80, submitted_at=i)
                  for i in range(k)]
        res = clear(OrderBook([*book, *offers]), mech)
        spammers = np.array([p.startswith("spammer-") for p in res.provider.tolist()],
                            dtype=bool)
        gain = int(sum(res.provider_payment[spammers].tolist())) if spammers.size else 0
        lost = honest_gpus - int(res.gpus[~spammers].sum())
        rows.append((k, max_bids, int(res.diagnostics["bids_refused_by_cap"]), gain,
                     _tenant_paid(res, tenants) - _tenant_paid(base, tenants), lost))
    return AttackTable(
        "Bid-cap exhaustion against the Akash preset (example_book)",
        ("spam offers", "max_bids", "bids refused by cap", "attacker revenue",
         "tenants pay more", "honest GPUs lost"),
        tuple(rows))


def _scores(model: str, events: Sequence[Any], pretrusted: Sequence[str]) -> dict[str, float]:
    from auction.reputation import ReputationBook

    book = ReputationBook("beta" if model == "eigentrust" else model, events)
    if model == "eigentrust":
        return book.eigentrust(pretrusted=pretrusted).scores()
    return book.scores()


_MODELS = ("beta", "iexec", "eigentrust")


def _history(seed: int) -> tuple[list[Any], list[str]]:
    events = example_history(seed)
    pretrusted = sorted({o.provider for o in example_book(seed) if isinstance(o, Offer)
                         and AUDITORS[0] in o.tags})
    return events, pretrusted


def _honest_loss(before: dict[str, float], after: dict[str, float], skip: set[str]) -> float:
    return sum(max(0.0, before.get(p, 0.0) - after.get(p, 0.0)) for p in before if p not in skip)


def collusion_ring(seed: int = 0, ring: Sequence[int] = (2, 5, 10),
                   jobs: int = 20) -> AttackTable:
    """`ATTACKER` and `k` fake tenants: each fake tenant reports `jobs` completed jobs by the
    attacker. Gain: the attacker's score rise; honest loss: the sum of honest providers'
    score drops (EigenTrust scores sum to 1, so inflating one deflates others)."""
    from auction.reputation import Event

    events, pretrusted = _history(seed)
    rows: list[tuple[Cell, ...]] = []
    for model in _MODELS:
        before = _scores(model, events, pretrusted)
        for k in ring:
            fake = [Event(id=f"ring-{t}-{j}", provider=ATTACKER, time=89 * 86400.0,
                          outcome="completed", tenant=f"ring-tenant-{t}")
                    for t in range(k) for j in range(jobs)]
            after = _scores(model, [*events, *fake], pretrusted)
            rows.append((model, k, k * jobs, before.get(ATTACKER, 0.0),
                         after.get(ATTACKER, 0.0),
                         after.get(ATTACKER, 0.0) - before.get(ATTACKER, 0.0),
                         _honest_loss(before, after, {ATTACKER})))
    return AttackTable(
        "Collusion ring (example_history; EigenTrust pretrusts audited providers)",
        ("model", "ring tenants", "fake jobs", "score before", "score after",
         "attacker gain", "honest score lost"),
        tuple(rows))


def sybil_split(seed: int = 0, parts: Sequence[int] = (2, 3, 5)) -> AttackTable:
    """The attacker's history is split round-robin over `k` identities (the same work, the
    same events). Gain: the best identity's score minus the single identity's score."""
    events, pretrusted = _history(seed)
    mine = [e for e in events if e.provider == ATTACKER]
    rest = [e for e in events if e.provider != ATTACKER]
    rows: list[tuple[Cell, ...]] = []
    for model in _MODELS:
        before = _scores(model, events, pretrusted)
        for k in parts:
            split = [attrs.evolve(e, provider=f"{ATTACKER}-sybil-{i % k}")
                     for i, e in enumerate(mine)]
            after = _scores(model, [*rest, *split], pretrusted)
            best = max(after.get(f"{ATTACKER}-sybil-{i}", 0.0) for i in range(k))
            rows.append((model, k, before.get(ATTACKER, 0.0), best,
                         best - before.get(ATTACKER, 0.0),
                         _honest_loss(before, after, {ATTACKER})))
    return AttackTable(
        "Sybil splitting of the attacker's history (example_history)",
        ("model", "identities", "one identity", "best sybil", "attacker gain",
         "honest score lost"),
        tuple(rows))


def _paid_by_request(result: ClearingResult, provider: str) -> dict[str, int]:
    out: dict[str, int] = {}
    mine = result.provider == provider
    for rid, pay in zip(result.request_id[mine].tolist(), result.provider_payment[mine].tolist(),
                        strict=True):
        out[str(rid)] = out.get(str(rid), 0) + int(pay)
    return out


def whitewashing(seeds: Sequence[int] = (0, 1, 2)) -> AttackTable:
    """The attacker drops its identity and returns fresh (no history), posting the same two
    8 x H100 offers. Gains: the score change, and the change in what it is paid per hour
    under reputation-weighted second-score clearing of ``example_book(seed)``.

    The revenue gain is split in two: ``same requests`` (what the fresh identity is paid
    more on the requests both identities serve: a price effect, never positive when the score
    drops) and ``other requests`` (requests only one identity serves: an allocation effect).
    Second-score clearing is sequential: requests in arrival order each take the best score
    with room. A kept identity's bonus wins early requests whose runner-up is close; a fresh
    one loses them, keeps its GPUs, and can sell them to a later request with thin competition
    at a higher second score (seed 1). See docs/attacks.md."""
    from auction.datasets import QUALITY_WEIGHT
    from auction.market import Market

    rows: list[tuple[Cell, ...]] = []
    for seed in seeds:
        events, pretrusted = _history(seed)
        base = list(example_book(seed))
        fresh = f"{ATTACKER}-fresh"
        for model in _MODELS:
            scores = _scores(model, events, pretrusted)
            got = []
            for ident in (ATTACKER, fresh):
                market = Market(OrderBook([*base, *attacker_offers(ident)]), scores,
                                quality_weight=QUALITY_WEIGHT)
                res = clear(market, "second-price", payment="vickrey")
                got.append(_paid_by_request(res, ident))
            kept, new = got
            shared = kept.keys() & new.keys()
            price = sum(new[r] - kept[r] for r in shared)
            total = sum(new.values()) - sum(kept.values())
            rows.append((seed, model, scores.get(ATTACKER, 0.0), scores.get(fresh, 0.0),
                         scores.get(fresh, 0.0) - scores.get(ATTACKER, 0.0),
                         total, price, total - price))
    return AttackTable(
        "Whitewashing: a fresh identity against the kept one (example_history)",
        ("seed", "model", "kept score", "fresh score", "score gain", "revenue gain/h",
         "same requests/h", "other requests/h"),
        tuple(rows))


def audit_detection(seed: int = 0, rates: Sequence[float] = (0.05, 0.1, 0.2, 0.4),
                    inflate: Sequence[int] = (1, 2, 4), epochs: int = 400) -> AttackTable:
    """Capacity misreporting against audit sampling: the attacker claims `x` times its GPUs;
    audits draw ``round(rate * n)`` providers per epoch weighted by claimed GPUs
    (`audit_sample`), and an audited misreporter is caught. Reported: the share of `epochs`
    epochs in which it is drawn (its detection probability per epoch), the expected epochs
    until caught, and its gain per undetected epoch (extra GPUs claimed)."""
    from auction.reputation import audit_sample

    book = example_book(seed)
    gpus: dict[str, int] = {}
    for o in book:
        if isinstance(o, Offer):
            gpus[o.provider] = gpus.get(o.provider, 0) + o.gpus
    honest = sorted(gpus)
    real = 16
    rows: list[tuple[Cell, ...]] = []
    for x in inflate:
        providers = [*honest, ATTACKER]
        weights = [gpus[p] for p in honest] + [real * x]
        for rate in rates:
            k = max(1, round(rate * len(providers)))
            hits = sum(ATTACKER in audit_sample(f"attack-{seed}", e, providers, weights, k)
                       for e in range(epochs))
            p = hits / epochs
            rows.append((x, rate, k, p, (1 / p) if p else float("inf"), real * (x - 1)))
    return AttackTable(
        "Capacity misreporting against audit sampling (weights = claimed GPUs)",
        ("claimed/real", "sample rate", "audited per epoch", "detection per epoch",
         "expected epochs to catch", "extra GPUs claimed"),
        tuple(rows))


def all_tables(seed: int = 0) -> list[AttackTable]:
    """Every attack at its default settings."""
    return [shill_bids(seed), collusion_ring(seed), sybil_split(seed), whitewashing(),
            bid_cap_exhaustion(seed), audit_detection(seed)]


def main() -> None:  # pragma: no cover - prints the docs tables
    """Print every table as Markdown."""
    for table in all_tables():
        print(table.markdown(), end="\n\n")


if __name__ == "__main__":  # pragma: no cover
    main()
