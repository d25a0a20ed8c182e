"""Every example in docs/*.md runs and prints what its page says it prints.

How a page is read (fenced blocks at the start of a line, in page order):

* ```` ```python ```` blocks run in one namespace per page, with a fresh temporary directory as
  the working directory and on ``sys.path``. A ```` ```text ```` block right after a python
  block is the output it must print (trailing spaces ignored).
* ```` ```python title="name.py" ```` blocks are written to that directory instead of run; a
  ``test_*.py`` file is then run with ``sys.executable -m pytest`` and must pass.
* Other blocks with a ``title="..."`` (``json``, ``toml``, ...) are written to the directory.
* ```` ```console ```` blocks: each ``$ command`` line runs with bash in the directory, where
  ``python`` is ``sys.executable``; the lines up to the next ``$`` are its expected output
  (stdout and stderr together; no lines: no output).
* In expected output, ``...`` matches any text (use it for timings and other output that
  varies); an ``<!-- docs-test: no-compare -->`` comment just before a ```` ```text ```` block
  turns its comparison off (the example still has to run without error).
* Other languages (``py``, ``bash``, ``toml`` without a title, ...) are shown, not run.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = sorted(DOCS.glob("*.md"))
FENCE = re.compile(r"^```(\w+)?([^\n]*)\n(.*?)^```[ \t]*$", re.S | re.M)
NO_COMPARE = "<!-- docs-test: no-compare -->"
TITLE = re.compile(r'title="([^"]+)"')


def _norm(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


def _matches(expected: str, got: str) -> bool:
    if "..." not in expected:
        return expected == got
    pattern = ".*?".join(re.escape(part) for part in expected.split("..."))
    return re.fullmatch(pattern, got, re.S) is not None


def _env(workdir: Path, numba_cache: Path | None, shims: Path) -> dict[str, str]:
    """The environment of commands and test files: `python` is this interpreter.

    Its directory goes first on PATH, and before it a `python` script that runs it, in case
    that directory has no `python` (an interpreter installed as ``python3`` only).
    """
    shim = shims / "python"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    shim.chmod(0o755)
    env = dict(os.environ)
    if numba_cache is not None:  # compile each kernel once for all the page's processes
        env["AUCTION_NUMBA_CACHE"] = "1"
        env["NUMBA_CACHE_DIR"] = str(numba_cache)
    bindir = os.path.dirname(sys.executable)
    env["PATH"] = os.pathsep.join([str(shims), bindir, env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(workdir), env.get("PYTHONPATH")]))
    env["PYTHONHASHSEED"] = "0"
    env["COLUMNS"] = "80"  # argparse wraps --help to the terminal width
    env["NO_COLOR"] = "1"
    return env


def _diff(where: str, expected: str, got: str) -> str:
    return f"{where}: output differs\n--- expected\n{expected}\n--- got\n{got}"


def run_page(
    text: str, workdir: Path, name: str = "page", numba_cache: Path | None = None
) -> list[str]:
    """Run a page's examples in `workdir`; return one message per failure (empty: all good).

    `numba_cache`: a directory where the commands and test files the page runs cache compiled
    kernels (None: they compile on first use, as by default).
    """
    blocks = []
    end = 0
    for m in FENCE.finditer(text):
        blocks.append((m.group(1) or "", m.group(2), m.group(3), NO_COMPARE in text[end:m.start()]))
        end = m.end()
    failures: list[str] = []
    namespace: dict[str, object] = {"__name__": "__doc_example__"}
    shims = Path(tempfile.mkdtemp(prefix="docs-test-bin-"))
    env = _env(workdir, numba_cache, shims)
    old_cwd, old_path, old_modules = os.getcwd(), list(sys.path), set(sys.modules)
    os.chdir(workdir)
    sys.path.insert(0, str(workdir))
    try:
        for i, (lang, attrs, body, _) in enumerate(blocks):
            where = f"{name} block {i} ({lang})"
            title = TITLE.search(attrs)
            if title:
                path = workdir / title.group(1)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(body)
                if lang == "python" and path.name.startswith("test_"):
                    failures += _run_pytest(where, path, workdir, env)
            elif lang == "python":
                nxt = blocks[i + 1] if i + 1 < len(blocks) else None
                expected = _norm(nxt[2]) if nxt and nxt[0] == "text" and not nxt[3] else None
                failures += _run_python(where, body, namespace, expected)
            elif lang == "console":
                failures += _run_console(where, body, workdir, env)
    finally:
        os.chdir(old_cwd)
        sys.path[:] = old_path
        shutil.rmtree(shims, ignore_errors=True)
        for mod in set(sys.modules) - old_modules:  # modules the page defined in workdir
            file = getattr(sys.modules[mod], "__file__", None) or ""
            if file.startswith(str(workdir)):
                del sys.modules[mod]
    return failures


def _run_python(
    where: str, body: str, namespace: dict[str, object], expected: str | None
) -> list[str]:
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(body, where, "exec"), namespace)
    except Exception:
        return [f"{where}: raised\n{traceback.format_exc()}"]
    got = _norm(out.getvalue())
    if expected is not None and not _matches(expected, got):
        return [_diff(where, expected, got)]
    return []


def _run_pytest(where: str, path: Path, workdir: Path, env: dict[str, str]) -> list[str]:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
           "--hypothesis-seed=0", path.name]
    p = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        return [f"{where}: pytest {path.name} exited {p.returncode}\n"
                f"{p.stdout[-3000:]}{p.stderr[-2000:]}"]
    return []


def _run_console(where: str, body: str, workdir: Path, env: dict[str, str]) -> list[str]:
    commands: list[tuple[str, list[str]]] = []
    for line in body.splitlines():
        if line.startswith("$ "):
            commands.append((line[2:], []))
        elif commands:
            commands[-1][1].append(line)
    failures = []
    for cmd, lines in commands:
        p = subprocess.run(["bash", "-c", cmd], cwd=workdir, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=300)
        expected, got = _norm("\n".join(lines)), _norm(p.stdout)
        if not _matches(expected, got):
            failures.append(_diff(f"{where} `$ {cmd}` (exit code {p.returncode})", expected, got))
    return failures


@pytest.fixture(scope="module")
def numba_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The suite's kernel cache (tests/conftest.py), else a fresh one for this module."""
    suite = os.environ.get("AUCTION_NUMBA_CACHE", "")
    return Path(suite) if os.path.isabs(suite) else tmp_path_factory.mktemp("numba-cache")


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_page_examples(page: Path, tmp_path: Path, numba_cache: Path) -> None:
    failures = run_page(page.read_text(), tmp_path, page.name, numba_cache)
    assert not failures, "\n\n".join(failures)


def test_runner_reports_wrong_output_errors_and_failing_commands(tmp_path: Path) -> None:
    page = "\n".join([
        "```python", "print(1 + 1)", "```", "```text", "3", "```",
        "```python", "print('took 0.25 s')", "```", "```text", "took ... s", "```",
        "```python", "raise ValueError('boom')", "```",
        "```python", "print('anything')", "```", NO_COMPARE, "```text", "other", "```",
        "```console", "$ echo hi", "ho", "$ python -c 'import sys; print(sys.executable)'",
        sys.executable, "$ echo unexpected", "```",
        '```python title="test_fails.py"', "def test_fails():", "    assert False", "```",
    ])
    failures = run_page(page, tmp_path)
    assert len(failures) == 5, "\n\n".join(failures)
    assert "block 1 (text)" not in "".join(failures)
    for needle in ["block 0 (python): output differs", "ValueError: boom", "`$ echo hi`",
                   "`$ echo unexpected`", "pytest test_fails.py exited 1"]:
        assert any(needle in f for f in failures), needle
