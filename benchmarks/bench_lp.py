"""Bulk clearing (`lp`): every exact method for the transportation problem on the same markets.

Markets of (offers, requests, eligible offers per request) = (1000, 5000, 20) and
(5000, 50000, 20), built through the library (`OrderBook` of `Offer` and divisible `Request`,
then `Market`): every offer has its own region and every request lists 20 random regions, so
it is eligible for exactly 20 offers (its max price is above every ask: price never filters).
Asks are H100-like (1.9 USD per GPU-hour +-30%, in micro-USD), max prices 1.35-2.0x that;
offers hold 1-8 GPUs (mostly 8), requests want 1-8. The welfare weight of a pair is the
surplus max_price - ask, so many allocations tie: the LP is degenerate, as real markets are.

On each market, in one run, every solver maximizes total surplus: `lp` with each HiGHS method
(scipy and highspy), `lp` with the ``flow`` backend when the library has it, PuLP+CBC built the
usual way (one `LpVariable` per pair, `lpSum` constraints), the shared-capacity auction
(`assignment`, shape="shared") and OR-tools' `SimpleMinCostFlow`. Each runs in a subprocess
with a time limit (a slower one shows as "> limit"; a missing package as "skip"), reports model
build and solve separately, and its optimum: all finished solvers must agree exactly (integer
welfare) before any time is printed. Run:

    python benchmarks/bench_lp.py                 # both markets (15-20 minutes)
    python benchmarks/bench_lp.py --quick         # the small market only (about 3 minutes)
    python benchmarks/bench_lp.py --limit 300     # seconds per solver (default 120)
    python benchmarks/bench_lp.py --only "ipm,OR-tools"   # solvers whose name contains these
    python benchmarks/bench_lp.py --shared --only "shared,default,OR-tools"  # 10^5 requests

Then the same on the library's own example book (`instances.example_book_repeated`: 1, 4 and
16 copies, 422 to 6,716 orders, 2,254 to 536,206 eligible pairs; ``--quick``: 1 and 4;
``--example-only``: these alone).
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing as mp
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from instances import example_book_repeated, example_copies

from auction import Market, Offer, OrderBook, Request

CASES = [(1000, 5000, 20), (5000, 50000, 20)]
#: Shared capacity at scale (issue 12 item 4): 10^5 requests, 8-GPU offers.
SHARED_CASE = (12_500, 100_000, 10)
H100 = 1_900_000  # micro-USD per GPU-hour
Result = dict[str, Any]  # build, solve, objective, and optional extra (name -> seconds)


# -- instances ------------------------------------------------------------------------------
def make_book(n_offers: int, n_requests: int, d: int, seed: int = 0,
              gpus: int | None = None) -> OrderBook:
    """Offers with their own region each; requests eligible for exactly `d` random offers.
    Offers hold 1-8 GPUs (mostly 8), or `gpus` each when given."""
    rng = np.random.default_rng(seed)
    ask = np.round(H100 * rng.uniform(0.7, 1.3, n_offers), -3).astype(np.int64)
    cap = rng.choice([1, 2, 4, 8], n_offers, p=[0.1, 0.1, 0.2, 0.6])
    if gpus is not None:
        cap[:] = gpus
    offers = [
        Offer(id=f"o{i}", provider=f"p{i // 4}", gpu_model="H100", gpus=int(cap[i]),
              price=int(ask[i]), region=f"z{i}", vram_gb=80, submitted_at=i)
        for i in range(n_offers)
    ]
    max_price = np.round(H100 * rng.uniform(1.35, 2.0, n_requests), -3).astype(np.int64)
    demand = rng.integers(1, 9, n_requests)
    zones = [rng.choice(n_offers, d, replace=False) for _ in range(n_requests)]
    requests = [
        Request(id=f"r{j}", tenant=f"t{j % 997}", gpus=int(demand[j]),
                max_price=int(max_price[j]), regions=frozenset(f"z{k}" for k in zones[j].tolist()),
                divisible=True, submitted_at=j)
        for j in range(n_requests)
    ]
    book = OrderBook(offers)
    book.add_many(requests)
    return book


# -- solvers: each takes the market (pairs already materialized) and returns a Result --------
def run_lp(market: Market, backend: str, method: str | None) -> Result:
    from auction.mechanisms.lp import equilibrium_prices, solve_transport, transport_problem

    if backend == "flow":  # compile the kernels outside the timing
        t = time.perf_counter()
        solve_transport(transport_problem(Market(make_book(4, 6, 2, seed=1))), backend="flow")
        compile_s = time.perf_counter() - t
    t0 = time.perf_counter()
    problem = transport_problem(market)
    t1 = time.perf_counter()
    options = {} if method is None else {"method": method}
    flow, stats = solve_transport(problem, backend=backend, **options)
    if flow is None:
        raise RuntimeError(f"{stats['solver_status']}: {stats['solver_message']}")
    t2 = time.perf_counter()
    duals = equilibrium_prices(problem, flow)  # the mechanism's certificate of optimality
    t3 = time.perf_counter()
    if duals is None:
        raise RuntimeError("the allocation is not optimal (no duals certify it)")
    extra = {"certify": t3 - t2}
    if backend == "flow":
        extra["compile"] = compile_s
    return {"build": t1 - t0 + stats["build_seconds"], "solve": stats["solve_seconds"],
            "objective": int((problem.weight * flow).sum()), "extra": extra}


def run_pulp(market: Market) -> Result:
    """PuLP+CBC the usual way: a named variable per pair, `lpSum` constraints, CBC."""
    import pulp

    pairs = market.pairs()
    rq, of = market.snapshot.requests, market.snapshot.offers
    t0 = time.perf_counter()
    rows = np.repeat(np.arange(market.n_requests), np.diff(pairs.indptr)).tolist()
    keys = list(zip(rows, pairs.offers.tolist(), strict=True))
    surplus = pairs.surplus.tolist()
    demand, capacity = rq.gpus.tolist(), of.gpus.tolist()
    prob = pulp.LpProblem("transport", pulp.LpMaximize)
    x = pulp.LpVariable.dicts("x", keys, lowBound=0)
    prob += pulp.lpSum(s * x[k] for k, s in zip(keys, surplus, strict=True))
    by_request: dict[int, list[Any]] = {}
    by_offer: dict[int, list[Any]] = {}
    for r, o in keys:
        by_request.setdefault(r, []).append(x[r, o])
        by_offer.setdefault(o, []).append(x[r, o])
    for r, xs in by_request.items():
        prob += pulp.lpSum(xs) <= demand[r], f"demand_{r}"
    for o, xs in by_offer.items():
        prob += pulp.lpSum(xs) <= capacity[o], f"capacity_{o}"
    t1 = time.perf_counter()
    built(t1 - t0)
    prob.solve(pulp.PULP_CBC_CMD(msg=False))
    t2 = time.perf_counter()
    if pulp.LpStatus[prob.status] != "Optimal":
        raise RuntimeError(f"CBC: {pulp.LpStatus[prob.status]}")
    values = np.array([x[k].varValue or 0.0 for k in keys])
    flow = np.rint(values).astype(np.int64)
    if len(values) and float(np.abs(values - flow).max()) > 1e-6:
        raise RuntimeError("CBC returned a fractional solution")
    return {"build": t1 - t0, "solve": t2 - t1, "objective": int((pairs.surplus * flow).sum())}


def _clear_end_to_end(market: Market, name: str, **options: Any) -> Result:
    """`auction.clear(market, name)` end to end (problem build, solve, certificate or duals,
    result), compiled first on a small market; build = the solver's own model build."""
    import auction

    t = time.perf_counter()
    auction.clear(Market(make_book(4, 6, 2, seed=1)), name, **options)  # compile
    compile_s = time.perf_counter() - t
    t0 = time.perf_counter()
    result = auction.clear(market, name, time_limit=None, **options)
    total = time.perf_counter() - t0
    if not result.success:
        raise RuntimeError(f"{name}: {result.status}: {result.message}")
    d = result.diagnostics
    build = float(d.get("build_seconds", 0.0))
    built(build)
    extra = {"compile": compile_s}
    if "certify_seconds" in d:
        extra["certify (included)"] = float(d["certify_seconds"])
    return {"build": build, "solve": total - build, "objective": int(result.welfare),
            "extra": extra}


