"""Where tasks run: in process, on any `concurrent.futures.Executor`, on Ray, or on Dask.

One small interface, `TaskRunner`, serves every fan-out in the library (partitioned clearing,
sweeps, and later comparisons): `TaskRunner.map_unordered` submits ``fn(item)`` for each item
with at most ``max_in_flight`` tasks outstanding (so the items, which may be built lazily, and
their results never all sit in memory at once) and yields ``(index, result)`` pairs as tasks
complete. Callers put results back in order themselves, so what they return never depends on
which worker finished first.

`runner` turns what a caller passes as ``executor=`` into a runner:

* None: in this process, one task after another (the reference every other runner matches);
* a `concurrent.futures.Executor` (a process or thread pool, or any other implementation);
* the ``ray`` module, or the string ``"ray"``, with Ray already initialised (``ray.init``):
  tasks run as ``ray.remote`` functions, gathered with ``ray.wait`` (the ``ray`` extra);
* a ``distributed.Client`` (Dask): ``Client.submit`` and ``distributed.as_completed`` (the
  ``dask`` extra);
* a `TaskRunner` (returned as is).

Functions and items must pickle for every runner but the in-process one (module-level
functions, plain data); exceptions raised by a task are raised again in the caller.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

from auction.errors import InvalidValueError, MissingDependencyError

__all__ = [
    "MAX_TASK_WORK",
    "MIN_TASK_WORK",
    "DaskRunner",
    "ExecutorRunner",
    "InProcessRunner",
    "RayRunner",
    "TaskRunner",
    "batch_by_work",
    "runner",
]

#: Least work (requests + offers + pairs, or runs x epochs) per task when sizing automatically:
#: below this, a task's scheduling and transfer cost more than its work.
MIN_TASK_WORK = 20_000
#: Most work per task when sizing automatically: bounds each task's payload (a few tens of MB)
#: and so the memory of the tasks in flight.
MAX_TASK_WORK = 2_000_000
#: Tasks per worker when sizing automatically: enough to even out unequal tasks.
TASKS_PER_WORKER = 4

T = TypeVar("T")
R = TypeVar("R")


@runtime_checkable
class TaskRunner(Protocol):
    """Runs tasks somewhere and yields their results as they complete."""

    @property
    def workers(self) -> int:
        """How many tasks can run at once (used to size and bound tasks)."""
        ...

    def map_unordered(
        self, fn: Callable[[T], R], items: Iterable[T], *, max_in_flight: int | None = None
    ) -> Iterator[tuple[int, R]]:
        """``(index, fn(item))`` for each item, in completion order, with at most
        `max_in_flight` tasks submitted and not yet yielded (default ``2 x workers``)."""
        ...


def _bound(max_in_flight: int | None, workers: int) -> int:
    if max_in_flight is None:
        return max(1, 2 * workers)
    if isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int) or max_in_flight < 1:
        raise InvalidValueError("max_in_flight", max_in_flight, "must be an int >= 1 or None")
    return max_in_flight


def _windowed(
    items: Iterable[T], bound: int, submit: Callable[[T], Any],
    drain: Callable[[dict[Any, int]], Iterator[tuple[int, R]]], cancel: Callable[[Any], Any],
) -> Iterator[tuple[int, R]]:
    """Submit each item, keeping at most `bound` handles pending; yield what `drain` frees.

    Handles left pending when the caller stops iterating (or a task raises) are cancelled.
    """
    pending: dict[Any, int] = {}
    try:
        for i, item in enumerate(items):
            pending[submit(item)] = i
            while len(pending) >= bound:
                yield from drain(pending)
        while pending:
            yield from drain(pending)
    finally:
        for handle in pending:
            cancel(handle)


class InProcessRunner:
    """Runs each task in this process, one after another."""

    @property
    def workers(self) -> int:
        return 1

    def map_unordered(
        self, fn: Callable[[T], R], items: Iterable[T], *, max_in_flight: int | None = None
    ) -> Iterator[tuple[int, R]]:
        _bound(max_in_flight, 1)
        for i, item in enumerate(items):
            yield i, fn(item)

    def __repr__(self) -> str:
        return "InProcessRunner()"


class ExecutorRunner:
    """Runs tasks on a `concurrent.futures.Executor`, gathered with `concurrent.futures.wait`.

    Args:
        executor: the pool; it stays open (whoever made it closes it).
        workers: its parallelism; default: the pool's ``_max_workers`` when it has one, else
            the CPU count.
    """

    def __init__(self, executor: cf.Executor, workers: int | None = None) -> None:
        self.executor = executor
        self._workers = workers or int(getattr(executor, "_max_workers", 0) or os.cpu_count() or 1)

    @property
    def workers(self) -> int:
        return self._workers

    def map_unordered(
        self, fn: Callable[[T], R], items: Iterable[T], *, max_in_flight: int | None = None
    ) -> Iterator[tuple[int, R]]:
        return _windowed(
            items, _bound(max_in_flight, self.workers),
            lambda item: self.executor.submit(fn, item), self._drain, lambda f: f.cancel(),
        )

    @staticmethod
    def _drain(pending: dict[cf.Future[R], int]) -> Iterator[tuple[int, R]]:
        done, _ = cf.wait(list(pending), return_when=cf.FIRST_COMPLETED)
        for f in done:
            i = pending.pop(f)
            yield i, f.result()

    def __repr__(self) -> str:
        return f"ExecutorRunner({self.executor!r}, workers={self.workers})"


class RayRunner:
    """Runs tasks as Ray remote functions on an initialised Ray (``ray.init`` first).

    Results come back with ``ray.wait`` as they complete; a task's exception is raised again
    by ``ray.get`` (Ray's error type derives from the original one).

    Args:
        workers: parallelism; default: the cluster's CPUs.
        num_cpus: CPUs each task reserves (default 1).
    """

    def __init__(self, workers: int | None = None, *, num_cpus: float = 1) -> None:
        ray = _import("ray", "ray")
        if not ray.is_initialized():
            raise InvalidValueError(
                "executor", "ray", "Ray is not initialised: call ray.init() (or connect to "
                "your cluster) before passing it"
            )
        self._ray = ray
        self.num_cpus = num_cpus
        cpus = ray.cluster_resources().get("CPU", 1)
        self._workers = workers or max(1, int(cpus // max(num_cpus, 1e-9)))
        self._remote: Any = None

    @property
    def workers(self) -> int:
        return self._workers

    def map_unordered(
        self, fn: Callable[[T], R], items: Iterable[T], *, max_in_flight: int | None = None
    ) -> Iterator[tuple[int, R]]:
        ray = self._ray
        if self._remote is None:  # one remote trampoline: any callable, builtins included
            self._remote = ray.remote(num_cpus=self.num_cpus)(_call)
        remote = self._remote
        return _windowed(
            items, _bound(max_in_flight, self.workers),
            lambda item: remote.remote(fn, item), self._drain, ray.cancel,
        )

    def _drain(self, pending: dict[Any, int]) -> Iterator[tuple[int, Any]]:
        done, _ = self._ray.wait(list(pending), num_returns=1)
        for ref in done:
            i = pending.pop(ref)
            yield i, self._ray.get(ref)

    def __repr__(self) -> str:
        return f"RayRunner(workers={self.workers})"


def _call(fn: Callable[[T], R], item: T) -> R:
    """``fn(item)``: the one function Ray runs remotely (`ray.remote` takes only Python
    functions; `fn` travels as an argument)."""
    return fn(item)


class DaskRunner:
    """Runs tasks on a Dask ``distributed.Client``, gathered with ``distributed.as_completed``.

    Args:
        client: the client (a ``LocalCluster``'s or a remote scheduler's); it stays open.
        workers: parallelism; default: the threads of the cluster's workers.
    """

    def __init__(self, client: Any, workers: int | None = None) -> None:
        self.client = client
        self._distributed = _import("distributed", "dask")
        if workers is None:
            info = client.scheduler_info()["workers"].values()
            workers = sum(int(w.get("nthreads", 1)) for w in info)
        self._workers = max(1, int(workers))

    @property
    def workers(self) -> int:
        return self._workers

    def map_unordered(
        self, fn: Callable[[T], R], items: Iterable[T], *, max_in_flight: int | None = None
    ) -> Iterator[tuple[int, R]]:
        bound = _bound(max_in_flight, self.workers)
        source = enumerate(items)
        pending: dict[str, tuple[int, Any]] = {}
        completed = self._distributed.as_completed()

        def submit(i: int, item: T) -> None:
            fut = self.client.submit(fn, item, pure=False)
            pending[fut.key] = (i, fut)
            completed.add(fut)

        try:
            for i, item in source:
                submit(i, item)
                if len(pending) >= bound:
                    break
            for fut in completed:
                i, _ = pending.pop(fut.key)
                result = fut.result()
                fut.release()
                nxt = next(source, None)
                if nxt is not None:
                    submit(*nxt)
                yield i, result
        finally:
            if pending:
                self.client.cancel([f for _, f in pending.values()], force=True)

    def __repr__(self) -> str:
        return f"DaskRunner({self.client!r}, workers={self.workers})"


def batch_by_work(
    work: Sequence[int], workers: int, task_size: int | None = None, *,
    min_task_work: int = MIN_TASK_WORK, max_task_work: int = MAX_TASK_WORK,
) -> list[list[int]]:
    """Group item indices into tasks of about `task_size` work, largest first.

    Items are taken by decreasing work (ties: lower index first); an item at least
    `task_size` is a task of its own, smaller ones fill a task until it reaches `task_size`.
    Largest first lets the big tasks start early, so workers finish together. None: the
    total split into `TASKS_PER_WORKER` tasks per worker, at least `min_task_work` each
    (one task per tiny part would spend more on scheduling than on clearing) and at most
    `max_task_work` (bounded payloads).
    """
    if task_size is None:
        total = sum(int(w) for w in work)
        task_size = max(min_task_work, min(max_task_work, -(-total // max(
            1, workers * TASKS_PER_WORKER))))
    elif isinstance(task_size, bool) or not isinstance(task_size, int) or task_size < 1:
        raise InvalidValueError("task_size", task_size, "must be an int >= 1 or None")
    order = sorted(range(len(work)), key=lambda i: (-int(work[i]), i))
    tasks: list[list[int]] = []
    current: list[int] = []
    size = 0
    for i in order:
        current.append(i)
        size += int(work[i])
        if size >= task_size:
            tasks.append(current)
            current, size = [], 0
    if current:
        tasks.append(current)
    return tasks


def _import(module: str, extra: str) -> Any:
    """`module`, or `MissingDependencyError` naming it and the extra that installs it."""
    try:
        return __import__(module)
    except ImportError as e:
        raise MissingDependencyError(f"the {extra} executor", module,
                                     f"pip install 'auction[{extra}]'") from e


def runner(executor: Any = None) -> TaskRunner:
    """The `TaskRunner` for an ``executor=`` argument (see the module docstring).

    Raises:
        InvalidValueError: `executor` is none of the accepted kinds, or Ray is not initialised.
        MissingDependencyError: ``"ray"`` without Ray installed (an ImportError too).
    """
    if executor is None:
        return InProcessRunner()
    if isinstance(executor, TaskRunner):
        return executor
    if isinstance(executor, cf.Executor):
        return ExecutorRunner(executor)
    ray = sys.modules.get("ray")
    if executor == "ray" or (ray is not None and executor is ray):
        return RayRunner()
    distributed = sys.modules.get("distributed")
    if distributed is not None and isinstance(executor, distributed.Client):
        return DaskRunner(executor)
    raise InvalidValueError(
        "executor", executor,
        "must be None, a concurrent.futures.Executor, the ray module (initialised), a "
        "distributed.Client or a TaskRunner",
    )
