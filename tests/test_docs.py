"""The documentation site: every public name in the API pages, and every page's examples run.

The build itself (``sphinx-build -W --keep-going -n``: warnings, broken cross-references
and links are errors) runs in CI with the ``docs`` extra; these checks need nothing but
the standard library and run everywhere.
"""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

import mimo_conv
from mimo_conv import grad, testing
from mimo_conv.compat import jax as compat_jax
from mimo_conv.compat import onnx as compat_onnx
from mimo_conv.compat import tf as compat_tf
from mimo_conv.testing import conventions

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
GUIDES = ["tour", "classroom", "testing", "performance", "frameworks", "architecture"]

DIRECTIVE = re.compile(r"^\.\. (?:autofunction|autoclass|autodata):: (\S+)", re.MULTILINE)
MODULE = re.compile(r"^\.\. currentmodule:: (\S+)", re.MULTILINE)


def documented_names() -> set[str]:
    """Every ``module.name`` the API pages document with an autodoc directive."""
    names = set()
    for page in (DOCS / "api").glob("*.md"):
        text = page.read_text(encoding="utf-8")
        module = None
        for match in re.finditer(f"{DIRECTIVE.pattern}|{MODULE.pattern}", text, re.MULTILINE):
            name, current = match.group(1), match.group(2)
            if current is not None:
                module = current
            else:
                names.add(name if "." in name else f"{module}.{name}")
    return names


def test_every_public_name_is_in_the_api_reference() -> None:
    public = {f"mimo_conv.{name}" for name in mimo_conv.__all__}
    public |= {f"mimo_conv.grad.{name}" for name in grad.__all__}
    public |= {f"mimo_conv.testing.{name}" for name in testing.__all__}
    for module in (compat_jax, compat_tf, compat_onnx, conventions):
        public |= {f"{module.__name__}.{name}" for name in module.__all__}
    documented = documented_names()
    assert public - documented == set()
    assert documented - public == set()  # nothing private, nothing misspelt


def test_the_landing_page_links_every_guide_and_the_reference() -> None:
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    toctrees = re.findall(r"```\{toctree\}\n(.*?)```", index, re.DOTALL)
    entries = {line.strip() for tree in toctrees for line in tree.splitlines()}
    assert set(GUIDES) | {"api/index"} <= entries
    for guide in GUIDES:
        assert (DOCS / f"{guide}.md").is_file(), guide


def test_every_api_page_is_in_the_api_index() -> None:
    index = (DOCS / "api" / "index.md").read_text(encoding="utf-8")
    tree = re.search(r"```\{toctree\}\n(.*?)```", index, re.DOTALL)
    assert tree is not None
    entries = {line.strip() for line in tree.group(1).splitlines() if line.strip()}
    pages = {page.stem for page in (DOCS / "api").glob("*.md")} - {"index"}
    assert {entry for entry in entries if not entry.startswith(":")} == pages


def test_readme_links_point_at_files_that_exist() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#]+)\)", readme)
    local = [target for target in targets if not target.startswith(("http://", "https://"))]
    assert {f"docs/{guide}.md" for guide in GUIDES} <= set(local)
    missing = [target for target in local if not (ROOT / target).exists()]
    assert missing == []


@pytest.mark.parametrize("page", PAGES, ids=[str(page.relative_to(DOCS)) for page in PAGES])
def test_page_examples_run(page: Path) -> None:
    if page.stem == "classroom":
        pytest.importorskip("matplotlib")  # its example draws a figure
    text = page.read_text(encoding="utf-8")
    test = doctest.DocTestParser().get_doctest(text, {}, page.name, str(page), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
