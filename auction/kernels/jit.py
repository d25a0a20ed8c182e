"""Lazy numba compilation, cached on disk only on opt-in, and never failing for it.

`import auction` never imports numba: a kernel compiles on its first call in each process (a
few seconds per process, tens for every kernel). A disk cache lets a new process load compiled
kernels instead, but writes to the user's disk, so it is opt-in (the developers' guide). Where,
by the first match:

* ``AUCTION_NUMBA_CACHE=0`` (or ``false``, ``no``, ``off``): no disk cache, whatever else is set.
* ``AUCTION_NUMBA_CACHE=/some/dir`` (an absolute path, ``~`` expanded): that directory.
* ``AUCTION_NUMBA_CACHE=1`` (or ``true``, ``yes``, ``on``): ``NUMBA_CACHE_DIR`` if set, else the
  per-user cache directory, ``$XDG_CACHE_HOME/auction/numba`` or ``~/.cache/auction/numba``
  (``~/Library/Caches`` on macOS, ``%LOCALAPPDATA%`` on Windows); if that cannot be written (a
  read-only home, as in some containers), a private directory of this user under the system's
  temporary directory.
* ``NUMBA_CACHE_DIR`` set (and ``AUCTION_NUMBA_CACHE`` unset): that directory. Setting it is how
  numba's own users ask for cached kernels in a place of their choosing, so it opts in too.
* otherwise (nothing set, or an empty value): no disk cache; every process compiles.

Nothing is written next to the installed sources, and nothing happens at import time. If the
chosen directory cannot be written (or the module cannot be cached, e.g. imported from a zip
archive), kernels compile without a disk cache and one `RuntimeWarning` per process says so;
clearing never fails for that reason. numba keys each cached kernel on a hash of its source
file, its bytecode, the Python version and the CPU. A kernel also freezes the constants it
imports from other modules (the work bounds of `budget`) into its machine code, so ours adds
the contents of every module beside the kernel's own (`source_stamp`; for the library's
kernels, all of `auction.kernels`). So a changed install, a changed constant or another
machine never loads a stale kernel.

Every kernel made here is registered, so `compiled_kernels` can report them all (the warm-up,
`auction.warmup`, uses it).

Threads: every kernel of the library is compiled with ``nogil=True`` (`nogil_kernels` checks),
so a kernel runs outside the GIL and independent markets clear in parallel threads; the
Python and numpy work around a kernel still takes the GIL. `gil_probe` measures that: a
pure-Python thread spins while a call runs and notes its longest stall inside kernel calls
(about a switch interval, 5 ms, when the kernel releases the GIL; the whole call when it
holds it) and outside them (`kernel_spans` records when kernels run).
"""

from __future__ import annotations

import functools
import hashlib
import os
import stat
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Generic, ParamSpec, TypeVar

__all__ = [
    "CACHE_ENV",
    "GilProbe",
    "GroupKernel",
    "KernelGroup",
    "LazyKernel",
    "cache_dir",
    "cache_enabled",
    "compiled_kernels",
    "gil_probe",
    "kernel_spans",
    "kernels",
    "lazy_njit",
    "nogil_kernels",
    "source_stamp",
]

CACHE_ENV = "AUCTION_NUMBA_CACHE"

_OFF = frozenset({"0", "false", "no", "off"})
_ON = frozenset({"1", "true", "yes", "on"})

P = ParamSpec("P")
R = TypeVar("R")

#: Every kernel and kernel group ever made, in creation order (they live for the process).
_REGISTRY: list[LazyKernel[Any, Any] | KernelGroup] = []
_warned: set[str] = set()
_warn_lock = threading.Lock()
#: Open `kernel_spans` recorders; kernel calls are timed only while there is one.
_recorders: list[list[tuple[float, float]]] = []


# -- where the cache lives ------------------------------------------------------------------