def run_assignment(market: Market) -> Result:
    """The shared-capacity assignment: the transportation problem by the flow kernel."""
    return _clear_end_to_end(market, "assignment", shape="shared", max_edges=10**9)


def run_lp_default(market: Market) -> Result:
    """`lp` as users get it (``backend="auto"``), end to end, certificate included."""
    return _clear_end_to_end(market, "lp")


def run_ortools(market: Market) -> Result:
    """Min-cost flow: source -> requests -> offers -> sink, plus a free source -> sink bypass."""
    from ortools.graph.python import min_cost_flow

    pairs = market.pairs()
    rq, of = market.snapshot.requests, market.snapshot.offers
    t0 = time.perf_counter()
    n, m = market.n_requests, market.n_offers
    source, sink = n + m, n + m + 1
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(pairs.indptr))
    total = int(rq.gpus.sum())
    tails = np.concatenate([np.full(n, source), rows, n + np.arange(m), [source]])
    heads = np.concatenate([np.arange(n), n + pairs.offers, np.full(m, sink), [sink]])
    caps = np.concatenate([rq.gpus, np.minimum(rq.gpus[rows], of.gpus[pairs.offers]), of.gpus,
                           [total]])
    costs = np.concatenate([np.zeros(n, np.int64), -pairs.surplus, np.zeros(m + 1, np.int64)])
    smcf = min_cost_flow.SimpleMinCostFlow()
    smcf.add_arcs_with_capacity_and_unit_cost(tails, heads, caps, costs)
    supplies = np.zeros(n + m + 2, dtype=np.int64)
    supplies[source], supplies[sink] = total, -total
    smcf.set_nodes_supplies(np.arange(n + m + 2), supplies)
    t1 = time.perf_counter()
    built(t1 - t0)
    status = smcf.solve()
    t2 = time.perf_counter()
    if status != smcf.OPTIMAL:
        raise RuntimeError(f"SimpleMinCostFlow status {status}")
    return {"build": t1 - t0, "solve": t2 - t1, "objective": -int(smcf.optimal_cost())}


