"""Importing the package is light, and its public names are all there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

import auction
import auction.errors as errors

ROOT = Path(auction.__file__).resolve().parent.parent
HEAVY = ("numba", "scipy", "hypothesis", "pandas", "matplotlib", "llvmlite")


def run_python(code: str) -> dict[str, list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_", "AUCTION_"))}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, list[str]] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_import_auction_is_light() -> None:
    result = run_python(
        f"""
        import json, sys
        import auction
        print(json.dumps({{"loaded": [m for m in {HEAVY!r} if m in sys.modules]}}))
        """
    )
    assert result["loaded"] == []


def test_books_markets_and_the_python_backend_stay_light() -> None:
    """Everything short of running a numba kernel works without importing numba or scipy."""
    result = run_python(
        f"""
        import json, sys
        import auction
        from auction import Market, Offer, OrderBook, Request
        book = OrderBook([
            Offer(id="o", provider="p", gpu_model="m", gpus=2, price=1, region="x", vram_gb=1),
            Request(id="r", tenant="t", gpus=1, max_price=3),
        ])
        book = OrderBook.from_json(book.to_json())
        market = Market(book, {{"p": 0.5}})
        market.pairs()
        names = auction.mechanisms.available()
        result = auction.clear(market, "first-price", backend="python")
        assert result.n_allocations == 1
        print(json.dumps({{
            "loaded": [m for m in {HEAVY!r} if m in sys.modules],
            "names": names,
        }}))
        """
    )
    assert result["loaded"] == []
    assert {"first-price", "second-price"} <= set(result["names"])


def test_datasets_and_warmup_names_stay_light() -> None:
    """The example books and the `warmup` name load neither numba nor scipy until called."""
    result = run_python(
        f"""
        import json, sys
        import auction
        book = auction.datasets.example_book(0)
        exchange = auction.datasets.example_exchange_book(0)
        assert callable(auction.warmup)
        assert auction.WarmupReport.__name__ == "WarmupReport"
        print(json.dumps({{"loaded": [m for m in {HEAVY!r} if m in sys.modules]}}))
        """
    )
    assert result["loaded"] == []


def test_public_names() -> None:
    for name in auction.__all__:
        assert getattr(auction, name) is not None, name
    from auction.clearing import clear

    assert auction.clear is clear
    assert auction.mechanisms.available is not None
    with pytest.raises(AttributeError, match="no_such_thing"):
        _ = auction.no_such_thing


def test_version_and_typing_marker() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert auction.__version__ == meta["project"]["version"]
    assert (ROOT / "auction" / "py.typed").is_file()


def test_every_error_is_exported_from_the_package() -> None:
    """A caller catches any library error as `auction.<Name>`, not only from auction.errors."""
    missing = [name for name in errors.__all__ if name not in auction.__all__]
    assert not missing, missing
    for name in errors.__all__:
        assert getattr(auction, name) is getattr(errors, name)


def test_error_hierarchy() -> None:
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.AuctionError), name
    assert issubclass(errors.InvalidOrderError, ValueError)
    assert issubclass(errors.UnknownPaymentRuleError, ValueError)
    assert issubclass(errors.UnsupportedMarketError, ValueError)
    assert issubclass(errors.DuplicateOrderError, KeyError)
    assert issubclass(errors.UnknownOrderError, KeyError)
    assert issubclass(errors.MechanismNotFoundError, LookupError)
    err = errors.InvalidOrderError("price", -1, "must be >= 0", order_id="o1")
    assert (err.field, err.value, err.reason, err.order_id) == ("price", -1, "must be >= 0", "o1")
    assert str(err) == "invalid price=-1 in order 'o1': must be >= 0"
    assert str(errors.DuplicateOrderError("x")) == "order id 'x' is already in the book"
    assert str(errors.UnknownOrderError("x")) == "no order with id 'x' in the book"
    err2 = errors.UnsupportedMarketError("m", "why", ["a", "b"])
    assert err2.alternatives == ("a", "b")
    assert str(err2) == "mechanism 'm' cannot clear this market: why; use one of: a, b"
    assert "none" in str(errors.MechanismNotFoundError("x", []))


def test_validation_errors_share_one_base() -> None:
    """Orders, reputation and settlement report bad values the same way."""
    from auction.errors import InvalidOrderError, InvalidValueError
    from auction.reputation.events import InvalidEventError, InvalidReputationError
    from auction.settlement import InvalidSettlementError, InvalidTransactionError
    from auction.simulation import InvalidSimulationError

    cases = [
        (InvalidOrderError("gpus", 0, "must be >= 1", order_id="o1"),
         "invalid gpus=0 in order 'o1': must be >= 1"),
        (InvalidReputationError("half_life", -1, "must be > 0"),
         "invalid half_life=-1: must be > 0"),
        (InvalidEventError("weight", 0.0, "must be > 0", event_id="e"),
         "invalid weight=0.0 in event 'e': must be > 0"),
        (InvalidSettlementError("rate", "x", "must be a rate"), "invalid rate='x': must be a rate"),
        (InvalidTransactionError("postings", 1, "too few", tx_id="t"),
         "invalid postings=1 in transaction 't': too few"),
        (InvalidSimulationError("epochs", -1, "must be >= 0"), "invalid epochs=-1: must be >= 0"),
    ]
    for err, message in cases:
        assert isinstance(err, InvalidValueError)
        assert isinstance(err, ValueError)
        assert str(err) == message
        assert (err.field, err.reason) == (message.split("=")[0][8:], message.split(": ")[-1])
