"""Lazy numba kernels and an opt-in disk cache that never fails on a read-only install.

The cache tests run in subprocesses: numba reads its cache settings when it is imported.
They run as root in CI containers, where a read-only mode bit does not stop writes, so the
read-only cases block every cache location in a way root cannot get around either: the
directories numba would create sit under a regular *file* (mkdir fails with ENOTDIR), and the
``__pycache__`` next to the sources is itself a regular file. Each case first checks that
the locations really are unusable, so that it exercises the fallback and not a lucky cache.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import auction
from auction.kernels import jit
from auction.kernels.jit import CACHE_ENV, LazyKernel, cache_enabled, kernels, lazy_njit

ROOT = Path(auction.__file__).resolve().parent.parent

KERNEL_MODULE = '''
"""A kernel module as a third party (or the library itself) would write it."""
from auction.kernels.jit import lazy_njit


@lazy_njit(nogil=True)
def total(values):
    s = 0
    for v in values:
        s += v
    return s
'''

RUN_KERNEL = '''
import json, sys, warnings
import numpy as np
sys.path.insert(0, sys.argv[1])
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import kmod
    assert not kmod.total.is_compiled
    value = int(kmod.total(np.arange(10, dtype=np.int64)))
    stats = kmod.total.compile().stats
print(json.dumps({
    "value": value,
    "warnings": [[w.category.__name__, str(w.message)] for w in caught],
    "cache_path": stats.cache_path,
    "hits": sum(stats.cache_hits.values()),
    "misses": sum(stats.cache_misses.values()),
}))
'''


# -- in process -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "enabled"),
    [("1", True), ("true", True), ("YES", True), (" on ", True), ("/tmp/x", True),
     ("~/x", True), ("", False), ("relative/dir", False),
     ("0", False), ("no", False), ("off", False), (" FALSE ", False)],
)
def test_cache_setting(monkeypatch: pytest.MonkeyPatch, value: str, enabled: bool) -> None:
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv(CACHE_ENV, value)
    assert cache_enabled() is enabled
    monkeypatch.delenv(CACHE_ENV)
    assert cache_enabled() is False  # off by default
    monkeypatch.setenv("NUMBA_CACHE_DIR", "/tmp/numba")
    assert cache_enabled() is True  # numba's own setting opts in
    monkeypatch.setenv(CACHE_ENV, value)
    assert cache_enabled() is (value.strip().lower() not in ("0", "no", "off", "false"))


def test_cache_directory_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for k in (CACHE_ENV, "NUMBA_CACHE_DIR"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert jit.cache_dir() is None  # nothing set: no disk cache
    monkeypatch.setenv(CACHE_ENV, "1")
    if sys.platform not in ("win32", "darwin"):
        assert jit.cache_dir() == tmp_path / "xdg" / "auction" / "numba"
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba"))
    assert jit.cache_dir() == tmp_path / "numba"
    monkeypatch.delenv(CACHE_ENV)
    assert jit.cache_dir() == tmp_path / "numba"  # NUMBA_CACHE_DIR alone opts in
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "mine"))
    assert jit.cache_dir() == tmp_path / "mine"
    assert (tmp_path / "mine").is_dir()
    monkeypatch.setenv(CACHE_ENV, "off")
    assert jit.cache_dir() is None


def test_shared_temp_directory_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Cache files are pickles: a fallback directory others may write to is never used."""
    if not hasattr(os, "getuid"):
        pytest.skip("POSIX ownership")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    private = jit._private_temp_dir()
    assert private == tmp_path / f"auction-numba-{os.getuid()}"
    private.chmod(0o777)
    assert jit._private_temp_dir() is None
    private.chmod(0o700)
    assert jit._private_temp_dir() == private


def _double_sum(a: np.ndarray) -> int:
    """Twice the sum."""
    s = 0
    for x in a:
        s += 2 * x
    return s


def compiled(kernel: LazyKernel[Any, Any]) -> bool:
    return kernel.is_compiled  # a call, so that mypy does not narrow the property


def test_kernels_compile_lazily() -> None:
    kernel = lazy_njit(nogil=True)(_double_sum)
    assert isinstance(kernel, LazyKernel)
    assert not kernel.is_compiled
    assert kernel.py_func is _double_sum
    assert kernel.__name__ == "_double_sum"
    assert kernel.__doc__ == "Twice the sum."
    assert kernel.__wrapped__ is _double_sum
    data = np.arange(5, dtype=np.int64)
    assert kernel.py_func(data) == 20
    assert not compiled(kernel)  # the Python function does not compile anything
    assert kernel(data) == 20
    assert compiled(kernel)
    dispatcher = kernel.compile()
    assert kernel.compile() is dispatcher
    assert getattr(dispatcher, "py_func", None) is _double_sum