def cache_enabled() -> bool:
    """Whether the environment opts in to the disk cache (see the module docstring).

    True for ``AUCTION_NUMBA_CACHE`` on or an absolute directory, or for ``NUMBA_CACHE_DIR``
    set while ``AUCTION_NUMBA_CACHE`` is unset; `cache_dir` says where, if anywhere writable.
    """
    raw = os.environ.get(CACHE_ENV, "").strip()
    if raw.lower() in _OFF:
        return False
    if raw.lower() in _ON or os.path.isabs(os.path.expanduser(raw)):
        return True
    return bool(os.environ.get("NUMBA_CACHE_DIR", "").strip())


def _user_cache_home() -> Path:
    """The per-user cache root of this platform (as ``platformdirs.user_cache_dir`` gives)."""
    if sys.platform == "win32":
        local = os.environ.get("LOCALAPPDATA")
        return Path(local) if local else Path.home() / "AppData" / "Local"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches"
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    return Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"


def _setting() -> tuple[Path | None, bool]:
    """(directory, explicit) from the environment; (None, True) when not caching."""
    raw = os.environ.get(CACHE_ENV, "").strip()
    if raw.lower() in _OFF:
        return None, True
    numba_dir = os.environ.get("NUMBA_CACHE_DIR", "").strip()
    if raw.lower() in _ON:
        if numba_dir:
            return Path(numba_dir).expanduser(), True
        try:
            return _user_cache_home() / "auction" / "numba", False
        except RuntimeError:  # no home directory to expand
            return None, False
    if raw:
        path = Path(os.path.expanduser(raw))
        if path.is_absolute():
            return path, True
        _warn_once(f"{CACHE_ENV}={raw!r}: expected 0/1 or an absolute directory; ignored")
    if numba_dir:
        return Path(numba_dir).expanduser(), True
    return None, True


def _usable(directory: Path) -> bool:
    """Whether numba could keep a cache in `directory` (its own test: mkdir, then a file)."""
    try:
        os.makedirs(directory, exist_ok=True)
        tempfile.TemporaryFile(dir=directory).close()
    except OSError:
        return False
    return True


def _private_temp_dir() -> Path | None:
    """``<tmp>/auction-numba-<uid>``, only if this user owns it and nobody else may write.

    Cache files are pickles, so a directory another user could write to would let them run
    code in this process; it is refused rather than used.
    """
    getuid = getattr(os, "getuid", None)
    if getuid is None:  # no POSIX ownership to check
        return None
    path = Path(tempfile.gettempdir()) / f"auction-numba-{getuid()}"
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.lstat(path)
    except OSError:
        return None
    private = stat.S_ISDIR(st.st_mode) and st.st_uid == getuid() and not st.st_mode & 0o077
    return path if private and _usable(path) else None


@functools.lru_cache(maxsize=8)
def _resolve(env: tuple[str | None, ...]) -> Path | None:
    """The cache directory for one state of the environment (`env` is only the cache key)."""
    directory, explicit = _setting()
    if directory is None:
        return None
    if _usable(directory):
        return directory
    if not explicit:
        fallback = _private_temp_dir()
        if fallback is not None:
            return fallback
    _warn_once(
        f"compiled kernels cannot be cached: {directory} is not writable; compiling without "
        f"a disk cache (set {CACHE_ENV} to a writable directory, or to 0 to turn it off)"
    )
    return None


def cache_dir() -> Path | None:
    """The directory compiled kernels are cached in, or None when they are not cached.

    Reads the environment each call (see the module docstring for the order); creates the
    directory if needed.
    """
    keys = (CACHE_ENV, "NUMBA_CACHE_DIR", "XDG_CACHE_HOME", "HOME", "LOCALAPPDATA", "TMPDIR")
    return _resolve(tuple(os.environ.get(k) for k in keys))


def _warn_once(message: str) -> None:
    with _warn_lock:
        if message in _warned:
            return
        _warned.add(message)
    warnings.warn(message, RuntimeWarning, stacklevel=4)


# -- compiling ------------------------------------------------------------------------------


