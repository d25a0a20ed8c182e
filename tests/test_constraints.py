"""Constraint expressions: parsing, columnar evaluation, attributes and Golem filters."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from auction.constraints import AttributeTable, from_golem, parse, validate_attributes
from auction.errors import ConstraintSyntaxError, InvalidOrderError


def test_evaluate_all_rows_and_gathered_rows() -> None:
    e = parse("gpu_model in ('H100', 'A100') and vram_gb >= 40 and not has banned or 2.5 > price")
    t = AttributeTable.from_records(
        [
            {"gpu_model": "H100", "vram_gb": 80, "price": "2.40"},
            {"gpu_model": "A100", "vram_gb": 40, "banned": True, "price": 3},
            {"x": 1},
        ]
    )
    assert e.evaluate(t).tolist() == [True, False, False]
    assert e.evaluate(t, np.array([2, 0, 0, 1])).tolist() == [False, True, True, False]


def test_parse_error_names_order_and_position() -> None:
    with pytest.raises(ConstraintSyntaxError) as info:
        parse("a == ", order_id="r1")
    assert info.value.order_id == "r1"
    assert info.value.position == 5
    assert "r1" in str(info.value) and "position 5" in str(info.value)


def test_pickle_and_canonical_equality() -> None:
    e = parse("not (a == 1)  and b in ('y','x')")
    assert pickle.loads(pickle.dumps(e)) == e
    assert parse(str(e)) == e
    assert str(e) == "not a == 1 and b in ('x', 'y')"


def test_validate_attributes() -> None:
    assert validate_attributes({"b": "2.50", "a": 1}, order_id="o") == {"a": 1, "b": "2.50"}
    with pytest.raises(InvalidOrderError, match="attributes\\[a\\]"):
        validate_attributes({"a": 1.5}, order_id="o")


def test_from_golem_basic() -> None:
    assert from_golem("(&(a>=4)(b=vm))") == "(a >= 4 or a >= '4') and b == 'vm'"
