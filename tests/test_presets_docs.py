"""The preset pages (docs/presets/*.md) run and print what they say, like tests/test_docs.py
does for docs/*.md; each page has a parameter table listing every parameter of its preset."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import pytest

from auction import presets

PAGES = Path(__file__).resolve().parent.parent / "docs" / "presets"


def _run_page() -> Callable[..., list[str]]:
    """tests/test_docs.py's page runner (loaded by path: tests is not a package)."""
    spec = importlib.util.spec_from_file_location("_docs_runner",
                                                  Path(__file__).parent / "test_docs.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    runner: Callable[..., list[str]] = module.run_page
    return runner


run_page = _run_page()


@pytest.mark.parametrize("name", presets.available())
def test_preset_page(name: str, tmp_path: Path) -> None:
    text = (PAGES / f"{name}.md").read_text()
    for p in presets.get(name).parameters:
        assert f"| `{p.name}` |" in text, f"{name}.md lacks parameter {p.name}"
    failures = run_page(text, tmp_path, f"presets/{name}.md")
    assert not failures, "\n\n".join(failures)


def test_sources_page() -> None:
    text = (PAGES / "sources.md").read_text()
    for name in ("Akash", "Render", "io.net", "Aethir", "Nosana", "iExec", "Golem"):
        assert f"## {name}" in text
