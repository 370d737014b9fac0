"""Data flows one way: no module imports a module of a higher layer, and no imports go round.

The package is a house of folders, each a layer: ``_core`` (arguments, geometry, dtypes,
budget, windows) at the bottom, then the paths, the engine, the gradients, the public
operations, the classroom and the testing toolkit, and the package's front door on top. A
new folder must be placed in a layer here; a new module inside a folder is placed by it.
"""

from __future__ import annotations

import ast
import pkgutil
from pathlib import Path

import mimo_conv

PACKAGE_ROOT = Path(mimo_conv.__file__).parent

#: Layers from the bottom up. A module may import from its own layer or any below it.
LAYERS: list[set[str]] = [
    {"_core"},
    {"_paths"},
    {"_engine"},
    {"_gradients"},
    {"_ops"},
    {"_classroom", "testing", "compat"},
    {"__init__", "__main__", "grad"},
    {"dask"},  # the optional dask front end: imported as mimo_conv.dask, never by __init__
]
LAYER_OF = {name: index for index, layer in enumerate(LAYERS) for name in layer}


def all_modules() -> dict[str, Path]:
    """Every module of the package by dotted name below ``mimo_conv`` (``_core.geometry``)."""
    found = {}
    for path in PACKAGE_ROOT.rglob("*.py"):
        parts = path.relative_to(PACKAGE_ROOT).with_suffix("").parts
        found[".".join(parts)] = path
    return found


MODULES = all_modules()


def unit_of(module: str) -> str:
    """The layer unit a module belongs to: its folder, or itself at the top level."""
    return module.split(".", maxsplit=1)[0]


def resolve(name: str) -> str | None:
    """The package module that ``mimo_conv.<name>`` refers to (a module or a package)."""
    if name in MODULES:
        return name
    if f"{name}.__init__" in MODULES:
        return f"{name}.__init__"
    return None


def imported_modules(module: str) -> set[str]:
    """The package's modules that ``module`` imports, anywhere in its code (not doctests)."""
    source = MODULES[module].read_text(encoding="utf-8")
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mimo_conv"):
            base = node.module.removeprefix("mimo_conv").removeprefix(".")
            for alias in node.names:
                target = resolve(f"{base}.{alias.name}" if base else alias.name)
                if target is None:
                    target = resolve(base) if base else "__init__"
                if target is not None:
                    found.add(target)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "mimo_conv":
                    target = resolve(alias.name.removeprefix("mimo_conv").removeprefix("."))
                    found.add(target or "__init__")
    found.discard(module)
    return found


GRAPH = {module: imported_modules(module) for module in MODULES}


def test_every_folder_and_top_level_module_is_placed_in_a_layer() -> None:
    units = {unit_of(module) for module in MODULES}
    assert units == set(LAYER_OF), (units - set(LAYER_OF), set(LAYER_OF) - units)


def test_every_folder_says_what_it_holds() -> None:
    for info in pkgutil.iter_modules(mimo_conv.__path__):
        if info.ispkg:
            init = PACKAGE_ROOT / info.name / "__init__.py"
            docstring = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
            assert docstring, f"{info.name}/__init__.py needs a docstring saying what lives there"


def test_no_module_imports_from_a_higher_layer() -> None:
    upward = [
        (module, target)
        for module, targets in GRAPH.items()
        for target in targets
        if LAYER_OF[unit_of(target)] > LAYER_OF[unit_of(module)]
    ]
    assert upward == []
    # The checker sees imports: the engine reads the registry of paths.
    assert "_paths.registry" in GRAPH["_engine.execute"]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle in ``graph`` (a list of modules, first repeated last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycles_even_inside_a_layer() -> None:
    # A package's __init__ re-exporting its submodules is not a cycle of the code.
    graph = {
        module: {
            target
            for target in targets
            if not (target.endswith("__init__") and module.startswith(target[: -len("__init__")]))
        }
        for module, targets in GRAPH.items()
    }
    assert find_cycle(graph) is None


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
