"""Run every docstring example of the installed package as a doctest."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path
from types import ModuleType

import pytest

import mimo_conv

OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _modules() -> list[str]:
    names = [mimo_conv.__name__]
    names += [
        info.name
        for info in pkgutil.walk_packages(mimo_conv.__path__, prefix=f"{mimo_conv.__name__}.")
        if info.name != "mimo_conv.__main__"
    ]
    return sorted(names)


@pytest.mark.parametrize("module_name", _modules())
def test_docstring_examples_run(module_name: str) -> None:
    module: ModuleType = importlib.import_module(module_name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    globs = {"np": importlib.import_module("numpy")}
    for test in finder.find(module, module_name, globs={**vars(module), **globs}):
        runner.run(test)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, f"{results.failed} docstring example(s) failed in {module_name}"


def _defines_anything(module: ModuleType) -> bool:
    """Whether a module holds code (a folder's ``__init__`` may hold only its docstring)."""
    return any(
        getattr(value, "__module__", None) == module.__name__ for value in vars(module).values()
    )


def test_every_module_has_examples() -> None:
    """A public function without an example is a gap the doctest run would not notice."""
    finder = doctest.DocTestFinder(exclude_empty=True)
    modules = [importlib.import_module(name) for name in _modules()]
    without = [
        module.__name__
        for module in modules
        if _defines_anything(module) and not any(t.examples for t in finder.find(module))
    ]
    assert without == []


BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def test_benchmark_harness_examples_run(monkeypatch: pytest.MonkeyPatch) -> None:
    # The benchmarks' shared helpers hold examples too; the scripts import them by name.
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    module = importlib.import_module("_harness")
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    tests = finder.find(module, module.__name__)
    assert any(test.examples for test in tests)
    for test in tests:
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