def has_flow_backend() -> bool:
    from auction.mechanisms.lp import LinearProgram

    return (importlib.util.find_spec("auction.kernels.flow") is not None
            and "flow" in LinearProgram.backends)


def solvers() -> dict[str, tuple[Callable[[Market], Result], str]]:
    """name -> (run, kind); kind: 'lp' (the mechanism), 'library' (another exact method of
    the library), 'pulp' or 'ortools' (competitors)."""
    out: dict[str, tuple[Callable[[Market], Result], str]] = {}

    def lp(backend: str, method: str | None) -> Callable[[Market], Result]:
        return lambda market: run_lp(market, backend, method)

    for backend, method in [("highs", "ipm"), ("highs", "dual-simplex"), ("highs", "auto"),
                            ("highspy", "primal-simplex"), ("highspy", "dual-simplex"),
                            ("highspy", "ipm")]:
        out[f"lp {backend} {method}"] = (lp(backend, method), "lp")
    if has_flow_backend():
        out["lp flow"] = (lp("flow", None), "lp")
    out["lp default"] = (run_lp_default, "lp")
    out["assignment shared"] = (run_assignment, "library")
    out["PuLP+CBC"] = (run_pulp, "pulp")
    out["OR-tools min-cost flow"] = (run_ortools, "ortools")
    return out


# -- subprocess runner ------------------------------------------------------------------------
_PROGRESS: Any = None  # in a solver's subprocess: the pipe to the parent


def built(seconds: float) -> None:
    """Tell the parent that the model is built (shown if the solve then runs out of time)."""
    if _PROGRESS is not None:
        _PROGRESS.send(("built", seconds))


def _child(run: Callable[[Market], Result], market: Market, conn: Any) -> None:
    global _PROGRESS
    _PROGRESS = conn
    os.setpgrp()  # CBC runs as a child of this process: kill them together on timeout
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)  # highspy prints a banner on stdout even with output_flag off
    try:
        conn.send(("ok", run(market)))
    except ImportError as e:
        conn.send(("skip", str(e)))
    except Exception as e:
        conn.send(("error", repr(e)))


