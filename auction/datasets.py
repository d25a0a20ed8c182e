"""Example markets: deterministic books, reputation and history to try mechanisms on.

`example_book` builds a realistic, deterministic book for a decentralized GPU market: tens of
providers (datacenter operators with H100/H200/A100 nodes, community operators with RTX cards
and T4s) in several regions, and a few hundred tenant requests of 1, 2, 4 or 8 GPUs. Asks fall
in the per-GPU-hour ranges decentralized markets charge in 2026 (see `GPU_MODELS` and the
[market facts](markets.md)); some requests cap their price below the market and go unmatched;
some insist on a region, a model, compliance tags, an interconnect, an auditor's signature or a
provider reputation. `example_exchange_book` is the same supply traded as a call market, which
the bulk mechanisms (`lp`, the double auctions) clear. `example_reputation` and
`example_history` give the providers' scores and 90 days of delivered work.

`example_request` and `as_exchange` are the generators behind them, for order flows that post
new requests epoch after epoch (`auction.simulation.ExampleFlow`).

Everything is drawn from numpy Generators seeded by ``seed`` (never the global random state), so
a seed always gives the same book. Prices are in micro-dollars (`PRICE_SCALE` = 6) per
GPU-hour.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import numpy as np

from auction.book import OrderBook
from auction.errors import InvalidValueError
from auction.money import to_units
from auction.orders import Offer, Order, Request
from auction.reputation import Event

__all__ = [
    "ATTACKER",
    "AUDITORS",
    "COMPLIANCE_TAGS",
    "GPU_MODELS",
    "INTERCONNECT_TAGS",
    "N_REQUESTS",
    "PRICE_SCALE",
    "QUALITY_WEIGHT",
    "REGIONS",
    "GpuSpec",
    "as_exchange",
    "attacker_offers",
    "example_book",
    "example_exchange_book",
    "example_history",
    "example_reputation",
    "example_request",
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
#: Requests in `example_book`.
N_REQUESTS = 240

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
        raise InvalidValueError("seed", seed, "must be an int >= 0")
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


def example_request(
    i: int, rng: np.random.Generator, *, rid: str | None = None, submitted_at: int = 0
) -> Request:
    """One tenant request drawn as `example_book` draws its requests, from `rng`.

    Args:
        i: the request's number: its id is ``req-{i + 1:04d}`` unless `rid` is given.
        rng: the generator every attribute is drawn from.
        rid: the id, instead of the numbered one.
        submitted_at: its arrival sequence number.
    """
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
    requests = [example_request(i, order_rng) for i in range(N_REQUESTS)]
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
    return OrderBook(as_exchange(order, rng) for order in example_book(seed))


def as_exchange(order: Order, rng: np.random.Generator) -> Order:
    """`order` as traded on the exchange (see `example_exchange_book`).

    An offer loses its tags; a request becomes divisible and is pinned to the cheapest model
    and one region it accepts (drawn from `rng` when it accepts any).
    """
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


def attacker_offers(provider: str) -> list[Offer]:
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
