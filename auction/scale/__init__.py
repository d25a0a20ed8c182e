"""Scale-out: partitioned clearing, executors (process pools, Ray, Dask) and sweeps.

* `partition` / `clear_partitioned` (`auction.scale.partition`): cut a market into parts no
  eligibility crosses, clear them anywhere, merge into the single clear's result;
* `runner` (`auction.scale.executors`): the one task runner every fan-out uses, over
  ``None`` (this process), a `concurrent.futures.Executor`, Ray or a Dask client;
* `sweep` (`auction.scale.sweep`): simulations of designs x parameters x seeds from one seed
  tree, as one tidy table.

See docs/scale-out.md.
"""

from __future__ import annotations

from auction.scale.executors import TaskRunner, batch_by_work, runner
from auction.scale.partition import (
    DECOMPOSITION,
    Partition,
    Rule,
    clear_partitioned,
    partition,
    rule_for,
)

__all__ = [
    "DECOMPOSITION",
    "Partition",
    "Rule",
    "TaskRunner",
    "batch_by_work",
    "clear_partitioned",
    "partition",
    "rule_for",
    "runner",
    "sweep",
]


def __getattr__(name: str) -> object:
    if name == "sweep":  # imports the simulation (and settlement): only when asked
        from auction.scale.sweep import sweep

        return sweep
    raise AttributeError(f"module 'auction.scale' has no attribute {name!r}")