def timed(run: Callable[[Market], Result], market: Market, limit: float) -> tuple[str, Any]:
    """Run a solver in a subprocess: ('ok', Result), ('timeout', build seconds if known) or
    ('skip'|'error', message)."""
    ctx = mp.get_context("fork")  # the child inherits the market, pairs already cached
    recv, send = ctx.Pipe(duplex=False)
    deadline = time.perf_counter() + limit
    proc = ctx.Process(target=_child, args=(run, market, send))
    proc.start()
    send.close()
    out: tuple[str, Any] = ("timeout", None)
    while recv.poll(max(0.0, deadline - time.perf_counter())):
        try:
            msg = recv.recv()
        except EOFError:
            out = ("error", f"the solver process died (exit code {proc.exitcode})")
            break
        if msg[0] != "built":
            out = msg
            break
        out = ("timeout", msg[1])
    if out[0] == "timeout" and proc.is_alive():
        os.killpg(proc.pid, signal.SIGKILL)
    proc.join()
    return out


# -- report -----------------------------------------------------------------------------------
def fmt(seconds: float) -> str:
    return f"{seconds:.3f}" if seconds < 10 else f"{seconds:.1f}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="only the first (small) market")
    ap.add_argument("--limit", type=float, default=120.0, help="seconds per solver run")
    ap.add_argument("--shared", action="store_true", help="only the shared-capacity case: "
                    f"{SHARED_CASE[1]:,} requests, {SHARED_CASE[0]:,} offers of 8 GPUs")
    ap.add_argument("--only", help="comma-separated texts: run only solvers whose name "
                    "contains one of them")
    ap.add_argument("--example-only", action="store_true",
                    help="only the example book (1, 4 and 16 copies)")
    args = ap.parse_args(argv)
    table = solvers()
    if args.only:
        wanted = args.only.split(",")
        table = {k: v for k, v in table.items() if any(w in k for w in wanted)}
    print(f"solvers: {', '.join(table)}" + ("" if has_flow_backend() else
                                             " (no `flow` backend in this version of lp)"))
    reports = []
    cases = [] if args.example_only else [SHARED_CASE] if args.shared else (
        CASES[:1] if args.quick else CASES)
    work: list[tuple[str, Callable[[], OrderBook]]] = []
    for n_offers, n_requests, d in cases:
        label = f"{n_offers} offers, {n_requests} requests, {d} eligible per request"
        eight = 8 if args.shared else None
        if eight:
            label += ", 8-GPU offers"
        work.append((label, lambda n_offers=n_offers, n_requests=n_requests, d=d, eight=eight:
                     make_book(n_offers, n_requests, d, seed=n_requests + d, gpus=eight)))
    for copies in [] if args.shared else example_copies(args.quick, largest=16):
        work.append((f"the example book x{copies}",
                     lambda copies=copies: example_book_repeated(copies)))
    for label, build in work:
        t0 = time.perf_counter()
        book = build()
        t1 = time.perf_counter()
        market = Market(book)
        pairs = market.pairs()
        t2 = time.perf_counter()
        rq, of = market.snapshot.requests, market.snapshot.offers
        head = (f"### {label}\n\ninstance build {fmt(t1 - t0)} s; `Market(book)` + "
                f"`market.pairs()` {fmt(t2 - t1)} s; {len(pairs):,} eligible pairs; "
                f"{int(rq.gpus.sum()):,} GPUs requested, {int(of.gpus.sum()):,} offered")
        print(f"{label}: built", flush=True)
        results = {}
        for name, (run, _) in table.items():
            results[name] = timed(run, market, args.limit)
            print(f"  {name}: {results[name][0]}"
                  + (f" ({results[name][1]})" if results[name][0] in ("error", "skip") else ""),
                  flush=True)
        optimum = {r["objective"] for status, r in results.values() if status == "ok"}
        assert len(optimum) == 1, f"{label}: solvers disagree on the optimum: {results}"
        print(f"  optimum {optimum.pop():,} (micro-USD per hour) agreed by "
              f"{sum(s == 'ok' for s, _ in results.values())} solvers", flush=True)
        reports.append((head, results))

    for head, results in reports:
        print(f"\n{head}\n")
        print_table(results, args.limit)
        print()
        print_targets(results, table, args.limit)


