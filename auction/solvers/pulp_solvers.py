"""PuLP solvers by name, through PuLP's non-deprecated entry points.

PuLP 3.x deprecates ``PULP_CBC_CMD`` (removed in PuLP 4); the same bundled CBC binary runs
through ``COIN_CMD`` with its path. The names ``"PULP_CBC_CMD"``, ``"COIN_CMD"`` and
``"CBC"`` all mean CBC: a ``cbc`` on the PATH if there is one, else PuLP's bundled binary.
"""

from __future__ import annotations

import os
import shutil
import warnings
from typing import Any

from auction.errors import SolverError

__all__ = ["CBC_NAMES", "available_pulp_solvers", "pulp_solver"]

CBC_NAMES = frozenset({"PULP_CBC_CMD", "COIN_CMD", "CBC"})


def _cbc_path() -> str | None:
    found = shutil.which("cbc")
    if found:
        return found
    from pulp.apis import coin_api

    bundled = getattr(coin_api, "pulp_cbc_path", None)
    return bundled if bundled and os.path.exists(bundled) else None


def pulp_solver(name: str, mechanism: str, **options: Any) -> Any:
    """A PuLP solver object named `name` with PuLP `options` (``msg``, ``timeLimit``,
    ``gapRel``); `SolverError` when PuLP does not know it or cannot find it here."""
    import pulp

    try:
        if name in CBC_NAMES:
            path = _cbc_path()
            if path is None:
                raise SolverError(mechanism, name, "no CBC binary found; pip install 'pulp[cbc]'")
            engine = pulp.COIN_CMD(path=path, **options)
        else:
            with warnings.catch_warnings():  # PuLP's own deprecations are not ours to raise
                warnings.simplefilter("ignore", DeprecationWarning)
                engine = pulp.getSolver(name, **options)
    except pulp.PulpSolverError as exc:
        raise SolverError(mechanism, name, str(exc)) from exc
    if not engine.available():
        raise SolverError(mechanism, name, "PuLP cannot find this solver on this machine")
    return engine


def available_pulp_solvers() -> list[str]:
    """Names of the PuLP solvers available here (CBC as ``"PULP_CBC_CMD"``)."""
    import pulp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        names = list(pulp.listSolvers(onlyAvailable=True))
    if _cbc_path() is not None and "PULP_CBC_CMD" not in names:
        names.insert(0, "PULP_CBC_CMD")
    return names
