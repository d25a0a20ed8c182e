"""Constraint expressions on candidate pairs: pairs per second, columnar against plain Python.

The market evaluates each request's constraint over the offers of its candidate pairs. Here:
10^4 offers with the built-in fields (7 GPU models, 200 regions, VRAM, GPUs, price, 2,500
providers, tags) and user attributes held by some offers only (``cuda`` a decimal string,
``driver`` an int, ``ecc`` a bool, ``tier`` a string); 10^5 requests, each with one of 10^3
distinct random expressions of 2-5 atoms (every operator, ``in``, ``has``, ``not``, ``or``);
about 10 random candidate offers per request, 10^6 pairs. In one run, on the same pairs:

* columnar: group the pairs by expression (one argsort), then per distinct expression one
  `Expression.evaluate(offers, rows)` on the offer rows of its pairs;
* the same, each expression evaluated once on all offers and the pairs gathered from that;
* the anchor: plain Python per pair, each expression compiled once into nested closures over
  dicts (exact: Fractions for decimals), called once per pair.

Both columnar results are checked equal to the anchor before any time is printed. Times are
the best of `--repeat` runs. Run:

    python benchmarks/bench_constraints.py            # 10^5 requests, 10^6 pairs
    python benchmarks/bench_constraints.py --quick    # 10^4 requests, 10^5 pairs (< 60 s)
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))

from instances import MODELS, TAGS, best_of

from auction.constraints import (
    And,
    AttributeTable,
    Column,
    Compare,
    Const,
    Expression,
    Has,
    Member,
    Node,
    Not,
    Or,
    parse,
)

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
REGIONS = [f"region-{i:03d}" for i in range(200)]
TIERS = ["bronze", "silver", "gold", "platinum"]


# -- inputs -----------------------------------------------------------------------------------
def make_offers(n: int, rng: np.random.Generator) -> tuple[AttributeTable, list[dict[str, Any]]]:
    """The offers' table (built-ins as typed columns, attributes from records) and the same
    offers as dicts for the Python anchor."""
    model = rng.integers(0, len(MODELS), n)
    region = rng.integers(0, len(REGIONS), n)
    vram = np.array([m[1] for m in MODELS])[model]
    gpus = rng.choice([1, 2, 4, 8], n)
    price = (np.array([m[2] for m in MODELS])[model] * rng.uniform(0.6, 1.4, n)).astype(np.int64)
    provider = rng.integers(0, max(1, n // 4), n)
    tag_mask = rng.random((n, len(TAGS))) < 0.3
    tags = [frozenset(t for t, on in zip(TAGS, row, strict=True) if on) for row in tag_mask]
    records: list[dict[str, Any]] = []
    for _ in range(n):
        rec: dict[str, Any] = {}
        if rng.random() < 0.8:
            rec["cuda"] = f"{rng.integers(11, 13)}.{rng.integers(0, 9)}"
        if rng.random() < 0.6:
            rec["driver"] = int(rng.integers(470, 560))
        if rng.random() < 0.5:
            rec["ecc"] = bool(rng.random() < 0.5)
        if rng.random() < 0.4:
            rec["tier"] = TIERS[int(rng.integers(0, len(TIERS)))]
        records.append(rec)
    providers = [f"p{i}" for i in range(max(1, n // 4))]
    table = AttributeTable.from_records(records).with_columns(
        gpu_model=Column.from_codes(model, [m[0] for m in MODELS]),
        region=Column.from_codes(region, REGIONS),
        vram_gb=vram,
        gpus=gpus,
        price=price,
        provider=Column.from_codes(provider, providers),
        tags=tags,
    )
    dicts = []
    for i in range(n):
        d: dict[str, Any] = {
            "gpu_model": MODELS[model[i]][0], "region": REGIONS[region[i]],
            "vram_gb": int(vram[i]), "gpus": int(gpus[i]), "price": int(price[i]),
            "provider": providers[provider[i]], "tags": tags[i],
        }
        for k, v in records[i].items():
            d[k] = Fraction(v) if k == "cuda" else v
        dicts.append(d)
    return table, dicts


def random_atom(rng: np.random.Generator, n_providers: int) -> str:
    pick = int(rng.integers(0, 12))
    op = ["==", "!=", "<", "<=", ">", ">="][int(rng.integers(0, 6))]
    if pick == 0:
        ms = rng.choice([m[0] for m in MODELS], int(rng.integers(1, 4)), replace=False)
        return "gpu_model in (" + ", ".join(f"'{m}'" for m in ms) + ")"
    if pick == 1:
        rs = rng.choice(REGIONS, int(rng.integers(1, 30)), replace=False)
        return "region in (" + ", ".join(f"'{r}'" for r in rs) + ")"
    if pick == 2:
        return f"vram_gb {op} {[16, 24, 32, 80, 141][int(rng.integers(0, 5))]}"
    if pick == 3:
        return f"price {op} {int(rng.integers(100_000, 4_000_000))}"
    if pick == 4:
        return f"tags == '{TAGS[int(rng.integers(0, len(TAGS)))]}'"
    if pick == 5:
        ps = rng.integers(0, n_providers, int(rng.integers(1, 6)))
        return "not provider in (" + ", ".join(f"'p{p}'" for p in ps) + ")"
    if pick == 6:
        return f"cuda {op} {rng.integers(11, 13)}.{rng.integers(0, 9)}"
    if pick == 7:
        return f"driver {op} {int(rng.integers(470, 560))}"
    if pick == 8:
        return f"ecc == {'true' if rng.random() < 0.7 else 'false'}"
    if pick == 9:
        return f"has tier and tier {op} '{TIERS[int(rng.integers(0, len(TIERS)))]}'"
    if pick == 10:
        return f"gpus >= {[1, 2, 4, 8][int(rng.integers(0, 4))]}"
    return f"{int(rng.integers(1, 8))} <= gpus"


def random_expression(rng: np.random.Generator, n_providers: int) -> str:
    atoms = [random_atom(rng, n_providers) for _ in range(int(rng.integers(2, 6)))]
    if len(atoms) >= 3 and rng.random() < 0.3:  # an alternative: (a or b) and rest
        atoms = [f"({atoms[0]} or {atoms[1]})", *atoms[2:]]
    if rng.random() < 0.2:
        atoms[-1] = f"not ({atoms[-1]})"
    return " and ".join(atoms)


# -- the anchor: closures over dicts -----------------------------------------------------------
Fn = Callable[[dict[str, Any]], bool]
_MISSING = object()


def compile_python(node: Node) -> Fn:
    """Plain-Python evaluation of one expression on one dict (same semantics)."""
    if isinstance(node, And):
        parts = [compile_python(a) for a in node.args]
        return lambda row: all(p(row) for p in parts)
    if isinstance(node, Or):
        parts = [compile_python(a) for a in node.args]
        return lambda row: any(p(row) for p in parts)
    if isinstance(node, Not):
        inner = compile_python(node.arg)
        return lambda row: not inner(row)
    if isinstance(node, Const):
        value = node.value
        return lambda row: value
    if isinstance(node, Has):
        name = node.name

        def has(row: dict[str, Any]) -> bool:
            v = row.get(name, _MISSING)
            return v is not _MISSING and (not isinstance(v, frozenset) or bool(v))

        return has
    if isinstance(node, Member):
        eqs = [compile_python(Compare(node.name, "==", lit)) for lit in node.literals]
        return lambda row: any(e(row) for e in eqs)
    assert isinstance(node, Compare)
    name, op, kind, lit = node.name, node.op, node.literal.kind, node.literal.value
    text = node.literal.string  # a string, or a quoted decimal's text
    cmp: Callable[[Any, Any], bool] = {
        "==": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
    }[op]

    def compare(row: dict[str, Any]) -> bool:
        v = row.get(name, _MISSING)
        if v is _MISSING:
            return False
        if isinstance(v, frozenset):
            if text is None or op not in ("==", "!="):
                return False
            return (text in v) == (op == "==")
        if isinstance(v, bool):
            return kind == "bool" and cmp(v, lit)
        if isinstance(v, int | Fraction):
            return kind == "num" and cmp(v, lit)
        return text is not None and cmp(v, text)

    return compare


# -- the run ------------------------------------------------------------------------------------
def columnar(exprs: list[Expression], req_expr: IntArray, pair_req: IntArray,
             pair_offer: IntArray, table: AttributeTable, *, full: bool = False) -> BoolArray:
    """Eligibility of every pair: pairs grouped by expression, one evaluate per expression."""
    pe = req_expr[pair_req]
    order = np.argsort(pe, kind="stable")
    bounds = np.searchsorted(pe[order], np.arange(len(exprs) + 1))
    out = np.empty(len(pair_req), dtype=bool)
    for k, e in enumerate(exprs):
        sel = order[bounds[k] : bounds[k + 1]]
        if len(sel) == 0:
            continue
        if full:
            out[sel] = e.evaluate(table)[pair_offer[sel]]
        else:
            out[sel] = e.evaluate(table, pair_offer[sel])
    return out


def python_pairs(fns: list[Fn], req_expr: IntArray, pair_req: IntArray, pair_offer: IntArray,
                 offers: list[dict[str, Any]]) -> BoolArray:
    """The anchor: one closure call per pair."""
    fr = [fns[e] for e in req_expr.tolist()]
    got = [fr[r](offers[o]) for r, o in zip(pair_req.tolist(), pair_offer.tolist(), strict=True)]
    return np.array(got, dtype=bool)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10^4 requests, 10^5 pairs")
    ap.add_argument("--offers", type=int, default=10**4)
    ap.add_argument("--expressions", type=int, default=10**3)
    ap.add_argument("--per-request", type=int, default=10, help="candidate offers per request")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    n_req = 10**4 if args.quick else 10**5
    rng = np.random.default_rng(0)

    t = time.perf_counter()
    table, offer_dicts = make_offers(args.offers, rng)
    t_table = time.perf_counter() - t
    texts = sorted({random_expression(rng, args.offers // 4) for _ in range(args.expressions)})
    req_texts = [texts[i] for i in rng.integers(0, len(texts), n_req).tolist()]
    pair_req = np.repeat(np.arange(n_req, dtype=np.int64), args.per_request)
    pair_offer = rng.integers(0, args.offers, len(pair_req)).astype(np.int64)
    n_pairs = len(pair_req)

    t = time.perf_counter()
    exprs = [parse(s) for s in texts]
    t_parse = time.perf_counter() - t
    t = time.perf_counter()
    index = {s: i for i, s in enumerate(texts)}
    req_expr = np.array([index[parse(s).source] for s in req_texts], dtype=np.int64)
    t_requests = time.perf_counter() - t
    fns = [compile_python(e.root) for e in exprs]

    t_col, got = best_of(lambda: columnar(exprs, req_expr, pair_req, pair_offer, table),
                         args.repeat)
    t_full, got_full = best_of(
        lambda: columnar(exprs, req_expr, pair_req, pair_offer, table, full=True), args.repeat)
    t_py, want = best_of(
        lambda: python_pairs(fns, req_expr, pair_req, pair_offer, offer_dicts), args.repeat)
    assert np.array_equal(got, want), "columnar and Python disagree"
    assert np.array_equal(got_full, want), "full-table columnar and Python disagree"

    print(f"{args.offers} offers, {n_req} requests, {len(texts)} distinct expressions, "
          f"{n_pairs} candidate pairs ({int(want.sum())} satisfy their request's expression)")
    print(f"offers' AttributeTable (records + built-in columns): {t_table:.3f} s")
    print(f"parse {len(texts)} distinct expressions: {t_parse:.3f} s; "
          f"look up {n_req} requests' texts (cached): {t_requests:.3f} s")
    header = f"{'pairs evaluated by':<58} {'seconds':>8} {'pairs/s':>10} {'ratio':>7}"
    print(header)
    print("-" * len(header))
    for label, sec in [
        ("plain Python, a closure per expression, per pair (anchor)", t_py),
        ("columnar: evaluate(offers, rows) per expression", t_col),
        ("columnar: evaluate(offers) per expression, then gather", t_full),
    ]:
        print(f"{label:<58} {sec:>8.3f} {n_pairs / sec:>10.3e} {t_py / sec:>6.1f}x")


if __name__ == "__main__":
    main()
