"""The README's examples run as doctests, so the tour cannot drift from the code."""

from __future__ import annotations

import doctest
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_examples_run() -> None:
    text = README.read_text(encoding="utf-8")
    parser = doctest.DocTestParser()
    test = parser.get_doctest(text, {}, "README.md", str(README), 0)
    assert test.examples, "the README should hold runnable examples"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


def test_readme_opens_with_the_two_commands() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    commands = [line for line in lines if line.startswith("python3 -m venv .venv")]
    assert len(commands) >= 2
    assert commands[0].endswith("-m mimo_conv demo")
    assert commands[1].endswith("-m pytest")


def _readme_tables() -> ModuleType:
    path = README.parent / "benchmarks" / "readme_tables.py"
    if str(path.parent) not in sys.path:  # it imports the benchmarks' _harness, as they do
        sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location("readme_tables", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_performance_tables_are_the_committed_results() -> None:
    # The tables are generated from benchmarks/results/*.json: a figure in the README that
    # no committed run measured, or a run whose figures the README does not show, fails.
    tables = _readme_tables()
    text = README.read_text(encoding="utf-8")
    assert tables.START in text
    assert tables.END in text
    assert tables.rewrite(text) == text, "run python benchmarks/readme_tables.py"
    assert "| resnet-3x3 |" in text  # the block is not empty


def test_readme_tables_quote_each_run_from_its_json() -> None:
    tables = _readme_tables()
    run = {
        "machine": {
            "cpu": "CPU",
            "logical_cores": 2,
            "system": "Linux",
            "python": "3.11",
            "numpy": "2.4",
            "blas": {"name": "openblas", "version": "0.3"},
            "torch": "2.13",
        },
        "tables": {
            "1": {
                "rows": [
                    {
                        "case": "resnet-3x3",
                        "dtype": dtype,
                        "method": "auto",
                        "vs_torch": ratio,
                        "spread": 0.1,
                        "torch_spread": 0.3,
                        "auto_over_best": 1.02,
                    }
                    for dtype, ratio in (("float32", 2.0), ("float64", 0.5))
                ]
            }
        },
    }
    layers = tables._layers([("default", run)])
    assert "| resnet-3x3 | 2.00x (30%) | 0.50x (30%) | 1.02, 1.02 |" in layers
    assert "float32 2.00x at 1 thread(s), float64 0.50x" in tables._summary("default", run)
