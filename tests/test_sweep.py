"""Sweeps: one seed tree, seeds recorded, tidy output, failed runs kept, Parquet, progress."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import auction
from auction.errors import InvalidValueError
from auction.scale.sweep import grid, main_sweep, sweep
from auction.simulation import Design, ExampleFlow, simulate

FLOW = ExampleFlow(demand=0.15)
FP = Design(mechanism="first-price")
SP = Design(mechanism="second-price")


def _sweep(*args: Any, **kwargs: Any) -> pd.DataFrame:
    kwargs.setdefault("flow", FLOW)
    kwargs.setdefault("progress", False)
    table: pd.DataFrame = sweep(*args, **kwargs)
    return table


def test_grid_points() -> None:
    assert grid(None) == [{}]
    assert grid({"a": [1, 2], "b": ["x"]}) == [{"a": 1, "b": "x"}, {"a": 2, "b": "x"}]
    assert grid([{"a": 1}, {"b": 2}]) == [{"a": 1}, {"b": 2}]
    bad: Any
    for bad in ({"a": []}, {"a": "xy"}, []):
        with pytest.raises(InvalidValueError):
            grid(bad)


def test_tidy_output_keyed_by_sweep_design_params_seed_epoch() -> None:
    frame = _sweep({"fp": FP, "sp": SP}, {"flow.demand": [0.1, 0.2]}, seeds=2, epochs=3)
    assert auction.sweep is sweep
    keys = ["sweep_id", "run", "design", "flow.demand", "replicate", "seed", "spawn_key",
            "epoch"]
    assert list(frame.columns[: len(keys)]) == keys
    assert len(frame) == 2 * 2 * 2 * 3
    assert not frame.duplicated(["design", "flow.demand", "replicate", "epoch"]).any()
    assert frame["sweep_id"].nunique() == 1
    assert (frame["outcome"] == "ok").all()
    assert frame["revenue"].dtype == "Int64"  # money stays exact integers
    assert frame["run"].tolist() == sorted(frame["run"].tolist())
    # more demand, more requests: the parameter reached the flow
    req = frame.groupby("flow.demand")["requests"].mean()
    assert req[0.2] > req[0.1]
    assert frame.attrs["sweep"]["runs"] == 8
    assert frame.attrs["sweep"]["failed"] == 0


def test_seeds_come_from_one_tree_and_are_recorded() -> None:
    frame = _sweep({"fp": FP, "sp": SP}, None, seeds=3, epochs=1, seed=11)
    runs = frame.drop_duplicates("run")
    # common random numbers: replicate k has the same seed in every design, and a new one
    # for every replicate
    by = runs.groupby("replicate")["seed"].nunique()
    assert (by == 1).all()
    assert runs["seed"].nunique() == 3
    children = np.random.SeedSequence(11).spawn(3)
    want = [int(c.generate_state(1, np.uint64)[0] >> np.uint64(1)) for c in children]
    assert runs[runs["design"] == "fp"]["seed"].tolist() == want
    assert runs["spawn_key"].tolist()[:3] == ["0", "1", "2"]
    # independent runs: every run gets its own child
    apart = _sweep({"fp": FP, "sp": SP}, None, seeds=3, epochs=1, seed=11,
                   common_seeds=False).drop_duplicates("run")
    assert apart["seed"].nunique() == 6


def test_a_run_repeats_alone_from_its_recorded_seed() -> None:
    frame = _sweep({"sp": SP}, {"reliability": [0.8]}, seeds=2, epochs=3, seed=3)
    row = frame[frame["replicate"] == 1]
    again = simulate(FLOW, SP, epochs=3, seed=int(row["seed"].iloc[0]), reliability=0.8)
    assert row["revenue"].tolist() == [r["revenue"] for r in again.to_records()]
    assert row["failures"].tolist() == [r["failures"] for r in again.to_records()]


def test_same_root_same_table() -> None:
    a = _sweep([FP, SP], None, seeds=2, epochs=2, seed=4)
    b = _sweep([FP, SP], None, seeds=2, epochs=2, seed=np.random.SeedSequence(4))
    assert a.equals(b)
    assert set(a["design"]) == {"first-price", "second-price"}
    c = _sweep([FP, SP], None, seeds=2, epochs=2, seed=5)
    assert not c["seed"].equals(a["seed"])
    assert c["sweep_id"].iloc[0] != a["sweep_id"].iloc[0]


def test_a_failed_run_keeps_its_traceback_and_the_others_results() -> None:
    # lp refuses the non-exchange flow's multi-GPU requests: its runs fail
    frame = _sweep({"fp": FP, "lp": Design(mechanism="lp")}, None, seeds=2, epochs=2)
    bad = frame[frame["design"] == "lp"]
    good = frame[frame["design"] == "fp"]
    assert len(bad) == 2
    assert (bad["outcome"] == "error").all()
    assert bad["epoch"].isna().all()
    assert bad["error"].str.contains("UnsupportedMarketError").all()
    assert bad["error"].str.startswith("Traceback").all()
    assert len(good) == 4
    assert good["error"].isna().all()
    assert frame.attrs["sweep"]["failed"] == 2


def test_options_and_design_fields_as_parameters() -> None:
    frame = _sweep({"ua": Design(mechanism="uniform-price")}, {"options.k": [0, 1]},
                   seeds=1, epochs=1, flow=ExampleFlow(demand=0.15, exchange=True))
    rev = frame.set_index("options.k")["revenue"]
    assert rev[1] >= rev[0]  # k=1 prices at the top of the crossing interval
    frame = _sweep({"fp": FP}, {"epoch_hours": [12, 24]}, seeds=1, epochs=1)
    hours = frame.set_index("epoch_hours")["offered_gpu_hours"]
    assert hours[24] == 2 * hours[12]


def test_bad_arguments_fail_before_any_run() -> None:
    with pytest.raises(InvalidValueError, match="nonsense"):
        _sweep({"fp": FP}, {"nonsense": [1]})
    with pytest.raises(InvalidValueError, match=r"flow\.nothing"):
        _sweep({"fp": FP}, {"flow.nothing": [1]})
    with pytest.raises(InvalidValueError):
        _sweep({"fp": FP}, None, seeds=0)
    with pytest.raises(InvalidValueError):
        _sweep({}, None)
    with pytest.raises(InvalidValueError):
        _sweep({"x": "first-price"}, None)
    with pytest.raises(auction.MechanismNotFoundError):
        _sweep({"x": Design(mechanism="nope")}, None)
    with pytest.raises(auction.MechanismNotFoundError):
        _sweep({"fp": FP}, {"mechanism": ["first-price", "nope"]})


def test_parquet_round_trip(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    path = tmp_path / "sweep.parquet"
    frame = _sweep({"fp": FP, "lp": Design(mechanism="lp")}, {"reliability": [1.0, 0.5]},
                   seeds=1, epochs=2, path=path)
    back = pd.read_parquet(path)
    assert back["revenue"].tolist() == frame["revenue"].tolist()
    assert back["error"].tolist() == frame["error"].tolist()
    assert back["seed"].tolist() == frame["seed"].tolist()


def test_progress_bar(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tqdm")
    _sweep({"fp": FP}, None, seeds=2, epochs=1, progress=True)
    assert "2/2" in capsys.readouterr().err
    _sweep({"fp": FP}, None, seeds=2, epochs=1, progress=False)
    assert capsys.readouterr().err == ""


def test_quiet_without_tqdm(monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import fails
    frame = _sweep({"fp": FP}, None, seeds=1, epochs=1, progress=True)
    assert len(frame) == 1
    assert capsys.readouterr().err == ""


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                      monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "s.csv"
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal: no bar
    code = main_sweep(["-m", "first-price", "second-price", "--param", "flow.demand=0.1,0.2",
                       "--seeds", "2", "--epochs", "1", "-o", str(out)])
    assert code == 0
    table = capsys.readouterr().out
    assert "second-price" in table
    assert "revenue" in table
    assert len(pd.read_csv(out)) == 2 * 2 * 2
    assert main_sweep(["-m", "lp", "--seeds", "1", "--epochs", "1"]) == 1  # a failed run
