"""The mechanism interface: one small protocol, capability tags, and a declarative base class.

A mechanism is any object with a ``name``, ``tags`` and ``clear(market, *, rng=None)`` that
returns a `ClearingResult` (the `Mechanism` protocol). `MechanismBase` makes one a small
declaration, as scikit-learn estimators are:

* **options** are attrs fields with validators (`auction.mechanisms.options`); ``payment``,
  ``time_limit`` and ``max_memory`` are every mechanism's. `get_options`, ``repr``, equality,
  `clone` and `with_options` derive from the fields, so they never drift from them;
* **tags** are computed from the options by `__auction_tags__` (by default the class's
  declared ``tags``);
* **what tags promise is enforced** before `_clear` runs: a mechanism not tagged
  ``divisible`` refuses divisible requests, ``splittable_only`` refuses whole multi-GPU
  requests, ``call_market`` refuses markets that are not call markets, all through one
  refusal builder, `refuse`, whose alternatives are `(name, options)` pairs that the registry
  resolves;
* **payment names**: one name per rule; a deprecated name (`DEPRECATED_PAYMENTS`:
  ``"second-score"``, the old second name of ``"vickrey"``) resolves to the canonical one
  with a `DeprecationWarning`, so ``payment`` and every result say the canonical name;
* **randomness** (`rng`: a Generator, an int or SeedSequence seed, or None) is resolved once;
* **limits**: a `Deadline` for ``time_limit`` is started once and passed to `_clear`;
  `memory_estimate` says what the mechanism will hold, checked against ``max_memory``
  before anything is allocated.
"""

from __future__ import annotations

import abc
import inspect
import os
import sys
import types
import warnings
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import attrs
import numpy as np

from auction.errors import (
    Alternative,
    InvalidTypeError,
    UnknownPaymentRuleError,
    UnsupportedMarketError,
)
from auction.limits import (
    DEFAULT_TIME_LIMIT,
    Deadline,
    check_memory,
    deadline_for,
    default_max_memory,
    watch,
)
from auction.market import Market
from auction.mechanisms import options, registry
from auction.mechanisms.protocol import Mechanism, MechanismTags, RngLike
from auction.problems.call_market import request_classes
from auction.result import ClearingResult

__all__ = ["DEPRECATED_PAYMENTS", "Mechanism", "MechanismBase", "MechanismTags", "resolve_rng"]

#: Deprecated payment-rule names and the canonical name each resolves to (with a
#: `DeprecationWarning`) in a mechanism that offers the canonical rule. ``"second-score"``
#: named the Vickrey rule for scoring markets; it is the same rule, so one name remains.
DEPRECATED_PAYMENTS: Mapping[str, str] = types.MappingProxyType({"second-score": "vickrey"})

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _warn_outside(message: str, category: type[Warning]) -> None:
    """`warnings.warn` attributed to the first caller outside this package (what Python
    3.12's ``skip_file_prefixes`` does), so the warning points at the code to change."""
    frame = sys._getframe(1)
    level = 2
    while frame.f_back is not None and (
        frame.f_code.co_filename.startswith((_PACKAGE, "<attrs generated"))
    ):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)


def _canonical_payment(name: str, offered: Iterable[str]) -> str:
    """`name`, or the canonical name of a deprecated one that `offered` holds (warning)."""
    canonical = DEPRECATED_PAYMENTS.get(name)
    if canonical is None or canonical not in tuple(offered):
        return name
    _warn_outside(f"payment {name!r} is a deprecated name of {canonical!r}; use {canonical!r}",
                  DeprecationWarning)
    return canonical

#: Mechanisms that clear a non-divisible multi-GPU request whole (named when one is refused).
WHOLE_REQUEST_ALTERNATIVES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("gang", {}), ("assignment", {"shape": "exclusive"}), ("first-price", {}),
    ("second-price", {}),
)


