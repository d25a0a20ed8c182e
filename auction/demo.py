"""A built-in example market and a demo that clears it with every registered mechanism.

`example_book` builds a realistic, deterministic book for a decentralized GPU market: tens of
providers (datacenter operators with H100/H200/A100 nodes, community operators with RTX cards
and T4s) in several regions, and a few hundred tenant requests of 1, 2, 4 or 8 GPUs. Asks fall
in the per-GPU-hour ranges decentralized markets charge in 2026 (see `GPU_MODELS`); some
requests cap their price below the market and go unmatched; some insist on a region, a model,
compliance tags, an interconnect, an auditor's signature or a provider reputation.

Everything is drawn from a numpy Generator seeded by ``seed`` (never the global random state),
so a seed always gives the same book. Prices are in micro-dollars (`PRICE_SCALE` = 6) per
GPU-hour.

`run_demo` is the ``python -m auction demo`` command: it prints one comparison row per
mechanism. It is one of the two modules (with `auction.cli`) allowed to print.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any, TextIO

import attrs
import numpy as np

from auction.book import OrderBook
from auction.clearing import clear
from auction.errors import UnsupportedMarketError
from auction.fairness import report
from auction.market import Market
from auction.mechanisms import Mechanism, available
from auction.money import to_units
from auction.orders import Offer, Order, Request
from auction.reputation import Event, ReputationBook
from auction.result import ClearingResult

__all__ = [
    "ATTACKER",
    "AUDITORS",
    "COMPLIANCE_TAGS",
    "EXCHANGE_MECHANISMS",
    "GPU_MODELS",
    "INTERCONNECT_TAGS",
    "PRICE_SCALE",
    "QUALITY_WEIGHT",
    "REGIONS",
    "GpuSpec",
    "example_book",
    "example_exchange_book",
    "example_history",
    "example_reputation",
    "run_demo",
]

#: Decimal places of the example's money unit: prices are micro-dollars per GPU-hour.
PRICE_SCALE = 6

#: One cent at `PRICE_SCALE`: example prices are whole cents.
_CENT: int = 10 ** (PRICE_SCALE - 2)


@attrs.frozen
class GpuSpec:
    """A GPU model of the example market and the range of its asks.

    Attributes:
        model: the ``gpu_model`` name used in orders.
        vram_gb: memory per GPU.
        low, high: range of asks in USD per GPU-hour, as decimal strings.
        datacenter: True for datacenter parts (multi-GPU nodes, fast interconnects).
    """

    model: str
    vram_gb: int
    low: str
    high: str
    datacenter: bool

    @property
    def low_units(self) -> int:
        return to_units(self.low, PRICE_SCALE, field="low")

    @property
    def high_units(self) -> int:
        return to_units(self.high, PRICE_SCALE, field="high")


#: Models and ask ranges on decentralized markets (USD per GPU-hour, 2026). H200, A100 80GB
#: and T4 are quoted at one price (4.45, 1.71, 0.15); the example spreads those by about 8%.
GPU_MODELS: tuple[GpuSpec, ...] = (
    GpuSpec("H100", 80, "1.02", "2.71", True),
    GpuSpec("H200", 141, "4.10", "4.80", True),
    GpuSpec("A100 80GB", 80, "1.57", "1.85", True),
    GpuSpec("RTX 5090", 32, "0.36", "0.69", False),
    GpuSpec("RTX 4090", 24, "0.22", "0.39", False),
    GpuSpec("RTX 3090", 24, "0.16", "0.31", False),
    GpuSpec("T4", 16, "0.14", "0.16", False),
)
_SPEC = {g.model: g for g in GPU_MODELS}

REGIONS: tuple[str, ...] = ("us-east", "us-west", "eu-central", "eu-west", "asia-east")
_REGION_WEIGHTS = (0.30, 0.20, 0.20, 0.15, 0.15)
COMPLIANCE_TAGS: tuple[str, ...] = ("soc2", "iso27001", "hipaa")
INTERCONNECT_TAGS: tuple[str, ...] = ("nvlink", "infiniband")
AUDITORS: tuple[str, ...] = ("audited-by:akash-foundation", "audited-by:gpu-trust-alliance")

_N_PROVIDERS = 45
_N_TENANTS = 90
_N_REQUESTS = 240

_DC_MODELS = ("H100", "H200", "A100 80GB")
_DC_MODEL_WEIGHTS = (0.55, 0.15, 0.30)
_CONSUMER_MODELS = ("RTX 5090", "RTX 4090", "RTX 3090", "T4")
_CONSUMER_MODEL_WEIGHTS = (0.20, 0.35, 0.30, 0.15)
_SIZES = (1, 2, 4, 8)


@attrs.frozen
class _Provider:
    name: str
    datacenter: bool
    models: tuple[str, ...]
    regions: tuple[str, ...]
    tags: frozenset[str]
    level: float  # where in each model's ask range this provider prices, in [0, 1]


def _streams(seed: int) -> tuple[np.random.Generator, np.random.Generator, np.random.Generator]:
    """Independent generators for providers, orders and reputation, all from one seed."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    a, b, c = np.random.SeedSequence(int(seed)).spawn(3)
    return np.random.default_rng(a), np.random.default_rng(b), np.random.default_rng(c)


