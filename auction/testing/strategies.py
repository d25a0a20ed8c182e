"""Hypothesis strategies for orders, books and markets.

Everything is drawn from small vocabularies (a few providers, models, regions, tags, prices and
sequence numbers) so that the cases mechanisms get wrong come up often: equal prices and equal
``submitted_at`` (ties), several offers per provider, more GPUs wanted than offered (shortfalls),
empty sides, and constraints nobody can meet (a model, region or tag no offer has, more VRAM
than any offer, a reputation floor above every provider). Provider and tenant lists (allow
and exclude), node resources (CPU, RAM, disk per GPU), attributes and constraint expressions
(`REQUEST_CONSTRAINTS`, `OFFER_CONSTRAINTS`) are drawn sparingly, with floors above every
offer, names nobody has and attributes some orders lack. Hypothesis drives all randomness.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, cast

import hypothesis.strategies as st

from auction.book import OrderBook
from auction.errors import InvalidValueError
from auction.market import Market
from auction.orders import Offer, Order, Request

__all__ = [
    "GPU_MODELS",
    "HUGE_PRICE",
    "OFFER_CONSTRAINTS",
    "PROVIDERS",
    "REGIONS",
    "REPUTATIONS",
    "REQUEST_CONSTRAINTS",
    "TAGS",
    "TENANTS",
    "books",
    "describe_market",
    "markets",
    "offers",
    "prices",
    "reputations",
    "requests",
]

PROVIDERS = ("p0", "p1", "p2", "p3")
TENANTS = ("t0", "t1", "t2")
#: Models offers come in; requests may also ask for ``"B200"``, which nobody offers.
GPU_MODELS = ("H100", "A100", "RTX4090")
#: Regions offers are in; requests may also ask for ``"ap-south"``, where nobody is.
REGIONS = ("us-east", "eu-west")
#: Tags offers carry; requests may also require ``"audited-by:nobody"``, which nobody carries.
TAGS = ("soc2", "nvlink")
#: Reputation scores and floors; 1.0 as a floor is above providers scored lower.
REPUTATIONS = (0.0, 0.5, 0.9, 1.0)
#: A price far above the rest, to exercise exact integer money (products overflow int64).
HUGE_PRICE = 2**62

_VRAM = (24, 40, 80)
_MIN_VRAM = (0, 0, 24, 80, 96)  # 96: more than any offer has
_NOBODY_MODEL = "B200"
_NOBODY_REGION = "ap-south"
_NOBODY_TAG = "audited-by:nobody"
_NOBODY_TENANT = "t-nobody"
_NOBODY_PROVIDER = "p-nobody"
# node resources per GPU offers come with, and the floors requests set (the last: above all)
_CPU, _MIN_CPU = (0, 8, 16), (0, 0, 0, 8, 32)
_RAM, _MIN_RAM = (0, 64, 128), (0, 0, 0, 64, 256)
_DISK, _MIN_DISK = (0, 500), (0, 0, 0, 500, 1000)
#: Constraint expressions drawn (None, no constraint, most often): requests' read offers,
#: offers' read requests, over attributes (sometimes missing) and built-in fields.
REQUEST_CONSTRAINTS = (
    None, None, None, None, None, "tier >= 2", "has cuda and cuda >= 12.0",
    "gpu_model == 'A100' or not has tier", "price <= 8 and region != 'eu-west'",
    "provider in ('p0', 'p1')", "tags == 'nvlink'",
)
OFFER_CONSTRAINTS = (
    None, None, None, None, None, None, None, "tenant != 't0'", "gpus <= 2",
    "team == 'ml'", "not has team", "max_price >= 5 and duration_hours < 3",
)
_OFFER_ATTRIBUTES = st.fixed_dictionaries(
    {}, optional={"tier": st.integers(0, 3), "cuda": st.sampled_from(("11.8", "12.4"))}
)
_REQUEST_ATTRIBUTES = st.fixed_dictionaries(
    {}, optional={"team": st.sampled_from(("ml", "web"))}
)
_SEQ = st.integers(0, 3)


def prices(*, high: int = 12, huge: bool = True) -> st.SearchStrategy[int]:
    """Prices in [0, high] (a small range: many ties), rarely `HUGE_PRICE` when `huge`."""
    if not huge:
        return st.integers(0, high)
    return st.integers(0, high + 1).map(lambda v: HUGE_PRICE if v == high + 1 else v)


def reputations() -> st.SearchStrategy[float]:
    """A reputation score (or floor) from `REPUTATIONS`."""
    return st.sampled_from(REPUTATIONS)


def _subset(names: tuple[str, ...], extra: str) -> st.SearchStrategy[frozenset[str]]:
    return st.frozensets(st.sampled_from((*names, extra)), max_size=2)


@functools.cache
def _offer_fields(
    max_gpus: int, huge: bool, providers: tuple[str, ...] = PROVIDERS, extended: bool = True
) -> st.SearchStrategy[dict[str, Any]]:
    """Every offer field but the id (built once: strategies are costly to rebuild per draw);
    without `extended`, the tenant lists and node resources stay unset."""
    fields = _offer_fields_all(max_gpus, huge, providers)
    if extended:
        return fields
    return fields.map(lambda f: {**f, "tenants": frozenset(), "exclude_tenants": frozenset(),
                                 "cpu_per_gpu": 0, "ram_gb_per_gpu": 0, "disk_gb_per_gpu": 0,
                                 "attributes": {}, "constraints": None})


def _offer_fields_all(
    max_gpus: int, huge: bool, providers: tuple[str, ...]
) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "provider": st.sampled_from(providers),
            "gpu_model": st.sampled_from(GPU_MODELS),
            "gpus": st.integers(1, max_gpus),
            "price": prices(huge=huge),
            "region": st.sampled_from(REGIONS),
            "vram_gb": st.sampled_from(_VRAM),
            "tags": st.frozensets(st.sampled_from(TAGS)),
            "submitted_at": _SEQ,
            # mostly unset: lists and resources narrow who trades, so draw them sparingly
            "tenants": st.one_of(_NONE, _NONE, _NONE, _subset(TENANTS, _NOBODY_TENANT)),
            "exclude_tenants": st.one_of(_NONE, _NONE, _NONE, _subset(TENANTS, _NOBODY_TENANT)),
            "cpu_per_gpu": st.sampled_from(_CPU),
            "ram_gb_per_gpu": st.sampled_from(_RAM),
            "disk_gb_per_gpu": st.sampled_from(_DISK),
            "attributes": st.one_of(st.just({}), st.just({}), _OFFER_ATTRIBUTES),
            "constraints": st.sampled_from(OFFER_CONSTRAINTS),
        }
    )


_NONE: st.SearchStrategy[frozenset[str]] = st.just(frozenset())


def _constraint(names: tuple[str, ...], extra: str) -> st.SearchStrategy[frozenset[str]]:
    """Mostly no constraint (empty: anything goes), else up to two names, maybe unknown."""
    return st.one_of(_NONE, _NONE, _subset(names, extra))


@functools.cache
def _request_fields(
    max_gpus: int, huge: bool, divisible: bool | None, constrained: bool = True,
    splittable: bool = False, extended: bool = True,
) -> st.SearchStrategy[dict[str, Any]]:
    """Every request field but the id; unconstrained requests accept any model, region, VRAM,
    tags and reputation, so that many requests compete for the same offers. `splittable`
    makes every non-divisible request ask for one GPU. Without `extended`, provider lists
    and node resource floors stay unset."""
    fields = _request_fields_any(max_gpus, huge, divisible, constrained)
    if not extended:
        fields = fields.map(lambda f: {**f, "providers": frozenset(),
                                       "exclude_providers": frozenset(), "min_cpu_per_gpu": 0,
                                       "min_ram_gb_per_gpu": 0, "min_disk_gb_per_gpu": 0,
                                       "attributes": {}, "constraints": None})
    if splittable:
        return fields.map(lambda f: f if f["divisible"] else {**f, "gpus": 1, "cluster": False})
    return fields


def _request_fields_any(
    max_gpus: int, huge: bool, divisible: bool | None, constrained: bool
) -> st.SearchStrategy[dict[str, Any]]:
    if constrained:
        models = _constraint(GPU_MODELS, _NOBODY_MODEL)
        regions = _constraint(REGIONS, _NOBODY_REGION)
        min_vram = st.sampled_from(_MIN_VRAM)
        tags = _constraint(TAGS, _NOBODY_TAG)
        min_rep = st.sampled_from((0.0, 0.0, *REPUTATIONS[1:]))
        providers = st.one_of(_NONE, _NONE, _NONE, _subset(PROVIDERS, _NOBODY_PROVIDER))
        excluded = st.one_of(_NONE, _NONE, _NONE, _subset(PROVIDERS, _NOBODY_PROVIDER))
        min_cpu, min_ram = st.sampled_from(_MIN_CPU), st.sampled_from(_MIN_RAM)
        min_disk = st.sampled_from(_MIN_DISK)
        constraints = st.sampled_from(REQUEST_CONSTRAINTS)
        attributes = st.one_of(st.just(cast(dict[str, Any], {})), _REQUEST_ATTRIBUTES)
    else:
        constraints = st.none()
        attributes = st.just(cast(dict[str, Any], {}))
        models = regions = tags = providers = excluded = _NONE
        min_vram = min_cpu = min_ram = min_disk = st.just(0)
        min_rep = st.just(0.0)
    return st.fixed_dictionaries(
        {
            "tenant": st.sampled_from(TENANTS),
            "gpus": st.integers(1, max_gpus),
            "max_price": prices(high=16, huge=huge),  # above most asks, often equal to one
            "gpu_models": models,
            "regions": regions,
            "min_vram_gb": min_vram,
            "required_tags": tags,
            "min_reputation": min_rep,
            "duration_hours": st.integers(1, 3),
            "divisible": st.booleans() if divisible is None else st.just(divisible),
            "cluster": st.sampled_from((False, False, True)),
            "submitted_at": _SEQ,
            "providers": providers,
            "exclude_providers": excluded,
            "min_cpu_per_gpu": min_cpu,
            "min_ram_gb_per_gpu": min_ram,
            "min_disk_gb_per_gpu": min_disk,
            "attributes": attributes,
            "constraints": constraints,
        }
    ).map(lambda f: {**f, "cluster": f["cluster"] and not f["divisible"]})


def _ids(order_id: str | None, prefix: str) -> st.SearchStrategy[str]:
    if order_id is not None:
        return st.just(order_id)
    return st.integers(0, 999).map(lambda n: f"{prefix}{n}")


def offers(
    *, order_id: str | None = None, max_gpus: int = 4, huge_prices: bool = True,
    extended: bool = False,
) -> st.SearchStrategy[Offer]:
    """Offers with small capacities from a few providers, models, regions and tags.

    Args:
        order_id: the id to give the offer; drawn (``"o<n>"``) when None.
        max_gpus: largest capacity drawn (capacities start at 1).
        huge_prices: whether an ask may rarely be `HUGE_PRICE`.
        extended: also draw tenant lists and node resources (`books` always does; off by
            default here, so that offers alike in model, region, VRAM and tags form one
            offer class).
    """
    return st.builds(
        lambda oid, fields: Offer(id=oid, **fields),
        _ids(order_id, "o"),
        _offer_fields(max_gpus, huge_prices, PROVIDERS, extended),
    )


def requests(
    *,
    order_id: str | None = None,
    divisible: bool | None = None,
    max_gpus: int = 5,
    huge_prices: bool = True,
    splittable: bool = False,
    call_market: bool = False,
    extended: bool = False,
) -> st.SearchStrategy[Request]:
    """Requests with constraints that are often loose, sometimes unsatisfiable.

    Args:
        extended: also draw provider lists and node resource floors (`books` always does).
        order_id: the id to give the request; drawn (``"r<n>"``) when None.
        divisible: True or False forces the flag; None draws it.
        max_gpus: largest number of GPUs wanted (above `offers`' largest capacity by
            default, so some non-divisible requests fit no offer).
        huge_prices: whether a max price may rarely be `HUGE_PRICE`.
        splittable: every request is divisible or asks for one GPU.
        call_market: pinned to one model and one region, with no other constraint: in a
            book drawn with ``call_market=True`` it accepts exactly one offer class, or none.
    """
    fields = _request_fields(max_gpus, huge_prices, divisible, True, splittable, extended)
    if call_market:
        fields = st.tuples(fields, _PINNED).map(lambda t: {**t[0], **t[1]})
    return st.builds(lambda rid, f: Request(id=rid, **f), _ids(order_id, "r"), fields)


#: (model, region) pairs the classes of call-market books are drawn from.
_CLASS_KEYS = tuple((m, r) for m in GPU_MODELS for r in REGIONS)
_PINNED = st.fixed_dictionaries(
    {
        "gpu_models": st.sampled_from((*GPU_MODELS, _NOBODY_MODEL)).map(lambda m: frozenset({m})),
        "regions": st.sampled_from(REGIONS).map(lambda r: frozenset({r})),
        "min_vram_gb": st.just(0),
        "required_tags": _NONE,
        "min_reputation": st.just(0.0),
        "providers": _NONE,
        "exclude_providers": _NONE,
        "min_cpu_per_gpu": st.just(0),
        "min_ram_gb_per_gpu": st.just(0),
        "min_disk_gb_per_gpu": st.just(0),
        "attributes": st.just({}),
        "constraints": st.none(),
    }
)


def _call_market(
    draw: st.DrawFn, offer_fields: list[dict[str, Any]], request_fields: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Drawn fields rewritten into a call market: one to three classes distinct in (model,
    region), the offers of a class sharing VRAM and tags, and each request pinned to one
    class's model and region (or to a model nobody offers), with VRAM and tag constraints its
    class meets and no reputation floor, so that it accepts exactly one class or none."""
    keys = draw(st.lists(st.sampled_from(_CLASS_KEYS), min_size=1, max_size=3, unique=True))
    looks = {k: (draw(st.sampled_from(_VRAM)), draw(st.frozensets(st.sampled_from(TAGS))))
             for k in keys}
    offers = []
    for f in offer_fields:
        model, region = draw(st.sampled_from(keys))
        vram, tags = looks[(model, region)]
        offers.append({**f, "gpu_model": model, "region": region, "vram_gb": vram, "tags": tags,
                       "tenants": frozenset(), "exclude_tenants": frozenset(),
                       "attributes": {}, "constraints": None})
    reqs = []
    for f in request_fields:
        model, region = draw(st.sampled_from((*keys * 3, (_NOBODY_MODEL, REGIONS[0]))))
        vram, tags = looks.get((model, region), (0, frozenset()))
        need = draw(st.frozensets(st.sampled_from(sorted(tags)))) if tags else frozenset()
        reqs.append({**f, "gpu_models": frozenset({model}), "regions": frozenset({region}),
                     "min_vram_gb": draw(st.sampled_from((0, vram))), "required_tags": need,
                     "min_reputation": 0.0, "providers": frozenset(),
                     "exclude_providers": frozenset(), "min_cpu_per_gpu": 0,
                     "min_ram_gb_per_gpu": 0, "min_disk_gb_per_gpu": 0, "attributes": {},
                     "constraints": None})
    return offers, reqs