def print_table(results: dict[str, tuple[str, Any]], limit: float) -> None:
    print("| method | build (s) | solve (s) | end to end (s) | build / solve | not in end to end "
          "| optimum |")
    print("|---|---:|---:|---:|---:|---|---:|")
    for name, (status, r) in results.items():
        if status == "timeout" and r is not None:  # built, then ran out of time solving
            print(f"| {name} | {fmt(r)} | > {limit - r:.0f} | > {limit:.0f} | | | |")
            continue
        if status != "ok":
            shown = f"> {limit:.0f}" if status == "timeout" else status
            print(f"| {name} | | | {shown} | | | |")
            continue
        extra = ", ".join(f"{k} {fmt(v)} s" for k, v in r.get("extra", {}).items())
        print(f"| {name} | {fmt(r['build'])} | {fmt(r['solve'])} | "
              f"{fmt(r['build'] + r['solve'])} | {100 * r['build'] / r['solve']:.1f}% | "
              f"{extra} | {r['objective']:,} |")


def end_to_end(result: tuple[str, Any], limit: float) -> tuple[float, bool]:
    """(seconds, exact?): a timed-out run counts as `limit`, a lower bound."""
    status, r = result
    if status == "ok":
        return r["build"] + r["solve"], True
    return limit, False


def print_targets(results: dict[str, tuple[str, Any]],
                  table: dict[str, tuple[Callable[[Market], Result], str]], limit: float) -> None:
    def ok(kinds: tuple[str, ...]) -> dict[str, float]:
        return {k: end_to_end(v, limit)[0] for k, v in results.items()
                if table[k][1] in kinds and v[0] == "ok"}

    lp_ok = ok(("lp",))
    default = "lp default"
    fastest_lp = min(lp_ok, key=lp_ok.__getitem__) if lp_ok else None
    for name in dict.fromkeys([default, fastest_lp]):
        if name is None or name not in results:
            continue
        if results[name][0] != "ok":
            print(f"- lp model build / solve: {name} did not finish")
            continue
        r = results[name][1]
        share = r["build"] / r["solve"]
        print(f"- lp model build / solve ({name}): {100 * share:.1f}% "
              f"(target < 5%: {'met' if share < 0.05 else 'missed'})")
    pulp_s, pulp_exact = end_to_end(results["PuLP+CBC"], limit) if "PuLP+CBC" in results \
        else (0.0, False)
    for name in dict.fromkeys([default, fastest_lp]):
        if name is None or name not in lp_ok or "PuLP+CBC" not in results or \
                results["PuLP+CBC"][0] not in ("ok", "timeout"):
            continue
        ratio = pulp_s / lp_ok[name]
        verdict = "met" if ratio >= 30 else ("missed" if pulp_exact else "not shown")
        extra = results[name][1].get("extra", {})
        certified = lp_ok[name] + extra.get("certify", 0.0)  # lp default includes it
        print(f"- PuLP+CBC end to end / {name} end to end: {'' if pulp_exact else '>= '}"
              f"{ratio:.1f}x (target >= 30x: {verdict}); counting the lp mechanism's "
              f"certificate (equilibrium_prices) too: {'' if pulp_exact else '>= '}"
              f"{pulp_s / certified:.1f}x")
    lib = ok(("lp", "library"))
    orsolved = results.get("OR-tools min-cost flow", ("skip",))
    if lib and orsolved[0] == "ok":
        best = min(lib, key=lib.__getitem__)
        r, o = results[best][1], orsolved[1]
        ratio = lib[best] / (o["build"] + o["solve"])
        if "assignment shared" in lib:
            shared = lib["assignment shared"] / (o["build"] + o["solve"])
            print(f"- assignment shape=shared end to end / OR-tools min-cost flow end to end: "
                  f"{shared:.2f}x")
        print(f"- fastest library exact method ({best}) / OR-tools min-cost flow, end to end: "
              f"{ratio:.2f}x (target <= 2x: {'met' if ratio <= 2 else 'missed'}); "
              f"solve only: {r['solve'] / o['solve']:.2f}x")


if __name__ == "__main__":
    main()
