"""The section's notebook: committed without outputs, and it runs from top to bottom.

``examples/section_6_4.ipynb`` walks through d2l section 6.4 with mimo_conv; its cells
assert the book's numbers, so running it is a test. Outputs are never committed (they
would go stale), which the first tests check without running anything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import mimo_conv

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "section_6_4.ipynb"


def cells() -> list[dict[str, Any]]:
    """The notebook's cells, read as plain JSON (no Jupyter package needed)."""
    notebook = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    assert notebook["nbformat"] == 4
    found: list[dict[str, Any]] = notebook["cells"]
    return found


def source(cell: dict[str, Any]) -> str:
    text = cell["source"]
    return text if isinstance(text, str) else "".join(text)


def test_outputs_are_cleared() -> None:
    code = [cell for cell in cells() if cell["cell_type"] == "code"]
    assert code
    stale = [source(cell)[:40] for cell in code if cell["outputs"] or cell["execution_count"]]
    assert stale == []


def test_it_covers_the_section() -> None:
    text = "\n".join(source(cell) for cell in cells())
    for name in ("corr2d_multi_in(", "corr2d_multi_in_out(", "corr2d_multi_in_out_1x1("):
        assert name in text
    for view in ('view="outputs"', 'view="1x1"'):
        assert view in text
    assert "assert difference < 1e-6" in text  # the book's 1 x 1 check, measured
    for number in range(1, 7):
        assert f"### Exercise {number}" in text, number


def test_it_runs_without_error(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("matplotlib")
    pytest.importorskip("ipykernel")
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    # The kernel is a new process: give it this mimo_conv, installed or not.
    package_root = str(Path(mimo_conv.__file__).resolve().parent.parent)
    monkeypatch.setenv("PYTHONPATH", package_root)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    outputs = [
        output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    ]
    assert not [output for output in outputs if output.output_type == "error"]
    images = [output for output in outputs if "image/png" in output.get("data", {})]
    assert len(images) == 4  # the four figures were drawn
    printed = "".join(output.get("text", "") for output in outputs)
    assert "sum |Y1 - Y2| = " in printed
    assert "both within the rounding-error bound of the exact result" in printed
