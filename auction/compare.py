"""Compare market designs on the same order flow: one tidy table, a summary and a plot.

`compare` runs every design on the same `auction.simulation.OrderFlow` for the same seeds
(`auction.simulation.simulate`, so every design sees the same posted orders in every epoch)
and returns a `Comparison`: one row per (design, seed, epoch) and a summary per design.

The columns, per epoch:

* ``fill_rate``: share of the requests in the epoch's book (new and waiting) that got
  GPUs; ``time_to_fill``: mean epochs the requests served in the epoch waited since their id
  was first posted (a request waits when the flow has ``patience``, as
  ``ExampleFlow(patience=2)``, the default flow here, or when the flow posts its id again;
  always 0 with no waiting);
* ``audited``, ``audit_failures``, ``slashed``: the design's audit policy at work (each
  preset's `auction.simulation.AuditPolicy`);
* ``tenant_cost_per_gpu_hour``: what tenants paid (fees included) per GPU-hour delivered;
* ``provider_revenue`` (after fees), ``provider_rewards`` (tokens), ``platform_take``
  (fees and margins kept), ``token_fees``, ``burned``, ``minted``;
* ``welfare_share``: the design's welfare (sum of (max price - ask) x GPUs, with quality
  bonuses where the design scores quality) in the epoch, over the exact optimum on the same
  orders (the ``gang`` MILP, or ``optimum=``); None when the optimum is not proven or is 0.
  "The same orders" are the market the design cleared in that epoch
  (`auction.simulation.simulate`'s ``on_clear``): the offers' GPUs not held by its earlier
  leases, and the new and waiting requests. The book differs between designs after the
  first epoch (each has its own leases and queue), so each design is measured against the
  optimum of its own book, never against the posted orders alone;
* ``jain``: Jain's index of the providers' revenue; ``hhi``: the Herfindahl-Hirschman index
  of provider revenue shares (1 = one provider has all of it); for a design whose providers
  are paid only by emission (Render), of their rewards.

``auction.compare(...)`` calls `compare` (this module is callable, so that the name works
both as the function and as the module holding `Comparison`, `main_compare` and
`build_parser`).

Designs are given by name (a preset, ``auction.presets.available()``; a registered
mechanism; ``name:payment``; ``vcg`` for ``assignment:vcg``), as `Preset` or as `Design`.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import types
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any, TextIO

import attrs
import numpy as np

from auction.clearing import clear
from auction.errors import AuctionError, InvalidValueError
from auction.fairness import jain_index
from auction.market import Market
from auction.orders import Order, Request
from auction.result import ClearingResult

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from auction.simulation import Design, OrderFlow, SimulationResult

__all__ = [
    "DEFAULT_DESIGNS", "Comparison", "build_parser", "compare", "main_compare",
    "resolve_design", "run_compare",
]

#: Short names that are not presets or mechanisms.
ALIASES: Mapping[str, tuple[str, str | None]] = {"vcg": ("assignment", "vcg")}
#: The designs `compare` and ``python -m auction compare`` run by default: three presets and
#: a VCG batch (exact assignment, VCG payments).
DEFAULT_DESIGNS: tuple[str, ...] = ("akash", "render", "nosana", "vcg")
#: Epochs an unserved request of the default flow waits (``ExampleFlow(patience=...)``).
DEFAULT_PATIENCE = 2


def resolve_design(spec: Any) -> Design:
    """A `Design` from a preset or mechanism name (``name`` or ``name:payment``), a
    `Preset`, or a `Design`."""
    from auction import presets
    from auction.mechanisms import registry
    from auction.simulation import Design

    if isinstance(spec, Design):
        return spec
    if isinstance(spec, presets.Preset):
        design: Design = spec.design
        return design
    if not isinstance(spec, str) or not spec:
        raise InvalidValueError("designs", spec, "each design must be a name, Preset or Design")
    if spec in presets.available():
        out: Design = presets.get(spec).design
        return out
    name, _, payment = spec.partition(":")
    if name in ALIASES and not payment:
        name, alias_pay = ALIASES[name]
        payment = alias_pay or ""
    if name not in registry.available():
        raise InvalidValueError(
            "designs", spec, f"is no preset ({', '.join(presets.available())}) nor mechanism "
            f"({', '.join(registry.available())})")
    return Design(mechanism=name, payment=payment or None)


class _Recording:
    """The flow, keeping what it posted in each epoch."""

    def __init__(self, flow: OrderFlow) -> None:
        self.flow = flow
        self.books: dict[int, list[Order]] = {}
        #: the flow's patience, which `simulate` reads
        self.patience: int = getattr(flow, "patience", 0)

    def __call__(self, epoch: int, rng: np.random.Generator) -> list[Order]:
        orders = list(self.flow(epoch, rng))
        self.books[epoch] = orders
        return orders


def _fingerprint(orders: Sequence[Order], market: Market) -> str:
    """A digest of what an optimum depends on: the orders (offers cut to their free GPUs)
    and the market's reputation and quality weight; equal books share one optimum."""
    h = hashlib.sha256()
    for text in sorted(repr(o) for o in orders):
        h.update(text.encode())
    h.update(np.ascontiguousarray(market.offer_reputation).tobytes())
    h.update(str(market.quality_weight).encode())
    return h.hexdigest()


