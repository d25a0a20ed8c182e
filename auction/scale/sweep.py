"""Sweeps: many simulations of designs x parameters x seeds, seeded from one tree, as one table.

`sweep` runs `auction.simulation.simulate` for every design, every point of a parameter grid
and every replicate, on any executor (`auction.scale.executors`), and returns one tidy,
long-form `pandas.DataFrame`: one row per (run, epoch), keyed by ``sweep_id``, ``run``,
``design``, one column per parameter, ``replicate``, ``seed`` and ``epoch``, with the epoch's
figures (`SimulationResult.to_records`) as the other columns. Parquet output goes through
pyarrow.

Seeds come from one `numpy.random.SeedSequence`: replicate k of every design and parameter
point uses the root's k-th spawned child (common random numbers: designs are compared on the
same draws, and no two replicates share a stream); with ``common_seeds=False`` every run gets
its own child. The child's spawn key and the integer seed given to `simulate` are in the
output, so any run can be repeated alone.

A run that raises keeps its traceback in the ``error`` column (one row, ``outcome`` is
``"error"``, ``epoch`` missing); the other runs' results stay.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import itertools
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from auction.errors import (
    AuctionError,
    InvalidValueError,
    MechanismNotFoundError,
    MissingDependencyError,
)
from auction.mechanisms.registry import available
from auction.scale.executors import batch_by_work, runner
from auction.simulation import Design, ExampleFlow, OrderFlow, simulate

__all__ = ["SIMULATE_PARAMS", "add_parser", "grid", "main_sweep", "sweep"]

#: Parameters that go to `simulate` rather than to the `Design`.
SIMULATE_PARAMS = ("epoch_hours", "reliability")

_KEYS = ("sweep_id", "run", "design")


def grid(params: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]] | None) -> list[
    dict[str, Any]
]:
    """The points of a parameter grid: the product of a mapping of name -> values (in the
    mapping's order), or an explicit sequence of points; None: one empty point."""
    if params is None:
        return [{}]
    if isinstance(params, Mapping):
        names = list(params)
        for n in names:
            v = params[n]
            if isinstance(v, str) or not isinstance(v, Sequence) or not len(v):
                raise InvalidValueError(f"params[{n!r}]", v, "must be a non-empty sequence")
        return [dict(zip(names, values, strict=True))
                for values in itertools.product(*(params[n] for n in names))]
    points = [dict(p) for p in params]
    if not points:
        raise InvalidValueError("params", params, "must hold at least one point")
    return points


def _check_name(name: str, flow: Any) -> None:
    """`InvalidValueError` unless `name` is something a run can override."""
    design_fields = {f.name for f in attrs.fields(Design)}
    if name in design_fields or name in SIMULATE_PARAMS or name.startswith("options."):
        return
    if name.startswith("flow."):
        if attrs.has(type(flow)) and name[5:] in {f.name for f in attrs.fields(type(flow))}:
            return
        raise InvalidValueError("params", name, f"the flow ({type(flow).__name__}) has no "
                                "such field (flow overrides need an attrs flow)")
    raise InvalidValueError(
        "params", name, "must be a Design field, 'options.NAME' (a mechanism option), "
        f"'flow.FIELD', or one of {SIMULATE_PARAMS}")


@attrs.frozen
class _Run:
    run: int
    design_name: str
    design: Design
    point: dict[str, Any]
    replicate: int
    seed: int
    spawn_key: tuple[int, ...]


@attrs.frozen
class _Batch:
    flow: OrderFlow
    epochs: int
    epoch_hours: int
    reliability: Any
    runs: tuple[_Run, ...]


@attrs.frozen
class _Outcome:
    run: int
    records: list[dict[str, Any]]
    error: str | None


def _apply(run: _Run, flow: Any, epoch_hours: int, reliability: Any) -> tuple[
    Design, Any, dict[str, Any]
]:
    design, kwargs = run.design, {"epoch_hours": epoch_hours, "reliability": reliability}
    changes: dict[str, Any] = {}
    options = dict(design.options)
    flow_changes: dict[str, Any] = {}
    for name, value in run.point.items():
        if name in SIMULATE_PARAMS:
            kwargs[name] = value
        elif name.startswith("options."):
            options[name[8:]] = value
        elif name.startswith("flow."):
            flow_changes[name[5:]] = value
        else:
            changes[name] = value
    if options != dict(design.options):
        changes["options"] = options
    if changes:
        design = _evolve(design, changes)
    if flow_changes:
        flow = attrs.evolve(flow, **flow_changes)
    return design, flow, kwargs


def _evolve(design: Design, changes: dict[str, Any]) -> Design:
    """`design` with `changes`, rebuilt from its fields (its ``gpu_power`` converter takes a
    mapping, not the tuple it stores, so ``attrs.evolve`` cannot copy it)."""
    fields = {f.name: getattr(design, f.name) for f in attrs.fields(Design)}
    fields["gpu_power"] = dict(fields["gpu_power"])
    fields.update(changes)
    return Design(**fields)


def run_batch(batch: _Batch) -> list[_Outcome]:
    """Run a task's simulations (on a worker); a run that raises keeps its traceback."""
    out = []
    for run in batch.runs:
        try:
            design, flow, kwargs = _apply(run, batch.flow, batch.epoch_hours, batch.reliability)
            result = simulate(flow, design, epochs=batch.epochs, seed=run.seed, **kwargs)
            out.append(_Outcome(run.run, result.to_records(), None))
        except Exception:
            out.append(_Outcome(run.run, [], traceback.format_exc()))
    return out


def _designs(designs: Mapping[str, Design] | Sequence[Design] | Design) -> list[
    tuple[str, Design]
]:
    if isinstance(designs, Design):
        designs = [designs]
    if isinstance(designs, Mapping):
        items = [(str(k), v) for k, v in designs.items()]
    else:
        items = []
        for d in designs:
            label = d.mechanism if isinstance(d.mechanism, str) else d.mechanism.name
            items.append((str(label) + (f" ({d.payment})" if d.payment else ""), d))
        names = [n for n, _ in items]
        if len(set(names)) != len(names):  # number repeated labels
            items = [(f"{n} #{i}", d) for i, (n, d) in enumerate(items)]
    if not items:
        raise InvalidValueError("designs", designs, "must hold at least one Design")
    for name, d in items:
        if not isinstance(d, Design):
            raise InvalidValueError(f"designs[{name!r}]", d, "must be a Design")
    return items


def _progress(total: int, progress: bool | None) -> Any:
    """A tqdm bar when asked for (None: when tqdm is installed and stderr is a terminal);
    quiet otherwise, or when tqdm is missing."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return None
    return tqdm(total=total, unit="run", desc="sweep", file=sys.stderr)


def _cell(v: Any) -> Any:
    """A parameter value as a table cell: scalars as they are, anything else as its repr."""
    if v is None or isinstance(v, str | bool | int | float):
        return v
    return repr(v)


def sweep(
    designs: Mapping[str, Design] | Sequence[Design] | Design,
    params: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]] | None = None,
    seeds: int = 1,
    epochs: int = 7,
    *,
    flow: OrderFlow | None = None,
    seed: int | np.random.SeedSequence = 0,
    common_seeds: bool = True,
    epoch_hours: int = 24,
    reliability: float | Mapping[str, float] = 1.0,
    executor: Any = None,
    progress: bool | None = None,
    sweep_id: str | None = None,
    path: str | os.PathLike[str] | None = None,
    task_size: int | None = None,
    max_in_flight: int | None = None,
) -> Any:
    """Simulate every design at every parameter point for `seeds` replicates.

    Args:
        designs: named designs (a mapping), or a sequence (named by mechanism and payment).
        params: overrides: a mapping of name -> values (their product is the grid) or a
            sequence of points. Names: a `Design` field (``"quality_weight"``), a mechanism
            option (``"options.k"``), a field of an attrs flow (``"flow.demand"``), or
            ``"epoch_hours"`` / ``"reliability"`` (arguments of `simulate`).
        seeds: replicates per design and point.
        epochs: epochs per run.
        flow: the order flow (default `ExampleFlow()`); it must pickle for a process pool,
            Ray or Dask (a module-level class, as `ExampleFlow` is).
        seed: the root of the seed tree: an int or a `numpy.random.SeedSequence`.
        common_seeds: replicate k uses the same seed in every design and point (True), or
            every run gets its own (False).
        epoch_hours, reliability: as for `simulate`, unless a parameter overrides them.
        executor: where runs go (`auction.scale.executors.runner`).
        progress: show a tqdm progress bar (None: when stderr is a terminal; quiet without
            tqdm).
        sweep_id: the sweep's key in the output (default: from the root seed's entropy).
        path: also write the table here as Parquet (needs pyarrow).
        task_size: runs per task (default: about four tasks per worker).
        max_in_flight: tasks submitted and not yet gathered (default twice the workers).

    Returns:
        A DataFrame, rows ordered by run then epoch. Its ``attrs["sweep"]`` holds the sweep
        id, the root entropy, and the counts of runs and failed runs.

    Raises:
        InvalidValueError: bad designs, parameter names or counts (checked before any run).
        MechanismNotFoundError: a design names no registered mechanism (checked before any
            run).
    """
    named = _designs(designs)
    points = grid(params)
    known = available()
    names = [d.mechanism for _, d in named] + [p["mechanism"] for p in points
                                                if "mechanism" in p]
    for name in names:
        if isinstance(name, str) and name not in known:
            raise MechanismNotFoundError(name, known)
    flow = ExampleFlow() if flow is None else flow
    for point in points:
        for name in point:
            _check_name(name, flow)
    for label, value, lo in (("seeds", seeds, 1), ("epochs", epochs, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < lo:
            raise InvalidValueError(label, value, f"must be an int >= {lo}")
    root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    entropy = root.entropy
    sid = sweep_id or "sweep-" + hashlib.sha256(
        f"{entropy}:{root.spawn_key}".encode()).hexdigest()[:12]
    n_runs = len(named) * len(points) * seeds
    children = root.spawn(seeds if common_seeds else n_runs)
    runs = []
    for i, ((dname, design), point, k) in enumerate(
        itertools.product(named, points, range(seeds))
    ):
        child = children[k if common_seeds else i]
        runs.append(_Run(i, dname, design, point, k,
                         int(child.generate_state(1, np.uint64)[0] >> np.uint64(1)),
                         tuple(child.spawn_key)))
    run_of = runner(executor)
    plan = batch_by_work([1] * n_runs, run_of.workers, task_size, min_task_work=1)

    def tasks() -> Iterator[_Batch]:
        for batch in plan:
            yield _Batch(flow, epochs, epoch_hours, reliability, tuple(runs[i] for i in batch))

    outcomes: dict[int, _Outcome] = {}
    bar = _progress(n_runs, progress)
    try:
        for _, got in run_of.map_unordered(run_batch, tasks(), max_in_flight=max_in_flight):
            for o in got:
                outcomes[o.run] = o
            if bar is not None:
                bar.update(len(got))
    finally:
        if bar is not None:
            bar.close()
    param_names = list(dict.fromkeys(n for p in points for n in p))
    rows: list[dict[str, Any]] = []
    for run in runs:
        o = outcomes[run.run]
        key = {"sweep_id": sid, "run": run.run, "design": run.design_name,
               **{n: _cell(run.point.get(n)) for n in param_names},
               "replicate": run.replicate, "seed": run.seed,
               "spawn_key": "/".join(map(str, run.spawn_key))}
        if o.error is not None:
            rows.append({**key, "epoch": None, "outcome": "error", "error": o.error})
        for rec in o.records:
            rows.append({**key, **rec, "outcome": "ok", "error": None})
    frame = _frame(rows)
    frame.attrs["sweep"] = {"sweep_id": sid, "entropy": str(entropy), "runs": n_runs,
                            "failed": sum(o.error is not None for o in outcomes.values())}
    if path is not None:
        to_parquet(frame, path)
    return frame


def _frame(rows: list[dict[str, Any]]) -> Any:
    """The rows as a DataFrame whose integer columns stay exact: nullable Int64 (a failed
    run's row has no figures), or text for Python ints past int64 (Parquet takes it)."""
    import pandas as pd

    names = list(dict.fromkeys(k for r in rows for k in r))
    columns: dict[str, Any] = {}
    for name in names:
        values = [r.get(name) for r in rows]
        present = [v for v in values if v is not None]
        if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
            if all(-(2**63) <= v < 2**63 for v in present):
                columns[name] = pd.array(values, dtype="Int64")
            else:
                columns[name] = pd.array([None if v is None else str(v) for v in values],
                                         dtype=object)
        else:
            columns[name] = values
    frame = pd.DataFrame(columns)
    frame["epoch"] = frame["epoch"].astype("Int64")
    return frame


def to_parquet(frame: Any, path: str | os.PathLike[str]) -> None:
    """Write a sweep's table as Parquet (needs pyarrow: ``pip install 'auction[sweep]'``)."""
    try:
        import pyarrow  # noqa: F401
    except ImportError as e:
        raise MissingDependencyError("Parquet output", "pyarrow",
                                     "pip install 'auction[sweep]'") from e
    frame.to_parquet(path, index=False)


# -- command line -----------------------------------------------------------------------------
def _value(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"none": None, "true": True, "false": False}.get(text.lower(), text)


def _param(text: str) -> tuple[str, list[Any]]:
    name, sep, values = text.partition("=")
    if not sep or not name or not values:
        raise argparse.ArgumentTypeError(f"expected NAME=V1,V2,..., got {text!r}")
    return name.strip(), [_value(v.strip()) for v in values.split(",")]


def _executor(kind: str, workers: int) -> tuple[Any, Callable[[], None]]:
    """An executor of `kind` and what closes it."""
    if kind == "none":
        return None, lambda: None
    if kind == "process":
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(workers)
        return pool, lambda: pool.shutdown(cancel_futures=True)
    if kind == "ray":
        import ray

        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        return ray, ray.shutdown
    distributed: Any = importlib.import_module("distributed")
    cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           dashboard_address=None)
    client = distributed.Client(cluster)

    def close() -> None:
        client.close()
        cluster.close()

    return client, close


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``sweep`` command to the CLI's subparsers (``sub.add_parser``)."""
    p: argparse.ArgumentParser = sub.add_parser(
        "sweep",
        help="simulate mechanisms x parameters x seeds on the example market",
        description="Run the example market for every mechanism, parameter point and seed; "
        "print mean figures per design and point, and write the per-epoch table.",
    )
    p.add_argument("--mechanism", "-m", nargs="+", default=["first-price"],
                   help="mechanisms to compare (default first-price)")
    p.add_argument("--param", type=_param, action="append", default=[], metavar="NAME=V1,V2",
                   help="a parameter and its values, e.g. flow.demand=0.5,1 or "
                   "quality_weight=0,100000 (repeat for a grid)")
    p.add_argument("--seeds", type=int, default=3, help="replicates (default 3)")
    p.add_argument("--epochs", type=int, default=5, help="epochs per run (default 5)")
    p.add_argument("--seed", type=int, default=0, help="root seed (default 0)")
    p.add_argument("--exchange", action="store_true",
                   help="post the orders as a call market (for lp and the double auctions)")
    p.add_argument("--executor", choices=("none", "process", "ray", "dask"), default="none",
                   help="where runs go (default none: this process)")
    p.add_argument("--workers", type=int, default=2, help="workers (default 2)")
    p.add_argument("--output", "-o", default=None, metavar="OUT.parquet",
                   help="write the per-epoch table (.parquet, else CSV)")
    p.set_defaults(func=_cmd_sweep)
    return p


