"""Sphinx configuration of the mimo_conv documentation (Markdown pages, numpydoc API).

Build with ``sphinx-build -W --keep-going -n -b html docs docs/_build/html`` after
``pip install ".[docs]"``. The classroom page's figures are drawn from the computation
when the documentation is built, into ``docs/_generated/`` (not kept in git).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
# Document this checkout's mimo_conv, whether or not it is installed.
sys.path.insert(0, str(HERE.parent / "src"))

import mimo_conv as mc  # noqa: E402 - after the path is set

project = "mimo_conv"
author = "The mimo_conv developers"
copyright = "the mimo_conv developers"  # noqa: A001 - the name Sphinx reads
release = mc.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "numpydoc",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]

# Types are in the numpydoc "Parameters" sections; signatures stay short.
autodoc_typehints = "none"
autodoc_member_order = "bysource"
numpydoc_show_class_members = False
numpydoc_validation_checks: set[str] = set()

# Every cross-reference must resolve (sphinx-build -n) and MyST must find every link.
nitpicky = True
myst_heading_anchors = 3

# What the docstrings name but the site does not document: the standard library's Fraction
# (no intersphinx: the build must not need the network) and a few private helpers that
# docstrings mention by name for the reader of the source.
nitpick_ignore = [
    ("py:class", "fractions.Fraction"),
    ("py:class", "PathCost"),
    ("py:func", "weight_gradient_geometry"),
    ("py:func", "mimo_conv._engine.cost_model.workspace_bytes"),
    ("py:mod", "mimo_conv._core.dtypes"),
    ("py:class", "Format"),  # the private number format behind Precision's attributes
]

html_theme = "pydata_sphinx_theme"
html_title = f"mimo_conv {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}


#: A star that opens a shape's unpacking, as in ``(N, C_in, *spatial)``, in plain text.
UNPACKING_STAR = re.compile(r"(?:(?<=^)|(?<=[\s(\[,]))\*(?=[\w(])")
EMPHASIS = re.compile(r"\*[^\s*][^*]*?(?<=\S)\*(?![\w*])")


def escape_unpacking_stars(line: str) -> str:
    """Escape a shape's ``*spatial`` (outside literals and real emphasis) for reST."""
    parts = line.split("``")
    for index in range(0, len(parts), 2):  # the even parts are outside ``literals``
        pieces = re.split(f"({EMPHASIS.pattern})", parts[index])
        parts[index] = "".join(
            piece if EMPHASIS.fullmatch(piece) else UNPACKING_STAR.sub(r"\\*", piece)
            for piece in pieces
        )
    return "``".join(parts)


def escape_stars(app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    """Docstrings write shapes as ``(N, C, *spatial)``, which reST reads as emphasis."""
    lines[:] = [escape_unpacking_stars(line) for line in lines]


def setup(app: Any) -> None:
    """Escape the docstrings' unpacking stars before numpydoc and autodoc read them."""
    app.connect("autodoc-process-docstring", escape_stars, priority=100)


def draw_figures() -> None:
    """Draw the classroom page's figures with the library itself."""
    import matplotlib  # noqa: PLC0415 - only the documentation build needs it

    matplotlib.use("Agg")
    out = HERE / "_generated"
    out.mkdir(exist_ok=True)
    mc.draw_conv(file=out / "book_inputs.png")
    mc.draw_conv(padding=1, stride=2, element=(0, 1, 1), file=out / "book_padded.png")
    x = np.arange(49).reshape(1, 7, 7)
    mc.draw_conv(
        x, np.ones((1, 1, 2, 2), int), dilation=2, element=(0, 1, 1), file=out / "dilated.png"
    )
    mc.draw_conv(view="outputs", element=(1, 1, 0), file=out / "book_outputs.png")
    mc.draw_conv(view="1x1", element=(1, 2, 1), file=out / "one_by_one.png")
    depthwise = np.array([[[[1, 0], [0, 1]]], [[[0, 1], [1, 0]]], [[[1, 1], [0, -1]]]])
    x = np.arange(27).reshape(3, 3, 3) % 7
    mc.draw_conv(x, depthwise, groups=3, element=(1, 0, 1), file=out / "depthwise.png")
    mc.draw_conv(padding=1, padding_mode="reflect", file=out / "book_reflect.png")


draw_figures()
