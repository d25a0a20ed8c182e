"""What a mechanism is: the `Mechanism` protocol and its capability tags, `MechanismTags`.

Kept apart from `auction.mechanisms.base` so that the registry can check plugins against the
protocol without importing the base class (the base class imports the registry to name
alternatives when it refuses a market).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs

from auction.errors import InvalidValueError

if TYPE_CHECKING:
    import numpy as np

    from auction.market import Market
    from auction.result import ClearingResult

__all__ = ["Mechanism", "MechanismTags", "RngLike"]

#: What every `clear` accepts as randomness: a Generator, a seed (int or SeedSequence), or
#: None (fresh entropy where a mechanism randomizes).
RngLike = Any


def _payments(value: Any) -> tuple[str, ...]:
    out = tuple(value)
    if not out or not all(isinstance(p, str) and p for p in out):
        raise InvalidValueError(
            "payments", value, "payments must be a non-empty sequence of names"
        )
    return out


@attrs.frozen(kw_only=True)
class MechanismTags:
    """What a mechanism promises; the conformance suite picks its checks from these.

    Attributes:
        payments: payment rules offered; the first is the default.
        truthful: no provider gains by misreporting its asks, in any market (checked by a
            brute-force misreport search on small markets).
        truthful_single_order: no provider gains by misreporting when the market holds one
            non-divisible request (an Akash order cleared on its own).
        truthful_unit_traders: no trader, provider or tenant, gains by misreporting when every
            order is for one GPU and every party places one order (McAfee's setting).
        individually_rational: ask <= unit_price and tenant_price <= max_price always.
        budget_balanced: tenants pay exactly what providers receive (tenant_price == unit_price).
        exact_optimal: the allocation maximizes welfare for the mechanism's market model.
        divisible: clears markets with divisible requests (the base class refuses others).
        splittable_only: clears only markets whose requests are all divisible or ask for one
            GPU (the base class refuses others with `UnsupportedMarketError`); the conformance
            suite draws such markets.
        call_market: clears only markets in which every request's eligible offers, ignoring
            price, form exactly one offer class (the base class refuses others); the
            conformance suite draws such markets.
        scoring: uses the market's quality bonuses (scoring auctions, Che 1993): ranks or
            optimizes by score, ``max_price - ask + bonus``; other mechanisms clear on price
            and surplus alone.
        needs_solver: relies on an external optimization solver.
        deterministic: the result does not depend on `rng`.
    """

    payments: tuple[str, ...] = attrs.field(default=("pay-as-bid",), converter=_payments)
    truthful: bool = False
    truthful_single_order: bool = False
    truthful_unit_traders: bool = False
    individually_rational: bool = True
    budget_balanced: bool = True
    exact_optimal: bool = False
    divisible: bool = False
    splittable_only: bool = False
    call_market: bool = False
    scoring: bool = False
    needs_solver: bool = False
    deterministic: bool = True


@runtime_checkable
class Mechanism(Protocol):
    """What every clearing mechanism implements."""

    @property
    def name(self) -> str:
        """Registry name, e.g. ``"first-price"``."""
        ...

    @property
    def tags(self) -> MechanismTags:
        """Capabilities and promises."""
        ...

    def clear(
        self, market: Market, *, rng: np.random.Generator | None = None
    ) -> ClearingResult:
        """Clear `market` and return the result; never mutates the market."""
        ...