def _cmd_sweep(args: argparse.Namespace) -> int:
    designs = {m: Design(mechanism=m) for m in args.mechanism}
    params = dict(args.param) or None
    executor, close = _executor(args.executor, args.workers)
    try:
        frame = sweep(designs, params, args.seeds, args.epochs, seed=args.seed,
                      flow=ExampleFlow(exchange=args.exchange), executor=executor,
                      progress=None)
    finally:
        close()
    ok = frame[frame["outcome"] == "ok"]
    keys = ["design", *(params or {})]
    if len(ok):
        table = ok.groupby(keys, sort=False)[["revenue", "utilization", "fill_rate"]].agg(
            lambda s: float(np.mean([float(v) for v in s])))
        print(table.to_string(formatters={"revenue": "{:,.0f}".format,
                                          "utilization": "{:.3f}".format,
                                          "fill_rate": "{:.3f}".format}))
    failed = frame[frame["outcome"] == "error"]
    for _, row in failed.iterrows():
        last = str(row["error"]).strip().splitlines()[-1]
        print(f"run {row['run']} ({row['design']}) failed: {last}", file=sys.stderr)
    if args.output:
        if str(args.output).endswith(".parquet"):
            to_parquet(frame, args.output)
        else:
            frame.to_csv(args.output, index=False)
    return 1 if len(failed) else 0


def main_sweep(argv: Sequence[str] | None = None) -> int:
    """``auction sweep`` on its own: parse `argv` and run (the CLI hooks `add_parser`)."""
    parser = argparse.ArgumentParser(prog="auction")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["sweep", *(sys.argv[1:] if argv is None else argv)])
    try:
        code: int = args.func(args)
    except AuctionError as e:
        print(f"auction sweep: error: {e}", file=sys.stderr)
        return 2
    return code
