"""compare: one tidy table per (design, seed, epoch), a summary, a plot and the CLI command."""

from __future__ import annotations

import io
from collections.abc import Callable
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


@pytest.mark.parametrize("designs", ["nope", "first-price:no\nsuch"])
def test_cli_errors_are_one_error_line(designs: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A bad design is one ``PROG: error: ...`` line on stderr, exit 2, as from every other
    command, whether run as ``auction compare`` or through `main_compare`."""
    from auction.cli import main

    argv = ["--designs", designs, "--epochs", "1", "--quiet", "--no-optimum"]
    runs: tuple[tuple[Callable[[], int], str], ...] = (
        (lambda: main(["compare", *argv], prog="auction"), "auction"),
                      (lambda: main_compare(argv, out=io.StringIO()), "auction compare"))
    for run, prog in runs:
        assert run() == 2
        out, err = capsys.readouterr()
        assert out == ""
        assert len(err.splitlines()) == 1, err
        assert err.startswith(f"{prog}: error: "), err
        assert designs.split(":")[0] in err


class _QueueFlow:
    """One 2-GPU offer and three 1-GPU, 24-hour requests an epoch: more demand than GPUs,
    so requests queue; `patience` epochs of waiting."""

    def __init__(self, patience: int) -> None:
        self.patience = patience

    def __call__(self, epoch: int, rng: np.random.Generator) -> list[Order]:
        return [Offer(id="o", provider="p", gpu_model="H100", gpus=2, price=100, region="eu",
                      vram_gb=80),
                *(Request(id=f"e{epoch}-r{k}", tenant=f"t{k}", gpus=1, max_price=200 + k,
                          submitted_at=epoch * 10 + k, duration_hours=24)
                  for k in range(3))]


def test_time_to_fill_counts_epochs_waited_where_queues_form() -> None:
    """With patience the unserved request waits; served later, its wait is counted. Without
    patience nothing waits and time to fill is 0."""
    waited = compare(["first-price"], _QueueFlow(2), epochs=4, optimum=None).table
    # epoch 0: in arrival order r0 and r1 take the 2 GPUs, r2 waits; epoch 1 (the leases
    # ended): r2 (older) and e1-r0 are served, having waited 1 and 0 epochs
    assert waited["waiting"].tolist()[0] == 0
    assert (waited["waiting"].iloc[1:] > 0).all()
    assert waited["time_to_fill"].iloc[0] == 0
    assert (waited["time_to_fill"].iloc[1:] > 0).all()
    assert waited["time_to_fill"].iloc[1] == pytest.approx(0.5)
    plain = compare(["first-price"], _QueueFlow(0), epochs=4, optimum=None).table
    assert (plain["time_to_fill"] == 0).all()
    assert (plain["waiting"] == 0).all()


def test_example_flow_with_patience_has_time_to_fill() -> None:
    """The default flow (ExampleFlow(patience=2)) queues requests: time to fill > 0."""
    from auction.simulation import ExampleFlow

    out = compare(["first-price"], ExampleFlow(demand=0.5, patience=2), epochs=3,
                  optimum=None)
    assert out.table["time_to_fill"].iloc[1:].max() > 0
    assert out.summary["time_to_fill"].iloc[0] > 0


def test_welfare_share_is_against_the_optimum_of_the_designs_own_book() -> None:
    """Each row's optimum is the exact (gang) optimum of the market that design cleared in
    that epoch, rebuilt here from `simulate`'s on_clear; with long leases and a queue the
    books, and so the optima, differ between designs."""
    from auction.clearing import clear
    from auction.simulation import simulate

    flow = _QueueFlow(1)
    out = compare(["first-price", "nosana"], flow, epochs=3)
    t = out.table
    for name in ("first-price", "nosana"):
        seen: list[tuple[int, int]] = []

        def observe(e: int, orders: object, market: object, res: object,
                    seen: list[tuple[int, int]] = seen) -> None:
            seen.append((int(res.welfare),  # type: ignore[attr-defined]
                         int(clear(market, "gang").welfare)))  # type: ignore[arg-type]

        simulate(flow, resolve_design(name), epochs=3, seed=0, on_clear=observe)
        rows = t[t["design"] == name]
        assert list(zip(rows["welfare"], rows["optimum"], strict=True)) == seen
        assert (rows["welfare"] <= rows["optimum"]).all()
    assert t["welfare_share"].notna().all()


def test_default_designs_include_a_vcg_batch() -> None:
    from auction.compare import DEFAULT_DESIGNS, build_parser

    assert "vcg" in DEFAULT_DESIGNS
    assert build_parser().parse_args([]).designs.split(",") == list(DEFAULT_DESIGNS)
    out = compare(["vcg"], _SmallFlow(), epochs=2)
    assert (out.table["status"] == "success").all()
    assert out.table["welfare_share"].dropna().between(0, 1 + 1e-12).all()
