"""Finding mechanisms by name: the built-ins, then third-party plugins.

Plugins register through the entry-point group ``auction.mechanisms``: each entry point's name
is the mechanism name and its object is a callable (usually the class) that takes the
mechanism's options as keyword arguments and returns a `Mechanism`::

    [project.entry-points."auction.mechanisms"]
    my-auction = "my_package.mechanisms:MyAuction"

Entry points are read on the first lookup, not at import. A plugin that fails to load, or whose
name is already taken, is skipped with an `AuctionPluginWarning`; it never breaks the library.
The built-ins are found the same way, by ``module:attribute`` path, so the registry imports no
mechanism module (and the base class, which asks the registry for alternatives when it refuses
a market, imports the registry without a cycle).
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import re
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from auction.errors import (
    Alternative,
    InvalidOptionError,
    InvalidTypeError,
    MechanismNotFoundError,
)
from auction.mechanisms.protocol import Mechanism, MechanismTags

__all__ = [
    "ENTRY_POINT_GROUP",
    "AuctionPluginWarning",
    "available",
    "get",
    "resolve",
    "supporting",
    "tags_of",
]

ENTRY_POINT_GROUP = "auction.mechanisms"

Factory = Callable[..., Mechanism]


class AuctionPluginWarning(UserWarning):
    """A third-party mechanism could not be loaded or clashes with another name."""


#: The built-in mechanisms: registry name -> ``module:attribute``.
BUILTINS: Mapping[str, str] = {
    "first-price": "auction.mechanisms.sealed_bid:FirstPrice",
    "second-price": "auction.mechanisms.sealed_bid:SecondPrice",
    "assignment": "auction.mechanisms.assignment:Assignment",
    "mcafee": "auction.mechanisms.double_auction:McAfee",
    "sbba": "auction.mechanisms.double_auction:SBBA",
    "uniform-price": "auction.mechanisms.double_auction:UniformPrice",
    "lp": "auction.mechanisms.lp:LinearProgram",
    "gang": "auction.mechanisms.gang:Gang",
    # the seed markets' own rules (auction.presets)
    "nosana-queue": "auction.presets.nosana:NosanaQueue",
    "iexec-book": "auction.presets.iexec:IexecBook",
    "ionet-clusters": "auction.presets.ionet:IonetClusters",
    "akash-auction": "auction.presets.akash:AkashAuction",
    "render-tiers": "auction.presets.render:RenderTiers",
    "aethir-indexer": "auction.presets.aethir:AethirIndexer",
    "golem-match": "auction.presets.golem:GolemMatch",
}


def _load(path: str) -> Factory:
    module, _, attr = path.partition(":")
    obj: Factory = getattr(importlib.import_module(module), attr)
    return obj


def _builtins() -> dict[str, Factory]:
    return {name: _load(path) for name, path in BUILTINS.items()}


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    """The group's entry points; a distribution whose entry points cannot be read is skipped.

    `importlib.metadata.entry_points` parses every installed distribution's entry points and
    fails as a whole on one malformed ``entry_points.txt``; then read them one by one (the
    first distribution of a name on the path wins, as there), warning about the bad ones.
    """
    try:
        return list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
    except Exception:  # a malformed entry_points.txt somewhere: find it below
        pass
    out: list[importlib.metadata.EntryPoint] = []
    seen: set[str] = set()
    for dist in importlib.metadata.distributions():
        name = "?"
        try:
            name = dist.metadata["Name"] or "?"
            key = re.sub(r"[-_.]+", "-", name).lower()
            if key in seen:
                continue
            seen.add(key)
            out += [ep for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP]
        except Exception as exc:  # any broken distribution must not break us
            warnings.warn(
                f"skipping the entry points of distribution {name!r}: {exc!r}",
                AuctionPluginWarning,
                stacklevel=4,
            )
    return out


@functools.cache
def _plugins() -> Mapping[str, Factory]:
    """Entry-point mechanisms, loaded once; `refresh()` forgets them."""
    taken = set(BUILTINS)
    found: dict[str, Factory] = {}
    for ep in sorted(_entry_points(), key=lambda e: (e.name, e.value)):
        if ep.name in taken or ep.name in found:
            warnings.warn(
                f"mechanism plugin {ep.name!r} ({ep.value}) is skipped: the name is taken",
                AuctionPluginWarning,
                stacklevel=3,
            )
            continue
        try:
            obj = ep.load()
            if not callable(obj):
                raise InvalidTypeError(ep.value, obj, "callable (a Mechanism class or factory)")
        except Exception as exc:  # any plugin failure must not break us
            warnings.warn(
                f"mechanism plugin {ep.name!r} ({ep.value}) failed to load: {exc!r}",
                AuctionPluginWarning,
                stacklevel=3,
            )
            continue
        found[ep.name] = obj
    return found


def refresh() -> None:
    """Forget loaded plugins so the next lookup reads the entry points again."""
    _plugins.cache_clear()


def _factories() -> dict[str, Factory]:
    return {**_builtins(), **_plugins()}


def available() -> list[str]:
    """Names of all mechanisms: built-ins and plugins, sorted."""
    return sorted(_factories())


def get(name: str, **options: Any) -> Mechanism:
    """A new mechanism instance by registry name, built with `options`.

    Raises:
        MechanismNotFoundError: no mechanism has this name.
        InvalidOptionError: an option the mechanism does not have, or a bad value.
        UnknownPaymentRuleError: ``payment=`` names a rule the mechanism does not offer.
    """
    factories = _factories()
    if name not in factories:
        raise MechanismNotFoundError(name, sorted(factories))
    factory = factories[name]
    if isinstance(factory, type) and attrs.has(factory):  # declared options: check the names
        known = [a.name for a in attrs.fields(factory) if a.init]
        for key, value in options.items():
            if key not in known:
                raise InvalidOptionError(
                    key, value, f"{name} has no option {key!r}; its options: {', '.join(known)}",
                    mechanism=name,
                )
    mech = factory(**options)
    if not isinstance(mech, Mechanism):
        raise InvalidTypeError(
            f"mechanism {name!r}", mech, "an object that implements the Mechanism protocol"
        )
    return mech


def resolve(alternative: str | tuple[str, Mapping[str, Any]]) -> Mechanism:
    """The mechanism an `Alternative` (from `UnsupportedMarketError.alternatives`), a
    ``(name, options)`` pair or its text names, built with its options."""
    alt = Alternative.parse(alternative)
    return get(alt.name, **alt.options)


def tags_of(name: str) -> MechanismTags:
    """The tags of a registered mechanism (built with its default options)."""
    return get(name).tags


def supporting(**required: Any) -> list[str]:
    """Names of mechanisms whose tags have the given values, e.g. ``supporting(divisible=True)``.

    A plugin that cannot be built with default options is left out.
    """
    names = []
    for name in available():
        try:
            tags = attrs.asdict(tags_of(name))
        except Exception:  # a broken plugin is not a candidate
            continue
        if all(tags.get(k) == v for k, v in required.items()):
            names.append(name)
    return names
