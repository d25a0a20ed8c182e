"""Test support for mechanism authors: hypothesis strategies, oracles and conformance checks.

The only part of the library that imports hypothesis (``import auction`` does not)::

    from auction.testing import check_mechanism, parametrize_with_checks

    check_mechanism("second-price")          # raises ConformanceError on any failed check

    @parametrize_with_checks(["first-price", MyMechanism()])
    def test_conformance(mechanism, check):
        check(mechanism)
"""

from auction.testing.checks import (
    SAFE_AMOUNT,
    Check,
    ConformanceError,
    MechanismLike,
    check_budget_balance,
    check_capacity,
    check_divisible_support,
    check_eligibility,
    check_empty_markets,
    check_individual_rationality,
    check_invalid_input,
    check_mechanism,
    check_misreport,
    check_misreport_single_order,
    check_misreport_unit_traders,
    check_no_mutation,
    check_order_independence,
    check_result_consistency,
    check_rng,
    checks_for,
    mechanism_label,
    parametrize_with_checks,
)
from auction.testing.oracles import brute_force_sealed_bid, is_eligible
from auction.testing.strategies import books, describe_market, markets, offers, requests

__all__ = [
    "SAFE_AMOUNT",
    "Check",
    "ConformanceError",
    "MechanismLike",
    "books",
    "brute_force_sealed_bid",
    "check_budget_balance",
    "check_capacity",
    "check_divisible_support",
    "check_eligibility",
    "check_empty_markets",
    "check_individual_rationality",
    "check_invalid_input",
    "check_mechanism",
    "check_misreport",
    "check_misreport_single_order",
    "check_misreport_unit_traders",
    "check_no_mutation",
    "check_order_independence",
    "check_result_consistency",
    "check_rng",
    "checks_for",
    "describe_market",
    "is_eligible",
    "markets",
    "mechanism_label",
    "offers",
    "parametrize_with_checks",
    "requests",
]