def test_compiles_once_across_threads() -> None:
    kernel = lazy_njit()(_double_sum)
    seen: list[Any] = []
    barrier = threading.Barrier(4)

    def work() -> None:
        barrier.wait()
        seen.append(kernel.compile())

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 4
    assert all(d is seen[0] for d in seen)


def test_library_kernels_are_lazy_objects() -> None:
    from auction.kernels import sealed_bid

    assert isinstance(sealed_bid.sealed_bid, LazyKernel)
    assert callable(sealed_bid.sealed_bid_reference)
    assert not isinstance(sealed_bid.sealed_bid_reference, LazyKernel)
    assert {"CACHE_ENV", "LazyKernel", "cache_enabled", "lazy_njit"} <= set(jit.__all__)
    assert "auction.kernels.sealed_bid.sealed_bid" in kernels()


# -- subprocesses ---------------------------------------------------------------------------
def usable(directory: Path) -> bool:
    """Whether a cache could live in `directory`: numba's own test (mkdir, then a temp file)."""
    try:
        os.makedirs(directory, exist_ok=True)
        tempfile.TemporaryFile(dir=directory).close()
    except OSError:
        return False
    return True


def run(script: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_", "AUCTION_"))}
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra)
    return env


@pytest.fixture
def blocked(tmp_path: Path) -> dict[str, str]:
    """Environment whose every cache location (numba's own and the user's) is unusable."""
    blocker = tmp_path / "a-regular-file"
    blocker.write_text("directories cannot be created under a file\n")
    env = base_env(
        **{
            CACHE_ENV: "1",
            "NUMBA_CACHE_DIR": str(blocker / "numba-cache"),
            "XDG_CACHE_HOME": str(blocker / "xdg"),
            "HOME": str(blocker / "home"),
        }
    )
    for place in ("numba-cache", "xdg/numba", "home/.cache/numba"):
        assert not usable(blocker / place), place
    return env


def read_only_tree(top: Path) -> None:
    """Make every directory under `top` read-only, with a *file* where __pycache__ would go."""
    for d in [top, *(p for p in top.rglob("*") if p.is_dir())]:
        (d / "__pycache__").write_text("not a directory\n")
        assert not usable(d / "__pycache__")
    for d in [top, *(p for p in top.rglob("*") if p.is_dir())]:
        d.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP)


def writable_again(top: Path) -> None:
    for d in [top, *(p for p in top.rglob("*") if p.is_dir())]:
        d.chmod(stat.S_IRWXU)


def cache_files(top: Path) -> list[Path]:
    return [p for p in top.rglob("*") if p.suffix in (".nbi", ".nbc")]


def fallback_warnings(result: dict[str, Any]) -> list[str]:
    return [m for c, m in result["warnings"] if c == "RuntimeWarning" and "cannot be cached" in m]


def test_read_only_install_runs_without_a_cache(tmp_path: Path, blocked: dict[str, str]) -> None:
    src = tmp_path / "site"
    src.mkdir()
    (src / "kmod.py").write_text(KERNEL_MODULE)
    read_only_tree(src)
    try:
        out = run(RUN_KERNEL, str(src), env=blocked)
    finally:
        writable_again(src)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["value"] == 45
    # the fallback really ran: a warning, and a dispatcher with no cache behind it
    assert fallback_warnings(result), result["warnings"]
    assert result["cache_path"] is None
    assert cache_files(tmp_path) == []


def test_zipped_install_runs_without_a_cache(tmp_path: Path, blocked: dict[str, str]) -> None:
    """numba picks a cache location for zipped modules without checking it can write there."""
    archive = tmp_path / "site.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("kmod.py", KERNEL_MODULE)
    out = run(RUN_KERNEL, str(archive), env=blocked)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["value"] == 45
    assert fallback_warnings(result), result["warnings"]
    assert result["cache_path"] is None
    assert cache_files(tmp_path) == []


def test_cache_files_appear_when_the_cache_is_writable(tmp_path: Path) -> None:
    src = tmp_path / "site"
    src.mkdir()
    (src / "kmod.py").write_text(KERNEL_MODULE)
    cache = tmp_path / "cache"
    env = base_env(**{CACHE_ENV: "1", "NUMBA_CACHE_DIR": str(cache)})
    first = run(RUN_KERNEL, str(src), env=env)
    assert first.returncode == 0, first.stderr
    r1 = json.loads(first.stdout)
    assert r1["value"] == 45
    assert fallback_warnings(r1) == []
    assert r1["cache_path"] is not None
    assert Path(r1["cache_path"]).is_relative_to(cache)
    assert (r1["hits"], r1["misses"]) == (0, 1)
    files = cache_files(cache)
    assert {p.suffix for p in files} == {".nbi", ".nbc"}
    assert not (src / "__pycache__").exists()  # nothing written next to the sources
    # a second process loads the kernel from the cache instead of compiling it
    second = run(RUN_KERNEL, str(src), env=env)
    assert second.returncode == 0, second.stderr
    r2 = json.loads(second.stdout)
    assert r2["value"] == 45
    assert (r2["hits"], r2["misses"]) == (1, 0)