def _pick(rng: np.random.Generator, items: Sequence[str], weights: Sequence[float]) -> str:
    p = np.asarray(weights, dtype=np.float64)
    return items[int(rng.choice(len(items), p=p / p.sum()))]


def _pick_size(rng: np.random.Generator, weights: Sequence[float]) -> int:
    p = np.asarray(weights, dtype=np.float64)
    return _SIZES[int(rng.choice(len(_SIZES), p=p / p.sum()))]


def _providers(rng: np.random.Generator) -> list[_Provider]:
    out = []
    for i in range(_N_PROVIDERS):
        dc = bool(rng.random() < 0.4)
        pool, weights = (
            (_DC_MODELS, _DC_MODEL_WEIGHTS) if dc else (_CONSUMER_MODELS, _CONSUMER_MODEL_WEIGHTS)
        )
        models = [_pick(rng, pool, weights)]
        if rng.random() < 0.35:
            second = _pick(rng, pool, weights)
            if second not in models:
                models.append(second)
        regions = [_pick(rng, REGIONS, _REGION_WEIGHTS)]
        if dc and rng.random() < 0.3:
            second = _pick(rng, REGIONS, _REGION_WEIGHTS)
            if second not in regions:
                regions.append(second)
        tags: set[str] = set()
        for tag, p_dc, p_comm in (("soc2", 0.7, 0.1), ("iso27001", 0.5, 0.05), ("hipaa", 0.3, 0.0)):
            if rng.random() < (p_dc if dc else p_comm):
                tags.add(tag)
        if dc:
            if rng.random() < 0.8:
                tags.add("nvlink")
            if rng.random() < 0.5:
                tags.add("infiniband")
        if rng.random() < (0.6 if dc else 0.3):
            tags.add(AUDITORS[0])
        if rng.random() < 0.2:
            tags.add(AUDITORS[1])
        out.append(
            _Provider(
                name=f"provider-{i + 1:02d}",
                datacenter=dc,
                models=tuple(models),
                regions=tuple(regions),
                tags=frozenset(tags),
                level=float(rng.beta(2.0, 2.0)),
            )
        )
    return out


def _price(spec: GpuSpec, q: float) -> int:
    """The ask (or cap) at position `q` of a model's range, in whole cents, at least 1 cent."""
    lo, hi = spec.low_units, spec.high_units
    units = lo + round(q * (hi - lo) / _CENT) * _CENT
    return max(_CENT, units)