def _njit(func: Callable[P, R], options: dict[str, Any]) -> Callable[P, R]:
    """``numba.njit(**options)(func)``, with a disk cache in `cache_dir` when there is one."""
    import numba

    dispatcher = numba.njit(cache=False, **options)(func)
    directory = cache_dir()
    if directory is not None:
        try:
            dispatcher._cache = _function_cache(str(directory))(func)
        except Exception as exc:  # no locator (zip import, frozen app) or an OSError
            _warn_once(
                f"{func.__module__}.{func.__qualname__} cannot be cached in {directory} "
                f"({exc}); compiling without a disk cache"
            )
    return dispatcher  # type: ignore[no-any-return]


@functools.lru_cache(maxsize=64)
def source_stamp(directory: str) -> str:
    """A hash of every ``.py`` file in `directory`, read once per process and directory.

    Part of each cached kernel's key: numba's own key is the kernel's file only, but a kernel
    compiles in the module-level constants it imports from its neighbours (`budget.CHECK_EVERY`,
    ...), so editing any module beside it must invalidate it.
    """
    digest = hashlib.sha256()
    for path in sorted(Path(directory).glob("*.py")):
        digest.update(path.name.encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


@functools.lru_cache(maxsize=8)
def _function_cache(directory: str) -> Callable[[Callable[..., Any]], Any]:
    """A numba ``FunctionCache`` class whose only locator points into `directory`.

    Like numba's own ``NUMBA_CACHE_DIR`` locator (one sub-directory per source directory, named
    by its hash), but for our kernels only: setting ``NUMBA_CACHE_DIR`` for the process would
    move the caches of the user's own numba functions too.
    """
    import importlib

    caching: Any = importlib.import_module("numba.core.caching")  # untyped internals

    class Locator(caching.UserProvidedCacheLocator):  # type: ignore[misc]
        def __init__(self, py_func: Callable[..., Any], py_file: str) -> None:
            self._py_file = py_file
            self._lineno = py_func.__code__.co_firstlineno
            subpath = self.get_suitable_cache_subpath(py_file)
            self._cache_path = os.path.join(directory, subpath)

        def get_source_stamp(self) -> Any:
            return (super().get_source_stamp(), source_stamp(os.path.dirname(self._py_file)))

        @classmethod
        def from_function(cls, py_func: Callable[..., Any], py_file: str) -> Locator | None:
            if not os.path.exists(py_file):  # a zip archive or a placeholder file name
                return None
            locator = cls(py_func, py_file)
            locator.ensure_cache_path()  # raises OSError if it cannot be written
            return locator

    class Impl(caching.CompileResultCacheImpl):  # type: ignore[misc]
        _locator_classes = [Locator]  # noqa: RUF012 (numba's own class attribute)

    class Cache(caching.FunctionCache):  # type: ignore[misc]
        _impl_class = Impl

    return Cache


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
        _REGISTRY.append(self)

    def compile(self) -> Callable[P, R]:
        """The numba dispatcher, created on first use (it compiles per argument types)."""
        if self._compiled is None:
            with self._lock:
                if self._compiled is None:
                    self._compiled = _njit(self.py_func, self._options)
        return self._compiled

    @property
    def is_compiled(self) -> bool:
        return self._compiled is not None

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        if _recorders:
            return _recorded(self.compile(), args, kwargs)  # type: ignore[no-any-return]
        return self.compile()(*args, **kwargs)


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
        _REGISTRY.append(self)

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
    def members(self) -> tuple[str, ...]:
        """The members' names, in the order they were added."""
        return tuple(self._funcs)

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
        if _recorders:
            return _recorded(self.group.compiled(self.__name__), args, kwargs)  # type: ignore[no-any-return]
        return self.group.compiled(self.__name__)(*args, **kwargs)  # type: ignore[no-any-return]


# -- what has been made and compiled ---------------------------------------------------------


def kernels() -> list[str]:
    """Qualified names (``module.function``) of every kernel made so far in this process.

    A kernel exists once its module is imported; group members count one by one.
    """
    names = []
    for k in _REGISTRY:
        funcs = [k.py_func] if isinstance(k, LazyKernel) else list(k._funcs.values())
        names += [f"{f.__module__}.{f.__qualname__}" for f in funcs]
    return names


def compiled_kernels() -> Iterator[tuple[str, Any]]:
    """(qualified name, numba dispatcher) of every kernel whose dispatcher exists.

    A dispatcher holds one compiled version per argument types it was called with
    (``dispatcher.signatures``); ``dispatcher.stats`` counts cache hits and misses.
    """
    for k in list(_REGISTRY):
        if isinstance(k, LazyKernel):
            if k._compiled is not None:
                f = k.py_func
                yield f"{f.__module__}.{f.__qualname__}", k._compiled
        elif k._compiled is not None:
            for name, f in k._funcs.items():
                yield f"{f.__module__}.{f.__qualname__}", k._compiled[name]


# -- threads: is the GIL released? ---------------------------------------------------------


def nogil_kernels() -> dict[str, bool]:
    """Qualified name -> whether it is compiled with ``nogil=True``, for every kernel made."""
    out = {}
    for k in _REGISTRY:
        funcs = [k.py_func] if isinstance(k, LazyKernel) else list(k._funcs.values())
        for f in funcs:
            out[f"{f.__module__}.{f.__qualname__}"] = bool(k._options.get("nogil"))
    return out


def _recorded(dispatcher: Callable[..., Any], args: Any, kwargs: Any) -> Any:
    start = time.perf_counter()
    try:
        return dispatcher(*args, **kwargs)
    finally:
        span = (start, time.perf_counter())
        for spans in list(_recorders):
            spans.append(span)


@contextmanager
def kernel_spans() -> Iterator[list[tuple[float, float]]]:
    """Inside, the (start, end) ``time.perf_counter()`` of every kernel call from Python (in
    any thread) is appended to the yielded list; calls between kernels inside numba are not
    separate. Outside any recorder a kernel call costs one list test more."""
    spans: list[tuple[float, float]] = []
    _recorders.append(spans)
    try:
        yield spans
    finally:
        _recorders.remove(spans)


class GilProbe:
    """What a spinning pure-Python thread saw while one call ran (seconds).

    Attributes:
        call: the call's wall time.
        kernels: time inside kernel calls; longest: the longest single kernel call.
        stall_in: the probe's longest stall overlapping kernel calls: far below `longest`
            when the kernels release the GIL.
        stall_out: its longest stall outside them (Python and numpy work holding the GIL,
            and the OS preempting the probe on a loaded machine).
    """

    def __init__(self, call: float, kernels: float, longest: float, stall_in: float,
                 stall_out: float) -> None:
        self.call, self.kernels, self.longest = call, kernels, longest
        self.stall_in, self.stall_out = stall_in, stall_out

    def __repr__(self) -> str:
        return (f"GilProbe(call={self.call:.4f}, kernels={self.kernels:.4f}, "
                f"longest={self.longest:.4f}, stall_in={self.stall_in:.4f}, "
                f"stall_out={self.stall_out:.4f})")


def gil_probe(fn: Callable[[], Any], gap: float = 2e-4) -> GilProbe:
    """Run ``fn()`` while a pure-Python thread spins, noting every stall (a gap over `gap`
    seconds between two of its loop turns) and when kernels ran (`kernel_spans`).

    A kernel holding the GIL stalls the probe for its whole run; one releasing it stalls the
    probe for about a switch interval at its entry at most (plus OS preemption on a loaded
    machine). Unlike a thread speed-up, this does not depend on how many cores the
    scheduler grants.
    """
    stop = threading.Event()
    gaps: list[tuple[float, float]] = []

    def probe() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            now = time.perf_counter()
            if now - last > gap:
                gaps.append((last, now))
            last = now

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    time.sleep(0.02)
    try:
        with kernel_spans() as spans:
            start = time.perf_counter()
            fn()
            end = time.perf_counter()
    finally:
        stop.set()
        thread.join()

    def overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
        return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))

    inside = [max((overlap(g, k) for k in spans), default=0.0) for g in gaps]
    outside = [overlap(g, (start, end)) - sum(overlap(g, k) for k in spans) for g in gaps]
    return GilProbe(end - start, sum(b - a for a, b in spans),
                    max((b - a for a, b in spans), default=0.0),
                    max(inside, default=0.0), max(outside, default=0.0))
