"""The command line: demo, mechanisms, example-book, clear, and how it reports bad input."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

import auction
from auction import ClearingResult, Market, OrderBook
from auction.cli import main
from auction.datasets import example_exchange_book
from auction.demo import (
    ATTACKER,
    DEMO_RUNS,
    example_book,
    example_reputation,
    run_demo,
)
from auction.mechanisms import MechanismBase, MechanismTags


class NoDivisible(MechanismBase):
    """A mechanism that refuses divisible requests (the example market has some)."""

    name = "no-divisible"
    tags: ClassVar[MechanismTags] = MechanismTags(divisible=False)

    # the documented deadline-less form, which MechanismBase.clear calls with (market, rng);
    # no library mechanism uses it, so these tests keep it covered
    def _clear(  # type: ignore[override]
        self, market: Market, rng: np.random.Generator | None
    ) -> ClearingResult:
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


MONEY = re.compile(r"-?\d+\.\d{2,6}")


def _demo_table(out: str) -> tuple[list[str], dict[str, list[str]]]:
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("mechanism"))
    end = next(i for i in range(start, len(lines)) if not lines[i].strip())
    table = lines[start:end]
    rows = {}
    for line in table[2:]:
        label = line.split("  ")[0].strip()
        rows[label] = line[len(label):].split()
    return table, rows


def test_demo_clears_a_market_with_every_mechanism(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "(seed 0)" in out.splitlines()[0]
    for needle in ("H100", "RTX 4090", "eu-central", "instruments", "USD"):
        assert needle in out
    table, rows = _demo_table(out)
    for column in ("book", "payment", "GPUs", "filled", "welfare/h", "tenants pay/h",
                   "providers get/h", "avg price", "Jain"):
        assert column in table[0]
    assert "cannot clear" not in "\n".join(table)  # every mechanism clears its market
    names = {name for _, name, _, _ in DEMO_RUNS}
    others = set(auction.mechanisms.available()) - names  # each on the first book it clears
    assert set(rows) == {label for label, _, _, _ in DEMO_RUNS} | others
    for label, _, _, book in DEMO_RUNS:
        cells = rows[label]
        assert cells[0] == book
        assert int(cells[2].replace(",", "")) > 0, label  # GPUs traded
        for money in cells[4:8]:  # welfare, tenants pay, providers get, average price
            assert MONEY.fullmatch(money), (label, money)


def test_demo_exchange_rows_agree_with_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    _, rows = _demo_table(capsys.readouterr().out)
    money = {k: [Fraction(v) for v in r[4:7]] for k, r in rows.items()}  # welfare, pay, get
    assert money["lp"][0] == money["assignment shared"][0]  # both exact: equal welfare
    for label in ("uniform-price", "mcafee", "sbba"):
        assert money[label][0] <= money["lp"][0]
    assert money["lp lowest"][1] <= money["lp highest"][1]
    assert money["mcafee"][1] - money["mcafee"][2] >= 0  # McAfee's trade reduction keeps a margin
    for label in ("lp", "lp lowest", "lp highest", "uniform-price", "sbba"):
        assert money[label][1] == money[label][2], label
    # the printed amounts are the results' exact amounts
    result = auction.clear(Market(example_exchange_book(0)), "mcafee", rng=0)
    assert money["mcafee"][1] == Fraction(result.total_payment, 10**6)


def test_demo_shows_one_refusal_on_purpose(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    lines = capsys.readouterr().out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("a refusal, on purpose"))
    assert "UnsupportedMarketError" in lines[start]
    assert lines[start + 1].startswith("  reason: ")
    assert "first-price" in lines[start + 2]  # the mechanisms it names instead


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
    assert any(line.startswith("first-price") and " example " in line for line in lines)


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
    assert json.loads(rep.read_text()) == {"format": "auction.scores", "version": 1,
                                           "scores": example_reputation(0)}
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
    scores = json.loads(rep_path.read_text())["scores"]
    expected = auction.clear(book, mechanism, reputation=scores)
    assert got == json.loads(json.dumps(
        {"format": "auction.result", "version": 1, **expected.to_dict()}))
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


def test_clear_reads_both_forms_of_a_scores_file_and_checks_the_header(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The scores file written with its header and the bare object of earlier versions give
    the same result; a wrong header is one typed error line naming the key."""
    book = _write(tmp_path / "b.json", _book([OFFER], [REQUEST]))
    results = []
    for doc in ({"p1": 0.5}, {"format": "auction.scores", "version": 1, "scores": {"p1": 0.5}}):
        assert main(["clear", book, "--reputation", _write(tmp_path / "r.json", doc)]) == 0
        results.append(capsys.readouterr().out)
    assert results[0] == results[1]
    bad: list[tuple[Any, str]] = [
        ({"format": "auction.scores", "version": 2, "scores": {}}, "version=2"),
        ({"format": "auction.book", "version": 1, "scores": {}}, "format='auction.book'"),
        ({"format": "auction.scores", "version": 1, "scores": {}, "x": 1}, "JSON object"),
        ({"format": "auction.scores", "version": 1}, "JSON object"),
    ]
    for doc, needle in bad:
        assert main(["clear", book, "--reputation", _write(tmp_path / "r.json", doc)]) == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1
        assert needle in err


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
    """No command: one usage line with a hint, exit 2 (not the whole help); every argument
    error is one ``error:`` line, exit 2; ``--help`` still prints the help."""
    assert main([], prog="auction") == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        "usage: auction COMMAND [ARGS], COMMAND one of: demo, clear, mechanisms, warmup, "
        "example-book, simulate, sweep, compare (see 'auction --help', or 'auction COMMAND "
        "--help')"]
    for argv in (["no-such-command"], ["clear"], ["clear", "b.json", "--mechanism"],
                 ["demo", "--seed", "-1"], ["sweep", "--bogus"], ["simulate", "--epochs", "x"],
                 ["compare", "--no-such-flag"],
                 # found by the cli fuzz target: a newline in an argument split the line
                 ["example-book", "s\x01", "", "\n--eed", "8"],
                 ["clear", "no\nsuch\tfile.json"]):
        assert main(argv, prog="auction") == 2, argv
        out, err = capsys.readouterr()
        assert len(err.splitlines()) == 1, (argv, err)
        assert err.startswith("auction"), err
        assert ": error: " in err, err
    assert main(["--help"]) == 0
    assert "positional arguments" in capsys.readouterr().out


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
        (["--mechanism", "nope"], "unknown mechanism 'nope'; available: "),
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


