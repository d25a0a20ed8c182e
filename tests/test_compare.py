"""compare: one tidy table per (design, seed, epoch), a summary, a plot and the CLI command."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from auction import presets
from auction.compare import compare, main_compare, resolve_design
from auction.errors import InvalidValueError
from auction.orders import Offer, Order, Request
from auction.simulation import Design


class _SmallFlow:
    """Three providers and a few requests an epoch; unserved requests are re-posted."""

    def __call__(self, epoch: int, rng: np.random.Generator) -> list[Order]:
        offers: list[Order] = [
            Offer(id=f"o{i}", provider=f"p{i}", gpu_model="H100", gpus=2, price=100 + 10 * i,
                  region="eu", vram_gb=80, submitted_at=i) for i in range(3)]
        reqs: list[Order] = [
            Request(id=f"r{k}", tenant=f"t{k}", gpus=int(rng.integers(1, 3)),
                    max_price=int(rng.integers(90, 160)), submitted_at=10 + k,
                    duration_hours=1) for k in range(4)]
        return offers + reqs


def test_table_and_summary() -> None:
    out = compare(["nosana", "iexec", "first-price"], _SmallFlow(), epochs=3, seeds=2)
    t = out.table
    assert len(t) == 3 * 2 * 3
    assert set(t["design"]) == {"nosana", "iexec", "first-price"}
    assert list(out.summary["design"]) == ["nosana", "iexec", "first-price"]
    shares = t["welfare_share"].dropna()
    assert len(shares)
    assert (shares <= 1 + 1e-12).all()
    assert (shares >= 0).all()
    assert ((t["fill_rate"] >= 0) & (t["fill_rate"] <= 1)).all()
    hhi = t["hhi"].dropna()
    assert ((hhi > 0) & (hhi <= 1)).all()
    # tenant cost per GPU-hour is revenue over delivered GPU-hours
    row = t[t["gpu_hours"] > 0].iloc[0]
    assert row["tenant_cost_per_gpu_hour"] == pytest.approx(row["revenue"] / row["gpu_hours"])
    # every design saw the same books: one optimum per (seed, epoch)
    per = t.groupby(["seed", "epoch"])["optimum"].nunique()
    assert (per <= 1).all()


def test_deterministic_and_executor() -> None:
    a = compare(["nosana", "ionet"], _SmallFlow(), epochs=2, seeds=[3], optimum=None)
    b = compare(["nosana", "ionet"], _SmallFlow(), epochs=2, seeds=[3], optimum=None)
    assert a.table.equals(b.table)
    with ThreadPoolExecutor(2) as ex:
        c = compare(["nosana", "ionet"], _SmallFlow(), epochs=2, seeds=[3], optimum=None,
                    executor=ex)
    assert a.table.equals(c.table)
    assert a.table["welfare_share"].isna().all()


def test_designs_by_object_and_errors() -> None:
    d = resolve_design("assignment:vcg")
    assert d.mechanism == "assignment"
    assert d.payment == "vcg"
    assert resolve_design("vcg") == d
    akash = presets.get("akash")
    assert resolve_design(akash) is akash.design
    out = compare({"mine": Design(mechanism="first-price")}, _SmallFlow(), epochs=1,
                  optimum=None)
    assert list(out.summary["design"]) == ["mine"]
    with pytest.raises(InvalidValueError, match="designs"):
        compare(["nope"], _SmallFlow(), epochs=1)
    with pytest.raises(InvalidValueError, match="epochs"):
        compare(["nosana"], _SmallFlow(), epochs=0)
    with pytest.raises(InvalidValueError, match="seeds"):
        compare(["nosana"], _SmallFlow(), epochs=1, seeds=[-1])


def test_plot(tmp_path: object) -> None:
    pytest.importorskip("matplotlib")
    out = compare(["nosana", "first-price"], _SmallFlow(), epochs=2)
    path = f"{tmp_path}/c.png"
    fig = out.plot(path)
    assert len(fig.axes) == 6
    with open(path, "rb") as f:
        assert f.read(4) == b"\x89PNG"


def test_cli(tmp_path: object) -> None:
    buf = io.StringIO()
    csv = f"{tmp_path}/t.csv"
    assert main_compare(["--designs", "nosana,iexec", "--epochs", "1", "--no-optimum",
                         "--quiet", "--demand", "0.1", "--csv", csv], out=buf) == 0
    text = buf.getvalue()
    assert "nosana" in text
    assert "iexec" in text
    assert "fill_rate" in text
    with open(csv) as f:
        assert f.readline().startswith("design,seed,epoch")
    assert main_compare(["--designs", "nope", "--epochs", "1", "--quiet"], out=buf) == 2
