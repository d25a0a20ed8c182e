"""One error family: every error the library raises on purpose is an `AuctionError`.

`test_no_builtin_raises` walks ``auction/**/*.py`` with `ast` and fails on any ``raise`` of a
builtin exception class outside a short, explained allowlist; the classes it would let
through are checked here too (all derive from `AuctionError`), and the sites fixed for it
are pinned one by one, with their field, so a caller's ``except AuctionError`` and its
``except ValueError`` (or TypeError, KeyError, ImportError) both keep working.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
import pickle
import pkgutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import auction
from auction import errors
from auction.errors import (
    AuctionError,
    InvalidTypeError,
    InvalidValueError,
    MissingDependencyError,
    PartitionError,
    UnknownOrderError,
)

ROOT = Path(auction.__file__).resolve().parent

#: Builtin exception classes, by name (ValueError, TypeError, KeyError, ImportError...);
#: not SystemExit or KeyboardInterrupt, which are exits, not errors (`python -m auction`
#: raises SystemExit with the CLI's exit code).
BUILTIN_ERRORS = frozenset(
    name for name, obj in vars(builtins).items()
    if isinstance(obj, type) and issubclass(obj, Exception)
)

# The allowlist. Nothing else of the builtins may be raised by the library:
# - NotImplementedError, anywhere: abstract guards ("a subclass must implement this").
# - AssertionError, anywhere: a broken invariant, the same as an `assert` statement (a bug in
#   the library, or in `auction.testing` a mechanism failing a conformance check, which
#   pytest reports as a failed assertion); never a verdict on the caller's input.
# - The data model's own errors, inside the dunder methods Python calls them from:
#   AttributeError from __getattr__ (`hasattr`, `getattr(x, n, default)` and module
#   `__getattr__` rely on it) and from __setattr__/__delattr__ of immutable objects (as
#   frozen attrs classes and dataclasses raise); TypeError from __setattr__/__setitem__/
#   __delitem__ of read-only mappings (as `types.MappingProxyType` raises).
# Re-raises are not raises of a class: a bare ``raise``, or ``raise exc`` of a caught
# exception. ``raise SomeError(...) from exc`` is a new raise and is checked by its class.
ALLOWED_ANYWHERE = frozenset({"NotImplementedError", "AssertionError"})
ALLOWED_IN = {
    "AttributeError": frozenset({"__getattr__", "__setattr__", "__delattr__"}),
    "TypeError": frozenset({"__setattr__", "__setitem__", "__delitem__"}),
}


def _raised_class(node: ast.Raise) -> str | None:
    """The builtin exception class `node` raises (``raise X`` or ``raise X(...)``), or None."""
    exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
    if isinstance(exc, ast.Attribute) and isinstance(exc.value, ast.Name) \
            and exc.value.id == "builtins":
        name = exc.attr
    elif isinstance(exc, ast.Name):
        name = exc.id
    else:
        return None
    return name if name in BUILTIN_ERRORS else None


def builtin_raises(source: str, filename: str = "<source>") -> list[str]:
    """``"file:line: raise Name in function"`` for every raise of a builtin exception class
    in `source` that the allowlist does not let through."""
    found: list[str] = []

    def visit(node: ast.AST, function: str) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            function = node.name
        if isinstance(node, ast.Raise) and node.exc is not None:
            name = _raised_class(node)
            if name is not None and name not in ALLOWED_ANYWHERE \
                    and function not in ALLOWED_IN.get(name, ()):
                found.append(f"{filename}:{node.lineno}: raise {name} in {function}")
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    visit(ast.parse(source, filename), "<module>")
    return found


def _sources() -> Iterator[Path]:
    yield from sorted(ROOT.rglob("*.py"))


def test_no_builtin_raises() -> None:
    """Every raise in the library is of an `AuctionError` (or an allowlisted builtin)."""
    paths = list(_sources())
    assert len(paths) > 50  # the walk sees the whole package
    found = [hit for p in paths
             for hit in builtin_raises(p.read_text(encoding="utf-8"),
                                       str(p.relative_to(ROOT.parent)))]
    assert not found, "raise an AuctionError subclass (auction/errors.py) instead:\n" + \
        "\n".join(found)


# The raises this test was written against (one of each kind it must catch), as they stood.
CAUGHT_BEFORE = '''
def from_dataframe():
    try:
        import pandas as pd
    except ImportError as e:
        raise ImportError("OrderBook.from_dataframe needs pandas: pip install pandas") from e

def market(book):
    raise TypeError(f"Market needs an OrderBook or BookSnapshot, not {type(book).__name__}")

def remove(self, key):
    raise KeyError(key)

def finish(parts, done):
    raise RuntimeError(f"{len(parts) - len(done)} parts came back missing")

def split(total):
    raise ValueError("total and weights must be non-negative")

def checked(x):
    raise builtins.OverflowError

class Frozen:
    def __setattr__(self, name, value):
        raise ValueError("read-only")   # the wrong builtin for this dunder
'''

ALLOWED_SHAPES = '''
def abstract(self):
    raise NotImplementedError

def __getattr__(name):
    raise AttributeError(name)

class Frozen:
    def __setattr__(self, name, value):
        raise AttributeError("immutable")
    def __setitem__(self, key, value):
        raise TypeError("read-only")

def unreachable():
    raise AssertionError("unreachable")

def reraise():
    try:
        pass
    except ValueError as e:
        raise
    except KeyError as e:
        raise e

def typed():
    raise InvalidValueError("x", 1, "bad") from None
'''


def test_the_walk_can_fail() -> None:
    """The checker flags each kind of site it was written for, and only those."""
    found = builtin_raises(CAUGHT_BEFORE)
    assert [hit.split(": ", 1)[1] for hit in found] == [
        "raise ImportError in from_dataframe",
        "raise TypeError in market",
        "raise KeyError in remove",
        "raise RuntimeError in finish",
        "raise ValueError in split",
        "raise OverflowError in checked",
        "raise ValueError in __setattr__",
    ]
    assert builtin_raises(ALLOWED_SHAPES) == []


# -- every error class is an AuctionError --------------------------------------------------------
def test_every_error_in_errors_py_is_an_auction_error() -> None:
    classes = [obj for obj in vars(errors).values()
               if isinstance(obj, type) and issubclass(obj, BaseException)]
    assert len(classes) >= 20
    for cls in classes:
        assert issubclass(cls, AuctionError), cls
    for name in errors.__all__:
        obj = getattr(errors, name)
        assert issubclass(obj, AuctionError), name


def _library_modules() -> Iterator[Any]:
    for info in pkgutil.walk_packages(auction.__path__, "auction."):
        if info.name.endswith("__main__"):
            continue
        try:
            yield importlib.import_module(info.name)
        except ImportError as e:  # an optional dependency missing here
            if (e.name or "").startswith("auction"):
                raise


def _public_error_classes() -> dict[str, list[type[BaseException]]]:
    by_name: dict[str, list[type[BaseException]]] = {}
    for module in _library_modules():
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and issubclass(obj, BaseException) \
                    and not issubclass(obj, Warning) \
                    and obj.__module__ == module.__name__ and not name.startswith("_"):
                by_name.setdefault(name, []).append(obj)
    return by_name


def test_every_public_error_class_of_the_library_is_an_auction_error() -> None:
    """Classes defined outside errors.py too (settlement, reputation, testing); private ones
    (``_Fail``) are control flow caught inside their module, and warnings are not raised.

    Two classes of one name are one error: the later derives from the one in errors.py, so
    ``except auction.UnknownLeaseError`` catches the settlement book's too."""
    by_name = _public_error_classes()
    assert {"SettlementError", "ConformanceError", "UnknownLedgerSchemaError"} <= set(by_name)
    for name, classes in by_name.items():
        for cls in classes:
            assert issubclass(cls, AuctionError), f"{cls.__module__}.{name}"
        if len(classes) > 1:
            base = getattr(errors, name)
            assert all(issubclass(cls, base) for cls in classes), name