def _offers(providers: Sequence[_Provider], rng: np.random.Generator) -> list[Offer]:
    out: list[Offer] = []
    for p in providers:
        n = int(rng.integers(3, 7)) if p.datacenter else int(rng.integers(2, 6))
        size_weights = (0.10, 0.15, 0.30, 0.45) if p.datacenter else (0.45, 0.30, 0.20, 0.05)
        for _ in range(n):
            model = p.models[int(rng.integers(len(p.models)))]
            spec = _SPEC[model]
            gpus = _pick_size(rng, size_weights)
            tags = set(p.tags)
            if gpus == 1:  # a single GPU has no interconnect to speak of
                tags -= set(INTERCONNECT_TAGS)
            q = min(1.0, max(0.0, p.level + float(rng.normal(0.0, 0.05))))
            out.append(
                Offer(
                    id=f"offer-{len(out) + 1:04d}",
                    provider=p.name,
                    gpu_model=model,
                    gpus=gpus,
                    price=_price(spec, q),
                    region=p.regions[int(rng.integers(len(p.regions)))],
                    vram_gb=spec.vram_gb,
                    tags=frozenset(tags),
                )
            )
    return out


def _request(
    i: int, rng: np.random.Generator, *, rid: str | None = None, submitted_at: int = 0
) -> Request:
    kind = rng.random()
    min_vram = 0
    if kind < 0.45:  # datacenter training and inference
        models = {_pick(rng, _DC_MODELS, _DC_MODEL_WEIGHTS)}
        if rng.random() < 0.2:
            models.add("H100" if "H100" not in models else "H200")
        gpus = _pick_size(rng, (0.15, 0.20, 0.30, 0.35))
    elif kind < 0.9:  # consumer cards for inference, rendering, fine-tuning
        models = {_pick(rng, _CONSUMER_MODELS, _CONSUMER_MODEL_WEIGHTS)}
        if rng.random() < 0.25:
            models.add("RTX 4090" if "RTX 4090" not in models else "RTX 5090")
        gpus = _pick_size(rng, (0.50, 0.30, 0.15, 0.05))
    else:  # any model with enough memory
        models = set()
        min_vram = int(rng.choice([16, 24, 80]))
        gpus = _pick_size(rng, (0.40, 0.30, 0.20, 0.10))
    acceptable = [g for g in GPU_MODELS if (not models or g.model in models)]
    acceptable = [g for g in acceptable if g.vram_gb >= min_vram]
    # The cap is set against the cheapest acceptable model; about 15% fall below its range.
    cheapest = min(acceptable, key=lambda g: g.low_units)
    below = rng.random() < 0.15
    cap = _price(cheapest, float(rng.uniform(-0.4, 0.0) if below else rng.uniform(0.3, 1.8)))

    r = rng.random()
    regions: set[str] = set()
    if r >= 0.55:
        regions.add(_pick(rng, REGIONS, _REGION_WEIGHTS))
        if r >= 0.85:
            regions.add(_pick(rng, REGIONS, _REGION_WEIGHTS))

    tags: set[str] = set()
    datacenter = bool(models) and all(_SPEC[m].datacenter for m in models)
    if rng.random() < (0.3 if datacenter else 0.05):
        tags.add(_pick(rng, COMPLIANCE_TAGS, (0.6, 0.25, 0.15)))
    if datacenter and gpus >= 4 and rng.random() < 0.3:
        tags.add(_pick(rng, INTERCONNECT_TAGS, (0.7, 0.3)))
    if rng.random() < 0.1:
        tags.add(AUDITORS[0])

    min_rep = float(rng.choice([0.5, 0.7, 0.8, 0.9])) if rng.random() < 0.25 else 0.0
    return Request(
        id=f"req-{i + 1:04d}" if rid is None else rid,
        submitted_at=submitted_at,
        tenant=f"tenant-{int(rng.integers(_N_TENANTS)) + 1:03d}",
        gpus=gpus,
        max_price=cap,
        gpu_models=frozenset(models),
        regions=frozenset(regions),
        min_vram_gb=min_vram,
        required_tags=frozenset(tags),
        min_reputation=min_rep,
        duration_hours=int(rng.choice([1, 4, 8, 24, 72, 168, 336])),
        divisible=bool(rng.random() < 0.25),
    )