@st.composite
def _books(
    draw: st.DrawFn,
    min_offers: int,
    max_offers: int,
    min_requests: int,
    max_requests: int,
    divisible: bool,
    huge_prices: bool,
    splittable: bool,
    call_market: bool = False,
) -> OrderBook:
    # sizes drawn first: plain lists favour very short ones, and contention needs several
    n_off = draw(st.integers(min_offers, max_offers))
    n_req = draw(st.integers(min_requests, max_requests))
    # per book: how many providers post the offers (few: each posts several)
    n_prov = draw(st.integers(1, len(PROVIDERS)))
    offer_fields = draw(
        st.lists(
            _offer_fields(4, huge_prices, PROVIDERS[:n_prov]), min_size=n_off, max_size=n_off
        )
    )
    # per book: every request unconstrained (contention: two books in three), or each may
    # constrain (unsatisfiable constraints: one in three)
    constrained = draw(st.integers(0, 2)) == 2
    request_fields = draw(
        st.lists(
            _request_fields(5, huge_prices, None if divisible else False, constrained,
                            splittable),
            min_size=n_req,
            max_size=n_req,
        )
    )
    if call_market:
        offer_fields, request_fields = _call_market(draw, offer_fields, request_fields)
    # one shared permutation of numbers: ids unique across both sides, unrelated to add order
    numbers = draw(st.permutations(range(n_off + len(request_fields))))
    orders: list[Order] = [
        Offer(id=f"o{numbers[i]}", **f) for i, f in enumerate(offer_fields)
    ]
    orders += [
        Request(id=f"r{numbers[n_off + i]}", **f) for i, f in enumerate(request_fields)
    ]
    add_order = draw(st.permutations(range(len(orders))))
    return OrderBook([orders[i] for i in add_order])