STAMPED_MODULE = '''
from auction.kernels.jit import lazy_njit
from kconst import LIMIT


@lazy_njit(nogil=True)
def capped(values):
    s = 0
    for v in values:
        s += min(v, LIMIT)
    return s
'''

RUN_STAMPED = '''
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import kmod2
value = int(kmod2.capped(np.arange(10, dtype=np.int64)))
stats = kmod2.capped.compile().stats
print(json.dumps({"value": value, "hits": sum(stats.cache_hits.values()),
                  "misses": sum(stats.cache_misses.values())}))
'''


def test_a_changed_constant_in_a_neighbouring_module_is_not_loaded_stale(tmp_path: Path) -> None:
    """numba keys a cached kernel on its own file, but the kernel compiles in the constants it
    imports; changing one in the module beside it must recompile, not load the old code."""
    src = tmp_path / "site"
    src.mkdir()
    (src / "kmod2.py").write_text(STAMPED_MODULE)
    env = base_env(**{CACHE_ENV: str(tmp_path / "cache")})
    results = []
    for limit in (3, 3, 5):
        (src / "kconst.py").write_text(f"LIMIT = {limit}\n")
        out = run(RUN_STAMPED, str(src), env=env)
        assert out.returncode == 0, out.stderr
        r = json.loads(out.stdout)
        results.append((r["value"], r["hits"], r["misses"]))
    # 0+1+2+3*7 = 24 with LIMIT 3; 0+1+2+3+4+5*5 = 35 with LIMIT 5 (recompiled, not loaded)
    assert results == [(24, 0, 1), (24, 1, 0), (35, 0, 1)]


def test_no_cache_files_when_turned_off(tmp_path: Path) -> None:
    src = tmp_path / "site"
    src.mkdir()
    (src / "kmod.py").write_text(KERNEL_MODULE)
    cache = tmp_path / "cache"
    env = base_env(**{CACHE_ENV: "0", "NUMBA_CACHE_DIR": str(cache)})
    out = run(RUN_KERNEL, str(src), env=env)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["value"] == 45
    assert result["cache_path"] is None
    assert fallback_warnings(result) == []
    assert cache_files(tmp_path) == []


