"""The ``python -m auction demo`` command: every mechanism clearing a market it can clear.

`run_demo` clears the example markets of `auction.datasets` (re-exported here): the
`example_book` with the mechanisms that take constrained, all-or-nothing requests, and the
`example_exchange_book` (the same supply traded as a call market) with the bulk mechanisms
(`lp`, the double auctions, ``assignment`` with shared capacity). It prints one row per
mechanism with money in USD, shows one refusal on purpose (a double auction given the
example book) with the reason the mechanism gives, then compares price-only with
reputation-weighted clearing and runs a whitewashing attack.

This module is one of the two (with `auction.cli`) allowed to print.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from typing import Any, TextIO

import numpy as np

from auction.book import OrderBook
from auction.clearing import clear
from auction.datasets import (
    ATTACKER,
    AUDITORS,
    COMPLIANCE_TAGS,
    GPU_MODELS,
    INTERCONNECT_TAGS,
    PRICE_SCALE,
    QUALITY_WEIGHT,
    REGIONS,
    GpuSpec,
    attacker_offers,
    example_book,
    example_exchange_book,
    example_history,
    example_reputation,
)
from auction.errors import UnsupportedMarketError
from auction.fairness import report
from auction.market import Market
from auction.mechanisms import Mechanism, available
from auction.money import format_units
from auction.orders import Offer
from auction.reputation import Event, ReputationBook
from auction.result import ClearingResult

__all__ = [
    "ATTACKER",
    "AUDITORS",
    "COMPLIANCE_TAGS",
    "DEMO_RUNS",
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

#: (label, mechanism, options, book) of each demo row; book is ``"example"`` (`example_book`
#: with `example_reputation`) or ``"exchange"`` (`example_exchange_book`).
DEMO_RUNS: tuple[tuple[str, str, Mapping[str, Any], str], ...] = (
    ("first-price", "first-price", {}, "example"),
    ("second-price", "second-price", {}, "example"),
    ("assignment", "assignment", {}, "example"),
    ("gang", "gang", {}, "example"),
    ("lp", "lp", {}, "exchange"),
    ("lp lowest", "lp", {"payment": "uniform", "prices": "lowest"}, "exchange"),
    ("lp highest", "lp", {"payment": "uniform", "prices": "highest"}, "exchange"),
    ("assignment shared", "assignment", {"shape": "shared"}, "exchange"),
    ("uniform-price", "uniform-price", {}, "exchange"),
    ("mcafee", "mcafee", {}, "exchange"),
    ("sbba", "sbba", {}, "exchange"),
)

#: Mechanism tried on the wrong book on purpose, to show how a refusal reads.
_REFUSAL = ("uniform-price", "example")

_MILLI = 10 ** (PRICE_SCALE - 3)


def _money(units: int) -> str:
    """An exact amount in USD (`format_units`), trailing zeros cut to two decimals."""
    whole, _, frac = format_units(int(units), PRICE_SCALE).partition(".")
    return f"{whole}.{frac.rstrip('0').ljust(2, '0')}"


def _per_gpu(total: int | float | None, gpus: int | None = None) -> str:
    """``total / gpus`` in USD, rounded half-even to a tenth of a cent; ``-`` for nothing.

    With one argument, `total` is already an average in units (as fairness reports give).
    """
    if total is None or gpus == 0:
        return "-"
    exact = Fraction(total) / (gpus if gpus is not None else 1)
    whole, _, frac = format_units(round(exact / _MILLI) * _MILLI, PRICE_SCALE).partition(".")
    return f"{whole}.{frac[:3]}"


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


def _alternatives(error: UnsupportedMarketError) -> str:
    """The mechanisms a refusal names, as text (names, or (name, options) pairs)."""
    out = []
    alternatives: tuple[Any, ...] = tuple(error.alternatives)
    for alt in alternatives:
        if isinstance(alt, str):
            out.append(alt)
            continue
        name, options = alt  # a typed alternative: (name, options)
        opts = ", ".join(f"{k}={v!r}" for k, v in dict(options).items())
        out.append(f"{name} ({opts})" if opts else str(name))
    return ", ".join(out)


def _row(label: str, book: str, market: Market, result: ClearingResult) -> list[str]:
    rep = report(result, market)
    gpus = int(result.gpus.sum())
    return [
        label, book, result.payment, f"{gpus:,}", f"{rep.requests_filled}/{rep.requests}",
        _money(result.welfare), _money(result.total_payment), _money(result.provider_revenue),
        _per_gpu(result.provider_revenue, gpus), f"{rep.jain:.3f}",
    ]


_HEADERS = ("mechanism", "book", "payment", "GPUs", "filled", "welfare/h", "tenants pay/h",
            "providers get/h", "avg price", "Jain")


def run_demo(
    out: TextIO | None = None,
    seed: int = 0,
    *,
    mechanisms: Iterable[str | Mechanism] | None = None,
) -> None:
    """Clear the example markets with every mechanism and print a comparison.

    Each mechanism clears the book it can clear: the `example_book` (with `example_reputation`)
    for `first-price`, `second-price`, `assignment` and `gang`; the `example_exchange_book` for
    `lp`, the double auctions and ``assignment(shape="shared")`` (`DEMO_RUNS`). A mechanism
    that is not built in (a plugin) tries the example book, then the exchange book; one that
    can clear neither gets a row with its reason. Each row: GPUs allocated, requests fully
    filled, welfare, what tenants pay and providers get (USD per hour; the difference is the
    platform's margin), the average price per GPU-hour paid to providers, and Jain's index of
    provider revenue. Then one refusal shown on purpose, and the reputation comparison.

    Args:
        out: where to print; None means ``sys.stdout`` at call time.
        seed: the example markets' seed.
        mechanisms: names or instances to compare, each on the first book it can clear; None
            means the built-in runs of `DEMO_RUNS` and every other registered name.
    """
    stream = sys.stdout if out is None else out
    book, exchange_book = example_book(seed), example_exchange_book(seed)
    markets = {"example": Market(book, example_reputation(seed)),
               "exchange": Market(exchange_book)}
    rows: list[Sequence[str]] = []
    if mechanisms is None:
        for label, name, options, which in DEMO_RUNS:
            result = clear(markets[which], name, rng=seed, **options)
            rows.append(_row(label, which, markets[which], result))
        built_in = {name for _, name, _, _ in DEMO_RUNS}
        extra: list[str | Mechanism] = [n for n in available() if n not in built_in]
    else:
        extra = list(mechanisms)
    for mech in extra:
        rows.append(_first_that_clears(mech, markets, seed))
    exchange = markets["exchange"]
    lines = [
        f"auction demo: every mechanism on a market it can clear (seed {seed})",
        "example book: the built-in example market",
        *_describe(book, markets["example"]),
        "exchange book: the same supply as an exchange (one instrument per GPU model and "
        "region;",
        f"  every request divisible and pinned to one: {exchange.n_classes} instruments, "
        f"{exchange.pair_count():,} eligible pairs)",
        "money in USD (exact, from integer micro-dollars): prices per GPU-hour, amounts per "
        "hour;",
        "  welfare = (max price - ask) x GPUs; tenants pay - providers get = the platform's "
        "margin",
        "",
        *_format_table(_HEADERS, rows),
    ]
    if mechanisms is None:
        lines += _refusal_section(markets, seed)
        lines += ["", *_reputation_section(seed)]
    print("\n".join(lines), file=stream)


def _first_that_clears(
    mech: str | Mechanism, markets: Mapping[str, Market], seed: int
) -> list[str]:
    name = mech if isinstance(mech, str) else mech.name
    reasons = []
    for which, market in markets.items():
        try:
            result = clear(market, mech, rng=seed)
        except UnsupportedMarketError as e:
            hint = f" (use {_alternatives(e)})" if e.alternatives else ""
            reasons.append(f"{e.reason}{hint}")
            continue
        return _row(name, which, market, result)
    return [name, f"cannot clear this market: {reasons[0]}"]


def _refusal_section(markets: Mapping[str, Market], seed: int) -> list[str]:
    """One mechanism given a book it cannot clear, on purpose: what the refusal says."""
    name, which = _REFUSAL
    try:
        clear(markets[which], name, rng=seed)
    except UnsupportedMarketError as e:
        lines = [
            "",
            f"a refusal, on purpose: {name} given the {which} book raises "
            "UnsupportedMarketError",
            f"  reason: {e.reason}",
        ]
        if e.alternatives:
            lines.append(f"  mechanisms it names for this book: {_alternatives(e)}")
        return [
            *lines,
            "  a double auction trades single GPUs in one book per resource class; the "
            "exchange book",
            "  makes every request divisible and pinned to one class, and there it clears "
            "(row above)",
        ]
    return []


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
        market = Market(OrderBook([*base, *attacker_offers(identity)]), scores[model],
                        quality_weight=weight)
        return market, clear(market, "second-price", payment="vickrey")

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
            label, f"{gpus:,}", _money(result.welfare),
            _per_gpu(result.provider_revenue / gpus if gpus else None), f"{quality:.3f}",
        ))
        got = []
        for identity in (ATTACKER, fresh):
            _, res = run(identity, model, weight)
            mine = res.provider == identity
            got.append((int(res.gpus[mine].sum()), sum(res.provider_payment[mine].tolist())))
        kept_score, fresh_score = (scores[model].get(i, 0.0) for i in (ATTACKER, fresh))
        attack_rows.append((
            label, f"{kept_score:.3f}", f"{fresh_score:.3f}",
            f"{got[0][0]}", f"{got[1][0]}", _money(got[0][1]), _money(got[1][1]),
            _money(got[1][1] - got[0][1]),
        ))
    return [
        "reputation: price-only against reputation-weighted clearing (second-price, paid by "
        "second score; quality",
        f"  is the provider's score under each model, worth {_money(QUALITY_WEIGHT)} USD per "
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
