"""Hypothesis fuzzing of the public API with arbitrary values (issue 17).

Bad input must raise an `AuctionError` naming the field (or exit 2 with one line in the CLI),
never another exception, and never change a book half-way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auction import AuctionError, Offer, OrderBook, Request
from auction.cli import main
from auction.constraints import parse

FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                    st.text(max_size=12), st.binary(max_size=6))
values = st.recursive(scalars, lambda c: st.one_of(st.lists(c, max_size=3),
                                                   st.dictionaries(st.text(max_size=6), c,
                                                                   max_size=3)),
                      max_leaves=6)
OFFER: dict[str, Any] = {"id": "o1", "provider": "p1", "gpu_model": "H100", "gpus": 8,
                         "price": 2_000_000,
         "region": "us-east", "vram_gb": 80}
REQUEST: dict[str, Any] = {"id": "r1", "tenant": "t1", "gpus": 2, "max_price": 3_000_000}


def _fields(base: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    keys = [*base, "tags", "submitted_at", "regions", "gpu_models", "divisible",
            "min_vram_gb", "min_reputation", "duration_hours", "attributes", "constraints"]
    return st.dictionaries(st.sampled_from(keys), values, max_size=3).map(
        lambda d: {**base, **d})


def _typed(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except AuctionError as e:
        message = str(e)
    assert message, "an error says what is wrong"
    return message


@FUZZ
@given(_fields(OFFER))
def test_offer_constructor_takes_any_values(kwargs: dict[str, Any]) -> None:
    kwargs = {k: v for k, v in kwargs.items() if k in attrs.fields_dict(Offer)}
    _typed(Offer, **kwargs)


@FUZZ
@given(_fields(REQUEST))
def test_request_constructor_takes_any_values(kwargs: dict[str, Any]) -> None:
    kwargs = {k: v for k, v in kwargs.items() if k in attrs.fields_dict(Request)}
    _typed(Request, **kwargs)


@FUZZ
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200),
                 values.map(lambda v: json.dumps(v, default=repr)),
                 st.tuples(_fields(OFFER), _fields(REQUEST)).map(lambda t: json.dumps(
                     {"schema": "auction.book/1", "offers": [t[0]], "requests": [t[1]]},
                     default=repr))))
def test_book_from_json_takes_any_text(text: str | bytes) -> None:
    _typed(OrderBook.from_json, text)


@FUZZ
@given(st.dictionaries(st.sampled_from(list(OFFER)), st.lists(scalars, min_size=0, max_size=3),
                       max_size=len(OFFER)))
def test_from_columns_takes_any_columns(cols: dict[str, Any]) -> None:
    _typed(OrderBook.from_columns, offers={**{k: [v] for k, v in OFFER.items()}, **cols})


@FUZZ
@given(_fields(OFFER), _fields(OFFER))
def test_a_failed_add_changes_nothing(good: dict[str, Any], bad: dict[str, Any]) -> None:
    book = OrderBook([Offer(**OFFER)])
    before = book.to_json()
    bad = {k: v for k, v in bad.items() if k in attrs.fields_dict(Offer)}
    try:
        book.add(Offer(**{**bad, "id": "o2"}))
    except AuctionError:
        assert book.to_json() == before


@FUZZ
@given(st.one_of(st.text(max_size=80),
                 st.lists(st.sampled_from(["gpu", "==", "in", "(", ")", "and", "or", "not",
                                           "'H100'", "80", ">=", "[", "]", ",", "tags",
                                           "vram_gb", "1e999", "-", '"', "region"]),
                          max_size=14).map(" ".join)))
def test_constraint_parser_takes_any_text(text: str) -> None:
    _typed(parse, text)


@FUZZ
@given(st.lists(st.one_of(values.map(lambda v: json.dumps(v, default=repr)),
                          st.fixed_dictionaries({"v": st.sampled_from([1, 2]),
                                                 "type": st.sampled_from(["header", "in",
                                                                          "out", "x"])},
                                                optional={"config": values, "event": values,
                                                          "cause": values, "events": values}
                                                ).map(lambda d: json.dumps(d, default=repr)),
                          st.text(max_size=20)), max_size=4))
def test_event_log_reader_takes_any_file(tmp_path_factory: Any, lines: list[str]) -> None:
    from auction.live.log import read_log

    path = Path(tmp_path_factory.mktemp("log")) / "events.log"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _typed(read_log, path)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.sampled_from(["clear", "mechanisms", "example-book", "--seed",
                                           "-1", "x", "--mechanism", "first-price",
                                           "--payment", "vcg", "/nonexistent.json",
                                           "--output", "--format", "json"]),
                          st.text(max_size=8)), min_size=1, max_size=4))
def test_cli_exits_2_with_one_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    argv = [a for a in argv if a not in ("-o", "--output", "--reputation", "-r")]
    try:
        code = main(argv)
    except SystemExit as e:  # argparse --help / version
        code = int(e.code or 0)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if code == 2:  # one line: an error, or (no command) the usage and a hint
        assert len(err.splitlines()) == 1, err
        assert err.startswith("usage:") or "error:" in err, err
    assert code in (0, 1, 2)