def test_not_cached_by_default(tmp_path: Path) -> None:
    """No setting at all: every process compiles, and nothing is written anywhere."""
    src = tmp_path / "site"
    src.mkdir()
    (src / "kmod.py").write_text(KERNEL_MODULE)
    env = base_env(XDG_CACHE_HOME=str(tmp_path / "xdg"), HOME=str(tmp_path / "home"),
                   TMPDIR=str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    results = []
    for _ in range(2):
        out = run(RUN_KERNEL, str(src), env=env)
        assert out.returncode == 0, out.stderr
        results.append(json.loads(out.stdout))
    assert [(r["value"], r["cache_path"], r["warnings"]) for r in results] == [(45, None, [])] * 2
    assert cache_files(tmp_path) == []
    assert not (tmp_path / "xdg").exists()
    assert not (tmp_path / "home").exists()


@pytest.mark.parametrize("setting", ["1", "numba"])
def test_opt_in_caches_and_a_second_process_loads(tmp_path: Path, setting: str) -> None:
    """``AUCTION_NUMBA_CACHE=1``: $XDG_CACHE_HOME/auction/numba; ``NUMBA_CACHE_DIR`` alone:
    that directory. Either way a second process loads the kernel instead of compiling it."""
    if setting == "1" and sys.platform in ("win32", "darwin"):
        pytest.skip("XDG locations are for Linux and the BSDs")
    src = tmp_path / "site"
    src.mkdir()
    (src / "kmod.py").write_text(KERNEL_MODULE)
    if setting == "1":
        env = base_env(**{CACHE_ENV: "1", "XDG_CACHE_HOME": str(tmp_path / "xdg")})
        where = tmp_path / "xdg" / "auction" / "numba"
    else:
        env = base_env(NUMBA_CACHE_DIR=str(tmp_path / "numba"))
        where = tmp_path / "numba"
    results = []
    for _ in range(2):
        out = run(RUN_KERNEL, str(src), env=env)
        assert out.returncode == 0, out.stderr
        results.append(json.loads(out.stdout))
    assert [(r["hits"], r["misses"]) for r in results] == [(0, 1), (1, 0)]
    assert Path(results[0]["cache_path"]).is_relative_to(where)
    assert results[0]["warnings"] == []
    assert not (src / "__pycache__").exists()


def test_explicit_directory(tmp_path: Path) -> None:
    src = tmp_path / "site"
    src.mkdir()
    (src / "kmod.py").write_text(KERNEL_MODULE)
    mine = tmp_path / "mine"
    env = base_env(**{CACHE_ENV: str(mine), "NUMBA_CACHE_DIR": str(tmp_path / "numba")})
    out = run(RUN_KERNEL, str(src), env=env)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert Path(result["cache_path"]).is_relative_to(mine)
    assert cache_files(mine)
    assert not (tmp_path / "numba").exists()


def test_unwritable_home_falls_back_to_a_private_temp_dir(tmp_path: Path) -> None:
    """A read-only home (as in many containers): a private directory under TMPDIR, silently."""
    if not hasattr(os, "getuid") or sys.platform == "darwin":
        pytest.skip("POSIX, XDG locations")
    src = tmp_path / "site"
    src.mkdir()
    (src / "kmod.py").write_text(KERNEL_MODULE)
    blocker = tmp_path / "a-regular-file"
    blocker.write_text("directories cannot be created under a file\n")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = base_env(**{CACHE_ENV: "1", "XDG_CACHE_HOME": str(blocker / "xdg"),
                      "HOME": str(blocker / "home"), "TMPDIR": str(tmp)})
    out = run(RUN_KERNEL, str(src), env=env)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["warnings"] == []
    private = tmp / f"auction-numba-{os.getuid()}"
    assert Path(result["cache_path"]).is_relative_to(private)
    assert stat.S_IMODE(private.stat().st_mode) == 0o700


def test_read_only_copy_of_the_library_clears_with_caching_on(
    tmp_path: Path, blocked: dict[str, str]
) -> None:
    """The real kernel, from a read-only copy of the package: lazy, then compiled, uncached."""
    site = tmp_path / "site"
    shutil.copytree(
        ROOT / "auction", site / "auction", ignore=shutil.ignore_patterns("__pycache__")
    )
    read_only_tree(site)
    script = textwrap.dedent(
        """
        import json, sys, warnings
        sys.path.insert(0, sys.argv[1])
        import auction
        assert auction.__file__.startswith(sys.argv[1]), auction.__file__
        from auction import Offer, OrderBook, Request
        from auction.kernels import sealed_bid
        assert "numba" not in sys.modules
        assert not sealed_bid.sealed_bid.is_compiled
        book = OrderBook([
            Offer(id="o1", provider="p", gpu_model="m", gpus=2, price=3, region="x", vram_gb=1),
            Offer(id="o2", provider="q", gpu_model="m", gpus=2, price=5, region="x", vram_gb=1),
            Request(id="r1", tenant="t", gpus=2, max_price=9),
        ])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = auction.clear(book, "second-price")
        assert sealed_bid.sealed_bid.is_compiled
        print(json.dumps({
            "records": result.to_records(),
            "warnings": [[w.category.__name__, str(w.message)] for w in caught],
            "cache_path": sealed_bid.sealed_bid.compile().stats.cache_path,
        }))
        """
    )
    try:
        out = run(script, str(site), env={**blocked, "PYTHONPATH": ""})
    finally:
        writable_again(site)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["records"] == [
        {
            "request_id": "r1",
            "offer_id": "o1",
            "tenant": "t",
            "provider": "p",
            "gpus": 2,
            "unit_price": 5,
            "tenant_price": 5,
        }
    ]
    assert fallback_warnings(result), result["warnings"]
    assert result["cache_path"] is None
    assert cache_files(tmp_path) == []


def test_warmup_compiles_every_kernel() -> None:
    """Every kernel of every module, once imported, has a compiled version after warmup()."""
    import importlib
    import pkgutil

    for info in pkgutil.walk_packages(auction.__path__, "auction."):
        if info.name.startswith(("auction.kernels.", "auction.reputation.")):
            importlib.import_module(info.name)
    report = auction.warmup()
    ours = {name for name in kernels() if name.startswith("auction.")}  # not the tests' own
    compiled = {name: d for name, d in jit.compiled_kernels() if name in ours}
    assert set(compiled) == ours
    for kernel in jit._REGISTRY:
        funcs = [kernel.py_func] if isinstance(kernel, LazyKernel) else list(
            kernel._funcs.values())
        if not all(f.__module__.startswith("auction.") for f in funcs):
            continue
        if isinstance(kernel, LazyKernel):
            dispatcher: Any = kernel.compile()  # a numba dispatcher (untyped)
            assert dispatcher.signatures, kernel.__name__
        else:  # members called only by other members compile inside them
            members: list[Any] = [kernel.compiled(m) for m in kernel.members]
            assert any(d.signatures for d in members), kernel.members
    ready = {k.name for k in report.kernels if k.signatures and k.name in ours}
    assert ready == {name for name, d in compiled.items() if d.signatures}
    assert report.skipped == ()
    assert report.seconds >= report.compile_seconds >= 0