def example_book(seed: int = 0) -> OrderBook:
    """A realistic, deterministic example book: about 185 offers and 240 requests.

    Forty-five providers (about 40% datacenter operators with H100, H200 and A100 80GB nodes of 4
    or 8 GPUs, the rest community operators with RTX 5090/4090/3090 and T4 cards) in five
    regions post 2 to 6 offers each; providers carry compliance (``soc2``, ``iso27001``,
    ``hipaa``), interconnect (``nvlink``, ``infiniband``) and auditor
    (``audited-by:akash-foundation``) tags. Ninety tenants post 240 requests of 1 to 8 GPUs;
    about a quarter are divisible, a quarter need a provider reputation, some need tags or
    regions, and about 15% cap their price below the market. Orders arrive interleaved:
    ``submitted_at`` is a random permutation of sequence numbers.

    Args:
        seed: seeds a numpy Generator; the same seed always gives the same book.

    Returns:
        A new `OrderBook`; prices in micro-dollars per GPU-hour (`PRICE_SCALE`).
    """
    prov_rng, order_rng, _ = _streams(seed)
    offers = _offers(_providers(prov_rng), order_rng)
    requests = [_request(i, order_rng) for i in range(_N_REQUESTS)]
    orders: list[Order] = [*offers, *requests]
    seq = order_rng.permutation(len(orders))
    return OrderBook(
        attrs.evolve(o, submitted_at=int(s)) for o, s in zip(orders, seq, strict=True)
    )


def example_exchange_book(seed: int = 0) -> OrderBook:
    """``example_book(seed)`` traded as a call market, as exchanges and batch markets do.

    The same offers without tags (an instrument is a GPU model in a region: all its offers are
    interchangeable), and the same requests made divisible and pinned to one instrument: the
    cheapest model they accept and one region they accept (drawn when they accept any), with no
    tag, VRAM or reputation constraint. Bulk mechanisms (`lp`, the double auctions, the
    shared-capacity `assignment`) clear it.
    """
    rng = np.random.default_rng([seed, 7])
    return OrderBook(_as_exchange(order, rng) for order in example_book(seed))


def _as_exchange(order: Order, rng: np.random.Generator) -> Order:
    """`order` as traded on the exchange (see `example_exchange_book`)."""
    if isinstance(order, Offer):
        return attrs.evolve(order, tags=frozenset())
    models = [g for g in GPU_MODELS if (not order.gpu_models or g.model in order.gpu_models)]
    models = [g for g in models if g.vram_gb >= order.min_vram_gb]
    model = min(models, key=lambda g: (g.low_units, g.model)).model
    regions = sorted(order.regions) or list(REGIONS)
    region = regions[int(rng.integers(len(regions)))]
    return attrs.evolve(
        order, divisible=True, cluster=False, gpu_models=frozenset({model}),
        regions=frozenset({region}), min_vram_gb=0, required_tags=frozenset(),
        min_reputation=0.0,
    )


#: The whitewashing attacker of the reputation demo: cheap H100 nodes, unreliable delivery.
ATTACKER = "bargain-gpu"
_DAY = 86400.0