def books(
    *,
    min_offers: int = 0,
    max_offers: int = 6,
    min_requests: int = 0,
    max_requests: int = 6,
    divisible: bool = True,
    huge_prices: bool = True,
    splittable: bool = False,
    call_market: bool = False,
) -> st.SearchStrategy[OrderBook]:
    """Order books with offers and requests added in a drawn, interleaved order.

    Args:
        min_offers: least number of offers (0 allows an empty side).
        max_offers: most offers.
        min_requests: least number of requests (0 allows an empty side).
        max_requests: most requests.
        divisible: whether divisible requests may appear.
        huge_prices: whether prices may rarely be `HUGE_PRICE`.
        splittable: every request is divisible or asks for one GPU (for mechanisms such as
            the shared-capacity assignment).
        call_market: every request's eligible offers, ignoring price, are exactly one offer
            class or none (for double auctions): classes differ in model and region, offers
            of a class share VRAM and tags, requests are pinned to one model and region.
    """
    if not 0 <= min_offers <= max_offers or not 0 <= min_requests <= max_requests:
        raise InvalidValueError(
            "min_offers, max_offers, min_requests, max_requests",
            (min_offers, max_offers, min_requests, max_requests), "need 0 <= min <= max",
        )
    return _books(min_offers, max_offers, min_requests, max_requests, divisible, huge_prices,
                  splittable, call_market)