def _optimum(market: Market, mechanism: str, time_limit: float) -> int | None:
    res = clear(market, mechanism, time_limit=time_limit)
    return int(res.welfare) if res.success else None


def _hhi(values: Sequence[int]) -> float | None:
    total = sum(values)
    if total <= 0:
        return None
    return float(sum((v / total) ** 2 for v in values))


def _rows(name: str, seed: int, sim: SimulationResult, rec: _Recording,
          welfare_of: Mapping[int, tuple[int, int | None]]) -> list[dict[str, Any]]:
    seen: dict[str, int] = {}
    rows = []
    income = np.asarray(sim.provider_income, dtype=object)
    rewards = np.asarray(sim.provider_rewards, dtype=object)
    for e, base in enumerate(sim.to_records()):
        orders = rec.books.get(e, [])
        reqs = [o for o in orders if isinstance(o, Request)]
        for r in reqs:
            seen.setdefault(r.id, e)
        served_ids = {lr.lease.request_id for lr in sim.lease_log
                      if lr.lease.start // sim.epoch_hours == e} if sim.lease_log else set()
        waits = [e - seen.get(rid, e) for rid in served_ids]
        hours = base["served_gpu_hours"]
        revenue_by_provider = [int(x) for x in income[e]] if income.size else []
        if not any(revenue_by_provider) and rewards.size:  # paid by emission (Render)
            revenue_by_provider = [int(x) for x in rewards[e]]
        welfare, optimal = welfare_of.get(e, (None, None))
        welfare_share = welfare / optimal if welfare is not None and optimal else None
        rows.append({
            "design": name, "seed": seed, "epoch": e, "status": base["status"],
            "requests": base["requests"], "waiting": base["waiting"], "served": base["served"],
            "fill_rate": base["fill_rate"],
            "time_to_fill": float(np.mean(waits)) if waits else None,
            "gpu_hours": hours, "utilization": base["utilization"],
            "tenant_cost_per_gpu_hour": base["revenue"] / hours if hours else None,
            "revenue": base["revenue"], "provider_revenue": base["provider_income"],
            "provider_rewards": base["provider_rewards"],
            "platform_take": base["protocol_revenue"], "token_fees": base["token_fees"],
            "burned": base["burned"], "minted": base["minted"],
            "audited": base["audited"], "audit_failures": base["audit_failures"],
            "slashed": base["slashed"],
            "welfare": welfare, "optimum": optimal, "welfare_share": welfare_share,
            "jain": jain_index(revenue_by_provider) if any(revenue_by_provider) else None,
            "hhi": _hhi(revenue_by_provider),
        })
    return rows


def _task(name: str, design: Design, flow: OrderFlow, epochs: int, epoch_hours: int,
          seed: int, optimum: str | None, time_limit: float,
          cache: dict[str, int | None] | None = None) -> list[dict[str, Any]]:
    """One (design, seed) run: its rows (a top-level function, so a process pool can run it).

    Welfare is measured on the market the design cleared in each epoch (its own book: the
    offers' free GPUs after its earlier leases, and its waiting requests), against the exact
    optimum (`optimum`, a mechanism name) of that same market. `cache` keeps optima by the
    market's content (`_fingerprint`), so designs that see the same book share one."""
    from auction.simulation import simulate

    rec = _Recording(flow)
    known = {} if cache is None else cache
    welfare: dict[int, tuple[int, int | None]] = {}

    def observe(e: int, orders: Sequence[Order], market: Market, result: ClearingResult) -> None:
        assert optimum is not None
        key = _fingerprint(orders, market)
        if key not in known:
            known[key] = _optimum(market, optimum, time_limit)
        welfare[e] = (int(result.welfare), known[key])

    sim = simulate(rec, design, epochs=epochs, epoch_hours=epoch_hours, seed=seed,
                   on_clear=None if optimum is None else observe)
    return _rows(name, seed, sim, rec, welfare)


@attrs.frozen
class Comparison:
    """The outcome of `compare`.

    Attributes:
        table: one row per (design, seed, epoch) (a pandas DataFrame).
        summary: one row per design: means of the rates and indices, per-seed mean totals of
            the amounts, and tenant cost per GPU-hour over all epochs.
    """

    table: pd.DataFrame
    summary: pd.DataFrame

    def plot(self, path: str | None = None) -> Figure:
        """Per-epoch panels (fill rate, tenant cost per GPU-hour, provider revenue, platform
        take, welfare share, HHI), one line per design (mean over seeds). Needs matplotlib;
        draws on a standalone `Figure`. Saves a PNG to `path` when given."""
        from matplotlib.figure import Figure

        panels = [("fill_rate", "fill rate"), ("tenant_cost_per_gpu_hour",
                  "tenant cost per GPU-hour"), ("provider_revenue", "provider revenue"),
                  ("platform_take", "platform take"), ("welfare_share", "welfare / optimum"),
                  ("hhi", "provider concentration (HHI)")]
        fig = Figure(figsize=(11, 7.5))
        axes = fig.subplots(3, 2, sharex=True).ravel()
        t = self.table
        for name in dict.fromkeys(t["design"].tolist()):
            sub = t[t["design"] == name]
            for ax, (col, title) in zip(axes, panels, strict=True):
                series = sub.groupby("epoch")[col].apply(
                    lambda s: np.nan if s.isna().all() else float(s.astype(float).mean()))
                ax.plot(series.index, series.to_numpy(dtype=float), label=name, marker=".")
                ax.set_title(title, fontsize=9)
        for ax in axes:
            ax.tick_params(labelsize=8)
        for ax in axes[-2:]:
            ax.set_xlabel("epoch", fontsize=8)
        axes[0].legend(fontsize=8)
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=100)
        return fig


