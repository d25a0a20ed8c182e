"""The seed markets as runnable designs: Akash, Render, io.net, Aethir, Nosana, iExec, Golem.

A `Preset` bundles one market's rules: the mechanism that allocates and prices (a registered
mechanism, ``preset.mechanism``), and the `auction.simulation.Design` that settles it (fees,
payment mode, emissions, reputation model, and the audit policy: who is sampled, what is
checked, the stake and slash, ``audit_*`` parameters), with every number a `Parameter` whose
default cites its source, or says the system publishes none::

    from auction import presets

    presets.available()                         # ['aethir', 'akash', ...]
    akash = presets.get("akash", max_bids=5)    # override any parameter by name
    akash.mechanism.clear(market)
    simulate(flow, akash.design, epochs=30)

Each preset's rules, worked example and sources are in ``docs/presets/``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from auction.errors import InvalidValueError
from auction.mechanisms.protocol import Mechanism
from auction.presets._core import Parameter

__all__ = ["PRESETS", "Parameter", "Preset", "available", "defaults", "get"]

#: Preset name -> ``module:function`` building it from keyword parameters.
PRESETS: Mapping[str, str] = {
    "akash": "auction.presets.akash:preset",
    "render": "auction.presets.render:preset",
    "ionet": "auction.presets.ionet:preset",
    "aethir": "auction.presets.aethir:preset",
    "nosana": "auction.presets.nosana:preset",
    "iexec": "auction.presets.iexec:preset",
    "golem": "auction.presets.golem:preset",
}


@attrs.frozen(kw_only=True)
class Preset:
    """One market design, ready to clear and to simulate.

    Attributes:
        name: the preset's name (``"akash"``).
        title: one line saying what the market does.
        mechanism: the mechanism instance that clears one epoch's book.
        design: the `auction.simulation.Design` (mechanism, fees, payment mode, emissions,
            reputation, audit policy).
        parameters: every number, with its meaning and its source.
    """

    name: str
    title: str
    mechanism: Mechanism
    design: Any
    parameters: tuple[Parameter, ...]

    def parameter(self, name: str) -> Any:
        """The value of parameter `name`."""
        for p in self.parameters:
            if p.name == name:
                return p.value
        raise InvalidValueError("parameter", name, f"{self.name} has no such parameter; its "
                                f"parameters: {', '.join(p.name for p in self.parameters)}")

    def table(self) -> list[dict[str, Any]]:
        """The parameters as rows (name, value, meaning, source), for docs and reports."""
        return [attrs.asdict(p) for p in self.parameters]


def available() -> list[str]:
    """Names of the presets, sorted."""
    return sorted(PRESETS)


def _builder(name: str) -> Callable[..., Preset]:
    module, _, attr = PRESETS[name].partition(":")
    fn: Callable[..., Preset] = getattr(importlib.import_module(module), attr)
    return fn


def defaults(name: str) -> dict[str, Any]:
    """A preset's parameters and their default values."""
    return {p.name: p.value for p in get(name).parameters}


def get(name: str, **overrides: Any) -> Preset:
    """The preset `name`, with some parameters changed.

    Raises:
        InvalidValueError: no preset has this name (the error lists those that do), an
            override names no parameter of the preset, or has a bad value.
    """
    if not isinstance(name, str) or name not in PRESETS:
        raise InvalidValueError("name", name, f"no preset has this name; available: "
                                f"{', '.join(available())}")
    build = _builder(name)
    if overrides:
        known = {p.name for p in build().parameters}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise InvalidValueError(
                "overrides", unknown,
                f"preset {name!r} has no parameter {unknown[0]!r}; its parameters: "
                f"{', '.join(sorted(known))}")
    return build(**overrides)