def resolve_rng(rng: RngLike) -> np.random.Generator | None:
    """One randomness argument in every form: a Generator (used as is), an int >= 0 or a
    `numpy.random.SeedSequence` (seeds a new Generator), or None (stays None: deterministic
    mechanisms ignore it, randomized ones draw fresh entropy)."""
    if rng is None or isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, np.random.SeedSequence) or (
        isinstance(rng, int | np.integer) and not isinstance(rng, bool) and int(rng) >= 0
    ):
        return np.random.default_rng(rng)
    from auction.errors import InvalidValueError

    raise InvalidValueError(
        "rng", rng, "must be a numpy Generator, an int >= 0, a SeedSequence or None"
    )


def _payment_name(value: str | None) -> str:
    """None (the mechanism's default rule, resolved after construction) as ``""``."""
    return "" if value is None else value


def _canonical_alternative(alt: Alternative) -> Alternative:
    """`alt` with a deprecated payment name replaced by its canonical one (no warning: the
    library, not the caller, named it)."""
    payment = alt.options.get("payment")
    if not isinstance(payment, str) or payment not in DEPRECATED_PAYMENTS:
        return alt
    return Alternative(alt.name, {**alt.options, "payment": DEPRECATED_PAYMENTS[payment]})


def _memory_option(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
        from auction.errors import InvalidOptionError

        raise InvalidOptionError(attribute.name, value, "max_memory must be a number of "
                                 "bytes > 0, or None (a share of the machine's memory)",
                                 mechanism=getattr(instance, "name", None) or None)


@attrs.frozen
class MechanismBase(abc.ABC):
    """Base class: declared options, computed tags, enforced promises, limits.

    Subclasses set ``name`` (a ClassVar) and ``tags`` (the declared `MechanismTags`),
    declare their options as attrs fields (decorate the subclass with ``@attrs.frozen``) and
    implement ``_clear(market, rng)`` or ``_clear(market, rng, deadline)``.

    Args:
        payment: the payment rule; None picks the first of ``tags.payments``.
        time_limit: seconds of wall time for the whole `clear` (build, solve, fallback,
            pricing); None: no limit. Past it a mechanism returns its best valid allocation
            with status ``time_limit``, or raises `TimeLimitError` when it has none.
        max_memory: bytes the mechanism may hold (None: `auction.limits.default_max_memory`,
            half the machine's memory). Past it, `MemoryLimitError` before allocating.
    """

    name: ClassVar[str] = ""
    _declared_tags: ClassVar[MechanismTags] = MechanismTags()
    #: Why a whole multi-GPU request is refused by a ``splittable_only`` mechanism.
    whole_request_reason: ClassVar[str] = "only divisible or 1-GPU requests can be cleared"
    _takes_deadline: ClassVar[bool] = False

    payment: str = attrs.field(default=None, converter=_payment_name)
    time_limit: float | None = options.seconds(DEFAULT_TIME_LIMIT)
    max_memory: int | None = attrs.field(default=None, validator=_memory_option, kw_only=True)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared = cls.__dict__.get("tags")
        if isinstance(declared, MechanismTags):  # ``tags = MechanismTags(...)`` in the body
            cls._declared_tags = declared
            delattr(cls, "tags")
        clear = cls.__dict__.get("_clear")
        if clear is not None:
            cls._takes_deadline = "deadline" in inspect.signature(clear).parameters

    def __attrs_post_init__(self) -> None:
        offered = self.tags.payments
        requested = self.payment or offered[0]
        payment = _canonical_payment(requested, offered)
        if payment not in offered:
            raise UnknownPaymentRuleError(self.name, str(requested), offered)
        object.__setattr__(self, "payment", payment)
        self._check_options()

    def _check_options(self) -> None:
        """Checks that involve several options (each option validates itself); raise
        `InvalidOptionError`."""
        return

    # -- derived from the declaration ----------------------------------------------------
    @property
    def tags(self) -> MechanismTags:
        """Capabilities and promises of this instance (`__auction_tags__`)."""
        return self.__auction_tags__()

    def __auction_tags__(self) -> MechanismTags:
        """The tags, computed from the options; override to refine the declared ones."""
        return type(self)._declared_tags

    def get_options(self) -> dict[str, Any]:
        """The options this instance was built with (recorded in each result)."""
        out = {}
        for a in attrs.fields(type(self)):
            if a.init:
                export = a.metadata.get("export")
                value = getattr(self, a.name)
                out[a.name] = export(value) if export is not None else value
        return out

    def clone(self) -> MechanismBase:
        """A new instance with the same options."""
        return self.with_options()

    def with_options(self, **changes: Any) -> MechanismBase:
        """A new instance with some options changed (validated like the constructor's)."""
        return type(self)(**{**self.get_options(), **changes})

    # -- refusals ---------------------------------------------------------------------------
    def refuse(
        self,
        reason: str,
        alternatives: Iterable[str | tuple[str, Mapping[str, Any]]] = (),
        *,
        supporting: Mapping[str, Any] | None = None,
    ) -> UnsupportedMarketError:
        """The error for a market this mechanism cannot clear: `reason`, and the mechanisms
        that can, given as ``(name, options)`` pairs (or names), or found by tag values in
        the registry (`supporting`). Names that are not registered are left out."""
        names = set(registry.available())
        alts = [_canonical_alternative(Alternative.parse(a)) for a in alternatives]
        if supporting is not None:
            alts += [Alternative(n) for n in registry.supporting(**supporting)]
        kept = [a for a in dict.fromkeys(alts) if (a.name in names and a.name != self.name)
                or (a.name == self.name and a.options)]
        return UnsupportedMarketError(self.name, reason, kept)

    def check_market(self, market: Market) -> None:
        """Raise `UnsupportedMarketError` if this mechanism cannot clear `market`: what the
        tags promise (divisible, splittable_only, call_market) is enforced here."""
        if not isinstance(market, Market):
            raise InvalidTypeError("market", market, f"a Market ({self.name} clears a Market)")
        tags = self.tags
        rq = market.snapshot.requests
        if not tags.divisible and bool(rq.divisible.any()):
            raise self.refuse("the market has divisible requests",
                              supporting={"divisible": True, "call_market": False})
        if tags.splittable_only:
            whole = np.flatnonzero(~rq.divisible & (rq.gpus > 1))
            if len(whole):
                r = int(whole[np.argmin(market.request_rank[whole])])
                raise self.refuse(
                    f"request {str(rq.id[r])!r} wants {int(rq.gpus[r])} GPUs from one offer, "
                    f"all or nothing: {self.whole_request_reason}",
                    WHOLE_REQUEST_ALTERNATIVES,
                )
        if tags.call_market:
            request_classes(market, self.name, self.refuse)

    @property
    def memory_limit(self) -> int:
        """``max_memory`` in bytes, the default share of the machine's memory resolved."""
        return default_max_memory() if self.max_memory is None else int(self.max_memory)

    def memory_estimate(self, market: Market) -> tuple[str, int] | None:
        """What clearing `market` will hold, as (a description, bytes), or None when it
        stays small (no per-pair arrays); checked against ``max_memory`` before `_clear`."""
        return None

    #: How to get past `MemoryLimitError`, for the message.
    memory_advice: ClassVar[str] = (
        "clear a sparser market (narrower requests), partition the book and clear the parts, "
        "use a mechanism that streams (first-price, second-price), or raise max_memory="
    )

    # -- clearing ---------------------------------------------------------------------------
    def clear(self, market: Market, *, rng: RngLike = None) -> ClearingResult:
        """Clear `market` within ``time_limit`` and ``max_memory``; never mutates it."""
        deadline = deadline_for(self, self.time_limit)  # auction.clear's, started earlier
        generator = resolve_rng(rng)
        with watch(deadline, self.name, self):  # the market's lazy pair build checks it
            self.check_market(market)
            estimate = self.memory_estimate(market)
            if estimate is not None:
                check_memory(self.name, estimate[0], estimate[1], self.max_memory,
                             self.memory_advice)
            if self._takes_deadline:
                return self._clear(market, generator, deadline)
            return self._clear(market, generator)  # type: ignore[call-arg]

    @abc.abstractmethod
    def _clear(
        self, market: Market, rng: np.random.Generator | None, deadline: Deadline
    ) -> ClearingResult:
        """Clear a market that `check_market` accepted, within `deadline` (the `Deadline`
        of this clearing). A subclass may leave ``deadline`` out of its signature: then it is
        called with (market, rng) alone."""
