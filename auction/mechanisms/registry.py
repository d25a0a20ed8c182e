"""Finding mechanisms by name: the built-ins, then third-party plugins.

Plugins register through the entry-point group ``auction.mechanisms``: each entry point's name
is the mechanism name and its object is a callable (usually the class) that takes the
mechanism's options as keyword arguments and returns a `Mechanism`::

    [project.entry-points."auction.mechanisms"]
    my-auction = "my_package.mechanisms:MyAuction"

Entry points are read on the first lookup, not at import. A plugin that fails to load, or whose
name is already taken, is skipped with an `AuctionPluginWarning`; it never breaks the library.
"""

from __future__ import annotations

import functools
import importlib.metadata
import re
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from auction.errors import MechanismNotFoundError
from auction.mechanisms.base import Mechanism, MechanismTags

__all__ = [
    "ENTRY_POINT_GROUP",
    "AuctionPluginWarning",
    "available",
    "get",
    "supporting",
    "tags_of",
]

ENTRY_POINT_GROUP = "auction.mechanisms"

Factory = Callable[..., Mechanism]


class AuctionPluginWarning(UserWarning):
    """A third-party mechanism could not be loaded or clashes with another name."""


def _builtins() -> dict[str, Factory]:
    from auction.mechanisms.assignment import Assignment
    from auction.mechanisms.double_auction import SBBA, McAfee, UniformPrice
    from auction.mechanisms.gang import Gang
    from auction.mechanisms.lp import LinearProgram
    from auction.mechanisms.sealed_bid import FirstPrice, SecondPrice

    return {m.name: m for m in (FirstPrice, SecondPrice, Assignment, McAfee, SBBA, UniformPrice,
                                          LinearProgram, Gang)}


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
    taken = set(_builtins())
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
                raise TypeError(f"{ep.value} is not callable")
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
        UnknownPaymentRuleError: ``payment=`` names a rule the mechanism does not offer.
    """
    factories = _factories()
    if name not in factories:
        raise MechanismNotFoundError(name, sorted(factories))
    mech = factories[name](**options)
    if not isinstance(mech, Mechanism):
        raise TypeError(f"mechanism {name!r} does not implement the Mechanism protocol")
    return mech


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
