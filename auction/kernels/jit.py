"""Lazy numba compilation with opt-in, fail-safe disk caching.

`import auction` never imports numba: a kernel compiles on its first call. Set
``AUCTION_NUMBA_CACHE=1`` to cache compiled kernels on disk (numba writes next to the sources
when it can, else to its user cache directory, or to ``NUMBA_CACHE_DIR``). If no cache location
is writable (a read-only install), the kernel compiles without a cache and a warning says so;
it never fails for that reason.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable
from typing import Any, Generic, ParamSpec, TypeVar

__all__ = ["CACHE_ENV", "GroupKernel", "KernelGroup", "LazyKernel", "cache_enabled", "lazy_njit"]

CACHE_ENV = "AUCTION_NUMBA_CACHE"

P = ParamSpec("P")
R = TypeVar("R")


def cache_enabled() -> bool:
    """True when the user opted in to on-disk caching of compiled kernels."""
    return os.environ.get(CACHE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


class LazyKernel(Generic[P, R]):
    """A function compiled by `numba.njit` on first call; `py_func` is the plain Python one."""

    def __init__(self, func: Callable[P, R], options: dict[str, Any]) -> None:
        self.py_func = func
        self._options = options
        self._compiled: Callable[P, R] | None = None
        self._lock = threading.Lock()
        self.__doc__ = func.__doc__
        self.__name__ = func.__name__
        self.__wrapped__ = func

    def compile(self) -> Callable[P, R]:
        """The numba dispatcher, created on first use."""
        if self._compiled is None:
            with self._lock:
                if self._compiled is None:
                    self._compiled = _njit(self.py_func, self._options)
        return self._compiled

    @property
    def is_compiled(self) -> bool:
        return self._compiled is not None

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.compile()(*args, **kwargs)


def _njit(func: Callable[P, R], options: dict[str, Any]) -> Callable[P, R]:
    import numba

    if cache_enabled():
        try:
            dispatcher = numba.njit(cache=True, **options)(func)
            _probe_cache(dispatcher)
            return dispatcher  # type: ignore[no-any-return]
        except Exception as exc:  # RuntimeError without a locator, OSError from the probe
            warnings.warn(
                f"{CACHE_ENV} is set but {func.__name__} cannot be cached ({exc}); "
                "compiling without a disk cache",
                RuntimeWarning,
                stacklevel=3,
            )
    return numba.njit(cache=False, **options)(func)  # type: ignore[no-any-return]


def _probe_cache(dispatcher: Any) -> None:
    """Raise OSError if the cache directory numba chose cannot be written.

    numba checks most cache locations when the function is decorated, but not all (the
    location for modules imported from a zip archive is only written on the first compile,
    where a failure would break the call); probing here lets us fall back before that.
    """
    locator = getattr(getattr(getattr(dispatcher, "_cache", None), "_impl", None), "locator", None)
    ensure = getattr(locator, "ensure_cache_path", None)
    if ensure is not None:
        ensure()


def lazy_njit(**options: Any) -> Callable[[Callable[P, R]], LazyKernel[P, R]]:
    """Decorator: compile with ``numba.njit(**options)`` on the first call, not at import."""

    def wrap(func: Callable[P, R]) -> LazyKernel[P, R]:
        return LazyKernel(func, options)

    return wrap


class KernelGroup:
    """Kernels that call each other, compiled together on first use.

    Members refer to each other by their module-level names. On compilation every member is
    cloned into one shared namespace where those names are numba dispatchers; `python(name)`
    gives the same members cloned into a namespace of plain functions, the pure-Python
    reference of the whole group.
    """

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._funcs: dict[str, Callable[..., Any]] = {}
        self._compiled: dict[str, Callable[..., Any]] | None = None
        self._python: dict[str, Callable[..., Any]] | None = None
        self._lock = threading.Lock()

    def add(self, func: Callable[P, R]) -> GroupKernel[P, R]:
        """Register `func` as a member; returns a callable that runs the compiled member."""
        self._funcs[func.__name__] = func
        return GroupKernel(self, func)

    def _clone(self, wrap: Callable[[Callable[..., Any]], Callable[..., Any]]) -> dict[str, Any]:
        import types

        first = next(iter(self._funcs.values()))
        ns: dict[str, Any] = dict(first.__globals__)
        out = {}
        for name, f in self._funcs.items():
            clone = types.FunctionType(f.__code__, ns, name, f.__defaults__, f.__closure__)
            clone.__qualname__ = f.__qualname__
            clone.__module__ = f.__module__
            out[name] = ns[name] = wrap(clone)
        return out

    def compiled(self, name: str) -> Callable[..., Any]:
        """The numba dispatcher of member `name` (compiling the group on first use)."""
        if self._compiled is None:
            with self._lock:
                if self._compiled is None:
                    self._compiled = self._clone(lambda f: _njit(f, self._options))
        return self._compiled[name]

    def python(self, name: str) -> Callable[..., Any]:
        """Member `name` as plain Python, calling only plain-Python members."""
        if self._python is None:
            self._python = self._clone(lambda f: f)
        return self._python[name]

    @property
    def is_compiled(self) -> bool:
        return self._compiled is not None


class GroupKernel(Generic[P, R]):
    """One member of a `KernelGroup`: calling it runs the compiled member."""

    def __init__(self, group: KernelGroup, func: Callable[P, R]) -> None:
        self.group = group
        self.__name__ = func.__name__
        self.__doc__ = func.__doc__
        self.__wrapped__ = func

    @property
    def py_func(self) -> Callable[P, R]:
        """The member as plain Python (its calls to other members are plain Python too)."""
        return self.group.python(self.__name__)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.group.compiled(self.__name__)(*args, **kwargs)  # type: ignore[no-any-return]
