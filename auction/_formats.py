"""The one header of every JSON document the library writes, and its check on read.

Every document opens with ``{"format": NAME, "version": N}`` (the order book, the ledger, the
reputation snapshot, the CLI's result and score files). Documents written before that named
both in one key, ``"schema": "NAME/N"`` (the ledger's version 1: ``"format": "NAME/1"``);
`read_version` still reads them. A name or version this library cannot read raises a typed
`UnknownSchemaError` naming the key and value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from auction.errors import UnknownSchemaError

__all__ = ["header", "read_version"]


def header(name: str, version: int) -> dict[str, Any]:
    """The header keys of a document: ``{"format": name, "version": version}``."""
    return {"format": name, "version": version}


def read_version(
    doc: Mapping[str, Any],
    name: str,
    versions: Sequence[int],
    *,
    document: str,
    error: type[UnknownSchemaError] = UnknownSchemaError,
    default: int | None = None,
    legacy: Sequence[int] | None = None,
) -> tuple[int, frozenset[str]]:
    """The version of `doc` (a JSON object of format `name`) and the header keys it used.

    Reads ``{"format": name, "version": N}`` and the older single key, ``"schema": "name/N"``
    (or ``"format": "name/N"``); a document with neither is version `default` when one is
    given. N must be one of `versions`, and for the single key one of `legacy` (default: all
    of `versions`; the versions written before the two-key header).

    Raises:
        UnknownSchemaError: (or `error`, a subclass) another format, an unknown or
            malformed version, both header forms at once, or no header without a default;
            `field` is the offending key.
    """
    supported = tuple(f"{name}/{v}" for v in versions)

    def refuse(field: str, value: Any) -> UnknownSchemaError:
        newer = field == "version" and type(value) is int and value > max(versions)
        return error(value, supported, document=document, field=field, newer=newer)

    if "version" in doc:
        if "schema" in doc:  # two headers: which one is meant is unknowable
            raise refuse("schema", doc["schema"])
        if doc.get("format") != name:
            raise refuse("format", doc.get("format"))
        version = doc["version"]
        if type(version) is not int or version not in versions:
            raise refuse("version", version)
        return version, frozenset({"format", "version"})
    key = "schema" if "schema" in doc else "format"
    if key not in doc:
        if default is None:
            raise refuse("format", None)
        return default, frozenset()
    text = doc[key]
    for v in versions if legacy is None else legacy:
        if text == f"{name}/{v}":
            return v, frozenset({key})
    if key == "format" and text == name:  # the current form without its version
        raise refuse("version", None)
    raise refuse(key, text)
