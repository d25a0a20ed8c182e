"""The mechanism registry: built-ins, entry-point plugins, typed errors."""

from __future__ import annotations

import importlib
import inspect
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest

import auction
import auction.mechanisms as mechanisms
from auction.book import OrderBook
from auction.errors import (
    AuctionError,
    MechanismNotFoundError,
    UnknownPaymentRuleError,
    UnsupportedMarketError,
)
from auction.market import Market
from auction.mechanisms import AuctionPluginWarning, Mechanism, MechanismTags
from auction.mechanisms.base import DEPRECATED_PAYMENTS, MechanismBase
from auction.mechanisms.sealed_bid import FirstPrice, SecondPrice
from auction.orders import Offer, Request
from auction.result import ClearingResult

BUILTINS = ["first-price", "second-price"]


def book(divisible: bool = False) -> OrderBook:
    return OrderBook(
        [
            Offer(id="o1", provider="p1", gpu_model="H", gpus=4, price=10, region="x", vram_gb=80),
            Offer(id="o2", provider="p2", gpu_model="H", gpus=4, price=12, region="x", vram_gb=80),
            Request(id="r1", tenant="t", gpus=2, max_price=20),
            Request(id="r2", tenant="t", gpus=3, max_price=20, divisible=divisible, submitted_at=1),
        ]
    )


def first_price_records() -> list[dict[str, object]]:
    return auction.clear(book(), "first-price", backend="python").to_records()


# -- built-ins ------------------------------------------------------------------------------
def test_available_lists_the_builtins() -> None:
    names = mechanisms.available()
    assert set(BUILTINS) <= set(names)
    assert names == sorted(names)


@pytest.mark.parametrize(
    ("name", "cls"), [("first-price", FirstPrice), ("second-price", SecondPrice)]
)
def test_get_builds_a_fresh_instance(name: str, cls: type) -> None:
    a, b = mechanisms.get(name), mechanisms.get(name)
    assert type(a) is cls
    assert a is not b
    assert isinstance(a, Mechanism)
    assert a.name == name
    assert isinstance(a.tags, MechanismTags)
    assert mechanisms.tags_of(name) == a.tags
    assert a.tags.divisible


def test_tags_of_builtins() -> None:
    assert mechanisms.tags_of("first-price").payments == ("pay-as-bid",)
    assert mechanisms.tags_of("second-price").payments == ("vickrey",)
    assert set(BUILTINS) <= set(mechanisms.supporting(divisible=True))
    assert "second-price" in mechanisms.supporting(truthful_single_order=True)
    assert "first-price" not in mechanisms.supporting(truthful_single_order=True)
    assert mechanisms.supporting(no_such_tag=True) == []


def test_unknown_mechanism() -> None:
    with pytest.raises(MechanismNotFoundError) as info:
        mechanisms.get("third-price")
    err = info.value
    assert isinstance(err, LookupError)
    assert isinstance(err, AuctionError)
    assert err.name == "third-price"
    assert set(BUILTINS) <= set(err.available)
    for name in BUILTINS:
        assert name in str(err)
    with pytest.raises(MechanismNotFoundError):
        auction.clear(book(), "third-price")


def test_unknown_payment_rule() -> None:
    with pytest.raises(UnknownPaymentRuleError) as info:
        mechanisms.get("first-price", payment="vickrey")
    err = info.value
    assert isinstance(err, ValueError)
    assert (err.mechanism, err.payment, err.offered) == ("first-price", "vickrey", ("pay-as-bid",))
    assert "pay-as-bid" in str(err)
    with pytest.raises(UnknownPaymentRuleError):
        auction.clear(book(), "second-price", payment="pay-as-bid")
    with pytest.raises(UnknownPaymentRuleError):
        FirstPrice(payment="second")
    assert mechanisms.get("second-price", payment="vickrey").payment == "vickrey"  # type: ignore[attr-defined]


def test_second_score_is_a_deprecated_alias_of_vickrey() -> None:
    """One rule, one name: "second-score" builds the "vickrey" mechanism, warns (pointing at
    the caller), and the mechanism, its options, repr and results all say "vickrey"."""
    assert DEPRECATED_PAYMENTS == {"second-score": "vickrey"}
    with pytest.warns(DeprecationWarning, match="'second-score' is a deprecated name") as rec:
        alias = mechanisms.get("second-price", payment="second-score")
    assert rec[0].filename == __file__  # attributed to this caller, not to the library
    canonical = mechanisms.get("second-price", payment="vickrey")
    assert alias == canonical
    assert alias.payment == "vickrey"  # type: ignore[attr-defined]
    assert alias.get_options()["payment"] == "vickrey"  # type: ignore[attr-defined]
    assert "payment='vickrey'" in repr(alias)
    with pytest.warns(DeprecationWarning, match="second-score"):
        result = auction.clear(book(), "second-price", payment="second-score")
    assert result.payment == "vickrey"
    assert result.options["payment"] == "vickrey"
    assert result.to_records() == auction.clear(book(), "second-price").to_records()
    # an alias is no rule of a mechanism that lacks the canonical one: the error names it
    with pytest.raises(UnknownPaymentRuleError) as info:
        mechanisms.get("first-price", payment="second-score")
    assert (info.value.payment, info.value.offered) == ("second-score", ("pay-as-bid",))
    # alternatives the library suggests use the canonical name
    mech = WholeOrdersOnly()
    err = mech.refuse("test", [("second-price", {"payment": "second-score"})])
    assert err.alternatives == ("second-price (payment='vickrey')",)
    assert err.alternatives[0].options == {"payment": "vickrey"}


