"""The mechanism interface: one small protocol, capability tags, and a helper base class.

A mechanism is any object with a ``name``, ``tags`` and ``clear(market, *, rng=None)`` that
returns a `ClearingResult`. Options (including the payment rule) are constructor arguments,
as scikit-learn estimators take their parameters.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar, Protocol, runtime_checkable

import attrs
import numpy as np

from auction.errors import UnknownPaymentRuleError, UnsupportedMarketError
from auction.market import Market
from auction.result import ClearingResult

__all__ = ["Mechanism", "MechanismBase", "MechanismTags"]


def _payments(value: Any) -> tuple[str, ...]:
    out = tuple(value)
    if not out or not all(isinstance(p, str) and p for p in out):
        raise ValueError(f"payments must be a non-empty sequence of names, got {value!r}")
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
        divisible: clears markets with divisible requests.
        splittable_only: clears only markets whose requests are all divisible or ask for one
            GPU (others get `UnsupportedMarketError`); the conformance suite draws such markets.
        call_market: clears only markets in which every request's eligible offers, ignoring
            price, form exactly one offer class (others get `UnsupportedMarketError`); the
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


class MechanismBase(abc.ABC):
    """Optional base class: payment-rule validation and the market checks every mechanism needs.

    Subclasses set ``name`` and ``tags`` and implement `_clear`.
    """

    name: ClassVar[str] = ""
    #: Class default; an instance may refine it in ``__init__`` (tags can depend on options).
    tags: MechanismTags = MechanismTags()

    def __init__(self, payment: str | None = None) -> None:
        offered = self.tags.payments
        if payment is None:
            payment = offered[0]
        if payment not in offered:
            raise UnknownPaymentRuleError(self.name, payment, offered)
        self.payment = payment

    def __repr__(self) -> str:
        return f"{type(self).__name__}(payment={self.payment!r})"

    def get_options(self) -> dict[str, Any]:
        """The options this instance was built with (recorded in each result)."""
        return {"payment": self.payment}

    def check_market(self, market: Market) -> None:
        """Raise `UnsupportedMarketError` if this mechanism cannot clear `market`."""
        if not isinstance(market, Market):
            raise TypeError(f"{self.name} clears a Market, not {type(market).__name__}")
        if not self.tags.divisible and bool(market.snapshot.requests.divisible.any()):
            from auction.mechanisms.registry import supporting

            raise UnsupportedMarketError(
                self.name,
                "the market has divisible requests",
                supporting(divisible=True, call_market=False),  # call markets are special
            )

    def clear(
        self, market: Market, *, rng: np.random.Generator | None = None
    ) -> ClearingResult:
        self.check_market(market)
        return self._clear(market, rng)

    @abc.abstractmethod
    def _clear(self, market: Market, rng: np.random.Generator | None) -> ClearingResult:
        """Clear a market that `check_market` accepted."""
