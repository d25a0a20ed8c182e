"""The command line: demo, mechanisms, example-book, clear, and how it reports bad input."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

import auction
from auction import ClearingResult, Market, OrderBook
from auction.cli import main
from auction.demo import (
    ATTACKER,
    EXCHANGE_MECHANISMS,
    example_book,
    example_reputation,
    run_demo,
)
from auction.mechanisms import MechanismBase, MechanismTags


class NoDivisible(MechanismBase):
    """A mechanism that refuses divisible requests (the example market has some)."""

    name = "no-divisible"
    tags: ClassVar[MechanismTags] = MechanismTags(divisible=False)

    def _clear(self, market: Market, rng: np.random.Generator | None) -> ClearingResult:
        return ClearingResult.from_allocation(
            market, [], [], [], [], mechanism=self.name, payment=self.payment
        )


def _write(path: Path, data: Any) -> str:
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return str(path)


def _book(offers: list[dict[str, Any]], requests: list[dict[str, Any]]) -> dict[str, Any]:
    return {"schema": "auction.book/1", "offers": offers, "requests": requests}


OFFER = {"id": "o1", "provider": "p1", "gpu_model": "H100", "gpus": 8, "price": 2_000_000,
         "region": "us-east", "vram_gb": 80}
REQUEST = {"id": "r1", "tenant": "t1", "gpus": 2, "max_price": 2_500_000}


# -- demo -----------------------------------------------------------------------------------


def test_demo_prints_a_row_per_mechanism(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    lines = lines[: next(i for i, line in enumerate(lines) if "as an exchange" in line)]
    assert "example market (seed 0)" in lines[0]
    assert "H100" in out
    assert "RTX 4090" in out
    assert "eu-central" in out
    header = next(line for line in lines if line.startswith("mechanism"))
    for column in ("fill", "welfare/h", "avg price", "Jain", "GPUs", "unmatched"):
        assert column in header
    for name in auction.mechanisms.available():
        rows = [line for line in lines if line.split()[:1] == [name]]
        assert len(rows) == 1, name
        if "cannot clear this market" in rows[0]:  # e.g. call markets: a reason, alternatives
            assert "(use " in rows[0], name
            continue
        assert "%" in rows[0]
        assert "$" in rows[0]


def test_demo_clears_the_exchange_with_every_bulk_mechanism(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo"]) == 0
    lines = capsys.readouterr().out.splitlines()
    start = next(i for i, line in enumerate(lines) if "as an exchange" in line)
    table = lines[start:]
    header = next(line for line in table if line.startswith("mechanism"))
    assert "platform/h" in header
    rows = {}
    for label, _, _ in EXCHANGE_MECHANISMS:
        found = [line for line in table if line.startswith(label + "  ")]
        assert len(found) == 1, label
        rows[label] = found[0].split()[-6:]  # GPUs, welfare, pay, get, platform, price
    money = {k: [float(v.strip("$").replace(",", "")) for v in r[1:]] for k, r in rows.items()}
    assert money["lp"][0] == money["assignment shared"][0]  # both exact: equal welfare
    for label in ("uniform-price", "mcafee", "sbba"):
        assert money[label][0] <= money["lp"][0]
    assert money["lp lowest"][1] <= money["lp highest"][1]
    assert money["mcafee"][3] >= 0
    for label in ("lp", "lp lowest", "lp highest", "uniform-price", "sbba"):
        assert money[label][3] == 0, label


def test_demo_shows_reputation_and_whitewashing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    lines = capsys.readouterr().out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("whitewashing:"))
    assert ATTACKER in lines[start]
    rows = {line.split("  ")[0]: line.split() for line in lines[start:]
            if line.startswith(("price only", "reputation ("))}
    assert set(rows) == {"price only", "reputation (beta)", "reputation (iexec)",
                         "reputation (eigentrust)"}
    for label, cells in rows.items():
        kept, fresh = float(cells[-7]), float(cells[-6])
        assert fresh == 0.0 <= kept, label  # a fresh identity never outscores the old one
    # the reputation-weighted markets favour better providers than price-only clearing
    table = lines[:start]
    served = {line.split("  ")[0]: float(line.split()[-1]) for line in table
              if line.startswith(("price only", "reputation ("))}
    assert served["reputation (beta)"] > served["price only"]


def test_demo_is_deterministic_and_seeded(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--seed", "5"]) == 0
    first = capsys.readouterr().out
    assert main(["demo", "--seed", "5"]) == 0
    assert capsys.readouterr().out == first
    assert "seed 5" in first


def test_demo_reports_unsupported_mechanism_instead_of_crashing() -> None:
    out = io.StringIO()
    run_demo(out, mechanisms=["first-price", NoDivisible()])
    lines = out.getvalue().splitlines()
    row = next(line for line in lines if line.startswith("no-divisible"))
    assert "cannot clear this market" in row
    assert "divisible" in row
    assert any(line.startswith("first-price") and "%" in line for line in lines)


def test_demo_rejects_negative_seed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--seed", "-1"]) == 2
    assert "--seed" in capsys.readouterr().err


# -- mechanisms and example-book ----------------------------------------------------------------


def test_mechanisms_lists_names_and_tags(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mechanisms"]) == 0
    out = capsys.readouterr().out
    for name in auction.mechanisms.available():
        assert any(line.startswith(name + " ") for line in out.splitlines())
    assert "vickrey" in out
    assert "pay-as-bid" in out
    assert "individually_rational" in out


def test_example_book_matches_demo_module(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["example-book", "--seed", "2"]) == 0
    text = capsys.readouterr().out
    assert OrderBook.from_json(text).to_records() == example_book(2).to_records()
    rep = tmp_path / "rep.json"
    assert main(["example-book", "-o", str(tmp_path / "b.json"), "-r", str(rep)]) == 0
    assert json.loads(rep.read_text()) == example_reputation(0)
    assert capsys.readouterr().out == ""


# -- clear ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["first-price", "second-price"])
def test_clear_round_trip(mechanism: str, tmp_path: Path) -> None:
    book_path, rep_path, out_path = (tmp_path / n for n in ("book.json", "rep.json", "out.json"))
    assert main(["example-book", "--seed", "1", "-o", str(book_path), "-r", str(rep_path)]) == 0
    argv = ["clear", str(book_path), "--mechanism", mechanism, "--reputation", str(rep_path)]
    assert main([*argv, "--output", str(out_path)]) == 0

    got = json.loads(out_path.read_text())
    book = OrderBook.from_json(book_path.read_text())
    expected = auction.clear(book, mechanism, reputation=json.loads(rep_path.read_text()))
    assert got == json.loads(json.dumps(expected.to_dict()))
    assert got["allocations"] == expected.to_dict()["allocations"]
    assert [
        {k: v for k, v in a.items() if not k.endswith("_payment")} for a in got["allocations"]
    ] == expected.to_records()
    assert got["allocations"], "the example market trades"
    assert got["mechanism"] == mechanism
    assert got["status"] == "success"


def test_clear_writes_stdout_and_takes_payment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path / "b.json", _book([OFFER], [REQUEST]))
    assert main(["clear", path, "--mechanism", "second-price", "--payment", "vickrey"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["payment"] == "vickrey"
    # no other offer: the request's max price is the reserve
    assert got["allocations"] == [
        {"request_id": "r1", "offer_id": "o1", "tenant": "t1", "provider": "p1", "gpus": 2,
         "unit_price": 2_500_000, "tenant_price": 2_500_000,
         "provider_payment": 5_000_000, "tenant_payment": 5_000_000}
    ]


def test_clear_reads_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(_book([OFFER], [REQUEST]))))
    assert main(["clear", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["allocations"][0]["unit_price"] == 2_000_000


@pytest.mark.parametrize(
    ("content", "needles"),
    [
        ("{not json", ["not valid JSON"]),
        (json.dumps({"schema": "auction.book/0", "offers": []}), ["'schema'", "auction.book/1"]),
        (_book([OFFER], [{**REQUEST, "gpus": 0}]), ["'r1'", "'gpus'", "0"]),
        (_book([{**OFFER, "price": 2.5}], []), ["'o1'", "'price'", "2.5"]),
        (_book([{**OFFER, "price": -1}], []), ["'o1'", "'price'", "-1"]),
        (_book([OFFER], [{**REQUEST, "min_reputation": 1.5}]), ["'r1'", "'min_reputation'"]),
        (_book([OFFER], [{**REQUEST, "colour": "red"}]), ["'r1'", "'colour'"]),
        (_book([{k: v for k, v in OFFER.items() if k != "price"}], []), ["'o1'", "'price'"]),
        (_book([OFFER], [{**REQUEST, "id": "o1"}]), ["'o1'", "duplicate"]),
        (_book([{**OFFER, "id": ""}], []), ["'id'"]),
    ],
    ids=["bad-json", "schema", "zero-gpus", "float-price", "negative-price", "reputation",
         "unknown-field", "missing-field", "duplicate-id", "empty-id"],
)
def test_clear_reports_bad_books(
    content: Any, needles: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path / "bad.json", content)
    assert main(["clear", path, "--mechanism", "second-price"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "error" in captured.err
    assert path in captured.err
    for needle in needles:
        assert needle in captured.err


def test_clear_reports_bad_reputation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    book = _write(tmp_path / "b.json", _book([OFFER], [REQUEST]))
    rep = _write(tmp_path / "rep.json", {"p1": 2.0})
    assert main(["clear", book, "--reputation", rep]) == 2
    err = capsys.readouterr().err
    assert "'p1'" in err
    assert "2.0" in err
    assert main(["clear", book, "--reputation", _write(tmp_path / "r2.json", "[1]")]) == 2
    assert "JSON object" in capsys.readouterr().err


def test_clear_unknown_mechanism_lists_available(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path / "b.json", _book([OFFER], [REQUEST]))
    assert main(["clear", path, "--mechanism", "third-price"]) == 2
    err = capsys.readouterr().err
    assert "'third-price'" in err
    for name in auction.mechanisms.available():
        assert name in err


def test_clear_unknown_payment_rule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "b.json", _book([OFFER], [REQUEST]))
    assert main(["clear", path, "--mechanism", "first-price", "--payment", "vickrey"]) == 2
    assert "pay-as-bid" in capsys.readouterr().err


def test_clear_unsupported_market(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(auction.mechanisms, "get", lambda name, **options: NoDivisible())
    path = _write(tmp_path / "b.json", _book([OFFER], [{**REQUEST, "divisible": True}]))
    assert main(["clear", path, "--mechanism", "no-divisible"]) == 2
    err = capsys.readouterr().err
    assert "cannot clear this market" in err
    assert "divisible" in err


def test_clear_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "nope.json")
    assert main(["clear", missing]) == 2
    assert missing in capsys.readouterr().err


def test_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage" in capsys.readouterr().err
    assert main(["no-such-command"]) == 2
    assert main(["--help"]) == 0


def test_python_dash_m_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "auction", "mechanisms"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "first-price" in done.stdout


# -- simulate -------------------------------------------------------------------------------


def test_simulate_prints_the_runs_epochs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from auction.settlement import FeeSchedule, FixedEmission
    from auction.simulation import Design, ExampleFlow, simulate

    csv_path, png = tmp_path / "run.csv", tmp_path / "run.png"
    argv = ["simulate", "--epochs", "3", "--fee", "20%", "--demand", "0.5", "1",
            "--emission", "2.5", "--csv", str(csv_path), "--plot", str(png)]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("3 epochs of 24 h, first-price, lease settlement")
    assert lines[1].split() == ["epoch", "requests", "served", "util", "revenue", "protocol",
                                "income", "rewards", "burned", "minted", "supply"]
    design = Design(fees=FeeSchedule({"USDC": "20%"}), emission=FixedEmission(2_500_000))
    run = simulate(ExampleFlow(demand=(0.5, 1.0)), design, epochs=3)
    rows = run.to_records()
    for line, row in zip(lines[2:], rows, strict=True):
        cells = line.split()
        assert cells[:3] == [str(row["epoch"]), str(row["requests"]), str(row["served"])]
        assert cells[4] == f"{row['revenue'] // 10**6:,}"
        assert cells[5] == f"{row['protocol_revenue'] // 10**6:,}"
    assert csv_path.read_text().splitlines()[0].startswith("epoch,status,requests")
    assert len(csv_path.read_text().splitlines()) == 4
    assert png.stat().st_size > 1_000


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--fee", "120%"], "rate"),
        (["--mechanism", "nope"], "no mechanism named 'nope'"),
        (["--token-price", "-1"], "price"),
        (["--mechanism", "assignment", "--payment", "uniform", "--epochs", "1"], "uniform"),
    ],
)
def test_simulate_reports_bad_input(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["simulate", *argv]) == 2
    err = capsys.readouterr().err
    assert "error" in err
    assert message in err


def test_simulate_rejects_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--reliability", "2"], ["--demand", "-1"], ["--epoch-hours", "0"]):
        assert main(["simulate", *argv]) == 2
        assert "must be" in capsys.readouterr().err