# -- mechanism options, help, wording -----------------------------------------------------------


def test_clear_takes_typed_mechanism_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path / "b.json", _book([OFFER], [{**REQUEST, "divisible": True}]))
    argv = ["clear", path, "-m", "assignment", "-o", "shape=shared", "-o", "theta=4"]
    assert main(argv) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["options"]["shape"] == "shared"
    assert got["options"]["theta"] == 4
    assert main(["clear", path, "-m", "gang", "-o", "time_limit=5", "-o", "mip_gap=0.5"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["options"]["time_limit"] == 5
    assert main(["clear", path, "-m", "lp", "-o", "time_limit=none", "-o", "backend=flow"]) == 0
    assert json.loads(capsys.readouterr().out)["options"]["backend"] == "flow"


@pytest.mark.parametrize(
    ("options", "needles"),
    [
        (["shpe=shared"], ["no option 'shpe'", "shape", "theta"]),
        (["shape=sharde"], ["option 'shape'", "sharde"]),
        (["theta=many"], ["option 'theta'", "int", "'many'"]),
        (["out.json"], ["'out.json'", "NAME=VALUE", "--output"]),
        (["theta=3", "theta=4"], ["'theta'", "twice"]),
    ],
)
def test_clear_reports_bad_options(
    options: list[str], needles: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path / "b.json", _book([OFFER], [REQUEST]))
    argv = ["clear", path, "-m", "assignment"]
    for option in options:
        argv += ["-o", option]
    assert main(argv) == 2
    err = capsys.readouterr().err
    for needle in needles:
        assert needle in err


def test_typed_option_values() -> None:
    from auction.cli import _typed

    assert _typed("5", "int") == 5
    assert _typed("5", "float | None") == 5.0
    assert _typed("none", "float | None") is None
    assert _typed("2.5e-1", "float") == 0.25
    assert _typed("True", "bool") is True
    assert _typed("5", "str") == "5"
    assert _typed("__import__('os')", "") == "__import__('os')"  # never evaluated
    assert _typed("7", "") == 7
    with pytest.raises(Exception, match="expected int"):
        _typed("1.5", "int")


def test_help_and_mechanisms_list_payments_and_options(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["clear", "--help"]) == 0
    help_text = capsys.readouterr().out
    assert main(["mechanisms"]) == 0
    listing = capsys.readouterr().out
    for text in (help_text, listing):
        assert "second-price    vickrey    " in text
        assert "deprecated payment names, still accepted: second-score (use vickrey)" in text
        assert "shape='exclusive'" in text
        assert "time_limit=" in text
        assert "-o NAME=VALUE" in text


def test_bad_book_wording(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    offer = {k: v for k, v in OFFER.items() if k != "price"}
    request = {"id": "r1", "gpus": 2}
    path = _write(tmp_path / "b.json", _book([offer], []))
    assert main(["clear", path]) == 2
    assert "missing required field 'price' in offer 'o1'" in capsys.readouterr().err
    path = _write(tmp_path / "r.json", _book([], [request]))
    assert main(["clear", path]) == 2
    assert ("missing required fields 'tenant' and 'max_price' in request 'r1'"
            in capsys.readouterr().err)
    path = _write(tmp_path / "l.json", [_book([OFFER], [])])
    assert main(["clear", path]) == 2
    err = capsys.readouterr().err
    assert "JSON object" in err
    assert "not an array" in err


def test_unknown_mechanism_reads_the_same_everywhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path / "b.json", _book([OFFER], [REQUEST]))
    assert main(["clear", path, "-m", "nope"]) == 2
    clear_err = capsys.readouterr().err
    assert main(["simulate", "-m", "nope", "--epochs", "1"]) == 2
    assert capsys.readouterr().err == clear_err


def test_example_book_exchange(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["example-book", "--exchange", "--seed", "3"]) == 0
    book = OrderBook.from_json(capsys.readouterr().out)
    assert book.to_records() == example_exchange_book(3).to_records()
    result = auction.clear(book, "uniform-price")
    assert result.n_allocations > 0


def test_warmup_command_compiles_every_kernel(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["warmup"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("kernel")
    for name in ("sealed_bid.sealed_bid", "assignment.auction_matching",
                 "flow.transport_bounded", "prices.shortest_paths", "models.beta_fold"):
        assert name in out
    assert "kernels ready" in out
    assert "skipped" not in out


def test_cli_and_demo_raise_no_deprecation_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The commands a new user runs first warn about nothing deprecated from our code."""
    import warnings

    path = _write(tmp_path / "b.json", _book([OFFER], [{**REQUEST, "divisible": True}]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for argv in (["demo"], ["mechanisms"], ["clear", path, "-m", "gang"],
                     ["clear", path, "-m", "assignment", "-o", "shape=shared"],
                     ["example-book", "--exchange"], ["clear", "--help"]):
            assert main(argv) == 0, argv
    capsys.readouterr()
    ours = [w for w in caught if issubclass(w.category, DeprecationWarning)
            and "auction" in w.filename.replace("\\", "/").split("/site-packages/")[-1]]
    assert ours == [], [f"{w.filename}:{w.lineno}: {w.message}" for w in ours]
