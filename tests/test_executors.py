"""Task runners: every executor gives the in-process result; bounded in-flight tasks; errors
come back; a local Ray and a Dask LocalCluster run partitioned clearing and sweeps."""

from __future__ import annotations

import operator
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

import pytest

import auction
from auction import Market, Offer, OrderBook, Request
from auction.errors import InvalidValueError
from auction.scale.executors import (
    DaskRunner,
    ExecutorRunner,
    InProcessRunner,
    RayRunner,
    TaskRunner,
    batch_by_work,
    runner,
)
from auction.scale.partition import clear_partitioned
from auction.simulation import Design, ExampleFlow

ray = pytest.importorskip("ray")
distributed = pytest.importorskip("distributed")


def _market(n_regions: int = 12) -> Market:
    """Many small regional markets in one book (parts of different sizes)."""
    orders: list[Offer | Request] = []
    for g in range(n_regions):
        for i in range(2 + g % 3):
            orders.append(Offer(id=f"o{g}-{i}", provider=f"p{(g + i) % 5}", gpu_model="H100",
                                region=f"r{g}", gpus=1 + i, price=90 + 7 * i, vram_gb=80))
        for i in range(3 + g % 4):
            orders.append(Request(id=f"q{g}-{i}", tenant=f"t{i % 3}", gpus=1 + i % 2,
                                  max_price=140 - 3 * i, regions=frozenset({f"r{g}"}),
                                  divisible=i % 3 == 0, submitted_at=i))
    return Market(OrderBook(orders))


# -- fixtures: one of each executor per module ------------------------------------------------
@pytest.fixture(scope="module")
def process_pool() -> Iterator[ProcessPoolExecutor]:
    with ProcessPoolExecutor(2) as pool:
        yield pool


@pytest.fixture(scope="module")
def ray_runtime() -> Iterator[Any]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Any]:
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=":0")
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


EXECUTORS = ["none", "threads", "process_pool", "ray_runtime", "dask_client"]


@pytest.fixture(params=EXECUTORS)
def executor(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "none":
        yield None
    elif request.param == "threads":
        with ThreadPoolExecutor(2) as pool:
            yield pool
    else:
        yield request.getfixturevalue(request.param)


# -- runners ----------------------------------------------------------------------------------
def test_runner_kinds(process_pool: Any, ray_runtime: Any, dask_client: Any) -> None:
    assert isinstance(runner(None), InProcessRunner)
    assert isinstance(runner(process_pool), ExecutorRunner)
    assert runner(process_pool).workers == 2
    assert isinstance(runner(ray_runtime), RayRunner)
    assert isinstance(runner("ray"), RayRunner)
    assert runner(ray_runtime).workers == 2
    assert isinstance(runner(dask_client), DaskRunner)
    assert runner(dask_client).workers == 2
    own = InProcessRunner()
    assert runner(own) is own
    assert isinstance(own, TaskRunner)
    with pytest.raises(InvalidValueError) as info:
        runner(42)
    assert info.value.field == "executor"


def test_ray_must_be_initialised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    with pytest.raises(InvalidValueError, match=r"ray\.init"):
        runner(ray)


def test_map_unordered_gives_every_result_once(executor: Any) -> None:
    # library and stdlib functions only: Ray's workers cannot import this test module
    got = dict(runner(executor).map_unordered(operator.neg, range(20), max_in_flight=3))
    assert got == {i: -i for i in range(20)}


def test_in_flight_tasks_are_bounded() -> None:
    with ThreadPoolExecutor(4) as pool:
        run = runner(pool)
        taken = 0
        lock = threading.Lock()
        most = 0
        yielded = 0

        def items() -> Iterator[int]:
            nonlocal taken
            for i in range(30):
                with lock:
                    taken += 1
                yield i

        def slow(x: int) -> int:
            time.sleep(0.002)
            return x

        for _ in run.map_unordered(slow, items(), max_in_flight=3):
            yielded += 1
            most = max(most, taken - yielded)
        assert yielded == 30
        assert most <= 3


def test_task_errors_come_back(executor: Any) -> None:
    with pytest.raises(ValueError, match="invalid literal"):
        list(runner(executor).map_unordered(int, ["1", "2", "3x", "4"], max_in_flight=2))


def test_bad_bounds_are_typed_errors() -> None:
    with pytest.raises(InvalidValueError):
        list(InProcessRunner().map_unordered(operator.neg, range(3), max_in_flight=0))
    with pytest.raises(InvalidValueError):
        batch_by_work([1, 2], 2, task_size=0)


def test_batch_by_work() -> None:
    assert batch_by_work([5, 1, 9, 1, 1], 1, task_size=6) == [[2], [0, 1], [3, 4]]
    tasks = batch_by_work([1] * 1000, 2, min_task_work=10)
    assert len(tasks) == 8  # four per worker
    assert sorted(i for t in tasks for i in t) == list(range(1000))
    assert batch_by_work([3] * 10, 2) == [list(range(10))]  # tiny: one task
    assert batch_by_work([], 2) == []


# -- partitioned clearing on every executor ---------------------------------------------------
@pytest.mark.parametrize("mechanism", ["first-price", "second-price", "assignment"])
def test_partitioned_clearing_is_identical_everywhere(executor: Any, mechanism: str) -> None:
    market = _market()
    # the kernels as plain Python: no JIT in every worker
    options: dict[str, Any] = {"backend": "python"}
    here = clear_partitioned(market, mechanism, task_size=20, **options)
    there = clear_partitioned(market, mechanism, executor=executor, task_size=20,
                              max_in_flight=2, **options)
    assert there.to_dict() == here.to_dict()
    assert [d.keys() for d in there.diagnostics["parts"]] == [
        d.keys() for d in here.diagnostics["parts"]]
    assert there.diagnostics["partition"]["tasks"] > 1
    if mechanism != "assignment":  # optimizers may break ties otherwise (see the docs)
        assert here.to_dict() == auction.clear(market, mechanism, **options).to_dict()


def test_peak_memory_and_workers_are_reported(process_pool: Any) -> None:
    r = clear_partitioned(_market(), "first-price", executor=process_pool, task_size=10,
                          backend="python")
    info = r.diagnostics["partition"]
    assert info["workers"] == 2
    assert all(v > 0 for v in info["peak_rss"].values())


# -- sweeps on every executor -----------------------------------------------------------------
def test_sweep_is_identical_everywhere(executor: Any) -> None:
    python: dict[str, Any] = {"backend": "python"}  # no JIT in every worker
    designs = {"fp": Design(mechanism="first-price", options=python),
               "sp": Design(mechanism="second-price", options=python)}
    args: dict[str, Any] = {"flow": ExampleFlow(demand=0.2), "seed": 5, "progress": False}
    here = auction.sweep(designs, {"reliability": [1.0, 0.9]}, 2, 2, **args)
    there = auction.sweep(designs, {"reliability": [1.0, 0.9]}, 2, 2, executor=executor,
                          task_size=1, **args)
    assert there.equals(here)
    assert len(here) == 2 * 2 * 2 * 2