def test_same_named_errors_are_one_type() -> None:
    from auction.reputation.events import InvalidEventError
    from auction.settlement.leases import UnknownLeaseError

    err = UnknownLeaseError("l1")
    assert isinstance(err, auction.UnknownLeaseError)
    assert isinstance(err, KeyError)
    assert str(err) == "no lease with id 'l1' in the book"
    event = InvalidEventError("weight", -1.0, "must be > 0", event_id="e1")
    assert isinstance(event, auction.InvalidEventError)
    assert (event.field, event.event_id) == ("weight", "e1")
    for e in (err, event):
        back = pickle.loads(pickle.dumps(e))
        assert type(back) is type(e)
        assert str(back) == str(e)


# -- the sites fixed for this, each still the builtin type it was ------------------------------
def _market_of_a_list() -> None:
    auction.Market([])  # type: ignore[arg-type]


def _unknown_rule() -> None:
    from auction.live.matching import sort_keys

    sort_keys("bogus")


def _unknown_pool_order() -> None:
    from auction.live.pools import _Group

    _Group(0).remove((1, 2.0, "o9"))


def _outcome_status() -> None:
    from auction.solvers.outcome import SolverOutcome

    SolverOutcome(None, "done")


def _huge_attribute() -> None:
    auction.Offer(id="o", provider="p", gpus=1, price=1, gpu_model="a", region="r",
                  vram_gb=1, attributes={"x": 10**5000})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("call", "error", "builtin", "field"),
    [
        (_market_of_a_list, InvalidTypeError, TypeError, "book"),
        (_unknown_rule, InvalidValueError, ValueError, "rule"),
        (_unknown_pool_order, UnknownOrderError, KeyError, None),
        (_outcome_status, InvalidValueError, ValueError, "status"),
        (_huge_attribute, InvalidValueError, ValueError, "attributes[x]"),
    ],
)
def test_fixed_sites_raise_typed_errors(call: Callable[[], None], error: type[AuctionError],
                                        builtin: type[Exception], field: str | None) -> None:
    with pytest.raises(error) as info:
        call()
    assert isinstance(info.value, builtin)
    if field is not None:
        assert getattr(info.value, "field", None) == field
    assert len(str(info.value)) < 1000  # a huge value is shown by its size, never in full
    _assert_pickles(info.value)