def _init_fields(mech: object) -> list[attrs.Attribute[Any]]:
    cls = type(mech)
    assert attrs.has(cls), cls
    return [a for a in attrs.fields(cls) if a.init]


@pytest.mark.parametrize("name", mechanisms.available())
def test_options_repr_and_tags_derive_from_the_fields(name: str) -> None:
    """Every registered mechanism is a declaration: `get_options`, `repr`, equality and
    `clone` come from its attrs fields, and `tags` is computed (a property over
    `__auction_tags__`), for every payment rule it offers; no rule has two names."""
    mech = mechanisms.get(name)
    assert isinstance(mech, MechanismBase)
    assert attrs.has(type(mech))
    assert not set(mech.tags.payments) & set(DEPRECATED_PAYMENTS)
    assert inspect.getattr_static(mech, "tags") is MechanismBase.__dict__["tags"]
    for payment in mech.tags.payments:
        built = mechanisms.get(name, payment=payment)
        assert isinstance(built, MechanismBase)
        fields = _init_fields(built)
        options = built.get_options()
        assert list(options) == [a.name for a in fields]
        assert options["payment"] == payment
        shown = ", ".join(
            f"{a.name}={(a.repr if callable(a.repr) else repr)(getattr(built, a.name))}"
            for a in attrs.fields(type(built)) if a.repr
        )
        assert repr(built) == f"{type(built).__name__}({shown})"
        assert built.tags == built.__auction_tags__()
        assert built.tags.payments == mech.tags.payments
        again = mechanisms.get(name, **options)
        assert again == built
        assert built.clone() == built
        assert built.clone() is not built
        assert built.with_options(**{a.name: getattr(built, a.name) for a in fields}) == built


def test_clear_by_name_and_by_instance() -> None:
    by_name = auction.clear(book(), "first-price", backend="python")
    by_instance = auction.clear(book(), FirstPrice(backend="python"))
    assert isinstance(by_name, ClearingResult)
    assert by_name.mechanism == "first-price"
    assert by_name.to_records() == by_instance.to_records()
    with pytest.raises(ValueError, match="constructor"):
        auction.clear(book(), FirstPrice(), payment="pay-as-bid")


# -- capability checks ----------------------------------------------------------------------
class WholeOrdersOnly(FirstPrice):
    """A mechanism that cannot split requests."""

    name = "whole-orders-only"
    tags = MechanismTags(payments=("pay-as-bid",), divisible=False)

    def __init__(self, payment: str | None = None) -> None:
        super().__init__(payment, backend="python")


def test_a_mechanism_says_which_can_clear_instead() -> None:
    mech = WholeOrdersOnly()
    with pytest.raises(UnsupportedMarketError) as info:
        auction.clear(book(divisible=True), mech)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.mechanism == "whole-orders-only"
    assert set(BUILTINS) <= set(err.alternatives)
    assert "whole-orders-only" not in err.alternatives
    for name in BUILTINS:
        assert name in str(err)
    with pytest.raises(UnsupportedMarketError):
        mech.clear(Market(book(divisible=True)))
    # without a divisible request it clears
    result = auction.clear(book(divisible=False), mech)
    assert result.mechanism == "whole-orders-only"
    assert result.to_records() == first_price_records()


def test_check_market_wants_a_market() -> None:
    with pytest.raises(TypeError):
        FirstPrice().clear(book())  # type: ignore[arg-type]


def test_protocol_is_structural() -> None:
    class Minimal:
        name = "minimal"
        tags = MechanismTags()

        def clear(
            self, market: Market, *, rng: np.random.Generator | None = None
        ) -> ClearingResult:
            return FirstPrice(backend="python").clear(market, rng=rng)

    assert isinstance(Minimal(), Mechanism)
    assert not isinstance(object(), Mechanism)
    assert auction.clear(book(), Minimal()).n_allocations > 0


@pytest.mark.parametrize("payments", [(), [""], "", [1]])
def test_tags_need_payment_names(payments: object) -> None:
    with pytest.raises(ValueError, match="payments"):
        MechanismTags(payments=payments)