def example_history(seed: int = 0) -> list[Event]:
    """90 days of delivered work for every provider of ``example_book(seed)``, plus
    `ATTACKER`: jobs (completed, failed, SLA breaches) rated by tenants, and audits.

    A provider's success rate is its `example_reputation` score; it runs 10 to 60 jobs. The
    attacker completed 18 of 30 jobs (the rest failed or breached the SLA) and failed an audit.
    """
    rng = np.random.default_rng([seed, 11])
    scores = example_reputation(seed)
    tenants = sorted({r.tenant for r in example_book(seed).requests()})
    events: list[Event] = []

    def job(provider: str, k: int, ok: bool) -> None:
        bad = "failed" if rng.random() < 0.7 else "sla_breach"
        events.append(Event(
            id=f"{provider}/job-{k}", provider=provider, time=float(rng.uniform(0, 90 * _DAY)),
            outcome="completed" if ok else bad, tenant=tenants[int(rng.integers(len(tenants)))],
        ))

    for provider, score in sorted(scores.items()):
        for k in range(int(rng.integers(10, 61))):
            job(provider, k, bool(rng.random() < score))
        if rng.random() < 0.5:
            events.append(Event(id=f"{provider}/audit", provider=provider,
                                time=float(rng.uniform(0, 90 * _DAY)), outcome="audit_passed"))
    for k in range(30):
        job(ATTACKER, k, k % 5 < 3)  # 18 completed, 12 failed or breached
    events.append(Event(id=f"{ATTACKER}/audit", provider=ATTACKER, time=89 * _DAY,
                        outcome="audit_failed"))
    return events


def _attacker_offers(provider: str) -> list[Offer]:
    """Two 8 x H100 nodes in us-east, below most of the market's H100 asks."""
    spec = _SPEC["H100"]
    return [
        Offer(id=f"{provider}-node-{k}", provider=provider, gpu_model="H100", gpus=8,
              price=_price(spec, 0.45), region="us-east", vram_gb=spec.vram_gb,
              tags=frozenset({"soc2", "nvlink"}), submitted_at=10_000 + k)
        for k in (1, 2)
    ]


#: What one unit of quality is worth in the reputation demo: 0.50 USD per GPU-hour.
QUALITY_WEIGHT = 50 * _CENT


#: (label, mechanism, options) cleared on the exchange market by the demo.
EXCHANGE_MECHANISMS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("lp", "lp", {"payment": "pay-as-bid"}),
    ("lp lowest", "lp", {"payment": "uniform", "prices": "lowest"}),
    ("lp highest", "lp", {"payment": "uniform", "prices": "highest"}),
    ("assignment shared", "assignment", {"shape": "shared"}),
    ("uniform-price", "uniform-price", {}),
    ("mcafee", "mcafee", {}),
    ("sbba", "sbba", {}),
)


def example_reputation(seed: int = 0) -> dict[str, float]:
    """Reputation scores in [0, 1] for every provider of ``example_book(seed)``.

    Datacenter operators score higher on average than community operators, and audited
    providers get a bonus; scores have two decimals.
    """
    prov_rng, _, rep_rng = _streams(seed)
    scores = {}
    for p in _providers(prov_rng):
        base = rep_rng.beta(6.0, 2.0) if p.datacenter else rep_rng.beta(3.0, 2.0)
        bonus = 0.1 if p.tags & set(AUDITORS) else 0.0
        scores[p.name] = round(min(1.0, float(base) + bonus), 2)
    return scores


# -- the demo ---------------------------------------------------------------------------


def _usd(units: int, places: int = 2) -> str:
    """Micro-dollar amount as ``$1,234.56`` (display only; rounds half-even)."""
    sign = "-" if units < 0 else ""
    return f"{sign}${Decimal(abs(units)).scaleb(-PRICE_SCALE):,.{places}f}"


def _usd_float(units: float | None, places: int = 3) -> str:
    return "-" if units is None else f"${units / 10**PRICE_SCALE:,.{places}f}"


def _describe(book: OrderBook, market: Market) -> list[str]:
    snap = market.snapshot
    offers, requests = book.offers(), book.requests()
    present = {o.gpu_model for o in offers}
    models = [g.model for g in GPU_MODELS if g.model in present]
    models += sorted(present - set(models))
    present_regions = {o.region for o in offers}
    regions = [r for r in REGIONS if r in present_regions]
    regions += sorted(present_regions - set(regions))
    n_div = sum(r.divisible for r in requests)
    return [
        f"  {len(offers)} offers from {len({o.provider for o in offers})} providers, "
        f"{len(requests)} requests from {len({r.tenant for r in requests})} tenants "
        f"({n_div} divisible)",
        f"  GPU models: {', '.join(models)}",
        f"  regions: {', '.join(regions)}",
        f"  {int(snap.offers.gpus.sum()):,} GPUs offered, {int(snap.requests.gpus.sum()):,} GPUs "
        f"requested, {market.pair_count():,} eligible request-offer pairs",
        "  prices in USD per GPU-hour; welfare = (max price - ask) x GPUs, in USD per hour",
    ]