@st.composite
def _markets(draw: st.DrawFn, book: OrderBook, reputation: bool, quality: bool) -> Market:
    scores: dict[str, float] | None = None
    default = 0.0
    if reputation:
        if draw(st.booleans()):
            scored = draw(st.lists(st.sampled_from(PROVIDERS), unique=True))
            scores = {p: draw(reputations()) for p in scored}
        default = draw(reputations())
    # sometimes a scoring market (quality bonuses reorder offers)
    weight = draw(st.sampled_from((0, 0, 0, 1, 3, 8))) if reputation and quality else 0
    per_provider: dict[str, float] | None = None  # None: the reputation is the quality
    if weight and draw(st.booleans()):
        scored = draw(st.lists(st.sampled_from(PROVIDERS), unique=True))
        per_provider = {p: draw(reputations()) for p in scored}
    return Market(book, scores, default_reputation=default, quality=per_provider,
                  quality_weight=weight)


def markets(
    *,
    min_offers: int = 0,
    max_offers: int = 6,
    min_requests: int = 0,
    max_requests: int = 6,
    divisible: bool = True,
    reputation: bool = True,
    huge_prices: bool = True,
    splittable: bool = False,
    call_market: bool = False,
    quality: bool = False,
) -> st.SearchStrategy[Market]:
    """Markets over `books`, with optional reputation scores for some providers.

    Args:
        min_offers: as in `books`.
        max_offers: as in `books`.
        min_requests: as in `books`.
        max_requests: as in `books`.
        divisible: as in `books`.
        huge_prices: as in `books`.
        splittable: as in `books`.
        call_market: as in `books`.
        reputation: whether to draw provider scores and a default reputation (else none, and
            the default 0.0).
        quality: with `reputation`, whether to draw a quality weight sometimes (a scoring
            market: quality from the scores or drawn per provider). Off by default: oracles
            that rank by price alone would not apply.
    """
    return books(
        min_offers=min_offers,
        max_offers=max_offers,
        min_requests=min_requests,
        max_requests=max_requests,
        divisible=divisible,
        huge_prices=huge_prices,
        splittable=splittable,
        call_market=call_market,
    ).flatmap(lambda book: _markets(book, reputation, quality))


def describe_market(market: Market) -> str:
    """Python source that rebuilds `market`: its orders in row order and its reputation.

    Used in falsifying examples, where the market's own repr (only sizes) would not help.
    """
    snap = market.snapshot
    lines = ["orders = ["]
    lines += [f"    {o!r}," for o in snap.offer_list()]
    lines += [f"    {r!r}," for r in snap.request_list()]
    lines.append("]")
    rep: Mapping[str, float] = market.reputation
    quality = ""
    if market.quality_weight:
        quality = f", quality={market.quality!r}, quality_weight={market.quality_weight!r}"
    lines.append(
        f"market = Market(OrderBook(orders), {dict(rep)!r}, "
        f"default_reputation={market.default_reputation!r}{quality})"
    )
    return "\n".join(lines)