# -- plugins --------------------------------------------------------------------------------
PLUGIN_MODULE = '''
from auction.mechanisms.sealed_bid import FirstPrice


class FakeMechanism(FirstPrice):
    """A loopback plugin: first-price under another name, in pure Python."""

    name = "fake-name"

    def __init__(self, payment=None):
        super().__init__(payment, backend="python")


NOT_CALLABLE = 42


def failing_factory(**options):
    raise RuntimeError("this plugin cannot be built")


def not_a_mechanism(**options):
    return object()
'''

Install = Callable[[dict[str, str]], None]


@pytest.fixture
def install_plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Install]:
    """Install a fake distribution `fakeplug` with the given entry points on sys.path."""

    def install(entry_points: dict[str, str]) -> None:
        (tmp_path / "fakeplug_mod.py").write_text(PLUGIN_MODULE)
        (tmp_path / "fakeplug_broken.py").write_text(
            'raise ImportError("fakeplug_broken is broken on purpose")\n'
        )
        info = tmp_path / "fakeplug-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeplug\nVersion: 0.1\n")
        lines = [f"{name} = {target}" for name, target in entry_points.items()]
        (info / "entry_points.txt").write_text("[auction.mechanisms]\n" + "\n".join(lines) + "\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        mechanisms.refresh()

    yield install
    mechanisms.refresh()
    for mod in ("fakeplug_mod", "fakeplug_broken"):
        sys.modules.pop(mod, None)


def test_plugin_is_discovered_lazily_and_clears(install_plugins: Install) -> None:
    before = mechanisms.available()
    install_plugins({"fake-name": "fakeplug_mod:FakeMechanism"})
    assert "fakeplug_mod" not in sys.modules  # nothing is loaded before the first lookup
    names = mechanisms.available()
    assert "fakeplug_mod" in sys.modules
    assert names == sorted([*before, "fake-name"])
    mech = mechanisms.get("fake-name")
    assert isinstance(mech, Mechanism)
    assert mech.name == "fake-name"
    assert "fake-name" in mechanisms.supporting(divisible=True)
    result = auction.clear(book(), "fake-name")
    assert result.mechanism == "fake-name"
    assert result.to_records() == first_price_records()
    assert result.n_allocations > 0


def test_refresh_forgets_plugins(
    install_plugins: Install, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    install_plugins({"fake-name": "fakeplug_mod:FakeMechanism"})
    assert "fake-name" in mechanisms.available()
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(tmp_path)])
    importlib.invalidate_caches()
    assert "fake-name" in mechanisms.available()  # still cached
    mechanisms.refresh()
    assert "fake-name" not in mechanisms.available()
    with pytest.raises(MechanismNotFoundError):
        mechanisms.get("fake-name")


@pytest.mark.parametrize(
    ("entry_points", "bad", "message"),
    [
        ({"broken-name": "fakeplug_broken:Thing"}, "broken-name", "broken on purpose"),
        ({"missing-module": "fakeplug_nowhere:Thing"}, "missing-module", "fakeplug_nowhere"),
        ({"missing-attr": "fakeplug_mod:Nothing"}, "missing-attr", "Nothing"),
        ({"constant": "fakeplug_mod:NOT_CALLABLE"}, "constant", "must be callable"),
        ({"first-price": "fakeplug_mod:FakeMechanism"}, "first-price", "name is taken"),
        ({"second-price": "fakeplug_broken:Thing"}, "second-price", "name is taken"),
    ],
)
def test_bad_plugins_warn_and_do_not_break_the_registry(
    install_plugins: Install, entry_points: dict[str, str], bad: str, message: str
) -> None:
    install_plugins({**entry_points, "fake-name": "fakeplug_mod:FakeMechanism"})
    with pytest.warns(AuctionPluginWarning, match=message) as record:
        names = mechanisms.available()
    assert any(bad in str(w.message) for w in record)
    assert all(issubclass(w.category, AuctionPluginWarning) for w in record)
    assert set(BUILTINS) <= set(names)
    assert "fake-name" in names  # the good plugin next to it still loads
    if bad not in BUILTINS:
        assert bad not in names
    # the built-ins keep their own classes and still clear
    assert type(mechanisms.get("first-price")) is FirstPrice
    assert type(mechanisms.get("second-price")) is SecondPrice
    assert auction.clear(book(), "first-price", backend="python").n_allocations > 0
    # warnings come once, at loading, not on every lookup
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mechanisms.available()


def test_a_malformed_distribution_is_skipped(install_plugins: Install, tmp_path: Path) -> None:
    """One unreadable entry_points.txt (any group) must not hide the other plugins."""
    before = mechanisms.available()
    install_plugins({"fake-name": "fakeplug_mod:FakeMechanism"})
    info = tmp_path / "badplug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: badplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[console_scripts]\nthis line has no equals sign\n")
    importlib.invalidate_caches()
    mechanisms.refresh()
    with pytest.warns(AuctionPluginWarning, match="badplug"):
        names = mechanisms.available()
    assert names == sorted([*before, "fake-name"])
    assert auction.clear(book(), "fake-name").mechanism == "fake-name"