def _summary(table: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    rows = []
    for name, sub in table.groupby("design", sort=False):
        seeds = max(1, sub["seed"].nunique())
        hours = float(sub["gpu_hours"].sum())

        def mean(col: str, s: pd.DataFrame = sub) -> float | None:
            v = s[col].dropna()
            return float(v.astype(float).mean()) if len(v) else None

        rows.append({
            "design": name, "fill_rate": mean("fill_rate"), "time_to_fill": mean("time_to_fill"),
            "utilization": mean("utilization"),
            "tenant_cost_per_gpu_hour": float(sub["revenue"].sum()) / hours if hours else None,
            "provider_revenue": int(sub["provider_revenue"].sum()) // seeds,
            "provider_rewards": int(sub["provider_rewards"].sum()) // seeds,
            "platform_take": int(sub["platform_take"].sum()) // seeds,
            "burned": int(sub["burned"].sum()) // seeds,
            "minted": int(sub["minted"].sum()) // seeds,
            "audit_failures": int(sub["audit_failures"].sum()) // seeds,
            "slashed": int(sub["slashed"].sum()) // seeds,
            "welfare_share": mean("welfare_share"), "jain": mean("jain"), "hhi": mean("hhi"),
        })
    return pd.DataFrame(rows)


def _progress_bar(stream: TextIO | None, done: int, total: int, label: str) -> None:
    if stream is None:
        return
    width = 24
    filled = width * done // max(total, 1)
    stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {label:<30}")
    if done == total:
        stream.write("\n")
    stream.flush()


def compare(
    designs: Mapping[str, Any] | Sequence[Any] = DEFAULT_DESIGNS,
    flow: OrderFlow | None = None,
    *,
    epochs: int = 10,
    seeds: int | Iterable[int] = (0,),
    epoch_hours: int = 24,
    optimum: str | None = "gang",
    optimum_time_limit: float = 30.0,
    executor: Executor | None = None,
    progress: bool | TextIO = False,
) -> Comparison:
    """Run each design on the same order flow for each seed; one tidy table and a summary.

    Args:
        designs: names, `Preset`s or `Design`s (named by their text, or by the mapping's
            keys); default `DEFAULT_DESIGNS` (Akash, Render, Nosana and a VCG batch).
        flow: the order flow (default: ``ExampleFlow(patience=2)``: the example's market,
            where an unserved request waits up to two more epochs).
        epochs: epochs per run.
        seeds: the seeds (an int n means ``range(n)``); each seed is one run per design and
            gives the same orders to every design.
        epoch_hours: hours per epoch.
        optimum: the exact mechanism the welfare share is measured against (``"gang"``), or
            None to skip the welfare columns (faster).
        optimum_time_limit: seconds for each optimum.
        executor: a `concurrent.futures.Executor` to run the (design, seed) runs on (designs
            and flow must pickle for a process pool); None runs them here, in order.
        progress: a progress bar on stderr (True) or on the given stream.

    Deterministic: the same designs, flow and seeds give the same table, whatever executor.
    """
    import pandas as pd

    from auction.simulation import ExampleFlow

    if isinstance(designs, Mapping):
        named = {str(k): resolve_design(v) for k, v in designs.items()}
    else:
        items = list(designs)
        named = {}
        for d in items:
            key = d if isinstance(d, str) else getattr(d, "name", None) or repr(d)
            named[str(key)] = resolve_design(d)
    if not named:
        raise InvalidValueError("designs", designs, "must name at least one design")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise InvalidValueError("epochs", epochs, "must be an int >= 1")
    seed_list: list[Any] = list(range(seeds)) if isinstance(seeds, int) and not isinstance(
        seeds, bool) else list(seeds)  # type: ignore[arg-type]
    if not seed_list or any(isinstance(s, bool) or not isinstance(s, int) or s < 0
                            for s in seed_list):
        raise InvalidValueError("seeds", seeds, "must be an int >= 1 or ints >= 0")
    source = ExampleFlow(patience=DEFAULT_PATIENCE) if flow is None else flow
    stream = sys.stderr if progress is True else (progress or None)
    jobs = [(name, d, s) for name, d in named.items() for s in seed_list]
    rows: list[dict[str, Any]] = []
    total = len(jobs)
    if executor is None:
        cache: dict[str, int | None] = {}
        for k, (name, d, s) in enumerate(jobs):
            _progress_bar(stream, k, total, f"{name} seed {s}")
            rows += _task(name, d, source, epochs, epoch_hours, s, optimum, optimum_time_limit,
                          cache)
    else:
        futures = [executor.submit(_task, name, d, source, epochs, epoch_hours, s, optimum,
                                   optimum_time_limit) for name, d, s in jobs]
        for k, fut in enumerate(futures):
            rows += fut.result()
            _progress_bar(stream, k, total, f"{jobs[k][0]} seed {jobs[k][2]}")
    _progress_bar(stream, total, total, "done")
    table = pd.DataFrame(rows)
    return Comparison(table=table, summary=_summary(table))


# -- the command line: ``python -m auction compare`` -------------------------------------------
def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """The ``compare`` command's arguments (on `parser`, e.g. a subcommand's, or a new one)."""
    p = parser or argparse.ArgumentParser(
        prog="auction compare", description="Compare market designs on the example flow.")
    p.add_argument("--designs", default=",".join(DEFAULT_DESIGNS),
                   help="comma-separated presets, mechanisms, name:payment or vcg")
    p.add_argument("--epochs", type=int, default=10, help="epochs per run")
    p.add_argument("--seeds", type=int, default=1, help="number of seeds (0..n-1)")
    p.add_argument("--epoch-hours", type=int, default=24, help="hours per epoch")
    p.add_argument("--demand", type=float, default=1.0, help="example flow demand multiple")
    p.add_argument("--patience", type=int, default=DEFAULT_PATIENCE,
                   help="epochs an unserved request waits (0: dropped at once)")
    p.add_argument("--no-optimum", action="store_true",
                   help="skip the exact optimum (no welfare share; faster)")
    p.add_argument("--rows", action="store_true", help="print every (design, seed, epoch) row")
    p.add_argument("--csv", help="write the table to this CSV file")
    p.add_argument("--plot", help="write the plot to this PNG file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def run_compare(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run the ``compare`` command from parsed arguments (`build_parser`'s); returns the exit
    status.

    Raises:
        AuctionError: bad input (`InvalidValueError` for a bad design name); the command
            line (``auction compare``, `main_compare`) reports it as one ``error:`` line on
            stderr, exit status 2, as every command does.
    """
    import pandas as pd

    from auction.simulation import ExampleFlow

    stream = sys.stdout if out is None else out
    names = [n.strip() for n in args.designs.split(",") if n.strip()]
    flow = ExampleFlow(demand=args.demand, patience=args.patience)
    result = compare(names, flow, epochs=args.epochs, seeds=args.seeds,
                     epoch_hours=args.epoch_hours,
                     optimum=None if args.no_optimum else "gang",
                     progress=False if args.quiet else sys.stderr)
    with pd.option_context("display.width", 200, "display.max_columns", 30,
                           "display.max_rows", 10_000, "display.float_format", "{:.4g}".format):
        if args.rows:
            print(result.table.to_string(index=False), file=stream)
        print(result.summary.to_string(index=False), file=stream)
    if args.csv:
        result.table.to_csv(args.csv, index=False)
    if args.plot:
        result.plot(args.plot)
    return 0


def main_compare(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    """Parse `argv` and run the ``compare`` command; returns the exit status (2 on bad input,
    reported on stderr as one line, ``auction compare: error: ...``, as `auction.cli.main`
    reports it)."""
    from auction.cli import EXIT_USAGE, _describe_auction_error, _one_line

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return run_compare(args, out)
    except AuctionError as e:
        print(_one_line(f"{parser.prog}: error: {_describe_auction_error(e)}"), file=sys.stderr)
        return EXIT_USAGE


class _CallableModule(types.ModuleType):
    """``auction.compare`` is this module; calling it calls `compare`."""

    def __call__(self, *args: Any, **kwargs: Any) -> Comparison:
        return compare(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