def _assert_pickles(err: BaseException) -> None:
    """`err` comes back from pickle (a process pool) as the same type, text and fields."""
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is type(err)
    assert str(again) == str(err)
    for key in ("field", "order_id", "package", "name", "supported", "newer", "mechanism"):
        assert getattr(again, key, None) == getattr(err, key, None), key


def test_unknown_pool_order_names_the_order() -> None:
    from auction.live.pools import _Group

    with pytest.raises(UnknownOrderError) as info:
        _Group(0).remove((1, 2.0, "o9"))
    assert info.value.order_id == "o9"


@pytest.fixture
def no_module(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Make ``import name`` fail as if the package were not installed."""

    def hide(name: str) -> None:
        monkeypatch.setitem(sys.modules, name, None)  # None in sys.modules: ImportError

    return hide


def test_missing_pandas(no_module: Callable[[str], None]) -> None:
    no_module("pandas")
    with pytest.raises(MissingDependencyError, match=r"auction\[columns\]") as info:
        auction.OrderBook.from_dataframe()
    assert isinstance(info.value, ImportError)
    assert (info.value.package, info.value.name) == ("pandas", "pandas")
    _assert_pickles(info.value)


def test_schema_errors_pickle() -> None:
    for err in (errors.UnknownBookSchemaError(3, ["auction.book/1"], document="book",
                                              field="version", newer=True),
                errors.UnknownLogSchemaError(2, ["auction.live.log/1"], document="m.log",
                                             field="v")):
        _assert_pickles(err)


def test_missing_pyarrow(no_module: Callable[[str], None], tmp_path: Path) -> None:
    from auction.scale.sweep import to_parquet

    no_module("pyarrow")
    with pytest.raises(MissingDependencyError, match=r"auction\[sweep\]") as info:
        to_parquet(None, tmp_path / "x.parquet")
    assert info.value.package == "pyarrow"


def test_missing_ray(no_module: Callable[[str], None]) -> None:
    from auction.scale.executors import RayRunner

    no_module("ray")
    with pytest.raises(MissingDependencyError, match=r"auction\[ray\]") as info:
        RayRunner()
    assert isinstance(info.value, ImportError)
    assert info.value.package == "ray"


def test_a_runner_that_loses_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    """A runner that returns fewer parts than it was given: `PartitionError`, not a result
    built on missing parts."""
    from auction.scale import clear_partitioned
    from auction.scale.executors import InProcessRunner

    class Lossy(InProcessRunner):
        def map_unordered(self, fn: Any, items: Any, *, max_in_flight: int | None = None
                          ) -> Iterator[Any]:
            for k, out in enumerate(super().map_unordered(fn, items,
                                                          max_in_flight=max_in_flight)):
                if k:  # keep the first task only
                    return
                yield out

    orders: list[auction.Offer | auction.Request] = []
    for g in range(3):  # three regions, three parts
        orders.append(auction.Offer(id=f"o{g}", provider=f"p{g}", gpu_model="H100",
                                    region=f"r{g}", gpus=2, price=100, vram_gb=80))
        orders.append(auction.Request(id=f"q{g}", tenant="t", gpus=1, max_price=150,
                                      regions=frozenset({f"r{g}"})))
    book = auction.OrderBook(orders)
    assert clear_partitioned(book, "first-price", task_size=1).n_allocations == 3
    with pytest.raises(PartitionError, match="came back missing"):
        clear_partitioned(book, "first-price", executor=Lossy(), task_size=1)


def test_errors_py_is_a_leaf() -> None:
    """errors.py imports nothing of the package (kernels raise its errors without a cycle),
    and `_formats.py` only errors.py."""
    for name, allowed in (("errors.py", set()), ("_formats.py", {"auction.errors"})):
        tree = ast.parse((ROOT / name).read_text(encoding="utf-8"))
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
            a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert {m for m in imported if m and m.startswith("auction")} == allowed, name