def test_two_plugins_with_one_name(install_plugins: Install, tmp_path: Path) -> None:
    install_plugins({"fake-name": "fakeplug_mod:FakeMechanism"})
    other = tmp_path / "other"
    other.mkdir()
    info = other / "otherplug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: otherplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[auction.mechanisms]\nfake-name = fakeplug_mod:not_a_mechanism\n"
    )
    sys.path.insert(0, str(other))
    try:
        mechanisms.refresh()
        with pytest.warns(AuctionPluginWarning, match="name is taken"):
            names = mechanisms.available()
        assert names.count("fake-name") == 1
    finally:
        sys.path.remove(str(other))


def test_plugins_that_fail_when_built(install_plugins: Install) -> None:
    install_plugins(
        {"fails": "fakeplug_mod:failing_factory", "not-mech": "fakeplug_mod:not_a_mechanism"}
    )
    names = mechanisms.available()
    assert {"fails", "not-mech"} <= set(names)
    with pytest.raises(RuntimeError, match="cannot be built"):
        mechanisms.get("fails")
    with pytest.raises(TypeError, match="Mechanism protocol"):
        mechanisms.get("not-mech")
    # neither is offered as an alternative, and looking for one does not raise
    supported = mechanisms.supporting(divisible=True)
    assert "fails" not in supported
    assert "not-mech" not in supported
    assert set(BUILTINS) <= set(supported)


def test_a_broken_plugin_does_not_break_import(tmp_path: Path) -> None:
    info = tmp_path / "brokenplug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: brokenplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[auction.mechanisms]\nbroken = brokenplug_nowhere:Thing\n"
    )
    code = textwrap.dedent(
        """
        import warnings
        warnings.simplefilter("error")
        import auction, auction.mechanisms
        from auction.mechanisms import AuctionPluginWarning
        warnings.simplefilter("default")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            names = auction.mechanisms.available()
        assert any(issubclass(w.category, AuctionPluginWarning) for w in caught), caught
        print(",".join(names))
        """
    )
    root = Path(auction.__file__).parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(root)])}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    names = out.stdout.strip().split(",")
    assert set(BUILTINS) <= set(names)
    assert "broken" not in names


# -- the documented example plugin ----------------------------------------------------------
PLUGIN_DIR = Path(__file__).resolve().parent.parent / "docs" / "examples" / "plugin"


def test_example_plugin_package_is_installable_as_documented() -> None:
    """The package docs/plugins.md walks through: a build system, a src layout, its tests and
    the entry point (CI installs it with pip and runs its tests)."""
    import tomllib

    meta = tomllib.loads((PLUGIN_DIR / "pyproject.toml").read_text())
    assert meta["build-system"]["build-backend"] == "setuptools.build_meta"
    assert meta["tool"]["setuptools"]["packages"]["find"]["where"] == ["src"]
    eps = meta["project"]["entry-points"][mechanisms.ENTRY_POINT_GROUP]
    assert eps == {"greedy-reserve": "auction_example_plugin:GreedyReserve"}
    assert (PLUGIN_DIR / "src" / "auction_example_plugin" / "__init__.py").is_file()
    assert (PLUGIN_DIR / "tests" / "test_plugin.py").is_file()
    assert not list(PLUGIN_DIR.glob("*.py"))  # nothing beside pyproject: no flat layout


def test_example_plugin_conforms(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import shutil

    # the package alone (not build artefacts such as an egg-info, whose entry points would
    # register it with the whole test session)
    shutil.copytree(PLUGIN_DIR / "src" / "auction_example_plugin",
                    tmp_path / "auction_example_plugin")
    monkeypatch.syspath_prepend(str(tmp_path))
    # copied onto sys.path at run time just above: mypy cannot see the module
    from auction_example_plugin import GreedyReserve  # type: ignore[import-not-found]

    from auction.testing import check_mechanism

    try:
        ran = check_mechanism(GreedyReserve(reserve=1), max_examples=10)
        assert "check_divisible_support" in ran
    finally:
        sys.modules.pop("auction_example_plugin", None)
        mechanisms.refresh()


def test_plugin_page_shows_the_example_package_file_for_file() -> None:
    """docs/plugins.md shows the tested package verbatim, so following it literally works."""
    page = (PLUGIN_DIR.parent.parent / "plugins.md").read_text()
    for rel in ("pyproject.toml", "src/auction_example_plugin/__init__.py",
                "tests/test_plugin.py"):
        assert (PLUGIN_DIR / rel).read_text().strip() in page, rel
