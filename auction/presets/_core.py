"""Shared pieces of the preset mechanisms: an allocation builder that tracks capacity, a
read-only mapping option, and the one-line source record every preset parameter carries."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import attrs
import numpy as np

from auction.errors import InvalidOptionError
from auction.limits import Deadline
from auction.market import Market
from auction.result import ClearingResult, FrozenDict, Status

__all__ = ["Fill", "Parameter", "audit", "eligible_offers", "frozen_mapping", "nonneg_int"]


def frozen_mapping(value_check: Any = None, *, what: str = "values") -> Any:
    """An option holding a read-only mapping (default empty), left out of the hash.

    `value_check(key, value)` returns an error text for a bad entry, or None."""

    def convert(value: Any) -> Any:
        return FrozenDict(value) if isinstance(value, Mapping) else value

    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        name = getattr(instance, "name", None) or None
        if not isinstance(value, Mapping):
            raise InvalidOptionError(attribute.name, value, f"{attribute.name} must be a "
                                     f"mapping of {what}", mechanism=name)
        for k, v in value.items():
            bad = None if value_check is None else value_check(k, v)
            if not isinstance(k, str) or bad:
                raise InvalidOptionError(f"{attribute.name}[{k!r}]", v,
                                         bad or "keys must be strings", mechanism=name)

    return attrs.field(factory=FrozenDict, converter=convert, validator=check, kw_only=True,
                       hash=False)


def nonneg_int(key: str, value: Any) -> str | None:
    """The check of a mapping whose values are ints >= 0."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        return "must be an int >= 0"
    return None


class Fill:
    """Allocation rows over a market's rows, with the GPUs left on each offer."""

    def __init__(self, market: Market) -> None:
        self.market = market
        self.left: list[int] = market.snapshot.offers.gpus.tolist()
        self.rows: list[int] = []
        self.offers: list[int] = []
        self.gpus: list[int] = []
        self.unit: list[int] = []
        self.tenant: list[int] = []
        #: Set by a mechanism that stopped early at its deadline.
        self.stopped = False

    def each(
        self, deadline: Deadline, order: Iterable[int] | None = None, every: int = 256,
    ) -> Iterator[int]:
        """Request rows in `order` (default the market's arrival order), checking `deadline`
        every `every` rows; on expiry sets `stopped` and ends."""
        rows = self.market.request_order.tolist() if order is None else order
        for i, r in enumerate(rows):
            if i % every == 0 and deadline.expired():
                self.stopped = True
                return
            yield r

    def add(self, r: int, o: int, g: int, unit: int, tenant: int | None = None) -> None:
        """Give request row `r` `g` GPUs of offer row `o` at `unit` per GPU-hour (the tenant
        pays `tenant`, default `unit`)."""
        self.left[o] -= g
        self.rows.append(r)
        self.offers.append(o)
        self.gpus.append(g)
        self.unit.append(unit)
        self.tenant.append(unit if tenant is None else tenant)

    def merge(self) -> None:
        """One row per (request, offer): repeated pairs (round-robin fills) are summed."""
        seen: dict[tuple[int, int], int] = {}
        rows: list[int] = []
        for i, key in enumerate(zip(self.rows, self.offers, strict=True)):
            if key in seen:
                self.gpus[seen[key]] += self.gpus[i]
            else:
                seen[key] = i
                rows.append(i)
        for name in ("rows", "offers", "gpus", "unit", "tenant"):
            col = getattr(self, name)
            setattr(self, name, [col[i] for i in rows])

    def result(
        self, mechanism: str, payment: str, options: Mapping[str, Any],
        diagnostics: Mapping[str, Any] | None = None,
    ) -> ClearingResult:
        """The `ClearingResult` of the rows so far (status ``time_limit`` if `stopped`)."""
        self.merge()
        status, message = Status.SUCCESS, ""
        if self.stopped:
            status, message = Status.TIME_LIMIT, "time_limit reached: the rows placed so far"
        return ClearingResult.from_allocation(
            self.market, self.rows, self.offers, self.gpus, self.unit, self.tenant,
            mechanism=mechanism, payment=payment, options=options, status=status,
            message=message, diagnostics=diagnostics,
        )


def eligible_offers(market: Market, r: int) -> list[int]:
    """Offer rows that may serve request row `r`, in rank order."""
    pairs = market.pairs()
    out: list[int] = pairs.offers[int(pairs.indptr[r]):int(pairs.indptr[r + 1])].tolist()
    return out


@attrs.frozen
class Parameter:
    """One number of a preset: its value, what it means and where it comes from."""

    name: str
    value: Any
    meaning: str
    source: str


def audit(
    *, sample_rate: str, stake: int, slash: Any, exclude_epochs: int, checks: str,
    sources: Mapping[str, str],
) -> tuple[Any, tuple[Parameter, ...]]:
    """A preset's `auction.simulation.AuditPolicy` and its four parameter rows.

    `sources` names the source of each of ``sample_rate``, ``stake``, ``slash`` and
    ``exclude_epochs`` (what the system publishes, or that it publishes none); `checks` says
    what the system's audit checks, in words. The slash is the share of `stake` a failed
    audit costs (`Outcome.AUDIT_FAILED` in the policy's `PenaltyPolicy`)."""
    from auction.reputation.events import Outcome
    from auction.settlement.penalties import PenaltyPolicy
    from auction.settlement.rates import as_rate
    from auction.simulation import AuditPolicy

    share = as_rate(slash, "audit_slash")
    penalty = PenaltyPolicy(slash={Outcome.AUDIT_FAILED: share} if share else {})
    policy = AuditPolicy(sample_rate=sample_rate, checks=checks, penalty=penalty, stake=stake,
                         exclude_epochs=exclude_epochs)
    return policy, (
        Parameter("audit_sample_rate", sample_rate,
                  f"share of providers audited per epoch; checks {checks}",
                  sources["sample_rate"]),
        Parameter("audit_stake", stake, "stake each provider posts, slashed on a failed "
                  "audit (smallest units)", sources["stake"]),
        Parameter("audit_slash", slash, "share of the stake a failed audit slashes",
                  sources["slash"]),
        Parameter("audit_exclude_epochs", exclude_epochs, "epochs a provider that failed an "
                  "audit may not offer", sources["exclude_epochs"]),
    )