def _format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Align cells: the first column left, the others right.

    A row with only two cells (a name and a note) is not aligned: its note spans the table.
    """
    full = [r for r in rows if len(r) == len(headers)]
    widths = [max([len(h), *(len(r[i]) for r in full)]) for i, h in enumerate(headers)]
    widths[0] = max([widths[0], *(len(r[0]) for r in rows)])

    def line(values: Sequence[str]) -> str:
        parts = [values[0].ljust(widths[0])]
        if len(values) == len(headers):
            parts += [v.rjust(w) for v, w in zip(values[1:], widths[1:], strict=True)]
        else:
            parts += list(values[1:])
        return "  ".join(parts).rstrip()

    return [line(headers), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]


def run_demo(
    out: TextIO | None = None,
    seed: int = 0,
    *,
    mechanisms: Iterable[str | Mechanism] | None = None,
) -> None:
    """Clear the example market with every registered mechanism and print a comparison.

    The market (`example_book` with `example_reputation`) is built once; each mechanism gets
    one row: GPU fill rate, requests fully filled, welfare per hour, average price per GPU-hour
    paid to providers, Jain's index and Gini coefficient of provider revenue (over all
    providers), GPUs allocated and unmatched requests. A mechanism that cannot clear this
    market (`UnsupportedMarketError`) gets a row with its reason instead.

    Args:
        out: where to print; None means ``sys.stdout`` at call time.
        seed: the example market's seed.
        mechanisms: names or instances to compare; None means every name in
            `auction.mechanisms.available()`.
    """
    stream = sys.stdout if out is None else out
    book = example_book(seed)
    market = Market(book, example_reputation(seed))
    headers = (
        "mechanism", "payment", "fill", "requests filled", "welfare/h", "avg price",
        "Jain", "Gini", "GPUs", "unmatched",
    )
    rows: list[Sequence[str]] = []
    for mech in available() if mechanisms is None else mechanisms:
        name = mech if isinstance(mech, str) else mech.name
        try:
            result = clear(market, mech, rng=seed)
        except UnsupportedMarketError as e:
            hint = f" (use {', '.join(e.alternatives)})" if e.alternatives else ""
            rows.append((name, f"cannot clear this market: {e.reason}{hint}"))
            continue
        rep = report(result, market)
        rows.append(
            (
                name,
                result.payment,
                f"{rep.fill_rate:.1%}",
                f"{rep.requests_filled}/{rep.requests}",
                _usd(rep.welfare),
                _usd_float(rep.average_price),
                f"{rep.jain:.3f}",
                f"{rep.gini:.3f}",
                f"{rep.gpus_filled:,}",
                f"{len(result.unmatched_request_ids):,}",
            )
        )
    lines = [
        f"auction demo: the built-in example market (seed {seed})",
        *_describe(book, market),
        "",
        *_format_table(headers, rows),
    ]
    if mechanisms is None:
        lines += ["", *_exchange_section(seed), "", *_reputation_section(seed)]
    print("\n".join(lines), file=stream)


def _exchange_section(seed: int) -> list[str]:
    """The same supply cleared as a call market by the bulk mechanisms."""
    book = example_exchange_book(seed)
    market = Market(book)
    headers = ("mechanism", "payment", "GPUs", "welfare/h", "tenants pay/h", "providers get/h",
               "platform/h", "avg price")
    rows: list[Sequence[str]] = []
    for label, name, options in EXCHANGE_MECHANISMS:
        result = clear(market, name, rng=seed, **options)
        gpus = int(result.gpus.sum())
        rows.append(
            (
                label,
                result.payment,
                f"{gpus:,}",
                _usd(result.welfare),
                _usd(result.total_payment),
                _usd(result.provider_revenue),
                _usd(result.total_payment - result.provider_revenue),
                _usd_float(result.provider_revenue / gpus if gpus else None),
            )
        )
    return [
        "the same supply as an exchange: one instrument per GPU model and region, every "
        "request divisible",
        f"  and pinned to one instrument ({market.n_classes} instruments, "
        f"{market.pair_count():,} eligible pairs)",
        "",
        *_format_table(headers, rows),
    ]


def _model_scores(model: str, events: Sequence[Event], pretrusted: Sequence[str]
                  ) -> dict[str, float]:
    book = ReputationBook("beta" if model == "eigentrust" else model, events)
    if model == "eigentrust":
        return book.eigentrust(pretrusted=pretrusted).scores()
    return book.scores()


def _reputation_section(seed: int) -> list[str]:
    """Price-only against reputation-weighted clearing, and a whitewashing attack."""
    base = list(example_book(seed))
    history = example_history(seed)
    fresh = f"{ATTACKER}-2"
    pretrusted = sorted({o.provider for o in base if isinstance(o, Offer)
                         and AUDITORS[0] in o.tags})
    models = ("beta", "iexec", "eigentrust")
    scores = {m: _model_scores(m, history, pretrusted) for m in models}

    def run(identity: str, model: str, weight: int) -> tuple[Market, ClearingResult]:
        market = Market(OrderBook([*base, *_attacker_offers(identity)]), scores[model],
                        quality_weight=weight)
        return market, clear(market, "second-price", payment="second-score")

    market_rows: list[Sequence[str]] = []
    attack_rows: list[Sequence[str]] = []
    for label, model, weight in (("price only", "beta", 0), *(
        (f"reputation ({m})", m, QUALITY_WEIGHT) for m in models
    )):
        result = run(ATTACKER, model, weight)[1]
        gpus = int(result.gpus.sum())
        served = [scores["beta"].get(p, 0.0) for p in result.provider.tolist()]
        quality = float(np.dot(served, result.gpus)) / gpus if gpus else 0.0
        market_rows.append((
            label, f"{gpus:,}", _usd(result.welfare),
            _usd_float(result.provider_revenue / gpus if gpus else None), f"{quality:.3f}",
        ))
        got = []
        for identity in (ATTACKER, fresh):
            _, res = run(identity, model, weight)
            mine = res.provider == identity
            got.append((int(res.gpus[mine].sum()), sum(res.provider_payment[mine].tolist())))
        kept_score, fresh_score = (scores[model].get(i, 0.0) for i in (ATTACKER, fresh))
        attack_rows.append((
            label, f"{kept_score:.3f}", f"{fresh_score:.3f}",
            f"{got[0][0]}", f"{got[1][0]}", _usd(got[0][1]), _usd(got[1][1]),
            _usd(got[1][1] - got[0][1]),
        ))
    return [
        "reputation: price-only against reputation-weighted clearing (second-price, paid by "
        "second score; quality",
        f"  is the provider's score under each model, worth {_usd(QUALITY_WEIGHT)} per "
        "GPU-hour; 90 days of synthetic history)",
        "",
        *_format_table(("clearing", "GPUs", "welfare/h", "avg price", "beta score served"),
                       market_rows),
        "",
        f"whitewashing: {ATTACKER!r} (two 8 x H100 nodes priced below most, 12 of 30 jobs failed, "
        "an audit failed)",
        f"  drops its identity and re-enters as {fresh!r} with the same nodes",
        "",
        *_format_table(("clearing", "score kept", "score fresh", "GPUs kept", "GPUs fresh",
                        "paid/h kept", "paid/h fresh", "gain/h"), attack_rows),
    ]
