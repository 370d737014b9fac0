"""Data flows one way: no module imports a module of a higher layer.

Validation and geometry at the bottom, then the budget and window helpers, the paths, their
registry, the cost model, the engine; the public functions, gradients, teaching tools,
testing toolkit and CLI on top. A new module must be placed in a layer here.
"""

from __future__ import annotations

import ast
import pkgutil
from importlib.resources import files

import mimo_conv

LAYERS: list[set[str]] = [
    {"_memory", "_geometry", "_dtypes"},
    {"_validation", "_windows", "_budget"},
    {
        "_unfold",
        "_padding_adjoint",
        "_method_naive",
        "_method_einsum",
        "_method_matmul",
        "_method_im2col",
        "_method_gemm",
        "_method_fold",
        "_method_shift",
    },
    {"_methods"},
    {"_cost_model"},
    {"_engine"},
    {
        "_api",
        "_gradient_common",
        "_input_gradient",
        "_weight_gradient",
        "_backward",
        "_transpose",
        "grad",
        "_cost",
        "_compose",
        "_conv_matrix",
        "_textbook",
    },
    {
        "_error_bound",
        "_assertions",
        "_strategies",
        "testing",
        "_explain",
        "_exercises",
        "_demo",
        "_cli",
        "__init__",
        "__main__",
    },
]
LAYER_OF = {name: index for index, layer in enumerate(LAYERS) for name in layer}


def imported_modules(name: str) -> set[str]:
    """The package's modules that ``name`` imports, anywhere in its code (not doctests)."""
    source = files(mimo_conv).joinpath(f"{name}.py").read_text(encoding="utf-8")
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mimo_conv"):
            parts = node.module.split(".")
            if len(parts) > 1:
                found.add(parts[1])
            else:  # from mimo_conv import x: x is a submodule, or a name from __init__
                found.update(
                    alias.name if alias.name in LAYER_OF else "__init__" for alias in node.names
                )
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "mimo_conv":
                    found.add(parts[1] if len(parts) > 1 else "__init__")
    found.discard(name)
    return found


def test_every_module_is_placed_in_a_layer() -> None:
    modules = {info.name for info in pkgutil.iter_modules(mimo_conv.__path__)} | {"__init__"}
    assert modules == set(LAYER_OF), (modules - set(LAYER_OF), set(LAYER_OF) - modules)


def test_no_module_imports_from_a_higher_layer() -> None:
    upward = [
        (name, target)
        for name in LAYER_OF
        for target in imported_modules(name)
        if LAYER_OF[target] > LAYER_OF[name]
    ]
    assert upward == []
    # The checker sees imports: the engine reads the registry of paths.
    assert "_methods" in imported_modules("_engine")
