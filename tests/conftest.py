"""Hypothesis profiles for the test suite, the `no_shrinking` fixture, and the `slow` marks.

``ci`` (the default) keeps the whole suite fast on two cores: a modest number of examples, no
deadline (numba compiles a kernel on its first call, which would trip one), and a reproduction
blob printed with every failure. Pick another with ``HYPOTHESIS_PROFILE``: ``dev`` for quick
local runs, ``thorough`` for a long hunt before a release.

Tests that take more than 3 s are marked ``slow`` (`SLOW`, below, measured with
``--durations``): ``python -m pytest -m "not slow"`` is the quick loop while developing; the
README's command, ``python -m pytest``, still runs every test.

The numba disk cache is opt-in (`auction.kernels.jit`); the suite opts in, at import so that
the ``python -m auction ...`` subprocesses it starts inherit it: every kernel compiled by a
test is cached in ``.pytest_cache/numba`` (git-ignored) and loaded by later processes and
sessions instead of compiled again (a cold compile of every kernel takes about 26 s);
tests/test_docs.py points the pages' commands at it too. An
``AUCTION_NUMBA_CACHE`` or ``NUMBA_CACHE_DIR`` already set is kept (``AUCTION_NUMBA_CACHE=0``
runs the suite without a cache).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import Phase, settings


def _opt_in_to_the_numba_cache() -> None:
    """Point ``AUCTION_NUMBA_CACHE`` at ``<repo>/.pytest_cache/numba`` unless a cache setting
    is already there or the directory cannot be made (a read-only checkout: no cache)."""
    if os.environ.get("AUCTION_NUMBA_CACHE", "").strip() or os.environ.get("NUMBA_CACHE_DIR"):
        return
    directory = Path(__file__).resolve().parent.parent / ".pytest_cache" / "numba"
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return
    os.environ["AUCTION_NUMBA_CACHE"] = str(directory)


_opt_in_to_the_numba_cache()

settings.register_profile("ci", deadline=None, print_blob=True, max_examples=30)
settings.register_profile("dev", deadline=None, print_blob=True, max_examples=10)
settings.register_profile("thorough", deadline=None, print_blob=True, max_examples=1000)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)
settings.register_profile("no-shrink", parent=settings.get_profile(PROFILE),
                          phases=[Phase.explicit, Phase.reuse, Phase.generate])


@pytest.fixture
def no_shrinking() -> Iterator[None]:
    """The active profile without shrinking, for a test that only needs *a* failing example
    (a check shown to catch a broken toy mechanism): shrinking the falsifying market was most
    of such a test's time (15.2 s of 15.35 s for the row-order toy; 0.13 s without)."""
    settings.load_profile("no-shrink")
    try:
        yield
    finally:
        settings.load_profile(PROFILE)


#: Node ids (or their start, for every parametrization) of the tests measured above 3 s on
#: two cores (`python -m pytest --durations=60`, load about 1), with the seconds measured.
SLOW: dict[str, float] = {
    "tests/test_settlement_stateful.py::TestSettlement::runTest": 38.1,
    "tests/test_docs.py::test_page_examples[cli.md]": 35.7,
    "tests/test_docs.py::test_page_examples[testing.md]": 25.2,
    "tests/test_adversarial.py::test_kernels_are_exact_on_adversarial_graphs[asks-equal]": 22.5,
    "tests/test_eligibility.py::test_pairs_match_the_oracle": 13.4,
    "tests/test_docs.py::test_page_examples[plugins.md]": 9.7,
    "tests/test_flow_kernel.py::test_scaled_weights_beyond_the_limit_are_refused": 6.7,
    "tests/test_double_auction.py::test_the_unit_trader_check_is_selected_and_can_fail": 6.3,
    "tests/test_conformance.py::test_registered_mechanism_conforms"
    "[mcafee-check_misreport_unit_traders]": 6.1,
    "tests/test_conformance.py::test_registered_mechanism_conforms"
    "[sbba-check_misreport_unit_traders]": 5.6,
    "tests/test_presets_aethir.py::test_conformance": 5.1,
    "tests/test_presets_akash.py::test_conformance": 4.9,
    "tests/test_presets_render.py::test_conformance": 4.7,
    "tests/test_assignment.py::test_mechanism_welfare_is_optimal": 4.6,
    "tests/test_market.py::test_profile_classes_over_several_blocks[20000]": 4.6,
    "tests/test_conformance.py::test_typed_refusals_follow_the_contract": 4.2,
    "tests/test_executors.py::test_runner_kinds": 3.7,
    "tests/test_constraints.py::test_evaluation_matches_the_oracle": 3.4,
    "tests/test_docs.py::test_page_examples[simulation.md]": 3.4,
    "tests/test_book.py::TestBookMachine::runTest": 3.4,
    "tests/test_presets_simple.py::test_conformance[nosana-queue]": 3.3,
    "tests/test_live_log.py::test_sigkill_mid_epoch_recovers_with_nothing_lost_or_doubled": 3.1,
    "tests/test_presets_simple.py::test_conformance[ionet-clusters]": 3.1,
}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the `SLOW` tests ``slow``; an entry whose file was collected whole but which
    matches no test (renamed or removed) is an error, so the list stays true."""
    files = {item.nodeid.split("::")[0] for item in items}
    matched: set[str] = set()
    for item in items:
        for prefix in SLOW:
            if item.nodeid == prefix or item.nodeid.startswith((prefix + "[", prefix + "::")):
                item.add_marker(pytest.mark.slow)
                matched.add(prefix)
    stale = [p for p in SLOW if p.split("::")[0] in files and p not in matched]
    whole_files = not any("::" in arg for arg in config.args)
    if stale and whole_files and not config.getoption("keyword") and not config.getoption(
            "markexpr"):
        raise pytest.UsageError(f"tests/conftest.py SLOW names tests that do not exist: {stale}")
